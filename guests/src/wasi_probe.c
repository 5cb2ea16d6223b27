// callgate-build: command -Wno-unused-result -Wno-format
/*
 * wasi_probe — raw preview1 calls at their edges, one line per call, for differential tests.
 *
 *   wasi_probe NAME      (NAME: the guest path of a preopened, empty, writable directory)
 *
 * Calls the __wasi_* functions directly (no libc translation in between) and prints
 * "<label> <errno>" (plus values that two conforming implementations must agree on:
 * sizes, filetypes, counts, link contents; never inode numbers or times). callgate's
 * gated WASI and wasmtime's native WASI must print the same lines, so this is where the
 * tricky cases of the Rust wasi-testsuite are compared: trailing slashes, "..", absolute
 * paths, NUL bytes, symlink loops and dangling links, O_DIRECTORY/O_EXCL/O_TRUNC, fd ops
 * on directories, seek/whence, renumber, readdir cookies and truncation, fstflags,
 * poll_oneoff, link/rename/remove errors.
 */
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

/* proc_raise is gone from wasi-libc's header but still a preview1 function. */
__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_raise")))
int32_t raw_proc_raise(int32_t sig);

static __wasi_fd_t dir;
static const __wasi_rights_t ALL = 0x1fffffff;

static void line(const char *label, __wasi_errno_t e) { printf("%s %d\n", label, e); }

static __wasi_errno_t op(const char *path, __wasi_lookupflags_t look, __wasi_oflags_t o,
                         __wasi_rights_t rights, __wasi_fdflags_t fl, __wasi_fd_t *fd) {
    return __wasi_path_open(dir, look, path, o, rights, ALL, fl, fd);
}

static void open_case(const char *label, const char *path, __wasi_lookupflags_t look,
                      __wasi_oflags_t o, __wasi_rights_t rights) {
    __wasi_fd_t fd;
    __wasi_errno_t e = op(path, look, o, rights, 0, &fd);
    if (e == 0) {
        __wasi_fdstat_t st;
        __wasi_fd_fdstat_get(fd, &st);
        printf("%s 0 type=%d\n", label, st.fs_filetype);
        __wasi_fd_close(fd);
    } else {
        line(label, e);
    }
}

static __wasi_fd_t make_file(const char *path, const char *data) {
    __wasi_fd_t fd;
    __wasi_errno_t e = op(path, 0, __WASI_OFLAGS_CREAT | __WASI_OFLAGS_TRUNC,
                          __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_WRITE | __WASI_RIGHTS_FD_SEEK
                          | __WASI_RIGHTS_FD_TELL | __WASI_RIGHTS_FD_FILESTAT_GET
                          | __WASI_RIGHTS_FD_FILESTAT_SET_SIZE | __WASI_RIGHTS_FD_ALLOCATE
                          | __WASI_RIGHTS_FD_ADVISE | __WASI_RIGHTS_FD_FILESTAT_SET_TIMES
                          | __WASI_RIGHTS_FD_FDSTAT_SET_FLAGS | __WASI_RIGHTS_POLL_FD_READWRITE,
                          0, &fd);
    if (e) {
        line("make_file", e);
        return (__wasi_fd_t)-1;
    }
    __wasi_ciovec_t iov = {(const uint8_t *)data, strlen(data)};
    __wasi_size_t n;
    __wasi_fd_write(fd, &iov, 1, &n);
    return fd;
}

static void stat_case(const char *label, const char *path, __wasi_lookupflags_t look) {
    __wasi_filestat_t st;
    __wasi_errno_t e = __wasi_path_filestat_get(dir, look, path, &st);
    if (e == 0)
        printf("%s 0 type=%d size=%llu nlink=%llu\n", label, st.filetype,
               (unsigned long long)(st.filetype == 3 ? 0 : st.size),
               (unsigned long long)st.nlink);
    else
        line(label, e);
}

static void readdir_case(const char *label, __wasi_fd_t fd, size_t buflen, __wasi_dircookie_t c) {
    uint8_t buf[512];
    __wasi_size_t used = 0;
    __wasi_errno_t e = __wasi_fd_readdir(fd, buf, buflen, c, &used);
    printf("%s %d used=%u", label, e, used);
    size_t pos = 0;
    int count = 0;
    while (pos + sizeof(__wasi_dirent_t) <= used) {
        __wasi_dirent_t d;
        memcpy(&d, buf + pos, sizeof d);
        pos += sizeof d;
        count++;
        if (pos + d.d_namlen > used) {
            printf(" [cut namlen=%u]", d.d_namlen);
            break;
        }
        pos += d.d_namlen;
    }
    printf(" entries=%d\n", count);
}

