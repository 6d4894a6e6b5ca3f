#define ESC_LOG_MODULE "postjson"
/* The project's own post JSON (docs/post-format.md) <-> struct esc_post, and alerts -> JSON
 * (the webhook payload), using jansson. This is the only file that sees json_t for posts.
 * One field table drives both directions, so what esc_post_to_json writes is exactly what
 * esc_post_from_json reads back. Parsing is strict about the fields it knows (types, limits,
 * NUL bytes, duplicate keys, nesting) and ignores the ones it does not. Output is compact,
 * single-line UTF-8; strings that are not valid UTF-8 (msgpack does not validate) are repaired
 * with U+FFFD so a bad byte never loses a whole field. No global state: thread-safe. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

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

static void
s_err(struct esc_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
s_err(struct esc_error *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    err->line = 0;
    err->column = 0;
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

/* ---------------------------------------------------------------------------------------------
 * JSON -> post
 */

/* Copies JSON string v (named `path` in errors) into *out. */
static esc_rc
s_take_str(const json_t *v, const char *path, unsigned flags, size_t max, char **out,
           struct esc_error *err)
{
    const char *s;
    size_t n;

    if (!json_is_string(v)) {
        s_err(err, "field '%s': expected string, got %s", path, s_jtype(v));
        return ESC_INVALID;
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (strlen(s) != n) {
        s_err(err, "field '%s': contains NUL byte", path);
        return ESC_INVALID;
    }
    if (max > 0 && n > max) {
        s_err(err, "field '%s': too long (%zu > %zu bytes)", path, n, max);
        return ESC_INVALID;
    }
    if ((flags & J_NONEMPTY) != 0 && n == 0) {
        s_err(err, "field '%s': empty", path);
        return ESC_INVALID;
    }
    *out = esc_strndup(s, n);
    return ESC_OK;
}

static esc_rc
s_take_count(const json_t *v, const char *path, int64_t *out, struct esc_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        s_err(err, "field '%s': must be a non-negative integer", path);
        return ESC_INVALID;
    }
    *out = (int64_t)json_integer_value(v);
    return ESC_OK;
}

