/* Numerical edge cases with exact expected values: extreme and infinite
 * logits, a batch of one, two classes, ReLU at 0, and NaN and infinity in
 * the inputs of every op, forward and backward.
 *
 * Where the expected value is written exactly, every operation on the way
 * is exact in float and double: small integers, exp(0) = 1, log(1) = 0,
 * exp(−inf) = 0. The other values are compared with RTOL_REAL. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* Records cross_entropy(z, labels) and backward, failing the test unless
 * both run, and returns the loss. */
static tt_real cross_entropy_and_backward(tt_tensor *z, const int32_t *labels, size_t n)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *loss = tt_cross_entropy(tape, z, labels, n);
    ck_assert_msg(loss != NULL, "cross_entropy failed: %s", tt_tape_error(tape)->message);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    const tt_real value = tt_tensor_data(loss)[0];
    tt_tape_free(tape);
    return value;
}

/* Fails unless every value is NaN. */
static void assert_all_nan(const char *what, const tt_real *values, size_t count)
{
    for (size_t i = 0; i < count; i++)
        ck_assert_msg(isnan(values[i]), "%s[%zu] = %g, want NaN", what, i, (double)values[i]);
}

/* Fails unless got and want are the same value, NaN matching NaN. */
static void assert_same_values(const char *what, const tt_real *got, const tt_real *want,
                               size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const bool same = isnan(want[i]) ? isnan(got[i]) : got[i] == want[i];
        ck_assert_msg(same, "%s[%zu] = %g, want %g", what, i, (double)got[i], (double)want[i]);
    }
}

/* ---- Cross-entropy: extreme and infinite logits --------------------------------- */

START_TEST(cross_entropy_of_1e30_logits_is_exact_in_a_batch)
{
    /* z = [1e30 0; 0 1e30; −1e30 −1e30], labels [1 1]. Column 0: max 1e30,
     * shifted exps [1 0 0], so log_sum = 0 and loss_0 = 1e30 − 0 = 1e30.
     * Column 1: the label is the max, so loss_1 = 0. L = 1e30/2 (eq. 8).
     * dz = (softmax − y)/2: column 0 [1 −1 0]/2, column 1 [0 0 0]. */
    const tt_real big = (tt_real)1e30;
    const tt_real z_values[6] = {big, 0, 0, big, -big, -big};
    const int32_t labels[2] = {1, 1};
    const tt_real want_dz[6] = {0.5f, 0, -0.5f, 0, 0, 0};
    tt_tensor *z = new_tensor_or_fail(3, 2, z_values, "z");
    require_grad_or_fail(z);

    const tt_real loss = cross_entropy_and_backward(z, labels, 2);

    ck_assert_msg(loss == big / 2, "loss = %.9g, want exactly %.9g", (double)loss,
                  (double)(big / 2));
    assert_all_equal("dz", tt_tensor_grad(z), want_dz, 6);

    tt_tensor_free(z);
}
END_TEST

START_TEST(cross_entropy_gives_minus_inf_logit_probability_zero)
{
    /* Column [0 −inf]: softmax [1 0], so with label 0 the loss is
     * log(1 + 0) = 0 and dz = [1 − 1, 0 − 0] = [0 0], all exact. */
    const tt_real z_values[2] = {0, -INFINITY};
    const int32_t label = 0;
    const tt_real want_dz[2] = {0, 0};
    tt_tensor *z = new_tensor_or_fail(2, 1, z_values, "z");
    require_grad_or_fail(z);

    const tt_real loss = cross_entropy_and_backward(z, &label, 1);

    ck_assert_msg(loss == 0, "loss = %g, want 0", (double)loss);
    assert_all_equal("dz", tt_tensor_grad(z), want_dz, 2);

    tt_tensor_free(z);
}
END_TEST

