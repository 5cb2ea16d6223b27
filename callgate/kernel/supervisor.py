"""A USER_NOTIF supervisor: a thread in a trusted process that answers another's syscalls.

A filter that returns ``SECCOMP_RET_USER_NOTIF`` parks the syscall and hands it to
whoever holds the listener fd. The locked-down process cannot be its own
supervisor (the thread answering would be parked too), so it passes the fd to its
parent with SCM_RIGHTS and the parent answers with a :class:`Verdict`.

Reading the target's arguments through ``/proc/PID/mem`` is racy: another thread
of the target can change the memory after we read it and before the kernel acts
on it. So never answer CONTINUE on the strength of a pointer argument; act on
your own copy instead (:meth:`Verdict.inject` opens the file *here* and hands the
target the fd). ``docs/kernel.md`` explains the limits.
"""

from __future__ import annotations

import errno
import os
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass

from callgate.errors import CallgateError
from callgate.kernel.binding import (
    SECCOMP_ADDFD_FLAG_SEND,
    SECCOMP_USER_NOTIF_FLAG_CONTINUE,
    Notification,
    SeccompError,
    notif_addfd,
    notif_id_valid,
    notif_recv,
    notif_send,
)

PATH_MAX = 4096


class TargetGone(CallgateError, LookupError):
    """The notification's target died or moved on; what was read from it means nothing."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """How to answer one notification. Build it with the class methods."""

    kind: str
    value: int = 0

    @classmethod
    def allow(cls) -> Verdict:
        """Let the kernel run the syscall as the target asked (``FLAG_CONTINUE``).

        Only safe when the decision did not depend on memory the target can change.
        """
        return cls("continue")

    @classmethod
    def deny(cls, err: int = errno.EPERM) -> Verdict:
        return cls("error", err)

    @classmethod
    def returning(cls, value: int) -> Verdict:
        return cls("value", value)

    @classmethod
    def inject(cls, fd: int) -> Verdict:
        """Install a copy of our ``fd`` in the target and return its number from the syscall.

        The supervisor closes ``fd`` after answering.
        """
        return cls("inject", fd)


class TargetMemory:
    """Reads the memory of a notification's target through ``/proc/PID/mem``.

    Every read is followed by ``NOTIF_ID_VALID``: if the target died and its pid was
    recycled, we might have read a stranger's memory, and :class:`TargetGone` says so.
    """

    def __init__(self, listener: int, notification: Notification) -> None:
        self._listener = listener
        self._notif = notification

    def read(self, address: int, size: int) -> bytes:
        try:
            fd = os.open(f"/proc/{self._notif.pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise TargetGone(f"cannot open the memory of pid {self._notif.pid}: {exc}") from None
        try:
            data = os.pread(fd, size, address)
        except OSError as exc:
            self._check_valid()
            raise OSError(exc.errno, f"target address {address:#x} is not readable") from None
        finally:
            os.close(fd)
        self._check_valid()
        return data

    def read_cstring(self, address: int, limit: int = PATH_MAX) -> bytes:
        """A NUL-terminated string of at most ``limit`` bytes, read page by page."""
        out = b""
        while len(out) < limit:
            here = address + len(out)
            chunk = self.read(here, min(4096 - here % 4096, limit - len(out)))
            end = chunk.find(b"\0")
            if end >= 0:
                return out + chunk[:end]
            if not chunk:
                break
            out += chunk
        raise ValueError(f"no NUL within {limit} bytes at {address:#x}")

    def _check_valid(self) -> None:
        if not notif_id_valid(self._listener, self._notif.id):
            raise TargetGone(f"notification {self._notif.id} is no longer pending")


Decide = Callable[[Notification, TargetMemory], Verdict]


class Supervisor:
    """Answers every notification on ``listener`` with ``decide``, from a daemon thread.

    ``decide`` raising answers EPERM (fail closed) and is recorded in ``errors``.
    The thread ends by itself when every supervised process is gone, or on :meth:`stop`.
    The supervisor owns ``listener`` and closes it.
    """

    def __init__(self, listener: int, decide: Decide) -> None:
        self._listener = listener
        self._decide = decide
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._lock = threading.Lock()  # guards closing against a concurrent stop()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="callgate-supervisor", daemon=True)
        self.answered = 0
        self.errors: list[BaseException] = []

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def __enter__(self) -> Supervisor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop answering; syscalls still parked then fail with ENOSYS once the fd closes."""
        with self._lock:
            if not self._closed:
                os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout)
        elif not self._thread.ident:
            self._close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _serve(self) -> None:
        poller = select.poll()
        poller.register(self._listener, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while True:
                events = dict(poller.poll())
                if self._wake_r in events:
                    return
                if events.get(self._listener, 0) & select.POLLIN:
                    if not self._answer_one():
                        return
                elif events.get(self._listener, 0) & (select.POLLHUP | select.POLLERR):
                    return  # every process the filter applied to is gone
        finally:
            self._close()

    def _answer_one(self) -> bool:
        """Answer one notification; False when the listener itself is broken."""
        try:
            notif = notif_recv(self._listener)
        except SeccompError as exc:
            if exc.errno == errno.ENOENT:
                return True  # the target was interrupted before we read it
            self.errors.append(exc)
            return False
        try:
            verdict = self._decide(notif, TargetMemory(self._listener, notif))
        except TargetGone:
            verdict = Verdict.deny(errno.EPERM)  # if it is really gone, sending says ENOENT
        except Exception as exc:
            self.errors.append(exc)
            verdict = Verdict.deny(errno.EPERM)
        try:
            self._send(notif, verdict)
            self.answered += 1
        except SeccompError as exc:
            if exc.errno != errno.ENOENT:  # ENOENT: the target died meanwhile
                self.errors.append(exc)
        return True

    def _send(self, notif: Notification, verdict: Verdict) -> None:
        if verdict.kind == "continue":
            notif_send(self._listener, notif.id, flags=SECCOMP_USER_NOTIF_FLAG_CONTINUE)
        elif verdict.kind == "error":
            notif_send(self._listener, notif.id, error=verdict.value)
        elif verdict.kind == "value":
            notif_send(self._listener, notif.id, val=verdict.value)
        elif verdict.kind == "inject":
            try:
                notif_addfd(
                    self._listener,
                    notif.id,
                    verdict.value,
                    newfd_flags=os.O_CLOEXEC,
                    flags=SECCOMP_ADDFD_FLAG_SEND,
                )
            finally:
                os.close(verdict.value)
        else:
            raise ValueError(f"unknown verdict {verdict.kind!r}")

    def _close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                for fd in (self._listener, self._wake_r, self._wake_w):
                    os.close(fd)
