/* The tape: recording, the sticky error, reset and reuse, tape tensors,
 * backward's argument checks, fan-out and gradient accumulation. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* A 1 × 1 caller-owned tensor holding `value`. */
static tt_tensor *new_scalar(tt_real value, const char *name)
{
    return new_tensor_or_fail(1, 1, &value, name);
}

/* Records a matmul whose shapes do not fit, so the tape fails with
 * TT_ERR_SHAPE, and checks that it did. */
static void fail_with_shape_error(tt_tape *tape, tt_tensor *w, tt_tensor *x)
{
    ck_assert_ptr_null(tt_matmul(tape, w, x));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_SHAPE);
}

/* Message of fail_with_shape_error for a 2x3 w and a 2x2 x. */
static const char *const shape_error_message =
    "matmul: A (w) is 2x3 but B (x) is 2x2; the columns of A must equal the rows of B";

/* Runs loss = a·b on the tape, backward, and checks that the tape is usable:
 * the loss is 6 and a's gradient is b = 3 (both start at zero gradient). */
static void assert_tape_computes_product(tt_tape *tape)
{
    tt_tensor *a = new_scalar(2, "a");
    tt_tensor *b = new_scalar(3, "b");
    require_grad_or_fail(a);

    tt_tensor *loss = tt_matmul(tape, a, b);
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    ck_assert_msg(tt_tensor_data(loss)[0] == 6, "loss = %g, want 6",
                  (double)tt_tensor_data(loss)[0]);
    ck_assert_msg(tt_tensor_grad(a)[0] == 3, "da = %g, want 3", (double)tt_tensor_grad(a)[0]);

    tt_tensor_free(a);
    tt_tensor_free(b);
}

/* ---- New tape, status names --------------------------------------------- */

START_TEST(tape_new_is_healthy_and_empty)
{
    tt_tape *tape = new_tape_or_fail();

    ck_assert_int_eq(tt_tape_status(tape), TT_OK);
    ck_assert_int_eq(tt_tape_error(tape)->status, TT_OK);
    ck_assert_str_eq(tt_tape_error(tape)->message, "");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tape_free(tape);
}
END_TEST

START_TEST(tape_free_ignores_null)
{
    tt_tape_free(NULL);
}
END_TEST

START_TEST(tape_length_counts_ops_but_not_tape_tensors)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = tt_tape_tensor(tape, 2, 2, "x");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tensor *h = tt_relu(tape, x);
    ck_assert_uint_eq(tt_tape_length(tape), 1);
    (void)tt_add(tape, h, x);
    ck_assert_uint_eq(tt_tape_length(tape), 2);

    tt_tape_free(tape);
}
END_TEST

START_TEST(status_str_names_every_status)
{
    ck_assert_str_eq(tt_status_str(TT_OK), "success");
    ck_assert_str_eq(tt_status_str(TT_ERR_ARG), "invalid argument");
    ck_assert_str_eq(tt_status_str(TT_ERR_SHAPE), "shape mismatch");
    ck_assert_str_eq(tt_status_str(TT_ERR_RANGE), "value out of range");
    ck_assert_str_eq(tt_status_str(TT_ERR_NOMEM), "out of memory");
    ck_assert_str_eq(tt_status_str(TT_ERR_STATE), "invalid state");
    ck_assert_str_eq(tt_status_str(TT_ERR_NUMERIC), "NaN or infinity");
}
END_TEST

/* ---- Sticky error -------------------------------------------------------- */

