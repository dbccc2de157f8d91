/* tensortape: a reverse-mode automatic-differentiation engine for 2-D tensors.
 *
 * Ops run eagerly on a tape: each call computes its result at once and
 * records itself, and tt_tape_backward() walks the records in reverse to
 * fill in gradients.
 *
 * Storage. A tensor is rows × cols, row-major: element (r, c) is at
 * data[r * cols + c]. Models follow the samples-as-columns convention of the
 * README's "The math": an input batch is s × n, a weight d_t × d_(t-1), a
 * bias d_t × 1.
 *
 * Ownership. Tensors made with tt_tensor_new() and tt_tensor_from_data()
 * ("leaf tensors": parameters and long-lived inputs) belong to the caller,
 * who frees them with tt_tensor_free(). Tensors returned by ops and by
 * tt_tape_tensor() live in the tape's memory: they stay valid until the
 * next tt_tape_reset() or tt_tape_free() and must not be freed. Using one
 * after that is undefined, as with any freed memory. A caller-owned tensor
 * that an op has used must stay alive, and keep its data, until the tape
 * is reset, because the backward pass reads it.
 *
 * Errors. Every failure is a tt_status plus a readable message, and no call
 * aborts, exits or prints. There are two ways the message reaches you:
 *   - Calls off the tape take a `tt_error *err` (which may be NULL) and
 *     fill it on failure. They return NULL or a tt_status other than TT_OK.
 *   - Ops on a tape return NULL on failure and record the error on the tape.
 *     The error is sticky: every later op on that tape returns NULL without
 *     doing anything, and tt_tape_backward() returns the same status, so
 *     model code can chain ops and check once:
 *         tt_tensor *h = tt_relu(tape, tt_add(tape, tt_matmul(tape, w, x), b));
 *         if (h == NULL) fprintf(stderr, "%s\n", tt_tape_error(tape)->message);
 *     tt_tape_reset() clears the error.
 * A NULL tensor argument to an op on a failed tape is expected, because
 * that is how chaining passes the failure on. On a healthy tape it is
 * reported as TT_ERR_ARG.
 *
 * Gradients. tt_tape_backward() adds into the gradient of every leaf tensor
 * that requires one: it never zeroes them, so two backward passes without a
 * tt_tensor_zero_grad() in between leave the sum of both gradients. The
 * gradients of tape tensors start from zero in each backward pass. After
 * backward, only the gradients of leaf tensors and of the tape tensors
 * marked with tt_tensor_retain_grad() are readable, and tt_tensor_grad()
 * returns NULL for every other tape tensor. A hook set with
 * tt_tensor_set_grad_hook() receives any tensor's gradient during backward.
 *
 * Threads. A tape and the tensors it uses must be used by one thread at a
 * time. Different tapes may be used concurrently if they share no tensor
 * that requires a gradient.
 */
#ifndef TENSORTAPE_H
#define TENSORTAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tensortape_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TT_API marks the declarations that the shared library exports. The
 * library is compiled with hidden visibility, so every function without it,
 * such as the helpers of src/internal.h, stays inside the library. */
#if defined(__GNUC__) || defined(__clang__)
#define TT_API __attribute__((visibility("default")))
#else
#define TT_API
#endif

/* TT_PRINTF_FORMAT(f, a) lets the compiler check a printf-style call whose
 * format is argument f and whose values start at argument a. */
#if defined(__GNUC__) || defined(__clang__)
#define TT_PRINTF_FORMAT(format_index, first_value) \
    __attribute__((format(printf, format_index, first_value)))
#else
#define TT_PRINTF_FORMAT(format_index, first_value)
#endif

/* The version as one integer, MAJOR * 10000 + MINOR * 100 + PATCH, for
 * comparisons such as TT_VERSION_NUMBER >= 200. TT_VERSION_MAJOR, _MINOR and
 * _PATCH are defined in tensortape_config.h. */
#define TT_VERSION_NUMBER (TT_VERSION_MAJOR * 10000 + TT_VERSION_MINOR * 100 + TT_VERSION_PATCH)

/* The version of the loaded library as "MAJOR.MINOR.PATCH", a static string.
 * It can differ from the TT_VERSION_* macros when a program runs with
 * another build of the shared library than the one it was compiled with. */
TT_API const char *tt_version(void);

/* The version of the loaded library as one integer, laid out like
 * TT_VERSION_NUMBER. */
TT_API int tt_version_number(void);

/* Element type of every tensor, chosen when the library is built (meson
 * option `real`): float by default, double with -Dreal=double. */
#if TT_REAL_IS_DOUBLE
typedef double tt_real;
#else
typedef float tt_real;
#endif

/* Outcome of a call. TT_OK is zero; every other value is a failure. */
typedef enum tt_status {
    TT_OK = 0,
    TT_ERR_ARG,   /* invalid argument: NULL, a zero or overflowing size, or a tensor
                     of another tape */
    TT_ERR_SHAPE, /* operand shapes do not fit the op */
    TT_ERR_RANGE, /* a value is outside its allowed range, e.g. a class label */
    TT_ERR_NOMEM, /* a memory allocation failed */
    TT_ERR_STATE, /* the call does not fit the object's state */
    TT_ERR_NUMERIC, /* a NaN or infinity where a finite value is needed (anomaly
                       mode, tt_gradcheck) */
    TT_ERR_IO,     /* a file could not be opened, read, written, synced or renamed */
    TT_ERR_FORMAT  /* a file's contents do not follow its format */
} tt_status;

/* Maximum length of an error message, including the terminating NUL. */
#define TT_ERROR_MESSAGE_MAX 256

/* A failure's status and its message, e.g. "matmul: A (w1) is 256x784 but
 * B (x) is 100x64; the columns of A must equal the rows of B". */
typedef struct tt_error {
    tt_status status;
    char message[TT_ERROR_MESSAGE_MAX];
} tt_error;

/* Returns a static, human-readable name for a status ("shape mismatch"). */
TT_API const char *tt_status_str(tt_status status);

/* ---- Random numbers ------------------------------------------------------ */

/* State of a seeded pseudo-random generator (SplitMix64). The same seed
 * always yields the same sequence, on every platform. Plain value type: copy
 * it to fork a stream. */
typedef struct tt_rng {
    uint64_t state;
} tt_rng;

/* Sets the generator to the start of the sequence for `seed`. */
TT_API void tt_rng_seed(tt_rng *rng, uint64_t seed);

/* Returns the next 64 random bits. */
TT_API uint64_t tt_rng_next(tt_rng *rng);

/* Returns a uniform double in [0, 1), with 53 random bits. */
TT_API double tt_rng_uniform(tt_rng *rng);

/* Returns a uniform integer in [0, bound); bound must be at least 1. */
TT_API uint64_t tt_rng_below(tt_rng *rng, uint64_t bound);

/* Returns a standard normal double (mean 0, standard deviation 1). */
TT_API double tt_rng_normal(tt_rng *rng);

/* ---- Tensors ------------------------------------------------------------- */

typedef struct tt_tensor tt_tensor;

/* Creates a caller-owned rows × cols tensor of zeros with no gradient.
 * `name` (may be NULL) is copied and appears in error messages.
 * Returns NULL and fills `err` if a size is zero, rows × cols overflows, or
 * memory runs out. Free it with tt_tensor_free(). */
TT_API tt_tensor *tt_tensor_new(size_t rows, size_t cols, const char *name, tt_error *err);

/* Creates a caller-owned rows × cols tensor holding a copy of
 * `data[0 .. rows*cols)`, row-major. Errors as tt_tensor_new(), plus
 * TT_ERR_ARG for NULL `data`. */
TT_API tt_tensor *tt_tensor_from_data(size_t rows, size_t cols, const tt_real *data,
                                      const char *name, tt_error *err);

/* Frees a caller-owned tensor and its gradient. NULL is ignored, and so is a
 * tape tensor, whose memory belongs to its tape. */
TT_API void tt_tensor_free(tt_tensor *tensor);

/* Gives a caller-owned tensor a zeroed gradient buffer of its own shape, so
 * that backward passes add into it. Calling it again keeps the gradient.
 * Call it before the tensor's first op on a tape: an op records whether its
 * output needs a gradient when it runs, so a tensor given a gradient later
 * receives contributions only from ops whose output already needed one.
 * Returns TT_ERR_ARG for NULL or a tape tensor, TT_ERR_NOMEM if the
 * allocation fails. */
