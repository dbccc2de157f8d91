/* The tape: records of the ops run on it, the sticky error, and the
 * backward pass that walks the records in reverse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Records a tape makes room for at first; the array doubles when full. */
#define FIRST_RECORD_CAPACITY 64

/* Default thread count of a tape: one per online CPU,
 * or one if the system cannot say. */
static size_t default_thread_count(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1)
        return 1;
    return (size_t)online < TT_MAX_THREADS ? (size_t)online : TT_MAX_THREADS;
}

tt_tape *tt_tape_new(tt_error *err)
{
    tt_tape *tape = calloc(1, sizeof *tape);
    if (tape == NULL) {
        tt_error_set(err, TT_ERR_NOMEM, "tt_tape_new: out of memory");
        return NULL;
    }
    tt_arena_init(&tape->arena);
    tape->error.status = TT_OK;
    tape->gemm_kernel = tt_gemm_kernel_best();
    if (tt_tape_set_threads(tape, 0, err) != TT_OK) {
        free(tape);
        return NULL;
    }
    return tape;
}

/* Grows the matrix-product scratch to at least `size` elements. Returns
 * false, keeping the old scratch, if memory runs out. */
static bool grow_gemm_scratch(tt_tape *tape, size_t size)
{
    if (size <= tape->gemm_scratch_size)
        return true;
    /* aligned_alloc wants a size that is a multiple of the alignment. */
    const size_t align_elements = TT_ARENA_ALIGN / sizeof(tt_real);
    if (size > SIZE_MAX / sizeof(tt_real) - align_elements)
        return false;
    size_t rounded = (size + align_elements - 1) / align_elements * align_elements;
    tt_real *scratch = aligned_alloc(TT_ARENA_ALIGN, rounded * sizeof(tt_real));
    if (scratch == NULL)
        return false;
    free(tape->gemm_scratch);
    tape->gemm_scratch = scratch;
    tape->gemm_scratch_size = rounded;
    return true;
}

tt_status tt_tape_set_threads(tt_tape *tape, size_t n_threads, tt_error *err)
{
    if (tape == NULL) {
        tt_error_set(err, TT_ERR_ARG, "tt_tape_set_threads: tape is NULL");
        return TT_ERR_ARG;
    }
    if (n_threads > TT_MAX_THREADS) {
        tt_error_set(err, TT_ERR_ARG, "tt_tape_set_threads: %zu threads requested; the maximum is %d",
                     n_threads, TT_MAX_THREADS);
        return TT_ERR_ARG;
    }
    if (n_threads == 0)
        n_threads = default_thread_count();
    const size_t old_threads = tt_pool_threads(tape->pool);
    if (n_threads == old_threads)
        return TT_OK;

    /* Products already on the tape reserved scratch for old_threads. Their
     * backward pass may run on n_threads, each using one thread's share. */
    const size_t share = tape->gemm_scratch_size / old_threads;
    if (n_threads > old_threads &&
        (share > SIZE_MAX / n_threads || !grow_gemm_scratch(tape, share * n_threads))) {
        tt_error_set(err, TT_ERR_NOMEM,
                     "tt_tape_set_threads: out of memory for the matrix-product scratch of %zu "
                     "threads; the tape keeps %zu",
                     n_threads, old_threads);
        return TT_ERR_NOMEM;
    }

    tt_pool *pool = NULL;
    if (n_threads > 1) {
        pool = tt_pool_new(n_threads);
        if (pool == NULL) {
            tt_error_set(err, TT_ERR_NOMEM,
                         "tt_tape_set_threads: could not start %zu threads; the tape keeps %zu",
                         n_threads, tt_pool_threads(tape->pool));
            return TT_ERR_NOMEM;
        }
    }
    tt_pool_free(tape->pool);
    tape->pool = pool;
    return TT_OK;
}

size_t tt_tape_threads(const tt_tape *tape)
{
    return tape == NULL ? 0 : tt_pool_threads(tape->pool);
}

void tt_tape_free(tt_tape *tape)
{
    if (tape == NULL)
        return;
    tt_arena_release(&tape->arena);
    free(tape->records);
    free(tape->gemm_scratch);
    tt_pool_free(tape->pool);
    free(tape);
}

void tt_tape_reset(tt_tape *tape)
{
    if (tape == NULL)
        return;
    tt_arena_reset(&tape->arena);
    tape->length = 0;
    tape->backward_end = 0;
    tape->error.status = TT_OK;
    tape->error.message[0] = '\0';
}

tt_status tt_tape_status(const tt_tape *tape)
{
    return tape == NULL ? TT_ERR_ARG : tape->error.status;
}

const tt_error *tt_tape_error(const tt_tape *tape)
{
    static const tt_error null_tape = {TT_ERR_ARG, "tape is NULL"};
    return tape == NULL ? &null_tape : &tape->error;
}

size_t tt_tape_length(const tt_tape *tape)
{
    return tape == NULL ? 0 : tape->length;
}

void tt_tape_fail(tt_tape *tape, tt_status status, const char *format, ...)
{
    if (tape->error.status != TT_OK)
        return;
    va_list args;
    va_start(args, format);
    tt_error_vset(&tape->error, status, format, args);
    va_end(args);
}

