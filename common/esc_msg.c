#define ESC_LOG_MODULE "msg"
/* Bus message codecs: struct esc_post / struct esc_alert <-> msgpack, using msgpack-c's C API.
 * This is the only file that sees msgpack_object; every service decodes once, at the edge.
 * One field table per message kind drives both the encoder and the decoder, so the wire format
 * below and the code cannot drift apart. No global state: safe to call from any thread. */

/* Wire format, schema version ESC_MSG_VERSION = 1: one msgpack map with string keys.
 *
 *   every message  v (uint, == ESC_MSG_VERSION), type ("post"|"classified"|"alert"), id (str),
 *                  ts (int, Unix ms: ingested_at for posts, raise time for alerts)     required
 *   post           platform (str), text (str, <= ESC_POST_TEXT_MAX bytes),
 *                  created_at (int, Unix ms)                                           required
 *                  source, author, author_name, lang, url (str); followers, likes, reposts,
 *                  replies (int); hashtags, mentions (array of str, <= ESC_POST_LIST_MAX);
 *                  ack (str, <= 160 bytes: "<collector id>:<seq>", docs/delivery.md)
 *   classified     every post key, plus topics (array of str, required, may be empty),
 *                  language (str), sentiment (float64; ints accepted)
 *   alert          team, topic (str)                                                   required
 *                  topic_name, kind (str); window_start, window_end, observed (int);
 *                  expected, score (float64; ints accepted);
 *                  samples (array of str, <= ESC_POST_LIST_MAX, each <= ESC_POST_TEXT_MAX),
 *                  sample_authors, sample_urls, terms (arrays of str), query (str)
 *
 * Encoding: ints are written always, NULL optional strings and empty optional lists are left
 * out; a NULL required string is a producer bug (ESC_ASSERT). A "post" carries no classifier
 * keys. Decoding: absent optional keys become NULL / 0; unknown keys are ignored (also the
 * classifier keys of a plain "post"). Rejected with ESC_INVALID and the reason in err->text:
 * more than ESC_MSG_MAX bytes, empty, truncated, trailing bytes, top level not a map, a
 * non-string key, a known key twice, a wrong version, a missing required key, a wrong value
 * type (a float where an int belongs, NaN), ints beyond int64, strings holding NUL, texts and
 * lists over their limits, nesting deeper than msgpack-c's 32 levels. UTF-8 is not validated
 * here: the classifier repairs it.
 *
 * Batch frame (esc_batch_*, at the end of this file): a map {v: 1, type: "batch", msgs: [bin]},
 * each bin one message encoded as above. It is a container, not a message: no id or ts. Its
 * reader checks the frame (size, version, keys, trailing bytes) and hands out each bin's bytes
 * without copying; a bad element is reported with its index and the others are still read. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

/* ---------------------------------------------------------------------------------------------
 * Field tables
 */

enum s_kind {
    S_STR,  /* char * */
    S_INT,  /* int64_t */
    S_NUM,  /* double: float32/float64 or any int */
    S_LIST, /* char ** + size_t count */
};

#define S_BIT(t) (1u << (t))
#define S_ALL (S_BIT(ESC_MSG_POST) | S_BIT(ESC_MSG_CLASSIFIED) | S_BIT(ESC_MSG_ALERT))
#define S_POSTS (S_BIT(ESC_MSG_POST) | S_BIT(ESC_MSG_CLASSIFIED))

struct s_field {
    const char *key;
    size_t key_len;    /* strlen(key), so that neither codec measures it per message */
    enum s_kind kind;
    unsigned types;    /* message types that carry the key (S_BIT mask) */
    unsigned required; /* message types where it must be present */
    size_t off;        /* offset of the value in the struct */
    size_t n_off;      /* S_LIST: offset of the count */
    size_t max;        /* S_STR / S_LIST elements: longest string in bytes, 0 = no own limit */
};

#define S_P(k, kind, types, req, field, max)                                                       \
    { k, sizeof(k) - 1, kind, types, req, offsetof(struct esc_post, field), 0, max }
#define S_PL(k, types, req, field, nfield)                                                         \
    {                                                                                              \
        k, sizeof(k) - 1, S_LIST, types, req, offsetof(struct esc_post, field),                    \
            offsetof(struct esc_post, nfield), 0                                                   \
    }
#define S_A(k, kind, req, field, max)                                                              \
    { k, sizeof(k) - 1, kind, S_ALL, req, offsetof(struct esc_alert, field), 0, max }
#define S_AL(k, field, nfield, max)                                                                \
    {                                                                                              \
        k, sizeof(k) - 1, S_LIST, S_ALL, 0, offsetof(struct esc_alert, field),                     \
            offsetof(struct esc_alert, nfield), max                                                \
    }

static const struct s_field s_post_fields[] = {
    S_P("id", S_STR, S_POSTS, S_POSTS, id, 0),
    S_P("ts", S_INT, S_POSTS, S_POSTS, ingested_at, 0),
    S_P("platform", S_STR, S_POSTS, S_POSTS, platform, 0),
    S_P("source", S_STR, S_POSTS, 0, source, 0),
    S_P("author", S_STR, S_POSTS, 0, author, 0),
    S_P("author_name", S_STR, S_POSTS, 0, author_name, 0),
    S_P("followers", S_INT, S_POSTS, 0, followers, 0),
    S_P("text", S_STR, S_POSTS, S_POSTS, text, ESC_POST_TEXT_MAX),
    S_P("lang", S_STR, S_POSTS, 0, lang, 0),
    S_P("url", S_STR, S_POSTS, 0, url, 0),
    S_P("created_at", S_INT, S_POSTS, S_POSTS, created_at, 0),
    S_P("likes", S_INT, S_POSTS, 0, likes, 0),
    S_P("reposts", S_INT, S_POSTS, 0, reposts, 0),
    S_P("replies", S_INT, S_POSTS, 0, replies, 0),
    S_PL("hashtags", S_POSTS, 0, hashtags, n_hashtags),
    S_PL("mentions", S_POSTS, 0, mentions, n_mentions),
    S_P("ack", S_STR, S_POSTS, 0, ack_ref, 160),
    S_PL("topics", S_BIT(ESC_MSG_CLASSIFIED), S_BIT(ESC_MSG_CLASSIFIED), topics, n_topics),
    S_P("language", S_STR, S_BIT(ESC_MSG_CLASSIFIED), 0, language, 0),
    S_P("sentiment", S_NUM, S_BIT(ESC_MSG_CLASSIFIED), 0, sentiment, 0),
};

static const struct s_field s_alert_fields[] = {
    S_A("id", S_STR, S_ALL, id, 0),
    S_A("ts", S_INT, S_ALL, ts, 0),
    S_A("team", S_STR, S_ALL, team, 0),
    S_A("topic", S_STR, S_ALL, topic, 0),
    S_A("topic_name", S_STR, 0, topic_name, 0),
    S_A("kind", S_STR, 0, kind, 0),
    S_A("window_start", S_INT, 0, window_start, 0),
    S_A("window_end", S_INT, 0, window_end, 0),
    S_A("observed", S_INT, 0, observed, 0),
    S_A("expected", S_NUM, 0, expected, 0),
    S_A("score", S_NUM, 0, score, 0),
    S_AL("samples", samples, n_samples, ESC_POST_TEXT_MAX),
    S_AL("sample_authors", sample_authors, n_sample_authors, 1024),
    S_AL("sample_urls", sample_urls, n_sample_urls, 4096),
    S_AL("terms", terms, n_terms, 256),
    S_A("query", S_STR, 0, query, ESC_POST_TEXT_MAX),
};

/* The decoder tracks seen keys in a 64-bit mask. */
_Static_assert(ESC_ARRAY_LEN(s_post_fields) <= 64, "too many post fields");
_Static_assert(ESC_ARRAY_LEN(s_alert_fields) <= 64, "too many alert fields");

static const char *const s_type_names[] = {
    [ESC_MSG_UNKNOWN] = "unknown",
    [ESC_MSG_POST] = "post",
    [ESC_MSG_CLASSIFIED] = "classified",
    [ESC_MSG_ALERT] = "alert",
};
static const size_t s_type_lens[] = {
    [ESC_MSG_UNKNOWN] = sizeof("unknown") - 1,
    [ESC_MSG_POST] = sizeof("post") - 1,
    [ESC_MSG_CLASSIFIED] = sizeof("classified") - 1,
    [ESC_MSG_ALERT] = sizeof("alert") - 1,
};

