#define ESC_LOG_MODULE "chart"
/* The digest's volume chart, drawn with cairo (Debian libcairo2) on an image surface and
 * written as PNG into memory. The layout is fixed and simple so the chart stays legible when a
 * mail client shrinks it to a phone's width: a legend line, horizontal grid lines at "nice"
 * steps (1, 2, 5 x 10^k) labelled on the left, one bar per slot (red where a spike started),
 * the previous period as a grey line through the slot centres, x labels below, and the value
 * above each bar when there are few bars. Text uses cairo's toy font API with "DejaVu Sans"
 * (fontconfig falls back to any sans font). Pure: no state, safe to call from one thread at a
 * time per surface (cairo is reentrant for separate surfaces). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "chart.h"
#include "strbuf.h"

#define S_PNG_MAX (8 * 1024 * 1024)
#define S_FONT "DejaVu Sans"
#define S_PAD_LEFT 40.0
#define S_PAD_RIGHT 8.0
#define S_PAD_TOP 26.0
#define S_PAD_BOTTOM 22.0
#define S_VALUES_MAX_BARS 12 /* print each bar's value when there are at most this many */

struct s_rgb {
    double r, g, b;
};

static const struct s_rgb s_bar = { 0x25 / 255.0, 0x63 / 255.0, 0xeb / 255.0 };
static const struct s_rgb s_bar_spike = { 0xdc / 255.0, 0x26 / 255.0, 0x26 / 255.0 };
static const struct s_rgb s_prev = { 0x6b / 255.0, 0x72 / 255.0, 0x80 / 255.0 };
static const struct s_rgb s_grid = { 0xe5 / 255.0, 0xe7 / 255.0, 0xeb / 255.0 };
static const struct s_rgb s_text = { 0x4b / 255.0, 0x55 / 255.0, 0x63 / 255.0 };

static void
s_color(cairo_t *cr, const struct s_rgb *c)
{
    cairo_set_source_rgb(cr, c->r, c->g, c->b);
}

/* Smallest "nice" step (1, 2 or 5 x 10^k) with step * 4 >= max. */
static double
s_nice_step(double max)
{
    double raw = max / 4.0;
    double mag;
    double f;

    if (raw <= 1.0) {
        return 1.0;
    }
    mag = pow(10.0, floor(log10(raw)));
    f = raw / mag;
    if (f <= 1.0) {
        return mag;
    }
    if (f <= 2.0) {
        return 2.0 * mag;
    }
    if (f <= 5.0) {
        return 5.0 * mag;
    }
    return 10.0 * mag;
}

/* Compact number for axis labels: 950, 1.5k, 12k, 3.4M. */
static void
s_short_num(double v, char *out, size_t outsz)
{
    if (v >= 1e6) {
        snprintf(out, outsz, v >= 1e7 ? "%.0fM" : "%.1fM", v / 1e6);
    }
    else if (v >= 1e3) {
        snprintf(out, outsz, v >= 1e4 ? "%.0fk" : "%.1fk", v / 1e3);
    }
    else {
        snprintf(out, outsz, "%.0f", v);
    }
}

/* Draws text with its reference point at x (aligned: 0 left, 0.5 centre, 1 right), y. */
static void
s_text_at(cairo_t *cr, const char *s, double x, double y, double align)
{
    cairo_text_extents_t ext;

    cairo_text_extents(cr, s, &ext);
    cairo_move_to(cr, x - align * ext.x_advance, y);
    cairo_show_text(cr, s);
}

