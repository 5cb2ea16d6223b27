;; hostile_recursion — unbounded recursion to overflow the wasm stack.
;;
;; Exports: run() -> i64 and _start(). $down(n) calls $down(n + 1) before it
;; returns, and keeps a few live locals per frame so each frame costs real
;; stack. Nothing stops it but the runtime's wasm stack limit, which must end
;; the call with a stack-overflow trap — never a host crash.
(module
  (func $down (param $n i64) (result i64)
    (local $a i64) (local $b i64) (local $c i64)
    (local.set $a (i64.mul (local.get $n) (i64.const 3)))
    (local.set $b (i64.xor (local.get $a) (i64.const 0x5555)))
    (local.set $c (call $down (i64.add (local.get $n) (i64.const 1))))
    ;; use the locals after the call so they must survive it (no tail call)
    (i64.add (local.get $c) (i64.add (local.get $a) (local.get $b))))

  (func (export "run") (result i64)
    (call $down (i64.const 0)))

  (func (export "_start")
    (drop (call $down (i64.const 0))))
)
