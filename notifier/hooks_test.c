#define ESC_LOG_MODULE "hooks_test"
/* Component tests of the alert hooks with the real escucha-notifier binary, a private
 * redis-server, tests/support/webhook_sink.py and smtp_sink.py:
 *   - a receiver that always answers 503 gets retry_max attempts, then the delivery is in the
 *     dead-letter list with its reason, counted, and logged;
 *   - the cooldown keeps a second spike of a topic from a hook, "ended" alerts only reach hooks
 *     with notify_ended;
 *   - Slack and Teams hooks receive their own JSON shapes, and the team's alert e-mail reaches
 *     the SMTP server as a multipart message (and the outbox when no SMTP server is set). */
#include <dirent.h>
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
test_hooks_dead_letter_after_retry_max(void **state)
{
    struct ntf_at_env *e = *state;
    char hooks[256];
    struct esc_kv_val v;
    json_error_t jerr;
    json_t *entry;

    ntf_at_sink_start(e, 1000, 503);
    snprintf(hooks, sizeof(hooks), "{ \"url\": \"http://127.0.0.1:%d/hooks/gob\" }",
             e->hook_port);
    ntf_at_write_cfg(e, 0, hooks, ", \"retry_max\": 3");
    ntf_at_start(e, 0);
    ntf_at_send(e, 0, "congreso", 0, "spike");
    ntf_at_wait_log(e, 0, "dead-lettered alert=\"gob/congreso/0\" sink=webhook.gob.0 "
                          "host=127.0.0.1:", 1);
    ntf_at_wait_requests(e, 3);
    assert_int_equal(ntf_at_log_count(e, 0, "attempts=3 status=503"), 1);
    assert_int_equal(esc_kv_cmd(e->kv, &v, "LRANGE t:ntf:{q}:dead 0 -1"), ESC_OK);
    assert_int_equal(v.n, 1);
    entry = json_loads(v.elem[0].str, 0, &jerr);
    esc_kv_val_fini(&v);
    assert_non_null(entry);
    assert_int_equal(json_integer_value(json_object_get(entry, "attempts")), 3);
    assert_string_equal(json_string_value(json_object_get(entry, "sink")), "webhook.gob.0");
    assert_non_null(strstr(json_string_value(json_object_get(entry, "reason")), "status=503"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(entry, "alert"), "id")),
                        "gob/congreso/0");
    json_decref(entry);
    assert_int_equal(ntf_at_redis_int(e, "HGET t:ntf:{q}:stats %s", "dead"), 1);
    assert_int_equal(ntf_at_redis_int(e, "ZCARD %s", "t:ntf:{q}:due"), 0);
    usleep(300000);
    assert_int_equal(ntf_test_count_lines(e->req_path), 3);
    assert_int_equal(ntf_at_stop(e, 0, SIGTERM), 0);
    assert_int_equal(ntf_at_log_count(e, 0, "delivered=0 retried=2 dead=1"), 1);
}

/* Number of requests to path. */
static int
s_count_path(const struct ntf_at_env *e, int n, const char *path, const char *kind)
{
    int found = 0;
    int i;

    for (i = 0; i < n; i++) {
        json_t *rec = ntf_at_request(e, i);
        json_t *body = ntf_at_request_body(e, i);

        if (strcmp(json_string_value(json_object_get(rec, "path")), path) == 0
            && (kind == NULL
                || strcmp(json_string_value(json_object_get(body, "kind")), kind) == 0)) {
            found++;
        }
        json_decref(rec);
        json_decref(body);
    }
    return found;
}

static void
test_hooks_cooldown_and_ended(void **state)
{
    struct ntf_at_env *e = *state;
    char hooks[512];

    ntf_at_sink_start(e, 0, 503);
    snprintf(hooks, sizeof(hooks),
             "{ \"url\": \"http://127.0.0.1:%d/a\" },\n"
             "{ \"url\": \"http://127.0.0.1:%d/b\", \"kind\": \"webhook\",\n"
             "  \"notify_ended\": true, \"cooldown_min\": 0 }",
             e->hook_port, e->hook_port);
    ntf_at_write_cfg(e, 0, hooks, "");
    ntf_at_start(e, 0);
    ntf_at_send(e, 0, "congreso", 1, "spike");
    ntf_at_send(e, 0, "congreso", 2, "spike");    /* the same topic again: cooling down on /a */
    ntf_at_send(e, 0, "congreso", 1, "ended");    /* /b only */
    ntf_at_send(e, 0, "elecciones", 3, "spike");  /* another topic: both */
    ntf_at_wait_requests(e, 6);
    usleep(300000);
    ntf_at_wait_requests(e, 6);
    assert_int_equal(s_count_path(e, 6, "/a", "spike"), 2);
    assert_int_equal(s_count_path(e, 6, "/a", "ended"), 0);
    assert_int_equal(s_count_path(e, 6, "/b", "spike"), 3);
    assert_int_equal(s_count_path(e, 6, "/b", "ended"), 1);
    assert_int_equal(ntf_at_log_count(e, 0, "spike within cooldown, not delivered "
                                            "alert=\"gob/congreso/2\" sink=webhook.gob.0"),
                     1);
    assert_int_equal(ntf_at_redis_int(e, "HGET t:ntf:{q}:stats %s", "cooldown"), 1);
    assert_int_equal(ntf_at_stop(e, 0, SIGTERM), 0);
}

/* The one .eml file in dir (caller esc_free's), or NULL. */
static char *
s_one_eml(const char *dir)
{
    char path[600];
    DIR *d = opendir(dir);
    struct dirent *de;
    char *found = NULL;
    int n = 0;

    if (d == NULL) {
        return NULL;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);

        if (len > 4 && strcmp(de->d_name + len - 4, ".eml") == 0) {
            n++;
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            esc_free(found);
            found = ntf_test_slurp(path, NULL);
        }
    }
    closedir(d);
    if (n != 1) {
        esc_free(found);
        return NULL;
    }
    return found;
}

