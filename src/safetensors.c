/* Reading model files in the safetensors format. The layout, and what the
 * reader accepts, are in the README's "File formats".
 *
 * The reader trusts nothing it has not checked. The header length is
 * compared with the real file size before the header is parsed. The JSON is
 * parsed strictly, within depth and value limits. Every tensor's dtype,
 * shape and byte range is checked. The data ranges must tile the data
 * section exactly, from its first byte to its last, so that a range that
 * overlaps another, leaves a gap or stops short of the end is rejected. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Bytes of the header length that opens the file. */
#define LENGTH_BYTES 8

/* Largest header accepted, 100 MB: the limit of the format's reference
 * implementation (MAX_HEADER_SIZE in huggingface/safetensors,
 * safetensors/src/tensor.rs). */
#define MAX_HEADER_BYTES 100000000u

/* A safetensors header nests three levels deep: the top object, a tensor's
 * object, and its shape or data_offsets array (or the metadata object).
 * Anything deeper is invalid, so the parser stops there. */
#define MAX_HEADER_DEPTH 3

/* A tensor takes 12 JSON values, keys included: its name, its object, three
 * field names, dtype, shape with up to 2 dimensions, and data_offsets with
 * its 2 numbers. 2^19 values allow over 40,000 tensors. At 56 bytes a value
 * on x86-64, the parsed tree takes at most about 60 MB, or twice that while
 * arrays grow by doubling. */
#define MAX_HEADER_VALUES (1u << 19)

/* Reserved key of the metadata object in the header. */
#define METADATA_KEY "__metadata__"

/* Label of a file parsed from memory when the caller gives none. */
#define MEMORY_LABEL "<memory>"

typedef struct dtype_info {
    const char *name;
    size_t size;
} dtype_info;

/* Every dtype of the format, so that a file holding other tensors still
 * opens; only F32 and F64 can be read into a tensor. */
static const dtype_info dtypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
    {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8},
};

struct tt_safetensors {
    char *label;                   /* the file name for messages */
    unsigned char *bytes;          /* the whole file */
    size_t size;
    size_t data_start;             /* file offset of the data section */
    tt_json_value *header;         /* owns the strings that entries point to */
    tt_safetensors_entry *entries; /* in the order of their data */
    size_t count;
    size_t *by_name;               /* entry indices sorted by name */
    const tt_json_value *metadata; /* the __metadata__ object, or NULL */
};

static uint64_t read_le64(const unsigned char *bytes)
{
    uint64_t value = 0;
    for (int i = LENGTH_BYTES - 1; i >= 0; i--)
        value = value << 8 | bytes[i];
    return value;
}

static const dtype_info *find_dtype(const char *name)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
        if (strcmp(dtypes[i].name, name) == 0)
            return &dtypes[i];
    }
    return NULL;
}

/* Returns whether text[0 .. length) contains a NUL byte, which a JSON
 * string may hold (\u0000) but a C string cannot. */
static bool has_nul(const char *text, size_t length)
{
    return memchr(text, '\0', length) != NULL;
}

void tt_safetensors_close(tt_safetensors *file)
{
    if (file == NULL)
        return;
    tt_json_free(file->header);
    free(file->entries);
    free(file->by_name);
    free(file->bytes);
    free(file->label);
    free(file);
}

/* ---- Checking the header ------------------------------------------------ */

/* Fills err with TT_ERR_FORMAT and "LABEL: message" and returns false. */
__attribute__((format(printf, 3, 4))) static bool reject(const tt_safetensors *file,
                                                         tt_error *err, const char *format,
                                                         ...)
{
    char message[TT_ERROR_MESSAGE_MAX];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    tt_error_set(err, TT_ERR_FORMAT, "%s: %s", file->label, message);
    return false;
}

/* File offset of a header value. */
static size_t file_offset(const tt_json_value *value)
{
    return LENGTH_BYTES + value->offset;
}