START_TEST(ops_after_failure_return_null)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *w = new_tensor_or_fail(2, 3, NULL, "w");
    tt_tensor *x = new_tensor_or_fail(2, 2, NULL, "x");
    const int32_t labels[2] = {0, 1};
    fail_with_shape_error(tape, w, x);
    const size_t length = tt_tape_length(tape);

    ck_assert_ptr_null(tt_matmul(tape, x, x));
    ck_assert_ptr_null(tt_add(tape, x, x));
    ck_assert_ptr_null(tt_relu(tape, x));
    ck_assert_ptr_null(tt_cross_entropy(tape, x, labels, 2));
    ck_assert_ptr_null(tt_tape_tensor(tape, 2, 2, "batch"));

    ck_assert_uint_eq(tt_tape_length(tape), length);
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_SHAPE);
    ck_assert_str_eq(tt_tape_error(tape)->message, shape_error_message);

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(failed_op_records_nothing)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *w = new_tensor_or_fail(2, 3, NULL, "w");
    tt_tensor *x = new_tensor_or_fail(2, 2, NULL, "x");
    ck_assert_ptr_nonnull(tt_relu(tape, x));

    fail_with_shape_error(tape, w, x);

    ck_assert_uint_eq(tt_tape_length(tape), 1);

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(later_error_keeps_first_message)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *w = new_tensor_or_fail(2, 3, NULL, "w");
    tt_tensor *x = new_tensor_or_fail(2, 2, NULL, "x");
    fail_with_shape_error(tape, w, x);

    /* NULL is an argument error on a healthy tape, but here it is how a
     * failure propagates and must not replace the first error. */
    ck_assert_ptr_null(tt_relu(tape, NULL));
    ck_assert_int_eq(tt_tape_backward(tape, NULL), TT_ERR_SHAPE);

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_SHAPE);
    ck_assert_int_eq(tt_tape_error(tape)->status, TT_ERR_SHAPE);
    ck_assert_str_eq(tt_tape_error(tape)->message, shape_error_message);

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(chained_ops_report_first_failure)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *w = new_tensor_or_fail(2, 3, NULL, "w");
    tt_tensor *x = new_tensor_or_fail(2, 2, NULL, "x");
    tt_tensor *b = new_tensor_or_fail(2, 1, NULL, "b");
    const int32_t labels[2] = {0, 1};

    tt_tensor *loss = tt_cross_entropy(tape, tt_relu(tape, tt_add(tape, tt_matmul(tape, w, x), b)),
                                       labels, 2);

    ck_assert_ptr_null(loss);
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_SHAPE);
    ck_assert_str_eq(tt_tape_error(tape)->message, shape_error_message);
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tensor_free(b);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_after_failure_returns_sticky_status)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_scalar(2, "a");
    tt_tensor *w = new_tensor_or_fail(2, 3, NULL, "w");
    tt_tensor *x = new_tensor_or_fail(2, 2, NULL, "x");
    require_grad_or_fail(a);
    tt_tensor *loss = tt_matmul(tape, a, a);
    ck_assert_ptr_nonnull(loss);
    fail_with_shape_error(tape, w, x);

    /* The loss was recorded before the failure, yet backward must not run. */
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_ERR_SHAPE);

    ck_assert_msg(tt_tensor_grad(a)[0] == 0, "da = %g, want 0: backward ran on a failed tape",
                  (double)tt_tensor_grad(a)[0]);
    ck_assert_str_eq(tt_tape_error(tape)->message, shape_error_message);

    tt_tensor_free(a);
    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(reset_clears_error_and_tape_works_again)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *w = new_tensor_or_fail(2, 3, NULL, "w");
    tt_tensor *x = new_tensor_or_fail(2, 2, NULL, "x");
    fail_with_shape_error(tape, w, x);

    tt_tape_reset(tape);

    ck_assert_int_eq(tt_tape_status(tape), TT_OK);
    ck_assert_int_eq(tt_tape_error(tape)->status, TT_OK);
    ck_assert_str_eq(tt_tape_error(tape)->message, "");
    ck_assert_uint_eq(tt_tape_length(tape), 0);
    assert_tape_computes_product(tape);

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(op_rejects_null_input_on_healthy_tape)
{
    tt_tape *tape = new_tape_or_fail();

    ck_assert_ptr_null(tt_relu(tape, NULL));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "relu: x is NULL");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tape_reset(tape);
    assert_tape_computes_product(tape);
    tt_tape_free(tape);
}
END_TEST

START_TEST(op_rejects_tensor_of_another_tape)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tape *other = new_tape_or_fail();
    tt_tensor *x = tt_tape_tensor(other, 2, 2, "x");
    tt_tensor *h = tt_relu(other, x);
    tt_tensor *w = new_tensor_or_fail(2, 2, NULL, "w");
    ck_assert_ptr_nonnull(h);

    ck_assert_ptr_null(tt_add(tape, w, x));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "add: B (x) belongs to another tape");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    /* An unnamed op output is shown as OP@POSITION. */
    tt_tape_reset(tape);
    ck_assert_ptr_null(tt_matmul(tape, h, w));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "matmul: A (relu@0) belongs to another tape");

    /* The other tape never saw the error. */
    assert_tape_ok(other, "the tape that owns x");

    tt_tape_reset(tape);
    assert_tape_computes_product(tape);
    tt_tensor_free(w);
    tt_tape_free(tape);
    tt_tape_free(other);
}
END_TEST

/* ---- Tape tensors ---------------------------------------------------------- */

START_TEST(tape_tensor_is_zero_filled_with_its_shape)
{
    tt_tape *tape = new_tape_or_fail();

    tt_tensor *batch = tt_tape_tensor(tape, 3, 4, "batch");

    ck_assert_ptr_nonnull(batch);
    ck_assert_uint_eq(tt_tensor_rows(batch), 3);
    ck_assert_uint_eq(tt_tensor_cols(batch), 4);
    ck_assert_str_eq(tt_tensor_name(batch), "batch");
    ck_assert_ptr_null(tt_tensor_grad(batch));
    const tt_real zeros[12] = {0};
    assert_all_equal("batch", tt_tensor_data(batch), zeros, 12);
    assert_tape_ok(tape, "after tt_tape_tensor");

    tt_tape_free(tape);
}
END_TEST

