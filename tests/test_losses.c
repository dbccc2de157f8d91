/* Losses: binary cross-entropy on logits (eq. 17–19) and mean squared
 * error (eq. 20–21), on hand-worked values, at extreme inputs, against
 * tt_gradcheck, and in the one-layer models they make: logistic
 * regression, checked against its closed-form gradient, and linear
 * regression. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"

/* Seeds of the gradient checks. */
#define CHECK_SEEDS 3

/* Largest finite tt_real. */
#define REAL_MAX (sizeof(tt_real) == sizeof(float) ? (double)FLT_MAX : DBL_MAX)

/* Features and samples of the logistic and linear regression tests. */
#define FEATURES 5
#define SAMPLES 7

static double reference_sigmoid(double x)
{
    return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

/* ---- bce_with_logits: values -------------------------------------------------- */

/* Records the loss of one logit z with label y, runs backward and checks
 * the loss and dL/dz against the wanted values (see is_close). */
static void check_single_bce(double z, int32_t y, double want_loss, double want_dz)
{
    const tt_real z_value = (tt_real)z;
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *logit = new_tensor_or_fail(1, 1, &z_value, "z");
    require_grad_or_fail(logit);

    tt_tensor *loss = tt_bce_with_logits(tape, logit, &y, 1);
    ck_assert_msg(loss != NULL, "bce_with_logits failed: %s", tt_tape_error(tape)->message);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    const double got_loss = (double)tt_tensor_data(loss)[0];
    const double got_dz = (double)tt_tensor_grad(logit)[0];
    if (isnan(want_loss))
        ck_assert_msg(isnan(got_loss), "loss at z = %g, y = %d: got %g, want NaN", z, (int)y,
                      got_loss);
    else
        ck_assert_msg(is_close(got_loss, want_loss, 0, RTOL_REAL),
                      "loss at z = %g, y = %d: got %.9g, want %.9g", z, (int)y, got_loss,
                      want_loss);
    if (isnan(want_dz))
        ck_assert_msg(isnan(got_dz), "dL/dz at z = %g, y = %d: got %g, want NaN", z, (int)y,
                      got_dz);
    else
        ck_assert_msg(is_close(got_dz, want_dz, 0, RTOL_REAL),
                      "dL/dz at z = %g, y = %d: got %.9g, want %.9g", z, (int)y, got_dz,
                      want_dz);

    tt_tensor_free(logit);
    tt_tape_free(tape);
}

START_TEST(bce_matches_hand_values)
{
    /* z = [0, ln 3, −ln 3, ln 3], y = [1, 1, 0, 0], m = 4.
     * σ(0) = 1/2, σ(ln 3) = 3/4, σ(−ln 3) = 1/4, so the entry losses are
     *   −log(1/2) = ln 2, −log(3/4) = ln(4/3), −log(1 − 1/4) = ln(4/3),
     *   −log(1 − 3/4) = ln 4,
     * L = (ln 2 + 2 ln(4/3) + ln 4)/4 (eq. 17), and
     * dz = (σ(z) − y)/4 = [−1/2, −1/4, 1/4, 3/4]/4 (eq. 19). */
    const double ln3 = log(3.0);
    const tt_real z_values[4] = {0, (tt_real)ln3, (tt_real)-ln3, (tt_real)ln3};
    const int32_t labels[4] = {1, 1, 0, 0};
    const double want_loss = (log(2.0) + 2 * log(4.0 / 3.0) + log(4.0)) / 4;
    const double want_dz[4] = {-0.125, -0.0625, 0.0625, 0.1875};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(1, 4, z_values, "z");
    require_grad_or_fail(z);

    tt_tensor *loss = tt_bce_with_logits(tape, z, labels, 4);
    ck_assert_ptr_nonnull(loss);
    ck_assert_uint_eq(tt_tensor_rows(loss), 1);
    ck_assert_uint_eq(tt_tensor_cols(loss), 1);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    const double want_loss_values[1] = {want_loss};
    assert_all_close("loss", tt_tensor_data(loss), want_loss_values, 1, 1, 0, RTOL_REAL);
    assert_all_close("dL/dz", tt_tensor_grad(z), want_dz, 1, 4, 0, RTOL_REAL);

    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

START_TEST(bce_is_exact_at_extreme_logits)
{
    /* A logit that agrees with its label costs log1p(exp(−|z|)), 0 to
     * rounding at 1e30 and inf; one that disagrees costs |z|, with
     * gradient ±1. max(z, 0) − z·y would give 1e30 − 1e30 = 0 only by
     * luck of exact cancellation, and a NaN at inf − inf. */
    check_single_bce(1e30, 1, 0, 0);
    check_single_bce(-1e30, 0, 0, 0);
    check_single_bce(1e30, 0, 1e30, 1);
    check_single_bce(-1e30, 1, 1e30, -1);
    check_single_bce(INFINITY, 1, 0, 0);
    check_single_bce(-INFINITY, 0, 0, 0);
    check_single_bce(INFINITY, 0, INFINITY, 1);
    check_single_bce(-INFINITY, 1, INFINITY, -1);
    check_single_bce(NAN, 1, NAN, NAN);
    check_single_bce(NAN, 0, NAN, NAN);
}
END_TEST

START_TEST(bce_keeps_tails_of_confident_logits)
{
    /* At z = 20 with label 1 the loss and gradient are about ∓2.1e-9,
     * which 1 − σ(20) rounds to 0 in float; at −40 with label 0 they are
     * about 4.2e-18. */
    check_single_bce(20, 1, log1p(exp(-20.0)), -reference_sigmoid(-20));
    check_single_bce(-20, 0, log1p(exp(-20.0)), reference_sigmoid(-20));
    check_single_bce(-40, 0, log1p(exp(-40.0)), reference_sigmoid(-40));
    check_single_bce(40, 1, log1p(exp(-40.0)), -reference_sigmoid(-40));
}
END_TEST

START_TEST(bce_mean_is_over_every_entry)
{
    /* A 2 × 3 tensor of zero logits: every entry costs ln 2, so the mean
     * is ln 2, and each gradient entry is (1/2 − y)/6. */
    const int32_t labels[6] = {1, 0, 0, 1, 1, 0};
    const double want_dz[6] = {-1.0 / 12, 1.0 / 12, 1.0 / 12, -1.0 / 12, -1.0 / 12, 1.0 / 12};
    const double want_loss[1] = {log(2.0)};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(2, 3, NULL, "z");
    require_grad_or_fail(z);

    tt_tensor *loss = tt_bce_with_logits(tape, z, labels, 6);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    assert_all_close("loss", tt_tensor_data(loss), want_loss, 1, 1, 0, RTOL_REAL);
    assert_all_close("dL/dz", tt_tensor_grad(z), want_dz, 2, 3, 0, RTOL_REAL);

    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

START_TEST(bce_copies_labels)
{
    int32_t labels[2] = {1, 1};
    const tt_real z_values[2] = {0, 0};
    const double want_dz[2] = {-0.25, -0.25};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(1, 2, z_values, "z");
    require_grad_or_fail(z);

    tt_tensor *loss = tt_bce_with_logits(tape, z, labels, 2);
    ck_assert_ptr_nonnull(loss);
    /* Backward must use the labels of the call, 1, not the array's later
     * contents: dz = (1/2 − 1)/2. */
    labels[0] = 0;
    labels[1] = 0;
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    assert_all_close("dL/dz", tt_tensor_grad(z), want_dz, 1, 2, 0, RTOL_REAL);

    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

/* ---- bce_with_logits: gradients ----------------------------------------------- */

typedef struct bce_context {
    const int32_t *labels;
    size_t n_labels;
} bce_context;

static tt_tensor *bce_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                           void *context)
{
    const bce_context *ctx = context;
    (void)n_tensors;
    return tt_bce_with_logits(tape, tensors[0], ctx->labels, ctx->n_labels);
}

/* Runs tt_gradcheck on the loss of a 3 × 4 tensor of logits `scale`·N(0, 1)
 * with random labels, for CHECK_SEEDS seeds. */
static void check_bce_gradients(double scale)
{
    enum { ROWS = 3, COLS = 4 };
    for (uint64_t seed = 1; seed <= CHECK_SEEDS; seed++) {
        tt_rng rng;
        tt_rng_seed(&rng, seed);
        int32_t labels[ROWS * COLS];
        fill_labels(labels, ROWS * COLS, 2, &rng);
        tt_tensor *z = new_tensor_or_fail(ROWS, COLS, NULL, "z");
        tt_tensor_fill_normal(z, &rng, 0, (tt_real)scale);
        require_grad_or_fail(z);
        bce_context context = {labels, ROWS * COLS};

        char what[64];
        snprintf(what, sizeof what, "logits of scale %g, seed %llu", scale,
                 (unsigned long long)seed);
        assert_gradcheck_passes(what, bce_loss, &context, &z, 1, ROWS * COLS);
        tt_tensor_free(z);
    }
}

START_TEST(bce_passes_gradcheck)
{
    check_bce_gradients(3.0);
}
END_TEST

START_TEST(bce_passes_gradcheck_at_large_logits)
{
    /* Logits near ±1e30: entries that disagree with their label have
     * gradient ±1/m, those that agree have 0, and the checker must see
     * both. */
    check_bce_gradients(1e30);
}
END_TEST

/* ---- Logistic regression --------------------------------------------------------- */

/* Logistic regression is the one-layer case of the model: z = w·x + b
 * (eq. 1 with W(1) = w, 1 × s) and the loss of eq. 17. */
typedef struct logistic_data {
    tt_tensor *x; /* FEATURES × SAMPLES */
    int32_t labels[SAMPLES];
} logistic_data;

static tt_tensor *logistic_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                                void *context)
{
    const logistic_data *data = context;
    (void)n_tensors;
    tt_tensor *z = tt_add(tape, tt_matmul(tape, tensors[0], data->x), tensors[1]);
    return tt_bce_with_logits(tape, z, data->labels, SAMPLES);
}

START_TEST(logistic_regression_gradient_matches_closed_form)
{
    /* With φ = (σ(z) − y)ᵀ, n × 1, the binary form of eq. 11, the
     * gradients of the mean loss are the one-layer eq. 13 and 14:
     * dL/dw = (1/n)·(x·φ)ᵀ, a 1 × s row like w, and dL/db = (1/n)·Σ_i φ_i. */
    tt_rng rng;
    tt_rng_seed(&rng, 7);
    logistic_data data;
    data.x = new_uniform_tensor(FEATURES, SAMPLES, &rng, -2, 2, "x");
    fill_labels(data.labels, SAMPLES, 2, &rng);
    tt_tensor *w = new_uniform_tensor(1, FEATURES, &rng, -1, 1, "w");
    tt_tensor *b = new_uniform_tensor(1, 1, &rng, -1, 1, "b");
    require_grad_or_fail(w);
    require_grad_or_fail(b);
    tt_tensor *parameters[2] = {w, b};
    tt_tape *tape = new_tape_or_fail();

    tt_tensor *loss = logistic_loss(tape, parameters, 2, &data);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    double x[FEATURES * SAMPLES];
    double w_values[FEATURES];
    copy_to_double(x, tt_tensor_data(data.x), FEATURES * SAMPLES);
    copy_to_double(w_values, tt_tensor_data(w), FEATURES);
    double z[SAMPLES];
    reference_matmul(z, w_values, x, 1, FEATURES, SAMPLES);
    double phi[SAMPLES];
    double want_loss = 0;
    double want_db = 0;
    for (size_t i = 0; i < SAMPLES; i++) {
        z[i] += (double)tt_tensor_data(b)[0];
        phi[i] = reference_sigmoid(z[i]) - data.labels[i];
        want_db += phi[i] / SAMPLES;
        const double p = reference_sigmoid(z[i]);
        want_loss -= (data.labels[i] == 1 ? log(p) : log(1 - p)) / SAMPLES;
    }
    double want_dw[FEATURES];
    reference_matmul(want_dw, x, phi, FEATURES, SAMPLES, 1);
    for (size_t k = 0; k < FEATURES; k++)
        want_dw[k] /= SAMPLES;

    const double want_loss_values[1] = {want_loss};
    const double want_db_values[1] = {want_db};
    assert_all_close("loss", tt_tensor_data(loss), want_loss_values, 1, 1, 0, RTOL_REAL);
    assert_all_close_scaled("dL/dw", tt_tensor_grad(w), want_dw, 1, FEATURES, RTOL_REAL);
    assert_all_close("dL/db", tt_tensor_grad(b), want_db_values, 1, 1, RTOL_REAL, RTOL_REAL);

    assert_gradcheck_passes("logistic regression", logistic_loss, &data, parameters, 2,
                            FEATURES + 1);

    tt_tape_free(tape);
    tt_tensor_free(data.x);
    tt_tensor_free(w);
    tt_tensor_free(b);
}
END_TEST

/* ---- bce_with_logits: errors ------------------------------------------------------- */

static void assert_bce_rejected(const int32_t *labels, size_t n_labels, tt_status status,
                                const char *message)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(2, 2, NULL, "z");

    ck_assert_ptr_null(tt_bce_with_logits(tape, z, labels, n_labels));
    ck_assert_int_eq(tt_tape_status(tape), status);
    ck_assert_str_eq(tt_tape_error(tape)->message, message);
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    const int32_t good[4] = {0, 1, 1, 0};
    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_bce_with_logits(tape, z, good, 4));
    assert_tape_ok(tape, "bce_with_logits after the reset");

    tt_tensor_free(z);
    tt_tape_free(tape);
}

