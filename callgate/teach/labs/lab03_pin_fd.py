"""Lab 3: pin an fd with an argument rule - cat may read its files, not its stdin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from callgate.teach.labs.base import Check, Lab, failed, passed
from callgate.teach.labs.lab01_allowlist import allows, first_refusal_advice
from callgate.teach.labs.runner import gate_verdict, load_handin, run_command, verdict_text

NOTES = "meeting at noon\n"
STDIN = b"the password is swordfish\n"
FILE_FD = 4  # the first fd cat opens: right after its preopened directory, fd 3


def check(path: Path, work: Path) -> Iterator[Check]:
    loaded = load_handin(path)
    policy = loaded.policy
    yield passed(f"{path.name} loads as a policy")
    data = work / "data"
    data.mkdir()
    (data / "notes.txt").write_text(NOTES)
    dirs = [(data, "/data")]

    run = run_command("cat", policy, ["/data/notes.txt"], dirs=dirs, stdin=STDIN)
    if run.stdout == NOTES and run.exit_code == 0:
        yield passed("`cat /data/notes.txt` prints the file")
    else:
        advice = first_refusal_advice(run)
        if any(r.gate == "fd_read" for r in run.records if r.action not in ("LOG", "ALLOW")):
            advice = (f"cat read the file through fd {FILE_FD} and the policy refused it: "
                      "the rule must let fd_read reach the files cat opens")
        yield failed("`cat /data/notes.txt` prints the file", *run.summary(), advice)

    for args in ([], ["-"]):
        run = run_command("cat", policy, args, dirs=dirs, stdin=STDIN)
        name = f"`{run.command}` cannot read stdin"
        if STDIN.decode().strip() in run.stdout:
            yield failed(name, *run.summary(),
                         "cat read fd 0 and printed what it found there: fd_read(0, …) was "
                         f"answered {verdict_text(gate_verdict(policy, 'fd_read', 0))}. Add "
                         "a check on args[0], the fd, so that fd_read reaches the files cat "
                         "opens and not fd 0")
        elif run.killed:
            yield failed(name, *run.summary(),
                         "reading stdin is refused, but by killing cat: an honest cat run "
                         "may read stdin, so answer it with an errno (EBADF says 'not an fd "
                         "you may use') and keep kill for what only an attacker calls")
        elif run.exit_code == 1 and run.stderr.startswith("cat: "):
            yield passed(name, f"cat said: {run.stderr.strip()}")
        else:
            yield failed(name, "expected cat to report the refusal on stderr and exit 1",
                         *run.summary(), first_refusal_advice(run))

    ret = gate_verdict(policy, "fd_read", 0)
    if allows(ret):
        yield failed("fd_read(0, …) is refused by the filter itself",
                     f"the [gates] filter answers {verdict_text(ret)} for fd 0")
    else:
        yield passed("fd_read(0, …) is refused by the filter itself", f"it answers "
                     f"{verdict_text(ret)}")


LAB = Lab(
    number=3,
    slug="pin-fd",
    title="Pin an fd with an argument rule",
    goal="""\
cat reads the files named on its command line, or its stdin (fd 0) when there are none
or one is '-'. Here stdin holds something cat must not see. Write a policy under which
`cat /data/notes.txt` still prints the file, while `cat` and `cat -` cannot read fd 0:
cat must say so on stderr and exit 1, not be killed. The same gate, fd_read, does both:
only its first argument, the fd, tells them apart.""",
    hints=(
        "An argument check: args = [{ index = 0, op = \"...\", value = ..., width = 32 }]. "
        "index 0 is the first argument; width 32 because WASI fds are 32-bit.",
        "Which fd does cat read a file through? Log a run with --audit and look at "
        "fd_read's first argument: the preopened directory is fd 3, so the file is the next "
        "free number.",
        "A denied call with no matching rule gets the default. To answer fd 0 with a "
        "specific errno, add a rule for it: the most restrictive matching action wins, so "
        "rule order does not matter.",
        "The tutorial's 'An allowlist' pins fd_write the same way.",
    ),
    handin="lab03.toml",
    starter="lab03_starter.toml",
    solution="lab03_solution.toml",
    checker=check,
    try_it=("echo secret | callgate run {cat} --policy lab03.toml --dir data::/data",
            "callgate explain lab03.toml fd_read 0"),
)
