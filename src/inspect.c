/* Views of a tape for people: a table of its records with statistics of
 * every value and gradient (tt_tape_print), and a Graphviz graph
 * (tt_tape_write_dot). Both only read the tape. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Maximum length of a name shown in the table. A longer one is cut and ends
 * in "...". */
#define PRINT_NAME_MAX 24

/* Summary of a tensor's values or gradient. */
typedef struct value_stats {
    double min;    /* over the finite entries; 0 if there are none */
    double max;
    double mean;
    size_t finite; /* finite entries */
    size_t zeros;  /* entries equal to 0, either sign */
    size_t nans;
    size_t infs;
    size_t count; /* all entries */
} value_stats;

static value_stats compute_stats(const tt_real *values, size_t count)
{
    value_stats stats = {0};
    stats.count = count;
    size_t finite = 0;
    double sum = 0.0;
    for (size_t i = 0; i < count; i++) {
        const double v = (double)values[i];
        if (isnan(v)) {
            stats.nans++;
            continue;
        }
        if (isinf(v)) {
            stats.infs++;
            continue;
        }
        if (v == 0)
            stats.zeros++;
        if (finite == 0 || v < stats.min)
            stats.min = v;
        if (finite == 0 || v > stats.max)
            stats.max = v;
        sum += v;
        finite++;
    }
    stats.mean = finite > 0 ? sum / (double)finite : 0.0;
    stats.finite = finite;
    return stats;
}

/* Writes the name shown for a tensor: its own name (cut to PRINT_NAME_MAX
 * bytes, with control characters as '?' so that each row stays on one
 * line), "OP@POSITION" for an unnamed op output, or "(unnamed)". */
static void display_name(const tt_tensor *t, char name[TT_LABEL_MAX])
{
    if (t->name != NULL && strlen(t->name) > PRINT_NAME_MAX)
        snprintf(name, TT_LABEL_MAX, "%.*s...", PRINT_NAME_MAX - 3, t->name);
    else if (t->name != NULL)
        snprintf(name, TT_LABEL_MAX, "%s", t->name);
    else if (t->producer != NULL)
        snprintf(name, TT_LABEL_MAX, "%s@%zu", t->producer->name, t->position);
    else
        snprintf(name, TT_LABEL_MAX, "(unnamed)");
    for (char *c = name; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    }
}

/* "name RxC", the form the table uses for every tensor. */
static void name_and_shape(const tt_tensor *t, char text[2 * TT_LABEL_MAX])
{
    char name[TT_LABEL_MAX];
    display_name(t, name);
    snprintf(text, 2 * TT_LABEL_MAX, "%s %zux%zu", name, t->rows, t->cols);
}

/* Room for a number printed with %.4g, such as "-1.235e-308". */
#define NUMBER_TEXT_MAX 16

/* Prints one line of statistics. Without finite entries, min, max and
 * mean are shown as "-". */
static void print_stats(FILE *out, const char *kind, const tt_real *values, size_t count)
{
    const value_stats s = compute_stats(values, count);
    char min[NUMBER_TEXT_MAX] = "-";
    char max[NUMBER_TEXT_MAX] = "-";
    char mean[NUMBER_TEXT_MAX] = "-";
    if (s.finite > 0) {
        snprintf(min, sizeof min, "%.4g", s.min);
        snprintf(max, sizeof max, "%.4g", s.max);
        snprintf(mean, sizeof mean, "%.4g", s.mean);
    }
    fprintf(out, "      %-5s min %-10s max %-10s mean %-10s zeros %zu/%zu  nan %zu  inf %zu\n",
            kind, min, max, mean, s.zeros, s.count, s.nans, s.infs);
}

/* Returns whether `t`, a caller-owned tensor that requires a gradient,
 * is read by a record before `position`, so that it is listed only once. */
static bool read_earlier(const tt_tape *tape, const tt_tensor *t, size_t position)
{
    for (size_t p = 0; p < position; p++) {
        const tt_record *record = &tape->records[p];
        for (size_t i = 0; i < record->op->n_inputs; i++) {
            if (record->inputs[i] == t)
                return true;
        }
    }
    return false;
}

/* A caller-owned tensor that requires a gradient: a parameter. */
static bool is_parameter(const tt_tensor *t)
{
    return t->tape == NULL && t->requires_grad;
}

tt_status tt_tape_print(const tt_tape *tape, FILE *out)
{
    if (tape == NULL || out == NULL)
        return TT_ERR_ARG;

    fprintf(out, "tape: %zu record%s, %s\n", tape->length, tape->length == 1 ? "" : "s",
            tape->backward_end > 0 ? "gradients from the last backward pass"
                                   : "no backward pass yet");
    if (tape->error.status != TT_OK) {
        fputs("error: ", out);
        for (const char *c = tape->error.message; *c != '\0'; c++)
            fputc((unsigned char)*c < 0x20 || *c == 0x7f ? '?' : *c, out);
        fputc('\n', out);
    }
    if (tape->length == 0)
        return TT_OK;

    fprintf(out, "%4s  %-14s %-30s %s\n", "pos", "op", "output", "inputs");
    for (size_t position = 0; position < tape->length; position++) {
        const tt_record *record = &tape->records[position];
        const tt_tensor *output = record->output;
        char text[2 * TT_LABEL_MAX];
        name_and_shape(output, text);
        fprintf(out, "%4zu  %-14s %-30s", position, record->op->name, text);
        for (size_t i = 0; i < record->op->n_inputs; i++) {
            name_and_shape(record->inputs[i], text);
            fprintf(out, "%s%s", i == 0 ? " " : ", ", text);
        }
        fputc('\n', out);

        print_stats(out, "value", output->data, tt_tensor_size(output));
        /* Gradients stay in the arena until the next reset, retained or not. */
        if (position < tape->backward_end && output->requires_grad)
            print_stats(out, "grad", output->grad, tt_tensor_size(output));
    }

    bool header_printed = false;
    for (size_t position = 0; position < tape->length; position++) {
        const tt_record *record = &tape->records[position];
        for (size_t i = 0; i < record->op->n_inputs; i++) {
            tt_tensor *t = record->inputs[i];
            if (!is_parameter(t) || (i > 0 && t == record->inputs[0]) ||
                read_earlier(tape, t, position))
                continue;
            if (!header_printed) {
                fputs("parameters\n", out);
                header_printed = true;
            }
            char text[2 * TT_LABEL_MAX];
            name_and_shape(t, text);
            fprintf(out, "%4s  %s\n", "", text);
            print_stats(out, "value", t->data, tt_tensor_size(t));
            print_stats(out, "grad", tt_grad_values(t), tt_tensor_size(t));
        }
    }
    return TT_OK;
}

