/* Caller-owned tensors: creation, copies, size errors, gradients, freeing
 * and random fills. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* Message of a rejected shape, as tt_tensor_new and tt_tensor_from_data
 * produce it, for `caller` and a rows × cols request. */
static void format_shape_message(char *message, size_t size, const char *caller, size_t rows,
                                 size_t cols)
{
    snprintf(message, size,
             "%s: invalid shape %zux%zu; both sizes must be at least 1 and their product must "
             "fit in memory",
             caller, rows, cols);
}

/* Creates a tensor with the shape and checks that it fails with TT_ERR_ARG
 * and the invalid-shape message, and that a valid tensor can still be made
 * afterwards. */
static void assert_tensor_new_rejects_shape(size_t rows, size_t cols)
{
    tt_error err = {TT_OK, ""};
    tt_tensor *tensor = tt_tensor_new(rows, cols, "w", &err);
    ck_assert_msg(tensor == NULL, "tt_tensor_new(%zu, %zu) returned a tensor", rows, cols);
    ck_assert_msg(err.status == TT_ERR_ARG, "status for %zux%zu: got %d, want TT_ERR_ARG (%d)",
                  rows, cols, (int)err.status, (int)TT_ERR_ARG);
    char want[TT_ERROR_MESSAGE_MAX];
    format_shape_message(want, sizeof want, "tt_tensor_new", rows, cols);
    ck_assert_str_eq(err.message, want);

    tt_tensor *valid = tt_tensor_new(2, 3, "w", &err);
    ck_assert_msg(valid != NULL, "tt_tensor_new(2, 3) failed after a rejected shape: %s",
                  err.message);
    tt_tensor_free(valid);
}

START_TEST(tensor_new_is_zero_filled_with_its_shape)
{
    tt_tensor *tensor = new_tensor_or_fail(3, 5, NULL, "h1");

    ck_assert_uint_eq(tt_tensor_rows(tensor), 3);
    ck_assert_uint_eq(tt_tensor_cols(tensor), 5);
    const tt_real *data = tt_tensor_data(tensor);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < 15; i++)
        ck_assert_msg(data[i] == 0, "data[%zu] = %g, want 0", i, (double)data[i]);

    tt_tensor_free(tensor);
}
END_TEST

START_TEST(tensor_new_copies_name)
{
    char name[] = "w1";
    tt_tensor *tensor = new_tensor_or_fail(2, 2, NULL, name);
    name[0] = 'x';

    ck_assert_str_eq(tt_tensor_name(tensor), "w1");
    ck_assert_ptr_ne(tt_tensor_name(tensor), name);

    tt_tensor_free(tensor);
}
END_TEST

START_TEST(tensor_new_accepts_null_name)
{
    tt_tensor *tensor = new_tensor_or_fail(2, 2, NULL, NULL);

    ck_assert_ptr_null(tt_tensor_name(tensor));

    tt_tensor_free(tensor);
}
END_TEST

START_TEST(tensor_new_has_no_gradient)
{
    tt_tensor *tensor = new_tensor_or_fail(2, 2, NULL, "w");

    ck_assert_ptr_null(tt_tensor_grad(tensor));

    tt_tensor_free(tensor);
}
END_TEST

