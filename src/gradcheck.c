/* The gradient checker: compares the gradient from the backward pass with
 * central finite differences of the loss, entry by entry, and excludes the
 * differences taken across a kink. tensortape.h states the contract and
 * the definitions of the relative error and of a zero entry. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Noise of a numeric derivative, in units of its resolution ulp(L) /
 * (x+ − x−). Rounding L(x+) and L(x−) to tt_real gives up to one unit, and
 * rounding inside the ops that the move changes adds a little more. An
 * entry is zero when both gradients are within this noise of 0, and a
 * difference within it is never a failure. */
#define NOISE_RESOLUTION_UNITS 4.0

/* One tensor under check. */
typedef struct checked_tensor {
    tt_tensor *tensor;
    tt_real *original; /* the data as the caller left it */
    tt_real *analytic; /* the gradient from backward */
    size_t *entries;   /* storage indices to check, ascending */
    size_t n_entries;
    tt_tensor shadow;  /* the tensor with `original` as data, see crossed_kink */
} checked_tensor;

/* A caller-owned tensor's gradient, saved to be put back. */
typedef struct saved_gradient {
    tt_tensor *tensor;
    tt_real *copy;
} saved_gradient;

typedef struct checker {
    tt_loss_function loss;
    void *context;
    tt_tensor *const *tensors;
    size_t n_tensors;
    double step;
    double tolerance;
    tt_error *err;
    tt_tape *base_tape;  /* the unmoved run, kept to compare with each moved run */
    tt_tape *moved_tape; /* reset for every moved run */
    checked_tensor *checked;
    saved_gradient *saved;
    size_t n_saved;
} checker;

/* One moved run's outcome. */
typedef struct moved_run {
    tt_real point; /* the element's value in this run */
    tt_real loss;
    bool kink;
} moved_run;

/* ---- Arguments ---------------------------------------------------------- */

static tt_status check_option(const char *option_name, double value, tt_error *err)
{
    if (isfinite(value) && value >= 0)
        return TT_OK;
    tt_error_set(err, TT_ERR_ARG,
                 "tt_gradcheck: %s is %g; it must be positive and finite, or 0 for the default",
                 option_name, value);
    return TT_ERR_ARG;
}

static tt_status check_arguments(tt_loss_function loss, tt_tensor *const tensors[],
                                 size_t n_tensors, const tt_gradcheck_options *options,
                                 const tt_gradcheck_result *result, tt_error *err)
{
    const char *missing = NULL;
    if (loss == NULL)
        missing = "the loss function";
    else if (tensors == NULL)
        missing = "tensors";
    else if (result == NULL)
        missing = "result";
    if (missing != NULL) {
        tt_error_set(err, TT_ERR_ARG, "tt_gradcheck: %s is NULL", missing);
        return TT_ERR_ARG;
    }
    if (n_tensors == 0) {
        tt_error_set(err, TT_ERR_ARG, "tt_gradcheck: n_tensors is 0; there is nothing to check");
        return TT_ERR_ARG;
    }
    for (size_t t = 0; t < n_tensors; t++) {
        char role[32];
        char label[TT_LABEL_MAX];
        snprintf(role, sizeof role, "tensor %zu", t);
        if (tensors[t] == NULL) {
            tt_error_set(err, TT_ERR_ARG, "tt_gradcheck: %s is NULL", role);
            return TT_ERR_ARG;
        }
        tt_tensor_label(tensors[t], role, label);
        if (tensors[t]->tape != NULL) {
            tt_error_set(err, TT_ERR_ARG,
                         "tt_gradcheck: %s belongs to a tape; only caller-owned tensors can be "
                         "checked",
                         label);
            return TT_ERR_ARG;
        }
        if (!tensors[t]->requires_grad) {
            tt_error_set(err, TT_ERR_ARG,
                         "tt_gradcheck: %s does not require a gradient; call "
                         "tt_tensor_require_grad() on it first",
                         label);
            return TT_ERR_ARG;
        }
        for (size_t other = 0; other < t; other++) {
            if (tensors[other] == tensors[t]) {
                tt_error_set(err, TT_ERR_ARG,
                             "tt_gradcheck: %s is also tensor %zu; list each tensor once", label,
                             other);
                return TT_ERR_ARG;
            }
        }
    }
    if (options != NULL) {
        if (check_option("step", options->step, err) != TT_OK ||
            check_option("tolerance", options->tolerance, err) != TT_OK)
            return TT_ERR_ARG;
    }
    return TT_OK;
}

