"""Lab 6: a broker that lets cat open files beneath one directory, and nowhere else."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callgate.teach.labs.base import Check, Lab, Stop, failed, passed
from callgate.teach.labs.runner import lab_file, run_command

POLICY_FILE = "lab06_policy.toml"
PUBLIC = {"public/a.txt": "a public note\n", "public/sub/b.txt": "another public note\n"}
PRIVATE = {"private/secret.txt": "the password is swordfish\n",
           "publicity.txt": "the launch is on Monday\n"}


@dataclass(frozen=True)
class Case:
    guest_path: str
    allowed: bool
    why: str  # what to change when the broker gets this one wrong


CASES = (
    Case("/data/public/a.txt", True, ""),
    Case("/data/public/sub/b.txt", True,
         "files in directories beneath public/ are beneath public/ too"),
    Case("/data/private/secret.txt", False, "it is not beneath public/"),
    Case("/data/publicity.txt", False,
         "'publicity.txt' starts with 'public' too: a prefix of a path must end at a '/' "
         "(or be the whole path)"),
    Case("/data/public/../private/secret.txt", False,
         "the path starts with 'public/' and then leaves it with '..'. The gate resolves "
         "'..' beneath the preopen, so the broker must too: normalise the path first "
         "(posixpath.normpath) or refuse any '..' component"),
)


def load_broker(path: Path) -> Callable[[Any], Any]:
    """The ``broker`` function of the handed-in module, or :class:`Stop` saying why not."""
    name = f"callgate_lab06_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise Stop(failed(f"{path.name} imports", "not a Python file"))
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise Stop(failed(f"{path.name} imports", f"{type(exc).__name__}: {exc}")) from None
    finally:
        sys.modules.pop(name, None)
    broker = getattr(module, "broker", None)
    if not callable(broker):
        raise Stop(failed(f"{path.name} defines broker(request)",
                          "the checker calls a function named `broker` with a GateRequest"))
    return broker  # type: ignore[no-any-return]  # the student's function


def check(path: Path, work: Path) -> Iterator[Check]:
    student = load_broker(path)
    yield passed(f"{path.name} defines broker(request)")
    data = work / "data"
    for name, text in {**PUBLIC, **PRIVATE}.items():
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text(text)
    policy = work / POLICY_FILE
    policy.write_text(lab_file(POLICY_FILE))

    for case in CASES:
        answers: list[str] = []

        def broker(request: Any, answers: list[str] = answers) -> Any:
            fd, _flags, ptr, length = request.args[:4]
            seen = request.memory.read(ptr, length).decode(errors="replace")
            asked = f"path_open(fd {fd}, {seen!r})"
            try:
                verdict = student(request)
            except Exception as exc:
                answers.append(f"{asked} raised {type(exc).__name__}: {exc}")
                raise
            answers.append(f"{asked} -> {verdict!r}")
            return verdict

        run = run_command("cat", policy, [case.guest_path], dirs=[(data, "/data")],
                          broker=broker)
        secret = next((t for n, t in PRIVATE.items() if case.guest_path.endswith(n)), None)
        said = [f"your broker said: {a}" for a in answers] or ["your broker was not asked"]
        name = f"`cat {case.guest_path}` is {'allowed' if case.allowed else 'refused'}"
        if case.allowed:
            expected = PUBLIC[case.guest_path.removeprefix("/data/")]
            if run.stdout == expected and run.exit_code == 0:
                yield passed(name)
            else:
                yield failed(name, *said, *run.summary(), case.why or "allow it")
        elif secret is not None and secret.strip() in run.stdout:
            yield failed(name, *said, f"and cat printed it: {run.stdout.strip()!r}", case.why)
        elif run.exit_code == 1 and run.stderr.startswith("cat: "):
            yield passed(name, f"cat said: {run.stderr.strip()}")
        else:
            yield failed(name, "expected cat to say why on stderr and exit 1", *said,
                         *run.summary(), "answer a refusal with Errno(n), e.g. Errno(2): "
                         "WASI's EACCES")


LAB = Lab(
    number=6,
    slug="broker",
    title="A broker that allows a path prefix",
    goal="""\
A filter cannot see the path behind path_open's pointer; a broker can. lab06_policy.toml
(below) sends every path_open of cat.wasm to the broker (`trap`). Write lab06.py with a
function broker(request) that lets cat open files beneath public/ of its preopened
directory, /data, and refuses everything else with an errno. The checker runs cat on
five paths, some of them made to fool a careless prefix test.""",
    hints=(
        "path_open's args: (dirfd, lookup flags, path address, path length, oflags, "
        "rights). request.memory.read(address, length) reads the path, bounds-checked.",
        "The path is relative to the directory fd: cat's /data/public/a.txt arrives as "
        "'public/a.txt' on fd 3. The C library strips the preopen's name; it does not "
        "clean up the rest.",
        "Strings are not paths: 'publicity.txt'.startswith('public') is True, and so is "
        "'public/../private'.startswith('public/').",
        "Answer ALLOW, or Errno(n) in WASI's numbering (EACCES is 2). The tutorial's "
        "'TRAP: asking a broker' shows a broker for one file name.",
    ),
    handin="lab06.py",
    starter="lab06_starter.py",
    solution="lab06_solution.py",
    given=(POLICY_FILE,),
    checker=check,
    try_it=("PYTHONPATH=. callgate run {cat} --policy lab06_policy.toml --dir data::/data "
            "--broker lab06:broker -- /data/public/a.txt",),
)