START_TEST(cross_entropy_is_infinite_when_label_logit_is_minus_inf)
{
    /* Column 0 [0 −inf] with label 1: the label has probability 0, so
     * loss_0 = (0 − (−inf)) + 0 = +inf and L = +inf. The gradient stays
     * finite, softmax − y = [1 −1], divided by n = 2. Column 1 [2 −inf]
     * with label 0 has softmax [1 0], loss 0 and dz = [0 0]. */
    const tt_real z_values[4] = {0, 2, -INFINITY, -INFINITY};
    const int32_t labels[2] = {1, 0};
    const tt_real want_dz[4] = {0.5f, 0, -0.5f, 0};
    tt_tensor *z = new_tensor_or_fail(2, 2, z_values, "z");
    require_grad_or_fail(z);

    const tt_real loss = cross_entropy_and_backward(z, labels, 2);

    ck_assert_msg(isinf(loss) && loss > 0, "loss = %g, want +inf", (double)loss);
    assert_all_equal("dz", tt_tensor_grad(z), want_dz, 4);

    tt_tensor_free(z);
}
END_TEST

START_TEST(cross_entropy_ignores_minus_inf_class_that_is_not_label)
{
    /* Column [1 1 −inf], label 0: the −inf class has probability exactly 0
     * and the others 1/2, so loss = log 2 and dz = [−1/2 1/2 0]. */
    const tt_real z_values[3] = {1, 1, -INFINITY};
    const int32_t label = 0;
    const double want_dz[3] = {-0.5, 0.5, 0};
    tt_tensor *z = new_tensor_or_fail(3, 1, z_values, "z");
    require_grad_or_fail(z);

    const tt_real loss = cross_entropy_and_backward(z, &label, 1);

    ck_assert_msg(is_close(loss, log(2.0), 0, RTOL_REAL), "loss = %.9g, want log 2",
                  (double)loss);
    assert_all_close("dz", tt_tensor_grad(z), want_dz, 3, 1, 0, RTOL_REAL);
    ck_assert_msg(tt_tensor_grad(z)[2] == 0, "dz of the -inf class = %g, want exactly 0",
                  (double)tt_tensor_grad(z)[2]);

    tt_tensor_free(z);
}
END_TEST

START_TEST(cross_entropy_of_all_minus_inf_column_is_nan)
{
    /* The documented limitation: a column of −inf has no softmax (every
     * exp is 0), so its loss and gradient are NaN. Column 1, [−inf 3] with
     * label 0, keeps its exact gradient [0 − 1, 1 − 0]/2. */
    const tt_real z_values[4] = {-INFINITY, -INFINITY, -INFINITY, 3};
    const int32_t labels[2] = {0, 0};
    tt_tensor *z = new_tensor_or_fail(2, 2, z_values, "z");
    require_grad_or_fail(z);

    const tt_real loss = cross_entropy_and_backward(z, labels, 2);

    ck_assert_msg(isnan(loss), "loss = %g, want NaN", (double)loss);
    const tt_real *dz = tt_tensor_grad(z);
    ck_assert_msg(isnan(dz[0]) && isnan(dz[2]), "dz of column 0 = [%g %g], want NaN",
                  (double)dz[0], (double)dz[2]);
    ck_assert_msg(dz[1] == -0.5f && dz[3] == 0.5f, "dz of column 1 = [%g %g], want [-0.5 0.5]",
                  (double)dz[1], (double)dz[3]);

    tt_tensor_free(z);
}
END_TEST

START_TEST(cross_entropy_of_plus_inf_logit_is_nan)
{
    /* The documented limitation: +inf minus the column max +inf is NaN, so
     * the column's loss and gradient are NaN, whichever the label. */
    const tt_real z_values[2] = {INFINITY, 0};

    for (int32_t label = 0; label < 2; label++) {
        tt_tensor *z = new_tensor_or_fail(2, 1, z_values, "z");
        require_grad_or_fail(z);

        const tt_real loss = cross_entropy_and_backward(z, &label, 1);

        ck_assert_msg(isnan(loss), "label %d: loss = %g, want NaN", (int)label, (double)loss);
        assert_all_nan("dz", tt_tensor_grad(z), 2);
        tt_tensor_free(z);
    }
}
END_TEST

