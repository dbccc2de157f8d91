/* mlp --inspect: the engine's gradients of one batch beside the closed-form
 * gradients of the README's equations 11-14, computed here in plain loops.
 *
 * Layout (samples are columns, as in mlp.c): x = h(0) is s × n, W(t) is
 * d_t × d_(t-1), b(t) and the rows of z(t) are d_t. The closed form is
 *   (11) φ(T) = (ŷ − y)ᵀ                              n × C
 *   (12) φ(t) = (φ(t+1)·W(t+1)) ⊙ g'(z(t))ᵀ           n × d_t, t < T
 *   (13) ψ(t) = (1/n)·h(t−1)·φ(t)                     d_(t−1) × d_t
 *   (14) ∂L/∂b(t) = (1/n)·Σ_i φ(t)_(i,:)              1 × d_t
 * and the engine stores ∂L/∂z(t) as d_t × n, which is φ(t)ᵀ/n (eq. 11 is
 * the gradient of the summed loss, the engine's that of the mean loss
 * of eq. 8), and ∂L/∂W(t) as d_t × d_(t−1), which is ψ(t)ᵀ.
 *
 * The closed form starts from the engine's forward values z(t), so the
 * comparison checks the backward pass alone: g and g' are evaluated at the
 * same z(t) that the engine's ops saw. */
#ifndef MLP_INSPECT_H
#define MLP_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tensortape.h"

/* A hidden-layer activation g or its derivative g', elementwise, in
 * double. `parameter` is the leaky ReLU slope or the ELU alpha, and the
 * activations without one ignore it. */
typedef double (*inspect_function)(double z, double parameter);

typedef struct inspect_activation {
    const char *name;            /* the name of the engine's op, e.g. "leaky_relu" */
    inspect_function g;          /* eq. 2: h = g(z) */
    inspect_function derivative; /* g', used by eq. 12 */
} inspect_activation;

/* The built-in activations of include/tensortape.h, with the derivatives
 * that the engine's ops take at their kinks at 0: ReLU'(0) = 0 (eq. 16),
 * and the left-hand slopes `parameter` for leaky ReLU and alpha·exp(0) for
 * ELU. */
extern const inspect_activation inspect_relu;       /* eq. 15 and 16 */
extern const inspect_activation inspect_sigmoid;
extern const inspect_activation inspect_tanh;
extern const inspect_activation inspect_leaky_relu; /* slope `parameter` below 0 */
extern const inspect_activation inspect_elu;        /* alpha `parameter` */
extern const inspect_activation inspect_softplus;
extern const inspect_activation inspect_silu;       /* x·sigmoid(x) */
extern const inspect_activation inspect_gelu;       /* x·Φ(x), Φ from erfc */
extern const inspect_activation inspect_gelu_tanh;  /* x·sigmoid(2u) */

/* One layer t of a recorded step, after tt_tape_backward(). */
typedef struct inspect_layer {
    tt_tensor *w; /* W(t), caller-owned, with its gradient from this step only */
    tt_tensor *b; /* b(t), likewise */
    tt_tensor *z; /* z(t) on the tape, its gradient retained */
} inspect_layer;

/* Largest differences between an engine gradient and its closed form. */
typedef struct inspect_difference {
    double max_abs;      /* max |engine − closed form| */
    double max_relative; /* max_abs / max |closed form|, or max_abs if that is 0 */
    size_t row;          /* entry of max_abs, in the engine's layout */
    size_t col;
    double engine;       /* the two values there */
    double closed_form;
} inspect_difference;

/* Computes φ(t), ψ(t) and eq. 14 for layers[0 .. n_layers) (layer t is
 * layers[t − 1]) from the batch x (s × n), its labels, and `activation`
 * with `parameter`, the slope or alpha that the engine's op used (ignored
 * by the activations without one). Compares them with the engine's
 * gradients and prints one line per quantity to `out`, output layer
 * first. `worst` (may be NULL) receives the largest relative difference
 * over every quantity. Returns false with a message in `message` if memory
 * runs out or a gradient is missing. */
bool inspect_print_comparison(FILE *out, const inspect_layer *layers, size_t n_layers,
                              tt_tensor *x, const int32_t *labels,
                              const inspect_activation *activation, double parameter,
                              double *worst, char *message, size_t message_size);

/* Writes the tape as a Graphviz DOT graph (tt_tape_write_dot) to the file
 * at `path`. Returns false with a message naming the file if it cannot be
 * created or written. */
bool inspect_write_dot(const tt_tape *tape, const char *path, char *message,
                       size_t message_size);

#endif /* MLP_INSPECT_H */
