#define ESC_LOG_MODULE "schedule_test"
/* Tests of digest schedules and exactly-once sending: send times in zones west of UTC and
 * across DST changes, the config overlay (default + team), the claim state machine against a
 * real redis-server (two senders, lease expiry, retries with back-off, giving up, force), and
 * the daemon's scheduler (ntf_digest_tick_at with a simulated clock): a digest goes out once
 * when due, never again after a restart, and an empty one is skipped unless send_empty. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "digest.h"
#include "chart.h"
#include "esc_testenv.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "ntf.h"
#include "schedule.h"
#include "testproc.h"
#include "week.h"

static int64_t
s_utc(int y, int mo, int d, int h, int mi)
{
    return ntf_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

static struct ntf_sched_rule
s_rule(enum ntf_period_kind kind, int weekday, int monthday, int hh, int mm)
{
    struct ntf_sched_rule r;

    memset(&r, 0, sizeof(r));
    r.enabled = true;
    r.kind = kind;
    r.weekday = weekday;
    r.monthday = monthday;
    r.minute = hh * 60 + mm;
    return r;
}

static void
test_schedule_west_of_utc(void **state)
{
    struct ntf_sched_rule weekly = s_rule(NTF_PERIOD_WEEK, 0, 1, 8, 0);
    struct ntf_sched_rule daily = s_rule(NTF_PERIOD_DAY, 0, 1, 7, 30);
    int64_t w47 = ntf_days_from_civil(2026, 11, 16);

    (void)state;
    /* Lima is UTC-5 all year: Monday 08:00 is 13:00 UTC */
    assert_int_equal(ntf_sched_send_at(&weekly, "America/Lima", w47), s_utc(2026, 11, 23, 13, 0));
    assert_int_equal(ntf_sched_due(&weekly, "America/Lima", s_utc(2026, 11, 23, 12, 59) + 59),
                     w47 - 7);
    assert_int_equal(ntf_sched_due(&weekly, "America/Lima", s_utc(2026, 11, 23, 13, 0)), w47);
    assert_int_equal(ntf_sched_due(&weekly, "America/Lima", s_utc(2026, 11, 29, 23, 0)), w47);
    /* a Friday send covers the week that ended before it */
    weekly.weekday = 4;
    assert_int_equal(ntf_sched_send_at(&weekly, "America/Lima", w47), s_utc(2026, 11, 27, 13, 0));
    assert_int_equal(ntf_sched_due(&weekly, "America/Lima", s_utc(2026, 11, 26, 0, 0)), w47 - 7);
    /* Honolulu (UTC-10): 07:30 on 20 Nov for 19 Nov; at 17:29 UTC it is not due yet */
    assert_int_equal(ntf_sched_send_at(&daily, "Pacific/Honolulu",
                                       ntf_days_from_civil(2026, 11, 19)),
                     s_utc(2026, 11, 20, 17, 30));
    assert_int_equal(ntf_sched_due(&daily, "Pacific/Honolulu", s_utc(2026, 11, 20, 17, 29)),
                     ntf_days_from_civil(2026, 11, 18));
    assert_int_equal(ntf_sched_due(&daily, "Pacific/Honolulu", s_utc(2026, 11, 20, 17, 30)),
                     ntf_days_from_civil(2026, 11, 19));
}

