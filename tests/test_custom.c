/* User-defined activations and ops: values worked by hand, tt_gradcheck,
 * declared kinks, gradients into tape tensors, and every error path. The
 * two code blocks marked "README" are the README's examples, word for word
 * (a test at the end of this file compares them with the README), so the
 * README's code compiles and runs here. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* Seeds of the gradient checks. */
#define CHECK_SEEDS 3

/* Rows and columns of the random inputs of the gradient checks. */
#define CHECK_ROWS 4
#define CHECK_COLS 6

/* ---- README: user-defined activation ---- */
/* softsign(x) = x / (1 + |x|), in (−1, 1), with derivative 1 / (1 + |x|)².
 * ±inf is handled apart, because inf / inf would be NaN. */
static tt_real softsign(tt_real x)
{
    return isinf(x) ? (tt_real)copysign(1, x) : x / (1 + (tt_real)fabs(x));
}

static tt_real softsign_derivative(tt_real x)
{
    const tt_real d = 1 + (tt_real)fabs(x);
    return 1 / (d * d);
}

/* Creates the activation once; apply it with tt_activation_apply(tape, g, z)
 * and free it with tt_activation_free(g) once no tape contains a record of it. */
static tt_activation *new_softsign(tt_error *err)
{
    const tt_activation_def def = {
        .name = "softsign", .function = softsign, .derivative = softsign_derivative};
    return tt_activation_new(&def, err);
}
/* ---- end of README code ---- */

/* ---- README: user-defined op ---- */
/* y = a ⊙ b, the elementwise product of two tensors of the same shape. */
static tt_status multiply_forward(tt_custom_context *context, void *user)
{
    (void)user;
    tt_tensor *a = tt_custom_input(context, 0);
    tt_tensor *b = tt_custom_input(context, 1);
    const size_t rows = tt_tensor_rows(a);
    const size_t cols = tt_tensor_cols(a);
    if (tt_tensor_rows(b) != rows || tt_tensor_cols(b) != cols) {
        tt_custom_fail(context, TT_ERR_SHAPE, "a is %zux%zu but b is %zux%zu", rows, cols,
                       tt_tensor_rows(b), tt_tensor_cols(b));
        return TT_ERR_SHAPE;
    }
    tt_tensor *y = tt_custom_new_output(context, rows, cols);
    if (y == NULL)
        return TT_ERR_NOMEM; /* the reason is already on the tape */
    for (size_t i = 0; i < rows * cols; i++)
        tt_tensor_data(y)[i] = tt_tensor_data(a)[i] * tt_tensor_data(b)[i];
    return TT_OK;
}

/* da += dy ⊙ b and db += dy ⊙ a. An input that needs no gradient has none. */
static tt_status multiply_backward(tt_custom_context *context, void *user)
{
    (void)user;
    tt_tensor *a = tt_custom_input(context, 0);
    tt_tensor *b = tt_custom_input(context, 1);
    const tt_real *dy = tt_custom_output_grad(context);
    tt_real *da = tt_custom_input_grad(context, 0);
    tt_real *db = tt_custom_input_grad(context, 1);
    for (size_t i = 0; i < tt_tensor_rows(a) * tt_tensor_cols(a); i++) {
        if (da != NULL)
            da[i] += dy[i] * tt_tensor_data(b)[i];
        if (db != NULL)
            db[i] += dy[i] * tt_tensor_data(a)[i];
    }
    return TT_OK;
}

/* Creates the op once; apply it with
 * tt_custom_op_apply(tape, multiply, (tt_tensor *[]){a, b}, 2). */
static tt_custom_op *new_multiply(tt_error *err)
{
    const tt_custom_op_def def = {.name = "multiply", .n_inputs = 2,
                                  .forward = multiply_forward, .backward = multiply_backward};
    return tt_custom_op_new(&def, err);
}
/* ---- end of README code ---- */

/* ---- Column normalisation, a custom op with three inputs and saved state ---- */

/* y[r,i] = gain[r]·x̂[r,i] + bias[r] with x̂[:,i] = (x[:,i] − μ_i)/√(σ²_i + eps),
 * where μ_i and σ²_i are the mean and the (population) variance of column i
 * of x, d × n: each sample, a column, is normalised over its d features. */
typedef struct column_norm_params {
    double eps;
} column_norm_params;

/* What forward keeps for backward: μ and 1/√(σ² + eps) of every column. */
typedef struct column_norm_saved {
    double *mean;
    double *inverse_std;
} column_norm_saved;

static tt_status column_norm_forward(tt_custom_context *context, void *user)
{
    const column_norm_params *params = user;
    tt_tensor *x = tt_custom_input(context, 0);
    tt_tensor *gain = tt_custom_input(context, 1);
    tt_tensor *bias = tt_custom_input(context, 2);
    const size_t d = tt_tensor_rows(x);
    const size_t n = tt_tensor_cols(x);
    tt_tensor *const per_row[2] = {gain, bias};
    const char *const per_row_names[2] = {"gain", "bias"};
    for (size_t k = 0; k < 2; k++) {
        if (tt_tensor_rows(per_row[k]) != d || tt_tensor_cols(per_row[k]) != 1) {
            tt_custom_fail(context, TT_ERR_SHAPE,
                           "%s is %zux%zu but x is %zux%zu; it must be %zux1", per_row_names[k],
                           tt_tensor_rows(per_row[k]), tt_tensor_cols(per_row[k]), d, n, d);
            return TT_ERR_SHAPE;
        }
    }

    tt_tensor *y = tt_custom_new_output(context, d, n);
    /* One block: the two pointers, then μ and 1/√(σ² + eps). */
    column_norm_saved *saved = tt_custom_save(context, sizeof *saved + 2 * n * sizeof(double));
    if (y == NULL || saved == NULL)
        return TT_ERR_NOMEM;
    saved->mean = (double *)(saved + 1);
    saved->inverse_std = saved->mean + n;

    const tt_real *xs = tt_tensor_data(x);
    for (size_t i = 0; i < n; i++) {
        double sum = 0;
        for (size_t r = 0; r < d; r++)
            sum += (double)xs[r * n + i];
        const double mean = sum / (double)d;
        double squares = 0;
        for (size_t r = 0; r < d; r++)
            squares += ((double)xs[r * n + i] - mean) * ((double)xs[r * n + i] - mean);
        saved->mean[i] = mean;
        saved->inverse_std[i] = 1 / sqrt(squares / (double)d + params->eps);
        for (size_t r = 0; r < d; r++) {
            const double normalised = ((double)xs[r * n + i] - mean) * saved->inverse_std[i];
            tt_tensor_data(y)[r * n + i] = (tt_real)((double)tt_tensor_data(gain)[r] * normalised +
                                                     (double)tt_tensor_data(bias)[r]);
        }
    }
    return TT_OK;
}

