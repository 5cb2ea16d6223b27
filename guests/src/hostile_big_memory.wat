;; hostile_big_memory — declares 4 GiB of linear memory as its *minimum*.
;;
;; No code needs to run: instantiating this module is the attack. The runtime's
;; memory cap must refuse the instantiation with its memory-limit error, at
;; load time, before the host commits anything.
;;
;; Exports: run() and _start(), which do nothing (they can never be reached).
(module
  (memory (export "memory") 65536)
  (func $run)
  (export "run" (func $run))
  (export "_start" (func $run))
)