static void paths(void) {
    line("mkdir dir", __wasi_path_create_directory(dir, "dir"));
    line("mkdir dir/nested/", __wasi_path_create_directory(dir, "dir/nested/"));
    line("mkdir dir again", __wasi_path_create_directory(dir, "dir"));
    line("mkdir .", __wasi_path_create_directory(dir, "."));
    line("mkdir ..", __wasi_path_create_directory(dir, ".."));
    line("mkdir /abs", __wasi_path_create_directory(dir, "/abs"));
    line("mkdir empty", __wasi_path_create_directory(dir, ""));
    __wasi_fd_close(make_file("dir/nested/file", "hello"));
    open_case("open abs", "/dir/nested/file", 0, 0, 0);
    open_case("open dotdot inside", "dir/.//nested/../../dir/nested/../nested///./file", 0, 0,
              __WASI_RIGHTS_FD_READ);
    open_case("open file/", "dir/nested/file/", 0, 0, 0);
    open_case("open file///", "dir/nested/file///", 0, 0, 0);
    open_case("open dir/", "dir/nested/", 0, 0, 0);
    open_case("open escape", "dir/nested/../../../x/dir/nested/file", 0, 0, 0);
    open_case("open ..", "..", 0, 0, 0);
    open_case("open .", ".", 0, 0, 0);
    open_case("open empty", "", 0, 0, 0);
    open_case("open missing", "nope", 0, 0, 0);
    open_case("open missing/", "nope/", 0, 0, 0);
    open_case("open O_DIRECTORY file", "dir/nested/file", 0, __WASI_OFLAGS_DIRECTORY, 0);
    open_case("open CREAT|EXCL existing", "dir/nested/file", 0,
              __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, 0);
    open_case("open CREAT|EXCL dir", "dir", 0, __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, 0);
    open_case("open dir write", "dir", 0, 0, __WASI_RIGHTS_FD_WRITE);
    open_case("open . O_DIRECTORY read", ".", 0, __WASI_OFLAGS_DIRECTORY, __WASI_RIGHTS_FD_READ);
    open_case("open . O_DIRECTORY rw", ".", 0, __WASI_OFLAGS_DIRECTORY,
              __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_WRITE);
    open_case("open dir TRUNC", "dir", 0, __WASI_OFLAGS_TRUNC, __WASI_RIGHTS_FD_WRITE);
    open_case("open CREAT dir/", "newdir/", 0, __WASI_OFLAGS_CREAT, __WASI_RIGHTS_FD_WRITE);
    open_case("open bad utf8", "\xff\xfe", 0, 0, 0);
}

static void symlinks(void) {
    line("symlink dangling", __wasi_path_symlink("target", dir, "dangling"));
    line("symlink loop", __wasi_path_symlink("loop", dir, "loop"));
    line("symlink to dir", __wasi_path_symlink("dir", dir, "dirlink"));
    line("symlink to file", __wasi_path_symlink("dir/nested/file", dir, "filelink"));
    line("symlink escape", __wasi_path_symlink("../../outside", dir, "escape"));
    line("symlink exists", __wasi_path_symlink("x", dir, "loop"));
    line("symlink to /", __wasi_path_symlink("/", dir, "abs1"));
    line("symlink to /etc", __wasi_path_symlink("/etc", dir, "abs2"));
    line("symlink new/", __wasi_path_symlink("x", dir, "newlink/"));
    line("symlink dangling/", __wasi_path_symlink("dir", dir, "dirlink2/"));
    line("symlink file/", __wasi_path_symlink("x", dir, "dir/nested/file/"));
    line("symlink filelink/", __wasi_path_symlink("x", dir, "filelink/"));
    line("symlink over dangling/", __wasi_path_symlink("x", dir, "dangling/"));
    line("symlink dir/", __wasi_path_symlink("x", dir, "dir/"));
    open_case("open dangling nofollow", "dangling", 0, 0, 0);
    open_case("open dangling follow", "dangling", 1, 0, 0);
    open_case("open dangling creat follow", "dangling", 1, __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, 0);
    open_case("open loop follow", "loop", 1, 0, 0);
    open_case("open loop nofollow", "loop", 0, 0, 0);
    open_case("open loop/ nofollow", "loop/", 0, 0, 0);
    open_case("open escape follow", "escape", 1, 0, 0);
    open_case("open dirlink nofollow", "dirlink", 0, 0, 0);
    open_case("open dirlink/ nofollow", "dirlink/", 0, 0, 0);
    open_case("open dirlink follow", "dirlink", 1, 0, 0);
    open_case("open filelink follow", "filelink", 1, 0, 0);
    open_case("open filelink nofollow O_DIRECTORY", "filelink", 0, __WASI_OFLAGS_DIRECTORY, 0);
    open_case("open through dirlink", "dirlink/nested/file", 0, 0, 0);
    stat_case("stat dangling nofollow", "dangling", 0);
    stat_case("stat dangling follow", "dangling", 1);
    stat_case("stat loop follow", "loop", 1);
    stat_case("stat filelink follow", "filelink", 1);
    stat_case("stat filelink nofollow", "filelink", 0);
    stat_case("stat dirlink/", "dirlink/", 0);
    stat_case("stat .", ".", 0);
    stat_case("stat file/", "dir/nested/file/", 0);
    char buf[64];
    __wasi_size_t used = 0;
    __wasi_errno_t e = __wasi_path_readlink(dir, "filelink", (uint8_t *)buf, 4, &used);
    printf("readlink small %d used=%u %.*s\n", e, used, (int)used, buf);
    e = __wasi_path_readlink(dir, "filelink", (uint8_t *)buf, sizeof buf, &used);
    printf("readlink full %d used=%u %.*s\n", e, used, (int)used, buf);
    e = __wasi_path_readlink(dir, "dir/nested/file", (uint8_t *)buf, sizeof buf, &used);
    line("readlink file", e);
    e = __wasi_path_readlink(dir, "dirlink/", (uint8_t *)buf, sizeof buf, &used);
    line("readlink dirlink/", e);
    e = __wasi_path_readlink(dir, "nope", (uint8_t *)buf, sizeof buf, &used);
    line("readlink missing", e);
    line("rmdir dangling/", __wasi_path_remove_directory(dir, "dangling/"));
    line("unlink dangling", __wasi_path_unlink_file(dir, "dangling"));
    line("unlink dirlink/", __wasi_path_unlink_file(dir, "dirlink/"));
    line("rmdir dirlink", __wasi_path_remove_directory(dir, "dirlink"));
    line("rmdir dirlink/", __wasi_path_remove_directory(dir, "dirlink/"));
}

