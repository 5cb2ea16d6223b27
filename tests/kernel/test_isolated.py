"""A real plugin in a locked-down worker: both layers, app gates and the broker in the parent."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from kv_host import ENOENT, kv_gates

from callgate.gates.app import AppGates
from callgate.gates.errors import DeadlineExceeded
from callgate.isolation.isolated import IsolatedPlugin
from callgate.isolation.worker import WorkerCrashed, WorkerTimeout
from callgate.runtime import Errno, Limits, PluginKilled, PluginPoisoned, Value

GUESTS = Path(__file__).resolve().parents[2] / "guests" / "wasm"
EPERM = 63  # WASI numbering, as kvstore reports errors
# The minimal policy for kvstore: its two gates, nothing else, and a kernel that kills.
MINIMAL = """
[gates]
default = "kill_process"
[[gates.rules]]
names = ["kv_get", "kv_put"]
action = "allow"
[kernel]
default = "kill_process"
"""


def thread_statuses(pid: int) -> list[dict[str, str]]:
    return [status_of(pid, f"task/{tid}/status") for tid in os.listdir(f"/proc/{pid}/task")]


def status_of(pid: int, name: str = "status") -> dict[str, str]:
    with open(f"/proc/{pid}/{name}") as f:
        return {k: v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}


def test_plugin_runs_end_to_end_under_both_layers_with_the_minimal_policy(monkeypatch):
    # The worker compiles (no compile cache), so wasmtime's compile threads exist and their
    # capabilities are checked below too.
    monkeypatch.setenv("CALLGATE_CACHE", "off")
    store: dict[bytes, bytes] = {}
    with IsolatedPlugin(GUESTS / "kvstore.wasm", policy=MINIMAL, gates=kv_gates(store)) as p:
        status = status_of(p.pid)
        threads = thread_statuses(p.pid)
        assert p.call("put", b"colour=blue") == b"ok"
        assert p.call("get", b"colour") == b"blue"
        assert p.call("get", b"size") == f"error {ENOENT}".encode()
        allowed = p.worker.host_policy.allowed
        held = p.worker.ready["fds"]
    assert len(held) == 4 and {0, 1, 2} < set(held)  # stdio and the socket to the parent
    assert store == {b"colour": b"blue"}  # the gate ran here, in the parent
    assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1"
    assert int(status["CapEff"], 16) == 0
    # wasmtime's compile threads too: the worker dropped its capabilities before compiling.
    assert len(threads) >= 2
    assert all(int(t[key], 16) == 0 for t in threads for key in ("CapEff", "CapPrm", "CapBnd"))
    assert "openat" not in allowed and "execve" not in allowed


def test_integer_exports_and_bytes_without_gates():
    with IsolatedPlugin(GUESTS / "hello.wasm") as p:
        assert p.call_int("add", 2, 40) == 42
        assert p.call("echo", b"\x00 binary \xff") == b"\x00 binary \xff"


def test_gate_layer_kill_is_the_runtimes_typed_error_and_restart_recovers():
    policy = MINIMAL.replace('names = ["kv_get", "kv_put"]', 'names = ["kv_put"]')
    with IsolatedPlugin(GUESTS / "kvstore.wasm", policy=policy, gates=kv_gates({})) as p:
        with pytest.raises(PluginKilled) as killed:
            p.call("get", b"x")
        assert killed.value.gate == "kv_get"
        with pytest.raises(PluginPoisoned):
            p.call("put", b"a=b")
        p.restart()
        assert p.call("put", b"a=b") == b"ok"


def test_trap_verdicts_are_decided_by_the_broker_in_the_parent():
    policy = MINIMAL.replace('action = "allow"', 'action = "trap"')
    asked = []

    def broker(request):
        asked.append((request.gate.name, request.action, request.memory.read(request.args[0], 3)))
        return Errno(EPERM) if request.gate.name == "kv_put" else Value(-ENOENT)

    with IsolatedPlugin(
        GUESTS / "kvstore.wasm", policy=policy, gates=kv_gates({}), broker=broker
    ) as p:
        assert p.call("put", b"key=v") == f"error {EPERM}".encode()
        assert p.call("get", b"key") == f"error {ENOENT}".encode()
    assert asked == [("kv_put", "trap", b"key"), ("kv_get", "trap", b"key")]


def test_runtime_limits_apply_in_the_worker():
    with IsolatedPlugin(GUESTS / "hostile_spin.wasm", limits=Limits(timeout=0.2)) as p:
        with pytest.raises(DeadlineExceeded):
            p.call_int("run")
        assert p.pid is not None and p.worker.alive


def test_a_hostile_guest_that_takes_its_worker_down_leaves_the_parent_alone():
    p = IsolatedPlugin(GUESTS / "hostile_spin.wasm", timeout=0.5)
    try:
        first = p.pid
        with pytest.raises(WorkerTimeout):
            p.call_int("run")
        assert not p.worker.alive
        with pytest.raises(WorkerCrashed):
            p.call_int("run")
        p.restart()
        assert p.pid != first and p.worker.alive
    finally:
        p.close()


def test_a_worker_killed_from_outside_is_a_typed_error():
    import os

    with IsolatedPlugin(GUESTS / "hello.wasm") as p:
        os.kill(p.pid, signal.SIGKILL)
        with pytest.raises(WorkerCrashed) as crash:
            p.call_int("add", 1, 2)
        assert crash.value.signal == signal.SIGKILL
        p.restart()
        assert p.call_int("add", 1, 2) == 3


def _wasi(tmp_path, *args: str):
    from callgate.gates.wasi import Preopen, WasiConfig

    return WasiConfig(
        args=list(args),
        preopens=[Preopen(tmp_path, "/data")],
        stdin="inherit",
        stdout="inherit",
        stderr="inherit",
    )


def _run_command(plugin) -> int:
    from callgate.gates.spec import GuestExit

    try:
        plugin.call_int("_start")
    except GuestExit as exc:
        return exc.code
    return 0


def test_wasi_preopens_travel_as_fds_and_are_all_the_worker_holds(tmp_path):
    import os

    (tmp_path / "in.txt").write_text("through a handed fd\n")
    out = tmp_path / "stdout"
    with (
        out.open("wb") as sink,
        IsolatedPlugin(
            GUESTS / "cat.wasm",
            wasi=_wasi(tmp_path, "cat", "/data/in.txt"),
            stdio=(None, sink.fileno(), None),
        ) as p,
    ):
        held = p.worker.ready["fds"]
        targets = {fd: os.readlink(f"/proc/{p.pid}/fd/{fd}") for fd in held if fd > 2}
        assert _run_command(p) == 0
    assert out.read_text() == "through a handed fd\n"
    assert len(held) == 5  # stdio, the preopened directory, the socket to the parent
    assert str(tmp_path) in targets.values()


def test_a_guest_whose_gate_the_kernel_refuses_kills_only_its_worker(tmp_path):
    import os

    (tmp_path / "in.txt").write_text("x")
    policy = (
        '[gates]\ndefault = "allow"\n'
        '[kernel]\ndefault = "kill_process"\n'
        '[[kernel.rules]]\nnames = ["openat", "openat2"]\naction = "kill_process"\n'
    )
    before = set(os.listdir("/proc/self/fd"))
    with IsolatedPlugin(
        GUESTS / "cat.wasm", policy=policy, wasi=_wasi(tmp_path, "cat", "/data/in.txt")
    ) as p:
        with pytest.raises(WorkerCrashed) as crash:
            p.call_int("_start")
        assert crash.value.signal == signal.SIGSYS
        p.restart()  # a fresh worker, killed the same way: the parent never is
        with pytest.raises(WorkerCrashed):
            p.call_int("_start")
    assert set(os.listdir("/proc/self/fd")) == before


def test_a_wasi_gate_trapped_to_the_broker_is_decided_in_the_parent(tmp_path):
    from callgate.runtime import ALLOW

    policy = '[gates]\ndefault = "allow"\n[[gates.rules]]\nnames = ["fd_write"]\naction = "trap"\n'
    seen = []

    def broker(request):
        iovecs = request.memory.iovecs(request.args[1], request.args[2])
        # what one fd_write moves: its first non-empty buffer (wasmtime's semantics)
        data = next((request.memory.read(ptr, n) for ptr, n in iovecs if n), b"")
        seen.append((request.gate.name, request.args[0], data))
        return ALLOW

    out = tmp_path / "stdout"
    with (
        out.open("wb") as sink,
        IsolatedPlugin(
            GUESTS / "envargs.wasm",
            policy=policy,
            broker=broker,
            wasi=_wasi(tmp_path, "envargs", "hi"),
            stdio=(None, sink.fileno(), None),
        ) as p,
    ):
        assert _run_command(p) == 0
    assert seen and all(name == "fd_write" and fd == 1 for name, fd, _ in seen)
    written = b"".join(data for _, _, data in seen)
    assert out.read_bytes() == written and b"argv[1]=hi" in written


def test_kernel_user_notif_rules_are_answered_by_the_parent_for_a_real_guest(tmp_path):
    from callgate.arch import native_arch
    from callgate.kernel.supervisor import Verdict

    getrandom = native_arch().number("getrandom")
    policy = (
        '[gates]\ndefault = "allow"\n'
        '[kernel]\ndefault = "kill_process"\n'
        '[[kernel.rules]]\nnames = ["getrandom"]\naction = "user_notif"\n'
    )
    seen = []

    def decide(notification, memory):
        seen.append((notification.data.nr, notification.data.args[1]))
        return Verdict.allow()  # depends on register arguments only: safe to continue

    out = tmp_path / "stdout"
    with (
        out.open("wb") as sink,
        IsolatedPlugin(
            GUESTS / "timerand.wasm",
            policy=policy,
            supervise=decide,
            wasi=_wasi(tmp_path, "timerand"),
            stdio=(None, sink.fileno(), None),
        ) as p,
    ):
        assert _run_command(p) == 0
    assert seen and all(nr == getrandom for nr, _ in seen)
    assert "random draws differ: yes" in out.read_text()


# Each guest gets only the limit meant to stop it. With two (fuel and a deadline), which one
# fires first would depend on how fast the machine runs the guest, and a loaded one is slow.
ONLY_LIMIT = {
    "hostile_tablebomb": Limits(timeout=1),  # table growth reallocates (mremap)
    "hostile_membomb": Limits(fuel=10**8),
}


@pytest.mark.parametrize(
    ("guest", "export", "error"),
    [
        ("hostile_tablebomb", "run", "DeadlineExceeded"),
        ("hostile_membomb", "run", "FuelExhausted"),
        ("hostile_recursion", "run", "StackOverflow"),
        ("hostile_traps", "div_zero", "GuestTrap"),
    ],
)
def test_hostile_guests_end_with_their_typed_error_in_a_locked_worker(guest, export, error):
    limits = ONLY_LIMIT.get(guest, Limits())
    with IsolatedPlugin(GUESTS / f"{guest}.wasm", limits=limits) as p:
        with pytest.raises(Exception) as raised:
            p.call_int(export)
        assert type(raised.value).__name__ == error
        assert p.worker.alive  # the worker survived its guest


def test_a_plugin_that_cannot_load_in_the_worker_raises_the_runtimes_error():
    from callgate.gates.errors import MemoryLimitExceeded

    with pytest.raises(MemoryLimitExceeded):
        IsolatedPlugin(GUESTS / "hostile_big_memory.wasm")


def test_wasi_is_there_by_default_as_for_plugin():
    gates = AppGates()
    gates.add("probe1", lambda call, x: 0, params=("i64",), results=("i64",), uses_memory=False)
    policy = (
        '[gates]\ndefault = "allow"\n'
        '[[gates.rules]]\nnames = ["fd_write", "probe1"]\naction = "errno(EPERM)"\n'
    )
    with IsolatedPlugin(GUESTS / "hostile_denied_loop.wasm", policy=policy, gates=gates) as p:
        assert p.call_int("run_n", 3) == 6  # every fd_write and probe1 call was denied


def test_isolated_plugin_is_offered_next_to_plugin() -> None:
    import callgate

    assert callgate.IsolatedPlugin is IsolatedPlugin
    assert callgate.Plugin is not IsolatedPlugin


def _reentering_gates(holder: dict[str, IsolatedPlugin], what: str) -> AppGates:
    """kvstore's two gates; kv_put does ``what`` to its own plugin from inside the call."""
    gates = AppGates()
    gates.add("kv_get", lambda call, *a: -ENOENT, params=("i32",) * 4, results=("i32",))

    def kv_put(call, *args):
        plugin = holder["p"]
        if what == "call":
            plugin.call("get", b"k")
        elif what == "close":
            plugin.close()
        else:
            plugin.restart()
        return 0

    gates.add("kv_put", kv_put, params=("i32",) * 4, results=("i32",))
    return gates


