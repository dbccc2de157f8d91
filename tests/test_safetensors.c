/* Model files: the strict JSON parser, safetensors round trips, every kind
 * of malformed file with its exact message, atomic saves, and saves killed
 * at random moments. */
/* For mknod, makedev and the S_IF* file type constants. */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

/* Label under which the malformed files below are parsed. */
#define LABEL "bad.safetensors"

/* Bytes of tt_real as saved: F32 in a float build, F64 in a double build. */
#if TT_REAL_IS_DOUBLE
#define SAVED_DTYPE "F64"
#else
#define SAVED_DTYPE "F32"
#endif

/* ---- Temporary directories --------------------------------------------- */

/* Creates a fresh directory under $TMPDIR (or /tmp) and returns its path,
 * to free with remove_directory. */
static char *make_directory(void)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    size_t size = strlen(base) + 32;
    char *path = malloc(size);
    ck_assert_ptr_nonnull(path);
    snprintf(path, size, "%s/tt-safetensors-XXXXXX", base);
    ck_assert_msg(mkdtemp(path) != NULL, "mkdtemp %s: %s", path, strerror(errno));
    return path;
}

/* Returns "DIRECTORY/NAME" in a new string. */
static char *join(const char *directory, const char *name)
{
    size_t size = strlen(directory) + strlen(name) + 2;
    char *path = malloc(size);
    ck_assert_ptr_nonnull(path);
    snprintf(path, size, "%s/%s", directory, name);
    return path;
}

/* Counts the entries of `directory` whose names start with `prefix`, and
 * deletes them if `remove` is set. */
static size_t count_entries(const char *directory, const char *prefix, bool remove)
{
    DIR *dir = opendir(directory);
    ck_assert_msg(dir != NULL, "opendir %s: %s", directory, strerror(errno));
    size_t count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strncmp(entry->d_name, prefix, strlen(prefix)) != 0)
            continue;
        count++;
        if (remove) {
            char *path = join(directory, entry->d_name);
            ck_assert_msg(unlink(path) == 0, "unlink %s: %s", path, strerror(errno));
            free(path);
        }
    }
    closedir(dir);
    return count;
}

/* Removes the files in `directory`, the directory, and frees its path. */
static void remove_directory(char *directory)
{
    count_entries(directory, "", false);
    DIR *dir = opendir(directory);
    struct dirent *entry;
    while (dir != NULL && (entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        char *path = join(directory, entry->d_name);
        if (unlink(path) != 0)
            rmdir(path);
        free(path);
    }
    if (dir != NULL)
        closedir(dir);
    rmdir(directory);
    free(directory);
}

/* ---- Building files by hand --------------------------------------------- */

/* Returns a file made of the 8-byte length of `header`, the header and
 * `data_size` data bytes counting up from 0 (mod 256). */
static unsigned char *make_file(const char *header, size_t data_size, size_t *size)
{
    size_t header_size = strlen(header);
    *size = 8 + header_size + data_size;
    unsigned char *bytes = malloc(*size);
    ck_assert_ptr_nonnull(bytes);
    for (int b = 0; b < 8; b++)
        bytes[b] = (unsigned char)((uint64_t)header_size >> (8 * b));
    memcpy(bytes + 8, header, header_size);
    for (size_t i = 0; i < data_size; i++)
        bytes[8 + header_size + i] = (unsigned char)i;
    return bytes;
}

/* Parses the file and fails unless it is rejected with `status` and exactly
 * `message`. */
static void assert_rejected(const unsigned char *bytes, size_t size, tt_status status,
                            const char *message)
{
    tt_error err = {TT_OK, ""};
    tt_safetensors *file = tt_safetensors_parse(bytes, size, LABEL, &err);
    ck_assert_msg(file == NULL, "a malformed file was accepted; want '%s'", message);
    ck_assert_msg(err.status == status, "status %s for '%s', want %s", tt_status_str(err.status),
                  err.message, tt_status_str(status));
    ck_assert_str_eq(err.message, message);
}

/* One malformed file: its header, its data bytes and the expected message. */
typedef struct malformed_case {
    const char *header;
    size_t data_size;
    const char *message;
} malformed_case;

/* Sets the bits of value v at `at` in little-endian order. */
static void put_le(unsigned char *at, uint64_t v, size_t bytes)
{
    for (size_t b = 0; b < bytes; b++)
        at[b] = (unsigned char)(v >> (8 * b));
}

/* ---- JSON ---------------------------------------------------------------- */

static const tt_json_limits json_limits = {8, 1000};

/* Parses `text` and fails unless it is rejected at `offset` with `message`. */
static void assert_json_rejected(const char *text, size_t offset, const char *message)
{
    tt_json_error error;
    tt_json_value *root = tt_json_parse(text, strlen(text), &json_limits, &error);
    ck_assert_msg(root == NULL, "'%s' was accepted; want '%s'", text, message);
    ck_assert_msg(error.offset == offset, "'%s': error at %zu, want %zu (%s)", text,
                  error.offset, offset, error.message);
    ck_assert_str_eq(error.message, message);
}

START_TEST(json_parses_nested_values)
{
    const char *text = " {\"a\": [1, -0.5e+3, true, false, null], \"b\": {\"c\": \"x\"}} ";
    tt_json_error error;
    tt_json_value *root = tt_json_parse(text, strlen(text), &json_limits, &error);
    ck_assert_msg(root != NULL, "%s at %zu", error.message, error.offset);
    ck_assert_int_eq(root->type, TT_JSON_OBJECT);
    ck_assert_uint_eq(root->count, 2);
    const tt_json_value *a = tt_json_object_get(root, "a");
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->type, TT_JSON_ARRAY);
    ck_assert_uint_eq(a->count, 5);
    ck_assert_str_eq(a->items[1].text, "-0.5e+3");
    ck_assert_int_eq(a->items[2].type, TT_JSON_TRUE);
    ck_assert_int_eq(a->items[3].type, TT_JSON_FALSE);
    ck_assert_int_eq(a->items[4].type, TT_JSON_NULL);
    uint64_t one = 0;
    ck_assert(tt_json_uint64(&a->items[0], &one));
    ck_assert_uint_eq(one, 1);
    ck_assert(!tt_json_uint64(&a->items[1], &one));
    const tt_json_value *c = tt_json_object_get(tt_json_object_get(root, "b"), "c");
    ck_assert_str_eq(c->text, "x");
    ck_assert_uint_eq(c->offset, 51);
    tt_json_free(root);
}
END_TEST