static void removals(void) {
    __wasi_fd_close(make_file("f", "abc"));
    line("mkdir e", __wasi_path_create_directory(dir, "e"));
    line("unlink f/", __wasi_path_unlink_file(dir, "f/"));
    line("unlink e", __wasi_path_unlink_file(dir, "e"));
    line("unlink e/", __wasi_path_unlink_file(dir, "e/"));
    line("mkdir e3", __wasi_path_create_directory(dir, "e3"));
    line("rmdir e3/", __wasi_path_remove_directory(dir, "e3/"));
    line("rmdir e3//", __wasi_path_remove_directory(dir, "e3//"));
    line("rmdir e3", __wasi_path_remove_directory(dir, "e3"));
    line("rmdir f", __wasi_path_remove_directory(dir, "f"));
    line("rmdir f/", __wasi_path_remove_directory(dir, "f/"));
    line("rmdir dir (nonempty)", __wasi_path_remove_directory(dir, "dir"));
    line("rmdir .", __wasi_path_remove_directory(dir, "."));
    line("rmdir missing", __wasi_path_remove_directory(dir, "nope"));
    line("rename f f2/", __wasi_path_rename(dir, "f", dir, "f2/"));
    line("rename f/ f2", __wasi_path_rename(dir, "f/", dir, "f2"));
    line("rename e/ e2/", __wasi_path_rename(dir, "e/", dir, "e2/"));
    line("rename e2 e", __wasi_path_rename(dir, "e2", dir, "e"));
    line("rename f over e", __wasi_path_rename(dir, "f", dir, "e"));
    line("rename e over f", __wasi_path_rename(dir, "e", dir, "f"));
    line("rename e over dir", __wasi_path_rename(dir, "e", dir, "dir"));
    line("rename dir into itself", __wasi_path_rename(dir, "dir", dir, "dir/nested/x"));
    line("rename missing", __wasi_path_rename(dir, "nope", dir, "nope2"));
    line("rename escape", __wasi_path_rename(dir, "f", dir, "../f"));
    line("link f h", __wasi_path_link(dir, 0, "f", dir, "h"));
    stat_case("stat h", "h", 0);
    line("link f h again", __wasi_path_link(dir, 0, "f", dir, "h"));
    line("link e (dir)", __wasi_path_link(dir, 0, "e", dir, "e3"));
    line("link follow", __wasi_path_link(dir, 1, "filelink", dir, "h2"));
    line("link f/", __wasi_path_link(dir, 0, "f/", dir, "h3"));
    line("link to h4/", __wasi_path_link(dir, 0, "f", dir, "h4/"));
    line("link escape", __wasi_path_link(dir, 0, "f", dir, "../h"));
    line("link missing", __wasi_path_link(dir, 0, "nope", dir, "h5"));
}

