/* Internal types and helpers shared by src/ and ops/. Not installed. */
#ifndef TT_INTERNAL_H
#define TT_INTERNAL_H

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tensortape.h"

/* ---- Processor features ------------------------------------------------ */

#if defined(__x86_64__) || defined(__i386__)
#define TT_HAVE_X86 1

/* Whether the processor supports AVX2, for picking between copies of a
 * loop compiled with and without it. */
static inline bool tt_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
#else
#define TT_HAVE_X86 0
#endif

/* ---- Arena: the tape's memory -------------------------------------------- */

typedef struct tt_arena_chunk tt_arena_chunk;

/* A bump allocator over a list of chunks. Allocation never moves earlier
 * blocks. A reset frees everything but keeps the chunks, so the next step
 * with the same requests takes nothing from the heap. */
typedef struct tt_arena {
    tt_arena_chunk *first;
    tt_arena_chunk *current;
    size_t used_in_current;
} tt_arena;

/* A position in the arena, to give back everything allocated after it. */
typedef struct tt_arena_mark {
    tt_arena_chunk *chunk;
    size_t used;
} tt_arena_mark;

/* Alignment of every arena block, in bytes: one cache line, which also
 * suits the widest vector loads. */
#define TT_ARENA_ALIGN 64

void tt_arena_init(tt_arena *arena);
void tt_arena_release(tt_arena *arena);
void tt_arena_reset(tt_arena *arena);
/* Returns `size` bytes aligned to TT_ARENA_ALIGN, or NULL if the heap is
 * exhausted. The contents are uninitialised. */
void *tt_arena_alloc(tt_arena *arena, size_t size);
tt_arena_mark tt_arena_get_mark(const tt_arena *arena);
void tt_arena_rewind(tt_arena *arena, tt_arena_mark mark);

/* ---- Tensors ---------------------------------------------------------- */

/* Maximum length of a tensor's display label ("name", or "relu@12"). */
#define TT_LABEL_MAX 48

struct tt_tensor {
    size_t rows;
    size_t cols;
    tt_real *data;
    tt_real *grad;       /* NULL while the tensor has no gradient */
    bool requires_grad;  /* a backward pass computes a gradient for it */
    bool grad_pending;   /* grad holds no value yet: it reads as zero, and the
                          * first contribution overwrites it (see
                          * tt_grad_accumulates and tt_grad_values) */
    char *name;          /* NULL if unnamed */
    tt_tape *tape;       /* owning tape, NULL for a caller-owned tensor */
    const struct tt_op *producer; /* op that computed it, NULL for inputs */
    size_t position;     /* producer's position on the tape */
    bool retain_grad;    /* a tape tensor whose gradient tt_tensor_grad returns
                          * after backward (tt_tensor_retain_grad) */
    tt_grad_hook grad_hook;   /* NULL if none (tt_tensor_set_grad_hook) */
    void *grad_hook_context;
    size_t hook_position;     /* caller-owned tensor with a hook: the earliest
                               * record of the current backward pass that reads
                               * it, after whose step its gradient is complete */
};

static inline size_t tt_tensor_size(const tt_tensor *t) { return t->rows * t->cols; }

/* Returns whether an op's backward step must add its contribution to t's
 * gradient (true) or may overwrite it (false), and marks the gradient as
 * holding a value. A tape tensor's gradient is pending at the start of a
 * backward pass, and a caller-owned tensor's after tt_tensor_zero_grad or
 * an optimizer step, so the first contribution overwrites it and no pass
 * has to write zeros first. */
static inline bool tt_grad_accumulates(tt_tensor *t)
{
    const bool accumulates = !t->grad_pending;
    t->grad_pending = false;
    return accumulates;
}

/* Returns t's gradient buffer for reading, first writing zeros into it if
 * the gradient is pending. Every reader of a caller-owned tensor's
 * gradient outside an op's backward step goes through here. */
tt_real *tt_grad_values(tt_tensor *t);

/* Writes the tensor's display label: its name, "OP@POSITION" for an unnamed
 * op output, or `role` for an unnamed input. */
void tt_tensor_label(const tt_tensor *t, const char *role, char label[TT_LABEL_MAX]);

/* Returns true and sets *size to rows × cols unless a size is zero or the
 * product (or the product times `element_size`) overflows size_t. */
bool tt_shape_size(size_t rows, size_t cols, size_t element_size, size_t *size);

/* ---- Thread pool (src/pool.c) ------------------------------------------ */

typedef struct tt_pool tt_pool;

/* One task of a parallel loop: fn(context, task, thread) for task in
 * [0, n_tasks), run by thread `thread` in [0, n_threads). */
