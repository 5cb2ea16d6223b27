#!/usr/bin/env python3
"""Build the submissions (``submissions/src/*.c``) into ``submissions/wasm`` with the guests'
toolchain: ``guests/build.py``'s clang --target=wasm32-wasi flags and normalisation, so a
rebuild is byte-for-byte the committed ``.wasm`` (``--check`` proves it, as CI does for
``guests/``).

Usage: ``python examples/grading/build.py [--check] [NAME ...]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
SRC = HERE / "submissions" / "src"
OUT = HERE / "submissions" / "wasm"
GUEST_BUILD = HERE.parents[1] / "guests" / "build.py"


def guest_build() -> ModuleType:
    """``guests/build.py`` as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("callgate_guest_build", GUEST_BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(build: ModuleType, sources: list[Path], whole: bool) -> list[str]:
    """One line per submission whose committed build differs from a fresh one."""
    with tempfile.TemporaryDirectory(prefix="callgate-grading-") as tmp:
        # One clang per CPU: each build_all call is one submission, in its own directory.
        def one(source: Path) -> list[Path]:
            built: list[Path] = build.build_all([source], Path(tmp) / source.stem)
            return built

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            fresh_builds = [path for paths in pool.map(one, sources) for path in paths]
        problems: list[str] = build.differences(fresh_builds, sources, OUT, HERE, whole)
        return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="rebuild into a temp dir and fail if a committed .wasm differs")
    parser.add_argument("names", nargs="*", help="submission names (default: all)")
    args = parser.parse_args(argv)
    build = guest_build()
    try:
        sources = build.sources(args.names, SRC)
        if args.check:
            problems = check(build, sources, whole=not args.names)
            for line in problems:
                print(line, file=sys.stderr)
            if problems:
                print("run: python examples/grading/build.py   (then commit the .wasm)",
                      file=sys.stderr)
                return 1
            print(f"{len(sources)} submissions match their sources")
            return 0
        for target in build.build_all(sources, OUT):
            print(f"built {target.relative_to(HERE)} ({target.stat().st_size} bytes)")
    except build.BuildError as exc:
        print(f"build failed:\n{exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
