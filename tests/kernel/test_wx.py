"""W^X after lockdown (issue 12, item 2): no mapping stays writable and executable.

The gate trampolines are ctypes (libffi) closures in an anonymous ``rwxp`` page. Before
the fix that page outlived ``--kernel`` lockdown, and a broker wrote ``mov eax, 1337; ret``
into it and ran it. Every test here reads ``/proc/<pid>/maps`` after a real lockdown.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from callgate.kernel import lockdown as lockdown_mod
from callgate.kernel.child import child_report_fd, run_in_child
from callgate.kernel.hostpolicy import derive_host_policy
from callgate.kernel.wx import Mapping, wx_violations
from callgate.policy import load_policy_text

HERE = Path(__file__).resolve().parent
GUESTS = HERE.parents[1] / "guests" / "wasm"
CODE = bytes.fromhex("b839050000c3")  # mov eax, 1337; ret
PAGE = mmap.PAGESIZE
# Everything allowed except what the host policy always denies, W^X included: the child
# can still open /proc/self/maps after lockdown.
ALLOW_ALL = derive_host_policy(load_policy_text('[kernel]\ndefault = "allow"\n').policy, [])


def wx_lines(maps_text: str) -> list[str]:
    """The lines of a maps file whose mapping is writable and executable."""
    return [line for line in maps_text.splitlines() if line.split()[1][1:3] == "wx"]


def contains(maps_line: str, address: int) -> bool:
    start, end = (int(x, 16) for x in maps_line.split()[0].split("-"))
    return start <= address < end


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def load_code_into(address: int) -> tuple[int, int]:
    """``read()`` CODE from a pipe straight into ``address``: the kernel's copy to user
    memory either writes the code there or fails with EFAULT. ``(ret, errno)``."""
    libc = ctypes.CDLL(None, use_errno=True)
    r, w = os.pipe()
    try:
        os.write(w, CODE)
        ret = libc.read(r, ctypes.c_void_p(address), len(CODE))
        return ret, ctypes.get_errno() if ret < 0 else 0
    finally:
        os.close(r)
        os.close(w)


def _callbacks_then_lockdown() -> tuple[object, object, object, int]:
    """Make a ctypes and a cffi callback (wasmtime-py adds its own), then lock down."""
    import cffi
    import wasmtime  # noqa: F401  # its trampolines are libffi closures too

    by_ctypes = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)
    ffi = cffi.FFI()
    by_cffi = ffi.callback("int(int)", lambda x: x * 2)
    page = ctypes.cast(by_ctypes, ctypes.c_void_p).value & ~(PAGE - 1)
    report = lockdown_mod.lockdown(ALLOW_ALL.compile(), keep_fds=(0, 1, 2, child_report_fd()))
    return report, by_ctypes, (ffi, by_cffi), page


# --- lockdown in a forked child --------------------------------------------------------------


def test_lockdown_leaves_no_writable_executable_mapping_and_the_report_says_so():
    def child():
        before = wx_lines(read_text("/proc/self/maps"))
        report, by_ctypes, (_ffi, by_cffi), page = _callbacks_then_lockdown()
        maps = read_text("/proc/self/maps")
        trampolines = [line for line in maps.splitlines() if contains(line, page)]
        return {
            "before": before,
            "after": wx_lines(maps),
            "sealed": list(report.wx.sealed),
            "remaining": list(report.wx.remaining),
            "holds": report.wx.holds,
            "pinned": report.wx.pinned,
            "trampoline_page": trampolines,
            "calls": [by_ctypes(41), by_cffi(21)],  # sealed read+exec, they still run
            "write": load_code_into(page),
        }

    seen = run_in_child(child).unwrap()
    assert seen["after"] == []
    assert seen["remaining"] == [] and seen["holds"]
    assert seen["pinned"] >= 2  # ours, cffi's, and wasmtime-py's trampolines
    assert seen["sealed"], "libffi made its closure page writable and executable"
    assert all(entry.split(" -> ")[1] == "r-xp" for entry in seen["sealed"])
    assert [line.split()[1] for line in seen["trampoline_page"]] == ["r-xp"]
    assert seen["calls"] == [42, 42]
    assert tuple(seen["write"]) == (-1, errno.EFAULT)


def test_writing_code_into_the_former_rwx_page_faults_instead_of_running():
    def child():
        _report, _by_ctypes, _cffi, page = _callbacks_then_lockdown()
        ctypes.memmove(page, CODE, len(CODE))  # SIGSEGV: the page is read+exec now
        return ctypes.CFUNCTYPE(ctypes.c_int)(page)()  # 1337 before the fix

    result = run_in_child(child)
    assert result.value != 1337
    assert result.signal == signal.SIGSEGV, result.describe()


def test_callbacks_made_after_lockdown_are_refused_not_a_crash():
    def child():
        import _ctypes

        _callbacks_then_lockdown()
        refused = []
        for make in (
            lambda: ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x),  # a cached type
            lambda: ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_char_p)(lambda s: 1.0),  # new
            lambda: __import__("cffi").FFI().callback("int(int)", lambda x: x),
        ):
            try:
                make()
                refused.append(None)
            except Exception as exc:
                refused.append(type(exc).__name__)
        # Function pointers that need no closure still construct.
        libc = ctypes.CDLL(None)
        fn = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.cast(libc.getpid, ctypes.c_void_p).value)
        empty = ctypes.cast(0, ctypes.CFUNCTYPE(None))
        return refused, fn() == os.getpid(), bool(empty), isinstance(fn, _ctypes.CFuncPtr)

    refused, pid_ok, empty, is_funcptr = run_in_child(child).unwrap()
    assert refused == ["CallbackSealedError"] * 3
    assert pid_ok and not empty and is_funcptr


def test_a_writable_shared_alias_of_code_is_made_read_only():
    """libffi's double mapping (SELinux systems): one memfd mapped read+exec and
    read+write. The writable view is a second address for the same code."""

    def child():
        fd = os.memfd_create("cg-alias")
        os.ftruncate(fd, PAGE)
        code = mmap.mmap(fd, PAGE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_EXEC)
        data = mmap.mmap(fd, PAGE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        addresses = {ctypes.addressof(ctypes.c_char.from_buffer(data))}
        report = lockdown_mod.lockdown(ALLOW_ALL.compile(), keep_fds=(0, 1, 2, child_report_fd()))
        maps = read_text("/proc/self/maps").splitlines()
        views = sorted(line.split()[1] for line in maps if "cg-alias" in line)
        write = load_code_into(min(addresses))
        code.close()
        return views, list(report.wx.sealed), write

    views, sealed, write = run_in_child(child).unwrap()
    assert views == ["r--s", "r-xs"]
    assert any("cg-alias" in entry and entry.endswith("-> r--s") for entry in sealed)
    assert write == (-1, errno.EFAULT)


def test_read_implies_exec_refuses_lockdown():
    def child():
        from callgate.arch import native_arch
        from callgate.kernel.binding import raw_syscall

        raw_syscall(native_arch().number("personality"), 0x0400000)  # READ_IMPLIES_EXEC
        try:
            lockdown_mod.lockdown(ALLOW_ALL.compile(), keep_fds=(0, 1, 2, child_report_fd()))
        except lockdown_mod.LockdownError as exc:
            return str(exc)
        return None

    assert "READ_IMPLIES_EXEC" in (run_in_child(child).unwrap() or "")


def test_wx_violations_from_maps_lines():
    def m(perms: str, inode: int = 0, path: str = "") -> Mapping:
        return Mapping(0x1000, 0x2000, perms, 0, "00:01" if inode else "00:00", inode, path)

    lib_text, lib_data = m("r-xp", 7, "/usr/lib/x.so"), m("rw-p", 7, "/usr/lib/x.so")
    jit, heap = m("r-xp"), m("rw-p", path="[heap]")
    closures = m("rwxp")
    code, alias = m("r-xs", 9, "/memfd:libffi (deleted)"), m("rw-s", 9, "/memfd:libffi (deleted)")
    other_shared = m("rw-s", 11, "/dev/shm/x")
    maps = [lib_text, lib_data, jit, heap, closures, code, alias, other_shared]
    assert wx_violations(maps) == (closures, alias)


# --- a fresh interpreter: a real plugin, lock_plugin, and a normal exit ----------------------


def test_lock_plugin_seals_the_gate_trampolines_and_exits_cleanly():
    script = r"""
