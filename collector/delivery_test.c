#define ESC_LOG_MODULE "test"
/* Component tests of the delivery journal in the real escucha-collector binary (COL_TEST_BIN;
 * docs/delivery.md). The test plays the broker on both sides: a PULL socket on bus.collect
 * receives the posts, a PUB socket on bus.ack_pub sends acks the way the broker republishes the
 * aggregators' acks. Covered: every post carries "<collector id>:<seq>" with consecutive
 * numbers; --once ends only once everything is acknowledged (acks for another collector and
 * garbage frames are ignored); a collector killed with SIGKILL sends exactly its unacknowledged
 * posts again at the next start; a post overtaken by acknowledged ones is sent again, byte for
 * byte, after redelivery_ms; a full journal stops the sources (backpressure) until acks come;
 * a journal without bus.ack_pub is a config error. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "escucha/esc_ack.h"
#include "escucha/esc_bus.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#ifndef COL_TEST_BIN
#error "COL_TEST_BIN must name the escucha-collector binary"
#endif

#define T0_MS INT64_C(1791000000000) /* 2026-10-03, well in the past */
#define WAIT_MS 20000
#define MAX_POSTS 400

struct env {
    char dir[128];
    char posts[192];   /* the jsonl file */
    char cfg[192];
    char journal[192]; /* collector.journal_dir */
    char err[192];     /* the child's stderr */
    esc_bus_t *pull;   /* bus.collect */
    esc_bus_t *pub;    /* bus.ack_pub */
    pid_t pid;
    /* what arrived: message bytes by post index (the last copy), and how often */
    char *msg[MAX_POSTS];
    size_t msg_len[MAX_POSTS];
    int copies[MAX_POSTS];
    char id[ESC_ACK_ID_MAX + 1]; /* the collector id seen in ack_ref */
    uint64_t seq[MAX_POSTS];
};

static void
s_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

static int
s_setup(void **state)
{
    struct env *e = esc_calloc(1, sizeof(*e));
    const char *tmp = getenv("TMPDIR");

    snprintf(e->dir, sizeof(e->dir), "%s/col_dlv_XXXXXX",
             tmp != NULL && strlen(tmp) < 64 ? tmp : "/tmp");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->posts, sizeof(e->posts), "%s/posts.jsonl", e->dir);
    snprintf(e->cfg, sizeof(e->cfg), "%s/escucha.json", e->dir);
    snprintf(e->journal, sizeof(e->journal), "%s/journal", e->dir);
    snprintf(e->err, sizeof(e->err), "%s/stderr.txt", e->dir);
    e->pull = esc_bus_new(ESC_BUS_PULL, "tcp://127.0.0.1:*", true, 1000);
    e->pub = esc_bus_new(ESC_BUS_PUB, "tcp://127.0.0.1:*", true, 1000);
    assert_non_null(e->pull);
    assert_non_null(e->pub);
    *state = e;
    return 0;
}

