"""The on-disk compile cache: fast second starts, and never a code-injection path.

``wasmtime.Module.deserialize`` maps its input as machine code, so a cache entry that
was tampered with must be detected and never deserialized, an unsafe directory must not
be used, and concurrent writers must not tear entries. Entries are ``NAME-TAG.cwasm``:
the serialized module as wasmtime wrote it, its HMAC in the file name.
"""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
import os
import warnings
from pathlib import Path

import pytest
import wasmtime
from rt_helpers import guest

import callgate.runtime.compile_cache as compile_cache
import callgate.runtime.loading as loading
from callgate import Plugin
from callgate.runtime.compile_cache import (
    SUFFIX,
    CacheWarning,
    CompileCache,
    default_directory,
)


@pytest.fixture
def cache(tmp_path: Path) -> CompileCache:
    loading._compile_cached.cache_clear()  # only the disk may answer
    return CompileCache(tmp_path / "cache")


@pytest.fixture(params=["mapped", "in memory"])
def deserialized(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every module wasmtime deserialized (its size), by either path: mapping the open file
    through /proc/self/fd (a big entry), or from bytes read into memory (a small one)."""
    calls: list[int] = []
    real, real_file = wasmtime.Module.deserialize, wasmtime.Module.deserialize_file

    def spy(engine: wasmtime.Engine, encoded: bytes) -> wasmtime.Module:
        calls.append(len(encoded))
        return real(engine, encoded)

    def spy_file(engine: wasmtime.Engine, path: str) -> wasmtime.Module:
        calls.append(os.stat(path).st_size)
        return real_file(engine, path)

    monkeypatch.setattr(wasmtime.Module, "deserialize", staticmethod(spy))
    monkeypatch.setattr(wasmtime.Module, "deserialize_file", staticmethod(spy_file))
    if request.param == "mapped":  # as a big entry is; the guests here are small
        monkeypatch.setattr(compile_cache, "MAP_BYTES", 0)
    return calls


def test_without_proc_a_big_entry_is_read_into_memory(cache: CompileCache,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      deserialized: list[int]) -> None:
    monkeypatch.setattr(compile_cache, "MAP_BYTES", 0)
    monkeypatch.setattr(compile_cache, "PROC_FD", "/nonexistent/proc/self/fd")
    mapped: list[str] = []
    monkeypatch.setattr(wasmtime.Module, "deserialize_file",
                        staticmethod(lambda engine, path: mapped.append(path)))
    assert load(cache) == 42 and load(cache) == 42
    assert len(deserialized) == 1 and mapped == []


def load(cache: CompileCache) -> int:
    loading._compile_cached.cache_clear()
    with Plugin(guest("hello"), compile_cache=cache) as p:
        return int(p.call_int("add", 40, 2))  # type: ignore[arg-type]


def entries(cache: CompileCache) -> list[Path]:
    assert cache.directory is not None
    return sorted(cache.directory.glob("*.cwasm"))


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the modules wasmtime compiled (``Module(engine, wasm)``; not deserialize)."""
    calls: list[int] = []
    real = wasmtime.Module.__init__

    def spy(self: wasmtime.Module, engine: wasmtime.Engine, wasm: bytes) -> None:
        calls.append(len(wasm))
        real(self, engine, wasm)

    monkeypatch.setattr(wasmtime.Module, "__init__", spy)
    return calls


def test_a_second_load_comes_from_disk(cache: CompileCache, deserialized: list[int],
                                       compiled: list[int]) -> None:
    assert load(cache) == 42 and deserialized == [] and len(compiled) == 1
    assert len(entries(cache)) == 1
    assert load(cache) == 42 and len(deserialized) == 1
    assert len(compiled) == 1  # the hit compiled nothing
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


def name_and_tag(entry: Path) -> tuple[str, str]:
    name, _, tag = entry.name.removesuffix(SUFFIX).partition("-")
    return name, tag


@pytest.mark.parametrize("where", ["payload", "tag", "truncate", "another module's"])
def test_a_tampered_entry_is_never_deserialized(cache: CompileCache, deserialized: list[int],
                                                where: str) -> None:
    load(cache)
    (entry,) = entries(cache)
    name, tag = name_and_tag(entry)
    blob = bytearray(entry.read_bytes())
    if where == "payload":
        blob[-100] ^= 0x01  # one bit of machine code
        entry.write_bytes(bytes(blob))
    elif where == "tag":
        entry.rename(entry.with_name(f"{name}-{tag[:-1]}{'0' if tag[-1] != '0' else '1'}"
                                     f"{SUFFIX}"))
    elif where == "truncate":
        entry.write_bytes(bytes(blob[:len(blob) // 2]))
    else:  # an authentic entry of another module, under this module's name: the tag
        entry.unlink()  # binds the entry to its name, so it does not verify here
        with Plugin(guest("lines"), compile_cache=cache):
            pass
        (other,) = entries(cache)
        other.rename(cache.directory / f"{name}-{name_and_tag(other)[1]}{SUFFIX}")  # type: ignore[operator]
        deserialized.clear()
    with pytest.warns(CacheWarning, match="does not verify"):
        assert load(cache) == 42
    assert deserialized == []  # detected before wasmtime ever saw the bytes
    assert entries(cache) != [] and load(cache) == 42
    assert len(deserialized) == 1  # recompiled and stored afresh


def test_an_authentic_entry_wasmtime_refuses_is_discarded(cache: CompileCache) -> None:
    load(cache)
    (entry,) = entries(cache)
    name, _ = name_and_tag(entry)
    key = (cache.directory / "key").read_bytes()  # type: ignore[operator]
    payload = b"not machine code at all"
    tag = hmac.new(key, name.encode() + b"\0" + payload, hashlib.sha256).hexdigest()
    entry.unlink()
    entry.with_name(f"{name}-{tag}{SUFFIX}").write_bytes(payload)
    with pytest.warns(CacheWarning, match="wasmtime refused it"):
        assert load(cache) == 42
    assert len(entries(cache)) == 1


def test_an_entry_is_what_wasmtime_serialized(cache: CompileCache) -> None:
    load(cache)
    (entry,) = entries(cache)
    engine = Plugin(guest("hello"), compile_cache=False, providers=[])._shared.engine
    assert isinstance(wasmtime.Module.deserialize_file(engine, str(entry)), wasmtime.Module)


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


def test_info_and_clear_create_nothing(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path / "not" / "yet")
    info = cache.info()
    assert (info.entries, info.total_bytes, info.exists, info.why_disabled) == (0, 0, False, None)
    assert cache.clear() == 0 and not (tmp_path / "not").exists()
    off = CompileCache(None, why_off="turned off by CALLGATE_CACHE=off").info()
    assert (off.directory, off.exists, off.why_disabled) == \
        (None, False, "turned off by CALLGATE_CACHE=off")


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
