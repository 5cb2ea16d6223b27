"""A second plugin of the same module and policy reuses what the first one worked out.

Start-up speed itself is measured in benchmarks/bench_start.py; these tests check the
behaviour behind it: what is parsed again and what is not (counted by spying on the
parsers), and that a cache never serves a policy or a module that the file no longer
holds, even when the edit keeps the file's size and timestamps.
"""

from __future__ import annotations

import os
import warnings

import pytest
from rt_helpers import Recorder, gate_policy, guest, probe_gates, wat

import callgate.policy.toml_loader as toml_loader
import callgate.runtime.module_header as module_header
from callgate.gates.errors import ImportRefused, PluginLoadError, PolicyRefused
from callgate.policy import PolicyWarning
from callgate.runtime import Plugin, filter_plan, loading

ALLOW_PROBE = gate_policy("errno(EPERM)", 'names = ["probe1"]\naction = "allow"',
                          app_gates=("probe1",))
DENY_PROBE = gate_policy("errno(EPERM)", 'names = ["probe1"]\naction = "errno(EACCES)"',
                         app_gates=("probe1",))


@pytest.fixture
def counted(monkeypatch):
    """How many times the TOML policy parser and the module header reader run."""
    counts = {"policy": 0, "header": 0}
    real_toml, real_header = toml_loader.load_toml_text, module_header.read_header

    def toml(*args, **kwargs):
        counts["policy"] += 1
        return real_toml(*args, **kwargs)

    def header(*args, **kwargs):
        counts["header"] += 1
        return real_header(*args, **kwargs)

    monkeypatch.setattr("callgate.policy.load_toml_text", toml)
    monkeypatch.setattr(loading, "read_header", header)
    filter_plan._parsed.cache_clear()
    loading.header_of.cache_clear()
    return counts


def _same_size(text: str, like: str) -> str:
    assert len(text.encode()) <= len(like.encode())
    return text + " " * (len(like.encode()) - len(text.encode()))


def test_a_second_plugin_parses_nothing_again(counted, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(ALLOW_PROBE)
    gates = probe_gates(Recorder())
    first = Plugin(guest("gatecall1"), gates=gates, policy=policy)
    assert counted == {"policy": 1, "header": 1}
    second = Plugin(guest("gatecall1"), gates=gates, policy=str(policy))
    assert counted == {"policy": 1, "header": 1}  # str and Path name the same file
    assert second.plan.evaluator is first.plan.evaluator  # verified and compiled once
    hits, _ = filter_plan.parse_cache_info()
    assert hits == 1
    for p in (first, second):
        assert p.call_int("once", 5) == 1005
        p.close()


def test_policy_text_is_cached_by_its_content(counted):
    gates = probe_gates(Recorder())
    for text in (ALLOW_PROBE, ALLOW_PROBE, DENY_PROBE, ALLOW_PROBE):
        Plugin(guest("gatecall1"), gates=gates, policy=text).close()
    assert counted["policy"] == 2


def test_an_edited_policy_is_parsed_again_even_with_the_same_size_and_mtime(counted, tmp_path):
    """The cache is keyed by what the file holds, not by its metadata."""
    policy = tmp_path / "policy.toml"
    policy.write_text(_same_size(ALLOW_PROBE, DENY_PROBE))
    stamp = os.stat(policy)
    gates = probe_gates(Recorder())
    with Plugin(guest("gatecall1"), gates=gates, policy=policy) as p:
        assert p.call_int("once", 1) == 1001
    policy.write_text(DENY_PROBE)
    os.utime(policy, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert os.stat(policy).st_size == stamp.st_size
    with Plugin(guest("gatecall1"), gates=gates, policy=policy) as p:
        assert p.call_int("once", 1) == -2  # WASI EACCES, as the guest sees it
    assert counted["policy"] == 2


def test_a_policy_that_fails_to_parse_fails_every_time(counted, tmp_path):
    policy = tmp_path / "bad.toml"
    policy.write_text('[gates]\ndefault = "allw"\n')
    for _ in range(2):
        with pytest.raises(PolicyRefused, match="allw"):
            Plugin(guest("gatecall1"), gates=probe_gates(Recorder()), policy=policy)
    assert counted["policy"] == 2  # a failure is not cached


def test_the_app_gates_a_policy_may_name_are_part_of_the_key(counted):
    """A rule naming probe1 is valid only where probe1 is registered."""
    text = gate_policy("errno(EPERM)", 'names = ["probe1"]\naction = "allow"')
    Plugin(guest("gatecall1"), gates=probe_gates(Recorder()), policy=text).close()
    with pytest.raises(PolicyRefused, match="probe1"):
        Plugin(guest("hello"), policy=text)


def test_warnings_are_issued_on_every_load(counted, tmp_path):
    """A cached policy still says what is odd about it, each time it is used."""
    policy = tmp_path / "landlock.toml"
    policy.write_text(ALLOW_PROBE + '[landlock]\nread = ["/var/tmp"]\nwrite = ["/var/tmp"]\n')
    gates = probe_gates(Recorder())
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Plugin(guest("gatecall1"), gates=gates, policy=policy).close()
        assert [w for w in caught if issubclass(w.category, PolicyWarning)]
    assert counted["policy"] == 1


def test_an_edited_module_is_read_again(counted, tmp_path):
    module = tmp_path / "m.wasm"
    module.write_bytes(wat('(module (func (export "f") (result i32) i32.const 1))'))
    with Plugin(module) as p:
        assert p.call_int("f") == 1
    module.write_bytes(wat('(module (import "env" "x" (func)))'))
    with pytest.raises(ImportRefused, match=r"env\.x"):
        Plugin(module)
    module.write_bytes(wat('(module (func (export "f") (result i32) i32.const 1))'))
    with Plugin(module) as p:  # the first content again: served from the caches
        assert p.call_int("f") == 1
    assert counted["header"] == 2


def test_a_module_over_the_cap_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "MAX_MODULE_BYTES", 100)
    module = tmp_path / "big.wasm"
    module.write_bytes(b"\0asm" + bytes(200))
    with pytest.raises(PluginLoadError, match="larger than 100 bytes"):
        Plugin(module)


def test_files_that_report_no_size_are_read_whole(tmp_path):
    """/proc files say st_size 0; they are read to the end (up to the cap), not as empty."""
    with open("/proc/self/status", "rb") as f:
        data = loading.read_capped(f, 1 << 20)
    assert data.startswith(b"Name:") and data.endswith(b"\n")
    with open("/dev/zero", "rb") as f:  # endless: stops one past the cap
        assert len(loading.read_capped(f, 1000)) == 1001
