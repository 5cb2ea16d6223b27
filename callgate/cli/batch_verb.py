"""``callgate batch``: run a JSON Lines file of jobs, each in its own locked-down process.

One result line per job goes to RESULTS as each job finishes (docs/batch.md has both
schemas). A progress line is drawn on stderr when it is a terminal, and nothing
otherwise. Ctrl-C stops the batch: running jobs are killed, the results already written
stay, and ``--resume`` later runs only the jobs RESULTS has no result for.

Exit status: 0 when every job has a result and none is ``error`` or ``lost``; 1 when
some are (each such job is counted on stderr); 2 for usage errors; 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from callgate.cli.runtime_verbs import parse_fuel, parse_seconds, parse_size
from callgate.errors import CallgateError

INTERRUPTED_EXIT = 128 + 2  # SIGINT, as a shell reports it


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    batch = subparsers.add_parser(
        "batch",
        help="run a JSON Lines file of jobs, each in its own locked-down process",
        description="Run every job of JOBS (JSON Lines; - for stdin) in a fresh process "
        "forked from a pool of fork servers, locked down with the kernel layer (seccomp, "
        "Landlock on its scratch directory, W^X), and write one result per job to RESULTS "
        "as it finishes. Relative module and policy paths in JOBS are read from the jobs "
        "file's directory (see --base). Schemas: docs/batch.md.",
    )
    batch.add_argument("jobs", metavar="JOBS", help="the jobs file (JSON Lines), or - for stdin")
    batch.add_argument("-o", "--output-file", dest="results", metavar="RESULTS", required=True,
                       help="where results go (JSON Lines), or - for stdout")
    batch.add_argument("--workers", type=_positive, metavar="N",
                       help="fork servers (per node with --engine ray); default: one per CPU")
    batch.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: a pool on this machine (default); ray: a pool on every "
                       "node of a Ray cluster (pip install 'callgate[ray]')")
    batch.add_argument("--ray-address", metavar="ADDR",
                       help="the Ray cluster to join (default: $RAY_ADDRESS, else a local one)")
    batch.add_argument("--policy", metavar="P",
                       help="policy of jobs that name none: a .toml file, default or "
                       "default+fs (the default: every job has a scratch directory)")
    batch.add_argument("--fuel", type=parse_fuel, metavar="N", help="fuel per job")
    batch.add_argument("--timeout", type=parse_seconds, metavar="S",
                       help="wall-clock seconds per job (default 10; never unlimited)")
    batch.add_argument("--memory", type=parse_size, metavar="BYTES",
                       help="linear memory cap per job (e.g. 64M)")
    batch.add_argument("--output-limit", dest="output", type=parse_size, metavar="BYTES",
                       help="bytes a job may write: stdout, stderr and files (default 4M)")
    batch.add_argument("--capture", type=parse_size, metavar="BYTES", default=64 * 1024,
                       help="bytes of stdout and of stderr a result keeps (default 64K)")
    batch.add_argument("--modules", metavar="DIR",
                       help="module store: jobs may name modules as sha256:HEX found here")
    batch.add_argument("--base", metavar="DIR",
                       help="directory relative paths in JOBS are read from (default: the "
                       "jobs file's directory; the current one for stdin)")
    batch.add_argument("--scratch", metavar="DIR",
                       help="where jobs' scratch directories are made (default: the "
                       "system's temporary directory)")
    batch.add_argument("--resume", action="store_true",
                       help="keep RESULTS and run only the jobs it has no result for (a "
                       "lost job runs again)")
    batch.add_argument("--quiet", action="store_true", help="no progress line, even on a tty")
    batch.set_defaults(func=_batch)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return value


def _batch(args: argparse.Namespace) -> int:
    from callgate.batch.api import run
    from callgate.batch.schema import count_jobs, dumps, read_jobs

    limits = {name: value for name in ("fuel", "timeout", "memory", "output")
              if (value := getattr(args, name)) is not None}
    if args.jobs == "-":
        base = Path(args.base or ".")
        source: IO[str] = sys.stdin
        total: int | None = None
    else:
        jobs_path = Path(args.jobs)
        try:
            source = jobs_path.open(encoding="utf-8")
        except OSError as exc:
            raise CallgateError(f"cannot read jobs file {args.jobs}: "
                                f"{exc.strerror or exc}") from None
        base = Path(args.base) if args.base else jobs_path.parent
        with jobs_path.open(encoding="utf-8") as counting:
            total = count_jobs(counting)
    done = _finished(args.results) if args.resume else set()
    if total is not None:
        total -= len(done)
    policy = args.policy
    if policy is not None and policy not in ("default", "default+fs"):
        policy = str(Path(policy).resolve())
    modules = str(Path(args.modules).resolve()) if args.modules else None
    sink = _open_results(args.results, append=args.resume)
    show = sys.stderr.isatty() and not args.quiet
    progress = Progress(total, enabled=show)
    statuses: Counter[str] = Counter()
    results = run(_pending(read_jobs(source), done), workers=args.workers, engine=args.engine,
                  policy=policy, limits=limits, base=base, modules=modules,
                  capture=args.capture, scratch_root=args.scratch,
                  ray_address=args.ray_address)
    try:
        for result in results:
            sink.write(dumps(result) + "\n")
            sink.flush()
            statuses[result["status"]] += 1
            progress.update(statuses)
    except KeyboardInterrupt:
        results.close()  # kills the running jobs, removes their scratch directories
        progress.finish(statuses)
        written = sum(statuses.values())
        where = "" if args.results == "-" else f" to {args.results}"
        print(f"callgate batch: interrupted; {written} result(s) written{where}; run again "
              "with --resume for the rest", file=sys.stderr)
        return INTERRUPTED_EXIT
    finally:
        if sink is not sys.stdout:
            sink.close()
        if source is not sys.stdin:
            source.close()
    progress.finish(statuses)
    bad = {status: statuses[status] for status in ("error", "lost") if statuses[status]}
    if bad:
        print("callgate batch: " + ", ".join(f"{n} job(s) {status}" for status, n in
                                              bad.items()) + " (see their detail in RESULTS)",
              file=sys.stderr)
        return 1
    return 0


def _pending(lines: Iterator[Any], done: set[str]) -> Iterator[Any]:
    for line in lines:
        if line.job_id not in done:
            yield line


def _finished(path: str) -> set[str]:
    """Ids RESULTS already has a result for (a lost job does not count)."""
    done: set[str] = set()
    if path == "-":
        raise CallgateError("--resume needs RESULTS to be a file")
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as f:
        for line in f:
            try:
                result = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash: run that job again
            if isinstance(result, dict) and result.get("status") != "lost" \
                    and isinstance(result.get("id"), str):
                done.add(result["id"])
    return done


def _open_results(path: str, *, append: bool) -> IO[str]:
    if path == "-":
        return sys.stdout
    try:
        return open(path, "a" if append else "w", encoding="utf-8")
    except OSError as exc:
        raise CallgateError(f"cannot write results file {path}: "
                            f"{exc.strerror or exc}") from None


class Progress:
    """One self-rewriting stderr line: done/total, statuses, rate. Off when not a tty."""

    def __init__(self, total: int | None, *, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.started = time.monotonic()
        self.shown = 0.0

    def update(self, statuses: Counter[str], *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.shown < 0.1:
            return
        self.shown = now
        done = sum(statuses.values())
        rate = done / max(now - self.started, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        parts = " ".join(f"{status} {n}" for status, n in statuses.most_common())
        line = f"callgate batch: {done}{of} done, {rate:.1f}/s  {parts}"
        width = _columns() - 1
        sys.stderr.write("\r" + line[:width].ljust(width))
        sys.stderr.flush()

    def finish(self, statuses: Counter[str]) -> None:
        if self.enabled:
            self.update(statuses, force=True)
            sys.stderr.write("\n")
            sys.stderr.flush()


def _columns() -> int:
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        columns = 0
    return columns if columns > 20 else 80  # a pty nobody sized says 0
