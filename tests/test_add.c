/* add: elementwise sum with broadcasting (the bias term of eq. 1), every
 * broadcasting form, forward, backward and errors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"

/* Sizes of the broadcasting tests: d rows and n columns, different so that
 * a mix-up of rows and columns changes the shape. */
#define D 3
#define N 4

/* Seeds for each form; each form runs with each. */
static const uint64_t seeds[] = {1, 2};

#define SEED_COUNT (sizeof seeds / sizeof seeds[0])

/* Index of element (r, i) of C in an operand of shape rows × cols that is
 * repeated along its size-1 dimensions. */
static size_t broadcast_index(size_t rows, size_t cols, size_t r, size_t i)
{
    const size_t row = rows == 1 ? 0 : r;
    const size_t col = cols == 1 ? 0 : i;
    return row * cols + col;
}

/* Operand shapes and the finite-difference loss's context: x contains A's
 * values, then B's. */
typedef struct add_case {
    size_t a_rows;
    size_t a_cols;
    size_t b_rows;
    size_t b_cols;
    size_t c_rows;
    size_t c_cols;
    const loss_head *head;
} add_case;

static double add_loss(const double *x, size_t count, void *context)
{
    const add_case *ctx = context;
    const double *a = x;
    const double *b = x + ctx->a_rows * ctx->a_cols;
    (void)count;
    double *c = malloc(ctx->c_rows * ctx->c_cols * sizeof *c);
    ck_assert_ptr_nonnull(c);
    for (size_t r = 0; r < ctx->c_rows; r++)
        for (size_t i = 0; i < ctx->c_cols; i++)
            c[r * ctx->c_cols + i] = a[broadcast_index(ctx->a_rows, ctx->a_cols, r, i)] +
                                     b[broadcast_index(ctx->b_rows, ctx->b_cols, r, i)];
    const double loss = reference_loss_head(ctx->head, c);
    free(c);
    return loss;
}

/* Checks one broadcasting form, A (a_rows × a_cols) + B (b_rows × b_cols):
 *   - the output shape is the larger size in each dimension;
 *   - the forward values equal the sum with each operand's row or column
 *     explicitly repeated, exactly, since each is one tt_real addition;
 *   - dA and dB equal the engine's dC summed over the dimensions along
 *     which each operand was repeated;
 *   - dA and dB match central differences of a loss on top of C. */
