"""A guest cannot take the host's last fds: its fd table leaves the host headroom.

``WasiConfig.max_fds`` defaults to 256, and the table a plugin gets is never more
than half the fds the process has free (soft RLIMIT_NOFILE minus fds open) when
the plugin starts; docs/wasi.md states the rule.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from callgate.gates.wasi import Preopen, WasiConfig
from callgate.gates.wasi.state import DEFAULT_MAX_FDS, HOST_SHARE, fd_table_size

WASM = Path(__file__).resolve().parents[2] / "guests" / "wasm"

# Opens the preopen until EMFILE with the default WasiConfig, keeps the plugin (and
# every fd the guest holds) open, and then has the host open files.
EXHAUST = textwrap.dedent("""
    import os, resource, sys
    from callgate.gates.spec import GuestExit
    from callgate.gates.wasi import Preopen, WasiConfig, WasiProvider
    from callgate.runtime import Plugin

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[3]), hard))
    out = bytearray()
    config = WasiConfig(args=["hostile_fd_exhaust", "/d"], preopens=[Preopen(sys.argv[2], "/d")],
                        stdout=out)
    with Plugin(sys.argv[1], providers=[WasiProvider(config)]) as plugin:
        try:
            plugin.call_int("_start")
        except GuestExit:
            pass
        held = []
        for _ in range(32):  # the host still opens files while the guest holds its fds
            held.append(os.open(sys.argv[2], os.O_RDONLY))
        for fd in held:
            os.close(fd)
    print(out.decode().strip())
""")


def exhaust(tmp_path: Path, soft_limit: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", EXHAUST, str(WASM / "hostile_fd_exhaust.wasm"),
                           str(tmp_path), str(soft_limit)],
                          capture_output=True, text=True, timeout=120)


def test_a_guest_opening_fds_until_it_fails_leaves_the_host_able_to_open_files(tmp_path):
    # 200 is under the default max_fds (256): without the headroom rule the guest would
    # take every fd the process has left, and the host's open() would fail with EMFILE.
    done = exhaust(tmp_path, 200)
    assert done.returncode == 0, done.stderr
    opened = int(done.stdout.split()[1].rstrip(","))
    assert "then:" in done.stdout  # the guest was stopped (EMFILE), not satisfied
    assert 50 < opened < 100  # about half of what was free, less stdio and the preopen


def test_with_room_to_spare_the_table_is_max_fds(tmp_path):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard RLIMIT_NOFILE ({hard}) leaves no room to spare")
    done = exhaust(tmp_path, 4096)
    assert done.returncode == 0, done.stderr
    # 256 table slots: stdio (3), the preopen, and what the guest opened.
    assert done.stdout.startswith(f"opened {DEFAULT_MAX_FDS - 4}, then: "), done.stdout


def test_the_table_size_rule(tmp_path):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    config = WasiConfig(preopens=[Preopen(tmp_path, "/d")], max_fds=10**6)
    size = fd_table_size(config)
    if soft != resource.RLIM_INFINITY:
        assert size <= soft // HOST_SHARE
    assert fd_table_size(WasiConfig()) <= DEFAULT_MAX_FDS
    # Never below what the config itself hands over (stdio and the preopen).
    assert fd_table_size(WasiConfig(preopens=[Preopen(tmp_path, "/d")], max_fds=4)) == 4
