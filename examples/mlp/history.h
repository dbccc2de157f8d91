/* The training history of mlp: one record per epoch, written as CSV while
 * training runs (--log) and drawn as an SVG chart at the end (--plot). */
#ifndef MLP_HISTORY_H
#define MLP_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The results of one epoch. */
typedef struct epoch_record {
    size_t epoch;         /* 1, 2, … */
    double train_loss;    /* mean training loss per sample */
    double test_accuracy; /* fraction of the test set classified correctly */
    double seconds;       /* training time of the epoch */
} epoch_record;

/* Creates (or truncates) the CSV file at `path` and writes its header line,
 * "epoch,train_loss,test_accuracy,seconds". Returns NULL with a message
 * naming the file if it cannot be opened or written. */
FILE *history_log_open(const char *path, char *message, size_t message_size);

/* Appends one record as a CSV row and flushes it, so that a run stopped
 * early keeps every finished epoch. Returns false with a message naming
 * `path` if the write fails. */
bool history_log_append(FILE *log, const char *path, const epoch_record *record, char *message,
                        size_t message_size);

/* Closes the log; returns false with a message if closing reports a write
 * error. NULL is accepted and returns true. */
bool history_log_close(FILE *log, const char *path, char *message, size_t message_size);

/* Writes an SVG chart of records[0 .. count) to `path`: two panels over
 * the epoch axis, the mean training loss above and the test accuracy
 * below, each with ticks, tick labels, axis labels and a legend, under
 * `title` (escaped for XML). Non-finite values are left out of the lines.
 * The chart is written with tt_file_write_atomic, so an existing file at
 * PATH is replaced only by a complete chart and keeps its permission bits,
 * and a PATH that is a symbolic link or not a regular file is rejected.
 * Returns false with a message naming the file on failure. */
bool history_write_svg(const char *path, const char *title, const epoch_record *records,
                       size_t count, char *message, size_t message_size);

#endif /* MLP_HISTORY_H */
