#define ESC_LOG_MODULE "sinks_test"
/* Unit tests of what the Slack, Teams, e-mail and webhook sinks send, without a network: each
 * plugin's prepare is called on a hand-built instance and its request body is parsed back.
 * Hostile input everywhere a post or the config can put text (<script>, "><img onerror=...>,
 * Slack's <!channel>, CR/LF header injection, invalid UTF-8, bidi overrides, javascript: links,
 * 100 KB texts) must come out escaped or neutralised, and every payload must keep the shape and
 * the size limits its receiver expects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"
#include "ntf.h"
#include "sinks/render.h"
#include "sinks/sink.h"
#include "testproc.h"

#define S_SCRIPT "<script>alert(1)</script>"
#define S_IMG "\"><img src=x onerror=alert(1)>"
#define S_OK_URL "https://social.example/@ana/1?a=1&b=2"

struct s_env {
    struct esc_cfg_team team;
    struct esc_cfg_hook hook;
    struct ntf_cfg ncfg;
    struct ntf_sink ins;
    struct esc_alert alert;
    char dir[128];
    char *recipients[2];
    char *long_text;
};

static int
s_setup(void **state)
{
    struct s_env *e = esc_calloc(1, sizeof(*e));
    size_t i;

    if (ntf_test_tmpdir(e->dir, sizeof(e->dir)) != 0) {
        esc_free(e);
        return -1;
    }
    esc_strlcpy(e->team.id, "gob", sizeof(e->team.id));
    esc_strlcpy(e->team.name, "Gobernanza\r\nBcc: evil@example.org " S_SCRIPT,
                sizeof(e->team.name));
    esc_strlcpy(e->team.language, "es", sizeof(e->team.language));
    esc_strlcpy(e->team.timezone, "America/Lima", sizeof(e->team.timezone));
    e->recipients[0] = esc_strdup("gob@example.org");
    e->recipients[1] = esc_strdup("Focal Point <focal@example.org>");
    e->team.recipients = e->recipients;
    e->team.n_recipients = 2;
    esc_strlcpy(e->hook.url, "https://hooks.example.org/services/T0/B0/secrettoken",
                sizeof(e->hook.url));
    esc_cfg_defaults(ntf_cfg_map, &e->ncfg);
    snprintf(e->ncfg.outbox, sizeof(e->ncfg.outbox), "%s/outbox", e->dir);
    esc_strlcpy(e->ncfg.from, "escucha \"alerts\" <alerts@example.org>", sizeof(e->ncfg.from));

    /* 100 KB of characters every format must escape */
    e->long_text = esc_malloc(100001);
    for (i = 0; i < 100000; i++) {
        e->long_text[i] = "&<>\""[i % 4];
    }
    e->long_text[100000] = '\0';

    esc_alert_init(&e->alert);
    e->alert.id = esc_strdup("gob/congreso/1795000000000");
    e->alert.team = esc_strdup("gob");
    e->alert.topic = esc_strdup("congreso");
    e->alert.topic_name = esc_strdup("Congreso " S_IMG);
    e->alert.kind = esc_strdup("spike");
    e->alert.window_start = 1795003200000LL; /* 2026-11-18T12:00:00Z = 07:00 in Lima */
    e->alert.window_end = 1795005000000LL;
    e->alert.observed = 120;
    e->alert.expected = 12.5;
    e->alert.score = 9.6;
    e->alert.ts = 1795005012345LL;
    e->alert.query = esc_strdup("congreso AND (vacancia OR \"<b>censura</b>\")");
    esc_strlist_push(&e->alert.samples, &e->alert.n_samples, S_SCRIPT " & <!channel> *bold*");
    esc_strlist_push(&e->alert.samples, &e->alert.n_samples,
                     "line one\r\nBcc: evil@example.org\r\n\r\n" S_IMG);
    esc_strlist_push(&e->alert.samples, &e->alert.n_samples, e->long_text);
    esc_strlist_push(&e->alert.samples, &e->alert.n_samples,
                     "broken \xff\xfe utf-8 and \xe2\x80\xae" "reversed");
    esc_strlist_push(&e->alert.sample_authors, &e->alert.n_sample_authors,
                     "@mallory\r\nBcc: evil@example.org");
    esc_strlist_push(&e->alert.sample_authors, &e->alert.n_sample_authors, "@ana<b>");
    esc_strlist_push(&e->alert.sample_authors, &e->alert.n_sample_authors, e->long_text);
    esc_strlist_push(&e->alert.sample_urls, &e->alert.n_sample_urls, S_OK_URL);
    esc_strlist_push(&e->alert.sample_urls, &e->alert.n_sample_urls, "javascript:alert(1)");
    esc_strlist_push(&e->alert.sample_urls, &e->alert.n_sample_urls,
                     "https://evil.example/\"><script>");
    esc_strlist_push(&e->alert.terms, &e->alert.n_terms, "vacancia");
    esc_strlist_push(&e->alert.terms, &e->alert.n_terms, "<b>congreso</b>");
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct s_env *e = *state;

    if (e->ins.ctx != NULL) {
        e->ins.plugin->exit(&e->ins);
    }
    esc_alert_fini(&e->alert);
    esc_free(e->recipients[0]);
    esc_free(e->recipients[1]);
    esc_free(e->long_text);
    ntf_test_rmtree(e->dir);
    esc_free(e);
    return 0;
}

