"""Landlock at lockdown (issue 12, item 9): the kernel layer confines paths, not only syscalls.

Before, a locked ``callgate run --kernel --dir X`` let host code (a broker) open
``/etc/shadow`` with ``openat2(AT_FDCWD, …)`` and unlink a file outside the preopen: the
filter allowed ``openat2`` and ``unlinkat`` for the filesystem gates and cannot see paths.
Every ruleset here is enforced in a forked child or a subprocess: it is permanent.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import pytest
from conftest import require

from callgate.arch import native_arch
from callgate.bpf.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO
from callgate.bpf.insn import Insn
from callgate.bpf.opcodes import BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W
from callgate.bpf.seccomp_data import OFF_NR
from callgate.kernel import landlock
from callgate.kernel.binding import ffi, install_filter, set_no_new_privs
from callgate.kernel.child import child_report_fd, run_in_child
from callgate.kernel.hostpolicy import derive_host_policy
from callgate.kernel.landlock import (
    LandlockUnavailable,
    PathRule,
    Ruleset,
    handled,
    kernel_abi,
    restrict_self,
)
from callgate.kernel.lockdown import LockdownError, lockdown
from callgate.policy import load_policy_text

HERE = Path(__file__).resolve().parent
GUESTS = HERE.parents[1] / "guests" / "wasm"
KERNEL_ABI = kernel_abi()[0]
ALLOW_ALL = derive_host_policy(load_policy_text('[kernel]\ndefault = "allow"\n').policy, [])


@pytest.fixture
def abi() -> int:
    require(KERNEL_ABI >= 1, "a kernel with Landlock")
    return KERNEL_ABI


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """rw/ and ro/ (the preopens), outside/ (everything else), each with a file."""
    paths = {}
    for name in ("rw", "ro", "outside"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "file.txt").write_text(f"{name} content\n")
        paths[name] = tmp_path / name
    (tmp_path / "rw" / "sub").mkdir()
    return paths


def attempt(action) -> str:
    try:
        action()
    except OSError as exc:
        return errno.errorcode[exc.errno or 0]
    return "ok"


def open_close(path: Path | str, flags: int) -> None:
    os.close(os.open(path, flags | os.O_CLOEXEC, 0o600))


def enosys_for(nr: int) -> list[Insn]:
    """A filter answering syscall ``nr`` with ENOSYS, allowing everything else."""
    return [
        Insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, OFF_NR),
        Insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, nr),
        Insn(BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),
        Insn(BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW),
    ]


# --- the binding --------------------------------------------------------------------------


def test_struct_layouts_are_the_uapi_headers():
    assert ffi.sizeof("struct landlock_ruleset_attr") == 24
    assert ffi.sizeof("struct landlock_path_beneath_attr") == 12  # packed
    assert ffi.offsetof("struct landlock_path_beneath_attr", "parent_fd") == 8
    assert ffi.sizeof("struct landlock_net_port_attr") == 16


def test_each_abi_handles_everything_it_can_deny():
    fs1 = (1 << 13) - 1  # execute .. make_sym
    assert handled(1) == (fs1, 0, 0)
    assert handled(2) == (fs1 | 1 << 13, 0, 0)  # refer
    assert handled(3) == (fs1 | 3 << 13, 0, 0)  # truncate
    assert handled(4) == (fs1 | 3 << 13, 3, 0)  # bind_tcp, connect_tcp
    assert handled(5) == ((1 << 16) - 1, 3, 0)  # ioctl_dev
    assert handled(6) == ((1 << 16) - 1, 3, 3)  # abstract unix sockets, signals
    assert handled(7) == handled(6)  # ABI 7 adds logging flags, no right
    assert handled(0) == (0, 0, 0)


def test_the_kernel_reports_its_abi(abi):
    assert abi >= 1
    assert kernel_abi() == (abi, 0)


def test_the_host_filter_never_allows_the_landlock_syscalls():
    """So Landlock must come before the filter: lockdown orders it so."""
    for policy in ('[kernel]\ndefault = "kill_process"\n', '[gates]\ndefault = "allow"\n'):
        host = derive_host_policy(load_policy_text(policy).policy, [])
        assert not {"landlock_create_ruleset", "landlock_add_rule",
                    "landlock_restrict_self"} & set(host.allowed)


# --- what a ruleset allows, on every ABI this kernel offers ---------------------------------


def _confined(tree: dict[str, Path], abi: int) -> dict[str, object]:
    set_no_new_privs()
    rw = os.open(tree["rw"], os.O_RDONLY | os.O_DIRECTORY)  # held, as a preopen is
    ruleset = Ruleset((PathRule(str(tree["rw"]), write=True, why="rw", fd=rw),
                       PathRule(str(tree["ro"]), write=False, why="ro")))
    report = restrict_self(ruleset, abi=abi)
    rw_file, ro_file = tree["rw"] / "file.txt", tree["ro"] / "file.txt"
    outside = tree["outside"] / "file.txt"
    return {
        "report": report,
        "read rw": attempt(lambda: open_close(rw_file, os.O_RDONLY)),
        "write rw": attempt(lambda: open_close(rw_file, os.O_WRONLY)),
        "create rw": attempt(lambda: open_close(tree["rw"] / "new.txt", os.O_CREAT | os.O_WRONLY)),
        "mkdir rw": attempt(lambda: os.mkdir(tree["rw"] / "newdir")),
        "rename across rw": attempt(lambda: os.rename(tree["rw"] / "new.txt",
                                                      tree["rw"] / "sub" / "moved.txt")),
        "read ro": attempt(lambda: open_close(ro_file, os.O_RDONLY)),
        "list ro": attempt(lambda: os.listdir(tree["ro"])),
        "write ro": attempt(lambda: open_close(ro_file, os.O_WRONLY)),
        "create ro": attempt(lambda: open_close(tree["ro"] / "new.txt", os.O_CREAT | os.O_WRONLY)),
        "unlink ro": attempt(lambda: os.unlink(ro_file)),
        "truncate ro": attempt(lambda: os.truncate(ro_file, 0)),
        "read outside": attempt(lambda: open_close(outside, os.O_RDONLY)),
        "list outside": attempt(lambda: os.listdir(tree["outside"])),
        "unlink outside": attempt(lambda: os.unlink(outside)),
        "shadow": attempt(lambda: open_close("/etc/shadow", os.O_RDONLY)),
        "proc mem": attempt(lambda: open_close("/proc/self/mem", os.O_RDWR)),
        "exec": attempt(lambda: os.execv("/bin/true", ["true"])),
    }


@pytest.mark.parametrize("use", range(1, 9))
def test_a_ruleset_allows_the_preopens_and_nothing_else_on_each_abi(abi, tree, use):
    if use > abi:
        pytest.skip(f"the kernel offers ABI {abi}")
    seen = run_in_child(lambda: _confined(tree, use)).unwrap()
    report = seen.pop("report")
    assert report.abi == use and report.kernel_abi == abi
    assert (report.handled_fs, report.handled_net, report.scoped) == handled(use)
    assert [(r.access, r.why) for r in report.rules] == [("read-write", "rw"), ("read", "ro")]
    for what in ("read rw", "write rw", "create rw", "mkdir rw", "read ro", "list ro"):
        assert seen[what] == "ok", what
    for what in ("write ro", "create ro", "unlink ro", "read outside", "list outside",
                 "unlink outside", "shadow", "proc mem", "exec"):
        assert seen[what] == "EACCES", what
    # Reparenting needs REFER (ABI 2); ABI 1 refuses every rename into another directory.
    assert seen["rename across rw"] == ("ok" if use >= 2 else "EXDEV")
    # truncate(2) by path is Landlock's to deny from ABI 3 on; before, only the filter can.
    assert seen["truncate ro"] == ("EACCES" if use >= 3 else "ok")
    assert (tree["outside"] / "file.txt").exists() and (tree["ro"] / "file.txt").exists()


def test_tcp_is_denied_except_the_listed_ports(abi):
    if abi < 4:
        pytest.skip("TCP rules need ABI 4")
    servers = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    listed, unlisted = (s.getsockname()[1] for s in servers)

    def child():
        set_no_new_privs()
        restrict_self(Ruleset(connect_tcp=(listed,)))

        def connect(port):  # not create_connection: it imports encodings.idna, from a file
            with socket.socket() as s:
                s.connect(("127.0.0.1", port))

        def bind():
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))

        return attempt(lambda: connect(listed)), attempt(lambda: connect(unlisted)), \
            attempt(bind)

    try:
        assert run_in_child(child).unwrap() == ("ok", "EACCES", "EACCES")
    finally:
        for s in servers:
            s.close()


def test_signals_leave_the_domain_only_within_it(abi):
    if abi < 6:
        pytest.skip("scopes need ABI 6")

    def child():
        set_no_new_privs()
        restrict_self(Ruleset())
        return attempt(lambda: os.kill(os.getppid(), 0)), attempt(lambda: os.kill(os.getpid(), 0))

    assert run_in_child(child).unwrap() == ("EPERM", "ok")


def test_a_file_rule_grants_that_file_only(abi, tree):
    granted = tree["outside"] / "file.txt"
    (tree["outside"] / "other.txt").write_text("no\n")

    def child():
        set_no_new_privs()
        report = restrict_self(Ruleset((PathRule(str(granted), why="one file"),
                                        PathRule(str(tree["outside"] / "missing"), why="gone"))))
        return (report.rules[0].rights, report.skipped,
                attempt(lambda: open_close(granted, os.O_RDONLY)),
                attempt(lambda: open_close(tree["outside"] / "other.txt", os.O_RDONLY)),
                attempt(lambda: os.listdir(tree["outside"])))

    rights, skipped, own, other, listing = run_in_child(child).unwrap()
    assert rights == landlock.READ_ACCESS & landlock.FILE_ACCESS  # read_file, not read_dir
    assert skipped == (f"{tree['outside'] / 'missing'}: No such file or directory",)
    assert (own, other, listing) == ("ok", "EACCES", "EACCES")


def test_threads_started_before_are_not_in_the_domain_and_the_report_names_them(abi, tree):
    """Landlock confines the calling thread (and threads it starts later); only ABI 8's
    TSYNC reaches the others. The filter, with TSYNC, does bind them all."""
    if abi >= 8:
        pytest.skip("TSYNC puts every thread in the domain")
    secret = tree["outside"] / "file.txt"

    def child():
        go, done, seen = threading.Event(), threading.Event(), []

        def early():
            go.wait()
            seen.append(attempt(lambda: open_close(secret, os.O_RDONLY)))
            done.set()

        thread = threading.Thread(target=early)
        thread.start()
        set_no_new_privs()
        report = restrict_self(Ruleset())
        late: list[str] = []
        later = threading.Thread(target=lambda: late.append(
            attempt(lambda: open_close(secret, os.O_RDONLY))))
        later.start()
        later.join()
        go.set()
        done.wait(5)
        return (len(report.unconfined_threads), late[0], seen[0],
                attempt(lambda: open_close(secret, os.O_RDONLY)))

    unconfined, late, early, main = run_in_child(child).unwrap()
    assert unconfined == 1
    assert (main, late) == ("EACCES", "EACCES")
    assert early == "ok"  # the weakness, measured


# --- lockdown: ordered before the filter, degrading with a warning --------------------------


def test_lockdown_applies_landlock_before_the_filter_and_reports_it(abi, tree):
    def child():
        report = lockdown(ALLOW_ALL.compile(), keep_fds=(0, 1, 2, child_report_fd()),
                          landlock=Ruleset((PathRule(str(tree["ro"]), why="ro"),)))
        return report.landlock_abi, report.landlock, attempt(
            lambda: open_close(tree["outside"] / "file.txt", os.O_RDONLY))

    used, report, outside = run_in_child(child).unwrap()
    assert used == abi and report.rules[0].access == "read"
    assert outside == "EACCES"


@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EOPNOTSUPP])
def test_a_kernel_without_landlock_warns_and_the_lockdown_goes_on(tree, err):
    """The real query path: a filter makes landlock_create_ruleset fail as such a kernel
    would (ENOSYS: not built in; EOPNOTSUPP: not enabled at boot)."""
    program = enosys_for(444)
    program[2] = Insn(BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ERRNO | err)

    def child():
        set_no_new_privs()
        install_filter(program)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = lockdown(ALLOW_ALL.compile(), keep_fds=(0, 1, 2, child_report_fd()),
                              landlock=Ruleset((PathRule(str(tree["ro"])),)))
        return (report.landlock, [(w.category.__name__, str(w.message)) for w in caught],
                attempt(lambda: open_close(tree["outside"] / "file.txt", os.O_RDONLY)))

    report, caught, outside = run_in_child(child).unwrap()
    assert report.abi is None and report.kernel_abi == 0 and report.rules == ()
    name = errno.errorcode[err]
    assert caught == [("LandlockUnavailable", report.warning)]
    assert report.warning.startswith(f"the kernel has no Landlock ({name}): paths are not "
                                     "confined")
    assert outside == "ok"  # degraded: seccomp alone


def test_forcing_no_landlock_is_the_same_path_and_required_refuses_it(tree):
    def child(required):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                report = lockdown(ALLOW_ALL.compile(), keep_fds=(0, 1, 2, child_report_fd()),
                                  landlock=Ruleset(required=required), landlock_abi=0)
            except LockdownError as exc:
                return "refused", str(exc)
        return report.landlock_abi, [w.category for w in caught]

    assert run_in_child(lambda: child(False)).unwrap() == (None, [LandlockUnavailable])
    refused, message = run_in_child(lambda: child(True)).unwrap()
    assert refused == "refused"
    assert "required = true" in message


# --- callgate run --kernel: the attack, by a broker --------------------------------

BROKER = textwrap.dedent("""
    import errno, os, sys
    from callgate import ALLOW
    from callgate.arch import native_arch
    from callgate.kernel.binding import ffi, raw_syscall

    AT_FDCWD = -100
    ARCH = native_arch()
    DONE = []

    def openat2(path, flags):
        how = ffi.new("uint64_t[3]", [flags, 0o600 if flags & os.O_CREAT else 0, 0])
        return raw_syscall(ARCH.number("openat2"), AT_FDCWD, ffi.new("char[]", path.encode()),
                           how, 24)

    def unlinkat(path):
        return raw_syscall(ARCH.number("unlinkat"), AT_FDCWD, ffi.new("char[]", path.encode()),
                           0)

    def say(what, result):
        ret, err = result
        if ret >= 0 and what.startswith(("read", "write", "create")):
            os.close(ret)
        outcome = "ok" if ret >= 0 else errno.errorcode.get(err, str(err))
        print(f"broker: {what}: {outcome}", file=sys.stderr, flush=True)

    def nosy(request):
        \"\"\"Host code gone wrong: before answering, it reaches for files by path.\"\"\"
        if not DONE:
            DONE.append(1)
            root = os.environ["CG_TREE"]
            say("read /etc/shadow", openat2("/etc/shadow", os.O_RDONLY))
            say("read outside", openat2(f"{root}/outside/file.txt", os.O_RDONLY))
            say("unlink outside", unlinkat(f"{root}/outside/victim.txt"))
            say("write ro", openat2(f"{root}/ro/file.txt", os.O_WRONLY | os.O_TRUNC))
            say("create ro", openat2(f"{root}/ro/new.txt", os.O_WRONLY | os.O_CREAT))
            say("unlink ro", unlinkat(f"{root}/ro/file.txt"))
            say("write /proc/self/mem", openat2("/proc/self/mem", os.O_RDWR))
            say("read granted", openat2(f"{root}/granted.txt", os.O_RDONLY))
            say("create rw", openat2(f"{root}/rw/by-broker.txt", os.O_WRONLY | os.O_CREAT))
        return ALLOW
