#define ESC_LOG_MODULE "postjson"
/* The project's own post JSON (docs/post-format.md) <-> struct esc_post, and alerts -> JSON
 * (the webhook payload). Reading is a streaming parse with yajl that fills struct esc_post
 * directly (no tree, no allocation but the post's own strings); writing uses jansson, which also
 * gives the exact error text for input the streaming parse refuses. One field table drives both
 * directions, so what esc_post_to_json writes is exactly what esc_post_from_json reads back.
 * Parsing is strict about the fields it knows (types, limits, NUL bytes, duplicate keys,
 * nesting) and ignores the ones it does not. Output is compact, single-line UTF-8; strings that
 * are not valid UTF-8 (msgpack does not validate) are repaired with U+FFFD so a bad byte never
 * loses a whole field. No global state: thread-safe. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <yajl/yajl_parse.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

/* A post needs two levels (the object, then author / lists); one more is tolerated so extra
 * fields like "media":[{...}] do not get a line rejected. */
#define S_JSON_DEPTH_MAX 3
/* Largest RFC 3339 time written as a string: 9999-12-31T23:59:59.999Z. Times outside
 * [1970, 9999] are written as integer Unix ms, which esc_post_from_json also accepts. */
#define S_ISO_MAX_MS INT64_C(253402300799999)

enum s_kind {
    J_ID,     /* string, or integer converted to decimal */
    J_STR,    /* string or null */
    J_AUTHOR, /* {"handle","name","followers"} or a plain handle string */
    J_TIME,   /* RFC 3339 string or integer Unix ms */
    J_MS,     /* integer Unix ms */
    J_COUNT,  /* non-negative integer */
    J_LIST,   /* array of strings */
    J_NUM,    /* number */
};

enum {
    J_REQ = 1,      /* must be present */
    J_NONEMPTY = 2, /* and not "" */
    J_CLS = 4,      /* classifier output: written only for classified posts */
};

struct s_jfield {
    const char *name;
    enum s_kind kind;
    unsigned flags;
    size_t off;   /* offset in struct esc_post */
    size_t n_off; /* J_LIST: offset of the count */
    size_t max;   /* J_STR / J_LIST elements: longest string in bytes, 0 = no own limit */
};

#define J_F(name, kind, flags, field, max)                                                         \
    { name, kind, flags, offsetof(struct esc_post, field), 0, max }
#define J_L(name, flags, field, nfield)                                                            \
    {                                                                                              \
        name, J_LIST, flags, offsetof(struct esc_post, field), offsetof(struct esc_post, nfield), \
            ESC_POST_TEXT_MAX                                                                      \
    }

static const struct s_jfield s_fields[] = {
    J_F("id", J_ID, J_REQ | J_NONEMPTY, id, 0),
    J_F("platform", J_STR, J_REQ | J_NONEMPTY, platform, 0),
    J_F("source", J_STR, 0, source, 0),
    J_F("author", J_AUTHOR, 0, author, 0),
    J_F("text", J_STR, J_REQ, text, ESC_POST_TEXT_MAX),
    J_F("lang", J_STR, 0, lang, 0),
    J_F("url", J_STR, 0, url, 0),
    J_F("created_at", J_TIME, J_REQ, created_at, 0),
    J_F("ingested_at", J_MS, 0, ingested_at, 0),
    J_F("likes", J_COUNT, 0, likes, 0),
    J_F("reposts", J_COUNT, 0, reposts, 0),
    J_F("replies", J_COUNT, 0, replies, 0),
    J_L("hashtags", 0, hashtags, n_hashtags),
    J_L("mentions", 0, mentions, n_mentions),
    J_L("topics", J_CLS, topics, n_topics),
    J_F("language", J_STR, J_CLS, language, 0),
    J_F("sentiment", J_NUM, J_CLS, sentiment, 0),
};

static char **
s_str_at(struct esc_post *p, size_t off)
{
    return (char **)((char *)p + off);
}

static int64_t *
s_int_at(struct esc_post *p, size_t off)
{
    return (int64_t *)((char *)p + off);
}

static const char *
s_get_str(const struct esc_post *p, size_t off)
{
    return *(const char *const *)((const char *)p + off);
}

static int64_t
s_get_int(const struct esc_post *p, size_t off)
{
    return *(const int64_t *)((const char *)p + off);
}

