/* Activations: sigmoid, tanh, leaky ReLU, softplus, ELU, SiLU and both
 * forms of GELU, forward and backward, on hand-worked values, on extreme inputs (±1e30, ±inf, NaN),
 * and against tt_gradcheck over random inputs. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"

/* Rows and columns of the random inputs of the gradient checks. */
#define CHECK_ROWS 4
#define CHECK_COLS 6

/* Seeds of the gradient checks. */
#define CHECK_SEEDS 3

/* Random inputs of the leaky ReLU and ELU gradient checks have magnitudes in
 * [KINK_MARGIN, 2): the largest move of the checker, h·max(1, |x|) with
 * h = TT_GRADCHECK_DEFAULT_STEP = 5e-3 in float, is 1e-2, so no difference
 * crosses the kink at 0. */
#define KINK_MARGIN 0.1

/* Slope of the leaky ReLU tests: 0.25 is exact in binary, so slope·x and
 * slope·dy are exact for the small integers and halves used. */
#define SLOPE 0.25

/* π, to more digits than a double carries; C11 does not define M_PI. */
#define PI 3.14159265358979323846

/* alpha of the ELU tests: with alpha = 2, ELU(−ln 2) = 2·(1/2 − 1) = −1. */
#define ALPHA 2.0

/* Largest |GELU(x) − GELU_tanh(x)|, about 4.7e-4 near |x| = 2, rounded up. */
#define GELU_TANH_MAX_ERROR 5e-4

typedef tt_tensor *(*activation_fn)(tt_tape *tape, tt_tensor *x);

static tt_tensor *elu_with_test_alpha(tt_tape *tape, tt_tensor *x)
{
    return tt_elu(tape, x, (tt_real)ALPHA);
}

static tt_tensor *leaky_relu_with_test_slope(tt_tape *tape, tt_tensor *x)
{
    return tt_leaky_relu(tape, x, (tt_real)SLOPE);
}

/* ---- References in double -------------------------------------------------- */

