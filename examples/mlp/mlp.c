/* mlp: trains a multilayer perceptron on Fashion-MNIST with minibatch SGD,
 * SGD with momentum or Adam, and reports the test accuracy after every
 * epoch.
 *
 * Equation numbers refer to the README's "The math". Samples are columns: a
 * minibatch of n images is the input h(0), an s × n tensor whose column i
 * contains the s pixels (28·28 in Fashion-MNIST) of sample i, each scaled
 * from 0..255 to [0, 1]. Layer t = 1 … T has a weight W(t), d_t × d_(t-1),
 * and a bias b(t), d_t × 1 (d_0 = s), and computes
 *     z(t) = W(t)·h(t-1) + b(t)    eq. 1: tt_matmul, then tt_add repeats b(t)
 *                                  in each of the n columns
 *     h(t) = g(z(t))               eq. 2, with g chosen by --activation:
 *                                  ReLU (eq. 15, tt_relu) by default
 * for the hidden layers t < T. The output layer T computes z(T) by eq. 3, as
 * above but without g: its C × n logits (C = 10 classes) go straight into
 * tt_cross_entropy, which applies the softmax ŷ = f(z(T)) of eq. 4 fused with
 * the mean cross-entropy loss L of eq. 8, so ŷ is never formed.
 *
 * A layer is one weight matrix. `--hidden 256,128` sets d_1 = 256 and
 * d_2 = 128, so W(1) is 256×784, W(2) 128×256 and W(3) 10×128; an empty list
 * leaves only W(1), 10×784: a linear softmax classifier.
 *
 * Weights start normal with standard deviation gain/sqrt(d_(t-1)) (He
 * initialisation, tt_init_kaiming_normal), where the gain is PyTorch's for
 * the hidden activation (sqrt(2) for ReLU), and biases start at zero.
 * Each epoch shuffles the training set (tt_batches), and each minibatch step
 * records the forward pass on a tape, runs backward from L, and lets the
 * optimizer (tt_optimizer) move every parameter, at the rate the schedule
 * (schedule.c) gives for that step. All randomness comes from one generator
 * seeded by --seed, so a run repeats exactly. progress.c prints the
 * progress.
 *
 * --inspect and --dot look into one step (inspect.h), and --log and --plot
 * record the epochs (history.h).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "history.h"
#include "idx.h"
#include "inspect.h"
#include "model_file.h"
#include "progress.h"
#include "schedule.h"
#include "tensortape.h"

/* Fashion-MNIST has ten classes, labelled 0 to 9. */
#define N_CLASSES 10

/* Directory where Debian's dataset-fashion-mnist package installs the data. */
#define DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"
#define TRAIN_IMAGES "train-images-idx3-ubyte"
#define TRAIN_LABELS "train-labels-idx1-ubyte"
#define TEST_IMAGES "t10k-images-idx3-ubyte"
#define TEST_LABELS "t10k-labels-idx1-ubyte"

/* Defaults: one hidden layer of 128 units, 15 epochs, batch 64, rate 0.05.
 * Measured with tensortape 0.1.0 in a meson release build on an idle 2-core
 * AMD EPYC (Zen 3) machine: training took 6.5 to 7.0 s on one core, and
 * seeds 1 to 8 reached a test accuracy of 0.8655 to 0.8770. Fewer epochs or a larger rate
 * leave the last epoch's accuracy varying by more than a point with the
 * shuffling order (5 epochs at 0.1 gave 0.848 to 0.867). */
#define DEFAULT_HIDDEN_WIDTH 128
#define DEFAULT_EPOCHS 15
#define DEFAULT_BATCH 64
#define DEFAULT_LEARNING_RATE 0.05
#define DEFAULT_SEED 1

/* Defaults of the other optimizers. Momentum 0.9 is the usual choice. With
 * it the steady-state step is 10 times the rate times the gradient, so the
 * rate is a tenth of plain SGD's to move about as far per step. Adam's rate
 * is PyTorch's default, 1e-3. */
#define DEFAULT_MOMENTUM 0.9
#define DEFAULT_MOMENTUM_LEARNING_RATE 0.005
#define DEFAULT_ADAM_LEARNING_RATE 0.001

/* Defaults of --schedule step: halve the rate every 5 epochs. */
#define DEFAULT_STEP_EPOCHS 5
#define DEFAULT_STEP_GAMMA 0.5

/* Samples that load_batch copies together: 16 floats fill a 64-byte cache
 * line of a row of x. */
#define SAMPLE_GROUP 16

/* Pixels are bytes, so dividing by their maximum maps them to [0, 1]. */
#define PIXEL_MAX 255.0f

/* A macro's value as a string literal: TEXT_OF(TT_MAX_THREADS) is "256". */
#define LITERAL_TEXT(x) #x
#define TEXT_OF(x) LITERAL_TEXT(x)

/* Part of the help text that tells whether this build reads .gz files. */
#ifdef HAVE_ZLIB
#define GZIP_SUPPORT_NOTE ""
#else
#define GZIP_SUPPORT_NOTE "\n                 (not in this build, which lacks zlib: gunzip them first)"
#endif

/* The precision of tt_real in this build, for messages. */
#if TT_REAL_IS_DOUBLE
#define REAL_PRECISION "double precision (double)"
#else
#define REAL_PRECISION "single precision (float)"
#endif

/* Exit status for invalid command-line options. */
#define EXIT_USAGE 2

/* Maximum length of a tensor name written here, such as "w18446744073709551615". */
#define TENSOR_NAME_MAX 32

/* A hidden-layer activation that --activation accepts: a built-in op with
 * no parameter (`apply`), or with one (`apply_with`, given
 * `default_parameter` unless the user writes NAME:VALUE). `inspect` is the
 * same function in double for the closed form of --inspect, and `init` the
 * nonlinearity whose gain the weights start with.
 *
 * To train with an activation of your own, write f and f' as plain C
 * functions and create it once with the user-defined activation API, e.g.
 * for softsign, x / (1 + |x|):
 *     static tt_real softsign(tt_real x) { return isinf(x) ? copysign(1, x) : x / (1 + fabs(x)); }
 *     static tt_real softsign_slope(tt_real x) { return 1 / ((1 + fabs(x)) * (1 + fabs(x))); }
 *     const tt_activation_def def = {.name = "softsign", .function = softsign,
 *                                    .derivative = softsign_slope};
 *     tt_activation *g = tt_activation_new(&def, &err);   (NULL and err set on failure)
 * then record it in model_forward with h = tt_activation_apply(tape, g, z),
 * and call tt_activation_free(g) after the tape is freed. */
typedef struct hidden_activation {
    const char *name;
    tt_tensor *(*apply)(tt_tape *tape, tt_tensor *x);
    tt_tensor *(*apply_with)(tt_tape *tape, tt_tensor *x, tt_real parameter);
    const char *parameter_name; /* as help and messages write it; NULL without a parameter */
    double default_parameter;
    const inspect_activation *inspect;
    tt_nonlinearity init;
} hidden_activation;

/* The leaky ReLU slope 0.01 and the ELU alpha 1 are the usual defaults,
 * those of PyTorch's LeakyReLU and ELU. The first entry is the default.
 * NOTE: PyTorch's calculate_gain defines no gain for ELU, softplus, SiLU
 * or GELU, so those start with ReLU's gain, sqrt(2). */
static const hidden_activation hidden_activations[] = {
    {"relu", tt_relu, NULL, NULL, 0, &inspect_relu, TT_NONLINEARITY_RELU},
    {"sigmoid", tt_sigmoid, NULL, NULL, 0, &inspect_sigmoid, TT_NONLINEARITY_SIGMOID},
    {"tanh", tt_tanh, NULL, NULL, 0, &inspect_tanh, TT_NONLINEARITY_TANH},
    {"leaky_relu", NULL, tt_leaky_relu, "SLOPE", 0.01, &inspect_leaky_relu,
     TT_NONLINEARITY_LEAKY_RELU},
    {"elu", NULL, tt_elu, "ALPHA", 1.0, &inspect_elu, TT_NONLINEARITY_RELU},
    {"softplus", tt_softplus, NULL, NULL, 0, &inspect_softplus, TT_NONLINEARITY_RELU},
    {"silu", tt_silu, NULL, NULL, 0, &inspect_silu, TT_NONLINEARITY_RELU},
    {"gelu", tt_gelu, NULL, NULL, 0, &inspect_gelu, TT_NONLINEARITY_RELU},
    {"gelu_tanh", tt_gelu_tanh, NULL, NULL, 0, &inspect_gelu_tanh, TT_NONLINEARITY_RELU},
};

