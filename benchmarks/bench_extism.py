"""Extism 1.1.1 (Python SDK), the nearest peer: a host_fn call and a Plugin.call.

Usage: ``python benchmarks/bench_extism.py [N]`` (or through ``benchmarks/run.py``).

The guest is ``benchmarks/guests/extism_calls.wat``, built with ``wasmtime.wat2wasm``
at run time. It imports Extism's host ABI (``extism:host/env``) and two host functions
(``extism:host/user``): ``probe`` with 7 i64 args and ``probe1`` with one, the same
shapes as callgate's ``guests/src/gatecall*.wat``.

* wasm → host: the guest's ``run`` export calls the host function N times in a wasm
  loop (one ``Plugin.call`` per sample), so the figure is per host call; the single
  ``Plugin.call`` around the loop is spread over N and is negligible.
* Python → wasm: ``Plugin.call("echo", 8 bytes)`` — Extism's only way in is its bytes
  ABI (input copied into Extism's memory, output copied back), so this is Extism's
  cheapest call from Python. It is compared with callgate's own bytes-ABI call
  (``Plugin.call("upper", 8 bytes)`` on ``guests/wasm/upper.wasm``), measured here too.

The host functions use an explicit ``signature`` (raw ``Val`` lists), Extism's fastest
host-function form; type-inferred ones add conversion per argument.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from common import FUNC_1, FUNC_7, FUNC_CALL, HOST_FN_7, Row, timed_row, unavailable

GROUP_HOST = "wasm → host call"
GROUP_CALL = "Python → wasm call"
HOST_FN_1 = "Extism host_fn, 1 arg"
PLUGIN_CALL = "Extism Plugin.call (bytes ABI, 8 B in/out)"
CALLGATE_BYTES = "callgate Plugin.call (bytes ABI, 8 B in/out)"
UPPER = Path(__file__).resolve().parents[1] / "guests" / "wasm" / "upper.wasm"
GUEST = Path(__file__).resolve().parent / "guests" / "extism_calls.wat"

try:
    import extism
except ImportError:  # an optional peer: the `bench` extra installs it
    extism = None


def _plugin() -> object:
    import wasmtime

    types = extism.ValType

    def probe(_plugin: object, params: list, results: list, *_user_data: object) -> None:
        results[0].value = params[0].value + params[6].value

    def probe1(_plugin: object, params: list, results: list, *_user_data: object) -> None:
        results[0].value = params[0].value + 1

    functions = [
        extism.host_fn(name="probe", namespace="extism:host/user",
                       signature=([types.I64] * 7, [types.I64]))(probe),
        extism.host_fn(name="probe1", namespace="extism:host/user",
                       signature=([types.I64], [types.I64]))(probe1),
    ]
    wasm = wasmtime.wat2wasm(GUEST.read_text())
    return extism.Plugin(bytes(wasm), wasi=False, functions=functions)


def _loop(plugin: object, export: str, expect: int) -> object:
    """A batch running ``count`` host calls inside one Plugin.call, checking the result."""

    def batch(count: int) -> None:
        out = plugin.call(export, struct.pack("<Q", count))
        total = struct.unpack("<Q", out)[0]
        if total != expect_sum(count, expect):
            raise AssertionError(f"extism {export} returned {total}")

    return batch


def expect_sum(count: int, extra: int) -> int:
    """What the guest's loop returns: sum over i of (i + extra), wrapping at 64 bits."""
    return (count * (count - 1) // 2 + count * extra) % 2**64


def callgate_bytes_row(n: int, repeats: int) -> Row:
    """callgate's own bytes-ABI call, the like-for-like peer of Extism's Plugin.call."""
    from callgate.runtime import Plugin

    payload = b"abcdefgh"
    with Plugin(UPPER) as plugin:

        def upper(count: int) -> None:
            call = plugin.call
            for _ in range(count):
                if call("upper", payload) != b"ABCDEFGH":
                    raise AssertionError("callgate upper returned the wrong bytes")

        return timed_row(CALLGATE_BYTES, upper, inner=max(1, n // 4), repeats=repeats,
                         group=GROUP_CALL, baseline=FUNC_CALL,
                         note="guests/wasm/upper.wasm: cg_alloc, copy in, call, copy out")


def run(n: int) -> list[Row]:
    """Extism rows (and callgate's bytes-ABI call beside them); ``n`` host calls per sample,
    ``n`` // 4 Plugin.calls per sample."""
    repeats = 15 if n >= 10_000 else 5
    return [callgate_bytes_row(n, repeats), *_extism_rows(n, repeats)]


def _extism_rows(n: int, repeats: int) -> list[Row]:
    if extism is None:
        why = "extism is not installed (pip install -e '.[bench]')"
        return [
            unavailable(HOST_FN_1, why, group=GROUP_HOST, baseline=FUNC_1),
            unavailable(HOST_FN_7, why, group=GROUP_HOST, baseline=FUNC_7),
            unavailable(PLUGIN_CALL, why, group=GROUP_CALL, baseline=CALLGATE_BYTES),
        ]
    plugin = _plugin()
    payload = struct.pack("<Q", 0x1234_5678_9ABC_DEF0)

    def echo(count: int) -> None:
        call = plugin.call
        for _ in range(count):
            if call("echo", payload) != payload:
                raise AssertionError("extism echo changed its input")

    version = f"extism {extism.extism_version()} runtime"
    return [
        timed_row(HOST_FN_1, _loop(plugin, "run1", 1), inner=n, repeats=repeats,
                  group=GROUP_HOST, baseline=FUNC_1, note=version),
        timed_row(HOST_FN_7, _loop(plugin, "run", 7), inner=n, repeats=repeats,
                  group=GROUP_HOST, baseline=FUNC_7, note=version),
        timed_row(PLUGIN_CALL, echo, inner=max(1, n // 4), repeats=repeats,
                  group=GROUP_CALL, baseline=CALLGATE_BYTES,
                  note="input copied in, output copied out"),
    ]


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000):
        print(f"{row.name:50} {row.median_ns or 0:10.1f} ns  {row.note}")
