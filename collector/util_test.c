#define ESC_LOG_MODULE "test"
/* Unit tests of the connectors' shared helpers, no network: HTML to plain text (entities, line
 * breaks, scripts, emoji, broken markup), RFC 822 / HTTP dates, rate-limit headers in the
 * platforms' three "reset" dialects and Retry-After, backoff bounds and jitter, secret
 * parameters redacted from logged URLs, Link header relations, numeric id order, UTF-8 safe
 * truncation, the token splitter and the JSON helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cjson.h"
#include "net.h"
#include "rate.h"
#include "text.h"

#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

static void
s_html(const char *in, const char *want)
{
    char *out = col_html_to_text(in, strlen(in));

    assert_string_equal(out, want);
    esc_free(out);
}

static void
test_text_html_to_plain(void **state)
{
    (void)state;
    /* Mastodon: paragraphs, <br>, links with spans, entities */
    s_html("<p>Hola <a href=\"https://x/tags/peru\" class=\"mention hashtag\">#<span>Per\xc3\xba"
           "</span></a> &amp; amigos</p><p>l\xc3\xadnea 1<br>l&iacute;nea 2 \xf0\x9f\x8e\x89</p>",
           "Hola #Per\xc3\xba & amigos\n\nl\xc3\xadnea 1\nl\xc3\xadnea 2 \xf0\x9f\x8e\x89");
    /* HN: numeric entities and a paragraph without a closing tag */
    s_html("I&#x27;m <i>so</i>   excited&#8230;<p>Finally.",
           "I'm so excited\xe2\x80\xa6\n\nFinally.");
    /* plain text with entities only (YouTube titles) */
    s_html("Rust &quot;async&quot; &lt;explained&gt;", "Rust \"async\" <explained>");
    s_html("a&nbsp;b", "a b");
    s_html("<script>alert(1)</script><style>p{}</style>visible", "visible");
    s_html("<ul><li>one</li><li>two</li></ul>after", "one\ntwo\n\nafter");
    s_html("<pre>  keep\n  this</pre>", "  keep\n  this");
    s_html("<p>unclosed <b>bold <i>nest", "unclosed bold nest");
    s_html("", "");
    s_html("   ", "");
    s_html("<p></p><br><br>", "");
}

