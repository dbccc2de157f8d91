/* relu: out = max(0, x), elementwise (eq. 15).
 *
 * Shapes: x is any rows × cols; out has x's shape. In an MLP, x is z(t)
 * and out is h(t) (eq. 2 with g = ReLU).
 * Saves nothing: backward rereads x.
 * Gradient: dx += dout where x > 0, and nothing elsewhere, so the kink at
 * exactly 0 gets derivative 0 (eq. 16). The gradient checker learns of the
 * kink through relu_crosses_kink.
 */
#include "tensortape.h"
#include "internal.h"

/* Written as eq. 15 reads, "0 if x < 0, x otherwise", so that NaN passes
 * through instead of becoming 0. */
static void relu_forward(tt_real *out, const tt_real *x, size_t size)
{
    for (size_t i = 0; i < size; i++)
        out[i] = x[i] < 0 ? 0 : x[i];
}

/* dx += dout where x > 0, or dx = that when add is false. dout is read for
 * every element, not only where x > 0, so that the compiler can turn the
 * choice into a vector select instead of a branch. */
static void relu_backward(tt_real *restrict dx, bool add, const tt_real *restrict dout,
                          const tt_real *restrict x, size_t size)
{
    if (!add) {
        for (size_t i = 0; i < size; i++) {
            const tt_real upstream = dout[i];
            dx[i] = x[i] > 0 ? upstream : 0;
        }
        return;
    }
    for (size_t i = 0; i < size; i++) {
        const tt_real upstream = dout[i];
        dx[i] += x[i] > 0 ? upstream : 0;
    }
}

/* One pass of relu over the tape's threads: each range of elements goes
 * to one thread. Elementwise, so the split does not change any bit. */
typedef struct relu_job {
    tt_real *out;        /* forward: out; backward: dx */
    const tt_real *x;
    const tt_real *dout; /* NULL for the forward pass */
    bool add;
} relu_job;

static void relu_range(void *context, size_t begin, size_t end)
{
    const relu_job *job = context;
    if (job->dout == NULL)
        relu_forward(job->out + begin, job->x + begin, end - begin);
    else
        relu_backward(job->out + begin, job->add, job->dout + begin, job->x + begin,
                      end - begin);
}

static void relu_tape_backward(const tt_record *record)
{
    tt_tensor *x = record->inputs[0];
    if (x->grad == NULL)
        return;
    relu_job job = {x->grad, x->data, record->output->grad, tt_grad_accumulates(x)};
    tt_pool_run_ranges(record->output->tape->pool, tt_tensor_size(x), TT_PARALLEL_MIN_ELEMENTS,
                       relu_range, &job);
}

/* Whether an element of x is on different sides of the kink at 0 in the two
 * records. The side is x > 0, the condition of eq. 16, so moving x from 0
 * to above 0 counts as a crossing and moving it from 0 to below does not. */
static bool relu_crosses_kink(const tt_record *base, const tt_record *moved)
{
    const tt_real *base_x = base->inputs[0]->data;
    const tt_real *moved_x = moved->inputs[0]->data;
    const size_t size = tt_tensor_size(base->inputs[0]);
    for (size_t i = 0; i < size; i++)
        if ((base_x[i] > 0) != (moved_x[i] > 0))
            return true;
    return false;
}

static const tt_op relu_op = {
    .name = "relu",
    .n_inputs = 1,
    .backward = relu_tape_backward,
    .crosses_kink = relu_crosses_kink,
};

tt_tensor *tt_relu(tt_tape *tape, tt_tensor *x)
{
    tt_tensor *const inputs[] = {x};
    const char *const roles[] = {"x"};
    if (!tt_op_begin(tape, &relu_op, inputs, roles))
        return NULL;

    tt_tensor *out = tt_op_output(tape, &relu_op, inputs, x->rows, x->cols);
    if (out == NULL)
        return NULL;
    relu_job job = {out->data, x->data, NULL, false};
    tt_pool_run_ranges(tape->pool, tt_tensor_size(x), TT_PARALLEL_MIN_ELEMENTS, relu_range, &job);
    tt_op_record(tape, &relu_op, inputs, out, NULL);
    return out;
}
