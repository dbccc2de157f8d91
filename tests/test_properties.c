/* Properties over random shapes, each dimension drawn from 1 to MAX_DIM,
 * and several seeds:
 *   - tt_gradcheck passes for every op;
 *   - every broadcast form of add equals add on explicitly repeated
 *     operands, forward and backward;
 *   - a tensor used twice, or as both operands of matmul or add, receives
 *     the sum of the gradients that two separate copies receive;
 *   - a tape reset for each of 100 training steps gives the same bits as a
 *     new tape per step;
 *   - backward adds into leaf gradients and zeroes tape tensor gradients,
 *     as tensortape.h documents.
 * The suite also runs under valgrind, so the gradient checks draw a sample
 * of ENTRIES_PER_TENSOR entries of each tensor instead of all of them. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* Largest size of a dimension. */
#define MAX_DIM 64

/* Seeds per property. Every seed draws new shapes and values. */
#define SEEDS 6

/* Entries per tensor that each gradient check compares. A larger tensor
 * gets a random sample. With 16 entries per tensor a check takes at most
 * 65 runs of the loss, which keeps the suite within seconds under valgrind. */
#define ENTRIES_PER_TENSOR 16

/* Training steps of the tape-reuse property. */
#define REUSE_STEPS 100

/* Learning rate of those steps: small enough that 100 steps of SGD on a
 * random batch stay finite for every drawn shape. */
#define REUSE_LEARNING_RATE 0.05

static size_t random_dim(tt_rng *rng)
{
    return 1 + (size_t)tt_rng_below(rng, MAX_DIM);
}

/* A caller-owned rows × cols tensor of normal values that requires a
 * gradient. */
static tt_tensor *new_parameter(size_t rows, size_t cols, tt_rng *rng, double stddev,
                                const char *name)
{
    tt_tensor *tensor = new_tensor_or_fail(rows, cols, NULL, name);
    tt_tensor_fill_normal(tensor, rng, 0, (tt_real)stddev);
    require_grad_or_fail(tensor);
    return tensor;
}

/* A caller-owned copy of `tensor`, requiring a gradient. */
static tt_tensor *copy_parameter(tt_tensor *tensor, const char *name)
{
    tt_tensor *copy = new_tensor_or_fail(tt_tensor_rows(tensor), tt_tensor_cols(tensor),
                                         tt_tensor_data(tensor), name);
    require_grad_or_fail(copy);
    return copy;
}

static size_t size_of(tt_tensor *tensor)
{
    return tt_tensor_rows(tensor) * tt_tensor_cols(tensor);
}

/* Records apply_loss_head(y) on a new tape and runs backward, failing the
 * test unless both succeed. Returns the tape, which the caller frees. */
typedef tt_tensor *(*body_function)(tt_tape *tape, tt_tensor *const operands[]);

static tt_tape *run_head_backward(const loss_head *head, body_function body,
                                  tt_tensor *const operands[], tt_tensor **y)
{
    tt_tape *tape = new_tape_or_fail();
    *y = body(tape, operands);
    tt_tensor *loss = apply_loss_head(tape, head, *y);
    ck_assert_msg(loss != NULL, "recording failed: %s", tt_tape_error(tape)->message);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    return tape;
}

/* ---- Gradient checks ------------------------------------------------------------ */

/* Context of the head losses: loss = apply_loss_head(body(tensors)). */
typedef struct head_context {
    const loss_head *head;
    body_function body;
} head_context;

static tt_tensor *head_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                            void *context)
{
    const head_context *ctx = context;
    (void)n_tensors;
    return apply_loss_head(tape, ctx->head, ctx->body(tape, tensors));
}

static tt_tensor *matmul_body(tt_tape *tape, tt_tensor *const t[])
{
    return tt_matmul(tape, t[0], t[1]);
}

static tt_tensor *add_body(tt_tape *tape, tt_tensor *const t[])
{
    return tt_add(tape, t[0], t[1]);
}

/* relu(x) + x: its gradient, (1 + ReLU′(x))·dy, is never zero where dy is
 * not, so a sample of negative inputs still checks something. */
static tt_tensor *relu_plus_input_body(tt_tape *tape, tt_tensor *const t[])
{
    return tt_add(tape, tt_relu(tape, t[0]), t[0]);
}