START_TEST(bce_rejects_label_other_than_0_or_1)
{
    const int32_t two[4] = {0, 1, 2, 0};
    const int32_t negative[4] = {0, 1, 1, -1};
    assert_bce_rejected(two, 4, TT_ERR_RANGE,
                        "bce_with_logits: label 2 for logit (1, 0) is neither 0 nor 1; logits "
                        "(z) is 2x2");
    assert_bce_rejected(negative, 4, TT_ERR_RANGE,
                        "bce_with_logits: label -1 for logit (1, 1) is neither 0 nor 1; logits "
                        "(z) is 2x2");
}
END_TEST

START_TEST(bce_rejects_label_count_mismatch)
{
    const int32_t labels[4] = {0, 1, 1, 0};
    assert_bce_rejected(labels, 2, TT_ERR_ARG,
                        "bce_with_logits: logits (z) is 2x2 but the label count is 2; there "
                        "must be one label per logit");
}
END_TEST

START_TEST(bce_rejects_null_labels_and_logits)
{
    assert_bce_rejected(NULL, 4, TT_ERR_ARG, "bce_with_logits: labels is NULL");

    const int32_t labels[1] = {0};
    tt_tape *tape = new_tape_or_fail();
    ck_assert_ptr_null(tt_bce_with_logits(tape, NULL, labels, 1));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "bce_with_logits: logits is NULL");
    tt_tape_free(tape);
}
END_TEST