#define N_HIDDEN_ACTIVATIONS (sizeof hidden_activations / sizeof hidden_activations[0])

/* Room for the list that format_activation_list writes. */
#define ACTIVATION_LIST_MAX 256

/* Writes the names of hidden_activations as a list, "relu, sigmoid, … or
 * gelu_tanh", with "[:SLOPE]" or the like after each name that takes a
 * parameter if `with_parameters`. */
static void format_activation_list(char *text, size_t size, bool with_parameters)
{
    size_t used = 0;
    text[0] = '\0';
    for (size_t i = 0; i < N_HIDDEN_ACTIVATIONS && used < size; i++) {
        const hidden_activation *activation = &hidden_activations[i];
        const char *separator = i == 0                         ? ""
                                : i + 1 < N_HIDDEN_ACTIVATIONS ? ", "
                                                               : " or ";
        bool show_parameter = with_parameters && activation->parameter_name != NULL;
        used += (size_t)snprintf(text + used, size - used, "%s%s%s%s%s", separator,
                                 activation->name, show_parameter ? "[:" : "",
                                 show_parameter ? activation->parameter_name : "",
                                 show_parameter ? "]" : "");
    }
}

/* Options that take a value, in the order of option_names. */
enum option_id { OPTION_DATA, OPTION_HIDDEN, OPTION_EPOCHS, OPTION_BATCH, OPTION_LR, OPTION_SEED,
                 OPTION_THREADS, OPTION_ACTIVATION, OPTION_SAVE, OPTION_LOAD, OPTION_DOT,
                 OPTION_LOG, OPTION_PLOT, OPTION_OPTIMIZER, OPTION_SCHEDULE,
                 OPTION_STEP_EPOCHS, OPTION_STEP_GAMMA,
                 OPTION_COUNT };

/* Command-line settings. */
typedef struct options {
    const char *data_dir;
    size_t *hidden;   /* widths d_1 … d_(T-1) of the hidden layers */
    size_t n_hidden;  /* T - 1, or zero for a linear classifier */
    size_t epochs;
    size_t batch;     /* samples per minibatch, also used for evaluation */
    double learning_rate; /* 0 until --lr sets it: then the optimizer's default */
    uint64_t seed;
    size_t threads;   /* threads for matrix products; 0 for one per online CPU */
    bool inspect;     /* compare one batch's gradients with eq. 11-14 instead of training */
    const char *dot_path;  /* DOT file of one training step, or NULL */
    const char *log_path;  /* per-epoch CSV, or NULL */
    const char *plot_path; /* per-epoch SVG chart, or NULL */
    const hidden_activation *activation; /* g of the hidden layers */
    double activation_parameter;         /* its parameter, if it takes one */
    bool given[OPTION_COUNT]; /* which options were on the command line */
    const char *save_path; /* --save: where to save the model, or NULL */
    const char *load_path; /* --load: the model to start from, or NULL */
    enum optimizer_choice { CHOICE_SGD, CHOICE_MOMENTUM, CHOICE_ADAM } optimizer;
    schedule_kind schedule;
    size_t step_epochs;
    double step_gamma;
    bool quiet;       /* print only the final key=value line */
} options;

/* The parameters of one layer t. */
typedef struct layer {
    tt_tensor *w; /* W(t), d_t × d_(t-1) */
    tt_tensor *b; /* b(t), d_t × 1 */
} layer;

/* The layers 1 … T, caller-owned leaf tensors that require gradients, and
 * the activation g of the hidden layers. */
typedef struct model {
    layer *layers;
    size_t n_layers;
    const hidden_activation *activation;
    tt_real activation_parameter;
} model;

/* ---- Command line ------------------------------------------------------- */

static void print_usage_line(FILE *stream)
{
    fputs("usage: mlp [--data DIR] [--hidden LIST] [--activation NAME] [--epochs N] "
          "[--batch N]\n"
          "           [--lr X] [--seed N] [--threads N] [--save FILE] [--load FILE]\n"
          "           [--optimizer sgd|momentum|adam] [--schedule constant|step|cosine]\n"
          "           [--step-epochs N] [--step-gamma X] [--quiet]\n"
          "           [--inspect] [--dot FILE] [--log FILE] [--plot FILE] [--help]\n",
          stream);
}

/* Column where the help text's descriptions start, and its line width. */
#define HELP_INDENT 17
#define HELP_WIDTH 79

/* Prints `text` to stdout as indented help lines, breaking at spaces. */
static void print_help_paragraph(const char *text)
{
    size_t column = 0;
    while (*text != '\0') {
        size_t word = strcspn(text, " ");
        if (column > 0 && column + 1 + word > HELP_WIDTH) {
            putchar('\n');
            column = 0;
        }
        if (column == 0) {
            column = (size_t)printf("%*s", HELP_INDENT, "");
        } else {
            putchar(' ');
            column++;
        }
        column += (size_t)printf("%.*s", (int)word, text);
        text += word;
        text += strspn(text, " ");
    }
    putchar('\n');
}

