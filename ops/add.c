/* add: C = A + B, elementwise with broadcasting; in an MLP layer it adds
 * the bias, z(t) = W(t)·h(t-1) + b(t) (eq. 1), with b(t) (d_t × 1)
 * repeated across the n columns.
 *
 * Shapes: C is max(rows) × max(cols) of A and B. In each dimension an
 * operand either has C's size or size 1, and a size-1 dimension is
 * repeated: equal shapes, d×1 + d×n, 1×n + d×n, 1×1 + any, either way
 * round, and d×1 + 1×n.
 * Saves nothing.
 * Gradients: dA += dC summed over the dimensions along which A was
 * repeated, and likewise dB; for a bias this is the row sum of dC
 * (eq. 14, a d_t × 1 column here where eq. 14 writes a row).
 */
#include "tensortape.h"
#include "internal.h"

/* One operand seen through C's shape: element (r, c) of C reads
 * data[r * row_step + c * col_step], where a step is 0 along a repeated
 * dimension. */
typedef struct broadcast_view {
    size_t row_step;
    size_t col_step;
} broadcast_view;

static broadcast_view view_of(const tt_tensor *t)
{
    broadcast_view view = {t->rows == 1 ? 0 : t->cols, t->cols == 1 ? 0 : 1};
    return view;
}

static bool dimension_broadcasts(size_t a, size_t b)
{
    return a == b || a == 1 || b == 1;
}

static tt_status check_shapes(tt_tape *tape, const tt_tensor *a, const tt_tensor *b)
{
    if (dimension_broadcasts(a->rows, b->rows) && dimension_broadcasts(a->cols, b->cols))
        return TT_OK;
    char a_label[TT_LABEL_MAX];
    char b_label[TT_LABEL_MAX];
    tt_tensor_label(a, "A", a_label);
    tt_tensor_label(b, "B", b_label);
    tt_tape_fail(tape, TT_ERR_SHAPE,
                 "add: %s is %zux%zu but %s is %zux%zu; in each dimension the sizes must be "
                 "equal or one of them 1",
                 a_label, a->rows, a->cols, b_label, b->rows, b->cols);
    return TT_ERR_SHAPE;
}

/* c (rows × cols) = a + b through their views; overwrites c. The inner
 * loops are split by step so that each is a plain vectorisable loop. */
static void add_forward(tt_real *c, const tt_real *a, broadcast_view va, const tt_real *b,
                        broadcast_view vb, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        const tt_real *a_row = a + r * va.row_step;
        const tt_real *b_row = b + r * vb.row_step;
        tt_real *c_row = c + r * cols;
        if (va.col_step == 1 && vb.col_step == 1) {
            for (size_t i = 0; i < cols; i++)
                c_row[i] = a_row[i] + b_row[i];
        } else if (va.col_step == 1) {
            for (size_t i = 0; i < cols; i++)
                c_row[i] = a_row[i] + b_row[0];
        } else if (vb.col_step == 1) {
            for (size_t i = 0; i < cols; i++)
                c_row[i] = a_row[0] + b_row[i];
        } else {
            for (size_t i = 0; i < cols; i++)
                c_row[i] = a_row[0] + b_row[0];
        }
    }
}

/* The forward pass over a range of rows of C, for the tape's threads. */
typedef struct add_forward_job {
    tt_real *c;
    const tt_real *a;
    broadcast_view va;
    const tt_real *b;
    broadcast_view vb;
    size_t cols;
} add_forward_job;

static void add_forward_range(void *context, size_t begin, size_t end)
{
    const add_forward_job *job = context;
    add_forward(job->c + begin * job->cols, job->a + begin * job->va.row_step, job->va,
                job->b + begin * job->vb.row_step, job->vb, end - begin, job->cols);
}

/* Minimum number of rows of `cols` elements that make
 * TT_PARALLEL_MIN_ELEMENTS. */
static size_t min_rows(size_t cols)
{
    return (TT_PARALLEL_MIN_ELEMENTS + cols - 1) / cols;
}

/* Independent partial sums in a row sum, so that the compiler can keep
 * them in one vector register while each sum keeps a fixed order. */
#define ROW_SUM_LANES 8

static tt_real row_sum(const tt_real *row, size_t cols)
{
    tt_real lanes[ROW_SUM_LANES] = {0};
    size_t i = 0;
    for (; i + ROW_SUM_LANES <= cols; i += ROW_SUM_LANES)
        for (size_t l = 0; l < ROW_SUM_LANES; l++)
            lanes[l] += row[i + l];
    for (size_t l = 0; i < cols; i++, l++)
        lanes[l] += row[i];

    tt_real sum = 0;
    for (size_t l = 0; l < ROW_SUM_LANES; l++)
        sum += lanes[l];
    return sum;
}

/* One operand's part of the backward pass: its gradient, whether the step
 * adds to it, and how it was repeated. */
