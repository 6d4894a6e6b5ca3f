#define ESC_LOG_MODULE "kv_test"
/* Component tests for esc_kv against a real redis-server started by esc_testenv: commands,
 * binary-safe arguments, pipelines, reply shapes, error replies, AUTH and SELECT. The fault
 * tests kill the server with SIGKILL in the middle of a run: calls must return ESC_RETRY, return
 * it at once while the backoff runs, and succeed again once the server is back. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "esc_testenv.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

/* Calls that only check the backoff and do no network IO must be this fast. */
#define FAST_MS 50
/* How long a test waits for esc_kv to recover after a restart. */
#define RECOVER_MS 6000

struct fixture {
    struct esc_testenv_redis r;
    esc_kv_t *kv;
};

static void
s_sleep_ms(long ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

static int
s_setup_common(void **state, int tcp)
{
    struct fixture *f = esc_calloc(1, sizeof(*f));
    struct esc_kv_opts o;

    if (esc_testenv_redis_start(&f->r, tcp) != 0) {
        esc_free(f);
        fail_msg("could not start redis-server (is the redis-server package installed?)");
    }
    esc_testenv_kv_opts(&f->r, &o);
    f->kv = esc_kv_new(&o);
    *state = f;
    return 0;
}

static int
s_setup(void **state)
{
    return s_setup_common(state, 0);
}

static int
s_setup_tcp(void **state)
{
    return s_setup_common(state, 1);
}

static int
s_teardown(void **state)
{
    struct fixture *f = *state;

    esc_kv_destroy(&f->kv);
    esc_testenv_redis_stop(&f->r);
    esc_free(f);
    return 0;
}

/* Retries a SET until esc_kv recovers; returns the milliseconds it took, or -1. */
static int64_t
s_wait_recovered(esc_kv_t *kv)
{
    int64_t t0 = esc_mono_ms();
    esc_rc rc;

    for (;;) {
        rc = esc_kv_cmd(kv, NULL, "SET recovered 1");
        if (rc == ESC_OK) {
            return esc_mono_ms() - t0;
        }
        assert_int_equal(rc, ESC_RETRY);
        if (esc_mono_ms() - t0 > RECOVER_MS) {
            return -1;
        }
        s_sleep_ms(10);
    }
}

/* Runs GET key and checks the reply is the string want (of length wlen). */
static void
s_assert_get(esc_kv_t *kv, const char *key, const char *want, size_t wlen)
{
    struct esc_kv_val v;

    assert_int_equal(esc_kv_cmd(kv, &v, "GET %s", key), ESC_OK);
    assert_int_equal(v.type, ESC_KV_STR);
    assert_int_equal(v.len, wlen);
    assert_memory_equal(v.str, want, wlen);
    esc_kv_val_fini(&v);
}

/* stderr capture, to check what esc_kv logs (and what it must never log). */
struct capture {
    int saved_fd;
    FILE *f;
};

static void
s_capture_begin(struct capture *c)
{
    c->f = tmpfile();
    assert_non_null(c->f);
    c->saved_fd = dup(STDERR_FILENO);
    assert_true(c->saved_fd >= 0);
    assert_true(dup2(fileno(c->f), STDERR_FILENO) >= 0);
}

/* Restores stderr and returns what was written (caller owns), also echoed to stderr. */
static char *
s_capture_end(struct capture *c)
{
    long n;
    char *text;

    dup2(c->saved_fd, STDERR_FILENO);
    close(c->saved_fd);
    fseek(c->f, 0, SEEK_END);
    n = ftell(c->f);
    rewind(c->f);
    text = esc_calloc(1, (size_t)n + 1);
    assert_int_equal(fread(text, 1, (size_t)n, c->f), (size_t)n);
    fclose(c->f);
    fputs(text, stderr);
    return text;
}

static int
s_count(const char *hay, const char *needle)
{
    int n = 0;
    const char *p = hay;

    for (;;) {
        p = strstr(p, needle);
        if (p == NULL) {
            return n;
        }
        n++;
        p += strlen(needle);
    }
}

/* Happy path and usage example: connect, SET, GET, INCRBY, counters. */
static void
test_kv_set_get_incrby(void **state)
{
    struct fixture *f = *state;
    struct esc_kv_val v;
    esc_kv_t *none = NULL;

    assert_int_equal(esc_kv_connect(f->kv), ESC_OK);
    assert_int_equal(esc_kv_cmd(f->kv, &v, "SET %s %s", "greeting", "hola"), ESC_OK);
    assert_int_equal(v.type, ESC_KV_STR);
    assert_string_equal(v.str, "OK");
    esc_kv_val_fini(&v);
    s_assert_get(f->kv, "greeting", "hola", 4);

    assert_int_equal(esc_kv_cmd(f->kv, &v, "INCRBY %s %lld", "cnt", 40LL), ESC_OK);
    assert_int_equal(v.type, ESC_KV_INT);
    assert_int_equal(v.integer, 40);
    esc_kv_val_fini(&v);
    assert_int_equal(esc_kv_cmd(f->kv, &v, "INCRBY cnt 2"), ESC_OK);
    assert_int_equal(v.integer, 42);
    esc_kv_val_fini(&v);

    assert_int_equal(esc_kv_commands(f->kv), 4);
    assert_int_equal(esc_kv_round_trips(f->kv), 4);
    assert_int_equal(esc_kv_pending(f->kv), 0);

    /* fini leaves a NIL value, so a second fini is harmless */
    assert_int_equal(v.type, ESC_KV_NIL);
    esc_kv_val_fini(&v);
    esc_kv_val_fini(NULL);
    esc_kv_destroy(&none);
    esc_kv_destroy(NULL);
    assert_null(none);
}

/* Keys and values with NUL, CR, LF and every byte value go through unchanged. */
static void
test_kv_binary_safe_args(void **state)
{
    struct fixture *f = *state;
    static const char key[] = "bin\0key\r\n x";
    char val[256];
    const char *argv[3];
    size_t lens[3];
    struct esc_kv_val v;
    size_t i;

    for (i = 0; i < sizeof(val); i++) {
        val[i] = (char)i;
    }
    argv[0] = "SET";
    lens[0] = 3;
    argv[1] = key;
    lens[1] = sizeof(key) - 1;
    argv[2] = val;
    lens[2] = sizeof(val);
    assert_int_equal(esc_kv_cmdv(f->kv, &v, 3, argv, lens), ESC_OK);
    assert_int_equal(v.type, ESC_KV_STR);
    esc_kv_val_fini(&v);

    argv[0] = "GET";
    assert_int_equal(esc_kv_cmdv(f->kv, &v, 2, argv, lens), ESC_OK);
    assert_int_equal(v.type, ESC_KV_STR);
    assert_int_equal(v.len, sizeof(val));
    assert_memory_equal(v.str, val, sizeof(val));
    assert_int_equal(v.str[v.len], '\0');
    esc_kv_val_fini(&v);

    /* the same key through the format API with %b */
    assert_int_equal(esc_kv_cmd(f->kv, &v, "STRLEN %b", key, sizeof(key) - 1), ESC_OK);
    assert_int_equal(v.type, ESC_KV_INT);
    assert_int_equal(v.integer, 256);
    esc_kv_val_fini(&v);
    assert_int_equal(esc_kv_cmd(f->kv, &v, "SET %b %b", "k2", (size_t)2, "a\0b", (size_t)3),
                     ESC_OK);
    esc_kv_val_fini(&v);
    s_assert_get(f->kv, "k2", "a\0b", 3);
}

/* 1000 queued HINCRBY go out in one round trip and all land. */
static void
test_kv_pipeline_hincrby(void **state)
{
    struct fixture *f = *state;
    struct esc_kv_val v;
    uint64_t rt0;
    uint64_t cmd0;
    size_t n_err = 99;
    size_t i;
    int64_t k;
    int64_t got;
    int i2;

    assert_int_equal(esc_kv_connect(f->kv), ESC_OK);
    rt0 = esc_kv_round_trips(f->kv);
    cmd0 = esc_kv_commands(f->kv);
    for (i2 = 0; i2 < 1000; i2++) {
        esc_kv_append(f->kv, "HINCRBY h f%d %d", i2 % 100, i2);
    }
    assert_int_equal(esc_kv_pending(f->kv), 1000);
    assert_int_equal(esc_kv_exec(f->kv, &n_err), ESC_OK);
    assert_int_equal(n_err, 0);
    assert_int_equal(esc_kv_pending(f->kv), 0);
    assert_int_equal(esc_kv_round_trips(f->kv), rt0 + 1);
    assert_int_equal(esc_kv_commands(f->kv), cmd0 + 1000);

    assert_int_equal(esc_kv_cmd(f->kv, &v, "HGETALL h"), ESC_OK);
    assert_int_equal(v.type, ESC_KV_ARRAY);
    assert_int_equal(v.n, 200);
    for (i = 0; i < v.n; i += 2) {
        assert_int_equal(v.elem[i].type, ESC_KV_STR);
        assert_int_equal(v.elem[i + 1].type, ESC_KV_STR);
        assert_int_equal(v.elem[i].str[0], 'f');
        assert_int_equal(esc_parse_i64(v.elem[i].str + 1, 0, 99, &k), 0);
        assert_int_equal(esc_parse_i64(v.elem[i + 1].str, 0, INT64_MAX, &got), 0);
        /* field k got k, k+100, ..., k+900 */
        assert_int_equal(got, 10 * k + 4500);
    }
    esc_kv_val_fini(&v);

    /* an empty exec is a no-op and costs no round trip; appendv works too */
    assert_int_equal(esc_kv_exec(f->kv, NULL), ESC_OK);
    assert_int_equal(esc_kv_round_trips(f->kv), rt0 + 2);
    {
        const char *argv[] = { "HINCRBY", "h", "f0", "5" };

        esc_kv_appendv(f->kv, 4, argv, NULL);
    }
    assert_int_equal(esc_kv_exec(f->kv, &n_err), ESC_OK);
    assert_int_equal(esc_kv_cmd(f->kv, &v, "HGET h f0"), ESC_OK);
    assert_string_equal(v.str, "4505");
    esc_kv_val_fini(&v);
}

/* An error reply is data, not a connection failure. */
/* esc_kv_exec_replies: every reply of a pipeline, in order, errors included; only the first
 * n_out are kept; on ESC_RETRY nothing is kept. */
static void
test_kv_exec_replies(void **state)
{
    struct fixture *f = *state;
    struct esc_kv_val rep[4];
    size_t n_err = 99;

    esc_kv_append(f->kv, "SET r1 %s", "x");
    esc_kv_append(f->kv, "INCRBY r2 %d", 5);
    esc_kv_append(f->kv, "INCR r1");
    esc_kv_append(f->kv, "MGET r1 r2 nope");
    esc_kv_append(f->kv, "GET r1");
    assert_int_equal(esc_kv_exec_replies(f->kv, rep, 4, &n_err), ESC_OK);
    assert_int_equal(n_err, 1);
    assert_int_equal(rep[0].type, ESC_KV_STR);
    assert_string_equal(rep[0].str, "OK");
    assert_int_equal(rep[1].type, ESC_KV_INT);
    assert_int_equal(rep[1].integer, 5);
    assert_int_equal(rep[2].type, ESC_KV_ERROR);
    assert_int_equal(rep[3].type, ESC_KV_ARRAY);
    assert_int_equal(rep[3].n, 3);
    assert_string_equal(rep[3].elem[0].str, "x");
    assert_int_equal(rep[3].elem[2].type, ESC_KV_NIL);
    esc_kv_val_fini(&rep[0]);
    esc_kv_val_fini(&rep[1]);
    esc_kv_val_fini(&rep[2]);
    esc_kv_val_fini(&rep[3]);
    assert_int_equal(esc_kv_pending(f->kv), 0);

    esc_kv_append(f->kv, "GET r1");
    assert_int_equal(esc_testenv_redis_kill(&f->r), 0);
    assert_int_equal(esc_kv_exec_replies(f->kv, rep, 1, NULL), ESC_RETRY);
    assert_int_equal(rep[0].type, ESC_KV_NIL);
    assert_null(rep[0].str);
}

static void
test_kv_error_reply(void **state)
{
    struct fixture *f = *state;
    struct esc_kv_val v;
    size_t n_err = 0;

    assert_int_equal(esc_kv_cmd(f->kv, NULL, "SET s notanumber"), ESC_OK);
    assert_int_equal(esc_kv_cmd(f->kv, &v, "INCR s"), ESC_OK);
    assert_int_equal(v.type, ESC_KV_ERROR);
    assert_non_null(strstr(v.str, "not an integer"));
    assert_int_equal(v.len, strlen(v.str));
    esc_kv_val_fini(&v);
    /* without out the error is only logged */
    assert_int_equal(esc_kv_cmd(f->kv, NULL, "INCR s"), ESC_OK);

    esc_kv_append(f->kv, "SET x 1");
    esc_kv_append(f->kv, "INCR s");
    esc_kv_append(f->kv, "INCR x");
    assert_int_equal(esc_kv_exec(f->kv, &n_err), ESC_OK);
    assert_int_equal(n_err, 1);
    s_assert_get(f->kv, "x", "2", 1);
    /* the connection is still the same one */
    assert_int_equal(esc_kv_cmd(f->kv, &v, "PING"), ESC_OK);
    assert_string_equal(v.str, "PONG");
    esc_kv_val_fini(&v);
}

/* Arrays (empty, flat, nested), NIL and status replies are copied faithfully. */
static void
test_kv_array_and_nil(void **state)
{
    struct fixture *f = *state;
    struct esc_kv_val v;

    assert_int_equal(esc_kv_cmd(f->kv, &v, "RPUSH l a bb ccc"), ESC_OK);
    assert_int_equal(v.type, ESC_KV_INT);
    assert_int_equal(v.integer, 3);
    esc_kv_val_fini(&v);

    assert_int_equal(esc_kv_cmd(f->kv, &v, "LRANGE l 0 -1"), ESC_OK);
    assert_int_equal(v.type, ESC_KV_ARRAY);
    assert_int_equal(v.n, 3);
    assert_string_equal(v.elem[0].str, "a");
    assert_string_equal(v.elem[1].str, "bb");
    assert_int_equal(v.elem[2].len, 3);
    esc_kv_val_fini(&v);

    assert_int_equal(esc_kv_cmd(f->kv, &v, "GET missing"), ESC_OK);
    assert_int_equal(v.type, ESC_KV_NIL);
    assert_null(v.str);
    esc_kv_val_fini(&v);

    assert_int_equal(esc_kv_cmd(f->kv, &v, "HGETALL missing"), ESC_OK);
    assert_int_equal(v.type, ESC_KV_ARRAY);
    assert_int_equal(v.n, 0);
    assert_null(v.elem);
    esc_kv_val_fini(&v);

    assert_int_equal(esc_kv_cmd(f->kv, &v, "EVAL %s 0", "return {1, 'x', {2, 'y', {}}}"),
                     ESC_OK);
    assert_int_equal(v.type, ESC_KV_ARRAY);
    assert_int_equal(v.n, 3);
    assert_int_equal(v.elem[0].type, ESC_KV_INT);
    assert_int_equal(v.elem[0].integer, 1);
    assert_string_equal(v.elem[1].str, "x");
    assert_int_equal(v.elem[2].type, ESC_KV_ARRAY);
    assert_int_equal(v.elem[2].n, 3);
    assert_int_equal(v.elem[2].elem[0].integer, 2);
    assert_string_equal(v.elem[2].elem[1].str, "y");
    assert_int_equal(v.elem[2].elem[2].type, ESC_KV_ARRAY);
    assert_int_equal(v.elem[2].elem[2].n, 0);
    esc_kv_val_fini(&v);

    assert_int_equal(esc_kv_cmd(f->kv, &v, "EVAL %s 0", "return redis.status_reply('FINE')"),
                     ESC_OK);
    assert_int_equal(v.type, ESC_KV_STR);
    assert_string_equal(v.str, "FINE");
    esc_kv_val_fini(&v);
}

/* A bad format string is the caller's bug: ESC_ERR, and the connection survives. */
static void
test_kv_bad_format_is_err(void **state)
{
    struct fixture *f = *state;
    struct esc_kv_val v;
    uint64_t rt0;

    assert_int_equal(esc_kv_cmd(f->kv, NULL, "SET a 1"), ESC_OK);
    rt0 = esc_kv_round_trips(f->kv);
    assert_int_equal(esc_kv_cmd(f->kv, &v, "GET %q"), ESC_ERR);
    assert_int_equal(v.type, ESC_KV_NIL);

    esc_kv_append(f->kv, "SET a 2");
    esc_kv_append(f->kv, "GET %q");
    esc_kv_append(f->kv, "SET a 3");
    assert_int_equal(esc_kv_pending(f->kv), 3);
    assert_int_equal(esc_kv_exec(f->kv, NULL), ESC_ERR);
    assert_int_equal(esc_kv_pending(f->kv), 0);
    /* nothing of the discarded pipeline ran */
    s_assert_get(f->kv, "a", "1", 1);
    assert_int_equal(esc_kv_round_trips(f->kv), rt0 + 1);
}

/* TCP connections, and SELECT of the configured database (a bad one is ESC_RETRY). */
static void
test_kv_tcp_and_select_db(void **state)
{
    struct fixture *f = *state;
    struct esc_kv_opts o;
    struct esc_kv_val v;
    esc_kv_t *kv5;
    esc_kv_t *kv99;

    assert_true(f->r.port > 0);
    esc_testenv_kv_opts(&f->r, &o);
    assert_null(o.unix_socket);
    o.db = 5;
    kv5 = esc_kv_new(&o);
    o.db = 99;
    kv99 = esc_kv_new(&o);

    assert_int_equal(esc_kv_cmd(kv5, NULL, "SET k five"), ESC_OK);
    s_assert_get(kv5, "k", "five", 4);
    assert_int_equal(esc_kv_cmd(f->kv, &v, "GET k"), ESC_OK);
    assert_int_equal(v.type, ESC_KV_NIL);
    esc_kv_val_fini(&v);

    assert_int_equal(esc_kv_connect(kv99), ESC_RETRY);
    assert_int_equal(esc_kv_cmd(kv99, &v, "GET k"), ESC_RETRY);

    esc_kv_destroy(&kv5);
    esc_kv_destroy(&kv99);
    assert_null(kv5);
}

/* The fault test: kill redis mid-run, get ESC_RETRY fast, recover after a restart. */
static void
s_killed_then_recovers(struct fixture *f)
{
    struct esc_kv_val v;
    int64_t t0;
    int i;

    assert_int_equal(esc_kv_cmd(f->kv, NULL, "SET a 1"), ESC_OK);
    assert_int_equal(esc_testenv_redis_kill(&f->r), 0);

    assert_int_equal(esc_kv_cmd(f->kv, &v, "GET a"), ESC_RETRY);
    assert_int_equal(v.type, ESC_KV_NIL);
    for (i = 0; i < 20; i++) {
        t0 = esc_mono_ms();
        assert_int_equal(esc_kv_cmd(f->kv, NULL, "GET a"), ESC_RETRY);
        assert_true(esc_mono_ms() - t0 < FAST_MS);
    }
    assert_int_equal(esc_kv_connect(f->kv), ESC_RETRY);

    assert_int_equal(esc_testenv_redis_restart(&f->r), 0);
    assert_true(s_wait_recovered(f->kv) >= 0);
    assert_int_equal(esc_kv_cmd(f->kv, &v, "GET a"), ESC_OK);
    assert_int_equal(v.type, ESC_KV_NIL); /* a restarted server starts empty */
    esc_kv_val_fini(&v);
    s_assert_get(f->kv, "recovered", "1", 1);
}

static void
test_kv_redis_killed_then_recovers(void **state)
{
    s_killed_then_recovers(*state);
}

static void
test_kv_redis_killed_then_recovers_tcp(void **state)
{
    s_killed_then_recovers(*state);
}

/* A failed connect delays the next attempt by 100 ms, then 200 ms, even if redis is back. */
static void
test_kv_backoff_delays_reconnect(void **state)
{
    struct fixture *f = *state;
    int64_t t2;
    int64_t t_ok;

    assert_int_equal(esc_testenv_redis_kill(&f->r), 0);
    assert_int_equal(esc_kv_connect(f->kv), ESC_RETRY);   /* attempt 1: backoff 100 ms */
    assert_int_equal(esc_kv_connect(f->kv), ESC_RETRY);   /* in backoff */
    s_sleep_ms(150);
    t2 = esc_mono_ms();
    assert_int_equal(esc_kv_connect(f->kv), ESC_RETRY);   /* attempt 2: backoff 200 ms */
    assert_int_equal(esc_testenv_redis_restart(&f->r), 0);
    for (;;) {
        if (esc_kv_connect(f->kv) == ESC_OK) {
            break;
        }
        assert_true(esc_mono_ms() - t2 < 3000);
        s_sleep_ms(5);
    }
    t_ok = esc_mono_ms();
    assert_true(t_ok - t2 >= 200);
    assert_int_equal(esc_kv_cmd(f->kv, NULL, "PING"), ESC_OK);
}

/* A kill while a pipeline is queued: exec returns ESC_RETRY and forgets the pipeline. */
static void
test_kv_pipeline_broken_by_kill(void **state)
{
    struct fixture *f = *state;
    size_t n_err = 7;
    int i;

    assert_int_equal(esc_kv_connect(f->kv), ESC_OK);
    for (i = 0; i < 10; i++) {
        esc_kv_append(f->kv, "SET p%d %d", i, i);
    }
    assert_int_equal(esc_testenv_redis_kill(&f->r), 0);
    assert_int_equal(esc_kv_exec(f->kv, &n_err), ESC_RETRY);
    assert_int_equal(n_err, 0);
    assert_int_equal(esc_kv_pending(f->kv), 0);

    /* appends while redis is down are counted, then discarded by exec */
    for (i = 0; i < 3; i++) {
        esc_kv_append(f->kv, "SET q%d %d", i, i);
    }
    assert_int_equal(esc_kv_pending(f->kv), 3);
    assert_int_equal(esc_kv_exec(f->kv, NULL), ESC_RETRY);
    assert_int_equal(esc_kv_pending(f->kv), 0);

    assert_int_equal(esc_testenv_redis_restart(&f->r), 0);
    assert_true(s_wait_recovered(f->kv) >= 0);
    for (i = 0; i < 10; i++) {
        esc_kv_append(f->kv, "SET p%d %d", i, i);
    }
    assert_int_equal(esc_kv_exec(f->kv, &n_err), ESC_OK);
    assert_int_equal(n_err, 0);
    s_assert_get(f->kv, "p9", "9", 1);
}

/* Redis becomes reachable again between two appends: the pipeline is still discarded whole,
 * since its first commands were never queued. */
static void
test_kv_pipeline_discarded_if_reconnected_mid_build(void **state)
{
    struct fixture *f = *state;
    struct esc_kv_val v;

    assert_int_equal(esc_testenv_redis_kill(&f->r), 0);
    esc_kv_append(f->kv, "SET m1 1");      /* connect refused: pipeline broken */
    assert_int_equal(esc_testenv_redis_restart(&f->r), 0);
    s_sleep_ms(150);                         /* past the first backoff */
    esc_kv_append(f->kv, "SET m2 2");
    assert_int_equal(esc_kv_exec(f->kv, NULL), ESC_RETRY);
    assert_int_equal(esc_kv_pending(f->kv), 0);
    assert_true(s_wait_recovered(f->kv) >= 0);
    assert_int_equal(esc_kv_cmd(f->kv, &v, "EXISTS m1 m2"), ESC_OK);
    assert_int_equal(v.integer, 0);
    esc_kv_val_fini(&v);
}

/* A failure streak is logged once at warn, the recovery once at info. */
static void
test_kv_logs_failure_once(void **state)
{
    struct fixture *f = *state;
    struct capture cap;
    char *text;
    int i;

    assert_int_equal(esc_kv_cmd(f->kv, NULL, "SET a 1"), ESC_OK);
    s_capture_begin(&cap);
    esc_testenv_redis_kill(&f->r);
    for (i = 0; i < 4; i++) {
        esc_kv_cmd(f->kv, NULL, "GET a");
        s_sleep_ms(120);
    }
    esc_testenv_redis_restart(&f->r);
    i = (int)s_wait_recovered(f->kv);
    esc_kv_cmd(f->kv, NULL, "GET a");
    text = s_capture_end(&cap);
    assert_true(i >= 0);
    assert_int_equal(s_count(text, " WARN kv: redis "), 1);
    assert_int_equal(s_count(text, "redis reconnected"), 1);
    assert_int_equal(s_count(text, " ERROR "), 0);
    esc_free(text);
}

/* A wrong password is ESC_RETRY with backoff (logged without the password); the right one works,
 * with and without an ACL user name. */
static void
test_kv_auth(void **state)
{
    static const char *const extra[] = { "--requirepass", "s3cret-Pw", NULL };
    struct esc_testenv_redis r;
    struct esc_kv_opts o;
    struct esc_kv_val v;
    struct capture cap;
    esc_kv_t *bad;
    esc_kv_t *good;
    esc_kv_t *user;
    esc_kv_t *none;
    int64_t t0;
    char *text;

    (void)state;
    assert_int_equal(esc_testenv_redis_start_args(&r, 0, extra), 0);
    esc_testenv_kv_opts(&r, &o);
    o.password = "wrong-Pw";
    bad = esc_kv_new(&o);
    o.password = "s3cret-Pw";
    good = esc_kv_new(&o);

    s_capture_begin(&cap);
    assert_int_equal(esc_kv_connect(bad), ESC_RETRY);
    t0 = esc_mono_ms();
    assert_int_equal(esc_kv_cmd(bad, &v, "PING"), ESC_RETRY);
    assert_true(esc_mono_ms() - t0 < FAST_MS);
    s_sleep_ms(120);
    assert_int_equal(esc_kv_cmd(bad, &v, "PING"), ESC_RETRY);
    text = s_capture_end(&cap);
    assert_int_equal(s_count(text, "redis auth failed"), 1);
    assert_null(strstr(text, "wrong-Pw"));
    esc_free(text);

    assert_int_equal(esc_kv_cmd(good, NULL, "SET a 1"), ESC_OK);
    s_assert_get(good, "a", "1", 1);
    assert_int_equal(esc_kv_cmd(good, NULL, "ACL SETUSER alice on >alice-Pw ~* +@all"), ESC_OK);

    /* "AUTH user pass" form */
    o.username = "alice";
    o.password = "alice-Pw";
    user = esc_kv_new(&o);
    s_assert_get(user, "a", "1", 1);
    esc_kv_destroy(&user);
    o.password = "s3cret-Pw"; /* not alice's */
    user = esc_kv_new(&o);
    assert_int_equal(esc_kv_connect(user), ESC_RETRY);
    esc_kv_destroy(&user);
    o.username = "default";
    user = esc_kv_new(&o);
    assert_int_equal(esc_kv_connect(user), ESC_OK);
    esc_kv_destroy(&user);

    /* no password at all: the connection works, commands get NOAUTH error replies */
    o.username = NULL;
    o.password = NULL;
    none = esc_kv_new(&o);
    assert_int_equal(esc_kv_cmd(none, &v, "GET a"), ESC_OK);
    assert_int_equal(v.type, ESC_KV_ERROR);
    assert_non_null(strstr(v.str, "NOAUTH"));
    esc_kv_val_fini(&v);

    esc_kv_destroy(&none);
    esc_kv_destroy(&bad);
    esc_kv_destroy(&good);
    esc_testenv_redis_stop(&r);
}

/* Nothing listens on the socket: ESC_RETRY everywhere, and fast while in backoff. */
static void
test_kv_nothing_listening(void **state)
{
    struct esc_kv_opts o;
    char path[128];
    esc_kv_t *kv;
    int64_t t0;
    size_t n_err = 5;

    (void)state;
    snprintf(path, sizeof(path), "/tmp/esc-kv-test-nobody-%d.sock", (int)getpid());
    memset(&o, 0, sizeof(o));
    o.unix_socket = path;
    o.timeout_ms = 200;
    kv = esc_kv_new(&o);
    assert_int_equal(esc_kv_connect(kv), ESC_RETRY);
    t0 = esc_mono_ms();
    assert_int_equal(esc_kv_cmd(kv, NULL, "PING"), ESC_RETRY);
    esc_kv_append(kv, "PING");
    assert_int_equal(esc_kv_pending(kv), 1);
    assert_int_equal(esc_kv_exec(kv, &n_err), ESC_RETRY);
    assert_int_equal(n_err, 0);
    assert_int_equal(esc_kv_pending(kv), 0);
    assert_true(esc_mono_ms() - t0 < FAST_MS);
    assert_int_equal(esc_kv_commands(kv), 0);
    assert_int_equal(esc_kv_round_trips(kv), 0);
    esc_kv_destroy(&kv);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kv_set_get_incrby, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kv_binary_safe_args, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kv_pipeline_hincrby, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kv_exec_replies, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kv_error_reply, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kv_array_and_nil, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kv_bad_format_is_err, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kv_tcp_and_select_db, s_setup_tcp, s_teardown),
        cmocka_unit_test_setup_teardown(test_kv_redis_killed_then_recovers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kv_redis_killed_then_recovers_tcp, s_setup_tcp,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_kv_backoff_delays_reconnect, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kv_pipeline_broken_by_kill, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kv_pipeline_discarded_if_reconnected_mid_build,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kv_logs_failure_once, s_setup, s_teardown),
        cmocka_unit_test(test_kv_auth),
        cmocka_unit_test(test_kv_nothing_listening),
    };

    /* hiredis writes with write(2): a dead peer must give EPIPE, not kill the test */
    signal(SIGPIPE, SIG_IGN);
    esc_log_init("esc_kv_test", ESC_LOG_INFO);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