static double reference_sigmoid(double x)
{
    return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

/* sigmoid'(x) = sigmoid(x)·sigmoid(−x); each factor is computed without
 * cancellation. */
static double reference_sigmoid_derivative(double x)
{
    return reference_sigmoid(x) * reference_sigmoid(-x);
}

/* tanh'(x) = 1 / cosh²(x); cosh overflows to inf for large |x|, giving 0. */
static double reference_tanh_derivative(double x)
{
    const double c = cosh(x);
    return 1 / (c * c);
}

static double reference_softplus(double x)
{
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

static double reference_elu(double x)
{
    return x > 0 ? x : ALPHA * expm1(x);
}

static double reference_elu_derivative(double x)
{
    return x > 0 ? 1 : ALPHA * exp(x);
}

static double reference_silu(double x)
{
    return x * reference_sigmoid(x);
}

/* SiLU'(x) = s + x·s·(1 − s), with s = sigmoid(x) and 1 − s = sigmoid(−x). */
static double reference_silu_derivative(double x)
{
    return reference_sigmoid(x) + x * reference_sigmoid(x) * reference_sigmoid(-x);
}

static double reference_normal_cdf(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

static double reference_normal_density(double x)
{
    return exp(-x * x / 2) / sqrt(2 * PI);
}

static double reference_gelu(double x)
{
    return x * reference_normal_cdf(x);
}

static double reference_gelu_derivative(double x)
{
    return reference_normal_cdf(x) + x * reference_normal_density(x);
}

/* u = √(2/π)·(x + 0.044715·x³) and GELU_tanh(x) = x·(1 + tanh(u))/2
 * = x·sigmoid(2u). */
static double reference_gelu_tanh_argument(double x)
{
    return sqrt(2 / PI) * (x + 0.044715 * x * x * x);
}

static double reference_gelu_tanh(double x)
{
    return x * reference_sigmoid(2 * reference_gelu_tanh_argument(x));
}

/* The two terms of GELU_tanh'(x): sigmoid(2u) and 2x·sigmoid'(2u)·du/dx. */
static void reference_gelu_tanh_terms(double x, double terms[2])
{
    const double twice_u = 2 * reference_gelu_tanh_argument(x);
    const double du = sqrt(2 / PI) * (1 + 3 * 0.044715 * x * x);
    terms[0] = reference_sigmoid(twice_u);
    terms[1] = 2 * x * reference_sigmoid(twice_u) * reference_sigmoid(-twice_u) * du;
}

/* ---- Comparison ------------------------------------------------------------- */

/* Fails unless got[i] matches want[i]: NaN for NaN, the same infinity for
 * an infinity, and otherwise |got − want| ≤ RTOL_REAL·(|want| + scale[i]).
 * With `scale` NULL that is exactly 0 for 0 and within RTOL_REAL of want
 * otherwise. A derivative that is a sum of two terms of opposite sign
 * passes the sum of the terms' magnitudes as its scale, because its
 * rounding error grows with the terms, not with the small sum. */
static void assert_values_scaled(const char *what, const tt_real *got, const double *want,
                                 const double *scale, const double *x, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const double value = (double)got[i];
        if (isnan(want[i])) {
            ck_assert_msg(isnan(value), "%s at x = %g: got %g, want NaN", what, x[i], value);
            continue;
        }
        const double atol = scale == NULL ? 0 : RTOL_REAL * scale[i];
        ck_assert_msg(is_close(value, want[i], atol, RTOL_REAL),
                      "%s at x = %g: got %.9g, want %.9g", what, x[i], value, want[i]);
    }
}

static void assert_values(const char *what, const tt_real *got, const double *want,
                          const double *x, size_t count)
{
    assert_values_scaled(what, got, want, NULL, x, count);
}

/* Records g(x) on a 1 × count row, checks the output against `want`, then
 * runs backward from loss = g(x)·1 (a sum, through matmul with a column of
 * ones) and checks dx against `want_dx`. The loss is NaN or infinite when an
 * output is, but the gradient of the sum is 1 for every output, so dx is
 * g'(x) wherever g' is defined. */
static void check_activation_scaled(const char *name, activation_fn activation,
                                    const double *x_values, const double *want,
                                    const double *value_scale, const double *want_dx,
                                    const double *dx_scale, size_t count)
{
    tt_real *x_data = malloc(count * sizeof *x_data);
    tt_real *ones = malloc(count * sizeof *ones);
    ck_assert_ptr_nonnull(x_data);
    ck_assert_ptr_nonnull(ones);
    for (size_t i = 0; i < count; i++) {
        x_data[i] = (tt_real)x_values[i];
        ones[i] = 1;
    }
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, count, x_data, "x");
    tt_tensor *v = new_tensor_or_fail(count, 1, ones, "v");
    require_grad_or_fail(x);

    tt_tensor *y = activation(tape, x);
    ck_assert_msg(y != NULL, "%s failed: %s", name, tt_tape_error(tape)->message);
    char what[64];
    snprintf(what, sizeof what, "%s(x)", name);
    assert_values_scaled(what, tt_tensor_data(y), want, value_scale, x_values, count);

    ck_assert_int_eq(tt_tape_backward(tape, tt_matmul(tape, y, v)), TT_OK);
    snprintf(what, sizeof what, "%s'(x)", name);
    assert_values_scaled(what, tt_tensor_grad(x), want_dx, dx_scale, x_values, count);

    free(x_data);
    free(ones);
    tt_tensor_free(x);
    tt_tensor_free(v);
    tt_tape_free(tape);
}

static void check_activation(const char *name, activation_fn activation, const double *x_values,
                             const double *want, const double *want_dx, size_t count)
{
    check_activation_scaled(name, activation, x_values, want, NULL, want_dx, NULL, count);
}

/* A reference in double: the value at x, its derivative, and the sum of the
 * magnitudes of the derivative's terms (see assert_values_scaled). */
typedef void (*reference_fn)(double x, double *value, double *derivative, double *scale);

/* Relative step of the central difference that estimates g'' for the
 * tolerance of check_against_reference; the estimate only needs one or two
 * correct digits. */
#define SECOND_DERIVATIVE_STEP 1e-6

/* Compares g with `reference` at every 1/steps_per_unit from low to high.
 * Besides the rounding of its own arithmetic, the op rounds intermediate
 * arguments such as x/√2, which moves x by a relative RTOL_REAL at most and
 * so moves g(x) by up to RTOL_REAL·|x·g'(x)| and g'(x) by up to
 * RTOL_REAL·|x·g''(x)|. In the tails this exceeds RTOL_REAL·|g(x)|, for
 * example by x² for GELU, so both terms join the scales. */
static void check_against_reference(const char *name, activation_fn activation,
                                    reference_fn reference, double low, double high,
                                    double steps_per_unit)
{
    const size_t count = (size_t)((high - low) * steps_per_unit) + 1;
    double *x = malloc(count * sizeof *x);
    double *want = malloc(count * sizeof *want);
    double *want_dx = malloc(count * sizeof *want_dx);
    double *value_scale = malloc(count * sizeof *value_scale);
    double *scale = malloc(count * sizeof *scale);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(want_dx);
    ck_assert_ptr_nonnull(value_scale);
    ck_assert_ptr_nonnull(scale);
    for (size_t i = 0; i < count; i++) {
        x[i] = low + (double)i / steps_per_unit;
        reference(x[i], &want[i], &want_dx[i], &scale[i]);
        value_scale[i] = fabs(x[i] * want_dx[i]);

        const double h = SECOND_DERIVATIVE_STEP * fmax(1, fabs(x[i]));
        double above, below, unused_value, unused_scale;
        reference(x[i] + h, &unused_value, &above, &unused_scale);
        reference(x[i] - h, &unused_value, &below, &unused_scale);
        scale[i] += fabs(x[i] * (above - below) / (2 * h));
    }
    check_activation_scaled(name, activation, x, want, value_scale, want_dx, scale, count);
    free(x);
    free(want);
    free(want_dx);
    free(value_scale);
    free(scale);
}

static void elu_reference(double x, double *value, double *derivative, double *scale)
{
    *value = reference_elu(x);
    *derivative = reference_elu_derivative(x);
    *scale = 0;
}

static void silu_reference(double x, double *value, double *derivative, double *scale)
{
    *value = reference_silu(x);
    *derivative = reference_silu_derivative(x);
    *scale = reference_sigmoid(x) + fabs(x * reference_sigmoid(x) * reference_sigmoid(-x));
}

static void gelu_reference(double x, double *value, double *derivative, double *scale)
{
    *value = reference_gelu(x);
    *derivative = reference_gelu_derivative(x);
    *scale = reference_normal_cdf(x) + fabs(x * reference_normal_density(x));
}

static void gelu_tanh_reference(double x, double *value, double *derivative, double *scale)
{
    double terms[2];
    reference_gelu_tanh_terms(x, terms);
    *value = reference_gelu_tanh(x);
    *derivative = terms[0] + terms[1];
    *scale = fabs(terms[0]) + fabs(terms[1]);
}

/* ---- Gradient checks -------------------------------------------------------- */

typedef struct head_context {
    const loss_head *head;
    activation_fn activation;
} head_context;

static tt_tensor *head_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                            void *context)
{
    const head_context *ctx = context;
    (void)n_tensors;
    return apply_loss_head(tape, ctx->head, ctx->activation(tape, tensors[0]));
}

