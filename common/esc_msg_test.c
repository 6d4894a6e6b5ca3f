#define ESC_LOG_MODULE "test"
/* Unit tests of the message codecs: msgpack round trips for post / classified / alert, every
 * decoder rejection with its exact reason (missing keys, wrong types, limits, NUL bytes,
 * truncation at every prefix, trailing bytes, versions, hostile headers), thousands of random
 * and mutated buffers (run under ASan/UBSan), peek_type, and the post JSON shape both ways.
 * Hand-made messages are built with msgpack-c directly so the tests do not trust the encoder. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define T_CREATED INT64_C(1794837780000) /* 2026-11-16T14:03:00Z */
#define T_INGESTED INT64_C(1794837790123)

/* ---------------------------------------------------------------------------------------------
 * Fixtures and comparisons
 */

static void
s_fill_post(struct esc_post *p, int classified)
{
    esc_post_init(p);
    p->id = esc_strdup("109372");
    p->platform = esc_strdup("mastodon");
    p->source = esc_strdup("mastodon.peru");
    p->author = esc_strdup("@ana@mastodon.social");
    p->author_name = esc_strdup("Ana");
    p->followers = 1200;
    p->text = esc_strdup("La #Elecciones de hoy @jne_peru");
    p->lang = esc_strdup("es");
    p->url = esc_strdup("https://mastodon.social/@ana/109372");
    p->created_at = T_CREATED;
    p->ingested_at = T_INGESTED;
    p->likes = 3;
    p->reposts = 1;
    p->replies = -2; /* negative ints travel too */
    esc_strlist_push(&p->hashtags, &p->n_hashtags, "Elecciones");
    esc_strlist_push(&p->hashtags, &p->n_hashtags, "Peru2026");
    esc_strlist_push(&p->mentions, &p->n_mentions, "jne_peru");
    if (classified) {
        esc_strlist_push(&p->topics, &p->n_topics, "peru/elecciones");
        esc_strlist_push(&p->topics, &p->n_topics, "peru/jne");
        p->language = esc_strdup("es");
        p->sentiment = -0.375;
    }
}

static void
s_fill_alert(struct esc_alert *a)
{
    esc_alert_init(a);
    a->id = esc_strdup("peru/elecciones/1794837600000");
    a->team = esc_strdup("peru");
    a->topic = esc_strdup("elecciones");
    a->topic_name = esc_strdup("Elecciones 2026");
    a->kind = esc_strdup("spike");
    a->window_start = INT64_C(1794837600000);
    a->window_end = INT64_C(1794837900000);
    a->observed = 412;
    a->expected = 37.25;
    a->score = 412.0 / 37.25;
    a->ts = INT64_C(1794837901234);
    esc_strlist_push(&a->samples, &a->n_samples, "primer post");
    esc_strlist_push(&a->samples, &a->n_samples, "segundo post ñ");
    esc_strlist_push(&a->sample_authors, &a->n_sample_authors, "@ana@mastodon.social");
    esc_strlist_push(&a->sample_authors, &a->n_sample_authors, "@luis");
    esc_strlist_push(&a->sample_urls, &a->n_sample_urls, "https://mastodon.social/@ana/1");
    esc_strlist_push(&a->sample_urls, &a->n_sample_urls, "");
    esc_strlist_push(&a->terms, &a->n_terms, "vacancia");
    esc_strlist_push(&a->terms, &a->n_terms, "congreso");
    a->query = esc_strdup("congreso OR \"poder legislativo\"");
}

static void
s_assert_str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        assert_ptr_equal(a, b);
        return;
    }
    assert_string_equal(a, b);
}

static void
s_assert_list_eq(char **a, size_t na, char **b, size_t nb)
{
    size_t i;

    assert_int_equal(na, nb);
    for (i = 0; i < na; i++) {
        s_assert_str_eq(a[i], b[i]);
    }
    if (na == 0) {
        assert_null(a);
        assert_null(b);
    }
}

static void
s_assert_post_eq(const struct esc_post *a, const struct esc_post *b)
{
    s_assert_str_eq(a->id, b->id);
    s_assert_str_eq(a->platform, b->platform);
    s_assert_str_eq(a->source, b->source);
    s_assert_str_eq(a->author, b->author);
    s_assert_str_eq(a->author_name, b->author_name);
    assert_int_equal(a->followers, b->followers);
    s_assert_str_eq(a->text, b->text);
    s_assert_str_eq(a->lang, b->lang);
    s_assert_str_eq(a->url, b->url);
    assert_int_equal(a->created_at, b->created_at);
    assert_int_equal(a->ingested_at, b->ingested_at);
    assert_int_equal(a->likes, b->likes);
    assert_int_equal(a->reposts, b->reposts);
    assert_int_equal(a->replies, b->replies);
    s_assert_list_eq(a->hashtags, a->n_hashtags, b->hashtags, b->n_hashtags);
    s_assert_list_eq(a->mentions, a->n_mentions, b->mentions, b->n_mentions);
    s_assert_list_eq(a->topics, a->n_topics, b->topics, b->n_topics);
    s_assert_str_eq(a->language, b->language);
    assert_true(a->sentiment == b->sentiment);
}

static void
s_assert_alert_eq(const struct esc_alert *a, const struct esc_alert *b)
{
    s_assert_str_eq(a->id, b->id);
    s_assert_str_eq(a->team, b->team);
    s_assert_str_eq(a->topic, b->topic);
    s_assert_str_eq(a->topic_name, b->topic_name);
    s_assert_str_eq(a->kind, b->kind);
    assert_int_equal(a->window_start, b->window_start);
    assert_int_equal(a->window_end, b->window_end);
    assert_int_equal(a->observed, b->observed);
    assert_true(a->expected == b->expected);
    assert_true(a->score == b->score);
    assert_int_equal(a->ts, b->ts);
    s_assert_list_eq(a->samples, a->n_samples, b->samples, b->n_samples);
    s_assert_list_eq(a->sample_authors, a->n_sample_authors, b->sample_authors,
                     b->n_sample_authors);
    s_assert_list_eq(a->sample_urls, a->n_sample_urls, b->sample_urls, b->n_sample_urls);
    s_assert_list_eq(a->terms, a->n_terms, b->terms, b->n_terms);
    s_assert_str_eq(a->query, b->query);
}

/* A post after a failed decode must be all zero (and so finalisable any number of times). */
static void
s_assert_post_empty(const struct esc_post *p)
{
    struct esc_post zero;

    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(p, &zero, sizeof(zero));
}

static void
s_assert_alert_empty(const struct esc_alert *a)
{
    struct esc_alert zero;

    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(a, &zero, sizeof(zero));
}

/* ---------------------------------------------------------------------------------------------
 * Hand-built messages
 */

typedef void (*s_pack_fn)(msgpack_packer *pk);

static const char *s_cur_type = "post";

static void
s_pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void
s_pk_v1(msgpack_packer *pk)
{
    msgpack_pack_uint8(pk, 1);
}

static void
s_pk_type(msgpack_packer *pk)
{
    s_pk_str(pk, s_cur_type);
}

static void
s_pk_id(msgpack_packer *pk)
{
    s_pk_str(pk, "109372");
}

static void
s_pk_ts(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, T_INGESTED);
}

static void
s_pk_platform(msgpack_packer *pk)
{
    s_pk_str(pk, "mastodon");
}

static void
s_pk_text(msgpack_packer *pk)
{
    s_pk_str(pk, "hola");
}

static void
s_pk_created(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, T_CREATED);
}

static void
s_pk_topics(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    s_pk_str(pk, "peru/elecciones");
}

static void
s_pk_team(msgpack_packer *pk)
{
    s_pk_str(pk, "peru");
}

static void
s_pk_topic(msgpack_packer *pk)
{
    s_pk_str(pk, "elecciones");
}

struct s_kv {
    const char *key;
    s_pack_fn fn;
};

static const struct s_kv s_post_kv[] = {
    {"v", s_pk_v1},           {"type", s_pk_type}, {"id", s_pk_id},
    {"ts", s_pk_ts},          {"platform", s_pk_platform}, {"text", s_pk_text},
    {"created_at", s_pk_created}, {NULL, NULL},
};

static const struct s_kv s_classified_kv[] = {
    {"v", s_pk_v1},           {"type", s_pk_type}, {"id", s_pk_id},
    {"ts", s_pk_ts},          {"platform", s_pk_platform}, {"text", s_pk_text},
    {"created_at", s_pk_created}, {"topics", s_pk_topics}, {NULL, NULL},
};

static const struct s_kv s_alert_kv[] = {
    {"v", s_pk_v1}, {"type", s_pk_type}, {"id", s_pk_id},
    {"ts", s_pk_ts}, {"team", s_pk_team}, {"topic", s_pk_topic}, {NULL, NULL},
};

/* Builds the smallest valid message of `type` into sb, without key `omit`, with key `key`
 * packed by fn (replacing the default value, or added as an extra entry when `append` is set or
 * the key has no default). */
static void
s_build(msgpack_sbuffer *sb, const char *type, const char *omit, const char *key, s_pack_fn fn,
        int append)
{
    const struct s_kv *kv = strcmp(type, "alert") == 0        ? s_alert_kv
                            : strcmp(type, "classified") == 0 ? s_classified_kv
                                                              : s_post_kv;
    msgpack_packer pk;
    size_t i, n = 0;
    int replaced = 0;

    s_cur_type = type;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    for (i = 0; kv[i].key != NULL; i++) {
        if (omit == NULL || strcmp(kv[i].key, omit) != 0) {
            n++;
        }
        if (key != NULL && strcmp(kv[i].key, key) == 0) {
            replaced = 1;
        }
    }
    if (key != NULL && (append || !replaced)) {
        n++;
    }
    msgpack_pack_map(&pk, n);
    for (i = 0; kv[i].key != NULL; i++) {
        if (omit != NULL && strcmp(kv[i].key, omit) == 0) {
            continue;
        }
        s_pk_str(&pk, kv[i].key);
        if (key != NULL && !append && strcmp(kv[i].key, key) == 0) {
            fn(&pk);
        }
        else {
            kv[i].fn(&pk);
        }
    }
    if (key != NULL && (append || !replaced)) {
        s_pk_str(&pk, key);
        fn(&pk);
    }
}

/* Decodes buf with the decoder for `type` and asserts it fails with exactly `want`. */
static void
s_expect_invalid(const char *type, const void *buf, size_t len, const char *want)
{
    struct esc_error err;
    struct esc_post p;
    struct esc_alert a;
    esc_rc rc;

    memset(&err, 0, sizeof(err));
    if (strcmp(type, "alert") == 0) {
        rc = esc_alert_decode(buf, len, &a, &err);
        s_assert_alert_empty(&a);
        esc_alert_fini(&a);
    }
    else {
        rc = esc_post_decode(buf, len, &p, NULL, &err);
        s_assert_post_empty(&p);
        esc_post_fini(&p);
    }
    if (rc != ESC_INVALID || strcmp(err.text, want) != 0) {
        fail_msg("type=%s want \"%s\" got rc=%d \"%s\"", type, want, (int)rc, err.text);
    }
    assert_string_equal(err.source, "<message>");
}

static void
s_expect_build_invalid(const char *type, const char *omit, const char *key, s_pack_fn fn,
                       int append, const char *want)
{
    msgpack_sbuffer sb;

    s_build(&sb, type, omit, key, fn, append);
    s_expect_invalid(type, sb.data, sb.size, want);
    msgpack_sbuffer_destroy(&sb);
}

/* Deterministic xorshift64*, so failures reproduce. */
static uint64_t s_rng = UINT64_C(0x9e3779b97f4a7c15);

static uint32_t
s_rand(void)
{
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return (uint32_t)((s_rng * UINT64_C(2685821657736338717)) >> 32);
}

/* ---------------------------------------------------------------------------------------------
 * msgpack: round trips
 */

