/* Optimizers: SGD (with momentum, Nesterov and weight decay), Adam and
 * AdamW, with the update rules of PyTorch 1.13 written out in tensortape.h.
 *
 * All state lives in one block allocated at creation: for each parameter in
 * order, its momentum buffer (SGD with momentum) or its first moment m and
 * then its second moment v (Adam, AdamW). A step walks the parameters once,
 * updating each element, and then marks each gradient as pending (read as
 * zero, and overwritten by the next backward pass) instead of writing
 * zeros. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

struct tt_optimizer {
    tt_optimizer_options options;
    tt_tensor **params;
    size_t n_params;
    tt_real *state;       /* buffers_per_element × (total parameter size) */
    size_t buffers_per_element; /* 0, 1 (momentum) or 2 (m and v) */
    size_t total;         /* elements of all parameters together */
    const tt_tape *tape;  /* whose threads the steps use; NULL for none */
    uint64_t steps;
};

tt_optimizer_options tt_optimizer_defaults(tt_optimizer_kind kind)
{
    tt_optimizer_options options = {0};
    options.kind = kind;
    switch (kind) {
    case TT_OPTIMIZER_ADAM:
    case TT_OPTIMIZER_ADAMW:
        options.learning_rate = 1e-3;
        options.beta1 = 0.9;
        options.beta2 = 0.999;
        options.epsilon = 1e-8;
        options.weight_decay = kind == TT_OPTIMIZER_ADAMW ? 1e-2 : 0.0;
        break;
    case TT_OPTIMIZER_SGD:
    default:
        options.learning_rate = 1e-2;
        break;
    }
    return options;
}

static const char *kind_name(tt_optimizer_kind kind)
{
    switch (kind) {
    case TT_OPTIMIZER_SGD:
        return "SGD";
    case TT_OPTIMIZER_ADAM:
        return "Adam";
    case TT_OPTIMIZER_ADAMW:
        return "AdamW";
    }
    return "unknown";
}

/* Checks that a hyperparameter lies in [low, high], or [low, high) when
 * `open_high` is set, and is finite. */
static bool check_range(const char *name, double value, double low, double high, bool open_high,
                        tt_error *err)
{
    const bool inside = isfinite(value) && value >= low &&
                        (open_high ? value < high : value <= high);
    if (!inside) {
        if (isinf(high))
            tt_error_set(err, TT_ERR_ARG,
                         "tt_optimizer_new: %s is %g; it must be finite and at least %g", name,
                         value, low);
        else
            tt_error_set(err, TT_ERR_ARG, "tt_optimizer_new: %s is %g; it must be in [%g, %g%c",
                         name, value, low, high, open_high ? ')' : ']');
    }
    return inside;
}

/* Checks that a hyperparameter of another kind keeps its 0. */
static bool check_unused(const char *name, double value, const char *used_by,
                         tt_optimizer_kind kind, tt_error *err)
{
    if (value == 0.0)
        return true;
    tt_error_set(err, TT_ERR_ARG,
                 "tt_optimizer_new: %s is %g but applies only to %s; keep it 0 for %s "
                 "(start from tt_optimizer_defaults)",
                 name, value, used_by, kind_name(kind));
    return false;
}

