/* Thread settings of a tape, and the guarantee that results do not depend
 * on them: training with any thread count gives the same bits. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

/* A 2-layer MLP large enough that its matrix products are split over
 * threads: W(1)·x alone is 200 × 300 × 64 multiply-adds, well above the
 * size below which a product stays on one thread. */
enum { INPUTS = 300, HIDDEN = 200, CLASSES = 10, BATCH = 64, STEPS = 5 };

#define LEARNING_RATE 0.1

typedef struct mlp {
    tt_tensor *w1, *b1, *w2, *b2;
} mlp;

static mlp new_mlp(tt_rng *rng)
{
    mlp net;
    net.w1 = new_uniform_tensor(HIDDEN, INPUTS, rng, -0.1, 0.1, "w1");
    net.b1 = new_uniform_tensor(HIDDEN, 1, rng, -0.1, 0.1, "b1");
    net.w2 = new_uniform_tensor(CLASSES, HIDDEN, rng, -0.1, 0.1, "w2");
    net.b2 = new_uniform_tensor(CLASSES, 1, rng, -0.1, 0.1, "b2");
    require_grad_or_fail(net.w1);
    require_grad_or_fail(net.b1);
    require_grad_or_fail(net.w2);
    require_grad_or_fail(net.b2);
    return net;
}

static void free_mlp(mlp *net)
{
    tt_tensor_free(net->w1);
    tt_tensor_free(net->b1);
    tt_tensor_free(net->w2);
    tt_tensor_free(net->b2);
}

/* Trains a fresh MLP (always the same initial values) for STEPS SGD steps
 * on `threads` threads and returns it, with the losses of every step. */
static mlp train(size_t threads, tt_real losses[STEPS])
{
    tt_rng rng;
    tt_rng_seed(&rng, 2024);
    mlp net = new_mlp(&rng);
    tt_real *x = malloc(INPUTS * BATCH * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < INPUTS * BATCH; i++)
        x[i] = (tt_real)tt_rng_uniform(&rng);
    int32_t labels[BATCH];
    fill_labels(labels, BATCH, CLASSES, &rng);

    tt_error err;
    tt_tape *tape = new_tape_or_fail();
    ck_assert_msg(tt_tape_set_threads(tape, threads, &err) == TT_OK, "%s", err.message);
    ck_assert_uint_eq(tt_tape_threads(tape), threads);

    tt_tensor *params[] = {net.w1, net.b1, net.w2, net.b2};
    for (size_t step = 0; step < STEPS; step++) {
        tt_tape_reset(tape);
        tt_tensor *input = tt_tape_tensor(tape, INPUTS, BATCH, "x");
        ck_assert_ptr_nonnull(input);
        memcpy(tt_tensor_data(input), x, INPUTS * BATCH * sizeof *x);
        tt_tensor *h = tt_relu(tape, tt_add(tape, tt_matmul(tape, net.w1, input), net.b1));
        tt_tensor *z = tt_add(tape, tt_matmul(tape, net.w2, h), net.b2);
        tt_tensor *loss = tt_cross_entropy(tape, z, labels, BATCH);
        ck_assert_msg(tt_tape_backward(tape, loss) == TT_OK, "%s", tt_tape_error(tape)->message);
        losses[step] = tt_tensor_data(loss)[0];

        for (size_t p = 0; p < 4; p++) {
            tt_real *value = tt_tensor_data(params[p]);
            tt_real *grad = tt_tensor_grad(params[p]);
            size_t size = tt_tensor_rows(params[p]) * tt_tensor_cols(params[p]);
            for (size_t i = 0; i < size; i++)
                value[i] -= (tt_real)LEARNING_RATE * grad[i];
            tt_tensor_zero_grad(params[p]);
        }
    }

    tt_tape_free(tape);
    free(x);
    return net;
}

static void assert_same_bits(const char *what, size_t threads, tt_tensor *got, tt_tensor *want)
{
    size_t size = tt_tensor_rows(want) * tt_tensor_cols(want);
    ck_assert_msg(memcmp(tt_tensor_data(got), tt_tensor_data(want), size * sizeof(tt_real)) == 0,
                  "%s after training on %zu threads differs from one thread", what, threads);
}

START_TEST(training_gives_same_bits_for_any_thread_count)
{
    tt_real want_losses[STEPS];
    mlp want = train(1, want_losses);

    const size_t thread_counts[] = {2, 3, 4, 7};
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        const size_t threads = thread_counts[t];
        tt_real losses[STEPS];
        mlp got = train(threads, losses);
        ck_assert_msg(memcmp(losses, want_losses, sizeof losses) == 0,
                      "losses on %zu threads differ from one thread", threads);
        assert_same_bits("w1", threads, got.w1, want.w1);
        assert_same_bits("b1", threads, got.b1, want.b1);
        assert_same_bits("w2", threads, got.w2, want.w2);
        assert_same_bits("b2", threads, got.b2, want.b2);
        free_mlp(&got);
    }
    free_mlp(&want);
}
END_TEST

