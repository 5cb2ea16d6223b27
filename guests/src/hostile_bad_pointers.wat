;; hostile_bad_pointers — passes out-of-range pointers and lengths to EVERY
;; pointer-taking WASI preview1 function and reports what each call answered.
;;
;; A gate must check every guest pointer and length, and every entry of an
;; iovec array, before it touches memory or does anything else: a bad one gets
;; errno EFAULT (21) and nothing happens. Never a host exception or crash,
;; never a partial effect. This module is written in WAT so that the raw
;; pointer values are exactly the ones below (a C compiler would "fix" them).
;;
;; Memory is exactly one page, so END = 65536 = memory size. Bad values used:
;;   END            the first byte past memory
;;   END - k        a struct or buffer that starts inside memory but ends past it
;;   0xffffffff     the top of the 32-bit range (for byte pointers)
;;   0xfffffff8/c   top of range, but aligned (for u32/u64 results)
;;   len 0xffffffff a huge length at a good pointer
;;   iovecs         an array past END, entries pointing past END, an entry with
;;                  a huge length, a good entry followed by a bad one, and a
;;                  huge entry count
;;
;; Run as a WASI command (_start) with:
;;   - one read-write preopened directory (fd 3), ideally empty and private;
;;   - at least one argument and one environment variable, 4 KiB in all at
;;     most (so args_get/environ_get have something to write).
;; Setup, with good pointers: it creates "scratch.txt" holding "hello\n" and a
;; symlink "link" -> "scratch.txt" in the preopen.
;;
;; Output on stdout: one line per case, "<function>:<what is bad> <errno>",
;; then "total <cases> efault <how many answered 21>". Exit status 0 when every
;; case answered EFAULT, 1 otherwise; 2 if the setup itself failed (the line
;; "setup <step> <errno>" says where).
(module
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_res_get"
    (func $clock_res_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get"
    (func $fd_fdstat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_get"
    (func $fd_filestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread"
    (func $fd_pread (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get"
    (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name"
    (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pwrite"
    (func $fd_pwrite (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir"
    (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek"
    (func $fd_seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_tell" (func $fd_tell (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory"
    (func $path_create_directory (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get"
    (func $path_filestat_get (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_set_times"
    (func $path_filestat_set_times (param i32 i32 i32 i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_link"
    (func $path_link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_readlink"
    (func $path_readlink (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_remove_directory"
    (func $path_remove_directory (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_rename"
    (func $path_rename (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink"
    (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_unlink_file"
    (func $path_unlink_file (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept"
    (func $sock_accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv"
    (func $sock_recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_send"
    (func $sock_send (param i32 i32 i32 i32 i32) (result i32)))

  ;; Memory map (one page, never grown):
  ;;     0 ..  1023  good result slots (see globals below)
  ;;  1024 ..  1279  path strings and file content
  ;;  4096 ..  4351  iovec arrays
  ;;  8192 ..  8447  poll_oneoff subscription (48 bytes of zeros: a clock
  ;;                 subscription with timeout 0) and room for one event
  ;; 12288 .. 16383  good buffers (args, environ, readdir, readlink)
  ;; 16384 .. 32767  the report written to stdout
  ;; 40960 .. 49151  case names, one per line, in the order the cases run
  ;; 49152 .. 65535  left alone: the "straddles the end" cases point here
  (memory (export "memory") 1 1)

  (global $END i32 (i32.const 65536))
  (global $FDSTAT i32 (i32.const 0))     ;; 24-byte fdstat of the preopen
  (global $PRESTAT i32 (i32.const 64))   ;; 8-byte prestat of the preopen
  (global $NEWFD i32 (i32.const 72))     ;; fd from the setup path_open
  (global $ARGC i32 (i32.const 80))      ;; args_sizes_get: count, buffer size
  (global $ENVC i32 (i32.const 88))      ;; environ_sizes_get: count, buffer size
  (global $OUT i32 (i32.const 96))       ;; any good u32/u64 result
  (global $STAT i32 (i32.const 128))     ;; a good 64-byte filestat
  (global $BUF i32 (i32.const 12288))    ;; 4 KiB of good buffer

  (data (i32.const 1024) "scratch.txt")  ;; 11 bytes
  (data (i32.const 1040) "newname")      ;; 7 bytes
  (data (i32.const 1056) "hello\n")      ;; 6 bytes
  (data (i32.const 1072) "link")         ;; 4 bytes
  (data (i32.const 1088) "setup ")       ;; 6 bytes
  (data (i32.const 1104) "total ")       ;; 6 bytes
  (data (i32.const 1112) " efault ")     ;; 8 bytes
  ;; names of the setup steps, for "setup <step> <errno>"
  (data (i32.const 1120) "fd_fdstat_get")      ;; 13 bytes
  (data (i32.const 1136) "fd_prestat_get")     ;; 14 bytes
  (data (i32.const 1152) "path_open")          ;; 9 bytes
  (data (i32.const 1168) "fd_write")           ;; 8 bytes
  (data (i32.const 1184) "path_symlink")       ;; 12 bytes
  (data (i32.const 1200) "args_sizes_get")     ;; 14 bytes
  (data (i32.const 1216) "environ_sizes_get")  ;; 17 bytes

  ;; The iovec arrays (struct iovec { u32 buf; u32 len; }).
  (global $IOV_GOOD i32 (i32.const 4096))      ;; {1056, 6}
  (global $IOV_STRADDLE i32 (i32.const 4104))  ;; {END - 2, 8}
  (global $IOV_TOP i32 (i32.const 4112))       ;; {0xffffffff, 1}
  (global $IOV_HUGE i32 (i32.const 4120))      ;; {0, 0xffffffff}
  (global $IOV_GOOD_BAD i32 (i32.const 4128))  ;; {1056, 6}, {END, 16}
  (data (i32.const 4096)
    "\20\04\00\00\06\00\00\00"
    "\fe\ff\00\00\08\00\00\00"
    "\ff\ff\ff\ff\01\00\00\00"
    "\00\00\00\00\ff\ff\ff\ff"
    "\20\04\00\00\06\00\00\00" "\00\00\01\00\10\00\00\00")
  (global $SUB i32 (i32.const 8192))
  (global $EVENT i32 (i32.const 8256))

  (global $report (mut i32) (i32.const 16384))  ;; next free byte of the report
  (global $name (mut i32) (i32.const 40960))    ;; the next case's name
  (global $index (mut i32) (i32.const 0))       ;; index of the next case
  (global $only (mut i32) (i32.const -1))       ;; run only this case (-1: all)
  (global $last (mut i32) (i32.const -1))       ;; errno of the last case run
  (global $cases (mut i32) (i32.const 0))       ;; cases run
  (global $efaults (mut i32) (i32.const 0))
  (global $file (mut i32) (i32.const -1))       ;; fd of scratch.txt
  (global $rights (mut i64) (i64.const 0))      ;; rights the preopen passes on

  (data (i32.const 40960)
    "args_sizes_get:argc_ptr=END\n"
    "args_sizes_get:size_ptr=top\n"
    "args_get:argv=END\n"
    "args_get:argv=top\n"
    "args_get:buf=top\n"
    "args_get:buf=END-1\n"
    "environ_sizes_get:count_ptr=END\n"
    "environ_sizes_get:size_ptr=top\n"
    "environ_get:environ=END\n"
    "environ_get:buf=top\n"
    "environ_get:buf=END-1\n"
    "clock_res_get:out=END\n"
    "clock_res_get:out=top\n"
    "clock_time_get:out=END\n"
    "clock_time_get:out=top\n"
    "fd_fdstat_get:out=END\n"
    "fd_fdstat_get:out=END-8\n"
    "fd_filestat_get:out=END\n"
    "fd_filestat_get:out=END-8\n"
    "fd_pread:iovs=END\n"
    "fd_pread:iovs=END-4\n"
    "fd_pread:iov.buf=END-2\n"
    "fd_pread:iov.buf=top\n"
    "fd_pread:iov.len=huge\n"
    "fd_pread:second_iov=END\n"
    "fd_pread:iovs_len=huge\n"
    "fd_pread:nread=END\n"
    "fd_prestat_get:out=END\n"
    "fd_prestat_get:out=END-4\n"
    "fd_prestat_dir_name:path=END\n"
    "fd_prestat_dir_name:path=top\n"
    "fd_prestat_dir_name:path=END-1\n"
    "fd_prestat_dir_name:len=huge\n"
    "fd_pwrite:iovs=END\n"
    "fd_pwrite:iov.buf=END-2\n"
    "fd_pwrite:iov.buf=top\n"
    "fd_pwrite:iov.len=huge\n"
    "fd_pwrite:second_iov=END\n"
    "fd_pwrite:iovs_len=huge\n"
    "fd_pwrite:nwritten=END\n"
    "fd_read:iovs=END\n"
    "fd_read:iov.buf=END-2\n"
    "fd_read:iov.buf=top\n"
    "fd_read:iov.len=huge\n"
    "fd_read:second_iov=END\n"
    "fd_read:iovs_len=huge\n"
    "fd_read:nread=END\n"
    "fd_readdir:buf=END\n"
    "fd_readdir:buf=top\n"
    "fd_readdir:buf_len=huge\n"
    "fd_readdir:bufused=END\n"
    "fd_seek:newoffset=END\n"
    "fd_seek:newoffset=top\n"
    "fd_tell:out=END\n"
    "fd_tell:out=top\n"
    "fd_write:iovs=END\n"
    "fd_write:iovs=END-4\n"
    "fd_write:iov.buf=END-2\n"
    "fd_write:iov.buf=top\n"
    "fd_write:iov.len=huge\n"
    "fd_write:second_iov=END\n"
    "fd_write:iovs_len=huge\n"
    "fd_write:iovs_len=max\n"
    "fd_write:nwritten=END\n"
    "path_create_directory:path=END\n"
    "path_create_directory:path=top\n"
    "path_create_directory:path=END-2\n"
    "path_create_directory:path_len=huge\n"
    "path_filestat_get:path=END\n"
    "path_filestat_get:path_len=huge\n"
    "path_filestat_get:out=END\n"
    "path_filestat_get:out=END-8\n"
    "path_filestat_set_times:path=END\n"
    "path_filestat_set_times:path_len=huge\n"
    "path_link:old_path=END\n"
    "path_link:new_path=END\n"
    "path_link:new_path_len=huge\n"
    "path_open:path=END\n"
    "path_open:path=top\n"
    "path_open:path_len=huge\n"
    "path_open:fd_out=END\n"
    "path_open:fd_out=top\n"
    "path_readlink:path=END\n"
    "path_readlink:buf=END\n"
    "path_readlink:buf_len=huge\n"
    "path_readlink:bufused=END\n"
    "path_remove_directory:path=END\n"
    "path_remove_directory:path_len=huge\n"
    "path_rename:old_path=END\n"
    "path_rename:new_path=END\n"
    "path_rename:new_path=top\n"
    "path_symlink:old_path=END\n"
    "path_symlink:old_path_len=huge\n"
    "path_symlink:new_path=END\n"
    "path_unlink_file:path=END\n"
    "path_unlink_file:path=top\n"
    "poll_oneoff:in=END\n"
    "poll_oneoff:in=END-8\n"
    "poll_oneoff:out=END\n"
    "poll_oneoff:nevents=END\n"
    "poll_oneoff:nsubscriptions=huge\n"
    "random_get:buf=END\n"
    "random_get:buf=END-8\n"
    "random_get:buf=top\n"
    "random_get:len=huge\n"
    "sock_accept:fd_out=END\n"
    "sock_recv:iovs=END\n"
    "sock_recv:iov.buf=top\n"
    "sock_recv:datalen=END\n"
    "sock_recv:flags_out=END\n"
    "sock_send:iovs=END\n"
    "sock_send:iov.buf=top\n"
    "sock_send:datalen=END\n"
    "\00")  ;; end of the list

  ;; Append bytes [ptr, ptr + len) to the report.
  (func $emit (param $ptr i32) (param $len i32)
    (memory.copy (global.get $report) (local.get $ptr) (local.get $len))
    (global.set $report (i32.add (global.get $report) (local.get $len))))

  ;; Append one byte to the report.
  (func $emit_byte (param $byte i32)
    (i32.store8 (global.get $report) (local.get $byte))
    (global.set $report (i32.add (global.get $report) (i32.const 1))))

  ;; Append an unsigned number in decimal to the report.
  (func $emit_u32 (param $n i32)
    (if (i32.ge_u (local.get $n) (i32.const 10))
      (then (call $emit_u32 (i32.div_u (local.get $n) (i32.const 10)))))
    (call $emit_byte (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10)))))

  ;; Length of the current case name (bytes up to its '\n').
  (func $name_len (result i32)
    (local $len i32)
    ;; Running out of names means cases and names went out of step: a bug here.
    (if (i32.eqz (i32.load8_u (global.get $name))) (then unreachable))
    (block $found
      (loop $scan
        (br_if $found (i32.eq (i32.load8_u (i32.add (global.get $name) (local.get $len)))
                              (i32.const 10)))
        (local.set $len (i32.add (local.get $len) (i32.const 1)))
        (br $scan)))
    (local.get $len))

  ;; Move on to the next case (its index and name).
  (func $next_case (param $len i32)
    (global.set $name (i32.add (global.get $name) (i32.add (local.get $len) (i32.const 1))))
    (global.set $index (i32.add (global.get $index) (i32.const 1))))

  ;; Should the next case run? All do unless one_case() picked a single one;
  ;; a case that does not run is skipped here, name and all.
  (func $want (result i32)
    (if (i32.or (i32.eq (global.get $only) (i32.const -1))
                (i32.eq (global.get $only) (global.get $index)))
      (then (return (i32.const 1))))
    (call $next_case (call $name_len))
    (i32.const 0))

  ;; Record the errno a case answered: "<case name> <errno>\n".
  (func $case (param $errno i32)
    (local $len i32)
    (local.set $len (call $name_len))
    (call $emit (global.get $name) (local.get $len))
    (call $emit_byte (i32.const 32))
    (call $emit_u32 (local.get $errno))
    (call $emit_byte (i32.const 10))
    (call $next_case (local.get $len))
    (global.set $last (local.get $errno))
    (global.set $cases (i32.add (global.get $cases) (i32.const 1)))
    (if (i32.eq (local.get $errno) (i32.const 21))
      (then (global.set $efaults (i32.add (global.get $efaults) (i32.const 1))))))

  ;; Write the report to stdout (good pointers; iovec at 4352).
  (func $flush
    (i32.store (i32.const 4352) (i32.const 16384))
    (i32.store (i32.const 4356) (i32.sub (global.get $report) (i32.const 16384)))
    (drop (call $fd_write (i32.const 1) (i32.const 4352) (i32.const 1) (global.get $OUT))))

  ;; A setup step failed: report it and exit 2.
  (func $setup_failed (param $step i32) (param $step_len i32) (param $errno i32)
    (call $emit (i32.const 1088) (i32.const 6))
    (call $emit (local.get $step) (local.get $step_len))
    (call $emit_byte (i32.const 32))
    (call $emit_u32 (local.get $errno))
    (call $emit_byte (i32.const 10))
    (call $flush)
    (call $proc_exit (i32.const 2)))

  ;; Everything the cases need, done with good pointers.
  (func $setup
    (local $err i32)
    ;; The preopen at fd 3, and the rights it passes on to files opened in it.
    (local.set $err (call $fd_fdstat_get (i32.const 3) (global.get $FDSTAT)))
    (if (local.get $err) (then (call $setup_failed (i32.const 1120) (i32.const 13) (local.get $err))))
    (global.set $rights (i64.load (i32.add (global.get $FDSTAT) (i32.const 16))))
    (local.set $err (call $fd_prestat_get (i32.const 3) (global.get $PRESTAT)))
    (if (local.get $err) (then (call $setup_failed (i32.const 1136) (i32.const 14) (local.get $err))))
    ;; scratch.txt: created or truncated (oflags CREAT|TRUNC = 1|8), then "hello\n".
    (local.set $err
      (call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 11)
        (i32.const 9) (global.get $rights) (global.get $rights) (i32.const 0) (global.get $NEWFD)))
    (if (local.get $err) (then (call $setup_failed (i32.const 1152) (i32.const 9) (local.get $err))))
    (global.set $file (i32.load (global.get $NEWFD)))
    (local.set $err
      (call $fd_write (global.get $file) (global.get $IOV_GOOD) (i32.const 1) (global.get $OUT)))
    (if (local.get $err) (then (call $setup_failed (i32.const 1168) (i32.const 8) (local.get $err))))
    ;; link -> scratch.txt (replacing one left by an earlier run)
    (drop (call $path_unlink_file (i32.const 3) (i32.const 1072) (i32.const 4)))
    (local.set $err (call $path_symlink (i32.const 1024) (i32.const 11)
                                        (i32.const 3) (i32.const 1072) (i32.const 4)))
    (if (local.get $err) (then (call $setup_failed (i32.const 1184) (i32.const 12) (local.get $err))))
    ;; sizes for the args/environ cases, which need good buffers of the right size
    (local.set $err (call $args_sizes_get (global.get $ARGC) (i32.add (global.get $ARGC) (i32.const 4))))
    (if (local.get $err) (then (call $setup_failed (i32.const 1200) (i32.const 14) (local.get $err))))
    (local.set $err (call $environ_sizes_get (global.get $ENVC) (i32.add (global.get $ENVC) (i32.const 4))))
    (if (local.get $err) (then (call $setup_failed (i32.const 1216) (i32.const 17) (local.get $err)))))

  (func $cases
    (local $END i32)
    (local $f i32)
    (local.set $END (global.get $END))
    (local.set $f (global.get $file))

    ;; --- args and environ -----------------------------------------------------------
    (if (call $want) (then (call $case (call $args_sizes_get (local.get $END) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $args_sizes_get (global.get $OUT) (i32.const 0xfffffffc)))))
    (if (call $want) (then (call $case (call $args_get (local.get $END) (global.get $BUF)))))
    (if (call $want) (then (call $case (call $args_get (i32.const 0xfffffffc) (global.get $BUF)))))
    (if (call $want) (then (call $case (call $args_get (global.get $OUT) (i32.const 0xffffffff)))))
    (if (call $want) (then (call $case (call $args_get (global.get $BUF) (i32.sub (local.get $END) (i32.const 1))))))
    (if (call $want) (then (call $case (call $environ_sizes_get (local.get $END) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $environ_sizes_get (global.get $OUT) (i32.const 0xfffffffc)))))
    (if (call $want) (then (call $case (call $environ_get (local.get $END) (global.get $BUF)))))
    (if (call $want) (then (call $case (call $environ_get (global.get $BUF) (i32.const 0xffffffff)))))
    (if (call $want) (then (call $case (call $environ_get (global.get $BUF) (i32.sub (local.get $END) (i32.const 1))))))

    ;; --- clocks ---------------------------------------------------------------------
    (if (call $want) (then (call $case (call $clock_res_get (i32.const 0) (local.get $END)))))
    (if (call $want) (then (call $case (call $clock_res_get (i32.const 0) (i32.const 0xfffffff8)))))
    (if (call $want) (then (call $case (call $clock_time_get (i32.const 0) (i64.const 1) (local.get $END)))))
    (if (call $want) (then (call $case (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 0xfffffff8)))))

    ;; --- fd_* with a result struct --------------------------------------------------
    (if (call $want) (then (call $case (call $fd_fdstat_get (i32.const 1) (local.get $END)))))
    (if (call $want) (then (call $case (call $fd_fdstat_get (i32.const 1) (i32.sub (local.get $END) (i32.const 8))))))
    (if (call $want) (then (call $case (call $fd_filestat_get (local.get $f) (local.get $END)))))
    (if (call $want) (then (call $case (call $fd_filestat_get (local.get $f) (i32.sub (local.get $END) (i32.const 8))))))

    ;; --- fd_pread: the iovec array, its entries, its length, the result -----------
    (if (call $want) (then (call $case (call $fd_pread (local.get $f) (local.get $END) (i32.const 1)
                                (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_pread (local.get $f) (i32.sub (local.get $END) (i32.const 4))
                                (i32.const 1) (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_pread (local.get $f) (global.get $IOV_STRADDLE) (i32.const 1)
                                (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_pread (local.get $f) (global.get $IOV_TOP) (i32.const 1)
                                (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_pread (local.get $f) (global.get $IOV_HUGE) (i32.const 1)
                                (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_pread (local.get $f) (global.get $IOV_GOOD_BAD) (i32.const 2)
                                (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_pread (local.get $f) (global.get $IOV_GOOD) (i32.const 0x10000000)
                                (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_pread (local.get $f) (global.get $IOV_GOOD) (i32.const 1)
                                (i64.const 0) (local.get $END)))))

    ;; --- the preopen's prestat and name ---------------------------------------------
    (if (call $want) (then (call $case (call $fd_prestat_get (i32.const 3) (local.get $END)))))
    (if (call $want) (then (call $case (call $fd_prestat_get (i32.const 3) (i32.sub (local.get $END) (i32.const 4))))))
    (if (call $want) (then (call $case (call $fd_prestat_dir_name (i32.const 3) (local.get $END)
                  (i32.load (i32.add (global.get $PRESTAT) (i32.const 4)))))))
    (if (call $want) (then (call $case (call $fd_prestat_dir_name (i32.const 3) (i32.const 0xffffffff)
                  (i32.load (i32.add (global.get $PRESTAT) (i32.const 4)))))))
    ;; the name's length + 1 bytes from END - 1: one byte in, the rest past the end
    (if (call $want) (then (call $case (call $fd_prestat_dir_name (i32.const 3) (i32.sub (local.get $END) (i32.const 1))
                  (i32.add (i32.load (i32.add (global.get $PRESTAT) (i32.const 4))) (i32.const 1))))))
    (if (call $want) (then (call $case (call $fd_prestat_dir_name (i32.const 3) (global.get $BUF) (i32.const 0xffffffff)))))

    ;; --- fd_pwrite ------------------------------------------------------------------
    (if (call $want) (then (call $case (call $fd_pwrite (local.get $f) (local.get $END) (i32.const 1)
                                 (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_pwrite (local.get $f) (global.get $IOV_STRADDLE) (i32.const 1)
                                 (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_pwrite (local.get $f) (global.get $IOV_TOP) (i32.const 1)
                                 (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_pwrite (local.get $f) (global.get $IOV_HUGE) (i32.const 1)
                                 (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_pwrite (local.get $f) (global.get $IOV_GOOD_BAD) (i32.const 2)
                                 (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_pwrite (local.get $f) (global.get $IOV_GOOD) (i32.const 0x10000000)
                                 (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_pwrite (local.get $f) (global.get $IOV_GOOD) (i32.const 1)
                                 (i64.const 0) (local.get $END)))))

    ;; --- fd_read --------------------------------------------------------------------
    (if (call $want) (then (call $case (call $fd_read (local.get $f) (local.get $END) (i32.const 1) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_read (local.get $f) (global.get $IOV_STRADDLE) (i32.const 1)
                               (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_read (local.get $f) (global.get $IOV_TOP) (i32.const 1)
                               (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_read (local.get $f) (global.get $IOV_HUGE) (i32.const 1)
                               (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_read (local.get $f) (global.get $IOV_GOOD_BAD) (i32.const 2)
                               (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_read (local.get $f) (global.get $IOV_GOOD) (i32.const 0x10000000)
                               (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_read (local.get $f) (global.get $IOV_GOOD) (i32.const 1)
                               (local.get $END)))))

    ;; --- fd_readdir on the preopen --------------------------------------------------
    (if (call $want) (then (call $case (call $fd_readdir (i32.const 3) (local.get $END) (i32.const 256)
                                  (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_readdir (i32.const 3) (i32.const 0xffffffff) (i32.const 256)
                                  (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_readdir (i32.const 3) (global.get $BUF) (i32.const 0xffffffff)
                                  (i64.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_readdir (i32.const 3) (global.get $BUF) (i32.const 256)
                                  (i64.const 0) (local.get $END)))))

    ;; --- fd_seek / fd_tell ----------------------------------------------------------
    (if (call $want) (then (call $case (call $fd_seek (local.get $f) (i64.const 0) (i32.const 0) (local.get $END)))))
    (if (call $want) (then (call $case (call $fd_seek (local.get $f) (i64.const 0) (i32.const 0) (i32.const 0xfffffff8)))))
    (if (call $want) (then (call $case (call $fd_tell (local.get $f) (local.get $END)))))
    (if (call $want) (then (call $case (call $fd_tell (local.get $f) (i32.const 0xfffffff8)))))

    ;; --- fd_write (to the scratch file, so stdout carries only the report) --------
    (if (call $want) (then (call $case (call $fd_write (local.get $f) (local.get $END) (i32.const 1) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_write (local.get $f) (i32.sub (local.get $END) (i32.const 4))
                                (i32.const 1) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_write (local.get $f) (global.get $IOV_STRADDLE) (i32.const 1)
                                (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_write (local.get $f) (global.get $IOV_TOP) (i32.const 1)
                                (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_write (local.get $f) (global.get $IOV_HUGE) (i32.const 1)
                                (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_write (local.get $f) (global.get $IOV_GOOD_BAD) (i32.const 2)
                                (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_write (local.get $f) (global.get $IOV_GOOD) (i32.const 0x10000000)
                                (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_write (local.get $f) (global.get $IOV_GOOD) (i32.const 0xffffffff)
                                (global.get $OUT)))))
    (if (call $want) (then (call $case (call $fd_write (local.get $f) (global.get $IOV_GOOD) (i32.const 1)
                                (local.get $END)))))

    ;; --- path_* in the preopen ------------------------------------------------------
    (if (call $want) (then (call $case (call $path_create_directory (i32.const 3) (local.get $END) (i32.const 4)))))
    (if (call $want) (then (call $case (call $path_create_directory (i32.const 3) (i32.const 0xffffffff) (i32.const 1)))))
    (if (call $want) (then (call $case (call $path_create_directory (i32.const 3) (i32.sub (local.get $END) (i32.const 2))
                                             (i32.const 4)))))
    (if (call $want) (then (call $case (call $path_create_directory (i32.const 3) (i32.const 1040) (i32.const 0xffffffff)))))

    (if (call $want) (then (call $case (call $path_filestat_get (i32.const 3) (i32.const 0) (local.get $END) (i32.const 4)
                                         (global.get $STAT)))))
    (if (call $want) (then (call $case (call $path_filestat_get (i32.const 3) (i32.const 0) (i32.const 1024)
                                         (i32.const 0xffffffff) (global.get $STAT)))))
    (if (call $want) (then (call $case (call $path_filestat_get (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 11)
                                         (local.get $END)))))
    (if (call $want) (then (call $case (call $path_filestat_get (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 11)
                                         (i32.sub (local.get $END) (i32.const 8))))))

    (if (call $want) (then (call $case (call $path_filestat_set_times (i32.const 3) (i32.const 0) (local.get $END)
                  (i32.const 4) (i64.const 0) (i64.const 0) (i32.const 0)))))
    (if (call $want) (then (call $case (call $path_filestat_set_times (i32.const 3) (i32.const 0) (i32.const 1024)
                  (i32.const 0xffffffff) (i64.const 0) (i64.const 0) (i32.const 0)))))

    (if (call $want) (then (call $case (call $path_link (i32.const 3) (i32.const 0) (local.get $END) (i32.const 4)
                                 (i32.const 3) (i32.const 1040) (i32.const 7)))))
    (if (call $want) (then (call $case (call $path_link (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 11)
                                 (i32.const 3) (local.get $END) (i32.const 4)))))
    (if (call $want) (then (call $case (call $path_link (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 11)
                                 (i32.const 3) (i32.const 1040) (i32.const 0xffffffff)))))

    (if (call $want) (then (call $case (call $path_open (i32.const 3) (i32.const 0) (local.get $END) (i32.const 4)
      (i32.const 0) (global.get $rights) (global.get $rights) (i32.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $path_open (i32.const 3) (i32.const 0) (i32.const 0xffffffff) (i32.const 1)
      (i32.const 0) (global.get $rights) (global.get $rights) (i32.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 0xffffffff)
      (i32.const 0) (global.get $rights) (global.get $rights) (i32.const 0) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 11)
      (i32.const 0) (global.get $rights) (global.get $rights) (i32.const 0) (local.get $END)))))
    (if (call $want) (then (call $case (call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 11)
      (i32.const 0) (global.get $rights) (global.get $rights) (i32.const 0) (i32.const 0xfffffffc)))))

    (if (call $want) (then (call $case (call $path_readlink (i32.const 3) (local.get $END) (i32.const 4)
                                     (global.get $BUF) (i32.const 256) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $path_readlink (i32.const 3) (i32.const 1072) (i32.const 4)
                                     (local.get $END) (i32.const 16) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $path_readlink (i32.const 3) (i32.const 1072) (i32.const 4)
                                     (global.get $BUF) (i32.const 0xffffffff) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $path_readlink (i32.const 3) (i32.const 1072) (i32.const 4)
                                     (global.get $BUF) (i32.const 256) (local.get $END)))))

    (if (call $want) (then (call $case (call $path_remove_directory (i32.const 3) (local.get $END) (i32.const 4)))))
    (if (call $want) (then (call $case (call $path_remove_directory (i32.const 3) (i32.const 1040) (i32.const 0xffffffff)))))

    (if (call $want) (then (call $case (call $path_rename (i32.const 3) (local.get $END) (i32.const 4)
                                   (i32.const 3) (i32.const 1040) (i32.const 7)))))
    (if (call $want) (then (call $case (call $path_rename (i32.const 3) (i32.const 1024) (i32.const 11)
                                   (i32.const 3) (local.get $END) (i32.const 4)))))
    (if (call $want) (then (call $case (call $path_rename (i32.const 3) (i32.const 1024) (i32.const 11)
                                   (i32.const 3) (i32.const 0xffffffff) (i32.const 1)))))

    (if (call $want) (then (call $case (call $path_symlink (local.get $END) (i32.const 4)
                                    (i32.const 3) (i32.const 1040) (i32.const 7)))))
    (if (call $want) (then (call $case (call $path_symlink (i32.const 1024) (i32.const 0xffffffff)
                                    (i32.const 3) (i32.const 1040) (i32.const 7)))))
    (if (call $want) (then (call $case (call $path_symlink (i32.const 1024) (i32.const 11)
                                    (i32.const 3) (local.get $END) (i32.const 4)))))

    (if (call $want) (then (call $case (call $path_unlink_file (i32.const 3) (local.get $END) (i32.const 4)))))
    (if (call $want) (then (call $case (call $path_unlink_file (i32.const 3) (i32.const 0xffffffff) (i32.const 1)))))

    ;; --- poll_oneoff: a zeroed subscription is a clock subscription, timeout 0 ----
    (if (call $want) (then (call $case (call $poll_oneoff (local.get $END) (global.get $EVENT) (i32.const 1)
                                   (global.get $OUT)))))
    (if (call $want) (then (call $case (call $poll_oneoff (i32.sub (local.get $END) (i32.const 8)) (global.get $EVENT)
                                   (i32.const 1) (global.get $OUT)))))
    (if (call $want) (then (call $case (call $poll_oneoff (global.get $SUB) (local.get $END) (i32.const 1)
                                   (global.get $OUT)))))
    (if (call $want) (then (call $case (call $poll_oneoff (global.get $SUB) (global.get $EVENT) (i32.const 1)
                                   (local.get $END)))))
    (if (call $want) (then (call $case (call $poll_oneoff (global.get $SUB) (global.get $EVENT) (i32.const 0x10000000)
                                   (global.get $OUT)))))

    ;; --- random_get -----------------------------------------------------------------
    (if (call $want) (then (call $case (call $random_get (local.get $END) (i32.const 16)))))
    (if (call $want) (then (call $case (call $random_get (i32.sub (local.get $END) (i32.const 8)) (i32.const 16)))))
    (if (call $want) (then (call $case (call $random_get (i32.const 0xffffffff) (i32.const 1)))))
    (if (call $want) (then (call $case (call $random_get (global.get $BUF) (i32.const 0xffffffff)))))

    ;; --- sock_* (on the scratch file: pointers are checked before the fd type) ----
    (if (call $want) (then (call $case (call $sock_accept (local.get $f) (i32.const 0) (local.get $END)))))
    (if (call $want) (then (call $case (call $sock_recv (local.get $f) (local.get $END) (i32.const 1) (i32.const 0)
                                 (global.get $OUT) (i32.add (global.get $OUT) (i32.const 4))))))
    (if (call $want) (then (call $case (call $sock_recv (local.get $f) (global.get $IOV_TOP) (i32.const 1) (i32.const 0)
                                 (global.get $OUT) (i32.add (global.get $OUT) (i32.const 4))))))
    (if (call $want) (then (call $case (call $sock_recv (local.get $f) (global.get $IOV_GOOD) (i32.const 1) (i32.const 0)
                                 (local.get $END) (i32.add (global.get $OUT) (i32.const 4))))))
    (if (call $want) (then (call $case (call $sock_recv (local.get $f) (global.get $IOV_GOOD) (i32.const 1) (i32.const 0)
                                 (global.get $OUT) (local.get $END)))))
    (if (call $want) (then (call $case (call $sock_send (local.get $f) (local.get $END) (i32.const 1) (i32.const 0)
                                 (global.get $OUT)))))
    (if (call $want) (then (call $case (call $sock_send (local.get $f) (global.get $IOV_TOP) (i32.const 1) (i32.const 0)
                                 (global.get $OUT)))))
    (if (call $want) (then (call $case (call $sock_send (local.get $f) (global.get $IOV_GOOD) (i32.const 1) (i32.const 0)
                                 (local.get $END)))))

    ;; every name must have been used: the list ends with a NUL
    (if (i32.load8_u (global.get $name)) (then unreachable)))

  (func (export "_start")
    (call $setup)
    (call $cases)
    ;; "total N efault M\n"
    (call $emit (i32.const 1104) (i32.const 6))
    (call $emit_u32 (global.get $cases))
    (call $emit (i32.const 1112) (i32.const 8))
    (call $emit_u32 (global.get $efaults))
    (call $emit_byte (i32.const 10))
    (call $flush)
    (call $proc_exit (i32.ne (global.get $cases) (global.get $efaults))))

  ;; Run the setup and then only case number k (0-based, in the order of the
  ;; names above); return its errno, or -1 if there is no case k. Lets a test
  ;; look at one case at a time, in a fresh instance each.
  (func (export "one_case") (param $k i32) (result i32)
    (call $setup)
    (global.set $only (local.get $k))
    (call $cases)
    (global.get $last))

  ;; How many cases there are (the number of names).
  (func (export "case_count") (result i32)
    (local $n i32)
    (local $at i32)
    (local.set $at (i32.const 40960))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (local.get $at))))
        (local.set $n (i32.add (local.get $n)
                               (i32.eq (i32.load8_u (local.get $at)) (i32.const 10))))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $next)))
    (local.get $n))
)
