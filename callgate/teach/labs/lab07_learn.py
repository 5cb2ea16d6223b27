"""Lab 7: learn a policy from a run, then tighten it to what production needs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from callgate.teach.labs.base import Check, Lab, failed, passed
from callgate.teach.labs.lab01_allowlist import allows, first_refusal_advice, gates_section_denies
from callgate.teach.labs.runner import (
    gate_verdict,
    guest_errno,
    load_handin,
    run_command,
    verdict_text,
)

FIRST_LINE = "the first line\n"
GREETING = "hello from learnme (the clock says after 1970)\n"
READ_RIGHTS = 0xFB7FEBE  # the rights wasi-libc asks for when it opens a file to read
FD_WRITE_RIGHT = 1 << 6
O_CREAT, O_TRUNC = 1, 8


def check(path: Path, work: Path) -> Iterator[Check]:
    loaded = load_handin(path)
    policy = loaded.policy
    yield passed(f"{path.name} loads as a policy")
    yield from gates_section_denies(loaded, path.name)
    d = work / "d"
    d.mkdir()
    (d / "notes.txt").write_text(FIRST_LINE)
    dirs = [(d, "/d")]

    run = run_command("learnme", policy, ["--file", "/d/notes.txt"], dirs=dirs)
    want = GREETING + f"first line of /d/notes.txt: {FIRST_LINE}"
    if run.stdout == want and run.exit_code == 0:
        yield passed("`learnme --file /d/notes.txt` works: production still runs")
    else:
        yield failed("`learnme --file /d/notes.txt` works: production still runs",
                     *run.summary(), first_refusal_advice(run),
                     "tightening must keep what production does")

    run = run_command("learnme", policy, ["--random"], dirs=dirs)
    name = "`learnme --random` is killed at random_get: an alarm, not an error"
    random = run.verdicts("random_get")
    if run.killed and "random_get" in run.killed:
        yield passed(name)
    elif "allow" in random or "log" in random:
        yield failed(name, *run.summary(),
                     "random_get is still allowed: the learning run used --random, a debug "
                     "option, and learning allowed what it saw. Production never draws "
                     "random bytes, so a call to random_get means the guest is not doing "
                     "its job: make it kill_process")
    elif "errno" in random:
        denial = next(r for r in run.records if r.gate == "random_get")
        yield failed(name, *run.summary(),
                     f"random_get answered {denial.action}, which the guest read as "
                     f"{guest_errno(denial.action)} and reported: a polite refusal the "
                     "guest can work around. The lab asks for kill_process, so that this "
                     "call stops the plugin and leaves an alarm in the audit")
    else:
        yield failed(name, *run.summary(), "add a rule: names = [\"random_get\"], "
                     'action = "kill_process"')

    run = run_command("learnme", policy, ["--stderr"], dirs=dirs)
    name = "`learnme --stderr` is refused with an errno"
    if run.killed:
        yield failed(name, *run.summary(),
                     "writing to stderr is refused by killing the plugin: an error message "
                     "is what an honest run does when something goes wrong, so keep kill "
                     "for what only an attacker calls, and leave fd 2 to the default")
    elif run.exit_code == 1 and run.stdout.startswith(GREETING + "stderr: "):
        yield passed(name, f"the guest said: {run.stdout.splitlines()[-1]}")
    else:
        yield failed(name, *run.summary(),
                     "the learning run never wrote to fd 2, so fd_write(2, …) should get "
                     "the default's errno")

    name = "path_open cannot create, truncate or write"
    wrong = []
    for oflags, rights, what in ((O_CREAT | O_TRUNC, READ_RIGHTS, "oflags O_CREAT|O_TRUNC"),
                                 (0, READ_RIGHTS | FD_WRITE_RIGHT, "rights with FD_WRITE")):
        ret = gate_verdict(policy, "path_open", 3, 1, 0, 9, oflags, rights)
        if allows(ret):
            wrong.append(f"path_open(3, 1, …, {oflags}, {rights:#x}) with {what}: "
                         f"{verdict_text(ret)}")
    if wrong:
        yield failed(name, *wrong, "learning pinned path_open's oflags (args[4]) and rights "
                     "(args[5]) to what the run asked for: a read-only open. Keep those "
                     "checks: they are what makes the rule read-only")
    else:
        yield passed(name)


LAB = Lab(
    number=7,
    slug="learn",
    title="Learn a policy, then tighten it",
    goal="""\
`callgate learn` writes a policy as wide as the run it watched. Learn one for
learnme.wasm from a run that uses a debug option too, then tighten it by hand for
production, where learnme is only ever run as `learnme --file /d/notes.txt`:
  - production must still work;
  - random_get (the debug option --random) must kill the plugin: a call to it is an
    alarm;
  - writing to stderr must still be refused with an errno, not allowed, not killed;
  - path_open must stay read-only.""",
    hints=(
        "Learn first: mkdir -p d; echo 'the first line' > d/notes.txt; callgate learn "
        "{learnme} --dir d::/d -o lab07.toml -- --random --file /d/notes.txt",
        "Read the result: every rule says why it is there and what it pinned. Which rule "
        "exists only because of --random?",
        "The most restrictive matching action wins, so a kill rule beats an allow rule "
        "for the same call; removing the allow rule is clearer still.",
        "docs/learn.md explains what learning can and cannot know.",
    ),
    handin="lab07.toml",
    solution="lab07_solution.toml",
    checker=check,
    try_it=("callgate run {learnme} --policy lab07.toml --dir d::/d -- --random",
            "callgate explain lab07.toml random_get 0 16"),
)