static void
s_rm_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    char p[400];

    for (de = d != NULL ? readdir(d) : NULL; de != NULL; de = readdir(d)) {
        if (de->d_name[0] != '.') {
            snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
            if (unlink(p) != 0) {
                s_rm_dir(p);
            }
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    rmdir(path);
}

static void s_print_log(const struct env *e);

static int
s_teardown(void **state)
{
    struct env *e = *state;
    size_t i;

    if (e->pid > 0) {
        kill(e->pid, SIGKILL);
        waitpid(e->pid, NULL, 0);
        s_print_log(e); /* the test failed while it ran */
    }
    esc_bus_destroy(&e->pull, 0);
    esc_bus_destroy(&e->pub, 0);
    for (i = 0; i < MAX_POSTS; i++) {
        esc_free(e->msg[i]);
    }
    s_rm_dir(e->dir);
    esc_free(e);
    return 0;
}

static void
s_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

/* posts first..first+n-1 (ids d0000...) into the jsonl file */
static void
s_write_posts(struct env *e, int first, int n)
{
    FILE *f = fopen(e->posts, "w");
    int i;

    assert_non_null(f);
    for (i = first; i < first + n; i++) {
        fprintf(f,
                "{\"id\":\"d%04d\",\"platform\":\"mastodon\",\"text\":\"post %d del congreso\","
                "\"created_at\":%lld}\n",
                i, i, (long long)(T0_MS + (int64_t)i * 1000));
    }
    assert_int_equal(fclose(f), 0);
}

static void
s_write_config(struct env *e, const char *collector_extra, int with_ack_pub)
{
    char text[3072];
    char ack_pub[300];

    snprintf(ack_pub, sizeof(ack_pub), ", \"ack_pub\": \"%s\"", esc_bus_endpoint(e->pub));
    snprintf(text, sizeof(text),
             "{\n"
             "  \"bus\": { \"collect\": \"%s\"%s, \"hwm\": 1000 },\n"
             "  \"sources\": [ { \"name\": \"muestra\", \"type\": \"jsonl\",\n"
             "                \"path\": \"%s\" } ],\n"
             "  \"teams\": [ { \"id\": \"gob\", \"topics\": [\n"
             "    { \"id\": \"congreso\", \"keywords\": [\"congreso\"] } ] } ],\n"
             "  \"collector\": { \"journal_dir\": \"%s\", \"grace_ms\": 2000%s }\n"
             "}\n",
             esc_bus_endpoint(e->pull), with_ack_pub ? ack_pub : "", e->posts, e->journal,
             collector_extra);
    s_write_text(e->cfg, text);
}

static void
s_spawn(struct env *e, int once)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        int err = open(e->err, O_WRONLY | O_CREAT | O_APPEND, 0600);
        char *argv[7];

        if (err < 0 || dup2(err, 2) < 0) {
            _exit(127);
        }
        argv[0] = esc_strdup(COL_TEST_BIN);
        argv[1] = esc_strdup("--config");
        argv[2] = esc_strdup(e->cfg);
        argv[3] = esc_strdup("--log-level");
        argv[4] = esc_strdup("debug");
        argv[5] = once ? esc_strdup("--once") : NULL;
        argv[6] = NULL;
        execv(COL_TEST_BIN, argv);
        _exit(127);
    }
    e->pid = pid;
}

static char *
s_read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = esc_calloc(1, 512 * 1024);
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, 512 * 1024 - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

#define S_FAST ", \"redelivery_ms\": 300, \"redelivery_max_ms\": 600"

/* Collects what arrives for up to ms; returns the number of posts. */
static int
s_drain(struct env *e, long ms)
{
    int64_t end = esc_mono_ms() + ms;
    int n = 0;

    for (;;) {
        zmq_pollitem_t it = { esc_bus_zsock(e->pull), 0, ZMQ_POLLIN, 0 };
        int64_t left = end - esc_mono_ms();
        struct esc_post p;
        struct esc_error err;
        enum esc_msg_type type;
        char id[ESC_ACK_ID_MAX + 1];
        struct esc_batch_iter bit;
        const void *buf;
        const void *msg;
        size_t len;
        size_t mlen;
        uint64_t seq;
        int64_t idx;

        if (left <= 0 || zmq_poll(&it, 1, (long)left) <= 0) {
            return n;
        }
        assert_int_equal(esc_bus_recv(e->pull, &buf, &len, ESC_BUS_DONTWAIT), ESC_OK);
        /* one post, or a batch of them (re-sends travel alone) */
        assert_int_equal(esc_batch_open(&bit, buf, len, &err), ESC_OK);
        while (esc_batch_next(&bit, &msg, &mlen, &err) != ESC_CLOSED) {
            if (esc_post_decode(msg, mlen, &p, &type, &err) != ESC_OK) {
                fail_msg("undecodable message: %s", err.text);
            }
            assert_non_null(p.ack_ref);
            assert_int_equal(esc_ack_ref_parse(p.ack_ref, id, sizeof(id), &seq), 0);
            if (e->id[0] == '\0') {
                esc_strlcpy(e->id, id, sizeof(e->id));
            }
            assert_string_equal(id, e->id); /* one collector, one id, also across restarts */
            assert_int_equal(esc_parse_i64(p.id + 1, 0, MAX_POSTS - 1, &idx), 0); /* "d%04d" */
            if (e->copies[idx] > 0 && e->seq[idx] == seq) {
                /* a re-send of the same journal entry: the very same bytes */
                assert_int_equal(mlen, e->msg_len[idx]);
                assert_memory_equal(msg, e->msg[idx], mlen);
            }
            esc_free(e->msg[idx]);
            e->msg[idx] = esc_malloc(mlen);
            memcpy(e->msg[idx], msg, mlen);
            e->msg_len[idx] = mlen;
            e->seq[idx] = seq;
            e->copies[idx]++;
            esc_post_fini(&p);
            n++;
        }
    }
}