""")


@pytest.fixture
def broker_run(tmp_path: Path, tree: dict[str, Path]):
    (tree["outside"] / "victim.txt").write_text("victim\n")
    (tmp_path / "granted.txt").write_text("granted\n")
    (tmp_path / "cg_nosy_broker.py").write_text(BROKER)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[gates]\ndefault = "allow"\n'
        '[[gates.rules]]\nnames = ["path_open"]\naction = "trap"\n'
        f'[landlock]\nread = ["{tmp_path / "granted.txt"}"]\n'
    )
    path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "CG_TREE": str(tmp_path)}

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "callgate", "run", str(GUESTS / "cat.wasm"), *extra,
             "--policy", str(policy), "--broker", "cg_nosy_broker:nosy",
             "--dir", f"{tree['rw']}::/d", "--dir", f"{tree['ro']}::/r:ro",
             "--", "/d/file.txt", "/r/file.txt"],
            env=env, capture_output=True, text=True, timeout=120)

    return run


def said(stderr: str) -> dict[str, str]:
    lines = [line.removeprefix("broker: ") for line in stderr.splitlines()
             if line.startswith("broker: ")]
    return dict(line.rsplit(": ", 1) for line in lines)


def test_run_kernel_a_broker_can_reach_only_the_preopens(abi, tree, broker_run):
    done = broker_run("--kernel")
    assert (done.returncode, done.stdout) == (0, "rw content\nro content\n"), done.stderr
    assert said(done.stderr) == {
        "read /etc/shadow": "EACCES",
        "read outside": "EACCES",
        "unlink outside": "EACCES",
        "write ro": "EACCES",
        "create ro": "EACCES",
        "unlink ro": "EACCES",
        "write /proc/self/mem": "EACCES",
        "read granted": "ok",  # the policy's [landlock] read
        "create rw": "ok",  # a read-write preopen: host code may write there
    }, done.stderr
    assert (tree["outside"] / "victim.txt").read_text() == "victim\n"
    assert (tree["ro"] / "file.txt").read_text() == "ro content\n"
    assert not (tree["ro"] / "new.txt").exists()


def test_without_the_kernel_layer_the_same_broker_reaches_everything(tree, broker_run):
    """The control: what the broker does when nothing confines it (not a lockdown)."""
    done = broker_run()
    seen = said(done.stderr)
    assert seen["read outside"] == seen["unlink outside"] == seen["write ro"] == "ok"
    assert not (tree["outside"] / "victim.txt").exists()


def test_run_kernel_reports_a_kernel_without_landlock_in_one_line(tree, tmp_path):
    (tree["rw"] / "in.txt").write_text("hello\n")
    program = enosys_for(444)

    def no_landlock() -> None:  # in the child, before exec: a filter survives execve
        set_no_new_privs()
        install_filter(program)

    for mode in ("--kernel", "--isolate"):
        done = subprocess.run(
            [sys.executable, "-m", "callgate", "run", str(GUESTS / "cat.wasm"), mode,
             "--dir", f"{tree['rw']}::/d", "--", "/d/in.txt"],
            preexec_fn=no_landlock, capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stdout) == (0, "hello\n"), done.stderr
        worker = "the worker: " if mode == "--isolate" else ""
        assert done.stderr.splitlines() == [
            f"callgate run: warning: {worker}the kernel has no Landlock (ENOSYS): paths are not "
            "confined, only the seccomp filter holds - host code can open any file the "
            "filter's syscalls reach"], mode


def test_run_kernel_guests_still_work_in_their_preopens(abi, tmp_path):
    """What the runtime needs after lockdown beyond the preopens: nothing (fsops renames,
    links, symlinks, truncates and sets times, one through /proc/self/fd/N)."""
    outputs = []
    for mode in ((), ("--kernel",), ("--isolate",)):
        data = tmp_path / f"data{len(outputs)}"
        data.mkdir()
        done = subprocess.run(
            [sys.executable, "-m", "callgate", "run", str(GUESTS / "fsops.wasm"), *mode,
             "--dir", f"{data}::/d", "--", "/d"], capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stderr) == (0, ""), mode
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    assert "utimensat a/g: ok" in outputs[1]


# --- the isolated worker: the same ruleset ---------------------------------------------------


def _rules(report) -> list[tuple[str, str, str]]:
    return [(r.path, r.access, r.why) for r in report.rules]


def test_the_isolated_worker_gets_the_same_ruleset_as_run_kernel(abi, tree):
    from callgate.gates.wasi import Preopen, WasiConfig
    from callgate.isolation.isolated import IsolatedPlugin

    policy_text = ('[gates]\ndefault = "allow"\n'
                   f'[landlock]\nread = ["{tree["outside"] / "file.txt"}"]\n')
    policy = load_policy_text(policy_text).policy

    def config():
        return WasiConfig(preopens=[Preopen(str(tree["rw"]), "/d"),
                                    Preopen(str(tree["ro"]), "/r", readonly=True)],
                          stdin="inherit", stdout="inherit", stderr="inherit")

    with IsolatedPlugin(GUESTS / "cat.wasm", policy=policy, wasi=config()) as isolated:
        worker = isolated.worker.landlock

    # run --kernel's lock_plugin, in a fresh interpreter (wasmtime does not survive fork)
    script = textwrap.dedent("""
        import json, sys
        from callgate.gates.wasi import Preopen, WasiConfig, WasiProvider
        from callgate.kernel.lockdown import lock_plugin
        from callgate.policy import load_policy_text
        from callgate.runtime.plugin import Plugin
        guest, rw, ro, text = sys.argv[1:]
        policy = load_policy_text(text).policy
        config = WasiConfig(preopens=[Preopen(rw, "/d"), Preopen(ro, "/r", readonly=True)])
        plugin = Plugin(guest, policy=policy, providers=[WasiProvider(config)])
        report = lock_plugin(plugin, policy).landlock
        print(json.dumps(report.as_dict()))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(GUESTS / "cat.wasm"),
                           str(tree["rw"]), str(tree["ro"]), policy_text],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    local = landlock.LandlockReport.from_dict(json.loads(done.stdout.splitlines()[-1]))
    assert worker is not None and worker.abi == local.abi == abi
    assert _rules(worker) == _rules(local) == [
        (str(tree["rw"]), "read-write", "preopen /d"),
        (str(tree["ro"]), "read", "read-only preopen /r"),
        (str(tree["outside"] / "file.txt"), "read", "policy [landlock] read"),
    ]