/* ---- mse: values ------------------------------------------------------------------ */

/* Records the mse of p and t (both 1 × count, requiring gradients), runs
 * backward and checks the loss and both gradients. */
static void check_mse(const double *p_values, const double *t_values, size_t count,
                      double want_loss, const double *want_dp)
{
    tt_real *p_data = malloc(count * sizeof *p_data);
    tt_real *t_data = malloc(count * sizeof *t_data);
    double *want_dt = malloc(count * sizeof *want_dt);
    ck_assert_ptr_nonnull(p_data);
    ck_assert_ptr_nonnull(t_data);
    ck_assert_ptr_nonnull(want_dt);
    for (size_t i = 0; i < count; i++) {
        p_data[i] = (tt_real)p_values[i];
        t_data[i] = (tt_real)t_values[i];
        want_dt[i] = -want_dp[i];
    }
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *p = new_tensor_or_fail(1, count, p_data, "p");
    tt_tensor *t = new_tensor_or_fail(1, count, t_data, "t");
    require_grad_or_fail(p);
    require_grad_or_fail(t);

    tt_tensor *loss = tt_mse(tape, p, t);
    ck_assert_msg(loss != NULL, "mse failed: %s", tt_tape_error(tape)->message);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    const double want_loss_values[1] = {want_loss};
    assert_all_close("loss", tt_tensor_data(loss), want_loss_values, 1, 1, 0, RTOL_REAL);
    assert_all_close("dL/dp", tt_tensor_grad(p), want_dp, 1, count, 0, RTOL_REAL);
    assert_all_close("dL/dt", tt_tensor_grad(t), want_dt, 1, count, 0, RTOL_REAL);

    free(p_data);
    free(t_data);
    free(want_dt);
    tt_tensor_free(p);
    tt_tensor_free(t);
    tt_tape_free(tape);
}