/* Standard deviation of each of `factors` independent normal factors that
 * gives the loss head's logits a variance of about 1. A logit sums `terms`
 * products of the factors with the head's weights, which are uniform in
 * [-1, 1) and so have variance 1/3. Logits of order 1 keep the softmax away
 * from saturation, where every gradient is tiny and the check verifies
 * little. */
static double logit_scale_stddev(double terms, int factors)
{
    return pow(terms / 3, -1.0 / (2.0 * factors));
}

/* Runs tt_gradcheck with ENTRIES_PER_TENSOR entries per tensor and the
 * default step and tolerance, failing the test unless it ran. */
static tt_gradcheck_result check_gradients(tt_loss_function loss, void *context,
                                           tt_tensor *const tensors[], size_t n_tensors,
                                           uint64_t seed)
{
    const tt_gradcheck_options options = {0, 0, ENTRIES_PER_TENSOR, seed};
    tt_gradcheck_result result;
    tt_error err = {TT_OK, ""};
    const tt_status status =
        tt_gradcheck(loss, context, tensors, n_tensors, &options, &result, &err);
    ck_assert_msg(status == TT_OK, "tt_gradcheck returned %s: %s", tt_status_str(status),
                  err.message);
    return result;
}

static void assert_passed(const tt_gradcheck_result *result, const char *what)
{
    ck_assert_msg(result->verdict == TT_GRADCHECK_PASSED, "%s: %s", what, result->summary);
}

START_TEST(gradcheck_passes_for_matmul_of_random_shapes)
{
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        tt_rng rng;
        tt_rng_seed(&rng, seed);
        const size_t m = random_dim(&rng);
        const size_t k = random_dim(&rng);
        const size_t n = random_dim(&rng);
        const double stddev = logit_scale_stddev((double)(m * k), 2);
        tt_tensor *tensors[2] = {new_parameter(m, k, &rng, stddev, "A"),
                                 new_parameter(k, n, &rng, stddev, "B")};
        loss_head head = new_loss_head(m, n, &rng);
        head_context context = {&head, matmul_body};

        const tt_gradcheck_result result = check_gradients(head_loss, &context, tensors, 2, seed);

        char what[64];
        snprintf(what, sizeof what, "seed %llu, %zux%zu by %zux%zu", (unsigned long long)seed, m,
                 k, k, n);
        assert_passed(&result, what);

        free_loss_head(&head);
        tt_tensor_free(tensors[0]);
        tt_tensor_free(tensors[1]);
    }
}
END_TEST

/* The four ways an operand can fit a d × n output: d × n, d × 1, 1 × n
 * and 1 × 1. */
static void operand_shape(size_t form, size_t d, size_t n, size_t *rows, size_t *cols)
{
    *rows = form == 2 || form == 3 ? 1 : d;
    *cols = form == 1 || form == 3 ? 1 : n;
}

START_TEST(gradcheck_passes_for_add_in_every_broadcast_form)
{
    /* All 16 pairs of operand forms, each with its own seed and shapes. */
    for (size_t form = 0; form < 16; form++) {
        const uint64_t seed = 100 + form;
        tt_rng rng;
        tt_rng_seed(&rng, seed);
        const size_t d = random_dim(&rng);
        const size_t n = random_dim(&rng);
        size_t a_rows, a_cols, b_rows, b_cols;
        operand_shape(form / 4, d, n, &a_rows, &a_cols);
        operand_shape(form % 4, d, n, &b_rows, &b_cols);
        const size_t rows = a_rows > b_rows ? a_rows : b_rows;
        const size_t cols = a_cols > b_cols ? a_cols : b_cols;
        /* Each logit sums `rows` sums of two normals. */
        const double stddev = logit_scale_stddev(2.0 * (double)rows, 1);
        tt_tensor *tensors[2] = {new_parameter(a_rows, a_cols, &rng, stddev, "A"),
                                 new_parameter(b_rows, b_cols, &rng, stddev, "B")};
        loss_head head = new_loss_head(rows, cols, &rng);
        head_context context = {&head, add_body};

        const tt_gradcheck_result result = check_gradients(head_loss, &context, tensors, 2, seed);

        char what[64];
        snprintf(what, sizeof what, "%zux%zu + %zux%zu", a_rows, a_cols, b_rows, b_cols);
        assert_passed(&result, what);

        free_loss_head(&head);
        tt_tensor_free(tensors[0]);
        tt_tensor_free(tensors[1]);
    }
}
END_TEST

