/* Fuzz target for the strict JSON parser of src/json.c. Each input is
 * parsed twice: under the limits of the safetensors reader (nesting 3 deep,
 * 2^19 values) and under deeper but smaller ones (40 deep, 1,000 values),
 * so that both limits are reached. Besides the sanitizers' checks, the
 * target aborts when a result breaks the parser's contract:
 *
 *   - a failure has a message and an offset within the text;
 *   - a tree stays within the limits it was parsed under;
 *   - each value's offset points at its first character in the text, and
 *     the offsets increase in the order of the text;
 *   - strings are valid UTF-8 and decode from their source, which has no
 *     raw control character; numbers are copied as written; both are
 *     NUL-terminated;
 *   - tt_json_object_get finds the first member of each key, and
 *     tt_json_uint64 agrees with strtoull on plain digits;
 *   - a tree that fits both limits is accepted under both, as the same tree;
 *   - the tree written back as JSON parses into the same tree, and writing
 *     that tree gives the same text again. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "internal.h"

static const tt_json_limits header_limits = {3, (size_t)1 << 19};
static const tt_json_limits deep_limits = {40, 1000};

/* ---- Walking a tree -------------------------------------------------- */

/* What a walk found: the deepest nesting and the values, keys included. */
typedef struct tree_size {
    size_t depth;
    size_t n_values;
} tree_size;

typedef struct walk {
    const unsigned char *text;
    size_t length;
    size_t next_offset; /* every later value starts at or after this */
    tree_size size;
} walk;

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Whether text[0 .. length) matches the RFC's number grammar exactly. */
static bool is_number(const char *text, size_t length)
{
    size_t i = 0;
    if (i < length && text[i] == '-')
        i++;
    if (i < length && text[i] == '0') {
        i++;
    } else if (i < length && text[i] >= '1' && text[i] <= '9') {
        while (i < length && is_digit(text[i]))
            i++;
    } else {
        return false;
    }
    if (i < length && text[i] == '.') {
        i++;
        if (i == length || !is_digit(text[i]))
            return false;
        while (i < length && is_digit(text[i]))
            i++;
    }
    if (i < length && (text[i] == 'e' || text[i] == 'E')) {
        i++;
        if (i < length && (text[i] == '+' || text[i] == '-'))
            i++;
        if (i == length || !is_digit(text[i]))
            return false;
        while (i < length && is_digit(text[i]))
            i++;
    }
    return i == length;
}

static bool is_utf8(const char *text, size_t length)
{
    const unsigned char *bytes = (const unsigned char *)text;
    size_t i = 0;
    while (i < length) {
        size_t step = tt_utf8_sequence_length(bytes + i, length - i);
        if (step == 0)
            return false;
        i += step;
    }
    return true;
}

/* Checks tt_json_uint64 against strtoull for a number of plain digits. */
static void check_uint64(const tt_json_value *value)
{
    uint64_t parsed;
    bool converted = tt_json_uint64(value, &parsed);
    bool plain = value->text[0] != '-';
    for (size_t i = 0; plain && i < value->length; i++)
        plain = is_digit(value->text[i]);
    if (!plain) {
        if (converted)
            abort();
        return;
    }
    errno = 0;
    unsigned long long reference = strtoull(value->text, NULL, 10);
    bool fits = errno != ERANGE;
    if (converted != fits || (converted && parsed != reference))
        abort();
}

/* Checks tt_json_object_get for each key without a NUL byte: it must find
 * the first member of that key. */
static void check_object_get(const tt_json_value *object)
{
    for (size_t i = 0; i < object->count; i++) {
        const tt_json_value *key = &object->keys[i];
        if (memchr(key->text, '\0', key->length) != NULL)
            continue;
        size_t first = 0;
        while (strcmp(object->keys[first].text, key->text) != 0 ||
               object->keys[first].length != key->length)
            first++;
        if (tt_json_object_get(object, key->text) != &object->items[first])
            abort();
    }
}

static void check_value(walk *w, const tt_json_value *value, size_t depth);

/* Checks that the value's offset lies past the values before it and points
 * at one of the characters in `first`, and counts the value. */
