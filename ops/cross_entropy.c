/* cross_entropy: softmax and multi-class cross-entropy fused into one op,
 * the output layer and loss of an MLP (eq. 4–8).
 *
 * Shapes: logits z is C × n (one column per sample, z(T) in eq. 3), labels
 * are n class indices in [0, C) standing for the one-hot y of eq. 6, and the
 * output L is 1 × 1.
 * Forward, per column i, with the column maximum m_i subtracted first
 * (eq. 9–10) so that no exp overflows:
 *     s_i    = log Σ_c exp(z[c,i] − m_i),  so log Σ_c exp(z[c,i]) = m_i + s_i
 *     loss_i = (m_i − z[label_i, i]) + s_i                (eq. 7)
 *     L      = (1/n) Σ_i loss_i                           (eq. 8)
 * Saves m and s (n values each) and the labels; backward recomputes the
 * softmax from them instead of storing C × n probabilities.
 * Gradient: dz[c,i] += dL · (exp((z[c,i] − m_i) − s_i) − y[c,i]) / n, the
 * softmax minus the one-hot label: eq. 11's φ(T) transposed and divided by
 * n for the mean.
 *
 * The shift m_i is kept apart from s_i instead of being added into one
 * log-sum-exp, because m_i + s_i rounds away a small s_i when the logits
 * are large. For the same reason s_i is log1p of the sum of the other
 * terms, because the maximum's own term is exactly 1. With logits [20, 0]
 * the sum 1 + 2.1e-9 would round to 1 in float and the loss to 0, while
 * log1p(2.1e-9) keeps it. The softmax is an exp of a value ≤ 0 and the loss takes no
 * log of a probability, so nothing overflows and no log sees an
 * underflowed zero: logits of ±1e30 give a finite, exact loss and gradient.
 *
 * A logit of −inf is a class of probability 0: exp(−inf − m_i) = 0 adds
 * nothing to s_i and nothing to the gradient. If it is the label, m_i − z
 * is +inf and so is the loss, and the gradient there is (0 − 1)/n.
 *
 * LIMITATION: a column whose logits are all −inf, or that contains +inf or
 * NaN, gives a NaN loss and NaN gradients for that column (−inf − (−inf)
 * and +inf − (+inf) are NaN). All −inf usually means that every class was
 * masked out, a bug upstream, so the NaN is kept for anomaly mode to report
 * instead of an invented uniform softmax.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tensortape.h"
#include "internal.h"

typedef struct cross_entropy_saved {
    tt_real *max;     /* m_i: the maximum of each column */
    tt_real *log_sum; /* s_i: log Σ_c exp(z[c,i] − m_i) */
    int32_t *labels;  /* copy of the caller's n labels */
} cross_entropy_saved;

/* Returns TT_OK, or records the error for the first label outside [0, C). */
static tt_status check_labels(tt_tape *tape, const tt_tensor *logits, const int32_t *labels,
                              size_t n_labels)
{
    char label[TT_LABEL_MAX];
    tt_tensor_label(logits, "logits", label);
    if (labels == NULL) {
        tt_tape_fail(tape, TT_ERR_ARG, "cross_entropy: labels is NULL");
        return TT_ERR_ARG;
    }
    if (n_labels != logits->cols) {
        tt_tape_fail(tape, TT_ERR_ARG,
                     "cross_entropy: %s is %zux%zu but the label count is %zu; there must be "
                     "one label per column",
                     label, logits->rows, logits->cols, n_labels);
        return TT_ERR_ARG;
    }
    for (size_t i = 0; i < n_labels; i++) {
        if (labels[i] < 0 || (size_t)labels[i] >= logits->rows) {
            tt_tape_fail(tape, TT_ERR_RANGE,
                         "cross_entropy: label %ld for column %zu is outside [0, %zu); %s is "
                         "%zux%zu",
                         (long)labels[i], i, logits->rows, label, logits->rows, logits->cols);
            return TT_ERR_RANGE;
        }
    }
    return TT_OK;
}

/* Writes m_i and s_i for every column of z (n_classes × n) and returns the
 * mean loss. The losses are summed in double so that a large batch loses
 * no precision in the mean. */
