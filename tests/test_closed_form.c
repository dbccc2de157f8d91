/* The engine's gradients of a whole MLP against the closed-form gradients
 * of eq. 11-14, computed here in plain double loops that never call the
 * engine.
 *
 * The MLP has T layers: z(t) = W(t)·h(t-1) + b(t) (eq. 1), h(t) = ReLU(z(t))
 * for t < T (eq. 2, 15), and the mean softmax cross-entropy of z(T)
 * (eq. 3-8). Samples are columns: h(0) = x is s × n, W(t) is d_t × d_(t-1),
 * b(t) is d_t × 1. The closed form, as written in the README:
 *   (11) φ(T) = (ŷ − y)ᵀ                                 n × C
 *   (12) φ(t) = (φ(t+1)·W(t+1)) ⊙ ReLU'(z(t))ᵀ            n × d_t
 *   (13) ψ(t) = (1/n)·h(t−1)·φ(t)                         d_(t-1) × d_t
 *   (14) ∂L/∂b(t) = (1/n)·Σ_i φ(t, i)                     1 × d_t
 * ψ(t) is the transpose of the engine's dL/dW(t) (d_t × d_(t-1)), and eq. 14
 * is the transpose of the engine's dL/db(t) (d_t × 1).
 *
 * Comparison: an engine value `got` matches the closed-form value `want`
 * when
 *     |got − want| ≤ CLOSED_FORM_RTOL·|want| + CLOSED_FORM_RTOL·max|want|,
 * with the maximum over the tensor being compared. The engine computes in
 * tt_real, and an entry that is a sum of many terms of mixed sign (one
 * weight's gradient sums over n samples and, through eq. 12, over the next
 * layer's units) can cancel to nearly zero. Its rounding error is
 * proportional to the terms, not to the small result, so a purely relative
 * bound would reject correct float results. The tensor-scale term bounds
 * such entries by the size of the tensor's largest entry instead. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"

/* Relative tolerance of the comparison above: 1e-5 in float, where the
 * engine's error in these tests stays below 5e-7 of the tensor's largest
 * entry (a margin of 20), and 1e-10 in double, where it stays near 1e-15,
 * so that a step computed in float by mistake fails the double build. */
#define CLOSED_FORM_RTOL (sizeof(tt_real) == sizeof(float) ? 1e-5 : 1e-10)

/* Largest number of layers in the tests. */
#define MAX_LAYERS 4

/* Batch sizes of every test, including a single sample. */
static const size_t batch_sizes[] = {1, 7, 64};

#define BATCH_SIZE_COUNT (sizeof batch_sizes / sizeof batch_sizes[0])

/* Seeds of every test; each batch size runs with each. */
static const uint64_t seeds[] = {1, 2, 3};

#define SEED_COUNT (sizeof seeds / sizeof seeds[0])

/* An MLP's parameters and input, in double, drawn once and given to both
 * the engine (rounded to tt_real first) and the closed form. widths[0] is
 * s, widths[t] is d_t, widths[layers] is C. */
typedef struct mlp_problem {
    size_t layers;
    size_t widths[MAX_LAYERS + 1];
    size_t n;
    double *w[MAX_LAYERS + 1]; /* w[t]: d_t × d_(t-1), for t = 1..T */
    double *b[MAX_LAYERS + 1]; /* b[t]: d_t, for t = 1..T */
    double *x;                 /* s × n */
    int32_t *labels;           /* n labels in [0, C) */
} mlp_problem;

/* Returns a double array of `count` elements, failing the test if the
 * allocation fails. */
static double *new_doubles(size_t count)
{
    double *values = calloc(count, sizeof *values);
    ck_assert_ptr_nonnull(values);
    return values;
}

/* Draws the parameters and the input as tt_real values, so that the
 * engine and the closed form start from identical numbers: He-scaled
 * normal weights, small uniform biases and a standard normal input. */
static mlp_problem new_problem(size_t layers, const size_t *widths, size_t n, uint64_t seed)
{
    tt_rng rng;
    tt_rng_seed(&rng, seed);
    mlp_problem problem = {.layers = layers, .n = n};
    for (size_t t = 0; t <= layers; t++)
        problem.widths[t] = widths[t];

    for (size_t t = 1; t <= layers; t++) {
        const size_t d_out = widths[t];
        const size_t d_in = widths[t - 1];
        const double scale = sqrt(2.0 / (double)d_in);
        problem.w[t] = new_doubles(d_out * d_in);
        problem.b[t] = new_doubles(d_out);
        for (size_t i = 0; i < d_out * d_in; i++)
            problem.w[t][i] = (tt_real)(scale * tt_rng_normal(&rng));
        for (size_t k = 0; k < d_out; k++)
            problem.b[t][k] = (tt_real)(0.2 * tt_rng_uniform(&rng) - 0.1);
    }

    problem.x = new_doubles(widths[0] * n);
    for (size_t i = 0; i < widths[0] * n; i++)
        problem.x[i] = (tt_real)tt_rng_normal(&rng);
    problem.labels = malloc(n * sizeof *problem.labels);
    ck_assert_ptr_nonnull(problem.labels);
    fill_labels(problem.labels, n, widths[layers], &rng);
    return problem;
}

