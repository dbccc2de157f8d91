/* Caller-owned tensors, accessors shared with tape tensors, and labels for
 * error messages. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

bool tt_shape_size(size_t rows, size_t cols, size_t element_size, size_t *size)
{
    if (rows == 0 || cols == 0)
        return false;
    if (rows > SIZE_MAX / cols || rows * cols > SIZE_MAX / element_size)
        return false;
    *size = rows * cols;
    return true;
}

/* Maximum length of a name in a label. A longer name is cut to this
 * and ends in "...", so the label keeps its closing parenthesis. */
#define LABEL_NAME_MAX 32

void tt_tensor_label(const tt_tensor *t, const char *role, char label[TT_LABEL_MAX])
{
    if (t->name != NULL && strlen(t->name) > LABEL_NAME_MAX)
        snprintf(label, TT_LABEL_MAX, "%s (%.*s...)", role, LABEL_NAME_MAX - 3, t->name);
    else if (t->name != NULL)
        snprintf(label, TT_LABEL_MAX, "%s (%s)", role, t->name);
    else if (t->producer != NULL)
        snprintf(label, TT_LABEL_MAX, "%s (%s@%zu)", role, t->producer->name, t->position);
    else
        snprintf(label, TT_LABEL_MAX, "%s", role);
}

static tt_tensor *tensor_new(size_t rows, size_t cols, const char *name, const char *caller,
                             tt_error *err)
{
    size_t size;
    if (!tt_shape_size(rows, cols, sizeof(tt_real), &size)) {
        tt_error_set(err, TT_ERR_ARG,
                     "%s: invalid shape %zux%zu; both sizes must be at least 1 and their "
                     "product must fit in memory",
                     caller, rows, cols);
        return NULL;
    }

    tt_tensor *t = calloc(1, sizeof *t);
    if (t == NULL)
        goto nomem;
    t->rows = rows;
    t->cols = cols;
    t->data = calloc(size, sizeof(tt_real));
    if (t->data == NULL)
        goto nomem;
    if (name != NULL) {
        t->name = malloc(strlen(name) + 1);
        if (t->name == NULL)
            goto nomem;
        strcpy(t->name, name);
    }
    return t;

nomem:
    tt_tensor_free(t);
    tt_error_set(err, TT_ERR_NOMEM, "%s: out of memory for a %zux%zu tensor", caller, rows, cols);
    return NULL;
}

tt_tensor *tt_tensor_new(size_t rows, size_t cols, const char *name, tt_error *err)
{
    return tensor_new(rows, cols, name, "tt_tensor_new", err);
}

tt_tensor *tt_tensor_from_data(size_t rows, size_t cols, const tt_real *data, const char *name,
                               tt_error *err)
{
    if (data == NULL) {
        tt_error_set(err, TT_ERR_ARG, "tt_tensor_from_data: data is NULL for a %zux%zu tensor (%s)",
                     rows, cols, name != NULL ? name : "unnamed");
        return NULL;
    }
    tt_tensor *t = tensor_new(rows, cols, name, "tt_tensor_from_data", err);
    if (t != NULL)
        memcpy(t->data, data, tt_tensor_size(t) * sizeof(tt_real));
    return t;
}

void tt_tensor_free(tt_tensor *tensor)
{
    if (tensor == NULL || tensor->tape != NULL)
        return;
    free(tensor->data);
    free(tensor->grad);
    free(tensor->name);
    free(tensor);
}

tt_status tt_tensor_require_grad(tt_tensor *tensor, tt_error *err)
{
    if (tensor == NULL) {
        tt_error_set(err, TT_ERR_ARG, "tt_tensor_require_grad: tensor is NULL");
        return TT_ERR_ARG;
    }
    if (tensor->tape != NULL) {
        char label[TT_LABEL_MAX];
        tt_tensor_label(tensor, "tensor", label);
        tt_error_set(err, TT_ERR_ARG,
                     "tt_tensor_require_grad: %s belongs to a tape; only caller-owned tensors "
                     "can be given a gradient",
                     label);
        return TT_ERR_ARG;
    }
    if (tensor->grad != NULL)
        return TT_OK;

    tensor->grad = calloc(tt_tensor_size(tensor), sizeof(tt_real));
    if (tensor->grad == NULL) {
        tt_error_set(err, TT_ERR_NOMEM, "tt_tensor_require_grad: out of memory for a %zux%zu gradient",
                     tensor->rows, tensor->cols);
        return TT_ERR_NOMEM;
    }
    tensor->requires_grad = true;
    return TT_OK;
}

