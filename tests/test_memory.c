/* Heap use: a training step after the first takes nothing from the heap,
 * and every out-of-memory path reports TT_ERR_NOMEM and leaves the objects
 * usable.
 *
 * This executable defines malloc, calloc, realloc, free, posix_memalign,
 * aligned_alloc and memalign itself. glibc lets a program replace its
 * allocator this way, and every call in the process, from the library, from
 * libc and from Check, then reaches the functions below. They forward to
 * glibc's own allocator through its exported __libc_* entry points, and
 * they count calls or make allocations fail while a test has turned that
 * on. No Check assertion runs while counting or failing is on, because
 * Check allocates too. Under AddressSanitizer the replacements are left
 * out and the suite is skipped (see REPLACE_ALLOCATOR). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* ---- Replacement allocator -------------------------------------------------- */

/* Counting: while `counting` is set, allocation_count counts calls that
 * allocate or resize (a realloc counts as one) and release_count calls of
 * free with a non-NULL pointer. */
static bool counting;
static size_t allocation_count;
static size_t release_count;

/* Failure injection: while `failing` is set, the first
 * allocations_before_failure allocations succeed and every later one
 * returns NULL. */
static bool failing;
static size_t allocations_before_failure;

/* AddressSanitizer supplies its own malloc and hands out blocks that
 * glibc's free cannot release, so under it this file keeps the sanitizer's
 * allocator and main() skips the suite. */
#if defined(__SANITIZE_ADDRESS__)
#define REPLACE_ALLOCATOR 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPLACE_ALLOCATOR 0
#endif
#endif
#ifndef REPLACE_ALLOCATOR
#define REPLACE_ALLOCATOR 1
#endif

#if REPLACE_ALLOCATOR

/* glibc's allocator under names that the replacements below do not hide. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void __libc_free(void *pointer);
extern void *__libc_memalign(size_t alignment, size_t size);

/* memalign is declared in <malloc.h>, a glibc header; declared here so that
 * this file needs only the standard headers. */
void *memalign(size_t alignment, size_t size);

/* Counts one allocation and returns whether it must fail. */
static bool record_allocation(void)
{
    if (counting)
        allocation_count++;
    if (!failing)
        return false;
    if (allocations_before_failure == 0)
        return true;
    allocations_before_failure--;
    return false;
}

void *malloc(size_t size)
{
    return record_allocation() ? NULL : __libc_malloc(size);
}

void *calloc(size_t count, size_t size)
{
    return record_allocation() ? NULL : __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size)
{
    return record_allocation() ? NULL : __libc_realloc(pointer, size);
}

void free(void *pointer)
{
    if (counting && pointer != NULL)
        release_count++;
    __libc_free(pointer);
}

void *memalign(size_t alignment, size_t size)
{
    return record_allocation() ? NULL : __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    return record_allocation() ? NULL : __libc_memalign(alignment, size);
}

int posix_memalign(void **pointer, size_t alignment, size_t size)
{
    /* POSIX requires a power of two that is a multiple of sizeof(void *). */
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment % sizeof(void *) != 0)
        return EINVAL;
    if (record_allocation())
        return ENOMEM;
    void *block = __libc_memalign(alignment, size);
    if (block == NULL)
        return ENOMEM;
    *pointer = block;
    return 0;
}

#endif /* REPLACE_ALLOCATOR */

static void start_counting(void)
{
    allocation_count = 0;
    release_count = 0;
    counting = true;
}

static void stop_counting(void)
{
    counting = false;
}

/* Lets `successes` more allocations succeed, then fails every later one
 * until stop_failing(). */
static void fail_after(size_t successes)
{
    allocations_before_failure = successes;
    failing = true;
}

static void stop_failing(void)
{
    failing = false;
}

/* ---- Training step ---------------------------------------------------------- */

/* Learning rate of the SGD updates. */
#define LEARNING_RATE 0.05f

/* A one-hidden-layer MLP and the fixed batch it trains on. */
typedef struct training_setup {
    size_t inputs;
    size_t hidden;
    size_t classes;
    size_t batch;
    tt_tensor *parameters[4]; /* w1 (hidden × inputs), b1, w2 (classes × hidden), b2 */
    tt_real *x;               /* inputs × batch, copied into a tape tensor each step */
    int32_t *labels;          /* batch labels */
    bool with_hooks;          /* retain h1's gradient and hook h1 and w1 */
    size_t hook_calls;        /* calls of count_hook_call so far */
} training_setup;

