;; extism_calls — the Extism peer of guests/src/gatecall*.wat, for bench_extism.py.
;;
;; An Extism plugin is a wasm module that imports Extism's host ABI ("extism:host/env")
;; and exports functions of type () -> i32 that read their input and set their output
;; through that ABI. Host functions the application defines come from "extism:host/user".
;;
;; Imports (user): probe(i64 x7) -> i64 and probe1(i64) -> i64, like callgate's probes.
;; Exports:
;;   run   input: u64 n (little-endian). n calls probe(i, 2, 3, 4, 5, 6, 7);
;;         output: the u64 wrapping sum of the results.
;;   run1  the same with probe1(i).
;;   echo  output = input (the Plugin.call round trip through the bytes ABI;
;;         inputs are a multiple of 8 bytes long).
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/user" "probe"
    (func $probe (param i64 i64 i64 i64 i64 i64 i64) (result i64)))
  (import "extism:host/user" "probe1" (func $probe1 (param i64) (result i64)))
  (memory (export "memory") 1)

  (func $output_u64 (param $value i64)
    (local $offset i64)
    (local.set $offset (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $offset) (local.get $value))
    (call $output_set (local.get $offset) (i64.const 8)))

  (func (export "run") (result i32)
    (local $n i64) (local $i i64) (local $sum i64)
    (local.set $n (call $input_load_u64 (i64.const 0)))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $sum
          (i64.add (local.get $sum)
            (call $probe (local.get $i) (i64.const 2) (i64.const 3) (i64.const 4)
                         (i64.const 5) (i64.const 6) (i64.const 7))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (call $output_u64 (local.get $sum))
    (i32.const 0))

  (func (export "run1") (result i32)
    (local $n i64) (local $i i64) (local $sum i64)
    (local.set $n (call $input_load_u64 (i64.const 0)))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $sum (i64.add (local.get $sum) (call $probe1 (local.get $i))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (call $output_u64 (local.get $sum))
    (i32.const 0))

  (func (export "echo") (result i32)
    (local $length i64) (local $out i64) (local $at i64)
    (local.set $length (call $input_length))
    (local.set $out (call $alloc (local.get $length)))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $at) (local.get $length)))
        (call $store_u64 (i64.add (local.get $out) (local.get $at))
                         (call $input_load_u64 (local.get $at)))
        (local.set $at (i64.add (local.get $at) (i64.const 8)))
        (br $next)))
    (call $output_set (local.get $out) (local.get $length))
    (i32.const 0))
)
