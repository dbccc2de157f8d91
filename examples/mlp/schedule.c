/* Learning-rate schedules (see schedule.h). */
#include "schedule.h"

#include <math.h>
#include <string.h>

/* π to double precision. */
#define PI 3.14159265358979323846

double schedule_rate(const schedule *s, size_t epoch, size_t step)
{
    switch (s->kind) {
    case SCHEDULE_STEP:
        return s->base_rate * pow(s->gamma, (double)(epoch / s->step_epochs));
    case SCHEDULE_COSINE:
        return s->base_rate * 0.5 * (1.0 + cos(PI * (double)step / (double)s->total_steps));
    case SCHEDULE_CONSTANT:
        break;
    }
    return s->base_rate;
}

/* The names of --schedule, in the order of schedule_kind. */
static const char *const schedule_names[] = {"constant", "step", "cosine"};

const char *schedule_kind_name(schedule_kind kind)
{
    return schedule_names[kind];
}

bool schedule_parse_kind(const char *name, schedule_kind *kind)
{
    for (size_t i = 0; i < sizeof schedule_names / sizeof schedule_names[0]; i++) {
        if (strcmp(name, schedule_names[i]) == 0) {
            *kind = (schedule_kind)i;
            return true;
        }
    }
    return false;
}
