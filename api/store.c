#define ESC_LOG_MODULE "store"
/* Reads the aggregator's keys for the API. Bucket hashes (posts, reach, likes, reposts, replies,
 * engagement, sentiment_pos/neu/neg, sentiment_milli, lang:<code>, platform:<name>) are fetched
 * with one HGETALL each in a single pipeline; a missing bucket reads as zeros. Day top lists
 * are sorted sets per UTC day: the best members of each day are summed in a small hash table
 * here (the exact sum over a range would need every member of every day; each day keeps twice
 * the shown list, so the top of a range is exact unless a member is strong on many days
 * without being near the top of any). The caller holds the kv exclusively. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "store.h"

#define S_TOP_DAYS_MAX 400
#define S_ALERTS_SCAN 1000
#define S_LATEST_MAX 1000
#define S_KEY_MAX 400

enum s_fix {
    F_POSTS = 0,
    F_REACH,
    F_LIKES,
    F_REPOSTS,
    F_REPLIES,
    F_ENGAGEMENT,
    F_POS,
    F_NEU,
    F_NEG,
    F_SENT,
    S_NFIX
};

static const char *const s_fix_names[S_NFIX] = {
    "posts",         "reach",         "likes",         "reposts",       "replies",
    "engagement",    "sentiment_pos", "sentiment_neu", "sentiment_neg", "sentiment_milli",
};
static const int64_t s_steps[3] = { 60, 3600, 86400 };
static const char *const s_res_names[3] = { "minute", "hour", "day" };
static const char s_res_tags[3] = { 'm', 'h', 'd' };
static const char *const s_top_names[4] = { "authors", "hashtags", "terms", "posts" };

int64_t
api_res_step(enum api_res res)
{
    return s_steps[res];
}

const char *
api_res_name(enum api_res res)
{
    return s_res_names[res];
}

int
api_res_parse(const char *s, enum api_res *out)
{
    int i;

    for (i = 0; i < 3; i++) {
        if (strcmp(s, s_res_names[i]) == 0 || (s[0] == s_res_tags[i] && s[1] == '\0')) {
            *out = (enum api_res)i;
            return 0;
        }
    }
    return -1;
}

int
api_top_parse(const char *s, enum api_top_kind *out)
{
    int i;

    for (i = 0; i < 4; i++) {
        if (strcmp(s, s_top_names[i]) == 0) {
            *out = (enum api_top_kind)i;
            return 0;
        }
    }
    return -1;
}

int
api_time_parse(const char *s, int64_t *out)
{
    int64_t ms;

    if (esc_parse_i64(s, 0, INT64_C(253402300799), out) == 0) {
        return 0;
    }
    if (esc_time_parse_iso8601(s, &ms) == 0) {
        *out = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
        return 0;
    }
    return -1;
}

static int64_t
s_floor(int64_t t, int64_t step)
{
    return t >= 0 ? t / step * step : -((-t + step - 1) / step) * step;
}

int
api_range_parse(const char *from, const char *to, const char *res, int64_t now_s,
                int64_t max_points, struct api_range *out, char *why, size_t whysz)
{
    static const int64_t spans[3] = { 2 * 3600, 7 * 86400, 90 * 86400 };
    int64_t f = 0;
    int64_t t = now_s;
    enum api_res r = API_RES_HOUR;
    int have_res = 0;
    int64_t step;

    if (res != NULL && res[0] != '\0') {
        if (api_res_parse(res, &r) != 0) {
            snprintf(why, whysz, "res: expected minute, hour or day");
            return -1;
        }
        have_res = 1;
    }
    if (to != NULL && to[0] != '\0' && api_time_parse(to, &t) != 0) {
        snprintf(why, whysz, "to: expected Unix seconds or an RFC 3339 time");
        return -1;
    }
    if (from != NULL && from[0] != '\0') {
        if (api_time_parse(from, &f) != 0) {
            snprintf(why, whysz, "from: expected Unix seconds or an RFC 3339 time");
            return -1;
        }
        if (!have_res) {
            r = t - f <= 6 * 3600 ? API_RES_MINUTE
                                  : (t - f <= 14 * 86400 ? API_RES_HOUR : API_RES_DAY);
        }
    }
    if (from != NULL && from[0] != '\0' && f >= t) {
        snprintf(why, whysz, "from must be before to");
        return -1;
    }
    step = s_steps[r];
    t = s_floor(t + step - 1, step);
    if (from == NULL || from[0] == '\0') {
        f = t - spans[r];
    }
    f = s_floor(f, step);
    if (f >= t) {
        snprintf(why, whysz, "from must be before to");
        return -1;
    }
    if ((t - f) / step > max_points) {
        snprintf(why, whysz, "range too long: %lld buckets of a %s, at most %lld",
                 (long long)((t - f) / step), s_res_names[r], (long long)max_points);
        return -1;
    }
    out->from = f;
    out->to = t;
    out->res = r;
    return 0;
}

/* ---- bucket hashes ----------------------------------------------------------------------- */

