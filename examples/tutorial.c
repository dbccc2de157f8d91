/* tutorial: the program that the README's tutorial builds step by step. It
 * trains a 2-16-3 MLP on three Gaussian blobs in the plane with Adam and
 * prints the loss and the accuracy. The README quotes this file, and a
 * test checks that every quoted block still appears here verbatim, so the
 * two cannot drift apart.
 *
 * Exits 0 if the final training accuracy reaches MIN_ACCURACY, 1 otherwise
 * or on any error, so that the test suite can run it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensortape.h"

#define N_FEATURES 2
#define N_HIDDEN 16
#define N_CLASSES 3
#define N_SAMPLES 600
#define BATCH 32
#define EPOCHS 20

/* The blobs' centres lie 2 from the origin, 2·√3 ≈ 3.46 apart, and their
 * standard deviation is 0.8. A point is misclassified when it lies more than
 * 1.73 = 2.2 deviations towards one of two other centres, so the best
 * possible accuracy is about 1 − 2·0.015 = 0.97. Guessing gives 1/3, and
 * MIN_ACCURACY lies between. */
#define BLOB_RADIUS 2.0
#define BLOB_SPREAD 0.8
#define MIN_ACCURACY 0.9

/* Writes N_SAMPLES points, one per column of the N_FEATURES × N_SAMPLES
 * row-major `features`: sample i belongs to class i mod N_CLASSES, whose
 * centre is at angle 2π·class/N_CLASSES. */
static void make_blobs(tt_real *features, int32_t *labels, tt_rng *rng)
{
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < N_SAMPLES; i++) {
        const int32_t label = (int32_t)(i % N_CLASSES);
        const double angle = two_pi * label / N_CLASSES;
        features[0 * N_SAMPLES + i] =
            (tt_real)(BLOB_RADIUS * cos(angle) + BLOB_SPREAD * tt_rng_normal(rng));
        features[1 * N_SAMPLES + i] =
            (tt_real)(BLOB_RADIUS * sin(angle) + BLOB_SPREAD * tt_rng_normal(rng));
        labels[i] = label;
    }
}

/* Copies the samples ids[0 .. n) into the columns of x (N_FEATURES × n)
 * and their labels into y. */
static void load_batch(tt_tensor *x, int32_t *y, const size_t *ids, size_t n,
                       const tt_real *features, const int32_t *labels)
{
    tt_real *values = tt_tensor_data(x);
    for (size_t f = 0; f < N_FEATURES; f++) {
        for (size_t i = 0; i < n; i++) {
            values[f * n + i] = features[f * N_SAMPLES + ids[i]];
        }
    }
    for (size_t i = 0; i < n; i++) {
        y[i] = labels[ids[i]];
    }
}

