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
#include <arpa/inet.h>
#include <netinet/in.h>
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

static void
test_util_parse_listen(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
    socklen_t len;
    char buf[INET6_ADDRSTRLEN];
    static const char *const bad[] = { "", "8080", "host:8080", "1.2.3.4:65536", "1.2.3.4:-1",
                                       "1.2.3.4:", "[::1:8080", "[::1]8080", "[zz]:80",
                                       "::1:8080", "1.2.3.4:80x", NULL };
    size_t i;

    (void)state;
    assert_int_equal(esc_parse_listen("127.0.0.1:8080", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(a4->sin_port), 8080);
    assert_string_equal(inet_ntop(AF_INET, &a4->sin_addr, buf, sizeof(buf)), "127.0.0.1");
    assert_int_equal(esc_parse_listen(":0", &ss, &len), 0);
    assert_int_equal(a4->sin_addr.s_addr, htonl(INADDR_ANY));
    assert_int_equal(esc_parse_listen("*:9", &ss, &len), 0);
    assert_int_equal(a4->sin_addr.s_addr, htonl(INADDR_ANY));
    assert_int_equal(esc_parse_listen("localhost:1", &ss, &len), 0);
    assert_int_equal(a4->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    assert_int_equal(esc_parse_listen("[::1]:9090", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(ntohs(a6->sin6_port), 9090);
    assert_string_equal(inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof(buf)), "::1");
    assert_int_equal(esc_parse_listen("[::]:0", &ss, &len), 0);
    assert_string_equal(inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof(buf)), "::");
    assert_int_equal(esc_parse_listen("[2001:db8::5]:443", &ss, &len), 0);
    assert_string_equal(inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof(buf)), "2001:db8::5");
    for (i = 0; bad[i] != NULL; i++) {
        assert_int_equal(esc_parse_listen(bad[i], &ss, &len), -1);
    }
    assert_int_equal(esc_parse_listen(NULL, &ss, &len), -1);
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
        cmocka_unit_test(test_util_parse_listen),
    };

    esc_log_init("test", ESC_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