/* ---- Setup and cleanup --------------------------------------------------- */

static int compare_indices(const void *a, const void *b)
{
    const size_t left = *(const size_t *)a;
    const size_t right = *(const size_t *)b;
    return (left > right) - (left < right);
}

/* Fills ct->entries with every storage index of the tensor, or with
 * max_entries of them drawn without repetition (a partial Fisher-Yates
 * shuffle) and sorted, so the entries are visited in storage order. */
static void choose_entries(checked_tensor *ct, size_t size, size_t max_entries, tt_rng *rng)
{
    for (size_t i = 0; i < size; i++)
        ct->entries[i] = i;
    ct->n_entries = size;
    if (max_entries == 0 || max_entries >= size)
        return;
    for (size_t i = 0; i < max_entries; i++) {
        const size_t j = i + (size_t)tt_rng_below(rng, size - i);
        const size_t swap = ct->entries[i];
        ct->entries[i] = ct->entries[j];
        ct->entries[j] = swap;
    }
    ct->n_entries = max_entries;
    qsort(ct->entries, max_entries, sizeof *ct->entries, compare_indices);
}

static bool allocate_checked(checker *c, const tt_gradcheck_options *options)
{
    c->checked = calloc(c->n_tensors, sizeof *c->checked);
    if (c->checked == NULL)
        return false;
    tt_rng rng;
    tt_rng_seed(&rng, options == NULL ? 0 : options->seed);
    const size_t max_entries = options == NULL ? 0 : options->max_entries;
    for (size_t t = 0; t < c->n_tensors; t++) {
        checked_tensor *ct = &c->checked[t];
        const size_t size = tt_tensor_size(c->tensors[t]);
        ct->tensor = c->tensors[t];
        ct->original = malloc(size * sizeof *ct->original);
        ct->analytic = malloc(size * sizeof *ct->analytic);
        ct->entries = malloc(size * sizeof *ct->entries);
        if (ct->original == NULL || ct->analytic == NULL || ct->entries == NULL)
            return false;
        memcpy(ct->original, ct->tensor->data, size * sizeof *ct->original);
        ct->shadow = *ct->tensor;
        ct->shadow.data = ct->original;
        choose_entries(ct, size, max_entries, &rng);
    }
    return true;
}

/* Puts every checked tensor's data back as the caller left it, bit for bit. */
static void restore_data(checker *c)
{
    if (c->checked == NULL)
        return;
    for (size_t t = 0; t < c->n_tensors; t++) {
        const checked_tensor *ct = &c->checked[t];
        if (ct->original != NULL)
            memcpy(ct->tensor->data, ct->original, tt_tensor_size(ct->tensor) * sizeof(tt_real));
    }
}

static void free_checker(checker *c)
{
    if (c->checked != NULL) {
        for (size_t t = 0; t < c->n_tensors; t++) {
            free(c->checked[t].original);
            free(c->checked[t].analytic);
            free(c->checked[t].entries);
        }
    }
    free(c->checked);
    for (size_t s = 0; s < c->n_saved; s++)
        free(c->saved[s].copy);
    free(c->saved);
    tt_tape_free(c->base_tape);
    tt_tape_free(c->moved_tape);
}

/* ---- Gradients --------------------------------------------------------- */

static bool is_saved(const checker *c, const tt_tensor *tensor)
{
    for (size_t s = 0; s < c->n_saved; s++)
        if (c->saved[s].tensor == tensor)
            return true;
    return false;
}

