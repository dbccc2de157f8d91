/* optimizer_steps: runs tensortape's optimizers on parameters and gradient
 * sequences read from standard input, through the public API only, for
 * test_optimizers.py to compare with PyTorch's torch.optim.
 *
 * Input: any number of problems, each a sequence of whitespace-separated
 * tokens (line breaks are only for reading):
 *     problem KIND P K                 KIND is sgd, adam or adamw; P
 *                                      parameters; K steps
 *     options MOMENTUM DAMPENING NESTEROV BETA1 BETA2 EPSILON WEIGHT_DECAY
 *                                      NESTEROV is 0 or 1; the fields of
 *                                      the other kind are 0
 *     shape R C                        P times, one per parameter
 *     p VALUES                         P times: the R·C initial values
 *     step LR                          K times, then P lines of
 *     g VALUES                         the R·C gradient values
 * Values are read as doubles and rounded to tt_real. Each step sets the
 * learning rate to LR (tt_optimizer_set_learning_rate), fills the
 * gradients and calls tt_optimizer_step.
 *
 * Output, per problem and step:
 *     step T VALUES                    every parameter's values after step
 *                                      T, in order, 17 significant digits
 * Exits 0 after the last problem, and 1 with a message on standard error
 * for malformed input or a failing library call. `optimizer_steps --real`
 * prints the build's tt_real, "float" or "double". */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensortape.h"

/* Largest parameter count and size accepted: far above what the tests use,
 * and small enough that no size computed from them overflows. */
#define MAX_PARAMS 16
#define MAX_DIMENSION ((size_t)1 << 16)

/* Maximum length of a keyword in the input, plus the terminating NUL. */
#define KEYWORD_MAX 16

/* Reads the next token and checks that it is `keyword`. */
static bool expect_keyword(const char *keyword)
{
    char token[KEYWORD_MAX];
    if (scanf("%15s", token) != 1 || strcmp(token, keyword) != 0) {
        fprintf(stderr, "optimizer_steps: expected '%s'\n", keyword);
        return false;
    }
    return true;
}

static bool read_size(size_t *value)
{
    if (scanf("%zu", value) != 1 || *value == 0 || *value > MAX_DIMENSION) {
        fprintf(stderr, "optimizer_steps: expected a size from 1 to %zu\n", MAX_DIMENSION);
        return false;
    }
    return true;
}

static bool read_values(tt_real *values, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        double value = 0.0;
        if (scanf("%lf", &value) != 1) {
            fprintf(stderr, "optimizer_steps: expected %zu values, got %zu\n", count, i);
            return false;
        }
        values[i] = (tt_real)value;
    }
    return true;
}

static bool read_kind(tt_optimizer_kind *kind)
{
    char token[KEYWORD_MAX];
    if (scanf("%15s", token) != 1) {
        fprintf(stderr, "optimizer_steps: expected an optimizer kind\n");
        return false;
    }
    if (strcmp(token, "sgd") == 0) {
        *kind = TT_OPTIMIZER_SGD;
    } else if (strcmp(token, "adam") == 0) {
        *kind = TT_OPTIMIZER_ADAM;
    } else if (strcmp(token, "adamw") == 0) {
        *kind = TT_OPTIMIZER_ADAMW;
    } else {
        fprintf(stderr, "optimizer_steps: unknown optimizer kind '%s'\n", token);
        return false;
    }
    return true;
}

static bool read_options(tt_optimizer_options *options)
{
    int nesterov = 0;
    if (!expect_keyword("options") ||
        scanf("%lf %lf %d %lf %lf %lf %lf", &options->momentum, &options->dampening, &nesterov,
              &options->beta1, &options->beta2, &options->epsilon,
              &options->weight_decay) != 7) {
        fprintf(stderr, "optimizer_steps: expected seven option values\n");
        return false;
    }
    options->nesterov = nesterov != 0;
    return true;
}

