/* Anomaly mode: NaN and infinity in op outputs and in the gradients that
 * backward steps produce become the tape's sticky TT_ERR_NUMERIC. The mode
 * is off by default. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"

/* A value whose product with 10 overflows tt_real, and one that brings it
 * back to order 1e8 when multiplied with it. */
#define HUGE_REAL ((tt_real)(sizeof(tt_real) == sizeof(float) ? 1e38 : 1e308))
#define TINY_REAL ((tt_real)(sizeof(tt_real) == sizeof(float) ? 1e-30 : 1e-300))

/* Hint that ends every anomaly message. */
#define HINT "the usual causes are a too-large learning rate or a NaN or infinity in the input data"

static tt_tape *new_anomaly_tape(void)
{
    tt_tape *tape = new_tape_or_fail();
    ck_assert_int_eq(tt_tape_set_anomaly_check(tape, true), TT_OK);
    return tape;
}

static tt_tensor *new_scalar(tt_real value, const char *name)
{
    return new_tensor_or_fail(1, 1, &value, name);
}

/* ---- Off by default ------------------------------------------------------------ */

START_TEST(anomaly_check_is_off_on_new_tape)
{
    /* relu passes NaN through, and without anomaly mode that is no error. */
    tt_tape *tape = new_tape_or_fail();
    const tt_real x_values[2] = {NAN, 1};
    tt_tensor *x = new_tensor_or_fail(1, 2, x_values, "x");

    ck_assert(!tt_tape_anomaly_check(tape));
    tt_tensor *h = tt_relu(tape, x);

    ck_assert_ptr_nonnull(h);
    ck_assert(isnan(tt_tensor_data(h)[0]));
    assert_tape_ok(tape, "relu of NaN without anomaly mode");

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_without_anomaly_check_keeps_infinite_gradient)
{
    /* The case of backward_reports_overflowing_gradient, without the mode:
     * backward succeeds and the gradient of w is +inf. */
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *w = new_scalar(TINY_REAL, "w");
    tt_tensor *x = new_scalar(HUGE_REAL, "x");
    tt_tensor *k = new_scalar(10, "k");
    require_grad_or_fail(w);

    tt_tensor *loss = tt_matmul(tape, tt_matmul(tape, w, x), k);

    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    ck_assert_msg(isinf(tt_tensor_grad(w)[0]) && tt_tensor_grad(w)[0] > 0, "dw = %g, want inf",
                  (double)tt_tensor_grad(w)[0]);

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tensor_free(k);
    tt_tape_free(tape);
}
END_TEST

START_TEST(anomaly_check_changes_no_result_of_healthy_step)
{
    /* A finite step gives the same bits with and without the mode. */
    tt_rng rng;
    tt_rng_seed(&rng, 7);
    tt_tensor *w = new_uniform_tensor(4, 3, &rng, -1, 1, "w");
    tt_tensor *x = new_uniform_tensor(3, 5, &rng, -1, 1, "x");
    require_grad_or_fail(w);
    int32_t labels[5];
    fill_labels(labels, 5, 4, &rng);
    tt_real loss_value[2];
    tt_real grad[2][12];

    for (int mode = 0; mode < 2; mode++) {
        tt_tape *tape = new_tape_or_fail();
        ck_assert_int_eq(tt_tape_set_anomaly_check(tape, mode == 1), TT_OK);
        tt_tensor_zero_grad(w);
        tt_tensor *loss = tt_cross_entropy(tape, tt_relu(tape, tt_matmul(tape, w, x)), labels, 5);
        ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
        loss_value[mode] = tt_tensor_data(loss)[0];
        memcpy(grad[mode], tt_tensor_grad(w), sizeof grad[mode]);
        tt_tape_free(tape);
    }

    ck_assert_msg(loss_value[0] == loss_value[1], "loss %.9g without the mode, %.9g with it",
                  (double)loss_value[0], (double)loss_value[1]);
    assert_all_equal("gradient of w with anomaly mode", grad[1], grad[0], 12);

    tt_tensor_free(w);
    tt_tensor_free(x);
}
END_TEST

