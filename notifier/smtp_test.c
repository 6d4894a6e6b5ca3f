#define ESC_LOG_MODULE "smtp_test"
/* Component test of digest delivery over SMTP: escucha-notifier --digest sends through
 * tests/support/smtp_sink.py (aiosmtpd); the message must arrive once, for every recipient,
 * and parse as a mail with the expected headers. A refused recipient makes the command fail. */
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

#include "esc_testenv.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "testproc.h"

struct s_env {
    struct esc_testenv_redis redis;
    char dir[128];
    char mail_dir[256];
    char cfg_path[256];
    char err_path[256];
    struct ntf_proc smtp;
    int port;
};

static void
s_start_smtp(struct s_env *e, const char *reject)
{
    char line[64];
    char rej[128];
    int64_t port;
    char *argv[] = { "/usr/bin/python3", NTF_SUPPORT_DIR "/smtp_sink.py", "--dir", e->mail_dir,
                     reject != NULL ? "--reject-rcpt" : NULL, rej, NULL };

    esc_strlcpy(rej, reject != NULL ? reject : "", sizeof(rej));
    assert_int_equal(ntf_proc_start(&e->smtp, argv, NULL), 0);
    assert_int_equal(ntf_proc_read_line(&e->smtp, line, sizeof(line), 15000), 0);
    assert_int_equal(esc_parse_i64(line, 1, 65535, &port), 0);
    e->port = (int)port;
}

static void
s_write_cfg(struct s_env *e, const char *extra_rcpt)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "{ \"deployment\": \"prueba\",\n"
             "  \"redis\": { \"unix_socket\": \"%s\", \"prefix\": \"t\" },\n"
             "  \"teams\": [\n"
             "   { \"id\": \"gobernanza\", \"name\": \"Gobernanza Democr\\u00e1tica\",\n"
             "     \"language\": \"es\", \"timezone\": \"America/Lima\",\n"
             "     \"recipients\": [\"gobernanza@example.org\",\n"
             "                     \"focal.point@example.org\"%s%s%s],\n"
             "     \"topics\": [ { \"id\": \"congreso\", \"name\": \"Congreso\",\n"
             "                     \"keywords\": [\"congreso\"] } ] } ],\n"
             "  \"notifier\": { \"smtp_url\": \"smtp://127.0.0.1:%d\",\n"
             "                \"from\": \"escucha <escucha@example.org>\",\n"
             "                \"smtp_timeout_ms\": 10000 } }\n",
             e->redis.sock, extra_rcpt != NULL ? ", \"" : "",
             extra_rcpt != NULL ? extra_rcpt : "", extra_rcpt != NULL ? "\"" : "", e->port);
    assert_int_equal(ntf_test_write(e->cfg_path, text), 0);
}

static int
s_setup(void **state)
{
    struct s_env *e = esc_calloc(1, sizeof(*e));
    struct esc_kv_opts o;
    struct esc_kv_val v;
    esc_kv_t *kv;

    if (esc_testenv_redis_start(&e->redis, 0) != 0 || ntf_test_tmpdir(e->dir, sizeof(e->dir))) {
        esc_free(e);
        return -1;
    }
    snprintf(e->mail_dir, sizeof(e->mail_dir), "%s/mail", e->dir);
    snprintf(e->cfg_path, sizeof(e->cfg_path), "%s/escucha.json", e->dir);
    snprintf(e->err_path, sizeof(e->err_path), "%s/notifier.stderr", e->dir);
    /* one hour bucket on Wed 18 Nov 2026 12:00 UTC (07:00 in Lima) */
    esc_testenv_kv_opts(&e->redis, &o);
    kv = esc_kv_new(&o);
    if (esc_kv_cmd(kv, &v, "HSET t:c:{gobernanza/congreso}:h:1795003200 posts 42 reach 4200 "
                           "engagement 17") != ESC_OK) {
        return -1;
    }
    esc_kv_val_fini(&v);
    esc_kv_destroy(&kv);
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct s_env *e = *state;

    if (e->smtp.pid > 0) {
        ntf_proc_stop(&e->smtp, SIGTERM, 5000);
    }
    esc_testenv_redis_stop(&e->redis);
    ntf_test_rmtree(e->dir);
    esc_free(e);
    return 0;
}