import ctypes, gc, json, sys
from callgate.gates.wasi import WasiConfig, WasiProvider
from callgate.kernel import lockdown
from callgate.runtime import Plugin
from callgate.runtime.backend import CALLBACK
policy = '[gates]\ndefault = "allow"\n[kernel]\ndefault = "errno(EPERM)"\n'
out = bytearray()
plugin = Plugin(sys.argv[1], policy=policy,
                providers=[WasiProvider(WasiConfig(args=["envargs", "x"], stdout=out))])
gates = [o for o in gc.get_objects() if isinstance(o, CALLBACK)]
pages = sorted({ctypes.cast(g, ctypes.c_void_p).value & ~4095 for g in gates})
with open("/proc/self/maps") as f:
    before = [l for l in f.read().splitlines() if l.split()[1][1:3] == "wx"]
report = lockdown.lock_plugin(plugin, policy)
try:
    plugin.call_int("_start")
except Exception as exc:
    assert type(exc).__name__ == "GuestExit", exc
try:
    CALLBACK(lambda *a: None)
    refused = None
except Exception as exc:
    refused = type(exc).__name__
plugin.close()
del plugin, gates
gc.collect()
print(json.dumps([before, [hex(p) for p in pages], list(report.wx.sealed), report.wx.holds,
                  out.decode(), refused]))