TT_API tt_status tt_tensor_require_grad(tt_tensor *tensor, tt_error *err);

/* Sets every gradient entry to zero. Does nothing for NULL or a tensor
 * without a gradient. For a caller-owned tensor it writes nothing. It marks
 * the gradient as zero, so the next backward pass overwrites it instead of
 * adding to it, and tt_tensor_grad() writes the zeros if it is called
 * first. So use a pointer taken after the call. One taken before it still
 * shows the old values, and values written through it are overwritten by
 * the next backward pass. */
TT_API void tt_tensor_zero_grad(tt_tensor *tensor);

/* Shape and name. A tape tensor without a name of its own is shown in
 * messages as "OP@POSITION", e.g. "relu@3" for the output of the op at tape
 * position 3; tt_tensor_name() returns NULL for it. */
TT_API size_t tt_tensor_rows(const tt_tensor *tensor);
TT_API size_t tt_tensor_cols(const tt_tensor *tensor);
TT_API const char *tt_tensor_name(const tt_tensor *tensor);

/* The rows × cols values, row-major. Writing to a tape tensor's data after an
 * op has read it makes that op's gradient wrong. */
TT_API tt_real *tt_tensor_data(tt_tensor *tensor);

/* The gradient, of the tensor's shape, or NULL if it has none. A
 * caller-owned tensor has one after tt_tensor_require_grad(). A tape tensor
 * has one only if it requires a gradient and was marked with
 * tt_tensor_retain_grad(), and only once tt_tape_backward() has reached it;
 * for any other tape tensor this returns NULL. */
TT_API tt_real *tt_tensor_grad(tt_tensor *tensor);

/* Keeps the gradient of a tape tensor readable through tt_tensor_grad()
 * after tt_tape_backward(), as leaf gradients are. Call it before backward;
 * the mark lasts until the tape is reset. It stores one flag in the tensor
 * and allocates nothing. For a caller-owned tensor that requires a gradient
 * it does nothing, since that gradient is always kept. Returns TT_ERR_ARG
 * for NULL and TT_ERR_STATE, with `err` filled, for a tensor that never
 * gets a gradient: a tape tensor computed only from tensors without one,
 * or a caller-owned tensor without tt_tensor_require_grad(). */
TT_API tt_status tt_tensor_retain_grad(tt_tensor *tensor, tt_error *err);

/* A gradient hook: tt_tape_backward() calls it once per pass with the
 * tensor, the tensor's own gradient buffer (rows × cols, row-major, holding
 * the complete gradient) and the context given to
 * tt_tensor_set_grad_hook(). */
typedef void (*tt_grad_hook)(tt_tensor *tensor, tt_real *grad, void *context);

/* Sets the hook that backward calls once `tensor`'s gradient is complete,
 * replacing any earlier hook; a NULL hook removes it. A tensor has at most
 * one hook, stored in the tensor itself, so setting one allocates nothing.
 *   - For a tape tensor the hook runs when backward reaches the op that
 *     produced it, after every later op has added its contribution and
 *     before the gradient flows on to the op's inputs. A gradient no later
 *     op contributes to is zero, and the hook still runs. The hook may
 *     change the gradient: the change then flows into the inputs, as if
 *     the later ops had produced it. The hook lasts until the tape is reset.
 *   - For a caller-owned tensor the hook runs after the step of the first
 *     op on the tape that used it, which is the last step to add to its
 *     gradient. The buffer is the accumulated gradient, so it includes
 *     earlier passes unless the caller zeroed it. A change stays in that
 *     gradient. The hook lasts until it is replaced or removed. It runs
 *     in each pass in which an op up to the loss reads the tensor.
 * Hooks run in the order backward completes the gradients, on the thread
 * that called tt_tape_backward(). A hook must not run ops on the tape,
 * reset it, free tensors or start another backward pass. Anomaly mode does
 * not check what a hook writes, only the gradients later steps compute
 * from it. Returns TT_ERR_ARG for a NULL tensor and TT_ERR_STATE, with
 * `err` filled, for a tensor that never gets a gradient (see
 * tt_tensor_retain_grad). */
TT_API tt_status tt_tensor_set_grad_hook(tt_tensor *tensor, tt_grad_hook hook, void *context,
                                         tt_error *err);

/* Fills the tensor with uniform values in [low, high) or with normal values
 * of the given mean and standard deviation, drawn from `rng` in storage
 * order. */
TT_API void tt_tensor_fill_uniform(tt_tensor *tensor, tt_rng *rng, tt_real low, tt_real high);
TT_API void tt_tensor_fill_normal(tt_tensor *tensor, tt_rng *rng, tt_real mean, tt_real stddev);

/* ---- Tape ---------------------------------------------------------------- */

typedef struct tt_tape tt_tape;

/* Creates an empty tape, using one thread per online CPU for matrix
 * products (see tt_tape_set_threads). Its memory grows as ops need it;
 * nothing has to be sized in advance. Returns NULL and fills `err` if
 * memory runs out or the threads cannot start. */
TT_API tt_tape *tt_tape_new(tt_error *err);

/* Frees the tape and every tensor it owns. NULL is ignored. */
TT_API void tt_tape_free(tt_tape *tape);

/* Forgets every record and tape tensor and clears a sticky error, keeping
 * the memory for reuse: a training step that repeats the previous step's
 * ops takes nothing from the heap. Leaf tensors are not touched. */
TT_API void tt_tape_reset(tt_tape *tape);

/* Maximum number of threads a tape can use. */
#define TT_MAX_THREADS 256

/* Sets how many threads this tape's matrix products, relu and add use,
 * counting the calling thread; 0 means one per online CPU, which is also
 * what a new tape uses. Results are bitwise identical for every thread
 * count: each thread computes whole tiles of a product's output, or whole
 * rows or elements of relu and add, with the same sums in the same order.
 * relu and add stay on the calling thread below 131072 elements, and the
 * other ops always do. It may be called between an op and its backward
 * pass. Returns TT_ERR_ARG for NULL or more than TT_MAX_THREADS, and
 * TT_ERR_NOMEM, keeping the previous count, if the threads cannot start or
 * their matrix-product scratch cannot be allocated.
 * Do not call it while another thread runs an op on this tape. */
TT_API tt_status tt_tape_set_threads(tt_tape *tape, size_t n_threads, tt_error *err);

/* Number of threads this tape's parallel ops use; 0 for NULL. */
TT_API size_t tt_tape_threads(const tt_tape *tape);

/* TT_OK, or the status of the first failure since the last reset. */
TT_API tt_status tt_tape_status(const tt_tape *tape);

/* The first failure since the last reset; its status is TT_OK and its
 * message empty while the tape is healthy. */
TT_API const tt_error *tt_tape_error(const tt_tape *tape);

/* Number of ops recorded since the last reset. */
TT_API size_t tt_tape_length(const tt_tape *tape);

/* Creates a rows × cols tensor of zeros in the tape's memory, for per-step
 * inputs such as a minibatch. It has no gradient and is valid until the next
 * reset. Returns NULL on failure, recorded on the tape. */
TT_API tt_tensor *tt_tape_tensor(tt_tape *tape, size_t rows, size_t cols, const char *name);

/* Runs the backward pass from `loss`, a 1 × 1 tensor produced by an op on
 * this tape: seeds dL/dloss = 1 and walks the records in reverse, adding into
 * the gradient of every tensor that requires one (see "Gradients" above).
 * Returns the tape's sticky error if it has one, TT_ERR_ARG if `loss` is
 * NULL or not an op output of this tape, TT_ERR_SHAPE if it is not 1 × 1,
 * and TT_ERR_STATE if no tensor it was computed from requires a gradient
 * (usually a missing tt_tensor_require_grad()). A failure here is recorded
 * on the tape as well. */
TT_API tt_status tt_tape_backward(tt_tape *tape, tt_tensor *loss);

/* Prints the tape as a table to `out`, for reading in a terminal: rows are
 * about 90 columns wide, more only for long shapes. A header line gives the number of records and whether
 * gradients are shown. Each record then gets a line with its position, op,
 * output and inputs (name or "OP@POSITION", and rows x cols). A "value"
 * line follows with statistics of the output: min, max and mean of its
 * finite entries, the count of entries equal to 0 and the counts of NaN
 * and of infinities. After a successful tt_tape_backward() a "grad" line
 * gives the same statistics of the output's gradient, whether or not it
 * was retained, for every record up to the loss. The caller-owned tensors
 * that require a gradient follow, each once, with their values and
 * gradients. A tape with a sticky error is printed with the error's
 * message. Numbers use printf's %.4g.
 * Write errors are left on the stream for the caller to check with
 * ferror(). Returns TT_ERR_ARG if `tape` or `out` is NULL. */
