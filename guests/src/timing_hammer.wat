;; timing_hammer — a covert timing channel between two plugins, for `callgate lab` 9.
;;
;; The host runs two instances of this module in turn. The *sender* may not talk to the
;; *receiver*: no gate connects them. But the receiver can read the clock before and
;; after the sender's turn, and the sender can make its turn long or short. So a bit
;; goes across as time: the sender sleeps 20 ms (poll_oneoff, the "hammer") for a 1
;; and returns at once for a 0. Deny the hammer and the channel closes.
;;
;; Exports:
;;   send(bit i32) -> i32   sender: for bit != 0 sleep 20 ms; returns poll_oneoff's
;;                          errno (0 for a 0 bit)
;;   now() -> i64           receiver: clock_time_get(MONOTONIC) in ns, or -1 on error
;;   work() -> i32          sender's honest job: writes "sender: working\n" to fd 1;
;;                          returns fd_write's errno
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)

  ;; one ciovec at 256: "sender: working\n" (16 bytes) at 272
  (data (i32.const 256) "\10\01\00\00\10\00\00\00")
  (data (i32.const 272) "sender: working\n")

  ;; subscription at 0 (48 bytes): userdata u64 @0, tag u8 @8 (0 = clock),
  ;; clock id u32 @16 (1 = monotonic), timeout u64 @24, precision u64 @32,
  ;; flags u16 @40 (0 = relative); event out at 64, nevents at 128
  (func (export "send") (param $bit i32) (result i32)
    (if (i32.eqz (local.get $bit)) (then (return (i32.const 0))))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 20000000))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))

  ;; the time lands at 192
  (func (export "now") (result i64)
    (if (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 192))
      (then (return (i64.const -1))))
    (i64.load (i32.const 192)))

  (func (export "work") (result i32)
    (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 240)))
)
