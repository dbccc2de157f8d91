/* Initializers: the gains, the bounds of the uniform variants, the mean and
 * variance of the normal variants, the fan that each mode uses,
 * reproducibility from the seed, and the error paths. */
#include <math.h>
#include <string.h>

#include "helpers.h"

/* Shape of the statistical tests: d_out × d_in with different fans, and
 * 2^17 = 131072 draws, enough for the tolerances below to be tight. */
#define ROWS 256
#define COLS 512

/* Tolerance of the statistical checks in standard errors. For N draws of
 * N(0, σ²) the sample mean has standard error σ/√N and the sample variance
 * σ²·√(2/(N−1)). Five standard errors are exceeded by chance with
 * probability below 6e-7 each, so a correct initializer passes for almost
 * every seed. A wrong fan (a factor of 2 or more in the variance
 * here) or a missing gain (√2 in the standard deviation) misses by hundreds
 * of standard errors. */
#define STANDARD_ERRORS 5.0

/* Sample mean and variance (with the N − 1 divisor) of the tensor's values. */
static void sample_moments(tt_tensor *tensor, double *mean, double *variance)
{
    const size_t n = tt_tensor_rows(tensor) * tt_tensor_cols(tensor);
    const tt_real *values = tt_tensor_data(tensor);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += values[i];
    *mean = sum / (double)n;
    double squares = 0.0;
    for (size_t i = 0; i < n; i++)
        squares += ((double)values[i] - *mean) * ((double)values[i] - *mean);
    *variance = squares / (double)(n - 1);
}

/* Checks that the values have mean 0 and standard deviation `std` within
 * STANDARD_ERRORS standard errors. */
static void assert_normal_moments(tt_tensor *tensor, double std, const char *what)
{
    double mean = 0.0;
    double variance = 0.0;
    sample_moments(tensor, &mean, &variance);
    const double n = (double)(tt_tensor_rows(tensor) * tt_tensor_cols(tensor));
    const double mean_tolerance = STANDARD_ERRORS * std / sqrt(n);
    const double variance_tolerance = STANDARD_ERRORS * std * std * sqrt(2.0 / (n - 1.0));
    ck_assert_msg(fabs(mean) <= mean_tolerance, "%s: mean %.6g, want 0 within %.3g", what, mean,
                  mean_tolerance);
    ck_assert_msg(fabs(variance - std * std) <= variance_tolerance,
                  "%s: variance %.6g, want %.6g within %.3g", what, variance, std * std,
                  variance_tolerance);
}

/* Checks that every value lies in [−bound, bound) and that the largest
 * |value| comes within 1% of the bound: with 2^17 uniform draws the chance
 * that none lands in the outer 1% is 0.99^131072, about 1e-572. */
static void assert_uniform_bound(tt_tensor *tensor, double bound, const char *what)
{
    const size_t n = tt_tensor_rows(tensor) * tt_tensor_cols(tensor);
    const tt_real *values = tt_tensor_data(tensor);
    double largest = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double value = values[i];
        if (!(value >= -bound * (1.0 + EPSILON_REAL) && value < bound * (1.0 + EPSILON_REAL)))
            ck_abort_msg("%s: value %zu is %.9g, outside [-%.9g, %.9g)", what, i, value, bound,
                         bound);
        largest = fmax(largest, fabs(value));
    }
    ck_assert_msg(largest >= 0.99 * bound, "%s: largest |value| %.6g, want near the bound %.6g",
                  what, largest, bound);
}

static tt_tensor *new_weight(void)
{
    return new_tensor_or_fail(ROWS, COLS, NULL, "w");
}

START_TEST(gain_matches_pytorch_calculate_gain)
{
    /* torch.nn.init.calculate_gain in PyTorch 1.13. */
    ck_assert(tt_init_gain(TT_NONLINEARITY_LINEAR, 0.0) == 1.0);
    ck_assert(tt_init_gain(TT_NONLINEARITY_SIGMOID, 0.0) == 1.0);
    ck_assert(tt_init_gain(TT_NONLINEARITY_TANH, 0.0) == 5.0 / 3.0);
    ck_assert(tt_init_gain(TT_NONLINEARITY_RELU, 0.0) == sqrt(2.0));
    ck_assert(tt_init_gain(TT_NONLINEARITY_SELU, 0.0) == 0.75);
    /* √(2 / (1 + 0.2²)) = √(2/1.04) */
    ck_assert(tt_init_gain(TT_NONLINEARITY_LEAKY_RELU, 0.2) == sqrt(2.0 / 1.04));
    ck_assert(tt_init_gain(TT_NONLINEARITY_LEAKY_RELU, 0.0) == sqrt(2.0));
    /* The slope matters only for leaky ReLU. */
    ck_assert(tt_init_gain(TT_NONLINEARITY_TANH, 0.5) == 5.0 / 3.0);
    ck_assert(isnan(tt_init_gain(TT_NONLINEARITY_LEAKY_RELU, NAN)));
    ck_assert(isnan(tt_init_gain((tt_nonlinearity)42, 0.0)));
}
END_TEST

