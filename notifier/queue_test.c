#define ESC_LOG_MODULE "queue_test"
/* Component tests of the Redis delivery queue against a real redis-server: push/claim/ack, an
 * alert is never queued twice for a hook, the cooldown per hook and topic, claims that are
 * exclusive between two notifiers until their lease ends (and a late ack from the loser changes
 * nothing), retries with their due time and attempt count, the dead-letter list with its cap
 * and counters, a new queue object (a restart) finding what was queued, and ESC_RETRY while
 * Redis is down. Times are passed explicitly, so nothing here sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "esc_testenv.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "queue.h"

#define S_NOW 1795000000000LL
#define S_LEASE 10000

struct s_env {
    struct esc_testenv_redis redis;
    esc_kv_t *kv;
    ntf_queue_t *a; /* notifier A */
    ntf_queue_t *b; /* notifier B, same Redis */
};

static ntf_queue_t *
s_queue(esc_kv_t *kv, const char *owner)
{
    struct ntf_queue_opts o;

    memset(&o, 0, sizeof(o));
    o.prefix = "t";
    o.owner = owner;
    o.lease_ms = S_LEASE;
    o.dedupe_ttl_ms = 3600000;
    o.dead_max = 2;
    return ntf_queue_new(kv, &o);
}

static int
s_setup(void **state)
{
    struct s_env *e = esc_calloc(1, sizeof(*e));
    struct esc_kv_opts o;

    if (esc_testenv_redis_start(&e->redis, 0) != 0) {
        esc_free(e);
        return -1;
    }
    esc_testenv_kv_opts(&e->redis, &o);
    e->kv = esc_kv_new(&o);
    e->a = s_queue(e->kv, "host:1:aaaa");
    e->b = s_queue(e->kv, "host:2:bbbb");
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct s_env *e = *state;

    ntf_queue_destroy(&e->a);
    ntf_queue_destroy(&e->b);
    esc_kv_destroy(&e->kv);
    esc_testenv_redis_stop(&e->redis);
    esc_free(e);
    return 0;
}

static enum ntf_push_result
s_push(ntf_queue_t *q, const char *hook, const char *kind, const char *alert_id,
       const char *topic, int64_t cooldown_ms)
{
    struct ntf_push p;
    enum ntf_push_result res = 0;
    static const char blob[] = "\x85\xa1v\x01\x00" "binary"; /* bytes, NUL included */

    memset(&p, 0, sizeof(p));
    p.hook = hook;
    p.kind = kind;
    p.alert_id = alert_id;
    p.topic_key = topic;
    p.cooldown_ms = cooldown_ms;
    p.alert = blob;
    p.alert_len = sizeof(blob) - 1;
    p.now_ms = S_NOW;
    assert_int_equal(ntf_queue_push(q, &p, &res), ESC_OK);
    return res;
}

/* Claims at now (at most max) and returns how many; items kept in *items (caller frees). */
static size_t
s_claim(ntf_queue_t *q, int64_t now, size_t max, struct ntf_qitem **items, int64_t *next)
{
    size_t n = 0;
    int64_t nx = 0;

    assert_int_equal(ntf_queue_claim(q, now, max, items, &n, next != NULL ? next : &nx), ESC_OK);
    return n;
}

static void
s_free_items(struct ntf_qitem *items, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        ntf_qitem_fini(&items[i]);
    }
    esc_free(items);
}

static long long
s_stat(struct s_env *e, const char *field)
{
    struct esc_kv_val v;
    long long n = 0;
    int64_t parsed;

    assert_int_equal(esc_kv_cmd(e->kv, &v, "HGET t:ntf:{q}:stats %s", field), ESC_OK);
    if (v.type == ESC_KV_STR && esc_parse_i64(v.str, 0, INT64_MAX, &parsed) == 0) {
        n = (long long)parsed;
    }
    esc_kv_val_fini(&v);
    return n;
}

