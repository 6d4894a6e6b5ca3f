#define ESC_LOG_MODULE "test"
/* Tests of the metrics registry and its HTTP server: the exposition text is exact for
 * counters, gauges and histograms (cumulative buckets, labels joined with le, +Inf, sum and
 * count), histograms count exactly under concurrent observers, families group their series,
 * and /metrics and /healthz answer over real HTTP on a free loopback port (fetched with
 * libcurl), with escucha_healthy following the health. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"

struct fetch {
    char buf[65536];
    size_t len;
};

static size_t
s_write(char *p, size_t size, size_t n, void *arg)
{
    struct fetch *f = arg;
    size_t len = size * n;

    if (f->len + len >= sizeof(f->buf)) {
        len = sizeof(f->buf) - 1 - f->len;
    }
    memcpy(f->buf + f->len, p, len);
    f->len += len;
    f->buf[f->len] = '\0';
    return size * n;
}

static long
s_get_host(const char *host, const char *path, struct fetch *f)
{
    char url[128];
    CURL *c = curl_easy_init();
    long code = 0;

    snprintf(url, sizeof(url), "http://%s:%d%s", host, esc_metrics_port(), path);
    f->len = 0;
    f->buf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_easy_cleanup(c);
    return code;
}

static long
s_get(const char *path, struct fetch *f)
{
    return s_get_host("127.0.0.1", path, f);
}

/* True when this machine can bind the IPv6 loopback (containers may have no IPv6). */
static int
s_have_ipv6(void)
{
    struct sockaddr_in6 a;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    int ok;

    if (fd < 0) {
        return 0;
    }
    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void
test_metrics_render_exact(void **state)
{
    static const double bounds[] = { 0.01, 0.1, 1 };
    esc_metric_t *in = esc_metrics_counter("escucha_test_in_total", "Posts in.", NULL);
    esc_metric_t *src_a = esc_metrics_counter("escucha_test_fetch_total", "Fetches.",
                                              "source=\"a\"");
    esc_metric_t *g = esc_metrics_gauge("escucha_test_backlog", "Backlog.", NULL);
    esc_metric_t *h = esc_metrics_histogram("escucha_test_latency_seconds", "Latency.", NULL,
                                            bounds, 3);
    esc_metric_t *src_b = esc_metrics_counter("escucha_test_fetch_total", "Fetches.",
                                              "source=\"b\"");
    char *text;

    assert_ptr_equal(in, esc_metrics_counter("escucha_test_in_total", "Posts in.", ""));
    esc_metric_add(in, 3);
    esc_metric_add(in, 2);
    esc_metric_add(src_a, 1);
    esc_metric_add(src_b, 7);
    esc_metric_set(g, 42.5);
    esc_metric_observe(h, 0.005);
    esc_metric_observe(h, 0.5);
    esc_metric_observe(h, 3);
    assert_int_equal(esc_metric_value(in), 5);
    text = esc_metrics_render();
    assert_non_null(strstr(text, "escucha_build_info{service=\"test\",version=\""));
    assert_non_null(strstr(text, "# TYPE escucha_test_in_total counter\nescucha_test_in_total 5\n"));
    assert_non_null(strstr(text, "# HELP escucha_test_fetch_total Fetches.\n"
                                 "# TYPE escucha_test_fetch_total counter\n"
                                 "escucha_test_fetch_total{source=\"a\"} 1\n"
                                 "escucha_test_fetch_total{source=\"b\"} 7\n"));
    assert_non_null(strstr(text, "escucha_test_backlog 42.5\n"));
    assert_non_null(strstr(text, "escucha_test_latency_seconds_bucket{le=\"0.01\"} 1\n"
                                 "escucha_test_latency_seconds_bucket{le=\"0.1\"} 1\n"
                                 "escucha_test_latency_seconds_bucket{le=\"1\"} 2\n"
                                 "escucha_test_latency_seconds_bucket{le=\"+Inf\"} 3\n"
                                 "escucha_test_latency_seconds_sum 3.505\n"
                                 "escucha_test_latency_seconds_count 3\n"));
    esc_free(text);
}

static void
test_metrics_http_endpoints(void **state)
{
    struct fetch *f = esc_malloc(sizeof(*f));
    esc_metric_t *in = esc_metrics_counter("escucha_test_in_total", "Posts in.", NULL);

    assert_true(esc_metrics_port() > 0);
    assert_int_equal(s_get("/metrics", f), 200);
    assert_non_null(strstr(f->buf, "escucha_test_in_total 5\n"));
    esc_metric_add(in, 1);
    assert_int_equal(s_get("/metrics", f), 200);
    assert_non_null(strstr(f->buf, "escucha_test_in_total 6\n"));
    assert_int_equal(s_get("/healthz", f), 200);
    assert_string_equal(f->buf, "ok\n");
    assert_int_equal(s_get("/metrics", f), 200);
    assert_non_null(strstr(f->buf, "# TYPE escucha_healthy gauge\nescucha_healthy 1\n"));
    esc_metrics_set_health(false, "redis unreachable");
    assert_int_equal(s_get("/healthz", f), 503);
    assert_string_equal(f->buf, "unhealthy: redis unreachable\n");
    assert_int_equal(s_get("/metrics", f), 200);
    assert_non_null(strstr(f->buf, "\nescucha_healthy 0\n"));
    /* healthy again: the reason a caller passes along is not shown (no "ok: <reason>") */
    esc_metrics_set_health(true, "redis unreachable");
    assert_int_equal(s_get("/healthz", f), 200);
    assert_string_equal(f->buf, "ok\n");
    esc_metrics_set_health(false, NULL);
    assert_int_equal(s_get("/healthz", f), 503);
    assert_string_equal(f->buf, "unhealthy: unknown reason\n");
    esc_metrics_set_health(true, NULL);
    assert_int_equal(s_get("/metrics", f), 200);
    assert_non_null(strstr(f->buf, "\nescucha_healthy 1\n"));
    assert_int_equal(s_get("/nope", f), 404);
    esc_free(f);
}

static void
test_metrics_histogram_labels_and_edges(void **state)
{
    static const double bounds[] = { 0.001, 0.01, 0.1 };
    esc_metric_t *h = esc_metrics_histogram("escucha_test_stage_seconds", "Stage time.",
                                            "stage=\"decode\"", bounds, 3);
    char *text;

    /* same name+labels: the same histogram, and the first bounds stay */
    assert_ptr_equal(h, esc_metrics_histogram("escucha_test_stage_seconds", "Stage time.",
                                              "stage=\"decode\"", bounds, 2));
    esc_metric_observe(h, 0.001);       /* on a bound: counted in that bucket */
    esc_metric_observe(h, -0.5);        /* below everything: first bucket */
    esc_metric_observe_n(h, 0.05, 3);   /* three at once */
    esc_metric_observe_n(h, 0.05, 0);   /* nothing */
    esc_metric_observe(h, NAN);         /* ignored */
    esc_metric_observe(h, 250);         /* above the last bound: only +Inf */
    assert_int_equal(esc_metric_value(h), 6);
    assert_true(fabs(esc_metric_sum(h) - (0.001 - 0.5 + 0.15 + 250)) < 1e-9);
    text = esc_metrics_render();
#define S_H "escucha_test_stage_seconds"
    assert_non_null(strstr(text, "# HELP " S_H " Stage time.\n"
                                 "# TYPE " S_H " histogram\n"
                                 S_H "_bucket{stage=\"decode\",le=\"0.001\"} 2\n"
                                 S_H "_bucket{stage=\"decode\",le=\"0.01\"} 2\n"
                                 S_H "_bucket{stage=\"decode\",le=\"0.1\"} 5\n"
                                 S_H "_bucket{stage=\"decode\",le=\"+Inf\"} 6\n"
                                 S_H "_sum{stage=\"decode\"} 249.651\n"
                                 S_H "_count{stage=\"decode\"} 6\n"));
#undef S_H
    esc_free(text);
}

#define S_THREADS 4
#define S_PER_THREAD 50000

static void *
s_observer(void *arg)
{
    esc_metric_t *h = arg;
    int i;

    for (i = 0; i < S_PER_THREAD; i++) {
        esc_metric_observe(h, (i % 2) == 0 ? 0.5 : 2.0);
    }
    return NULL;
}

static void
test_metrics_histogram_concurrent_observers(void **state)
{
    static const double bounds[] = { 1 };
    esc_metric_t *h = esc_metrics_histogram("escucha_test_parallel_seconds", "Parallel.", NULL,
                                            bounds, 1);
    pthread_t t[S_THREADS];
    double t0 = esc_metrics_clock();
    char *text;
    char want[200];
    int i;

    for (i = 0; i < S_THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, s_observer, h), 0);
    }
    for (i = 0; i < S_THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    assert_true(esc_metrics_clock() >= t0);
    assert_int_equal(esc_metric_value(h), S_THREADS * S_PER_THREAD);
    text = esc_metrics_render();
    snprintf(want, sizeof(want),
             "escucha_test_parallel_seconds_bucket{le=\"1\"} %d\n"
             "escucha_test_parallel_seconds_bucket{le=\"+Inf\"} %d\n"
             "escucha_test_parallel_seconds_sum %d\n"
             "escucha_test_parallel_seconds_count %d\n",
             S_THREADS * S_PER_THREAD / 2, S_THREADS * S_PER_THREAD,
             S_THREADS * S_PER_THREAD / 2 * 5 / 2, S_THREADS * S_PER_THREAD);
    assert_non_null(strstr(text, want));
    esc_free(text);
}

