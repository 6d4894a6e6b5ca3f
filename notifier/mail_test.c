#define ESC_LOG_MODULE "mail_test"
/* Unit tests of mail.c: the message shape, RFC 2047 subjects, and that no CR/LF in a team
 * name, subject or From can add a header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "escucha/esc_mem.h"
#include "mail.h"
#include "testproc.h"

static const char *const s_to[] = { "gobernanza@example.org", "focal.point@example.org" };

/* Decodes a header value made of =?UTF-8?B?...?= words separated by CRLF SP; every word must
 * be at most 75 characters and decode to whole UTF-8 sequences. Caller frees. */
static char *
s_decode_words(const char *v)
{
    char *out = esc_calloc(1, strlen(v) + 1);
    size_t used = 0;
    const char *p = v;

    while (*p != '\0') {
        const char *end = strstr(p, "?=");
        size_t bin_len = 0;
        size_t wlen;

        assert_int_equal(strncmp(p, "=?UTF-8?B?", 10), 0);
        assert_non_null(end);
        wlen = (size_t)(end + 2 - p);
        assert_true(wlen <= 75);
        assert_int_equal(sodium_base642bin((unsigned char *)out + used, strlen(v) - used, p + 10,
                                           (size_t)(end - p - 10), NULL, &bin_len, NULL,
                                           sodium_base64_VARIANT_ORIGINAL),
                         0);
        /* a word never starts in the middle of a UTF-8 sequence */
        assert_true(bin_len == 0 || ((unsigned char)out[used] & 0xC0) != 0x80);
        used += bin_len;
        p = end + 2;
        if (strncmp(p, "\r\n ", 3) == 0) {
            p += 3;
        }
        else {
            assert_int_equal(*p, '\0');
        }
    }
    out[used] = '\0';
    return out;
}

/* Checks the header block of msg: every line ends in CRLF, is a "Name: value" header or a
 * folded continuation, and the header names are exactly the expected ones. */
static void
s_check_headers(const char *msg)
{
    static const char *const want[] = { "From", "To", "Subject", "Date", "Message-ID",
                                        "MIME-Version", "Content-Type",
                                        "Content-Transfer-Encoding", "User-Agent" };
    const char *end = strstr(msg, "\r\n\r\n");
    const char *p = msg;
    size_t n = 0;
    size_t i;

    assert_non_null(end);
    while (p < end + 2) {
        const char *eol = strstr(p, "\r\n");
        const char *colon;
        const char *q;

        assert_non_null(eol);
        for (q = p; q < eol; q++) {
            assert_true(*q != '\r' && *q != '\n');
        }
        if (*p == ' ' || *p == '\t') {
            assert_true(n > 0); /* a continuation needs a header before it */
        }
        else {
            colon = memchr(p, ':', (size_t)(eol - p));
            assert_non_null(colon);
            assert_true(n < sizeof(want) / sizeof(want[0]));
            assert_true((size_t)(colon - p) == strlen(want[n]));
            assert_memory_equal(p, want[n], strlen(want[n]));
            n++;
        }
        p = eol + 2;
    }
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    for (i = 0; msg[i] != '\0'; i++) {
        if (msg[i] == '\n') {
            assert_true(i > 0 && msg[i - 1] == '\r');
        }
        if (msg[i] == '\r') {
            assert_int_equal(msg[i + 1], '\n');
        }
    }
}

/* The value of header `name` in msg (unfolded lines kept as they are). Caller frees. */
static char *
s_header(const char *msg, const char *name)
{
    char key[64];
    const char *p;
    const char *e;

    snprintf(key, sizeof(key), "\r\n%s: ", name);
    if (strncmp(msg, key + 2, strlen(key) - 2) == 0) {
        p = msg + strlen(key) - 2;
    }
    else {
        p = strstr(msg, key);
        assert_non_null(p);
        p += strlen(key);
    }
    e = p;
    while ((e = strstr(e, "\r\n")) != NULL && e[2] == ' ') {
        e += 2;
    }
    assert_non_null(e);
    return esc_strndup(p, (size_t)(e - p));
}

