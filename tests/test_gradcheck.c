/* tt_gradcheck: it passes on every op, fails on deliberately wrong
 * gradients and names the entry, excludes differences taken across a
 * kink, reports checks that verify nothing as vacuous, leaves the tensors
 * as it found them, and reports every error.
 *
 * The wrong gradients come from test ops built on the internal op
 * descriptor (src/internal.h), each with a correct twin as a control. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "internal.h"

/* ---- Test ops ----------------------------------------------------------------- */

/* Each test op adds into its input's gradient, which tt_grad_values zeroes
 * first if backward has not written it yet. */

/* Element whose gradient the dropping op leaves out. */
#define DROPPED_ROW 1
#define DROPPED_COL 2

/* doubling: out = 2·x. The correct backward adds 2·dout. */
static void doubling_backward(const tt_record *record)
{
    tt_tensor *x = record->inputs[0];
    tt_real *dx = tt_grad_values(x);
    for (size_t i = 0; i < tt_tensor_size(x); i++)
        dx[i] += 2 * record->output->grad[i];
}

/* The bug of a forgotten constant factor: adds dout instead of 2·dout. */
static void doubling_backward_missing_factor(const tt_record *record)
{
    tt_tensor *x = record->inputs[0];
    tt_real *dx = tt_grad_values(x);
    for (size_t i = 0; i < tt_tensor_size(x); i++)
        dx[i] += record->output->grad[i];
}

/* identity: out = x. The correct backward adds dout. */
static void identity_backward(const tt_record *record)
{
    tt_tensor *x = record->inputs[0];
    tt_real *dx = tt_grad_values(x);
    for (size_t i = 0; i < tt_tensor_size(x); i++)
        dx[i] += record->output->grad[i];
}

/* The bug of a wrong loop bound or index: identity's backward that leaves
 * out element (DROPPED_ROW, DROPPED_COL). */
static void identity_backward_dropping_one(const tt_record *record)
{
    tt_tensor *x = record->inputs[0];
    tt_real *dx = tt_grad_values(x);
    const size_t dropped = DROPPED_ROW * x->cols + DROPPED_COL;
    for (size_t i = 0; i < tt_tensor_size(x); i++)
        if (i != dropped)
            dx[i] += record->output->grad[i];
}

/* relu as ops/relu.c computes it, but with no crosses_kink hook. */
static void hookless_relu_backward(const tt_record *record)
{
    tt_tensor *x = record->inputs[0];
    tt_real *dx = tt_grad_values(x);
    for (size_t i = 0; i < tt_tensor_size(x); i++)
        dx[i] += x->data[i] > 0 ? record->output->grad[i] : 0;
}

static const tt_op doubling_op = {.name = "doubling", .n_inputs = 1, .backward = doubling_backward};
static const tt_op doubling_missing_factor_op = {
    .name = "doubling", .n_inputs = 1, .backward = doubling_backward_missing_factor};
static const tt_op identity_op = {.name = "identity", .n_inputs = 1, .backward = identity_backward};
static const tt_op identity_dropping_one_op = {
    .name = "identity", .n_inputs = 1, .backward = identity_backward_dropping_one};
static const tt_op hookless_relu_op = {
    .name = "hookless_relu", .n_inputs = 1, .backward = hookless_relu_backward};

/* Records one of the test ops above on x, computing its forward pass. */
static tt_tensor *test_op(tt_tape *tape, const tt_op *op, tt_tensor *x)
{
    tt_tensor *const inputs[] = {x};
    const char *const roles[] = {"x"};
    if (!tt_op_begin(tape, op, inputs, roles))
        return NULL;
    tt_tensor *out = tt_op_output(tape, op, inputs, x->rows, x->cols);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < tt_tensor_size(x); i++) {
        if (op == &doubling_op || op == &doubling_missing_factor_op)
            out->data[i] = 2 * x->data[i];
        else if (op == &hookless_relu_op)
            out->data[i] = x->data[i] < 0 ? 0 : x->data[i];
        else
            out->data[i] = x->data[i];
    }
    tt_op_record(tape, op, inputs, out, NULL);
    return out;
}

/* ---- Loss functions ------------------------------------------------------------ */

/* The body of a loss: records some ops on the tensors and returns a
 * rows × cols tensor, which a loss_head turns into a scalar. */
typedef tt_tensor *(*loss_body)(tt_tape *tape, tt_tensor *const tensors[], const tt_op *op);

/* Context of head_loss: loss = apply_loss_head(body(tensors)). */
typedef struct head_context {
    const loss_head *head;
    loss_body body;
    const tt_op *op; /* for bodies built on a test op */
} head_context;

static tt_tensor *head_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                            void *context)
{
    const head_context *ctx = context;
    (void)n_tensors;
    return apply_loss_head(tape, ctx->head, ctx->body(tape, tensors, ctx->op));
}

static tt_tensor *matmul_body(tt_tape *tape, tt_tensor *const t[], const tt_op *op)
{
    (void)op;
    return tt_matmul(tape, t[0], t[1]);
}

static tt_tensor *add_body(tt_tape *tape, tt_tensor *const t[], const tt_op *op)
{
    (void)op;
    return tt_add(tape, t[0], t[1]);
}

static tt_tensor *relu_body(tt_tape *tape, tt_tensor *const t[], const tt_op *op)
{
    (void)op;
    return tt_relu(tape, t[0]);
}

static tt_tensor *relu_of_matmul_body(tt_tape *tape, tt_tensor *const t[], const tt_op *op)
{
    (void)op;
    return tt_relu(tape, tt_matmul(tape, t[0], t[1]));
}

/* x·x + x for a square x: x feeds both operands of one op and two ops. */
static tt_tensor *square_plus_self_body(tt_tape *tape, tt_tensor *const t[], const tt_op *op)
{
    (void)op;
    return tt_add(tape, tt_matmul(tape, t[0], t[0]), t[0]);
}

/* Two-layer MLP, eq. 1-3: w2·relu(w1·x + b1) + b2 with t = {w1, b1, w2, b2, x}. */
static tt_tensor *mlp_body(tt_tape *tape, tt_tensor *const t[], const tt_op *op)
{
    (void)op;
    tt_tensor *h = tt_relu(tape, tt_add(tape, tt_matmul(tape, t[0], t[4]), t[1]));
    return tt_add(tape, tt_matmul(tape, t[2], h), t[3]);
}

static tt_tensor *test_op_body(tt_tape *tape, tt_tensor *const t[], const tt_op *op)
{
    return test_op(tape, op, t[0]);
}

/* Context of cross_entropy_loss: loss = cross_entropy(op(z)) or, with
 * add_bias, cross_entropy(op(z) + b), where z is the last listed tensor, b
 * the first, and op a test op or NULL for none. */
typedef struct logits_context {
    const int32_t *labels;
    size_t n;
    const tt_op *op;
    bool add_bias;
} logits_context;

static tt_tensor *cross_entropy_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                                     void *context)
{
    const logits_context *ctx = context;
    tt_tensor *logits = tensors[n_tensors - 1];
    tt_tensor *z = ctx->op == NULL ? logits : test_op(tape, ctx->op, logits);
    if (ctx->add_bias)
        z = tt_add(tape, z, tensors[0]);
    return tt_cross_entropy(tape, z, ctx->labels, ctx->n);
}

