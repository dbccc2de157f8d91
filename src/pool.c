/* A persistent pool of worker threads for data-parallel loops.
 *
 * tt_pool_run(pool, n_tasks, fn, context) calls fn(context, task) once for
 * every task in [0, n_tasks), spread over the caller and the workers, and
 * returns when all have finished. Task t always goes to thread t mod
 * n_threads, so which thread computes what depends only on the thread
 * count, and since every task writes its own disjoint part of the output,
 * results do not depend on it at all. Workers sleep on a condition
 * variable between runs; nothing spins. */
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"

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

    /* The current run, guarded by `lock`. */
    uint64_t generation; /* incremented for each run, so workers see new work */
    size_t n_tasks;
    tt_pool_task_fn fn;
    void *context;
    size_t pending; /* workers that have not finished the current run */
    bool stopping;
};

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
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stopping && pool->generation == seen)
            pthread_cond_wait(&pool->work_ready, &pool->lock);
        if (pool->stopping)
            break;
        seen = pool->generation;
        const size_t n_tasks = pool->n_tasks;
        tt_pool_task_fn fn = pool->fn;
        void *context = pool->context;
        pthread_mutex_unlock(&pool->lock);

        run_share(pool, index, n_tasks, fn, context);

        pthread_mutex_lock(&pool->lock);
        if (--pool->pending == 0)
            pthread_cond_signal(&pool->work_done);
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
    if (pool == NULL || pool->n_threads == 1 || n_tasks <= 1) {
        for (size_t task = 0; task < n_tasks; task++)
            fn(context, task);
        return;
    }

    pthread_mutex_lock(&pool->lock);
    pool->generation++;
    pool->n_tasks = n_tasks;
    pool->fn = fn;
    pool->context = context;
    pool->pending = pool->n_threads - 1;
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);

    run_share(pool, 0, n_tasks, fn, context);

    pthread_mutex_lock(&pool->lock);
    while (pool->pending > 0)
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
