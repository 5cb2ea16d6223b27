;; gatecall — drives one app-defined gate with 7 i64 arguments, for the
;; benchmarks and the gates x actions tests.
;;
;; Import: callgate.probe(i64 x7) -> i64. The filter sees the first six args
;; (seccomp_data has six slots); the seventh reaches only the gate itself.
;; Exports:
;;   once(a0..a6) -> i64   one call with the given args; returns the gate's result
;;   run(n) -> i64         n calls with args (i, 2, 3, 4, 5, 6, 7) for i = 0..n-1
;;                         (arg 0 counts, the rest are constant); returns the
;;                         wrapping sum of all results, so every result matters
(module
  (import "callgate" "probe"
    (func $probe (param i64 i64 i64 i64 i64 i64 i64) (result i64)))

  (func (export "once")
    (param i64 i64 i64 i64 i64 i64 i64) (result i64)
    (call $probe (local.get 0) (local.get 1) (local.get 2) (local.get 3)
                 (local.get 4) (local.get 5) (local.get 6)))

  (func (export "run") (param $n i32) (result i64)
    (local $i i32)
    (local $sum i64)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $sum
          (i64.add (local.get $sum)
            (call $probe (i64.extend_i32_u (local.get $i)) (i64.const 2) (i64.const 3)
                         (i64.const 4) (i64.const 5) (i64.const 6) (i64.const 7))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $sum))
)
