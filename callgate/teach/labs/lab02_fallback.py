"""Lab 2: deny one call with ENOSYS, so the guest takes its fallback path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from callgate.teach.labs.base import Check, Lab, failed, passed
from callgate.teach.labs.lab01_allowlist import first_refusal_advice, gates_section_denies
from callgate.teach.labs.runner import guest_errno, load_handin, run_command

SIZE = 10000
FALLS_BACK_ON = ("ENOSYS", "ENOTSUP")  # fallback.c's test: "this system has no such thing"


def check(path: Path, work: Path) -> Iterator[Check]:
    loaded = load_handin(path)
    yield passed(f"{path.name} loads as a policy")
    yield from gates_section_denies(loaded, path.name)
    out = work / "out"
    out.mkdir()
    run = run_command("fallback", loaded.policy, ["/out/f", str(SIZE)], dirs=[(out, "/out")])
    name = f"`fallback /out/f {SIZE}` falls back to writing zeros"
    denials = [r for r in run.records if r.gate == "fd_allocate"]
    seen = guest_errno(denials[0].action) if denials else None
    if run.exit_code == 0 and run.stdout.startswith("fallocate unavailable"):
        yield passed(name, f"fd_allocate answered {denials[0].action}: the guest saw {seen} "
                           "and wrote the zeros itself")
    elif run.stdout.startswith("fallocate ok"):
        yield failed(name, *run.summary(),
                     "fd_allocate was allowed, so there was nothing to fall back from: deny "
                     'it, with names = ["fd_allocate"] and an errno action')
    elif seen is not None and seen not in FALLS_BACK_ON:
        yield failed(name, *run.summary(),
                     f"fd_allocate answered {denials[0].action}, which a WASI guest reads as "
                     f"{seen}: a real failure, not 'no such function here', so fallback gave "
                     "up. ENOSYS says 'this system has no such function', and careful "
                     "programs carry on without it: answer errno(ENOSYS)")
    elif run.killed and "fd_allocate" in run.killed:
        yield failed(name, *run.summary(),
                     "a kill leaves the guest no fallback at all: kill is for calls no "
                     "honest run makes. Answer errno(ENOSYS)")
    else:
        yield failed(name, "expected 'fallocate unavailable (...); wrote zeros' and "
                           "status 0", *run.summary(), first_refusal_advice(run))
    made = out / "f"
    size = made.stat().st_size if made.exists() else None
    if size == SIZE:
        yield passed(f"/out/f is {SIZE} bytes long")
    else:
        why = ("the guest must be able to create it (path_open), find its end (fd_seek) and "
               "write (fd_write to the file's own fd, not only to 1 and 2)"
               if run.exit_code == 0 else "the run above stopped before it was done")
        yield failed(f"/out/f is {SIZE} bytes long",
                     "it was never created" if size is None else f"it is {size} bytes long",
                     why)


LAB = Lab(
    number=2,
    slug="fallback",
    title="Deny with ENOSYS, so the guest falls back",
    goal="""\
fallback.wasm makes a file N bytes long the careful way: posix_fallocate (the fd_allocate
gate), and if the system answers that it has no such thing, it writes zeros instead.
Write an allowlist (its [gates] default denies) under which
`fallback /out/f 10000` denies fd_allocate, takes the fallback path, prints
'fallocate unavailable (...); wrote zeros' and leaves /out/f 10000 bytes long.""",
    hints=(
        "Which errno a denial carries is a message: ENOSYS reads 'no such function here', "
        "EPERM 'you may not'. fallback.c falls back on ENOSYS and ENOTSUP only.",
        "See what fallback calls when fd_allocate fails: allow everything and deny just "
        "fd_allocate, with --audit, then narrow (callgate learn can also write a first "
        "draft: it records a run).",
        "Writing zeros needs more than fd_allocate did: the end of the file (fd_seek) and "
        "fd_write to the file's own fd.",
        "The tutorial's section 'EPERM or ENOSYS' runs this guest.",
    ),
    handin="lab02.toml",
    starter="lab02_starter.toml",
    solution="lab02_solution.toml",
    checker=check,
    try_it=("mkdir -p out",
            "callgate run {fallback} --policy lab02.toml --dir out::/out -- /out/f 10000"),
)
