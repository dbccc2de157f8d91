/* IDX reader: see idx.h for the format and the checks made. */
#include "idx.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_ZLIB
/* Declares zlib's input pointers const, so that parsing keeps the caller's
 * bytes read-only without a cast. */
#define ZLIB_CONST
#include <zlib.h>
#endif

#if defined(__GNUC__)
#define IDX_PRINTF_FORMAT(format_index, first_arg) \
    __attribute__((format(printf, format_index, first_arg)))
#else
#define IDX_PRINTF_FORMAT(format_index, first_arg)
#endif

/* The only element type accepted: unsigned byte. */
#define IDX_TYPE_UNSIGNED_BYTE 0x08

/* Size of the magic number and of each dimension size, in bytes. */
#define IDX_WORD_BYTES 4

/* Largest number of dimensions of the kinds read here (images). */
#define IDX_MAX_DIMENSIONS 3

/* The two bytes every gzip member starts with (RFC 1952). */
#define GZIP_ID1 0x1f
#define GZIP_ID2 0x8b

/* Largest amount of gzip data read from a pipe. A pipe's size is not known
 * ahead, and the compressed size does not follow from the header that the
 * data decompresses to, so this cap keeps a writer that never stops from
 * exhausting memory. The gzip files of Fashion-MNIST are below 30 MB. */
#define PIPE_GZIP_MAX_BYTES ((size_t)1 << 30)

/* Initial size of a buffer that grows as data arrives. It doubles as data
 * arrives, so memory follows the bytes actually read. */
#define INITIAL_BUFFER_BYTES ((size_t)64 * 1024)

/* Destination of an error message. */
typedef struct message_buffer {
    char *text;
    size_t size;
} message_buffer;

/* What the header of an IDX file declares. */
typedef struct idx_layout {
    size_t n_dimensions;
    size_t sizes[IDX_MAX_DIMENSIONS];
    size_t header_bytes; /* magic number and dimension sizes */
    size_t data_bytes;   /* product of the sizes */
    size_t total_bytes;  /* header_bytes + data_bytes */
} idx_layout;

/* Result of checking a header that may not have arrived in full yet. */
typedef enum header_status {
    HEADER_INCOMPLETE, /* more bytes are needed to decide; nothing reported */
    HEADER_INVALID,    /* reported */
    HEADER_VALID,
} header_status;

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

static uint32_t read_big_endian_u32(const uint8_t *bytes)
{
    return ((uint32_t)bytes[0] << 24) | ((uint32_t)bytes[1] << 16) | ((uint32_t)bytes[2] << 8) |
           (uint32_t)bytes[3];
}

static bool is_gzip(const uint8_t *bytes, size_t size)
{
    return size >= 2 && bytes[0] == GZIP_ID1 && bytes[1] == GZIP_ID2;
}

static const char *kind_name(idx_kind kind)
{
    return kind == IDX_IMAGES ? "image" : "label";
}

static size_t kind_dimensions(idx_kind kind)
{
    return kind == IDX_IMAGES ? 3 : 1;
}

/* Name of an IDX element type other than unsigned byte, or NULL for a code
 * that the format does not define. */
static const char *other_type_name(unsigned code)
{
    switch (code) {
    case 0x09:
        return "signed byte";
    case 0x0b:
        return "16-bit integer";
    case 0x0c:
        return "32-bit integer";
    case 0x0d:
        return "32-bit float";
    case 0x0e:
        return "64-bit float";
    default:
        return NULL;
    }
}

static const char *plural(size_t count)
{
    return count == 1 ? "" : "s";
}

/* Writes "3 images of 28x28 pixels" or "3 labels" to `text`. */
static void describe_contents(const idx_layout *layout, char *text, size_t size)
{
    size_t count = layout->sizes[0];
    if (layout->n_dimensions == 3) {
        snprintf(text, size, "%zu image%s of %zux%zu pixels", count, plural(count),
                 layout->sizes[1], layout->sizes[2]);
    } else {
        snprintf(text, size, "%zu label%s", count, plural(count));
    }
}

