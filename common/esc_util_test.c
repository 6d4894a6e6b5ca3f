#define ESC_LOG_MODULE "test"
/* Unit tests of the small helpers: strict integer parsing, bounded copies, RFC 3339 times,
 * secrets from env/file (and refusal of world-readable files), identifiers, log quoting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

static void
test_util_parse_i64(void **state)
{
    int64_t v = 0;

    assert_int_equal(esc_parse_i64("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(esc_parse_i64("-7", -10, 10, &v), 0);
    assert_int_equal(v, -7);
    assert_int_equal(esc_parse_i64("101", 0, 100, &v), -1);
    assert_int_equal(esc_parse_i64("12abc", 0, 100, &v), -1);
    assert_int_equal(esc_parse_i64("", 0, 100, &v), -1);
    assert_int_equal(esc_parse_i64(" 1", 0, 100, &v), -1);
    assert_int_equal(esc_parse_i64("99999999999999999999", INT64_MIN, INT64_MAX, &v), -1);
}

static void
test_util_strlcpy_truncates(void **state)
{
    char buf[5];

    assert_int_equal(esc_strlcpy(buf, "congreso", sizeof(buf)), 8);
    assert_string_equal(buf, "cong");
    assert_int_equal(esc_strlcpy(buf, "ok", sizeof(buf)), 2);
    assert_string_equal(buf, "ok");
}

static void
test_util_time_iso8601(void **state)
{
    int64_t ms = 0;
    char out[32];

    assert_int_equal(esc_time_parse_iso8601("2026-11-16T14:03:00Z", &ms), 0);
    assert_int_equal(ms, 1794837780000LL);
    assert_string_equal(esc_time_fmt_iso8601(ms, out, sizeof(out)), "2026-11-16T14:03:00Z");
    assert_int_equal(esc_time_parse_iso8601("2026-11-16T09:03:00.250-05:00", &ms), 0);
    assert_int_equal(ms, 1794837780250LL);
    assert_int_equal(esc_time_parse_iso8601("2026-11-16 14:03:00", &ms), 0);
    assert_int_equal(ms, 1794837780000LL);
    assert_int_equal(esc_time_parse_iso8601("2026-11-16", &ms), 0);
    assert_int_equal(ms, 1794787200000LL);
    assert_int_equal(esc_time_parse_iso8601("2026-13-16T00:00:00Z", &ms), -1);
    assert_int_equal(esc_time_parse_iso8601("yesterday", &ms), -1);
    assert_int_equal(esc_time_parse_iso8601("2026-11-16T14:03:00Zjunk", &ms), -1);
    assert_int_equal(esc_time_parse_iso8601("", &ms), -1);
}

static void
test_util_secret_env_and_file(void **state)
{
    char path[] = "/tmp/esc_secret_XXXXXX";
    int fd = mkstemp(path);
    char *s;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, "s3cret\n", 7), 7);
    close(fd);
    chmod(path, 0600);
    setenv("ESC_TEST_SECRET", "from-env", 1);
    s = esc_secret_load("ESC_TEST_SECRET", path, "test");
    assert_string_equal(s, "from-env");
    esc_free(s);
    unsetenv("ESC_TEST_SECRET");
    s = esc_secret_load("ESC_TEST_SECRET", path, "test");
    assert_string_equal(s, "s3cret");
    esc_free(s);
    chmod(path, 0644);
    assert_null(esc_secret_load(NULL, path, "test")); /* readable by others: refused */
    unlink(path);
    assert_null(esc_secret_load(NULL, path, "test"));
    assert_null(esc_secret_load(NULL, NULL, "test"));
}

static void
test_util_ident(void **state)
{
    assert_true(esc_ident_valid("congreso"));
    assert_true(esc_ident_valid("elecciones-2026_pe"));
    assert_false(esc_ident_valid(""));
    assert_false(esc_ident_valid("Congreso"));
    assert_false(esc_ident_valid("con/greso"));
    assert_false(esc_ident_valid("-x"));
    assert_false(esc_ident_valid("elección"));
}

static void
test_util_log_quote(void **state)
{
    char out[64];

    assert_string_equal(esc_log_quote(out, sizeof(out), "a \"b\"\r\n", 100),
                        "\"a \\\"b\\\"\\x0d\\x0a\"");
    assert_string_equal(esc_log_quote(out, sizeof(out), "abcdef", 3), "\"abc\"");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_util_parse_i64),
        cmocka_unit_test(test_util_strlcpy_truncates),
        cmocka_unit_test(test_util_time_iso8601),
        cmocka_unit_test(test_util_secret_env_and_file),
        cmocka_unit_test(test_util_ident),
        cmocka_unit_test(test_util_log_quote),
    };

    esc_log_init("test", ESC_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
