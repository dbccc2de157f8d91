/* mlp_gradients: computes the loss and every gradient of MLPs described on
 * standard input, through the public API only, for test_agreement.py to
 * compare with PyTorch.
 *
 * Each problem is an MLP of T layers as in the README's "The math":
 * z(t) = W(t)·h(t-1) + b(t) (eq. 1, 3), h(t) = ReLU(z(t)) for t < T (eq. 2,
 * 15), and the mean softmax cross-entropy L of z(T) (eq. 5-8). Samples are
 * columns: x = h(0) is d_0 × n, W(t) is d_t × d_(t-1), b(t) is d_t × 1, and
 * z(T) is C × n with C = d_T. The program builds it with tt_matmul, tt_add,
 * tt_relu and tt_cross_entropy on one tape, runs backward from L, and
 * writes L and the gradients of x and of every W(t) and b(t).
 *
 * Input: any number of problems, each a sequence of whitespace-separated
 * tokens (line breaks are only for reading):
 *     mlp T n
 *     widths d_0 d_1 ... d_T
 *     labels l_1 ... l_n              class indices in [0, d_T)
 *     x       d_0·n values            row-major, d_0 × n
 *     w 1     d_1·d_0 values          row-major, d_1 × d_0
 *     b 1     d_1 values
 *     ...                             w t and b t for t = 2 .. T
 * Values are anything strtod accepts. Each is read as a double and then
 * rounded to tt_real, so a value that tt_real represents exactly, such as
 * the shortest decimal form of a float in the float build, arrives
 * unchanged.
 *
 * Output, per problem in input order:
 *     mlp INDEX                       0 for the first problem
 *     loss L
 *     dx    d_0·n values              dL/dx, x's shape
 *     dw 1  d_1·d_0 values            dL/dW(1), W(1)'s shape
 *     db 1  d_1 values                dL/db(1)
 *     ...
 * Values are printed with 17 significant digits, which identify a double
 * (and so a float) exactly.
 *
 * Exits 0 after the last problem, and 1 with a message on standard error
 * for malformed input or a failing library call. `mlp_gradients --real`
 * prints the build's tt_real instead, "float" or "double", so that the
 * driver can generate values of that type. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensortape.h"

/* Largest number of layers in one problem. */
#define MAX_LAYERS 16

/* Largest width or sample count accepted: far above what the tests use,
 * and small enough that no size computed from them overflows. */
#define MAX_DIMENSION ((size_t)1 << 20)

/* Maximum length of a keyword in the input, plus the terminating NUL. */
#define KEYWORD_MAX 16

/* Size of a tensor name such as "w16": a keyword and a layer number,
 * which has at most 20 digits, plus the terminating NUL. */
#define NAME_MAX_LENGTH 32

/* One problem: its parameters and input as caller-owned tensors that
 * require a gradient, and its labels. widths[0] is d_0 and widths[layers]
 * is C. w[t] and b[t] are used for t = 1 .. layers. */
typedef struct mlp_problem {
    size_t index;
    size_t layers;
    size_t n;
    size_t widths[MAX_LAYERS + 1];
    int32_t *labels;
    tt_tensor *x;
    tt_tensor *w[MAX_LAYERS + 1];
    tt_tensor *b[MAX_LAYERS + 1];
} mlp_problem;

/* Prints a message about the current problem to standard error. */
static void report(const mlp_problem *problem, const char *message, const char *detail)
{
    fprintf(stderr, "mlp_gradients: problem %zu: %s%s\n", problem->index, message, detail);
}

/* Reads the next token and returns whether it equals `keyword`. */
static bool read_keyword(FILE *input, const mlp_problem *problem, const char *keyword)
{
    char token[KEYWORD_MAX];
    if (fscanf(input, "%15s", token) != 1 || strcmp(token, keyword) != 0) {
        report(problem, "missing keyword ", keyword);
        return false;
    }
    return true;
}

