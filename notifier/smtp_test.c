#define ESC_LOG_MODULE "smtp_test"
/* Component tests of digest delivery over SMTP: escucha-notifier --digest sends through
 * tests/support/smtp_sink.py (aiosmtpd on loopback). The message must arrive once, for every
 * recipient, and parse (Python's email package) as multipart/related with a text part, an HTML
 * part and the inline chart, carrying the numbers Redis holds. Two notifiers sending the same
 * digest at once, and a rerun after a "restart", deliver it once. TLS: STARTTLS (required) with
 * AUTH, implicit TLS (smtps://), and the failures when TLS is missing or not trusted. */
#include <dirent.h>
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

#include "chart.h"
#include "esc_testenv.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "mimecheck.h"
#include "testproc.h"

#define S_PASSWORD "s3cret-smtp-pw"

struct s_env {
    struct esc_testenv_redis redis;
    char dir[128];
    char mail_dir[256];
    char cfg_path[256];
    char err_path[256];
    char cert[256];
    char key[256];
    struct ntf_proc smtp;
    int port;
};

/* Starts the sink with extra arguments (NULL-terminated, may be NULL). */
static void
s_start_smtp(struct s_env *e, const char *const *extra)
{
    char line[64];
    int64_t port;
    char *argv[16] = { "/usr/bin/python3", NTF_SUPPORT_DIR "/smtp_sink.py", "--dir",
                       e->mail_dir };
    size_t n = 4;
    size_t i;
    char args[10][300];

    for (i = 0; extra != NULL && extra[i] != NULL && i < 10; i++) {
        esc_strlcpy(args[i], extra[i], sizeof(args[i]));
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    assert_int_equal(ntf_proc_start(&e->smtp, argv, NULL), 0);
    assert_int_equal(ntf_proc_read_line(&e->smtp, line, sizeof(line), 15000), 0);
    assert_int_equal(esc_parse_i64(line, 1, 65535, &port), 0);
    e->port = (int)port;
}

/* Writes the config; tls: "none", "starttls" or "implicit". auth: with user + password. */
static void
s_write_cfg(struct s_env *e, const char *extra_rcpt, const char *tls, int auth, int ca)
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
             "  \"notifier\": { \"smtp_url\": \"%s://127.0.0.1:%d\",\n"
             "                \"smtp_tls\": \"%s\",%s%s%s%s\n"
             "                \"from\": \"escucha <escucha@example.org>\",\n"
             "                \"smtp_timeout_ms\": 10000 } }\n",
             e->redis.sock, extra_rcpt != NULL ? ", \"" : "",
             extra_rcpt != NULL ? extra_rcpt : "", extra_rcpt != NULL ? "\"" : "",
             strcmp(tls, "implicit") == 0 ? "smtps" : "smtp", e->port, tls,
             auth ? " \"smtp_username\": \"escucha\", \"smtp_password_env\": "
                    "\"ESC_TEST_SMTP_PASSWORD\"," : "",
             ca ? " \"smtp_ca_file\": \"" : "", ca ? e->cert : "", ca ? "\"," : "");
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
    snprintf(e->cert, sizeof(e->cert), "%s/cert.pem", e->dir);
    snprintf(e->key, sizeof(e->key), "%s/key.pem", e->dir);
    /* one hour bucket on Wed 18 Nov 2026 12:00 UTC (07:00 in Lima) */
    esc_testenv_kv_opts(&e->redis, &o);
    kv = esc_kv_new(&o);
    if (esc_kv_cmd(kv, &v, "HSET t:c:{gobernanza/congreso}:h:1795003200 posts 42 reach 4200 "
                           "engagement 17 likes 10 reposts 5 replies 2") != ESC_OK) {
        return -1;
    }
    esc_kv_val_fini(&v);
    esc_kv_destroy(&kv);
    setenv("ESC_TEST_SMTP_PASSWORD", S_PASSWORD, 1);
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