static void assert_add_form(size_t a_rows, size_t a_cols, size_t b_rows, size_t b_cols)
{
    const size_t c_rows = a_rows > b_rows ? a_rows : b_rows;
    const size_t c_cols = a_cols > b_cols ? a_cols : b_cols;
    const size_t a_size = a_rows * a_cols;
    const size_t b_size = b_rows * b_cols;
    char form[48];
    snprintf(form, sizeof form, "%zux%zu + %zux%zu", a_rows, a_cols, b_rows, b_cols);

    for (size_t seed = 0; seed < SEED_COUNT; seed++) {
        tt_rng rng;
        tt_rng_seed(&rng, seeds[seed]);
        tt_tape *tape = new_tape_or_fail();
        tt_tensor *a = new_uniform_tensor(a_rows, a_cols, &rng, -1.0, 1.0, "a");
        tt_tensor *b = new_uniform_tensor(b_rows, b_cols, &rng, -1.0, 1.0, "b");
        require_grad_or_fail(a);
        require_grad_or_fail(b);
        loss_head head = new_loss_head(c_rows, c_cols, &rng);
        const tt_real *a_data = tt_tensor_data(a);
        const tt_real *b_data = tt_tensor_data(b);

        /* Output shape. */
        tt_tensor *c = tt_add(tape, a, b);
        ck_assert_msg(c != NULL, "%s failed: %s", form, tt_tape_error(tape)->message);
        ck_assert_msg(tt_tensor_rows(c) == c_rows && tt_tensor_cols(c) == c_cols,
                      "%s gave %zux%zu, want %zux%zu", form, tt_tensor_rows(c), tt_tensor_cols(c),
                      c_rows, c_cols);

        /* Forward against the explicitly repeated sum. */
        tt_real *want_c = malloc(c_rows * c_cols * sizeof *want_c);
        ck_assert_ptr_nonnull(want_c);
        for (size_t r = 0; r < c_rows; r++)
            for (size_t i = 0; i < c_cols; i++)
                want_c[r * c_cols + i] = a_data[broadcast_index(a_rows, a_cols, r, i)] +
                                         b_data[broadcast_index(b_rows, b_cols, r, i)];
        char what[128];
        snprintf(what, sizeof what, "C of %s", form);
        assert_all_equal(what, tt_tensor_data(c), want_c, c_rows * c_cols);

        /* Backward against dC summed over the repeated dimensions. */
        retain_grad_or_fail(c);
        ck_assert_int_eq(tt_tape_backward(tape, apply_loss_head(tape, &head, c)), TT_OK);
        const tt_real *dc = tt_tensor_grad(c);
        ck_assert_ptr_nonnull(dc);
        double *want_da = calloc(a_size, sizeof *want_da);
        double *want_db = calloc(b_size, sizeof *want_db);
        ck_assert_ptr_nonnull(want_da);
        ck_assert_ptr_nonnull(want_db);
        for (size_t r = 0; r < c_rows; r++) {
            for (size_t i = 0; i < c_cols; i++) {
                want_da[broadcast_index(a_rows, a_cols, r, i)] += dc[r * c_cols + i];
                want_db[broadcast_index(b_rows, b_cols, r, i)] += dc[r * c_cols + i];
            }
        }
        snprintf(what, sizeof what, "dA of %s, seed %llu", form, (unsigned long long)seeds[seed]);
        assert_all_close_scaled(what, tt_tensor_grad(a), want_da, a_rows, a_cols, RTOL_REAL);
        snprintf(what, sizeof what, "dB of %s, seed %llu", form, (unsigned long long)seeds[seed]);
        assert_all_close_scaled(what, tt_tensor_grad(b), want_db, b_rows, b_cols, RTOL_REAL);

        /* Backward against central differences. */
        double *x = malloc((a_size + b_size) * sizeof *x);
        double *want = malloc((a_size + b_size) * sizeof *want);
        ck_assert_ptr_nonnull(x);
        ck_assert_ptr_nonnull(want);
        copy_to_double(x, a_data, a_size);
        copy_to_double(x + a_size, b_data, b_size);
        add_case context = {a_rows, a_cols, b_rows, b_cols, c_rows, c_cols, &head};
        central_difference(add_loss, &context, x, a_size + b_size, FINITE_DIFFERENCE_STEP, want);
        snprintf(what, sizeof what, "dA of %s against finite differences", form);
        assert_all_close_scaled(what, tt_tensor_grad(a), want, a_rows, a_cols,
                                RTOL_FINITE_DIFFERENCE);
        snprintf(what, sizeof what, "dB of %s against finite differences", form);
        assert_all_close_scaled(what, tt_tensor_grad(b), want + a_size, b_rows, b_cols,
                                RTOL_FINITE_DIFFERENCE);

        free(want_c);
        free(want_da);
        free(want_db);
        free(x);
        free(want);
        free_loss_head(&head);
        tt_tensor_free(a);
        tt_tensor_free(b);
        tt_tape_free(tape);
    }
}

/* ---- Broadcasting forms ------------------------------------------------------ */

START_TEST(add_sums_equal_shapes_elementwise)
{
    assert_add_form(D, N, D, N);
}
END_TEST

START_TEST(add_broadcasts_bias_across_every_column)
{
    assert_add_form(D, 1, D, N);
}
END_TEST

START_TEST(add_broadcasts_column_on_the_right)
{
    assert_add_form(D, N, D, 1);
}
END_TEST

START_TEST(add_broadcasts_row_across_every_row)
{
    assert_add_form(1, N, D, N);
}
END_TEST

START_TEST(add_broadcasts_row_on_the_right)
{
    assert_add_form(D, N, 1, N);
}
END_TEST

