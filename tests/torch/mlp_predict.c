/* mlp_predict: computes an MLP model file's logits for the Fashion-MNIST
 * test set and saves them, for test_safetensors_interop.py to compare with
 * PyTorch's.
 *
 * Usage: mlp_predict MODEL DATA_DIR LOGITS
 *
 * MODEL is a safetensors file in the layout of examples/mlp/model_file.h
 * (w1, b1, … and the metadata "widths" and "activation", which must be
 * "relu"). The forward pass is the example's, eq. 1–3 of the README: z(t) =
 * W(t)·h(t-1) + b(t), h(t) = ReLU(z(t)) for t < T, with the pixels scaled
 * to [0, 1] by multiplying with (tt_real)(1/255). LOGITS receives one
 * tensor, "logits", of shape [C, n]: column i is z(T) of test sample i.
 * Exit status 0 on success, 1 on any error, 2 for wrong arguments. */
#include <stdio.h>
#include <stdlib.h>

#include "idx.h"
#include "model_file.h"
#include "tensortape.h"

#define TEST_IMAGES "t10k-images-idx3-ubyte"
#define TEST_LABELS "t10k-labels-idx1-ubyte"

/* Fashion-MNIST has ten classes, labelled 0 to 9. */
#define N_CLASSES 10

/* Samples per forward pass. */
#define BATCH 1000

typedef struct parameters {
    tt_tensor **weights;
    tt_tensor **biases;
    size_t n_layers;
} parameters;

static void parameters_free(parameters *p)
{
    for (size_t t = 0; t < p->n_layers; t++) {
        if (p->weights != NULL)
            tt_tensor_free(p->weights[t]);
        if (p->biases != NULL)
            tt_tensor_free(p->biases[t]);
    }
    free(p->weights);
    free(p->biases);
}

/* Creates the tensors that arch calls for and reads them from `file`. */
static bool read_parameters(const tt_safetensors *file, const model_architecture *arch,
                            parameters *p, tt_error *err)
{
    p->n_layers = arch->n_layers;
    p->weights = calloc(arch->n_layers, sizeof *p->weights);
    p->biases = calloc(arch->n_layers, sizeof *p->biases);
    if (p->weights == NULL || p->biases == NULL) {
        err->status = TT_ERR_NOMEM;
        snprintf(err->message, sizeof err->message, "out of memory");
        return false;
    }
    for (size_t t = 1; t <= arch->n_layers; t++) {
        p->weights[t - 1] = tt_tensor_new(arch->widths[t], arch->widths[t - 1], NULL, err);
        p->biases[t - 1] = tt_tensor_new(arch->widths[t], 1, NULL, err);
        if (p->weights[t - 1] == NULL || p->biases[t - 1] == NULL)
            return false;
    }
    return model_file_read(file, p->weights, p->biases, p->n_layers, err);
}

/* Writes the logits of samples [first, first + n) into columns of `logits`,
 * a C × count matrix. */
static bool predict_batch(tt_tape *tape, const parameters *p, const idx_dataset *test,
                          size_t first, size_t n, tt_real *logits)
{
    const size_t s = test->rows * test->cols;
    const tt_real scale = (tt_real)(1.0 / 255.0);
    tt_tape_reset(tape);
    tt_tensor *h = tt_tape_tensor(tape, s, n, "x");
    if (h == NULL)
        return false;
    tt_real *x = tt_tensor_data(h);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < s; k++)
            x[k * n + i] = (tt_real)test->pixels[(first + i) * s + k] * scale;
    }
    for (size_t t = 0; t < p->n_layers; t++) {
        tt_tensor *z = tt_add(tape, tt_matmul(tape, p->weights[t], h), p->biases[t]);
        h = t + 1 < p->n_layers ? tt_relu(tape, z) : z;
    }
    if (h == NULL)
        return false;
    const size_t classes = tt_tensor_rows(h);
    const tt_real *z = tt_tensor_data(h);
    for (size_t c = 0; c < classes; c++) {
        for (size_t i = 0; i < n; i++)
            logits[c * test->count + first + i] = z[c * n + i];
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: mlp_predict MODEL DATA_DIR LOGITS\n");
        return 2;
    }
    const char *model_path = argv[1];
    int status = EXIT_FAILURE;
    tt_error err = {TT_OK, ""};
    model_architecture arch = {0};
    parameters params = {0};
    idx_dataset test = {0};
    tt_tape *tape = NULL;
    tt_tensor *logits = NULL;
    char message[IDX_MESSAGE_MAX];

    tt_safetensors *file = NULL;
    if (!idx_dataset_load(&test, argv[2], TEST_IMAGES, TEST_LABELS, N_CLASSES, message,
                          sizeof message)) {
        fprintf(stderr, "mlp_predict: %s\n", message);
        goto cleanup;
    }
    file = model_file_open(model_path, test.rows * test.cols, N_CLASSES, "relu", &arch, &err);
    if (file == NULL || !read_parameters(file, &arch, &params, &err)) {
        fprintf(stderr, "mlp_predict: %s\n", err.message);
        goto cleanup;
    }

    const size_t classes = arch.widths[arch.n_layers];
    tape = tt_tape_new(&err);
    logits = tape != NULL ? tt_tensor_new(classes, test.count, "logits", &err) : NULL;
    if (logits == NULL) {
        fprintf(stderr, "mlp_predict: %s\n", err.message);
        goto cleanup;
    }
    for (size_t first = 0; first < test.count; first += BATCH) {
        size_t n = test.count - first < BATCH ? test.count - first : BATCH;
        if (!predict_batch(tape, &params, &test, first, n, tt_tensor_data(logits))) {
            fprintf(stderr, "mlp_predict: %s\n", tt_tape_error(tape)->message);
            goto cleanup;
        }
    }
    const tt_named_tensor saved[] = {{"logits", logits}};
    if (tt_safetensors_save(argv[3], saved, 1, NULL, 0, &err) != TT_OK) {
        fprintf(stderr, "mlp_predict: %s\n", err.message);
        goto cleanup;
    }
    status = EXIT_SUCCESS;

cleanup:
    tt_tensor_free(logits);
    tt_tape_free(tape);
    idx_dataset_free(&test);
    parameters_free(&params);
    model_architecture_free(&arch);
    tt_safetensors_close(file);
    return status;
}
