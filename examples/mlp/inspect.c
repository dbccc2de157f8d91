/* mlp --inspect: see inspect.h. Every closed-form quantity is computed in
 * double with plain loops, written as the equations read. */
#include "inspect.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- Activations ---------------------------------------------------------
 * Each g and g' below is the formula of the engine's op in
 * include/tensortape.h, in double. They take the same value at each kink,
 * the same forms that keep the tails and the same limits at ±inf, so the
 * closed form and the engine differ by rounding only. */

static double relu(double z, double unused)
{
    (void)unused;
    return z > 0 ? z : 0.0; /* eq. 15 */
}

static double relu_derivative(double z, double unused)
{
    (void)unused;
    return z > 0 ? 1.0 : 0.0; /* eq. 16: 0 at the kink z = 0 */
}

/* 1 / (1 + exp(−z)), with exp taken only of −|z|. */
static double sigmoid(double z, double unused)
{
    (void)unused;
    if (z >= 0)
        return 1.0 / (1.0 + exp(-z));
    const double e = exp(z);
    return e / (1.0 + e);
}

/* sigmoid'(z) = e / (1 + e)² with e = exp(−|z|). */
static double sigmoid_derivative(double z, double unused)
{
    (void)unused;
    const double e = exp(-fabs(z));
    return e / ((1.0 + e) * (1.0 + e));
}

static double hyperbolic_tangent(double z, double unused)
{
    (void)unused;
    return tanh(z);
}

/* tanh'(z) = 1 − tanh²(z) = 4e / (1 + e)² with e = exp(−2|z|). */
static double hyperbolic_tangent_derivative(double z, double unused)
{
    (void)unused;
    const double e = exp(-2.0 * fabs(z));
    return 4.0 * e / ((1.0 + e) * (1.0 + e));
}

/* A zero slope maps −inf to 0, as relu does, rather than to 0·(−inf). */
static double leaky_relu(double z, double slope)
{
    if (z >= 0 || isnan(z))
        return z;
    return slope == 0 ? 0.0 : slope * z;
}

/* 1 for z > 0, and the left-hand slope at 0 and below. */
static double leaky_relu_derivative(double z, double slope)
{
    return z > 0 ? 1.0 : slope;
}

static double elu(double z, double alpha)
{
    return z > 0 ? z : alpha * expm1(z);
}

/* 1 for z > 0, and the left-hand slope alpha·exp(z) at 0 and below. */
static double elu_derivative(double z, double alpha)
{
    return z > 0 ? 1.0 : alpha * exp(z);
}

/* log(1 + exp(z)) = max(z, 0) + log1p(exp(−|z|)). */
static double softplus(double z, double unused)
{
    (void)unused;
    return (z > 0 ? z : 0.0) + log1p(exp(-fabs(z)));
}

/* z·sigmoid(z), and 0 where the sigmoid is 0, so that SiLU(−inf) = 0. */
static double silu(double z, double unused)
{
    const double s = sigmoid(z, unused);
    return s == 0 ? 0.0 : z * s;
}

/* SiLU'(z) = s·(1 + z·sigmoid(−z)) with s = sigmoid(z), and its limits 1
 * and 0 at ±inf. */
static double silu_derivative(double z, double unused)
{
    if (isinf(z))
        return z > 0 ? 1.0 : 0.0;
    return sigmoid(z, unused) * (1.0 + z * sigmoid(-z, unused));
}

/* 1/√2 and 1/√(2π), to more digits than a double carries. */
#define INV_SQRT_2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794

/* The standard normal distribution function Φ(z) = erfc(−z/√2) / 2. */
static double normal_cdf(double z)
{
    return 0.5 * erfc(-z * INV_SQRT_2);
}

/* z·Φ(z), and 0 where Φ is 0, so that GELU(−inf) = 0. */
static double gelu(double z, double unused)
{
    (void)unused;
    const double cdf = normal_cdf(z);
    return cdf == 0 ? 0.0 : z * cdf;
}

/* GELU'(z) = Φ(z) + z·exp(−z²/2)/√(2π), and its limits 1 and 0 at ±inf. */
static double gelu_derivative(double z, double unused)
{
    (void)unused;
    if (isinf(z))
        return z > 0 ? 1.0 : 0.0;
    return normal_cdf(z) + z * INV_SQRT_2PI * exp(-z * z / 2.0);
}

/* √(2/π) and the cubic coefficient of GELU's tanh approximation. */
#define SQRT_2_OVER_PI 0.79788456080286535588
#define GELU_CUBIC 0.044715

