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
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"
#include "escucha/esc_util.h"

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

/* Waits up to ms for one frame on in; returns 1 when one came (and checks its content). */
static int
s_recv_within(esc_bus_t *in, int ms, const char *want)
{
    zmq_pollitem_t it = { esc_bus_zsock(in), 0, ZMQ_POLLIN, 0 };
    const void *buf;
    size_t len;

    if (zmq_poll(&it, 1, ms) <= 0) {
        return 0;
    }
    assert_int_equal(esc_bus_recv(in, &buf, &len, ESC_BUS_DONTWAIT), ESC_OK);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    return 1;
}

/* Polls until the bus saw a failed handshake (the peer needs a moment to answer). */
static unsigned long
s_wait_failures(esc_bus_t *b, int ms)
{
    int64_t end = esc_mono_ms() + ms;

    while (esc_bus_handshake_failures(b) == 0 && esc_mono_ms() < end) {
        usleep(20000);
    }
    return esc_bus_handshake_failures(b);
}

static struct esc_bus_curve s_server, s_client;

static void
s_make_keys(void)
{
    char pub[41];

    memset(&s_server, 0, sizeof(s_server));
    memset(&s_client, 0, sizeof(s_client));
    assert_int_equal(esc_bus_curve_keypair(pub, s_server.server_secret), 0);
    esc_strlcpy(s_client.server_public, pub, sizeof(s_client.server_public));
    assert_int_equal(esc_bus_curve_keypair(s_client.client_public, s_client.client_secret), 0);
}

static void
test_bus_curve_roundtrip(void **state)
{
    const char *keys[1];
    esc_bus_t *in;
    esc_bus_t *out;
    char pub[41];

    s_make_keys();
    assert_int_equal(esc_bus_curve_public(s_client.client_secret, pub), 0);
    assert_string_equal(pub, s_client.client_public);
    keys[0] = s_client.client_public;
    assert_int_equal(esc_bus_curve_authorize(keys, 1), 0);
    in = esc_bus_new_curve(ESC_BUS_PULL, "tcp://127.0.0.1:*", true, 100, &s_server);
    assert_non_null(in);
    out = esc_bus_new_curve(ESC_BUS_PUSH, esc_bus_endpoint(in), false, 100, &s_client);
    assert_non_null(out);
    assert_int_equal(esc_bus_send(out, "cifrado ñ", strlen("cifrado ñ"), 0), ESC_OK);
    assert_true(s_recv_within(in, 5000, "cifrado ñ"));
    assert_int_equal(esc_bus_handshake_failures(out), 0);
    esc_bus_destroy(&out, 0);
    esc_bus_destroy(&in, 0);
}

static void
test_bus_curve_refuses_unknown_client(void **state)
{
    struct esc_bus_curve stranger;
    const char *keys[1];
    esc_bus_t *in;
    esc_bus_t *out;
    unsigned long refused = esc_bus_curve_refused();

    s_make_keys();
    keys[0] = s_client.client_public;
    assert_int_equal(esc_bus_curve_authorize(keys, 1), 0);
    stranger = s_client;
    assert_int_equal(esc_bus_curve_keypair(stranger.client_public, stranger.client_secret), 0);
    in = esc_bus_new_curve(ESC_BUS_PULL, "tcp://127.0.0.1:*", true, 100, &s_server);
    out = esc_bus_new_curve(ESC_BUS_PUSH, esc_bus_endpoint(in), false, 100, &stranger);
    assert_non_null(out);
    esc_bus_send(out, "x", 1, ESC_BUS_DONTWAIT);
    assert_false(s_recv_within(in, 500, "x"));
    assert_true(s_wait_failures(out, 3000) > 0);
    assert_true(esc_bus_curve_refused() > refused);
    esc_bus_destroy(&out, 0);
    esc_bus_destroy(&in, 0);
}

static void
test_bus_curve_wrong_server_key(void **state)
{
    struct esc_bus_curve wrong;
    const char *keys[1];
    char junk[41];
    esc_bus_t *in;
    esc_bus_t *out;

    s_make_keys();
    keys[0] = s_client.client_public;
    assert_int_equal(esc_bus_curve_authorize(keys, 1), 0);
    wrong = s_client;
    assert_int_equal(esc_bus_curve_keypair(wrong.server_public, junk), 0);
    in = esc_bus_new_curve(ESC_BUS_PULL, "tcp://127.0.0.1:*", true, 100, &s_server);
    out = esc_bus_new_curve(ESC_BUS_PUSH, esc_bus_endpoint(in), false, 100, &wrong);
    esc_bus_send(out, "x", 1, ESC_BUS_DONTWAIT);
    assert_false(s_recv_within(in, 500, "x"));
    /* a plain client is not let in either */
    esc_bus_destroy(&out, 0);
    out = esc_bus_new(ESC_BUS_PUSH, esc_bus_endpoint(in), false, 100);
    esc_bus_send(out, "y", 1, ESC_BUS_DONTWAIT);
    assert_false(s_recv_within(in, 500, "y"));
    assert_true(s_wait_failures(in, 3000) > 0);
    esc_bus_destroy(&out, 0);
    esc_bus_destroy(&in, 0);
}