/* Checks the magic number, the first of the header's words. */
static bool check_magic(const uint8_t *bytes, idx_kind kind, const char *name,
                        message_buffer *out)
{
    uint32_t magic = read_big_endian_u32(bytes);
    if (bytes[0] != 0 || bytes[1] != 0) {
        report(out, name,
               "invalid magic number 0x%08" PRIx32 ": an IDX file starts with two zero bytes",
               magic);
        return false;
    }
    unsigned type = bytes[2];
    if (type != IDX_TYPE_UNSIGNED_BYTE) {
        const char *type_name = other_type_name(type);
        if (type_name != NULL) {
            report(out, name,
                   "unsupported element type 0x%02x (%s) in magic number 0x%08" PRIx32
                   "; only 0x08 (unsigned byte) is supported",
                   type, type_name, magic);
        } else {
            report(out, name,
                   "invalid element type 0x%02x in magic number 0x%08" PRIx32
                   "; only 0x08 (unsigned byte) is supported",
                   type, magic);
        }
        return false;
    }
    size_t n_dimensions = bytes[3];
    if (n_dimensions != kind_dimensions(kind)) {
        const char *expected = kind == IDX_IMAGES
                                   ? "3 (image count, row count, column count)"
                                   : "1 (label count)";
        const char *hint = "";
        if (kind == IDX_IMAGES && n_dimensions == kind_dimensions(IDX_LABELS)) {
            hint = " (this is an IDX label file)";
        } else if (kind == IDX_LABELS && n_dimensions == kind_dimensions(IDX_IMAGES)) {
            hint = " (this is an IDX image file)";
        }
        report(out, name,
               "magic number 0x%08" PRIx32 " declares %zu dimension%s, but an IDX %s file has %s%s",
               magic, n_dimensions, plural(n_dimensions), kind_name(kind), expected, hint);
        return false;
    }
    return true;
}

/* Checks the header at the start of the `size` bytes at `bytes` and fills
 * `layout`. When `final` is false the bytes may be the start of a longer
 * file, and a header cut short returns HEADER_INCOMPLETE without a report.
 * `compressed` is true for bytes that came out of gzip, which the messages
 * then mention. */
static header_status check_header(const uint8_t *bytes, size_t size, idx_kind kind,
                                  const char *name, bool compressed, bool final,
                                  idx_layout *layout, message_buffer *out)
{
    const char *subject = compressed ? "the decompressed data" : "the file";
    if (size < IDX_WORD_BYTES) {
        if (!final) {
            return HEADER_INCOMPLETE;
        }
        if (size == 0) {
            report(out, name, "%s is empty; expected an IDX %s file", subject, kind_name(kind));
        } else {
            report(out, name, "truncated: %s ends after %zu of the 4 bytes of the magic number",
                   subject, size);
        }
        return HEADER_INVALID;
    }
    if (!check_magic(bytes, kind, name, out)) {
        return HEADER_INVALID;
    }

    size_t n_dimensions = kind_dimensions(kind);
    size_t header_bytes = IDX_WORD_BYTES * (1 + n_dimensions);
    if (size < header_bytes) {
        if (final) {
            report(out, name, "truncated: %s ends after %zu of the %zu header bytes", subject, size,
                   header_bytes);
            return HEADER_INVALID;
        }
        return HEADER_INCOMPLETE;
    }

    static const char *const image_dimensions[] = {"image count", "row count", "column count"};
    static const char *const label_dimensions[] = {"label count"};
    const char *const *dimension_names = kind == IDX_IMAGES ? image_dimensions : label_dimensions;
    const char *where = compressed ? " of the decompressed data" : "";
    layout->n_dimensions = n_dimensions;
    layout->header_bytes = header_bytes;
    size_t data_bytes = 1;
    bool overflow = false;
    for (size_t i = 0; i < n_dimensions; i++) {
        size_t offset = IDX_WORD_BYTES * (1 + i);
        size_t dimension = read_big_endian_u32(bytes + offset);
        if (dimension == 0) {
            report(out, name, "invalid header: the %s at byte offset %zu%s is 0",
                   dimension_names[i], offset, where);
            return HEADER_INVALID;
        }
        layout->sizes[i] = dimension;
        if (data_bytes > SIZE_MAX / dimension) {
            overflow = true;
        } else {
            data_bytes *= dimension;
        }
    }
    /* The limit of decompression is one byte past the total, so the total
     * must leave room for that byte too. */
    if (overflow || data_bytes > SIZE_MAX - header_bytes - 1) {
        char contents[128];
        describe_contents(layout, contents, sizeof contents);
        report(out, name, "invalid header: %s do not fit in memory", contents);
        return HEADER_INVALID;
    }
    layout->data_bytes = data_bytes;
    layout->total_bytes = header_bytes + data_bytes;
    return HEADER_VALID;
}

