/* Minibatch iterator: every sample once per epoch, batch sizes with and
 * without drop_last, reproducibility from the seed, a new order in each
 * epoch, and the error paths. */
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static tt_batches *new_batches_or_fail(size_t n_samples, size_t batch_size, bool drop_last,
                                       uint64_t seed)
{
    tt_error err = {TT_OK, ""};
    tt_batches *batches = tt_batches_new(n_samples, batch_size, drop_last, seed, &err);
    ck_assert_msg(batches != NULL, "tt_batches_new failed: %s", err.message);
    return batches;
}

/* Runs one epoch and copies the visited indices, in order, to `visited`
 * (room for n_samples), the batch sizes to `sizes` (room for n_samples).
 * Returns the number of batches. */
static size_t run_epoch(tt_batches *batches, size_t n_samples, size_t *visited, size_t *sizes,
                        size_t *n_visited)
{
    size_t n_batches = 0;
    size_t count = 0;
    const size_t *ids = NULL;
    *n_visited = 0;
    while ((ids = tt_batches_next(batches, &count)) != NULL) {
        ck_assert_uint_gt(count, 0);
        ck_assert_uint_le(*n_visited + count, n_samples);
        memcpy(visited + *n_visited, ids, count * sizeof *ids);
        *n_visited += count;
        sizes[n_batches++] = count;
    }
    ck_assert_uint_eq(count, 0);
    return n_batches;
}

/* Fails unless visited[0 .. n) contains each of 0 .. n−1 exactly once. */
static void assert_permutation(const size_t *visited, size_t n, const char *what)
{
    unsigned char *seen = calloc(n, 1);
    ck_assert_ptr_nonnull(seen);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(visited[i] < n, "%s: index %zu is %zu, not below %zu", what, i, visited[i],
                      n);
        ck_assert_msg(!seen[visited[i]], "%s: sample %zu visited twice", what, visited[i]);
        seen[visited[i]] = 1;
    }
    free(seen);
}

START_TEST(epoch_visits_each_sample_once)
{
    enum { SAMPLES = 103, BATCH = 10 };
    tt_batches *batches = new_batches_or_fail(SAMPLES, BATCH, false, 1);
    size_t visited[SAMPLES];
    size_t sizes[SAMPLES];

    for (uint64_t epoch = 1; epoch <= 3; epoch++) {
        size_t n_visited = 0;
        const size_t n_batches = run_epoch(batches, SAMPLES, visited, sizes, &n_visited);

        /* 103 = 10 batches of 10 and a last one of 3 */
        ck_assert_uint_eq(n_batches, 11);
        ck_assert_uint_eq(tt_batches_per_epoch(batches), 11);
        for (size_t b = 0; b < 10; b++)
            ck_assert_uint_eq(sizes[b], BATCH);
        ck_assert_uint_eq(sizes[10], 3);
        ck_assert_uint_eq(n_visited, SAMPLES);
        assert_permutation(visited, SAMPLES, "epoch");
        ck_assert_uint_eq(tt_batches_epoch(batches), epoch);
    }
    tt_batches_free(batches);
}
END_TEST

START_TEST(drop_last_skips_partial_batch)
{
    enum { SAMPLES = 103, BATCH = 10 };
    tt_batches *batches = new_batches_or_fail(SAMPLES, BATCH, true, 1);
    size_t visited[SAMPLES];
    size_t sizes[SAMPLES];
    size_t n_visited = 0;

    const size_t n_batches = run_epoch(batches, SAMPLES, visited, sizes, &n_visited);

    ck_assert_uint_eq(n_batches, 10);
    ck_assert_uint_eq(tt_batches_per_epoch(batches), 10);
    ck_assert_uint_eq(n_visited, 100);
    for (size_t b = 0; b < n_batches; b++)
        ck_assert_uint_eq(sizes[b], BATCH);
    /* The 100 visited samples are distinct. */
    size_t sorted[SAMPLES];
    memcpy(sorted, visited, sizeof sorted);
    for (size_t i = 0; i < n_visited; i++)
        for (size_t j = i + 1; j < n_visited; j++)
            ck_assert_msg(sorted[i] != sorted[j], "sample %zu visited twice", sorted[i]);
    tt_batches_free(batches);
}
END_TEST

START_TEST(exact_multiple_has_no_partial_batch)
{
    tt_batches *batches = new_batches_or_fail(40, 10, false, 3);
    size_t visited[40];
    size_t sizes[40];
    size_t n_visited = 0;

    ck_assert_uint_eq(run_epoch(batches, 40, visited, sizes, &n_visited), 4);
    ck_assert_uint_eq(sizes[3], 10);
    assert_permutation(visited, 40, "40 samples in batches of 10");
    tt_batches_free(batches);
}
END_TEST

START_TEST(batch_larger_than_dataset_gives_one_batch)
{
    tt_batches *batches = new_batches_or_fail(5, 64, false, 3);
    size_t visited[5];
    size_t sizes[5];
    size_t n_visited = 0;

    ck_assert_uint_eq(run_epoch(batches, 5, visited, sizes, &n_visited), 1);
    ck_assert_uint_eq(sizes[0], 5);
    assert_permutation(visited, 5, "5 samples in a batch of 64");
    tt_batches_free(batches);
}
END_TEST