START_TEST(json_decodes_escapes_and_surrogate_pairs)
{
    /* U+1F600 is the pair D83D DE00, 4 bytes in UTF-8; U+00E9 is 2 bytes. */
    const char *text = "\"q\\\"b\\\\s\\/n\\n\\u00e9\\ud83d\\ude00\"";
    tt_json_error error;
    tt_json_value *root = tt_json_parse(text, strlen(text), &json_limits, &error);
    ck_assert_msg(root != NULL, "%s at %zu", error.message, error.offset);
    ck_assert_str_eq(root->text, "q\"b\\s/n\n\xc3\xa9\xf0\x9f\x98\x80");
    ck_assert_uint_eq(root->length, 14);
    tt_json_free(root);
}
END_TEST

START_TEST(json_rejects_what_rfc_8259_forbids)
{
    assert_json_rejected("[1,]", 3, "expected a value but found ']'");
    assert_json_rejected("{\"a\":1,}", 7, "expected a string key but found '}'");
    assert_json_rejected("01", 0, "invalid number: a leading zero must stand alone");
    assert_json_rejected("1.", 2, "expected a digit after the decimal point but found the end "
                                  "of the text");
    assert_json_rejected("NaN", 0, "expected a value but found 'N'");
    assert_json_rejected("-", 1, "expected a digit but found the end of the text");
    assert_json_rejected("\"a", 0, "unterminated string");
    assert_json_rejected("\"\t\"", 1, "invalid string: control character 0x09 must be escaped");
    assert_json_rejected("\"\xc0\xaf\"", 1, "invalid string: byte 0xc0 does not begin valid "
                                            "UTF-8");
    assert_json_rejected("\"\xed\xa0\x80\"", 1, "invalid string: byte 0xed does not begin "
                                                "valid UTF-8");
    assert_json_rejected("\"\\ude00\"", 1, "invalid \\u escape: low surrogate without a high "
                                           "surrogate before it");
    assert_json_rejected("\"\\ud83dx\"", 1, "invalid \\u escape: high surrogate without a low "
                                            "surrogate after it");
    assert_json_rejected("\"\\x\"", 2, "expected one of \" \\ / b f n r t u after '\\' but "
                                       "found 'x'");
    assert_json_rejected("{} {}", 3, "expected the end of the text after the value but found "
                                     "'{'");
    assert_json_rejected("[[[[[[[[[1]]]]]]]]]", 8, "nesting deeper than 8 levels");
    assert_json_rejected("tru", 0, "expected a value but found 't'");
    assert_json_rejected("", 0, "expected a value but found the end of the text");
}
END_TEST

/* Returns "[0,0,...,0]" with `count` zeros, a text of 1 + count values. */
static char *zeros_array(size_t count)
{
    char *text = malloc(2 * count + 2);
    ck_assert_ptr_nonnull(text);
    text[0] = '[';
    for (size_t i = 0; i < count; i++) {
        text[1 + 2 * i] = '0';
        text[2 + 2 * i] = i + 1 < count ? ',' : ']';
    }
    text[2 * count + 1] = '\0';
    return text;
}

START_TEST(json_stops_at_value_limit)
{
    /* The limit is 1000 values: the array and 999 zeros pass, 1000 do not. */
    char *text = zeros_array(999);
    tt_json_error error;
    tt_json_value *root = tt_json_parse(text, strlen(text), &json_limits, &error);
    ck_assert_msg(root != NULL, "999 zeros: %s", error.message);
    ck_assert_uint_eq(root->count, 999);
    tt_json_free(root);
    free(text);

    text = zeros_array(1000);
    assert_json_rejected(text, 2 * 999 + 1, "more than 1000 values");
    free(text);
}
END_TEST

/* Returns {"k0":0,"k1":0,...} with `count` members, a text of 1 + 2·count
 * values when keys count. */
static char *object_of_zeros(size_t count)
{
    const size_t capacity = 32 * count + 3;
    char *text = malloc(capacity);
    ck_assert_ptr_nonnull(text);
    size_t length = 0;
    text[length++] = '{';
    for (size_t i = 0; i < count; i++) {
        length += (size_t)snprintf(text + length, capacity - length, "%s\"k%zu\":0",
                                   i > 0 ? "," : "", i);
    }
    text[length++] = '}';
    text[length] = '\0';
    return text;
}

START_TEST(json_counts_keys_toward_limit)
{
    char *text = object_of_zeros(499);
    tt_json_error error;
    tt_json_value *root = tt_json_parse(text, strlen(text), &json_limits, &error);
    ck_assert_msg(root != NULL, "499 members: %s", error.message);
    ck_assert_uint_eq(root->count, 499);
    tt_json_free(root);
    free(text);

    /* The 1001st value is the last member's 0. */
    text = object_of_zeros(500);
    assert_json_rejected(text, strlen(text) - 2, "more than 1000 values");
    free(text);
}
END_TEST

/* ---- Round trips ------------------------------------------------------------ */

/* Fills a tensor with values that any loss of bits would change: random
 * values, ±0, ±inf, NaN, the smallest subnormal and the largest finite. */
static tt_tensor *new_awkward_tensor(size_t rows, size_t cols, tt_rng *rng, const char *name)
{
    tt_tensor *t = new_uniform_tensor(rows, cols, rng, -3, 3, name);
    tt_real *data = tt_tensor_data(t);
    const size_t n = rows * cols;
    const tt_real specials[] = {(tt_real)0.0, -(tt_real)0.0, (tt_real)INFINITY,
                                -(tt_real)INFINITY, (tt_real)NAN,
                                sizeof(tt_real) == 4 ? (tt_real)1.4e-45f : (tt_real)4.9e-324,
                                sizeof(tt_real) == 4 ? (tt_real)3.4028235e38f
                                                     : (tt_real)1.7976931348623157e308};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0] && i < n; i++)
        data[i * 7 % n] = specials[i];
    return t;
}

