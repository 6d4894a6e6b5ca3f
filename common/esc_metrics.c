#define ESC_LOG_MODULE "metrics"
/* Prometheus metrics and health endpoint. Metrics sit in one registry array, grouped by name
 * when rendered (one HELP/TYPE per family). Values are C11 atomics: the service's loop thread
 * writes, the libmicrohttpd thread reads; registration happens before the server starts or on
 * the loop thread under the registry mutex. A histogram keeps one count per bucket (not
 * cumulative: an observation is one atomic add there plus one to the sum, kept in micro-units)
 * and the renderer adds them up into Prometheus's cumulative le= series. */
#include <arpa/inet.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_util.h"

#define S_MAX_METRICS 4096
#define S_SUM_MAX 1e12 /* largest |value| added to a histogram's sum (keeps x 1e6 in int64) */

struct esc_metric {
    char name[96];
    char help[160];
    char labels[256];
    enum esc_metric_kind kind;
    _Atomic uint64_t count;             /* counter value */
    _Atomic int64_t gauge_micro;        /* gauge value x 1e6 */
    _Atomic int64_t sum_micro;          /* histogram sum x 1e6 */
    double bounds[ESC_METRICS_BUCKETS_MAX];
    /* observations per bucket: [i] in (bounds[i-1], bounds[i]], [n_bounds] above the last */
    _Atomic uint64_t buckets[ESC_METRICS_BUCKETS_MAX + 1];
    size_t n_bounds;
};

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static esc_metric_t *s_metrics[S_MAX_METRICS];
static size_t s_n;
static struct MHD_Daemon *s_daemon;
static int s_port;
static char s_service[32] = "escucha";
static int64_t s_started_ms;
static bool s_health_ok = true;
static char s_health_reason[256];

static esc_metric_t *
s_register(const char *name, const char *help, const char *labels, enum esc_metric_kind kind)
{
    esc_metric_t *m = NULL;
    size_t i;

    if (labels == NULL) {
        labels = "";
    }
    pthread_mutex_lock(&s_lock);
    for (i = 0; i < s_n; i++) {
        if (strcmp(s_metrics[i]->name, name) == 0 && strcmp(s_metrics[i]->labels, labels) == 0) {
            m = s_metrics[i];
            goto out;
        }
    }
    ESC_ASSERT(s_n < S_MAX_METRICS);
    m = esc_calloc(1, sizeof(*m));
    esc_strlcpy(m->name, name, sizeof(m->name));
    esc_strlcpy(m->help, help, sizeof(m->help));
    esc_strlcpy(m->labels, labels, sizeof(m->labels));
    m->kind = kind;
    s_metrics[s_n++] = m;
out:
    pthread_mutex_unlock(&s_lock);
    return m;
}

esc_metric_t *
esc_metrics_counter(const char *name, const char *help, const char *labels)
{
    return s_register(name, help, labels, ESC_METRIC_COUNTER);
}

esc_metric_t *
esc_metrics_gauge(const char *name, const char *help, const char *labels)
{
    return s_register(name, help, labels, ESC_METRIC_GAUGE);
}

esc_metric_t *
esc_metrics_histogram(const char *name, const char *help, const char *labels,
                      const double *bounds, size_t n_bounds)
{
    esc_metric_t *m = s_register(name, help, labels, ESC_METRIC_HISTOGRAM);
    size_t i;

    ESC_ASSERT(n_bounds <= ESC_METRICS_BUCKETS_MAX);
    pthread_mutex_lock(&s_lock);
    if (m->n_bounds == 0) {
        for (i = 0; i < n_bounds; i++) {
            m->bounds[i] = bounds[i];
        }
        m->n_bounds = n_bounds;
    }
    pthread_mutex_unlock(&s_lock);
    return m;
}

void
esc_metric_add(esc_metric_t *m, uint64_t n)
{
    atomic_fetch_add_explicit(&m->count, n, memory_order_relaxed);
}

void
esc_metric_set(esc_metric_t *m, double v)
{
    atomic_store_explicit(&m->gauge_micro, (int64_t)llround(v * 1e6), memory_order_relaxed);
}

void
esc_metric_observe_n(esc_metric_t *m, double v, uint64_t n)
{
    size_t i = 0;
    double s;

    if (n == 0 || isnan(v)) {
        return;
    }
    while (i < m->n_bounds && v > m->bounds[i]) {
        i++;
    }
    s = v > S_SUM_MAX ? S_SUM_MAX : (v < -S_SUM_MAX ? -S_SUM_MAX : v);
    atomic_fetch_add_explicit(&m->buckets[i], n, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_micro, (int64_t)llround(s * 1e6) * (int64_t)n,
                              memory_order_relaxed);
}