static void
test_metrics_label_escape_and_bad_listen(void **state)
{
    char out[64];

    assert_string_equal(esc_metrics_label_escape(out, sizeof(out), "a\"b\\c\nd"),
                        "a\\\"b\\\\c\\nd");
    assert_int_equal(esc_metrics_start("test", "nonsense"), -1);
    assert_int_equal(esc_metrics_start("test", "example.org:80"), -1);
}

/* The endpoint also listens on an IPv6 address ("[::1]:0"). Runs last: it moves the server. */
static void
test_metrics_ipv6_listen(void **state)
{
    struct fetch *f;

    if (!s_have_ipv6()) {
        skip();
    }
    f = esc_malloc(sizeof(*f));
    esc_metrics_shutdown();
    assert_int_equal(esc_metrics_start("test", "[::1]:0"), 0);
    assert_true(esc_metrics_port() > 0);
    assert_int_equal(s_get_host("[::1]", "/healthz", f), 200);
    assert_string_equal(f->buf, "ok\n");
    assert_int_equal(s_get_host("127.0.0.1", "/healthz", f), 0); /* not on IPv4 */
    esc_free(f);
}

static int
s_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return esc_metrics_start("test", "127.0.0.1:0");
}

static int
s_teardown(void **state)
{
    esc_metrics_shutdown();
    curl_global_cleanup();
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_render_exact),
        cmocka_unit_test(test_metrics_http_endpoints),
        cmocka_unit_test(test_metrics_histogram_labels_and_edges),
        cmocka_unit_test(test_metrics_histogram_concurrent_observers),
        cmocka_unit_test(test_metrics_label_escape_and_bad_listen),
        cmocka_unit_test(test_metrics_ipv6_listen),
    };

    esc_log_init("test", ESC_LOG_ERROR);
    esc_log_level_cur = -1;
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
