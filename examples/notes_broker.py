"""A broker for trap-open.toml: only ``notes.txt`` may be opened (docs/runtime.md).

``callgate run --broker notes_broker:broker`` imports it; put this directory on
``PYTHONPATH`` (``PYTHONPATH=examples``), since the console script does not look in
the working directory.
"""

import sys

from callgate import ALLOW, Errno

EACCES = 2  # WASI's number for "Permission denied"


def broker(request):
    """Read the path path_open was given; allow notes.txt, refuse anything else."""
    fd, _lookup_flags, path_ptr, path_len = request.args[:4]
    path = request.memory.read(path_ptr, path_len).decode()
    verdict = ALLOW if path == "notes.txt" else Errno(EACCES)
    print(f"broker: {request.gate.name}(fd={fd}, path={path!r}) -> {verdict}", file=sys.stderr)
    return verdict