static void free_problem(mlp_problem *problem)
{
    for (size_t t = 1; t <= problem->layers; t++) {
        free(problem->w[t]);
        free(problem->b[t]);
    }
    free(problem->x);
    free(problem->labels);
}

/* ---- Closed form ------------------------------------------------------------ */

/* The closed form's forward values and gradients for one problem. */
typedef struct closed_form {
    double *z[MAX_LAYERS + 1];   /* z(t): d_t × n, t = 1..T */
    double *h[MAX_LAYERS + 1];   /* h(t): d_t × n, t = 0..T-1; h[0] is x */
    double loss;                 /* L of eq. 8 */
    double *psi[MAX_LAYERS + 1]; /* ψ(t): d_(t-1) × d_t (eq. 13) */
    double *db[MAX_LAYERS + 1];  /* ∂L/∂b(t): 1 × d_t (eq. 14) */
} closed_form;

/* Forward pass in double: eq. 1, 2 and 15 for each layer, then eq. 5-10. */
static void closed_form_forward(closed_form *out, const mlp_problem *p)
{
    const size_t n = p->n;
    out->h[0] = p->x;

    for (size_t t = 1; t <= p->layers; t++) {
        const size_t d_out = p->widths[t];
        const size_t d_in = p->widths[t - 1];
        const double *h_prev = out->h[t - 1];

        /* z(t) = W(t)·h(t-1) + b(t), the bias added to every column (eq. 1). */
        double *z = new_doubles(d_out * n);
        for (size_t k = 0; k < d_out; k++) {
            for (size_t i = 0; i < n; i++) {
                double sum = p->b[t][k];
                for (size_t j = 0; j < d_in; j++)
                    sum += p->w[t][k * d_in + j] * h_prev[j * n + i];
                z[k * n + i] = sum;
            }
        }
        out->z[t] = z;

        /* h(t) = ReLU(z(t)) (eq. 2, 15), for hidden layers only. */
        if (t < p->layers) {
            double *h = new_doubles(d_out * n);
            for (size_t r = 0; r < d_out * n; r++)
                h[r] = z[r] > 0 ? z[r] : 0;
            out->h[t] = h;
        }
    }

    /* L = (1/n) Σ_i (log Σ_c exp z_c − Σ_c y_c z_c) (eq. 6-8), with the max
     * shift of eq. 10. */
    out->loss = reference_cross_entropy(out->z[p->layers], p->labels, p->widths[p->layers], n,
                                        NULL);
}

/* Backward pass in double, eq. 11-14 exactly as written. */
static void closed_form_backward(closed_form *out, const mlp_problem *p)
{
    const size_t n = p->n;
    const size_t layers = p->layers;
    const size_t n_classes = p->widths[layers];
    double *phi[MAX_LAYERS + 2] = {NULL};

    /* ŷ = softmax(z(T)) (eq. 5, with the max shift of eq. 9). */
    double *softmax = new_doubles(n_classes * n);
    reference_cross_entropy(out->z[layers], p->labels, n_classes, n, softmax);

    /* φ(T) = (ŷ − y)ᵀ, n × C (eq. 11): row i is sample i. */
    phi[layers] = new_doubles(n * n_classes);
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < n_classes; c++)
            phi[layers][i * n_classes + c] =
                softmax[c * n + i] - (p->labels[i] == (int32_t)c ? 1.0 : 0.0);
    free(softmax);

    /* φ(t) = (φ(t+1)·W(t+1)) ⊙ ReLU'(z(t))ᵀ, n × d_t (eq. 12), with
     * ReLU'(z) = 0 for z ≤ 0 and 1 otherwise (eq. 16). */
    for (size_t t = layers - 1; t >= 1; t--) {
        const size_t d_t = p->widths[t];
        const size_t d_next = p->widths[t + 1];
        phi[t] = new_doubles(n * d_t);
        for (size_t i = 0; i < n; i++) {
            for (size_t k = 0; k < d_t; k++) {
                double sum = 0.0;
                for (size_t j = 0; j < d_next; j++)
                    sum += phi[t + 1][i * d_next + j] * p->w[t + 1][j * d_t + k];
                const double relu_derivative = out->z[t][k * n + i] > 0 ? 1.0 : 0.0;
                phi[t][i * d_t + k] = sum * relu_derivative;
            }
        }
    }

    for (size_t t = 1; t <= layers; t++) {
        const size_t d_t = p->widths[t];
        const size_t d_prev = p->widths[t - 1];

        /* ψ(t) = (1/n)·h(t−1)·φ(t), d_(t-1) × d_t (eq. 13). */
        out->psi[t] = new_doubles(d_prev * d_t);
        for (size_t j = 0; j < d_prev; j++) {
            for (size_t k = 0; k < d_t; k++) {
                double sum = 0.0;
                for (size_t i = 0; i < n; i++)
                    sum += out->h[t - 1][j * n + i] * phi[t][i * d_t + k];
                out->psi[t][j * d_t + k] = sum / (double)n;
            }
        }

        /* ∂L/∂b(t) = (1/n)·Σ_i φ(t, i), a 1 × d_t row (eq. 14). */
        out->db[t] = new_doubles(d_t);
        for (size_t k = 0; k < d_t; k++) {
            double sum = 0.0;
            for (size_t i = 0; i < n; i++)
                sum += phi[t][i * d_t + k];
            out->db[t][k] = sum / (double)n;
        }
    }

    for (size_t t = 1; t <= layers; t++)
        free(phi[t]);
}