/* Runs tt_gradcheck on apply_loss_head(g(x)) for CHECK_SEEDS random x and
 * fails unless every check passes. With away_from_zero, every |x| is at
 * least KINK_MARGIN; otherwise x is normal with standard deviation
 * `stddev`. */
static void check_gradients(const char *name, activation_fn activation, double stddev,
                            bool away_from_zero)
{
    for (uint64_t seed = 1; seed <= CHECK_SEEDS; seed++) {
        tt_rng rng;
        tt_rng_seed(&rng, seed);
        tt_tensor *x = new_tensor_or_fail(CHECK_ROWS, CHECK_COLS, NULL, "x");
        if (away_from_zero)
            fill_away_from_zero(tt_tensor_data(x), CHECK_ROWS * CHECK_COLS, &rng, KINK_MARGIN,
                                2.0);
        else
            tt_tensor_fill_normal(x, &rng, 0, (tt_real)stddev);
        require_grad_or_fail(x);
        loss_head head = new_loss_head(CHECK_ROWS, CHECK_COLS, &rng);
        head_context context = {&head, activation};

        tt_gradcheck_result result;
        tt_error err = {TT_OK, ""};
        const tt_status status = tt_gradcheck(head_loss, &context, &x, 1, NULL, &result, &err);
        ck_assert_msg(status == TT_OK, "%s, seed %llu: tt_gradcheck returned %s: %s", name,
                      (unsigned long long)seed, tt_status_str(status), err.message);
        ck_assert_msg(result.verdict == TT_GRADCHECK_PASSED, "%s, seed %llu: %s", name,
                      (unsigned long long)seed, result.summary);
        ck_assert_msg(result.n_compared == CHECK_ROWS * CHECK_COLS,
                      "%s, seed %llu: %zu entries compared, want %d", name,
                      (unsigned long long)seed, result.n_compared, CHECK_ROWS * CHECK_COLS);

        free_loss_head(&head);
        tt_tensor_free(x);
    }
}

/* ---- sigmoid ---------------------------------------------------------------- */

START_TEST(sigmoid_matches_hand_values)
{
    /* sigmoid(0) = 1/2 and sigmoid'(0) = 1/4. With e^x = 3, sigmoid(x) =
     * 3/4 and sigmoid'(x) = 3/4 · 1/4 = 3/16; by symmetry sigmoid(−x) = 1/4
     * with the same derivative. */
    const double ln3 = log(3.0);
    const double x[3] = {0, ln3, -ln3};
    const double want[3] = {0.5, 0.75, 0.25};
    const double want_dx[3] = {0.25, 0.1875, 0.1875};
    check_activation("sigmoid", tt_sigmoid, x, want, want_dx, 3);
}
END_TEST

START_TEST(sigmoid_is_exact_at_extreme_inputs)
{
    /* ±1e30 and ±inf saturate to exactly 1 or 0 with derivative 0, and
     * NaN stays NaN in both. At ±40 the derivative e^−40 ≈ 4.2e-18 is
     * kept, where y·(1 − y) would give 0 at +40. */
    const double x[7] = {1e30, -1e30, INFINITY, -INFINITY, NAN, 40, -40};
    double want[7] = {1, 0, 1, 0, NAN, 0, 0};
    double want_dx[7] = {0, 0, 0, 0, NAN, 0, 0};
    for (size_t i = 5; i < 7; i++) {
        want[i] = reference_sigmoid(x[i]);
        want_dx[i] = reference_sigmoid_derivative(x[i]);
    }
    check_activation("sigmoid", tt_sigmoid, x, want, want_dx, 7);
}
END_TEST

START_TEST(sigmoid_matches_reference_across_range)
{
    /* Every eighth of a unit from −80 to 80: in float, sigmoid(−80) ≈ 1.8e-35
     * is still a normal number. */
    enum { COUNT = 1281 };
    double *x = malloc(COUNT * sizeof *x);
    double *want = malloc(COUNT * sizeof *want);
    double *want_dx = malloc(COUNT * sizeof *want_dx);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(want_dx);
    for (size_t i = 0; i < COUNT; i++) {
        x[i] = -80 + (double)i / 8;
        want[i] = reference_sigmoid(x[i]);
        want_dx[i] = reference_sigmoid_derivative(x[i]);
    }
    check_activation("sigmoid", tt_sigmoid, x, want, want_dx, COUNT);
    free(x);
    free(want);
    free(want_dx);
}
END_TEST

START_TEST(sigmoid_passes_gradcheck)
{
    check_gradients("sigmoid", tt_sigmoid, 2.0, false);
}
END_TEST

/* ---- tanh ------------------------------------------------------------------- */

START_TEST(tanh_matches_hand_values)
{
    /* tanh(0) = 0, tanh'(0) = 1. With e^x = 3, tanh(x) = (9 − 1)/(9 + 1)
     * = 0.8 and tanh'(x) = 1 − 0.64 = 0.36. tanh is odd, tanh' even. */
    const double ln3 = log(3.0);
    const double x[3] = {0, ln3, -ln3};
    const double want[3] = {0, 0.8, -0.8};
    const double want_dx[3] = {1, 0.36, 0.36};
    check_activation("tanh", tt_tanh, x, want, want_dx, 3);
}
END_TEST

