/* Fuzz target for the safetensors reader. Each input is parsed from memory
 * with tt_safetensors_parse. A rejected input must come back as NULL with
 * TT_ERR_FORMAT and a message "input: ...". An accepted one goes through
 * every accessor, and the target aborts when a result breaks the reader's
 * contract (README, "File formats"):
 *
 *   - every entry has a known dtype, at most 2 dimensions, and a size of
 *     rows × cols × the dtype's size;
 *   - in the order of entry_at, the entries' byte ranges tile the data
 *     section, from the end of the header to the end of the input;
 *   - find returns each entry by its name, so names are unique;
 *   - the metadata keys are unique and the lookup by key agrees with the
 *     lookup by index;
 *   - tt_safetensors_read loads each F32 or F64 entry into a tensor of its
 *     shape with exactly the values of its bytes, and rejects a tensor of
 *     another shape or an entry of another dtype without touching the
 *     destination. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "tensortape.h"

#define LABEL "input"

/* Bytes of the header length that opens the file. */
#define LENGTH_BYTES 8

/* Value written into a destination tensor before a read that must fail, to
 * show that the read left it unchanged. */
#define UNTOUCHED ((tt_real)-7.25)

static size_t dtype_size(const char *dtype)
{
    static const struct {
        const char *name;
        size_t size;
    } sizes[] = {
        {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
        {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
        {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (strcmp(sizes[i].name, dtype) == 0)
            return sizes[i].size;
    }
    return 0;
}

static uint64_t read_le(const uint8_t *bytes, size_t count)
{
    uint64_t value = 0;
    for (size_t i = count; i > 0; i--)
        value = value << 8 | bytes[i - 1];
    return value;
}

/* Element `index` of an F32 or F64 entry, decoded from the input itself. */
static tt_real expected_value(const uint8_t *data, const tt_safetensors_entry *entry,
                              size_t index)
{
    if (strcmp(entry->dtype, "F32") == 0) {
        uint32_t bits = (uint32_t)read_le(data + entry->offset + index * 4, 4);
        float value;
        memcpy(&value, &bits, sizeof value);
        return (tt_real)value;
    }
    uint64_t bits = read_le(data + entry->offset + index * 8, 8);
    double value;
    memcpy(&value, &bits, sizeof value);
    return (tt_real)value;
}

/* Whether two loaded values are the same: bit for bit, or both NaN (a
 * conversion may quiet a signalling NaN). */
static bool same_value(tt_real a, tt_real b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

static bool all_untouched(tt_tensor *tensor)
{
    const tt_real *values = tt_tensor_data(tensor);
    size_t count = tt_tensor_rows(tensor) * tt_tensor_cols(tensor);
    for (size_t i = 0; i < count; i++) {
        if (!same_value(values[i], UNTOUCHED))
            return false;
    }
    return true;
}

static tt_tensor *new_filled(size_t rows, size_t cols)
{
    tt_error err;
    tt_tensor *tensor = tt_tensor_new(rows, cols, NULL, &err);
    if (tensor == NULL)
        abort();
    tt_real *values = tt_tensor_data(tensor);
    for (size_t i = 0; i < rows * cols; i++)
        values[i] = UNTOUCHED;
    return tensor;
}

/* Reads the entry into a tensor of its shape, and tries a tensor of
 * another shape, which must be rejected. */
static void check_read(const tt_safetensors *file, const uint8_t *data,
                       const tt_safetensors_entry *entry)
{
    if (entry->rows == 0 || entry->cols == 0)
        return; /* no tensor has this shape */
    bool readable = strcmp(entry->dtype, "F32") == 0 || strcmp(entry->dtype, "F64") == 0;
    tt_error err;

    tt_tensor *dest = new_filled(entry->rows, entry->cols);
    tt_status status = tt_safetensors_read(file, entry->name, dest, &err);
    if (readable) {
        if (status != TT_OK)
            abort();
        const tt_real *values = tt_tensor_data(dest);
        for (size_t i = 0; i < entry->rows * entry->cols; i++) {
            if (!same_value(values[i], expected_value(data, entry, i)))
                abort();
        }
    } else if (status != TT_ERR_FORMAT || !all_untouched(dest)) {
        abort();
    }
    tt_tensor_free(dest);

    tt_tensor *wrong = new_filled(entry->rows + 1, entry->cols);
    status = tt_safetensors_read(file, entry->name, wrong, &err);
    if (status != (readable ? TT_ERR_SHAPE : TT_ERR_FORMAT) || !all_untouched(wrong))
        abort();
    tt_tensor_free(wrong);
}

/* Multiplies *product by factor; returns false if 64 bits overflow. */
static bool multiply(uint64_t *product, uint64_t factor)
{
    if (factor != 0 && *product > UINT64_MAX / factor)
        return false;
    *product *= factor;
    return true;
}

/* Checks each entry on its own and the tiling of the data section. */
static void check_entries(const tt_safetensors *file, const uint8_t *data, size_t size)
{
    size_t count = tt_safetensors_count(file);
    uint64_t data_start = LENGTH_BYTES + read_le(data, LENGTH_BYTES);
    uint64_t covered = data_start;
    for (size_t i = 0; i < count; i++) {
        const tt_safetensors_entry *entry = tt_safetensors_entry_at(file, i);
        if (entry == NULL || entry->name == NULL || entry->dtype == NULL)
            abort();
        size_t element_size = dtype_size(entry->dtype);
        if (element_size == 0 || entry->n_dims > 2)
            abort();
        if (entry->n_dims < 2 && entry->cols != 1)
            abort();
        if (entry->n_dims == 0 && entry->rows != 1)
            abort();

        uint64_t expected_size = element_size;
        if (!multiply(&expected_size, entry->rows) || !multiply(&expected_size, entry->cols) ||
            entry->size != expected_size)
            abort();

        if (entry->offset != covered || entry->size > size || entry->offset > size - entry->size)
            abort();
        covered = entry->offset + entry->size;

        if (tt_safetensors_find(file, entry->name) != entry)
            abort();
        check_read(file, data, entry);
    }
    if (covered != size || tt_safetensors_entry_at(file, count) != NULL)
        abort();
}

/* Reads every F32 and F64 entry of nonzero size at once, then the same list
 * with the last tensor one row too tall, which must change none of them. */
static void check_read_all(const tt_safetensors *file)
{
    size_t count = tt_safetensors_count(file);
    tt_named_tensor *list = calloc(count > 0 ? count : 1, sizeof *list);
    if (list == NULL)
        abort();
    size_t n_listed = 0;
    for (size_t i = 0; i < count; i++) {
        const tt_safetensors_entry *entry = tt_safetensors_entry_at(file, i);
        bool readable = strcmp(entry->dtype, "F32") == 0 || strcmp(entry->dtype, "F64") == 0;
        if (readable && entry->rows != 0 && entry->cols != 0) {
            list[n_listed].name = entry->name;
            list[n_listed].tensor = new_filled(entry->rows, entry->cols);
            n_listed++;
        }
    }
    tt_error err;
    if (n_listed > 0) {
        tt_named_tensor *last = &list[n_listed - 1];
        tt_tensor *right = last->tensor;
        last->tensor = new_filled(tt_tensor_rows(right) + 1, tt_tensor_cols(right));
        if (tt_safetensors_read_all(file, list, n_listed, &err) != TT_ERR_SHAPE)
            abort();
        for (size_t i = 0; i < n_listed; i++) {
            if (!all_untouched(list[i].tensor))
                abort();
        }
        tt_tensor_free(last->tensor);
        last->tensor = right;
    }
    if (tt_safetensors_read_all(file, list, n_listed, &err) != TT_OK)
        abort();
    for (size_t i = 0; i < n_listed; i++)
        tt_tensor_free(list[i].tensor);
    free(list);
}

static void check_metadata(const tt_safetensors *file)
{
    size_t count = tt_safetensors_metadata_count(file);
    for (size_t i = 0; i < count; i++) {
        const char *key = tt_safetensors_metadata_key(file, i);
        const char *value = tt_safetensors_metadata_value(file, i);
        if (key == NULL || value == NULL)
            abort();
        /* Keys are unique, so the lookup finds this very entry. */
        if (tt_safetensors_metadata(file, key) != value)
            abort();
    }
    if (tt_safetensors_metadata_key(file, count) != NULL ||
        tt_safetensors_metadata_value(file, count) != NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tt_error err;
    memset(&err, 0, sizeof err);
    tt_safetensors *file = tt_safetensors_parse(data, size, LABEL, &err);
    if (file == NULL) {
        size_t prefix = strlen(LABEL ": ");
        if (err.status != TT_ERR_FORMAT || strncmp(err.message, LABEL ": ", prefix) != 0 ||
            err.message[prefix] == '\0')
            abort();
        return 0;
    }
    check_entries(file, data, size);
    check_read_all(file);
    check_metadata(file);

    tt_tensor *dest = new_filled(1, 1);
    /* A name that the file lacks must be TT_ERR_ARG. */
    const char *absent = "\x01" "absent";
    if (tt_safetensors_find(file, absent) == NULL &&
        tt_safetensors_read(file, absent, dest, &err) != TT_ERR_ARG)
        abort();
    tt_tensor_free(dest);
    tt_safetensors_close(file);
    return 0;
}
