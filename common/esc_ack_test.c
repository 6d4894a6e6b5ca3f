#define ESC_LOG_MODULE "test"
/* Unit tests of the "ack" message (escucha/esc_ack.h): round trips through encoder and decoder,
 * range building from unsorted sequence numbers, the subscription prefix, the post references,
 * every decoder rejection with its exact reason on messages built with msgpack-c directly (so
 * the tests do not trust the encoder), truncation at every prefix, hostile headers, and random
 * and mutated buffers (run under ASan/UBSan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "escucha/esc_ack.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define T_TS INT64_C(1794837790123)

/* ---------------------------------------------------------------------------------------------
 * Helpers: messages made with msgpack-c
 */

struct t_msg {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void
t_begin(struct t_msg *m, uint32_t keys)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&m->pk, keys);
}

static void
t_str(struct t_msg *m, const char *s)
{
    msgpack_pack_str(&m->pk, strlen(s));
    msgpack_pack_str_body(&m->pk, s, strlen(s));
}

static void
t_end(struct t_msg *m)
{
    msgpack_sbuffer_destroy(&m->sb);
}

/* A valid ack for collector "c1": ranges [5, 8) and [10, 11), keys in the order given by
 * `order` (indexes into id, v, type, ts, r), skipping `skip` (-1: none) and replacing key
 * `bad` (-1: none) by the value packed by `bad_fn`. */
typedef void (*t_pack_fn)(struct t_msg *m);

static void
t_ack(struct t_msg *m, const int *order, int skip, int bad, t_pack_fn bad_fn)
{
    static const char *const keys[5] = { "id", "v", "type", "ts", "r" };
    int i;

    t_begin(m, skip >= 0 ? 4 : 5);
    for (i = 0; i < 5; i++) {
        int k = order[i];

        if (k == skip) {
            continue;
        }
        t_str(m, keys[k]);
        if (k == bad) {
            bad_fn(m);
            continue;
        }
        switch (k) {
        case 0:
            t_str(m, "c1");
            break;
        case 1:
            msgpack_pack_uint8(&m->pk, 1);
            break;
        case 2:
            t_str(m, "ack");
            break;
        case 3:
            msgpack_pack_int64(&m->pk, T_TS);
            break;
        default:
            msgpack_pack_array(&m->pk, 4);
            msgpack_pack_uint8(&m->pk, 5);
            msgpack_pack_uint8(&m->pk, 3);
            msgpack_pack_uint8(&m->pk, 2);
            msgpack_pack_uint8(&m->pk, 1);
            break;
        }
    }
}

static const int t_order[5] = { 0, 1, 2, 3, 4 };

/* Decodes and expects ESC_INVALID with exactly `reason`. */
static void
t_expect_invalid(const void *buf, size_t len, const char *reason)
{
    struct esc_ack a;
    struct esc_error err;

    memset(&err, 0, sizeof(err));
    assert_int_equal(esc_ack_decode(buf, len, &a, &err), ESC_INVALID);
    assert_string_equal(err.text, reason);
    esc_ack_fini(&a);
}

static void
t_expect_bad_field(int bad, t_pack_fn fn, const char *reason)
{
    struct t_msg m;

    t_ack(&m, t_order, -1, bad, fn);
    t_expect_invalid(m.sb.data, m.sb.size, reason);
    t_end(&m);
}

/* ---------------------------------------------------------------------------------------------
 * Happy paths
 */

