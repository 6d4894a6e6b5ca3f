#define ESC_LOG_MODULE "test"
/* Component tests of the real escucha-collector binary (path in COL_TEST_BIN). The test plays
 * the broker: it binds a PULL socket on tcp://127.0.0.1:*, writes a config pointing bus.collect
 * at the resolved endpoint, runs the collector and decodes everything it receives. Covered:
 * --once delivers every good post in order with its fields and exits 0 (with a tiny high-water
 * mark, so backpressure is exercised); bad lines are reported with their line numbers; SIGTERM
 * drains and exits 0; a broker that never answers makes it exit 1 after the grace period; the
 * config checks and the informational flags. */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#ifndef COL_TEST_BIN
#error "COL_TEST_BIN must name the escucha-collector binary"
#endif

#define T0_MS INT64_C(1794837780000) /* 2026-11-16T14:03:00Z */
#define WAIT_MS 20000                /* longest a collector run may take in these tests */

struct env {
    char dir[128];
    char posts[192]; /* the jsonl file */
    char cfg[192];   /* the config file */
    char out[192];   /* the child's stdout */
    char err[192];   /* the child's stderr */
    esc_bus_t *pull; /* the stand-in broker */
    char *frame;     /* the last frame received (a batch of posts, or one); owned */
    struct esc_batch_iter posts_left; /* what of it s_recv_post has not handed out yet */
};

static int
s_setup(void **state)
{
    struct env *e = esc_calloc(1, sizeof(*e));
    const char *tmp = getenv("TMPDIR");

    snprintf(e->dir, sizeof(e->dir), "%s/col_svc_XXXXXX",
             tmp != NULL && strlen(tmp) < 64 ? tmp : "/tmp");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->posts, sizeof(e->posts), "%s/posts.jsonl", e->dir);
    snprintf(e->cfg, sizeof(e->cfg), "%s/escucha.json", e->dir);
    snprintf(e->out, sizeof(e->out), "%s/stdout.txt", e->dir);
    snprintf(e->err, sizeof(e->err), "%s/stderr.txt", e->dir);
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct env *e = *state;

    esc_bus_destroy(&e->pull, 0);
    esc_free(e->frame);
    unlink(e->posts);
    unlink(e->cfg);
    unlink(e->out);
    unlink(e->err);
    rmdir(e->dir);
    esc_free(e);
    return 0;
}

/* Binds the stand-in broker and returns its resolved endpoint (borrowed). */
static const char *
s_bind(struct env *e, int hwm)
{
    e->pull = esc_bus_new(ESC_BUS_PULL, "tcp://127.0.0.1:*", true, hwm);
    assert_non_null(e->pull);
    assert_null(strstr(esc_bus_endpoint(e->pull), ":*"));
    return esc_bus_endpoint(e->pull);
}

static void
s_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static char *
s_read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = esc_calloc(1, 256 * 1024);
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, 256 * 1024 - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Writes the config: bus.collect = endpoint, one jsonl source "muestra" on e->posts plus
 * source_extra (",\"follow\":true" or ""), and the given collector section. */
static void
s_write_config(struct env *e, const char *endpoint, int hwm, const char *source_extra,
               const char *collector)
{
    char text[2048];

    snprintf(text, sizeof(text),
             "{\n"
             "  \"deployment\": \"test\",\n"
             "  \"bus\": { \"collect\": \"%s\", \"hwm\": %d },\n"
             "  \"sources\": [ { \"name\": \"muestra\", \"type\": \"jsonl\",\n"
             "                \"path\": \"%s\"%s } ],\n"
             "  \"teams\": [ { \"id\": \"gobernanza\", \"topics\": [\n"
             "    { \"id\": \"congreso\", \"keywords\": [\"congreso\"] } ] } ],\n"
             "  \"collector\": %s\n"
             "}\n",
             endpoint, hwm, e->posts, source_extra, collector);
    s_write_text(e->cfg, text);
}

/* One post line; i selects the id, the time and the counts. */
static void
s_post_line(char *out, size_t outsz, int i)
{
    char when[32];

    esc_time_fmt_iso8601(T0_MS + (int64_t)i * 1000, when, sizeof(when));
    snprintf(out, outsz,
             "{\"id\":\"s%04d\",\"platform\":\"%s\","
             "\"author\":{\"handle\":\"@ana%d@mastodon.social\","
             "\"name\":\"Ana Mar\xc3\xad\x61\",\"followers\":%d},\"text\":\"Debate en el Congreso "
             "\xf0\x9f\x8e\x89 a\xc3\xb1o %d #CongresoPer\xc3\xba\",\"lang\":\"es\","
             "\"url\":\"https://example.org/p/%d\",\"created_at\":\"%s\",\"likes\":%d,"
             "\"reposts\":%d,\"replies\":%d,\"hashtags\":[\"CongresoPer\xc3\xba\"],"
             "\"mentions\":[\"onpe\"]}\n",
             i, i % 2 == 0 ? "mastodon" : "bluesky", i % 7, 100 + i, i, i, when, i % 5, i % 3,
             i % 2);
}