/* Reads one size in [1, max] into *value. */
static bool read_size(FILE *input, const mlp_problem *problem, const char *what, size_t max,
                      size_t *value)
{
    uintmax_t parsed = 0;
    if (fscanf(input, "%" SCNuMAX, &parsed) != 1 || parsed < 1 || parsed > max) {
        report(problem, "missing or out-of-range ", what);
        return false;
    }
    *value = (size_t)parsed;
    return true;
}

/* Reads `keyword`, then for a per-layer tensor (layer > 0) its layer
 * number, then rows × cols values into a new caller-owned tensor that
 * requires a gradient. Returns NULL after reporting on failure. */
static tt_tensor *read_tensor(FILE *input, const mlp_problem *problem, const char *keyword,
                              size_t layer, size_t rows, size_t cols)
{
    if (!read_keyword(input, problem, keyword))
        return NULL;
    if (layer > 0) {
        size_t read_layer = 0;
        if (!read_size(input, problem, "layer number", MAX_LAYERS, &read_layer))
            return NULL;
        if (read_layer != layer) {
            report(problem, "layers out of order after keyword ", keyword);
            return NULL;
        }
    }

    /* Named like the parameters, "w1" or "b1", for the library's messages. */
    char name[NAME_MAX_LENGTH];
    if (layer > 0)
        snprintf(name, sizeof name, "%s%zu", keyword, layer);
    else
        snprintf(name, sizeof name, "%s", keyword);

    tt_error err = {TT_OK, ""};
    tt_tensor *tensor = tt_tensor_new(rows, cols, name, &err);
    if (tensor == NULL) {
        report(problem, "", err.message);
        return NULL;
    }
    tt_real *data = tt_tensor_data(tensor);
    for (size_t i = 0; i < rows * cols; i++) {
        double value = 0.0;
        if (fscanf(input, "%lf", &value) != 1) {
            report(problem, "too few values after keyword ", keyword);
            tt_tensor_free(tensor);
            return NULL;
        }
        data[i] = (tt_real)value;
    }
    if (tt_tensor_require_grad(tensor, &err) != TT_OK) {
        report(problem, "", err.message);
        tt_tensor_free(tensor);
        return NULL;
    }
    return tensor;
}

static void free_problem(mlp_problem *problem)
{
    free(problem->labels);
    tt_tensor_free(problem->x);
    for (size_t t = 1; t <= problem->layers; t++) {
        tt_tensor_free(problem->w[t]);
        tt_tensor_free(problem->b[t]);
    }
}

/* Reads the problem after its "mlp" keyword into *problem, whose index is
 * already set. Returns false after reporting on failure; free_problem then
 * releases whatever was read. */
static bool read_problem(FILE *input, mlp_problem *problem)
{
    if (!read_size(input, problem, "layer count", MAX_LAYERS, &problem->layers))
        return false;
    if (!read_size(input, problem, "sample count", MAX_DIMENSION, &problem->n))
        return false;

    if (!read_keyword(input, problem, "widths"))
        return false;
    for (size_t t = 0; t <= problem->layers; t++)
        if (!read_size(input, problem, "width", MAX_DIMENSION, &problem->widths[t]))
            return false;

    const size_t n = problem->n;
    const size_t n_classes = problem->widths[problem->layers];
    if (!read_keyword(input, problem, "labels"))
        return false;
    problem->labels = malloc(n * sizeof *problem->labels);
    if (problem->labels == NULL) {
        report(problem, "out of memory for the labels", "");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        uintmax_t label = 0;
        if (fscanf(input, "%" SCNuMAX, &label) != 1 || label >= n_classes) {
            report(problem, "missing label or label not below the class count", "");
            return false;
        }
        problem->labels[i] = (int32_t)label;
    }

    problem->x = read_tensor(input, problem, "x", 0, problem->widths[0], n);
    if (problem->x == NULL)
        return false;
    for (size_t t = 1; t <= problem->layers; t++) {
        const size_t d_out = problem->widths[t];
        const size_t d_in = problem->widths[t - 1];
        problem->w[t] = read_tensor(input, problem, "w", t, d_out, d_in);
        if (problem->w[t] == NULL)
            return false;
        problem->b[t] = read_tensor(input, problem, "b", t, d_out, 1);
        if (problem->b[t] == NULL)
            return false;
    }
    return true;
}