static void
s_check_mail(const char *msg)
{
    const char *hdr_end = strstr(msg, "\r\n\r\n");

    assert_non_null(hdr_end);
    assert_non_null(strstr(msg, "Subject: =?UTF-8?B?"));
    assert_non_null(strstr(msg, "To: gob@example.org,\r\n focal@example.org\r\n"));
    assert_non_null(strstr(msg, "Content-Type: multipart/alternative; boundary="));
    assert_non_null(strstr(msg, "Content-Type: text/html; charset=utf-8"));
    assert_non_null(strstr(msg, "Content-Type: text/plain; charset=utf-8"));
    /* the author's CR/LF never made a header */
    assert_null(strstr(msg, "\nBcc:"));
    assert_null(strstr(msg, "<script>"));
}

static void
test_hooks_slack_teams_and_email(void **state)
{
    struct ntf_at_env *e = *state;
    struct ntf_proc smtp;
    char mail_dir[300];
    char hooks[512];
    char extra[256];
    char line[64];
    int64_t port;
    int64_t deadline;
    char *msg = NULL;
    json_t *rec;
    json_t *body;
    int i;
    char *argv[] = { "/usr/bin/python3", NTF_SUPPORT_DIR "/smtp_sink.py", "--dir", mail_dir,
                     NULL };

    snprintf(mail_dir, sizeof(mail_dir), "%s/mail", e->dir);
    assert_int_equal(ntf_proc_start(&smtp, argv, NULL), 0);
    assert_int_equal(ntf_proc_read_line(&smtp, line, sizeof(line), 15000), 0);
    assert_int_equal(esc_parse_i64(line, 1, 65535, &port), 0);
    ntf_at_sink_start(e, 0, 503);
    snprintf(hooks, sizeof(hooks),
             "{ \"url\": \"http://127.0.0.1:%d/slack/T0/B0/token\", \"kind\": \"slack\" },\n"
             "{ \"url\": \"http://127.0.0.1:%d/teams/webhookb2/token\", \"kind\": \"teams\" }",
             e->hook_port, e->hook_port);
    snprintf(extra, sizeof(extra),
             ", \"alert_email_teams\": \"gob\", \"smtp_url\": \"smtp://127.0.0.1:%d\",\n"
             "  \"smtp_tls\": \"none\", \"from\": \"escucha <alerts@example.org>\"",
             (int)port);
    ntf_at_write_cfg(e, 0, hooks, extra);
    ntf_at_start(e, 0);
    ntf_at_send(e, 0, "congreso", 0, "spike");
    ntf_at_wait_requests(e, 2);
    for (i = 0; i < 2; i++) {
        const char *path;

        rec = ntf_at_request(e, i);
        body = ntf_at_request_body(e, i);
        path = json_string_value(json_object_get(rec, "path"));
        assert_null(json_object_get(json_object_get(rec, "headers"), "x-escucha-signature"));
        if (strncmp(path, "/slack/", 7) == 0) {
            assert_true(json_is_string(json_object_get(body, "text")));
            assert_true(json_array_size(json_object_get(body, "blocks")) >= 4);
            assert_non_null(strstr(json_string_value(json_object_get(rec, "body")),
                                   "&lt;script&gt;alert(1)&lt;/script&gt;"));
        }
        else {
            assert_int_equal(strncmp(path, "/teams/", 7), 0);
            assert_string_equal(json_string_value(json_object_get(body, "type")), "message");
            assert_string_equal(
                json_string_value(json_object_get(
                    json_array_get(json_object_get(body, "attachments"), 0), "contentType")),
                "application/vnd.microsoft.card.adaptive");
        }
        json_decref(rec);
        json_decref(body);
    }
    deadline = esc_mono_ms() + 10000;
    while (msg == NULL && esc_mono_ms() < deadline) {
        usleep(50000);
        msg = s_one_eml(mail_dir);
    }
    assert_non_null(msg);
    s_check_mail(msg);
    esc_free(msg);
    ntf_at_wait_log(e, 0, "delivered alert=\"gob/congreso/0\" sink=email.gob host=127.0.0.1:", 1);
    assert_int_equal(ntf_at_stop(e, 0, SIGTERM), 0);
    assert_int_equal(ntf_at_log_count(e, 0, "delivered=3 "), 1);
    assert_int_equal(ntf_proc_stop(&smtp, SIGTERM, 5000), 0);
    /* the Slack and Teams URLs are secrets: only host:port reaches the log */
    assert_int_equal(ntf_at_log_count(e, 0, "token"), 0);
}

static void
test_hooks_email_outbox_without_smtp(void **state)
{
    struct ntf_at_env *e = *state;
    char outbox[300];
    char *msg;

    ntf_at_write_cfg(e, 0, "", ", \"alert_email_teams\": \"gob\"");
    ntf_at_start(e, 0);
    ntf_at_send(e, 0, "congreso", 0, "spike");
    ntf_at_wait_log(e, 0, "delivered alert=\"gob/congreso/0\" sink=email.gob host=outbox", 1);
    snprintf(outbox, sizeof(outbox), "%s/outbox", e->dir);
    msg = s_one_eml(outbox);
    assert_non_null(msg);
    s_check_mail(msg);
    esc_free(msg);
    assert_int_equal(ntf_at_stop(e, 0, SIGTERM), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hooks_dead_letter_after_retry_max, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_hooks_cooldown_and_ended, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hooks_slack_teams_and_email, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hooks_email_outbox_without_smtp, s_setup,
                                        s_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