static void print_help(void)
{
    print_usage_line(stdout);
    printf("Train a multilayer perceptron on Fashion-MNIST and print the test accuracy\n"
           "after each epoch.\n"
           "\n"
           "  --data DIR     directory containing the four IDX files, each either plain or\n"
           "                 gzip-compressed with the suffix .gz%s (default %s)\n"
           "  --hidden LIST  comma-separated widths of the hidden layers, e.g. 256,128\n"
           "                 (default %d); an empty LIST ('') trains a linear softmax\n"
           "                 classifier with no hidden layer\n"
           "  --activation NAME[:VALUE]\n",
           GZIP_SUPPORT_NOTE, DEFAULT_DATA_DIR, DEFAULT_HIDDEN_WIDTH);
    char list[ACTIVATION_LIST_MAX];
    char paragraph[ACTIVATION_LIST_MAX + 64];
    format_activation_list(list, sizeof list, true);
    snprintf(paragraph, sizeof paragraph, "activation of the hidden layers (default %s): %s.",
             hidden_activations[0].name, list);
    print_help_paragraph(paragraph);
    printf("                 SLOPE is leaky_relu's slope for x < 0 (default 0.01) and\n"
           "                 ALPHA is elu's alpha (default 1), e.g. leaky_relu:0.1 or\n"
           "                 elu:0.5. The weights start He-normal with the gain that\n"
           "                 PyTorch's calculate_gain gives for the activation: sqrt(2)\n"
           "                 for relu, sqrt(2 / (1 + SLOPE^2)) for leaky_relu, 5/3 for\n"
           "                 tanh, 1 for sigmoid, and relu's sqrt(2) for the others,\n"
           "                 which calculate_gain has no gain for\n"
           "  --epochs N     number of passes over the training set (default %d); 0\n"
           "                 evaluates the model on the test set without training\n"
           "  --batch N      samples per minibatch, for training and evaluation\n"
           "                 (default %d)\n"
           "  --lr X         learning rate, a positive number (default %g for sgd,\n"
           "                 %g for momentum, %g for adam)\n"
           "  --optimizer O  sgd (plain minibatch SGD, the default), momentum (SGD with\n"
           "                 momentum %g) or adam (Adam, betas 0.9 and 0.999, eps 1e-8)\n"
           "  --schedule S   learning-rate schedule: constant (the default); step, which\n"
           "                 multiplies the rate by --step-gamma every --step-epochs\n"
           "                 epochs; or cosine, which lowers it every step along a half\n"
           "                 cosine from --lr to 0 at the end of the run\n"
           "  --step-epochs N  epochs between decays of the step schedule (default %d)\n"
           "  --step-gamma X   factor of each decay, in (0, 1] (default %g)\n"
           "  --seed N       seed for weight initialisation and shuffling, an integer\n"
           "                 from 0 to 2^64-1 (default %d)\n"
           "  --threads N    threads for the matrix products, from 1 to %d; results are\n"
           "                 the same for every count (default: one per online CPU)\n"
           "  --quiet        print only the final key=value line\n"
           "  --inspect      instead of training, run one step on the first batch with\n"
           "                 the initial weights (or those of --load), print its tape\n"
           "                 and each layer's gradients beside the closed form of the\n"
           "                 README's equations 11-14, computed in double with the\n"
           "                 --activation function and its derivative\n"
           "  --dot FILE     write the tape of that step as a Graphviz DOT graph to FILE\n"
           "                 (before training, unless --inspect is given)\n"
           "  --log FILE     write one CSV row per epoch to FILE: epoch, train_loss,\n"
           "                 test_accuracy, seconds\n"
           "  --plot FILE    write an SVG chart of the loss and accuracy per epoch to FILE\n"
           "  --save FILE    after training, save the parameters w1, b1, w2, ... and the\n"
           "                 layer widths, activation and its parameter as metadata to\n"
           "                 FILE, in the safetensors format; the old FILE is replaced\n"
           "                 atomically\n"
           "  --load FILE    start from the model in FILE, saved by --save: its widths\n"
           "                 replace --hidden, which must not be given as well, and its\n"
           "                 activation replaces --activation, which if given must be\n"
           "                 the same, parameter included\n"
           "  --help         print this help and exit\n"
           "\n"
           "Options take their value as the next argument or after '=' (--lr=0.05).\n"
           "An option given more than once takes its last value. Options that would\n"
           "have no effect are rejected: --epochs, --lr, --optimizer, --schedule,\n"
           "--step-epochs, --step-gamma, --save, --log, --plot and --quiet with\n"
           "--inspect, and --step-epochs and --step-gamma without --schedule step.\n"
           "Output: one line per epoch with the mean training loss, the test accuracy\n"
           "and the epoch's training time in seconds, then one line of key=value pairs:\n"
           "  epochs=N train_seconds=S train_loss=L test_accuracy=A\n"
           "where train_seconds excludes loading and evaluation; with --epochs 0,\n"
           "train_loss is nan. On a terminal a progress bar with samples/s and the\n"
           "running loss shows during each epoch, redrawn in place a few times a\n"
           "second.\n"
           "Exit status: 0 on success, 1 if loading or training fails, %d for invalid\n"
           "options.\n",
           DEFAULT_EPOCHS, DEFAULT_BATCH, DEFAULT_LEARNING_RATE, DEFAULT_MOMENTUM_LEARNING_RATE, DEFAULT_ADAM_LEARNING_RATE,
           DEFAULT_MOMENTUM, DEFAULT_STEP_EPOCHS, DEFAULT_STEP_GAMMA, DEFAULT_SEED,
           TT_MAX_THREADS, EXIT_USAGE);
}

/* Parses a decimal integer from 0 to `max` that fills all of `text`: no
 * sign, no spaces, no other characters. */
static bool parse_unsigned(const char *text, uint64_t max, uint64_t *value)
{
    if (!isdigit((unsigned char)text[0])) {
        return false;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long parsed = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || parsed > max) {
        return false;
    }
    *value = (uint64_t)parsed;
    return true;
}

/* Parses a positive integer that fits in size_t. */
static bool parse_positive_size(const char *text, size_t *value)
{
    uint64_t parsed = 0;
    if (!parse_unsigned(text, SIZE_MAX, &parsed) || parsed == 0) {
        return false;
    }
    *value = (size_t)parsed;
    return true;
}

/* Parses a finite number greater than zero that fills all of `text`. */
static bool parse_positive_real(const char *text, double *value)
{
    if (text[0] == '\0' || isspace((unsigned char)text[0])) {
        return false;
    }
    errno = 0;
    char *end = NULL;
    double parsed = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite(parsed) || parsed <= 0.0) {
        return false;
    }
    *value = parsed;
    return true;
}

/* Parses a comma-separated list of positive widths into a new array. An
 * empty `text` gives an empty list and a NULL array. */
static bool parse_width_list(const char *text, size_t **widths, size_t *count)
{
    *widths = NULL;
    *count = 0;
    if (text[0] == '\0') {
        return true;
    }
    size_t n = 1;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == ',') {
            n++;
        }
    }
    size_t *parsed = calloc(n, sizeof *parsed);
    if (parsed == NULL) {
        return false;
    }

    /* Each item is copied and terminated, because parse_positive_size
     * rejects any character after the number. */
    char item[32];
    const char *start = text;
    for (size_t i = 0; i < n; i++) {
        size_t length = strcspn(start, ",");
        if (length == 0 || length >= sizeof item) {
            free(parsed);
            return false;
        }
        memcpy(item, start, length);
        item[length] = '\0';
        if (!parse_positive_size(item, &parsed[i])) {
            free(parsed);
            return false;
        }
        start += length + 1;
    }
    *widths = parsed;
    *count = n;
    return true;
}

/* Returns the activation named by the `length` bytes at `name`, or NULL if
 * there is none. */
static const hidden_activation *find_activation(const char *name, size_t length)
{
    for (size_t i = 0; i < N_HIDDEN_ACTIVATIONS; i++) {
        const hidden_activation *candidate = &hidden_activations[i];
        if (strlen(candidate->name) == length && strncmp(name, candidate->name, length) == 0) {
            return candidate;
        }
    }
    return NULL;
}

/* Parses NAME or NAME:VALUE into the activation and its parameter; an
 * activation without a parameter accepts only NAME. */
static bool parse_activation(const char *text, const hidden_activation **activation,
                             double *parameter)
{
    const char *colon = strchr(text, ':');
    size_t name_length = colon != NULL ? (size_t)(colon - text) : strlen(text);
    const hidden_activation *found = find_activation(text, name_length);
    if (found == NULL) {
        return false;
    }
    if (colon == NULL) {
        *activation = found;
        *parameter = found->default_parameter;
        return true;
    }
    /* The value is applied in tt_real, so it must be finite there too. */
    char *end = NULL;
    errno = 0;
    double value = strtod(colon + 1, &end);
    if (found->parameter_name == NULL || colon[1] == '\0' || isspace((unsigned char)colon[1]) ||
        errno != 0 || *end != '\0' || !isfinite((tt_real)value)) {
        return false;
    }
    *activation = found;
    *parameter = value;
    return true;
}

static const char *const option_names[OPTION_COUNT] = {
    "data", "hidden", "epochs", "batch", "lr", "seed", "threads", "activation", "save", "load",
    "dot", "log", "plot", "optimizer", "schedule", "step-epochs", "step-gamma"};

/* Returns the option named by the `length` bytes at `name`, or OPTION_COUNT
 * if there is none. */
static enum option_id find_option(const char *name, size_t length)
{
    for (int id = 0; id < OPTION_COUNT; id++) {
        if (strlen(option_names[id]) == length && strncmp(name, option_names[id], length) == 0) {
            return (enum option_id)id;
        }
    }
    return OPTION_COUNT;
}

/* The names of --optimizer, in the order of enum optimizer_choice. */
static const char *const optimizer_names[] = {"sgd", "momentum", "adam"};

/* Parses an --optimizer name. */
static bool parse_optimizer(const char *text, enum optimizer_choice *choice)
{
    for (size_t i = 0; i < sizeof optimizer_names / sizeof optimizer_names[0]; i++) {
        if (strcmp(text, optimizer_names[i]) == 0) {
            *choice = (enum optimizer_choice)i;
            return true;
        }
    }
    return false;
}

/* Stores the value of option `id` in `opts`. Returns NULL on success, or a
 * description of the values the option accepts. */
