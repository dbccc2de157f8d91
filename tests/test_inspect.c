/* Looking into a tape: which gradients stay readable after backward
 * (tt_tensor_retain_grad), gradient hooks (tt_tensor_set_grad_hook), the
 * printed table (tt_tape_print) and the Graphviz graph (tt_tape_write_dot).
 *
 * When the environment variable TT_DOT names Graphviz's dot program, the
 * suite also renders a graph with it; meson sets TT_DOT when it finds dot. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* ---- A small tape --------------------------------------------------------- */

/* loss = relu(w)·x with w = [2 -1] (a parameter) and x = [3 4]ᵀ:
 * relu(w) = [2 0], loss = 6, dloss/drelu(w) = xᵀ = [3 4] and
 * dloss/dw = [3 0], since ReLU'(-1) = 0 (eq. 16). */
typedef struct small_tape {
    tt_tape *tape;
    tt_tensor *w;
    tt_tensor *x;
    tt_tensor *h;    /* relu(w), tape position 0 */
    tt_tensor *loss; /* h·x, tape position 1 */
} small_tape;

static small_tape new_small_tape(void)
{
    const tt_real w_values[2] = {2, -1};
    const tt_real x_values[2] = {3, 4};
    small_tape s;
    s.tape = new_tape_or_fail();
    s.w = new_tensor_or_fail(1, 2, w_values, "w");
    s.x = new_tensor_or_fail(2, 1, x_values, "x");
    require_grad_or_fail(s.w);
    s.h = tt_relu(s.tape, s.w);
    s.loss = tt_matmul(s.tape, s.h, s.x);
    assert_tape_ok(s.tape, "recording the small tape");
    return s;
}

static void free_small_tape(small_tape *s)
{
    tt_tape_free(s->tape);
    tt_tensor_free(s->w);
    tt_tensor_free(s->x);
}

/* ---- Hook recorder ---------------------------------------------------------- */

/* Largest number of hook calls and of gradient entries one recorder keeps. */
#define MAX_CALLS 8
#define MAX_ENTRIES 4

/* Every call of record_hook, in order, with a copy of the gradient. */
typedef struct hook_log {
    size_t n_calls;
    tt_tensor *tensors[MAX_CALLS];
    tt_real grads[MAX_CALLS][MAX_ENTRIES];
    tt_real scale; /* record_hook multiplies the gradient by this; 1 leaves it */
} hook_log;

static void record_hook(tt_tensor *tensor, tt_real *grad, void *context)
{
    hook_log *log = context;
    ck_assert_msg(log->n_calls < MAX_CALLS, "more than %d hook calls", MAX_CALLS);
    const size_t size = tt_tensor_rows(tensor) * tt_tensor_cols(tensor);
    ck_assert_msg(size <= MAX_ENTRIES, "hooked tensor has %zu entries, more than %d", size,
                  MAX_ENTRIES);
    log->tensors[log->n_calls] = tensor;
    memcpy(log->grads[log->n_calls], grad, size * sizeof *grad);
    log->n_calls++;
    for (size_t i = 0; i < size; i++)
        grad[i] *= log->scale;
}

static hook_log new_hook_log(void)
{
    hook_log log;
    memset(&log, 0, sizeof log);
    log.scale = 1;
    return log;
}

static void set_hook_or_fail(tt_tensor *tensor, hook_log *log)
{
    tt_error err = {TT_OK, ""};
    const tt_status status = tt_tensor_set_grad_hook(tensor, record_hook, log, &err);
    ck_assert_msg(status == TT_OK, "tt_tensor_set_grad_hook failed with status %d: %s",
                  (int)status, err.message);
}

/* Fails unless call `call` of the log was for `tensor` with gradient `want`. */
static void assert_call(const hook_log *log, size_t call, const tt_tensor *tensor,
                        const tt_real *want, size_t count)
{
    ck_assert_msg(call < log->n_calls, "hook call %zu missing: only %zu calls", call,
                  log->n_calls);
    ck_assert_msg(log->tensors[call] == tensor, "hook call %zu is for another tensor", call);
    char what[64];
    snprintf(what, sizeof what, "gradient seen by hook call %zu", call);
    assert_all_equal(what, log->grads[call], want, count);
}

/* ---- Kept gradients ----------------------------------------------------------- */