/* ---- Helpers ------------------------------------------------------------------- */

/* A caller-owned tensor of normal values that requires a gradient. */
static tt_tensor *new_parameter(size_t rows, size_t cols, tt_rng *rng, double stddev,
                                const char *name)
{
    tt_tensor *tensor = new_tensor_or_fail(rows, cols, NULL, name);
    tt_tensor_fill_normal(tensor, rng, 0, (tt_real)stddev);
    require_grad_or_fail(tensor);
    return tensor;
}

/* Runs the check, failing the test unless it ran. */
static tt_gradcheck_result run_gradcheck(tt_loss_function loss, void *context,
                                         tt_tensor *const tensors[], size_t n_tensors,
                                         const tt_gradcheck_options *options)
{
    tt_gradcheck_result result;
    tt_error err = {TT_OK, ""};
    const tt_status status = tt_gradcheck(loss, context, tensors, n_tensors, options, &result, &err);
    ck_assert_msg(status == TT_OK, "tt_gradcheck returned %s: %s", tt_status_str(status),
                  err.message);
    return result;
}

static void assert_passed(const tt_gradcheck_result *result, const char *what)
{
    ck_assert_msg(result->verdict == TT_GRADCHECK_PASSED, "%s: %s", what, result->summary);
    ck_assert_msg(result->n_failed == 0, "%s: %zu entries failed", what, result->n_failed);
    ck_assert_msg(result->worst.relative_error <= result->tolerance,
                  "%s: worst relative error %g above tolerance %g", what,
                  result->worst.relative_error, result->tolerance);
}

/* Total entries of the tensors. */
static size_t total_entries(tt_tensor *const tensors[], size_t n_tensors)
{
    size_t total = 0;
    for (size_t t = 0; t < n_tensors; t++)
        total += tt_tensor_rows(tensors[t]) * tt_tensor_cols(tensors[t]);
    return total;
}

static void free_tensors(tt_tensor *const tensors[], size_t n_tensors)
{
    for (size_t t = 0; t < n_tensors; t++)
        tt_tensor_free(tensors[t]);
}

/* ---- Passing on every op ------------------------------------------------------- */

START_TEST(gradcheck_passes_for_matmul)
{
    const size_t shapes[][3] = {{1, 1, 1}, {1, 5, 1}, {4, 1, 3}, {3, 4, 5}, {7, 2, 9}};

    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const size_t m = shapes[s][0];
        const size_t k = shapes[s][1];
        const size_t n = shapes[s][2];
        tt_rng rng;
        tt_rng_seed(&rng, 100 + s);
        tt_tensor *tensors[2] = {new_parameter(m, k, &rng, 1, "A"),
                                 new_parameter(k, n, &rng, 1, "B")};
        loss_head head = new_loss_head(m, n, &rng);
        head_context context = {&head, matmul_body, NULL};

        const tt_gradcheck_result result = run_gradcheck(head_loss, &context, tensors, 2, NULL);

        char what[48];
        snprintf(what, sizeof what, "matmul %zux%zu by %zux%zu", m, k, k, n);
        assert_passed(&result, what);
        ck_assert_uint_eq(result.n_compared, m * k + k * n);
        ck_assert_uint_eq(result.n_kinks, 0);

        free_loss_head(&head);
        free_tensors(tensors, 2);
    }
}
END_TEST

START_TEST(gradcheck_passes_for_add_in_every_broadcast_form)
{
    /* Operand shapes for d = 4 rows and n = 5 columns: equal shapes, a
     * column, a row or a scalar on either side, and both outer sums. */
    const size_t shapes[][4] = {{4, 5, 4, 5}, {4, 1, 4, 5}, {4, 5, 4, 1}, {1, 5, 4, 5},
                                {4, 5, 1, 5}, {1, 1, 4, 5}, {4, 5, 1, 1}, {4, 1, 1, 5},
                                {1, 5, 4, 1}, {1, 1, 4, 1}, {1, 5, 1, 1}, {1, 1, 1, 1}};

    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        tt_rng rng;
        tt_rng_seed(&rng, 200 + s);
        tt_tensor *tensors[2] = {new_parameter(shapes[s][0], shapes[s][1], &rng, 1, "A"),
                                 new_parameter(shapes[s][2], shapes[s][3], &rng, 1, "B")};
        const size_t rows = shapes[s][0] > shapes[s][2] ? shapes[s][0] : shapes[s][2];
        const size_t cols = shapes[s][1] > shapes[s][3] ? shapes[s][1] : shapes[s][3];
        loss_head head = new_loss_head(rows, cols, &rng);
        head_context context = {&head, add_body, NULL};

        const tt_gradcheck_result result = run_gradcheck(head_loss, &context, tensors, 2, NULL);

        char what[48];
        snprintf(what, sizeof what, "add %zux%zu + %zux%zu", shapes[s][0], shapes[s][1],
                 shapes[s][2], shapes[s][3]);
        assert_passed(&result, what);
        ck_assert_uint_eq(result.n_compared, total_entries(tensors, 2));

        free_loss_head(&head);
        free_tensors(tensors, 2);
    }
}
END_TEST

START_TEST(gradcheck_passes_for_relu_away_from_kink)
{
    /* Magnitudes of at least 0.1 keep every element more than one step
     * (at most 2·TT_GRADCHECK_DEFAULT_STEP here) from the kink at 0. */
    tt_rng rng;
    tt_rng_seed(&rng, 300);
    tt_tensor *x = new_tensor_or_fail(6, 7, NULL, "x");
    fill_away_from_zero(tt_tensor_data(x), 42, &rng, 0.1, 2.0);
    require_grad_or_fail(x);
    loss_head head = new_loss_head(6, 7, &rng);
    head_context context = {&head, relu_body, NULL};

    const tt_gradcheck_result result = run_gradcheck(head_loss, &context, &x, 1, NULL);

    assert_passed(&result, "relu");
    ck_assert_uint_eq(result.n_compared, 42);
    ck_assert_uint_eq(result.n_kinks, 0);

    free_loss_head(&head);
    tt_tensor_free(x);
}
END_TEST

START_TEST(gradcheck_passes_for_cross_entropy)
{
    /* Classes × samples, including the smallest: two classes, one sample. */
    const size_t shapes[][2] = {{2, 1}, {2, 6}, {5, 1}, {4, 6}, {10, 3}};

    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const size_t n_classes = shapes[s][0];
        const size_t n = shapes[s][1];
        tt_rng rng;
        tt_rng_seed(&rng, 400 + s);
        tt_tensor *z = new_parameter(n_classes, n, &rng, 2, "z");
        int32_t labels[6];
        fill_labels(labels, n, n_classes, &rng);
        logits_context context = {labels, n, NULL, false};

        const tt_gradcheck_result result = run_gradcheck(cross_entropy_loss, &context, &z, 1, NULL);

        char what[48];
        snprintf(what, sizeof what, "cross_entropy of %zux%zu", n_classes, n);
        assert_passed(&result, what);
        ck_assert_uint_eq(result.n_compared, n_classes * n);

        tt_tensor_free(z);
    }
}
END_TEST

