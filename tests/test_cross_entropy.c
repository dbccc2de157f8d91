/* cross_entropy: fused softmax and mean cross-entropy over columns
 * (eq. 5-10) and its gradient (eq. 11 divided by n). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* Context of the finite-difference loss: x contains the C × n logits. */
typedef struct cross_entropy_context {
    size_t n_classes;
    size_t n;
    const int32_t *labels;
} cross_entropy_context;

static double cross_entropy_loss(const double *x, size_t count, void *context)
{
    const cross_entropy_context *ctx = context;
    (void)count;
    return reference_cross_entropy(x, ctx->labels, ctx->n_classes, ctx->n, NULL);
}

/* Records the cross-entropy of the C × n logits, which require a gradient,
 * runs backward, and returns the loss tensor. */
static tt_tensor *cross_entropy_with_backward(tt_tape *tape, tt_tensor *logits,
                                              const int32_t *labels, size_t n)
{
    tt_tensor *loss = tt_cross_entropy(tape, logits, labels, n);
    ck_assert_msg(loss != NULL, "cross_entropy failed: %s", tt_tape_error(tape)->message);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    return loss;
}

/* ---- Values ----------------------------------------------------------------- */

START_TEST(cross_entropy_output_is_1x1)
{
    const int32_t labels[4] = {0, 1, 2, 0};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(3, 4, NULL, "z");

    tt_tensor *loss = tt_cross_entropy(tape, z, labels, 4);

    ck_assert_ptr_nonnull(loss);
    ck_assert_uint_eq(tt_tensor_rows(loss), 1);
    ck_assert_uint_eq(tt_tensor_cols(loss), 1);
    ck_assert_uint_eq(tt_tape_length(tape), 1);

    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

START_TEST(cross_entropy_matches_hand_example)
{
    /* C = 3 classes, n = 2 samples; z = [1 0; 2 0; 3 0], labels [2 0].
     * Column 0, z = [1 2 3], max 3, label 2:
     *   Σ exp(z − 3) = e^-2 + e^-1 + 1 = 0.1353352832 + 0.3678794412 + 1 = 1.5032147244
     *   lse = 3 + log 1.5032147244 = 3 + 0.4076059644
     *   loss_0 = lse − z_2 = 0.4076059644
     *   softmax = [0.1353352832 0.3678794412 1] / 1.5032147244
     *           = [0.0900305732 0.2447284711 0.6652409558]
     * Column 1, z = [0 0 0], label 0:
     *   loss_1 = log 3 = 1.0986122887, softmax = [1/3 1/3 1/3]
     * L = (0.4076059644 + 1.0986122887) / 2 = 0.7531091266 (eq. 8)
     * dz = (softmax − y) / n (eq. 11 transposed, divided by n):
     *   column 0: [0.0900305732 0.2447284711 0.6652409558 − 1] / 2
     *           = [0.0450152866 0.1223642355 −0.1673795221]
     *   column 1: [1/3 − 1, 1/3, 1/3] / 2 = [−1/3 1/6 1/6] */
    const tt_real z_values[6] = {1, 0, 2, 0, 3, 0};
    const int32_t labels[2] = {2, 0};
    const double want_loss = 0.7531091265562451;
    const double want_dz[6] = {0.04501528658519023,  -1.0 / 3.0, 0.12236423552739882,
                               1.0 / 6.0,            -0.1673795221125891, 1.0 / 6.0};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(3, 2, z_values, "z");
    require_grad_or_fail(z);

    tt_tensor *loss = cross_entropy_with_backward(tape, z, labels, 2);

    const double got_loss = tt_tensor_data(loss)[0];
    ck_assert_msg(is_close(got_loss, want_loss, 0.0, RTOL_REAL), "loss = %.9g, want %.9g",
                  got_loss, want_loss);
    assert_all_close_scaled("dz", tt_tensor_grad(z), want_dz, 3, 2, RTOL_REAL);

    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

START_TEST(cross_entropy_is_exact_for_logits_of_1e30)
{
    /* Column [1e30, -1e30]: the max shift gives exponents 0 and -2e30, so
     * the shifted sum is exactly 1 + 0 and its log exactly 0.
     *   label 0: loss = (1e30 − 1e30) + 0 = 0,      dz = [1 − 1, 0 − 0] = [0 0]
     *   label 1: loss = (1e30 − (−1e30)) + 0 = 2e30, dz = [1 − 0, 0 − 1] = [1 −1]
     * 1e30 is not a binary fraction, so the expected loss is twice the
     * tt_real that stands for 1e30; doubling it is exact. */
    const tt_real big = (tt_real)1e30;
    const tt_real z_values[2] = {big, -big};
    const tt_real want_loss[2] = {0, 2 * big};
    const tt_real want_dz[2][2] = {{0, 0}, {1, -1}};

    for (int32_t label = 0; label < 2; label++) {
        tt_tape *tape = new_tape_or_fail();
        tt_tensor *z = new_tensor_or_fail(2, 1, z_values, "z");
        require_grad_or_fail(z);

        tt_tensor *loss = cross_entropy_with_backward(tape, z, &label, 1);

        const tt_real got = tt_tensor_data(loss)[0];
        ck_assert_msg(got == want_loss[label], "label %d: loss = %.9g, want exactly %.9g",
                      (int)label, (double)got, (double)want_loss[label]);
        char what[32];
        snprintf(what, sizeof what, "dz for label %d", (int)label);
        assert_all_equal(what, tt_tensor_grad(z), want_dz[label], 2);

        tt_tensor_free(z);
        tt_tape_free(tape);
    }
}
END_TEST

START_TEST(cross_entropy_is_finite_for_logits_of_1e4)
{
    /* exp(1e4) overflows even in double; without the max shift the loss
     * would be inf or NaN. Compared with the double reference, which also
     * shifts. */
    enum { CLASSES = 4, SAMPLES = 3 };
    const tt_real z_values[CLASSES * SAMPLES] = {1e4f,  -1e4f, 5e3f, -1e4f, 1e4f,  -5e3f,
                                                 9999,  0,     5e3f, 3,     -1e4f, 1e4f};
    const int32_t labels[SAMPLES] = {2, 1, 0};
    double z_double[CLASSES * SAMPLES];
    double softmax[CLASSES * SAMPLES];
    copy_to_double(z_double, z_values, CLASSES * SAMPLES);
    const double want_loss = reference_cross_entropy(z_double, labels, CLASSES, SAMPLES, softmax);
    double want_dz[CLASSES * SAMPLES];
    for (size_t c = 0; c < CLASSES; c++)
        for (size_t i = 0; i < SAMPLES; i++)
            want_dz[c * SAMPLES + i] =
                (softmax[c * SAMPLES + i] - (labels[i] == (int32_t)c ? 1.0 : 0.0)) / SAMPLES;
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(CLASSES, SAMPLES, z_values, "z");
    require_grad_or_fail(z);

    tt_tensor *loss = cross_entropy_with_backward(tape, z, labels, SAMPLES);

    const double got_loss = tt_tensor_data(loss)[0];
    ck_assert_msg(isfinite(got_loss), "loss = %g, want finite", got_loss);
    ck_assert_msg(is_close(got_loss, want_loss, 0.0, RTOL_REAL), "loss = %.9g, want %.9g",
                  got_loss, want_loss);
    assert_all_close_scaled("dz", tt_tensor_grad(z), want_dz, CLASSES, SAMPLES, RTOL_REAL);

    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

START_TEST(cross_entropy_keeps_small_loss_of_confident_sample)
{
    /* Column [20 0] with label 0: loss = log(1 + e^-20) = 2.0611536e-9.
     * Summing 1 + e^-20 in float rounds to 1 and would give a loss of 0;
     * the op must keep the small loss to tt_real's relative precision. */
    const tt_real z_values[2] = {20, 0};
    const int32_t labels[1] = {0};
    const double want_loss = log1p(exp(-20.0));
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(2, 1, z_values, "z");
    require_grad_or_fail(z);

    tt_tensor *loss = cross_entropy_with_backward(tape, z, labels, 1);

    const double got_loss = tt_tensor_data(loss)[0];
    ck_assert_msg(is_close(got_loss, want_loss, 0.0, RTOL_REAL), "loss = %.9g, want %.9g",
                  got_loss, want_loss);
    const double want_dz[2] = {-exp(-20.0) / (1 + exp(-20.0)), exp(-20.0) / (1 + exp(-20.0))};
    assert_all_close("dz", tt_tensor_grad(z), want_dz, 2, 1, 0.0, RTOL_REAL);

    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

START_TEST(cross_entropy_of_equal_logits_is_log_of_class_count)
{
    /* With all C logits of a column equal, softmax is 1/C for every class
     * whatever the value, so the loss is log C and dz = (1/C − y) / n. */
    const size_t class_counts[] = {2, 3, 10, 1000};
    const tt_real values[] = {0, 7.5f, -1e30f, 1e30f};
    enum { SAMPLES = 2 };
    const int32_t labels[SAMPLES] = {1, 0};

    for (size_t k = 0; k < sizeof class_counts / sizeof class_counts[0]; k++) {
        for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
            const size_t n_classes = class_counts[k];
            tt_tape *tape = new_tape_or_fail();
            tt_tensor *z = new_tensor_or_fail(n_classes, SAMPLES, NULL, "z");
            for (size_t i = 0; i < n_classes * SAMPLES; i++)
                tt_tensor_data(z)[i] = values[v];
            require_grad_or_fail(z);

            tt_tensor *loss = cross_entropy_with_backward(tape, z, labels, SAMPLES);

            const double got = tt_tensor_data(loss)[0];
            const double want = log((double)n_classes);
            ck_assert_msg(is_close(got, want, 0.0, RTOL_REAL),
                          "C = %zu, logits %g: loss = %.9g, want log C = %.9g", n_classes,
                          (double)values[v], got, want);
            double *want_dz = malloc(n_classes * SAMPLES * sizeof *want_dz);
            ck_assert_ptr_nonnull(want_dz);
            for (size_t c = 0; c < n_classes; c++)
                for (size_t i = 0; i < SAMPLES; i++)
                    want_dz[c * SAMPLES + i] =
                        (1.0 / (double)n_classes - (labels[i] == (int32_t)c ? 1.0 : 0.0)) /
                        SAMPLES;
            char what[64];
            snprintf(what, sizeof what, "dz for C = %zu, logits %g", n_classes, (double)values[v]);
            assert_all_close_scaled(what, tt_tensor_grad(z), want_dz, n_classes, SAMPLES,
                                    RTOL_REAL);

            free(want_dz);
            tt_tensor_free(z);
            tt_tape_free(tape);
        }
    }
}
END_TEST

START_TEST(cross_entropy_of_single_class_is_zero)
{
    /* With C = 1 the softmax is 1 and equals the one-hot label. */
    const tt_real z_values[3] = {-4, 0, 12};
    const int32_t labels[3] = {0, 0, 0};
    const tt_real zeros[3] = {0, 0, 0};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(1, 3, z_values, "z");
    require_grad_or_fail(z);

    tt_tensor *loss = cross_entropy_with_backward(tape, z, labels, 3);

    ck_assert_msg(tt_tensor_data(loss)[0] == 0, "loss = %g, want 0",
                  (double)tt_tensor_data(loss)[0]);
    assert_all_equal("dz", tt_tensor_grad(z), zeros, 3);

    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

/* ---- Gradient --------------------------------------------------------------- */

START_TEST(cross_entropy_gradient_columns_sum_to_zero)
{
    /* Σ_c (softmax_c − y_c) = 1 − 1 = 0 in every column. The engine's sum
     * carries the rounding of C terms of size up to 1/n. */
    enum { CLASSES = 7, SAMPLES = 5 };
    const double tolerance = CLASSES * 4.0 * EPSILON_REAL / SAMPLES;

    for (uint64_t seed = 1; seed <= 3; seed++) {
        tt_rng rng;
        tt_rng_seed(&rng, seed);
        int32_t labels[SAMPLES];
        fill_labels(labels, SAMPLES, CLASSES, &rng);
        tt_tape *tape = new_tape_or_fail();
        tt_tensor *z = new_tensor_or_fail(CLASSES, SAMPLES, NULL, "z");
        tt_tensor_fill_normal(z, &rng, 0, 3);
        require_grad_or_fail(z);

        cross_entropy_with_backward(tape, z, labels, SAMPLES);

        const tt_real *dz = tt_tensor_grad(z);
        for (size_t i = 0; i < SAMPLES; i++) {
            double sum = 0.0;
            for (size_t c = 0; c < CLASSES; c++)
                sum += dz[c * SAMPLES + i];
            ck_assert_msg(fabs(sum) <= tolerance,
                          "seed %llu, column %zu: gradient sums to %.3g, want 0 +- %.3g",
                          (unsigned long long)seed, i, sum, tolerance);
        }

        tt_tensor_free(z);
        tt_tape_free(tape);
    }
}
END_TEST

START_TEST(cross_entropy_backward_matches_finite_differences)
{
    const size_t shapes[][2] = {{2, 1}, {3, 1}, {5, 4}, {10, 7}};
    const uint64_t seeds[] = {1, 2, 3};

    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (size_t seed = 0; seed < sizeof seeds / sizeof seeds[0]; seed++) {
            const size_t n_classes = shapes[s][0];
            const size_t n = shapes[s][1];
            const size_t size = n_classes * n;
            tt_rng rng;
            tt_rng_seed(&rng, seeds[seed]);
            int32_t *labels = malloc(n * sizeof *labels);
            double *point = malloc(size * sizeof *point);
            double *want = malloc(size * sizeof *want);
            ck_assert_ptr_nonnull(labels);
            ck_assert_ptr_nonnull(point);
            ck_assert_ptr_nonnull(want);
            fill_labels(labels, n, n_classes, &rng);
            tt_tape *tape = new_tape_or_fail();
            tt_tensor *z = new_tensor_or_fail(n_classes, n, NULL, "z");
            tt_tensor_fill_normal(z, &rng, 0, 2);
            require_grad_or_fail(z);

            tt_tensor *loss = cross_entropy_with_backward(tape, z, labels, n);

            copy_to_double(point, tt_tensor_data(z), size);
            cross_entropy_context context = {n_classes, n, labels};
            const double want_loss = cross_entropy_loss(point, size, &context);
            central_difference(cross_entropy_loss, &context, point, size, FINITE_DIFFERENCE_STEP,
                               want);
            const double got_loss = tt_tensor_data(loss)[0];
            ck_assert_msg(is_close(got_loss, want_loss, 0.0, RTOL_REAL),
                          "%zux%zu, seed %llu: loss = %.9g, want %.9g", n_classes, n,
                          (unsigned long long)seeds[seed], got_loss, want_loss);
            char what[64];
            snprintf(what, sizeof what, "dz of %zux%zu, seed %llu", n_classes, n,
                     (unsigned long long)seeds[seed]);
            assert_all_close_scaled(what, tt_tensor_grad(z), want, n_classes, n,
                                    RTOL_FINITE_DIFFERENCE);

            free(labels);
            free(point);
            free(want);
            tt_tensor_free(z);
            tt_tape_free(tape);
        }
    }
}
END_TEST

START_TEST(cross_entropy_backward_scales_by_upstream_gradient)
{
    /* total = L·k with k = 3, so dtotal/dL = 3 and dz = 3·(softmax − y)/n.
     * z and labels as in the hand example. */
    const tt_real z_values[6] = {1, 0, 2, 0, 3, 0};
    const int32_t labels[2] = {2, 0};
    const tt_real k_value = 3;
    const double want_dz[6] = {3 * 0.04501528658519023, 3 * (-1.0 / 3.0),
                               3 * 0.12236423552739882, 3 * (1.0 / 6.0),
                               3 * -0.1673795221125891, 3 * (1.0 / 6.0)};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(3, 2, z_values, "z");
    tt_tensor *k = new_tensor_or_fail(1, 1, &k_value, "k");
    require_grad_or_fail(z);

    tt_tensor *total = tt_matmul(tape, tt_cross_entropy(tape, z, labels, 2), k);
    ck_assert_int_eq(tt_tape_backward(tape, total), TT_OK);

    assert_all_close_scaled("dz", tt_tensor_grad(z), want_dz, 3, 2, RTOL_REAL);

    tt_tensor_free(z);
    tt_tensor_free(k);
    tt_tape_free(tape);
}
END_TEST

START_TEST(cross_entropy_copies_labels)
{
    /* The caller reuses the labels array between the op and backward. The
     * gradient must still follow the labels given to the op, [2 0], and so
     * equal the gradient of cross_entropy_matches_hand_example. */
    const tt_real z_values[6] = {1, 0, 2, 0, 3, 0};
    int32_t labels[2] = {2, 0};
    const double want_dz[6] = {0.04501528658519023,  -1.0 / 3.0, 0.12236423552739882,
                               1.0 / 6.0,            -0.1673795221125891, 1.0 / 6.0};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(3, 2, z_values, "z");
    require_grad_or_fail(z);

    tt_tensor *loss = tt_cross_entropy(tape, z, labels, 2);
    labels[0] = 0;
    labels[1] = 1;
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    assert_all_close_scaled("dz", tt_tensor_grad(z), want_dz, 3, 2, RTOL_REAL);

    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

/* ---- Errors ----------------------------------------------------------------- */

/* Runs the cross-entropy of a named 3 × 2 logits tensor after one relu,
 * with labels {first, second}, and checks that it fails with TT_ERR_RANGE
 * and `message`, records nothing, and that the tape works after a reset. */
static void assert_label_rejected(int32_t first, int32_t second, const char *message)
{
    const int32_t labels[2] = {first, second};
    const int32_t valid_labels[2] = {0, 2};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(3, 2, NULL, "z2");
    ck_assert_ptr_nonnull(tt_relu(tape, z));

    ck_assert_ptr_null(tt_cross_entropy(tape, z, labels, 2));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_RANGE);
    ck_assert_int_eq(tt_tape_error(tape)->status, TT_ERR_RANGE);
    ck_assert_str_eq(tt_tape_error(tape)->message, message);
    ck_assert_uint_eq(tt_tape_length(tape), 1);

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_cross_entropy(tape, z, valid_labels, 2));
    assert_tape_ok(tape, "cross_entropy after the reset");

    tt_tensor_free(z);
    tt_tape_free(tape);
}

START_TEST(cross_entropy_rejects_negative_label)
{
    assert_label_rejected(0, -1,
                          "cross_entropy: label -1 for column 1 is outside [0, 3); logits (z2) "
                          "is 3x2");
}
END_TEST

START_TEST(cross_entropy_rejects_label_equal_to_class_count)
{
    assert_label_rejected(3, 0,
                          "cross_entropy: label 3 for column 0 is outside [0, 3); logits (z2) "
                          "is 3x2");
}
END_TEST

START_TEST(cross_entropy_rejects_extreme_labels)
{
    assert_label_rejected(INT32_MIN, 0,
                          "cross_entropy: label -2147483648 for column 0 is outside [0, 3); "
                          "logits (z2) is 3x2");
    assert_label_rejected(1, INT32_MAX,
                          "cross_entropy: label 2147483647 for column 1 is outside [0, 3); "
                          "logits (z2) is 3x2");
}
END_TEST

START_TEST(cross_entropy_rejects_label_count_mismatch)
{
    const int32_t labels[3] = {0, 1, 2};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(3, 2, NULL, "z2");

    ck_assert_ptr_null(tt_cross_entropy(tape, z, labels, 3));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "cross_entropy: logits (z2) is 3x2 but the label count is 3; there must be "
                     "one label per column");

    tt_tape_reset(tape);
    ck_assert_ptr_null(tt_cross_entropy(tape, z, labels, 1));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "cross_entropy: logits (z2) is 3x2 but the label count is 1; there must be "
                     "one label per column");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_cross_entropy(tape, z, labels, 2));
    assert_tape_ok(tape, "cross_entropy after the reset");

    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