sys.exit(7)  # interpreter shutdown frees everything it can: no closure may be among it
"""
    proc = subprocess.run([sys.executable, "-c", script, str(GUESTS / "envargs.wasm")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7, proc.stderr
    before, pages, sealed, holds, out, refused = json.loads(proc.stdout.splitlines()[-1])
    assert before, "the gate trampolines start out in an rwx page"
    assert pages, "the plugin's gates are ctypes callbacks"
    sealed_starts = {entry.split("-")[0] for entry in sealed}
    assert {line.split("-")[0] for line in before} <= sealed_starts
    assert holds
    assert "argv[1]=x" in out
    assert refused == "CallbackSealedError"


# --- the CLI and the worker, with a broker that reads maps and tries to inject code ----------

BROKER = textwrap.dedent("""
    import ctypes, errno, gc, os, sys
    from callgate import ALLOW
    from callgate.runtime.backend import CALLBACK

    CODE_LENGTH = 6  # the test feeds "mov eax, 1337; ret" on stdin
    LIBC = ctypes.CDLL(None, use_errno=True)
    SYS_OPENAT2, AT_FDCWD = 437, -100  # the same number on every arch

    class OpenHow(ctypes.Structure):
        _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                    ("resolve", ctypes.c_uint64)]

    def say(text):
        print("wx-broker: " + text, file=sys.stderr, flush=True)

    def read_all(path):
        # openat2/read/close: what a host locked for path_open may still do (openat is gone)
        how = OpenHow(os.O_RDONLY, 0, 0)
        fd = LIBC.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_long(AT_FDCWD), path.encode(),
                          ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd < 0:
            raise OSError(ctypes.get_errno(), f"openat2 {path}")
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks).decode()
        finally:
            os.close(fd)

    def wx(maps):
        return [line for line in maps.splitlines() if line.split()[1][1:3] == "wx"]

    def inject(request):
        \"\"\"In the locked host: report w+x mappings, then write code where the gates are.\"\"\"
        say(f"wx {wx(read_all('/proc/self/maps'))}")
        gate = next(o for o in gc.get_objects() if isinstance(o, CALLBACK))
        page = ctypes.cast(gate, ctypes.c_void_p).value & ~4095
        ret = LIBC.read(0, ctypes.c_void_p(page), CODE_LENGTH)
        say(f"read into the gate page: {ret} {errno.errorcode.get(ctypes.get_errno())}")
        say("memmove")
        ctypes.memmove(page, bytes.fromhex("b839050000c3"), CODE_LENGTH)
        say(f"injected code returned {ctypes.CFUNCTYPE(ctypes.c_int)(page)()}")
        return ALLOW

    def through_proc_mem(request):
        \"\"\"Write the code through /proc/self/mem, which ignores page protections.\"\"\"
        gate = next(o for o in gc.get_objects() if isinstance(o, CALLBACK))
        page = ctypes.cast(gate, ctypes.c_void_p).value & ~4095
        how = OpenHow(os.O_RDWR, 0, 0)
        fd = LIBC.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_long(AT_FDCWD), b"/proc/self/mem",
                          ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        say(f"open /proc/self/mem: {fd} {errno.errorcode.get(ctypes.get_errno())}")
        code = bytes.fromhex("b839050000c3")
        if fd >= 0 and LIBC.pwrite(fd, code, len(code), ctypes.c_long(page)) == len(code):
            say(f"injected code returned {ctypes.CFUNCTYPE(ctypes.c_int)(page)()}")
        return ALLOW

    def worker_maps(request):
        \"\"\"In the parent of an isolated worker (locked, waiting for this answer).\"\"\"
        kids = [int(pid) for tid in os.listdir("/proc/self/task")
                for pid in read_all(f"/proc/self/task/{tid}/children").split()]
        for pid in kids:
            maps = read_all(f"/proc/{pid}/maps")
            status = read_all(f"/proc/{pid}/status")
            seccomp = [l.split()[1] for l in status.splitlines() if l.startswith("Seccomp:")]
            say(f"worker seccomp {seccomp} maps {len(maps.splitlines())} wx {wx(maps)}")
        return ALLOW
