/* matmul: C = A·B (the product of eq. 1), forward, backward and errors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* Operand shapes: A is m × k and B is k × n. They include vectors, an outer
 * product (k = 1) and sizes that are not multiples of the kernel's row
 * block (4) or dot-product lanes (8), so the remainder loops run. */
typedef struct matmul_shape {
    size_t m;
    size_t k;
    size_t n;
} matmul_shape;

static const matmul_shape shapes[] = {
    {1, 1, 1}, {1, 5, 1}, {4, 1, 6}, {2, 3, 2}, {5, 7, 3}, {4, 8, 4}, {13, 17, 9}, {64, 33, 65},
};

#define SHAPE_COUNT (sizeof shapes / sizeof shapes[0])

/* Seeds for the random-input tests; each shape runs with each. */
static const uint64_t seeds[] = {1, 2, 3};

#define SEED_COUNT (sizeof seeds / sizeof seeds[0])

/* Context of the finite-difference loss: x contains A's m·k values, then
 * B's k·n values. */
typedef struct matmul_loss_context {
    matmul_shape shape;
    const loss_head *head;
} matmul_loss_context;

static double matmul_loss(const double *x, size_t count, void *context)
{
    const matmul_loss_context *ctx = context;
    const matmul_shape s = ctx->shape;
    (void)count;
    double *c = malloc(s.m * s.n * sizeof *c);
    ck_assert_ptr_nonnull(c);
    reference_matmul(c, x, x + s.m * s.k, s.m, s.k, s.n);
    const double loss = reference_loss_head(ctx->head, c);
    free(c);
    return loss;
}

/* ---- Forward ---------------------------------------------------------------- */

START_TEST(matmul_output_is_m_by_n)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(3, 4, NULL, "a");
    tt_tensor *b = new_tensor_or_fail(4, 5, NULL, "b");

    tt_tensor *c = tt_matmul(tape, a, b);

    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(tt_tensor_rows(c), 3);
    ck_assert_uint_eq(tt_tensor_cols(c), 5);
    ck_assert_ptr_null(tt_tensor_name(c));
    ck_assert_uint_eq(tt_tape_length(tape), 1);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
}
END_TEST

START_TEST(matmul_computes_hand_example)
{
    /* [1 2 3]   [ 7  8]   [1·7 + 2·9 + 3·11  1·8 + 2·10 + 3·12]   [ 58  64]
     * [4 5 6] · [ 9 10] = [4·7 + 5·9 + 6·11  4·8 + 5·10 + 6·12] = [139 154]
     *           [11 12]                                                    */
    const tt_real a_values[6] = {1, 2, 3, 4, 5, 6};
    const tt_real b_values[6] = {7, 8, 9, 10, 11, 12};
    const tt_real want[4] = {58, 64, 139, 154};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(2, 3, a_values, "a");
    tt_tensor *b = new_tensor_or_fail(3, 2, b_values, "b");

    tt_tensor *c = tt_matmul(tape, a, b);

    ck_assert_ptr_nonnull(c);
    assert_all_equal("C", tt_tensor_data(c), want, 4);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
}
END_TEST

START_TEST(matmul_matches_reference_for_many_shapes)
{
    for (size_t s = 0; s < SHAPE_COUNT; s++) {
        const matmul_shape shape = shapes[s];
        tt_rng rng;
        tt_rng_seed(&rng, 100 + s);
        tt_tape *tape = new_tape_or_fail();
        tt_tensor *a = new_uniform_tensor(shape.m, shape.k, &rng, -1.0, 1.0, "a");
        tt_tensor *b = new_uniform_tensor(shape.k, shape.n, &rng, -1.0, 1.0, "b");
        double *a_values = malloc(shape.m * shape.k * sizeof *a_values);
        double *b_values = malloc(shape.k * shape.n * sizeof *b_values);
        double *want = malloc(shape.m * shape.n * sizeof *want);
        copy_to_double(a_values, tt_tensor_data(a), shape.m * shape.k);
        copy_to_double(b_values, tt_tensor_data(b), shape.k * shape.n);
        reference_matmul(want, a_values, b_values, shape.m, shape.k, shape.n);

        tt_tensor *c = tt_matmul(tape, a, b);

        ck_assert_ptr_nonnull(c);
        ck_assert_uint_eq(tt_tensor_rows(c), shape.m);
        ck_assert_uint_eq(tt_tensor_cols(c), shape.n);
        char what[64];
        snprintf(what, sizeof what, "C of %zux%zu times %zux%zu", shape.m, shape.k, shape.k,
                 shape.n);
        assert_all_close_scaled(what, tt_tensor_data(c), want, shape.m, shape.n, RTOL_REAL);

        free(a_values);
        free(b_values);
        free(want);
        tt_tensor_free(a);
        tt_tensor_free(b);
        tt_tape_free(tape);
    }
}
END_TEST

