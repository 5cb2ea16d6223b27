"""Running the learning run in its own process, its host syscalls watched from outside.

The parent (``callgate learn``) writes a request, starts :mod:`callgate.learn.child` -
under ``strace -f``, or supervising its USER_NOTIF filter, when the ``[kernel]`` section
is to be learned (:mod:`.kernel_trace`) - waits for it, and reads back the
:class:`~callgate.learn.recorder.Recording` and the host syscalls.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from callgate.gates.wasi import WasiConfig
from callgate.learn.kernel_trace import (
    choose_method,
    run_syscalls,
    traced_command,
    watch_notifications,
)
from callgate.learn.recorder import LearningFailed, Recording
from callgate.runtime.limits import Limits


@dataclass(frozen=True, slots=True)
class LearningRun:
    """The recorded gate calls and, when watched, the host syscalls of the run's steady state.

    ``method`` says how the syscalls were watched (``strace``, ``user_notif``), or None.
    """

    recording: Recording
    syscalls: collections.Counter[str] | None
    method: str | None


def run_learning(module: str | os.PathLike[str], config: WasiConfig, limits: Limits, *,
                 kernel: str | None = "auto", stdout: IO[str] | int | None = None
                 ) -> LearningRun:
    """Run ``module``'s ``_start`` once in a child process with every gate recorded.

    ``config`` gives args, env and preopens (the child's stdio is inherited, except that
    the guest's stdout goes to ``stdout`` when given). ``kernel`` says how to watch the
    child's host syscalls (``auto``, ``strace``, ``user_notif``; None: not at all).
    """
    watch = choose_method(kernel) if kernel is not None else None
    with tempfile.TemporaryDirectory(prefix="callgate-learn-") as tmp:
        work = Path(tmp)
        request, result, trace = work / "request.json", work / "result.json", work / "trace"
        request.write_text(json.dumps({
            "module": os.fspath(module),
            "args": list(config.args),
            "env": dict(config.env),
            "preopens": [[os.fspath(p.host), p.guest, p.readonly] for p in config.preopens],
            "limits": dataclasses.asdict(limits),
            "watch": watch,
        }))
        argv = [sys.executable, "-m", "callgate.learn.child", str(request), str(result)]
        command = traced_command(argv, trace) if watch == "strace" else argv
        syscalls: collections.Counter[str] | None = None
        with subprocess.Popen(command, stdout=stdout) as proc:
            try:
                if watch == "user_notif":
                    syscalls = watch_notifications(proc)
                proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
        if not result.exists():
            raise LearningFailed(f"the learning run's process ended with status "
                                 f"{proc.returncode} before reporting; no policy was written")
        answer = json.loads(result.read_text())
        if "error" in answer:
            raise LearningFailed(answer["error"])
        if watch == "strace":
            syscalls = run_syscalls(trace)
        return LearningRun(Recording.from_json(answer["recording"]), syscalls, watch)