/* ---- Forward ------------------------------------------------------------------- */

START_TEST(anomaly_check_reports_first_nan_in_output)
{
    /* NaN at (1, 2) and (2, 0) of a 3 × 4 input: relu passes both through,
     * and the first in storage order, (1, 2), is reported. */
    tt_tape *tape = new_anomaly_tape();
    tt_real x_values[12] = {0};
    x_values[1 * 4 + 2] = NAN;
    x_values[2 * 4 + 0] = NAN;
    tt_tensor *x = new_tensor_or_fail(3, 4, x_values, "x");

    tt_tensor *h = tt_relu(tape, x);

    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(tt_tape_length(tape), 1);
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_NUMERIC);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "anomaly: the output of relu@0 (3x4) has nan at (1, 2); " HINT);
    ck_assert_ptr_null(tt_relu(tape, h));
    ck_assert_uint_eq(tt_tape_length(tape), 1);

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(anomaly_check_names_op_position_and_infinity)
{
    /* Two healthy ops, then x + x with x = [−v v] and v three quarters of
     * the largest tt_real: the sum overflows to −inf at (0, 0) and +inf at
     * (0, 1) in the op at position 2, and (0, 0) comes first. */
    const tt_real largest = (tt_real)(sizeof(tt_real) == sizeof(float) ? FLT_MAX : DBL_MAX);
    const tt_real values[2] = {-largest * 0.75f, largest * 0.75f};
    tt_tape *tape = new_anomaly_tape();
    tt_tensor *x = new_tensor_or_fail(1, 2, values, "x");

    tt_relu(tape, x);
    tt_relu(tape, x);
    assert_tape_ok(tape, "relu of finite values");
    tt_tensor *sum = tt_add(tape, x, x);

    ck_assert_ptr_nonnull(sum);
    ck_assert_msg(isinf(tt_tensor_data(sum)[0]) && isinf(tt_tensor_data(sum)[1]),
                  "x + x = [%g %g], want [-inf inf]", (double)tt_tensor_data(sum)[0],
                  (double)tt_tensor_data(sum)[1]);
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_NUMERIC);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "anomaly: the output of add@2 (1x2) has -inf at (0, 0); " HINT);

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(anomaly_check_reports_infinite_loss)
{
    /* A label whose logit is −inf has probability 0, so its loss is +inf. */
    tt_tape *tape = new_anomaly_tape();
    const tt_real z_values[2] = {0, -INFINITY};
    const int32_t label = 1;
    tt_tensor *z = new_tensor_or_fail(2, 1, z_values, "z");

    tt_tensor *loss = tt_cross_entropy(tape, z, &label, 1);

    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_NUMERIC);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "anomaly: the output of cross_entropy@0 (1x1) has inf at (0, 0); " HINT);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_ERR_NUMERIC);

    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

/* ---- Backward ------------------------------------------------------------------ */