START_TEST(tape_tensor_is_zero_filled_after_reset)
{
    /* After a reset the tape reuses its memory, which still contains the
     * last step's values. A new tape tensor must not show them. */
    tt_tape *tape = new_tape_or_fail();
    for (size_t step = 0; step < 3; step++) {
        tt_tape_reset(tape);
        tt_tensor *batch = tt_tape_tensor(tape, 8, 8, "batch");
        ck_assert_ptr_nonnull(batch);
        tt_real *data = tt_tensor_data(batch);
        for (size_t i = 0; i < 64; i++)
            ck_assert_msg(data[i] == 0, "step %zu: data[%zu] = %g, want 0", step, i,
                          (double)data[i]);
        for (size_t i = 0; i < 64; i++)
            data[i] = (tt_real)(i + 1);
        ck_assert_ptr_nonnull(tt_relu(tape, batch));
    }
    tt_tape_free(tape);
}
END_TEST

START_TEST(tape_tensor_copies_name)
{
    tt_tape *tape = new_tape_or_fail();
    char name[] = "batch";

    tt_tensor *batch = tt_tape_tensor(tape, 1, 1, name);
    name[0] = 'x';
    tt_tensor *unnamed = tt_tape_tensor(tape, 1, 1, NULL);

    ck_assert_str_eq(tt_tensor_name(batch), "batch");
    ck_assert_ptr_null(tt_tensor_name(unnamed));

    tt_tape_free(tape);
}
END_TEST

START_TEST(tape_tensor_rejects_zero_size)
{
    tt_tape *tape = new_tape_or_fail();

    ck_assert_ptr_null(tt_tape_tensor(tape, 0, 4, "batch"));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "tt_tape_tensor: invalid shape 0x4; both sizes must be at least 1 and their "
                     "product must fit in memory");

    tt_tape_reset(tape);
    assert_tape_computes_product(tape);
    tt_tape_free(tape);
}
END_TEST

START_TEST(tape_tensor_rejects_size_overflow)
{
    tt_tape *tape = new_tape_or_fail();

    ck_assert_ptr_null(tt_tape_tensor(tape, SIZE_MAX / 2, 4, "batch"));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    char want[TT_ERROR_MESSAGE_MAX];
    snprintf(want, sizeof want,
             "tt_tape_tensor: invalid shape %zux4; both sizes must be at least 1 and their "
             "product must fit in memory",
             SIZE_MAX / 2);
    ck_assert_str_eq(tt_tape_error(tape)->message, want);

    tt_tape_reset(tape);
    assert_tape_computes_product(tape);
    tt_tape_free(tape);
}
END_TEST

START_TEST(tape_tensor_feeds_ops_without_gradient)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *w = new_scalar(4, "w");
    require_grad_or_fail(w);
    tt_tensor *x = tt_tape_tensor(tape, 1, 1, "x");
    tt_tensor_data(x)[0] = 5;

    tt_tensor *loss = tt_matmul(tape, w, x);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    ck_assert_msg(tt_tensor_data(loss)[0] == 20, "loss = %g, want 20",
                  (double)tt_tensor_data(loss)[0]);
    ck_assert_msg(tt_tensor_grad(w)[0] == 5, "dw = %g, want 5", (double)tt_tensor_grad(w)[0]);
    ck_assert_ptr_null(tt_tensor_grad(x));

    tt_tensor_free(w);
    tt_tape_free(tape);
}
END_TEST

/* ---- Backward's argument checks ------------------------------------------ */