static void check_start(walk *w, const tt_json_value *value, const char *first)
{
    if (value->offset < w->next_offset || value->offset >= w->length)
        abort();
    if (strchr(first, w->text[value->offset]) == NULL || w->text[value->offset] == '\0')
        abort();
    w->next_offset = value->offset + 1;
    w->size.n_values++;
}

static void check_literal(walk *w, const tt_json_value *value, const char *word)
{
    size_t length = strlen(word);
    if (value->text != NULL || value->length != 0 || value->count != 0 ||
        value->items != NULL || value->keys != NULL)
        abort();
    if (w->length - value->offset < length || memcmp(w->text + value->offset, word, length) != 0)
        abort();
    w->next_offset = value->offset + length;
}

/* Reads the four hex digits at text[*position], which the parser accepted. */
static unsigned read_hex4(const walk *w, size_t *position)
{
    unsigned code = 0;
    for (int i = 0; i < 4; i++) {
        if (*position >= w->length)
            abort();
        char c = (char)w->text[(*position)++];
        const char *digits = "0123456789abcdef0123456789ABCDEF";
        const char *found = c != '\0' ? strchr(digits, c) : NULL;
        if (found == NULL)
            abort();
        code = code * 16 + (unsigned)((found - digits) % 16);
    }
    return code;
}

/* Appends code point `code` to out as UTF-8, encoding a surrogate too, so
 * that a lone one shows as invalid UTF-8. */
static void put_utf8(unsigned code, char *out, size_t *length)
{
    if (code < 0x80) {
        out[(*length)++] = (char)code;
    } else if (code < 0x800) {
        out[(*length)++] = (char)(0xc0 | (code >> 6));
        out[(*length)++] = (char)(0x80 | (code & 0x3f));
    } else if (code < 0x10000) {
        out[(*length)++] = (char)(0xe0 | (code >> 12));
        out[(*length)++] = (char)(0x80 | ((code >> 6) & 0x3f));
        out[(*length)++] = (char)(0x80 | (code & 0x3f));
    } else {
        out[(*length)++] = (char)(0xf0 | (code >> 18));
        out[(*length)++] = (char)(0x80 | ((code >> 12) & 0x3f));
        out[(*length)++] = (char)(0x80 | ((code >> 6) & 0x3f));
        out[(*length)++] = (char)(0x80 | (code & 0x3f));
    }
}

/* Decodes the string that begins at the value's offset in the source
 * independently of the parser, and returns the offset past its closing
 * quote. Aborts unless the source is a well-formed string that decodes to
 * the value's text. */
static size_t check_string_source(const walk *w, const tt_json_value *value)
{
    /* No string decodes to more bytes than its source has. */
    char *decoded = malloc(w->length - value->offset);
    if (decoded == NULL)
        abort();
    size_t length = 0;
    size_t position = value->offset + 1;
    for (;;) {
        if (position >= w->length)
            abort();
        unsigned char c = w->text[position++];
        if (c == '"')
            break;
        if (c < 0x20)
            abort();
        if (c != '\\') {
            decoded[length++] = (char)c;
            continue;
        }
        if (position >= w->length)
            abort();
        const char *escapes = "\"\"\\\\//b\bf\fn\nr\rt\t";
        char e = (char)w->text[position++];
        const char *found = NULL;
        for (const char *pair = escapes; *pair != '\0' && found == NULL; pair += 2) {
            if (*pair == e)
                found = pair;
        }
        if (found != NULL) {
            decoded[length++] = found[1];
            continue;
        }
        if (e != 'u')
            abort();
        unsigned code = read_hex4(w, &position);
        if (code >= 0xd800 && code <= 0xdbff && w->length - position >= 6 &&
            w->text[position] == '\\' && w->text[position + 1] == 'u') {
            size_t after = position + 2;
            unsigned low = read_hex4(w, &after);
            if (low >= 0xdc00 && low <= 0xdfff) {
                code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                position = after;
            }
        }
        put_utf8(code, decoded, &length);
    }
    if (length != value->length || memcmp(decoded, value->text, length) != 0)
        abort();
    free(decoded);
    return position;
}

