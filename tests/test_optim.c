/* Optimizers: steps worked by hand, several steps against a reference in
 * double written from the update rules in tensortape.h, gradient zeroing,
 * learning-rate changes and every error path. The comparison with
 * PyTorch's own optimizers is in tests/torch/. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* ---- Hand-worked steps ------------------------------------------------------ */

/* A 1 × 1 parameter holding `value`, with a gradient. */
static tt_tensor *new_scalar_parameter(double value)
{
    const tt_real data = (tt_real)value;
    tt_tensor *p = new_tensor_or_fail(1, 1, &data, "p");
    require_grad_or_fail(p);
    return p;
}

static tt_optimizer *new_optimizer_or_fail(tt_tensor *const params[], size_t n,
                                           const tt_optimizer_options *options)
{
    tt_error err = {TT_OK, ""};
    tt_optimizer *optimizer = tt_optimizer_new(params, n, options, &err);
    ck_assert_msg(optimizer != NULL, "tt_optimizer_new failed: %s", err.message);
    return optimizer;
}

/* Sets the scalar parameter's gradient to `g`, steps, and checks the value. */
static void step_and_expect(tt_optimizer *optimizer, tt_tensor *p, double g, double want,
                            const char *what)
{
    tt_tensor_grad(p)[0] = (tt_real)g;
    ck_assert_int_eq(tt_optimizer_step(optimizer, NULL), TT_OK);
    const double got = tt_tensor_data(p)[0];
    ck_assert_msg(is_close(got, want, 0.0, RTOL_REAL), "%s: p = %.9g, want %.9g", what, got,
                  want);
}

START_TEST(sgd_step_subtracts_rate_times_gradient)
{
    tt_tensor *p = new_scalar_parameter(1.0);
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    options.learning_rate = 0.1;
    tt_optimizer *optimizer = new_optimizer_or_fail(&p, 1, &options);

    /* 1 − 0.1·2 = 0.8, then 0.8 − 0.1·(−1) = 0.9 */
    step_and_expect(optimizer, p, 2.0, 0.8, "step 1");
    step_and_expect(optimizer, p, -1.0, 0.9, "step 2");

    tt_optimizer_free(optimizer);
    tt_tensor_free(p);
}
END_TEST

START_TEST(sgd_weight_decay_adds_to_gradient)
{
    tt_tensor *p = new_scalar_parameter(2.0);
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    options.learning_rate = 0.1;
    options.weight_decay = 0.5;
    tt_optimizer *optimizer = new_optimizer_or_fail(&p, 1, &options);

    /* g + 0.5·p = 1 + 1 = 2, so p = 2 − 0.2 = 1.8 */
    step_and_expect(optimizer, p, 1.0, 1.8, "step 1");

    tt_optimizer_free(optimizer);
    tt_tensor_free(p);
}
END_TEST

START_TEST(sgd_momentum_buffer_starts_at_gradient)
{
    tt_tensor *p = new_scalar_parameter(1.0);
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    options.learning_rate = 0.1;
    options.momentum = 0.9;
    tt_optimizer *optimizer = new_optimizer_or_fail(&p, 1, &options);

    /* g = 1 each step:
     * step 1: buf = 1,               p = 1 − 0.1     = 0.9
     * step 2: buf = 0.9·1 + 1 = 1.9, p = 0.9 − 0.19  = 0.71
     * step 3: buf = 1.71 + 1 = 2.71, p = 0.71 − 0.271 = 0.439 */
    step_and_expect(optimizer, p, 1.0, 0.9, "step 1");
    step_and_expect(optimizer, p, 1.0, 0.71, "step 2");
    step_and_expect(optimizer, p, 1.0, 0.439, "step 3");

    tt_optimizer_free(optimizer);
    tt_tensor_free(p);
}
END_TEST

START_TEST(sgd_dampening_skips_first_step)
{
    tt_tensor *p = new_scalar_parameter(1.0);
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    options.learning_rate = 0.1;
    options.momentum = 0.9;
    options.dampening = 0.5;
    tt_optimizer *optimizer = new_optimizer_or_fail(&p, 1, &options);

    /* step 1: buf = g = 1 undamped,       p = 0.9
     * step 2: buf = 0.9 + 0.5·1 = 1.4,    p = 0.9 − 0.14 = 0.76 */
    step_and_expect(optimizer, p, 1.0, 0.9, "step 1");
    step_and_expect(optimizer, p, 1.0, 0.76, "step 2");

    tt_optimizer_free(optimizer);
    tt_tensor_free(p);
}
END_TEST

