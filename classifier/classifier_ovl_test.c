#define ESC_LOG_MODULE "test"
/* Component tests of topic edits reaching a running escucha-classifier (CLS_BIN, from CMake)
 * without a restart: a real redis-server (tests/support/esc_testenv.h) holds the overrides,
 * written the way escucha-api writes them (HSET <prefix>:topics:{team} + INCR
 * <prefix>:topics:version, SET <prefix>:exclude:{team}). The test plays broker and aggregator
 * on tcp://127.0.0.1:*, streams posts in batches while it edits, and checks that a new topic
 * starts matching, a deleted one stops, stored exclusion lists apply, an invalid stored query
 * is refused with a log line naming its key path while the running topics keep classifying,
 * that Redis being down changes nothing until it is back, and that every post comes out
 * exactly once. */
#include <dirent.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#include "../tests/support/esc_testenv.h"

#ifndef CLS_BIN
#error "CLS_BIN must name the escucha-classifier binary"
#endif

#define BATCH 40          /* posts sent before their classified copies are read back */
#define MAX_POSTS 20000   /* ids the test may use */
#define PICKUP_MS 5000    /* an edit must be live within this */

struct env {
    char dir[64];                /* temp dir: config, child's output */
    char cfg[128];
    char out[128];
    char err[128];
    esc_bus_t *push;             /* plays the broker (bus.classify) */
    esc_bus_t *pull;             /* plays the aggregator (bus.aggregate) */
    struct esc_testenv_redis r;
    esc_kv_t *kv;                /* plays escucha-api */
    unsigned char *seen;         /* seen[id]: classified copies received */
    int next_id;                 /* ids sent so far */
};