static bool save_gradient(checker *c, tt_tensor *tensor, size_t capacity)
{
    if (tensor->tape != NULL || tensor->grad == NULL || is_saved(c, tensor))
        return true;
    if (c->n_saved == capacity)
        return false;
    const size_t bytes = tt_tensor_size(tensor) * sizeof(tt_real);
    tt_real *copy = malloc(bytes);
    if (copy == NULL)
        return false;
    memcpy(copy, tt_grad_values(tensor), bytes);
    c->saved[c->n_saved].tensor = tensor;
    c->saved[c->n_saved].copy = copy;
    c->n_saved++;
    return true;
}

/* Saves the gradient of every listed tensor and of every other
 * caller-owned tensor with a gradient that the unmoved run used, since
 * backward adds into all of them. */
static bool save_gradients(checker *c)
{
    const tt_tape *tape = c->base_tape;
    const size_t capacity = c->n_tensors + TT_MAX_INPUTS * tape->length;
    c->saved = malloc(capacity * sizeof *c->saved);
    if (c->saved == NULL)
        return false;
    for (size_t t = 0; t < c->n_tensors; t++)
        if (!save_gradient(c, c->tensors[t], capacity))
            return false;
    for (size_t position = 0; position < tape->length; position++) {
        const tt_record *record = &tape->records[position];
        for (size_t i = 0; i < record->op->n_inputs; i++)
            if (!save_gradient(c, record->inputs[i], capacity))
                return false;
    }
    return true;
}

static void restore_gradients(checker *c)
{
    for (size_t s = 0; s < c->n_saved; s++) {
        tt_tensor *tensor = c->saved[s].tensor;
        memcpy(tensor->grad, c->saved[s].copy, tt_tensor_size(tensor) * sizeof(tt_real));
        tensor->grad_pending = false;
    }
}

/* Runs backward on the unmoved run into zeroed gradients and copies the
 * listed tensors' gradients out. A loss that depends on no tensor with a
 * gradient has gradient 0 everywhere, without a backward pass. The caller
 * restores the saved gradients afterwards. */
static tt_status compute_analytic(checker *c, tt_tensor *loss)
{
    for (size_t t = 0; t < c->n_tensors; t++)
        tt_tensor_zero_grad(c->tensors[t]);
    if (loss->requires_grad) {
        const tt_status status = tt_tape_backward(c->base_tape, loss);
        if (status != TT_OK) {
            tt_error_set(c->err, status, "tt_gradcheck: the backward pass failed: %s",
                         tt_tape_error(c->base_tape)->message);
            return status;
        }
    }
    for (size_t t = 0; t < c->n_tensors; t++)
        memcpy(c->checked[t].analytic, tt_grad_values(c->tensors[t]),
               tt_tensor_size(c->tensors[t]) * sizeof(tt_real));
    return TT_OK;
}

/* ---- Runs of the loss function ------------------------------------------ */

/* Writes where a run happened, e.g. "at the given point" or "with tensor 0
 * (w) element (1, 2) moved to 0.505". */
static void describe_point(const checker *c, size_t t, size_t index, tt_real value,
                           char *where, size_t size)
{
    if (index == SIZE_MAX) {
        snprintf(where, size, "at the given point");
        return;
    }
    const tt_tensor *tensor = c->tensors[t];
    char role[32];
    char label[TT_LABEL_MAX];
    snprintf(role, sizeof role, "tensor %zu", t);
    tt_tensor_label(tensor, role, label);
    snprintf(where, size, "with %s element (%zu, %zu) moved to %.9g", label,
             index / tensor->cols, index % tensor->cols, (double)value);
}

/* Resets `tape`, records the loss function on it and checks the loss it
 * returns. `t`, `index` and `value` describe the point for messages, and
 * index SIZE_MAX stands for the unmoved point. */
