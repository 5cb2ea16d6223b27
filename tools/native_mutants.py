#!/usr/bin/env python3
"""Does the differential suite notice a wrong native core? Plant bugs in ``gate.c``, one at a
time, build each mutant aside (the installed core is left alone) and run
``tests/native/native_diff.py`` on it: every mutant must be caught (a divergence).

Run during development (``python tools/native_mutants.py [CASES] [INDEX ...]``), after
changing ``csrc/gate.c`` or the harness; it takes about a minute a mutant. Exit status 1
if a mutant was missed. A mutant whose text no longer occurs in ``gate.c`` is reported,
so the list follows the code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callgate.native import _build  # noqa: E402

# (what it breaks, the text in gate.c, its replacement)
MUTANTS = (
    ("bounds off by one", "return len <= m->size && ptr <= m->size - len;",
     "return len <= m->size && ptr < m->size - len;"),
    ("ESPIPE for a stream lacking seek rights", "        return W_ESPIPE;\n    return W_EBADF;\n}",
     "        return W_EBADF;\n    return W_EBADF;\n}"),
    ("stream writes not charged", "            if (charge(p, done + pend - charged) != 0) {",
     "            if (0) {"),
    ("IOV_MAX", "    if (count > IOV_MAX_)\n", "    if (count > IOV_MAX_ + 1)\n"),
    ("the app gates' deny convention", "        slots[0] = 0 - (uint64_t)n;",
     "        slots[0] = (uint64_t)n;"),
    ("environ/args size", "    put_u32(&m, a[1], (uint32_t)s->blob_len);",
     "    put_u32(&m, a[1], (uint32_t)s->blob_len + 1);"),
    ("ENAMETOOLONG", "    if (a[2] < e->name_len)\n", "    if (a[2] + 1 < e->name_len)\n"),
    ("deadline between file chunks", "        if (done != 0 && past_deadline(p)) {",
     "        if (0) {"),
    ("FD_TELL for seek(0, CUR)",
     "    uint64_t right = delta == 0 && a[2] == WHENCE_CUR ? R_FD_TELL : R_FD_SEEK;",
     "    uint64_t right = R_FD_SEEK;"),
    ("a short read ends a file read", "        if ((uint64_t)got < n)\n            break;",
     "        if ((uint64_t)got == 0)\n            break;"),
)


def main(argv: list[str]) -> int:
    cases = argv[1] if len(argv) > 1 else "30000"
    chosen = {int(x) for x in argv[2:]} or set(range(len(MUTANTS)))
    source = (ROOT / "callgate" / "native" / "csrc" / "gate.c").read_text()
    missed = 0
    for index, (what, old, new) in enumerate(MUTANTS):
        if index not in chosen:
            continue
        if old not in source:
            print(f"{index} {what}: its text is no longer in gate.c (update MUTANTS)")
            missed += 1
            continue
        with tempfile.TemporaryDirectory(prefix="callgate-mutant-") as tmp:
            csrc = Path(tmp) / "csrc"
            shutil.copytree(_build.CSRC, csrc)
            (csrc / "gate.c").write_text(source.replace(old, new, 1))
            module = _build.build_variant(str(Path(tmp) / "build"), csrc=str(csrc))
            env = {**os.environ, "CALLGATE_NATIVE_CORE": module}
            env.pop("CALLGATE_PURE_PYTHON", None)
            done = subprocess.run([sys.executable, "native_diff.py", "3", cases],
                                  cwd=ROOT / "tests" / "native", env=env, capture_output=True,
                                  text=True, timeout=3600, check=False)
        caught = done.returncode != 0 and "Divergence" in done.stderr
        missed += not caught
        print(f"{index} {what}: {'caught' if caught else 'MISSED'}", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
