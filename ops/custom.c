/* User-defined activations and ops: definitions created at run time that
 * the tape records and differentiates like the built-in ops.
 *
 * A definition carries an op descriptor (tt_op) of its own, with the
 * user's name. The records point to it, so the name appears in labels such
 * as "softsign@3". The gradient checker compares the ops of two runs by
 * their descriptors' addresses, and so finds the same op in every run.
 * Backward recovers the definition from the descriptor, its first member.
 *
 * Activation. Shapes: x is any rows × cols; out has x's shape (eq. 2 with
 * g the user's f). Saves nothing: backward rereads x, or the output y when
 * the derivative is written through y.
 * Gradient: dx += dout · f'(x).
 *
 * Op. The forward callback creates the output and may save one block of
 * bytes; both live in the arena. The record's saved state is a
 * custom_saved pointing to that block. Backward hands the callback the
 * gradients through a tt_custom_context. An input gradient that is still
 * pending (see tt_grad_accumulates) is zeroed on the callback's first
 * request for it, so the callback can always add. An optional kink test
 * reads two records through read-only contexts for tt_gradcheck.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensortape.h"
#include "internal.h"

/* Returns a heap copy of `text`, or NULL if memory runs out. */
static char *copy_text(const char *text)
{
    const size_t size = strlen(text) + 1;
    char *copy = malloc(size);
    if (copy != NULL)
        memcpy(copy, text, size);
    return copy;
}

/* ---- Activations ---------------------------------------------------------- */

struct tt_activation {
    tt_op op; /* first member: a record's op points here */
    char *name;
    tt_activation_fn function;
    tt_activation_fn derivative;
    tt_activation_fn derivative_from_output;
    tt_real *kinks;
    size_t n_kinks;
};

static const tt_activation *activation_of(const tt_record *record)
{
    return (const tt_activation *)record->op;
}

/* dx += dout · f'(x), or dx = that when the gradient is pending. */
static void activation_backward(const tt_record *record)
{
    const tt_activation *activation = activation_of(record);
    tt_tensor *x = record->inputs[0];
    if (x->grad == NULL)
        return;
    const bool add = tt_grad_accumulates(x);
    const tt_real *dout = record->output->grad;
    const size_t size = tt_tensor_size(x);
    /* f' is taken of x, or of the output y = f(x) when written through y. */
    const tt_real *argument =
        activation->derivative != NULL ? x->data : record->output->data;
    const tt_activation_fn derivative = activation->derivative != NULL
                                            ? activation->derivative
                                            : activation->derivative_from_output;
    for (size_t i = 0; i < size; i++) {
        const tt_real term = dout[i] * derivative(argument[i]);
        x->grad[i] = add ? x->grad[i] + term : term;
    }
}

/* Whether an element of x lies on different sides of a declared kink k
 * (x > k or not) in the two records, as relu does for its kink at 0. */
static bool activation_crosses_kink(const tt_record *base, const tt_record *moved)
{
    const tt_activation *activation = activation_of(base);
    const tt_real *base_x = base->inputs[0]->data;
    const tt_real *moved_x = moved->inputs[0]->data;
    const size_t size = tt_tensor_size(base->inputs[0]);
    for (size_t k = 0; k < activation->n_kinks; k++) {
        const tt_real kink = activation->kinks[k];
        for (size_t i = 0; i < size; i++)
            if ((base_x[i] > kink) != (moved_x[i] > kink))
                return true;
    }
    return false;
}

/* Returns NULL if `def` describes a valid activation, or why it does not. */
static const char *activation_def_problem(const tt_activation_def *def)
{
    if (def == NULL)
        return "def is NULL";
    if (def->name == NULL || def->name[0] == '\0')
        return "the name is NULL or empty";
    if (def->function == NULL)
        return "the function is NULL";
    if ((def->derivative == NULL) == (def->derivative_from_output == NULL))
        return "exactly one of derivative and derivative_from_output must be given";
    if (def->kinks == NULL && def->n_kinks > 0)
        return "kinks is NULL but n_kinks is not 0";
    for (size_t k = 0; k < def->n_kinks; k++)
        if (!isfinite(def->kinks[k]))
            return "a kink is NaN or infinite";
    return NULL;
}

