#include "helpers.h"

#include <math.h>
#include <stdlib.h>

bool is_close(double got, double want, double atol, double rtol)
{
    if (isnan(got) || isnan(want))
        return false;
    if (isinf(got) || isinf(want))
        return got == want;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

double max_abs(const double *values, size_t count)
{
    double max = 0.0;
    for (size_t i = 0; i < count; i++)
        if (fabs(values[i]) > max)
            max = fabs(values[i]);
    return max;
}

void assert_all_close(const char *what, const tt_real *got, const double *want, size_t rows,
                      size_t cols, double atol, double rtol)
{
    ck_assert_msg(got != NULL, "%s: the engine returned no values (NULL)", what);
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            const double g = (double)got[r * cols + c];
            const double w = want[r * cols + c];
            /* ck_abort_msg only on failure: a passing ck_assert_msg records a
             * checkpoint through a system call, which is slow in long loops. */
            if (!is_close(g, w, atol, rtol))
                ck_abort_msg("%s[%zu][%zu] of %zux%zu: got %.9g, want %.9g; |difference| %.3g "
                             "exceeds %.3g",
                             what, r, c, rows, cols, g, w, fabs(g - w), atol + rtol * fabs(w));
        }
    }
}

void assert_all_close_scaled(const char *what, const tt_real *got, const double *want,
                             size_t rows, size_t cols, double rtol)
{
    const double atol = rtol * max_abs(want, rows * cols);
    assert_all_close(what, got, want, rows, cols, atol, rtol);
}

void assert_all_equal(const char *what, const tt_real *got, const tt_real *want, size_t count)
{
    ck_assert_msg(got != NULL, "%s: the engine returned no values (NULL)", what);
    for (size_t i = 0; i < count; i++)
        if (got[i] != want[i])
            ck_abort_msg("%s[%zu]: got %.9g, want exactly %.9g", what, i, (double)got[i],
                         (double)want[i]);
}

void central_difference(scalar_function f, void *context, double *x, size_t count, double step,
                        double *gradient)
{
    for (size_t j = 0; j < count; j++) {
        const double saved = x[j];
        x[j] = saved + step;
        const double above = f(x, count, context);
        x[j] = saved - step;
        const double below = f(x, count, context);
        x[j] = saved;
        gradient[j] = (above - below) / (2.0 * step);
    }
}

void reference_matmul(double *c, const double *a, const double *b, size_t m, size_t k, size_t n)
{
    for (size_t r = 0; r < m; r++) {
        for (size_t i = 0; i < n; i++) {
            double sum = 0.0;
            for (size_t p = 0; p < k; p++)
                sum += a[r * k + p] * b[p * n + i];
            c[r * n + i] = sum;
        }
    }
}

double reference_cross_entropy(const double *z, const int32_t *labels, size_t n_classes,
                               size_t n, double *softmax)
{
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        /* Column max, subtracted before exp so that no term overflows (eq. 9-10). */
        double max = z[i];
        for (size_t c = 1; c < n_classes; c++)
            if (z[c * n + i] > max)
                max = z[c * n + i];

        double sum = 0.0;
        for (size_t c = 0; c < n_classes; c++)
            sum += exp(z[c * n + i] - max);
        const double log_sum = log(sum);

        /* Per-sample loss of eq. 7 with one-hot y, lse minus the label's
         * logit, where lse = max + log_sum. The max is kept apart from
         * log_sum: adding them first would round log_sum away against a
         * large max, and z − lse would lose the digits of z − max. */
        total += (max - z[(size_t)labels[i] * n + i]) + log_sum;

        if (softmax != NULL)
            for (size_t c = 0; c < n_classes; c++)
                softmax[c * n + i] = exp((z[c * n + i] - max) - log_sum);
    }
    return total / (double)n;
}

loss_head new_loss_head(size_t rows, size_t cols, tt_rng *rng)
{
    loss_head head = {rows, cols, NULL, NULL, NULL};
    head.projection = new_uniform_tensor(HEAD_CLASSES, rows, rng, -1.0, 1.0, "P");
    head.projection_values = malloc(HEAD_CLASSES * rows * sizeof *head.projection_values);
    head.labels = malloc(cols * sizeof *head.labels);
    ck_assert_ptr_nonnull(head.projection_values);
    ck_assert_ptr_nonnull(head.labels);
    copy_to_double(head.projection_values, tt_tensor_data(head.projection), HEAD_CLASSES * rows);
    fill_labels(head.labels, cols, HEAD_CLASSES, rng);
    return head;
}

void free_loss_head(loss_head *head)
{
    tt_tensor_free(head->projection);
    free(head->projection_values);
    free(head->labels);
}

tt_tensor *apply_loss_head(tt_tape *tape, const loss_head *head, tt_tensor *y)
{
    return tt_cross_entropy(tape, tt_matmul(tape, head->projection, y), head->labels, head->cols);
}

