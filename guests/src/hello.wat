;; hello — the smallest useful callgate plugin, written by hand in WAT.
;;
;; It imports nothing (so it can reach nothing) and shows both call styles:
;;   add(i64, i64) -> i64          an integer function: no memory involved;
;;   echo(ptr, len) -> i64         a bytes function (see guests/include/callgate.h):
;;                                 returns (ptr << 32) | len of its output, here
;;                                 the input itself, unchanged;
;;   greet(ptr, len) -> i64        bytes out: "hello, " followed by the input.
;; For bytes functions the host first calls cg_alloc(len) to get a buffer and
;; copies the input there.
(module
  (memory (export "memory") 1)

  ;; Static data lives below $HEAP; buffers handed out by cg_alloc start there.
  (global $HEAP i32 (i32.const 1024))
  (data (i32.const 16) "hello, ")

  ;; cg_alloc(size) -> ptr: a one-buffer allocator. Every call returns $HEAP,
  ;; growing memory to fit; only the latest buffer is live, which is all the
  ;; host needs (one input per call). Returns 0 when memory cannot grow.
  (func $cg_alloc (export "cg_alloc") (param $size i32) (result i32)
    (local $need i64)  ;; bytes needed in total, in i64 so it cannot wrap
    (local.set $need
      (i64.add (i64.extend_i32_u (global.get $HEAP)) (i64.extend_i32_u (local.get $size))))
    (if (i64.gt_u (local.get $need)
                  (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
      (then
        ;; grow by ceil((need - current) / 64 KiB) pages; -1 means refused
        (if (i32.eq
              (memory.grow
                (i32.wrap_i64
                  (i64.shr_u
                    (i64.add
                      (i64.sub (local.get $need)
                               (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
                      (i64.const 65535))
                    (i64.const 16))))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.get $HEAP))

  ;; Pack a bytes result: (ptr << 32) | len.
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "add") (param $a i64) (param $b i64) (result i64)
    (i64.add (local.get $a) (local.get $b)))

  (func (export "echo") (param $ptr i32) (param $len i32) (result i64)
    (call $pack (local.get $ptr) (local.get $len)))

  ;; greet: move the input 7 bytes up inside its buffer and put "hello, " in
  ;; front. memory.copy handles the overlap like memmove.
  (func (export "greet") (param $ptr i32) (param $len i32) (result i64)
    (local $out i32)
    (local.set $out (call $cg_alloc (i32.add (local.get $len) (i32.const 7))))
    (if (i32.eqz (local.get $out)) (then unreachable))  ;; out of memory: trap
    (memory.copy (i32.add (local.get $out) (i32.const 7)) (local.get $ptr) (local.get $len))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 7))
    (call $pack (local.get $out) (i32.add (local.get $len) (i32.const 7))))
)