struct s_acc {
    int64_t fix[S_NFIX];
    json_t *langs;     /* code -> count */
    json_t *platforms; /* name -> count */
    int64_t peak_t;
    int64_t peak_posts;
};

static void
s_add_dyn(json_t *obj, const char *name, int64_t v)
{
    json_t *cur = json_object_get(obj, name);

    json_object_set_new(obj, name, json_integer((cur != NULL ? json_integer_value(cur) : 0) + v));
}

/* Reads one HGETALL reply into fix[] and adds the dynamic fields to acc. */
static void
s_read_hash(const struct esc_kv_val *v, int64_t fix[S_NFIX], struct s_acc *acc)
{
    size_t i;
    size_t k;

    memset(fix, 0, S_NFIX * sizeof(int64_t));
    if (v->type != ESC_KV_ARRAY) {
        return;
    }
    for (i = 0; i + 1 < v->n; i += 2) {
        const char *f = v->elem[i].str;
        int64_t n = 0;

        if (f == NULL || v->elem[i + 1].str == NULL
            || esc_parse_i64(v->elem[i + 1].str, INT64_MIN, INT64_MAX, &n) != 0) {
            continue;
        }
        for (k = 0; k < S_NFIX; k++) {
            if (strcmp(f, s_fix_names[k]) == 0) {
                fix[k] = n;
                break;
            }
        }
        if (k < S_NFIX || acc == NULL) {
            continue;
        }
        if (strncmp(f, "lang:", 5) == 0 && f[5] != '\0') {
            s_add_dyn(acc->langs, f + 5, n);
        }
        else if (strncmp(f, "platform:", 9) == 0 && f[9] != '\0') {
            s_add_dyn(acc->platforms, f + 9, n);
        }
    }
}

/* The summary document of acc. */
static json_t *
s_summary(const struct s_acc *acc)
{
    json_t *o = json_object();
    json_t *s = json_object();
    size_t k;

    for (k = 0; k <= F_ENGAGEMENT; k++) {
        json_object_set_new(o, s_fix_names[k], json_integer(acc->fix[k]));
    }
    json_object_set_new(s, "positive", json_integer(acc->fix[F_POS]));
    json_object_set_new(s, "neutral", json_integer(acc->fix[F_NEU]));
    json_object_set_new(s, "negative", json_integer(acc->fix[F_NEG]));
    json_object_set_new(s, "average",
                        acc->fix[F_POSTS] > 0
                            ? json_real(round((double)acc->fix[F_SENT] / 1000.0
                                              / (double)acc->fix[F_POSTS] * 1000.0) / 1000.0)
                            : json_null());
    json_object_set_new(o, "sentiment", s);
    json_object_set_new(o, "languages", json_incref(acc->langs));
    json_object_set_new(o, "platforms", json_incref(acc->platforms));
    return o;
}

static void
s_key(char *out, size_t outsz, const char *prefix, const char *topic, enum api_res res, int64_t t)
{
    snprintf(out, outsz, "%s:c:{%s}:%c:%lld", prefix, topic, s_res_tags[res], (long long)t);
}