static void free_closed_form(closed_form *form, size_t layers)
{
    for (size_t t = 1; t <= layers; t++) {
        free(form->z[t]);
        if (t < layers)
            free(form->h[t]);
        free(form->psi[t]);
        free(form->db[t]);
    }
}

/* ---- Engine ----------------------------------------------------------------- */

/* Builds the MLP on the engine from the problem's values, runs backward,
 * and compares loss, pre-activations and gradients with the closed form. */
static void compare_engine_with_closed_form(const mlp_problem *p, const closed_form *form,
                                            const char *label)
{
    const size_t n = p->n;
    const size_t layers = p->layers;
    tt_tensor *w[MAX_LAYERS + 1] = {NULL};
    tt_tensor *b[MAX_LAYERS + 1] = {NULL};
    tt_tensor *z[MAX_LAYERS + 1] = {NULL};
    char what[160];

    /* Parameters as caller-owned tensors that require gradients. */
    for (size_t t = 1; t <= layers; t++) {
        const size_t d_out = p->widths[t];
        const size_t d_in = p->widths[t - 1];
        w[t] = new_tensor_or_fail(d_out, d_in, NULL, "w");
        b[t] = new_tensor_or_fail(d_out, 1, NULL, "b");
        for (size_t i = 0; i < d_out * d_in; i++)
            tt_tensor_data(w[t])[i] = (tt_real)p->w[t][i];
        for (size_t k = 0; k < d_out; k++)
            tt_tensor_data(b[t])[k] = (tt_real)p->b[t][k];
        require_grad_or_fail(w[t]);
        require_grad_or_fail(b[t]);
    }

    /* Forward: the input is a per-step tape tensor, as in training. */
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *x = tt_tape_tensor(tape, p->widths[0], n, "x");
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < p->widths[0] * n; i++)
        tt_tensor_data(x)[i] = (tt_real)p->x[i];
    tt_tensor *h = x;
    for (size_t t = 1; t <= layers; t++) {
        z[t] = tt_add(tape, tt_matmul(tape, w[t], h), b[t]);
        h = t < layers ? tt_relu(tape, z[t]) : NULL;
    }
    tt_tensor *loss = tt_cross_entropy(tape, z[layers], p->labels, n);
    ck_assert_msg(loss != NULL, "%s: forward failed: %s", label, tt_tape_error(tape)->message);
    ck_assert_msg(tt_tape_backward(tape, loss) == TT_OK, "%s: backward failed: %s", label,
                  tt_tape_error(tape)->message);

    /* Loss against eq. 8. */
    const double got_loss = tt_tensor_data(loss)[0];
    ck_assert_msg(is_close(got_loss, form->loss, 0.0, CLOSED_FORM_RTOL),
                  "%s: loss = %.9g, eq. 8 gives %.9g", label, got_loss, form->loss);

    for (size_t t = 1; t <= layers; t++) {
        const size_t d_out = p->widths[t];
        const size_t d_in = p->widths[t - 1];

        /* Pre-activations against eq. 1. */
        snprintf(what, sizeof what, "%s: z(%zu)", label, t);
        assert_all_close_scaled(what, tt_tensor_data(z[t]), form->z[t], d_out, n,
                                CLOSED_FORM_RTOL);

        /* Where the two sides put a hidden pre-activation on opposite sides
         * of ReLU's kink (possible only within rounding of 0), ReLU' differs
         * and the gradients cannot agree: report the seed as unusable
         * instead of as a wrong gradient. */
        if (t < layers) {
            for (size_t r = 0; r < d_out * n; r++) {
                const bool engine_active = tt_tensor_data(z[t])[r] > 0;
                const bool closed_form_active = form->z[t][r] > 0;
                if (engine_active != closed_form_active)
                    ck_abort_msg("%s: z(%zu)[%zu][%zu] is %.9g in the engine and %.9g in double, "
                                 "on opposite sides of ReLU's kink at 0; choose another seed",
                                 label, t, r / n, r % n, (double)tt_tensor_data(z[t])[r],
                                 form->z[t][r]);
            }
        }

        /* dL/dW(t) against ψ(t)ᵀ (eq. 13). */
        double *want_dw = new_doubles(d_out * d_in);
        for (size_t k = 0; k < d_out; k++)
            for (size_t j = 0; j < d_in; j++)
                want_dw[k * d_in + j] = form->psi[t][j * d_out + k];
        snprintf(what, sizeof what, "%s: dL/dW(%zu) against psi(%zu) transposed", label, t, t);
        assert_all_close_scaled(what, tt_tensor_grad(w[t]), want_dw, d_out, d_in,
                                CLOSED_FORM_RTOL);
        free(want_dw);

        /* dL/db(t) (d_t × 1) against the 1 × d_t row of eq. 14, transposed:
         * the same d_t values. */
        snprintf(what, sizeof what, "%s: dL/db(%zu) against eq. 14 transposed", label, t);
        assert_all_close_scaled(what, tt_tensor_grad(b[t]), form->db[t], d_out, 1,
                                CLOSED_FORM_RTOL);
    }

    tt_tape_free(tape);
    for (size_t t = 1; t <= layers; t++) {
        tt_tensor_free(w[t]);
        tt_tensor_free(b[t]);
    }
}

