;; hostile_bad_alloc — a cg_alloc that lies, to test the host side of the bytes ABI.
;;
;; The host trusts nothing cg_alloc returns: it must check the buffer lies in
;; memory before copying the input there. set_mode(k) picks the lie for the
;; following calls:
;;   0  cg_alloc returns 0            -> the runtime's "guest cannot allocate" error
;;   1  cg_alloc returns 0xfffffff0   -> out-of-bounds guest-memory error (its end
;;                                       wraps past 2^32: check in 64 bits)
;;   2  cg_alloc returns END - 4      -> out-of-bounds error for inputs > 4 bytes
;;                                       (END = memory size; fits for <= 4 bytes)
;;   3  cg_alloc traps (unreachable)  -> the runtime's trap error
;;   4  honest: returns 1024          -> echo works
;; Exports: memory, cg_alloc, set_mode(i32), echo(ptr, len) -> i64 (returns its
;; input unchanged).
(module
  (memory (export "memory") 1 1)
  (global $mode (mut i32) (i32.const 4))

  (func (export "set_mode") (param $k i32)
    (global.set $mode (local.get $k)))

  (func (export "cg_alloc") (param $size i32) (result i32)
    (block $honest
      (block $trap
        (block $straddle
          (block $wild
            (block $zero
              (br_table $zero $wild $straddle $trap $honest (global.get $mode)))
            (return (i32.const 0)))
          (return (i32.const 0xfffffff0)))
        (return (i32.sub (i32.shl (memory.size) (i32.const 16)) (i32.const 4))))
      unreachable)
    (i32.const 1024))

  (func (export "echo") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
)