TT_API tt_status tt_tape_print(const tt_tape *tape, FILE *out);

/* Writes the tape as a Graphviz DOT graph to `out`, for example for
 * `dot -Tsvg`. Each op output is an ellipse labelled with its name (or
 * "OP@POSITION"), op and shape. Each tensor that no op produced is a box:
 * a caller-owned tensor that requires a gradient (a parameter) is filled
 * and drawn bold, and any other input is dashed. An edge runs from each
 * input to the output of the op that reads it, labelled with the input's
 * index when the op has two. Names are escaped for DOT strings; bytes
 * that are not valid UTF-8 and control characters are written as '?'.
 * Write errors are left on the stream for the caller to check with
 * ferror(). Returns TT_ERR_ARG if `tape` or `out` is NULL. */
TT_API tt_status tt_tape_write_dot(const tt_tape *tape, FILE *out);

/* Turns anomaly mode on or off for this tape. A new tape has it off, and a
 * reset keeps the setting. In anomaly mode every op checks its output for
 * NaN and infinity, and every backward step checks the gradients it added
 * into. The first NaN or infinity found becomes the tape's sticky error,
 * with status TT_ERR_NUMERIC and a message that names the op, its tape
 * position, the tensor and its shape, and the first bad element's (row,
 * column) and value:
 *     anomaly: the output of relu@3 (64x128) has nan at (5, 17); the usual ...
 * An op whose output fails the check still records itself and returns its
 * output, so that the values can be inspected. The ops after it return
 * NULL, as after any failure. Backward stops at the failing step, so leaf
 * gradients then hold only part of the pass's contributions. The checks
 * read every output and gradient once more, which costs about as much as
 * one elementwise op per tensor. Returns TT_ERR_ARG for NULL. */
TT_API tt_status tt_tape_set_anomaly_check(tt_tape *tape, bool enabled);

/* Whether anomaly mode is on; false for NULL. */
TT_API bool tt_tape_anomaly_check(const tt_tape *tape);

/* ---- Ops ------------------------------------------------------------------
 * Each op checks its arguments, computes its output in the tape's memory
 * and records itself. On failure it returns NULL, records nothing and sets
 * the tape's sticky error. The one exception is a NaN or infinity found in
 * anomaly mode (see tt_tape_set_anomaly_check). An input is a caller-owned
 * tensor or a tensor of the same tape. The output requires a gradient if
 * any input does. */

/* Matrix product C = A·B: A is m × k, B is k × n, C is m × n.
 * Backward: dA += dC·Bᵀ and dB += Aᵀ·dC, without forming a transpose.
 * TT_ERR_SHAPE if the columns of A differ from the rows of B. */
TT_API tt_tensor *tt_matmul(tt_tape *tape, tt_tensor *a, tt_tensor *b);

/* Elementwise sum with broadcasting. The output has, in each dimension, the
 * larger of the two operands' sizes. Each operand must match it there or be
 * 1, and then its single row or column is repeated. This covers equal
 * shapes, d×1 + d×n (a bias added to every column), 1×n + d×n, 1×1 + any,
 * either way round, and d×1 + 1×n (an outer sum).
 * Backward: each operand receives dC summed over the dimensions it was
 * broadcast along. TT_ERR_SHAPE if the shapes do not broadcast. */
TT_API tt_tensor *tt_add(tt_tape *tape, tt_tensor *a, tt_tensor *b);

/* Rectified linear unit, elementwise: max(0, x) (eq. 15). NaN stays NaN
 * and −0 stays −0, since neither is below 0.
 * Backward: dx += dy where x > 0; the derivative at exactly 0 is 0 (eq. 16). */
TT_API tt_tensor *tt_relu(tt_tape *tape, tt_tensor *x);

/* Activations, elementwise like tt_relu: the output has x's shape and
 * backward adds dx += dy · g'(x). For every finite x the output is finite,
 * and values and derivatives that are tiny in the tails, such as
 * sigmoid'(40) ≈ 4.2e-18, are kept to rounding instead of rounded to 0.
 * NaN stays NaN, in the output and in the gradient, except where noted. */

/* Logistic sigmoid, 1 / (1 + exp(−x)), in (0, 1); exp is only taken of
 * −|x|, so nothing overflows. sigmoid(±inf) = 1 or 0.
 * Derivative y·(1 − y), computed as e / (1 + e)² with e = exp(−|x|); it
 * is 0 at ±inf and underflows to 0 only where its value is below the
 * smallest tt_real. */
TT_API tt_tensor *tt_sigmoid(tt_tape *tape, tt_tensor *x);

/* Hyperbolic tangent, in (−1, 1); tanh(±inf) = ±1.
 * Derivative 1 − y², computed as 4e / (1 + e)² with e = exp(−2|x|); 0 at
 * ±inf. */
TT_API tt_tensor *tt_tanh(tt_tape *tape, tt_tensor *x);

/* Leaky ReLU: x for x ≥ 0, slope·x for x < 0. A slope of 0 gives relu
 * exactly, −inf included. −0 stays −0.
 * Derivative 1 for x > 0 and `slope` for x ≤ 0: at exactly 0 it takes the
 * left-hand slope, as ReLU'(0) = 0, and a NaN x also gets `slope`. The
 * slope is saved on the tape with the record. Any finite slope is
 * accepted; with |slope| > 1 a large negative x can overflow to −inf.
 * TT_ERR_ARG if the slope is NaN or infinite. */
TT_API tt_tensor *tt_leaky_relu(tt_tape *tape, tt_tensor *x, tt_real slope);

/* Softplus, log(1 + exp(x)), computed as max(x, 0) + log1p(exp(−|x|)),
 * which does not overflow and keeps the value exp(x) for very negative x.
 * softplus(+inf) = +inf, softplus(−inf) = 0.
 * Derivative sigmoid(x), computed as tt_sigmoid computes it. */
TT_API tt_tensor *tt_softplus(tt_tape *tape, tt_tensor *x);

/* Exponential linear unit: x for x > 0, alpha·(exp(x) − 1) for x ≤ 0,
 * computed with expm1 so that tiny negative x keep the value alpha·x.
 * ELU(−inf) = −alpha.
 * Derivative 1 for x > 0 and alpha·exp(x) for x ≤ 0, so the derivative at
 * exactly 0 is alpha, the left-hand slope. Unless alpha is 1 the gradient
 * checker excludes differences across 0. alpha is saved on the tape with
 * the record. TT_ERR_ARG if alpha is NaN or infinite. */
TT_API tt_tensor *tt_elu(tt_tape *tape, tt_tensor *x, tt_real alpha);

/* SiLU (swish), x·sigmoid(x). SiLU(+inf) = +inf and SiLU(−inf) = 0.
 * Derivative sigmoid(x)·(1 + x·sigmoid(−x)), which is 1 at +inf and 0 at
 * −inf. */
TT_API tt_tensor *tt_silu(tt_tape *tape, tt_tensor *x);

/* GELU, exact: x·Φ(x), with Φ(x) = erfc(−x/√2)/2 the standard normal
 * distribution function; erfc keeps the small negative values in the
 * lower tail. GELU(+inf) = +inf and GELU(−inf) = 0.
 * Derivative Φ(x) + x·exp(−x²/2)/√(2π), which is 1 at +inf and 0 at −inf. */
TT_API tt_tensor *tt_gelu(tt_tape *tape, tt_tensor *x);

/* GELU, tanh approximation: x·(1 + tanh(u))/2 with
 * u = √(2/π)·(x + 0.044715·x³), computed as x·sigmoid(2u), which is equal
 * and keeps the lower tail. It differs from tt_gelu by at most about 5e-4.
 * Values at ±inf as tt_gelu. Derivative sigmoid(2u) + 2x·sigmoid(2u)·
 * sigmoid(−2u)·du/dx, with du/dx = √(2/π)·(1 + 3·0.044715·x²). */
TT_API tt_tensor *tt_gelu_tanh(tt_tape *tape, tt_tensor *x);