/* Checks a whole IDX file of `size` bytes: its header, then that its length
 * is exactly what the header declares. `whole` is false when reading
 * stopped one byte past that length, so that the count of extra bytes is
 * not known. */
static bool check_file(const uint8_t *bytes, size_t size, idx_kind kind, const char *name,
                       bool compressed, bool whole, idx_layout *layout, message_buffer *out)
{
    if (check_header(bytes, size, kind, name, compressed, true, layout, out) != HEADER_VALID) {
        return false;
    }
    const char *subject = compressed ? "the decompressed data" : "the file";
    const char *where = compressed ? " of the decompressed data" : "";
    char contents[128];
    describe_contents(layout, contents, sizeof contents);
    if (size < layout->total_bytes) {
        report(out, name,
               "truncated: the header declares %s (%zu bytes), but %s ends after %zu of them, "
               "at byte offset %zu",
               contents, layout->data_bytes, subject, size - layout->header_bytes, size);
        return false;
    }
    if (size > layout->total_bytes) {
        if (compressed || !whole) {
            report(out, name, "unexpected data at byte offset %zu%s, after the %s the header declares",
                   layout->total_bytes, where, contents);
        } else {
            size_t extra = size - layout->total_bytes;
            report(out, name,
                   "%zu unexpected byte%s at byte offset %zu, after the %s the header declares",
                   extra, plural(extra), layout->total_bytes, contents);
        }
        return false;
    }
    return true;
}

#ifdef HAVE_ZLIB
/* Decompresses the gzip members in the `size` bytes at `input` into a new
 * buffer, which grows only as data arrives. Once the decompressed header is
 * complete, decompression stops one byte past the size it declares, so that
 * check_file() finds that extra byte and reports it. */
static bool decompress(const uint8_t *input, size_t size, idx_kind kind, const char *name,
                       uint8_t **output, size_t *output_size, message_buffer *out)
{
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    /* 16 + MAX_WBITS: gzip members only, with their header and checksum. */
    if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {
        report(out, name, "out of memory while starting to decompress");
        return false;
    }
    size_t capacity = INITIAL_BUFFER_BYTES;
    uint8_t *buffer = malloc(capacity);
    size_t filled = 0;
    size_t consumed = 0;
    size_t limit = SIZE_MAX;
    bool limit_known = false;
    bool ok = false;
    while (buffer != NULL) {
        if (limit_known && filled >= limit) {
            ok = true;
            break;
        }
        if (filled == capacity) {
            size_t grown = capacity <= limit / 2 ? capacity * 2 : limit;
            uint8_t *larger = realloc(buffer, grown);
            if (larger == NULL) {
                break;
            }
            buffer = larger;
            capacity = grown;
        }
        size_t in_chunk = size - consumed < UINT_MAX ? size - consumed : UINT_MAX;
        size_t room = capacity - filled;
        size_t out_chunk = room < UINT_MAX ? room : UINT_MAX;
        stream.next_in = input + consumed;
        stream.avail_in = (uInt)in_chunk;
        stream.next_out = buffer + filled;
        stream.avail_out = (uInt)out_chunk;
        int status = inflate(&stream, Z_NO_FLUSH);
        consumed += in_chunk - stream.avail_in;
        filled += out_chunk - stream.avail_out;

        if (!limit_known) {
            idx_layout layout;
            header_status header =
                check_header(buffer, filled, kind, name, true, false, &layout, out);
            if (header == HEADER_INVALID) {
                goto fail;
            }
            if (header == HEADER_VALID) {
                limit = layout.total_bytes + 1;
                limit_known = true;
            }
        }

        if (status == Z_OK) {
            continue;
        }
        if (status == Z_STREAM_END) {
            if (consumed == size) {
                ok = true;
                break;
            }
            if (is_gzip(input + consumed, size - consumed)) {
                inflateReset(&stream);
                continue;
            }
            report(out, name,
                   "%zu unexpected byte%s at byte offset %zu, after the end of the gzip data",
                   size - consumed, plural(size - consumed), consumed);
            goto fail;
        }
        if (status == Z_BUF_ERROR && stream.avail_out == 0) {
            continue; /* the buffer is full; it grows at the top of the loop */
        }
        if (status == Z_BUF_ERROR && consumed == size) {
            report(out, name, "truncated gzip data: the file ends at byte offset %zu, "
                   "inside a gzip member", size);
        } else if (status == Z_DATA_ERROR) {
            report(out, name, "corrupt gzip data at byte offset %zu: %s", consumed,
                   stream.msg != NULL ? stream.msg : "invalid data");
        } else if (status == Z_MEM_ERROR) {
            report(out, name, "out of memory while decompressing");
        } else {
            report(out, name, "gzip error %d at byte offset %zu", status, consumed);
        }
        goto fail;
    }
    inflateEnd(&stream);
    if (!ok) {
        free(buffer);
        report(out, name, "out of memory after decompressing %zu bytes", filled);
        return false;
    }
    *output = buffer;
    *output_size = filled;
    return true;

fail:
    inflateEnd(&stream);
    free(buffer);
    return false;
}
#endif