START_TEST(backward_reports_overflowing_gradient)
{
    /* loss = (w·x)·k with w tiny and x huge: the forward values are finite,
     * but dw = k·x = 10·HUGE_REAL overflows in the backward step of the
     * first matmul. */
    tt_tape *tape = new_anomaly_tape();
    tt_tensor *w = new_scalar(TINY_REAL, "w");
    tt_tensor *x = new_scalar(HUGE_REAL, "x");
    tt_tensor *k = new_scalar(10, "k");
    require_grad_or_fail(w);

    tt_tensor *loss = tt_matmul(tape, tt_matmul(tape, w, x), k);
    assert_tape_ok(tape, "finite forward pass");

    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_ERR_NUMERIC);
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_NUMERIC);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "anomaly: the backward step of matmul@0 left the gradient of input 0 (w) "
                     "(1x1) with inf at (0, 0); " HINT);

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tensor_free(k);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_stops_at_first_anomaly)
{
    /* a = w·x, b = a·k, loss = b·m. The step of b (position 1) gives
     * dk = aᵀ·db = HUGE_REAL·10 = inf. The step of a (position 0) does not
     * run, so the gradient of w stays 0. */
    tt_tape *tape = new_anomaly_tape();
    tt_tensor *w = new_scalar(1, "w");
    tt_tensor *x = new_scalar(HUGE_REAL, "x");
    tt_tensor *k = new_scalar(TINY_REAL, "k");
    tt_tensor *m = new_scalar(10, "m");
    require_grad_or_fail(w);
    require_grad_or_fail(k);

    tt_tensor *loss = tt_matmul(tape, tt_matmul(tape, tt_matmul(tape, w, x), k), m);

    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_ERR_NUMERIC);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "anomaly: the backward step of matmul@1 left the gradient of input 1 (k) "
                     "(1x1) with inf at (0, 0); " HINT);
    ck_assert_msg(tt_tensor_grad(w)[0] == 0, "dw = %g, want 0 (its step must not run)",
                  (double)tt_tensor_grad(w)[0]);

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tensor_free(k);
    tt_tensor_free(m);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_reports_nan_left_in_leaf_gradient)
{
    /* A NaN left in w's gradient by an earlier pass that was not zeroed:
     * the first step that adds into it reports it, at (0, 1). */
    tt_tape *tape = new_anomaly_tape();
    const tt_real w_values[2] = {1, 2};
    const tt_real x_values[2] = {3, 4};
    tt_tensor *w = new_tensor_or_fail(1, 2, w_values, "w");
    tt_tensor *x = new_tensor_or_fail(2, 1, x_values, "x");
    require_grad_or_fail(w);
    tt_tensor_grad(w)[1] = NAN;

    tt_tensor *loss = tt_matmul(tape, w, x);

    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_ERR_NUMERIC);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "anomaly: the backward step of matmul@0 left the gradient of input 0 (w) "
                     "(1x2) with nan at (0, 1); " HINT);

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

/* ---- Setting the mode ---------------------------------------------------------- */

START_TEST(anomaly_check_survives_reset_and_can_be_turned_off)
{
    const tt_real nan_value = NAN;
    tt_tape *tape = new_anomaly_tape();
    tt_tensor *x = new_tensor_or_fail(1, 1, &nan_value, "x");

    tt_tape_reset(tape);
    ck_assert(tt_tape_anomaly_check(tape));
    tt_relu(tape, x);
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_NUMERIC);

    tt_tape_reset(tape);
    ck_assert_int_eq(tt_tape_set_anomaly_check(tape, false), TT_OK);
    ck_assert(!tt_tape_anomaly_check(tape));
    ck_assert_ptr_nonnull(tt_relu(tape, x));
    assert_tape_ok(tape, "relu of NaN after turning the mode off");

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(anomaly_check_rejects_null_tape)
{
    ck_assert_int_eq(tt_tape_set_anomaly_check(NULL, true), TT_ERR_ARG);
    ck_assert(!tt_tape_anomaly_check(NULL));
}
END_TEST

static Suite *anomaly_suite(void)
{
    Suite *suite = suite_create("anomaly");

    TCase *off = add_test_case(suite, "off");
    tcase_add_test(off, anomaly_check_is_off_on_new_tape);
    tcase_add_test(off, backward_without_anomaly_check_keeps_infinite_gradient);
    tcase_add_test(off, anomaly_check_changes_no_result_of_healthy_step);

    TCase *forward = add_test_case(suite, "forward");
    tcase_add_test(forward, anomaly_check_reports_first_nan_in_output);
    tcase_add_test(forward, anomaly_check_names_op_position_and_infinity);
    tcase_add_test(forward, anomaly_check_reports_infinite_loss);

    TCase *backward = add_test_case(suite, "backward");
    tcase_add_test(backward, backward_reports_overflowing_gradient);
    tcase_add_test(backward, backward_stops_at_first_anomaly);
    tcase_add_test(backward, backward_reports_nan_left_in_leaf_gradient);

    TCase *setting = add_test_case(suite, "setting");
    tcase_add_test(setting, anomaly_check_survives_reset_and_can_be_turned_off);
    tcase_add_test(setting, anomaly_check_rejects_null_tape);

    return suite;
}

int main(void)
{
    return run_suite(anomaly_suite());
}
