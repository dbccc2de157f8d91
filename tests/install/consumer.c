/* A program built against an installed tensortape through pkg-config. It
 * checks that the installed headers match the library it loads, and that a
 * forward and backward pass run.
 *
 * The pass: w = [0.5; -0.5] (2 × 1), x = [0] (1 × 1), logits z = w·x = [0; 0],
 * label 0. Softmax of z is [0.5; 0.5], so the loss is log 2, dz = softmax − y
 * = [-0.5; 0.5], and dx = wᵀ·dz = 0.5·(-0.5) + (-0.5)·0.5 = -0.5. Each of
 * these values is exact in float. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <tensortape.h>

/* Absolute tolerance of the loss, which goes through exp and log: a few
 * units in the last place of a float near log 2. */
#define LOSS_TOLERANCE 1e-6

static int fail(const char *what)
{
    fprintf(stderr, "consumer: %s\n", what);
    return 1;
}

int main(void)
{
    char header_version[32];
    snprintf(header_version, sizeof header_version, "%d.%d.%d", TT_VERSION_MAJOR,
             TT_VERSION_MINOR, TT_VERSION_PATCH);
    if (strcmp(tt_version(), header_version) != 0) {
        fprintf(stderr, "consumer: library version %s, header version %s\n", tt_version(),
                header_version);
        return 1;
    }
    if (tt_version_number() != TT_VERSION_NUMBER) {
        return fail("tt_version_number() differs from TT_VERSION_NUMBER");
    }

    tt_error err;
    const tt_real w_values[2] = {0.5, -0.5};
    const tt_real x_values[1] = {0};
    tt_tensor *w = tt_tensor_from_data(2, 1, w_values, "w", &err);
    tt_tensor *x = tt_tensor_from_data(1, 1, x_values, "x", &err);
    tt_tape *tape = tt_tape_new(&err);
    if (w == NULL || x == NULL || tape == NULL) {
        fprintf(stderr, "consumer: %s\n", err.message);
        return 1;
    }
    if (tt_tensor_require_grad(x, &err) != TT_OK) {
        fprintf(stderr, "consumer: %s\n", err.message);
        return 1;
    }

    const int32_t labels[1] = {0};
    tt_tensor *loss = tt_cross_entropy(tape, tt_matmul(tape, w, x), labels, 1);
    if (loss == NULL || tt_tape_backward(tape, loss) != TT_OK) {
        fprintf(stderr, "consumer: %s\n", tt_tape_error(tape)->message);
        return 1;
    }

    int status = 0;
    const double loss_value = tt_tensor_data(loss)[0];
    if (fabs(loss_value - log(2.0)) > LOSS_TOLERANCE) {
        fprintf(stderr, "consumer: loss %.9g, want log 2\n", loss_value);
        status = 1;
    }
    const double dx = tt_tensor_grad(x)[0];
    if (dx != -0.5) {
        fprintf(stderr, "consumer: dx %.9g, want -0.5\n", dx);
        status = 1;
    }

    tt_tape_free(tape);
    tt_tensor_free(x);
    tt_tensor_free(w);
    return status;
}