/* Writes text to a fresh file of the given mode under dir; returns its path (static). */
static const char *
s_write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    static char path[4][256];
    static int k;
    char *p = path[k++ % 4];
    FILE *f;

    snprintf(p, 256, "%s/%s", dir, name);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(p, mode);
    return p;
}

static void
test_bus_curve_from_config(void **state)
{
    char dir[] = "/tmp/esc_curve_XXXXXX";
    char json[2048];
    char server_pub[41], server_sec[41], client_pub[41], client_sec[41], auth[64];
    struct esc_error err;
    struct esc_cfg *cfg;
    const char *ssf, *csf, *af;
    esc_bus_t *in;
    esc_bus_t *out;

    assert_non_null(mkdtemp(dir));
    assert_int_equal(esc_bus_curve_keypair(server_pub, server_sec), 0);
    assert_int_equal(esc_bus_curve_keypair(client_pub, client_sec), 0);
    ssf = s_write_file(dir, "server.key", server_sec, 0600);
    csf = s_write_file(dir, "client.key", client_sec, 0600);
    snprintf(auth, sizeof(auth), "# collectors\n%s\n", client_pub);
    af = s_write_file(dir, "authorized", auth, 0644);
    snprintf(json, sizeof(json),
             "{\"bus\":{\"collect\":\"ipc://%s/bus.sock\",\"curve_endpoints\":\"collect\","
             "\"curve_server_secret_file\":\"%s\",\"curve_client_secret_file\":\"%s\","
             "\"curve_server_public\":\"%s\",\"curve_authorized_file\":\"%s\"},"
             "\"teams\":[{\"id\":\"t\",\"topics\":[{\"id\":\"a\",\"keywords\":[\"x\"]}]}]}",
             dir, ssf, csf, server_pub, af);
    cfg = esc_cfg_load_string(json, "t.json", &err);
    assert_non_null(cfg);
    assert_int_equal(esc_bus_configure(cfg, &err), ESC_OK);
    in = esc_bus_new(ESC_BUS_PULL, cfg->bus.collect, true, 100);
    assert_non_null(in);
    out = esc_bus_new(ESC_BUS_PUSH, cfg->bus.collect, false, 100);
    assert_int_equal(esc_bus_send(out, "hola", 4, 0), ESC_OK);
    assert_true(s_recv_within(in, 5000, "hola"));
    esc_bus_destroy(&out, 0);
    esc_bus_destroy(&in, 0);
    /* a secret key readable by others is refused, naming the key */
    chmod(csf, 0644);
    assert_int_equal(esc_bus_configure(cfg, &err), ESC_INVALID);
    assert_non_null(strstr(err.text, "bus.curve_client_secret_file"));
    esc_cfg_free(&cfg);
    /* unknown endpoint names are refused */
    cfg = esc_cfg_load_string("{\"bus\":{\"curve_endpoints\":\"collect,bogus\"},\"teams\":[{\"id\":"
                              "\"t\",\"topics\":[{\"id\":\"a\",\"keywords\":[\"x\"]}]}]}",
                              "t.json", &err);
    assert_int_equal(esc_bus_configure(cfg, &err), ESC_INVALID);
    assert_string_equal(err.text, "bus.curve_endpoints: unknown endpoint 'bogus' (use collect, "
                                  "classify, aggregate, notify, ack or all)");
    esc_cfg_free(&cfg);
    unlink(ssf);
    unlink(csf);
    unlink(af);
    snprintf(json, sizeof(json), "%s/bus.sock", dir);
    unlink(json);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_roundtrip),
        cmocka_unit_test(test_bus_hwm_reports_retry),
        cmocka_unit_test(test_bus_bad_endpoint),
        cmocka_unit_test(test_bus_curve_roundtrip),
        cmocka_unit_test(test_bus_curve_refuses_unknown_client),
        cmocka_unit_test(test_bus_curve_wrong_server_key),
        cmocka_unit_test(test_bus_curve_from_config),
    };
    int rc;

    esc_log_init("test", ESC_LOG_ERROR + 0);
    esc_log_level_cur = -1; /* the bad-endpoint case logs errors on purpose */
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    esc_bus_ctx_term();
    return rc;
}