static bool check_options(const tt_optimizer_options *o, tt_error *err)
{
    if (o->kind != TT_OPTIMIZER_SGD && o->kind != TT_OPTIMIZER_ADAM &&
        o->kind != TT_OPTIMIZER_ADAMW) {
        tt_error_set(err, TT_ERR_ARG, "tt_optimizer_new: unknown optimizer kind %d",
                     (int)o->kind);
        return false;
    }
    if (!check_range("learning_rate", o->learning_rate, 0.0, INFINITY, false, err) ||
        !check_range("weight_decay", o->weight_decay, 0.0, INFINITY, false, err))
        return false;

    if (o->kind == TT_OPTIMIZER_SGD) {
        if (!check_range("momentum", o->momentum, 0.0, INFINITY, false, err) ||
            !check_range("dampening", o->dampening, 0.0, 1.0, false, err) ||
            !check_unused("beta1", o->beta1, "Adam and AdamW", o->kind, err) ||
            !check_unused("beta2", o->beta2, "Adam and AdamW", o->kind, err) ||
            !check_unused("epsilon", o->epsilon, "Adam and AdamW", o->kind, err))
            return false;
        /* PyTorch rejects these too: Nesterov's look-ahead g + momentum·buf
         * needs a momentum buffer, and is defined without dampening. */
        if (o->nesterov && (o->momentum <= 0.0 || o->dampening != 0.0)) {
            tt_error_set(err, TT_ERR_ARG,
                         "tt_optimizer_new: nesterov needs momentum > 0 and dampening 0, but "
                         "momentum is %g and dampening %g",
                         o->momentum, o->dampening);
            return false;
        }
        return true;
    }

    if (!check_range("beta1", o->beta1, 0.0, 1.0, true, err) ||
        !check_range("beta2", o->beta2, 0.0, 1.0, true, err) ||
        !check_range("epsilon", o->epsilon, 0.0, INFINITY, false, err) ||
        !check_unused("momentum", o->momentum, "SGD", o->kind, err) ||
        !check_unused("dampening", o->dampening, "SGD", o->kind, err))
        return false;
    if (o->nesterov) {
        tt_error_set(err, TT_ERR_ARG,
                     "tt_optimizer_new: nesterov applies only to SGD; keep it false for %s",
                     kind_name(o->kind));
        return false;
    }
    return true;
}

/* Checks the parameter list and sets *total to the sum of their sizes. */
static bool check_params(tt_tensor *const params[], size_t n_params, size_t *total,
                         tt_error *err)
{
    if (params == NULL || n_params == 0) {
        tt_error_set(err, TT_ERR_ARG, "tt_optimizer_new: %s",
                     params == NULL ? "params is NULL" : "no parameters (n_params is 0)");
        return false;
    }
    *total = 0;
    for (size_t i = 0; i < n_params; i++) {
        const tt_tensor *p = params[i];
        if (p == NULL) {
            tt_error_set(err, TT_ERR_ARG, "tt_optimizer_new: params[%zu] is NULL", i);
            return false;
        }
        char role[32];
        char label[TT_LABEL_MAX];
        snprintf(role, sizeof role, "params[%zu]", i);
        tt_tensor_label(p, role, label);
        if (p->tape != NULL) {
            tt_error_set(err, TT_ERR_ARG,
                         "tt_optimizer_new: %s is a tape tensor; parameters must be "
                         "caller-owned",
                         label);
            return false;
        }
        if (p->grad == NULL) {
            tt_error_set(err, TT_ERR_ARG,
                         "tt_optimizer_new: %s is %zux%zu and has no gradient; call "
                         "tt_tensor_require_grad first",
                         label, p->rows, p->cols);
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (params[j] == p) {
                tt_error_set(err, TT_ERR_ARG,
                             "tt_optimizer_new: %s is params[%zu] again; each parameter "
                             "must be listed once",
                             label, j);
                return false;
            }
        }
        *total += tt_tensor_size(p);
    }
    return true;
}

tt_optimizer *tt_optimizer_new(tt_tensor *const params[], size_t n_params,
                               const tt_optimizer_options *options, tt_error *err)
{
    const tt_optimizer_options chosen =
        options != NULL ? *options : tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    size_t total = 0;
    if (!check_options(&chosen, err) || !check_params(params, n_params, &total, err))
        return NULL;

    size_t buffers = 0;
    if (chosen.kind == TT_OPTIMIZER_SGD)
        buffers = chosen.momentum != 0.0 ? 1 : 0;
    else
        buffers = 2;

    tt_optimizer *optimizer = calloc(1, sizeof *optimizer);
    if (optimizer == NULL)
        goto nomem;
    optimizer->options = chosen;
    optimizer->n_params = n_params;
    optimizer->total = total;
    optimizer->buffers_per_element = buffers;
    optimizer->params = malloc(n_params * sizeof *optimizer->params);
    if (optimizer->params == NULL)
        goto nomem;
    for (size_t i = 0; i < n_params; i++)
        optimizer->params[i] = params[i];
    if (buffers > 0) {
        /* Each distinct parameter has its data and gradient in memory, so
         * twice the sum of their sizes fits in size_t. */
        optimizer->state = calloc(buffers * total, sizeof *optimizer->state);
        if (optimizer->state == NULL)
            goto nomem;
    }
    return optimizer;

nomem:
    tt_optimizer_free(optimizer);
    tt_error_set(err, TT_ERR_NOMEM,
                 "tt_optimizer_new: out of memory for %s state of %zu parameters (%zu elements)",
                 kind_name(chosen.kind), n_params, total);
    return NULL;
}

