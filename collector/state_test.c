#define ESC_LOG_MODULE "test"
/* Tests of the connectors' state (state.c) against a private redis-server: cursors stored and
 * read back under <prefix>:col:cursor:<source>; dedupe that holds across two state objects (two
 * collectors, or one restarted) with the TTL set; a claim given back; the per-source stats hash;
 * Redis killed: dedupe goes on from memory and cursor reads say retry, then Redis comes back;
 * and the bounded memory (two generations) forgetting the oldest ids first. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "esc_testenv.h"
#include "state.h"

#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

struct env {
    struct esc_testenv_redis redis;
    struct esc_kv_opts opts;
    esc_kv_t *probe;
};

static int
s_setup(void **state)
{
    struct env *e = esc_calloc(1, sizeof(*e));

    if (esc_testenv_redis_start(&e->redis, 0) != 0) {
        esc_free(e);
        return -1;
    }
    esc_testenv_kv_opts(&e->redis, &e->opts);
    e->probe = esc_kv_new(&e->opts);
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct env *e = *state;

    esc_kv_destroy(&e->probe);
    esc_testenv_redis_stop(&e->redis);
    esc_free(e);
    return 0;
}

static void
test_state_cursor_roundtrip(void **state)
{
    struct env *e = *state;
    col_state_t *st = col_state_new(&e->opts, "esc", 1024);
    struct esc_kv_val v;
    char *out = (char *)"x";

    assert_int_equal(col_state_cursor_get(st, "masto", &out), ESC_OK);
    assert_null(out);
    assert_int_equal(col_state_cursor_set(st, "masto", "113912345678901234"), ESC_OK);
    assert_int_equal(col_state_cursor_get(st, "masto", &out), ESC_OK);
    assert_string_equal(out, "113912345678901234");
    esc_free(out);
    assert_int_equal(esc_kv_cmd(e->probe, &v, "GET esc:col:cursor:masto"), ESC_OK);
    assert_string_equal(v.str, "113912345678901234");
    esc_kv_val_fini(&v);
    col_state_destroy(&st);
    assert_null(st);
    col_state_destroy(&st);
}

static void
test_state_dedupe_across_collectors_with_ttl(void **state)
{
    struct env *e = *state;
    col_state_t *a = col_state_new(&e->opts, "esc", 1024);
    col_state_t *b = col_state_new(&e->opts, "esc", 1024);
    struct esc_kv_val v;
    const char *uri = "https://remote.example/users/ana/statuses/1";

    assert_int_equal(col_state_claim(a, "mastodon", uri, 3600), 1);
    assert_int_equal(col_state_claim(a, "mastodon", uri, 3600), 0); /* memory */
    assert_int_equal(col_state_claim(b, "mastodon", uri, 3600), 0); /* Redis */
    assert_int_equal(col_state_claim(b, "bluesky", uri, 3600), 1);  /* per platform */
    assert_int_equal(esc_kv_cmd(e->probe, &v, "TTL esc:col:seen:mastodon:%s", uri), ESC_OK);
    assert_true(v.integer > 3500 && v.integer <= 3600);
    esc_kv_val_fini(&v);
    /* a claim given back (the post was not sent after all) can be claimed again */
    col_state_unclaim(a, "mastodon", uri);
    assert_int_equal(esc_kv_cmd(e->probe, &v, "EXISTS esc:col:seen:mastodon:%s", uri), ESC_OK);
    assert_int_equal(v.integer, 0);
    esc_kv_val_fini(&v);
    assert_int_equal(col_state_claim(a, "mastodon", uri, 3600), 1);
    col_state_count(a, "masto", "errors", 2);
    col_state_count(a, "masto", "errors", 1);
    assert_int_equal(esc_kv_cmd(e->probe, &v, "HGET esc:col:stats:masto errors"), ESC_OK);
    assert_string_equal(v.str, "3");
    esc_kv_val_fini(&v);
    col_state_destroy(&a);
    col_state_destroy(&b);
}

static void
test_state_redis_down_memory_carries_on(void **state)
{
    struct env *e = *state;
    col_state_t *st = col_state_new(&e->opts, "esc", 1024);
    char *out = NULL;

    assert_int_equal(col_state_claim(st, "hn", "1", 60), 1);
    assert_int_equal(esc_testenv_redis_kill(&e->redis), 0);
    assert_int_equal(col_state_claim(st, "hn", "1", 60), 0);
    assert_int_equal(col_state_claim(st, "hn", "2", 60), 1);
    assert_int_equal(col_state_claim(st, "hn", "2", 60), 0);
    assert_int_equal(col_state_redis_ok(st), 0);
    assert_int_equal(col_state_cursor_get(st, "hn", &out), ESC_RETRY);
    assert_int_equal(col_state_cursor_set(st, "hn", "5"), ESC_RETRY);
    assert_int_equal(esc_testenv_redis_restart(&e->redis), 0);
    /* esc_kv backs off before reconnecting; retry for a while */
    {
        int64_t deadline = esc_mono_ms() + 8000;
        esc_rc rc = ESC_RETRY;

        while (rc != ESC_OK && esc_mono_ms() < deadline) {
            rc = col_state_cursor_set(st, "hn", "5");
        }
        assert_int_equal(rc, ESC_OK);
    }
    assert_int_equal(col_state_redis_ok(st), 1);
    assert_int_equal(col_state_cursor_get(st, "hn", &out), ESC_OK);
    assert_string_equal(out, "5");
    esc_free(out);
    col_state_destroy(&st);
}

static void
test_state_memory_is_bounded_and_forgets_oldest(void **state)
{
    col_state_t *st = col_state_new(NULL, "esc", 8); /* two generations of 4 */
    char id[16];
    int i;

    (void)state;
    for (i = 0; i < 12; i++) {
        snprintf(id, sizeof(id), "%d", i);
        assert_int_equal(col_state_claim(st, "x", id, 60), 1);
    }
    /* the newest ids are remembered, the oldest forgotten */
    assert_int_equal(col_state_claim(st, "x", "11", 60), 0);
    assert_int_equal(col_state_claim(st, "x", "8", 60), 0);
    assert_int_equal(col_state_claim(st, "x", "0", 60), 1);
    col_state_destroy(&st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_state_cursor_roundtrip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_state_dedupe_across_collectors_with_ttl, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_state_redis_down_memory_carries_on, s_setup,
                                        s_teardown),
        cmocka_unit_test(test_state_memory_is_bounded_and_forgets_oldest),
    };

    signal(SIGPIPE, SIG_IGN); /* as in the services: a dead Redis must not kill the test */
    esc_log_init("test", ESC_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