static void print_parameters(size_t step, tt_tensor *const params[], size_t n_params)
{
    printf("step %zu", step);
    for (size_t k = 0; k < n_params; k++) {
        const tt_real *values = tt_tensor_data(params[k]);
        const size_t size = tt_tensor_rows(params[k]) * tt_tensor_cols(params[k]);
        for (size_t i = 0; i < size; i++)
            printf(" %.17g", (double)values[i]);
    }
    printf("\n");
}

/* Reads and runs one problem whose "problem" keyword has been read. */
static bool run_problem(void)
{
    tt_optimizer_options options = {0};
    size_t n_params = 0;
    size_t n_steps = 0;
    if (!read_kind(&options.kind) || !read_size(&n_params) || !read_size(&n_steps) ||
        !read_options(&options)) {
        return false;
    }
    if (n_params > MAX_PARAMS) {
        fprintf(stderr, "optimizer_steps: %zu parameters, at most %d allowed\n", n_params,
                MAX_PARAMS);
        return false;
    }

    bool ok = false;
    tt_error err = {TT_OK, ""};
    tt_tensor *params[MAX_PARAMS] = {NULL};
    tt_optimizer *optimizer = NULL;
    for (size_t k = 0; k < n_params; k++) {
        size_t rows = 0;
        size_t cols = 0;
        if (!expect_keyword("shape") || !read_size(&rows) || !read_size(&cols)) {
            goto cleanup;
        }
        params[k] = tt_tensor_new(rows, cols, NULL, &err);
        if (params[k] == NULL || tt_tensor_require_grad(params[k], &err) != TT_OK) {
            fprintf(stderr, "optimizer_steps: %s\n", err.message);
            goto cleanup;
        }
    }
    for (size_t k = 0; k < n_params; k++) {
        const size_t size = tt_tensor_rows(params[k]) * tt_tensor_cols(params[k]);
        if (!expect_keyword("p") || !read_values(tt_tensor_data(params[k]), size)) {
            goto cleanup;
        }
    }
    optimizer = tt_optimizer_new(params, n_params, &options, &err);
    if (optimizer == NULL) {
        fprintf(stderr, "optimizer_steps: %s\n", err.message);
        goto cleanup;
    }

    for (size_t step = 1; step <= n_steps; step++) {
        double learning_rate = 0.0;
        if (!expect_keyword("step") || scanf("%lf", &learning_rate) != 1) {
            fprintf(stderr, "optimizer_steps: expected the learning rate of step %zu\n", step);
            goto cleanup;
        }
        for (size_t k = 0; k < n_params; k++) {
            const size_t size = tt_tensor_rows(params[k]) * tt_tensor_cols(params[k]);
            if (!expect_keyword("g") || !read_values(tt_tensor_grad(params[k]), size)) {
                goto cleanup;
            }
        }
        if (tt_optimizer_set_learning_rate(optimizer, learning_rate, &err) != TT_OK ||
            tt_optimizer_step(optimizer, &err) != TT_OK) {
            fprintf(stderr, "optimizer_steps: %s\n", err.message);
            goto cleanup;
        }
        print_parameters(step, params, n_params);
    }
    ok = true;

cleanup:
    tt_optimizer_free(optimizer);
    for (size_t k = 0; k < n_params; k++)
        tt_tensor_free(params[k]);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--real") == 0) {
        puts(sizeof(tt_real) == sizeof(double) ? "double" : "float");
        return EXIT_SUCCESS;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: optimizer_steps [--real] < problems\n");
        return EXIT_FAILURE;
    }

    char token[KEYWORD_MAX];
    while (scanf("%15s", token) == 1) {
        if (strcmp(token, "problem") != 0) {
            fprintf(stderr, "optimizer_steps: expected 'problem', got '%s'\n", token);
            return EXIT_FAILURE;
        }
        if (!run_problem())
            return EXIT_FAILURE;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "optimizer_steps: cannot write to standard output\n");
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}