START_TEST(matmul_overwrites_reused_tape_memory)
{
    /* After a reset the output takes the memory of the last step's output,
     * which still contains its values. A forward pass that added into its
     * output instead of overwriting it would return their sum. */
    const tt_real a_values[4] = {1, 2, 3, 4};
    const tt_real b_first[4] = {5, 6, 7, 8};
    const tt_real b_second[4] = {1, 0, 0, 1};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(2, 2, a_values, "a");
    tt_tensor *b = new_tensor_or_fail(2, 2, b_first, "b");
    ck_assert_ptr_nonnull(tt_matmul(tape, a, b));

    tt_tape_reset(tape);
    memcpy(tt_tensor_data(b), b_second, sizeof b_second);
    tt_tensor *c = tt_matmul(tape, a, b);

    ck_assert_ptr_nonnull(c);
    assert_all_equal("A times the identity", tt_tensor_data(c), a_values, 4);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
}
END_TEST

/* ---- Backward --------------------------------------------------------------- */

START_TEST(matmul_backward_matches_hand_example)
{
    /* A and B as in matmul_computes_hand_example, C = A·B, and
     * loss = u·C·v with u = [1 2] and v = [3 4]ᵀ, so
     *   C·v  = [58·3 + 64·4, 139·3 + 154·4]ᵀ = [430 1033]ᵀ, loss = 430 + 2·1033 = 2496,
     *   dC   = uᵀ·vᵀ = [3 4; 6 8],
     *   dA   = dC·Bᵀ = [3·7+4·8  3·9+4·10  3·11+4·12; 6·7+8·8  6·9+8·10  6·11+8·12]
     *               = [53 67 81; 106 134 162],
     *   dB   = Aᵀ·dC = [1·3+4·6  1·4+4·8; 2·3+5·6  2·4+5·8; 3·3+6·6  3·4+6·8]
     *               = [27 36; 36 48; 45 60]. */
    const tt_real a_values[6] = {1, 2, 3, 4, 5, 6};
    const tt_real b_values[6] = {7, 8, 9, 10, 11, 12};
    const tt_real u_values[2] = {1, 2};
    const tt_real v_values[2] = {3, 4};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(2, 3, a_values, "a");
    tt_tensor *b = new_tensor_or_fail(3, 2, b_values, "b");
    tt_tensor *u = new_tensor_or_fail(1, 2, u_values, "u");
    tt_tensor *v = new_tensor_or_fail(2, 1, v_values, "v");
    require_grad_or_fail(a);
    require_grad_or_fail(b);

    tt_tensor *c = tt_matmul(tape, a, b);
    retain_grad_or_fail(c);
    tt_tensor *loss = tt_matmul(tape, tt_matmul(tape, u, c), v);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    ck_assert_msg(tt_tensor_data(loss)[0] == 2496, "loss = %g, want 2496",
                  (double)tt_tensor_data(loss)[0]);
    const tt_real want_dc[4] = {3, 4, 6, 8};
    assert_all_equal("dC", tt_tensor_grad(c), want_dc, 4);
    const tt_real want_da[6] = {53, 67, 81, 106, 134, 162};
    assert_all_equal("dA", tt_tensor_grad(a), want_da, 6);
    const tt_real want_db[6] = {27, 36, 36, 48, 45, 60};
    assert_all_equal("dB", tt_tensor_grad(b), want_db, 6);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tensor_free(u);
    tt_tensor_free(v);
    tt_tape_free(tape);
}
END_TEST

