/* The MLP's parameters in a safetensors file; see model_file.h. */
#include "model_file.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Metadata keys. */
#define WIDTHS_KEY "widths"
#define ACTIVATION_KEY "activation"
#define ACTIVATION_PARAMETER_KEY "activation_parameter"

/* Significant digits that always read back as the same tt_real. */
#if TT_REAL_IS_DOUBLE
#define REAL_ROUND_TRIP_DIGITS DBL_DECIMAL_DIG
#else
#define REAL_ROUND_TRIP_DIGITS FLT_DECIMAL_DIG
#endif

/* Room for "w" or "b" and a size_t in decimal. */
#define PARAMETER_NAME_MAX 32

/* Maximum length of the widths text that model_file_save writes: 20 digits and a comma
 * per width. */
#define WIDTH_TEXT_MAX 21

static bool fail(tt_error *err, tt_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(tt_error *err, tt_status status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    err->status = status;
    vsnprintf(err->message, sizeof err->message, format, args);
    va_end(args);
    return false;
}

/* The parameters w1, b1, w2, b2, … in the order of the layers, with the
 * names they have in the file. */
typedef struct parameter_list {
    tt_named_tensor *tensors; /* 2 · n_layers entries */
    char *names;              /* their names, PARAMETER_NAME_MAX bytes each */
} parameter_list;

static bool parameter_list_make(parameter_list *list, tt_tensor *const *weights,
                                tt_tensor *const *biases, size_t n_layers)
{
    list->tensors = calloc(2 * n_layers, sizeof *list->tensors);
    list->names = calloc(2 * n_layers, PARAMETER_NAME_MAX);
    if (list->tensors == NULL || list->names == NULL)
        return false;
    for (size_t t = 1; t <= n_layers; t++) {
        char *w_name = list->names + (2 * t - 2) * PARAMETER_NAME_MAX;
        char *b_name = list->names + (2 * t - 1) * PARAMETER_NAME_MAX;
        snprintf(w_name, PARAMETER_NAME_MAX, "w%zu", t);
        snprintf(b_name, PARAMETER_NAME_MAX, "b%zu", t);
        list->tensors[2 * t - 2] = (tt_named_tensor){w_name, weights[t - 1]};
        list->tensors[2 * t - 1] = (tt_named_tensor){b_name, biases[t - 1]};
    }
    return true;
}

static void parameter_list_free(parameter_list *list)
{
    free(list->tensors);
    free(list->names);
}

void model_file_format_real(tt_real value, char text[MODEL_FILE_REAL_TEXT_MAX])
{
    char candidate[MODEL_FILE_REAL_TEXT_MAX];
    for (int digits = 1; digits <= REAL_ROUND_TRIP_DIGITS; digits++) {
        snprintf(candidate, sizeof candidate, "%.*g", digits, (double)value);
        if ((tt_real)strtod(candidate, NULL) == value)
            break;
    }
    memcpy(text, candidate, sizeof candidate);
}

bool model_file_save(const char *path, tt_tensor *const *weights, tt_tensor *const *biases,
                     size_t n_layers, const size_t *widths, const char *activation,
                     const tt_real *activation_parameter, tt_error *err)
{
    parameter_list list;
    const size_t text_size = (n_layers + 1) * WIDTH_TEXT_MAX;
    char *widths_text = malloc(text_size);
    if (!parameter_list_make(&list, weights, biases, n_layers) || widths_text == NULL) {
        parameter_list_free(&list);
        free(widths_text);
        return fail(err, TT_ERR_NOMEM, "%s: out of memory saving %zu layers", path, n_layers);
    }
    size_t length = 0;
    for (size_t t = 0; t <= n_layers; t++) {
        length += (size_t)snprintf(widths_text + length, text_size - length, "%s%zu",
                                   t > 0 ? "," : "", widths[t]);
    }

    char parameter_text[MODEL_FILE_REAL_TEXT_MAX] = "";
    if (activation_parameter != NULL)
        model_file_format_real(*activation_parameter, parameter_text);
    const tt_metadata_item metadata[] = {{WIDTHS_KEY, widths_text},
                                         {ACTIVATION_KEY, activation},
                                         {ACTIVATION_PARAMETER_KEY, parameter_text}};
    const size_t n_metadata = activation_parameter != NULL ? 3 : 2;
    tt_status status =
        tt_safetensors_save(path, list.tensors, 2 * n_layers, metadata, n_metadata, err);
    parameter_list_free(&list);
    free(widths_text);
    return status == TT_OK;
}

/* Parses "d0,d1,…,dT" (at least two positive integers) into a new array. */
static bool parse_widths(const char *text, size_t **widths, size_t *count)
{
    size_t n = 1;
    for (const char *c = text; *c != '\0'; c++)
        n += *c == ',';
    if (n < 2)
        return false;
    size_t *parsed = calloc(n, sizeof *parsed);
    if (parsed == NULL)
        return false;
    const char *start = text;
    for (size_t i = 0; i < n; i++) {
        char *end = NULL;
        errno = 0;
        unsigned long long value = strtoull(start, &end, 10);
        bool digits_only = *start >= '0' && *start <= '9';
        if (!digits_only || errno != 0 || value == 0 || value > SIZE_MAX ||
            *end != (i + 1 < n ? ',' : '\0')) {
            free(parsed);
            return false;
        }
        parsed[i] = (size_t)value;
        start = end + 1;
    }
    *widths = parsed;
    *count = n;
    return true;
}

/* Parses a number that fills all of `text` and is finite as a tt_real. */
static bool parse_real(const char *text, double *value)
{
    if (text[0] == '\0' || isspace((unsigned char)text[0]))
        return false;
    char *end = NULL;
    errno = 0;
    double parsed = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite((tt_real)parsed))
        return false;
    *value = parsed;
    return true;
}