static esc_rc
s_take_author(const json_t *v, struct esc_post *out, struct esc_error *err)
{
    const json_t *h, *n, *f;

    if (json_is_string(v)) {
        return s_take_str(v, "author", 0, 0, &out->author, err);
    }
    if (!json_is_object(v)) {
        s_err(err, "field 'author': expected object or string, got %s", s_jtype(v));
        return ESC_INVALID;
    }
    h = json_object_get(v, "handle");
    n = json_object_get(v, "name");
    f = json_object_get(v, "followers");
    if (h != NULL && !json_is_null(h)
        && s_take_str(h, "author.handle", 0, 0, &out->author, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (n != NULL && !json_is_null(n)
        && s_take_str(n, "author.name", 0, 0, &out->author_name, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (f != NULL && !json_is_null(f)
        && s_take_count(f, "author.followers", &out->followers, err) != ESC_OK) {
        return ESC_INVALID;
    }
    return ESC_OK;
}

static esc_rc
s_take_list(const json_t *v, const struct s_jfield *f, struct esc_post *out,
            struct esc_error *err)
{
    char ***list = (char ***)((char *)out + f->off);
    size_t *n = (size_t *)((char *)out + f->n_off);
    char path[64];
    size_t i;

    if (!json_is_array(v)) {
        s_err(err, "field '%s': expected array, got %s", f->name, s_jtype(v));
        return ESC_INVALID;
    }
    if (json_array_size(v) > ESC_POST_LIST_MAX) {
        s_err(err, "field '%s': too many elements (%zu > %d)", f->name, json_array_size(v),
              ESC_POST_LIST_MAX);
        return ESC_INVALID;
    }
    if (json_array_size(v) == 0) {
        return ESC_OK;
    }
    /* Filled one by one with *n counting, so fini frees exactly what was copied so far. */
    *list = esc_calloc(json_array_size(v), sizeof(**list));
    for (i = 0; i < json_array_size(v); i++) {
        snprintf(path, sizeof(path), "%s[%zu]", f->name, i);
        if (s_take_str(json_array_get(v, i), path, 0, f->max, &(*list)[i], err) != ESC_OK) {
            return ESC_INVALID;
        }
        (*n)++;
    }
    return ESC_OK;
}

static esc_rc
s_take_field(const json_t *root, const struct s_jfield *f, struct esc_post *out,
             struct esc_error *err)
{
    const json_t *v = json_object_get(root, f->name);
    char idbuf[32];
    int64_t ms;

    if (v == NULL) {
        if ((f->flags & J_REQ) != 0) {
            s_err(err, "field '%s': missing", f->name);
            return ESC_INVALID;
        }
        return ESC_OK;
    }
    if (json_is_null(v) && (f->flags & J_REQ) == 0) {
        return ESC_OK; /* explicit null == absent for optional fields */
    }
    switch (f->kind) {
    case J_ID:
        if (json_is_integer(v)) {
            snprintf(idbuf, sizeof(idbuf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            *s_str_at(out, f->off) = esc_strdup(idbuf);
            return ESC_OK;
        }
        if (!json_is_string(v)) {
            s_err(err, "field '%s': expected string or integer, got %s", f->name, s_jtype(v));
            return ESC_INVALID;
        }
        return s_take_str(v, f->name, f->flags, f->max, s_str_at(out, f->off), err);
    case J_STR:
        return s_take_str(v, f->name, f->flags, f->max, s_str_at(out, f->off), err);
    case J_AUTHOR:
        return s_take_author(v, out, err);
    case J_TIME:
        if (json_is_integer(v)) {
            *s_int_at(out, f->off) = (int64_t)json_integer_value(v);
            return ESC_OK;
        }
        if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)
            && esc_time_parse_iso8601(json_string_value(v), &ms) == 0) {
            *s_int_at(out, f->off) = ms;
            return ESC_OK;
        }
        s_err(err, "field '%s': not an RFC 3339 time or Unix ms", f->name);
        return ESC_INVALID;
    case J_MS:
        if (!json_is_integer(v)) {
            s_err(err, "field '%s': expected integer (Unix ms), got %s", f->name, s_jtype(v));
            return ESC_INVALID;
        }
        *s_int_at(out, f->off) = (int64_t)json_integer_value(v);
        return ESC_OK;
    case J_COUNT:
        return s_take_count(v, f->name, s_int_at(out, f->off), err);
    case J_LIST:
        return s_take_list(v, f, out, err);
    case J_NUM:
        if (!json_is_number(v)) {
            s_err(err, "field '%s': expected number, got %s", f->name, s_jtype(v));
            return ESC_INVALID;
        }
        *(double *)((char *)out + f->off) = json_number_value(v);
        return ESC_OK;
    }
    return ESC_INVALID;
}

esc_rc
esc_post_from_json(const char *json, size_t len, struct esc_post *out, struct esc_error *err)
{
    json_error_t jerr;
    json_t *root = NULL;
    esc_rc rc = ESC_INVALID;
    size_t i;

    esc_post_init(out);
    if (err != NULL) {
        err->text[0] = '\0';
        err->line = 0;
        err->column = 0;
    }
    if (len > ESC_MSG_MAX) {
        s_err(err, "post JSON too large (%zu > %d bytes)", len, ESC_MSG_MAX);
        goto out;
    }
    /* NUL is allowed by the parser so the error can name the field that holds it. */
    root = json_loadb(json != NULL ? json : "", json != NULL ? len : 0,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        s_err(err, "invalid JSON: %s at column %d", jerr.text, jerr.column);
        if (err != NULL) {
            err->line = jerr.line;
            err->column = jerr.column;
        }
        goto out;
    }
    if (!json_is_object(root)) {
        s_err(err, "expected a JSON object, got %s", s_jtype(root));
        goto out;
    }
    if (s_too_deep(root, 1)) {
        s_err(err, "JSON nested too deep (more than %d levels)", S_JSON_DEPTH_MAX);
        goto out;
    }
    for (i = 0; i < ESC_ARRAY_LEN(s_fields); i++) {
        if (s_take_field(root, &s_fields[i], out, err) != ESC_OK) {
            goto out;
        }
    }
    rc = ESC_OK;
out:
    json_decref(root);
    if (rc != ESC_OK) {
        esc_post_fini(out);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * post / alert -> JSON
 */

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