tt_activation *tt_activation_new(const tt_activation_def *def, tt_error *err)
{
    const char *problem = activation_def_problem(def);
    if (problem != NULL) {
        const bool named = def != NULL && def->name != NULL && def->name[0] != '\0';
        tt_error_set(err, TT_ERR_ARG, "tt_activation_new: %s%s%s", problem,
                     named ? " in the definition of " : "", named ? def->name : "");
        return NULL;
    }

    tt_activation *activation = calloc(1, sizeof *activation);
    if (activation == NULL)
        goto nomem;
    activation->name = copy_text(def->name);
    if (activation->name == NULL)
        goto nomem;
    if (def->n_kinks > 0) {
        activation->kinks = malloc(def->n_kinks * sizeof *activation->kinks);
        if (activation->kinks == NULL)
            goto nomem;
        memcpy(activation->kinks, def->kinks, def->n_kinks * sizeof *activation->kinks);
    }
    activation->n_kinks = def->n_kinks;
    activation->function = def->function;
    activation->derivative = def->derivative;
    activation->derivative_from_output = def->derivative_from_output;
    activation->op.name = activation->name;
    activation->op.n_inputs = 1;
    activation->op.backward = activation_backward;
    activation->op.crosses_kink = def->n_kinks > 0 ? activation_crosses_kink : NULL;
    return activation;

nomem:
    tt_activation_free(activation);
    tt_error_set(err, TT_ERR_NOMEM, "tt_activation_new: out of memory for activation %s",
                 def->name);
    return NULL;
}

void tt_activation_free(tt_activation *activation)
{
    if (activation == NULL)
        return;
    free(activation->name);
    free(activation->kinks);
    free(activation);
}

const char *tt_activation_name(const tt_activation *activation)
{
    return activation == NULL ? NULL : activation->name;
}

tt_tensor *tt_activation_apply(tt_tape *tape, const tt_activation *activation, tt_tensor *x)
{
    if (tape == NULL || tt_tape_status(tape) != TT_OK)
        return NULL;
    if (activation == NULL) {
        tt_tape_fail(tape, TT_ERR_ARG, "tt_activation_apply: activation is NULL");
        return NULL;
    }
    tt_tensor *const inputs[] = {x};
    const char *const roles[] = {"x"};
    if (!tt_op_begin(tape, &activation->op, inputs, roles))
        return NULL;

    tt_tensor *out = tt_op_output(tape, &activation->op, inputs, x->rows, x->cols);
    if (out == NULL)
        return NULL;
    const size_t size = tt_tensor_size(x);
    for (size_t i = 0; i < size; i++)
        out->data[i] = activation->function(x->data[i]);
    tt_op_record(tape, &activation->op, inputs, out, NULL);
    return out;
}

/* ---- Ops ------------------------------------------------------------------ */

struct tt_custom_op {
    tt_op op; /* first member: a record's op points here */
    char *name;
    tt_custom_fn forward;
    tt_custom_fn backward;
    void *user;
    tt_custom_kink_fn crosses_kink;
};

/* A record's saved state: the block the forward callback saved, if any. */
typedef struct custom_saved {
    void *bytes;
} custom_saved;

/* The phase a context belongs to: forward, backward, or a kink test of
 * tt_gradcheck, which only reads. */
enum custom_phase { PHASE_FORWARD, PHASE_BACKWARD, PHASE_KINK_TEST };

struct tt_custom_context {
    tt_tape *tape;
    const tt_custom_op *op;
    enum custom_phase phase;
    tt_tensor *const *inputs; /* op->op.n_inputs of them */
    tt_tensor *output;
    void *saved_bytes;
};

/* Names of the inputs in messages, "input 0" to "input 7". */
static const char *const input_roles[TT_CUSTOM_MAX_INPUTS] = {
    "input 0", "input 1", "input 2", "input 3", "input 4", "input 5", "input 6", "input 7"};
_Static_assert(TT_CUSTOM_MAX_INPUTS == 8, "input_roles must name every possible input");

static const tt_custom_op *custom_op_of(const tt_record *record)
{
    return (const tt_custom_op *)record->op;
}

/* Records the failure that a callback reported by returning `status`, not
 * TT_OK. A value outside tt_status becomes TT_ERR_STATE, so that the tape's
 * status is always one that callers can test for. */
static void fail_with_callback_status(tt_tape *tape, const tt_custom_op *op,
                                      const char *callback, tt_status status)
{
    if (tt_status_is_failure(status))
        tt_tape_fail(tape, status, "%s: the %s callback failed with status '%s'", op->name,
                     callback, tt_status_str(status));
    else
        tt_tape_fail(tape, TT_ERR_STATE,
                     "%s: the %s callback returned %d, which is not a tt_status; it must "
                     "return TT_OK or a failure status such as TT_ERR_ARG",
                     op->name, callback, (int)status);
}

/* Runs the forward or backward callback (`phase` names it in messages) and
 * turns a failure into the tape's error. A callback that records ops on
 * the tape also fails, and its records are dropped. */
