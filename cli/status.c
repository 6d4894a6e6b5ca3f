#define ESC_LOG_MODULE "status"
/* Formatting of the live status of `escucha up` (see status.h): the terminal block (header,
 * one row per process, one row per pipeline stage, alerts, recent events) and the one-line
 * form for files and pipes. Unknown figures (NAN) print as "-". Lines are cut to the terminal
 * width so that the block never wraps: the supervisor redraws it by moving the cursor up by
 * the number of lines it printed. Pure; no I/O. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "escucha/esc_util.h"

#include "status.h"

static const char *const s_state_names[] = {
    [CLI_P_WAITING] = "waiting", [CLI_P_STARTING] = "starting", [CLI_P_UP] = "up",
    [CLI_P_BACKOFF] = "restarting", [CLI_P_DONE] = "done",  [CLI_P_FAILED] = "failed",
    [CLI_P_STOPPING] = "stopping",  [CLI_P_STOPPED] = "stopped",
};

const char *
cli_pstate_name(enum cli_pstate s)
{
    if ((size_t)s >= ESC_ARRAY_LEN(s_state_names) || s_state_names[s] == NULL) {
        return "?";
    }
    return s_state_names[s];
}

char *
cli_fmt_duration(int64_t ms, char *out, size_t outsz)
{
    int64_t s = ms > 0 ? ms / 1000 : 0;

    if (s < 60) {
        snprintf(out, outsz, "%llds", (long long)s);
    }
    else if (s < 3600) {
        snprintf(out, outsz, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    }
    else if (s < 86400) {
        snprintf(out, outsz, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    }
    else {
        snprintf(out, outsz, "%lldd%02lldh", (long long)(s / 86400),
                 (long long)(s % 86400 / 3600));
    }
    return out;
}

/* A figure: "-" when unknown, else with the given decimals. */
static const char *
s_num(double v, int decimals, char *buf, size_t bufsz)
{
    if (isnan(v)) {
        esc_strlcpy(buf, "-", bufsz);
    }
    else {
        snprintf(buf, bufsz, "%.*f", decimals, v < 0 ? 0.0 : v);
    }
    return buf;
}

/* Output being built: whole lines, cut to the width, up to a number of lines. */
struct s_out {
    char *buf;
    size_t sz;
    size_t len;
    int lines;
    int cols;
    int max_lines;
};

