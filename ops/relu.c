/* relu: out = max(0, x), elementwise (eq. 15).
 *
 * Shapes: x is any rows × cols; out has x's shape. In an MLP, x is z(t)
 * and out is h(t) (eq. 2 with g = ReLU).
 * Saves nothing: backward rereads x.
 * Gradient: dx += dout where x > 0, and nothing elsewhere, so the kink at
 * exactly 0 gets derivative 0 (eq. 16).
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

/* dout is read for every element, not only where x > 0, so that the
 * compiler can turn the choice into a vector select instead of a branch. */
static void relu_backward(tt_real *restrict dx, const tt_real *restrict dout,
                          const tt_real *restrict x, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        const tt_real upstream = dout[i];
        dx[i] += x[i] > 0 ? upstream : 0;
    }
}

static void relu_tape_backward(const tt_record *record)
{
    tt_tensor *x = record->inputs[0];
    if (x->grad != NULL)
        relu_backward(x->grad, record->output->grad, x->data, tt_tensor_size(x));
}

static const tt_op relu_op = {"relu", 1, relu_tape_backward};

tt_tensor *tt_relu(tt_tape *tape, tt_tensor *x)
{
    tt_tensor *const inputs[] = {x};
    const char *const roles[] = {"x"};
    if (!tt_op_begin(tape, &relu_op, inputs, roles))
        return NULL;

    tt_tensor *out = tt_op_output(tape, &relu_op, inputs, x->rows, x->cols);
    if (out == NULL)
        return NULL;
    relu_forward(out->data, x->data, tt_tensor_size(x));
    tt_op_record(tape, &relu_op, inputs, out, NULL);
    return out;
}
