# Lab 5: a gate filter for lines.wasm, written by hand. `callgate lab show 5` says what
# it must answer; `callgate emu lab05.asm fd_write 1` shows what it does answer.
A = arch
if (A != ARCH_CALLGATE) goto kill
A = sys_number
# ... one test per gate, jumping to the checks and verdicts below
return ERRNO(ENOSYS)
kill:
return KILL_PROCESS