static double cross_entropy_forward(tt_real *max, tt_real *log_sum, const tt_real *z,
                                    const int32_t *labels, size_t n_classes, size_t n)
{
    /* Column maxima, reading z row by row for contiguous access. */
    for (size_t i = 0; i < n; i++)
        max[i] = z[i];
    for (size_t c = 1; c < n_classes; c++)
        for (size_t i = 0; i < n; i++)
            max[i] = z[c * n + i] > max[i] ? z[c * n + i] : max[i];

    /* Shifted exp-sums (eq. 9–10): every exponent is ≤ 0, so each term is
     * in [0, 1]. The first maximum's term, exactly 1, is left out of the
     * sum and added back by log1p. m − m is 0 for a finite maximum and NaN
     * for an infinite one, which keeps the NaN of the LIMITATION above. */
    double loss_sum = 0;
    for (size_t i = 0; i < n; i++) {
        const tt_real m = max[i];
        bool max_skipped = false;
        tt_real others = 0;
        for (size_t c = 0; c < n_classes; c++) {
            const tt_real value = z[c * n + i];
            if (!max_skipped && value == m) {
                max_skipped = true;
                continue;
            }
            others += TT_EXP(value - m);
        }
        log_sum[i] = TT_LOG1P(others) + (m - m);
        const tt_real label_logit = z[(size_t)labels[i] * n + i];
        loss_sum += (double)(max[i] - label_logit) + (double)log_sum[i];
    }
    return loss_sum / (double)n;
}

/* dz += dL·(softmax(z) − y)/n, or dz = that when add is false. */
static void cross_entropy_backward(tt_real *dz, bool add, tt_real dloss, const tt_real *z,
                                   const tt_real *max, const tt_real *log_sum,
                                   const int32_t *labels, size_t n_classes, size_t n)
{
    const tt_real scale = dloss / (tt_real)n;
    for (size_t c = 0; c < n_classes; c++) {
        const tt_real *z_row = z + c * n;
        tt_real *dz_row = dz + c * n;
        for (size_t i = 0; i < n; i++) {
            /* At the label, softmax − 1 is formed by expm1, which keeps a
             * probability just below 1 (1 − 2e-9, say) from rounding to a
             * gradient of exactly 0. */
            const tt_real shifted = (z_row[i] - max[i]) - log_sum[i];
            const tt_real term = (size_t)labels[i] == c ? scale * TT_EXPM1(shifted)
                                                        : scale * TT_EXP(shifted);
            dz_row[i] = add ? dz_row[i] + term : term;
        }
    }
}

static void cross_entropy_tape_backward(const tt_record *record)
{
    tt_tensor *z = record->inputs[0];
    const cross_entropy_saved *saved = record->saved;
    if (z->grad != NULL)
        cross_entropy_backward(z->grad, tt_grad_accumulates(z), record->output->grad[0],
                               z->data, saved->max, saved->log_sum, saved->labels, z->rows,
                               z->cols);
}

static const tt_op cross_entropy_op = {
    .name = "cross_entropy",
    .n_inputs = 1,
    .backward = cross_entropy_tape_backward,
};

tt_tensor *tt_cross_entropy(tt_tape *tape, tt_tensor *logits, const int32_t *labels,
                            size_t n_labels)
{
    tt_tensor *const inputs[] = {logits};
    const char *const roles[] = {"logits"};
    if (!tt_op_begin(tape, &cross_entropy_op, inputs, roles))
        return NULL;
    if (check_labels(tape, logits, labels, n_labels) != TT_OK)
        return NULL;

    const size_t n = logits->cols;
    tt_arena_mark mark = tt_arena_get_mark(&tape->arena);
    cross_entropy_saved *saved = tt_op_save(tape, &cross_entropy_op, sizeof *saved);
    tt_real *max = saved == NULL ? NULL : tt_op_save(tape, &cross_entropy_op, n * sizeof *max);
    tt_real *log_sum =
        max == NULL ? NULL : tt_op_save(tape, &cross_entropy_op, n * sizeof *log_sum);
    int32_t *labels_copy =
        log_sum == NULL ? NULL : tt_op_save(tape, &cross_entropy_op, n * sizeof *labels_copy);
    tt_tensor *loss =
        labels_copy == NULL ? NULL : tt_op_output(tape, &cross_entropy_op, inputs, 1, 1);
    if (loss == NULL) {
        tt_arena_rewind(&tape->arena, mark);
        return NULL;
    }

    memcpy(labels_copy, labels, n * sizeof *labels_copy);
    saved->max = max;
    saved->log_sum = log_sum;
    saved->labels = labels_copy;
    double mean_loss = cross_entropy_forward(max, log_sum, logits->data, labels, logits->rows, n);
    loss->data[0] = (tt_real)mean_loss;
    tt_op_record(tape, &cross_entropy_op, inputs, loss, saved);
    return loss;
}