/* Publishes an ack for posts [from, to) (their last seqs), for collector id. */
static void
s_ack(struct env *e, const char *id, int from, int to)
{
    uint64_t seqs[MAX_POSTS];
    struct esc_ack a;
    size_t n = 0;
    size_t len;
    char *buf;
    int i;

    for (i = from; i < to; i++) {
        if (e->copies[i] > 0) {
            seqs[n++] = e->seq[i];
        }
    }
    assert_true(n > 0);
    esc_ack_init(&a);
    a.collector = esc_strdup(id);
    a.ts = esc_now_ms();
    esc_ack_set_seqs(&a, seqs, n);
    buf = esc_ack_encode(&a, &len);
    assert_int_equal(esc_bus_send(e->pub, buf, len, 0), ESC_OK);
    esc_free(buf);
    esc_ack_fini(&a);
}

static int
s_count(const struct env *e, int from, int to)
{
    int n = 0;
    int i;

    for (i = from; i < to; i++) {
        n += e->copies[i] > 0 ? 1 : 0;
    }
    return n;
}

/* Receives until posts [0, n) have all arrived at least once (fails after 10 s). */
static void
s_recv_all(struct env *e, int n)
{
    int64_t deadline = esc_mono_ms() + 10000;

    while (s_count(e, 0, n) < n) {
        assert_true(esc_mono_ms() < deadline);
        s_drain(e, 20);
    }
}

