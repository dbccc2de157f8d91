/* Saving tensors in the safetensors format, atomically through
 * tt_file_write_atomic (file_write.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define METADATA_KEY "__metadata__"

/* The data section starts at a multiple of this many bytes, so that every
 * tensor's data is aligned for its element type when the file is mapped.
 * The header is padded with spaces to get there, as the format allows. */
#define DATA_ALIGNMENT 8

/* Elements converted to little-endian bytes at a time. */
#define WRITE_CHUNK 4096

#if TT_REAL_IS_DOUBLE
#define SAVED_DTYPE "F64"
#else
#define SAVED_DTYPE "F32"
#endif

/* A growing text buffer; `failed` is set once an allocation fails. */
typedef struct text_buffer {
    char *data;
    size_t length;
    size_t capacity;
    bool failed;
} text_buffer;

static void append(text_buffer *buffer, const char *bytes, size_t length)
{
    if (buffer->failed)
        return;
    if (buffer->capacity - buffer->length <= length) {
        size_t wanted = buffer->capacity == 0 ? 256 : buffer->capacity;
        while (wanted - buffer->length <= length)
            wanted *= 2;
        char *grown = realloc(buffer->data, wanted);
        if (grown == NULL) {
            buffer->failed = true;
            return;
        }
        buffer->data = grown;
        buffer->capacity = wanted;
    }
    memcpy(buffer->data + buffer->length, bytes, length);
    buffer->length += length;
    buffer->data[buffer->length] = '\0';
}

static void append_text(text_buffer *buffer, const char *text)
{
    append(buffer, text, strlen(text));
}

/* Appends a JSON string: quotes, with '"', '\' and control characters
 * escaped. The text is valid UTF-8, checked by the caller. */
static void append_json_string(text_buffer *buffer, const char *text)
{
    append(buffer, "\"", 1);
    for (const char *c = text; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\') {
            char escaped[2] = {'\\', *c};
            append(buffer, escaped, 2);
        } else if ((unsigned char)*c < 0x20) {
            char escaped[8];
            snprintf(escaped, sizeof escaped, "\\u%04x", (unsigned)(unsigned char)*c);
            append_text(buffer, escaped);
        } else {
            append(buffer, c, 1);
        }
    }
    append(buffer, "\"", 1);
}

static bool is_valid_utf8(const char *text)
{
    const unsigned char *bytes = (const unsigned char *)text;
    size_t length = strlen(text);
    for (size_t i = 0; i < length;) {
        size_t step = tt_utf8_sequence_length(bytes + i, length - i);
        if (step == 0)
            return false;
        i += step;
    }
    return true;
}

/* The name a tensor is saved under: its entry's name, or its own. */
static const char *saved_name(const tt_named_tensor *named)
{
    if (named->name != NULL)
        return named->name;
    return named->tensor != NULL ? tt_tensor_name(named->tensor) : NULL;
}

/* Checks the arguments of tt_safetensors_save. */
static bool check_arguments(const char *path, const tt_named_tensor *tensors, size_t n_tensors,
                            const tt_metadata_item *metadata, size_t n_metadata, tt_error *err)
{
    const char *where = "tt_safetensors_save";
    const char *missing = NULL;
    if (path == NULL)
        missing = "path";
    else if (tensors == NULL)
        missing = "tensors";
    else if (metadata == NULL && n_metadata > 0)
        missing = "metadata";
    if (missing != NULL) {
        tt_error_set(err, TT_ERR_ARG, "%s: %s is NULL", where, missing);
        return false;
    }
    if (path[0] == '\0') {
        tt_error_set(err, TT_ERR_ARG, "%s: path is empty", where);
        return false;
    }
    if (n_tensors == 0) {
        tt_error_set(err, TT_ERR_ARG, "%s: %s: no tensors to save", where, path);
        return false;
    }
    for (size_t i = 0; i < n_tensors; i++) {
        const char *name = saved_name(&tensors[i]);
        if (tensors[i].tensor == NULL || name == NULL || name[0] == '\0') {
            tt_error_set(err, TT_ERR_ARG, "%s: %s: tensor %zu %s", where, path, i,
                         tensors[i].tensor == NULL ? "is NULL" : "has no name");
            return false;
        }
        if (!is_valid_utf8(name) || strcmp(name, METADATA_KEY) == 0) {
            tt_error_set(err, TT_ERR_ARG, "%s: %s: tensor %zu: the name '%s' is %s", where, path,
                         i, name, strcmp(name, METADATA_KEY) == 0 ? "reserved" : "not valid UTF-8");
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(saved_name(&tensors[j]), name) == 0) {
                tt_error_set(err, TT_ERR_ARG, "%s: %s: tensors %zu and %zu are both named '%s'",
                             where, path, j, i, name);
                return false;
            }
        }
    }
    for (size_t i = 0; i < n_metadata; i++) {
        const char *key = metadata[i].key;
        const char *value = metadata[i].value;
        if (key == NULL || key[0] == '\0' || value == NULL) {
            tt_error_set(err, TT_ERR_ARG, "%s: %s: metadata entry %zu has %s", where, path, i,
                         value == NULL ? "no value" : "no key");
            return false;
        }
        if (!is_valid_utf8(key) || !is_valid_utf8(value)) {
            tt_error_set(err, TT_ERR_ARG, "%s: %s: metadata entry %zu ('%s') is not valid UTF-8",
                         where, path, i, key);
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(metadata[j].key, key) == 0) {
                tt_error_set(err, TT_ERR_ARG, "%s: %s: metadata entries %zu and %zu both have "
                             "the key '%s'", where, path, j, i, key);
                return false;
            }
        }
    }
    return true;
}