def test_host_code_in_the_worker_reaches_only_what_it_was_handed(abi, tree):
    from callgate.isolation.worker import Worker

    fds = {name: os.open(tree[name], os.O_RDONLY | os.O_DIRECTORY) for name in ("rw", "ro")}
    names = '"openat", "unlink", "unlinkat", "newfstatat", "fstat", "fcntl"'
    policy = load_policy_text(f'[kernel]\ndefault = "kill_process"\n'
                              f'[[kernel.rules]]\nnames = [{names}]\naction = "allow"\n').policy
    try:
        with Worker("worker_services:build", policy=policy, fds=fds, python_path=[str(HERE)],
                    config={"landlock": {"rw": "rw", "ro": "ro"}}, timeout=30) as w:
            results = {(op, name): w.call("attempt", op, str(tree[name] / "file.txt"))
                       for op in ("read", "write") for name in ("rw", "ro", "outside")}
            results["unlink", "outside"] = w.call("attempt", "unlink",
                                                  str(tree["outside"] / "file.txt"))
            results["read", "shadow"] = w.call("attempt", "read", "/etc/shadow")
            report = w.landlock
    finally:
        for fd in fds.values():
            os.close(fd)
    assert report is not None and report.abi == abi
    assert [(r.access, r.why) for r in report.rules] == [("read-write", "handed rw (rw)"),
                                                         ("read", "handed ro (ro)")]
    assert results == {
        ("read", "rw"): "ok", ("write", "rw"): "ok",
        ("read", "ro"): "ok", ("write", "ro"): "EACCES",
        ("read", "outside"): "EACCES", ("write", "outside"): "EACCES",
        ("unlink", "outside"): "EACCES", ("read", "shadow"): "EACCES",
    }


