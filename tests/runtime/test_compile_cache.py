"""The on-disk compile cache: fast second starts, and never a code-injection path.

``wasmtime.Module.deserialize`` maps its input as machine code, so a cache entry that
was tampered with must be detected and never deserialized, an unsafe directory must not
be used, and concurrent writers must not tear entries.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from pathlib import Path

import pytest
import wasmtime
from rt_helpers import guest

import callgate.runtime.loading as loading
from callgate import Plugin
from callgate.runtime.compile_cache import (
    MAGIC,
    TAG_BYTES,
    CacheWarning,
    CompileCache,
    default_directory,
)


@pytest.fixture
def cache(tmp_path: Path) -> CompileCache:
    loading._compile_cached.cache_clear()  # only the disk may answer
    return CompileCache(tmp_path / "cache")


@pytest.fixture
def deserialized(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = wasmtime.Module.deserialize

    def spy(engine: wasmtime.Engine, encoded: bytes) -> wasmtime.Module:
        calls.append(len(encoded))
        return real(engine, encoded)

    monkeypatch.setattr(wasmtime.Module, "deserialize", staticmethod(spy))
    return calls


def load(cache: CompileCache) -> int:
    loading._compile_cached.cache_clear()
    with Plugin(guest("hello"), compile_cache=cache) as p:
        return int(p.call_int("add", 40, 2))  # type: ignore[arg-type]


def entries(cache: CompileCache) -> list[Path]:
    assert cache.directory is not None
    return sorted(cache.directory.glob("*.cwasm"))


def test_a_second_load_comes_from_disk(cache: CompileCache, deserialized: list[int]) -> None:
    assert load(cache) == 42 and deserialized == []
    assert len(entries(cache)) == 1
    assert load(cache) == 42 and len(deserialized) == 1
    info = cache.info()
    assert (info.entries, info.directory) == (1, cache.directory) and info.total_bytes > 0
    assert os.stat(cache.directory).st_mode & 0o777 == 0o700  # type: ignore[arg-type]
    assert os.stat(cache.directory / "key").st_mode & 0o777 == 0o600  # type: ignore[operator]


def test_entries_differ_by_engine_configuration(cache: CompileCache) -> None:
    from callgate import Limits
    loading._compile_cached.cache_clear()
    for limits in (Limits(), Limits(fuel=1000), Limits(timeout=5.0)):
        Plugin(guest("hello"), compile_cache=cache, limits=limits).close()
    assert len(entries(cache)) == 3


@pytest.mark.parametrize("where", ["payload", "tag", "truncate", "magic"])
def test_a_tampered_entry_is_never_deserialized(cache: CompileCache, deserialized: list[int],
                                                where: str) -> None:
    load(cache)
    (entry,) = entries(cache)
    blob = bytearray(entry.read_bytes())
    if where == "payload":
        blob[-100] ^= 0x01  # one bit of machine code
    elif where == "tag":
        blob[len(MAGIC)] ^= 0x80
    elif where == "truncate":
        del blob[len(MAGIC) + TAG_BYTES + 10:]
    else:
        blob[0:4] = b"EVIL"
    entry.write_bytes(bytes(blob))
    with pytest.warns(CacheWarning, match="does not verify"):
        assert load(cache) == 42
    assert deserialized == []  # detected before wasmtime ever saw the bytes
    assert load(cache) == 42 and len(deserialized) == 1  # recompiled and stored afresh


def test_an_authentic_entry_wasmtime_refuses_is_discarded(cache: CompileCache) -> None:
    import hashlib
    import hmac
    load(cache)
    (entry,) = entries(cache)
    key = (cache.directory / "key").read_bytes()  # type: ignore[operator]
    payload = b"not machine code at all"
    entry.write_bytes(MAGIC + hmac.new(key, payload, hashlib.sha256).digest() + payload)
    with pytest.warns(CacheWarning, match="wasmtime refused it"):
        assert load(cache) == 42


@pytest.mark.parametrize("problem", ["open mode", "symlink", "other owner"])
def test_an_unsafe_directory_is_not_used(tmp_path: Path, deserialized: list[int],
                                         problem: str) -> None:
    target = tmp_path / "cache"
    target.mkdir(mode=0o700)
    if problem == "open mode":
        target.chmod(0o755)
        directory = target
    elif problem == "symlink":
        directory = tmp_path / "link"
        directory.symlink_to(target)
    else:
        os.chown(target, 12345, 12345)
        directory = target
    cache = CompileCache(directory)
    with pytest.warns(CacheWarning, match="compile cache disabled"):
        assert load(cache) == 42
    assert load(cache) == 42 and deserialized == []
    assert list(target.glob("*.cwasm")) == [] and cache.info().why_disabled


def _writer(directory: str, rounds: int) -> None:
    cache = CompileCache(Path(directory))
    engine = wasmtime.Engine()
    data = guest("lines").read_bytes()
    module = wasmtime.Module(engine, data)
    for _ in range(rounds):
        cache.store("tag", data, module)


def test_concurrent_writers_never_leave_a_torn_entry(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(str(directory), 20)) for _ in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    cache = CompileCache(directory)
    assert len(list(directory.glob("*.cwasm"))) == 1 and not list(directory.glob(".tmp-*"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load(wasmtime.Engine(), "tag", guest("lines").read_bytes()) is not None


def test_clear_removes_entries_and_key(cache: CompileCache) -> None:
    load(cache)
    assert cache.clear() == 1
    assert entries(cache) == [] and not (cache.directory / "key").exists()  # type: ignore


def test_the_environment_moves_or_disables_it(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv("CALLGATE_CACHE_DIR", str(tmp_path / "here"))
    assert default_directory() == tmp_path / "here"
    monkeypatch.delenv("CALLGATE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_directory() == tmp_path / "xdg" / "callgate" / "modules"
    monkeypatch.setenv("CALLGATE_CACHE", "off")
    assert default_directory() is None