@pytest.mark.parametrize("what", ["call", "close", "restart"])
def test_reentering_an_isolated_plugin_from_its_own_gate_is_a_clear_error(what):
    from callgate.gates.errors import PluginError

    holder: dict[str, IsolatedPlugin] = {}
    with IsolatedPlugin(GUESTS / "kvstore.wasm", policy=MINIMAL,
                        gates=_reentering_gates(holder, what)) as p:
        holder["p"] = p
        with pytest.raises(PluginError, match="cannot be re-entered") as raised:
            p.call("put", b"k=v")
        assert f"{what}()" in str(raised.value)
        assert p.worker.alive  # refused before anything reached the worker's socket
        assert p.call("get", b"k") == f"error {ENOENT}".encode()  # and it goes on serving


def test_an_isolated_plugin_after_close_says_it_is_closed():
    from callgate.gates.errors import PluginClosed

    p = IsolatedPlugin(GUESTS / "kvstore.wasm", policy=MINIMAL, gates=kv_gates({}))
    p.close()
    p.close()  # idempotent
    assert p.closed
    with pytest.raises(PluginClosed, match="closed"):
        p.call("get", b"k")
    with pytest.raises(PluginClosed):
        p.call_int("cg_alloc", 1)
    with pytest.raises(PluginClosed):
        p.restart()
