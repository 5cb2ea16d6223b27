"""Batch runs: many untrusted jobs, each in its own locked-down process, on a local pool of
fork servers or on a Ray cluster. See docs/batch.md.

``run(jobs, ...)`` streams results; :class:`Job` is one job; :class:`ModuleStore` holds
modules by digest; ``python -m callgate batch`` is the command line.
"""

from callgate.batch.api import Batch, run
from callgate.batch.schema import SCHEMA_VERSION, STATUSES, BatchError, Job, read_jobs
from callgate.batch.sources import ModuleStore

__all__ = ["SCHEMA_VERSION", "STATUSES", "Batch", "BatchError", "Job", "ModuleStore",
           "read_jobs", "run"]
