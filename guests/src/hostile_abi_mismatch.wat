;; hostile_abi_mismatch — exports that break the bytes ABI's shape.
;;
;; cg_alloc has the wrong signature, two "bytes" functions have the wrong
;; shapes, and no memory is exported. Calling any of them as a bytes function
;; must give the runtime's clear ABI error (what is missing or mistyped), never
;; a crash or a read of some other memory:
;;   echo(ptr, len) -> i64          the right shape, but the allocator it needs
;;                                  is cg_alloc(i64) -> i64 (should be (i32) -> i32)
;;   short(ptr, len) -> i32         result not i64
;;   three(ptr, len, x) -> i64      one parameter too many
;; An integer call still works: add(i32, i32) -> i32.
;; (hostile_no_memory has a correct allocator but no exported memory.)
(module
  (memory 1)  ;; a memory, but not exported
  (func (export "cg_alloc") (param i64) (result i64) (i64.const 1024))
  (func (export "echo") (param i32 i32) (result i64) (i64.const 0))
  (func (export "short") (param i32 i32) (result i32) (i32.const 0))
  (func (export "three") (param i32 i32 i32) (result i64) (i64.const 0))
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))
)