/* A gradient hook that counts its calls in the training_setup. */
static void count_hook_call(tt_tensor *tensor, tt_real *grad, void *context)
{
    (void)tensor;
    (void)grad;
    ((training_setup *)context)->hook_calls++;
}

static training_setup new_training_setup(size_t inputs, size_t hidden, size_t classes,
                                         size_t batch)
{
    tt_rng rng;
    tt_rng_seed(&rng, 31);
    training_setup setup = {inputs, hidden, classes, batch, {NULL}, NULL, NULL, false, 0};
    setup.parameters[0] = new_uniform_tensor(hidden, inputs, &rng, -0.1, 0.1, "w1");
    setup.parameters[1] = new_uniform_tensor(hidden, 1, &rng, -0.1, 0.1, "b1");
    setup.parameters[2] = new_uniform_tensor(classes, hidden, &rng, -0.1, 0.1, "w2");
    setup.parameters[3] = new_uniform_tensor(classes, 1, &rng, -0.1, 0.1, "b2");
    for (size_t p = 0; p < 4; p++)
        require_grad_or_fail(setup.parameters[p]);
    setup.x = malloc(inputs * batch * sizeof *setup.x);
    setup.labels = malloc(batch * sizeof *setup.labels);
    ck_assert_ptr_nonnull(setup.x);
    ck_assert_ptr_nonnull(setup.labels);
    for (size_t i = 0; i < inputs * batch; i++)
        setup.x[i] = (tt_real)tt_rng_normal(&rng);
    fill_labels(setup.labels, batch, classes, &rng);
    return setup;
}

static void free_training_setup(training_setup *setup)
{
    for (size_t p = 0; p < 4; p++)
        tt_tensor_free(setup->parameters[p]);
    free(setup->x);
    free(setup->labels);
}

/* One training step: reset, input as a tape tensor, forward, backward, then
 * the update: tt_optimizer_step if `optimizer` is not NULL, otherwise a
 * hand-written SGD update and zero_grad. Makes no Check assertion, so that
 * it can run while allocations are counted; returns the first failing
 * status. */
static tt_status training_step(tt_tape *tape, training_setup *setup, tt_optimizer *optimizer)
{
    tt_tape_reset(tape);

    tt_tensor *x = tt_tape_tensor(tape, setup->inputs, setup->batch, "x");
    if (x != NULL)
        memcpy(tt_tensor_data(x), setup->x, setup->inputs * setup->batch * sizeof *setup->x);
    tt_tensor *w1 = setup->parameters[0];
    tt_tensor *b1 = setup->parameters[1];
    tt_tensor *w2 = setup->parameters[2];
    tt_tensor *b2 = setup->parameters[3];
    tt_tensor *h1 = tt_relu(tape, tt_add(tape, tt_matmul(tape, w1, x), b1));
    if (setup->with_hooks && h1 != NULL) {
        const tt_status retained = tt_tensor_retain_grad(h1, NULL);
        const tt_status hooked = tt_tensor_set_grad_hook(h1, count_hook_call, setup, NULL);
        if (retained != TT_OK || hooked != TT_OK)
            return retained != TT_OK ? retained : hooked;
    }
    tt_tensor *z2 = tt_add(tape, tt_matmul(tape, w2, h1), b2);
    tt_tensor *loss = tt_cross_entropy(tape, z2, setup->labels, setup->batch);
    const tt_status status = tt_tape_backward(tape, loss);
    if (status != TT_OK)
        return status;
    if (optimizer != NULL)
        return tt_optimizer_step(optimizer, NULL);

    for (size_t p = 0; p < 4; p++) {
        tt_real *data = tt_tensor_data(setup->parameters[p]);
        const tt_real *grad = tt_tensor_grad(setup->parameters[p]);
        const size_t size =
            tt_tensor_rows(setup->parameters[p]) * tt_tensor_cols(setup->parameters[p]);
        for (size_t i = 0; i < size; i++)
            data[i] -= LEARNING_RATE * grad[i];
        tt_tensor_zero_grad(setup->parameters[p]);
    }
    return TT_OK;
}

