#define ESC_LOG_MODULE "webhook_test"
/* Component tests of alert delivery: the real escucha-notifier binary PULLs alerts from its bus
 * (ipc:// in a temp dir), queues them in a private redis-server and POSTs them to
 * tests/support/webhook_sink.py. Checked: payload, headers and HMAC signature; 503 twice then
 * 200 gives exactly one delivery; bad bus messages are skipped; 4xx is not retried;
 * dead-lettering after retry_max; a delivery waiting for its retry at SIGTERM stays queued in
 * Redis (exit 0) and is delivered by the next start; exit 2 when a webhook secret is missing. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "esc_testenv.h"
#include "escucha/esc_bus.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"
#include "testproc.h"

#define S_SECRET "s3cret-for-tests-\xc3\xb1"
#define S_SECRET_ENV "NTF_TEST_HOOK_SECRET"

struct s_env {
    struct esc_testenv_redis redis;
    char dir[128];
    char cfg_path[256];
    char log_path[256];
    char req_path[256];
    char endpoint[300];
    struct ntf_proc sink;
    struct ntf_proc ntf;
    esc_bus_t *push;
    int port;
};

static int
s_setup(void **state)
{
    struct s_env *e = esc_calloc(1, sizeof(*e));

    if (esc_testenv_redis_start(&e->redis, 0) != 0) {
        esc_free(e);
        return -1;
    }
    if (ntf_test_tmpdir(e->dir, sizeof(e->dir)) != 0) {
        esc_testenv_redis_stop(&e->redis);
        esc_free(e);
        return -1;
    }
    snprintf(e->cfg_path, sizeof(e->cfg_path), "%s/escucha.json", e->dir);
    snprintf(e->log_path, sizeof(e->log_path), "%s/notifier.log", e->dir);
    snprintf(e->req_path, sizeof(e->req_path), "%s/requests.jsonl", e->dir);
    snprintf(e->endpoint, sizeof(e->endpoint), "ipc://%s/notify.sock", e->dir);
    setenv(S_SECRET_ENV, S_SECRET, 1);
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct s_env *e = *state;

    esc_bus_destroy(&e->push, 0);
    esc_bus_ctx_term();
    if (e->ntf.pid > 0) {
        ntf_proc_stop(&e->ntf, SIGKILL, 5000);
    }
    if (e->sink.pid > 0) {
        ntf_proc_stop(&e->sink, SIGTERM, 5000);
    }
    esc_testenv_redis_stop(&e->redis);
    ntf_test_rmtree(e->dir);
    esc_free(e);
    return 0;
}

/* Starts webhook_sink.py answering fail_status to the first fail_first requests. */
static void
s_start_sink(struct s_env *e, int fail_first, int fail_status)
{
    char ff[16];
    char fs[16];
    char line[64];
    int64_t port;
    char *argv[] = { "/usr/bin/python3", NTF_SUPPORT_DIR "/webhook_sink.py", "--out", e->req_path,
                     "--fail-first", ff, "--fail-status", fs, NULL };

    snprintf(ff, sizeof(ff), "%d", fail_first);
    snprintf(fs, sizeof(fs), "%d", fail_status);
    assert_int_equal(ntf_proc_start(&e->sink, argv, NULL), 0);
    assert_int_equal(ntf_proc_read_line(&e->sink, line, sizeof(line), 10000), 0);
    assert_int_equal(esc_parse_i64(line, 1, 65535, &port), 0);
    e->port = (int)port;
}

static void
s_write_cfg(struct s_env *e, int retry_base_ms, int retry_max, int grace_ms,
            const char *secret_env)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "{ \"deployment\": \"prueba\",\n"
             "  \"redis\": { \"unix_socket\": \"%s\", \"prefix\": \"t\" },\n"
             "  \"bus\": { \"notify\": \"%s\" },\n"
             "  \"teams\": [\n"
             "   { \"id\": \"gobernanza\", \"name\": \"Gobernanza Democr\\u00e1tica\",\n"
             "     \"timezone\": \"America/Lima\",\n"
             "     \"webhooks\": [ {\n"
             "       \"url\": \"http://127.0.0.1:%d/hooks/gobernanza?token=abc123\",\n"
             "                       \"secret_env\": \"%s\" } ],\n"
             "     \"topics\": [ { \"id\": \"congreso\", \"name\": \"Congreso\",\n"
             "                     \"keywords\": [\"congreso\"] } ] },\n"
             "   { \"id\": \"desarrollo\", \"name\": \"Inclusive Development\",\n"
             "     \"topics\": [ { \"id\": \"anemia\", \"name\": \"Anemia\",\n"
             "                     \"keywords\": [\"anemia\"] } ] } ],\n"
             "  \"notifier\": { \"retry_base_ms\": %d, \"retry_max\": %d, \"grace_ms\": %d,\n"
             "                \"drain_quiet_ms\": 100, \"webhook_timeout_ms\": 2000 } }\n",
             e->redis.sock, e->endpoint, e->port, secret_env, retry_base_ms, retry_max,
             grace_ms);
    assert_int_equal(ntf_test_write(e->cfg_path, text), 0);
}

