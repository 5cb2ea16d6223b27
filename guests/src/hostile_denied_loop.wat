;; hostile_denied_loop — keeps calling gates the policy denies, ignoring errors.
;;
;; Each round makes two gate calls and ignores what they answer:
;;   wasi_snapshot_preview1.fd_write(1, iov -> "denied?\n", 1, &nwritten)
;;   callgate.probe1(round)                  (the app gate of gatecall1)
;; Run it under a policy that denies both:
;;   ERRNO(n)          every call fails and the guest carries on: run() loops
;;                     until fuel or the deadline ends it; run_n(k) returns 2*k
;;                     (all calls failed) and nothing reaches stdout;
;;   KILL_THREAD/      the first call ends the call with the runtime's typed
;;   KILL_PROCESS      violation error (KILL_PROCESS also poisons the plugin);
;;   TRAP, no broker   every call is denied, as with ERRNO.
;;
;; Exports: run(), _start() (forever) and run_n(i32 k) -> i32, which makes k
;; rounds and returns how many of the 2*k calls failed (fd_write answering a
;; non-zero errno, probe1 a negative value).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "callgate" "probe1" (func $probe1 (param i64) (result i64)))
  (memory (export "memory") 1)

  (data (i32.const 16) "denied?\n")
  (data (i32.const 0) "\10\00\00\00\08\00\00\00")  ;; iovec {buf = 16, len = 8}

  ;; One round; returns how many of its two calls failed (0, 1 or 2).
  (func $round (param $i i64) (result i32)
    (i32.add
      (i32.ne (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32))
              (i32.const 0))
      (i64.lt_s (call $probe1 (local.get $i)) (i64.const 0))))

  (func (export "run_n") (param $k i32) (result i32)
    (local $i i32)
    (local $failed i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $k)))
        (local.set $failed
          (i32.add (local.get $failed) (call $round (i64.extend_i32_u (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $failed))

  (func $forever
    (local $i i64)
    (loop $again
      (drop (call $round (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $again)))
  (export "run" (func $forever))
  (export "_start" (func $forever))
)