void tt_optimizer_free(tt_optimizer *optimizer)
{
    if (optimizer == NULL)
        return;
    free(optimizer->state);
    free(optimizer->params);
    free(optimizer);
}

/* SGD on one parameter of `size` elements; `buf` is its momentum buffer,
 * NULL without momentum. Each case has a loop of its own, free of
 * branches, so that the compiler vectorizes it. */
static inline __attribute__((always_inline)) void
sgd_loop(const tt_optimizer_options *o, bool first_step, tt_real *restrict p,
         const tt_real *restrict g, tt_real *restrict buf, size_t size)
{
    const tt_real lr = (tt_real)o->learning_rate;
    const tt_real decay = (tt_real)o->weight_decay;
    const tt_real momentum = (tt_real)o->momentum;
    const tt_real keep = (tt_real)(1.0 - o->dampening);
    const bool nesterov = o->nesterov;
    if (buf == NULL) {
        for (size_t i = 0; i < size; i++)
            p[i] -= lr * (g[i] + decay * p[i]);
    } else if (first_step) {
        /* The first step copies the gradient into the buffer, undamped. */
        for (size_t i = 0; i < size; i++) {
            const tt_real d = g[i] + decay * p[i];
            buf[i] = d;
            p[i] -= lr * (nesterov ? d + momentum * d : d);
        }
    } else {
        for (size_t i = 0; i < size; i++) {
            const tt_real d = g[i] + decay * p[i];
            buf[i] = momentum * buf[i] + keep * d;
            p[i] -= lr * (nesterov ? d + momentum * buf[i] : buf[i]);
        }
    }
}

/* Adam or AdamW on one parameter of `size` elements with moments m and v. */
static void adam_update(const tt_optimizer_options *o, uint64_t step, tt_real *restrict p,
                        const tt_real *restrict g, tt_real *restrict m, tt_real *restrict v,
                        size_t size)
{
    /* Bias corrections in double, as PyTorch computes them in Python. */
    const double correction1 = 1.0 - pow(o->beta1, (double)step);
    const double correction2 = 1.0 - pow(o->beta2, (double)step);
    const tt_real step_size = (tt_real)(o->learning_rate / correction1);
    const tt_real correction2_sqrt = (tt_real)sqrt(correction2);
    const tt_real beta1 = (tt_real)o->beta1;
    const tt_real beta2 = (tt_real)o->beta2;
    const tt_real rest1 = (tt_real)(1.0 - o->beta1);
    const tt_real rest2 = (tt_real)(1.0 - o->beta2);
    const tt_real eps = (tt_real)o->epsilon;
    const bool decoupled = o->kind == TT_OPTIMIZER_ADAMW;
    const tt_real decay = (tt_real)o->weight_decay;
    const tt_real shrink = (tt_real)(1.0 - o->learning_rate * o->weight_decay);
    for (size_t i = 0; i < size; i++) {
        tt_real d = g[i];
        if (decoupled)
            p[i] *= shrink;
        else
            d += decay * p[i];
        m[i] = beta1 * m[i] + rest1 * d;
        v[i] = beta2 * v[i] + rest2 * d * d;
        const tt_real denominator = TT_SQRT(v[i]) / correction2_sqrt + eps;
        p[i] -= step_size * m[i] / denominator;
    }
}

/* The SGD loops are memory-bound, so wider vectors make them faster. They
 * are compiled for the baseline processor and, on x86-64, again for AVX2,
 * and sgd_update runs the copy that the processor supports. Both copies
 * give the same bits, since neither fuses a multiply with an add (AVX2
 * alone does not include FMA). Adam's loop is not vectorized either way,
 * because sqrt must be able to set errno. */
#if TT_HAVE_X86
__attribute__((target("avx2"))) static void
sgd_loop_avx2(const tt_optimizer_options *o, bool first_step, tt_real *restrict p,
              const tt_real *restrict g, tt_real *restrict buf, size_t size)
{
    sgd_loop(o, first_step, p, g, buf, size);
}
#endif

