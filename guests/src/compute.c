// callgate-build: freestanding
/*
 * compute — compute-bound kernels for benchmarks/bench_compute.py. No imports: a call
 * never leaves wasm, so what a benchmark measures is the machine code alone.
 *
 *   sieve(rounds)  -> primes below 2^20, summed over the rounds: the sieve of
 *                     Eratosthenes over a 1 MiB byte array (tight loops of stores)
 *   crc(rounds)    -> a checksum: fill 64 KiB with xorshift64* numbers, then CRC-32 it
 *                     a byte at a time (each turn waits on a table load)
 *   interp(rounds) -> the result of a small stack-machine program run `rounds` times:
 *                     an interpreter's dispatch loop (a switch per instruction), the
 *                     heart of CPython, Lua or a regex engine
 *
 * The same call gives the same result on any engine, so a benchmark can check that
 * both sides computed the same thing. Short loop bodies are where wasmtime's epoch
 * and fuel checks cost most: every loop turn passes one.
 */
#include <callgate.h>

/* --- sieve ------------------------------------------------------------------------- */

#define SIEVE_BYTES (1u << 20)
static uint8_t composite[SIEVE_BYTES];

CG_EXPORT("sieve")
uint32_t sieve(uint32_t rounds) {
    uint32_t primes = 0;
    for (uint32_t r = 0; r < rounds; r++) {
        for (uint32_t i = 0; i < SIEVE_BYTES; i++)
            composite[i] = 0;
        for (uint32_t i = 2; i * i < SIEVE_BYTES; i++)
            if (!composite[i])
                for (uint32_t j = i * i; j < SIEVE_BYTES; j += i)
                    composite[j] = 1;
        for (uint32_t i = 2; i < SIEVE_BYTES; i++)
            primes += !composite[i];
    }
    return primes;
}

/* --- crc --------------------------------------------------------------------------- */

#define CRC_BYTES 65536u
static uint8_t buffer[CRC_BYTES];
static uint32_t crc_table[256];

CG_EXPORT("crc")
uint64_t crc(uint32_t rounds) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
    uint64_t state = 0x9E3779B97F4A7C15ull, sum = 0;
    for (uint32_t r = 0; r < rounds; r++) {
        for (uint32_t i = 0; i < CRC_BYTES; i += 8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            uint64_t word = state * 0x2545F4914F6CDD1Dull;
            for (uint32_t b = 0; b < 8; b++)
                buffer[i + b] = (uint8_t)(word >> (8 * b));
        }
        uint32_t c = 0xFFFFFFFFu;
        for (uint32_t i = 0; i < CRC_BYTES; i++)
            c = crc_table[(c ^ buffer[i]) & 0xFF] ^ (c >> 8);
        sum = sum * 31 + (c ^ 0xFFFFFFFFu);
    }
    return sum;
}

/* --- interp ------------------------------------------------------------------------ */

enum { PUSH, ADD, SUB, MUL, XOR, DUP, OVER, SWAP, POP, JNZ, HALT };

/* acc = 0; for (n = 200; n; n--) acc = (acc * 3 ^ n) + 7; - not const, so the compiler
   cannot run it at build time */
uint8_t interp_program[] = {
    PUSH, 0, PUSH, 200,
    /* 4: */ SWAP, PUSH, 3, MUL, OVER, XOR, PUSH, 7, ADD, SWAP, PUSH, 1, SUB, DUP, JNZ, 4,
    POP, HALT,
};

CG_EXPORT("interp")
uint32_t interp(uint32_t rounds) {
    uint32_t total = 0;
    for (uint32_t r = 0; r < rounds; r++) {
        int32_t stack[16];
        uint32_t sp = 0, pc = 0;
        for (;;) {
            switch (interp_program[pc++]) {
            case PUSH: stack[sp++] = interp_program[pc++]; continue;
            case ADD: sp--; stack[sp - 1] += stack[sp]; continue;
            case SUB: sp--; stack[sp - 1] -= stack[sp]; continue;
            case MUL: sp--; stack[sp - 1] *= stack[sp]; continue;
            case XOR: sp--; stack[sp - 1] ^= stack[sp]; continue;
            case DUP: stack[sp] = stack[sp - 1]; sp++; continue;
            case OVER: stack[sp] = stack[sp - 2]; sp++; continue;
            case SWAP: {
                int32_t top = stack[sp - 1];
                stack[sp - 1] = stack[sp - 2];
                stack[sp - 2] = top;
                continue;
            }
            case POP: sp--; continue;
            case JNZ: sp--; pc = stack[sp] ? interp_program[pc] : pc + 1; continue;
            default: break;
            }
            break;
        }
        total += (uint32_t)stack[0];
    }
    return total;
}
