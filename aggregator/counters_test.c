#define ESC_LOG_MODULE "test"
/* Component tests of the counters (counters.c) against a real redis-server started by
 * esc_testenv: exact minute/hour/day buckets and totals across bucket boundaries, TTLs per
 * resolution, posts with several topics, one round trip per flush, a backlog larger than one
 * chunk, the pending-key limit, and Redis killed mid-run and restarted empty (nothing lost,
 * nothing counted twice). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "esc_testenv.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#include "counters.h"

#define DAY16 1794787200LL /* 2026-11-16T00:00:00Z, Unix s */
#define AT(s) ((DAY16 + (s)) * 1000)

struct fix {
    struct esc_testenv_redis redis;
    esc_kv_t *kv;
    agg_counters_t *c;
};

static void
s_new_counters(struct fix *f, size_t max_keys)
{
    struct agg_counters_opts o;

    memset(&o, 0, sizeof(o));
    o.prefix = "t";
    o.retention_s[AGG_RES_MINUTE] = 120;
    o.retention_s[AGG_RES_HOUR] = 7200;
    o.retention_s[AGG_RES_DAY] = 90000;
    o.max_pending_keys = max_keys;
    agg_counters_destroy(&f->c);
    f->c = agg_counters_new(f->kv, &o);
}

static int
s_setup(void **state)
{
    struct fix *f = esc_calloc(1, sizeof(*f));
    struct esc_kv_opts o;

    if (f == NULL || esc_testenv_redis_start(&f->redis, 0) != 0) {
        esc_free(f);
        return -1;
    }
    esc_testenv_kv_opts(&f->redis, &o);
    f->kv = esc_kv_new(&o);
    s_new_counters(f, 1000000);
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    struct fix *f = *state;

    agg_counters_destroy(&f->c);
    esc_kv_destroy(&f->kv);
    esc_testenv_redis_stop(&f->redis);
    esc_free(f);
    return 0;
}

/* Adds one post at ms for the NULL-terminated topic list. */
static void
s_add(struct fix *f, int64_t ms, int64_t followers, int64_t likes, int64_t reposts,
      int64_t replies, const char *const *topics)
{
    struct esc_post p;
    size_t n = 0;

    esc_post_init(&p);
    p.created_at = ms;
    p.followers = followers;
    p.likes = likes;
    p.reposts = reposts;
    p.replies = replies;
    while (topics != NULL && topics[n] != NULL) {
        n++;
    }
    agg_counters_add(f->c, &p, topics, n);
}

static long long
s_hget(struct fix *f, const char *key, const char *field)
{
    struct esc_kv_val v;
    long long out = 0;

    assert_int_equal(esc_kv_cmd(f->kv, &v, "HGET %s %s", key, field), ESC_OK);
    if (v.type == ESC_KV_STR) {
        out = strtoll(v.str, NULL, 10);
    }
    else {
        assert_int_equal(v.type, ESC_KV_NIL);
    }
    esc_kv_val_fini(&v);
    return out;
}

static long long
s_int_cmd(struct fix *f, const char *cmd, const char *key)
{
    struct esc_kv_val v;
    long long out;

    assert_int_equal(esc_kv_cmd(f->kv, &v, "%s %s", cmd, key), ESC_OK);
    if (v.type == ESC_KV_NIL) {
        out = 0;
    }
    else if (v.type == ESC_KV_STR) {
        out = strtoll(v.str, NULL, 10);
    }
    else {
        assert_int_equal(v.type, ESC_KV_INT);
        out = v.integer;
    }
    esc_kv_val_fini(&v);
    return out;
}

/* Asserts all six fields of hash key. */
static void
s_check(struct fix *f, const char *key, long long posts, long long reach, long long likes,
        long long reposts, long long replies)
{
    assert_int_equal(s_hget(f, key, "posts"), posts);
    assert_int_equal(s_hget(f, key, "reach"), reach);
    assert_int_equal(s_hget(f, key, "likes"), likes);
    assert_int_equal(s_hget(f, key, "reposts"), reposts);
    assert_int_equal(s_hget(f, key, "replies"), replies);
    assert_int_equal(s_hget(f, key, "engagement"), likes + reposts + replies);
}

static const char *const s_congreso[] = { "gob/congreso", NULL };