/* 2u, with u = √(2/π)·(z + 0.044715·z³). */
static double gelu_tanh_twice_argument(double z)
{
    return 2.0 * SQRT_2_OVER_PI * (z + GELU_CUBIC * z * z * z);
}

/* z·(1 + tanh(u))/2 = z·sigmoid(2u), and 0 where the sigmoid is 0. */
static double gelu_tanh(double z, double unused)
{
    const double s = sigmoid(gelu_tanh_twice_argument(z), unused);
    return s == 0 ? 0.0 : z * s;
}

/* s + 2z·s·sigmoid(−2u)·du/dz with s = sigmoid(2u) and
 * du/dz = √(2/π)·(1 + 3·0.044715·z²). The second term is 0 where
 * s·sigmoid(−2u) is 0, because z·du/dz may be infinite there. */
static double gelu_tanh_derivative(double z, double unused)
{
    const double twice_u = gelu_tanh_twice_argument(z);
    const double s = sigmoid(twice_u, unused);
    const double s_slope = s * sigmoid(-twice_u, unused);
    if (s_slope == 0)
        return s;
    const double du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * z * z);
    return s + 2.0 * z * s_slope * du;
}

const inspect_activation inspect_relu = {"relu", relu, relu_derivative};
const inspect_activation inspect_sigmoid = {"sigmoid", sigmoid, sigmoid_derivative};
const inspect_activation inspect_tanh = {"tanh", hyperbolic_tangent,
                                         hyperbolic_tangent_derivative};
const inspect_activation inspect_leaky_relu = {"leaky_relu", leaky_relu, leaky_relu_derivative};
const inspect_activation inspect_elu = {"elu", elu, elu_derivative};
const inspect_activation inspect_softplus = {"softplus", softplus, sigmoid};
const inspect_activation inspect_silu = {"silu", silu, silu_derivative};
const inspect_activation inspect_gelu = {"gelu", gelu, gelu_derivative};
const inspect_activation inspect_gelu_tanh = {"gelu_tanh", gelu_tanh, gelu_tanh_derivative};

/* ---- Closed form --------------------------------------------------------- */

/* Everything the closed form needs, in double. Arrays are indexed by layer
 * t = 0 … T; entries that a layer does not have stay NULL. */
typedef struct closed_form {
    size_t n_layers;     /* T */
    size_t n;            /* samples */
    size_t *widths;      /* d_0 = s, d_1, …, d_T = C */
    double **h;          /* h(t), d_t × n, t = 0 … T − 1 */
    double **phi;        /* φ(t), n × d_t, t = 1 … T */
} closed_form;

static void closed_form_free(closed_form *form)
{
    for (size_t t = 0; t <= form->n_layers; t++) {
        if (form->h != NULL)
            free(form->h[t]);
        if (form->phi != NULL)
            free(form->phi[t]);
    }
    free(form->h);
    free(form->phi);
    free(form->widths);
}

/* Fills h(0) = x and h(t) = g(z(t)) for the hidden layers (eq. 2), from the
 * engine's z(t). */
static bool compute_activations(closed_form *form, const inspect_layer *layers, tt_tensor *x,
                                const inspect_activation *activation, double parameter)
{
    const size_t n = form->n;
    form->h[0] = malloc(form->widths[0] * n * sizeof(double));
    if (form->h[0] == NULL)
        return false;
    const tt_real *x_data = tt_tensor_data(x);
    for (size_t e = 0; e < form->widths[0] * n; e++)
        form->h[0][e] = (double)x_data[e];

    for (size_t t = 1; t < form->n_layers; t++) {
        const size_t d = form->widths[t];
        const tt_real *z = tt_tensor_data(layers[t - 1].z);
        form->h[t] = malloc(d * n * sizeof(double));
        if (form->h[t] == NULL)
            return false;
        for (size_t e = 0; e < d * n; e++)
            form->h[t][e] = activation->g((double)z[e], parameter);
    }
    return true;
}

/* φ(T) = (ŷ − y)ᵀ (eq. 11), with ŷ the softmax of each column of z(T)
 * (eq. 5), shifted by the column's maximum (eq. 9). */
static bool compute_output_phi(closed_form *form, const inspect_layer *output,
                               const int32_t *labels)
{
    const size_t n = form->n;
    const size_t classes = form->widths[form->n_layers];
    const tt_real *z = tt_tensor_data(output->z);
    double *phi = malloc(n * classes * sizeof(double));
    if (phi == NULL)
        return false;
    form->phi[form->n_layers] = phi;
    for (size_t i = 0; i < n; i++) {
        double max = (double)z[i];
        for (size_t c = 1; c < classes; c++)
            max = fmax(max, (double)z[c * n + i]);
        double sum = 0.0;
        for (size_t c = 0; c < classes; c++)
            sum += exp((double)z[c * n + i] - max);
        for (size_t c = 0; c < classes; c++) {
            const double y_hat = exp((double)z[c * n + i] - max) / sum;
            const double y = labels[i] == (int32_t)c ? 1.0 : 0.0;
            phi[i * classes + c] = y_hat - y;
        }
    }
    return true;
}

