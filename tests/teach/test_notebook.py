"""docs/notebooks/explore.ipynb runs from top to bottom in a real Jupyter kernel (nbclient,
ipykernel: the test extra), and each object in it displays itself as it should."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import require

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "docs" / "notebooks" / "explore.ipynb"


def _data(cell: Any) -> dict[str, str]:
    """Every mime type the cell displayed, joined (and its printed text under 'stream')."""
    out: dict[str, str] = {}
    for output in cell.outputs:
        if output.output_type == "stream":
            out["stream"] = out.get("stream", "") + output.text
        for mime, value in output.get("data", {}).items():
            out[mime] = out.get(mime, "") + (value if isinstance(value, str) else str(value))
    return out


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    for module in ("nbclient", "nbformat", "ipykernel"):
        require(importlib.util.find_spec(module) is not None, f"{module} (the test extra)")
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        assert cell.cell_type != "code" or not cell.outputs, "commit the notebook without outputs"
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path_factory.mktemp("nb"))}}
                   ).execute()
    return {cell.metadata["tags"][0]: _data(cell) for cell in notebook.cells
            if cell.cell_type == "code"}


def test_every_code_cell_is_tagged_and_ran(executed: dict[str, dict[str, str]]) -> None:
    assert set(executed) == {"policy", "program", "trace-allow", "trace-deny", "explanation",
                             "by-hand", "by-hand-trace", "audit"}
    assert all(data for data in executed.values())


def test_policy_shows_its_rules(executed: dict[str, dict[str, str]]) -> None:
    html = executed["policy"]["text/html"]
    assert "<table" in html and "fd_write" in html and "stdout and stderr" in html
    assert "args[0] &gt;= 0x1 (low 32 bits)" in html and "ERRNO(52)" in html


def test_programs_draw_themselves(executed: dict[str, dict[str, str]]) -> None:
    require(shutil.which("dot") is not None, "Graphviz's dot")
    for tag in ("program", "by-hand"):
        assert executed[tag]["image/svg+xml"].lstrip().startswith("<svg")
        assert "<svg" in executed[tag]["text/html"] and "<pre>" in executed[tag]["text/html"]
    assert "mem[0] = A" in executed["by-hand"]["text/html"]


def test_traces_and_the_explanation(executed: dict[str, dict[str, str]]) -> None:
    assert "<strong>ALLOW</strong>" in executed["trace-allow"]["text/html"]
    assert "<strong>ERRNO(52)</strong>" in executed["trace-deny"]["text/html"]
    assert "M[0]=0x1" in executed["by-hand-trace"]["text/html"]
    assert "ERRNO(1)" in executed["by-hand-trace"]["text/html"]
    explanation = executed["explanation"]["text/html"]
    assert "0x7 &lt;= 0x2  false" in explanation and "ERRNO(52)" in explanation


def test_audit_summary_of_a_real_plugin(executed: dict[str, dict[str, str]]) -> None:
    data = executed["audit"]
    assert "sleep answered errno 52" in data["stream"]
    assert "poll_oneoff" in data["image/svg+xml"] and "clock_time_get" in data["text/html"]
    assert "<rect" in data["image/svg+xml"]