/* Legend entries left to right; returns the x after the last. */
static double
s_legend(cairo_t *cr, const struct ntf_chart *c, int any_spike)
{
    double x = S_PAD_LEFT;
    double y = 14.0;
    cairo_text_extents_t ext;

    cairo_set_font_size(cr, 12.0);
    s_color(cr, &s_bar);
    cairo_rectangle(cr, x, y - 8.0, 10.0, 10.0);
    cairo_fill(cr);
    s_color(cr, &s_text);
    cairo_move_to(cr, x + 14.0, y);
    cairo_show_text(cr, c->legend_cur != NULL ? c->legend_cur : "");
    cairo_text_extents(cr, c->legend_cur != NULL ? c->legend_cur : "", &ext);
    x += 14.0 + ext.x_advance + 16.0;
    if (c->prev != NULL && c->n_prev > 0) {
        s_color(cr, &s_prev);
        cairo_set_line_width(cr, 2.0);
        cairo_set_dash(cr, (const double[]){ 4.0, 3.0 }, 2, 0.0);
        cairo_move_to(cr, x, y - 3.0);
        cairo_line_to(cr, x + 16.0, y - 3.0);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0.0);
        s_color(cr, &s_text);
        cairo_move_to(cr, x + 20.0, y);
        cairo_show_text(cr, c->legend_prev != NULL ? c->legend_prev : "");
        cairo_text_extents(cr, c->legend_prev != NULL ? c->legend_prev : "", &ext);
        x += 20.0 + ext.x_advance + 16.0;
    }
    if (any_spike) {
        s_color(cr, &s_bar_spike);
        cairo_rectangle(cr, x, y - 8.0, 10.0, 10.0);
        cairo_fill(cr);
        s_color(cr, &s_text);
        cairo_move_to(cr, x + 14.0, y);
        cairo_show_text(cr, c->legend_spike != NULL ? c->legend_spike : "");
        cairo_text_extents(cr, c->legend_spike != NULL ? c->legend_spike : "", &ext);
        x += 14.0 + ext.x_advance;
    }
    return x;
}

static cairo_status_t
s_png_write(void *closure, const unsigned char *data, unsigned int length)
{
    struct ntf_sb *sb = closure;

    ntf_sb_add(sb, (const char *)data, length);
    return sb->overflow ? CAIRO_STATUS_WRITE_ERROR : CAIRO_STATUS_SUCCESS;
}