static char **
s_str_at(void *obj, size_t off)
{
    return (char **)((char *)obj + off);
}

static int64_t *
s_int_at(void *obj, size_t off)
{
    return (int64_t *)((char *)obj + off);
}

static double *
s_num_at(void *obj, size_t off)
{
    return (double *)((char *)obj + off);
}

static char ***
s_list_at(void *obj, size_t off)
{
    return (char ***)((char *)obj + off);
}

static size_t *
s_count_at(void *obj, size_t off)
{
    return (size_t *)((char *)obj + off);
}

/* Read-only twins of the accessors above, for the encoder. */
static const char *
s_get_str(const void *obj, size_t off)
{
    return *(const char *const *)((const char *)obj + off);
}

static int64_t
s_get_int(const void *obj, size_t off)
{
    return *(const int64_t *)((const char *)obj + off);
}

static double
s_get_num(const void *obj, size_t off)
{
    return *(const double *)((const char *)obj + off);
}

static char *const *
s_get_list(const void *obj, size_t off)
{
    return *(char **const *)((const char *)obj + off);
}

static size_t
s_get_count(const void *obj, size_t off)
{
    return *(const size_t *)((const char *)obj + off);
}

/* ---------------------------------------------------------------------------------------------
 * Structs and string lists
 */

void
esc_post_init(struct esc_post *p)
{
    memset(p, 0, sizeof(*p));
}

void
esc_post_fini(struct esc_post *p)
{
    size_t i;

    if (p == NULL) {
        return;
    }
    for (i = 0; i < ESC_ARRAY_LEN(s_post_fields); i++) {
        const struct s_field *f = &s_post_fields[i];

        if (f->kind == S_STR) {
            ESC_FREE(*s_str_at(p, f->off));
        }
        else if (f->kind == S_LIST) {
            esc_strlist_free(s_list_at(p, f->off), s_count_at(p, f->n_off));
        }
    }
    esc_post_init(p);
}

void
esc_alert_init(struct esc_alert *a)
{
    memset(a, 0, sizeof(*a));
}

void
esc_alert_fini(struct esc_alert *a)
{
    size_t i;

    if (a == NULL) {
        return;
    }
    for (i = 0; i < ESC_ARRAY_LEN(s_alert_fields); i++) {
        const struct s_field *f = &s_alert_fields[i];

        if (f->kind == S_STR) {
            ESC_FREE(*s_str_at(a, f->off));
        }
        else if (f->kind == S_LIST) {
            esc_strlist_free(s_list_at(a, f->off), s_count_at(a, f->n_off));
        }
    }
    esc_alert_init(a);
}

/* A NULL string is refused like a full list (-1), so callers can push optional values. */
int
esc_strlist_push(char ***list, size_t *n, const char *s)
{
    ESC_ASSERT(list != NULL && n != NULL);
    if (s == NULL || *n >= ESC_POST_LIST_MAX) {
        return -1;
    }
    *list = esc_realloc(*list, (*n + 1) * sizeof(**list));
    (*list)[*n] = esc_strdup(s);
    (*n)++;
    return 0;
}