/* Builds the header, including the 8-byte length before it and the spaces
 * that pad the data section to DATA_ALIGNMENT. */
static bool build_header(text_buffer *header, const tt_named_tensor *tensors, size_t n_tensors,
                         const tt_metadata_item *metadata, size_t n_metadata)
{
    append(header, "\0\0\0\0\0\0\0\0", 8);
    append(header, "{", 1);
    if (n_metadata > 0) {
        append_text(header, "\"" METADATA_KEY "\":{");
        for (size_t i = 0; i < n_metadata; i++) {
            if (i > 0)
                append(header, ",", 1);
            append_json_string(header, metadata[i].key);
            append(header, ":", 1);
            append_json_string(header, metadata[i].value);
        }
        append(header, "}", 1);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < n_tensors; i++) {
        const tt_tensor *t = tensors[i].tensor;
        uint64_t bytes = (uint64_t)tt_tensor_size(t) * sizeof(tt_real);
        char fields[160];
        snprintf(fields, sizeof fields,
                 ":{\"dtype\":\"" SAVED_DTYPE "\",\"shape\":[%zu,%zu],\"data_offsets\":[%llu,%llu]}",
                 t->rows, t->cols, (unsigned long long)offset,
                 (unsigned long long)(offset + bytes));
        if (n_metadata > 0 || i > 0)
            append(header, ",", 1);
        append_json_string(header, saved_name(&tensors[i]));
        append_text(header, fields);
        offset += bytes;
    }
    append(header, "}", 1);
    while (header->length % DATA_ALIGNMENT != 0)
        append(header, " ", 1);
    if (header->failed)
        return false;

    uint64_t length = header->length - 8;
    for (int b = 0; b < 8; b++)
        header->data[b] = (char)(length >> (8 * b) & 0xff);
    return true;
}

/* Writes the tensor's data as little-endian tt_real. */
static bool write_data(FILE *stream, const tt_tensor *t)
{
    unsigned char chunk[WRITE_CHUNK * sizeof(tt_real)];
    const size_t count = tt_tensor_size(t);
    for (size_t first = 0; first < count; first += WRITE_CHUNK) {
        size_t n = count - first < WRITE_CHUNK ? count - first : WRITE_CHUNK;
        for (size_t i = 0; i < n; i++) {
#if TT_REAL_IS_DOUBLE
            uint64_t bits;
#else
            uint32_t bits;
#endif
            memcpy(&bits, &t->data[first + i], sizeof bits);
            for (size_t b = 0; b < sizeof bits; b++)
                chunk[i * sizeof bits + b] = (unsigned char)(bits >> (8 * b) & 0xff);
        }
        if (fwrite(chunk, sizeof(tt_real), n, stream) != n)
            return false;
    }
    return true;
}

/* What write_file writes: the header, then each tensor's data. */
typedef struct file_contents {
    const text_buffer *header;
    const tt_named_tensor *tensors;
    size_t n_tensors;
} file_contents;

static bool write_file(FILE *stream, void *context)
{
    const file_contents *contents = context;
    const text_buffer *header = contents->header;
    if (fwrite(header->data, 1, header->length, stream) != header->length)
        return false;
    for (size_t i = 0; i < contents->n_tensors; i++) {
        if (!write_data(stream, contents->tensors[i].tensor))
            return false;
    }
    return true;
}

tt_status tt_safetensors_save(const char *path, const tt_named_tensor *tensors,
                              size_t n_tensors, const tt_metadata_item *metadata,
                              size_t n_metadata, tt_error *err)
{
    if (!check_arguments(path, tensors, n_tensors, metadata, n_metadata, err))
        return TT_ERR_ARG;
    text_buffer header = {0};
    if (!build_header(&header, tensors, n_tensors, metadata, n_metadata)) {
        free(header.data);
        tt_error_set(err, TT_ERR_NOMEM, "%s: out of memory building the header", path);
        return TT_ERR_NOMEM;
    }
    file_contents contents = {&header, tensors, n_tensors};
    tt_status status = tt_file_write_atomic(path, write_file, &contents, err);
    free(header.data);
    return status;
}
