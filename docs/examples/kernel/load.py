"""Install a raw BPF file - `callgate compile --layer kernel -o FILE` writes one - and see
what the kernel does with some syscalls, beside what callgate's interpreter predicted.

    python load.py FILE.bpf SYSCALL[:ARG0] ...

The same bytes a gate evaluates in software go into seccomp(2) unchanged.
"""

import errno
import signal
import sys

from callgate.arch import native_arch
from callgate.bpf.actions import format_action
from callgate.bpf.insn import unpack
from callgate.bpf.interpreter import interpret
from callgate.bpf.seccomp_data import SeccompData
from callgate.kernel.child import probe_syscalls, syscall_instruction_pointer

X86_64 = native_arch()
with open(sys.argv[1], "rb") as program_file:
    raw = program_file.read()  # packed struct sock_filter, 8 bytes each
calls = []
for word in sys.argv[2:]:
    name, _, arg = word.partition(":")
    calls.append((X86_64.number(name), [int(arg, 0)] if arg else []))

ip = syscall_instruction_pointer()  # where the kernel will say the calls come from
print(f"{sys.argv[1]}: {len(raw) // 8} instructions")
print(f"{'call':<14}{'callgate predicts':<20}the kernel did")
# probe_syscalls forks a child, installs the program there (after NO_NEW_PRIVS) and makes
# each call with syscall(); a call that kills the child is retried in a fresh one.
for (nr, args), outcome in zip(calls, probe_syscalls(raw, calls), strict=True):
    predicted = format_action(interpret(unpack(raw), SeccompData.make(
        nr, X86_64.audit_arch, args, ip=ip)).ret)
    if outcome.kind == "errno":
        did = f"failed with {errno.errorcode[outcome.value]}"
    elif outcome.kind == "killed":
        did = f"killed it with {signal.Signals(outcome.value).name}"
    elif outcome.kind == "trap":
        did = f"SIGSYS to the handler, data {outcome.value}"
    else:
        did = f"returned {outcome.value}"
    call = f"{X86_64.name_of(nr)}({', '.join(map(str, args))})"
    print(f"{call:<14}{predicted:<20}{did}")