void
esc_strlist_free(char ***list, size_t *n)
{
    size_t i;

    if (list == NULL || *list == NULL) {
        if (n != NULL) {
            *n = 0;
        }
        return;
    }
    for (i = 0; n != NULL && i < *n; i++) {
        esc_free((*list)[i]);
    }
    ESC_FREE(*list);
    if (n != NULL) {
        *n = 0;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Encoding
 */

/* The packer writes straight into an esc_realloc'd buffer: the result is esc_free-able by the
 * caller and, since esc_realloc never fails, no pack call can fail either. */
struct s_wbuf {
    char *data;
    size_t len;
    size_t cap;
};

static int
s_wbuf_write(void *data, const char *buf, size_t len)
{
    struct s_wbuf *w = data;

    if (w->cap - w->len < len) {
        size_t cap = w->cap ? w->cap : 1024; /* most messages fit at once */

        while (cap - w->len < len) {
            cap *= 2;
        }
        w->data = esc_realloc(w->data, cap);
        w->cap = cap;
    }
    memcpy(w->data + w->len, buf, len);
    w->len += len;
    return 0;
}

static void
s_pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void
s_pack_str(msgpack_packer *pk, const char *s)
{
    s_pack_strn(pk, s, strlen(s));
}

/* True when the encoder writes field f of obj for a message of type t. */
static int
s_field_present(const struct s_field *f, const void *obj, enum esc_msg_type t)
{
    if ((f->types & S_BIT(t)) == 0) {
        return 0;
    }
    if (f->kind == S_STR && s_get_str(obj, f->off) == NULL) {
        /* A required string that is NULL is a bug in the producer, not bad input. */
        ESC_ASSERT((f->required & S_BIT(t)) == 0);
        return 0;
    }
    if (f->kind == S_LIST && s_get_count(obj, f->n_off) == 0) {
        return (f->required & S_BIT(t)) != 0;
    }
    return 1;
}

/* Encodes obj into w (its data and cap may come from an earlier message; len is set to 0). */
static void
s_encode(const struct s_field *fields, size_t n_fields, const void *obj, enum esc_msg_type t,
         struct s_wbuf *w)
{
    msgpack_packer pk;
    size_t i, j, count = 2; /* v, type */

    for (i = 0; i < n_fields; i++) {
        count += (size_t)s_field_present(&fields[i], obj, t);
    }
    w->len = 0;
    msgpack_packer_init(&pk, w, s_wbuf_write);
    msgpack_pack_map(&pk, count);
    s_pack_strn(&pk, "v", 1);
    msgpack_pack_unsigned_int(&pk, ESC_MSG_VERSION);
    s_pack_strn(&pk, "type", 4);
    s_pack_strn(&pk, s_type_names[t], s_type_lens[t]);
    for (i = 0; i < n_fields; i++) {
        const struct s_field *f = &fields[i];

        if (!s_field_present(f, obj, t)) {
            continue;
        }
        s_pack_strn(&pk, f->key, f->key_len);
        switch (f->kind) {
        case S_STR:
            s_pack_str(&pk, s_get_str(obj, f->off));
            break;
        case S_INT:
            msgpack_pack_int64(&pk, s_get_int(obj, f->off));
            break;
        case S_NUM:
            msgpack_pack_double(&pk, s_get_num(obj, f->off));
            break;
        case S_LIST: {
            char *const *list = s_get_list(obj, f->off);
            size_t n = s_get_count(obj, f->n_off);

            msgpack_pack_array(&pk, n);
            for (j = 0; j < n; j++) {
                s_pack_str(&pk, list[j]);
            }
            break;
        }
        }
    }
    if (w->len > ESC_MSG_MAX) {
        /* Receivers will reject it; say so here, where the producer can be identified. */
        esc_log_warn("encoded message exceeds limit type=%s bytes=%zu max=%d", s_type_names[t],
                     w->len, ESC_MSG_MAX);
    }
}

char *
esc_post_encode(const struct esc_post *p, int classified, size_t *len)
{
    struct s_wbuf w = {NULL, 0, 0};

    s_encode(s_post_fields, ESC_ARRAY_LEN(s_post_fields), p,
             classified ? ESC_MSG_CLASSIFIED : ESC_MSG_POST, &w);
    *len = w.len;
    return w.data;
}

size_t
esc_post_encode_reuse(const struct esc_post *p, int classified, char **buf, size_t *cap)
{
    struct s_wbuf w = {*buf, 0, *cap};

    s_encode(s_post_fields, ESC_ARRAY_LEN(s_post_fields), p,
             classified ? ESC_MSG_CLASSIFIED : ESC_MSG_POST, &w);
    *buf = w.data;
    *cap = w.cap;
    return w.len;
}

char *
esc_alert_encode(const struct esc_alert *a, size_t *len)
{
    struct s_wbuf w = {NULL, 0, 0};

    s_encode(s_alert_fields, ESC_ARRAY_LEN(s_alert_fields), a, ESC_MSG_ALERT, &w);
    *len = w.len;
    return w.data;
}

/* ---------------------------------------------------------------------------------------------
 * Raw structure scan
 *
 * msgpack_unpack_next allocates every array/map it meets at the size the header claims, before
 * the elements arrive, so a 5-byte buffer can ask for gigabytes. This scanner walks the bytes
 * first without allocating: every element needs at least one byte, so a header that claims more
 * elements than bytes remain proves the buffer truncated. After it passes, unpacking allocates
 * at most a small multiple of the (capped) input size. peek_type uses it to skip values.
 */

enum {
    S_MP_OK = 0,
    S_MP_TRUNC = -1, /* ran out of bytes */
    S_MP_BAD = -2,   /* 0xc1, the one byte msgpack never uses */
};

enum s_mp_kind { S_MP_OTHER, S_MP_STR, S_MP_ARRAY, S_MP_MAP };

/* Header of one msgpack object. */
struct s_mp_head {
    enum s_mp_kind kind;
    size_t hdr;      /* bytes of the header itself */
    uint64_t body;   /* bytes that follow the header (string data, number bytes, ext data) */
    uint64_t nested; /* objects that follow as children (array n, map 2n) */
};

/* Formats 0xc0..0xdf: header size, width of the big-endian length/count field that ends the
 * header (0 = none), fixed body bytes, what a length field counts. */
enum s_mp_len { S_LEN_NONE, S_LEN_BODY, S_LEN_ITEMS, S_LEN_PAIRS };
static const struct {
    unsigned char hdr, width, body;
    unsigned char len_is; /* enum s_mp_len */
    unsigned char kind;   /* enum s_mp_kind */
} s_mp_fmt[32] = {
    [0x00] = {1, 0, 0, S_LEN_NONE, S_MP_OTHER},  /* nil */
    [0x01] = {0, 0, 0, S_LEN_NONE, S_MP_OTHER},  /* never used: hdr 0 marks it bad */
    [0x02] = {1, 0, 0, S_LEN_NONE, S_MP_OTHER},  /* false */
    [0x03] = {1, 0, 0, S_LEN_NONE, S_MP_OTHER},  /* true */
    [0x04] = {2, 1, 0, S_LEN_BODY, S_MP_OTHER},  /* bin 8 */
    [0x05] = {3, 2, 0, S_LEN_BODY, S_MP_OTHER},  /* bin 16 */
    [0x06] = {5, 4, 0, S_LEN_BODY, S_MP_OTHER},  /* bin 32 */
    [0x07] = {3, 1, 0, S_LEN_BODY, S_MP_OTHER},  /* ext 8: len, type */
    [0x08] = {4, 2, 0, S_LEN_BODY, S_MP_OTHER},  /* ext 16 */
    [0x09] = {6, 4, 0, S_LEN_BODY, S_MP_OTHER},  /* ext 32 */
    [0x0a] = {1, 0, 4, S_LEN_NONE, S_MP_OTHER},  /* float 32 */
    [0x0b] = {1, 0, 8, S_LEN_NONE, S_MP_OTHER},  /* float 64 */
    [0x0c] = {1, 0, 1, S_LEN_NONE, S_MP_OTHER},  /* uint 8 */
    [0x0d] = {1, 0, 2, S_LEN_NONE, S_MP_OTHER},  /* uint 16 */
    [0x0e] = {1, 0, 4, S_LEN_NONE, S_MP_OTHER},  /* uint 32 */
    [0x0f] = {1, 0, 8, S_LEN_NONE, S_MP_OTHER},  /* uint 64 */
    [0x10] = {1, 0, 1, S_LEN_NONE, S_MP_OTHER},  /* int 8 */
    [0x11] = {1, 0, 2, S_LEN_NONE, S_MP_OTHER},  /* int 16 */
    [0x12] = {1, 0, 4, S_LEN_NONE, S_MP_OTHER},  /* int 32 */
    [0x13] = {1, 0, 8, S_LEN_NONE, S_MP_OTHER},  /* int 64 */
    [0x14] = {2, 0, 1, S_LEN_NONE, S_MP_OTHER},  /* fixext 1: type + 1 */
    [0x15] = {2, 0, 2, S_LEN_NONE, S_MP_OTHER},  /* fixext 2 */
    [0x16] = {2, 0, 4, S_LEN_NONE, S_MP_OTHER},  /* fixext 4 */
    [0x17] = {2, 0, 8, S_LEN_NONE, S_MP_OTHER},  /* fixext 8 */
    [0x18] = {2, 0, 16, S_LEN_NONE, S_MP_OTHER}, /* fixext 16 */
    [0x19] = {2, 1, 0, S_LEN_BODY, S_MP_STR},    /* str 8 */
    [0x1a] = {3, 2, 0, S_LEN_BODY, S_MP_STR},    /* str 16 */
    [0x1b] = {5, 4, 0, S_LEN_BODY, S_MP_STR},    /* str 32 */
    [0x1c] = {3, 2, 0, S_LEN_ITEMS, S_MP_ARRAY}, /* array 16 */
    [0x1d] = {5, 4, 0, S_LEN_ITEMS, S_MP_ARRAY}, /* array 32 */
    [0x1e] = {3, 2, 0, S_LEN_PAIRS, S_MP_MAP},   /* map 16 */
    [0x1f] = {5, 4, 0, S_LEN_PAIRS, S_MP_MAP},   /* map 32 */
};

/* Reads the header at p (left bytes available). */
static int
s_mp_head_read(const uint8_t *p, size_t left, struct s_mp_head *h)
{
    uint8_t b;
    uint64_t n = 0;
    unsigned i;

    if (left == 0) {
        return S_MP_TRUNC;
    }
    b = p[0];
    memset(h, 0, sizeof(*h));
    h->hdr = 1;
    h->kind = S_MP_OTHER;
    if (b <= 0x7f || b >= 0xe0) { /* positive / negative fixint */
        return S_MP_OK;
    }
    if (b <= 0x8f) {
        h->kind = S_MP_MAP;
        h->nested = 2u * (b & 0x0fu);
        return S_MP_OK;
    }
    if (b <= 0x9f) {
        h->kind = S_MP_ARRAY;
        h->nested = b & 0x0fu;
        return S_MP_OK;
    }
    if (b <= 0xbf) {
        h->kind = S_MP_STR;
        h->body = b & 0x1fu;
        return S_MP_OK;
    }
    b -= 0xc0;
    if (s_mp_fmt[b].hdr == 0) {
        return S_MP_BAD;
    }
    h->hdr = s_mp_fmt[b].hdr;
    h->kind = (enum s_mp_kind)s_mp_fmt[b].kind;
    h->body = s_mp_fmt[b].body;
    if (left < h->hdr) {
        return S_MP_TRUNC;
    }
    for (i = 0; i < s_mp_fmt[b].width; i++) {
        n = (n << 8) | p[1 + i];
    }
    switch (s_mp_fmt[b].len_is) {
    case S_LEN_BODY:
        h->body = n;
        break;
    case S_LEN_ITEMS:
        h->nested = n;
        break;
    case S_LEN_PAIRS:
        h->nested = 2 * n;
        break;
    default:
        break;
    }
    return S_MP_OK;
}

/* Walks `count` consecutive objects starting at p; sets *used to their total size. */
static int
s_mp_skip(const uint8_t *p, size_t len, uint64_t count, size_t *used)
{
    size_t off = 0;
    uint64_t pending = count;

    while (pending > 0) {
        struct s_mp_head h;
        int rc = s_mp_head_read(p + off, len - off, &h);

        if (rc != S_MP_OK) {
            return rc;
        }
        pending--;
        off += h.hdr;
        if (h.body > len - off) {
            return S_MP_TRUNC;
        }
        off += (size_t)h.body;
        pending += h.nested;
        if (pending > len - off) {
            return S_MP_TRUNC;
        }
    }
    *used = off;
    return S_MP_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding
 */

static const char *
s_obj_type_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "float";
    case MSGPACK_OBJECT_STR:
        return "string";
    case MSGPACK_OBJECT_ARRAY:
        return "array";
    case MSGPACK_OBJECT_MAP:
        return "map";
    case MSGPACK_OBJECT_BIN:
        return "bin";
    case MSGPACK_OBJECT_EXT:
        return "ext";
    }
    return "unknown";
}

static int
s_str_eq(const msgpack_object *o, const char *s, size_t n)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n
           && memcmp(o->via.str.ptr, s, n) == 0;
}