START_TEST(gradcheck_passes_for_relu_of_random_shapes)
{
    /* Magnitudes in [a, 2a) with a = 0.5/√rows keep the logits of order 1
     * and every element at least 0.5/8 = 0.0625 from the kink, more than
     * the step TT_GRADCHECK_DEFAULT_STEP (the move is h for |x| < 1). */
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        tt_rng rng;
        tt_rng_seed(&rng, 200 + seed);
        const size_t rows = random_dim(&rng);
        const size_t cols = random_dim(&rng);
        const double smallest = 0.5 / sqrt((double)rows);
        tt_tensor *x = new_tensor_or_fail(rows, cols, NULL, "x");
        fill_away_from_zero(tt_tensor_data(x), rows * cols, &rng, smallest, 2 * smallest);
        require_grad_or_fail(x);
        loss_head head = new_loss_head(rows, cols, &rng);
        head_context context = {&head, relu_plus_input_body};

        const tt_gradcheck_result result = check_gradients(head_loss, &context, &x, 1, seed);

        char what[64];
        snprintf(what, sizeof what, "seed %llu, relu of %zux%zu", (unsigned long long)seed, rows,
                 cols);
        ck_assert_msg(result.n_kinks == 0, "%s: %zu kinks", what, result.n_kinks);
        assert_passed(&result, what);

        free_loss_head(&head);
        tt_tensor_free(x);
    }
}
END_TEST

/* Context of cross_entropy_loss. */
typedef struct labels_context {
    const int32_t *labels;
    size_t n;
} labels_context;

static tt_tensor *cross_entropy_loss(tt_tape *tape, tt_tensor *const tensors[], size_t n_tensors,
                                     void *context)
{
    const labels_context *ctx = context;
    (void)n_tensors;
    return tt_cross_entropy(tape, tensors[0], ctx->labels, ctx->n);
}

START_TEST(gradcheck_passes_for_cross_entropy_of_random_shapes)
{
    /* With one class the loss is 0 everywhere and the check must report
     * that it verified nothing. The first seed draws C = 1 on purpose. */
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        tt_rng rng;
        tt_rng_seed(&rng, 300 + seed);
        const size_t n_classes = seed == 1 ? 1 : random_dim(&rng);
        const size_t n = random_dim(&rng);
        tt_tensor *z = new_parameter(n_classes, n, &rng, 2, "z");
        int32_t labels[MAX_DIM];
        fill_labels(labels, n, n_classes, &rng);
        labels_context context = {labels, n};

        const tt_gradcheck_result result = check_gradients(cross_entropy_loss, &context, &z, 1, seed);

        char what[64];
        snprintf(what, sizeof what, "seed %llu, %zu classes by %zu", (unsigned long long)seed,
                 n_classes, n);
        if (n_classes == 1)
            ck_assert_msg(result.verdict == TT_GRADCHECK_VACUOUS, "%s: %s", what, result.summary);
        else
            assert_passed(&result, what);

        tt_tensor_free(z);
    }
}
END_TEST

/* ---- Broadcasting against explicit repetition ------------------------------------ */

/* A caller-owned rows × cols tensor, requiring a gradient, holding `source`
 * repeated along each dimension where source has size 1. */
static tt_tensor *repeat_to(tt_tensor *source, size_t rows, size_t cols)
{
    tt_tensor *repeated = new_tensor_or_fail(rows, cols, NULL, "repeated");
    const size_t source_rows = tt_tensor_rows(source);
    const size_t source_cols = tt_tensor_cols(source);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            tt_tensor_data(repeated)[r * cols + c] =
                tt_tensor_data(source)[(source_rows == 1 ? 0 : r) * source_cols +
                                       (source_cols == 1 ? 0 : c)];
    require_grad_or_fail(repeated);
    return repeated;
}

/* Checks that the gradient of the broadcast operand equals the gradient
 * of its repetition summed over the repeated positions. The engine sums
 * at most rows + cols terms in a chain, so each entry may differ from the
 * exact sum by (rows + cols)·ε times the sum of the magnitudes of its
 * terms, the standard bound for recursive summation. */