/* Writes n good posts, with a bad JSON line after the 50th and a line without created_at after
 * the 100th (file lines 51 and 102) when n > 100. */
static void
s_write_posts(struct env *e, int n, int with_bad)
{
    FILE *f = fopen(e->posts, "w");
    char line[1024];
    int i;

    assert_non_null(f);
    for (i = 0; i < n; i++) {
        if (with_bad && i == 50) {
            fputs("{\"id\":\"broken\",\n", f);
        }
        if (with_bad && i == 100) {
            fputs("{\"id\":\"nodate\",\"platform\":\"rss\",\"text\":\"sin fecha\"}\n", f);
        }
        s_post_line(line, sizeof(line), i);
        fputs(line, f);
    }
    assert_int_equal(fclose(f), 0);
}

/* Starts the collector with args (NULL-terminated), stdout and stderr into files. */
static pid_t
s_spawn(struct env *e, const char *const *args)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child only copies its arguments (execv wants them writable) and execs. */
        char *argv[16];
        size_t n = 0;
        int out = open(e->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(e->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
            _exit(127);
        }
        argv[n++] = esc_strdup(COL_TEST_BIN);
        while (args[n - 1] != NULL && n < ESC_ARRAY_LEN(argv) - 1) {
            argv[n] = esc_strdup(args[n - 1]);
            n++;
        }
        argv[n] = NULL;
        execv(COL_TEST_BIN, argv);
        _exit(127);
    }
    return pid;
}

/* Waits for pid (killing it after WAIT_MS) and returns its exit status; echoes its stderr so a
 * failing test shows the collector's log. */
static int
s_wait(struct env *e, pid_t pid)
{
    int64_t deadline = esc_mono_ms() + WAIT_MS;
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    char *log;
    int status;
    pid_t r;

    for (;;) {
        r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            break;
        }
        assert_int_equal(r, 0);
        if (esc_mono_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("escucha-collector did not exit within %d ms", WAIT_MS);
        }
        nanosleep(&ts, NULL);
    }
    log = s_read_text(e->err);
    fprintf(stderr, "--- collector stderr ---\n%s", log);
    esc_free(log);
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

static int
s_run(struct env *e, const char *const *args)
{
    return s_wait(e, s_spawn(e, args));
}

/* Receives one post within 10 s and decodes it into p (caller fini's it). The collector sends
 * several posts per frame: they are handed out one by one. */
static void
s_recv_post(struct env *e, struct esc_post *p)
{
    zmq_pollitem_t it = { esc_bus_zsock(e->pull), 0, ZMQ_POLLIN, 0 };
    struct esc_error err;
    enum esc_msg_type type;
    const void *buf;
    const void *msg;
    size_t len;
    size_t mlen;
    esc_rc rc;

    for (;;) {
        if (e->frame != NULL) {
            rc = esc_batch_next(&e->posts_left, &msg, &mlen, &err);
            if (rc == ESC_OK) {
                break;
            }
            assert_int_equal(rc, ESC_CLOSED);
            ESC_FREE(e->frame);
        }
        assert_int_equal(zmq_poll(&it, 1, 10000), 1);
        assert_int_equal(esc_bus_recv(e->pull, &buf, &len, ESC_BUS_DONTWAIT), ESC_OK);
        e->frame = esc_malloc(len > 0 ? len : 1);
        memcpy(e->frame, buf, len);
        assert_int_equal(esc_batch_open(&e->posts_left, e->frame, len, &err), ESC_OK);
    }
    if (esc_post_decode(msg, mlen, p, &type, &err) != ESC_OK) {
        fail_msg("undecodable message: %s", err.text);
    }
    assert_int_equal(type, ESC_MSG_POST);
}