static void
test_schedule_across_dst(void **state)
{
    struct ntf_sched_rule weekly = s_rule(NTF_PERIOD_WEEK, 0, 1, 8, 0);
    struct ntf_sched_rule monthly = s_rule(NTF_PERIOD_MONTH, 0, 3, 8, 0);
    struct ntf_sched_rule daily = s_rule(NTF_PERIOD_DAY, 0, 1, 2, 30);

    (void)state;
    /* Madrid: the week of 23-29 Mar 2026 ends with the spring-forward Sunday. Its digest goes
     * out Monday 30 Mar 08:00 CEST = 06:00 UTC; the week before, 08:00 CET = 07:00 UTC */
    assert_int_equal(ntf_sched_send_at(&weekly, "Europe/Madrid", ntf_days_from_civil(2026, 3, 23)),
                     s_utc(2026, 3, 30, 6, 0));
    assert_int_equal(ntf_sched_send_at(&weekly, "Europe/Madrid", ntf_days_from_civil(2026, 3, 16)),
                     s_utc(2026, 3, 23, 7, 0));
    /* October in Madrid (fall back on the 25th): 3 Nov 08:00 CET = 07:00 UTC */
    assert_int_equal(ntf_sched_send_at(&monthly, "Europe/Madrid",
                                       ntf_days_from_civil(2026, 10, 1)),
                     s_utc(2026, 11, 3, 7, 0));
    assert_int_equal(ntf_sched_due(&monthly, "Europe/Madrid", s_utc(2026, 11, 3, 6, 59)),
                     ntf_days_from_civil(2026, 9, 1));
    /* New York (west of UTC): 02:30 does not exist on 8 Mar 2026 -> 03:30 EDT = 07:30 UTC */
    assert_int_equal(ntf_sched_send_at(&daily, "America/New_York",
                                       ntf_days_from_civil(2026, 3, 7)),
                     s_utc(2026, 3, 8, 7, 30));
    /* 01:30 happens twice on 1 Nov 2026: the first, 01:30 EDT = 05:30 UTC */
    daily.minute = 90;
    assert_int_equal(ntf_sched_send_at(&daily, "America/New_York",
                                       ntf_days_from_civil(2026, 10, 31)),
                     s_utc(2026, 11, 1, 5, 30));
    /* and an ordinary day after the change: 01:30 EST = 06:30 UTC */
    assert_int_equal(ntf_sched_send_at(&daily, "America/New_York",
                                       ntf_days_from_civil(2026, 11, 1)),
                     s_utc(2026, 11, 2, 6, 30));
    /* Santiago skips midnight on 6 Sep 2026: a 00:00 send goes out at 01:00 -03 */
    daily.minute = 0;
    assert_int_equal(ntf_sched_send_at(&daily, "America/Santiago",
                                       ntf_days_from_civil(2026, 9, 5)),
                     s_utc(2026, 9, 6, 4, 0));
}

static void
test_schedule_config_overlay_and_errors(void **state)
{
    static const char base[] =
        "{ \"redis\": {}, \"teams\": ["
        " { \"id\": \"gob\", \"name\": \"G\", \"language\": \"es\", \"timezone\": \"America/Lima\","
        "   \"topics\": [ { \"id\": \"c\", \"name\": \"C\", \"keywords\": [\"c\"] } ] },"
        " { \"id\": \"dev\", \"name\": \"D\", \"language\": \"en\", \"timezone\": \"UTC\","
        "   \"topics\": [ { \"id\": \"a\", \"name\": \"A\", \"keywords\": [\"a\"] } ] } ],"
        " \"notifier\": { \"digest\": %s } }";
    static const struct {
        const char *digest;
        const char *err;
    } bad[] = {
        { "{ \"gob\": { \"time\": \"25:00\" } }", "notifier.digest.gob.time: '25:00'" },
        { "{ \"default\": { \"every\": \"hourly\" } }", "notifier.digest.gob.every: 'hourly'" },
        { "{ \"dev\": { \"weekday\": \"lunes\" } }", "notifier.digest.dev.weekday: 'lunes'" },
        { "{ \"dev\": { \"monthday\": 31 } }", "notifier.digest.dev.monthday" },
        { "{ \"dev\": { \"colour\": \"red\" } }", "notifier.digest.dev.colour: unknown key" },
        { "{ \"gbo\": {} }", "notifier.digest.gbo: unknown key (expected \"default\" or a team" },
        { "{ \"default\": { \"send_empty\": \"yes\" } }", "notifier.digest.default.send_empty" },
    };
    struct ntf_sched_rule r;
    struct esc_error err;
    struct esc_cfg *cfg;
    char text[2048];
    size_t i;

    (void)state;
    snprintf(text, sizeof(text), base,
             "{ \"default\": { \"weekday\": \"fri\", \"time\": \"09:30\", \"send_empty\": true },"
             "  \"dev\": { \"every\": \"daily\", \"time\": \"07:00\" } }");
    cfg = esc_cfg_load_string(text, "test", &err);
    assert_non_null(cfg);
    assert_int_equal(ntf_sched_cfg_check(cfg, &err), ESC_OK);
    assert_int_equal(ntf_sched_rule_load(cfg, "gob", &r, &err), ESC_OK);
    assert_true(r.enabled);
    assert_int_equal(r.kind, NTF_PERIOD_WEEK);
    assert_int_equal(r.weekday, 4);
    assert_int_equal(r.minute, 9 * 60 + 30);
    assert_true(r.send_empty);
    assert_int_equal(ntf_sched_rule_load(cfg, "dev", &r, &err), ESC_OK);
    assert_int_equal(r.kind, NTF_PERIOD_DAY);
    assert_int_equal(r.minute, 7 * 60);
    assert_true(r.send_empty); /* from "default" */
    assert_int_equal(r.weekday, 4);
    esc_cfg_free(&cfg);

    /* no digest section at all: weekly, Monday 08:00, empty digests not sent */
    snprintf(text, sizeof(text), base, "{}");
    cfg = esc_cfg_load_string(text, "test", &err);
    assert_non_null(cfg);
    assert_int_equal(ntf_sched_rule_load(cfg, "gob", &r, &err), ESC_OK);
    assert_int_equal(r.kind, NTF_PERIOD_WEEK);
    assert_int_equal(r.weekday, 0);
    assert_int_equal(r.minute, 8 * 60);
    assert_false(r.send_empty);
    esc_cfg_free(&cfg);

    for (i = 0; i < ESC_ARRAY_LEN(bad); i++) {
        snprintf(text, sizeof(text), base, bad[i].digest);
        cfg = esc_cfg_load_string(text, "test", &err);
        assert_non_null(cfg);
        memset(&err, 0, sizeof(err));
        assert_int_equal(ntf_sched_cfg_check(cfg, &err), ESC_INVALID);
        if (strstr(err.text, bad[i].err) == NULL) {
            fprintf(stderr, "case %zu: got '%s', want '%s'\n", i, err.text, bad[i].err);
            fail();
        }
        esc_cfg_free(&cfg);
    }
}

