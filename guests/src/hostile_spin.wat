;; hostile_spin — an infinite loop that never calls anything.
;;
;; Exports: run() and _start(), both `loop { }` forever. Only the runtime's
;; limits can end it: fuel (out-of-fuel trap) or the per-call deadline (epoch
;; interrupt). Nothing here touches memory or gates, so the host must stay
;; responsive from another thread while it spins.
(module
  (func $spin
    (loop $forever (br $forever)))
  (export "run" (func $spin))
  (export "_start" (func $spin))
)
