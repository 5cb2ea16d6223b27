"""``callgate kernel`` verbs."""

from __future__ import annotations

import subprocess
import sys

from callgate.cli import main


def test_kernel_info_reports_actions_sizes_and_state(capsys):
    assert main(["kernel", "info"]) == 0
    out = capsys.readouterr().out
    for name in ("KILL_PROCESS", "TRAP", "ERRNO", "USER_NOTIF", "TRACE", "LOG", "ALLOW"):
        assert any(line.split() == [name, "yes"] for line in out.splitlines()), name
    assert "seccomp_notif        80 / 80" in out
    assert "Seccomp          0" in out


def test_kernel_info_inside_a_filtered_process_shows_the_filter():
    code = (
        "from callgate.kernel.binding import install_filter, set_no_new_privs\n"
        "from callgate.bpf.insn import Insn\n"
        "set_no_new_privs(); install_filter([Insn(6, 0, 0, 0x7fff0000)])\n"
        "from callgate.cli import main; main(['kernel', 'info'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Seccomp          2" in out.stdout
    assert "Seccomp_filters  1" in out.stdout
    assert "NoNewPrivs       1" in out.stdout


def _documented_allowlist() -> dict[str, tuple[bool, bool]]:
    """The table in docs/kernel.md: syscall -> (in the default, with --dir)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "kernel.md").read_text()
    section = text.split("## The default policy's kernel allowlist", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (yes)? \| (yes)? \|", section, re.M)
    return {name: (bool(plain), bool(fs)) for name, plain, fs in rows}


def test_default_policy_allows_fewer_than_60_syscalls_all_listed_in_the_docs(capsys):
    from callgate.cli.kernel_verbs import gate_specs
    from callgate.cli.run_verb import default_policy
    from callgate.kernel.hostpolicy import derive_host_policy

    plain = derive_host_policy(default_policy(False), gate_specs())
    with_fs = derive_host_policy(default_policy(True), gate_specs())
    assert len(plain.allowed) < 60 and len(with_fs.allowed) < 60
    assert "openat2" in with_fs.allowed and "openat2" not in plain.allowed
    documented = _documented_allowlist()
    # Every allowed syscall is listed (a gate that stops needing one may leave a stale row).
    hint = "regenerate the table in docs/kernel.md from `callgate kernel policy default(+fs)`"
    assert set(plain.allowed) <= {n for n, (p, _) in documented.items() if p}, hint
    assert set(with_fs.allowed) <= {n for n, (_, f) in documented.items() if f}, hint
    assert main(["kernel", "policy", "default"]) == 0
    out = capsys.readouterr().out
    assert f"# {len(plain.allowed)} syscalls allowed" in out
    assert [line.split()[0] for line in out.splitlines() if not line.startswith("#")] == list(
        plain.allowed
    )


def test_kernel_policy_compiles_to_every_format(tmp_path):
    from callgate.bpf.insn import unpack
    from callgate.bpf.verifier import verify

    out = tmp_path / "host.bpf"
    assert main(["kernel", "policy", "default", "-f", "raw", "-o", str(out)]) == 0
    verify(unpack(out.read_bytes()))