/* Steps measured after the first. */
#define MEASURED_STEPS 5

/* Runs the first step on a fresh tape, which must allocate, then
 * MEASURED_STEPS more, each of which must neither allocate nor free. With
 * `with_hooks`, each step also retains a gradient and runs two hooks. With
 * `optimizer_options` not NULL the steps update through an optimizer of
 * those options, created before the first step. The tape, and the
 * optimizer with it, use `threads` threads. */
static void assert_steps_after_first_use_no_heap(size_t inputs, size_t hidden, size_t classes,
                                                 size_t batch, bool with_hooks,
                                                 const tt_optimizer_options *optimizer_options,
                                                 size_t threads)
{
    training_setup setup = new_training_setup(inputs, hidden, classes, batch);
    tt_tape *tape = new_tape_or_fail();
    ck_assert_int_eq(tt_tape_set_threads(tape, threads, NULL), TT_OK);
    setup.with_hooks = with_hooks;
    if (with_hooks)
        ck_assert_int_eq(tt_tensor_set_grad_hook(setup.parameters[0], count_hook_call, &setup,
                                                 NULL),
                         TT_OK);
    tt_optimizer *optimizer = NULL;
    if (optimizer_options != NULL) {
        tt_error err = {TT_OK, ""};
        optimizer = tt_optimizer_new(setup.parameters, 4, optimizer_options, &err);
        ck_assert_msg(optimizer != NULL, "tt_optimizer_new failed: %s", err.message);
        ck_assert_int_eq(tt_optimizer_use_tape_threads(optimizer, tape, NULL), TT_OK);
    }

    start_counting();
    const tt_status first_status = training_step(tape, &setup, optimizer);
    stop_counting();
    ck_assert_msg(first_status == TT_OK, "first step failed: %s", tt_tape_error(tape)->message);
    /* If the replacement allocator were not in use, nothing would count. */
    ck_assert_msg(allocation_count > 0,
                  "the first step on a fresh tape made no counted allocation, so the counter "
                  "does not see the library's allocations");

    for (size_t step = 2; step <= MEASURED_STEPS + 1; step++) {
        start_counting();
        const tt_status status = training_step(tape, &setup, optimizer);
        stop_counting();
        ck_assert_msg(status == TT_OK, "step %zu failed: %s", step, tt_tape_error(tape)->message);
        ck_assert_msg(allocation_count == 0,
                      "step %zu (model %zu-%zu-%zu, batch %zu) made %zu heap allocations", step,
                      inputs, hidden, classes, batch, allocation_count);
        ck_assert_msg(release_count == 0,
                      "step %zu (model %zu-%zu-%zu, batch %zu) freed %zu heap blocks", step,
                      inputs, hidden, classes, batch, release_count);
    }

    /* Two hooks per step: h1's and w1's. */
    const size_t want_hook_calls = with_hooks ? 2 * (MEASURED_STEPS + 1) : 0;
    ck_assert_msg(setup.hook_calls == want_hook_calls, "hooks ran %zu times, want %zu",
                  setup.hook_calls, want_hook_calls);

    tt_optimizer_free(optimizer);
    tt_tape_free(tape);
    free_training_setup(&setup);
}

START_TEST(training_step_after_first_makes_no_heap_allocation)
{
    /* Small enough for the tape's first block of memory. */
    assert_steps_after_first_use_no_heap(6, 8, 3, 5, false, NULL, 1);
}
END_TEST

START_TEST(optimizer_steps_make_no_heap_allocation)
{
    /* Each kind with the options that give it the most state. The first
     * step of SGD with momentum fills its buffer, so it is counted too:
     * the optimizer must allocate nothing in any step, since its state
     * comes from tt_optimizer_new. Only the tape allocates in step 1. */
    tt_optimizer_options options[OPTIMIZERS_WITH_MOST_STATE];
    fill_optimizers_with_most_state(options);
    for (size_t i = 0; i < OPTIMIZERS_WITH_MOST_STATE; i++)
        assert_steps_after_first_use_no_heap(6, 8, 3, 5, false, &options[i], 1);
}
END_TEST