static void run_callback(tt_tape *tape, const tt_custom_op *op, const char *phase,
                         tt_custom_fn callback, tt_custom_context *context)
{
    const size_t length = tape->length;
    const tt_status status = callback(context, op->user);
    if (tape->length != length) {
        tape->length = length;
        tt_tape_fail(tape, TT_ERR_STATE,
                     "%s: the %s callback recorded ops on the tape; a callback must "
                     "compute with the tensors' data only",
                     op->name, phase);
    }
    if (status != TT_OK)
        fail_with_callback_status(tape, op, phase, status);
}

/* Runs the backward callback unless no input needs a gradient, and turns
 * its failure into the tape's error, which stops the backward pass. */
static void custom_backward(const tt_record *record)
{
    const tt_custom_op *op = custom_op_of(record);
    bool any_gradient = false;
    for (size_t i = 0; i < op->op.n_inputs; i++)
        any_gradient = any_gradient || record->inputs[i]->grad != NULL;
    if (!any_gradient)
        return;

    tt_tape *tape = record->output->tape;
    const custom_saved *saved = record->saved;
    tt_custom_context context = {tape, op, PHASE_BACKWARD, record->inputs, record->output,
                                 saved->bytes};
    run_callback(tape, op, "backward", op->backward, &context);
}

/* Hands the user's kink test a read-only context for each record. */
static bool custom_crosses_kink(const tt_record *base, const tt_record *moved)
{
    const tt_custom_op *op = custom_op_of(base);
    const custom_saved *base_saved = base->saved;
    const custom_saved *moved_saved = moved->saved;
    const tt_custom_context base_context = {base->output->tape, op, PHASE_KINK_TEST,
                                            base->inputs, base->output, base_saved->bytes};
    const tt_custom_context moved_context = {moved->output->tape, op, PHASE_KINK_TEST,
                                             moved->inputs, moved->output, moved_saved->bytes};
    return op->crosses_kink(&base_context, &moved_context, op->user);
}

static tt_status check_inputs(tt_tape *tape, const tt_custom_op *op, tt_tensor *const inputs[],
                              size_t n_inputs)
{
    if (op == NULL) {
        tt_tape_fail(tape, TT_ERR_ARG, "tt_custom_op_apply: op is NULL");
        return TT_ERR_ARG;
    }
    if (n_inputs != op->op.n_inputs) {
        tt_tape_fail(tape, TT_ERR_ARG, "%s: %zu inputs given but the op takes %zu", op->name,
                     n_inputs, op->op.n_inputs);
        return TT_ERR_ARG;
    }
    if (inputs == NULL) {
        tt_tape_fail(tape, TT_ERR_ARG, "%s: the inputs array is NULL", op->name);
        return TT_ERR_ARG;
    }
    return TT_OK;
}

tt_tensor *tt_custom_op_apply(tt_tape *tape, const tt_custom_op *op, tt_tensor *const inputs[],
                              size_t n_inputs)
{
    if (tape == NULL || tt_tape_status(tape) != TT_OK)
        return NULL;
    if (check_inputs(tape, op, inputs, n_inputs) != TT_OK)
        return NULL;
    if (!tt_op_begin(tape, &op->op, inputs, input_roles))
        return NULL;

    const tt_arena_mark mark = tt_arena_get_mark(&tape->arena);
    custom_saved *saved = tt_op_save(tape, &op->op, sizeof *saved);
    if (saved == NULL)
        return NULL;
    tt_custom_context context = {tape, op, PHASE_FORWARD, inputs, NULL, NULL};
    run_callback(tape, op, "forward", op->forward, &context);
    if (tt_tape_status(tape) == TT_OK && context.output == NULL)
        tt_tape_fail(tape, TT_ERR_STATE,
                     "%s: the forward callback returned TT_OK without creating an output; "
                     "it must call tt_custom_new_output",
                     op->name);
    if (tt_tape_status(tape) != TT_OK) {
        tt_arena_rewind(&tape->arena, mark);
        return NULL;
    }

    saved->bytes = context.saved_bytes;
    tt_op_record(tape, &op->op, inputs, context.output, saved);
    return context.output;
}

