"""Load OCI/Docker seccomp JSON profiles as a kernel section, the way Docker + runc read them.

A profile is *resolved* for one target: an architecture, a capability set and a
kernel version (:class:`OciTarget`). Resolution follows moby's
``profiles/seccomp`` (``archMap``, ``includes``/``excludes``) and runc's
``libcontainer/seccomp`` (actions, errno defaults, argument handling, the
``-ENOSYS`` stub). Where runc is not a plain AND of argument checks we do what it
does; ``docs/policy.md`` lists each case:

* several checks on the *same* argument index in one entry: runc turns **every**
  check of that entry into its own rule, so the checks are ORed (libseccomp cannot
  AND two checks on one argument);
* an entry whose action equals the default action is dropped;
* a name the target arch does not know is skipped;
* ``SCMP_CMP_MASKED_EQ`` compares against ``valueTwo & value``, as libseccomp does;
* ``SCMP_ACT_KILL`` is ``KILL_THREAD``; ``SCMP_ACT_ERRNO``/``SCMP_ACT_TRACE``
  without ``errnoRet`` return ``EPERM`` (1);
* no ``flags`` key means ``SECCOMP_FILTER_FLAG_SPEC_ALLOW``, as runc sets it;
* a call from another architecture gets libseccomp's default bad-arch action,
  ``KILL_THREAD``.
"""

from __future__ import annotations

import errno
import json
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from callgate.arch import Arch, UnknownArchError, get_arch, native_arch
from callgate.bpf.actions import (
    MAX_ERRNO,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_DATA,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
    action_of,
)
from callgate.errors import CallgateError
from callgate.policy.errors import Problem, ProblemList
from callgate.policy.loaded import LoadResult
from callgate.policy.model import ArgCheck, Layer, Op, Policy, Rule, Section
from callgate.policy.names import is_known_syscall, suggestion, syscall_arches