void
esc_metric_observe(esc_metric_t *m, double v)
{
    esc_metric_observe_n(m, v, 1);
}

uint64_t
esc_metric_value(const esc_metric_t *m)
{
    uint64_t total = 0;
    size_t i;

    if (m->kind != ESC_METRIC_HISTOGRAM) {
        return atomic_load_explicit(&m->count, memory_order_relaxed);
    }
    for (i = 0; i <= m->n_bounds; i++) {
        total += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
    }
    return total;
}

double
esc_metric_sum(const esc_metric_t *m)
{
    return (double)atomic_load_explicit(&m->sum_micro, memory_order_relaxed) / 1e6;
}

double
esc_metrics_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

char *
esc_metrics_label_escape(char *out, size_t outsz, const char *value)
{
    size_t o = 0;
    size_t i;

    for (i = 0; value[i] != '\0' && o + 3 < outsz; i++) {
        char c = value[i];

        if (c == '\\' || c == '"') {
            out[o++] = '\\';
            out[o++] = c;
        }
        else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        }
        else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return out;
}

/* A growable text buffer for rendering. */
struct s_buf {
    char *p;
    size_t len, cap;
};

static void __attribute__((format(printf, 2, 3)))
s_printf(struct s_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        ESC_ASSERT(n >= 0);
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n;
        b->p = esc_realloc(b->p, b->cap);
    }
}

/* "name{labels}" or "name{labels,extra}" or "name{extra}" or "name". */
static void
s_series(struct s_buf *b, const char *name, const char *suffix, const char *labels,
         const char *extra)
{
    bool has_l = labels[0] != '\0';
    bool has_e = extra != NULL && extra[0] != '\0';

    s_printf(b, "%s%s", name, suffix);
    if (has_l || has_e) {
        s_printf(b, "{%s%s%s}", has_l ? labels : "", has_l && has_e ? "," : "",
                 has_e ? extra : "");
    }
}

static const char *
s_kind_name(enum esc_metric_kind k)
{
    return k == ESC_METRIC_COUNTER ? "counter" : (k == ESC_METRIC_GAUGE ? "gauge" : "histogram");
}

char *
esc_metrics_render(void)
{
    struct s_buf b = { esc_malloc(4096), 0, 4096 };
    bool *done;
    size_t i, j, k;

    b.p[0] = '\0';
    s_printf(&b, "# HELP escucha_build_info Build of this escucha process.\n"
                 "# TYPE escucha_build_info gauge\n"
                 "escucha_build_info{service=\"%s\",version=\"%s\"} 1\n",
             s_service, ESC_VERSION);
    s_printf(&b, "# HELP escucha_up_seconds Seconds since the process started.\n"
                 "# TYPE escucha_up_seconds gauge\nescucha_up_seconds %.3f\n",
             s_started_ms > 0 ? (double)(esc_mono_ms() - s_started_ms) / 1000.0 : 0.0);
    pthread_mutex_lock(&s_lock);
    s_printf(&b, "# HELP escucha_healthy 1 while /healthz answers 200 ok, 0 while it answers "
                 "503.\n# TYPE escucha_healthy gauge\nescucha_healthy %d\n",
             s_health_ok ? 1 : 0);
    done = esc_calloc(s_n + 1, sizeof(*done));
    for (i = 0; i < s_n; i++) {
        const esc_metric_t *f = s_metrics[i];

        if (done[i]) {
            continue;
        }
        s_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                 s_kind_name(f->kind));
        for (j = i; j < s_n; j++) {
            esc_metric_t *m = s_metrics[j];

            if (done[j] || strcmp(m->name, f->name) != 0) {
                continue;
            }
            done[j] = true;
            if (m->kind == ESC_METRIC_COUNTER) {
                s_series(&b, m->name, "", m->labels, NULL);
                s_printf(&b, " %llu\n", (unsigned long long)esc_metric_value(m));
            }
            else if (m->kind == ESC_METRIC_GAUGE) {
                s_series(&b, m->name, "", m->labels, NULL);
                s_printf(&b, " %g\n", (double)atomic_load(&m->gauge_micro) / 1e6);
            }
            else {
                char le[48];
                uint64_t cum = 0;

                /* one pass over the buckets, so +Inf and _count agree within a scrape */
                for (k = 0; k < m->n_bounds; k++) {
                    cum += atomic_load_explicit(&m->buckets[k], memory_order_relaxed);
                    snprintf(le, sizeof(le), "le=\"%g\"", m->bounds[k]);
                    s_series(&b, m->name, "_bucket", m->labels, le);
                    s_printf(&b, " %llu\n", (unsigned long long)cum);
                }
                cum += atomic_load_explicit(&m->buckets[m->n_bounds], memory_order_relaxed);
                s_series(&b, m->name, "_bucket", m->labels, "le=\"+Inf\"");
                s_printf(&b, " %llu\n", (unsigned long long)cum);
                s_series(&b, m->name, "_sum", m->labels, NULL);
                s_printf(&b, " %.9g\n", esc_metric_sum(m));
                s_series(&b, m->name, "_count", m->labels, NULL);
                s_printf(&b, " %llu\n", (unsigned long long)cum);
            }
        }
    }
    pthread_mutex_unlock(&s_lock);
    esc_free(done);
    return b.p;
}

