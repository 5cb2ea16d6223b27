"""Covert channels between two plugins, measured: bit rate, bit error rate, capacity.

Two instances of ``covert.wasm`` (guests/src/covert.wat) run in one host, in turn on one
thread: a *sender* and a *receiver*. No gate connects them. Each channel is something
they share that no gate was meant to share (docs/covert.md):

``sleep``
    the sender's turn is long (it sleeps in ``poll_oneoff``) or short; the receiver reads
    the clock before and after it. The hammer is ``poll_oneoff``.
``spin``
    the same with no gate at all: the sender computes for a while. Only the receiver's
    clock is involved, so there is no hammer to take away.
``pagecache``
    a read-only file both have preopened: for a 1 the sender reads a page (it is then in
    the page cache), for a 0 it evicts it (``fd_advise`` DONTNEED, the hammer); the
    receiver times its own read of that page.
``fresh``
    the page cache again without eviction: each bit has its own page nobody has read,
    which the sender reads for a 1 and leaves alone for a 0. The hammer is the read itself
    (``fd_pread``); the file's size bounds how many bits can cross.
``edge``
    the ``spin`` sender against a receiver built for coarse clocks: it waits for the clock
    to tick before the sender's turn, and after it counts the clock reads until the next
    tick: the longer the sender ran, the fewer.

The host calls the sender once a turn whatever the bit (``sleep_if``, ``spin_if``,
``touch_if``, or ``touch``/``evict``): the bit is decided inside the guest, so the host's
own call into the sender is no part of the signal.

A transfer sends a known preamble (alternating bits), from which the receiver sets its
threshold and polarity, then a seeded random payload with as many ones as zeros. The
payload's bit error rate (BER) and bit rate (payload bits over the seconds the payload
took) give the capacity of a binary symmetric channel, ``rate * (1 - H(BER))``: the
bits per second that actually carry information. A guessing receiver has BER 0.5 and
capacity 0.

Countermeasures, each a policy (docs/policy.md): ``deny`` (the sender's policy denies
the channel's hammer with EPERM), ``clocks`` (``[gates.clocks] resolution`` for both),
``jitter`` (``[gates] jitter`` for both).
"""

from __future__ import annotations

import math
import os
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from callgate.policy import Policy, load_policy_text
from callgate.policy.toml_loader import format_duration
from callgate.teach.labs.runner import guest_path

#: Known bits the receiver calibrates on, then the payload.
PREAMBLE = (1, 0) * 16
PAGE = 4096
#: Between two ``fresh`` pages: past what a one-byte cold read brings in ahead (~16 KiB).
STRIDE = 256 * 1024
SHARED_NAME = "shared.bin"
SLEEP_NS = 1_000_000  # the sleep channel's 1: 1 ms
SPIN_ROUNDS = 20_000  # the spin channel's 1: ~20-40 us of arithmetic here
EDGE_SPIN_ROUNDS = 200_000  # the edge receiver's sender spins longer: ~0.3 ms
DEFAULT_RESOLUTION_NS = 1_000_000
DEFAULT_JITTER_NS = 50_000

_BASE_GATES = ("clock_time_get", "clock_res_get", "poll_oneoff", "path_open", "fd_pread",
               "fd_advise")


@dataclass(frozen=True)
class Channel:
    name: str
    hammer: str | None  # the gate the sender cannot send without, if any
    summary: str


CHANNELS: dict[str, Channel] = {c.name: c for c in (
    Channel("sleep", "poll_oneoff", "the sender sleeps 1 ms for a 1; the receiver times its turn"),
    Channel("spin", None, "the sender computes ~20k rounds for a 1, no gate; the receiver "
                          "times its turn"),
    Channel("pagecache", "fd_advise", "the sender reads a page of a shared read-only file for "
                                      "a 1, evicts it for a 0; the receiver times its read"),
    Channel("fresh", "fd_pread", "the sender reads a never-read page for a 1; the receiver "
                                 "times its read of it (no eviction needed)"),
    Channel("edge", None, "the sender computes ~200k rounds for a 1; the receiver counts clock "
                          "reads from a tick to the next"),
)}


@dataclass(frozen=True)
class Countermeasure:
    name: str
    summary: str


COUNTERMEASURES: dict[str, Countermeasure] = {c.name: c for c in (
    Countermeasure("none", "both plugins under the base policy"),
    Countermeasure("deny", "the sender's policy denies the hammer (errno EPERM)"),
    Countermeasure("clocks", "[gates.clocks] resolution for both"),
    Countermeasure("jitter", "[gates] jitter for both"),
    Countermeasure("all", "deny, clocks and jitter together"),
)}


