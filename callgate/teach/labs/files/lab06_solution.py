"""Lab 6, a reference solution: cat may open files beneath public/ only."""

import posixpath

from callgate import ALLOW, Errno, GateRequest
from callgate.runtime.broker import Verdict

EACCES = 2  # WASI's number for "Permission denied"
PREOPEN_FD = 3  # /data, the only directory cat is given
PREFIX = "public"


def broker(request: GateRequest) -> Verdict:
    """Allow path_open beneath public/ of the preopened directory; refuse anything else."""
    fd, _lookup_flags, path_ptr, path_len = request.args[:4]
    if fd != PREOPEN_FD or request.memory is None:
        return Errno(EACCES)
    try:
        path = request.memory.read(path_ptr, path_len).decode()
    except UnicodeDecodeError:
        return Errno(EACCES)
    # Judge the path the gate will resolve: '..' and '.' cleaned up first. A path that
    # normalises to something outside (starting with '..') or absolute is refused.
    clean = posixpath.normpath(path)
    if clean.startswith(PREFIX + "/") and ".." not in clean.split("/"):
        return ALLOW
    return Errno(EACCES)