START_TEST(tanh_is_exact_at_extreme_inputs)
{
    /* ±1e30 and ±inf give ±1 with derivative 0; NaN stays NaN. At ±20
     * the derivative 4e^−40 ≈ 1.7e-17 is kept, where 1 − y² gives 0. */
    const double x[7] = {1e30, -1e30, INFINITY, -INFINITY, NAN, 20, -20};
    double want[7] = {1, -1, 1, -1, NAN, 0, 0};
    double want_dx[7] = {0, 0, 0, 0, NAN, 0, 0};
    for (size_t i = 5; i < 7; i++) {
        want[i] = tanh(x[i]);
        want_dx[i] = reference_tanh_derivative(x[i]);
    }
    check_activation("tanh", tt_tanh, x, want, want_dx, 7);
}
END_TEST

START_TEST(tanh_matches_reference_across_range)
{
    /* Every sixteenth of a unit from −40 to 40: in float, tanh'(40) ≈
     * 7.2e-35 is still a normal number. */
    enum { COUNT = 1281 };
    double *x = malloc(COUNT * sizeof *x);
    double *want = malloc(COUNT * sizeof *want);
    double *want_dx = malloc(COUNT * sizeof *want_dx);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(want_dx);
    for (size_t i = 0; i < COUNT; i++) {
        x[i] = -40 + (double)i / 16;
        want[i] = tanh(x[i]);
        want_dx[i] = reference_tanh_derivative(x[i]);
    }
    check_activation("tanh", tt_tanh, x, want, want_dx, COUNT);
    free(x);
    free(want);
    free(want_dx);
}
END_TEST

START_TEST(tanh_passes_gradcheck)
{
    check_gradients("tanh", tt_tanh, 1.0, false);
}
END_TEST

/* ---- leaky ReLU ------------------------------------------------------------- */

START_TEST(leaky_relu_matches_hand_values)
{
    /* slope 1/4: [-2 -0.5 0.5 3] ↦ [-0.5 -0.125 0.5 3], derivative
     * [1/4 1/4 1 1]. */
    const double x[4] = {-2, -0.5, 0.5, 3};
    const double want[4] = {-0.5, -0.125, 0.5, 3};
    const double want_dx[4] = {SLOPE, SLOPE, 1, 1};
    check_activation("leaky_relu", leaky_relu_with_test_slope, x, want, want_dx, 4);
}
END_TEST

START_TEST(leaky_relu_gradient_at_zero_is_slope)
{
    /* The derivative at exactly 0 and at −0 is the left-hand slope; a tiny
     * positive input already gets 1. */
    const double x[3] = {0, -0.0, 1e-30};
    const double want[3] = {0, 0, 1e-30};
    const double want_dx[3] = {SLOPE, SLOPE, 1};
    check_activation("leaky_relu", leaky_relu_with_test_slope, x, want, want_dx, 3);
}
END_TEST

START_TEST(leaky_relu_is_exact_at_extreme_inputs)
{
    /* NaN stays NaN in the output, and its gradient is the slope, as for
     * any input not above 0. */
    const double x[5] = {1e30, -1e30, INFINITY, -INFINITY, NAN};
    const double want[5] = {1e30, -0.25e30, INFINITY, -INFINITY, NAN};
    const double want_dx[5] = {1, SLOPE, 1, SLOPE, SLOPE};
    check_activation("leaky_relu", leaky_relu_with_test_slope, x, want, want_dx, 5);
}
END_TEST

START_TEST(leaky_relu_with_zero_slope_equals_relu)
{
    const double x[6] = {-2, 0, 3, -1e30, -INFINITY, INFINITY};
    const tt_real x_data[6] = {-2, 0, 3, -1e30f, -INFINITY, INFINITY};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *input = new_tensor_or_fail(1, 6, x_data, "x");

    tt_tensor *leaky = tt_leaky_relu(tape, input, 0);
    tt_tensor *relu = tt_relu(tape, input);

    ck_assert_ptr_nonnull(leaky);
    ck_assert_ptr_nonnull(relu);
    double want[6];
    for (size_t i = 0; i < 6; i++)
        want[i] = (double)tt_tensor_data(relu)[i];
    assert_values("leaky_relu(x, 0)", tt_tensor_data(leaky), want, x, 6);

    tt_tensor_free(input);
    tt_tape_free(tape);
}
END_TEST

START_TEST(leaky_relu_keeps_each_records_slope)
{
    /* Two leaky ReLUs of one x with slopes 0.5 and 0.125, summed: for
     * x = -2 the gradient is 0.5 + 0.125 = 0.625, for x = 1 it is 2. */
    const tt_real x_data[2] = {-2, 1};
    const tt_real ones[2] = {1, 1};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, 2, x_data, "x");
    tt_tensor *v = new_tensor_or_fail(2, 1, ones, "v");
    require_grad_or_fail(x);

    tt_tensor *sum = tt_add(tape, tt_leaky_relu(tape, x, 0.5f), tt_leaky_relu(tape, x, 0.125f));
    ck_assert_int_eq(tt_tape_backward(tape, tt_matmul(tape, sum, v)), TT_OK);

    const tt_real want_dx[2] = {0.625f, 2};
    assert_all_equal("dx", tt_tensor_grad(x), want_dx, 2);

    tt_tensor_free(x);
    tt_tensor_free(v);
    tt_tape_free(tape);
}
END_TEST

START_TEST(leaky_relu_passes_gradcheck)
{
    check_gradients("leaky_relu", leaky_relu_with_test_slope, 0, true);
}
END_TEST

