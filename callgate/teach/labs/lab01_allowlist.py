"""Lab 1: an allowlist for cat - what it needs to work, and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from callgate.arch import GATE_ARCH
from callgate.bpf.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_LOG, action_of, format_action
from callgate.policy.loaded import LoadResult
from callgate.teach.labs.base import Check, Lab, Stop, failed, passed
from callgate.teach.labs.runner import GuestRun, gate_verdict, load_handin, run_command

NOTES = "meeting at noon\n"
#: Every gate cat calls, for a file it prints and for one it cannot open.
CAT_NEEDS = frozenset({"args_get", "args_sizes_get", "fd_prestat_get", "fd_prestat_dir_name",
                       "fd_fdstat_get", "path_open", "fd_read", "fd_write", "fd_close",
                       "proc_exit"})
#: Argument vectors tried on every other gate: fd 0..4 first, then a path_open-like shape.
PROBES = ((0,), (1,), (2,), (3,), (4,), (3, 1, 0, 9, 0, 0))


def allows(ret: int) -> bool:
    return action_of(ret) in (SECCOMP_RET_ALLOW, SECCOMP_RET_LOG)


def gates_section_denies(loaded: LoadResult, name: str) -> Iterator[Check]:
    """The [gates] section exists and its default denies (shared by the allowlist labs)."""
    section = loaded.policy.gates
    if section is None:
        raise Stop(failed(f"{name} has a [gates] section",
                          "the lab's guest is judged by the [gates] section; this file has "
                          "none (a [kernel] section judges the host's syscalls)"))
    if allows(section.default):
        yield failed("the [gates] default denies",
                     f"your default is {format_action(section.default)}: every gate your "
                     "rules forget is allowed. An allowlist denies by default - "
                     'default = "errno(ENOSYS)" - and names what the guest needs')
    else:
        yield passed(f"the [gates] default denies ({format_action(section.default)})")


def first_refusal_advice(run: GuestRun) -> str:
    """What to allow next, from the first call the policy refused."""
    refused = [r for r in run.records if r.action not in ("LOG", "ALLOW")]
    stderr = [r for r in refused if r.gate == "fd_write" and r.args[:1] == (2,)]
    first = next((r for r in refused if r not in stderr), None)
    advice = []
    if first is not None:
        advice.append(f"the guest needs {first.gate} here: allow it (as narrowly as this "
                      "case allows)")
    if stderr and not run.stderr:
        advice.append("it also tried to say why on stderr (fd 2) and was refused: let "
                      "fd_write reach fd 2 to read its error messages")
    return "; ".join(advice) or "no call was refused; compare the output with what is expected"


def check(path: Path, work: Path) -> Iterator[Check]:
    loaded = load_handin(path)
    yield passed(f"{path.name} loads as a policy")
    yield from gates_section_denies(loaded, path.name)
    data = work / "data"
    data.mkdir()
    (data / "notes.txt").write_text(NOTES)
    dirs = [(data, "/data")]

    run = run_command("cat", loaded.policy, ["/data/notes.txt"], dirs=dirs)
    if run.stdout == NOTES and run.exit_code == 0:
        yield passed("`cat /data/notes.txt` prints the file")
    else:
        yield failed("`cat /data/notes.txt` prints the file",
                     f"expected {NOTES.strip()!r} on stdout and status 0", *run.summary(),
                     first_refusal_advice(run))

    run = run_command("cat", loaded.policy, ["/data/missing.txt"], dirs=dirs)
    want = "cat: /data/missing.txt: No such file or directory"
    if run.stderr.strip() == want and run.exit_code == 1:
        yield passed("`cat /data/missing.txt` reports the error on stderr")
    else:
        advice = first_refusal_advice(run)
        if not run.stderr and run.verdicts("fd_write").keys() - {"allow", "log"}:
            advice = ("cat tried to say why on stderr, fd 2, and the policy refused that "
                      "fd_write: let fd_write reach fd 2 as well as fd 1")
        yield failed("`cat /data/missing.txt` reports the error on stderr",
                     f"expected {want!r} on stderr and status 1", *run.summary(), advice)

    extra = sorted(gate for gate in GATE_ARCH.numbers
                   if gate not in CAT_NEEDS
                   and any(allows(gate_verdict(loaded.policy, gate, *args)) for args in PROBES))
    if extra:
        yield failed("nothing cat does not need is allowed",
                     f"allowed, but cat never calls them: {', '.join(extra)}",
                     "an allowlist names only what the guest needs; drop these from your "
                     "rules (the default then denies them)")
    else:
        yield passed("nothing cat does not need is allowed")


LAB = Lab(
    number=1,
    slug="allowlist",
    title="An allowlist for cat",
    goal="""\
cat.wasm prints the files named on its command line. Write an allowlist for it, a policy
whose [gates] default denies, under which:
  - `cat /data/notes.txt` prints the file (the checker preopens a directory as /data);
  - `cat /data/missing.txt` says why it failed on stderr and exits 1;
  - no gate cat never calls is allowed.""",
    hints=(
        "Run cat under a policy that logs everything to see what it calls: "
        "printf '[gates]\\ndefault = \"log\"\\n' > log.toml; mkdir -p data; "
        "echo hi > data/notes.txt; callgate run {cat} --policy log.toml "
        "--dir data::/data --audit calls.jsonl -- /data/notes.txt",
        "Before main() runs, the C library asks which directories were preopened "
        "(fd_prestat_get, fd_prestat_dir_name) and reads its arguments.",
        "A run that fails takes other paths than one that works: try a missing file too.",
        "`callgate check lab01.toml` catches typos; the tutorial's section "
        "'An allowlist' does the same for lines.wasm.",
    ),
    handin="lab01.toml",
    starter="lab01_starter.toml",
    solution="lab01_solution.toml",
    checker=check,
    try_it=("callgate check lab01.toml",
            "callgate run {cat} --policy lab01.toml --dir data::/data -- "
            "/data/notes.txt"),
)