START_TEST(round_trip_is_bit_exact)
{
    char *dir = make_directory();
    char *path = join(dir, "model.safetensors");
    tt_rng rng;
    tt_rng_seed(&rng, 11);
    tt_tensor *w1 = new_awkward_tensor(13, 7, &rng, "w1");
    tt_tensor *b1 = new_awkward_tensor(13, 1, &rng, "b1");
    tt_tensor *w2 = new_awkward_tensor(3, 13, &rng, "weights 2 \"quoted\"");
    const tt_named_tensor saved[] = {{NULL, w1}, {"b1", b1}, {NULL, w2}};
    tt_error err = {TT_OK, ""};
    ck_assert_msg(tt_safetensors_save(path, saved, 3, NULL, 0, &err) == TT_OK, "%s",
                  err.message);

    tt_safetensors *file = tt_safetensors_open(path, &err);
    ck_assert_msg(file != NULL, "%s", err.message);
    ck_assert_uint_eq(tt_safetensors_count(file), 3);
    ck_assert_uint_eq(tt_safetensors_metadata_count(file), 0);
    const tt_safetensors_entry *entry = tt_safetensors_entry_at(file, 0);
    ck_assert_str_eq(entry->name, "w1");
    ck_assert_str_eq(entry->dtype, SAVED_DTYPE);
    ck_assert_uint_eq(entry->n_dims, 2);
    ck_assert_uint_eq(entry->rows, 13);
    ck_assert_uint_eq(entry->cols, 7);
    ck_assert_uint_eq(entry->size, 13 * 7 * sizeof(tt_real));
    ck_assert_uint_eq(entry->offset % 8, 0);
    ck_assert_str_eq(tt_safetensors_entry_at(file, 2)->name, "weights 2 \"quoted\"");
    ck_assert_ptr_null(tt_safetensors_entry_at(file, 3));
    ck_assert_ptr_null(tt_safetensors_find(file, "w3"));

    tt_tensor *copies[3];
    for (size_t i = 0; i < 3; i++) {
        const tt_tensor *original = saved[i].tensor;
        copies[i] = new_tensor_or_fail(tt_tensor_rows(original), tt_tensor_cols(original), NULL,
                                       NULL);
        const char *name = tt_safetensors_entry_at(file, i)->name;
        ck_assert_msg(tt_safetensors_read(file, name, copies[i], &err) == TT_OK, "%s",
                      err.message);
        ck_assert_msg(memcmp(tt_tensor_data(copies[i]), tt_tensor_data(saved[i].tensor),
                             tt_tensor_rows(original) * tt_tensor_cols(original) *
                                 sizeof(tt_real)) == 0,
                      "tensor '%s' differs after the round trip", name);
        tt_tensor_free(copies[i]);
    }
    tt_safetensors_close(file);
    tt_tensor_free(w1);
    tt_tensor_free(b1);
    tt_tensor_free(w2);
    free(path);
    remove_directory(dir);
}
END_TEST

START_TEST(metadata_round_trips_any_utf8)
{
    char *dir = make_directory();
    char *path = join(dir, "model.safetensors");
    tt_tensor *w = new_tensor_or_fail(1, 1, NULL, "w");
    const tt_metadata_item metadata[] = {
        {"widths", "784,128,10"},
        {"activation", "relu"},
        {"quote \" and \\ backslash", "tab\tnewline\ncontrol\x01"},
        {"caf\xc3\xa9", "\xf0\x9f\x98\x80"},
        {"empty", ""},
    };
    const size_t n = sizeof metadata / sizeof metadata[0];
    const tt_named_tensor tensors[] = {{NULL, w}};
    tt_error err = {TT_OK, ""};
    ck_assert_msg(tt_safetensors_save(path, tensors, 1, metadata, n, &err) == TT_OK, "%s",
                  err.message);

    tt_safetensors *file = tt_safetensors_open(path, &err);
    ck_assert_msg(file != NULL, "%s", err.message);
    ck_assert_uint_eq(tt_safetensors_metadata_count(file), n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(tt_safetensors_metadata_key(file, i), metadata[i].key);
        ck_assert_str_eq(tt_safetensors_metadata_value(file, i), metadata[i].value);
        ck_assert_str_eq(tt_safetensors_metadata(file, metadata[i].key), metadata[i].value);
    }
    ck_assert_ptr_null(tt_safetensors_metadata(file, "missing"));
    ck_assert_ptr_null(tt_safetensors_metadata_key(file, n));
    tt_safetensors_close(file);
    tt_tensor_free(w);
    free(path);
    remove_directory(dir);
}
END_TEST

START_TEST(reads_1d_and_0d_shapes_and_f64)
{
    /* b: F32 [3] loads as 3 × 1; s: F64 [] loads as 1 × 1. */
    const char *header = "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                         "\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[12,20]}}";
    size_t size;
    unsigned char *bytes = make_file(header, 20, &size);
    unsigned char *data = bytes + size - 20;
    const float b_values[3] = {1.5f, -2.25f, 1e-30f};
    for (size_t i = 0; i < 3; i++) {
        uint32_t bits;
        memcpy(&bits, &b_values[i], 4);
        put_le(data + 4 * i, bits, 4);
    }
    const double s_value = 0.1;
    uint64_t s_bits;
    memcpy(&s_bits, &s_value, 8);
    put_le(data + 12, s_bits, 8);

    tt_error err = {TT_OK, ""};
    tt_safetensors *file = tt_safetensors_parse(bytes, size, LABEL, &err);
    ck_assert_msg(file != NULL, "%s", err.message);
    const tt_safetensors_entry *b = tt_safetensors_find(file, "b");
    ck_assert_uint_eq(b->n_dims, 1);
    ck_assert_uint_eq(b->rows, 3);
    ck_assert_uint_eq(b->cols, 1);
    const tt_safetensors_entry *s = tt_safetensors_find(file, "s");
    ck_assert_uint_eq(s->n_dims, 0);
    ck_assert_uint_eq(s->rows, 1);
    ck_assert_uint_eq(s->cols, 1);

    tt_tensor *bias = new_tensor_or_fail(3, 1, NULL, "bias");
    tt_tensor *scalar = new_tensor_or_fail(1, 1, NULL, "scalar");
    const tt_named_tensor wanted[] = {{"b", bias}, {"s", scalar}};
    ck_assert_msg(tt_safetensors_read_all(file, wanted, 2, &err) == TT_OK, "%s", err.message);
    for (size_t i = 0; i < 3; i++)
        ck_assert(tt_tensor_data(bias)[i] == (tt_real)b_values[i]);
    ck_assert(tt_tensor_data(scalar)[0] == (tt_real)s_value);

    /* A row of 3 is not the column that [3] loads as. */
    tt_tensor *row = new_tensor_or_fail(1, 3, NULL, "row");
    ck_assert_int_eq(tt_safetensors_read(file, "b", row, &err), TT_ERR_SHAPE);
    ck_assert_str_eq(err.message, LABEL ": tensor 'b' is 3x1 in the file, but the destination "
                                        "tensor is 1x3");
    tt_tensor_free(row);
    tt_tensor_free(bias);
    tt_tensor_free(scalar);
    tt_safetensors_close(file);
    free(bytes);
}
END_TEST