static void check_string(walk *w, const tt_json_value *value)
{
    check_start(w, value, "\"");
    if (value->text == NULL || value->text[value->length] != '\0' ||
        !is_utf8(value->text, value->length) || value->count != 0 || value->items != NULL ||
        value->keys != NULL)
        abort();
    w->next_offset = check_string_source(w, value);
}

static void check_number(walk *w, const tt_json_value *value)
{
    check_start(w, value, "-0123456789");
    if (value->text == NULL || value->text[value->length] != '\0' ||
        !is_number(value->text, value->length) || value->count != 0 || value->items != NULL ||
        value->keys != NULL)
        abort();
    if (w->length - value->offset < value->length ||
        memcmp(w->text + value->offset, value->text, value->length) != 0)
        abort();
    w->next_offset = value->offset + value->length;
    check_uint64(value);
}

static void check_container(walk *w, const tt_json_value *value, size_t depth, bool is_object)
{
    check_start(w, value, is_object ? "{" : "[");
    if (depth + 1 > w->size.depth)
        w->size.depth = depth + 1;
    if (value->text != NULL || value->length != 0 || (value->count > 0) != (value->items != NULL))
        abort();
    if (!is_object && value->keys != NULL)
        abort();
    if (is_object && (value->count > 0) != (value->keys != NULL))
        abort();
    for (size_t i = 0; i < value->count; i++) {
        if (is_object) {
            if (value->keys[i].type != TT_JSON_STRING)
                abort();
            check_string(w, &value->keys[i]);
        }
        check_value(w, &value->items[i], depth + 1);
    }
    if (is_object)
        check_object_get(value);
}

/* Checks `value`, nested `depth` containers deep, and everything in it. */
static void check_value(walk *w, const tt_json_value *value, size_t depth)
{
    switch (value->type) {
    case TT_JSON_NULL:
        check_start(w, value, "n");
        check_literal(w, value, "null");
        break;
    case TT_JSON_FALSE:
        check_start(w, value, "f");
        check_literal(w, value, "false");
        break;
    case TT_JSON_TRUE:
        check_start(w, value, "t");
        check_literal(w, value, "true");
        break;
    case TT_JSON_NUMBER:
        check_number(w, value);
        break;
    case TT_JSON_STRING:
        check_string(w, value);
        break;
    case TT_JSON_ARRAY:
        check_container(w, value, depth, false);
        break;
    case TT_JSON_OBJECT:
        check_container(w, value, depth, true);
        break;
    default:
        abort();
    }
}

static tree_size check_tree(const tt_json_value *root, const uint8_t *text, size_t length)
{
    walk w = {.text = text, .length = length};
    check_value(&w, root, 0);
    return w.size;
}

/* ---- Writing a tree back as JSON ---------------------------------------- */

typedef struct output {
    char *data;
    size_t length;
    size_t capacity;
} output;

static void put(output *out, const char *bytes, size_t length)
{
    if (out->capacity - out->length < length) {
        size_t capacity = out->capacity == 0 ? 256 : out->capacity;
        while (capacity - out->length < length)
            capacity *= 2;
        out->data = realloc(out->data, capacity);
        if (out->data == NULL)
            abort();
        out->capacity = capacity;
    }
    memcpy(out->data + out->length, bytes, length);
    out->length += length;
}

/* Writes a string with '"', '\' and control characters escaped, and every
 * other byte as it is, since the text is valid UTF-8. */
static void put_string(output *out, const tt_json_value *value)
{
    put(out, "\"", 1);
    for (size_t i = 0; i < value->length; i++) {
        unsigned char c = (unsigned char)value->text[i];
        if (c == '"' || c == '\\') {
            char escaped[2] = {'\\', (char)c};
            put(out, escaped, 2);
        } else if (c < 0x20) {
            char escaped[7];
            snprintf(escaped, sizeof escaped, "\\u%04x", c);
            put(out, escaped, 6);
        } else {
            put(out, (const char *)&c, 1);
        }
    }
    put(out, "\"", 1);
}

