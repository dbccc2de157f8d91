/* Anomaly mode: the NaN and infinity checks that tt_op_record and the
 * backward pass run on a tape that has it turned on. */
#include <math.h>
#include <stdio.h>

#include "internal.h"

/* Hint that ends every anomaly message. */
#define ANOMALY_HINT \
    "the usual causes are a too-large learning rate or a NaN or infinity in the input data"

tt_status tt_tape_set_anomaly_check(tt_tape *tape, bool enabled)
{
    if (tape == NULL)
        return TT_ERR_ARG;
    tape->anomaly_check = enabled;
    return TT_OK;
}

bool tt_tape_anomaly_check(const tt_tape *tape)
{
    return tape != NULL && tape->anomaly_check;
}

/* Returns the index of the first NaN or infinity in values[0 .. size), or
 * size if there is none. */
static size_t first_non_finite(const tt_real *values, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if (!isfinite(values[i]))
            return i;
    return size;
}

bool tt_anomaly_check_output(tt_tape *tape, const tt_record *record)
{
    const tt_tensor *out = record->output;
    const size_t size = tt_tensor_size(out);
    const size_t bad = first_non_finite(out->data, size);
    if (bad == size)
        return true;
    tt_tape_fail(tape, TT_ERR_NUMERIC,
                 "anomaly: the output of %s@%zu (%zux%zu) has %g at (%zu, %zu); " ANOMALY_HINT,
                 record->op->name, out->position, out->rows, out->cols, (double)out->data[bad],
                 bad / out->cols, bad % out->cols);
    return false;
}

bool tt_anomaly_check_gradients(tt_tape *tape, const tt_record *record)
{
    const tt_tensor *out = record->output;
    for (size_t i = 0; i < record->op->n_inputs; i++) {
        tt_tensor *x = record->inputs[i];
        if (x->grad == NULL || (i > 0 && x == record->inputs[0]))
            continue;
        const size_t size = tt_tensor_size(x);
        const size_t bad = first_non_finite(tt_grad_values(x), size);
        if (bad == size)
            continue;
        char role[32];
        char label[TT_LABEL_MAX];
        snprintf(role, sizeof role, "input %zu", i);
        tt_tensor_label(x, role, label);
        tt_tape_fail(tape, TT_ERR_NUMERIC,
                     "anomaly: the backward step of %s@%zu left the gradient of %s (%zux%zu) "
                     "with %g at (%zu, %zu); " ANOMALY_HINT,
                     record->op->name, out->position, label, x->rows, x->cols,
                     (double)x->grad[bad], bad / x->cols, bad % x->cols);
        return false;
    }
    return true;
}
