"""The learning run in-process: every gate call of a real guest recorded, folded per gate."""

from __future__ import annotations

import pytest
from learn_helpers import WASM

from callgate.gates.wasi import Preopen, WasiConfig
from callgate.learn.recorder import MAX_DISTINCT, GateUse, LearningFailed, Recording, record
from callgate.runtime.limits import Limits


def learnme(*args: str) -> tuple[Recording, bytearray, bytearray]:
    out, err = bytearray(), bytearray()
    config = WasiConfig(args=["learnme", *args], stdout=out, stderr=err)
    return record(WASM / "learnme.wasm", config), out, err


def test_the_default_run_calls_the_clock_and_writes_to_stdout_only():
    recording, out, err = learnme()
    assert out == b"hello from learnme (the clock says after 1970)\n" and err == b""
    assert recording.exit_code == 0
    uses = recording.uses
    assert uses["fd_write"].pinned == (0,)
    assert uses["fd_write"].values == {(1,): uses["fd_write"].calls}
    assert uses["clock_time_get"].values == {(0,): 1}  # CLOCK_REALTIME is WASI clock 0
    assert "random_get" not in uses and "path_open" not in uses


def test_each_option_adds_exactly_its_access():
    base, _, _ = learnme()
    more, out, err = learnme("--stderr", "--random")
    assert err == b"a line on stderr\n" and b"drew 16 random bytes" in out
    assert set(more.uses) - set(base.uses) == {"random_get"}
    assert {key[0] for key in more.uses["fd_write"].values} == {1, 2}
    assert more.uses["random_get"].pinned == ()  # a pointer and a length: never pinned


def test_file_access_goes_through_path_open_beneath_the_preopen(tmp_path):
    (tmp_path / "x.txt").write_text("first\nsecond\n")
    out = bytearray()
    config = WasiConfig(args=["learnme", "--file", "/d/x.txt"], stdout=out,
                        preopens=[Preopen(tmp_path, "/d")])
    recording = record(WASM / "learnme.wasm", config)
    assert out.endswith(b"first line of /d/x.txt: first\n")
    opened = recording.uses["path_open"]
    assert opened.calls == 1 and opened.pinned == (0, 1, 4, 5)
    ((fd, _dirflags, oflags, _rights),) = opened.values
    assert (fd, oflags) == (3, 0)  # beneath preopen fd 3, no O_CREAT/O_TRUNC
    assert {key[0] for key in recording.uses["fd_read"].values} == {4}  # the file got fd 4


def test_the_exit_code_is_recorded():
    out = bytearray()
    recording = record(WASM / "envargs.wasm", WasiConfig(args=["envargs"], stdout=out,
                                                         env={"EXIT_CODE": "7"}))
    assert recording.exit_code == 7
    assert "proc_exit" in recording.uses


def test_a_run_cut_short_by_a_limit_is_a_learning_failure():
    with pytest.raises(LearningFailed, match=r"did not finish.*fuel"):
        record(WASM / "hostile_spin.wasm", WasiConfig(), Limits(fuel=100_000))


def test_a_module_without_start_is_not_a_command():
    with pytest.raises(LearningFailed, match="not a WASI command"):
        record(WASM / "wordcount.wasm", WasiConfig())


def test_a_module_given_as_bytes_is_not_quoted_as_bytes():
    with pytest.raises(LearningFailed, match=r"^the module is not a WASI command") as caught:
        record((WASM / "wordcount.wasm").read_bytes(), WasiConfig())
    assert "b'" not in str(caught.value)


def test_distinct_values_are_capped_and_the_cap_is_reported():
    use = GateUse(pinned=(0,))
    for fd in range(MAX_DISTINCT + 10):
        use.add((fd, 0, 0))
    assert use.calls == MAX_DISTINCT + 10
    assert len(use.values) == MAX_DISTINCT and use.overflow


def test_a_recording_survives_its_json_form():
    recording, _, _ = learnme("--stderr")
    assert Recording.from_json(recording.to_json()) == recording