static void
test_queue_push_claim_ack(void **state)
{
    struct s_env *e = *state;
    struct ntf_qitem *items = NULL;
    char id[NTF_QUEUE_ID_LEN + 1];
    int64_t pending = -1;
    int64_t next = 0;
    int owned = 0;

    assert_int_equal(s_push(e->a, "gob/webhook/1", "spike", "gob/congreso/1", "gob/congreso", 0),
                     NTF_PUSH_ADDED);
    assert_int_equal(ntf_queue_pending(e->a, &pending), ESC_OK);
    assert_int_equal(pending, 1);
    assert_int_equal(s_claim(e->a, S_NOW, 8, &items, &next), 1);
    ntf_queue_delivery_id("gob/webhook/1", "spike", "gob/congreso/1", id);
    assert_string_equal(items[0].id, id);
    assert_string_equal(items[0].hook, "gob/webhook/1");
    assert_int_equal(items[0].alert_len, 11);
    assert_memory_equal(items[0].alert, "\x85\xa1v\x01\x00" "binary", 11);
    assert_int_equal(items[0].attempts, 1);
    assert_string_equal(items[0].token, "host:1:aaaa/1");
    assert_int_equal(next, S_NOW + S_LEASE); /* only the claimed one is left, under lease */
    assert_int_equal(ntf_queue_ack(e->a, &items[0], &owned), ESC_OK);
    assert_int_equal(owned, 1);
    assert_int_equal(ntf_queue_pending(e->a, &pending), ESC_OK);
    assert_int_equal(pending, 0);
    assert_int_equal(s_stat(e, "enqueued"), 1);
    assert_int_equal(s_stat(e, "delivered"), 1);
    s_free_items(items, 1);
    assert_int_equal(s_claim(e->a, S_NOW + 100000, 8, &items, &next), 0);
    assert_int_equal(next, -1);
    esc_free(items);
}

static void
test_queue_duplicate_never_requeued(void **state)
{
    struct s_env *e = *state;
    struct ntf_qitem *items = NULL;
    int owned = 0;

    assert_int_equal(s_push(e->a, "h1", "spike", "gob/congreso/1", "gob/congreso", 0),
                     NTF_PUSH_ADDED);
    assert_int_equal(s_push(e->b, "h1", "spike", "gob/congreso/1", "gob/congreso", 0),
                     NTF_PUSH_DUPLICATE);
    /* another hook, or the "ended" alert of the same id, is another delivery */
    assert_int_equal(s_push(e->a, "h2", "spike", "gob/congreso/1", "gob/congreso", 0),
                     NTF_PUSH_ADDED);
    assert_int_equal(s_push(e->a, "h1", "ended", "gob/congreso/1", "gob/congreso", 0),
                     NTF_PUSH_ADDED);
    assert_int_equal(s_claim(e->a, S_NOW, 1, &items, NULL), 1);
    assert_int_equal(ntf_queue_ack(e->a, &items[0], &owned), ESC_OK);
    s_free_items(items, 1);
    /* acknowledged or not, it is never queued again */
    assert_int_equal(s_push(e->a, "h1", "spike", "gob/congreso/1", "gob/congreso", 0),
                     NTF_PUSH_DUPLICATE);
    assert_int_equal(s_stat(e, "duplicate"), 2);
}

static void
test_queue_cooldown_per_hook_and_topic(void **state)
{
    struct s_env *e = *state;

    assert_int_equal(s_push(e->a, "h1", "spike", "gob/congreso/1", "gob/congreso", 3600000),
                     NTF_PUSH_ADDED);
    /* a second spike of the topic within the cooldown is not queued for that hook */
    assert_int_equal(s_push(e->a, "h1", "spike", "gob/congreso/2", "gob/congreso", 3600000),
                     NTF_PUSH_COOLDOWN);
    /* other hooks and other topics are not affected */
    assert_int_equal(s_push(e->a, "h2", "spike", "gob/congreso/2", "gob/congreso", 3600000),
                     NTF_PUSH_ADDED);
    assert_int_equal(s_push(e->a, "h1", "spike", "gob/elecciones/2", "gob/elecciones", 3600000),
                     NTF_PUSH_ADDED);
    /* without a cooldown it goes through */
    assert_int_equal(s_push(e->a, "h1", "spike", "gob/congreso/3", "gob/congreso", 0),
                     NTF_PUSH_ADDED);
    assert_int_equal(s_stat(e, "cooldown"), 1);
}

