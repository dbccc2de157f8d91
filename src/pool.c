/* A persistent pool of worker threads for data-parallel loops.
 *
 * tt_pool_run(pool, n_tasks, fn, context) calls fn(context, task, thread)
 * once for every task in [0, n_tasks), spread over the caller (thread 0)
 * and the workers, and returns when all have finished. Threads claim tasks
 * one at a time, in increasing order, from a shared counter. So a thread
 * that starts late, such as a worker still waking up, takes fewer tasks
 * instead of holding up the run. Which thread runs a task depends on
 * timing, so a task must compute the same bits on any thread. Each task
 * writes its own disjoint part of the output, and `thread` only selects
 * per-thread scratch space.
 *
 * Between runs, a worker first polls for the next run for a short while,
 * yielding the processor at each poll, and then sleeps on a condition
 * variable. The caller waits for the workers' last tasks the same way. A
 * training step starts runs back to back, so polling saves the wake-up
 * of a sleeping thread, which costs 15 to 30 µs on a virtual machine. A
 * thread stops polling as soon as a yield takes long, since that means
 * another thread was waiting for the processor: with more threads than
 * processors, polling would only delay the thread that has work. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

/* How long a thread polls before it sleeps: a worker waiting for the next
 * run, or the caller waiting for the workers' last tasks. On a 2-core
 * Zen 3 virtual machine, polling made two-thread training about 5 %
 * faster, whether for 20 or 50 µs. */
#define POLL_NANOSECONDS 50000

/* A yield that returns later than this ran another thread meanwhile. An
 * uncontended yield returns within about a microsecond. */
#define CONTENDED_YIELD_NANOSECONDS 10000

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

    /* The current run. `run` counts runs, and the caller writes n_tasks,
     * fn and context under `lock` before it advances `run`. */
    _Atomic uint32_t run;
    size_t n_tasks;
    tt_pool_task_fn fn;
    void *context;
    /* The run's number in the high 32 bits and its next unclaimed task in
     * the low 32 bits, so that a worker that read an earlier run's fields
     * can never claim a task of a later run. */
    _Atomic uint64_t claim;
    _Atomic size_t finished; /* tasks of the current run that have finished */
    bool stopping;           /* guarded by `lock` */
};

static uint64_t now_nanoseconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* Claims the next task of run `run`, which has `n_tasks` tasks. Returns
 * false when that run has no task left or is over. */
static bool claim_task(tt_pool *pool, uint32_t run, size_t n_tasks, size_t *task)
{
    uint64_t word = atomic_load(&pool->claim);
    for (;;) {
        const size_t next = (size_t)(word & UINT32_MAX);
        if ((uint32_t)(word >> 32) != run || next >= n_tasks)
            return false;
        if (atomic_compare_exchange_weak(&pool->claim, &word, word + 1)) {
            *task = next;
            return true;
        }
    }
}

/* Runs tasks of run `run` until none is left, and returns how many it ran. */
static size_t run_tasks(tt_pool *pool, uint32_t run, size_t n_tasks, tt_pool_task_fn fn,
                        void *context, size_t thread)
{
    size_t done = 0;
    size_t task;
    while (claim_task(pool, run, n_tasks, &task)) {
        fn(context, task, thread);
        done++;
    }
    return done;
}

/* Yields the processor once during a poll that began at `start`; `last`
 * is when the previous yield returned. Returns false when the poll should
 * end: its time is over, or the yield ran another thread. */
static bool keep_polling(uint64_t start, uint64_t *last)
{
    sched_yield();
    const uint64_t now = now_nanoseconds();
    const bool contended = now - *last > CONTENDED_YIELD_NANOSECONDS;
    *last = now;
    return !contended && now - start <= POLL_NANOSECONDS;
}

/* Polls until the pool's run differs from `seen` or polling ends. */
static void poll_for_run(tt_pool *pool, uint32_t seen)
{
    const uint64_t start = now_nanoseconds();
    uint64_t last = start;
    while (atomic_load(&pool->run) == seen && keep_polling(start, &last))
        continue;
}

static void *worker_main(void *argument)
{
    const worker *self = argument;
    tt_pool *pool = self->pool;

    uint32_t seen = 0;
    for (;;) {
        poll_for_run(pool, seen);
        pthread_mutex_lock(&pool->lock);
        while (!pool->stopping && atomic_load(&pool->run) == seen)
            pthread_cond_wait(&pool->work_ready, &pool->lock);
        if (pool->stopping)
            break;
        seen = atomic_load(&pool->run);
        const size_t n_tasks = pool->n_tasks;
        tt_pool_task_fn fn = pool->fn;
        void *context = pool->context;
        pthread_mutex_unlock(&pool->lock);

        const size_t done = run_tasks(pool, seen, n_tasks, fn, context, self->index);
        /* The thread that finishes the run's last task wakes the caller,
         * which may be asleep waiting for it. */
        if (done > 0 && atomic_fetch_add(&pool->finished, done) + done == n_tasks) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->work_done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
    pthread_mutex_unlock(&pool->lock);
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
    atomic_init(&pool->run, 0);
    atomic_init(&pool->claim, 0);
    atomic_init(&pool->finished, 0);
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
        pool->stopping = true;
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
    if (pool == NULL || pool->n_threads == 1 || n_tasks <= 1 || n_tasks > UINT32_MAX) {
        for (size_t task = 0; task < n_tasks; task++)
            fn(context, task, 0);
        return;
    }

    pthread_mutex_lock(&pool->lock);
    const uint32_t run = atomic_load(&pool->run) + 1;
    pool->n_tasks = n_tasks;
    pool->fn = fn;
    pool->context = context;
    atomic_store(&pool->finished, 0);
    atomic_store(&pool->claim, (uint64_t)run << 32);
    atomic_store(&pool->run, run);
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);

    const size_t done = run_tasks(pool, run, n_tasks, fn, context, 0);
    if (atomic_fetch_add(&pool->finished, done) + done == n_tasks)
        return;

    /* Workers are running the last tasks: poll for them, then sleep. */
    const uint64_t start = now_nanoseconds();
    uint64_t last = start;
    while (atomic_load(&pool->finished) < n_tasks && keep_polling(start, &last))
        continue;
    pthread_mutex_lock(&pool->lock);
    while (atomic_load(&pool->finished) < n_tasks)
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

static void run_range(void *context, size_t part, size_t thread)
{
    (void)thread;
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
