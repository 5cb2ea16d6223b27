"""Lockdown and the derived host policy, on the real kernel, each in its own process."""

from __future__ import annotations

import errno
import json
import mmap
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from callgate.arch import native_arch
from callgate.bpf.actions import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
)
from callgate.bpf.insn import Insn
from callgate.bpf.opcodes import BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W
from callgate.bpf.seccomp_data import OFF_NR
from callgate.kernel import lockdown as lockdown_mod
from callgate.kernel.binding import install_filter, raw_syscall, set_no_new_privs
from callgate.kernel.child import child_report_fd, run_in_child
from callgate.kernel.hostpolicy import derive_host_policy
from callgate.policy import load_policy_text

ARCH = native_arch()
EPERM_POLICY = '[kernel]\ndefault = "errno(EPERM)"\n'
KILL_POLICY = '[kernel]\ndefault = "kill_process"\n'


def host_program(policy_text: str, **kwargs) -> list[Insn]:
    policy = load_policy_text(policy_text).policy
    return derive_host_policy(policy, [], **kwargs).compile()


def locked(program, action):
    """A run_in_child function: lock down with ``program``, then run ``action``."""

    def child():
        lockdown_mod.lockdown(program, keep_fds=(0, 1, 2, child_report_fd()))
        return action()

    return child


# --- the sequence's steps ------------------------------------------------------------------


def test_close_fds_except_keeps_exactly_the_list():
    def child():
        r, w = os.pipe()
        extra = os.open("/dev/null", os.O_RDONLY)
        keep = (0, 2, w, child_report_fd())
        lockdown_mod.close_fds_except(keep)
        return set(lockdown_mod.held_fds()), keep, (r, extra, 1)

    fds, keep, closed = run_in_child(child).unwrap()
    assert fds == set(keep)
    assert not fds & set(closed)


def test_drop_capabilities_empties_every_set():
    def child():
        before = lockdown_mod.capabilities()
        lockdown_mod.drop_capabilities()
        after = lockdown_mod.capabilities()
        with open("/proc/self/status") as f:
            status = dict(line.split(":", 1) for line in f)
        path = f"/tmp/callgate-cap-test-{os.getpid()}"
        with open(path, "w"):
            pass
        try:
            os.chown(path, 1, 1)  # needs CAP_CHOWN
            chown = 0
        except OSError as exc:
            chown = exc.errno
        finally:
            os.unlink(path)
        return before, after, status["CapBnd"].strip(), status["CapAmb"].strip(), chown

    before, after, bounding, ambient, chown_err = run_in_child(child).unwrap()
    assert before[0] != 0, "tests run as root with capabilities"
    assert after == (0, 0, 0)
    assert int(bounding, 16) == 0 and int(ambient, 16) == 0
    assert chown_err == errno.EPERM


def test_lockdown_sets_seccomp_and_nnp_on_every_thread_including_an_earlier_one():
    script = r"""
import sys, threading, time
from callgate.kernel.hostpolicy import derive_host_policy
from callgate.kernel.lockdown import lockdown
from callgate.policy import Policy
program = derive_host_policy(Policy(), []).compile()
threading.Thread(target=lambda: time.sleep(60), daemon=True).start()
report = lockdown(program, keep_fds=(0, 1, 2))
sys.stdout.write(f"locked {report.threads}\n")
sys.stdout.flush()
time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        tasks = os.listdir(f"/proc/{proc.pid}/task")
        status = []
        for tid in tasks:
            with open(f"/proc/{proc.pid}/task/{tid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            status.append((fields["Seccomp"].strip(), fields["NoNewPrivs"].strip()))
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert line.startswith("locked ") and int(line.split()[1]) >= 2
    assert len(tasks) >= 2
    assert status == [("2", "1")] * len(tasks)


@pytest.mark.parametrize("drop_first", [False, True])
def test_lockdown_reports_threads_that_kept_their_capabilities(drop_first):
    """Capabilities are per thread: one started before drop_capabilities() keeps them,
    and the report says so; dropping first leaves no thread capable."""
    script = r"""
import json, sys, threading, time
from callgate.kernel.hostpolicy import derive_host_policy
from callgate.kernel.lockdown import drop_capabilities, lockdown
from callgate.policy import Policy
program = derive_host_policy(Policy(), []).compile()
if sys.argv[1] == "1":
    drop_capabilities()
started = threading.Event()
def idle():
    started.set()
    time.sleep(60)
