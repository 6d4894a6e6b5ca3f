#define ESC_LOG_MODULE "test"
/* Component test of the real escucha-collector binary (COL_TEST_BIN) with a platform
 * connector: the platform fixture serves five pages of a Mastodon hashtag timeline
 * (tests/data/platforms/mastodon_restart.json, the third page slow), a private redis-server
 * keeps the cursor and the dedupe keys, and the test plays the broker on a PULL socket. The
 * collector is killed with SIGKILL after two pages while it waits for the third; a new one
 * resumes from the stored cursor and delivers the rest: every post exactly once, nothing lost.
 * Its /metrics counts the posts it sent; a SIGTERM then stops it cleanly (exit 0) and the
 * token never reaches its log. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "testing.h"

#include "escucha/esc_bus.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#ifndef COL_TEST_BIN
#error "COL_TEST_BIN must name the escucha-collector binary"
#endif

#define N_POSTS 15
#define TOKEN "t0k3n-never-logged"

struct env {
    struct esc_testenv_redis redis;
    struct col_fixture fx;
    char dir[128];
    char cfg[192];
    char err[192];
    esc_bus_t *pull;
    pid_t child;           /* the running collector, 0 when none */
    int seen[N_POSTS + 1]; /* deliveries per post index */
    size_t got;
};

static int
s_setup(void **state)
{
    struct env *e = esc_calloc(1, sizeof(*e));
    const char *tmp = getenv("TMPDIR");
    char log[256];

    signal(SIGPIPE, SIG_IGN);
    snprintf(e->dir, sizeof(e->dir), "%s/col_conn_XXXXXX",
             tmp != NULL && strlen(tmp) < 64 ? tmp : "/tmp");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->cfg, sizeof(e->cfg), "%s/escucha.json", e->dir);
    snprintf(e->err, sizeof(e->err), "%s/stderr.txt", e->dir);
    snprintf(log, sizeof(log), "%s/requests.jsonl", e->dir);
    assert_int_equal(esc_testenv_redis_start(&e->redis, 0), 0);
    assert_int_equal(col_fixture_start(&e->fx, "tests/data/platforms/mastodon_restart.json", log),
                     0);
    e->pull = esc_bus_new(ESC_BUS_PULL, "tcp://127.0.0.1:*", true, 1000);
    assert_non_null(e->pull);
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct env *e = *state;

    if (e->child > 0) {
        /* a failed assertion left it running */
        kill(e->child, SIGKILL);
        waitpid(e->child, NULL, 0);
    }
    esc_bus_destroy(&e->pull, 0);
    col_fixture_stop(&e->fx);
    unlink(e->fx.log);
    esc_testenv_redis_stop(&e->redis);
    unlink(e->cfg);
    unlink(e->err);
    rmdir(e->dir);
    esc_free(e);
    return 0;
}

static void
s_write_config(struct env *e)
{
    FILE *f = fopen(e->cfg, "w");

    assert_non_null(f);
    fprintf(f,
            "{\n"
            "  \"redis\": { \"unix_socket\": \"%s\", \"prefix\": \"esc\" },\n"
            "  \"bus\": { \"collect\": \"%s\" },\n"
            "  \"sources\": [ { \"name\": \"masto\", \"type\": \"mastodon\",\n"
            "    \"instance\": \"%s\", \"tag\": \"rustlang\", \"limit\": 3,\n"
            "    \"since\": \"2026-09-21\", \"page_delay_ms\": 0, \"interval_s\": 1,\n"
            "    \"token_env\": \"COL_CONN_TEST_TOKEN\" } ],\n"
            "  \"teams\": [ { \"id\": \"t\", \"topics\": [ { \"id\": \"x\", \"keywords\": [\"x\"] "
            "} ] } ],\n"
            "  \"collector\": { \"grace_ms\": 2000, \"metrics_listen\": \"127.0.0.1:0\" }\n"
            "}\n",
            e->redis.sock, esc_bus_endpoint(e->pull), e->fx.base);
    assert_int_equal(fclose(f), 0);
}

static pid_t
s_spawn(struct env *e)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        int err = open(e->err, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int null = open("/dev/null", O_WRONLY);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (err < 0 || null < 0 || dup2(err, 2) < 0 || dup2(null, 1) < 0) {
            _exit(127);
        }
        setenv("COL_CONN_TEST_TOKEN", TOKEN, 1);
        execl(COL_TEST_BIN, COL_TEST_BIN, "--config", e->cfg, (char *)NULL);
        _exit(127);
    }
    e->child = pid;
    return pid;
}

/* Receives posts until `until` distinct ones arrived in total or ms passed. */
static void
s_receive(struct env *e, size_t until, int ms)
{
    int64_t deadline = esc_mono_ms() + ms;
    zmq_pollitem_t it = { esc_bus_zsock(e->pull), 0, ZMQ_POLLIN, 0 };
    struct esc_post p;
    struct esc_error err;
    struct esc_batch_iter bit;
    const void *buf;
    const void *msg;
    size_t len;
    size_t mlen;
    long long i;

    while (e->got < until && esc_mono_ms() < deadline) {
        if (zmq_poll(&it, 1, 100) <= 0) {
            continue;
        }
        assert_int_equal(esc_bus_recv(e->pull, &buf, &len, ESC_BUS_DONTWAIT), ESC_OK);
        /* one post, or a batch of them */
        assert_int_equal(esc_batch_open(&bit, buf, len, &err), ESC_OK);
        while (esc_batch_next(&bit, &msg, &mlen, &err) != ESC_CLOSED) {
            if (esc_post_decode(msg, mlen, &p, NULL, &err) != ESC_OK) {
                fail_msg("undecodable post: %s", err.text);
            }
            i = strtoll(p.id, NULL, 10) - 113900000000000000LL;
            assert_true(i >= 1 && i <= N_POSTS);
            assert_string_equal(p.source, "masto");
            assert_string_equal(p.platform, "mastodon");
            e->seen[i]++;
            if (e->seen[i] == 1) {
                e->got++;
            }
            esc_post_fini(&p);
        }
    }
}