static int
s_log_has(const struct s_env *e, const char *needle)
{
    char *log = ntf_test_slurp(e->log_path, NULL);
    int found = log != NULL && strstr(log, needle) != NULL;

    esc_free(log);
    return found;
}

static void
s_wait_log(const struct s_env *e, const char *needle)
{
    int64_t deadline = esc_mono_ms() + 10000;

    while (!s_log_has(e, needle) && esc_mono_ms() < deadline) {
        usleep(20000);
    }
    if (!s_log_has(e, needle)) {
        char *log = ntf_test_slurp(e->log_path, NULL);

        fprintf(stderr, "log does not contain '%s':\n%s\n", needle, log != NULL ? log : "");
        esc_free(log);
        fail();
    }
}

static void
s_wait_requests(const struct s_env *e, int n)
{
    int64_t deadline = esc_mono_ms() + 10000;

    while (ntf_test_count_lines(e->req_path) < n && esc_mono_ms() < deadline) {
        usleep(20000);
    }
    assert_int_equal(ntf_test_count_lines(e->req_path), n);
}

static void
s_start_notifier(struct s_env *e)
{
    char *argv[] = { NTF_BIN, "--config", e->cfg_path, NULL };

    assert_int_equal(ntf_proc_start(&e->ntf, argv, e->log_path), 0);
    s_wait_log(e, "started endpoint=");
    e->push = esc_bus_new(ESC_BUS_PUSH, e->endpoint, false, 1000);
    assert_non_null(e->push);
}

static void
s_send(struct s_env *e, const void *buf, size_t len)
{
    int64_t deadline = esc_mono_ms() + 5000;
    esc_rc rc;

    do {
        rc = esc_bus_send(e->push, buf, len, ESC_BUS_DONTWAIT);
        if (rc == ESC_RETRY) {
            usleep(10000);
        }
    } while (rc == ESC_RETRY && esc_mono_ms() < deadline);
    assert_int_equal(rc, ESC_OK);
}

static void
s_send_alert(struct s_env *e, const char *team, const char *id)
{
    struct esc_alert a;
    size_t len = 0;
    char *buf;

    esc_alert_init(&a);
    a.id = esc_strdup(id);
    a.team = esc_strdup(team);
    a.topic = esc_strdup("congreso");
    a.topic_name = esc_strdup("Congreso");
    a.kind = esc_strdup("spike");
    a.window_start = 1795000000000LL;
    a.window_end = 1795001800000LL;
    a.observed = 120;
    a.expected = 12.5;
    a.score = 9.6;
    a.ts = 1795001801000LL;
    assert_int_equal(esc_strlist_push(&a.samples, &a.n_samples, "el congreso vota hoy"), 0);
    buf = esc_alert_encode(&a, &len);
    s_send(e, buf, len);
    esc_free(buf);
    esc_alert_fini(&a);
}

/* Record number k of the sink (0-based). Caller json_decref's. */
static json_t *
s_request(const struct s_env *e, int k)
{
    char *text = ntf_test_slurp(e->req_path, NULL);
    char *line = text;
    json_error_t jerr;
    json_t *rec;
    int i;

    assert_non_null(text);
    for (i = 0; i < k; i++) {
        line = strchr(line, '\n');
        assert_non_null(line);
        line++;
    }
    rec = json_loadb(line, strcspn(line, "\n"), 0, &jerr);
    assert_non_null(rec);
    esc_free(text);
    return rec;
}

static const char *
s_hdr(json_t *rec, const char *name)
{
    const char *v = json_string_value(json_object_get(json_object_get(rec, "headers"), name));

    assert_non_null(v);
    return v;
}

/* SIGTERM, wait, and check the log has no sanitizer report (whose exit code could hide in 1). */
static int
s_stop_notifier(struct s_env *e)
{
    int st = ntf_proc_stop(&e->ntf, SIGTERM, 10000);

    assert_false(s_log_has(e, "Sanitizer"));
    assert_false(s_log_has(e, "runtime error"));
    return st;
}

