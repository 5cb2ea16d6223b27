"""``--dir``: callgate's ``HOST::GUEST``, Docker's ``HOST:GUEST`` when unambiguous, and ``DIR``.

The parser (:func:`callgate.gates.wasi.parse_preopen`) says which form it read; the CLI
prints one note for a Docker-form spec, and refuses an ambiguous one with both syntaxes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from wasi_helpers import REPO

from callgate.gates.wasi import Preopen, WasiConfigError, parse_preopen, preopen_arg

WASM = REPO / "guests" / "wasm"
BOTH_SYNTAXES = ("HOST::GUEST[:ro]", "HOST:GUEST[:ro]")


@pytest.mark.parametrize(("spec", "preopen", "form"), [
    ("./data::/data", Preopen(Path("data"), "/data"), "callgate"),
    ("./data::/data:ro", Preopen(Path("data"), "/data", True), "callgate"),
    ("/proc::/proc:ro:pseudo", Preopen(Path("/proc"), "/proc", True, True), "callgate"),
    ("a:b::/x:y", Preopen(Path("a:b"), "/x:y"), "callgate"),  # colons inside the :: form
    ("./data:/data", Preopen(Path("data"), "/data"), "docker"),
    ("./data:/data:ro", Preopen(Path("data"), "/data", True), "docker"),
    ("./data:/data:rw", Preopen(Path("data"), "/data"), "docker"),
    ("data:/d:ro:pseudo", Preopen(Path("data"), "/d", True, True), "docker"),
    ("./data", Preopen(Path("data"), "./data"), "same"),
    ("/srv:ro", Preopen(Path("/srv"), "/srv", True), "same"),
])
def test_forms(spec: str, preopen: Preopen, form: str) -> None:
    parsed = parse_preopen(spec)
    assert (parsed.preopen, parsed.form, parsed.text) == (preopen, form, spec)
    assert preopen_arg(spec) == preopen
    # The canonical form reads back to the same preopen, as callgate's own form.
    again = parse_preopen(parsed.canonical())
    assert again.preopen == preopen and again.form == "callgate"


def test_describe_says_what_was_understood() -> None:
    assert parse_preopen("data:/d:ro").describe() == \
        "host directory 'data' as guest '/d', read-only"


@pytest.mark.parametrize(("spec", "why"), [
    ("a:b:c", "more than one ':'"),
    ("./data:/x:/y:ro", "more than one ':'"),
])
def test_ambiguous_forms_show_both_syntaxes(spec: str, why: str) -> None:
    with pytest.raises(WasiConfigError) as info:
        parse_preopen(spec)
    message = str(info.value)
    assert "ambiguous" in message and why in message
    assert all(syntax in message for syntax in BOTH_SYNTAXES)


def test_an_existing_host_path_with_a_colon_is_ambiguous(tmp_path: Path) -> None:
    odd = tmp_path / "a:b"
    odd.mkdir()
    with pytest.raises(WasiConfigError, match=r"a host path named .* exists"):
        parse_preopen(str(odd))
    # callgate's own form says it without doubt
    assert parse_preopen(f"{odd}::/x").preopen == Preopen(odd, "/x")


@pytest.mark.parametrize("spec", ["::/x", "data::", ":/x", "data:", "data:/d:ro:rw"])
def test_empty_sides_and_contradictions_are_refused(spec: str) -> None:
    with pytest.raises(WasiConfigError, match="--dir"):
        parse_preopen(spec)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callgate", "run", *args], text=True,
                          capture_output=True, timeout=120, cwd=cwd, check=False)


def test_cli_reads_docker_form_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("gated\n")
    done = run(str(WASM / "cat.wasm"), "--dir", "data:/data:ro", "--", "/data/notes.txt",
               cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "gated\n"), done.stderr
    assert done.stderr == (
        "callgate run: note: --dir data:/data:ro: read as Docker's HOST:GUEST - host "
        "directory 'data' as guest '/data', read-only (callgate's own form: "
        "data::/data:ro)\n")
    # callgate's own form: no note
    done = run(str(WASM / "cat.wasm"), "--dir", "data::/data:ro", "--", "/data/notes.txt",
               cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "gated\n", "")


def test_cli_ambiguous_dir_is_one_usage_line(tmp_path: Path) -> None:
    done = run(str(WASM / "cat.wasm"), "--dir", "a:b:c", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("callgate run: error: argument --dir: 'a:b:c' is ambiguous")
    assert all(syntax in done.stderr for syntax in BOTH_SYNTAXES)