static void
test_msg_post_roundtrip(void **state)
{
    struct esc_post in, out;
    struct esc_error err;
    enum esc_msg_type type = ESC_MSG_UNKNOWN;
    size_t len = 0;
    char *buf;

    s_fill_post(&in, 0);
    buf = esc_post_encode(&in, 0, &len);
    assert_non_null(buf);
    assert_true(len > 0 && len <= ESC_MSG_MAX);
    assert_int_equal(esc_post_decode(buf, len, &out, &type, &err), ESC_OK);
    assert_int_equal(type, ESC_MSG_POST);
    s_assert_post_eq(&in, &out);
    assert_int_equal(esc_msg_peek_type(buf, len), ESC_MSG_POST);
    esc_free(buf);
    esc_post_fini(&out);

    /* Optional fields absent: NULL strings, zero ints, no lists. */
    ESC_FREE(in.source);
    ESC_FREE(in.author);
    ESC_FREE(in.author_name);
    ESC_FREE(in.lang);
    ESC_FREE(in.url);
    esc_strlist_free(&in.hashtags, &in.n_hashtags);
    esc_strlist_free(&in.mentions, &in.n_mentions);
    in.followers = in.likes = in.reposts = in.replies = 0;
    ESC_FREE(in.text);
    in.text = esc_strdup("");
    buf = esc_post_encode(&in, 0, &len);
    assert_int_equal(esc_post_decode(buf, len, &out, NULL, NULL), ESC_OK);
    s_assert_post_eq(&in, &out);
    assert_string_equal(out.text, "");
    esc_free(buf);
    esc_post_fini(&out);
    esc_post_fini(&in);
    esc_post_fini(&in); /* fini twice is safe */
}

static void
test_msg_classified_roundtrip(void **state)
{
    struct esc_post in, out;
    enum esc_msg_type type = ESC_MSG_UNKNOWN;
    size_t len = 0;
    char *buf;

    s_fill_post(&in, 1);
    buf = esc_post_encode(&in, 1, &len);
    assert_int_equal(esc_post_decode(buf, len, &out, &type, NULL), ESC_OK);
    assert_int_equal(type, ESC_MSG_CLASSIFIED);
    s_assert_post_eq(&in, &out);
    assert_int_equal(esc_msg_peek_type(buf, len), ESC_MSG_CLASSIFIED);
    esc_free(buf);
    esc_post_fini(&out);

    /* Classified with no topic matched: topics is still sent (required), as an empty array. */
    esc_strlist_free(&in.topics, &in.n_topics);
    buf = esc_post_encode(&in, 1, &len);
    assert_int_equal(esc_post_decode(buf, len, &out, &type, NULL), ESC_OK);
    assert_int_equal(type, ESC_MSG_CLASSIFIED);
    s_assert_post_eq(&in, &out);
    esc_free(buf);
    esc_post_fini(&out);

    /* The same post encoded as a plain post drops the classifier fields. */
    buf = esc_post_encode(&in, 0, &len);
    assert_int_equal(esc_post_decode(buf, len, &out, &type, NULL), ESC_OK);
    assert_int_equal(type, ESC_MSG_POST);
    assert_null(out.language);
    assert_null(out.topics);
    assert_true(out.sentiment == 0.0);
    esc_free(buf);
    esc_post_fini(&out);
    esc_post_fini(&in);
}

static void
test_msg_alert_roundtrip(void **state)
{
    struct esc_alert in, out;
    struct esc_error err;
    size_t len = 0;
    char *buf;

    s_fill_alert(&in);
    buf = esc_alert_encode(&in, &len);
    assert_int_equal(esc_alert_decode(buf, len, &out, &err), ESC_OK);
    s_assert_alert_eq(&in, &out);
    assert_int_equal(esc_msg_peek_type(buf, len), ESC_MSG_ALERT);
    esc_free(buf);
    esc_alert_fini(&out);

    /* Infinite score (zero baseline) is a number msgpack can carry. */
    in.expected = 0.0;
    in.score = 1.0 / in.expected;
    esc_strlist_free(&in.samples, &in.n_samples);
    ESC_FREE(in.topic_name);
    buf = esc_alert_encode(&in, &len);
    assert_int_equal(esc_alert_decode(buf, len, &out, &err), ESC_OK);
    s_assert_alert_eq(&in, &out);
    esc_free(buf);
    esc_alert_fini(&out);
    esc_alert_fini(&in);
    esc_alert_fini(&in);
}

static void
test_msg_unicode_roundtrip(void **state)
{
    static const char text[] = "Ñandú corrió a votar 🗳️ — ¡qué acción! "
                               "café, pingüino, 日本語, "
                               "\xf0\x9f\x87\xb5\xf0\x9f\x87\xaa \xe2\x80\x8b end";
    struct esc_post in, out;
    size_t len = 0;
    char *buf;

    s_fill_post(&in, 1);
    ESC_FREE(in.text);
    in.text = esc_strdup(text);
    ESC_FREE(in.author_name);
    in.author_name = esc_strdup("José Ñúñez 😀");
    esc_strlist_push(&in.hashtags, &in.n_hashtags, "Perú");
    buf = esc_post_encode(&in, 1, &len);
    assert_int_equal(esc_post_decode(buf, len, &out, NULL, NULL), ESC_OK);
    assert_int_equal(strlen(out.text), sizeof(text) - 1);
    assert_memory_equal(out.text, text, sizeof(text));
    s_assert_post_eq(&in, &out);
    esc_free(buf);
    esc_post_fini(&out);

    /* Invalid UTF-8 is carried as is: repairing it is the classifier's job. */
    ESC_FREE(in.text);
    in.text = esc_strdup("a\xff\xfe b\xc3");
    buf = esc_post_encode(&in, 1, &len);
    assert_int_equal(esc_post_decode(buf, len, &out, NULL, NULL), ESC_OK);
    assert_string_equal(out.text, "a\xff\xfe b\xc3");
    esc_free(buf);
    esc_post_fini(&out);
    esc_post_fini(&in);
}

static void
test_msg_strlist_cap(void **state)
{
    char **list = NULL;
    size_t n = 0, i;
    char buf[16];

    for (i = 0; i < ESC_POST_LIST_MAX; i++) {
        snprintf(buf, sizeof(buf), "t%zu", i);
        assert_int_equal(esc_strlist_push(&list, &n, buf), 0);
    }
    assert_int_equal(n, ESC_POST_LIST_MAX);
    assert_int_equal(esc_strlist_push(&list, &n, "one too many"), -1);
    assert_int_equal(n, ESC_POST_LIST_MAX);
    assert_string_equal(list[0], "t0");
    assert_string_equal(list[ESC_POST_LIST_MAX - 1], "t255");
    esc_strlist_free(&list, &n);
    assert_null(list);
    assert_int_equal(n, 0);
    esc_strlist_free(&list, &n); /* again: NULL-safe */
    esc_strlist_free(NULL, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * msgpack: rejections
 */

static void
test_msg_minimal_messages_accepted(void **state)
{
    msgpack_sbuffer sb;
    struct esc_post p;
    struct esc_alert a;
    enum esc_msg_type type;

    s_build(&sb, "post", NULL, NULL, NULL, 0);
    assert_int_equal(esc_post_decode(sb.data, sb.size, &p, &type, NULL), ESC_OK);
    assert_int_equal(type, ESC_MSG_POST);
    assert_string_equal(p.text, "hola");
    assert_null(p.source);
    assert_int_equal(p.likes, 0);
    assert_int_equal(p.created_at, T_CREATED);
    assert_int_equal(p.ingested_at, T_INGESTED);
    esc_post_fini(&p);
    msgpack_sbuffer_destroy(&sb);

    s_build(&sb, "classified", NULL, NULL, NULL, 0);
    assert_int_equal(esc_post_decode(sb.data, sb.size, &p, &type, NULL), ESC_OK);
    assert_int_equal(type, ESC_MSG_CLASSIFIED);
    assert_int_equal(p.n_topics, 1);
    assert_string_equal(p.topics[0], "peru/elecciones");
    assert_null(p.language);
    esc_post_fini(&p);
    msgpack_sbuffer_destroy(&sb);

    s_build(&sb, "alert", NULL, NULL, NULL, 0);
    assert_int_equal(esc_alert_decode(sb.data, sb.size, &a, NULL), ESC_OK);
    assert_string_equal(a.team, "peru");
    assert_null(a.samples);
    esc_alert_fini(&a);
    msgpack_sbuffer_destroy(&sb);
}

static void
test_msg_missing_required_key(void **state)
{
    static const struct {
        const char *type, *key;
    } cases[] = {
        {"post", "v"},          {"post", "type"},         {"post", "id"},
        {"post", "ts"},         {"post", "platform"},     {"post", "text"},
        {"post", "created_at"}, {"classified", "topics"}, {"classified", "id"},
        {"classified", "text"}, {"alert", "v"},           {"alert", "type"},
        {"alert", "id"},        {"alert", "ts"},          {"alert", "team"},
        {"alert", "topic"},
    };
    char want[128];
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(cases); i++) {
        snprintf(want, sizeof(want), "missing required key '%s'", cases[i].key);
        s_expect_build_invalid(cases[i].type, cases[i].key, NULL, NULL, 0, want);
    }
}

static void
s_pk_int7(msgpack_packer *pk)
{
    msgpack_pack_int(pk, 7);
}

static void
s_pk_neg1(msgpack_packer *pk)
{
    msgpack_pack_int(pk, -1);
}

static void
s_pk_float(msgpack_packer *pk)
{
    msgpack_pack_double(pk, 3.5);
}

static void
s_pk_nil(msgpack_packer *pk)
{
    msgpack_pack_nil(pk);
}

static void
s_pk_true(msgpack_packer *pk)
{
    msgpack_pack_true(pk);
}

static void
s_pk_strval(msgpack_packer *pk)
{
    s_pk_str(pk, "x");
}

static void
s_pk_bin(msgpack_packer *pk)
{
    msgpack_pack_bin(pk, 2);
    msgpack_pack_bin_body(pk, "ab", 2);
}

static void
s_pk_map(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    s_pk_str(pk, "k");
    msgpack_pack_int(pk, 1);
}

static void
s_pk_ext(msgpack_packer *pk)
{
    msgpack_pack_ext(pk, 1, 5);
    msgpack_pack_ext_body(pk, "e", 1);
}

static void
s_pk_u64max(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, UINT64_MAX);
}

static void
s_pk_list_int(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    s_pk_str(pk, "ok");
    msgpack_pack_int(pk, 5);
}

static void
s_pk_str_nul(msgpack_packer *pk)
{
    msgpack_pack_str(pk, 3);
    msgpack_pack_str_body(pk, "a\0b", 3);
}

static void
s_pk_list_nul(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    s_pk_str_nul(pk);
}

static void
s_pk_tweet(msgpack_packer *pk)
{
    s_pk_str(pk, "tweet");
}

static void
s_pk_type_alert(msgpack_packer *pk)
{
    s_pk_str(pk, "alert");
}

static void
s_pk_type_post(msgpack_packer *pk)
{
    s_pk_str(pk, "post");
}

static void
s_pk_nan(msgpack_packer *pk)
{
    msgpack_pack_double(pk, NAN);
}

static void
s_pk_text_over(msgpack_packer *pk)
{
    char *s = esc_calloc(1, ESC_POST_TEXT_MAX + 1);

    memset(s, 'a', ESC_POST_TEXT_MAX + 1);
    msgpack_pack_str(pk, ESC_POST_TEXT_MAX + 1);
    msgpack_pack_str_body(pk, s, ESC_POST_TEXT_MAX + 1);
    esc_free(s);
}

static void
s_pk_list_over(msgpack_packer *pk)
{
    int i;

    msgpack_pack_array(pk, ESC_POST_LIST_MAX + 1);
    for (i = 0; i <= ESC_POST_LIST_MAX; i++) {
        s_pk_str(pk, "t");
    }
}