/* Runs plugin `kind`'s init + prepare on e; returns the request (caller ntf_req_fini's). */
static void
s_prepare(struct s_env *e, const char *kind, struct ntf_req *req)
{
    struct ntf_notice n;
    char *payload = esc_alert_to_json(&e->alert);

    memset(&e->ins, 0, sizeof(e->ins));
    e->ins.plugin = ntf_sink_plugin_find(kind);
    assert_non_null(e->ins.plugin);
    snprintf(e->ins.name, sizeof(e->ins.name), "%s.gob.0", kind);
    e->ins.team = &e->team;
    e->ins.hook = strcmp(kind, "email") == 0 ? NULL : &e->hook;
    e->ins.cfg = &e->ncfg;
    assert_int_equal(e->ins.plugin->init(&e->ins), 0);
    memset(&n, 0, sizeof(n));
    n.alert = &e->alert;
    n.payload = payload;
    n.payload_len = strlen(payload);
    n.delivery_id = "0123456789abcdef0123456789abcdef";
    n.deployment = "demo";
    n.attempt = 1;
    n.now_ms = 1795005020000LL;
    ntf_req_init(req);
    assert_int_equal(e->ins.plugin->prepare(&e->ins, &n, req), ESC_OK);
    esc_free(payload);
}

static json_t *
s_parse(const struct ntf_req *req)
{
    json_error_t jerr;
    json_t *j = json_loadb(req->body, req->body_len, 0, &jerr);

    if (j == NULL) {
        fprintf(stderr, "not JSON: %s line %d\n", jerr.text, jerr.line);
    }
    assert_non_null(j);
    return j;
}

/* Every '<' in a mrkdwn text opens a link to a URL ntf_url_linkable accepts, and every '>'
 * closes one or starts a quote line. */
static void
s_check_mrkdwn(const char *t)
{
    const char *p;

    assert_null(strchr(t, '\r'));
    assert_null(strstr(t, "<script"));
    assert_null(strstr(t, "<!channel>"));
    assert_true(strlen(t) <= 3000);
    for (p = strchr(t, '<'); p != NULL; p = strchr(p + 1, '<')) {
        char url[600];
        size_t n = strcspn(p + 1, "|>");

        assert_true(n < sizeof(url));
        memcpy(url, p + 1, n);
        url[n] = '\0';
        assert_true(strncmp(url, "https://", 8) == 0);
        assert_null(strpbrk(url, " \"<"));
    }
}

