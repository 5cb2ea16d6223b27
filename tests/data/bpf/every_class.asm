# Every classic-BPF instruction class, in seccomp-tools syntax plus callgate's
# extensions (A %= k, X = <seccomp_data word>, .insn). Used by the round-trip tests:
# assemble, disassemble, assemble again -> identical bytes. Many of these
# instructions are refused by the kernel's seccomp verifier; the text tools must
# still carry them exactly.

# BPF_LD: every source for A
A = sys_number
A = arch
A = instruction_pointer
A = instruction_pointer >> 32
A = args[0]
A = args[5] >> 32
A = args_h[3]
A = data[60]
A = data[2]                # misaligned: the verifier refuses it
A = 0xdeadbeef
A = -1
A = len
A = mem[0]
A = X

# BPF_LDX: the same for X
X = sys_number
X = args[1]
X = 64
X = len
X = mem[15]
X = A

# BPF_ST / BPF_STX
mem[0] = A
mem[15] = X

# BPF_ALU with K and X, and NEG
A += 1
A -= 0x10
A *= X
A /= 3
A /= 0                     # constant division by zero: refused by the kernel
A |= X
A &= 0xff
A <<= 31
A >>= X
A ^= 0xffffffff
A %= 7                     # BPF_MOD: classic BPF has it, seccomp refuses it
A = -A

# BPF_JMP: every comparison, both operands, all jt/jf shapes
if (A == 1) goto one else goto two
if (A != X) goto one
if (A > 5) goto one
if (A <= 5) goto two
if (A >= X) goto one else goto two
if (A < 0x40000000) goto two
if (A & 0x4) goto one
if (!(A & X)) goto one
if (A == 9) goto one else goto one    # jt == jf
if (A == 9) goto next else goto next  # jt == jf == 0
A == read ? one : next                # seccomp-tools' ternary form
goto two
one:
A = sys_number
two:
jmp three
three:

# Encodings with no statement of their own
.insn 0x28, 0x00, 0x00, 0x00000000   # half-word load
.insn 0x30, 0x00, 0x00, 0x00000001   # byte load
.insn 0x40, 0x00, 0x00, 0x00000000   # indirect load
.insn 0xb1, 0x00, 0x00, 0x00000000   # MSH
.insn 0x05, 0x01, 0x02, 0x00000000   # JA with jt/jf set
.insn 0x55, 0x00, 0x00, 0x00000000   # unknown jump op
.insn 0x16, 0x00, 0x00, 0x00000005   # RET A with k set
.insn 0x0e, 0x00, 0x00, 0x00000000   # RET X
.insn 0x20, 0x01, 0x00, 0x00000000   # load with a jt set
.insn 0xffff, 0xff, 0xff, 0xffffffff

# BPF_RET
return A
return ERRNO(1)
return TRACE(7)
return TRAP
return TRAP(3)
return LOG
return USER_NOTIF
return KILL_THREAD
return KILL_PROCESS
return 0x7fff0001
return ALLOW