static void
s_pk_samples_over(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    s_pk_text_over(pk);
}

static void
test_msg_wrong_types(void **state)
{
    static const struct {
        const char *type, *key;
        s_pack_fn fn;
        const char *want;
    } cases[] = {
        {"post", "text", s_pk_int7, "key 'text': expected string, got int"},
        {"post", "text", s_pk_bin, "key 'text': expected string, got bin"},
        {"post", "id", s_pk_nil, "key 'id': expected string, got nil"},
        {"post", "platform", s_pk_map, "key 'platform': expected string, got map"},
        {"post", "source", s_pk_true, "key 'source': expected string, got bool"},
        {"post", "url", s_pk_ext, "key 'url': expected string, got ext"},
        {"post", "likes", s_pk_float, "key 'likes': expected int, got float"},
        {"post", "created_at", s_pk_strval, "key 'created_at': expected int, got string"},
        {"post", "ts", s_pk_float, "key 'ts': expected int, got float"},
        {"post", "followers", s_pk_u64max, "key 'followers': integer out of range"},
        {"post", "hashtags", s_pk_strval, "key 'hashtags': expected array, got string"},
        {"post", "mentions", s_pk_list_int, "key 'mentions' element 1: expected string, got int"},
        {"classified", "topics", s_pk_map, "key 'topics': expected array, got map"},
        {"classified", "sentiment", s_pk_strval, "key 'sentiment': expected number, got string"},
        {"classified", "sentiment", s_pk_nan, "key 'sentiment': not a number (NaN)"},
        {"classified", "language", s_pk_int7, "key 'language': expected string, got int"},
        {"post", "v", s_pk_strval, "key 'v': expected int, got string"},
        {"post", "v", s_pk_float, "key 'v': expected int, got float"},
        {"post", "type", s_pk_int7, "key 'type': expected string, got int"},
        {"post", "type", s_pk_tweet, "key 'type': unknown message type 'tweet'"},
        {"post", "type", s_pk_type_alert, "expected a post or classified message, got 'alert'"},
        {"alert", "type", s_pk_type_post, "expected an alert message, got 'post'"},
        {"alert", "observed", s_pk_float, "key 'observed': expected int, got float"},
        {"alert", "score", s_pk_list_int, "key 'score': expected number, got array"},
        {"alert", "team", s_pk_int7, "key 'team': expected string, got int"},
        {"alert", "samples", s_pk_list_int, "key 'samples' element 1: expected string, got int"},
    };
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(cases); i++) {
        s_expect_build_invalid(cases[i].type, NULL, cases[i].key, cases[i].fn, 0, cases[i].want);
    }
}

static void
test_msg_version_checked(void **state)
{
    s_expect_build_invalid("post", NULL, "v", s_pk_int7, 0, "unsupported schema version 7");
    s_expect_build_invalid("post", NULL, "v", s_pk_neg1, 0, "unsupported schema version -1");
    s_expect_build_invalid("alert", NULL, "v", s_pk_u64max, 0,
                           "unsupported schema version 18446744073709551615");
    /* The version is judged before anything else in the message. */
    s_expect_build_invalid("post", "text", "v", s_pk_int7, 0, "unsupported schema version 7");
}

static void
test_msg_nul_bytes_rejected(void **state)
{
    s_expect_build_invalid("post", NULL, "text", s_pk_str_nul, 0,
                           "key 'text': string contains NUL byte");
    s_expect_build_invalid("post", NULL, "author", s_pk_str_nul, 0,
                           "key 'author': string contains NUL byte");
    s_expect_build_invalid("post", NULL, "hashtags", s_pk_list_nul, 0,
                           "key 'hashtags' element 0: string contains NUL byte");
    s_expect_build_invalid("alert", NULL, "id", s_pk_str_nul, 0,
                           "key 'id': string contains NUL byte");
}

static void
test_msg_limits_enforced(void **state)
{
    char want[128];

    snprintf(want, sizeof(want), "key 'text': too long (%d > %d bytes)", ESC_POST_TEXT_MAX + 1,
             ESC_POST_TEXT_MAX);
    s_expect_build_invalid("post", NULL, "text", s_pk_text_over, 0, want);
    snprintf(want, sizeof(want), "key 'samples' element 0: too long (%d > %d bytes)",
             ESC_POST_TEXT_MAX + 1, ESC_POST_TEXT_MAX);
    s_expect_build_invalid("alert", NULL, "samples", s_pk_samples_over, 0, want);
    snprintf(want, sizeof(want), "key 'hashtags': too many elements (%d > %d)",
             ESC_POST_LIST_MAX + 1, ESC_POST_LIST_MAX);
    s_expect_build_invalid("post", NULL, "hashtags", s_pk_list_over, 0, want);
    snprintf(want, sizeof(want), "key 'topics': too many elements (%d > %d)",
             ESC_POST_LIST_MAX + 1, ESC_POST_LIST_MAX);
    s_expect_build_invalid("classified", NULL, "topics", s_pk_list_over, 0, want);
}

static void
test_msg_limits_at_edge_accepted(void **state)
{
    struct esc_post in, out;
    size_t len, i;
    char *buf;

    s_fill_post(&in, 1);
    ESC_FREE(in.text);
    in.text = esc_malloc(ESC_POST_TEXT_MAX + 1);
    memset(in.text, 'x', ESC_POST_TEXT_MAX);
    in.text[ESC_POST_TEXT_MAX] = '\0';
    for (i = in.n_hashtags; i < ESC_POST_LIST_MAX; i++) {
        assert_int_equal(esc_strlist_push(&in.hashtags, &in.n_hashtags, "h"), 0);
    }
    buf = esc_post_encode(&in, 1, &len);
    assert_int_equal(esc_post_decode(buf, len, &out, NULL, NULL), ESC_OK);
    assert_int_equal(strlen(out.text), ESC_POST_TEXT_MAX);
    assert_int_equal(out.n_hashtags, ESC_POST_LIST_MAX);
    s_assert_post_eq(&in, &out);
    esc_free(buf);
    esc_post_fini(&out);
    esc_post_fini(&in);
}

static void
test_msg_oversized_rejected(void **state)
{
    char want[128];
    uint8_t *big = esc_calloc(1, ESC_MSG_MAX + 1);

    big[0] = 0x81; /* looks like a map: the size check comes first */
    snprintf(want, sizeof(want), "message too large (%d > %d)", ESC_MSG_MAX + 1, ESC_MSG_MAX);
    s_expect_invalid("post", big, ESC_MSG_MAX + 1, want);
    s_expect_invalid("alert", big, ESC_MSG_MAX + 1, want);
    assert_int_equal(esc_msg_peek_type(big, ESC_MSG_MAX + 1), ESC_MSG_UNKNOWN);
    esc_free(big);
}

static void
test_msg_truncated_every_prefix(void **state)
{
    struct esc_post p;
    struct esc_alert a;
    size_t len, cut;
    char *buf;

    s_fill_post(&p, 1);
    buf = esc_post_encode(&p, 1, &len);
    esc_post_fini(&p);
    for (cut = 0; cut < len; cut++) {
        /* A private copy of exactly `cut` bytes, so ASan sees any read past the prefix. */
        char *prefix = esc_malloc(cut);

        memcpy(prefix, buf, cut);
        s_expect_invalid("post", prefix, cut, cut == 0 ? "empty message" : "truncated message");
        (void)esc_msg_peek_type(prefix, cut);
        esc_free(prefix);
    }
    esc_free(buf);

    s_fill_alert(&a);
    buf = esc_alert_encode(&a, &len);
    esc_alert_fini(&a);
    for (cut = 0; cut < len; cut++) {
        char *prefix = esc_malloc(cut);

        memcpy(prefix, buf, cut);
        s_expect_invalid("alert", prefix, cut, cut == 0 ? "empty message" : "truncated message");
        (void)esc_msg_peek_type(prefix, cut);
        esc_free(prefix);
    }
    esc_free(buf);
    s_expect_invalid("post", NULL, 0, "empty message");
}

static void
test_msg_trailing_bytes_rejected(void **state)
{
    struct esc_post p;
    size_t len;
    char *buf, *twice;

    s_fill_post(&p, 0);
    buf = esc_post_encode(&p, 0, &len);
    esc_post_fini(&p);
    buf = esc_realloc(buf, len + 1);
    buf[len] = (char)0xc0;
    s_expect_invalid("post", buf, len + 1, "trailing bytes after message");
    twice = esc_malloc(2 * len);
    memcpy(twice, buf, len);
    memcpy(twice + len, buf, len);
    s_expect_invalid("post", twice, 2 * len, "trailing bytes after message");
    esc_free(twice);
    esc_free(buf);
}