START_TEST(backward_rejects_null_loss)
{
    tt_tape *tape = new_tape_or_fail();

    ck_assert_int_eq(tt_tape_backward(tape, NULL), TT_ERR_ARG);

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "backward: loss is NULL");

    tt_tape_reset(tape);
    assert_tape_computes_product(tape);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_rejects_non_scalar_loss)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *w = new_tensor_or_fail(2, 2, NULL, "w");
    require_grad_or_fail(w);
    tt_tensor *out = tt_matmul(tape, w, w);
    ck_assert_ptr_nonnull(out);

    ck_assert_int_eq(tt_tape_backward(tape, out), TT_ERR_SHAPE);

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_SHAPE);
    ck_assert_str_eq(tt_tape_error(tape)->message, "backward: loss (matmul@0) is 2x2 but must be 1x1");
    const tt_real zeros[4] = {0};
    assert_all_equal("dw", tt_tensor_grad(w), zeros, 4);

    tt_tape_reset(tape);
    assert_tape_computes_product(tape);
    tt_tensor_free(w);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_rejects_leaf_loss)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *leaf = new_scalar(1, "w");
    require_grad_or_fail(leaf);

    ck_assert_int_eq(tt_tape_backward(tape, leaf), TT_ERR_ARG);

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "backward: loss (w) is not the output of an op on this tape");
    ck_assert_msg(tt_tensor_grad(leaf)[0] == 0, "dw = %g, want 0",
                  (double)tt_tensor_grad(leaf)[0]);

    tt_tape_reset(tape);
    assert_tape_computes_product(tape);
    tt_tensor_free(leaf);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_rejects_tape_tensor_loss)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *input = tt_tape_tensor(tape, 1, 1, NULL);
    ck_assert_ptr_nonnull(input);

    ck_assert_int_eq(tt_tape_backward(tape, input), TT_ERR_ARG);

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "backward: loss is not the output of an op on this tape");

    tt_tape_reset(tape);
    assert_tape_computes_product(tape);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_rejects_loss_of_another_tape)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tape *other = new_tape_or_fail();
    tt_tensor *a = new_scalar(2, "a");
    require_grad_or_fail(a);
    tt_tensor *loss = tt_matmul(other, a, a);
    ck_assert_ptr_nonnull(loss);

    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_ERR_ARG);

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "backward: loss (matmul@0) is not the output of an op on this tape");
    assert_tape_ok(other, "the tape that owns the loss");

    tt_tape_reset(tape);
    assert_tape_computes_product(tape);
    tt_tensor_free(a);
    tt_tape_free(tape);
    tt_tape_free(other);
}
END_TEST

START_TEST(backward_rejects_loss_without_gradient_path)
{
    /* No tensor the loss depends on requires a gradient, so a backward
     * pass would have nothing to compute. */
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_scalar(2, "a");
    tt_tensor *loss = tt_matmul(tape, a, a);
    ck_assert_ptr_nonnull(loss);

    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_ERR_STATE);

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_STATE);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "backward: loss (matmul@0) does not depend on any tensor that requires a "
                     "gradient");

    tt_tape_reset(tape);
    assert_tape_computes_product(tape);
    tt_tensor_free(a);
    tt_tape_free(tape);
}
END_TEST

/* ---- Fan-out and accumulation --------------------------------------------- */