/* Waits for the collector to exit; returns its status (128+signal when killed). */
static int
s_wait(struct env *e, long ms)
{
    int64_t deadline = esc_mono_ms() + ms;
    int status = 0;

    for (;;) {
        pid_t r = waitpid(e->pid, &status, WNOHANG);

        if (r == e->pid) {
            break;
        }
        if (esc_mono_ms() > deadline) {
            return -1;
        }
        s_sleep_ms(20);
    }
    e->pid = 0;
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* Acks everything received until the collector (--once) exits; returns its status. */
static int
s_ack_until_exit(struct env *e, int n_posts)
{
    int64_t deadline = esc_mono_ms() + WAIT_MS;
    int status = -1;

    while (esc_mono_ms() < deadline) {
        s_drain(e, 100);
        if (s_count(e, 0, n_posts) > 0) {
            s_ack(e, e->id, 0, n_posts);
        }
        status = s_wait(e, 100);
        if (status >= 0) {
            return status;
        }
    }
    return -1;
}

static void
s_print_log(const struct env *e)
{
    char *log = s_read_text(e->err);

    fprintf(stderr, "--- collector stderr ---\n%s", log);
    esc_free(log);
}

/* ---------------------------------------------------------------------------------------------
 * Tests
 */

static void
test_delivery_once_waits_for_acks(void **state)
{
    struct env *e = *state;
    static const uint8_t garbage[] = { 0x85, 0xa2, 'i', 'd', 0xff };
    uint64_t lo = UINT64_MAX;
    int i;

    s_write_posts(e, 0, 200);
    s_write_config(e, S_FAST, 1);
    s_spawn(e, 1);
    s_recv_all(e, 200);
    for (i = 0; i < 200; i++) {
        lo = e->seq[i] < lo ? e->seq[i] : lo;
    }
    for (i = 0; i < 200; i++) {
        assert_int_equal(e->seq[i], lo + (uint64_t)i); /* numbered in file order */
    }
    /* acks for someone else and garbage change nothing; the collector keeps waiting */
    s_ack(e, "someone-else", 0, 200);
    assert_int_equal(esc_bus_send(e->pub, garbage, sizeof(garbage), 0), ESC_OK);
    assert_int_equal(s_wait(e, 700), -1);
    assert_int_equal(s_ack_until_exit(e, 200), 0);
    s_print_log(e);
}

static void
test_delivery_killed_collector_resends_unacked(void **state)
{
    struct env *e = *state;
    char path[300];
    struct stat sb;
    int64_t deadline;
    int i;

    s_write_posts(e, 0, 100);
    s_write_config(e, ", \"redelivery_ms\": 60000, \"redelivery_max_ms\": 60000", 1);
    s_spawn(e, 0);
    s_recv_all(e, 100);
    /* ack the first 60 until the collector has written them down (its .ack side file) */
    snprintf(path, sizeof(path), "%s/%020llu.ack", e->journal, (unsigned long long)e->seq[0]);
    deadline = esc_mono_ms() + 10000;
    while (stat(path, &sb) != 0 || sb.st_size < 16) {
        assert_true(esc_mono_ms() < deadline);
        s_ack(e, e->id, 0, 60);
        s_sleep_ms(50);
    }
    kill(e->pid, SIGKILL);
    assert_int_equal(s_wait(e, 5000), 128 + SIGKILL);
    memset(e->copies, 0, sizeof(e->copies));

    /* the next run has nothing new to read: what arrives is the journal's leftovers */
    s_write_posts(e, 0, 0);
    s_spawn(e, 1);
    s_drain(e, 1500);
    assert_int_equal(s_count(e, 0, 60), 0);
    assert_int_equal(s_count(e, 60, 100), 40);
    for (i = 60; i < 100; i++) {
        assert_int_equal(e->copies[i], 1);
    }
    assert_int_equal(s_ack_until_exit(e, 100), 0);
    s_print_log(e);
}

/* The fewest copies received of the posts numbered [lo, hi). */
static int
s_min_copies(const struct env *e, int lo, int hi)
{
    int min = e->copies[lo];
    int i;

    for (i = lo + 1; i < hi; i++) {
        min = e->copies[i] < min ? e->copies[i] : min;
    }
    return min;
}

static void
test_delivery_overtaken_post_sent_again(void **state)
{
    struct env *e = *state;
    int i;

    s_write_posts(e, 0, 10);
    s_write_config(e, ", \"redelivery_ms\": 1500, \"redelivery_max_ms\": 3000", 1);
    s_spawn(e, 1);
    s_recv_all(e, 10);
    /* 5..9 counted, 0..4 lost on the way: only those come again (same bytes, s_drain checks);
     * the ack is repeated, a SUB socket's subscription takes a moment to reach the PUB side */
    for (i = 0; i < 40 && s_min_copies(e, 0, 5) < 2; i++) {
        s_ack(e, e->id, 5, 10);
        s_drain(e, 200);
    }
    for (i = 0; i < 5; i++) {
        assert_true(e->copies[i] >= 2);
    }
    for (i = 5; i < 10; i++) {
        assert_int_equal(e->copies[i], 1);
    }
    assert_int_equal(s_ack_until_exit(e, 10), 0);
    s_print_log(e);
}

static void
test_delivery_full_journal_waits(void **state)
{
    struct env *e = *state;
    char *log;

    s_write_posts(e, 0, 300);
    s_write_config(e, S_FAST ", \"journal_max_entries\": 100", 1);
    s_spawn(e, 1);
    s_drain(e, 1500);
    assert_int_equal(s_count(e, 0, 300), 100); /* the sources stopped at the bound */
    assert_int_equal(s_ack_until_exit(e, 300), 0);
    assert_int_equal(s_count(e, 0, 300), 300);
    log = s_read_text(e->err);
    assert_non_null(strstr(log, "journal full, sources wait for acknowledgements"));
    esc_free(log);
}

static void
test_delivery_needs_ack_pub(void **state)
{
    struct env *e = *state;
    char *log;

    s_write_posts(e, 0, 1);
    s_write_config(e, S_FAST, 0);
    {
        pid_t pid = fork();
        int status = 0;

        assert_true(pid >= 0);
        if (pid == 0) {
            int err = open(e->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            char *argv[] = { esc_strdup(COL_TEST_BIN), esc_strdup("--config"),
                             esc_strdup(e->cfg), esc_strdup("--check-config"), NULL };

            if (err < 0 || dup2(err, 2) < 0) {
                _exit(127);
            }
            execv(COL_TEST_BIN, argv);
            _exit(127);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_int_equal(WEXITSTATUS(status), 2);
    }
    log = s_read_text(e->err);
    assert_non_null(strstr(log, "collector.journal_dir: a journal needs acknowledgements: set "
                                "bus.ack_pub"));
    esc_free(log);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivery_once_waits_for_acks, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_delivery_killed_collector_resends_unacked, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_delivery_overtaken_post_sent_again, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_delivery_full_journal_waits, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_delivery_needs_ack_pub, s_setup, s_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
