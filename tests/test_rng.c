/* The seeded SplitMix64 generator and the distributions drawn from it. */
#include <math.h>
#include <stdint.h>

#include "helpers.h"

/* Number of draws in the statistical tests. Checks inside their loops call
 * ck_abort_msg only on failure, because a passing ck_assert_msg records a
 * checkpoint through a system call, which is slow for this many draws. */
#define DRAWS 100000

START_TEST(rng_matches_splitmix64_reference_values)
{
    /* SplitMix64 outputs for seeds 0 and 1234567, computed from the
     * algorithm's definition (state += 0x9e3779b97f4a7c15, then the two
     * xor-shift-multiply rounds and a final xor-shift) by a separate
     * implementation. */
    const uint64_t seeds[2] = {0, 1234567};
    const uint64_t want[2][3] = {
        {0xe220a8397b1dcdafu, 0x6e789e6aa1b965f4u, 0x06c45d188009454fu},
        {0x599ed017fb08fc85u, 0x2c73f08458540fa5u, 0x883ebce5a3f27c77u},
    };

    for (size_t s = 0; s < 2; s++) {
        tt_rng rng;
        tt_rng_seed(&rng, seeds[s]);
        for (size_t i = 0; i < 3; i++) {
            const uint64_t got = tt_rng_next(&rng);
            ck_assert_msg(got == want[s][i], "seed %llu, output %zu: got 0x%016llx, want 0x%016llx",
                          (unsigned long long)seeds[s], i, (unsigned long long)got,
                          (unsigned long long)want[s][i]);
        }
    }
}
END_TEST

START_TEST(rng_same_seed_repeats_sequence)
{
    tt_rng first;
    tt_rng second;
    tt_rng_seed(&first, 42);
    tt_rng_seed(&second, 42);

    for (size_t i = 0; i < 1000; i++) {
        const uint64_t a = tt_rng_next(&first);
        const uint64_t b = tt_rng_next(&second);
        if (a != b)
            ck_abort_msg("output %zu differs: 0x%016llx and 0x%016llx", i, (unsigned long long)a,
                         (unsigned long long)b);
    }
}
END_TEST

START_TEST(rng_copy_forks_stream)
{
    tt_rng rng;
    tt_rng_seed(&rng, 9);
    (void)tt_rng_next(&rng);
    tt_rng copy = rng;

    for (size_t i = 0; i < 100; i++) {
        const uint64_t a = tt_rng_next(&rng);
        const uint64_t b = tt_rng_next(&copy);
        if (a != b)
            ck_abort_msg("output %zu after the copy differs: 0x%016llx and 0x%016llx", i,
                         (unsigned long long)a, (unsigned long long)b);
    }
}
END_TEST

START_TEST(rng_uniform_lies_in_unit_interval)
{
    tt_rng rng;
    tt_rng_seed(&rng, 1);
    double sum = 0.0;

    for (size_t i = 0; i < DRAWS; i++) {
        const double u = tt_rng_uniform(&rng);
        if (!(u >= 0.0 && u < 1.0))
            ck_abort_msg("draw %zu = %.17g is outside [0, 1)", i, u);
        /* 53 random bits: u · 2^53 is a whole number. */
        const double scaled = u * 0x1.0p53;
        if (scaled != floor(scaled))
            ck_abort_msg("draw %zu = %.17g has more than 53 bits", i, u);
        sum += u;
    }

    /* The mean of DRAWS uniform values has standard error
     * sqrt(1/12 / DRAWS), about 0.0009; the bound is five of them. */
    const double mean = sum / DRAWS;
    ck_assert_msg(fabs(mean - 0.5) < 0.0046, "mean of %d draws is %.6f, want 0.5 +- 0.0046",
                  DRAWS, mean);
}
END_TEST

