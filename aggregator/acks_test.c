#define ESC_LOG_MODULE "test"
/* Component tests of the acknowledgements of the real escucha-aggregator binary (AGG_BIN;
 * docs/delivery.md) against a private redis-server. The test plays the classifiers (PUSH to
 * bus.aggregate) and the broker's ack intake (PULL bound on bus.ack). Covered: after a flush,
 * one ack per collector names every post consumed, matched or not, duplicates and invalid posts
 * included, and when it arrives the posts are already counted in Redis; posts without an
 * ack_ref (a collector without a journal, the bench's probe) get no ack and a malformed ack_ref
 * is skipped; while Redis is down nothing is acknowledged, and once it is back everything is;
 * notes consumed while a flush runs wait for the next flush (in process). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "esc_testenv.h"
#include "escucha/esc_ack.h"
#include "escucha/esc_bus.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#include "acks.h"

#ifndef AGG_BIN
#error "AGG_BIN must name the escucha-aggregator binary"
#endif

#define T0_MS INT64_C(1791000000000) /* 2026-10-03 */

struct fix {
    struct esc_testenv_redis redis;
    char dir[256];
    char cfg_path[300];
    char agg_ep[64];   /* bus.aggregate, a free TCP port */
    esc_bus_t *acks;   /* PULL bound on bus.ack */
    esc_bus_t *push;   /* PUSH to the aggregator */
    esc_kv_t *kv;
    pid_t pid;
};

static void
s_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

static int
s_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0
        && getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

static int
s_setup(void **state)
{
    struct fix *f = esc_calloc(1, sizeof(*f));
    struct esc_kv_opts o;
    const char *tmp = getenv("TMPDIR");
    FILE *fp;

    snprintf(f->dir, sizeof(f->dir), "%s/agg-acks-XXXXXX",
             tmp != NULL && tmp[0] != '\0' && strlen(tmp) < 100 ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL || esc_testenv_redis_start(&f->redis, 0) != 0) {
        esc_free(f);
        return -1;
    }
    snprintf(f->cfg_path, sizeof(f->cfg_path), "%s/escucha.json", f->dir);
    snprintf(f->agg_ep, sizeof(f->agg_ep), "tcp://127.0.0.1:%d", s_free_port());
    f->acks = esc_bus_new(ESC_BUS_PULL, "tcp://127.0.0.1:*", true, 1000);
    esc_testenv_kv_opts(&f->redis, &o);
    f->kv = esc_kv_new(&o);
    fp = fopen(f->cfg_path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "{\n"
            "  \"redis\": { \"unix_socket\": \"%s\", \"prefix\": \"esc\", \"timeout_ms\": 500 },\n"
            "  \"bus\": { \"aggregate\": \"%s\", \"notify\": \"tcp://127.0.0.1:1\",\n"
            "           \"ack\": \"%s\" },\n"
            "  \"teams\": [ { \"id\": \"gob\", \"topics\": [\n"
            "    { \"id\": \"congreso\", \"keywords\": [\"congreso\"] } ] } ],\n"
            "  \"aggregator\": { \"flush_ms\": 100, \"grace_ms\": 3000, \"drain_quiet_ms\": 100 }\n"
            "}\n",
            f->redis.sock, f->agg_ep, esc_bus_endpoint(f->acks));
    fclose(fp);
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    struct fix *f = *state;
    char path[300];

    if (f->pid > 0) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
    }
    esc_bus_destroy(&f->push, 0);
    esc_bus_destroy(&f->acks, 0);
    esc_kv_destroy(&f->kv);
    esc_testenv_redis_stop(&f->redis);
    snprintf(path, sizeof(path), "%s/err.log", f->dir);
    if (getenv("AGG_TEST_SHOW_LOG") != NULL) {
        FILE *fp = fopen(path, "r");
        char line[1024];

        while (fp != NULL && fgets(line, sizeof(line), fp) != NULL) {
            fputs(line, stderr);
        }
        if (fp != NULL) {
            fclose(fp);
        }
    }
    unlink(path);
    unlink(f->cfg_path);
    rmdir(f->dir);
    esc_free(f);
    return 0;
}

