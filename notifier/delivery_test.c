#define ESC_LOG_MODULE "delivery_test"
/* Component tests of alert delivery under faults, with the real escucha-notifier binary, a
 * private redis-server and tests/support/webhook_sink.py:
 *   - the receiver is down, then comes up: the alert arrives exactly once;
 *   - the notifier is killed with SIGKILL while deliveries wait (receiver down), restarted, and
 *     the receiver comes up: each alert arrives exactly once, none is lost;
 *   - two notifiers share Redis and both get the same alerts: each arrives exactly once;
 *   - Redis is down when an alert arrives: it waits in memory and is delivered when Redis is
 *     back. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "alerttest.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

static int
s_setup(void **state)
{
    struct ntf_at_env *e = esc_calloc(1, sizeof(*e));

    if (ntf_at_setup(e) != 0) {
        esc_free(e);
        return -1;
    }
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct ntf_at_env *e = *state;

    ntf_at_teardown(e);
    esc_free(e);
    return 0;
}

static void
s_hook_cfg(struct ntf_at_env *e, int k, const char *notifier_extra)
{
    char hooks[256];

    /* no cooldown: every alert here is a spike of the same topic */
    snprintf(hooks, sizeof(hooks),
             "{ \"url\": \"http://127.0.0.1:%d/hooks/gob\", \"cooldown_min\": 0 }",
             e->hook_port);
    ntf_at_write_cfg(e, k, hooks, notifier_extra);
}


/* Asserts that the receiver got exactly the alert ids gob/congreso/0 .. n-1, each once and
 * answered 200. */
static void
s_assert_each_once(const struct ntf_at_env *e, int n)
{
    int seen[64];
    int i;

    assert_true(n <= 64);
    memset(seen, 0, sizeof(seen));
    for (i = 0; i < n; i++) {
        json_t *rec = ntf_at_request(e, i);
        json_t *body = ntf_at_request_body(e, i);
        const char *id = json_string_value(json_object_get(body, "id"));
        int64_t k;

        assert_int_equal(json_integer_value(json_object_get(rec, "status")), 200);
        assert_non_null(id);
        assert_int_equal(strncmp(id, "gob/congreso/", 13), 0);
        assert_int_equal(esc_parse_i64(id + 13, 0, n - 1, &k), 0);
        assert_int_equal(seen[k], 0);
        seen[k] = 1;
        json_decref(rec);
        json_decref(body);
    }
}

static void
test_delivery_receiver_down_then_up_once(void **state)
{
    struct ntf_at_env *e = *state;

    s_hook_cfg(e, 0, ", \"retry_max\": 30");
    ntf_at_start(e, 0);
    ntf_at_send(e, 0, "congreso", 0, "spike");
    ntf_at_wait_log(e, 0, "will retry", 3); /* connection refused, three times */
    assert_int_equal(ntf_test_count_lines(e->req_path), 0);
    ntf_at_sink_start(e, 0, 503);
    ntf_at_wait_requests(e, 1);
    usleep(500000); /* longer than the next backoffs: a second request would show by now */
    ntf_at_wait_requests(e, 1);
    s_assert_each_once(e, 1);
    assert_int_equal(ntf_at_stop(e, 0, SIGTERM), 0);
    assert_int_equal(ntf_at_log_count(e, 0, "delivered=1 "), 1);
    assert_int_equal(ntf_at_log_count(e, 0, "queued=0 undelivered=0"), 1);
    assert_int_equal(ntf_at_redis_int(e, "HGET t:ntf:{q}:stats %s", "delivered"), 1);
}