static void fdops(void) {
    __wasi_fd_t fd = make_file("g", "0123456789");
    __wasi_filesize_t pos = 99;
    __wasi_errno_t e = __wasi_fd_seek(fd, 0, __WASI_WHENCE_CUR, &pos);
    printf("seek cur %d %llu\n", e, (unsigned long long)pos);
    e = __wasi_fd_seek(fd, -3, __WASI_WHENCE_END, &pos);
    printf("seek end-3 %d %llu\n", e, (unsigned long long)pos);
    e = __wasi_fd_seek(fd, -1, __WASI_WHENCE_SET, &pos);
    line("seek set -1", e);
    e = __wasi_fd_seek(fd, 100, __WASI_WHENCE_SET, &pos);
    printf("seek past end %d %llu\n", e, (unsigned long long)pos);
    e = __wasi_fd_tell(fd, &pos);
    printf("tell %d %llu\n", e, (unsigned long long)pos);
    uint8_t rbuf[16];
    __wasi_iovec_t riov = {rbuf, sizeof rbuf};
    __wasi_size_t n = 0;
    e = __wasi_fd_pread(fd, &riov, 1, 2, &n);
    printf("pread @2 %d %u %.*s\n", e, n, (int)n, rbuf);
    e = __wasi_fd_read(fd, &riov, 1, &n);
    printf("read at 100 %d %u\n", e, n);
    e = __wasi_fd_read(fd, &riov, 0, &n);
    printf("read 0 iovs %d %u\n", e, n);
    e = __wasi_fd_advise(fd, 0, 10, __WASI_ADVICE_SEQUENTIAL);
    line("advise ok", e);
    e = __wasi_fd_allocate(fd, 0, 20);
    line("allocate 20", e);
    __wasi_filestat_t st;
    __wasi_fd_filestat_get(fd, &st);
    printf("size after allocate %llu\n", (unsigned long long)st.size);
    line("set_size 4", __wasi_fd_filestat_set_size(fd, 4));
    __wasi_fd_filestat_get(fd, &st);
    printf("size after set_size %llu\n", (unsigned long long)st.size);
    line("set_times both atim", __wasi_fd_filestat_set_times(fd, 1, 1, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_ATIM_NOW));
    line("set_times both mtim", __wasi_fd_filestat_set_times(fd, 1, 1, __WASI_FSTFLAGS_MTIM | __WASI_FSTFLAGS_MTIM_NOW));
    line("set_times mtim", __wasi_fd_filestat_set_times(fd, 0, 5000000000ull, __WASI_FSTFLAGS_MTIM));
    __wasi_fd_filestat_get(fd, &st);
    printf("mtim %llu\n", (unsigned long long)st.mtim);
    line("path set_times", __wasi_path_filestat_set_times(dir, 0, "g", 7000000000ull, 0, __WASI_FSTFLAGS_ATIM));
    __wasi_fd_filestat_get(fd, &st);
    printf("atim %llu mtim %llu\n", (unsigned long long)st.atim, (unsigned long long)st.mtim);
    line("path set_times bad", __wasi_path_filestat_set_times(dir, 0, "g", 0, 0, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_ATIM_NOW));
    line("set_flags append", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_APPEND));
    __wasi_fdstat_t fs;
    __wasi_fd_fdstat_get(fd, &fs);
    printf("flags %d\n", fs.fs_flags);
    __wasi_fd_seek(fd, 0, __WASI_WHENCE_SET, &pos);
    __wasi_ciovec_t wiov = {(const uint8_t *)"XY", 2};
    e = __wasi_fd_write(fd, &wiov, 1, &n);
    __wasi_fd_tell(fd, &pos);
    printf("append write %d %u pos=%llu\n", e, n, (unsigned long long)pos);
    line("set_flags none", __wasi_fd_fdstat_set_flags(fd, 0));
    line("renumber to closed", __wasi_fd_renumber(fd, 77));
    line("renumber same", __wasi_fd_renumber(fd, fd));
    line("renumber from closed", __wasi_fd_renumber(77, fd));
    line("sock_shutdown file", __wasi_sock_shutdown(fd, __WASI_SDFLAGS_WR));
    line("sock_shutdown bad fd", __wasi_sock_shutdown(77, __WASI_SDFLAGS_WR));
    line("close", __wasi_fd_close(fd));
    line("close again", __wasi_fd_close(fd));
    line("raise", raw_proc_raise(0));
    line("sched_yield", __wasi_sched_yield());

    /* fd ops on a directory fd */
    line("dir read", __wasi_fd_read(dir, &riov, 1, &n));
    line("dir write", __wasi_fd_write(dir, &wiov, 1, &n));
    line("dir seek", __wasi_fd_seek(dir, 0, __WASI_WHENCE_SET, &pos));
    line("dir tell", __wasi_fd_tell(dir, &pos));
    line("dir set_size", __wasi_fd_filestat_set_size(dir, 0));
    line("readdir on file", __wasi_fd_readdir(0, rbuf, sizeof rbuf, 0, &n));
}