START_TEST(leaky_relu_gradcheck_excludes_kink)
{
    /* x = 0 exactly: the moved runs put x on both sides of 0, so the
     * checker must exclude the entry instead of comparing the average
     * slope (1 + 1/4)/2 with the left-hand slope 1/4. */
    const tt_real x_data[2] = {0, 1};
    tt_rng rng;
    tt_rng_seed(&rng, 7);
    tt_tensor *x = new_tensor_or_fail(1, 2, x_data, "x");
    require_grad_or_fail(x);
    loss_head head = new_loss_head(1, 2, &rng);
    head_context context = {&head, leaky_relu_with_test_slope};

    tt_gradcheck_result result;
    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_gradcheck(head_loss, &context, &x, 1, NULL, &result, &err), TT_OK);

    ck_assert_uint_eq(result.n_kinks, 1);
    ck_assert_uint_eq(result.first_kink.col, 0);
    ck_assert_msg(result.verdict == TT_GRADCHECK_PASSED, "%s", result.summary);

    free_loss_head(&head);
    tt_tensor_free(x);
}
END_TEST

START_TEST(leaky_relu_rejects_non_finite_slope)
{
    const tt_real slopes[3] = {NAN, INFINITY, -INFINITY};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(2, 2, NULL, "x");

    for (size_t i = 0; i < 3; i++) {
        ck_assert_ptr_null(tt_leaky_relu(tape, x, slopes[i]));
        ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
        ck_assert_uint_eq(tt_tape_length(tape), 0);
        tt_tape_reset(tape);
    }
    ck_assert_ptr_null(tt_leaky_relu(tape, x, NAN));
    ck_assert_str_eq(tt_tape_error(tape)->message, "leaky_relu: slope is nan; it must be finite");

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_leaky_relu(tape, x, 0.5f));
    assert_tape_ok(tape, "leaky_relu after the reset");

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

/* ---- softplus --------------------------------------------------------------- */

START_TEST(softplus_matches_hand_values)
{
    /* softplus(0) = ln 2 with derivative sigmoid(0) = 1/2. With e^x = 3,
     * softplus(x) = ln 4 and softplus(−x) = ln(4/3), with derivatives 3/4
     * and 1/4. */
    const double ln3 = log(3.0);
    const double x[3] = {0, ln3, -ln3};
    const double want[3] = {log(2.0), log(4.0), log(4.0 / 3.0)};
    const double want_dx[3] = {0.5, 0.75, 0.25};
    check_activation("softplus", tt_softplus, x, want, want_dx, 3);
}
END_TEST

START_TEST(softplus_is_exact_at_extreme_inputs)
{
    /* softplus(1e30) = 1e30 and softplus(−1e30) = 0, with derivatives 1
     * and 0; +inf gives +inf, −inf gives 0. At −40 the value and the
     * derivative are both e^−40 ≈ 4.2e-18, which log(1 + exp(x)) would
     * round to 0. */
    const double x[6] = {1e30, -1e30, INFINITY, -INFINITY, NAN, -40};
    const double want[6] = {(double)(tt_real)1e30, 0, INFINITY, 0, NAN, reference_softplus(-40)};
    const double want_dx[6] = {1, 0, 1, 0, NAN, reference_sigmoid(-40)};
    check_activation("softplus", tt_softplus, x, want, want_dx, 6);
}
END_TEST

START_TEST(softplus_matches_reference_across_range)
{
    enum { COUNT = 1281 };
    double *x = malloc(COUNT * sizeof *x);
    double *want = malloc(COUNT * sizeof *want);
    double *want_dx = malloc(COUNT * sizeof *want_dx);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(want_dx);
    for (size_t i = 0; i < COUNT; i++) {
        x[i] = -80 + (double)i / 8;
        want[i] = reference_softplus(x[i]);
        want_dx[i] = reference_sigmoid(x[i]);
    }
    check_activation("softplus", tt_softplus, x, want, want_dx, COUNT);
    free(x);
    free(want);
    free(want_dx);
}
END_TEST

START_TEST(softplus_passes_gradcheck)
{
    check_gradients("softplus", tt_softplus, 2.0, false);
}
END_TEST

/* ---- ELU -------------------------------------------------------------------- */

START_TEST(elu_matches_hand_values)
{
    /* alpha 2: ELU(−ln 2) = 2·(1/2 − 1) = −1 with derivative 2·1/2 = 1;
     * ELU(−ln 4) = 2·(1/4 − 1) = −1.5 with derivative 1/2; ELU(3) = 3 with
     * derivative 1. */
    const double x[3] = {-log(2.0), -log(4.0), 3};
    const double want[3] = {-1, -1.5, 3};
    const double want_dx[3] = {1, 0.5, 1};
    check_activation("elu", elu_with_test_alpha, x, want, want_dx, 3);
}
END_TEST

START_TEST(elu_gradient_at_zero_is_alpha)
{
    const double x[2] = {0, -0.0};
    const double want[2] = {0, 0};
    const double want_dx[2] = {ALPHA, ALPHA};
    check_activation("elu", elu_with_test_alpha, x, want, want_dx, 2);
}
END_TEST

