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
 * gradients of tape tensors start from zero in each backward pass.
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
    TT_ERR_NUMERIC /* a NaN or infinity where a finite value is needed (anomaly
                      mode, tt_gradcheck) */
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
 * without a gradient. */
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

/* The gradient, of the tensor's shape, or NULL if it has none. A tape
 * tensor has one after tt_tape_backward() if any tensor it was computed
 * from requires a gradient. */
TT_API tt_real *tt_tensor_grad(tt_tensor *tensor);

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
 * other ops always do. Returns TT_ERR_ARG for NULL or more than TT_MAX_THREADS, and
 * TT_ERR_NOMEM, keeping the previous count, if the threads cannot start.
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

#ifdef __cplusplus
}
#endif

#endif /* TENSORTAPE_H */