def test_a_worker_can_leave_landlock_out(tree):
    from callgate.isolation.worker import Worker

    policy = load_policy_text('[kernel]\ndefault = "kill_process"\n'
                              '[[kernel.rules]]\nnames = ["openat"]\naction = "allow"\n').policy
    with Worker("worker_services:build", policy=policy, python_path=[str(HERE)],
                landlock=False, timeout=30) as w:
        assert w.landlock is None
        assert w.call("attempt", "read", str(tree["outside"] / "file.txt")) == "ok"


def test_a_signal_from_the_confined_worker_to_its_parent_is_refused(abi):
    if abi < 6:
        pytest.skip("scopes need ABI 6")
    from callgate.isolation.worker import Worker

    policy = load_policy_text('[kernel]\ndefault = "kill_process"\n'
                              '[[kernel.rules]]\nnames = ["kill"]\naction = "allow"\n').policy
    kill = native_arch().number("kill")
    with Worker("worker_services:build", policy=policy, python_path=[str(HERE)],
                timeout=30) as w:
        assert w.call("syscall", kill, os.getpid(), 0) == [-1, errno.EPERM]


# --- what the runtime needs after lockdown, measured ---------------------------------------

# A path syscall the runtime may make after lockdown: relative to an fd it holds (a preopen,
# a directory opened beneath one), or through /proc/self/fd/N (utimensat on a preopen).
_RELATIVE = (
    re.compile(r"^\w+\(\d+, "),  # openat2(4, "in.txt", …), newfstatat(5, "", …)
    re.compile(r'^symlinkat\("[^"]*", \d+, '),  # the target is link content, not a lookup
    re.compile(r'^\w+\(AT_FDCWD, "/proc/self/fd/\d+"'),
)


