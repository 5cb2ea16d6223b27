;; hostile_sleep — blocks inside a gate instead of in wasm code.
;;
;; Fuel and epoch interruption only stop *wasm* code; a guest that asks the host
;; to wait stops neither. This one asks poll_oneoff to sleep for 2^64-1 ns
;; (about 584 years) on the monotonic clock. The runtime must bound the time a
;; gate may block by the call's deadline and end the call with its deadline
;; (timeout) error; without a deadline it would hang.
;;
;; Exports: run(), _start() -> the endless sleep;
;;          nap(i64 ns) -> i32: one relative sleep of ns nanoseconds, returns
;;          poll_oneoff's errno (0), to check the sleep itself works.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)

  ;; subscription at 0 (48 bytes): userdata u64 @0, tag u8 @8 (0 = clock),
  ;; clock id u32 @16 (1 = monotonic), timeout u64 @24, precision u64 @32,
  ;; flags u16 @40 (0 = relative); event out at 64, nevents at 128
  (func $sleep (param $ns i64) (result i32)
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (local.get $ns))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))

  (func (export "nap") (param $ns i64) (result i32)
    (call $sleep (local.get $ns)))

  (func $forever
    (loop $again
      (drop (call $sleep (i64.const -1)))
      (br $again)))
  (export "run" (func $forever))
  (export "_start" (func $forever))
)