START_TEST(intermediate_gradient_is_null_without_retain)
{
    small_tape s = new_small_tape();
    ck_assert_int_eq(tt_tape_backward(s.tape, s.loss), TT_OK);

    ck_assert_ptr_null(tt_tensor_grad(s.h));
    ck_assert_ptr_null(tt_tensor_grad(s.loss));
    const tt_real want_dw[2] = {3, 0};
    assert_all_equal("dw", tt_tensor_grad(s.w), want_dw, 2);
    free_small_tape(&s);
}
END_TEST

START_TEST(retained_intermediate_keeps_gradient)
{
    small_tape s = new_small_tape();
    retain_grad_or_fail(s.h);
    retain_grad_or_fail(s.loss);
    ck_assert_int_eq(tt_tape_backward(s.tape, s.loss), TT_OK);

    const tt_real want_dh[2] = {3, 4};
    assert_all_equal("dh", tt_tensor_grad(s.h), want_dh, 2);
    const tt_real want_dloss[1] = {1};
    assert_all_equal("dloss", tt_tensor_grad(s.loss), want_dloss, 1);
    free_small_tape(&s);
}
END_TEST

START_TEST(retain_on_parameter_keeps_its_gradient)
{
    small_tape s = new_small_tape();
    retain_grad_or_fail(s.w);
    ck_assert_int_eq(tt_tape_backward(s.tape, s.loss), TT_OK);

    const tt_real want_dw[2] = {3, 0};
    assert_all_equal("dw", tt_tensor_grad(s.w), want_dw, 2);
    free_small_tape(&s);
}
END_TEST

START_TEST(retain_rejects_null)
{
    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_tensor_retain_grad(NULL, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_tensor_retain_grad: tensor is NULL");
}
END_TEST

START_TEST(retain_rejects_tensors_that_never_get_gradient)
{
    small_tape s = new_small_tape();
    tt_tape_reset(s.tape);
    tt_tensor *batch = tt_tape_tensor(s.tape, 2, 1, "batch");
    tt_tensor *copy = tt_relu(s.tape, batch);
    ck_assert_ptr_nonnull(copy);

    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_tensor_retain_grad(batch, &err), TT_ERR_STATE);
    ck_assert_str_eq(err.message, "tt_tensor_retain_grad: tensor (batch) is computed only from "
                                  "tensors without a gradient, so it never gets one");
    ck_assert_int_eq(tt_tensor_retain_grad(copy, &err), TT_ERR_STATE);
    ck_assert_str_eq(err.message, "tt_tensor_retain_grad: tensor (relu@0) is computed only from "
                                  "tensors without a gradient, so it never gets one");
    ck_assert_int_eq(tt_tensor_retain_grad(s.x, &err), TT_ERR_STATE);
    ck_assert_str_eq(err.message,
                     "tt_tensor_retain_grad: tensor (x) has no gradient; call "
                     "tt_tensor_require_grad first");
    free_small_tape(&s);
}
END_TEST

/* ---- Hooks -------------------------------------------------------------------- */

START_TEST(hooks_run_once_each_in_backward_order)
{
    /* Backward completes dloss first, then dh, then dw. */
    small_tape s = new_small_tape();
    hook_log log = new_hook_log();
    set_hook_or_fail(s.w, &log);
    set_hook_or_fail(s.h, &log);
    set_hook_or_fail(s.loss, &log);
    ck_assert_int_eq(tt_tape_backward(s.tape, s.loss), TT_OK);

    ck_assert_uint_eq(log.n_calls, 3);
    const tt_real want_dloss[1] = {1};
    const tt_real want_dh[2] = {3, 4};
    const tt_real want_dw[2] = {3, 0};
    assert_call(&log, 0, s.loss, want_dloss, 1);
    assert_call(&log, 1, s.h, want_dh, 2);
    assert_call(&log, 2, s.w, want_dw, 2);
    ck_assert_ptr_null(tt_tensor_grad(s.h));
    tt_tensor_set_grad_hook(s.w, NULL, NULL, NULL);
    free_small_tape(&s);
}
END_TEST

