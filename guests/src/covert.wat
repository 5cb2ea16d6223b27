;; covert — both ends of the covert channels `callgate covert measure` measures.
;;
;; The host runs two instances of this module, a sender and a receiver, in turn on one
;; thread. No gate connects them; each channel is a resource they share without a gate
;; meaning them to (docs/covert.md):
;;
;;   sleep      the sender's turn is long (poll_oneoff sleeps) or short; the receiver
;;              reads the clock before and after it
;;   spin       the same with no gate at all: the sender computes for a while (clock only)
;;   pagecache  a read-only file both may read (preopened at fd 3 as shared.bin): the
;;              sender reads a page (cached: a 1) or evicts it with fd_advise DONTNEED
;;              (a 0); the receiver times its own read of that page
;;   fresh      the same without eviction: each bit has its own never-read page
;;
;; Exports (errors come back as -1 for times, a WASI errno or -errno otherwise):
;;   now() -> i64                  clock_time_get(MONOTONIC) in ns
;;   res() -> i64                  clock_res_get(MONOTONIC) in ns
;;   sleep(ns i64) -> i32          poll_oneoff on a relative clock; its errno
;;   spin(n i32) -> i32            n rounds of arithmetic, no gate
;;   open() -> i32                 path_open(3, "shared.bin", read) -> fd, or -errno
;;   touch(fd i32, off i64) -> i32 fd_pread one byte at off; its errno
;;   evict(fd i32, off i64, len i64) -> i32   fd_advise(DONTNEED); its errno
;;   probe(fd i32, off i64) -> i64 the ns a one-byte fd_pread at off takes, by the clock
;;   edge() -> i64                 read the clock until it ticks; the new time
;;   count() -> i64                clock reads until the clock next ticks
;;
;; The sender's turn is one call whatever the bit, so the host's own call into the
;; sender is no part of the signal; the bit decides inside the guest:
;;   sleep_if(bit i32, ns i64) -> i32            sleep(ns) for a 1; 0 for a 0
;;   spin_if(bit i32, n i32) -> i32              spin(n) for a 1
;;   touch_if(bit i32, fd i32, off i64) -> i32   touch(fd, off) for a 1
(module
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_res_get"
    (func $clock_res_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread"
    (func $fd_pread (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_advise"
    (func $fd_advise (param i32 i64 i64 i32) (result i32)))
  (memory (export "memory") 1)

  ;; one iovec at 256: 1 byte at 512
  (data (i32.const 256) "\00\02\00\00\01\00\00\00")
  (data (i32.const 320) "shared.bin")

  (func $now (export "now") (result i64)
    (if (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 192))
      (then (return (i64.const -1))))
    (i64.load (i32.const 192)))

  (func (export "res") (result i64)
    (if (call $clock_res_get (i32.const 1) (i32.const 192))
      (then (return (i64.const -1))))
    (i64.load (i32.const 192)))

  ;; subscription at 0 (48 bytes): userdata u64 @0, tag u8 @8 (0 = clock),
  ;; clock id u32 @16 (1 = monotonic), timeout u64 @24, precision u64 @32,
  ;; flags u16 @40 (0 = relative); event out at 64, nevents at 128
  (func $sleep (export "sleep") (param $ns i64) (result i32)
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (local.get $ns))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))

  (func (export "sleep_if") (param $bit i32) (param $ns i64) (result i32)
    (if (i32.eqz (local.get $bit)) (then (return (i32.const 0))))
    (call $sleep (local.get $ns)))

  (func (export "spin_if") (param $bit i32) (param $n i32) (result i32)
    (if (i32.eqz (local.get $bit)) (then (return (i32.const 0))))
    (call $spin (local.get $n)))

  (func (export "touch_if") (param $bit i32) (param $fd i32) (param $off i64) (result i32)
    (if (i32.eqz (local.get $bit)) (then (return (i32.const 0))))
    (call $touch (local.get $fd) (local.get $off)))

  (func $spin (export "spin") (param $n i32) (result i32)
    (local $x i32)
    (local.set $x (i32.const 1))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 1103515245))
                               (i32.const 12345)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $x))

  ;; rights: FD_READ (1<<1) | FD_SEEK (1<<2) | FD_ADVISE (1<<7); the fd lands at 400
  (func (export "open") (result i32)
    (local $err i32)
    (local.set $err (call $path_open (i32.const 3) (i32.const 0) (i32.const 320)
                                     (i32.const 10) (i32.const 0) (i64.const 134)
                                     (i64.const 0) (i32.const 0) (i32.const 400)))
    (if (local.get $err) (then (return (i32.sub (i32.const 0) (local.get $err)))))
    (i32.load (i32.const 400)))

  (func $touch (export "touch") (param $fd i32) (param $off i64) (result i32)
    (call $fd_pread (local.get $fd) (i32.const 256) (i32.const 1) (local.get $off)
                    (i32.const 300)))

  (func (export "evict") (param $fd i32) (param $off i64) (param $len i64) (result i32)
    (call $fd_advise (local.get $fd) (local.get $off) (local.get $len) (i32.const 4)))

  (func (export "probe") (param $fd i32) (param $off i64) (result i64)
    (local $t0 i64)
    (local.set $t0 (call $now))
    (if (call $touch (local.get $fd) (local.get $off)) (then (return (i64.const -1))))
    (i64.sub (call $now) (local.get $t0)))

  (func (export "edge") (result i64)
    (local $t0 i64)
    (local $t i64)
    (local.set $t0 (call $now))
    (loop $again
      (local.set $t (call $now))
      (br_if $again (i64.eq (local.get $t) (local.get $t0))))
    (local.get $t))

  (func (export "count") (result i64)
    (local $t0 i64)
    (local $n i64)
    (local.set $t0 (call $now))
    (loop $again
      (local.set $n (i64.add (local.get $n) (i64.const 1)))
      (br_if $again (i64.eq (call $now) (local.get $t0))))
    (local.get $n))
)