static void
s_expect_post(const struct esc_post *p, int i, int64_t t_start)
{
    char want[64];

    snprintf(want, sizeof(want), "s%04d", i);
    assert_string_equal(p->id, want);
    assert_string_equal(p->platform, i % 2 == 0 ? "mastodon" : "bluesky");
    assert_string_equal(p->source, "muestra");
    snprintf(want, sizeof(want), "@ana%d@mastodon.social", i % 7);
    assert_string_equal(p->author, want);
    assert_string_equal(p->author_name, "Ana Mar\xc3\xad\x61");
    assert_int_equal(p->followers, 100 + i);
    snprintf(want, sizeof(want), "Debate en el Congreso \xf0\x9f\x8e\x89 a\xc3\xb1o %d "
             "#CongresoPer\xc3\xba", i);
    assert_string_equal(p->text, want);
    assert_string_equal(p->lang, "es");
    snprintf(want, sizeof(want), "https://example.org/p/%d", i);
    assert_string_equal(p->url, want);
    assert_int_equal(p->created_at, T0_MS + (int64_t)i * 1000);
    assert_true(p->ingested_at >= t_start && p->ingested_at <= esc_now_ms());
    assert_int_equal(p->likes, i % 5);
    assert_int_equal(p->reposts, i % 3);
    assert_int_equal(p->replies, i % 2);
    assert_int_equal(p->n_hashtags, 1);
    assert_string_equal(p->hashtags[0], "CongresoPer\xc3\xba");
    assert_int_equal(p->n_mentions, 1);
    assert_string_equal(p->mentions[0], "onpe");
    assert_int_equal(p->n_topics, 0); /* not classified */
}

static void
test_service_once_delivers_every_post_in_order(void **state)
{
    struct env *e = *state;
    const char *const args[] = { "--config", e->cfg, "--once", NULL };
    const void *buf;
    size_t len;
    int64_t t_start = esc_now_ms();
    pid_t pid;
    char *log;
    int i;

    s_write_posts(e, 300, 1);
    s_write_config(e, s_bind(e, 10), 10, "", "{ \"grace_ms\": 5000 }");
    pid = s_spawn(e, args);
    for (i = 0; i < 300; i++) {
        struct esc_post p;

        if (i % 100 == 0) {
            /* Fall behind for a moment so the collector's queue fills and it has to wait. */
            struct timespec ts = { 0, 50 * 1000 * 1000 };

            nanosleep(&ts, NULL);
        }
        s_recv_post(e, &p);
        s_expect_post(&p, i, t_start);
        esc_post_fini(&p);
    }
    assert_int_equal(s_wait(e, pid), 0);
    assert_int_equal(esc_bus_recv(e->pull, &buf, &len, ESC_BUS_DONTWAIT), ESC_RETRY);
    assert_int_equal(esc_batch_next(&e->posts_left, &buf, &len, NULL), ESC_CLOSED);
    log = s_read_text(e->err);
    assert_non_null(strstr(log, "skipped bad line source=muestra line=51 reason=\"invalid JSON"));
    assert_non_null(strstr(log, "skipped bad line source=muestra line=102 "
                                "reason=\"field 'created_at': missing\""));
    assert_non_null(strstr(log, "stopped sent=300 skipped=2 errors=0"));
    /* Post bodies are never logged above debug. */
    assert_null(strstr(log, "Debate en el Congreso"));
    esc_free(log);
}

static void
test_service_sigterm_drains_and_exits_0(void **state)
{
    struct env *e = *state;
    const char *const args[] = { "--config", e->cfg, NULL };
    pid_t pid;
    char *log;
    int i;

    s_write_posts(e, 40, 0);
    s_write_config(e, s_bind(e, 1000), 1000, ", \"follow\": true", "{}");
    pid = s_spawn(e, args);
    for (i = 0; i < 40; i++) {
        struct esc_post p;

        s_recv_post(e, &p);
        esc_post_fini(&p);
    }
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(s_wait(e, pid), 0);
    log = s_read_text(e->err);
    assert_non_null(strstr(log, "draining signal=TERM"));
    assert_non_null(strstr(log, "stopped sent=40 skipped=0 errors=0"));
    esc_free(log);
}

static void
test_service_undelivered_posts_exit_1(void **state)
{
    struct env *e = *state;
    const char *const args[] = { "--config", e->cfg, "--once", NULL };
    char endpoint[256];
    int64_t t0;
    char *log;

    /* Nobody ever binds this endpoint: the posts queue up and cannot leave. */
    snprintf(endpoint, sizeof(endpoint), "ipc://%s/nobody.sock", e->dir);
    s_write_posts(e, 20, 0);
    s_write_config(e, endpoint, 1000, "", "{ \"grace_ms\": 300 }");
    t0 = esc_mono_ms();
    assert_int_equal(s_run(e, args), 1);
    assert_true(esc_mono_ms() - t0 >= 300);
    log = s_read_text(e->err);
    assert_non_null(strstr(log, "bus not drained within the grace period"));
    assert_non_null(strstr(log, "stopped sent=20"));
    esc_free(log);
}