static json_t *
s_envelope(const struct s_env *e, int n)
{
    char path[300];
    json_error_t jerr;
    json_t *env;

    snprintf(path, sizeof(path), "%s/msg-%04d.json", e->mail_dir, n);
    env = json_load_file(path, 0, &jerr);
    assert_non_null(env);
    return env;
}

static void
s_no_sanitizer_no_secret(const struct s_env *e)
{
    char *log = ntf_test_slurp(e->err_path, NULL);

    assert_true(log == NULL || strstr(log, "Sanitizer") == NULL);
    assert_true(log == NULL || strstr(log, "runtime error") == NULL);
    assert_true(log == NULL || strstr(log, S_PASSWORD) == NULL);
    esc_free(log);
}

static void
test_smtp_digest_reaches_every_recipient(void **state)
{
    struct s_env *e = *state;
    static const char *const headers[] = { "From", "To", "Subject", "Date", "Message-ID",
                                           "User-Agent", "Content-Type", "MIME-Version" };
    char *argv[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza", "--period",
                     "2026-W47", NULL };
    char preview[300];
    char *argv_preview[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza",
                             "--period", "2026-W47", "--to-file", preview, NULL };
    char out[1024];
    char want[256];
    char path[300];
    char tree[512];
    char tree_file[512];
    json_t *env;
    json_t *rcpt;
    json_t *j;
    json_t *jf;
    const char *text;
    const char *html;
    size_t i;
    size_t k;

    s_start_smtp(e, NULL);
    s_write_cfg(e, NULL, "none", 0, 0);
    assert_int_equal(ntf_proc_run(argv, e->err_path, out, sizeof(out), 20000), 0);
    snprintf(want, sizeof(want),
             "digest team=gobernanza period=2026-W47 -> smtp://127.0.0.1:%d rcpt=2\n", e->port);
    assert_string_equal(out, want);
    assert_int_equal(s_count_mails(e), 1);

    env = s_envelope(e, 1);
    assert_string_equal(json_string_value(json_object_get(env, "mail_from")),
                        "escucha@example.org");
    rcpt = json_object_get(env, "rcpt_tos");
    assert_int_equal(json_array_size(rcpt), 2);
    assert_string_equal(json_string_value(json_array_get(rcpt, 0)), "gobernanza@example.org");
    assert_string_equal(json_string_value(json_array_get(rcpt, 1)), "focal.point@example.org");
    assert_false(json_is_true(json_object_get(env, "tls")));
    json_decref(env);

    /* what arrived is MIME built by libcurl: parse it with Python's email package */
    snprintf(path, sizeof(path), "%s/msg-0001.eml", e->mail_dir);
    j = ntf_test_mime(path);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "defects")), 0);
    ntf_test_mime_tree(j, tree, sizeof(tree));
    assert_string_equal(tree, "multipart/related(multipart/alternative(text/plain,text/html),"
                              "image/png)");
    for (i = 0; i < ESC_ARRAY_LEN(headers); i++) {
        for (k = 0; k < json_array_size(json_object_get(j, "headers")); k++) {
            if (strcasecmp(json_string_value(json_array_get(json_object_get(j, "headers"), k)),
                           headers[i])
                == 0) {
                break;
            }
        }
        if (k == json_array_size(json_object_get(j, "headers"))) {
            fprintf(stderr, "missing header %s\n", headers[i]);
            fail();
        }
    }
    assert_string_equal(json_string_value(json_object_get(j, "subject")),
                        "escucha \xc2\xb7 Gobernanza Democr\xc3\xa1tica \xc2\xb7 semana 2026-W47");
    assert_string_equal(json_string_value(json_object_get(j, "to")),
                        "gobernanza@example.org, focal.point@example.org");
    assert_string_equal(json_string_value(json_object_get(j, "text_cte")), "8bit");
    assert_string_equal(json_string_value(json_object_get(j, "html_cte")), "quoted-printable");
    text = json_string_value(json_object_get(j, "text"));
    assert_non_null(text);
    assert_non_null(strstr(text, "  Publicaciones: 42 (semana anterior 0, nuevo)\n"));
    assert_non_null(strstr(text, "  Alcance: 4200\n"));
    assert_non_null(strstr(text, "mi\xc3\xa9 18 42"));
    html = json_string_value(json_object_get(j, "html"));
    assert_non_null(html);
    assert_non_null(strstr(html, "<strong>42</strong> publicaciones"));
    assert_non_null(strstr(html, "Alcance: <strong>4\xe2\x80\xaf" "200</strong>"));
    assert_true(json_is_true(json_object_get(json_array_get(json_object_get(j, "images"), 0),
                                             "png")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "html_cids"), 0)),
                        json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "images"), 0), "cid")));

    /* the preview file has the same structure (serialised by mail.c, not by libcurl) */
    snprintf(preview, sizeof(preview), "%s/preview.eml", e->dir);
    assert_int_equal(ntf_proc_run(argv_preview, e->err_path, out, sizeof(out), 20000), 0);
    jf = ntf_test_mime(preview);
    assert_non_null(jf);
    ntf_test_mime_tree(jf, tree_file, sizeof(tree_file));
    assert_string_equal(tree_file, tree);
    assert_string_equal(json_string_value(json_object_get(jf, "text")), text);
    /* the HTML differs only in the Content-ID, which is the same here */
    assert_string_equal(json_string_value(json_object_get(jf, "html")), html);
    json_decref(jf);
    json_decref(j);
    assert_int_equal(s_count_mails(e), 1); /* the preview sent nothing */
    s_no_sanitizer_no_secret(e);
}