@dataclass(frozen=True)
class Settings:
    bits: int = 128  # payload bits
    seed: int = 1
    resolution_ns: int = DEFAULT_RESOLUTION_NS
    jitter_ns: int = DEFAULT_JITTER_NS


@dataclass
class Measurement:
    """One transfer: what was sent and decoded, and how fast."""

    channel: str
    countermeasure: str
    sent: list[int]
    decoded: list[int]
    seconds: float  # the payload's transfer time
    threshold: float
    polarity: int  # +1: a larger value reads 1; -1: a smaller one does
    ones: list[float] = field(default_factory=list)  # the preamble's 1s, as measured
    zeros: list[float] = field(default_factory=list)
    refused: int = 0  # sender calls the hammer answered with an errno
    note: str = ""

    @property
    def errors(self) -> int:
        return sum(a != b for a, b in zip(self.sent, self.decoded, strict=True))

    @property
    def ber(self) -> float:
        return self.errors / len(self.sent) if self.sent else 0.5

    @property
    def rate(self) -> float:
        """Raw bits per second: payload bits over the payload's time."""
        return len(self.sent) / self.seconds if self.seconds > 0 else 0.0

    @property
    def capacity(self) -> float:
        """Information bits per second, as a binary symmetric channel: rate * (1 - H(BER))."""
        return self.rate * bsc_capacity(self.ber)


