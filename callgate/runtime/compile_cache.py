"""An on-disk cache of compiled modules, so a second run of a big module starts at once.

Compiling is the slow part of loading (Yosys's 69 MB: a minute or more); wasmtime can
serialize the machine code it produced and load it back in milliseconds. But
``Module.deserialize`` trusts its input completely - it maps the bytes as executable
code - so the cache must never become a way to inject code:

* the directory is created ``0700`` and used only if it is a real directory (not a
  symlink) owned by this user and closed to group and others;
* every entry carries an HMAC-SHA256 of its key and its bytes under a per-cache secret
  key (the file ``key``, ``0600``); an entry whose tag does not verify is discarded
  with a warning and never deserialized - a corrupt file, a foreign one, one copied
  under another module's name, or one edited by anyone who cannot read the key;
* entries are written to a temporary file and renamed into place, so concurrent
  writers never leave a torn entry.

An entry is the module exactly as ``Module.serialize`` wrote it, in a file named
``NAME-TAG.cwasm``: NAME is a digest of everything that makes machine code valid (the
module's bytes, the wasmtime version, the engine configuration, the CPU's features),
TAG the HMAC. So a hit reads the file once, to check the tag; a big entry is then mapped
by wasmtime from that same open file (``/proc/self/fd/N``) rather than copied through
Python: a 150 MB entry costs no 150 MB of Python bytes (:data:`MAP_BYTES`). Where it
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
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import wasmtime

# Part of every entry's name: a new layout never reads an old one's files.
FORMAT = "callgate-compile-cache/2"
KEY_BYTES = 32
SUFFIX = ".cwasm"
CHUNK = 1 << 20  # bytes hashed at a time while checking an entry
# An entry this big is mapped by wasmtime rather than read into memory: no copy of it in
# Python, but wasmtime keeps the file open (one fd) while the module lives. Smaller
# entries, and every entry where /proc is missing, are read and deserialized from memory.
MAP_BYTES = 16 << 20
# Where an open file can be named by its fd, for wasmtime to map that very file.
PROC_FD = "/proc/self/fd"


class CacheWarning(UserWarning):
    """The compile cache skipped something (an unsafe directory, a bad entry) and compiled."""


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """What ``callgate cache info`` reports. ``why_disabled`` is None when the cache is in
    use; ``exists`` is False for a directory not made yet (nothing has been cached)."""

    directory: Path | None
    entries: int
    total_bytes: int
    why_disabled: str | None = None
    exists: bool = True


OFF_VALUES = ("0", "off", "no", "false")


def turned_off() -> str | None:
    """Why the environment turns the cache off (``CALLGATE_CACHE=off``), or None."""
    value = os.environ.get("CALLGATE_CACHE", "")
    return f"turned off by CALLGATE_CACHE={value}" if value.lower() in OFF_VALUES else None


def default_directory() -> Path | None:
    """Where the cache lives by default, or None when ``CALLGATE_CACHE=off``."""
    if turned_off() is not None:
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

    def __init__(self, directory: Path | None, *, why_off: str = "turned off") -> None:
        self.directory = directory
        self._key: bytes | None = None
        self._why_disabled: str | None = None if directory else why_off

    # -- the two operations loading uses -----------------------------------------------

    def load(self, engine: wasmtime.Engine, engine_tag: str, data: bytes
             ) -> wasmtime.Module | None:
        """The cached module for ``data`` on this engine, or None (then compile it)."""
        name = self._name(engine_tag, data)
        if name is None:
            return None
        assert self.directory is not None
        for path in sorted(self.directory.glob(f"{name}-*{SUFFIX}")):
            module = self._load_entry(engine, name, path)
            if module is not None:
                return module
        return None

    def store(self, engine_tag: str, data: bytes, module: wasmtime.Module) -> None:
        """Save ``module`` (compiled from ``data``); failures only cost the next start."""
        name = self._name(engine_tag, data)
        if name is None or self.directory is None:
            return
        payload = bytes(module.serialize())
        path = self.directory / f"{name}-{self._tag(name, [payload])}{SUFFIX}"
        try:
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=SUFFIX)
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.replace(temp, path)
        except OSError as exc:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(temp)
            warnings.warn(f"callgate compile cache: cannot save {path.name}: {exc.strerror}",
                          CacheWarning, stacklevel=3)

    # -- callgate cache info | clear ---------------------------------------------------

    def info(self) -> CacheInfo:
        """The entries and their bytes. Creates nothing: a directory not made yet holds
        nothing, and one that fails the checks is reported with why, not used."""
        directory = self.directory
        if directory is None or self._why_disabled is not None:
            exists = directory is not None and os.path.lexists(directory)
            return CacheInfo(directory, 0, 0, self._why_disabled, exists)
        if self._key is None:
            problem = _check_directory(directory)
            if problem is _MISSING:
                return CacheInfo(directory, 0, 0, exists=False)
            if problem is not None:
                return CacheInfo(directory, 0, 0, problem)
        sizes = [size for _, size in _entries(directory)]
        return CacheInfo(directory, len(sizes), sum(sizes))

    def clear(self) -> int:
        """Delete every entry, unfinished writes and the key (a new one is made on next
        use); returns how many entries there were. A directory that fails the checks is
        left alone (0); see :meth:`info` for why."""
        directory = self.directory
        if directory is None or self._why_disabled is not None:
            return 0
        if self._key is None and _check_directory(directory) is not None:
            return 0
        entries = [path for path, _ in _entries(directory)]
        for path in [*entries, *directory.glob(f".tmp-*{SUFFIX}"), directory / "key"]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._key = None
        return len(entries)

    # -- internals ---------------------------------------------------------------------

    def _name(self, engine_tag: str, data: bytes) -> str | None:
        """The entry name for ``data`` on an engine configured as ``engine_tag`` (None: the
        cache is not usable)."""
        if self.directory is None or not self._usable():
            return None
        return hashlib.sha256("\0".join([FORMAT, hashlib.sha256(data).hexdigest(), engine_tag,
                                         _platform_fingerprint()]).encode()).hexdigest()

    def _tag(self, name: str, chunks: Iterable[bytes]) -> str:
        """The HMAC of an entry: its name, then its bytes, under the cache's key."""
        key = self._key
        assert key is not None  # _name made sure
        mac = hmac.new(key, name.encode() + b"\0", hashlib.sha256)
        for chunk in chunks:
            mac.update(chunk)
        return mac.hexdigest()

    def _load_entry(self, engine: wasmtime.Engine, name: str, path: Path
                    ) -> wasmtime.Module | None:
        """The module in ``path`` if its tag verifies and wasmtime takes it; else None
        (the entry discarded, with a warning)."""
        tag = path.name[len(name) + 1:-len(SUFFIX)]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None  # removed meanwhile
        except OSError as exc:
            self._discard(path, f"cannot open it ({exc.strerror})")
            return None
        with os.fdopen(fd, "rb") as f:
            mapped = os.fstat(fd).st_size >= MAP_BYTES and os.path.isdir(PROC_FD)
            payload = b"" if mapped else f.read()
            chunks = iter(lambda: f.read(CHUNK), b"") if mapped else [payload]
            if not hmac.compare_digest(self._tag(name, chunks), tag):
                self._discard(path, "its authentication tag does not verify (corrupt, "
                              "truncated, or written by someone else)")
                return None
            try:
                if mapped:  # the very file just checked, not a path that could change
                    return wasmtime.Module.deserialize_file(engine, f"{PROC_FD}/{fd}")
                return wasmtime.Module.deserialize(engine, payload)
            except wasmtime.WasmtimeError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else "refused"
                self._discard(path, f"wasmtime refused it ({first})")
                return None

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
    except OSError as exc:
        return f"cannot create it ({exc.strerror})"
    return _check_directory(directory)


