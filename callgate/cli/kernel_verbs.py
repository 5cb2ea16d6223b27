"""``callgate kernel …``: look at the kernel layer - what the kernel offers, what a policy grants.

* ``callgate kernel info``: the seccomp actions this kernel knows, the USER_NOTIF struct
  sizes against callgate's, and this process's seccomp state.
* ``callgate kernel policy POLICY``: the host policy derived from a plugin policy - every
  allowed syscall with the reasons it is allowed - or its compiled program.
* ``callgate kernel baseline``: re-measure the runtime's steady-state syscalls with strace.
* ``callgate dump PID``: the seccomp filters of a running process, printed as ``disasm``
  prints a program (seccomp-tools' ``dump``; :mod:`callgate.kernel.dump`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callgate.arch import get_arch, native_arch
from callgate.asm.formats import FORMATS, render
from callgate.bpf.actions import ACTION_NAMES, PRECEDENCE, format_action
from callgate.cli.completion_verb import completes_filters
from callgate.errors import CallgateError
from callgate.gates.spec import GateSpec
from callgate.kernel import binding
from callgate.kernel.hostpolicy import ALWAYS_DENIED, HostPolicy, derive_host_policy
from callgate.learn import baseline
from callgate.policy import Policy


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kernel = subparsers.add_parser(
        "kernel",
        help="inspect the kernel layer: seccomp support, derived host policies, baseline",
        description="The kernel layer: a real seccomp filter on the host, derived from the "
        "plugin policy. See docs/kernel.md.",
    )
    verbs = kernel.add_subparsers(dest="kernel_command", metavar="VERB", required=True)

    info = verbs.add_parser("info", help="seccomp actions, notification sizes, process state")
    info.set_defaults(func=_info)

    policy = verbs.add_parser(
        "policy",
        help="the host policy a plugin policy gets: allowed syscalls and why",
        description="Derive the kernel filter for a host running a plugin under POLICY: the "
        "runtime baseline, the syscalls of the gates POLICY lets run, and its [kernel] "
        "rules, plus the always-denied set and W^X.",
    )
    completes_filters(policy.add_argument(
        "policy",
        metavar="POLICY",
        help="a TOML policy or OCI profile, or a shipped one by name: 'default' (or "
        "'default+fs') for the default of `callgate run` (with --dir), 'allow-all'",
    ))
    policy.add_argument("-a", "--arch", help="kernel arch (default: this machine's)")
    policy.add_argument(
        "-f",
        "--format",
        choices=("list", *FORMATS, "oci"),
        default="list",
        help="list: allowed syscalls with reasons (default); or the compiled program; oci: "
        "an OCI/Docker seccomp profile runc loads, deciding every call the same way",
    )
    policy.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    policy.add_argument("--json", action="store_true",
                        help="the list as one JSON document (schema callgate.kernel-policy/1)")
    policy.add_argument(
        "--exec-after-lockdown",
        action="store_true",
        help="keep PROT_EXEC mappings possible after lockdown (W+X stays denied)",
    )
    policy.set_defaults(func=_policy)

    dump = subparsers.add_parser(
        "dump",
        help="print the seccomp filters of a running process, as disasm prints a program",
        description="Read the seccomp filters of thread PID with ptrace("
        "PTRACE_SECCOMP_GET_FILTER), like seccomp-tools dump, and print each as `callgate "
        "disasm` would, in the order they were installed. The process is stopped for the read "
        "(no signal is sent) and resumed. Needs CAP_SYS_ADMIN and CAP_SYS_PTRACE (root).",
    )
    dump.add_argument("pid", metavar="PID", type=_pid, help="the process (or thread) id")
    dump.add_argument("-i", "--index", type=int, metavar="N",
                      help="only filter N (0: the one installed first); printed exactly as "
                      "disasm prints it")
    dump.add_argument("-a", "--arch", help="arch whose names to use; default: the one each "
                      "filter compares arch against, else this machine's")
    dump.add_argument("-o", "--output", metavar="OUT",
                      help="write the filter as raw BPF here (with --index when it has several)")
    dump.set_defaults(func=_dump)

    base = verbs.add_parser("baseline", help="measure the runtime's steady-state syscalls")
    base.add_argument("--rounds", type=int, default=20, help="steady-state rounds (default 20)")
    base.set_defaults(func=_baseline)


def _info(args: argparse.Namespace) -> int:
    print("seccomp actions this kernel supports:")
    for action in PRECEDENCE:
        mark = "yes" if binding.action_available(action) else "no"
        print(f"  {ACTION_NAMES[action]:13} {mark}")
    sizes = binding.notif_sizes()
    ours = (
        binding.ffi.sizeof("struct seccomp_notif"),
        binding.ffi.sizeof("struct seccomp_notif_resp"),
        binding.ffi.sizeof("struct seccomp_data"),
    )
    print("USER_NOTIF struct sizes (kernel / callgate):")
    for name, kernel_size, our_size in zip(
        ("seccomp_notif", "seccomp_notif_resp", "seccomp_data"), sizes, ours, strict=True
    ):
        print(f"  {name:19} {kernel_size:3} / {our_size}")
    status = _status_fields(("Seccomp", "Seccomp_filters", "NoNewPrivs"))
    print("this process:")
    for key, value in status.items():
        print(f"  {key:16} {value}")
    return 0


def _status_fields(keys: tuple[str, ...]) -> dict[str, str]:
    with open("/proc/self/status") as f:
        fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    return {key: fields.get(key, "?").strip() for key in keys}


def gate_specs() -> list[GateSpec]:
    """Every gate the CLI host offers: those of the runtime's default providers (WASI)."""
    from callgate.runtime.loading import default_providers

    return [spec for provider in default_providers() for spec in provider.specs()]


