/* Progress output of the MLP example (see progress.h). */
#include "progress.h"

#include <time.h>
#include <unistd.h>

/* Width of the bar in characters, which with the figures after it keeps
 * the line within 80 columns. */
#define BAR_WIDTH 30

double progress_now(void)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) {
        return 0.0;
    }
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

void progress_init(progress *p, FILE *out, bool quiet, size_t epochs, size_t samples)
{
    p->out = out;
    p->quiet = quiet;
    p->terminal = !quiet && isatty(fileno(out));
    p->epochs = epochs;
    p->samples = samples;
    p->epoch = 0;
    p->epoch_start = 0.0;
    p->last_draw = 0.0;
    p->drawn = false;
    p->bar_shown = false;
}

void progress_start_epoch(progress *p, size_t epoch)
{
    p->epoch = epoch;
    p->epoch_start = progress_now();
    p->last_draw = p->epoch_start;
    p->drawn = false;
}

void progress_update(progress *p, size_t done, double loss_sum)
{
    if (!p->terminal) {
        return;
    }
    /* The first update of an epoch draws at once, so that the bar shows
     * from the first step even in a short epoch. */
    const double now = progress_now();
    if (p->drawn && now - p->last_draw < PROGRESS_REDRAW_SECONDS) {
        return;
    }
    p->drawn = true;
    p->bar_shown = true;
    p->last_draw = now;

    char bar[BAR_WIDTH + 1];
    const size_t filled = done * BAR_WIDTH / p->samples;
    for (size_t i = 0; i < BAR_WIDTH; i++) {
        bar[i] = i < filled ? '#' : '.';
    }
    bar[BAR_WIDTH] = '\0';
    const double elapsed = now - p->epoch_start;
    const double rate = elapsed > 0.0 ? (double)done / elapsed : 0.0;
    const double loss = done > 0 ? loss_sum / (double)done : 0.0;
    /* \r returns to the line's start; \033[K (erase to end of line) removes
     * what a longer earlier line left. */
    fprintf(p->out, "\repoch %zu/%zu [%s] %3zu%%  %.0f samples/s  loss %.4f\033[K", p->epoch,
            p->epochs, bar, done * 100 / p->samples, rate, loss);
    fflush(p->out);
}

void progress_end_epoch(progress *p, double train_loss, double test_accuracy, double seconds)
{
    if (p->quiet) {
        return;
    }
    if (p->terminal) {
        fputs("\r\033[K", p->out);
        p->bar_shown = false;
    }
    fprintf(p->out, "epoch %zu/%zu  train_loss %.4f  test_accuracy %.4f  seconds %.2f\n",
            p->epoch, p->epochs, train_loss, test_accuracy, seconds);
    fflush(p->out);
}

void progress_end_line(progress *p)
{
    if (p->bar_shown) {
        fputc('\n', p->out);
        fflush(p->out);
        p->bar_shown = false;
    }
}