static tt_status run_loss(checker *c, tt_tape *tape, size_t t, size_t index, tt_real value,
                          tt_tensor **loss)
{
    tt_tape_reset(tape);
    *loss = c->loss(tape, c->tensors, c->n_tensors, c->context);
    if (*loss != NULL && (*loss)->tape == tape && (*loss)->producer != NULL &&
        (*loss)->rows == 1 && (*loss)->cols == 1)
        return TT_OK;

    char where[160];
    describe_point(c, t, index, value, where, sizeof where);
    if (*loss == NULL && tt_tape_status(tape) != TT_OK) {
        tt_error_set(c->err, tt_tape_status(tape),
                     "tt_gradcheck: the loss function failed %s: %s", where,
                     tt_tape_error(tape)->message);
        return tt_tape_status(tape);
    }
    if (*loss == NULL) {
        tt_error_set(c->err, TT_ERR_ARG,
                     "tt_gradcheck: the loss function returned NULL %s but left no error on "
                     "the tape",
                     where);
        return TT_ERR_ARG;
    }
    char label[TT_LABEL_MAX];
    tt_tensor_label(*loss, "loss", label);
    if ((*loss)->tape != tape || (*loss)->producer == NULL) {
        tt_error_set(c->err, TT_ERR_ARG,
                     "tt_gradcheck: the %s returned %s is not the output of an op on the tape "
                     "the loss function was given",
                     label, where);
        return TT_ERR_ARG;
    }
    tt_error_set(c->err, TT_ERR_SHAPE, "tt_gradcheck: the %s returned %s is %zux%zu but must be 1x1",
                 label, where, (*loss)->rows, (*loss)->cols);
    return TT_ERR_SHAPE;
}

static bool same_shape(const tt_tensor *a, const tt_tensor *b)
{
    return a->rows == b->rows && a->cols == b->cols;
}

/* Returns whether the moved run crossed a kink: an op reports that an
 * input crossed one (tt_op.crosses_kink), or the two tapes differ in ops
 * or shapes. In the unmoved tape's records the moved tensor, whose data
 * currently hold the moved value, is replaced by its shadow holding the
 * original data. */
static bool crossed_kink(const checker *c, size_t t)
{
    const tt_tape *base = c->base_tape;
    const tt_tape *moved = c->moved_tape;
    if (base->length != moved->length)
        return true;
    tt_tensor *shadow = &c->checked[t].shadow;
    for (size_t position = 0; position < base->length; position++) {
        const tt_record *moved_record = &moved->records[position];
        tt_record base_record = base->records[position];
        if (base_record.op != moved_record->op)
            return true;
        for (size_t i = 0; i < base_record.op->n_inputs; i++) {
            if (!same_shape(base_record.inputs[i], moved_record->inputs[i]))
                return true;
            if (base_record.inputs[i] == c->tensors[t])
                base_record.inputs[i] = shadow;
        }
        if (base_record.op->crosses_kink != NULL &&
            base_record.op->crosses_kink(&base_record, moved_record))
            return true;
    }
    return false;
}

/* Records the loss with element `index` of tensor t set to run->point. */
static tt_status run_moved(checker *c, size_t t, size_t index, moved_run *run)
{
    tt_tensor *tensor = c->tensors[t];
    tensor->data[index] = run->point;
    tt_tensor *loss;
    const tt_status status = run_loss(c, c->moved_tape, t, index, run->point, &loss);
    if (status == TT_OK) {
        run->loss = loss->data[0];
        run->kink = crossed_kink(c, t);
    }
    memcpy(&tensor->data[index], &c->checked[t].original[index], sizeof(tt_real));
    return status;
}

/* ---- Comparing ------------------------------------------------------------ */

/* Distance from |value| to the next tt_real away from zero. */
static double unit_in_last_place(tt_real value)
{
    const tt_real magnitude = value < 0 ? -value : value;
    return (double)TT_NEXTAFTER(magnitude, (tt_real)INFINITY) - (double)magnitude;
}

static void describe_entry(const checker *c, size_t t, size_t index, double analytic,
                           double numeric, double relative_error, tt_gradcheck_entry *entry)
{
    const tt_tensor *tensor = c->tensors[t];
    entry->tensor = t;
    entry->name = tensor->name;
    entry->row = index / tensor->cols;
    entry->col = index % tensor->cols;
    entry->analytic = analytic;
    entry->numeric = numeric;
    entry->relative_error = relative_error;
}

