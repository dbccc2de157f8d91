/* Matrix products for matmul's forward and backward passes: a packed,
 * cache-blocked GEMM in the manner of BLIS.
 *
 * Layers, outermost first:
 *   tt_gemm_run   splits C into column blocks of nc and the sum into
 *                 blocks of kc; packs a kc × nc block of op(B) into panels
 *                 of nr columns; for each block of mc rows packs op(A)
 *                 into panels of mr rows and calls the macro-kernel.
 *   macro_kernel  walks the mr × nr tiles of that block, handing full
 *                 tiles to the micro-kernel and routing edge tiles
 *                 through a small buffer, so micro-kernels never see an
 *                 edge.
 *   micro-kernel  computes one mr × nr tile from an mr-row panel of A and
 *                 an nr-column panel of B, keeping the tile in registers.
 *
 * Packed layouts (k runs along the panel):
 *   A panel: for p in 0..kc: the mr values op(A)[i0 .. i0+mr, p]
 *   B panel: for p in 0..kc: the nr values op(B)[p, j0 .. j0+nr]
 * Rows or columns past the edge of the matrix are packed as zeros.
 *
 * Packing reads op(A) and op(B) through a row step and a column step, so
 * a transposed operand is read in place and never copied out first.
 *
 * Order of summation: each element of C is the sum over p in increasing
 * order, one kc block after another. That order depends only on the shape
 * and the kernel, never on timing, so every run gives the same bits.
 * Kernels differ in rounding, since the AVX2 kernel uses fused
 * multiply-add. */
#include <stdint.h>
#include <string.h>

#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

/* ---- Portable micro-kernel ------------------------------------------- */

#define PORTABLE_MR 4
#define PORTABLE_NR 8

/* c (mr × nr, row step ldc) = or += A · b_panel over k, where
 * A[i, p] = a[i * row_step + p * col_step]. */
static void tile_portable(size_t k, const tt_real *a, size_t row_step, size_t col_step,
                          const tt_real *b, tt_real *c, size_t ldc, bool accumulate)
{
    tt_real acc[PORTABLE_MR][PORTABLE_NR] = {{0}};
    for (size_t p = 0; p < k; p++) {
        for (size_t i = 0; i < PORTABLE_MR; i++)
            for (size_t j = 0; j < PORTABLE_NR; j++)
                acc[i][j] += a[i * row_step] * b[j];
        a += col_step;
        b += PORTABLE_NR;
    }
    for (size_t i = 0; i < PORTABLE_MR; i++) {
        tt_real *c_row = c + i * ldc;
        for (size_t j = 0; j < PORTABLE_NR; j++)
            c_row[j] = accumulate ? c_row[j] + acc[i][j] : acc[i][j];
    }
}

static bool always_supported(void)
{
    return true;
}

/* ---- AVX2 + FMA micro-kernel (float) --------------------------------- */

#if HAVE_X86 && !TT_REAL_IS_DOUBLE
#define AVX2_MR 6
#define AVX2_NR 16

