"""Lab 4: find the rule that decided a call - several rules match, the most restrictive wins."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from callgate.arch import GATE_ARCH
from callgate.bpf.actions import format_action
from callgate.bpf.seccomp_data import SeccompData
from callgate.policy import load_policy_result
from callgate.policy.compiler import compile_policy
from callgate.policy.model import Layer
from callgate.teach.explain import Explanation, Stage, explain_call
from callgate.teach.explain_text import check_text
from callgate.teach.labs.base import Check, Lab, Stop, failed, passed
from callgate.teach.labs.runner import GuestRun, lab_file, run_command

POLICY_FILE = "lab04_policy.toml"
NOTES = "meeting at noon\n"


@dataclass(frozen=True)
class Question:
    key: str
    text: str
    run: str  # the cat argument whose run made the call; "" for a call given outright
    gate: str
    fd: int | None = None  # which call of that gate: the one whose args[0] is fd
    args: tuple[int, ...] = ()  # for a call given outright


QUESTIONS = (
    Question("q1", "`cat /data/notes.txt`: its path_open", "/data/notes.txt", "path_open"),
    Question("q2", "`cat /data/meeting-notes.txt`: its path_open",
             "/data/meeting-notes.txt", "path_open"),
    Question("q3", "`cat /data/meeting-notes.txt`: the fd_write to fd 2 that says why",
             "/data/meeting-notes.txt", "fd_write", fd=2),
    Question("q4", "`cat /data/notes.txt`: the fd_write to fd 1 that prints the file",
             "/data/notes.txt", "fd_write", fd=1),
    Question("q5", "a plugin calls fd_write(12, 0, 1, 0)", "", "fd_write", args=(12, 0, 1, 0)),
    Question("q6", "a plugin calls path_open(3, 1, 0, 5, 9, 0): oflags 9 is "
             "O_CREAT|O_TRUNC", "", "path_open", args=(3, 1, 0, 5, 9, 0)),
)


def answer_text(value: object) -> str:
    if value == "default":
        return "the default"
    return f"rule {value}" if isinstance(value, int) else repr(value)


def number(value: int) -> str:
    """Small numbers in decimal, addresses and flags in hex: as a student reads them."""
    return str(value) if value < 0x1000 else hex(value)


def recorded_call(run: GuestRun, question: Question) -> tuple[int, ...]:
    for gate, args in run.calls_made:
        if gate == question.gate and (question.fd is None or args[0] == question.fd):
            return tuple(args[:6])
    raise Stop(failed(f"{question.key}: find the call",
                      f"cat made no {question.gate} call in `cat {question.run}`; "
                      "this is a bug in the lab, please report it"))


def explain_text_for(question: Question, e: Explanation, answer: object) -> list[str]:
    """Why the answer is wrong, from the explanation of the real decision."""
    lines = []
    chosen = next((r for r in e.rules if answer == r.number), None)
    if isinstance(answer, int) and chosen is None:
        lines.append(f"rule {answer} does not name {question.gate}")
    elif chosen is not None and not chosen.matched:
        failing = [check_text(c) for c in chosen.checks if not c.holds]
        lines.append(f"rule {answer} names {question.gate} but does not match: "
                     + "; ".join(f"{written}: {evaluated}" for written, evaluated in failing))
    elif chosen is not None:
        lines.append(f"rule {answer} matches ({format_action(chosen.action)}), but it does "
                     "not decide")
    lines.append(f"what decides: {e.reason}")
    return lines


def check(path: Path, work: Path) -> Iterator[Check]:
    try:
        answers = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise Stop(failed(f"{path.name} is TOML", str(exc))) from None
    missing = [q.key for q in QUESTIONS if q.key not in answers]
    if missing:
        raise Stop(failed(f"{path.name} answers every question",
                          f"no answer for {', '.join(missing)}; the starter lists them "
                          "(`callgate lab start 4`)"))
    yield passed(f"{path.name} answers every question")

    loaded = load_policy_result(lab_file(POLICY_FILE))
    section = loaded.policy.gates
    assert section is not None  # the lab's own policy has one
    program = compile_policy(loaded.policy, Layer.GATES, GATE_ARCH)
    data = work / "data"
    data.mkdir()
    (data / "notes.txt").write_text(NOTES)
    (data / "meeting-notes.txt").write_text(NOTES)
    runs: dict[str, GuestRun] = {}
    for question in QUESTIONS:
        if question.run and question.run not in runs:
            # cat under the lab's policy, every call it made recorded with its arguments.
            runs[question.run] = run_command("cat", loaded.policy, [question.run],
                                             dirs=[(data, "/data")], watch=True)

    for question in QUESTIONS:
        args = recorded_call(runs[question.run], question) if question.run else question.args
        call = SeccompData.make(GATE_ARCH.number(question.gate), GATE_ARCH.audit_arch, args)
        e = explain_call(section, GATE_ARCH, call, program, loaded.rule_paths[Layer.GATES])
        right: set[object] = set(e.winners) if e.stage is Stage.RULES else {"default"}
        answer = answers[question.key]
        shown = ", ".join(map(number, args))
        name = f"{question.key}, {question.text}"
        if answer in right and not isinstance(answer, bool):
            yield passed(name, f"{question.gate}({shown}): {answer_text(answer)} decides, "
                               f"{format_action(e.explained)}")
        else:
            command = " ".join(["callgate explain", POLICY_FILE, question.gate,
                                *map(number, args)])
            yield failed(name, f"{question.gate}({shown}): you answered "
                               f"{answer_text(answer)}",
                         *explain_text_for(question, e, answer), f"see it: {command}")


LAB = Lab(
    number=4,
    slug="find-rule",
    title="Find the rule that decided a call",
    goal=f"""\
{POLICY_FILE} (below; `callgate lab start 4` writes it) is a policy for cat with rules
that overlap. For each call listed in the starter, say which rule decided it: the number
`callgate explain` gives the rule (rule 1 is the first [[gates.rules]]), or "default"
when no rule matches. The checker runs cat for real to get the calls' exact arguments,
and explains every answer that is wrong.""",
    hints=(
        "When several rules match a call, the most restrictive action wins: kill_process < "
        "kill_thread < trap < errno < user_notif < trace < log < allow. Rule order never "
        "matters.",
        "The checks of one rule are ANDed; a rule whose checks do not all hold does not "
        "match, whatever its action.",
        "path_open's arguments: args[0] the directory fd, args[1] lookup flags, args[2] "
        "and args[3] the path's address and length, args[4] the open flags "
        "(O_CREAT 1, O_DIRECTORY 2, O_EXCL 4, O_TRUNC 8), args[5] the rights asked for.",
        "`callgate explain lab04_policy.toml path_open 3 1 0 9 0 0` works it out; try to "
        "answer before you run it.",
    ),
    handin="lab04.toml",
    starter="lab04_starter.toml",
    solution="lab04_solution.toml",
    given=(POLICY_FILE,),
    checker=check,
    try_it=("callgate explain lab04_policy.toml fd_write 2 0 0 0",),
)