/* With g = dy·gain (the gradient of x̂) and s = 1/√(σ² + eps), per column:
 *     dx += (s/d)·(d·g − Σ_r g − x̂·Σ_r g·x̂),
 * dgain += Σ_i dy·x̂ and dbias += Σ_i dy. */
static tt_status column_norm_backward(tt_custom_context *context, void *user)
{
    (void)user;
    tt_tensor *x = tt_custom_input(context, 0);
    const tt_real *gain = tt_tensor_data(tt_custom_input(context, 1));
    const column_norm_saved *saved = tt_custom_saved(context);
    const tt_real *dy = tt_custom_output_grad(context);
    tt_real *dx = tt_custom_input_grad(context, 0);
    tt_real *dgain = tt_custom_input_grad(context, 1);
    tt_real *dbias = tt_custom_input_grad(context, 2);
    const size_t d = tt_tensor_rows(x);
    const size_t n = tt_tensor_cols(x);
    const tt_real *xs = tt_tensor_data(x);

    for (size_t i = 0; i < n; i++) {
        const double s = saved->inverse_std[i];
        double g_sum = 0;
        double g_dot = 0;
        for (size_t r = 0; r < d; r++) {
            const double normalised = ((double)xs[r * n + i] - saved->mean[i]) * s;
            const double g = (double)dy[r * n + i] * (double)gain[r];
            g_sum += g;
            g_dot += g * normalised;
            if (dgain != NULL)
                dgain[r] += (tt_real)((double)dy[r * n + i] * normalised);
            if (dbias != NULL)
                dbias[r] += dy[r * n + i];
        }
        if (dx == NULL)
            continue;
        for (size_t r = 0; r < d; r++) {
            const double normalised = ((double)xs[r * n + i] - saved->mean[i]) * s;
            const double g = (double)dy[r * n + i] * (double)gain[r];
            const double slope = (double)d * g - g_sum - normalised * g_dot;
            dx[r * n + i] += (tt_real)(s / (double)d * slope);
        }
    }
    return TT_OK;
}

static tt_custom_op *new_column_norm(column_norm_params *params)
{
    const tt_custom_op_def def = {.name = "column_norm", .n_inputs = 3,
                                  .forward = column_norm_forward,
                                  .backward = column_norm_backward, .user = params};
    tt_error err = {TT_OK, ""};
    tt_custom_op *op = tt_custom_op_new(&def, &err);
    ck_assert_msg(op != NULL, "tt_custom_op_new failed: %s", err.message);
    return op;
}

static tt_custom_op *new_multiply_or_fail(void)
{
    tt_error err = {TT_OK, ""};
    tt_custom_op *op = new_multiply(&err);
    ck_assert_msg(op != NULL, "tt_custom_op_new failed: %s", err.message);
    return op;
}

static tt_activation *new_activation_or_fail(const tt_activation_def *def)
{
    tt_error err = {TT_OK, ""};
    tt_activation *activation = tt_activation_new(def, &err);
    ck_assert_msg(activation != NULL, "tt_activation_new failed: %s", err.message);
    return activation;
}

/* Loss = Σ_j y_j as u·y·v with u and v of ones, so that dL/dy is 1
 * everywhere. */
static tt_tensor *sum_of(tt_tape *tape, tt_tensor *y, tt_tensor *ones_row, tt_tensor *ones_col)
{
    return tt_matmul(tape, tt_matmul(tape, ones_row, y), ones_col);
}

/* ---- Activations: values ----------------------------------------------------------- */

START_TEST(softsign_matches_hand_values)
{
    /* softsign(1) = 1/2 with slope 1/4; softsign(−3) = −3/4 with slope 1/16;
     * softsign(0) = 0 with slope 1; at ±1e30 the value is ±1 to rounding
     * and the slope 1e-60, which is 0 in float; at ±inf ±1 and 0; NaN stays
     * NaN. */
    tt_error err = {TT_OK, ""};
    tt_activation *g = new_softsign(&err);
    ck_assert_msg(g != NULL, "%s", err.message);
    ck_assert_str_eq(tt_activation_name(g), "softsign");
    const tt_real x_values[8] = {1, -3, 0, (tt_real)1e30, (tt_real)-1e30, INFINITY, -INFINITY,
                                 NAN};
    const double want[8] = {0.5, -0.75, 0, 1, -1, 1, -1, NAN};
    const double tiny = (double)(tt_real)1e-60;
    const double want_dx[8] = {0.25, 0.0625, 1, tiny, tiny, 0, 0, NAN};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, 8, x_values, "x");
    require_grad_or_fail(x);

    tt_tensor *y = tt_activation_apply(tape, g, x);
    ck_assert_ptr_nonnull(y);
    /* Backward from Σ y (NaN, but dL/dy is 1 everywhere regardless). */
    tt_tensor *ones = new_tensor_or_fail(8, 1, NULL, "ones");
    for (size_t i = 0; i < 8; i++)
        tt_tensor_data(ones)[i] = 1;
    ck_assert_int_eq(tt_tape_backward(tape, tt_matmul(tape, y, ones)), TT_OK);
    for (size_t i = 0; i < 8; i++) {
        const double got = (double)tt_tensor_data(y)[i];
        const double got_dx = (double)tt_tensor_grad(x)[i];
        if (isnan(want[i])) {
            ck_assert_msg(isnan(got) && isnan(got_dx), "softsign(NaN) = %g, slope %g", got,
                          got_dx);
            continue;
        }
        ck_assert_msg(is_close(got, want[i], 0, RTOL_REAL), "softsign(%g) = %.9g, want %.9g",
                      (double)x_values[i], got, want[i]);
        ck_assert_msg(is_close(got_dx, want_dx[i], 0, RTOL_REAL),
                      "softsign'(%g) = %.9g, want %.9g", (double)x_values[i], got_dx, want_dx[i]);
    }

    tt_tensor_free(ones);
    tt_tensor_free(x);
    tt_tape_free(tape);
    tt_activation_free(g);
}
END_TEST

static tt_real exponential(tt_real x)
{
    return (tt_real)exp(x);
}

/* exp' = exp, so as a function of the output it is y itself. */
static tt_real exponential_slope_from_output(tt_real y)
{
    return y;
}

START_TEST(derivative_from_output_receives_output)
{
    /* dL/dx = 1·f'(y) = y exactly, which only holds if backward passes the
     * output y, not x. */
    const tt_activation_def def = {.name = "exp", .function = exponential,
                                   .derivative_from_output = exponential_slope_from_output};
    tt_activation *g = new_activation_or_fail(&def);
    const tt_real x_values[4] = {-2, 0, 0.5f, 3};
    const tt_real ones_values[4] = {1, 1, 1, 1};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, 4, x_values, "x");
    tt_tensor *ones = new_tensor_or_fail(4, 1, ones_values, "ones");
    require_grad_or_fail(x);

    tt_tensor *y = tt_activation_apply(tape, g, x);
    ck_assert_int_eq(tt_tape_backward(tape, tt_matmul(tape, y, ones)), TT_OK);
    assert_all_equal("dL/dx", tt_tensor_grad(x), tt_tensor_data(y), 4);

    tt_tensor_free(x);
    tt_tensor_free(ones);
    tt_tape_free(tape);
    tt_activation_free(g);
}
END_TEST