static void
test_mail_build_happy_path(void **state)
{
    const char *subject = "escucha \xc2\xb7 Gobernanza Democr\xc3\xa1tica \xc2\xb7 semana 2026-W47";
    struct ntf_mail m = {
        .from = "escucha <escucha@example.org>",
        .to = s_to,
        .n_to = 2,
        .subject = subject,
        .body = "l\xc3\xadnea 1\nl\xc3\xadnea 2\n",
        .date = 1795000000,
        .id_hint = "gobernanza-2026-W47",
    };
    size_t len = 0;
    char *msg = ntf_mail_build(&m, &len);
    char *v;
    char *dec;

    assert_non_null(msg);
    assert_int_equal(len, strlen(msg));
    s_check_headers(msg);
    assert_non_null(strstr(msg, "From: escucha <escucha@example.org>\r\n"));
    assert_non_null(strstr(msg, "\r\nTo: gobernanza@example.org, focal.point@example.org\r\n"));
    assert_non_null(strstr(msg, "\r\nDate: Wed, 18 Nov 2026 11:06:40 +0000\r\n"));
    assert_non_null(strstr(msg, "\r\nMessage-ID: <escucha.gobernanza-2026-W47.1795000000."));
    assert_non_null(strstr(msg, "@example.org>\r\n"));
    assert_non_null(strstr(msg, "\r\nContent-Type: text/plain; charset=utf-8\r\n"));
    assert_non_null(strstr(msg, "\r\nContent-Transfer-Encoding: 8bit\r\n"));
    assert_non_null(strstr(msg, "\r\n\r\nl\xc3\xadnea 1\r\nl\xc3\xadnea 2\r\n"));
    assert_int_equal(msg[len - 1], '\n');
    v = s_header(msg, "Subject");
    dec = s_decode_words(v);
    assert_string_equal(dec, subject);
    esc_free(dec);
    esc_free(v);
    esc_free(msg);
}

static void
test_mail_rfc2047_long_subject(void **state)
{
    /* 40 two-byte characters: several words, none may split a character */
    char s[200];
    char *enc;
    char *dec;
    int i;

    for (i = 0; i < 40; i++) {
        memcpy(s + 2 * i, "\xc3\xb1", 2); /* n with tilde */
    }
    memcpy(s + 80, " fin", 5);
    enc = ntf_mail_encode_words(s);
    assert_non_null(strstr(enc, "\r\n =?UTF-8?B?"));
    dec = s_decode_words(enc);
    assert_string_equal(dec, s);
    esc_free(dec);
    esc_free(enc);
    /* ASCII text is left alone */
    enc = ntf_mail_encode_words("weekly digest 2026-W47");
    assert_string_equal(enc, "weekly digest 2026-W47");
    esc_free(enc);
}

static void
test_mail_crlf_cannot_add_header(void **state)
{
    static const char *const to[] = { "a@example.org" };
    struct ntf_mail m = {
        .from = "Evil\r\nBcc: spy@example.com\r\n <escucha@example.org>",
        .to = to,
        .n_to = 1,
        .subject = "Equipo\r\nBcc: victim@example.com\r\n\r\nbody injected",
        .body = "ok\n",
        .date = 1795000000,
        .id_hint = "x\r\nBcc: y",
    };
    char *msg = ntf_mail_build(&m, NULL);
    char *subject;

    assert_non_null(msg);
    s_check_headers(msg); /* exactly the nine expected headers, no Bcc */
    assert_null(strstr(msg, "\r\nBcc:"));
    assert_null(strstr(msg, "\nBcc:"));
    subject = s_header(msg, "Subject");
    assert_string_equal(subject, "Equipo  Bcc: victim@example.com    body injected");
    esc_free(subject);
    esc_free(msg);

    /* the same with a non-ASCII name: encoded-words have no line breaks at all */
    m.subject = "Democr\xc3\xa1tica\r\nBcc: victim@example.com";
    msg = ntf_mail_build(&m, NULL);
    assert_non_null(msg);
    s_check_headers(msg);
    subject = s_header(msg, "Subject");
    assert_null(strstr(subject, "Bcc"));
    esc_free(subject);
    esc_free(msg);
}

static void
test_mail_header_clean(void **state)
{
    char *c = ntf_mail_header_clean("a\rb\nc\td\x7f" "e\x01");

    assert_string_equal(c, "a b c d e ");
    esc_free(c);
}

static void
test_mail_addr_spec(void **state)
{
    char a[64];

    assert_int_equal(ntf_mail_addr_spec("escucha <escucha@localhost>", a, sizeof(a)), 0);
    assert_string_equal(a, "escucha@localhost");
    assert_int_equal(ntf_mail_addr_spec("  a@b.org ", a, sizeof(a)), 0);
    assert_string_equal(a, "a@b.org");
    assert_int_equal(ntf_mail_addr_spec("\"Doe, J\" <j@d.org>", a, sizeof(a)), 0);
    assert_string_equal(a, "j@d.org");
    assert_int_equal(ntf_mail_addr_spec("Name <a@b.org> trailing", a, sizeof(a)), -1);
    assert_int_equal(ntf_mail_addr_spec("no-at-sign", a, sizeof(a)), -1);
    assert_int_equal(ntf_mail_addr_spec("<a@b.org", a, sizeof(a)), -1);
    assert_int_equal(ntf_mail_addr_spec("a b@c.org", a, sizeof(a)), -1);
    assert_int_equal(ntf_mail_addr_spec("a@b@c.org", a, sizeof(a)), -1);
    assert_int_equal(ntf_mail_addr_spec("x <a\r\n@b.org>", a, sizeof(a)), -1);
    assert_int_equal(ntf_mail_addr_spec("averyveryverylongaddress@example.org", a, 10), -1);
}

