"""Run committed guests on wasmtime's native WASI: the peer for differential tests.

wasmtime's WASI is native code with no per-call hook, so it is an independent
implementation to compare callgate's gated WASI against: same guest, same args,
env, stdin and preopens, and the stdout, stderr, exit code and files must agree.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import wasmtime

WASM = Path(__file__).resolve().parents[1] / "guests" / "wasm"
ENGINE = wasmtime.Engine()
_MODULES: dict[str, wasmtime.Module] = {}


def module(guest: str | Path) -> wasmtime.Module:
    """Compile a guest once per test session: a committed guest's name, or a .wasm path."""
    key = str(guest)
    if key not in _MODULES:
        path = guest if isinstance(guest, Path) else WASM / f"{guest}.wasm"
        _MODULES[key] = wasmtime.Module.from_file(ENGINE, str(path))
    return _MODULES[key]


StubFactory = Callable[[wasmtime.Store], wasmtime.Func]


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: bytes


def run_native(
    guest: str | Path,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    stdin: bytes = b"",
    dirs: dict[str, Path] | None = None,
    stubs: dict[str, StubFactory] | None = None,
    readonly: tuple[str, ...] = (),
) -> Run:
    """Run a WASI command guest on wasmtime's native WASI; capture its stdio and exit code.

    ``argv[0]`` is the guest's name; ``dirs`` maps guest paths to host directories;
    ``stubs`` replaces single WASI functions (by name) with test doubles, e.g. to
    make ``fd_allocate`` answer a chosen errno; the guest paths in ``readonly`` are
    preopened read-only (wasmtime's ``fs_mutable=False``, callgate's ``:ro``).
    """
    with tempfile.TemporaryDirectory(prefix="callgate-native-") as tmp:
        return _run(guest, args, env or {}, stdin, dirs or {}, stubs or {}, Path(tmp),
                    readonly)


def _run(guest: str | Path, args: tuple[str, ...], env: dict[str, str], stdin: bytes,
         dirs: dict[str, Path], stubs: dict[str, StubFactory], io: Path,
         readonly: tuple[str, ...]) -> Run:
    (io / "in").write_bytes(stdin)
    wasi = wasmtime.WasiConfig()
    wasi.argv = (Path(guest).stem, *args)
    wasi.env = list(env.items())
    wasi.stdin_file = str(io / "in")
    wasi.stdout_file = str(io / "out")
    wasi.stderr_file = str(io / "err")
    for guest_path, host in dirs.items():
        wasi.preopen_dir(str(host), guest_path, guest_path not in readonly)
    store = wasmtime.Store(ENGINE)
    store.set_wasi(wasi)
    linker = wasmtime.Linker(ENGINE)
    linker.define_wasi()
    linker.allow_shadowing = True
    for name, make in stubs.items():
        linker.define(store, "wasi_snapshot_preview1", name, make(store))
    instance = linker.instantiate(store, module(guest))
    try:
        instance.exports(store)["_start"](store)
        code = 0
    except wasmtime.ExitTrap as exit_:
        code = exit_.code
    return Run(code, (io / "out").read_bytes(), (io / "err").read_bytes())