esc_rc
api_store_buckets(esc_kv_t *kv, const char *prefix, const char *topic, const struct api_range *r,
                  json_t **series_out, json_t **summary_out)
{
    int64_t step = s_steps[r->res];
    size_t n = (size_t)((r->to - r->from) / step);
    struct esc_kv_val *v = esc_calloc(n > 0 ? n : 1, sizeof(*v));
    json_t *cols[S_NFIX + 1];
    json_t *ts = NULL;
    struct s_acc acc;
    char key[S_KEY_MAX];
    size_t i;
    size_t k;
    esc_rc rc;

    for (i = 0; i < n; i++) {
        s_key(key, sizeof(key), prefix, topic, r->res, r->from + (int64_t)i * step);
        esc_kv_append(kv, "HGETALL %s", key);
    }
    rc = esc_kv_exec_replies(kv, v, n, NULL);
    if (rc != ESC_OK) {
        esc_free(v);
        return rc;
    }
    memset(&acc, 0, sizeof(acc));
    acc.langs = json_object();
    acc.platforms = json_object();
    acc.peak_t = r->from;
    if (series_out != NULL) {
        ts = json_array();
        for (k = 0; k <= S_NFIX; k++) {
            cols[k] = json_array();
        }
    }
    for (i = 0; i < n; i++) {
        int64_t fix[S_NFIX];
        int64_t t = r->from + (int64_t)i * step;

        s_read_hash(&v[i], fix, &acc);
        for (k = 0; k < S_NFIX; k++) {
            acc.fix[k] += fix[k];
        }
        if (fix[F_POSTS] > acc.peak_posts) {
            acc.peak_posts = fix[F_POSTS];
            acc.peak_t = t;
        }
        if (ts != NULL) {
            json_array_append_new(ts, json_integer(t));
            for (k = 0; k < S_NFIX; k++) {
                json_array_append_new(cols[k], json_integer(fix[k]));
            }
            json_array_append_new(cols[S_NFIX],
                                  fix[F_POSTS] > 0
                                      ? json_real(round((double)fix[F_SENT] / (double)fix[F_POSTS])
                                                  / 1000.0)
                                      : json_null());
        }
        esc_kv_val_fini(&v[i]);
    }
    esc_free(v);
    if (series_out != NULL) {
        json_t *s = json_object();
        json_t *series = json_object();

        json_object_set_new(s, "topic", json_string(topic));
        json_object_set_new(s, "res", json_string(s_res_names[r->res]));
        json_object_set_new(s, "step", json_integer(step));
        json_object_set_new(s, "from", json_integer(r->from));
        json_object_set_new(s, "to", json_integer(r->to));
        json_object_set_new(s, "t", ts);
        for (k = 0; k < S_NFIX; k++) {
            json_object_set_new(series, s_fix_names[k], cols[k]);
        }
        json_object_set_new(series, "sentiment_avg", cols[S_NFIX]);
        json_object_set_new(s, "series", series);
        *series_out = s;
    }
    if (summary_out != NULL) {
        json_t *s = s_summary(&acc);
        json_t *peak = json_object();

        json_object_set_new(s, "topic", json_string(topic));
        json_object_set_new(s, "res", json_string(s_res_names[r->res]));
        json_object_set_new(s, "from", json_integer(r->from));
        json_object_set_new(s, "to", json_integer(r->to));
        json_object_set_new(peak, "t", json_integer(acc.peak_t));
        json_object_set_new(peak, "posts", json_integer(acc.peak_posts));
        json_object_set_new(s, "peak", peak);
        *summary_out = s;
    }
    json_decref(acc.langs);
    json_decref(acc.platforms);
    return ESC_OK;
}

esc_rc
api_store_totals(esc_kv_t *kv, const char *prefix, const char *topic, json_t **out)
{
    struct esc_kv_val v;
    struct s_acc acc;
    esc_rc rc;

    memset(&v, 0, sizeof(v));
    rc = esc_kv_cmd(kv, &v, "HGETALL %s:t:{%s}", prefix, topic);
    if (rc != ESC_OK) {
        return rc;
    }
    memset(&acc, 0, sizeof(acc));
    acc.langs = json_object();
    acc.platforms = json_object();
    s_read_hash(&v, acc.fix, &acc);
    esc_kv_val_fini(&v);
    *out = s_summary(&acc);
    json_object_set_new(*out, "topic", json_string(topic));
    json_decref(acc.langs);
    json_decref(acc.platforms);
    return ESC_OK;
}

