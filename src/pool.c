/* A persistent pool of worker threads for data-parallel loops.
 *
 * tt_pool_run(pool, n_tasks, fn, context) calls fn(context, task) once for
 * every task in [0, n_tasks), spread over the caller and the workers, and
 * returns when all have finished. Task t always goes to thread t mod
 * n_threads, so which thread computes what depends only on the thread
 * count, and since every task writes its own disjoint part of the output,
 * results do not depend on it at all.
 *
 * Waiting: a training step starts many short runs in a row, a few tens of
 * microseconds apart. Waking a sleeping thread costs about as much as a
 * short run, because it takes a futex call and, on a virtual machine, an
 * interrupt to an idle virtual CPU. So a worker that finishes a run first polls for the
 * next one for up to SPIN_NANOSECONDS, and the caller polls for the
 * workers to finish for as long, before either sleeps on a condition
 * variable. Between training steps and when the pool is idle, every
 * thread sleeps. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* How long a thread polls before it sleeps: long enough to bridge the gap
 * between two parallel runs of a step, short enough that an idle pool
 * gives its CPUs back within a fraction of a millisecond. After the first
 * YIELD_AFTER_NANOSECONDS a polling thread also yields its CPU between
 * polls, so that on a machine with more runnable threads than CPUs it does
 * not hold a CPU that a thread of the run, or another program, needs. */
#ifndef SPIN_NANOSECONDS
#define SPIN_NANOSECONDS 200000
#endif
#ifndef YIELD_AFTER_NANOSECONDS
#define YIELD_AFTER_NANOSECONDS 2000
#endif

/* Polls between two readings of the clock. */
#define POLLS_PER_CLOCK_READ 64

typedef struct worker {
    pthread_t thread;
    tt_pool *pool;
    size_t index; /* 1 .. n_threads-1; the caller is thread 0 */
} worker;

struct tt_pool {
    size_t n_threads; /* including the calling thread */
    /* One entry per worker thread, which each thread reads as its start
     * argument. The entries live as long as the pool, so a new thread has
     * nothing to free. A late free in a new thread could otherwise land in
     * a training step that must not touch the heap. */
    worker *workers;
    pthread_mutex_t lock;
    pthread_cond_t work_ready;
    pthread_cond_t work_done;

    /* The current run. The caller writes n_tasks, fn and context, then
     * increments `generation` under `lock` with release order, so a worker
     * that reads the new generation with acquire order reads the new run. */
    _Atomic uint64_t generation;
    size_t n_tasks;
    tt_pool_task_fn fn;
    void *context;
    _Atomic size_t pending; /* workers that have not finished the current run */
    /* Set by tt_pool_free before its last increment of `generation`. */
    atomic_bool stopping;
};

static uint64_t monotonic_nanoseconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* Polls until *value differs from `unwanted` or SPIN_NANOSECONDS pass.
 * Returns whether it saw a different value. */
static bool spin_while_equal_u64(_Atomic uint64_t *value, uint64_t unwanted)
{
    const uint64_t start = monotonic_nanoseconds();
    for (;;) {
        for (int i = 0; i < POLLS_PER_CLOCK_READ; i++) {
            if (atomic_load_explicit(value, memory_order_acquire) != unwanted)
                return true;
            CPU_RELAX();
        }
        const uint64_t elapsed = monotonic_nanoseconds() - start;
        if (elapsed > SPIN_NANOSECONDS)
            return false;
        if (elapsed > YIELD_AFTER_NANOSECONDS)
            sched_yield();
    }
}

/* Polls until *value is zero or SPIN_NANOSECONDS pass. Returns whether it
 * saw zero. */
static bool spin_until_zero(_Atomic size_t *value)
{
    const uint64_t start = monotonic_nanoseconds();
    for (;;) {
        for (int i = 0; i < POLLS_PER_CLOCK_READ; i++) {
            if (atomic_load_explicit(value, memory_order_acquire) == 0)
                return true;
            CPU_RELAX();
        }
        const uint64_t elapsed = monotonic_nanoseconds() - start;
        if (elapsed > SPIN_NANOSECONDS)
            return false;
        if (elapsed > YIELD_AFTER_NANOSECONDS)
            sched_yield();
    }
}

static void run_share(tt_pool *pool, size_t thread, size_t n_tasks, tt_pool_task_fn fn,
                      void *context)
{
    for (size_t task = thread; task < n_tasks; task += pool->n_threads)
        fn(context, task);
}