START_TEST(same_seed_repeats_epochs)
{
    enum { SAMPLES = 50, EPOCHS = 3 };
    tt_batches *first = new_batches_or_fail(SAMPLES, 7, false, 42);
    tt_batches *second = new_batches_or_fail(SAMPLES, 7, false, 42);
    size_t a[SAMPLES];
    size_t b[SAMPLES];
    size_t sizes[SAMPLES];
    size_t n = 0;

    for (size_t epoch = 0; epoch < EPOCHS; epoch++) {
        run_epoch(first, SAMPLES, a, sizes, &n);
        run_epoch(second, SAMPLES, b, sizes, &n);
        for (size_t i = 0; i < SAMPLES; i++)
            ck_assert_msg(a[i] == b[i], "epoch %zu, position %zu: %zu and %zu", epoch, i, a[i],
                          b[i]);
    }
    tt_batches_free(first);
    tt_batches_free(second);
}
END_TEST

/* Number of positions where two orders of `n` samples agree. */
static size_t count_agreements(const size_t *a, const size_t *b, size_t n)
{
    size_t agreements = 0;
    for (size_t i = 0; i < n; i++)
        agreements += a[i] == b[i];
    return agreements;
}

START_TEST(orders_differ_across_epochs_and_seeds)
{
    /* Two independent random permutations of 1000 samples agree in one
     * position on average, and in more than 10 with probability below
     * 1e-7; the identity (no shuffle) agrees with itself everywhere. */
    enum { SAMPLES = 1000, MAX_AGREEMENTS = 10 };
    tt_batches *batches = new_batches_or_fail(SAMPLES, 32, false, 7);
    tt_batches *other_seed = new_batches_or_fail(SAMPLES, 32, false, 8);
    static size_t first_epoch[SAMPLES];
    static size_t second_epoch[SAMPLES];
    static size_t other[SAMPLES];
    static size_t identity[SAMPLES];
    static size_t sizes[SAMPLES];
    size_t n = 0;
    for (size_t i = 0; i < SAMPLES; i++)
        identity[i] = i;

    run_epoch(batches, SAMPLES, first_epoch, sizes, &n);
    run_epoch(batches, SAMPLES, second_epoch, sizes, &n);
    run_epoch(other_seed, SAMPLES, other, sizes, &n);

    ck_assert_uint_le(count_agreements(first_epoch, second_epoch, SAMPLES), MAX_AGREEMENTS);
    ck_assert_uint_le(count_agreements(first_epoch, other, SAMPLES), MAX_AGREEMENTS);
    ck_assert_uint_le(count_agreements(first_epoch, identity, SAMPLES), MAX_AGREEMENTS);
    tt_batches_free(batches);
    tt_batches_free(other_seed);
}
END_TEST

START_TEST(new_rejects_invalid_sizes)
{
    struct {
        size_t n_samples;
        size_t batch_size;
        bool drop_last;
        const char *message;
    } cases[] = {
        {0, 10, false, "tt_batches_new: n_samples is 0; it must be at least 1"},
        {10, 0, false, "tt_batches_new: batch_size is 0; it must be at least 1"},
        {10, 11, true,
         "tt_batches_new: batch_size 11 exceeds the 10 samples, so drop_last would leave no "
         "batch; lower batch_size or clear drop_last"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tt_error err = {TT_OK, ""};
        ck_assert_ptr_null(
            tt_batches_new(cases[i].n_samples, cases[i].batch_size, cases[i].drop_last, 1, &err));
        ck_assert_int_eq(err.status, TT_ERR_ARG);
        ck_assert_str_eq(err.message, cases[i].message);
    }

    size_t count = 99;
    ck_assert_ptr_null(tt_batches_next(NULL, &count));
    ck_assert_uint_eq(count, 0);
    ck_assert_uint_eq(tt_batches_per_epoch(NULL), 0);
    ck_assert_uint_eq(tt_batches_epoch(NULL), 0);
    tt_batches *batches = new_batches_or_fail(10, 3, false, 1);
    ck_assert_ptr_null(tt_batches_next(batches, NULL));
    tt_batches_free(batches);
    tt_batches_free(NULL);
}
END_TEST

static Suite *batches_suite(void)
{
    Suite *suite = suite_create("batches");

    TCase *epochs = add_test_case(suite, "epochs");
    tcase_add_test(epochs, epoch_visits_each_sample_once);
    tcase_add_test(epochs, drop_last_skips_partial_batch);
    tcase_add_test(epochs, exact_multiple_has_no_partial_batch);
    tcase_add_test(epochs, batch_larger_than_dataset_gives_one_batch);
    tcase_add_test(epochs, same_seed_repeats_epochs);
    tcase_add_test(epochs, orders_differ_across_epochs_and_seeds);

    TCase *errors = add_test_case(suite, "errors");
    tcase_add_test(errors, new_rejects_invalid_sizes);

    return suite;
}

int main(void)
{
    return run_suite(batches_suite());
}