static void s_line(struct s_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
s_line(struct s_out *o, const char *fmt, ...)
{
    char line[1024];
    size_t n;
    va_list ap;

    if (o->lines >= o->max_lines) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    n = strlen(line);
    if (o->cols > 1 && n > (size_t)(o->cols - 1)) {
        n = (size_t)(o->cols - 1);
        /* Do not cut a UTF-8 sequence in two. */
        while (n > 0 && ((unsigned char)line[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    if (o->len + n + 2 > o->sz) {
        return;
    }
    memcpy(o->buf + o->len, line, n);
    o->len += n;
    o->buf[o->len++] = '\n';
    o->buf[o->len] = '\0';
    o->lines++;
}

static void
s_proc_row(struct s_out *o, const struct cli_proc_view *p)
{
    char pid[16];
    char since[32];
    char dur[16];
    const char *note = p->where;

    if (p->pid > 0) {
        snprintf(pid, sizeof(pid), "%d", p->pid);
    }
    else {
        esc_strlcpy(pid, "-", sizeof(pid));
    }
    switch (p->state) {
    case CLI_P_UP:
    case CLI_P_STARTING:
    case CLI_P_STOPPING:
        esc_strlcpy(since, cli_fmt_duration(p->since_ms, dur, sizeof(dur)), sizeof(since));
        break;
    case CLI_P_BACKOFF:
        snprintf(since, sizeof(since), "in %s", cli_fmt_duration(p->since_ms, dur, sizeof(dur)));
        break;
    default:
        esc_strlcpy(since, "-", sizeof(since));
        break;
    }
    if ((p->state == CLI_P_BACKOFF || p->state == CLI_P_FAILED || p->state == CLI_P_DONE
         || p->crashing)
        && p->why[0] != '\0') {
        note = p->why;
    }
    s_line(o, "%-13s %-10s %8s %7s %8u  %s%s", p->name, cli_pstate_name(p->state), pid, since,
           p->restarts, p->crashing ? "CRASHING: " : "", note);
}

static void
s_stage_row(struct s_out *o, const char *name, double in_rate, double out_rate, double total,
            double backlog, const char *extra)
{
    char a[32];
    char b[32];
    char c[32];
    char d[32];

    s_line(o, "%-13s %9s %9s %12s %9s%s", name, s_num(in_rate, 1, a, sizeof(a)),
           s_num(out_rate, 1, b, sizeof(b)), s_num(total, 0, c, sizeof(c)),
           s_num(backlog, 0, d, sizeof(d)), extra);
}

int
cli_status_block(const struct cli_view *v, int cols, int rows, char *out, size_t outsz)
{
    struct s_out o = { out, outsz, 0, 0, cols, rows > 1 ? rows - 1 : 1 };
    char dur[16];
    char pending[64];
    char n1[32];
    char n2[32];
    char n3[32];
    char n4[32];
    char n5[32];
    size_t i;
    int room;

    out[0] = '\0';
    s_line(&o, "escucha up - %s - up %s - %s", v->deployment,
           cli_fmt_duration(v->up_ms, dur, sizeof(dur)),
           v->stopping ? "STOPPING (Ctrl-C again kills everything at once)"
                       : "Ctrl-C stops everything");
    s_line(&o, "redis: %s", v->redis);
    if (v->dashboard[0] != '\0') {
        s_line(&o, "dashboard: %s", v->dashboard);
    }
    s_line(&o, "logs: %s/<process>.log", v->run_dir);
    s_line(&o, "%s", "");
    s_line(&o, "%-13s %-10s %8s %7s %8s  %s", "PROCESS", "STATE", "PID", "UP", "RESTARTS",
           "METRICS / NOTE");
    for (i = 0; i < v->n_procs; i++) {
        s_proc_row(&o, &v->procs[i]);
    }
    s_line(&o, "%s", "");
    s_line(&o, "%-13s %9s %9s %12s %9s", "STAGE", "IN/S", "OUT/S", "TOTAL OUT", "BACKLOG");
    s_stage_row(&o, "collector", NAN, v->collected_rate, v->collected, NAN, "");
    s_stage_row(&o, "broker", v->brokered_rate, v->brokered_rate, v->brokered, v->backlog_broker,
                "");
    s_stage_row(&o, "classifiers", v->classified_in_rate, v->classified_rate, v->classified,
                v->backlog_classifiers, "");
    pending[0] = '\0';
    if (!isnan(v->pending_redis)) {
        snprintf(pending, sizeof(pending), " (+%s waiting for redis)",
                 s_num(v->pending_redis, 0, n1, sizeof(n1)));
    }
    s_stage_row(&o, "aggregator", v->agg_in_rate, v->counted_rate, v->counted,
                v->backlog_aggregator, pending);
    s_line(&o, "alerts: raised %s, received by the notifier %s, sent %s, queued %s, failed %s",
           s_num(v->alerts_raised, 0, n1, sizeof(n1)), s_num(v->alerts_received, 0, n2, sizeof(n2)),
           s_num(v->alerts_sent, 0, n3, sizeof(n3)), s_num(v->alerts_queued, 0, n4, sizeof(n4)),
           s_num(v->alerts_failed, 0, n5, sizeof(n5)));
    room = o.max_lines - o.lines - 2;
    if (v->n_events > 0 && room > 0) {
        size_t first = v->n_events > (size_t)room ? v->n_events - (size_t)room : 0;

        s_line(&o, "%s", "");
        s_line(&o, "%s", "recent:");
        for (i = first; i < v->n_events; i++) {
            s_line(&o, "  %s", v->events[i]);
        }
    }
    return o.lines;
}

/* Appends to out at *len (bounded). */
static void s_cat(char *out, size_t outsz, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
s_cat(char *out, size_t outsz, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*len + 1 >= outsz) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(out + *len, outsz - *len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        *len += (size_t)n < outsz - *len ? (size_t)n : outsz - *len - 1;
    }
}

size_t
cli_status_line(const struct cli_view *v, char *out, size_t outsz)
{
    char dur[16];
    char n[8][32];
    size_t len = 0;
    size_t up = 0;
    size_t live = 0;
    size_t i;
    bool first;

    out[0] = '\0';
    for (i = 0; i < v->n_procs; i++) {
        enum cli_pstate s = v->procs[i].state;

        up += s == CLI_P_UP;
        live += s != CLI_P_DONE && s != CLI_P_STOPPED;
    }
    s_cat(out, outsz, &len, "[%s] %s%zu/%zu up", cli_fmt_duration(v->up_ms, dur, sizeof(dur)),
          v->stopping ? "stopping, " : "", up, live);
    first = true;
    for (i = 0; i < v->n_procs; i++) {
        const struct cli_proc_view *p = &v->procs[i];

        if (p->state != CLI_P_UP && p->state != CLI_P_DONE && p->state != CLI_P_STOPPED) {
            s_cat(out, outsz, &len, "%s%s %s%s", first ? " (" : ", ", p->name,
                  cli_pstate_name(p->state), p->crashing ? ", crashing" : "");
            first = false;
        }
    }
    s_cat(out, outsz, &len, "%s", first ? "" : ")");
    first = true;
    for (i = 0; i < v->n_procs; i++) {
        if (v->procs[i].restarts > 0) {
            s_cat(out, outsz, &len, "%s%s %u", first ? ", restarts: " : ", ", v->procs[i].name,
                  v->procs[i].restarts);
            first = false;
        }
    }
    s_cat(out, outsz, &len,
          " | posts/s: collected %s, brokered %s, classified %s, counted %s"
          " | backlog: broker %s, classifiers %s, aggregator %s, redis %s",
          s_num(v->collected_rate, 1, n[0], sizeof(n[0])),
          s_num(v->brokered_rate, 1, n[1], sizeof(n[1])),
          s_num(v->classified_rate, 1, n[2], sizeof(n[2])),
          s_num(v->counted_rate, 1, n[3], sizeof(n[3])),
          s_num(v->backlog_broker, 0, n[4], sizeof(n[4])),
          s_num(v->backlog_classifiers, 0, n[5], sizeof(n[5])),
          s_num(v->backlog_aggregator, 0, n[6], sizeof(n[6])),
          s_num(v->pending_redis, 0, n[7], sizeof(n[7])));
    s_cat(out, outsz, &len, " | counted %s | alerts: raised %s, sent %s, queued %s, failed %s",
          s_num(v->counted, 0, n[0], sizeof(n[0])), s_num(v->alerts_raised, 0, n[1], sizeof(n[1])),
          s_num(v->alerts_sent, 0, n[2], sizeof(n[2])),
          s_num(v->alerts_queued, 0, n[3], sizeof(n[3])),
          s_num(v->alerts_failed, 0, n[4], sizeof(n[4])));
    return len;
}