/* ---- Activations: gradients -------------------------------------------------------- */

typedef struct activation_context {
    const tt_activation *activation;
    const loss_head *head;
} activation_context;

static tt_tensor *activation_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                                  void *context)
{
    const activation_context *ctx = context;
    (void)n_tensors;
    return apply_loss_head(tape, ctx->head, tt_activation_apply(tape, ctx->activation,
                                                                tensors[0]));
}

static tt_real tanh_of(tt_real x)
{
    return (tt_real)tanh(x);
}

static tt_real tanh_slope_from_output(tt_real y)
{
    return 1 - y * y;
}

START_TEST(custom_activations_pass_gradcheck)
{
    /* softsign with f'(x), and tanh with f' written through y as 1 − y². */
    tt_error err = {TT_OK, ""};
    tt_activation *activations[2] = {new_softsign(&err), NULL};
    ck_assert_msg(activations[0] != NULL, "%s", err.message);
    const tt_activation_def tanh_def = {.name = "tanh_from_output", .function = tanh_of,
                                        .derivative_from_output = tanh_slope_from_output};
    activations[1] = new_activation_or_fail(&tanh_def);

    for (size_t a = 0; a < 2; a++) {
        for (uint64_t seed = 1; seed <= CHECK_SEEDS; seed++) {
            tt_rng rng;
            tt_rng_seed(&rng, seed);
            tt_tensor *x = new_tensor_or_fail(CHECK_ROWS, CHECK_COLS, NULL, "x");
            tt_tensor_fill_normal(x, &rng, 0, 2);
            require_grad_or_fail(x);
            loss_head head = new_loss_head(CHECK_ROWS, CHECK_COLS, &rng);
            activation_context context = {activations[a], &head};

            char what[64];
            snprintf(what, sizeof what, "%s, seed %llu", tt_activation_name(activations[a]),
                     (unsigned long long)seed);
            assert_gradcheck_passes(what, activation_loss, &context, &x, 1,
                                    CHECK_ROWS * CHECK_COLS);
            free_loss_head(&head);
            tt_tensor_free(x);
        }
    }
    tt_activation_free(activations[0]);
    tt_activation_free(activations[1]);
}
END_TEST

/* clip(x) = min(1, max(−1, x)), with kinks at −1 and 1. The slope at a kink
 * is that of the side the checker uses, "x > k or not": 1 at x = 1 and 0 at
 * x = −1. */
static tt_real clip(tt_real x)
{
    if (x < -1)
        return -1;
    if (x > 1)
        return 1;
    return x;
}

static tt_real clip_slope(tt_real x)
{
    return x > -1 && !(x > 1) ? 1 : 0;
}

/* Runs tt_gradcheck on clip over x = [−1, 1, −0.5, 0.25, 2, −3] (1 × 6),
 * through a loss head, and returns the result. */
static tt_gradcheck_result check_clip(const tt_activation *activation)
{
    const tt_real x_values[6] = {-1, 1, -0.5f, 0.25f, 2, -3};
    tt_rng rng;
    tt_rng_seed(&rng, 5);
    tt_tensor *x = new_tensor_or_fail(1, 6, x_values, "x");
    require_grad_or_fail(x);
    loss_head head = new_loss_head(1, 6, &rng);
    activation_context context = {activation, &head};
    tt_gradcheck_result result;
    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_gradcheck(activation_loss, &context, &x, 1, NULL, &result, &err), TT_OK);
    free_loss_head(&head);
    tt_tensor_free(x);
    return result;
}

START_TEST(declared_kinks_are_excluded_by_gradcheck)
{
    /* The elements at exactly −1 and 1 are moved across a kink, so with
     * the kinks declared they are excluded and the other four pass. The
     * same functions without the kinks fail there: the difference across
     * a kink measures neither slope. */
    const tt_real kinks[2] = {-1, 1};
    const tt_activation_def with_kinks = {.name = "clip", .function = clip,
                                          .derivative = clip_slope, .kinks = kinks,
                                          .n_kinks = 2};
    const tt_activation_def without_kinks = {.name = "clip", .function = clip,
                                             .derivative = clip_slope};
    tt_activation *declared = new_activation_or_fail(&with_kinks);
    tt_activation *undeclared = new_activation_or_fail(&without_kinks);

    const tt_gradcheck_result excluded = check_clip(declared);
    ck_assert_msg(excluded.verdict == TT_GRADCHECK_PASSED, "%s", excluded.summary);
    ck_assert_uint_eq(excluded.n_kinks, 2);
    ck_assert_uint_eq(excluded.n_compared, 4);

    const tt_gradcheck_result compared = check_clip(undeclared);
    ck_assert_msg(compared.verdict == TT_GRADCHECK_FAILED, "%s", compared.summary);
    ck_assert_uint_eq(compared.n_kinks, 0);

    tt_activation_free(declared);
    tt_activation_free(undeclared);
}
END_TEST

START_TEST(custom_activation_backward_into_tape_tensor)
{
    /* g applied twice to one tape tensor t = x + 0: dL/dt = 2·g'(t), which
     * reaches x unchanged, exactly twice one application's gradient. */
    tt_error err = {TT_OK, ""};
    tt_activation *g = new_softsign(&err);
    ck_assert_ptr_nonnull(g);
    const tt_real x_values[3] = {-2, 0.5f, 3};
    const tt_real zero = 0;
    tt_tensor *x = new_tensor_or_fail(1, 3, x_values, "x");
    tt_tensor *z = new_tensor_or_fail(1, 1, &zero, "zero");
    tt_tensor *row = new_tensor_or_fail(1, 1, NULL, "row");
    tt_tensor *col = new_tensor_or_fail(3, 1, NULL, "col");
    tt_tensor_data(row)[0] = 1;
    for (size_t i = 0; i < 3; i++)
        tt_tensor_data(col)[i] = 1;
    require_grad_or_fail(x);

    tt_tape *tape = new_tape_or_fail();
    ck_assert_int_eq(tt_tape_backward(tape, sum_of(tape, tt_activation_apply(tape, g, x), row,
                                                   col)),
                     TT_OK);
    tt_real once[3];
    for (size_t i = 0; i < 3; i++)
        once[i] = 2 * tt_tensor_grad(x)[i];

    tt_tensor_zero_grad(x);
    tt_tape_reset(tape);
    tt_tensor *t = tt_add(tape, x, z);
    tt_tensor *y = tt_add(tape, tt_activation_apply(tape, g, t), tt_activation_apply(tape, g, t));
    ck_assert_int_eq(tt_tape_backward(tape, sum_of(tape, y, row, col)), TT_OK);
    assert_all_equal("dL/dx from two uses", tt_tensor_grad(x), once, 3);

    tt_tensor_free(x);
    tt_tensor_free(z);
    tt_tensor_free(row);
    tt_tensor_free(col);
    tt_tape_free(tape);
    tt_activation_free(g);
}
END_TEST

