#define ESC_LOG_MODULE "test"
/* Component tests of the counters (counters.c) against a real redis-server started by
 * esc_testenv: exact minute/hour/day buckets and totals with the sentiment, language and
 * platform splits, TTLs, top lists (authors with influence and components, hashtags, terms,
 * top posts with their hash), duplicates (same flush, later flush, a restarted process, two
 * processes, mixed with new posts), Redis killed mid-run and restarted empty, a flush whose
 * replies never arrive (DEBUG SLEEP past the client timeout, so Redis applies the calls after
 * the client gave up), late posts, bucket expiry, large topics in several parts, the pending
 * bound, the commands per post and flushes on the flush thread while posts are recorded. */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

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
    struct agg_counters_opts o;
};

/* A post to add; zero/NULL fields take defaults (platform "mastodon", language "es"). */
struct tp {
    const char *id;
    int64_t ms;
    int64_t followers;
    int64_t likes;
    int64_t reposts;
    int64_t replies;
    double sentiment;
    const char *language;
    const char *platform;
    const char *author;
    const char *text;
    const char *url;
    const char *tags[4]; /* the platform's hashtags, NULL-terminated */
};

static void
s_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

static void
s_default_opts(struct agg_counters_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->prefix = "t";
    o->retention_s[AGG_RES_MINUTE] = 120;
    o->retention_s[AGG_RES_HOUR] = 7200;
    o->retention_s[AGG_RES_DAY] = 90000;
    o->dedupe_window_s = 3600;
    o->max_pending_posts = 1000000;
    o->recent_ids = 4096;
    o->top_n = 5;
    o->top_posts_n = 3;
    o->top_flush_max = 100;
    o->instance = "i1";
}

static void
s_renew(struct fix *f)
{
    agg_counters_destroy(&f->c);
    f->c = agg_counters_new(f->kv, &f->o);
}

