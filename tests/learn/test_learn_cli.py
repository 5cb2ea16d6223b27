"""``callgate learn`` end to end, as a user runs it: learn, rerun, and try one step more.

The acceptance test of the issue: a policy learned from learnme's default run runs that
run again with zero denials - at the gates (audit file, counters) and, with --kernel,
in a process the derived kernel filter has locked - while each variant that does one
thing more (another fd, another gate, a file) is denied.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import require
from learn_helpers import WASM, audit_records, cli

from callgate.gates.wasi import WasiConfig, WasiProvider
from callgate.policy import load_policy, load_policy_result
from callgate.policy.lint import lint
from callgate.runtime import Plugin

LEARNME = str(WASM / "learnme.wasm")
GREETING = "hello from learnme (the clock says after 1970)\n"
ENOSYS_WASI = 52


def needs_strace() -> None:
    require(shutil.which("strace") is not None, "strace")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A directory for --dir runs, with a file to read."""
    root = tmp_path_factory.mktemp("learn-files")
    (root / "x.txt").write_text("first line\nsecond line\n")
    return root


@pytest.fixture(scope="module")
def learned(tmp_path_factory) -> Path:
    """learnme's policy, learned from its default run (with the [kernel] section)."""
    out = tmp_path_factory.mktemp("learned") / "learnme.toml"
    done = cli("learn", LEARNME, "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == GREETING  # with -o, the guest's stdout is ours
    assert "callgate learn: learnme: 6 of 14 imported gates used" in done.stderr
    return out


@pytest.fixture(scope="module")
def learned_with_dir(tmp_path_factory, files) -> Path:
    out = tmp_path_factory.mktemp("learned-dir") / "learnme.toml"
    done = cli("learn", LEARNME, "--dir", f"{files}::/d", "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out


def rerun(policy: Path, audit: Path, *args: str, kernel: bool = False, dirs: tuple = ()):
    extra = ["--kernel"] if kernel else []
    return cli("run", LEARNME, "--policy", str(policy), "--audit", str(audit), *extra,
               *dirs, "--", *args)


def test_the_learned_policy_loads_and_passes_the_lint(learned):
    policy = load_policy(learned)
    assert policy.gates is not None and policy.kernel is not None
    assert lint(load_policy_result(learned)) == []
    done = cli("check", str(learned))
    assert done.returncode == 0 and "0 error(s), 0 warning(s)" in done.stdout


def test_only_used_gates_are_allowed_and_fd_write_only_on_stdout(learned):
    policy = load_policy(learned)
    named = {name for rule in policy.gates.rules for name in rule.names}
    assert named == {"args_get", "args_sizes_get", "clock_time_get", "fd_fdstat_get",
                     "fd_prestat_get", "fd_write", "proc_exit"}
    (fd_write,) = [rule for rule in policy.gates.rules if rule.names == ("fd_write",)]
    assert [(c.index, c.op.value, c.value, c.width) for c in fd_write.args] == \
        [(0, "eq", 1, 32)]
    text = learned.read_text()
    assert "Imported but never called, so denied:" in text and "random_get" in text


def test_the_default_run_again_has_zero_denials(learned, tmp_path):
    audit = tmp_path / "audit.jsonl"
    done = rerun(learned, audit)
    assert (done.returncode, done.stdout, done.stderr) == (0, GREETING, "")
    assert audit_records(audit) == []


def test_the_default_run_again_has_zero_denials_in_the_counters(learned):
    out = bytearray()
    provider = WasiProvider(WasiConfig(args=["learnme.wasm"], stdout=out))
    with Plugin(LEARNME, policy=learned, providers=[provider]) as plugin:
        plugin.call_int("_start")
        counters = plugin.counters
    assert out.decode() == GREETING
    assert sum(c["allow"] for c in counters.values()) > 0
    assert all(n == 0 for c in counters.values() for kind, n in c.items() if kind != "allow")


def test_the_kernel_section_suffices_for_the_locked_rerun(learned, tmp_path):
    audit = tmp_path / "audit.jsonl"
    done = rerun(learned, audit, kernel=True)
    assert (done.returncode, done.stdout) == (0, GREETING), done.stderr
    assert audit_records(audit) == []


@pytest.mark.parametrize(("variant", "gate", "fd", "says"), [
    (["--stderr"], "fd_write", 2, "stderr: Function not implemented"),
    (["--random"], "random_get", None, "random: Function not implemented"),
])
def test_one_more_fd_or_gate_is_denied(learned, tmp_path, variant, gate, fd, says):
    audit = tmp_path / "audit.jsonl"
    done = rerun(learned, audit, *variant)
    assert done.returncode == 1, done.stderr
    assert done.stdout == GREETING + says + "\n"
    records = audit_records(audit)
    assert [(r["gate"], r["outcome"]) for r in records] == \
        [(gate, f"denied errno {ENOSYS_WASI}")]
    if fd is not None:
        assert records[0]["args"][0] == fd


def test_reading_a_file_is_denied_under_a_policy_learned_with_the_same_dir(learned_with_dir,
                                                                           files, tmp_path):
    dirs = ("--dir", f"{files}::/d")
    audit = tmp_path / "audit.jsonl"
    again = rerun(learned_with_dir, audit, dirs=dirs)
    assert (again.returncode, again.stdout) == (0, GREETING) and audit_records(audit) == []
    locked = rerun(learned_with_dir, audit, kernel=True, dirs=dirs)
    assert (locked.returncode, locked.stdout) == (0, GREETING), locked.stderr
    done = rerun(learned_with_dir, audit, "--file", "/d/x.txt", dirs=dirs)
    assert done.returncode == 1
    assert done.stdout == GREETING + "file /d/x.txt: Function not implemented\n"
    records = audit_records(audit)
    assert records and all(r["outcome"] == f"denied errno {ENOSYS_WASI}" for r in records)
    # wasi-libc asks the preopen's rights (fd 3) before path_open; the policy knows fd 3 only
    # for fd_prestat_*, so that is where the new access is stopped.
    assert records[0]["gate"] in {"fd_fdstat_get", "path_open"}
    plain = cli("run", LEARNME, *dirs, "--", "--file", "/d/x.txt")
    assert plain.stdout.endswith("first line of /d/x.txt: first line\n")  # the default allows it


def test_without_o_the_policy_is_stdout_and_the_guest_output_goes_to_stderr():
    done = cli("learn", LEARNME, "--no-kernel", "--", "--random")
    assert done.returncode == 0, done.stderr
    policy = load_policy(done.stdout)
    assert policy.kernel is None and "random_get" in {n for r in policy.gates.rules
                                                      for n in r.names}
    assert GREETING in done.stderr and "drew 16 random bytes" in done.stderr
    assert "hello" not in done.stdout.replace("learnme", "")


@pytest.mark.parametrize(("method", "watched"), [("strace", "watched with strace -f"),
                                                 ("user_notif", "watched by a USER_NOTIF")])
def test_copyfile_learned_with_a_dir_copies_again_and_locked(tmp_path, method, watched):
    """Either watcher sees the syscalls behind path_open and fd_read; reruns, also locked."""
    if method == "strace":
        needs_strace()
    (tmp_path / "src").write_bytes(os.urandom(5000))
    policy = tmp_path / "copy.toml"
    args = ["--dir", f"{tmp_path}::/w", "--", "/w/src", "/w/dst", "512"]
    done = cli("learn", str(WASM / "copyfile.wasm"), "--kernel-trace", method, "-o",
               str(policy), *args)
    assert done.returncode == 0, done.stderr
    text = policy.read_text()
    assert watched in text
    # the kernel section saw the file work, and found it granted by path_open and fd_read
    assert "openat2" in text and "already allowed - gate path_open" in text
    assert "read (" in text and "gate fd_read" in text
    (tmp_path / "dst").unlink()
    audit = tmp_path / "audit.jsonl"
    for kernel in ([], ["--kernel"]):
        again = cli("run", str(WASM / "copyfile.wasm"), "--policy", str(policy), "--audit",
                    str(audit), *kernel, *args)
        assert (again.returncode, again.stdout) == (0, "copied 5000 bytes\n"), again.stderr
        assert (tmp_path / "dst").read_bytes() == (tmp_path / "src").read_bytes()
        assert audit_records(audit) == []
        (tmp_path / "dst").unlink()


def test_lines_learned_from_three_lines_prints_five(tmp_path):
    policy = tmp_path / "lines.toml"
    done = cli("learn", str(WASM / "lines.wasm"), "--no-kernel", "-o", str(policy), "--", "3")
    assert done.returncode == 0, done.stderr
    audit = tmp_path / "audit.jsonl"
    again = cli("run", str(WASM / "lines.wasm"), "--policy", str(policy), "--audit",
                str(audit), "--", "5", "word")
    assert again.returncode == 0 and len(again.stdout.splitlines()) == 5
    assert audit_records(audit) == []


def test_a_hostile_guest_gives_a_clear_error_and_no_policy(tmp_path):
    policy = tmp_path / "spin.toml"
    done = cli("learn", str(WASM / "hostile_spin.wasm"), "--fuel", "1000000", "--no-kernel",
               "-o", str(policy))
    assert done.returncode == 2
    assert "did not finish" in done.stderr and "fuel" in done.stderr
    assert "none was written" in done.stderr
    assert not policy.exists()


def test_a_module_with_foreign_imports_is_refused_before_it_runs(tmp_path):
    policy = tmp_path / "p.toml"
    done = cli("learn", str(WASM / "hostile_foreign_import.wasm"), "-o", str(policy))
    assert done.returncode == 2 and "no such gate" in done.stderr
    assert not policy.exists()


def test_without_strace_auto_watches_with_user_notif_and_strace_asks_to_install(tmp_path):
    policy = tmp_path / "p.toml"
    env = dict(os.environ, PATH=str(tmp_path))  # no strace on this PATH
    done = cli("learn", LEARNME, "-o", str(policy), "--kernel-trace", "strace", env=env)
    assert done.returncode == 2
    assert "install it" in done.stderr and "--no-kernel" in done.stderr
    assert not policy.exists()
    done = cli("learn", LEARNME, "-o", str(policy), env=env)
    assert done.returncode == 0, done.stderr
    assert "watched by a USER_NOTIF supervisor" in policy.read_text()
    assert load_policy(policy).kernel is not None


def test_options_may_follow_the_module(tmp_path):
    policy = tmp_path / "p.toml"
    done = cli("learn", LEARNME, "-o", str(policy), "--no-kernel", "--env", "A=1", "--",
               "--stderr")
    assert done.returncode == 0, done.stderr
    assert "a line on stderr" in done.stderr
    text = policy.read_text()
    assert 'args ["learnme.wasm", "--stderr"]' in text and "env A" in text
    assert load_policy(policy).kernel is None
