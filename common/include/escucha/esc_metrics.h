#ifndef ESC_METRICS_H
#define ESC_METRICS_H

/* Process metrics in the Prometheus text format, served with /healthz by a small HTTP server
 * (libmicrohttpd, its own thread). Metrics are registered once at start-up on the loop thread
 * and updated lock-free (relaxed atomics) from that thread; the server thread only reads them.
 * Names follow Prometheus conventions: escucha_<service>_<what>_total for counters,
 * escucha_<service>_<what>_seconds for histograms of durations. Every service also exports
 * escucha_build_info{service,version} 1, escucha_up_seconds (time since start) and
 * escucha_healthy (1 while /healthz answers 200, else 0). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esc_cfg.h"

enum esc_metric_kind {
    ESC_METRIC_COUNTER,
    ESC_METRIC_GAUGE,
    ESC_METRIC_HISTOGRAM,
};

#define ESC_METRICS_BUCKETS_MAX 16

typedef struct esc_metric esc_metric_t;

/* Registers a counter/gauge named `name` with `help`, and an optional preformatted label set
 * such as `source="muestra",kind="http"` (NULL or "" for none; values must already be escaped
 * with esc_metrics_label_escape). Registering the same name+labels twice returns the same
 * metric. Borrowed: metrics live until esc_metrics_shutdown. */
esc_metric_t *esc_metrics_counter(const char *name, const char *help, const char *labels);
esc_metric_t *esc_metrics_gauge(const char *name, const char *help, const char *labels);
/* A histogram with ascending upper bounds (seconds, say); at most ESC_METRICS_BUCKETS_MAX.
 * Rendered the Prometheus way: cumulative <name>_bucket{le="..."} series ending with
 * le="+Inf", then <name>_sum and <name>_count. The bounds of the first registration stay. */
esc_metric_t *esc_metrics_histogram(const char *name, const char *help, const char *labels,
                                    const double *bounds, size_t n_bounds);

void esc_metric_add(esc_metric_t *m, uint64_t n);  /* counters */
void esc_metric_set(esc_metric_t *m, double v);    /* gauges */
/* Histograms: records one observation of v (two relaxed atomic adds; NaN is ignored). */
void esc_metric_observe(esc_metric_t *m, double v);
/* Records n observations of the same value v at once (n == 0 records nothing). */
void esc_metric_observe_n(esc_metric_t *m, double v, uint64_t n);
/* Counter value, or a histogram's observation count (tests). */
uint64_t esc_metric_value(const esc_metric_t *m);
/* A histogram's sum of observations (tests). */
double esc_metric_sum(const esc_metric_t *m);

/* Monotonic clock in seconds with sub-microsecond resolution, for timing what a histogram
 * observes: esc_metric_observe(m, esc_metrics_clock() - t0). One clock_gettime call. */
double esc_metrics_clock(void);

/* Writes the exposition text of every metric into a caller-owned string (esc_free). */
char *esc_metrics_render(void);

/* Health as /healthz reports it: ok=true -> 200 "ok" (reason ignored); false -> 503
 * "unhealthy: <reason>". The gauge escucha_healthy says the same (1/0). The reason is copied.
 * Safe from the loop thread at any time; cheap when nothing changed. */
void esc_metrics_set_health(bool ok, const char *reason);

/* Starts the HTTP server on `listen` ("127.0.0.1:9101", ":9101" = all interfaces, port 0 =
 * any free port; "" = no server) and records service/version for escucha_build_info.
 * Returns 0, or -1 (logged). Call after esc_sig_init so the server thread blocks signals. */
int esc_metrics_start(const char *service, const char *listen);
/* The port actually bound (0 when no server). */
int esc_metrics_port(void);
/* Stops the server, frees every metric and resets the health to ok. */
void esc_metrics_shutdown(void);

/* Escapes a label value (\\, \", \n) into out. Returns out. */
char *esc_metrics_label_escape(char *out, size_t outsz, const char *value);

/* Config entry every service puts in its section map (the field must be char[64]). */
#define ESC_CFG_METRICS(T, f)                                                                      \
    ESC_CFG_STR("metrics_listen", "", T, f,                                                        \
                "address of /metrics and /healthz, e.g. 127.0.0.1:9101 (\"\" = off)")

#endif
