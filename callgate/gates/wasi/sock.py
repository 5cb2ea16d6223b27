"""sock_* gates on sockets the host handed in (``WasiConfig.sockets``).

A guest cannot create or connect sockets (preview1 has no such call); it may
accept on a listening socket it was given and talk over the result. Any other
fd answers ENOTSOCK. Guest pointers are checked before the fd, so a bad
pointer is EFAULT whatever the fd is: the guest learns nothing about fds from
a call it could not have made correctly.

Every call that can block waits in ``poll`` for at most the call's remaining time
(``DeadlineExceeded`` after it), then asks the kernel with ``MSG_DONTWAIT``: no
socket call blocks in the kernel, so a silent peer cannot hold the host (or
``Plugin.close()``, which waits for the call) past ``Limits.timeout``.
"""

from __future__ import annotations

import select
import socket

from callgate.arch import wasi_errno as E
from callgate.gates.wasi import types as T
from callgate.gates.wasi.fd import EAGAIN, iovecs, ready, recv_into, write_from
from callgate.gates.wasi.fdtable import FdEntry, socket_entry
from callgate.gates.wasi.gate import WasiError, wasi_gate
from callgate.gates.wasi.state import WasiCall

ENOTSOCK = E.WASI_ERRNO["ENOTSOCK"]


def _socket(call: WasiCall, fd: int, right: int) -> tuple[FdEntry, socket.socket]:
    entry: FdEntry = call.state.table.get(fd)
    if entry.sock is None:
        raise WasiError(ENOTSOCK)
    entry.need(right)
    return entry, entry.sock


@wasi_gate("i32 i32 i32", syscalls={"accept4", "accept", "fcntl", "ioctl", "getsockopt",
                                    "getsockname", "poll", "ppoll"})
def sock_accept(call: WasiCall, fd: int, flags: int, ret: int) -> None:
    """Accept a connection on a listening socket; only NONBLOCK is a valid flag."""
    call.mem.check(ret, 4)
    entry, sock = _socket(call, fd, T.R["SOCK_ACCEPT"])
    if flags & ~T.FDFLAGS_NONBLOCK:
        raise WasiError(E.EINVAL)
    if not ready(call, sock.fileno(), select.POLLIN,
                 wait=not entry.flags & T.FDFLAGS_NONBLOCK):
        raise WasiError(EAGAIN)
    conn, _addr = sock.accept()
    conn.setblocking(not flags & T.FDFLAGS_NONBLOCK)
    new = socket_entry(conn)
    new.flags = flags
    call.mem.set_u32(ret, call.state.table.add(new))


@wasi_gate("i32 i32 i32 i32 i32 i32", syscalls={"recvmsg", "recvfrom", "poll", "ppoll"})
def sock_recv(call: WasiCall, fd: int, ri_data: int, ri_data_len: int, ri_flags: int,
              ret_len: int, ret_flags: int) -> None:
    """Receive into an iovec array (PEEK and WAITALL honoured)."""
    vecs = iovecs(call, ri_data, ri_data_len)
    call.mem.check(ret_len, 4)
    call.mem.check(ret_flags, 2)
    entry, sock = _socket(call, fd, T.R["FD_READ"])
    if ri_flags & ~(T.RIFLAGS_RECV_PEEK | T.RIFLAGS_RECV_WAITALL):
        raise WasiError(E.EINVAL)
    host_flags = (socket.MSG_PEEK if ri_flags & T.RIFLAGS_RECV_PEEK else 0) | \
        (socket.MSG_WAITALL if ri_flags & T.RIFLAGS_RECV_WAITALL else 0)
    count, msg_flags = recv_into(call, entry, sock, vecs, host_flags)
    call.mem.set_u32(ret_len, count)
    truncated = T.ROFLAGS_RECV_DATA_TRUNCATED if msg_flags & socket.MSG_TRUNC else 0
    call.mem.write(ret_flags, truncated.to_bytes(2, "little"))


@wasi_gate("i32 i32 i32 i32 i32", syscalls={"sendmsg", "sendto", "poll", "ppoll"})
def sock_send(call: WasiCall, fd: int, si_data: int, si_data_len: int, si_flags: int,
              ret: int) -> None:
    """Send a ciovec array (no send flags are defined); a full buffer gives a short send."""
    vecs = iovecs(call, si_data, si_data_len)
    call.mem.check(ret, 4)
    entry, _ = _socket(call, fd, T.R["FD_WRITE"])
    if si_flags:
        raise WasiError(E.EINVAL)
    call.mem.set_u32(ret, write_from(call, entry, vecs))


_HOW = {T.SDFLAGS_RD: socket.SHUT_RD, T.SDFLAGS_WR: socket.SHUT_WR,
        T.SDFLAGS_RD | T.SDFLAGS_WR: socket.SHUT_RDWR}


@wasi_gate("i32 i32", syscalls={"shutdown"}, uses_memory=False)
def sock_shutdown(call: WasiCall, fd: int, how: int) -> None:
    """Shut down reading, writing or both."""
    _, sock = _socket(call, fd, T.R["SOCK_SHUTDOWN"])
    if how not in _HOW:
        raise WasiError(E.EINVAL)
    sock.shutdown(_HOW[how])