START_TEST(gradcheck_passes_for_two_layer_mlp)
{
    /* A ReLU layer may put some differences across a kink. Those are
     * excluded, and every entry is either compared or excluded. */
    tt_rng rng;
    tt_rng_seed(&rng, 500);
    tt_tensor *tensors[5] = {new_parameter(6, 4, &rng, 0.5, "w1"),
                             new_parameter(6, 1, &rng, 0.5, "b1"),
                             new_parameter(3, 6, &rng, 0.5, "w2"),
                             new_parameter(3, 1, &rng, 0.5, "b2"),
                             new_parameter(4, 5, &rng, 1, "x")};
    loss_head head = new_loss_head(3, 5, &rng);
    head_context context = {&head, mlp_body, NULL};

    const tt_gradcheck_result result = run_gradcheck(head_loss, &context, tensors, 5, NULL);

    assert_passed(&result, "two-layer MLP");
    ck_assert_uint_eq(result.n_compared + result.n_kinks, total_entries(tensors, 5));

    free_loss_head(&head);
    free_tensors(tensors, 5);
}
END_TEST

START_TEST(gradcheck_passes_for_tensor_feeding_several_ops)
{
    tt_rng rng;
    tt_rng_seed(&rng, 600);
    tt_tensor *x = new_parameter(3, 3, &rng, 1, "x");
    loss_head head = new_loss_head(3, 3, &rng);
    head_context context = {&head, square_plus_self_body, NULL};

    const tt_gradcheck_result result = run_gradcheck(head_loss, &context, &x, 1, NULL);

    assert_passed(&result, "x*x + x");
    ck_assert_uint_eq(result.n_compared, 9);

    free_loss_head(&head);
    tt_tensor_free(x);
}
END_TEST

/* ---- Failing on wrong gradients ------------------------------------------------ */

START_TEST(gradcheck_fails_on_missing_constant_factor)
{
    /* The analytic gradient is half the true one, so the worst relative
     * error is |g − 2g| / |2g| = 1/2. The correct twin passes. */
    tt_rng rng;
    tt_rng_seed(&rng, 700);
    tt_tensor *x = new_parameter(3, 4, &rng, 1, "x");
    loss_head head = new_loss_head(3, 4, &rng);
    head_context broken = {&head, test_op_body, &doubling_missing_factor_op};
    head_context correct = {&head, test_op_body, &doubling_op};

    const tt_gradcheck_result result = run_gradcheck(head_loss, &broken, &x, 1, NULL);
    const tt_gradcheck_result control = run_gradcheck(head_loss, &correct, &x, 1, NULL);

    ck_assert_msg(result.verdict == TT_GRADCHECK_FAILED, "%s", result.summary);
    ck_assert_uint_ge(result.n_failed, 1);
    ck_assert_msg(is_close(result.worst.relative_error, 0.5, 0, result.tolerance),
                  "worst relative error %g, want 0.5", result.worst.relative_error);
    ck_assert_msg(is_close(result.worst.numeric, 2 * result.worst.analytic, 0, result.tolerance),
                  "numeric %g is not twice analytic %g", result.worst.numeric,
                  result.worst.analytic);
    assert_passed(&control, "doubling with the correct backward");

    free_loss_head(&head);
    tt_tensor_free(x);
}
END_TEST

START_TEST(gradcheck_locates_dropped_gradient_entry)
{
    /* loss = cross_entropy(identity(x) + b) with identity's backward
     * leaving out element (1, 2) of x. Its label is 1, so the true gradient
     * there is (softmax − 1)/n, far from 0: that entry alone fails, with
     * analytic 0. The gradient of b does not pass through the bug. */
    enum { CLASSES = 3, SAMPLES = 4 };
    const tt_real x_values[CLASSES * SAMPLES] = {0.5f, -1, 2, 0, 1, 0.25f, -0.5f, 1.5f,
                                                 -2, 0.75f, 1, -1};
    const tt_real b_values[CLASSES] = {0.1f, -0.2f, 0.3f};
    const int32_t labels[SAMPLES] = {0, 2, DROPPED_ROW, 1};
    tt_tensor *x = new_tensor_or_fail(CLASSES, SAMPLES, x_values, "x");
    tt_tensor *b = new_tensor_or_fail(CLASSES, 1, b_values, "b");
    require_grad_or_fail(x);
    require_grad_or_fail(b);
    tt_tensor *tensors[2] = {b, x};
    logits_context broken = {labels, SAMPLES, &identity_dropping_one_op, true};
    logits_context correct = {labels, SAMPLES, &identity_op, true};

    const tt_gradcheck_result result =
        run_gradcheck(cross_entropy_loss, &broken, tensors, 2, NULL);
    const tt_gradcheck_result control =
        run_gradcheck(cross_entropy_loss, &correct, tensors, 2, NULL);

    /* The true gradient at the dropped entry, from the double reference. */
    double z[CLASSES * SAMPLES];
    double softmax[CLASSES * SAMPLES];
    for (size_t c = 0; c < CLASSES; c++)
        for (size_t i = 0; i < SAMPLES; i++)
            z[c * SAMPLES + i] = (double)x_values[c * SAMPLES + i] + (double)b_values[c];
    reference_cross_entropy(z, labels, CLASSES, SAMPLES, softmax);
    const double want = (softmax[DROPPED_ROW * SAMPLES + DROPPED_COL] - 1.0) / SAMPLES;

    ck_assert_msg(result.verdict == TT_GRADCHECK_FAILED, "%s", result.summary);
    ck_assert_uint_eq(result.n_failed, 1);
    ck_assert_uint_eq(result.n_compared, CLASSES + CLASSES * SAMPLES);
    ck_assert_uint_eq(result.worst.tensor, 1);
    ck_assert_str_eq(result.worst.name, "x");
    ck_assert_uint_eq(result.worst.row, DROPPED_ROW);
    ck_assert_uint_eq(result.worst.col, DROPPED_COL);
    ck_assert_msg(result.worst.analytic == 0, "analytic %g, want 0", result.worst.analytic);
    ck_assert_msg(is_close(result.worst.numeric, want, 0, result.tolerance), "numeric %.9g, want %.9g",
                  result.worst.numeric, want);
    ck_assert_msg(result.worst.relative_error == 1, "relative error %g, want 1",
                  result.worst.relative_error);
    assert_passed(&control, "identity with the correct backward");

    tt_tensor_free(x);
    tt_tensor_free(b);
}
END_TEST

/* Records cross_entropy of a tape-tensor copy of tensors[0]: the copy has
 * no gradient, so backward never reaches the tensor, a bug in the loss. */
static tt_tensor *copying_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                               void *context)
{
    const logits_context *ctx = context;
    (void)n_tensors;
    const size_t rows = tt_tensor_rows(tensors[0]);
    const size_t cols = tt_tensor_cols(tensors[0]);
    tt_tensor *copy = tt_tape_tensor(tape, rows, cols, "copy");
    if (copy == NULL)
        return NULL;
    memcpy(tt_tensor_data(copy), tt_tensor_data(tensors[0]), rows * cols * sizeof(tt_real));
    return tt_cross_entropy(tape, copy, ctx->labels, ctx->n);
}

