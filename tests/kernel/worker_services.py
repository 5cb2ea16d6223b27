"""Services for worker tests: a plain Python service that does what the test asks, for real."""

from __future__ import annotations

import ctypes
import errno
import os
import time
from typing import Any

from callgate.gates.memory import GuestMemory
from callgate.kernel.binding import raw_syscall
from callgate.kernel.landlock import PathRule
from callgate.kernel.lockdown import held_fds


class ProbeService:
    def __init__(self, config: dict[str, Any], fds: dict[str, int], link: Any) -> None:
        self.config = config
        self.fds = fds
        self.link = link
        self.memory = bytearray(b"guest memory: hello from the worker".ljust(4096, b"\0"))

    def landlock_rules(self) -> list[PathRule]:
        """config["landlock"] = {fd name: "rw" | "ro"}: the handed directories Landlock allows."""
        modes = self.config.get("landlock", {})
        return [PathRule(f"handed {name}", write=mode == "rw", why=f"handed {name} ({mode})",
                         fd=self.fds[name]) for name, mode in modes.items()]

    def call(self, method: str, args: list[Any]) -> Any:
        if method == "echo":
            return args
        if method == "attempt":  # a path operation by absolute path: "ok" or the errno's name
            return attempt(args[0], args[1])
        if method == "fds":
            return {"held": list(held_fds()), "handed": self.fds}
        if method == "listdir":
            return sorted(os.listdir(self.fds[args[0]]))
        if method == "syscall":
            return list(raw_syscall(*args))
        if method == "open":
            return os.open(args[0], os.O_RDONLY)
        if method == "forward":
            memory = GuestMemory.over(self.memory)
            answer = self.link.request(
                "gate", {"name": args[0], "args": args[1:], "memory_size": memory.size}, memory
            )
            return [answer, bytes(self.memory[:64]).rstrip(b"\0")]
        if method == "forward_lying":  # memory that answers reads with the wrong length
            answer = self.link.request(
                "gate", {"name": "g", "args": [], "memory_size": 64}, _LyingMemory()
            )
            return [answer]
        if method == "chatter":  # a worker that keeps asking instead of answering
            while True:
                self.link.request("gate", {"name": "g", "args": []})
        if method == "segfault":
            ctypes.string_at(8, 1)  # address 0 would mean "allocate" to CPython
        if method == "sleep":
            time.sleep(args[0])
            return None
        if method == "garbage":  # a compromised worker writing nonsense to its parent
            os.write(self.link.fileno(), bytes(args[0]))
            time.sleep(5)
            return None
        raise ValueError(f"no method {method!r}")


def attempt(op: str, path: str) -> str:
    flags = {"read": os.O_RDONLY, "write": os.O_WRONLY, "create": os.O_WRONLY | os.O_CREAT}
    try:
        if op == "unlink":
            os.unlink(path, dir_fd=None)
        else:
            os.close(os.open(path, flags[op] | os.O_CLOEXEC, 0o600))
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return "ok"


class _LyingMemory:
    def read(self, ptr: int, length: int) -> bytes:
        return b"short"

    def write(self, ptr: int, data: bytes) -> None:
        pass


def build(config: dict[str, Any], fds: dict[str, int], link: Any) -> ProbeService:
    if config.get("fail"):
        raise RuntimeError("service refused to build")
    return ProbeService(config, fds, link)
