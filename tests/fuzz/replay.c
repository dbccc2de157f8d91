/* Replay driver for a fuzz target: runs LLVMFuzzerTestOneInput once on each
 * input without libFuzzer, so that the seed corpus and every crash input
 * kept in regressions/ run as an ordinary test in every build, with any
 * compiler and under valgrind.
 *
 * Usage: REPLAY PATH...
 *
 * Each PATH is an input file or a directory whose files are inputs, taken
 * in name order; names starting with '.' are skipped. A bug in the code
 * under test shows as a crash, an abort or a report from a sanitizer or
 * valgrind. The driver itself fails when a path cannot be read or no input
 * was found, and otherwise prints "NAME: N passed, 0 failed". */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_target.h"

/* Reads the whole file at `path` into a buffer of exactly its size, so that
 * AddressSanitizer catches a read past the input's end as libFuzzer's own
 * copy would. Returns false after printing an error. */
static bool run_file(const char *path)
{
    FILE *stream = fopen(path, "rb");
    if (stream == NULL) {
        fprintf(stderr, "%s: cannot open: %s\n", path, strerror(errno));
        return false;
    }
    size_t capacity = 4096;
    size_t size = 0;
    uint8_t *buffer = malloc(capacity);
    while (buffer != NULL) {
        size += fread(buffer + size, 1, capacity - size, stream);
        if (size < capacity) {
            break;
        }
        capacity *= 2;
        uint8_t *larger = realloc(buffer, capacity);
        if (larger == NULL) {
            free(buffer);
        }
        buffer = larger;
    }
    bool failed = ferror(stream) != 0;
    fclose(stream);
    if (buffer == NULL || failed) {
        fprintf(stderr, "%s: cannot read: %s\n", path, buffer == NULL ? "out of memory" : "I/O error");
        free(buffer);
        return false;
    }
    /* An exact-size copy; malloc(0) may return NULL, so allocate 1 byte for
     * an empty input. */
    uint8_t *input = malloc(size > 0 ? size : 1);
    if (input == NULL) {
        fprintf(stderr, "%s: cannot read: out of memory\n", path);
        free(buffer);
        return false;
    }
    memcpy(input, buffer, size);
    free(buffer);
    LLVMFuzzerTestOneInput(input, size);
    free(input);
    return true;
}

static int skip_hidden(const struct dirent *entry)
{
    return entry->d_name[0] != '.';
}

/* Runs every file of the directory `path`; adds the count run to `*count`. */
static bool run_directory(const char *path, size_t *count)
{
    struct dirent **entries = NULL;
    int n_entries = scandir(path, &entries, skip_hidden, alphasort);
    if (n_entries < 0) {
        fprintf(stderr, "%s: cannot list the directory: %s\n", path, strerror(errno));
        return false;
    }
    bool ok = true;
    for (int i = 0; i < n_entries; i++) {
        size_t length = strlen(path) + 1 + strlen(entries[i]->d_name) + 1;
        char *file = malloc(length);
        if (file == NULL) {
            fprintf(stderr, "%s: out of memory\n", path);
            ok = false;
        } else {
            snprintf(file, length, "%s/%s", path, entries[i]->d_name);
            if (run_file(file)) {
                (*count)++;
            } else {
                ok = false;
            }
            free(file);
        }
        free(entries[i]);
    }
    free(entries);
    return ok;
}

int main(int argc, char **argv)
{
    const char *program = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 : argv[0];
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH...\n", program);
        return 2;
    }
    size_t count = 0;
    bool ok = true;
    for (int i = 1; i < argc; i++) {
        struct stat status;
        if (stat(argv[i], &status) != 0) {
            fprintf(stderr, "%s: cannot open: %s\n", argv[i], strerror(errno));
            ok = false;
        } else if (S_ISDIR(status.st_mode)) {
            ok = run_directory(argv[i], &count) && ok;
        } else if (run_file(argv[i])) {
            count++;
        } else {
            ok = false;
        }
    }
    if (count == 0) {
        fprintf(stderr, "%s: no input found\n", program);
        ok = false;
    }
    if (!ok) {
        return 1;
    }
    printf("%s: %zu passed, 0 failed\n", program, count);
    return 0;
}