/* Softmax cross-entropy over columns, fused: `logits` is C × n (one column
 * per sample), `labels` holds n class indices in [0, C). Returns the 1 × 1
 * mean loss of eq. 8,
 *     L = (1/n) Σ_i ( log Σ_c exp(z[c,i]) − z[labels[i], i] ),
 * with the log-sum-exp taken after subtracting each column's maximum
 * (eq. 9–10), so that logits as large as ±1e30 give a finite, exact loss.
 * Backward: dz += dL · (softmax(z) − y) / n, with y the one-hot labels
 * (eq. 11 divided by n). The labels are copied; the array may be reused at
 * once. TT_ERR_ARG if labels is NULL or n_labels differs from the columns
 * of `logits`; TT_ERR_RANGE, with nothing computed, if a label is outside
 * [0, C).
 * Infinite logits: a logit of −inf gives its class probability 0. The loss
 * is then +inf if that class is a label and finite otherwise, and the
 * gradient stays finite: −1/n at a label of −inf logit, 0 at any other −inf
 * logit.
 * LIMITATION: a column whose logits are all −inf has no softmax, and
 * neither has one that holds +inf or NaN. The loss is then NaN, and so is
 * the gradient of that column; other columns' gradients are unaffected and
 * the op succeeds. An all −inf column usually means that every class was
 * masked out upstream, so the NaN is kept for anomaly mode to report rather
 * than replaced by an invented softmax. */
TT_API tt_tensor *tt_cross_entropy(tt_tape *tape, tt_tensor *logits, const int32_t *labels,
                                   size_t n_labels);

/* Binary cross-entropy on logits, with the sigmoid fused in: `logits` is
 * any rows × cols tensor of m = rows·cols logits z, and `labels` contains
 * n_labels = m labels y, each 0 or 1, one per logit in storage (row-major)
 * order. For binary classification with samples as columns, logits is
 * 1 × n with one label per sample. For C independent yes/no labels per
 * sample it is C × n. Returns the 1 × 1 mean loss of eq. 17–18,
 *     L = (1/m) Σ_j ( max(z_j, 0) − z_j·y_j + log(1 + exp(−|z_j|)) ),
 * which equals −(1/m) Σ_j (y_j log σ(z_j) + (1 − y_j) log(1 − σ(z_j)))
 * but takes no log of a probability and exp only of −|z|: it is computed
 * per entry as softplus(z) for label 0 and softplus(−z) for label 1, so
 * that logits of ±1e30 give a finite, exact loss.
 * Backward: dz += dL · (σ(z) − y) / m (eq. 19), formed as σ(z) for label 0
 * and −σ(−z) for label 1, so that a probability near 1 keeps its tiny
 * gradient. The labels are copied; the array may be reused at once.
 * Logits of ±inf: the loss of the entry is 0 when the logit agrees with
 * its label and +inf otherwise, and the gradient stays finite. A NaN logit
 * gives a NaN loss and a NaN gradient entry.
 * TT_ERR_ARG if labels is NULL or n_labels differs from rows·cols;
 * TT_ERR_RANGE, with nothing computed, if a label is neither 0 nor 1. */
TT_API tt_tensor *tt_bce_with_logits(tt_tape *tape, tt_tensor *logits, const int32_t *labels,
                                     size_t n_labels);

/* Mean squared error between `prediction` and `target`, two tensors of
 * the same shape with m entries: returns the 1 × 1 loss of eq. 20,
 *     L = (1/m) Σ_j (p_j − t_j)².
 * Backward: dp += dL · 2(p − t)/m and dt −= dL · 2(p − t)/m (eq. 21), so
 * either side or both may require a gradient, as for a learned target.
 * The squares are summed in double with a power-of-two scale taken from
 * the largest |p − t|, so the loss overflows to +inf only when its true
 * value exceeds the largest tt_real: for p − t = 2e30 that is the case in
 * float but not in double. The gradient is finite wherever its value
 * fits. A NaN entry gives a NaN loss, an infinite difference an infinite
 * one. TT_ERR_SHAPE if the shapes differ. */
TT_API tt_tensor *tt_mse(tt_tape *tape, tt_tensor *prediction, tt_tensor *target);

/* ---- User-defined activations ----------------------------------------------
 * An elementwise activation from two plain C functions, f and its
 * derivative, recorded on the tape and differentiated like the built-in
 * ones. Create its definition once, apply it on any tape, free it after
 * the last tape that used it has been reset or freed. Example (the README
 * shows a complete one):
 *     static tt_real softsign(tt_real x) { return isinf(x) ? copysign(1, x) : x / (1 + fabs(x)); }
 *     static tt_real softsign_slope(tt_real x) { return 1 / ((1 + fabs(x)) * (1 + fabs(x))); }
 *     tt_activation_def def = {.name = "softsign", .function = softsign,
 *                              .derivative = softsign_slope};
 *     tt_activation *g = tt_activation_new(&def, &err);
 *     tt_tensor *h = tt_activation_apply(tape, g, z); */

/* A function of one element: f(x), f'(x), or f'(x) written through y = f(x). */
typedef tt_real (*tt_activation_fn)(tt_real value);

/* What tt_activation_new needs. Give exactly one of `derivative` and
 * `derivative_from_output`: the second, as y·(1 − y) for sigmoid or
 * 1 − y² for tanh, receives y = f(x) instead of x and saves recomputing f
 * where the derivative is simplest in y. */
typedef struct tt_activation_def {
    const char *name;                       /* shown in errors and as "NAME@POSITION" */
    tt_activation_fn function;              /* f(x) */
    tt_activation_fn derivative;            /* f'(x), or NULL */
    tt_activation_fn derivative_from_output; /* f'(x) as a function of y, or NULL */
    const tt_real *kinks; /* points where f has no derivative, e.g. 0 for ReLU; NULL
                             if there are none */
    size_t n_kinks;
} tt_activation_def;

/* A user-defined activation, created by tt_activation_new. */
typedef struct tt_activation tt_activation;

/* Creates an activation from `def`, copying the name and the kinks, so
 * `def` may go away afterwards. The caller frees it with
 * tt_activation_free(), and only once no tape contains a record of it: after
 * the tapes that applied it have been reset or freed.
 * Kinks: tt_gradcheck excludes a difference taken across one, that is one
 * where some element lies on different sides (x > k or not) of a kink k
 * in the unmoved and the moved run. The value your derivative returns at
 * exactly a kink is the one backward uses.
 * Returns NULL and fills `err` with TT_ERR_ARG if def, its name or its
 * function is NULL, the name is empty, not exactly one derivative is
 * given, or kinks is NULL with n_kinks > 0 or contains a NaN or infinity;
 * TT_ERR_NOMEM if memory runs out. */
TT_API tt_activation *tt_activation_new(const tt_activation_def *def, tt_error *err);

/* Frees an activation. NULL is ignored. */
TT_API void tt_activation_free(tt_activation *activation);

/* The activation's name, a string owned by it; NULL for NULL. */
TT_API const char *tt_activation_name(const tt_activation *activation);

/* Applies the activation elementwise: out[i] = f(x[i]), of x's shape.
 * Backward: dx += dout · f'(x), or dout · f'(y) with derivative_from_output,
 * where y is the op's output, reread in backward. The functions are called
 * once per element and must not call tensortape. Numerical safety at
 * extreme inputs is up to them. TT_ERR_ARG if `activation` is NULL, as for
 * any NULL input. */
TT_API tt_tensor *tt_activation_apply(tt_tape *tape, const tt_activation *activation,
                                      tt_tensor *x);

/* ---- User-defined ops -------------------------------------------------------
 * An op whose forward and backward the caller writes, in the manner of a
 * custom autograd function. The forward callback reads the inputs,
 * creates the output in the shape it chooses and may keep a block of
 * bytes in the tape's memory for backward. The backward callback reads
 * the output's gradient and adds into the inputs' gradients. The inputs
 * and the output stay valid until the tape is reset, so backward may read
 * them: they are the tensors an autograd function would save. Nothing is
 * taken from the heap per step. The README shows a complete op, and
 * tests/test_custom.c also a normalisation of each column that saves its
 * statistics. */

/* Maximum number of inputs of a user-defined op.
 * LIMITATION: an op with more inputs is rejected by tt_custom_op_new; pass
 * several tensors packed into one, or split the op. */
#define TT_CUSTOM_MAX_INPUTS 8

/* What a callback works with: the inputs, the output, the saved bytes and
 * the gradients, reached through the tt_custom_* calls below. It is valid
 * only during the callback that receives it. */
typedef struct tt_custom_context tt_custom_context;