/* ---- against Redis ------------------------------------------------------------------------- */

struct s_env {
    struct esc_testenv_redis redis;
    char dir[128];
    char outbox[256];
    struct esc_cfg *cfg;
    struct ntf_cfg ncfg;
    esc_kv_t *kv;
    esc_kv_t *kv2;
};

static const char s_cfg_fmt[] =
    "{ \"deployment\": \"prueba\",\n"
    "  \"redis\": { \"unix_socket\": \"%s\", \"prefix\": \"t\" },\n"
    "  \"teams\": [\n"
    "   { \"id\": \"gob\", \"name\": \"Gobernanza\", \"language\": \"es\",\n"
    "     \"timezone\": \"America/Lima\", \"recipients\": [\"gob@example.org\"],\n"
    "     \"topics\": [ { \"id\": \"congreso\", \"name\": \"Congreso\",\n"
    "                     \"keywords\": [\"congreso\"] } ] },\n"
    "   { \"id\": \"quiet\", \"name\": \"Quiet\", \"language\": \"en\",\n"
    "     \"timezone\": \"America/Lima\", \"recipients\": [\"quiet@example.org\"],\n"
    "     \"topics\": [ { \"id\": \"nada\", \"name\": \"Nada\", \"keywords\": [\"nada\"] } ] },\n"
    "   { \"id\": \"off\", \"name\": \"Off\", \"language\": \"en\",\n"
    "     \"timezone\": \"UTC\", \"recipients\": [\"off@example.org\"],\n"
    "     \"topics\": [ { \"id\": \"x\", \"name\": \"X\", \"keywords\": [\"x\"] } ] } ],\n"
    "  \"notifier\": { \"outbox\": \"%s\", \"from\": \"escucha@example.org\",\n"
    "    \"digest\": { \"off\": { \"enabled\": false } } } }\n";

