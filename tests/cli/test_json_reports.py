"""Every ``--json`` output, and every audit record, validates against its shipped schema.

The schemas are callgate/schemas/*.schema.json (package data); tests/schema_check.py
checks documents against them. Each verb runs for real, on inputs that exercise its
optional parts (errors and warnings in check, a policy and a program in emu and
explain, rate-limit summaries among the audit records).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from schema_check import SchemaError, problems

from callgate import schemas

ROOT = Path(__file__).resolve().parents[2]
WASM = ROOT / "guests" / "wasm"


def callgate(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callgate", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300, check=False)


def report(*args: str, status: int = 0, cwd: Path = ROOT) -> dict[str, Any]:
    done = callgate(*args, cwd=cwd)
    assert done.returncode == status, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)  # exactly one document on stdout
    return doc


def assert_valid(doc: Any, name: str) -> None:
    assert problems(doc, schemas.load(name)) == []
    if isinstance(doc, dict) and name != "audit-record":
        assert doc["schema"] == f"callgate.{name}/1"


# -- the schemas and the validator ---------------------------------------------------------

@pytest.mark.parametrize("name", schemas.NAMES)
def test_every_schema_ships_and_uses_only_checked_keywords(name: str) -> None:
    schema = schemas.load(name)
    assert schema["$id"] == f"urn:callgate:schema:{name}:1"
    assert schema["title"] and schema["description"]
    problems({}, schema)  # raises SchemaError on a keyword the validator does not check
    shipped = sorted(p.name.removesuffix(".schema.json")
                     for p in (ROOT / "callgate" / "schemas").glob("*.schema.json"))
    assert shipped == sorted(schemas.NAMES)


SMALL = {
    "type": "object",
    "properties": {"schema": {"const": "callgate.x/1"},
                   "n": {"type": "integer", "minimum": 0, "maximum": 9},
                   "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
                   "either": {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/named"}]}},
    "required": ["schema", "n"],
    "additionalProperties": False,
    "$defs": {"named": {"type": "object", "properties": {"name": {"type": "string"}},
                        "required": ["name"], "additionalProperties": False}},
}


@pytest.mark.parametrize(("doc", "found"), [
    ({"schema": "callgate.x/1", "n": 3, "tags": ["a"], "either": None}, []),
    ({"schema": "callgate.x/1", "n": 3, "either": {"name": "x"}}, []),
    ({"schema": "callgate.x/2", "n": 3}, ["$.schema: 'callgate.x/2' is not 'callgate.x/1'"]),
    ({"schema": "callgate.x/1"}, ["$: missing 'n'"]),
    ({"schema": "callgate.x/1", "n": True}, ["$.n: True is not of type integer"]),
    ({"schema": "callgate.x/1", "n": 10}, ["$.n: 10 is above the maximum 9"]),
    ({"schema": "callgate.x/1", "n": -1}, ["$.n: -1 is below the minimum 0"]),
    ({"schema": "callgate.x/1", "n": 1, "tags": ["c"]},
     ["$.tags[0]: 'c' is not one of ['a', 'b']"]),
    ({"schema": "callgate.x/1", "n": 1, "more": 1}, ["$: 'more' is not in the schema"]),
    ({"schema": "callgate.x/1", "n": 1, "either": {}},
     ["$.either: matches 0 of the oneOf options, not exactly 1"]),
    ([], ["$: [] is not of type object"]),
])
def test_the_validator_says_no(doc: Any, found: list[str]) -> None:
    assert problems(doc, SMALL) == found


def test_the_validator_refuses_keywords_it_does_not_check() -> None:
    with pytest.raises(SchemaError, match="pattern"):
        problems("x", {"type": "string", "pattern": "^x$"})


# -- each verb's output --------------------------------------------------------------------

def test_check(tmp_path: Path) -> None:
    doc = report("check", "policies/examples/docker-like.json", "--json")
    assert_valid(doc, "check")
    assert doc["ok"] and doc["counts"]["info"] == len(doc["findings"]) > 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[kernel]\ndefualt = "allow"\n')
    doc = report("check", str(bad), "--json", status=1)
    assert_valid(doc, "check")
    assert not doc["ok"] and doc["counts"]["error"] >= 1
    assert any("did you mean 'default'" in f["message"] for f in doc["findings"])


def test_gates() -> None:
    doc = report("gates", "--json")
    assert_valid(doc, "gates")
    numbers = [gate["number"] for gate in doc["gates"]]
    assert numbers == sorted(numbers) and doc["gates"][0]["name"] == "args_get"


@pytest.mark.parametrize("argv", [
    ["emu", "examples/filter.asm", "write", "1", "0x1000", "12"],
    ["emu", "policies/default.toml", "fd_write", "2"],
    ["emu", "default+fs", "path_open", "3"],
    ["emu", "policies/examples/docker-like.json", "--layer", "kernel", "reboot"],
])
def test_emu(argv: list[str]) -> None:
    doc = report(*argv, "--json")
    assert_valid(doc, "emu")
    quiet = callgate(*argv, "-q").stdout
    assert quiet == f"return {doc['action']['text']} at line {doc['line']:04d}\n"


@pytest.mark.parametrize("argv", [
    ["explain", "policies/default.toml", "fd_write", "2"],
    ["explain", "policies/default.toml", "fd_write", "7"],
    ["explain", "policies/examples/docker-like.json", "personality", "0xffffffff"],
    ["explain", "policies/default.toml", "fd_write", "1", "--arch-value", "x86_64"],
    ["explain", "examples/filter.asm", "write", "2"],
])
def test_explain(argv: list[str]) -> None:
    doc = report(*argv, "--json")
    assert_valid(doc, "explain")


@pytest.mark.parametrize("policy", ["default", "default+fs", "allow-all",
                                    "policies/examples/kernel-worker.toml"])
def test_kernel_policy(policy: str) -> None:
    doc = report("kernel", "policy", policy, "--json")
    assert_valid(doc, "kernel-policy")
    listing = callgate("kernel", "policy", policy).stdout
    assert f"# {len(doc['allowed'])} syscalls allowed" in listing


def test_kernel_policy_json_is_the_list_only() -> None:
    done = callgate("kernel", "policy", "default", "--json", "--format", "asm")
    assert done.returncode == 2 and "--json prints the list" in done.stderr


def test_learn(tmp_path: Path) -> None:
    out = tmp_path / "learned.toml"
    doc = report("learn", str(WASM / "learnme.wasm"), "--no-kernel", "--json", "-o", str(out))
    assert_valid(doc, "learn")
    assert doc["policy_file"] == str(out) and doc["policy"] is None and out.is_file()
    assert doc["kernel"] is None
    doc = report("learn", str(WASM / "learnme.wasm"), "--kernel-trace", "user_notif", "--json")
    assert_valid(doc, "learn")
    assert doc["policy"].startswith("#") and doc["kernel"]["method"] == "user_notif"


LOOP = """
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $i i32)
    (loop $again
      (drop (call $write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 2000))))))
"""
DENY_WRITE = """
[gates]
default = "allow"
[[gates.rules]]
names = ["fd_write"]
action = "errno(EPERM)"
"""


def test_audit_records_and_their_summaries(tmp_path: Path) -> None:
    (tmp_path / "loop.wat").write_text(LOOP)
    (tmp_path / "deny.toml").write_text(DENY_WRITE)
    done = callgate("run", "loop.wat", "--policy", "deny.toml", "--audit", "audit.jsonl",
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    for record in records:
        assert_valid(record, "audit-record")
    summaries = [r for r in records if r.get("suppressed")]
    assert summaries, "2000 denials within a second must pass the rate limit's burst"
    assert len(records) - len(summaries) + sum(r["suppressed"] for r in summaries) == 2000