START_TEST(hook_sees_final_gradient_of_tape_tensor_used_twice)
{
    /* h = relu(x) with x = [1 -2 3] feeds two products:
     * loss = h·u + h·v with u = [1 2 3]ᵀ and v = [10 20 30]ᵀ, so the hook
     * must see dloss/dh = (u + v)ᵀ = [11 22 33], not either part alone. */
    tt_tape *tape = new_tape_or_fail();
    const tt_real x_values[3] = {1, -2, 3};
    const tt_real u_values[3] = {1, 2, 3};
    const tt_real v_values[3] = {10, 20, 30};
    tt_tensor *x = new_tensor_or_fail(1, 3, x_values, "x");
    tt_tensor *u = new_tensor_or_fail(3, 1, u_values, "u");
    tt_tensor *v = new_tensor_or_fail(3, 1, v_values, "v");
    require_grad_or_fail(x);
    hook_log log = new_hook_log();

    tt_tensor *h = tt_relu(tape, x);
    set_hook_or_fail(h, &log);
    tt_tensor *loss = tt_add(tape, tt_matmul(tape, h, u), tt_matmul(tape, h, v));
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    ck_assert_uint_eq(log.n_calls, 1);
    const tt_real want_dh[3] = {11, 22, 33};
    assert_call(&log, 0, h, want_dh, 3);

    tt_tensor_free(x);
    tt_tensor_free(u);
    tt_tensor_free(v);
    tt_tape_free(tape);
}
END_TEST

START_TEST(hook_sees_final_gradient_of_leaf_used_twice)
{
    /* loss = a·b + a·c + (a + a) with a = 2, b = 3, c = 5: a feeds three
     * ops, one of them twice, and the hook runs once, after the first op,
     * with dloss/da = b + c + 2 = 10. */
    tt_tape *tape = new_tape_or_fail();
    const tt_real a_value = 2;
    const tt_real b_value = 3;
    const tt_real c_value = 5;
    tt_tensor *a = new_tensor_or_fail(1, 1, &a_value, "a");
    tt_tensor *b = new_tensor_or_fail(1, 1, &b_value, "b");
    tt_tensor *c = new_tensor_or_fail(1, 1, &c_value, "c");
    require_grad_or_fail(a);
    hook_log log = new_hook_log();
    set_hook_or_fail(a, &log);

    tt_tensor *twice = tt_add(tape, a, a);
    tt_tensor *products = tt_add(tape, tt_matmul(tape, a, b), tt_matmul(tape, a, c));
    tt_tensor *loss = tt_add(tape, products, twice);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    ck_assert_uint_eq(log.n_calls, 1);
    const tt_real want_da[1] = {10};
    assert_call(&log, 0, a, want_da, 1);
    assert_all_equal("da", tt_tensor_grad(a), want_da, 1);

    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tensor_free(c);
    tt_tape_free(tape);
}
END_TEST

START_TEST(hook_change_flows_into_inputs)
{
    /* The hook doubles dloss/dh = [3 4], so dw becomes [6 0], and the
     * retained gradient of h shows the doubled values. */
    small_tape s = new_small_tape();
    hook_log log = new_hook_log();
    log.scale = 2;
    set_hook_or_fail(s.h, &log);
    retain_grad_or_fail(s.h);
    ck_assert_int_eq(tt_tape_backward(s.tape, s.loss), TT_OK);

    const tt_real want_seen[2] = {3, 4};
    assert_call(&log, 0, s.h, want_seen, 2);
    const tt_real want_dh[2] = {6, 8};
    assert_all_equal("dh", tt_tensor_grad(s.h), want_dh, 2);
    const tt_real want_dw[2] = {6, 0};
    assert_all_equal("dw", tt_tensor_grad(s.w), want_dw, 2);
    free_small_tape(&s);
}
END_TEST

START_TEST(hook_on_unused_output_sees_zero_gradient)
{
    /* unused = relu(w) is recorded before the loss but never read, so its
     * gradient is zero; its hook still runs, once. */
    small_tape s = new_small_tape();
    tt_tensor *unused = tt_relu(s.tape, s.w);
    tt_tensor *loss = tt_matmul(s.tape, s.h, s.x);
    hook_log log = new_hook_log();
    set_hook_or_fail(unused, &log);
    ck_assert_int_eq(tt_tape_backward(s.tape, loss), TT_OK);

    ck_assert_uint_eq(log.n_calls, 1);
    const tt_real zeros[2] = {0, 0};
    assert_call(&log, 0, unused, zeros, 2);
    const tt_real want_dw[2] = {3, 0};
    assert_all_equal("dw", tt_tensor_grad(s.w), want_dw, 2);
    free_small_tape(&s);
}
END_TEST