static void assert_gradient_is_summed_repetition(const char *what, tt_tensor *operand,
                                                 tt_tensor *repeated)
{
    const size_t rows = tt_tensor_rows(repeated);
    const size_t cols = tt_tensor_cols(repeated);
    const size_t operand_rows = tt_tensor_rows(operand);
    const size_t operand_cols = tt_tensor_cols(operand);
    const size_t size = operand_rows * operand_cols;
    double *sum = calloc(size, sizeof *sum);
    double *magnitude = calloc(size, sizeof *magnitude);
    ck_assert_ptr_nonnull(sum);
    ck_assert_ptr_nonnull(magnitude);
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            const size_t target = (operand_rows == 1 ? 0 : r) * operand_cols +
                                  (operand_cols == 1 ? 0 : c);
            const double term = tt_tensor_grad(repeated)[r * cols + c];
            sum[target] += term;
            magnitude[target] += fabs(term);
        }
    }
    for (size_t i = 0; i < size; i++) {
        const double got = tt_tensor_grad(operand)[i];
        const double allowed = (double)(rows + cols) * EPSILON_REAL * magnitude[i];
        if (fabs(got - sum[i]) > allowed)
            ck_abort_msg("%s: gradient entry %zu is %.9g, the repeated operand's sum %.9g; "
                         "|difference| %.3g exceeds %.3g",
                         what, i, got, sum[i], fabs(got - sum[i]), allowed);
    }
    free(sum);
    free(magnitude);
}

START_TEST(add_broadcast_equals_add_of_repeated_operands)
{
    for (size_t form = 0; form < 16; form++) {
        tt_rng rng;
        tt_rng_seed(&rng, 400 + form);
        const size_t d = random_dim(&rng);
        const size_t n = random_dim(&rng);
        size_t a_rows, a_cols, b_rows, b_cols;
        operand_shape(form / 4, d, n, &a_rows, &a_cols);
        operand_shape(form % 4, d, n, &b_rows, &b_cols);
        const size_t rows = a_rows > b_rows ? a_rows : b_rows;
        const size_t cols = a_cols > b_cols ? a_cols : b_cols;
        tt_tensor *a = new_parameter(a_rows, a_cols, &rng, 1, "A");
        tt_tensor *b = new_parameter(b_rows, b_cols, &rng, 1, "B");
        tt_tensor *a_repeated = repeat_to(a, rows, cols);
        tt_tensor *b_repeated = repeat_to(b, rows, cols);
        loss_head head = new_loss_head(rows, cols, &rng);
        tt_tensor *broadcast_operands[2] = {a, b};
        tt_tensor *repeated_operands[2] = {a_repeated, b_repeated};
        tt_tensor *broadcast_sum;
        tt_tensor *repeated_sum;

        tt_tape *broadcast_tape = run_head_backward(&head, add_body, broadcast_operands,
                                                    &broadcast_sum);
        tt_tape *repeated_tape = run_head_backward(&head, add_body, repeated_operands,
                                                   &repeated_sum);

        char what[64];
        snprintf(what, sizeof what, "%zux%zu + %zux%zu", a_rows, a_cols, b_rows, b_cols);
        assert_all_equal(what, tt_tensor_data(broadcast_sum), tt_tensor_data(repeated_sum),
                         rows * cols);
        assert_gradient_is_summed_repetition(what, a, a_repeated);
        assert_gradient_is_summed_repetition(what, b, b_repeated);

        tt_tape_free(broadcast_tape);
        tt_tape_free(repeated_tape);
        free_loss_head(&head);
        tt_tensor_free(a);
        tt_tensor_free(b);
        tt_tensor_free(a_repeated);
        tt_tensor_free(b_repeated);
    }
}
END_TEST

/* ---- Fan-out -------------------------------------------------------------------- */

static tt_tensor *relu_plus_self_body(tt_tape *tape, tt_tensor *const t[])
{
    return tt_add(tape, tt_relu(tape, t[0]), t[1]);
}

/* Computes the head loss of body(x, x) and of body(x1, x2), with x1 and x2
 * copies of x, and returns the three gradients in caller-freed arrays:
 * `shared` for x, `first` and `second` for the copies. */