""")

TRAP_OPEN = (
    '[gates]\ndefault = "errno(ENOSYS)"\n'
    '[[gates.rules]]\nnames = ["args_sizes_get", "args_get", "proc_exit", "fd_prestat_get", '
    '"fd_prestat_dir_name", "fd_fdstat_get", "fd_read", "fd_close", "fd_write"]\n'
    'action = "allow"\n'
    '[[gates.rules]]\nnames = ["path_open"]\naction = "trap"\n'
    # The brokers read /proc/self/maps after lockdown; Landlock allows no other path.
    '[landlock]\nread = ["/proc"]\n'
)


@pytest.fixture
def cli_setup(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("gated\n")
    (tmp_path / "cg_wx_broker.py").write_text(BROKER)
    (tmp_path / "policy.toml").write_text(TRAP_OPEN)
    path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    args = ["--policy", str(tmp_path / "policy.toml"), "--dir", f"{tmp_path / 'data'}::/d"]
    return env, args


def callgate_run(env, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "callgate", "run", *args], env=env,
                          input=stdin, capture_output=True, timeout=120)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(),
                                       done.stderr.decode())


def test_run_kernel_a_broker_finds_no_wx_mapping_and_cannot_write_code(cli_setup):
    env, args = cli_setup
    done = callgate_run(env, str(GUESTS / "cat.wasm"), "--kernel", *args,
                        "--broker", "cg_wx_broker:inject", "--", "/d/in.txt", stdin=CODE)
    said = [line for line in done.stderr.splitlines() if line.startswith("wx-broker: ")]
    assert said[:1] == ["wx-broker: wx []"], done.stderr
    assert "wx-broker: read into the gate page: -1 EFAULT" in said
    assert not any("injected code returned" in line for line in said)
    assert done.returncode == -signal.SIGSEGV, done.stderr  # the memmove faulted


def test_run_isolate_the_locked_worker_has_no_wx_mapping(cli_setup):
    env, args = cli_setup
    done = callgate_run(env, str(GUESTS / "cat.wasm"), "--isolate", *args,
                        "--broker", "cg_wx_broker:worker_maps", "--", "/d/in.txt")
    assert (done.returncode, done.stdout) == (0, "gated\n"), done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("wx-broker: worker")]
    assert len(said) == 1, done.stderr
    assert said[0].startswith("wx-broker: worker seccomp ['2'] maps ")
    assert said[0].endswith(" wx []")


def test_run_kernel_exit_statuses_are_unchanged(tmp_path):
    """Interpreter shutdown after lockdown frees the plugin but never a sealed closure."""
    policy = tmp_path / "kill.toml"
    policy.write_text('[gates]\ndefault = "allow"\n'
                      '[[gates.rules]]\nnames = ["args_get"]\naction = "kill_process"\n')
    env = dict(os.environ)
    done = callgate_run(env, str(GUESTS / "envargs.wasm"), "--kernel", "--", "a")
    assert (done.returncode, done.stderr) == (0, "")
    assert "argv[1]=a" in done.stdout
    killed = callgate_run(env, str(GUESTS / "envargs.wasm"), "--kernel", "--policy", str(policy))
    assert killed.returncode == 159, killed.stderr
    assert "gate args_get" in killed.stderr


def test_run_kernel_a_broker_cannot_patch_code_through_proc_self_mem(cli_setup, tmp_path):
    """W^X alone cannot stop this: /proc/self/mem writes use FOLL_FORCE and ignore page
    protections, and a policy granting a path gate and fd_seek/fd_pwrite (the default
    with --dir) leaves openat2 and pwrite64 open. Landlock does: the locked process may
    open nothing outside its preopens, /proc/self/mem included."""
    env, args = cli_setup
    policy = tmp_path / "trap_open.toml"
    policy.write_text('[gates]\ndefault = "allow"\n'
                      '[[gates.rules]]\nnames = ["path_open"]\naction = "trap"\n')
    args = ["--policy", str(policy), *args[2:]]
    done = callgate_run(env, str(GUESTS / "cat.wasm"), "--kernel", *args,
                        "--broker", "cg_wx_broker:through_proc_mem", "--", "/d/in.txt")
    assert "wx-broker: open /proc/self/mem: -1 EACCES" in done.stderr, done.stderr
    assert "injected code returned 1337" not in done.stderr, done.stderr
