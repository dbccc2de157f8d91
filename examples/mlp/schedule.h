/* Learning-rate schedules for the MLP example, in the forms of PyTorch's
 * StepLR and CosineAnnealingLR. */
#ifndef MLP_SCHEDULE_H
#define MLP_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum schedule_kind {
    SCHEDULE_CONSTANT, /* the base rate throughout */
    SCHEDULE_STEP,     /* base · gamma^⌊epoch / step_epochs⌋, changed between epochs */
    SCHEDULE_COSINE    /* base · (1 + cos(π · step / total_steps)) / 2, changed every
                          step, from the base rate at the first step towards 0 */
} schedule_kind;

/* A schedule and its parameters. */
typedef struct schedule {
    schedule_kind kind;
    double base_rate;
    size_t step_epochs; /* SCHEDULE_STEP: epochs between decays, at least 1 */
    double gamma;       /* SCHEDULE_STEP: factor of each decay */
    size_t total_steps; /* SCHEDULE_COSINE: optimizer steps of the whole run */
} schedule;

/* Returns the learning rate of optimizer step `step` (0 for the first step
 * of the run), which falls in epoch `epoch` (0 for the first). */
double schedule_rate(const schedule *s, size_t epoch, size_t step);

/* Sets *kind to the kind named `name` ("constant", "step" or "cosine") and
 * returns true, or returns false if no kind has that name. */
bool schedule_parse_kind(const char *name, schedule_kind *kind);

/* The name of `kind` as --schedule takes it, e.g. "cosine". */
const char *schedule_kind_name(schedule_kind kind);

#endif /* MLP_SCHEDULE_H */