START_TEST(leaf_hook_lasts_across_resets_until_removed)
{
    /* Two passes on two recordings of the same tape without zero_grad: the
     * hook receives the accumulated gradient, [3 0] and then [6 0]. After it is
     * removed, a third pass calls nothing. */
    small_tape s = new_small_tape();
    hook_log log = new_hook_log();
    set_hook_or_fail(s.w, &log);
    ck_assert_int_eq(tt_tape_backward(s.tape, s.loss), TT_OK);
    tt_tape_reset(s.tape);
    tt_tensor *loss = tt_matmul(s.tape, tt_relu(s.tape, s.w), s.x);
    ck_assert_int_eq(tt_tape_backward(s.tape, loss), TT_OK);

    ck_assert_uint_eq(log.n_calls, 2);
    const tt_real want_first[2] = {3, 0};
    const tt_real want_second[2] = {6, 0};
    assert_call(&log, 0, s.w, want_first, 2);
    assert_call(&log, 1, s.w, want_second, 2);

    ck_assert_int_eq(tt_tensor_set_grad_hook(s.w, NULL, NULL, NULL), TT_OK);
    tt_tape_reset(s.tape);
    loss = tt_matmul(s.tape, tt_relu(s.tape, s.w), s.x);
    ck_assert_int_eq(tt_tape_backward(s.tape, loss), TT_OK);
    ck_assert_uint_eq(log.n_calls, 2);
    free_small_tape(&s);
}
END_TEST