START_TEST(cross_entropy_of_nan_logit_is_nan_for_its_column)
{
    /* A NaN logit makes its column's loss and gradient NaN, in the first
     * row (where the column max starts) or any other. Column 1, [−inf 3]
     * with label 0, keeps its exact gradient [0 − 1, 1 − 0]/2. */
    for (size_t row = 0; row < 2; row++) {
        tt_real z_values[4] = {1, -INFINITY, 2, 3};
        z_values[row * 2] = NAN;
        const int32_t labels[2] = {1, 0};
        tt_tensor *z = new_tensor_or_fail(2, 2, z_values, "z");
        require_grad_or_fail(z);

        const tt_real loss = cross_entropy_and_backward(z, labels, 2);

        ck_assert_msg(isnan(loss), "NaN in row %zu: loss = %g, want NaN", row, (double)loss);
        const tt_real *dz = tt_tensor_grad(z);
        ck_assert_msg(isnan(dz[0]) && isnan(dz[2]), "NaN in row %zu: dz of column 0 = [%g %g]",
                      row, (double)dz[0], (double)dz[2]);
        ck_assert_msg(dz[1] == -0.5f && dz[3] == 0.5f,
                      "NaN in row %zu: dz of column 1 = [%g %g], want [-0.5 0.5]", row,
                      (double)dz[1], (double)dz[3]);
        tt_tensor_free(z);
    }
}
END_TEST

/* ---- Cross-entropy: small shapes ------------------------------------------------ */

START_TEST(cross_entropy_of_batch_of_one_is_not_averaged_away)
{
    /* n = 1: L is the single sample's loss and dz = softmax − y, with no
     * 1/n. z = [1 2 3], label 2: loss = log(e^-2 + e^-1 + 1) =
     * 0.4076059644 (worked in test_cross_entropy's hand example). */
    const tt_real z_values[3] = {1, 2, 3};
    const int32_t label = 2;
    const double want_dz[3] = {0.0900305731703805, 0.2447284710547976, 0.6652409557748219 - 1};
    tt_tensor *z = new_tensor_or_fail(3, 1, z_values, "z");
    require_grad_or_fail(z);

    const tt_real loss = cross_entropy_and_backward(z, &label, 1);

    ck_assert_msg(is_close(loss, 0.4076059644443803, 0, RTOL_REAL), "loss = %.9g", (double)loss);
    assert_all_close_scaled("dz", tt_tensor_grad(z), want_dz, 3, 1, RTOL_REAL);

    tt_tensor_free(z);
}
END_TEST

START_TEST(cross_entropy_of_two_classes_is_softplus)
{
    /* With C = 2 and label 0, loss = log(1 + e^(z1 − z0)), the softplus of
     * the margin, and dz = [σ − 1, 1 − σ] with σ = 1/(1 + e^(z1 − z0)).
     * Margins from −30 to 30, each its own sample of a batch of 7. */
    enum { SAMPLES = 7 };
    const double margins[SAMPLES] = {-30, -5, -1, 0, 1, 5, 30};
    tt_real z_values[2 * SAMPLES];
    int32_t labels[SAMPLES];
    double want_loss = 0;
    double want_dz[2 * SAMPLES];
    for (size_t i = 0; i < SAMPLES; i++) {
        z_values[i] = 0;
        z_values[SAMPLES + i] = (tt_real)margins[i];
        labels[i] = 0;
        const double sigma = 1 / (1 + exp(margins[i]));
        want_loss += log1p(exp(margins[i])) / SAMPLES;
        want_dz[i] = (sigma - 1) / SAMPLES;
        want_dz[SAMPLES + i] = (1 - sigma) / SAMPLES;
    }
    tt_tensor *z = new_tensor_or_fail(2, SAMPLES, z_values, "z");
    require_grad_or_fail(z);

    const tt_real loss = cross_entropy_and_backward(z, labels, SAMPLES);

    ck_assert_msg(is_close(loss, want_loss, 0, RTOL_REAL), "loss = %.9g, want %.9g",
                  (double)loss, want_loss);
    assert_all_close_scaled("dz", tt_tensor_grad(z), want_dz, 2, SAMPLES, RTOL_REAL);

    tt_tensor_free(z);
}
END_TEST