static int
s_setup(void **state)
{
    static const char *const args[] = { "--enable-debug-command", "yes", NULL };
    struct fix *f = esc_calloc(1, sizeof(*f));
    struct esc_kv_opts o;

    if (esc_testenv_redis_start_args(&f->redis, 0, args) != 0) {
        esc_free(f);
        return -1;
    }
    esc_testenv_kv_opts(&f->redis, &o);
    f->kv = esc_kv_new(&o);
    s_default_opts(&f->o);
    s_renew(f);
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

/* Adds t to c for the NULL-terminated topics; returns agg_counters_add's result. */
static int
s_add_to(agg_counters_t *c, const struct tp *t, const char *const *topics)
{
    struct esc_post p;
    size_t n = 0;
    size_t i;
    int r;

    esc_post_init(&p);
    p.id = esc_strdup(t->id);
    p.platform = esc_strdup(t->platform != NULL ? t->platform : "mastodon");
    p.text = esc_strdup(t->text != NULL ? t->text : "");
    p.created_at = t->ms;
    p.followers = t->followers;
    p.likes = t->likes;
    p.reposts = t->reposts;
    p.replies = t->replies;
    p.sentiment = t->sentiment;
    p.language = esc_strdup(t->language != NULL ? t->language : "es");
    if (t->author != NULL) {
        p.author = esc_strdup(t->author);
        p.author_name = esc_strdup(t->author + 1);
    }
    if (t->url != NULL) {
        p.url = esc_strdup(t->url);
    }
    for (i = 0; i < 4 && t->tags[i] != NULL; i++) {
        esc_strlist_push(&p.hashtags, &p.n_hashtags, t->tags[i]);
    }
    while (topics != NULL && topics[n] != NULL) {
        n++;
    }
    r = agg_counters_add(c, &p, topics, n);
    esc_post_fini(&p);
    return r;
}

static int
s_add(struct fix *f, const struct tp *t, const char *const *topics)
{
    return s_add_to(f->c, t, topics);
}

/* Adds a plain post (id, time, followers, likes, reposts, replies). */
static int
s_addn(struct fix *f, const char *id, int64_t ms, int64_t followers, int64_t likes,
       int64_t reposts, int64_t replies, const char *const *topics)
{
    struct tp t;

    memset(&t, 0, sizeof(t));
    t.id = id;
    t.ms = ms;
    t.followers = followers;
    t.likes = likes;
    t.reposts = reposts;
    t.replies = replies;
    return s_add(f, &t, topics);
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

static char *
s_hget_str(struct fix *f, const char *key, const char *field)
{
    struct esc_kv_val v;
    char *out;

    assert_int_equal(esc_kv_cmd(f->kv, &v, "HGET %s %s", key, field), ESC_OK);
    out = esc_strdup(v.type == ESC_KV_STR ? v.str : "(nil)");
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

/* ZSCORE key member, or -1 when absent. */
static double
s_zscore(struct fix *f, const char *key, const char *member)
{
    struct esc_kv_val v;
    double out = -1;

    assert_int_equal(esc_kv_cmd(f->kv, &v, "ZSCORE %s %s", key, member), ESC_OK);
    if (v.type == ESC_KV_STR) {
        out = strtod(v.str, NULL);
    }
    esc_kv_val_fini(&v);
    return out;
}

/* Asserts the six classic fields of hash key. */
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

/* Asserts the sentiment fields of hash key. */
static void
s_check_sent(struct fix *f, const char *key, long long pos, long long neu, long long neg,
             long long milli)
{
    assert_int_equal(s_hget(f, key, "sentiment_pos"), pos);
    assert_int_equal(s_hget(f, key, "sentiment_neu"), neu);
    assert_int_equal(s_hget(f, key, "sentiment_neg"), neg);
    assert_int_equal(s_hget(f, key, "sentiment_milli"), milli);
}

/* Flushes until ESC_OK or ~5 s (the Redis client backs off after failed connects). */
static esc_rc
s_flush_until_ok(struct fix *f)
{
    esc_rc rc = ESC_RETRY;
    int i;

    for (i = 0; i < 100 && rc != ESC_OK; i++) {
        rc = agg_counters_flush(f->c, 1);
        if (rc != ESC_OK) {
            s_sleep_ms(50);
        }
    }
    return rc;
}

static const char *const s_congreso[] = { "gob/congreso", NULL };

/* Happy path: posts around midnight and 01:00 land in exactly the right buckets, with the
 * sentiment classes (thresholds +-0.05 inclusive), languages and platforms. */
static void
test_counters_exact_buckets(void **state)
{
    struct fix *f = *state;
    struct tp t[6];
    uint64_t rt;
    uint64_t cmds;
    char key[128];
    int i;

    memset(t, 0, sizeof(t));
    t[0] = (struct tp){ .id = "1", .ms = AT(86400 - 30), .followers = 100, .likes = 1,
                        .reposts = 2, .replies = 3, .sentiment = 0.5 };
    t[1] = (struct tp){ .id = "2", .ms = AT(86400) - 1, .followers = 10, .replies = 1,
                        .sentiment = -0.5, .platform = "bluesky" };
    t[2] = (struct tp){ .id = "3", .ms = AT(86400), .followers = 5, .likes = 4,
                        .sentiment = 0.04, .language = "en" };
    t[3] = (struct tp){ .id = "4", .ms = AT(86400 + 3550), .followers = -3, .likes = 1,
                        .sentiment = 0.05 };
    t[4] = (struct tp){ .id = "5", .ms = AT(86400 + 3600), .followers = 7, .sentiment = -0.05,
                        .language = "und" };
    t[5] = (struct tp){ .id = "6", .ms = AT(86400 + 3600), .followers = 1000, .likes = 9 };
    for (i = 0; i < 5; i++) {
        assert_int_equal(s_add(f, &t[i], s_congreso), 1);
    }
    assert_int_equal(s_add(f, &t[5], NULL), 1); /* matched no topic: only processed */
    assert_int_equal(agg_counters_pending_posts(f->c), 5);
    rt = esc_kv_round_trips(f->kv);
    cmds = esc_kv_commands(f->kv);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    /* SCRIPT LOAD, the round with the topic's call, the round with its top lists (final
     * flush: written now), the processed call */
    assert_int_equal(esc_kv_round_trips(f->kv) - rt, 4);
    assert_int_equal(esc_kv_commands(f->kv) - cmds, 4);
    assert_false(agg_counters_pending(f->c));

    s_check(f, "t:c:{gob/congreso}:m:1794873540", 2, 110, 1, 2, 4);
    s_check_sent(f, "t:c:{gob/congreso}:m:1794873540", 1, 0, 1, 0);
    assert_int_equal(s_hget(f, "t:c:{gob/congreso}:m:1794873540", "lang:es"), 2);
    assert_int_equal(s_hget(f, "t:c:{gob/congreso}:m:1794873540", "platform:mastodon"), 1);
    assert_int_equal(s_hget(f, "t:c:{gob/congreso}:m:1794873540", "platform:bluesky"), 1);
    s_check(f, "t:c:{gob/congreso}:m:1794873600", 1, 5, 4, 0, 0);
    s_check_sent(f, "t:c:{gob/congreso}:m:1794873600", 0, 1, 0, 40);
    assert_int_equal(s_hget(f, "t:c:{gob/congreso}:m:1794873600", "lang:en"), 1);
    s_check(f, "t:c:{gob/congreso}:m:1794877140", 1, 0, 1, 0, 0);
    s_check(f, "t:c:{gob/congreso}:m:1794877200", 1, 7, 0, 0, 0);
    s_check_sent(f, "t:c:{gob/congreso}:m:1794877200", 0, 0, 1, -50);
    s_check(f, "t:c:{gob/congreso}:h:1794870000", 2, 110, 1, 2, 4);
    s_check(f, "t:c:{gob/congreso}:h:1794873600", 2, 5, 5, 0, 0);
    s_check(f, "t:c:{gob/congreso}:h:1794877200", 1, 7, 0, 0, 0);
    s_check(f, "t:c:{gob/congreso}:d:1794787200", 2, 110, 1, 2, 4);
    s_check(f, "t:c:{gob/congreso}:d:1794873600", 3, 12, 5, 0, 0);
    s_check(f, "t:t:{gob/congreso}", 5, 122, 6, 2, 4);
    s_check_sent(f, "t:t:{gob/congreso}", 2, 1, 2, 40);
    assert_int_equal(s_hget(f, "t:t:{gob/congreso}", "lang:es"), 3);
    assert_int_equal(s_hget(f, "t:t:{gob/congreso}", "lang:en"), 1);
    assert_int_equal(s_hget(f, "t:t:{gob/congreso}", "lang:und"), 1);
    assert_int_equal(s_hget(f, "t:t:{gob/congreso}", "platform:mastodon"), 4);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 6);
    assert_string_equal(agg_counters_key("t", "gob/congreso", AGG_RES_HOUR, AT(86400 + 3599),
                                         key, sizeof(key)),
                        "t:c:{gob/congreso}:h:1794873600");

    /* a second flush adds deltas to the same hashes; an empty flush sends nothing */
    assert_int_equal(s_addn(f, "7", AT(86400), 1, 1, 0, 0, s_congreso), 1);
    rt = esc_kv_round_trips(f->kv);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    assert_int_equal(esc_kv_round_trips(f->kv) - rt, 3);
    s_check(f, "t:c:{gob/congreso}:m:1794873600", 2, 6, 5, 0, 0);
    s_check(f, "t:t:{gob/congreso}", 6, 123, 7, 2, 4);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 7);
}

static void
test_counters_ttls(void **state)
{
    struct fix *f = *state;
    struct tp t;
    long long ttl;
    char key[128];

    memset(&t, 0, sizeof(t));
    t = (struct tp){ .id = "1", .ms = AT(100), .followers = 1, .author = "@ana",
                     .text = "presupuesto aprobado", .likes = 2 };
    s_add(f, &t, s_congreso);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    ttl = s_int_cmd(f, "TTL", "t:c:{gob/congreso}:m:1794787260");
    assert_true(ttl > 110 && ttl <= 120);
    ttl = s_int_cmd(f, "TTL", "t:c:{gob/congreso}:h:1794787200");
    assert_true(ttl > 7190 && ttl <= 7200);
    ttl = s_int_cmd(f, "TTL", "t:c:{gob/congreso}:d:1794787200");
    assert_true(ttl > 89990 && ttl <= 90000);
    assert_int_equal(s_int_cmd(f, "TTL", "t:t:{gob/congreso}"), -1); /* totals never expire */
    ttl = s_int_cmd(f, "TTL", "t:seen:{gob/congreso}:1794787200");
    assert_true(ttl > 3590 && ttl <= 3600);
    assert_int_equal(s_int_cmd(f, "SCARD", "t:seen:{gob/congreso}:1794787200"), 1);
    agg_counters_top_key("t", "gob/congreso", AGG_TOP_TERMS, AT(100), key, sizeof(key));
    assert_string_equal(key, "t:top:{gob/congreso}:terms:1794787200");
    ttl = s_int_cmd(f, "TTL", key);
    assert_true(ttl > 89990 && ttl <= 90000);
    ttl = s_int_cmd(f, "TTL", "t:top:{gob/congreso}:authors:1794787200:info");
    assert_true(ttl > 89990 && ttl <= 90000);
    ttl = s_int_cmd(f, "TTL", "t:top:{gob/congreso}:posts:1794787200");
    assert_true(ttl > 89990 && ttl <= 90000);
    ttl = s_int_cmd(f, "TTL", "t:post:{gob/congreso}:mastodon:1");
    assert_true(ttl > 89990 && ttl <= 90000);
    ttl = s_int_cmd(f, "TTL", "{t:agg:processed}:b");
    assert_true(ttl > 0);
}

/* The flush script adds a bucket's deltas with one HMGET and one HSET; sums a double cannot
 * hold exactly (2^53 and more) must still be exact (HINCRBY), and a bucket's TTL is set when
 * the bucket is created, not pushed back by later writes. */
static void
test_counters_exact_beyond_doubles_and_ttl_once(void **state)
{
    struct fix *f = *state;
    char *reach;
    long long ttl;

    /* 2^60 followers: reach 1152921504606846976, then + 5 and + 2^53 + 1 */
    s_addn(f, "big1", AT(100), 1152921504606846976LL, 1, 0, 0, s_congreso);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    s_addn(f, "big2", AT(101), 5, 1, 0, 0, s_congreso);
    s_addn(f, "big3", AT(102), 9007199254740993LL, 1, 0, 0, s_congreso);
    assert_int_equal(esc_kv_cmd(f->kv, NULL, "EXPIRE %s %d", "t:c:{gob/congreso}:m:1794787260",
                                50),
                     ESC_OK);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    reach = s_hget_str(f, "t:c:{gob/congreso}:m:1794787260", "reach");
    assert_string_equal(reach, "1161928703861587974");
    esc_free(reach);
    reach = s_hget_str(f, "t:t:{gob/congreso}", "reach");
    assert_string_equal(reach, "1161928703861587974");
    esc_free(reach);
    assert_int_equal(s_hget(f, "t:c:{gob/congreso}:m:1794787260", "posts"), 3);
    assert_int_equal(s_hget(f, "t:c:{gob/congreso}:m:1794787260", "likes"), 3);
    ttl = s_int_cmd(f, "TTL", "t:c:{gob/congreso}:m:1794787260");
    assert_true(ttl > 0 && ttl <= 50); /* the second write kept the TTL it had */
}

/* With top_step_ms, due top lists are written a few topics per flush: the flushes in between
 * keep counting, every topic's lists end up written once, and nothing counted in the meantime
 * is lost (it goes to the next top-list period). */
static void
test_counters_top_lists_in_slices(void **state)
{
    struct fix *f = *state;
    enum { NT = 400 };
    char names[NT][32];
    const char *one[2];
    char key[128];
    int i;
    int flushes = 0;
    int missing = 0;

    f->o.top_flush_ms = 0;
    f->o.top_step_ms = 1;
    s_renew(f);
    for (i = 0; i < NT; i++) {
        struct tp t;
        char id[16];

        snprintf(names[i], sizeof(names[i]), "gob/t%02d", i);
        snprintf(id, sizeof(id), "p%d", i);
        memset(&t, 0, sizeof(t));
        t = (struct tp){ .id = id, .ms = AT(60), .author = "@ana", .text = "presupuesto lleno" };
        one[0] = names[i];
        one[1] = NULL;
        s_add(f, &t, one);
    }
    assert_int_equal(agg_counters_flush(f->c, 0), ESC_OK);
    for (i = 0; i < NT; i++) {
        agg_counters_top_key("t", names[i], AGG_TOP_TERMS, AT(60), key, sizeof(key));
        missing += s_zscore(f, key, "presupuesto") < 0;
    }
    assert_true(missing > 0); /* one 1 ms slice of 4-call rounds cannot write 400 topics */
    assert_true(agg_counters_pending(f->c));
    /* a post counted while the slices go on lands in the next period's lists */
    {
        struct tp t;

        memset(&t, 0, sizeof(t));
        t = (struct tp){ .id = "late", .ms = AT(61), .author = "@bob", .text = "presupuesto" };
        one[0] = names[0];
        one[1] = NULL;
        s_add(f, &t, one);
    }
    while (agg_counters_pending(f->c) && flushes < 1000) {
        assert_int_equal(agg_counters_flush(f->c, 0), ESC_OK);
        flushes++;
    }
    assert_false(agg_counters_pending(f->c));
    assert_true(flushes >= 1);
    for (i = 0; i < NT; i++) {
        agg_counters_top_key("t", names[i], AGG_TOP_TERMS, AT(60), key, sizeof(key));
        assert_int_equal((long long)s_zscore(f, key, "presupuesto"), i == 0 ? 2 : 1);
        assert_int_equal((long long)s_zscore(f, key, "lleno"), 1);
    }
    assert_int_equal(s_hget(f, "t:t:{gob/t00}", "posts"), 2);
}

static void
test_counters_multi_topic_post(void **state)
{
    struct fix *f = *state;
    static const char *const two[] = { "gob/congreso", "dev/digital", NULL };
    static const char *const keys[] = { "t:post:{gob/congreso}:mastodon:1",
                                        "t:post:{dev/digital}:mastodon:1" };
    struct tp t;
    char *v;
    int i;

    memset(&t, 0, sizeof(t));
    t = (struct tp){ .id = "1", .ms = AT(60), .followers = 40, .likes = 1, .reposts = 1,
                     .replies = 1, .author = "@ana", .text = "reforma digital del congreso" };
    s_add(f, &t, two);
    /* a second post in one topic only: the first one's blob is shared by both topics' top
     * posts, this one's is not */
    memset(&t, 0, sizeof(t));
    t = (struct tp){ .id = "2", .ms = AT(61), .likes = 9, .author = "@eva",
                     .text = "solo en congreso" };
    s_add(f, &t, s_congreso);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    s_check(f, "t:t:{gob/congreso}", 2, 40, 10, 1, 1);
    s_check(f, "t:t:{dev/digital}", 1, 40, 1, 1, 1);
    s_check(f, "t:c:{dev/digital}:m:1794787260", 1, 40, 1, 1, 1);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 2);
    /* both topics show the shared post in full */
    for (i = 0; i < 2; i++) {
        assert_int_equal(s_hget(f, keys[i], "engagement"), 3);
        v = s_hget_str(f, keys[i], "author");
        assert_string_equal(v, "@ana");
        esc_free(v);
        v = s_hget_str(f, keys[i], "text");
        assert_string_equal(v, "reforma digital del congreso");
        esc_free(v);
    }
    assert_int_equal((long long)s_zscore(f, "t:top:{dev/digital}:posts:1794787200",
                                         "mastodon:1"), 3);
    assert_int_equal((long long)s_zscore(f, "t:top:{gob/congreso}:posts:1794787200",
                                         "mastodon:2"), 9);
    assert_true(s_zscore(f, "t:top:{dev/digital}:posts:1794787200", "mastodon:2") < 0);
}