static const char *set_option(options *opts, enum option_id id, const char *value)
{
    switch (id) {
    case OPTION_DATA:
        if (value[0] == '\0') {
            return "a directory";
        }
        opts->data_dir = value;
        return NULL;
    case OPTION_HIDDEN:
        free(opts->hidden);
        if (!parse_width_list(value, &opts->hidden, &opts->n_hidden)) {
            return "comma-separated positive integers such as 256,128, or ''";
        }
        return NULL;
    case OPTION_EPOCHS: {
        uint64_t epochs = 0;
        if (!parse_unsigned(value, SIZE_MAX, &epochs)) {
            return "a non-negative integer (0 evaluates without training)";
        }
        opts->epochs = (size_t)epochs;
        return NULL;
    }
    case OPTION_BATCH:
        return parse_positive_size(value, &opts->batch) ? NULL : "a positive integer";
    case OPTION_LR:
        /* The rate is applied in tt_real, where a tiny value would round
         * to zero and silently train nothing. */
        if (!parse_positive_real(value, &opts->learning_rate) ||
            (tt_real)opts->learning_rate <= 0) {
            return "a positive number such as 0.1, large enough to be nonzero in " REAL_PRECISION;
        }
        return NULL;
    case OPTION_SEED:
        return parse_unsigned(value, UINT64_MAX, &opts->seed)
                   ? NULL
                   : "an integer from 0 to 18446744073709551615";
    case OPTION_THREADS: {
        uint64_t threads = 0;
        if (!parse_unsigned(value, TT_MAX_THREADS, &threads) || threads == 0) {
            return "an integer from 1 to " TEXT_OF(TT_MAX_THREADS);
        }
        opts->threads = (size_t)threads;
        return NULL;
    }
    case OPTION_ACTIVATION: {
        if (parse_activation(value, &opts->activation, &opts->activation_parameter)) {
            return NULL;
        }
        static char expected[ACTIVATION_LIST_MAX + 64];
        char list[ACTIVATION_LIST_MAX];
        format_activation_list(list, sizeof list, true);
        snprintf(expected, sizeof expected,
                 "%s, where a bracketed parameter is a number within the range of "
                 REAL_TYPE_NAME, list);
        return expected;
    }
    case OPTION_DOT:
    case OPTION_LOG:
    case OPTION_PLOT:
        if (value[0] == '\0') {
            return "a file name";
        }
        if (id == OPTION_DOT) {
            opts->dot_path = value;
        } else if (id == OPTION_LOG) {
            opts->log_path = value;
        } else {
            opts->plot_path = value;
        }
        return NULL;
    case OPTION_SAVE:
    case OPTION_LOAD:
        if (value[0] == '\0') {
            return "a file name";
        }
        *(id == OPTION_SAVE ? &opts->save_path : &opts->load_path) = value;
        return NULL;
    case OPTION_OPTIMIZER:
        return parse_optimizer(value, &opts->optimizer) ? NULL : "sgd, momentum or adam";
    case OPTION_SCHEDULE:
        return schedule_parse_kind(value, &opts->schedule) ? NULL : "constant, step or cosine";
    case OPTION_STEP_EPOCHS:
        return parse_positive_size(value, &opts->step_epochs) ? NULL : "a positive integer";
    case OPTION_STEP_GAMMA:
        if (!parse_positive_real(value, &opts->step_gamma) || opts->step_gamma > 1.0) {
            return "a number greater than 0 and at most 1";
        }
        return NULL;
    case OPTION_COUNT:
        break;
    }
    /* Not reached: parse_options passes only the ids of known options. */
    return "a known option";
}

enum parse_result { PARSE_RUN, PARSE_HELP, PARSE_ERROR };

/* Rejects options that would be silently ignored: those that only training
 * uses, given with --inspect, and the step schedule's settings without
 * --schedule step. Returns false after printing which option and why. */
static bool check_option_effects(const options *opts)
{
    static const enum option_id training_only[] = {
        OPTION_EPOCHS, OPTION_LR, OPTION_OPTIMIZER, OPTION_SCHEDULE, OPTION_STEP_EPOCHS,
        OPTION_STEP_GAMMA, OPTION_SAVE, OPTION_LOG, OPTION_PLOT};
    if (opts->inspect) {
        for (size_t i = 0; i < sizeof training_only / sizeof training_only[0]; i++) {
            if (opts->given[training_only[i]]) {
                fprintf(stderr, "mlp: --%s has no effect with --inspect, which does not train\n",
                        option_names[training_only[i]]);
                return false;
            }
        }
        if (opts->quiet) {
            fprintf(stderr, "mlp: --quiet has no effect with --inspect, which does not train\n");
            return false;
        }
    }
    if (opts->schedule != SCHEDULE_STEP) {
        const enum option_id step_only[] = {OPTION_STEP_EPOCHS, OPTION_STEP_GAMMA};
        for (size_t i = 0; i < 2; i++) {
            if (opts->given[step_only[i]]) {
                fprintf(stderr, "mlp: --%s has no effect without --schedule step\n",
                        option_names[step_only[i]]);
                return false;
            }
        }
    }
    return true;
}

/* Fills `opts` from the command line. On PARSE_ERROR the reason is already
 * on stderr. Whatever the result, the caller frees opts->hidden. */
static enum parse_result parse_options(int argc, char **argv, options *opts)
{
    opts->data_dir = DEFAULT_DATA_DIR;
    opts->epochs = DEFAULT_EPOCHS;
    opts->batch = DEFAULT_BATCH;
    opts->learning_rate = 0.0;
    opts->seed = DEFAULT_SEED;
    opts->optimizer = CHOICE_SGD;
    opts->schedule = SCHEDULE_CONSTANT;
    opts->step_epochs = DEFAULT_STEP_EPOCHS;
    opts->step_gamma = DEFAULT_STEP_GAMMA;
    opts->quiet = false;
    opts->threads = 0;
    opts->activation = &hidden_activations[0];
    opts->activation_parameter = 0;
    opts->n_hidden = 1;
    opts->hidden = malloc(sizeof *opts->hidden);
    if (opts->hidden == NULL) {
        fprintf(stderr, "mlp: out of memory\n");
        return PARSE_ERROR;
    }
    opts->hidden[0] = DEFAULT_HIDDEN_WIDTH;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            fprintf(stderr, "mlp: unexpected argument '%s'\n", arg);
            return PARSE_ERROR;
        }

        /* The value follows '=' in "--name=value", or is the next argument. */
        const char *name = arg + 2;
        const char *equals = strchr(name, '=');
        size_t name_length = equals != NULL ? (size_t)(equals - name) : strlen(name);
        if (name_length == 4 && strncmp(name, "help", 4) == 0) {
            if (equals != NULL) {
                fprintf(stderr, "mlp: option '--help' takes no value\n");
                return PARSE_ERROR;
            }
            return PARSE_HELP;
        }
        if (name_length == 7 && strncmp(name, "inspect", 7) == 0) {
            if (equals != NULL) {
                fprintf(stderr, "mlp: option '--inspect' takes no value\n");
                return PARSE_ERROR;
            }
            opts->inspect = true;
            continue;
        }
        if (name_length == 5 && strncmp(name, "quiet", 5) == 0) {
            if (equals != NULL) {
                fprintf(stderr, "mlp: option '--quiet' takes no value\n");
                return PARSE_ERROR;
            }
            opts->quiet = true;
            continue;
        }
        enum option_id id = find_option(name, name_length);
        if (id == OPTION_COUNT) {
            fprintf(stderr, "mlp: unknown option '%.*s'\n", (int)(name_length + 2), arg);
            return PARSE_ERROR;
        }
        const char *value = NULL;
        if (equals != NULL) {
            value = equals + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fprintf(stderr, "mlp: option '--%s' requires a value\n", option_names[id]);
            return PARSE_ERROR;
        }

        opts->given[id] = true;
        const char *expected = set_option(opts, id, value);
        if (expected != NULL) {
            fprintf(stderr, "mlp: invalid value '%s' for option '--%s': expected %s\n", value,
                    option_names[id], expected);
            return PARSE_ERROR;
        }
    }
    if (!check_option_effects(opts)) {
        return PARSE_ERROR;
    }
    if (opts->load_path != NULL && opts->given[OPTION_HIDDEN]) {
        fprintf(stderr, "mlp: --hidden cannot be combined with --load, which takes the widths "
                        "from the file\n");
        return PARSE_ERROR;
    }
    if (opts->learning_rate == 0.0) {
        static const double default_rates[] = {DEFAULT_LEARNING_RATE,
                                               DEFAULT_MOMENTUM_LEARNING_RATE,
                                               DEFAULT_ADAM_LEARNING_RATE};
        opts->learning_rate = default_rates[opts->optimizer];
    }
    return PARSE_RUN;
}