START_TEST(cross_entropy_rejects_label_range_and_computes_nothing)
{
    /* A label of C = 2 fails before anything is computed: no output, no
     * record, and the logits' gradient is untouched. */
    const tt_real z_values[4] = {1, 2, 3, 4};
    const int32_t labels[2] = {0, 2};
    tt_tensor *z = new_tensor_or_fail(2, 2, z_values, "z");
    require_grad_or_fail(z);
    tt_tape *tape = new_tape_or_fail();

    ck_assert_ptr_null(tt_cross_entropy(tape, z, labels, 2));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_RANGE);
    ck_assert_uint_eq(tt_tape_length(tape), 0);
    const tt_real zeros[4] = {0, 0, 0, 0};
    assert_all_equal("dz", tt_tensor_grad(z), zeros, 4);
    assert_all_equal("z", tt_tensor_data(z), z_values, 4);

    tt_tape_free(tape);
    tt_tensor_free(z);
}
END_TEST

/* ---- ReLU ------------------------------------------------------------------------ */

START_TEST(relu_at_zero_keeps_sign_and_passes_no_gradient)
{
    /* relu(x) = x unless x < 0 (eq. 15), so −0 stays −0 and +0 stays +0.
     * The derivative at 0 is 0 (eq. 16) for both signs of zero. */
    const tt_real x_values[2] = {0.0f, -0.0f};
    const tt_real v_values[2] = {3, 5};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, 2, x_values, "x");
    tt_tensor *v = new_tensor_or_fail(2, 1, v_values, "v");
    require_grad_or_fail(x);

    tt_tensor *h = tt_relu(tape, x);
    ck_assert_int_eq(tt_tape_backward(tape, tt_matmul(tape, h, v)), TT_OK);

    const tt_real *out = tt_tensor_data(h);
    ck_assert_msg(out[0] == 0 && !signbit(out[0]), "relu(+0) = %g, want +0", (double)out[0]);
    ck_assert_msg(out[1] == 0 && signbit(out[1]), "relu(-0) = %g, want -0", (double)out[1]);
    ck_assert_msg(tt_tensor_grad(x)[0] == 0 && tt_tensor_grad(x)[1] == 0,
                  "dx = [%g %g], want [0 0]", (double)tt_tensor_grad(x)[0],
                  (double)tt_tensor_grad(x)[1]);

    tt_tensor_free(x);
    tt_tensor_free(v);
    tt_tape_free(tape);
}
END_TEST

START_TEST(relu_passes_gradient_at_plus_inf_only)
{
    /* x = [NaN −inf inf], v = [2 3 4]ᵀ: relu(x) = [NaN 0 inf] and dx passes
     * v only where x > 0, [0 0 4]. (The loss relu(x)·v is NaN.) */
    const tt_real x_values[3] = {NAN, -INFINITY, INFINITY};
    const tt_real v_values[3] = {2, 3, 4};
    const tt_real want_out[3] = {NAN, 0, INFINITY};
    const tt_real want_dx[3] = {0, 0, 4};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, 3, x_values, "x");
    tt_tensor *v = new_tensor_or_fail(3, 1, v_values, "v");
    require_grad_or_fail(x);

    tt_tensor *h = tt_relu(tape, x);
    ck_assert_int_eq(tt_tape_backward(tape, tt_matmul(tape, h, v)), TT_OK);

    assert_same_values("relu(x)", tt_tensor_data(h), want_out, 3);
    assert_all_equal("dx", tt_tensor_grad(x), want_dx, 3);

    tt_tensor_free(x);
    tt_tensor_free(v);
    tt_tape_free(tape);
}
END_TEST

