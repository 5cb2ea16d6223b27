# A kernel filter in seccomp-tools' syntax (see docs/bpf.md): x86_64 calls only;
# write to stdout or stderr, read, exit and exit_group are allowed, any other
# write gets EBADF, anything else EPERM. x32 calls and other arches are killed.
A = arch
A == ARCH_X86_64 ? next : dead
A = sys_number
A >= 0x40000000 ? dead : next
A == read ? ok : next
A == exit ? ok : next
A == exit_group ? ok : next
A == write ? next : eperm
A = args[0]
A == 1 ? ok : next
A == 2 ? ok : next
return ERRNO(EBADF)
eperm:
return ERRNO(EPERM)
ok:
return ALLOW
dead:
return KILL_PROCESS