/* Requests the cache lines of the frame buf[0..len) (len > 0) that is about to be read, up
 * to S_PREFETCH_MAX bytes: the frame scan reads one header after another, and when the frame
 * is not in the cache (a queue of received frames larger than the cache) each line would
 * otherwise be waited for in turn. */
#define S_PREFETCH_MAX 2048

static void
s_prefetch_frame(const void *buf, size_t len)
{
    const char *p = buf;
    size_t off;

    if (len > S_PREFETCH_MAX) {
        len = S_PREFETCH_MAX;
    }
    for (off = 64; off < len; off += 64) {
        __builtin_prefetch(p + off);
    }
    __builtin_prefetch(p + len - 1);
}

/* Checks the size of buf and that it is a map. */
static esc_rc
s_check_size(const void *buf, size_t len, struct esc_error *err)
{
    const uint8_t *b = buf;

    if (len > ESC_MSG_MAX) {
        esc_error_set(err, 0, "message too large (%zu > %d)", len, ESC_MSG_MAX);
        return ESC_INVALID;
    }
    if (len == 0 || buf == NULL) {
        esc_error_set(err, 0, "empty message");
        return ESC_INVALID;
    }
    s_prefetch_frame(buf, len);
    if (!((b[0] >= 0x80 && b[0] <= 0x8f) || b[0] == 0xde || b[0] == 0xdf)) {
        esc_error_set(err, 0, "not a map");
        return ESC_INVALID;
    }
    return ESC_OK;
}

/* Checks size, shape and framing of buf without unpacking it. */
static esc_rc
s_check_frame(const void *buf, size_t len, struct esc_error *err)
{
    size_t used = 0;
    esc_rc erc = s_check_size(buf, len, err);
    int rc;

    if (erc != ESC_OK) {
        return erc;
    }
    rc = s_mp_skip(buf, len, 1, &used);
    if (rc == S_MP_TRUNC) {
        esc_error_set(err, 0, "truncated message");
        return ESC_INVALID;
    }
    if (rc == S_MP_BAD) {
        esc_error_set(err, 0, "malformed message");
        return ESC_INVALID;
    }
    if (used != len) {
        esc_error_set(err, 0, "trailing bytes after message");
        return ESC_INVALID;
    }
    return ESC_OK;
}

/* Checks size, shape and framing, then unpacks buf into *upk. */
static esc_rc
s_unpack(const void *buf, size_t len, msgpack_unpacked *upk, struct esc_error *err)
{
    size_t off = 0;
    esc_rc rc = s_check_frame(buf, len, err);

    if (rc != ESC_OK) {
        return rc;
    }
    switch (msgpack_unpack_next(upk, buf, len, &off)) {
    case MSGPACK_UNPACK_SUCCESS:
        break;
    case MSGPACK_UNPACK_CONTINUE:
        esc_error_set(err, 0, "truncated message");
        return ESC_INVALID;
    case MSGPACK_UNPACK_NOMEM_ERROR:
        /* After the scan, this means nesting beyond msgpack-c's fixed stack (32 levels). */
        esc_error_set(err, 0, "message nested too deep");
        return ESC_INVALID;
    default:
        esc_error_set(err, 0, "malformed message");
        return ESC_INVALID;
    }
    if (off != len || upk->data.type != MSGPACK_OBJECT_MAP) {
        esc_error_set(err, 0, "malformed message");
        return ESC_INVALID;
    }
    return ESC_OK;
}

/* Writes a printable copy of a wire string (at most 32 bytes) into out, for error texts. */
static const char *
s_printable(const msgpack_object_str *s, char *out, size_t outsz)
{
    size_t i, n = s->size < 32 ? s->size : 32;

    if (n >= outsz) {
        n = outsz - 1;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s->ptr[i];

        out[i] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    out[n] = '\0';
    return out;
}

/* Reads and checks v and type; sets *type. */
static esc_rc
s_check_header(const msgpack_object_map *m, enum esc_msg_type *type, struct esc_error *err)
{
    const msgpack_object *v = NULL, *t = NULL;
    char buf[40];
    uint32_t i;
    int k;

    for (i = 0; i < m->size; i++) {
        const msgpack_object *key = &m->ptr[i].key;

        if (key->type != MSGPACK_OBJECT_STR) {
            esc_error_set(err, 0, "map key %" PRIu32 ": expected string, got %s", i, s_obj_type_name(key));
            return ESC_INVALID;
        }
        if (s_str_eq(key, "v", 1)) {
            if (v != NULL) {
                esc_error_set(err, 0, "duplicate key 'v'");
                return ESC_INVALID;
            }
            v = &m->ptr[i].val;
        }
        else if (s_str_eq(key, "type", 4)) {
            if (t != NULL) {
                esc_error_set(err, 0, "duplicate key 'type'");
                return ESC_INVALID;
            }
            t = &m->ptr[i].val;
        }
    }
    if (v == NULL) {
        esc_error_set(err, 0, "missing required key 'v'");
        return ESC_INVALID;
    }
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (v->via.u64 != ESC_MSG_VERSION) {
            esc_error_set(err, 0, "unsupported schema version %" PRIu64, v->via.u64);
            return ESC_INVALID;
        }
    }
    else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        esc_error_set(err, 0, "unsupported schema version %" PRId64, v->via.i64);
        return ESC_INVALID;
    }
    else {
        esc_error_set(err, 0, "key 'v': expected int, got %s", s_obj_type_name(v));
        return ESC_INVALID;
    }
    if (t == NULL) {
        esc_error_set(err, 0, "missing required key 'type'");
        return ESC_INVALID;
    }
    if (t->type != MSGPACK_OBJECT_STR) {
        esc_error_set(err, 0, "key 'type': expected string, got %s", s_obj_type_name(t));
        return ESC_INVALID;
    }
    for (k = ESC_MSG_POST; k <= ESC_MSG_ALERT; k++) {
        if (s_str_eq(t, s_type_names[k], s_type_lens[k])) {
            *type = (enum esc_msg_type)k;
            return ESC_OK;
        }
    }
    esc_error_set(err, 0, "key 'type': unknown message type '%s'", s_printable(&t->via.str, buf, sizeof(buf)));
    return ESC_INVALID;
}

/* Where decoded strings and lists go: separate allocations (arena NULL), or bump-allocated
 * from an esc_post_buf sized beforehand (s_arena_need), which never grows during a decode. */
struct s_dst {
    struct esc_post_buf *arena;
    size_t used;
};

static void *
s_dst_alloc(struct s_dst *d, size_t n, size_t align)
{
    char *p;

    d->used = (d->used + align - 1) / align * align;
    ESC_ASSERT(d->used + n <= d->arena->cap);
    p = d->arena->data + d->used;
    d->used += n;
    return p;
}

/* Copies a wire string into a new C string; *what names the problem on failure. */
static char *
s_copy_str(struct s_dst *d, const msgpack_object *o, size_t max, const char **what,
           size_t *bad_len)
{
    const char *p = o->via.str.ptr;
    size_t n = o->via.str.size;
    char *s;

    if (max > 0 && n > max) {
        *what = "too long";
        *bad_len = n;
        return NULL;
    }
    if (n > 0 && memchr(p, '\0', n) != NULL) {
        *what = "string contains NUL byte";
        return NULL;
    }
    if (d->arena == NULL) {
        return esc_strndup(n > 0 ? p : "", n);
    }
    s = s_dst_alloc(d, n + 1, 1);
    if (n > 0) {
        memcpy(s, p, n);
    }
    s[n] = '\0';
    return s;
}

static esc_rc
s_decode_str(struct s_dst *d, const struct s_field *f, const msgpack_object *val, void *obj,
             struct esc_error *err)
{
    const char *what = NULL;
    size_t bad_len = 0;
    char *s;

    if (val->type != MSGPACK_OBJECT_STR) {
        esc_error_set(err, 0, "key '%s': expected string, got %s", f->key, s_obj_type_name(val));
        return ESC_INVALID;
    }
    s = s_copy_str(d, val, f->max, &what, &bad_len);
    if (s == NULL) {
        if (bad_len > 0) {
            esc_error_set(err, 0, "key '%s': too long (%zu > %zu bytes)", f->key, bad_len, f->max);
        }
        else {
            esc_error_set(err, 0, "key '%s': %s", f->key, what);
        }
        return ESC_INVALID;
    }
    *s_str_at(obj, f->off) = s;
    return ESC_OK;
}

