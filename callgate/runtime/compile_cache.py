"""An on-disk cache of compiled modules, so a second run of a big module starts at once.

Compiling is the slow part of loading (Yosys's 69 MB: a minute or more); wasmtime can
serialize the machine code it produced and load it back in milliseconds. But
``Module.deserialize`` trusts its input completely - it maps the bytes as executable
code - so the cache must never become a way to inject code:

* the directory is created ``0700`` and used only if it is a real directory (not a
  symlink) owned by this user and closed to group and others;
* every entry carries an HMAC-SHA256 of its payload under a per-cache secret key
  (``key``, ``0600``); an entry whose tag does not verify is discarded with a
  warning and never deserialized - a corrupt file, a foreign one, or one edited by
  anyone who cannot read the key;
* entries are written to a temporary file and renamed into place, so concurrent
  writers never leave a torn entry.

An entry's name is a digest of everything that makes machine code valid: the module's
bytes, the wasmtime version, the engine configuration and the CPU's features. Where it
lives: ``$CALLGATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/callgate/modules``, else
``~/.cache/callgate/modules``; ``CALLGATE_CACHE=off`` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.metadata
import os
import platform
import stat
import tempfile
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import wasmtime

MAGIC = b"CGCACHE1"
TAG_BYTES = 32
KEY_BYTES = 32
SUFFIX = ".cwasm"


class CacheWarning(UserWarning):
    """The compile cache skipped something (an unsafe directory, a bad entry) and compiled."""


@dataclass(frozen=True, slots=True)
class CacheInfo:
    directory: Path | None
    entries: int
    total_bytes: int
    why_disabled: str | None = None


def default_directory() -> Path | None:
    """Where the cache lives by default, or None when ``CALLGATE_CACHE=off``."""
    if os.environ.get("CALLGATE_CACHE", "").lower() in ("0", "off", "no", "false"):
        return None
    explicit = os.environ.get("CALLGATE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callgate" / "modules"


@cache
def _platform_fingerprint() -> str:
    """The wasmtime version and the CPU features machine code may depend on."""
    flags = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith(("flags", "Features")):
                flags = line.split(":", 1)[1].strip()
                break
    return "|".join([importlib.metadata.version("wasmtime"), platform.machine(),
                     hashlib.sha256(flags.encode()).hexdigest()])


class CompileCache:
    """Compiled modules on disk under one directory (None: the cache is off)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._key: bytes | None = None
        self._why_disabled: str | None = None if directory else "turned off"

    # -- the two operations loading uses -----------------------------------------------

    def load(self, engine: wasmtime.Engine, engine_tag: str, data: bytes
             ) -> wasmtime.Module | None:
        """The cached module for ``data`` on this engine, or None (then compile it)."""
        path = self._entry(engine_tag, data)
        if path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._discard(path, f"cannot open it ({exc.strerror})")
            return None
        with os.fdopen(fd, "rb") as f:
            blob = f.read()
        payload = self._verified(blob)
        if payload is None:
            self._discard(path, "its authentication tag does not verify (corrupt, truncated "
                          "or written by someone else)")
            return None
        try:
            return wasmtime.Module.deserialize(engine, payload)
        except wasmtime.WasmtimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "refused"
            self._discard(path, f"wasmtime refused it ({first})")
            return None

    def store(self, engine_tag: str, data: bytes, module: wasmtime.Module) -> None:
        """Save ``module`` (compiled from ``data``); failures only cost the next start."""
        path = self._entry(engine_tag, data)
        key = self._key
        if path is None or key is None:
            return
        payload = bytes(module.serialize())
        blob = MAGIC + hmac.new(key, payload, hashlib.sha256).digest() + payload
        try:
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=SUFFIX)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(temp, path)
        except OSError as exc:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(temp)
            warnings.warn(f"callgate compile cache: cannot save {path.name}: {exc.strerror}",
                          CacheWarning, stacklevel=3)

    # -- callgate cache info | clear ---------------------------------------------------

    def info(self) -> CacheInfo:
        if self.directory is None or not self._usable():
            return CacheInfo(self.directory, 0, 0, self._why_disabled)
        sizes = [p.stat().st_size for p in self.directory.glob(f"*{SUFFIX}")]
        return CacheInfo(self.directory, len(sizes), sum(sizes))

    def clear(self) -> int:
        """Delete every entry (and the key); returns how many entries there were."""
        if self.directory is None or not self._usable():
            return 0
        entries = list(self.directory.glob(f"*{SUFFIX}")) + \
            list(self.directory.glob(f".tmp-*{SUFFIX}"))
        for path in [*entries, self.directory / "key"]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._key = None
        return sum(1 for p in entries if not p.name.startswith(".tmp-"))

    # -- internals ---------------------------------------------------------------------

    def _entry(self, engine_tag: str, data: bytes) -> Path | None:
        if self.directory is None or not self._usable():
            return None
        name = hashlib.sha256("\0".join([hashlib.sha256(data).hexdigest(), engine_tag,
                                         _platform_fingerprint()]).encode()).hexdigest()
        return self.directory / f"{name}{SUFFIX}"

    def _usable(self) -> bool:
        """Create or check the directory and the key; once refused, stay off (warned once)."""
        if self._key is not None:
            return True
        if self._why_disabled is not None or self.directory is None:
            return False
        problem = _secure_directory(self.directory)
        if problem is None:
            try:
                self._key = _read_or_create_key(self.directory / "key")
            except (OSError, ValueError) as exc:
                problem = f"its key file is unusable ({exc})"
        if problem is not None:
            self._why_disabled = problem
            warnings.warn(f"callgate compile cache disabled: {self.directory}: {problem}",
                          CacheWarning, stacklevel=4)
            return False
        return True

    def _verified(self, blob: bytes) -> bytes | None:
        key = self._key
        header = len(MAGIC) + TAG_BYTES
        if key is None or len(blob) < header or blob[:len(MAGIC)] != MAGIC:
            return None
        tag, payload = blob[len(MAGIC):header], blob[header:]
        if not hmac.compare_digest(tag, hmac.new(key, payload, hashlib.sha256).digest()):
            return None
        return payload

    def _discard(self, path: Path, why: str) -> None:
        warnings.warn(f"callgate compile cache: discarded {path.name}: {why}; recompiling",
                      CacheWarning, stacklevel=4)
        with contextlib.suppress(OSError):
            path.unlink()


def _secure_directory(directory: Path) -> str | None:
    """None when ``directory`` is safe to trust (made so if missing), else why not."""
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
        st = os.lstat(directory)
    except OSError as exc:
        return f"cannot create it ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return "it is not a directory (a symlink is refused too)"
    if st.st_uid != os.geteuid():
        return f"it belongs to uid {st.st_uid}, not to this user ({os.geteuid()})"
    if st.st_mode & 0o077:
        return (f"it is open to group or others (mode {stat.S_IMODE(st.st_mode):o}); "
                f"run: chmod 700 {directory}")
    return None


def _read_or_create_key(path: Path) -> bytes:
    """The cache's secret key; made atomically (hard-linked into place) if missing, so
    concurrent first users all end up with the one key that won."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".key-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(KEY_BYTES))
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        os.unlink(temp)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise ValueError("it must be owned by this user with mode 600")
        key = f.read(KEY_BYTES + 1)
    if len(key) != KEY_BYTES:
        raise ValueError(f"it holds {len(key)} bytes, not {KEY_BYTES}")
    return key


@cache
def default_cache() -> CompileCache:
    """The process-wide cache at :func:`default_directory`."""
    return CompileCache(default_directory())