static void *worker_main(void *argument)
{
    const worker *self = argument;
    tt_pool *pool = self->pool;
    const size_t index = self->index;

    uint64_t seen = 0;
    for (;;) {
        if (!spin_while_equal_u64(&pool->generation, seen)) {
            pthread_mutex_lock(&pool->lock);
            while (atomic_load_explicit(&pool->generation, memory_order_acquire) == seen)
                pthread_cond_wait(&pool->work_ready, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
        }
        seen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        /* tt_pool_free sets `stopping` and then increments the generation,
         * so the acquire load above makes the flag visible. */
        if (atomic_load_explicit(&pool->stopping, memory_order_relaxed))
            break;

        run_share(pool, index, pool->n_tasks, pool->fn, pool->context);

        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            /* The caller may be asleep: wake it under the lock, so that it
             * cannot check `pending` and then miss this signal. */
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->work_done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
    return NULL;
}

tt_pool *tt_pool_new(size_t n_threads)
{
    if (n_threads == 0)
        return NULL;
    tt_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        return NULL;
    pool->n_threads = n_threads;
    if (n_threads == 1)
        return pool;

    pool->workers = calloc(n_threads - 1, sizeof *pool->workers);
    if (pool->workers == NULL) {
        free(pool);
        return NULL;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work_ready, NULL);
    pthread_cond_init(&pool->work_done, NULL);

    for (size_t i = 1; i < n_threads; i++) {
        worker *entry = &pool->workers[i - 1];
        entry->pool = pool;
        entry->index = i;
        if (pthread_create(&entry->thread, NULL, worker_main, entry) != 0) {
            /* Shut down the workers that did start, then report failure. */
            pool->n_threads = i;
            tt_pool_free(pool);
            return NULL;
        }
    }
    return pool;
}

void tt_pool_free(tt_pool *pool)
{
    if (pool == NULL)
        return;
    if (pool->workers != NULL) {
        pthread_mutex_lock(&pool->lock);
        atomic_store_explicit(&pool->stopping, true, memory_order_relaxed);
        atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
        pthread_cond_broadcast(&pool->work_ready);
        pthread_mutex_unlock(&pool->lock);
        for (size_t i = 1; i < pool->n_threads; i++)
            pthread_join(pool->workers[i - 1].thread, NULL);
        pthread_mutex_destroy(&pool->lock);
        pthread_cond_destroy(&pool->work_ready);
        pthread_cond_destroy(&pool->work_done);
        free(pool->workers);
    }
    free(pool);
}

size_t tt_pool_threads(const tt_pool *pool)
{
    return pool == NULL ? 1 : pool->n_threads;
}

void tt_pool_run(tt_pool *pool, size_t n_tasks, tt_pool_task_fn fn, void *context)
{
    if (pool == NULL || pool->n_threads == 1 || n_tasks <= 1) {
        for (size_t task = 0; task < n_tasks; task++)
            fn(context, task);
        return;
    }

    /* Every worker has finished the previous run (pending reached 0), so
     * none reads these fields before it loads the new generation. */
    pool->n_tasks = n_tasks;
    pool->fn = fn;
    pool->context = context;
    atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);

    run_share(pool, 0, n_tasks, fn, context);

    if (spin_until_zero(&pool->pending))
        return;
    pthread_mutex_lock(&pool->lock);
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0)
        pthread_cond_wait(&pool->work_done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

/* The work of tt_pool_run_ranges: `parts` contiguous ranges of [0, count). */
typedef struct range_job {
    size_t count;
    size_t parts;
    tt_pool_range_fn fn;
    void *context;
} range_job;

static void run_range(void *context, size_t part)
{
    const range_job *job = context;
    const size_t begin = part * job->count / job->parts;
    const size_t end = (part + 1) * job->count / job->parts;
    if (begin < end)
        job->fn(job->context, begin, end);
}

void tt_pool_run_ranges(tt_pool *pool, size_t count, size_t min_range, tt_pool_range_fn fn,
                        void *context)
{
    if (count == 0)
        return;
    size_t parts = min_range == 0 ? count : count / min_range;
    const size_t threads = tt_pool_threads(pool);
    parts = parts < threads ? parts : threads;
    if (parts <= 1) {
        fn(context, 0, count);
        return;
    }
    range_job job = {count, parts, fn, context};
    tt_pool_run(pool, parts, run_range, &job);
}
