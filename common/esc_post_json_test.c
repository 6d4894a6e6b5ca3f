#define ESC_LOG_MODULE "test"
/* Unit tests of esc_post_from_json's streaming parser (yajl) at its edges: it must read every
 * input exactly as the jansson tree parser it replaced did. Syntax errors give jansson's own
 * message, line and column (checked against json_loadb here); the cases where yajl alone would
 * be more lenient (\v and \f, lone surrogates, overlong UTF-8, NUL in keys, duplicate keys at
 * any depth, numbers out of range, a trailing unfinished token) are refused the same way; the
 * field checks come out in table order whatever the order of the keys; limits, nesting, long
 * escaped strings and many unknown keys. esc_msg_test.c covers the field errors one by one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

/* The required fields; BASE is an object's start to which a case appends its own fields. */
#define FIELDS "\"id\":\"1\",\"platform\":\"x\",\"text\":\"t\",\"created_at\":0"
#define BASE "{" FIELDS

static esc_rc
s_parse(const char *s, size_t len, struct esc_post *p, struct esc_error *err)
{
    memset(err, 0, sizeof(*err));
    return esc_post_from_json(s, len, p, err);
}

/* Asserts that s is refused with jansson's own syntax error for it. */
static void
s_assert_jansson_error(const char *s, size_t len)
{
    json_error_t jerr;
    json_t *root;
    struct esc_post p;
    struct esc_error err;
    char want[300];

    root = json_loadb(s, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (root != NULL) {
        json_decref(root);
        fail_msg("jansson accepts the case: %.*s", (int)len, s);
    }
    snprintf(want, sizeof(want), "invalid JSON: %s at column %d", jerr.text, jerr.column);
    if (s_parse(s, len, &p, &err) != ESC_INVALID || strcmp(err.text, want) != 0
        || err.line != jerr.line || err.column != jerr.column) {
        fail_msg("case %.*s: want \"%s\" (%d:%d) got \"%s\" (%d:%d)", (int)len, s, want,
                 jerr.line, jerr.column, err.text, err.line, err.column);
    }
    esc_post_fini(&p);
}

#define S_JANSSON_ERROR(lit) s_assert_jansson_error(lit, sizeof(lit) - 1)

static void
s_assert_error(const char *s, const char *want)
{
    struct esc_post p;
    struct esc_error err;

    if (s_parse(s, strlen(s), &p, &err) != ESC_INVALID || strcmp(err.text, want) != 0) {
        fail_msg("case %s: want \"%s\" got \"%s\"", s, want, err.text);
    }
    esc_post_fini(&p);
}

static void
test_post_json_lenient_yajl_cases_refused(void **state)
{
    (void)state;
    /* yajl takes \v and \f as white space. */
    S_JANSSON_ERROR(BASE "}\v");
    S_JANSSON_ERROR("\f" BASE "}");
    S_JANSSON_ERROR(BASE ",\v\"a\":1}");
    /* yajl does not look at an unfinished token after the object. */
    S_JANSSON_ERROR(BASE "} \"abc");
    S_JANSSON_ERROR(BASE "}tru");
    S_JANSSON_ERROR(BASE "} 1");
    /* Lone or mismatched UTF-16 surrogates (yajl writes '?' or CESU-8). */
    S_JANSSON_ERROR(BASE ",\"a\":\"\\ud800\"}");
    S_JANSSON_ERROR(BASE ",\"a\":\"\\ud800x\"}");
    S_JANSSON_ERROR(BASE ",\"a\":\"\\udc00\"}");
    S_JANSSON_ERROR(BASE ",\"a\":\"\\ud800\\u0041\"}");
    S_JANSSON_ERROR(BASE ",\"\\udbff\":1}");
    /* UTF-8 yajl's own check would let through: overlong, surrogate, above U+10FFFF. */
    S_JANSSON_ERROR(BASE ",\"a\":\"\xc0\x80\"}");
    S_JANSSON_ERROR(BASE ",\"a\":\"\xe0\x80\xaf\"}");
    S_JANSSON_ERROR(BASE ",\"a\":\"\xed\xa0\x80\"}");
    S_JANSSON_ERROR(BASE ",\"a\":\"\xf4\x90\x80\x80\"}");
    S_JANSSON_ERROR(BASE ",\"a\":\"\xf5\x80\x80\x80\"}");
    S_JANSSON_ERROR(BASE ",\"\xc3\":1}");
    S_JANSSON_ERROR("{\"text\":\"abc\xe2\x82\"," "\"id\":\"1\"}");
    /* A NUL byte in a key, even one the post does not read. */
    S_JANSSON_ERROR(BASE ",\"a\\u0000\":1}");
    /* Duplicate keys: known ones, unknown ones, inside author and deeper, and spelt with an
     * escape. */
    S_JANSSON_ERROR(BASE ",\"id\":\"2\"}");
    S_JANSSON_ERROR(BASE ",\"zz\":1,\"zz\":2}");
    S_JANSSON_ERROR(BASE ",\"zz\":1,\"z\\u007a\":2}");
    S_JANSSON_ERROR(BASE ",\"\\u0069d\":\"2\"}");
    S_JANSSON_ERROR(BASE ",\"author\":{\"name\":\"a\",\"name\":\"b\"}}");
    S_JANSSON_ERROR(BASE ",\"author\":{\"x\":1,\"y\":2,\"x\":3}}");
    S_JANSSON_ERROR(BASE ",\"media\":[{\"u\":1,\"u\":2}]}");
    S_JANSSON_ERROR(BASE ",\"m\":{\"a\":{\"k\":1,\"k\":1}}}");
    /* Numbers out of range are syntax errors for jansson. */
    S_JANSSON_ERROR(BASE ",\"likes\":9223372036854775808}");
    S_JANSSON_ERROR(BASE ",\"likes\":-9223372036854775809}");
    S_JANSSON_ERROR(BASE ",\"likes\":123456789012345678901234567890}");
    S_JANSSON_ERROR(BASE ",\"sentiment\":1e400}");
    S_JANSSON_ERROR(BASE ",\"sentiment\":-1.5e99999}");
    /* A syntax error after a field error is still the syntax error. */
    S_JANSSON_ERROR("{\"id\":5.5,\"text\":[1,]}");
    /* Deeper than jansson's own stack (2048): its error, not "nested too deep". */
    {
        char *deep = esc_malloc(2 * 3000 + 40);
        size_t n = 0;
        int i;

        n += (size_t)snprintf(deep, 40, "{\"a\":");
        for (i = 0; i < 3000; i++) {
            deep[n++] = '[';
        }
        for (i = 0; i < 3000; i++) {
            deep[n++] = ']';
        }
        deep[n++] = '}';
        s_assert_jansson_error(deep, n);
        esc_free(deep);
    }
}

static void
test_post_json_numbers_at_the_limits(void **state)
{
    struct esc_post p;
    struct esc_error err;
    const char *s;

    (void)state;
    s = "{\"id\":-9223372036854775808,\"platform\":\"x\",\"text\":\"t\","
        "\"created_at\":9223372036854775807,\"ingested_at\":-0,\"likes\":0,"
        "\"sentiment\":1e-400,\"replies\":9223372036854775807}";
    assert_int_equal(s_parse(s, strlen(s), &p, &err), ESC_OK);
    assert_string_equal(p.id, "-9223372036854775808");
    assert_true(p.created_at == INT64_MAX);
    assert_true(p.replies == INT64_MAX);
    assert_int_equal(p.ingested_at, 0);
    assert_true(p.sentiment == 0.0);
    esc_post_fini(&p);

    /* Reals are reals even when whole; an integer sentiment is a number. */
    s_assert_error(BASE ",\"likes\":1e2}", "field 'likes': must be a non-negative integer");
    s_assert_error(BASE ",\"likes\":-0.0}", "field 'likes': must be a non-negative integer");
    s_assert_error(BASE ",\"ingested_at\":1E3}",
                   "field 'ingested_at': expected integer (Unix ms), got real");
    s = BASE ",\"sentiment\":-1,\"likes\":-0}";
    assert_int_equal(s_parse(s, strlen(s), &p, &err), ESC_OK);
    assert_true(p.sentiment == -1.0);
    assert_int_equal(p.likes, 0);
    esc_post_fini(&p);
    s = BASE ",\"sentiment\":0.30000000000000004}";
    assert_int_equal(s_parse(s, strlen(s), &p, &err), ESC_OK);
    assert_true(p.sentiment == 0.1 + 0.2);
    esc_post_fini(&p);
}

static void
test_post_json_checks_in_table_order(void **state)
{
    (void)state;
    /* Whatever the order of the keys, the first field of the table that is wrong is named. */
    s_assert_error("{\"sentiment\":\"x\",\"text\":5,\"platform\":7}", "field 'id': missing");
    s_assert_error("{\"sentiment\":\"x\",\"text\":5,\"id\":7}", "field 'platform': missing");
    s_assert_error("{\"hashtags\":3,\"created_at\":\"no\",\"text\":5,\"id\":7,\"platform\":\"p\"}",
                   "field 'text': expected string, got integer");
    s_assert_error("{\"likes\":-1,\"created_at\":\"no\",\"text\":\"\",\"id\":7,\"platform\":\"p\"}",
                   "field 'created_at': not an RFC 3339 time or Unix ms");
    s_assert_error("{\"author\":{\"followers\":-1,\"name\":3,\"handle\":[]}," FIELDS "}",
                   "field 'author.handle': expected string, got array");
    s_assert_error("{\"author\":{\"followers\":-1,\"name\":3}," FIELDS "}",
                   "field 'author.name': expected string, got integer");
    /* Too many elements wins over a bad element before the limit. */
    {
        char buf[4096];
        size_t n;
        int i;

        n = (size_t)snprintf(buf, sizeof(buf), "%s", BASE ",\"mentions\":[\"a\",2");
        for (i = 0; i < ESC_POST_LIST_MAX; i++) {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",\"m\"");
        }
        snprintf(buf + n, sizeof(buf) - n, "]}");
        s_assert_error(buf, "field 'mentions': too many elements (258 > 256)");
    }
    s_assert_error(BASE ",\"hashtags\":[\"a\",{\"b\":1},\"c\\u0000\"]}",
                   "field 'hashtags[1]': expected string, got object");
    s_assert_error(BASE ",\"topics\":[\"a\",\"b\",[]]}",
                   "field 'topics[2]': expected string, got array");
    s_assert_error(BASE ",\"topics\":[\"a\",null]}",
                   "field 'topics[1]': expected string, got null");
}