START_TEST(gradcheck_fails_when_copy_cuts_gradient)
{
    const tt_real z_values[6] = {1, -1, 0.5f, 2, 0, -0.5f};
    const int32_t labels[2] = {0, 2};
    tt_tensor *z = new_tensor_or_fail(3, 2, z_values, "z");
    require_grad_or_fail(z);
    logits_context context = {labels, 2, NULL, false};

    const tt_gradcheck_result result = run_gradcheck(copying_loss, &context, &z, 1, NULL);

    ck_assert_msg(result.verdict == TT_GRADCHECK_FAILED, "%s", result.summary);
    ck_assert_uint_eq(result.n_failed, 6);
    ck_assert_msg(result.worst.analytic == 0, "analytic %g, want 0", result.worst.analytic);

    tt_tensor_free(z);
}
END_TEST

/* ---- Kinks --------------------------------------------------------------------- */

START_TEST(gradcheck_excludes_relu_inputs_within_a_step_of_zero)
{
    /* With |x| < 1 an element moves by h, the default step. Elements 0,
     * h/4 and −h/4 end up on the other side of 0 in one of the two moves.
     * The other three stay on their side. */
    const tt_real h = (tt_real)TT_GRADCHECK_DEFAULT_STEP;
    const tt_real x_values[6] = {0, h / 4, -h / 4, 0.5f, -0.5f, 0.75f};
    tt_rng rng;
    tt_rng_seed(&rng, 800);
    tt_tensor *x = new_tensor_or_fail(1, 6, x_values, "x");
    require_grad_or_fail(x);
    loss_head head = new_loss_head(1, 6, &rng);
    head_context context = {&head, relu_body, NULL};

    const tt_gradcheck_result result = run_gradcheck(head_loss, &context, &x, 1, NULL);

    assert_passed(&result, "relu near 0");
    ck_assert_uint_eq(result.n_kinks, 3);
    ck_assert_uint_eq(result.n_compared, 3);
    ck_assert_uint_eq(result.first_kink.tensor, 0);
    ck_assert_uint_eq(result.first_kink.row, 0);
    ck_assert_uint_eq(result.first_kink.col, 0);

    free_loss_head(&head);
    tt_tensor_free(x);
}
END_TEST

START_TEST(gradcheck_finds_kinks_behind_matmul)
{
    /* relu(w·v) with w·v = 1·2 + (−1)·2 = 0: moving either entry of w
     * moves the product off 0, to the positive side in one direction, so
     * both entries are excluded and nothing is left to compare. */
    const tt_real w_values[2] = {1, -1};
    const tt_real v_values[2] = {2, 2};
    tt_rng rng;
    tt_rng_seed(&rng, 900);
    tt_tensor *w = new_tensor_or_fail(1, 2, w_values, "w");
    tt_tensor *v = new_tensor_or_fail(2, 1, v_values, "v");
    require_grad_or_fail(w);
    tt_tensor *operands[2] = {w, v};
    loss_head head = new_loss_head(1, 1, &rng);
    head_context context = {&head, relu_of_matmul_body, NULL};

    /* Only w is checked. v, without a gradient, reaches the body as operand 1. */
    const tt_gradcheck_result result = run_gradcheck(head_loss, &context, operands, 1, NULL);

    ck_assert_msg(result.verdict == TT_GRADCHECK_VACUOUS, "%s", result.summary);
    ck_assert_uint_eq(result.n_kinks, 2);
    ck_assert_uint_eq(result.n_compared, 0);

    free_loss_head(&head);
    tt_tensor_free(w);
    tt_tensor_free(v);
}
END_TEST

START_TEST(gradcheck_without_kink_hook_fails_at_zero)
{
    /* The same relu without crosses_kink: the difference at x = 0 is half
     * the slope of the positive side, the analytic derivative is 0 (eq.
     * 16), and the entry fails. The hook is what tells the two apart. */
    const tt_real x_values[3] = {0, 0.5f, -0.5f};
    tt_rng rng;
    tt_rng_seed(&rng, 1000);
    tt_tensor *x = new_tensor_or_fail(1, 3, x_values, "x");
    require_grad_or_fail(x);
    loss_head head = new_loss_head(1, 3, &rng);
    head_context hookless = {&head, test_op_body, &hookless_relu_op};
    head_context hooked = {&head, relu_body, NULL};

    const tt_gradcheck_result result = run_gradcheck(head_loss, &hookless, &x, 1, NULL);
    const tt_gradcheck_result control = run_gradcheck(head_loss, &hooked, &x, 1, NULL);

    ck_assert_msg(result.verdict == TT_GRADCHECK_FAILED, "%s", result.summary);
    ck_assert_uint_eq(result.n_kinks, 0);
    ck_assert_uint_eq(result.worst.col, 0);
    ck_assert_msg(result.worst.analytic == 0, "analytic %g, want 0", result.worst.analytic);
    assert_passed(&control, "relu with its hook");
    ck_assert_uint_eq(control.n_kinks, 1);

    free_loss_head(&head);
    tt_tensor_free(x);
}
END_TEST

/* Records head(relu(x)) when x[0] > 0 and head(x + 0) otherwise: the same
 * values, since every other element of x is positive, but different ops. */
static tt_tensor *branching_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                                 void *context)
{
    const head_context *ctx = context;
    (void)n_tensors;
    tt_tensor *x = tensors[0];
    if (tt_tensor_data(x)[0] > 0)
        return apply_loss_head(tape, ctx->head, tt_relu(tape, x));
    tt_tensor *zero = tt_tape_tensor(tape, 1, 1, "zero");
    return apply_loss_head(tape, ctx->head, tt_add(tape, x, zero));
}

START_TEST(gradcheck_treats_changed_ops_as_kink)
{
    const tt_real x_values[4] = {0, 0.5f, 1, 1.5f};
    tt_rng rng;
    tt_rng_seed(&rng, 1100);
    tt_tensor *x = new_tensor_or_fail(1, 4, x_values, "x");
    require_grad_or_fail(x);
    loss_head head = new_loss_head(1, 4, &rng);
    head_context context = {&head, NULL, NULL};

    const tt_gradcheck_result result = run_gradcheck(branching_loss, &context, &x, 1, NULL);

    assert_passed(&result, "branching loss");
    ck_assert_uint_eq(result.n_kinks, 1);
    ck_assert_uint_eq(result.first_kink.col, 0);
    ck_assert_uint_eq(result.n_compared, 3);

    free_loss_head(&head);
    tt_tensor_free(x);
}
END_TEST

/* ---- Vacuous checks ------------------------------------------------------------ */

/* Context of constant_loss: cross_entropy of logits that no listed
 * tensor reaches. */
typedef struct constant_context {
    tt_tensor *logits;
    const int32_t *labels;
    size_t n;
} constant_context;

static tt_tensor *constant_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                                void *context)
{
    const constant_context *ctx = context;
    (void)tensors;
    (void)n_tensors;
    return tt_cross_entropy(tape, ctx->logits, ctx->labels, ctx->n);
}

