"""``Plugin.memory()`` kept across calls stays valid when the guest grows its memory.

It used to be a (base, size) snapshot: after ``memory.grow`` a read past the old size
failed with ``GuestMemoryError: … outside linear memory of 0x… bytes``.
"""

from __future__ import annotations

import pytest
from rt_helpers import wat

from callgate import GuestMemoryError, Plugin, PluginClosed

GROWER = wat("""
(module
  (memory (export "memory") 1)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "poke") (param i32 i32) (i32.store8 (local.get 0) (local.get 1))))
""")
PAGE = 65536


def test_a_kept_view_sees_memory_the_guest_grew_later() -> None:
    with Plugin(GROWER) as p:
        view = p.memory()
        assert view is not None and view.size == PAGE
        with pytest.raises(GuestMemoryError):
            view.read(PAGE + 10, 1)
        assert p.call_int("grow", 3) == 1
        p.call_int("poke", PAGE + 10, 0x5A)
        assert view.size == 4 * PAGE
        assert view.read(PAGE + 10, 1) == b"\x5a"
        view.write(3 * PAGE, b"host")
        assert view.read(3 * PAGE, 4) == b"host"
        with pytest.raises(GuestMemoryError):
            view.read(4 * PAGE - 2, 4)


def test_a_kept_view_of_a_closed_plugin_says_so() -> None:
    p = Plugin(GROWER)
    view = p.memory()
    p.close()
    assert view is not None
    with pytest.raises(PluginClosed):
        view.read(0, 1)