static void
s_start(struct fix *f)
{
    char err[300];
    pid_t pid;

    snprintf(err, sizeof(err), "%s/err.log", f->dir);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int e = open(err, O_WRONLY | O_CREAT | O_APPEND, 0600);
        char *argv[] = { esc_strdup(AGG_BIN), esc_strdup("--config"), esc_strdup(f->cfg_path),
                         NULL };

        if (e < 0 || dup2(e, 2) < 0) {
            _exit(127);
        }
        execv(AGG_BIN, argv);
        _exit(127);
    }
    f->pid = pid;
    f->push = esc_bus_new(ESC_BUS_PUSH, f->agg_ep, false, 1000);
    assert_non_null(f->push);
}

/* Pushes a classified post; ref may be NULL; created_at <= 0 makes it invalid there. */
static void
s_push(struct fix *f, const char *id, const char *text, const char *ref, int64_t created_at)
{
    struct esc_post p;
    size_t len;
    char *buf;

    esc_post_init(&p);
    p.id = esc_strdup(id);
    p.platform = esc_strdup("mastodon");
    p.text = esc_strdup(text);
    p.created_at = created_at;
    p.ingested_at = T0_MS;
    p.ack_ref = ref != NULL ? esc_strdup(ref) : NULL;
    if (strstr(text, "congreso") != NULL) {
        esc_strlist_push(&p.topics, &p.n_topics, "gob/congreso");
    }
    buf = esc_post_encode(&p, 1, &len);
    assert_int_equal(esc_bus_send(f->push, buf, len, 0), ESC_OK);
    esc_free(buf);
    esc_post_fini(&p);
}

static long long
s_total(struct fix *f)
{
    struct esc_kv_val v;
    long long n = 0;

    if (esc_kv_cmd(f->kv, &v, "HGET esc:t:{gob/congreso} posts") != ESC_OK) {
        return -1;
    }
    if (v.type == ESC_KV_STR) {
        n = strtoll(v.str, NULL, 10);
    }
    esc_kv_val_fini(&v);
    return n;
}

/* Receives acks for up to ms, adding each acknowledged seq of collector `id` to got[] (seqs <
 * 64) and counting acks for other collectors in *other. Returns the number of messages. */
static int
s_recv_acks(struct fix *f, long ms, const char *id, int *got, int *other, long long *total_seen)
{
    int64_t end = esc_mono_ms() + ms;
    int n = 0;

    for (;;) {
        zmq_pollitem_t it = { esc_bus_zsock(f->acks), 0, ZMQ_POLLIN, 0 };
        int64_t left = end - esc_mono_ms();
        struct esc_ack a;
        struct esc_error err;
        const void *buf;
        size_t len;
        size_t i;
        uint64_t k;

        if (left <= 0 || zmq_poll(&it, 1, (long)left) <= 0) {
            return n;
        }
        assert_int_equal(esc_bus_recv(f->acks, &buf, &len, ESC_BUS_DONTWAIT), ESC_OK);
        if (esc_ack_decode(buf, len, &a, &err) != ESC_OK) {
            fail_msg("undecodable ack: %s", err.text);
        }
        if (total_seen != NULL) {
            *total_seen = s_total(f); /* what Redis holds when the ack arrives */
        }
        if (strcmp(a.collector, id) == 0) {
            for (i = 0; i < a.n_ranges; i++) {
                for (k = 0; k < a.ranges[i].n; k++) {
                    uint64_t s = a.ranges[i].first + k;

                    assert_true(s < 64);
                    got[s]++;
                }
            }
        }
        else {
            (*other)++;
        }
        esc_ack_fini(&a);
        n++;
    }
}

static void
test_acks_after_flush_for_every_post(void **state)
{
    struct fix *f = *state;
    int got[64];
    int other = 0;
    long long seen = -1;
    int i;

    memset(got, 0, sizeof(got));
    s_start(f);
    s_sleep_ms(300);
    s_push(f, "p1", "el congreso", "colA:1", T0_MS);
    s_push(f, "p2", "el congreso vota", "colA:2", T0_MS + 1000);
    s_push(f, "p3", "sin tema", "colA:3", T0_MS + 2000);            /* matches no topic */
    s_push(f, "p1", "el congreso", "colA:4", T0_MS);                /* a re-delivery */
    s_push(f, "p5", "el congreso", "colA:5", 0);                    /* invalid there */
    s_push(f, "p6", "el congreso", NULL, T0_MS + 3000);             /* no journal: no ack */
    s_push(f, "p7", "el congreso", "no colon here", T0_MS + 4000);  /* malformed: skipped */
    s_push(f, "p8", "el congreso", "colB:9", T0_MS + 5000);         /* another collector */
    assert_true(s_recv_acks(f, 2000, "colA", got, &other, &seen) >= 1);
    for (i = 1; i <= 5; i++) {
        assert_int_equal(got[i], 1);
    }
    assert_int_equal(got[0], 0);
    assert_int_equal(got[6], 0);
    assert_int_equal(other, 1);
    /* counted before acknowledged: p1, p2, p6, p7, p8 */
    assert_int_equal(seen, 5);
    assert_int_equal(s_total(f), 5);
}