/* Twelve accumulators (6 rows × 2 vectors of 8) plus two B vectors and one
 * broadcast A value use 15 of the 16 ymm registers. A[i, p] is at
 * a[i * row_step + p * col_step]; the callers below fix one step to 1 so
 * that the compiler turns the six A addresses into fixed offsets or a
 * fixed set of row pointers. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
tile_avx2_body(size_t k, const float *a, size_t row_step, size_t col_step, const float *b,
               float *c, size_t ldc, bool accumulate)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    const float *a0 = a;
    const float *a1 = a + row_step;
    const float *a2 = a + 2 * row_step;
    const float *a3 = a + 3 * row_step;
    const float *a4 = a + 4 * row_step;
    const float *a5 = a + 5 * row_step;

    for (size_t p = 0; p < k; p++) {
        const size_t offset = p * col_step;
        const __m256 b0 = _mm256_load_ps(b);
        const __m256 b1 = _mm256_load_ps(b + 8);
        __m256 ai;
        ai = _mm256_broadcast_ss(a0 + offset);
        c00 = _mm256_fmadd_ps(ai, b0, c00);
        c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a1 + offset);
        c10 = _mm256_fmadd_ps(ai, b0, c10);
        c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a2 + offset);
        c20 = _mm256_fmadd_ps(ai, b0, c20);
        c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a3 + offset);
        c30 = _mm256_fmadd_ps(ai, b0, c30);
        c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a4 + offset);
        c40 = _mm256_fmadd_ps(ai, b0, c40);
        c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a5 + offset);
        c50 = _mm256_fmadd_ps(ai, b0, c50);
        c51 = _mm256_fmadd_ps(ai, b1, c51);
        b += AVX2_NR;
    }

    __m256 rows[AVX2_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                               {c30, c31}, {c40, c41}, {c50, c51}};
    for (size_t i = 0; i < AVX2_MR; i++) {
        float *c_row = c + i * ldc;
        if (accumulate) {
            rows[i][0] = _mm256_add_ps(rows[i][0], _mm256_loadu_ps(c_row));
            rows[i][1] = _mm256_add_ps(rows[i][1], _mm256_loadu_ps(c_row + 8));
        }
        _mm256_storeu_ps(c_row, rows[i][0]);
        _mm256_storeu_ps(c_row + 8, rows[i][1]);
    }
}

__attribute__((target("avx2,fma"))) static void tile_avx2(size_t k, const float *a,
                                                          size_t row_step, size_t col_step,
                                                          const float *b, float *c, size_t ldc,
                                                          bool accumulate)
{
    if (row_step == 1)
        tile_avx2_body(k, a, 1, col_step, b, c, ldc, accumulate);
    else if (col_step == 1)
        tile_avx2_body(k, a, row_step, 1, b, c, ldc, accumulate);
    else
        tile_avx2_body(k, a, row_step, col_step, b, c, ldc, accumulate);
}

static bool avx2_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

/* ---- Kernel table ---------------------------------------------------- */

/* Fastest first. Block sizes: an A panel (mr × kc) and a B panel
 * (kc × nr) fit in the L1 cache together, a packed mc × kc block of A in
 * L2, and nc bounds the packed B block. */
static const tt_gemm_kernel kernels[] = {
#if HAVE_X86 && !TT_REAL_IS_DOUBLE
    {"avx2", AVX2_MR, AVX2_NR, 120, 256, 4080, avx2_supported, tile_avx2},
#endif
    {"portable", PORTABLE_MR, PORTABLE_NR, 128, 256, 4096, always_supported, tile_portable},
};

#define KERNEL_COUNT (sizeof kernels / sizeof kernels[0])

const tt_gemm_kernel *tt_gemm_kernel_at(size_t index)
{
    return index < KERNEL_COUNT ? &kernels[index] : NULL;
}

const tt_gemm_kernel *tt_gemm_kernel_best(void)
{
    for (size_t i = 0; i < KERNEL_COUNT; i++)
        if (kernels[i].supported())
            return &kernels[i];
    return &kernels[KERNEL_COUNT - 1];
}

/* ---- Packing --------------------------------------------------------- */

static size_t round_up(size_t value, size_t multiple)
{
    return (value + multiple - 1) / multiple * multiple;
}

/* Largest mr or nr of any kernel. */
#define MAX_PANEL 16

/* Packs rows [0, m) × columns [0, k) of a matrix read as x[i*rs + p*cs]
 * into panels of `mr` rows, padding the last panel with zero rows. Each
 * step p writes mr consecutive values, so the output is written in order. */