START_TEST(cross_entropy_rejects_null_labels)
{
    const int32_t labels[2] = {0, 1};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *z = new_tensor_or_fail(3, 2, NULL, "z2");

    ck_assert_ptr_null(tt_cross_entropy(tape, z, NULL, 2));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "cross_entropy: labels is NULL");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_cross_entropy(tape, z, labels, 2));
    assert_tape_ok(tape, "cross_entropy after the reset");

    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

START_TEST(cross_entropy_rejects_null_logits)
{
    const int32_t labels[2] = {0, 1};
    tt_tape *tape = new_tape_or_fail();

    ck_assert_ptr_null(tt_cross_entropy(tape, NULL, labels, 2));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "cross_entropy: logits is NULL");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tape_reset(tape);
    tt_tensor *z = new_tensor_or_fail(3, 2, NULL, "z2");
    ck_assert_ptr_nonnull(tt_cross_entropy(tape, z, labels, 2));
    assert_tape_ok(tape, "cross_entropy after the reset");

    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

static Suite *cross_entropy_suite(void)
{
    Suite *suite = suite_create("cross_entropy");

    TCase *values = add_test_case(suite, "values");
    tcase_add_test(values, cross_entropy_output_is_1x1);
    tcase_add_test(values, cross_entropy_matches_hand_example);
    tcase_add_test(values, cross_entropy_is_exact_for_logits_of_1e30);
    tcase_add_test(values, cross_entropy_is_finite_for_logits_of_1e4);
    tcase_add_test(values, cross_entropy_keeps_small_loss_of_confident_sample);
    tcase_add_test(values, cross_entropy_of_equal_logits_is_log_of_class_count);
    tcase_add_test(values, cross_entropy_of_single_class_is_zero);

    TCase *gradient = add_test_case(suite, "gradient");
    tcase_add_test(gradient, cross_entropy_gradient_columns_sum_to_zero);
    tcase_add_test(gradient, cross_entropy_backward_matches_finite_differences);
    tcase_add_test(gradient, cross_entropy_backward_scales_by_upstream_gradient);
    tcase_add_test(gradient, cross_entropy_copies_labels);

    TCase *errors = add_test_case(suite, "errors");
    tcase_add_test(errors, cross_entropy_rejects_negative_label);
    tcase_add_test(errors, cross_entropy_rejects_label_equal_to_class_count);
    tcase_add_test(errors, cross_entropy_rejects_extreme_labels);
    tcase_add_test(errors, cross_entropy_rejects_label_count_mismatch);
    tcase_add_test(errors, cross_entropy_rejects_null_labels);
    tcase_add_test(errors, cross_entropy_rejects_null_logits);

    return suite;
}

int main(void)
{
    return run_suite(cross_entropy_suite());
}