static void
test_webhook_delivers_signed_alert(void **state)
{
    struct s_env *e = *state;
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char hex[sizeof(mac) * 2 + 1];
    char want[80];
    unsigned char body[8192];
    size_t body_len = 0;
    const char *b64;
    const char *ts;
    json_error_t jerr;
    json_t *rec;
    json_t *payload;
    int64_t t;

    s_start_sink(e, 0, 503);
    s_write_cfg(e, 100, 8, 3000, S_SECRET_ENV);
    s_start_notifier(e);
    s_send_alert(e, "gobernanza", "gobernanza/congreso/1795000000000");
    s_wait_requests(e, 1);

    rec = s_request(e, 0);
    assert_string_equal(json_string_value(json_object_get(rec, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(rec, "path")),
                        "/hooks/gobernanza?token=abc123");
    assert_string_equal(s_hdr(rec, "content-type"), "application/json");
    assert_string_equal(s_hdr(rec, "user-agent"), "escucha/" ESC_VERSION);
    ts = s_hdr(rec, "x-escucha-timestamp");
    assert_int_equal(esc_parse_i64(ts, 0, INT64_MAX, &t), 0);
    assert_true(llabs((long long)(t - esc_now_ms() / 1000)) < 60);

    /* recompute the signature over "<timestamp>.<exact body bytes>" */
    b64 = json_string_value(json_object_get(rec, "body_b64"));
    assert_int_equal(sodium_base642bin(body, sizeof(body), b64, strlen(b64), NULL, &body_len,
                                       NULL, sodium_base64_VARIANT_ORIGINAL),
                     0);
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)S_SECRET, strlen(S_SECRET));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, body, body_len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
    snprintf(want, sizeof(want), "sha256=%s", hex);
    assert_string_equal(s_hdr(rec, "x-escucha-signature"), want);

    payload = json_loadb((const char *)body, body_len, 0, &jerr);
    assert_non_null(payload);
    assert_string_equal(json_string_value(json_object_get(payload, "id")),
                        "gobernanza/congreso/1795000000000");
    assert_string_equal(json_string_value(json_object_get(payload, "team")), "gobernanza");
    assert_string_equal(json_string_value(json_object_get(payload, "topic")), "congreso");
    assert_string_equal(json_string_value(json_object_get(payload, "team_name")),
                        "Gobernanza Democr\xc3\xa1tica");
    assert_string_equal(json_string_value(json_object_get(payload, "deployment")), "prueba");
    assert_int_equal(json_integer_value(json_object_get(payload, "observed")), 120);
    assert_int_equal(json_integer_value(json_object_get(payload, "window_start")),
                     1795000000000LL);
    json_decref(payload);
    json_decref(rec);

    assert_int_equal(s_stop_notifier(e), 0);
    assert_true(s_log_has(e, "stopped alerts=1 delivered=1 retried=0 dead=0"));
    /* neither the URL's query nor the secret ever reach the log */
    assert_false(s_log_has(e, "abc123"));
    assert_false(s_log_has(e, "s3cret"));
}

static void
test_webhook_retries_503_then_200_once(void **state)
{
    struct s_env *e = *state;
    json_t *rec;
    int k;

    s_start_sink(e, 2, 503);
    s_write_cfg(e, 100, 8, 3000, S_SECRET_ENV);
    s_start_notifier(e);
    s_send_alert(e, "gobernanza", "gobernanza/congreso/1795000000000");
    s_wait_requests(e, 3);
    for (k = 0; k < 3; k++) {
        rec = s_request(e, k);
        assert_int_equal(json_integer_value(json_object_get(rec, "status")), k < 2 ? 503 : 200);
        json_decref(rec);
    }
    usleep(400000); /* longer than any backoff here: no fourth request may follow */
    assert_int_equal(ntf_test_count_lines(e->req_path), 3);
    assert_int_equal(s_stop_notifier(e), 0);
    assert_true(s_log_has(e, "stopped alerts=1 delivered=1 retried=2 dead=0"));
}

static void
test_webhook_skips_bad_message(void **state)
{
    struct s_env *e = *state;
    static const unsigned char junk[] = { 0x93, 0x01, 0xc1, 0xff, 'x' };
    struct esc_post p;
    size_t len = 0;
    char *buf;

    s_start_sink(e, 0, 503);
    s_write_cfg(e, 100, 8, 3000, S_SECRET_ENV);
    s_start_notifier(e);
    s_send(e, junk, sizeof(junk));
    /* a well-formed alert for a team that is not configured */
    s_send_alert(e, "nadie", "nadie/x/1");
    /* a "post" message is not an alert */
    esc_post_init(&p);
    p.id = esc_strdup("1");
    p.platform = esc_strdup("jsonl");
    p.text = esc_strdup("hola");
    p.created_at = 1795000000000LL;
    buf = esc_post_encode(&p, 0, &len);
    s_send(e, buf, len);
    esc_free(buf);
    esc_post_fini(&p);
    s_send_alert(e, "gobernanza", "gobernanza/congreso/1795000000000");
    s_wait_requests(e, 1);
    assert_int_equal(s_stop_notifier(e), 0);
    assert_true(s_log_has(e, "stopped alerts=1 delivered=1 retried=0 dead=0"));
    assert_true(s_log_has(e, "invalid=3"));
}

