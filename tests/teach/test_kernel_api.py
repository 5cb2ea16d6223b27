"""docs/kernel-api.md and docs/glossary.md keep their promises.

kernel-api.md's console sessions run in tests/teach/test_tutorial.py, like every page's.
Here: each program the page shows (```python file=PATH) is the file it runs, whole; every
example program is shown and run; the page covers what issue 17 asked of it; and the
glossary defines the terms the tutorial links to, with every link landing on a heading.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from console_doc import fences, parse

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGE = DOCS / "kernel-api.md"
EXAMPLES = DOCS / "examples" / "kernel"
_FILE = re.compile(r"\bfile=(\S+)")
_LINK = re.compile(r"\]\(([^)\s#]*\.md)#([^)\s]+)\)")

# What the page must teach (issue 17, item 1), each as a heading.
REQUIRED_HEADINGS = (
    "## Two numberings",
    "## struct sock_fprog, through seccomp(2) and prctl(2)",
    "## Why NO_NEW_PRIVS",
    "## Stacking: the most restrictive answer wins",
    "## Inheritance across fork and execve",
    "## Threads: TSYNC",
    "## Strict mode",
    "## SECCOMP_GET_ACTION_AVAIL: which actions does this kernel know?",
    "## USER_NOTIF: a supervisor answers",
)

# The glossary's terms (issue 17, item 2), as the anchors the docs link to.
GLOSSARY_TERMS = ("abi", "linear-memory", "dag", "iovec", "oci", "user_notif", "preopen",
                  "capability-linux", "capability-preopen", "seccomp_data", "cbpf", "verdict",
                  "action", "gate", "broker", "wx", "landlock", "no_new_privs", "tsync")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    lines = page.read_text().splitlines()
    in_fence = False
    found = set()
    for line in lines:
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def shown_files() -> dict[str, tuple[str, ...]]:
    return {m[1]: fence.body for fence in fences(PAGE.read_text())
            if fence.lang == "python" and (m := _FILE.search(fence.info))}


def test_every_shown_program_is_the_file_the_page_runs() -> None:
    shown = shown_files()
    assert shown, "kernel-api.md shows no program"
    stale = [path for path, body in shown.items()
             if "\n".join(body) + "\n" != (ROOT / path).read_text()]
    assert stale == [], "the page shows an old version of these; paste them again"


def test_every_example_is_shown_and_run() -> None:
    commands = " ".join(step.text for step in parse(PAGE.read_text()) if step.kind == "command")
    examples = sorted(str(p.relative_to(ROOT)) for p in EXAMPLES.glob("*.py"))
    assert examples
    assert [e for e in examples if e not in shown_files()] == []
    assert [e for e in examples if f"python {e}" not in commands] == []


def test_the_page_teaches_what_was_asked() -> None:
    headings = {line.strip() for line in PAGE.read_text().splitlines() if line.startswith("## ")}
    assert [h for h in REQUIRED_HEADINGS if h not in headings] == []


def test_every_example_installs_filters_only_in_children() -> None:
    """A filter is permanent: the process the reader starts must stay unfiltered."""
    for path in EXAMPLES.glob("*.py"):
        text = path.read_text()
        installs = re.search(r"install_filter\(|SET_MODE_|PR_SET_SECCOMP", text)
        if installs:
            assert "run_in_child" in text or "os.fork()" in text, path.name


@pytest.mark.parametrize("page", ["tutorial.md", "kernel-api.md", "glossary.md", "labs.md"])
def test_links_to_headings_land(page: str) -> None:
    missing = []
    for target, anchor in _LINK.findall((DOCS / page).read_text()):
        if "://" in target:
            continue
        if anchor not in anchors(DOCS / target):
            missing.append(f"{target}#{anchor}")
    assert missing == []


def test_glossary_defines_every_term() -> None:
    assert [t for t in GLOSSARY_TERMS if t not in anchors(DOCS / "glossary.md")] == []


# How each glossary term is spelled in prose, to find its first use in the tutorial.
TERM_SPELLINGS = {
    "abi": r"\bABI\b", "linear-memory": r"linear memory", "dag": r"\bDAG\b",
    "iovec": r"\biovec", "oci": r"\bOCI\b", "user_notif": r"user_notif|USER_NOTIF",
    "preopen": r"\bpreopen", "capability-linux": r"\bcapabilit", "seccomp_data": r"seccomp_data",
    "cbpf": r"classic BPF|\bcBPF", "verdict": r"\bverdict", "action": r"\baction\b",
    "gate": r"\bgate\b", "broker": r"\bbroker\b", "wx": r"W\^X|write xor",
    "landlock": r"Landlock", "no_new_privs": r"NO_NEW_PRIVS", "tsync": r"\bTSYNC\b",
}


def prose_lines(markdown: str) -> list[str]:
    """The page's lines with code blocks and headings blanked: where terms are used."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        lines.append("" if fenced or line.startswith(("```", "#")) else line)
    return lines


@pytest.mark.parametrize("term", GLOSSARY_TERMS)
def test_the_tutorial_links_each_term_from_its_first_use(term: str) -> None:
    """The first time the tutorial's prose uses a term, the glossary link is there (in the
    same few lines: a Markdown paragraph wraps anywhere)."""
    lines = prose_lines((DOCS / "tutorial.md").read_text())
    spelling = re.compile(TERM_SPELLINGS.get(term, re.escape(term)))
    first = next((i for i, line in enumerate(lines) if spelling.search(line)), None)
    linked = next((i for i, line in enumerate(lines) if f"glossary.md#{term})" in line), None)
    assert first is not None and linked is not None, term
    assert linked - first <= 2, f"{term}: first used on line {first + 1}, linked on {linked + 1}"


def test_the_tutorial_names_the_glossary_before_it_starts() -> None:
    tutorial = (DOCS / "tutorial.md").read_text()
    assert tutorial.index("glossary.md") < tutorial.index("## The syscall boundary")


def test_capabilities_are_told_apart() -> None:
    glossary = (DOCS / "glossary.md").read_text()
    linux = glossary.split("### Capability (Linux)", 1)[1].split("###", 1)[0]
    preopen = glossary.split("### Capability (preopen)", 1)[1].split("###", 1)[0]
    assert "CAP_SYS_ADMIN" in linux and "Not to be confused" in linux
    assert "preopen" in preopen.lower() and "Linux capabilities" in preopen


def test_slug_follows_github() -> None:
    assert slug("W^X") == "wx"
    assert slug("Capability (Linux)") == "capability-linux"
    assert slug("SECCOMP_GET_ACTION_AVAIL: which actions does this kernel know?") == \
        "seccomp_get_action_avail-which-actions-does-this-kernel-know"
    assert slug("TOCTOU: what reading arguments through `/proc/PID/mem` cannot promise") == \
        "toctou-what-reading-arguments-through-procpidmem-cannot-promise"
