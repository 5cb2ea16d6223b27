"""[gates] jitter and [gates.clocks] resolution: how they load, what is refused, what lint says."""

from __future__ import annotations

import pytest

from callgate.policy import PolicyError, load_policy_text
from callgate.policy.lint import lint
from callgate.policy.model import NO_TIMING, GateTiming
from callgate.policy.toml_loader import format_duration

BASE = '[gates]\ndefault = "allow"\n'


def load(extra: str) -> GateTiming:
    return load_policy_text(BASE + extra).policy.timing


@pytest.mark.parametrize(("text", "ns"), [
    ('"50us"', 50_000), ('"50µs"', 50_000), ('"1ms"', 1_000_000), ('"1.5ms"', 1_500_000),
    ('"100ns"', 100), ('"1s"', 10**9), ("250", 250), ('" 2 ms "', 2_000_000),
])
def test_durations(text: str, ns: int) -> None:
    assert load(f"jitter = {text}\n").jitter_ns == ns
    assert load(f"[gates.clocks]\nresolution = {text}\n").clock_resolution_ns == ns


def test_absent_or_zero_is_no_timing() -> None:
    assert load("") is NO_TIMING
    assert load('jitter = "0us"\n[gates.clocks]\nresolution = 0\n') is NO_TIMING
    assert not NO_TIMING.active
    assert load('jitter = "1us"\n').active


@pytest.mark.parametrize(("extra", "message"), [
    ('jitter = "5 parsecs"\n', "gates.jitter: must be a duration"),
    ("jitter = -1\n", "gates.jitter: -1 is out of range"),
    ('jitter = "1.5s"\n', "out of range; allowed 0 (off) up to 1s"),
    ("jitter = 1.5\n", "must be a duration"),
    ("clocks = 3\n", "gates.clocks: must be a table"),
    ('[gates.clocks]\nresolutoin = "1ms"\n', "did you mean 'resolution'"),
    ('[gates.clocks]\nresolution = "1 fortnight"\n', "gates.clocks.resolution: must be"),
])
def test_refused(extra: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_policy_text(BASE + extra)


def test_kernel_section_has_no_timing_keys() -> None:
    with pytest.raises(PolicyError, match=r"kernel\.jitter: unknown key"):
        load_policy_text('[kernel]\ndefault = "allow"\njitter = "1us"\n')


def test_lint_says_what_each_costs_and_leaves() -> None:
    result = load_policy_text(BASE + 'jitter = "50us"\n[gates.clocks]\nresolution = "1ms"\n')
    found = {f.key_path: f for f in lint(result)}
    assert found["gates.jitter"].level == "info"
    assert "up to 50us (on average 25us)" in found["gates.jitter"].message
    assert "not the native core" in found["gates.jitter"].message
    clocks = found["gates.clocks.resolution"]
    assert "steps of 1ms" in clocks.message and "file timestamps" in clocks.message
    assert not [f for f in lint(load_policy_text(BASE)) if f.key_path.startswith("gates.j")]


@pytest.mark.parametrize(("ns", "text"), [(50_000, "50us"), (1_500_000, "1500us"),
                                         (10**9, "1s"), (7, "7ns"), (2_000_000, "2ms")])
def test_format_duration_round_trips(ns: int, text: str) -> None:
    assert format_duration(ns) == text
    assert load(f'jitter = "{text}"\n').jitter_ns == ns
