/* Shared helpers for the Check suites: tolerance comparison, central finite
 * differences in double precision, double-precision reference kernels, and
 * small wrappers that fail the current test when the library returns NULL.
 *
 * Every reference kernel here is written from the math in the README and
 * never calls the engine, so the suites can compare the engine with it. */
#ifndef TT_TEST_HELPERS_H
#define TT_TEST_HELPERS_H

#include <check.h>
#include <float.h>
#include <stddef.h>
#include <stdint.h>

#include "tensortape.h"

/* Machine epsilon of tt_real: the tolerances below scale with it, so they
 * stay meaningful when tt_real becomes double. */
#define EPSILON_REAL (sizeof(tt_real) == sizeof(float) ? (double)FLT_EPSILON : DBL_EPSILON)

/* Relative tolerance for a result that the engine computes with a short
 * chain of tt_real operations, such as a sum of at most a few hundred
 * products. Compared by assert_all_close_scaled, the largest error in these
 * suites is below 1e-6 of the tensor's largest element in float, about 6
 * epsilons. 128 epsilons leave a margin of about 20 but still reject a
 * wrong or missing term, whose error is far larger. */
#define RTOL_REAL (128.0 * EPSILON_REAL)

/* Step of the central differences, in the units of the input. The error of
 * a central difference is about step^2 · |f'''| from truncation plus
 * DBL_EPSILON · |f| / step from rounding. For the O(1) inputs and losses of
 * these suites a step of 1e-6 keeps both near 1e-10. */
#define FINITE_DIFFERENCE_STEP 1e-6

/* Relative tolerance for comparing the engine's gradient with a central
 * difference. In float the engine's own rounding (RTOL_REAL) dominates. In
 * double the difference's error dominates, up to about 5e-9 of the largest
 * gradient entry in these suites, and the 1e-6 term covers it. */
#define RTOL_FINITE_DIFFERENCE (RTOL_REAL + 1e-6)

/* Returns whether |got - want| <= atol + rtol·|want|. NaN never compares
 * close, and infinities compare close only to themselves. */
bool is_close(double got, double want, double atol, double rtol);

/* Returns the largest |values[i]| over `count` doubles; 0 for count 0. */
double max_abs(const double *values, size_t count);

/* Fails the current test unless every element of the rows × cols `got`
 * satisfies |got - want| <= atol + rtol·|want|. The message names `what`,
 * the element's row and column, both values and the allowed error. */
void assert_all_close(const char *what, const tt_real *got, const double *want, size_t rows,
                      size_t cols, double atol, double rtol);

/* Same as assert_all_close with atol = rtol · max|want|: each element may be
 * off by rtol of its own size plus rtol of the tensor's largest element.
 * The second term is needed for entries that are sums of terms of mixed
 * sign cancelling to near zero: their rounding error is proportional to the
 * terms, not to the small result. */
void assert_all_close_scaled(const char *what, const tt_real *got, const double *want,
                             size_t rows, size_t cols, double rtol);

/* Fails the current test unless every element of `got` equals `want`
 * exactly (as tt_real values, so +0 and -0 count as equal). */
void assert_all_equal(const char *what, const tt_real *got, const tt_real *want, size_t count);

/* ---- Finite differences ---------------------------------------------------- */

/* A scalar function of `count` doubles. `context` carries whatever else the
 * function needs. It may not change x. */
typedef double (*scalar_function)(const double *x, size_t count, void *context);

/* Writes into gradient[0 .. count) the central differences
 *     (f(x + step·e_j) - f(x - step·e_j)) / (2·step)
 * of f at x. x is perturbed in place one element at a time and restored. */
void central_difference(scalar_function f, void *context, double *x, size_t count, double step,
                        double *gradient);

/* ---- Reference kernels in double ------------------------------------------ */

/* c = a·b: a is m × k, b is k × n, c is m × n, all row-major. */
void reference_matmul(double *c, const double *a, const double *b, size_t m, size_t k, size_t n);

/* Returns the mean softmax cross-entropy (eq. 8) of the C × n logits z
 * with labels[0 .. n) in [0, C), using the max shift of eq. 10. If
 * `softmax` is not NULL, writes softmax(z) (eq. 5, C × n) into it. */
double reference_cross_entropy(const double *z, const int32_t *labels, size_t n_classes,
                               size_t n, double *softmax);

/* ---- Loss head -------------------------------------------------------------- */

/* Classes of the loss head. */
#define HEAD_CLASSES 3

