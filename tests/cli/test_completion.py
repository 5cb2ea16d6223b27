"""Shell completion (argcomplete) and ``--version``.

bash runs the script ``callgate completion bash`` prints and completes real command lines
through it; zsh and fish are checked through argcomplete's protocol (the same program
answers every shell) and by their scripts, since neither shell need be installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require

import callgate

ROOT = Path(__file__).resolve().parents[2]
CALLGATE = f'"{sys.executable}" -m callgate'


@pytest.fixture(autouse=True)
def argcomplete_installed() -> None:
    require(importlib.util.find_spec("argcomplete") is not None,
            "argcomplete (pip install -e '.[test]' or 'callgate[completion]')")


def bash_complete(line: str, tmp_path: Path) -> list[str]:
    """What bash offers after ``line``, through the script callgate prints."""
    shim = tmp_path / "bin" / "callgate"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f"#!/bin/sh\nexec {CALLGATE} \"$@\"\n")
    shim.chmod(0o755)
    script = f"""
        source <(callgate completion bash) || exit 3
        COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}
        read -ra COMP_WORDS <<< "$COMP_LINE"
        [[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
        _python_argcomplete callgate
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    env = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [word.strip() for word in done.stdout.splitlines() if word.strip()]


@pytest.mark.parametrize(("line", "offered"), [
    ("callgate em", ["emu"]),
    ("callgate emu allow", ["allow-all"]),
    ("callgate run --pol", ["--policy"]),
    ("callgate call x.wasm f --policy def", ["default", "default+fs"]),
    ("callgate compile default --format ", ["raw", "asm", "c", "hex", "pfc", "oci"]),
    ("callgate completion ", ["bash", "zsh", "fish"]),
])
def test_bash_completes_verbs_options_choices_and_shipped_policies(
        line: str, offered: list[str], tmp_path: Path) -> None:
    got = bash_complete(line, tmp_path)
    assert [word for word in got if not word.startswith("-") or offered[0].startswith("-")] \
        == offered


def test_files_complete_where_a_filter_goes(tmp_path: Path) -> None:
    assert "policies/examples/" in bash_complete("callgate check policies/ex", tmp_path)


def protocol_complete(line: str, shell: str) -> list[str]:
    """argcomplete's protocol as the zsh and fish scripts drive it (answers on fd 8)."""
    env = {**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": shell,
           "COMP_LINE": line, "COMP_POINT": str(len(line)), "_ARGCOMPLETE_IFS": "\n",
           "_ARGCOMPLETE_SUPPRESS_SPACE": "1"}
    done = subprocess.run(["bash", "-c", f"{CALLGATE} 8>&1 9>&2 1>/dev/null 2>&1"], cwd=ROOT,
                          env=env, text=True, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [re.split(r"[:\t]", word)[0] for word in done.stdout.splitlines() if word]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_get_the_same_answers(shell: str) -> None:
    assert protocol_complete("callgate em", shell) == ["emu"]
    assert protocol_complete("callgate completion f", shell) == ["fish"]


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "-F _python_argcomplete callgate"),
    ("zsh", "#compdef callgate"),
    ("fish", "complete --command callgate"),
])
def test_each_shell_gets_its_script(shell: str, marker: str) -> None:
    done = subprocess.run([sys.executable, "-m", "callgate", "completion", shell], text=True,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0 and marker in done.stdout, done.stderr


def test_without_argcomplete_the_verb_says_how_to_get_it(tmp_path: Path) -> None:
    hider = tmp_path / "argcomplete.py"
    hider.write_text("raise ImportError('hidden for this test')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "callgate", "completion", "bash"], env=env,
                          text=True, capture_output=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr == ("callgate completion: shell completion needs argcomplete: "
                           "pip install 'callgate[completion]'\n")


def test_version() -> None:
    done = subprocess.run([sys.executable, "-m", "callgate", "--version"], text=True,
                          capture_output=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, f"callgate {callgate.__version__}\n")
    assert re.fullmatch(r"\d+\.\d+\.\d+", callgate.__version__)