START_TEST(set_hook_rejects_null_and_tensors_without_gradient)
{
    small_tape s = new_small_tape();
    hook_log log = new_hook_log();
    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_tensor_set_grad_hook(NULL, record_hook, &log, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_tensor_set_grad_hook: tensor is NULL");
    ck_assert_int_eq(tt_tensor_set_grad_hook(s.x, record_hook, &log, &err), TT_ERR_STATE);
    ck_assert_str_eq(err.message,
                     "tt_tensor_set_grad_hook: tensor (x) has no gradient; call "
                     "tt_tensor_require_grad first");

    /* The rejected hook must not run. */
    ck_assert_int_eq(tt_tape_backward(s.tape, s.loss), TT_OK);
    ck_assert_uint_eq(log.n_calls, 0);
    free_small_tape(&s);
}
END_TEST

/* ---- Printing ----------------------------------------------------------------- */

/* Returns what `print` writes for `tape`, as a string the caller frees. */
static char *capture(tt_status (*print)(const tt_tape *, FILE *), const tt_tape *tape)
{
    char *text = NULL;
    size_t length = 0;
    FILE *stream = open_memstream(&text, &length);
    ck_assert_ptr_nonnull(stream);
    ck_assert_int_eq(print(tape, stream), TT_OK);
    ck_assert_int_eq(fclose(stream), 0);
    return text;
}

START_TEST(print_shows_values_before_backward)
{
    small_tape s = new_small_tape();
    char *text = capture(tt_tape_print, s.tape);
    ck_assert_str_eq(
        text,
        "tape: 2 records, no backward pass yet\n"
        " pos  op             output                         inputs\n"
        "   0  relu           relu@0 1x2                     w 1x2\n"
        "      value min 0          max 2          mean 1          zeros 1/2  nan 0  inf 0\n"
        "   1  matmul         matmul@1 1x1                   relu@0 1x2, x 2x1\n"
        "      value min 6          max 6          mean 6          zeros 0/1  nan 0  inf 0\n"
        "parameters\n"
        "      w 1x2\n"
        "      value min -1         max 2          mean 0.5        zeros 0/2  nan 0  inf 0\n"
        "      grad  min 0          max 0          mean 0          zeros 2/2  nan 0  inf 0\n");
    free(text);
    free_small_tape(&s);
}
END_TEST

START_TEST(print_shows_every_gradient_after_backward)
{
    /* h's gradient is not retained, but the table still shows it. */
    small_tape s = new_small_tape();
    ck_assert_int_eq(tt_tape_backward(s.tape, s.loss), TT_OK);
    char *text = capture(tt_tape_print, s.tape);
    ck_assert_str_eq(
        text,
        "tape: 2 records, gradients from the last backward pass\n"
        " pos  op             output                         inputs\n"
        "   0  relu           relu@0 1x2                     w 1x2\n"
        "      value min 0          max 2          mean 1          zeros 1/2  nan 0  inf 0\n"
        "      grad  min 3          max 4          mean 3.5        zeros 0/2  nan 0  inf 0\n"
        "   1  matmul         matmul@1 1x1                   relu@0 1x2, x 2x1\n"
        "      value min 6          max 6          mean 6          zeros 0/1  nan 0  inf 0\n"
        "      grad  min 1          max 1          mean 1          zeros 0/1  nan 0  inf 0\n"
        "parameters\n"
        "      w 1x2\n"
        "      value min -1         max 2          mean 0.5        zeros 0/2  nan 0  inf 0\n"
        "      grad  min 0          max 3          mean 1.5        zeros 1/2  nan 0  inf 0\n");
    free(text);
    free_small_tape(&s);
}
END_TEST

START_TEST(print_counts_nan_and_inf_apart)
{
    /* relu([NaN inf; -1 0]) = [NaN inf; 0 0]: the finite entries are the
     * two zeros, so min = max = mean = 0. A tensor with no finite entry
     * shows "-". The unnamed input is "(unnamed)". */
    tt_tape *tape = new_tape_or_fail();
    const tt_real values[4] = {NAN, INFINITY, -1, 0};
    const tt_real bad[2] = {NAN, INFINITY};
    tt_tensor *s = new_tensor_or_fail(2, 2, values, NULL);
    tt_tensor *t = new_tensor_or_fail(1, 2, bad, "all bad");
    tt_relu(tape, s);
    tt_relu(tape, t);
    char *text = capture(tt_tape_print, tape);
    ck_assert_str_eq(
        text,
        "tape: 2 records, no backward pass yet\n"
        " pos  op             output                         inputs\n"
        "   0  relu           relu@0 2x2                     (unnamed) 2x2\n"
        "      value min 0          max 0          mean 0          zeros 2/4  nan 1  inf 1\n"
        "   1  relu           relu@1 1x2                     all bad 1x2\n"
        "      value min -          max -          mean -          zeros 0/2  nan 1  inf 1\n");
    free(text);
    tt_tensor_free(s);
    tt_tensor_free(t);
    tt_tape_free(tape);
}
END_TEST

START_TEST(print_shows_sticky_error_and_cleans_names)
{
    /* A name with a newline would break the table: it is shown with '?'. */
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(2, 3, NULL, "a\nb");
    tt_tensor *b = new_tensor_or_fail(2, 2, NULL, "b");
    ck_assert_ptr_null(tt_matmul(tape, a, b));
    char *text = capture(tt_tape_print, tape);
    ck_assert_str_eq(text, "tape: 0 records, no backward pass yet\n"
                           "error: matmul: A (a?b) is 2x3 but B (b) is 2x2; the columns of A "
                           "must equal the rows of B\n");
    free(text);

    tt_tape_reset(tape);
    tt_relu(tape, a);
    text = capture(tt_tape_print, tape);
    ck_assert_ptr_nonnull(strstr(text, "relu@0 2x3                     a?b 2x3\n"));
    free(text);
    tt_tensor_free(a);
    tt_tensor_free(b);
    tt_tape_free(tape);
}
END_TEST

START_TEST(print_and_dot_reject_null)
{
    tt_tape *tape = new_tape_or_fail();
    ck_assert_int_eq(tt_tape_print(NULL, stdout), TT_ERR_ARG);
    ck_assert_int_eq(tt_tape_print(tape, NULL), TT_ERR_ARG);
    ck_assert_int_eq(tt_tape_write_dot(NULL, stdout), TT_ERR_ARG);
    ck_assert_int_eq(tt_tape_write_dot(tape, NULL), TT_ERR_ARG);
    tt_tape_free(tape);
}
END_TEST

/* ---- DOT -------------------------------------------------------------------------- */

START_TEST(dot_marks_parameters_inputs_and_edges)
{
    /* w is a parameter (filled, bold), x an input (dashed); matmul's edges
     * carry the input's index. */
    small_tape s = new_small_tape();
    char *text = capture(tt_tape_write_dot, s.tape);
    ck_assert_str_eq(text,
                     "digraph tape {\n"
                     "  rankdir=TB;\n"
                     "  node [fontname=\"Helvetica\"];\n"
                     "  edge [fontname=\"Helvetica\", fontsize=10];\n"
                     "  t0_0 [label=\"w\\n1x2\", shape=box, style=\"filled,bold\", "
                     "fillcolor=\"#ffd27f\"];\n"
                     "  n0 [label=\"relu@0\\n1x2\", shape=ellipse];\n"
                     "  t0_0 -> n0;\n"
                     "  t1_1 [label=\"x\\n2x1\", shape=box, style=dashed];\n"
                     "  n1 [label=\"matmul@1\\n1x1\", shape=ellipse];\n"
                     "  n0 -> n1 [label=\"0\"];\n"
                     "  t1_1 -> n1 [label=\"1\"];\n"
                     "}\n");
    free(text);
    free_small_tape(&s);
}
END_TEST

START_TEST(dot_gives_each_input_one_node)
{
    /* A leaf read by two ops and a tape tensor read by two ops: one node
     * each, and every edge starts at it. */
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(1, 1, NULL, "a");
    require_grad_or_fail(a);
    tt_tensor *batch = tt_tape_tensor(tape, 1, 1, "batch");
    tt_tensor *h = tt_add(tape, a, batch);
    tt_tensor *left = tt_add(tape, h, a);
    tt_tensor *right = tt_add(tape, h, batch);
    tt_add(tape, left, right);
    char *text = capture(tt_tape_write_dot, tape);

    ck_assert_ptr_nonnull(strstr(text, "  t0_0 [label=\"a\\n1x1\""));
    ck_assert_ptr_nonnull(strstr(text, "  t0_1 [label=\"batch\\n1x1\", shape=box, style=dashed"));
    ck_assert_ptr_null(strstr(text, "  t1_"));
    ck_assert_ptr_null(strstr(text, "  t2_"));
    ck_assert_ptr_nonnull(strstr(text, "  t0_0 -> n1 [label=\"1\"];\n"));
    ck_assert_ptr_nonnull(strstr(text, "  t0_1 -> n2 [label=\"1\"];\n"));
    ck_assert_ptr_nonnull(strstr(text, "  n0 -> n1 [label=\"0\"];\n"));
    ck_assert_ptr_nonnull(strstr(text, "  n0 -> n2 [label=\"0\"];\n"));
    ck_assert_ptr_nonnull(strstr(text, "  n1 -> n3 [label=\"0\"];\n"));
    ck_assert_ptr_nonnull(strstr(text, "  n2 -> n3 [label=\"1\"];\n"));
    free(text);
    tt_tensor_free(a);
    tt_tape_free(tape);
}
END_TEST

START_TEST(dot_escapes_names)
{
    /* A quote and a backslash are escaped; a newline, a tab and the invalid
     * UTF-8 byte 0xff become '?'; the valid UTF-8 "é" stays. An op output
     * with a name shows it above its op. */
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *a = new_tensor_or_fail(1, 1, NULL, "q\"b\\s\nt\t\xff\xc3\xa9");
    tt_tensor *x = tt_tape_tensor(tape, 1, 1, NULL);
    tt_add(tape, a, x);
    char *text = capture(tt_tape_write_dot, tape);
    ck_assert_ptr_nonnull(strstr(text, "  t0_0 [label=\"q\\\"b\\\\s?t??\xc3\xa9\\n1x1\""));
    ck_assert_ptr_nonnull(strstr(text, "  t0_1 [label=\"(unnamed)\\n1x1\""));
    free(text);
    tt_tensor_free(a);
    tt_tape_free(tape);
}
END_TEST

/* Runs `program` with `arguments` (NULL-terminated, program first) and
 * returns its exit status, or -1 if it could not run. */
static int run_program(char *const arguments[])
{
    const pid_t child = fork();
    if (child == 0) {
        execv(arguments[0], arguments);
        _exit(127);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

START_TEST(dot_renders_with_graphviz)
{
    /* A one-hidden-layer MLP's tape with awkward names, rendered to SVG. */
    const char *dot = getenv("TT_DOT");
    ck_assert_ptr_nonnull(dot);
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *w1 = new_tensor_or_fail(3, 2, NULL, "w1 \"hidden\"");
    tt_tensor *b1 = new_tensor_or_fail(3, 1, NULL, "b1\\");
    tt_tensor *w2 = new_tensor_or_fail(2, 3, NULL, "w2\n");
    require_grad_or_fail(w1);
    require_grad_or_fail(b1);
    require_grad_or_fail(w2);
    tt_tensor *x = tt_tape_tensor(tape, 2, 4, "x");
    const int32_t labels[4] = {0, 1, 1, 0};
    tt_tensor *h = tt_relu(tape, tt_add(tape, tt_matmul(tape, w1, x), b1));
    tt_tensor *loss = tt_cross_entropy(tape, tt_matmul(tape, w2, h), labels, 4);
    ck_assert_int_eq(tt_tape_backward(tape, loss), TT_OK);

    char dot_path[] = "/tmp/tt_inspect_XXXXXX";
    const int fd = mkstemp(dot_path);
    ck_assert_int_ge(fd, 0);
    FILE *stream = fdopen(fd, "w");
    ck_assert_ptr_nonnull(stream);
    ck_assert_int_eq(tt_tape_write_dot(tape, stream), TT_OK);
    ck_assert_int_eq(fclose(stream), 0);

    char svg_path[sizeof dot_path + 4];
    snprintf(svg_path, sizeof svg_path, "%s.svg", dot_path);
    char *const arguments[] = {(char *)dot, "-Tsvg", "-o", svg_path, dot_path, NULL};
    const int status = run_program(arguments);
    ck_assert_msg(status == 0, "%s -Tsvg %s exited with status %d", dot, dot_path, status);

    /* The SVG has one <title> per node: w1, b1, w2, x and five op outputs. */
    FILE *svg = fopen(svg_path, "r");
    ck_assert_ptr_nonnull(svg);
    char line[1024];
    size_t node_titles = 0;
    while (fgets(line, sizeof line, svg) != NULL) {
        if (strstr(line, "class=\"node\"") != NULL)
            node_titles++;
    }
    fclose(svg);
    ck_assert_uint_eq(node_titles, 9);
    unlink(svg_path);
    unlink(dot_path);

    tt_tensor_free(w1);
    tt_tensor_free(b1);
    tt_tensor_free(w2);
    tt_tape_free(tape);
}
END_TEST

static Suite *inspect_suite(void)
{
    Suite *suite = suite_create("inspect");

    TCase *kept = add_test_case(suite, "retained_gradients");
    tcase_add_test(kept, intermediate_gradient_is_null_without_retain);
    tcase_add_test(kept, retained_intermediate_keeps_gradient);
    tcase_add_test(kept, retain_on_parameter_keeps_its_gradient);
    tcase_add_test(kept, retain_rejects_null);
    tcase_add_test(kept, retain_rejects_tensors_that_never_get_gradient);

    TCase *hooks = add_test_case(suite, "hooks");
    tcase_add_test(hooks, hooks_run_once_each_in_backward_order);
    tcase_add_test(hooks, hook_sees_final_gradient_of_tape_tensor_used_twice);
    tcase_add_test(hooks, hook_sees_final_gradient_of_leaf_used_twice);
    tcase_add_test(hooks, hook_change_flows_into_inputs);
    tcase_add_test(hooks, hook_on_unused_output_sees_zero_gradient);
    tcase_add_test(hooks, leaf_hook_lasts_across_resets_until_removed);
    tcase_add_test(hooks, set_hook_rejects_null_and_tensors_without_gradient);

    TCase *print = add_test_case(suite, "print");
    tcase_add_test(print, print_shows_values_before_backward);
    tcase_add_test(print, print_shows_every_gradient_after_backward);
    tcase_add_test(print, print_counts_nan_and_inf_apart);
    tcase_add_test(print, print_shows_sticky_error_and_cleans_names);
    tcase_add_test(print, print_and_dot_reject_null);

    TCase *dot = add_test_case(suite, "dot");
    tcase_add_test(dot, dot_marks_parameters_inputs_and_edges);
    tcase_add_test(dot, dot_gives_each_input_one_node);
    tcase_add_test(dot, dot_escapes_names);
    if (getenv("TT_DOT") != NULL)
        tcase_add_test(dot, dot_renders_with_graphviz);
    else
        fprintf(stderr, "note: TT_DOT is not set, so the graph is not rendered\n");
    return suite;
}

int main(void)
{
    return run_suite(inspect_suite());
}