START_TEST(matmul_backward_applies_transposed_products)
{
    /* For each shape: dA must equal dC·Bᵀ and dB must equal Aᵀ·dC, computed
     * in double from the engine's own dC. */
    for (size_t s = 0; s < SHAPE_COUNT; s++) {
        const matmul_shape shape = shapes[s];
        tt_rng rng;
        tt_rng_seed(&rng, 200 + s);
        tt_tape *tape = new_tape_or_fail();
        tt_tensor *a = new_uniform_tensor(shape.m, shape.k, &rng, -1.0, 1.0, "a");
        tt_tensor *b = new_uniform_tensor(shape.k, shape.n, &rng, -1.0, 1.0, "b");
        require_grad_or_fail(a);
        require_grad_or_fail(b);
        loss_head head = new_loss_head(shape.m, shape.n, &rng);

        tt_tensor *c = tt_matmul(tape, a, b);
        retain_grad_or_fail(c);
        ck_assert_int_eq(tt_tape_backward(tape, apply_loss_head(tape, &head, c)), TT_OK);

        const tt_real *dc = tt_tensor_grad(c);
        const tt_real *a_data = tt_tensor_data(a);
        const tt_real *b_data = tt_tensor_data(b);
        double *want_da = calloc(shape.m * shape.k, sizeof *want_da);
        double *want_db = calloc(shape.k * shape.n, sizeof *want_db);
        ck_assert_ptr_nonnull(dc);
        for (size_t r = 0; r < shape.m; r++)
            for (size_t p = 0; p < shape.k; p++)
                for (size_t i = 0; i < shape.n; i++)
                    want_da[r * shape.k + p] += (double)dc[r * shape.n + i] * b_data[p * shape.n + i];
        for (size_t p = 0; p < shape.k; p++)
            for (size_t i = 0; i < shape.n; i++)
                for (size_t r = 0; r < shape.m; r++)
                    want_db[p * shape.n + i] += (double)a_data[r * shape.k + p] * dc[r * shape.n + i];

        char what[64];
        snprintf(what, sizeof what, "dA of %zux%zu times %zux%zu", shape.m, shape.k, shape.k,
                 shape.n);
        assert_all_close_scaled(what, tt_tensor_grad(a), want_da, shape.m, shape.k, RTOL_REAL);
        snprintf(what, sizeof what, "dB of %zux%zu times %zux%zu", shape.m, shape.k, shape.k,
                 shape.n);
        assert_all_close_scaled(what, tt_tensor_grad(b), want_db, shape.k, shape.n, RTOL_REAL);

        free(want_da);
        free(want_db);
        free_loss_head(&head);
        tt_tensor_free(a);
        tt_tensor_free(b);
        tt_tape_free(tape);
    }
}
END_TEST

START_TEST(matmul_backward_matches_finite_differences)
{
    for (size_t s = 0; s < SHAPE_COUNT; s++) {
        const matmul_shape shape = shapes[s];
        /* The largest shape has over 4000 inputs, and finite differences
         * over all of them would be slow under valgrind. The smaller shapes
         * already run every loop of the kernel. */
        if (shape.m * shape.k + shape.k * shape.n > 1000)
            continue;
        for (size_t seed = 0; seed < SEED_COUNT; seed++) {
            tt_rng rng;
            tt_rng_seed(&rng, seeds[seed]);
            tt_tape *tape = new_tape_or_fail();
            tt_tensor *a = new_uniform_tensor(shape.m, shape.k, &rng, -1.0, 1.0, "a");
            tt_tensor *b = new_uniform_tensor(shape.k, shape.n, &rng, -1.0, 1.0, "b");
            require_grad_or_fail(a);
            require_grad_or_fail(b);
            loss_head head = new_loss_head(shape.m, shape.n, &rng);

            tt_tensor *c = tt_matmul(tape, a, b);
            ck_assert_int_eq(tt_tape_backward(tape, apply_loss_head(tape, &head, c)), TT_OK);

            const size_t a_size = shape.m * shape.k;
            const size_t count = a_size + shape.k * shape.n;
            double *x = malloc(count * sizeof *x);
            double *want = malloc(count * sizeof *want);
            copy_to_double(x, tt_tensor_data(a), a_size);
            copy_to_double(x + a_size, tt_tensor_data(b), shape.k * shape.n);
            matmul_loss_context context = {shape, &head};
            central_difference(matmul_loss, &context, x, count, FINITE_DIFFERENCE_STEP, want);

            char what[80];
            snprintf(what, sizeof what, "dA of %zux%zu times %zux%zu, seed %llu", shape.m,
                     shape.k, shape.k, shape.n, (unsigned long long)seeds[seed]);
            assert_all_close_scaled(what, tt_tensor_grad(a), want, shape.m, shape.k,
                                    RTOL_FINITE_DIFFERENCE);
            snprintf(what, sizeof what, "dB of %zux%zu times %zux%zu, seed %llu", shape.m,
                     shape.k, shape.k, shape.n, (unsigned long long)seeds[seed]);
            assert_all_close_scaled(what, tt_tensor_grad(b), want + a_size, shape.k, shape.n,
                                    RTOL_FINITE_DIFFERENCE);

            free(x);
            free(want);
            free_loss_head(&head);
            tt_tensor_free(a);
            tt_tensor_free(b);
            tt_tape_free(tape);
        }
    }
}
END_TEST