/* Number of msg-*.eml files in the mail dir. */
static int
s_count_mails(const struct s_env *e)
{
    DIR *d = opendir(e->mail_dir);
    struct dirent *de;
    int n = 0;

    if (d == NULL) {
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);

        if (len > 4 && strcmp(de->d_name + len - 4, ".eml") == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static void
test_smtp_digest_reaches_every_recipient(void **state)
{
    struct s_env *e = *state;
    static const char *const headers[] = { "From: escucha <escucha@example.org>\r\n",
                                           ("\r\nTo: gobernanza@example.org, "
                                            "focal.point@example.org\r\n"),
                                           "\r\nSubject: =?UTF-8?B?", "\r\nDate: ",
                                           "\r\nMessage-ID: <escucha.gobernanza-2026-W47.",
                                           "\r\nMIME-Version: 1.0\r\n",
                                           "\r\nContent-Type: text/plain; charset=utf-8\r\n" };
    char *argv[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza", "--period",
                     "2026-W47", NULL };
    char out[1024];
    char want[256];
    char path[300];
    json_error_t jerr;
    json_t *env;
    json_t *rcpt;
    char *msg;
    size_t i;

    s_start_smtp(e, NULL);
    s_write_cfg(e, NULL);
    assert_int_equal(ntf_proc_run(argv, e->err_path, out, sizeof(out), 20000), 0);
    snprintf(want, sizeof(want),
             "digest team=gobernanza period=2026-W47 -> smtp://127.0.0.1:%d rcpt=2\n", e->port);
    assert_string_equal(out, want);
    assert_int_equal(s_count_mails(e), 1);

    snprintf(path, sizeof(path), "%s/msg-0001.json", e->mail_dir);
    env = json_load_file(path, 0, &jerr);
    assert_non_null(env);
    assert_string_equal(json_string_value(json_object_get(env, "mail_from")),
                        "escucha@example.org");
    rcpt = json_object_get(env, "rcpt_tos");
    assert_int_equal(json_array_size(rcpt), 2);
    assert_string_equal(json_string_value(json_array_get(rcpt, 0)), "gobernanza@example.org");
    assert_string_equal(json_string_value(json_array_get(rcpt, 1)), "focal.point@example.org");
    json_decref(env);

    snprintf(path, sizeof(path), "%s/msg-0001.eml", e->mail_dir);
    msg = ntf_test_slurp(path, NULL);
    assert_non_null(msg);
    for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        if (strstr(msg, headers[i]) == NULL) {
            fprintf(stderr, "missing %s in:\n%s\n", headers[i], msg);
            fail();
        }
    }
    assert_true(strstr(msg, "\r\n\r\n") < strstr(msg, "Publicaciones: 42"));
    assert_non_null(strstr(msg, "  Alcance: 4200\r\n"));
    assert_non_null(strstr(msg, "mi\xc3\xa9 42"));
    esc_free(msg);
    msg = ntf_test_slurp(e->err_path, NULL);
    assert_true(msg == NULL || strstr(msg, "Sanitizer") == NULL);
    esc_free(msg);
}

static void
test_smtp_refused_recipient_fails(void **state)
{
    struct s_env *e = *state;
    char *argv[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza", "--period",
                     "2026-W47", NULL };
    char out[1024];
    char *log;

    s_start_smtp(e, "rechazo@example.org");
    s_write_cfg(e, "rechazo@example.org");
    assert_int_equal(ntf_proc_run(argv, e->err_path, out, sizeof(out), 20000), 1);
    assert_string_equal(out, "");
    assert_int_equal(s_count_mails(e), 0);
    log = ntf_test_slurp(e->err_path, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "smtp send failed"));
    assert_null(strstr(log, "Sanitizer")); /* a leak report would also exit 1 */
    esc_free(log);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_smtp_digest_reaches_every_recipient, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_smtp_refused_recipient_fails, s_setup, s_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