typedef void (*tt_pool_task_fn)(void *context, size_t task, size_t thread);

/* Starts a pool of n_threads - 1 workers; the thread that calls
 * tt_pool_run is the n-th. Returns NULL if n_threads is 0 or if memory or
 * a thread cannot be had. */
tt_pool *tt_pool_new(size_t n_threads);

/* Stops and joins the workers and frees the pool. NULL is ignored. */
void tt_pool_free(tt_pool *pool);

/* Number of threads including the caller; 1 for a NULL pool. */
size_t tt_pool_threads(const tt_pool *pool);

/* Runs every task once and returns when all are done. Threads claim the
 * tasks in increasing order as they become free, so which thread runs a
 * task depends on timing. A task must therefore give the same bits on any
 * thread, using `thread` only to pick per-thread scratch space. */
void tt_pool_run(tt_pool *pool, size_t n_tasks, tt_pool_task_fn fn, void *context);

/* Minimum number of elements that an elementwise pass gives one thread.
 * Waking a sleeping worker and waiting for it took 15 to 30 µs on a
 * 2-core Zen 3 virtual machine, about as long as one pass over 65536
 * floats, so smaller passes stay on the calling thread. */
#define TT_PARALLEL_MIN_ELEMENTS ((size_t)65536)

/* One range of a parallel loop over [0, count): fn(context, begin, end). */
typedef void (*tt_pool_range_fn)(void *context, size_t begin, size_t end);

/* Calls fn on contiguous ranges that cover [0, count) once, one range per
 * thread, with at least `min_range` items in each, and returns when all
 * are done. With fewer than 2 × min_range items it calls fn(context, 0,
 * count) on the calling thread. Where the ranges split depends on the
 * thread count, so fn must give the same bits however [0, count) is cut.
 * Elementwise work does, and so do sums over items that each stay inside
 * one call, such as the sum of a whole row in a loop over rows. */
void tt_pool_run_ranges(tt_pool *pool, size_t count, size_t min_range, tt_pool_range_fn fn,
                        void *context);

/* ---- Matrix product (src/gemm.c) -------------------------------------- */

/* A GEMM micro-kernel and the block sizes that suit it. `tile` computes
 * one mr × nr tile of C from an mr × k block of A, whose element (i, p) is
 * a[i * a_row_step + p * a_col_step], and a packed B panel (nr values per
 * step of k): C = A·B, or C += A·B when accumulate is true, with C's rows
 * ldc elements apart. A packed A panel has row step 1 and column step mr. */
typedef struct tt_gemm_kernel {
    const char *name;
    size_t mr, nr; /* register tile */
    size_t mc, kc, nc; /* cache blocks: rows of A, steps of k, columns of B */
    bool (*supported)(void);
    void (*tile)(size_t k, const tt_real *a, size_t a_row_step, size_t a_col_step,
                 const tt_real *b_panel, tt_real *c, size_t ldc, bool accumulate);
} tt_gemm_kernel;

/* The kernel at `index` in the table, fastest first, whether or not this
 * CPU supports it; NULL past the end. */
const tt_gemm_kernel *tt_gemm_kernel_at(size_t index);

/* The fastest kernel this CPU supports. */
const tt_gemm_kernel *tt_gemm_kernel_best(void);

/* Number of tt_real elements of scratch that tt_gemm_run needs for an
 * m × n × k product with `kernel`. */
size_t tt_gemm_scratch_size(const tt_gemm_kernel *kernel, size_t m, size_t n, size_t k);

/* General matrix product on row-major storage:
 *     C = op(A)·op(B)        when accumulate is false,
 *     C += op(A)·op(B)       when accumulate is true,
 * where op(X) is X or Xᵀ. op(A) is m × k, op(B) is k × n, C is m × n.
 * A is stored as m × k (transpose_a false) or k × m (true), and likewise B
 * as k × n or n × k. Each leading dimension is the stored row length.
 * When accumulate is false C is overwritten and never read, so it may hold
 * NaN or garbage. `scratch` has room for tt_gemm_scratch_size() elements and is
 * aligned to TT_ARENA_ALIGN bytes. */
void tt_gemm_run(const tt_gemm_kernel *kernel, tt_real *scratch, bool transpose_a,
                 bool transpose_b, size_t m, size_t n, size_t k, const tt_real *a, size_t lda,
                 const tt_real *b, size_t ldb, tt_real *c, size_t ldc, bool accumulate);

/* Elements of scratch that tt_gemm needs for an m × n × k product on up to
 * n_threads threads. */
size_t tt_gemm_scratch_total(const tt_gemm_kernel *kernel, size_t n_threads, size_t m, size_t n,
                             size_t k);

