"""Gates that could block the host (FIFOs, idle pipes, sleeping polls) respect Limits.timeout.

wasmtime's epoch deadline cannot interrupt Python code, so a gate that waits must
wait no longer than the plugin's call deadline and then raise DeadlineExceeded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from native_wasi import WASM

from callgate.gates.errors import DeadlineExceeded
from callgate.gates.wasi import Preopen, WasiConfig, WasiProvider
from callgate.runtime import Limits, Plugin


def _plugin(guest: str, args: tuple[str, ...], config: WasiConfig) -> Plugin:
    config.args = (guest, *args)
    return Plugin(WASM / f"{guest}.wasm", providers=[WasiProvider(config)],
                  limits=Limits(timeout=0.5))


def test_fifo_without_writer_neither_hangs_open_nor_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    config = WasiConfig(preopens=[Preopen(tmp_path, "/d")], stdout=bytearray(),
                        stderr=bytearray())
    with _plugin("cat", ("/d/fifo",), config) as plugin, pytest.raises(DeadlineExceeded):
        plugin.call_int("_start")


def test_idle_inherited_pipe_respects_the_deadline() -> None:
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)
    try:
        config = WasiConfig(stdin="inherit", stdout=bytearray(), stderr=bytearray())
        with _plugin("cat", (), config) as plugin, pytest.raises(DeadlineExceeded):
            plugin.call_int("_start")
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)


def test_pipe_with_data_is_read_normally() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"piped\n")
    os.close(write_end)
    saved = os.dup(0)
    os.dup2(read_end, 0)
    try:
        out = bytearray()
        config = WasiConfig(stdin="inherit", stdout=out, stderr=bytearray())
        with _plugin("cat", (), config) as plugin:
            plugin.call_int("_start")
        assert out == b"piped\n"
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(read_end)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_fd_exhaustion_is_capped_and_released(tmp_path: Path) -> None:
    """A guest that never closes gets EMFILE at the fd-table cap; closing the plugin
    closes every host fd it held."""
    out = bytearray()
    config = WasiConfig(args=("hostile_fd_exhaust", "/d"), preopens=[Preopen(tmp_path, "/d")],
                        stdout=out, stderr=bytearray(), max_fds=64)
    plugin = Plugin(WASM / "hostile_fd_exhaust.wasm", providers=[WasiProvider(config)])
    with plugin:
        loaded = _open_fds()  # the preopen is open from here on
        plugin.call_int("_start")
        # 64 table slots: stdio (3), the preopen, and 60 opened by the guest.
        assert out.decode().startswith("opened 60, then: ")
        assert _open_fds() == loaded + 60
    assert _open_fds() == loaded - 1