START_TEST(mse_matches_hand_values)
{
    /* p − t = [1, 0, −2, 3]: L = (1 + 0 + 4 + 9)/4 = 3.5 (eq. 20), and
     * dL/dp = 2(p − t)/4 = [0.5, 0, −1, 1.5] = −dL/dt (eq. 21). */
    const double p[4] = {1, 2, 3, 4};
    const double t[4] = {0, 2, 5, 1};
    const double want_dp[4] = {0.5, 0, -1, 1.5};
    check_mse(p, t, 4, 3.5, want_dp);
}
END_TEST

START_TEST(mse_is_finite_where_squares_overflow)
{
    /* p = −t = 0.9·√max: (p − t)² = 3.24·max overflows, but the mean over
     * four entries, three of them 0, is 0.81·max, which fits. The
     * gradient 2(p − t)/4 = p. */
    const double big = 0.9 * sqrt(REAL_MAX);
    const double p[4] = {big, 0, 0, 0};
    const double t[4] = {-big, 0, 0, 0};
    const double want_dp[4] = {big, 0, 0, 0};
    check_mse(p, t, 4, big * big, want_dp);
}
END_TEST

START_TEST(mse_of_1e30_is_exact_or_overflows_only_in_float)
{
    /* (1e30 − (−1e30))²/4 = 1e60: a double, and +inf in float, whose
     * largest value is 3.4e38. The gradient 2·2e30/4 = 1e30 fits both. */
    const double p[4] = {1e30, 0, 0, 0};
    const double t[4] = {-1e30, 0, 0, 0};
    const double want_dp[4] = {1e30, 0, 0, 0};
    const double want_loss = sizeof(tt_real) == sizeof(float) ? INFINITY : 1e60;
    check_mse(p, t, 4, want_loss, want_dp);
}
END_TEST