static int
s_setup(void **state)
{
    struct s_env *e = esc_calloc(1, sizeof(*e));
    struct esc_kv_opts o;
    struct esc_error err;
    char text[4096];

    if (esc_testenv_redis_start(&e->redis, 0) != 0 || ntf_test_tmpdir(e->dir, sizeof(e->dir))) {
        esc_free(e);
        return -1;
    }
    snprintf(e->outbox, sizeof(e->outbox), "%s/outbox", e->dir);
    snprintf(text, sizeof(text), s_cfg_fmt, e->redis.sock, e->outbox);
    e->cfg = esc_cfg_load_string(text, "test", &err);
    if (e->cfg == NULL || ntf_cfg_load(e->cfg, &e->ncfg, &err) != ESC_OK) {
        fprintf(stderr, "config: %s\n", err.text);
        return -1;
    }
    esc_testenv_kv_opts(&e->redis, &o);
    e->kv = esc_kv_new(&o);
    e->kv2 = esc_kv_new(&o);
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct s_env *e = *state;

    esc_kv_destroy(&e->kv);
    esc_kv_destroy(&e->kv2);
    esc_cfg_free(&e->cfg);
    esc_testenv_redis_stop(&e->redis);
    ntf_test_rmtree(e->dir);
    esc_free(e);
    return 0;
}

static int
s_flush(void **state)
{
    struct s_env *e = *state;
    struct esc_kv_val v;

    assert_int_equal(esc_kv_cmd(e->kv, &v, "FLUSHALL"), ESC_OK);
    esc_kv_val_fini(&v);
    ntf_test_rmtree(e->outbox);
    return 0;
}

static void
s_get(esc_kv_t *kv, const char *key, char *out, size_t outsz)
{
    struct esc_kv_val v;
    esc_rc rc = ESC_RETRY;
    int i;

    /* after a Redis restart the first command finds the old connection broken */
    for (i = 0; i < 30 && rc == ESC_RETRY; i++) {
        rc = esc_kv_cmd(kv, &v, "GET %s", key);
        if (rc == ESC_RETRY) {
            usleep(100 * 1000);
        }
    }
    assert_int_equal(rc, ESC_OK);
    esc_strlcpy(out, v.type == ESC_KV_STR ? v.str : "(nil)", outsz);
    esc_kv_val_fini(&v);
}

static void
test_schedule_claims_exactly_once(void **state)
{
    struct s_env *e = *state;
    const char *key = "t:ntf:digest:{gob}:2026-W47";
    struct ntf_claim a;
    struct ntf_claim b;
    enum ntf_claim_rc rc;
    int64_t now = s_utc(2026, 11, 23, 13, 0) * 1000;
    char val[256];
    int ours = 0;
    int held = 0;
    int given_up = 0;
    int i;

    /* two senders: only one gets it while the first holds its lease */
    assert_int_equal(ntf_claim_try(e->kv, key, 60000, now, 0, &a, &rc), ESC_OK);
    assert_int_equal(rc, NTF_CLAIM_OK);
    assert_int_equal(a.attempt, 1);
    assert_int_equal(ntf_claim_try(e->kv2, key, 60000, now, 0, &b, &rc), ESC_OK);
    assert_int_equal(rc, NTF_CLAIM_BUSY);
    assert_int_equal(strncmp(b.state, "sending:1:", 10), 0);
    assert_int_equal(ntf_claim_renew(e->kv, &a, 60000, &held), ESC_OK);
    assert_true(held);
    assert_int_equal(ntf_claim_finish(e->kv, &a, "sent", now, &ours), ESC_OK);
    assert_true(ours);
    assert_int_equal(ntf_claim_try(e->kv2, key, 60000, now, 0, &b, &rc), ESC_OK);
    assert_int_equal(rc, NTF_CLAIM_DONE);
    s_get(e->kv, key, val, sizeof(val));
    assert_int_equal(strncmp(val, "sent:", 5), 0);
    /* an operator's --force claims it anyway */
    assert_int_equal(ntf_claim_try(e->kv2, key, 60000, now, 1, &b, &rc), ESC_OK);
    assert_int_equal(rc, NTF_CLAIM_OK);

    /* a sender that dies: its lease expires and another may send */
    key = "t:ntf:digest:{gob}:2026-W48";
    assert_int_equal(ntf_claim_try(e->kv, key, 150, now, 0, &a, &rc), ESC_OK);
    assert_int_equal(rc, NTF_CLAIM_OK);
    assert_int_equal(ntf_claim_try(e->kv2, key, 150, now, 0, &b, &rc), ESC_OK);
    assert_int_equal(rc, NTF_CLAIM_BUSY);
    usleep(300 * 1000);
    assert_int_equal(ntf_claim_try(e->kv2, key, 60000, now, 0, &b, &rc), ESC_OK);
    assert_int_equal(rc, NTF_CLAIM_OK);
    /* the first one comes back: it no longer holds the claim and must not send */
    assert_int_equal(ntf_claim_renew(e->kv, &a, 60000, &held), ESC_OK);
    assert_false(held);

    /* failed attempts back off (60 s, 120 s, ...) and are given up after the maximum */
    key = "t:ntf:digest:{gob}:2026-W49";
    for (i = 1; i <= NTF_CLAIM_ATTEMPTS_MAX; i++) {
        assert_int_equal(ntf_claim_try(e->kv, key, 60000, now, 0, &a, &rc), ESC_OK);
        assert_int_equal(rc, NTF_CLAIM_OK);
        assert_int_equal(a.attempt, i);
        assert_int_equal(ntf_claim_fail(e->kv, &a, now, 0, &given_up), ESC_OK);
        assert_int_equal(given_up, i == NTF_CLAIM_ATTEMPTS_MAX);
        if (!given_up) {
            assert_int_equal(ntf_claim_try(e->kv2, key, 60000, now + 1000, 0, &b, &rc), ESC_OK);
            assert_int_equal(rc, NTF_CLAIM_WAIT);
            now += (i == 1 ? 60 : 3600) * 1000LL + 1;
        }
    }
    assert_int_equal(ntf_claim_try(e->kv, key, 60000, now + 86400000LL, 0, &a, &rc), ESC_OK);
    assert_int_equal(rc, NTF_CLAIM_DONE);
    s_get(e->kv, key, val, sizeof(val));
    assert_int_equal(strncmp(val, "failed:", 7), 0);
}