static void
test_ack_roundtrip(void **state)
{
    uint64_t seqs[] = { 12, 3, 4, 5, 11, 99, 4, 10, 100, UINT64_MAX };
    struct esc_ack a;
    struct esc_ack b;
    struct esc_error err;
    uint8_t prefix[ESC_ACK_PREFIX_MAX];
    size_t plen;
    size_t len;
    char *buf;

    (void)state;
    esc_ack_init(&a);
    a.collector = esc_strdup("c-4f9a0b1c2d3e4f50");
    a.ts = T_TS;
    assert_int_equal(esc_ack_set_seqs(&a, seqs, ESC_ARRAY_LEN(seqs)), 4);
    buf = esc_ack_encode(&a, &len);
    assert_int_equal(esc_ack_decode(buf, len, &b, &err), ESC_OK);
    assert_string_equal(b.collector, "c-4f9a0b1c2d3e4f50");
    assert_int_equal(b.ts, T_TS);
    assert_int_equal(b.n_ranges, 4);
    assert_int_equal(b.ranges[0].first, 3);
    assert_int_equal(b.ranges[0].n, 3);
    assert_int_equal(b.ranges[1].first, 10);
    assert_int_equal(b.ranges[1].n, 3);
    assert_int_equal(b.ranges[2].first, 99);
    assert_int_equal(b.ranges[2].n, 2);
    assert_true(b.ranges[3].first == UINT64_MAX);
    assert_int_equal(b.ranges[3].n, 1);
    /* every ack for the collector starts with its subscription prefix, and only its acks do */
    plen = esc_ack_prefix("c-4f9a0b1c2d3e4f50", prefix, sizeof(prefix));
    assert_true(plen > 0 && plen < len);
    assert_memory_equal(buf, prefix, plen);
    plen = esc_ack_prefix("c-4f9a0b1c2d3e4f5", prefix, sizeof(prefix));
    assert_memory_not_equal(buf, prefix, plen + 1);
    assert_int_equal(esc_ack_prefix("bad id", prefix, sizeof(prefix)), 0);
    esc_free(buf);
    esc_ack_fini(&a);
    esc_ack_fini(&b);
}

static void
test_ack_set_seqs_builds_ranges(void **state)
{
    uint64_t one[] = { 7 };
    uint64_t same[] = { 2, 2, 2 };
    uint64_t run[1000];
    struct esc_ack a;
    size_t i;

    (void)state;
    esc_ack_init(&a);
    assert_int_equal(esc_ack_set_seqs(&a, one, 0), 0);
    assert_null(a.ranges);
    assert_int_equal(esc_ack_set_seqs(&a, one, 1), 1);
    assert_int_equal(a.ranges[0].first, 7);
    assert_int_equal(a.ranges[0].n, 1);
    assert_int_equal(esc_ack_set_seqs(&a, same, 3), 1);
    assert_int_equal(a.ranges[0].n, 1);
    for (i = 0; i < 1000; i++) {
        run[i] = 1000 - i; /* reversed: 1..1000 */
    }
    assert_int_equal(esc_ack_set_seqs(&a, run, 1000), 1);
    assert_int_equal(a.ranges[0].first, 1);
    assert_int_equal(a.ranges[0].n, 1000);
    for (i = 0; i < 1000; i++) {
        run[i] = 2 * (uint64_t)i; /* every other: 1000 ranges */
    }
    assert_int_equal(esc_ack_set_seqs(&a, run, 1000), 1000);
    assert_int_equal(a.ranges[999].first, 1998);
    esc_ack_fini(&a);
}