static void readdir_tests(void) {
    line("mkdir rd", __wasi_path_create_directory(dir, "rd"));
    __wasi_fd_t rd;
    __wasi_errno_t e = op("rd", 0, __WASI_OFLAGS_DIRECTORY, __WASI_RIGHTS_FD_READDIR
                          | __WASI_RIGHTS_PATH_OPEN | __WASI_RIGHTS_PATH_CREATE_FILE
                          | __WASI_RIGHTS_PATH_FILESTAT_SET_SIZE, 0, &rd);
    line("open rd", e);
    readdir_case("readdir empty", rd, 512, 0);
    readdir_case("readdir empty buf 30", rd, 30, 0);
    readdir_case("readdir cookie 2", rd, 512, 2);
    readdir_case("readdir cookie 99", rd, 512, 99);
    __wasi_fd_t f;
    dir = rd;
    __wasi_fd_close(make_file("aaaa", "1"));
    __wasi_fd_close(make_file("bbbbbbbb", "2"));
    readdir_case("readdir two", rd, 512, 0);
    readdir_case("readdir buf 50", rd, 50, 0);
    readdir_case("readdir buf 24", rd, 24, 0);
    readdir_case("readdir buf 0", rd, 0, 0);
    readdir_case("readdir cookie 3", rd, 512, 3);
    (void)f;
}

static void poll_fd(const char *label, __wasi_fd_t fd, __wasi_eventtype_t tag) {
    __wasi_subscription_t sub;
    __wasi_event_t ev;
    __wasi_size_t n = 9;
    memset(&sub, 0, sizeof sub);
    memset(&ev, 0, sizeof ev);
    sub.userdata = 7;
    sub.u.tag = tag;
    sub.u.u.fd_read.file_descriptor = fd;  /* fd_write has the same layout */
    __wasi_errno_t e = __wasi_poll_oneoff(&sub, &ev, 1, &n);
    if (e != 0)
        n = 0;
    printf("%s %d n=%u err=%d type=%d nbytes=%llu flags=%d\n", label, e, n, n ? ev.error : 0,
           n ? ev.type : 0, n ? (unsigned long long)ev.fd_readwrite.nbytes : 0ULL,
           n ? ev.fd_readwrite.flags : 0);
}

static void poll_tests(void) {
    __wasi_subscription_t subs[2];
    __wasi_event_t evs[2];
    __wasi_size_t n = 9;
    line("poll zero", __wasi_poll_oneoff(subs, evs, 0, &n));
    memset(subs, 0, sizeof subs);
    subs[0].userdata = 42;
    subs[0].u.tag = __WASI_EVENTTYPE_CLOCK;
    subs[0].u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
    subs[0].u.u.clock.timeout = 1000000;
    __wasi_errno_t e = __wasi_poll_oneoff(subs, evs, 1, &n);
    printf("poll clock %d n=%u ud=%llu err=%d type=%d\n", e, n,
           (unsigned long long)evs[0].userdata, evs[0].error, evs[0].type);
    __wasi_fd_t fd = make_file("p", "12345");
    __wasi_filesize_t pos;
    __wasi_fd_seek(fd, 1, __WASI_WHENCE_SET, &pos);
    poll_fd("poll file read", fd, __WASI_EVENTTYPE_FD_READ);
    __wasi_fd_seek(fd, 0, __WASI_WHENCE_END, &pos);
    poll_fd("poll file read at end", fd, __WASI_EVENTTYPE_FD_READ);
    poll_fd("poll file write", fd, __WASI_EVENTTYPE_FD_WRITE);
    poll_fd("poll bad fd", 99, __WASI_EVENTTYPE_FD_READ);
    poll_fd("poll dir read", dir, __WASI_EVENTTYPE_FD_READ);
    poll_fd("poll dir write", dir, __WASI_EVENTTYPE_FD_WRITE);
    poll_fd("poll stdin read", 0, __WASI_EVENTTYPE_FD_READ);
    poll_fd("poll stdin write", 0, __WASI_EVENTTYPE_FD_WRITE);
    poll_fd("poll stdout write", 1, __WASI_EVENTTYPE_FD_WRITE);
    poll_fd("poll stdout read", 1, __WASI_EVENTTYPE_FD_READ);
    __wasi_fd_close(fd);
    __wasi_fd_t ro;
    if (op("p", 0, 0, __WASI_RIGHTS_FD_READ, 0, &ro) == 0) {
        poll_fd("poll read-only file write", ro, __WASI_EVENTTYPE_FD_WRITE);
        __wasi_fd_close(ro);
    }
}