/* Happy path: five posts around midnight and 01:00 land in exactly the right buckets. */
static void
test_counters_exact_buckets(void **state)
{
    struct fix *f = *state;
    uint64_t rt;
    char key[128];

    s_add(f, AT(86400 - 30), 100, 1, 2, 3, s_congreso);   /* 16th 23:59:30 */
    s_add(f, AT(86400) - 1, 10, 0, 0, 1, s_congreso);     /* 16th 23:59:59.999 */
    s_add(f, AT(86400), 5, 4, 0, 0, s_congreso);          /* 17th 00:00:00 */
    s_add(f, AT(86400 + 3550), -3, 1, 0, 0, s_congreso);  /* 17th 00:59:10, followers unknown */
    s_add(f, AT(86400 + 3600), 7, 0, 0, 0, s_congreso);   /* 17th 01:00:00 */
    s_add(f, AT(86400 + 3600), 1000, 9, 9, 9, NULL);      /* matched no topic */
    /* 4 minutes + 3 hours + 2 days + 1 total */
    assert_int_equal(agg_counters_pending_keys(f->c), 10);
    rt = esc_kv_round_trips(f->kv);
    assert_int_equal(agg_counters_flush(f->c), ESC_OK);
    assert_int_equal(esc_kv_round_trips(f->kv) - rt, 1);
    assert_int_equal(agg_counters_pending_keys(f->c), 0);
    assert_false(agg_counters_pending(f->c));

    s_check(f, "t:c:{gob/congreso}:m:1794873540", 2, 110, 1, 2, 4);
    s_check(f, "t:c:{gob/congreso}:m:1794873600", 1, 5, 4, 0, 0);
    s_check(f, "t:c:{gob/congreso}:m:1794877140", 1, 0, 1, 0, 0);
    s_check(f, "t:c:{gob/congreso}:m:1794877200", 1, 7, 0, 0, 0);
    s_check(f, "t:c:{gob/congreso}:h:1794870000", 2, 110, 1, 2, 4);
    s_check(f, "t:c:{gob/congreso}:h:1794873600", 2, 5, 5, 0, 0);
    s_check(f, "t:c:{gob/congreso}:h:1794877200", 1, 7, 0, 0, 0);
    s_check(f, "t:c:{gob/congreso}:d:1794787200", 2, 110, 1, 2, 4);
    s_check(f, "t:c:{gob/congreso}:d:1794873600", 3, 12, 5, 0, 0);
    s_check(f, "t:t:{gob/congreso}", 5, 122, 6, 2, 4);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 6);
    assert_string_equal(agg_counters_key("t", "gob/congreso", AGG_RES_HOUR, AT(86400 + 3599),
                                         key, sizeof(key)),
                        "t:c:{gob/congreso}:h:1794873600");

    /* a second flush adds deltas to the same hashes; an empty flush sends nothing */
    s_add(f, AT(86400), 1, 1, 0, 0, s_congreso);
    rt = esc_kv_round_trips(f->kv);
    assert_int_equal(agg_counters_flush(f->c), ESC_OK);
    assert_int_equal(agg_counters_flush(f->c), ESC_OK);
    assert_int_equal(esc_kv_round_trips(f->kv) - rt, 1);
    s_check(f, "t:c:{gob/congreso}:m:1794873600", 2, 6, 5, 0, 0);
    s_check(f, "t:t:{gob/congreso}", 6, 123, 7, 2, 4);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 7);
}

static void
test_counters_ttl_per_resolution(void **state)
{
    struct fix *f = *state;
    long long ttl;

    s_add(f, AT(100), 1, 0, 0, 0, s_congreso);
    assert_int_equal(agg_counters_flush(f->c), ESC_OK);
    ttl = s_int_cmd(f, "TTL", "t:c:{gob/congreso}:m:1794787260");
    assert_true(ttl > 110 && ttl <= 120);
    ttl = s_int_cmd(f, "TTL", "t:c:{gob/congreso}:h:1794787200");
    assert_true(ttl > 7190 && ttl <= 7200);
    ttl = s_int_cmd(f, "TTL", "t:c:{gob/congreso}:d:1794787200");
    assert_true(ttl > 89990 && ttl <= 90000);
    assert_int_equal(s_int_cmd(f, "TTL", "t:t:{gob/congreso}"), -1); /* totals never expire */
}

static void
test_counters_multi_topic_post(void **state)
{
    struct fix *f = *state;
    static const char *const two[] = { "gob/congreso", "dev/digital", NULL };

    s_add(f, AT(60), 40, 1, 1, 1, two);
    assert_int_equal(agg_counters_flush(f->c), ESC_OK);
    s_check(f, "t:t:{gob/congreso}", 1, 40, 1, 1, 1);
    s_check(f, "t:t:{dev/digital}", 1, 40, 1, 1, 1);
    s_check(f, "t:c:{dev/digital}:m:1794787260", 1, 40, 1, 1, 1);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 1);
}

/* Flushes until ESC_OK or ~5 s (the Redis client backs off after failed connects). */
static esc_rc
s_flush_until_ok(struct fix *f)
{
    struct timespec ts = { 0, 50 * 1000000L };
    esc_rc rc = ESC_RETRY;
    int i;

    for (i = 0; i < 100 && rc != ESC_OK; i++) {
        rc = agg_counters_flush(f->c);
        if (rc != ESC_OK) {
            nanosleep(&ts, NULL);
        }
    }
    return rc;
}

