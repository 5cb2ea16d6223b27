"""The parent <-> worker frame format, including what a hostile worker could send."""

from __future__ import annotations

import os
import socket
import struct
import threading

import pytest

from callgate.isolation import wire


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    with a, b:
        yield a, b


def test_round_trip_with_bytes_nested_values_and_fds(pair, tmp_path):
    a, b = pair
    path = tmp_path / "f"
    path.write_text("through SCM_RIGHTS")
    fd = os.open(path, os.O_RDONLY)
    message = {"op": "setup", "module": b"\x00asm\x01", "args": [1, -2, 2**64 - 1, "s", [b"x"]]}
    try:
        wire.send(a, message, (fd,))
    finally:
        os.close(fd)
    got, fds = wire.recv(b)
    try:
        assert got == {**message, "args": [1, -2, 2**64 - 1, "s", [b"x"]]}
        assert len(fds) == 1 and os.read(fds[0], 100) == b"through SCM_RIGHTS"
        assert os.get_inheritable(fds[0]) is False
    finally:
        os.close(fds[0])


def test_large_message_streams(pair):
    a, b = pair
    blob = os.urandom(3 << 20)
    sender = threading.Thread(target=wire.send, args=(a, {"op": "big", "data": blob}))
    sender.start()
    got, _ = wire.recv(b)
    sender.join()
    assert got["data"] == blob


def test_closed_peer(pair):
    a, b = pair
    a.close()
    with pytest.raises(wire.PeerClosed):
        wire.recv(b)


@pytest.mark.parametrize(
    "raw",
    [
        struct.pack("<II", wire.MAX_FRAME + 1, 0),
        struct.pack("<II", 2, 1),  # declares an fd it did not send
        struct.pack("<II", 4, 0) + b"[1,2",  # not JSON (and short)
        struct.pack("<II", 3, 0) + b"[1]",  # not an object
        struct.pack("<II", 9, 0) + b'{"op": 1}',  # op is not a string
        struct.pack("<II", 14, 0) + b'{"op":"x","b":',  # truncated body
        struct.pack("<II", 10, 0) + b'{"op":"x"}trailing',  # more than the frame
        struct.pack("<II", 26, 0) + b'{"op":"x","v":{"$b":"!!"}}',  # bad base64
    ],
)
def test_hostile_frames_are_refused(pair, raw):
    a, b = pair
    a.sendall(raw)
    a.shutdown(socket.SHUT_WR)
    with pytest.raises((wire.WireError, wire.PeerClosed)):
        wire.recv(b)


def test_deeply_nested_json_is_a_wire_error(pair):
    a, b = pair
    body = b'{"op":"x","v":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    sender = threading.Thread(target=a.sendall, args=(struct.pack("<II", len(body), 0) + body,))
    sender.start()
    with pytest.raises(wire.WireError):
        wire.recv(b)
    sender.join()


def test_fds_of_a_refused_frame_are_closed(pair, tmp_path):
    a, b = pair
    before = set(os.listdir("/proc/self/fd"))
    fd = os.open(tmp_path, os.O_RDONLY)
    socket.send_fds(a, [struct.pack("<II", wire.MAX_FRAME + 1, 1)], [fd])
    os.close(fd)
    with pytest.raises(wire.WireError):
        wire.recv(b)
    assert set(os.listdir("/proc/self/fd")) == before