static void more(__wasi_fd_t root) {
    dir = root;
    /* readdir over many entries with a small buffer, continuing from the last whole entry */
    line("mkdir lots", __wasi_path_create_directory(dir, "lots"));
    __wasi_fd_t lots;
    line("open lots", op("lots", 0, __WASI_OFLAGS_DIRECTORY, __WASI_RIGHTS_FD_READDIR
                         | __WASI_RIGHTS_PATH_OPEN | __WASI_RIGHTS_PATH_CREATE_FILE
                         | __WASI_RIGHTS_PATH_FILESTAT_SET_SIZE, 0, &lots));
    dir = lots;
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "file.%d", i);
        __wasi_fd_close(make_file(name, ""));
    }
    dir = root;
    __wasi_dircookie_t cookie = 0;
    int total = 0, calls = 0;
    for (;;) {
        uint8_t buf[256];
        __wasi_size_t used = 0;
        if (__wasi_fd_readdir(lots, buf, sizeof buf, cookie, &used) != 0)
            break;
        calls++;
        size_t pos = 0;
        while (pos + sizeof(__wasi_dirent_t) <= used) {
            __wasi_dirent_t d;
            memcpy(&d, buf + pos, sizeof d);
            if (pos + sizeof d + d.d_namlen > used)
                break;
            pos += sizeof d + d.d_namlen;
            total++;
            cookie = d.d_next;
        }
        if (used < sizeof buf)
            break;
    }
    printf("readdir lots total=%d\n", total);
    (void)calls;

    /* fdflags given at open are reported; SYNC and APPEND */
    __wasi_fd_t fd;
    __wasi_errno_t e = op("lots/file.1", 0, 0, __WASI_RIGHTS_FD_WRITE | __WASI_RIGHTS_FD_READ,
                          __WASI_FDFLAGS_APPEND | __WASI_FDFLAGS_SYNC, &fd);
    __wasi_fdstat_t fs;
    __wasi_fd_fdstat_get(fd, &fs);
    printf("open sync|append %d flags=%d\n", e, fs.fs_flags);
    if (e == 0) /* wasmtime answers ENOTSUP: fd was never set, so it is no fd to close */
        __wasi_fd_close(fd);
    line("open missing dsync", op("lots/missing", 0, 0, 0, __WASI_FDFLAGS_DSYNC, &fd));
    line("open creat rsync", op("lots/new", 0, __WASI_OFLAGS_CREAT, __WASI_RIGHTS_FD_WRITE,
                                __WASI_FDFLAGS_RSYNC, &fd));
    if (op("lots/file.1", 0, 0, __WASI_RIGHTS_FD_WRITE, 0, &fd) == 0) {
        line("set_flags dsync", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_DSYNC));
        line("set_flags rsync", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_RSYNC));
        line("set_flags sync|append", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_SYNC
                                                                     | __WASI_FDFLAGS_APPEND));
        line("set_flags append", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_APPEND));
        __wasi_fd_close(fd);
    }
    e = op(".", 0, 0, 0, __WASI_FDFLAGS_NONBLOCK, &fd);
    printf("open . nonblock %d\n", e);
    if (e == 0)
        __wasi_fd_close(fd);

    /* filestat_set_times keeps atim when only MTIM is set */
    fd = make_file("times", "x");
    __wasi_filestat_t st, st2;
    __wasi_fd_filestat_get(fd, &st);
    e = __wasi_fd_filestat_set_times(fd, 0, st.mtim - 100, __WASI_FSTFLAGS_MTIM);
    __wasi_fd_filestat_get(fd, &st2);
    printf("set mtim only %d atim_same=%d mtim_ok=%d\n", e, st.atim == st2.atim,
           st2.mtim == st.mtim - 100);
    e = __wasi_fd_filestat_set_times(fd, 0, 0, __WASI_FSTFLAGS_MTIM_NOW | __WASI_FSTFLAGS_ATIM_NOW);
    printf("set now %d\n", e);

    /* stdio renumbered onto a file; renumber over a preopen; close a preopen */
    __wasi_fd_t f2 = make_file("stdio_target", "");
    printf("renumber stdin %d\n", __wasi_fd_renumber(0, f2));
    printf("fdstat old stdin %d\n", __wasi_fd_fdstat_get(0, &fs));
    printf("fdstat new %d type=%d\n", __wasi_fd_fdstat_get(f2, &fs), fs.fs_filetype);
    __wasi_fd_t sub;
    op(".", 0, __WASI_OFLAGS_DIRECTORY, __WASI_RIGHTS_FD_READDIR | __WASI_RIGHTS_FD_FILESTAT_GET
       | __WASI_RIGHTS_PATH_OPEN | __WASI_RIGHTS_PATH_CREATE_FILE
       | __WASI_RIGHTS_PATH_FILESTAT_SET_SIZE, 0, &sub);
    __wasi_filestat_t before, after;
    __wasi_fd_filestat_get(sub, &before);
    printf("renumber over preopen %d\n", __wasi_fd_renumber(sub, root));
    __wasi_fd_filestat_get(root, &after);
    printf("same dir %d\n", before.ino == after.ino);
    __wasi_prestat_t pre;
    printf("prestat after renumber %d\n", __wasi_fd_prestat_get(root, &pre));
    printf("dangling fd reuse %d\n", __wasi_fd_fdstat_get(sub, &fs));
    __wasi_fd_t again = make_file("dangling", "");
    printf("lowest fd reused %d\n", again == sub);
    printf("close reopened %d\n", __wasi_fd_close(again));
    printf("close preopen %d then %d\n", __wasi_fd_close(root), __wasi_fd_fdstat_get(root, &fs));
    (void)fd;
}