START_TEST(sgd_nesterov_looks_ahead_by_momentum)
{
    tt_tensor *p = new_scalar_parameter(1.0);
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    options.learning_rate = 0.1;
    options.momentum = 0.9;
    options.nesterov = true;
    tt_optimizer *optimizer = new_optimizer_or_fail(&p, 1, &options);

    /* step 1: buf = 1,   d = 1 + 0.9·1   = 1.9,  p = 1 − 0.19    = 0.81
     * step 2: buf = 1.9, d = 1 + 0.9·1.9 = 2.71, p = 0.81 − 0.271 = 0.539 */
    step_and_expect(optimizer, p, 1.0, 0.81, "step 1");
    step_and_expect(optimizer, p, 1.0, 0.539, "step 2");

    tt_optimizer_free(optimizer);
    tt_tensor_free(p);
}
END_TEST

START_TEST(step_without_new_gradient_reads_it_as_zero)
{
    /* The first step leaves the gradient pending. A second step with no
     * backward pass in between must use g = 0, whatever the buffer contains:
     * step 1: g = 1, buf = 1,        p = 1 − 0.1    = 0.9
     * step 2: g = 0, buf = 0.9·1,    p = 0.9 − 0.09 = 0.81 */
    tt_tensor *p = new_scalar_parameter(1.0);
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    options.learning_rate = 0.1;
    options.momentum = 0.9;
    tt_optimizer *optimizer = new_optimizer_or_fail(&p, 1, &options);

    step_and_expect(optimizer, p, 1.0, 0.9, "step 1");
    ck_assert_int_eq(tt_optimizer_step(optimizer, NULL), TT_OK);
    const double got = tt_tensor_data(p)[0];
    ck_assert_msg(is_close(got, 0.81, 0.0, RTOL_REAL), "step 2: p = %.9g, want 0.81", got);
    ck_assert_msg(tt_tensor_grad(p)[0] == 0, "gradient %g after step 2, want 0",
                  (double)tt_tensor_grad(p)[0]);

    tt_optimizer_free(optimizer);
    tt_tensor_free(p);
}
END_TEST

START_TEST(adam_first_step_moves_by_rate_times_sign)
{
    tt_tensor *p = new_scalar_parameter(1.0);
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_ADAM);
    options.learning_rate = 0.1;
    tt_optimizer *optimizer = new_optimizer_or_fail(&p, 1, &options);

    /* m = 0.1·2 = 0.2, v = 0.001·4 = 0.004; corrected m = 0.2/0.1 = 2 and
     * √(0.004/0.001) = 2, so p = 1 − 0.1·2/(2 + 1e-8), which is 0.9 to
     * within 5e-10. */
    step_and_expect(optimizer, p, 2.0, 1.0 - 0.1 * 2.0 / (2.0 + 1e-8), "step 1");
    /* step 2, g = −2: m = 0.9·0.2 − 0.1·2 = −0.02, v = 0.999·0.004 +
     * 0.001·4 = 0.007996, and the corrections are 1 − 0.9² = 0.19 and
     * 1 − 0.999² = 0.001999, so p moves up by 0.1·(0.02/0.19)/(√4.0 + 1e-8),
     * about 0.00526. */
    const double p1 = 1.0 - 0.1 * 2.0 / (2.0 + 1e-8);
    const double m_hat = -0.02 / 0.19;
    const double v_hat = 0.007996 / 0.001999;
    step_and_expect(optimizer, p, -2.0, p1 - 0.1 * m_hat / (sqrt(v_hat) + 1e-8), "step 2");

    tt_optimizer_free(optimizer);
    tt_tensor_free(p);
}
END_TEST

