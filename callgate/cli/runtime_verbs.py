"""``callgate call`` (run one export of a plugin) and ``callgate gates`` (print the gate table).

``call`` picks the calling convention from the export's signature: a bytes-ABI
function ``(i32, i32) -> i64`` gets ``--input`` (a file, or ``-`` for stdin) and
its output goes to stdout as raw bytes; any other all-integer export takes its
integer arguments on the command line and prints its results.

Without ``--policy``, ``call`` applies the same least-privilege default as ``run``
(``policies/default.toml``: stdio, args, env, clocks, random, exit); every gate is
allowed only when asked for by name, ``--policy allow-all``.

A plugin the policy kills (KILL_PROCESS or KILL_THREAD) makes ``call`` exit 159
(128 + SIGSYS, as a shell reports a process the kernel's seccomp killed) with one
stderr line naming the gate and its number. A guest that exits (WASI
``proc_exit``) makes it exit with the guest's code.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable
from typing import Any

from callgate.arch import GATE_ARCH
from callgate.bpf.insn import Insn
from callgate.cli.cache_verb import add_cache_options, use_cache_options
from callgate.cli.completion_verb import completes_filters
from callgate.cli.inputs import (
    load_program_input,
    read_filter_input,
    shipped_policy,
)
from callgate.errors import CallgateError
from callgate.gates.app import AppGates
from callgate.gates.errors import GateViolation
from callgate.gates.spec import GuestExit
from callgate.policy import Policy
from callgate.runtime import abi
from callgate.runtime.audit import AuditSink
from callgate.runtime.limits import MAX_FUEL, MAX_STORE_CAP, MAX_TIMEOUT, Limits
from callgate.runtime.loading import Signature

KILLED_EXIT = 128 + 31  # SIGSYS
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """``65536``, ``64K``, ``16MiB``, ``1G`` -> bytes (binary units), up to what a store
    cap can hold."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 65536, 64K, 16M)")
    unit = (match.group(2) or "").lower()[:1]
    size = int(match.group(1)) * _UNITS[unit]
    if size > MAX_STORE_CAP:
        raise argparse.ArgumentTypeError(f"size {text!r} is too large (at most "
                                         f"{MAX_STORE_CAP} bytes)")
    return size


def parse_int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def parse_fuel(text: str) -> int:
    """``--fuel``: an integer from 0 to 2**64 - 1 (wasmtime's fuel is a u64)."""
    value = parse_int(text)
    if not 0 <= value <= MAX_FUEL:
        raise argparse.ArgumentTypeError(f"fuel must be 0 to {MAX_FUEL} (2**64 - 1), "
                                         f"got {text!r}")
    return value


def limits_from(args: argparse.Namespace) -> Limits:
    """The limits ``--fuel``, ``--timeout`` and ``--memory`` asked for; the runtime's
    default memory cap when ``--memory`` is not given."""
    memory = args.memory if args.memory is not None else Limits().memory
    return Limits(fuel=args.fuel, timeout=args.timeout, memory=memory)


