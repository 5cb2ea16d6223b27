// callgate-build: command
/*
 * wasi_fdtable — a script of fd-table operations, one report line each, for differential tests.
 *
 *   wasi_fdtable OUTFD OP...
 *
 * Runs the OPs in order with raw __wasi_* calls (no libc fd bookkeeping in between) and
 * writes the report to fd OUTFD at the end (so a script may close or move any other fd,
 * stdout included, without losing it). Directory fds default to 3 (the first preopen).
 *
 *   o[@D]    path_open(D, "fK", CREAT|TRUNC) for the next K; writes "fK" into it.
 *            Reports "o fK E fd=N"
 *   d[@D]    path_open(D, ".", DIRECTORY): "d E fd=N"
 *   O:K[@D]  K opens as `o`, one line: the fds, then the first errno if one failed
 *   c:N      fd_close(N): "c N E"
 *   r:A:B    fd_renumber(A, B): "r A B E"
 *   w:N      what fd N is: "w N E" for EBADF, "w N file fK", "w N preopen NAME",
 *            "w N dir", or "w N type=T" (stdio and anything else)
 *   p:N      fd_write(N, "<N>\n") (a marker on whatever stream fd N is): "p N E"
 *   fds      the open fds below 64 (those fd_fdstat_get accepts): "fds 0 1 2 3"
 *   s:N      fd N as a program sees it: fd_fdstat_get (filetype, flags, rights base and
 *            inheriting, in hex), fd_filestat_get (every field) and libc's isatty()
 *   S:N      the other fd_* calls on N (an empty read, or for fd 0 an empty write;
 *            fdstat_set_flags, seek, tell, pread, pwrite, sync, datasync, advise, allocate,
 *            filestat_set_size and _set_times, readdir): their errnos, for stdio
 *   P:N      path_* calls with N as the directory: their errnos
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

static char report[1 << 16];
static size_t used;
static int files;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(report + used, sizeof report - used, fmt, ap);
    va_end(ap);
    if (n > 0)
        used += (size_t)n < sizeof report - used ? (size_t)n : sizeof report - used - 1;
}

static const __wasi_rights_t FILE_RIGHTS =
    __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_WRITE | __WASI_RIGHTS_FD_SEEK
    | __WASI_RIGHTS_FD_TELL | __WASI_RIGHTS_FD_FILESTAT_GET;
static const __wasi_rights_t DIR_RIGHTS =
    __WASI_RIGHTS_PATH_OPEN | __WASI_RIGHTS_PATH_CREATE_FILE | __WASI_RIGHTS_FD_READDIR
    | __WASI_RIGHTS_PATH_FILESTAT_SET_SIZE | __WASI_RIGHTS_FD_FILESTAT_GET;

static __wasi_errno_t open_file(__wasi_fd_t at, __wasi_fd_t *fd, char *name) {
    snprintf(name, 16, "f%d", ++files);
    __wasi_errno_t e = __wasi_path_open(at, 0, name, __WASI_OFLAGS_CREAT | __WASI_OFLAGS_TRUNC,
                                        FILE_RIGHTS, FILE_RIGHTS, 0, fd);
    if (e == 0) {
        __wasi_ciovec_t iov = {(const uint8_t *)name, strlen(name)};
        __wasi_size_t n;
        (void)!__wasi_fd_write(*fd, &iov, 1, &n);
    }
    return e;
}

static __wasi_fd_t dir_of(const char *arg) {
    const char *at = strchr(arg, '@');
    return at ? (__wasi_fd_t)atoi(at + 1) : 3;
}

static void who(__wasi_fd_t fd) {
    __wasi_fdstat_t st;
    __wasi_errno_t e = __wasi_fd_fdstat_get(fd, &st);
    if (e) {
        say("w %u %d\n", fd, e);
        return;
    }
    if (st.fs_filetype == __WASI_FILETYPE_REGULAR_FILE) {
        char buf[16] = {0};
        __wasi_iovec_t iov = {(uint8_t *)buf, sizeof buf - 1};
        __wasi_size_t n = 0;
        e = __wasi_fd_pread(fd, &iov, 1, 0, &n);
        say("w %u file %s\n", fd, e ? "?" : buf);
    } else if (st.fs_filetype == __WASI_FILETYPE_DIRECTORY) {
        __wasi_prestat_t pre;
        char name[256] = {0};
        if (__wasi_fd_prestat_get(fd, &pre) == 0 && pre.u.dir.pr_name_len < sizeof name
            && __wasi_fd_prestat_dir_name(fd, (uint8_t *)name, pre.u.dir.pr_name_len) == 0)
            say("w %u preopen %s\n", fd, name);
        else
            say("w %u dir\n", fd);
    } else {
        say("w %u type=%d\n", fd, st.fs_filetype);
    }
}

static void describe(__wasi_fd_t fd) {
    __wasi_fdstat_t st;
    __wasi_errno_t e = __wasi_fd_fdstat_get(fd, &st);
    if (e)
        say("fdstat %u %d\n", fd, e);
    else
        say("fdstat %u 0 type=%d flags=%d base=%#llx inheriting=%#llx\n", fd, st.fs_filetype,
            st.fs_flags, (unsigned long long)st.fs_rights_base,
            (unsigned long long)st.fs_rights_inheriting);
    __wasi_filestat_t fs;
    e = __wasi_fd_filestat_get(fd, &fs);
    if (e)
        say("filestat %u %d\n", fd, e);
    else
        say("filestat %u 0 dev=%llu ino=%llu type=%d nlink=%llu size=%llu atim=%llu mtim=%llu "
            "ctim=%llu\n", fd, (unsigned long long)fs.dev, (unsigned long long)fs.ino,
            fs.filetype, (unsigned long long)fs.nlink, (unsigned long long)fs.size,
            (unsigned long long)fs.atim, (unsigned long long)fs.mtim,
            (unsigned long long)fs.ctim);
    say("isatty %u %d\n", fd, isatty((int)fd));
}

static void other_calls(__wasi_fd_t fd) {
    __wasi_filesize_t pos;
    __wasi_size_t n;
    char buf[4];
    __wasi_iovec_t iov = {(uint8_t *)buf, 0};
    __wasi_ciovec_t ciov = {(const uint8_t *)buf, 0};
    if (fd == 0)
        say("calls %u write=%d", fd, __wasi_fd_write(fd, &ciov, 1, &n));
    else
        say("calls %u read=%d", fd, __wasi_fd_read(fd, &iov, 1, &n));
    say(" set_flags=%d seek=%d tell=%d pread=%d pwrite=%d sync=%d datasync=%d "
        "advise=%d allocate=%d set_size=%d set_times=%d readdir=%d\n",
        __wasi_fd_fdstat_set_flags(fd, 0), __wasi_fd_seek(fd, 0, __WASI_WHENCE_CUR, &pos),
        __wasi_fd_tell(fd, &pos), __wasi_fd_pread(fd, &iov, 1, 0, &n),
        __wasi_fd_pwrite(fd, &ciov, 1, 0, &n), __wasi_fd_sync(fd), __wasi_fd_datasync(fd),
        __wasi_fd_advise(fd, 0, 0, __WASI_ADVICE_NORMAL), __wasi_fd_allocate(fd, 0, 1),
        __wasi_fd_filestat_set_size(fd, 0),
        __wasi_fd_filestat_set_times(fd, 0, 0, __WASI_FSTFLAGS_MTIM_NOW),
        __wasi_fd_readdir(fd, (uint8_t *)buf, sizeof buf, 0, &n));
}

static void path_calls(__wasi_fd_t fd) {
    __wasi_fd_t opened;
    __wasi_filestat_t st;
    __wasi_size_t n;
    char buf[8];
    say("paths %u open=%d stat=%d mkdir=%d rmdir=%d unlink=%d readlink=%d symlink=%d "
        "rename=%d link=%d set_times=%d\n", fd,
        __wasi_path_open(fd, 0, "x", 0, FILE_RIGHTS, 0, 0, &opened),
        __wasi_path_filestat_get(fd, 0, "x", &st), __wasi_path_create_directory(fd, "x"),
        __wasi_path_remove_directory(fd, "x"), __wasi_path_unlink_file(fd, "x"),
        __wasi_path_readlink(fd, "x", (uint8_t *)buf, sizeof buf, &n),
        __wasi_path_symlink("t", fd, "x"), __wasi_path_rename(fd, "x", fd, "y"),
        __wasi_path_link(fd, 0, "x", fd, "y"),
        __wasi_path_filestat_set_times(fd, 0, "x", 0, 0, __WASI_FSTFLAGS_MTIM_NOW));
}

static void run(const char *arg) {
    __wasi_fd_t fd;
    __wasi_errno_t e;
    char name[16];
    unsigned a, b;
    if (arg[0] == 'o' && (arg[1] == 0 || arg[1] == '@')) {
        e = open_file(dir_of(arg), &fd, name);
        if (e)
            say("o %s %d\n", name, e);
        else
            say("o %s 0 fd=%u\n", name, fd);
    } else if (arg[0] == 'd' && (arg[1] == 0 || arg[1] == '@')) {
        e = __wasi_path_open(dir_of(arg), 0, ".", __WASI_OFLAGS_DIRECTORY, DIR_RIGHTS,
                             DIR_RIGHTS | FILE_RIGHTS, 0, &fd);
        if (e)
            say("d %d\n", e);
        else
            say("d 0 fd=%u\n", fd);
    } else if (sscanf(arg, "O:%u", &a) == 1) {
        say("O");
        for (unsigned i = 0; i < a; i++) {
            e = open_file(dir_of(arg), &fd, name);
            if (e) {
                say(" error %d", e);
                break;
            }
            say(" %u", fd);
        }
        say("\n");
    } else if (sscanf(arg, "c:%u", &a) == 1) {
        say("c %u %d\n", a, __wasi_fd_close(a));
    } else if (sscanf(arg, "r:%u:%u", &a, &b) == 2) {
        say("r %u %u %d\n", a, b, __wasi_fd_renumber(a, b));
    } else if (sscanf(arg, "w:%u", &a) == 1) {
        who(a);
    } else if (sscanf(arg, "p:%u", &a) == 1) {
        char mark[16];
        snprintf(mark, sizeof mark, "<%u>\n", a);
        __wasi_ciovec_t iov = {(const uint8_t *)mark, strlen(mark)};
        __wasi_size_t n;
        say("p %u %d\n", a, __wasi_fd_write(a, &iov, 1, &n));
    } else if (strcmp(arg, "fds") == 0) {
        say("fds");
        for (__wasi_fd_t i = 0; i < 64; i++) {
            __wasi_fdstat_t st;
            if (__wasi_fd_fdstat_get(i, &st) == 0)
                say(" %u", i);
        }
        say("\n");
    } else if (sscanf(arg, "s:%u", &a) == 1) {
        describe(a);
    } else if (sscanf(arg, "S:%u", &a) == 1) {
        other_calls(a);
    } else if (sscanf(arg, "P:%u", &a) == 1) {
        path_calls(a);
    } else {
        say("bad op %s\n", arg);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: wasi_fdtable OUTFD OP...\n");
        return 2;
    }
    __wasi_fd_t out = (__wasi_fd_t)atoi(argv[1]);
    for (int i = 2; i < argc; i++)
        run(argv[i]);
    size_t done = 0;
    while (done < used) {
        __wasi_ciovec_t iov = {(const uint8_t *)report + done, used - done};
        __wasi_size_t n = 0;
        if (__wasi_fd_write(out, &iov, 1, &n) != 0 || n == 0)
            return 1;
        done += n;
    }
    return 0;
}