/* ---- Activations: errors ------------------------------------------------------------- */

static void assert_activation_rejected(const tt_activation_def *def, const char *message)
{
    tt_error err = {TT_OK, ""};
    ck_assert_ptr_null(tt_activation_new(def, &err));
    ck_assert_int_eq(err.status, TT_ERR_ARG);
    ck_assert_str_eq(err.message, message);
}

START_TEST(activation_new_rejects_bad_definitions)
{
    const tt_real bad_kink[1] = {NAN};
    const tt_activation_def no_name = {.function = clip, .derivative = clip_slope};
    const tt_activation_def empty_name = {.name = "", .function = clip, .derivative = clip_slope};
    const tt_activation_def no_function = {.name = "clip", .derivative = clip_slope};
    const tt_activation_def no_derivative = {.name = "clip", .function = clip};
    const tt_activation_def two_derivatives = {.name = "clip", .function = clip,
                                               .derivative = clip_slope,
                                               .derivative_from_output = clip_slope};
    const tt_activation_def null_kinks = {.name = "clip", .function = clip,
                                          .derivative = clip_slope, .n_kinks = 1};
    const tt_activation_def nan_kink = {.name = "clip", .function = clip,
                                        .derivative = clip_slope, .kinks = bad_kink,
                                        .n_kinks = 1};

    assert_activation_rejected(NULL, "tt_activation_new: def is NULL");
    assert_activation_rejected(&no_name, "tt_activation_new: the name is NULL or empty");
    assert_activation_rejected(&empty_name, "tt_activation_new: the name is NULL or empty");
    assert_activation_rejected(&no_function,
                               "tt_activation_new: the function is NULL in the definition of "
                               "clip");
    assert_activation_rejected(&no_derivative,
                               "tt_activation_new: exactly one of derivative and "
                               "derivative_from_output must be given in the definition of clip");
    assert_activation_rejected(&two_derivatives,
                               "tt_activation_new: exactly one of derivative and "
                               "derivative_from_output must be given in the definition of clip");
    assert_activation_rejected(&null_kinks,
                               "tt_activation_new: kinks is NULL but n_kinks is not 0 in the "
                               "definition of clip");
    assert_activation_rejected(&nan_kink,
                               "tt_activation_new: a kink is NaN or infinite in the definition "
                               "of clip");
}
END_TEST

START_TEST(activation_errors_name_the_activation)
{
    tt_error err = {TT_OK, ""};
    tt_activation *g = new_softsign(&err);
    ck_assert_ptr_nonnull(g);
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, 3, NULL, "x");

    ck_assert_ptr_null(tt_activation_apply(tape, g, NULL));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "softsign: x is NULL");

    tt_tape_reset(tape);
    ck_assert_ptr_null(tt_activation_apply(tape, NULL, x));
    ck_assert_str_eq(tt_tape_error(tape)->message, "tt_activation_apply: activation is NULL");

    /* The output is labelled "softsign@0" in a later op's error. */
    tt_tape_reset(tape);
    ck_assert_ptr_null(tt_matmul(tape, tt_activation_apply(tape, g, x), x));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_SHAPE);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "matmul: A (softsign@0) is 1x3 but B (x) is 1x3; the columns of A must "
                     "equal the rows of B");

    tt_tensor_free(x);
    tt_tape_free(tape);
    tt_activation_free(g);
    tt_activation_free(NULL);
}
END_TEST

/* ---- Ops: multiply (the README's example) --------------------------------------------- */

START_TEST(multiply_matches_hand_values)
{
    /* y = a ⊙ b = [2, −6, 0.5]; loss Σ y gives da = b and db = a. */
    const tt_real a_values[3] = {1, 2, -0.5f};
    const tt_real b_values[3] = {2, -3, -1};
    const tt_real want_y[3] = {2, -6, 0.5f};
    const tt_real ones_values[3] = {1, 1, 1};
    tt_custom_op *multiply = new_multiply_or_fail();
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(1, 3, a_values, "a");
    tt_tensor *b = new_tensor_or_fail(1, 3, b_values, "b");
    tt_tensor *one = new_tensor_or_fail(1, 1, ones_values, "one");
    tt_tensor *ones = new_tensor_or_fail(3, 1, ones_values, "ones");
    require_grad_or_fail(a);
    require_grad_or_fail(b);

    tt_tensor *y = tt_custom_op_apply(tape, multiply, (tt_tensor *[]){a, b}, 2);
    ck_assert_msg(y != NULL, "%s", tt_tape_error(tape)->message);
    assert_all_equal("y", tt_tensor_data(y), want_y, 3);
    ck_assert_int_eq(tt_tape_backward(tape, sum_of(tape, y, one, ones)), TT_OK);
    assert_all_equal("dL/da", tt_tensor_grad(a), b_values, 3);
    assert_all_equal("dL/db", tt_tensor_grad(b), a_values, 3);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tensor_free(one);
    tt_tensor_free(ones);
    tt_tape_free(tape);
    tt_custom_op_free(multiply);
}
END_TEST

START_TEST(multiply_of_tape_tensor_with_itself)
{
    /* t = x + 0 is a tape tensor whose gradient starts pending; y = t ⊙ t
     * adds dy·t twice into it, so dL/dx = 2x. The first request for the
     * gradient zeroes it, the second must not. */
    const tt_real x_values[3] = {1, -2, 3};
    const tt_real want[3] = {2, -4, 6};
    const tt_real ones_values[3] = {1, 1, 1};
    tt_custom_op *multiply = new_multiply_or_fail();
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, 3, x_values, "x");
    tt_tensor *zero = new_tensor_or_fail(1, 1, NULL, "zero");
    tt_tensor *one = new_tensor_or_fail(1, 1, ones_values, "one");
    tt_tensor *ones = new_tensor_or_fail(3, 1, ones_values, "ones");
    require_grad_or_fail(x);

    for (int step = 0; step < 2; step++) {
        /* The second step reuses the arena, whose gradient memory still
         * contains the first step's values, so only the zeroing makes it
         * right. */
        tt_tape_reset(tape);
        tt_tensor_zero_grad(x);
        tt_tensor *t = tt_add(tape, x, zero);
        tt_tensor *y = tt_custom_op_apply(tape, multiply, (tt_tensor *[]){t, t}, 2);
        ck_assert_int_eq(tt_tape_backward(tape, sum_of(tape, y, one, ones)), TT_OK);
        assert_all_equal("dL/dx", tt_tensor_grad(x), want, 3);
    }

    tt_tensor_free(x);
    tt_tensor_free(zero);
    tt_tensor_free(one);
    tt_tensor_free(ones);
    tt_tape_free(tape);
    tt_custom_op_free(multiply);
}
END_TEST

