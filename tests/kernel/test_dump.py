"""``callgate dump PID``: the filters of a live process, as ``disasm`` prints them.

The acceptance test dumps a running ``callgate run --kernel`` and requires, line for
line, what ``callgate kernel policy default --format asm`` prints for the same host
policy; the process must live on after the dump (a ptrace stop interrupts its waits,
which the kernel resumes with ``restart_syscall``). Reading filters needs root
(CAP_SYS_ADMIN and CAP_SYS_PTRACE): without it these tests skip, and fail under CI=true.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import require

from callgate.asm.assembler import assemble
from callgate.bpf.insn import pack

ROOT = Path(__file__).resolve().parents[2]
CALLGATE = [sys.executable, "-m", "callgate"]


@pytest.fixture(autouse=True)
def root_only() -> None:
    require(os.geteuid() == 0, "root (CAP_SYS_ADMIN and CAP_SYS_PTRACE, to read filters)")


def callgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CALLGATE, *args], cwd=ROOT, text=True, capture_output=True,
                          timeout=120, check=False)


def filters_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Seccomp_filters:"):
                return int(line.split()[1])
    return 0


def wait_for_filters(proc: subprocess.Popen[bytes], count: int) -> None:
    deadline = time.monotonic() + 60
    while filters_of(proc.pid) < count:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        assert time.monotonic() < deadline, "the process never installed its filter"
        time.sleep(0.05)


def test_dump_a_live_run_kernel_process_as_kernel_policy_compiles_it() -> None:
    proc = subprocess.Popen([*CALLGATE, "run", "--kernel", "guests/wasm/cat.wasm"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        wait_for_filters(proc, 1)
        time.sleep(0.3)  # let cat block in its read: the dump must interrupt a wait
        dumped = callgate("dump", str(proc.pid))
        expected = callgate("kernel", "policy", "default", "--format", "asm")
        assert dumped.returncode == 0, dumped.stderr
        assert expected.returncode == 0, expected.stderr
        assert dumped.stdout.splitlines() == expected.stdout.splitlines()
        # ... and the process lives on: it still echoes its input and exits 0
        out, err = proc.communicate(b"still here\n", timeout=60)
        assert (proc.returncode, out) == (0, b"still here\n"), err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


TWO_FILTERS = textwrap.dedent("""
    import sys, time
    from callgate.asm.assembler import assemble
    from callgate.arch import native_arch
    from callgate.kernel.binding import install_filter, set_no_new_privs
    arch = native_arch()
    set_no_new_privs()
    for text in sys.argv[1:]:
        install_filter(assemble(text, arch))
    print("ready", flush=True)
    time.sleep(60)
""")
FIRST = "A = sys_number\nA == 62 ? dead : next\nreturn ALLOW\ndead:\nreturn KILL_PROCESS\n"
SECOND = "A = arch\nA == ARCH_X86_64 ? next : dead\nreturn ALLOW\ndead:\nreturn KILL\n"


def test_several_filters_newest_first_each_reassembling_to_its_bytes(tmp_path: Path) -> None:
    from callgate.arch import native_arch

    if native_arch().name != "x86_64":
        pytest.skip("the filters here are written for x86_64")
    proc = subprocess.Popen([sys.executable, "-c", TWO_FILTERS, FIRST, SECOND],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        done = callgate("dump", str(proc.pid))
        assert done.returncode == 0, done.stderr
        headers = [line for line in done.stdout.splitlines() if line.startswith("# filter")]
        assert headers == ["# filter 0 of 2 (0: installed first), 4 instructions",
                           "# filter 1 of 2 (0: installed first), 4 instructions"]
        arch = native_arch()
        for index, text in ((0, FIRST), (1, SECOND)):
            one = callgate("dump", str(proc.pid), "--index", str(index))
            assert one.returncode == 0, one.stderr
            assert pack(assemble(one.stdout, arch)) == pack(assemble(text, arch))
            raw = tmp_path / f"f{index}.bpf"
            assert callgate("dump", str(proc.pid), "-i", str(index), "-o", str(raw)).returncode == 0
            assert raw.read_bytes() == pack(assemble(text, arch))
        assert proc.poll() is None  # still running after three dumps
    finally:
        proc.kill()
        proc.wait()


def test_errors_are_one_line() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        done = callgate("dump", str(sleeper.pid))
        assert done.returncode == 2
        assert done.stderr == f"callgate dump: process {sleeper.pid} has no seccomp filter\n"
        done = callgate("dump", str(sleeper.pid), "--index", "3")
        assert done.returncode == 2 and done.stderr.count("\n") == 1
    finally:
        sleeper.kill()
        sleeper.wait()
    done = callgate("dump", "0")
    assert done.returncode == 2 and "not a process id" in done.stderr
    done = callgate("dump", "4194304")  # above pid_max's ceiling: never a process
    assert done.returncode == 2 and done.stderr.startswith("callgate dump: ")
    assert "no process 4194304" in done.stderr