static void
test_msg_hostile_headers_rejected(void **state)
{
    /* Headers that claim far more elements or bytes than the buffer holds must not make the
     * decoder allocate for the claim. */
    static const uint8_t map32_huge[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 0x01};
    static const uint8_t map_arr32_huge[] = {0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t map_str32_huge[] = {0x81, 0xa1, 'x', 0xdb, 0xff, 0xff, 0xff, 0xf0, 'a'};
    static const uint8_t map_bin32_huge[] = {0x81, 0xa1, 'x', 0xc6, 0x7f, 0xff, 0xff, 0xff};
    static const uint8_t map_ext32_huge[] = {0x81, 0xa1, 'x', 0xc9, 0x00, 0xff, 0xff, 0xff, 1};
    static const uint8_t array32[] = {0xdd, 0x00, 0x00, 0x00, 0x01, 0xc0};
    static const uint8_t reserved[] = {0x81, 0xa1, 'x', 0xc1};
    static const uint8_t int_key[] = {0x81, 0x01, 0x02};
    static const uint8_t str_top[] = {0xa3, 'a', 'b', 'c'};
    static const uint8_t empty_map[] = {0x80};

    s_expect_invalid("post", map32_huge, sizeof(map32_huge), "truncated message");
    s_expect_invalid("post", map_arr32_huge, sizeof(map_arr32_huge), "truncated message");
    s_expect_invalid("post", map_str32_huge, sizeof(map_str32_huge), "truncated message");
    s_expect_invalid("alert", map_bin32_huge, sizeof(map_bin32_huge), "truncated message");
    s_expect_invalid("alert", map_ext32_huge, sizeof(map_ext32_huge), "truncated message");
    s_expect_invalid("post", array32, sizeof(array32), "not a map");
    s_expect_invalid("post", str_top, sizeof(str_top), "not a map");
    s_expect_invalid("post", reserved, sizeof(reserved), "malformed message");
    s_expect_invalid("post", int_key, sizeof(int_key), "map key 0: expected string, got int");
    s_expect_invalid("alert", empty_map, sizeof(empty_map), "missing required key 'v'");

    /* err and type_out are optional, on failure too. */
    {
        struct esc_post p;
        struct esc_alert a;

        assert_int_equal(esc_post_decode(map32_huge, sizeof(map32_huge), &p, NULL, NULL),
                         ESC_INVALID);
        esc_post_fini(&p);
        assert_int_equal(esc_alert_decode(reserved, sizeof(reserved), &a, NULL), ESC_INVALID);
        esc_alert_fini(&a);
    }
}

static void
s_pk_deep(msgpack_packer *pk, int depth)
{
    int i;

    for (i = 0; i < depth; i++) {
        msgpack_pack_array(pk, 1);
    }
    msgpack_pack_int(pk, 1);
}

static void
s_pk_deep10(msgpack_packer *pk)
{
    s_pk_deep(pk, 10);
}

static void
s_pk_deep100(msgpack_packer *pk)
{
    s_pk_deep(pk, 100);
}

static void
s_pk_extras(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    s_pk_str(pk, "nested");
    s_pk_list_int(pk);
    msgpack_pack_int(pk, 5); /* a non-string key deep inside an ignored value is fine */
    s_pk_bin(pk);
}

static void
test_msg_unknown_keys_ignored(void **state)
{
    msgpack_sbuffer sb;
    struct esc_post p;
    struct esc_alert a;

    s_build(&sb, "post", NULL, "future_field", s_pk_extras, 1);
    assert_int_equal(esc_post_decode(sb.data, sb.size, &p, NULL, NULL), ESC_OK);
    assert_string_equal(p.id, "109372");
    esc_post_fini(&p);
    msgpack_sbuffer_destroy(&sb);

    s_build(&sb, "alert", NULL, "deep", s_pk_deep10, 1);
    assert_int_equal(esc_alert_decode(sb.data, sb.size, &a, NULL), ESC_OK);
    esc_alert_fini(&a);
    msgpack_sbuffer_destroy(&sb);

    /* Classifier keys in a plain post are not read. */
    s_build(&sb, "post", NULL, "topics", s_pk_int7, 1);
    assert_int_equal(esc_post_decode(sb.data, sb.size, &p, NULL, NULL), ESC_OK);
    assert_null(p.topics);
    esc_post_fini(&p);
    msgpack_sbuffer_destroy(&sb);

    /* Beyond msgpack-c's fixed nesting stack the whole message is refused, not crashed on. */
    s_expect_build_invalid("post", NULL, "deep", s_pk_deep100, 1, "message nested too deep");
}

static void
test_msg_duplicate_key_rejected(void **state)
{
    s_expect_build_invalid("post", NULL, "text", s_pk_strval, 1, "duplicate key 'text'");
    s_expect_build_invalid("post", NULL, "v", s_pk_v1, 1, "duplicate key 'v'");
    s_expect_build_invalid("alert", NULL, "type", s_pk_type, 1, "duplicate key 'type'");
}

static void
test_msg_number_forms_accepted(void **state)
{
    msgpack_sbuffer sb;
    struct esc_post p;

    s_build(&sb, "post", NULL, "likes", s_pk_neg1, 0);
    assert_int_equal(esc_post_decode(sb.data, sb.size, &p, NULL, NULL), ESC_OK);
    assert_int_equal(p.likes, -1);
    esc_post_fini(&p);
    msgpack_sbuffer_destroy(&sb);

    s_build(&sb, "classified", NULL, "sentiment", s_pk_int7, 0);
    assert_int_equal(esc_post_decode(sb.data, sb.size, &p, NULL, NULL), ESC_OK);
    assert_true(p.sentiment == 7.0);
    esc_post_fini(&p);
    msgpack_sbuffer_destroy(&sb);

    s_build(&sb, "classified", NULL, "sentiment", s_pk_float, 0);
    assert_int_equal(esc_post_decode(sb.data, sb.size, &p, NULL, NULL), ESC_OK);
    assert_true(p.sentiment == 3.5);
    esc_post_fini(&p);
    msgpack_sbuffer_destroy(&sb);
}

/* esc_post_decode_into (the classifier's decoder) gives what esc_post_decode gives for buf:
 * result, reason and content. */
static void
s_check_into(const uint8_t *buf, size_t len)
{
    struct esc_error err, err2;
    struct esc_post p, q;
    struct esc_post_buf pb;
    enum esc_msg_type t1 = ESC_MSG_ALERT, t2 = ESC_MSG_ALERT;
    esc_rc rc1, rc2;

    memset(&err, 0, sizeof(err));
    memset(&err2, 0, sizeof(err2));
    esc_post_buf_init(&pb);
    rc1 = esc_post_decode(buf, len, &p, &t1, &err);
    rc2 = esc_post_decode_into(buf, len, &q, &t2, &pb, &err2);
    assert_int_equal(rc1, rc2);
    assert_int_equal(t1, t2);
    if (rc1 == ESC_OK) {
        s_assert_post_eq(&p, &q);
    }
    else {
        assert_string_equal(err.text, err2.text);
        s_assert_post_empty(&q);
    }
    esc_post_fini(&p);
    esc_post_buf_fini(&pb);
}

static void
s_check_garbage(const uint8_t *buf, size_t len, unsigned *n_ok)
{
    struct esc_error err;
    struct esc_post p;
    struct esc_alert a;
    enum esc_msg_type type, peek;
    esc_rc rc;

    peek = esc_msg_peek_type(buf, len);
    assert_true(peek >= ESC_MSG_UNKNOWN && peek <= ESC_MSG_ALERT);
    s_check_into(buf, len);
    rc = esc_post_decode(buf, len, &p, &type, &err);
    if (rc == ESC_OK) {
        assert_true(type == ESC_MSG_POST || type == ESC_MSG_CLASSIFIED);
        assert_int_equal(peek, type);
        assert_non_null(p.id);
        assert_non_null(p.text);
        (*n_ok)++;
    }
    else {
        assert_int_equal(rc, ESC_INVALID);
        assert_true(err.text[0] != '\0');
        s_assert_post_empty(&p);
    }
    esc_post_fini(&p);
    rc = esc_alert_decode(buf, len, &a, &err);
    if (rc == ESC_OK) {
        assert_int_equal(peek, ESC_MSG_ALERT);
        (*n_ok)++;
    }
    else {
        assert_int_equal(rc, ESC_INVALID);
        assert_true(err.text[0] != '\0');
        s_assert_alert_empty(&a);
    }
    esc_alert_fini(&a);
}

static void
test_msg_random_bytes_never_crash(void **state)
{
    unsigned i, n_ok = 0;
    size_t j;

    s_rng = UINT64_C(0x243f6a8885a308d3);
    for (i = 0; i < 20000; i++) {
        size_t len = s_rand() % 200;
        uint8_t *buf = esc_malloc(len);

        for (j = 0; j < len; j++) {
            buf[j] = (uint8_t)s_rand();
        }
        /* Half the buffers start like a map, so the decoder gets past the first byte. */
        if (len > 0 && (i & 1) != 0) {
            buf[0] = (uint8_t)(0x80 | (s_rand() & 0x0f));
        }
        s_check_garbage(buf, len, &n_ok);
        esc_free(buf);
    }
    assert_int_equal(n_ok, 0); /* random bytes never make a valid message */
}

static void
test_msg_mutations_never_crash(void **state)
{
    struct esc_post p;
    struct esc_alert a;
    size_t lens[2];
    char *orig[2];
    unsigned i, n_ok = 0, n_bad = 0;

    s_fill_post(&p, 1);
    orig[0] = esc_post_encode(&p, 1, &lens[0]);
    esc_post_fini(&p);
    s_fill_alert(&a);
    orig[1] = esc_alert_encode(&a, &lens[1]);
    esc_alert_fini(&a);
    s_rng = UINT64_C(0x13198a2e03707344);
    for (i = 0; i < 20000; i++) {
        size_t len = lens[i & 1], cap = len + 8, k, n_mut = 1 + s_rand() % 4;
        uint8_t *buf = esc_malloc(cap);
        unsigned before = n_ok;
        struct esc_post q;
        struct esc_alert b;
        enum esc_msg_type t;

        memcpy(buf, orig[i & 1], len);
        for (k = 0; k < n_mut && len > 0; k++) {
            size_t at = s_rand() % len;

            switch (s_rand() % 5) {
            case 0:
                buf[at] = (uint8_t)s_rand();
                break;
            case 1:
                buf[at] ^= (uint8_t)(1u << (s_rand() % 8));
                break;
            case 2:
                len = at; /* truncate */
                break;
            case 3:
                if (len < cap) { /* insert */
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = (uint8_t)s_rand();
                    len++;
                }
                break;
            default:
                memmove(buf + at, buf + at + 1, len - at - 1); /* delete */
                len--;
                break;
            }
        }
        buf = esc_realloc(buf, len); /* exact size: ASan catches reads past the end */
        s_check_garbage(buf, len, &n_ok);
        if (n_ok == before) {
            n_bad++;
        }
        /* Whatever decodes re-encodes to the same content. */
        if (esc_post_decode(buf, len, &q, &t, NULL) == ESC_OK) {
            struct esc_post r;
            size_t elen;
            char *enc = esc_post_encode(&q, t == ESC_MSG_CLASSIFIED, &elen);

            assert_int_equal(esc_post_decode(enc, elen, &r, NULL, NULL), ESC_OK);
            s_assert_post_eq(&q, &r);
            esc_post_fini(&r);
            esc_free(enc);
        }
        esc_post_fini(&q);
        if (esc_alert_decode(buf, len, &b, NULL) == ESC_OK) {
            struct esc_alert r;
            size_t elen;
            char *enc = esc_alert_encode(&b, &elen);

            assert_int_equal(esc_alert_decode(enc, elen, &r, NULL), ESC_OK);
            s_assert_alert_eq(&b, &r);
            esc_alert_fini(&r);
            esc_free(enc);
        }
        esc_alert_fini(&b);
        esc_free(buf);
    }
    /* Both outcomes happen: mutations inside string bodies keep the message valid. */
    assert_true(n_ok > 0);
    assert_true(n_bad > 0);
    esc_free(orig[0]);
    esc_free(orig[1]);
}

static int s_deep_n;        /* s_pk_deep_n: arrays nested this deep */
static int s_deep_empty;    /* ... around an empty array instead of an int */

static void
s_pk_deep_n(msgpack_packer *pk)
{
    int i;

    for (i = 0; i < s_deep_n; i++) {
        msgpack_pack_array(pk, 1);
    }
    if (s_deep_empty) {
        msgpack_pack_array(pk, 0);
    }
    else {
        msgpack_pack_int(pk, 1);
    }
}

static void
test_msg_decode_into_nesting(void **state)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const char *keys[2] = { "deep", "hashtags" };
    size_t k;

    /* Around msgpack-c's limit of open containers, in an ignored value, in a list and as a
     * key: esc_post_decode_into refuses exactly what esc_post_decode refuses. */
    for (s_deep_empty = 0; s_deep_empty < 2; s_deep_empty++) {
        for (s_deep_n = 26; s_deep_n < 38; s_deep_n++) {
            for (k = 0; k < 2; k++) {
                s_build(&sb, "post", NULL, keys[k], s_pk_deep_n, 1);
                s_check_into((const uint8_t *)sb.data, sb.size);
                msgpack_sbuffer_destroy(&sb);
            }
            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_map(&pk, 1);
            s_pk_deep_n(&pk);
            msgpack_pack_int(&pk, 1);
            s_check_into((const uint8_t *)sb.data, sb.size);
            msgpack_sbuffer_destroy(&sb);
        }
    }
    s_deep_empty = 0;
    s_deep_n = 33;
    s_build(&sb, "post", NULL, "deep", s_pk_deep_n, 1);
    s_expect_invalid("post", sb.data, sb.size, "message nested too deep");
    msgpack_sbuffer_destroy(&sb);
}

/* esc_post_decode_into checks the framing while it unpacks, in one pass; what it refuses, and
 * why, is still exactly what esc_post_decode says: every prefix of a classified post, the
 * byte msgpack never uses (0xc1) at every offset, a container claiming more elements than
 * bytes are left, trailing bytes, and nesting too deep followed by a cut. */
