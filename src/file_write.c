/* Replacing a file atomically: the new contents are written under a
 * temporary name beside the target, synced, and renamed over it. POSIX
 * rename() replaces the target in one step, so after a crash the target is
 * the old file or the new one, never a mix. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Attempts at finding an unused temporary name before giving up. */
#define TEMPORARY_NAME_ATTEMPTS 16

/* Permission bits, set-id bits and the sticky bit of a mode. */
#define PERMISSION_BITS 07777

const char *tt_file_type_name(mode_t mode)
{
    if (S_ISREG(mode))
        return "regular file";
    if (S_ISDIR(mode))
        return "directory";
    if (S_ISLNK(mode))
        return "symbolic link";
    if (S_ISFIFO(mode))
        return "FIFO (named pipe)";
    if (S_ISCHR(mode))
        return "character device";
    if (S_ISBLK(mode))
        return "block device";
    if (S_ISSOCK(mode))
        return "socket";
    return "file of unknown type";
}

/* Checks that `path` is a usable target: not empty, and either missing or
 * a regular file that is not a symbolic link. Sets `*existing` to whether
 * it exists and `*mode` to its mode if so. */
static tt_status check_target(const char *where, const char *path, bool *existing,
                              mode_t *mode, tt_error *err)
{
    if (path == NULL) {
        tt_error_set(err, TT_ERR_ARG, "%s: path is NULL", where);
        return TT_ERR_ARG;
    }
    if (path[0] == '\0') {
        tt_error_set(err, TT_ERR_ARG, "%s: path is empty", where);
        return TT_ERR_ARG;
    }
    struct stat status;
    if (lstat(path, &status) != 0) {
        if (errno == ENOENT) {
            *existing = false;
            return TT_OK;
        }
        tt_error_set(err, TT_ERR_IO, "%s: cannot look up the path: %s", path,
                     strerror(errno));
        return TT_ERR_IO;
    }
    if (!S_ISREG(status.st_mode)) {
        const bool link = S_ISLNK(status.st_mode);
        tt_error_set(err, TT_ERR_ARG, "%s: is a %s, not a regular file; %s", path,
                     tt_file_type_name(status.st_mode),
                     link ? "give the path of its target instead"
                          : "only a regular file is replaced");
        return TT_ERR_ARG;
    }
    *existing = true;
    *mode = status.st_mode;
    return TT_OK;
}

/* Creates a new temporary file PATH.tmp-PID-XXXXXXXX and returns its
 * descriptor, with its name in `name` (freed by the caller), or -1 with
 * errno set. O_EXCL makes sure that no other file is overwritten. */
static int create_temporary(const char *path, char **name)
{
    tt_rng rng;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    tt_rng_seed(&rng, (uint64_t)now.tv_nsec ^ (uint64_t)now.tv_sec << 30 ^
                          (uint64_t)getpid() << 40);
    size_t size = strlen(path) + 48;
    *name = malloc(size);
    if (*name == NULL) {
        errno = ENOMEM;
        return -1;
    }
    for (int attempt = 0; attempt < TEMPORARY_NAME_ATTEMPTS; attempt++) {
        snprintf(*name, size, "%s.tmp-%ld-%08x", path, (long)getpid(),
                 (unsigned)(tt_rng_next(&rng) & 0xffffffffu));
        int fd = open(*name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

/* Reports a failure to create the temporary file and returns its status. */
static tt_status report_create_failure(const char *path, int error, tt_error *err)
{
    tt_status status = error == ENOMEM ? TT_ERR_NOMEM : TT_ERR_IO;
    tt_error_set(err, status, "%s: cannot create a temporary file beside it: %s", path,
                 strerror(error));
    return status;
}

/* Syncs the directory that contains `path`, so that the rename is on disk. */
static int sync_directory(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *directory;
    if (slash == NULL) {
        directory = malloc(2);
        if (directory != NULL)
            memcpy(directory, ".", 2);
    } else {
        size_t length = slash == path ? 1 : (size_t)(slash - path);
        directory = malloc(length + 1);
        if (directory != NULL) {
            memcpy(directory, path, length);
            directory[length] = '\0';
        }
    }
    if (directory == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int fd = open(directory, O_RDONLY | O_CLOEXEC);
    free(directory);
    if (fd < 0)
        return -1;
    int status = fsync(fd);
    int saved_errno = errno;
    close(fd);
    errno = saved_errno;
    return status;
}

tt_status tt_file_check_writable(const char *path, tt_error *err)
{
    bool existing = false;
    mode_t mode = 0;
    tt_status status = check_target("tt_file_check_writable", path, &existing, &mode, err);
    if (status != TT_OK)
        return status;
    char *temporary = NULL;
    int fd = create_temporary(path, &temporary);
    if (fd < 0) {
        status = report_create_failure(path, errno, err);
        free(temporary);
        return status;
    }
    close(fd);
    if (unlink(temporary) != 0) {
        tt_error_set(err, TT_ERR_IO, "%s: cannot remove the test file %s: %s", path, temporary,
                     strerror(errno));
        free(temporary);
        return TT_ERR_IO;
    }
    free(temporary);
    return TT_OK;
}

tt_status tt_file_write_atomic(const char *path, tt_file_writer writer, void *context,
                               tt_error *err)
{
    bool existing = false;
    mode_t mode = 0;
    tt_status status = check_target("tt_file_write_atomic", path, &existing, &mode, err);
    if (status != TT_OK)
        return status;
    if (writer == NULL) {
        tt_error_set(err, TT_ERR_ARG, "tt_file_write_atomic: %s: writer is NULL", path);
        return TT_ERR_ARG;
    }

    char *temporary = NULL;
    int fd = create_temporary(path, &temporary);
    if (fd < 0) {
        status = report_create_failure(path, errno, err);
        free(temporary);
        return status;
    }

    /* Each step runs only if the ones before it succeeded, so errno then
     * contains the reason of the first failure. */
    const char *step = "set the permissions of";
    bool ok = !existing || fchmod(fd, mode & PERMISSION_BITS) == 0;
    FILE *stream = NULL;
    if (ok) {
        step = "open";
        stream = fdopen(fd, "wb");
        ok = stream != NULL;
    }
    if (stream == NULL)
        close(fd);
    bool writer_failed = false;
    if (ok) {
        step = "write";
        errno = 0;
        ok = writer(stream, context) && ferror(stream) == 0;
        writer_failed = !ok && errno == 0;
    }
    if (ok) {
        step = "flush";
        ok = fflush(stream) == 0;
    }
    if (ok) {
        step = "sync";
        ok = fsync(fileno(stream)) == 0;
    }
    int saved_errno = errno;
    if (stream != NULL && fclose(stream) != 0 && ok) {
        step = "close";
        saved_errno = errno;
        ok = false;
    }
    if (ok) {
        step = "rename";
        ok = rename(temporary, path) == 0;
        saved_errno = errno;
    }
    if (!ok) {
        unlink(temporary);
        tt_error_set(err, TT_ERR_IO, "%s: cannot %s the temporary file %s: %s", path, step,
                     temporary,
                     writer_failed ? "the writer reported a failure" : strerror(saved_errno));
        free(temporary);
        return TT_ERR_IO;
    }
    free(temporary);

    if (sync_directory(path) != 0 && errno != EINVAL) {
        tt_error_set(err, TT_ERR_IO, "%s: saved, but syncing its directory failed, so the "
                     "new file may not survive a power loss: %s", path, strerror(errno));
        return TT_ERR_IO;
    }
    return TT_OK;
}