/* Rights are advisory, as in wasmtime: fdstat shows its fixed sets, the requested rights
 * only choose the access mode, and set_rights is ENOTSUP. */
static void fdstat_line(const char *label, __wasi_fd_t fd) {
    __wasi_fdstat_t st;
    __wasi_errno_t e = __wasi_fd_fdstat_get(fd, &st);
    printf("%s %d type=%d flags=%d base=%llx inheriting=%llx\n", label, e, st.fs_filetype,
           st.fs_flags, (unsigned long long)st.fs_rights_base,
           (unsigned long long)st.fs_rights_inheriting);
}

static void rights_case(const char *label, const char *path, __wasi_oflags_t o,
                        __wasi_rights_t rights, __wasi_fdflags_t fl) {
    __wasi_fd_t fd;
    __wasi_errno_t e = op(path, 0, o, rights, fl, &fd);
    if (e != 0) {
        line(label, e);
        return;
    }
    fdstat_line(label, fd);
    char buf[4];
    __wasi_iovec_t iov = {(uint8_t *)buf, sizeof buf};
    __wasi_ciovec_t ciov = {(const uint8_t *)"x", 1};
    __wasi_size_t n;
    printf("%s read %d write %d sync %d set_rights %d\n", label, __wasi_fd_read(fd, &iov, 1, &n),
           o & __WASI_OFLAGS_DIRECTORY ? -1 : __wasi_fd_write(fd, &ciov, 1, &n),
           __wasi_fd_sync(fd), __wasi_fd_fdstat_set_rights(fd, 0, 0));
    __wasi_fd_t other;
    printf("%s path_open %d mkdir %d unlink %d\n", label,
           __wasi_path_open(fd, 0, "x", 0, 0, 0, 0, &other),
           __wasi_path_create_directory(fd, "x"), __wasi_path_unlink_file(fd, "x"));
    __wasi_fd_close(fd);
}

static void rights(void) {
    fdstat_line("rights preopen", dir);
    printf("rights preopen set_rights %d\n", __wasi_fd_fdstat_set_rights(dir, 0, 0));
    printf("rights stdout set_rights %d\n", __wasi_fd_fdstat_set_rights(1, 0, 0));
    __wasi_fd_close(make_file("rf", "abc"));
    rights_case("rights file none", "rf", 0, 0, 0);
    rights_case("rights file read", "rf", 0, __WASI_RIGHTS_FD_READ, 0);
    rights_case("rights file write", "rf", 0, __WASI_RIGHTS_FD_WRITE | __WASI_RIGHTS_FD_READDIR, 0);
    rights_case("rights file rw", "rf", 0, __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_WRITE, 0);
    rights_case("rights file allocate", "rf", 0, __WASI_RIGHTS_FD_ALLOCATE, 0);
    rights_case("rights file creat", "rf", __WASI_OFLAGS_CREAT, 0, 0);
    rights_case("rights file trunc|read", "rf", __WASI_OFLAGS_TRUNC, __WASI_RIGHTS_FD_READ, 0);
    rights_case("rights file creat|write", "rf", __WASI_OFLAGS_CREAT, __WASI_RIGHTS_FD_WRITE, 0);
    rights_case("rights file read|append", "rf", 0, __WASI_RIGHTS_FD_READ,
                __WASI_FDFLAGS_APPEND);
    rights_case("rights dir none", ".", __WASI_OFLAGS_DIRECTORY, 0, 0);
    rights_case("rights dir all-but-write", ".", __WASI_OFLAGS_DIRECTORY,
                ALL & ~__WASI_RIGHTS_FD_WRITE, 0);
    rights_case("rights dir append", ".", 0, 0, __WASI_FDFLAGS_APPEND);
    rights_case("rights dir nonblock", ".", 0, 0, __WASI_FDFLAGS_NONBLOCK);
    rights_case("rights dir write", ".", 0, __WASI_RIGHTS_FD_WRITE, 0);
    line("rights unlink rf", __wasi_path_unlink_file(dir, "rf"));
}