static void
test_smtp_sent_once_two_notifiers_and_restart(void **state)
{
    struct s_env *e = *state;
    char *argv[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza", "--period",
                     "2026-W47", NULL };
    char *argv_force[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza",
                           "--period", "2026-W47", "--force", NULL };
    struct ntf_proc a;
    struct ntf_proc b;
    char out[1024];
    int sa;
    int sb;

    s_start_smtp(e, NULL);
    s_write_cfg(e, NULL, "none", 0, 0);
    /* two notifiers at once: one sends, the other finds it taken (busy) or done */
    assert_int_equal(ntf_proc_start(&a, argv, e->err_path), 0);
    assert_int_equal(ntf_proc_start(&b, argv, e->err_path), 0);
    sa = ntf_proc_wait(&a, 20000);
    sb = ntf_proc_wait(&b, 20000);
    assert_true((sa == 0 && (sb == 0 || sb == 1)) || (sb == 0 && sa == 1));
    assert_int_equal(s_count_mails(e), 1);
    /* "restart": a new process for the same period sends nothing */
    assert_int_equal(ntf_proc_run(argv, e->err_path, out, sizeof(out), 20000), 0);
    assert_string_equal(out, "digest team=gobernanza period=2026-W47 already done (sent); "
                             "--force sends it again\n");
    assert_int_equal(s_count_mails(e), 1);
    /* an operator's --force sends it again */
    assert_int_equal(ntf_proc_run(argv_force, e->err_path, out, sizeof(out), 20000), 0);
    assert_int_equal(s_count_mails(e), 2);
    s_no_sanitizer_no_secret(e);
}

static void
test_smtp_refused_recipient_fails(void **state)
{
    struct s_env *e = *state;
    static const char *const reject[] = { "--reject-rcpt", "rechazo@example.org", NULL };
    char *argv[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza", "--period",
                     "2026-W47", NULL };
    char out[1024];
    char *log;

    s_start_smtp(e, reject);
    s_write_cfg(e, "rechazo@example.org", "none", 0, 0);
    assert_int_equal(ntf_proc_run(argv, e->err_path, out, sizeof(out), 20000), 1);
    assert_string_equal(out, "");
    assert_int_equal(s_count_mails(e), 0);
    log = ntf_test_slurp(e->err_path, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "smtp send failed"));
    assert_null(strstr(log, "Sanitizer")); /* a leak report would also exit 1 */
    esc_free(log);
}