/* ---- Ops: column normalisation --------------------------------------------------------- */

START_TEST(column_norm_matches_hand_values)
{
    /* x = [1 5; 3 5], gain [2; 3], bias [1; −1], eps = 3.
     * Column 0: μ = 2, σ² = 1, s = 1/√4 = 1/2, x̂ = [−1/2, 1/2],
     *   y = [2·(−1/2) + 1, 3·(1/2) − 1] = [0, 1/2].
     * Column 1: μ = 5, σ² = 0, s = 1/√3, x̂ = [0, 0], y = bias = [1, −1].
     * Loss u·y·v with u = [1 0], v = [1; 1]: dy = [1 1; 0 0].
     *   dbias = Σ_i dy = [2; 0]; dgain = Σ_i dy·x̂ = [−1/2; 0].
     *   g = dy·gain = [2 2; 0 0].
     *   Column 0: Σg = 2, Σg·x̂ = −1, dx = (1/2)/2·([4, 0] − 2 − x̂·(−1))
     *           = (1/4)·[1.5, −1.5] = [0.375, −0.375].
     *   Column 1: Σg = 2, Σg·x̂ = 0, dx = (1/√3)/2·([4, 0] − 2) = ±1/√3. */
    column_norm_params params = {3};
    tt_custom_op *norm = new_column_norm(&params);
    const tt_real x_values[4] = {1, 5, 3, 5};
    const tt_real gain_values[2] = {2, 3};
    const tt_real bias_values[2] = {1, -1};
    const tt_real u_values[2] = {1, 0};
    const tt_real v_values[2] = {1, 1};
    const double want_y[4] = {0, 1, 0.5, -1};
    const double want_dx[4] = {0.375, 1 / sqrt(3.0), -0.375, -1 / sqrt(3.0)};
    const double want_dgain[2] = {-0.5, 0};
    const double want_dbias[2] = {2, 0};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(2, 2, x_values, "x");
    tt_tensor *gain = new_tensor_or_fail(2, 1, gain_values, "gain");
    tt_tensor *bias = new_tensor_or_fail(2, 1, bias_values, "bias");
    tt_tensor *u = new_tensor_or_fail(1, 2, u_values, "u");
    tt_tensor *v = new_tensor_or_fail(2, 1, v_values, "v");
    require_grad_or_fail(x);
    require_grad_or_fail(gain);
    require_grad_or_fail(bias);

    tt_tensor *y = tt_custom_op_apply(tape, norm, (tt_tensor *[]){x, gain, bias}, 3);
    ck_assert_msg(y != NULL, "%s", tt_tape_error(tape)->message);
    ck_assert_uint_eq(tt_tape_length(tape), 1);
    assert_all_close("y", tt_tensor_data(y), want_y, 2, 2, RTOL_REAL, RTOL_REAL);
    ck_assert_int_eq(tt_tape_backward(tape, sum_of(tape, y, u, v)), TT_OK);
    assert_all_close("dL/dx", tt_tensor_grad(x), want_dx, 2, 2, RTOL_REAL, RTOL_REAL);
    assert_all_close("dL/dgain", tt_tensor_grad(gain), want_dgain, 2, 1, RTOL_REAL, RTOL_REAL);
    assert_all_close("dL/dbias", tt_tensor_grad(bias), want_dbias, 2, 1, RTOL_REAL, RTOL_REAL);

    tt_tensor_free(x);
    tt_tensor_free(gain);
    tt_tensor_free(bias);
    tt_tensor_free(u);
    tt_tensor_free(v);
    tt_tape_free(tape);
    tt_custom_op_free(norm);
}
END_TEST

/* A user-defined op of the checked tensors, under a loss head. */
typedef struct op_head_context {
    const tt_custom_op *op;
    const loss_head *head;
} op_head_context;

static tt_tensor *op_head_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                               void *context)
{
    const op_head_context *ctx = context;
    return apply_loss_head(tape, ctx->head,
                           tt_custom_op_apply(tape, ctx->op, tensors, n_tensors));
}

START_TEST(column_norm_passes_gradcheck)
{
    column_norm_params params = {1e-3};
    tt_custom_op *norm = new_column_norm(&params);
    for (uint64_t seed = 1; seed <= CHECK_SEEDS; seed++) {
        tt_rng rng;
        tt_rng_seed(&rng, seed);
        tt_tensor *x = new_tensor_or_fail(CHECK_ROWS, CHECK_COLS, NULL, "x");
        tt_tensor_fill_normal(x, &rng, 1, 2);
        tt_tensor *gain = new_uniform_tensor(CHECK_ROWS, 1, &rng, 0.5, 2, "gain");
        tt_tensor *bias = new_uniform_tensor(CHECK_ROWS, 1, &rng, -1, 1, "bias");
        require_grad_or_fail(x);
        require_grad_or_fail(gain);
        require_grad_or_fail(bias);
        loss_head head = new_loss_head(CHECK_ROWS, CHECK_COLS, &rng);
        op_head_context context = {norm, &head};
        tt_tensor *tensors[3] = {x, gain, bias};

        char what[64];
        snprintf(what, sizeof what, "column_norm, seed %llu", (unsigned long long)seed);
        assert_gradcheck_passes(what, op_head_loss, &context, tensors, 3,
                                CHECK_ROWS * CHECK_COLS + 2 * CHECK_ROWS);
        free_loss_head(&head);
        tt_tensor_free(x);
        tt_tensor_free(gain);
        tt_tensor_free(bias);
    }
    tt_custom_op_free(norm);
}
END_TEST

/* ---- Ops: kinks -------------------------------------------------------------------------- */

/* y = |x|, with slope 1 for x > 0 and −1 elsewhere, so that at exactly 0 the
 * analytic slope −1 differs from the central difference 0. */
static tt_status absolute_forward(tt_custom_context *context, void *user)
{
    (void)user;
    tt_tensor *x = tt_custom_input(context, 0);
    tt_tensor *y = tt_custom_new_output(context, tt_tensor_rows(x), tt_tensor_cols(x));
    if (y == NULL)
        return TT_ERR_NOMEM;
    for (size_t i = 0; i < tt_tensor_rows(x) * tt_tensor_cols(x); i++)
        tt_tensor_data(y)[i] = (tt_real)fabs(tt_tensor_data(x)[i]);
    return TT_OK;
}

static tt_status absolute_backward(tt_custom_context *context, void *user)
{
    (void)user;
    tt_tensor *x = tt_custom_input(context, 0);
    const tt_real *dy = tt_custom_output_grad(context);
    tt_real *dx = tt_custom_input_grad(context, 0);
    for (size_t i = 0; dx != NULL && i < tt_tensor_rows(x) * tt_tensor_cols(x); i++)
        dx[i] += tt_tensor_data(x)[i] > 0 ? dy[i] : -dy[i];
    return TT_OK;
}