START_TEST(gradcheck_reports_unused_tensor_as_vacuous)
{
    const tt_real logits_values[4] = {1, 2, 3, 4};
    const int32_t labels[2] = {0, 1};
    tt_tensor *logits = new_tensor_or_fail(2, 2, logits_values, "logits");
    tt_tensor *x = new_tensor_or_fail(2, 3, NULL, "x");
    require_grad_or_fail(x);
    constant_context context = {logits, labels, 2};

    const tt_gradcheck_result result = run_gradcheck(constant_loss, &context, &x, 1, NULL);

    ck_assert_msg(result.verdict == TT_GRADCHECK_VACUOUS, "%s", result.summary);
    ck_assert_uint_eq(result.n_compared, 6);
    ck_assert_uint_eq(result.n_zero, 6);
    ck_assert_uint_eq(result.n_failed, 0);

    tt_tensor_free(logits);
    tt_tensor_free(x);
}
END_TEST

START_TEST(gradcheck_reports_relu_of_negative_inputs_as_vacuous)
{
    tt_rng rng;
    tt_rng_seed(&rng, 1200);
    tt_tensor *x = new_uniform_tensor(3, 4, &rng, -2.0, -0.5, "x");
    require_grad_or_fail(x);
    loss_head head = new_loss_head(3, 4, &rng);
    head_context context = {&head, relu_body, NULL};

    const tt_gradcheck_result result = run_gradcheck(head_loss, &context, &x, 1, NULL);

    ck_assert_msg(result.verdict == TT_GRADCHECK_VACUOUS, "%s", result.summary);
    ck_assert_uint_eq(result.n_zero, 12);
    ck_assert_uint_eq(result.n_kinks, 0);

    free_loss_head(&head);
    tt_tensor_free(x);
}
END_TEST

START_TEST(gradcheck_reports_single_class_cross_entropy_as_vacuous)
{
    /* With one class the softmax is 1 and the loss 0 whatever the logits. */
    const tt_real z_values[3] = {-1, 0.5f, 2};
    const int32_t labels[3] = {0, 0, 0};
    tt_tensor *z = new_tensor_or_fail(1, 3, z_values, "z");
    require_grad_or_fail(z);
    logits_context context = {labels, 3, NULL, false};

    const tt_gradcheck_result result = run_gradcheck(cross_entropy_loss, &context, &z, 1, NULL);

    ck_assert_msg(result.verdict == TT_GRADCHECK_VACUOUS, "%s", result.summary);
    ck_assert_uint_eq(result.n_zero, 3);

    tt_tensor_free(z);
}
END_TEST

START_TEST(gradcheck_passes_when_one_tensor_is_unused)
{
    /* One listed tensor with a real gradient is enough to verify something. */
    tt_rng rng;
    tt_rng_seed(&rng, 1300);
    tt_tensor *tensors[3] = {new_parameter(2, 3, &rng, 1, "A"), new_parameter(3, 2, &rng, 1, "B"),
                             new_parameter(4, 4, &rng, 1, "unused")};
    loss_head head = new_loss_head(2, 2, &rng);
    head_context context = {&head, matmul_body, NULL};

    const tt_gradcheck_result result = run_gradcheck(head_loss, &context, tensors, 3, NULL);

    assert_passed(&result, "matmul with an unused tensor");
    ck_assert_uint_eq(result.n_zero, 16);
    ck_assert_uint_eq(result.n_compared, 28);

    free_loss_head(&head);
    free_tensors(tensors, 3);
}
END_TEST

/* Context of scaled_product_loss: loss = cross_entropy(z + u·v) for a
 * fixed 2 × 1 z, with u (2 × 1) and v (1 × 1) listed. */
typedef struct product_context {
    tt_tensor *z;
} product_context;

static tt_tensor *scaled_product_loss(tt_tape *tape, tt_tensor *const tensors[],
                                      size_t n_tensors, void *context)
{
    const product_context *ctx = context;
    const int32_t label = 0;
    (void)n_tensors;
    return tt_cross_entropy(tape, tt_add(tape, ctx->z, tt_matmul(tape, tensors[0], tensors[1])),
                            &label, 1);
}

START_TEST(gradcheck_accepts_difference_within_noise)
{
    /* z = [1 0], label 0, so L is about log(1 + e^-1) = 0.3133 and dL/dz
     * is about [−0.269 0.269]. With u = [1 −1] and a tiny v, dL/du = v·dL/dz
     * is about 1.5 resolution units of the difference, ulp(L)/(2h). The
     * numeric value is then a whole number of units off by rounding, so
     * its relative error is large, but those entries count as zero and do
     * not fail. dL/dv = u·dL/dz, about −0.54, is checked as usual. */
    const tt_real loss_estimate = (tt_real)0.3133;
    const double resolution =
        ((double)TT_NEXTAFTER(loss_estimate, (tt_real)1) - (double)loss_estimate) /
        (2 * TT_GRADCHECK_DEFAULT_STEP);
    const tt_real z_values[2] = {1, 0};
    const tt_real u_values[2] = {1, -1};
    const tt_real v_value = (tt_real)(1.5 * resolution / 0.269);
    tt_tensor *z = new_tensor_or_fail(2, 1, z_values, "z");
    tt_tensor *u = new_tensor_or_fail(2, 1, u_values, "u");
    tt_tensor *v = new_tensor_or_fail(1, 1, &v_value, "v");
    require_grad_or_fail(u);
    require_grad_or_fail(v);
    tt_tensor *tensors[2] = {u, v};
    product_context context = {z};

    const tt_gradcheck_result result = run_gradcheck(scaled_product_loss, &context, tensors, 2, NULL);
    tt_tape *tape = new_tape_or_fail();
    ck_assert_int_eq(tt_tape_backward(tape, scaled_product_loss(tape, tensors, 2, &context)),
                     TT_OK);

    const double du = tt_tensor_grad(u)[0];
    ck_assert_msg(du != 0 && fabs(du) < 4 * resolution,
                  "dL/du = %g, want nonzero and below 4 resolution units, %g", du,
                  4 * resolution);
    assert_passed(&result, "tiny gradient of u");
    ck_assert_uint_eq(result.n_zero, 2);

    tt_tape_free(tape);
    tt_tensor_free(z);
    tt_tensor_free(u);
    tt_tensor_free(v);
}
END_TEST

/* ---- Effects on the tensors ---------------------------------------------------- */

START_TEST(gradcheck_restores_data_bit_for_bit)
{
    /* Values that arithmetic would not give back: (x + h) − h differs
     * from x for −0 (it gives +0), for the smallest subnormal and for most
     * values that are not short binary fractions, such as 1/3. */
    tt_real x_values[6] = {-0.0f, 0, (tt_real)(1.0 / 3), -7.25f, 1e6f, 0.1f};
    x_values[1] = TT_NEXTAFTER((tt_real)0, (tt_real)1);
    tt_rng rng;
    tt_rng_seed(&rng, 1400);
    tt_tensor *x = new_tensor_or_fail(2, 3, x_values, "x");
    require_grad_or_fail(x);
    loss_head head = new_loss_head(2, 3, &rng);
    head_context context = {&head, test_op_body, &identity_op};

    run_gradcheck(head_loss, &context, &x, 1, NULL);

    ck_assert_msg(memcmp(tt_tensor_data(x), x_values, sizeof x_values) == 0,
                  "the data of x changed");

    free_loss_head(&head);
    tt_tensor_free(x);
}
END_TEST