/* Parses the `size` bytes at `bytes` into `array`. When `owned` is not NULL,
 * it is the buffer that contains `bytes`, and this function takes it over
 * and reuses it for the elements. Otherwise the elements are copied.
 * `whole` is as for check_file. */
static bool parse_bytes(idx_array *array, idx_kind kind, const uint8_t *bytes, size_t size,
                        uint8_t *owned, bool whole, const char *name, message_buffer *out)
{
    idx_array empty = {0};
    *array = empty;
    bool compressed = is_gzip(bytes, size);
    if (compressed) {
#ifdef HAVE_ZLIB
        uint8_t *plain = NULL;
        size_t plain_size = 0;
        bool ok = decompress(bytes, size, kind, name, &plain, &plain_size, out);
        free(owned);
        if (!ok) {
            return false;
        }
        bytes = plain;
        size = plain_size;
        owned = plain;
#else
        free(owned);
        report(out, name,
               "the file is gzip-compressed, but this program was built without zlib; "
               "decompress it with gunzip or rebuild with zlib");
        return false;
#endif
    }

    idx_layout layout;
    if (!check_file(bytes, size, kind, name, compressed, whole, &layout, out)) {
        free(owned);
        return false;
    }
    uint8_t *data = owned;
    if (data != NULL) {
        memmove(data, data + layout.header_bytes, layout.data_bytes);
        uint8_t *shrunk = realloc(data, layout.data_bytes);
        if (shrunk != NULL) {
            data = shrunk;
        }
    } else {
        data = malloc(layout.data_bytes);
        if (data == NULL) {
            report(out, name, "out of memory for %zu data bytes", layout.data_bytes);
            return false;
        }
        memcpy(data, bytes + layout.header_bytes, layout.data_bytes);
    }
    array->count = layout.sizes[0];
    array->rows = layout.n_dimensions == 3 ? layout.sizes[1] : 1;
    array->cols = layout.n_dimensions == 3 ? layout.sizes[2] : 1;
    array->data = data;
    array->data_offset = layout.header_bytes;
    array->compressed = compressed;
    return true;
}

bool idx_parse(idx_array *array, idx_kind kind, const uint8_t *bytes, size_t size,
               const char *name, char *message, size_t message_size)
{
    message_buffer out = {.text = message, .size = message_size};
    if (message_size > 0) {
        message[0] = '\0';
    }
    return parse_bytes(array, kind, bytes, size, NULL, true, name, &out);
}

void idx_array_free(idx_array *array)
{
    if (array == NULL) {
        return;
    }
    free(array->data);
    const idx_array empty = {0};
    *array = empty;
}

static char *copy_string(const char *text)
{
    size_t size = strlen(text) + 1;
    char *copy = malloc(size);
    if (copy != NULL) {
        memcpy(copy, text, size);
    }
    return copy;
}

/* Checks the labels against the images and the class count, then moves both
 * arrays into `dataset`. Frees both arrays whatever the result. */
static bool join_arrays(idx_dataset *dataset, idx_array *images, idx_array *labels,
                        const char *images_name, const char *labels_name, unsigned n_classes,
                        message_buffer *out)
{
    bool ok = false;
    const char *where = labels->compressed ? " of the decompressed data" : "";
    for (size_t i = 0; i < labels->count; i++) {
        if (labels->data[i] >= n_classes) {
            report(out, labels_name,
                   "invalid label %u for sample %zu at byte offset %zu%s; labels must be below %u",
                   (unsigned)labels->data[i], i, labels->data_offset + i, where, n_classes);
            goto done;
        }
    }
    if (labels->count != images->count) {
        report(out, labels_name, "contains %zu labels, but %s contains %zu images", labels->count,
               images_name, images->count);
        goto done;
    }
    char *images_path = copy_string(images_name);
    char *labels_path = copy_string(labels_name);
    if (images_path == NULL || labels_path == NULL) {
        free(images_path);
        free(labels_path);
        report(out, labels_name, "out of memory");
        goto done;
    }
    dataset->count = images->count;
    dataset->rows = images->rows;
    dataset->cols = images->cols;
    dataset->pixels = images->data;
    dataset->labels = labels->data;
    dataset->images_path = images_path;
    dataset->labels_path = labels_path;
    images->data = NULL;
    labels->data = NULL;
    ok = true;
done:
    idx_array_free(images);
    idx_array_free(labels);
    return ok;
}