int main(void)
{
    static tt_real features[N_FEATURES * N_SAMPLES];
    static int32_t labels[N_SAMPLES];
    tt_rng rng;
    tt_rng_seed(&rng, 1);
    make_blobs(features, labels, &rng);

    int status = EXIT_FAILURE;
    tt_error err = {TT_OK, ""};
    tt_optimizer *optimizer = NULL;
    tt_batches *batches = NULL;
    tt_tape *tape = NULL;

    /* Step 1: parameters. W is d_out × d_in, a bias d_out × 1. */
    tt_tensor *w1 = tt_tensor_new(N_HIDDEN, N_FEATURES, "w1", &err);
    tt_tensor *b1 = tt_tensor_new(N_HIDDEN, 1, "b1", &err);
    tt_tensor *w2 = tt_tensor_new(N_CLASSES, N_HIDDEN, "w2", &err);
    tt_tensor *b2 = tt_tensor_new(N_CLASSES, 1, "b2", &err);
    tt_tensor *params[4] = {w1, b1, w2, b2};
    for (size_t i = 0; i < 4; i++) {
        if (params[i] == NULL || tt_tensor_require_grad(params[i], &err) != TT_OK) {
            goto fail;
        }
    }
    if (tt_init_kaiming_normal(w1, &rng, TT_FAN_IN, TT_NONLINEARITY_RELU, 0.0, &err) != TT_OK ||
        tt_init_xavier_normal(w2, &rng, 1.0, &err) != TT_OK) {
        goto fail;
    }

    /* Step 2: an optimizer over the parameters, shuffled batches, a tape. */
    tt_optimizer_options options = tt_optimizer_defaults(TT_OPTIMIZER_ADAM);
    options.learning_rate = 0.01;
    optimizer = tt_optimizer_new(params, 4, &options, &err);
    batches = tt_batches_new(N_SAMPLES, BATCH, false, 42, &err);
    tape = tt_tape_new(&err);
    if (optimizer == NULL || batches == NULL || tape == NULL) {
        goto fail;
    }

    /* Step 3: train. Each step records the forward pass on the reset tape,
     * runs backward, and lets the optimizer update and zero the gradients. */
    for (int epoch = 1; epoch <= EPOCHS; epoch++) {
        double loss_sum = 0.0;
        size_t n = 0;
        const size_t *ids = NULL;
        while ((ids = tt_batches_next(batches, &n)) != NULL) {
            tt_tape_reset(tape);
            tt_tensor *x = tt_tape_tensor(tape, N_FEATURES, n, "x");
            int32_t y[BATCH];
            if (x == NULL) {
                goto tape_failed;
            }
            load_batch(x, y, ids, n, features, labels);

            tt_tensor *h = tt_relu(tape, tt_add(tape, tt_matmul(tape, w1, x), b1));
            tt_tensor *z = tt_add(tape, tt_matmul(tape, w2, h), b2);
            tt_tensor *loss = tt_cross_entropy(tape, z, y, n);
            if (tt_tape_backward(tape, loss) != TT_OK) {
                goto tape_failed;
            }
            loss_sum += tt_tensor_data(loss)[0] * (double)n;
            if (tt_optimizer_step(optimizer, &err) != TT_OK) {
                goto fail;
            }
        }
        if (epoch % 5 == 0) {
            printf("epoch %d  loss %.4f\n", epoch, loss_sum / N_SAMPLES);
        }
    }

    /* Step 4: accuracy on the training set, all samples in one batch. */
    size_t all[N_SAMPLES];
    for (size_t i = 0; i < N_SAMPLES; i++) {
        all[i] = i;
    }
    tt_tape_reset(tape);
    tt_tensor *x = tt_tape_tensor(tape, N_FEATURES, N_SAMPLES, "x");
    if (x == NULL) {
        goto tape_failed;
    }
    static int32_t y[N_SAMPLES];
    load_batch(x, y, all, N_SAMPLES, features, labels);
    tt_tensor *h = tt_relu(tape, tt_add(tape, tt_matmul(tape, w1, x), b1));
    tt_tensor *z = tt_add(tape, tt_matmul(tape, w2, h), b2);
    if (z == NULL) {
        goto tape_failed;
    }
    const tt_real *logits = tt_tensor_data(z); /* N_CLASSES × N_SAMPLES */
    size_t correct = 0;
    for (size_t i = 0; i < N_SAMPLES; i++) {
        size_t best = 0;
        for (size_t c = 1; c < N_CLASSES; c++) {
            if (logits[c * N_SAMPLES + i] > logits[best * N_SAMPLES + i]) {
                best = c;
            }
        }
        correct += (int32_t)best == y[i];
    }
    const double accuracy = (double)correct / N_SAMPLES;
    printf("accuracy %.4f\n", accuracy);
    status = accuracy >= MIN_ACCURACY ? EXIT_SUCCESS : EXIT_FAILURE;
    goto cleanup;

tape_failed:
    fprintf(stderr, "tutorial: %s\n", tt_tape_error(tape)->message);
    goto cleanup;
fail:
    fprintf(stderr, "tutorial: %s\n", err.message);
cleanup:
    tt_tape_free(tape);
    tt_batches_free(batches);
    tt_optimizer_free(optimizer);
    tt_tensor_free(w1);
    tt_tensor_free(b1);
    tt_tensor_free(w2);
    tt_tensor_free(b2);
    return status;
}