START_TEST(gradcheck_restores_gradients_of_every_tensor)
{
    /* The gradients contain a previous pass's sums. The listed A and the
     * unlisted B, which requires a gradient and feeds the loss, keep them,
     * and the check still compares the true gradient of A. */
    tt_rng rng;
    tt_rng_seed(&rng, 1500);
    tt_tensor *a = new_parameter(3, 2, &rng, 1, "A");
    tt_tensor *b = new_parameter(2, 4, &rng, 1, "B");
    tt_tensor *tensors[2] = {a, b};
    tt_real a_grad[6];
    tt_real b_grad[8];
    for (size_t i = 0; i < 6; i++)
        a_grad[i] = (tt_real)(i + 1);
    for (size_t i = 0; i < 8; i++)
        b_grad[i] = (tt_real)(-10.5 * (double)i);
    memcpy(tt_tensor_grad(a), a_grad, sizeof a_grad);
    memcpy(tt_tensor_grad(b), b_grad, sizeof b_grad);
    loss_head head = new_loss_head(3, 4, &rng);
    head_context context = {&head, matmul_body, NULL};

    const tt_gradcheck_result result = run_gradcheck(head_loss, &context, tensors, 1, NULL);

    assert_passed(&result, "matmul with filled gradients");
    assert_all_equal("gradient of A", tt_tensor_grad(a), a_grad, 6);
    assert_all_equal("gradient of B", tt_tensor_grad(b), b_grad, 8);

    free_loss_head(&head);
    free_tensors(tensors, 2);
}
END_TEST

/* Context of failing_loss: head_loss that fails once `calls` reaches
 * `failing_call`, by recording a matmul whose shapes do not fit. */
typedef struct failing_context {
    head_context inner;
    size_t calls;
    size_t failing_call;
} failing_context;

static tt_tensor *failing_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                               void *context)
{
    failing_context *ctx = context;
    if (ctx->calls++ == ctx->failing_call)
        return tt_matmul(tape, tensors[0], tensors[0]);
    return head_loss(tape, tensors, n_tensors, &ctx->inner);
}

START_TEST(gradcheck_restores_tensors_after_failure)
{
    /* The third call moves element (0, 1) up by h, and it fails there. */
    const tt_real x_values[6] = {0.5f, -1, 2, 0.25f, 1.5f, -0.75f};
    tt_rng rng;
    tt_rng_seed(&rng, 1600);
    tt_tensor *x = new_tensor_or_fail(2, 3, x_values, "x");
    require_grad_or_fail(x);
    tt_real grad_values[6] = {1, 2, 3, 4, 5, 6};
    memcpy(tt_tensor_grad(x), grad_values, sizeof grad_values);
    loss_head head = new_loss_head(2, 3, &rng);
    failing_context context = {{&head, relu_body, NULL}, 0, 3};
    tt_gradcheck_result result;
    tt_error err = {TT_OK, ""};

    const tt_status status = tt_gradcheck(failing_loss, &context, &x, 1, NULL, &result, &err);

    ck_assert_int_eq(status, TT_ERR_SHAPE);
    ck_assert_int_eq(err.status, TT_ERR_SHAPE);
    char want[TT_ERROR_MESSAGE_MAX];
    snprintf(want, sizeof want,
             "tt_gradcheck: the loss function failed with tensor 0 (x) element (0, 1) moved to "
             "%.9g: matmul: A (x) is 2x3 but B (x) is 2x3; the columns of A must equal the rows "
             "of B",
             (double)(tt_real)(-1.0 + TT_GRADCHECK_DEFAULT_STEP));
    ck_assert_str_eq(err.message, want);
    ck_assert_msg(memcmp(tt_tensor_data(x), x_values, sizeof x_values) == 0,
                  "the data of x changed");
    assert_all_equal("gradient of x", tt_tensor_grad(x), grad_values, 6);

    free_loss_head(&head);
    tt_tensor_free(x);
}
END_TEST

/* ---- Options ------------------------------------------------------------------- */

/* x·x·x for a 1 × 1 x: its central difference errs by exactly h² for x = 1. */
static tt_tensor *cube_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                            void *context)
{
    (void)n_tensors;
    (void)context;
    return tt_matmul(tape, tt_matmul(tape, tensors[0], tensors[0]), tensors[0]);
}

START_TEST(gradcheck_uses_step_and_tolerance_from_options)
{
    /* d(x³)/dx = 3 at x = 1. With step 0.1 the difference is
     * (1.1³ − 0.9³)/0.2 = 3.01, a relative error of 0.01/3.01 = 3.3e-3:
     * above a tolerance of 1e-3, below one of 1e-2. */
    const double step = 0.1;
    /* The loss is rounded to tt_real twice and divided by 0.2: 1e-5 covers
     * that in float and in double. */
    const double numeric_rtol = 1e-5;
    const tt_real one = 1;
    tt_tensor *x = new_tensor_or_fail(1, 1, &one, "x");
    require_grad_or_fail(x);
    const tt_gradcheck_options strict = {step, 1e-3, 0, 0};
    const tt_gradcheck_options loose = {step, 1e-2, 0, 0};

    const tt_gradcheck_result failed = run_gradcheck(cube_loss, NULL, &x, 1, &strict);
    const tt_gradcheck_result passed = run_gradcheck(cube_loss, NULL, &x, 1, &loose);
    const tt_gradcheck_result by_default = run_gradcheck(cube_loss, NULL, &x, 1, NULL);

    const double above = (double)(tt_real)(1 + step);
    const double below = (double)(tt_real)(1 - step);
    const double want = above * above + above * below + below * below;
    ck_assert_msg(failed.verdict == TT_GRADCHECK_FAILED, "%s", failed.summary);
    ck_assert_msg(failed.step == step, "step %g, want %g", failed.step, step);
    ck_assert_msg(failed.tolerance == 1e-3, "tolerance %g, want 1e-3", failed.tolerance);
    ck_assert_msg(is_close(failed.worst.numeric, want, 0, numeric_rtol), "numeric %.9g, want %.9g",
                  failed.worst.numeric, want);
    ck_assert_msg(failed.worst.analytic == 3, "analytic %g, want 3", failed.worst.analytic);
    assert_passed(&passed, "cube with tolerance 1e-2");
    assert_passed(&by_default, "cube with the default step");

    tt_tensor_free(x);
}
END_TEST

START_TEST(gradcheck_takes_defaults_for_null_and_zero_options)
{
    const tt_real one = 1;
    tt_tensor *x = new_tensor_or_fail(1, 1, &one, "x");
    require_grad_or_fail(x);
    const tt_gradcheck_options zeros = {0, 0, 0, 0};

    const tt_gradcheck_result with_null = run_gradcheck(cube_loss, NULL, &x, 1, NULL);
    const tt_gradcheck_result with_zeros = run_gradcheck(cube_loss, NULL, &x, 1, &zeros);

    ck_assert_msg(with_null.step == TT_GRADCHECK_DEFAULT_STEP, "step %g", with_null.step);
    ck_assert_msg(with_null.tolerance == TT_GRADCHECK_DEFAULT_TOLERANCE, "tolerance %g",
                  with_null.tolerance);
    ck_assert_msg(with_zeros.step == TT_GRADCHECK_DEFAULT_STEP, "step %g", with_zeros.step);
    ck_assert_msg(with_zeros.tolerance == TT_GRADCHECK_DEFAULT_TOLERANCE, "tolerance %g",
                  with_zeros.tolerance);

    tt_tensor_free(x);
}
END_TEST