/* Top lists of one day: authors (influence + components), hashtags (the platform's, folded,
 * or the text's), terms, and the top posts by engagement with the hash that shows them. */
static void
test_counters_top_lists(void **state)
{
    struct fix *f = *state;
    struct tp t[5];
    double want;
    char *s;
    int i;
    const char *au = "t:top:{gob/congreso}:authors:1794787200";
    const char *ai = "t:top:{gob/congreso}:authors:1794787200:info";
    const char *tg = "t:top:{gob/congreso}:hashtags:1794787200";
    const char *tm = "t:top:{gob/congreso}:terms:1794787200";
    const char *tpz = "t:top:{gob/congreso}:posts:1794787200";

    memset(t, 0, sizeof(t));
    t[0] = (struct tp){ .id = "a1", .ms = AT(600), .followers = 1000, .likes = 5, .reposts = 4,
                        .author = "@ana", .text = "Partido de FÚTBOL en el estadio",
                        .url = "https://x.example/a1", .tags = { "Fútbol", "CDMX", NULL } };
    t[1] = (struct tp){ .id = "a2", .ms = AT(700), .followers = 1000, .author = "@ana",
                        .text = "el partido sigue" };
    t[2] = (struct tp){ .id = "b1", .ms = AT(800), .author = "@bob",
                        .text = "#futbol hoy con @ana: partido" };
    t[3] = (struct tp){ .id = "c1", .ms = AT(900), .followers = 10, .likes = 5,
                        .author = "@cris", .text = "nada" };
    t[4] = (struct tp){ .id = "d1", .ms = AT(1000), .followers = 10, .likes = 7,
                        .author = "@dani", .text = "estadio lleno" };
    for (i = 0; i < 5; i++) {
        s_add(f, &t[i], s_congreso);
    }
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);

    want = agg_counters_influence(1000, 9) + agg_counters_influence(1000, 0);
    assert_true(fabs(s_zscore(f, au, "@ana") - want) < 0.002);
    assert_true(fabs(s_zscore(f, au, "@bob") - 1.0) < 0.002);
    assert_int_equal(s_hget(f, ai, "posts:@ana"), 2);
    assert_int_equal(s_hget(f, ai, "reach:@ana"), 2000);
    assert_int_equal(s_hget(f, ai, "engagement:@ana"), 9);
    assert_int_equal(s_hget(f, ai, "posts:@bob"), 1);

    assert_true(s_zscore(f, tg, "fútbol") < 0);   /* folded: accents go */
    assert_int_equal((long long)s_zscore(f, tg, "futbol"), 2); /* a1's list, b1's text */
    assert_int_equal((long long)s_zscore(f, tg, "cdmx"), 1);
    assert_int_equal((long long)s_zscore(f, tm, "partido"), 3);
    assert_int_equal((long long)s_zscore(f, tm, "estadio"), 2);
    assert_int_equal((long long)s_zscore(f, tm, "futbol"), 1);  /* a1's text */
    assert_int_equal((long long)s_zscore(f, tm, "#futbol"), 1); /* b1's text */
    assert_true(s_zscore(f, tm, "ana") < 0);                    /* mention */
    assert_true(s_zscore(f, tm, "el") < 0);

    /* top 3 posts by engagement: a1 (9), d1 (7), c1 (5); a2 and b1 (0) are not kept */
    assert_int_equal(s_int_cmd(f, "ZCARD", tpz), 3);
    assert_int_equal((long long)s_zscore(f, tpz, "mastodon:a1"), 9);
    assert_int_equal((long long)s_zscore(f, tpz, "mastodon:d1"), 7);
    assert_int_equal((long long)s_zscore(f, tpz, "mastodon:c1"), 5);
    s = s_hget_str(f, "t:post:{gob/congreso}:mastodon:a1", "text");
    assert_string_equal(s, "Partido de FÚTBOL en el estadio");
    esc_free(s);
    s = s_hget_str(f, "t:post:{gob/congreso}:mastodon:a1", "author");
    assert_string_equal(s, "@ana");
    esc_free(s);
    s = s_hget_str(f, "t:post:{gob/congreso}:mastodon:a1", "url");
    assert_string_equal(s, "https://x.example/a1");
    esc_free(s);
    assert_int_equal(s_hget(f, "t:post:{gob/congreso}:mastodon:a1", "engagement"), 9);
    assert_int_equal(s_hget(f, "t:post:{gob/congreso}:mastodon:a1", "created_at"), AT(600));
    assert_int_equal(s_int_cmd(f, "EXISTS", "t:post:{gob/congreso}:mastodon:a2"), 0);

    /* a later flush: a better post pushes the lowest out, its hash is deleted */
    t[0] = (struct tp){ .id = "e1", .ms = AT(1100), .likes = 50, .author = "@eva" };
    s_add(f, &t[0], s_congreso);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    assert_int_equal(s_int_cmd(f, "ZCARD", tpz), 3);
    assert_true(s_zscore(f, tpz, "mastodon:c1") < 0);
    assert_int_equal(s_int_cmd(f, "EXISTS", "t:post:{gob/congreso}:mastodon:c1"), 0);
    assert_int_equal(s_hget(f, "t:post:{gob/congreso}:mastodon:e1", "likes"), 50);
    /* ... and a worse one is not written at all */
    t[0] = (struct tp){ .id = "f1", .ms = AT(1200), .likes = 1, .author = "@fer" };
    s_add(f, &t[0], s_congreso);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    assert_int_equal(s_int_cmd(f, "EXISTS", "t:post:{gob/congreso}:mastodon:f1"), 0);
    assert_int_equal(s_hget(f, "t:c:{gob/congreso}:d:1794787200", "posts"), 7);
}

