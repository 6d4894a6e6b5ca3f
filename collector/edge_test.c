#define ESC_LOG_MODULE "test"
/* Unit tests of the collector's edge checks (edge.c), no network: the reason class of the
 * parsers' messages (the `reason` label of escucha_collector_rejected_total), the rule that an
 * event time is after 1970, the clamp of event times in the future (counted, logged, off with
 * 0) and the per-source, per-reason counter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "col_source.h"

#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

static void
s_class(const char *text, enum col_reject want)
{
    enum col_reject got = col_reject_class(text);

    if (got != want) {
        fail_msg("\"%s\": got %s, want %s", text != NULL ? text : "(null)",
                 col_reject_name(got), col_reject_name(want));
    }
}

static void
test_edge_reject_classes(void **state)
{
    (void)state;
    s_class("field 'text': contains NUL byte", COL_REJECT_NUL);
    s_class("invalid JSON: \\u0000 is not allowed without JSON_ALLOW_NUL", COL_REJECT_NUL);
    s_class("line longer than ESC_MSG_MAX (1048576 bytes)", COL_REJECT_TOO_LARGE);
    s_class("field 'text': too long (72000 > 65536 bytes)", COL_REJECT_TOO_LARGE);
    s_class("field 'hashtags': too many elements (300 > 256)", COL_REJECT_TOO_LARGE);
    s_class("post too large for the bus once encoded", COL_REJECT_TOO_LARGE);
    s_class("invalid JSON: maximum parsing depth reached at column 2049", COL_REJECT_TOO_DEEP);
    s_class("JSON nested too deep (more than 3 levels)", COL_REJECT_TOO_DEEP);
    s_class("invalid JSON: unable to decode byte 0xff at column 40", COL_REJECT_BAD_UTF8);
    s_class("invalid JSON: too big integer at column 99", COL_REJECT_OUT_OF_RANGE);
    s_class("invalid JSON: real number overflow at column 63", COL_REJECT_OUT_OF_RANGE);
    s_class("field 'likes': must be a non-negative integer", COL_REJECT_OUT_OF_RANGE);
    s_class("field 'id': missing", COL_REJECT_MISSING_FIELD);
    s_class("field 'platform': empty", COL_REJECT_MISSING_FIELD);
    s_class("field 'text': expected string, got integer", COL_REJECT_WRONG_TYPE);
    s_class("field 'author': expected object or string, got array", COL_REJECT_WRONG_TYPE);
    s_class("invalid JSON: duplicate object key at column 19", COL_REJECT_DUPLICATE_KEY);
    s_class("field 'created_at': not an RFC 3339 time or Unix ms", COL_REJECT_BAD_TIME);
    s_class("field 'created_at': must be after 1970-01-01 (positive Unix ms), got 0",
            COL_REJECT_BAD_TIME);
    s_class("expected a JSON object, got array", COL_REJECT_MALFORMED);
    s_class("invalid JSON: premature end of input at column 46", COL_REJECT_MALFORMED);
    s_class("malformed JSON at line 1 column 4: invalid token", COL_REJECT_MALFORMED);
    s_class("empty body: send a post, an array of posts or JSON Lines", COL_REJECT_MALFORMED);
    s_class("unterminated quoted field at the end of the file", COL_REJECT_MALFORMED);
    s_class("something nobody has seen", COL_REJECT_INVALID);
    s_class("", COL_REJECT_INVALID);
    s_class(NULL, COL_REJECT_INVALID);
    /* the parser's quote of the input never decides: "near 'null'" is not a NUL */
    s_class("invalid JSON: '[' or '{' expected near 'null' at column 1", COL_REJECT_MALFORMED);
    s_class("invalid JSON: end of file expected near 'too long'", COL_REJECT_MALFORMED);
    assert_string_equal(col_reject_name(COL_REJECT_OUT_OF_RANGE), "out_of_range");
    assert_string_equal(col_reject_name(COL_REJECT_N), "invalid");
}

static void
test_edge_post_check_positive_time(void **state)
{
    struct esc_post p;
    struct esc_error err;

    (void)state;
    esc_post_init(&p);
    p.created_at = 1;
    assert_int_equal(col_post_check(&p, &err), ESC_OK);
    p.created_at = 0;
    assert_int_equal(col_post_check(&p, &err), ESC_INVALID);
    assert_string_equal(err.text,
                        "field 'created_at': must be after 1970-01-01 (positive Unix ms), got 0");
    p.created_at = INT64_MIN;
    assert_int_equal(col_post_check(&p, &err), ESC_INVALID);
    esc_post_fini(&p);
}

static const struct col_source_plugin s_plugin = { .name = "jsonl" };

static void
s_source(struct col_source *ins, const char *name)
{
    memset(ins, 0, sizeof(*ins));
    esc_strlcpy(ins->name, name, sizeof(ins->name));
    ins->plugin = &s_plugin;
}

static void
test_edge_clamp_future_times(void **state)
{
    const int64_t now = INT64_C(1795000000000);
    struct col_source ins;
    struct esc_post p;
    esc_metric_t *m;

    (void)state;
    s_source(&ins, "clamp");
    esc_post_init(&p);
    p.id = esc_strdup("p1");
    p.created_at = now + 600000; /* exactly at the limit: kept */
    assert_int_equal(col_post_clamp(&ins, &p, now, 600000), 0);
    assert_true(p.created_at == now + 600000);
    p.created_at = now - INT64_C(86400000) * 365 * 50; /* the past is never touched */
    assert_int_equal(col_post_clamp(&ins, &p, now, 600000), 0);
    p.created_at = INT64_MAX;
    assert_int_equal(col_post_clamp(&ins, &p, now, 600000), 1);
    assert_true(p.created_at == now);
    p.created_at = now + 600001;
    assert_int_equal(col_post_clamp(&ins, &p, now, 600000), 1);
    assert_true(p.created_at == now);
    p.created_at = INT64_MAX; /* 0 = off */
    assert_int_equal(col_post_clamp(&ins, &p, now, 0), 0);
    assert_true(p.created_at == INT64_MAX);
    assert_int_equal(ins.stats.clamped, 2);
    m = esc_metrics_counter("escucha_collector_clamped_total", "",
                            "source=\"clamp\",type=\"jsonl\"");
    assert_int_equal(esc_metric_value(m), 2);
    esc_post_fini(&p);
}

static void
test_edge_reject_counts_per_reason(void **state)
{
    struct col_source ins;
    char *text;

    (void)state;
    s_source(&ins, "file \"a\"");
    col_source_reject(&ins, COL_REJECT_NUL, 1);
    col_source_reject(&ins, COL_REJECT_NUL, 2);
    col_source_reject(&ins, COL_REJECT_TOO_DEEP, 0); /* nothing: not even registered */
    col_source_reject(&ins, COL_REJECT_MISSING_FIELD, 4);
    assert_int_equal(ins.stats.skipped, 7);
    text = esc_metrics_render();
    assert_non_null(strstr(text, "escucha_collector_rejected_total{source=\"file \\\"a\\\"\","
                                 "type=\"jsonl\",reason=\"nul\"} 3\n"));
    assert_non_null(strstr(text, "reason=\"missing_field\"} 4\n"));
    assert_null(strstr(text, "reason=\"too_deep\""));
    esc_free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_reject_classes),
        cmocka_unit_test(test_edge_post_check_positive_time),
        cmocka_unit_test(test_edge_clamp_future_times),
        cmocka_unit_test(test_edge_reject_counts_per_reason),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    esc_metrics_shutdown();
    return rc;
}