/* Runs the comparison for one architecture with every batch size and seed. */
static void assert_closed_form_matches(size_t layers, const size_t *widths)
{
    for (size_t s = 0; s < BATCH_SIZE_COUNT; s++) {
        for (size_t seed = 0; seed < SEED_COUNT; seed++) {
            char label[96];
            int used = snprintf(label, sizeof label, "T = %zu, widths", layers);
            for (size_t t = 0; t <= layers && used > 0 && (size_t)used < sizeof label; t++)
                used += snprintf(label + used, sizeof label - (size_t)used, " %zu", widths[t]);
            snprintf(label + used, sizeof label - (size_t)used, ", n = %zu, seed %llu",
                     batch_sizes[s], (unsigned long long)seeds[seed]);

            mlp_problem problem = new_problem(layers, widths, batch_sizes[s], seeds[seed]);
            closed_form form = {{NULL}, {NULL}, 0.0, {NULL}, {NULL}};
            closed_form_forward(&form, &problem);
            closed_form_backward(&form, &problem);

            compare_engine_with_closed_form(&problem, &form, label);

            free_closed_form(&form, layers);
            free_problem(&problem);
        }
    }
}

/* ---- Tests ------------------------------------------------------------------ */

START_TEST(closed_form_matches_engine_for_one_layer)
{
    const size_t narrow[] = {5, 3};
    const size_t wide[] = {20, 10};
    assert_closed_form_matches(1, narrow);
    assert_closed_form_matches(1, wide);
}
END_TEST

START_TEST(closed_form_matches_engine_for_two_layers)
{
    const size_t narrow[] = {3, 1, 2};
    const size_t wide[] = {8, 16, 4};
    assert_closed_form_matches(2, narrow);
    assert_closed_form_matches(2, wide);
}
END_TEST

START_TEST(closed_form_matches_engine_for_three_layers)
{
    const size_t narrow[] = {6, 12, 7, 5};
    const size_t wide[] = {16, 32, 32, 10};
    assert_closed_form_matches(3, narrow);
    assert_closed_form_matches(3, wide);
}
END_TEST

START_TEST(closed_form_matches_engine_for_four_layers)
{
    const size_t narrow[] = {4, 5, 6, 7, 3};
    const size_t wide[] = {10, 32, 16, 8, 10};
    assert_closed_form_matches(4, narrow);
    assert_closed_form_matches(4, wide);
}
END_TEST

static Suite *closed_form_suite(void)
{
    Suite *suite = suite_create("closed_form");

    TCase *mlp = add_test_case(suite, "mlp");
    tcase_add_test(mlp, closed_form_matches_engine_for_one_layer);
    tcase_add_test(mlp, closed_form_matches_engine_for_two_layers);
    tcase_add_test(mlp, closed_form_matches_engine_for_three_layers);
    tcase_add_test(mlp, closed_form_matches_engine_for_four_layers);

    return suite;
}

int main(void)
{
    return run_suite(closed_form_suite());
}
