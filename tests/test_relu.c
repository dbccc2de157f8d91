/* relu: max(0, x) elementwise (eq. 15) and its derivative (eq. 16). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"

/* Random inputs of the finite-difference test have magnitudes in
 * [KINK_MARGIN, 2): a central difference with step FINITE_DIFFERENCE_STEP
 * never crosses the kink at 0, where ReLU has no derivative. */
#define KINK_MARGIN 0.1

/* Context of the finite-difference loss: x contains the rows × cols input. */
typedef struct relu_loss_context {
    const loss_head *head;
} relu_loss_context;

static double relu_loss(const double *x, size_t count, void *context)
{
    const relu_loss_context *ctx = context;
    double *h = malloc(count * sizeof *h);
    ck_assert_ptr_nonnull(h);
    for (size_t i = 0; i < count; i++)
        h[i] = x[i] > 0 ? x[i] : 0;
    const double loss = reference_loss_head(ctx->head, h);
    free(h);
    return loss;
}

/* Records loss = relu(x)·v for a 1 × count row x and a count × 1 column v,
 * runs backward and returns the relu output, whose gradient it retains.
 * dloss/drelu(x) is vᵀ. */
static tt_tensor *relu_dot(tt_tape *tape, tt_tensor *x, tt_tensor *v)
{
    tt_tensor *h = tt_relu(tape, x);
    retain_grad_or_fail(h);
    tt_tensor *loss = tt_matmul(tape, h, v);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    return h;
}

START_TEST(relu_keeps_shape)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(3, 7, NULL, "x");

    tt_tensor *h = tt_relu(tape, x);

    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(tt_tensor_rows(h), 3);
    ck_assert_uint_eq(tt_tensor_cols(h), 7);
    ck_assert_uint_eq(tt_tape_length(tape), 1);

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(relu_zeroes_negative_values)
{
    /* max(0, x) for x = [-2 -0.5 0 0.5 3; -1e-30 1e-30 -1e30 1e30 -0.0] (eq. 15). */
    const tt_real x_values[10] = {-2, -0.5f, 0, 0.5f, 3, -1e-30f, 1e-30f, -1e30f, 1e30f, -0.0f};
    const tt_real want[10] = {0, 0, 0, 0.5f, 3, 0, 1e-30f, 0, 1e30f, 0};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(2, 5, x_values, "x");

    tt_tensor *h = tt_relu(tape, x);

    ck_assert_ptr_nonnull(h);
    assert_all_equal("relu(x)", tt_tensor_data(h), want, 10);

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(relu_is_zero_at_zero)
{
    const tt_real zero = 0;
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, 1, &zero, "x");

    tt_tensor *h = tt_relu(tape, x);

    ck_assert_ptr_nonnull(h);
    ck_assert_msg(tt_tensor_data(h)[0] == 0, "relu(0) = %g, want 0", (double)tt_tensor_data(h)[0]);

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(relu_propagates_nan_and_infinity)
{
    const tt_real x_values[3] = {NAN, -INFINITY, INFINITY};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, 3, x_values, "x");

    tt_tensor *h = tt_relu(tape, x);

    ck_assert_ptr_nonnull(h);
    const tt_real *out = tt_tensor_data(h);
    ck_assert_msg(isnan(out[0]), "relu(NaN) = %g, want NaN", (double)out[0]);
    ck_assert_msg(out[1] == 0, "relu(-inf) = %g, want 0", (double)out[1]);
    ck_assert_msg(isinf(out[2]) && out[2] > 0, "relu(inf) = %g, want inf", (double)out[2]);

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(relu_backward_passes_gradient_where_input_is_positive)
{
    /* loss = relu(x)·v with x = [-2 -0.5 0.5 3] and v = [1 2 3 4]ᵀ:
     * relu(x) = [0 0 0.5 3], loss = 0.5·3 + 3·4 = 13.5, and
     * dx = v where x > 0 (eq. 16) = [0 0 3 4]. */
    const tt_real x_values[4] = {-2, -0.5f, 0.5f, 3};
    const tt_real v_values[4] = {1, 2, 3, 4};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, 4, x_values, "x");
    tt_tensor *v = new_tensor_or_fail(4, 1, v_values, "v");
    require_grad_or_fail(x);

    tt_tensor *h = relu_dot(tape, x, v);

    ck_assert_ptr_nonnull(h);
    const tt_real want_dh[4] = {1, 2, 3, 4};
    assert_all_equal("drelu(x)", tt_tensor_grad(h), want_dh, 4);
    const tt_real want_dx[4] = {0, 0, 3, 4};
    assert_all_equal("dx", tt_tensor_grad(x), want_dx, 4);

    tt_tensor_free(x);
    tt_tensor_free(v);
    tt_tape_free(tape);
}
END_TEST

