"""Pseudo filesystems and device nodes are out of a guest's reach through any preopen.

``RESOLVE_BENEATH`` lets a preopened ``/`` reach ``/proc/self/mem`` (an ordinary file
behind an ordinary symlink): a guest read the host's memory with ``fd_pread``, and a
writable ``/proc`` preopen let ``fd_pwrite`` change host objects. Opening anything on a
pseudo filesystem, or a device node but the harmless ones, now fails with EACCES.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from callgate import GuestExit, Plugin, Preopen, WasiConfig, WasiProvider
from callgate.gates.wasi import WasiConfigError
from callgate.gates.wasi.provider import preopen_arg

WASM = Path(__file__).resolve().parents[2] / "guests" / "wasm"
EACCES = 2  # WASI numbering


def run(args: list[str], preopens: list[Preopen]) -> dict[str, list[str]]:
    out = bytearray()
    config = WasiConfig(args=["escape_procfs", *args], preopens=preopens, stdout=out)
    with Plugin(WASM / "escape_procfs.wasm", providers=[WasiProvider(config)]) as p:
        try:
            p.call_int("_start")
        except GuestExit as exit_:
            assert exit_.code == 0
    lines = [line.split() for line in out.decode().splitlines()]
    return {parts[1]: parts[2:] for parts in lines if parts[0] == "open"}


PSEUDO_PATHS = ["proc/self/mem", "proc/self/maps", "proc/self/environ", "proc",
                "sys/kernel/mm"]


def cgroup_mounts() -> list[str]:
    """Where cgroup filesystems are mounted here (v1 or v2), as guest paths under /."""
    with open("/proc/self/mounts") as mounts:
        return [line.split()[1].lstrip("/") for line in mounts
                if line.split()[2] in ("cgroup", "cgroup2")][:2]


def test_a_preopened_root_cannot_reach_procfs_sysfs_or_cgroup() -> None:
    present = [p for p in PSEUDO_PATHS if os.path.exists("/" + p)] + cgroup_mounts()
    assert "proc/self/mem" in present and "sys/kernel/mm" in present
    opened = run(present, [Preopen("/", "/", readonly=True)])
    assert opened == {path: [str(EACCES)] for path in present}


def test_ordinary_files_under_the_same_preopen_still_open() -> None:
    opened = run(["etc/hostname", "dev/null"], [Preopen("/", "/", readonly=True)])
    assert opened == {"etc/hostname": ["0"], "dev/null": ["0"]}


def test_device_nodes_other_than_the_harmless_ones_are_refused(tmp_path: Path) -> None:
    os.mknod(tmp_path / "mem", stat.S_IFCHR | 0o600, os.makedev(1, 1))  # /dev/mem
    os.mknod(tmp_path / "loop", stat.S_IFBLK | 0o600, os.makedev(7, 0))  # a block device
    os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    opened = run(["mem", "loop", "null"], [Preopen(tmp_path, "/data")])
    assert opened == {"mem": [str(EACCES)], "loop": [str(EACCES)], "null": ["0"]}


def test_preopening_a_pseudo_filesystem_needs_the_hosts_explicit_opt_in() -> None:
    with pytest.raises(WasiConfigError, match=r"proc, a pseudo filesystem.*pseudo_fs=True"):
        run([], [Preopen("/proc", "/proc", readonly=True)])
    opened = run(["self/status"], [Preopen("/proc", "/proc", readonly=True, pseudo_fs=True)])
    assert opened == {"self/status": ["0"]}
    # The opt-in covers procfs only, not another pseudo filesystem mounted below it.
    if os.path.ismount("/proc/sys/fs/binfmt_misc"):
        opened = run(["sys/fs/binfmt_misc/status"],
                     [Preopen("/proc", "/proc", readonly=True, pseudo_fs=True)])
        assert opened == {"sys/fs/binfmt_misc/status": [str(EACCES)]}


def test_the_command_line_spells_the_opt_in_as_a_suffix() -> None:
    assert preopen_arg("/proc::/proc:ro:pseudo") == Preopen(Path("/proc"), "/proc", True, True)
    assert preopen_arg("/proc::/p:pseudo") == Preopen(Path("/proc"), "/p", False, True)
    assert preopen_arg("./data::/data:ro") == Preopen(Path("data"), "/data", True, False)