/* ---- add ------------------------------------------------------------------------- */

START_TEST(add_spreads_nan_and_infinity_of_a_broadcast_operand)
{
    /* A (2 × 3) + b (2 × 1) with b = [NaN; inf] and A = [1 2 3; 4 −inf 6]:
     * row 0 is all NaN, row 1 is [inf NaN inf], since inf + (−inf) = NaN. */
    const tt_real a_values[6] = {1, 2, 3, 4, -INFINITY, 6};
    const tt_real b_values[2] = {NAN, INFINITY};
    const tt_real want[6] = {NAN, NAN, NAN, INFINITY, NAN, INFINITY};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(2, 3, a_values, "A");
    tt_tensor *b = new_tensor_or_fail(2, 1, b_values, "b");

    tt_tensor *c = tt_add(tape, a, b);

    ck_assert_ptr_nonnull(c);
    assert_same_values("A + b", tt_tensor_data(c), want, 6);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
}
END_TEST

START_TEST(add_gradient_ignores_nan_and_infinity_in_values)
{
    /* add's gradient does not read the operands' values: with loss =
     * u·(A + b)·v, dA = uᵀ·vᵀ and db = row sums of dA, exact small
     * integers, whether A and b hold NaN and inf or not.
     * u = [1 2], v = [1 1 3]ᵀ: dA = [1 1 3; 2 2 6], db = [5; 10]. */
    const tt_real a_values[6] = {1, NAN, 3, 4, -INFINITY, 6};
    const tt_real b_values[2] = {INFINITY, 0};
    const tt_real u_values[2] = {1, 2};
    const tt_real v_values[3] = {1, 1, 3};
    const tt_real want_da[6] = {1, 1, 3, 2, 2, 6};
    const tt_real want_db[2] = {5, 10};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(2, 3, a_values, "A");
    tt_tensor *b = new_tensor_or_fail(2, 1, b_values, "b");
    tt_tensor *u = new_tensor_or_fail(1, 2, u_values, "u");
    tt_tensor *v = new_tensor_or_fail(3, 1, v_values, "v");
    require_grad_or_fail(a);
    require_grad_or_fail(b);

    tt_tensor *loss = tt_matmul(tape, tt_matmul(tape, u, tt_add(tape, a, b)), v);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    assert_all_equal("dA", tt_tensor_grad(a), want_da, 6);
    assert_all_equal("db", tt_tensor_grad(b), want_db, 2);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tensor_free(u);
    tt_tensor_free(v);
    tt_tape_free(tape);
}
END_TEST

/* ---- matmul ---------------------------------------------------------------------- */