def _policy(args: argparse.Namespace) -> int:
    arch = get_arch(args.arch) if args.arch else native_arch()
    host = derive_host_policy(
        _policy_named(args.policy, arch.name),
        gate_specs(),
        arch=arch,
        exec_after_lockdown=args.exec_after_lockdown,
    )
    if args.json:
        if args.format != "list":
            raise CallgateError(f"--json prints the list; it cannot be combined with "
                                f"--format {args.format}")
        from callgate.cli.reports import document_text, kernel_policy_report

        out = document_text(kernel_policy_report(host, _always_denied(host))).encode()
    elif args.format == "list":
        out = _listing(host).encode()
    elif args.format == "oci":
        out = _oci(host)
    else:
        out = render(host.compile(), args.format, arch)
    if args.output:
        Path(args.output).write_bytes(out)
    else:
        sys.stdout.buffer.write(out)
    return 0


def _policy_named(name: str, arch: str) -> Policy:
    """A policy file or shipped name, read by the rule every verb shares."""
    from callgate.cli.inputs import load_policy_input, read_filter_input, require_policy

    given = read_filter_input(name)
    require_policy(given, "kernel policy")
    loaded = load_policy_input(given, arch=arch)
    loaded.issue_warnings()
    return loaded.policy


def _listing(host: HostPolicy) -> str:
    lines = [f"# host policy for {host.arch.name}: default {format_action(host.section.default)}"]
    if host.default_allows:
        lines.append("# the default allows: every syscall not denied below is allowed")
    lines.append(f"# {len(host.allowed)} syscalls allowed")
    for name in host.allowed:
        lines.append(f"{name:24} {'; '.join(host.reasons[name])}")
    denied = _always_denied(host)
    lines.append(f"# always denied ({format_action(host.deny_action)}): {', '.join(denied)}")
    lines.append("# also denied: clone without CLONE_THREAD, clone3 (ENOSYS), personality changes,")
    exec_rule = "" if host.exec_after_lockdown else ", and any PROT_EXEC"
    lines.append(f"#   mmap/mprotect/pkey_mprotect with PROT_WRITE|PROT_EXEC{exec_rule}")
    return "\n".join(lines) + "\n"


def _oci(host: HostPolicy) -> bytes:
    import json

    from callgate.policy.oci_export import export_oci

    exported = export_oci(host.section, host.arch)
    for note in exported.notes:
        print(f"callgate kernel policy: note: {note}", file=sys.stderr)
    return (json.dumps(exported.profile, indent=2) + "\n").encode()


def _always_denied(host: HostPolicy) -> list[str]:
    return sorted(n for n in ALWAYS_DENIED if n in host.arch.numbers)


def _pid(text: str) -> int:
    try:
        pid = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}") from None
    if pid <= 0:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return pid


def _dump(args: argparse.Namespace) -> int:
    from callgate.asm.disassembler import disassemble, program_arch
    from callgate.asm.syntax import choose_arch
    from callgate.bpf.insn import pack
    from callgate.kernel.dump import read_filters

    filters = read_filters(args.pid)
    if not filters:
        raise CallgateError(f"process {args.pid} has no seccomp filter")
    chosen = list(enumerate(filters))
    if args.index is not None:
        if not 0 <= args.index < len(filters):
            raise CallgateError(f"--index {args.index}: process {args.pid} has "
                                f"{len(filters)} filter(s), 0 to {len(filters) - 1}")
        chosen = [chosen[args.index]]
    if args.output:
        if len(chosen) > 1:
            raise CallgateError(f"process {args.pid} has {len(filters)} filters; choose one "
                                "with --index to write it")
        Path(args.output).write_bytes(pack(chosen[0][1]))
        return 0
    for index, program in chosen:
        arch = choose_arch(args.arch, program_arch(program) if args.arch is None else None)
        if len(chosen) > 1:
            print(f"# filter {index} of {len(filters)} (0: installed first), "
                  f"{len(program)} instructions")
        sys.stdout.write(disassemble(program, arch))
    return 0


def _baseline(args: argparse.Namespace) -> int:
    sys.stdout.write(baseline.report(*baseline.measure(args.rounds)))
    return 0