START_TEST(xavier_uniform_fills_glorot_bound)
{
    tt_tensor *w = new_weight();
    tt_rng rng;
    tt_rng_seed(&rng, 1);

    ck_assert_int_eq(tt_init_xavier_uniform(w, &rng, 2.0, NULL), TT_OK);

    /* bound = gain·√(6 / (fan_in + fan_out)) = 2·√(6/768) */
    assert_uniform_bound(w, 2.0 * sqrt(6.0 / (ROWS + COLS)), "xavier_uniform, gain 2");
    tt_tensor_free(w);
}
END_TEST

START_TEST(xavier_normal_has_glorot_variance)
{
    tt_tensor *w = new_weight();
    tt_rng rng;
    tt_rng_seed(&rng, 2);

    ck_assert_int_eq(tt_init_xavier_normal(w, &rng, 1.0, NULL), TT_OK);

    assert_normal_moments(w, sqrt(2.0 / (ROWS + COLS)), "xavier_normal");
    tt_tensor_free(w);
}
END_TEST

START_TEST(kaiming_uniform_uses_chosen_fan)
{
    tt_tensor *w = new_weight();
    tt_rng rng;
    tt_rng_seed(&rng, 3);

    /* bound = √3 · gain / √fan, with fan_in = COLS and fan_out = ROWS */
    ck_assert_int_eq(
        tt_init_kaiming_uniform(w, &rng, TT_FAN_IN, TT_NONLINEARITY_RELU, 0.0, NULL), TT_OK);
    assert_uniform_bound(w, sqrt(3.0) * sqrt(2.0) / sqrt(COLS), "kaiming_uniform, fan in");

    ck_assert_int_eq(
        tt_init_kaiming_uniform(w, &rng, TT_FAN_OUT, TT_NONLINEARITY_RELU, 0.0, NULL), TT_OK);
    assert_uniform_bound(w, sqrt(3.0) * sqrt(2.0) / sqrt(ROWS), "kaiming_uniform, fan out");
    tt_tensor_free(w);
}
END_TEST

START_TEST(kaiming_normal_has_he_variance)
{
    tt_tensor *w = new_weight();
    tt_rng rng;
    tt_rng_seed(&rng, 4);

    ck_assert_int_eq(
        tt_init_kaiming_normal(w, &rng, TT_FAN_IN, TT_NONLINEARITY_RELU, 0.0, NULL), TT_OK);
    assert_normal_moments(w, sqrt(2.0 / COLS), "kaiming_normal, relu, fan in");

    ck_assert_int_eq(
        tt_init_kaiming_normal(w, &rng, TT_FAN_OUT, TT_NONLINEARITY_LEAKY_RELU, 0.2, NULL),
        TT_OK);
    assert_normal_moments(w, sqrt(2.0 / 1.04) / sqrt(ROWS), "kaiming_normal, leaky relu, fan out");

    ck_assert_int_eq(
        tt_init_kaiming_normal(w, &rng, TT_FAN_IN, TT_NONLINEARITY_TANH, 0.0, NULL), TT_OK);
    assert_normal_moments(w, (5.0 / 3.0) / sqrt(COLS), "kaiming_normal, tanh, fan in");
    tt_tensor_free(w);
}
END_TEST