/* Copies `name` into the arena; NULL stays NULL. */
static bool copy_name(tt_tape *tape, const char *name, char **copy)
{
    *copy = NULL;
    if (name == NULL)
        return true;
    size_t length = strlen(name);
    *copy = tt_arena_alloc(&tape->arena, length + 1);
    if (*copy == NULL)
        return false;
    memcpy(*copy, name, length + 1);
    return true;
}

/* Allocates a tape tensor's header and its uninitialised data. */
static tt_tensor *tape_tensor_new(tt_tape *tape, size_t rows, size_t cols)
{
    size_t size;
    if (!tt_shape_size(rows, cols, sizeof(tt_real), &size))
        return NULL;
    tt_tensor *t = tt_arena_alloc(&tape->arena, sizeof *t);
    tt_real *data = tt_arena_alloc(&tape->arena, size * sizeof(tt_real));
    if (t == NULL || data == NULL)
        return NULL;
    memset(t, 0, sizeof *t);
    t->rows = rows;
    t->cols = cols;
    t->data = data;
    t->tape = tape;
    return t;
}

tt_tensor *tt_tape_tensor(tt_tape *tape, size_t rows, size_t cols, const char *name)
{
    if (tape == NULL || tape->error.status != TT_OK)
        return NULL;
    size_t size;
    if (!tt_shape_size(rows, cols, sizeof(tt_real), &size)) {
        tt_tape_fail(tape, TT_ERR_ARG,
                     "tt_tape_tensor: invalid shape %zux%zu; both sizes must be at least 1 and "
                     "their product must fit in memory",
                     rows, cols);
        return NULL;
    }

    tt_arena_mark mark = tt_arena_get_mark(&tape->arena);
    tt_tensor *t = tape_tensor_new(tape, rows, cols);
    if (t == NULL || !copy_name(tape, name, &t->name)) {
        tt_arena_rewind(&tape->arena, mark);
        tt_tape_fail(tape, TT_ERR_NOMEM, "tt_tape_tensor: out of memory for a %zux%zu tensor",
                     rows, cols);
        return NULL;
    }
    memset(t->data, 0, size * sizeof(tt_real));
    return t;
}

/* ---- Recording ops ------------------------------------------------------ */

bool tt_op_begin(tt_tape *tape, const tt_op *op, tt_tensor *const inputs[],
                 const char *const roles[])
{
    if (tape == NULL || tape->error.status != TT_OK)
        return false;

    for (size_t i = 0; i < op->n_inputs; i++) {
        if (inputs[i] == NULL) {
            tt_tape_fail(tape, TT_ERR_ARG, "%s: %s is NULL", op->name, roles[i]);
            return false;
        }
        if (inputs[i]->tape != NULL && inputs[i]->tape != tape) {
            char label[TT_LABEL_MAX];
            tt_tensor_label(inputs[i], roles[i], label);
            tt_tape_fail(tape, TT_ERR_ARG, "%s: %s belongs to another tape", op->name, label);
            return false;
        }
    }

    if (tape->length == tape->capacity) {
        size_t capacity = tape->capacity == 0 ? FIRST_RECORD_CAPACITY : 2 * tape->capacity;
        tt_record *records = realloc(tape->records, capacity * sizeof *records);
        if (records == NULL || capacity < tape->capacity) {
            tt_tape_fail(tape, TT_ERR_NOMEM, "%s: out of memory for the tape's records", op->name);
            return false;
        }
        tape->records = records;
        tape->capacity = capacity;
    }
    return true;
}

tt_tensor *tt_op_output(tt_tape *tape, const tt_op *op, tt_tensor *const inputs[],
                        size_t rows, size_t cols)
{
    tt_arena_mark mark = tt_arena_get_mark(&tape->arena);
    tt_tensor *out = tape_tensor_new(tape, rows, cols);
    if (out == NULL) {
        tt_arena_rewind(&tape->arena, mark);
        tt_tape_fail(tape, TT_ERR_NOMEM, "%s: out of memory for a %zux%zu output", op->name, rows,
                     cols);
        return NULL;
    }
    out->producer = op;
    out->position = tape->length;
    for (size_t i = 0; i < op->n_inputs; i++)
        out->requires_grad = out->requires_grad || inputs[i]->requires_grad;
    return out;
}

void *tt_op_save(tt_tape *tape, const tt_op *op, size_t size)
{
    void *saved = tt_arena_alloc(&tape->arena, size);
    if (saved == NULL)
        tt_tape_fail(tape, TT_ERR_NOMEM, "%s: out of memory for %zu bytes of saved state",
                     op->name, size);
    return saved;
}

bool tt_op_reserve_gemm_scratch(tt_tape *tape, const tt_op *op, size_t size)
{
    if (grow_gemm_scratch(tape, size))
        return true;
    tt_tape_fail(tape, TT_ERR_NOMEM, "%s: out of memory for %zu elements of matrix-product scratch",
                 op->name, size);
    return false;
}

