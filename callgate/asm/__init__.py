"""Classic BPF as text: seccomp-tools' assembly syntax, the assembler and disassembler,
and the file formats (raw ``sock_filter`` bytes, ``.asm``, ``.hex``, C arrays).

Text names syscalls and ``AUDIT_ARCH`` values, so this package sits above
:mod:`callgate.arch`; :mod:`callgate.bpf` below it deals in numbers only.
"""