static void
test_post_json_nesting_and_ignored_values(void **state)
{
    struct esc_post p;
    struct esc_error err;
    const char *s;

    (void)state;
    /* Three levels anywhere are fine and ignored; a fourth is too deep, also inside author,
     * a list or an ignored field, and also when a field error comes first in the table. */
    s = "{\"x\":{\"y\":{\"z\":1}},\"id\":\"1\",\"platform\":\"x\",\"text\":\"t\",\"created_at\":0,"
        "\"author\":{\"handle\":\"h\",\"extra\":{\"q\":1},\"followers\":null},"
        "\"hashtags\":[\"a\",\"b\"],\"lang\":null,\"media\":[[1,\"k\"],[]]}";
    assert_int_equal(s_parse(s, strlen(s), &p, &err), ESC_OK);
    assert_string_equal(p.author, "h");
    assert_null(p.author_name);
    assert_int_equal(p.followers, 0);
    assert_int_equal(p.n_hashtags, 2);
    assert_string_equal(p.hashtags[1], "b");
    assert_null(p.lang);
    esc_post_fini(&p);
    s_assert_error(BASE ",\"x\":{\"y\":{\"z\":{}}}}", "JSON nested too deep (more than 3 levels)");
    s_assert_error(BASE ",\"author\":{\"handle\":{\"a\":[1]}}}",
                   "JSON nested too deep (more than 3 levels)");
    s_assert_error(BASE ",\"hashtags\":[[[\"a\"]]]}", "JSON nested too deep (more than 3 levels)");
    s_assert_error("{\"id\":1.5,\"x\":[[[[]]]]}", "JSON nested too deep (more than 3 levels)");
    /* Not an object at the top. */
    s_assert_error("[[[[[1]]]]]", "expected a JSON object, got array");
    s_assert_error(" 12 ", "expected a JSON object, got integer");
    s_assert_error("-1.5", "expected a JSON object, got real");
    s_assert_error("false", "expected a JSON object, got boolean");
    s_assert_error("null", "expected a JSON object, got null");
}