START_TEST(relu_gradient_is_zero_at_zero)
{
    /* ReLU'(0) = 0 (eq. 16): with x = [0 -0.0 1e-30] and v = [5 6 7]ᵀ,
     * dx = [0 0 7]. A tiny positive input still passes its gradient. */
    const tt_real x_values[3] = {0, -0.0f, 1e-30f};
    const tt_real v_values[3] = {5, 6, 7};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, 3, x_values, "x");
    tt_tensor *v = new_tensor_or_fail(3, 1, v_values, "v");
    require_grad_or_fail(x);

    relu_dot(tape, x, v);

    const tt_real want_dx[3] = {0, 0, 7};
    assert_all_equal("dx", tt_tensor_grad(x), want_dx, 3);

    tt_tensor_free(x);
    tt_tensor_free(v);
    tt_tape_free(tape);
}
END_TEST

START_TEST(relu_gradient_is_zero_where_input_is_nan)
{
    /* Backward passes the gradient only where x > 0, and NaN > 0 is false,
     * so a NaN input gets 0 while its neighbour gets its gradient. The loss
     * itself is NaN. */
    const tt_real x_values[2] = {NAN, 2};
    const tt_real v_values[2] = {5, 6};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, 2, x_values, "x");
    tt_tensor *v = new_tensor_or_fail(2, 1, v_values, "v");
    require_grad_or_fail(x);

    relu_dot(tape, x, v);

    const tt_real want_dx[2] = {0, 6};
    assert_all_equal("dx", tt_tensor_grad(x), want_dx, 2);

    tt_tensor_free(x);
    tt_tensor_free(v);
    tt_tape_free(tape);
}
END_TEST

START_TEST(relu_backward_matches_finite_differences)
{
    const size_t shapes[][2] = {{1, 1}, {1, 7}, {5, 1}, {4, 6}, {9, 13}};
    const uint64_t seeds[] = {1, 2, 3};

    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (size_t seed = 0; seed < sizeof seeds / sizeof seeds[0]; seed++) {
            const size_t rows = shapes[s][0];
            const size_t cols = shapes[s][1];
            const size_t size = rows * cols;
            tt_rng rng;
            tt_rng_seed(&rng, seeds[seed]);
            tt_tape *tape = new_tape_or_fail();
            tt_tensor *x = new_tensor_or_fail(rows, cols, NULL, "x");
            fill_away_from_zero(tt_tensor_data(x), size, &rng, KINK_MARGIN, 2.0);
            require_grad_or_fail(x);
            loss_head head = new_loss_head(rows, cols, &rng);

            tt_tensor *h = tt_relu(tape, x);
            ck_assert_int_eq(tt_tape_backward(tape, apply_loss_head(tape, &head, h)), TT_OK);

            double *point = malloc(size * sizeof *point);
            double *want = malloc(size * sizeof *want);
            ck_assert_ptr_nonnull(point);
            ck_assert_ptr_nonnull(want);
            copy_to_double(point, tt_tensor_data(x), size);
            relu_loss_context context = {&head};
            central_difference(relu_loss, &context, point, size, FINITE_DIFFERENCE_STEP, want);

            char what[64];
            snprintf(what, sizeof what, "dx of %zux%zu, seed %llu", rows, cols,
                     (unsigned long long)seeds[seed]);
            assert_all_close_scaled(what, tt_tensor_grad(x), want, rows, cols,
                                    RTOL_FINITE_DIFFERENCE);

            free(point);
            free(want);
            free_loss_head(&head);
            tt_tensor_free(x);
            tt_tape_free(tape);
        }
    }
}
END_TEST

START_TEST(relu_rejects_null_input)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(2, 2, NULL, "x");

    ck_assert_ptr_null(tt_relu(tape, NULL));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "relu: x is NULL");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_relu(tape, x));
    assert_tape_ok(tape, "relu after the reset");

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(relu_rejects_tensor_of_another_tape)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tape *other = new_tape_or_fail();
    tt_tensor *batch = tt_tape_tensor(other, 2, 2, "batch");
    tt_tensor *x = new_tensor_or_fail(2, 2, NULL, "x");
    ck_assert_ptr_nonnull(batch);

    ck_assert_ptr_null(tt_relu(tape, batch));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "relu: x (batch) belongs to another tape");

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_relu(tape, x));
    assert_tape_ok(tape, "relu after the reset");

    tt_tensor_free(x);
    tt_tape_free(tape);
    tt_tape_free(other);
}
END_TEST

static Suite *relu_suite(void)
{
    Suite *suite = suite_create("relu");

    TCase *forward = add_test_case(suite, "forward");
    tcase_add_test(forward, relu_keeps_shape);
    tcase_add_test(forward, relu_zeroes_negative_values);
    tcase_add_test(forward, relu_is_zero_at_zero);
    tcase_add_test(forward, relu_propagates_nan_and_infinity);

    TCase *backward = add_test_case(suite, "backward");
    tcase_add_test(backward, relu_backward_passes_gradient_where_input_is_positive);
    tcase_add_test(backward, relu_gradient_is_zero_at_zero);
    tcase_add_test(backward, relu_gradient_is_zero_where_input_is_nan);
    tcase_add_test(backward, relu_backward_matches_finite_differences);

    TCase *errors = add_test_case(suite, "errors");
    tcase_add_test(errors, relu_rejects_null_input);
    tcase_add_test(errors, relu_rejects_tensor_of_another_tape);

    return suite;
}

int main(void)
{
    return run_suite(relu_suite());
}