static void
test_msg_decode_into_framing_one_pass(void **state)
{
    struct esc_post p;
    msgpack_sbuffer sb;
    size_t len, cut, at;
    char *buf;
    uint8_t *copy;

    (void)state;
    s_fill_post(&p, 1);
    buf = esc_post_encode(&p, 1, &len);
    esc_post_fini(&p);
    for (cut = 0; cut <= len; cut++) {
        copy = esc_malloc(cut + 1);
        memcpy(copy, buf, cut);
        s_check_into(copy, cut);
        esc_free(copy);
    }
    for (at = 0; at < len; at++) {
        copy = esc_malloc(len + 1);
        memcpy(copy, buf, len);
        copy[at] = 0xc1;
        s_check_into(copy, len);
        copy[at] = 0xdd; /* array 32: its count is made of the next 4 bytes */
        s_check_into(copy, len);
        copy[len] = 0x01;
        s_check_into(copy, len + 1); /* and a byte too many */
        esc_free(copy);
    }
    esc_free(buf);
    s_deep_empty = 0;
    s_deep_n = 40;
    s_build(&sb, "post", NULL, "deep", s_pk_deep_n, 1);
    for (cut = sb.size / 2; cut <= sb.size; cut++) {
        s_check_into((const uint8_t *)sb.data, cut);
    }
    s_expect_invalid("post", sb.data, sb.size - 1, "truncated message");
    msgpack_sbuffer_destroy(&sb);
}

/* esc_post_encode_reuse writes exactly esc_post_encode's bytes, through one buffer that only
 * grows: a small post, a large one, a small one again, as post and as classified. */
static void
test_msg_encode_reuse_same_bytes(void **state)
{
    struct esc_post small, big;
    const struct esc_post *order[3] = { &small, &big, &small };
    char *buf = NULL;
    size_t cap = 0;
    size_t grown = 0;
    int round;
    size_t i;

    (void)state;
    s_fill_post(&small, 0);
    s_fill_post(&big, 1);
    ESC_FREE(big.text);
    big.text = esc_malloc(9000);
    memset(big.text, 'y', 8999);
    big.text[8999] = '\0';
    for (round = 0; round < 2; round++) {
        for (i = 0; i < 3; i++) {
            size_t want_len = 0;
            char *want = esc_post_encode(order[i], round, &want_len);
            size_t len = esc_post_encode_reuse(order[i], round, &buf, &cap);

            assert_int_equal(len, want_len);
            assert_memory_equal(buf, want, len);
            assert_true(cap >= len && cap >= grown);
            grown = cap;
            esc_free(want);
        }
    }
    assert_true(cap >= 9000);
    esc_free(buf);
    esc_post_fini(&small);
    esc_post_fini(&big);
}

static void
test_msg_decode_into_reuses_buffer(void **state)
{
    struct esc_post in, big, out, ref;
    struct esc_post_buf pb;
    struct esc_error err;
    msgpack_sbuffer sb;
    enum esc_msg_type type = ESC_MSG_UNKNOWN;
    char *bufs[4];
    size_t lens[4];
    size_t i;
    int round;

    s_fill_post(&in, 0);
    s_fill_post(&big, 1);
    ESC_FREE(big.text);
    big.text = esc_malloc(5000);
    memset(big.text, 'x', 4999);
    big.text[4999] = '\0';
    bufs[0] = esc_post_encode(&in, 0, &lens[0]);
    bufs[1] = esc_post_encode(&big, 1, &lens[1]);
    bufs[2] = esc_post_encode(&in, 1, &lens[2]);
    s_build(&sb, "post", "text", NULL, NULL, 0);
    bufs[3] = esc_malloc(sb.size);
    memcpy(bufs[3], sb.data, sb.size);
    lens[3] = sb.size;
    msgpack_sbuffer_destroy(&sb);
    esc_post_buf_init(&pb);
    /* Small, large, small again and an invalid one, twice over, through the same buffer: each
     * result is what esc_post_decode gives, and the buffer only grows. */
    for (round = 0; round < 2; round++) {
        for (i = 0; i < 4; i++) {
            esc_rc want = esc_post_decode(bufs[i], lens[i], &ref, NULL, NULL);

            assert_int_equal(esc_post_decode_into(bufs[i], lens[i], &out, &type, &pb, &err), want);
            if (want == ESC_OK) {
                s_assert_post_eq(&ref, &out);
            }
            else {
                assert_string_equal(err.text, "missing required key 'text'");
                assert_int_equal(type, ESC_MSG_POST);
                s_assert_post_empty(&out);
            }
            esc_post_fini(&ref);
        }
    }
    assert_true(pb.cap >= 5000);
    esc_post_buf_fini(&pb);
    esc_post_buf_fini(&pb); /* fini twice is safe */
    esc_post_buf_fini(NULL);
    for (i = 0; i < 4; i++) {
        esc_free(bufs[i]);
    }
    esc_post_fini(&in);
    esc_post_fini(&big);
}

static void
test_msg_peek_type(void **state)
{
    static const uint8_t type_first[] = {0x81, 0xa4, 't', 'y', 'p', 'e', 0xa5, 'a', 'l', 'e', 'r',
                                         't'};
    static const uint8_t type_str8[] = {0x82, 0xc0, 0xc0, 0xd9, 0x04, 't', 'y', 'p', 'e',
                                        0xd9, 0x04, 'p', 'o', 's', 't'};
    static const uint8_t type_int[] = {0x81, 0xa4, 't', 'y', 'p', 'e', 0x01};
    static const uint8_t type_other[] = {0x81, 0xa4, 't', 'y', 'p', 'e', 0xa4, 'p', 'o', 's', 's'};
    static const uint8_t no_type[] = {0x81, 0xa1, 'v', 0x01};
    static const uint8_t not_map[] = {0x92, 0x01, 0x02};
    static const uint8_t cut_value[] = {0x81, 0xa4, 't', 'y', 'p', 'e', 0xa5, 'a', 'l'};
    msgpack_sbuffer sb;

    assert_int_equal(esc_msg_peek_type(type_first, sizeof(type_first)), ESC_MSG_ALERT);
    assert_int_equal(esc_msg_peek_type(type_str8, sizeof(type_str8)), ESC_MSG_POST);
    assert_int_equal(esc_msg_peek_type(type_int, sizeof(type_int)), ESC_MSG_UNKNOWN);
    assert_int_equal(esc_msg_peek_type(type_other, sizeof(type_other)), ESC_MSG_UNKNOWN);
    assert_int_equal(esc_msg_peek_type(no_type, sizeof(no_type)), ESC_MSG_UNKNOWN);
    assert_int_equal(esc_msg_peek_type(not_map, sizeof(not_map)), ESC_MSG_UNKNOWN);
    assert_int_equal(esc_msg_peek_type(cut_value, sizeof(cut_value)), ESC_MSG_UNKNOWN);
    assert_int_equal(esc_msg_peek_type(NULL, 0), ESC_MSG_UNKNOWN);
    assert_int_equal(esc_msg_peek_type("", 0), ESC_MSG_UNKNOWN);

    /* type after big values that must be skipped */
    s_build(&sb, "classified", NULL, "blob", s_pk_text_over, 1);
    assert_int_equal(esc_msg_peek_type(sb.data, sb.size), ESC_MSG_CLASSIFIED);
    msgpack_sbuffer_destroy(&sb);
    s_build(&sb, "post", "type", "type", s_pk_type_alert, 1);
    assert_int_equal(esc_msg_peek_type(sb.data, sb.size), ESC_MSG_ALERT);
    msgpack_sbuffer_destroy(&sb);
}

/* ---------------------------------------------------------------------------------------------
 * JSON
 */

static const char s_example_json[] =
    "{\"id\":\"109372\",\"platform\":\"mastodon\",\"source\":\"optional\","
    "\"author\":{\"handle\":\"@ana\",\"name\":\"Ana\",\"followers\":1200},"
    "\"text\":\"Hoy votamos ñ 🗳️\",\"lang\":\"es\",\"url\":\"https://example.org/1\","
    "\"created_at\":\"2026-11-16T14:03:00Z\",\"likes\":3,\"reposts\":1,\"replies\":0,"
    "\"hashtags\":[\"Elecciones\"],\"mentions\":[\"jne_peru\"],\"extra\":{\"ignored\":[1]}}";

static void
test_msg_json_parse(void **state)
{
    struct esc_post p;
    struct esc_error err;

    memset(&err, 0, sizeof(err));
    assert_int_equal(esc_post_from_json(s_example_json, strlen(s_example_json), &p, &err),
                     ESC_OK);
    assert_string_equal(p.id, "109372");
    assert_string_equal(p.platform, "mastodon");
    assert_string_equal(p.source, "optional");
    assert_string_equal(p.author, "@ana");
    assert_string_equal(p.author_name, "Ana");
    assert_int_equal(p.followers, 1200);
    assert_string_equal(p.text, "Hoy votamos ñ 🗳️");
    assert_string_equal(p.lang, "es");
    assert_string_equal(p.url, "https://example.org/1");
    assert_int_equal(p.created_at, T_CREATED);
    assert_int_equal(p.ingested_at, 0);
    assert_int_equal(p.likes, 3);
    assert_int_equal(p.reposts, 1);
    assert_int_equal(p.replies, 0);
    assert_int_equal(p.n_hashtags, 1);
    assert_string_equal(p.hashtags[0], "Elecciones");
    assert_int_equal(p.n_mentions, 1);
    assert_string_equal(p.mentions[0], "jne_peru");
    assert_null(p.topics);
    assert_null(p.language);
    esc_post_fini(&p);
}

/* json_dumps, but into an esc_malloc'd string (the caller esc_frees it). */
static char *
s_dumps(const json_t *j)
{
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT);
    char *out = esc_malloc(n + 1);

    assert_int_equal(json_dumpb(j, out, n, JSON_COMPACT), n);
    out[n] = '\0';
    return out;
}

static esc_rc
s_json(const char *s, struct esc_post *p, struct esc_error *err)
{
    memset(err, 0, sizeof(*err));
    return esc_post_from_json(s, strlen(s), p, err);
}

static void
test_msg_json_forms(void **state)
{
    struct esc_post p;
    struct esc_error err;

    /* Integer id, plain-string author, null optionals, Unix ms created_at. */
    assert_int_equal(s_json("{\"id\":109372,\"platform\":\"jsonl\",\"author\":\"@ana\","
                            "\"text\":\"\",\"lang\":null,\"created_at\":1794837780000}",
                            &p, &err),
                     ESC_OK);
    assert_string_equal(p.id, "109372");
    assert_string_equal(p.author, "@ana");
    assert_null(p.author_name);
    assert_int_equal(p.followers, 0);
    assert_null(p.lang);
    assert_string_equal(p.text, "");
    assert_int_equal(p.created_at, T_CREATED);
    esc_post_fini(&p);

    /* RFC 3339 with an offset and milliseconds. */
    assert_int_equal(s_json("{\"id\":\"-5\",\"platform\":\"x\",\"text\":\"t\","
                            "\"created_at\":\"2026-11-16T09:03:00.250-05:00\"}",
                            &p, &err),
                     ESC_OK);
    assert_int_equal(p.created_at, T_CREATED + 250);
    esc_post_fini(&p);

    /* Classified fields and ingested_at, as esc_post_to_json writes them. */
    assert_int_equal(s_json("{\"id\":\"1\",\"platform\":\"x\",\"text\":\"t\",\"created_at\":0,"
                            "\"ingested_at\":1794837790123,\"topics\":[\"a/b\"],"
                            "\"language\":\"es\",\"sentiment\":-1}",
                            &p, &err),
                     ESC_OK);
    assert_int_equal(p.ingested_at, T_INGESTED);
    assert_int_equal(p.n_topics, 1);
    assert_string_equal(p.language, "es");
    assert_true(p.sentiment == -1.0);
    esc_post_fini(&p);
}

