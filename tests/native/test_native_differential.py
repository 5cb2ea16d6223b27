"""The native gate core decides every call as the Python runtime does: hypothesis draws
scenarios (policies, fd tables, limits, deadlines), and ``native_diff.py`` runs a few
hundred random calls of each in both worlds, comparing results, memory, counters, audit
records and host state after every call. More than 100 000 calls in all, in CI."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from native_diff import ACTIONS, Divergence, Scenario, run_scenario
from native_helpers import require_native

from callgate.bpf import actions as A

# Scenarios x calls: 260 x ~400 = 100 000+ (CALLGATE_DIFF_EXAMPLES raises it for a soak).
EXAMPLES = int(os.environ.get("CALLGATE_DIFF_EXAMPLES", "260"))
MIN_CASES = 100_000
KINDS = ("file", "file", "file", "dir", "pipe_r", "pipe_w", "null", "sock", "exotic")
_ran = {"cases": 0, "scenarios": 0}


scenarios = st.builds(
    Scenario,
    seed=st.integers(0, 2**48),
    calls=st.sampled_from((400, 400, 450)),
    default=st.sampled_from((A.SECCOMP_RET_ALLOW,) * 12 + ACTIONS),
    rules=st.sampled_from((0, 0, 0, 2, 4, 8)),
    deadline=st.booleans(),
    output_cap=st.sampled_from((None, None, None, 0, 50, 5000, 100_000)),
    extra_fds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=8).map(tuple),
    args=st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=9),
                  max_size=4).map(tuple),
    env=st.lists(st.tuples(st.from_regex(r"[A-Z_]{1,6}", fullmatch=True),
                           st.text(st.characters(codec="utf-8", exclude_characters="\0"),
                                   max_size=12)), max_size=3).map(tuple),
)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario=scenarios)
# Regressions and corners: everything allowed; every verdict C acts on as the default;
# a passed deadline with blocking streams; output caps of 0 and a few bytes.
@example(scenario=Scenario(seed=1))
@example(scenario=Scenario(seed=2, default=A.SECCOMP_RET_ERRNO | 4096, rules=0))
@example(scenario=Scenario(seed=3, default=A.SECCOMP_RET_KILL_PROCESS, rules=6))
@example(scenario=Scenario(seed=4, default=A.SECCOMP_RET_KILL_THREAD, rules=6))
@example(scenario=Scenario(seed=5, default=0x12340000, rules=2))
@example(scenario=Scenario(seed=6, deadline=True, extra_fds=("pipe_r", "pipe_w", "pipe_w",
                                                                "file", "null")))
@example(scenario=Scenario(seed=7, output_cap=0, extra_fds=("file", "null", "pipe_w")))
@example(scenario=Scenario(seed=8, output_cap=50, extra_fds=("file", "pipe_w", "sock")))
@example(scenario=Scenario(seed=9, extra_fds=("exotic", "dir", "sock", "dir")))
def test_c_and_python_decide_every_call_alike(scenario: Scenario) -> None:
    require_native()
    try:
        _ran["cases"] += run_scenario(scenario)
    except Divergence as exc:
        pytest.fail(str(exc))
    _ran["scenarios"] += 1


def test_the_differential_suite_ran_enough_cases() -> None:
    """Runs after the test above (file order): it must have compared 100 000 calls."""
    require_native()
    if not _ran["scenarios"]:
        pytest.skip("the differential test did not run in this session")
    if EXAMPLES < 260:
        pytest.skip(f"CALLGATE_DIFF_EXAMPLES={EXAMPLES} asks for a short run")
    assert _ran["cases"] >= MIN_CASES, _ran