def _after_filter(trace: str) -> list[str]:
    """The path syscalls the locking thread made after its seccomp filter went on."""
    lines = trace.splitlines()
    start = next(i for i, line in enumerate(lines) if "seccomp(SECCOMP_SET_MODE_FILTER" in line)
    pid = lines[start].split()[0]
    calls = []
    for line in lines[start + 1:]:
        tid, _, call = line.partition(" ")
        call = call.strip()
        if tid == pid and not call.startswith(("+++", "---", "exit")):
            calls.append(call)
    return calls


@pytest.mark.parametrize("mode", ["--kernel", "--isolate"])
def test_after_lockdown_the_runtime_opens_nothing_but_beneath_its_preopens(abi, tmp_path, mode):
    """RUNTIME_PATHS is empty because this holds: measured with strace, as the baseline is."""
    import shutil

    require(shutil.which("strace") is not None, "strace")
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("measured\n")
    (tmp_path / "cg_allow_broker.py").write_text(
        "from callgate import ALLOW\n\ndef broker(request):\n    return ALLOW\n")
    policy = tmp_path / "policy.toml"
    policy.write_text('[gates]\ndefault = "allow"\n'
                      '[[gates.rules]]\nnames = ["path_open"]\naction = "trap"\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    audit = [] if mode == "--isolate" else ["--audit", str(tmp_path / "audit.jsonl")]
    runs = (
        ("cat", ["--policy", str(policy), "--broker", "cg_allow_broker:broker", *audit,
                 "--", "/d/in.txt", "/d/missing.txt"]),
        ("fsops", ["--", "/d"]),
        ("listdir", ["--", "/d"]),
    )
    for guest, args in runs:
        trace = tmp_path / f"{guest}.strace"
        done = subprocess.run(
            ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=%file,seccomp",
             sys.executable, "-m", "callgate", "run", str(GUESTS / f"{guest}.wasm"), mode,
             "--dir", f"{data}::/d", *args],
            env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode in (0, 1), done.stderr  # cat's missing.txt: status 1
        calls = _after_filter(trace.read_text())
        assert calls, guest
        assert [c for c in calls if not any(p.match(c) for p in _RELATIVE)] == [], guest
        assert [c for c in calls if "EACCES" in c] == [], guest  # Landlock refused nothing
