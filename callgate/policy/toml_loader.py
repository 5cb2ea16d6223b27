"""Load callgate's own TOML policy language into the policy model, validating everything.

The language is taught in ``docs/policy.md``. Validation is strict on purpose: a
typo in a security policy must not silently become "no rule", so unknown keys,
unknown names, out-of-range numbers and wrong types are all errors that name the
file, the key path and what is allowed.
"""

from __future__ import annotations

import errno as linux_errno
import posixpath
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard

from callgate.arch import wasi_errno
from callgate.bpf.actions import (
    MAX_ERRNO,
    SECCOMP_RET_ERRNO,
    ActionError,
    action_of,
    data_of,
    parse_action,
)
from callgate.policy.errors import ProblemList
from callgate.policy.loaded import LoadResult
from callgate.policy.model import (
    NO_TIMING,
    ArgCheck,
    GateTiming,
    LandlockSection,
    Layer,
    Op,
    Policy,
    Rule,
    Section,
)
from callgate.policy.names import is_known_syscall, suggestion, syscall_arches, wasi_gate_names

MAX_ARG_INDEX = 5
U64 = (1 << 64) - 1
U32 = (1 << 32) - 1

# Filter flags the kernel section may request, short name -> seccomp(2) flag name.
FILTER_FLAGS: dict[str, str] = {
    "tsync": "SECCOMP_FILTER_FLAG_TSYNC",
    "log": "SECCOMP_FILTER_FLAG_LOG",
    "spec_allow": "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "wait_killable_recv": "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
}

_SECTION_KEYS = {
    Layer.GATES: ("default", "arch_mismatch", "rules", "app_gates", "jitter", "clocks"),
    Layer.KERNEL: ("default", "arch_mismatch", "rules", "flags"),
}
_LANDLOCK_KEYS = ("read", "write", "connect_tcp", "bind_tcp", "required")
_CLOCKS_KEYS = ("resolution",)
# Durations: "50us", "1ms", "1.5ms", "100ns", "1s" (µs for us too), or an integer of ns.
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)\s*")
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
#: The largest clock resolution and gate jitter a policy may ask for: a second.
MAX_TIMING_NS = 1_000_000_000
# Pseudo filesystems where write access hands over the host's own state
# (/proc/self/mem writes ignore page protections, W^X included).
_STATE_FILESYSTEMS = ("/proc", "/sys", "/dev")
_RULE_KEYS = ("names", "action", "args", "comment")
_ARG_KEYS = ("index", "op", "value", "value2", "width")
_ACTION_HELP = (
    "allow, log, trap, kill_process, kill_thread, errno(NAME|N), trace(N), user_notif"
)


def linux_errno_number(name: str) -> int:
    """``EPERM``/``eperm``/``perm`` -> the Linux errno number, for ``[kernel]`` actions."""
    key = name.strip().upper()
    key = key if key.startswith("E") and hasattr(linux_errno, key) else f"E{key}"
    value = getattr(linux_errno, key, None)
    if not isinstance(value, int):
        raise KeyError(f"{name!r} is not a Linux errno name (e.g. EPERM, ENOSYS, EACCES)")
    return value


def wasi_errno_number(name: str) -> int:
    return wasi_errno.resolve_name(name)


ERRNO_RESOLVERS: dict[Layer, Callable[[str], int]] = {
    Layer.GATES: wasi_errno_number,
    Layer.KERNEL: linux_errno_number,
}


def parse_policy_action(text: Any, layer: Layer, path: str, problems: ProblemList) -> int | None:
    """An action string -> raw return value, or None after recording why it is not one."""
    if not isinstance(text, str):
        problems.error(path, f"must be an action string ({_ACTION_HELP}), got {_kind(text)}")
        return None
    resolve = ERRNO_RESOLVERS[layer]

    def strict_resolve(name: str) -> int:
        try:
            return resolve(name)
        except KeyError as exc:
            raise ActionError(str(exc.args[0])) from None

    try:
        ret = parse_action(text, strict_resolve)
    except ActionError as exc:
        hint = "" if "known actions" in str(exc) else f"; allowed: {_ACTION_HELP}"
        problems.error(path, f"{exc}{hint}")
        return None
    if action_of(ret) == SECCOMP_RET_ERRNO and data_of(ret) > MAX_ERRNO:
        problems.error(path, f"errno {data_of(ret)} is out of range; allowed 0..{MAX_ERRNO}")
        return None
    return ret