START_TEST(adamw_decays_parameter_before_update)
{
    tt_tensor *p = new_scalar_parameter(2.0);
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_ADAMW);
    options.learning_rate = 0.1;
    options.weight_decay = 0.5;
    tt_optimizer *optimizer = new_optimizer_or_fail(&p, 1, &options);

    /* p = 2·(1 − 0.1·0.5) = 1.9, then the Adam step of about 0.1 with g = 3
     * (not changed by the decay): 1.9 − 0.1·3/(3 + 1e-8). */
    step_and_expect(optimizer, p, 3.0, 1.9 - 0.1 * 3.0 / (3.0 + 1e-8), "step 1");

    tt_optimizer_free(optimizer);
    tt_tensor_free(p);
}
END_TEST

START_TEST(adam_weight_decay_adds_to_gradient)
{
    tt_tensor *p = new_scalar_parameter(2.0);
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_ADAM);
    options.learning_rate = 0.1;
    options.weight_decay = 0.5;
    tt_optimizer *optimizer = new_optimizer_or_fail(&p, 1, &options);

    /* g = −0.5 + 0.5·2 = 0.5, so the first step moves p by −0.1·0.5/(0.5 + 1e-8);
     * without the decay it would move up by 0.1. */
    step_and_expect(optimizer, p, -0.5, 2.0 - 0.1 * 0.5 / (0.5 + 1e-8), "step 1");

    tt_optimizer_free(optimizer);
    tt_tensor_free(p);
}
END_TEST

/* ---- Several steps against a reference in double --------------------------------- */

/* Steps compared and the shapes of the two parameters. Two parameters of
 * different sizes check that each keeps state of its own. */
#define REFERENCE_STEPS 6
#define ROWS_A 3
#define COLS_A 4
#define ROWS_B 3
#define SIZE_A (ROWS_A * COLS_A)
#define SIZE_B ROWS_B
#define SIZE_ALL (SIZE_A + SIZE_B)

/* Tolerance relative to the largest |parameter|. Each step rounds each
 * element a few times in tt_real (about 4 units of u = EPSILON_REAL/2 per
 * step at most), so after REFERENCE_STEPS steps the error stays below
 * 4·6·u = 12·EPSILON_REAL; RTOL_REAL (128·EPSILON_REAL) keeps a margin of
 * ten and still fails a wrong factor or a missing term, which moves a
 * parameter by about the learning rate, 0.05 or more here. */
#define RTOL_STEPS RTOL_REAL

/* The update rules of tensortape.h in double, over SIZE_ALL elements with
 * state buffers buf (SGD), m and v (Adam, AdamW) starting at 0. */
typedef struct reference_state {
    double p[SIZE_ALL];
    double buf[SIZE_ALL];
    double m[SIZE_ALL];
    double v[SIZE_ALL];
} reference_state;

static void reference_step(reference_state *s, const tt_optimizer_options *o, const double *g,
                           int t)
{
    for (size_t i = 0; i < SIZE_ALL; i++) {
        double d = g[i];
        if (o->kind == TT_OPTIMIZER_SGD) {
            d += o->weight_decay * s->p[i];
            if (o->momentum != 0.0) {
                s->buf[i] = t == 1 ? d : o->momentum * s->buf[i] + (1.0 - o->dampening) * d;
                d = o->nesterov ? d + o->momentum * s->buf[i] : s->buf[i];
            }
            s->p[i] -= o->learning_rate * d;
            continue;
        }
        if (o->kind == TT_OPTIMIZER_ADAMW)
            s->p[i] *= 1.0 - o->learning_rate * o->weight_decay;
        else
            d += o->weight_decay * s->p[i];
        s->m[i] = o->beta1 * s->m[i] + (1.0 - o->beta1) * d;
        s->v[i] = o->beta2 * s->v[i] + (1.0 - o->beta2) * d * d;
        const double m_hat = s->m[i] / (1.0 - pow(o->beta1, t));
        const double v_hat = s->v[i] / (1.0 - pow(o->beta2, t));
        s->p[i] -= o->learning_rate * m_hat / (sqrt(v_hat) + o->epsilon);
    }
}

/* Runs REFERENCE_STEPS steps of the engine and of the reference on the same
 * random gradients and compares the parameters after each step. Also checks
 * that each step leaves the gradients zero. */
