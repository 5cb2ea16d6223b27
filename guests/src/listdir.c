// callgate-build: command
/*
 * listdir — list a directory with each entry's type and size, sorted by name.
 *
 *   listdir DIR
 *
 * For every entry except "." and "..", one line:
 *   <name> file <size>        a regular file and its size in bytes
 *   <name> dir                a directory
 *   <name> link -> <target>   a symbolic link (not followed) and where it points
 *   <name> other              anything else (fifo, socket, device)
 *
 * readdir() order depends on the filesystem, so entries are sorted by name
 * (byte order) to make the output comparable between runtimes. Gates used:
 * path_open (opendir), fd_readdir, path_filestat_get (lstat) and path_readlink.
 * Exits 1 if DIR cannot be read.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Print one line describing DIR/NAME. */
static void describe(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);

    struct stat st;
    if (lstat(path, &st) < 0) { /* lstat: a symlink describes itself */
        printf("%s error %s\n", name, strerror(errno));
    } else if (S_ISREG(st.st_mode)) {
        printf("%s file %lld\n", name, (long long)st.st_size);
    } else if (S_ISDIR(st.st_mode)) {
        printf("%s dir\n", name);
    } else if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n < 0 ? 0 : n] = '\0'; /* readlink does not NUL-terminate */
        printf("%s link -> %s\n", name, target);
    } else {
        printf("%s other\n", name);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: listdir DIR\n");
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (d == NULL) {
        fprintf(stderr, "listdir: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }

    /* Collect the names in a growable array, then sort them. */
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            names = realloc(names, cap * sizeof *names);
            if (names == NULL) {
                fprintf(stderr, "listdir: out of memory\n");
                return 1;
            }
        }
        if ((names[count] = strdup(ent->d_name)) == NULL) {
            fprintf(stderr, "listdir: out of memory\n");
            return 1;
        }
        count++;
    }
    closedir(d);
    if (count > 0)
        qsort(names, count, sizeof *names, by_name);

    for (size_t i = 0; i < count; i++) {
        describe(argv[1], names[i]);
        free(names[i]);
    }
    free(names);
    return 0;
}
