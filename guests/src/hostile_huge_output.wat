;; hostile_huge_output — tries to hand the host far more bytes than any sane
;; output cap, or bytes that are not there at all.
;;
;; Bytes-ABI exports (see guests/include/callgate.h; the input is ignored):
;;   huge(ptr, len) -> i64    grows memory by up to 64 MiB and returns all of
;;                            memory as its output: in bounds, but far over the
;;                            cap. The host must refuse it by length, before
;;                            copying, with its output-limit error.
;;   wild(ptr, len) -> i64    returns ptr 0xfffffff0, len 0x20: the end wraps
;;                            past 2^32 to 0x10, so a host that adds in 32 bits
;;                            would read from address 0. Must be refused as an
;;                            out-of-bounds guest pointer.
;;   wild_len(ptr, len) -> i64  returns ptr 0, len 0xffffffff: out of bounds.
;; WASI output:
;;   flood(), _start()        writes 64 KiB blocks to stdout and stderr in an
;;                            endless loop, ignoring errors. The runtime's
;;                            write cap must end it with the output-limit error
;;                            (or, without one, fuel or the deadline).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)

  ;; iovec {buf = 65536, len = 65536}: the whole second page
  (data (i32.const 0) "\00\00\01\00\00\00\01\00")

  ;; cg_alloc: everything lives at 1024 (one live buffer), growing memory to fit.
  (func (export "cg_alloc") (param $size i32) (result i32)
    (local $need i64)
    (local.set $need (i64.add (i64.const 1024) (i64.extend_i32_u (local.get $size))))
    (block $fits
      (br_if $fits (i64.le_u (local.get $need)
                             (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16))))
      (br_if $fits (i32.ne (memory.grow
                             (i32.wrap_i64 (i64.shr_u (i64.add (local.get $need)
                                                               (i64.const 65535))
                                                      (i64.const 16))))
                           (i32.const -1)))
      (return (i32.const 0)))
    (i32.const 1024))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "huge") (param i32 i32) (result i64)
    ;; 64 MiB if allowed, else 16 MiB, else 1 MiB: whatever the cap lets through
    (if (i32.eq (memory.grow (i32.const 1024)) (i32.const -1))
      (then
        (if (i32.eq (memory.grow (i32.const 256)) (i32.const -1))
          (then (drop (memory.grow (i32.const 16)))))))
    (call $pack (i32.const 0) (i32.shl (memory.size) (i32.const 16))))

  (func (export "wild") (param i32 i32) (result i64)
    (call $pack (i32.const 0xfffffff0) (i32.const 0x20)))

  (func (export "wild_len") (param i32 i32) (result i64)
    (call $pack (i32.const 0) (i32.const 0xffffffff)))

  (func $flood
    (loop $again
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
      (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 16)))
      (br $again)))
  (export "flood" (func $flood))
  (export "_start" (func $flood))
)