static void
test_text_rfc822_dates(void **state)
{
    int64_t ms;

    (void)state;
    assert_int_equal(col_time_parse_rfc822("Mon, 03 Feb 2025 14:05:09 GMT", &ms), 0);
    assert_int_equal(ms, INT64_C(1738591509000));
    assert_int_equal(col_time_parse_rfc822("Mon, 03 Feb 2025 14:05:09 +0000", &ms), 0);
    assert_int_equal(ms, INT64_C(1738591509000));
    assert_int_equal(col_time_parse_rfc822("03 Feb 2025 09:05:09 -0500", &ms), 0);
    assert_int_equal(ms, INT64_C(1738591509000));
    assert_int_equal(col_time_parse_rfc822("Mon, 3 Feb 2025 09:05:09 EST", &ms), 0);
    assert_int_equal(ms, INT64_C(1738591509000));
    assert_int_equal(col_time_parse_rfc822("Monday, 03-Feb-25 14:05 GMT", &ms), 0);
    assert_int_equal(ms, INT64_C(1738591500000));
    assert_int_equal(col_time_parse_rfc822("Mon, 03 Foo 2025 14:05:09 GMT", &ms), -1);
    assert_int_equal(col_time_parse_rfc822("yesterday", &ms), -1);
    assert_int_equal(col_time_parse_rfc822("Mon, 03 Feb 2025 14:05:09 GMT trailing", &ms), -1);
    assert_int_equal(col_time_parse_any("2025-02-03T14:05:09.123456", &ms), 0); /* Lemmy 0.18 */
    assert_int_equal(ms, INT64_C(1738591509123));
    assert_int_equal(col_time_parse_any("2025-02-03T14:05:09.000Z", &ms), 0);
    assert_int_equal(ms, INT64_C(1738591509000));
    assert_int_equal(col_time_parse_any("", &ms), -1);
    assert_int_equal(col_since_parse("2026-01-01", &ms), 0);
    assert_int_equal(ms, INT64_C(1767225600000));
    assert_int_equal(col_since_parse("", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(col_since_parse("last week", &ms), -1);
}

static void
test_rate_headers_and_retry_after(void **state)
{
    const int64_t now = INT64_C(1738591500000); /* 2025-02-03T14:05:00Z */
    struct col_rate r;
    int64_t d;

    (void)state;
    /* Mastodon: ISO 8601 reset */
    col_rate_parse(&r, "0", "2025-02-03T14:10:00.000000Z", NULL, now);
    assert_int_equal(r.has_remaining, 1);
    assert_int_equal(r.reset_ms, now + 300000);
    assert_int_equal(r.retry_after_ms, -1);
    assert_int_equal(col_rate_pause_ms(&r, now, INT64_C(86400000)), 300000);
    assert_int_equal(col_rate_pause_ms(&r, now, 1000), 1000);
    /* Bluesky / X: Unix seconds */
    col_rate_parse(&r, "12", "1738591560", NULL, now);
    assert_int_equal(r.reset_ms, INT64_C(1738591560000));
    assert_int_equal(col_rate_pause_ms(&r, now, INT64_C(86400000)), 0); /* requests left */
    /* Reddit: decimal remaining, seconds left */
    col_rate_parse(&r, "0.0", "412", NULL, now);
    assert_true(r.remaining < 1.0);
    assert_int_equal(r.reset_ms, now + 412000);
    assert_int_equal(col_rate_pause_ms(&r, now, INT64_C(86400000)), 412000);
    /* Retry-After in seconds and as an HTTP date */
    col_rate_parse(&r, NULL, NULL, "120", now);
    assert_int_equal(r.has_remaining, 0);
    assert_int_equal(r.retry_after_ms, 120000);
    assert_int_equal(col_rate_retry_after("Mon, 03 Feb 2025 14:06:00 GMT", now, &d), 0);
    assert_int_equal(d, 60000);
    assert_int_equal(col_rate_retry_after("Mon, 03 Feb 2025 14:00:00 GMT", now, &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(col_rate_retry_after("soon", now, &d), -1);
    col_rate_parse(&r, "lots", "later", "-5", now);
    assert_int_equal(r.has_remaining, 0);
    assert_int_equal(r.reset_ms, 0);
    assert_int_equal(r.retry_after_ms, -1);
    /* absurd numbers (found by tests/fuzz/fuzz_lemmy.c) are capped, not overflowed */
    assert_int_equal(col_rate_retry_after("888888888888888888888888888888", now, &d), 0);
    assert_int_equal(d, INT64_C(1000000000000000));
    col_rate_parse(&r, "5e30", "99999999999999999999.5", NULL, now);
    assert_int_equal(r.has_remaining, 1);
    assert_int_equal(r.reset_ms, INT64_C(1000000000000000));
}

static void
test_rate_backoff_doubles_with_bounded_jitter(void **state)
{
    uint64_t rng = 42;
    int64_t d;
    int attempt;
    int i;
    int varied = 0;
    int64_t first = -1;

    (void)state;
    for (attempt = 1; attempt <= 12; attempt++) {
        int64_t base = INT64_C(1000) << (attempt - 1);

        if (base > 60000) {
            base = 60000;
        }
        for (i = 0; i < 50; i++) {
            d = col_backoff_ms(1000, 60000, attempt, &rng);
            assert_true(d >= base);
            assert_true(d <= base + base / 4);
            if (attempt == 1) {
                if (first < 0) {
                    first = d;
                }
                else if (d != first) {
                    varied = 1;
                }
            }
        }
    }
    assert_true(varied);
    d = col_jitter_ms(2000, 0.1, 1000, &rng);
    assert_true(d >= 2000 && d <= 2200);
    d = col_jitter_ms(60000, 0.1, 1000, &rng);
    assert_true(d >= 60000 && d <= 61000);
}

static void
test_net_url_redaction_and_link_header(void **state)
{
    char out[512];

    (void)state;
    col_url_redact("https://www.googleapis.com/youtube/v3/search?part=snippet&key=AIzaSECRET"
                   "&q=rust",
                   out, sizeof(out));
    assert_string_equal(out, "https://www.googleapis.com/youtube/v3/search?part=snippet&key=***"
                             "&q=rust");
    col_url_redact("https://x/a?access_token=t0k&Token=abc&keyword=k", out, sizeof(out));
    assert_string_equal(out, "https://x/a?access_token=***&Token=***&keyword=k");
    col_url_redact("https://x/plain", out, sizeof(out));
    assert_string_equal(out, "https://x/plain");

    assert_int_equal(col_link_rel("<https://m.example/api/v1/timelines/tag/rust?max_id=1>; "
                                  "rel=\"next\", <https://m.example/api/v1/timelines/tag/rust"
                                  "?min_id=9>; rel=\"prev\"",
                                  "prev", out, sizeof(out)),
                     0);
    assert_string_equal(out, "https://m.example/api/v1/timelines/tag/rust?min_id=9");
    assert_int_equal(col_link_rel("<https://a/1>; rel=\"next\"", "next", out, sizeof(out)), 0);
    assert_string_equal(out, "https://a/1");
    assert_int_equal(col_link_rel("<https://a/1>; rel=\"prefetch next\"", "next", out,
                                  sizeof(out)),
                     0);
    assert_int_equal(col_link_rel("<https://a/1>; rel=\"next\"", "prev", out, sizeof(out)), -1);
    assert_int_equal(col_link_rel(NULL, "prev", out, sizeof(out)), -1);
    assert_int_equal(col_link_rel("garbage <no end", "prev", out, sizeof(out)), -1);
    assert_int_equal(col_link_rel("<https://a/very/long>; rel=prev", "prev", out, 5), -1);
}

static void
test_text_ids_truncation_and_split(void **state)
{
    char s[32];
    char tok[8];
    const char *p = " rust, go ,,peru-lima ";

    (void)state;
    assert_true(col_id_cmp("99", "100") < 0);
    assert_true(col_id_cmp("113912345678901234", "113912345678901233") > 0);
    assert_int_equal(col_id_cmp("0042", "42"), 0);
    esc_strlcpy(s, "ab\xc3\xb1\xf0\x9f\x8e\x89", sizeof(s)); /* "abñ🎉" */
    col_utf8_truncate(s, 4);
    assert_string_equal(s, "ab\xc3\xb1");
    esc_strlcpy(s, "ab\xc3\xb1\xf0\x9f\x8e\x89", sizeof(s));
    col_utf8_truncate(s, 6);
    assert_string_equal(s, "ab\xc3\xb1");
    col_utf8_truncate(s, 100);
    assert_string_equal(s, "ab\xc3\xb1");
    assert_int_equal(col_split_next(&p, ", ", tok, sizeof(tok)), 1);
    assert_string_equal(tok, "rust");
    assert_int_equal(col_split_next(&p, ", ", tok, sizeof(tok)), 1);
    assert_string_equal(tok, "go");
    assert_int_equal(col_split_next(&p, ", ", tok, sizeof(tok)), 1);
    assert_string_equal(tok, "peru-li"); /* cut to the buffer */
    assert_int_equal(col_split_next(&p, ", ", tok, sizeof(tok)), 0);
}

static void
test_cjson_paths_and_parse_errors(void **state)
{
    const char *doc = "{\"a\":{\"b\":\"x\",\"n\":null,\"i\":7,\"r\":1738591509.5,\"s\":\"12034\"}}";
    struct esc_error err;
    json_t *j;

    (void)state;
    j = col_json_parse(doc, strlen(doc), &err);
    assert_non_null(j);
    assert_string_equal(col_json_str(j, "a.b"), "x");
    assert_null(col_json_str(j, "a.n"));
    assert_null(col_json_str(j, "a.i"));
    assert_null(col_json_str(j, "a.b.c"));
    assert_int_equal(col_json_int(j, "a.i", -1), 7);
    assert_int_equal(col_json_int(j, "a.r", -1), 1738591509);
    assert_int_equal(col_json_int(j, "a.s", -1), 12034); /* YouTube statistics */
    assert_int_equal(col_json_int(j, "a.b", -1), -1);
    assert_true(col_json_num(j, "a.r", 0) > 1738591509.4);
    json_decref(j);
    memset(&err, 0, sizeof(err));
    assert_null(col_json_parse("[{\"text\":\"secret post\"", 22, &err));
    assert_non_null(strstr(err.text, "malformed JSON: "));
    assert_null(strstr(err.text, "secret")); /* the input is never quoted */
    assert_null(col_json_parse("", 0, &err));
    assert_string_equal(err.text, "empty body, expected JSON");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_html_to_plain),
        cmocka_unit_test(test_text_rfc822_dates),
        cmocka_unit_test(test_rate_headers_and_retry_after),
        cmocka_unit_test(test_rate_backoff_doubles_with_bounded_jitter),
        cmocka_unit_test(test_net_url_redaction_and_link_header),
        cmocka_unit_test(test_text_ids_truncation_and_split),
        cmocka_unit_test(test_cjson_paths_and_parse_errors),
    };

    col_net_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
