/* bench_gemm: single-thread GFLOP/s of tensortape's GEMM, side by side with
 * OpenBLAS's cblas_sgemm when the benchmark was built with it.
 *
 * The shapes are the three products of one training step of a 784-256-10
 * MLP layer at batch 64, in the samples-as-columns layout, and a square
 * 1024³ product:
 *     W·H      256×784 · 784×64     forward, z = W·h
 *     dZ·Hᵀ    256×64 · 64×784      weight gradient
 *     Wᵀ·dZ    784×256 · 256×64     input gradient
 *     1024³    1024×1024 · 1024×1024
 * Each round times both libraries on every shape, one after the other, for
 * at least MIN_ROUND_SECONDS each, so that both see the same load on a
 * shared machine. The table shows the median over the rounds and the ratio
 * of the medians (tensortape / OpenBLAS).
 *
 * Usage: bench_gemm [ROUNDS]   (default 7) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* cblas_sgemm takes float, so the comparison exists in the float build
 * only; the double build measures tensortape alone. */
#if defined(HAVE_OPENBLAS) && !TT_REAL_IS_DOUBLE
#define COMPARE_OPENBLAS 1
#include <cblas.h>
#else
#define COMPARE_OPENBLAS 0
#endif

/* Minimum time of one measurement, in seconds: long enough that the clock's
 * resolution and one-off stalls do not matter. */
#define MIN_ROUND_SECONDS 0.2

#define DEFAULT_ROUNDS 7
#define MAX_ROUNDS 101

typedef struct shape {
    const char *name;
    bool transpose_a, transpose_b;
    size_t m, n, k;
} shape;

static const shape shapes[] = {
    {"W*H       256x784 * 784x64", false, false, 256, 64, 784},
    {"dZ*H^T    256x64 * 64x784", false, true, 256, 784, 64},
    {"W^T*dZ    784x256 * 256x64", true, false, 784, 64, 256},
    {"square    1024^3", false, false, 1024, 1024, 1024},
};

#define SHAPE_COUNT (sizeof shapes / sizeof shapes[0])

static double seconds_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, size_t count)
{
    qsort(values, count, sizeof *values, compare_doubles);
    return count % 2 == 1 ? values[count / 2] : 0.5 * (values[count / 2 - 1] + values[count / 2]);
}

/* Operands and output of one shape, stored as the transposes require. */
typedef struct problem {
    const shape *shape;
    size_t lda, ldb;
    tt_real *a, *b, *c, *scratch;
} problem;

static void *aligned_or_exit(size_t elements)
{
    size_t bytes = (elements * sizeof(tt_real) + TT_ARENA_ALIGN - 1) / TT_ARENA_ALIGN *
                   TT_ARENA_ALIGN;
    void *block = aligned_alloc(TT_ARENA_ALIGN, bytes);
    if (block == NULL) {
        fprintf(stderr, "bench_gemm: out of memory for %zu elements\n", elements);
        exit(EXIT_FAILURE);
    }
    return block;
}

static problem problem_new(const shape *s, const tt_gemm_kernel *kernel, tt_rng *rng)
{
    problem p = {s, s->transpose_a ? s->m : s->k, s->transpose_b ? s->k : s->n, NULL, NULL, NULL,
                 NULL};
    p.a = aligned_or_exit(s->m * s->k);
    p.b = aligned_or_exit(s->k * s->n);
    p.c = aligned_or_exit(s->m * s->n);
    p.scratch = aligned_or_exit(tt_gemm_scratch_size(kernel, s->m, s->n, s->k));
    for (size_t i = 0; i < s->m * s->k; i++)
        p.a[i] = (tt_real)(tt_rng_uniform(rng) - 0.5);
    for (size_t i = 0; i < s->k * s->n; i++)
        p.b[i] = (tt_real)(tt_rng_uniform(rng) - 0.5);
    return p;
}

static void problem_free(problem *p)
{
    free(p->a);
    free(p->b);
    free(p->c);
    free(p->scratch);
}