bool model_file_architecture(const tt_safetensors *file, const char *path,
                             model_architecture *arch, tt_error *err)
{
    arch->widths = NULL;
    arch->n_layers = 0;
    arch->has_activation_parameter = false;
    arch->activation_parameter = 0;
    const char *widths = tt_safetensors_metadata(file, WIDTHS_KEY);
    const char *activation = tt_safetensors_metadata(file, ACTIVATION_KEY);
    if (widths == NULL || activation == NULL)
        return fail(err, TT_ERR_FORMAT, "%s: no '%s' metadata; the file was not saved as an "
                    "MLP model", path, widths == NULL ? WIDTHS_KEY : ACTIVATION_KEY);
    size_t n_widths = 0;
    if (!parse_widths(widths, &arch->widths, &n_widths))
        return fail(err, TT_ERR_FORMAT, "%s: invalid widths '%s' in the metadata; expected "
                    "two or more positive integers separated by commas", path, widths);
    arch->n_layers = n_widths - 1;
    if (strlen(activation) >= sizeof arch->activation) {
        model_architecture_free(arch);
        return fail(err, TT_ERR_FORMAT, "%s: activation name in the metadata is longer than "
                    "%d bytes", path, MODEL_FILE_ACTIVATION_MAX - 1);
    }
    strcpy(arch->activation, activation);
    const char *parameter = tt_safetensors_metadata(file, ACTIVATION_PARAMETER_KEY);
    if (parameter != NULL) {
        if (!parse_real(parameter, &arch->activation_parameter)) {
            model_architecture_free(arch);
            return fail(err, TT_ERR_FORMAT, "%s: invalid %s '%s' in the metadata; expected a "
                        "finite number within the range of " REAL_TYPE_NAME, path, ACTIVATION_PARAMETER_KEY, parameter);
        }
        arch->has_activation_parameter = true;
    }

    /* Exactly w1, b1, …, wT, bT: a file with other tensors is another model. */
    size_t expected = 2 * arch->n_layers;
    if (tt_safetensors_count(file) != expected) {
        size_t found = tt_safetensors_count(file);
        model_architecture_free(arch);
        return fail(err, TT_ERR_FORMAT, "%s: holds %zu tensors, but widths '%s' call for %zu "
                    "(w1, b1, ...)", path, found, widths, expected);
    }
    return true;
}

void model_architecture_free(model_architecture *arch)
{
    free(arch->widths);
    arch->widths = NULL;
    arch->n_layers = 0;
    arch->has_activation_parameter = false;
    arch->activation_parameter = 0;
}

tt_safetensors *model_file_open(const char *path, size_t n_inputs, size_t n_outputs,
                                const char *activation, model_architecture *arch,
                                tt_error *err)
{
    arch->widths = NULL;
    arch->n_layers = 0;
    tt_safetensors *file = tt_safetensors_open(path, err);
    if (file == NULL || !model_file_architecture(file, path, arch, err)) {
        tt_safetensors_close(file);
        return NULL;
    }

    bool usable = false;
    if (arch->widths[0] != n_inputs)
        fail(err, TT_ERR_SHAPE, "%s: the model takes %zu inputs, but the data have %zu",
             path, arch->widths[0], n_inputs);
    else if (arch->widths[arch->n_layers] != n_outputs)
        fail(err, TT_ERR_SHAPE, "%s: the model has %zu outputs, but the data have %zu classes",
             path, arch->widths[arch->n_layers], n_outputs);
    else if (activation != NULL &&
             (strcmp(arch->activation, activation) != 0 || arch->has_activation_parameter))
        fail(err, TT_ERR_FORMAT, "%s: the model's activation is '%s'%s, but only '%s' is "
             "supported", path, arch->activation,
             arch->has_activation_parameter ? " with a parameter" : "", activation);
    else
        usable = true;
    if (!usable) {
        model_architecture_free(arch);
        tt_safetensors_close(file);
        return NULL;
    }
    return file;
}

bool model_file_read(const tt_safetensors *file, tt_tensor *const *weights,
                     tt_tensor *const *biases, size_t n_layers, tt_error *err)
{
    parameter_list list;
    if (!parameter_list_make(&list, weights, biases, n_layers)) {
        parameter_list_free(&list);
        return fail(err, TT_ERR_NOMEM, "out of memory reading %zu layers", n_layers);
    }
    tt_status status = tt_safetensors_read_all(file, list.tensors, 2 * n_layers, err);
    parameter_list_free(&list);
    return status == TT_OK;
}
