"""``callgate doctor``: which path this installation runs gate calls on, and why.

callgate's native core (``callgate/native/``, C built at install time) runs the gate
filter, ERRNO/KILL verdicts and the hot WASI gates without Python, and ticks deadlines
without the GIL; without it (no C compiler at install, or ``CALLGATE_PURE_PYTHON=1``)
the pure-Python twins decide every call the same way, slower. ``doctor`` prints which
path is active, the core's file or the reason it is not used, and what runs in C.
Exit status 0, or 1 with ``--require-native`` on the pure-Python path (for CI and
packaging checks, like ``python -m callgate.native --require``).
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = subparsers.add_parser(
        "doctor",
        help="which path gate calls run on: the native core or pure Python, and why",
        description="Say whether callgate's native core (C built at install time) is in "
        "use, or why the pure-Python path runs instead (not built, a stale build, "
        "CALLGATE_PURE_PYTHON set), and what the core runs.")
    doctor.add_argument("--require-native", action="store_true",
                        help="exit 1 unless the native core is in use")
    doctor.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from callgate.native import gate as native_gate, loader

    status = loader.native_status()
    out = sys.stdout
    if status.native:
        out.write(f"gate path: native core ({status.file})\n")
        out.write("  in C, without the GIL: the gate filter (constant verdict or cBPF "
                  "interpreter), ERRNO and KILL verdicts with their counters and audit "
                  "records, the deadline ticker, and these WASI gates' bodies: "
                  f"{', '.join(native_gate.BODIES)}\n")
        out.write("  in Python: LOG/TRAP/TRACE/USER_NOTIF verdicts, every other gate, "
                  "sockets, captured or fed stdio, streams that must wait, app gates' "
                  "bodies; filter_mode='interpreter', cancellable plugins and policies "
                  "with timing options run entirely in Python\n")
    else:
        out.write(f"gate path: pure Python ({status.reason})\n")
        out.write("  every gate call is decided in Python (same decisions, slower); the "
                  "deadline ticker is a Python thread that needs the GIL\n")
    return 1 if args.require_native and not status.native else 0
