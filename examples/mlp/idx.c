/* IDX reader: see idx.h for the format and the checks made. */
#include "idx.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_ZLIB
#include <zlib.h>
#endif

#if defined(__GNUC__)
#define IDX_PRINTF_FORMAT(format_index, first_arg) \
    __attribute__((format(printf, format_index, first_arg)))
#else
#define IDX_PRINTF_FORMAT(format_index, first_arg)
#endif

/* Magic numbers: unsigned-byte elements (0x08) with 3 or 1 dimensions. */
#define IDX_MAGIC_IMAGES UINT32_C(0x00000803)
#define IDX_MAGIC_LABELS UINT32_C(0x00000801)

/* The two bytes every gzip file starts with (RFC 1952). */
#define GZIP_ID1 0x1f
#define GZIP_ID2 0x8b

/* Initial size of a data buffer. It doubles as data arrives, up to the
 * size the header declares, so memory follows the bytes actually read. */
#define INITIAL_BUFFER_BYTES ((size_t)64 * 1024)

/* Largest count passed to one read call: gzread takes an unsigned count and
 * returns it as an int. */
#define READ_CHUNK_MAX ((size_t)1 << 30)

#ifdef HAVE_ZLIB
/* Size of zlib's input buffer, larger than its 8 KiB default so that it
 * reads the file in fewer calls. */
#define GZIP_BUFFER_BYTES 131072u
#endif

/* Destination of an error message. */
typedef struct message_buffer {
    char *text;
    size_t size;
} message_buffer;

/* An open data file and the path it was opened from. */
typedef struct idx_file {
    char *path;
#ifdef HAVE_ZLIB
    gzFile gz;
#else
    FILE *stream;
#endif
} idx_file;

/* Writes "PATH: " followed by the formatted text to `out`. */
IDX_PRINTF_FORMAT(3, 4)
static void report(message_buffer *out, const char *path, const char *format, ...)
{
    if (out->size == 0) {
        return;
    }
    int prefix = snprintf(out->text, out->size, "%s: ", path);
    if (prefix < 0 || (size_t)prefix >= out->size) {
        return;
    }
    va_list args;
    va_start(args, format);
    vsnprintf(out->text + prefix, out->size - (size_t)prefix, format, args);
    va_end(args);
}

/* Returns a newly allocated "DIR/NAME" followed by `suffix`, or NULL if
 * memory runs out. A trailing slash on `dir` is not doubled. */
static char *join_path(const char *dir, const char *name, const char *suffix)
{
    size_t dir_length = strlen(dir);
    const char *separator = (dir_length > 0 && dir[dir_length - 1] == '/') ? "" : "/";
    size_t size = dir_length + strlen(separator) + strlen(name) + strlen(suffix) + 1;
    char *path = malloc(size);
    if (path != NULL) {
        snprintf(path, size, "%s%s%s%s", dir, separator, name, suffix);
    }
    return path;
}

static void close_file(idx_file *file)
{
#ifdef HAVE_ZLIB
    if (file->gz != NULL) {
        gzclose(file->gz);
        file->gz = NULL;
    }
#else
    if (file->stream != NULL) {
        fclose(file->stream);
        file->stream = NULL;
    }
#endif
    free(file->path);
    file->path = NULL;
}

/* Attaches the reader to the open descriptor `fd`, which it then owns. */
static bool attach_reader(idx_file *file, int fd, message_buffer *out)
{
#ifdef HAVE_ZLIB
    file->gz = gzdopen(fd, "rb");
    if (file->gz == NULL) {
        close(fd);
        report(out, file->path, "cannot read: out of memory");
        return false;
    }
    gzbuffer(file->gz, GZIP_BUFFER_BYTES);
#else
    file->stream = fdopen(fd, "rb");
    if (file->stream == NULL) {
        int error = errno;
        close(fd);
        report(out, file->path, "cannot read: %s", strerror(error));
        return false;
    }
#endif
    return true;
}

