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


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$b"} and isinstance(value["$b"], str):
            return base64.b64decode(value["$b"], validate=True)
        return {k: _decode(v) for k, v in value.items()}
    return value


def send(sock: socket.socket, message: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
    """Send one message, with ``fds`` duplicated into the receiver."""
    body = json.dumps(_encode(message), separators=(",", ":")).encode()
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


def _recv_header(sock: socket.socket) -> tuple[bytes, list[int]]:
    """recvmsg with close-on-exec fds (``socket.recv_fds`` drops its flags on 3.11)."""
    fds = array.array("i")
    data, ancillary, _, _ = sock.recvmsg(
        _HEADER.size, socket.CMSG_SPACE(MAX_FDS * fds.itemsize), socket.MSG_CMSG_CLOEXEC
    )
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


def recv(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """Receive one message and the fds that came with it (close-on-exec, caller owns them)."""
    data, fds = _recv_header(sock)
    try:
        if not data:
            raise PeerClosed("the peer closed the connection")
        header = data + _recv_exact(sock, _HEADER.size - len(data))
        length, nfds = _HEADER.unpack(header)
        if length > MAX_FRAME or nfds != len(fds):
            raise WireError(
                f"bad frame header: {length} bytes, {nfds} fds declared, {len(fds)} received"
            )
        try:
            message = _decode(json.loads(_recv_exact(sock, length)))
        except (ValueError, RecursionError) as exc:
            raise WireError(f"undecodable message: {exc}") from None
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            raise WireError("a message must be a JSON object with a string 'op'")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return message, fds
