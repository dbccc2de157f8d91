/* The packed GEMM (src/gemm.c) against a plain reference, for every kernel
 * this CPU supports, every transpose case and odd shapes on both sides of
 * the kernels' tile and block sizes.
 *
 * Error bound: a sum of k products computed in tt_real with any order of
 * additions (and with or without fused multiply-add) differs from the exact
 * sum by at most about k·ε·Σ_p |a_ip·b_pj|, with ε the machine epsilon of
 * tt_real. The tests allow twice that, plus the same bound for the value
 * already in C when accumulating. A missing, repeated or misplaced term
 * breaks the bound by far, since it is off by a whole product. */
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "internal.h"

/* Sizes for every dimension: 1, below and above the AVX2 tile sizes (6 and
 * 16) and the portable ones (4 and 8), and above the 256-step k block. */
static const size_t sizes[] = {1, 7, 17, 63, 65, 257};

#define SIZE_COUNT (sizeof sizes / sizeof sizes[0])

/* Value that C contains before a product that overwrites it: a NaN, so that a
 * kernel that reads C instead of overwriting it is caught. */
#define UNWRITTEN_C NAN

typedef struct gemm_case {
    bool transpose_a;
    bool transpose_b;
    size_t m, n, k;
    bool accumulate;
} gemm_case;

static tt_real *random_values(tt_rng *rng, size_t count)
{
    tt_real *values = malloc((count > 0 ? count : 1) * sizeof *values);
    ck_assert_ptr_nonnull(values);
    for (size_t i = 0; i < count; i++)
        values[i] = (tt_real)(2.0 * tt_rng_uniform(rng) - 1.0);
    return values;
}

static tt_real *aligned_scratch(size_t elements)
{
    size_t bytes = (elements * sizeof(tt_real) + TT_ARENA_ALIGN - 1) / TT_ARENA_ALIGN *
                   TT_ARENA_ALIGN;
    tt_real *scratch = aligned_alloc(TT_ARENA_ALIGN, bytes > 0 ? bytes : TT_ARENA_ALIGN);
    ck_assert_ptr_nonnull(scratch);
    return scratch;
}

/* Runs one product with `kernel` and checks every element of C against the
 * reference sum and its error bound. Stored shapes: A is m × k, or k × m
 * when transposed; B is k × n, or n × k. */
static void check_case(const tt_gemm_kernel *kernel, gemm_case g, tt_rng *rng)
{
    const size_t lda = g.transpose_a ? g.m : g.k;
    const size_t ldb = g.transpose_b ? g.k : g.n;
    tt_real *a = random_values(rng, g.m * g.k);
    tt_real *b = random_values(rng, g.k * g.n);
    tt_real *c_before = random_values(rng, g.m * g.n);
    tt_real *c = malloc(g.m * g.n * sizeof *c);
    ck_assert_ptr_nonnull(c);
    for (size_t i = 0; i < g.m * g.n; i++)
        c[i] = g.accumulate ? c_before[i] : (tt_real)UNWRITTEN_C;
    tt_real *scratch = aligned_scratch(tt_gemm_scratch_size(kernel, g.m, g.n, g.k));

    tt_gemm_run(kernel, scratch, g.transpose_a, g.transpose_b, g.m, g.n, g.k, a, lda, b, ldb, c,
                g.n, g.accumulate);

    /* Check's assertions are slow (each one talks to the parent process),
     * so the loops only find the first element outside its bound. */
    bool within_bounds = true;
    size_t bad_i = 0, bad_j = 0;
    double bad_got = 0, bad_want = 0, bad_bound = 0;
    for (size_t i = 0; i < g.m && within_bounds; i++) {
        for (size_t j = 0; j < g.n && within_bounds; j++) {
            double sum = g.accumulate ? (double)c_before[i * g.n + j] : 0.0;
            double magnitude = fabs(sum);
            for (size_t p = 0; p < g.k; p++) {
                double a_ip = g.transpose_a ? a[p * lda + i] : a[i * lda + p];
                double b_pj = g.transpose_b ? b[j * ldb + p] : b[p * ldb + j];
                sum += a_ip * b_pj;
                magnitude += fabs(a_ip * b_pj);
            }
            double bound = 2.0 * (double)(g.k + 1) * EPSILON_REAL * magnitude;
            double got = c[i * g.n + j];
            /* Written so that a NaN result fails. */
            if (!(fabs(got - sum) <= bound)) {
                within_bounds = false;
                bad_i = i;
                bad_j = j;
                bad_got = got;
                bad_want = sum;
                bad_bound = bound;
            }
        }
    }
    ck_assert_msg(within_bounds,
                  "kernel %s, %s%s m=%zu n=%zu k=%zu%s: C[%zu,%zu] is %.9g, want %.9g "
                  "(allowed error %.3g)",
                  kernel->name, g.transpose_a ? "A^T" : "A", g.transpose_b ? "B^T" : "B", g.m,
                  g.n, g.k, g.accumulate ? " accumulating" : "", bad_i, bad_j, bad_got, bad_want,
                  bad_bound);

    free(a);
    free(b);
    free(c_before);
    free(c);
    free(scratch);
}

