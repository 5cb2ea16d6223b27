"""Classic-BPF opcode fields, named as in ``<linux/filter.h>`` and ``<linux/bpf_common.h>``.

An opcode is ``class | size | mode`` for loads, ``class | op | src`` for ALU and
jumps, and ``class | rval`` for returns. Keeping the fields separate (rather than
a table of whole opcodes) lets every tool decode unknown bit patterns honestly.
"""

# Instruction classes (low 3 bits).
BPF_LD = 0x00
BPF_LDX = 0x01
BPF_ST = 0x02
BPF_STX = 0x03
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_RET = 0x06
BPF_MISC = 0x07

# Load size.
BPF_W = 0x00
BPF_H = 0x08
BPF_B = 0x10

# Load mode.
BPF_IMM = 0x00
BPF_ABS = 0x20
BPF_IND = 0x40
BPF_MEM = 0x60
BPF_LEN = 0x80
BPF_MSH = 0xA0

# ALU operations.
BPF_ADD = 0x00
BPF_SUB = 0x10
BPF_MUL = 0x20
BPF_DIV = 0x30
BPF_OR = 0x40
BPF_AND = 0x50
BPF_LSH = 0x60
BPF_RSH = 0x70
BPF_NEG = 0x80
BPF_MOD = 0x90
BPF_XOR = 0xA0

# Jump operations.
BPF_JA = 0x00
BPF_JEQ = 0x10
BPF_JGT = 0x20
BPF_JGE = 0x30
BPF_JSET = 0x40

# Operand source for ALU and jumps.
BPF_K = 0x00
BPF_X = 0x08

# Return value source.
BPF_A = 0x10

# BPF_MISC operations.
BPF_TAX = 0x00
BPF_TXA = 0x80

# Scratch memory words (``BPF_MEMWORDS``) and the kernel's program length cap.
BPF_MEMWORDS = 16
BPF_MAXINSNS = 4096


def bpf_class(code: int) -> int:
    return code & 0x07


def bpf_size(code: int) -> int:
    return code & 0x18


def bpf_mode(code: int) -> int:
    return code & 0xE0


def bpf_op(code: int) -> int:
    return code & 0xF0


def bpf_src(code: int) -> int:
    return code & 0x08


def bpf_rval(code: int) -> int:
    return code & 0x18


def bpf_miscop(code: int) -> int:
    return code & 0xF8