START_TEST(read_all_changes_nothing_on_failure)
{
    const char *header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[0,8]},"
                         "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]}}";
    size_t size;
    unsigned char *bytes = make_file(header, 16, &size);
    tt_error err = {TT_OK, ""};
    tt_safetensors *file = tt_safetensors_parse(bytes, size, LABEL, &err);
    ck_assert_msg(file != NULL, "%s", err.message);
    ck_assert_str_eq(tt_safetensors_find(file, "i")->dtype, "I64");

    const tt_real before[2] = {7, 8};
    tt_tensor *a = new_tensor_or_fail(2, 1, before, "a");
    tt_tensor *i = new_tensor_or_fail(1, 1, NULL, "i");
    tt_tensor *c = new_tensor_or_fail(1, 1, NULL, "c");
    const tt_named_tensor with_int[] = {{NULL, a}, {NULL, i}};
    ck_assert_int_eq(tt_safetensors_read_all(file, with_int, 2, &err), TT_ERR_FORMAT);
    ck_assert_str_eq(err.message, LABEL ": tensor 'i' at offset 126 has dtype I64; tensortape "
                                        "reads F32 and F64");
    assert_all_equal("a after a failed read_all", tt_tensor_data(a), before, 2);

    const tt_named_tensor with_missing[] = {{NULL, a}, {NULL, c}};
    ck_assert_int_eq(tt_safetensors_read_all(file, with_missing, 2, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, LABEL ": no tensor named 'c'");
    assert_all_equal("a after a failed read_all", tt_tensor_data(a), before, 2);

    tt_tensor_free(a);
    tt_tensor_free(i);
    tt_tensor_free(c);
    tt_safetensors_close(file);
    free(bytes);
}
END_TEST

/* ---- Malformed files ------------------------------------------------------ */

START_TEST(rejects_file_shorter_than_length)
{
    const unsigned char bytes[5] = {1, 0, 0, 0, 0};
    assert_rejected(bytes, sizeof bytes, TT_ERR_FORMAT,
                    LABEL ": file is 5 bytes, too short for the 8-byte header length");
    assert_rejected(NULL, 0, TT_ERR_FORMAT,
                    LABEL ": file is 0 bytes, too short for the 8-byte header length");
}
END_TEST

START_TEST(rejects_header_length_past_end)
{
    unsigned char bytes[18] = {0};
    put_le(bytes, 1000, 8);
    assert_rejected(bytes, sizeof bytes, TT_ERR_FORMAT,
                    LABEL ": header length 1000 at offset 0 exceeds the 10 bytes after it; the "
                          "file may be truncated");
}
END_TEST

START_TEST(rejects_header_over_limit)
{
    /* The limit is checked first, so a 16-byte file claiming a huge header
     * is rejected before anything is allocated for it. */
    unsigned char bytes[16] = {0};
    put_le(bytes, 100000001, 8);
    assert_rejected(bytes, sizeof bytes, TT_ERR_FORMAT,
                    LABEL ": header length 100000001 at offset 0 exceeds the limit of 100000000 "
                          "bytes");
    /* A length near 2^64 must not wrap around when the data start is computed. */
    put_le(bytes, UINT64_MAX, 8);
    assert_rejected(bytes, sizeof bytes, TT_ERR_FORMAT,
                    LABEL ": header length 18446744073709551615 at offset 0 exceeds the limit of "
                          "100000000 bytes");
}
END_TEST

static const malformed_case malformed_cases[] = {
    /* JSON syntax, with the file offset of the fault */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],}}", 4,
     LABEL ": invalid header JSON at offset 61: expected a string key but found '}'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4,
     LABEL ": invalid header JSON at offset 37: invalid number: a leading zero must stand "
           "alone"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[[1]],\"data_offsets\":[0,4]}}", 4,
     LABEL ": invalid header JSON at offset 37: nesting deeper than 3 levels"},
    {"{\"\xff\":{}}", 0,
     LABEL ": invalid header JSON at offset 10: invalid string: byte 0xff does not begin valid "
           "UTF-8"},
    {"{\"a\":{\"dtype\":\"F32\"", 0,
     LABEL ": invalid header JSON at offset 27: expected ',' or '}' but found the end of the "
           "text"},
    {"[]", 0, LABEL ": header at offset 8 is not a JSON object"},
    /* the tensor's object */
    {"{\"a\":[1]}", 0, LABEL ": tensor 'a' at offset 13 is not an object"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0,
     LABEL ": tensor 'a' at offset 13 has no field 'data_offsets'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 4,
     LABEL ": tensor 'a': unknown field 'extra' at offset 61"},
    {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     LABEL ": tensor 'a': field 'dtype' appears twice, at offsets 22 and 36"},
    {"{\"a\\u0000b\":{}}", 0, LABEL ": tensor name at offset 9 contains a NUL character"},
    /* dtype */
    {"{\"a\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     LABEL ": tensor 'a': unknown dtype 'F17' at offset 22"},
    {"{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     LABEL ": tensor 'a': dtype at offset 22 is not a string"},
    /* shape */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1],\"data_offsets\":[0,4]}}", 4,
     LABEL ": tensor 'a': shape at offset 36 has 3 dimensions; tensortape reads at most 2"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
     LABEL ": tensor 'a': shape entry at offset 37 is not an integer from 0 to 2^64-1"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
     LABEL ": tensor 'a': shape entry at offset 37 is not an integer from 0 to 2^64-1"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,4]}}", 4,
     LABEL ": tensor 'a': shape entry at offset 37 is not an integer from 0 to 2^64-1"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
     LABEL ": tensor 'a': shape at offset 36 is too large; its size in bytes overflows 64 "
           "bits"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4,
     LABEL ": tensor 'a': shape at offset 36 is not an array"},
    /* data_offsets */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
     LABEL ": tensor 'a': data_offsets at offset 55 has 1 entries; it must be [begin, end]"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
     LABEL ": tensor 'a': data_offsets [4, 0] at offset 55 end before they begin"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
     LABEL ": tensor 'a': data_offsets [0, 8] at offset 55 end past the data section, which "
           "has 4 bytes; the file may be truncated"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
     LABEL ": tensor 'a': data_offsets [0, 4] at offset 55 hold 4 bytes, but F32 of shape 2x1 "
           "needs 8"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
     LABEL ": tensor 'b': data_offsets [4, 8] overlap those of tensor 'a', [0, 8]"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12,
     LABEL ": data bytes 4 to 8 (file offset 120) belong to no tensor"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
     LABEL ": data bytes 0 to 4 (file offset 62) belong to no tensor"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 7,
     LABEL ": the 3 bytes after the last tensor, at file offset 66, belong to no tensor"},
    {"{}", 2, LABEL ": the 2 bytes after the last tensor, at file offset 10, belong to no "
                    "tensor"},
    /* names */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
     LABEL ": tensor name 'a' appears twice, at offsets 9 and 62"},
    /* metadata */
    {"{\"__metadata__\":{\"k\":1}}", 0, LABEL ": metadata 'k' at offset 29 is not a string"},
    {"{\"__metadata__\":[]}", 0, LABEL ": __metadata__ at offset 24 is not an object"},
    {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0,
     LABEL ": metadata key 'k' appears twice, at offsets 25 and 33"},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0,
     LABEL ": __metadata__ appears twice, at offsets 9 and 27"},
    /* Of two repeated keys, the one that repeats first in the file. */
    {"{\"__metadata__\":{\"b\":\"1\",\"a\":\"2\",\"b\":\"3\",\"a\":\"4\"}}", 0,
     LABEL ": metadata key 'b' appears twice, at offsets 25 and 41"},
    {"{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\",\"a\":\"3\"}}", 0,
     LABEL ": metadata key 'a' appears twice, at offsets 25 and 33"},
};