/* A forward or backward callback. `user` is the definition's user pointer.
 * Returns TT_OK, or a failure status, preferably after tt_custom_fail()
 * has recorded a message that explains it. */
typedef tt_status (*tt_custom_fn)(tt_custom_context *context, void *user);

/* Optional kink test of a user-defined op, for tt_gradcheck. It receives
 * two runs of the op, `base` and `moved`, whose inputs have the same
 * shapes. It returns whether some input element lies on different sides,
 * in the two runs, of a point where the op has no derivative (as ReLU at 0).
 * tt_custom_input, tt_custom_output and tt_custom_saved read each run.
 * The checker then excludes the difference, as it does at ReLU's kink. */
typedef bool (*tt_custom_kink_fn)(const tt_custom_context *base, const tt_custom_context *moved,
                                  void *user);

/* What tt_custom_op_new needs. */
typedef struct tt_custom_op_def {
    const char *name;      /* shown in errors and as "NAME@POSITION" */
    size_t n_inputs;       /* from 1 to TT_CUSTOM_MAX_INPUTS */
    tt_custom_fn forward;  /* must call tt_custom_new_output once */
    tt_custom_fn backward; /* adds into tt_custom_input_grad for each input */
    void *user;            /* passed to the callbacks; kept alive by the caller */
    tt_custom_kink_fn crosses_kink; /* NULL for an op differentiable everywhere */
} tt_custom_op_def;

/* A user-defined op, created by tt_custom_op_new. */
typedef struct tt_custom_op tt_custom_op;

/* Creates an op from `def`, copying the name, so `def` may go away
 * afterwards (but not def->user). The caller frees it with
 * tt_custom_op_free() once no tape contains a record of it.
 * Returns NULL and fills `err` with TT_ERR_ARG if def, its name or a
 * callback is NULL, the name is empty, or n_inputs is 0 or above
 * TT_CUSTOM_MAX_INPUTS; TT_ERR_NOMEM if memory runs out. */
TT_API tt_custom_op *tt_custom_op_new(const tt_custom_op_def *def, tt_error *err);

/* Frees an op. NULL is ignored. */
TT_API void tt_custom_op_free(tt_custom_op *op);

/* Runs the op's forward callback on inputs[0 .. n_inputs) and records the
 * op; returns the output the callback created. The output requires a
 * gradient if any input does.
 * Each error below is recorded on the tape, and the op records nothing and
 * gives its arena space back. TT_ERR_ARG if `op` or an input is NULL or
 * n_inputs differs from the definition's. The callback's status if it
 * fails, with the message of its tt_custom_fail() or one naming the
 * status. TT_ERR_STATE if it returns TT_OK without creating an output, if
 * it returns a value that is not a tt_status (the message names the op and
 * the value), or if it records ops on the tape. */
TT_API tt_tensor *tt_custom_op_apply(tt_tape *tape, const tt_custom_op *op,
                                     tt_tensor *const inputs[], size_t n_inputs);

/* Input `index` of the op, or NULL if index is out of range. */
TT_API tt_tensor *tt_custom_input(const tt_custom_context *context, size_t index);

/* Forward only: creates the op's rows × cols output in the tape's memory,
 * uninitialised, for the callback to fill. Returns NULL, with the error
 * recorded on the tape (and so failing the op), if the shape is invalid,
 * memory runs out, an output was already created, or it is called from
 * backward. In a kink test it returns NULL and records nothing. */
TT_API tt_tensor *tt_custom_new_output(tt_custom_context *context, size_t rows, size_t cols);

/* The output: the one created in forward, or NULL before that. */
TT_API tt_tensor *tt_custom_output(const tt_custom_context *context);

/* Forward only: allocates `size` bytes, aligned for any type, in the
 * tape's memory, kept for backward and valid until the tape is reset.
 * Call it at most once per forward. Returns NULL, with the error recorded
 * on the tape, if size is 0, memory runs out, a block was already
 * allocated, or it is called from backward. In a kink test it returns
 * NULL and records nothing. */
TT_API void *tt_custom_save(tt_custom_context *context, size_t size);

/* The block of tt_custom_save (in forward after the call, in backward or
 * in a kink test), or NULL if forward saved none. */
TT_API void *tt_custom_saved(const tt_custom_context *context);

/* Backward only: the gradient of the loss with respect to the output, of
 * the output's shape; NULL elsewhere. */
TT_API const tt_real *tt_custom_output_grad(const tt_custom_context *context);

/* Backward only: the gradient of input `index`, of that input's shape, for
 * the callback to add its contribution into (+=), since a tensor may feed
 * several ops. NULL if that input needs no gradient, if index is out of
 * range, or outside backward. */
TT_API tt_real *tt_custom_input_grad(tt_custom_context *context, size_t index);

/* Records `status` (TT_OK or a value outside tt_status counts as
 * TT_ERR_STATE) and a printf-style
 * message, prefixed with "NAME: ", as the tape's error, unless the tape
 * already has one. The op then fails: forward records nothing, and
 * tt_tape_backward() stops and returns the status, with leaf gradients
 * holding only part of the pass's contributions. In a kink test it does
 * nothing. */
TT_API void tt_custom_fail(tt_custom_context *context, tt_status status, const char *format, ...)
    TT_PRINTF_FORMAT(3, 4);

/* ---- Checking gradients -----------------------------------------------------
 * tt_gradcheck compares the gradient that tt_tape_backward() computes for
 * some caller-owned tensors with central finite differences of the loss. */

/* A scalar function of the tensors for tt_gradcheck: records a computation
 * of `tensors[0 .. n_tensors)` on `tape` and returns its 1 × 1 output, an op
 * output of that tape, or NULL on failure (returning an op's NULL is fine:
 * the reason is on the tape). It is called many times, each time on a
 * freshly reset tape. It must not change the tensors and should record the
 * same ops every time. `context` is passed through unchanged. */
typedef tt_tensor *(*tt_loss_function)(tt_tape *tape, tt_tensor *const tensors[],
                                       size_t n_tensors, void *context);

/* Default relative step h of tt_gradcheck's differences: element x is moved
 * to x ± h·max(1, |x|). A central difference errs by about h²·|f'''|/6 from
 * truncation plus ε·|f|/h from rounding the loss, with ε the machine epsilon
 * of tt_real; for f and its derivatives of order 1 the sum is smallest near
 * h = ε^(1/3), leaving an error near ε^(2/3): about 4e-11 in double and
 * 2e-5 in float. */
#if TT_REAL_IS_DOUBLE
#define TT_GRADCHECK_DEFAULT_STEP 6e-6
#else
#define TT_GRADCHECK_DEFAULT_STEP 5e-3
#endif

/* Default tolerance of tt_gradcheck: the largest relative error that
 * passes (see tt_gradcheck for the definition). In double, 1e-6 catches
 * any error larger than a millionth of the gradient. In float the loss
 * carries 24 bits, and 1e-2 still catches a wrong sign, factor, transpose
 * or missing term, each of which gives an error of order 1. Over 400 seeds
 * of the random shapes of tests/test_properties.c (its SEEDS raised to
 * 400), the worst relative error was 2.2e-7 in double and 2.5e-3 in float,
 * a quarter of the tolerance or less. */
#if TT_REAL_IS_DOUBLE
#define TT_GRADCHECK_DEFAULT_TOLERANCE 1e-6
#else
#define TT_GRADCHECK_DEFAULT_TOLERANCE 1e-2
#endif

/* Settings of tt_gradcheck. Pass NULL for all defaults; a field left 0
 * takes its default. */
typedef struct tt_gradcheck_options {
    double step;        /* relative step h, see TT_GRADCHECK_DEFAULT_STEP */
    double tolerance;   /* see TT_GRADCHECK_DEFAULT_TOLERANCE */
    size_t max_entries; /* check at most this many entries per tensor, drawn
                           at random; 0 checks every entry */
    uint64_t seed;      /* seed of that draw */
} tt_gradcheck_options;

/* Outcome of a check that ran. */
typedef enum tt_gradcheck_verdict {
    TT_GRADCHECK_PASSED, /* every compared entry is within the tolerance and
                            at least one is not zero */
    TT_GRADCHECK_FAILED, /* some entry's relative error exceeds the tolerance */
    TT_GRADCHECK_VACUOUS /* nothing failed but nothing was verified: every
                            compared entry is zero in both gradients, or no
                            entry could be compared because of kinks */
} tt_gradcheck_verdict;

