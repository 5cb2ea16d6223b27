"""What a job names, turned into what a worker can use: modules by digest, policies as text.

A job names its module by path or by ``sha256:HEX`` in a :class:`ModuleStore`, and its
policy by path or shipped name. The coordinator reads each once, and ships *content*:
a module's bytes go to a worker the first time that worker needs that digest (the
worker keeps it, and compiles it once per engine setting), a policy's text likewise.
So a job that travels to another machine (the Ray engine) carries no path at all.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from callgate.batch.schema import BatchError
from callgate.policy import Policy, load_policy_text
from callgate.runtime.loading import MAX_MODULE_BYTES

DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
#: Shipped policies a job may name instead of a file.
SHIPPED = ("default", "default+fs")
#: The policy of a job that names none (unless the batch says otherwise): the shipped
#: least-privilege default plus its filesystem overlay, because every job has a scratch
#: directory preopened.
DEFAULT_POLICY = "default+fs"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ModuleStore:
    """A directory of modules named by content: ``HEX.wasm`` holds the module whose
    SHA-256 is HEX. ``add`` puts one in; a job then names it ``sha256:HEX``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def add(self, module: bytes | str | os.PathLike[str]) -> str:
        """Store ``module`` (bytes or a path); return its ``sha256:HEX`` name."""
        data = module if isinstance(module, bytes) else read_module(Path(module))
        name = digest_of(data)
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(name)
        if not target.exists():
            tmp = target.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return name

    def path(self, name: str) -> Path:
        match = DIGEST.match(name)
        if match is None:
            raise BatchError(f"{name!r} is not a module digest (sha256: and 64 hex digits)")
        return self.directory / f"{match.group(1)}.wasm"

    def get(self, name: str) -> bytes:
        """The module named ``name``, checked against its digest."""
        path = self.path(name)
        try:
            data = read_module(path)
        except BatchError:
            raise BatchError(f"module {name} is not in the module store {self.directory}"
                             ) from None
        if digest_of(data) != name:
            raise BatchError(f"module store file {path} does not hash to its name")
        return data


def read_module(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_MODULE_BYTES + 1)
    except OSError as exc:
        raise BatchError(f"cannot read module {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_MODULE_BYTES:
        raise BatchError(f"module {path} is larger than {MAX_MODULE_BYTES} bytes")
    return data


class Modules:
    """The coordinator's view of every module a batch names: ``resolve`` turns a job's
    reference into a digest (reading a path once), ``get`` gives a digest's bytes when a
    worker asks for them (kept in a bounded cache, re-read from the source if dropped)."""

    def __init__(self, base: Path, store: ModuleStore | None, cache_bytes: int = 512 << 20
                 ) -> None:
        self.base = base
        self.store = store
        self._by_path: dict[str, str] = {}
        self._source: dict[str, Path | None] = {}  # digest -> path (None: the store)
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._held = 0

    def resolve(self, reference: str) -> str:
        if reference.startswith("sha256:"):
            if self.store is None:
                raise BatchError(f"module {reference} is a digest, but the batch has no module "
                                 "store (--modules DIR)")
            if reference not in self._source:
                self._remember(reference, None, self.store.get(reference))
            return reference
        digest = self._by_path.get(reference)
        if digest is None:
            path = self.base / reference
            data = read_module(path)
            digest = digest_of(data)
            self._by_path[reference] = digest
            self._remember(digest, path, data)
        return digest

    def get(self, digest: str) -> bytes:
        data = self._cache.get(digest)
        if data is not None:
            self._cache.move_to_end(digest)
            return data
        if digest not in self._source:
            raise BatchError(f"module {digest} was never named by a job")
        source = self._source[digest]
        if source is None:
            assert self.store is not None
            data = self.store.get(digest)
        else:
            data = read_module(source)
            if digest_of(data) != digest:
                raise BatchError(f"module {source} changed during the batch")
        self._keep(digest, data)
        return data

    def _remember(self, digest: str, source: Path | None, data: bytes) -> None:
        self._source.setdefault(digest, source)
        self._keep(digest, data)

    def _keep(self, digest: str, data: bytes) -> None:
        if digest in self._cache:
            return
        self._cache[digest] = data
        self._held += len(data)
        while self._held > self._cache_bytes and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._held -= len(dropped)


# --- policies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicySpec:
    """A policy as it travels to a worker: a key (its content's digest), a name for
    messages, and either a shipped name or the TOML text."""

    key: str
    name: str
    shipped: str | None = None
    text: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"key": self.key, "name": self.name, "shipped": self.shipped, "text": self.text}

    @classmethod
    def from_json(cls, obj: dict[str, str | None]) -> PolicySpec:
        return cls(str(obj["key"]), str(obj["name"]), obj.get("shipped"), obj.get("text"))


class Policies:
    """The coordinator's policies: each reference read and checked once."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._specs: dict[str, PolicySpec] = {}

    def resolve(self, reference: str) -> PolicySpec:
        spec = self._specs.get(reference)
        if spec is not None:
            return spec
        if reference in SHIPPED:
            spec = PolicySpec("shipped:" + reference, reference, shipped=reference)
        else:
            path = self.base / reference
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise BatchError(f"cannot read policy {reference}: "
                                 f"{getattr(exc, 'strerror', None) or exc}") from None
            spec = PolicySpec("sha256:" + hashlib.sha256(text.encode()).hexdigest(), reference,
                              text=text)
        build_policy(spec)  # refuse a bad policy here, once, not in every worker
        self._specs[reference] = spec
        return spec


def build_policy(spec: PolicySpec) -> Policy:
    """The :class:`Policy` of ``spec``; a policy that cannot be used is a BatchError.

    A batch policy must be TOML with a ``[gates]`` section (the kernel filter of each
    job's process is derived from it, so a bare filter program cannot be used)."""
    try:
        if spec.shipped is not None:
            return shipped_policy(spec.shipped)
        assert spec.text is not None
        policy = load_policy_text(spec.text, source=spec.name).policy
    except BatchError:
        raise
    except Exception as exc:  # a PolicyError, or a TOML error: the message says where
        raise BatchError(f"policy {spec.name}: {exc}") from None
    if policy.gates is None:
        raise BatchError(f"policy {spec.name} has no [gates] section")
    return policy


def shipped_policy(name: str) -> Policy:
    """``default`` or ``default+fs`` (default.toml with the default-fs.toml overlay's rules)."""
    if name not in SHIPPED:
        raise BatchError(f"no shipped policy {name!r} (shipped: {', '.join(SHIPPED)})")
    base = _shipped_file("default.toml")
    if name == "default":
        return base
    overlay = _shipped_file("default-fs.toml")
    assert base.gates is not None and overlay.gates is not None
    gates = type(base.gates)(default=base.gates.default,
                             rules=base.gates.rules + overlay.gates.rules)
    return Policy(gates=gates, source="default.toml + default-fs.toml")


def _shipped_file(name: str) -> Policy:
    text = (resources.files("callgate.policies") / name).read_text()
    return load_policy_text(text, source=name).policy
