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