START_TEST(matmul_backward_skips_operand_without_gradient)
{
    /* loss = a·b with a = [1 2], b = [3 4]ᵀ; only a requires a gradient:
     * da = bᵀ = [3 4] and b gets none. */
    const tt_real a_values[2] = {1, 2};
    const tt_real b_values[2] = {3, 4};
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(1, 2, a_values, "a");
    tt_tensor *b = new_tensor_or_fail(2, 1, b_values, "b");
    require_grad_or_fail(a);

    tt_tensor *loss = tt_matmul(tape, a, b);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    ck_assert_msg(tt_tensor_data(loss)[0] == 11, "loss = %g, want 11",
                  (double)tt_tensor_data(loss)[0]);
    assert_all_equal("da", tt_tensor_grad(a), b_values, 2);
    ck_assert_ptr_null(tt_tensor_grad(b));

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
}
END_TEST

START_TEST(matmul_backward_reaches_gradient_added_after_forward)
{
    /* b is given a gradient only after the product was recorded. Backward
     * must still run both products in the scratch the op reserved, and b's
     * gradient must equal the one it gets when it requires a gradient from
     * the start. The shapes make dB's product need the most scratch, so a
     * scratch sized only for the forward and dA products overflows: a
     * crash or wrong values in a plain build, a report from
     * AddressSanitizer or valgrind. */
    enum { M = 256, K = 6, N = 16 };
    tt_rng rng;
    tt_rng_seed(&rng, 5);
    int32_t labels[N];
    fill_labels(labels, N, M, &rng);
    tt_tensor *a = new_uniform_tensor(M, K, &rng, -1, 1, "a");
    tt_tensor *b_late = new_uniform_tensor(K, N, &rng, -1, 1, "b_late");
    tt_tensor *b_early = new_tensor_or_fail(K, N, tt_tensor_data(b_late), "b_early");
    require_grad_or_fail(a);
    require_grad_or_fail(b_early);
    /* Separate tapes, because a tape keeps its scratch: after the first
     * run it would be large enough by chance. */
    tt_tape *early_tape = new_tape_or_fail();
    tt_tape *tape = new_tape_or_fail();

    tt_tensor *loss = tt_cross_entropy(early_tape, tt_matmul(early_tape, a, b_early), labels, N);
    ck_assert_int_eq(tt_tape_backward(early_tape, loss), TT_OK);
    tt_tensor_zero_grad(a);
    loss = tt_cross_entropy(tape, tt_matmul(tape, a, b_late), labels, N);
    require_grad_or_fail(b_late);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    assert_all_equal("gradient of b given after forward", tt_tensor_grad(b_late),
                     tt_tensor_grad(b_early), K * N);

    tt_tensor_free(a);
    tt_tensor_free(b_late);
    tt_tensor_free(b_early);
    tt_tape_free(early_tape);
    tt_tape_free(tape);
}
END_TEST

/* ---- Errors ----------------------------------------------------------------- */

START_TEST(matmul_rejects_inner_dimension_mismatch)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *w = new_tensor_or_fail(256, 784, NULL, "w1");
    tt_tensor *x = new_tensor_or_fail(100, 64, NULL, "x");

    ck_assert_ptr_null(tt_matmul(tape, w, x));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_SHAPE);
    ck_assert_int_eq(tt_tape_error(tape)->status, TT_ERR_SHAPE);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "matmul: A (w1) is 256x784 but B (x) is 100x64; the columns of A must "
                     "equal the rows of B");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tape_reset(tape);
    tt_tensor *x_fitting = new_tensor_or_fail(784, 64, NULL, "x");
    tt_tensor *c = tt_matmul(tape, w, x_fitting);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(tt_tensor_rows(c), 256);
    ck_assert_uint_eq(tt_tensor_cols(c), 64);
    assert_tape_ok(tape, "matmul after the reset");

    tt_tensor_free(w);
    tt_tensor_free(x);
    tt_tensor_free(x_fitting);
    tt_tape_free(tape);
}
END_TEST

