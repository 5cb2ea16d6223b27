/* callgate native core: classic BPF for seccomp (see bpf.h). */
#include "bpf.h"

#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "callgate's native core reads seccomp_data words in the host's byte order: little-endian only"
#endif

_Static_assert(sizeof(cg_insn) == 8, "struct sock_filter is 8 bytes");
_Static_assert(sizeof(cg_seccomp_data) == 64, "struct seccomp_data is 64 bytes");

#define MEMWORDS 16u
#define DATA_SIZE 64u

/* Opcodes seccomp accepts (seccomp_check_filter's list), by name. */
enum {
    LD_W_ABS = 0x20, LD_W_LEN = 0x80, LD_IMM = 0x00, LD_MEM = 0x60,
    LDX_W_LEN = 0x81, LDX_IMM = 0x01, LDX_MEM = 0x61,
    ST = 0x02, STX = 0x03,
    ALU_ADD_K = 0x04, ALU_ADD_X = 0x0c, ALU_SUB_K = 0x14, ALU_SUB_X = 0x1c,
    ALU_MUL_K = 0x24, ALU_MUL_X = 0x2c, ALU_DIV_K = 0x34, ALU_DIV_X = 0x3c,
    ALU_OR_K = 0x44, ALU_OR_X = 0x4c, ALU_AND_K = 0x54, ALU_AND_X = 0x5c,
    ALU_LSH_K = 0x64, ALU_LSH_X = 0x6c, ALU_RSH_K = 0x74, ALU_RSH_X = 0x7c,
    ALU_NEG = 0x84, ALU_XOR_K = 0xa4, ALU_XOR_X = 0xac,
    JMP_JA = 0x05, JMP_JEQ_K = 0x15, JMP_JEQ_X = 0x1d, JMP_JGT_K = 0x25, JMP_JGT_X = 0x2d,
    JMP_JGE_K = 0x35, JMP_JGE_X = 0x3d, JMP_JSET_K = 0x45, JMP_JSET_X = 0x4d,
    RET_K = 0x06, RET_A = 0x16,
    MISC_TAX = 0x07, MISC_TXA = 0x87,
};

uint32_t cg_bpf_check(const cg_insn *prog, uint32_t len)
{
    if (prog == NULL || len == 0 || len > CG_BPF_MAXINSNS)
        return 1 + len;
    for (uint32_t pc = 0; pc < len; pc++) {
        const cg_insn *in = &prog[pc];
        uint32_t rest = len - pc - 1; /* instructions after this one */
        switch (in->code) {
        case LD_W_ABS:
            if (in->k >= DATA_SIZE || (in->k & 3u) != 0)
                return pc + 1;
            break;
        case LD_MEM: case LDX_MEM: case ST: case STX:
            if (in->k >= MEMWORDS)
                return pc + 1;
            break;
        case ALU_DIV_K:
            if (in->k == 0)
                return pc + 1;
            break;
        case ALU_LSH_K: case ALU_RSH_K:
            if (in->k >= 32)
                return pc + 1;
            break;
        case JMP_JA:
            if (in->k >= rest)
                return pc + 1;
            break;
        case JMP_JEQ_K: case JMP_JEQ_X: case JMP_JGT_K: case JMP_JGT_X:
        case JMP_JGE_K: case JMP_JGE_X: case JMP_JSET_K: case JMP_JSET_X:
            if (in->jt >= rest || in->jf >= rest)
                return pc + 1;
            break;
        case LD_W_LEN: case LD_IMM: case LDX_W_LEN: case LDX_IMM:
        case ALU_ADD_K: case ALU_ADD_X: case ALU_SUB_K: case ALU_SUB_X:
        case ALU_MUL_K: case ALU_MUL_X: case ALU_DIV_X:
        case ALU_OR_K: case ALU_OR_X: case ALU_AND_K: case ALU_AND_X:
        case ALU_LSH_X: case ALU_RSH_X: case ALU_NEG: case ALU_XOR_K: case ALU_XOR_X:
        case RET_K: case RET_A: case MISC_TAX: case MISC_TXA:
            break;
        default:
            return pc + 1;
        }
    }
    if (prog[len - 1].code != RET_K && prog[len - 1].code != RET_A)
        return len;
    return 0;
}

static inline uint32_t load_word(const cg_seccomp_data *d, uint32_t k)
{
    uint32_t w;
    memcpy(&w, (const unsigned char *)d + k, sizeof w); /* k < 64, aligned: checked */
    return w;
}

uint32_t cg_bpf_run(const cg_insn *prog, uint32_t len, const cg_seccomp_data *d)
{
    uint32_t a = 0, x = 0, mem[MEMWORDS] = {0};
    uint32_t pc = 0;
    while (pc < len) {
        const cg_insn *in = &prog[pc++];
        uint32_t k = in->k;
        switch (in->code) {
        case RET_K: return k;
        case RET_A: return a;
        case LD_W_ABS: a = load_word(d, k); break;
        case LD_W_LEN: a = DATA_SIZE; break;
        case LD_IMM: a = k; break;
        case LD_MEM: a = mem[k & (MEMWORDS - 1)]; break;
        case LDX_W_LEN: x = DATA_SIZE; break;
        case LDX_IMM: x = k; break;
        case LDX_MEM: x = mem[k & (MEMWORDS - 1)]; break;
        case ST: mem[k & (MEMWORDS - 1)] = a; break;
        case STX: mem[k & (MEMWORDS - 1)] = x; break;
        case ALU_ADD_K: a += k; break;
        case ALU_ADD_X: a += x; break;
        case ALU_SUB_K: a -= k; break;
        case ALU_SUB_X: a -= x; break;
        case ALU_MUL_K: a *= k; break;
        case ALU_MUL_X: a *= x; break;
        case ALU_DIV_K: if (k == 0) return 0; a /= k; break;
        case ALU_DIV_X: if (x == 0) return 0; a /= x; break;
        case ALU_OR_K: a |= k; break;
        case ALU_OR_X: a |= x; break;
        case ALU_AND_K: a &= k; break;
        case ALU_AND_X: a &= x; break;
        case ALU_LSH_K: a <<= (k & 31u); break;
        case ALU_LSH_X: a <<= (x & 31u); break;
        case ALU_RSH_K: a >>= (k & 31u); break;
        case ALU_RSH_X: a >>= (x & 31u); break;
        case ALU_NEG: a = 0u - a; break;
        case ALU_XOR_K: a ^= k; break;
        case ALU_XOR_X: a ^= x; break;
        case JMP_JA: pc += k; break;
        case JMP_JEQ_K: pc += a == k ? in->jt : in->jf; break;
        case JMP_JEQ_X: pc += a == x ? in->jt : in->jf; break;
        case JMP_JGT_K: pc += a > k ? in->jt : in->jf; break;
        case JMP_JGT_X: pc += a > x ? in->jt : in->jf; break;
        case JMP_JGE_K: pc += a >= k ? in->jt : in->jf; break;
        case JMP_JGE_X: pc += a >= x ? in->jt : in->jf; break;
        case JMP_JSET_K: pc += (a & k) != 0 ? in->jt : in->jf; break;
        case JMP_JSET_X: pc += (a & x) != 0 ? in->jt : in->jf; break;
        case MISC_TAX: x = a; break;
        case MISC_TXA: a = x; break;
        default: return CG_BPF_INVALID; /* refused by cg_bpf_check: never reached */
        }
    }
    return CG_BPF_INVALID; /* ran off the end: impossible after cg_bpf_check */
}
