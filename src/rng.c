/* SplitMix64: a small, fast generator whose whole state is one 64-bit
 * counter, so a seed fixes the sequence on every platform. The increment and
 * the two mixing multipliers are the algorithm's standard constants. */
#include <math.h>

#include "internal.h"

void tt_rng_seed(tt_rng *rng, uint64_t seed)
{
    rng->state = seed;
}

uint64_t tt_rng_next(tt_rng *rng)
{
    rng->state += 0x9e3779b97f4a7c15u;
    uint64_t z = rng->state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

double tt_rng_uniform(tt_rng *rng)
{
    /* The top 53 bits, scaled by 2^-53: every double in [0, 1) with that
     * spacing is equally likely. */
    return (double)(tt_rng_next(rng) >> 11) * 0x1.0p-53;
}

uint64_t tt_rng_below(tt_rng *rng, uint64_t bound)
{
    if (bound <= 1)
        return 0;
    /* Reject the top partial block of 2^64 so every result is equally
     * likely; fewer than half the draws are ever rejected. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t draw;
    do {
        draw = tt_rng_next(rng);
    } while (draw >= limit);
    return draw % bound;
}

double tt_rng_normal(tt_rng *rng)
{
    /* Box-Muller transform; 1 - u lies in (0, 1], so the log is finite. */
    const double two_pi = 6.283185307179586476925;
    double u = tt_rng_uniform(rng);
    double v = tt_rng_uniform(rng);
    return sqrt(-2.0 * log(1.0 - u)) * cos(two_pi * v);
}
