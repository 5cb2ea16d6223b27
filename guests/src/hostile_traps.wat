;; hostile_traps — each export ends in a different wasm trap.
;;
;; A trap inside guest code must reach the caller as the runtime's trap error,
;; naming the trap, and leave the host and other plugins untouched:
;;   unreachable()       the unreachable instruction
;;   div_zero() -> i32   integer division by zero
;;   overflow() -> i32   INT32_MIN / -1 (integer overflow)
;;   oob_load() -> i32   a load past the end of linear memory
;;   bad_indirect()      call_indirect through a null table entry
;;   bad_signature()     call_indirect whose function has another type
;;   bad_convert() -> i32  i32.trunc_f64_s of NaN
(module
  (memory (export "memory") 1)
  (type $void (func))
  (type $ret_i32 (func (result i32)))
  (table 2 funcref)
  (elem (i32.const 1) $returns_i32)
  (func $returns_i32 (result i32) (i32.const 7))

  (func (export "unreachable") unreachable)
  (func (export "div_zero") (result i32)
    (i32.div_u (i32.const 1) (i32.const 0)))
  (func (export "overflow") (result i32)
    (i32.div_s (i32.const 0x80000000) (i32.const -1)))
  (func (export "oob_load") (result i32)
    (i32.load (i32.const 65534)))
  (func (export "bad_indirect")
    (call_indirect (type $void) (i32.const 0)))
  (func (export "bad_signature")
    (call_indirect (type $void) (i32.const 1)))
  (func (export "bad_convert") (result i32)
    (i32.trunc_f64_s (f64.const nan)))
)