/* A flush sums a part's authors, hashtags and terms per member before they reach the top lists
 * in memory: posts of two days interleaved in one part (late posts) still count in their own
 * day's lists, a string that is a hashtag, a term and (with '@') an author counts once in each
 * list, and a part of thousands of posts with as many distinct terms keeps exact counts. */
static void
test_counters_top_lists_days_in_one_part(void **state)
{
    struct fix *f = *state;
    const char *au16 = "t:top:{gob/congreso}:authors:1794787200";
    const char *ai16 = "t:top:{gob/congreso}:authors:1794787200:info";
    const char *tg16 = "t:top:{gob/congreso}:hashtags:1794787200";
    const char *tm16 = "t:top:{gob/congreso}:terms:1794787200";
    const char *ai15 = "t:top:{gob/congreso}:authors:1794700800:info";
    const char *tg15 = "t:top:{gob/congreso}:hashtags:1794700800";
    const char *tm15 = "t:top:{gob/congreso}:terms:1794700800";
    struct tp t[5];
    char id[16];
    char text[64];
    int i;
    int day16 = 0;

    memset(t, 0, sizeof(t));
    t[0] = (struct tp){ .id = "p1", .ms = AT(60), .author = "@ana", .text = "#verde verde casa" };
    t[1] = (struct tp){ .id = "p2", .ms = AT(-3600), .author = "@ana", .text = "verde casa casa" };
    t[2] = (struct tp){ .id = "p3", .ms = AT(120), .followers = 100, .author = "@verde",
                        .text = "verde" };
    t[3] = (struct tp){ .id = "p4", .ms = AT(-1800), .author = "@ana", .text = "#verde" };
    t[4] = (struct tp){ .id = "p5", .ms = AT(180), .author = "@ana", .text = "casa" };
    for (i = 0; i < 5; i++) {
        assert_int_equal(s_add(f, &t[i], s_congreso), 1);
    }
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    assert_int_equal((long long)s_zscore(f, tm16, "verde"), 2);
    assert_int_equal((long long)s_zscore(f, tm16, "casa"), 2);
    assert_int_equal((long long)s_zscore(f, tm16, "#verde"), 1);
    assert_int_equal((long long)s_zscore(f, tg16, "verde"), 1);
    assert_int_equal(s_hget(f, ai16, "posts:@ana"), 2);
    assert_int_equal(s_hget(f, ai16, "posts:@verde"), 1);
    assert_int_equal(s_hget(f, ai16, "reach:@verde"), 100);
    assert_true(s_zscore(f, au16, "@verde") > 1.0);
    assert_int_equal((long long)s_zscore(f, tm15, "verde"), 1);
    assert_int_equal((long long)s_zscore(f, tm15, "casa"), 1);
    assert_int_equal((long long)s_zscore(f, tm15, "#verde"), 1);
    assert_int_equal((long long)s_zscore(f, tg15, "verde"), 1);
    assert_int_equal(s_hget(f, ai15, "posts:@ana"), 2);

    /* 3,000 posts (two parts), the day changing every 100, each with a term of its own */
    for (i = 0; i < 3000; i++) {
        int64_t ms = (i / 100) % 2 == 0 ? AT(300 + i) : AT(-7200 - i);

        snprintf(id, sizeof(id), "q%d", i);
        snprintf(text, sizeof(text), "techo palabra%d", i);
        memset(&t[0], 0, sizeof(t[0]));
        t[0] = (struct tp){ .id = id, .ms = ms, .author = i % 2 == 0 ? "@ana" : "@bea",
                            .text = text };
        assert_int_equal(s_add(f, &t[0], s_congreso), 1);
        day16 += (i / 100) % 2 == 0;
    }
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    assert_int_equal((long long)s_zscore(f, tm16, "techo"), day16);
    assert_int_equal((long long)s_zscore(f, tm15, "techo"), 3000 - day16);
    assert_int_equal(s_hget(f, ai16, "posts:@ana"), 2 + day16 / 2);
    assert_int_equal(s_hget(f, ai15, "posts:@bea"), (3000 - day16) / 2);
    assert_int_equal((long long)s_zscore(f, tm16, "verde"), 2); /* the earlier write stays */
    assert_int_equal(s_int_cmd(f, "ZCARD", tm16), 5); /* trimmed back to top_n */
}

