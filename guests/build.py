#!/usr/bin/env python3
"""Build every guest in ``guests/src`` into ``guests/wasm`` — the one build script.

Why one script: the built ``.wasm`` files are committed so users need no
toolchain, and CI runs ``build.py --check`` to prove each committed binary is
exactly what its source builds to. That only works if the build is deterministic,
so this script also normalises the output (see :func:`normalise`).

Conventions:

* ``src/NAME.wat`` is assembled with ``wasmtime.wat2wasm``.
* ``src/NAME.c`` declares how to build it on its first line::

      // callgate-build: command|reactor|freestanding [extra clang flags]

  and is compiled by Debian's ``clang --target=wasm32-wasi -O2`` against the
  system wasi-libc (no ``--sysroot``): ``command`` is a program with ``main``,
  ``reactor`` a library module (``-mexec-model=reactor``), ``freestanding`` a
  module without libc
  (``-ffreestanding -nostdlib -Wl,--no-entry``).

Usage: ``python guests/build.py [--check] [NAME ...]``.
"""

from __future__ import annotations

import argparse
import filecmp
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

GUESTS = Path(__file__).resolve().parent
SRC = GUESTS / "src"
OUT = GUESTS / "wasm"
INCLUDE = GUESTS / "include"

BUILD_TAG = "// callgate-build:"
MODE_FLAGS: dict[str, tuple[str, ...]] = {
    "command": (),
    "reactor": ("-mexec-model=reactor",),
    "freestanding": ("-ffreestanding", "-nostdlib", "-Wl,--no-entry"),
}
CLANG_FLAGS = (
    "--target=wasm32-wasi",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    # Debug info carries paths and is most of the size; the name section stays.
    "-Wl,--strip-debug",
)
# Custom sections worth keeping: "name" gives traps readable function names.
KEPT_CUSTOM_SECTIONS = frozenset({"name"})


class BuildError(Exception):
    """A guest failed to build; the message says which one and why."""


def read_leb_u32(data: bytes, pos: int) -> tuple[int, int]:
    """Decode one unsigned LEB128 at ``pos``; return (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 28:
            raise BuildError("truncated or oversized LEB128 in wasm output")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def normalise(wasm: bytes) -> bytes:
    """Drop custom sections other than ``name`` (e.g. ``producers``, ``.debug_*``).

    They record the toolchain version and build paths, which would make the
    committed binary depend on the machine that built it rather than on the source.
    """
    if wasm[:8] != b"\0asm\1\0\0\0":
        raise BuildError("toolchain output is not a wasm 1.0 module")
    out = bytearray(wasm[:8])
    pos = 8
    while pos < len(wasm):
        start = pos
        section_id = wasm[pos]
        size, body = read_leb_u32(wasm, pos + 1)
        end = body + size
        if section_id == 0:
            name_len, name_at = read_leb_u32(wasm, body)
            name = wasm[name_at : name_at + name_len].decode("utf-8", "replace")
            if name not in KEPT_CUSTOM_SECTIONS:
                pos = end
                continue
        out += wasm[start:end]
        pos = end
    return bytes(out)


def c_build_flags(source: Path) -> list[str]:
    """Parse the ``// callgate-build: MODE [flags]`` line that starts every C guest."""
    first = source.read_text().splitlines()[0] if source.stat().st_size else ""
    if not first.startswith(BUILD_TAG):
        raise BuildError(f"{source.name}: first line must be '{BUILD_TAG} command|reactor|"
                         f"freestanding [extra clang flags]'")
    words = shlex.split(first[len(BUILD_TAG) :])
    if not words or words[0] not in MODE_FLAGS:
        raise BuildError(f"{source.name}: build mode must be one of {sorted(MODE_FLAGS)}")
    return [*MODE_FLAGS[words[0]], *words[1:]]