static inline __attribute__((always_inline)) void
pack_a_panels(tt_real *dst, const tt_real *x, size_t rs, size_t cs, size_t m, size_t k, size_t mr)
{
    for (size_t i0 = 0; i0 < m; i0 += mr) {
        const size_t rows = m - i0 < mr ? m - i0 : mr;
        if (rows == mr && cs == 1) {
            const tt_real *row[MAX_PANEL];
            for (size_t i = 0; i < mr; i++)
                row[i] = x + (i0 + i) * rs;
            for (size_t p = 0; p < k; p++)
                for (size_t i = 0; i < mr; i++)
                    dst[p * mr + i] = row[i][p];
        } else if (rows == mr && rs == 1) {
            /* Transposed: the mr values of each step p are contiguous. */
            for (size_t p = 0; p < k; p++)
                for (size_t i = 0; i < mr; i++)
                    dst[p * mr + i] = x[i0 + p * cs + i];
        } else {
            for (size_t p = 0; p < k; p++) {
                const tt_real *column = x + i0 * rs + p * cs;
                for (size_t i = 0; i < rows; i++)
                    dst[p * mr + i] = column[i * rs];
                for (size_t i = rows; i < mr; i++)
                    dst[p * mr + i] = 0;
            }
        }
        dst += mr * k;
    }
}

/* Packs rows [0, k) × columns [0, n) of a matrix read as x[p*rs + j*cs]
 * into panels of `nr` columns, padding the last panel with zero columns. */
static inline __attribute__((always_inline)) void
pack_b_panels(tt_real *dst, const tt_real *x, size_t rs, size_t cs, size_t k, size_t n, size_t nr)
{
    for (size_t j0 = 0; j0 < n; j0 += nr) {
        const size_t cols = n - j0 < nr ? n - j0 : nr;
        if (cols == nr && cs == 1) {
            for (size_t p = 0; p < k; p++)
                for (size_t j = 0; j < nr; j++)
                    dst[p * nr + j] = x[p * rs + j0 + j];
        } else if (cols == nr && rs == 1) {
            /* Transposed: column j of op(B) is contiguous in memory. */
            const tt_real *column[MAX_PANEL];
            for (size_t j = 0; j < nr; j++)
                column[j] = x + (j0 + j) * cs;
            for (size_t p = 0; p < k; p++)
                for (size_t j = 0; j < nr; j++)
                    dst[p * nr + j] = column[j][p];
        } else {
            for (size_t p = 0; p < k; p++) {
                const tt_real *row = x + p * rs + j0 * cs;
                for (size_t j = 0; j < cols; j++)
                    dst[p * nr + j] = row[j * cs];
                for (size_t j = cols; j < nr; j++)
                    dst[p * nr + j] = 0;
            }
        }
        dst += nr * k;
    }
}

/* The panel widths of the kernels in the table get copies of the packing
 * loops in which the width is a constant, so the compiler can unroll the
 * inner loops instead of testing the width at every element. */
static void pack_a(tt_real *dst, const tt_real *x, size_t rs, size_t cs, size_t m, size_t k,
                   size_t mr)
{
    if (mr == 6)
        pack_a_panels(dst, x, rs, cs, m, k, 6);
    else if (mr == 4)
        pack_a_panels(dst, x, rs, cs, m, k, 4);
    else
        pack_a_panels(dst, x, rs, cs, m, k, mr);
}

static void pack_b(tt_real *dst, const tt_real *x, size_t rs, size_t cs, size_t k, size_t n,
                   size_t nr)
{
    if (nr == 16)
        pack_b_panels(dst, x, rs, cs, k, n, 16);
    else if (nr == 8)
        pack_b_panels(dst, x, rs, cs, k, n, 8);
    else
        pack_b_panels(dst, x, rs, cs, k, n, nr);
}

/* ---- Macro-kernel and driver ----------------------------------------- */

/* Products with at most this many columns read a non-transposed A in
 * place instead of packing it (see tt_gemm_run): each element of A then
 * serves at most 16 B panels of the AVX2 kernel. Chosen from bench_gemm
 * runs on a Zen 3 core, where reading in place was faster at 64 columns
 * and no slower at 256. */
#ifndef DIRECT_A_MAX_COLUMNS
#define DIRECT_A_MAX_COLUMNS 256
#endif

/* Largest mr × nr of any kernel, for the edge-tile buffer. */
#define MAX_TILE (MAX_PANEL * MAX_PANEL)

/* The rows of A that a macro-kernel call multiplies: either packed into
 * panels of mr rows (panel_step elements apart, row step 1, column step
 * mr), or read in place with the operand's own steps. */