/* Lists are trimmed back to top_n once they exceed 2 x top_n, with the components of the
 * authors that fall out; a flush sends at most top_flush_max members per list. */
static void
test_counters_top_trim_and_flush_max(void **state)
{
    struct fix *f = *state;
    const char *au = "t:top:{gob/congreso}:authors:1794787200";
    const char *ai = "t:top:{gob/congreso}:authors:1794787200:info";
    char id[16];
    char author[16];
    struct tp t;
    int i;

    f->o.top_n = 2;
    f->o.top_flush_max = 3;
    s_renew(f);
    /* 6 authors, author k with k posts: the flush sends the best 3 (6, 5, 4) */
    for (i = 1; i <= 6; i++) {
        int k;

        for (k = 0; k < i; k++) {
            memset(&t, 0, sizeof(t));
            snprintf(id, sizeof(id), "%d-%d", i, k);
            snprintf(author, sizeof(author), "@u%d", i);
            t.id = id;
            t.ms = AT(60);
            t.author = author;
            s_add(f, &t, s_congreso);
        }
    }
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    assert_int_equal(s_int_cmd(f, "ZCARD", au), 3);
    assert_true(fabs(s_zscore(f, au, "@u6") - 6.0) < 0.01);
    assert_true(s_zscore(f, au, "@u3") < 0);
    /* 3 more authors: 6 members > 2 x 2, trimmed to the best 2 and their components */
    for (i = 7; i <= 9; i++) {
        memset(&t, 0, sizeof(t));
        snprintf(id, sizeof(id), "%d", i);
        snprintf(author, sizeof(author), "@u%d", i);
        t.id = id;
        t.ms = AT(60);
        t.author = author;
        s_add(f, &t, s_congreso);
    }
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    assert_int_equal(s_int_cmd(f, "ZCARD", au), 2);
    assert_true(s_zscore(f, au, "@u6") > 0 && s_zscore(f, au, "@u5") > 0);
    assert_int_equal(s_int_cmd(f, "HLEN", ai), 6);
    assert_int_equal(s_hget(f, ai, "posts:@u6"), 6);
    assert_int_equal(s_hget(f, ai, "posts:@u7"), 0);
    /* counts stay exact whatever the lists keep */
    assert_int_equal(s_hget(f, "t:t:{gob/congreso}", "posts"), 21 + 3);
}

/* Past top_max_entries the top lists in memory keep only their best members: many one-off
 * hashtags force prunes between the top-list writes, and the lists' leaders still reach Redis
 * with exact counts (they are never pruned), while the posts are all counted. */
static void
test_counters_top_lists_pruned(void **state)
{
    struct fix *f = *state;
    const char *tg = "t:top:{gob/congreso}:hashtags:1794787200";
    struct agg_counters_stats st;
    char id[32];
    char tag[32];
    struct tp t;
    int r;
    int i;

    f->o.top_max_entries = 64;
    f->o.top_flush_max = 4;
    f->o.top_flush_ms = 3600000; /* written at the final flush only */
    s_renew(f);
    for (r = 0; r < 10; r++) {
        for (i = 0; i < 30; i++) {
            memset(&t, 0, sizeof(t));
            snprintf(id, sizeof(id), "p%d-%d", r, i);
            snprintf(tag, sizeof(tag), "frio%dx%d", r, i);
            t.id = id;
            t.ms = AT(60 + r);
            t.text = "nada";
            t.tags[0] = "caliente";
            t.tags[1] = tag;
            t.tags[2] = i % 2 == 0 ? "tibio" : NULL;
            s_add(f, &t, s_congreso);
        }
        assert_int_equal(agg_counters_flush(f->c, 0), ESC_OK);
    }
    agg_counters_get_stats(f->c, &st);
    assert_true(st.top_prunes >= 2);
    assert_int_equal(s_int_cmd(f, "EXISTS", tg), 0); /* not written yet */
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    assert_int_equal((long long)s_zscore(f, tg, "caliente"), 300);
    assert_int_equal((long long)s_zscore(f, tg, "tibio"), 150);
    assert_true(s_int_cmd(f, "ZCARD", tg) <= 4);
    assert_int_equal(s_hget(f, "t:t:{gob/congreso}", "posts"), 300);
}

/* The day's top posts stay exact when the posts come in many batches: the loop's per-topic
 * bar (the engagement of the best top_posts_n offered today) keeps copies away from posts
 * that cannot make the list, not from those that can; a late post of the day before is not
 * held to today's bar, and a new day starts a new one. */
static void
test_counters_top_posts_across_batches(void **state)
{
    struct fix *f = *state;
    const char *today = "t:top:{gob/congreso}:posts:1794787200";
    const char *yesterday = "t:top:{gob/congreso}:posts:1794700800";
    const char *tomorrow = "t:top:{gob/congreso}:posts:1794873600";
    char id[32];
    struct tp t;
    int i;

    for (i = 0; i < 200; i++) {
        memset(&t, 0, sizeof(t));
        snprintf(id, sizeof(id), "p%d", i);
        t.id = id;
        t.ms = AT(60 + i);
        t.likes = (i * 37) % 200 + 1000; /* distinct: 1000..1199 in a scrambled order */
        t.author = "@a";
        t.text = "texto";
        s_add(f, &t, s_congreso);
        if (i % 20 == 19) {
            assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
        }
    }
    /* late posts of the day before, far below today's bar, and one of the next day */
    for (i = 0; i < 2; i++) {
        memset(&t, 0, sizeof(t));
        snprintf(id, sizeof(id), "late%d", i);
        t.id = id;
        t.ms = AT(-3600 - i);
        t.likes = 5 + i;
        t.text = "ayer";
        s_add(f, &t, s_congreso);
    }
    memset(&t, 0, sizeof(t));
    t.id = "next";
    t.ms = AT(86400 + 60);
    t.likes = 1;
    t.text = "mañana";
    s_add(f, &t, s_congreso);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    /* likes 1199, 1198, 1197 are posts i with (37 i) mod 200 = 199, 198, 197 */
    assert_int_equal(s_int_cmd(f, "ZCARD", today), 3);
    for (i = 0; i < 200; i++) {
        int likes = (i * 37) % 200 + 1000;

        snprintf(id, sizeof(id), "mastodon:p%d", i);
        if (likes >= 1197) {
            assert_int_equal((long long)s_zscore(f, today, id), likes);
        }
        else {
            assert_true(s_zscore(f, today, id) < 0);
        }
    }
    assert_int_equal(s_int_cmd(f, "ZCARD", yesterday), 2);
    assert_int_equal((long long)s_zscore(f, yesterday, "mastodon:late1"), 6);
    assert_int_equal((long long)s_zscore(f, tomorrow, "mastodon:next"), 1);
    assert_int_equal(s_hget(f, "t:t:{gob/congreso}", "posts"), 203);
}