static void
test_counters_redis_killed_then_restarted(void **state)
{
    struct fix *f = *state;
    int i;

    /* A: three posts reach Redis */
    for (i = 0; i < 3; i++) {
        s_add(f, AT(60), 1, 0, 0, 0, s_congreso);
    }
    assert_int_equal(agg_counters_flush(f->c), ESC_OK);
    s_check(f, "t:t:{gob/congreso}", 3, 3, 0, 0, 0);

    /* B: two posts and an alert list entry, then Redis dies before the flush */
    for (i = 0; i < 2; i++) {
        s_add(f, AT(120), 10, 1, 0, 0, s_congreso);
    }
    agg_counters_push_list(f->c, "t:alerts:{gob}", "{\"id\":\"x\"}", 1000);
    assert_int_equal(esc_testenv_redis_kill(&f->redis), 0);
    assert_int_equal(agg_counters_flush(f->c), ESC_RETRY);
    assert_true(agg_counters_pending(f->c));
    assert_int_equal(agg_counters_pending_keys(f->c), 4);

    /* C: four more posts while Redis is down merge into the pending deltas */
    for (i = 0; i < 4; i++) {
        s_add(f, AT(180), 100, 0, 1, 0, s_congreso);
    }
    assert_int_equal(agg_counters_flush(f->c), ESC_RETRY);
    assert_int_equal(agg_counters_pending_keys(f->c), 5); /* one more minute bucket */

    /* Redis comes back empty (no persistence): exactly B + C arrive, A is not sent again */
    assert_int_equal(esc_testenv_redis_restart(&f->redis), 0);
    assert_int_equal(s_flush_until_ok(f), ESC_OK);
    assert_false(agg_counters_pending(f->c));
    s_check(f, "t:t:{gob/congreso}", 6, 420, 2, 4, 0);
    s_check(f, "t:c:{gob/congreso}:m:1794787320", 2, 20, 2, 0, 0);
    s_check(f, "t:c:{gob/congreso}:m:1794787380", 4, 400, 0, 4, 0);
    assert_int_equal(s_hget(f, "t:c:{gob/congreso}:m:1794787260", "posts"), 0);
    s_check(f, "t:c:{gob/congreso}:d:1794787200", 6, 420, 2, 4, 0);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 6);
    assert_int_equal(s_int_cmd(f, "LLEN", "t:alerts:{gob}"), 1);
    assert_true(s_int_cmd(f, "TTL", "t:c:{gob/congreso}:m:1794787380") > 0);
}

/* More keys than one chunk: two round trips, every count exact. */
static void
test_counters_backlog_in_chunks(void **state)
{
    struct fix *f = *state;
    uint64_t rt;
    int i;

    for (i = 0; i < 5000; i++) {
        s_add(f, AT((int64_t)i * 60), 1, 0, 0, 0, s_congreso);
    }
    /* 5000 minutes + 84 hours + 4 days + 1 total */
    assert_int_equal(agg_counters_pending_keys(f->c), 5089);
    rt = esc_kv_round_trips(f->kv);
    assert_int_equal(agg_counters_flush(f->c), ESC_OK);
    assert_int_equal(esc_kv_round_trips(f->kv) - rt, 2);
    assert_int_equal(s_hget(f, "t:t:{gob/congreso}", "posts"), 5000);
    assert_int_equal(s_hget(f, "t:c:{gob/congreso}:m:1795087140", "posts"), 1); /* i = 4999 */
    assert_int_equal(s_hget(f, "t:c:{gob/congreso}:h:1794787200", "posts"), 60);
    assert_int_equal(s_hget(f, "t:c:{gob/congreso}:d:1795046400", "posts"), 5000 - 3 * 1440);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 5000);
}

/* At max_pending_keys the counters say so (the aggregator stops reading), and a flush that
 * succeeds makes room again. */
static void
test_counters_full_at_limit(void **state)
{
    struct fix *f = *state;
    int i;

    s_new_counters(f, 8);
    for (i = 0; i < 4; i++) {
        s_add(f, AT((int64_t)i * 60), 1, 0, 0, 0, s_congreso);
        assert_false(agg_counters_full(f->c));
    }
    /* 4 minutes + hour + day + total = 7; one more minute reaches 8 */
    s_add(f, AT(4 * 60), 1, 0, 0, 0, s_congreso);
    assert_true(agg_counters_full(f->c));
    assert_int_equal(agg_counters_flush(f->c), ESC_OK);
    assert_false(agg_counters_full(f->c));
    assert_int_equal(s_hget(f, "t:t:{gob/congreso}", "posts"), 5);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counters_exact_buckets, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_ttl_per_resolution, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_multi_topic_post, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_redis_killed_then_restarted, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_backlog_in_chunks, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_full_at_limit, s_setup, s_teardown),
    };

    signal(SIGPIPE, SIG_IGN); /* writes to a killed redis-server must fail, not kill us */
    esc_log_init("test", ESC_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