/* One gradient entry as the checker saw it. */
typedef struct tt_gradcheck_entry {
    size_t tensor;         /* index into the tensors array */
    const char *name;      /* that tensor's name, NULL if it has none */
    size_t row;
    size_t col;
    double analytic;       /* the entry of the gradient from backward */
    double numeric;        /* (L(x+) − L(x−)) / (x+ − x−) */
    double relative_error; /* see tt_gradcheck; +inf if a value is NaN or infinite */
} tt_gradcheck_entry;

/* What tt_gradcheck found. Entries at kinks are not compared. */
typedef struct tt_gradcheck_result {
    tt_gradcheck_verdict verdict;
    size_t n_compared; /* entries compared */
    size_t n_failed;   /* compared entries above the tolerance */
    size_t n_zero;     /* compared entries zero in both gradients */
    size_t n_kinks;    /* entries excluded because of a kink */
    tt_gradcheck_entry worst;      /* largest relative error, the first
                                      of equals; set if n_compared > 0 */
    tt_gradcheck_entry first_kink; /* set if n_kinks > 0 */
    double step;       /* the step and tolerance used */
    double tolerance;
    char summary[TT_ERROR_MESSAGE_MAX]; /* one line for a log */
} tt_gradcheck_result;

/* Checks the gradient of the loss that `loss` records with respect to
 * tensors[0 .. n_tensors), caller-owned tensors that require a gradient,
 * each listed once. `options` may be NULL.
 *
 * The checker records the loss once on a tape of its own and runs backward
 * for the analytic gradient. Then, for every entry x of every tensor (or a
 * sample, see max_entries), it records the loss with x moved to
 * x+ = x + h·max(1, |x|) and to x− = x − h·max(1, |x|), each rounded to
 * tt_real, and takes
 *     numeric = (L(x+) − L(x−)) / (x+ − x−).
 * Dividing by the stored difference keeps the rounding of x ± h out of the
 * quotient. The relative error of an entry is
 *     |analytic − numeric| / max(|analytic|, |numeric|, s),
 * where the floor s is the larger of two scales:
 *   - the largest |numeric| among the compared entries of the same tensor.
 *     Rounding errors in both gradients scale with the whole tensor's
 *     gradient, so an entry far smaller than the largest one is held to
 *     the largest one's absolute precision;
 *   - the noise of the difference divided by the tolerance, so that a
 *     difference within the noise never fails. The noise is 4 units of the
 *     resolution ulp(L) / (x+ − x−): the smallest change of the loss that
 *     tt_real can show, divided by the move. Rounding L(x+) and L(x−)
 *     costs up to one unit, and rounding inside the ops a little more.
 * An entry is zero when both values are within that noise of 0.
 * NOTE: the noise estimate assumes that the loss is about as large as the
 * values it is computed from. A loss that is a small difference of large
 * values carries more rounding than ulp(L) and can fail a correct
 * gradient; a larger step or tolerance helps there.
 *
 * Kinks. A difference taken across a point where the loss has no
 * derivative, such as ReLU at 0, measures neither side's slope. After each
 * moved run the checker compares the run's tape with the unmoved one. If
 * an op reports that one of its inputs crossed a kink (for ReLU, an element
 * of x changed sides of 0), or the tapes differ in their ops or shapes, the
 * entry is counted in n_kinks and not compared.
 *
 * Effects. On return, whatever the status, the data of the tensors are as
 * before, bit for bit. So are the gradients of the listed tensors and of
 * every other caller-owned tensor that the loss uses: the checker saves
 * them, computes the analytic gradient into zeroed buffers, copies it out
 * and puts the saved gradients back. The loss function runs once plus
 * twice per checked entry.
 *
 * Returns TT_OK and fills `result` if the check ran, whatever its verdict.
 * Otherwise `result` is not meaningful, `err` is filled, and the status is
 *   - TT_ERR_ARG for a NULL argument, no tensors, a listed tensor that is
 *     NULL, a tape tensor, listed twice or without a gradient, an option
 *     that is negative or not finite, or a loss function that returns NULL
 *     on a healthy tape or a tensor that is not an op output of its tape;
 *   - TT_ERR_SHAPE for a loss that is not 1 × 1;
 *   - TT_ERR_NUMERIC for a loss that is NaN or infinite at the given point;
 *   - TT_ERR_NOMEM if memory runs out;
 *   - the tape's status when the loss function fails on it, with the
 *     tape's message quoted in err's.
 * A NaN or infinite loss at a moved point, or a step too small to move an
 * element, is no error: that entry fails, its numeric value NaN or
 * infinite. */
TT_API tt_status tt_gradcheck(tt_loss_function loss, void *context,
                              tt_tensor *const tensors[], size_t n_tensors,
                              const tt_gradcheck_options *options, tt_gradcheck_result *result,
                              tt_error *err);

/* ---- Training ---------------------------------------------------------------
 * Optimizers, weight initializers and a minibatch iterator: the pieces of a
 * training loop around the tape. None of them prints or takes the tape. */

/* The update rule of an optimizer. Each follows the rule of the PyTorch 1.13
 * optimizer of the same name (torch.optim.SGD, Adam, AdamW; with their
 * defaults maximize=False and amsgrad=False, which are not supported here).
 * For a parameter p with gradient g at step t = 1, 2, …, with every
 * hyperparameter named as in tt_optimizer_options:
 *
 * TT_OPTIMIZER_SGD
 *     g ← g + weight_decay·p
 *     if momentum ≠ 0:  buf ← g                                 at t = 1
 *                       buf ← momentum·buf + (1 − dampening)·g  at t > 1
 *                       g ← g + momentum·buf if nesterov, else g ← buf
 *     p ← p − learning_rate·g
 * TT_OPTIMIZER_ADAM
 *     g ← g + weight_decay·p
 *     m ← beta1·m + (1 − beta1)·g           m and v start at 0
 *     v ← beta2·v + (1 − beta2)·g²
 *     p ← p − (learning_rate / (1 − beta1^t)) · m / (√v / √(1 − beta2^t) + epsilon)
 * TT_OPTIMIZER_ADAMW
 *     p ← p·(1 − learning_rate·weight_decay)    decoupled weight decay
 *     then Adam's m, v and p updates with g unchanged. */
typedef enum tt_optimizer_kind {
    TT_OPTIMIZER_SGD,
    TT_OPTIMIZER_ADAM,
    TT_OPTIMIZER_ADAMW
} tt_optimizer_kind;

/* Hyperparameters of an optimizer. Start from tt_optimizer_defaults(kind)
 * and change the fields you need. Fields of another kind must keep the 0
 * (false) that tt_optimizer_defaults gives them. Defaults, as PyTorch 1.13
 * except the SGD learning rate, which PyTorch requires the caller to give:
 *
 *   field          SGD     Adam    AdamW   allowed
 *   learning_rate  0.01    0.001   0.001   finite, ≥ 0
 *   momentum       0       -       -       finite, ≥ 0
 *   dampening      0       -       -       finite, in [0, 1]
 *   nesterov       false   -       -       needs momentum > 0, dampening 0
 *   beta1          -       0.9     0.9     in [0, 1)
 *   beta2          -       0.999   0.999   in [0, 1)
 *   epsilon        -       1e-8    1e-8    finite, ≥ 0
 *   weight_decay   0       0       0.01    finite, ≥ 0
 *
 * The rates and decays are applied in tt_real, the moment averages' factors
 * and bias corrections are computed in double and rounded to tt_real. */
typedef struct tt_optimizer_options {
    tt_optimizer_kind kind;
    double learning_rate;
    double momentum;
    double dampening;
    bool nesterov;
    double beta1;
    double beta2;
    double epsilon;
    double weight_decay;
} tt_optimizer_options;

/* Returns the default hyperparameters of `kind` (see the table above). An
 * unknown kind gives the SGD defaults with that kind, which
 * tt_optimizer_new rejects. */
TT_API tt_optimizer_options tt_optimizer_defaults(tt_optimizer_kind kind);

typedef struct tt_optimizer tt_optimizer;