bool idx_dataset_parse(idx_dataset *dataset, const uint8_t *image_bytes, size_t image_size,
                       const char *images_name, const uint8_t *label_bytes, size_t label_size,
                       const char *labels_name, unsigned n_classes, char *message,
                       size_t message_size)
{
    message_buffer out = {.text = message, .size = message_size};
    if (message_size > 0) {
        message[0] = '\0';
    }
    const idx_dataset empty = {0};
    *dataset = empty;
    idx_array images = {0};
    idx_array labels = {0};
    if (!parse_bytes(&images, IDX_IMAGES, image_bytes, image_size, NULL, true, images_name, &out)) {
        return false;
    }
    if (!parse_bytes(&labels, IDX_LABELS, label_bytes, label_size, NULL, true, labels_name, &out)) {
        idx_array_free(&images);
        return false;
    }
    return join_arrays(dataset, &images, &labels, images_name, labels_name, n_classes, &out);
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

/* Opens DIR/NAME, or DIR/NAME.gz if DIR/NAME does not exist, and sets
 * `*path` to the path opened, which the caller frees. Returns the open
 * descriptor, or -1 after reporting. */
static int open_file(const char *dir, const char *name, char **path, message_buffer *out)
{
    *path = join_path(dir, name, "");
    if (*path == NULL) {
        report(out, name, "cannot build the file path: out of memory");
        return -1;
    }
    /* O_NONBLOCK keeps open() from waiting for a writer when the path is a
     * FIFO; read_all clears it again. */
    int fd = open(*path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        return fd;
    }
    if (errno != ENOENT) {
        report(out, *path, "cannot open: %s", strerror(errno));
        return -1;
    }

    char *gz_path = join_path(dir, name, ".gz");
    if (gz_path == NULL) {
        report(out, *path, "cannot build the file path: out of memory");
        return -1;
    }
    fd = open(gz_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        struct stat dir_status;
        if (errno == ENOENT && stat(dir, &dir_status) != 0) {
            report(out, dir, "cannot open the data directory: %s", strerror(errno));
        } else if (errno == ENOENT) {
            report(out, *path, "not found, and neither is %s.gz", name);
        } else {
            report(out, gz_path, "cannot open: %s", strerror(errno));
        }
        free(gz_path);
        return -1;
    }
    free(*path);
    *path = gz_path;
    return fd;
}

/* The kind of a file that is neither regular nor a pipe, for messages. */
static const char *special_file_name(mode_t mode)
{
    if (S_ISDIR(mode)) {
        return "directory";
    }
    if (S_ISCHR(mode)) {
        return "character device";
    }
    if (S_ISBLK(mode)) {
        return "block device";
    }
    if (S_ISSOCK(mode)) {
        return "socket";
    }
    return "special file";
}

/* Checks that `fd` is a regular file or a pipe, and puts a pipe back into
 * blocking mode. Sets `*size_hint` to a regular file's size plus one byte,
 * or 0. Returns false after reporting. */
static bool check_file_type(int fd, const char *path, bool *pipe, size_t *size_hint,
                            message_buffer *out)
{
    struct stat status;
    if (fstat(fd, &status) != 0) {
        report(out, path, "cannot read: %s", strerror(errno));
        return false;
    }
    *pipe = S_ISFIFO(status.st_mode);
    *size_hint = 0;
    if (*pipe) {
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
            report(out, path, "cannot read the pipe: %s", strerror(errno));
            return false;
        }
        return true;
    }
    if (!S_ISREG(status.st_mode)) {
        report(out, path, "is a %s, not a regular file or a pipe",
               special_file_name(status.st_mode));
        return false;
    }
    if (status.st_size >= 0 && (uintmax_t)status.st_size < SIZE_MAX) {
        *size_hint = (size_t)status.st_size + 1;
    }
    return true;
}