START_TEST(elu_is_exact_at_extreme_inputs)
{
    /* −1e30 and −inf give −alpha with derivative 0. A tiny negative x keeps
     * ELU(x) = alpha·x and the derivative alpha, where exp(x) − 1 would
     * give 0. At −40 the derivative alpha·e^−40 ≈ 8.5e-18 is kept. */
    const double x[7] = {1e30, -1e30, INFINITY, -INFINITY, NAN, -1e-30, -40};
    const double want[7] = {(double)(tt_real)1e30, -ALPHA, INFINITY, -ALPHA, NAN,
                            reference_elu((double)(tt_real)-1e-30), reference_elu(-40)};
    const double want_dx[7] = {1, 0, 1, 0, NAN, ALPHA, reference_elu_derivative(-40)};
    check_activation("elu", elu_with_test_alpha, x, want, want_dx, 7);
}
END_TEST

START_TEST(elu_matches_reference_across_range)
{
    check_against_reference("elu", elu_with_test_alpha, elu_reference, -80, 80, 8);
}
END_TEST

START_TEST(elu_passes_gradcheck)
{
    check_gradients("elu", elu_with_test_alpha, 0, true);
}
END_TEST

START_TEST(elu_rejects_non_finite_alpha)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(2, 2, NULL, "x");

    ck_assert_ptr_null(tt_elu(tape, x, INFINITY));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "elu: alpha is inf; it must be finite");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_elu(tape, x, 1));
    assert_tape_ok(tape, "elu after the reset");

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

/* ---- SiLU ------------------------------------------------------------------- */

START_TEST(silu_matches_hand_values)
{
    /* SiLU(0) = 0 with derivative 1/2. With e^x = 3, sigmoid(x) = 3/4, so
     * SiLU(x) = 3x/4 and SiLU'(x) = 3/4 + x·3/4·1/4 = 3/4 + 3x/16. */
    const double ln3 = log(3.0);
    const double x[2] = {0, ln3};
    const double want[2] = {0, 0.75 * ln3};
    const double want_dx[2] = {0.5, 0.75 + 0.1875 * ln3};
    check_activation("silu", tt_silu, x, want, want_dx, 2);
}
END_TEST

START_TEST(silu_is_exact_at_extreme_inputs)
{
    /* SiLU(−1e30) and SiLU(−inf) are 0 with derivative 0; +inf gives +inf
     * with derivative 1. At −40 both value and derivative, about −40e^−40
     * and −39e^−40, are kept. */
    const double x[6] = {1e30, -1e30, INFINITY, -INFINITY, NAN, -40};
    const double want[6] = {(double)(tt_real)1e30, 0, INFINITY, 0, NAN, reference_silu(-40)};
    const double want_dx[6] = {1, 0, 1, 0, NAN, reference_silu_derivative(-40)};
    check_activation("silu", tt_silu, x, want, want_dx, 6);
}
END_TEST

START_TEST(silu_matches_reference_across_range)
{
    check_against_reference("silu", tt_silu, silu_reference, -80, 80, 8);
}
END_TEST

START_TEST(silu_passes_gradcheck)
{
    check_gradients("silu", tt_silu, 2.0, false);
}
END_TEST

/* ---- GELU ------------------------------------------------------------------- */

START_TEST(gelu_matches_hand_values)
{
    /* GELU(0) = 0 with derivative Φ(0) = 1/2. GELU(1) = Φ(1) ≈ 0.8413447461
     * and GELU'(1) = Φ(1) + φ(1) ≈ 0.8413447461 + 0.2419707245. GELU(−1) =
     * −(1 − Φ(1)) and GELU'(−1) = 1 − Φ(1) − φ(1). */
    const double cdf_1 = 0.8413447460685429;
    const double density_1 = 0.24197072451914337;
    const double x[3] = {0, 1, -1};
    const double want[3] = {0, cdf_1, -(1 - cdf_1)};
    const double want_dx[3] = {0.5, cdf_1 + density_1, 1 - cdf_1 - density_1};
    check_activation("gelu", tt_gelu, x, want, want_dx, 3);
}
END_TEST

START_TEST(gelu_is_exact_at_extreme_inputs)
{
    /* GELU(−1e30) and GELU(−inf) are 0 with derivative 0; +inf gives +inf
     * with derivative 1. At −10, GELU ≈ −7.6e-23 and GELU' ≈ −7.6e-22,
     * where x·(1 + erf(x/√2))/2 would give 0. */
    const double x[6] = {1e30, -1e30, INFINITY, -INFINITY, NAN, -10};
    const double want[6] = {(double)(tt_real)1e30, 0, INFINITY, 0, NAN, reference_gelu(-10)};
    const double want_dx[6] = {1, 0, 1, 0, NAN, reference_gelu_derivative(-10)};
    check_activation("gelu", tt_gelu, x, want, want_dx, 6);
}
END_TEST

START_TEST(gelu_matches_reference_across_range)
{
    /* Below −12, Φ(x) < 1.8e-33 nears the float subnormals, where rounding
     * is no longer relative. */
    check_against_reference("gelu", tt_gelu, gelu_reference, -12, 12, 16);
}
END_TEST

START_TEST(gelu_passes_gradcheck)
{
    check_gradients("gelu", tt_gelu, 2.0, false);
}
END_TEST

/* ---- GELU, tanh approximation ----------------------------------------------- */

START_TEST(gelu_tanh_matches_hand_values)
{
    /* At 0: 0 with derivative 1/2. At ±1 the textbook form
     * x·(1 + tanh(u))/2 has no cancellation, so it serves as the check of
     * the sigmoid form. */
    const double x[3] = {0, 1, -1};
    double want[3] = {0, 0, 0};
    double want_dx[3] = {0.5, 0, 0};
    for (size_t i = 1; i < 3; i++) {
        const double u = sqrt(2 / PI) * (x[i] + 0.044715 * x[i] * x[i] * x[i]);
        const double t = tanh(u);
        const double du = sqrt(2 / PI) * (1 + 3 * 0.044715 * x[i] * x[i]);
        want[i] = x[i] * (1 + t) / 2;
        want_dx[i] = (1 + t) / 2 + x[i] * (1 - t * t) * du / 2;
    }
    check_activation("gelu_tanh", tt_gelu_tanh, x, want, want_dx, 3);
}
END_TEST