static void
test_webhook_4xx_dropped_without_retry(void **state)
{
    struct s_env *e = *state;

    s_start_sink(e, 100, 400);
    s_write_cfg(e, 50, 8, 3000, S_SECRET_ENV);
    s_start_notifier(e);
    s_send_alert(e, "gobernanza", "gobernanza/congreso/1795000000000");
    s_wait_requests(e, 1);
    usleep(300000);
    assert_int_equal(ntf_test_count_lines(e->req_path), 1);
    assert_int_equal(s_stop_notifier(e), 0);
    assert_true(s_log_has(e, "delivered=0 retried=0 dead=0 rejected=1"));
}

static void
test_webhook_dead_letter_after_retry_max(void **state)
{
    struct s_env *e = *state;

    s_start_sink(e, 100, 503);
    s_write_cfg(e, 20, 3, 3000, S_SECRET_ENV);
    s_start_notifier(e);
    s_send_alert(e, "gobernanza", "gobernanza/congreso/1795000000000");
    s_wait_log(e, "dead-lettered");
    assert_int_equal(ntf_test_count_lines(e->req_path), 3);
    assert_true(s_log_has(e, "host=127.0.0.1:"));
    assert_int_equal(s_stop_notifier(e), 0);
    assert_true(s_log_has(e, "stopped alerts=1 delivered=0 retried=2 dead=1"));
    assert_false(s_log_has(e, "abc123"));
}

/* ZCARD of the delivery queue. */
static long long
s_queued(struct s_env *e)
{
    struct esc_kv_opts o;
    struct esc_kv_val v;
    esc_kv_t *kv;
    long long n;

    esc_testenv_kv_opts(&e->redis, &o);
    kv = esc_kv_new(&o);
    assert_int_equal(esc_kv_cmd(kv, &v, "ZCARD t:ntf:{q}:due"), ESC_OK);
    n = v.integer;
    esc_kv_val_fini(&v);
    esc_kv_destroy(&kv);
    return n;
}

static void
test_webhook_pending_retry_survives_shutdown(void **state)
{
    struct s_env *e = *state;
    int64_t t0;

    s_start_sink(e, 1, 503);
    s_write_cfg(e, 1500, 100, 3000, S_SECRET_ENV);
    s_start_notifier(e);
    s_send_alert(e, "gobernanza", "gobernanza/congreso/1795000000000");
    s_wait_requests(e, 1);
    s_wait_log(e, "will retry");
    t0 = esc_mono_ms();
    /* nothing is lost: the delivery waits in Redis for its retry, so the stop is quick and 0 */
    assert_int_equal(s_stop_notifier(e), 0);
    assert_true(esc_mono_ms() - t0 < 2500);
    assert_true(s_log_has(e, "queued=1 undelivered=0"));
    assert_int_equal(s_queued(e), 1);
    /* the next start delivers it, once */
    esc_bus_destroy(&e->push, 0);
    s_start_notifier(e);
    s_wait_requests(e, 2);
    usleep(300000);
    assert_int_equal(ntf_test_count_lines(e->req_path), 2);
    assert_int_equal(s_stop_notifier(e), 0);
    assert_true(s_log_has(e, "delivered alert="));
    assert_int_equal(s_queued(e), 0);
}

static void
test_webhook_missing_secret_refuses_start(void **state)
{
    struct s_env *e = *state;
    char *argv[] = { NTF_BIN, "--config", e->cfg_path, NULL };

    s_start_sink(e, 0, 503);
    unsetenv("NTF_TEST_UNSET_SECRET");
    s_write_cfg(e, 100, 8, 1000, "NTF_TEST_UNSET_SECRET");
    assert_int_equal(ntf_proc_start(&e->ntf, argv, e->log_path), 0);
    assert_int_equal(ntf_proc_wait(&e->ntf, 10000), 2);
    assert_true(s_log_has(e, "webhook secret not available"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_webhook_delivers_signed_alert, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_webhook_retries_503_then_200_once, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_webhook_skips_bad_message, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_webhook_4xx_dropped_without_retry, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_webhook_dead_letter_after_retry_max, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_webhook_pending_retry_survives_shutdown, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_webhook_missing_secret_refuses_start, s_setup,
                                        s_teardown),
    };

    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