/* ---- DOT ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at `text`, or 0 if it is not one. */
static size_t utf8_sequence_length(const unsigned char *text)
{
    size_t length;
    unsigned int lowest;
    if (text[0] < 0x80)
        return 1;
    if (text[0] >= 0xc2 && text[0] <= 0xdf) {
        length = 2;
        lowest = 0x80;
    } else if (text[0] >= 0xe0 && text[0] <= 0xef) {
        length = 3;
        lowest = 0x800;
    } else if (text[0] >= 0xf0 && text[0] <= 0xf4) {
        length = 4;
        lowest = 0x10000;
    } else {
        return 0;
    }
    unsigned int code = text[0] & (0x7fu >> length);
    for (size_t i = 1; i < length; i++) {
        if ((text[i] & 0xc0) != 0x80)
            return 0;
        code = (code << 6) | (text[i] & 0x3fu);
    }
    /* Reject overlong forms, UTF-16 surrogates and values past U+10FFFF. */
    if (code < lowest || (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff)
        return 0;
    return length;
}

/* Writes `text` as the inside of a DOT double-quoted string: quotes and
 * backslashes escaped, control characters and invalid UTF-8 as '?'. */
static void write_dot_text(FILE *out, const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    while (*p != '\0') {
        const size_t length = utf8_sequence_length(p);
        if (length == 0 || *p < 0x20 || *p == 0x7f) {
            fputc('?', out);
            p++;
        } else if (*p == '"' || *p == '\\') {
            fputc('\\', out);
            fputc(*p, out);
            p++;
        } else {
            fwrite(p, 1, length, out);
            p += length;
        }
    }
}

/* Writes the node of a tensor that no op produced. Its id is "t" followed
 * by the position and index of the first record that reads it. */
static void write_dot_input_node(FILE *out, const tt_tensor *t, size_t position, size_t index)
{
    fprintf(out, "  t%zu_%zu [label=\"", position, index);
    write_dot_text(out, t->name != NULL ? t->name : "(unnamed)");
    fprintf(out, "\\n%zux%zu\", shape=box, ", t->rows, t->cols);
    if (is_parameter(t))
        fputs("style=\"filled,bold\", fillcolor=\"#ffd27f\"];\n", out);
    else
        fputs("style=dashed];\n", out);
}

/* Finds the first record that reads `t` and the index of `t` there. */
static void first_reader(const tt_tape *tape, const tt_tensor *t, size_t *position, size_t *index)
{
    for (size_t p = 0; p < tape->length; p++) {
        const tt_record *record = &tape->records[p];
        for (size_t i = 0; i < record->op->n_inputs; i++) {
            if (record->inputs[i] == t) {
                *position = p;
                *index = i;
                return;
            }
        }
    }
}

tt_status tt_tape_write_dot(const tt_tape *tape, FILE *out)
{
    if (tape == NULL || out == NULL)
        return TT_ERR_ARG;

    fputs("digraph tape {\n", out);
    fputs("  rankdir=TB;\n", out);
    fputs("  node [fontname=\"Helvetica\"];\n", out);
    fputs("  edge [fontname=\"Helvetica\", fontsize=10];\n", out);
    for (size_t position = 0; position < tape->length; position++) {
        const tt_record *record = &tape->records[position];

        /* Inputs that no op produced get a node at their first use. */
        for (size_t i = 0; i < record->op->n_inputs; i++) {
            const tt_tensor *x = record->inputs[i];
            size_t first_position = 0;
            size_t first_index = 0;
            first_reader(tape, x, &first_position, &first_index);
            if (x->producer == NULL && first_position == position && first_index == i)
                write_dot_input_node(out, x, position, i);
        }

        const tt_tensor *output = record->output;
        fprintf(out, "  n%zu [label=\"", position);
        if (output->name != NULL) {
            write_dot_text(out, output->name);
            fputs("\\n", out);
        }
        fprintf(out, "%s@%zu\\n%zux%zu\", shape=ellipse];\n", record->op->name, position,
                output->rows, output->cols);

        for (size_t i = 0; i < record->op->n_inputs; i++) {
            const tt_tensor *x = record->inputs[i];
            if (x->producer != NULL) {
                fprintf(out, "  n%zu -> n%zu", x->position, position);
            } else {
                size_t first_position = 0;
                size_t first_index = 0;
                first_reader(tape, x, &first_position, &first_index);
                fprintf(out, "  t%zu_%zu -> n%zu", first_position, first_index, position);
            }
            if (record->op->n_inputs > 1)
                fprintf(out, " [label=\"%zu\"]", i);
            fputs(";\n", out);
        }
    }
    fputs("}\n", out);
    return TT_OK;
}