/* Creates an optimizer over params[0 .. n_params), caller-owned tensors that
 * already have a gradient (tt_tensor_require_grad), each listed once.
 * `options` NULL means tt_optimizer_defaults(TT_OPTIMIZER_SGD). The
 * optimizer keeps the pointers, not the tensors: each must stay alive, and
 * keep its gradient, until the optimizer is freed. All of the optimizer's
 * state is allocated here, one buffer of the parameters' size for SGD with
 * momentum and two for Adam and AdamW, so that a step allocates nothing.
 * Returns NULL and fills `err` with
 *   - TT_ERR_ARG for a NULL `params`, no parameters, a parameter that is
 *     NULL, a tape tensor, listed twice or without a gradient, an unknown
 *     kind, or a hyperparameter outside its allowed range (the message
 *     names it and its value);
 *   - TT_ERR_NOMEM if memory runs out. */
TT_API tt_optimizer *tt_optimizer_new(tt_tensor *const params[], size_t n_params,
                                      const tt_optimizer_options *options, tt_error *err);

/* Frees the optimizer and its state, not the parameters. NULL is ignored. */
TT_API void tt_optimizer_free(tt_optimizer *optimizer);

/* Takes one step: updates every parameter from its gradient by the rule of
 * the optimizer's kind, then sets the gradient to zero as
 * tt_tensor_zero_grad() does, ready for the next backward pass. So unlike
 * PyTorch's step(), it needs no separate zero_grad between steps. Read the
 * gradients before the step if you need them. Allocates nothing. Returns
 * TT_ERR_ARG for NULL.
 * NaN and infinite gradients are not checked for: they propagate into the
 * parameters as in PyTorch (anomaly mode catches them in backward). */
TT_API tt_status tt_optimizer_step(tt_optimizer *optimizer, tt_error *err);

/* Runs the following steps on the threads of `tape` (see
 * tt_tape_set_threads), or on the calling thread alone when `tape` is NULL,
 * as after tt_optimizer_new. Each element's update is the same on any
 * thread, so the parameters do not depend on the thread count. The
 * optimizer keeps the pointer and uses whatever thread count the tape has
 * at each step. So take the step on the thread that uses the tape, and
 * before freeing the tape, call this with NULL or free the optimizer.
 * Returns TT_ERR_ARG for a NULL optimizer. */
TT_API tt_status tt_optimizer_use_tape_threads(tt_optimizer *optimizer, const tt_tape *tape,
                                               tt_error *err);

/* Sets every parameter's gradient to zero, as tt_tensor_zero_grad does for
 * each. Needed only before the first backward pass if the gradients may
 * hold old values, since tt_optimizer_step zeroes them. NULL is ignored. */
TT_API void tt_optimizer_zero_grad(tt_optimizer *optimizer);

/* Sets the learning rate of the following steps, e.g. from a schedule. The
 * other state (momentum buffers, moment averages, step count) is kept, as
 * when a PyTorch scheduler changes a param group's lr. Returns TT_ERR_ARG
 * for NULL or a rate that is negative or not finite, keeping the old rate. */
TT_API tt_status tt_optimizer_set_learning_rate(tt_optimizer *optimizer, double learning_rate,
                                                tt_error *err);

/* The current learning rate; 0 for NULL. */
TT_API double tt_optimizer_learning_rate(const tt_optimizer *optimizer);

/* Number of steps taken; 0 for NULL. */
TT_API uint64_t tt_optimizer_steps(const tt_optimizer *optimizer);

/* Initializers. A weight W is d_out × d_in (samples are columns), so
 * fan_in = cols and fan_out = rows; a d × 1 bias has fan_in 1. Each fills
 * the tensor in storage order from `rng`, so the same seed gives the same
 * values, and uses the formulas of PyTorch 1.13's torch.nn.init:
 *   Xavier (Glorot):  std = gain·√(2 / (fan_in + fan_out))
 *   Kaiming (He):     std = gain / √fan, fan = fan_in or fan_out by `mode`,
 *                     gain = tt_init_gain(nonlinearity, slope)
 *   uniform variants: U(−√3·std, √3·std), which has that standard deviation
 *   normal variants:  N(0, std²)
 * Each returns TT_ERR_ARG, leaving the tensor unchanged, for a NULL tensor
 * or rng, a tape tensor, a gain that is negative or not finite, an unknown
 * mode or nonlinearity, or a slope that is not finite. */

/* Activation that follows a layer, for its recommended gain. */
typedef enum tt_nonlinearity {
    TT_NONLINEARITY_LINEAR,     /* gain 1, also for no activation */
    TT_NONLINEARITY_SIGMOID,    /* gain 1 */
    TT_NONLINEARITY_TANH,       /* gain 5/3 */
    TT_NONLINEARITY_RELU,       /* gain √2 */
    TT_NONLINEARITY_LEAKY_RELU, /* gain √(2 / (1 + slope²)) */
    TT_NONLINEARITY_SELU        /* gain 3/4 */
} tt_nonlinearity;

/* Which dimension Kaiming initialization keeps the variance of: fan in (the
 * forward pass's activations) or fan out (the backward pass's gradients). */
typedef enum tt_fan_mode {
    TT_FAN_IN,
    TT_FAN_OUT
} tt_fan_mode;

/* Returns the recommended gain of torch.nn.init.calculate_gain (see
 * tt_nonlinearity). `slope` is the negative slope of leaky ReLU and is
 * ignored otherwise. It has no default, unlike in calculate_gain, which
 * takes 0.01 when no slope is given. Returns NaN for an unknown
 * nonlinearity or a non-finite slope of leaky ReLU. */
TT_API double tt_init_gain(tt_nonlinearity nonlinearity, double slope);

/* Xavier (Glorot) initialization, uniform and normal (see "Initializers"
 * above). A gain of 1 suits linear, sigmoid and softmax layers. */
TT_API tt_status tt_init_xavier_uniform(tt_tensor *tensor, tt_rng *rng, double gain,
                                        tt_error *err);
TT_API tt_status tt_init_xavier_normal(tt_tensor *tensor, tt_rng *rng, double gain,
                                       tt_error *err);
/* Kaiming (He) initialization, uniform and normal (see "Initializers"
 * above). PyTorch's kaiming_uniform_ and kaiming_normal_ default to mode
 * fan_in with leaky ReLU of slope 0, which is the ReLU gain √2. */
TT_API tt_status tt_init_kaiming_uniform(tt_tensor *tensor, tt_rng *rng, tt_fan_mode mode,
                                         tt_nonlinearity nonlinearity, double slope,
                                         tt_error *err);
TT_API tt_status tt_init_kaiming_normal(tt_tensor *tensor, tt_rng *rng, tt_fan_mode mode,
                                        tt_nonlinearity nonlinearity, double slope,
                                        tt_error *err);

/* A minibatch iterator over the sample indices 0 .. n_samples−1. Each epoch
 * visits them in a new random order (a Fisher–Yates shuffle driven by a
 * tt_rng seeded at creation), cut into batches of batch_size indices. The
 * last batch contains the rest, n_samples mod batch_size, unless drop_last
 * is set, which skips it. The same seed gives the same sequence of epochs. */
typedef struct tt_batches tt_batches;

/* Creates an iterator. Its index array, of n_samples entries, is allocated
 * here, so iterating allocates nothing. Returns NULL and fills `err` with
 * TT_ERR_ARG if n_samples or batch_size is 0, or if drop_last is set and
 * batch_size exceeds n_samples (no batch at all), and TT_ERR_NOMEM if
 * memory runs out. */
TT_API tt_batches *tt_batches_new(size_t n_samples, size_t batch_size, bool drop_last,
                                  uint64_t seed, tt_error *err);

/* Frees the iterator. NULL is ignored. */
TT_API void tt_batches_free(tt_batches *batches);

/* Returns the next batch of the current epoch, sets *count to its size, or
 * returns NULL with *count 0 when the epoch is over. The call after that
 * NULL, like the first call of all, starts a new epoch by shuffling, so the
 * loop of one epoch is
 *     while ((ids = tt_batches_next(batches, &n)) != NULL) { ... }
 * The array belongs to the iterator and is valid until the next call.
 * Returns NULL for a NULL iterator or count. */
TT_API const size_t *tt_batches_next(tt_batches *batches, size_t *count);

/* Number of batches in each epoch: n_samples / batch_size rounded up, or
 * down with drop_last. 0 for NULL. */
TT_API size_t tt_batches_per_epoch(const tt_batches *batches);

/* Number of epochs started so far; 0 for NULL. */
TT_API uint64_t tt_batches_epoch(const tt_batches *batches);

/* ---- Writing files atomically ----------------------------------------------
 * tt_safetensors_save writes through these calls, and programs can use them
 * for their own output files. */