/* Reads an array of at most `max_count` unsigned 64-bit integers. */
static bool read_integers(const tt_safetensors *file, const char *name, const char *field,
                          const tt_json_value *array, size_t max_count, uint64_t *values,
                          tt_error *err)
{
    if (array->type != TT_JSON_ARRAY)
        return reject(file, err, "tensor '%s': %s at offset %zu is not an array", name, field,
                      file_offset(array));
    if (array->count > max_count)
        return reject(file, err, "tensor '%s': %s at offset %zu has %zu entries; at most %zu "
                      "are allowed", name, field, file_offset(array), array->count, max_count);
    for (size_t i = 0; i < array->count; i++) {
        if (!tt_json_uint64(&array->items[i], &values[i]))
            return reject(file, err, "tensor '%s': %s entry at offset %zu is not an integer "
                          "from 0 to 2^64-1", name, field, file_offset(&array->items[i]));
    }
    return true;
}

/* Checks one tensor's object and fills its entry. */
static bool read_entry(tt_safetensors *file, const tt_json_value *key,
                       const tt_json_value *object, tt_safetensors_entry *entry,
                       uint64_t range[2], tt_error *err)
{
    const char *name = key->text;
    if (has_nul(key->text, key->length))
        return reject(file, err, "tensor name at offset %zu contains a NUL character",
                      file_offset(key));
    if (object->type != TT_JSON_OBJECT)
        return reject(file, err, "tensor '%s' at offset %zu is not an object", name,
                      file_offset(object));

    /* Exactly the three fields, each once. */
    static const char *const fields[] = {"dtype", "shape", "data_offsets"};
    const tt_json_value *values[3] = {NULL, NULL, NULL};
    for (size_t i = 0; i < object->count; i++) {
        const tt_json_value *field = &object->keys[i];
        size_t f = 0;
        while (f < 3 && strcmp(field->text, fields[f]) != 0)
            f++;
        if (f == 3 || has_nul(field->text, field->length))
            return reject(file, err, "tensor '%s': unknown field '%s' at offset %zu", name,
                          field->text, file_offset(field));
        if (values[f] != NULL)
            return reject(file, err, "tensor '%s': field '%s' appears twice, at offsets %zu "
                          "and %zu", name, fields[f], file_offset(values[f]) ,
                          file_offset(&object->items[i]));
        values[f] = &object->items[i];
    }
    for (size_t f = 0; f < 3; f++) {
        if (values[f] == NULL)
            return reject(file, err, "tensor '%s' at offset %zu has no field '%s'", name,
                          file_offset(object), fields[f]);
    }

    /* dtype */
    const tt_json_value *dtype = values[0];
    if (dtype->type != TT_JSON_STRING)
        return reject(file, err, "tensor '%s': dtype at offset %zu is not a string", name,
                      file_offset(dtype));
    const dtype_info *info = has_nul(dtype->text, dtype->length) ? NULL : find_dtype(dtype->text);
    if (info == NULL)
        return reject(file, err, "tensor '%s': unknown dtype '%s' at offset %zu", name,
                      dtype->text, file_offset(dtype));

    /* shape: [], [d] or [rows, cols] */
    uint64_t dims[2] = {1, 1};
    const tt_json_value *shape = values[1];
    if (shape->type == TT_JSON_ARRAY && shape->count > 2)
        return reject(file, err, "tensor '%s': shape at offset %zu has %zu dimensions; "
                      "tensortape reads at most 2", name, file_offset(shape), shape->count);
    if (!read_integers(file, name, "shape", shape, 2, dims, err))
        return false;
    uint64_t bytes = info->size;
    for (size_t i = 0; i < 2; i++) {
        if (dims[i] > SIZE_MAX || (dims[i] != 0 && bytes > UINT64_MAX / dims[i]))
            return reject(file, err, "tensor '%s': shape at offset %zu is too large; its size "
                          "in bytes overflows 64 bits", name, file_offset(shape));
        bytes *= dims[i];
    }

    /* data_offsets: [begin, end], relative to the data section */
    const tt_json_value *offsets = values[2];
    if (offsets->type == TT_JSON_ARRAY && offsets->count != 2)
        return reject(file, err, "tensor '%s': data_offsets at offset %zu has %zu entries; "
                      "it must be [begin, end]", name, file_offset(offsets), offsets->count);
    if (!read_integers(file, name, "data_offsets", offsets, 2, range, err))
        return false;
    const uint64_t data_size = file->size - file->data_start;
    if (range[0] > range[1])
        return reject(file, err, "tensor '%s': data_offsets [%llu, %llu] at offset %zu end "
                      "before they begin", name, (unsigned long long)range[0],
                      (unsigned long long)range[1], file_offset(offsets));
    if (range[1] > data_size)
        return reject(file, err, "tensor '%s': data_offsets [%llu, %llu] at offset %zu end past "
                      "the data section, which has %llu bytes; the file may be truncated",
                      name, (unsigned long long)range[0], (unsigned long long)range[1],
                      file_offset(offsets), (unsigned long long)data_size);
    if (range[1] - range[0] != bytes)
        return reject(file, err, "tensor '%s': data_offsets [%llu, %llu] at offset %zu hold "
                      "%llu bytes, but %s of shape %llux%llu needs %llu", name,
                      (unsigned long long)range[0], (unsigned long long)range[1],
                      file_offset(offsets), (unsigned long long)(range[1] - range[0]),
                      info->name, (unsigned long long)dims[0], (unsigned long long)dims[1],
                      (unsigned long long)bytes);

    entry->name = name;
    entry->dtype = info->name;
    entry->n_dims = shape->count;
    entry->rows = (size_t)dims[0];
    entry->cols = (size_t)dims[1];
    entry->offset = file->data_start + range[0];
    entry->size = bytes;
    return true;
}

