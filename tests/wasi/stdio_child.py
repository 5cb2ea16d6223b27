"""Run one WASI command guest with this process's own stdio inherited: wasmtime or callgate.

    python stdio_child.py ENGINE GUEST ARG...

``ENGINE`` is ``wasmtime`` (wasmtime-py's native WASI, ``inherit_stdin/out/err``)
or ``callgate`` (``WasiConfig(stdin="inherit", stdout="inherit", stderr="inherit")``).
The parent decides what fds 0, 1 and 2 are (a pty, a pipe, ``/dev/null``, a
regular file), so the guest sees exactly that stdio under both engines. Exits
with the guest's exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path

WASM = Path(__file__).resolve().parents[2] / "guests" / "wasm"


def run_wasmtime(wasm: Path, argv: tuple[str, ...]) -> int:
    import wasmtime

    engine = wasmtime.Engine()
    wasi = wasmtime.WasiConfig()
    wasi.argv = argv
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, wasmtime.Module.from_file(engine, str(wasm)))
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as exit_:
        return exit_.code
    return 0


def run_callgate(wasm: Path, argv: tuple[str, ...]) -> int:
    from callgate.gates.spec import GuestExit
    from callgate.gates.wasi import WasiConfig, WasiProvider
    from callgate.runtime import Plugin

    config = WasiConfig(args=argv, stdin="inherit", stdout="inherit", stderr="inherit")
    with Plugin(wasm, providers=[WasiProvider(config)]) as plugin:
        try:
            plugin.call_int("_start")
        except GuestExit as exit_:
            return exit_.code
    return 0


def main() -> int:
    engine, guest, *args = sys.argv[1:]
    runner = {"wasmtime": run_wasmtime, "callgate": run_callgate}[engine]
    return runner(WASM / f"{guest}.wasm", (guest, *args))


if __name__ == "__main__":
    sys.exit(main())