/* φ(t) = (φ(t+1)·W(t+1)) ⊙ g'(z(t))ᵀ for t = T − 1 … 1 (eq. 12). */
static bool compute_hidden_phi(closed_form *form, const inspect_layer *layers,
                               const inspect_activation *activation, double parameter)
{
    const size_t n = form->n;
    for (size_t t = form->n_layers - 1; t >= 1; t--) {
        const size_t d = form->widths[t];
        const size_t d_next = form->widths[t + 1];
        const tt_real *w_next = tt_tensor_data(layers[t].w); /* W(t+1), d_next × d */
        const tt_real *z = tt_tensor_data(layers[t - 1].z);  /* z(t), d × n */
        const double *phi_next = form->phi[t + 1];
        double *phi = malloc(n * d * sizeof(double));
        if (phi == NULL)
            return false;
        form->phi[t] = phi;
        for (size_t i = 0; i < n; i++) {
            for (size_t k = 0; k < d; k++) {
                double sum = 0.0;
                for (size_t j = 0; j < d_next; j++)
                    sum += phi_next[i * d_next + j] * (double)w_next[j * d + k];
                phi[i * d + k] = sum * activation->derivative((double)z[k * n + i], parameter);
            }
        }
    }
    return true;
}

/* Compares the engine's rows × cols gradient with `want`, in the same
 * layout. */
static inspect_difference compare(const tt_real *got, const double *want, size_t rows,
                                  size_t cols)
{
    inspect_difference d = {0};
    double scale = 0.0;
    for (size_t e = 0; e < rows * cols; e++) {
        scale = fmax(scale, fabs(want[e]));
        const double diff = fabs((double)got[e] - want[e]);
        /* The first NaN difference counts as the largest and stays. */
        if (e == 0 || (!isnan(d.max_abs) && !(diff <= d.max_abs))) {
            d.max_abs = diff;
            d.row = e / cols;
            d.col = e % cols;
            d.engine = (double)got[e];
            d.closed_form = want[e];
        }
    }
    d.max_relative = scale > 0 ? d.max_abs / scale : d.max_abs;
    return d;
}

/* Room for one printed field, such as "dL/dW(3)" or "φ(3)ᵀ/n, eq. 12". */
#define FIELD_MAX 80

/* Prints one comparison line. `gradient` is "z", "W" or "b", and
 * `closed_form` names the closed-form side. */
static void print_difference(FILE *out, size_t t, const char *gradient, const tt_tensor *tensor,
                             inspect_difference d, const char *closed_form)
{
    char name[FIELD_MAX];
    char shape[FIELD_MAX];
    char at[FIELD_MAX];
    snprintf(name, sizeof name, "dL/d%s(%zu)", gradient, t);
    snprintf(shape, sizeof shape, "%zux%zu", tt_tensor_rows(tensor), tt_tensor_cols(tensor));
    snprintf(at, sizeof at, "(%zu, %zu)", d.row, d.col);
    fprintf(out, "%5zu  %-9s %-9s %10.3e %10.3e  %-11s %13.6e %13.6e  %s\n", t, name, shape,
            d.max_abs, d.max_relative, at, d.engine, d.closed_form, closed_form);
}

/* Compares and prints layer t's three gradients; returns the largest
 * relative difference, or −1 if memory runs out. */
