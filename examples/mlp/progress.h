/* Progress output of the MLP example.
 *
 * On a terminal, each epoch shows a progress bar with the samples per
 * second and the running mean loss. It is drawn after the first step, then
 * redrawn in place (with a carriage return) at most every
 * PROGRESS_REDRAW_SECONDS, and the epoch's summary line replaces it at the
 * end. Anywhere else, such as a pipe or a
 * file, only the summary line of each epoch is printed. In quiet mode
 * nothing is printed per epoch. The final key=value line is the caller's.
 */
#ifndef MLP_PROGRESS_H
#define MLP_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Minimum time between two redraws of the bar: often enough to look live,
 * rare enough that drawing costs nothing next to training. */
#define PROGRESS_REDRAW_SECONDS 0.2

typedef struct progress {
    FILE *out;
    bool terminal;    /* draw the bar */
    bool quiet;       /* print nothing per epoch */
    size_t epochs;
    size_t samples;   /* training samples per epoch */
    size_t epoch;     /* current epoch, from 1 */
    double epoch_start; /* monotonic seconds */
    double last_draw;
    bool drawn;       /* the bar has been drawn in this epoch */
    bool bar_shown;   /* the bar is on the current line, not yet ended */
} progress;

/* Returns the monotonic clock in seconds, or 0 if the clock cannot be read,
 * which makes only the reported times wrong. */
double progress_now(void);

/* Sets up the display on `out`. The bar is drawn only if isatty reports
 * `out` as a terminal and `quiet` is false. */
void progress_init(progress *p, FILE *out, bool quiet, size_t epochs, size_t samples);

/* Marks the start of epoch `epoch` (from 1). */
void progress_start_epoch(progress *p, size_t epoch);

/* Reports that `done` samples of the epoch are trained, with `loss_sum` the
 * sum of their losses. Cheap to call after every step: it reads the clock
 * and redraws only on a terminal, after the epoch's first step and then
 * every PROGRESS_REDRAW_SECONDS. */
void progress_update(progress *p, size_t done, double loss_sum);

/* Replaces the bar with the epoch's summary line, unless quiet. */
void progress_end_epoch(progress *p, double train_loss, double test_accuracy, double seconds);

/* Ends the line of a bar still showing, so that an error message printed
 * next starts on a line of its own. Does nothing if no bar shows. Call it
 * before printing an error during training. */
void progress_end_line(progress *p);

#endif /* MLP_PROGRESS_H */