def load_toml_text(
    text: str, source: str = "<policy>", *, gate_names: Iterable[str] | None = None
) -> LoadResult:
    """Parse and validate a TOML policy. ``gate_names``: app gates the application registers."""
    problems = ProblemList(source)
    doc: dict[str, Any] = {}
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.error("", f"not valid TOML: {exc}")
    except RecursionError:
        problems.error("", "not valid TOML: nested too deeply")
    problems.raise_if_any()
    _check_keys(doc, "", ("gates", "kernel", "landlock"), problems)
    sections: dict[Layer, Section | None] = {Layer.GATES: None, Layer.KERNEL: None}
    paths: dict[Layer, tuple[str, ...]] = {}
    flags: tuple[str, ...] = ()
    if not any(layer.value in doc for layer in Layer):
        problems.error("", "a policy needs a [gates] section, a [kernel] section, or both")
    for layer in Layer:
        if layer.value not in doc:
            continue
        table = doc[layer.value]
        if not isinstance(table, dict):
            problems.error(layer.value, f"must be a table ([{layer.value}]), got {_kind(table)}")
            continue
        reader = _SectionReader(layer, problems, gate_names)
        sections[layer] = reader.section(table)
        paths[layer] = reader.rule_paths
        if layer is Layer.KERNEL:
            flags = reader.flags
    gates_table = doc.get(Layer.GATES.value)
    timing = _timing(gates_table, problems) if isinstance(gates_table, dict) else NO_TIMING
    landlock = _landlock(doc["landlock"], problems) if "landlock" in doc else None
    problems.raise_if_any()
    policy = Policy(
        gates=sections[Layer.GATES], kernel=sections[Layer.KERNEL], source=source, flags=flags,
        landlock=landlock, timing=timing,
    )
    return LoadResult(policy, paths, tuple(problems.warnings), "toml")