/* A scalar loss on top of an op's rows × cols output y, so that backward can
 * run from it: loss = cross_entropy(P·y, labels) with a fixed random
 * HEAD_CLASSES × rows matrix P and cols random labels. Its gradient with
 * respect to y is Pᵀ·(softmax − one-hot)/cols, a general matrix, unlike the
 * rank-one gradient of a plain sum or of u·y·v. */
typedef struct loss_head {
    size_t rows;
    size_t cols;
    tt_tensor *projection;     /* P, caller-owned, without gradient */
    double *projection_values; /* P in double, HEAD_CLASSES × rows */
    int32_t *labels;           /* cols labels in [0, HEAD_CLASSES) */
} loss_head;

/* Draws P uniform in [-1, 1) and the labels from `rng`. */
loss_head new_loss_head(size_t rows, size_t cols, tt_rng *rng);
void free_loss_head(loss_head *head);

/* Records P·y and the cross-entropy on the tape and returns the loss. */
tt_tensor *apply_loss_head(tt_tape *tape, const loss_head *head, tt_tensor *y);

/* The same loss in double for a rows × cols y, for finite differences. */
double reference_loss_head(const loss_head *head, const double *y);

/* ---- Tensors --------------------------------------------------------------- */

/* tt_tensor_new or tt_tensor_from_data that fail the current test (with the
 * library's message) instead of returning NULL. `data` may be NULL for
 * zeros. */
tt_tensor *new_tensor_or_fail(size_t rows, size_t cols, const tt_real *data, const char *name);

/* A caller-owned rows × cols tensor of uniform values in [low, high) drawn
 * from `rng`, failing the current test if it cannot be created. */
tt_tensor *new_uniform_tensor(size_t rows, size_t cols, tt_rng *rng, double low, double high,
                              const char *name);

/* Calls tt_tensor_require_grad and fails the current test if it fails. */
void require_grad_or_fail(tt_tensor *tensor);

/* Keeps a tape tensor's gradient after backward, failing the current test
 * if tt_tensor_retain_grad fails. */
void retain_grad_or_fail(tt_tensor *tensor);

/* A tape that fails the current test if it cannot be created. */
tt_tape *new_tape_or_fail(void);

/* Fails the current test unless the tape is healthy; the message carries
 * the tape's error and `where`. */
void assert_tape_ok(const tt_tape *tape, const char *where);

/* Fills values[0 .. count) with uniform values whose magnitude lies in
 * [min_magnitude, max_magnitude) and whose sign is random, so that none is
 * near ReLU's kink at 0. */
void fill_away_from_zero(tt_real *values, size_t count, tt_rng *rng, double min_magnitude,
                         double max_magnitude);

/* Copies count tt_real values into doubles. */
void copy_to_double(double *out, const tt_real *in, size_t count);

/* Fills labels[0 .. count) with uniform class indices in [0, n_classes). */
void fill_labels(int32_t *labels, size_t count, size_t n_classes, tt_rng *rng);

/* Runs tt_gradcheck with its default options and fails, naming `what`,
 * unless it passes with exactly n_entries entries compared, so that none
 * was left out at a kink. */
void assert_gradcheck_passes(const char *what, tt_loss_function loss, void *context,
                             tt_tensor *const tensors[], size_t n_tensors, size_t n_entries);

/* ---- Optimizers ------------------------------------------------------------- */

/* Number of entries that fill_optimizers_with_most_state writes. */
#define OPTIMIZERS_WITH_MOST_STATE 3

/* Fills `options` with SGD, Adam and AdamW, each with the settings that use
 * the most of its state and its update rule: SGD with Nesterov momentum
 * and weight decay, Adam with weight decay, and AdamW with its defaults. */
void fill_optimizers_with_most_state(tt_optimizer_options options[OPTIMIZERS_WITH_MOST_STATE]);

/* ---- Running a suite -------------------------------------------------------- */

/* Per-test time limit in seconds when Check forks each test. It is generous
 * because the suites also run under valgrind and the sanitizers. */
#define TEST_TIMEOUT_SECONDS 120

/* Adds a test case named `name` with the per-test timeout to `suite` and
 * returns it. */
TCase *add_test_case(Suite *suite, const char *name);

/* Runs every test of `suite` and returns EXIT_SUCCESS if all passed and
 * EXIT_FAILURE otherwise; frees the suite. The output follows CK_VERBOSITY. */
int run_suite(Suite *suite);

#endif /* TT_TEST_HELPERS_H */
