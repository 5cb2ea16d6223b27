;; hostile_abi_mismatch — exports that break the bytes ABI's shape.
;;
;; There is no exported memory, cg_alloc has the wrong signature, and the
;; "bytes" functions have the wrong shapes. Calling any of them as a bytes
;; function must give the runtime's clear ABI error (what is missing or
;; mistyped), never a crash or a read of some other memory:
;;   cg_alloc(i64) -> i64           wrong signature (should be (i32) -> i32)
;;   short(ptr, len) -> i32         result not i64
;;   three(ptr, len, x) -> i64      one parameter too many
;; An integer call still works: add(i32, i32) -> i32.
(module
  (memory 1)  ;; a memory, but not exported
  (func (export "cg_alloc") (param i64) (result i64) (i64.const 1024))
  (func (export "short") (param i32 i32) (result i32) (i32.const 0))
  (func (export "three") (param i32 i32 i32) (result i64) (i64.const 0))
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))
)
