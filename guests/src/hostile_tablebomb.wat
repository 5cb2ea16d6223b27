;; hostile_tablebomb — grows its function table until refused, then keeps trying.
;;
;; Tables hold references (here funcref); each element costs the host memory,
;; so the runtime caps table size. The table has no declared maximum.
;;
;; Exports:
;;   grow_all() -> i32  asks for 2^28 elements at once, then 65536 at a time
;;                      until table.grow answers -1; returns the final size.
;;                      Under a cap of C elements it must return <= C.
;;   run(), _start()    grow_all(), then retries table.grow forever: ended only
;;                      by fuel or the deadline.
(module
  (table $t 1 funcref)

  (func $grow_all (export "grow_all") (result i32)
    (drop (table.grow $t (ref.null func) (i32.const 0x10000000)))
    (block $refused
      (loop $more
        (br_if $refused
          (i32.eq (table.grow $t (ref.null func) (i32.const 65536)) (i32.const -1)))
        (br $more)))
    (table.size $t))

  (func $run
    (drop (call $grow_all))
    (loop $forever
      (drop (table.grow $t (ref.null func) (i32.const 1)))
      (br $forever)))
  (export "run" (func $run))
  (export "_start" (func $run))
)