/* A self-signed certificate for 127.0.0.1 (and localhost). */
static void
s_make_cert(struct s_env *e)
{
    char out[4096];
    char *argv[] = { "/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                     "-keyout", e->key, "-out", e->cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                     "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", NULL };

    assert_int_equal(ntf_proc_run(argv, "/dev/null", out, sizeof(out), 20000), 0);
}

static void
test_smtp_starttls_with_auth(void **state)
{
    struct s_env *e = *state;
    const char *const sink[] = { "--tls-cert", e->cert, "--tls-key", e->key, "--starttls",
                                 "--auth", "escucha:" S_PASSWORD, NULL };
    char *argv[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza", "--period",
                     "2026-W47", NULL };
    char out[1024];
    json_t *env;

    s_make_cert(e);
    s_start_smtp(e, sink);
    s_write_cfg(e, NULL, "starttls", 1, 1);
    assert_int_equal(ntf_proc_run(argv, e->err_path, out, sizeof(out), 20000), 0);
    assert_int_equal(s_count_mails(e), 1);
    env = s_envelope(e, 1);
    assert_true(json_is_true(json_object_get(env, "tls")));
    assert_string_equal(json_string_value(json_object_get(env, "auth_user")), "escucha");
    json_decref(env);
    s_no_sanitizer_no_secret(e);
}

static void
test_smtp_implicit_tls(void **state)
{
    struct s_env *e = *state;
    const char *const sink[] = { "--tls-cert", e->cert, "--tls-key", e->key, "--implicit-tls",
                                 NULL };
    char *argv[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza", "--period",
                     "2026-W47", NULL };
    char out[1024];
    json_t *env;

    s_make_cert(e);
    s_start_smtp(e, sink);
    s_write_cfg(e, NULL, "implicit", 0, 1);
    assert_int_equal(ntf_proc_run(argv, e->err_path, out, sizeof(out), 20000), 0);
    assert_int_equal(s_count_mails(e), 1);
    env = s_envelope(e, 1);
    assert_true(json_is_true(json_object_get(env, "tls")));
    json_decref(env);
    s_no_sanitizer_no_secret(e);
}

static void
test_smtp_tls_missing_or_untrusted_fails(void **state)
{
    struct s_env *e = *state;
    const char *const sink[] = { "--tls-cert", e->cert, "--tls-key", e->key, "--starttls",
                                 NULL };
    char *argv[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza", "--period",
                     "2026-W47", NULL };
    char out[1024];
    char *log;

    /* starttls required, the server offers none: nothing is sent in clear */
    s_start_smtp(e, NULL);
    s_write_cfg(e, NULL, "starttls", 0, 0);
    assert_int_equal(ntf_proc_run(argv, e->err_path, out, sizeof(out), 20000), 1);
    assert_int_equal(s_count_mails(e), 0);
    ntf_proc_stop(&e->smtp, SIGTERM, 5000);

    /* a certificate nobody vouches for (no smtp_ca_file): refused */
    s_make_cert(e);
    s_start_smtp(e, sink);
    s_write_cfg(e, NULL, "starttls", 0, 0);
    assert_int_equal(ntf_proc_run(argv, e->err_path, out, sizeof(out), 20000), 1);
    assert_int_equal(s_count_mails(e), 0);
    log = ntf_test_slurp(e->err_path, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "smtp send failed"));
    esc_free(log);
    s_no_sanitizer_no_secret(e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_smtp_digest_reaches_every_recipient, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_smtp_sent_once_two_notifiers_and_restart, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_smtp_refused_recipient_fails, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_smtp_starttls_with_auth, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_smtp_implicit_tls, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_smtp_tls_missing_or_untrusted_fails, s_setup,
                                        s_teardown),
    };
    int rc;

    rc = cmocka_run_group_tests(tests, NULL, NULL);
    ntf_chart_cleanup(); /* in-process digests drew charts */
    return rc;
}