static void compare_with_reference(const tt_optimizer_options *options, const char *what)
{
    tt_rng rng;
    tt_rng_seed(&rng, 5);
    tt_tensor *a = new_uniform_tensor(ROWS_A, COLS_A, &rng, -1.0, 1.0, "a");
    tt_tensor *b = new_uniform_tensor(ROWS_B, 1, &rng, -1.0, 1.0, "b");
    require_grad_or_fail(a);
    require_grad_or_fail(b);
    tt_tensor *params[2] = {a, b};
    tt_optimizer *optimizer = new_optimizer_or_fail(params, 2, options);

    reference_state reference = {{0}, {0}, {0}, {0}};
    copy_to_double(reference.p, tt_tensor_data(a), SIZE_A);
    copy_to_double(reference.p + SIZE_A, tt_tensor_data(b), SIZE_B);

    for (int t = 1; t <= REFERENCE_STEPS; t++) {
        double g[SIZE_ALL];
        for (size_t i = 0; i < SIZE_ALL; i++) {
            /* Rounded to tt_real first, so both sides see the same gradient. */
            g[i] = (double)(tt_real)(2.0 * tt_rng_uniform(&rng) - 1.0);
            tt_real *grad = i < SIZE_A ? tt_tensor_grad(a) + i : tt_tensor_grad(b) + i - SIZE_A;
            *grad = (tt_real)g[i];
        }
        ck_assert_int_eq(tt_optimizer_step(optimizer, NULL), TT_OK);
        reference_step(&reference, options, g, t);

        char label[64];
        snprintf(label, sizeof label, "%s, a after step %d", what, t);
        assert_all_close(label, tt_tensor_data(a), reference.p, ROWS_A, COLS_A,
                         RTOL_STEPS * max_abs(reference.p, SIZE_ALL), RTOL_STEPS);
        snprintf(label, sizeof label, "%s, b after step %d", what, t);
        assert_all_close(label, tt_tensor_data(b), reference.p + SIZE_A, ROWS_B, 1,
                         RTOL_STEPS * max_abs(reference.p, SIZE_ALL), RTOL_STEPS);
        for (size_t i = 0; i < SIZE_ALL; i++) {
            const tt_real grad =
                i < SIZE_A ? tt_tensor_grad(a)[i] : tt_tensor_grad(b)[i - SIZE_A];
            ck_assert_msg(grad == 0, "%s: gradient %zu is %g after step %d, want 0", what, i,
                          (double)grad, t);
        }
    }
    ck_assert_uint_eq(tt_optimizer_steps(optimizer), REFERENCE_STEPS);

    tt_optimizer_free(optimizer);
    tt_tensor_free(a);
    tt_tensor_free(b);
}

START_TEST(sgd_variants_match_reference_over_steps)
{
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    options.learning_rate = 0.05;
    compare_with_reference(&options, "SGD");

    options.weight_decay = 0.1;
    compare_with_reference(&options, "SGD, weight decay");

    options.momentum = 0.9;
    compare_with_reference(&options, "SGD, momentum");

    options.dampening = 0.3;
    compare_with_reference(&options, "SGD, momentum and dampening");

    options.dampening = 0.0;
    options.nesterov = true;
    compare_with_reference(&options, "SGD, Nesterov");
}
END_TEST

START_TEST(adam_variants_match_reference_over_steps)
{
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_ADAM);
    options.learning_rate = 0.05;
    compare_with_reference(&options, "Adam");

    options.weight_decay = 0.1;
    options.beta1 = 0.5;
    options.beta2 = 0.9;
    options.epsilon = 1e-3;
    compare_with_reference(&options, "Adam, weight decay and other betas");

    options = tt_optimizer_defaults(TT_OPTIMIZER_ADAMW);
    options.learning_rate = 0.05;
    compare_with_reference(&options, "AdamW");

    options.weight_decay = 0.5;
    compare_with_reference(&options, "AdamW, weight decay 0.5");
}
END_TEST

/* ---- Learning rate and zeroing ---------------------------------------------------- */