/* Writes a file's contents to `stream`, which is open for writing.
 * Returns false to abandon the file; a failed write is also detected from
 * the stream's error flag, so a writer may ignore fprintf's results. */
typedef bool (*tt_file_writer)(FILE *stream, void *context);

/* Replaces `path` atomically with what `writer` writes. The contents go to
 * a new file PATH.tmp-PID-XXXXXXXX beside it (PID is the process id, X
 * random hex digits). That file is flushed, synced to disk and renamed
 * over `path`, and then the directory is synced. Readers therefore find either the
 * old file or the complete new one. On failure the temporary file is
 * removed and `path` is left as it was. A process killed during the write
 * can leave the temporary file behind, but never a damaged `path`.
 * `path` must be missing or a regular file. A symbolic link is rejected,
 * not followed, because renaming over it would replace the link itself;
 * give the target's path to write there. When `path` exists, the new file
 * gets its permission bits (a 0600 file stays 0600), but not its owner,
 * group or other hard links. A new file gets 0666 minus the umask.
 * `writer` is called once with `context`; the stream is closed here.
 * NOTE: the type of `path` is checked before the temporary file is
 * written, so a file put there in between is replaced.
 * Errors: TT_ERR_ARG for a NULL or empty path, a NULL writer, or a `path`
 * that is a symbolic link, directory, FIFO, device or socket (the message
 * names the path and its type); TT_ERR_IO, naming the path and the
 * system's reason, if a step on disk fails or the writer returns false (if
 * syncing the directory fails, the new file is already in place but may
 * not survive a power loss); TT_ERR_NOMEM if memory runs out. */
TT_API tt_status tt_file_write_atomic(const char *path, tt_file_writer writer, void *context,
                                      tt_error *err);

/* Checks, without touching `path`, that tt_file_write_atomic could write
 * it now: the same checks of `path` itself, and that a temporary file
 * can be created beside it (it is created and removed at once). Programs
 * call this before long work whose result goes to `path`. Errors as for
 * tt_file_write_atomic: TT_ERR_ARG for the path, TT_ERR_IO (e.g. a missing
 * directory or no write permission) naming the path and the reason. */
TT_API tt_status tt_file_check_writable(const char *path, tt_error *err);

/* ---- Saving and loading ----------------------------------------------------
 * Tensors are saved in the safetensors format: an 8-byte little-endian
 * header length N, N bytes of JSON naming each tensor with its dtype, shape
 * and byte range, then the data, little-endian. The README's "File formats"
 * describes the layout and what the reader accepts. */

/* A tensor and the name it has in a file. */
typedef struct tt_named_tensor {
    const char *name;   /* non-empty UTF-8; NULL takes the tensor's own name */
    tt_tensor *tensor;
} tt_named_tensor;

/* One metadata entry: free-form UTF-8 strings, e.g. {"widths", "784,128,10"}. */
typedef struct tt_metadata_item {
    const char *key;
    const char *value;
} tt_metadata_item;

/* Saves tensors[0 .. n_tensors) and the metadata to `path`, atomically,
 * with tt_file_write_atomic. Readers find either the old file or the
 * complete new one, and an existing file keeps its permission bits. A
 * `path` that is a symbolic link or not a regular file is rejected.
 * Data are written as F32 in a float build and F64 in a double build, in
 * the order given, each tensor with the shape [rows, cols]. Metadata may be
 * NULL when n_metadata is 0. Both arrays are only read.
 * Errors: TT_ERR_ARG for a NULL argument, an empty path, a path that is
 * a symbolic link or not a regular file, no tensors, a missing or empty
 * name or key, a name or string that is not valid UTF-8, the reserved name
 * "__metadata__", or a name or key used twice; TT_ERR_IO, naming the file
 * and the system's reason, if a step on disk fails (if syncing the
 * directory fails, the new file is already in place but may not survive a
 * power loss); TT_ERR_NOMEM if memory runs out. */
TT_API tt_status tt_safetensors_save(const char *path, const tt_named_tensor *tensors,
                                     size_t n_tensors, const tt_metadata_item *metadata,
                                     size_t n_metadata, tt_error *err);

/* A safetensors file read into memory and checked. */
typedef struct tt_safetensors tt_safetensors;

/* One tensor of an opened file. A dimension may be 0 (an empty tensor),
 * and then no tt_tensor can receive it. */
typedef struct tt_safetensors_entry {
    const char *name;  /* UTF-8, without NUL bytes */
    const char *dtype; /* as in the file: "F32", "F64", "BF16", "I64", ... */
    size_t n_dims;     /* dimensions in the file: 0, 1 or 2 */
    size_t rows;       /* the shape it loads as: [r, c] is r × c, [d] is */
    size_t cols;       /* d × 1 (a column, like a bias) and [] is 1 × 1 */
    uint64_t offset;   /* file offset of its first byte */
    uint64_t size;     /* bytes of data */
} tt_safetensors_entry;

/* Reads and checks the whole file at `path`. Returns an object to close
 * with tt_safetensors_close(), or NULL with `err` filled. The status is
 * TT_ERR_ARG for a NULL path, TT_ERR_IO if the file cannot be read or is
 * not a regular file, and
 * TT_ERR_NOMEM if memory runs out. It is TT_ERR_FORMAT for anything that
 * the README's "File formats" rejects, with a message that names the file,
 * the tensor and the byte offset. The file is opened with O_NONBLOCK, so
 * a FIFO is rejected at once instead of waiting for a writer.
 * LIMITATION: the whole file is read into memory, so opening needs as much
 * memory as the file is large. */
TT_API tt_safetensors *tt_safetensors_open(const char *path, tt_error *err);

/* As tt_safetensors_open, but for a file already in memory: `bytes[0 ..
 * size)` are copied, so they may be freed on return. `label` (NULL for
 * "<memory>") stands for the file name in messages. Any bytes may be
 * passed: this is the entry point for fuzzing the reader. */
TT_API tt_safetensors *tt_safetensors_parse(const void *bytes, size_t size, const char *label,
                                            tt_error *err);

/* Frees the object and everything it returned. NULL is ignored. */
TT_API void tt_safetensors_close(tt_safetensors *file);

/* Number of tensors in the file; 0 for NULL. */
TT_API size_t tt_safetensors_count(const tt_safetensors *file);

/* The tensor at `index` (in the order of their data in the file), or NULL
 * if the index is out of range. Valid until tt_safetensors_close(). */
TT_API const tt_safetensors_entry *tt_safetensors_entry_at(const tt_safetensors *file,
                                                           size_t index);

/* The tensor named `name`, or NULL if there is none. */
TT_API const tt_safetensors_entry *tt_safetensors_find(const tt_safetensors *file,
                                                       const char *name);

/* Number of metadata entries, and the key and value of entry `index` in the
 * order of the file, or NULL past the end. Valid until close. */
TT_API size_t tt_safetensors_metadata_count(const tt_safetensors *file);
TT_API const char *tt_safetensors_metadata_key(const tt_safetensors *file, size_t index);
TT_API const char *tt_safetensors_metadata_value(const tt_safetensors *file, size_t index);

/* The metadata value for `key`, or NULL if the file has none. */
TT_API const char *tt_safetensors_metadata(const tt_safetensors *file, const char *key);

/* Copies the tensor named `name` into `dest`, a tensor of the same shape
 * (see tt_safetensors_entry for how 0-D and 1-D shapes load), converting
 * F32 or F64 to tt_real (F64 is rounded in a float build). The gradient is
 * not touched. Errors, with `dest` unchanged: TT_ERR_ARG for NULL or a name
 * the file does not have, TT_ERR_SHAPE if the shapes differ, TT_ERR_FORMAT
 * for another dtype. */
TT_API tt_status tt_safetensors_read(const tt_safetensors *file, const char *name,
                                     tt_tensor *dest, tt_error *err);

/* tt_safetensors_read for each of tensors[0 .. n_tensors), all or nothing:
 * every name, shape and dtype is checked before any tensor changes. Tensors
 * of the file that are not listed are ignored. */
TT_API tt_status tt_safetensors_read_all(const tt_safetensors *file,
                                         const tt_named_tensor *tensors, size_t n_tensors,
                                         tt_error *err);

/* Opens `path`, reads the listed tensors as tt_safetensors_read_all does
 * and closes it. Errors as those two calls. */
TT_API tt_status tt_safetensors_load(const char *path, const tt_named_tensor *tensors,
                                     size_t n_tensors, tt_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TENSORTAPE_H */