static void
test_counters_duplicates(void **state)
{
    struct fix *f = *state;
    struct agg_counters_stats st;
    agg_counters_t *other;
    static const char *const two[] = { "gob/congreso", "dev/digital", NULL };
    struct tp t;

    /* the same post twice in one flush, and again in the next flush: counted once */
    assert_int_equal(s_addn(f, "1", AT(60), 10, 1, 0, 0, s_congreso), 1);
    assert_int_equal(s_addn(f, "1", AT(60), 10, 1, 0, 0, s_congreso), 0);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    assert_int_equal(s_addn(f, "1", AT(60), 10, 1, 0, 0, s_congreso), 0);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    s_check(f, "t:t:{gob/congreso}", 1, 10, 1, 0, 0);
    agg_counters_get_stats(f->c, &st);
    assert_int_equal(st.dup_memory, 2);
    /* the same id on another platform is another post */
    memset(&t, 0, sizeof(t));
    t = (struct tp){ .id = "1", .ms = AT(60), .followers = 10, .platform = "bluesky" };
    assert_int_equal(s_add(f, &t, s_congreso), 1);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    s_check(f, "t:t:{gob/congreso}", 2, 20, 1, 0, 0);

    /* a restarted aggregator (new instance, empty memory) gets posts 1 (again) and 2 (new) in
     * one part: Redis reports 1, the part is rebuilt without it and only 2 counts */
    f->o.instance = "i2";
    s_renew(f);
    assert_int_equal(s_addn(f, "1", AT(60), 10, 1, 0, 0, s_congreso), 1);
    assert_int_equal(s_addn(f, "2", AT(120), 5, 0, 0, 1, s_congreso), 1);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    agg_counters_get_stats(f->c, &st);
    assert_int_equal(st.dup_redis, 1);
    s_check(f, "t:t:{gob/congreso}", 3, 25, 1, 0, 1);
    s_check(f, "t:c:{gob/congreso}:m:1794787260", 2, 20, 1, 0, 0);
    s_check(f, "t:c:{gob/congreso}:m:1794787320", 1, 5, 0, 0, 1);
    /* processed counts consumed posts, duplicates included */
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 6);

    /* a post matched to a second topic later is new for that topic only */
    assert_int_equal(s_addn(f, "1", AT(60), 10, 1, 0, 0, two), 0); /* still in memory */
    f->o.instance = "i3";
    s_renew(f);
    assert_int_equal(s_addn(f, "1", AT(60), 10, 1, 0, 0, two), 1);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    s_check(f, "t:t:{gob/congreso}", 3, 25, 1, 0, 1);
    s_check(f, "t:t:{dev/digital}", 1, 10, 1, 0, 0);

    /* two aggregators at once, each given the same new post: counted once */
    f->o.instance = "i4";
    other = agg_counters_new(f->kv, &f->o);
    assert_int_equal(s_addn(f, "9", AT(60), 1, 0, 0, 0, s_congreso), 1);
    t = (struct tp){ .id = "9", .ms = AT(60), .followers = 1 };
    assert_int_equal(s_add_to(other, &t, s_congreso), 1);
    assert_int_equal(agg_counters_flush(other, 1), ESC_OK);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    agg_counters_destroy(&other);
    s_check(f, "t:t:{gob/congreso}", 4, 26, 1, 0, 1);
}

/* A recent-id memory of 2 ids forgets quickly: the duplicates reach Redis and are caught
 * there, also several in one part, also inside a single batch. */
static void
test_counters_duplicates_caught_by_redis(void **state)
{
    struct fix *f = *state;
    struct agg_counters_stats st;
    char id[16];
    int i;

    f->o.recent_ids = 2;
    s_renew(f);
    for (i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "p%d", i);
        assert_int_equal(s_addn(f, id, AT(60 + i * 60), 1, 0, 0, 0, s_congreso), 1);
    }
    /* p0 again inside the same batch: the in-memory set has forgotten it */
    assert_int_equal(s_addn(f, "p0", AT(60), 1, 0, 0, 0, s_congreso), 1);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    s_check(f, "t:t:{gob/congreso}", 10, 10, 0, 0, 0);
    /* 5 new ones, then all 10 again (p0 last: the 2-id memory has forgotten it by then) */
    for (i = 14; i >= 0; i--) {
        snprintf(id, sizeof(id), "p%d", i < 10 ? i : 100 + i);
        assert_int_equal(s_addn(f, id, AT(60 + i * 60), 1, 0, 0, 0, s_congreso), 1);
    }
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    agg_counters_get_stats(f->c, &st);
    assert_int_equal(st.dup_memory, 1);
    assert_int_equal(st.dup_redis, 10);
    s_check(f, "t:t:{gob/congreso}", 15, 15, 0, 0, 0);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 26);
}

static void
test_counters_redis_killed_then_restarted(void **state)
{
    struct fix *f = *state;
    struct agg_counters_stats st;
    char id[16];
    int n = 0;
    int i;

    /* A: three posts reach Redis */
    for (i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "%d", n++);
        s_addn(f, id, AT(60), 1, 0, 0, 0, s_congreso);
    }
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    s_check(f, "t:t:{gob/congreso}", 3, 3, 0, 0, 0);

    /* B: two posts and an alert list entry, then Redis dies before the flush */
    for (i = 0; i < 2; i++) {
        snprintf(id, sizeof(id), "%d", n++);
        s_addn(f, id, AT(120), 10, 1, 0, 0, s_congreso);
    }
    agg_counters_push_list(f->c, "t:alerts:{gob}", "{\"id\":\"x\"}", 1000);
    assert_int_equal(esc_testenv_redis_kill(&f->redis), 0);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_RETRY);
    assert_true(agg_counters_pending(f->c));
    assert_int_equal(agg_counters_pending_posts(f->c), 2);

    /* C: four more posts while Redis is down wait in the open batch */
    for (i = 0; i < 4; i++) {
        snprintf(id, sizeof(id), "%d", n++);
        s_addn(f, id, AT(180), 100, 0, 1, 0, s_congreso);
    }
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_RETRY);
    assert_int_equal(agg_counters_pending_posts(f->c), 6);

    /* Redis comes back empty (no persistence, no scripts): exactly B + C arrive */
    assert_int_equal(esc_testenv_redis_restart(&f->redis), 0);
    assert_int_equal(s_flush_until_ok(f), ESC_OK);
    assert_false(agg_counters_pending(f->c));
    agg_counters_get_stats(f->c, &st);
    assert_int_equal(st.script_loads, 2); /* NOSCRIPT after the restart: loaded again */
    s_check(f, "t:t:{gob/congreso}", 6, 420, 2, 4, 0);
    s_check(f, "t:c:{gob/congreso}:m:1794787320", 2, 20, 2, 0, 0);
    s_check(f, "t:c:{gob/congreso}:m:1794787380", 4, 400, 0, 4, 0);
    assert_int_equal(s_hget(f, "t:c:{gob/congreso}:m:1794787260", "posts"), 0);
    s_check(f, "t:c:{gob/congreso}:d:1794787200", 6, 420, 2, 4, 0);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 6);
    assert_int_equal(s_int_cmd(f, "LLEN", "t:alerts:{gob}"), 1);
    assert_true(s_int_cmd(f, "TTL", "t:c:{gob/congreso}:m:1794787380") > 0);
}

