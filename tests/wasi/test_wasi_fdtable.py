"""fd numbers and stdio as wasmtime's preview1 hands them out and describes them, byte for byte.

Programs are tested on wasmtime, so a program that closes, renumbers and reopens
fds (Yosys's ABC step renumbers onto fds that are not open, then closes fd 1)
must get the same numbers under callgate, and a program asking whether its
stdio is a terminal must get the same answer. The ``wasi_fdtable`` guest runs a
script of fd operations and reports each result (fd numbers, errnos, fdstat and
filestat fields, ``isatty``); every test here runs the same script under
wasmtime-py's native WASI and under callgate and requires the same report,
stdout, stderr and exit code.

The rules those reports pin down (``callgate/gates/wasi/fdtable.py`` implements them):

* numbering: a new fd takes the highest number that was freed (closed, or
  renumbered away) and not reused since; with none, one past the highest number
  ever used (:func:`wasmtime_rule` is the reference model; it is checked against
  wasmtime itself on random scripts);
* ``fd_renumber(from, to)``: EBADF unless both are open (the same fd: nothing
  happens); otherwise ``to``'s old entry is closed, ``from`` moves to ``to`` and
  ``from`` becomes free;
* stdio: filetype CHARACTER_DEVICE for a terminal, UNKNOWN for anything else (a
  pipe, ``/dev/null``, a regular file, callgate's byte buffers); fdflags 0; base
  = inheriting rights = FD_READ (stdin) or FD_WRITE (stdout, stderr); filestat
  all zeros but the filetype; the other fd calls EBADF (seek, tell, pread on
  stdin and pwrite on stdout/stderr: ESPIPE); path calls EBADF.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from native_wasi import WASM, Run, run_native
from wasi_helpers import run_gated

from callgate.gates.spec import GuestExit
from callgate.gates.wasi import Preopen, WasiConfig, WasiProvider
from callgate.runtime import Plugin

GUEST = "wasi_fdtable"
CHILD = Path(__file__).with_name("stdio_child.py")

# name -> (number of preopens /d0, /d1, ... at fds 3, 4, ...; fd the report goes to; ops).
# Ops (see guests/src/wasi_fdtable.c): o = open a file under fd 3 (o@4: under fd 4),
# d = open a directory, O:K = K opens, c:N close, r:A:B renumber, w:N what fd N is,
# p:N write a marker to fd N, fds = the open fds, s:N fdstat+filestat+isatty,
# S:N the other fd calls, P:N path calls with N as the directory.
CASES: dict[str, tuple[int, int, tuple[str, ...]]] = {
    # Issue 13: after fd_renumber(f, 1) and fd_close(1) the next opens get 4, then 1.
    "renumber-onto-stdout-then-close": (1, 2, ("o", "r:4:1", "w:1", "c:1", "o", "o", "fds")),
    "renumber-from-closed-then-close-1": (1, 2, ("o", "c:4", "r:4:1", "c:1", "o", "o", "fds")),
    "renumber-onto-closed": (1, 2, ("o", "r:4:9", "c:9", "w:4", "fds", "o", "o")),
    "renumber-closed-onto-stdout": (1, 2, ("c:1", "o", "r:4:1", "c:1", "fds", "o", "o")),
    "renumber-from-closed": (1, 2, ("r:9:1", "r:9:9", "fds", "o")),
    "renumber-same-fd": (1, 2, ("o", "r:4:4", "w:4", "r:1:1", "p:1", "fds", "o")),
    "renumber-over-open-file": (1, 2, ("o", "o", "r:4:5", "w:4", "w:5", "fds", "o", "o")),
    "renumber-frees-the-source": (1, 2, ("o", "o", "o", "c:6", "r:4:5", "o", "o", "o", "fds")),
    "renumber-stdout-away": (1, 2, ("o", "r:1:4", "p:4", "p:1", "w:4", "fds", "o", "o")),
    "renumber-stdin-away": (1, 2, ("o", "r:0:4", "w:0", "w:4", "s:4", "fds", "o", "o")),
    "renumber-preopen": (2, 1, ("r:4:3", "w:3", "w:4", "o", "o", "o@4", "fds")),
    "renumber-file-over-preopen": (1, 1, ("o", "r:4:3", "w:3", "o", "fds")),
    "close-stdin-and-stdout": (1, 2, ("c:0", "c:1", "o", "o", "o", "fds")),
    "close-stdout-and-stdin": (1, 2, ("c:1", "c:0", "o", "o", "o", "fds")),
    "close-preopen": (2, 1, ("c:3", "o@4", "o@4", "w:3", "fds", "c:3", "c:3")),
    "close-highest-then-open": (1, 2, ("o", "o", "c:5", "o", "c:4", "o", "o", "fds")),
    "close-many-highest-first": (1, 2, ("O:3", "c:5", "c:4", "c:6", "O:4", "fds")),
    "close-stdin-and-stderr": (1, 1, ("c:2", "c:0", "O:3", "w:0", "w:2", "fds")),
    "directories-too": (1, 2, ("d", "o", "d", "c:5", "c:4", "o", "d@6", "fds")),
    "high-water-after-refill": (1, 2, ("O:3", "c:4", "O:2", "r:6:5", "O:3", "fds")),
    "stdio-captured": (0, 2, ("s:0", "s:1", "s:2", "S:0", "S:1", "S:2", "P:0", "P:1", "P:2")),
    "stdio-moved-keeps-its-fdstat": (1, 1, ("o", "o", "r:0:4", "r:2:5", "s:4", "s:5", "S:5",
                                            "P:4", "p:5", "fds")),
}


def _dirs(root: Path, count: int) -> dict[str, Path]:
    dirs = {}
    for i in range(count):
        (root / f"d{i}").mkdir(parents=True)
        dirs[f"/d{i}"] = root / f"d{i}"
    return dirs


def _both(tmp_path: Path, preopens: int, out: int, ops: tuple[str, ...]) -> tuple[Run, Run]:
    args = (str(out), *ops)
    native = run_native(GUEST, args, dirs=_dirs(tmp_path / "native", preopens))
    gated = run_gated(GUEST, args, dirs=_dirs(tmp_path / "gated", preopens))
    return native, gated


def _assert_same(native: Run, gated: Run) -> None:
    assert gated.code == native.code == 0, (native, gated)
    assert gated.stdout == native.stdout
    assert gated.stderr == native.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_fds_as_wasmtime(case: str, tmp_path: Path) -> None:
    preopens, out, ops = CASES[case]
    native, gated = _both(tmp_path, preopens, out, ops)
    _assert_same(native, gated)


def test_the_issue_13_numbers(tmp_path: Path) -> None:
    """Guard against a differential that passes because both sides print nothing useful:
    the numbers from the issue, as wasmtime hands them out."""
    _, gated = _both(tmp_path, *CASES["renumber-onto-stdout-then-close"])
    assert gated.stderr.decode().splitlines() == [
        "o f1 0 fd=4", "r 4 1 0", "w 1 file f1", "c 1 0", "o f2 0 fd=4", "o f3 0 fd=1",
        "fds 0 1 2 3 4"]
    _, gated = _both(tmp_path / "captured", *CASES["stdio-captured"])
    report = gated.stderr.decode()
    assert "fdstat 0 0 type=0 flags=0 base=0x2 inheriting=0x2\n" in report
    assert "fdstat 1 0 type=0 flags=0 base=0x40 inheriting=0x40\n" in report
    assert "isatty 1 0\n" in report


# --- random scripts: wasmtime follows the stated rule, and callgate follows wasmtime -----------

def wasmtime_rule(ops: list[str], preopens: int) -> list[str]:
    """The report lines for ``o``, ``c``, ``r`` and ``fds`` ops that the rule predicts.

    A number is *free* once closed or renumbered away, until handed out again; a new
    fd takes the highest free number, else one past the highest number ever used.
    """
    used = set(range(3 + preopens))
    high_water = len(used)
    dirs, stdio = set(range(3, 3 + preopens)), {0, 1, 2}
    lines, files = [], 0
    for op in ops:
        if op == "o":
            files += 1
            if 3 not in used or 3 in stdio:
                lines.append(f"o f{files} 8")      # EBADF: no fd 3, or stdio
            elif 3 not in dirs:
                lines.append(f"o f{files} 54")     # ENOTDIR: a file
            else:
                free = [n for n in range(high_water) if n not in used]
                fd = max(free) if free else high_water
                used.add(fd)
                high_water = max(high_water, fd + 1)
                lines.append(f"o f{files} 0 fd={fd}")
        elif op.startswith("c:"):
            fd = int(op[2:])
            lines.append(f"c {fd} {0 if fd in used else 8}")
            used.discard(fd)
            dirs.discard(fd)
            stdio.discard(fd)
        elif op.startswith("r:"):
            a, b = map(int, op[2:].split(":"))
            ok = a in used and b in used
            lines.append(f"r {a} {b} {0 if ok else 8}")
            if ok and a != b:
                used.discard(a)
                for kind in (dirs, stdio):
                    moved = a in kind
                    kind.discard(a)
                    kind.discard(b)
                    if moved:
                        kind.add(b)
        else:
            lines.append("fds" + "".join(f" {n}" for n in sorted(used)))
    return lines


def _random_script(rng: random.Random) -> list[str]:
    # fd 2 carries the report, so it is never closed or renumbered; 0 and 1 are.
    def some_fd() -> int:
        return rng.choice([0, 1, 3, 4, 5, 6, 7, 8, 9, 11])
    ops = []
    for _ in range(rng.randint(5, 30)):
        roll = rng.random()
        if roll < 0.4:
            ops.append("o")
        elif roll < 0.7:
            ops.append(f"c:{some_fd()}")
        elif roll < 0.95:
            ops.append(f"r:{some_fd()}:{some_fd()}")
        else:
            ops.append("fds")
    return ops


SCRIPTS = [(seed, 1 + seed % 2, _random_script(random.Random(seed))) for seed in range(40)]


@pytest.mark.parametrize("seed,preopens,ops", SCRIPTS, ids=[f"seed{s[0]}" for s in SCRIPTS])
def test_random_scripts(seed: int, preopens: int, ops: list[str], tmp_path: Path) -> None:
    native, gated = _both(tmp_path, preopens, 2, tuple(ops))
    assert native.stderr.decode().splitlines() == wasmtime_rule(ops, preopens), \
        "wasmtime no longer numbers fds by the rule callgate implements"
    _assert_same(native, gated)


# --- the fd cap: wasmtime has none; callgate's numbers stay below it ---------------------------

def run_capped(ops: tuple[str, ...], max_fds: int, root: Path) -> Run:
    out, err = bytearray(), bytearray()
    root.mkdir(parents=True)
    config = WasiConfig(args=(GUEST, "1", *ops), preopens=[Preopen(root, "/d0")],
                        stdout=out, stderr=err, max_fds=max_fds)
    code = 0
    with Plugin(WASM / f"{GUEST}.wasm", providers=[WasiProvider(config)]) as plugin:
        try:
            plugin.call_int("_start")
        except GuestExit as exc:
            code = exc.code
    return Run(code, bytes(out), bytes(err))


def test_below_the_cap_the_numbers_are_wasmtimes(tmp_path: Path) -> None:
    ops = ("O:4", "c:5", "c:7", "r:4:6", "O:3", "fds")
    capped = run_capped(ops, 8, tmp_path / "capped")
    native = run_native(GUEST, ("1", *ops), dirs={"/d0": _dirs(tmp_path, 1)["/d0"]})
    assert capped == native
    assert capped.stdout.decode().splitlines()[-1] == "fds 0 1 2 3 4 5 6 7"


def test_the_cap_counts_open_fds_and_every_number_stays_below_it(tmp_path: Path) -> None:
    """EMFILE (33) once ``max_fds`` fds are open; a freed number is handed out again,
    highest first, and a number at or past the cap never is."""
    ops = ("O:9", "c:5", "c:7", "O:3", "r:4:6", "c:0", "O:3", "fds", "w:0", "w:4")
    report = run_capped(ops, 8, tmp_path / "d").stdout.decode().splitlines()
    assert report == [
        "O 4 5 6 7 error 33",   # 3 stdio + the preopen + 4 = 8
        "c 5 0", "c 7 0",
        "O 7 5 error 33",       # the highest freed number first, then full again
        "r 4 6 0",              # 6's file closed, 4 freed
        "c 0 0",                # stdin closed: 0 and 4 free
        "O 4 0 error 33",
        "fds 0 1 2 3 4 5 6 7",
        "w 0 file f10", "w 4 file f9",   # (a failed open uses up a name too)
    ]


# --- inherited stdio: a terminal, a pipe, /dev/null, a regular file ------------------------------

KINDS = ("tty", "pipe", "devnull", "file")
STREAMS = ("stdin", "stdout", "stderr")


def _run_inherited(engine: str, which: int, kind: str, tmp: Path) -> tuple[int, bytes, bytes]:
    """Run the guest in a child whose fd ``which`` is ``kind`` (the others pipes); return
    its exit code, the report (on stderr when stdout is under test, else on stdout)
    and what the regular file holds afterwards (empty for other kinds)."""
    report_fd = 2 if which == 1 else 1
    ops = (f"s:{which}", f"S:{which}", f"P:{which}", f"s:{which}")
    opened: list[int] = []
    path = tmp / f"{engine}-{which}"
    if kind == "tty":
        master, subject = os.openpty()
        opened += [master, subject]
    elif kind == "devnull":
        subject = os.open(os.devnull, os.O_RDWR)
        opened.append(subject)
    elif kind == "file":
        path.write_bytes(b"host file\n")
        subject = os.open(path, os.O_RDWR)
        opened.append(subject)
    streams: dict[str, int] = {name: subprocess.PIPE for name in STREAMS}
    if kind != "pipe":
        streams[STREAMS[which]] = subject
    stdin = streams.pop("stdin")
    # an empty pipe for stdin unless stdin is under test
    feed = {"input": b""} if stdin == subprocess.PIPE else {"stdin": stdin}
    try:
        proc = subprocess.run([sys.executable, str(CHILD), engine, GUEST, str(report_fd), *ops],
                              timeout=60, check=False, **streams, **feed)
    finally:
        for fd in opened:
            os.close(fd)
    outputs = {1: proc.stdout, 2: proc.stderr}
    assert proc.returncode == 0, (engine, outputs)
    for fd, captured in outputs.items():
        if fd != report_fd and captured is not None:
            assert captured == b"", f"{engine} wrote to a stream not under test"
    return proc.returncode, outputs[report_fd] or b"", path.read_bytes() if kind == "file" else b""


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("which", range(3), ids=STREAMS)
def test_inherited_stdio_as_wasmtime(which: int, kind: str, tmp_path: Path) -> None:
    native = _run_inherited("wasmtime", which, kind, tmp_path)
    gated = _run_inherited("callgate", which, kind, tmp_path)
    assert gated == native
    report = gated[1].decode()
    right = 0x2 if which == 0 else 0x40
    filetype = 2 if kind == "tty" else 0
    assert f"fdstat {which} 0 type={filetype} flags=0 base={right:#x} inheriting={right:#x}\n" \
        in report
    assert f"isatty {which} {int(kind == 'tty')}\n" in report
    if kind == "file":
        assert gated[2] == b"host file\n"  # neither truncated nor written