/* ---- top lists --------------------------------------------------------------------------- */

struct s_member {
    char *key;    /* owned; NULL = empty slot */
    double score;
};

struct s_merge {
    struct s_member *slots;
    size_t cap;   /* power of two */
    size_t n;
};

static uint64_t
s_fnv(const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603);

    while (*s != '\0') {
        h ^= (unsigned char)*s++;
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static void s_merge_add(struct s_merge *m, const char *key, double score);

static void
s_merge_grow(struct s_merge *m)
{
    struct s_merge bigger;
    size_t i;

    bigger.cap = m->cap > 0 ? m->cap * 2 : 256;
    bigger.n = 0;
    bigger.slots = esc_calloc(bigger.cap, sizeof(*bigger.slots));
    for (i = 0; i < m->cap; i++) {
        if (m->slots[i].key != NULL) {
            s_merge_add(&bigger, m->slots[i].key, m->slots[i].score);
            esc_free(m->slots[i].key);
        }
    }
    esc_free(m->slots);
    *m = bigger;
}

static void
s_merge_add(struct s_merge *m, const char *key, double score)
{
    size_t i;

    if ((m->n + 1) * 2 > m->cap) {
        s_merge_grow(m);
    }
    i = (size_t)s_fnv(key) & (m->cap - 1);
    while (m->slots[i].key != NULL) {
        if (strcmp(m->slots[i].key, key) == 0) {
            m->slots[i].score += score;
            return;
        }
        i = (i + 1) & (m->cap - 1);
    }
    m->slots[i].key = esc_strdup(key);
    m->slots[i].score = score;
    m->n++;
}

static int
s_member_cmp(const void *a, const void *b)
{
    const struct s_member *x = a;
    const struct s_member *y = b;

    if (x->key == NULL || y->key == NULL) {
        return (x->key == NULL) - (y->key == NULL);
    }
    if (x->score != y->score) {
        return x->score < y->score ? 1 : -1;
    }
    return strcmp(x->key, y->key);
}

static void
s_merge_free(struct s_merge *m)
{
    size_t i;

    for (i = 0; i < m->cap; i++) {
        esc_free(m->slots[i].key);
    }
    esc_free(m->slots);
    memset(m, 0, sizeof(*m));
}

static int64_t
s_val_i64(const struct esc_kv_val *v)
{
    int64_t n = 0;

    if (v->type == ESC_KV_INT) {
        return v->integer;
    }
    if (v->type == ESC_KV_STR && v->str != NULL) {
        if (esc_parse_i64(v->str, INT64_MIN, INT64_MAX, &n) != 0) {
            n = (int64_t)strtod(v->str, NULL);
        }
    }
    return n;
}

/* The post hash reply (HGETALL) as an object; numeric fields as numbers. */
static json_t *
s_post_obj(const struct esc_kv_val *v, const char *member)
{
    static const char *const ints[] = { "created_at", "likes", "reposts", "replies",
                                        "engagement", "followers", NULL };
    json_t *o = json_object();
    size_t i;
    size_t k;

    json_object_set_new(o, "id", json_string(member));
    for (i = 0; v->type == ESC_KV_ARRAY && i + 1 < v->n; i += 2) {
        const char *f = v->elem[i].str;
        const char *s = v->elem[i + 1].str;
        int is_int = 0;

        if (f == NULL || s == NULL) {
            continue;
        }
        for (k = 0; ints[k] != NULL; k++) {
            is_int |= strcmp(f, ints[k]) == 0;
        }
        if (is_int) {
            json_object_set_new(o, f, json_integer(s_val_i64(&v->elem[i + 1])));
        }
        else if (strcmp(f, "sentiment") == 0) {
            json_object_set_new(o, f, json_real(strtod(s, NULL)));
        }
        else if (json_object_get(o, f) == NULL) {
            json_object_set_new(o, f, json_stringn(s, v->elem[i + 1].len));
        }
    }
    return o;
}

esc_rc
api_store_top(esc_kv_t *kv, const char *prefix, const char *topic, enum api_top_kind kind,
              int64_t from, int64_t to, size_t limit, json_t **out)
{
    int64_t d0 = s_floor(from, 86400);
    int64_t d1 = s_floor(to - 1, 86400);
    size_t days = d1 >= d0 ? (size_t)((d1 - d0) / 86400 + 1) : 0;
    size_t per_day = limit * 5 < 100 ? 100 : limit * 5;
    struct esc_kv_val *v;
    struct s_merge m;
    json_t *items = json_array();
    size_t n_items;
    size_t i;
    size_t j;
    size_t k;
    char key[S_KEY_MAX];
    esc_rc rc;

    if (days > S_TOP_DAYS_MAX) {
        days = S_TOP_DAYS_MAX;
        d0 = d1 - (int64_t)(days - 1) * 86400;
    }
    memset(&m, 0, sizeof(m));
    v = esc_calloc(days > 0 ? days : 1, sizeof(*v));
    for (i = 0; i < days; i++) {
        snprintf(key, sizeof(key), "%s:top:{%s}:%s:%lld", prefix, topic, s_top_names[kind],
                 (long long)(d0 + (int64_t)i * 86400));
        esc_kv_append(kv, "ZREVRANGE %s 0 %lld WITHSCORES", key, (long long)per_day - 1);
    }
    rc = esc_kv_exec_replies(kv, v, days, NULL);
    if (rc != ESC_OK) {
        esc_free(v);
        json_decref(items);
        return rc;
    }
    for (i = 0; i < days; i++) {
        for (j = 0; v[i].type == ESC_KV_ARRAY && j + 1 < v[i].n; j += 2) {
            if (v[i].elem[j].str != NULL && v[i].elem[j + 1].str != NULL) {
                s_merge_add(&m, v[i].elem[j].str, strtod(v[i].elem[j + 1].str, NULL));
            }
        }
        esc_kv_val_fini(&v[i]);
    }
    esc_free(v);
    if (m.cap > 0) {
        qsort(m.slots, m.cap, sizeof(*m.slots), s_member_cmp);
    }
    n_items = m.n < limit ? m.n : limit;

    /* details: author sums per day (info hashes), or the post hashes */
    if (n_items > 0 && (kind == API_TOP_AUTHORS || kind == API_TOP_POSTS)) {
        size_t n_cmd = kind == API_TOP_AUTHORS ? n_items * days : n_items;

        v = esc_calloc(n_cmd, sizeof(*v));
        for (k = 0; k < n_items; k++) {
            const char *mem = m.slots[k].key;

            if (kind == API_TOP_POSTS) {
                esc_kv_append(kv, "HGETALL %s:post:{%s}:%s", prefix, topic, mem);
                continue;
            }
            for (i = 0; i < days; i++) {
                snprintf(key, sizeof(key), "%s:top:{%s}:authors:%lld:info", prefix, topic,
                         (long long)(d0 + (int64_t)i * 86400));
                esc_kv_append(kv, "HMGET %s posts:%s reach:%s engagement:%s", key, mem, mem,
                              mem);
            }
        }
        rc = esc_kv_exec_replies(kv, v, n_cmd, NULL);
        if (rc != ESC_OK) {
            esc_free(v);
            s_merge_free(&m);
            json_decref(items);
            return rc;
        }
        for (k = 0; k < n_items; k++) {
            json_t *o;

            if (kind == API_TOP_POSTS) {
                o = s_post_obj(&v[k], m.slots[k].key);
                json_object_set_new(o, "score", json_real(m.slots[k].score));
                esc_kv_val_fini(&v[k]);
            }
            else {
                int64_t sums[3] = { 0, 0, 0 };

                for (i = 0; i < days; i++) {
                    struct esc_kv_val *r = &v[k * days + i];

                    for (j = 0; r->type == ESC_KV_ARRAY && j < 3 && j < r->n; j++) {
                        sums[j] += s_val_i64(&r->elem[j]);
                    }
                    esc_kv_val_fini(r);
                }
                o = json_object();
                json_object_set_new(o, "key", json_string(m.slots[k].key));
                json_object_set_new(o, "score", json_real(round(m.slots[k].score * 1000) / 1000));
                json_object_set_new(o, "posts", json_integer(sums[0]));
                json_object_set_new(o, "reach", json_integer(sums[1]));
                json_object_set_new(o, "engagement", json_integer(sums[2]));
            }
            json_array_append_new(items, o);
        }
        esc_free(v);
    }
    else {
        for (k = 0; k < n_items; k++) {
            json_t *o = json_object();

            json_object_set_new(o, "key", json_string(m.slots[k].key));
            json_object_set_new(o, "posts", json_integer((json_int_t)llround(m.slots[k].score)));
            json_array_append_new(items, o);
        }
    }
    s_merge_free(&m);
    *out = json_object();
    json_object_set_new(*out, "topic", json_string(topic));
    json_object_set_new(*out, "kind", json_string(s_top_names[kind]));
    json_object_set_new(*out, "from", json_integer(days > 0 ? d0 : from));
    json_object_set_new(*out, "to", json_integer(days > 0 ? d1 + 86400 : to));
    json_object_set_new(*out, "items", items);
    return ESC_OK;
}

/* ---- lists ------------------------------------------------------------------------------- */

esc_rc
api_store_alerts(esc_kv_t *kv, const char *prefix, const char *team, const char *topic,
                 int64_t from, int64_t to, size_t limit, json_t **out)
{
    struct esc_kv_val v;
    json_t *arr = json_array();
    size_t i;
    esc_rc rc;

    memset(&v, 0, sizeof(v));
    rc = esc_kv_cmd(kv, &v, "LRANGE %s:alerts:{%s} 0 %d", prefix, team, S_ALERTS_SCAN - 1);
    if (rc != ESC_OK) {
        json_decref(arr);
        return rc;
    }
    for (i = 0; v.type == ESC_KV_ARRAY && i < v.n && json_array_size(arr) < limit; i++) {
        json_t *a = v.elem[i].str != NULL ? json_loadb(v.elem[i].str, v.elem[i].len, 0, NULL)
                                          : NULL;
        const char *at = json_string_value(json_object_get(a, "topic"));
        int64_t ws = json_integer_value(json_object_get(a, "window_start")) / 1000;
        int64_t we = json_integer_value(json_object_get(a, "window_end")) / 1000;

        if (!json_is_object(a) || (topic != NULL && (at == NULL || strcmp(at, topic) != 0))
            || (to > 0 && (we <= from || ws >= to))) {
            json_decref(a);
            continue;
        }
        json_array_append_new(arr, a);
    }
    esc_kv_val_fini(&v);
    *out = json_object();
    json_object_set_new(*out, "alerts", arr);
    return ESC_OK;
}

esc_rc
api_store_latest(esc_kv_t *kv, const char *prefix, const char *topic, size_t limit, json_t **out)
{
    struct esc_kv_val v;
    size_t i;
    esc_rc rc;

    if (limit > S_LATEST_MAX) {
        limit = S_LATEST_MAX;
    }
    memset(&v, 0, sizeof(v));
    rc = esc_kv_cmd(kv, &v, "LRANGE %s:latest:{%s} 0 %lld", prefix, topic,
                    (long long)(limit > 0 ? limit - 1 : 0));
    if (rc != ESC_OK) {
        return rc;
    }
    *out = json_array();
    for (i = 0; limit > 0 && v.type == ESC_KV_ARRAY && i < v.n; i++) {
        json_t *p = v.elem[i].str != NULL ? json_loadb(v.elem[i].str, v.elem[i].len, 0, NULL)
                                          : NULL;

        if (json_is_object(p) && json_is_string(json_object_get(p, "text"))) {
            json_array_append_new(*out, p);
        }
        else {
            json_decref(p);
        }
    }
    esc_kv_val_fini(&v);
    return ESC_OK;
}

/* ---- overview ---------------------------------------------------------------------------- */

esc_rc
api_store_overview(esc_kv_t *kv, const char *prefix, const char *const *topics, size_t n,
                   int64_t end_s, json_t **out)
{
    const size_t hours = 14 * 24;
    int64_t end = s_floor(end_s + 3599, 3600);
    int64_t start = end - (int64_t)hours * 3600;
    struct esc_kv_val *v = esc_calloc(n * hours + 1, sizeof(*v));
    json_t *arr = json_array();
    char key[S_KEY_MAX];
    size_t i;
    size_t h;
    esc_rc rc;

    for (i = 0; i < n; i++) {
        for (h = 0; h < hours; h++) {
            s_key(key, sizeof(key), prefix, topics[i], API_RES_HOUR, start + (int64_t)h * 3600);
            esc_kv_append(kv, "HGET %s posts", key);
        }
    }
    rc = esc_kv_exec_replies(kv, v, n * hours, NULL);
    if (rc != ESC_OK) {
        esc_free(v);
        json_decref(arr);
        return rc;
    }
    for (i = 0; i < n; i++) {
        json_t *o = json_object();
        json_t *spark = json_array();
        int64_t prev = 0;
        int64_t cur = 0;

        for (h = 0; h < hours; h++) {
            int64_t p = s_val_i64(&v[i * hours + h]);

            if (h < hours / 2) {
                prev += p;
            }
            else {
                cur += p;
                json_array_append_new(spark, json_integer(p));
            }
            esc_kv_val_fini(&v[i * hours + h]);
        }
        json_object_set_new(o, "key", json_string(topics[i]));
        json_object_set_new(o, "posts", json_integer(cur));
        json_object_set_new(o, "posts_prev", json_integer(prev));
        json_object_set_new(o, "change_pct",
                            prev > 0 ? json_real(round((double)(cur - prev) * 1000.0
                                                       / (double)prev) / 10.0)
                                     : json_null());
        json_object_set_new(o, "hourly", spark);
        json_array_append_new(arr, o);
    }
    esc_free(v);
    *out = json_object();
    json_object_set_new(*out, "start", json_integer(end - (int64_t)hours / 2 * 3600));
    json_object_set_new(*out, "end", json_integer(end));
    json_object_set_new(*out, "step", json_integer(3600));
    json_object_set_new(*out, "topics", arr);
    return ESC_OK;
}

esc_rc
api_store_latest_day(esc_kv_t *kv, const char *prefix, const char *const *topics, size_t n,
                     int64_t now_s, int max_days, int64_t *out)
{
    const int chunk = 31;
    int64_t today = s_floor(now_s, 86400);
    int done = 0;
    char key[S_KEY_MAX];

    *out = 0;
    while (done < max_days && n > 0) {
        int days = max_days - done < chunk ? max_days - done : chunk;
        struct esc_kv_val *v = esc_calloc((size_t)days * n, sizeof(*v));
        int d;
        size_t i;
        esc_rc rc;

        for (d = 0; d < days; d++) {
            for (i = 0; i < n; i++) {
                s_key(key, sizeof(key), prefix, topics[i], API_RES_DAY,
                      today - (int64_t)(done + d) * 86400);
                esc_kv_append(kv, "EXISTS %s", key);
            }
        }
        rc = esc_kv_exec_replies(kv, v, (size_t)days * n, NULL);
        if (rc != ESC_OK) {
            esc_free(v);
            return rc;
        }
        for (d = 0; d < days && *out == 0; d++) {
            for (i = 0; i < n; i++) {
                if (v[(size_t)d * n + i].type == ESC_KV_INT && v[(size_t)d * n + i].integer > 0) {
                    *out = today - (int64_t)(done + d) * 86400;
                    break;
                }
            }
        }
        for (i = 0; i < (size_t)days * n; i++) {
            esc_kv_val_fini(&v[i]);
        }
        esc_free(v);
        if (*out != 0) {
            break;
        }
        done += days;
    }
    return ESC_OK;
}
