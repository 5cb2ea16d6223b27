"""``callgate cache info|clear``, and ``--cache-dir`` / ``--no-cache`` on the verbs that run
a guest.

Every command runs as its own process with an environment of the test's making, so the
options (which set ``CALLGATE_CACHE_DIR`` / ``CALLGATE_CACHE`` for the process) and the
suite's own cache directory never leak into each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from schema_check import problems

from callgate import schemas

ROOT = Path(__file__).resolve().parents[2]
WASM = ROOT / "guests" / "wasm"


def callgate(*args: str, env: dict[str, str] | None = None,
             stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callgate", *args], cwd=ROOT, text=True,
                          input=stdin.decode(), capture_output=True, timeout=300, check=False,
                          env=env)


def environment(tmp_path: Path, **changes: str | None) -> dict[str, str]:
    """This process's environment with the cache variables of the test's choosing (None
    removes one); HOME and XDG_CACHE_HOME point into tmp_path, so the default is too."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CALLGATE_CACHE", "CALLGATE_CACHE_DIR")}
    env["HOME"] = str(tmp_path / "home")
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def report(*args: str, env: dict[str, str], status: int = 0) -> dict[str, Any]:
    done = callgate(*args, "--json", env=env)
    assert done.returncode == status, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    assert problems(doc, schemas.load("cache")) == []
    assert doc["schema"] == "callgate.cache/1"
    return doc


def entries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.cwasm") if not p.name.startswith("."))


def run_lines(*options: str, env: dict[str, str]) -> None:
    done = callgate("run", str(WASM / "lines.wasm"), *options, "--", "1", env=env)
    assert (done.returncode, done.stdout) == (0, "line 1\n"), done.stderr


def test_info_shows_directory_entries_and_bytes(tmp_path: Path) -> None:
    env = environment(tmp_path)
    default = tmp_path / "xdg" / "callgate" / "modules"
    doc = report("cache", "info", env=env)
    assert (doc["directory"], doc["exists"], doc["entries"], doc["bytes"]) == \
        (str(default), False, 0, 0)
    assert not default.exists()  # info creates nothing

    run_lines(env=env)
    (entry,) = entries(default)
    doc = report("cache", "info", env=env)
    assert doc["enabled"] and doc["why_disabled"] is None and doc["exists"]
    assert (doc["entries"], doc["bytes"]) == (1, entry.stat().st_size)
    text = callgate("cache", "info", env=env)
    assert text.returncode == 0
    assert f"directory: {default}" in text.stdout
    assert "entries:   1" in text.stdout and f"({entry.stat().st_size} bytes)" in text.stdout


def test_clear_empties_it(tmp_path: Path) -> None:
    env = environment(tmp_path, CALLGATE_CACHE_DIR=str(tmp_path / "cache"))
    run_lines(env=env)
    run_lines("--memory", "32M", env=env)  # same engine: one entry
    run_lines("--fuel", "1000000", env=env)  # fuel compiles other code: a second one
    assert len(entries(tmp_path / "cache")) == 2
    size = sum(p.stat().st_size for p in entries(tmp_path / "cache"))

    doc = report("cache", "clear", env=env)
    assert doc["removed"] == {"entries": 2, "bytes": size}
    assert (doc["entries"], doc["bytes"], doc["action"]) == (0, 0, "clear")
    assert entries(tmp_path / "cache") == [] and not (tmp_path / "cache" / "key").exists()
    done = callgate("cache", "clear", env=env)
    assert done.returncode == 0 and "removed 0 entries" in done.stdout
    run_lines(env=env)  # and it fills again, with a new key
    assert len(entries(tmp_path / "cache")) == 1 and (tmp_path / "cache" / "key").exists()


def test_a_turned_off_cache_says_why(tmp_path: Path) -> None:
    env = environment(tmp_path, CALLGATE_CACHE="off")
    doc = report("cache", "info", env=env)
    assert (doc["enabled"], doc["directory"], doc["entries"]) == (False, None, 0)
    assert doc["why_disabled"] == "turned off by CALLGATE_CACHE=off"
    done = callgate("cache", "info", env=env)
    assert done.returncode == 0
    assert "not used: turned off by CALLGATE_CACHE=off" in done.stdout
    done = callgate("cache", "clear", env=env)
    assert done.returncode == 0 and "nothing cleared" in done.stdout