/* Waits (up to ~5 s) for the flush thread's running flush and returns its result. */
static esc_rc
s_collect(struct fix *f)
{
    esc_rc rc = ESC_ERR;
    int i;

    for (i = 0; i < 500; i++) {
        if (agg_counters_flush_collect(f->c, &rc)) {
            return rc;
        }
        s_sleep_ms(10);
    }
    fail_msg("the flush thread did not finish");
    return ESC_ERR;
}

/* Background flushes: posts recorded while a flush runs wait for the next one; a failed flush
 * leaves its batch, which the next start finishes first (AGG_FLUSH_OLDER) before newer posts
 * are frozen; nothing is counted twice or lost across a Redis restart. */
static void
test_counters_flush_thread(void **state)
{
    struct fix *f = *state;
    struct agg_counters_stats st;
    struct esc_kv_opts o;
    esc_kv_t *kv2;
    esc_rc rc;
    char id[16];
    int n = 0;
    int i;

    esc_testenv_kv_opts(&f->redis, &o);
    kv2 = esc_kv_new(&o);
    assert_int_equal(agg_counters_start_thread(f->c, kv2), ESC_OK);
    assert_true(agg_counters_flush_fd(f->c) >= 0);
    assert_int_equal(agg_counters_flush_start(f->c, 0), AGG_FLUSH_IDLE);

    for (i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "%d", n++);
        s_addn(f, id, AT(60), 1, 0, 0, 0, s_congreso);
    }
    assert_int_equal(agg_counters_flush_start(f->c, 0), AGG_FLUSH_ALL);
    assert_true(agg_counters_flushing(f->c));
    assert_int_equal(agg_counters_flush_start(f->c, 0), AGG_FLUSH_BUSY);
    for (i = 0; i < 2; i++) { /* recorded while the thread writes the first three */
        snprintf(id, sizeof(id), "%d", n++);
        s_addn(f, id, AT(60), 1, 0, 0, 0, s_congreso);
    }
    assert_int_equal(s_collect(f), ESC_OK);
    assert_false(agg_counters_flushing(f->c));
    assert_int_equal(agg_counters_flush_collect(f->c, &rc), 0);
    s_check(f, "t:t:{gob/congreso}", 3, 3, 0, 0, 0);
    assert_int_equal(agg_counters_pending_posts(f->c), 2);
    agg_counters_get_stats(f->c, &st);
    assert_int_equal(st.flushed_posts, 3);
    assert_int_equal(agg_counters_flush_start(f->c, 0), AGG_FLUSH_ALL);
    assert_int_equal(s_collect(f), ESC_OK);
    s_check(f, "t:t:{gob/congreso}", 5, 5, 0, 0, 0);

    /* Redis dies: the flush fails, its batch stays and is finished first once Redis is back */
    snprintf(id, sizeof(id), "%d", n++);
    s_addn(f, id, AT(120), 10, 0, 0, 0, s_congreso);
    assert_int_equal(esc_testenv_redis_kill(&f->redis), 0);
    assert_int_equal(agg_counters_flush_start(f->c, 0), AGG_FLUSH_ALL);
    assert_int_equal(s_collect(f), ESC_RETRY);
    snprintf(id, sizeof(id), "%d", n++);
    s_addn(f, id, AT(120), 100, 0, 0, 0, s_congreso);
    assert_int_equal(agg_counters_pending_posts(f->c), 2);
    assert_int_equal(esc_testenv_redis_restart(&f->redis), 0);
    rc = ESC_RETRY;
    for (i = 0; i < 100 && rc != ESC_OK; i++) {
        assert_int_equal(agg_counters_flush_start(f->c, 0), AGG_FLUSH_OLDER);
        rc = s_collect(f);
        if (rc != ESC_OK) {
            s_sleep_ms(50);
        }
    }
    assert_int_equal(rc, ESC_OK);
    for (i = 0; i < 100 && esc_kv_cmd(f->kv, NULL, "PING") != ESC_OK; i++) {
        s_sleep_ms(50); /* the test's own connection died with the old server */
    }
    assert_int_equal(s_hget(f, "t:t:{gob/congreso}", "posts"), 1); /* restarted empty */
    assert_int_equal(agg_counters_pending_posts(f->c), 1);
    assert_int_equal(agg_counters_flush_start(f->c, 1), AGG_FLUSH_ALL);
    assert_int_equal(s_collect(f), ESC_OK);
    s_check(f, "t:t:{gob/congreso}", 2, 110, 0, 0, 0);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 2);
    while (agg_counters_pending(f->c)) { /* the top lists, written as final */
        assert_int_equal(agg_counters_flush_start(f->c, 1), AGG_FLUSH_ALL);
        assert_int_equal(s_collect(f), ESC_OK);
    }
    assert_int_equal(agg_counters_flush_start(f->c, 1), AGG_FLUSH_IDLE);
    agg_counters_get_stats(f->c, &st);
    assert_int_equal(st.flushed_posts, 7);
    assert_true(st.failed_flushes >= 1);
    agg_counters_destroy(&f->c); /* stops the thread before its connection goes */
    esc_kv_destroy(&kv2);
}