static void put_value(output *out, const tt_json_value *value)
{
    switch (value->type) {
    case TT_JSON_NULL:
        put(out, "null", 4);
        break;
    case TT_JSON_FALSE:
        put(out, "false", 5);
        break;
    case TT_JSON_TRUE:
        put(out, "true", 4);
        break;
    case TT_JSON_NUMBER:
        put(out, value->text, value->length);
        break;
    case TT_JSON_STRING:
        put_string(out, value);
        break;
    case TT_JSON_ARRAY:
    case TT_JSON_OBJECT: {
        bool is_object = value->type == TT_JSON_OBJECT;
        put(out, is_object ? "{" : "[", 1);
        for (size_t i = 0; i < value->count; i++) {
            if (i > 0)
                put(out, ",", 1);
            if (is_object) {
                put_string(out, &value->keys[i]);
                put(out, ":", 1);
            }
            put_value(out, &value->items[i]);
        }
        put(out, is_object ? "}" : "]", 1);
        break;
    }
    }
}

/* Whether two trees hold the same values, ignoring their offsets. */
static bool same_tree(const tt_json_value *a, const tt_json_value *b)
{
    if (a->type != b->type || a->length != b->length || a->count != b->count)
        return false;
    if ((a->text == NULL) != (b->text == NULL) ||
        (a->text != NULL && memcmp(a->text, b->text, a->length + 1) != 0))
        return false;
    for (size_t i = 0; i < a->count; i++) {
        if (a->type == TT_JSON_OBJECT && !same_tree(&a->keys[i], &b->keys[i]))
            return false;
        if (!same_tree(&a->items[i], &b->items[i]))
            return false;
    }
    return true;
}

/* Writes the tree, parses the text, and checks that the new tree is the
 * same and writes the same text. */
static void check_round_trip(const tt_json_value *root, const tt_json_limits *limits)
{
    output first = {0};
    put_value(&first, root);
    tt_json_error error;
    tt_json_value *again = tt_json_parse(first.data, first.length, limits, &error);
    if (again == NULL || !same_tree(root, again))
        abort();
    check_tree(again, (const uint8_t *)first.data, first.length);
    output second = {0};
    put_value(&second, again);
    if (second.length != first.length || memcmp(second.data, first.data, first.length) != 0)
        abort();
    free(first.data);
    free(second.data);
    tt_json_free(again);
}

/* ---- The target ------------------------------------------------------- */

static bool fits(tree_size size, const tt_json_limits *limits)
{
    return size.depth <= limits->max_depth && size.n_values <= limits->max_values;
}

/* Parses under `limits`; returns the tree, or NULL after checking the
 * error. */
static tt_json_value *parse_checked(const uint8_t *data, size_t size,
                                    const tt_json_limits *limits, tree_size *tree)
{
    tt_json_error error;
    tt_json_value *root = tt_json_parse((const char *)data, size, limits, &error);
    if (root == NULL) {
        if (error.message[0] == '\0' || error.offset > size)
            abort();
        return NULL;
    }
    if (error.message[0] != '\0')
        abort();
    *tree = check_tree(root, data, size);
    if (!fits(*tree, limits))
        abort();
    return root;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tree_size header_tree = {0, 0};
    tree_size deep_tree = {0, 0};
    tt_json_value *header_root = parse_checked(data, size, &header_limits, &header_tree);
    tt_json_value *deep_root = parse_checked(data, size, &deep_limits, &deep_tree);

    /* A tree that fits the other limits too must parse under them. */
    if (header_root != NULL && deep_root == NULL && fits(header_tree, &deep_limits))
        abort();
    if (deep_root != NULL && header_root == NULL && fits(deep_tree, &header_limits))
        abort();
    if (header_root != NULL && deep_root != NULL && !same_tree(header_root, deep_root))
        abort();

    if (header_root != NULL)
        check_round_trip(header_root, &header_limits);
    if (deep_root != NULL)
        check_round_trip(deep_root, &deep_limits);
    tt_json_free(header_root);
    tt_json_free(deep_root);
    return 0;
}