static void
test_slack_payload_shape(void **state)
{
    struct s_env *e = *state;
    struct ntf_req req;
    json_t *j;
    json_t *blocks;
    json_t *b;
    size_t i;
    int sections = 0;
    int dumped_title = 0;

    s_prepare(e, "slack", &req);
    assert_int_equal(req.kind, NTF_REQ_HTTP);
    assert_string_equal(req.url, e->hook.url);
    assert_string_equal(e->ins.target, "hooks.example.org");
    j = s_parse(&req);
    assert_true(json_is_string(json_object_get(j, "text")));
    s_check_mrkdwn(json_string_value(json_object_get(j, "text")));
    assert_non_null(strstr(json_string_value(json_object_get(j, "text")), "Pico: Congreso"));
    blocks = json_object_get(j, "blocks");
    assert_true(json_is_array(blocks));
    assert_true(json_array_size(blocks) > 3 && json_array_size(blocks) <= 50);
    json_array_foreach(blocks, i, b) {
        const char *type = json_string_value(json_object_get(b, "type"));
        json_t *text = json_object_get(b, "text");

        assert_non_null(type);
        assert_true(strcmp(type, "section") == 0 || strcmp(type, "divider") == 0
                    || strcmp(type, "context") == 0);
        if (text != NULL) {
            const char *t = json_string_value(json_object_get(text, "text"));

            assert_string_equal(json_string_value(json_object_get(text, "type")), "mrkdwn");
            assert_non_null(t);
            s_check_mrkdwn(t);
            sections++;
            if (strstr(t, "120 publicaciones en 30 min, se esperaban 12,5 (x9,6)") != NULL) {
                dumped_title = 1;
            }
        }
    }
    assert_true(sections >= 5);
    assert_true(dumped_title);
    /* window start in the team's zone */
    assert_non_null(strstr(req.body, "2026-11-18 07:00 America/Lima"));
    json_decref(j);
    ntf_req_fini(&req);
}

static void
test_slack_escapes_hostile_text(void **state)
{
    struct s_env *e = *state;
    struct ntf_req req;
    json_t *j;

    s_prepare(e, "slack", &req);
    j = s_parse(&req);
    /* the text of each block is what Slack parses: check it, not the JSON */
    assert_non_null(strstr(req.body, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; "
                                     "&lt;!channel&gt; *bold*"));
    assert_non_null(strstr(req.body, "&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert_null(strstr(req.body, "<b>"));
    /* the safe link is a link (with & escaped), the others are not */
    assert_non_null(strstr(req.body, "<https://social.example/@ana/1?a=1&amp;b=2|abrir>"));
    assert_null(strstr(req.body, "<javascript"));
    assert_null(strstr(req.body, "<https://evil.example"));
    /* CR/LF from an author name cannot start a new quote line or field */
    assert_non_null(strstr(req.body, "@mallory  Bcc: evil@example.org"));
    /* invalid UTF-8 became U+FFFD, the bidi override a space */
    assert_non_null(strstr(req.body, "broken \xef\xbf\xbd\xef\xbf\xbd utf-8 and  reversed"));
    assert_true(req.body_len < 40000); /* 100 KB texts were clipped */
    json_decref(j);
    ntf_req_fini(&req);
}

/* Collects every "text" of TextBlock and TextRun elements under j. */
static void
s_card_texts(json_t *j, json_t *blocks_out, json_t *runs_out)
{
    const char *key;
    json_t *v;
    size_t i;

    if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            s_card_texts(v, blocks_out, runs_out);
        }
        return;
    }
    if (!json_is_object(j)) {
        return;
    }
    v = json_object_get(j, "type");
    if (json_is_string(v) && strcmp(json_string_value(v), "TextBlock") == 0) {
        json_array_append(blocks_out, json_object_get(j, "text"));
    }
    if (json_is_string(v) && strcmp(json_string_value(v), "TextRun") == 0) {
        json_array_append(runs_out, json_object_get(j, "text"));
    }
    json_object_foreach(j, key, v) {
        s_card_texts(v, blocks_out, runs_out);
    }
}

