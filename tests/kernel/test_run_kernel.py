"""``callgate run --kernel``: the CLI process locks itself down after loading the plugin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

GUESTS = Path(__file__).resolve().parents[2] / "guests" / "wasm"
CALLGATE = [sys.executable, "-m", "callgate"]


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CALLGATE, "run", *args], capture_output=True, text=True, timeout=120, **kwargs
    )


def wait_until_locked(pid: int) -> list[dict[str, str]]:
    """Every thread's status once the main thread reports Seccomp 2 (or the process ends)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tasks = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                tasks.append(dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line))
        if any(t["Pid"].strip() == str(pid) and t["Seccomp"].strip() == "2" for t in tasks):
            return tasks
        time.sleep(0.05)
    raise AssertionError("the process never locked down")


def test_run_kernel_seals_every_thread_and_keeps_only_stdio_and_preopens(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLGATE_CACHE", "off")  # compile: wasmtime's compile threads start
    proc = subprocess.Popen(
        [
            *CALLGATE,
            "run",
            str(GUESTS / "hostile_sleep.wasm"),
            "--kernel",
            "--dir",
            f"{tmp_path}::/data",
        ],
        stdin=subprocess.DEVNULL,
    )
    try:
        tasks = wait_until_locked(proc.pid)
        fds = {
            int(fd): os.readlink(f"/proc/{proc.pid}/fd/{fd}")
            for fd in os.listdir(f"/proc/{proc.pid}/fd")
        }
    finally:
        proc.kill()
        proc.wait()
    assert len(tasks) >= 2, "wasmtime's threads were started before lockdown"
    assert all(t["Seccomp"].strip() == "2" and t["NoNewPrivs"].strip() == "1" for t in tasks)
    # Every thread, wasmtime's compile threads included: --kernel dropped the capabilities
    # before anything started a thread, so none ever held them.
    assert all(int(t[key], 16) == 0 for t in tasks for key in ("CapEff", "CapPrm", "CapBnd"))
    assert set(fds) - {0, 1, 2} == {fd for fd, target in fds.items() if target == str(tmp_path)}
    assert len(fds) == 4


def test_run_kernel_gives_the_same_results_as_without(tmp_path):
    (tmp_path / "in.txt").write_text("hello kernel layer\n")
    for guest, args in (
        ("envargs", ["--env", "K=V", "--", "one", "two"]),
        ("copyfile", ["--dir", f"{tmp_path}::/d", "--", "/d/in.txt", "/d/out.txt", "7"]),
    ):
        plain = run(str(GUESTS / f"{guest}.wasm"), *args)
        locked = run(str(GUESTS / f"{guest}.wasm"), "--kernel", *args)
        assert (locked.returncode, locked.stdout) == (plain.returncode, plain.stdout), guest
        assert locked.returncode == 0, locked.stderr
    assert (tmp_path / "out.txt").read_text() == "hello kernel layer\n"


def test_the_kernel_layer_stops_a_syscall_the_gate_layer_allowed(tmp_path):
    """The gates allow path_open; the policy's [kernel] rules do not let the host open."""
    (tmp_path / "in.txt").write_text("secret")
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[gates]\ndefault = "allow"\n'
        '[kernel]\ndefault = "kill_process"\n'
        '[[kernel.rules]]\nnames = ["openat", "openat2"]\naction = "errno(EACCES)"\n'
    )
    args = ["--policy", str(policy), "--dir", f"{tmp_path}::/d", "--", "/d/in.txt"]
    assert run(str(GUESTS / "cat.wasm"), *args).stdout == "secret"
    locked = run(str(GUESTS / "cat.wasm"), "--kernel", *args)
    assert "secret" not in locked.stdout
    assert locked.returncode != 0


def test_a_kernel_kill_ends_the_cli_with_sigsys(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[gates]\ndefault = "allow"\n'
        '[kernel]\ndefault = "kill_process"\n'
        '[[kernel.rules]]\nnames = ["getrandom"]\naction = "kill_process"\n'
    )
    plain = run(str(GUESTS / "timerand.wasm"), "--policy", str(policy))
    locked = run(str(GUESTS / "timerand.wasm"), "--policy", str(policy), "--kernel")
    assert plain.returncode == 0
    assert locked.returncode == -signal.SIGSYS


def test_run_isolate_gives_the_same_results_in_a_worker(tmp_path):
    (tmp_path / "in.txt").write_text("isolated\n")
    for guest, args in (
        ("cat", ["--dir", f"{tmp_path}::/d", "--", "/d/in.txt"]),
        ("cat", ["--dir", f"{tmp_path}::/d", "--", "/d/missing.txt"]),  # exits non-zero
    ):
        plain = run(str(GUESTS / f"{guest}.wasm"), *args)
        isolated = run(str(GUESTS / f"{guest}.wasm"), "--isolate", *args)
        assert (isolated.returncode, isolated.stdout) == (plain.returncode, plain.stdout), guest


def test_run_isolate_reports_a_kernel_killed_worker_like_a_killed_process(tmp_path):
    (tmp_path / "in.txt").write_text("x")
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[gates]\ndefault = "allow"\n'
        '[kernel]\ndefault = "kill_process"\n'
        '[[kernel.rules]]\nnames = ["openat", "openat2"]\naction = "kill_process"\n'
    )
    result = run(
        str(GUESTS / "cat.wasm"),
        "--isolate",
        "--policy",
        str(policy),
        "--dir",
        f"{tmp_path}::/d",
        "--",
        "/d/in.txt",
    )
    assert result.returncode == 128 + signal.SIGSYS
    assert "SIGSYS" in result.stderr


def test_run_kernel_keeps_the_audit_file_open_and_writes_to_it(tmp_path):
    import json

    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[gates]\ndefault = "allow"\n'
        '[[gates.rules]]\nnames = ["environ_sizes_get"]\naction = "errno(EPERM)"\n'
    )
    audit = tmp_path / "audit.jsonl"
    plain = run(str(GUESTS / "envargs.wasm"), "--policy", str(policy))
    locked = run(
        str(GUESTS / "envargs.wasm"), "--kernel", "--policy", str(policy), "--audit", str(audit)
    )
    assert locked.returncode == plain.returncode  # wasi-libc's start-up gives up the same way
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [r["gate"] for r in records] == ["environ_sizes_get"]