/* The numeric derivatives of one tensor's entries, kept until its
 * gradient scale is known. */
typedef struct entry_values {
    double numeric;
    double resolution;
    bool kink;
} entry_values;

static double relative_error(double analytic, double numeric, double scale)
{
    if (isnan(analytic) || isnan(numeric))
        return INFINITY;
    double denominator = fmax(fabs(analytic), fabs(numeric));
    denominator = fmax(denominator, scale);
    if (denominator == 0)
        return 0;
    const double error = fabs(analytic - numeric) / denominator;
    return isnan(error) ? INFINITY : error;
}

/* Moves every chosen entry of tensor t both ways and compares, adding to
 * `result`. The relative error's floor is the larger of the tensor's
 * largest numeric entry and the entry's noise divided by the tolerance,
 * as tensortape.h explains. */
static tt_status check_tensor(checker *c, size_t t, entry_values *values,
                              tt_gradcheck_result *result)
{
    const checked_tensor *ct = &c->checked[t];
    double scale = 0;
    for (size_t e = 0; e < ct->n_entries; e++) {
        const size_t index = ct->entries[e];
        const double x = (double)ct->original[index];
        const double h = c->step * fmax(1.0, fabs(x));
        moved_run above = {(tt_real)(x + h), 0, false};
        moved_run below = {(tt_real)(x - h), 0, false};
        tt_status status = run_moved(c, t, index, &above);
        if (status == TT_OK)
            status = run_moved(c, t, index, &below);
        if (status != TT_OK)
            return status;

        const double distance = (double)above.point - (double)below.point;
        entry_values *v = &values[e];
        v->numeric = ((double)above.loss - (double)below.loss) / distance;
        const double ulp = fmax(unit_in_last_place(above.loss), unit_in_last_place(below.loss));
        v->resolution = ulp / distance;
        v->kink = above.kink || below.kink;
        if (!v->kink && isfinite(v->numeric))
            scale = fmax(scale, fabs(v->numeric));
    }

    for (size_t e = 0; e < ct->n_entries; e++) {
        const size_t index = ct->entries[e];
        const entry_values *v = &values[e];
        const double analytic = (double)ct->analytic[index];
        const double noise = NOISE_RESOLUTION_UNITS * v->resolution;
        const double error =
            relative_error(analytic, v->numeric, fmax(scale, noise / c->tolerance));
        if (v->kink) {
            if (result->n_kinks == 0)
                describe_entry(c, t, index, analytic, v->numeric, error, &result->first_kink);
            result->n_kinks++;
            continue;
        }
        if (fabs(analytic) <= noise && fabs(v->numeric) <= noise)
            result->n_zero++;
        if (!(error <= c->tolerance))
            result->n_failed++;
        if (result->n_compared == 0 || error > result->worst.relative_error)
            describe_entry(c, t, index, analytic, v->numeric, error, &result->worst);
        result->n_compared++;
    }
    return TT_OK;
}

static void write_summary(tt_gradcheck_result *result)
{
    const tt_gradcheck_entry *worst = &result->worst;
    char where[96];
    snprintf(where, sizeof where, "tensor %zu%s%s%s (%zu, %zu)", worst->tensor,
             worst->name != NULL ? " (" : "", worst->name != NULL ? worst->name : "",
             worst->name != NULL ? ")" : "", worst->row, worst->col);
    switch (result->verdict) {
    case TT_GRADCHECK_PASSED:
        snprintf(result->summary, sizeof result->summary,
                 "gradcheck passed: %zu entries within tolerance %g, the worst at %s with "
                 "relative error %.3g; %zu excluded at kinks",
                 result->n_compared, result->tolerance, where, worst->relative_error,
                 result->n_kinks);
        break;
    case TT_GRADCHECK_FAILED:
        snprintf(result->summary, sizeof result->summary,
                 "gradcheck failed: %zu of %zu entries exceed tolerance %g; the worst is %s: "
                 "analytic %.9g, numeric %.9g, relative error %.3g",
                 result->n_failed, result->n_compared, result->tolerance, where,
                 worst->analytic, worst->numeric, worst->relative_error);
        break;
    case TT_GRADCHECK_VACUOUS:
        if (result->n_compared == 0)
            snprintf(result->summary, sizeof result->summary,
                     "gradcheck vacuous: all %zu entries lie within a step of a kink, so none "
                     "was compared",
                     result->n_kinks);
        else
            snprintf(result->summary, sizeof result->summary,
                     "gradcheck vacuous: all %zu compared entries are zero in both gradients, "
                     "so nothing was verified; %zu excluded at kinks",
                     result->n_compared, result->n_kinks);
        break;
    }
}