static int
s_setup(void **state)
{
    struct env *e = esc_calloc(1, sizeof(*e));
    struct esc_kv_opts ko;
    int tmo = 10000;

    esc_strlcpy(e->dir, "/tmp/cls_ovl_XXXXXX", sizeof(e->dir));
    if (mkdtemp(e->dir) == NULL) {
        return -1;
    }
    snprintf(e->cfg, sizeof(e->cfg), "%s/escucha.json", e->dir);
    snprintf(e->out, sizeof(e->out), "%s/stdout", e->dir);
    snprintf(e->err, sizeof(e->err), "%s/stderr", e->dir);
    e->push = esc_bus_new(ESC_BUS_PUSH, "tcp://127.0.0.1:*", true, 1000);
    e->pull = esc_bus_new(ESC_BUS_PULL, "tcp://127.0.0.1:*", true, 1000);
    if (e->push == NULL || e->pull == NULL || esc_testenv_redis_start(&e->r, 0) != 0) {
        return -1;
    }
    zmq_setsockopt(esc_bus_zsock(e->push), ZMQ_SNDTIMEO, &tmo, sizeof(tmo));
    zmq_setsockopt(esc_bus_zsock(e->pull), ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    esc_testenv_kv_opts(&e->r, &ko);
    e->kv = esc_kv_new(&ko);
    e->seen = esc_calloc(MAX_POSTS, 1);
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct env *e = *state;
    DIR *d;
    struct dirent *de;
    char path[400];

    esc_kv_destroy(&e->kv);
    esc_testenv_redis_stop(&e->r);
    esc_bus_destroy(&e->push, 0);
    esc_bus_destroy(&e->pull, 0);
    d = opendir(e->dir);
    for (de = d != NULL ? readdir(d) : NULL; de != NULL; de = readdir(d)) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            snprintf(path, sizeof(path), "%s/%s", e->dir, de->d_name);
            unlink(path);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    rmdir(e->dir);
    esc_free(e->seen);
    esc_free(e);
    return 0;
}

/* The deployment: team gob with congreso and elecciones, Redis on the test's socket. */
static void
s_write_cfg(const struct env *e)
{
    FILE *f = fopen(e->cfg, "w");

    assert_non_null(f);
    fprintf(f,
            "{ \"bus\": { \"classify\": \"%s\", \"aggregate\": \"%s\", \"hwm\": 1000 },\n"
            "  \"redis\": { \"unix_socket\": \"%s\", \"prefix\": \"t\" },\n"
            "  \"teams\": [ { \"id\": \"gob\", \"topics\": [\n"
            "    { \"id\": \"congreso\", \"keywords\": [\"congreso\"] },\n"
            "    { \"id\": \"elecciones\", \"keywords\": [\"elecciones\"] } ] } ],\n"
            "  \"classifier\": { \"topics_poll_ms\": 100, \"drain_quiet_ms\": 200 } }\n",
            esc_bus_endpoint(e->push), esc_bus_endpoint(e->pull), e->r.sock);
    assert_int_equal(fclose(f), 0);
}

static pid_t
s_spawn(const struct env *e)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(e->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(e->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        if (in < 0 || out < 0 || err < 0) {
            _exit(127);
        }
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execl(CLS_BIN, CLS_BIN, "--config", e->cfg, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int
s_wait(pid_t pid, int64_t timeout_ms)
{
    int64_t end = esc_mono_ms() + timeout_ms;
    int st = 0;

    while (waitpid(pid, &st, WNOHANG) != pid) {
        if (esc_mono_ms() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fail_msg("classifier did not exit within %lld ms", (long long)timeout_ms);
        }
        usleep(10000);
    }
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* The child's stderr so far; caller-owned. */
static char *
s_log(const struct env *e)
{
    FILE *f = fopen(e->err, "r");
    char *buf = esc_calloc(1, 1 << 20);
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Runs one command (up to 4 words) as escucha-api would, retrying while the connection comes
 * back after a Redis restart; fails the test on anything but a normal reply. */
static void
s_redis(struct env *e, const char *w0, const char *w1, const char *w2, const char *w3)
{
    const char *argv[4] = { w0, w1, w2, w3 };
    int argc = w3 != NULL ? 4 : w2 != NULL ? 3 : 2;
    int64_t end = esc_mono_ms() + PICKUP_MS;
    struct esc_kv_val v;
    esc_rc rc;

    memset(&v, 0, sizeof(v));
    for (rc = esc_kv_cmdv(e->kv, &v, argc, argv, NULL); rc == ESC_RETRY && esc_mono_ms() < end;
         rc = esc_kv_cmdv(e->kv, &v, argc, argv, NULL)) {
        usleep(50000);
    }
    assert_int_equal(rc, ESC_OK);
    assert_int_not_equal(v.type, ESC_KV_ERROR);
    esc_kv_val_fini(&v);
}

/* Stores one topic of team gob and bumps the version (HSET + INCR, as the API does). */
static void
s_store_topic(struct env *e, const char *id, const char *json)
{
    s_redis(e, "HSET", "t:topics:{gob}", id, json);
    s_redis(e, "INCR", "t:topics:version", NULL, NULL);
}

/* Sends BATCH posts with text, reads back BATCH classified posts, checks each id comes out
 * exactly once, and returns how many carried exactly the topics want ("" = none, else
 * "a,b"). */
static int
s_batch(struct env *e, const char *text, const char *want)
{
    int first = e->next_id;
    int hits = 0;
    int i;

    assert_true(first + BATCH <= MAX_POSTS);
    for (i = 0; i < BATCH; i++) {
        struct esc_post p;
        char id[16];
        char *buf;
        size_t len;

        esc_post_init(&p);
        snprintf(id, sizeof(id), "%d", e->next_id++);
        p.id = esc_strdup(id);
        p.platform = esc_strdup("jsonl");
        p.text = esc_strdup(text);
        p.lang = esc_strdup("es");
        p.created_at = 1763300000000;
        buf = esc_post_encode(&p, 0, &len);
        esc_post_fini(&p);
        assert_int_equal(esc_bus_send(e->push, buf, len, 0), ESC_OK);
        esc_free(buf);
    }
    for (i = 0; i < BATCH; i++) {
        struct esc_post p;
        struct esc_error err;
        enum esc_msg_type type;
        const void *buf;
        size_t len;
        int64_t n = -1;
        char got[256];
        size_t k;

        assert_int_equal(esc_bus_recv(e->pull, &buf, &len, 0), ESC_OK);
        assert_int_equal(esc_post_decode(buf, len, &p, &type, &err), ESC_OK);
        assert_int_equal(type, ESC_MSG_CLASSIFIED);
        assert_int_equal(esc_parse_i64(p.id, first, first + BATCH - 1, &n), 0);
        assert_int_equal(e->seen[n], 0);
        e->seen[n] = 1;
        got[0] = '\0';
        for (k = 0; k < p.n_topics; k++) {
            size_t used = strlen(got);

            snprintf(got + used, sizeof(got) - used, "%s%s", k > 0 ? "," : "", p.topics[k]);
        }
        hits += strcmp(got, want) == 0;
        esc_post_fini(&p);
    }
    return hits;
}

/* Streams batches of text until a whole batch comes out with want; fails after PICKUP_MS. */
static void
s_until(struct env *e, const char *text, const char *want)
{
    int64_t end = esc_mono_ms() + PICKUP_MS;

    while (s_batch(e, text, want) != BATCH) {
        if (esc_mono_ms() >= end) {
            fail_msg("'%s' did not come out as '%s' within %d ms", text, want, PICKUP_MS);
        }
        usleep(20000);
    }
}

/* Every id sent came out exactly once. */
static void
s_assert_none_lost(const struct env *e)
{
    int i;

    for (i = 0; i < e->next_id; i++) {
        assert_int_equal(e->seen[i], 1);
    }
}

/* Waits up to PICKUP_MS for the child's log to contain s. */
static void
s_log_until(const struct env *e, const char *s)
{
    int64_t end = esc_mono_ms() + PICKUP_MS;

    for (;;) {
        char *log = s_log(e);
        int found = strstr(log, s) != NULL;

        esc_free(log);
        if (found) {
            return;
        }
        if (esc_mono_ms() >= end) {
            fail_msg("log has no '%s' after %d ms", s, PICKUP_MS);
        }
        usleep(50000);
    }
}

static void
test_cls_ovl_edits_picked_up_while_streaming(void **state)
{
    struct env *e = *state;
    char *log;
    pid_t pid;
    int i;

    s_write_cfg(e);
    pid = s_spawn(e);
    assert_int_equal(s_batch(e, "el congreso y el agua potable", "gob/congreso"), BATCH);

    /* a new topic: posts already queued are classified by one matcher or the other, never
     * lost; within seconds every post carries it */
    s_batch(e, "el congreso y el agua potable", "gob/congreso");
    s_store_topic(e, "agua",
                  "{\"id\":\"agua\",\"name\":\"Agua\",\"keywords\":[\"agua\"],\"query\":null,"
                  "\"exclude\":null,\"fold_enye\":false}");
    s_until(e, "el congreso y el agua potable", "gob/congreso,gob/agua");

    /* a file topic replaced by a stored one, the other deleted */
    s_store_topic(e, "elecciones",
                  "{\"id\":\"elecciones\",\"keywords\":[],\"query\":\"elecciones AND voto\"}");
    s_store_topic(e, "congreso", "{\"id\":\"congreso\",\"deleted\":true}");
    s_until(e, "el congreso y el agua potable", "gob/agua");
    assert_int_equal(s_batch(e, "elecciones sin nada", ""), BATCH);
    assert_int_equal(s_batch(e, "elecciones y voto", "gob/elecciones"), BATCH);

    /* stored exclusion lists replace the file's */
    s_redis(e, "SET", "t:exclude:{gob}",
            "{\"authors\":[],\"sites\":[],\"phrases\":[\"sorteo\"]}", NULL);
    s_redis(e, "INCR", "t:topics:version", NULL, NULL);
    s_until(e, "agua gratis en el sorteo", "");
    assert_int_equal(s_batch(e, "agua potable", "gob/agua"), BATCH);

    /* an invalid stored query next to a valid new topic in the same change: the bad one keeps
     * its previous version (logged with its key path), the good one is picked up */
    s_redis(e, "HSET", "t:topics:{gob}", "agua",
            "{\"id\":\"agua\",\"keywords\":[],\"query\":\"(agua AND (potable\"}");
    s_store_topic(e, "rio", "{\"id\":\"rio\",\"keywords\":[\"rio\"]}");
    s_until(e, "el agua del rio", "gob/agua,gob/rio");
    s_log_until(e, "their previous version kept trigger=api topics=\"gob/agua "
                   "(teams[0].topics[1].query: column 1: unbalanced parenthesis)");
    for (i = 0; i < 5; i++) {
        assert_int_equal(s_batch(e, "el agua potable", "gob/agua"), BATCH);
        usleep(100000);
    }

    /* a stored topic that is not a valid topic at all: the change is refused as a whole and
     * logged with its key path; the running topics keep classifying */
    s_store_topic(e, "nieve", "{\"id\":\"nieve\",\"keywords\":[\"nieve\"],\"color\":1}");
    s_log_until(e, "teams[0].topics[2].color: unknown key");
    s_log_until(e, "reload failed, keeping the running config");
    for (i = 0; i < 5; i++) {
        assert_int_equal(s_batch(e, "el agua del rio", "gob/agua,gob/rio"), BATCH);
        usleep(100000);
    }
    s_redis(e, "HDEL", "t:topics:{gob}", "nieve", NULL);
    s_store_topic(e, "rio", "{\"id\":\"rio\",\"deleted\":true}");

    /* fixed again: picked up */
    s_store_topic(e, "agua", "{\"id\":\"agua\",\"keywords\":[],\"query\":\"agua AND potable\"}");
    s_until(e, "agua del grifo", "");
    assert_int_equal(s_batch(e, "el agua potable", "gob/agua"), BATCH);

    s_assert_none_lost(e);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(s_wait(pid, 10000), 0);
    log = s_log(e);
    assert_non_null(strstr(log, "topic overrides changed version="));
    assert_non_null(strstr(log, "reload failed, keeping the running config"));
    assert_non_null(strstr(log, "unbalanced parenthesis"));
    assert_non_null(strstr(log, "dropped=0"));
    esc_free(log);
}

static void
test_cls_ovl_redis_down_keeps_topics(void **state)
{
    struct env *e = *state;
    char *log;
    pid_t pid;

    /* overrides stored before the start apply from the start */
    s_store_topic(e, "agua", "{\"id\":\"agua\",\"keywords\":[\"agua\"]}");
    s_write_cfg(e);
    pid = s_spawn(e);
    s_until(e, "agua y congreso", "gob/congreso,gob/agua");

    /* Redis gone: classification goes on with the current topics, logged once */
    assert_int_equal(esc_testenv_redis_kill(&e->r), 0);
    s_log_until(e, "cannot read topic overrides from redis, keeping the current topics");
    assert_int_equal(s_batch(e, "agua y congreso", "gob/congreso,gob/agua"), BATCH);
    usleep(500000);
    assert_int_equal(s_batch(e, "agua y congreso", "gob/congreso,gob/agua"), BATCH);

    /* back, empty: the stored topic is gone, so the file's topics alone apply; then an edit */
    assert_int_equal(esc_testenv_redis_restart(&e->r), 0);
    s_until(e, "agua y congreso", "gob/congreso");
    s_store_topic(e, "lluvia", "{\"id\":\"lluvia\",\"keywords\":[\"lluvia\"]}");
    s_until(e, "lluvia y congreso", "gob/congreso,gob/lluvia");

    s_assert_none_lost(e);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(s_wait(pid, 10000), 0);
    log = s_log(e);
    {
        const char *first = strstr(log, "cannot read topic overrides");

        assert_non_null(first);
        assert_null(strstr(first + 1, "cannot read topic overrides"));
    }
    assert_non_null(strstr(log, "reading topic overrides from redis again"));
    assert_non_null(strstr(log, "dropped=0"));
    esc_free(log);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cls_ovl_edits_picked_up_while_streaming, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_cls_ovl_redis_down_keeps_topics, s_setup,
                                        s_teardown),
    };

    esc_log_init("test", ESC_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