START_TEST(matmul_message_labels_unnamed_operands)
{
    /* An unnamed caller-owned operand is shown by its role, an unnamed op
     * output as OP@POSITION. */
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(2, 3, NULL, NULL);
    tt_tensor *h = tt_relu(tape, a);
    ck_assert_ptr_nonnull(h);

    ck_assert_ptr_null(tt_matmul(tape, a, h));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_SHAPE);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "matmul: A is 2x3 but B (relu@0) is 2x3; the columns of A must equal the "
                     "rows of B");
    ck_assert_uint_eq(tt_tape_length(tape), 1);

    tt_tensor_free(a);
    tt_tape_free(tape);
}
END_TEST

START_TEST(matmul_message_fits_with_long_names)
{
    char long_name[300];
    memset(long_name, 'w', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(2, 3, NULL, long_name);
    tt_tensor *b = new_tensor_or_fail(2, 3, NULL, long_name);

    ck_assert_ptr_null(tt_matmul(tape, a, b));

    const char *message = tt_tape_error(tape)->message;
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_SHAPE);
    ck_assert_uint_lt(strlen(message), TT_ERROR_MESSAGE_MAX);
    ck_assert_msg(strncmp(message, "matmul: A (www", 14) == 0, "message starts \"%.20s\"",
                  message);
    ck_assert_msg(strstr(message, "...) is 2x3 but B (") != NULL,
                  "long names are not cut to keep the shapes: %s", message);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
}
END_TEST

START_TEST(matmul_rejects_null_operand)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(2, 2, NULL, "a");

    ck_assert_ptr_null(tt_matmul(tape, NULL, a));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "matmul: A is NULL");

    tt_tape_reset(tape);
    ck_assert_ptr_null(tt_matmul(tape, a, NULL));
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "matmul: B is NULL");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_matmul(tape, a, a));
    assert_tape_ok(tape, "matmul after the reset");

    tt_tensor_free(a);
    tt_tape_free(tape);
}
END_TEST

START_TEST(matmul_rejects_tensor_of_another_tape)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tape *other = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(2, 2, NULL, "a");
    tt_tensor *x = tt_tape_tensor(other, 2, 2, "x");
    ck_assert_ptr_nonnull(x);

    ck_assert_ptr_null(tt_matmul(tape, a, x));

    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_ARG);
    ck_assert_str_eq(tt_tape_error(tape)->message, "matmul: B (x) belongs to another tape");

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_matmul(tape, a, a));
    assert_tape_ok(tape, "matmul after the reset");

    tt_tensor_free(a);
    tt_tape_free(tape);
    tt_tape_free(other);
}
END_TEST

static Suite *matmul_suite(void)
{
    Suite *suite = suite_create("matmul");

    TCase *forward = add_test_case(suite, "forward");
    tcase_add_test(forward, matmul_output_is_m_by_n);
    tcase_add_test(forward, matmul_computes_hand_example);
    tcase_add_test(forward, matmul_matches_reference_for_many_shapes);
    tcase_add_test(forward, matmul_overwrites_reused_tape_memory);

    TCase *backward = add_test_case(suite, "backward");
    tcase_add_test(backward, matmul_backward_matches_hand_example);
    tcase_add_test(backward, matmul_backward_applies_transposed_products);
    tcase_add_test(backward, matmul_backward_matches_finite_differences);
    tcase_add_test(backward, matmul_backward_skips_operand_without_gradient);
    tcase_add_test(backward, matmul_backward_reaches_gradient_added_after_forward);

    TCase *errors = add_test_case(suite, "errors");
    tcase_add_test(errors, matmul_rejects_inner_dimension_mismatch);
    tcase_add_test(errors, matmul_message_labels_unnamed_operands);
    tcase_add_test(errors, matmul_message_fits_with_long_names);
    tcase_add_test(errors, matmul_rejects_null_operand);
    tcase_add_test(errors, matmul_rejects_tensor_of_another_tape);

    return suite;
}

int main(void)
{
    return run_suite(matmul_suite());
}