static void sgd_update(const tt_optimizer_options *o, bool first_step, tt_real *restrict p,
                       const tt_real *restrict g, tt_real *restrict buf, size_t size)
{
#if TT_HAVE_X86
    if (tt_cpu_has_avx2()) {
        sgd_loop_avx2(o, first_step, p, g, buf, size);
        return;
    }
#endif
    sgd_loop(o, first_step, p, g, buf, size);
}

/* Updates elements [begin, end) of the parameters taken end to end, in
 * the order of the params list. Parameter k's state follows that of
 * parameters 0 .. k-1. */
static void update_range(void *context, size_t begin, size_t end)
{
    const tt_optimizer *optimizer = context;
    const tt_optimizer_options *o = &optimizer->options;
    tt_real *state = optimizer->state;
    size_t first = 0; /* position of parameter k's first element */
    for (size_t k = 0; k < optimizer->n_params && first < end; k++) {
        tt_tensor *param = optimizer->params[k];
        const size_t size = tt_tensor_size(param);
        const size_t low = begin > first ? begin - first : 0;
        const size_t high = end - first < size ? end - first : size;
        if (low < high) {
            tt_real *p = param->data + low;
            const tt_real *g = param->grad + low;
            if (o->kind == TT_OPTIMIZER_SGD)
                sgd_update(o, optimizer->steps == 1, p, g, state != NULL ? state + low : NULL,
                           high - low);
            else
                adam_update(o, optimizer->steps, p, g, state + low, state + size + low,
                            high - low);
        }
        if (state != NULL)
            state += optimizer->buffers_per_element * size;
        first += size;
    }
}

tt_status tt_optimizer_step(tt_optimizer *optimizer, tt_error *err)
{
    if (optimizer == NULL) {
        tt_error_set(err, TT_ERR_ARG, "tt_optimizer_step: optimizer is NULL");
        return TT_ERR_ARG;
    }
    optimizer->steps++;
    /* A gradient still pending from the last step reads as zeros. */
    for (size_t k = 0; k < optimizer->n_params; k++)
        tt_grad_values(optimizer->params[k]);
    /* Each element's update is the same on any thread, so where the ranges
     * split does not change the result. */
    tt_pool *pool = optimizer->tape != NULL ? optimizer->tape->pool : NULL;
    tt_pool_run_ranges(pool, optimizer->total, TT_PARALLEL_MIN_ELEMENTS, update_range, optimizer);
    for (size_t k = 0; k < optimizer->n_params; k++)
        tt_tensor_zero_grad(optimizer->params[k]);
    return TT_OK;
}

tt_status tt_optimizer_use_tape_threads(tt_optimizer *optimizer, const tt_tape *tape,
                                        tt_error *err)
{
    if (optimizer == NULL) {
        tt_error_set(err, TT_ERR_ARG, "tt_optimizer_use_tape_threads: optimizer is NULL");
        return TT_ERR_ARG;
    }
    optimizer->tape = tape;
    return TT_OK;
}

void tt_optimizer_zero_grad(tt_optimizer *optimizer)
{
    if (optimizer == NULL)
        return;
    for (size_t k = 0; k < optimizer->n_params; k++)
        tt_tensor_zero_grad(optimizer->params[k]);
}

tt_status tt_optimizer_set_learning_rate(tt_optimizer *optimizer, double learning_rate,
                                         tt_error *err)
{
    if (optimizer == NULL) {
        tt_error_set(err, TT_ERR_ARG, "tt_optimizer_set_learning_rate: optimizer is NULL");
        return TT_ERR_ARG;
    }
    if (!isfinite(learning_rate) || learning_rate < 0.0) {
        tt_error_set(err, TT_ERR_ARG,
                     "tt_optimizer_set_learning_rate: learning rate %g is invalid; it must be "
                     "finite and at least 0",
                     learning_rate);
        return TT_ERR_ARG;
    }
    optimizer->options.learning_rate = learning_rate;
    return TT_OK;
}

double tt_optimizer_learning_rate(const tt_optimizer *optimizer)
{
    return optimizer == NULL ? 0.0 : optimizer->options.learning_rate;
}

uint64_t tt_optimizer_steps(const tt_optimizer *optimizer)
{
    return optimizer == NULL ? 0 : optimizer->steps;
}
