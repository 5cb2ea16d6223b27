"""A small program for CPython 3.11 on WASI (tests/programs/test_cpython_wasi.py).

It runs on wasmtime's native WASI and on callgate's, with /data (this directory,
read-only), /out (a fresh scratch directory) and the standard library preopened, and
must print, exit and write files byte for byte alike. Nothing it prints may depend on
the run: no times, no random values, no host inode numbers (see the test's
``test_stat_identity``), and how its stdio looks (isatty ...) goes to /out/stdio.json,
which the test compares on its own.
"""

import errno
import hashlib
import json
import os
import re
import sqlite3
import stat
import sys
import zlib


def opened(path, mode="r"):
    with open(path, mode):
        return "opened"


def attempt(label, action):
    """Print what an action answered: its value, or the errno name of its OSError."""
    try:
        value = action()
    except OSError as exc:
        value = f"{errno.errorcode.get(exc.errno, exc.errno)} ({exc.strerror})"
    print(f"{label}: {value}")


print("argv:", sys.argv[1:])
print("python:", sys.platform, sys.implementation.name, sys.version_info[:3])
print("environ:", sorted(os.environ))

# Read a file from a read-only preopen, and do some work on it.
with open("/data/input.json", encoding="utf-8") as f:
    doc = json.load(f)
numbers = [int(n) for line in doc["lines"] for n in re.findall(r"\d+", line)]
words = re.sub(r"\s+\d+", "", " ".join(doc["lines"])).split()
print("numbers:", numbers, "sum:", sum(numbers), "words:", words)
canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
print("sha256:", hashlib.sha256(canonical).hexdigest())
print("md5:", hashlib.md5(b"callgate").hexdigest(),
      "blake2b:", hashlib.blake2b(b"callgate", digest_size=8).hexdigest())
info = os.stat("/data/input.json")
print("stat:", info.st_size, stat.filemode(info.st_mode), info.st_nlink, info.st_mtime_ns)
print("listdir /data:", os.listdir("/data"))
print("scandir /data:", [(e.name, e.is_dir(), e.is_file(), e.is_symlink())
                         for e in os.scandir("/data")])

# stdin, whatever it is.
data = sys.stdin.buffer.read()
print("stdin:", len(data), "bytes,", data.count(b"\n"), "lines, sha1",
      hashlib.sha1(data).hexdigest())

# What the capability filesystem and the read-only preopen answer.
attempt("open a missing file", lambda: opened("/data/missing.txt"))
attempt("open outside every preopen", lambda: opened("/etc/passwd"))
attempt("open through ..", lambda: opened("/data/../etc/passwd"))
attempt("create in the read-only preopen", lambda: opened("/data/new.txt", "w"))
attempt("mkdir an existing dir", lambda: os.mkdir("/out"))

# Write files into /out.
os.makedirs("/out/sub/deeper", exist_ok=True)
with open("/out/result.json", "w", encoding="utf-8") as f:
    json.dump({"numbers": numbers, "upper": doc["name"].upper(),
               "tags": sorted(doc["tags"])}, f, indent=2)
    f.write("\n")
with open("/out/sub/log.txt", "wb") as f:
    f.write(b"line 1\n")
with open("/out/sub/log.txt", "ab") as f:
    f.write(b"line 2\n")
os.rename("/out/sub/log.txt", "/out/sub/deeper/log.txt")
with open("/out/sub/deeper/log.txt", "rb") as f:
    f.seek(7)
    print("seek/read/tell:", f.read(), f.tell())
with open("/out/gone.txt", "w") as f:
    f.write("soon removed")
os.remove("/out/gone.txt")
os.symlink("result.json", "/out/link")
print("readlink:", os.readlink("/out/link"), stat.filemode(os.lstat("/out/link").st_mode))
with open("/out/short.txt", "w") as f:
    f.write("0123456789")
os.truncate("/out/short.txt", 4)
os.utime("/out/short.txt", ns=(1_000_000_123, 2_000_000_456))
print("truncate/utime:", os.stat("/out/short.txt").st_size,
      os.stat("/out/short.txt").st_mtime_ns)
attempt("create exclusively over a file", lambda: opened("/out/short.txt", "x"))
attempt("rmdir a non-empty dir", lambda: os.rmdir("/out/sub"))
attempt("unlink a dir", lambda: os.unlink("/out/sub"))
with open("/out/numbers.z", "wb") as f:
    f.write(zlib.compress(json.dumps(numbers * 50).encode(), 9))

# SQLite on a file: pwrite, pread, truncate, sync through WASI.
db = sqlite3.connect("/out/kv.db")
db.execute("create table kv (k text primary key, v integer)")
db.executemany("insert into kv values (?, ?)", zip(words, numbers, strict=True))
db.commit()
print("sqlite:", db.execute("select count(*), sum(v), group_concat(k, '+') from kv").fetchone())
db.close()
print("out:", sorted(os.listdir("/out")), sorted(os.listdir("/out/sub")))

# How the standard streams look to the program: compared on their own by the test.
streams = (sys.stdin, sys.stdout, sys.stderr)
report = {
    "isatty": [s.isatty() for s in streams],
    "os.isatty": [os.isatty(fd) for fd in (0, 1, 2)],
    "seekable": [s.seekable() for s in streams],
    "S_IFMT": [stat.S_IFMT(os.fstat(fd).st_mode) for fd in (0, 1, 2)],
    "line_buffering": [s.line_buffering for s in streams],
}
with open("/out/stdio.json", "w") as f:
    json.dump(report, f)

print("to stderr, then exit 3", file=sys.stderr)
sys.exit(3)
