/* Losses for binary classification and regression: binary cross-entropy
 * on logits with the sigmoid fused in (eq. 17–19), and mean squared error
 * (eq. 20–21). Each returns a 1 × 1 mean over all m entries of its input.
 *
 * bce_with_logits
 * Shapes: logits z is any rows × cols, labels are rows·cols values in
 * {0, 1}, one per logit in storage order; L is 1 × 1.
 * Forward: loss_j = max(z_j, 0) − z_j·y_j + log1p(exp(−|z_j|)) (eq. 18).
 * With s_j = z_j for label 0 and −z_j for label 1 this is
 * softplus(s_j) = max(s_j, 0) + log1p(exp(−|s_j|)), which is how it is
 * computed: max(z, 0) − z·y would subtract two logits of 1e30 that agree
 * to all their digits, and softplus(s) has no such difference.
 * Saves a copy of the labels.
 * Gradient: dz_j += dL · (σ(z_j) − y_j)/m (eq. 19), which is σ(s_j) for
 * label 0 and −σ(s_j) for label 1. Writing σ(z) − 1 as −σ(−z) keeps the
 * gradient −2.1e-9 of a logit of 20 with label 1, which 1 − σ(20) rounds
 * to 0 in float.
 *
 * mse
 * Shapes: prediction p and target t are both rows × cols; L is 1 × 1.
 * Forward: L = (1/m) Σ_j (p_j − t_j)² (eq. 20), summed in double. The
 * differences are taken as p/2 − t/2, which cannot overflow, and scaled by
 * a power of two chosen from the largest of them before squaring, so that
 * no square and no partial sum overflows unless the loss itself does.
 * Scaling by a power of two is exact, and so is halving except below the
 * smallest normal double, which a float never is, so the scale costs no
 * precision.
 * Saves nothing: backward rereads p and t.
 * Gradient: dp += dL · 2(p − t)/m and dt −= the same (eq. 21).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tensortape.h"
#include "internal.h"

/* ---- bce_with_logits ------------------------------------------------------ */

/* Returns TT_OK, or records the error for a missing label array, a label
 * count that is not one per logit, or the first label other than 0 or 1. */
static tt_status check_binary_labels(tt_tape *tape, const tt_tensor *logits,
                                     const int32_t *labels, size_t n_labels)
{
    char label[TT_LABEL_MAX];
    tt_tensor_label(logits, "logits", label);
    if (labels == NULL) {
        tt_tape_fail(tape, TT_ERR_ARG, "bce_with_logits: labels is NULL");
        return TT_ERR_ARG;
    }
    if (n_labels != tt_tensor_size(logits)) {
        tt_tape_fail(tape, TT_ERR_ARG,
                     "bce_with_logits: %s is %zux%zu but the label count is %zu; there must "
                     "be one label per logit",
                     label, logits->rows, logits->cols, n_labels);
        return TT_ERR_ARG;
    }
    for (size_t j = 0; j < n_labels; j++) {
        if (labels[j] != 0 && labels[j] != 1) {
            tt_tape_fail(tape, TT_ERR_RANGE,
                         "bce_with_logits: label %ld for logit (%zu, %zu) is neither 0 nor 1; "
                         "%s is %zux%zu",
                         (long)labels[j], j / logits->cols, j % logits->cols, label,
                         logits->rows, logits->cols);
            return TT_ERR_RANGE;
        }
    }
    return TT_OK;
}

/* s = z for label 0 and −z for label 1: the loss is softplus(s) and the
 * gradient ±σ(s). */
static inline tt_real signed_logit(tt_real z, int32_t label)
{
    return label == 1 ? -z : z;
}

/* Returns the mean of softplus(s_j) over the m entries (eq. 18), summed
 * in double so that a large batch loses no precision in the mean. */
static double bce_forward(const tt_real *z, const int32_t *labels, size_t m)
{
    double loss_sum = 0;
    for (size_t j = 0; j < m; j++) {
        const tt_real s = signed_logit(z[j], labels[j]);
        const tt_real positive_part = s > 0 ? s : 0;
        loss_sum += (double)positive_part + (double)TT_LOG1P(TT_EXP(-TT_FABS(s)));
    }
    return loss_sum / (double)m;
}

/* dz += dL·(σ(z) − y)/m, or dz = that when add is false (eq. 19). */
static void bce_backward(tt_real *dz, bool add, tt_real dloss, const tt_real *z,
                         const int32_t *labels, size_t m)
{
    const tt_real scale = dloss / (tt_real)m;
    for (size_t j = 0; j < m; j++) {
        const tt_real probability = tt_stable_sigmoid(signed_logit(z[j], labels[j]));
        const tt_real term = labels[j] == 1 ? -scale * probability : scale * probability;
        dz[j] = add ? dz[j] + term : term;
    }
}

static void bce_tape_backward(const tt_record *record)
{
    tt_tensor *z = record->inputs[0];
    if (z->grad != NULL)
        bce_backward(z->grad, tt_grad_accumulates(z), record->output->grad[0], z->data,
                     record->saved, tt_tensor_size(z));
}