START_TEST(matmul_spreads_nan_along_row_and_column)
{
    /* A (3 × 2) has NaN at (1, 0); B (2 × 4) is finite. Row 1 of C = A·B
     * reads A(1, 0) in every column, so it is all NaN; rows 0 and 2 are
     * exact. Backward with loss = u·C·v, u = [1 1 1], v = [1 1 1 1]ᵀ:
     * dC is all ones, dA = dC·Bᵀ = row sums of B in every row (finite),
     * dB = Aᵀ·dC = column sums of A in every column, NaN in row 0. */
    const tt_real a_values[6] = {1, 2, NAN, 3, -1, 4};
    const tt_real b_values[8] = {1, 0, 2, -1, 3, 1, 0, 2};
    const tt_real u_values[3] = {1, 1, 1};
    const tt_real v_values[4] = {1, 1, 1, 1};
    const tt_real want_c[12] = {7, 2, 2, 3, NAN, NAN, NAN, NAN, 11, 4, -2, 9};
    const tt_real want_da[6] = {2, 6, 2, 6, 2, 6};
    const tt_real want_db[8] = {NAN, NAN, NAN, NAN, 9, 9, 9, 9};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(3, 2, a_values, "A");
    tt_tensor *b = new_tensor_or_fail(2, 4, b_values, "B");
    tt_tensor *u = new_tensor_or_fail(1, 3, u_values, "u");
    tt_tensor *v = new_tensor_or_fail(4, 1, v_values, "v");
    require_grad_or_fail(a);
    require_grad_or_fail(b);

    tt_tensor *c = tt_matmul(tape, a, b);
    tt_tensor *loss = tt_matmul(tape, tt_matmul(tape, u, c), v);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    assert_same_values("C", tt_tensor_data(c), want_c, 12);
    assert_same_values("dA", tt_tensor_grad(a), want_da, 6);
    assert_same_values("dB", tt_tensor_grad(b), want_db, 8);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tensor_free(u);
    tt_tensor_free(v);
    tt_tape_free(tape);
}
END_TEST

START_TEST(matmul_of_infinity_follows_ieee_products)
{
    /* A = [inf 1] (1 × 2), B = [1 0 −1; 2 2 2]: C = [inf + 2, 0·inf + 2,
     * −inf + 2] = [inf NaN −inf], since inf·0 is NaN. */
    const tt_real a_values[2] = {INFINITY, 1};
    const tt_real b_values[6] = {1, 0, -1, 2, 2, 2};
    const tt_real want[3] = {INFINITY, NAN, -INFINITY};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(1, 2, a_values, "A");
    tt_tensor *b = new_tensor_or_fail(2, 3, b_values, "B");

    tt_tensor *c = tt_matmul(tape, a, b);

    ck_assert_ptr_nonnull(c);
    assert_same_values("C", tt_tensor_data(c), want, 3);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
}
END_TEST

static Suite *numerics_suite(void)
{
    Suite *suite = suite_create("numerics");

    TCase *extreme = add_test_case(suite, "cross_entropy_extreme_logits");
    tcase_add_test(extreme, cross_entropy_of_1e30_logits_is_exact_in_a_batch);
    tcase_add_test(extreme, cross_entropy_gives_minus_inf_logit_probability_zero);
    tcase_add_test(extreme, cross_entropy_is_infinite_when_label_logit_is_minus_inf);
    tcase_add_test(extreme, cross_entropy_ignores_minus_inf_class_that_is_not_label);
    tcase_add_test(extreme, cross_entropy_of_all_minus_inf_column_is_nan);
    tcase_add_test(extreme, cross_entropy_of_plus_inf_logit_is_nan);
    tcase_add_test(extreme, cross_entropy_of_nan_logit_is_nan_for_its_column);

    TCase *shapes = add_test_case(suite, "cross_entropy_small_shapes");
    tcase_add_test(shapes, cross_entropy_of_batch_of_one_is_not_averaged_away);
    tcase_add_test(shapes, cross_entropy_of_two_classes_is_softplus);
    tcase_add_test(shapes, cross_entropy_rejects_label_range_and_computes_nothing);

    TCase *relu = add_test_case(suite, "relu");
    tcase_add_test(relu, relu_at_zero_keeps_sign_and_passes_no_gradient);
    tcase_add_test(relu, relu_passes_gradient_at_plus_inf_only);

    TCase *add = add_test_case(suite, "add");
    tcase_add_test(add, add_spreads_nan_and_infinity_of_a_broadcast_operand);
    tcase_add_test(add, add_gradient_ignores_nan_and_infinity_in_values);

    TCase *matmul = add_test_case(suite, "matmul");
    tcase_add_test(matmul, matmul_spreads_nan_along_row_and_column);
    tcase_add_test(matmul, matmul_of_infinity_follows_ieee_products);

    return suite;
}

int main(void)
{
    return run_suite(numerics_suite());
}