static void
test_ack_refs(void **state)
{
    char ref[ESC_ACK_REF_MAX];
    char id[ESC_ACK_ID_MAX + 1];
    char long_id[ESC_ACK_ID_MAX + 8];
    uint64_t seq = 0;
    static const char *const bad[] = {
        "", ":", ":1", "c1", "c1:", "c1:x", "c1:1x", "c 1:2", "c1:-1", "c:1:2", "c1:+5",
        "c1:18446744073709551616", "c1: 5",
    };
    size_t i;

    (void)state;
    esc_ack_ref_format(ref, sizeof(ref), "c-9f_Z", UINT64_MAX);
    assert_string_equal(ref, "c-9f_Z:18446744073709551615");
    assert_int_equal(esc_ack_ref_parse(ref, id, sizeof(id), &seq), 0);
    assert_string_equal(id, "c-9f_Z");
    assert_true(seq == UINT64_MAX);
    assert_int_equal(esc_ack_ref_parse("a:0", id, sizeof(id), &seq), 0);
    assert_int_equal(seq, 0);
    for (i = 0; i < ESC_ARRAY_LEN(bad); i++) {
        assert_int_equal(esc_ack_ref_parse(bad[i], id, sizeof(id), &seq), -1);
    }
    assert_int_equal(esc_ack_ref_parse(NULL, id, sizeof(id), &seq), -1);
    memset(long_id, 'a', ESC_ACK_ID_MAX);
    long_id[ESC_ACK_ID_MAX] = '\0';
    assert_true(esc_ack_id_valid(long_id));
    esc_ack_ref_format(ref, sizeof(ref), long_id, 3);
    assert_int_equal(esc_ack_ref_parse(ref, id, sizeof(id), &seq), 0);
    assert_int_equal(esc_ack_ref_parse(ref, id, ESC_ACK_ID_MAX, &seq), -1); /* id buffer small */
    long_id[ESC_ACK_ID_MAX] = 'a';
    long_id[ESC_ACK_ID_MAX + 1] = '\0';
    assert_false(esc_ack_id_valid(long_id));
    assert_false(esc_ack_id_valid(""));
    assert_false(esc_ack_id_valid(NULL));
    assert_false(esc_ack_id_valid("a.b"));
}

static void
test_ack_decode_any_order_and_unknown_keys(void **state)
{
    static const int rev[5] = { 4, 3, 2, 1, 0 };
    struct t_msg m;
    struct esc_ack a;
    struct esc_error err;

    (void)state;
    t_ack(&m, rev, -1, -1, NULL);
    assert_int_equal(esc_ack_decode(m.sb.data, m.sb.size, &a, &err), ESC_OK);
    assert_string_equal(a.collector, "c1");
    assert_int_equal(a.n_ranges, 2);
    assert_int_equal(a.ranges[0].first, 5);
    assert_int_equal(a.ranges[0].n, 3);
    assert_int_equal(a.ranges[1].first, 10);
    assert_int_equal(a.ranges[1].n, 1);
    esc_ack_fini(&a);
    t_end(&m);

    /* unknown keys of every shape, nested, are skipped */
    t_begin(&m, 8);
    t_str(&m, "extra");
    msgpack_pack_map(&m.pk, 2);
    t_str(&m, "a");
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_double(&m.pk, 1.5);
    msgpack_pack_bin(&m.pk, 2);
    msgpack_pack_bin_body(&m.pk, "xy", 2);
    t_str(&m, "b");
    msgpack_pack_ext(&m.pk, 3, 7);
    msgpack_pack_ext_body(&m.pk, "abc", 3);
    t_str(&m, "id");
    t_str(&m, "c1");
    t_str(&m, "v");
    msgpack_pack_uint8(&m.pk, 1);
    t_str(&m, "more");
    msgpack_pack_true(&m.pk);
    t_str(&m, "type");
    t_str(&m, "ack");
    t_str(&m, "ts");
    msgpack_pack_int64(&m.pk, -5);
    t_str(&m, "r");
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_uint64(&m.pk, UINT64_MAX);
    msgpack_pack_uint8(&m.pk, 1);
    t_str(&m, "z");
    msgpack_pack_int8(&m.pk, -3);
    assert_int_equal(esc_ack_decode(m.sb.data, m.sb.size, &a, &err), ESC_OK);
    assert_int_equal(a.ts, -5);
    assert_true(a.ranges[0].first == UINT64_MAX);
    esc_ack_fini(&a);
    t_end(&m);
}

/* ---------------------------------------------------------------------------------------------
 * Rejections
 */

static void
t_v2(struct t_msg *m)
{
    msgpack_pack_uint8(&m->pk, 2);
}