/* Whether an element of x is on different sides of 0 (x > 0 or not) in the
 * two runs. Counts its calls in *user, and checks that the kink test
 * cannot create outputs or record errors. */
static bool absolute_crosses_kink(const tt_custom_context *base, const tt_custom_context *moved,
                                  void *user)
{
    size_t *calls = user;
    (*calls)++;
    tt_tensor *base_x = tt_custom_input(base, 0);
    tt_tensor *moved_x = tt_custom_input(moved, 0);
    ck_assert_ptr_nonnull(tt_custom_output(base));
    ck_assert_ptr_null(tt_custom_new_output((tt_custom_context *)base, 1, 1));
    tt_custom_fail((tt_custom_context *)base, TT_ERR_STATE, "must not be recorded");
    for (size_t i = 0; i < tt_tensor_rows(base_x) * tt_tensor_cols(base_x); i++)
        if ((tt_tensor_data(base_x)[i] > 0) != (tt_tensor_data(moved_x)[i] > 0))
            return true;
    return false;
}

/* Runs tt_gradcheck on |x| for x = [0, −0.5, 0.75, 2] through a loss head. */
static tt_gradcheck_result check_absolute(tt_custom_kink_fn crosses_kink, size_t *calls)
{
    const tt_custom_op_def def = {.name = "absolute", .n_inputs = 1,
                                  .forward = absolute_forward, .backward = absolute_backward,
                                  .user = calls, .crosses_kink = crosses_kink};
    tt_error err = {TT_OK, ""};
    tt_custom_op *absolute = tt_custom_op_new(&def, &err);
    ck_assert_msg(absolute != NULL, "%s", err.message);
    const tt_real x_values[4] = {0, -0.5f, 0.75f, 2};
    tt_rng rng;
    tt_rng_seed(&rng, 9);
    tt_tensor *x = new_tensor_or_fail(1, 4, x_values, "x");
    require_grad_or_fail(x);
    loss_head head = new_loss_head(1, 4, &rng);
    op_head_context context = {absolute, &head};

    tt_gradcheck_result result;
    const tt_status status = tt_gradcheck(op_head_loss, &context, &x, 1, NULL, &result, &err);
    ck_assert_msg(status == TT_OK, "tt_gradcheck returned %s: %s", tt_status_str(status),
                  err.message);
    free_loss_head(&head);
    tt_tensor_free(x);
    tt_custom_op_free(absolute);
    return result;
}

START_TEST(custom_op_kink_test_is_used_by_gradcheck)
{
    /* The element at exactly 0 moves across the kink. With the kink test
     * it is excluded and the other three pass. Without it the checker
     * compares the slope −1 with the difference 0 and fails. The kink test
     * runs once per moved run, so twice per entry. */
    size_t calls = 0;
    const tt_gradcheck_result excluded = check_absolute(absolute_crosses_kink, &calls);
    ck_assert_msg(excluded.verdict == TT_GRADCHECK_PASSED, "%s", excluded.summary);
    ck_assert_uint_eq(excluded.n_kinks, 1);
    ck_assert_uint_eq(excluded.n_compared, 3);
    ck_assert_uint_eq(calls, 2 * 4);

    const tt_gradcheck_result compared = check_absolute(NULL, &calls);
    ck_assert_msg(compared.verdict == TT_GRADCHECK_FAILED, "%s", compared.summary);
    ck_assert_uint_eq(compared.n_kinks, 0);
    ck_assert_uint_eq(compared.worst.col, 0);
}
END_TEST

/* ---- Ops: errors ------------------------------------------------------------------------ */

START_TEST(column_norm_rejects_wrong_gain_shape)
{
    column_norm_params params = {1e-5};
    tt_custom_op *norm = new_column_norm(&params);
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(4, 6, NULL, "x");
    tt_tensor *gain = new_tensor_or_fail(3, 1, NULL, "gain");
    tt_tensor *bias = new_tensor_or_fail(4, 1, NULL, "bias");

    ck_assert_ptr_null(tt_custom_op_apply(tape, norm, (tt_tensor *[]){x, gain, bias}, 3));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_SHAPE);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "column_norm: gain is 3x1 but x is 4x6; it must be 4x1");
    ck_assert_uint_eq(tt_tape_length(tape), 0);
    /* Sticky: the next op does nothing. */
    ck_assert_ptr_null(tt_custom_op_apply(tape, norm, (tt_tensor *[]){x, bias, bias}, 3));
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "column_norm: gain is 3x1 but x is 4x6; it must be 4x1");

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_custom_op_apply(tape, norm, (tt_tensor *[]){x, bias, bias}, 3));
    assert_tape_ok(tape, "column_norm after the reset");

    tt_tensor_free(x);
    tt_tensor_free(gain);
    tt_tensor_free(bias);
    tt_tape_free(tape);
    tt_custom_op_free(norm);
}
END_TEST

START_TEST(custom_op_rejects_wrong_inputs)
{
    tt_custom_op *multiply = new_multiply_or_fail();
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(2, 3, NULL, "a");
    tt_tensor *b = new_tensor_or_fail(3, 2, NULL, "b");

    ck_assert_ptr_null(tt_custom_op_apply(tape, multiply, (tt_tensor *[]){a, b}, 2));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_SHAPE);
    ck_assert_str_eq(tt_tape_error(tape)->message, "multiply: a is 2x3 but b is 3x2");

    tt_tape_reset(tape);
    ck_assert_ptr_null(tt_custom_op_apply(tape, multiply, (tt_tensor *[]){a}, 1));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "multiply: 1 inputs given but the op takes 2");

    tt_tape_reset(tape);
    ck_assert_ptr_null(tt_custom_op_apply(tape, multiply, (tt_tensor *[]){a, NULL}, 2));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "multiply: input 1 is NULL");

    tt_tape_reset(tape);
    ck_assert_ptr_null(tt_custom_op_apply(tape, multiply, NULL, 2));
    ck_assert_str_eq(tt_tape_error(tape)->message, "multiply: the inputs array is NULL");

    tt_tape_reset(tape);
    ck_assert_ptr_null(tt_custom_op_apply(tape, NULL, (tt_tensor *[]){a, a}, 2));
    ck_assert_str_eq(tt_tape_error(tape)->message, "tt_custom_op_apply: op is NULL");

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
    tt_custom_op_free(multiply);
}
END_TEST

/* Callbacks that misbehave, one way each. */
static tt_status fail_without_message(tt_custom_context *context, void *user)
{
    (void)context;
    (void)user;
    return TT_ERR_RANGE;
}

static tt_status return_without_output(tt_custom_context *context, void *user)
{
    (void)context;
    (void)user;
    return TT_OK;
}

static tt_status create_two_outputs(tt_custom_context *context, void *user)
{
    (void)user;
    tt_custom_new_output(context, 1, 1);
    tt_custom_new_output(context, 1, 1);
    return TT_OK;
}