/* ---- Model -------------------------------------------------------------- */

static void model_free(model *net)
{
    for (size_t t = 0; t < net->n_layers; t++) {
        tt_tensor_free(net->layers[t].w);
        tt_tensor_free(net->layers[t].b);
    }
    free(net->layers);
    net->layers = NULL;
    net->n_layers = 0;
}

/* Creates one layer per entry of `widths` after the first: layer t maps
 * widths[t-1] inputs to widths[t] outputs. W(t) is He-normal (fan in, the
 * gain of net->activation), b(t) zero. Every layer takes that gain, the
 * output layer and the first one (whose input is the pixels) included,
 * which for ReLU is the initialisation the defaults were measured with. */
static bool model_init(model *net, const size_t *widths, size_t n_layers, tt_rng *rng,
                       tt_error *err)
{
    const tt_nonlinearity nonlinearity = net->activation->init;
    const double slope =
        nonlinearity == TT_NONLINEARITY_LEAKY_RELU ? (double)net->activation_parameter : 0.0;
    net->layers = calloc(n_layers, sizeof *net->layers);
    if (net->layers == NULL) {
        err->status = TT_ERR_NOMEM;
        snprintf(err->message, sizeof err->message, "out of memory allocating %zu layers",
                 n_layers);
        return false;
    }
    net->n_layers = n_layers;
    for (size_t t = 1; t <= n_layers; t++) {
        layer *l = &net->layers[t - 1];
        size_t d_in = widths[t - 1];
        size_t d_out = widths[t];
        char name[TENSOR_NAME_MAX];

        snprintf(name, sizeof name, "w%zu", t);
        l->w = tt_tensor_new(d_out, d_in, name, err);
        if (l->w == NULL || tt_tensor_require_grad(l->w, err) != TT_OK ||
            tt_init_kaiming_normal(l->w, rng, TT_FAN_IN, nonlinearity, slope, err) != TT_OK) {
            return false;
        }

        snprintf(name, sizeof name, "b%zu", t);
        l->b = tt_tensor_new(d_out, 1, name, err);
        if (l->b == NULL || tt_tensor_require_grad(l->b, err) != TT_OK) {
            return false;
        }
    }
    return true;
}

/* Records the forward pass of a batch x (s × n) on the tape and returns the
 * C × n logits z(T), or NULL with the error recorded on the tape. If z_out
 * is not NULL, z_out[t - 1] receives z(t) for t = 1 … T. */
static tt_tensor *model_forward(tt_tape *tape, const model *net, tt_tensor *x, tt_tensor **z_out)
{
    tt_tensor *h = x;
    for (size_t t = 0; t < net->n_layers; t++) {
        /* eq. 1: z(t) = W(t)·h(t-1) + b(t), b(t) repeated across the columns */
        tt_tensor *z = tt_add(tape, tt_matmul(tape, net->layers[t].w, h), net->layers[t].b);
        if (z_out != NULL) {
            z_out[t] = z;
        }
        /* eq. 2 for a hidden layer, while the output layer keeps z(T) (eq. 3) */
        if (t + 1 < net->n_layers) {
            const hidden_activation *g = net->activation;
            h = g->apply != NULL ? g->apply(tape, z)
                                 : g->apply_with(tape, z, net->activation_parameter);
        } else {
            h = z;
        }
    }
    return h;
}

/* Creates the optimizer chosen by --optimizer over every W(t) and b(t). */
static tt_optimizer *model_optimizer(const model *net, const options *opts, tt_error *err)
{
    tt_tensor **params = calloc(2 * net->n_layers, sizeof *params);
    if (params == NULL) {
        err->status = TT_ERR_NOMEM;
        snprintf(err->message, sizeof err->message, "out of memory listing the parameters");
        return NULL;
    }
    for (size_t t = 0; t < net->n_layers; t++) {
        params[2 * t] = net->layers[t].w;
        params[2 * t + 1] = net->layers[t].b;
    }
    tt_optimizer_options settings =
        tt_optimizer_defaults(opts->optimizer == CHOICE_ADAM ? TT_OPTIMIZER_ADAM
                                                             : TT_OPTIMIZER_SGD);
    settings.learning_rate = opts->learning_rate;
    if (opts->optimizer == CHOICE_MOMENTUM) {
        settings.momentum = DEFAULT_MOMENTUM;
    }
    tt_optimizer *optimizer = tt_optimizer_new(params, 2 * net->n_layers, &settings, err);
    free(params);
    return optimizer;
}

/* ---- Model files (see model_file.h) ---------------------------------------- */

/* Writes the activation as --activation takes it, NAME or NAME:VALUE, with
 * the value in the digits that a model file records. */
static void describe_activation(const hidden_activation *activation, double parameter,
                                char *text, size_t size)
{
    if (activation->parameter_name == NULL) {
        snprintf(text, size, "%s", activation->name);
        return;
    }
    char value[MODEL_FILE_REAL_TEXT_MAX];
    model_file_format_real((tt_real)parameter, value);
    snprintf(text, size, "%s:%s", activation->name, value);
}

/* Sets opts->activation and its parameter to those of the model file at
 * `path`, described by `arch`. A file without "activation_parameter" gets
 * the activation's default parameter. If --activation was given, it must
 * name the same activation and parameter. Returns false after printing the
 * error. */
static bool use_saved_activation(options *opts, const char *path,
                                 const model_architecture *arch)
{
    const hidden_activation *saved = find_activation(arch->activation, strlen(arch->activation));
    if (saved == NULL) {
        char list[ACTIVATION_LIST_MAX];
        format_activation_list(list, sizeof list, false);
        fprintf(stderr, "mlp: %s: unknown activation '%s' in the metadata; expected %s\n", path,
                arch->activation, list);
        return false;
    }
    if (saved->parameter_name == NULL && arch->has_activation_parameter) {
        fprintf(stderr, "mlp: %s: the activation '%s' takes no parameter, but the metadata "
                        "gives activation_parameter %g\n",
                path, saved->name, arch->activation_parameter);
        return false;
    }
    double parameter = arch->has_activation_parameter ? arch->activation_parameter
                                                      : saved->default_parameter;

    /* The parameters are compared as the op applies them, in tt_real. */
    if (opts->given[OPTION_ACTIVATION] &&
        (opts->activation != saved ||
         (tt_real)opts->activation_parameter != (tt_real)parameter)) {
        char in_file[MODEL_FILE_ACTIVATION_MAX + MODEL_FILE_REAL_TEXT_MAX];
        char given[MODEL_FILE_ACTIVATION_MAX + MODEL_FILE_REAL_TEXT_MAX];
        describe_activation(saved, parameter, in_file, sizeof in_file);
        describe_activation(opts->activation, opts->activation_parameter, given, sizeof given);
        fprintf(stderr, "mlp: %s: the model's activation is '%s', but --activation gives '%s'; "
                        "omit --activation to use the model's\n",
                path, in_file, given);
        return false;
    }
    opts->activation = saved;
    opts->activation_parameter = parameter;
    return true;
}

/* Opens opts->load_path, checks that its model fits the data, and sets the
 * hidden widths and the activation in `opts` to the file's. Returns the
 * open file, or NULL after printing the error. */
static tt_safetensors *open_saved_model(options *opts, size_t n_inputs)
{
    tt_error err = {0};
    model_architecture arch = {0};
    tt_safetensors *file =
        model_file_open(opts->load_path, n_inputs, N_CLASSES, NULL, &arch, &err);
    if (file == NULL) {
        fprintf(stderr, "mlp: %s\n", err.message);
        return NULL;
    }
    if (!use_saved_activation(opts, opts->load_path, &arch)) {
        model_architecture_free(&arch);
        tt_safetensors_close(file);
        return NULL;
    }
    free(opts->hidden);
    opts->n_hidden = arch.n_layers - 1;
    opts->hidden = NULL;
    if (opts->n_hidden > 0) {
        opts->hidden = calloc(opts->n_hidden, sizeof *opts->hidden);
        if (opts->hidden == NULL) {
            opts->n_hidden = 0;
            fprintf(stderr, "mlp: out of memory\n");
            model_architecture_free(&arch);
            tt_safetensors_close(file);
            return NULL;
        }
        memcpy(opts->hidden, arch.widths + 1, opts->n_hidden * sizeof *opts->hidden);
    }
    model_architecture_free(&arch);
    return file;
}

