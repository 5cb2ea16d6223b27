/* callgate native core: classic BPF for seccomp, evaluated over a seccomp_data record.
 *
 * The twin of callgate/bpf/interpreter.py (the reference interpreter) with the same
 * semantics, those the kernel runs after converting a filter to eBPF:
 *
 *   - A and X start at 0, scratch memory is zeroed; arithmetic is 32-bit, unsigned,
 *     and wraps;
 *   - A /= X with X == 0 ends the filter with 0 (KILL_THREAD);
 *   - shifts use the operand & 31;
 *   - BPF_LEN is 64, the size of seccomp_data;
 *   - jumps compare unsigned; JSET tests A & operand != 0.
 *
 * Verified-input assumptions. callgate hands C only programs its verifier
 * (callgate/bpf/verifier.py, the kernel's rules) accepted, or their per-gate
 * specialisation (a suffix behind one LD IMM, callgate/bpf/specialize.py). C does not
 * trust that: cg_bpf_check() re-checks, when a program is loaded, every property the
 * interpreter's memory safety rests on (opcodes it knows, jump targets inside the
 * program, scratch indices < 16, aligned loads inside the 64-byte record, a return
 * last, a non-zero constant divisor), and cg_bpf_run() still bounds the program
 * counter on every step. A program that fails the check is never run. What C does
 * *not* re-check is the kernel's mem-uninit rule: scratch words start at 0 here, as
 * in the reference interpreter, so such a read is defined (and never happens for a
 * verified program).
 */
#ifndef CALLGATE_NATIVE_BPF_H
#define CALLGATE_NATIVE_BPF_H

#include <stdint.h>

/* struct sock_filter, the kernel's layout. */
typedef struct {
    uint16_t code;
    uint8_t jt;
    uint8_t jf;
    uint32_t k;
} cg_insn;

/* struct seccomp_data, the kernel's layout (little-endian hosts only). */
typedef struct {
    int32_t nr;
    uint32_t arch;
    uint64_t instruction_pointer;
    uint64_t args[6];
} cg_seccomp_data;

/* What a program that cannot be run returns (KILL_PROCESS): never an ALLOW. */
#define CG_BPF_INVALID 0x80000000u
#define CG_BPF_MAXINSNS 4096u

/* 0 if the interpreter may run prog, else 1 + the index of the first instruction
 * it refuses (len == 0 or len > 4096: 1 + len). */
uint32_t cg_bpf_check(const cg_insn *prog, uint32_t len);

/* The filter's u32 result for d. prog must have passed cg_bpf_check. */
uint32_t cg_bpf_run(const cg_insn *prog, uint32_t len, const cg_seccomp_data *d);

#endif