static void gradients_of_shared_and_copies(tt_tensor *x, const loss_head *head,
                                           body_function body, tt_real **shared,
                                           tt_real **first, tt_real **second)
{
    const size_t size = size_of(x);
    tt_tensor *x1 = copy_parameter(x, "x1");
    tt_tensor *x2 = copy_parameter(x, "x2");
    tt_tensor *shared_operands[2] = {x, x};
    tt_tensor *copied_operands[2] = {x1, x2};
    tt_tensor *y;

    tt_tape_free(run_head_backward(head, body, shared_operands, &y));
    tt_tape_free(run_head_backward(head, body, copied_operands, &y));

    *shared = malloc(size * sizeof **shared);
    *first = malloc(size * sizeof **first);
    *second = malloc(size * sizeof **second);
    ck_assert_ptr_nonnull(*shared);
    ck_assert_ptr_nonnull(*first);
    ck_assert_ptr_nonnull(*second);
    memcpy(*shared, tt_tensor_grad(x), size * sizeof **shared);
    memcpy(*first, tt_tensor_grad(x1), size * sizeof **first);
    memcpy(*second, tt_tensor_grad(x2), size * sizeof **second);
    tt_tensor_free(x1);
    tt_tensor_free(x2);
}

START_TEST(shared_tensor_gets_sum_of_gradients_of_copies)
{
    /* relu(x) + x and x + x. Each entry of x's gradient is the sum of two
     * contributions added into a zeroed buffer, fl(0 + g1) + g2, which is
     * exactly the rounded sum of the copies' gradients. */
    const body_function bodies[2] = {relu_plus_self_body, add_body};
    const char *const names[2] = {"relu(x) + x", "x + x"};

    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        for (size_t b = 0; b < 2; b++) {
            tt_rng rng;
            tt_rng_seed(&rng, 500 + seed);
            const size_t rows = random_dim(&rng);
            const size_t cols = random_dim(&rng);
            tt_tensor *x = new_parameter(rows, cols, &rng, 1, "x");
            loss_head head = new_loss_head(rows, cols, &rng);
            tt_real *shared;
            tt_real *first;
            tt_real *second;

            gradients_of_shared_and_copies(x, &head, bodies[b], &shared, &first, &second);

            const size_t size = rows * cols;
            for (size_t i = 0; i < size; i++)
                first[i] = first[i] + second[i];
            char what[64];
            snprintf(what, sizeof what, "%s, %zux%zu", names[b], rows, cols);
            assert_all_equal(what, shared, first, size);

            free(shared);
            free(first);
            free(second);
            free_loss_head(&head);
            tt_tensor_free(x);
        }
    }
}
END_TEST

START_TEST(matmul_of_tensor_with_itself_gets_both_gradients)
{
    /* x·x for a square x: dx = dC·xᵀ + xᵀ·dC, the gradients of the left
     * and right copies. The products accumulate into one buffer inside the
     * matrix-product kernel, so each entry is compared with the exact sum
     * within RTOL_REAL of the two contributions' magnitudes. */
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        tt_rng rng;
        tt_rng_seed(&rng, 600 + seed);
        const size_t n = random_dim(&rng);
        tt_tensor *x = new_parameter(n, n, &rng, 1, "x");
        loss_head head = new_loss_head(n, n, &rng);
        tt_real *shared;
        tt_real *first;
        tt_real *second;

        gradients_of_shared_and_copies(x, &head, matmul_body, &shared, &first, &second);

        for (size_t i = 0; i < n * n; i++) {
            const double want = (double)first[i] + (double)second[i];
            const double allowed = RTOL_REAL * (fabs((double)first[i]) + fabs((double)second[i]));
            if (fabs((double)shared[i] - want) > allowed)
                ck_abort_msg("x*x, %zux%zu, seed %llu: dx[%zu] = %.9g, want %.9g within %.3g", n,
                             n, (unsigned long long)seed, i, (double)shared[i], want, allowed);
        }

        free(shared);
        free(first);
        free(second);
        free_loss_head(&head);
        tt_tensor_free(x);
    }
}
END_TEST

/* ---- Reusing a tape ------------------------------------------------------------- */

/* A two-layer MLP (eq. 1-3) with its data: w1 (h × s), b1 (h × 1), w2
 * (C × h), b2 (C × 1), a batch x (s × n) and n labels. */
typedef struct mlp {
    tt_tensor *parameters[4];
    tt_tensor *x;
    int32_t labels[MAX_DIM];
    size_t n;
} mlp;

