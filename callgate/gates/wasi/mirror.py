"""The native gate core's copy of a WASI state: what C needs to run the hot fd gates.

callgate's WASI (this package) is the one definition of the fd table, rights, flags and
preopens. When the native gate core serves a plugin, :class:`NativeWasiMirror` keeps C's
fd array equal to the :class:`~callgate.gates.wasi.fdtable.FdTable`: the table tells it
every fd placed, changed or freed (:meth:`FdTable.attach_mirror`), and it copies argv and
environ once (a :class:`~callgate.gates.wasi.state.WasiState` makes them from its config
and never changes them).

Per fd, C learns the filetype, fdflags, rights, the host fd, whether the entry is *plain*
(a host fd and nothing else: no socket object, fed stdin or captured buffer, which only
Python can drive) and a preopen's name. A value C could not hold marks the fd *exotic*
(every C body hands it to Python); a failure to mirror stops the mirror (every WASI
body hands over), so C never acts on a state Python does not have.
"""

from __future__ import annotations

from callgate.gates.wasi.fdtable import FdEntry
from callgate.gates.wasi.state import WasiState
from callgate.native.gate import FdInfo, NativePlugin

ARGV, ENVIRON = 0, 1


def fd_info(entry: FdEntry) -> FdInfo:
    """What C mirrors of one entry."""
    name: bytes | None = None
    name_python = False
    if entry.preopen is not None:
        try:
            name = entry.preopen.encode()
        except UnicodeError:  # fd_prestat_* answer EILSEQ: Python's to say
            name_python = True
    host_fd = entry.host_fd
    plain = (host_fd is not None and entry.sock is None and entry.sink is None
             and entry.fed is None)
    return FdInfo(entry.filetype, entry.flags, entry.allowed, entry.rights_base,
                  entry.rights_inheriting,
                  -1 if host_fd is None else host_fd, plain, name, name_python)


class NativeWasiMirror:
    """Keeps ``native``'s fd array and strings equal to ``state``'s (an ``FdMirror``)."""

    __slots__ = ("native",)

    def __init__(self, native: NativePlugin, state: WasiState) -> None:
        self.native = native
        native.attach_wasi(state.table.max_fds)
        native.set_strings(ARGV, state.args)
        native.set_strings(ENVIRON, state.env)
        state.table.attach_mirror(self)

    def set(self, fd: int, entry: FdEntry) -> None:
        try:
            self.native.set_fd(fd, fd_info(entry))
        except Exception:  # a value C cannot take (not an int ...): C stops serving WASI
            self.native.disable_wasi()

    def clear(self, fd: int) -> None:
        self.native.clear_fd(fd)
