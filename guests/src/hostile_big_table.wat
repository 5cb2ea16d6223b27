;; hostile_big_table — declares a function table of 100 million elements as
;; its minimum (~800 MB of host memory for the references alone).
;;
;; Instantiating it is the attack: the runtime's table cap must refuse it with
;; its table-limit error at load time.
;;
;; Exports: run() and _start(), which do nothing (they can never be reached).
(module
  (table 100000000 funcref)
  (func $run)
  (export "run" (func $run))
  (export "_start" (func $run))
)