static int
s_files(const char *dir)
{
    char cmd[400];
    char out[64];
    char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    int64_t n = 0;

    snprintf(cmd, sizeof(cmd), "ls '%s' 2>/dev/null | grep -c '\\.eml$' || true", dir);
    assert_int_equal(ntf_proc_run(argv, NULL, out, sizeof(out), 5000), 0);
    out[strcspn(out, "\n")] = '\0';
    assert_int_equal(esc_parse_i64(out, 0, 1000, &n), 0);
    return (int)n;
}

static void
test_schedule_digester_once_across_restart(void **state)
{
    struct s_env *e = *state;
    struct esc_kv_val v;
    ntf_digester_t *a;
    ntf_digester_t *b;
    char path[400];
    char val[256];
    struct stat st;

    /* posts of gob/congreso on Wed 18 Nov 2026; team "quiet" has none */
    assert_int_equal(esc_kv_cmd(e->kv, &v, "HSET t:c:{gob/congreso}:h:%lld posts 42 reach 420 "
                                           "engagement 7",
                                (long long)s_utc(2026, 11, 18, 15, 0)),
                     ESC_OK);
    esc_kv_val_fini(&v);
    a = ntf_digester_new(e->cfg, &e->ncfg);
    assert_non_null(a);
    b = ntf_digester_new(e->cfg, &e->ncfg);
    assert_non_null(b);

    /* Monday 23 Nov 07:59 in Lima: W46's digest is due (and empty: skipped), W47's not yet */
    ntf_digest_tick_at(a, s_utc(2026, 11, 23, 12, 59));
    assert_int_equal(s_files(e->outbox), 0);
    s_get(e->kv, "t:ntf:digest:{gob}:2026-W46", val, sizeof(val));
    assert_int_equal(strncmp(val, "skipped:", 8), 0);
    s_get(e->kv, "t:ntf:digest:{gob}:2026-W47", val, sizeof(val));
    assert_string_equal(val, "(nil)");

    /* 08:00: both notifiers tick; exactly one digest is written */
    ntf_digest_tick_at(a, s_utc(2026, 11, 23, 13, 0));
    ntf_digest_tick_at(b, s_utc(2026, 11, 23, 13, 0) + 5);
    assert_int_equal(s_files(e->outbox), 1);
    snprintf(path, sizeof(path), "%s/gob-2026-W47.eml", e->outbox);
    assert_int_equal(stat(path, &st), 0);
    s_get(e->kv, "t:ntf:digest:{gob}:2026-W47", val, sizeof(val));
    assert_int_equal(strncmp(val, "sent:", 5), 0);
    /* nothing happened for "quiet": recorded as skipped, no file; "off" is not scheduled */
    s_get(e->kv, "t:ntf:digest:{quiet}:2026-W47", val, sizeof(val));
    assert_int_equal(strncmp(val, "skipped:", 8), 0);
    s_get(e->kv, "t:ntf:digest:{off}:2026-W47", val, sizeof(val));
    assert_string_equal(val, "(nil)");
    assert_int_equal(ntf_digester_unrecorded(a), 0);

    /* a restart: new schedulers find it sent and write nothing */
    ntf_digester_destroy(&a);
    ntf_digester_destroy(&b);
    assert_null(a);
    assert_int_equal(unlink(path), 0);
    a = ntf_digester_new(e->cfg, &e->ncfg);
    ntf_digest_tick_at(a, s_utc(2026, 11, 23, 13, 10));
    ntf_digest_tick_at(a, s_utc(2026, 11, 25, 0, 0));
    assert_int_equal(s_files(e->outbox), 0);
    ntf_digester_destroy(&a);
}