void tt_tensor_zero_grad(tt_tensor *tensor)
{
    if (tensor == NULL || tensor->grad == NULL)
        return;
    /* A caller-owned gradient is only marked as pending, so the next
     * backward pass overwrites it instead of adding to zeros. If it is read
     * first, tt_grad_values writes the zeros. A tape tensor's gradient is
     * zeroed at once, because backward marks it pending by itself. */
    if (tensor->tape == NULL) {
        tensor->grad_pending = true;
        return;
    }
    memset(tensor->grad, 0, tt_tensor_size(tensor) * sizeof(tt_real));
}

tt_real *tt_grad_values(tt_tensor *t)
{
    if (t->grad != NULL && t->grad_pending) {
        memset(t->grad, 0, tt_tensor_size(t) * sizeof(tt_real));
        t->grad_pending = false;
    }
    return t->grad;
}

size_t tt_tensor_rows(const tt_tensor *tensor)
{
    return tensor == NULL ? 0 : tensor->rows;
}

size_t tt_tensor_cols(const tt_tensor *tensor)
{
    return tensor == NULL ? 0 : tensor->cols;
}

const char *tt_tensor_name(const tt_tensor *tensor)
{
    return tensor == NULL ? NULL : tensor->name;
}

tt_real *tt_tensor_data(tt_tensor *tensor)
{
    return tensor == NULL ? NULL : tensor->data;
}

tt_real *tt_tensor_grad(tt_tensor *tensor)
{
    if (tensor == NULL)
        return NULL;
    /* A tape tensor's buffer stays in the arena after backward, so that
     * tt_tape_print can still show it, but only a retained one is exposed. */
    if (tensor->tape != NULL && !tensor->retain_grad)
        return NULL;
    return tt_grad_values(tensor);
}

/* Returns true if backward can give the tensor a gradient. Otherwise fills
 * `err` with TT_ERR_STATE naming `caller` and the tensor. */
static bool check_gets_grad(const tt_tensor *tensor, const char *caller, tt_error *err)
{
    if (tensor->requires_grad)
        return true;
    char label[TT_LABEL_MAX];
    tt_tensor_label(tensor, "tensor", label);
    if (tensor->tape != NULL)
        tt_error_set(err, TT_ERR_STATE,
                     "%s: %s is computed only from tensors without a gradient, so it never "
                     "gets one",
                     caller, label);
    else
        tt_error_set(err, TT_ERR_STATE,
                     "%s: %s has no gradient; call tt_tensor_require_grad first", caller, label);
    return false;
}

tt_status tt_tensor_retain_grad(tt_tensor *tensor, tt_error *err)
{
    if (tensor == NULL) {
        tt_error_set(err, TT_ERR_ARG, "tt_tensor_retain_grad: tensor is NULL");
        return TT_ERR_ARG;
    }
    if (!check_gets_grad(tensor, "tt_tensor_retain_grad", err))
        return TT_ERR_STATE;
    tensor->retain_grad = true;
    return TT_OK;
}

tt_status tt_tensor_set_grad_hook(tt_tensor *tensor, tt_grad_hook hook, void *context,
                                  tt_error *err)
{
    if (tensor == NULL) {
        tt_error_set(err, TT_ERR_ARG, "tt_tensor_set_grad_hook: tensor is NULL");
        return TT_ERR_ARG;
    }
    if (hook != NULL && !check_gets_grad(tensor, "tt_tensor_set_grad_hook", err))
        return TT_ERR_STATE;
    tensor->grad_hook = hook;
    tensor->grad_hook_context = hook == NULL ? NULL : context;
    return TT_OK;
}

void tt_tensor_fill_uniform(tt_tensor *tensor, tt_rng *rng, tt_real low, tt_real high)
{
    if (tensor == NULL || rng == NULL)
        return;
    size_t size = tt_tensor_size(tensor);
    for (size_t i = 0; i < size; i++) {
        tt_real value = (tt_real)(low + (high - low) * tt_rng_uniform(rng));
        /* Rounding to tt_real can carry a draw just below high up to high. */
        if (value >= high && high > low)
            value = TT_NEXTAFTER(high, low);
        tensor->data[i] = value;
    }
}

void tt_tensor_fill_normal(tt_tensor *tensor, tt_rng *rng, tt_real mean, tt_real stddev)
{
    if (tensor == NULL || rng == NULL)
        return;
    size_t size = tt_tensor_size(tensor);
    for (size_t i = 0; i < size; i++)
        tensor->data[i] = (tt_real)(mean + stddev * tt_rng_normal(rng));
}