static void
test_msg_json_bad_fields(void **state)
{
    static const struct {
        const char *field; /* top-level key to replace or delete */
        const char *value; /* JSON text of the new value, NULL = delete the key */
        const char *want;
    } cases[] = {
        {"id", NULL, "field 'id': missing"},
        {"id", "1.5", "field 'id': expected string or integer, got real"},
        {"id", "\"\"", "field 'id': empty"},
        {"id", "\"a\\u0000b\"", "field 'id': contains NUL byte"},
        {"platform", NULL, "field 'platform': missing"},
        {"platform", "3", "field 'platform': expected string, got integer"},
        {"platform", "null", "field 'platform': expected string, got null"},
        {"text", NULL, "field 'text': missing"},
        {"text", "null", "field 'text': expected string, got null"},
        {"text", "[\"a\"]", "field 'text': expected string, got array"},
        {"text", "\"a\\u0000b\"", "field 'text': contains NUL byte"},
        {"created_at", NULL, "field 'created_at': missing"},
        {"created_at", "\"yesterday\"", "field 'created_at': not an RFC 3339 time or Unix ms"},
        {"created_at", "\"2026-13-01T00:00:00Z\"",
         "field 'created_at': not an RFC 3339 time or Unix ms"},
        {"created_at", "1.5e12", "field 'created_at': not an RFC 3339 time or Unix ms"},
        {"created_at", "null", "field 'created_at': not an RFC 3339 time or Unix ms"},
        {"created_at", "\"2026-11-16T14:03:00Z\\u0000x\"",
         "field 'created_at': not an RFC 3339 time or Unix ms"},
        {"author", "5", "field 'author': expected object or string, got integer"},
        {"author", "{\"followers\":-1}",
         "field 'author.followers': must be a non-negative integer"},
        {"author", "{\"followers\":\"12\"}",
         "field 'author.followers': must be a non-negative integer"},
        {"author", "{\"name\":3}", "field 'author.name': expected string, got integer"},
        {"author", "{\"handle\":true}", "field 'author.handle': expected string, got boolean"},
        {"author", "\"@a\\u0000\"", "field 'author': contains NUL byte"},
        {"likes", "-1", "field 'likes': must be a non-negative integer"},
        {"reposts", "\"3\"", "field 'reposts': must be a non-negative integer"},
        {"replies", "1.0", "field 'replies': must be a non-negative integer"},
        {"lang", "true", "field 'lang': expected string, got boolean"},
        {"url", "\"http://x/\\u0000\"", "field 'url': contains NUL byte"},
        {"source", "{}", "field 'source': expected string, got object"},
        {"hashtags", "\"x\"", "field 'hashtags': expected array, got string"},
        {"hashtags", "[\"ok\",\"a\\u0000\"]", "field 'hashtags[1]': contains NUL byte"},
        {"mentions", "[1]", "field 'mentions[0]': expected string, got integer"},
        {"ingested_at", "\"x\"", "field 'ingested_at': expected integer (Unix ms), got string"},
        {"topics", "{}", "field 'topics': expected array, got object"},
        {"language", "1", "field 'language': expected string, got integer"},
        {"sentiment", "\"pos\"", "field 'sentiment': expected number, got string"},
    };
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(cases); i++) {
        json_error_t jerr;
        json_t *root = json_loads(s_example_json, 0, &jerr);
        struct esc_post p;
        struct esc_error err;
        char *text;
        esc_rc rc;

        assert_non_null(root);
        if (cases[i].value == NULL) {
            json_object_del(root, cases[i].field);
        }
        else {
            json_t *v = json_loads(cases[i].value, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

            assert_non_null(v);
            json_object_set_new(root, cases[i].field, v);
        }
        text = s_dumps(root);
        json_decref(root);
        rc = s_json(text, &p, &err);
        if (rc != ESC_INVALID || strcmp(err.text, cases[i].want) != 0) {
            fail_msg("case %zu want \"%s\" got rc=%d \"%s\"", i, cases[i].want, (int)rc,
                     err.text);
        }
        s_assert_post_empty(&p);
        esc_post_fini(&p);
        esc_free(text);
    }
}

static void
test_msg_json_limits(void **state)
{
    struct esc_post p;
    struct esc_error err;
    json_t *root, *tags;
    char *text, *big, want[128];
    int i;

    /* Text one byte over the limit. */
    root = json_loads(s_example_json, 0, NULL);
    big = esc_malloc(ESC_POST_TEXT_MAX + 2);
    memset(big, 'a', ESC_POST_TEXT_MAX + 1);
    big[ESC_POST_TEXT_MAX + 1] = '\0';
    json_object_set_new(root, "text", json_string(big));
    text = s_dumps(root);
    assert_int_equal(s_json(text, &p, &err), ESC_INVALID);
    snprintf(want, sizeof(want), "field 'text': too long (%d > %d bytes)", ESC_POST_TEXT_MAX + 1,
             ESC_POST_TEXT_MAX);
    assert_string_equal(err.text, want);
    esc_post_fini(&p);
    esc_free(text);

    /* Exactly at the limit is fine. */
    big[ESC_POST_TEXT_MAX] = '\0';
    json_object_set_new(root, "text", json_string(big));
    text = s_dumps(root);
    assert_int_equal(s_json(text, &p, &err), ESC_OK);
    assert_int_equal(strlen(p.text), ESC_POST_TEXT_MAX);
    esc_post_fini(&p);
    esc_free(text);
    esc_free(big);

    /* One hashtag too many. */
    tags = json_array();
    for (i = 0; i <= ESC_POST_LIST_MAX; i++) {
        json_array_append_new(tags, json_string("t"));
    }
    json_object_set_new(root, "hashtags", tags);
    text = s_dumps(root);
    assert_int_equal(s_json(text, &p, &err), ESC_INVALID);
    snprintf(want, sizeof(want), "field 'hashtags': too many elements (%d > %d)",
             ESC_POST_LIST_MAX + 1, ESC_POST_LIST_MAX);
    assert_string_equal(err.text, want);
    esc_post_fini(&p);
    esc_free(text);
    json_decref(root);

    /* Whole input over ESC_MSG_MAX is refused before parsing. */
    big = esc_calloc(1, ESC_MSG_MAX + 1);
    assert_int_equal(esc_post_from_json(big, ESC_MSG_MAX + 1, &p, &err), ESC_INVALID);
    snprintf(want, sizeof(want), "post JSON too large (%d > %d bytes)", ESC_MSG_MAX + 1,
             ESC_MSG_MAX);
    assert_string_equal(err.text, want);
    esc_post_fini(&p);
    esc_free(big);
}

static void
test_msg_json_invalid_syntax(void **state)
{
    static const char bad[] = "{\"id\":\"1\",\n\"platform\":\"x\",\n\"text\": ,}";
    static const char dup[] = "{\"id\":\"1\",\"id\":\"2\"}";
    struct esc_post p;
    struct esc_error err;
    char want[300];

    assert_int_equal(s_json(bad, &p, &err), ESC_INVALID);
    assert_int_equal(err.line, 3);
    assert_int_equal(err.column, 9);
    assert_string_equal(err.text, "invalid JSON: unexpected token near ',' at column 9");
    esc_post_fini(&p);

    assert_int_equal(s_json(dup, &p, &err), ESC_INVALID);
    assert_int_equal(err.line, 1);
    snprintf(want, sizeof(want), "invalid JSON: duplicate object key near '\"id\"' at column %d",
             err.column);
    assert_string_equal(err.text, want);
    esc_post_fini(&p);

    assert_int_equal(s_json("", &p, &err), ESC_INVALID);
    assert_memory_equal(err.text, "invalid JSON: ", 14);
    esc_post_fini(&p);

    assert_int_equal(s_json("{\"text\":\"\xff\"}", &p, &err), ESC_INVALID);
    assert_memory_equal(err.text, "invalid JSON: ", 14);
    esc_post_fini(&p);

    /* A raw NUL byte (not \u0000) inside the input is a syntax error, wherever it is. */
    assert_int_equal(esc_post_from_json("{\"id\":\"a\0b\"}", 12, &p, &err), ESC_INVALID);
    assert_memory_equal(err.text, "invalid JSON: ", 14);
    esc_post_fini(&p);

    assert_int_equal(s_json("{} trailing", &p, &err), ESC_INVALID);
    assert_memory_equal(err.text, "invalid JSON: ", 14);
    esc_post_fini(&p);

    assert_int_equal(s_json("[1,2]", &p, &err), ESC_INVALID);
    assert_string_equal(err.text, "expected a JSON object, got array");
    esc_post_fini(&p);
    assert_int_equal(s_json("\"post\"", &p, &err), ESC_INVALID);
    assert_string_equal(err.text, "expected a JSON object, got string");
    esc_post_fini(&p);
    assert_int_equal(esc_post_from_json(NULL, 0, &p, NULL), ESC_INVALID);
    esc_post_fini(&p);
}

static void
test_msg_json_nesting_limited(void **state)
{
    struct esc_post p;
    struct esc_error err;

    assert_int_equal(s_json("{\"id\":\"1\",\"platform\":\"x\",\"text\":\"t\",\"created_at\":0,"
                            "\"media\":[{\"url\":\"u\"}]}",
                            &p, &err),
                     ESC_OK);
    esc_post_fini(&p);
    assert_int_equal(s_json("{\"id\":\"1\",\"platform\":\"x\",\"text\":\"t\",\"created_at\":0,"
                            "\"media\":[{\"url\":[\"u\"]}]}",
                            &p, &err),
                     ESC_INVALID);
    assert_string_equal(err.text, "JSON nested too deep (more than 3 levels)");
    esc_post_fini(&p);
}

static void
s_json_roundtrip(const struct esc_post *in)
{
    struct esc_post out;
    struct esc_error err;
    char *js = esc_post_to_json(in);

    assert_non_null(js);
    assert_null(strchr(js, '\n'));
    if (esc_post_from_json(js, strlen(js), &out, &err) != ESC_OK) {
        fail_msg("from_json failed: %s json=%s", err.text, js);
    }
    s_assert_post_eq(in, &out);
    esc_post_fini(&out);
    esc_free(js);
}

static void
test_msg_json_roundtrip(void **state)
{
    struct esc_post p;
    char *js;

    s_fill_post(&p, 0);
    p.replies = 0; /* counts are non-negative in JSON */
    js = esc_post_to_json(&p);
    /* Compact, with created_at as RFC 3339 and the author as an object. */
    assert_non_null(strstr(js, "\"created_at\":\"2026-11-16T14:03:00Z\""));
    assert_non_null(strstr(js, "\"author\":{\"handle\":\"@ana@mastodon.social\",\"name\":\"Ana\","
                               "\"followers\":1200}"));
    assert_null(strstr(js, "\"topics\""));
    assert_null(strstr(js, ": "));
    esc_free(js);
    s_json_roundtrip(&p);

    /* Milliseconds survive; classified fields are written and read back. */
    p.created_at = T_CREATED + 7;
    esc_strlist_push(&p.topics, &p.n_topics, "peru/elecciones");
    p.language = esc_strdup("es");
    p.sentiment = 0.1 + 0.2; /* not representable in short decimal: needs 17 digits */
    js = esc_post_to_json(&p);
    assert_non_null(strstr(js, "\"created_at\":\"2026-11-16T14:03:00.007Z\""));
    esc_free(js);
    s_json_roundtrip(&p);

    /* Handle only (string form), name only, nothing; unicode; times outside 1970..9999. */
    ESC_FREE(p.author_name);
    p.followers = 0;
    s_json_roundtrip(&p);
    ESC_FREE(p.author);
    p.author_name = esc_strdup("Ñandú 😀");
    s_json_roundtrip(&p);
    ESC_FREE(p.author_name);
    ESC_FREE(p.text);
    p.text = esc_strdup("¿Qué pasó? \"comillas\" \\ barra\ttab 🗳️");
    p.created_at = -1;
    s_json_roundtrip(&p);
    p.created_at = INT64_MAX;
    s_json_roundtrip(&p);
    p.created_at = 0;
    esc_strlist_free(&p.hashtags, &p.n_hashtags);
    esc_strlist_free(&p.topics, &p.n_topics);
    s_json_roundtrip(&p);
    esc_post_fini(&p);
}