static void
test_service_missing_file_exits_1(void **state)
{
    struct env *e = *state;
    const char *const args[] = { "--config", e->cfg, "--once", NULL };
    char *log;

    s_write_config(e, s_bind(e, 1000), 1000, "", "{ \"grace_ms\": 1000 }");
    assert_int_equal(s_run(e, args), 1);
    log = s_read_text(e->err);
    assert_non_null(strstr(log, "cannot open file source=muestra"));
    assert_non_null(strstr(log, "stopped sent=0 skipped=0 errors=1"));
    esc_free(log);
}

static void
test_service_check_config(void **state)
{
    struct env *e = *state;
    const char *const args[] = { "--config", e->cfg, "--check-config", NULL };
    char want[512];
    char *text;

    s_write_config(e, "tcp://127.0.0.1:5550", 1000, ", \"rate\": 10", "{ \"grace_ms\": 100 }");
    assert_int_equal(s_run(e, args), 0);
    text = s_read_text(e->out);
    assert_string_equal(text, "config ok\n");
    esc_free(text);

    /* A source without its required path. */
    s_write_text(e->cfg, "{ \"sources\": [ { \"name\": \"muestra\", \"type\": \"jsonl\" } ],\n"
                         "  \"teams\": [ { \"id\": \"g\", \"topics\": [ { \"id\": \"c\", "
                         "\"keywords\": [\"c\"] } ] } ] }\n");
    assert_int_equal(s_run(e, args), 2);
    text = s_read_text(e->err);
    snprintf(want, sizeof(want), "escucha-collector: %s: sources.0.path: missing required key\n",
             e->cfg);
    assert_string_equal(text, want);
    esc_free(text);

    /* A bad value in the collector section. */
    s_write_config(e, "tcp://127.0.0.1:5550", 1000, "", "{ \"exit_when_done\": \"yes\" }");
    assert_int_equal(s_run(e, args), 2);
    text = s_read_text(e->err);
    assert_non_null(strstr(text, "collector.exit_when_done: expected true or false"));
    esc_free(text);

    /* A syntax error carries its line. */
    s_write_text(e->cfg, "{\n  \"deployment\": \"x\",\n  oops\n}\n");
    assert_int_equal(s_run(e, args), 2);
    text = s_read_text(e->err);
    snprintf(want, sizeof(want), "escucha-collector: %s:3: syntax error", e->cfg);
    assert_non_null(strstr(text, want));
    esc_free(text);
}

static void
test_service_informational_flags(void **state)
{
    struct env *e = *state;
    const char *const version[] = { "--version", NULL };
    const char *const help[] = { "--help", NULL };
    const char *const help_cfg[] = { "--help-config", NULL };
    const char *const dump[] = { "--config", e->cfg, "--dump-config", NULL };
    const char *const none[] = { NULL };
    const char *const level[] = { "--config", e->cfg, "--log-level", "loud", NULL };
    char *text;

    assert_int_equal(s_run(e, version), 0);
    text = s_read_text(e->out);
    assert_string_equal(text, "escucha-collector " ESC_VERSION "\n");
    esc_free(text);

    assert_int_equal(s_run(e, help), 0);
    text = s_read_text(e->out);
    assert_non_null(strstr(text, "--check-config"));
    assert_non_null(strstr(text, "--once"));
    esc_free(text);

    assert_int_equal(s_run(e, help_cfg), 0);
    text = s_read_text(e->out);
    assert_non_null(strstr(text, "collector.grace_ms"));
    assert_non_null(strstr(text, "sources.N.path"));
    esc_free(text);

    s_write_config(e, "tcp://127.0.0.1:5550", 1000, ", \"follow\": true", "{}");
    assert_int_equal(s_run(e, dump), 0);
    text = s_read_text(e->out);
    assert_non_null(strstr(text, "bus.collect = \"tcp://127.0.0.1:5550\"\n"));
    assert_non_null(strstr(text, "collector.grace_ms = 5000\n"));
    assert_non_null(strstr(text, "sources.0.follow = true\n"));
    esc_free(text);

    assert_int_equal(s_run(e, none), 2);
    text = s_read_text(e->err);
    assert_non_null(strstr(text, "--config FILE is required"));
    esc_free(text);

    assert_int_equal(s_run(e, level), 2);
    text = s_read_text(e->err);
    assert_non_null(strstr(text, "unknown level 'loud'"));
    esc_free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_service_once_delivers_every_post_in_order, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_service_sigterm_drains_and_exits_0, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_service_undelivered_posts_exit_1, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_service_missing_file_exits_1, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_service_check_config, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_service_informational_flags, s_setup, s_teardown),
    };
    int rc;

    esc_log_init("test", ESC_LOG_WARN);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    esc_bus_ctx_term();
    return rc;
}