def build_c(source: Path, target: Path) -> bytes:
    clang = shutil.which("clang")
    if clang is None:
        raise BuildError("clang not found: apt-get install clang lld wasi-libc "
                         "libclang-rt-dev-wasm32")
    cmd = [clang, *CLANG_FLAGS, f"-I{INCLUDE}", *c_build_flags(source),
           "-o", str(target), str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"{source.name}: clang failed:\n{proc.stderr.strip()}")
    return target.read_bytes()


def build_wat(source: Path) -> bytes:
    import wasmtime

    try:
        return wasmtime.wat2wasm(source.read_text())
    except wasmtime.WasmtimeError as exc:
        raise BuildError(f"{source.name}: {exc}") from exc


def sources(names: list[str], src_dir: Path = SRC) -> list[Path]:
    """The guest sources to build: all of ``src_dir``, or the ``names`` given."""
    found = sorted(p for p in src_dir.iterdir() if p.suffix in (".c", ".wat"))
    stems = [p.stem for p in found]
    clashes = sorted({stem for stem in stems if stems.count(stem) > 1})
    if clashes:
        raise BuildError(f"two sources build the same guest: {', '.join(clashes)} "
                         f"(rename one: each NAME.wasm has one NAME.c or NAME.wat)")
    if not names:
        return found
    by_name = {p.stem: p for p in found}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise BuildError(f"no guest source named {', '.join(missing)} in {src_dir}")
    return [by_name[n] for n in names]


def build_all(srcs: list[Path], out_dir: Path) -> list[Path]:
    """Build ``srcs`` into ``out_dir``; raise one error listing every failure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    built, errors = [], []
    with tempfile.TemporaryDirectory(prefix="callgate-guest-") as scratch:
        for source in srcs:
            target = out_dir / f"{source.stem}.wasm"
            try:
                if source.suffix == ".c":
                    raw = build_c(source, Path(scratch) / target.name)
                else:
                    raw = build_wat(source)
                target.write_bytes(normalise(raw))
                built.append(target)
            except BuildError as exc:
                errors.append(str(exc))
    if errors:
        raise BuildError("\n".join(errors))
    return built


def check(srcs: list[Path], whole_tree: bool) -> list[str]:
    """Rebuild into a temp dir; return one problem line per guest that differs.

    With ``whole_tree``, a committed ``.wasm`` without a source is a problem too.
    """
    with tempfile.TemporaryDirectory(prefix="callgate-check-") as tmp:
        return differences(build_all(srcs, Path(tmp)), srcs, OUT, GUESTS, whole_tree)


def differences(fresh_builds: list[Path], srcs: list[Path], out: Path, root: Path,
                whole_tree: bool) -> list[str]:
    """One problem line (paths relative to ``root``) per fresh build that the committed
    one in ``out`` lacks or differs from; with ``whole_tree``, also per committed ``.wasm``
    whose source is not among ``srcs``. Shared with ``examples/grading/build.py``."""
    problems = []
    for fresh in fresh_builds:
        committed = out / fresh.name
        if not committed.exists():
            problems.append(f"{committed.relative_to(root)}: missing (not built)")
        elif not filecmp.cmp(fresh, committed, shallow=False):
            problems.append(f"{committed.relative_to(root)}: differs from its source build")
    if whole_tree:
        known = {p.stem for p in srcs}
        problems += [f"{w.relative_to(root)}: no source in src/ (stale build?)"
                     for w in sorted(out.glob("*.wasm")) if w.stem not in known]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="rebuild into a temp dir and fail if a committed .wasm differs")
    parser.add_argument("names", nargs="*", help="guest names (default: all)")
    args = parser.parse_args(argv)
    try:
        srcs = sources(args.names)
        if args.check:
            problems = check(srcs, whole_tree=not args.names)
            for line in problems:
                print(line, file=sys.stderr)
            if problems:
                print("run: python guests/build.py   (then commit guests/wasm)", file=sys.stderr)
                return 1
            print(f"{len(srcs)} guests match their sources")
            return 0
        for target in build_all(srcs, OUT):
            print(f"built {target.relative_to(GUESTS)} ({target.stat().st_size} bytes)")
    except BuildError as exc:
        print(f"guest build failed:\n{exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