static tt_status create_empty_output(tt_custom_context *context, void *user)
{
    (void)user;
    return tt_custom_new_output(context, 0, 3) == NULL ? TT_ERR_ARG : TT_OK;
}

/* Records a relu on the tape passed as `user`, which a callback must not. */
static tt_status record_an_op(tt_custom_context *context, void *user)
{
    tt_custom_new_output(context, 1, 1);
    tt_relu(user, tt_custom_input(context, 0));
    return TT_OK;
}

static tt_status copy_forward(tt_custom_context *context, void *user)
{
    (void)user;
    tt_tensor *x = tt_custom_input(context, 0);
    tt_tensor *y = tt_custom_new_output(context, tt_tensor_rows(x), tt_tensor_cols(x));
    if (y == NULL)
        return TT_ERR_NOMEM;
    memcpy(tt_tensor_data(y), tt_tensor_data(x),
           tt_tensor_rows(x) * tt_tensor_cols(x) * sizeof(tt_real));
    return TT_OK;
}

static tt_status fail_backward(tt_custom_context *context, void *user)
{
    (void)user;
    tt_custom_fail(context, TT_ERR_NUMERIC, "the gradient at (%d, %d) is not finite", 0, 1);
    return TT_ERR_NUMERIC;
}

/* Returns a value that is not a tt_status, as a careless callback might. */
static tt_status return_42(tt_custom_context *context, void *user)
{
    (void)context;
    (void)user;
    return (tt_status)42;
}

static tt_status return_minus_1(tt_custom_context *context, void *user)
{
    (void)context;
    (void)user;
    return (tt_status)-1;
}

/* Applies a one-input op with the given forward and backward to a 1 × 2
 * tensor and returns the tape's status and, in `message`, its error. */
static tt_status run_one_input_op(tt_custom_fn forward, tt_custom_fn backward, bool run_backward,
                                  char message[TT_ERROR_MESSAGE_MAX])
{
    tt_tape *tape = new_tape_or_fail();
    const tt_custom_op_def def = {.name = "faulty", .n_inputs = 1, .forward = forward,
                                  .backward = backward, .user = tape};
    tt_error err = {TT_OK, ""};
    tt_custom_op *op = tt_custom_op_new(&def, &err);
    ck_assert_msg(op != NULL, "%s", err.message);
    tt_tensor *x = new_tensor_or_fail(1, 2, NULL, "x");
    tt_tensor *ones = new_tensor_or_fail(2, 1, NULL, "ones");
    require_grad_or_fail(x);

    tt_tensor *y = tt_custom_op_apply(tape, op, (tt_tensor *[]){x}, 1);
    if (y == NULL)
        ck_assert_uint_eq(tt_tape_length(tape), 0);
    tt_status status = tt_tape_status(tape);
    if (y != NULL && run_backward)
        status = tt_tape_backward(tape, tt_matmul(tape, y, ones));
    snprintf(message, TT_ERROR_MESSAGE_MAX, "%s", tt_tape_error(tape)->message);

    tt_tensor_free(x);
    tt_tensor_free(ones);
    tt_tape_free(tape);
    tt_custom_op_free(op);
    return status;
}

/* A backward that passes no gradient on, as for an op whose output does
 * not depend on its input in a differentiable way. */
static tt_status ignore_backward(tt_custom_context *context, void *user)
{
    (void)context;
    (void)user;
    return TT_OK;
}

START_TEST(input_gradient_left_alone_by_backward_reads_zero)
{
    /* x's gradient buffer contains NaN from before tt_tensor_zero_grad, and
     * the op's backward never requests it. So anomaly mode and the caller
     * must both read zeros there, not the NaN. */
    tt_tape *tape = new_tape_or_fail();
    const tt_custom_op_def def = {.name = "detach", .n_inputs = 1, .forward = copy_forward,
                                  .backward = ignore_backward};
    tt_error err = {TT_OK, ""};
    tt_custom_op *op = tt_custom_op_new(&def, &err);
    ck_assert_msg(op != NULL, "%s", err.message);
    tt_tensor *x = new_tensor_or_fail(1, 2, NULL, "x");
    tt_tensor *ones = new_tensor_or_fail(2, 1, NULL, "ones");
    require_grad_or_fail(x);
    tt_tensor_grad(x)[0] = NAN;
    tt_tensor_grad(x)[1] = NAN;
    tt_tensor_zero_grad(x);
    ck_assert_int_eq(tt_tape_set_anomaly_check(tape, true), TT_OK);

    tt_tensor *y = tt_custom_op_apply(tape, op, (tt_tensor *[]){x}, 1);
    ck_assert_int_eq(tt_tape_backward(tape, tt_matmul(tape, y, ones)), TT_OK);

    const tt_real zeros[2] = {0, 0};
    assert_all_equal("dx", tt_tensor_grad(x), zeros, 2);

    tt_tensor_free(x);
    tt_tensor_free(ones);
    tt_tape_free(tape);
    tt_custom_op_free(op);
}
END_TEST

START_TEST(custom_op_reports_callback_failures)
{
    char message[TT_ERROR_MESSAGE_MAX];

    ck_assert_int_eq(run_one_input_op(fail_without_message, fail_backward, false, message),
                     TT_ERR_RANGE);
    ck_assert_str_eq(message,
                     "faulty: the forward callback failed with status 'value out of range'");

    ck_assert_int_eq(run_one_input_op(return_without_output, fail_backward, false, message),
                     TT_ERR_STATE);
    ck_assert_str_eq(message, "faulty: the forward callback returned TT_OK without creating an "
                              "output; it must call tt_custom_new_output");

    ck_assert_int_eq(run_one_input_op(create_two_outputs, fail_backward, false, message),
                     TT_ERR_STATE);
    ck_assert_str_eq(message,
                     "faulty: tt_custom_new_output was called twice; call it once, in forward");

    ck_assert_int_eq(run_one_input_op(create_empty_output, fail_backward, false, message),
                     TT_ERR_ARG);
    ck_assert_str_eq(message, "faulty: invalid output shape 0x3; both sizes must be at least 1 "
                              "and their product must fit in memory");

    ck_assert_int_eq(run_one_input_op(record_an_op, fail_backward, false, message),
                     TT_ERR_STATE);
    ck_assert_str_eq(message, "faulty: the forward callback recorded ops on the tape; a "
                              "callback must compute with the tensors' data only");

    ck_assert_int_eq(run_one_input_op(copy_forward, fail_backward, true, message),
                     TT_ERR_NUMERIC);
    ck_assert_str_eq(message, "faulty: the gradient at (0, 1) is not finite");
}
END_TEST

