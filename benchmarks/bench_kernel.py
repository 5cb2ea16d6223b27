"""Kernel layer: executed filter path length, and what a syscall costs under each filter.

Usage: ``python benchmarks/bench_kernel.py [N]`` (or through ``benchmarks/run.py``).

Path length (instructions the kernel executes per syscall, averaged over every
syscall number of the native arch, args zero; counted by callgate's reference
interpreter): callgate's compiler against libseccomp 2.5.4 at ``CTL_OPTIMIZE`` 1
(its default, a linear list) and 2 (binary tree), on the same profiles:

* the ~350-syscall Docker-like profile (``policies/examples/docker-like.json``),
  without runc's ``-ENOSYS`` stub (libseccomp cannot express it; callgate's program
  with the stub is shown too);
* the runtime baseline (``policies/runtime-baseline.toml``, 17 rules, kill by default).

Syscall cost: a forked child installs the filter (NO_NEW_PRIVS + seccomp) and times a
tight Python loop calling glibc's ``getppid()`` / ``personality()`` through cffi (ABI
mode; both wrappers are one syscall each, nothing cached):

* ``getppid``: its result never depends on args, so the kernel's per-arch bitmap
  (``seccomp_cache_prepare_bitmap``, Linux >= 5.11) allows it *without running the
  filter*; the rows show that: the filters cost nothing here;
* ``personality(0xffffffff)`` (query only): the profile checks arg 0 against five
  values, so the kernel must run the filter on every call.

Each figure includes the Python loop and cffi's call overhead, identical for every
filter; the ``no filter`` row is that baseline. A 1-instruction allow-all filter
shows what having seccomp on at all costs (the syscall entry's slow path, and the
speculative-execution mitigations the kernel turns on for a seccomp task by default);
each profile row's note gives its difference from both: the last is the filter's own
evaluation.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from pathlib import Path

import cffi
from common import Row, loop, measure, unavailable

from callgate.arch import Arch, native_arch
from callgate.bpf.actions import SECCOMP_RET_ALLOW
from callgate.bpf.insn import Insn
from callgate.bpf.opcodes import BPF_K, BPF_RET
from callgate.kernel.binding import install_filter, set_no_new_privs
from callgate.kernel.child import run_in_child
from callgate.policy import load_policy
from callgate.policy.compiler import compile_section
from callgate.policy.model import Section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "policy"))  # libseccomp translation shared with tests

from libseccomp_oracle import (  # noqa: E402
    AVAILABLE as LIBSECCOMP,
    average_path_length,
    libseccomp_program,
)

GROUP_PATH = "Kernel filter: executed path length per syscall"
GROUP_COST = "Kernel filter: cost of one syscall in a child"
DOCKER = ROOT / "policies" / "examples" / "docker-like.json"
BASELINE = ROOT / "policies" / "runtime-baseline.toml"
PERSONALITY_QUERY = 0xFFFFFFFF

# glibc's plain wrappers (each one syscall, no caching): cffi calls a fixed-arity function
# several times faster than the variadic syscall(), so less of each figure is Python.
ffi = cffi.FFI()
ffi.cdef("int getppid(void); int personality(unsigned long persona);")
libc = ffi.dlopen(None)


def profiles(arch: Arch) -> list[tuple[str, Section]]:
    docker = load_policy(DOCKER, arch=arch.name).kernel
    return [
        ("Docker-like profile", dataclasses.replace(docker, enosys_above=None)),
        ("runtime baseline", load_policy(BASELINE).kernel),
    ]


def _path_row(name: str, program: list[Insn], arch: Arch, baseline: str | None,
              note: str = "") -> Row:
    count = len(set(arch.numbers.values()))
    return Row(name, average_path_length(program, arch), count, 1,
               f"{len(program)} insns long{'; ' + note if note else ''}", baseline,
               GROUP_PATH, "insns")


def path_rows(arch: Arch) -> list[Row]:
    rows = []
    for label, section in profiles(arch):
        theirs2 = f"{label}: libseccomp optimize=2"
        rows.append(_path_row(f"{label}: callgate", compile_section(section, arch), arch,
                              theirs2))
        if label.startswith("Docker"):
            docker = load_policy(DOCKER, arch=arch.name).kernel
            rows.append(_path_row(f"{label}: callgate with runc's -ENOSYS stub",
                                  compile_section(docker, arch), arch, theirs2,
                                  "libseccomp cannot express the stub"))
        if not LIBSECCOMP:
            rows += [unavailable(f"{label}: libseccomp optimize={level}",
                                 "pyseccomp is not installed", group=GROUP_PATH, unit="insns")
                     for level in (2, 1)]
            continue
        rows.append(_path_row(theirs2, libseccomp_program(section, arch, optimize=2), arch,
                              None))
        rows.append(_path_row(f"{label}: libseccomp optimize=1",
                              libseccomp_program(section, arch, optimize=1), arch, theirs2,
                              "libseccomp's default"))
    return rows


def _time_syscalls(program: list[Insn] | None, inner: int, repeats: int) -> dict[str, float]:
    """In a child: install ``program`` (if any), then time getppid and personality loops."""
    calls = {
        "getppid": libc.getppid,
        "personality(0xffffffff)": lambda: libc.personality(PERSONALITY_QUERY),
    }
    if program is not None:
        set_no_new_privs()
        install_filter(program)
    out = {}
    for label, call in calls.items():
        if call() == -1:
            raise RuntimeError(f"{label} failed under the filter: errno {ffi.errno}")
        out[label] = measure(loop(call), inner=inner, repeats=repeats)[0]
    return out


def cost_rows(arch: Arch, n: int) -> list[Row]:

    repeats = 11 if n >= 10_000 else 3
    docker = profiles(arch)[0][1]
    filters: dict[str, list[Insn] | str | None] = {
        "no filter": None,
        "1-insn allow-all filter": [Insn(BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW)],
        "callgate filter": compile_section(docker, arch),
    }
    for level in (2, 1):
        filters[f"libseccomp optimize={level}"] = (
            libseccomp_program(docker, arch, optimize=level) if LIBSECCOMP
            else "pyseccomp is not installed")
    # Interleaved rounds, one child per filter per round, so load from other processes on
    # this machine lands on every filter alike; each round gives one sample per filter.
    samples: dict[str, dict[str, list[float]]] = {}
    for _ in range(repeats):
        for label, program in filters.items():
            if isinstance(program, str):
                continue
            result = run_in_child(lambda p=program: _time_syscalls(p, n, 3), timeout=120)
            for call, value in result.unwrap().items():
                samples.setdefault(label, {}).setdefault(call, []).append(value)
    measured = {label: {call: statistics.median(values) for call, values in calls.items()}
                for label, calls in samples.items()}
    rows = []
    for call in ("getppid", "personality(0xffffffff)"):
        base_name = f"{call}: no filter"
        for label, program in filters.items():
            name = f"{call}: {label}"
            if isinstance(program, str):
                rows.append(unavailable(name, program, group=GROUP_COST))
                continue
            value = measured[label][call]
            baseline = None if program is None else base_name
            if program is None:
                note = "Python loop + cffi call + syscall: the baseline"
            elif len(program) == 1:
                extra = value - measured["no filter"][call]
                note = f"seccomp on at all (entry slow path, mitigations): {extra:+.0f} ns"
            else:
                extra = value - measured["no filter"][call]
                own = value - measured["1-insn allow-all filter"][call]
                note = (f"Docker-like profile, {len(program)} insns: {extra:+.0f} ns vs no "
                        f"filter, {own:+.0f} ns vs allow-all")
            rows.append(Row(name, value, n, repeats, note, baseline, GROUP_COST,
                            samples=tuple(samples[label][call])))
    return rows


def run(n: int) -> list[Row]:
    """Path rows, then syscall-cost rows with ``n`` syscalls per sample."""
    arch = native_arch()
    return path_rows(arch) + cost_rows(arch, n)


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000):
        print(f"{row.name:60} {row.median_ns or 0:10.2f} {row.unit}  {row.note}")