START_TEST(training_repeats_exactly_for_same_seed)
{
    tt_real first_losses[STEPS];
    tt_real second_losses[STEPS];
    mlp first = train(2, first_losses);
    mlp second = train(2, second_losses);

    ck_assert_msg(memcmp(first_losses, second_losses, sizeof first_losses) == 0,
                  "two runs with the same seed gave different losses");
    assert_same_bits("w1", 2, second.w1, first.w1);
    assert_same_bits("w2", 2, second.w2, first.w2);
    free_mlp(&first);
    free_mlp(&second);
}
END_TEST

/* relu and add split their elements or rows over the tape's threads from
 * 131072 elements on, with at least 65536 in each part. 600 × 400 elements
 * make three parts on three threads. */
enum { ELEMENT_ROWS = 600, ELEMENT_COLS = 400 };

/* The outputs and gradients of one run of elementwise_graph. */
typedef struct elementwise_result {
    tt_real loss;
    tt_real *relu_out; /* ELEMENT_ROWS × ELEMENT_COLS */
    tt_tensor *x, *bias, *row, *other;
} elementwise_result;

/* On `threads` threads, computes
 *     h = relu(x + bias + row) + other,    loss = cross_entropy(h, labels)
 * with bias repeated across the columns (the bias gradient is a row sum),
 * row repeated down the rows (its gradient a column sum) and `other` of
 * h's shape, then runs backward. Inputs are the same for every call. */
static elementwise_result elementwise_graph(size_t threads)
{
    tt_rng rng;
    tt_rng_seed(&rng, 77);
    elementwise_result result;
    result.x = new_uniform_tensor(ELEMENT_ROWS, ELEMENT_COLS, &rng, -1, 1, "x");
    result.bias = new_uniform_tensor(ELEMENT_ROWS, 1, &rng, -1, 1, "bias");
    result.row = new_uniform_tensor(1, ELEMENT_COLS, &rng, -1, 1, "row");
    result.other = new_uniform_tensor(ELEMENT_ROWS, ELEMENT_COLS, &rng, -1, 1, "other");
    require_grad_or_fail(result.x);
    require_grad_or_fail(result.bias);
    require_grad_or_fail(result.row);
    require_grad_or_fail(result.other);
    int32_t labels[ELEMENT_COLS];
    fill_labels(labels, ELEMENT_COLS, ELEMENT_ROWS, &rng);

    tt_error err;
    tt_tape *tape = new_tape_or_fail();
    ck_assert_msg(tt_tape_set_threads(tape, threads, &err) == TT_OK, "%s", err.message);
    tt_tensor *relu_out =
        tt_relu(tape, tt_add(tape, tt_add(tape, result.x, result.bias), result.row));
    tt_tensor *h = tt_add(tape, relu_out, result.other);
    tt_tensor *loss = tt_cross_entropy(tape, h, labels, ELEMENT_COLS);
    ck_assert_msg(tt_tape_backward(tape, loss) == TT_OK, "%s", tt_tape_error(tape)->message);

    result.loss = tt_tensor_data(loss)[0];
    const size_t size = ELEMENT_ROWS * ELEMENT_COLS;
    result.relu_out = malloc(size * sizeof *result.relu_out);
    ck_assert_ptr_nonnull(result.relu_out);
    memcpy(result.relu_out, tt_tensor_data(relu_out), size * sizeof *result.relu_out);
    tt_tape_free(tape);
    return result;
}

static void free_elementwise_result(elementwise_result *result)
{
    free(result->relu_out);
    tt_tensor_free(result->x);
    tt_tensor_free(result->bias);
    tt_tensor_free(result->row);
    tt_tensor_free(result->other);
}

static void assert_same_grad_bits(const char *what, size_t threads, tt_tensor *got,
                                  tt_tensor *want)
{
    size_t size = tt_tensor_rows(want) * tt_tensor_cols(want);
    ck_assert_msg(memcmp(tt_tensor_grad(got), tt_tensor_grad(want), size * sizeof(tt_real)) == 0,
                  "gradient of %s on %zu threads differs from one thread", what, threads);
}

START_TEST(elementwise_ops_give_same_bits_for_any_thread_count)
{
    elementwise_result want = elementwise_graph(1);
    /* The gradients are not trivially equal: ReLU zeroes some of x's. */
    size_t zeroed = 0;
    const tt_real *dx = tt_tensor_grad(want.x);
    for (size_t i = 0; i < ELEMENT_ROWS * ELEMENT_COLS; i++)
        zeroed += dx[i] == 0;
    ck_assert_uint_gt(zeroed, ELEMENT_ROWS * ELEMENT_COLS / 4);
    ck_assert_uint_lt(zeroed, ELEMENT_ROWS * ELEMENT_COLS * 3 / 4);

    const size_t thread_counts[] = {2, 3};
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        const size_t threads = thread_counts[t];
        elementwise_result got = elementwise_graph(threads);
        ck_assert_msg(memcmp(&got.loss, &want.loss, sizeof want.loss) == 0,
                      "loss on %zu threads differs from one thread", threads);
        ck_assert_msg(memcmp(got.relu_out, want.relu_out,
                             ELEMENT_ROWS * ELEMENT_COLS * sizeof *want.relu_out) == 0,
                      "relu output on %zu threads differs from one thread", threads);
        assert_same_grad_bits("x", threads, got.x, want.x);
        assert_same_grad_bits("bias", threads, got.bias, want.bias);
        assert_same_grad_bits("row", threads, got.row, want.row);
        assert_same_grad_bits("other", threads, got.other, want.other);
        free_elementwise_result(&got);
    }
    free_elementwise_result(&want);
}
END_TEST