class _SectionReader:
    """Reads one ``[gates]`` or ``[kernel]`` table, recording problems instead of stopping."""

    def __init__(
        self, layer: Layer, problems: ProblemList, gate_names: Iterable[str] | None
    ) -> None:
        self.layer = layer
        self.problems = problems
        self.extra_gate_names = frozenset(gate_names or ())
        self.rule_paths: tuple[str, ...] = ()
        self.flags: tuple[str, ...] = ()

    def section(self, table: Mapping[str, Any]) -> Section | None:
        name = self.layer.value
        _check_keys(table, name, _SECTION_KEYS[self.layer], self.problems)
        default = None
        if "default" not in table:
            self.problems.error(f"{name}.default", f"is required: the action when no rule matches "
                                f"({_ACTION_HELP})")
        else:
            default = parse_policy_action(table["default"], self.layer, f"{name}.default",
                                          self.problems)
        mismatch = None
        if "arch_mismatch" in table:
            mismatch = parse_policy_action(table["arch_mismatch"], self.layer,
                                           f"{name}.arch_mismatch", self.problems)
        app_gates = self._app_gates(table.get("app_gates"))
        if "flags" in table:
            self.flags = self._flags(table["flags"])
        rules = self._rules(table.get("rules", []), app_gates)
        if default is None or rules is None:
            return None
        return Section(default=default, rules=rules, mismatch_action=mismatch)

    def _app_gates(self, value: Any) -> frozenset[str]:
        path = f"{self.layer.value}.app_gates"
        if value is None:
            return frozenset()
        names = _string_list(value, path, self.problems)
        wasi = wasi_gate_names()
        for i, gate in enumerate(names):
            if gate in wasi:
                self.problems.error(f"{path}[{i}]", f"{gate!r} is a WASI gate; app_gates lists "
                                    "only the application's own gates")
        return frozenset(names)

    def _flags(self, value: Any) -> tuple[str, ...]:
        path = f"{self.layer.value}.flags"
        out = []
        for i, flag in enumerate(_string_list(value, path, self.problems)):
            key = flag.lower().removeprefix("seccomp_filter_flag_")
            if key not in FILTER_FLAGS:
                self.problems.error(f"{path}[{i}]", f"unknown filter flag {flag!r}; allowed: "
                                    f"{', '.join(FILTER_FLAGS)}")
            else:
                out.append(FILTER_FLAGS[key])
        return tuple(dict.fromkeys(out))

    def _rules(self, value: Any, app_gates: frozenset[str]) -> tuple[Rule, ...] | None:
        base = f"{self.layer.value}.rules"
        if not isinstance(value, list):
            self.problems.error(base, f"must be an array of tables ([[{base}]]), got "
                                f"{_kind(value)}")
            return None
        rules: list[Rule] = []
        paths: list[str] = []
        ok = True
        for i, raw in enumerate(value):
            path = f"{base}[{i}]"
            rule = self._rule(raw, path, app_gates)
            if rule is None:
                ok = False
            else:
                rules.append(rule)
                paths.append(path)
        self.rule_paths = tuple(paths)
        return tuple(rules) if ok else None

    def _rule(self, raw: Any, path: str, app_gates: frozenset[str]) -> Rule | None:
        if not isinstance(raw, dict):
            self.problems.error(path, f"must be a table with names and action, got {_kind(raw)}")
            return None
        before = len(self.problems.errors)
        _check_keys(raw, path, _RULE_KEYS, self.problems)
        for key in ("names", "action"):
            if key not in raw:
                self.problems.error(f"{path}.{key}", "is required")
        names = self._names(raw.get("names", []), f"{path}.names", app_gates)
        action = None
        if "action" in raw:
            action = parse_policy_action(raw["action"], self.layer, f"{path}.action",
                                         self.problems)
        comment = raw.get("comment", "")
        if not isinstance(comment, str):
            self.problems.error(f"{path}.comment", f"must be a string, got {_kind(comment)}")
        args_raw = raw.get("args", [])
        args: list[ArgCheck] = []
        if not isinstance(args_raw, list):
            self.problems.error(f"{path}.args", f"must be an array of {{index, op, value}} "
                                f"tables, got {_kind(args_raw)}")
        else:
            for j, arg in enumerate(args_raw):
                check = parse_arg_check(arg, f"{path}.args[{j}]", self.problems)
                if check is not None:
                    args.append(check)
        if len(self.problems.errors) > before or action is None:
            return None
        return Rule(names=names, action=action, args=tuple(args),
                    comment=comment if isinstance(comment, str) else "")

    def _names(self, value: Any, path: str, app_gates: frozenset[str]) -> tuple[str, ...]:
        names = _string_list(value, path, self.problems)
        if isinstance(value, list) and not value:
            self.problems.error(path, "must list at least one name")
        for i, name in enumerate(names):
            if self.layer is Layer.KERNEL:
                if not is_known_syscall(name):
                    self.problems.error(f"{path}[{i}]", f"unknown syscall {name!r} on every "
                                        f"known arch{suggestion(name, syscall_arches())}")
            else:
                known = wasi_gate_names() | app_gates | self.extra_gate_names
                if name not in known:
                    hint = suggestion(name, known)
                    self.problems.error(
                        f"{path}[{i}]",
                        f"unknown gate {name!r}{hint}; gates are WASI preview1 functions, or "
                        "app-defined gates the application registers or [gates] app_gates lists",
                    )
        return tuple(names)


