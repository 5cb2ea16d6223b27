"""`callgate lab`: every reference solution passes its checker, and wrong answers fail with
the message that tells the student what to change.

The checkers run real guests (labs 1-7, 9), a child process that locks itself down
(lab 8) and the real kernel in a forked child (lab 10); so do these tests.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require

from callgate.cli import main
from callgate.teach.labs.base import Check, Lab, LabError, Report
from callgate.teach.labs.catalog import LABS, get_lab
from callgate.teach.labs.runner import guest_path, lab_file

ROOT = Path(__file__).resolve().parents[2]
LAB_FILES = ROOT / "callgate" / "teach" / "labs" / "files"


def handin(tmp_path: Path, lab: Lab, text: str) -> Path:
    path = tmp_path / lab.handin
    path.write_text(text)
    return path


def flat(text: str) -> str:
    """``text`` with every run of whitespace one space: a report wraps its prose."""
    return " ".join(text.split())


def solution(lab: Lab) -> str:
    return lab_file(lab.solution)


def edited(lab: Lab, old: str, new: str) -> str:
    """The lab's reference solution with one change: a wrong answer close to a right one."""
    text = solution(lab)
    assert old in text, f"{lab.solution} no longer contains {old!r}"
    return text.replace(old, new)


@pytest.fixture(autouse=True)
def x86_64() -> None:
    require(platform.machine() == "x86_64", "an x86_64 machine (the labs' numbers are its)")


# --- every reference solution passes -----------------------------------------------------

@pytest.mark.parametrize("lab", LABS, ids=[lab.slug for lab in LABS])
def test_reference_solution_passes(lab: Lab, tmp_path: Path) -> None:
    report = lab.check(handin(tmp_path, lab, solution(lab)))
    assert report.ok, report.render()
    assert len(report.checks) >= 3  # a lab checks more than that the file loads


# --- and wrong answers fail, saying why ---------------------------------------------------

LAB1_ALLOW_ALL = '[gates]\ndefault = "allow"\n'
LAB1_NO_STDERR = ("args = [{ index = 0, op = \"ge\", value = 1, width = 32 },\n"
                  "        { index = 0, op = \"le\", value = 2, width = 32 }]")
LAB6_NAIVE = '''
from callgate import ALLOW, Errno

def broker(request):
    fd, _flags, ptr, length = request.args[:4]
    path = request.memory.read(ptr, length).decode()
    return ALLOW if path.startswith("{prefix}") else Errno(2)
'''
LAB8_NNP_ONLY = '''
from callgate.kernel.binding import set_no_new_privs

def lock(plugin):
    set_no_new_privs()
'''
LAB8_EXECVE_ONLY = '''
from callgate.asm.assembler import assemble
from callgate.kernel.binding import SECCOMP_FILTER_FLAG_TSYNC, install_filter, set_no_new_privs

def lock(plugin):
    set_no_new_privs()
    install_filter(assemble("""
        A = arch
        if (A != ARCH_X86_64) goto kill
        A = sys_number
        if (A == execve) goto kill
        return ALLOW
        kill:
        return KILL_PROCESS
    """, "x86_64"), SECCOMP_FILTER_FLAG_TSYNC)
'''
LAB8_KILLS_EVERYTHING = '''
from callgate.bpf.insn import Insn
from callgate.kernel.binding import install_filter, set_no_new_privs

def lock(plugin):
    set_no_new_privs()
    install_filter([Insn(0x06, 0, 0, 0x80000000)])
'''