static void
t_neg(struct t_msg *m)
{
    msgpack_pack_int8(&m->pk, -1);
}

static void
t_float(struct t_msg *m)
{
    msgpack_pack_double(&m->pk, 1.0);
}

static void
t_post(struct t_msg *m)
{
    t_str(m, "post");
}

static void
t_bad_id(struct t_msg *m)
{
    t_str(m, "c 1");
}

static void
t_empty_id(struct t_msg *m)
{
    t_str(m, "");
}

static void
t_big_ts(struct t_msg *m)
{
    msgpack_pack_uint64(&m->pk, UINT64_MAX);
}

static void
t_r_odd(struct t_msg *m)
{
    msgpack_pack_array(&m->pk, 3);
    msgpack_pack_uint8(&m->pk, 1);
    msgpack_pack_uint8(&m->pk, 1);
    msgpack_pack_uint8(&m->pk, 1);
}

static void
t_r_empty(struct t_msg *m)
{
    msgpack_pack_array(&m->pk, 0);
}

static void
t_r_zero(struct t_msg *m)
{
    msgpack_pack_array(&m->pk, 4);
    msgpack_pack_uint8(&m->pk, 1);
    msgpack_pack_uint8(&m->pk, 1);
    msgpack_pack_uint8(&m->pk, 1);
    msgpack_pack_uint8(&m->pk, 0);
}

static void
t_r_neg(struct t_msg *m)
{
    msgpack_pack_array(&m->pk, 2);
    msgpack_pack_uint8(&m->pk, 1);
    msgpack_pack_int8(&m->pk, -2);
}

static void
t_r_str(struct t_msg *m)
{
    msgpack_pack_array(&m->pk, 2);
    t_str(m, "1");
    msgpack_pack_uint8(&m->pk, 1);
}

static void
t_r_wrap(struct t_msg *m)
{
    msgpack_pack_array(&m->pk, 4);
    msgpack_pack_uint64(&m->pk, UINT64_MAX);
    msgpack_pack_uint8(&m->pk, 1); /* ends exactly at 2^64 */
    msgpack_pack_uint8(&m->pk, 0);
    msgpack_pack_uint8(&m->pk, 1);
}

static void
t_r_past(struct t_msg *m)
{
    msgpack_pack_array(&m->pk, 2);
    msgpack_pack_uint64(&m->pk, UINT64_MAX - 1);
    msgpack_pack_uint8(&m->pk, 3);
}

static void
t_r_map(struct t_msg *m)
{
    msgpack_pack_map(&m->pk, 0);
}

static void
test_ack_decode_rejects_fields(void **state)
{
    struct t_msg m;

    (void)state;
    t_expect_bad_field(1, t_v2, "unsupported schema version 2");
    t_expect_bad_field(1, t_neg, "unsupported schema version -1");
    t_expect_bad_field(1, t_float, "key 'v': expected int, got float");
    t_expect_bad_field(2, t_post, "not an ack message");
    t_expect_bad_field(2, t_neg, "key 'type': expected string, got negative int");
    t_expect_bad_field(0, t_bad_id, "key 'id': not a collector id (1 to 64 of [A-Za-z0-9_-])");
    t_expect_bad_field(0, t_empty_id, "key 'id': not a collector id (1 to 64 of [A-Za-z0-9_-])");
    t_expect_bad_field(0, t_float, "key 'id': expected string, got float");
    t_expect_bad_field(3, t_big_ts, "key 'ts': expected int64, got a larger int");
    t_expect_bad_field(3, t_post, "key 'ts': expected int64, got string");
    t_expect_bad_field(4, t_r_odd, "key 'r': odd number of elements (3)");
    t_expect_bad_field(4, t_r_empty, "key 'r': 0 ranges (want 1 to 32768)");
    t_expect_bad_field(4, t_r_zero, "key 'r': range 1: count 0");
    t_expect_bad_field(4, t_r_neg, "key 'r': element 1: expected uint, got negative int");
    t_expect_bad_field(4, t_r_str, "key 'r': element 0: expected uint, got string");
    t_expect_bad_field(4, t_r_wrap, "key 'r': range 1: beyond 2^64");
    t_expect_bad_field(4, t_r_past, "key 'r': range 0: beyond 2^64");
    t_expect_bad_field(4, t_r_map, "key 'r': expected array, got map");
    t_ack(&m, t_order, 0, -1, NULL);
    t_expect_invalid(m.sb.data, m.sb.size, "missing required key 'id'");
    t_end(&m);
    t_ack(&m, t_order, 4, -1, NULL);
    t_expect_invalid(m.sb.data, m.sb.size, "missing required key 'r'");
    t_end(&m);
    t_ack(&m, t_order, 1, -1, NULL);
    t_expect_invalid(m.sb.data, m.sb.size, "missing required key 'v'");
    t_end(&m);
}