static esc_rc
s_decode_int(const struct s_field *f, const msgpack_object *val, void *obj,
             struct esc_error *err)
{
    if (val->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (val->via.u64 > (uint64_t)INT64_MAX) {
            esc_error_set(err, 0, "key '%s': integer out of range", f->key);
            return ESC_INVALID;
        }
        *s_int_at(obj, f->off) = (int64_t)val->via.u64;
        return ESC_OK;
    }
    if (val->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *s_int_at(obj, f->off) = val->via.i64;
        return ESC_OK;
    }
    esc_error_set(err, 0, "key '%s': expected int, got %s", f->key, s_obj_type_name(val));
    return ESC_INVALID;
}

static esc_rc
s_decode_num(const struct s_field *f, const msgpack_object *val, void *obj,
             struct esc_error *err)
{
    double d;

    switch (val->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        d = val->via.f64;
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        d = (double)val->via.u64;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        d = (double)val->via.i64;
        break;
    default:
        esc_error_set(err, 0, "key '%s': expected number, got %s", f->key, s_obj_type_name(val));
        return ESC_INVALID;
    }
    if (isnan(d)) {
        esc_error_set(err, 0, "key '%s': not a number (NaN)", f->key);
        return ESC_INVALID;
    }
    *s_num_at(obj, f->off) = d;
    return ESC_OK;
}

static esc_rc
s_decode_list(struct s_dst *d, const struct s_field *f, const msgpack_object *val, void *obj,
              struct esc_error *err)
{
    char ***list = s_list_at(obj, f->off);
    size_t *n = s_count_at(obj, f->n_off);
    const msgpack_object_array *a;
    uint32_t i;

    if (val->type != MSGPACK_OBJECT_ARRAY) {
        esc_error_set(err, 0, "key '%s': expected array, got %s", f->key, s_obj_type_name(val));
        return ESC_INVALID;
    }
    a = &val->via.array;
    if (a->size > ESC_POST_LIST_MAX) {
        esc_error_set(err, 0, "key '%s': too many elements (%" PRIu32 " > %d)", f->key, a->size,
              ESC_POST_LIST_MAX);
        return ESC_INVALID;
    }
    if (a->size == 0) {
        return ESC_OK;
    }
    /* Filled one by one with *n counting, so fini frees exactly what was copied so far. */
    if (d->arena == NULL) {
        *list = esc_calloc(a->size, sizeof(**list));
    }
    else {
        *list = s_dst_alloc(d, a->size * sizeof(**list), sizeof(**list));
    }
    for (i = 0; i < a->size; i++) {
        const msgpack_object *e = &a->ptr[i];
        const char *what = NULL;
        size_t bad_len = 0;
        char *s;

        if (e->type != MSGPACK_OBJECT_STR) {
            esc_error_set(err, 0, "key '%s' element %" PRIu32 ": expected string, got %s", f->key, i,
                  s_obj_type_name(e));
            return ESC_INVALID;
        }
        s = s_copy_str(d, e, f->max, &what, &bad_len);
        if (s == NULL) {
            if (bad_len > 0) {
                esc_error_set(err, 0, "key '%s' element %" PRIu32 ": too long (%zu > %zu bytes)", f->key, i,
                      bad_len, f->max);
            }
            else {
                esc_error_set(err, 0, "key '%s' element %" PRIu32 ": %s", f->key, i, what);
            }
            return ESC_INVALID;
        }
        (*list)[i] = s;
        (*n)++;
    }
    return ESC_OK;
}

/* Fills obj from the map's known keys for message type t. */
static esc_rc
s_decode_fields(struct s_dst *d, const msgpack_object_map *m, const struct s_field *fields,
                size_t n_fields, enum esc_msg_type t, void *obj, struct esc_error *err)
{
    uint64_t seen = 0;
    uint32_t i;
    size_t j;
    size_t next = 0;
    esc_rc rc;

    for (i = 0; i < m->size; i++) {
        const msgpack_object *key = &m->ptr[i].key;
        const msgpack_object *val = &m->ptr[i].val;
        size_t k;

        /* The encoder writes the keys in table order, so the search starts after the last key
         * found and usually ends at once. */
        for (k = 0; k < n_fields; k++) {
            j = (next + k) % n_fields;
            if ((fields[j].types & S_BIT(t)) != 0 &&
                s_str_eq(key, fields[j].key, fields[j].key_len)) {
                break;
            }
        }
        if (k == n_fields) {
            continue; /* unknown key (or v / type, already checked) */
        }
        next = j + 1;
        if ((seen & ((uint64_t)1 << j)) != 0) {
            esc_error_set(err, 0, "duplicate key '%s'", fields[j].key);
            return ESC_INVALID;
        }
        seen |= (uint64_t)1 << j;
        switch (fields[j].kind) {
        case S_STR:
            rc = s_decode_str(d, &fields[j], val, obj, err);
            break;
        case S_INT:
            rc = s_decode_int(&fields[j], val, obj, err);
            break;
        case S_NUM:
            rc = s_decode_num(&fields[j], val, obj, err);
            break;
        default:
            rc = s_decode_list(d, &fields[j], val, obj, err);
            break;
        }
        if (rc != ESC_OK) {
            return rc;
        }
    }
    for (j = 0; j < n_fields; j++) {
        if ((fields[j].required & S_BIT(t)) != 0 && (seen & ((uint64_t)1 << j)) == 0) {
            esc_error_set(err, 0, "missing required key '%s'", fields[j].key);
            return ESC_INVALID;
        }
    }
    return ESC_OK;
}

static void
s_err_begin(struct esc_error *err)
{
    if (err != NULL) {
        err->text[0] = '\0';
        esc_strlcpy(err->source, "<message>", sizeof(err->source));
        err->line = 0;
        err->column = 0;
    }
}

/* *type_out is set as soon as the header is valid, even when a later key is rejected, so the
 * caller can count rejects per message type. */
esc_rc
esc_post_decode(const void *buf, size_t len, struct esc_post *out, enum esc_msg_type *type_out,
                struct esc_error *err)
{
    msgpack_unpacked upk;
    enum esc_msg_type type = ESC_MSG_UNKNOWN;
    struct s_dst dst = { NULL, 0 };
    esc_rc rc;

    esc_post_init(out);
    s_err_begin(err);
    if (type_out != NULL) {
        *type_out = ESC_MSG_UNKNOWN;
    }
    msgpack_unpacked_init(&upk);
    rc = s_unpack(buf, len, &upk, err);
    if (rc != ESC_OK) {
        goto out;
    }
    rc = s_check_header(&upk.data.via.map, &type, err);
    if (rc != ESC_OK) {
        goto out;
    }
    if (type_out != NULL) {
        *type_out = type;
    }
    if (type != ESC_MSG_POST && type != ESC_MSG_CLASSIFIED) {
        esc_error_set(err, 0, "expected a post or classified message, got '%s'", s_type_names[type]);
        rc = ESC_INVALID;
        goto out;
    }
    rc = s_decode_fields(&dst, &upk.data.via.map, s_post_fields, ESC_ARRAY_LEN(s_post_fields),
                         type, out, err);
out:
    msgpack_unpacked_destroy(&upk);
    if (rc != ESC_OK) {
        esc_post_fini(out);
    }
    return rc;
}