static void
test_mail_display_name_forms(void **state)
{
    static const char *const to[] = { "a@example.org" };
    struct ntf_mail m = {
        .from = "Doe, John <j@d.org>",
        .to = to,
        .n_to = 1,
        .subject = "s",
        .body = "b",
        .date = 0,
        .id_hint = "t",
    };
    char *msg = ntf_mail_build(&m, NULL);

    assert_non_null(msg);
    assert_non_null(strstr(msg, "From: \"Doe, John\" <j@d.org>\r\n"));
    esc_free(msg);
    m.from = "Democracia Cr\xc3\xadtica <d@e.org>";
    msg = ntf_mail_build(&m, NULL);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "From: =?UTF-8?B?"));
    assert_non_null(strstr(msg, "?= <d@e.org>\r\n"));
    esc_free(msg);
    m.from = "not an address";
    assert_null(ntf_mail_build(&m, NULL));
}

static void
test_mail_long_lines_wrapped(void **state)
{
    static const char *const to[] = { "a@example.org" };
    char *body = esc_malloc(3001);
    struct ntf_mail m = {
        .from = "a@example.org", .to = to, .n_to = 1, .subject = "s", .date = 0, .id_hint = "t",
    };
    const char *p;
    char *msg;

    memset(body, 'a', 3000);
    body[3000] = '\0';
    m.body = body;
    msg = ntf_mail_build(&m, NULL);
    assert_non_null(msg);
    for (p = msg; (p = strstr(p, "\r\n")) != NULL; p += 2) {
        const char *next = strstr(p + 2, "\r\n");

        if (next != NULL) {
            assert_true(next - (p + 2) <= 998);
        }
    }
    esc_free(msg);
    esc_free(body);
}

static void
test_mail_write_file_creates_dirs(void **state)
{
    char dir[128];
    char sub[256];
    char path[300];
    char *back;
    size_t len = 0;

    assert_int_equal(ntf_test_tmpdir(dir, sizeof(dir)), 0);
    snprintf(sub, sizeof(sub), "%s/out/outbox", dir);
    assert_int_equal(ntf_mkdirs(sub), 0);
    assert_int_equal(ntf_mkdirs(sub), 0); /* exists already: fine */
    snprintf(path, sizeof(path), "%s/t-2026-W47.eml", sub);
    assert_int_equal(ntf_write_file(path, "From: a@b\r\n\r\nx\r\n", 16), 0);
    back = ntf_test_slurp(path, &len);
    assert_non_null(back);
    assert_int_equal(len, 16);
    assert_string_equal(back, "From: a@b\r\n\r\nx\r\n");
    esc_free(back);
    snprintf(path, sizeof(path), "%s/missing/x.eml", dir);
    assert_int_equal(ntf_write_file(path, "x", 1), -1);
    ntf_test_rmtree(dir);
}


/* Decodes quoted-printable text (soft breaks removed, =XX decoded, CRLF kept as \n) and checks
 * that no encoded line is longer than 76 characters. Caller frees. */
static char *
s_qp_decode(const char *s, size_t n)
{
    char *out = esc_calloc(1, n + 1);
    size_t col = 0;
    size_t o = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
            assert_true(col <= 76);
            col = 0;
            out[o++] = '\n';
            i++;
            continue;
        }
        col++;
        if (s[i] == '=' && i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
            assert_true(col <= 76);
            col = 0;
            i += 2;
            continue;
        }
        if (s[i] == '=') {
            char hex[3] = { s[i + 1], s[i + 2], '\0' };

            out[o++] = (char)strtol(hex, NULL, 16);
            col += 2;
            i += 2;
            continue;
        }
        assert_true(s[i] != ' ' || (i + 1 < n && s[i + 1] != '\r')); /* no trailing space */
        out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