# (lab, a wrong answer as a function of the lab, a sentence its report must contain)
WRONG = [
    (1, lambda lab: LAB1_ALLOW_ALL, "your default is ALLOW"),
    (1, lambda lab: LAB1_ALLOW_ALL, "allowed, but cat never calls them: clock_res_get"),
    (1, lambda lab: edited(lab, LAB1_NO_STDERR, 'args = [{ index = 0, op = "eq", value = 1 }]'),
     "let fd_write reach fd 2"),
    (1, lambda lab: "[gates\n", "lab01.toml loads as a policy"),
    (2, lambda lab: edited(lab, 'action = "errno(ENOSYS)"\n\n# Create',
                           'action = "errno(EPERM)"\n\n# Create'),
     "which a WASI guest reads as EPERM"),
    (2, lambda lab: edited(lab, 'names = ["fd_allocate"]\naction = "errno(ENOSYS)"',
                           'names = ["fd_allocate"]\naction = "allow"'),
     "nothing to fall back from"),
    (2, lambda lab: edited(lab, 'names = ["fd_allocate"]\naction = "errno(ENOSYS)"',
                           'names = ["fd_allocate"]\naction = "kill_process"'),
     "a kill leaves the guest no fallback at all"),
    (3, lambda lab: lab_file("lab03_starter.toml"), "cat read fd 0 and printed what it found"),
    (3, lambda lab: edited(lab, 'action = "errno(EBADF)"', 'action = "kill_process"'),
     "by killing cat"),
    (3, lambda lab: edited(lab, "value = 4, width = 32 }]\n\n# stdin",
                           "value = 5, width = 32 }]\n\n# stdin"),
     "cat read the file through fd 4 and the policy refused it"),
    (4, lambda lab: edited(lab, "q2 = 5", "q2 = 4"), "rule 4 matches (ALLOW), but it does not"),
    (4, lambda lab: edited(lab, 'q6 = "default"', "q6 = 4"),
     "rule 4 names path_open but does not match: args[4] == 0x0 (low 32 bits): 0x9 == 0x0"),
    (4, lambda lab: edited(lab, "q5 = 6", "q5 = 2"), "what decides: only rule 6 matches"),
    (4, lambda lab: "q1 = 4\n", "no answer for q2, q3, q4, q5, q6"),
    (5, lambda lab: edited(lab, "if (A > 2) goto badf", "if (A > 3) goto badf"),
     "fd_write(3, …): ERRNO(8) your program returned ALLOW at line 0012"),
    (5, lambda lab: edited(lab, "A = args[0]", "A = args[9]"),
     "lab05.asm:13:10: expected the index of args[] (0..5), got 9"),
    (5, lambda lab: "A = mem[0]\nreturn A\n", "mem[0] is read but not written"),
    (5, lambda lab: edited(lab, "if (A == proc_exit) goto allow\n", ""),
     "proc_exit was refused, so the C library's exit fell through"),
    (6, lambda lab: LAB6_NAIVE.replace("{prefix}", "public"),
     "'publicity.txt' starts with 'public' too"),
    (6, lambda lab: LAB6_NAIVE.replace("{prefix}", "public/"),
     "normalise the path first (posixpath.normpath)"),
    (6, lambda lab: "def broker(request):\n    raise ValueError('oops')\n",
     "raised ValueError: oops"),
    (6, lambda lab: "x = 1\n", "the checker calls a function named `broker`"),
    (7, lambda lab: edited(lab, 'action = "kill_process"', 'action = "allow"'),
     "random_get is still allowed: the learning run used --random"),
    (7, lambda lab: edited(lab, 'action = "kill_process"', 'action = "errno(EPERM)"'),
     "a polite refusal the guest can work around"),
    (7, lambda lab: edited(lab, "{ index = 4, op = \"eq\", value = 0, width = 32 },\n", ""),
     "path_open(3, 1, …, 9, 0xfb7febe) with oflags O_CREAT|O_TRUNC: ALLOW"),
    (8, lambda lab: lab_file("lab08_starter.py"), "Seccomp 0, NoNewPrivs 0 (want 2 and 1)"),
    (8, lambda lab: LAB8_NNP_ONLY, "execve started /bin/echo after lock()"),
    (8, lambda lab: LAB8_EXECVE_ONLY, "execveat is a second way in"),
    (8, lambda lab: LAB8_KILLS_EVERYTHING, "a filter that denies what Python needs"),
    (9, lambda lab: lab_file("lab09_starter.toml"), "the receiver decoded 16 of 16 bits"),
    (9, lambda lab: edited(lab, 'action = "errno(ENOSYS)"', 'action = "kill_process"'),
     "the sender was stopped while sending"),
    (9, lambda lab: edited(lab, 'names = ["fd_write"]', 'names = ["sched_yield"]'),
     "its work is an fd_write to fd 1"),
    (10, lambda lab: edited(lab, "A = args_h[0]\nif (A != 0) goto eperm\n", ""),
     "personality(0x1ffffffff): the low word is the query, the high word is not 0: ERRNO(1)"),
    (10, lambda lab: edited(lab, "if (A >= 0x40000000) goto kill\n", ""),
     "see it yourself: callgate emu lab10.asm 0x4000003f 0"),
    (10, lambda lab: lab_file("lab10_starter.asm"), "not tried yet: fix the cases above first"),
]


@pytest.mark.parametrize(("number", "make", "says"), WRONG,
                         ids=[f"lab{n}-{i}" for i, (n, _m, _s) in enumerate(WRONG)])