/* Opens DIR/NAME, or DIR/NAME.gz if DIR/NAME does not exist. */
static bool open_file(idx_file *file, const char *dir, const char *name, message_buffer *out)
{
    file->path = join_path(dir, name, "");
    if (file->path == NULL) {
        report(out, name, "cannot build the file path: out of memory");
        return false;
    }
    int fd = open(file->path, O_RDONLY);
    if (fd >= 0) {
        return attach_reader(file, fd, out);
    }
    if (errno != ENOENT) {
        report(out, file->path, "cannot open: %s", strerror(errno));
        return false;
    }

    char *gz_path = join_path(dir, name, ".gz");
    if (gz_path == NULL) {
        report(out, file->path, "cannot build the file path: out of memory");
        return false;
    }
    fd = open(gz_path, O_RDONLY);
    if (fd < 0) {
        struct stat dir_status;
        if (errno == ENOENT && stat(dir, &dir_status) != 0) {
            report(out, dir, "cannot open the data directory: %s", strerror(errno));
        } else if (errno == ENOENT) {
            report(out, file->path, "not found, and neither is %s.gz", name);
        } else {
            report(out, gz_path, "cannot open: %s", strerror(errno));
        }
        free(gz_path);
        return false;
    }
    free(file->path);
    file->path = gz_path;
#ifndef HAVE_ZLIB
    close(fd);
    report(out, file->path,
           "cannot read a gzip file: this program was built without zlib; "
           "decompress the file with gunzip or rebuild with zlib");
    return false;
#else
    return attach_reader(file, fd, out);
#endif
}

#ifdef HAVE_ZLIB
/* Reports the stream's error, if it has one, and returns whether it had. */
static bool report_gzip_error(idx_file *file, message_buffer *out)
{
    int status = Z_OK;
    const char *text = gzerror(file->gz, &status);
    if (status == Z_OK) {
        return false;
    }
    /* zlib starts its messages with its name for the file, "<fd:N>" for a
     * descriptor. The message written here starts with the path instead. */
    if (text[0] == '<') {
        const char *end = strstr(text, ">: ");
        if (end != NULL) {
            text = end + 3;
        }
    }
    switch (status) {
    case Z_ERRNO:
        report(out, file->path, "read failed: %s", strerror(errno));
        break;
    case Z_BUF_ERROR:
        report(out, file->path, "truncated gzip data (%s); the file is incomplete", text);
        break;
    case Z_DATA_ERROR:
        report(out, file->path, "corrupt gzip data: %s", text);
        break;
    case Z_MEM_ERROR:
        report(out, file->path, "out of memory while decompressing");
        break;
    default:
        report(out, file->path, "gzip error: %s", text);
        break;
    }
    return true;
}
#endif

/* Reads up to `size` bytes into `buffer` and sets `*count` to the number
 * read, which is less than `size` only at the end of the file. Returns false
 * after reporting a read or decompression error. */
static bool read_bytes(idx_file *file, uint8_t *buffer, size_t size, size_t *count,
                       message_buffer *out)
{
    *count = 0;
    while (*count < size) {
        size_t chunk = size - *count;
        if (chunk > READ_CHUNK_MAX) {
            chunk = READ_CHUNK_MAX;
        }
#ifdef HAVE_ZLIB
        int result = gzread(file->gz, buffer + *count, (unsigned)chunk);
        if (result < 0) {
            if (!report_gzip_error(file, out)) {
                report(out, file->path, "read failed");
            }
            return false;
        }
        size_t got = (size_t)result;
#else
        size_t got = fread(buffer + *count, 1, chunk, file->stream);
        if (ferror(file->stream)) {
            report(out, file->path, "read failed: %s", strerror(errno));
            return false;
        }
#endif
        if (got == 0) {
            break;
        }
        *count += got;
    }
#ifdef HAVE_ZLIB
    /* A short read means the end of the data, or of a truncated gzip stream,
     * which zlib reports only through gzerror(). */
    if (*count < size && report_gzip_error(file, out)) {
        return false;
    }
#endif
    return true;
}

static uint32_t read_big_endian_u32(const uint8_t *bytes)
{
    return ((uint32_t)bytes[0] << 24) | ((uint32_t)bytes[1] << 16) | ((uint32_t)bytes[2] << 8) |
           (uint32_t)bytes[3];
}

