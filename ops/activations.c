/* Elementwise activations: sigmoid, tanh, leaky ReLU, softplus, ELU, SiLU
 * and GELU, exact and in its tanh approximation.
 *
 * Shapes: x is any rows × cols; out has x's shape. In an MLP, x is z(t)
 * and out is h(t) (eq. 2 with g the activation).
 * Saves: leaky ReLU saves its slope and ELU its alpha; the others save
 * nothing, because backward rereads x.
 * Gradient: dx += dout · g'(x), with g' written out beside each kernel.
 *
 * The activations share one file because they share everything but their
 * two kernels: the recording glue below and the stable sigmoid of
 * src/internal.h, which sigmoid, softplus's derivative, SiLU and the tanh
 * form of GELU all use.
 *
 * Every formula is chosen so that a finite x gives a finite output and a
 * derivative that is exact to rounding, including tails such as
 * sigmoid'(40) ≈ 4.2e-18 that the textbook forms round to 0.
 */
#include <math.h>

#include "tensortape.h"
#include "internal.h"

/* ---- Shared helpers ------------------------------------------------------ */

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
        out[i] = tt_stable_sigmoid(x[i]);
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
        store_gradient(&dx[i], add, dout[i] * tt_stable_sigmoid(x[i]));
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

/* ---- ELU ----------------------------------------------------------------- */

/* x for x > 0, alpha·(exp(x) − 1) elsewhere. expm1 keeps the value
 * alpha·x for tiny negative x, which exp(x) − 1 would round away. */
static void elu_forward(tt_real *out, const tt_real *x, size_t size, tt_real alpha)
{
    for (size_t i = 0; i < size; i++)
        out[i] = x[i] > 0 ? x[i] : alpha * TT_EXPM1(x[i]);
}

/* ELU'(x) = 1 for x > 0 and alpha·exp(x) elsewhere, so the kink at exactly
 * 0 gets the left-hand slope alpha. alpha·exp(x) is used in place of the
 * equal y + alpha, which cancels for very negative x. */
static void elu_backward(tt_real *restrict dx, bool add, const tt_real *restrict dout,
                         const tt_real *restrict x, size_t size, tt_real alpha)
{
    for (size_t i = 0; i < size; i++) {
        const tt_real derivative = x[i] > 0 ? 1 : alpha * TT_EXP(x[i]);
        store_gradient(&dx[i], add, dout[i] * derivative);
    }
}

static void elu_tape_backward(const tt_record *record)
{
    run_backward(record, elu_backward);
}

/* ELU has a kink at 0 unless alpha is 1, where both slopes meet at 1. */
static bool elu_crosses_kink(const tt_record *base, const tt_record *moved)
{
    if (saved_parameter(base) == 1)
        return false;
    return crosses_kink_at_zero(base, moved);
}

static const tt_op elu_op = {
    .name = "elu",
    .n_inputs = 1,
    .backward = elu_tape_backward,
    .crosses_kink = elu_crosses_kink,
};

tt_tensor *tt_elu(tt_tape *tape, tt_tensor *x, tt_real alpha)
{
    if (tape != NULL && tt_tape_status(tape) == TT_OK && !isfinite(alpha)) {
        tt_tape_fail(tape, TT_ERR_ARG, "elu: alpha is %g; it must be finite", (double)alpha);
        return NULL;
    }
    return record_activation(tape, &elu_op, elu_forward, x, &alpha);
}

/* ---- SiLU ---------------------------------------------------------------- */

/* x·sigmoid(x). Where sigmoid(x) is 0 the output is 0 without multiplying,
 * so that −inf gives 0 instead of −inf·0 = NaN. */
static void silu_forward(tt_real *out, const tt_real *x, size_t size, tt_real unused)
{
    (void)unused;
    for (size_t i = 0; i < size; i++) {
        const tt_real s = tt_stable_sigmoid(x[i]);
        out[i] = s == 0 ? 0 : x[i] * s;
    }
}

/* SiLU'(x) = s + x·s·(1 − s) = s·(1 + x·sigmoid(−x)) with s = sigmoid(x).
 * At ±inf the product is inf·0, so the limits 1 and 0 are set directly. */
static void silu_backward(tt_real *restrict dx, bool add, const tt_real *restrict dout,
                          const tt_real *restrict x, size_t size, tt_real unused)
{
    (void)unused;
    for (size_t i = 0; i < size; i++) {
        tt_real derivative;
        if (isinf(x[i]))
            derivative = x[i] > 0 ? 1 : 0;
        else
            derivative = tt_stable_sigmoid(x[i]) * (1 + x[i] * tt_stable_sigmoid(-x[i]));
        store_gradient(&dx[i], add, dout[i] * derivative);
    }
}

static void silu_tape_backward(const tt_record *record)
{
    run_backward(record, silu_backward);
}

static const tt_op silu_op = {
    .name = "silu",
    .n_inputs = 1,
    .backward = silu_tape_backward,
};

tt_tensor *tt_silu(tt_tape *tape, tt_tensor *x)
{
    return record_activation(tape, &silu_op, silu_forward, x, NULL);
}

/* ---- GELU, exact --------------------------------------------------------- */

