#define ESC_LOG_MODULE "alerttest"
/* Test support for the alert-delivery component tests (see alerttest.h). The receiver's port is
 * found by binding port 0 and releasing it, so a test can point a notifier at a receiver that
 * is not running yet and start it later on that port. Single-threaded test code. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "alerttest.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

static int
s_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd < 0) {
        return -1;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0
        && getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

int
ntf_at_setup(struct ntf_at_env *e)
{
    struct esc_kv_opts o;
    int k;

    memset(e, 0, sizeof(*e));
    if (esc_testenv_redis_start(&e->redis, 0) != 0) {
        return -1;
    }
    if (ntf_test_tmpdir(e->dir, sizeof(e->dir)) != 0) {
        esc_testenv_redis_stop(&e->redis);
        return -1;
    }
    e->hook_port = s_free_port();
    snprintf(e->req_path, sizeof(e->req_path), "%s/requests.jsonl", e->dir);
    for (k = 0; k < NTF_AT_MAX; k++) {
        snprintf(e->cfg_path[k], sizeof(e->cfg_path[k]), "%s/escucha-%d.json", e->dir, k);
        snprintf(e->log_path[k], sizeof(e->log_path[k]), "%s/notifier-%d.log", e->dir, k);
        snprintf(e->endpoint[k], sizeof(e->endpoint[k]), "ipc://%s/notify-%d.sock", e->dir, k);
    }
    esc_testenv_kv_opts(&e->redis, &o);
    e->kv = esc_kv_new(&o);
    return e->hook_port > 0 ? 0 : -1;
}

void
ntf_at_teardown(struct ntf_at_env *e)
{
    int k;

    for (k = 0; k < NTF_AT_MAX; k++) {
        esc_bus_destroy(&e->push[k], 0);
    }
    esc_bus_ctx_term();
    for (k = 0; k < NTF_AT_MAX; k++) {
        if (e->ntf[k].pid > 0) {
            ntf_proc_stop(&e->ntf[k], SIGKILL, 5000);
        }
    }
    if (e->sink.pid > 0) {
        ntf_proc_stop(&e->sink, SIGTERM, 5000);
    }
    esc_kv_destroy(&e->kv);
    esc_testenv_redis_stop(&e->redis);
    ntf_test_rmtree(e->dir);
}

void
ntf_at_sink_start(struct ntf_at_env *e, int fail_first, int fail_status)
{
    char ff[16];
    char fs[16];
    char port[16];
    char line[64];
    char *argv[] = { "/usr/bin/python3", NTF_SUPPORT_DIR "/webhook_sink.py", "--out", e->req_path,
                     "--port", port, "--fail-first", ff, "--fail-status", fs, NULL };

    snprintf(ff, sizeof(ff), "%d", fail_first);
    snprintf(fs, sizeof(fs), "%d", fail_status);
    snprintf(port, sizeof(port), "%d", e->hook_port);
    assert_int_equal(ntf_proc_start(&e->sink, argv, NULL), 0);
    assert_int_equal(ntf_proc_read_line(&e->sink, line, sizeof(line), 10000), 0);
    assert_string_equal(line, port);
}

void
ntf_at_write_cfg(struct ntf_at_env *e, int k, const char *hooks, const char *notifier_extra)
{
    char *text = esc_malloc(16384);

    snprintf(text, 16384,
             "{ \"deployment\": \"prueba\",\n"
             "  \"redis\": { \"unix_socket\": \"%s\", \"prefix\": \"t\" },\n"
             "  \"bus\": { \"notify\": \"%s\" },\n"
             "  \"teams\": [\n"
             "   { \"id\": \"gob\", \"name\": \"Gobernanza Democr\\u00e1tica\",\n"
             "     \"language\": \"es\", \"timezone\": \"America/Lima\",\n"
             "     \"recipients\": [\"gob@example.org\", \"focal@example.org\"],\n"
             "     \"webhooks\": [ %s ],\n"
             "     \"topics\": [ { \"id\": \"congreso\", \"name\": \"Congreso\",\n"
             "                     \"keywords\": [\"congreso\"] },\n"
             "                   { \"id\": \"elecciones\", \"name\": \"Elecciones\",\n"
             "                     \"keywords\": [\"elecciones\"] } ] } ],\n"
             "  \"notifier\": { \"retry_base_ms\": 50, \"grace_ms\": 3000,\n"
             "                \"drain_quiet_ms\": 100, \"webhook_timeout_ms\": 1000,\n"
             "                \"smtp_timeout_ms\": 2000,\n"
             "                \"outbox\": \"%s/outbox\"%s } }\n",
             e->redis.sock, e->endpoint[k], hooks, e->dir, notifier_extra);
    assert_int_equal(ntf_test_write(e->cfg_path[k], text), 0);
    esc_free(text);
}

void
ntf_at_start(struct ntf_at_env *e, int k)
{
    char *argv[] = { NTF_BIN, "--config", e->cfg_path[k], NULL };
    int before = ntf_at_log_count(e, k, "started endpoint=");

    assert_int_equal(ntf_proc_start(&e->ntf[k], argv, e->log_path[k]), 0);
    ntf_at_wait_log(e, k, "started endpoint=", before + 1);
    if (e->push[k] == NULL) {
        e->push[k] = esc_bus_new(ESC_BUS_PUSH, e->endpoint[k], false, 1000);
    }
    assert_non_null(e->push[k]);
}

int
ntf_at_stop(struct ntf_at_env *e, int k, int sig)
{
    int st = ntf_proc_stop(&e->ntf[k], sig, 10000);

    assert_int_equal(ntf_at_log_count(e, k, "Sanitizer"), 0);
    assert_int_equal(ntf_at_log_count(e, k, "runtime error"), 0);
    return st;
}

void
ntf_at_send(struct ntf_at_env *e, int k, const char *topic, int n, const char *kind)
{
    struct esc_alert a;
    char id[128];
    size_t len = 0;
    int64_t deadline = esc_mono_ms() + 5000;
    char *buf;
    esc_rc rc;

    esc_alert_init(&a);
    snprintf(id, sizeof(id), "gob/%s/%d", topic, n);
    a.id = esc_strdup(id);
    a.team = esc_strdup("gob");
    a.topic = esc_strdup(topic);
    a.topic_name = esc_strdup(topic);
    a.kind = esc_strdup(kind);
    a.window_start = 1795003200000LL + (int64_t)n * 60000;
    a.window_end = a.window_start + 1800000;
    a.observed = 100 + n;
    a.expected = 10.0;
    a.score = (double)a.observed / 10.0;
    a.ts = a.window_end + 1000;
    a.query = esc_strdup("congreso OR \"<b>vacancia</b>\"");
    esc_strlist_push(&a.samples, &a.n_samples, "<script>alert(1)</script> el congreso vota");
    esc_strlist_push(&a.sample_authors, &a.n_sample_authors, "@ana\r\nBcc: evil@example.org");
    esc_strlist_push(&a.sample_urls, &a.n_sample_urls, "https://social.example/@ana/1");
    esc_strlist_push(&a.terms, &a.n_terms, "vacancia");
    buf = esc_alert_encode(&a, &len);
    do {
        rc = esc_bus_send(e->push[k], buf, len, ESC_BUS_DONTWAIT);
        if (rc == ESC_RETRY) {
            usleep(10000);
        }
    } while (rc == ESC_RETRY && esc_mono_ms() < deadline);
    assert_int_equal(rc, ESC_OK);
    esc_free(buf);
    esc_alert_fini(&a);
}

int
ntf_at_log_count(const struct ntf_at_env *e, int k, const char *needle)
{
    char *log = ntf_test_slurp(e->log_path[k], NULL);
    const char *p;
    int n = 0;

    for (p = log != NULL ? strstr(log, needle) : NULL; p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    esc_free(log);
    return n;
}

void
ntf_at_wait_log(const struct ntf_at_env *e, int k, const char *needle, int times)
{
    int64_t deadline = esc_mono_ms() + 10000;

    while (ntf_at_log_count(e, k, needle) < times && esc_mono_ms() < deadline) {
        usleep(20000);
    }
    if (ntf_at_log_count(e, k, needle) < times) {
        char *log = ntf_test_slurp(e->log_path[k], NULL);

        fprintf(stderr, "log %d has '%s' fewer than %d times:\n%s\n", k, needle, times,
                log != NULL ? log : "");
        esc_free(log);
        fail();
    }
}

void
ntf_at_wait_requests(const struct ntf_at_env *e, int n)
{
    int64_t deadline = esc_mono_ms() + 10000;

    while (ntf_test_count_lines(e->req_path) < n && esc_mono_ms() < deadline) {
        usleep(20000);
    }
    assert_int_equal(ntf_test_count_lines(e->req_path), n);
}

json_t *
ntf_at_request(const struct ntf_at_env *e, int k)
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

json_t *
ntf_at_request_body(const struct ntf_at_env *e, int k)
{
    json_t *rec = ntf_at_request(e, k);
    const char *body = json_string_value(json_object_get(rec, "body"));
    json_error_t jerr;
    json_t *j;

    assert_non_null(body);
    j = json_loads(body, 0, &jerr);
    assert_non_null(j);
    json_decref(rec);
    return j;
}

long long
ntf_at_redis_int(struct ntf_at_env *e, const char *fmt, const char *arg)
{
    struct esc_kv_val v;
    long long n = 0;
    int64_t parsed;

    assert_int_equal(esc_kv_cmd(e->kv, &v, fmt, arg), ESC_OK);
    if (v.type == ESC_KV_INT) {
        n = v.integer;
    }
    else if (v.type == ESC_KV_STR && esc_parse_i64(v.str, INT64_MIN, INT64_MAX, &parsed) == 0) {
        n = (long long)parsed;
    }
    esc_kv_val_fini(&v);
    return n;
}