double reference_loss_head(const loss_head *head, const double *y)
{
    double *logits = malloc(HEAD_CLASSES * head->cols * sizeof *logits);
    ck_assert_ptr_nonnull(logits);
    reference_matmul(logits, head->projection_values, y, HEAD_CLASSES, head->rows, head->cols);
    const double loss = reference_cross_entropy(logits, head->labels, HEAD_CLASSES, head->cols, NULL);
    free(logits);
    return loss;
}

tt_tensor *new_tensor_or_fail(size_t rows, size_t cols, const tt_real *data, const char *name)
{
    tt_error err = {TT_OK, ""};
    tt_tensor *tensor = data == NULL ? tt_tensor_new(rows, cols, name, &err)
                                     : tt_tensor_from_data(rows, cols, data, name, &err);
    ck_assert_msg(tensor != NULL, "creating %zux%zu tensor %s failed: %s", rows, cols,
                  name == NULL ? "(unnamed)" : name, err.message);
    return tensor;
}

tt_tensor *new_uniform_tensor(size_t rows, size_t cols, tt_rng *rng, double low, double high,
                              const char *name)
{
    tt_tensor *tensor = new_tensor_or_fail(rows, cols, NULL, name);
    tt_real *data = tt_tensor_data(tensor);
    for (size_t i = 0; i < rows * cols; i++)
        data[i] = (tt_real)(low + (high - low) * tt_rng_uniform(rng));
    return tensor;
}

void require_grad_or_fail(tt_tensor *tensor)
{
    tt_error err = {TT_OK, ""};
    const tt_status status = tt_tensor_require_grad(tensor, &err);
    ck_assert_msg(status == TT_OK, "tt_tensor_require_grad failed with status %d: %s",
                  (int)status, err.message);
}

void retain_grad_or_fail(tt_tensor *tensor)
{
    tt_error err = {TT_OK, ""};
    const tt_status status = tt_tensor_retain_grad(tensor, &err);
    ck_assert_msg(status == TT_OK, "tt_tensor_retain_grad failed with status %d: %s",
                  (int)status, err.message);
}

tt_tape *new_tape_or_fail(void)
{
    tt_error err = {TT_OK, ""};
    tt_tape *tape = tt_tape_new(&err);
    ck_assert_msg(tape != NULL, "tt_tape_new failed: %s", err.message);
    return tape;
}

void assert_tape_ok(const tt_tape *tape, const char *where)
{
    ck_assert_msg(tt_tape_status(tape) == TT_OK, "%s: tape failed with status %d: %s", where,
                  (int)tt_tape_status(tape), tt_tape_error(tape)->message);
}

void fill_away_from_zero(tt_real *values, size_t count, tt_rng *rng, double min_magnitude,
                         double max_magnitude)
{
    for (size_t i = 0; i < count; i++) {
        const double magnitude =
            min_magnitude + (max_magnitude - min_magnitude) * tt_rng_uniform(rng);
        values[i] = (tt_real)(tt_rng_below(rng, 2) == 0 ? magnitude : -magnitude);
    }
}

void copy_to_double(double *out, const tt_real *in, size_t count)
{
    for (size_t i = 0; i < count; i++)
        out[i] = (double)in[i];
}

void fill_labels(int32_t *labels, size_t count, size_t n_classes, tt_rng *rng)
{
    for (size_t i = 0; i < count; i++)
        labels[i] = (int32_t)tt_rng_below(rng, n_classes);
}

void assert_gradcheck_passes(const char *what, tt_loss_function loss, void *context,
                             tt_tensor *const tensors[], size_t n_tensors, size_t n_entries)
{
    tt_gradcheck_result result;
    tt_error err = {TT_OK, ""};
    const tt_status status =
        tt_gradcheck(loss, context, tensors, n_tensors, NULL, &result, &err);
    ck_assert_msg(status == TT_OK, "%s: tt_gradcheck returned %s: %s", what,
                  tt_status_str(status), err.message);
    ck_assert_msg(result.verdict == TT_GRADCHECK_PASSED, "%s: %s", what, result.summary);
    ck_assert_msg(result.n_compared == n_entries, "%s: %zu entries compared, want %zu", what,
                  result.n_compared, n_entries);
}

TCase *add_test_case(Suite *suite, const char *name)
{
    TCase *test_case = tcase_create(name);
    tcase_set_timeout(test_case, TEST_TIMEOUT_SECONDS);
    suite_add_tcase(suite, test_case);
    return test_case;
}

int run_suite(Suite *suite)
{
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_ENV);
    const int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

void fill_optimizers_with_most_state(tt_optimizer_options options[OPTIMIZERS_WITH_MOST_STATE])
{
    options[0] = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    options[0].momentum = 0.9;
    options[0].nesterov = true;
    options[0].weight_decay = 1e-4;
    options[1] = tt_optimizer_defaults(TT_OPTIMIZER_ADAM);
    options[1].weight_decay = 1e-4;
    options[2] = tt_optimizer_defaults(TT_OPTIMIZER_ADAMW);
}
