// callgate-build: command
/*
 * fsops — a fixed script of filesystem operations, for differential tests.
 *
 *   fsops DIR        (DIR: a preopened, empty, writable directory)
 *
 * Runs the steps below inside DIR and prints one line per step: "<step>: ok",
 * "<step>: <value>" or "<step>: <error message>". Some steps are *meant* to
 * fail (mkdir of an existing dir, rmdir of a non-empty one, ...): the error is
 * part of the expected output. Two WASI implementations given the same empty
 * DIR must print the same lines and leave the same tree:
 *
 *   DIR/a/g      6 bytes "HELLO!", mtime 1000000000 s
 *   DIR/a/s  ->  g  (symlink)
 *
 * Gates exercised: path_create_directory, path_open, fd_write, fd_pwrite,
 * fd_pread, fd_seek, fd_tell, fd_filestat_get, fd_filestat_set_size,
 * path_rename, path_link, path_symlink,
 * path_readlink, path_filestat_get, path_filestat_set_times, path_unlink_file,
 * path_remove_directory, fd_readdir, fd_sync, fd_datasync, fd_advise, fd_close.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *root;

/* ROOT/rel, in a static buffer per slot (two slots: some calls need two paths). */
static const char *at(int slot, const char *rel) {
    static char buf[2][512];
    snprintf(buf[slot], sizeof buf[slot], "%s/%s", root, rel);
    return buf[slot];
}

/* Print "<step>: ok" when rc == 0, else "<step>: <strerror(errno)>". */
static void report(const char *step, int rc) {
    printf("%s: %s\n", step, rc == 0 ? "ok" : strerror(errno));
}

static long long size_of(const char *rel) {
    struct stat st;
    return stat(at(0, rel), &st) == 0 ? (long long)st.st_size : -1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fsops DIR\n");
        return 2;
    }
    root = argv[1];
    char buf[64];
    struct stat st;

    report("mkdir a", mkdir(at(0, "a"), 0755));
    report("mkdir a again", mkdir(at(0, "a"), 0755));

    /* Create a/f and write to it with write, pwrite, and an O_APPEND write. */
    int fd = open(at(0, "a/f"), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    report("create a/f", fd < 0 ? -1 : 0);
    printf("write: %zd\n", write(fd, "hello world\n", 12));
    printf("pwrite at 0: %zd\n", pwrite(fd, "HELLO", 5, 0));
    printf("seek end: %lld\n", (long long)lseek(fd, 0, SEEK_END));
    printf("seek back 6: %lld\n", (long long)lseek(fd, -6, SEEK_CUR));
    report("fsync", fsync(fd));
    report("fdatasync", fdatasync(fd));
    report("fadvise", posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) == 0 ? 0 : -1);
    report("truncate to 5", ftruncate(fd, 5));
    printf("size after truncate: %lld\n", fstat(fd, &st) == 0 ? (long long)st.st_size : -1);
    report("close a/f", close(fd));

    fd = open(at(0, "a/f"), O_RDWR | O_APPEND);
    printf("append: %zd\n", write(fd, "!", 1));
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n < 0 ? 0 : n] = '\0';
    printf("pread all: %s\n", buf);
    n = pread(fd, buf, 3, 2);
    buf[n < 0 ? 0 : n] = '\0';
    printf("pread 3 at 2: %s\n", buf);
    close(fd);

    /* Names: rename, hard link, symlink. */
    report("rename a/f a/g", rename(at(0, "a/f"), at(1, "a/g")));
    report("stat a/f", stat(at(0, "a/f"), &st));
    report("link a/g a/h", link(at(0, "a/g"), at(1, "a/h")));
    printf("nlink of a/g: %lld\n", stat(at(0, "a/g"), &st) == 0 ? (long long)st.st_nlink : -1);
    report("symlink g a/s", symlink("g", at(0, "a/s")));
    n = readlink(at(0, "a/s"), buf, sizeof buf - 1);
    buf[n < 0 ? 0 : n] = '\0';
    printf("readlink a/s: %s\n", buf);
    printf("size through a/s: %lld\n", size_of("a/s"));
    printf("a/s is a link: %s\n",
           lstat(at(0, "a/s"), &st) == 0 && S_ISLNK(st.st_mode) ? "yes" : "no");
    report("unlink a/h", unlink(at(0, "a/h")));
    printf("nlink of a/g: %lld\n", stat(at(0, "a/g"), &st) == 0 ? (long long)st.st_nlink : -1);

    /* Times: set a/g's access and modification time to 10^9 s. */
    struct timespec times[2] = {{1000000000, 0}, {1000000000, 0}};
    report("utimensat a/g", utimensat(AT_FDCWD, at(0, "a/g"), times, 0));
    printf("mtime of a/g: %lld\n",
           stat(at(0, "a/g"), &st) == 0 ? (long long)st.st_mtim.tv_sec : -1);

    /* Failures that are part of the script. */
    report("rmdir a", rmdir(at(0, "a")));
    report("unlink a", unlink(at(0, "a")));
    report("open a/missing", open(at(0, "a/missing"), O_RDONLY) < 0 ? -1 : 0);
    report("open a for writing", open(at(0, "a"), O_WRONLY) < 0 ? -1 : 0);
    report("rename a/g a/nodir/g", rename(at(0, "a/g"), at(1, "a/nodir/g")));
    report("mkdir a/sub", mkdir(at(0, "a/sub"), 0755));
    report("rmdir a/sub", rmdir(at(0, "a/sub")));

    /* What is left: readdir, sorted by hand (two entries plus . and ..). */
    DIR *d = opendir(at(0, "a"));
    char names[8][64];
    int count = 0;
    struct dirent *ent;
    while (d && (ent = readdir(d)) != NULL && count < 8) {
        if (strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0)
            snprintf(names[count++], sizeof names[0], "%s", ent->d_name);
    }
    if (d)
        closedir(d);
    for (int i = 1; i < count; i++) /* insertion sort: the list is tiny */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char tmp[64];
            memcpy(tmp, names[j], sizeof tmp);
            memcpy(names[j], names[j - 1], sizeof tmp);
            memcpy(names[j - 1], tmp, sizeof tmp);
        }
    printf("a holds:");
    for (int i = 0; i < count; i++)
        printf(" %s", names[i]);
    printf("\n");
    return 0;
}