START_TEST(rejects_malformed_file)
{
    const malformed_case *c = &malformed_cases[_i];
    size_t size;
    unsigned char *bytes = make_file(c->header, c->data_size, &size);
    assert_rejected(bytes, size, TT_ERR_FORMAT, c->message);
    /* Every file cut inside its length or header is rejected too. */
    for (size_t cut = 0; cut < 8 + strlen(c->header); cut++) {
        tt_error err = {TT_OK, ""};
        tt_safetensors *file = tt_safetensors_parse(bytes, cut, LABEL, &err);
        ck_assert_msg(file == NULL, "a prefix of %zu bytes was accepted", cut);
        ck_assert_int_eq(err.status, TT_ERR_FORMAT);
    }
    free(bytes);
}
END_TEST

/* 2·10^5 distinct metadata keys and then a repeat of one of them, a 2.6 MB
 * header. Comparing every pair of keys, 2·10^10 comparisons, would take
 * minutes, past the test's time limit. On a shared 2-core x86-64 machine,
 * 10^5 keys took 145 s that way, and sorting 2.6·10^5 keys took 0.55 s. */
START_TEST(rejects_repeat_among_many_metadata_keys)
{
    enum { N_KEYS = 200000, REPEATED_KEY = 123456, MEMBER_LENGTH = 13 };
    const char *const opening = "{\"__metadata__\":{";
    size_t header_size = strlen(opening) + (N_KEYS + 1) * MEMBER_LENGTH + 1;
    char *header = malloc(header_size + 1);
    ck_assert_ptr_nonnull(header);
    size_t length = (size_t)sprintf(header, "%s", opening);
    size_t repeated_offset = 0;
    for (int i = 0; i <= N_KEYS; i++) {
        int key = i < N_KEYS ? i : REPEATED_KEY;
        if (i == REPEATED_KEY)
            repeated_offset = 8 + length;
        /* Each member is MEMBER_LENGTH bytes: "k000000":"",  */
        char separator = i < N_KEYS ? ',' : '}';
        length += (size_t)sprintf(header + length, "\"k%06d\":\"\"%c", key, separator);
    }
    length += (size_t)sprintf(header + length, "}");
    ck_assert_uint_eq(length, header_size);

    size_t size;
    unsigned char *bytes = make_file(header, 0, &size);
    char want[TT_ERROR_MESSAGE_MAX];
    snprintf(want, sizeof want, LABEL ": metadata key 'k123456' appears twice, at offsets %zu and "
             "%zu", repeated_offset, 8 + header_size - 1 - MEMBER_LENGTH);
    assert_rejected(bytes, size, TT_ERR_FORMAT, want);
    free(bytes);
    free(header);
}
END_TEST

/* ---- Saving --------------------------------------------------------------- */

START_TEST(save_rejects_invalid_names)
{
    char *dir = make_directory();
    char *path = join(dir, "model.safetensors");
    tt_tensor *a = new_tensor_or_fail(1, 1, NULL, "a");
    tt_tensor *unnamed = new_tensor_or_fail(1, 1, NULL, NULL);
    tt_error err = {TT_OK, ""};
    char want[TT_ERROR_MESSAGE_MAX];

    const tt_named_tensor twice[] = {{NULL, a}, {"a", unnamed}};
    ck_assert_int_eq(tt_safetensors_save(path, twice, 2, NULL, 0, &err), TT_ERR_ARG);
    snprintf(want, sizeof want, "tt_safetensors_save: %s: tensors 0 and 1 are both named 'a'",
             path);
    ck_assert_str_eq(err.message, want);

    const tt_named_tensor no_name[] = {{NULL, unnamed}};
    ck_assert_int_eq(tt_safetensors_save(path, no_name, 1, NULL, 0, &err), TT_ERR_ARG);
    snprintf(want, sizeof want, "tt_safetensors_save: %s: tensor 0 has no name", path);
    ck_assert_str_eq(err.message, want);

    const tt_named_tensor reserved[] = {{"__metadata__", a}};
    ck_assert_int_eq(tt_safetensors_save(path, reserved, 1, NULL, 0, &err), TT_ERR_ARG);
    snprintf(want, sizeof want,
             "tt_safetensors_save: %s: tensor 0: the name '__metadata__' is reserved", path);
    ck_assert_str_eq(err.message, want);

    const tt_named_tensor bad_utf8[] = {{"w\xff", a}};
    ck_assert_int_eq(tt_safetensors_save(path, bad_utf8, 1, NULL, 0, &err), TT_ERR_ARG);

    const tt_metadata_item same_key[] = {{"k", "1"}, {"k", "2"}};
    const tt_named_tensor one[] = {{NULL, a}};
    ck_assert_int_eq(tt_safetensors_save(path, one, 1, same_key, 2, &err), TT_ERR_ARG);
    snprintf(want, sizeof want,
             "tt_safetensors_save: %s: metadata entries 0 and 1 both have the key 'k'", path);
    ck_assert_str_eq(err.message, want);

    ck_assert_uint_eq(count_entries(dir, "model", false), 0);
    tt_tensor_free(a);
    tt_tensor_free(unnamed);
    free(path);
    remove_directory(dir);
}
END_TEST

START_TEST(save_into_missing_directory_fails)
{
    char *dir = make_directory();
    char *path = join(dir, "missing/model.safetensors");
    tt_tensor *a = new_tensor_or_fail(1, 1, NULL, "a");
    const tt_named_tensor one[] = {{NULL, a}};
    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_safetensors_save(path, one, 1, NULL, 0, &err), TT_ERR_IO);
    char want[TT_ERROR_MESSAGE_MAX];
    snprintf(want, sizeof want,
             "%s: cannot create a temporary file beside it: No such file or directory", path);
    ck_assert_str_eq(err.message, want);
    tt_tensor_free(a);
    free(path);
    remove_directory(dir);
}
END_TEST

/* A writer that makes a directory at the target path (the context) while
 * the temporary file is written, so that the rename over it fails. */
static bool write_and_block_target(FILE *stream, void *context)
{
    ck_assert_int_eq(mkdir(context, 0700), 0);
    return fputs("contents", stream) != EOF;
}

