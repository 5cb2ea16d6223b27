"""Messages between the trusted parent and a locked-down worker, over a stream socketpair.

A frame is an 8-byte header (``u32`` body length, ``u32`` fd count) followed by a
JSON body; fds travel as SCM_RIGHTS on the header. JSON rather than pickle because
the worker runs hostile code: whatever it sends is data, never instructions, and
every frame is bounded (:data:`MAX_FRAME`, :data:`MAX_FDS`). Bytes are encoded as
``{"$b": "<base64>"}``.
"""

from __future__ import annotations

import array
import base64
import json
import os
import socket
import struct
from typing import Any

from callgate.errors import CallgateError

_HEADER = struct.Struct("<II")
MAX_FRAME = 256 * 1024 * 1024  # a module and its data fit; a memory bomb does not
MAX_FDS = 64


class WireError(CallgateError, ValueError):
    """A malformed or oversized frame: the peer is broken or hostile."""


class PeerClosed(CallgateError, EOFError):
    """The other end closed the socket (it exited or was killed)."""


def _bytes_as_json(value: Any) -> Any:
    """``json.dumps`` hook: bytes become ``{"$b": base64}``; anything else is an error."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"{type(value).__name__} cannot cross to the other process")


def _json_as_bytes(obj: dict[str, Any]) -> Any:
    """``json.loads`` hook: the inverse of :func:`_bytes_as_json`."""
    if len(obj) == 1 and isinstance(obj.get("$b"), str):
        return base64.b64decode(obj["$b"], validate=True)
    return obj


def send(sock: socket.socket, message: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
    """Send one message, with ``fds`` duplicated into the receiver."""
    body = json.dumps(message, separators=(",", ":"), default=_bytes_as_json).encode()
    if len(body) > MAX_FRAME:
        raise WireError(f"message of {len(body)} bytes exceeds the {MAX_FRAME}-byte frame limit")
    if len(fds) > MAX_FDS:
        raise WireError(f"{len(fds)} fds exceed the limit of {MAX_FDS} per message")
    header = _HEADER.pack(len(body), len(fds))
    if fds:
        socket.send_fds(sock, [header], list(fds))
        sock.sendall(body)
    else:
        sock.sendall(header + body)  # one syscall for the common case


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise PeerClosed("the peer closed the connection mid-message")
        chunks += chunk
    return bytes(chunks)


# The first read takes the header and, usually, the whole body with it: one syscall.
_FIRST_READ = 64 * 1024


def _recv_first(sock: socket.socket) -> tuple[bytes, list[int]]:
    """recvmsg with close-on-exec fds (``socket.recv_fds`` drops its flags on 3.11)."""
    fds = array.array("i")
    data, ancillary, _, _ = sock.recvmsg(
        _FIRST_READ, socket.CMSG_SPACE(MAX_FDS * fds.itemsize), socket.MSG_CMSG_CLOEXEC
    )
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


def recv(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """Receive one message and the fds that came with it (close-on-exec, caller owns them).

    The conversation strictly alternates (each side sends one message, then waits), so
    bytes beyond the frame are a protocol violation, not the start of the next message.
    """
    data, fds = _recv_first(sock)
    try:
        if not data:
            raise PeerClosed("the peer closed the connection")
        if len(data) < _HEADER.size:
            data += _recv_exact(sock, _HEADER.size - len(data))
        length, nfds = _HEADER.unpack_from(data)
        if length > MAX_FRAME or nfds != len(fds):
            raise WireError(
                f"bad frame header: {length} bytes, {nfds} fds declared, {len(fds)} received"
            )
        body = data[_HEADER.size :]
        if len(body) > length:
            raise WireError(f"{len(body) - length} bytes after a {length}-byte frame")
        body += _recv_exact(sock, length - len(body))
        try:
            message = json.loads(body, object_hook=_json_as_bytes)
        except (ValueError, RecursionError) as exc:
            raise WireError(f"undecodable message: {exc}") from None
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            raise WireError("a message must be a JSON object with a string 'op'")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return message, fds