def parse_arg_check(raw: Any, path: str, problems: ProblemList) -> ArgCheck | None:
    """``{index, op, value, value2?, width?}`` -> :class:`ArgCheck`, or None with problems."""
    if not isinstance(raw, dict):
        problems.error(path, f"must be a table {{index, op, value}}, got {_kind(raw)}")
        return None
    before = len(problems.errors)
    _check_keys(raw, path, _ARG_KEYS, problems)
    for key in ("index", "op", "value"):
        if key not in raw:
            problems.error(f"{path}.{key}", "is required")
    index = raw.get("index")
    if "index" in raw and (not _is_int(index) or not 0 <= index <= MAX_ARG_INDEX):
        problems.error(f"{path}.index", f"must be an integer 0..{MAX_ARG_INDEX} (syscalls have "
                       f"six arguments), got {index!r}")
    op = None
    if "op" in raw:
        try:
            op = Op(raw["op"])
        except ValueError:
            problems.error(f"{path}.op", f"unknown op {raw['op']!r}; allowed: "
                           f"{', '.join(o.value for o in Op)}")
    width = raw.get("width", 64)
    if not _is_int(width) or width not in (32, 64):
        problems.error(f"{path}.width", f"must be 32 or 64, got {width!r}")
        width = 64
    value = None
    if "value" in raw:
        value = parse_arg_value(raw["value"], width, f"{path}.value", problems)
    value2 = None
    if op is Op.MASKED_EQ:
        if "value2" not in raw:
            problems.error(f"{path}.value2", "is required for op masked_eq: the check is "
                           "arg & value == value2")
        else:
            value2 = parse_arg_value(raw["value2"], width, f"{path}.value2", problems)
    elif "value2" in raw and op is not None:
        problems.error(f"{path}.value2", f"is only used by op masked_eq, not {op.value}")
    if len(problems.errors) > before or op is None or value is None or not _is_int(index):
        return None  # (an index that is not an integer is among the errors)
    return ArgCheck(index=index, op=op, value=value, value2=value2, width=width)


def parse_arg_value(raw: Any, width: int, path: str, problems: ProblemList) -> int | None:
    """An argument constant: an integer (or integer string) fitting ``width`` bits.

    Negative numbers down to ``-2**(width-1)`` mean their two's complement, which is
    how a sign-extended C ``int`` such as ``-1`` or ``AT_FDCWD`` (-100) reaches the filter.
    """
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = int(raw.replace("_", ""), 0)
        except ValueError:
            problems.error(path, f"{raw!r} is not an integer (write e.g. 42, 0x2a, -100)")
            return None
    if not _is_int(value):
        problems.error(path, f"must be an integer, got {_kind(raw)}")
        return None
    top = (1 << width) - 1
    low = -(1 << (width - 1))
    if not low <= value <= top:
        problems.error(path, f"{raw!r} does not fit in {width} bits; allowed {low}..{top:#x} "
                       "(negative values mean their two's complement)")
        return None
    return value & top


def parse_duration(raw: Any, path: str, problems: ProblemList) -> int | None:
    """``"50us"``, ``"1ms"``, ``"1.5ms"``, ``"100ns"``, ``"1s"`` or an integer of ns -> ns."""
    if _is_int(raw):
        ns = raw
    elif isinstance(raw, str) and (m := _DURATION.fullmatch(raw)):
        ns = round(float(m[1]) * _DURATION_UNITS[m[2]])
    else:
        problems.error(path, f"must be a duration such as \"50us\", \"1ms\" or \"100ns\" (or "
                       f"an integer of nanoseconds), got {raw!r}")
        return None
    if not 0 <= ns <= MAX_TIMING_NS:
        problems.error(path, f"{raw!r} is out of range; allowed 0 (off) up to 1s")
        return None
    return ns


def format_duration(ns: int) -> str:
    """``50000`` -> ``"50us"``: the largest unit that writes ``ns`` exactly."""
    for unit, scale in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if ns >= scale and ns % scale == 0:
            return f"{ns // scale}{unit}"
    return f"{ns}ns"


def _timing(gates: Mapping[str, Any], problems: ProblemList) -> GateTiming:
    """``[gates] jitter`` and ``[gates.clocks] resolution`` (docs/policy.md, docs/covert.md)."""
    jitter = 0
    if "jitter" in gates:
        jitter = parse_duration(gates["jitter"], "gates.jitter", problems) or 0
    resolution = 0
    clocks = gates.get("clocks")
    if clocks is not None:
        if not isinstance(clocks, dict):
            problems.error("gates.clocks", f"must be a table ([gates.clocks]), got "
                           f"{_kind(clocks)}")
        else:
            _check_keys(clocks, "gates.clocks", _CLOCKS_KEYS, problems)
            if "resolution" in clocks:
                resolution = parse_duration(clocks["resolution"], "gates.clocks.resolution",
                                            problems) or 0
    if not jitter and not resolution:
        return NO_TIMING
    return GateTiming(clock_resolution_ns=resolution, jitter_ns=jitter)