/* Indices in the kernel table of the kernels this CPU supports. Tests run
 * once per entry, so a kernel the CPU lacks is never reported as passed. */
static size_t supported_kernels[8];
static size_t supported_count;

/* Checks every combination of sizes for one transpose case, with the
 * kernel at position `position` of supported_kernels. */
static void check_transpose_case(size_t position, bool transpose_a, bool transpose_b)
{
    const tt_gemm_kernel *kernel = tt_gemm_kernel_at(supported_kernels[position]);

    tt_rng rng;
    tt_rng_seed(&rng, 7 + 2 * transpose_a + transpose_b);
    for (size_t im = 0; im < SIZE_COUNT; im++) {
        for (size_t in = 0; in < SIZE_COUNT; in++) {
            for (size_t ik = 0; ik < SIZE_COUNT; ik++) {
                gemm_case g = {transpose_a, transpose_b, sizes[im], sizes[in], sizes[ik], false};
                check_case(kernel, g, &rng);
                /* Accumulating shares every loop with overwriting but the
                 * first k block's; one size in three keeps the suite fast
                 * under valgrind. */
                if ((im + in + ik) % 3 == 0) {
                    g.accumulate = true;
                    check_case(kernel, g, &rng);
                }
            }
        }
    }
}

START_TEST(gemm_matches_reference_for_a_b)
{
    check_transpose_case((size_t)_i, false, false);
}
END_TEST

START_TEST(gemm_matches_reference_for_a_bt)
{
    check_transpose_case((size_t)_i, false, true);
}
END_TEST

START_TEST(gemm_matches_reference_for_at_b)
{
    check_transpose_case((size_t)_i, true, false);
}
END_TEST

START_TEST(gemm_matches_reference_for_at_bt)
{
    check_transpose_case((size_t)_i, true, true);
}
END_TEST

START_TEST(gemm_handles_several_column_blocks)
{
    /* More columns than one cache block of the AVX2 and portable kernels
     * (4080 and 4096), so the driver's outer loop runs more than once. */
    const tt_gemm_kernel *kernel = tt_gemm_kernel_at(supported_kernels[_i]);
    tt_rng rng;
    tt_rng_seed(&rng, 17);
    for (int transpose = 0; transpose < 4; transpose++) {
        gemm_case g = {transpose & 1, transpose & 2, 7, 4100, 17, transpose == 3};
        check_case(kernel, g, &rng);
    }
}
END_TEST

START_TEST(gemm_with_k_zero_clears_or_keeps_c)
{
    const tt_gemm_kernel *kernel = tt_gemm_kernel_at(supported_kernels[_i]);
    tt_real c[6] = {1, 2, 3, 4, 5, 6};
    tt_real scratch[1];

    tt_gemm_run(kernel, scratch, false, false, 2, 3, 0, NULL, 0, NULL, 3, c, 3, true);
    for (size_t i = 0; i < 6; i++)
        ck_assert_msg(c[i] == (tt_real)(i + 1), "accumulating kept c[%zu] = %g", i, (double)c[i]);

    tt_gemm_run(kernel, scratch, false, false, 2, 3, 0, NULL, 0, NULL, 3, c, 3, false);
    for (size_t i = 0; i < 6; i++)
        ck_assert_msg(c[i] == 0, "overwriting left c[%zu] = %g", i, (double)c[i]);
}
END_TEST

/* tt_gemm splits C over a pool's threads by whole tiles. For each shape
 * and transpose case, every thread count must give exactly the bits that
 * one thread gives. The shapes are large enough to be split. */
