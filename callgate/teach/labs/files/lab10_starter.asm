# Lab 10: a seccomp filter for x86_64 processes, by hand. The checker installs it in the
# real kernel, in a forked child.
A = arch
if (A != ARCH_X86_64) goto kill
A = sys_number
# ... x32, uname, personality
return ALLOW
kill:
return KILL_PROCESS