static const char *
s_jtype(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "real";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* True when j holds containers nested more than S_JSON_DEPTH_MAX deep; depth is j's level.
 * Recursion stops one level past the limit, so the stack stays tiny. */
static int
s_too_deep(json_t *j, int depth)
{
    const char *key;
    json_t *v;
    size_t i;

    if (!json_is_object(j) && !json_is_array(j)) {
        return 0;
    }
    if (depth > S_JSON_DEPTH_MAX) {
        return 1;
    }
    if (json_is_array(j)) {
        for (i = 0; i < json_array_size(j); i++) {
            if (s_too_deep(json_array_get(j, i), depth + 1)) {
                return 1;
            }
        }
        return 0;
    }
    json_object_foreach(j, key, v) {
        if (s_too_deep(v, depth + 1)) {
            return 1;
        }
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at p (left bytes), or 0 when it is not one. Same rules as
 * jansson: no overlongs, no surrogates, nothing above U+10FFFF. */
static size_t
s_utf8_seq(const unsigned char *p, size_t left)
{
    uint32_t cp;
    size_t n, i;

    if (p[0] < 0x80) {
        return 1;
    }
    if (p[0] < 0xc2) {
        return 0;
    }
    if (p[0] <= 0xdf) {
        n = 2;
        cp = p[0] & 0x1fu;
    }
    else if (p[0] <= 0xef) {
        n = 3;
        cp = p[0] & 0x0fu;
    }
    else if (p[0] <= 0xf4) {
        n = 4;
        cp = p[0] & 0x07u;
    }
    else {
        return 0;
    }
    if (left < n) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff
        || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * JSON -> post: a streaming parse (yajl) straight into struct esc_post
 *
 * yajl calls back once per token. Values of the known fields are copied into `out` as they come,
 * and what the checks need (type, length, NUL byte, number) is noted per field. Once the whole
 * input has parsed, the fields are checked in table order, so the error named does not depend on
 * the order of the keys. Input that is not a well-formed object at most S_JSON_DEPTH_MAX deep
 * (syntax errors, another top-level type, deeper nesting) goes to jansson, and so do the few
 * things yajl accepts and jansson does not (\v and \f as white space, lone UTF-16 surrogates,
 * overlong or out-of-range UTF-8, a NUL byte in a key, duplicate keys, numbers out of range, an
 * unfinished token after the object): jansson's message, with its line and column, is then the
 * error, exactly as before the streaming parser. Where jansson is the more lenient one (it skips
 * a raw NUL byte right after a number or a literal), its tree is written out and read again, so
 * the result is the same too. Only input that fails the fast path pays for jansson.
 */

/* What a value in the input is, as far as the checks care. */
enum s_vt {
    V_NONE = 0, /* absent */
    V_NULL,
    V_BOOL,
    V_INT,
    V_REAL,
    V_STR,
    V_ARR,
    V_OBJ,
};

/* As jansson names them in the errors. */
static const char *const s_vt_names[] = {
    "absent", "null", "boolean", "integer", "real", "string", "array", "object",
};

struct s_val {
    enum s_vt t;
    bool nul;     /* V_STR: holds a NUL byte (written \u0000) */
    bool time_ok; /* V_STR of a J_TIME field: an RFC 3339 time, in i */
    size_t len;   /* V_STR: length in bytes */
    int64_t i;    /* V_INT; the time of a J_TIME string */
    double d;     /* V_REAL */
};

/* A J_LIST field. Its valid strings go straight into the post's array. */
struct s_list {
    size_t n;   /* elements seen */
    size_t cap; /* slots of the post's array */
    size_t bad; /* 1 + index of the first element that is not a valid string, 0 = none */
    struct s_val bad_v;
};

/* What the container open at a given depth is. */
enum s_ctx {
    C_SKIP = 0, /* nothing in it is read (duplicate keys are still checked) */
    C_ROOT,     /* the post */
    C_AUTHOR,   /* the "author" object */
    C_LIST,     /* the array of a J_LIST field */
};

/* Keys of the author object. */
enum {
    A_HANDLE,
    A_NAME,
    A_FOLLOWERS,
    A_N,
};

static const char *const s_author_keys[A_N] = { "handle", "name", "followers" };

/* A key of an object whose keys are not all known ones: duplicates are looked for at the end. */
struct s_key {
    uint32_t obj;  /* which object */
    const char *s; /* into the input, or `copy` */
    size_t len;
    char *copy;    /* owned copy when the key had escapes (yajl reuses its buffer), or NULL */
};

#define S_KEYS_INLINE 16
#define S_ARENA_SIZE 8192  /* yajl's own allocations for one post (handle, lexer, buffers) */
#define S_ARENA_HDR 16     /* size header before each arena block; keeps 16-byte alignment */
#define S_NUM_INLINE 64    /* numbers and times shorter than this are parsed from the stack */

struct s_parse {
    yajl_handle h;
    const unsigned char *in;
    size_t len;
    struct esc_post *out;
    int depth;                            /* containers open */
    enum s_ctx ctx[S_JSON_DEPTH_MAX + 1]; /* the container open at each depth */
    uint32_t obj[S_JSON_DEPTH_MAX + 1];   /* its number, when it is an object */
    uint32_t n_obj;
    size_t next_field;    /* where s_field_index starts looking */
    size_t root_end;      /* input offset just after the top-level object */
    int key;              /* field (root) or A_* (author) of the last key; -1 = not read */
    int list;             /* field of the open C_LIST */
    uint32_t seen;        /* root fields met (bit per s_fields index) */
    uint32_t seen_author; /* author keys met */
    bool defer;           /* jansson has to decide (see above) */
    struct s_val v[ESC_ARRAY_LEN(s_fields)];
    struct s_list lists[ESC_ARRAY_LEN(s_fields)];
    struct s_val author[A_N];
    size_t n_keys;
    size_t cap_keys;
    struct s_key *keys;
    size_t arena_used;
    /* Not cleared per parse: */
    struct s_key keys_inline[S_KEYS_INLINE];
    _Alignas(16) unsigned char arena[S_ARENA_SIZE];
};

/* yajl's allocator: a bump arena inside struct s_parse, so a post costs no malloc for the
 * parser itself; larger requests (a long escaped string) go to the heap. */
static bool
s_in_arena(const struct s_parse *ps, const void *p)
{
    uintptr_t a = (uintptr_t)ps->arena;
    uintptr_t q = (uintptr_t)p;

    return q >= a && q < a + S_ARENA_SIZE;
}

static void *
s_ya_malloc(void *ctx, size_t n)
{
    struct s_parse *ps = ctx;
    size_t need = S_ARENA_HDR + ((n + 15) & ~(size_t)15);
    unsigned char *p;

    if (n > S_ARENA_SIZE || need > S_ARENA_SIZE - ps->arena_used) {
        return esc_malloc(n);
    }
    p = ps->arena + ps->arena_used;
    ps->arena_used += need;
    memcpy(p, &n, sizeof(n));
    return p + S_ARENA_HDR;
}

static void
s_ya_free(void *ctx, void *p)
{
    if (!s_in_arena(ctx, p)) {
        esc_free(p);
    }
}

static void *
s_ya_realloc(void *ctx, void *p, size_t n)
{
    size_t old;
    void *q;

    if (p == NULL) {
        return s_ya_malloc(ctx, n);
    }
    if (!s_in_arena(ctx, p)) {
        return esc_realloc(p, n);
    }
    memcpy(&old, (unsigned char *)p - S_ARENA_HDR, sizeof(old));
    if (n <= old) {
        return p;
    }
    q = s_ya_malloc(ctx, n);
    memcpy(q, p, old);
    return q;
}

/* True when s[0, len) is valid UTF-8 by jansson's rules (s_utf8_seq). */
static bool
s_utf8_ok(const unsigned char *s, size_t len)
{
    size_t i = 0;
    size_t n;
    uint64_t w;

    while (i < len) {
        if (len - i >= 8) {
            memcpy(&w, s + i, sizeof(w));
            if ((w & UINT64_C(0x8080808080808080)) == 0) {
                i += 8;
                continue;
            }
        }
        n = s_utf8_seq(s + i, len - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

/* The value of four hex digits (yajl's lexer has checked them). */
static unsigned
s_hex4(const unsigned char *p)
{
    unsigned v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        unsigned c = p[i];

        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= c - '0';
        }
        else {
            v |= (c | 0x20u) - 'a' + 10;
        }
    }
    return v;
}

/* For a string or key that had escapes: its raw text ends just before the quote yajl has just
 * consumed. Checks every \uXXXX in it as jansson does: a high surrogate must be followed by a
 * low one, and a low one may not stand alone (yajl would turn both into '?' or into invalid
 * UTF-8). */
static bool
s_escapes_ok(const struct s_parse *ps)
{
    const unsigned char *in = ps->in;
    size_t end = yajl_get_bytes_consumed(ps->h);
    size_t start, q, p;
    unsigned cp;

    if (end == 0 || end > ps->len || in[end - 1] != '"') {
        return false;
    }
    end--;
    /* The opening quote is the nearest one before that is not escaped. */
    start = end;
    for (;;) {
        if (start == 0) {
            return false;
        }
        start--;
        if (in[start] != '"') {
            continue;
        }
        q = start;
        while (q > 0 && in[q - 1] == '\\') {
            q--;
        }
        if ((start - q) % 2 == 0) {
            break;
        }
    }
    for (p = start + 1; p < end; p++) {
        if (in[p] != '\\') {
            continue;
        }
        p++;
        if (in[p] != 'u') {
            continue;
        }
        cp = s_hex4(in + p + 1);
        p += 4;
        if (cp >= 0xdc00 && cp <= 0xdfff) {
            return false;
        }
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (p + 6 >= end || in[p + 1] != '\\' || in[p + 2] != 'u') {
                return false;
            }
            cp = s_hex4(in + p + 3);
            if (cp < 0xdc00 || cp > 0xdfff) {
                return false;
            }
            p += 6;
        }
    }
    return true;
}

/* Checks a string or key as jansson would have read it. *escaped: it came from yajl's decode
 * buffer (it had escapes), so it may hold NUL bytes (*nul). Returns false when jansson would
 * refuse the input. */
static bool
s_text_ok(const struct s_parse *ps, const unsigned char *s, size_t len, bool *nul)
{
    uintptr_t a = (uintptr_t)ps->in;
    bool escaped = (uintptr_t)s < a || (uintptr_t)s >= a + ps->len;

    *nul = false;
    if (escaped) {
        if (!s_escapes_ok(ps)) {
            return false;
        }
        *nul = len > 0 && memchr(s, '\0', len) != NULL;
    }
    return s_utf8_ok(s, len);
}

static int
s_defer(struct s_parse *ps)
{
    ps->defer = true;
    return 0; /* stops yajl */
}

/* The record of the value at the current position, or NULL when nothing reads it. *dest is
 * where a string there is copied (NULL: not copied). */
static struct s_val *
s_target(struct s_parse *ps, char ***dest)
{
    const struct s_jfield *f;

    *dest = NULL;
    if (ps->key < 0) {
        return NULL;
    }
    if (ps->depth == 1) {
        f = &s_fields[ps->key];
        if (f->kind == J_ID || f->kind == J_STR) {
            *dest = s_str_at(ps->out, f->off);
        }
        else if (f->kind == J_AUTHOR) {
            *dest = &ps->out->author;
        }
        return &ps->v[ps->key];
    }
    if (ps->depth == 2 && ps->ctx[2] == C_AUTHOR) {
        if (ps->key == A_HANDLE) {
            *dest = &ps->out->author;
        }
        else if (ps->key == A_NAME) {
            *dest = &ps->out->author_name;
        }
        return &ps->author[ps->key];
    }
    return NULL;
}

static char *
s_copy(const unsigned char *s, size_t len)
{
    char *c = esc_malloc(len + 1);

    memcpy(c, s, len);
    c[len] = '\0';
    return c;
}

/* An element of the open C_LIST. */
static void
s_list_elem(struct s_parse *ps, enum s_vt t, const unsigned char *s, size_t len, bool nul)
{
    struct s_list *l = &ps->lists[ps->list];
    const struct s_jfield *f = &s_fields[ps->list];
    char ***list = (char ***)((char *)ps->out + f->off);
    size_t *n = (size_t *)((char *)ps->out + f->n_off);
    size_t idx = l->n++;

    /* Past the limit, or after a bad element, the error is already decided. */
    if (idx >= ESC_POST_LIST_MAX || l->bad != 0) {
        return;
    }
    if (t != V_STR || nul || len > f->max) {
        l->bad = idx + 1;
        l->bad_v.t = t;
        l->bad_v.nul = nul;
        l->bad_v.len = len;
        return;
    }
    if (*n == l->cap) {
        l->cap = l->cap == 0 ? 4 : l->cap * 2;
        *list = esc_realloc(*list, l->cap * sizeof(**list));
    }
    (*list)[*n] = s_copy(s, len);
    (*n)++;
}

/* A value other than a string at the current position. */
static void
s_value(struct s_parse *ps, enum s_vt t, int64_t i, double d)
{
    struct s_val *v;
    char **dest;

    if (ps->depth == 2 && ps->ctx[2] == C_LIST) {
        s_list_elem(ps, t, NULL, 0, false);
        return;
    }
    v = s_target(ps, &dest);
    if (v != NULL) {
        v->t = t;
        v->i = i;
        v->d = d;
    }
}

static int
s_on_null(void *ctx)
{
    struct s_parse *ps = ctx;

    if (ps->depth == 0) {
        return s_defer(ps);
    }
    s_value(ps, V_NULL, 0, 0.0);
    return 1;
}

static int
s_on_bool(void *ctx, int b)
{
    struct s_parse *ps = ctx;

    (void)b;
    if (ps->depth == 0) {
        return s_defer(ps);
    }
    s_value(ps, V_BOOL, 0, 0.0);
    return 1;
}

/* Numbers as jansson reads them: without '.', 'e' or 'E' an integer, which must fit in int64
 * ("too big integer" otherwise); else a double, which must not overflow. */
static int
s_on_number(void *ctx, const char *s, size_t len)
{
    struct s_parse *ps = ctx;
    char small[S_NUM_INLINE];
    char *buf;
    char *end;
    uint64_t u = 0;
    uint64_t lim;
    size_t i = 0;
    bool neg;
    double d;

    if (ps->depth == 0) {
        return s_defer(ps);
    }
    if (memchr(s, '.', len) == NULL && memchr(s, 'e', len) == NULL
        && memchr(s, 'E', len) == NULL) {
        neg = len > 0 && s[0] == '-';
        lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (i = neg ? 1 : 0; i < len; i++) {
            unsigned dig = (unsigned)(s[i] - '0');

            if (u > (lim - dig) / 10) {
                return s_defer(ps);
            }
            u = u * 10 + dig;
        }
        /* -2^63 is representable; everything else is negated as a positive int64. */
        s_value(ps, V_INT, neg ? (u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u)
                                : (int64_t)u, 0.0);
        return 1;
    }
    buf = len < sizeof(small) ? small : esc_malloc(len + 1);
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    d = strtod(buf, &end);
    if (buf != small) {
        esc_free(buf);
    }
    if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE) {
        return s_defer(ps);
    }
    s_value(ps, V_REAL, 0, d);
    return 1;
}

/* A J_TIME string: is it an RFC 3339 time? */
static void
s_parse_time(struct s_val *v, const unsigned char *s, size_t len)
{
    char small[S_NUM_INLINE];
    char *buf;

    if (v->nul) {
        return;
    }
    buf = len < sizeof(small) ? small : esc_malloc(len + 1);
    memcpy(buf, s, len);
    buf[len] = '\0';
    v->time_ok = esc_time_parse_iso8601(buf, &v->i) == 0;
    if (buf != small) {
        esc_free(buf);
    }
}

static int
s_on_string(void *ctx, const unsigned char *s, size_t len)
{
    struct s_parse *ps = ctx;
    struct s_val *v;
    char **dest;
    bool nul;

    if (ps->depth == 0 || !s_text_ok(ps, s, len, &nul)) {
        return s_defer(ps);
    }
    if (ps->depth == 2 && ps->ctx[2] == C_LIST) {
        s_list_elem(ps, V_STR, s, len, nul);
        return 1;
    }
    v = s_target(ps, &dest);
    if (v == NULL) {
        return 1;
    }
    v->t = V_STR;
    v->nul = nul;
    v->len = len;
    if (dest != NULL) {
        *dest = s_copy(s, len);
    }
    else if (ps->depth == 1 && s_fields[ps->key].kind == J_TIME) {
        s_parse_time(v, s, len);
    }
    return 1;
}

/* True when the key s[0, len) is name. */
static bool
s_key_is(const char *name, const unsigned char *s, size_t len)
{
    return len > 0 && name[0] == (char)s[0] && strncmp(name, (const char *)s, len) == 0
           && name[len] == '\0';
}

/* Index of the root field named s[0, len), or -1. The search starts after the previous field
 * found (`from`): writers usually put the keys in the table's order. */
static int
s_field_index(const unsigned char *s, size_t len, size_t from)
{
    size_t n = ESC_ARRAY_LEN(s_fields);
    size_t i;

    for (i = 0; i < n; i++) {
        size_t k = (from + i) % n;

        if (s_key_is(s_fields[k].name, s, len)) {
            return (int)k;
        }
    }
    return -1;
}

/* A_* of the author key s[0, len), or -1. */
static int
s_author_index(const unsigned char *s, size_t len)
{
    int i;

    for (i = 0; i < A_N; i++) {
        if (s_key_is(s_author_keys[i], s, len)) {
            return i;
        }
    }
    return -1;
}

static void
s_key_add(struct s_parse *ps, const unsigned char *s, size_t len, bool copy)
{
    struct s_key *k;

    if (ps->n_keys == ps->cap_keys) {
        if (ps->keys == ps->keys_inline) {
            ps->keys = esc_malloc(2 * S_KEYS_INLINE * sizeof(*ps->keys));
            memcpy(ps->keys, ps->keys_inline, sizeof(ps->keys_inline));
            ps->cap_keys = 2 * S_KEYS_INLINE;
        }
        else {
            ps->cap_keys *= 2;
            ps->keys = esc_realloc(ps->keys, ps->cap_keys * sizeof(*ps->keys));
        }
    }
    k = &ps->keys[ps->n_keys++];
    k->obj = ps->obj[ps->depth];
    k->len = len;
    k->copy = copy ? s_copy(s, len) : NULL;
    k->s = copy ? k->copy : (const char *)s;
}

static int
s_on_key(void *ctx, const unsigned char *s, size_t len)
{
    struct s_parse *ps = ctx;
    uintptr_t a = (uintptr_t)ps->in;
    bool escaped = (uintptr_t)s < a || (uintptr_t)s >= a + ps->len;
    bool nul;
    int k = -1;

    if (!s_text_ok(ps, s, len, &nul) || nul) {
        return s_defer(ps); /* jansson: "NUL byte in object key not supported" */
    }
    if (ps->ctx[ps->depth] == C_ROOT) {
        k = s_field_index(s, len, ps->next_field);
        if (k >= 0 && (ps->seen & (UINT32_C(1) << k)) != 0) {
            return s_defer(ps); /* duplicate key */
        }
        if (k >= 0) {
            ps->seen |= UINT32_C(1) << k;
            ps->next_field = (size_t)k + 1;
        }
        ps->key = k;
    }
    else if (ps->ctx[ps->depth] == C_AUTHOR) {
        k = s_author_index(s, len);
        if (k >= 0 && (ps->seen_author & (UINT32_C(1) << k)) != 0) {
            return s_defer(ps);
        }
        if (k >= 0) {
            ps->seen_author |= UINT32_C(1) << k;
        }
        ps->key = k;
    }
    if (k < 0) {
        s_key_add(ps, s, len, escaped);
    }
    return 1;
}

/* Opens a container as the value at the current position. */
static int
s_open(struct s_parse *ps, enum s_vt t)
{
    enum s_ctx c = C_SKIP;

    if (ps->depth == 0) {
        if (t != V_OBJ) {
            return s_defer(ps); /* jansson: "expected a JSON object, got array" */
        }
        c = C_ROOT;
    }
    else if (ps->depth >= S_JSON_DEPTH_MAX) {
        return s_defer(ps); /* jansson: "nested too deep" unless the syntax is wrong */
    }
    else {
        if (ps->depth == 2 && ps->ctx[2] == C_LIST) {
            s_list_elem(ps, t, NULL, 0, false);
        }
        else {
            s_value(ps, t, 0, 0.0);
        }
        if (ps->depth == 1 && ps->key >= 0) {
            if (t == V_OBJ && s_fields[ps->key].kind == J_AUTHOR) {
                c = C_AUTHOR;
            }
            else if (t == V_ARR && s_fields[ps->key].kind == J_LIST) {
                c = C_LIST;
                ps->list = ps->key;
            }
        }
    }
    ps->depth++;
    ps->ctx[ps->depth] = c;
    if (t == V_OBJ) {
        ps->obj[ps->depth] = ++ps->n_obj;
    }
    return 1;
}

static int
s_on_start_map(void *ctx)
{
    return s_open(ctx, V_OBJ);
}

static int
s_on_start_array(void *ctx)
{
    return s_open(ctx, V_ARR);
}

static int
s_on_end(void *ctx)
{
    struct s_parse *ps = ctx;

    ps->depth--;
    if (ps->depth == 0) {
        ps->root_end = yajl_get_bytes_consumed(ps->h);
    }
    return 1;
}

/* True when only JSON white space follows the top-level object. yajl does not look at an
 * unfinished token there (`{} "abc`, `{} tru`) and calls the input complete. */
static bool
s_tail_ok(const struct s_parse *ps)
{
    size_t i;

    if (ps->root_end == 0 || ps->root_end > ps->len) {
        return false;
    }
    for (i = ps->root_end; i < ps->len; i++) {
        if (ps->in[i] != ' ' && ps->in[i] != '\t' && ps->in[i] != '\n' && ps->in[i] != '\r') {
            return false;
        }
    }
    return true;
}

static const yajl_callbacks s_callbacks = {
    .yajl_null = s_on_null,
    .yajl_boolean = s_on_bool,
    .yajl_number = s_on_number,
    .yajl_string = s_on_string,
    .yajl_start_map = s_on_start_map,
    .yajl_map_key = s_on_key,
    .yajl_end_map = s_on_end,
    .yajl_start_array = s_on_start_array,
    .yajl_end_array = s_on_end,
};

static int
s_key_cmp(const void *a, const void *b)
{
    const struct s_key *x = a;
    const struct s_key *y = b;

    if (x->obj != y->obj) {
        return x->obj < y->obj ? -1 : 1;
    }
    if (x->len != y->len) {
        return x->len < y->len ? -1 : 1;
    }
    return memcmp(x->s, y->s, x->len);
}

/* True when one object has the same key twice (among those not checked as they came). */
static bool
s_dup_keys(struct s_parse *ps)
{
    size_t i;

    if (ps->n_keys < 2) {
        return false;
    }
    qsort(ps->keys, ps->n_keys, sizeof(*ps->keys), s_key_cmp);
    for (i = 1; i < ps->n_keys; i++) {
        if (s_key_cmp(&ps->keys[i - 1], &ps->keys[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Parses the input into ps->out and the records. Returns false when jansson has to decide. */
static bool
s_parse(struct s_parse *ps)
{
    yajl_alloc_funcs afs = { s_ya_malloc, s_ya_realloc, s_ya_free, ps };
    yajl_status st;
    bool ok;

    /* yajl takes \v and \f as white space; jansson does not (and neither may be raw in a
     * string). */
    if (ps->len == 0 || memchr(ps->in, '\v', ps->len) != NULL
        || memchr(ps->in, '\f', ps->len) != NULL) {
        return false;
    }
    ps->h = yajl_alloc(&s_callbacks, &afs, ps);
    yajl_config(ps->h, yajl_dont_validate_strings, 1); /* checked by s_text_ok */
    st = yajl_parse(ps->h, ps->in, ps->len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(ps->h);
    }
    yajl_free(ps->h);
    ps->h = NULL;
    ok = st == yajl_status_ok && !ps->defer && s_tail_ok(ps) && !s_dup_keys(ps);
    return ok;
}

static void
s_parse_init(struct s_parse *ps, const char *json, size_t len, struct esc_post *out)
{
    memset(ps, 0, offsetof(struct s_parse, keys_inline));
    ps->in = (const unsigned char *)json;
    ps->len = len;
    ps->out = out;
    ps->key = -1;
    ps->keys = ps->keys_inline;
    ps->cap_keys = S_KEYS_INLINE;
}

static void
s_parse_fini(struct s_parse *ps)
{
    size_t i;

    for (i = 0; i < ps->n_keys; i++) {
        esc_free(ps->keys[i].copy);
    }
    if (ps->keys != ps->keys_inline) {
        esc_free(ps->keys);
    }
}

/* For input the streaming parse did not take: jansson parses it, exactly as esc_post_from_json
 * always did. When jansson refuses it, or it is not an object, or it is nested too deep, that
 * is the error (NULL returned). Otherwise jansson was more lenient than the fast path (a raw
 * NUL byte right after a number or a literal is one such quirk it has): the tree is written
 * out again as plain compact JSON, which the streaming parse reads the same as the original.
 * Returns that text (caller esc_frees) or NULL with err set. */
static char *
s_via_jansson(const char *json, size_t len, struct esc_error *err)
{
    json_error_t jerr;
    json_t *root;
    char *text = NULL;
    size_t n;

    /* NUL is allowed by the parser so the error can name the field that holds it. */
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
                      &jerr);
    if (root == NULL) {
        esc_error_set(err, 0, "invalid JSON: %s at column %d", jerr.text, jerr.column);
        if (err != NULL) {
            err->line = jerr.line;
            err->column = jerr.column;
        }
        return NULL;
    }
    if (!json_is_object(root)) {
        esc_error_set(err, 0, "expected a JSON object, got %s", s_jtype(root));
    }
    else if (s_too_deep(root, 1)) {
        esc_error_set(err, 0, "JSON nested too deep (more than %d levels)", S_JSON_DEPTH_MAX);
    }
    else {
        n = json_dumpb(root, NULL, 0, JSON_COMPACT);
        text = esc_malloc(n + 1);
        if (n == 0 || json_dumpb(root, text, n, JSON_COMPACT) != n) {
            ESC_FREE(text);
            esc_error_set(err, 0, "invalid JSON: cannot be read again");
        }
        else {
            text[n] = '\0';
        }
    }
    json_decref(root);
    return text;
}

/* The checks of a string field (s_take_str before the streaming parser). */
static esc_rc
s_check_str(const struct s_val *v, const char *path, unsigned flags, size_t max,
            struct esc_error *err)
{
    if (v->t != V_STR) {
        esc_error_set(err, 0, "field '%s': expected string, got %s", path, s_vt_names[v->t]);
        return ESC_INVALID;
    }
    if (v->nul) {
        esc_error_set(err, 0, "field '%s': contains NUL byte", path);
        return ESC_INVALID;
    }
    if (max > 0 && v->len > max) {
        esc_error_set(err, 0, "field '%s': too long (%zu > %zu bytes)", path, v->len, max);
        return ESC_INVALID;
    }
    if ((flags & J_NONEMPTY) != 0 && v->len == 0) {
        esc_error_set(err, 0, "field '%s': empty", path);
        return ESC_INVALID;
    }
    return ESC_OK;
}

static esc_rc
s_check_count(const struct s_val *v, const char *path, int64_t *out, struct esc_error *err)
{
    if (v->t != V_INT || v->i < 0) {
        esc_error_set(err, 0, "field '%s': must be a non-negative integer", path);
        return ESC_INVALID;
    }
    *out = v->i;
    return ESC_OK;
}

/* Absent, or an explicit null (the same for optional fields). */
static bool
s_absent(const struct s_val *v)
{
    return v->t == V_NONE || v->t == V_NULL;
}

static esc_rc
s_check_author(const struct s_parse *ps, const struct s_val *v, struct esc_post *out,
               struct esc_error *err)
{
    const struct s_val *a = ps->author;

    if (v->t == V_STR) {
        return s_check_str(v, "author", 0, 0, err);
    }
    if (v->t != V_OBJ) {
        esc_error_set(err, 0, "field 'author': expected object or string, got %s", s_vt_names[v->t]);
        return ESC_INVALID;
    }
    if (!s_absent(&a[A_HANDLE])
        && s_check_str(&a[A_HANDLE], "author.handle", 0, 0, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (!s_absent(&a[A_NAME]) && s_check_str(&a[A_NAME], "author.name", 0, 0, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (!s_absent(&a[A_FOLLOWERS])
        && s_check_count(&a[A_FOLLOWERS], "author.followers", &out->followers, err) != ESC_OK) {
        return ESC_INVALID;
    }
    return ESC_OK;
}

static esc_rc
s_check_list(const struct s_list *l, const struct s_val *v, const struct s_jfield *f,
             struct esc_error *err)
{
    char path[64];

    if (v->t != V_ARR) {
        esc_error_set(err, 0, "field '%s': expected array, got %s", f->name, s_vt_names[v->t]);
        return ESC_INVALID;
    }
    if (l->n > ESC_POST_LIST_MAX) {
        esc_error_set(err, 0, "field '%s': too many elements (%zu > %d)", f->name, l->n, ESC_POST_LIST_MAX);
        return ESC_INVALID;
    }
    if (l->bad != 0) {
        snprintf(path, sizeof(path), "%s[%zu]", f->name, l->bad - 1);
        return s_check_str(&l->bad_v, path, 0, f->max, err);
    }
    return ESC_OK;
}

/* Checks one field as recorded by the parse; strings are already in out. */
static esc_rc
s_check_field(const struct s_parse *ps, size_t i, struct esc_post *out, struct esc_error *err)
{
    const struct s_jfield *f = &s_fields[i];
    const struct s_val *v = &ps->v[i];
    char idbuf[32];

    if (v->t == V_NONE) {
        if ((f->flags & J_REQ) != 0) {
            esc_error_set(err, 0, "field '%s': missing", f->name);
            return ESC_INVALID;
        }
        return ESC_OK;
    }
    if (v->t == V_NULL && (f->flags & J_REQ) == 0) {
        return ESC_OK; /* explicit null == absent for optional fields */
    }
    switch (f->kind) {
    case J_ID:
        if (v->t == V_INT) {
            snprintf(idbuf, sizeof(idbuf), "%" PRId64, v->i);
            *s_str_at(out, f->off) = esc_strdup(idbuf);
            return ESC_OK;
        }
        if (v->t != V_STR) {
            esc_error_set(err, 0, "field '%s': expected string or integer, got %s", f->name,
                  s_vt_names[v->t]);
            return ESC_INVALID;
        }
        return s_check_str(v, f->name, f->flags, f->max, err);
    case J_STR:
        return s_check_str(v, f->name, f->flags, f->max, err);
    case J_AUTHOR:
        return s_check_author(ps, v, out, err);
    case J_TIME:
        if (v->t == V_INT || (v->t == V_STR && v->time_ok)) {
            *s_int_at(out, f->off) = v->i;
            return ESC_OK;
        }
        esc_error_set(err, 0, "field '%s': not an RFC 3339 time or Unix ms", f->name);
        return ESC_INVALID;
    case J_MS:
        if (v->t != V_INT) {
            esc_error_set(err, 0, "field '%s': expected integer (Unix ms), got %s", f->name,
                  s_vt_names[v->t]);
            return ESC_INVALID;
        }
        *s_int_at(out, f->off) = v->i;
        return ESC_OK;
    case J_COUNT:
        return s_check_count(v, f->name, s_int_at(out, f->off), err);
    case J_LIST:
        return s_check_list(&ps->lists[i], v, f, err);
    case J_NUM:
        if (v->t != V_INT && v->t != V_REAL) {
            esc_error_set(err, 0, "field '%s': expected number, got %s", f->name, s_vt_names[v->t]);
            return ESC_INVALID;
        }
        *(double *)((char *)out + f->off) = v->t == V_INT ? (double)v->i : v->d;
        return ESC_OK;
    }
    return ESC_INVALID;
}

esc_rc
esc_post_from_json(const char *json, size_t len, struct esc_post *out, struct esc_error *err)
{
    struct s_parse ps;
    char *again = NULL;
    esc_rc rc = ESC_INVALID;
    size_t i;

    esc_post_init(out);
    if (err != NULL) {
        err->text[0] = '\0';
        err->line = 0;
        err->column = 0;
    }
    if (len > ESC_MSG_MAX) {
        esc_error_set(err, 0, "post JSON too large (%zu > %d bytes)", len, ESC_MSG_MAX);
        return ESC_INVALID;
    }
    if (json == NULL) {
        json = "";
        len = 0;
    }
    s_parse_init(&ps, json, len, out);
    if (!s_parse(&ps)) {
        s_parse_fini(&ps);
        esc_post_fini(out);
        again = s_via_jansson(json, len, err);
        if (again == NULL) {
            return ESC_INVALID;
        }
        s_parse_init(&ps, again, strlen(again), out);
        if (!s_parse(&ps)) {
            /* jansson's own output refused: the two parsers disagree (never seen; the fuzz
             * targets exercise both). */
            esc_error_set(err, 0, "invalid JSON: refused by the streaming parser");
            goto out;
        }
    }
    for (i = 0; i < ESC_ARRAY_LEN(s_fields); i++) {
        if (s_check_field(&ps, i, out, err) != ESC_OK) {
            goto out;
        }
    }
    rc = ESC_OK;
out:
    s_parse_fini(&ps);
    esc_free(again);
    if (rc != ESC_OK) {
        esc_post_fini(out);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * post / alert -> JSON
 */

/* A JSON string for s (NULL -> null); invalid UTF-8 bytes become U+FFFD. New reference. */
static json_t *
s_jstr(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len, i = 0, o = 0;
    char *fixed;
    json_t *j;

    if (s == NULL) {
        return json_null();
    }
    j = json_string(s);
    if (j != NULL) {
        return j;
    }
    len = strlen(s);
    fixed = esc_malloc(len * 3 + 1);
    while (i < len) {
        size_t n = s_utf8_seq(p + i, len - i);

        if (n == 0) {
            memcpy(fixed + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
        else {
            memcpy(fixed + o, p + i, n);
            o += n;
            i += n;
        }
    }
    fixed[o] = '\0';
    j = json_string(fixed);
    esc_free(fixed);
    return j != NULL ? j : json_null();
}

/* JSON has no NaN or infinity: those become null. */
static json_t *
s_jnum(double d)
{
    return isfinite(d) ? json_real(d) : json_null();
}

/* Formats ms as RFC 3339 UTC, with milliseconds only when non-zero. Returns -1 when outside
 * [1970, 9999], where callers fall back to integer ms. */
static int
s_fmt_time(int64_t ms, char *out, size_t outsz)
{
    char base[32];

    if (ms < 0 || ms > S_ISO_MAX_MS) {
        return -1;
    }
    esc_time_fmt_iso8601(ms, base, sizeof(base));
    if (ms % 1000 == 0) {
        esc_strlcpy(out, base, outsz);
    }
    else {
        /* base is "YYYY-MM-DDTHH:MM:SSZ": keep the first 19 characters. */
        snprintf(out, outsz, "%.19s.%03dZ", base, (int)(ms % 1000));
    }
    return 0;
}

static json_t *
s_jtime(int64_t ms)
{
    char buf[40];

    if (s_fmt_time(ms, buf, sizeof(buf)) < 0) {
        return json_integer((json_int_t)ms);
    }
    return json_string(buf);
}

static json_t *
s_jlist(char *const *list, size_t n)
{
    json_t *a = json_array();
    size_t i;

    for (i = 0; i < n; i++) {
        json_array_append_new(a, s_jstr(list[i]));
    }
    return a;
}

/* Serialises j compactly into a caller-owned (esc_free) string and drops j. */
static char *
s_dump(json_t *j)
{
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT);
    size_t written;
    char *out;

    /* Every value was built from valid UTF-8 and finite numbers, so dumping cannot fail. */
    ESC_ASSERT(n > 0);
    out = esc_malloc(n + 1);
    written = json_dumpb(j, out, n, JSON_COMPACT);
    ESC_ASSERT(written == n);
    out[n] = '\0';
    json_decref(j);
    return out;
}

static json_t *
s_jauthor(const struct esc_post *p)
{
    json_t *a;

    if (p->author != NULL && p->author_name == NULL && p->followers == 0) {
        return s_jstr(p->author); /* the short form */
    }
    a = json_object();
    if (p->author != NULL) {
        json_object_set_new(a, "handle", s_jstr(p->author));
    }
    if (p->author_name != NULL) {
        json_object_set_new(a, "name", s_jstr(p->author_name));
    }
    json_object_set_new(a, "followers", json_integer((json_int_t)p->followers));
    return a;
}

char *
esc_post_to_json(const struct esc_post *p)
{
    json_t *o = json_object();
    int classified = p->topics != NULL || p->language != NULL;
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(s_fields); i++) {
        const struct s_jfield *f = &s_fields[i];
        json_t *v = NULL;

        if ((f->flags & J_CLS) != 0 && !classified) {
            continue;
        }
        switch (f->kind) {
        case J_ID:
        case J_STR:
            if (s_get_str(p, f->off) != NULL || (f->flags & J_REQ) != 0) {
                v = s_jstr(s_get_str(p, f->off));
            }
            break;
        case J_AUTHOR:
            if (p->author != NULL || p->author_name != NULL || p->followers != 0) {
                v = s_jauthor(p);
            }
            break;
        case J_TIME:
            v = s_jtime(s_get_int(p, f->off));
            break;
        case J_MS:
            if (s_get_int(p, f->off) != 0) {
                v = json_integer((json_int_t)s_get_int(p, f->off));
            }
            break;
        case J_COUNT:
            v = json_integer((json_int_t)s_get_int(p, f->off));
            break;
        case J_LIST:
            v = s_jlist(*(char **const *)((const char *)p + f->off),
                        *(const size_t *)((const char *)p + f->n_off));
            break;
        case J_NUM:
            v = s_jnum(*(const double *)((const char *)p + f->off));
            break;
        }
        if (v != NULL) {
            json_object_set_new(o, f->name, v);
        }
    }
    return s_dump(o);
}

static void
s_set_time(json_t *o, const char *key, const char *iso_key, int64_t ms)
{
    char buf[40];

    json_object_set_new(o, key, json_integer((json_int_t)ms));
    json_object_set_new(o, iso_key,
                        s_fmt_time(ms, buf, sizeof(buf)) == 0 ? json_string(buf) : json_null());
}

char *
esc_alert_to_json(const struct esc_alert *a)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", s_jstr(a->id));
    json_object_set_new(o, "team", s_jstr(a->team));
    json_object_set_new(o, "topic", s_jstr(a->topic));
    json_object_set_new(o, "topic_name", s_jstr(a->topic_name));
    json_object_set_new(o, "kind", s_jstr(a->kind));
    s_set_time(o, "window_start", "window_start_iso", a->window_start);
    s_set_time(o, "window_end", "window_end_iso", a->window_end);
    json_object_set_new(o, "observed", json_integer((json_int_t)a->observed));
    json_object_set_new(o, "expected", s_jnum(a->expected));
    json_object_set_new(o, "score", s_jnum(a->score));
    s_set_time(o, "ts", "ts_iso", a->ts);
    json_object_set_new(o, "samples", s_jlist(a->samples, a->n_samples));
    json_object_set_new(o, "sample_authors", s_jlist(a->sample_authors, a->n_sample_authors));
    json_object_set_new(o, "sample_urls", s_jlist(a->sample_urls, a->n_sample_urls));
    json_object_set_new(o, "terms", s_jlist(a->terms, a->n_terms));
    json_object_set_new(o, "query", s_jstr(a->query));
    return s_dump(o);
}