START_TEST(gemm_threads_give_same_bits)
{
    const tt_gemm_kernel *kernel = tt_gemm_kernel_at(supported_kernels[_i]);
    const size_t shapes[][3] = {{257, 65, 63}, {65, 257, 63}, {100, 100, 257}, {7, 1000, 300}};
    const size_t thread_counts[] = {2, 3, 5};
    tt_rng rng;
    tt_rng_seed(&rng, 99);

    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        for (int transpose = 0; transpose < 4; transpose++) {
            const bool transpose_a = transpose & 1, transpose_b = transpose & 2;
            const size_t lda = transpose_a ? m : k;
            const size_t ldb = transpose_b ? k : n;
            tt_real *a = random_values(&rng, m * k);
            tt_real *b = random_values(&rng, k * n);
            tt_real *want = malloc(m * n * sizeof *want);
            tt_real *got = malloc(m * n * sizeof *got);
            ck_assert_ptr_nonnull(want);
            ck_assert_ptr_nonnull(got);
            tt_real *scratch = aligned_scratch(tt_gemm_scratch_total(kernel, 8, m, n, k));
            tt_gemm_run(kernel, scratch, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, want,
                        n, false);

            for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
                tt_pool *pool = tt_pool_new(thread_counts[t]);
                ck_assert_ptr_nonnull(pool);
                tt_gemm(pool, kernel, scratch, transpose_a, transpose_b, m, n, k, a, lda, b, ldb,
                        got, n, false);
                tt_pool_free(pool);
                ck_assert_msg(memcmp(got, want, m * n * sizeof *got) == 0,
                              "kernel %s, %zu threads, m=%zu n=%zu k=%zu, transpose case %d: "
                              "result differs from one thread",
                              kernel->name, thread_counts[t], m, n, k, transpose);
            }
            free(a);
            free(b);
            free(want);
            free(got);
            free(scratch);
        }
    }
}
END_TEST

/* How many calls covered each index. Ranges are disjoint, so threads
 * never increment the same counter. */
typedef struct range_record {
    unsigned visits[100];
} range_record;

static void record_range(void *context, size_t begin, size_t end)
{
    range_record *record = context;
    for (size_t i = begin; i < end; i++)
        record->visits[i]++;
}

/* tt_pool_run_ranges covers every index exactly once for any thread
 * count, and keeps a loop with too few items on the calling thread. */
START_TEST(pool_ranges_cover_each_index_once)
{
    const size_t thread_counts[] = {1, 2, 3, 5};
    const size_t counts[] = {1, 7, 40, 99, 100};
    const size_t min_ranges[] = {0, 1, 10, 30, 60};
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        tt_pool *pool = tt_pool_new(thread_counts[t]);
        ck_assert_ptr_nonnull(pool);
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            for (size_t r = 0; r < sizeof min_ranges / sizeof min_ranges[0]; r++) {
                range_record record = {{0}};
                tt_pool_run_ranges(pool, counts[c], min_ranges[r], record_range, &record);
                for (size_t i = 0; i < 100; i++)
                    ck_assert_msg(record.visits[i] == (i < counts[c] ? 1u : 0u),
                                  "%zu threads, count %zu, min_range %zu: index %zu visited "
                                  "%u times",
                                  thread_counts[t], counts[c], min_ranges[r], i,
                                  record.visits[i]);
            }
        }
        tt_pool_free(pool);
    }
}
END_TEST

/* What the tasks of one tt_pool_run saw. */
typedef struct task_record {
    size_t n_threads;
    _Atomic unsigned runs[64];    /* times each task ran */
    _Atomic unsigned bad_threads; /* tasks given a thread outside [0, n_threads) */
} task_record;

static void record_task(void *context, size_t task, size_t thread)
{
    task_record *record = context;
    atomic_fetch_add(&record->runs[task], 1);
    if (thread >= record->n_threads)
        atomic_fetch_add(&record->bad_threads, 1);
}

/* Threads claim tasks as they come free, and a worker may still be waking
 * from one run when the caller starts the next. Over many runs back to
 * back, each task must still run exactly once, in its own run only. */
START_TEST(pool_runs_each_task_once_in_runs_back_to_back)
{
    const size_t thread_counts[] = {2, 3};
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        tt_pool *pool = tt_pool_new(thread_counts[t]);
        ck_assert_ptr_nonnull(pool);
        for (size_t run = 0; run < 5000; run++) {
            const size_t n_tasks = 1 + run % 64;
            task_record record = {.n_threads = thread_counts[t]};
            tt_pool_run(pool, n_tasks, record_task, &record);
            for (size_t task = 0; task < 64; task++) {
                const unsigned want = task < n_tasks ? 1u : 0u;
                ck_assert_msg(atomic_load(&record.runs[task]) == want,
                              "%zu threads, run %zu of %zu tasks: task %zu ran %u times",
                              thread_counts[t], run, n_tasks, task,
                              atomic_load(&record.runs[task]));
            }
            ck_assert_uint_eq(atomic_load(&record.bad_threads), 0);
        }
        tt_pool_free(pool);
    }
}
END_TEST

/* The ranges that tt_pool_run_ranges is expected to make: their starts,
 * and the ends that the calls report. */
typedef struct range_split {
    size_t begins[8];
    size_t ends[8];
    size_t parts;
} range_split;