def binary_entropy(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def bsc_capacity(ber: float) -> float:
    """Bits of information per bit sent over a binary symmetric channel with this BER.

    A receiver that is wrong more often than not can invert what it reads, so BER p and
    1 - p carry the same information."""
    return 1.0 - binary_entropy(min(ber, 1.0 - ber))


def payload(bits: int, seed: int) -> list[int]:
    """``bits`` bits, half of them ones (one more zero when odd), in a seeded random order."""
    out = [1] * (bits // 2) + [0] * (bits - bits // 2)
    random.Random(seed).shuffle(out)
    return out


def calibrate(ones: Sequence[float], zeros: Sequence[float]) -> tuple[float, int]:
    """A threshold between the classes, and which side of it reads 1 (0: no side).

    The side is where the 1s' median lies; the threshold is halfway between the inner
    quartiles (the slower class's first quartile, the faster class's third), so a few
    stragglers in either class - a cold read queued behind other disk I/O for
    milliseconds, a cached read preempted - do not drag it away from where the classes part.
    """
    m1, m0 = statistics.median(ones), statistics.median(zeros)
    side = (m1 > m0) - (m1 < m0)
    if side == 0:
        return m1, 0
    high, low = (ones, zeros) if side > 0 else (zeros, ones)
    threshold = (_quartiles(high)[0] + _quartiles(low)[2]) / 2
    return threshold, side


def _quartiles(values: Sequence[float]) -> list[float]:
    if len(values) < 2:
        return [values[0]] * 3
    return statistics.quantiles(values, n=4, method="inclusive")


def decode(values: Iterable[float], threshold: float, polarity: int) -> list[int]:
    """1 where a value lies beyond the threshold on the 1s' side; all 0 without a side."""
    return [int(polarity != 0 and (v - threshold) * polarity > 0) for v in values]


# ---------------------------------------------------------------------------------------
# Policies


def base_policy_text() -> str:
    names = ", ".join(f'"{n}"' for n in _BASE_GATES)
    return ('[gates]\ndefault = "errno(ENOSYS)"\n\n[[gates.rules]]\n'
            f"names = [{names}]\naction = \"allow\"\n")


def policy_text(role: str, channel: Channel, countermeasure: str, settings: Settings) -> str:
    """The TOML policy ``role`` (sender or receiver) runs under with ``countermeasure``."""
    text = base_policy_text()
    every = countermeasure == "all"
    if countermeasure == "jitter" or every:
        jitter = format_duration(settings.jitter_ns)
        text = text.replace('default = "errno(ENOSYS)"\n',
                            f'default = "errno(ENOSYS)"\njitter = "{jitter}"\n')
    if countermeasure == "clocks" or every:
        resolution = format_duration(settings.resolution_ns)
        text += f'\n[gates.clocks]\nresolution = "{resolution}"\n'
    if (countermeasure == "deny" or every) and role == "sender" and channel.hammer is not None:
        text += f'\n[[gates.rules]]\nnames = ["{channel.hammer}"]\naction = "errno(EPERM)"\n'
    return text


def policy_for(role: str, channel: Channel, countermeasure: str, settings: Settings) -> Policy:
    text = policy_text(role, channel, countermeasure, settings)
    return load_policy_text(text, source=f"covert {channel.name} {countermeasure} {role}").policy


# ---------------------------------------------------------------------------------------
# Transfers


def make_shared_file(directory: Path, size: int) -> Path:
    """A file of real data (no holes: a hole reads fast whether cached or not), on disk and
    out of the page cache."""
    path = directory / SHARED_NAME
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with open(path, "wb") as f:
        left = size
        while left > 0:
            left -= f.write(chunk[:left])
        f.flush()
        os.fsync(f.fileno())
    evict_file(path)
    return path


def disk_dir() -> Path:
    """The temporary directory, unless it is a tmpfs (its pages are its storage: nothing to
    evict, nothing to time); then the current directory."""
    tmp = Path(tempfile.gettempdir()).resolve()
    return Path.cwd() if filesystem_type(tmp) == "tmpfs" else tmp


def filesystem_type(path: Path) -> str:
    """The type of the filesystem ``path`` is on, from /proc/self/mounts ("" if unknown)."""
    best, kind = "", ""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return ""
    text = str(path)
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = text == point or text.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind


def evict_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def file_size_for(channel: Channel, settings: Settings) -> int:
    if channel.name == "fresh":
        return (len(PREAMBLE) + settings.bits + 1) * STRIDE
    return STRIDE


#: Countermeasures a pair of isolated plugins can take: the timing options apply only
#: in-process (an IsolatedPlugin refuses a policy with them).
ISOLATED_COUNTERMEASURES = ("none", "deny")


def measure(channel_name: str, countermeasure: str = "none", settings: Settings | None = None,
            workdir: Path | None = None, isolated: bool = False) -> Measurement:
    """Send the preamble and a payload through ``channel_name`` under ``countermeasure``.

    ``isolated``: the two plugins are :class:`~callgate.isolation.IsolatedPlugin` s, each
    in its own worker process locked down by the kernel host policy, instead of two
    in-process plugins; the host still calls them in turn."""
    from contextlib import ExitStack

    from callgate.gates.wasi import Preopen, WasiConfig, WasiProvider
    from callgate.isolation.isolated import IsolatedPlugin
    from callgate.runtime.plugin import Plugin

    settings = settings or Settings()
    channel = CHANNELS[channel_name]
    if countermeasure not in COUNTERMEASURES:
        raise KeyError(countermeasure)
    if isolated and countermeasure not in ISOLATED_COUNTERMEASURES:
        raise ValueError(f"isolated plugins take only {', '.join(ISOLATED_COUNTERMEASURES)}: "
                         "the timing options apply to in-process plugins")
    module = guest_path("covert")
    with tempfile.TemporaryDirectory(prefix="callgate-covert-", dir=workdir or disk_dir()) as tmp:
        shared = make_shared_file(Path(tmp), file_size_for(channel, settings))
        preopen = Preopen(shared.parent, "/shared", readonly=True)

        def plugin(role: str) -> Plugin | IsolatedPlugin:
            policy = policy_for(role, channel, countermeasure, settings)
            if isolated:
                return IsolatedPlugin(module, name=role, policy=policy, timeout=60,
                                      wasi=WasiConfig(stdin="inherit", stdout="inherit",
                                                      stderr="inherit", preopens=[preopen]),
                                      stdio=(subprocess.DEVNULL,) * 3)
            return Plugin(module, name=role, policy=policy,
                          providers=[WasiProvider(WasiConfig(preopens=[preopen]))])

        with ExitStack() as stack:
            stack.enter_context(receiver := plugin("receiver"))
            stack.enter_context(sender := plugin("sender"))
            m = _transfer(channel, countermeasure, settings, sender, receiver)
        if isolated:
            m.note = "two worker processes"
        return m


def _transfer(channel: Channel, countermeasure: str, settings: Settings,
              sender: _Calls, receiver: _Calls) -> Measurement:
    turn, note = _turns(channel, sender, receiver)
    refused = [0]

    def one(i: int, bit: int) -> float:
        value, failed = turn(i, bit)
        refused[0] += failed
        return value

    measured = [one(i, bit) for i, bit in enumerate(PREAMBLE)]
    ones = [v for v, b in zip(measured, PREAMBLE, strict=True) if b]
    zeros = [v for v, b in zip(measured, PREAMBLE, strict=True) if not b]
    threshold, polarity = calibrate(ones, zeros)
    sent = payload(settings.bits, settings.seed)
    started = time.perf_counter()
    values = [one(len(PREAMBLE) + i, bit) for i, bit in enumerate(sent)]
    seconds = time.perf_counter() - started
    return Measurement(channel.name, countermeasure, sent, decode(values, threshold, polarity),
                       seconds, threshold, polarity, ones, zeros, refused[0], note)


class _Calls(Protocol):
    """What a transfer needs of a plugin (a :class:`~callgate.runtime.plugin.Plugin`)."""

    def call_int(self, name: str, *args: int) -> int | tuple[int, ...] | None: ...


def _int(value: object) -> int:
    return value if isinstance(value, int) else -1


Turn = Callable[[int, int], tuple[float, int]]


def _turns(channel: Channel, sender: _Calls, receiver: _Calls) -> tuple[Turn, str]:
    """One bit's turn: (what the receiver measured, 1 if the sender's hammer was refused)."""
    if channel.name in ("sleep", "spin"):
        def timed(i: int, bit: int) -> tuple[float, int]:
            del i
            before = _int(receiver.call_int("now"))
            failed = 0
            if channel.name == "sleep":
                failed = int(_int(sender.call_int("sleep_if", bit, SLEEP_NS)) != 0)
            else:
                sender.call_int("spin_if", bit, SPIN_ROUNDS)
            return float(_int(receiver.call_int("now")) - before), failed
        return timed, ""
    if channel.name == "edge":
        def counted(i: int, bit: int) -> tuple[float, int]:
            del i
            receiver.call_int("edge")
            sender.call_int("spin_if", bit, EDGE_SPIN_ROUNDS)
            return float(_int(receiver.call_int("count"))), 0
        return counted, ""
    fd_s, fd_r = _int(sender.call_int("open")), _int(receiver.call_int("open"))
    if fd_s < 0 or fd_r < 0:
        raise RuntimeError(f"the plugins could not open {SHARED_NAME}: {fd_s}, {fd_r}")
    if channel.name == "pagecache":
        def evicting(i: int, bit: int) -> tuple[float, int]:
            del i
            if bit:
                failed = _int(sender.call_int("touch", fd_s, 0)) != 0
            else:
                failed = _int(sender.call_int("evict", fd_s, 0, PAGE)) != 0
            return float(_int(receiver.call_int("probe", fd_r, 0))), int(failed)
        return evicting, ""

    def fresh(i: int, bit: int) -> tuple[float, int]:
        offset = (i + 1) * STRIDE
        failed = _int(sender.call_int("touch_if", bit, fd_s, offset)) != 0
        return float(_int(receiver.call_int("probe", fd_r, offset))), int(failed)
    return fresh, ""


def measure_all(channels: Sequence[str], countermeasures: Sequence[str],
                settings: Settings | None = None, workdir: Path | None = None,
                ) -> list[Measurement]:
    return [measure(c, m, settings, workdir) for c in channels for m in countermeasures]


# ---------------------------------------------------------------------------------------
# Reports


def _us(ns: float) -> str:
    return f"{ns / 1000:.1f}"


def repeated_table(groups: Sequence[Sequence[Measurement]], markdown: bool = False) -> str:
    """Each (channel, countermeasure) measured several times: medians, and the capacity's
    range, so one lucky or unlucky run does not speak for the channel."""
    head = ("channel", "countermeasure", "runs", "raw bit/s", "BER", "capacity bit/s",
            "capacity range", "median 1 - median 0")
    body = []
    for runs in groups:
        m = runs[0]
        caps = [r.capacity for r in runs]
        gaps = [statistics.median(r.ones) - statistics.median(r.zeros) for r in runs]
        gap = statistics.median(gaps)
        body.append((m.channel, m.countermeasure, str(len(runs)),
                     f"{statistics.median(r.rate for r in runs):.0f}",
                     f"{statistics.median(r.ber for r in runs):.3f}",
                     f"{statistics.median(caps):.0f}", f"{min(caps):.0f}-{max(caps):.0f}",
                     f"{gap:.0f} reads" if m.channel == "edge" else f"{_us(gap)} us"))
    return _render(head, body, markdown)


def _render(head: Sequence[str], body: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines) + "\n"
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in (head, *body)) + "\n"


def table(rows: Sequence[Measurement], markdown: bool = False) -> str:
    """The measurements as a table: raw bits/s, BER, information bits/s, and the medians
    the receiver calibrated on (us; clock reads for ``edge``)."""
    head = ("channel", "countermeasure", "bits", "seconds", "raw bit/s", "BER",
            "capacity bit/s", "median 1", "median 0", "hammer refused")
    body = []
    for m in rows:
        unit = (lambda v: f"{v:.0f}") if m.channel == "edge" else _us
        body.append((m.channel, m.countermeasure, str(len(m.sent)), f"{m.seconds:.3f}",
                     f"{m.rate:.0f}", f"{m.ber:.3f}", f"{m.capacity:.0f}",
                     unit(statistics.median(m.ones)), unit(statistics.median(m.zeros)),
                     str(m.refused)))
    return _render(head, body, markdown)