START_TEST(gradcheck_samples_at_most_max_entries)
{
    /* x and y have 20 entries, of which 7 each are drawn. The column has
     * 4, all checked. The same seed draws the same entries, so the worst
     * entry repeats. */
    tt_rng rng;
    tt_rng_seed(&rng, 1700);
    tt_tensor *tensors[2] = {new_parameter(4, 5, &rng, 1, "x"), new_parameter(4, 5, &rng, 1, "y")};
    loss_head head = new_loss_head(4, 5, &rng);
    head_context context = {&head, add_body, NULL};
    const tt_gradcheck_options options = {0, 0, 7, 42};
    tt_tensor *small[2] = {tensors[0], new_parameter(4, 1, &rng, 1, "column")};

    const tt_gradcheck_result first = run_gradcheck(head_loss, &context, tensors, 2, &options);
    const tt_gradcheck_result second = run_gradcheck(head_loss, &context, tensors, 2, &options);
    const tt_gradcheck_result mixed = run_gradcheck(head_loss, &context, small, 2, &options);

    assert_passed(&first, "sampled add");
    ck_assert_uint_eq(first.n_compared, 14);
    ck_assert_uint_eq(second.worst.tensor, first.worst.tensor);
    ck_assert_uint_eq(second.worst.row, first.worst.row);
    ck_assert_uint_eq(second.worst.col, first.worst.col);
    ck_assert_msg(second.worst.relative_error == first.worst.relative_error,
                  "relative error %g then %g", first.worst.relative_error,
                  second.worst.relative_error);
    ck_assert_uint_eq(mixed.n_compared, 11);

    free_loss_head(&head);
    free_tensors(tensors, 2);
    tt_tensor_free(small[1]);
}
END_TEST

START_TEST(gradcheck_fails_when_step_moves_nothing)
{
    /* 1 ± 1e-30 rounds to 1 in float and in double, so x+ = x− and the
     * difference is 0/0: the entry fails instead of passing unchecked. */
    const tt_real one = 1;
    tt_tensor *x = new_tensor_or_fail(1, 1, &one, "x");
    require_grad_or_fail(x);
    const tt_gradcheck_options tiny_step = {1e-30, 0, 0, 0};

    const tt_gradcheck_result result = run_gradcheck(cube_loss, NULL, &x, 1, &tiny_step);

    ck_assert_msg(result.verdict == TT_GRADCHECK_FAILED, "%s", result.summary);
    ck_assert_msg(isnan(result.worst.numeric), "numeric %g, want NaN", result.worst.numeric);
    ck_assert_msg(isinf(result.worst.relative_error), "relative error %g, want inf",
                  result.worst.relative_error);

    tt_tensor_free(x);
}
END_TEST

/* ---- Errors ------------------------------------------------------------------- */

/* Runs tt_gradcheck expecting `status` and `message`, and checks that x's
 * data and gradient are unchanged, bit for bit (they may hold NaN). */
static void assert_gradcheck_error(tt_loss_function loss, void *context,
                                   tt_tensor *const tensors[], size_t n_tensors,
                                   const tt_gradcheck_options *options, tt_tensor *x,
                                   tt_status status, const char *message)
{
    const size_t size = tt_tensor_rows(x) * tt_tensor_cols(x);
    tt_real *data = malloc(size * sizeof *data);
    tt_real *grad = malloc(size * sizeof *grad);
    ck_assert_ptr_nonnull(data);
    ck_assert_ptr_nonnull(grad);
    memcpy(data, tt_tensor_data(x), size * sizeof *data);
    const bool has_grad = tt_tensor_grad(x) != NULL;
    if (has_grad)
        memcpy(grad, tt_tensor_grad(x), size * sizeof *grad);
    tt_gradcheck_result result;
    tt_error err = {TT_OK, ""};

    const tt_status got = tt_gradcheck(loss, context, tensors, n_tensors, options, &result, &err);

    ck_assert_msg(got == status, "status %s, want %s (%s)", tt_status_str(got),
                  tt_status_str(status), err.message);
    ck_assert_int_eq(err.status, status);
    ck_assert_str_eq(err.message, message);
    ck_assert_msg(memcmp(tt_tensor_data(x), data, size * sizeof *data) == 0, "the data changed");
    if (has_grad)
        ck_assert_msg(memcmp(tt_tensor_grad(x), grad, size * sizeof *grad) == 0,
                      "the gradient changed");
    free(data);
    free(grad);
}

START_TEST(gradcheck_rejects_null_arguments)
{
    tt_tensor *x = new_tensor_or_fail(1, 1, NULL, "x");
    require_grad_or_fail(x);
    tt_gradcheck_result result;

    assert_gradcheck_error(NULL, NULL, &x, 1, NULL, x, TT_ERR_ARG,
                           "tt_gradcheck: the loss function is NULL");
    assert_gradcheck_error(cube_loss, NULL, NULL, 1, NULL, x, TT_ERR_ARG,
                           "tt_gradcheck: tensors is NULL");
    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_gradcheck(cube_loss, NULL, &x, 1, NULL, NULL, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_gradcheck: result is NULL");
    ck_assert_int_eq(tt_gradcheck(NULL, NULL, &x, 1, NULL, &result, NULL), TT_ERR_ARG);

    tt_tensor_free(x);
}
END_TEST

START_TEST(gradcheck_rejects_bad_tensor_lists)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(1, 1, NULL, "x");
    tt_tensor *plain = new_tensor_or_fail(2, 2, NULL, "plain");
    tt_tensor *batch = tt_tape_tensor(tape, 2, 2, "batch");
    require_grad_or_fail(x);
    tt_tensor *with_null[2] = {x, NULL};
    tt_tensor *with_plain[2] = {x, plain};
    tt_tensor *with_batch[2] = {x, batch};
    tt_tensor *twice[3] = {x, plain, x};

    assert_gradcheck_error(cube_loss, NULL, &x, 0, NULL, x, TT_ERR_ARG,
                           "tt_gradcheck: n_tensors is 0; there is nothing to check");
    assert_gradcheck_error(cube_loss, NULL, with_null, 2, NULL, x, TT_ERR_ARG,
                           "tt_gradcheck: tensor 1 is NULL");
    assert_gradcheck_error(cube_loss, NULL, with_plain, 2, NULL, x, TT_ERR_ARG,
                           "tt_gradcheck: tensor 1 (plain) does not require a gradient; call "
                           "tt_tensor_require_grad() on it first");
    assert_gradcheck_error(cube_loss, NULL, with_batch, 2, NULL, x, TT_ERR_ARG,
                           "tt_gradcheck: tensor 1 (batch) belongs to a tape; only "
                           "caller-owned tensors can be checked");
    require_grad_or_fail(plain);
    assert_gradcheck_error(cube_loss, NULL, twice, 3, NULL, x, TT_ERR_ARG,
                           "tt_gradcheck: tensor 2 (x) is also tensor 0; list each tensor once");

    tt_tensor_free(x);
    tt_tensor_free(plain);
    tt_tape_free(tape);
}
END_TEST