/* Reads and checks the header of an IDX file of unsigned bytes: the magic
 * number `magic`, whose low byte is the number of dimensions, then the size
 * of each dimension into `sizes`. `dimension_names` names each dimension for
 * messages, `kind` the kind of file ("image", "label"). */
static bool read_header(idx_file *file, uint32_t magic, const char *kind,
                        const char *const *dimension_names, size_t *sizes, message_buffer *out)
{
    uint8_t magic_bytes[4];
    size_t count = 0;
    if (!read_bytes(file, magic_bytes, sizeof magic_bytes, &count, out)) {
        return false;
    }
    if (count == 0) {
        report(out, file->path, "empty file; expected an IDX %s file", kind);
        return false;
    }
#ifndef HAVE_ZLIB
    if (count >= 2 && magic_bytes[0] == GZIP_ID1 && magic_bytes[1] == GZIP_ID2) {
        report(out, file->path,
               "the file is gzip-compressed, but this program was built without zlib; "
               "decompress it with gunzip or rebuild with zlib");
        return false;
    }
#endif
    if (count < sizeof magic_bytes) {
        report(out, file->path, "truncated: the file ends after %zu of the 4 bytes of the magic number",
               count);
        return false;
    }
    uint32_t found = read_big_endian_u32(magic_bytes);
    if (found != magic) {
        const char *hint = "";
        if (found == IDX_MAGIC_IMAGES) {
            hint = " (this is an IDX image file)";
        } else if (found == IDX_MAGIC_LABELS) {
            hint = " (this is an IDX label file)";
        }
        report(out, file->path, "invalid magic number 0x%08" PRIx32 ", expected 0x%08" PRIx32
               " for an IDX %s file%s", found, magic, kind, hint);
        return false;
    }

    size_t n_dimensions = magic & 0xffu;
    uint8_t size_bytes[4 * 3];
    size_t header_bytes = 4 * n_dimensions;
    if (!read_bytes(file, size_bytes, header_bytes, &count, out)) {
        return false;
    }
    if (count < header_bytes) {
        report(out, file->path, "truncated: the header ends after %zu of %zu bytes", 4 + count,
               4 + header_bytes);
        return false;
    }
    for (size_t i = 0; i < n_dimensions; i++) {
        sizes[i] = read_big_endian_u32(size_bytes + 4 * i);
        if (sizes[i] == 0) {
            report(out, file->path, "invalid header: the %s is 0", dimension_names[i]);
            return false;
        }
    }
    return true;
}

/* Reads the `size` data bytes the header declared into a new buffer, which
 * grows only as the data arrives, and sets `*count` to the number read.
 * Returns false after reporting an I/O error or memory exhaustion. A short
 * count is not an error here, so that the caller reports it in its own units. */
static bool read_data(idx_file *file, size_t size, uint8_t **data, size_t *count,
                      message_buffer *out)
{
    size_t capacity = size < INITIAL_BUFFER_BYTES ? size : INITIAL_BUFFER_BYTES;
    uint8_t *buffer = malloc(capacity);
    size_t filled = 0;
    while (buffer != NULL) {
        size_t got = 0;
        if (!read_bytes(file, buffer + filled, capacity - filled, &got, out)) {
            free(buffer);
            return false;
        }
        filled += got;
        if (filled < capacity || capacity == size) {
            *data = buffer;
            *count = filled;
            return true;
        }
        size_t grown = capacity > size / 2 ? size : capacity * 2;
        uint8_t *larger = realloc(buffer, grown);
        if (larger == NULL) {
            free(buffer);
            buffer = NULL;
        } else {
            buffer = larger;
            capacity = grown;
        }
    }
    report(out, file->path, "out of memory after reading %zu of %zu data bytes", filled, size);
    return false;
}

/* Checks that nothing follows the data. For a gzip file this read also
 * reaches the gzip trailer, whose checksum zlib verifies there. */
static bool expect_end_of_file(idx_file *file, size_t n_items, const char *items,
                               message_buffer *out)
{
    uint8_t extra = 0;
    size_t count = 0;
    if (!read_bytes(file, &extra, 1, &count, out)) {
        return false;
    }
    if (count != 0) {
        report(out, file->path, "unexpected data after the %zu %s the header declares", n_items,
               items);
        return false;
    }
    return true;
}