/* Fills weights[t] and biases[t] with the tensors of layer t + 1, in new
 * arrays that the caller frees. */
static bool model_parameters(const model *net, tt_tensor ***weights, tt_tensor ***biases)
{
    *weights = calloc(net->n_layers, sizeof **weights);
    *biases = calloc(net->n_layers, sizeof **biases);
    if (*weights == NULL || *biases == NULL) {
        fprintf(stderr, "mlp: out of memory\n");
        return false;
    }
    for (size_t t = 0; t < net->n_layers; t++) {
        (*weights)[t] = net->layers[t].w;
        (*biases)[t] = net->layers[t].b;
    }
    return true;
}

/* Copies the parameters of the opened model file into `net`, built with the
 * file's widths. Returns false after printing the error. */
static bool read_saved_model(const tt_safetensors *file, model *net)
{
    tt_tensor **weights = NULL;
    tt_tensor **biases = NULL;
    tt_error err = {0};
    bool read = model_parameters(net, &weights, &biases) &&
                model_file_read(file, weights, biases, net->n_layers, &err);
    if (!read && err.message[0] != '\0') {
        fprintf(stderr, "mlp: %s\n", err.message);
    }
    free(weights);
    free(biases);
    return read;
}

/* Saves `net`, its widths and its activation to `path`. Returns false
 * after printing the error. */
static bool save_model(const char *path, const model *net, const size_t *widths)
{
    tt_tensor **weights = NULL;
    tt_tensor **biases = NULL;
    tt_error err = {0};
    const tt_real *parameter =
        net->activation->parameter_name != NULL ? &net->activation_parameter : NULL;
    bool saved = model_parameters(net, &weights, &biases) &&
                 model_file_save(path, weights, biases, net->n_layers, widths,
                                 net->activation->name, parameter, &err);
    if (!saved && err.message[0] != '\0') {
        fprintf(stderr, "mlp: %s\n", err.message);
    }
    free(weights);
    free(biases);
    return saved;
}

/* Checks before training that --save and --plot can be written later, so
 * that a bad path does not lose the run. Each directory must exist and take
 * a temporary file, and each path must not be a symbolic link, directory,
 * FIFO or device. Returns false after printing the error. */
static bool check_output_paths(const options *opts)
{
    const char *paths[] = {opts->save_path, opts->plot_path};
    const char *options_names[] = {"--save", "--plot"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        tt_error err = {0};
        if (paths[i] != NULL && tt_file_check_writable(paths[i], &err) != TT_OK) {
            fprintf(stderr, "mlp: %s: %s\n", options_names[i], err.message);
            return false;
        }
    }
    return true;
}

/* ---- Training and evaluation -------------------------------------------- */

static void print_tape_error(const tt_tape *tape)
{
    const tt_error *error = tt_tape_error(tape);
    if (error->message[0] != '\0') {
        fprintf(stderr, "mlp: %s\n", error->message);
    } else {
        fprintf(stderr, "mlp: %s\n", tt_status_str(error->status));
    }
}

/* Creates the tape tensor x, s × n, for samples sample_ids[0 .. n) of `data`
 * (sample_ids[i] goes to column i) and copies their labels to `labels`.
 * Returns NULL with the error recorded on the tape. */
static tt_tensor *load_batch(tt_tape *tape, const idx_dataset *data, const size_t *sample_ids,
                             size_t n, int32_t *labels)
{
    size_t s = data->rows * data->cols;
    tt_tensor *x = tt_tape_tensor(tape, s, n, "x");
    if (x == NULL) {
        return NULL;
    }
    tt_real *values = tt_tensor_data(x);
    /* This transposing copy is a noticeable part of a small training step.
     * It multiplies by 1/255 instead of dividing, and it copies a group of
     * samples at a time, so that each row of x is written a cache line at
     * a time rather than one element per image. */
    const tt_real scale = (tt_real)(1.0 / PIXEL_MAX);
    for (size_t first = 0; first < n; first += SAMPLE_GROUP) {
        const size_t group = n - first < SAMPLE_GROUP ? n - first : SAMPLE_GROUP;
        const uint8_t *images[SAMPLE_GROUP];
        for (size_t g = 0; g < group; g++) {
            images[g] = data->pixels + sample_ids[first + g] * s;
            labels[first + g] = data->labels[sample_ids[first + g]];
        }
        for (size_t p = 0; p < s; p++) {
            tt_real *row = values + p * n + first;
            for (size_t g = 0; g < group; g++) {
                row[g] = (tt_real)images[g][p] * scale;
            }
        }
    }
    return x;
}

/* What one training epoch needs besides the tape and the model. */
typedef struct trainer {
    tt_optimizer *optimizer;
    tt_batches *batches;      /* shuffled training batches */
    schedule rates;
    size_t steps_done;        /* optimizer steps of the run so far */
    progress display;
} trainer;

/* Runs one epoch of minibatch training and sets `*mean_loss` to the mean
 * training loss per sample. `labels` has room for a whole batch. Allocates
 * nothing: after the first step the tape reuses its memory. Returns false
 * after printing the error. */
static bool train_epoch(tt_tape *tape, model *net, const idx_dataset *train, trainer *run,
                        size_t epoch, int32_t *labels, double *mean_loss)
{
    double loss_sum = 0.0;
    size_t done = 0;
    size_t n = 0;
    const size_t *sample_ids = NULL;
    while ((sample_ids = tt_batches_next(run->batches, &n)) != NULL) {
        tt_tape_reset(tape);
        tt_tensor *x = load_batch(tape, train, sample_ids, n, labels);
        tt_tensor *logits = model_forward(tape, net, x, NULL);
        tt_tensor *loss = tt_cross_entropy(tape, logits, labels, n);
        if (loss == NULL || tt_tape_backward(tape, loss) != TT_OK) {
            progress_end_line(&run->display);
            print_tape_error(tape);
            return false;
        }

        /* L is a mean over the batch, so it is weighted by n, because the
         * last batch may be smaller. */
        loss_sum += (double)tt_tensor_data(loss)[0] * (double)n;
        done += n;
        tt_error err = {TT_OK, ""};
        const double rate = schedule_rate(&run->rates, epoch - 1, run->steps_done);
        /* The step also zeroes the gradients for the next backward pass. */
        if (tt_optimizer_set_learning_rate(run->optimizer, rate, &err) != TT_OK ||
            tt_optimizer_step(run->optimizer, &err) != TT_OK) {
            progress_end_line(&run->display);
            fprintf(stderr, "mlp: %s\n", err.message);
            return false;
        }
        run->steps_done++;
        progress_update(&run->display, done, loss_sum);
    }
    *mean_loss = loss_sum / (double)done;
    return true;
}

/* Returns the row of the largest value in column i of a C × n matrix, or
 * the first such row on a tie. */
static size_t argmax_column(const tt_real *logits, size_t n_classes, size_t n, size_t i)
{
    size_t best = 0;
    for (size_t c = 1; c < n_classes; c++) {
        if (logits[c * n + i] > logits[best * n + i]) {
            best = c;
        }
    }
    return best;
}

/* Sets `*accuracy` to the fraction of `test` that the model classifies
 * correctly, running the forward pass `batch` samples at a time.
 * `sample_ids` and `labels` have room for `batch` entries each. Returns
 * false with the error recorded on the tape. */