def test_an_unsafe_directory_says_why_and_is_left_alone(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = environment(tmp_path, CALLGATE_CACHE_DIR=str(cache))
    run_lines(env=env)
    cache.chmod(0o755)
    doc = report("cache", "info", env=env)
    assert not doc["enabled"] and doc["exists"]
    assert "open to group or others (mode 755)" in doc["why_disabled"]
    done = callgate("cache", "clear", env=env)
    assert done.returncode == 1
    assert "nothing cleared" in done.stdout and "chmod 700" in done.stdout
    assert len(entries(cache)) == 1  # not touched
    report("cache", "clear", env=env, status=1)


def test_cache_dir_option_of_the_cache_verb(tmp_path: Path) -> None:
    env = environment(tmp_path, CALLGATE_CACHE="off")
    other = tmp_path / "other"
    run_lines("--cache-dir", str(other), env=env)
    doc = report("cache", "info", "--cache-dir", str(other), env=env)
    assert (doc["directory"], doc["entries"]) == (str(other), 1)


# -- --cache-dir and --no-cache on run, call and learn --------------------------------------

def test_run_cache_dir_moves_the_cache_and_no_cache_keeps_nothing(tmp_path: Path) -> None:
    env = environment(tmp_path, CALLGATE_CACHE_DIR=str(tmp_path / "env"))
    run_lines("--no-cache", env=env)
    assert not (tmp_path / "env").exists()
    run_lines("--cache-dir", str(tmp_path / "moved"), env=env)  # after WASM, as a late option
    assert len(entries(tmp_path / "moved")) == 1 and not (tmp_path / "env").exists()
    done = callgate("run", "--cache-dir", str(tmp_path / "won"), str(WASM / "lines.wasm"),
                    "--", "1", env={**env, "CALLGATE_CACHE": "off"})
    assert done.returncode == 0, done.stderr
    assert len(entries(tmp_path / "won")) == 1  # the option wins over the variable


def test_run_cache_dir_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    env = environment(tmp_path, CALLGATE_CACHE="off")
    done = subprocess.run([sys.executable, "-m", "callgate", "run", "--cache-dir", "here",
                           str(WASM / "lines.wasm"), "--", "1"], cwd=tmp_path, text=True,
                          capture_output=True, timeout=300, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert len(entries(tmp_path / "here")) == 1


def test_call_and_learn_take_the_options(tmp_path: Path) -> None:
    env = environment(tmp_path, CALLGATE_CACHE_DIR=str(tmp_path / "env"))
    done = callgate("call", str(WASM / "wordcount.wasm"), "wordcount", "--input", "-",
                    "--cache-dir", str(tmp_path / "call"), env=env, stdin=b"a b\n")
    assert done.returncode == 0 and '"words":2' in done.stdout, done.stderr
    assert len(entries(tmp_path / "call")) == 1
    done = callgate("call", str(WASM / "hello.wasm"), "add", "2", "3", "--no-cache", env=env)
    assert (done.returncode, done.stdout) == (0, "5\n"), done.stderr
    # learn records in a child process: the option reaches it through the environment
    policy = tmp_path / "learned.toml"
    done = callgate("learn", str(WASM / "lines.wasm"), "--no-kernel", "-o", str(policy),
                    "--cache-dir", str(tmp_path / "learn"), "--", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert len(entries(tmp_path / "learn")) == 1
    done = callgate("learn", str(WASM / "lines.wasm"), "--no-kernel", "-o", str(policy),
                    "--no-cache", "--", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "env").exists()


def test_the_two_options_contradict(tmp_path: Path) -> None:
    done = callgate("run", str(WASM / "lines.wasm"), "--no-cache", "--cache-dir",
                    str(tmp_path), "--", "1", env=environment(tmp_path))
    assert done.returncode == 2
    assert "--cache-dir and --no-cache contradict each other" in done.stderr