/* Sends "DEBUG SLEEP <s>" on a fresh connection without waiting for the reply. */
static int
s_debug_sleep(struct fix *f, const char *secs)
{
    struct sockaddr_un a;
    char cmd[128];
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int n;

    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    esc_strlcpy(a.sun_path, f->redis.sock, sizeof(a.sun_path));
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        return -1;
    }
    n = snprintf(cmd, sizeof(cmd), "*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$%zu\r\n%s\r\n",
                 strlen(secs), secs);
    if (write(fd, cmd, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    return fd; /* closed by the caller once the sleep is over */
}

/* The flush's calls reach Redis but their replies do not reach the aggregator (Redis is busy
 * past the client's timeout, the client drops the connection, then Redis executes what it had
 * received). The retried flush must apply nothing twice: the counts come back DUP, the list
 * and processed calls find their marks. */
static void
test_counters_replies_lost_mid_flush(void **state)
{
    struct fix *f = *state;
    struct agg_counters_stats st;
    struct esc_kv_opts ko;
    esc_kv_t *slow;
    int fd;
    int i;
    char id[16];

    esc_testenv_kv_opts(&f->redis, &ko);
    ko.timeout_ms = 300;
    slow = esc_kv_new(&ko);
    agg_counters_destroy(&f->c);
    f->c = agg_counters_new(slow, &f->o);
    /* load the script first so the first round after the sleep is the counting one */
    s_addn(f, "warm", AT(0), 0, 0, 0, 0, s_congreso);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);

    for (i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "%d", i);
        s_addn(f, id, AT(60), 10, 1, 0, 0, s_congreso);
    }
    agg_counters_push_list(f->c, "t:alerts:{gob}", "{\"id\":\"y\"}", 1000);
    fd = s_debug_sleep(f, "0.8");
    assert_true(fd >= 0);
    s_sleep_ms(50); /* the sleep has started: our calls queue behind it */
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_RETRY);
    s_sleep_ms(900); /* Redis woke up and executed the calls nobody waits for */
    close(fd);
    s_check(f, "t:t:{gob/congreso}", 6, 50, 5, 0, 0); /* applied ... */
    assert_int_equal(s_int_cmd(f, "LLEN", "t:alerts:{gob}"), 1);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 1); /* ... processed not yet */

    assert_int_equal(s_flush_until_ok(f), ESC_OK);
    agg_counters_get_stats(f->c, &st);
    assert_int_equal(st.dup_redis, 0); /* marked by this very call: applied, not duplicates */
    s_check(f, "t:t:{gob/congreso}", 6, 50, 5, 0, 0); /* ... and not again */
    assert_int_equal(s_int_cmd(f, "LLEN", "t:alerts:{gob}"), 1);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), 6);
    agg_counters_destroy(&f->c);
    esc_kv_destroy(&slow);
}

/* A post whose minute was already flushed still lands in its own (older) buckets. */
static void
test_counters_late_post(void **state)
{
    struct fix *f = *state;

    s_addn(f, "1", AT(600), 1, 0, 0, 0, s_congreso);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    s_addn(f, "2", AT(60), 2, 0, 0, 0, s_congreso);      /* 9 minutes late */
    s_addn(f, "3", AT(-3600), 3, 0, 0, 0, s_congreso);   /* the previous day */
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    s_check(f, "t:c:{gob/congreso}:m:1794787800", 1, 1, 0, 0, 0);
    s_check(f, "t:c:{gob/congreso}:m:1794787260", 1, 2, 0, 0, 0);
    s_check(f, "t:c:{gob/congreso}:h:1794787200", 2, 3, 0, 0, 0);
    s_check(f, "t:c:{gob/congreso}:d:1794700800", 1, 3, 0, 0, 0);
    s_check(f, "t:c:{gob/congreso}:h:1794783600", 1, 3, 0, 0, 0);
    s_check(f, "t:t:{gob/congreso}", 3, 6, 0, 0, 0);
    assert_int_equal(s_int_cmd(f, "EXISTS", "t:top:{gob/congreso}:posts:1794700800"), 1);
}

/* Buckets expire their retention after their last write. */
static void
test_counters_bucket_expiry(void **state)
{
    struct fix *f = *state;

    f->o.retention_s[AGG_RES_MINUTE] = 1;
    s_renew(f);
    s_addn(f, "1", AT(60), 1, 0, 0, 0, s_congreso);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    assert_int_equal(s_int_cmd(f, "EXISTS", "t:c:{gob/congreso}:m:1794787260"), 1);
    s_sleep_ms(1600);
    assert_int_equal(s_int_cmd(f, "EXISTS", "t:c:{gob/congreso}:m:1794787260"), 0);
    assert_int_equal(s_int_cmd(f, "EXISTS", "t:c:{gob/congreso}:h:1794787200"), 1);
    assert_int_equal(s_hget(f, "t:t:{gob/congreso}", "posts"), 1);
}

/* More posts of one topic than one part: several script calls, one round, exact counts, and
 * well under 0.1 commands per post. */
static void
test_counters_parts_and_commands_per_post(void **state)
{
    struct fix *f = *state;
    static const char *const topics[4][2] = {
        { "a/t0", NULL }, { "a/t1", NULL }, { "a/t2", NULL }, { "a/t3", NULL }
    };
    struct agg_counters_stats st;
    uint64_t rt;
    uint64_t cmds;
    char id[16];
    int n = 3 * AGG_PART_POSTS + 5;
    int i;

    /* warm-up flush: loads the script */
    s_addn(f, "w", AT(0), 0, 0, 0, 0, topics[0]);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    for (i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%d", i);
        s_addn(f, id, AT((int64_t)i), 1, 0, 0, 0, i % 8 == 0 ? topics[1 + i % 3] : topics[0]);
    }
    rt = esc_kv_round_trips(f->kv);
    cmds = esc_kv_commands(f->kv);
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    /* one round with the 6 part calls, one with the 4 topics' top lists, processed */
    assert_int_equal(esc_kv_round_trips(f->kv) - rt, 3);
    assert_int_equal(esc_kv_commands(f->kv) - cmds, 11);
    assert_true((double)(esc_kv_commands(f->kv) - cmds) / n <= 0.01);
    agg_counters_get_stats(f->c, &st);
    assert_int_equal(st.dup_redis + st.dup_memory, 0);
    assert_int_equal(s_hget(f, "t:t:{a/t0}", "posts") + s_hget(f, "t:t:{a/t1}", "posts")
                         + s_hget(f, "t:t:{a/t2}", "posts") + s_hget(f, "t:t:{a/t3}", "posts"),
                     n + 1);
    assert_int_equal(s_hget(f, "t:t:{a/t0}", "posts"), 1 + n - (n + 7) / 8);
    assert_int_equal(s_int_cmd(f, "GET", "t:agg:processed"), n + 1);
}

/* At max_pending_posts the counters say so (the aggregator stops reading), and a flush that
 * succeeds makes room again. */
static void
test_counters_full_at_limit(void **state)
{
    struct fix *f = *state;
    char id[16];
    int i;

    f->o.max_pending_posts = 5;
    s_renew(f);
    for (i = 0; i < 4; i++) {
        snprintf(id, sizeof(id), "%d", i);
        s_addn(f, id, AT((int64_t)i * 60), 1, 0, 0, 0, s_congreso);
        assert_false(agg_counters_full(f->c));
    }
    s_addn(f, "no-topic", AT(0), 1, 0, 0, 0, NULL); /* holds no record */
    assert_false(agg_counters_full(f->c));
    s_addn(f, "4", AT(4 * 60), 1, 0, 0, 0, s_congreso);
    assert_true(agg_counters_full(f->c));
    assert_int_equal(agg_counters_flush(f->c, 1), ESC_OK);
    assert_false(agg_counters_full(f->c));
    assert_int_equal(s_hget(f, "t:t:{gob/congreso}", "posts"), 5);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counters_exact_buckets, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_ttls, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_exact_beyond_doubles_and_ttl_once, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_top_lists_in_slices, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_multi_topic_post, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_top_lists, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_top_lists_days_in_one_part, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_top_trim_and_flush_max, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_top_lists_pruned, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_top_posts_across_batches, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_duplicates, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_duplicates_caught_by_redis, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_redis_killed_then_restarted, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_replies_lost_mid_flush, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_late_post, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_bucket_expiry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_parts_and_commands_per_post, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_full_at_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters_flush_thread, s_setup, s_teardown),
    };

    signal(SIGPIPE, SIG_IGN); /* writes to a killed redis-server must fail, not kill us */
    esc_log_init("test", ESC_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