START_TEST(set_learning_rate_keeps_momentum)
{
    tt_tensor *p = new_scalar_parameter(1.0);
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    options.learning_rate = 0.1;
    options.momentum = 0.5;
    tt_optimizer *optimizer = new_optimizer_or_fail(&p, 1, &options);

    /* step 1: buf = 1, p = 0.9. The rate becomes 0.01, and the buffer is
     * kept: step 2: buf = 0.5 + 1 = 1.5, p = 0.9 − 0.015 = 0.885. */
    step_and_expect(optimizer, p, 1.0, 0.9, "step 1");
    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_optimizer_set_learning_rate(optimizer, 0.01, &err), TT_OK);
    ck_assert(tt_optimizer_learning_rate(optimizer) == 0.01);
    step_and_expect(optimizer, p, 1.0, 0.885, "step 2");

    tt_optimizer_free(optimizer);
    tt_tensor_free(p);
}
END_TEST

START_TEST(set_learning_rate_rejects_invalid_rate)
{
    tt_tensor *p = new_scalar_parameter(1.0);
    tt_optimizer *optimizer = new_optimizer_or_fail(&p, 1, NULL);
    const double invalid[3] = {-0.1, NAN, INFINITY};

    for (size_t i = 0; i < 3; i++) {
        tt_error err = {TT_OK, ""};
        ck_assert_int_eq(tt_optimizer_set_learning_rate(optimizer, invalid[i], &err), TT_ERR_ARG);
        ck_assert_int_eq(err.status, TT_ERR_ARG);
        ck_assert_msg(strstr(err.message, "must be finite and at least 0") != NULL, "message: %s",
                      err.message);
        ck_assert_msg(tt_optimizer_learning_rate(optimizer) == 0.01,
                      "rate %g after a rejected change, want the default 0.01",
                      tt_optimizer_learning_rate(optimizer));
    }
    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_optimizer_set_learning_rate(NULL, 0.1, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_optimizer_set_learning_rate: optimizer is NULL");

    tt_optimizer_free(optimizer);
    tt_tensor_free(p);
}
END_TEST

START_TEST(zero_grad_clears_every_parameter)
{
    tt_rng rng;
    tt_rng_seed(&rng, 9);
    tt_tensor *a = new_uniform_tensor(2, 3, &rng, -1.0, 1.0, "a");
    tt_tensor *b = new_uniform_tensor(2, 1, &rng, -1.0, 1.0, "b");
    require_grad_or_fail(a);
    require_grad_or_fail(b);
    tt_tensor *params[2] = {a, b};
    tt_optimizer *optimizer = new_optimizer_or_fail(params, 2, NULL);
    for (size_t i = 0; i < 6; i++)
        tt_tensor_grad(a)[i] = 1;
    for (size_t i = 0; i < 2; i++)
        tt_tensor_grad(b)[i] = -1;
    tt_real before[6];
    memcpy(before, tt_tensor_data(a), sizeof before);

    tt_optimizer_zero_grad(optimizer);

    const tt_real zeros[6] = {0};
    assert_all_equal("gradient of a", tt_tensor_grad(a), zeros, 6);
    assert_all_equal("gradient of b", tt_tensor_grad(b), zeros, 2);
    assert_all_equal("data of a", tt_tensor_data(a), before, 6);
    ck_assert_uint_eq(tt_optimizer_steps(optimizer), 0);
    tt_optimizer_zero_grad(NULL);

    tt_optimizer_free(optimizer);
    tt_tensor_free(a);
    tt_tensor_free(b);
}
END_TEST

START_TEST(defaults_match_pytorch)
{
    const tt_optimizer_options sgd = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    ck_assert(sgd.learning_rate == 0.01 && sgd.momentum == 0.0 && sgd.dampening == 0.0);
    ck_assert(!sgd.nesterov && sgd.weight_decay == 0.0);
    ck_assert(sgd.beta1 == 0.0 && sgd.beta2 == 0.0 && sgd.epsilon == 0.0);

    const tt_optimizer_options adam = tt_optimizer_defaults(TT_OPTIMIZER_ADAM);
    ck_assert(adam.learning_rate == 1e-3 && adam.beta1 == 0.9 && adam.beta2 == 0.999);
    ck_assert(adam.epsilon == 1e-8 && adam.weight_decay == 0.0 && adam.momentum == 0.0);

    const tt_optimizer_options adamw = tt_optimizer_defaults(TT_OPTIMIZER_ADAMW);
    ck_assert(adamw.kind == TT_OPTIMIZER_ADAMW && adamw.weight_decay == 0.01);
    ck_assert(adamw.learning_rate == 1e-3 && adamw.beta1 == 0.9 && adamw.beta2 == 0.999);
}
END_TEST

/* ---- Errors ----------------------------------------------------------------- */

/* Checks that tt_optimizer_new rejects `options` over one scalar parameter
 * with TT_ERR_ARG and a message containing `fragment`. */
static void assert_options_rejected(const tt_optimizer_options *options, const char *fragment)
{
    tt_tensor *p = new_scalar_parameter(1.0);
    tt_error err = {TT_OK, ""};

    tt_optimizer *optimizer = tt_optimizer_new(&p, 1, options, &err);

    ck_assert_ptr_null(optimizer);
    ck_assert_int_eq(err.status, TT_ERR_ARG);
    ck_assert_msg(strstr(err.message, fragment) != NULL, "message \"%s\" lacks \"%s\"",
                  err.message, fragment);
    tt_tensor_free(p);
}

START_TEST(new_rejects_invalid_hyperparameters)
{
    tt_optimizer_options o = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    o.learning_rate = -1e-3;
    assert_options_rejected(&o, "learning_rate is -0.001; it must be finite and at least 0");

    o = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    o.momentum = NAN;
    assert_options_rejected(&o, "momentum is nan");

    o = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    o.weight_decay = INFINITY;
    assert_options_rejected(&o, "weight_decay is inf");

    o = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    o.momentum = 0.9;
    o.dampening = 1.5;
    assert_options_rejected(&o, "dampening is 1.5; it must be in [0, 1]");

    o = tt_optimizer_defaults(TT_OPTIMIZER_ADAM);
    o.beta1 = 1.0;
    assert_options_rejected(&o, "beta1 is 1; it must be in [0, 1)");

    o = tt_optimizer_defaults(TT_OPTIMIZER_ADAMW);
    o.beta2 = -0.5;
    assert_options_rejected(&o, "beta2 is -0.5; it must be in [0, 1)");

    o = tt_optimizer_defaults(TT_OPTIMIZER_ADAM);
    o.epsilon = -1e-8;
    assert_options_rejected(&o, "epsilon is -1e-08; it must be finite and at least 0");

    o = tt_optimizer_defaults(TT_OPTIMIZER_ADAM);
    o.weight_decay = -0.1;
    assert_options_rejected(&o, "weight_decay is -0.1");
}
END_TEST

START_TEST(new_rejects_nesterov_without_momentum)
{
    tt_optimizer_options o = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    o.nesterov = true;
    assert_options_rejected(&o, "nesterov needs momentum > 0 and dampening 0, but momentum is 0");

    o.momentum = 0.9;
    o.dampening = 0.1;
    assert_options_rejected(&o, "but momentum is 0.9 and dampening 0.1");
}
END_TEST

START_TEST(new_rejects_option_of_other_kind)
{
    tt_optimizer_options o = tt_optimizer_defaults(TT_OPTIMIZER_ADAM);
    o.momentum = 0.9;
    assert_options_rejected(&o, "momentum is 0.9 but applies only to SGD; keep it 0 for Adam");

    o = tt_optimizer_defaults(TT_OPTIMIZER_SGD);
    o.beta1 = 0.9;
    assert_options_rejected(&o, "beta1 is 0.9 but applies only to Adam and AdamW");

    o = tt_optimizer_defaults(TT_OPTIMIZER_ADAMW);
    o.nesterov = true;
    assert_options_rejected(&o, "nesterov applies only to SGD; keep it false for AdamW");

    o = tt_optimizer_defaults((tt_optimizer_kind)7);
    assert_options_rejected(&o, "unknown optimizer kind 7");
}
END_TEST

START_TEST(new_rejects_invalid_parameters)
{
    tt_tensor *with_grad = new_scalar_parameter(1.0);
    tt_tensor *without_grad = new_tensor_or_fail(2, 3, NULL, "w");
    tt_tape *tape = new_tape_or_fail();
    tt_tensor *on_tape = tt_tape_tensor(tape, 2, 2, "x");
    ck_assert_ptr_nonnull(on_tape);

    struct {
        tt_tensor *params[2];
        size_t n;
        const char *message;
    } cases[] = {
        {{with_grad, NULL}, 0, "tt_optimizer_new: no parameters (n_params is 0)"},
        {{with_grad, NULL}, 2, "tt_optimizer_new: params[1] is NULL"},
        {{with_grad, without_grad},
         2,
         "tt_optimizer_new: params[1] (w) is 2x3 and has no gradient; call "
         "tt_tensor_require_grad first"},
        {{on_tape, with_grad},
         2,
         "tt_optimizer_new: params[0] (x) is a tape tensor; parameters must be caller-owned"},
        {{with_grad, with_grad},
         2,
         "tt_optimizer_new: params[1] (p) is params[0] again; each parameter must be listed "
         "once"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tt_error err = {TT_OK, ""};
        ck_assert_ptr_null(tt_optimizer_new(cases[i].params, cases[i].n, NULL, &err));
        ck_assert_int_eq(err.status, TT_ERR_ARG);
        ck_assert_str_eq(err.message, cases[i].message);
    }

    tt_error err = {TT_OK, ""};
    ck_assert_ptr_null(tt_optimizer_new(NULL, 1, NULL, &err));
    ck_assert_str_eq(err.message, "tt_optimizer_new: params is NULL");
    /* NULL err is allowed. */
    ck_assert_ptr_null(tt_optimizer_new(NULL, 1, NULL, NULL));

    tt_tape_free(tape);
    tt_tensor_free(with_grad);
    tt_tensor_free(without_grad);
}
END_TEST

/* Parameters of 300 × 500 and 7 × 1 elements: together more than twice
 * the elements from which a step splits over threads, so a range boundary
 * falls inside the large one. */
#define LARGE_ROWS 300
#define LARGE_COLS 500
#define SMALL_ROWS 7

/* Runs `steps` steps of `options` from fixed parameters and gradients, on
 * a tape's `threads` threads (0: without a tape), and copies the resulting
 * parameters to `large` and `small`. */
static void run_steps_on_threads(const tt_optimizer_options *options, size_t threads,
                                 size_t steps, tt_real *large, tt_real *small)
{
    tt_rng rng;
    tt_rng_seed(&rng, 11);
    tt_tensor *a = new_uniform_tensor(LARGE_ROWS, LARGE_COLS, &rng, -1.0, 1.0, "a");
    tt_tensor *b = new_uniform_tensor(SMALL_ROWS, 1, &rng, -1.0, 1.0, "b");
    require_grad_or_fail(a);
    require_grad_or_fail(b);
    tt_tensor *params[2] = {a, b};
    tt_optimizer *optimizer = new_optimizer_or_fail(params, 2, options);
    tt_tape *tape = NULL;
    if (threads > 0) {
        tape = new_tape_or_fail();
        ck_assert_int_eq(tt_tape_set_threads(tape, threads, NULL), TT_OK);
        ck_assert_int_eq(tt_optimizer_use_tape_threads(optimizer, tape, NULL), TT_OK);
    }

    for (size_t step = 0; step < steps; step++) {
        for (size_t p = 0; p < 2; p++) {
            tt_real *grad = tt_tensor_grad(params[p]);
            const size_t size = tt_tensor_rows(params[p]) * tt_tensor_cols(params[p]);
            for (size_t i = 0; i < size; i++)
                grad[i] = (tt_real)(2.0 * tt_rng_uniform(&rng) - 1.0);
        }
        ck_assert_int_eq(tt_optimizer_step(optimizer, NULL), TT_OK);
    }
    memcpy(large, tt_tensor_data(a), LARGE_ROWS * LARGE_COLS * sizeof *large);
    memcpy(small, tt_tensor_data(b), SMALL_ROWS * sizeof *small);

    tt_optimizer_free(optimizer);
    tt_tape_free(tape);
    tt_tensor_free(a);
    tt_tensor_free(b);
}

START_TEST(steps_on_tape_threads_give_same_bits)
{
    tt_optimizer_options options[OPTIMIZERS_WITH_MOST_STATE];
    fill_optimizers_with_most_state(options);
    const char *const names[OPTIMIZERS_WITH_MOST_STATE] = {"SGD", "Adam", "AdamW"};
    tt_real *want_large = malloc(LARGE_ROWS * LARGE_COLS * sizeof *want_large);
    tt_real *got_large = malloc(LARGE_ROWS * LARGE_COLS * sizeof *got_large);
    ck_assert_ptr_nonnull(want_large);
    ck_assert_ptr_nonnull(got_large);
    tt_real want_small[SMALL_ROWS];
    tt_real got_small[SMALL_ROWS];

    for (size_t o = 0; o < OPTIMIZERS_WITH_MOST_STATE; o++) {
        run_steps_on_threads(&options[o], 0, 3, want_large, want_small);
        for (size_t threads = 1; threads <= 3; threads++) {
            run_steps_on_threads(&options[o], threads, 3, got_large, got_small);
            ck_assert_msg(memcmp(got_large, want_large,
                                 LARGE_ROWS * LARGE_COLS * sizeof *got_large) == 0,
                          "%s on %zu threads: the large parameter differs", names[o], threads);
            ck_assert_msg(memcmp(got_small, want_small, sizeof got_small) == 0,
                          "%s on %zu threads: the small parameter differs", names[o], threads);
        }
    }
    free(want_large);
    free(got_large);
}
END_TEST

START_TEST(use_tape_threads_rejects_null)
{
    tt_tape *tape = new_tape_or_fail();
    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_optimizer_use_tape_threads(NULL, tape, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_optimizer_use_tape_threads: optimizer is NULL");
    tt_tape_free(tape);
}
END_TEST

START_TEST(step_rejects_null)
{
    tt_error err = {TT_OK, ""};
    ck_assert_int_eq(tt_optimizer_step(NULL, &err), TT_ERR_ARG);
    ck_assert_str_eq(err.message, "tt_optimizer_step: optimizer is NULL");
    ck_assert_uint_eq(tt_optimizer_steps(NULL), 0);
    ck_assert(tt_optimizer_learning_rate(NULL) == 0.0);
    tt_optimizer_free(NULL);
}
END_TEST

static Suite *optim_suite(void)
{
    Suite *suite = suite_create("optim");

    TCase *hand = add_test_case(suite, "hand_worked");
    tcase_add_test(hand, sgd_step_subtracts_rate_times_gradient);
    tcase_add_test(hand, sgd_weight_decay_adds_to_gradient);
    tcase_add_test(hand, sgd_momentum_buffer_starts_at_gradient);
    tcase_add_test(hand, sgd_dampening_skips_first_step);
    tcase_add_test(hand, sgd_nesterov_looks_ahead_by_momentum);
    tcase_add_test(hand, step_without_new_gradient_reads_it_as_zero);
    tcase_add_test(hand, adam_first_step_moves_by_rate_times_sign);
    tcase_add_test(hand, adamw_decays_parameter_before_update);
    tcase_add_test(hand, adam_weight_decay_adds_to_gradient);

    TCase *reference = add_test_case(suite, "reference");
    tcase_add_test(reference, sgd_variants_match_reference_over_steps);
    tcase_add_test(reference, adam_variants_match_reference_over_steps);
    tcase_add_test(reference, steps_on_tape_threads_give_same_bits);

    TCase *control = add_test_case(suite, "control");
    tcase_add_test(control, set_learning_rate_keeps_momentum);
    tcase_add_test(control, set_learning_rate_rejects_invalid_rate);
    tcase_add_test(control, zero_grad_clears_every_parameter);
    tcase_add_test(control, defaults_match_pytorch);

    TCase *errors = add_test_case(suite, "errors");
    tcase_add_test(errors, new_rejects_invalid_hyperparameters);
    tcase_add_test(errors, new_rejects_nesterov_without_momentum);
    tcase_add_test(errors, new_rejects_option_of_other_kind);
    tcase_add_test(errors, new_rejects_invalid_parameters);
    tcase_add_test(errors, step_rejects_null);
    tcase_add_test(errors, use_tape_threads_rejects_null);

    return suite;
}

int main(void)
{
    return run_suite(optim_suite());
}