# SCMP_ACT_* -> (action, whether errnoRet sets its data).
OCI_ACTIONS: dict[str, tuple[int, bool]] = {
    "SCMP_ACT_KILL": (SECCOMP_RET_KILL_THREAD, False),
    "SCMP_ACT_KILL_THREAD": (SECCOMP_RET_KILL_THREAD, False),
    "SCMP_ACT_KILL_PROCESS": (SECCOMP_RET_KILL_PROCESS, False),
    "SCMP_ACT_TRAP": (SECCOMP_RET_TRAP, False),
    "SCMP_ACT_ERRNO": (SECCOMP_RET_ERRNO, True),
    "SCMP_ACT_TRACE": (SECCOMP_RET_TRACE, True),
    "SCMP_ACT_ALLOW": (SECCOMP_RET_ALLOW, False),
    "SCMP_ACT_LOG": (SECCOMP_RET_LOG, False),
    "SCMP_ACT_NOTIFY": (SECCOMP_RET_USER_NOTIF, False),
}
OCI_OPS: dict[str, Op] = {
    "SCMP_CMP_NE": Op.NE,
    "SCMP_CMP_LT": Op.LT,
    "SCMP_CMP_LE": Op.LE,
    "SCMP_CMP_EQ": Op.EQ,
    "SCMP_CMP_GE": Op.GE,
    "SCMP_CMP_GT": Op.GT,
    "SCMP_CMP_MASKED_EQ": Op.MASKED_EQ,
}
# Every SCMP_ARCH_* runc accepts; only some have a callgate syscall table.
SCMP_ARCHES = (
    "SCMP_ARCH_X86 SCMP_ARCH_X86_64 SCMP_ARCH_X32 SCMP_ARCH_ARM SCMP_ARCH_AARCH64 "
    "SCMP_ARCH_MIPS SCMP_ARCH_MIPS64 SCMP_ARCH_MIPS64N32 SCMP_ARCH_MIPSEL SCMP_ARCH_MIPSEL64 "
    "SCMP_ARCH_MIPSEL64N32 SCMP_ARCH_PPC SCMP_ARCH_PPC64 SCMP_ARCH_PPC64LE SCMP_ARCH_RISCV64 "
    "SCMP_ARCH_S390 SCMP_ARCH_S390X SCMP_ARCH_LOONGARCH64"
).split()
# callgate arch -> (SCMP_ARCH_* name, the name moby's includes/excludes "arches" use).
ARCH_NAMES: dict[str, tuple[str, str]] = {
    "x86_64": ("SCMP_ARCH_X86_64", "amd64"),
    "x86": ("SCMP_ARCH_X86", "x86"),
    "x32": ("SCMP_ARCH_X32", "x32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "arm64"),
    "arm": ("SCMP_ARCH_ARM", "arm"),
    "riscv64": ("SCMP_ARCH_RISCV64", "riscv64"),
    "s390x": ("SCMP_ARCH_S390X", "s390x"),
    "ppc64le": ("SCMP_ARCH_PPC64LE", "ppc64le"),
}
# Filter flags runtime-spec defines (runc knows all but the last).
OCI_FLAGS = (
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
)
RUNC_DEFAULT_FLAGS = ("SECCOMP_FILTER_FLAG_SPEC_ALLOW",)
# libseccomp's default action for a call from an architecture the filter lacks.
BAD_ARCH_ACTION = SECCOMP_RET_KILL_THREAD
ENOSYS_RET = SECCOMP_RET_ERRNO | errno.ENOSYS

_TOP_KEYS = ("defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls",
             "flags", "listenerPath", "listenerMetadata")
_SYSCALL_KEYS = ("names", "name", "action", "errnoRet", "args", "comment", "includes",
                 "excludes")
_ARG_KEYS = ("index", "value", "valueTwo", "op")
_FILTER_KEYS = ("caps", "arches", "minKernel")
_ARCHMAP_KEYS = ("architecture", "subArchitectures")
_U64 = (1 << 64) - 1


class OciTargetError(CallgateError, ValueError):
    """An arch, capability or kernel version that an OCI profile cannot be resolved for."""


@dataclass(frozen=True)
class OciTarget:
    """What an OCI profile is resolved for.

    Defaults (:meth:`resolve`): the running machine's arch, **no** capabilities (so
    ``includes.caps`` entries are left out and ``excludes.caps`` entries kept: the
    unprivileged reading), and the running kernel's ``major.minor``.
    """

    arch: Arch
    caps: frozenset[str]
    kernel_version: tuple[int, int]

    @classmethod
    def resolve(
        cls,
        arch: str | None = None,
        caps: Iterable[str] | str | None = None,
        kernel_version: str | tuple[int, int] | None = None,
        source: str = "<policy>",
    ) -> OciTarget:
        try:
            target_arch = get_arch(arch) if arch else native_arch()
        except UnknownArchError as exc:
            raise OciTargetError(f"{source}: {exc}") from None
        if target_arch.is_gate_layer:
            raise OciTargetError(f"{source}: an OCI profile is a kernel filter; arch must be a "
                                 f"kernel arch ({', '.join(ARCH_NAMES)}), not {arch!r}")
        if kernel_version is None:
            kernel_version = platform.release()
        return cls(target_arch, normalize_caps(caps or ()), parse_kernel_version(kernel_version))

    @property
    def scmp_arch(self) -> str:
        return ARCH_NAMES[self.arch.name][0]

    @property
    def moby_arch(self) -> str:
        return ARCH_NAMES[self.arch.name][1]


def normalize_caps(caps: Iterable[str] | str) -> frozenset[str]:
    """``sys_admin``, ``CAP_SYS_ADMIN`` -> ``CAP_SYS_ADMIN`` (profiles spell caps that way)."""
    if isinstance(caps, str):
        caps = caps.split(",")
    out = set()
    for cap in caps:
        cap = cap.strip().upper()
        if cap:
            out.add(cap if cap.startswith("CAP_") else f"CAP_{cap}")
    return frozenset(out)


def parse_kernel_version(version: str | tuple[int, int]) -> tuple[int, int]:
    """``"6.18.44-fc"`` / ``"5.8"`` / ``(5, 8)`` -> ``(major, minor)``; the rest is ignored,
    as moby ignores it."""
    if isinstance(version, tuple):
        if len(version) == 2 and all(isinstance(v, int) and v >= 0 for v in version):
            return version
        raise OciTargetError(f"kernel version {version!r} must be (major, minor)")
    if not isinstance(version, str):
        raise OciTargetError(f"kernel version {version!r} must be a string like 5.8 or (5, 8)")
    m = re.match(r"^\s*(\d+)\.(\d+)", version)
    if not m:
        raise OciTargetError(f"kernel version {version!r} is not like 5.8 or 6.18.44")
    return int(m.group(1)), int(m.group(2))


def load_oci_text(text: str, source: str, target: OciTarget) -> LoadResult:
    """Parse an OCI/Docker seccomp profile and resolve it for ``target``."""
    problems = ProblemList(source)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.error("", f"not valid JSON: {exc}")
    except RecursionError:
        problems.error("", "not valid JSON: nested too deeply")
    problems.raise_if_any()
    reader = _ProfileReader(problems, target)
    result = reader.read(doc)
    problems.raise_if_any()
    assert result is not None
    section, paths, flags = result
    policy = Policy(kernel=section, source=source, flags=flags)
    return LoadResult(policy, {Layer.KERNEL: paths}, tuple(problems.warnings), "oci",
                      tuple(reader.notes))


class _ProfileReader:
    def __init__(self, problems: ProblemList, target: OciTarget) -> None:
        self.problems = problems
        self.target = target
        self.notes: list[Problem] = []

    def note(self, path: str, message: str) -> None:
        self.notes.append(Problem(self.problems.source, path, message))

    def read(self, doc: Any) -> tuple[Section, tuple[str, ...], tuple[str, ...]] | None:
        if not isinstance(doc, dict):
            self.problems.error("", f"a seccomp profile is a JSON object, got {_kind(doc)}")
            return None
        doc = _canonical_keys(doc, "", _TOP_KEYS, self.problems)
        for key in ("listenerPath", "listenerMetadata"):
            if key in doc:
                self.problems.warn(key, "ignored: callgate does not connect to a seccomp agent; "
                                   "SCMP_ACT_NOTIFY calls go to the supervisor the host sets up")
        if "defaultAction" not in doc:
            self.problems.error("defaultAction", "is required (runc treats a profile without "
                                "defaultAction or syscalls as 'no seccomp at all'); e.g. "
                                "\"SCMP_ACT_ERRNO\"")
            return None
        default = self._action(doc["defaultAction"], doc.get("defaultErrnoRet"),
                               "defaultAction", "defaultErrnoRet")
        flags = self._flags(doc.get("flags"))
        arches = self._architectures(doc)
        syscalls = doc.get("syscalls")
        syscalls = [] if syscalls is None else syscalls
        if not isinstance(syscalls, list):
            self.problems.error("syscalls", f"must be an array, got {_kind(syscalls)}")
            return None
        rules: list[Rule] = []
        paths: list[str] = []
        largest = 0
        for i, entry in enumerate(syscalls):
            for path, rule, numbers in self._entry(entry, f"syscalls[{i}]", default):
                largest = max([largest, *numbers])
                if rule is not None:
                    rules.append(rule)
                    paths.append(path)
        if default is None or self.problems.errors:
            return None
        enosys_above = None
        if (arches is not None and self.target.scmp_arch in arches and largest
                and action_of(default) not in (SECCOMP_RET_ALLOW, SECCOMP_RET_LOG,
                                               SECCOMP_RET_TRACE)
                and default != ENOSYS_RET):
            enosys_above = largest
        section = Section(default=default, rules=tuple(rules), mismatch_action=BAD_ARCH_ACTION,
                          enosys_above=enosys_above)
        return section, tuple(paths), flags

    def _action(self, name: Any, errno_ret: Any, path: str, errno_path: str) -> int | None:
        if name is None:
            self.problems.error(path, f"is required; allowed: {', '.join(OCI_ACTIONS)}")
            return None
        if not isinstance(name, str) or name not in OCI_ACTIONS:
            self.problems.error(path, f"unknown action {name!r}{suggestion(str(name), OCI_ACTIONS)}"
                                f"; allowed: {', '.join(OCI_ACTIONS)}")
            return None
        action, takes_data = OCI_ACTIONS[name]
        if errno_ret is None:
            return action | errno.EPERM if takes_data else action
        if not takes_data:
            self.problems.warn(errno_path, f"ignored: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE "
                               f"use it, not {name}")
            return action
        limit = MAX_ERRNO if action == SECCOMP_RET_ERRNO else SECCOMP_RET_DATA
        if not _is_uint(errno_ret) or errno_ret > limit:
            self.problems.error(errno_path, f"must be an integer 0..{limit} for {name}, got "
                                f"{errno_ret!r}")
            return None
        return action | errno_ret

    def _flags(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return RUNC_DEFAULT_FLAGS
        out = []
        for i, flag in enumerate(self._strings(value, "flags")):
            if flag not in OCI_FLAGS:
                self.problems.error(f"flags[{i}]", f"unknown filter flag {flag!r}; allowed: "
                                    f"{', '.join(OCI_FLAGS)}")
            else:
                out.append(flag)
        return tuple(dict.fromkeys(out))

    def _architectures(self, doc: Mapping[str, Any]) -> list[str] | None:
        """The resolved ``architectures`` list (moby expands ``archMap`` for the target)."""
        has_list = doc.get("architectures") not in (None, [])
        has_map = doc.get("archMap") not in (None, [])
        if has_list and has_map:
            self.problems.error("archMap", "'architectures' and 'archMap' are both given; "
                                "use one (as Docker requires)")
            return None
        if has_list:
            arches = self._strings(doc["architectures"], "architectures")
            self._check_scmp_arches(arches, "architectures")
            if arches and self.target.scmp_arch not in arches:
                self.problems.warn("architectures", f"does not list {self.target.scmp_arch}: "
                                   "runc still filters the native arch with these rules, but "
                                   "adds no -ENOSYS stub for it")
            return arches
        if not has_map:
            return []
        archmap = doc["archMap"]
        if not isinstance(archmap, list):
            self.problems.error("archMap", f"must be an array, got {_kind(archmap)}")
            return None
        resolved: list[str] = []
        for i, item in enumerate(archmap):
            path = f"archMap[{i}]"
            if not isinstance(item, dict):
                self.problems.error(path, f"must be an object {{architecture, "
                                    f"subArchitectures}}, got {_kind(item)}")
                continue
            item = _canonical_keys(item, path, _ARCHMAP_KEYS, self.problems)
            main = item.get("architecture")
            self._check_scmp_arches([main], f"{path}.architecture")
            subs = self._strings(item.get("subArchitectures") or [], f"{path}.subArchitectures")
            self._check_scmp_arches(subs, f"{path}.subArchitectures")
            if main == self.target.scmp_arch and not resolved:
                resolved = [main, *subs]
        if not resolved:
            self.note("archMap", f"has no entry for {self.target.scmp_arch}: Docker would pass no "
                      "architectures, so only the native arch is filtered and runc adds no "
                      "-ENOSYS stub")
        return resolved

    def _check_scmp_arches(self, arches: list[Any], path: str) -> None:
        for i, arch in enumerate(arches):
            if arch not in SCMP_ARCHES:
                where = path if len(arches) == 1 and path.endswith("architecture") else \
                    f"{path}[{i}]"
                self.problems.error(where, f"unknown architecture {arch!r}"
                                    f"{suggestion(str(arch), SCMP_ARCHES)}; allowed: SCMP_ARCH_*"
                                    f" names such as SCMP_ARCH_X86_64, SCMP_ARCH_AARCH64")

    def _entry(self, entry: Any, path: str, default: int | None
               ) -> list[tuple[str, Rule | None, list[int]]]:
        """Rules for one ``syscalls[]`` entry, with the numbers its names have on the target."""
        if not isinstance(entry, dict):
            self.problems.error(path, f"must be an object with names and action, got "
                                f"{_kind(entry)}")
            return []
        entry = _canonical_keys(entry, path, _SYSCALL_KEYS, self.problems)
        action = self._action(entry.get("action"), entry.get("errnoRet"), f"{path}.action",
                              f"{path}.errnoRet")
        names = self._names(entry, path)
        args = self._args(entry.get("args"), f"{path}.args")
        if not (self._applies(entry.get("excludes"), f"{path}.excludes", include=False)
                and self._applies(entry.get("includes"), f"{path}.includes", include=True)):
            return []
        if action is None or args is None:
            return []
        numbers = [self.target.arch.numbers[n] for n in names if n in self.target.arch.numbers]
        present = tuple(n for n in names if n in self.target.arch.numbers)
        for i, name in enumerate(names):
            if name not in self.target.arch.numbers and is_known_syscall(name):
                self.note(f"{path}.names[{i}]", f"{name!r} does not exist on "
                          f"{self.target.arch.name}; skipped, as runc skips it")
        if action == default:
            self.note(path, "its action equals defaultAction; runc drops such entries, so this "
                      "one has no effect")
            return [(path, None, numbers)]
        if not present:
            return [(path, None, numbers)]
        indexes = [a.index for a in args]
        if len(set(indexes)) < len(indexes):
            self.problems.warn(path, "checks the same argument more than once, so runc ORs "
                               "ALL its checks (one rule per check) instead of ANDing them")
            return [(f"{path}.args[{k}]", Rule(present, action, (a,)), numbers)
                    for k, a in enumerate(args)]
        return [(path, Rule(present, action, tuple(args)), numbers)]

    def _names(self, entry: Mapping[str, Any], path: str) -> list[str]:
        if entry.get("name") and entry.get("names"):
            self.problems.error(f"{path}.name", "'name' and 'names' are both given; use one "
                                "(as Docker requires)")
            return []
        if entry.get("name"):
            names = self._strings([entry["name"]], f"{path}.name")
            key = "name"
        else:
            names = self._strings(entry.get("names") or [], f"{path}.names")
            key = "names"
        if not names:
            self.problems.warn(path, "names no syscall, so it does nothing")
        for i, name in enumerate(names):
            if not is_known_syscall(name):
                where = f"{path}.name" if key == "name" else f"{path}.names[{i}]"
                self.problems.warn(where, f"unknown syscall {name!r} on every known arch"
                                   f"{suggestion(name, syscall_arches())}; skipped, as runc "
                                   "skips names it cannot resolve")
        return names

    def _args(self, value: Any, path: str) -> list[ArgCheck] | None:
        if value is None:
            return []
        if not isinstance(value, list):
            self.problems.error(path, f"must be an array, got {_kind(value)}")
            return None
        width = self.target.arch.arg_bits
        checks: list[ArgCheck] = []
        ok = True
        for k, raw in enumerate(value):
            where = f"{path}[{k}]"
            if not isinstance(raw, dict):
                self.problems.error(where, f"must be an object {{index, value, valueTwo, op}}, "
                                    f"got {_kind(raw)}")
                ok = False
                continue
            raw = _canonical_keys(raw, where, _ARG_KEYS, self.problems)
            # A missing or null number is Go's zero value, as runc reads it.
            index = _zero_if_null(raw.get("index"))
            if not _is_uint(index) or index > 5:
                self.problems.error(f"{where}.index", f"must be an integer 0..5, got {index!r}")
                ok = False
            raw_op = raw.get("op")  # any JSON value: a list or an object is unhashable
            op = OCI_OPS.get(raw_op) if isinstance(raw_op, str) else None
            if op is None:
                self.problems.error(f"{where}.op", f"unknown operator {raw_op!r}; "
                                    f"allowed: {', '.join(OCI_OPS)}")
                ok = False
            values = []
            for key in ("value", "valueTwo"):
                v = _zero_if_null(raw.get(key))
                if not _is_uint(v) or v > _U64:
                    self.problems.error(f"{where}.{key}", f"must be an unsigned 64-bit integer "
                                        f"0..{_U64} (write -1 as {_U64}), got {v!r}")
                    ok = False
                values.append(v)
            if ok and op is not None:
                mask = (1 << width) - 1
                value2 = None
                if op is Op.MASKED_EQ:
                    # libseccomp compares arg & mask with valueTwo & mask.
                    value2 = values[1] & values[0] & mask
                    if value2 != values[1] & mask:
                        self.note(f"{where}.valueTwo", "has bits outside the mask (value); "
                                  "libseccomp drops them, so callgate does too")
                checks.append(ArgCheck(index, op, values[0] & mask, value2, width))
        return checks if ok else None

    def _applies(self, value: Any, path: str, include: bool) -> bool:
        """Whether an ``includes`` (all must hold) / ``excludes`` (any drops it) keeps the entry."""
        if value is None:
            return True
        if not isinstance(value, dict):
            self.problems.error(path, f"must be an object {{caps, arches, minKernel}}, got "
                                f"{_kind(value)}")
            return False
        value = _canonical_keys(value, path, _FILTER_KEYS, self.problems)
        tests: list[bool] = []
        arches = self._strings(value.get("arches") or [], f"{path}.arches")
        if arches:
            tests.append(self.target.moby_arch in arches)
        caps = self._strings(value.get("caps") or [], f"{path}.caps")
        if caps:
            have = [cap in self.target.caps for cap in caps]
            tests.append(all(have) if include else any(have))
        min_kernel = value.get("minKernel")
        if min_kernel not in (None, ""):
            version = _min_kernel(min_kernel)
            if version is None:
                self.problems.error(f"{path}.minKernel", f"must be \"<kernel>.<major>\" such as "
                                    f"\"5.8\", got {min_kernel!r}")
                return False
            tests.append(self.target.kernel_version >= version)
        return all(tests) if include else not any(tests)

    def _strings(self, value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            self.problems.error(path, f"must be an array of strings, got {_kind(value)}")
            return []
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str) and item:
                out.append(item)
            else:
                self.problems.error(f"{path}[{i}]", f"must be a non-empty string, got {item!r}")
        return out


def _min_kernel(text: Any) -> tuple[int, int] | None:
    """moby's rule: exactly ``X.Y``, each 0..255, not ``0.0``."""
    if not isinstance(text, str):
        return None
    m = re.fullmatch(r"(\d{1,3})\.(\d{1,3})", text)
    if not m:
        return None
    version = int(m.group(1)), int(m.group(2))
    if max(version) > 255 or version == (0, 0):
        return None
    return version


def _canonical_keys(obj: Mapping[str, Any], path: str, known: tuple[str, ...],
                    problems: ProblemList) -> dict[str, Any]:
    """Match keys case-insensitively, as Go's encoding/json does; warn about unknown ones."""
    by_lower = {k.lower(): k for k in known}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        canonical = by_lower.get(key.lower())
        if canonical is None:
            where = f"{path}.{key}" if path else key
            problems.warn(where, f"unknown key, ignored (as Docker ignores it)"
                          f"{suggestion(key, known)}; known keys: {', '.join(known)}")
        else:
            out[canonical] = value
    return out


def _zero_if_null(value: Any) -> Any:
    """Go leaves a field at its zero value when the JSON says null."""
    return 0 if value is None else value


def _is_uint(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number with a fraction",
             str: "a string", list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