static void
test_queue_claim_exclusive_until_lease_ends(void **state)
{
    struct s_env *e = *state;
    struct ntf_qitem *ia = NULL;
    struct ntf_qitem *ib = NULL;
    int64_t pending = 0;
    int owned = 1;

    assert_int_equal(s_push(e->a, "h1", "spike", "a/b/1", "a/b", 0), NTF_PUSH_ADDED);
    assert_int_equal(s_claim(e->a, S_NOW, 8, &ia, NULL), 1);
    /* B sees nothing while A's lease runs */
    assert_int_equal(s_claim(e->b, S_NOW + S_LEASE - 1, 8, &ib, NULL), 0);
    esc_free(ib);
    /* A died: after the lease B takes it, as attempt 2 */
    assert_int_equal(s_claim(e->b, S_NOW + S_LEASE, 8, &ib, NULL), 1);
    assert_int_equal(ib[0].attempts, 2);
    assert_string_equal(ib[0].token, "host:2:bbbb/2");
    /* A's late outcome changes nothing */
    assert_int_equal(ntf_queue_ack(e->a, &ia[0], &owned), ESC_OK);
    assert_int_equal(owned, 0);
    assert_int_equal(ntf_queue_retry(e->a, &ia[0], S_NOW, "late", &owned), ESC_OK);
    assert_int_equal(owned, 0);
    assert_int_equal(ntf_queue_dead(e->a, &ia[0], "{}", "dead", &owned), ESC_OK);
    assert_int_equal(owned, 0);
    assert_int_equal(ntf_queue_pending(e->a, &pending), ESC_OK);
    assert_int_equal(pending, 1);
    assert_int_equal(ntf_queue_ack(e->b, &ib[0], &owned), ESC_OK);
    assert_int_equal(owned, 1);
    assert_int_equal(s_stat(e, "delivered"), 1);
    s_free_items(ia, 1);
    s_free_items(ib, 1);
}

static void
test_queue_retry_reschedules(void **state)
{
    struct s_env *e = *state;
    struct ntf_qitem *items = NULL;
    int64_t next = 0;
    int owned = 0;
    struct esc_kv_val v;

    assert_int_equal(s_push(e->a, "h1", "spike", "a/b/1", "a/b", 0), NTF_PUSH_ADDED);
    assert_int_equal(s_claim(e->a, S_NOW, 8, &items, NULL), 1);
    assert_int_equal(ntf_queue_retry(e->a, &items[0], S_NOW + 1000, "status=503", &owned),
                     ESC_OK);
    assert_int_equal(owned, 1);
    s_free_items(items, 1);
    assert_int_equal(s_claim(e->a, S_NOW + 999, 8, &items, &next), 0);
    assert_int_equal(next, S_NOW + 1000);
    esc_free(items);
    assert_int_equal(s_claim(e->b, S_NOW + 1000, 8, &items, NULL), 1);
    assert_int_equal(items[0].attempts, 2);
    assert_int_equal(esc_kv_cmd(e->kv, &v, "HGET t:ntf:{q}:d:%s last_error", items[0].id),
                     ESC_OK);
    assert_string_equal(v.str, "status=503");
    esc_kv_val_fini(&v);
    assert_int_equal(s_stat(e, "retried"), 1);
    s_free_items(items, 1);
}