tt_custom_op *tt_custom_op_new(const tt_custom_op_def *def, tt_error *err)
{
    const char *problem = NULL;
    if (def == NULL)
        problem = "def is NULL";
    else if (def->name == NULL || def->name[0] == '\0')
        problem = "the name is NULL or empty";
    else if (def->forward == NULL || def->backward == NULL)
        problem = "the forward or the backward callback is NULL";
    if (problem == NULL && (def->n_inputs == 0 || def->n_inputs > TT_CUSTOM_MAX_INPUTS)) {
        tt_error_set(err, TT_ERR_ARG,
                     "tt_custom_op_new: n_inputs is %zu in the definition of %s; it must be "
                     "from 1 to %d",
                     def->n_inputs, def->name, TT_CUSTOM_MAX_INPUTS);
        return NULL;
    }
    if (problem != NULL) {
        const bool named = def != NULL && def->name != NULL && def->name[0] != '\0';
        tt_error_set(err, TT_ERR_ARG, "tt_custom_op_new: %s%s%s", problem,
                     named ? " in the definition of " : "", named ? def->name : "");
        return NULL;
    }

    tt_custom_op *op = calloc(1, sizeof *op);
    char *name = copy_text(def->name);
    if (op == NULL || name == NULL) {
        free(op);
        free(name);
        tt_error_set(err, TT_ERR_NOMEM, "tt_custom_op_new: out of memory for op %s", def->name);
        return NULL;
    }
    op->name = name;
    op->forward = def->forward;
    op->backward = def->backward;
    op->user = def->user;
    op->crosses_kink = def->crosses_kink;
    op->op.name = name;
    op->op.n_inputs = def->n_inputs;
    op->op.backward = custom_backward;
    op->op.crosses_kink = def->crosses_kink != NULL ? custom_crosses_kink : NULL;
    return op;
}

void tt_custom_op_free(tt_custom_op *op)
{
    if (op == NULL)
        return;
    free(op->name);
    free(op);
}

/* ---- Calls for the callbacks ------------------------------------------------ */

tt_tensor *tt_custom_input(const tt_custom_context *context, size_t index)
{
    if (context == NULL || index >= context->op->op.n_inputs)
        return NULL;
    return context->inputs[index];
}

tt_tensor *tt_custom_new_output(tt_custom_context *context, size_t rows, size_t cols)
{
    if (context == NULL || context->phase == PHASE_KINK_TEST)
        return NULL;
    const char *name = context->op->name;
    if (context->phase != PHASE_FORWARD || context->output != NULL) {
        tt_tape_fail(context->tape, TT_ERR_STATE,
                     "%s: tt_custom_new_output was called %s; call it once, in forward", name,
                     context->phase != PHASE_FORWARD ? "in backward" : "twice");
        return NULL;
    }
    size_t size;
    if (!tt_shape_size(rows, cols, sizeof(tt_real), &size)) {
        tt_tape_fail(context->tape, TT_ERR_ARG,
                     "%s: invalid output shape %zux%zu; both sizes must be at least 1 and "
                     "their product must fit in memory",
                     name, rows, cols);
        return NULL;
    }
    context->output =
        tt_op_output(context->tape, &context->op->op, context->inputs, rows, cols);
    return context->output;
}

tt_tensor *tt_custom_output(const tt_custom_context *context)
{
    return context == NULL ? NULL : context->output;
}

void *tt_custom_save(tt_custom_context *context, size_t size)
{
    if (context == NULL || context->phase == PHASE_KINK_TEST)
        return NULL;
    const char *name = context->op->name;
    if (context->phase != PHASE_FORWARD || context->saved_bytes != NULL || size == 0) {
        tt_tape_fail(context->tape, TT_ERR_STATE,
                     "%s: tt_custom_save was called %s; call it at most once, in forward, "
                     "with a size above 0",
                     name,
                     context->phase != PHASE_FORWARD ? "in backward"
                     : size == 0                     ? "with size 0"
                                                     : "twice");
        return NULL;
    }
    context->saved_bytes = tt_op_save(context->tape, &context->op->op, size);
    return context->saved_bytes;
}

void *tt_custom_saved(const tt_custom_context *context)
{
    return context == NULL ? NULL : context->saved_bytes;
}

const tt_real *tt_custom_output_grad(const tt_custom_context *context)
{
    if (context == NULL || context->phase != PHASE_BACKWARD)
        return NULL;
    return context->output->grad;
}

tt_real *tt_custom_input_grad(tt_custom_context *context, size_t index)
{
    if (context == NULL || context->phase != PHASE_BACKWARD ||
        index >= context->op->op.n_inputs)
        return NULL;
    /* A pending gradient is zeroed here, so the callback can always add. */
    return tt_grad_values(context->inputs[index]);
}

void tt_custom_fail(tt_custom_context *context, tt_status status, const char *format, ...)
{
    if (context == NULL || context->phase == PHASE_KINK_TEST ||
        tt_tape_status(context->tape) != TT_OK)
        return;
    char message[TT_ERROR_MESSAGE_MAX];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format != NULL ? format : "(no message)", args);
    va_end(args);
    tt_tape_fail(context->tape, tt_status_is_failure(status) ? status : TT_ERR_STATE, "%s: %s",
                 context->op->name, message);
}