static void
test_schedule_send_empty_and_redis_down(void **state)
{
    struct s_env *e = *state;
    struct esc_error err;
    struct esc_cfg *cfg;
    struct ntf_cfg ncfg;
    ntf_digester_t *a;
    char text[4096];
    char path[400];
    char val[256];
    struct stat st;

    /* send_empty: the quiet team gets its (empty) digest */
    snprintf(text, sizeof(text), s_cfg_fmt, e->redis.sock, e->outbox);
    esc_strlcpy(strstr(text, "\"off\": { \"enabled\": false }"),
                "\"quiet\": { \"send_empty\": true, \"every\": \"daily\" } } } }\n",
                sizeof(text) - (size_t)(strstr(text, "\"off\"") - text));
    cfg = esc_cfg_load_string(text, "test", &err);
    assert_non_null(cfg);
    assert_int_equal(ntf_cfg_load(cfg, &ncfg, &err), ESC_OK);
    a = ntf_digester_new(cfg, &ncfg);
    ntf_digest_tick_at(a, s_utc(2026, 11, 20, 13, 0)); /* Friday 08:00 in Lima */
    snprintf(path, sizeof(path), "%s/quiet-2026-11-19.eml", e->outbox);
    assert_int_equal(stat(path, &st), 0);
    s_get(e->kv, "t:ntf:digest:{quiet}:2026-11-19", val, sizeof(val));
    assert_int_equal(strncmp(val, "sent:", 5), 0);

    /* Redis down: nothing is sent (no claim, no send), and it is sent once Redis is back */
    assert_int_equal(esc_testenv_redis_kill(&e->redis), 0);
    ntf_digest_tick_at(a, s_utc(2026, 11, 21, 13, 0));
    snprintf(path, sizeof(path), "%s/quiet-2026-11-20.eml", e->outbox);
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_equal(esc_testenv_redis_restart(&e->redis), 0);
    usleep(400 * 1000); /* esc_kv's reconnect back-off */
    ntf_digest_tick_at(a, s_utc(2026, 11, 21, 13, 0) + 30); /* checked again after 60 s only */
    assert_int_not_equal(stat(path, &st), 0);
    ntf_digest_tick_at(a, s_utc(2026, 11, 21, 13, 2));
    assert_int_equal(stat(path, &st), 0);
    s_get(e->kv, "t:ntf:digest:{quiet}:2026-11-20", val, sizeof(val));
    assert_int_equal(strncmp(val, "sent:", 5), 0);
    ntf_digester_destroy(&a);
    esc_cfg_free(&cfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_west_of_utc),
        cmocka_unit_test(test_schedule_across_dst),
        cmocka_unit_test(test_schedule_config_overlay_and_errors),
        cmocka_unit_test_setup(test_schedule_claims_exactly_once, s_flush),
        cmocka_unit_test_setup(test_schedule_digester_once_across_restart, s_flush),
        cmocka_unit_test_setup(test_schedule_send_empty_and_redis_down, s_flush),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN); /* as in escucha-notifier: a dead Redis is an error, not a kill */
    if (sodium_init() < 0) {
        return 1;
    }
    rc = cmocka_run_group_tests(tests, s_setup, s_teardown);
    ntf_chart_cleanup(); /* in-process digests drew charts */
    return rc;
}