/* Writes `keyword`, the layer number for a per-layer tensor (layer > 0),
 * and the tensor's gradient on one line. */
static void write_gradient(FILE *output, const char *keyword, size_t layer, tt_tensor *tensor)
{
    const tt_real *grad = tt_tensor_grad(tensor);
    const size_t count = tt_tensor_rows(tensor) * tt_tensor_cols(tensor);

    fputs(keyword, output);
    if (layer > 0)
        fprintf(output, " %zu", layer);
    for (size_t i = 0; i < count; i++)
        fprintf(output, " %.17g", (double)grad[i]);
    fputc('\n', output);
}

/* Records the MLP on `tape` (reset first), runs backward and writes the
 * results. Returns false after reporting if the tape fails. */
static bool solve_problem(FILE *output, tt_tape *tape, const mlp_problem *problem)
{
    tt_tape_reset(tape);

    /* z(t) = W(t)·h(t-1) + b(t) (eq. 1, 3); h(t) = ReLU(z(t)) for t < T
     * (eq. 2, 15). A failed op returns NULL, which the next op passes on. */
    tt_tensor *h = problem->x;
    tt_tensor *z = NULL;
    for (size_t t = 1; t <= problem->layers; t++) {
        z = tt_add(tape, tt_matmul(tape, problem->w[t], h), problem->b[t]);
        if (t < problem->layers)
            h = tt_relu(tape, z);
    }
    tt_tensor *loss = tt_cross_entropy(tape, z, problem->labels, problem->n);

    if (tt_tape_backward(tape, loss) != TT_OK) {
        report(problem, "", tt_tape_error(tape)->message);
        return false;
    }

    fprintf(output, "mlp %zu\n", problem->index);
    fprintf(output, "loss %.17g\n", (double)tt_tensor_data(loss)[0]);
    write_gradient(output, "dx", 0, problem->x);
    for (size_t t = 1; t <= problem->layers; t++) {
        write_gradient(output, "dw", t, problem->w[t]);
        write_gradient(output, "db", t, problem->b[t]);
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--real") == 0) {
        puts(TT_REAL_IS_DOUBLE ? "double" : "float");
        return EXIT_SUCCESS;
    }
    if (argc != 1) {
        fputs("usage: mlp_gradients < PROBLEMS > RESULTS\n"
              "       mlp_gradients --real\n"
              "The first form reads MLP problems from standard input and writes each\n"
              "one's loss and gradients to standard output, in the format described in\n"
              "mlp_gradients.c. The second prints the element type tt_real of this\n"
              "build, float or double.\n",
              stderr);
        return EXIT_FAILURE;
    }

    tt_error err = {TT_OK, ""};
    tt_tape *tape = tt_tape_new(&err);
    if (tape == NULL) {
        fprintf(stderr, "mlp_gradients: %s\n", err.message);
        return EXIT_FAILURE;
    }

    int status = EXIT_SUCCESS;
    for (size_t index = 0;; index++) {
        char token[KEYWORD_MAX];
        if (fscanf(stdin, "%15s", token) != 1)
            break;
        mlp_problem problem = {.index = index};
        if (strcmp(token, "mlp") != 0) {
            report(&problem, "missing keyword ", "mlp");
            status = EXIT_FAILURE;
            break;
        }
        const bool solved = read_problem(stdin, &problem) && solve_problem(stdout, tape, &problem);
        free_problem(&problem);
        if (!solved) {
            status = EXIT_FAILURE;
            break;
        }
    }

    if (ferror(stdin)) {
        fputs("mlp_gradients: failed to read standard input\n", stderr);
        status = EXIT_FAILURE;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fputs("mlp_gradients: failed to write standard output\n", stderr);
        status = EXIT_FAILURE;
    }
    tt_tape_free(tape);
    return status;
}