static int
s_reap(pid_t pid, int ms)
{
    int64_t deadline = esc_mono_ms() + ms;
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    int status;

    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (esc_mono_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        nanosleep(&ts, NULL);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *
s_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = esc_calloc(1, 1 << 20);

    if (f != NULL) {
        buf[fread(buf, 1, (1 << 20) - 1, f)] = '\0';
        fclose(f);
    }
    return buf;
}

/* The value of the series `name` (exact, labels included) in an exposition text, -1 when
 * absent. */
static double
s_series(const char *body, const char *name)
{
    size_t n = strlen(name);
    const char *p;

    for (p = strstr(body, name); p != NULL; p = strstr(p + 1, name)) {
        if ((p == body || p[-1] == '\n') && p[n] == ' ') {
            return strtod(p + n + 1, NULL);
        }
    }
    return -1;
}

/* Reads the port from the last "metrics listening" line of the log and checks /metrics. */
static void
s_check_metrics(struct env *e)
{
    char *log = s_slurp(e->err);
    const char *p = log;
    const char *last = NULL;
    const char *body;
    char url[96];
    col_net_t *net;
    col_req_t *req;
    int64_t deadline;
    long port;
    double requests;

    for (p = strstr(p, "metrics listening addr=127.0.0.1:"); p != NULL;
         p = strstr(p + 1, "metrics listening addr=127.0.0.1:")) {
        last = p;
    }
    assert_non_null(last);
    port = strtol(last + strlen("metrics listening addr=127.0.0.1:"), NULL, 10);
    esc_free(log);
    assert_true(port > 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%ld/metrics", port);
    net = col_net_new();
    req = col_req_new(url);
    col_net_start(net, req, NULL);
    deadline = esc_mono_ms() + 5000;
    while (!col_req_done(req) && esc_mono_ms() < deadline) {
        col_net_wait(net, -1, 100);
    }
    assert_true(col_req_done(req));
    assert_int_equal(col_req_status(req), 200);
    body = col_req_body(req, NULL);
    assert_non_null(strstr(body, "escucha_collector_posts_total{source=\"masto\","
                                 "type=\"mastodon\"} 9"));
    assert_non_null(strstr(body, "escucha_collector_errors_total{source=\"masto\","
                                 "type=\"mastodon\"} 0"));
    /* every request of the source was timed: the histogram moved with the traffic */
    requests = s_series(body, "escucha_collector_requests_total{source=\"masto\","
                              "type=\"mastodon\"}");
    assert_true(requests >= 1);
    assert_true(s_series(body, "escucha_collector_fetch_duration_seconds_count{source=\"masto\","
                               "type=\"mastodon\"}") == requests);
    assert_true(s_series(body, "escucha_collector_fetch_duration_seconds_bucket{source=\"masto\","
                               "type=\"mastodon\",le=\"+Inf\"}") == requests);
    assert_true(s_series(body, "escucha_collector_fetch_duration_seconds_sum{source=\"masto\","
                               "type=\"mastodon\"}") >= 0);
    assert_true(s_series(body, "escucha_healthy") == 1);
    col_req_destroy(&req);
    col_net_destroy(&net);
}

static void
test_connector_binary_killed_resumes_from_cursor(void **state)
{
    struct env *e = *state;
    json_t *reqs;
    size_t before;
    char *log;
    pid_t pid;
    int i;

    s_write_config(e);
    pid = s_spawn(e);
    s_receive(e, 6, 15000);
    assert_int_equal(e->got, 6);
    /* It now waits 1.5 s for the third page (its cursor for the second was written right after
     * the second page's posts were sent): kill it hard. */
    s_receive(e, 7, 300);
    kill(pid, SIGKILL);
    assert_int_equal(s_reap(pid, 5000), 128 + SIGKILL);
    e->child = 0;
    s_receive(e, 7, 300);
    assert_int_equal(e->got, 6);
    before = col_fixture_count(&e->fx, NULL);

    pid = s_spawn(e);
    s_receive(e, N_POSTS, 20000);
    assert_int_equal(e->got, N_POSTS);
    s_receive(e, N_POSTS + 1, 1500); /* nothing more, in particular no repeat */
    for (i = 1; i <= N_POSTS; i++) {
        if (e->seen[i] != 1) {
            fail_msg("post %d delivered %d times", i, e->seen[i]);
        }
    }
    /* The new process started from the stored cursor, not from the backfill date. */
    reqs = col_fixture_requests(&e->fx);
    assert_true(json_array_size(reqs) > before);
    assert_string_equal(col_fixture_query(reqs, before, "min_id"), "113900000000000006");
    json_decref(reqs);

    /* The second process's /metrics counts what it sent per source. */
    s_check_metrics(e);

    kill(pid, SIGTERM);
    assert_int_equal(s_reap(pid, 10000), 0);
    e->child = 0;
    log = s_slurp(e->err);
    assert_non_null(strstr(log, "resuming from stored cursor source=masto"));
    assert_null(strstr(log, TOKEN));
    esc_free(log);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connector_binary_killed_resumes_from_cursor,
                                        s_setup, s_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