def parse_seconds(text: str) -> float:
    """``--timeout``: seconds, more than 0 and at most :data:`MAX_TIMEOUT` (no inf, nan)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"not a number of seconds from 0 to "
                                         f"{MAX_TIMEOUT:.0f}: {text!r}")
    return value


AUDIT_HELP = ("append audit records (JSON lines) for denied, trapped and logged calls to "
              "FILE; - writes them to stderr")


POLICY_HELP = ("a policy (.toml/.json; a shipped one by name: default, default+fs, "
               "allow-all) or a gate filter program (raw BPF, .bpf/.asm/.hex; told apart as "
               "everywhere: see docs/policy.md); default: the least-privilege default")


def gate_policy_arg(arg: str) -> Policy | str | list[Insn]:
    """``--policy``: a policy or a gate filter program, by :mod:`callgate.cli.inputs`' rule.

    A shipped name gives its :class:`Policy`; a policy file its path (the plugin loads it,
    knowing its app gates' names), or its text when read from stdin; a program (what
    ``callgate asm`` writes) its instructions, names resolved against the gate table.
    """
    given = read_filter_input(arg)
    if given.shipped is not None:
        return shipped_policy(given.shipped)
    if not given.is_policy:
        return load_program_input(given, GATE_ARCH.name)[0]
    if arg == "-":
        return given.data.decode("utf-8-sig", "replace")
    return arg


def audit_target(value: str | None) -> AuditSink | None:
    """``--audit``'s sink: ``-`` is stderr (kept open), else the file, opened now so a
    path that cannot be written is a one-line error before anything runs. The caller
    closes the sink (which writes the summaries of rate-limited records)."""
    if value is None:
        return None
    if value == "-":
        return AuditSink(stream=sys.stderr)
    try:
        return AuditSink(value)
    except OSError as exc:
        raise CallgateError(f"cannot open the audit file {value}: {exc.strerror}; give a "
                            "writable file path, or - for stderr") from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    call = subparsers.add_parser(
        "call",
        help="call one export of a wasm plugin under a gate policy and limits",
        description="Load WASM with every import mediated by POLICY's [gates] section and call "
        "FUNC. A bytes-ABI export (i32 ptr, i32 len) -> i64 reads --input and writes its "
        "output to stdout; an integer export takes ARGS and prints its results. Exit status "
        "159 if the policy kills the plugin.",
    )
    call.add_argument("wasm", metavar="WASM", help="the plugin (.wasm, or .wat text)")
    call.add_argument("function", metavar="FUNC", help="exported function to call")
    call.add_argument("args", metavar="ARGS", nargs="*", type=parse_int,
                      help="integer arguments (for integer exports)")
    call.add_argument("--input", metavar="FILE|-",
                      help="input bytes for a bytes export: a file, or - for stdin "
                      "(default: empty)")
    completes_filters(call.add_argument("--policy", metavar="P", help=POLICY_HELP))
    call.add_argument("--fuel", type=parse_fuel, metavar="N", help="fuel per call")
    call.add_argument("--timeout", type=parse_seconds, metavar="S",
                      help="wall-clock seconds per call")
    call.add_argument("--memory", type=parse_size, metavar="BYTES",
                      help="linear memory cap (e.g. 65536, 16M)")
    add_cache_options(call)
    call.add_argument("--audit", metavar="FILE", help=AUDIT_HELP)
    call.add_argument("--gates", metavar="MODULE:ATTR", type=load_app_gates,
                      help="app-defined gates: an AppGates registry importable as "
                      "MODULE:ATTR (e.g. myapp.plugins:gates)")
    add_hook_options(call)
    call.set_defaults(func=_call)

    gates = subparsers.add_parser(
        "gates",
        help="print the gate table: number, module, name, signature",
        description="Print every gate a plugin may import, in number order. Policies name "
        "these gates; raw BPF filters match their numbers.",
    )
    gates.add_argument("--gates", metavar="MODULE:ATTR", type=load_app_gates,
                       help="also list the app-defined gates of this AppGates registry")
    gates.add_argument("--json", action="store_true",
                       help="print the table as one JSON document (schema callgate.gates/1)")
    gates.set_defaults(func=_gates)


def import_spec(spec: str, what: str) -> object:
    """``package.module:attribute`` -> the object it names (``what`` names it in errors).

    Errors are ``ArgumentTypeError``s, so an option using this as its ``type`` fails as
    a usage error (exit 2) that says which part is wrong.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise argparse.ArgumentTypeError(f"cannot load {what} {spec!r}: want MODULE:ATTR "
                                         "(e.g. myapp.plugins:name)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        # A console script does not search the working directory; say where to look.
        missing = getattr(exc, "name", None) or ""
        hint = (" (is its directory on PYTHONPATH?)"
                if missing and f"{module_name}.".startswith(f"{missing}.") else "")
        raise argparse.ArgumentTypeError(f"cannot load {what} {spec!r}: {exc}{hint}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise argparse.ArgumentTypeError(f"cannot load {what} {spec!r}: module {module_name!r} "
                                         f"has no attribute {attr!r}") from None


def load_app_gates(spec: str) -> AppGates:
    """``--gates``: the AppGates registry MODULE:ATTR names."""
    value = import_spec(spec, "app gates")
    if not isinstance(value, AppGates):
        raise argparse.ArgumentTypeError(f"{spec} is a {type(value).__name__}, not AppGates")
    return value


def load_broker(spec: str) -> Callable[..., Any]:
    """``--broker``: the callable MODULE:ATTR names, answering TRAP/USER_NOTIF verdicts."""
    return _load_hook(spec, "broker")


def load_tracer(spec: str) -> Callable[..., Any]:
    """``--tracer``: the callable MODULE:ATTR names, answering TRACE verdicts."""
    return _load_hook(spec, "tracer")


def _load_hook(spec: str, what: str) -> Callable[..., Any]:
    value = import_spec(spec, what)
    if not callable(value):
        raise argparse.ArgumentTypeError(
            f"{spec} is not callable (its type is {type(value).__name__}); a {what} is a "
            "function taking a GateRequest and returning ALLOW, Errno(n) or Value(...)")
    return value


def add_hook_options(parser: argparse.ArgumentParser) -> None:
    """``--broker`` and ``--tracer``: Python that answers the policy's trap/user_notif and
    trace verdicts (without them: EPERM, ENOSYS and ENOSYS)."""
    parser.add_argument("--broker", metavar="MODULE:ATTR", type=load_broker,
                        help="broker for trap and user_notif verdicts: a callable "
                        "importable as MODULE:ATTR, taking a GateRequest and returning "
                        "ALLOW, Errno(n) or Value(...) (see docs/runtime.md)")
    parser.add_argument("--tracer", metavar="MODULE:ATTR", type=load_tracer,
                        help="tracer for trace verdicts: a callable like --broker's")


def _read_input(source: str | None) -> bytes:
    if source is None:
        return b""
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        with open(source, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CallgateError(f"cannot read --input {source}: {exc.strerror}; give a readable "
                            "file, or - for stdin") from None


def _check_arity(name: str, signature: Signature | None, args: list[int]) -> None:
    """Refuse integer arguments that do not fit the export (call_int would TypeError)."""
    if signature is None:
        return  # call_int says the export is missing, naming the ones there are
    params = signature[0]
    if len(args) != len(params):
        raise CallgateError(f"{name} takes {len(params)} argument(s) ({', '.join(params)}), "
                            f"got {len(args)}")


def _call(args: argparse.Namespace) -> int:
    from callgate.runtime.loading import default_providers
    from callgate.runtime.plugin import Plugin

    use_cache_options(args)
    limits = limits_from(args)
    policy = gate_policy_arg(args.policy) if args.policy else shipped_policy("default")
    sink = audit_target(args.audit)
    try:
        with Plugin(args.wasm, policy=policy, limits=limits,
                    audit=sink, providers=default_providers(), gates=args.gates,
                    broker=args.broker, tracer=args.tracer) as plugin:
            signature = plugin.export_signature(args.function)
            if signature == abi.BYTES_SIGNATURE and not args.args:
                output = plugin.call(args.function, _read_input(args.input))
                sys.stdout.buffer.write(output)
                sys.stdout.flush()
                return 0
            _check_arity(args.function, signature, args.args)
            result = plugin.call_int(args.function, *args.args)
    except GateViolation as exc:
        print(f"callgate call: plugin killed by policy: gate {exc.gate} (#{exc.number}) "
              f"answered {exc.action}", file=sys.stderr)
        return KILLED_EXIT
    except GuestExit as exc:
        return exc.code & 0xFF
    finally:
        if sink is not None:
            sink.close()
    if result is not None:
        values = result if isinstance(result, tuple) else (result,)
        print(" ".join(str(v) for v in values))
    return 0


def _gates(args: argparse.Namespace) -> int:
    from callgate.gates.table import GateTable
    from callgate.runtime.loading import default_providers, format_signature

    table = GateTable([*default_providers(), *([args.gates] if args.gates else [])])
    if args.json:
        from callgate.cli.reports import gates_report, write_json

        write_json(gates_report(table))
        return 0
    rows = [(f"{spec.number:#06x}", str(spec.number), spec.module, spec.name,
             format_signature(spec.params, spec.results)) for spec in table]
    header = ("NUMBER", "DEC", "MODULE", "NAME", "SIGNATURE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
              + "  " + row[-1])
    print(f"\n{len(rows)} gates. App-defined gates (module callgate) take numbers "
          "0x1000..0x1fff; an application registers them with AppGates.")
    return 0
