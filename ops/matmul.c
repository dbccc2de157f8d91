/* matmul: C = A·B, the product in eq. 1 and 3 (z = W·h before the bias).
 *
 * Shapes: A is m × k, B is k × n, C is m × n. In an MLP layer A is the
 * weight W(t) (d_t × d_(t-1)), B the previous activations h(t-1)
 * (d_(t-1) × n) and C is W(t)·h(t-1) (d_t × n).
 * Saves nothing: backward rereads A and B.
 * Gradients: dA += dC·Bᵀ (m × k) and dB += Aᵀ·dC (k × n). tt_gemm_run
 * reads the transposed operand in place, so no transpose is ever formed.
 */
#include "tensortape.h"
#include "internal.h"

static tt_status check_shapes(tt_tape *tape, const tt_tensor *a, const tt_tensor *b)
{
    if (a->cols == b->rows)
        return TT_OK;
    char a_label[TT_LABEL_MAX];
    char b_label[TT_LABEL_MAX];
    tt_tensor_label(a, "A", a_label);
    tt_tensor_label(b, "B", b_label);
    tt_tape_fail(tape, TT_ERR_SHAPE,
                 "matmul: %s is %zux%zu but %s is %zux%zu; the columns of A must equal the "
                 "rows of B",
                 a_label, a->rows, a->cols, b_label, b->rows, b->cols);
    return TT_ERR_SHAPE;
}

/* c (m × n) = a (m × k) · b (k × n); overwrites c. */
static void matmul_forward(const tt_tape *tape, tt_real *c, const tt_real *a, const tt_real *b,
                           size_t m, size_t k, size_t n)
{
    tt_gemm(tape->pool, tape->gemm_kernel, tape->gemm_scratch, false, false, m, n, k, a, k, b, n,
            c, n, false);
}

/* da (m × k) += dc·bᵀ, or = when add_a is false. */
static void matmul_backward_a(const tt_tape *tape, tt_real *da, bool add_a, const tt_real *dc,
                              const tt_real *b, size_t m, size_t k, size_t n)
{
    tt_gemm(tape->pool, tape->gemm_kernel, tape->gemm_scratch, false, true, m, k, n, dc, n, b, n,
            da, k, add_a);
}

/* db (k × n) += aᵀ·dc, or = when add_b is false. */
static void matmul_backward_b(const tt_tape *tape, tt_real *db, bool add_b, const tt_real *dc,
                              const tt_real *a, size_t m, size_t k, size_t n)
{
    tt_gemm(tape->pool, tape->gemm_kernel, tape->gemm_scratch, true, false, k, n, m, a, k, dc, n,
            db, n, add_b);
}

static void matmul_tape_backward(const tt_record *record)
{
    tt_tensor *a = record->inputs[0];
    tt_tensor *b = record->inputs[1];
    const tt_tape *tape = record->output->tape;
    const tt_real *dc = record->output->grad;
    /* A before B, so that for matmul(x, x) the second product adds to the
     * first. */
    if (a->grad != NULL)
        matmul_backward_a(tape, a->grad, tt_grad_accumulates(a), dc, b->data, a->rows, a->cols,
                          b->cols);
    if (b->grad != NULL)
        matmul_backward_b(tape, b->grad, tt_grad_accumulates(b), dc, a->data, a->rows, a->cols,
                          b->cols);
}

static const tt_op matmul_op = {.name = "matmul", .n_inputs = 2, .backward = matmul_tape_backward};

/* Scratch elements for the forward product and both backward products,
 * so that backward never has to allocate. Both backward products count even
 * if an operand has no gradient yet, because the caller may give it one
 * between this op and the backward pass. */
static size_t scratch_needed(const tt_tape *tape, const tt_tensor *a, const tt_tensor *b)
{
    const tt_gemm_kernel *kernel = tape->gemm_kernel;
    const size_t threads = tt_pool_threads(tape->pool);
    const size_t m = a->rows;
    const size_t k = a->cols;
    const size_t n = b->cols;
    size_t size = tt_gemm_scratch_total(kernel, threads, m, n, k);
    size_t da_size = tt_gemm_scratch_total(kernel, threads, m, k, n);
    size_t db_size = tt_gemm_scratch_total(kernel, threads, k, n, m);
    size = da_size > size ? da_size : size;
    return db_size > size ? db_size : size;
}

tt_tensor *tt_matmul(tt_tape *tape, tt_tensor *a, tt_tensor *b)
{
    tt_tensor *const inputs[] = {a, b};
    const char *const roles[] = {"A", "B"};
    if (!tt_op_begin(tape, &matmul_op, inputs, roles))
        return NULL;
    if (check_shapes(tape, a, b) != TT_OK)
        return NULL;
    if (!tt_op_reserve_gemm_scratch(tape, &matmul_op, scratch_needed(tape, a, b)))
        return NULL;

    tt_tensor *c = tt_op_output(tape, &matmul_op, inputs, a->rows, b->cols);
    if (c == NULL)
        return NULL;
    matmul_forward(tape, c->data, a->data, b->data, a->rows, a->cols, b->cols);
    tt_op_record(tape, &matmul_op, inputs, c, NULL);
    return c;
}