START_TEST(backward_on_more_threads_than_forward)
{
    /* The product is recorded on one thread and differentiated on eight.
     * Backward then needs matrix-product scratch for eight threads. */
    tt_rng rng;
    tt_rng_seed(&rng, 77);
    tt_tensor *w = new_uniform_tensor(512, 512, &rng, -0.1, 0.1, "w");
    require_grad_or_fail(w);
    tt_real *x = malloc(512 * 256 * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < 512 * 256; i++)
        x[i] = (tt_real)tt_rng_uniform(&rng);
    int32_t labels[256];
    fill_labels(labels, 256, 512, &rng);

    tt_real *want = malloc(512 * 512 * sizeof *want);
    ck_assert_ptr_nonnull(want);
    tt_error err;
    for (size_t pass = 0; pass < 2; pass++) {
        tt_tape *tape = new_tape_or_fail();
        ck_assert_int_eq(tt_tape_set_threads(tape, 1, &err), TT_OK);
        tt_tensor *input = tt_tape_tensor(tape, 512, 256, "x");
        ck_assert_ptr_nonnull(input);
        memcpy(tt_tensor_data(input), x, 512 * 256 * sizeof *x);
        tt_tensor *loss = tt_cross_entropy(tape, tt_matmul(tape, w, input), labels, 256);
        if (pass == 1)
            ck_assert_msg(tt_tape_set_threads(tape, 8, &err) == TT_OK, "%s", err.message);
        tt_tensor_zero_grad(w);
        ck_assert_msg(tt_tape_backward(tape, loss) == TT_OK, "%s", tt_tape_error(tape)->message);
        if (pass == 0)
            memcpy(want, tt_tensor_grad(w), 512 * 512 * sizeof *want);
        else
            ck_assert_msg(memcmp(tt_tensor_grad(w), want, 512 * 512 * sizeof *want) == 0,
                          "dw on 8 threads after a forward pass on 1 differs from 1 thread");
        tt_tape_free(tape);
    }
    free(want);
    free(x);
    tt_tensor_free(w);
}
END_TEST

START_TEST(new_tape_uses_one_thread_per_online_cpu)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    size_t want = online < 1 ? 1 : (size_t)online;
    if (want > TT_MAX_THREADS)
        want = TT_MAX_THREADS;
    tt_tape *tape = new_tape_or_fail();

    ck_assert_uint_eq(tt_tape_threads(tape), want);

    tt_tape_free(tape);
}
END_TEST

START_TEST(set_threads_zero_restores_default)
{
    tt_error err;
    tt_tape *tape = new_tape_or_fail();
    size_t default_count = tt_tape_threads(tape);

    ck_assert_int_eq(tt_tape_set_threads(tape, 3, &err), TT_OK);
    ck_assert_uint_eq(tt_tape_threads(tape), 3);
    ck_assert_int_eq(tt_tape_set_threads(tape, 0, &err), TT_OK);
    ck_assert_uint_eq(tt_tape_threads(tape), default_count);

    tt_tape_free(tape);
}
END_TEST

START_TEST(set_threads_rejects_too_many)
{
    tt_error err;
    tt_tape *tape = new_tape_or_fail();
    ck_assert_int_eq(tt_tape_set_threads(tape, 2, &err), TT_OK);

    ck_assert_int_eq(tt_tape_set_threads(tape, TT_MAX_THREADS + 1, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_tape_set_threads: 257 threads requested; the maximum is 256");
    ck_assert_uint_eq(tt_tape_threads(tape), 2);

    tt_tape_free(tape);
}
END_TEST

START_TEST(set_threads_rejects_null_tape)
{
    tt_error err;

    ck_assert_int_eq(tt_tape_set_threads(NULL, 2, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_tape_set_threads: tape is NULL");
    ck_assert_uint_eq(tt_tape_threads(NULL), 0);
}
END_TEST

static Suite *threads_suite(void)
{
    Suite *suite = suite_create("threads");
    TCase *results = add_test_case(suite, "results");
    tcase_add_test(results, training_gives_same_bits_for_any_thread_count);
    tcase_add_test(results, training_repeats_exactly_for_same_seed);
    tcase_add_test(results, elementwise_ops_give_same_bits_for_any_thread_count);
    tcase_add_test(results, backward_on_more_threads_than_forward);
    TCase *settings = add_test_case(suite, "settings");
    tcase_add_test(settings, new_tape_uses_one_thread_per_online_cpu);
    tcase_add_test(settings, set_threads_zero_restores_default);
    tcase_add_test(settings, set_threads_rejects_too_many);
    tcase_add_test(settings, set_threads_rejects_null_tape);
    return suite;
}

int main(void)
{
    return run_suite(threads_suite());
}