typedef struct operand_grad {
    tt_real *dx; /* NULL when the operand takes no gradient */
    bool add;
    broadcast_view view;
} operand_grad;

/* dx += dc summed over x's repeated dimensions, or dx = that sum when
 * x.add is false, for rows [begin, end) of dc (rows × cols). A repeated
 * row dimension (x is 1 × cols or 1 × 1 while dc has several rows) sums
 * down the columns, so such an operand must get all rows in one call.
 * Its gradient must then already contain a value to add to (see
 * add_tape_backward). */
static void add_backward_rows(operand_grad x, const tt_real *dc, size_t begin, size_t end,
                              size_t cols)
{
    for (size_t r = begin; r < end; r++) {
        tt_real *dx_row = x.dx + r * x.view.row_step;
        const tt_real *dc_row = dc + r * cols;
        if (x.view.col_step == 1 && x.add) {
            for (size_t i = 0; i < cols; i++)
                dx_row[i] += dc_row[i];
        } else if (x.view.col_step == 1) {
            for (size_t i = 0; i < cols; i++)
                dx_row[i] = dc_row[i];
        } else {
            const tt_real sum = row_sum(dc_row, cols);
            dx_row[0] = x.add ? dx_row[0] + sum : sum;
        }
    }
}

/* The backward pass of one add over a range of rows of dc. It handles both
 * operands one small block of rows at a time, so that each row of dc is
 * read from memory once.
 * For a bias add, the copy into the product's gradient and the bias
 * gradient's row sum (eq. 14) thus come from one pass. */
typedef struct add_backward_job {
    operand_grad operands[2];
    const tt_real *dc;
    size_t cols;
} add_backward_job;

/* Elements of dc in a block of rows that both operands handle in turn: 8
 * KiB of float, which stays in the L1 cache between the two passes. */
#define BACKWARD_BLOCK_ELEMENTS 2048

static void add_backward_range(void *context, size_t begin, size_t end)
{
    const add_backward_job *job = context;
    size_t block_rows = BACKWARD_BLOCK_ELEMENTS / job->cols;
    if (block_rows == 0)
        block_rows = 1;
    for (size_t first = begin; first < end; first += block_rows) {
        const size_t last = end - first < block_rows ? end : first + block_rows;
        for (size_t i = 0; i < 2; i++)
            if (job->operands[i].dx != NULL)
                add_backward_rows(job->operands[i], job->dc, first, last, job->cols);
    }
}

static void add_tape_backward(const tt_record *record)
{
    const tt_tensor *c = record->output;
    add_backward_job job = {{{NULL, false, {0, 0}}, {NULL, false, {0, 0}}}, c->grad, c->cols};
    bool rows_independent = true;
    for (size_t i = 0; i < 2; i++) {
        tt_tensor *x = record->inputs[i];
        if (x->grad == NULL)
            continue;
        operand_grad *operand = &job.operands[i];
        operand->dx = x->grad;
        operand->add = tt_grad_accumulates(x);
        operand->view = view_of(x);
        if (operand->view.row_step == 0 && c->rows > 1) {
            rows_independent = false;
            /* Every row of dc adds into the same row of dx, so start it
             * at 0 unless it already contains a value. */
            if (!operand->add) {
                const size_t size = operand->view.col_step == 1 ? c->cols : 1;
                for (size_t j = 0; j < size; j++)
                    operand->dx[j] = 0;
                operand->add = true;
            }
        }
    }
    /* Rows go to threads whole, so every row sum keeps its order. An
     * operand repeated down the rows sums across rows, so then the calling
     * thread does all of them. */
    if (rows_independent)
        tt_pool_run_ranges(c->tape->pool, c->rows, min_rows(c->cols), add_backward_range, &job);
    else
        add_backward_range(&job, 0, c->rows);
}

static const tt_op add_op = {.name = "add", .n_inputs = 2, .backward = add_tape_backward};

tt_tensor *tt_add(tt_tape *tape, tt_tensor *a, tt_tensor *b)
{
    tt_tensor *const inputs[] = {a, b};
    const char *const roles[] = {"A", "B"};
    if (!tt_op_begin(tape, &add_op, inputs, roles))
        return NULL;
    if (check_shapes(tape, a, b) != TT_OK)
        return NULL;

    size_t rows = a->rows > b->rows ? a->rows : b->rows;
    size_t cols = a->cols > b->cols ? a->cols : b->cols;
    tt_tensor *c = tt_op_output(tape, &add_op, inputs, rows, cols);
    if (c == NULL)
        return NULL;
    add_forward_job job = {c->data, a->data, view_of(a), b->data, view_of(b), cols};
    tt_pool_run_ranges(tape->pool, rows, min_rows(cols), add_forward_range, &job);
    tt_op_record(tape, &add_op, inputs, c, NULL);
    return c;
}