/* 1/√2 and 1/√(2π), to more digits than a double carries. */
#define INV_SQRT_2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794

/* The standard normal distribution function Φ(x) = erfc(−x/√2) / 2. erfc
 * keeps the lower tail, which 1 + erf(x/√2) cancels to 0 below about −5.5
 * in float. */
static tt_real normal_cdf(tt_real x)
{
    return (tt_real)0.5 * TT_ERFC(-x * (tt_real)INV_SQRT_2);
}

/* x·Φ(x). Where Φ(x) is 0 the output is 0 without multiplying, so that
 * −inf gives 0 instead of NaN. */
static void gelu_forward(tt_real *out, const tt_real *x, size_t size, tt_real unused)
{
    (void)unused;
    for (size_t i = 0; i < size; i++) {
        const tt_real cdf = normal_cdf(x[i]);
        out[i] = cdf == 0 ? 0 : x[i] * cdf;
    }
}

/* GELU'(x) = Φ(x) + x·φ(x), with φ(x) = exp(−x²/2)/√(2π). For large
 * finite |x|, x² overflows to inf and φ to 0, which is its value to
 * rounding; at ±inf x·φ is inf·0, so the limits 1 and 0 are set directly. */
static void gelu_backward(tt_real *restrict dx, bool add, const tt_real *restrict dout,
                          const tt_real *restrict x, size_t size, tt_real unused)
{
    (void)unused;
    for (size_t i = 0; i < size; i++) {
        tt_real derivative;
        if (isinf(x[i])) {
            derivative = x[i] > 0 ? 1 : 0;
        } else {
            const tt_real density = (tt_real)INV_SQRT_2PI * TT_EXP(-x[i] * x[i] / 2);
            derivative = normal_cdf(x[i]) + x[i] * density;
        }
        store_gradient(&dx[i], add, dout[i] * derivative);
    }
}

static void gelu_tape_backward(const tt_record *record)
{
    run_backward(record, gelu_backward);
}

static const tt_op gelu_op = {
    .name = "gelu",
    .n_inputs = 1,
    .backward = gelu_tape_backward,
};

tt_tensor *tt_gelu(tt_tape *tape, tt_tensor *x)
{
    return record_activation(tape, &gelu_op, gelu_forward, x, NULL);
}

/* ---- GELU, tanh approximation --------------------------------------------- */

/* √(2/π) and the cubic coefficient of the approximation. */
#define SQRT_2_OVER_PI 0.79788456080286535588
#define GELU_CUBIC 0.044715

/* The argument u = √(2/π)·(x + 0.044715·x³) of the approximation. x³
 * overflows to ±inf for large |x|, which only saturates the sigmoid. */
static tt_real gelu_tanh_argument(tt_real x)
{
    return (tt_real)SQRT_2_OVER_PI * (x + (tt_real)GELU_CUBIC * x * x * x);
}

/* x·(1 + tanh(u))/2, computed as x·sigmoid(2u), which is equal and keeps
 * the lower tail that 1 + tanh(u) cancels to 0. Where the sigmoid is 0 the
 * output is 0 without multiplying, so that −inf gives 0 instead of NaN. */
static void gelu_tanh_forward(tt_real *out, const tt_real *x, size_t size, tt_real unused)
{
    (void)unused;
    for (size_t i = 0; i < size; i++) {
        const tt_real s = tt_stable_sigmoid(2 * gelu_tanh_argument(x[i]));
        out[i] = s == 0 ? 0 : x[i] * s;
    }
}

/* With s = sigmoid(2u): y' = s + x·2·s·(1 − s)·u', where
 * u' = √(2/π)·(1 + 3·0.044715·x²) and 1 − s is taken as sigmoid(−2u).
 * Where s·(1 − s) is 0 the second term is 0 without multiplying, because
 * x·u' may be infinite there. */
static void gelu_tanh_backward(tt_real *restrict dx, bool add, const tt_real *restrict dout,
                               const tt_real *restrict x, size_t size, tt_real unused)
{
    (void)unused;
    for (size_t i = 0; i < size; i++) {
        const tt_real twice_u = 2 * gelu_tanh_argument(x[i]);
        const tt_real s = tt_stable_sigmoid(twice_u);
        const tt_real s_slope = s * tt_stable_sigmoid(-twice_u);
        tt_real derivative = s;
        if (s_slope != 0) {
            const tt_real du = (tt_real)SQRT_2_OVER_PI * (1 + 3 * (tt_real)GELU_CUBIC * x[i] * x[i]);
            derivative += x[i] * 2 * s_slope * du;
        }
        store_gradient(&dx[i], add, dout[i] * derivative);
    }
}

static void gelu_tanh_tape_backward(const tt_record *record)
{
    run_backward(record, gelu_tanh_backward);
}

static const tt_op gelu_tanh_op = {
    .name = "gelu_tanh",
    .n_inputs = 1,
    .backward = gelu_tanh_tape_backward,
};

tt_tensor *tt_gelu_tanh(tt_tape *tape, tt_tensor *x)
{
    return record_activation(tape, &gelu_tanh_op, gelu_tanh_forward, x, NULL);
}
