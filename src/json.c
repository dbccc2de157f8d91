/* A strict JSON parser (RFC 8259) for the headers of model files.
 *
 * Strict means only the grammar of the RFC: no comments, trailing commas,
 * leading zeros, NaN or Infinity, and no control characters in strings.
 * Strings must be valid UTF-8 (no overlong forms, no encoded surrogates,
 * nothing above U+10FFFF), and \u escapes of surrogates must come in pairs.
 * Only whitespace may follow the top-level value. Duplicate object keys
 * are kept; the caller decides whether they are an error.
 *
 * The parser recurses once per nesting level, so the depth limit also
 * bounds its stack. The value limit bounds the memory of the tree, which
 * is about sizeof(tt_json_value) per value plus the decoded strings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct parser {
    const unsigned char *text;
    size_t length;
    size_t position;
    size_t depth;
    size_t n_values;
    tt_json_limits limits;
    tt_json_error *error;
} parser;

/* Records the first error at `offset`; later calls keep the first. */
__attribute__((format(printf, 3, 4))) static bool fail_at(parser *p, size_t offset,
                                                          const char *format, ...)
{
    p->error->offset = offset;
    va_list args;
    va_start(args, format);
    vsnprintf(p->error->message, sizeof p->error->message, format, args);
    va_end(args);
    return false;
}

/* Names the byte at the current position for messages: "'x'", "byte 0x07"
 * or "the end of the text". */
static const char *describe_next(const parser *p, char buffer[16])
{
    if (p->position >= p->length)
        return "the end of the text";
    unsigned char c = p->text[p->position];
    if (c >= 0x20 && c < 0x7f)
        snprintf(buffer, 16, "'%c'", c);
    else
        snprintf(buffer, 16, "byte 0x%02x", c);
    return buffer;
}

static bool unexpected(parser *p, const char *expected)
{
    char buffer[16];
    return fail_at(p, p->position, "expected %s but found %s", expected,
                   describe_next(p, buffer));
}

static void skip_whitespace(parser *p)
{
    while (p->position < p->length) {
        unsigned char c = p->text[p->position];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        p->position++;
    }
}

static bool at(const parser *p, unsigned char c)
{
    return p->position < p->length && p->text[p->position] == c;
}

static bool is_digit(const parser *p)
{
    return p->position < p->length && p->text[p->position] >= '0' &&
           p->text[p->position] <= '9';
}

/* Copies text[begin .. end) into value->text, NUL-terminated. */
static bool copy_text(parser *p, tt_json_value *value, size_t begin, size_t end)
{
    value->text = malloc(end - begin + 1);
    if (value->text == NULL)
        return fail_at(p, begin, "out of memory");
    memcpy(value->text, p->text + begin, end - begin);
    value->text[end - begin] = '\0';
    value->length = end - begin;
    return true;
}

/* number = [ '-' ] int [ frac ] [ exp ], int = '0' / digit1-9 *digit */
static bool parse_number(parser *p, tt_json_value *value)
{
    size_t begin = p->position;
    if (at(p, '-'))
        p->position++;
    if (at(p, '0')) {
        p->position++;
        if (is_digit(p))
            return fail_at(p, begin, "invalid number: a leading zero must stand alone");
    } else if (is_digit(p)) {
        while (is_digit(p))
            p->position++;
    } else {
        return unexpected(p, "a digit");
    }
    if (at(p, '.')) {
        p->position++;
        if (!is_digit(p))
            return unexpected(p, "a digit after the decimal point");
        while (is_digit(p))
            p->position++;
    }
    if (at(p, 'e') || at(p, 'E')) {
        p->position++;
        if (at(p, '+') || at(p, '-'))
            p->position++;
        if (!is_digit(p))
            return unexpected(p, "a digit in the exponent");
        while (is_digit(p))
            p->position++;
    }
    value->type = TT_JSON_NUMBER;
    return copy_text(p, value, begin, p->position);
}

