/* Elementwise activations: sigmoid, tanh, leaky ReLU and softplus.
 *
 * Shapes: x is any rows × cols; out has x's shape. In an MLP, x is z(t)
 * and out is h(t) (eq. 2 with g the activation).
 * Saves: leaky ReLU saves its slope; the others save nothing, because
 * backward rereads x.
 * Gradient: dx += dout · g'(x), with g' written out beside each kernel.
 *
 * The activations share one file because they share everything but their
 * two kernels: the recording glue below and the stable sigmoid, which
 * sigmoid, its own derivative and softplus's derivative all use.
 *
 * Every formula is chosen so that a finite x gives a finite output and a
 * derivative that is exact to rounding, including tails such as
 * sigmoid'(40) ≈ 4.2e-18 that the textbook forms round to 0.
 */
#include <math.h>

#include "tensortape.h"
#include "internal.h"

/* ---- Shared helpers ------------------------------------------------------ */

/* 1 / (1 + exp(−x)) without overflow: for x < 0 it is computed as
 * e / (1 + e) with e = exp(x), which lies in (0, 1]. A NaN x takes the
 * second branch and gives NaN. */
static tt_real stable_sigmoid(tt_real x)
{
    if (x >= 0)
        return 1 / (1 + TT_EXP(-x));
    const tt_real e = TT_EXP(x);
    return e / (1 + e);
}

/* A forward kernel: out[i] = g(x[i]) with the op's parameter, if any. */
typedef void (*forward_kernel)(tt_real *out, const tt_real *x, size_t size, tt_real parameter);

/* A backward kernel: dx[i] += dout[i] · g'(x[i]), or dx[i] = that when add
 * is false. */
typedef void (*backward_kernel)(tt_real *restrict dx, bool add, const tt_real *restrict dout,
                                const tt_real *restrict x, size_t size, tt_real parameter);

/* dx += dout · derivative, or dx = that when add is false. */
static inline void store_gradient(tt_real *dx, bool add, tt_real value)
{
    if (add)
        *dx += value;
    else
        *dx = value;
}

/* The parameter saved by the record, or 0 for an op without one. */
static tt_real saved_parameter(const tt_record *record)
{
    return record->saved == NULL ? 0 : *(const tt_real *)record->saved;
}

static void run_backward(const tt_record *record, backward_kernel backward)
{
    tt_tensor *x = record->inputs[0];
    if (x->grad != NULL)
        backward(x->grad, tt_grad_accumulates(x), record->output->grad, x->data,
                 tt_tensor_size(x), saved_parameter(record));
}

/* Records an activation: checks x, computes out = g(x) and, when
 * `parameter` is not NULL, saves *parameter for backward. */
static tt_tensor *record_activation(tt_tape *tape, const tt_op *op, forward_kernel forward,
                                    tt_tensor *x, const tt_real *parameter)
{
    tt_tensor *const inputs[] = {x};
    const char *const roles[] = {"x"};
    if (!tt_op_begin(tape, op, inputs, roles))
        return NULL;

    tt_tensor *out = tt_op_output(tape, op, inputs, x->rows, x->cols);
    if (out == NULL)
        return NULL;
    tt_real *saved = NULL;
    if (parameter != NULL) {
        saved = tt_op_save(tape, op, sizeof *saved);
        if (saved == NULL)
            return NULL;
        *saved = *parameter;
    }
    forward(out->data, x->data, tt_tensor_size(x), parameter == NULL ? 0 : *parameter);
    tt_op_record(tape, op, inputs, out, saved);
    return out;
}

/* Whether an element of x is on different sides of the kink at 0 in the two
 * records. The side is x > 0, the condition that picks the right-hand
 * slope in backward. */
static bool crosses_kink_at_zero(const tt_record *base, const tt_record *moved)
{
    const tt_real *base_x = base->inputs[0]->data;
    const tt_real *moved_x = moved->inputs[0]->data;
    const size_t size = tt_tensor_size(base->inputs[0]);
    for (size_t i = 0; i < size; i++)
        if ((base_x[i] > 0) != (moved_x[i] > 0))
            return true;
    return false;
}

/* ---- sigmoid ------------------------------------------------------------- */

static void sigmoid_forward(tt_real *out, const tt_real *x, size_t size, tt_real unused)
{
    (void)unused;
    for (size_t i = 0; i < size; i++)
        out[i] = stable_sigmoid(x[i]);
}

/* sigmoid'(x) = y·(1 − y) = e / (1 + e)² with e = exp(−|x|). The second
 * form is used because 1 − y cancels to 0 once y rounds to 1 (x above
 * about 17 in float, 37 in double), while the true derivative is e. */
static void sigmoid_backward(tt_real *restrict dx, bool add, const tt_real *restrict dout,
                             const tt_real *restrict x, size_t size, tt_real unused)
{
    (void)unused;
    for (size_t i = 0; i < size; i++) {
        const tt_real e = TT_EXP(-TT_FABS(x[i]));
        const tt_real derivative = e / ((1 + e) * (1 + e));
        store_gradient(&dx[i], add, dout[i] * derivative);
    }
}

