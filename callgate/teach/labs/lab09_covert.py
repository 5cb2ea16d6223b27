"""Lab 9: close a covert timing channel by denying the gate the sender hammers with.

Two instances of timing_hammer.wasm run in one host, in turn: the *sender* under the
student's policy, the *receiver* under a fixed one that lets it read the clock. No gate
connects them, yet the sender can make its turn long (sleep 20 ms) or short, and the
receiver can time it: one bit per turn. The checker sends a message and counts the bits
that arrive.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from callgate.policy import Policy, load_policy
from callgate.teach.labs.base import Check, Lab, failed, passed
from callgate.teach.labs.runner import guest_path, load_handin

MESSAGE = (1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0)  # 16 bits, half of them ones
THRESHOLD_NS = 10_000_000  # a turn longer than 10 ms reads as a 1 (a sleep is 20 ms)
#: The receiver decodes at least this many bits right while the channel is open; a closed
#: one leaves it guessing (all zeros: 8 of 16).
OPEN_AT = 13
RECEIVER_POLICY = """
[gates]
default = "errno(ENOSYS)"
[[gates.rules]]
names = ["clock_time_get"]
action = "allow"
"""


@dataclass
class Transfer:
    """What crossed the channel, and what the sender did to send it."""

    decoded: list[int]
    seconds: float
    sender_counters: dict[str, dict[str, int]]
    work_output: str
    work_result: int | None
    error: str | None  # how the sender's plugin failed, if it did

    @property
    def correct(self) -> int:
        return sum(a == b for a, b in zip(self.decoded, MESSAGE, strict=False))

    def calls(self) -> str:
        used = []
        for gate, kinds in sorted(self.sender_counters.items()):
            spent = ", ".join(f"{kind} {n}" for kind, n in kinds.items() if n)
            if spent:
                used.append(f"{gate} ({spent})")
        return "; ".join(used) or "none"


def transfer(sender_policy: Policy) -> Transfer:
    """Send MESSAGE through the channel, then let the sender do its honest work."""
    from callgate.gates.errors import PluginError
    from callgate.gates.wasi import WasiConfig, WasiProvider
    from callgate.runtime.limits import Limits
    from callgate.runtime.plugin import Plugin

    out = bytearray()
    module = guest_path("timing_hammer")
    receiver = Plugin(module, policy=load_policy(RECEIVER_POLICY),
                      providers=[WasiProvider(WasiConfig())], name="receiver")
    sender = Plugin(module, policy=sender_policy, name="sender", limits=Limits(timeout=10),
                    providers=[WasiProvider(WasiConfig(stdout=out))])
    decoded: list[int] = []
    error = None
    work: int | None = None
    started = time.monotonic()
    with receiver, sender:
        try:
            for bit in MESSAGE:
                before = receiver.call_int("now")
                sender.call_int("send", bit)  # the sender's turn
                after = receiver.call_int("now")
                assert isinstance(before, int) and isinstance(after, int)
                decoded.append(int(after - before > THRESHOLD_NS))
        except PluginError as exc:
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.monotonic() - started
        try:
            result = sender.call_int("work")
            work = result if isinstance(result, int) else None
        except PluginError as exc:
            error = error or f"{type(exc).__name__}: {exc}"
        counters = sender.counters
    return Transfer(decoded, seconds, counters, out.decode(errors="replace"), work, error)


def bits(values: list[int] | tuple[int, ...]) -> str:
    return "".join(map(str, values))


def check(path: Path, work: Path) -> Iterator[Check]:
    loaded = load_handin(path)
    yield passed(f"{path.name} loads as a policy")
    t = transfer(loaded.policy)
    sent = f"sent {bits(MESSAGE)}, received {bits(t.decoded) or '(nothing)'}"
    if t.error and len(t.decoded) < len(MESSAGE):
        yield failed("the channel is closed, and the sender lives",
                     f"the sender was stopped while sending: {t.error}",
                     "that closes the channel, and the plugin with it. The lab asks you to "
                     "take the hammer away - deny that one gate with an errno - and let the "
                     "sender go on with its work")
    elif t.correct >= OPEN_AT:
        rate = len(MESSAGE) / t.seconds if t.seconds else 0.0
        yield failed("the channel is closed",
                     f"the receiver decoded {t.correct} of {len(MESSAGE)} bits ({sent}): "
                     f"about {rate:.0f} bits a second",
                     f"the sender's gate calls, by verdict: {t.calls()}",
                     "the sender makes its turn long or short with one gate: find it in "
                     "those counts and deny it (errno)")
    else:
        yield passed("the channel is closed",
                     f"the receiver decoded {t.correct} of {len(MESSAGE)} bits ({sent}), "
                     "no better than guessing every bit is 0")
    if t.work_result == 0 and t.work_output == "sender: working\n":
        yield passed("the sender still does its work (prints 'sender: working')")
    else:
        what = (f"work() returned {t.work_result}" if t.work_result is not None
                else f"work() failed: {t.error}")
        yield failed("the sender still does its work (prints 'sender: working')", what,
                     f"the sender's gate calls: {t.calls()}",
                     "its work is an fd_write to fd 1: allow that, and deny only the hammer")


LAB = Lab(
    number=9,
    slug="covert",
    title="Close a covert timing channel",
    goal="""\
Two plugins run in one host, taking turns: a sender and a receiver (both are
timing_hammer.wasm). No gate connects them. Yet the receiver reads the clock before
and after each of the sender's turns, and the sender makes its turn long for a 1 and
short for a 0: 16 bits cross in a fraction of a second. Write lab09.toml, the sender's
policy, so that the receiver decodes no better than guessing, while the sender still
does its honest work (printing a status line).""",
    hints=(
        "The checker prints the sender's gate calls while it sends: which gate does it "
        "call once per 1 bit, and never for a 0?",
        "A sleep is a 'hammer' for timing: the sender needs no clock of its own, only a "
        "way to take time the receiver can see.",
        "Deny with an errno, not a kill: the sender must live to do its work.",
        "What this does not stop: a sender that spins in a loop instead of sleeping takes "
        "time too. Fuel and deadlines (Limits) bound that; docs/labs.md says more.",
    ),
    handin="lab09.toml",
    starter="lab09_starter.toml",
    solution="lab09_solution.toml",
    checker=check,
    try_it=("callgate lab check 9 lab09.toml",),
)
