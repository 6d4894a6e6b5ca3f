#define ESC_LOG_MODULE "ack"
/* The "ack" message (escucha/esc_ack.h, docs/delivery.md): encoder, decoder, the subscription
 * prefix of a collector, and the "<collector id>:<seq>" references posts carry.
 * The format is small and fixed, so both directions are written by hand over the msgpack byte
 * format instead of msgpack-c: the encoder must put the collector id at a fixed place (the
 * collectors' SUB sockets filter on the first bytes), and the decoder reads the input once,
 * checking every length against the bytes that are really there before using it, so a hostile
 * header can never make it allocate or loop more than the input's size allows.
 * No global state: safe from any thread. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escucha/esc_ack.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define S_VERSION 1
#define S_KEYS 5 /* id, v, type, ts, r */

/* ---------------------------------------------------------------------------------------------
 * Identities and references
 */

void
esc_ack_init(struct esc_ack *a)
{
    memset(a, 0, sizeof(*a));
}

void
esc_ack_fini(struct esc_ack *a)
{
    if (a == NULL) {
        return;
    }
    esc_free(a->collector);
    esc_free(a->ranges);
    esc_ack_init(a);
}

static bool
s_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
           || c == '-';
}

static bool
s_id_valid_n(const char *id, size_t n)
{
    size_t i;

    if (n == 0 || n > ESC_ACK_ID_MAX) {
        return false;
    }
    for (i = 0; i < n; i++) {
        if (!s_id_char(id[i])) {
            return false;
        }
    }
    return true;
}

bool
esc_ack_id_valid(const char *id)
{
    return id != NULL && s_id_valid_n(id, strnlen(id, ESC_ACK_ID_MAX + 1));
}

char *
esc_ack_ref_format(char *out, size_t outsz, const char *id, uint64_t seq)
{
    snprintf(out, outsz, "%s:%" PRIu64, id, seq);
    return out;
}

int
esc_ack_ref_parse(const char *ref, char *id, size_t idsz, uint64_t *seq)
{
    const char *colon;
    const char *d;
    uint64_t v = 0;
    size_t n;

    if (ref == NULL) {
        return -1;
    }
    colon = strrchr(ref, ':');
    if (colon == NULL) {
        return -1;
    }
    n = (size_t)(colon - ref);
    if (!s_id_valid_n(ref, n) || n >= idsz || colon[1] == '\0') {
        return -1;
    }
    for (d = colon + 1; *d != '\0'; d++) {
        if (*d < '0' || *d > '9' || v > (UINT64_MAX - (uint64_t)(*d - '0')) / 10) {
            return -1;
        }
        v = v * 10 + (uint64_t)(*d - '0');
    }
    memcpy(id, ref, n);
    id[n] = '\0';
    *seq = v;
    return 0;
}

static int
s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return x < y ? -1 : (x > y ? 1 : 0);
}