START_TEST(custom_op_maps_unknown_status)
{
    char message[TT_ERROR_MESSAGE_MAX];

    ck_assert_int_eq(run_one_input_op(return_42, fail_backward, false, message), TT_ERR_STATE);
    ck_assert_str_eq(message, "faulty: the forward callback returned 42, which is not a "
                              "tt_status; it must return TT_OK or a failure status such as "
                              "TT_ERR_ARG");

    ck_assert_int_eq(run_one_input_op(return_minus_1, fail_backward, false, message),
                     TT_ERR_STATE);
    ck_assert_str_eq(message, "faulty: the forward callback returned -1, which is not a "
                              "tt_status; it must return TT_OK or a failure status such as "
                              "TT_ERR_ARG");

    ck_assert_int_eq(run_one_input_op(copy_forward, return_42, true, message), TT_ERR_STATE);
    ck_assert_str_eq(message, "faulty: the backward callback returned 42, which is not a "
                              "tt_status; it must return TT_OK or a failure status such as "
                              "TT_ERR_ARG");
}
END_TEST

START_TEST(custom_op_new_rejects_bad_definitions)
{
    const tt_custom_op_def no_name = {.n_inputs = 1, .forward = copy_forward,
                                      .backward = fail_backward};
    const tt_custom_op_def no_backward = {.name = "copy", .n_inputs = 1, .forward = copy_forward};
    const tt_custom_op_def no_inputs = {.name = "copy", .forward = copy_forward,
                                        .backward = fail_backward};
    const tt_custom_op_def too_many = {.name = "copy", .n_inputs = TT_CUSTOM_MAX_INPUTS + 1,
                                       .forward = copy_forward, .backward = fail_backward};
    tt_error err = {TT_OK, ""};

    ck_assert_ptr_null(tt_custom_op_new(NULL, &err));
    ck_assert_str_eq(err.message, "tt_custom_op_new: def is NULL");
    ck_assert_ptr_null(tt_custom_op_new(&no_name, &err));
    ck_assert_str_eq(err.message, "tt_custom_op_new: the name is NULL or empty");
    ck_assert_ptr_null(tt_custom_op_new(&no_backward, &err));
    ck_assert_str_eq(err.message, "tt_custom_op_new: the forward or the backward callback is "
                                  "NULL in the definition of copy");
    ck_assert_ptr_null(tt_custom_op_new(&no_inputs, &err));
    ck_assert_str_eq(err.message,
                     "tt_custom_op_new: n_inputs is 0 in the definition of copy; it must be "
                     "from 1 to 8");
    ck_assert_ptr_null(tt_custom_op_new(&too_many, &err));
    ck_assert_int_eq(err.status, TT_ERR_ARG);
    ck_assert_str_eq(err.message,
                     "tt_custom_op_new: n_inputs is 9 in the definition of copy; it must be "
                     "from 1 to 8");
    tt_custom_op_free(NULL);
}
END_TEST

/* ---- README examples ------------------------------------------------------------------ */

/* Marks the README's code blocks that must equal this file's blocks. */
#define README_MARKER "<!-- The same code is compiled and run by tests/test_custom.c. -->\n```c\n"
#define README_BLOCK_END "```\n"
#define SOURCE_MARKER_START "/* ---- README: "
#define SOURCE_MARKER_END "/* ---- end of README code ---- */\n"

/* Returns the contents of the file at `path`, NUL-terminated, failing the
 * test if it cannot be read. The caller frees it. */
static char *read_file(const char *path)
{
    FILE *file = fopen(path, "rb");
    ck_assert_msg(file != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(file, 0, SEEK_END), 0);
    const long size = ftell(file);
    ck_assert_msg(size >= 0, "cannot size %s", path);
    rewind(file);
    char *text = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(fread(text, 1, (size_t)size, file), (size_t)size);
    text[size] = '\0';
    fclose(file);
    return text;
}

START_TEST(readme_examples_are_this_files_code)
{
    /* Each marked block of the README, in order, must be the text between
     * a "README:" line of this file and the next end line, so that the
     * code the README shows is the code compiled and tested here. */
    char *readme = read_file(TT_TEST_SOURCE_ROOT "/README.md");
    char *source = read_file(TT_TEST_SOURCE_ROOT "/tests/test_custom.c");
    const char *readme_at = readme;
    const char *source_at = source;
    size_t n_blocks = 0;
    for (;;) {
        const char *readme_block = strstr(readme_at, README_MARKER);
        const char *source_block = strstr(source_at, "\n" SOURCE_MARKER_START);
        if (readme_block == NULL || source_block == NULL) {
            ck_assert_msg(readme_block == NULL && source_block == NULL,
                          "the README has %s marked code blocks than tests/test_custom.c",
                          readme_block == NULL ? "fewer" : "more");
            break;
        }
        readme_block += strlen(README_MARKER);
        source_block = strchr(source_block + 1, '\n') + 1;
        const char *readme_end = strstr(readme_block, "\n" README_BLOCK_END);
        const char *source_end = strstr(source_block, SOURCE_MARKER_END);
        ck_assert_ptr_nonnull(readme_end);
        ck_assert_ptr_nonnull(source_end);
        readme_end++;
        const size_t length = (size_t)(readme_end - readme_block);
        ck_assert_msg(length == (size_t)(source_end - source_block) &&
                          memcmp(readme_block, source_block, length) == 0,
                      "README code block %zu differs from tests/test_custom.c", n_blocks + 1);
        n_blocks++;
        readme_at = readme_end;
        source_at = source_end;
    }
    ck_assert_uint_eq(n_blocks, 2);
    free(readme);
    free(source);
}
END_TEST

static Suite *custom_suite(void)
{
    Suite *suite = suite_create("custom");

    TCase *activation = add_test_case(suite, "activation");
    tcase_add_test(activation, softsign_matches_hand_values);
    tcase_add_test(activation, derivative_from_output_receives_output);
    tcase_add_test(activation, custom_activations_pass_gradcheck);
    tcase_add_test(activation, declared_kinks_are_excluded_by_gradcheck);
    tcase_add_test(activation, custom_activation_backward_into_tape_tensor);
    tcase_add_test(activation, activation_new_rejects_bad_definitions);
    tcase_add_test(activation, activation_errors_name_the_activation);

    TCase *op = add_test_case(suite, "op");
    tcase_add_test(op, multiply_matches_hand_values);
    tcase_add_test(op, multiply_of_tape_tensor_with_itself);
    tcase_add_test(op, column_norm_matches_hand_values);
    tcase_add_test(op, column_norm_passes_gradcheck);
    tcase_add_test(op, custom_op_kink_test_is_used_by_gradcheck);
    tcase_add_test(op, column_norm_rejects_wrong_gain_shape);
    tcase_add_test(op, custom_op_rejects_wrong_inputs);
    tcase_add_test(op, input_gradient_left_alone_by_backward_reads_zero);
    tcase_add_test(op, custom_op_reports_callback_failures);
    tcase_add_test(op, custom_op_maps_unknown_status);
    tcase_add_test(op, custom_op_new_rejects_bad_definitions);

    TCase *readme = add_test_case(suite, "readme");
    tcase_add_test(readme, readme_examples_are_this_files_code);

    return suite;
}

int main(void)
{
    return run_suite(custom_suite());
}