START_TEST(optimizer_step_alone_makes_no_heap_allocation)
{
    /* The very first tt_optimizer_step, apart from any tape. */
    training_setup setup = new_training_setup(6, 8, 3, 5);
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_ADAM);
    tt_optimizer *optimizer = tt_optimizer_new(setup.parameters, 4, &options, NULL);
    ck_assert_ptr_nonnull(optimizer);

    start_counting();
    const tt_status status = tt_optimizer_step(optimizer, NULL);
    stop_counting();

    ck_assert_int_eq(status, TT_OK);
    ck_assert_uint_eq(allocation_count, 0);
    ck_assert_uint_eq(release_count, 0);
    tt_optimizer_free(optimizer);
    free_training_setup(&setup);
}
END_TEST

START_TEST(batches_next_makes_no_heap_allocation)
{
    /* Shuffling at the start of each epoch reuses the index array. */
    tt_batches *batches = tt_batches_new(1000, 64, false, 3, NULL);
    ck_assert_ptr_nonnull(batches);
    size_t samples = 0;

    start_counting();
    for (int epoch = 0; epoch < 3; epoch++) {
        size_t count = 0;
        while (tt_batches_next(batches, &count) != NULL)
            samples += count;
    }
    stop_counting();

    ck_assert_uint_eq(samples, 3000);
    ck_assert_uint_eq(allocation_count, 0);
    ck_assert_uint_eq(release_count, 0);
    tt_batches_free(batches);
}
END_TEST

START_TEST(optimizer_new_reports_nomem_at_every_allocation)
{
    training_setup setup = new_training_setup(6, 8, 3, 5);
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_ADAM);
    for (size_t successes = 0; successes < 16; successes++) {
        tt_error err = {TT_OK, ""};

        fail_after(successes);
        tt_optimizer *optimizer = tt_optimizer_new(setup.parameters, 4, &options, &err);
        stop_failing();

        if (optimizer != NULL) {
            ck_assert_int_eq(err.status, TT_OK);
            tt_optimizer_free(optimizer);
            free_training_setup(&setup);
            return;
        }
        ck_assert_int_eq(err.status, TT_ERR_NOMEM);
        /* 8·6 + 8 + 3·8 + 3 = 83 elements */
        ck_assert_str_eq(err.message,
                         "tt_optimizer_new: out of memory for Adam state of 4 parameters "
                         "(83 elements)");
    }
    ck_abort_msg("tt_optimizer_new still failed with 16 allocations allowed");
}
END_TEST

START_TEST(training_step_with_hooks_makes_no_heap_allocation)
{
    /* Retain flags and hooks live in the tensors, so they add no allocation. */
    assert_steps_after_first_use_no_heap(6, 8, 3, 5, true, NULL, 1);
}
END_TEST

START_TEST(large_training_step_after_first_makes_no_heap_allocation)
{
    /* An MNIST-sized step: several megabytes of activations and gradients,
     * more than the tape's first block of memory, so the first step grows
     * the tape's memory more than once. */
    assert_steps_after_first_use_no_heap(784, 128, 10, 64, false, NULL, 1);
}
END_TEST

START_TEST(threaded_training_step_makes_no_heap_allocation)
{
    /* A 784-256-10 step at batch 64 on three threads, with SGD with
     * momentum on the tape's threads: W1 alone has 200704 elements, enough
     * for the products, relu, add and the update to split over them. */
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    options.momentum = 0.9;
    assert_steps_after_first_use_no_heap(784, 256, 10, 64, false, &options, 3);
}
END_TEST

/* A user-defined op for the heap test: y = factor·x, with the factor 2
 * kept for backward in a block of the tape's memory. */
static tt_status scale_forward(tt_custom_context *context, void *user)
{
    (void)user;
    tt_tensor *x = tt_custom_input(context, 0);
    tt_tensor *y = tt_custom_new_output(context, tt_tensor_rows(x), tt_tensor_cols(x));
    tt_real *factor = tt_custom_save(context, sizeof *factor);
    if (y == NULL || factor == NULL)
        return TT_ERR_NOMEM;
    *factor = 2;
    for (size_t i = 0; i < tt_tensor_rows(x) * tt_tensor_cols(x); i++)
        tt_tensor_data(y)[i] = *factor * tt_tensor_data(x)[i];
    return TT_OK;
}