/* Reads the file at `fd` into a new buffer. A regular file is read whole
 * into a buffer of its size plus one byte, so that one read past the end
 * confirms the size. A pipe is read into a buffer that doubles as data
 * arrives, and only up to the size its header declares plus one byte
 * (PIPE_GZIP_MAX_BYTES for gzip data), so a writer that never stops cannot
 * exhaust memory. In both, a header that is invalid is reported as soon as
 * its bytes arrive. Sets `*whole` to false when a pipe was not read to its
 * end. Returns false after reporting. */
static bool read_all(int fd, idx_kind kind, const char *path, uint8_t **bytes, size_t *size,
                     bool *whole, message_buffer *out)
{
    bool pipe = false;
    size_t capacity = 0;
    if (!check_file_type(fd, path, &pipe, &capacity, out)) {
        return false;
    }
    if (capacity == 0) {
        capacity = INITIAL_BUFFER_BYTES;
    }
    size_t limit = SIZE_MAX; /* bytes read at most */
    bool header_read = false;
    bool gzip = false;
    uint8_t *buffer = malloc(capacity);
    size_t filled = 0;
    bool out_of_memory = buffer == NULL;
    while (!out_of_memory && filled < limit) {
        if (filled == capacity) {
            size_t grown = capacity <= limit / 2 ? capacity * 2 : limit;
            uint8_t *larger = grown > capacity ? realloc(buffer, grown) : NULL;
            if (larger == NULL) {
                out_of_memory = true;
                break;
            }
            buffer = larger;
            capacity = grown;
        }
        size_t room = (capacity < limit ? capacity : limit) - filled;
        ssize_t got = read(fd, buffer + filled, room < SSIZE_MAX ? room : SSIZE_MAX);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            report(out, path, "read failed: %s", strerror(errno));
            free(buffer);
            return false;
        }
        if (got == 0) {
            break;
        }
        filled += (size_t)got;
        if (header_read) {
            continue;
        }

        if (is_gzip(buffer, filled)) {
            header_read = true;
            gzip = true;
            limit = pipe ? PIPE_GZIP_MAX_BYTES + 1 : SIZE_MAX;
            continue;
        }
        idx_layout layout;
        header_status header = check_header(buffer, filled, kind, path, false, false, &layout, out);
        if (header == HEADER_INVALID) {
            free(buffer);
            return false;
        }
        if (header == HEADER_VALID) {
            header_read = true;
            limit = pipe ? layout.total_bytes + 1 : SIZE_MAX;
        }
    }
    if (out_of_memory) {
        free(buffer);
        report(out, path, "out of memory after reading %zu bytes", filled);
        return false;
    }
    if (gzip && pipe && filled > PIPE_GZIP_MAX_BYTES) {
        report(out, path, "the pipe sends more than %zu bytes of gzip data; decompress it "
               "into the pipe or give a regular file", PIPE_GZIP_MAX_BYTES);
        free(buffer);
        return false;
    }
    *bytes = buffer;
    *size = filled;
    *whole = !pipe || filled < limit;
    return true;
}

/* Opens, reads and parses one file of the dataset; sets `*path` to the path
 * read, which the caller frees. */
static bool load_file(idx_array *array, idx_kind kind, const char *dir, const char *name,
                      char **path, message_buffer *out)
{
    int fd = open_file(dir, name, path, out);
    if (fd < 0) {
        return false;
    }
    uint8_t *bytes = NULL;
    size_t size = 0;
    bool whole = true;
    bool ok = read_all(fd, kind, *path, &bytes, &size, &whole, out);
    close(fd);
    return ok && parse_bytes(array, kind, bytes, size, bytes, whole, *path, out);
}

bool idx_dataset_load(idx_dataset *dataset, const char *dir, const char *images_name,
                      const char *labels_name, unsigned n_classes, char *message,
                      size_t message_size)
{
    message_buffer out = {.text = message, .size = message_size};
    if (message_size > 0) {
        message[0] = '\0';
    }
    const idx_dataset empty = {0};
    *dataset = empty;
    idx_array images = {0};
    idx_array labels = {0};
    char *images_path = NULL;
    char *labels_path = NULL;
    bool ok = load_file(&images, IDX_IMAGES, dir, images_name, &images_path, &out) &&
              load_file(&labels, IDX_LABELS, dir, labels_name, &labels_path, &out) &&
              join_arrays(dataset, &images, &labels, images_path, labels_path, n_classes, &out);
    idx_array_free(&images);
    idx_array_free(&labels);
    free(images_path);
    free(labels_path);
    return ok;
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