START_TEST(rng_uniform_of_largest_draw_is_below_one)
{
    /* The seed whose first output is 2^64 − 1 (found by inverting the
     * SplitMix64 output function) gives the largest uniform value. */
    const uint64_t largest_draw_seed = 0x31628af67b2131abu;
    tt_rng rng;
    tt_rng_seed(&rng, largest_draw_seed);
    tt_rng copy = rng;

    const uint64_t bits = tt_rng_next(&copy);
    const double u = tt_rng_uniform(&rng);

    ck_assert_msg(bits == UINT64_MAX, "first output 0x%016llx, want 0xffffffffffffffff",
                  (unsigned long long)bits);
    ck_assert_msg(u == 1.0 - 0x1.0p-53, "uniform %.17g, want 1 - 2^-53", u);
}
END_TEST

START_TEST(rng_below_stays_below_bound)
{
    const uint64_t bounds[] = {1, 2, 3, 10, 1000, ((uint64_t)1 << 63) + 1, UINT64_MAX};
    tt_rng rng;
    tt_rng_seed(&rng, 2);

    for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
        for (size_t i = 0; i < 1000; i++) {
            const uint64_t draw = tt_rng_below(&rng, bounds[b]);
            if (draw >= bounds[b])
                ck_abort_msg("draw %zu below %llu returned %llu", i,
                             (unsigned long long)bounds[b], (unsigned long long)draw);
        }
    }
}
END_TEST

START_TEST(rng_below_covers_every_value_evenly)
{
    enum { BOUND = 10 };
    size_t counts[BOUND] = {0};
    tt_rng rng;
    tt_rng_seed(&rng, 4);

    for (size_t i = 0; i < DRAWS; i++)
        counts[tt_rng_below(&rng, BOUND)]++;

    /* Each count is binomial with mean 10000 and standard deviation
     * sqrt(DRAWS · 0.1 · 0.9), about 95; the bound is five of them. */
    for (size_t v = 0; v < BOUND; v++)
        ck_assert_msg(counts[v] > 10000 - 475 && counts[v] < 10000 + 475,
                      "value %zu drawn %zu times out of %d, want 10000 +- 475", v, counts[v],
                      DRAWS);
}
END_TEST

START_TEST(rng_normal_has_zero_mean_and_unit_stddev)
{
    tt_rng rng;
    tt_rng_seed(&rng, 6);
    double sum = 0.0;
    double squares = 0.0;

    for (size_t i = 0; i < DRAWS; i++) {
        const double x = tt_rng_normal(&rng);
        if (!isfinite(x))
            ck_abort_msg("draw %zu is %g", i, x);
        sum += x;
        squares += x * x;
    }

    /* Standard errors: 1/sqrt(DRAWS) = 0.0032 for the mean and about
     * 1/sqrt(2·DRAWS) = 0.0022 for the standard deviation; the bounds are
     * five of them. */
    const double mean = sum / DRAWS;
    const double stddev = sqrt(squares / DRAWS - mean * mean);
    ck_assert_msg(fabs(mean) < 0.016, "mean of %d draws is %.6f, want 0 +- 0.016", DRAWS, mean);
    ck_assert_msg(fabs(stddev - 1.0) < 0.011,
                  "standard deviation of %d draws is %.6f, want 1 +- 0.011", DRAWS, stddev);
}
END_TEST

static Suite *rng_suite(void)
{
    Suite *suite = suite_create("rng");

    TCase *sequence = add_test_case(suite, "sequence");
    tcase_add_test(sequence, rng_matches_splitmix64_reference_values);
    tcase_add_test(sequence, rng_same_seed_repeats_sequence);
    tcase_add_test(sequence, rng_copy_forks_stream);

    TCase *distributions = add_test_case(suite, "distributions");
    tcase_add_test(distributions, rng_uniform_lies_in_unit_interval);
    tcase_add_test(distributions, rng_uniform_of_largest_draw_is_below_one);
    tcase_add_test(distributions, rng_below_stays_below_bound);
    tcase_add_test(distributions, rng_below_covers_every_value_evenly);
    tcase_add_test(distributions, rng_normal_has_zero_mean_and_unit_stddev);

    return suite;
}

int main(void)
{
    return run_suite(rng_suite());
}
