#ifndef NTF_CHART_H
#define NTF_CHART_H

/* Volume charts for the digest: a bar chart of posts per slot (hour or day) of the period, the
 * previous period drawn over it as a grey line, and slots where a spike started in red.
 * Rendered with cairo into a PNG held in memory, to be embedded in the mail by Content-ID. */

#include <stddef.h>
#include <stdint.h>

#define NTF_CHART_SLOTS_MAX 32 /* a month of days, or a day of (DST) hours */

struct ntf_chart {
    const int64_t *values;     /* posts per slot of the period, n of them */
    size_t n;                  /* 1..NTF_CHART_SLOTS_MAX */
    const int64_t *prev;       /* the previous period per slot, n_prev of them; may be NULL */
    size_t n_prev;
    const char *const *labels; /* x axis label per slot (UTF-8; NULL or "" = none) */
    const unsigned char *spike; /* per slot: non-zero = a spike started there; may be NULL */
    const char *legend_cur;    /* e.g. "This week" */
    const char *legend_prev;   /* e.g. "Previous week" (shown when prev is set) */
    const char *legend_spike;  /* e.g. "Spike" (shown when a slot has one) */
    int width;                 /* CSS pixels; the PNG is `scale` times larger */
    int height;
    int scale;                 /* 1..4: 2 gives sharp images on high-density screens */
};

/* Renders c as a PNG. Returns a caller-owned buffer (esc_free) and sets *len, or NULL (logged)
 * when c is invalid or cairo fails. */
unsigned char *ntf_chart_png(const struct ntf_chart *c, size_t *len);

/* Frees cairo's and fontconfig's process-wide caches (fonts looked up for the labels). Call
 * once at exit, when no chart is being drawn; harmless when none was. Keeps leak checkers
 * (ASan, valgrind) quiet; the process would release the memory anyway. */
void ntf_chart_cleanup(void);

#endif