START_TEST(failed_rename_removes_temporary_file)
{
    /* rename() cannot replace a directory with a file. */
    char *dir = make_directory();
    char *path = join(dir, "model.safetensors");
    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_file_write_atomic(path, write_and_block_target, path, &err), TT_ERR_IO);
    ck_assert_msg(strstr(err.message, ": cannot rename the temporary file ") != NULL, "%s",
                  err.message);
    ck_assert_msg(strstr(err.message, "model.safetensors.tmp-") != NULL, "%s", err.message);
    struct stat status;
    ck_assert_int_eq(stat(path, &status), 0);
    ck_assert(S_ISDIR(status.st_mode));
    ck_assert_uint_eq(count_entries(dir, "model.safetensors.tmp-", false), 0);
    free(path);
    remove_directory(dir);
}
END_TEST

/* Creates at `path` a file of the kind `kind` names: "fifo", "symlink" (to
 * a regular file "target" beside it), "directory" or "device" (a character
 * device like /dev/null, which needs root). Returns false if the kind
 * cannot be made here. */
static bool make_special_file(const char *dir, const char *path, const char *kind)
{
    if (strcmp(kind, "fifo") == 0) {
        ck_assert_int_eq(mkfifo(path, 0600), 0);
    } else if (strcmp(kind, "symlink") == 0) {
        char *target = join(dir, "target");
        FILE *file = fopen(target, "w");
        ck_assert_ptr_nonnull(file);
        ck_assert_int_eq(fputs("old", file), 1);
        ck_assert_int_eq(fclose(file), 0);
        ck_assert_int_eq(symlink("target", path), 0);
        free(target);
    } else if (strcmp(kind, "directory") == 0) {
        ck_assert_int_eq(mkdir(path, 0700), 0);
    } else {
        if (geteuid() != 0)
            return false;
        /* Major 1, minor 3 is /dev/null on Linux. */
        ck_assert_msg(mknod(path, S_IFCHR | 0600, makedev(1, 3)) == 0, "mknod %s: %s", path,
                      strerror(errno));
    }
    return true;
}

/* Each kind of path that a save rejects, with the type its message names. */
static const struct {
    const char *kind;
    const char *type_name;
    mode_t type;
    const char *advice;
} special_files[] = {
    {"fifo", "FIFO (named pipe)", S_IFIFO, "only a regular file is replaced"},
    {"symlink", "symbolic link", S_IFLNK, "give the path of its target instead"},
    {"directory", "directory", S_IFDIR, "only a regular file is replaced"},
    {"device", "character device", S_IFCHR, "only a regular file is replaced"},
};