static void
test_post_json_strings_and_escapes(void **state)
{
    struct esc_post p;
    struct esc_error err;
    const char *s;
    char *big;
    static const char head[] = "{\"id\":\"1\",\"platform\":\"x\",\"created_at\":0,\"text\":\"";
    size_t n, i, h = sizeof(head) - 1;

    (void)state;
    /* Escapes decoded, surrogate pairs joined, keys spelt with escapes, "\/" and "\"". */
    s = "{\"\\u0069d\":\"a\\\"b\\\\c\\/d\",\"platform\":\"x\",\"text\":\"\\ud83d\\ude00 "
        "\\u00f1\\n\\t\",\"created_at\":\"2026-11-16T14:03:00Z\",\"url\":\"\\\\\",\"lang\":\"\"}";
    assert_int_equal(s_parse(s, strlen(s), &p, &err), ESC_OK);
    assert_string_equal(p.id, "a\"b\\c/d");
    assert_string_equal(p.text, "\xf0\x9f\x98\x80 \xc3\xb1\n\t");
    assert_string_equal(p.url, "\\");
    assert_string_equal(p.lang, "");
    esc_post_fini(&p);

    /* A created_at string longer than any stack buffer still parses. */
    s = "{\"id\":\"1\",\"platform\":\"x\",\"text\":\"t\",\"created_at\":\"2026-11-16T14:03:00."
        "2500000000000000000000000000000000000000000000000000000000000000000000000000000Z\"}";
    assert_int_equal(s_parse(s, strlen(s), &p, &err), ESC_OK);
    assert_true(p.created_at == INT64_C(1794837780250));
    esc_post_fini(&p);

    /* A text of 20,000 escapes: yajl's decode buffer outgrows the parser's arena. */
    n = 20000;
    big = esc_malloc(h + n * 2 + 3);
    memcpy(big, head, h);
    for (i = 0; i < n; i++) {
        memcpy(big + h + 2 * i, "\\n", 2);
    }
    memcpy(big + h + 2 * n, "\"}", 3);
    assert_int_equal(s_parse(big, strlen(big), &p, &err), ESC_OK);
    assert_int_equal(strlen(p.text), n);
    assert_int_equal(p.text[n - 1], '\n');
    esc_post_fini(&p);
    esc_free(big);

    /* \u0000 is taken where nothing reads it, and named where a field holds it. */
    s = BASE ",\"note\":\"a\\u0000b\"}";
    assert_int_equal(s_parse(s, strlen(s), &p, &err), ESC_OK);
    esc_post_fini(&p);
    s_assert_error(BASE ",\"author\":{\"name\":\"\\u0000\"}}",
                   "field 'author.name': contains NUL byte");
    s_assert_error(BASE ",\"mentions\":[\"ok\",\"b\\u0000\"]}",
                   "field 'mentions[1]': contains NUL byte");
}

