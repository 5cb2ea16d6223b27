;; hostile_membomb — grab all the linear memory the runtime allows, touch it,
;; then keep asking for more.
;;
;; The memory has no declared maximum, so only the runtime's memory cap stands
;; between this module and 4 GiB of host RAM: never run it without one.
;;
;; Exports:
;;   grow_all() -> i32  first asks for the whole 4 GiB in one memory.grow, then
;;                      grows one 64 KiB page at a time until memory.grow
;;                      answers -1, writes to every page (so the memory is
;;                      really committed, not just reserved) and returns the
;;                      final size in pages. Under a cap of C bytes it must
;;                      return a value <= C / 65536.
;;   run(), _start()    grow_all(), then loop forever retrying memory.grow and
;;                      rewriting every page: ended only by fuel or deadline.
(module
  (memory (export "memory") 1)

  (func $grow_all (export "grow_all") (result i32)
    ;; One giant request first: everything up to the 4 GiB wasm32 maximum.
    (drop (memory.grow (i32.const 65535)))
    ;; Then page by page until refused.
    (block $refused
      (loop $more
        (br_if $refused (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
    (call $touch_all)
    (memory.size))

  ;; Write one byte into every page so the host must back it with real memory.
  (func $touch_all
    (local $page i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $page) (memory.size)))
        (i32.store8 (i32.shl (local.get $page) (i32.const 16)) (i32.const 0xAA))
        (local.set $page (i32.add (local.get $page) (i32.const 1)))
        (br $next))))

  (func $run
    (drop (call $grow_all))
    (loop $forever
      (drop (memory.grow (i32.const 16)))
      (call $touch_all)
      (br $forever)))
  (export "run" (func $run))
  (export "_start" (func $run))
)