static void run_tensortape(const tt_gemm_kernel *kernel, const problem *p)
{
    const shape *s = p->shape;
    tt_gemm_run(kernel, p->scratch, s->transpose_a, s->transpose_b, s->m, s->n, s->k, p->a, p->lda,
                p->b, p->ldb, p->c, s->n, false);
}

#if COMPARE_OPENBLAS
static void run_openblas(const problem *p)
{
    const shape *s = p->shape;
    cblas_sgemm(CblasRowMajor, s->transpose_a ? CblasTrans : CblasNoTrans,
                s->transpose_b ? CblasTrans : CblasNoTrans, (int)s->m, (int)s->n, (int)s->k, 1.0f,
                p->a, (int)p->lda, p->b, (int)p->ldb, 0.0f, p->c, (int)s->n);
}
#endif

/* Returns GFLOP/s of `run` on p, repeating it until MIN_ROUND_SECONDS pass. */
static double measure(void (*run)(const tt_gemm_kernel *, const problem *),
                      const tt_gemm_kernel *kernel, const problem *p)
{
    const double flops = 2.0 * (double)p->shape->m * (double)p->shape->n * (double)p->shape->k;
    run(kernel, p); /* warm the caches and the packing buffers */
    size_t repeats = 0;
    double start = seconds_now();
    double elapsed = 0;
    do {
        run(kernel, p);
        repeats++;
        elapsed = seconds_now() - start;
    } while (elapsed < MIN_ROUND_SECONDS);
    return flops * (double)repeats / elapsed * 1e-9;
}

#if COMPARE_OPENBLAS
static void run_openblas_adapter(const tt_gemm_kernel *kernel, const problem *p)
{
    (void)kernel;
    run_openblas(p);
}
#endif

int main(int argc, char **argv)
{
    size_t rounds = DEFAULT_ROUNDS;
    if (argc > 1) {
        char *end = NULL;
        unsigned long parsed = strtoul(argv[1], &end, 10);
        if (argc > 2 || *end != '\0' || parsed == 0 || parsed > MAX_ROUNDS) {
            fprintf(stderr, "usage: bench_gemm [ROUNDS], with ROUNDS from 1 to %d\n", MAX_ROUNDS);
            return 2;
        }
        rounds = parsed;
    }
    const tt_gemm_kernel *kernel = tt_gemm_kernel_best();
    printf("tensortape kernel: %s (one thread)\n", kernel->name);
#if COMPARE_OPENBLAS
    openblas_set_num_threads(1);
    printf("OpenBLAS kernel:   %s (one thread)\n", openblas_get_corename());
#else
    printf("OpenBLAS: not compared (not found, or a double build); only tensortape is "
           "measured\n");
#endif
    printf("rounds: %zu, median GFLOP/s\n\n", rounds);
    printf("%-30s %12s %12s %8s\n", "product", "tensortape", "OpenBLAS", "ratio");

    tt_rng rng;
    tt_rng_seed(&rng, 1);
    for (size_t s = 0; s < SHAPE_COUNT; s++) {
        problem p = problem_new(&shapes[s], kernel, &rng);
        double ours[MAX_ROUNDS];
        double theirs[MAX_ROUNDS];
        for (size_t r = 0; r < rounds; r++) {
            ours[r] = measure(run_tensortape, kernel, &p);
#if COMPARE_OPENBLAS
            theirs[r] = measure(run_openblas_adapter, kernel, &p);
#else
            theirs[r] = 0;
#endif
        }
        double ours_median = median(ours, rounds);
        double theirs_median = median(theirs, rounds);
        if (theirs_median > 0)
            printf("%-30s %12.1f %12.1f %8.2f\n", shapes[s].name, ours_median, theirs_median,
                   ours_median / theirs_median);
        else
            printf("%-30s %12.1f %12s %8s\n", shapes[s].name, ours_median, "-", "-");
        fflush(stdout);
        problem_free(&p);
    }
    return 0;
}