START_TEST(same_seed_gives_same_values)
{
    tt_tensor *first = new_tensor_or_fail(30, 20, NULL, "first");
    tt_tensor *second = new_tensor_or_fail(30, 20, NULL, "second");
    tt_rng rng;

    tt_rng_seed(&rng, 77);
    ck_assert_int_eq(
        tt_init_kaiming_normal(first, &rng, TT_FAN_IN, TT_NONLINEARITY_RELU, 0.0, NULL), TT_OK);
    tt_rng_seed(&rng, 77);
    ck_assert_int_eq(
        tt_init_kaiming_normal(second, &rng, TT_FAN_IN, TT_NONLINEARITY_RELU, 0.0, NULL), TT_OK);
    assert_all_equal("kaiming_normal, seed 77 twice", tt_tensor_data(second),
                     tt_tensor_data(first), 600);

    tt_rng_seed(&rng, 78);
    ck_assert_int_eq(tt_init_xavier_uniform(second, &rng, 1.0, NULL), TT_OK);
    tt_rng_seed(&rng, 77);
    ck_assert_int_eq(tt_init_xavier_uniform(first, &rng, 1.0, NULL), TT_OK);
    size_t equal = 0;
    for (size_t i = 0; i < 600; i++)
        equal += tt_tensor_data(first)[i] == tt_tensor_data(second)[i];
    ck_assert_msg(equal == 0, "seeds 77 and 78 gave %zu equal values of 600", equal);

    tt_tensor_free(first);
    tt_tensor_free(second);
}
END_TEST

/* Runs `call`, an initializer given an invalid argument, and checks the
 * status, the message and that the tensor's values did not change. */
#define ASSERT_REJECTED(call, tensor, want_message)                                                 \
    do {                                                                                        \
        tt_real before[4];                                                                      \
        memcpy(before, tt_tensor_data(tensor), sizeof before);                                  \
        tt_error err = {TT_OK, ""};                                                             \
        ck_assert_int_eq((call), TT_ERR_ARG);                                                   \
        ck_assert_int_eq(err.status, TT_ERR_ARG);                                               \
        ck_assert_str_eq(err.message, (want_message));                                          \
        assert_all_equal("values after a rejected call", tt_tensor_data(tensor), before, 4);    \
    } while (0)

START_TEST(initializers_reject_invalid_arguments)
{
    const tt_real values[4] = {1, 2, 3, 4};
    tt_tensor *w = new_tensor_or_fail(2, 2, values, "w");
    tt_rng rng;
    tt_rng_seed(&rng, 5);

    ASSERT_REJECTED(tt_init_xavier_uniform(w, &rng, -1.0, &err), w,
                    "tt_init_xavier_uniform: gain is -1; it must be finite and at least 0");
    ASSERT_REJECTED(tt_init_xavier_normal(w, &rng, NAN, &err), w,
                    "tt_init_xavier_normal: gain is nan; it must be finite and at least 0");
    ASSERT_REJECTED(tt_init_xavier_normal(w, NULL, 1.0, &err), w,
                    "tt_init_xavier_normal: rng is NULL");
    ASSERT_REJECTED(
        tt_init_kaiming_uniform(w, &rng, (tt_fan_mode)9, TT_NONLINEARITY_RELU, 0.0, &err), w,
        "tt_init_kaiming_uniform: unknown fan mode 9; use TT_FAN_IN or TT_FAN_OUT");
    ASSERT_REJECTED(
        tt_init_kaiming_normal(w, &rng, TT_FAN_IN, (tt_nonlinearity)42, 0.0, &err), w,
        "tt_init_kaiming_normal: unknown nonlinearity 42");
    ASSERT_REJECTED(
        tt_init_kaiming_normal(w, &rng, TT_FAN_IN, TT_NONLINEARITY_LEAKY_RELU, INFINITY, &err),
        w, "tt_init_kaiming_normal: leaky ReLU slope is inf; it must be finite");

    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_init_xavier_uniform(NULL, &rng, 1.0, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_init_xavier_uniform: tensor is NULL");

    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = tt_tape_tensor(tape, 2, 2, "x");
    ck_assert_int_eq(
        tt_init_kaiming_uniform(x, &rng, TT_FAN_IN, TT_NONLINEARITY_RELU, 0.0, &err),
        TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_init_kaiming_uniform: tensor (x) is a tape tensor; "
                                  "initialize caller-owned parameters");

    tt_tape_free(tape);
    tt_tensor_free(w);
}
END_TEST

static Suite *init_suite(void)
{
    Suite *suite = suite_create("init");

    TCase *values = add_test_case(suite, "values");
    tcase_add_test(values, gain_matches_pytorch_calculate_gain);
    tcase_add_test(values, xavier_uniform_fills_glorot_bound);
    tcase_add_test(values, xavier_normal_has_glorot_variance);
    tcase_add_test(values, kaiming_uniform_uses_chosen_fan);
    tcase_add_test(values, kaiming_normal_has_he_variance);
    tcase_add_test(values, same_seed_gives_same_values);

    TCase *errors = add_test_case(suite, "errors");
    tcase_add_test(errors, initializers_reject_invalid_arguments);

    return suite;
}

int main(void)
{
    return run_suite(init_suite());
}