START_TEST(backward_sums_gradient_of_leaf_used_twice_by_one_op)
{
    /* loss = a·a = 9 with a = 3, so dloss/da = 2a = 6. */
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_scalar(3, "a");
    require_grad_or_fail(a);

    tt_tensor *loss = tt_matmul(tape, a, a);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    ck_assert_msg(tt_tensor_data(loss)[0] == 9, "loss = %g, want 9",
                  (double)tt_tensor_data(loss)[0]);
    ck_assert_msg(tt_tensor_grad(a)[0] == 6, "da = %g, want 6", (double)tt_tensor_grad(a)[0]);

    tt_tensor_free(a);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_sums_gradient_of_leaf_feeding_two_ops)
{
    /* loss = a·b + a·c with a = 2, b = 3, c = 5: loss = 16 and
     * dloss/da = b + c = 8, dloss/db = dloss/dc = a = 2. */
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_scalar(2, "a");
    tt_tensor *b = new_scalar(3, "b");
    tt_tensor *c = new_scalar(5, "c");
    require_grad_or_fail(a);
    require_grad_or_fail(b);
    require_grad_or_fail(c);

    tt_tensor *loss = tt_add(tape, tt_matmul(tape, a, b), tt_matmul(tape, a, c));
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    ck_assert_msg(tt_tensor_data(loss)[0] == 16, "loss = %g, want 16",
                  (double)tt_tensor_data(loss)[0]);
    ck_assert_msg(tt_tensor_grad(a)[0] == 8, "da = %g, want 8", (double)tt_tensor_grad(a)[0]);
    ck_assert_msg(tt_tensor_grad(b)[0] == 2, "db = %g, want 2", (double)tt_tensor_grad(b)[0]);
    ck_assert_msg(tt_tensor_grad(c)[0] == 2, "dc = %g, want 2", (double)tt_tensor_grad(c)[0]);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tensor_free(c);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_sums_gradient_of_tape_tensor_feeding_two_ops)
{
    /* h = relu(x) with x = [1 -2 3] is [1 0 3] and feeds two products:
     * loss = h·u + h·v with u = [1 2 3]ᵀ and v = [10 20 30]ᵀ
     *      = (1 + 9) + (10 + 90) = 110.
     * dloss/dh = (u + v)ᵀ = [11 22 33], so dloss/dx = [11 0 33]
     * (ReLU passes the gradient only where x > 0). */
    tt_tape *tape = new_tape_or_fail();
    const tt_real x_values[3] = {1, -2, 3};
    const tt_real u_values[3] = {1, 2, 3};
    const tt_real v_values[3] = {10, 20, 30};
    tt_tensor *x = new_tensor_or_fail(1, 3, x_values, "x");
    tt_tensor *u = new_tensor_or_fail(3, 1, u_values, "u");
    tt_tensor *v = new_tensor_or_fail(3, 1, v_values, "v");
    require_grad_or_fail(x);

    tt_tensor *h = tt_relu(tape, x);
    retain_grad_or_fail(h);
    tt_tensor *loss = tt_add(tape, tt_matmul(tape, h, u), tt_matmul(tape, h, v));
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    ck_assert_msg(tt_tensor_data(loss)[0] == 110, "loss = %g, want 110",
                  (double)tt_tensor_data(loss)[0]);
    const tt_real want_dh[3] = {11, 22, 33};
    assert_all_equal("dh", tt_tensor_grad(h), want_dh, 3);
    const tt_real want_dx[3] = {11, 0, 33};
    assert_all_equal("dx", tt_tensor_grad(x), want_dx, 3);

    tt_tensor_free(x);
    tt_tensor_free(u);
    tt_tensor_free(v);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_twice_accumulates_leaf_gradient)
{
    /* loss = relu(w)·x with w = [2 -1], x = [3 4]ᵀ: dloss/dw = [3 0] per pass,
     * so two passes leave [6 0] in w's gradient. The intermediate relu
     * output is zeroed at the start of each pass and keeps dloss/dh = [3 4]. */
    tt_tape *tape = new_tape_or_fail();
    const tt_real w_values[2] = {2, -1};
    const tt_real x_values[2] = {3, 4};
    tt_tensor *w = new_tensor_or_fail(1, 2, w_values, "w");
    tt_tensor *x = new_tensor_or_fail(2, 1, x_values, "x");
    require_grad_or_fail(w);

    tt_tensor *h = tt_relu(tape, w);
    retain_grad_or_fail(h);
    tt_tensor *loss = tt_matmul(tape, h, x);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    const tt_real want_dw[2] = {6, 0};
    assert_all_equal("dw after two passes", tt_tensor_grad(w), want_dw, 2);
    const tt_real want_dh[2] = {3, 4};
    assert_all_equal("dh after two passes", tt_tensor_grad(h), want_dh, 2);

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(zero_grad_between_passes_stops_accumulation)
{
    /* The same loss as above, rebuilt after a reset for each pass:
     * dloss/dw = [3 0] per pass. */
    tt_tape *tape = new_tape_or_fail();
    const tt_real w_values[2] = {2, -1};
    const tt_real x_values[2] = {3, 4};
    tt_tensor *w = new_tensor_or_fail(1, 2, w_values, "w");
    tt_tensor *x = new_tensor_or_fail(2, 1, x_values, "x");
    require_grad_or_fail(w);
    const tt_real want_one_pass[2] = {3, 0};
    const tt_real want_two_passes[2] = {6, 0};
    const tt_real zeros[2] = {0, 0};

    for (size_t pass = 0; pass < 2; pass++) {
        tt_tape_reset(tape);
        tt_tensor *loss = tt_matmul(tape, tt_relu(tape, w), x);
        ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    }
    assert_all_equal("dw after two passes", tt_tensor_grad(w), want_two_passes, 2);

    tt_tensor_zero_grad(w);
    assert_all_equal("dw after zero_grad", tt_tensor_grad(w), zeros, 2);

    tt_tape_reset(tape);
    tt_tensor *loss = tt_matmul(tape, tt_relu(tape, w), x);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    assert_all_equal("dw after zero_grad and one pass", tt_tensor_grad(w), want_one_pass, 2);

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_after_zero_grad_overwrites_unread_gradient)
{
    /* loss = relu(w)·x + relu(w)·x with w = [2 -1], x = [3 4]ᵀ. After the
     * first pass the buffer contains [6 0], and tt_tensor_zero_grad only
     * marks it. So each later pass must overwrite it with [3 0] and then
     * add the second use's [3 0]. */
    tt_tape *tape = new_tape_or_fail();
    const tt_real w_values[2] = {2, -1};
    const tt_real x_values[2] = {3, 4};
    tt_tensor *w = new_tensor_or_fail(1, 2, w_values, "w");
    tt_tensor *x = new_tensor_or_fail(2, 1, x_values, "x");
    require_grad_or_fail(w);
    tt_real *dw = tt_tensor_grad(w);
    const tt_real want_two_uses[2] = {6, 0};

    for (size_t pass = 0; pass < 3; pass++) {
        tt_tensor_zero_grad(w);
        tt_tape_reset(tape);
        tt_tensor *once = tt_matmul(tape, tt_relu(tape, w), x);
        tt_tensor *twice = tt_add(tape, once, tt_matmul(tape, tt_relu(tape, w), x));
        ck_assert_int_eq(tt_tape_backward(tape, twice), TT_OK);
        ck_assert_ptr_eq(tt_tensor_grad(w), dw);
        assert_all_equal("dw after zero_grad and a pass using w twice", dw, want_two_uses, 2);
    }

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(zeroed_gradient_of_leaf_left_out_of_pass_reads_zero)
{
    /* Pass 1 gives a and b gradients; after tt_tensor_zero_grad, pass 2
     * reads only a, so b's old values must not show through. */
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_scalar(2, "a");
    tt_tensor *b = new_scalar(3, "b");
    require_grad_or_fail(a);
    require_grad_or_fail(b);

    ck_assert_int_eq(tt_tape_backward(tape, tt_matmul(tape, a, b)), TT_OK);
    ck_assert_msg(tt_tensor_grad(b)[0] == 2, "db = %g, want 2", (double)tt_tensor_grad(b)[0]);

    tt_tensor_zero_grad(a);
    tt_tensor_zero_grad(b);
    tt_tape_reset(tape);
    ck_assert_int_eq(tt_tape_backward(tape, tt_matmul(tape, a, a)), TT_OK);

    ck_assert_msg(tt_tensor_grad(a)[0] == 4, "da = %g, want 4", (double)tt_tensor_grad(a)[0]);
    ck_assert_msg(tt_tensor_grad(b)[0] == 0, "db = %g, want 0", (double)tt_tensor_grad(b)[0]);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_from_earlier_loss_ignores_later_ops)
{
    /* first = a·b = 6 is recorded before second = a·a; backward from first
     * gives da = b = 3 and must not run second's record. */
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_scalar(2, "a");
    tt_tensor *b = new_scalar(3, "b");
    require_grad_or_fail(a);

    tt_tensor *first = tt_matmul(tape, a, b);
    tt_tensor *second = tt_matmul(tape, a, a);
    ck_assert_ptr_nonnull(second);
    ck_assert_int_eq(tt_tape_backward(tape, first), TT_OK);

    ck_assert_msg(tt_tensor_grad(a)[0] == 3, "da = %g, want 3", (double)tt_tensor_grad(a)[0]);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_handles_long_chain_of_ops)
{
    /* s = a + a + ... + a with CHAIN additions is (CHAIN + 1)·a, so
     * ds/da = CHAIN + 1. The chain is far longer than the tape's first
     * record array and deep enough that a recursive backward pass would
     * risk the stack. Every partial sum is an integer below 2^24, so float
     * arithmetic is exact. */
    enum { CHAIN = 100000 };
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_scalar(1, "a");
    require_grad_or_fail(a);

    tt_tensor *sum = a;
    for (size_t i = 0; i < CHAIN; i++)
        sum = tt_add(tape, sum, a);
    ck_assert_msg(sum != NULL, "chain failed: %s", tt_tape_error(tape)->message);
    ck_assert_uint_eq(tt_tape_length(tape), CHAIN);
    ck_assert_int_eq(tt_tape_backward(tape, sum), TT_OK);

    ck_assert_msg(tt_tensor_data(sum)[0] == CHAIN + 1, "sum = %g, want %d",
                  (double)tt_tensor_data(sum)[0], CHAIN + 1);
    ck_assert_msg(tt_tensor_grad(a)[0] == CHAIN + 1, "da = %g, want %d",
                  (double)tt_tensor_grad(a)[0], CHAIN + 1);

    tt_tensor_free(a);
    tt_tape_free(tape);
}
END_TEST

START_TEST(backward_leaves_tensors_without_gradient_alone)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *w = new_scalar(2, "w");
    tt_tensor *x = new_scalar(3, "x");
    require_grad_or_fail(w);

    tt_tensor *loss = tt_matmul(tape, w, x);
    retain_grad_or_fail(loss);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    ck_assert_ptr_null(tt_tensor_grad(x));
    ck_assert_ptr_nonnull(tt_tensor_grad(loss));

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

/* ---- Reuse over many steps ------------------------------------------------ */

enum {
    REUSE_STEPS = 100,
    REUSE_INPUTS = 6,
    REUSE_HIDDEN = 5,
    REUSE_CLASSES = 3,
    REUSE_BATCH = 4,
};

/* The learning rate of the SGD steps in the reuse test. */
#define REUSE_LEARNING_RATE 0.1f

/* Parameters of a one-hidden-layer MLP. */
typedef struct reuse_model {
    tt_tensor *w1; /* REUSE_HIDDEN × REUSE_INPUTS */
    tt_tensor *b1; /* REUSE_HIDDEN × 1 */
    tt_tensor *w2; /* REUSE_CLASSES × REUSE_HIDDEN */
    tt_tensor *b2; /* REUSE_CLASSES × 1 */
} reuse_model;

static reuse_model new_reuse_model(uint64_t seed)
{
    tt_rng rng;
    tt_rng_seed(&rng, seed);
    reuse_model model = {
        new_uniform_tensor(REUSE_HIDDEN, REUSE_INPUTS, &rng, -0.5, 0.5, "w1"),
        new_uniform_tensor(REUSE_HIDDEN, 1, &rng, -0.1, 0.1, "b1"),
        new_uniform_tensor(REUSE_CLASSES, REUSE_HIDDEN, &rng, -0.5, 0.5, "w2"),
        new_uniform_tensor(REUSE_CLASSES, 1, &rng, -0.1, 0.1, "b2"),
    };
    require_grad_or_fail(model.w1);
    require_grad_or_fail(model.b1);
    require_grad_or_fail(model.w2);
    require_grad_or_fail(model.b2);
    return model;
}

static void free_reuse_model(reuse_model *model)
{
    tt_tensor_free(model->w1);
    tt_tensor_free(model->b1);
    tt_tensor_free(model->w2);
    tt_tensor_free(model->b2);
}

/* Runs one SGD step on the tape (which the caller has reset or created)
 * and returns the loss. */
static tt_real train_step(tt_tape *tape, reuse_model *model, const tt_real *batch,
                          const int32_t *labels)
{
    tt_tensor *x = tt_tape_tensor(tape, REUSE_INPUTS, REUSE_BATCH, "x");
    ck_assert_ptr_nonnull(x);
    memcpy(tt_tensor_data(x), batch, sizeof(tt_real) * REUSE_INPUTS * REUSE_BATCH);

    tt_tensor *h1 = tt_relu(tape, tt_add(tape, tt_matmul(tape, model->w1, x), model->b1));
    tt_tensor *z2 = tt_add(tape, tt_matmul(tape, model->w2, h1), model->b2);
    tt_tensor *loss = tt_cross_entropy(tape, z2, labels, REUSE_BATCH);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    tt_tensor *parameters[4] = {model->w1, model->b1, model->w2, model->b2};
    for (size_t p = 0; p < 4; p++) {
        tt_real *data = tt_tensor_data(parameters[p]);
        const tt_real *grad = tt_tensor_grad(parameters[p]);
        const size_t size = tt_tensor_rows(parameters[p]) * tt_tensor_cols(parameters[p]);
        for (size_t i = 0; i < size; i++)
            data[i] -= REUSE_LEARNING_RATE * grad[i];
        tt_tensor_zero_grad(parameters[p]);
    }
    return tt_tensor_data(loss)[0];
}

START_TEST(reset_tape_gives_same_results_as_fresh_tape)
{
    /* Two copies of one model train on the same batches for REUSE_STEPS
     * steps: one on a tape reset before every step, one on a new tape per
     * step. The arithmetic is the same, so every loss and every parameter
     * must be bitwise equal. */
    reuse_model reused_model = new_reuse_model(17);
    reuse_model fresh_model = new_reuse_model(17);
    tt_tape *reused_tape = new_tape_or_fail();
    tt_rng data_rng;
    tt_rng_seed(&data_rng, 18);
    tt_real batch[REUSE_INPUTS * REUSE_BATCH];
    int32_t labels[REUSE_BATCH];

    for (size_t step = 0; step < REUSE_STEPS; step++) {
        for (size_t i = 0; i < REUSE_INPUTS * REUSE_BATCH; i++)
            batch[i] = (tt_real)tt_rng_normal(&data_rng);
        fill_labels(labels, REUSE_BATCH, REUSE_CLASSES, &data_rng);

        tt_tape_reset(reused_tape);
        const tt_real reused_loss = train_step(reused_tape, &reused_model, batch, labels);

        tt_tape *fresh_tape = new_tape_or_fail();
        const tt_real fresh_loss = train_step(fresh_tape, &fresh_model, batch, labels);
        tt_tape_free(fresh_tape);

        ck_assert_msg(reused_loss == fresh_loss, "step %zu: loss %.9g on the reset tape, %.9g on a "
                      "fresh tape", step, (double)reused_loss, (double)fresh_loss);
    }

    assert_all_equal("w1", tt_tensor_data(reused_model.w1), tt_tensor_data(fresh_model.w1),
                     REUSE_HIDDEN * REUSE_INPUTS);
    assert_all_equal("b1", tt_tensor_data(reused_model.b1), tt_tensor_data(fresh_model.b1),
                     REUSE_HIDDEN);
    assert_all_equal("w2", tt_tensor_data(reused_model.w2), tt_tensor_data(fresh_model.w2),
                     REUSE_CLASSES * REUSE_HIDDEN);
    assert_all_equal("b2", tt_tensor_data(reused_model.b2), tt_tensor_data(fresh_model.b2),
                     REUSE_CLASSES);

    tt_tape_free(reused_tape);
    free_reuse_model(&reused_model);
    free_reuse_model(&fresh_model);
}
END_TEST

START_TEST(training_on_reset_tape_lowers_loss)
{
    /* A sanity check that the steps above do train: on one fixed batch,
     * 100 SGD steps must lower the loss. */
    reuse_model model = new_reuse_model(23);
    tt_tape *tape = new_tape_or_fail();
    tt_rng data_rng;
    tt_rng_seed(&data_rng, 24);
    tt_real batch[REUSE_INPUTS * REUSE_BATCH];
    int32_t labels[REUSE_BATCH];
    for (size_t i = 0; i < REUSE_INPUTS * REUSE_BATCH; i++)
        batch[i] = (tt_real)tt_rng_normal(&data_rng);
    fill_labels(labels, REUSE_BATCH, REUSE_CLASSES, &data_rng);

    tt_real first_loss = 0;
    tt_real last_loss = 0;
    for (size_t step = 0; step < REUSE_STEPS; step++) {
        tt_tape_reset(tape);
        last_loss = train_step(tape, &model, batch, labels);
        if (step == 0)
            first_loss = last_loss;
    }

    ck_assert_msg(last_loss < 0.5f * first_loss, "loss went from %.6g to %.6g in %d steps",
                  (double)first_loss, (double)last_loss, REUSE_STEPS);

    tt_tape_free(tape);
    free_reuse_model(&model);
}
END_TEST

static Suite *tape_suite(void)
{
    Suite *suite = suite_create("tape");

    TCase *basics = add_test_case(suite, "basics");
    tcase_add_test(basics, tape_new_is_healthy_and_empty);
    tcase_add_test(basics, tape_free_ignores_null);
    tcase_add_test(basics, tape_length_counts_ops_but_not_tape_tensors);
    tcase_add_test(basics, status_str_names_every_status);

    TCase *sticky = add_test_case(suite, "sticky_error");
    tcase_add_test(sticky, ops_after_failure_return_null);
    tcase_add_test(sticky, failed_op_records_nothing);
    tcase_add_test(sticky, later_error_keeps_first_message);
    tcase_add_test(sticky, chained_ops_report_first_failure);
    tcase_add_test(sticky, backward_after_failure_returns_sticky_status);
    tcase_add_test(sticky, reset_clears_error_and_tape_works_again);
    tcase_add_test(sticky, op_rejects_null_input_on_healthy_tape);
    tcase_add_test(sticky, op_rejects_tensor_of_another_tape);

    TCase *tape_tensors = add_test_case(suite, "tape_tensor");
    tcase_add_test(tape_tensors, tape_tensor_is_zero_filled_with_its_shape);
    tcase_add_test(tape_tensors, tape_tensor_is_zero_filled_after_reset);
    tcase_add_test(tape_tensors, tape_tensor_copies_name);
    tcase_add_test(tape_tensors, tape_tensor_rejects_zero_size);
    tcase_add_test(tape_tensors, tape_tensor_rejects_size_overflow);
    tcase_add_test(tape_tensors, tape_tensor_feeds_ops_without_gradient);

    TCase *backward = add_test_case(suite, "backward_errors");
    tcase_add_test(backward, backward_rejects_null_loss);
    tcase_add_test(backward, backward_rejects_non_scalar_loss);
    tcase_add_test(backward, backward_rejects_leaf_loss);
    tcase_add_test(backward, backward_rejects_tape_tensor_loss);
    tcase_add_test(backward, backward_rejects_loss_of_another_tape);
    tcase_add_test(backward, backward_rejects_loss_without_gradient_path);

    TCase *gradients = add_test_case(suite, "gradients");
    tcase_add_test(gradients, backward_sums_gradient_of_leaf_used_twice_by_one_op);
    tcase_add_test(gradients, backward_sums_gradient_of_leaf_feeding_two_ops);
    tcase_add_test(gradients, backward_sums_gradient_of_tape_tensor_feeding_two_ops);
    tcase_add_test(gradients, backward_twice_accumulates_leaf_gradient);
    tcase_add_test(gradients, zero_grad_between_passes_stops_accumulation);
    tcase_add_test(gradients, backward_after_zero_grad_overwrites_unread_gradient);
    tcase_add_test(gradients, zeroed_gradient_of_leaf_left_out_of_pass_reads_zero);
    tcase_add_test(gradients, backward_leaves_tensors_without_gradient_alone);
    tcase_add_test(gradients, backward_from_earlier_loss_ignores_later_ops);
    tcase_add_test(gradients, backward_handles_long_chain_of_ops);

    TCase *reuse = add_test_case(suite, "reuse");
    tcase_add_test(reuse, reset_tape_gives_same_results_as_fresh_tape);
    tcase_add_test(reuse, training_on_reset_tape_lowers_loss);

    return suite;
}

int main(void)
{
    return run_suite(tape_suite());
}