static void
test_ack_decode_rejects_framing(void **state)
{
    static const uint8_t not_map[] = { 0x92, 0x01, 0x02 };
    static const uint8_t int_key[] = { 0x81, 0x01, 0x02 };
    static const uint8_t bad_byte[] = { 0x81, 0xc1, 0x02 };
    /* a map that claims 2^32-1 pairs in 5 bytes, an array 32 with 2^32-1 elements as "r" */
    static const uint8_t huge_map[] = { 0xdf, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t huge_r[] = { 0x81, 0xa1, 'r', 0xdd, 0x7f, 0xff, 0xff, 0xfe, 0x01 };
    static const uint8_t huge_unknown[] = { 0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t huge_str[] = { 0x81, 0xa1, 'x', 0xdb, 0xff, 0xff, 0xff, 0xff, 'a' };
    struct t_msg m;
    char *big;

    (void)state;
    t_expect_invalid(NULL, 0, "empty message");
    t_expect_invalid("", 0, "empty message");
    t_expect_invalid(not_map, sizeof(not_map), "not a map");
    t_expect_invalid(int_key, sizeof(int_key), "map key 0: expected string, got int");
    t_expect_invalid(bad_byte, sizeof(bad_byte), "malformed message");
    t_expect_invalid(huge_map, sizeof(huge_map), "truncated message");
    t_expect_invalid(huge_r, sizeof(huge_r), "key 'r': 1073741823 ranges (want 1 to 32768)");
    t_expect_invalid(huge_unknown, sizeof(huge_unknown), "truncated message");
    t_expect_invalid(huge_str, sizeof(huge_str), "truncated message");
    big = esc_calloc(1, ESC_MSG_MAX + 1);
    t_expect_invalid(big, ESC_MSG_MAX + 1, "message too large (1048577 > 1048576)");
    esc_free(big);

    t_ack(&m, t_order, -1, -1, NULL);
    msgpack_pack_uint8(&m.pk, 0);
    t_expect_invalid(m.sb.data, m.sb.size, "trailing bytes after message");
    t_end(&m);

    t_begin(&m, 2);
    t_str(&m, "id");
    t_str(&m, "c1");
    t_str(&m, "id");
    t_str(&m, "c2");
    t_expect_invalid(m.sb.data, m.sb.size, "duplicate key 'id'");
    t_end(&m);
}

/* Every proper prefix of a valid message is refused, and never read past. */
static void
test_ack_decode_truncated_everywhere(void **state)
{
    struct esc_ack a;
    struct esc_error err;
    struct esc_ack_range r[3] = { { 1, 1000 }, { 70000, 3 }, { UINT64_C(1) << 40, 9 } };
    size_t len;
    size_t cut;
    char *buf;

    (void)state;
    buf = esc_ack_encode_ranges("collector-7", T_TS, r, 3, &len);
    assert_int_equal(esc_ack_decode(buf, len, &a, &err), ESC_OK);
    assert_int_equal(a.n_ranges, 3);
    assert_true(a.ranges[2].first == UINT64_C(1) << 40);
    esc_ack_fini(&a);
    for (cut = 0; cut < len; cut++) {
        char *copy = esc_malloc(cut + 1); /* exact size: ASan catches a read past the cut */

        memcpy(copy, buf, cut);
        assert_int_equal(esc_ack_decode(copy, cut, &a, &err), ESC_INVALID);
        esc_ack_fini(&a);
        esc_free(copy);
    }
    esc_free(buf);
}

/* The largest message fits the bus limit and survives the trip. */
static void
test_ack_largest_message(void **state)
{
    struct esc_ack_range *r = esc_calloc(ESC_ACK_RANGES_MAX, sizeof(*r));
    struct esc_ack a;
    struct esc_error err;
    size_t len;
    size_t i;
    char *buf;

    (void)state;
    for (i = 0; i < ESC_ACK_RANGES_MAX; i++) {
        r[i].first = (UINT64_C(1) << 44) * (uint64_t)(i + 1); /* 9-byte gaps and counts */
        r[i].n = UINT64_C(1) << 40;
    }
    buf = esc_ack_encode_ranges("c1", T_TS, r, ESC_ACK_RANGES_MAX, &len);
    assert_true(len <= ESC_MSG_MAX);
    assert_int_equal(esc_ack_decode(buf, len, &a, &err), ESC_OK);
    assert_int_equal(a.n_ranges, ESC_ACK_RANGES_MAX);
    assert_true(a.ranges[ESC_ACK_RANGES_MAX - 1].first == r[ESC_ACK_RANGES_MAX - 1].first);
    esc_ack_fini(&a);
    esc_free(buf);
    esc_free(r);
}

/* Random buffers and random mutations of a valid message: ESC_OK or ESC_INVALID, nothing else,
 * and no memory error (this test is meant for the sanitizer build). */
static void
test_ack_decode_random_and_mutated(void **state)
{
    struct esc_ack_range r[2] = { { 3, 4 }, { 100, 1 } };
    struct esc_ack a;
    struct esc_error err;
    uint8_t buf[96];
    size_t len;
    char *good;
    int i;
    int ok = 0;

    (void)state;
    srand(4242);
    good = esc_ack_encode_ranges("c1", T_TS, r, 2, &len);
    assert_true(len <= sizeof(buf));
    for (i = 0; i < 20000; i++) {
        size_t n;
        size_t k;
        esc_rc rc;

        if (i % 2 == 0) {
            n = (size_t)rand() % sizeof(buf);
            for (k = 0; k < n; k++) {
                buf[k] = (uint8_t)rand();
            }
            if (n > 0 && i % 4 == 0) {
                buf[0] = (uint8_t)(0x80 | (rand() % 16)); /* mostly maps */
            }
        }
        else {
            n = len;
            memcpy(buf, good, len);
            for (k = 0; k < 1 + (size_t)rand() % 3; k++) {
                buf[(size_t)rand() % len] = (uint8_t)rand();
            }
        }
        rc = esc_ack_decode(buf, n, &a, &err);
        assert_true(rc == ESC_OK || rc == ESC_INVALID);
        ok += rc == ESC_OK;
        esc_ack_fini(&a);
    }
    assert_true(ok > 0); /* some mutations (the ts, a gap) still decode */
    esc_free(good);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ack_roundtrip),
        cmocka_unit_test(test_ack_set_seqs_builds_ranges),
        cmocka_unit_test(test_ack_refs),
        cmocka_unit_test(test_ack_decode_any_order_and_unknown_keys),
        cmocka_unit_test(test_ack_decode_rejects_fields),
        cmocka_unit_test(test_ack_decode_rejects_framing),
        cmocka_unit_test(test_ack_decode_truncated_everywhere),
        cmocka_unit_test(test_ack_largest_message),
        cmocka_unit_test(test_ack_decode_random_and_mutated),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