static mlp new_mlp(uint64_t seed)
{
    tt_rng rng;
    tt_rng_seed(&rng, seed);
    const size_t inputs = random_dim(&rng);
    const size_t hidden = random_dim(&rng);
    const size_t classes = random_dim(&rng);
    mlp model;
    model.n = random_dim(&rng);
    model.parameters[0] = new_parameter(hidden, inputs, &rng, 1 / sqrt((double)inputs), "w1");
    model.parameters[1] = new_parameter(hidden, 1, &rng, 0.1, "b1");
    model.parameters[2] = new_parameter(classes, hidden, &rng, 1 / sqrt((double)hidden), "w2");
    model.parameters[3] = new_parameter(classes, 1, &rng, 0.1, "b2");
    model.x = new_uniform_tensor(inputs, model.n, &rng, -1, 1, "x");
    fill_labels(model.labels, model.n, classes, &rng);
    return model;
}

static void free_mlp(mlp *model)
{
    for (size_t p = 0; p < 4; p++)
        tt_tensor_free(model->parameters[p]);
    tt_tensor_free(model->x);
}

/* Records the MLP's loss on `tape` and runs backward, then one SGD step
 * with zeroed gradients afterwards. Returns the loss. */
static tt_real train_step(tt_tape *tape, mlp *model)
{
    tt_tensor *const *p = model->parameters;
    tt_tensor *h = tt_relu(tape, tt_add(tape, tt_matmul(tape, p[0], model->x), p[1]));
    tt_tensor *z = tt_add(tape, tt_matmul(tape, p[2], h), p[3]);
    tt_tensor *loss = tt_cross_entropy(tape, z, model->labels, model->n);
    ck_assert_msg(loss != NULL, "recording failed: %s", tt_tape_error(tape)->message);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    for (size_t k = 0; k < 4; k++) {
        tt_real *data = tt_tensor_data(p[k]);
        const tt_real *grad = tt_tensor_grad(p[k]);
        for (size_t i = 0; i < size_of(p[k]); i++)
            data[i] -= (tt_real)REUSE_LEARNING_RATE * grad[i];
        tt_tensor_zero_grad(p[k]);
    }
    return tt_tensor_data(loss)[0];
}

START_TEST(reset_tape_matches_new_tape_for_every_step)
{
    /* The arithmetic does not depend on where the arena puts the tensors,
     * so every loss and the final parameters must be bitwise equal. */
    for (uint64_t seed = 1; seed <= 2; seed++) {
        mlp reused = new_mlp(700 + seed);
        mlp fresh = new_mlp(700 + seed);
        tt_tape *tape = new_tape_or_fail();

        for (size_t step = 0; step < REUSE_STEPS; step++) {
            tt_tape_reset(tape);
            const tt_real reused_loss = train_step(tape, &reused);
            tt_tape *fresh_tape = new_tape_or_fail();
            const tt_real fresh_loss = train_step(fresh_tape, &fresh);
            tt_tape_free(fresh_tape);
            ck_assert_msg(isfinite(reused_loss), "seed %llu, step %zu: loss %g",
                          (unsigned long long)seed, step, (double)reused_loss);
            ck_assert_msg(reused_loss == fresh_loss,
                          "seed %llu, step %zu: loss %.9g on the reset tape, %.9g on a new one",
                          (unsigned long long)seed, step, (double)reused_loss,
                          (double)fresh_loss);
        }
        for (size_t k = 0; k < 4; k++)
            assert_all_equal(tt_tensor_name(reused.parameters[k]),
                             tt_tensor_data(reused.parameters[k]),
                             tt_tensor_data(fresh.parameters[k]), size_of(reused.parameters[k]));

        tt_tape_free(tape);
        free_mlp(&reused);
        free_mlp(&fresh);
    }
}
END_TEST

/* ---- Zeroing and accumulation ---------------------------------------------------- */

/* Records the MLP's loss on `tape` and returns it and, through `hidden`,
 * the hidden activations, a tape tensor. */
static tt_tensor *record_mlp_loss(tt_tape *tape, mlp *model, tt_tensor **hidden)
{
    tt_tensor *const *p = model->parameters;
    *hidden = tt_relu(tape, tt_add(tape, tt_matmul(tape, p[0], model->x), p[1]));
    tt_tensor *z = tt_add(tape, tt_matmul(tape, p[2], *hidden), p[3]);
    tt_tensor *loss = tt_cross_entropy(tape, z, model->labels, model->n);
    ck_assert_msg(loss != NULL, "recording failed: %s", tt_tape_error(tape)->message);
    return loss;
}