/* The body of the part whose headers contain `ctype`, up to the next boundary line. */
static const char *
s_part(const char *msg, const char *ctype, size_t *len)
{
    const char *h = strstr(msg, ctype);
    const char *b;
    const char *e;

    assert_non_null(h);
    b = strstr(h, "\r\n\r\n");
    assert_non_null(b);
    b += 4;
    e = strstr(b, "\r\n--=_escucha_");
    assert_non_null(e);
    *len = (size_t)(e - b);
    return b;
}

static void
test_mail_multipart_structure(void **state)
{
    static const unsigned char png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 1, 2,
                                         255, 254, 253, 'x', 'y', 'z' };
    struct ntf_mail_image img = { "chart-0.t@escucha", "congreso.png", png, sizeof(png) };
    char html[2048];
    struct ntf_mail m = {
        .from = "escucha <escucha@example.org>", .to = s_to, .n_to = 2, .subject = "Resumen",
        .body = "Publicaciones: 42\nCongreso \xc3\xa1\n", .html = html, .images = &img,
        .n_images = 1, .date = 1795003200, .id_hint = "t-2026-W47",
    };
    unsigned char bin[64];
    size_t bin_len = 0;
    const char *part;
    const char *ct;
    size_t len;
    char *dec;
    char *msg;

    (void)state;
    snprintf(html, sizeof(html),
             "<p style=\"a:b\">x = y, trailing space \n%0200d <img src=\"cid:chart-0.t@escucha\">"
             " \xc3\xb1 .dot\n.\n</p>\n", 7);
    msg = ntf_mail_build(&m, NULL);
    assert_non_null(msg);
    ct = strstr(msg, "\r\nContent-Type: multipart/related; type=\"multipart/alternative\"; "
                     "boundary=\"=_escucha_1_");
    assert_non_null(ct);
    assert_true(ct < strstr(msg, "\r\n\r\n"));
    assert_non_null(strstr(msg, "\r\nMIME-Version: 1.0\r\n"));
    assert_non_null(strstr(msg, "Content-Type: multipart/alternative; boundary=\"=_escucha_2_"));
    /* text: 8bit, literal */
    part = s_part(msg, "Content-Type: text/plain; charset=utf-8\r\n"
                       "Content-Transfer-Encoding: 8bit", &len);
    assert_int_equal(len, strlen("Publicaciones: 42\r\nCongreso \xc3\xa1\r\n"));
    assert_memory_equal(part, "Publicaciones: 42\r\nCongreso \xc3\xa1\r\n", len);
    /* html: quoted-printable that decodes back to the input */
    part = s_part(msg, "Content-Type: text/html; charset=utf-8\r\n"
                       "Content-Transfer-Encoding: quoted-printable", &len);
    dec = s_qp_decode(part, len);
    assert_string_equal(dec, html);
    esc_free(dec);
    /* image: base64, inline, with its Content-ID */
    part = s_part(msg, "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
                       "Content-ID: <chart-0.t@escucha>\r\n"
                       "Content-Disposition: inline; filename=\"congreso.png\"", &len);
    assert_int_equal(sodium_base642bin(bin, sizeof(bin), part, len, "\r\n", &bin_len, NULL,
                                       sodium_base64_VARIANT_ORIGINAL),
                     0);
    assert_int_equal(bin_len, sizeof(png));
    assert_memory_equal(bin, png, sizeof(png));
    assert_non_null(strstr(msg, "--\r\n")); /* closing delimiters */
    esc_free(msg);
}

static void
test_mail_bad_inline_image_refused(void **state)
{
    static const unsigned char png[] = { 1 };
    struct ntf_mail_image img = { "a>b\r\nX-Evil: 1", "c.png", png, 1 };
    struct ntf_mail m = {
        .from = "a@example.org", .to = s_to, .n_to = 1, .subject = "s", .body = "b",
        .html = "<p>b</p>", .images = &img, .n_images = 1,
    };

    (void)state;
    assert_null(ntf_mail_build(&m, NULL));
    img.cid = "ok@escucha";
    img.filename = "x\".png";
    assert_null(ntf_mail_build(&m, NULL));
    img.filename = "x.png";
    img.data = NULL;
    assert_null(ntf_mail_build(&m, NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mail_build_happy_path),
        cmocka_unit_test(test_mail_rfc2047_long_subject),
        cmocka_unit_test(test_mail_crlf_cannot_add_header),
        cmocka_unit_test(test_mail_header_clean),
        cmocka_unit_test(test_mail_addr_spec),
        cmocka_unit_test(test_mail_display_name_forms),
        cmocka_unit_test(test_mail_long_lines_wrapped),
        cmocka_unit_test(test_mail_write_file_creates_dirs),
        cmocka_unit_test(test_mail_multipart_structure),
        cmocka_unit_test(test_mail_bad_inline_image_refused),
    };

    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