static void
test_msg_json_repairs_invalid_utf8(void **state)
{
    struct esc_post p, out;
    struct esc_error err;
    char *js;

    s_fill_post(&p, 0);
    p.replies = 0;
    ESC_FREE(p.text);
    p.text = esc_strdup("a\xff" "b\xc3");
    js = esc_post_to_json(&p);
    assert_int_equal(esc_post_from_json(js, strlen(js), &out, &err), ESC_OK);
    assert_string_equal(out.text, "a\xef\xbf\xbd" "b\xef\xbf\xbd");
    esc_post_fini(&out);
    esc_free(js);
    esc_post_fini(&p);
}

static void
test_msg_alert_to_json(void **state)
{
    struct esc_alert a;
    json_error_t jerr;
    json_t *root, *s;
    char *js;

    s_fill_alert(&a);
    a.window_start += 500;
    js = esc_alert_to_json(&a);
    assert_null(strchr(js, '\n'));
    root = json_loads(js, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "id")), a.id);
    assert_string_equal(json_string_value(json_object_get(root, "team")), "peru");
    assert_string_equal(json_string_value(json_object_get(root, "topic")), "elecciones");
    assert_string_equal(json_string_value(json_object_get(root, "topic_name")), "Elecciones 2026");
    assert_string_equal(json_string_value(json_object_get(root, "kind")), "spike");
    assert_int_equal(json_integer_value(json_object_get(root, "window_start")), a.window_start);
    assert_string_equal(json_string_value(json_object_get(root, "window_start_iso")),
                        "2026-11-16T14:00:00.500Z");
    assert_int_equal(json_integer_value(json_object_get(root, "window_end")), a.window_end);
    assert_string_equal(json_string_value(json_object_get(root, "window_end_iso")),
                        "2026-11-16T14:05:00Z");
    assert_int_equal(json_integer_value(json_object_get(root, "observed")), 412);
    assert_true(json_real_value(json_object_get(root, "expected")) == 37.25);
    assert_true(json_real_value(json_object_get(root, "score")) == a.score);
    assert_int_equal(json_integer_value(json_object_get(root, "ts")), a.ts);
    assert_string_equal(json_string_value(json_object_get(root, "ts_iso")),
                        "2026-11-16T14:05:01.234Z");
    s = json_object_get(root, "samples");
    assert_int_equal(json_array_size(s), 2);
    assert_string_equal(json_string_value(json_array_get(s, 1)), "segundo post ñ");
    json_decref(root);
    esc_free(js);

    /* Missing strings become null, an infinite score becomes null, samples stay an array. */
    ESC_FREE(a.topic_name);
    esc_strlist_free(&a.samples, &a.n_samples);
    a.expected = 0.0;
    a.score = 1.0 / a.expected;
    js = esc_alert_to_json(&a);
    root = json_loads(js, 0, &jerr);
    assert_non_null(root);
    assert_true(json_is_null(json_object_get(root, "topic_name")));
    assert_true(json_is_null(json_object_get(root, "score")));
    assert_true(json_is_array(json_object_get(root, "samples")));
    assert_int_equal(json_array_size(json_object_get(root, "samples")), 0);
    json_decref(root);
    esc_free(js);
    esc_alert_fini(&a);
}

/* ---------------------------------------------------------------------------------------------
 * Batch frames
 */

/* Encodes post i of a batch test: the fixture post with id "b<i>". */
static char *
s_batch_post(int i, size_t *len)
{
    struct esc_post p;
    char id[16];
    char *buf;

    s_fill_post(&p, 0);
    snprintf(id, sizeof(id), "b%d", i);
    esc_free(p.id);
    p.id = esc_strdup(id);
    buf = esc_post_encode(&p, 0, len);
    esc_post_fini(&p);
    return buf;
}

/* Opens frame and decodes every message it yields; returns how many decoded as posts and
 * fills ids (comma separated) and the number of ESC_INVALID elements. */
static size_t
s_batch_read(const void *frame, size_t len, char *ids, size_t idsz, size_t *bad)
{
    struct esc_batch_iter it;
    struct esc_error err;
    struct esc_post p;
    const void *msg;
    size_t mlen;
    size_t ok = 0;
    esc_rc rc;

    ids[0] = '\0';
    *bad = 0;
    assert_int_equal(esc_batch_open(&it, frame, len, &err), ESC_OK);
    for (;;) {
        rc = esc_batch_next(&it, &msg, &mlen, &err);
        if (rc == ESC_CLOSED) {
            break;
        }
        if (rc != ESC_OK) {
            assert_int_equal(rc, ESC_INVALID);
            (*bad)++;
            continue;
        }
        /* every message handed out lies inside the frame */
        assert_true((const char *)msg >= (const char *)frame);
        assert_true((const char *)msg + mlen <= (const char *)frame + len);
        if (esc_post_decode(msg, mlen, &p, NULL, &err) == ESC_OK) {
            size_t used = strlen(ids);

            snprintf(ids + used, idsz - used, "%s%s", ok > 0 ? "," : "", p.id);
            ok++;
        }
        else {
            (*bad)++;
        }
        esc_post_fini(&p);
    }
    return ok;
}

static void
test_msg_batch_roundtrip(void **state)
{
    struct esc_batch b;
    struct esc_batch_iter it;
    struct esc_error err;
    char ids[256];
    const void *frame;
    const void *msg;
    size_t flen = 0;
    size_t mlen;
    size_t bad;
    size_t len;
    char *one;
    int i;

    (void)state;
    esc_batch_init(&b);
    assert_null(esc_batch_frame(&b, &flen)); /* empty: nothing to send */
    assert_int_equal(flen, 0);
    for (i = 0; i < 3; i++) {
        char *enc = s_batch_post(i, &len);

        assert_false(esc_batch_full(&b, len));
        esc_batch_add(&b, enc, len);
        esc_free(enc);
    }
    assert_int_equal(b.n, 3);
    frame = esc_batch_frame(&b, &flen);
    assert_non_null(frame);
    /* a batch is no message: message decoders reject it by its type */
    assert_int_equal(esc_msg_peek_type(frame, flen), ESC_MSG_UNKNOWN);
    assert_int_equal(s_batch_read(frame, flen, ids, sizeof(ids), &bad), 3);
    assert_string_equal(ids, "b0,b1,b2");
    assert_int_equal(bad, 0);
    assert_int_equal(esc_batch_open(&it, frame, flen, &err), ESC_OK);
    assert_true(it.batch);
    assert_int_equal(it.count, 3);

    /* a batch of one is sent as the plain message */
    esc_batch_reset(&b);
    one = s_batch_post(7, &len);
    esc_batch_add(&b, one, len);
    frame = esc_batch_frame(&b, &flen);
    assert_int_equal(flen, len);
    assert_memory_equal(frame, one, len);
    assert_int_equal(esc_batch_open(&it, frame, flen, &err), ESC_OK);
    assert_false(it.batch);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_OK);
    assert_ptr_equal(msg, frame);
    assert_int_equal(mlen, flen);
    assert_int_equal(it.index, 0);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_CLOSED);
    esc_free(one);

    /* reset keeps the memory; a big message takes the wider bin headers */
    esc_batch_reset(&b);
    assert_int_equal(b.n, 0);
    {
        struct esc_post big;
        char *enc;
        size_t blen;

        s_fill_post(&big, 0);
        esc_free(big.text);
        big.text = esc_malloc(ESC_POST_TEXT_MAX + 1);
        memset(big.text, 'x', ESC_POST_TEXT_MAX);
        big.text[ESC_POST_TEXT_MAX] = '\0';
        esc_free(big.author_name);
        big.author_name = esc_strdup(big.text + 60000); /* over 64 KiB in all: a bin 32 */
        esc_free(big.id);
        big.id = esc_strdup("big");
        enc = esc_post_encode(&big, 0, &blen);
        esc_post_fini(&big);
        assert_true(blen > 0xffff);
        one = s_batch_post(1, &len);
        esc_batch_add(&b, one, len);
        esc_batch_add(&b, enc, blen); /* what esc_batch_full says is the caller's business */
        esc_batch_add(&b, one, 300);  /* a bin 16 holding a cut message */
        frame = esc_batch_frame(&b, &flen);
        assert_int_equal(s_batch_read(frame, flen, ids, sizeof(ids), &bad), 2);
        assert_string_equal(ids, "b1,big");
        assert_int_equal(bad, 1); /* the cut one, rejected by its decoder */
        esc_free(enc);
        esc_free(one);
    }
    esc_batch_fini(&b);
    esc_batch_fini(&b); /* twice is safe */
    esc_batch_fini(NULL);
}

static void
test_msg_batch_full_bounds(void **state)
{
    struct esc_batch b;
    char small[100];
    char *big;
    size_t i;

    (void)state;
    memset(small, 0x80, sizeof(small));
    esc_batch_init(&b);
    for (i = 0; i < ESC_BATCH_MSGS; i++) {
        assert_false(esc_batch_full(&b, sizeof(small)));
        esc_batch_add(&b, small, sizeof(small));
    }
    assert_true(esc_batch_full(&b, sizeof(small))); /* by count */
    esc_batch_reset(&b);

    big = esc_calloc(1, ESC_BATCH_BYTES * 2);
    assert_false(esc_batch_full(&b, ESC_BATCH_BYTES * 2)); /* empty: a big one goes alone */
    esc_batch_add(&b, small, sizeof(small));
    assert_true(esc_batch_full(&b, ESC_BATCH_BYTES * 2));
    assert_true(esc_batch_full(&b, ESC_BATCH_BYTES - 50)); /* by bytes */
    assert_false(esc_batch_full(&b, ESC_BATCH_BYTES / 2));
    esc_batch_add(&b, big, ESC_BATCH_BYTES / 2);
    assert_true(esc_batch_full(&b, ESC_BATCH_BYTES / 2));
    assert_true(b.len <= ESC_BATCH_BYTES);
    esc_free(big);
    esc_batch_fini(&b);
}

static void
test_msg_batch_single_frames_pass_through(void **state)
{
    static const uint8_t garbage[] = {0xc1, 0x00, 0x01};
    struct esc_batch_iter it;
    struct esc_error err;
    const void *msg;
    size_t mlen;
    size_t len;
    char *enc;

    (void)state;
    enc = s_batch_post(5, &len);
    assert_int_equal(esc_batch_open(&it, enc, len, &err), ESC_OK);
    assert_false(it.batch);
    assert_int_equal(it.count, 1);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_OK);
    assert_ptr_equal(msg, enc);
    assert_int_equal(mlen, len);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_CLOSED);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_CLOSED);
    esc_free(enc);

    /* garbage and empty frames are handed to the message decoder, which names the problem */
    assert_int_equal(esc_batch_open(&it, garbage, sizeof(garbage), &err), ESC_OK);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_OK);
    assert_int_equal(mlen, sizeof(garbage));
    assert_int_equal(esc_batch_open(&it, "", 0, &err), ESC_OK);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_OK);
    assert_int_equal(mlen, 0);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_CLOSED);
}

/* Packs a batch map by hand: keys as given; "msgs" holds n elements written by fn. */
static void
s_pk_batch_head(msgpack_packer *pk, size_t n_keys, uint64_t version)
{
    msgpack_pack_map(pk, n_keys);
    s_pk_str(pk, "v");
    msgpack_pack_uint64(pk, version);
    s_pk_str(pk, "type");
    s_pk_str(pk, "batch");
}

static void
s_pk_batch_bin(msgpack_packer *pk, const void *data, size_t len)
{
    msgpack_pack_bin(pk, len);
    msgpack_pack_bin_body(pk, data, len);
}

