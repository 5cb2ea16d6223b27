"""Run WASI guests under callgate's gated WASI, shaped like ``native_wasi.run_native``.

Both runners return ``native_wasi.Run``, so a test can run one guest on both and
compare stdout, stderr and exit code field by field.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from native_wasi import WASM, Run

from callgate.gates.spec import GuestExit
from callgate.gates.wasi import Preopen, WasiConfig, WasiProvider
from callgate.runtime import Plugin

REPO = Path(__file__).resolve().parents[2]


def run_gated(guest: str | Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None,
              stdin: bytes = b"", dirs: dict[str, Path] | None = None, policy: Any = None,
              readonly: tuple[str, ...] = (), argv0: str | None = None) -> Run:
    """Run a command guest's ``_start`` on callgate; capture stdio and the exit code."""
    path = guest if isinstance(guest, Path) else WASM / f"{guest}.wasm"
    out, err = bytearray(), bytearray()
    preopens = [Preopen(host, name, name in readonly) for name, host in (dirs or {}).items()]
    config = WasiConfig(args=(argv0 or Path(guest).stem, *args), env=env or {},
                        preopens=preopens, stdin=stdin, stdout=out, stderr=err)
    code = 0
    with Plugin(path, policy=policy, providers=[WasiProvider(config)]) as plugin:
        try:
            plugin.call_int("_start")
        except GuestExit as exc:
            code = exc.code
    return Run(code, bytes(out), bytes(err))


def tree(root: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry under ``root``: relative path -> (kind, content or link target)."""
    out: dict[str, tuple[str, bytes]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", bytes(path.readlink()))
        elif path.is_dir():
            out[rel] = ("dir", b"")
        else:
            out[rel] = ("file", path.read_bytes())
    return out


def copy_tree(src: Path, dst: Path) -> Path:
    """Copy a (possibly read-only) test directory into a writable scratch copy."""
    shutil.copytree(src, dst, symlinks=True)
    subprocess.run(["chmod", "-R", "u+w", str(dst)], check=True)
    return dst
