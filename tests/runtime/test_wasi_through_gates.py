"""WASI preview1 gates through the runtime: the same filter, WASI's errno convention, exits."""

from __future__ import annotations

import pytest
from conftest import require
from rt_helpers import gate_policy, guest, wat

from callgate.arch.wasi_errno import WASI_ERRNO
from callgate.gates.spec import GuestExit
from callgate.runtime import Plugin
from callgate.runtime.loading import default_providers

EACCES = WASI_ERRNO["EACCES"]

WRITE = wat("""
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi!\\n")
  (data (i32.const 0) "\\10\\00\\00\\00\\04\\00\\00\\00")
  (func (export "write") (param $fd i32) (result i32)
    (call $w (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 32)))
  (func (export "bye") (param i32) (call $exit (local.get 0))))
""")


@pytest.fixture
def wasi():
    require(bool(default_providers()), "the WASI preview1 gate provider (callgate.gates.wasi)")
    from callgate.gates.wasi import WasiConfig, WasiProvider

    def make(stdout: bytearray, stderr: bytearray):
        return [WasiProvider(WasiConfig(stdout=stdout, stderr=stderr))]
    return make


def test_policy_on_fd_write_args_decides_per_fd_with_wasi_errno(wasi):
    out, err = bytearray(), bytearray()
    policy = gate_policy("allow", 'names = ["fd_write"]\naction = "errno(EACCES)"\n'
                         'args = [{index = 0, op = "eq", value = 2}]')
    with Plugin(WRITE, providers=wasi(out, err), policy=policy) as p:
        assert p.call_int("write", 1) == 0
        assert p.call_int("write", 2) == EACCES  # WASI gates return n itself
        assert p.counters["fd_write"] == {**p.counters["fd_write"], "allow": 1, "errno": 1}
    assert (bytes(out), bytes(err)) == (b"hi!\n", b"")


def test_proc_exit_ends_the_guest_with_its_code(wasi):
    with Plugin(WRITE, providers=wasi(bytearray(), bytearray())) as p:
        with pytest.raises(GuestExit) as info:
            p.call_int("bye", 7)
        assert info.value.code == 7
        assert p.call_int("write", 1) == 0  # the plugin itself is still usable


def test_kill_on_a_wasi_gate_poisons(wasi):
    from callgate.gates.errors import PluginKilled, PluginPoisoned
    out = bytearray()
    policy = gate_policy("allow", 'names = ["fd_write"]\naction = "kill_process"')
    with Plugin(WRITE, providers=wasi(out, out), policy=policy) as p:
        with pytest.raises(PluginKilled) as info:
            p.call_int("write", 1)
        assert (info.value.gate, info.value.number) == ("fd_write", 26)
        with pytest.raises(PluginPoisoned):
            p.call_int("write", 1)
    assert out == b""


def test_a_wasi_command_runs_with_the_default_provider(capfd):
    require(bool(default_providers()), "the WASI preview1 gate provider (callgate.gates.wasi)")
    # Default providers: WASI, stdio inherited; no arguments is a usage error.
    with Plugin(guest("lines")) as p, pytest.raises(GuestExit) as info:
        p.call_int("_start")
    assert info.value.code == 2
    assert "usage: lines" in capfd.readouterr().err