threading.Thread(target=idle, daemon=True).start()
started.wait()
report = lockdown(program, keep_fds=(0, 1, 2))
sys.stdout.write(json.dumps(report.capable_threads) + "\n")
sys.stdout.flush()
time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", script, str(int(drop_first))],
                            stdout=subprocess.PIPE, text=True)
    try:
        reported = json.loads(proc.stdout.readline())
        capable = []
        for tid in os.listdir(f"/proc/{proc.pid}/task"):
            with open(f"/proc/{proc.pid}/task/{tid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["CapEff"], 16):
                capable.append(int(tid))
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert reported == sorted(capable)
    assert (reported == []) is drop_first
    assert proc.pid not in reported  # the locking thread always dropped its own


# --- the kernel stops what the host policy does not grant ------------------------------------


def _system():
    return os.system("true")


def _socket():
    return socket.socket().fileno()


def _open_passwd():
    with open("/etc/passwd") as f:
        return f.read(10)


def _execve():
    os.execv("/bin/true", ["true"])


def _fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return pid


def _mprotect_exec():
    addr, err = raw_syscall(
        ARCH.number("mmap"),
        0,
        4096,
        mmap.PROT_READ | mmap.PROT_WRITE,
        mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
        -1,
        0,
    )
    assert err == 0
    return raw_syscall(ARCH.number("mprotect"), addr, 4096, mmap.PROT_READ | mmap.PROT_EXEC)


def _mmap_wx():
    return raw_syscall(
        ARCH.number("mmap"),
        0,
        4096,
        mmap.PROT_WRITE | mmap.PROT_EXEC,
        mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
        -1,
        0,
    )


FORBIDDEN = [_system, _socket, _open_passwd, _execve, _fork, _mprotect_exec, _mmap_wx]


@pytest.mark.parametrize("action", FORBIDDEN, ids=lambda f: f.__name__.strip("_"))
def test_locked_process_is_killed_for_each_forbidden_operation(action):
    result = run_in_child(locked(host_program(KILL_POLICY), action))
    assert result.signal == signal.SIGSYS, result.describe()


def _expect_eperm(action):
    def run():
        try:
            value = action()
        except OSError as exc:
            return ("raised", exc.errno)
        return ("returned", value)

    return run


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (_system, ("returned", 127 << 8)),  # glibc: "the shell could not run" when spawn fails
        (_socket, ("raised", errno.EPERM)),
        (_open_passwd, ("raised", errno.EPERM)),
        (_execve, ("raised", errno.EPERM)),
        (_fork, ("raised", errno.EPERM)),
        (_mprotect_exec, ("returned", (-1, errno.EPERM))),
        (_mmap_wx, ("returned", (-1, errno.EPERM))),
    ],
    ids=lambda v: getattr(v, "__name__", "").strip("_") or None,
)
def test_locked_process_gets_the_configured_errno(action, expected):
    result = run_in_child(locked(host_program(EPERM_POLICY), _expect_eperm(action)))
    assert result.unwrap() == expected


def test_locked_process_still_runs_python_and_exits_cleanly():
    def work():
        data = [bytes(1 << k) for k in range(10, 24)]  # brk and mmap
        page = mmap.mmap(-1, 1 << 20)  # a read-write anonymous mapping is fine
        page[:5] = b"hello"
        return sum(len(d) for d in data), bytes(page[:5])

    result = run_in_child(locked(host_program(KILL_POLICY), work))
    assert result.unwrap() == (sum(1 << k for k in range(10, 24)), b"hello")
    assert result.exit_code == 0


def test_threads_may_be_granted_but_fork_stays_denied():
    policy = KILL_POLICY + (
        '[[kernel.rules]]\nnames = ["clone", "set_robust_list", "rseq", "getpid", "gettid"]\n'
        'action = "allow"\n'
    )
    program = host_program(policy)

    def start_thread():
        out = []
        thread = threading.Thread(target=lambda: out.append(threading.get_native_id()))
        thread.start()  # clone3 answers ENOSYS, glibc falls back to clone(CLONE_THREAD)
        thread.join()
        return out[0] != threading.get_native_id()

    assert run_in_child(locked(program, start_thread)).unwrap() is True
    assert run_in_child(locked(program, _fork)).signal == signal.SIGSYS


# --- inheritance -----------------------------------------------------------------------------


def test_a_filter_denying_uname_is_inherited_across_fork_and_execve():
    uname = ARCH.number("uname")
    program = [
        Insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, OFF_NR),
        Insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, uname),
        Insn(BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
        Insn(BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW),
    ]

    def child():
        set_no_new_privs()
        install_filter(program)
        forked = run_in_child(os.uname)
        ran = subprocess.run(["/bin/uname"], capture_output=True, text=True)
        return forked.error, ran.returncode, ran.stderr

    forked_error, code, stderr = run_in_child(child).unwrap()
    assert "PermissionError" in forked_error
    assert code != 0 and "Operation not permitted" in stderr
    assert subprocess.run(["/bin/uname"], capture_output=True).returncode == 0


def test_lockdown_errors_are_typed():
    def child():
        try:
            lockdown_mod.lockdown(
                [Insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, OFF_NR)],
                keep_fds=(0, 1, 2, child_report_fd()),
            )
        except OSError as exc:
            return type(exc).__name__, exc.errno
        return None

    assert run_in_child(child).unwrap() == ("SeccompInstallError", errno.EINVAL)