/* tt_gemm_run split over the pool's threads by whole tiles of C. Every
 * element of C gets the same bits for any number of threads. `scratch`
 * has room for tt_gemm_scratch_total() elements at the pool's thread count. */
void tt_gemm(tt_pool *pool, const tt_gemm_kernel *kernel, tt_real *scratch, bool transpose_a,
             bool transpose_b, size_t m, size_t n, size_t k, const tt_real *a, size_t lda,
             const tt_real *b, size_t ldb, tt_real *c, size_t ldc, bool accumulate);

/* ---- Tape records ----------------------------------------------------- */

/* Inputs a record contains: two for the built-in ops, up to
 * TT_CUSTOM_MAX_INPUTS for a user-defined op (tt_custom_op_apply). */
#define TT_MAX_INPUTS TT_CUSTOM_MAX_INPUTS

typedef struct tt_record tt_record;

/* An op's identity: its name and its backward step. The descriptor's
 * address identifies the op. */
typedef struct tt_op {
    const char *name;
    size_t n_inputs;
    /* Adds the op's contribution to the gradients of the record's inputs
     * that have one, given the gradient of its output. An input's
     * gradient may be pending and contain stale values. So ask
     * tt_grad_accumulates whether to add or overwrite, or add into the
     * buffer that tt_grad_values returns. */
    void (*backward)(const tt_record *record);
    /* Optional, NULL for an op that is differentiable everywhere. Returns
     * whether some input element lies on different sides of a point where
     * the op has no derivative (ReLU's 0) in `base` and in `moved`, two
     * records of this op whose inputs have the same shapes. The gradient
     * checker uses it to exclude finite differences taken across a kink. */
    bool (*crosses_kink)(const tt_record *base, const tt_record *moved);
} tt_op;

struct tt_record {
    const tt_op *op;
    tt_tensor *inputs[TT_MAX_INPUTS];
    tt_tensor *output;
    void *saved; /* what the forward pass kept for backward, in the arena */
};

struct tt_tape {
    tt_arena arena;
    tt_record *records;
    size_t length;
    size_t capacity;
    tt_error error; /* sticky: the first failure since the last reset */
    const tt_gemm_kernel *gemm_kernel;
    tt_real *gemm_scratch; /* packing space for matrix products, kept across resets */
    size_t gemm_scratch_size;
    tt_pool *pool;         /* threads for matrix products; NULL means one thread */
    bool anomaly_check;    /* see tt_tape_set_anomaly_check; kept across resets */
    size_t backward_end;   /* records [0, backward_end) hold gradients from the
                            * last successful backward pass; 0 before one */
};

/* Records `status` and a printf-style message as the tape's error unless
 * it already has one. */
