;; gatecall1 — the one-argument twin of gatecall, to measure how gate cost
;; grows with the number of arguments.
;;
;; Import: callgate.probe1(i64) -> i64.
;; Exports:
;;   once(a0) -> i64   one call; returns the gate's result
;;   run(n) -> i64     n calls with arg i for i = 0..n-1; returns the wrapping
;;                     sum of all results
(module
  (import "callgate" "probe1" (func $probe1 (param i64) (result i64)))

  (func (export "once") (param i64) (result i64)
    (call $probe1 (local.get 0)))

  (func (export "run") (param $n i32) (result i64)
    (local $i i32)
    (local $sum i64)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $sum
          (i64.add (local.get $sum) (call $probe1 (i64.extend_i32_u (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $sum))
)