static void
test_teams_payload_shape(void **state)
{
    struct s_env *e = *state;
    struct ntf_req req;
    json_t *j;
    json_t *att;
    json_t *card;
    json_t *blocks = json_array();
    json_t *runs = json_array();
    json_t *v;
    size_t i;
    int found_script = 0;
    int found_link = 0;
    const char *p;

    s_prepare(e, "teams", &req);
    assert_int_equal(req.kind, NTF_REQ_HTTP);
    assert_true(req.body_len <= 27 * 1024);
    j = s_parse(&req);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "message");
    assert_int_equal(json_array_size(json_object_get(j, "attachments")), 1);
    att = json_array_get(json_object_get(j, "attachments"), 0);
    assert_string_equal(json_string_value(json_object_get(att, "contentType")),
                        "application/vnd.microsoft.card.adaptive");
    card = json_object_get(att, "content");
    assert_string_equal(json_string_value(json_object_get(card, "type")), "AdaptiveCard");
    assert_string_equal(json_string_value(json_object_get(card, "version")), "1.4");
    assert_true(json_is_array(json_object_get(card, "body")));
    s_card_texts(json_object_get(card, "body"), blocks, runs);
    /* TextBlocks (which render Markdown) only carry our own labels */
    json_array_foreach(blocks, i, v) {
        assert_string_equal(json_string_value(v), "Publicaciones de ejemplo");
    }
    /* hostile text sits, unchanged but for control characters, in plain TextRuns */
    json_array_foreach(runs, i, v) {
        const char *t = json_string_value(v);

        assert_non_null(t);
        assert_null(strpbrk(t, "\r"));
        if (strstr(t, S_SCRIPT " & <!channel> *bold*") != NULL) {
            found_script = 1;
        }
    }
    assert_true(found_script);
    /* only the safe URL became an action */
    for (p = strstr(req.body, "Action.OpenUrl"); p != NULL; p = strstr(p + 1, "Action.OpenUrl")) {
        found_link++;
    }
    assert_int_equal(found_link, 1);
    assert_non_null(strstr(req.body, "\"url\":\"" S_OK_URL "\""));
    assert_null(strstr(req.body, "\"url\":\"javascript"));
    json_decref(blocks);
    json_decref(runs);
    json_decref(j);
    ntf_req_fini(&req);
}

/* Decodes the base64 body of the MIME part whose Content-Type starts with ctype. Caller owns. */
static char *
s_mime_part(const char *msg, const char *ctype)
{
    const char *h = strstr(msg, ctype);
    const char *start;
    const char *end;
    unsigned char *out;
    size_t out_len = 0;

    assert_non_null(h);
    start = strstr(h, "\r\n\r\n");
    assert_non_null(start);
    start += 4;
    end = strstr(start, "\r\n--=_escucha_");
    assert_non_null(end);
    out = esc_malloc((size_t)(end - start) + 1);
    assert_int_equal(sodium_base642bin(out, (size_t)(end - start), start, (size_t)(end - start),
                                       "\r\n", &out_len, NULL, sodium_base64_VARIANT_ORIGINAL),
                     0);
    out[out_len] = '\0';
    return (char *)out;
}

/* Decodes the encoded-words of a header value (continuation lines joined). Caller owns. */
static char *
s_decode_words(const char *v, size_t len)
{
    char *out = esc_malloc(len + 1);
    size_t o = 0;
    const char *p = v;
    const char *end = v + len;

    while (p < end) {
        const char *w = strstr(p, "=?UTF-8?B?");
        const char *q;
        size_t n = 0;

        if (w == NULL || w >= end) {
            break;
        }
        w += 10;
        q = strstr(w, "?=");
        assert_non_null(q);
        assert_int_equal(sodium_base642bin((unsigned char *)out + o, len - o, w, (size_t)(q - w),
                                           NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL),
                         0);
        o += n;
        p = q + 2;
    }
    out[o] = '\0';
    return out;
}