/* Reads the four hex digits of a \u escape at the current position. */
static bool parse_hex4(parser *p, unsigned *code)
{
    *code = 0;
    for (int i = 0; i < 4; i++) {
        if (p->position >= p->length)
            return unexpected(p, "four hex digits after \\u");
        unsigned char c = p->text[p->position];
        unsigned digit;
        if (c >= '0' && c <= '9')
            digit = c - '0';
        else if (c >= 'a' && c <= 'f')
            digit = c - 'a' + 10u;
        else if (c >= 'A' && c <= 'F')
            digit = c - 'A' + 10u;
        else
            return unexpected(p, "four hex digits after \\u");
        *code = *code * 16 + digit;
        p->position++;
    }
    return true;
}

/* Appends code point `code` to out as UTF-8 and returns the byte count. */
static size_t encode_utf8(unsigned code, char *out)
{
    if (code < 0x80) {
        out[0] = (char)code;
        return 1;
    }
    if (code < 0x800) {
        out[0] = (char)(0xc0 | (code >> 6));
        out[1] = (char)(0x80 | (code & 0x3f));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (char)(0xe0 | (code >> 12));
        out[1] = (char)(0x80 | ((code >> 6) & 0x3f));
        out[2] = (char)(0x80 | (code & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (code >> 18));
    out[1] = (char)(0x80 | ((code >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((code >> 6) & 0x3f));
    out[3] = (char)(0x80 | (code & 0x3f));
    return 4;
}

size_t tt_utf8_sequence_length(const unsigned char *bytes, size_t available)
{
    unsigned char lead = bytes[0];
    if (lead < 0x80)
        return 1;

    /* The lead byte fixes the length and the smallest and largest value of
     * the second byte, which excludes overlong forms, the surrogates
     * U+D800..U+DFFF and everything above U+10FFFF (Unicode 15, table 3-7). */
    size_t length;
    unsigned char low = 0x80;
    unsigned char high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) {
        length = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
        length = 3;
        if (lead == 0xe0)
            low = 0xa0;
        else if (lead == 0xed)
            high = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
        length = 4;
        if (lead == 0xf0)
            low = 0x90;
        else if (lead == 0xf4)
            high = 0x8f;
    } else {
        return 0;
    }
    if (available < length || bytes[1] < low || bytes[1] > high)
        return 0;
    for (size_t i = 2; i < length; i++) {
        if (bytes[i] < 0x80 || bytes[i] > 0xbf)
            return 0;
    }
    return length;
}

/* Decodes the escape after a backslash into out, returning its byte count,
 * or 0 after recording an error. */
static size_t parse_escape(parser *p, char *out)
{
    size_t begin = p->position - 1;
    if (p->position >= p->length)
        return unexpected(p, "an escape character after '\\'");
    unsigned char c = p->text[p->position++];
    switch (c) {
    case '"':
    case '\\':
    case '/':
        out[0] = (char)c;
        return 1;
    case 'b':
        out[0] = '\b';
        return 1;
    case 'f':
        out[0] = '\f';
        return 1;
    case 'n':
        out[0] = '\n';
        return 1;
    case 'r':
        out[0] = '\r';
        return 1;
    case 't':
        out[0] = '\t';
        return 1;
    case 'u':
        break;
    default:
        p->position--;
        unexpected(p, "one of \" \\ / b f n r t u after '\\'");
        return 0;
    }

    unsigned code;
    if (!parse_hex4(p, &code))
        return 0;
    if (code >= 0xdc00 && code <= 0xdfff) {
        fail_at(p, begin, "invalid \\u escape: low surrogate without a high surrogate before it");
        return 0;
    }
    if (code >= 0xd800 && code <= 0xdbff) {
        if (p->position + 1 >= p->length || p->text[p->position] != '\\' ||
            p->text[p->position + 1] != 'u') {
            fail_at(p, begin, "invalid \\u escape: high surrogate without a low surrogate after it");
            return 0;
        }
        p->position += 2;
        unsigned low;
        if (!parse_hex4(p, &low))
            return 0;
        if (low < 0xdc00 || low > 0xdfff) {
            fail_at(p, begin, "invalid \\u escape: high surrogate without a low surrogate after it");
            return 0;
        }
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
    }
    return encode_utf8(code, out);
}

/* string = '"' *char '"'. The decoded text is never longer than the
 * source, so a buffer of the source's length is large enough. */
static bool parse_string(parser *p, tt_json_value *value)
{
    size_t begin = p->position;
    p->position++; /* the opening quote */

    size_t end = p->position;
    while (end < p->length && p->text[end] != '"') {
        end += p->text[end] == '\\' ? 2 : 1;
    }
    if (end >= p->length)
        return fail_at(p, begin, "unterminated string");

    char *decoded = malloc(end - p->position + 1);
    if (decoded == NULL)
        return fail_at(p, begin, "out of memory");
    size_t n = 0;
    while (p->text[p->position] != '"') {
        unsigned char c = p->text[p->position];
        size_t written;
        if (c == '\\') {
            p->position++;
            written = parse_escape(p, decoded + n);
        } else if (c < 0x20) {
            written = 0;
            fail_at(p, p->position, "invalid string: control character 0x%02x must be escaped",
                    c);
        } else {
            written = tt_utf8_sequence_length(p->text + p->position, p->length - p->position);
            if (written == 0)
                fail_at(p, p->position, "invalid string: byte 0x%02x does not begin valid UTF-8",
                        c);
            else
                memcpy(decoded + n, p->text + p->position, written);
            p->position += written;
        }
        if (written == 0) {
            free(decoded);
            return false;
        }
        n += written;
    }
    p->position++; /* the closing quote */
    decoded[n] = '\0';
    value->type = TT_JSON_STRING;
    value->text = decoded;
    value->length = n;
    return true;
}

static bool parse_literal(parser *p, tt_json_value *value, const char *word, tt_json_type type)
{
    size_t length = strlen(word);
    if (p->length - p->position < length || memcmp(p->text + p->position, word, length) != 0)
        return unexpected(p, "a value");
    p->position += length;
    value->type = type;
    return true;
}

static bool parse_value(parser *p, tt_json_value *value);

/* Doubles the capacity of an array of values, or returns false after
 * recording an error. */
static bool grow(parser *p, tt_json_value **items, size_t *capacity)
{
    size_t wanted = *capacity == 0 ? 4 : *capacity * 2;
    tt_json_value *grown = realloc(*items, wanted * sizeof **items);
    if (grown == NULL)
        return fail_at(p, p->position, "out of memory");
    *items = grown;
    *capacity = wanted;
    return true;
}

/* array = '[' [ value *( ',' value ) ] ']' and
 * object = '{' [ member *( ',' member ) ] '}', member = string ':' value. */
static bool parse_container(parser *p, tt_json_value *value, bool is_object)
{
    const unsigned char close = is_object ? '}' : ']';
    value->type = is_object ? TT_JSON_OBJECT : TT_JSON_ARRAY;
    if (p->depth >= p->limits.max_depth)
        return fail_at(p, p->position, "nesting deeper than %zu levels", p->limits.max_depth);
    p->depth++;
    p->position++;

    size_t capacity = 0;
    skip_whitespace(p);
    if (at(p, close)) {
        p->position++;
        p->depth--;
        return true;
    }
    for (;;) {
        if (value->count == capacity) {
            size_t key_capacity = capacity;
            if (!grow(p, &value->items, &capacity))
                return false;
            if (is_object && !grow(p, &value->keys, &key_capacity))
                return false;
        }
        tt_json_value *item = &value->items[value->count];
        memset(item, 0, sizeof *item);
        if (is_object) {
            tt_json_value *key = &value->keys[value->count];
            memset(key, 0, sizeof *key);
            skip_whitespace(p);
            key->offset = p->position;
            if (!at(p, '"'))
                return unexpected(p, "a string key");
            /* Count the member now, so that a failure below frees its key. */
            value->count++;
            if (p->n_values >= p->limits.max_values)
                return fail_at(p, p->position, "more than %zu values", p->limits.max_values);
            p->n_values++;
            if (!parse_string(p, key))
                return false;
            skip_whitespace(p);
            if (!at(p, ':'))
                return unexpected(p, "':' after an object key");
            p->position++;
        } else {
            value->count++;
        }
        if (!parse_value(p, item))
            return false;
        skip_whitespace(p);
        if (at(p, ',')) {
            p->position++;
            continue;
        }
        if (at(p, close)) {
            p->position++;
            p->depth--;
            return true;
        }
        return unexpected(p, is_object ? "',' or '}'" : "',' or ']'");
    }
}

static bool parse_value(parser *p, tt_json_value *value)
{
    skip_whitespace(p);
    value->offset = p->position;
    if (p->n_values >= p->limits.max_values)
        return fail_at(p, p->position, "more than %zu values", p->limits.max_values);
    p->n_values++;
    if (p->position >= p->length)
        return unexpected(p, "a value");
    switch (p->text[p->position]) {
    case '{':
        return parse_container(p, value, true);
    case '[':
        return parse_container(p, value, false);
    case '"':
        return parse_string(p, value);
    case 't':
        return parse_literal(p, value, "true", TT_JSON_TRUE);
    case 'f':
        return parse_literal(p, value, "false", TT_JSON_FALSE);
    case 'n':
        return parse_literal(p, value, "null", TT_JSON_NULL);
    default:
        if (at(p, '-') || is_digit(p))
            return parse_number(p, value);
        return unexpected(p, "a value");
    }
}

/* Frees what a value owns; recursion is bounded by the depth limit. */
static void release(tt_json_value *value)
{
    for (size_t i = 0; i < value->count; i++) {
        release(&value->items[i]);
        if (value->keys != NULL)
            release(&value->keys[i]);
    }
    free(value->items);
    free(value->keys);
    free(value->text);
}

tt_json_value *tt_json_parse(const char *text, size_t length, const tt_json_limits *limits,
                             tt_json_error *error)
{
    parser p = {
        .text = (const unsigned char *)text,
        .length = length,
        .limits = *limits,
        .error = error,
    };
    error->offset = 0;
    error->message[0] = '\0';
    tt_json_value *root = calloc(1, sizeof *root);
    if (root == NULL) {
        fail_at(&p, 0, "out of memory");
        return NULL;
    }
    if (text == NULL && length > 0) {
        fail_at(&p, 0, "no text");
        free(root);
        return NULL;
    }
    bool parsed = parse_value(&p, root);
    if (parsed) {
        skip_whitespace(&p);
        if (p.position < p.length)
            parsed = unexpected(&p, "the end of the text after the value");
    }
    if (!parsed) {
        tt_json_free(root);
        return NULL;
    }
    return root;
}

void tt_json_free(tt_json_value *root)
{
    if (root == NULL)
        return;
    release(root);
    free(root);
}

const tt_json_value *tt_json_object_get(const tt_json_value *object, const char *key)
{
    if (object == NULL || object->type != TT_JSON_OBJECT)
        return NULL;
    size_t length = strlen(key);
    for (size_t i = 0; i < object->count; i++) {
        const tt_json_value *k = &object->keys[i];
        if (k->length == length && memcmp(k->text, key, length) == 0)
            return &object->items[i];
    }
    return NULL;
}

bool tt_json_uint64(const tt_json_value *value, uint64_t *out)
{
    if (value == NULL || value->type != TT_JSON_NUMBER || value->length == 0)
        return false;
    uint64_t result = 0;
    for (size_t i = 0; i < value->length; i++) {
        char c = value->text[i];
        if (c < '0' || c > '9')
            return false;
        unsigned digit = (unsigned)(c - '0');
        if (result > (UINT64_MAX - digit) / 10)
            return false;
        result = result * 10 + digit;
    }
    *out = result;
    return true;
}
