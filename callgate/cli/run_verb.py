"""``callgate run``: run a WASI command (its ``_start``) with every WASI call gated.

Without ``--policy`` the shipped least-privilege default applies
(``policies/default.toml``), plus ``policies/default-fs.toml`` when ``--dir`` is
given: the shipped policies ``default`` and ``default+fs``. Every gate is allowed only
when asked for by name, ``--policy allow-all``. The exit status is the guest's exit
code; 159 if the policy killed it;
134 if it trapped (what ``wasmtime run`` answers for a trap); 2 for usage errors and
modules that cannot be loaded (refused imports, a memory or table minimum over the
limits, a start function that fails).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from callgate.cli.cache_verb import add_cache_options, use_cache_options
from callgate.cli.completion_verb import completes_filters
from callgate.cli.inputs import shipped_policy
from callgate.cli.runtime_verbs import (
    AUDIT_HELP,
    KILLED_EXIT,
    POLICY_HELP,
    add_hook_options,
    audit_target,
    gate_policy_arg,
    limits_from,
    parse_fuel,
    parse_seconds,
    parse_size,
)
from callgate.errors import CallgateError
from callgate.gates.spec import GuestExit
from callgate.gates.wasi import PreopenSpec, WasiConfig, WasiProvider, parse_preopen
from callgate.policy import Policy

if TYPE_CHECKING:
    from callgate.isolation.isolated import IsolatedPlugin
    from callgate.runtime.plugin import Plugin

TRAP_EXIT = 128 + 6  # SIGABRT, as wasmtime run reports a trap


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser(
        "run",
        help="run a WASI program with every WASI call mediated by a gate policy",
        description="Run WASM's _start under callgate's gated WASI. Without --policy a "
        "least-privilege default allows stdio, args, env, clocks, random and exit, plus the "
        "filesystem gates when --dir is given. Exit status: the guest's exit code.",
    )
    add_command_arguments(run, _add_options)
    run.set_defaults(func=_run)


def add_command_arguments(parser: argparse.ArgumentParser,
                          add_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """WASM, the verb's options, then ``[-- ARGS]``: the shape of every verb that runs a
    WASI command (options after WASM are picked up by :func:`late_options`)."""
    parser.add_argument("wasm", metavar="WASM", help="the WASI command module (.wasm or .wat)")
    add_options(parser)
    parser.add_argument("rest", metavar="[-- ARGS]", nargs=argparse.REMAINDER,
                        help="arguments for the guest, after --")


def _add_options(parser: argparse.ArgumentParser) -> None:
    completes_filters(parser.add_argument("--policy", metavar="P", help=POLICY_HELP + " "
                                          "(default+fs with --dir; see docs/wasi.md)"))
    add_guest_options(parser)
    add_limit_options(parser)
    add_cache_options(parser)
    parser.add_argument("--audit", metavar="FILE", help=AUDIT_HELP)
    add_hook_options(parser)
    parser.add_argument("--kernel", action="store_true", default=None,
                        help="after loading, lock this process down with a kernel seccomp "
                        "filter derived from the policy (see docs/kernel.md)")
    parser.add_argument("--isolate", action="store_true", default=None,
                        help="run the plugin in a worker process locked down as with "
                        "--kernel, the preopened directories handed over as fds "
                        "(see docs/kernel.md)")


def add_guest_options(parser: argparse.ArgumentParser) -> None:
    """``--dir`` and ``--env``: what a WASI guest is given (shared with ``callgate learn``)."""
    parser.add_argument("--dir", action=_DirAction, default=[], metavar="HOST::GUEST[:ro]",
                        type=_dir_arg, help="preopen host directory HOST as GUEST (read-only "
                        "with :ro; :pseudo allows a pseudo filesystem such as /proc); "
                        "Docker's HOST:GUEST[:ro] is read too when unambiguous, with a "
                        "note saying so; repeatable")
    parser.set_defaults(dir_notes=[])
    parser.add_argument("--env", action="append", default=[], metavar="K=V", type=_env_arg,
                        help="environment variable for the guest (nothing is inherited)")


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """``--fuel``, ``--timeout``, ``--memory``: the run's limits (read by ``limits_from``)."""
    parser.add_argument("--fuel", type=parse_fuel, metavar="N", help="fuel for the run")
    parser.add_argument("--timeout", type=parse_seconds, metavar="S",
                        help="wall-clock seconds for the run")
    parser.add_argument("--memory", type=parse_size, metavar="BYTES",
                        help="linear memory cap (e.g. 16M)")


def late_options(args: argparse.Namespace, add_options: Callable[[argparse.ArgumentParser], None],
                 prog: str) -> list[str]:
    """Options written after WASM (argparse leaves them in ``rest``); return the guest's args.

    Everything after the first ``--`` belongs to the guest; before it, only options
    ``add_options`` declares. Repeatable options add to what came before WASM, others
    replace it.
    """
    rest = list(args.rest)
    if "--" in rest:
        cut = rest.index("--")
        options, guest = rest[:cut], rest[cut + 1:]
    else:
        options, guest = rest, []
    # One-line usage errors, as the verb's own parser gives.
    from callgate.cli import CliParser, policy_hint

    late = CliParser(prog=prog, add_help=False)
    add_options(late)
    late.add_argument("guest", nargs="*")
    parsed, unknown = late.parse_known_args(options)
    if unknown:  # CliParser.error adds the --policy hint when one names a shipped policy
        late.error(f"unrecognized arguments: {' '.join(unknown)}" + (
            "" if policy_hint(unknown) else "; the guest's own arguments go after --, as "
            f"in `{prog} WASM [OPTIONS] -- ARGS`"))
    for key, value in vars(parsed).items():
        if key == "guest":
            continue
        if isinstance(getattr(args, key), list):
            getattr(args, key).extend(value)
        elif value is not None:
            setattr(args, key, value)
    return [*parsed.guest, *guest]