def test_lock_host_grants_the_allowed_gates_syscalls_and_nothing_else():
    from callgate.gates.spec import GateSpec

    gate = GateSpec(
        module="callgate",
        name="whoami",
        number=0x1000,
        params=(),
        results=("i32",),
        func=lambda call: 0,
        errno_results=lambda n: (n,),
        syscalls=frozenset({"uname"}),
    )
    text = '[gates]\ndefault = "allow"\n[kernel]\ndefault = "errno(EPERM)"\nflags = ["log"]\n'
    policy = load_policy_text(text, gate_names=["whoami"]).policy

    def child():
        host, report = lockdown_mod.lock_host(policy, [gate], keep_fds=(0, 1, 2, child_report_fd()))
        assert report.filter_instructions == len(host.compile())
        return (
            host.reasons["uname"],
            raw_syscall(ARCH.number("uname"), 0)[1],
            raw_syscall(ARCH.number("getppid")),
        )

    reasons, uname_err, getppid = run_in_child(child).unwrap()
    assert reasons == ("gate callgate.whoami",)
    assert uname_err == errno.EFAULT  # it reached the kernel, which found no buffer
    assert getppid == (-1, errno.EPERM)


def test_unknown_filter_flag_is_refused():
    with pytest.raises(lockdown_mod.LockdownError, match="unknown seccomp filter flag"):
        lockdown_mod.filter_flags(["SECCOMP_FILTER_FLAG_BOGUS"])
    assert lockdown_mod.filter_flags(["SECCOMP_FILTER_FLAG_LOG"]) == 2


def run_fresh_python(script: str, *args: str) -> object:
    """Run ``script`` in a new interpreter and return the value it prints as JSON.

    Wasm work cannot go through a forked child once this pytest process has compiled
    a module: wasmtime's compile thread pool does not survive fork, so a child that
    compiles again hangs or crashes. A fresh interpreter has no such history.
    """
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_a_wasmtime_host_keeps_working_under_the_baseline_alone():
    """Compile and instantiate, lock down with no grants beyond the baseline, then run:
    host calls, memory.grow, both kinds of trap, and a fresh instance."""
    script = r"""
import json, wasmtime
from callgate.kernel import lockdown
from callgate.learn.baseline import GUEST_WAT
from callgate.policy import Policy
engine = wasmtime.Engine()
module = wasmtime.Module(engine, wasmtime.wat2wasm(GUEST_WAT))
linker = wasmtime.Linker(engine)
i32 = wasmtime.ValType.i32()
linker.define_func("env", "host", wasmtime.FuncType([i32], [i32]), lambda x: x * 2)
store = wasmtime.Store(engine)
exports = linker.instantiate(store, module).exports(store)
lockdown.lock_host(Policy(), [], keep_fds=(0, 1, 2))
out = [exports["run"](store, 100), exports["grow"](store)]
for name in ("oob", "unreachable"):
    try:
        exports[name](store)
    except wasmtime.Trap as trap:
        out.append(trap.trap_code.name)
fresh = wasmtime.Store(engine)
out.append(linker.instantiate(fresh, module).exports(fresh)["run"](fresh, 10))
print(json.dumps(out))
"""
    assert run_fresh_python(script) == [
        sum(2 * n for n in range(1, 101)),
        1,
        "MEMORY_OUT_OF_BOUNDS",
        "UNREACHABLE",
        110,
    ]


def test_lock_plugin_seals_an_embedded_wasi_plugin(tmp_path):
    from pathlib import Path

    guests = Path(__file__).resolve().parents[2] / "guests" / "wasm"
    (tmp_path / "in.txt").write_text("read after lockdown\n")
    script = r"""
import json, os, sys
from callgate.arch import native_arch
from callgate.gates.wasi import Preopen, WasiConfig, WasiProvider
from callgate.kernel import lockdown
from callgate.kernel.binding import raw_syscall
from callgate.runtime import Plugin
guest, data = sys.argv[1], sys.argv[2]
fs_policy = '[gates]\ndefault = "allow"\n[kernel]\ndefault = "errno(EPERM)"\n'
out = bytearray()
config = WasiConfig(args=["cat", "/d/in.txt"], preopens=[Preopen(data, "/d")], stdout=out)
plugin = Plugin(guest, policy=fs_policy, providers=[WasiProvider(config)])
report = lockdown.lock_plugin(plugin, fs_policy)
plugin.call_int("_start")
denied = raw_syscall(native_arch().number("socket"), 2, 1, 0)
print(json.dumps([out.decode(), len(report.held_fds), list(denied)]))
"""
    out, held, denied = run_fresh_python(script, str(guests / "cat.wasm"), str(tmp_path))
    assert out == "read after lockdown\n"
    assert held == 4  # stdio and the preopened directory
    assert denied == [-1, errno.EPERM]