static double compare_layer(FILE *out, const closed_form *form, const inspect_layer *layer,
                            size_t t)
{
    const size_t n = form->n;
    const size_t d = form->widths[t];
    const size_t d_prev = form->widths[t - 1];
    const double *phi = form->phi[t];
    const double *h_prev = form->h[t - 1];
    double *want = malloc(d * (d_prev > n ? d_prev : n) * sizeof(double));
    if (want == NULL)
        return -1;

    /* ∂L/∂z(t) = φ(t)ᵀ / n, stored d_t × n like z(t). */
    for (size_t k = 0; k < d; k++)
        for (size_t i = 0; i < n; i++)
            want[k * n + i] = phi[i * d + k] / (double)n;
    char label[FIELD_MAX];
    const inspect_difference dz = compare(tt_tensor_grad(layer->z), want, d, n);
    snprintf(label, sizeof label, "φ(%zu)ᵀ/n, eq. %d", t, t == form->n_layers ? 11 : 12);
    print_difference(out, t, "z", layer->z, dz, label);

    /* ∂L/∂W(t) = ψ(t)ᵀ with ψ(t) = (1/n)·h(t−1)·φ(t) (eq. 13), d_(t−1) × d_t;
     * want[k][p] is ψ(t)[p][k]. */
    for (size_t k = 0; k < d; k++) {
        for (size_t p = 0; p < d_prev; p++) {
            double sum = 0.0;
            for (size_t i = 0; i < n; i++)
                sum += h_prev[p * n + i] * phi[i * d + k];
            want[k * d_prev + p] = sum / (double)n;
        }
    }
    const inspect_difference dw = compare(tt_tensor_grad(layer->w), want, d, d_prev);
    snprintf(label, sizeof label, "ψ(%zu)ᵀ, eq. 13", t);
    print_difference(out, t, "W", layer->w, dw, label);

    /* ∂L/∂b(t) = (1/n)·Σ_i φ(t)_(i,:) (eq. 14), as a d_t × 1 column. */
    for (size_t k = 0; k < d; k++) {
        double sum = 0.0;
        for (size_t i = 0; i < n; i++)
            sum += phi[i * d + k];
        want[k] = sum / (double)n;
    }
    const inspect_difference db = compare(tt_tensor_grad(layer->b), want, d, 1);
    snprintf(label, sizeof label, "(1/n)·Σ_i φ(%zu)_(i,:)ᵀ, eq. 14", t);
    print_difference(out, t, "b", layer->b, db, label);

    free(want);
    double worst = fmax(dz.max_relative, fmax(dw.max_relative, db.max_relative));
    if (isnan(dz.max_relative) || isnan(dw.max_relative) || isnan(db.max_relative))
        worst = NAN;
    return worst;
}

bool inspect_write_dot(const tt_tape *tape, const char *path, char *message,
                       size_t message_size)
{
    FILE *dot = fopen(path, "w");
    if (dot == NULL) {
        snprintf(message, message_size, "%s: cannot create the graph: %s", path,
                 strerror(errno));
        return false;
    }
    tt_tape_write_dot(tape, dot);
    const bool failed = ferror(dot) != 0;
    if (fclose(dot) != 0 || failed) {
        snprintf(message, message_size, "%s: cannot write the graph: %s", path,
                 strerror(errno));
        return false;
    }
    return true;
}

bool inspect_print_comparison(FILE *out, const inspect_layer *layers, size_t n_layers,
                              tt_tensor *x, const int32_t *labels,
                              const inspect_activation *activation, double parameter,
                              double *worst, char *message, size_t message_size)
{
    for (size_t t = 1; t <= n_layers; t++) {
        const inspect_layer *l = &layers[t - 1];
        if (tt_tensor_grad(l->w) == NULL || tt_tensor_grad(l->b) == NULL ||
            tt_tensor_grad(l->z) == NULL) {
            snprintf(message, message_size,
                     "inspect: layer %zu has no gradient; run backward with z(%zu) retained", t,
                     t);
            return false;
        }
    }

    closed_form form = {0};
    form.n_layers = n_layers;
    form.n = tt_tensor_cols(x);
    form.widths = calloc(n_layers + 1, sizeof *form.widths);
    form.h = calloc(n_layers + 1, sizeof *form.h);
    form.phi = calloc(n_layers + 1, sizeof *form.phi);
    bool ok = form.widths != NULL && form.h != NULL && form.phi != NULL;
    if (ok) {
        form.widths[0] = tt_tensor_rows(x);
        for (size_t t = 1; t <= n_layers; t++)
            form.widths[t] = tt_tensor_rows(layers[t - 1].w);
        ok = compute_activations(&form, layers, x, activation, parameter) &&
             compute_output_phi(&form, &layers[n_layers - 1], labels) &&
             compute_hidden_phi(&form, layers, activation, parameter);
    }

    double largest = 0.0;
    if (ok) {
        fprintf(out, "%5s  %-9s %-9s %10s %10s  %-11s %13s %13s  %s\n", "layer", "engine",
                "shape", "max |diff|", "relative", "at", "engine value", "closed form",
                "closed form (README)");
        for (size_t t = n_layers; t >= 1 && ok; t--) {
            const double layer_worst = compare_layer(out, &form, &layers[t - 1], t);
            ok = layer_worst >= 0 || isnan(layer_worst);
            largest = isnan(layer_worst) || isnan(largest) ? NAN : fmax(largest, layer_worst);
        }
    }
    closed_form_free(&form);
    if (!ok) {
        snprintf(message, message_size, "inspect: out of memory for the closed form");
        return false;
    }
    if (worst != NULL)
        *worst = largest;
    return true;
}