void
esc_metrics_set_health(bool ok, const char *reason)
{
    pthread_mutex_lock(&s_lock);
    s_health_ok = ok;
    /* a healthy process has nothing to explain: /healthz says exactly "ok" */
    esc_strlcpy(s_health_reason, !ok && reason != NULL ? reason : "", sizeof(s_health_reason));
    pthread_mutex_unlock(&s_lock);
}

/* Queues a response with a copy of body. */
static enum MHD_Result
s_reply(struct MHD_Connection *c, unsigned int status, const char *type, const char *body)
{
    struct MHD_Response *r;
    enum MHD_Result rc;

    r = MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body,
                                        MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result
s_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
         const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    char *text;
    char health[300];
    bool ok;
    enum MHD_Result rc;

    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return s_reply(c, 405, "text/plain", "method not allowed\n");
    }
    if (strcmp(url, "/metrics") == 0) {
        text = esc_metrics_render();
        rc = s_reply(c, 200, "text/plain; version=0.0.4", text);
        esc_free(text);
        return rc;
    }
    if (strcmp(url, "/healthz") == 0) {
        pthread_mutex_lock(&s_lock);
        ok = s_health_ok;
        if (ok) {
            esc_strlcpy(health, "ok\n", sizeof(health));
        }
        else {
            snprintf(health, sizeof(health), "unhealthy: %s\n",
                     s_health_reason[0] != '\0' ? s_health_reason : "unknown reason");
        }
        pthread_mutex_unlock(&s_lock);
        return s_reply(c, ok ? 200 : 503, "text/plain", health);
    }
    return s_reply(c, 404, "text/plain", "not found\n");
}

int
esc_metrics_start(const char *service, const char *listen)
{
    struct sockaddr_storage sa;
    socklen_t sa_len;
    const union MHD_DaemonInfo *info;
    unsigned int v6;

    esc_strlcpy(s_service, service, sizeof(s_service));
    s_started_ms = esc_mono_ms();
    if (listen == NULL || listen[0] == '\0') {
        return 0;
    }
    if (esc_parse_listen(listen, &sa, &sa_len) != 0) {
        esc_log_error("bad metrics address listen=%s (want host:port, [ipv6]:port or :port)",
                      listen);
        return -1;
    }
    v6 = sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0;
    s_daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | v6, 0, NULL,
                                NULL, s_handle, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
    if (s_daemon == NULL) {
        esc_log_error("metrics server failed to start listen=%s", listen);
        return -1;
    }
    info = MHD_get_daemon_info(s_daemon, MHD_DAEMON_INFO_BIND_PORT);
    s_port = info != NULL ? info->port : 0;
    {
        /* addr=<host>:<port>, the port as bound (tests and tools read it from this line) */
        const char *colon = strrchr(listen, ':');
        int hlen = (int)(colon - listen);

        esc_log_info("metrics listening addr=%.*s:%d", hlen > 0 ? hlen : 1,
                     hlen > 0 ? listen : "*", s_port);
    }
    return 0;
}

int
esc_metrics_port(void)
{
    return s_port;
}

void
esc_metrics_shutdown(void)
{
    size_t i;

    if (s_daemon != NULL) {
        MHD_stop_daemon(s_daemon);
        s_daemon = NULL;
    }
    s_port = 0;
    pthread_mutex_lock(&s_lock);
    for (i = 0; i < s_n; i++) {
        esc_free(s_metrics[i]);
    }
    s_n = 0;
    s_health_ok = true;
    s_health_reason[0] = '\0';
    pthread_mutex_unlock(&s_lock);
}