static tt_status scale_backward(tt_custom_context *context, void *user)
{
    (void)user;
    const tt_real *factor = tt_custom_saved(context);
    const tt_real *dy = tt_custom_output_grad(context);
    tt_real *dx = tt_custom_input_grad(context, 0);
    tt_tensor *x = tt_custom_input(context, 0);
    for (size_t i = 0; dx != NULL && i < tt_tensor_rows(x) * tt_tensor_cols(x); i++)
        dx[i] += *factor * dy[i];
    return TT_OK;
}

static tt_real cube(tt_real x)
{
    return x * x * x;
}

static tt_real cube_slope(tt_real x)
{
    return 3 * x * x;
}

START_TEST(custom_ops_and_losses_after_first_step_make_no_heap_allocation)
{
    /* loss = bce(w·g(scale(x)), labels) + mse(g(scale(x)), t), with g a
     * user-defined activation and scale a user-defined op: after the
     * first step, neither takes anything from the heap. */
    enum { ROWS = 4, COLS = 6 };
    tt_error err = {TT_OK, ""};
    const tt_activation_def cube_def = {.name = "cube", .function = cube,
                                        .derivative = cube_slope};
    const tt_custom_op_def scale_def = {.name = "scale", .n_inputs = 1,
                                        .forward = scale_forward, .backward = scale_backward};
    tt_activation *g = tt_activation_new(&cube_def, &err);
    tt_custom_op *scale = tt_custom_op_new(&scale_def, &err);
    ck_assert_ptr_nonnull(g);
    ck_assert_ptr_nonnull(scale);
    tt_rng rng;
    tt_rng_seed(&rng, 3);
    tt_tensor *x = new_uniform_tensor(ROWS, COLS, &rng, -1, 1, "x");
    tt_tensor *w = new_uniform_tensor(1, ROWS, &rng, -1, 1, "w");
    tt_tensor *t = new_uniform_tensor(ROWS, COLS, &rng, -1, 1, "t");
    require_grad_or_fail(x);
    require_grad_or_fail(w);
    int32_t labels[COLS];
    fill_labels(labels, COLS, 2, &rng);
    tt_tape *tape = new_tape_or_fail();

    for (size_t step = 1; step <= MEASURED_STEPS + 1; step++) {
        start_counting();
        tt_tape_reset(tape);
        tt_tensor *h = tt_activation_apply(tape, g, tt_custom_op_apply(tape, scale, &x, 1));
        tt_tensor *bce = tt_bce_with_logits(tape, tt_matmul(tape, w, h), labels, COLS);
        tt_tensor *loss = tt_add(tape, bce, tt_mse(tape, h, t));
        const tt_status status = tt_tape_backward(tape, loss);
        stop_counting();
        ck_assert_msg(status == TT_OK, "step %zu failed: %s", step, tt_tape_error(tape)->message);
        if (step > 1) {
            ck_assert_msg(allocation_count == 0, "step %zu made %zu heap allocations", step,
                          allocation_count);
            ck_assert_msg(release_count == 0, "step %zu freed %zu heap blocks", step,
                          release_count);
        }
        tt_tensor_zero_grad(x);
        tt_tensor_zero_grad(w);
    }

    tt_tape_free(tape);
    tt_tensor_free(x);
    tt_tensor_free(w);
    tt_tensor_free(t);
    tt_activation_free(g);
    tt_custom_op_free(scale);
}
END_TEST

/* ---- Out-of-memory paths ----------------------------------------------------- */

START_TEST(tape_new_reports_nomem)
{
    tt_error err = {TT_OK, ""};

    fail_after(0);
    tt_tape *tape = tt_tape_new(&err);
    stop_failing();

    ck_assert_ptr_null(tape);
    ck_assert_int_eq(err.status, TT_ERR_NOMEM);
    ck_assert_str_eq(err.message, "tt_tape_new: out of memory");
}
END_TEST