START_TEST(save_rejects_special_files)
{
    char *dir = make_directory();
    char *path = join(dir, "model.safetensors");
    if (!make_special_file(dir, path, special_files[_i].kind)) {
        fprintf(stderr, "save_rejects_special_files: no device case without root\n");
        free(path);
        remove_directory(dir);
        return;
    }
    tt_tensor *a = new_tensor_or_fail(2, 2, NULL, "a");
    const tt_named_tensor one[] = {{NULL, a}};
    tt_error err = {TT_OK, ""};
    char want[TT_ERROR_MESSAGE_MAX];
    snprintf(want, sizeof want, "%s: is a %s, not a regular file; %s", path,
             special_files[_i].type_name, special_files[_i].advice);

    ck_assert_int_eq(tt_safetensors_save(path, one, 1, NULL, 0, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, want);
    ck_assert_int_eq(tt_file_check_writable(path, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, want);

    struct stat status;
    ck_assert_int_eq(lstat(path, &status), 0);
    ck_assert_int_eq(status.st_mode & S_IFMT, special_files[_i].type);
    ck_assert_uint_eq(count_entries(dir, "model.safetensors.tmp-", false), 0);
    if (special_files[_i].type == S_IFLNK) {
        char *target = join(dir, "target");
        char text[8] = "";
        FILE *file = fopen(target, "r");
        ck_assert_ptr_nonnull(file);
        ck_assert_ptr_nonnull(fgets(text, sizeof text, file));
        fclose(file);
        ck_assert_str_eq(text, "old");
        free(target);
    }
    tt_tensor_free(a);
    free(path);
    remove_directory(dir);
}
END_TEST

START_TEST(save_keeps_permission_bits)
{
    char *dir = make_directory();
    char *path = join(dir, "model.safetensors");
    tt_tensor *a = new_tensor_or_fail(2, 2, NULL, "a");
    const tt_named_tensor one[] = {{NULL, a}};
    tt_error err = {TT_OK, ""};
    const mode_t modes[] = {0600, 0640, 0444};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        ck_assert_msg(tt_safetensors_save(path, one, 1, NULL, 0, &err) == TT_OK, "%s",
                      err.message);
        ck_assert_int_eq(chmod(path, modes[i]), 0);
        ck_assert_msg(tt_safetensors_save(path, one, 1, NULL, 0, &err) == TT_OK, "%s",
                      err.message);
        struct stat status;
        ck_assert_int_eq(stat(path, &status), 0);
        ck_assert_uint_eq(status.st_mode & 07777, modes[i]);
        ck_assert_int_eq(chmod(path, 0600), 0);
    }
    tt_tensor_free(a);
    free(path);
    remove_directory(dir);
}
END_TEST

START_TEST(save_rejects_empty_path)
{
    tt_tensor *a = new_tensor_or_fail(2, 2, NULL, "a");
    const tt_named_tensor one[] = {{NULL, a}};
    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_safetensors_save("", one, 1, NULL, 0, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_safetensors_save: path is empty");
    ck_assert_int_eq(tt_file_write_atomic("", write_and_block_target, NULL, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_file_write_atomic: path is empty");
    ck_assert_int_eq(tt_file_check_writable("", &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_file_check_writable: path is empty");
    ck_assert_uint_eq(count_entries(".", ".tmp-", false), 0);
    tt_tensor_free(a);
}
END_TEST

/* A writer that writes some bytes and then reports a failure. */
static bool write_then_fail(FILE *stream, void *context)
{
    (void)context;
    fputs("partial", stream);
    return false;
}

START_TEST(failed_writer_keeps_old_file)
{
    char *dir = make_directory();
    char *path = join(dir, "chart.svg");
    FILE *file = fopen(path, "w");
    ck_assert_ptr_nonnull(file);
    ck_assert_int_eq(fputs("old", file), 1);
    ck_assert_int_eq(fclose(file), 0);
    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_file_write_atomic(path, write_then_fail, NULL, &err), TT_ERR_IO);
    ck_assert_msg(strstr(err.message, ": the writer reported a failure") != NULL, "%s",
                  err.message);
    ck_assert_msg(strncmp(err.message, path, strlen(path)) == 0, "%s", err.message);
    char text[8] = "";
    file = fopen(path, "r");
    ck_assert_ptr_nonnull(file);
    ck_assert_ptr_nonnull(fgets(text, sizeof text, file));
    fclose(file);
    ck_assert_str_eq(text, "old");
    ck_assert_uint_eq(count_entries(dir, "chart.svg.tmp-", false), 0);
    free(path);
    remove_directory(dir);
}
END_TEST

START_TEST(check_writable_tests_the_directory)
{
    char *dir = make_directory();
    char *path = join(dir, "model.safetensors");
    tt_error err = {TT_OK, ""};
    ck_assert_msg(tt_file_check_writable(path, &err) == TT_OK, "%s", err.message);
    ck_assert_uint_eq(count_entries(dir, "", false), 2); /* "." and ".." */

    char *missing = join(dir, "missing/model.safetensors");

    ck_assert_int_eq(tt_file_check_writable(missing, &err), TT_ERR_IO);
    char want[TT_ERROR_MESSAGE_MAX];
    snprintf(want, sizeof want,
             "%s: cannot create a temporary file beside it: No such file or directory", missing);
    ck_assert_str_eq(err.message, want);
    free(missing);
    free(path);
    remove_directory(dir);
}
END_TEST

START_TEST(open_rejects_fifo_without_writer)
{
    /* Without O_NONBLOCK, open() would wait for a writer forever and the
     * test would fail on Check's timeout. */
    char *dir = make_directory();
    char *path = join(dir, "model.safetensors");
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    tt_error err = {TT_OK, ""};
    ck_assert_ptr_null(tt_safetensors_open(path, &err));
    ck_assert_int_eq(err.status, TT_ERR_IO);
    char want[TT_ERROR_MESSAGE_MAX];
    snprintf(want, sizeof want, "%s: not a regular file but a FIFO (named pipe)", path);
    ck_assert_str_eq(err.message, want);
    free(path);
    remove_directory(dir);
}
END_TEST

/* Saves `tensor` under the name "w" to `path`. */
static tt_status save_one(const char *path, tt_tensor *tensor, tt_error *err)
{
    const tt_named_tensor one[] = {{"w", tensor}};
    return tt_safetensors_save(path, one, 1, NULL, 0, err);
}

/* Returns whether the tensor "w" in the file at `path` equals `want` bit
 * for bit. */
static bool file_holds(const char *path, tt_tensor *want, tt_tensor *scratch)
{
    const tt_named_tensor one[] = {{"w", scratch}};
    tt_error err = {TT_OK, ""};
    if (tt_safetensors_load(path, one, 1, &err) != TT_OK)
        ck_abort_msg("loading %s failed: %s", path, err.message);
    return memcmp(tt_tensor_data(scratch), tt_tensor_data(want),
                  tt_tensor_rows(want) * tt_tensor_cols(want) * sizeof(tt_real)) == 0;
}

START_TEST(failed_write_keeps_old_file)
{
    /* A child limited to files of 64 KiB gets EFBIG when the save of a
     * 400 KiB tensor writes past the limit. */
    const size_t limit = 64 * 1024;
    char *dir = make_directory();
    char *path = join(dir, "model.safetensors");
    tt_rng rng;
    tt_rng_seed(&rng, 5);
    tt_tensor *small = new_uniform_tensor(10, 10, &rng, -1, 1, "small");
    tt_tensor *large = new_uniform_tensor(100000 * 4 / sizeof(tt_real), 1, &rng, -1, 1, "large");
    tt_error err = {TT_OK, ""};
    ck_assert_msg(save_one(path, small, &err) == TT_OK, "%s", err.message);

    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        struct rlimit file_limit = {limit, limit};
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &file_limit) != 0)
            _exit(3);
        tt_status status = save_one(path, large, &err);
        bool reason = strstr(err.message, "File too large") != NULL;
        /* Freed so that a leak checker following the child finds no leak. */
        tt_tensor_free(small);
        tt_tensor_free(large);
        free(path);
        free(dir);
        _exit(status == TT_ERR_IO && reason ? 0 : 1);
    }
    int wait_status = 0;
    ck_assert_int_eq(waitpid(child, &wait_status, 0), child);
    ck_assert_msg(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0,
                  "the save in the child did not fail with EFBIG (status %d)", wait_status);

    tt_tensor *scratch = new_tensor_or_fail(10, 10, NULL, NULL);
    ck_assert_msg(file_holds(path, small, scratch), "the old file changed");
    ck_assert_uint_eq(count_entries(dir, "model.safetensors.tmp-", false), 0);
    tt_tensor_free(scratch);
    tt_tensor_free(small);
    tt_tensor_free(large);
    free(path);
    remove_directory(dir);
}
END_TEST

/* Bytes of data in each save of the kill test, and kills of the saving
 * child. */
#define KILL_TEST_BYTES (16u << 20)
#define KILL_TEST_ROUNDS 30

static double seconds_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* Reads the whole file at `path` into `buffer`, which has room for
 * `capacity` bytes, and returns its size. */
static size_t read_whole_file(const char *path, unsigned char *buffer, size_t capacity)
{
    FILE *stream = fopen(path, "rb");
    ck_assert_msg(stream != NULL, "fopen %s: %s", path, strerror(errno));
    size_t size = fread(buffer, 1, capacity, stream);
    fclose(stream);
    return size;
}

START_TEST(kill_during_save_leaves_old_or_new_file)
{
    char *dir = make_directory();
    char *path = join(dir, "model.safetensors");
    const size_t elements = KILL_TEST_BYTES / sizeof(tt_real);
    tt_rng rng;
    tt_rng_seed(&rng, 17);
    tt_tensor *contents[2] = {
        new_uniform_tensor(elements, 1, &rng, -1, 1, "a"),
        new_uniform_tensor(elements, 1, &rng, -1, 1, "b"),
    };
    tt_error err = {TT_OK, ""};

    /* The complete files of both contents, to compare with byte for byte.
     * Saving the second also measures how long a save takes. */
    const size_t capacity = KILL_TEST_BYTES + 4096;
    unsigned char *complete[2];
    size_t complete_size[2];
    unsigned char *found = malloc(capacity);
    ck_assert_ptr_nonnull(found);
    double save_seconds = 0;
    for (size_t k = 0; k < 2; k++) {
        double start = seconds_now();
        ck_assert_msg(save_one(path, contents[k], &err) == TT_OK, "%s", err.message);
        save_seconds = seconds_now() - start;
        complete[k] = malloc(capacity);
        ck_assert_ptr_nonnull(complete[k]);
        complete_size[k] = read_whole_file(path, complete[k], capacity);
    }

    size_t seen[2] = {0, 0};
    size_t left_temporary = 0;
    for (int round = 0; round < KILL_TEST_ROUNDS; round++) {
        /* The child saves a, b, a, ... and writes a byte to the pipe after
         * each complete save. The parent waits for 0, 1 or 2 of them, so
         * that saves complete however slow the machine is, and then kills
         * the child at a random moment within about one more save. */
        int completed[2];
        ck_assert_int_eq(pipe(completed), 0);
        pid_t child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
            close(completed[0]);
            for (size_t k = 0;; k++) {
                if (save_one(path, contents[k % 2], &err) != TT_OK ||
                    write(completed[1], "s", 1) != 1)
                    _exit(1);
            }
        }
        close(completed[1]);
        const uint64_t saves_before_kill = tt_rng_below(&rng, 3);
        for (uint64_t k = 0; k < saves_before_kill; k++) {
            char byte;
            ck_assert_msg(read(completed[0], &byte, 1) == 1, "round %d: the saving child "
                          "stopped before it was killed", round);
        }
        double delay = tt_rng_uniform(&rng) * save_seconds;
        struct timespec pause = {(time_t)delay, (long)((delay - floor(delay)) * 1e9)};
        nanosleep(&pause, NULL);
        ck_assert_int_eq(kill(child, SIGKILL), 0);
        close(completed[0]);
        int wait_status = 0;
        ck_assert_int_eq(waitpid(child, &wait_status, 0), child);
        ck_assert_msg(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL,
                      "round %d: the child ended before the kill (status %d)", round,
                      wait_status);

        /* The file must load, and be one complete save byte for byte. */
        tt_safetensors *file = tt_safetensors_open(path, &err);
        ck_assert_msg(file != NULL, "round %d: %s", round, err.message);
        tt_safetensors_close(file);
        size_t size = read_whole_file(path, found, capacity);
        bool is_a = size == complete_size[0] && memcmp(found, complete[0], size) == 0;
        bool is_b = size == complete_size[1] && memcmp(found, complete[1], size) == 0;
        ck_assert_msg(is_a || is_b, "round %d: the file is neither complete save", round);
        seen[is_a ? 0 : 1]++;
        left_temporary += count_entries(dir, "model.safetensors.tmp-", true);
    }
    /* Kills that landed during a write left its temporary file; the others
     * left the last complete save. Kills must have landed mid-write for the
     * test to show anything, and saves of both contents must have
     * completed. */
    ck_assert_msg(left_temporary > 0, "no kill landed during a write");
    ck_assert_msg(seen[0] > 0 && seen[1] > 0,
                  "only one content was ever found (%zu, %zu): saves never completed", seen[0],
                  seen[1]);
    ck_assert_uint_eq(count_entries(dir, "model.safetensors", false), 1);

    free(found);
    for (size_t k = 0; k < 2; k++) {
        free(complete[k]);
        tt_tensor_free(contents[k]);
    }
    free(path);
    remove_directory(dir);
}
END_TEST

START_TEST(open_reports_missing_file_and_directory)
{
    char *dir = make_directory();
    char *missing = join(dir, "missing.safetensors");
    tt_error err = {TT_OK, ""};
    char want[TT_ERROR_MESSAGE_MAX];

    ck_assert_ptr_null(tt_safetensors_open(missing, &err));
    ck_assert_int_eq(err.status, TT_ERR_IO);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", missing);
    ck_assert_str_eq(err.message, want);

    ck_assert_ptr_null(tt_safetensors_open(dir, &err));
    ck_assert_int_eq(err.status, TT_ERR_IO);
    snprintf(want, sizeof want, "%s: not a regular file but a directory", dir);
    ck_assert_str_eq(err.message, want);

    ck_assert_int_eq(tt_safetensors_load(missing, NULL, 0, NULL), TT_ERR_IO);
    free(missing);
    remove_directory(dir);
}
END_TEST

START_TEST(read_status_without_error_record)
{
    const char *header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[0,8]}}";
    size_t size;
    unsigned char *bytes = make_file(header, 8, &size);
    tt_safetensors *file = tt_safetensors_parse(bytes, size, LABEL, NULL);
    ck_assert_ptr_nonnull(file);
    tt_tensor *row = new_tensor_or_fail(1, 2, NULL, "row");
    ck_assert_int_eq(tt_safetensors_read(file, "a", row, NULL), TT_ERR_SHAPE);
    ck_assert_int_eq(tt_safetensors_read(file, "b", row, NULL), TT_ERR_ARG);
    tt_tensor_free(row);
    tt_safetensors_close(file);
    free(bytes);
}
END_TEST