def _dir_arg(text: str) -> PreopenSpec:
    try:
        return parse_preopen(text)
    except CallgateError as exc:  # argparse says "argument --dir:" itself
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--dir ")) from None


class _DirAction(argparse.Action):
    """``--dir``: appends the Preopen to ``dir``; a spec written in Docker's form also
    adds a note to ``dir_notes`` saying how it was read (the verb prints them)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        assert isinstance(values, PreopenSpec)
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []),
                                       values.preopen])
        if values.form == "docker":
            note = (f"--dir {values.text}: read as Docker's HOST:GUEST - "
                    f"{values.describe()} (callgate's own form: {values.canonical()})")
            namespace.dir_notes = [*(getattr(namespace, "dir_notes", None) or []), note]


def print_dir_notes(args: argparse.Namespace, verb: str) -> None:
    """What each Docker-form ``--dir`` was read as: one ``callgate VERB: note:`` line each."""
    for note in getattr(args, "dir_notes", ()):
        print(f"callgate {verb}: note: {note}", file=sys.stderr)


def _env_arg(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--env wants KEY=VALUE, got {text!r}")
    return key, value


def default_policy(with_fs: bool) -> Policy:
    """The least-privilege default of every verb that runs a guest: the shipped ``default``,
    or ``default+fs`` (the filesystem overlay merged in) when ``with_fs``."""
    return shipped_policy("default+fs" if with_fs else "default")


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    """A warning as the CLI's own stderr line (no source line: after lockdown, Landlock
    would not let Python read it)."""
    print(f"callgate run: warning: {message}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> int:
    from callgate.gates.errors import AbiError, GateViolation, PluginError, PluginLoadError
    from callgate.runtime.plugin import Plugin

    guest_args = late_options(args, _add_options, "callgate run")
    use_cache_options(args)
    print_dir_notes(args, "run")
    policy = gate_policy_arg(args.policy) if args.policy else default_policy(bool(args.dir))
    if isinstance(policy, list) and (args.kernel or args.isolate):
        raise CallgateError(f"--kernel and --isolate derive the kernel filter from a policy "
                            f"file; {args.policy} is a gate filter program, which has no "
                            "[kernel] section. Use a .toml policy.")
    config = WasiConfig(args=[Path(args.wasm).name, *guest_args], env=dict(args.env),
                        preopens=args.dir, stdin="inherit", stdout="inherit",
                        stderr="inherit")
    config.check_preopens()  # now: a guest that never opens a file would not notice
    limits = limits_from(args)
    sink = None if args.isolate else audit_target(args.audit)
    sys.stdout.flush()
    if args.kernel and not args.isolate:
        from callgate.kernel.lockdown import drop_capabilities
        drop_capabilities()  # now, while this is the only thread (see drop_capabilities)
    if args.kernel or args.isolate:
        warnings.showwarning = _warning_line  # e.g. a kernel without Landlock: one line
    opened: IsolatedPlugin | Plugin
    try:
        try:
            if args.isolate:
                from callgate.isolation.isolated import isolated_command
                assert not isinstance(policy, list)  # refused above
                opened = isolated_command(args.wasm, policy, limits, config, audit=args.audit,
                                          broker=args.broker, tracer=args.tracer)
            else:
                opened = Plugin(args.wasm, policy=policy, limits=limits, audit=sink,
                                broker=args.broker, tracer=args.tracer,
                                providers=[WasiProvider(config)])
        except (GuestExit, GateViolation):
            raise  # a start function that exited, or was killed: as from _start
        except PluginError as exc:
            # A module that cannot be loaded (a memory minimum over Limits.memory, a start
            # function that traps …) is a load error, not a trap: exit 2, one line.
            raise CallgateError(str(exc)) from None
        with opened as plugin:
            if args.kernel and not args.isolate:
                from callgate.kernel.lockdown import lock_plugin
                assert not isinstance(policy, list)  # refused above
                lock_plugin(plugin, policy)
            plugin.call_int("_start")
    except GuestExit as exc:
        return exc.code & 0xFF
    except GateViolation as exc:
        print(f"callgate run: plugin killed by policy: gate {exc.gate} (#{exc.number}) "
              f"answered {exc.action}", file=sys.stderr)
        return KILLED_EXIT
    except PluginLoadError:
        raise  # a module that cannot run: exit 2 with the loader's message
    except AbiError as exc:  # no _start: a library module, not a command
        raise CallgateError(f"{args.wasm} is not a WASI command ({exc}); "
                            "for a library module use callgate call") from None
    except PluginError as exc:
        print(f"callgate run: {exc}", file=sys.stderr)
        return TRAP_EXIT
    except CallgateError as exc:
        signal_number: int | None = getattr(exc, "signal", None)  # a killed isolated worker
        if signal_number is None:
            raise
        print(f"callgate run: {exc}", file=sys.stderr)
        return 128 + signal_number
    finally:
        if sink is not None:
            sink.close()
    return 0