static void
test_post_json_many_unknown_keys(void **state)
{
    struct esc_post p;
    struct esc_error err;
    char *buf;
    size_t n = 0;
    int i;

    (void)state;
    buf = esc_malloc(64 * 1024);
    n += (size_t)snprintf(buf, 64, "%s", BASE);
    for (i = 0; i < 1000; i++) {
        n += (size_t)snprintf(buf + n, 64, ",\"k%d\":{\"k%d\":%d}", i, i, i);
    }
    memcpy(buf + n, "}", 2);
    assert_int_equal(s_parse(buf, n + 1, &p, &err), ESC_OK);
    assert_string_equal(p.platform, "x");
    esc_post_fini(&p);
    /* The same key again, 1000 keys later, in the same object. */
    n += (size_t)snprintf(buf + n, 64, ",\"k7\":1}");
    s_assert_jansson_error(buf, n);
    esc_free(buf);
}

static void
test_post_json_raw_nul_as_jansson(void **state)
{
    static const char after_number[] = BASE ",\"likes\":7\0}";
    static const char after_literal[] = BASE ",\"lang\":null\0,\"x\":true\0}";
    struct esc_post p;
    struct esc_error err;

    (void)state;
    /* jansson reads a single raw NUL byte right after a number or a literal as nothing; the
     * input is read as jansson reads it, quirk included. Anywhere else it is an error. */
    assert_int_equal(s_parse(after_number, sizeof(after_number) - 1, &p, &err), ESC_OK);
    assert_int_equal(p.likes, 7);
    esc_post_fini(&p);
    assert_int_equal(s_parse(after_literal, sizeof(after_literal) - 1, &p, &err), ESC_OK);
    assert_null(p.lang);
    esc_post_fini(&p);
    S_JANSSON_ERROR(BASE ",\"likes\":7\0\0}");
    S_JANSSON_ERROR(BASE ",\"lang\":\"es\"\0}");
    S_JANSSON_ERROR(BASE "}\0");
    S_JANSSON_ERROR("\0" BASE "}");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_json_lenient_yajl_cases_refused),
        cmocka_unit_test(test_post_json_numbers_at_the_limits),
        cmocka_unit_test(test_post_json_checks_in_table_order),
        cmocka_unit_test(test_post_json_nesting_and_ignored_values),
        cmocka_unit_test(test_post_json_strings_and_escapes),
        cmocka_unit_test(test_post_json_many_unknown_keys),
        cmocka_unit_test(test_post_json_raw_nul_as_jansson),
    };

    esc_log_level_cur = -1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