static void
test_email_headers_cannot_be_injected(void **state)
{
    static const char *const allowed[] = { "From:", "To:", "Subject:", "Date:", "Message-ID:",
                                           "MIME-Version:", "Auto-Submitted:", "User-Agent:",
                                           "Content-Type:", NULL };
    struct s_env *e = *state;
    struct ntf_req req;
    char path[640];
    char *msg;
    char *subj;
    const char *hdr_end;
    const char *line;
    const char *s;
    size_t k;

    s_prepare(e, "email", &req);
    assert_int_equal(req.kind, NTF_REQ_DONE);
    assert_int_equal(req.done_rc, ESC_OK);
    assert_string_equal(e->ins.target, "outbox");
    snprintf(path, sizeof(path), "%s/alert-gob-0123456789abcdef0123456789abcdef.eml",
             e->ncfg.outbox);
    msg = ntf_test_slurp(path, NULL);
    assert_non_null(msg);
    hdr_end = strstr(msg, "\r\n\r\n");
    assert_non_null(hdr_end);
    /* every header line is one of ours or a folded continuation; nothing came from a post */
    for (line = msg; line < hdr_end; line = strstr(line, "\r\n") + 2) {
        size_t len = (size_t)(strstr(line, "\r\n") - line);
        int ok = line[0] == ' ';

        assert_true(len <= 998);
        for (k = 0; allowed[k] != NULL && !ok; k++) {
            ok = strncmp(line, allowed[k], strlen(allowed[k])) == 0;
        }
        if (!ok) {
            fprintf(stderr, "unexpected header line: %.*s\n", (int)len, line);
        }
        assert_true(ok);
    }
    assert_null(strstr(msg, "\nBcc:"));
    assert_non_null(strstr(msg, "To: gob@example.org,\r\n focal@example.org\r\n"));
    assert_non_null(strstr(msg, "From: =?UTF-8?B?"));
    assert_non_null(strstr(msg, " <alerts@example.org>\r\n"));
    assert_non_null(strstr(msg, "Message-ID: <escucha.alert.0123456789abcdef0123456789abcdef"
                                "@example.org>\r\n"));
    assert_non_null(strstr(msg, "Date: Wed, 18 Nov 2026 12:30:20 +0000\r\n"));
    s = strstr(msg, "Subject: ");
    assert_non_null(s);
    subj = s_decode_words(s, (size_t)(strstr(s, "\r\nDate:") - s));
    assert_non_null(strstr(subj, "[escucha] Pico: Congreso"));
    assert_non_null(strstr(subj, "Gobernanza  Bcc: evil@example.org"));
    assert_null(strpbrk(subj, "\r\n"));
    esc_free(subj);
    esc_free(msg);
    ntf_req_fini(&req);
}

static void
test_email_html_escaped(void **state)
{
    struct s_env *e = *state;
    struct ntf_req req;
    char path[640];
    char *msg;
    char *html;
    char *text;
    const char *p;
    int hrefs = 0;

    s_prepare(e, "email", &req);
    snprintf(path, sizeof(path), "%s/alert-gob-0123456789abcdef0123456789abcdef.eml",
             e->ncfg.outbox);
    msg = ntf_test_slurp(path, NULL);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "Content-Type: multipart/alternative; boundary="));
    html = s_mime_part(msg, "Content-Type: text/html; charset=utf-8");
    text = s_mime_part(msg, "Content-Type: text/plain; charset=utf-8");
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<img"));
    assert_null(strstr(html, "<b>"));
    assert_non_null(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(html, "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    for (p = strstr(html, "href="); p != NULL; p = strstr(p + 1, "href=")) {
        hrefs++;
        assert_int_equal(strncmp(p, "href=\"https://social.example/@ana/1?a=1&amp;b=2\"", 48),
                         0);
    }
    assert_int_equal(hrefs, 1);
    assert_non_null(strstr(html, "07:00 America/Lima"));
    /* the plain part keeps the text as is: it is never interpreted */
    assert_non_null(strstr(text, S_SCRIPT));
    assert_non_null(strstr(text, "120 publicaciones en 30 min, se esperaban 12,5 (x9,6)"));
    assert_null(strchr(text, '\r'));
    esc_free(text);
    esc_free(html);
    esc_free(msg);
    ntf_req_fini(&req);
}

