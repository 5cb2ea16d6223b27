;; wasi_calls — one WASI call in a loop, for benchmarks/bench_native.py.
;;
;; The same module runs on wasmtime's native WASI and on callgate's gated WASI. Each
;; export makes n calls of one WASI function and returns the sum of their errnos (so a
;; failing call is noticed; every call here should return 0, but `denied`'s).
;;
;; Memory layout: 64 ret slot, 128 random buffer (16 B), 256 an iovec {512, 16},
;; 264 an iovec {1024, 4096}, 512 16 bytes to write, 1024 a 4 KiB read buffer,
;; 8192 the path passed to `open`.
(module
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get"
    (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get"
    (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek"
    (func $fd_seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "\00\02\00\00\10\00\00\00\00\04\00\00\00\10\00\00")
  (data (i32.const 512) "0123456789abcdef")

  ;; clock_time_get(MONOTONIC, precision 0, ret 64), n times
  (func (export "clock") (param $n i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $sum (i32.add (local.get $sum)
        (call $clock_time_get (i32.const 1) (i64.const 0) (i32.const 64))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $sum))

  ;; random_get(128, 16), n times
  (func (export "random") (param $n i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $sum (i32.add (local.get $sum)
        (call $random_get (i32.const 128) (i32.const 16))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $sum))

  ;; fd_prestat_get(3, 64), n times
  (func (export "prestat") (param $n i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $sum (i32.add (local.get $sum)
        (call $fd_prestat_get (i32.const 3) (i32.const 64))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $sum))

  ;; fd_write(fd, the 16-byte iovec at 256, 1, 64), n times
  (func (export "write") (param $n i32) (param $fd i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $sum (i32.add (local.get $sum)
        (call $fd_write (local.get $fd) (i32.const 256) (i32.const 1) (i32.const 64))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $sum))

  ;; fd_read(fd, the 4 KiB iovec at 264, 1, 64), n times; every 256th read is preceded
  ;; by fd_seek(fd, 0, SET) so a 1 MiB file never runs out
  (func (export "read") (param $n i32) (param $fd i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (if (i32.eqz (i32.and (local.get $i) (i32.const 255)))
        (then (local.set $sum (i32.add (local.get $sum)
          (call $fd_seek (local.get $fd) (i64.const 0) (i32.const 0) (i32.const 64))))))
      (local.set $sum (i32.add (local.get $sum)
        (call $fd_read (local.get $fd) (i32.const 264) (i32.const 1) (i32.const 64))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $sum))

  ;; path_open(3, 0, path at 8192 of len, oflags, all rights) -> the fd, or -errno
  (func (export "open") (param $len i32) (param $oflags i32) (result i32)
    (local $err i32)
    (local.set $err (call $path_open (i32.const 3) (i32.const 0) (i32.const 8192)
      (local.get $len) (local.get $oflags) (i64.const 0x1fffffff) (i64.const 0x1fffffff)
      (i32.const 0) (i32.const 64)))
    (if (result i32) (local.get $err)
      (then (i32.sub (i32.const 0) (local.get $err)))
      (else (i32.load (i32.const 64))))))