START_TEST(tensor_new_reports_nomem_at_every_allocation)
{
    /* tt_tensor_new allocates more than once (header, data, name). Failing
     * each of the first allocations in turn reaches every cleanup path, and
     * valgrind (with --soname-synonyms=somalloc=nouserintercepts) reports
     * any block left behind. Once the call succeeds, every path has been
     * tried. */
    for (size_t successes = 0; successes < 16; successes++) {
        tt_error err = {TT_OK, ""};

        fail_after(successes);
        tt_tensor *tensor = tt_tensor_new(2, 3, "w", &err);
        stop_failing();

        if (tensor != NULL) {
            ck_assert_int_eq(err.status, TT_OK);
            tt_tensor_free(tensor);
            return;
        }
        ck_assert_msg(err.status == TT_ERR_NOMEM,
                      "failure after %zu allocations: status %d, want TT_ERR_NOMEM", successes,
                      (int)err.status);
        ck_assert_str_eq(err.message, "tt_tensor_new: out of memory for a 2x3 tensor");
    }
    ck_abort_msg("tt_tensor_new still failed with 16 allocations allowed");
}
END_TEST

START_TEST(require_grad_reports_nomem_and_can_retry)
{
    tt_tensor *tensor = new_tensor_or_fail(2, 3, NULL, "w");
    tt_error err = {TT_OK, ""};

    fail_after(0);
    const tt_status status = tt_tensor_require_grad(tensor, &err);
    stop_failing();

    ck_assert_int_eq(status, TT_ERR_NOMEM);
    ck_assert_int_eq(err.status, TT_ERR_NOMEM);
    ck_assert_str_eq(err.message, "tt_tensor_require_grad: out of memory for a 2x3 gradient");
    ck_assert_ptr_null(tt_tensor_grad(tensor));

    ck_assert_int_eq(tt_tensor_require_grad(tensor, &err), TT_OK);
    ck_assert_ptr_nonnull(tt_tensor_grad(tensor));

    tt_tensor_free(tensor);
}
END_TEST

START_TEST(op_reports_nomem_when_tape_records_cannot_grow)
{
    /* A fresh tape has no room for records yet, so the first op allocates. */
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = new_tensor_or_fail(2, 2, NULL, "x");

    fail_after(0);
    tt_tensor *h = tt_relu(tape, x);
    stop_failing();

    ck_assert_ptr_null(h);
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_NOMEM);
    ck_assert_str_eq(tt_tape_error(tape)->message, "relu: out of memory for the tape's records");
    ck_assert_uint_eq(tt_tape_length(tape), 0);

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_relu(tape, x));
    assert_tape_ok(tape, "relu after the reset");

    tt_tensor_free(x);
    tt_tape_free(tape);
}
END_TEST

START_TEST(op_reports_nomem_when_tape_memory_cannot_grow)
{
    /* After one small op the tape has records and some memory, but not the
     * megabytes of a 1000 × 1000 output. The outer sum a + b needs no
     * scratch, so the output is the first thing to allocate. */
    enum { SIZE = 1000 };
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *small = new_tensor_or_fail(2, 2, NULL, "small");
    tt_tensor *a = new_tensor_or_fail(SIZE, 1, NULL, "a");
    tt_tensor *b = new_tensor_or_fail(1, SIZE, NULL, "b");
    ck_assert_ptr_nonnull(tt_relu(tape, small));

    fail_after(0);
    tt_tensor *c = tt_add(tape, a, b);
    stop_failing();

    ck_assert_ptr_null(c);
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_NOMEM);
    ck_assert_str_eq(tt_tape_error(tape)->message, "add: out of memory for a 1000x1000 output");
    ck_assert_uint_eq(tt_tape_length(tape), 1);

    tt_tape_reset(tape);
    c = tt_add(tape, a, b);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(tt_tensor_rows(c), SIZE);
    assert_tape_ok(tape, "add after the reset");

    tt_tensor_free(small);
    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
}
END_TEST

