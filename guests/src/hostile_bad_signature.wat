;; hostile_bad_signature — imports real gate names with the wrong types.
;;
;; wasi_snapshot_preview1.fd_write really is (i32 i32 i32 i32) -> i32 and
;; proc_exit is (i32) -> (); here they are declared with other signatures. A
;; gate trusted with the wrong signature would read its arguments wrongly, so
;; the runtime must refuse the module at load time, naming each import with
;; the signature it expected and the one it got.
;;
;; Exports: run() and _start(), which would call the mistyped imports.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i64) (result i64)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32) (result i32)))
  (memory (export "memory") 1)

  (func $run
    (drop (call $fd_write (i64.const -1)))
    (drop (call $proc_exit (i32.const 0))))
  (export "run" (func $run))
  (export "_start" (func $run))
)