START_TEST(mse_passes_nan_and_infinity_on)
{
    tt_tape *tape = new_tape_or_fail();
    const tt_real p_values[2] = {1, NAN};
    const tt_real q_values[2] = {1, INFINITY};
    const tt_real zeros[2] = {0, 0};
    tt_tensor *p = new_tensor_or_fail(1, 2, p_values, "p");
    tt_tensor *q = new_tensor_or_fail(1, 2, q_values, "q");
    tt_tensor *t = new_tensor_or_fail(1, 2, zeros, "t");

    ck_assert(isnan(tt_tensor_data(tt_mse(tape, p, t))[0]));
    const tt_real infinite = tt_tensor_data(tt_mse(tape, q, t))[0];
    ck_assert(isinf(infinite) && infinite > 0);
    ck_assert(isnan(tt_tensor_data(tt_mse(tape, q, q))[0]));

    tt_tensor_free(p);
    tt_tensor_free(q);
    tt_tensor_free(t);
    tt_tape_free(tape);
}
END_TEST

START_TEST(mse_of_tensor_with_itself_has_zero_gradient)
{
    /* L = mean((x − x)²) = 0, and x receives 2(x − x)/m from both sides. */
    const tt_real values[3] = {1, -2, 5};
    const tt_real zeros[3] = {0, 0, 0};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(3, 1, values, "x");
    require_grad_or_fail(x);

    tt_tensor *loss = tt_mse(tape, x, x);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    ck_assert(tt_tensor_data(loss)[0] == 0);
    assert_all_equal("dL/dx", tt_tensor_grad(x), zeros, 3);

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

/* ---- mse: gradients ------------------------------------------------------------- */

static tt_tensor *mse_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                           void *context)
{
    (void)n_tensors;
    (void)context;
    return tt_mse(tape, tensors[0], tensors[1]);
}