START_TEST(matmul_reports_nomem_for_product_scratch)
{
    /* A matrix product packs its operands into scratch memory that the tape
     * keeps, so the first matmul on a tape has to allocate it. A relu first
     * gives the tape its records. The size in the message depends on the
     * CPU's kernel, so only the parts around it are compared. */
    const char *prefix = "matmul: out of memory for ";
    const char *suffix = " elements of matrix-product scratch";
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(64, 64, NULL, "a");
    tt_tensor *b = new_tensor_or_fail(64, 64, NULL, "b");
    ck_assert_ptr_nonnull(tt_relu(tape, a));

    fail_after(0);
    tt_tensor *c = tt_matmul(tape, a, b);
    stop_failing();

    ck_assert_ptr_null(c);
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_NOMEM);
    const char *message = tt_tape_error(tape)->message;
    ck_assert_msg(strncmp(message, prefix, strlen(prefix)) == 0, "message: %s", message);
    ck_assert_msg(strlen(message) > strlen(prefix) + strlen(suffix) &&
                      strcmp(message + strlen(message) - strlen(suffix), suffix) == 0,
                  "message: %s", message);
    ck_assert_uint_eq(tt_tape_length(tape), 1);

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_matmul(tape, a, b));
    assert_tape_ok(tape, "matmul after the reset");

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
}
END_TEST

START_TEST(tape_tensor_reports_nomem)
{
    tt_tape *tape = new_tape_or_fail();

    fail_after(0);
    tt_tensor *batch = tt_tape_tensor(tape, 300, 300, "batch");
    stop_failing();

    ck_assert_ptr_null(batch);
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_NOMEM);
    ck_assert_str_eq(tt_tape_error(tape)->message,
                     "tt_tape_tensor: out of memory for a 300x300 tensor");

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_tape_tensor(tape, 300, 300, "batch"));
    assert_tape_ok(tape, "tt_tape_tensor after the reset");

    tt_tape_free(tape);
}
END_TEST

START_TEST(cross_entropy_reports_nomem_for_saved_state)
{
    /* 100000 columns: the per-column maxima alone take 100000 tt_real
     * values, far more memory than the tape has after one small op. */
    enum { SAMPLES = 100000 };
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *small = new_tensor_or_fail(2, 2, NULL, "small");
    tt_tensor *z = new_tensor_or_fail(2, SAMPLES, NULL, "z");
    int32_t *labels = calloc(SAMPLES, sizeof *labels);
    ck_assert_ptr_nonnull(labels);
    ck_assert_ptr_nonnull(tt_relu(tape, small));

    fail_after(0);
    tt_tensor *loss = tt_cross_entropy(tape, z, labels, SAMPLES);
    stop_failing();

    ck_assert_ptr_null(loss);
    ck_assert_int_eq(tt_tape_status(tape), TT_ERR_NOMEM);
    char want[TT_ERROR_MESSAGE_MAX];
    snprintf(want, sizeof want, "cross_entropy: out of memory for %zu bytes of saved state",
             SAMPLES * sizeof(tt_real));
    ck_assert_str_eq(tt_tape_error(tape)->message, want);
    ck_assert_uint_eq(tt_tape_length(tape), 1);

    tt_tape_reset(tape);
    ck_assert_ptr_nonnull(tt_cross_entropy(tape, z, labels, SAMPLES));
    assert_tape_ok(tape, "cross_entropy after the reset");

    free(labels);
    tt_tensor_free(small);
    tt_tensor_free(z);
    tt_tape_free(tape);
}
END_TEST

/* Records loss = cross_entropy(relu(w)) for a 2 × n w that requires a
 * gradient on a fresh tape, then runs backward. With `fail` false it
 * counts the backward pass's allocations and returns whether there were
 * any. With `fail` true every allocation of the backward pass fails, and it
 * checks the error and that the tape works after a reset. */
static bool run_backward(size_t n, bool fail)
{
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *w = new_tensor_or_fail(2, n, NULL, "w");
    int32_t *labels = calloc(n, sizeof *labels);
    ck_assert_ptr_nonnull(labels);
    require_grad_or_fail(w);
    tt_tensor *loss = tt_cross_entropy(tape, tt_relu(tape, w), labels, n);
    ck_assert_ptr_nonnull(loss);

    if (fail)
        fail_after(0);
    else
        start_counting();
    const tt_status status = tt_tape_backward(tape, loss);
    stop_failing();
    stop_counting();
    const bool allocated = !fail && allocation_count > 0;

    if (fail) {
        ck_assert_int_eq(status, TT_ERR_NOMEM);
        ck_assert_int_eq(tt_tape_status(tape), TT_ERR_NOMEM);
        /* Gradients are allocated in tape order; the first that does not
         * fit names the message. */
        char want_relu[TT_ERROR_MESSAGE_MAX];
        snprintf(want_relu, sizeof want_relu,
                 "backward: out of memory for the gradient of relu@0 (2x%zu)", n);
        const char *want_loss = "backward: out of memory for the gradient of cross_entropy@1 (1x1)";
        const char *message = tt_tape_error(tape)->message;
        ck_assert_msg(strcmp(message, want_relu) == 0 || strcmp(message, want_loss) == 0,
                      "message \"%s\", want \"%s\" or \"%s\"", message, want_relu, want_loss);

        tt_tape_reset(tape);
        loss = tt_cross_entropy(tape, tt_relu(tape, w), labels, n);
        ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);
    } else {
        ck_assert_int_eq(status, TT_OK);
    }

    free(labels);
    tt_tensor_free(w);
    tt_tape_free(tape);
    return allocated;
}