START_TEST(add_broadcasts_scalar_on_the_left)
{
    assert_add_form(1, 1, D, N);
}
END_TEST

START_TEST(add_broadcasts_scalar_on_the_right)
{
    assert_add_form(D, N, 1, 1);
}
END_TEST

START_TEST(add_broadcasts_scalar_to_column_and_row)
{
    assert_add_form(1, 1, D, 1);
    assert_add_form(1, N, 1, 1);
    assert_add_form(1, 1, 1, 1);
}
END_TEST

START_TEST(add_forms_outer_sum_of_column_and_row)
{
    assert_add_form(D, 1, 1, N);
}
END_TEST

START_TEST(add_forms_outer_sum_of_row_and_column)
{
    assert_add_form(1, N, D, 1);
}
END_TEST

/* ---- Hand example and fan-out ----------------------------------------------- */

START_TEST(add_backward_sums_bias_gradient_over_samples)
{
    /* z = b + x with b = [1 2]ᵀ (2 × 1) and x = [10 20 30; 40 50 60]:
     *   z = [11 21 31; 42 52 62].
     * loss = u·z·v with u = [1 2] and v = [1 10 100]ᵀ, so
     *   dz = uᵀ·vᵀ = [1 10 100; 2 20 200],
     *   db = row sums of dz = [111 222]ᵀ (eq. 14 writes this as a row),
     *   dx = dz. */
    const tt_real b_values[2] = {1, 2};
    const tt_real x_values[6] = {10, 20, 30, 40, 50, 60};
    const tt_real u_values[2] = {1, 2};
    const tt_real v_values[3] = {1, 10, 100};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *b = new_tensor_or_fail(2, 1, b_values, "b");
    tt_tensor *x = new_tensor_or_fail(2, 3, x_values, "x");
    tt_tensor *u = new_tensor_or_fail(1, 2, u_values, "u");
    tt_tensor *v = new_tensor_or_fail(3, 1, v_values, "v");
    require_grad_or_fail(b);
    require_grad_or_fail(x);

    tt_tensor *z = tt_add(tape, b, x);
    tt_tensor *loss = tt_matmul(tape, tt_matmul(tape, u, z), v);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    const tt_real want_z[6] = {11, 21, 31, 42, 52, 62};
    assert_all_equal("z", tt_tensor_data(z), want_z, 6);
    const tt_real want_db[2] = {111, 222};
    assert_all_equal("db", tt_tensor_grad(b), want_db, 2);
    const tt_real want_dx[6] = {1, 10, 100, 2, 20, 200};
    assert_all_equal("dx", tt_tensor_grad(x), want_dx, 6);

    tt_tensor_free(b);
    tt_tensor_free(x);
    tt_tensor_free(u);
    tt_tensor_free(v);
    tt_tape_free(tape);
}
END_TEST

START_TEST(add_of_tensor_to_itself_doubles_gradient)
{
    /* c = a + a with a = [1 2]; loss = c·v with v = [3 4]ᵀ:
     * c = [2 4], loss = 6 + 16 = 22, and da = 2·vᵀ = [6 8]. */
    const tt_real a_values[2] = {1, 2};
    const tt_real v_values[2] = {3, 4};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(1, 2, a_values, "a");
    tt_tensor *v = new_tensor_or_fail(2, 1, v_values, "v");
    require_grad_or_fail(a);

    tt_tensor *loss = tt_matmul(tape, tt_add(tape, a, a), v);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    ck_assert_msg(tt_tensor_data(loss)[0] == 22, "loss = %g, want 22",
                  (double)tt_tensor_data(loss)[0]);
    const tt_real want_da[2] = {6, 8};
    assert_all_equal("da", tt_tensor_grad(a), want_da, 2);

    tt_tensor_free(a);
    tt_tensor_free(v);
    tt_tape_free(tape);
}
END_TEST

/* ---- Errors ----------------------------------------------------------------- */