void tt_op_record(tt_tape *tape, const tt_op *op, tt_tensor *const inputs[],
                  tt_tensor *output, void *saved)
{
    tt_record *record = &tape->records[tape->length++];
    record->op = op;
    for (size_t i = 0; i < TT_MAX_INPUTS; i++)
        record->inputs[i] = i < op->n_inputs ? inputs[i] : NULL;
    record->output = output;
    record->saved = saved;
    if (tape->anomaly_check)
        tt_anomaly_check_output(tape, record);
}

/* ---- Backward pass ------------------------------------------------------ */

/* Gives every op output up to `last` that requires a gradient a gradient
 * buffer, allocated in the arena on the first backward pass and marked as
 * pending: the first op that contributes to it overwrites it. */
static bool prepare_gradients(tt_tape *tape, size_t last)
{
    for (size_t position = 0; position <= last; position++) {
        tt_tensor *out = tape->records[position].output;
        if (!out->requires_grad)
            continue;
        size_t bytes = tt_tensor_size(out) * sizeof(tt_real);
        if (out->grad == NULL) {
            out->grad = tt_arena_alloc(&tape->arena, bytes);
            if (out->grad == NULL) {
                tt_tape_fail(tape, TT_ERR_NOMEM,
                             "backward: out of memory for the gradient of %s@%zu (%zux%zu)",
                             out->producer->name, position, out->rows, out->cols);
                return false;
            }
        }
        out->grad_pending = true;
    }
    return true;
}

/* Notes, for every caller-owned tensor with a hook that the records up to
 * `last` read, the earliest of those records: backward walks them in
 * reverse, so that record's step is the last to add to its gradient. */
static void place_leaf_hooks(tt_tape *tape, size_t last)
{
    for (size_t position = last + 1; position-- > 0;) {
        const tt_record *record = &tape->records[position];
        for (size_t i = 0; i < record->op->n_inputs; i++) {
            tt_tensor *x = record->inputs[i];
            if (x->tape == NULL && x->grad_hook != NULL)
                x->hook_position = position;
        }
    }
}

/* Calls the hooks of the record's caller-owned inputs whose gradients are
 * complete after its step, once for an input the record reads twice. */
static void run_leaf_hooks(const tt_record *record, size_t position)
{
    for (size_t i = 0; i < record->op->n_inputs; i++) {
        tt_tensor *x = record->inputs[i];
        if (x->tape != NULL || x->grad_hook == NULL || x->hook_position != position)
            continue;
        if (i > 0 && x == record->inputs[0])
            continue;
        x->grad_hook(x, tt_grad_values(x), x->grad_hook_context);
    }
}

tt_status tt_tape_backward(tt_tape *tape, tt_tensor *loss)
{
    if (tape == NULL)
        return TT_ERR_ARG;
    if (tape->error.status != TT_OK)
        return tape->error.status;

    if (loss == NULL) {
        tt_tape_fail(tape, TT_ERR_ARG, "backward: loss is NULL");
        return tape->error.status;
    }
    char label[TT_LABEL_MAX];
    tt_tensor_label(loss, "loss", label);
    if (loss->tape != tape || loss->producer == NULL) {
        tt_tape_fail(tape, TT_ERR_ARG, "backward: %s is not the output of an op on this tape",
                     label);
        return tape->error.status;
    }
    if (loss->rows != 1 || loss->cols != 1) {
        tt_tape_fail(tape, TT_ERR_SHAPE, "backward: %s is %zux%zu but must be 1x1", label,
                     loss->rows, loss->cols);
        return tape->error.status;
    }
    if (!loss->requires_grad) {
        tt_tape_fail(tape, TT_ERR_STATE,
                     "backward: %s does not depend on any tensor that requires a gradient",
                     label);
        return tape->error.status;
    }

    tape->backward_end = 0;
    if (!prepare_gradients(tape, loss->position))
        return tape->error.status;
    loss->grad[0] = 1;
    loss->grad_pending = false;
    place_leaf_hooks(tape, loss->position);

    /* Reverse record order is a valid order for the chain rule: an op's
     * output gradient is complete once every later op has added to it. */
    for (size_t position = loss->position + 1; position-- > 0;) {
        const tt_record *record = &tape->records[position];
        tt_tensor *out = record->output;
        if (!out->requires_grad)
            continue;
        /* When no later op used this output, its gradient is zero and, unless
         * a hook changes it, the op contributes nothing to its inputs. */
        const bool unused = out->grad_pending;
        if (unused) {
            memset(out->grad, 0, tt_tensor_size(out) * sizeof(tt_real));
            out->grad_pending = false;
        }
        if (out->grad_hook != NULL)
            out->grad_hook(out, out->grad, out->grad_hook_context);
        if (!unused || out->grad_hook != NULL) {
            record->op->backward(record);
            /* Only a user-defined op's backward can fail (tt_custom_op_apply). */
            if (tape->error.status != TT_OK)
                return tape->error.status;
            if (tape->anomaly_check && !tt_anomaly_check_gradients(tape, record))
                return tape->error.status;
        }
        run_leaf_hooks(record, position);
    }
    tape->backward_end = loss->position + 1;
    return TT_OK;
}
