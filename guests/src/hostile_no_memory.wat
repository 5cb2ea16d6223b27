;; hostile_no_memory — the bytes ABI without an exported memory.
;;
;; cg_alloc and echo have the right signatures, but the module's memory is not
;; exported, so the host has nowhere to copy the input. A bytes call must give
;; the runtime's ABI error naming the missing `memory` export; the integer call
;; cg_alloc(16) still returns 1024.
(module
  (memory 1)  ;; internal only
  (func (export "cg_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "echo") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
)
