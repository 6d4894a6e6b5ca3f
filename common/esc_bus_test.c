#define ESC_LOG_MODULE "test"
/* Unit tests of the bus wrapper over real ZeroMQ sockets on loopback TCP with a free port:
 * frames round-trip intact, DONTWAIT reports a full high-water mark as ESC_RETRY, and a bad
 * endpoint fails cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_log.h"

static void
test_bus_roundtrip(void **state)
{
    esc_bus_t *in = esc_bus_new(ESC_BUS_PULL, "tcp://127.0.0.1:*", true, 1000);
    esc_bus_t *out;
    const void *buf;
    size_t len;
    int i;

    assert_non_null(in);
    assert_non_null(strstr(esc_bus_endpoint(in), "tcp://127.0.0.1:"));
    out = esc_bus_new(ESC_BUS_PUSH, esc_bus_endpoint(in), false, 1000);
    assert_non_null(out);
    for (i = 0; i < 100; i++) {
        char msg[32];

        snprintf(msg, sizeof(msg), "post-%d ñ", i);
        assert_int_equal(esc_bus_send(out, msg, strlen(msg), 0), ESC_OK);
    }
    for (i = 0; i < 100; i++) {
        char want[32];

        snprintf(want, sizeof(want), "post-%d ñ", i);
        assert_int_equal(esc_bus_recv(in, &buf, &len, 0), ESC_OK);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(buf, want, len);
    }
    assert_int_equal(esc_bus_recv(in, &buf, &len, ESC_BUS_DONTWAIT), ESC_RETRY);
    esc_bus_destroy(&out, 0);
    esc_bus_destroy(&in, 0);
    assert_null(in);
    esc_bus_destroy(&in, 0); /* NULL-safe */
}

static void
test_bus_hwm_reports_retry(void **state)
{
    /* a PUSH with no peer cannot queue anything: DONTWAIT must say RETRY, not block */
    esc_bus_t *out = esc_bus_new(ESC_BUS_PUSH, "tcp://127.0.0.1:*", true, 10);

    assert_non_null(out);
    assert_int_equal(esc_bus_send(out, "x", 1, ESC_BUS_DONTWAIT), ESC_RETRY);
    esc_bus_destroy(&out, 0);
}

static void
test_bus_bad_endpoint(void **state)
{
    assert_null(esc_bus_new(ESC_BUS_PULL, "nonsense://where", true, 10));
    assert_null(esc_bus_new(ESC_BUS_PUSH, "tcp://", false, 10));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_roundtrip),
        cmocka_unit_test(test_bus_hwm_reports_retry),
        cmocka_unit_test(test_bus_bad_endpoint),
    };
    int rc;

    esc_log_init("test", ESC_LOG_ERROR + 0);
    esc_log_level_cur = -1; /* the bad-endpoint case logs errors on purpose */
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    esc_bus_ctx_term();
    return rc;
}