START_TEST(backward_accumulates_leaf_gradients_and_zeroes_tape_gradients)
{
    /* Two backward passes from one loss: the hidden layer's gradient (a
     * tape tensor) is zeroed first and ends the same, and each parameter's
     * gradient doubles. After tt_tensor_zero_grad a third pass gives the
     * first pass's gradient again, bit for bit. x, which has no gradient,
     * gets none, and a parameter outside the loss keeps its own. */
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        mlp model = new_mlp(800 + seed);
        tt_rng rng;
        tt_rng_seed(&rng, 900 + seed);
        tt_tensor *unused = new_parameter(3, 2, &rng, 1, "unused");
        const tt_real unused_grad[6] = {1, -2, 3, -4, 5, -6};
        memcpy(tt_tensor_grad(unused), unused_grad, sizeof unused_grad);
        tt_tape *tape = new_tape_or_fail();
        tt_tensor *hidden;
        tt_tensor *loss = record_mlp_loss(tape, &model, &hidden);
        retain_grad_or_fail(hidden);
        const size_t hidden_size = size_of(hidden);
        tt_real *first_hidden = malloc(hidden_size * sizeof *first_hidden);
        tt_real *first[4];
        ck_assert_ptr_nonnull(first_hidden);

        ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
        memcpy(first_hidden, tt_tensor_grad(hidden), hidden_size * sizeof *first_hidden);
        for (size_t k = 0; k < 4; k++) {
            const size_t size = size_of(model.parameters[k]);
            first[k] = malloc(size * sizeof *first[k]);
            ck_assert_ptr_nonnull(first[k]);
            memcpy(first[k], tt_tensor_grad(model.parameters[k]), size * sizeof *first[k]);
        }
        ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

        assert_all_equal("hidden gradient after the second pass", tt_tensor_grad(hidden),
                         first_hidden, hidden_size);
        for (size_t k = 0; k < 4; k++) {
            const size_t size = size_of(model.parameters[k]);
            double *twice = malloc(size * sizeof *twice);
            ck_assert_ptr_nonnull(twice);
            for (size_t i = 0; i < size; i++)
                twice[i] = 2.0 * (double)first[k][i];
            assert_all_close_scaled(tt_tensor_name(model.parameters[k]),
                                    tt_tensor_grad(model.parameters[k]), twice,
                                    tt_tensor_rows(model.parameters[k]),
                                    tt_tensor_cols(model.parameters[k]), RTOL_REAL);
            free(twice);
            tt_tensor_zero_grad(model.parameters[k]);
        }
        ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

        for (size_t k = 0; k < 4; k++) {
            assert_all_equal(tt_tensor_name(model.parameters[k]),
                             tt_tensor_grad(model.parameters[k]), first[k],
                             size_of(model.parameters[k]));
            free(first[k]);
        }
        ck_assert_ptr_null(tt_tensor_grad(model.x));
        assert_all_equal("unused gradient", tt_tensor_grad(unused), unused_grad, 6);

        free(first_hidden);
        tt_tape_free(tape);
        tt_tensor_free(unused);
        free_mlp(&model);
    }
}
END_TEST

static Suite *properties_suite(void)
{
    Suite *suite = suite_create("properties");

    TCase *gradcheck = add_test_case(suite, "gradcheck");
    tcase_add_test(gradcheck, gradcheck_passes_for_matmul_of_random_shapes);
    tcase_add_test(gradcheck, gradcheck_passes_for_add_in_every_broadcast_form);
    tcase_add_test(gradcheck, gradcheck_passes_for_relu_of_random_shapes);
    tcase_add_test(gradcheck, gradcheck_passes_for_cross_entropy_of_random_shapes);

    TCase *broadcast = add_test_case(suite, "broadcast");
    tcase_add_test(broadcast, add_broadcast_equals_add_of_repeated_operands);

    TCase *fan_out = add_test_case(suite, "fan_out");
    tcase_add_test(fan_out, shared_tensor_gets_sum_of_gradients_of_copies);
    tcase_add_test(fan_out, matmul_of_tensor_with_itself_gets_both_gradients);

    TCase *tape = add_test_case(suite, "tape");
    tcase_add_test(tape, reset_tape_matches_new_tape_for_every_step);
    tcase_add_test(tape, backward_accumulates_leaf_gradients_and_zeroes_tape_gradients);

    return suite;
}

int main(void)
{
    return run_suite(properties_suite());
}