static void
test_msg_batch_bad_elements_skipped(void **state)
{
    struct esc_batch_iter it;
    struct esc_error err;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const void *msg;
    char ids[256];
    size_t mlen;
    size_t bad;
    size_t l0, l1;
    char *p0 = s_batch_post(0, &l0);
    char *p1 = s_batch_post(1, &l1);

    (void)state;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    /* keys in another order, an unknown key, elements that are not messages */
    msgpack_pack_map(&pk, 4);
    s_pk_str(&pk, "msgs");
    msgpack_pack_array(&pk, 5);
    s_pk_batch_bin(&pk, p0, l0);
    msgpack_pack_int(&pk, 42);
    s_pk_batch_bin(&pk, "\x81\xa1v\x01", 4); /* a map, but no post */
    msgpack_pack_map(&pk, 1);           /* a message inline instead of in a bin */
    s_pk_str(&pk, "v");
    msgpack_pack_int(&pk, 1);
    s_pk_batch_bin(&pk, p1, l1);
    s_pk_str(&pk, "later");
    msgpack_pack_nil(&pk);
    s_pk_str(&pk, "type");
    s_pk_str(&pk, "batch");
    s_pk_str(&pk, "v");
    msgpack_pack_int(&pk, 1);

    assert_int_equal(s_batch_read(sb.data, sb.size, ids, sizeof(ids), &bad), 2);
    assert_string_equal(ids, "b0,b1");
    assert_int_equal(bad, 3);
    assert_int_equal(esc_batch_open(&it, sb.data, sb.size, &err), ESC_OK);
    assert_int_equal(it.count, 5);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_OK);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_INVALID);
    assert_int_equal(it.index, 1);
    assert_string_equal(err.text, "batch message 1 of 5: expected bin, got scalar");
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_OK);
    assert_int_equal(it.index, 2);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_INVALID);
    assert_string_equal(err.text, "batch message 3 of 5: expected bin, got map");
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_OK);
    assert_int_equal(it.index, 4);
    assert_memory_equal(msg, p1, l1);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_CLOSED);
    msgpack_sbuffer_destroy(&sb);
    esc_free(p0);
    esc_free(p1);
}

static void
test_msg_batch_truncated_keeps_prefix(void **state)
{
    struct esc_batch b;
    struct esc_batch_iter it;
    struct esc_error err;
    size_t ends[4];
    const void *frame;
    const void *msg;
    size_t flen = 0;
    size_t mlen;
    size_t cut;
    size_t len;
    size_t k;
    int i;

    (void)state;
    esc_batch_init(&b);
    for (i = 0; i < 4; i++) {
        char *enc = s_batch_post(i, &len);

        esc_batch_add(&b, enc, len);
        ends[i] = b.len;
        esc_free(enc);
    }
    frame = esc_batch_frame(&b, &flen);
    /* Every prefix: the whole messages in it are still handed out, then one "truncated"
     * report naming the index, then the end. Never more, never a crash. */
    for (cut = 1; cut < flen; cut++) {
        char *copy = esc_malloc(cut); /* exact size, so ASan sees any overread */
        size_t whole = 0;
        size_t ok = 0;
        size_t invalid = 0;
        esc_rc rc;

        memcpy(copy, frame, cut);
        for (k = 0; k < 4; k++) {
            whole += ends[k] <= cut ? 1 : 0;
        }
        rc = esc_batch_open(&it, copy, cut, &err);
        if (rc == ESC_OK && it.batch) {
            while ((rc = esc_batch_next(&it, &msg, &mlen, &err)) != ESC_CLOSED) {
                if (rc == ESC_OK) {
                    ok++;
                }
                else {
                    invalid++;
                    assert_int_equal(it.index, ok);
                    assert_non_null(strstr(err.text, "truncated batch"));
                }
            }
            assert_int_equal(ok, whole);
            assert_int_equal(invalid, 1);
        }
        else if (rc == ESC_OK) {
            /* cut inside the header, before "type" was readable: a single (bad) message */
            assert_true(cut < 15);
        }
        else {
            assert_int_equal(rc, ESC_INVALID);
            assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_CLOSED);
        }
        esc_free(copy);
    }
    esc_batch_fini(&b);
}

static void
test_msg_batch_bad_frames_rejected(void **state)
{
    static const struct {
        int what;
        const char *reason;
    } cases[] = {
        { 0, "batch: unsupported schema version 2" },
        { 1, "batch: missing required key 'v'" },
        { 2, "batch: missing required key 'msgs'" },
        { 3, "batch key 'msgs': expected array, got string" },
        { 4, "batch: duplicate key 'msgs'" },
        { 5, "trailing bytes after batch" },
        { 6, "batch map key 3: expected string, got scalar" },
        { 7, "batch key 'v': expected int, got string" },
        { 8, "batch: duplicate key 'type'" },
    };
    struct esc_batch_iter it;
    struct esc_error err;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const void *msg;
    size_t mlen;
    size_t i;
    char *big;

    (void)state;
    for (i = 0; i < ESC_ARRAY_LEN(cases); i++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        switch (cases[i].what) {
        case 0:
            s_pk_batch_head(&pk, 3, 2);
            s_pk_str(&pk, "msgs");
            msgpack_pack_array(&pk, 0);
            break;
        case 1:
            msgpack_pack_map(&pk, 2);
            s_pk_str(&pk, "type");
            s_pk_str(&pk, "batch");
            s_pk_str(&pk, "msgs");
            msgpack_pack_array(&pk, 0);
            break;
        case 2:
            s_pk_batch_head(&pk, 2, 1);
            break;
        case 3:
            s_pk_batch_head(&pk, 3, 1);
            s_pk_str(&pk, "msgs");
            s_pk_str(&pk, "x");
            break;
        case 4:
            s_pk_batch_head(&pk, 4, 1);
            s_pk_str(&pk, "msgs");
            msgpack_pack_array(&pk, 0);
            s_pk_str(&pk, "msgs");
            msgpack_pack_array(&pk, 0);
            break;
        case 5:
            s_pk_batch_head(&pk, 3, 1);
            s_pk_str(&pk, "msgs");
            msgpack_pack_array(&pk, 0);
            msgpack_pack_nil(&pk);
            break;
        case 6:
            s_pk_batch_head(&pk, 4, 1);
            s_pk_str(&pk, "msgs");
            msgpack_pack_array(&pk, 0);
            msgpack_pack_int(&pk, 1);
            msgpack_pack_int(&pk, 2);
            break;
        case 7:
            msgpack_pack_map(&pk, 3);
            s_pk_str(&pk, "type");
            s_pk_str(&pk, "batch");
            s_pk_str(&pk, "v");
            s_pk_str(&pk, "1");
            s_pk_str(&pk, "msgs");
            msgpack_pack_array(&pk, 0);
            break;
        case 8:
            s_pk_batch_head(&pk, 4, 1);
            s_pk_str(&pk, "type");
            s_pk_str(&pk, "batch");
            s_pk_str(&pk, "msgs");
            msgpack_pack_array(&pk, 0);
            break;
        }
        memset(&err, 0, sizeof(err));
        assert_int_equal(esc_batch_open(&it, sb.data, sb.size, &err), ESC_INVALID);
        assert_string_equal(err.text, cases[i].reason);
        assert_true(it.batch);
        assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_CLOSED);
        msgpack_sbuffer_destroy(&sb);
    }

    /* over the size limit */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    big = esc_calloc(1, ESC_MSG_MAX);
    s_pk_batch_head(&pk, 3, 1);
    s_pk_str(&pk, "msgs");
    msgpack_pack_array(&pk, 1);
    s_pk_batch_bin(&pk, big, ESC_MSG_MAX);
    assert_int_equal(esc_batch_open(&it, sb.data, sb.size, &err), ESC_INVALID);
    assert_non_null(strstr(err.text, "batch too large"));
    esc_free(big);
    msgpack_sbuffer_destroy(&sb);

    /* an empty batch is valid and yields nothing */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    s_pk_batch_head(&pk, 3, 1);
    s_pk_str(&pk, "msgs");
    msgpack_pack_array(&pk, 0);
    assert_int_equal(esc_batch_open(&it, sb.data, sb.size, &err), ESC_OK);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_CLOSED);
    msgpack_sbuffer_destroy(&sb);
}

static void
test_msg_batch_mutations_never_crash(void **state)
{
    struct esc_batch b;
    const void *frame;
    char ids[1024];
    size_t flen = 0;
    size_t bad;
    size_t len;
    int i;
    int round;

    (void)state;
    srand(8);
    esc_batch_init(&b);
    for (i = 0; i < 5; i++) {
        char *enc = s_batch_post(i, &len);

        esc_batch_add(&b, enc, len);
        esc_free(enc);
    }
    frame = esc_batch_frame(&b, &flen);
    for (round = 0; round < 3000; round++) {
        uint8_t *copy = esc_malloc(flen);
        int flips = 1 + rand() % 4;
        struct esc_batch_iter it;
        struct esc_error err;
        size_t n;

        memcpy(copy, frame, flen);
        for (i = 0; i < flips; i++) {
            /* mostly the framing bytes: the header and the bin headers */
            size_t at = rand() % 2 ? (size_t)rand() % 32 : (size_t)rand() % flen;

            copy[at] = (uint8_t)rand();
        }
        if (esc_batch_open(&it, copy, flen, &err) == ESC_OK) {
            n = s_batch_read(copy, flen, ids, sizeof(ids), &bad);
            assert_true(n <= 5 || !it.batch);
        }
        esc_free(copy);
    }
    esc_batch_fini(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_post_roundtrip),
        cmocka_unit_test(test_msg_classified_roundtrip),
        cmocka_unit_test(test_msg_alert_roundtrip),
        cmocka_unit_test(test_msg_unicode_roundtrip),
        cmocka_unit_test(test_msg_strlist_cap),
        cmocka_unit_test(test_msg_minimal_messages_accepted),
        cmocka_unit_test(test_msg_missing_required_key),
        cmocka_unit_test(test_msg_wrong_types),
        cmocka_unit_test(test_msg_version_checked),
        cmocka_unit_test(test_msg_nul_bytes_rejected),
        cmocka_unit_test(test_msg_limits_enforced),
        cmocka_unit_test(test_msg_limits_at_edge_accepted),
        cmocka_unit_test(test_msg_oversized_rejected),
        cmocka_unit_test(test_msg_truncated_every_prefix),
        cmocka_unit_test(test_msg_trailing_bytes_rejected),
        cmocka_unit_test(test_msg_hostile_headers_rejected),
        cmocka_unit_test(test_msg_unknown_keys_ignored),
        cmocka_unit_test(test_msg_duplicate_key_rejected),
        cmocka_unit_test(test_msg_number_forms_accepted),
        cmocka_unit_test(test_msg_random_bytes_never_crash),
        cmocka_unit_test(test_msg_mutations_never_crash),
        cmocka_unit_test(test_msg_peek_type),
        cmocka_unit_test(test_msg_json_parse),
        cmocka_unit_test(test_msg_json_forms),
        cmocka_unit_test(test_msg_json_bad_fields),
        cmocka_unit_test(test_msg_json_limits),
        cmocka_unit_test(test_msg_json_invalid_syntax),
        cmocka_unit_test(test_msg_json_nesting_limited),
        cmocka_unit_test(test_msg_json_roundtrip),
        cmocka_unit_test(test_msg_decode_into_reuses_buffer),
        cmocka_unit_test(test_msg_encode_reuse_same_bytes),
        cmocka_unit_test(test_msg_decode_into_nesting),
        cmocka_unit_test(test_msg_decode_into_framing_one_pass),
        cmocka_unit_test(test_msg_json_repairs_invalid_utf8),
        cmocka_unit_test(test_msg_alert_to_json),
        cmocka_unit_test(test_msg_batch_roundtrip),
        cmocka_unit_test(test_msg_batch_full_bounds),
        cmocka_unit_test(test_msg_batch_single_frames_pass_through),
        cmocka_unit_test(test_msg_batch_bad_elements_skipped),
        cmocka_unit_test(test_msg_batch_truncated_keeps_prefix),
        cmocka_unit_test(test_msg_batch_bad_frames_rejected),
        cmocka_unit_test(test_msg_batch_mutations_never_crash),
    };

    esc_log_init("esc_msg_test", ESC_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
