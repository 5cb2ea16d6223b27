"""`callgate explain --html`: the page opened in headless Chromium, clicked through with
real mouse events over the DevTools protocol, every step's A, X, scratch memory and lit
path checked against the reference interpreter."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cdp_pipe import Browser, chromium_path
from conftest import require

from callgate.arch import get_arch
from callgate.asm.assembler import assemble
from callgate.bpf.seccomp_data import SeccompData
from callgate.teach.stepper import Step, trace_steps

MEM_PROGRAM = """\
A = sys_number
mem[0] = A
A = args[0]
X = A
mem[3] = X
A = mem[0]
if (A == 1) goto ok
return ERRNO(1)
ok:
A = mem[3]
if (A == 2) goto yes
return KILL
yes:
return ALLOW
"""

STATE = """(function () {
  function t(id) { return document.getElementById(id).textContent; }
  var mem = [];
  for (var k = 0; k < 16; k++) { mem.push(t("mem-" + k)); }
  function ids(sel) {
    return Array.prototype.map.call(document.querySelectorAll(sel), function (e) {
      return e.id; });
  }
  return {a: t("reg-a"), x: t("reg-x"), mem: mem, counter: t("counter"),
          line: t("line-text"), nodes: ids("#graph g.node.taken"),
          edges: ids("#graph g.edge.taken"), current: ids("#graph g.node.current"),
          rows: ids("#listing tr.current"), prev: document.getElementById("prev").disabled,
          next: document.getElementById("next").disabled, hash: location.hash};
})()"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    exe = chromium_path()
    require(exe is not None, "Chromium (Debian's chromium package)")
    require(shutil.which("dot") is not None, "Graphviz's dot")
    assert exe is not None
    with Browser(exe, tmp_path_factory.mktemp("chromium-profile")) as b:
        yield b


def explain_html(tmp_path: Path, *argv: str) -> Path:
    page = tmp_path / "page.html"
    run = subprocess.run([sys.executable, "-m", "callgate", "explain", *argv, "--html",
                          str(page)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    return page


def check_step(state: dict[str, Any], steps: list[Step], i: int) -> None:
    step = steps[i]
    assert int(str(state["a"]), 16) == step.a, (i, state)
    assert int(str(state["x"]), 16) == step.x, (i, state)
    assert [int(str(v), 16) for v in state["mem"]] == list(step.mem)
    assert state["counter"] == f"step {i + 1} of {len(steps)}"
    assert state["line"] == step.listing
    assert state["current"] == [f"n{step.pc}"] and state["rows"] == [f"row-{step.pc}"]
    assert set(state["nodes"]) == {f"n{s.pc}" for s in steps[:i + 1]}
    taken = {f"e{a.pc}-{b.pc}" for a, b in itertools.pairwise(steps[:i + 1])}
    assert set(state["edges"]) == taken
    assert state["prev"] is (i == 0) and state["next"] is (i == len(steps) - 1)
    assert state["hash"] == f"#step={i + 1}"


def click_through(browser: Browser, page_path: Path, steps: list[Step]) -> None:
    page = browser.open_page(page_path.as_uri())
    check_step(page.evaluate(STATE), steps, 0)
    for i in range(1, len(steps)):
        page.click("#next")
        check_step(page.evaluate(STATE), steps, i)
    page.click("#next")  # disabled at the end: nothing moves
    check_step(page.evaluate(STATE), steps, len(steps) - 1)
    back = [i for i in range(len(steps) - 2, len(steps) - 5, -1) if i >= 0]
    for i in back:
        page.click("#prev")
        check_step(page.evaluate(STATE), steps, i)
    page.key("ArrowRight")  # the keyboard too
    check_step(page.evaluate(STATE), steps, back[-1] + 1)


def test_scratch_memory_program_stepped_in_a_browser(browser: Browser, tmp_path: Path) -> None:
    (tmp_path / "mem.asm").write_text(MEM_PROGRAM)
    page = explain_html(tmp_path, "mem.asm", "--arch", "x86_64", "write", "2")
    arch = get_arch("x86_64")
    steps, ret = trace_steps(assemble(MEM_PROGRAM, arch), arch,
                             SeccompData.make(arch.number("write"), arch.audit_arch, (2,)))
    assert ret == 0x7FFF0000 and any(any(s.mem) for s in steps)  # memory really changes
    click_through(browser, page, steps)


def test_policy_explanation_stepped_in_a_browser(browser: Browser, tmp_path: Path) -> None:
    from importlib import resources

    from callgate.policy import load_policy_text
    from callgate.policy.compiler import compile_section

    page = explain_html(tmp_path, "default", "fd_write", "1", "0", "0", "0")
    html = page.read_text()
    assert "<script src" not in html and "http" not in html.split("<body>")[1].split(
        "<svg")[0]  # self-contained: nothing fetched
    policy = load_policy_text(
        (resources.files("callgate.policies") / "default.toml").read_text()).policy
    gates = get_arch("callgate")
    assert policy.gates is not None
    program = compile_section(policy.gates, gates)
    steps, _ = trace_steps(program, gates, SeccompData.make(
        gates.number("fd_write"), gates.audit_arch, (1, 0, 0, 0)))
    click_through(browser, page, steps)


def test_a_step_in_the_address_opens_there(browser: Browser, tmp_path: Path) -> None:
    (tmp_path / "mem.asm").write_text(MEM_PROGRAM)
    page_path = explain_html(tmp_path, "mem.asm", "--arch", "x86_64", "write", "2")
    arch = get_arch("x86_64")
    steps, _ = trace_steps(assemble(MEM_PROGRAM, arch), arch,
                           SeccompData.make(arch.number("write"), arch.audit_arch, (2,)))
    page = browser.open_page(page_path.as_uri() + "#step=6")
    check_step(page.evaluate(STATE), steps, 5)