START_TEST(gradcheck_rejects_bad_options)
{
    tt_tensor *x = new_tensor_or_fail(1, 1, NULL, "x");
    require_grad_or_fail(x);
    const tt_gradcheck_options negative_step = {-1, 0, 0, 0};
    const tt_gradcheck_options nan_tolerance = {0, NAN, 0, 0};
    const tt_gradcheck_options infinite_step = {INFINITY, 0, 0, 0};

    assert_gradcheck_error(cube_loss, NULL, &x, 1, &negative_step, x, TT_ERR_ARG,
                           "tt_gradcheck: step is -1; it must be positive and finite, or 0 for "
                           "the default");
    assert_gradcheck_error(cube_loss, NULL, &x, 1, &nan_tolerance, x, TT_ERR_ARG,
                           "tt_gradcheck: tolerance is nan; it must be positive and finite, or "
                           "0 for the default");
    assert_gradcheck_error(cube_loss, NULL, &x, 1, &infinite_step, x, TT_ERR_ARG,
                           "tt_gradcheck: step is inf; it must be positive and finite, or 0 for "
                           "the default");

    tt_tensor_free(x);
}
END_TEST

START_TEST(gradcheck_reports_failure_of_loss_function)
{
    /* The first call fails on the tape: the tape's status and message. */
    const tt_real x_values[6] = {1, 2, 3, 4, 5, 6};
    tt_rng rng;
    tt_rng_seed(&rng, 1800);
    tt_tensor *x = new_tensor_or_fail(2, 3, x_values, "x");
    require_grad_or_fail(x);
    loss_head head = new_loss_head(2, 3, &rng);
    failing_context context = {{&head, relu_body, NULL}, 0, 0};

    assert_gradcheck_error(failing_loss, &context, &x, 1, NULL, x, TT_ERR_SHAPE,
                           "tt_gradcheck: the loss function failed at the given point: matmul: A "
                           "(x) is 2x3 but B (x) is 2x3; the columns of A must equal the rows of "
                           "B");

    free_loss_head(&head);
    tt_tensor_free(x);
}
END_TEST

static tt_tensor *null_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                            void *context)
{
    (void)tape;
    (void)tensors;
    (void)n_tensors;
    (void)context;
    return NULL;
}

static tt_tensor *leaf_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                            void *context)
{
    (void)tape;
    (void)n_tensors;
    (void)context;
    return tensors[0];
}

static tt_tensor *relu_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                            void *context)
{
    (void)n_tensors;
    (void)context;
    return tt_relu(tape, tensors[0]);
}

START_TEST(gradcheck_rejects_bad_loss)
{
    const tt_real values[2] = {1, NAN};
    tt_tensor *x = new_tensor_or_fail(1, 1, values, "x");
    tt_tensor *row = new_tensor_or_fail(1, 2, values, "row");
    tt_tensor *nan_scalar = new_tensor_or_fail(1, 1, &values[1], "nan");
    require_grad_or_fail(x);
    require_grad_or_fail(row);
    require_grad_or_fail(nan_scalar);

    assert_gradcheck_error(null_loss, NULL, &x, 1, NULL, x, TT_ERR_ARG,
                           "tt_gradcheck: the loss function returned NULL at the given point but "
                           "left no error on the tape");
    assert_gradcheck_error(leaf_loss, NULL, &x, 1, NULL, x, TT_ERR_ARG,
                           "tt_gradcheck: the loss (x) returned at the given point is not the "
                           "output of an op on the tape the loss function was given");
    assert_gradcheck_error(relu_loss, NULL, &row, 1, NULL, row, TT_ERR_SHAPE,
                           "tt_gradcheck: the loss (relu@0) returned at the given point is 1x2 "
                           "but must be 1x1");
    assert_gradcheck_error(relu_loss, NULL, &nan_scalar, 1, NULL, nan_scalar, TT_ERR_NUMERIC,
                           "tt_gradcheck: the loss is nan at the given point; a gradient check "
                           "needs a finite loss");

    tt_tensor_free(x);
    tt_tensor_free(row);
    tt_tensor_free(nan_scalar);
}
END_TEST

static Suite *gradcheck_suite(void)
{
    Suite *suite = suite_create("gradcheck");

    TCase *passing = add_test_case(suite, "passing");
    tcase_add_test(passing, gradcheck_passes_for_matmul);
    tcase_add_test(passing, gradcheck_passes_for_add_in_every_broadcast_form);
    tcase_add_test(passing, gradcheck_passes_for_relu_away_from_kink);
    tcase_add_test(passing, gradcheck_passes_for_cross_entropy);
    tcase_add_test(passing, gradcheck_passes_for_two_layer_mlp);
    tcase_add_test(passing, gradcheck_passes_for_tensor_feeding_several_ops);

    TCase *failing = add_test_case(suite, "failing");
    tcase_add_test(failing, gradcheck_fails_on_missing_constant_factor);
    tcase_add_test(failing, gradcheck_locates_dropped_gradient_entry);
    tcase_add_test(failing, gradcheck_fails_when_copy_cuts_gradient);

    TCase *kinks = add_test_case(suite, "kinks");
    tcase_add_test(kinks, gradcheck_excludes_relu_inputs_within_a_step_of_zero);
    tcase_add_test(kinks, gradcheck_finds_kinks_behind_matmul);
    tcase_add_test(kinks, gradcheck_without_kink_hook_fails_at_zero);
    tcase_add_test(kinks, gradcheck_treats_changed_ops_as_kink);

    TCase *vacuous = add_test_case(suite, "vacuous");
    tcase_add_test(vacuous, gradcheck_reports_unused_tensor_as_vacuous);
    tcase_add_test(vacuous, gradcheck_reports_relu_of_negative_inputs_as_vacuous);
    tcase_add_test(vacuous, gradcheck_reports_single_class_cross_entropy_as_vacuous);
    tcase_add_test(vacuous, gradcheck_passes_when_one_tensor_is_unused);
    tcase_add_test(vacuous, gradcheck_accepts_difference_within_noise);

    TCase *effects = add_test_case(suite, "effects");
    tcase_add_test(effects, gradcheck_restores_data_bit_for_bit);
    tcase_add_test(effects, gradcheck_restores_gradients_of_every_tensor);
    tcase_add_test(effects, gradcheck_restores_tensors_after_failure);

    TCase *options = add_test_case(suite, "options");
    tcase_add_test(options, gradcheck_uses_step_and_tolerance_from_options);
    tcase_add_test(options, gradcheck_takes_defaults_for_null_and_zero_options);
    tcase_add_test(options, gradcheck_samples_at_most_max_entries);
    tcase_add_test(options, gradcheck_fails_when_step_moves_nothing);

    TCase *errors = add_test_case(suite, "errors");
    tcase_add_test(errors, gradcheck_rejects_null_arguments);
    tcase_add_test(errors, gradcheck_rejects_bad_tensor_lists);
    tcase_add_test(errors, gradcheck_rejects_bad_options);
    tcase_add_test(errors, gradcheck_reports_failure_of_loss_function);
    tcase_add_test(errors, gradcheck_rejects_bad_loss);

    return suite;
}

int main(void)
{
    return run_suite(gradcheck_suite());
}
