"""WASI preview1 errno values (``$errno`` in ``wasi_snapshot_preview1.witx``) and host mapping.

WASI numbers its errors differently from Linux (EPERM is 63, not 1). Gates answer
in WASI numbers, so ``errno(EPERM)`` in a policy's ``[gates]`` section means WASI
63; a plain number passes through unchanged.
"""

from __future__ import annotations

import errno as _host

_WITX_ORDER = (
    "SUCCESS 2BIG ACCES ADDRINUSE ADDRNOTAVAIL AFNOSUPPORT AGAIN ALREADY BADF BADMSG BUSY "
    "CANCELED CHILD CONNABORTED CONNREFUSED CONNRESET DEADLK DESTADDRREQ DOM DQUOT EXIST FAULT "
    "FBIG HOSTUNREACH IDRM ILSEQ INPROGRESS INTR INVAL IO ISCONN ISDIR LOOP MFILE MLINK MSGSIZE "
    "MULTIHOP NAMETOOLONG NETDOWN NETRESET NETUNREACH NFILE NOBUFS NODEV NOENT NOEXEC NOLCK "
    "NOLINK NOMEM NOMSG NOPROTOOPT NOSPC NOSYS NOTCONN NOTDIR NOTEMPTY NOTRECOVERABLE NOTSOCK "
    "NOTSUP NOTTY NXIO OVERFLOW OWNERDEAD PERM PIPE PROTO PROTONOSUPPORT PROTOTYPE RANGE ROFS "
    "SPIPE SRCH STALE TIMEDOUT TXTBSY XDEV NOTCAPABLE"
).split()

# "EPERM" -> 63, "ENOSYS" -> 52, ... ("ESUCCESS" -> 0).
WASI_ERRNO: dict[str, int] = {f"E{name}": nr for nr, name in enumerate(_WITX_ORDER)}
WASI_ERRNO_NAMES: dict[int, str] = {nr: name for name, nr in WASI_ERRNO.items()}

ESUCCESS = 0
EBADF = WASI_ERRNO["EBADF"]
EFAULT = WASI_ERRNO["EFAULT"]
EINVAL = WASI_ERRNO["EINVAL"]
EIO = WASI_ERRNO["EIO"]
ENOSYS = WASI_ERRNO["ENOSYS"]
EPERM = WASI_ERRNO["EPERM"]
ENOTCAPABLE = WASI_ERRNO["ENOTCAPABLE"]

_FROM_HOST: dict[int, int] = {
    getattr(_host, name): nr for name, nr in WASI_ERRNO.items() if hasattr(_host, name)
}
_FROM_HOST[_host.EOPNOTSUPP] = WASI_ERRNO["ENOTSUP"]
_FROM_HOST[_host.EWOULDBLOCK] = WASI_ERRNO["EAGAIN"]


def from_host(host_errno: int) -> int:
    """Translate a Linux errno into WASI's numbering; anything WASI lacks becomes EIO."""
    return _FROM_HOST.get(host_errno, EIO)


def resolve_name(name: str) -> int:
    """``"EPERM"``/``"perm"`` -> WASI number, for policy files' ``errno(NAME)``."""
    key = name.strip().upper()
    key = key if key.startswith("E") and key in WASI_ERRNO else f"E{key}"
    try:
        return WASI_ERRNO[key]
    except KeyError:
        raise KeyError(f"{name!r} is not a WASI errno name (e.g. EPERM, ENOSYS, EBADF)") from None
