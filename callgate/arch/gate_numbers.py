"""Gate numbers: the ``nr`` a gate call carries in its ``seccomp_data``.

* WASI preview1 functions are numbered in the order ``wasi_snapshot_preview1.witx``
  declares them, so ``args_get`` is 0 and ``sock_shutdown`` is 45.
* App-defined gates take numbers from ``APP_GATE_FIRST`` to ``APP_GATE_LAST``
  (0x1000..0x1fff). The range is far above WASI's so that WASI can grow without
  renumbering anyone's policy.
"""

from __future__ import annotations

WASI_MODULE = "wasi_snapshot_preview1"

WASI_GATES: tuple[str, ...] = (
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "fd_advise",
    "fd_allocate",
    "fd_close",
    "fd_datasync",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_fdstat_set_rights",
    "fd_filestat_get",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "fd_pwrite",
    "fd_read",
    "fd_readdir",
    "fd_renumber",
    "fd_seek",
    "fd_sync",
    "fd_tell",
    "fd_write",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_open",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "poll_oneoff",
    "proc_exit",
    "proc_raise",
    "sched_yield",
    "random_get",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
)

WASI_NUMBERS: dict[str, int] = {name: nr for nr, name in enumerate(WASI_GATES)}

APP_GATE_FIRST = 0x1000
APP_GATE_LAST = 0x1FFF
