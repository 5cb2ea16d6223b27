"""The mprotect channel, and what callgate's kernel layer does to it (docs/covert.md).

A page's protection bits are state the kernel keeps for a process and shows to anyone
who asks (``/proc/self/maps``, or a fault). Code that may call ``mprotect`` can write a
bit there - one protection for a 1, another for a 0 - and code that may read the maps can
read it back, with no memory or fd shared between them for that purpose. Wasm guests
cannot call ``mprotect``; the threat is native code in the host (a compromised extension,
a bug under a gate), which is what the kernel layer exists for.

Two senders, each measured in a forked child, first with no filter and then under the
kernel host policy callgate derives for a plugin (the one ``callgate run --kernel``
installs):

``exec``
    toggles ``PROT_READ`` and ``PROT_READ|PROT_EXEC``. The host policy's rule "no new
    executable memory after lockdown" kills the process at the first 1.
``none``
    toggles ``PROT_READ`` and ``PROT_NONE``. The host policy allows it: wasmtime commits
    and decommits linear memory with exactly these calls, so a filter that stopped them
    would stop the runtime.

The receiver reads ``/proc/self/maps`` (an fd opened before the filter) and looks up the
page's permissions. Results travel back through shared memory written as the bits go, so
a child killed mid-message still reports how far it got.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from dataclasses import dataclass

from callgate.arch import native_arch
from callgate.teach.covert import bsc_capacity, payload

PROT_NONE, PROT_READ, PROT_EXEC = 0x0, 0x1, 0x4
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
PAGE = mmap.PAGESIZE
#: The demo plugin policy the host policy is derived from: a plugin that reads files and
#: writes its output (so read, pread64 and write are allowed in the host).
PLUGIN_POLICY = """
[gates]
default = "errno(ENOSYS)"
[[gates.rules]]
names = ["fd_read", "fd_pread", "fd_write", "clock_time_get"]
action = "allow"
"""
VARIANTS = {"exec": (PROT_READ | PROT_EXEC, PROT_READ), "none": (PROT_NONE, PROT_READ)}
_HEADER = struct.Struct("<qqd")  # bits done, errors, seconds


@dataclass(frozen=True)
class MprotectResult:
    variant: str
    confinement: str  # "none" or "host policy"
    bits: int
    done: int  # bits that crossed before the child ended
    errors: int
    seconds: float
    ending: str  # how the child ended

    @property
    def ber(self) -> float:
        """Errors among the bits sent; a bit never sent counts as guessed (half wrong)."""
        if not self.bits:
            return 0.5
        return (self.errors + (self.bits - self.done) / 2) / self.bits

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def capacity(self) -> float:
        return self.rate * bsc_capacity(self.ber) if self.done else 0.0


def host_policy_program() -> bytes:
    """The kernel host policy for :data:`PLUGIN_POLICY`, packed for seccomp."""
    from callgate.bpf.insn import pack
    from callgate.gates.wasi.provider import wasi_specs
    from callgate.kernel.hostpolicy import derive_host_policy
    from callgate.policy import load_policy_text

    policy = load_policy_text(PLUGIN_POLICY, source="covert mprotect plugin").policy
    return pack(derive_host_policy(policy, wasi_specs()).compile())


def _sys(name: str, *args: int) -> tuple[int, int]:
    from callgate.kernel.binding import raw_syscall

    return raw_syscall(native_arch().number(name), *args)


def _perms(maps_fd: int, address: int) -> str:
    """The permissions /proc/self/maps gives the mapping holding ``address``."""
    chunks, offset = [], 0
    while chunk := os.pread(maps_fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    for line in b"".join(chunks).splitlines():
        span, perms = line.split(b" ", 2)[:2]
        low, _, high = span.partition(b"-")
        if int(low, 16) <= address < int(high, 16):
            return perms.decode()
    return ""


def _send(variant: str, bits: list[int], report: mmap.mmap, program: bytes | None) -> None:
    """The child: send ``bits`` through page protections, reporting each as it crosses."""
    from callgate.kernel.binding import install_filter, set_no_new_privs

    one, zero = VARIANTS[variant]
    address, err = _sys("mmap", 0, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1 & 0xFFFFFFFF,
                        0)
    if err:
        raise OSError(err, "mmap")
    maps_fd = os.open("/proc/self/maps", os.O_RDONLY)
    if program is not None:
        set_no_new_privs()
        install_filter(program)
    errors = 0
    started = time.perf_counter()
    for i, bit in enumerate(bits):
        _sys("mprotect", address, PAGE, one if bit else zero)  # the sender
        perms = _perms(maps_fd, address)  # the receiver
        got = perms[2:3] == "x" if variant == "exec" else perms[:1] != "r"
        errors += int(got) != bit
        _HEADER.pack_into(report, 0, i + 1, errors, time.perf_counter() - started)


def measure_variant(variant: str, confined: bool, bits: int = 256, seed: int = 1,
                    ) -> MprotectResult:
    from callgate.kernel.child import run_in_child

    message = payload(bits, seed)
    program = host_policy_program() if confined else None
    with mmap.mmap(-1, PAGE, flags=mmap.MAP_SHARED) as report:
        ended = run_in_child(lambda: _send(variant, message, report, program), timeout=60)
        done, errors, seconds = _HEADER.unpack_from(report, 0)
    ending = "returned" if ended.ok else ended.describe().strip().splitlines()[-1]
    return MprotectResult(variant, "host policy" if confined else "none", bits, done, errors,
                          seconds, ending)


def measure_mprotect(bits: int = 256) -> list[MprotectResult]:
    return [measure_variant(v, confined, bits) for v in VARIANTS for confined in (False, True)]


def mprotect_table(rows: list[MprotectResult], markdown: bool = False) -> str:
    head = ("sender", "kernel filter", "bits sent", "crossed", "BER", "raw bit/s",
            "capacity bit/s", "the child")
    body = [(r.variant, r.confinement, str(r.bits), str(r.done), f"{r.ber:.3f}",
             f"{r.rate:.0f}", f"{r.capacity:.0f}", r.ending) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines) + "\n"
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in (head, *body)) + "\n"