START_TEST(backward_reports_nomem_for_gradients)
{
    /* Gradients of op outputs are allocated by the first backward pass, but
     * whether they fit in the memory left over by the forward pass depends
     * on how the tape grows its memory. So the test counts the backward
     * pass's allocations for growing n and makes them fail for the first n
     * where there are any. The same ops on a fresh tape allocate the same
     * way each time. */
    for (size_t n = 1000; n <= 100000; n += 1000) {
        if (run_backward(n, false)) {
            run_backward(n, true);
            return;
        }
    }
    ck_abort_msg("backward never allocated for n up to 100000");
}
END_TEST

static Suite *memory_suite(void)
{
    Suite *suite = suite_create("memory");

    TCase *steady = add_test_case(suite, "steady_state");
    tcase_add_test(steady, training_step_after_first_makes_no_heap_allocation);
    tcase_add_test(steady, training_step_with_hooks_makes_no_heap_allocation);
    tcase_add_test(steady, large_training_step_after_first_makes_no_heap_allocation);
    tcase_add_test(steady, threaded_training_step_makes_no_heap_allocation);
    tcase_add_test(steady, custom_ops_and_losses_after_first_step_make_no_heap_allocation);
    tcase_add_test(steady, optimizer_steps_make_no_heap_allocation);
    tcase_add_test(steady, optimizer_step_alone_makes_no_heap_allocation);
    tcase_add_test(steady, batches_next_makes_no_heap_allocation);

    TCase *nomem = add_test_case(suite, "out_of_memory");
    tcase_add_test(nomem, tape_new_reports_nomem);
    tcase_add_test(nomem, tensor_new_reports_nomem_at_every_allocation);
    tcase_add_test(nomem, require_grad_reports_nomem_and_can_retry);
    tcase_add_test(nomem, op_reports_nomem_when_tape_records_cannot_grow);
    tcase_add_test(nomem, op_reports_nomem_when_tape_memory_cannot_grow);
    tcase_add_test(nomem, matmul_reports_nomem_for_product_scratch);
    tcase_add_test(nomem, tape_tensor_reports_nomem);
    tcase_add_test(nomem, cross_entropy_reports_nomem_for_saved_state);
    tcase_add_test(nomem, backward_reports_nomem_for_gradients);
    tcase_add_test(nomem, optimizer_new_reports_nomem_at_every_allocation);

    return suite;
}

/* Exit status by which meson marks a test as skipped. */
#define EXIT_SKIPPED 77

/* Returns whether the library's allocations reach the replacements above.
 * They do not under AddressSanitizer (see REPLACE_ALLOCATOR), nor under
 * valgrind, which puts its own allocator in place of malloc in the
 * executable too unless it runs with
 * --soname-synonyms=somalloc=nouserintercepts. */
static bool replacement_allocator_active(void)
{
    start_counting();
    tt_tape *tape = tt_tape_new(NULL);
    stop_counting();
    tt_tape_free(tape);
    return allocation_count > 0;
}

int main(void)
{
    if (!replacement_allocator_active()) {
        fprintf(stderr, "skipped: the library's allocations bypass this test's malloc, as they "
                        "do under AddressSanitizer, and under valgrind without "
                        "--soname-synonyms=somalloc=nouserintercepts\n");
        return EXIT_SKIPPED;
    }
    return run_suite(memory_suite());
}