START_TEST(tensor_from_data_copies_values)
{
    tt_real source[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
    const tt_real want[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
    tt_tensor *tensor = new_tensor_or_fail(2, 3, source, "x");

    ck_assert_uint_eq(tt_tensor_rows(tensor), 2);
    ck_assert_uint_eq(tt_tensor_cols(tensor), 3);
    ck_assert_ptr_ne(tt_tensor_data(tensor), source);
    assert_all_equal("x", tt_tensor_data(tensor), want, 6);

    /* Changing the source afterwards leaves the tensor alone. */
    for (size_t i = 0; i < 6; i++)
        source[i] = 100;
    assert_all_equal("x after the source changed", tt_tensor_data(tensor), want, 6);

    tt_tensor_free(tensor);
}
END_TEST

START_TEST(tensor_new_rejects_zero_rows)
{
    assert_tensor_new_rejects_shape(0, 3);
}
END_TEST

START_TEST(tensor_new_rejects_zero_cols)
{
    assert_tensor_new_rejects_shape(3, 0);
}
END_TEST

START_TEST(tensor_new_rejects_element_count_overflow)
{
    /* rows × cols itself exceeds SIZE_MAX. */
    assert_tensor_new_rejects_shape(SIZE_MAX / 2, 3);
}
END_TEST

START_TEST(tensor_new_rejects_byte_count_overflow)
{
    /* rows × cols fits in size_t, but rows × cols × sizeof(tt_real) does not:
     * a size check on the element count alone would wrap and allocate a
     * small buffer. */
    const size_t rows = SIZE_MAX / sizeof(tt_real) / 2 + 1;
    assert_tensor_new_rejects_shape(rows, 2);
}
END_TEST

START_TEST(tensor_new_reports_nomem_for_huge_shape)
{
    /* 2^60 elements: the byte count fits in 64 bits but no machine has the
     * memory, so the allocation fails. */
    const size_t rows = (size_t)1 << 30;
    const size_t cols = (size_t)1 << 30;
    tt_error err = {TT_OK, ""};

    tt_tensor *tensor = tt_tensor_new(rows, cols, "huge", &err);

    ck_assert_ptr_null(tensor);
    ck_assert_msg(err.status == TT_ERR_NOMEM, "status: got %d, want TT_ERR_NOMEM (%d)",
                  (int)err.status, (int)TT_ERR_NOMEM);
    ck_assert_str_eq(err.message, "tt_tensor_new: out of memory for a 1073741824x1073741824 tensor");
}
END_TEST

START_TEST(tensor_new_accepts_null_err)
{
    ck_assert_ptr_null(tt_tensor_new(0, 3, "w", NULL));
    ck_assert_ptr_null(tt_tensor_from_data(2, 2, NULL, "w", NULL));
}
END_TEST

START_TEST(tensor_from_data_rejects_null_data)
{
    tt_error err = {TT_OK, ""};

    tt_tensor *tensor = tt_tensor_from_data(2, 3, NULL, "x", &err);

    ck_assert_ptr_null(tensor);
    ck_assert_msg(err.status == TT_ERR_ARG, "status: got %d, want TT_ERR_ARG (%d)",
                  (int)err.status, (int)TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_tensor_from_data: data is NULL for a 2x3 tensor (x)");
}
END_TEST

START_TEST(tensor_from_data_rejects_zero_size)
{
    const tt_real data[1] = {1};
    tt_error err = {TT_OK, ""};

    tt_tensor *tensor = tt_tensor_from_data(0, 1, data, "x", &err);

    ck_assert_ptr_null(tensor);
    ck_assert_msg(err.status == TT_ERR_ARG, "status: got %d, want TT_ERR_ARG (%d)",
                  (int)err.status, (int)TT_ERR_ARG);
    char want[TT_ERROR_MESSAGE_MAX];
    format_shape_message(want, sizeof want, "tt_tensor_from_data", 0, 1);
    ck_assert_str_eq(err.message, want);
}
END_TEST

START_TEST(require_grad_gives_zeroed_gradient)
{
    tt_tensor *tensor = new_tensor_or_fail(3, 4, NULL, "w");
    tt_error err = {TT_OK, ""};

    const tt_status status = tt_tensor_require_grad(tensor, &err);

    ck_assert_int_eq(status, TT_OK);
    const tt_real *grad = tt_tensor_grad(tensor);
    ck_assert_ptr_nonnull(grad);
    ck_assert_ptr_ne(grad, tt_tensor_data(tensor));
    for (size_t i = 0; i < 12; i++)
        ck_assert_msg(grad[i] == 0, "grad[%zu] = %g, want 0", i, (double)grad[i]);

    tt_tensor_free(tensor);
}
END_TEST

START_TEST(require_grad_twice_keeps_gradient)
{
    tt_tensor *tensor = new_tensor_or_fail(2, 2, NULL, "w");
    require_grad_or_fail(tensor);
    tt_real *grad = tt_tensor_grad(tensor);
    for (size_t i = 0; i < 4; i++)
        grad[i] = (tt_real)(i + 1);

    require_grad_or_fail(tensor);

    ck_assert_ptr_eq(tt_tensor_grad(tensor), grad);
    const tt_real want[4] = {1, 2, 3, 4};
    assert_all_equal("grad", tt_tensor_grad(tensor), want, 4);

    tt_tensor_free(tensor);
}
END_TEST

START_TEST(require_grad_rejects_null)
{
    tt_error err = {TT_OK, ""};

    const tt_status status = tt_tensor_require_grad(NULL, &err);

    ck_assert_int_eq(status, TT_ERR_ARG);
    ck_assert_int_eq(err.status, TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_tensor_require_grad: tensor is NULL");
}
END_TEST

START_TEST(require_grad_rejects_tape_tensor)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *named = tt_tape_tensor(tape, 2, 2, "batch");
    tt_tensor *unnamed = tt_tape_tensor(tape, 2, 2, NULL);
    ck_assert_ptr_nonnull(named);
    ck_assert_ptr_nonnull(unnamed);
    tt_error err = {TT_OK, ""};

    ck_assert_int_eq(tt_tensor_require_grad(named, &err), TT_ERR_ARG);
    ck_assert_int_eq(err.status, TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_tensor_require_grad: tensor (batch) belongs to a tape; "
                                  "only caller-owned tensors can be given a gradient");
    ck_assert_ptr_null(tt_tensor_grad(named));

    ck_assert_int_eq(tt_tensor_require_grad(unnamed, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_tensor_require_grad: tensor belongs to a tape; "
                                  "only caller-owned tensors can be given a gradient");

    /* The error is reported through err only; the tape stays healthy. */
    assert_tape_ok(tape, "after the rejected require_grad");

    tt_tape_free(tape);
}
END_TEST

START_TEST(zero_grad_sets_gradient_to_zero)
{
    tt_tensor *tensor = new_tensor_or_fail(2, 3, NULL, "w");
    require_grad_or_fail(tensor);
    tt_real *grad = tt_tensor_grad(tensor);
    for (size_t i = 0; i < 6; i++)
        grad[i] = (tt_real)(i + 1);

    tt_tensor_zero_grad(tensor);

    const tt_real zeros[6] = {0};
    assert_all_equal("grad", tt_tensor_grad(tensor), zeros, 6);

    tt_tensor_free(tensor);
}
END_TEST

START_TEST(zero_grad_ignores_null_and_tensor_without_gradient)
{
    tt_tensor *tensor = new_tensor_or_fail(2, 2, NULL, "w");

    tt_tensor_zero_grad(NULL);
    tt_tensor_zero_grad(tensor);

    ck_assert_ptr_null(tt_tensor_grad(tensor));

    tt_tensor_free(tensor);
}
END_TEST

START_TEST(tensor_free_ignores_null)
{
    tt_tensor_free(NULL);
}
END_TEST

START_TEST(tensor_free_ignores_tape_tensor)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *batch = tt_tape_tensor(tape, 2, 2, "batch");
    ck_assert_ptr_nonnull(batch);
    tt_tensor_data(batch)[3] = 5;

    tt_tensor_free(batch);

    /* The tape still owns the tensor, which stays valid until the reset. */
    ck_assert_uint_eq(tt_tensor_rows(batch), 2);
    ck_assert_str_eq(tt_tensor_name(batch), "batch");
    ck_assert_msg(tt_tensor_data(batch)[3] == 5, "data[3] = %g, want 5",
                  (double)tt_tensor_data(batch)[3]);

    tt_tape_free(tape);
}
END_TEST

START_TEST(fill_uniform_stays_in_range)
{
    const tt_real low = -0.25f;
    const tt_real high = 0.75f;
    tt_tensor *tensor = new_tensor_or_fail(40, 50, NULL, "w");
    tt_rng rng;
    tt_rng_seed(&rng, 11);

    tt_tensor_fill_uniform(tensor, &rng, low, high);

    const tt_real *data = tt_tensor_data(tensor);
    tt_real min = data[0];
    tt_real max = data[0];
    for (size_t i = 0; i < 2000; i++) {
        if (!(data[i] >= low && data[i] < high))
            ck_abort_msg("data[%zu] = %.9g is outside [%g, %g)", i, (double)data[i], (double)low,
                         (double)high);
        min = data[i] < min ? data[i] : min;
        max = data[i] > max ? data[i] : max;
    }
    /* 2000 uniform draws leave a gap of more than 0.01 at either end of a
     * range of width 1 with probability 2·0.99^2000, about 4e-9. */
    ck_assert_msg(min < low + 0.01f, "smallest value %.9g is not near low %g", (double)min,
                  (double)low);
    ck_assert_msg(max > high - 0.01f, "largest value %.9g is not near high %g", (double)max,
                  (double)high);

    tt_tensor_free(tensor);
}
END_TEST

START_TEST(fill_uniform_draws_in_storage_order)
{
    /* A 2 × 3 and a 1 × 6 tensor filled from the same seed contain the same
     * values in storage order, and so does a second fill from that seed. */
    tt_tensor *matrix = new_tensor_or_fail(2, 3, NULL, "matrix");
    tt_tensor *row = new_tensor_or_fail(1, 6, NULL, "row");
    tt_rng rng;

    tt_rng_seed(&rng, 5);
    tt_tensor_fill_uniform(matrix, &rng, -1, 1);
    tt_rng_seed(&rng, 5);
    tt_tensor_fill_uniform(row, &rng, -1, 1);

    assert_all_equal("row", tt_tensor_data(row), tt_tensor_data(matrix), 6);

    tt_tensor_free(matrix);
    tt_tensor_free(row);
}
END_TEST

START_TEST(fill_uniform_stays_below_high_for_largest_draw)
{
    /* The seed whose first SplitMix64 output is 2^64 − 1, found by inverting
     * the output function: tt_rng_uniform then returns 1 − 2^-53, its
     * largest value. low + (high − low)·u must still stay below high once
     * rounded to tt_real, which a float rounds up to 1 unless the fill
     * guards against it. */
    const uint64_t largest_draw_seed = 0x31628af67b2131abu;
    tt_tensor *tensor = new_tensor_or_fail(1, 1, NULL, "w");
    tt_rng rng;
    tt_rng_seed(&rng, largest_draw_seed);

    tt_tensor_fill_uniform(tensor, &rng, 0, 1);

    const tt_real value = tt_tensor_data(tensor)[0];
    ck_assert_msg(value < 1, "largest draw filled %.9g, want a value below high = 1",
                  (double)value);
    ck_assert_msg(value >= 0, "largest draw filled %.9g, want a value of at least low = 0",
                  (double)value);

    tt_tensor_free(tensor);
}
END_TEST

START_TEST(fill_normal_has_requested_mean_and_stddev)
{
    const size_t count = 100 * 100;
    const double mean = 2.0;
    const double stddev = 0.5;
    tt_tensor *tensor = new_tensor_or_fail(100, 100, NULL, "w");
    tt_rng rng;
    tt_rng_seed(&rng, 3);

    tt_tensor_fill_normal(tensor, &rng, (tt_real)mean, (tt_real)stddev);

    const tt_real *data = tt_tensor_data(tensor);
    double sum = 0.0;
    for (size_t i = 0; i < count; i++)
        sum += data[i];
    const double sample_mean = sum / (double)count;
    double squares = 0.0;
    for (size_t i = 0; i < count; i++)
        squares += (data[i] - sample_mean) * (data[i] - sample_mean);
    const double sample_stddev = sqrt(squares / (double)(count - 1));

    /* The standard error of the mean is stddev / sqrt(count) = 0.005 and that
     * of the standard deviation about stddev / sqrt(2·count) = 0.0035; the
     * bounds are five standard errors. */
    ck_assert_msg(fabs(sample_mean - mean) < 0.025, "sample mean %.6f, want %.1f +- 0.025",
                  sample_mean, mean);
    ck_assert_msg(fabs(sample_stddev - stddev) < 0.018,
                  "sample standard deviation %.6f, want %.1f +- 0.018", sample_stddev, stddev);

    tt_tensor_free(tensor);
}
END_TEST

static Suite *tensor_suite(void)
{
    Suite *suite = suite_create("tensor");

    TCase *creation = add_test_case(suite, "creation");
    tcase_add_test(creation, tensor_new_is_zero_filled_with_its_shape);
    tcase_add_test(creation, tensor_new_copies_name);
    tcase_add_test(creation, tensor_new_accepts_null_name);
    tcase_add_test(creation, tensor_new_has_no_gradient);
    tcase_add_test(creation, tensor_from_data_copies_values);

    TCase *errors = add_test_case(suite, "errors");
    tcase_add_test(errors, tensor_new_rejects_zero_rows);
    tcase_add_test(errors, tensor_new_rejects_zero_cols);
    tcase_add_test(errors, tensor_new_rejects_element_count_overflow);
    tcase_add_test(errors, tensor_new_rejects_byte_count_overflow);
    tcase_add_test(errors, tensor_new_reports_nomem_for_huge_shape);
    tcase_add_test(errors, tensor_new_accepts_null_err);
    tcase_add_test(errors, tensor_from_data_rejects_null_data);
    tcase_add_test(errors, tensor_from_data_rejects_zero_size);

    TCase *gradients = add_test_case(suite, "gradients");
    tcase_add_test(gradients, require_grad_gives_zeroed_gradient);
    tcase_add_test(gradients, require_grad_twice_keeps_gradient);
    tcase_add_test(gradients, require_grad_rejects_null);
    tcase_add_test(gradients, require_grad_rejects_tape_tensor);
    tcase_add_test(gradients, zero_grad_sets_gradient_to_zero);
    tcase_add_test(gradients, zero_grad_ignores_null_and_tensor_without_gradient);

    TCase *freeing = add_test_case(suite, "free");
    tcase_add_test(freeing, tensor_free_ignores_null);
    tcase_add_test(freeing, tensor_free_ignores_tape_tensor);

    TCase *fills = add_test_case(suite, "fills");
    tcase_add_test(fills, fill_uniform_stays_in_range);
    tcase_add_test(fills, fill_uniform_draws_in_storage_order);
    tcase_add_test(fills, fill_uniform_stays_below_high_for_largest_draw);
    tcase_add_test(fills, fill_normal_has_requested_mean_and_stddev);

    return suite;
}

int main(void)
{
    return run_suite(tensor_suite());
}
