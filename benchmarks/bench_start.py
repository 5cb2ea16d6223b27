"""Start-up: a warm ``Plugin`` (the second of one module and policy in a process) against
plain wasmtime-py instantiating the same module (issue 14, item 5).

Usage: ``python benchmarks/bench_start.py [N]`` prints these rows alone;
``benchmarks/run.py`` runs them with everything else and writes ``RESULTS.md``.

The module is ``guests/wasm/cat.wasm`` (31 KB, 11 WASI imports) unless a row says
otherwise; the policy is ``callgate/policies/default.toml``. Every row is one whole
start, from a path to a usable instance, and its end: a callgate row is
``Plugin(path, policy=path)`` then ``close()``; a wasmtime-py row is a new ``Store``,
the imports, an ``Instance``, and dropping them. The module is compiled once before
timing in both, so neither pays for Cranelift:

* **wasmtime-py, native WASI**: ``Linker.define_wasi`` and ``Linker.instantiate`` with a
  ``WasiConfig``: no mediation at all, and nothing callgate could be faster than;
* **wasmtime-py, a Python ``Func`` per import**: what any host that puts Python behind
  each import builds, the closest like-for-like peer;
* **callgate, warm**: what every ``Plugin`` after the first pays: reading the module
  and policy files (their parses, the header, the compiled module and the filter plan
  come from the caches when the files are unchanged), the gate table, the WASI state,
  one gate binding per import, the store and the instance;
* **callgate, first in a process**: the same with every in-process cache cleared, the
  module deserialized from an on-disk compile cache (a temporary directory): what the
  caches save;
* the cached phases alone, so the rest can be attributed to binding and instantiation.
"""

from __future__ import annotations

import functools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import wasmtime
from common import WARM_START, Row, timed_row

from callgate.gates.table import GateTable
from callgate.gates.wasi import WasiProvider
from callgate.runtime import Plugin, filter_plan, loading
from callgate.runtime.compile_cache import CompileCache

ROOT = Path(__file__).resolve().parents[1]
GUESTS = ROOT / "guests" / "wasm"
POLICY = ROOT / "callgate" / "policies" / "default.toml"
GROUP = "Start-up: a warm Plugin against wasmtime-py instantiating the same module"
FUNC_START = "wasmtime-py start: Store + a Python Func per import + Instance, cat.wasm"
NATIVE_START = "wasmtime-py start: Store + native WASI (Linker) + Instance, cat.wasm"


def _each(start: Callable[[], object]) -> Callable[[int], None]:
    def batch(count: int) -> None:
        for _ in range(count):
            start()
    return batch


def _start(path: Path) -> None:
    Plugin(path, policy=POLICY).close()


def _clear_caches() -> None:
    loading._compile_cached.cache_clear()
    loading.header_of.cache_clear()
    filter_plan._parsed.cache_clear()
    filter_plan._evaluator.cache_clear()


def _imports(table: GateTable) -> object:
    header = loading.header_of(loading.module_bytes(GUESTS / "cat.wasm")[0])
    assert header is not None
    return loading.resolve_imports(header, table)


def peer_rows(inner: int, repeats: int) -> list[Row]:
    engine = wasmtime.Engine()
    module = wasmtime.Module.from_file(engine, str(GUESTS / "cat.wasm"))
    types = [imp.type for imp in module.imports]
    linker = wasmtime.Linker(engine)
    linker.define_wasi()

    def native() -> None:
        store = wasmtime.Store(engine)
        store.set_wasi(wasmtime.WasiConfig())
        linker.instantiate(store, module)

    def funcs() -> None:
        store = wasmtime.Store(engine)
        imports = [wasmtime.Func(store, ty, lambda *args: 0) for ty in types
                   if isinstance(ty, wasmtime.FuncType)]
        wasmtime.Instance(store, module, imports)

    return [
        timed_row(NATIVE_START, _each(native), inner=inner, repeats=repeats, group=GROUP,
                  note="no mediation: wasmtime's own WASI, in Rust"),
        timed_row(FUNC_START, _each(funcs), inner=inner, repeats=repeats, group=GROUP,
                  note=f"{len(types)} imports, each a wasmtime-py Func"),
    ]


def callgate_rows(inner: int, repeats: int) -> list[Row]:
    rows = []
    for guest, name in (("cat", WARM_START),
                        ("lines", "callgate Plugin start + close, warm: lines.wasm, default.toml")):
        path = GUESTS / f"{guest}.wasm"
        size = path.stat().st_size
        Plugin(path, policy=POLICY).close()  # the first: fills the caches
        rows.append(timed_row(
            name, _each(functools.partial(_start, path)), inner=inner,
            repeats=repeats, group=GROUP, baseline=FUNC_START,
            note=f"{size / 1024:.0f} KiB module; policy, header, module and filter from caches"))
    with tempfile.TemporaryDirectory() as tmp:
        disk = CompileCache(Path(tmp))
        cat = GUESTS / "cat.wasm"
        Plugin(cat, policy=POLICY, compile_cache=disk).close()  # the disk entry

        def first() -> None:
            _clear_caches()
            Plugin(cat, policy=POLICY, compile_cache=disk).close()

        rows.append(timed_row(
            "callgate Plugin start + close, first in a process: cat.wasm, default.toml",
            _each(first), inner=max(1, inner // 20), repeats=repeats, group=GROUP,
            baseline=WARM_START,
            note="in-process caches cleared; module deserialized from the disk cache"))
    _clear_caches()
    Plugin(GUESTS / "cat.wasm", policy=POLICY).close()
    table = GateTable([WasiProvider()])
    data, _ = loading.module_bytes(GUESTS / "cat.wasm")
    phases = [
        ("callgate warm phase: policy read + parse (cached) + filter plan (cached)",
         lambda: filter_plan.plan_filter(POLICY, table), "the file is read; the rest is lookups"),
        ("callgate warm phase: module read + header (cached) + resolve imports",
         lambda: _imports(table), "the file is read; the header is a lookup"),
        ("callgate warm phase: gate table (WASI preview1, 46 gates)",
         lambda: GateTable([WasiProvider()]), "built per plugin: providers carry config"),
        ("callgate uncached: parse and check default.toml",
         lambda: filter_plan._parsed.__wrapped__(POLICY.read_text(), str(POLICY), "toml", ()),
         "what the policy cache saves on every start after the first"),
        ("callgate uncached: read cat.wasm's header",
         lambda: loading.header_of.__wrapped__(data), "what the header cache saves"),
    ]
    for name, fn, note in phases:
        rows.append(timed_row(name, _each(fn), inner=inner, repeats=repeats, group=GROUP,
                              note=note))
    return rows


def run(n: int) -> list[Row]:
    """Rows for ``benchmarks/run.py``; ``n`` scales the starts per sample (n / 100)."""
    inner = max(5, n // 100)
    repeats = 15 if n >= 10_000 else 3
    return peer_rows(inner, repeats) + callgate_rows(inner, repeats)


if __name__ == "__main__":
    from run import format_value  # benchmarks/ is on sys.path when run from there

    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000):
        print(f"{row.name:80} {format_value(row):>12}  {row.note}")