typedef struct a_block {
    const tt_real *data;
    size_t row_step, col_step;
    bool packed;
    tt_real *edge_panel; /* space for one packed panel, for the last rows of
                          * an unpacked block */
} a_block;

static void macro_kernel(const tt_gemm_kernel *kernel, size_t m, size_t n, size_t k,
                         a_block a, const tt_real *b_pack, tt_real *c, size_t ldc,
                         bool accumulate)
{
    const size_t mr = kernel->mr;
    const size_t nr = kernel->nr;

    /* Rows past the edge of an unpacked block do not exist, so its last,
     * partial panel is packed with zero padding. */
    const size_t full_rows = m - m % mr;
    if (!a.packed && full_rows < m)
        pack_a(a.edge_panel, a.data + full_rows * a.row_step, a.row_step, a.col_step,
               m - full_rows, k, mr);

    /* Each B panel stays in the L1 cache while every A panel of the block
     * passes by it. */
    for (size_t j0 = 0; j0 < n; j0 += nr) {
        const size_t cols = n - j0 < nr ? n - j0 : nr;
        const tt_real *b_panel = b_pack + (j0 / nr) * nr * k;
        for (size_t i0 = 0; i0 < m; i0 += mr) {
            const size_t rows = m - i0 < mr ? m - i0 : mr;
            const tt_real *a_panel = a.edge_panel;
            size_t row_step = 1;
            size_t col_step = mr;
            if (a.packed) {
                a_panel = a.data + (i0 / mr) * mr * k;
            } else if (rows == mr) {
                a_panel = a.data + i0 * a.row_step;
                row_step = a.row_step;
                col_step = a.col_step;
            }

            tt_real *c_tile = c + i0 * ldc + j0;
            if (rows == mr && cols == nr) {
                kernel->tile(k, a_panel, row_step, col_step, b_panel, c_tile, ldc, accumulate);
                continue;
            }
            tt_real edge[MAX_TILE];
            kernel->tile(k, a_panel, row_step, col_step, b_panel, edge, nr, false);
            for (size_t i = 0; i < rows; i++)
                for (size_t j = 0; j < cols; j++)
                    c_tile[i * ldc + j] = accumulate ? c_tile[i * ldc + j] + edge[i * nr + j]
                                                     : edge[i * nr + j];
        }
    }
}

/* Returns the block size that splits `extent` into the fewest blocks of at
 * most `max_block`, as evenly as possible, rounded up to a multiple of
 * `unit`. For example, 784 with a maximum of 256 gives four blocks of 196
 * instead of three of 256 and a thin one of 16. */
static size_t balanced_block(size_t extent, size_t max_block, size_t unit)
{
    if (extent <= max_block)
        return round_up(extent, unit);
    const size_t blocks = (extent + max_block - 1) / max_block;
    const size_t block = round_up((extent + blocks - 1) / blocks, unit);
    return block < max_block ? block : max_block;
}

/* The cache blocks for an m × n × k product. The k block depends on k
 * alone, so splitting m or n over threads keeps every sum's order. */
static void block_sizes(const tt_gemm_kernel *kernel, size_t m, size_t n, size_t k, size_t *mc,
                        size_t *nc, size_t *kc)
{
    *kc = balanced_block(k, kernel->kc, 1);
    *mc = balanced_block(m, kernel->mc, kernel->mr);
    *nc = balanced_block(n, kernel->nc, kernel->nr);
}

/* Whether tt_gemm_run packs A for a product with n columns. Packing A pays
 * off when each packed panel serves many B panels. With few columns,
 * reading A's rows in place saves a pass over A; a transposed A is still
 * packed, because reading its mr values per step of k in place touches a
 * new cache line at every step. */
static bool a_is_packed(bool transpose_a, size_t n)
{
    return transpose_a || n > DIRECT_A_MAX_COLUMNS;
}