START_TEST(file_statuses_have_names)
{
    ck_assert_str_eq(tt_status_str(TT_ERR_IO), "input/output error");
    ck_assert_str_eq(tt_status_str(TT_ERR_FORMAT), "invalid file format");
}
END_TEST

static Suite *safetensors_suite(void)
{
    Suite *suite = suite_create("safetensors");

    TCase *json = add_test_case(suite, "json");
    tcase_add_test(json, json_parses_nested_values);
    tcase_add_test(json, json_decodes_escapes_and_surrogate_pairs);
    tcase_add_test(json, json_rejects_what_rfc_8259_forbids);
    tcase_add_test(json, json_stops_at_value_limit);
    tcase_add_test(json, json_counts_keys_toward_limit);

    TCase *round_trip = add_test_case(suite, "round_trip");
    tcase_add_test(round_trip, round_trip_is_bit_exact);
    tcase_add_test(round_trip, metadata_round_trips_any_utf8);
    tcase_add_test(round_trip, reads_1d_and_0d_shapes_and_f64);
    tcase_add_test(round_trip, read_all_changes_nothing_on_failure);

    TCase *malformed = add_test_case(suite, "malformed");
    tcase_add_test(malformed, rejects_file_shorter_than_length);
    tcase_add_test(malformed, rejects_header_length_past_end);
    tcase_add_loop_test(malformed, rejects_malformed_file, 0,
                        (int)(sizeof malformed_cases / sizeof malformed_cases[0]));
    tcase_add_test(malformed, rejects_header_over_limit);
    tcase_add_test(malformed, rejects_repeat_among_many_metadata_keys);

    TCase *saving = add_test_case(suite, "saving");
    tcase_add_test(saving, save_rejects_invalid_names);
    tcase_add_test(saving, save_into_missing_directory_fails);
    tcase_add_test(saving, failed_rename_removes_temporary_file);
    tcase_add_test(saving, failed_write_keeps_old_file);
    tcase_add_test(saving, kill_during_save_leaves_old_or_new_file);
    tcase_add_test(saving, file_statuses_have_names);
    tcase_add_test(saving, open_reports_missing_file_and_directory);
    tcase_add_loop_test(saving, save_rejects_special_files, 0,
                        (int)(sizeof special_files / sizeof special_files[0]));
    tcase_add_test(saving, save_keeps_permission_bits);
    tcase_add_test(saving, save_rejects_empty_path);
    tcase_add_test(saving, failed_writer_keeps_old_file);
    tcase_add_test(saving, check_writable_tests_the_directory);
    tcase_add_test(saving, open_rejects_fifo_without_writer);
    tcase_add_test(round_trip, read_status_without_error_record);

    return suite;
}

int main(void)
{
    return run_suite(safetensors_suite());
}
