"""Every lab, in order, and how to find one by number or name."""


from __future__ import annotations

from callgate.teach.labs import (
    lab01_allowlist,
    lab02_fallback,
    lab03_pin_fd,
    lab04_find_rule,
    lab05_asm,
    lab06_broker,
    lab07_learn,
    lab08_lockdown,
    lab09_covert,
    lab10_kernel_asm,
)
from callgate.teach.labs.base import Lab, LabError

LABS: tuple[Lab, ...] = (
    lab01_allowlist.LAB,
    lab02_fallback.LAB,
    lab03_pin_fd.LAB,
    lab04_find_rule.LAB,
    lab05_asm.LAB,
    lab06_broker.LAB,
    lab07_learn.LAB,
    lab08_lockdown.LAB,
    lab09_covert.LAB,
    lab10_kernel_asm.LAB,
)


def get_lab(key: str | int) -> Lab:
    """A lab by number (``3``, ``"03"``) or slug (``"pin-fd"``)."""
    text = str(key).strip()
    for lab in LABS:
        if (text.isdigit() and int(text) == lab.number) or text == lab.slug:
            return lab
    known = ", ".join(f"{lab.number} ({lab.slug})" for lab in LABS)
    raise LabError(f"no lab {text!r}; the labs are {known} (`callgate lab list`)")


__all__ = ["LABS", "get_lab"]