def _landlock(table: Any, problems: ProblemList) -> LandlockSection | None:
    """``[landlock]``: extra paths and TCP ports for the locked-down host (docs/policy.md)."""
    if not isinstance(table, dict):
        problems.error("landlock", f"must be a table ([landlock]), got {_kind(table)}")
        return None
    _check_keys(table, "landlock", _LANDLOCK_KEYS, problems)
    read = _landlock_paths(table.get("read", []), "landlock.read", problems)
    write = _landlock_paths(table.get("write", []), "landlock.write", problems)
    for key, paths in (("read", read), ("write", write)):
        for i, path in enumerate(paths):
            _landlock_path_warnings(path, f"landlock.{key}[{i}]", key, write, problems)
    ports = {key: _ports(table.get(key, []), f"landlock.{key}", problems)
             for key in ("connect_tcp", "bind_tcp")}
    required = table.get("required", False)
    if not isinstance(required, bool):
        problems.error("landlock.required", f"must be true or false, got {_kind(required)}")
        required = False
    return LandlockSection(read=tuple(read), write=tuple(write), connect_tcp=ports["connect_tcp"],
                           bind_tcp=ports["bind_tcp"], required=required)


def _landlock_paths(value: Any, path: str, problems: ProblemList) -> list[str]:
    out = []
    for i, item in enumerate(_string_list(value, path, problems)):
        where = f"{path}[{i}]"
        normal = posixpath.normpath(item) if item.startswith("/") else ""
        if "\0" in item:
            problems.error(where, "must not contain a NUL byte")
        elif not item.startswith("/"):
            problems.error(where, f"{item!r} is relative; write an absolute path (rules are "
                           "attached when the host locks down, whatever its directory is)")
        elif ".." in item.split("/"):
            problems.error(where, f"{item!r} contains '..'; write the path it means (Landlock "
                           "attaches the rule to the file the path names)")
        elif normal != item:
            problems.error(where, f"{item!r} is not in normal form; write {normal!r}")
        else:
            out.append(item)
    return out


def _landlock_path_warnings(path: str, where: str, key: str, write: list[str],
                            problems: ProblemList) -> None:
    if path == "/":
        problems.warn(where, "'/' grants the whole filesystem: Landlock then confines nothing")
    if key == "read" and path in write:
        problems.warn(where, f"{path!r} is also in write, which includes reading")
    if path.startswith("/proc/"):
        problems.warn(where, f"{path!r}: procfs makes new inodes for a process's files when "
                      "its cache drops them, and a rule stays with the old one, so it can stop "
                      "matching at any time; grant '/proc' or nothing beneath it")
    if key == "write" and any(path == top or path.startswith(f"{top}/")
                              for top in _STATE_FILESYSTEMS):
        problems.warn(where, f"{path!r} is on a pseudo filesystem whose files are the host's "
                      "own state (writing /proc/self/mem changes code, W^X or not); grant read "
                      "at most")


def _ports(value: Any, path: str, problems: ProblemList) -> tuple[int, ...]:
    if not isinstance(value, list):
        problems.error(path, f"must be an array of TCP port numbers, got {_kind(value)}")
        return ()
    ports = []
    for i, item in enumerate(value):
        if not _is_int(item) or not 0 <= item <= 0xFFFF:
            problems.error(f"{path}[{i}]", f"must be a TCP port number 0..65535, got {item!r}")
        else:
            ports.append(item)
    return tuple(dict.fromkeys(ports))


def _check_keys(table: Mapping[str, Any], path: str, allowed: Iterable[str],
                problems: ProblemList) -> None:
    allowed = tuple(allowed)
    for key in table:
        if key not in allowed:
            where = f"{path}.{key}" if path else key
            problems.error(where, f"unknown key{suggestion(key, allowed)}; allowed keys: "
                           f"{', '.join(allowed)}")


def _string_list(value: Any, path: str, problems: ProblemList) -> list[str]:
    if not isinstance(value, list):
        problems.error(path, f"must be an array of strings, got {_kind(value)}")
        return []
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            problems.error(f"{path}[{i}]", f"must be a non-empty string, got {item!r}")
        else:
            out.append(item)
    return out


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)