static void
test_webhook_signs_timestamp_and_body(void **state)
{
    struct s_env *e = *state;
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char hex[sizeof(mac) * 2 + 1];
    char want[100];
    struct ntf_req req;
    size_t i;
    int found = 0;

    setenv("NTF_SINKS_TEST_SECRET", "k3y", 1);
    esc_strlcpy(e->hook.secret_env, "NTF_SINKS_TEST_SECRET", sizeof(e->hook.secret_env));
    s_prepare(e, "webhook", &req);
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)"k3y", 3);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"1795005020.", 11);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)req.body, req.body_len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
    snprintf(want, sizeof(want), "X-Escucha-Signature: sha256=%s", hex);
    for (i = 0; i < req.n_headers; i++) {
        found += strcmp(req.headers[i], want) == 0;
        found += strcmp(req.headers[i], "X-Escucha-Timestamp: 1795005020") == 0;
    }
    assert_int_equal(found, 2);
    ntf_req_fini(&req);
}

static void
test_render_clip_keeps_utf8_whole(void **state)
{
    char out[32];

    /* "ñ" is two bytes: a cut never splits it */
    ntf_text_clip(out, sizeof(out), "a\xc3\xb1\xc3\xb1\xc3\xb1", 4, 0);
    assert_string_equal(out, "a\xc3\xb1\xe2\x80\xa6");
    ntf_text_clip(out, sizeof(out), "x\ty\nz\x7f", 20, 1);
    assert_string_equal(out, "x y\nz ");
    ntf_text_clip(out, sizeof(out), "x\ty\nz", 20, 0);
    assert_string_equal(out, "x y z");
    ntf_text_clip(out, sizeof(out), "\xc0\xaf\xed\xa0\x80", 20, 0); /* overlong, surrogate */
    assert_string_equal(out, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    ntf_text_clip(out, sizeof(out), NULL, 20, 0);
    assert_string_equal(out, "");
    assert_true(ntf_url_linkable("https://a.example/x?y=1&z=2"));
    assert_false(ntf_url_linkable("javascript:alert(1)"));
    assert_false(ntf_url_linkable("https://a.example/\"onmouseover"));
    assert_false(ntf_url_linkable("https://a.example/a|b"));
    assert_false(ntf_url_linkable("https://a.example/ space"));
}

static void
test_render_english_and_ended(void **state)
{
    struct s_env *e = *state;
    struct ntf_alert_text t;

    esc_strlcpy(e->team.language, "en", sizeof(e->team.language));
    esc_free(e->alert.kind);
    e->alert.kind = esc_strdup("ended");
    ntf_alert_text_build(&e->alert, &e->team, "demo", &t);
    assert_true(t.ended);
    assert_false(t.es);
    assert_int_equal(strncmp(t.title, "Back to normal: Congreso ", 25), 0);
    assert_string_equal(t.summary, "120 posts in 30 min, expected 12.5 (x9.6)");
    assert_string_equal(t.since, "2026-11-18 07:00 America/Lima");
    assert_string_equal(t.terms, "vacancia, <b>congreso</b>"); /* raw: sinks escape */
    assert_int_equal(t.n_samples, 4);
    assert_true(t.samples[0].url_ok);
    assert_false(t.samples[1].url_ok);
    assert_false(t.samples[2].url_ok);
    assert_true(strlen(t.samples[2].text) <= NTF_TEXT_SAMPLE_BYTES + 3);
    assert_null(strpbrk(t.samples[0].author, "\r\n"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slack_payload_shape, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_slack_escapes_hostile_text, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_teams_payload_shape, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_email_headers_cannot_be_injected, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_email_html_escaped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_webhook_signs_timestamp_and_body, s_setup,
                                        s_teardown),
        cmocka_unit_test(test_render_clip_keeps_utf8_whole),
        cmocka_unit_test_setup_teardown(test_render_english_and_ended, s_setup, s_teardown),
    };

    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