START_TEST(gelu_tanh_is_exact_at_extreme_inputs)
{
    /* x³ overflows for ±1e30 in float, which only saturates the sigmoid:
     * ±1e30 give 1e30 and 0, ±inf give +inf and 0. At −5 the value ≈ −4.6e-7
     * is kept, where 1 + tanh(u) cancels to a few units of rounding. */
    double terms[2];
    reference_gelu_tanh_terms(-5, terms);
    const double x[6] = {1e30, -1e30, INFINITY, -INFINITY, NAN, -5};
    const double want[6] = {(double)(tt_real)1e30, 0, INFINITY, 0, NAN, reference_gelu_tanh(-5)};
    const double want_dx[6] = {1, 0, 1, 0, NAN, terms[0] + terms[1]};
    check_activation("gelu_tanh", tt_gelu_tanh, x, want, want_dx, 6);
}
END_TEST

START_TEST(gelu_tanh_matches_reference_across_range)
{
    /* Below −9, sigmoid(2u) < 1e-29 nears the float subnormals. */
    check_against_reference("gelu_tanh", tt_gelu_tanh, gelu_tanh_reference, -9, 9, 16);
}
END_TEST

START_TEST(gelu_tanh_stays_close_to_gelu)
{
    /* Every 1/64 from −8 to 8, with rounding of both ops allowed for. */
    enum { COUNT = 1025 };
    tt_real x_data[COUNT];
    for (size_t i = 0; i < COUNT; i++)
        x_data[i] = (tt_real)(-8 + (double)i / 64);
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, COUNT, x_data, "x");

    tt_tensor *exact = tt_gelu(tape, x);
    tt_tensor *approximate = tt_gelu_tanh(tape, x);

    ck_assert_ptr_nonnull(exact);
    ck_assert_ptr_nonnull(approximate);
    for (size_t i = 0; i < COUNT; i++) {
        const double difference =
            fabs((double)tt_tensor_data(exact)[i] - (double)tt_tensor_data(approximate)[i]);
        const double allowed = GELU_TANH_MAX_ERROR + RTOL_REAL * fabs((double)x_data[i]);
        ck_assert_msg(difference <= allowed, "at x = %g: |gelu − gelu_tanh| = %g > %g",
                      (double)x_data[i], difference, allowed);
    }

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(gelu_tanh_passes_gradcheck)
{
    check_gradients("gelu_tanh", tt_gelu_tanh, 2.0, false);
}
END_TEST

/* ---- Backward into tape tensors ------------------------------------------- */

/* Returns dx of loss = sum of `uses` copies of g(t), t = x + 0, for the
 * 1 × count row x. t is a tape tensor, so the first g backward overwrites
 * its gradient and every later one adds to it. With uses = 0 it returns
 * dx of sum(g(x)) with x itself as g's input, which always accumulates. */
static void gradient_through_tape_tensor(activation_fn activation, const tt_real *x_data,
                                         size_t count, size_t uses, tt_real *dx)
{
    tt_real *ones = malloc(count * sizeof *ones);
    ck_assert_ptr_nonnull(ones);
    for (size_t i = 0; i < count; i++)
        ones[i] = 1;
    const tt_real zero = 0;
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, count, x_data, "x");
    tt_tensor *v = new_tensor_or_fail(count, 1, ones, "v");
    tt_tensor *z = new_tensor_or_fail(1, 1, &zero, "zero");
    require_grad_or_fail(x);

    tt_tensor *y;
    if (uses == 0) {
        y = activation(tape, x);
    } else {
        tt_tensor *t = tt_add(tape, x, z);
        y = activation(tape, t);
        for (size_t use = 1; use < uses; use++)
            y = tt_add(tape, y, activation(tape, t));
    }
    ck_assert_int_eq(tt_tape_backward(tape, tt_matmul(tape, y, v)), TT_OK);
    for (size_t i = 0; i < count; i++)
        dx[i] = tt_tensor_grad(x)[i];

    free(ones);
    tt_tensor_free(x);
    tt_tensor_free(v);
    tt_tensor_free(z);
    tt_tape_free(tape);
}

START_TEST(activations_backward_into_tape_tensor)
{
    /* One use of g(t) overwrites t's gradient with g'(x); two uses give
     * g'(x) + g'(x), exactly twice g'(x). Both must match the direct run
     * on x, which only accumulates. */
    const activation_fn activations[8] = {
        tt_sigmoid,          tt_tanh, leaky_relu_with_test_slope, tt_softplus,
        elu_with_test_alpha, tt_silu, tt_gelu,                    tt_gelu_tanh};
    const char *const names[8] = {"sigmoid", "tanh", "leaky_relu", "softplus",
                                  "elu",     "silu", "gelu",       "gelu_tanh"};
    const tt_real x_data[5] = {-1.5f, -0.25f, 0.5f, 2, 3};

    for (size_t a = 0; a < 8; a++) {
        tt_real direct[5];
        tt_real once[5];
        tt_real twice[5];
        gradient_through_tape_tensor(activations[a], x_data, 5, 0, direct);
        gradient_through_tape_tensor(activations[a], x_data, 5, 1, once);
        gradient_through_tape_tensor(activations[a], x_data, 5, 2, twice);

        tt_real doubled[5];
        for (size_t i = 0; i < 5; i++)
            doubled[i] = 2 * direct[i];
        char what[64];
        snprintf(what, sizeof what, "%s, one use of a tape tensor", names[a]);
        assert_all_equal(what, once, direct, 5);
        snprintf(what, sizeof what, "%s, two uses of a tape tensor", names[a]);
        assert_all_equal(what, twice, doubled, 5);
    }
}
END_TEST

