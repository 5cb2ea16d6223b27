"""A WASI module whose memory is missing or exported under another name is refused at load.

Before, its first WASI call crashed host code (``'NoneType' object has no attribute
'iovecs'``) with a traceback from the CLI, and under ``--kernel`` the process was
killed (159) partway through printing it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from rt_helpers import wat

from callgate import Plugin, PluginLoadError

WRITES_HI = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory {export} 1)
  (data (i32.const 16) "hi\\n")
  (data (i32.const 0) "\\10\\00\\00\\00\\03\\00\\00\\00")
  (func (export "_start") (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


@pytest.mark.parametrize("export, says", [("", "exports no memory"),
                                         ('(export "mem")', "exports its memory as 'mem'")])
def test_a_wasi_module_without_a_memory_export_is_refused_at_load(export: str, says: str) -> None:
    with pytest.raises(PluginLoadError, match=f"{says}.*export the linear memory as 'memory'"):
        Plugin(wat(WRITES_HI.format(export=export)))


def test_the_same_module_with_memory_exported_runs() -> None:
    with Plugin(wat(WRITES_HI.format(export='(export "memory")'))) as p:
        assert p.call_int("_start") is None


@pytest.mark.parametrize("kernel", [[], ["--kernel"]])
def test_the_cli_refuses_it_with_one_line_and_status_2(tmp_path, kernel: list[str]) -> None:
    module = tmp_path / "nomem.wasm"
    module.write_bytes(wat(WRITES_HI.format(export="")))
    done = subprocess.run([sys.executable, "-m", "callgate", "run", *kernel, str(module)],
                          capture_output=True, timeout=120)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "export the linear memory as 'memory'" in lines[0]
