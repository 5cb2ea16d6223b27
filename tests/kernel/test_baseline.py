"""The shipped baseline against a fresh measurement: strace of the steady-state host loop."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import require

from callgate.kernel.hostpolicy import load_baseline
from callgate.learn.baseline import END_MARKER, measure, steady_state


def test_every_measured_steady_state_syscall_is_in_the_baseline():
    require(shutil.which("strace") is not None, "strace")
    during, after = measure(rounds=5)
    baseline = {name for rule in load_baseline().rules for name in rule.names}
    assert {"futex", "mmap", "rt_sigreturn"} <= set(during)  # the loop really ran
    assert set(during) <= baseline, f"missing from the baseline: {set(during) - baseline}"
    assert set(after) <= baseline, f"exit needs: {set(after) - baseline}"


def test_the_loops_guests_are_links_to_the_built_guests():
    """The package's copies of the loop's guests (package data, for a wheel) are links to
    guests/wasm, the files guests/build.py writes and checks: one copy, no drift."""
    root = Path(__file__).resolve().parents[2]
    shipped = sorted((root / "callgate" / "learn" / "baseline_guests").iterdir())
    assert shipped
    for link in shipped:
        assert link.is_symlink(), f"{link} must be a link to guests/wasm/{link.name}"
        assert link.resolve() == root / "guests" / "wasm" / link.name


def test_trace_parser_brackets_the_steady_state():
    trace = "\n".join(
        [
            '10 openat(AT_FDCWD, "x", O_RDONLY) = 3',
            "10 syscall_0x3e8(0, 0, 0, 0, 0, 0) = -1 ENOSYS (Function not implemented)",
            "10 brk(NULL) = 0x1000",
            "11 futex(0x1, FUTEX_WAIT_PRIVATE, 0, NULL <unfinished ...>",
            "11 <... futex resumed>) = 0",
            "10 --- SIGSEGV {si_signo=SIGSEGV} ---",
            "10 rt_sigreturn({mask=[]}) = 0",
            f"10 syscall_{END_MARKER:#x}(0, 0, 0, 0, 0, 0) = -1 ENOSYS",
            "10 exit_group(0) = ?",
        ]
    )
    during, after = steady_state(trace)
    assert dict(during) == {"brk": 1, "futex": 2, "rt_sigreturn": 1}
    assert dict(after) == {"exit_group": 1}