/* With flushes that run while posts are consumed: only the notes sealed when the flush froze
 * its batch are acknowledged when it finishes; later ones wait for the next seal, and a failed
 * flush (no sealed_flushed) keeps them sealed. In process, no aggregator binary. */
static void
test_acks_only_sealed_notes(void **state)
{
    struct fix *f = *state;
    agg_acks_t *a = agg_acks_new(esc_bus_endpoint(f->acks), 1000);
    struct agg_acks_stats st;
    int got[64];
    int other = 0;

    assert_non_null(a);
    memset(got, 0, sizeof(got));
    agg_acks_note(a, "colA:1");
    agg_acks_note(a, "colA:2");
    agg_acks_seal(a);            /* a flush starts with 1 and 2 */
    agg_acks_note(a, "colA:3");  /* consumed while it runs */
    agg_acks_note(a, "colB:7");
    agg_acks_sealed_flushed(a);  /* it is done */
    assert_int_equal(s_recv_acks(f, 500, "colA", got, &other, NULL), 1);
    assert_int_equal(got[1] + got[2], 2);
    assert_int_equal(got[3], 0);
    assert_int_equal(other, 0);

    agg_acks_seal(a);            /* the next flush fails: nothing is sent, 3 stays sealed */
    agg_acks_note(a, "colA:4");
    agg_acks_seal(a);            /* and the one after covers 3 and 4 */
    agg_acks_sealed_flushed(a);
    assert_int_equal(s_recv_acks(f, 500, "colA", got, &other, NULL), 2);
    assert_int_equal(got[3] + got[4], 2);
    assert_int_equal(other, 1);  /* colB:7 */
    agg_acks_get_stats(a, &st);
    assert_int_equal(st.acked, 5);
    agg_acks_flushed(a);         /* nothing left */
    assert_int_equal(s_recv_acks(f, 200, "colA", got, &other, NULL), 0);
    agg_acks_destroy(&a, 0);
}

static void
test_acks_wait_for_redis(void **state)
{
    struct fix *f = *state;
    int got[64];
    int other = 0;
    long long seen = -1;
    int i;

    memset(got, 0, sizeof(got));
    s_start(f);
    s_sleep_ms(300);
    s_push(f, "q1", "el congreso", "colA:1", T0_MS);
    assert_true(s_recv_acks(f, 2000, "colA", got, &other, NULL) >= 1);
    assert_int_equal(got[1], 1);

    assert_int_equal(esc_testenv_redis_kill(&f->redis), 0);
    for (i = 2; i <= 10; i++) {
        char id[16];
        char ref[32];

        snprintf(id, sizeof(id), "q%d", i);
        snprintf(ref, sizeof(ref), "colA:%d", i);
        s_push(f, id, i % 2 == 0 ? "el congreso" : "nada", ref, T0_MS + i * 1000);
    }
    /* Redis away: the posts are held, nothing is acknowledged */
    assert_int_equal(s_recv_acks(f, 1500, "colA", got, &other, NULL), 0);
    /* back (empty): everything held is written, then acknowledged */
    assert_int_equal(esc_testenv_redis_restart(&f->redis), 0);
    assert_true(s_recv_acks(f, 6000, "colA", got, &other, &seen) >= 1);
    for (i = 2; i <= 10; i++) {
        assert_int_equal(got[i], 1);
    }
    assert_int_equal(seen, 5); /* q2, q4, q6, q8, q10 in the restarted Redis */
    assert_int_equal(other, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_acks_after_flush_for_every_post, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_acks_wait_for_redis, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_acks_only_sealed_notes, s_setup, s_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