/* Runs tt_gradcheck on the mse of two 3 × 4 tensors, both checked, drawn
 * uniform in [−scale, scale), for CHECK_SEEDS seeds. */
static void check_mse_gradients(double scale)
{
    enum { ROWS = 3, COLS = 4 };
    for (uint64_t seed = 1; seed <= CHECK_SEEDS; seed++) {
        tt_rng rng;
        tt_rng_seed(&rng, seed);
        tt_tensor *p = new_uniform_tensor(ROWS, COLS, &rng, -scale, scale, "p");
        tt_tensor *t = new_uniform_tensor(ROWS, COLS, &rng, -scale, scale, "t");
        require_grad_or_fail(p);
        require_grad_or_fail(t);
        tt_tensor *tensors[2] = {p, t};

        char what[64];
        snprintf(what, sizeof what, "values of scale %g, seed %llu", scale,
                 (unsigned long long)seed);
        assert_gradcheck_passes(what, mse_loss, NULL, tensors, 2, 2 * ROWS * COLS);
        tt_tensor_free(p);
        tt_tensor_free(t);
    }
}

START_TEST(mse_passes_gradcheck)
{
    check_mse_gradients(2.0);
}
END_TEST

START_TEST(mse_passes_gradcheck_at_large_values)
{
    /* The largest scale whose loss still fits in tt_real with room for the
     * checker's moves: about 1.8e17 in float and 1.3e152 in double. */
    check_mse_gradients(sqrt(REAL_MAX) / 100);
}
END_TEST

/* Linear regression: prediction w·x + b, 1 × n, against targets t. */
typedef struct linear_data {
    tt_tensor *x;
    tt_tensor *t;
} linear_data;

static tt_tensor *linear_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                              void *context)
{
    const linear_data *data = context;
    (void)n_tensors;
    tt_tensor *prediction = tt_add(tape, tt_matmul(tape, tensors[0], data->x), tensors[1]);
    return tt_mse(tape, prediction, data->t);
}

START_TEST(linear_regression_gradient_matches_closed_form)
{
    /* With r = w·x + b − t: dL/dw = (2/n)·r·xᵀ and dL/db = (2/n)·Σ_i r_i. */
    tt_rng rng;
    tt_rng_seed(&rng, 11);
    linear_data data;
    data.x = new_uniform_tensor(FEATURES, SAMPLES, &rng, -2, 2, "x");
    data.t = new_uniform_tensor(1, SAMPLES, &rng, -3, 3, "t");
    tt_tensor *w = new_uniform_tensor(1, FEATURES, &rng, -1, 1, "w");
    tt_tensor *b = new_uniform_tensor(1, 1, &rng, -1, 1, "b");
    require_grad_or_fail(w);
    require_grad_or_fail(b);
    tt_tensor *parameters[2] = {w, b};
    tt_tape *tape = new_tape_or_fail();

    ck_assert_int_eq(tt_tape_backward(tape, linear_loss(tape, parameters, 2, &data)), TT_OK);

    double x[FEATURES * SAMPLES];
    double w_values[FEATURES];
    copy_to_double(x, tt_tensor_data(data.x), FEATURES * SAMPLES);
    copy_to_double(w_values, tt_tensor_data(w), FEATURES);
    double residual[SAMPLES];
    reference_matmul(residual, w_values, x, 1, FEATURES, SAMPLES);
    double want_db = 0;
    for (size_t i = 0; i < SAMPLES; i++) {
        residual[i] += (double)tt_tensor_data(b)[0] - (double)tt_tensor_data(data.t)[i];
        want_db += 2 * residual[i] / SAMPLES;
    }
    double want_dw[FEATURES];
    reference_matmul(want_dw, x, residual, FEATURES, SAMPLES, 1);
    for (size_t k = 0; k < FEATURES; k++)
        want_dw[k] *= 2.0 / SAMPLES;

    const double want_db_values[1] = {want_db};
    assert_all_close_scaled("dL/dw", tt_tensor_grad(w), want_dw, 1, FEATURES, RTOL_REAL);
    assert_all_close("dL/db", tt_tensor_grad(b), want_db_values, 1, 1, RTOL_REAL, RTOL_REAL);
    assert_gradcheck_passes("linear regression", linear_loss, &data, parameters, 2,
                            FEATURES + 1);

    tt_tape_free(tape);
    tt_tensor_free(data.x);
    tt_tensor_free(data.t);
    tt_tensor_free(w);
    tt_tensor_free(b);
}
END_TEST