# What _check_directory answers for a directory that does not exist (yet).
_MISSING = "it does not exist"


def _check_directory(directory: Path) -> str | None:
    """None when the existing ``directory`` is safe to trust, else why not (:data:`_MISSING`
    when there is none)."""
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return _MISSING
    except OSError as exc:
        return f"cannot examine it ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return "it is not a directory (a symlink is refused too)"
    if st.st_uid != os.geteuid():
        return f"it belongs to uid {st.st_uid}, not to this user ({os.geteuid()})"
    if st.st_mode & 0o077:
        return (f"it is open to group or others (mode {stat.S_IMODE(st.st_mode):o}); "
                f"run: chmod 700 {directory}")
    return None


def _entries(directory: Path) -> list[tuple[Path, int]]:
    """Each finished entry and its size (an entry removed meanwhile is left out)."""
    found = []
    for path in directory.glob(f"*{SUFFIX}"):
        if path.name.startswith("."):  # .tmp-*: a write in progress, or one that died
            continue
        with contextlib.suppress(FileNotFoundError):
            found.append((path, path.lstat().st_size))
    return found


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
    """The process-wide cache at :func:`default_directory`, made on first use (so the
    environment is read then; ``default_cache.cache_clear()`` reads it again)."""
    return CompileCache(default_directory(), why_off=turned_off() or "turned off")