def test_wrong_answer_fails_saying_why(number: int, make, says: str, tmp_path: Path) -> None:
    lab = get_lab(number)
    report = lab.check(handin(tmp_path, lab, make(lab)))
    assert not report.ok
    assert flat(says) in flat(report.render()), report.render()


def test_every_lab_has_a_wrong_answer_tested() -> None:
    assert {lab.number for lab in LABS} <= {number for number, _m, _s in WRONG}


def test_lab10_asks_the_real_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last check installs the filter in a forked child; when the kernel disagrees with
    the interpreter (it never should), the check says which call and what the kernel did."""
    from callgate.kernel.child import SyscallOutcome
    from callgate.teach.labs import lab10_kernel_asm

    lab = get_lab(10)
    path = handin(tmp_path, lab, solution(lab))
    kernel = lab.check(path).checks[-1]
    assert kernel.ok and "6 real syscalls" in kernel.details[0]

    def disagreeing(program, calls):
        return [SyscallOutcome("returned", 0)] * len(calls)

    monkeypatch.setattr(lab10_kernel_asm, "probe_syscalls", disagreeing)
    kernel = lab.check(path).checks[-1]
    assert not kernel.ok
    assert "uname(NULL): the kernel returned 0; it should failed with EPERM" not in kernel.details
    assert "uname(NULL): the kernel returned 0; it should fail with EPERM" in kernel.details


# --- the lab framework -------------------------------------------------------------------

def test_labs_are_numbered_and_complete() -> None:
    assert [lab.number for lab in LABS] == list(range(1, len(LABS) + 1))
    assert 8 <= len(LABS) <= 12
    for lab in LABS:
        assert lab.goal and lab.hints and lab.title, lab.slug
        for name in (lab.solution, *(lab.given), *([lab.starter] if lab.starter else [])):
            assert (LAB_FILES / name).is_file(), name
    shipped = {p.name for p in LAB_FILES.iterdir() if not p.name.startswith("__")}
    named = {n for lab in LABS for n in (lab.solution, *lab.given, lab.starter) if n}
    assert shipped - named == set()


def test_guests_ship_with_the_package() -> None:
    """Each is a link to guests/wasm/ here; a wheel holds the file itself."""
    for path in guest_path("cat").parent.iterdir():
        assert path.is_symlink() and path.resolve() == (ROOT / "guests" / "wasm" / path.name)


def test_lookup_and_errors(tmp_path: Path) -> None:
    assert get_lab("3") is get_lab("pin-fd") is get_lab(3)
    with pytest.raises(LabError, match="no lab '99'"):
        get_lab(99)
    with pytest.raises(LabError, match="no such file"):
        get_lab(1).check(tmp_path / "absent.toml")
    assert not Report(get_lab(1), tmp_path, ()).ok  # nothing checked is not a pass
    assert Report(get_lab(1), tmp_path, (Check("a", True),)).ok


# --- the command line --------------------------------------------------------------------

def test_cli_list_show_start_check(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["lab", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(lab.title in listed for lab in LABS)

    for lab in LABS:
        assert main(["lab", "show", str(lab.number)]) == 0
        shown = capsys.readouterr().out
        assert lab.goal in shown
        assert solution(lab) not in shown  # only with --solution
    assert main(["lab", "show", "5", "--solution"]) == 0
    assert capsys.readouterr().out == solution(get_lab(5))
    assert main(["lab", "show", "1"]) == 0
    assert str(guest_path("cat")) in capsys.readouterr().out  # usable outside a checkout

    monkeypatch.chdir(tmp_path)
    assert main(["lab", "start", "4"]) == 0
    assert capsys.readouterr().out == "wrote lab04.toml\nwrote lab04_policy.toml\n"
    assert main(["lab", "start", "4"]) == 0
    assert "kept lab04.toml (it exists)" in capsys.readouterr().out
    assert main(["lab", "check", "4"]) == 1  # the starter's zeros
    assert "you answered rule 0" in capsys.readouterr().out
    Path("mine.toml").write_text(solution(get_lab(4)))
    assert main(["lab", "check", "find-rule", "mine.toml"]) == 0
    assert "all 7 checks passed" in capsys.readouterr().out
    assert main(["lab", "check", "4", "--solution"]) == 0
    capsys.readouterr()
    assert main(["lab", "check", "99"]) == 2
    assert "no lab '99'" in capsys.readouterr().err


def test_cli_from_a_fresh_process(tmp_path: Path) -> None:
    """As a student runs it: the console script, in a directory without a checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "callgate", "lab", "check", "1",
                           "--solution"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.endswith("all 5 checks passed: lab 1 done.\n")
