"""The committed guest binaries are exactly what their sources build to.

Runs ``guests/build.py --check`` (a rebuild into a temp dir, byte-compared with
``guests/wasm``), and checks the properties that make that comparison honest:
two builds are identical, and every build-mode line is understood.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require

GUESTS = Path(__file__).resolve().parents[1] / "guests"
BUILD = GUESTS / "build.py"


def load_build_module():
    spec = importlib.util.spec_from_file_location("guests_build", BUILD)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def have_wasi_clang() -> bool:
    """clang alone is not enough: it must also find wasi-libc and the wasm32 runtime."""
    return shutil.which("clang") is not None and Path("/usr/lib/wasm32-wasi/libc.a").exists()


def test_committed_wasm_matches_sources() -> None:
    require(have_wasi_clang(), "clang with wasi-libc (apt-get install clang lld wasi-libc "
            "libclang-rt-dev-wasm32)")
    proc = subprocess.run([sys.executable, str(BUILD), "--check"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_every_source_has_a_committed_build() -> None:
    sources = {p.stem for p in (GUESTS / "src").iterdir() if p.suffix in (".c", ".wat")}
    built = {p.stem for p in (GUESTS / "wasm").glob("*.wasm")}
    assert sources == built


def test_build_is_deterministic(tmp_path: Path) -> None:
    require(have_wasi_clang(), "clang with wasi-libc")
    build = load_build_module()
    srcs = [build.SRC / "wordcount.c", build.SRC / "hello.wat"]
    first = build.build_all(srcs, tmp_path / "one")
    second = build.build_all(srcs, tmp_path / "two")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_check_reports_every_differing_file(tmp_path: Path, monkeypatch) -> None:
    build = load_build_module()
    out = tmp_path / "wasm"
    shutil.copytree(GUESTS / "wasm", out)
    (out / "hello.wasm").write_bytes(b"\0asm\1\0\0\0")
    (out / "gatecall.wasm").unlink()
    (out / "orphan.wasm").write_bytes(b"")
    monkeypatch.setattr(build, "OUT", out)
    monkeypatch.setattr(build, "GUESTS", tmp_path)
    srcs = [build.SRC / "hello.wat", build.SRC / "gatecall.wat"]
    problems = build.check(srcs, whole_tree=True)
    assert any(p.startswith("wasm/hello.wasm: differs") for p in problems)
    assert any(p.startswith("wasm/gatecall.wasm: missing") for p in problems)
    assert any(p.startswith("wasm/orphan.wasm: no source") for p in problems)


def test_normalise_keeps_code_and_names_drops_other_custom_sections() -> None:
    build = load_build_module()

    def custom(name: bytes, payload: bytes) -> bytes:
        body = bytes([len(name)]) + name + payload
        return bytes([0, len(body)]) + body

    header = b"\0asm\1\0\0\0"
    type_section = bytes([1, 4, 1, 0x60, 0, 0])  # one type: () -> ()
    wasm = (header + custom(b"producers", b"clang 14") + type_section
            + custom(b"name", b"\0") + custom(b".debug_info", b"/home/me/x.c"))
    assert build.normalise(wasm) == header + type_section + custom(b"name", b"\0")
    with pytest.raises(build.BuildError, match="not a wasm"):
        build.normalise(b"\0asm\2\0\0\0")


@pytest.mark.parametrize("first_line, message", [
    ("int x;", "first line must be"),
    ("// callgate-build: library", "build mode must be one of"),
    ("// callgate-build:", "build mode must be one of"),
])
def test_bad_build_line_is_explained(tmp_path: Path, first_line: str, message: str) -> None:
    build = load_build_module()
    source = tmp_path / "bad.c"
    source.write_text(first_line + "\nint main(void) { return 0; }\n")
    with pytest.raises(build.BuildError, match=message):
        build.c_build_flags(source)


def test_build_line_flags_are_passed_through(tmp_path: Path) -> None:
    build = load_build_module()
    source = tmp_path / "x.c"
    source.write_text("// callgate-build: freestanding -DWHO='\"a b\"' -Os\n")
    assert build.c_build_flags(source) == [
        "-ffreestanding", "-nostdlib", "-Wl,--no-entry", '-DWHO="a b"', "-Os"]


def test_every_guest_is_documented_in_the_readme() -> None:
    """The README is where tests and users learn what each guest must do."""
    readme = (GUESTS / "README.md").read_text()
    sources = sorted(p.name for p in (GUESTS / "src").iterdir() if p.suffix in (".c", ".wat"))
    undocumented = [name for name in sources
                    if f"`{name}`" not in readme and f"`{name.rsplit('.', 1)[0]}`" not in readme]
    assert not undocumented


def test_two_sources_for_one_guest_are_refused(tmp_path: Path) -> None:
    build = load_build_module()
    (tmp_path / "x.c").write_text("// callgate-build: command\n")
    (tmp_path / "x.wat").write_text("(module)")
    with pytest.raises(build.BuildError, match="two sources build the same guest: x"):
        build.sources([], tmp_path)


def test_unknown_guest_name_is_refused() -> None:
    build = load_build_module()
    with pytest.raises(build.BuildError, match="no guest source named nosuch"):
        build.sources(["hello", "nosuch"])