/* qsort has no context argument, so name comparisons go through entries
 * placed before the indices. Equal names sort by index, so that the first
 * of a name comes first. */
typedef struct name_index {
    const char *name;
    size_t index;
} name_index;

static int compare_names(const void *a, const void *b)
{
    const name_index *x = a;
    const name_index *y = b;
    int order = strcmp(x->name, y->name);
    if (order != 0)
        return order;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Finds, among names sorted by compare_names, the repeated name whose
 * second occurrence has the smallest index, and returns the indices of its
 * first two occurrences. Returns false if no name repeats. */
static bool find_repeat(const name_index *sorted, size_t count, size_t *first, size_t *second)
{
    bool found = false;
    for (size_t i = 1; i < count; i++) {
        bool starts_repeat = strcmp(sorted[i - 1].name, sorted[i].name) == 0 &&
                             (i < 2 || strcmp(sorted[i - 2].name, sorted[i].name) != 0);
        if (starts_repeat && (!found || sorted[i].index < *second)) {
            *first = sorted[i - 1].index;
            *second = sorted[i].index;
            found = true;
        }
    }
    return found;
}

/* Rejects a metadata key used twice. The keys are sorted rather than
 * compared in pairs, which would take 3·10^10 comparisons for the 2^18 keys
 * that the value limit allows. */
static bool check_metadata_keys(const tt_safetensors *file, const tt_json_value *metadata,
                                tt_error *err)
{
    size_t count = metadata->count;
    name_index *sorted = malloc((count > 0 ? count : 1) * sizeof *sorted);
    if (sorted == NULL) {
        tt_error_set(err, TT_ERR_NOMEM, "%s: out of memory checking %zu metadata keys",
                     file->label, count);
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        sorted[i].name = metadata->keys[i].text;
        sorted[i].index = i;
    }
    qsort(sorted, count, sizeof *sorted, compare_names);
    size_t first = 0;
    size_t second = 0;
    bool repeated = find_repeat(sorted, count, &first, &second);
    free(sorted);
    if (!repeated)
        return true;
    return reject(file, err, "metadata key '%s' appears twice, at offsets %zu and %zu",
                  metadata->keys[second].text, file_offset(&metadata->keys[first]),
                  file_offset(&metadata->keys[second]));
}

/* Checks the __metadata__ object: string keys and values without NUL,
 * each key once. */
static bool read_metadata(const tt_safetensors *file, const tt_json_value *metadata,
                          tt_error *err)
{
    if (metadata->type != TT_JSON_OBJECT)
        return reject(file, err, METADATA_KEY " at offset %zu is not an object",
                      file_offset(metadata));
    for (size_t i = 0; i < metadata->count; i++) {
        const tt_json_value *key = &metadata->keys[i];
        const tt_json_value *value = &metadata->items[i];
        if (has_nul(key->text, key->length))
            return reject(file, err, "metadata key at offset %zu contains a NUL character",
                          file_offset(key));
        if (value->type != TT_JSON_STRING)
            return reject(file, err, "metadata '%s' at offset %zu is not a string", key->text,
                          file_offset(value));
        if (has_nul(value->text, value->length))
            return reject(file, err, "metadata '%s' at offset %zu contains a NUL character",
                          key->text, file_offset(value));
    }
    return check_metadata_keys(file, metadata, err);
}

/* A tensor's entry with the range and key it came from, for sorting. */
typedef struct pending_entry {
    tt_safetensors_entry entry;
    uint64_t begin;
    uint64_t end;
    const tt_json_value *key;
} pending_entry;

static int compare_by_range(const void *a, const void *b)
{
    const pending_entry *x = a;
    const pending_entry *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* Checks that the sorted ranges tile the data section: the first begins at
 * 0, each begins where the one before ends, and the last ends at the end. */
static bool check_ranges(const tt_safetensors *file, const pending_entry *sorted, size_t count,
                         tt_error *err)
{
    const uint64_t data_size = file->size - file->data_start;
    uint64_t covered = 0;
    for (size_t i = 0; i < count; i++) {
        const pending_entry *p = &sorted[i];
        if (p->begin < covered)
            return reject(file, err, "tensor '%s': data_offsets [%llu, %llu] overlap those of "
                          "tensor '%s', [%llu, %llu]", p->entry.name,
                          (unsigned long long)p->begin, (unsigned long long)p->end,
                          sorted[i - 1].entry.name, (unsigned long long)sorted[i - 1].begin,
                          (unsigned long long)sorted[i - 1].end);
        if (p->begin > covered)
            return reject(file, err, "data bytes %llu to %llu (file offset %llu) belong to no "
                          "tensor", (unsigned long long)covered, (unsigned long long)p->begin,
                          (unsigned long long)(file->data_start + covered));
        covered = p->end;
    }
    if (covered < data_size)
        return reject(file, err, "the %llu bytes after the last tensor, at file offset %llu, "
                      "belong to no tensor", (unsigned long long)(data_size - covered),
                      (unsigned long long)(file->data_start + covered));
    return true;
}

/* Sorts the entries' names into file->by_name and rejects a name used twice. */
static bool index_names(tt_safetensors *file, const pending_entry *pending, tt_error *err)
{
    name_index *sorted = malloc((file->count > 0 ? file->count : 1) * sizeof *sorted);
    file->by_name = malloc((file->count > 0 ? file->count : 1) * sizeof *file->by_name);
    if (sorted == NULL || file->by_name == NULL) {
        free(sorted);
        tt_error_set(err, TT_ERR_NOMEM, "%s: out of memory indexing %zu tensors", file->label,
                     file->count);
        return false;
    }
    for (size_t i = 0; i < file->count; i++) {
        sorted[i].name = file->entries[i].name;
        sorted[i].index = i;
    }
    qsort(sorted, file->count, sizeof *sorted, compare_names);
    for (size_t i = 0; i < file->count; i++)
        file->by_name[i] = sorted[i].index;
    size_t first = 0;
    size_t second = 0;
    bool repeated = find_repeat(sorted, file->count, &first, &second);
    free(sorted);
    if (!repeated)
        return true;
    /* The entries are in the order of their data, so the offsets of the
     * names in the header may come in either order. */
    size_t first_offset = file_offset(pending[first].key);
    size_t second_offset = file_offset(pending[second].key);
    return reject(file, err, "tensor name '%s' appears twice, at offsets %zu and %zu",
                  file->entries[first].name,
                  first_offset < second_offset ? first_offset : second_offset,
                  first_offset < second_offset ? second_offset : first_offset);
}

/* Reads the header's members into entries and metadata. */
static bool read_header(tt_safetensors *file, tt_error *err)
{
    const tt_json_value *root = file->header;
    if (root->type != TT_JSON_OBJECT)
        return reject(file, err, "header at offset %zu is not a JSON object",
                      file_offset(root));

    pending_entry *pending = malloc((root->count > 0 ? root->count : 1) * sizeof *pending);
    if (pending == NULL) {
        tt_error_set(err, TT_ERR_NOMEM, "%s: out of memory reading %zu header entries",
                     file->label, root->count);
        return false;
    }
    bool ok = true;
    size_t count = 0;
    const tt_json_value *metadata_key = NULL;
    for (size_t i = 0; ok && i < root->count; i++) {
        const tt_json_value *key = &root->keys[i];
        if (strcmp(key->text, METADATA_KEY) == 0 && !has_nul(key->text, key->length)) {
            if (metadata_key != NULL) {
                ok = reject(file, err, METADATA_KEY " appears twice, at offsets %zu and %zu",
                            file_offset(metadata_key), file_offset(key));
            } else if ((ok = read_metadata(file, &root->items[i], err))) {
                file->metadata = &root->items[i];
                metadata_key = key;
            }
            continue;
        }
        uint64_t range[2] = {0, 0};
        pending_entry *p = &pending[count];
        ok = read_entry(file, key, &root->items[i], &p->entry, range, err);
        p->begin = range[0];
        p->end = range[1];
        p->key = key;
        count++;
    }
    if (ok) {
        qsort(pending, count, sizeof *pending, compare_by_range);
        file->count = count;
        file->entries = malloc((count > 0 ? count : 1) * sizeof *file->entries);
        if (file->entries == NULL) {
            tt_error_set(err, TT_ERR_NOMEM, "%s: out of memory reading %zu tensors", file->label,
                         count);
            ok = false;
        }
    }
    if (ok) {
        for (size_t i = 0; i < count; i++)
            file->entries[i] = pending[i].entry;
        ok = index_names(file, pending, err) && check_ranges(file, pending, count, err);
    }
    free(pending);
    return ok;
}

/* Checks `bytes` (owned from now on) and returns the opened file. */
static tt_safetensors *parse_owned(unsigned char *bytes, size_t size, const char *label,
                                   tt_error *err)
{
    tt_safetensors *file = calloc(1, sizeof *file);
    char *label_copy = malloc(strlen(label) + 1);
    if (file == NULL || label_copy == NULL) {
        free(file);
        free(label_copy);
        free(bytes);
        tt_error_set(err, TT_ERR_NOMEM, "%s: out of memory", label);
        return NULL;
    }
    memcpy(label_copy, label, strlen(label) + 1);
    file->label = label_copy;
    file->bytes = bytes;
    file->size = size;

    /* The header length is checked against the bytes that are really
     * there before anything is allocated for the header. */
    if (size < LENGTH_BYTES) {
        reject(file, err, "file is %zu bytes, too short for the %d-byte header length", size,
               LENGTH_BYTES);
        goto fail;
    }
    uint64_t header_size = read_le64(bytes);
    if (header_size > MAX_HEADER_BYTES) {
        reject(file, err, "header length %llu at offset 0 exceeds the limit of %u bytes",
               (unsigned long long)header_size, MAX_HEADER_BYTES);
        goto fail;
    }
    if (header_size > size - LENGTH_BYTES) {
        reject(file, err, "header length %llu at offset 0 exceeds the %zu bytes after it; the "
               "file may be truncated", (unsigned long long)header_size, size - LENGTH_BYTES);
        goto fail;
    }
    file->data_start = LENGTH_BYTES + (size_t)header_size;

    const tt_json_limits limits = {MAX_HEADER_DEPTH, MAX_HEADER_VALUES};
    tt_json_error json_error;
    file->header = tt_json_parse((const char *)bytes + LENGTH_BYTES, (size_t)header_size,
                                 &limits, &json_error);
    if (file->header == NULL) {
        reject(file, err, "invalid header JSON at offset %zu: %s",
               LENGTH_BYTES + json_error.offset, json_error.message);
        goto fail;
    }
    if (!read_header(file, err))
        goto fail;
    return file;

fail:
    tt_safetensors_close(file);
    return NULL;
}

tt_safetensors *tt_safetensors_parse(const void *bytes, size_t size, const char *label,
                                     tt_error *err)
{
    if (label == NULL)
        label = MEMORY_LABEL;
    if (bytes == NULL && size > 0) {
        tt_error_set(err, TT_ERR_ARG, "tt_safetensors_parse: bytes is NULL");
        return NULL;
    }
    unsigned char *copy = malloc(size > 0 ? size : 1);
    if (copy == NULL) {
        tt_error_set(err, TT_ERR_NOMEM, "%s: out of memory copying %zu bytes", label, size);
        return NULL;
    }
    if (size > 0)
        memcpy(copy, bytes, size);
    return parse_owned(copy, size, label, err);
}

tt_safetensors *tt_safetensors_open(const char *path, tt_error *err)
{
    if (path == NULL) {
        tt_error_set(err, TT_ERR_ARG, "tt_safetensors_open: path is NULL");
        return NULL;
    }
    /* O_NONBLOCK keeps open() from waiting for a writer when `path` is a
     * FIFO, so that the check below rejects it. It does not change reads
     * of a regular file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        tt_error_set(err, TT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat status;
    if (fstat(fd, &status) != 0) {
        tt_error_set(err, TT_ERR_IO, "%s: cannot read its size: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(status.st_mode)) {
        tt_error_set(err, TT_ERR_IO, "%s: not a regular file but a %s", path,
                     tt_file_type_name(status.st_mode));
        close(fd);
        return NULL;
    }
    if ((uintmax_t)status.st_size > SIZE_MAX) {
        tt_error_set(err, TT_ERR_NOMEM, "%s: %jd bytes do not fit in memory", path,
                     (intmax_t)status.st_size);
        close(fd);
        return NULL;
    }

    /* The buffer is sized by the file system's size, never by the header. */
    size_t size = (size_t)status.st_size;
    unsigned char *bytes = malloc(size > 0 ? size : 1);
    if (bytes == NULL) {
        tt_error_set(err, TT_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, size);
        close(fd);
        return NULL;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t got = read(fd, bytes + done, size - done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                tt_error_set(err, TT_ERR_IO, "%s: file shrank to %zu bytes while being read",
                             path, done);
            else
                tt_error_set(err, TT_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
            free(bytes);
            close(fd);
            return NULL;
        }
        done += (size_t)got;
    }
    close(fd);
    return parse_owned(bytes, size, path, err);
}

/* ---- Queries and reading tensors ------------------------------------------ */

size_t tt_safetensors_count(const tt_safetensors *file)
{
    return file != NULL ? file->count : 0;
}

const tt_safetensors_entry *tt_safetensors_entry_at(const tt_safetensors *file, size_t index)
{
    if (file == NULL || index >= file->count)
        return NULL;
    return &file->entries[index];
}

const tt_safetensors_entry *tt_safetensors_find(const tt_safetensors *file, const char *name)
{
    if (file == NULL || name == NULL)
        return NULL;
    size_t low = 0;
    size_t high = file->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        const tt_safetensors_entry *entry = &file->entries[file->by_name[middle]];
        int order = strcmp(entry->name, name);
        if (order == 0)
            return entry;
        if (order < 0)
            low = middle + 1;
        else
            high = middle;
    }
    return NULL;
}

size_t tt_safetensors_metadata_count(const tt_safetensors *file)
{
    return file != NULL && file->metadata != NULL ? file->metadata->count : 0;
}

const char *tt_safetensors_metadata_key(const tt_safetensors *file, size_t index)
{
    if (index >= tt_safetensors_metadata_count(file))
        return NULL;
    return file->metadata->keys[index].text;
}

const char *tt_safetensors_metadata_value(const tt_safetensors *file, size_t index)
{
    if (index >= tt_safetensors_metadata_count(file))
        return NULL;
    return file->metadata->items[index].text;
}

const char *tt_safetensors_metadata(const tt_safetensors *file, const char *key)
{
    if (key == NULL)
        return NULL;
    size_t count = tt_safetensors_metadata_count(file);
    for (size_t i = 0; i < count; i++) {
        if (strcmp(file->metadata->keys[i].text, key) == 0)
            return file->metadata->items[i].text;
    }
    return NULL;
}

/* Finds `name` and checks that it can be read into `dest`. */
static const tt_safetensors_entry *check_readable(const tt_safetensors *file, const char *name,
                                                  const tt_tensor *dest, tt_error *err)
{
    if (file == NULL || name == NULL || dest == NULL) {
        const char *missing = "dest";
        if (file == NULL)
            missing = "file";
        else if (name == NULL)
            missing = "name";
        tt_error_set(err, TT_ERR_ARG, "tt_safetensors_read: %s is NULL", missing);
        return NULL;
    }
    const tt_safetensors_entry *entry = tt_safetensors_find(file, name);
    if (entry == NULL) {
        tt_error_set(err, TT_ERR_ARG, "%s: no tensor named '%s'", file->label, name);
        return NULL;
    }
    if (strcmp(entry->dtype, "F32") != 0 && strcmp(entry->dtype, "F64") != 0) {
        tt_error_set(err, TT_ERR_FORMAT, "%s: tensor '%s' at offset %llu has dtype %s; "
                     "tensortape reads F32 and F64", file->label, name,
                     (unsigned long long)entry->offset, entry->dtype);
        return NULL;
    }
    if (entry->rows != dest->rows || entry->cols != dest->cols) {
        tt_error_set(err, TT_ERR_SHAPE, "%s: tensor '%s' is %zux%zu in the file, but the "
                     "destination tensor is %zux%zu", file->label, name, entry->rows,
                     entry->cols, dest->rows, dest->cols);
        return NULL;
    }
    return entry;
}

/* Converts the entry's little-endian F32 or F64 data into dest. */
static void copy_data(const tt_safetensors *file, const tt_safetensors_entry *entry,
                      tt_tensor *dest)
{
    const unsigned char *source = file->bytes + entry->offset;
    const size_t count = tt_tensor_size(dest);
    if (strcmp(entry->dtype, "F32") == 0) {
        for (size_t i = 0; i < count; i++) {
            uint32_t bits = 0;
            for (int b = 3; b >= 0; b--)
                bits = bits << 8 | source[i * 4 + (size_t)b];
            float value;
            memcpy(&value, &bits, sizeof value);
            dest->data[i] = (tt_real)value;
        }
    } else {
        for (size_t i = 0; i < count; i++) {
            uint64_t bits = read_le64(source + i * 8);
            double value;
            memcpy(&value, &bits, sizeof value);
            dest->data[i] = (tt_real)value;
        }
    }
}

tt_status tt_safetensors_read(const tt_safetensors *file, const char *name, tt_tensor *dest,
                              tt_error *err)
{
    tt_error local;
    tt_error *report = err != NULL ? err : &local;
    const tt_safetensors_entry *entry = check_readable(file, name, dest, report);
    if (entry == NULL)
        return report->status;
    copy_data(file, entry, dest);
    return TT_OK;
}

tt_status tt_safetensors_read_all(const tt_safetensors *file, const tt_named_tensor *tensors,
                                  size_t n_tensors, tt_error *err)
{
    if (file == NULL || (tensors == NULL && n_tensors > 0)) {
        tt_error_set(err, TT_ERR_ARG, "tt_safetensors_read_all: %s is NULL",
                     file == NULL ? "file" : "tensors");
        return TT_ERR_ARG;
    }
    tt_error local;
    tt_error *report = err != NULL ? err : &local;
    for (size_t i = 0; i < n_tensors; i++) {
        const char *name = tensors[i].name;
        if (name == NULL && tensors[i].tensor != NULL)
            name = tt_tensor_name(tensors[i].tensor);
        if (check_readable(file, name, tensors[i].tensor, report) == NULL)
            return report->status;
    }
    for (size_t i = 0; i < n_tensors; i++) {
        const char *name = tensors[i].name;
        if (name == NULL)
            name = tt_tensor_name(tensors[i].tensor);
        copy_data(file, tt_safetensors_find(file, name), tensors[i].tensor);
    }
    return TT_OK;
}

tt_status tt_safetensors_load(const char *path, const tt_named_tensor *tensors,
                              size_t n_tensors, tt_error *err)
{
    tt_error local;
    tt_error *report = err != NULL ? err : &local;
    tt_safetensors *file = tt_safetensors_open(path, report);
    if (file == NULL)
        return report->status;
    tt_status status = tt_safetensors_read_all(file, tensors, n_tensors, report);
    tt_safetensors_close(file);
    return status;
}