static bool evaluate(tt_tape *tape, const model *net, const idx_dataset *test, size_t batch,
                     size_t *sample_ids, int32_t *labels, double *accuracy)
{
    size_t correct = 0;
    for (size_t first = 0; first < test->count; first += batch) {
        size_t n = test->count - first < batch ? test->count - first : batch;
        for (size_t i = 0; i < n; i++) {
            sample_ids[i] = first + i;
        }

        tt_tape_reset(tape);
        tt_tensor *x = load_batch(tape, test, sample_ids, n, labels);
        tt_tensor *logits = model_forward(tape, net, x, NULL);
        if (logits == NULL) {
            return false;
        }

        const tt_real *values = tt_tensor_data(logits);
        for (size_t i = 0; i < n; i++) {
            if ((int32_t)argmax_column(values, N_CLASSES, n, i) == labels[i]) {
                correct++;
            }
        }
    }
    *accuracy = (double)correct / (double)test->count;
    return true;
}

/* ---- Program ------------------------------------------------------------ */

/* Buffers reused by every step, allocated once so that steps allocate
 * nothing. */
typedef struct step_buffers {
    size_t train_batch;  /* columns of a training batch */
    size_t *sample_ids;  /* test samples of one evaluation batch */
    size_t test_batch;   /* columns of an evaluation batch */
    int32_t *labels;     /* labels of one batch, either kind */
} step_buffers;

static bool load_data(const char *dir, idx_dataset *train, idx_dataset *test)
{
    char message[IDX_MESSAGE_MAX];
    if (!idx_dataset_load(train, dir, TRAIN_IMAGES, TRAIN_LABELS, N_CLASSES, message,
                          sizeof message) ||
        !idx_dataset_load(test, dir, TEST_IMAGES, TEST_LABELS, N_CLASSES, message,
                          sizeof message)) {
        fprintf(stderr, "mlp: %s\n", message);
        return false;
    }
    if (test->rows != train->rows || test->cols != train->cols) {
        fprintf(stderr, "mlp: %s: images are %zux%zu pixels, but the training images are %zux%zu\n",
                test->images_path, test->rows, test->cols, train->rows, train->cols);
        return false;
    }
    return true;
}

/* ---- Inspection: --inspect and --dot ---------------------------------------- */

/* Records one training step on the first training batch, in file order,
 * with the current weights (initial or loaded): forward, and backward with every z(t)
 * retained. Then writes the tape to opts->dot_path if set and, with
 * --inspect, prints the engine's gradients beside the closed form of
 * eq. 11-14 (inspect.c). Zeroes the parameter gradients afterwards, so
 * that training starts as it would without these options. Returns false
 * after printing an error. */
static bool inspect_first_batch(const options *opts, tt_tape *tape, model *net,
                                const idx_dataset *train, const step_buffers *buffers)
{
    const size_t n = buffers->train_batch;
    tt_tensor **z = calloc(net->n_layers, sizeof *z);
    inspect_layer *layers = calloc(net->n_layers, sizeof *layers);
    size_t *first_samples = calloc(n, sizeof *first_samples);
    bool ok = z != NULL && layers != NULL && first_samples != NULL;
    if (!ok) {
        fprintf(stderr, "mlp: out of memory\n");
    }

    tt_tensor *x = NULL;
    tt_tensor *loss = NULL;
    if (ok) {
        for (size_t i = 0; i < n; i++) {
            first_samples[i] = i;
        }
        tt_tape_reset(tape);
        x = load_batch(tape, train, first_samples, n, buffers->labels);
        loss = tt_cross_entropy(tape, model_forward(tape, net, x, z), buffers->labels, n);
        for (size_t t = 0; loss != NULL && t < net->n_layers; t++) {
            layers[t] = (inspect_layer){net->layers[t].w, net->layers[t].b, z[t]};
            tt_tensor_retain_grad(z[t], NULL); /* z(t) requires a gradient, so this succeeds */
        }
        if (loss == NULL || tt_tape_backward(tape, loss) != TT_OK) {
            print_tape_error(tape);
            ok = false;
        }
    }

    char message[256];
    if (ok && opts->dot_path != NULL &&
        !inspect_write_dot(tape, opts->dot_path, message, sizeof message)) {
        fprintf(stderr, "mlp: %s\n", message);
        ok = false;
    }

    if (ok && opts->inspect) {
        printf("inspect: one training step on the first %zu training samples with %s%s, "
               "loss %.6f\n\n",
               n, opts->load_path != NULL ? "the weights of " : "the initial weights",
               opts->load_path != NULL ? opts->load_path : "", (double)tt_tensor_data(loss)[0]);
        tt_tape_print(tape, stdout);
        putchar('\n');
        /* The closed form applies the g and g' of the hidden layers' op. */
        double worst = 0.0;
        if (!inspect_print_comparison(stdout, layers, net->n_layers, x, buffers->labels,
                                      net->activation->inspect,
                                      (double)net->activation_parameter, &worst, message,
                                      sizeof message)) {
            fprintf(stderr, "mlp: %s\n", message);
            ok = false;
        } else {
            printf("largest relative difference: %.3e\n", worst);
        }
    }

    for (size_t t = 0; t < net->n_layers; t++) {
        tt_tensor_zero_grad(net->layers[t].w);
        tt_tensor_zero_grad(net->layers[t].b);
    }
    free(first_samples);
    free(layers);
    free(z);
    return ok;
}

/* The finished epochs, kept for the --plot chart. */
typedef struct epoch_history {
    epoch_record *records;
    size_t count;
    size_t capacity;
} epoch_history;

/* Appends `record` to `history`, doubling its room when full, so that the
 * memory follows the epochs run rather than --epochs. Returns false after
 * printing an error if the room cannot grow. */
static bool epoch_history_append(epoch_history *history, const epoch_record *record)
{
    if (history->count == history->capacity) {
        size_t capacity = history->capacity == 0 ? 16 : 2 * history->capacity;
        epoch_record *grown = capacity <= SIZE_MAX / sizeof *grown
                                  ? realloc(history->records, capacity * sizeof *grown)
                                  : NULL;
        if (grown == NULL) {
            fprintf(stderr, "mlp: out of memory keeping the results of epoch %zu for --plot\n",
                    record->epoch);
            return false;
        }
        history->records = grown;
        history->capacity = capacity;
    }
    history->records[history->count++] = *record;
    return true;
}

/* Trains for opts->epochs epochs, printing one line per epoch and then the
 * key=value summary line. For each finished epoch, appends its record to
 * `history` and its CSV row to `log`, each unless NULL. Returns false after
 * printing an error. */
static bool train_and_report(const options *opts, tt_tape *tape, model *net,
                             const idx_dataset *train, const idx_dataset *test, trainer *run,
                             const step_buffers *buffers, epoch_history *history, FILE *log)
{
    double train_seconds = 0.0;
    double train_loss = opts->epochs == 0 ? NAN : 0.0;
    double test_accuracy = 0.0;
    if (opts->epochs == 0 && !evaluate(tape, net, test, buffers->test_batch,
                                       buffers->sample_ids, buffers->labels, &test_accuracy)) {
        print_tape_error(tape);
        return false;
    }
    for (size_t epoch = 1; epoch <= opts->epochs; epoch++) {
        progress_start_epoch(&run->display, epoch);
        double start = progress_now();
        if (!train_epoch(tape, net, train, run, epoch, buffers->labels, &train_loss)) {
            return false;
        }
        double epoch_seconds = progress_now() - start;
        train_seconds += epoch_seconds;
        if (!isfinite(train_loss)) {
            progress_end_line(&run->display);
            fprintf(stderr,
                    "mlp: training diverged in epoch %zu with a mean loss of %s; "
                    "try a --lr smaller than %g\n",
                    epoch, isnan(train_loss) ? "NaN" : "infinity", opts->learning_rate);
            return false;
        }

        if (!evaluate(tape, net, test, buffers->test_batch, buffers->sample_ids,
                      buffers->labels, &test_accuracy)) {
            progress_end_line(&run->display);
            print_tape_error(tape);
            return false;
        }
        progress_end_epoch(&run->display, train_loss, test_accuracy, epoch_seconds);
        const epoch_record record = {epoch, train_loss, test_accuracy, epoch_seconds};
        if (history != NULL && !epoch_history_append(history, &record)) {
            return false;
        }
        char message[IDX_MESSAGE_MAX];
        if (log != NULL &&
            !history_log_append(log, opts->log_path, &record, message, sizeof message)) {
            fprintf(stderr, "mlp: %s\n", message);
            return false;
        }
    }
    printf("epochs=%zu train_seconds=%.3f train_loss=%.4f test_accuracy=%.4f\n", opts->epochs,
           train_seconds, train_loss, test_accuracy);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mlp: cannot write to standard output\n");
        return false;
    }
    return true;
}