static void
s_draw(cairo_t *cr, const struct ntf_chart *c)
{
    double w = (double)c->width;
    double h = (double)c->height;
    double plot_w = w - S_PAD_LEFT - S_PAD_RIGHT;
    double plot_h = h - S_PAD_TOP - S_PAD_BOTTOM;
    double base = S_PAD_TOP + plot_h;
    double slot = plot_w / (double)c->n;
    double max = 0.0;
    double step;
    double top;
    double v;
    size_t n_prev = c->prev != NULL ? (c->n_prev < c->n ? c->n_prev : c->n) : 0;
    size_t label_every = c->n <= 12 ? 1 : (c->n + 7) / 8;
    int any_spike = 0;
    char num[32];
    size_t i;

    for (i = 0; i < c->n; i++) {
        max = fmax(max, (double)c->values[i]);
        any_spike |= c->spike != NULL && c->spike[i] != 0;
    }
    for (i = 0; i < n_prev; i++) {
        max = fmax(max, (double)c->prev[i]);
    }
    step = s_nice_step(max);
    top = step * fmax(1.0, ceil(max / step));

    cairo_set_source_rgb(cr, 1.0, 1.0, 1.0);
    cairo_paint(cr);
    cairo_select_font_face(cr, S_FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    s_legend(cr, c, any_spike);

    /* grid and y labels */
    cairo_set_font_size(cr, 11.0);
    cairo_set_line_width(cr, 1.0);
    for (v = 0.0; v <= top + step / 2.0; v += step) {
        double y = floor(base - v / top * plot_h) + 0.5;

        s_color(cr, &s_grid);
        cairo_move_to(cr, S_PAD_LEFT, y);
        cairo_line_to(cr, w - S_PAD_RIGHT, y);
        cairo_stroke(cr);
        s_color(cr, &s_text);
        s_short_num(v, num, sizeof(num));
        s_text_at(cr, num, S_PAD_LEFT - 6.0, y + 3.5, 1.0);
    }

    /* bars, their values and the x labels */
    for (i = 0; i < c->n; i++) {
        double bw = fmax(1.0, slot * 0.68);
        double x = S_PAD_LEFT + slot * (double)i + (slot - bw) / 2.0;
        double bh = (double)c->values[i] / top * plot_h;

        s_color(cr, (c->spike != NULL && c->spike[i] != 0) ? &s_bar_spike : &s_bar);
        cairo_rectangle(cr, x, base - bh, bw, bh);
        cairo_fill(cr);
        s_color(cr, &s_text);
        if (c->n <= S_VALUES_MAX_BARS && c->values[i] > 0) {
            s_short_num((double)c->values[i], num, sizeof(num));
            cairo_set_font_size(cr, 11.0);
            s_text_at(cr, num, x + bw / 2.0, base - bh - 3.0, 0.5);
        }
        if (c->labels != NULL && c->labels[i] != NULL && c->labels[i][0] != '\0'
            && i % label_every == 0) {
            cairo_set_font_size(cr, 11.0);
            s_text_at(cr, c->labels[i], x + bw / 2.0, h - 7.0, 0.5);
        }
    }

    /* the previous period over the bars */
    if (n_prev > 0) {
        s_color(cr, &s_prev);
        cairo_set_line_width(cr, 2.0);
        cairo_set_dash(cr, (const double[]){ 4.0, 3.0 }, 2, 0.0);
        for (i = 0; i < n_prev; i++) {
            double x = S_PAD_LEFT + slot * ((double)i + 0.5);
            double y = base - (double)c->prev[i] / top * plot_h;

            if (i == 0) {
                cairo_move_to(cr, x, y);
            }
            else {
                cairo_line_to(cr, x, y);
            }
        }
        if (n_prev == 1) {
            cairo_rel_line_to(cr, 0.1, 0.0);
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0.0);
    }

    /* the x axis */
    s_color(cr, &s_text);
    cairo_set_line_width(cr, 1.0);
    cairo_move_to(cr, S_PAD_LEFT, floor(base) + 0.5);
    cairo_line_to(cr, w - S_PAD_RIGHT, floor(base) + 0.5);
    cairo_stroke(cr);
}

unsigned char *
ntf_chart_png(const struct ntf_chart *c, size_t *len)
{
    cairo_surface_t *surf = NULL;
    cairo_t *cr = NULL;
    cairo_status_t st;
    struct ntf_sb sb;
    char *out = NULL;
    size_t i;

    if (c->n == 0 || c->n > NTF_CHART_SLOTS_MAX || c->values == NULL || c->width < 120
        || c->width > 2000 || c->height < 60 || c->height > 2000 || c->scale < 1
        || c->scale > 4) {
        esc_log_error("invalid chart n=%zu width=%d height=%d scale=%d", c->n, c->width,
                      c->height, c->scale);
        return NULL;
    }
    for (i = 0; i < c->n; i++) {
        if (c->values[i] < 0) {
            esc_log_error("invalid chart value slot=%zu", i);
            return NULL;
        }
    }
    for (i = 0; c->prev != NULL && i < c->n_prev; i++) {
        if (c->prev[i] < 0) {
            esc_log_error("invalid chart value prev slot=%zu", i);
            return NULL;
        }
    }
    ntf_sb_init(&sb, S_PNG_MAX);
    surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, c->width * c->scale,
                                      c->height * c->scale);
    cr = cairo_create(surf);
    cairo_scale(cr, (double)c->scale, (double)c->scale);
    s_draw(cr, c);
    st = cairo_status(cr);
    if (st == CAIRO_STATUS_SUCCESS) {
        cairo_surface_flush(surf);
        st = cairo_surface_write_to_png_stream(surf, s_png_write, &sb);
    }
    if (st != CAIRO_STATUS_SUCCESS) {
        esc_log_error("chart rendering failed err=\"%s\"", cairo_status_to_string(st));
        ntf_sb_fini(&sb);
        goto out;
    }
    out = ntf_sb_take(&sb, len);

out:
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    return (unsigned char *)out;
}

void
ntf_chart_cleanup(void)
{
    cairo_debug_reset_static_data();
    FcFini();
}