/* ---- Errors shared by every activation -------------------------------------- */

START_TEST(activations_reject_null_input)
{
    const activation_fn activations[8] = {
        tt_sigmoid,          tt_tanh, leaky_relu_with_test_slope, tt_softplus,
        elu_with_test_alpha, tt_silu, tt_gelu,                    tt_gelu_tanh};
    const char *const messages[8] = {
        "sigmoid: x is NULL", "tanh: x is NULL", "leaky_relu: x is NULL", "softplus: x is NULL",
        "elu: x is NULL",     "silu: x is NULL", "gelu: x is NULL",       "gelu_tanh: x is NULL"};
    tt_tape *tape = new_tape_or_fail();

    for (size_t i = 0; i < 8; i++) {
        ck_assert_ptr_null(activations[i](tape, NULL));
        ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
        ck_assert_str_eq(tt_tape_error(tape)->message, messages[i]);
        ck_assert_uint_eq(tt_tape_length(tape), 0);
        tt_tape_reset(tape);
    }

    tt_tape_free(tape);
}
END_TEST

static Suite *activations_suite(void)
{
    Suite *suite = suite_create("activations");

    TCase *sigmoid = add_test_case(suite, "sigmoid");
    tcase_add_test(sigmoid, sigmoid_matches_hand_values);
    tcase_add_test(sigmoid, sigmoid_is_exact_at_extreme_inputs);
    tcase_add_test(sigmoid, sigmoid_matches_reference_across_range);
    tcase_add_test(sigmoid, sigmoid_passes_gradcheck);

    TCase *tanh_case = add_test_case(suite, "tanh");
    tcase_add_test(tanh_case, tanh_matches_hand_values);
    tcase_add_test(tanh_case, tanh_is_exact_at_extreme_inputs);
    tcase_add_test(tanh_case, tanh_matches_reference_across_range);
    tcase_add_test(tanh_case, tanh_passes_gradcheck);

    TCase *leaky = add_test_case(suite, "leaky_relu");
    tcase_add_test(leaky, leaky_relu_matches_hand_values);
    tcase_add_test(leaky, leaky_relu_gradient_at_zero_is_slope);
    tcase_add_test(leaky, leaky_relu_is_exact_at_extreme_inputs);
    tcase_add_test(leaky, leaky_relu_with_zero_slope_equals_relu);
    tcase_add_test(leaky, leaky_relu_keeps_each_records_slope);
    tcase_add_test(leaky, leaky_relu_passes_gradcheck);
    tcase_add_test(leaky, leaky_relu_gradcheck_excludes_kink);
    tcase_add_test(leaky, leaky_relu_rejects_non_finite_slope);

    TCase *softplus = add_test_case(suite, "softplus");
    tcase_add_test(softplus, softplus_matches_hand_values);
    tcase_add_test(softplus, softplus_is_exact_at_extreme_inputs);
    tcase_add_test(softplus, softplus_matches_reference_across_range);
    tcase_add_test(softplus, softplus_passes_gradcheck);

    TCase *elu = add_test_case(suite, "elu");
    tcase_add_test(elu, elu_matches_hand_values);
    tcase_add_test(elu, elu_gradient_at_zero_is_alpha);
    tcase_add_test(elu, elu_is_exact_at_extreme_inputs);
    tcase_add_test(elu, elu_matches_reference_across_range);
    tcase_add_test(elu, elu_passes_gradcheck);
    tcase_add_test(elu, elu_rejects_non_finite_alpha);

    TCase *silu = add_test_case(suite, "silu");
    tcase_add_test(silu, silu_matches_hand_values);
    tcase_add_test(silu, silu_is_exact_at_extreme_inputs);
    tcase_add_test(silu, silu_matches_reference_across_range);
    tcase_add_test(silu, silu_passes_gradcheck);

    TCase *gelu = add_test_case(suite, "gelu");
    tcase_add_test(gelu, gelu_matches_hand_values);
    tcase_add_test(gelu, gelu_is_exact_at_extreme_inputs);
    tcase_add_test(gelu, gelu_matches_reference_across_range);
    tcase_add_test(gelu, gelu_passes_gradcheck);

    TCase *gelu_tanh = add_test_case(suite, "gelu_tanh");
    tcase_add_test(gelu_tanh, gelu_tanh_matches_hand_values);
    tcase_add_test(gelu_tanh, gelu_tanh_is_exact_at_extreme_inputs);
    tcase_add_test(gelu_tanh, gelu_tanh_matches_reference_across_range);
    tcase_add_test(gelu_tanh, gelu_tanh_stays_close_to_gelu);
    tcase_add_test(gelu_tanh, gelu_tanh_passes_gradcheck);

    TCase *tape_tensors = add_test_case(suite, "tape_tensors");
    tcase_add_test(tape_tensors, activations_backward_into_tape_tensor);

    TCase *errors = add_test_case(suite, "errors");
    tcase_add_test(errors, activations_reject_null_input);

    return suite;
}

int main(void)
{
    return run_suite(activations_suite());
}