/* Room for the chart's title; a longer one is cut. */
#define CHART_TITLE_MAX 320

/* Writes the --plot chart's title, the settings of the run, e.g.
 * "mlp: hidden 256,128, relu, adam, lr 0.001, schedule cosine, batch 64,
 * seed 1". The step schedule adds its gamma and epochs. */
static void format_chart_title(const options *opts, char *title, size_t size)
{
    size_t used = (size_t)snprintf(title, size, "mlp: hidden %s", opts->n_hidden == 0 ? "none" : "");
    for (size_t t = 0; t < opts->n_hidden && used < size; t++) {
        used += (size_t)snprintf(title + used, size - used, "%s%zu", t == 0 ? "" : ",",
                                 opts->hidden[t]);
    }
    char activation[MODEL_FILE_ACTIVATION_MAX + MODEL_FILE_REAL_TEXT_MAX];
    describe_activation(opts->activation, opts->activation_parameter, activation,
                        sizeof activation);
    if (used < size) {
        used += (size_t)snprintf(title + used, size - used, ", %s, %s, lr %g, schedule %s",
                                 activation, optimizer_names[opts->optimizer],
                                 opts->learning_rate, schedule_kind_name(opts->schedule));
    }
    if (opts->schedule == SCHEDULE_STEP && used < size) {
        used += (size_t)snprintf(title + used, size - used, " (gamma %g every %zu epochs)",
                                 opts->step_gamma, opts->step_epochs);
    }
    if (used < size) {
        snprintf(title + used, size - used, ", batch %zu, seed %" PRIu64, opts->batch,
                 opts->seed);
    }
}

/* Runs train_and_report with the --log file open and writes the --plot
 * chart afterwards. Returns false after printing an error. */
static bool train_with_history(const options *opts, tt_tape *tape, model *net,
                               const idx_dataset *train, const idx_dataset *test, trainer *run,
                               const step_buffers *buffers)
{
    char message[IDX_MESSAGE_MAX];
    FILE *log = NULL;
    if (opts->log_path != NULL) {
        log = history_log_open(opts->log_path, message, sizeof message);
        if (log == NULL) {
            fprintf(stderr, "mlp: %s\n", message);
            return false;
        }
    }
    epoch_history history = {0};
    bool ok = train_and_report(opts, tape, net, train, test, run, buffers,
                               opts->plot_path != NULL ? &history : NULL, log);
    if (!history_log_close(log, opts->log_path, message, sizeof message)) {
        fprintf(stderr, "mlp: %s\n", message);
        ok = false;
    }
    /* A chart of the epochs that finished is drawn even after a failure. */
    if (opts->plot_path != NULL && history.count > 0) {
        char title[CHART_TITLE_MAX];
        format_chart_title(opts, title, sizeof title);
        if (!history_write_svg(opts->plot_path, title, history.records, history.count, message,
                               sizeof message)) {
            fprintf(stderr, "mlp: %s\n", message);
            ok = false;
        }
    }
    free(history.records);
    return ok;
}

int main(int argc, char **argv)
{
    options opts = {0};
    enum parse_result parsed = parse_options(argc, argv, &opts);
    if (parsed != PARSE_RUN) {
        free(opts.hidden);
        if (parsed == PARSE_HELP) {
            print_help();
            if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "mlp: cannot write to standard output\n");
                return EXIT_FAILURE;
            }
            return EXIT_SUCCESS;
        }
        print_usage_line(stderr);
        fputs("Try 'mlp --help' for more information.\n", stderr);
        return EXIT_USAGE;
    }

    int exit_status = EXIT_FAILURE;
    idx_dataset train = {0};
    idx_dataset test = {0};
    model net = {0};
    tt_tape *tape = NULL;
    size_t *widths = NULL;
    step_buffers buffers = {0};
    trainer run = {0};
    tt_error err = {0};
    tt_safetensors *saved_model = NULL;

    if (!check_output_paths(&opts) || !load_data(opts.data_dir, &train, &test)) {
        goto cleanup;
    }
    if (opts.load_path != NULL) {
        saved_model = open_saved_model(&opts, train.rows * train.cols);
        if (saved_model == NULL) {
            goto cleanup;
        }
    }

    /* A batch larger than a data set only needs as many columns as it has. */
    buffers.train_batch = opts.batch < train.count ? opts.batch : train.count;
    buffers.test_batch = opts.batch < test.count ? opts.batch : test.count;
    size_t max_batch =
        buffers.train_batch > buffers.test_batch ? buffers.train_batch : buffers.test_batch;

    /* widths = d_0 = s, d_1 … d_(T-1) from --hidden, d_T = C */
    size_t n_layers = opts.n_hidden + 1;
    widths = calloc(n_layers + 1, sizeof *widths);
    buffers.sample_ids = calloc(buffers.test_batch, sizeof *buffers.sample_ids);
    buffers.labels = calloc(max_batch, sizeof *buffers.labels);
    if (widths == NULL || buffers.sample_ids == NULL || buffers.labels == NULL) {
        fprintf(stderr, "mlp: out of memory\n");
        goto cleanup;
    }
    widths[0] = train.rows * train.cols;
    for (size_t t = 1; t < n_layers; t++) {
        widths[t] = opts.hidden[t - 1];
    }
    widths[n_layers] = N_CLASSES;

    tt_rng rng;
    tt_rng_seed(&rng, opts.seed);
    net.activation = opts.activation;
    net.activation_parameter = (tt_real)opts.activation_parameter;
    if (!model_init(&net, widths, n_layers, &rng, &err)) {
        fprintf(stderr, "mlp: %s\n", err.message);
        goto cleanup;
    }
    if (saved_model != NULL && !read_saved_model(saved_model, &net)) {
        goto cleanup;
    }
    /* The shuffling generator is seeded from the main one, so that --seed
     * fixes both and they draw different streams. */
    run.batches = tt_batches_new(train.count, buffers.train_batch, false, tt_rng_next(&rng), &err);
    run.optimizer = run.batches != NULL ? model_optimizer(&net, &opts, &err) : NULL;
    tape = run.optimizer != NULL ? tt_tape_new(&err) : NULL;
    /* The optimizer steps on the tape's threads too, so it is freed first
     * at the end. */
    if (tape == NULL || tt_tape_set_threads(tape, opts.threads, &err) != TT_OK ||
        tt_optimizer_use_tape_threads(run.optimizer, tape, &err) != TT_OK) {
        fprintf(stderr, "mlp: %s\n", err.message);
        goto cleanup;
    }
    run.rates = (schedule){opts.schedule, opts.learning_rate, opts.step_epochs, opts.step_gamma,
                           opts.epochs * tt_batches_per_epoch(run.batches)};
    progress_init(&run.display, stdout, opts.quiet, opts.epochs, train.count);
    if (opts.inspect || opts.dot_path != NULL) {
        if (!inspect_first_batch(&opts, tape, &net, &train, &buffers)) {
            goto cleanup;
        }
        if (opts.inspect) {
            exit_status = EXIT_SUCCESS;
            goto cleanup;
        }
    }
    if (train_with_history(&opts, tape, &net, &train, &test, &run, &buffers) &&
        (opts.save_path == NULL || save_model(opts.save_path, &net, widths))) {
        exit_status = EXIT_SUCCESS;
    }

cleanup:
    tt_safetensors_close(saved_model);
    tt_optimizer_free(run.optimizer);
    tt_tape_free(tape);
    tt_batches_free(run.batches);
    model_free(&net);
    free(buffers.labels);
    free(buffers.sample_ids);
    free(widths);
    idx_dataset_free(&test);
    idx_dataset_free(&train);
    free(opts.hidden);
    return exit_status;
}
