/* The MLP's parameters in a safetensors file: W(t) is saved as "w<t>" and
 * b(t) as "b<t>", t = 1 … T, with the metadata that is enough to rebuild
 * the model:
 *   "widths"      the layer widths d_0,d_1,…,d_T as decimal integers
 *                 separated by commas, e.g. "784,128,10";
 *   "activation"  the name of the hidden layers' activation, the name of
 *                 its op without "tt_", e.g. "relu" or "leaky_relu";
 *   "activation_parameter"
 *                 only for an activation with a parameter, such as the
 *                 leaky ReLU slope: a decimal number, e.g. "0.1", with the
 *                 fewest digits that read back as the same tt_real. */
#ifndef MLP_MODEL_FILE_H
#define MLP_MODEL_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "tensortape.h"

/* Maximum length of an activation name that model_file_architecture accepts. */
#define MODEL_FILE_ACTIVATION_MAX 32

/* The C type of tt_real in this build, for messages about the range of a
 * number. */
#if TT_REAL_IS_DOUBLE
#define REAL_TYPE_NAME "double"
#else
#define REAL_TYPE_NAME "float"
#endif

/* Room for model_file_format_real's text: a sign, 17 digits, a point and
 * an exponent such as "e-308". */
#define MODEL_FILE_REAL_TEXT_MAX 32

/* The architecture recorded in a model file. */
typedef struct model_architecture {
    size_t *widths;   /* d_0 … d_T, n_layers + 1 entries, owned */
    size_t n_layers;  /* T */
    char activation[MODEL_FILE_ACTIVATION_MAX];
    bool has_activation_parameter; /* the file has "activation_parameter" */
    double activation_parameter;   /* its value, finite as a tt_real; else 0 */
} model_architecture;

/* Writes `value` to `text` in the fewest significant digits (%g style)
 * that strtod reads back as the same tt_real, e.g. 0.1f as "0.1". */
void model_file_format_real(tt_real value, char text[MODEL_FILE_REAL_TEXT_MAX]);

/* Saves weights[t-1] as "w<t>" and biases[t-1] as "b<t>" for t = 1 …
 * n_layers, with widths[0 .. n_layers], `activation` and, unless
 * `activation_parameter` is NULL, *activation_parameter as metadata,
 * atomically (see tt_safetensors_save). Returns false with `err` filled. */
bool model_file_save(const char *path, tt_tensor *const *weights, tt_tensor *const *biases,
                     size_t n_layers, const size_t *widths, const char *activation,
                     const tt_real *activation_parameter, tt_error *err);

/* Reads the "widths", "activation" and "activation_parameter" metadata of
 * `file` (opened from `path`, which names it in messages) into `arch`, to
 * free with model_architecture_free. Returns false with `err` filled if
 * "widths" or "activation" is missing, if any of the three is malformed,
 * or if the file does not hold exactly the 2·T tensors w1, b1, … that the
 * widths call for. Whether the activation is known, and takes a
 * parameter, is for the caller to check. */
bool model_file_architecture(const tt_safetensors *file, const char *path,
                             model_architecture *arch, tt_error *err);

void model_architecture_free(model_architecture *arch);

/* Opens the model file at `path` and reads its architecture into `arch`
 * (see model_file_architecture), then checks that the model takes
 * `n_inputs` inputs and gives `n_outputs` outputs. Unless `activation` is
 * NULL, it also checks that the model uses that activation, without a
 * parameter. Returns the open file, to close with tt_safetensors_close, or
 * NULL with `err` filled and `arch` empty. */
tt_safetensors *model_file_open(const char *path, size_t n_inputs, size_t n_outputs,
                                const char *activation, model_architecture *arch,
                                tt_error *err);

/* Copies "w<t>" and "b<t>" of `file` into weights[t-1] and biases[t-1],
 * whose shapes must match; nothing changes on failure. */
bool model_file_read(const tt_safetensors *file, tt_tensor *const *weights,
                     tt_tensor *const *biases, size_t n_layers, tt_error *err);

#endif /* MLP_MODEL_FILE_H */