size_t tt_gemm_scratch_size(const tt_gemm_kernel *kernel, size_t m, size_t n, size_t k)
{
    /* The largest blocks of any product up to m × n × k, not the balanced
     * blocks of this one. A thread that computes a slice of C runs a smaller
     * product, whose balanced blocks can be larger: 128 rows alone make one
     * block of 128, while 257 rows make three of 88. */
    const size_t kc = k < kernel->kc ? k : kernel->kc;
    const size_t mc = round_up(m < kernel->mc ? m : kernel->mc, kernel->mr);
    const size_t nc = round_up(n < kernel->nc ? n : kernel->nc, kernel->nr);
    /* One packed A block and one packed B block, each padded so that the
     * B block starts on a 32-byte boundary for aligned vector loads. */
    return round_up(mc * kc, 8) + nc * kc;
}

void tt_gemm_run(const tt_gemm_kernel *kernel, tt_real *scratch, bool transpose_a,
                 bool transpose_b, size_t m, size_t n, size_t k, const tt_real *a, size_t lda,
                 const tt_real *b, size_t ldb, tt_real *c, size_t ldc, bool accumulate)
{
    if (k == 0) {
        if (!accumulate)
            for (size_t i = 0; i < m; i++)
                memset(c + i * ldc, 0, n * sizeof(tt_real));
        return;
    }
    /* op(A)[i, p] = a[i*a_rs + p*a_cs]; op(B)[p, j] = b[p*b_rs + j*b_cs]. */
    const size_t a_rs = transpose_a ? 1 : lda;
    const size_t a_cs = transpose_a ? lda : 1;
    const size_t b_rs = transpose_b ? 1 : ldb;
    const size_t b_cs = transpose_b ? ldb : 1;

    size_t mc_block, nc_block, kc_block;
    block_sizes(kernel, m, n, k, &mc_block, &nc_block, &kc_block);
    /* The B block starts where tt_gemm_scratch_size put it, after the
     * largest A block, which is at least as large as this product's. */
    const size_t kc_max = k < kernel->kc ? k : kernel->kc;
    const size_t mc_max = round_up(m < kernel->mc ? m : kernel->mc, kernel->mr);
    tt_real *a_pack = scratch;
    tt_real *b_pack = scratch + round_up(mc_max * kc_max, 8);

    const bool pack_a_blocks = a_is_packed(transpose_a, n);

    for (size_t jc = 0; jc < n; jc += nc_block) {
        const size_t nc = n - jc < nc_block ? n - jc : nc_block;
        for (size_t pc = 0; pc < k; pc += kc_block) {
            const size_t kc = k - pc < kc_block ? k - pc : kc_block;
            /* The first kc block overwrites C unless the caller accumulates;
             * later blocks add to what the earlier ones wrote. */
            const bool add = accumulate || pc > 0;
            pack_b(b_pack, b + pc * b_rs + jc * b_cs, b_rs, b_cs, kc, nc, kernel->nr);
            for (size_t ic = 0; ic < m; ic += mc_block) {
                const size_t mc = m - ic < mc_block ? m - ic : mc_block;
                const tt_real *a_source = a + ic * a_rs + pc * a_cs;
                a_block block = {a_source, a_rs, a_cs, false, a_pack};
                if (pack_a_blocks) {
                    pack_a(a_pack, a_source, a_rs, a_cs, mc, kc, kernel->mr);
                    block.data = a_pack;
                    block.packed = true;
                }
                macro_kernel(kernel, mc, nc, kc, block, b_pack, c + ic * ldc + jc, ldc, add);
            }
        }
    }
}

/* ---- Splitting a product over threads -------------------------------- */

/* Products with fewer multiply-adds than this run on the calling thread
 * alone, because waking the workers costs tens of microseconds. This is an
 * estimate: at about 50 GFLOP/s such a product takes about 40 µs. */
#define PARALLEL_MIN_MULTIPLY_ADDS ((size_t)1 << 20)

/* Elements between two threads' scratch areas: a whole scratch for the
 * product, rounded up to keep every area aligned to TT_ARENA_ALIGN. */
static size_t scratch_stride(const tt_gemm_kernel *kernel, size_t m, size_t n, size_t k)
{
    return round_up(tt_gemm_scratch_size(kernel, m, n, k), TT_ARENA_ALIGN / sizeof(tt_real));
}