void tt_tape_fail(tt_tape *tape, tt_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* True if `status` is one of tt_status's failure values, false for TT_OK
 * and for any value outside the enum, such as a callback may return. */
bool tt_status_is_failure(tt_status status);

/* Fills `err` (if not NULL) with a status and a printf-style message. */
void tt_error_set(tt_error *err, tt_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
void tt_error_vset(tt_error *err, tt_status status, const char *format, va_list args)
    __attribute__((format(printf, 3, 0)));

/* The kind of file a stat() mode describes, e.g. "FIFO (named pipe)", for
 * messages. */
const char *tt_file_type_name(mode_t mode);

/* Starts recording `op`: checks that the tape is healthy and that each of
 * the n inputs is a tensor usable on it, records a TT_ERR_ARG naming the
 * op and the role ("A", "B", "x") otherwise, and makes room for one record.
 * Returns false, with the tape's error set, if the op must not run. */
bool tt_op_begin(tt_tape *tape, const tt_op *op, tt_tensor *const inputs[],
                 const char *const roles[]);

/* Allocates the op's rows × cols output in the arena, uninitialised, with
 * requires_grad set if any input requires a gradient. On failure records
 * TT_ERR_NOMEM and returns NULL. */
tt_tensor *tt_op_output(tt_tape *tape, const tt_op *op, tt_tensor *const inputs[],
                        size_t rows, size_t cols);

/* Allocates `size` bytes of saved state in the arena; on failure records
 * TT_ERR_NOMEM naming the op and returns NULL. */
void *tt_op_save(tt_tape *tape, const tt_op *op, size_t size);

/* Makes sure the tape's GEMM scratch has room for `size` elements, so
 * that the op's forward and backward products cannot fail for want of it.
 * On failure records TT_ERR_NOMEM naming the op and returns false. */
bool tt_op_reserve_gemm_scratch(tt_tape *tape, const tt_op *op, size_t size);

/* Appends the record. tt_op_begin has already made room, so it cannot fail.
 * In anomaly mode it then checks the output (tt_anomaly_check_output). */
void tt_op_record(tt_tape *tape, const tt_op *op, tt_tensor *const inputs[],
                  tt_tensor *output, void *saved);

/* ---- Anomaly mode (src/anomaly.c) ------------------------------------- */

/* Returns true if the record's output is finite everywhere. Otherwise
 * records TT_ERR_NUMERIC naming the op, its tape position, the output's
 * shape and the first NaN or infinity, and returns false. */
bool tt_anomaly_check_output(tt_tape *tape, const tt_record *record);

/* Returns true if the gradients of the record's inputs are finite after its
 * backward step. Otherwise records TT_ERR_NUMERIC naming the op, the input
 * and the first NaN or infinity of its gradient, and returns false. */
bool tt_anomaly_check_gradients(tt_tape *tape, const tt_record *record);

/* ---- JSON (src/json.c) ------------------------------------------------- */

typedef enum tt_json_type {
    TT_JSON_NULL,
    TT_JSON_FALSE,
    TT_JSON_TRUE,
    TT_JSON_NUMBER,
    TT_JSON_STRING,
    TT_JSON_ARRAY,
    TT_JSON_OBJECT
} tt_json_type;

/* One parsed JSON value; a tree of them owns all its memory. */
typedef struct tt_json_value tt_json_value;
struct tt_json_value {
    tt_json_type type;
    size_t offset;        /* byte offset of its first character in the text */
    char *text;           /* STRING: the decoded UTF-8, NUL-terminated, which
                             may hold NUL bytes of its own (\u0000); NUMBER:
                             the number as written; NULL otherwise */
    size_t length;        /* bytes of text, without the terminator */
    tt_json_value *items; /* ARRAY: its elements; OBJECT: its values */
    tt_json_value *keys;  /* OBJECT: its keys, strings, keys[i] naming items[i] */
    size_t count;         /* elements or members */
};

/* Limits that bound the parser's stack and memory. */
typedef struct tt_json_limits {
    size_t max_depth;  /* arrays and objects nested at most this deep */
    size_t max_values; /* values of every kind, object keys included */
} tt_json_limits;

/* Where and why a text is not accepted. */
typedef struct tt_json_error {
    size_t offset; /* byte offset in the text */
    char message[160];
} tt_json_error;

/* Parses text[0 .. length) as one strict RFC 8259 JSON value (see
 * src/json.c for what strict covers). The text need not be NUL-terminated
 * and is not kept. Returns a tree to free with tt_json_free, or NULL with
 * `error` filled for invalid JSON, a limit exceeded or memory exhausted.
 * This is an entry point for fuzzing: no input makes it crash. */
tt_json_value *tt_json_parse(const char *text, size_t length, const tt_json_limits *limits,
                             tt_json_error *error);

/* Frees a tree from tt_json_parse; NULL is ignored. */
void tt_json_free(tt_json_value *root);

/* The value of the first member named `key`, or NULL if `object` is not an
 * object or has no such member. */
const tt_json_value *tt_json_object_get(const tt_json_value *object, const char *key);

/* Converts a number written as plain decimal digits (no sign, fraction or
 * exponent) that fits in 64 bits; returns false for anything else. */
bool tt_json_uint64(const tt_json_value *value, uint64_t *out);

/* Returns the byte count of the valid UTF-8 sequence that begins at bytes[0]
 * and lies within `available` bytes, or 0 if none does. */
size_t tt_utf8_sequence_length(const unsigned char *bytes, size_t available);

/* Math functions of the element type. */
#if TT_REAL_IS_DOUBLE
#define TT_EXP exp
#define TT_LOG log
#define TT_LOG1P log1p
#define TT_EXPM1 expm1
#define TT_TANH tanh
#define TT_FABS fabs
#define TT_SQRT sqrt
#define TT_ERFC erfc
#define TT_NEXTAFTER nextafter
#else
#define TT_EXP expf
#define TT_LOG logf
#define TT_LOG1P log1pf
#define TT_EXPM1 expm1f
#define TT_TANH tanhf
#define TT_FABS fabsf
#define TT_SQRT sqrtf
#define TT_ERFC erfcf
#define TT_NEXTAFTER nextafterf
#endif

/* 1 / (1 + exp(−x)) without overflow: for x < 0 it is computed as
 * e / (1 + e) with e = exp(x), which lies in (0, 1]. A NaN x takes the
 * second branch and gives NaN. */
static inline tt_real tt_stable_sigmoid(tt_real x)
{
    if (x >= 0)
        return 1 / (1 + TT_EXP(-x));
    const tt_real e = TT_EXP(x);
    return e / (1 + e);
}

#endif /* TT_INTERNAL_H */
