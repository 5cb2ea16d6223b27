"""The gate table: every function a plugin may import, from every gate provider.

A *provider* serves one import module (WASI preview1 serves
``wasi_snapshot_preview1``, app-defined gates serve ``callgate``) and offers a set
of numbered :class:`~callgate.gates.spec.GateSpec`\\ s. The runtime resolves each
import of a module against the table; an import that is not in it is refused at
load time, because an unmediated import would be a hole in the sandbox.

Gate names are unique across providers, not only within a module: a policy's
``[gates]`` rules name gates without their module, so two gates with one name
could not be told apart by the filter's author.

Contract for provider authors (the runtime calls nothing else):

* ``module`` and ``specs()`` are read once, when a :class:`GateTable` is built;
* ``instance_state(plugin)`` is called once per plugin instance, before the
  guest runs any code; what it returns is ``GateCall.state`` for every gate of
  that provider in that plugin. If the state has a ``close()`` method the
  runtime calls it when the plugin closes (release fds there);
* a gate that writes guest-supplied bytes anywhere (``fd_write``, ``fd_pwrite``,
  an app gate that stores data) calls ``call.plugin.charge_output(n)`` *before*
  writing ``n`` bytes; it raises ``OutputLimitExceeded`` once the plugin's
  per-call output cap is passed, and the runtime turns that into a trap;
* a gate that may block (``poll_oneoff``, a read from a pipe) waits at most
  ``call.plugin.remaining_time()`` seconds (None: no deadline), then calls
  ``call.plugin.check_deadline()``, which raises ``DeadlineExceeded`` once the
  call's deadline has passed: epoch interruption cannot reach Python code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from callgate.arch import AUDIT_ARCH_CALLGATE, Arch
from callgate.errors import CallgateError
from callgate.gates.host import GateHost
from callgate.gates.spec import GateSpec


class GateTableError(CallgateError):
    """Two gates claim one name or number, or a provider serves another module's gates."""


@runtime_checkable
class GateProvider(Protocol):
    """One import module's gates (WASI preview1, app-defined gates, …)."""

    module: str

    def specs(self) -> Sequence[GateSpec]:
        """Every gate this provider offers, each with its stable number."""
        ...

    def instance_state(self, plugin: GateHost) -> object:
        """Per-plugin state handed to the gates as ``GateCall.state``.

        Its type is the provider's business (``WasiState`` for WASI); the runtime only
        passes it on, and calls its ``close()`` if it has one.
        """
        ...


class GateTable:
    """The gates of several providers, looked up by ``(module, name)`` or by number."""

    __slots__ = ("_by_import", "_by_name", "_by_number", "arch", "providers")

    def __init__(self, providers: Iterable[GateProvider]) -> None:
        self.providers: tuple[GateProvider, ...] = tuple(providers)
        by_import: dict[tuple[str, str], tuple[GateSpec, GateProvider]] = {}
        by_name: dict[str, GateSpec] = {}
        by_number: dict[int, GateSpec] = {}
        modules: set[str] = set()
        for provider in self.providers:
            if provider.module in modules:
                raise GateTableError(f"two gate providers serve module {provider.module!r}")
            modules.add(provider.module)
            for spec in provider.specs():
                _check_spec(spec, provider, by_name, by_number)
                by_import[(spec.module, spec.name)] = (spec, provider)
                by_name[spec.name] = spec
                by_number[spec.number] = spec
        self._by_import = by_import
        self._by_name = MappingProxyType(by_name)
        self._by_number = MappingProxyType(by_number)
        # The filter's view: a gate "architecture" whose name table holds every gate here.
        self.arch = Arch("callgate", AUDIT_ARCH_CALLGATE,
                         MappingProxyType({s.name: s.number for s in by_name.values()}))

    def find(self, module: str, name: str) -> tuple[GateSpec, GateProvider] | None:
        """The gate an import ``module.name`` resolves to, with its provider, or None."""
        return self._by_import.get((module, name))

    def by_name(self, name: str) -> GateSpec | None:
        return self._by_name.get(name)

    def by_number(self, number: int) -> GateSpec | None:
        return self._by_number.get(number)

    def names(self) -> frozenset[str]:
        return frozenset(self._by_name)

    def __iter__(self) -> Iterator[GateSpec]:
        """Every gate, in number order (how ``callgate gates`` prints them)."""
        return iter(sorted(self._by_number.values(), key=lambda s: s.number))

    def __len__(self) -> int:
        return len(self._by_number)


def _check_spec(spec: GateSpec, provider: GateProvider, by_name: dict[str, GateSpec],
                by_number: dict[int, GateSpec]) -> None:
    if spec.module != provider.module:
        raise GateTableError(f"provider of module {provider.module!r} offers gate "
                             f"{spec.module}.{spec.name} of another module")
    if not 0 <= spec.number <= 0xFFFFFFFF:
        raise GateTableError(f"gate {spec.name!r} has number {spec.number}, outside u32")
    if spec.name in by_name:
        other = by_name[spec.name]
        raise GateTableError(f"gate name {spec.name!r} is taken by {other.module}.{other.name} "
                             f"(policies name gates without their module, so names are unique)")
    if spec.number in by_number:
        other = by_number[spec.number]
        raise GateTableError(f"gate number {spec.number:#x} of {spec.module}.{spec.name} is "
                             f"taken by {other.module}.{other.name}")