static void sigmoid_tape_backward(const tt_record *record)
{
    run_backward(record, sigmoid_backward);
}

static const tt_op sigmoid_op = {
    .name = "sigmoid",
    .n_inputs = 1,
    .backward = sigmoid_tape_backward,
};

tt_tensor *tt_sigmoid(tt_tape *tape, tt_tensor *x)
{
    return record_activation(tape, &sigmoid_op, sigmoid_forward, x, NULL);
}

/* ---- tanh ---------------------------------------------------------------- */

static void tanh_forward(tt_real *out, const tt_real *x, size_t size, tt_real unused)
{
    (void)unused;
    for (size_t i = 0; i < size; i++)
        out[i] = TT_TANH(x[i]);
}

/* tanh'(x) = 1 − y² = 4e / (1 + e)² with e = exp(−2|x|). As for sigmoid,
 * the second form keeps the tail that 1 − y² loses once |y| rounds to 1
 * (|x| above about 9 in float, 19 in double). */
static void tanh_backward(tt_real *restrict dx, bool add, const tt_real *restrict dout,
                          const tt_real *restrict x, size_t size, tt_real unused)
{
    (void)unused;
    for (size_t i = 0; i < size; i++) {
        const tt_real e = TT_EXP(-2 * TT_FABS(x[i]));
        const tt_real derivative = 4 * e / ((1 + e) * (1 + e));
        store_gradient(&dx[i], add, dout[i] * derivative);
    }
}

static void tanh_tape_backward(const tt_record *record)
{
    run_backward(record, tanh_backward);
}

static const tt_op tanh_op = {
    .name = "tanh",
    .n_inputs = 1,
    .backward = tanh_tape_backward,
};

tt_tensor *tt_tanh(tt_tape *tape, tt_tensor *x)
{
    return record_activation(tape, &tanh_op, tanh_forward, x, NULL);
}

/* ---- leaky ReLU ---------------------------------------------------------- */

/* x where x is not below 0, slope·x where it is. A zero slope gives 0
 * without multiplying, so that −inf maps to 0 as in relu instead of to
 * 0·(−inf) = NaN. NaN stays NaN and −0 stays −0. */
static void leaky_relu_forward(tt_real *out, const tt_real *x, size_t size, tt_real slope)
{
    for (size_t i = 0; i < size; i++) {
        const tt_real below = slope == 0 ? 0 : slope * x[i];
        out[i] = x[i] < 0 ? below : x[i];
    }
}

/* dx += dout where x > 0 and slope·dout elsewhere, so the kink at exactly 0
 * (and a NaN x) gets the left-hand slope. */
static void leaky_relu_backward(tt_real *restrict dx, bool add, const tt_real *restrict dout,
                                const tt_real *restrict x, size_t size, tt_real slope)
{
    for (size_t i = 0; i < size; i++) {
        const tt_real upstream = dout[i];
        store_gradient(&dx[i], add, x[i] > 0 ? upstream : slope * upstream);
    }
}

static void leaky_relu_tape_backward(const tt_record *record)
{
    run_backward(record, leaky_relu_backward);
}

static const tt_op leaky_relu_op = {
    .name = "leaky_relu",
    .n_inputs = 1,
    .backward = leaky_relu_tape_backward,
    .crosses_kink = crosses_kink_at_zero,
};

tt_tensor *tt_leaky_relu(tt_tape *tape, tt_tensor *x, tt_real slope)
{
    if (tape != NULL && tt_tape_status(tape) == TT_OK && !isfinite(slope)) {
        tt_tape_fail(tape, TT_ERR_ARG, "leaky_relu: slope is %g; it must be finite",
                     (double)slope);
        return NULL;
    }
    return record_activation(tape, &leaky_relu_op, leaky_relu_forward, x, &slope);
}

/* ---- softplus ------------------------------------------------------------ */

/* log(1 + exp(x)) = max(x, 0) + log1p(exp(−|x|)): the exponent is never
 * positive, so nothing overflows, and log1p keeps the tail exp(x) for
 * very negative x. NaN stays NaN through the second term. */
static void softplus_forward(tt_real *out, const tt_real *x, size_t size, tt_real unused)
{
    (void)unused;
    for (size_t i = 0; i < size; i++) {
        const tt_real positive_part = x[i] > 0 ? x[i] : 0;
        out[i] = positive_part + TT_LOG1P(TT_EXP(-TT_FABS(x[i])));
    }
}

/* softplus'(x) = sigmoid(x). */
static void softplus_backward(tt_real *restrict dx, bool add, const tt_real *restrict dout,
                              const tt_real *restrict x, size_t size, tt_real unused)
{
    (void)unused;
    for (size_t i = 0; i < size; i++)
        store_gradient(&dx[i], add, dout[i] * stable_sigmoid(x[i]));
}

static void softplus_tape_backward(const tt_record *record)
{
    run_backward(record, softplus_backward);
}

static const tt_op softplus_op = {
    .name = "softplus",
    .n_inputs = 1,
    .backward = softplus_tape_backward,
};

tt_tensor *tt_softplus(tt_tape *tape, tt_tensor *x)
{
    return record_activation(tape, &softplus_op, softplus_forward, x, NULL);
}