static bool load_images(idx_dataset *dataset, const char *dir, const char *name,
                        message_buffer *out)
{
    static const char *const dimension_names[] = {"image count", "row count", "column count"};
    idx_file file = {0};
    bool ok = false;
    size_t sizes[3] = {0};
    if (!open_file(&file, dir, name, out) ||
        !read_header(&file, IDX_MAGIC_IMAGES, "image", dimension_names, sizes, out)) {
        goto done;
    }
    size_t n_images = sizes[0];
    size_t rows = sizes[1];
    size_t cols = sizes[2];

    /* The sizes are below 2^32 each, but their product need not fit. */
    if (cols > SIZE_MAX / rows || rows * cols > SIZE_MAX / n_images) {
        report(out, file.path, "invalid header: %zu images of %zux%zu pixels are too large to load",
               n_images, rows, cols);
        goto done;
    }
    size_t image_bytes = rows * cols;
    size_t size = n_images * image_bytes;

    uint8_t *pixels = NULL;
    size_t count = 0;
    if (!read_data(&file, size, &pixels, &count, out)) {
        goto done;
    }
    if (count < size) {
        free(pixels);
        report(out, file.path,
               "truncated: expected %zu images of %zux%zu pixels (%zu bytes), found %zu bytes",
               n_images, rows, cols, size, count);
        goto done;
    }
    if (!expect_end_of_file(&file, n_images, "images", out)) {
        free(pixels);
        goto done;
    }

    dataset->count = n_images;
    dataset->rows = rows;
    dataset->cols = cols;
    dataset->pixels = pixels;
    dataset->images_path = file.path;
    file.path = NULL;
    ok = true;
done:
    close_file(&file);
    return ok;
}

static bool load_labels(idx_dataset *dataset, const char *dir, const char *name,
                        unsigned n_classes, message_buffer *out)
{
    static const char *const dimension_names[] = {"label count"};
    idx_file file = {0};
    bool ok = false;
    size_t n_labels = 0;
    uint8_t *labels = NULL;
    if (!open_file(&file, dir, name, out) ||
        !read_header(&file, IDX_MAGIC_LABELS, "label", dimension_names, &n_labels, out)) {
        goto done;
    }

    size_t count = 0;
    if (!read_data(&file, n_labels, &labels, &count, out)) {
        goto done;
    }
    if (count < n_labels) {
        report(out, file.path, "truncated: expected %zu labels, found %zu", n_labels, count);
        goto done;
    }
    if (!expect_end_of_file(&file, n_labels, "labels", out)) {
        goto done;
    }
    for (size_t i = 0; i < n_labels; i++) {
        if (labels[i] >= n_classes) {
            report(out, file.path, "invalid label %u for sample %zu; labels must be 0 to %u",
                   (unsigned)labels[i], i, n_classes - 1);
            goto done;
        }
    }
    if (n_labels != dataset->count) {
        report(out, file.path, "contains %zu labels, but %s contains %zu images", n_labels,
               dataset->images_path, dataset->count);
        goto done;
    }

    dataset->labels = labels;
    labels = NULL;
    dataset->labels_path = file.path;
    file.path = NULL;
    ok = true;
done:
    free(labels);
    close_file(&file);
    return ok;
}

bool idx_dataset_load(idx_dataset *dataset, const char *dir, const char *images_name,
                      const char *labels_name, unsigned n_classes, char *message,
                      size_t message_size)
{
    message_buffer out = {.text = message, .size = message_size};
    if (message_size > 0) {
        message[0] = '\0';
    }
    idx_dataset loaded = {0};
    *dataset = loaded;
    if (!load_images(&loaded, dir, images_name, &out) ||
        !load_labels(&loaded, dir, labels_name, n_classes, &out)) {
        idx_dataset_free(&loaded);
        return false;
    }
    *dataset = loaded;
    return true;
}

void idx_dataset_free(idx_dataset *dataset)
{
    if (dataset == NULL) {
        return;
    }
    free(dataset->pixels);
    free(dataset->labels);
    free(dataset->images_path);
    free(dataset->labels_path);
    const idx_dataset empty = {0};
    *dataset = empty;
}
