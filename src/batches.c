/* Minibatch iterator: a seeded Fisher–Yates shuffle of the sample indices
 * at the start of each epoch, then consecutive slices of batch_size. */
#include <stdlib.h>

#include "internal.h"

struct tt_batches {
    size_t *order;       /* the current epoch's permutation of 0 .. n_samples−1 */
    size_t n_samples;
    size_t batch_size;
    size_t n_batches;    /* per epoch */
    size_t next;         /* index in `order` of the next batch's first sample */
    bool in_epoch;       /* false before the first epoch and after an epoch's end */
    uint64_t epoch;      /* epochs started */
    tt_rng rng;
};

tt_batches *tt_batches_new(size_t n_samples, size_t batch_size, bool drop_last, uint64_t seed,
                           tt_error *err)
{
    if (n_samples == 0 || batch_size == 0) {
        tt_error_set(err, TT_ERR_ARG, "tt_batches_new: %s is 0; it must be at least 1",
                     n_samples == 0 ? "n_samples" : "batch_size");
        return NULL;
    }
    if (drop_last && batch_size > n_samples) {
        tt_error_set(err, TT_ERR_ARG,
                     "tt_batches_new: batch_size %zu exceeds the %zu samples, so drop_last "
                     "would leave no batch; lower batch_size or clear drop_last",
                     batch_size, n_samples);
        return NULL;
    }
    tt_batches *batches = calloc(1, sizeof *batches);
    size_t *order = calloc(n_samples, sizeof *order);
    if (batches == NULL || order == NULL) {
        free(batches);
        free(order);
        tt_error_set(err, TT_ERR_NOMEM, "tt_batches_new: out of memory for %zu sample indices",
                     n_samples);
        return NULL;
    }
    batches->order = order;
    batches->n_samples = n_samples;
    batches->batch_size = batch_size;
    batches->n_batches = drop_last ? n_samples / batch_size
                                   : n_samples / batch_size + (n_samples % batch_size != 0);
    tt_rng_seed(&batches->rng, seed);
    return batches;
}

void tt_batches_free(tt_batches *batches)
{
    if (batches == NULL)
        return;
    free(batches->order);
    free(batches);
}

/* Starts an epoch: a uniformly random permutation, shuffled from the
 * identity so that each epoch's order depends only on the generator. */
static void start_epoch(tt_batches *batches)
{
    size_t *order = batches->order;
    for (size_t i = 0; i < batches->n_samples; i++)
        order[i] = i;
    for (size_t i = batches->n_samples; i > 1; i--) {
        const size_t j = (size_t)tt_rng_below(&batches->rng, i);
        const size_t swapped = order[i - 1];
        order[i - 1] = order[j];
        order[j] = swapped;
    }
    batches->next = 0;
    batches->in_epoch = true;
    batches->epoch++;
}

const size_t *tt_batches_next(tt_batches *batches, size_t *count)
{
    if (count != NULL)
        *count = 0;
    if (batches == NULL || count == NULL)
        return NULL;
    if (!batches->in_epoch)
        start_epoch(batches);

    /* With drop_last the epoch ends before a partial last batch. */
    const size_t batch_index = batches->next / batches->batch_size;
    if (batches->next >= batches->n_samples || batch_index >= batches->n_batches) {
        batches->in_epoch = false;
        return NULL;
    }
    const size_t remaining = batches->n_samples - batches->next;
    const size_t first = batches->next;
    *count = remaining < batches->batch_size ? remaining : batches->batch_size;
    batches->next += *count;
    return batches->order + first;
}

size_t tt_batches_per_epoch(const tt_batches *batches)
{
    return batches == NULL ? 0 : batches->n_batches;
}

uint64_t tt_batches_epoch(const tt_batches *batches)
{
    return batches == NULL ? 0 : batches->epoch;
}
