"""The public surface of ``Plugin`` and ``Limits``: what ``help()`` shows, what each call
documents it raises (and does raise), and a clear error for every bad ``Limits`` field."""

from __future__ import annotations

import dataclasses
import inspect
import pydoc
import re

import pytest
from rt_helpers import guest, wat

from callgate import Limits, Plugin
from callgate.gates import errors
from callgate.gates.memory import GuestMemory, GuestMemoryError
from callgate.runtime.limits import LimitsError

# What an application (or a gate, through the GateHost protocol) may use. A new public
# name must be added here on purpose; a helper the runtime needs takes a leading "_".
PUBLIC = {
    # calling
    "call", "call_int", "call_async", "call_int_async", "cancel", "export_signature",
    "memory",
    # the GateHost protocol gates use
    "charge_output", "check_deadline", "remaining_time", "output_used",
    # state and lifetime
    "close", "closed", "counters", "filter_mode", "poisoned",
}


def test_help_shows_the_public_api_only() -> None:
    text = pydoc.render_doc(Plugin, renderer=pydoc.plaintext)
    shown = set(re.findall(r"^ \|  (?:async )?([a-z]\w*)(?:\(|$)", text, re.M))
    assert shown == PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_name_is_documented(name: str) -> None:
    assert inspect.getdoc(getattr(Plugin, name)), name


def documented_errors(obj: object) -> set[str]:
    doc = inspect.getdoc(obj) or ""
    return set(re.findall(r"\b([A-Z]\w*(?:Error|Exceeded|Exhausted|Overflow|Trap|Violation|"
                          r"Killed|Poisoned|Closed|Cancelled|Denied|Exit))\b", doc))


@pytest.mark.parametrize("obj", [Plugin.call_int, Plugin.call, Plugin.memory, GuestMemory,
                                 GuestMemory.read, GuestMemory.write, GuestMemory.u32,
                                 GuestMemory.iovecs])
def test_documented_errors_exist(obj: object) -> None:
    names = documented_errors(obj)
    assert names, f"{obj} documents no error"
    known = {*vars(errors), "GuestMemoryError", "GuestExit", "TypeError", "UnicodeDecodeError"}
    assert names <= known


def test_each_call_raises_what_it_documents() -> None:
    plugin = Plugin(guest("hello"))
    view = plugin.memory()
    assert view is not None
    cases = [
        (Plugin.call_int, errors.AbiError, lambda: plugin.call_int("no_such_export")),
        (Plugin.call_int, TypeError, lambda: plugin.call_int("add", 1)),
        (Plugin.call, errors.AbiError, lambda: plugin.call("add", b"x")),
        (GuestMemory.read, GuestMemoryError, lambda: view.read(view.size - 1, 2)),
        (GuestMemory.write, GuestMemoryError, lambda: view.write(-1, b"x")),
        (GuestMemory.u32, GuestMemoryError, lambda: view.u32(view.size)),
    ]
    for documented_in, error, action in cases:
        assert error.__name__ in documented_errors(documented_in), (documented_in, error)
        with pytest.raises(error):
            action()
    plugin.close()
    for documented_in, action in ((Plugin.call_int, lambda: plugin.call_int("add", 1, 2)),
                                  (Plugin.memory, plugin.memory),
                                  (GuestMemory, lambda: view.read(0, 1))):
        assert "PluginClosed" in documented_errors(documented_in)
        with pytest.raises(errors.PluginClosed):
            action()


def test_a_poisoned_plugin_raises_what_call_int_documents() -> None:
    module = wat("""
        (module (import "wasi_snapshot_preview1" "sched_yield" (func $y (result i32)))
          (memory (export "memory") 1)
          (func (export "go") (result i32) (call $y)))""")
    policy = '[gates]\ndefault = "kill_process"\n'
    with Plugin(module, policy=policy) as plugin:
        with pytest.raises(errors.PluginKilled):
            plugin.call_int("go")
        with pytest.raises(errors.PluginPoisoned):
            plugin.call_int("go")
    assert {"PluginKilled", "PluginPoisoned"} <= documented_errors(Plugin.call_int)


# Values no field of Limits may take, and what the message must say.
BAD_VALUES = ["1s", -1, True, 1.5, float("nan"), float("inf"), [1], None]
OPTIONAL = {f.name for f in dataclasses.fields(Limits)} - {"stack"}


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Limits)])
@pytest.mark.parametrize("bad", BAD_VALUES, ids=repr)
def test_every_limits_field_refuses_bad_values_by_name(field: str, bad: object) -> None:
    if bad is None and field in OPTIONAL:
        Limits(**{field: None})  # None means "no limit" for every field but the stack
        return
    if field == "timeout" and bad == 1.5:
        Limits(timeout=1.5)  # seconds may be fractional
        return
    with pytest.raises(LimitsError) as info:
        Limits(**{field: bad})
    message = str(info.value)
    assert f"Limits.{field}" in message and "\n" not in message
    assert isinstance(info.value, ValueError)  # what a caller validating input catches