static void
test_queue_dead_letter_list(void **state)
{
    struct s_env *e = *state;
    struct ntf_qitem *items = NULL;
    struct esc_kv_val v;
    int64_t pending = -1;
    int owned = 0;
    size_t n;
    size_t i;

    assert_int_equal(s_push(e->a, "h1", "spike", "a/b/1", "a/b", 0), NTF_PUSH_ADDED);
    assert_int_equal(s_push(e->a, "h1", "spike", "a/b/2", "a/b", 0), NTF_PUSH_ADDED);
    assert_int_equal(s_push(e->a, "h1", "spike", "a/b/3", "a/b", 0), NTF_PUSH_ADDED);
    n = s_claim(e->a, S_NOW, 8, &items, NULL);
    assert_int_equal(n, 3);
    assert_int_equal(ntf_queue_dead(e->a, &items[0], "{\"reason\":\"one\"}", "dead", &owned),
                     ESC_OK);
    assert_int_equal(owned, 1);
    assert_int_equal(ntf_queue_dead(e->a, &items[1], "{\"reason\":\"two\"}", "rejected", &owned),
                     ESC_OK);
    assert_int_equal(ntf_queue_dead(e->a, &items[2], "{\"reason\":\"three\"}", "dead", &owned),
                     ESC_OK);
    assert_int_equal(ntf_queue_pending(e->a, &pending), ESC_OK);
    assert_int_equal(pending, 0);
    /* newest first, capped at dead_max (2) */
    assert_int_equal(esc_kv_cmd(e->kv, &v, "LRANGE t:ntf:{q}:dead 0 -1"), ESC_OK);
    assert_int_equal(v.n, 2);
    assert_string_equal(v.elem[0].str, "{\"reason\":\"three\"}");
    assert_string_equal(v.elem[1].str, "{\"reason\":\"two\"}");
    esc_kv_val_fini(&v);
    assert_int_equal(s_stat(e, "dead"), 2);
    assert_int_equal(s_stat(e, "rejected"), 1);
    for (i = 0; i < n; i++) {
        assert_int_equal(esc_kv_cmd(e->kv, &v, "EXISTS t:ntf:{q}:d:%s", items[i].id), ESC_OK);
        assert_int_equal(v.integer, 0);
        esc_kv_val_fini(&v);
    }
    s_free_items(items, n);
}

static void
test_queue_restart_finds_pending(void **state)
{
    struct s_env *e = *state;
    struct ntf_qitem *items = NULL;
    ntf_queue_t *again;
    int owned = 0;

    assert_int_equal(s_push(e->a, "h1", "spike", "a/b/1", "a/b", 0), NTF_PUSH_ADDED);
    assert_int_equal(s_push(e->a, "h1", "spike", "a/b/2", "a/b", 0), NTF_PUSH_ADDED);
    ntf_queue_destroy(&e->a);
    again = s_queue(e->kv, "host:3:cccc");
    assert_int_equal(s_claim(again, S_NOW, 8, &items, NULL), 2);
    assert_int_equal(ntf_queue_ack(again, &items[0], &owned), ESC_OK);
    assert_int_equal(ntf_queue_ack(again, &items[1], &owned), ESC_OK);
    s_free_items(items, 2);
    ntf_queue_destroy(&again);
}

static void
test_queue_redis_down_is_retry(void **state)
{
    struct s_env *e = *state;
    struct ntf_push p;
    enum ntf_push_result res;
    int64_t pending = 0;
    int64_t deadline;
    esc_rc rc;

    memset(&p, 0, sizeof(p));
    p.hook = "h1";
    p.kind = "spike";
    p.alert_id = "a/b/1";
    p.topic_key = "a/b";
    p.alert = "x";
    p.alert_len = 1;
    p.now_ms = S_NOW;
    assert_int_equal(esc_testenv_redis_kill(&e->redis), 0);
    assert_int_equal(ntf_queue_push(e->a, &p, &res), ESC_RETRY);
    assert_int_equal(ntf_queue_pending(e->a, &pending), ESC_RETRY);
    assert_int_equal(esc_testenv_redis_restart(&e->redis), 0);
    deadline = esc_mono_ms() + 10000; /* the client backs off before reconnecting */
    do {
        rc = ntf_queue_push(e->a, &p, &res);
    } while (rc == ESC_RETRY && esc_mono_ms() < deadline);
    assert_int_equal(rc, ESC_OK);
    assert_int_equal(res, NTF_PUSH_ADDED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_queue_push_claim_ack, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_queue_duplicate_never_requeued, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_queue_cooldown_per_hook_and_topic, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_queue_claim_exclusive_until_lease_ends, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_queue_retry_reschedules, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_queue_dead_letter_list, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_queue_restart_finds_pending, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_queue_redis_down_is_retry, s_setup, s_teardown),
    };

    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