size_t tt_gemm_scratch_total(const tt_gemm_kernel *kernel, size_t n_threads, size_t m, size_t n,
                             size_t k)
{
    return n_threads * scratch_stride(kernel, m, n, k);
}

typedef struct gemm_job {
    const tt_gemm_kernel *kernel;
    tt_real *scratch;
    size_t stride; /* scratch elements per part */
    bool transpose_a, transpose_b;
    size_t m, n, k;
    const tt_real *a;
    size_t lda;
    const tt_real *b;
    size_t ldb;
    tt_real *c;
    size_t ldc;
    bool accumulate;
    bool split_rows; /* parts are row ranges of C, else column ranges */
    size_t tiles;    /* mr-row or nr-column tiles along the split dimension */
    size_t parts;
} gemm_job;

/* Computes part `part` of the job's C: a contiguous range of whole tiles
 * along the split dimension, with its own scratch. */
static void gemm_part(void *context, size_t part, size_t thread)
{
    const gemm_job *job = context;
    const size_t tile = job->split_rows ? job->kernel->mr : job->kernel->nr;
    const size_t extent = job->split_rows ? job->m : job->n;
    const size_t first = part * job->tiles / job->parts * tile;
    size_t last = (part + 1) * job->tiles / job->parts * tile;
    if (last > extent)
        last = extent;
    if (first >= last)
        return;

    tt_real *scratch = job->scratch + thread * job->stride;
    if (job->split_rows) {
        const tt_real *a = job->a + (job->transpose_a ? first : first * job->lda);
        tt_gemm_run(job->kernel, scratch, job->transpose_a, job->transpose_b, last - first, job->n,
                    job->k, a, job->lda, job->b, job->ldb, job->c + first * job->ldc, job->ldc,
                    job->accumulate);
    } else {
        const tt_real *b = job->b + (job->transpose_b ? first * job->ldb : first);
        tt_gemm_run(job->kernel, scratch, job->transpose_a, job->transpose_b, job->m,
                    last - first, job->k, job->a, job->lda, b, job->ldb, job->c + first, job->ldc,
                    job->accumulate);
    }
}

void tt_gemm(tt_pool *pool, const tt_gemm_kernel *kernel, tt_real *scratch, bool transpose_a,
             bool transpose_b, size_t m, size_t n, size_t k, const tt_real *a, size_t lda,
             const tt_real *b, size_t ldb, tt_real *c, size_t ldc, bool accumulate)
{
    const size_t threads = tt_pool_threads(pool);
    const size_t row_tiles = (m + kernel->mr - 1) / kernel->mr;
    const size_t column_tiles = (n + kernel->nr - 1) / kernel->nr;
    const bool small = m * n < PARALLEL_MIN_MULTIPLY_ADDS / (k > 0 ? k : 1);
    if (threads == 1 || small || (row_tiles < 2 && column_tiles < 2)) {
        tt_gemm_run(kernel, scratch, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, c, ldc,
                    accumulate);
        return;
    }

    /* Each thread packs the operand blocks its slice needs, so the
     * operand that the split does not divide is packed by every thread.
     * Split C's columns when A is read in place (then nothing is packed
     * twice), and otherwise the dimension whose split repeats the smaller
     * packing: a row split repeats op(B), k × n, and a column split
     * repeats op(A), m × k. A dimension with a single tile cannot be
     * split. Each element of C is formed by the same sums in the same
     * order whatever the split. */
    gemm_job job = {kernel, scratch, scratch_stride(kernel, m, n, k), transpose_a, transpose_b,
                    m, n, k, a, lda, b, ldb, c, ldc, accumulate, false, 0, 0};
    if (row_tiles < 2)
        job.split_rows = false;
    else if (column_tiles < 2)
        job.split_rows = true;
    else if (!a_is_packed(transpose_a, n))
        job.split_rows = false;
    else
        job.split_rows = n <= m;
    job.tiles = job.split_rows ? row_tiles : column_tiles;
    job.parts = job.tiles < threads ? job.tiles : threads;
    tt_pool_run(pool, job.parts, gemm_part, &job);
}