/* One call moves only the first non-empty buffer, as in wasmtime. */
static void iovec_tests(void) {
    __wasi_fd_t fd = make_file("iov", "");
    __wasi_ciovec_t out[3] = {{(const uint8_t *)"", 0}, {(const uint8_t *)"ab", 2},
                              {(const uint8_t *)"cd", 2}};
    __wasi_size_t n = 0;
    __wasi_errno_t e = __wasi_fd_write(fd, out, 3, &n);
    printf("iovec write %d n=%u\n", e, n);
    e = __wasi_fd_pwrite(fd, out, 3, 8, &n);
    printf("iovec pwrite %d n=%u\n", e, n);
    char a[2], b[16];
    __wasi_iovec_t in[3] = {{(uint8_t *)b, 0}, {(uint8_t *)a, 2}, {(uint8_t *)b, 16}};
    __wasi_filesize_t pos;
    __wasi_fd_seek(fd, 0, __WASI_WHENCE_SET, &pos);
    e = __wasi_fd_read(fd, in, 3, &n);
    printf("iovec read %d n=%u\n", e, n);
    e = __wasi_fd_pread(fd, in + 1, 2, 0, &n);
    printf("iovec pread %d n=%u\n", e, n);
    e = __wasi_fd_write(fd, out, 1, &n);
    printf("iovec write empty %d n=%u\n", e, n);
    __wasi_fd_close(fd);
    line("iovec unlink", __wasi_path_unlink_file(dir, "iov"));
}

/* The CPU-time clocks are not offered (EBADF; EINVAL in poll_oneoff); prestat of an fd
 * that is no preopen: EBADF, its dir_name ENOTDIR. */
static void clocks_and_prestat(void) {
    for (__wasi_clockid_t id = 0; id < 4; id++) {
        __wasi_timestamp_t t = 0, r = 0;
        __wasi_errno_t e1 = __wasi_clock_res_get(id, &r), e2 = __wasi_clock_time_get(id, 1, &t);
        printf("clock %u res %d time %d nonzero %d\n", id, e1, e2, r != 0 && t != 0);
        __wasi_subscription_t sub;
        __wasi_event_t ev;
        __wasi_size_t n = 0;
        memset(&sub, 0, sizeof sub);
        sub.u.tag = __WASI_EVENTTYPE_CLOCK;
        sub.u.u.clock.id = id;
        sub.u.u.clock.timeout = 1000;
        printf("clock %u poll %d\n", id, __wasi_poll_oneoff(&sub, &ev, 1, &n));
    }
    char name[8];
    __wasi_prestat_t pre;
    for (__wasi_fd_t fd = 0; fd < 3; fd++)
        printf("prestat stdio %u %d dir_name %d\n", fd, __wasi_fd_prestat_get(fd, &pre),
               __wasi_fd_prestat_dir_name(fd, (uint8_t *)name, sizeof name));
    printf("prestat closed %d dir_name %d\n", __wasi_fd_prestat_get(77, &pre),
           __wasi_fd_prestat_dir_name(77, (uint8_t *)name, sizeof name));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: wasi_probe NAME\n");
        return 2;
    }
    __wasi_fd_t fd;
    for (fd = 3;; fd++) {
        __wasi_prestat_t pre;
        if (__wasi_fd_prestat_get(fd, &pre) != 0)
            return 3;
        char name[256];
        if (pre.u.dir.pr_name_len >= sizeof name)
            continue;
        printf("prestat_dir_name short %d\n",
               __wasi_fd_prestat_dir_name(fd, (uint8_t *)name, 0) != 0);
        __wasi_fd_prestat_dir_name(fd, (uint8_t *)name, pre.u.dir.pr_name_len);
        name[pre.u.dir.pr_name_len] = 0;
        if (strcmp(name, argv[1]) == 0) {
            dir = fd;
            break;
        }
    }
    paths();
    symlinks();
    removals();
    fdops();
    poll_tests();
    rights();
    iovec_tests();
    clocks_and_prestat();
    __wasi_fd_t root = dir;
    readdir_tests();
    more(root);
    return 0;
}