/* ---- mse: errors ------------------------------------------------------------------ */

START_TEST(mse_rejects_shape_mismatch)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *p = new_tensor_or_fail(10, 64, NULL, "y_hat");
    tt_tensor *t = new_tensor_or_fail(10, 32, NULL, "y");
    tt_tensor *transposed = new_tensor_or_fail(64, 10, NULL, "y_t");

    ck_assert_ptr_null(tt_mse(tape, p, t));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_SHAPE);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "mse: prediction (y_hat) is 10x64 but target (y) is 10x32; they must "
                     "have the same shape");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tape_reset(tape);
    ck_assert_ptr_null(tt_mse(tape, p, transposed));
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "mse: prediction (y_hat) is 10x64 but target (y_t) is 64x10; they must "
                     "have the same shape");

    tt_tape_reset(tape);
    ck_assert_ptr_null(tt_mse(tape, p, NULL));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "mse: target is NULL");

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_mse(tape, p, p));
    assert_tape_ok(tape, "mse after the reset");

    tt_tensor_free(p);
    tt_tensor_free(t);
    tt_tensor_free(transposed);
    tt_tape_free(tape);
}
END_TEST

static Suite *losses_suite(void)
{
    Suite *suite = suite_create("losses");

    TCase *bce = add_test_case(suite, "bce_with_logits");
    tcase_add_test(bce, bce_matches_hand_values);
    tcase_add_test(bce, bce_is_exact_at_extreme_logits);
    tcase_add_test(bce, bce_keeps_tails_of_confident_logits);
    tcase_add_test(bce, bce_mean_is_over_every_entry);
    tcase_add_test(bce, bce_copies_labels);
    tcase_add_test(bce, bce_passes_gradcheck);
    tcase_add_test(bce, bce_passes_gradcheck_at_large_logits);
    tcase_add_test(bce, logistic_regression_gradient_matches_closed_form);
    tcase_add_test(bce, bce_rejects_label_other_than_0_or_1);
    tcase_add_test(bce, bce_rejects_label_count_mismatch);
    tcase_add_test(bce, bce_rejects_null_labels_and_logits);

    TCase *mse = add_test_case(suite, "mse");
    tcase_add_test(mse, mse_matches_hand_values);
    tcase_add_test(mse, mse_is_finite_where_squares_overflow);
    tcase_add_test(mse, mse_of_1e30_is_exact_or_overflows_only_in_float);
    tcase_add_test(mse, mse_passes_nan_and_infinity_on);
    tcase_add_test(mse, mse_of_tensor_with_itself_has_zero_gradient);
    tcase_add_test(mse, mse_passes_gradcheck);
    tcase_add_test(mse, mse_passes_gradcheck_at_large_values);
    tcase_add_test(mse, linear_regression_gradient_matches_closed_form);
    tcase_add_test(mse, mse_rejects_shape_mismatch);

    return suite;
}

int main(void)
{
    return run_suite(losses_suite());
}