static void
test_delivery_kill9_restart_exactly_once(void **state)
{
    struct ntf_at_env *e = *state;
    int i;

    s_hook_cfg(e, 0, ", \"retry_max\": 30");
    ntf_at_start(e, 0);
    for (i = 0; i < 5; i++) {
        ntf_at_send(e, 0, "congreso", i, "spike");
    }
    ntf_at_wait_log(e, 0, "will retry", 10); /* every delivery failed at least once or twice */
    assert_int_equal(ntf_at_stop(e, 0, SIGKILL), 128 + SIGKILL);
    assert_int_equal(ntf_at_redis_int(e, "ZCARD %s", "t:ntf:{q}:due"), 5);
    /* the receiver comes up while no notifier runs, then the notifier restarts */
    ntf_at_sink_start(e, 0, 503);
    usleep(200000);
    assert_int_equal(ntf_test_count_lines(e->req_path), 0);
    ntf_at_start(e, 0);
    ntf_at_wait_requests(e, 5);
    usleep(500000);
    ntf_at_wait_requests(e, 5);
    s_assert_each_once(e, 5);
    assert_int_equal(ntf_at_stop(e, 0, SIGTERM), 0);
    assert_int_equal(ntf_at_redis_int(e, "ZCARD %s", "t:ntf:{q}:due"), 0);
    assert_int_equal(ntf_at_redis_int(e, "HGET t:ntf:{q}:stats %s", "delivered"), 5);
}

static void
test_delivery_two_notifiers_share_queue(void **state)
{
    struct ntf_at_env *e = *state;
    int i;

    /* the first 6 answers are 503, so retries are claimed by either notifier */
    ntf_at_sink_start(e, 6, 503);
    s_hook_cfg(e, 0, ", \"retry_max\": 30");
    s_hook_cfg(e, 1, ", \"retry_max\": 30");
    ntf_at_start(e, 0);
    ntf_at_start(e, 1);
    /* both receive every alert, as if two aggregators raised the same spikes */
    for (i = 0; i < 10; i++) {
        ntf_at_send(e, 0, "congreso", i, "spike");
        ntf_at_send(e, 1, "congreso", i, "spike");
    }
    ntf_at_wait_requests(e, 16);
    usleep(600000);
    ntf_at_wait_requests(e, 16);
    assert_int_equal(ntf_at_redis_int(e, "HGET t:ntf:{q}:stats %s", "delivered"), 10);
    assert_int_equal(ntf_at_redis_int(e, "HGET t:ntf:{q}:stats %s", "duplicate"), 10);
    assert_int_equal(ntf_at_redis_int(e, "HGET t:ntf:{q}:stats %s", "enqueued"), 10);
    assert_int_equal(ntf_at_stop(e, 0, SIGTERM), 0);
    assert_int_equal(ntf_at_stop(e, 1, SIGTERM), 0);
    /* of the 16 requests, 10 were accepted: one per alert */
    {
        int ok[10];
        int n;

        memset(ok, 0, sizeof(ok));
        for (n = 0; n < 16; n++) {
            json_t *rec = ntf_at_request(e, n);
            json_t *body = ntf_at_request_body(e, n);
            int64_t k;

            assert_int_equal(esc_parse_i64(json_string_value(json_object_get(body, "id")) + 13,
                                           0, 9, &k),
                             0);
            if (json_integer_value(json_object_get(rec, "status")) == 200) {
                ok[k]++;
            }
            json_decref(rec);
            json_decref(body);
        }
        for (n = 0; n < 10; n++) {
            assert_int_equal(ok[n], 1);
        }
    }
}

static void
test_delivery_redis_down_alert_waits(void **state)
{
    struct ntf_at_env *e = *state;

    ntf_at_sink_start(e, 0, 503);
    s_hook_cfg(e, 0, ", \"retry_max\": 30");
    ntf_at_start(e, 0);
    assert_int_equal(esc_testenv_redis_kill(&e->redis), 0);
    ntf_at_send(e, 0, "congreso", 0, "spike");
    ntf_at_wait_log(e, 0, "alert received", 1);
    ntf_at_wait_log(e, 0, "redis unreachable, will retry what=enqueue", 1);
    usleep(200000);
    assert_int_equal(ntf_test_count_lines(e->req_path), 0);
    assert_int_equal(esc_testenv_redis_restart(&e->redis), 0);
    ntf_at_wait_requests(e, 1);
    s_assert_each_once(e, 1);
    assert_int_equal(ntf_at_stop(e, 0, SIGTERM), 0);
    assert_int_equal(ntf_at_log_count(e, 0, "undelivered=0"), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivery_receiver_down_then_up_once, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_delivery_kill9_restart_exactly_once, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_delivery_two_notifiers_share_queue, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_delivery_redis_down_alert_waits, s_setup,
                                        s_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