static void record_split(void *context, size_t begin, size_t end)
{
    range_split *split = context;
    /* A range's start identifies its part. Parts run concurrently, but
     * each writes only its own slot. */
    for (size_t part = 0; part < split->parts; part++) {
        if (split->begins[part] == begin) {
            split->ends[part] = end;
            return;
        }
    }
}

START_TEST(pool_ranges_respect_min_range)
{
    tt_pool *pool = tt_pool_new(3);
    ck_assert_ptr_nonnull(pool);

    /* 59 items with at least 30 per range: one range on the caller. */
    range_split single = {{0}, {0}, 1};
    tt_pool_run_ranges(pool, 59, 30, record_split, &single);
    ck_assert_uint_eq(single.ends[0], 59);

    /* 90 items, three threads, at least 30 per range: three ranges of 30. */
    range_split three = {{0, 30, 60}, {0, 0, 0}, 3};
    tt_pool_run_ranges(pool, 90, 30, record_split, &three);
    ck_assert_uint_eq(three.ends[0], 30);
    ck_assert_uint_eq(three.ends[1], 60);
    ck_assert_uint_eq(three.ends[2], 90);

    /* 70 items with at least 30 per range: two ranges, 35 each. */
    range_split two = {{0, 35}, {0, 0}, 2};
    tt_pool_run_ranges(pool, 70, 30, record_split, &two);
    ck_assert_uint_eq(two.ends[0], 35);
    ck_assert_uint_eq(two.ends[1], 70);

    tt_pool_free(pool);
}
END_TEST

/* A thread computes a slice of C in the scratch reserved for the whole
 * product, so no slice may need more scratch than the whole. */
START_TEST(gemm_scratch_covers_every_slice)
{
    const tt_gemm_kernel *kernel = tt_gemm_kernel_at(supported_kernels[_i]);
    const size_t extents[] = {1, 5, 6, 7, 64, 120, 128, 129, 257, 513, 4097};
    const size_t count = sizeof extents / sizeof extents[0];
    for (size_t im = 0; im < count; im++) {
        for (size_t in = 0; in < count; in++) {
            const size_t m = extents[im], n = extents[in], k = 300;
            const size_t whole = tt_gemm_scratch_size(kernel, m, n, k);
            for (size_t slice = 1; slice <= m || slice <= n; slice++) {
                const size_t rows = slice < m ? slice : m;
                const size_t cols = slice < n ? slice : n;
                const size_t need = tt_gemm_scratch_size(kernel, rows, cols, k);
                ck_assert_msg(need <= whole,
                              "kernel %s: a %zux%zu slice of a %zux%zu product needs %zu "
                              "scratch elements, the whole product %zu",
                              kernel->name, rows, cols, m, n, need, whole);
            }
        }
    }
}
END_TEST

START_TEST(gemm_best_kernel_is_supported)
{
    const tt_gemm_kernel *best = tt_gemm_kernel_best();
    ck_assert_ptr_nonnull(best);
    ck_assert_msg(best->supported(), "best kernel %s is not supported", best->name);
}
END_TEST

static Suite *gemm_suite(void)
{
    for (size_t index = 0; tt_gemm_kernel_at(index) != NULL; index++) {
        const tt_gemm_kernel *kernel = tt_gemm_kernel_at(index);
        if (kernel->supported() && supported_count < sizeof supported_kernels / sizeof(size_t))
            supported_kernels[supported_count++] = index;
        else
            printf("gemm: kernel %s is not supported by this CPU and is not tested\n",
                   kernel->name);
    }
    const int count = (int)supported_count;

    Suite *suite = suite_create("gemm");
    TCase *reference = add_test_case(suite, "reference");
    tcase_add_loop_test(reference, gemm_matches_reference_for_a_b, 0, count);
    tcase_add_loop_test(reference, gemm_matches_reference_for_a_bt, 0, count);
    tcase_add_loop_test(reference, gemm_matches_reference_for_at_b, 0, count);
    tcase_add_loop_test(reference, gemm_matches_reference_for_at_bt, 0, count);
    tcase_add_loop_test(reference, gemm_handles_several_column_blocks, 0, count);
    tcase_add_loop_test(reference, gemm_with_k_zero_clears_or_keeps_c, 0, count);
    tcase_add_loop_test(reference, gemm_threads_give_same_bits, 0, count);
    tcase_add_loop_test(reference, gemm_scratch_covers_every_slice, 0, count);
    tcase_add_test(reference, gemm_best_kernel_is_supported);
    TCase *pool = add_test_case(suite, "pool");
    tcase_add_test(pool, pool_runs_each_task_once_in_runs_back_to_back);
    tcase_add_test(pool, pool_ranges_cover_each_index_once);
    tcase_add_test(pool, pool_ranges_respect_min_range);
    return suite;
}

int main(void)
{
    return run_suite(gemm_suite());
}
