"""Lab 6: a broker that lets cat open files beneath public/ only."""

from callgate import ALLOW, Errno, GateRequest
from callgate.runtime.broker import Verdict

EACCES = 2  # WASI's number for "Permission denied"


def broker(request: GateRequest) -> Verdict:
    """Decide one trapped path_open(dirfd, lookup_flags, path, path_len, ...)."""
    _dirfd, _lookup_flags, path_ptr, path_len = request.args[:4]
    assert request.memory is not None  # cat exports its memory
    path = request.memory.read(path_ptr, path_len).decode()
    if path:  # TODO: allow only paths beneath public/
        return ALLOW
    return Errno(EACCES)
