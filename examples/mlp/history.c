/* The training history of mlp as CSV and as an SVG chart; see history.h. */
#include "history.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensortape.h"

FILE *history_log_open(const char *path, char *message, size_t message_size)
{
    FILE *log = fopen(path, "w");
    if (log == NULL) {
        snprintf(message, message_size, "%s: cannot create the log: %s", path, strerror(errno));
        return NULL;
    }
    if (fputs("epoch,train_loss,test_accuracy,seconds\n", log) == EOF || fflush(log) != 0) {
        snprintf(message, message_size, "%s: cannot write the log: %s", path, strerror(errno));
        fclose(log);
        return NULL;
    }
    return log;
}

bool history_log_append(FILE *log, const char *path, const epoch_record *record, char *message,
                        size_t message_size)
{
    if (fprintf(log, "%zu,%.6f,%.6f,%.3f\n", record->epoch, record->train_loss,
                record->test_accuracy, record->seconds) < 0 ||
        fflush(log) != 0) {
        snprintf(message, message_size, "%s: cannot write the log: %s", path, strerror(errno));
        return false;
    }
    return true;
}

bool history_log_close(FILE *log, const char *path, char *message, size_t message_size)
{
    if (log == NULL)
        return true;
    const bool failed = ferror(log) != 0;
    if (fclose(log) != 0 || failed) {
        snprintf(message, message_size, "%s: cannot write the log: %s", path, strerror(errno));
        return false;
    }
    return true;
}

/* ---- SVG chart ---------------------------------------------------------- */

/* Chart geometry, in SVG user units (pixels). */
#define CHART_WIDTH 720
#define CHART_HEIGHT 560
#define MARGIN_LEFT 90
#define MARGIN_RIGHT 30
#define TITLE_BASELINE 32
#define PANEL_HEIGHT 180
#define LOSS_PANEL_TOP 70
#define ACCURACY_PANEL_TOP 330
#define TICK_LENGTH 5

/* Ticks each axis aims at; the actual count is 3 to 11. */
#define TARGET_TICKS 5

#define LOSS_COLOR "#1f77b4"
#define ACCURACY_COLOR "#d62728"

/* One axis's range and tick step, chosen so that ticks fall on round
 * numbers: multiples of 1, 2 or 5 times a power of ten. */
typedef struct axis {
    double low;
    double high;
    double step;
    int decimals; /* digits after the point in tick labels */
} axis;

/* Returns the round step (1, 2 or 5 times a power of ten) nearest above
 * span / TARGET_TICKS. */
static double round_step(double span)
{
    const double raw = span / TARGET_TICKS;
    const double power = pow(10.0, floor(log10(raw)));
    const double fraction = raw / power;
    if (fraction <= 1.0)
        return power;
    if (fraction <= 2.0)
        return 2.0 * power;
    if (fraction <= 5.0)
        return 5.0 * power;
    return 10.0 * power;
}

/* An axis covering [low, high], widened to whole steps. An empty or
 * degenerate range is widened around its value first. */
static axis make_axis(double low, double high)
{
    if (!(high > low)) {
        const double pad = fabs(high) * 0.05 + 1e-3;
        low -= pad;
        high += pad;
    }
    axis a;
    a.step = round_step(high - low);
    a.low = floor(low / a.step) * a.step;
    a.high = ceil(high / a.step) * a.step;
    a.decimals = a.step >= 1.0 ? 0 : (int)ceil(-log10(a.step) - 1e-9);
    return a;
}

/* Writes `text` with the XML special characters escaped. */
static void write_xml_text(FILE *out, const char *text)
{
    for (const char *c = text; *c != '\0'; c++) {
        switch (*c) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        default:
            /* Control characters other than tab and newline are not
             * allowed in XML 1.0. */
            fputc((unsigned char)*c < 0x20 && *c != '\t' && *c != '\n' ? '?' : *c, out);
        }
    }
}

/* A panel: a plot area and the axes that map values into it. */
typedef struct panel {
    double left, right, top, bottom; /* plot area */
    axis x;
    axis y;
} panel;

static double panel_x(const panel *p, double value)
{
    return p->left + (value - p->x.low) / (p->x.high - p->x.low) * (p->right - p->left);
}

static double panel_y(const panel *p, double value)
{
    return p->bottom - (value - p->y.low) / (p->y.high - p->y.low) * (p->bottom - p->top);
}

/* Draws the frame, the ticks and their labels, the axis labels and the
 * grid of one panel. */
static void write_panel_axes(FILE *out, const panel *p, const char *y_label)
{
    fprintf(out,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#000\"/>\n",
            p->left, p->top, p->right - p->left, p->bottom - p->top);

    /* x ticks on the bottom edge: the first epoch, then the multiples of the
     * whole-number step. */
    for (double v = p->x.low; v <= p->x.high + p->x.step / 2;
         v = (floor(v / p->x.step) + 1) * p->x.step) {
        const double x = panel_x(p, v);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\"/>\n",
                x, p->bottom, x, p->bottom + TICK_LENGTH);
        fprintf(out,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">%.*f</text>\n",
                x, p->bottom + TICK_LENGTH + 14, p->x.decimals, v);
    }
    fprintf(out,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">epoch</text>\n",
            (p->left + p->right) / 2, p->bottom + 40);

    /* y ticks on the left edge, with light grid lines across. */
    for (double v = p->y.low; v <= p->y.high + p->y.step / 2; v += p->y.step) {
        const double y = panel_y(p, v);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\"/>\n",
                p->left - TICK_LENGTH, y, p->left, y);
        fprintf(out,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                p->left, y, p->right, y);
        fprintf(out,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\">%.*f</text>\n",
                p->left - TICK_LENGTH - 3, y + 4, p->y.decimals, v);
    }
    const double middle = (p->top + p->bottom) / 2;
    fprintf(out,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\" "
            "transform=\"rotate(-90 %.1f %.1f)\">%s</text>\n",
            p->left - 60, middle, p->left - 60, middle, y_label);
}