size_t
esc_ack_set_seqs(struct esc_ack *a, uint64_t *seqs, size_t n)
{
    size_t i;
    size_t k = 0;

    ESC_FREE(a->ranges);
    a->n_ranges = 0;
    if (n == 0) {
        return 0;
    }
    qsort(seqs, n, sizeof(*seqs), s_cmp_u64);
    for (i = 1; i < n; i++) {
        k += seqs[i] > seqs[i - 1] + 1 || seqs[i - 1] == UINT64_MAX ? 1 : 0;
    }
    a->ranges = esc_calloc(k + 1, sizeof(*a->ranges));
    a->ranges[0].first = seqs[0];
    a->ranges[0].n = 1;
    k = 0;
    for (i = 1; i < n; i++) {
        struct esc_ack_range *r = &a->ranges[k];

        if (seqs[i] == seqs[i - 1]) {
            continue; /* a post noted twice */
        }
        if (seqs[i] == r->first + r->n) {
            r->n++;
            continue;
        }
        k++;
        a->ranges[k].first = seqs[i];
        a->ranges[k].n = 1;
    }
    a->n_ranges = k + 1;
    return a->n_ranges;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding
 */

struct s_out {
    uint8_t *data;
    size_t len;
    size_t cap;
};

static void
s_put(struct s_out *o, const void *p, size_t n)
{
    if (o->cap - o->len < n) {
        size_t cap = o->cap > 0 ? o->cap : 128;

        while (cap - o->len < n) {
            cap *= 2;
        }
        o->data = esc_realloc(o->data, cap);
        o->cap = cap;
    }
    memcpy(o->data + o->len, p, n);
    o->len += n;
}

static void
s_put_be(struct s_out *o, uint8_t tag, uint64_t v, unsigned width)
{
    uint8_t b[9];
    unsigned i;

    b[0] = tag;
    for (i = 0; i < width; i++) {
        b[1 + i] = (uint8_t)(v >> (8 * (width - 1 - i)));
    }
    s_put(o, b, 1 + width);
}

static void
s_put_uint(struct s_out *o, uint64_t v)
{
    uint8_t b = (uint8_t)v;

    if (v <= 0x7f) {
        s_put(o, &b, 1);
    }
    else if (v <= 0xff) {
        s_put_be(o, 0xcc, v, 1);
    }
    else if (v <= 0xffff) {
        s_put_be(o, 0xcd, v, 2);
    }
    else if (v <= 0xffffffffu) {
        s_put_be(o, 0xce, v, 4);
    }
    else {
        s_put_be(o, 0xcf, v, 8);
    }
}

static void
s_put_str(struct s_out *o, const char *s)
{
    size_t n = strlen(s);
    uint8_t b = (uint8_t)(0xa0 | n);

    ESC_ASSERT(n <= 0xff);
    if (n <= 31) {
        s_put(o, &b, 1);
    }
    else {
        s_put_be(o, 0xd9, n, 1);
    }
    s_put(o, s, n);
}

/* The fixed head: map header, "id" and the collector id. */
static void
s_put_head(struct s_out *o, const char *collector)
{
    uint8_t m = 0x80 | S_KEYS;

    s_put(o, &m, 1);
    s_put_str(o, "id");
    s_put_str(o, collector);
}

char *
esc_ack_encode_ranges(const char *collector, int64_t ts, const struct esc_ack_range *r,
                      size_t n, size_t *len)
{
    struct s_out o = { NULL, 0, 0 };
    uint64_t end = 0;
    size_t i;

    ESC_ASSERT(esc_ack_id_valid(collector));
    ESC_ASSERT(n >= 1 && n <= ESC_ACK_RANGES_MAX);
    s_put_head(&o, collector);
    s_put_str(&o, "v");
    s_put_uint(&o, S_VERSION);
    s_put_str(&o, "type");
    s_put_str(&o, "ack");
    s_put_str(&o, "ts");
    if (ts >= 0) {
        s_put_uint(&o, (uint64_t)ts);
    }
    else {
        s_put_be(&o, 0xd3, (uint64_t)ts, 8);
    }
    s_put_str(&o, "r");
    s_put_be(&o, 0xdd, 2 * n, 4);
    for (i = 0; i < n; i++) {
        ESC_ASSERT(r[i].n >= 1 && r[i].first >= end && r[i].n - 1 <= UINT64_MAX - r[i].first);
        s_put_uint(&o, r[i].first - end);
        s_put_uint(&o, r[i].n);
        end = r[i].first + r[i].n; /* may wrap to 0 only on the very last range */
    }
    *len = o.len;
    return (char *)o.data;
}

char *
esc_ack_encode(const struct esc_ack *a, size_t *len)
{
    return esc_ack_encode_ranges(a->collector, a->ts, a->ranges, a->n_ranges, len);
}

size_t
esc_ack_prefix(const char *collector, void *out, size_t outsz)
{
    struct s_out o = { NULL, 0, 0 };
    size_t n;

    if (!esc_ack_id_valid(collector)) {
        return 0;
    }
    s_put_head(&o, collector);
    ESC_ASSERT(o.len <= outsz);
    memcpy(out, o.data, o.len);
    n = o.len;
    esc_free(o.data);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding
 */

enum s_kind { S_NIL, S_BOOL, S_UINT, S_NINT, S_FLOAT, S_STR, S_BIN, S_EXT, S_ARRAY, S_MAP };

struct s_in {
    const uint8_t *p;
    size_t len;
    size_t off;
};

/* One msgpack header. Strings, bin and ext are consumed with their body (s/n point at it);
 * arrays and maps give their element count in n (the elements follow). */
struct s_val {
    enum s_kind kind;
    uint64_t u;      /* S_UINT value */
    int64_t i;       /* S_NINT value */
    const char *s;   /* S_STR / S_BIN / S_EXT body */
    uint64_t n;      /* body bytes, or array elements / map pairs */
};

static const char *const s_kind_names[] = {
    [S_NIL] = "nil",     [S_BOOL] = "bool", [S_UINT] = "int",   [S_NINT] = "negative int",
    [S_FLOAT] = "float", [S_STR] = "string", [S_BIN] = "bin",   [S_EXT] = "ext",
    [S_ARRAY] = "array", [S_MAP] = "map",
};

enum { S_RD_OK = 0, S_RD_TRUNC = -1, S_RD_BAD = -2 };

static int
s_take(struct s_in *in, size_t n, const uint8_t **p)
{
    if (in->len - in->off < n) {
        return S_RD_TRUNC;
    }
    *p = in->p + in->off;
    in->off += n;
    return S_RD_OK;
}

static int
s_take_be(struct s_in *in, unsigned width, uint64_t *v)
{
    const uint8_t *p;
    unsigned i;

    if (s_take(in, width, &p) != S_RD_OK) {
        return S_RD_TRUNC;
    }
    *v = 0;
    for (i = 0; i < width; i++) {
        *v = (*v << 8) | p[i];
    }
    return S_RD_OK;
}

/* Reads the body of a string/bin/ext of n bytes. */
static int
s_take_body(struct s_in *in, struct s_val *v, enum s_kind kind, uint64_t n)
{
    const uint8_t *p;

    v->kind = kind;
    v->n = n;
    if (n > in->len - in->off) {
        return S_RD_TRUNC;
    }
    if (s_take(in, (size_t)n, &p) != S_RD_OK) {
        return S_RD_TRUNC;
    }
    v->s = (const char *)p;
    return S_RD_OK;
}

static int
s_read(struct s_in *in, struct s_val *v)
{
    const uint8_t *p;
    uint64_t n = 0;
    uint8_t b;

    memset(v, 0, sizeof(*v));
    if (s_take(in, 1, &p) != S_RD_OK) {
        return S_RD_TRUNC;
    }
    b = p[0];
    if (b <= 0x7f) {
        v->kind = S_UINT;
        v->u = b;
        return S_RD_OK;
    }
    if (b >= 0xe0) {
        v->kind = S_NINT;
        v->i = (int8_t)b;
        return S_RD_OK;
    }
    if (b <= 0x8f || (b >= 0x90 && b <= 0x9f)) {
        v->kind = b <= 0x8f ? S_MAP : S_ARRAY;
        v->n = b & 0x0f;
        return S_RD_OK;
    }
    if (b <= 0xbf) {
        return s_take_body(in, v, S_STR, b & 0x1f);
    }
    switch (b) {
    case 0xc0:
        v->kind = S_NIL;
        return S_RD_OK;
    case 0xc2:
    case 0xc3:
        v->kind = S_BOOL;
        return S_RD_OK;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        if (s_take_be(in, 1u << (b - 0xc4), &n) != S_RD_OK) {
            return S_RD_TRUNC;
        }
        return s_take_body(in, v, S_BIN, n);
    case 0xc7:
    case 0xc8:
    case 0xc9:
        if (s_take_be(in, 1u << (b - 0xc7), &n) != S_RD_OK) {
            return S_RD_TRUNC;
        }
        return s_take_body(in, v, S_EXT, n + 1); /* the type byte, then the data */
    case 0xca:
    case 0xcb:
        v->kind = S_FLOAT;
        return s_take(in, b == 0xca ? 4 : 8, &p);
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        v->kind = S_UINT;
        return s_take_be(in, 1u << (b - 0xcc), &v->u);
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        unsigned width = 1u << (b - 0xd0);

        if (s_take_be(in, width, &n) != S_RD_OK) {
            return S_RD_TRUNC;
        }
        if (width < 8 && (n >> (8 * width - 1)) != 0) {
            n |= ~UINT64_C(0) << (8 * width); /* sign-extend */
        }
        memcpy(&v->i, &n, sizeof(v->i));
        if (v->i >= 0) {
            v->kind = S_UINT;
            v->u = (uint64_t)v->i;
        }
        else {
            v->kind = S_NINT;
        }
        return S_RD_OK;
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        return s_take_body(in, v, S_EXT, 1 + (1u << (b - 0xd4)));
    case 0xd9:
    case 0xda:
    case 0xdb:
        if (s_take_be(in, 1u << (b - 0xd9), &n) != S_RD_OK) {
            return S_RD_TRUNC;
        }
        return s_take_body(in, v, S_STR, n);
    case 0xdc:
    case 0xdd:
    case 0xde:
    case 0xdf:
        v->kind = b <= 0xdd ? S_ARRAY : S_MAP;
        return s_take_be(in, b == 0xdc || b == 0xde ? 2 : 4, &v->n);
    default:
        return S_RD_BAD; /* 0xc1, never used */
    }
}

/* Skips the children of v (already read), however deeply nested. Every element takes at least
 * one byte, so more pending elements than bytes left proves the input truncated. */
static int
s_skip_children(struct s_in *in, const struct s_val *v)
{
    uint64_t pending = v->kind == S_ARRAY ? v->n : (v->kind == S_MAP ? 2 * v->n : 0);
    struct s_val c;
    int rc;

    while (pending > 0) {
        if (pending > in->len - in->off) {
            return S_RD_TRUNC;
        }
        rc = s_read(in, &c);
        if (rc != S_RD_OK) {
            return rc;
        }
        pending--;
        pending += c.kind == S_ARRAY ? c.n : (c.kind == S_MAP ? 2 * c.n : 0);
    }
    return S_RD_OK;
}

static esc_rc
s_rd_fail(struct esc_error *err, int rc)
{
    esc_error_set(err, 0, rc == S_RD_TRUNC ? "truncated message" : "malformed message");
    return ESC_INVALID;
}

static int
s_is(const struct s_val *v, const char *s)
{
    size_t n = strlen(s);

    return v->kind == S_STR && v->n == n && memcmp(v->s, s, n) == 0;
}

/* Reads the range array ("r": an array header already read into v). */
static esc_rc
s_read_ranges(struct s_in *in, const struct s_val *v, struct esc_ack *out, struct esc_error *err)
{
    struct s_val g;
    struct s_val c;
    uint64_t end = 0;
    int wrapped = 0;
    size_t i;
    int rc;

    if (v->n % 2 != 0) {
        esc_error_set(err, 0, "key 'r': odd number of elements (%" PRIu64 ")", v->n);
        return ESC_INVALID;
    }
    if (v->n == 0 || v->n / 2 > ESC_ACK_RANGES_MAX) {
        esc_error_set(err, 0, "key 'r': %" PRIu64 " ranges (want 1 to %d)", v->n / 2, ESC_ACK_RANGES_MAX);
        return ESC_INVALID;
    }
    if (v->n > in->len - in->off) {
        return s_rd_fail(err, S_RD_TRUNC); /* checked before allocating for them */
    }
    out->ranges = esc_calloc((size_t)(v->n / 2), sizeof(*out->ranges));
    for (i = 0; i < v->n / 2; i++) {
        rc = s_read(in, &g);
        if (rc == S_RD_OK) {
            rc = s_read(in, &c);
        }
        if (rc != S_RD_OK) {
            return s_rd_fail(err, rc);
        }
        if (g.kind != S_UINT || c.kind != S_UINT) {
            const struct s_val *bad = g.kind != S_UINT ? &g : &c;

            esc_error_set(err, 0, "key 'r': element %zu: expected uint, got %s", 2 * i + (bad == &c ? 1 : 0),
                  s_kind_names[bad->kind]);
            return ESC_INVALID;
        }
        if (c.u == 0) {
            esc_error_set(err, 0, "key 'r': range %zu: count 0", i);
            return ESC_INVALID;
        }
        if (wrapped || g.u > UINT64_MAX - end || c.u - 1 > UINT64_MAX - (end + g.u)) {
            esc_error_set(err, 0, "key 'r': range %zu: beyond 2^64", i);
            return ESC_INVALID;
        }
        out->ranges[i].first = end + g.u;
        out->ranges[i].n = c.u;
        end = out->ranges[i].first + c.u;
        wrapped = end == 0; /* the range ended exactly at 2^64: nothing can follow it */
        out->n_ranges++;
    }
    return ESC_OK;
}

esc_rc
esc_ack_decode(const void *buf, size_t len, struct esc_ack *out, struct esc_error *err)
{
    struct s_in in = { buf, len, 0 };
    struct s_val m;
    struct s_val k;
    struct s_val v;
    unsigned seen = 0; /* bits: id, v, type, ts, r */
    static const char *const names[S_KEYS] = { "id", "v", "type", "ts", "r" };
    uint64_t i;
    int bit;
    int rc;

    esc_ack_init(out);
    if (len > ESC_MSG_MAX) {
        esc_error_set(err, 0, "message too large (%zu > %d)", len, ESC_MSG_MAX);
        return ESC_INVALID;
    }
    if (len == 0 || buf == NULL) {
        esc_error_set(err, 0, "empty message");
        return ESC_INVALID;
    }
    rc = s_read(&in, &m);
    if (rc != S_RD_OK) {
        return s_rd_fail(err, rc);
    }
    if (m.kind != S_MAP) {
        esc_error_set(err, 0, "not a map");
        return ESC_INVALID;
    }
    for (i = 0; i < m.n; i++) {
        if (2 * (m.n - i) > in.len - in.off) {
            return s_rd_fail(err, S_RD_TRUNC);
        }
        rc = s_read(&in, &k);
        if (rc != S_RD_OK) {
            return s_rd_fail(err, rc);
        }
        if (k.kind != S_STR) {
            esc_error_set(err, 0, "map key %" PRIu64 ": expected string, got %s", i, s_kind_names[k.kind]);
            return ESC_INVALID;
        }
        rc = s_read(&in, &v);
        if (rc != S_RD_OK) {
            return s_rd_fail(err, rc);
        }
        for (bit = 0; bit < S_KEYS && !s_is(&k, names[bit]); bit++) {
        }
        if (bit == S_KEYS) {
            rc = s_skip_children(&in, &v); /* unknown key: ignored */
            if (rc != S_RD_OK) {
                return s_rd_fail(err, rc);
            }
            continue;
        }
        if (seen & (1u << bit)) {
            esc_error_set(err, 0, "duplicate key '%s'", names[bit]);
            return ESC_INVALID;
        }
        seen |= 1u << bit;
        switch (bit) {
        case 0: /* id */
            if (v.kind != S_STR) {
                esc_error_set(err, 0, "key 'id': expected string, got %s", s_kind_names[v.kind]);
                return ESC_INVALID;
            }
            if (!s_id_valid_n(v.s, (size_t)v.n)) {
                esc_error_set(err, 0, "key 'id': not a collector id (1 to %d of [A-Za-z0-9_-])",
                      ESC_ACK_ID_MAX);
                return ESC_INVALID;
            }
            out->collector = esc_strndup(v.s, (size_t)v.n);
            break;
        case 1: /* v */
            if (v.kind != S_UINT && v.kind != S_NINT) {
                esc_error_set(err, 0, "key 'v': expected int, got %s", s_kind_names[v.kind]);
                return ESC_INVALID;
            }
            if (v.kind != S_UINT || v.u != S_VERSION) {
                esc_error_set(err, 0, "unsupported schema version %" PRId64,
                      v.kind == S_UINT ? (int64_t)(v.u > INT64_MAX ? INT64_MAX : v.u) : v.i);
                return ESC_INVALID;
            }
            break;
        case 2: /* type */
            if (v.kind != S_STR) {
                esc_error_set(err, 0, "key 'type': expected string, got %s", s_kind_names[v.kind]);
                return ESC_INVALID;
            }
            if (!s_is(&v, "ack")) {
                esc_error_set(err, 0, "not an ack message");
                return ESC_INVALID;
            }
            break;
        case 3: /* ts */
            if (v.kind == S_NINT) {
                out->ts = v.i;
            }
            else if (v.kind == S_UINT && v.u <= INT64_MAX) {
                out->ts = (int64_t)v.u;
            }
            else {
                esc_error_set(err, 0, "key 'ts': expected int64, got %s",
                      v.kind == S_UINT ? "a larger int" : s_kind_names[v.kind]);
                return ESC_INVALID;
            }
            break;
        default: /* r */
            if (v.kind != S_ARRAY) {
                esc_error_set(err, 0, "key 'r': expected array, got %s", s_kind_names[v.kind]);
                return ESC_INVALID;
            }
            if (s_read_ranges(&in, &v, out, err) != ESC_OK) {
                return ESC_INVALID;
            }
            break;
        }
    }
    if (in.off != in.len) {
        esc_error_set(err, 0, "trailing bytes after message");
        return ESC_INVALID;
    }
    for (bit = 0; bit < S_KEYS; bit++) {
        if (!(seen & (1u << bit))) {
            esc_error_set(err, 0, "missing required key '%s'", names[bit]);
            return ESC_INVALID;
        }
    }
    return ESC_OK;
}
