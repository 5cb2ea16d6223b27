# Lab 10, a reference solution: an x86_64 filter, by hand.
A = arch
if (A != ARCH_X86_64) goto kill
A = sys_number
# x32 programs use x86_64's arch value; their numbers carry bit 0x40000000.
if (A >= 0x40000000) goto kill
if (A == uname) goto eperm
if (A == personality) goto persona
return ALLOW
# personality(0xffffffff) only asks; the argument is 64 bits: both halves must match.
persona:
A = args_h[0]
if (A != 0) goto eperm
A = args[0]
if (A == 0xffffffff) goto allow
eperm:
return ERRNO(EPERM)
allow:
return ALLOW
kill:
return KILL_PROCESS