static const tt_op bce_op = {
    .name = "bce_with_logits",
    .n_inputs = 1,
    .backward = bce_tape_backward,
};

tt_tensor *tt_bce_with_logits(tt_tape *tape, tt_tensor *logits, const int32_t *labels,
                              size_t n_labels)
{
    tt_tensor *const inputs[] = {logits};
    const char *const roles[] = {"logits"};
    if (!tt_op_begin(tape, &bce_op, inputs, roles))
        return NULL;
    if (check_binary_labels(tape, logits, labels, n_labels) != TT_OK)
        return NULL;

    const size_t m = tt_tensor_size(logits);
    tt_arena_mark mark = tt_arena_get_mark(&tape->arena);
    int32_t *labels_copy = tt_op_save(tape, &bce_op, m * sizeof *labels_copy);
    tt_tensor *loss = labels_copy == NULL ? NULL : tt_op_output(tape, &bce_op, inputs, 1, 1);
    if (loss == NULL) {
        tt_arena_rewind(&tape->arena, mark);
        return NULL;
    }

    memcpy(labels_copy, labels, m * sizeof *labels_copy);
    loss->data[0] = (tt_real)bce_forward(logits->data, labels, m);
    tt_op_record(tape, &bce_op, inputs, loss, labels_copy);
    return loss;
}

/* ---- mse ------------------------------------------------------------------ */

/* (p − t)/2, formed from the halves so that it cannot overflow. */
static inline double half_difference(tt_real p, tt_real t)
{
    return (double)p * 0.5 - (double)t * 0.5;
}

/* Returns the mean of (p_j − t_j)² over the m entries (eq. 20). With d the
 * half differences and 2^e the power of two just above the largest |d|,
 * it is
 *     4·2^(2e)·(1/m)·Σ (d/2^e)²,
 * where every scaled term is below 1, so the sum cannot overflow; ldexp
 * applies 2^(2e) once, at the end. */
static double mse_forward(const tt_real *p, const tt_real *t, size_t m)
{
    double largest = 0;
    for (size_t j = 0; j < m; j++) {
        const double d = fabs(half_difference(p[j], t[j]));
        if (isnan(d))
            return d;
        largest = d > largest ? d : largest;
    }
    /* Every difference is 0, or one is infinite and so is the loss. */
    if (largest == 0 || isinf(largest))
        return largest;

    int exponent;
    frexp(largest, &exponent);
    double sum = 0;
    for (size_t j = 0; j < m; j++) {
        const double scaled = ldexp(half_difference(p[j], t[j]), -exponent);
        sum += scaled * scaled;
    }
    return ldexp(4 * (sum / (double)m), 2 * exponent);
}

/* dp += sign·dL·2(p − t)/m, or dp = that when add is false. The gradient is
 * formed from the half difference in double, (d/m)·4·dL, so that it is
 * finite whenever its value fits in tt_real. */
static void mse_backward(tt_real *dx, bool add, double sign, tt_real dloss, const tt_real *p,
                         const tt_real *t, size_t m)
{
    const double scale = sign * 4 * (double)dloss;
    for (size_t j = 0; j < m; j++) {
        const tt_real term = (tt_real)(half_difference(p[j], t[j]) / (double)m * scale);
        dx[j] = add ? dx[j] + term : term;
    }
}

static void mse_tape_backward(const tt_record *record)
{
    tt_tensor *p = record->inputs[0];
    tt_tensor *t = record->inputs[1];
    const tt_real dloss = record->output->grad[0];
    const size_t m = tt_tensor_size(p);
    if (p->grad != NULL)
        mse_backward(p->grad, tt_grad_accumulates(p), 1, dloss, p->data, t->data, m);
    if (t->grad != NULL)
        mse_backward(t->grad, tt_grad_accumulates(t), -1, dloss, p->data, t->data, m);
}

static const tt_op mse_op = {
    .name = "mse",
    .n_inputs = 2,
    .backward = mse_tape_backward,
};

tt_tensor *tt_mse(tt_tape *tape, tt_tensor *prediction, tt_tensor *target)
{
    tt_tensor *const inputs[] = {prediction, target};
    const char *const roles[] = {"prediction", "target"};
    if (!tt_op_begin(tape, &mse_op, inputs, roles))
        return NULL;
    if (prediction->rows != target->rows || prediction->cols != target->cols) {
        char prediction_label[TT_LABEL_MAX];
        char target_label[TT_LABEL_MAX];
        tt_tensor_label(prediction, "prediction", prediction_label);
        tt_tensor_label(target, "target", target_label);
        tt_tape_fail(tape, TT_ERR_SHAPE,
                     "mse: %s is %zux%zu but %s is %zux%zu; they must have the same shape",
                     prediction_label, prediction->rows, prediction->cols, target_label,
                     target->rows, target->cols);
        return NULL;
    }

    tt_tensor *loss = tt_op_output(tape, &mse_op, inputs, 1, 1);
    if (loss == NULL)
        return NULL;
    loss->data[0] =
        (tt_real)mse_forward(prediction->data, target->data, tt_tensor_size(prediction));
    tt_op_record(tape, &mse_op, inputs, loss, NULL);
    return loss;
}
