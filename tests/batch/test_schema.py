"""The batch's JSON Lines formats: jobs are checked field by field, bytes round-trip, and a
line that cannot be used becomes an error for that job alone."""

from __future__ import annotations

import json

import pytest

from callgate.batch.schema import (
    DEFAULT_TIMEOUT,
    STATUSES,
    BatchError,
    Job,
    check_result,
    comparable,
    count_jobs,
    decode_bytes,
    empty_result,
    encode_bytes,
    merged_limits,
    read_jobs,
)
from callgate.batch.sources import Modules, ModuleStore, Policies
from callgate.runtime.limits import Limits


def test_bytes_are_text_when_utf8_and_base64_otherwise() -> None:
    assert encode_bytes(b"caf\xc3\xa9\n") == "café\n"
    assert encode_bytes(b"\xff\x00") == {"base64": "/wA="}
    for data in (b"", b"plain", b"\xff\xfe\x00binary", "ünï".encode()):
        assert decode_bytes(encode_bytes(data), "x") == data
    with pytest.raises(BatchError, match="stdin: not valid base64"):
        decode_bytes({"base64": "!!"}, "stdin")
    with pytest.raises(BatchError, match="stdin must be a string"):
        decode_bytes(42, "stdin")


def test_a_job_round_trips_through_json() -> None:
    job = Job("a.wasm", id="t1", argv=("a", "-n"), stdin=b"\xff1 2\n", env={"K": "v"},
              files={"in/data.txt": b"x"}, collect=("out.txt",), policy="p.toml",
              limits={"fuel": 1000, "timeout": 2.5}, meta={"student": "s1"})
    again = Job.from_json(json.loads(json.dumps(job.to_json())))
    assert again == job


@pytest.mark.parametrize("obj, message", [
    ([], "must be a JSON object"),
    ({}, "needs a 'module'"),
    ({"module": "a.wasm", "colour": 1}, "unknown job field"),
    ({"module": "a.wasm", "schema": 2}, "schema 2 is not supported"),
    ({"module": ""}, "module must be"),
    ({"module": "a.wasm", "id": ""}, "id must be"),
    ({"module": "a.wasm", "argv": "a b"}, "argv must be a list"),
    ({"module": "a.wasm", "argv": ["a\0b"]}, "argv must be a list"),
    ({"module": "a.wasm", "env": {"A=B": "1"}}, "env name"),
    ({"module": "a.wasm", "env": {"A": 1}}, r"env\['A'\] must be a string"),
    ({"module": "a.wasm", "files": {"/etc/x": "1"}}, "must be a relative path"),
    ({"module": "a.wasm", "files": {"../x": "1"}}, "must be a relative path"),
    ({"module": "a.wasm", "files": {"a//b": "1"}}, "plain relative path"),
    ({"module": "a.wasm", "collect": ["a/../../b"]}, "must be a relative path"),
    ({"module": "a.wasm", "files": {"a": "1", "a/b/c": "2"}}, "'a' is a file"),
    ({"module": "a.wasm", "limits": {"fuel": -1}}, "limits: Limits.fuel"),
    ({"module": "a.wasm", "limits": {"timeout": "1s"}}, "limits: Limits.timeout"),
    ({"module": "a.wasm", "limits": {"cpu": 1}}, "unknown limit"),
])
def test_a_bad_job_is_refused_naming_the_field(obj: object, message: str) -> None:
    with pytest.raises(BatchError, match=message):
        Job.from_json(obj)


def test_limits_merge_job_over_batch_and_never_drop_the_deadline() -> None:
    base = Limits(fuel=100, timeout=None, memory=1 << 20)
    merged = merged_limits(base, {"fuel": 5.0, "memory": 2 << 20})
    assert (merged.fuel, merged.memory, merged.timeout) == (5, 2 << 20, DEFAULT_TIMEOUT)
    assert isinstance(merged.fuel, int)


def test_reading_a_jobs_file_never_stops_at_a_bad_line() -> None:
    lines = ['{"module": "a.wasm", "id": "one"}', "", "# comment", "not json",
             '{"module": 3, "id": "three"}', '{"module": "b.wasm"}']
    parsed = list(read_jobs(lines))
    assert [p.index for p in parsed] == [0, 1, 2, 3]
    assert [p.job_id for p in parsed] == ["one", "1", "three", "3"]
    assert parsed[0].job is not None and parsed[3].job is not None
    assert parsed[1].error is not None and parsed[1].error.startswith("line 4: not JSON")
    assert parsed[2].error is not None and "line 5: module must be" in parsed[2].error
    assert count_jobs(lines) == 4


def test_results_are_checked_before_they_are_trusted() -> None:
    good = empty_result(3, "x")
    assert check_result(dict(good)) == good
    for bad in ({**good, "status": "pwned"}, {**good, "stdout_bytes": -1},
                {**good, "time": {"wall_s": float("nan"), "cpu_s": 0}},
                {k: v for k, v in good.items() if k != "counters"}, "nope"):
        with pytest.raises(BatchError):
            check_result(bad)
    assert "time" not in comparable(good) and "worker" not in comparable(good)
    assert len(set(STATUSES)) == len(STATUSES)


def test_modules_are_named_by_content(tmp_path) -> None:
    store = ModuleStore(tmp_path / "store")
    name = store.add(b"\0asm\1\0\0\0")
    assert name.startswith("sha256:") and store.get(name) == b"\0asm\1\0\0\0"
    (store.path(name)).write_bytes(b"\0asm\1\0\0\0tampered")
    with pytest.raises(BatchError, match="does not hash to its name"):
        store.get(name)
    with pytest.raises(BatchError, match="not a module digest"):
        store.get("sha256:xyz")
    modules = Modules(tmp_path, None)
    (tmp_path / "m.wasm").write_bytes(b"\0asm\1\0\0\0")
    assert modules.resolve("m.wasm") == name == modules.resolve("m.wasm")
    with pytest.raises(BatchError, match="no module store"):
        modules.resolve(name)
    with pytest.raises(BatchError, match="cannot read module"):
        modules.resolve("missing.wasm")


def test_a_bad_policy_is_refused_once_by_the_coordinator(tmp_path) -> None:
    policies = Policies(tmp_path)
    assert policies.resolve("default+fs").shipped == "default+fs"
    (tmp_path / "nogates.toml").write_text('[kernel]\ndefault = "allow"\n')
    with pytest.raises(BatchError, match="no \\[gates\\] section"):
        policies.resolve("nogates.toml")
    (tmp_path / "broken.toml").write_text("[gates\n")
    with pytest.raises(BatchError, match=r"policy broken\.toml"):
        policies.resolve("broken.toml")
    with pytest.raises(BatchError, match="cannot read policy"):
        policies.resolve("absent.toml")