/* Adds a named a_rows × a_cols tensor to a named b_rows × b_cols one and
 * checks that the tape fails with TT_ERR_SHAPE and the message, records
 * nothing, and works again after a reset. */
static void assert_add_rejects(size_t a_rows, size_t a_cols, size_t b_rows, size_t b_cols)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(a_rows, a_cols, NULL, "a");
    tt_tensor *b = new_tensor_or_fail(b_rows, b_cols, NULL, "b");

    ck_assert_ptr_null(tt_add(tape, a, b));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_SHAPE);
    char want[TT_ERROR_MESSAGE_MAX];
    snprintf(want, sizeof want,
             "add: A (a) is %zux%zu but B (b) is %zux%zu; in each dimension the sizes must be "
             "equal or one of them 1",
             a_rows, a_cols, b_rows, b_cols);
    ck_assert_str_eq(tt_tape_error(tape)->message, want);
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_add(tape, a, a));
    assert_tape_ok(tape, "add after the reset");

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
}

START_TEST(add_rejects_transposed_shapes)
{
    assert_add_rejects(2, 3, 3, 2);
}
END_TEST

START_TEST(add_rejects_column_count_mismatch)
{
    assert_add_rejects(2, 3, 2, 2);
}
END_TEST

START_TEST(add_rejects_row_count_mismatch)
{
    assert_add_rejects(3, 1, 2, 1);
    assert_add_rejects(2, 4, 3, 1);
}
END_TEST

START_TEST(add_rejects_null_operand)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(2, 2, NULL, "a");

    ck_assert_ptr_null(tt_add(tape, NULL, a));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "add: A is NULL");

    tt_tape_reset(tape);
    ck_assert_ptr_null(tt_add(tape, a, NULL));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "add: B is NULL");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_add(tape, a, a));
    assert_tape_ok(tape, "add after the reset");

    tt_tensor_free(a);
    tt_tape_free(tape);
}
END_TEST

START_TEST(add_rejects_tensor_of_another_tape)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tape *other = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(2, 2, NULL, "a");
    tt_tensor *h = tt_relu(other, a);
    ck_assert_ptr_nonnull(h);

    ck_assert_ptr_null(tt_add(tape, h, a));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "add: A (relu@0) belongs to another tape");

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_add(tape, a, a));
    assert_tape_ok(tape, "add after the reset");

    tt_tensor_free(a);
    tt_tape_free(tape);
    tt_tape_free(other);
}
END_TEST

static Suite *add_suite(void)
{
    Suite *suite = suite_create("add");

    TCase *forms = add_test_case(suite, "broadcasting");
    tcase_add_test(forms, add_sums_equal_shapes_elementwise);
    tcase_add_test(forms, add_broadcasts_bias_across_every_column);
    tcase_add_test(forms, add_broadcasts_column_on_the_right);
    tcase_add_test(forms, add_broadcasts_row_across_every_row);
    tcase_add_test(forms, add_broadcasts_row_on_the_right);
    tcase_add_test(forms, add_broadcasts_scalar_on_the_left);
    tcase_add_test(forms, add_broadcasts_scalar_on_the_right);
    tcase_add_test(forms, add_broadcasts_scalar_to_column_and_row);
    tcase_add_test(forms, add_forms_outer_sum_of_column_and_row);
    tcase_add_test(forms, add_forms_outer_sum_of_row_and_column);

    TCase *hand = add_test_case(suite, "hand");
    tcase_add_test(hand, add_backward_sums_bias_gradient_over_samples);
    tcase_add_test(hand, add_of_tensor_to_itself_doubles_gradient);

    TCase *errors = add_test_case(suite, "errors");
    tcase_add_test(errors, add_rejects_transposed_shapes);
    tcase_add_test(errors, add_rejects_column_count_mismatch);
    tcase_add_test(errors, add_rejects_row_count_mismatch);
    tcase_add_test(errors, add_rejects_null_operand);
    tcase_add_test(errors, add_rejects_tensor_of_another_tape);

    return suite;
}

int main(void)
{
    return run_suite(add_suite());
}
