;; hostile_foreign_import — imports functions that are not gates.
;;
;; A plugin's import table is its whole reach, and callgate only satisfies
;; imports that are gates. This module asks for two that are not:
;;   env.system                              (a libc-style escape hatch)
;;   wasi_snapshot_preview1.not_a_function   (a WASI module name, unknown function)
;; next to one real gate, wasi_snapshot_preview1.fd_write. The runtime must
;; refuse it at load time, before any code runs, with an error that lists
;; exactly the two offending imports (and not fd_write).
;;
;; Exports: run() and _start(), which would call env.system — if it ever ran.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "env" "system" (func $system (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "not_a_function" (func $nope (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "rm -rf /\00")

  (func $run
    (drop (call $system (i32.const 64)))
    (drop (call $nope)))
  (export "run" (func $run))
  (export "_start" (func $run))
)
