/* Matrix products for matmul's forward and backward passes.
 *
 * Each transpose case has its own loop order, chosen so that the innermost
 * loop runs over contiguous memory and the compiler can vectorise it
 * without reassociating floating-point sums:
 *   A·B    row of C += A[i,p] · row p of B      (axpy over C's row)
 *   A·Bᵀ   C[i,j] = row i of A · row j of B     (dot product, 8 lanes)
 *   Aᵀ·B   row of C += A[p,i] · row p of B      (axpy over C's row)
 *   Aᵀ·Bᵀ  C[i,j] = column i of A · row j of B  (strided; unused by the ops)
 * The order in which each sum is formed depends only on the shapes, so a
 * result is the same on every run.
 *
 * TODO: these loops reach a fraction of the core's peak; a packed,
 * cache-blocked kernel with register tiles is the planned replacement. */
#include <string.h>

#include "internal.h"

/* Rows of C computed together in the axpy cases, so that each loaded row
 * of B serves this many rows of C. */
#define ROW_BLOCK 4

/* Independent partial sums in a dot product: enough for the compiler to use
 * full vector registers while every sum keeps a fixed order. */
#define DOT_LANES 8

static void clear_rows(tt_real *c, size_t ldc, size_t rows, size_t n)
{
    for (size_t r = 0; r < rows; r++)
        memset(c + r * ldc, 0, n * sizeof(tt_real));
}

/* C += op(A)·B with B not transposed, for rows [i0, i0 + rows) of C, where
 * the element op(A)[i, p] is at a[i * a_row_step + p * a_col_step]. */
static void axpy_rows(size_t i0, size_t rows, size_t n, size_t k, const tt_real *a,
                      size_t a_row_step, size_t a_col_step, const tt_real *b, size_t ldb,
                      tt_real *c, size_t ldc)
{
    if (rows == ROW_BLOCK) {
        tt_real *c0 = c + (i0 + 0) * ldc;
        tt_real *c1 = c + (i0 + 1) * ldc;
        tt_real *c2 = c + (i0 + 2) * ldc;
        tt_real *c3 = c + (i0 + 3) * ldc;
        for (size_t p = 0; p < k; p++) {
            const tt_real *b_row = b + p * ldb;
            const tt_real a0 = a[(i0 + 0) * a_row_step + p * a_col_step];
            const tt_real a1 = a[(i0 + 1) * a_row_step + p * a_col_step];
            const tt_real a2 = a[(i0 + 2) * a_row_step + p * a_col_step];
            const tt_real a3 = a[(i0 + 3) * a_row_step + p * a_col_step];
            for (size_t j = 0; j < n; j++) {
                const tt_real bj = b_row[j];
                c0[j] += a0 * bj;
                c1[j] += a1 * bj;
                c2[j] += a2 * bj;
                c3[j] += a3 * bj;
            }
        }
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        tt_real *c_row = c + (i0 + r) * ldc;
        for (size_t p = 0; p < k; p++) {
            const tt_real *b_row = b + p * ldb;
            const tt_real a_ip = a[(i0 + r) * a_row_step + p * a_col_step];
            for (size_t j = 0; j < n; j++)
                c_row[j] += a_ip * b_row[j];
        }
    }
}

/* Dot product of two contiguous vectors of length k, in DOT_LANES partial
 * sums that are added in a fixed order at the end. */
static tt_real dot(const tt_real *x, const tt_real *y, size_t k)
{
    tt_real lanes[DOT_LANES] = {0};
    size_t p = 0;
    for (; p + DOT_LANES <= k; p += DOT_LANES)
        for (size_t l = 0; l < DOT_LANES; l++)
            lanes[l] += x[p + l] * y[p + l];
    for (size_t l = 0; p < k; p++, l++)
        lanes[l] += x[p] * y[p];

    tt_real sum = 0;
    for (size_t l = 0; l < DOT_LANES; l++)
        sum += lanes[l];
    return sum;
}

void tt_gemm(bool transpose_a, bool transpose_b, size_t m, size_t n, size_t k,
             const tt_real *a, size_t lda, const tt_real *b, size_t ldb, tt_real *c,
             size_t ldc, bool accumulate)
{
    if (!accumulate)
        clear_rows(c, ldc, m, n);

    if (!transpose_b) {
        /* op(A)[i, p] is A[i, p] or, transposed, A[p, i]. */
        const size_t a_row_step = transpose_a ? 1 : lda;
        const size_t a_col_step = transpose_a ? lda : 1;
        size_t i = 0;
        for (; i + ROW_BLOCK <= m; i += ROW_BLOCK)
            axpy_rows(i, ROW_BLOCK, n, k, a, a_row_step, a_col_step, b, ldb, c, ldc);
        if (i < m)
            axpy_rows(i, m - i, n, k, a, a_row_step, a_col_step, b, ldb, c, ldc);
        return;
    }

    if (!transpose_a) {
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                c[i * ldc + j] += dot(a + i * lda, b + j * ldb, k);
        return;
    }

    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            tt_real sum = 0;
            for (size_t p = 0; p < k; p++)
                sum += a[p * lda + i] * b[j * ldb + p];
            c[i * ldc + j] += sum;
        }
    }
}