/* Draws one series as a line with a dot at each finite point, and its
 * legend entry in the panel's right corner, at the top or the bottom:
 * where a falling loss or a rising accuracy leaves room. `field` picks
 * the value. */
static void write_series(FILE *out, const panel *p, const epoch_record *records, size_t count,
                         double (*field)(const epoch_record *), const char *color,
                         const char *legend, bool legend_at_top)
{
    fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (size_t i = 0; i < count; i++) {
        const double value = field(&records[i]);
        if (isfinite(value))
            fprintf(out, "%s%.1f,%.1f", i == 0 ? "" : " ", panel_x(p, (double)records[i].epoch),
                    panel_y(p, value));
    }
    fputs("\"/>\n", out);
    for (size_t i = 0; i < count; i++) {
        const double value = field(&records[i]);
        if (isfinite(value))
            fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                    panel_x(p, (double)records[i].epoch), panel_y(p, value), color);
    }

    const double x = p->right - 150;
    const double y = legend_at_top ? p->top + 18 : p->bottom - 14;
    fprintf(out,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"140\" height=\"24\" fill=\"#fff\" "
            "stroke=\"#999\"/>\n",
            x - 8, y - 14);
    fprintf(out,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
            "stroke-width=\"2\"/>\n",
            x, y - 2, x + 24, y - 2, color);
    fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", x + 12, y - 2,
            color);
    fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">%s</text>\n", x + 32, y + 2,
            legend);
}

static double train_loss_of(const epoch_record *r)
{
    return r->train_loss;
}

static double test_accuracy_of(const epoch_record *r)
{
    return r->test_accuracy;
}

/* The range of a field's finite values; [0, 1] if there are none. */
static void finite_range(const epoch_record *records, size_t count,
                         double (*field)(const epoch_record *), double *low, double *high)
{
    bool any = false;
    for (size_t i = 0; i < count; i++) {
        const double v = field(&records[i]);
        if (!isfinite(v))
            continue;
        *low = any ? fmin(*low, v) : v;
        *high = any ? fmax(*high, v) : v;
        any = true;
    }
    if (!any) {
        *low = 0.0;
        *high = 1.0;
    }
}

/* The epoch axis: from epoch 1 to the last (0 to 2 for one epoch), with a
 * whole-number step. */
static axis epoch_axis(const epoch_record *records, size_t count)
{
    const double last = count > 0 ? (double)records[count - 1].epoch : 1.0;
    axis a;
    if (last <= 1.0) {
        a.low = 0.0;
        a.high = 2.0;
        a.step = 1.0;
    } else {
        a.low = 1.0;
        a.step = fmax(1.0, round_step(last - 1.0));
        a.high = last;
    }
    a.decimals = 0;
    return a;
}

static void write_chart(FILE *out, const char *title, const epoch_record *records, size_t count)
{
    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n",
            CHART_WIDTH, CHART_HEIGHT, CHART_WIDTH, CHART_HEIGHT);
    fprintf(out, "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n", CHART_WIDTH, CHART_HEIGHT);
    fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"16\">",
            CHART_WIDTH / 2, TITLE_BASELINE);
    write_xml_text(out, title);
    fputs("</text>\n", out);

    double low = 0.0;
    double high = 0.0;
    const axis epochs = epoch_axis(records, count);

    finite_range(records, count, train_loss_of, &low, &high);
    panel loss = {MARGIN_LEFT, CHART_WIDTH - MARGIN_RIGHT, LOSS_PANEL_TOP,
                  LOSS_PANEL_TOP + PANEL_HEIGHT, epochs, make_axis(low, high)};
    write_panel_axes(out, &loss, "mean training loss");
    write_series(out, &loss, records, count, train_loss_of, LOSS_COLOR, "training loss",
                 true);

    finite_range(records, count, test_accuracy_of, &low, &high);
    axis accuracy_axis = make_axis(low, high);
    accuracy_axis.low = fmax(accuracy_axis.low, 0.0);
    accuracy_axis.high = fmin(accuracy_axis.high, 1.0);
    panel accuracy = {MARGIN_LEFT, CHART_WIDTH - MARGIN_RIGHT, ACCURACY_PANEL_TOP,
                      ACCURACY_PANEL_TOP + PANEL_HEIGHT, epochs, accuracy_axis};
    write_panel_axes(out, &accuracy, "test accuracy");
    write_series(out, &accuracy, records, count, test_accuracy_of, ACCURACY_COLOR,
                 "test accuracy", false);

    fputs("</svg>\n", out);
}

/* What write_chart_file draws. */
typedef struct chart {
    const char *title;
    const epoch_record *records;
    size_t count;
} chart;

/* A tt_file_writer: write errors are left in the stream's error flag,
 * which tt_file_write_atomic checks. */
static bool write_chart_file(FILE *out, void *context)
{
    const chart *c = context;
    write_chart(out, c->title, c->records, c->count);
    return true;
}

bool history_write_svg(const char *path, const char *title, const epoch_record *records,
                       size_t count, char *message, size_t message_size)
{
    chart contents = {title, records, count};
    tt_error err = {TT_OK, ""};
    if (tt_file_write_atomic(path, write_chart_file, &contents, &err) != TT_OK) {
        snprintf(message, message_size, "%s", err.message);
        return false;
    }
    return true;
}
