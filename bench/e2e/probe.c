#define ESC_LOG_MODULE "probe"
/* Latency probe of the end-to-end benchmark (bench/e2e/run_e2e.py). It acts as one more
 * collector: it connects a PUSH socket to the broker's bus.collect and, at --rate markers per
 * second for --duration seconds, sends a marker post stamped with ingested_at = now, exactly as
 * a collector stamps a post it takes in. Every marker carries the token of the topic
 * canary/marker and its own event-time minute (base + i minutes), so it lands in its own
 * minute bucket <prefix>:c:{canary/marker}:m:<start>. The probe polls Redis for those buckets
 * (the oldest few every --poll-ms, all outstanding ones every tenth round) and records, per
 * marker, the time from its send to the first poll that sees it counted: intake-to-Redis
 * latency, including the aggregator's flush period, with a resolution of the poll interval.
 * After sending it waits up to --timeout seconds for stragglers. Writes one JSON object
 * (latency percentiles, lost markers, its own Redis commands so the runner can subtract them,
 * and the per-marker series) to --out. Single-threaded; bounded in time and count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#include "bench_util.h"

#define P_MARKERS_MAX 100000
#define P_OLDEST_POLLED 8
#define P_FULL_EVERY 10
#define P_POLL_MAX 4096 /* buckets read in one round trip */

struct p_marker {
    double sent;    /* monotonic s; 0 = not sent yet */
    double seen;    /* monotonic s; 0 = not seen yet */
    int64_t minute; /* event-time minute start, Unix s */
};

static int
s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return x < y ? -1 : (x > y ? 1 : 0);
}

static double
s_pct(const double *sorted, size_t n, double p)
{
    size_t k;

    if (n == 0) {
        return 0;
    }
    k = (size_t)ceil(p / 100.0 * (double)n);
    k = k == 0 ? 0 : k - 1;
    return sorted[k < n ? k : n - 1];
}

