# Lab 5, a reference solution: lines.wasm's gates, by hand.
A = arch
if (A != ARCH_CALLGATE) goto kill
A = sys_number
if (A == args_sizes_get) goto allow
if (A == args_get) goto allow
if (A == proc_exit) goto allow
if (A == fd_write) goto stdio
if (A == fd_fdstat_get) goto stdio
return ERRNO(ENOSYS)
# fd_write and fd_fdstat_get: args[0] is the fd; only 1 and 2.
stdio:
A = args[0]
if (A < 1) goto badf
if (A > 2) goto badf
allow:
return ALLOW
badf:
return ERRNO(EBADF)
kill:
return KILL_PROCESS