/* ---- Entry point ----------------------------------------------------------- */

static tt_status run_check(checker *c, tt_gradcheck_result *result)
{
    tt_error tape_err;
    c->base_tape = tt_tape_new(&tape_err);
    c->moved_tape = c->base_tape == NULL ? NULL : tt_tape_new(&tape_err);
    if (c->moved_tape == NULL) {
        tt_error_set(c->err, tape_err.status, "tt_gradcheck: could not create a tape: %s",
                     tape_err.message);
        return tape_err.status;
    }

    tt_tensor *loss;
    tt_status status = run_loss(c, c->base_tape, 0, SIZE_MAX, 0, &loss);
    if (status != TT_OK)
        return status;
    if (!isfinite(loss->data[0])) {
        tt_error_set(c->err, TT_ERR_NUMERIC,
                     "tt_gradcheck: the loss is %g at the given point; a gradient check needs a "
                     "finite loss",
                     (double)loss->data[0]);
        return TT_ERR_NUMERIC;
    }

    if (!save_gradients(c)) {
        tt_error_set(c->err, TT_ERR_NOMEM, "tt_gradcheck: out of memory for saved gradients");
        return TT_ERR_NOMEM;
    }
    status = compute_analytic(c, loss);
    restore_gradients(c);
    if (status != TT_OK)
        return status;

    for (size_t t = 0; t < c->n_tensors; t++) {
        entry_values *values = malloc(c->checked[t].n_entries * sizeof *values);
        if (values == NULL) {
            tt_error_set(c->err, TT_ERR_NOMEM,
                         "tt_gradcheck: out of memory for the differences of tensor %zu", t);
            return TT_ERR_NOMEM;
        }
        status = check_tensor(c, t, values, result);
        free(values);
        if (status != TT_OK)
            return status;
    }

    if (result->n_failed > 0)
        result->verdict = TT_GRADCHECK_FAILED;
    else if (result->n_zero == result->n_compared)
        result->verdict = TT_GRADCHECK_VACUOUS;
    else
        result->verdict = TT_GRADCHECK_PASSED;
    write_summary(result);
    return TT_OK;
}

tt_status tt_gradcheck(tt_loss_function loss, void *context, tt_tensor *const tensors[],
                       size_t n_tensors, const tt_gradcheck_options *options,
                       tt_gradcheck_result *result, tt_error *err)
{
    tt_status status = check_arguments(loss, tensors, n_tensors, options, result, err);
    if (status != TT_OK)
        return status;

    memset(result, 0, sizeof *result);
    result->step = options != NULL && options->step > 0 ? options->step
                                                          : TT_GRADCHECK_DEFAULT_STEP;
    result->tolerance = options != NULL && options->tolerance > 0
                            ? options->tolerance
                            : TT_GRADCHECK_DEFAULT_TOLERANCE;
    checker c = {loss, context, tensors, n_tensors, result->step, result->tolerance, err,
                 NULL, NULL, NULL, NULL, 0};

    if (!allocate_checked(&c, options)) {
        tt_error_set(err, TT_ERR_NOMEM, "tt_gradcheck: out of memory for copies of the tensors");
        status = TT_ERR_NOMEM;
    } else {
        status = run_check(&c, result);
    }
    restore_data(&c);
    free_checker(&c);
    return status;
}