static void
s_sleep_s(double s)
{
    struct timespec ts;

    if (s <= 0) {
        return;
    }
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

/* Sends marker i; returns 0, or -1 when the bus has no room now (try again later). */
static int
s_send(esc_bus_t *bus, struct p_marker *m, size_t i, const char *token, int64_t base_s)
{
    struct esc_post p;
    char id[64];
    char text[200];
    char *buf;
    size_t len = 0;
    esc_rc rc;

    esc_post_init(&p);
    snprintf(id, sizeof(id), "probe-%ld-%zu", (long)getpid(), i);
    snprintf(text, sizeof(text), "bench latency probe %s number %zu, please ignore", token, i);
    m->minute = base_s + (int64_t)i * 60;
    p.id = id;
    p.platform = "bench";
    p.source = "probe";
    p.author = "probe";
    p.text = text;
    p.lang = "en";
    p.created_at = (m->minute + 30) * 1000;
    p.ingested_at = esc_now_ms();
    buf = esc_post_encode(&p, 0, &len);
    rc = esc_bus_send(bus, buf, len, ESC_BUS_DONTWAIT);
    esc_free(buf);
    if (rc != ESC_OK) {
        return -1;
    }
    m->sent = bench_wall_s();
    return 0;
}

/* Polls the buckets of up to `limit` outstanding markers (oldest first) in one pipeline. */
static uint64_t
s_poll(esc_kv_t *kv, struct p_marker *m, size_t sent, size_t *first_open, size_t limit,
       const char *prefix, const char *topic)
{
    size_t idx[P_POLL_MAX];
    struct esc_kv_val *out;
    size_t n = 0;
    size_t i;
    double now;

    while (*first_open < sent && m[*first_open].seen > 0) {
        (*first_open)++;
    }
    for (i = *first_open; i < sent && n < limit && n < P_POLL_MAX; i++) {
        if (m[i].seen == 0) {
            char key[256];

            snprintf(key, sizeof(key), "%s:c:{%s}:m:%lld", prefix, topic, (long long)m[i].minute);
            esc_kv_append(kv, "HGET %s posts", key);
            idx[n++] = i;
        }
    }
    if (n == 0) {
        return 0;
    }
    out = esc_calloc(n, sizeof(*out));
    if (esc_kv_exec_replies(kv, out, n, NULL) == ESC_OK) {
        now = bench_wall_s();
        for (i = 0; i < n; i++) {
            if (out[i].type == ESC_KV_STR || out[i].type == ESC_KV_INT) {
                m[idx[i]].seen = now;
            }
            esc_kv_val_fini(&out[i]);
        }
    }
    esc_free(out);
    return n;
}

int
main(int argc, char **argv)
{
    const char *endpoint = bench_opt(argc, argv, "--bus");
    const char *sock = bench_opt(argc, argv, "--redis-sock");
    const char *prefix = bench_opt(argc, argv, "--prefix");
    const char *topic = bench_opt(argc, argv, "--topic");
    const char *token = bench_opt(argc, argv, "--token");
    const char *out_path = bench_opt(argc, argv, "--out");
    double rate = bench_opt_f(argc, argv, "--rate", 10.0);
    double duration = bench_opt_f(argc, argv, "--duration", 10.0);
    double timeout = bench_opt_f(argc, argv, "--timeout", 30.0);
    double poll_s = bench_opt_f(argc, argv, "--poll-ms", 5.0) / 1000.0;
    int64_t base_s = bench_opt_i64(argc, argv, "--base-s", 1792000000, 0, INT64_MAX / 2000);
    struct esc_kv_opts ko;
    esc_kv_t *kv;
    esc_bus_t *bus;
    struct p_marker *m;
    size_t total;
    size_t sent = 0;
    size_t first_open = 0;
    size_t seen = 0;
    uint64_t polled = 0;
    uint64_t rounds = 0;
    uint64_t send_waits = 0;
    uint64_t send_phase_cmds = 0;
    double *lat;
    double t0;
    double end_send;
    double deadline;
    size_t i;
    FILE *f;

    esc_log_init("bench-probe", ESC_LOG_WARN);
    if (endpoint == NULL || sock == NULL || out_path == NULL) {
        fprintf(stderr, "usage: bench_probe --bus ENDPOINT --redis-sock PATH --out FILE "
                        "[--prefix esc] [--topic canary/marker] [--token xqzmarker] [--rate R] "
                        "[--duration S] [--timeout S] [--poll-ms MS] [--base-s UNIX_S]\n");
        return 2;
    }
    prefix = prefix ? prefix : "esc";
    topic = topic ? topic : "canary/marker";
    token = token ? token : "xqzmarker";
    if (rate <= 0 || rate > 100 || duration > 3600 || timeout > 3600 || poll_s <= 0) {
        fprintf(stderr, "bench_probe: need 0 < rate <= 100, duration and timeout <= 3600 s\n");
        return 2;
    }
    base_s -= base_s % 60; /* minute buckets start on whole minutes */
    total = (size_t)(rate * duration);
    if (total == 0 || total > P_MARKERS_MAX) {
        fprintf(stderr, "bench_probe: rate x duration must be 1..%d markers\n", P_MARKERS_MAX);
        return 2;
    }
    memset(&ko, 0, sizeof(ko));
    ko.unix_socket = sock;
    ko.timeout_ms = 2000;
    kv = esc_kv_new(&ko);
    bus = esc_bus_new(ESC_BUS_PUSH, endpoint, false, 1000);
    if (bus == NULL) {
        return 1;
    }
    m = esc_calloc(total, sizeof(*m));
    t0 = bench_wall_s();
    end_send = t0 + duration;
    deadline = end_send + timeout;
    for (;;) {
        double now = bench_wall_s();

        /* One marker per round at most, so a stall is never followed by a burst. */
        if (sent < total && now >= t0 + (double)sent / rate) {
            if (s_send(bus, &m[sent], sent, token, base_s) == 0) {
                sent++;
            }
            else {
                send_waits++;
            }
        }
        rounds++;
        polled += s_poll(kv, m, sent, &first_open,
                         rounds % P_FULL_EVERY == 0 ? P_MARKERS_MAX : P_OLDEST_POLLED, prefix,
                         topic);
        if (sent == total && send_phase_cmds == 0) {
            send_phase_cmds = esc_kv_commands(kv);
        }
        if (sent == total && first_open >= total) {
            break;
        }
        if (now > deadline) {
            break;
        }
        s_sleep_s(poll_s);
    }
    /* Last full look, then the report. */
    polled += s_poll(kv, m, sent, &first_open, P_MARKERS_MAX, prefix, topic);
    lat = esc_calloc(total, sizeof(*lat));
    for (i = 0; i < sent; i++) {
        if (m[i].seen > 0) {
            lat[seen++] = (m[i].seen - m[i].sent) * 1000.0;
        }
    }
    qsort(lat, seen, sizeof(*lat), s_cmp_double);
    f = fopen(out_path, "w");
    if (f == NULL) {
        fprintf(stderr, "bench_probe: cannot write %s\n", out_path);
        return 1;
    }
    fprintf(f,
            "{\"probe\": \"intake_to_redis\", \"rate\": %.2f, \"duration_s\": %.1f, "
            "\"poll_ms\": %.1f, \"sent\": %zu, \"seen\": %zu, \"lost_or_late\": %zu, "
            "\"send_waits\": %llu, \"redis_commands\": %llu, \"redis_commands_send_phase\": %llu, "
            "\"redis_round_trips\": %llu, "
            "\"latency_ms\": {\"min\": %.1f, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, "
            "\"max\": %.1f}, \"series\": [",
            rate, duration, poll_s * 1000.0, sent, seen, sent - seen,
            (unsigned long long)send_waits, (unsigned long long)esc_kv_commands(kv),
            (unsigned long long)(send_phase_cmds ? send_phase_cmds : esc_kv_commands(kv)),
            (unsigned long long)esc_kv_round_trips(kv), seen ? lat[0] : 0.0,
            s_pct(lat, seen, 50), s_pct(lat, seen, 90), s_pct(lat, seen, 99),
            seen ? lat[seen - 1] : 0.0);
    for (i = 0; i < sent; i++) {
        fprintf(f, "%s[%.3f, %.1f]", i ? ", " : "", m[i].sent - t0,
                m[i].seen > 0 ? (m[i].seen - m[i].sent) * 1000.0 : -1.0);
    }
    fprintf(f, "]}\n");
    fclose(f);
    fprintf(stderr, "bench_probe: sent=%zu seen=%zu p50=%.1f ms p99=%.1f ms polls=%llu\n", sent,
            seen, s_pct(lat, seen, 50), s_pct(lat, seen, 99), (unsigned long long)polled);
    esc_free(lat);
    esc_free(m);
    esc_bus_destroy(&bus, 1000);
    esc_bus_ctx_term();
    esc_kv_destroy(&kv);
    return seen == sent ? 0 : 1;
}
