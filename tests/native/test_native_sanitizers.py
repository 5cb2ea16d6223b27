"""The differential suite under AddressSanitizer and UndefinedBehaviorSanitizer.

A variant of the native core is built with ``-fsanitize=address,undefined`` (every error
fatal) and loaded instead of the installed one (``CALLGATE_NATIVE_CORE``) in a child
Python with ``libasan`` preloaded, as ASan must come first. The child runs the same
differential scenarios (``native_diff.py``): every guest pointer C touches lies in an
ASan-tracked heap block (the guest memory is a ``bytearray``), so an out-of-bounds read
or write by a C body, a bad read of a mirror or the audit buffer, or undefined behaviour
ends the child with the sanitizer's report. A planted one-byte overflow shows the report
does fire.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import native_diff
import pytest
from conftest import require
from native_helpers import require_native

from callgate.native import _build

HERE = Path(__file__).resolve().parent
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer", "-g", "-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=0"]
OPTIONS = {
    # CPython and wasmtime keep memory until exit by design: leaks are not what is tested.
    "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87",
}
CASES = int(os.environ.get("CALLGATE_ASAN_CASES", "20000"))


def _libasan() -> str | None:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return None
    found = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True,
                           text=True, check=False).stdout.strip()
    return found if os.path.isabs(found) and os.path.exists(found) else None


def _build_sanitized(tmp: Path, csrc: str = _build.CSRC) -> str:
    return _build.build_variant(str(tmp / "build"), csrc=csrc, extra_compile=SANITIZE,
                                extra_link=["-fsanitize=address,undefined"])


def _run_child(module: str, libasan: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **OPTIONS, "LD_PRELOAD": libasan, "CALLGATE_NATIVE_CORE": module,
           "PYTHONMALLOC": "malloc"}  # every Python allocation visible to ASan
    env.pop("CALLGATE_PURE_PYTHON", None)
    return subprocess.run([sys.executable, str(HERE / "native_diff.py"), *args],
                          cwd=HERE, env=env, capture_output=True, text=True, timeout=1800,
                          check=False)


@pytest.fixture(scope="module")
def libasan() -> str:
    require_native()
    found = _libasan()
    require(found is not None, "a C compiler with AddressSanitizer (libasan)")
    assert found is not None
    return found


def test_the_differential_suite_is_clean_under_asan_and_ubsan(libasan: str,
                                                              tmp_path: Path) -> None:
    module = _build_sanitized(tmp_path)
    done = _run_child(module, libasan, "17", str(CASES))
    report = done.stdout[-3000:] + done.stderr[-6000:]
    assert done.returncode == 0, report
    assert "no divergence" in done.stdout, report


def test_the_sanitizer_does_catch_an_overflow(libasan: str, tmp_path: Path) -> None:
    """A core whose bounds check lets a few bytes past the guest memory through: the
    sanitized child ends with AddressSanitizer's report on the first such write (and the
    correct core answers the same call EFAULT)."""
    address = str(native_diff.MEM - 4)  # an 8-byte result written half past the end
    correct = _run_child(_build_sanitized(tmp_path / "ok"), libasan, "probe", address)
    assert correct.returncode == 0, correct.stderr[-3000:]
    assert "probe: ('ok', (21,))" in correct.stdout  # EFAULT
    csrc = tmp_path / "csrc"
    shutil.copytree(_build.CSRC, csrc)
    gate = csrc / "gate.c"
    text = gate.read_text()
    check = "return len <= m->size && ptr <= m->size - len;"
    assert check in text
    gate.write_text(text.replace(check, "return len <= m->size && ptr <= m->size - len + 8;"))
    done = _run_child(_build_sanitized(tmp_path / "bad", str(csrc)), libasan, "probe", address)
    assert done.returncode == 86, done.stdout + done.stderr[-3000:]
    assert "ERROR: AddressSanitizer" in done.stderr  # (unaligned: "unknown-crash")