void
esc_post_buf_init(struct esc_post_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void
esc_post_buf_fini(struct esc_post_buf *b)
{
    if (b == NULL) {
        return;
    }
    esc_free(b->data);
    esc_free(b->objs);
    esc_post_buf_init(b);
}

/* Bytes the strings and lists of map m need in an arena: every string value with its NUL and
 * every array of strings with its pointers (unknown keys included, so it is an upper bound). */
static size_t
s_arena_need(const msgpack_object_map *m)
{
    size_t need = 0;
    uint32_t i, j;

    for (i = 0; i < m->size; i++) {
        const msgpack_object *v = &m->ptr[i].val;

        if (v->type == MSGPACK_OBJECT_STR) {
            need += (size_t)v->via.str.size + 1;
        }
        else if (v->type == MSGPACK_OBJECT_ARRAY) {
            need += sizeof(char *) * ((size_t)v->via.array.size + 1);
            for (j = 0; j < v->via.array.size; j++) {
                if (v->via.array.ptr[j].type == MSGPACK_OBJECT_STR) {
                    need += (size_t)v->via.array.ptr[j].via.str.size + 1;
                }
            }
        }
    }
    return need;
}

/* Big-endian unsigned integer of n bytes at p. */
static uint64_t
s_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    unsigned i;

    for (i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* The object whose header is at p (head h, framing checked), as msgpack-c would unpack it but
 * shallow: an array or map gets its size and no elements (ptr NULL). */
static void
s_shallow(const uint8_t *p, const struct s_mp_head *h, msgpack_object *o)
{
    uint8_t b = p[0];

    memset(o, 0, sizeof(*o));
    switch (h->kind) {
    case S_MP_STR:
        o->type = MSGPACK_OBJECT_STR;
        o->via.str.ptr = (const char *)p + h->hdr;
        o->via.str.size = (uint32_t)h->body;
        return;
    case S_MP_ARRAY:
        o->type = MSGPACK_OBJECT_ARRAY;
        o->via.array.size = (uint32_t)h->nested;
        return;
    case S_MP_MAP:
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.size = (uint32_t)(h->nested / 2);
        return;
    default:
        break;
    }
    if (b <= 0x7f) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = b;
    }
    else if (b >= 0xe0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = (int8_t)b;
    }
    else if (b >= 0xcc && b <= 0xcf) { /* uint 8..64 */
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = s_be(p + 1, 1u << (b - 0xcc));
    }
    else if (b >= 0xd0 && b <= 0xd3) { /* int 8..64: msgpack-c calls the non-negative ones
                                        * positive */
        unsigned n = 1u << (b - 0xd0);
        uint64_t u = s_be(p + 1, n);
        int64_t v;

        if (n < 8 && (u >> (8 * n - 1)) != 0) {
            u |= ~UINT64_C(0) << (8 * n); /* sign-extend */
        }
        memcpy(&v, &u, sizeof(v));
        if (v >= 0) {
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = (uint64_t)v;
        }
        else {
            o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            o->via.i64 = v;
        }
    }
    else if (b == 0xca) {
        uint32_t u = (uint32_t)s_be(p + 1, 4);
        float f;

        memcpy(&f, &u, sizeof(f));
        o->type = MSGPACK_OBJECT_FLOAT32;
        o->via.f64 = (double)f;
    }
    else if (b == 0xcb) {
        uint64_t u = s_be(p + 1, 8);

        memcpy(&o->via.f64, &u, sizeof(o->via.f64));
        o->type = MSGPACK_OBJECT_FLOAT64;
    }
    else if (b == 0xc0) {
        o->type = MSGPACK_OBJECT_NIL;
    }
    else if (b == 0xc2 || b == 0xc3) {
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = b == 0xc3;
    }
    else if (b >= 0xc4 && b <= 0xc6) {
        o->type = MSGPACK_OBJECT_BIN;
    }
    else {
        o->type = MSGPACK_OBJECT_EXT; /* 0xc7..0xc9, 0xd4..0xd8 */
    }
}

/* msgpack-c opens at most this many containers at once (MSGPACK_EMBED_STACK_SIZE) and refuses
 * a message that nests deeper ("message nested too deep" in s_unpack). */
#define S_MP_DEPTH 32

/* Reads the header at b[off] of a message b[0..len) whose framing is not checked yet: 0 when
 * it is whole and its body and the objects it announces (at least a byte each) fit in what is
 * left, else -2. */
static int
s_mp_head_checked(const uint8_t *b, size_t len, size_t off, struct s_mp_head *h)
{
    size_t left;

    if (s_mp_head_read(b + off, len - off, h) != S_MP_OK) {
        return -2;
    }
    left = len - off - h->hdr; /* s_mp_head_read saw the whole header */
    if (h->body > left || h->nested > left - (size_t)h->body) {
        return -2;
    }
    return 0;
}

/* Skips the object at b[*off] whose head is h (checked), inside `open` containers, checking the
 * framing of what it holds: 0, -1 when it holds a container that msgpack-c could not open, -2
 * on a framing error (truncated, a byte msgpack never uses). */
static int
s_mp_skip_nested(const uint8_t *b, size_t len, size_t *off, const struct s_mp_head *h,
                 unsigned open)
{
    uint64_t i;
    int rc;

    *off += h->hdr + (size_t)h->body;
    if (h->kind != S_MP_ARRAY && h->kind != S_MP_MAP) {
        return 0;
    }
    if (open >= S_MP_DEPTH) {
        return -1;
    }
    for (i = 0; i < h->nested; i++) {
        struct s_mp_head c;

        if (*off >= len || s_mp_head_checked(b, len, *off, &c) != 0) {
            return -2;
        }
        rc = s_mp_skip_nested(b, len, off, &c, open + 1);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Unpacks message b[0..len) (a map; size and type checked, framing not) into *top without
 * allocating, checking its framing on the way, in one pass over the bytes: its pairs, and the
 * elements of arrays that are values, go into b->objs; anything deeper is left shallow, which
 * is all the field decoders look at. Any error makes s_check_frame walk the message again, so
 * that the reason given is the one esc_post_decode gives (framing before depth). Returns
 * ESC_OK or ESC_INVALID. */
static esc_rc
s_unpack_shallow(const uint8_t *b, size_t len, struct esc_post_buf *pb, msgpack_object *top,
                 struct esc_error *err)
{
    struct s_mp_head h;
    msgpack_object_kv *kv;
    msgpack_object *o;
    size_t off;
    size_t need;
    uint64_t pairs;
    uint64_t i;
    int rc = -2;

    if (s_mp_head_checked(b, len, 0, &h) != 0) {
        goto bad;
    }
    pairs = h.nested / 2;
    /* Every object takes at least a byte, so len objects are always enough. */
    need = (size_t)pairs * sizeof(msgpack_object_kv) + len * sizeof(msgpack_object);
    if (need > pb->objs_cap) {
        esc_free(pb->objs);
        pb->objs_cap = need + need / 2;
        pb->objs = esc_malloc(pb->objs_cap);
    }
    kv = pb->objs;
    o = (msgpack_object *)(void *)(kv + pairs);
    off = h.hdr;
    for (i = 0; i < pairs; i++) {
        struct s_mp_head kh;
        struct s_mp_head vh;
        uint64_t j;

        if (off >= len || s_mp_head_checked(b, len, off, &kh) != 0) {
            goto bad;
        }
        s_shallow(b + off, &kh, &kv[i].key);
        rc = s_mp_skip_nested(b, len, &off, &kh, 1);
        if (rc != 0) {
            goto bad;
        }
        if (off >= len || s_mp_head_checked(b, len, off, &vh) != 0) {
            rc = -2;
            goto bad;
        }
        s_shallow(b + off, &vh, &kv[i].val);
        if (vh.kind != S_MP_ARRAY) {
            rc = s_mp_skip_nested(b, len, &off, &vh, 1);
            if (rc != 0) {
                goto bad;
            }
            continue;
        }
        kv[i].val.via.array.ptr = o;
        off += vh.hdr;
        for (j = 0; j < vh.nested; j++) {
            struct s_mp_head eh;

            if (off >= len || s_mp_head_checked(b, len, off, &eh) != 0) {
                rc = -2;
                goto bad;
            }
            s_shallow(b + off, &eh, o++);
            rc = s_mp_skip_nested(b, len, &off, &eh, 2);
            if (rc != 0) {
                goto bad;
            }
        }
    }
    if (off != len) {
        rc = -2;
        goto bad;
    }
    memset(top, 0, sizeof(*top));
    top->type = MSGPACK_OBJECT_MAP;
    top->via.map.size = (uint32_t)pairs;
    top->via.map.ptr = kv;
    return ESC_OK;
bad:
    if (s_check_frame(b, len, err) == ESC_OK) {
        /* a walk that the framing allows fails only on depth */
        esc_error_set(err, 0, rc == -1 ? "message nested too deep" : "malformed message");
    }
    return ESC_INVALID;
}

esc_rc
esc_post_decode_into(const void *buf, size_t len, struct esc_post *out,
                     enum esc_msg_type *type_out, struct esc_post_buf *b, struct esc_error *err)
{
    msgpack_object obj;
    enum esc_msg_type type = ESC_MSG_UNKNOWN;
    struct s_dst dst = { b, 0 };
    size_t need;
    esc_rc rc;

    ESC_ASSERT(b != NULL);
    esc_post_init(out);
    s_err_begin(err);
    if (type_out != NULL) {
        *type_out = ESC_MSG_UNKNOWN;
    }
    /* The same checks as esc_post_decode, so the same reasons; only the unpacking differs (in
     * place, nothing allocated once b has grown, the framing checked as it goes). */
    rc = s_check_size(buf, len, err);
    if (rc != ESC_OK) {
        return rc;
    }
    rc = s_unpack_shallow(buf, len, b, &obj, err);
    if (rc != ESC_OK) {
        return rc;
    }
    rc = s_check_header(&obj.via.map, &type, err);
    if (rc != ESC_OK) {
        return rc;
    }
    if (type_out != NULL) {
        *type_out = type;
    }
    if (type != ESC_MSG_POST && type != ESC_MSG_CLASSIFIED) {
        esc_error_set(err, 0, "expected a post or classified message, got '%s'", s_type_names[type]);
        return ESC_INVALID;
    }
    need = s_arena_need(&obj.via.map);
    if (need > b->cap) {
        esc_free(b->data);
        b->cap = need + need / 2 + 256;
        b->data = esc_malloc(b->cap);
    }
    rc = s_decode_fields(&dst, &obj.via.map, s_post_fields, ESC_ARRAY_LEN(s_post_fields), type,
                         out, err);
    if (rc != ESC_OK) {
        esc_post_init(out); /* everything it pointed to is the arena's */
    }
    return rc;
}

esc_rc
esc_alert_decode(const void *buf, size_t len, struct esc_alert *out, struct esc_error *err)
{
    msgpack_unpacked upk;
    enum esc_msg_type type = ESC_MSG_UNKNOWN;
    struct s_dst dst = { NULL, 0 };
    esc_rc rc;

    esc_alert_init(out);
    s_err_begin(err);
    msgpack_unpacked_init(&upk);
    rc = s_unpack(buf, len, &upk, err);
    if (rc != ESC_OK) {
        goto out;
    }
    rc = s_check_header(&upk.data.via.map, &type, err);
    if (rc != ESC_OK) {
        goto out;
    }
    if (type != ESC_MSG_ALERT) {
        esc_error_set(err, 0, "expected an alert message, got '%s'", s_type_names[type]);
        rc = ESC_INVALID;
        goto out;
    }
    rc = s_decode_fields(&dst, &upk.data.via.map, s_alert_fields, ESC_ARRAY_LEN(s_alert_fields),
                         type, out, err);
out:
    msgpack_unpacked_destroy(&upk);
    if (rc != ESC_OK) {
        esc_alert_fini(out);
    }
    return rc;
}

/* Finds the value of a map's "type" key, scanning only the keys before it: sets *t and *tn to
 * the string's bytes. Returns 0, or -1 when buf is not a map holding a string "type". */
static int
s_find_type(const uint8_t *b, size_t len, const uint8_t **t, size_t *tn)
{
    struct s_mp_head h;
    size_t off, used;
    uint64_t i, pairs;

    if (s_mp_head_read(b, len, &h) != S_MP_OK || h.kind != S_MP_MAP) {
        return -1;
    }
    off = h.hdr;
    pairs = h.nested / 2;
    for (i = 0; i < pairs; i++) {
        struct s_mp_head kh;

        if (s_mp_head_read(b + off, len - off, &kh) != S_MP_OK) {
            return -1;
        }
        if (kh.kind == S_MP_STR && kh.body == 4 && len - off - kh.hdr >= 4
            && memcmp(b + off + kh.hdr, "type", 4) == 0) {
            struct s_mp_head vh;

            off += kh.hdr + 4;
            if (s_mp_head_read(b + off, len - off, &vh) != S_MP_OK || vh.kind != S_MP_STR
                || vh.body > len - off - vh.hdr) {
                return -1;
            }
            *t = b + off + vh.hdr;
            *tn = (size_t)vh.body;
            return 0;
        }
        if (s_mp_skip(b + off, len - off, 2, &used) != S_MP_OK) {
            return -1;
        }
        off += used;
    }
    return -1;
}

enum esc_msg_type
esc_msg_peek_type(const void *buf, size_t len)
{
    const uint8_t *t;
    size_t tn;
    int k;

    if (buf == NULL || len == 0 || len > ESC_MSG_MAX) {
        return ESC_MSG_UNKNOWN;
    }
    if (s_find_type(buf, len, &t, &tn) != 0) {
        return ESC_MSG_UNKNOWN;
    }
    for (k = ESC_MSG_POST; k <= ESC_MSG_ALERT; k++) {
        if (tn == s_type_lens[k] && memcmp(t, s_type_names[k], tn) == 0) {
            return (enum esc_msg_type)k;
        }
    }
    return ESC_MSG_UNKNOWN;
}

/* ---------------------------------------------------------------------------------------------
 * Batch frames
 *
 * The builder writes: fixmap 3, "v" 1, "type" "batch", "msgs" as an array 32 whose count
 * esc_batch_frame patches in, then per message a bin 8/16/32 header and its bytes. The reader
 * takes any valid msgpack for the same map (keys in any order, unknown keys skipped, any array
 * or bin width), like the message decoders.
 */

static const uint8_t s_batch_head[] = {
    0x83,                                      /* fixmap, 3 pairs */
    0xa1, 'v', ESC_MSG_VERSION,                /* "v": 1 */
    0xa4, 't', 'y', 'p', 'e', 0xa5, 'b', 'a', 't', 'c', 'h', /* "type": "batch" */
    0xa4, 'm', 's', 'g', 's', 0xdd, 0, 0, 0, 0, /* "msgs": array 32, count patched in */
};
#define S_BATCH_COUNT_OFF (sizeof(s_batch_head) - 4)
#define S_BIN_HDR_MAX 5

void
esc_batch_init(struct esc_batch *b)
{
    memset(b, 0, sizeof(*b));
}

void
esc_batch_fini(struct esc_batch *b)
{
    if (b == NULL) {
        return;
    }
    esc_free(b->data);
    memset(b, 0, sizeof(*b));
}

void
esc_batch_reset(struct esc_batch *b)
{
    b->len = 0;
    b->n = 0;
    b->first_off = 0;
    b->first_len = 0;
}

bool
esc_batch_full(const struct esc_batch *b, size_t len)
{
    if (b->n == 0) {
        return false;
    }
    return b->n >= ESC_BATCH_MSGS || len > ESC_BATCH_BYTES
           || b->len + S_BIN_HDR_MAX + len > ESC_BATCH_BYTES;
}

static void
s_batch_reserve(struct esc_batch *b, size_t more)
{
    size_t cap;

    if (b->cap - b->len >= more) {
        return;
    }
    cap = b->cap != 0 ? b->cap : 4096;
    while (cap - b->len < more) {
        cap *= 2;
    }
    b->data = esc_realloc(b->data, cap);
    b->cap = cap;
}

void
esc_batch_add(struct esc_batch *b, const void *msg, size_t len)
{
    uint8_t h[S_BIN_HDR_MAX];
    size_t hl;

    ESC_ASSERT(len <= ESC_MSG_MAX);
    if (b->n == 0) {
        b->len = 0;
        s_batch_reserve(b, sizeof(s_batch_head));
        memcpy(b->data, s_batch_head, sizeof(s_batch_head));
        b->len = sizeof(s_batch_head);
    }
    if (len <= 0xff) {
        h[0] = 0xc4;
        h[1] = (uint8_t)len;
        hl = 2;
    }
    else if (len <= 0xffff) {
        h[0] = 0xc5;
        h[1] = (uint8_t)(len >> 8);
        h[2] = (uint8_t)len;
        hl = 3;
    }
    else {
        h[0] = 0xc6;
        h[1] = (uint8_t)(len >> 24);
        h[2] = (uint8_t)(len >> 16);
        h[3] = (uint8_t)(len >> 8);
        h[4] = (uint8_t)len;
        hl = 5;
    }
    s_batch_reserve(b, hl + len);
    memcpy(b->data + b->len, h, hl);
    b->len += hl;
    if (b->n == 0) {
        b->first_off = b->len;
        b->first_len = len;
    }
    if (len > 0) {
        memcpy(b->data + b->len, msg, len);
    }
    b->len += len;
    b->n++;
}

const void *
esc_batch_frame(struct esc_batch *b, size_t *len)
{
    uint8_t *c;

    if (b->n == 0) {
        *len = 0;
        return NULL;
    }
    if (b->n == 1) {
        *len = b->first_len;
        return b->data + b->first_off;
    }
    c = (uint8_t *)b->data + S_BATCH_COUNT_OFF;
    c[0] = (uint8_t)(b->n >> 24);
    c[1] = (uint8_t)(b->n >> 16);
    c[2] = (uint8_t)(b->n >> 8);
    c[3] = (uint8_t)b->n;
    *len = b->len;
    return b->data;
}

static const char *
s_mp_kind_name(const uint8_t *p, const struct s_mp_head *h)
{
    switch (h->kind) {
    case S_MP_STR:
        return "string";
    case S_MP_ARRAY:
        return "array";
    case S_MP_MAP:
        return "map";
    case S_MP_OTHER:
        break;
    }
    if (p[0] == 0xc0) {
        return "nil";
    }
    if ((p[0] >= 0xc7 && p[0] <= 0xc9) || (p[0] >= 0xd4 && p[0] <= 0xd8)) {
        return "ext";
    }
    return "scalar";
}

static bool
s_mp_is_bin(const uint8_t *p)
{
    return p[0] >= 0xc4 && p[0] <= 0xc6;
}

/* The integer whose header h is at p, when it is one and not negative: returns 0 and sets *v. */
static int
s_mp_uint(const uint8_t *p, const struct s_mp_head *h, uint64_t *v)
{
    if (p[0] <= 0x7f) {
        *v = p[0];
        return 0;
    }
    if (p[0] >= 0xcc && p[0] <= 0xcf) {
        *v = s_be(p + 1, (unsigned)h->body);
        return 0;
    }
    if (p[0] >= 0xd0 && p[0] <= 0xd3 && (p[1] & 0x80u) == 0) {
        *v = s_be(p + 1, (unsigned)h->body);
        return 0;
    }
    return -1;
}

/* Reads the batch map of it->buf (known to be a map with type "batch"). */
static esc_rc
s_batch_header(struct esc_batch_iter *it, struct esc_error *err)
{
    const uint8_t *b = it->buf;
    size_t len = it->len;
    struct s_mp_head h;
    size_t off, used;
    uint64_t i, pairs, ver;
    bool have_v = false, have_type = false, have_msgs = false;

    (void)s_mp_head_read(b, len, &h); /* s_find_type read it already */
    off = h.hdr;
    pairs = h.nested / 2;
    for (i = 0; i < pairs && !it->broken; i++) {
        struct s_mp_head kh, vh;
        const uint8_t *key;
        size_t klen;

        if (s_mp_head_read(b + off, len - off, &kh) != S_MP_OK || kh.body > len - off - kh.hdr) {
            esc_error_set(err, 0, "truncated batch");
            return ESC_INVALID;
        }
        if (kh.kind != S_MP_STR) {
            esc_error_set(err, 0, "batch map key %" PRIu64 ": expected string, got %s", i,
                          s_mp_kind_name(b + off, &kh));
            return ESC_INVALID;
        }
        key = b + off + kh.hdr;
        klen = (size_t)kh.body;
        off += kh.hdr + klen;
        if (s_mp_head_read(b + off, len - off, &vh) != S_MP_OK) {
            esc_error_set(err, 0, "truncated batch");
            return ESC_INVALID;
        }
        if (klen == 1 && key[0] == 'v') {
            if (have_v) {
                esc_error_set(err, 0, "batch: duplicate key 'v'");
                return ESC_INVALID;
            }
            have_v = true;
            if (vh.body > len - off - vh.hdr || s_mp_uint(b + off, &vh, &ver) != 0) {
                esc_error_set(err, 0, "batch key 'v': expected int, got %s",
                              s_mp_kind_name(b + off, &vh));
                return ESC_INVALID;
            }
            if (ver != ESC_MSG_VERSION) {
                esc_error_set(err, 0, "batch: unsupported schema version %" PRIu64, ver);
                return ESC_INVALID;
            }
        }
        else if (klen == 4 && memcmp(key, "type", 4) == 0 && have_type) {
            esc_error_set(err, 0, "batch: duplicate key 'type'");
            return ESC_INVALID;
        }
        else if (klen == 4 && memcmp(key, "msgs", 4) == 0) {
            if (have_msgs) {
                esc_error_set(err, 0, "batch: duplicate key 'msgs'");
                return ESC_INVALID;
            }
            have_msgs = true;
            if (vh.kind != S_MP_ARRAY) {
                esc_error_set(err, 0, "batch key 'msgs': expected array, got %s",
                              s_mp_kind_name(b + off, &vh));
                return ESC_INVALID;
            }
            it->count = (size_t)vh.nested;
            it->off = off + vh.hdr;
            if (s_mp_skip(b + it->off, len - it->off, vh.nested, &used) == S_MP_OK) {
                it->end = it->off + used;
                off = it->end;
                continue;
            }
            /* Cut short: what can be read is still handed out, element by element. */
            it->broken = true;
            it->end = len;
            continue;
        }
        else if (klen == 4 && memcmp(key, "type", 4) == 0) {
            have_type = true;
        }
        if (s_mp_skip(b + off, len - off, 1, &used) != S_MP_OK) {
            esc_error_set(err, 0, "truncated batch");
            return ESC_INVALID;
        }
        off += used;
    }
    if (!have_v) {
        esc_error_set(err, 0, "batch: missing required key 'v'");
        return ESC_INVALID;
    }
    if (!have_msgs) {
        esc_error_set(err, 0, "batch: missing required key 'msgs'");
        return ESC_INVALID;
    }
    if (!it->broken && off != len) {
        esc_error_set(err, 0, "trailing bytes after batch");
        return ESC_INVALID;
    }
    return ESC_OK;
}

esc_rc
esc_batch_open(struct esc_batch_iter *it, const void *buf, size_t len, struct esc_error *err)
{
    const uint8_t *t;
    size_t tn;
    esc_rc rc;

    memset(it, 0, sizeof(*it));
    it->buf = buf;
    it->len = len;
    it->count = 1;
    if (buf == NULL || len == 0 || s_find_type(buf, len, &t, &tn) != 0 || tn != 5
        || memcmp(t, "batch", 5) != 0) {
        return ESC_OK; /* a single message (or garbage its decoder will name) */
    }
    it->batch = true;
    it->count = 0;
    if (len > ESC_MSG_MAX) {
        esc_error_set(err, 0, "batch too large (%zu > %d)", len, ESC_MSG_MAX);
        return ESC_INVALID;
    }
    rc = s_batch_header(it, err);
    if (rc != ESC_OK) {
        it->count = 0;
        it->next = 0;
    }
    return rc;
}

esc_rc
esc_batch_next(struct esc_batch_iter *it, const void **msg, size_t *len, struct esc_error *err)
{
    const uint8_t *p;
    struct s_mp_head h;
    size_t left, used;

    if (!it->batch) {
        if (it->next > 0) {
            return ESC_CLOSED;
        }
        it->index = 0;
        it->next = 1;
        *msg = it->buf;
        *len = it->len;
        return ESC_OK;
    }
    if (it->next >= it->count) {
        return ESC_CLOSED;
    }
    it->index = it->next++;
    p = it->buf + it->off;
    left = it->end - it->off;
    if (s_mp_head_read(p, left, &h) != S_MP_OK || h.body > left - h.hdr) {
        esc_error_set(err, 0, "batch message %zu of %zu: truncated batch", it->index, it->count);
        it->next = it->count; /* nothing after it can be found */
        return ESC_INVALID;
    }
    if (!s_mp_is_bin(p)) {
        esc_error_set(err, 0, "batch message %zu of %zu: expected bin, got %s", it->index,
                      it->count, s_mp_kind_name(p, &h));
        if (s_mp_skip(p, left, 1, &used) != S_MP_OK) {
            it->next = it->count;
        }
        else {
            it->off += used;
        }
        return ESC_INVALID;
    }
    *msg = p + h.hdr;
    *len = (size_t)h.body;
    it->off += h.hdr + (size_t)h.body;
    return ESC_OK;
}
