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

/* dx += dc summed over x's repeated dimensions, for one operand x. */
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

/* dx += dc summed over x's repeated dimensions, for one operand x, or
 * dx = that sum when add is false. */
static void add_backward(tt_real *dx, bool add, broadcast_view vx, const tt_real *dc,
                         size_t rows, size_t cols)
{
    const bool repeated_rows = vx.row_step == 0 && rows > 1;
    if (!add && repeated_rows) {
        /* Every row of dc adds into the same row of dx, so start it at 0. */
        const size_t size = vx.col_step == 1 ? cols : 1;
        for (size_t i = 0; i < size; i++)
            dx[i] = 0;
        add = true;
    }

    for (size_t r = 0; r < rows; r++) {
        tt_real *dx_row = dx + r * vx.row_step;
        const tt_real *dc_row = dc + r * cols;
        if (vx.col_step == 1 && add) {
            for (size_t i = 0; i < cols; i++)
                dx_row[i] += dc_row[i];
        } else if (vx.col_step == 1) {
            for (size_t i = 0; i < cols; i++)
                dx_row[i] = dc_row[i];
        } else {
            const tt_real sum = row_sum(dc_row, cols);
            dx_row[0] = add ? dx_row[0] + sum : sum;
        }
    }
}

static void add_tape_backward(const tt_record *record)
{
    const tt_tensor *c = record->output;
    for (size_t i = 0; i < 2; i++) {
        tt_tensor *x = record->inputs[i];
        if (x->grad != NULL)
            add_backward(x->grad, tt_grad_accumulates(x), view_of(x), c->grad, c->rows, c->cols);
    }
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
    add_forward(c->data, a->data, view_of(a), b->data, view_of(b), rows, cols);
    tt_op_record(tape, &add_op, inputs, c, NULL);
    return c;
}
