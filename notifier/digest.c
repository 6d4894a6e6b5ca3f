#define ESC_LOG_MODULE "digest"
/* The digest of one team for one period, from Redis to the recipients, exactly once.
 *
 * Numbers: each topic's hour buckets <prefix>:c:{team/topic}:h:<start> (UTC hours) of the period
 * and of the period before are read by one EVAL that sums every numeric field per slot (a local
 * hour for daily digests, a local day otherwise) on the server, so the reply stays small even
 * for a month (~1500 keys, one hash slot). A bucket counts for the local day (hour) in which it
 * starts: zones whose offset is not a whole number of hours are approximated to the hour. The
 * sums carry the fixed fields (posts, reach, likes, reposts, replies, engagement, sentiment_*)
 * and the aggregator's per-language and per-platform fields ("lang:es", "platform:x"). The top
 * lists (authors, hashtags, terms, posts) are per UTC day; the UTC days whose midday falls in the
 * period are merged by a second EVAL (top posts are then filtered by their exact created_at).
 * Spikes come from the team's alert history <prefix>:alerts:{team}.
 *
 * Sending: ntf_digest_run claims the digest (schedule.h), collects, renders (digest_render.c),
 * delivers, and records the outcome. The daemon's scheduler (ntf_digester_t) calls it for every
 * team whose period is due. Single-threaded; the time zone helpers are not thread-safe. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_util.h"
#include "digest.h"
#include "mail.h"
#include "ntf.h"
#include "schedule.h"
#include "strbuf.h"

#define S_HOUR 3600
#define S_DAY 86400
#define S_ALERTS_SCAN 10000        /* newest alert history entries examined */
#define S_KEY_MAX 320
#define S_LEASE_EXTRA_MS 60000     /* a claim's lease: smtp_timeout_ms + this */
#define S_TICK_BUDGET_MS 2000      /* a tick stops after a digest once it has worked this long */
#define S_BUSY_RECHECK_S 60        /* a busy, waiting or failed digest is looked at again after */
#define S_RECORD_TRIES 5           /* attempts to record "sent" before leaving it to the tick */

/* Sums every numeric field of KEYS[i] into group ARGV[i + 1] (1-based; ARGV[1] = groups) and
 * returns, per group, a flat array field, value, field, value, ... Integer fields only: Lua
 * numbers are converted to integer replies. */
static const char s_sum_script[] =
    "local ng = tonumber(ARGV[1]) "
    "local acc = {} "
    "for g = 1, ng do acc[g] = {} end "
    "for i, k in ipairs(KEYS) do "
    "  local a = acc[tonumber(ARGV[i + 1])] "
    "  local h = redis.call('HGETALL', k) "
    "  for j = 1, #h, 2 do "
    "    local v = tonumber(h[j + 1]) "
    "    if v then a[h[j]] = (a[h[j]] or 0) + v end "
    "  end "
    "end "
    "local out = {} "
    "for g = 1, ng do "
    "  local flat = {} "
    "  for f, v in pairs(acc[g]) do flat[#flat + 1] = f flat[#flat + 1] = v end "
    "  out[g] = flat "
    "end "
    "return out";

/* ---- small helpers ------------------------------------------------------------------------ */

static int64_t
s_val_int(const struct esc_kv_val *v)
{
    int64_t n;

    if (v->type == ESC_KV_INT) {
        return v->integer;
    }
    if (v->type == ESC_KV_STR && esc_parse_i64(v->str, INT64_MIN, INT64_MAX, &n) == 0) {
        return n;
    }
    return 0;
}

static double
s_val_dbl(const struct esc_kv_val *v)
{
    char *end;
    double d;

    if (v->type == ESC_KV_INT) {
        return (double)v->integer;
    }
    if (v->type != ESC_KV_STR) {
        return 0.0;
    }
    d = strtod(v->str, &end);
    return (end != v->str && *end == '\0' && isfinite(d)) ? d : 0.0;
}

/* Adds n to the entry called name (len bytes) of a count list, creating it. */
static void
s_count_add(struct ntf_digest_count **list, size_t *n_list, size_t *cap, const char *name,
            size_t len, double n)
{
    size_t i;

    for (i = 0; i < *n_list; i++) {
        if (strlen((*list)[i].name) == len && memcmp((*list)[i].name, name, len) == 0) {
            (*list)[i].n += n;
            return;
        }
    }
    if (*n_list == *cap) {
        *cap = *cap == 0 ? 8 : *cap * 2;
        *list = esc_realloc(*list, *cap * sizeof(**list));
    }
    (*list)[*n_list].name = esc_strndup(name, len);
    (*list)[*n_list].n = n;
    (*n_list)++;
}

static int
s_count_cmp(const void *a, const void *b)
{
    const struct ntf_digest_count *x = a;
    const struct ntf_digest_count *y = b;

    if (x->n != y->n) {
        return x->n < y->n ? 1 : -1;
    }
    return strcmp(x->name, y->name);
}

static void
s_count_free(struct ntf_digest_count **list, size_t *n)
{
    size_t i;

    for (i = 0; *list != NULL && i < *n; i++) {
        esc_free((*list)[i].name);
    }
    ESC_FREE(*list);
    *n = 0;
}

/* Sorts a count list (most first), drops zero entries and keeps at most keep. */
static void
s_count_finish(struct ntf_digest_count *list, size_t *n, size_t keep)
{
    size_t i;
    size_t k = 0;

    if (*n == 0) {
        return;
    }
    qsort(list, *n, sizeof(*list), s_count_cmp);
    for (i = 0; i < *n; i++) {
        if (list[i].n > 0 && k < keep) {
            list[k++] = list[i];
        }
        else {
            esc_free(list[i].name);
        }
    }
    *n = k;
}

/* ---- hour buckets ------------------------------------------------------------------------- */

/* Slot (0-based) of hour bucket b inside the local days day_start[0..n]: its hour (daily) or its
 * day. -1 when outside. */
static int
s_slot(const int64_t *day_start, int n, int hourly, int64_t b)
{
    int d = 0;

    if (b < day_start[0] || b >= day_start[n]) {
        return -1;
    }
    if (hourly) {
        return (int)((b - day_start[0]) / S_HOUR);
    }
    while (d < n - 1 && b >= day_start[d + 1]) {
        d++;
    }
    return d;
}

static int
s_hours_of(const int64_t *day_start, int n)
{
    return (int)((day_start[n] - day_start[0] + S_HOUR - 1) / S_HOUR);
}

struct s_buckets {
    char **keys;      /* owned */
    const char **argv;
    char **groups;    /* ARGV group numbers, owned */
    size_t n_keys;
};

/* Appends the hour keys in [from, to) of topic, each with its group (1-based). */
static void
s_add_range(struct s_buckets *b, const char *prefix, const char *topic, const int64_t *day_start,
            int n, int hourly, int group_base, size_t cap)
{
    int64_t h = ((day_start[0] + S_HOUR - 1) / S_HOUR) * S_HOUR;
    char key[S_KEY_MAX];
    char grp[16];

    for (; h < day_start[n] && b->n_keys < cap; h += S_HOUR) {
        int slot = s_slot(day_start, n, hourly, h);

        if (slot < 0) {
            continue;
        }
        if (slot >= NTF_CHART_SLOTS_MAX) {
            slot = NTF_CHART_SLOTS_MAX - 1;
        }
        snprintf(key, sizeof(key), "%s:c:{%s}:h:%lld", prefix, topic, (long long)h);
        snprintf(grp, sizeof(grp), "%d", group_base + slot + 1);
        b->keys[b->n_keys] = esc_strdup(key);
        b->groups[b->n_keys] = esc_strdup(grp);
        b->n_keys++;
    }
}

/* Applies one group's sums (flat field/value array) to the topic. cur: a slot of the period. */
static void
s_apply_group(struct ntf_digest_topic *t, const struct esc_kv_val *flat, int cur, int slot,
              int day, struct ntf_digest_have *have, size_t caps[2])
{
    size_t j;

    for (j = 0; j + 1 < flat->n; j += 2) {
        const struct esc_kv_val *f = &flat->elem[j];
        int64_t v = s_val_int(&flat->elem[j + 1]);
        const char *name;

        if (f->type != ESC_KV_STR) {
            continue;
        }
        name = f->str;
        if (strcmp(name, "posts") == 0) {
            if (cur) {
                t->posts += v;
                t->slots[slot] += v;
                t->per_day[day] += v;
            }
            else {
                t->posts_prev += v;
                t->slots_prev[slot] += v;
            }
        }
        else if (strcmp(name, "reach") == 0) {
            *(cur ? &t->reach : &t->reach_prev) += v;
        }
        else if (strcmp(name, "engagement") == 0) {
            *(cur ? &t->engagement : &t->engagement_prev) += v;
        }
        else if (!cur) {
            continue;
        }
        else if (strcmp(name, "likes") == 0) {
            t->likes += v;
        }
        else if (strcmp(name, "reposts") == 0) {
            t->reposts += v;
        }
        else if (strcmp(name, "replies") == 0) {
            t->replies += v;
        }
        else if (strcmp(name, "sentiment_pos") == 0) {
            t->sent_pos += v;
            have->splits = true;
        }
        else if (strcmp(name, "sentiment_neu") == 0) {
            t->sent_neu += v;
            have->splits = true;
        }
        else if (strcmp(name, "sentiment_neg") == 0) {
            t->sent_neg += v;
            have->splits = true;
        }
        else if (strncmp(name, "lang:", 5) == 0 && name[5] != '\0') {
            s_count_add(&t->langs, &t->n_langs, &caps[0], name + 5, strlen(name + 5), (double)v);
            have->splits = true;
        }
        else if (strncmp(name, "platform:", 9) == 0 && name[9] != '\0') {
            s_count_add(&t->platforms, &t->n_platforms, &caps[1], name + 9, strlen(name + 9),
                        (double)v);
            have->splits = true;
        }
    }
}

static esc_rc
s_collect_topic(esc_kv_t *kv, const char *prefix, const struct ntf_period *p,
                struct ntf_digest_topic *dt, struct ntf_digest_have *have)
{
    int hourly = p->kind == NTF_PERIOD_DAY;
    int n_cur = hourly ? s_hours_of(p->day_start, 1) : p->n_days;
    int n_prev = hourly ? s_hours_of(p->prev_day_start, 1) : p->prev_n_days;
    size_t cap = (size_t)(s_hours_of(p->day_start, p->n_days)
                          + s_hours_of(p->prev_day_start, p->prev_n_days) + 2);
    struct s_buckets b;
    struct esc_kv_val r;
    char ng[16];
    char nk[24];
    size_t caps[2] = { 0, 0 };
    esc_rc rc = ESC_ERR;
    size_t i;
    int g;

    if (n_cur > NTF_CHART_SLOTS_MAX) {
        n_cur = NTF_CHART_SLOTS_MAX;
    }
    if (n_prev > NTF_CHART_SLOTS_MAX) {
        n_prev = NTF_CHART_SLOTS_MAX;
    }
    dt->n_slots = n_cur;
    dt->n_slots_prev = n_prev;
    memset(&r, 0, sizeof(r));
    memset(&b, 0, sizeof(b));
    b.keys = esc_calloc(cap, sizeof(*b.keys));
    b.groups = esc_calloc(cap, sizeof(*b.groups));
    s_add_range(&b, prefix, dt->topic->key, p->day_start, hourly ? 1 : p->n_days, hourly, 0,
                cap);
    s_add_range(&b, prefix, dt->topic->key, p->prev_day_start, hourly ? 1 : p->prev_n_days,
                hourly, NTF_CHART_SLOTS_MAX, cap);
    b.argv = esc_calloc(4 + 2 * b.n_keys, sizeof(*b.argv));
    snprintf(ng, sizeof(ng), "%d", 2 * NTF_CHART_SLOTS_MAX);
    b.argv[0] = "EVAL";
    b.argv[1] = s_sum_script;
    b.argv[3 + b.n_keys] = ng;
    for (i = 0; i < b.n_keys; i++) {
        b.argv[3 + i] = b.keys[i];
        b.argv[4 + b.n_keys + i] = b.groups[i];
    }
    snprintf(nk, sizeof(nk), "%zu", b.n_keys);
    b.argv[2] = nk;
    rc = esc_kv_cmdv(kv, &r, (int)(4 + 2 * b.n_keys), b.argv, NULL);
    if (rc != ESC_OK) {
        goto out;
    }
    if (r.type == ESC_KV_ERROR) {
        esc_log_error("redis refused the bucket read topic=%s err=\"%s\"", dt->topic->key, r.str);
        rc = ESC_ERR;
        goto out;
    }
    if (r.type != ESC_KV_ARRAY || r.n != 2 * NTF_CHART_SLOTS_MAX) {
        esc_log_error("unexpected redis reply topic=%s type=%d n=%zu", dt->topic->key,
                      (int)r.type, r.n);
        rc = ESC_ERR;
        goto out;
    }
    for (g = 0; g < 2 * NTF_CHART_SLOTS_MAX; g++) {
        int cur = g < NTF_CHART_SLOTS_MAX;
        int slot = cur ? g : g - NTF_CHART_SLOTS_MAX;

        if (r.elem[g].type != ESC_KV_ARRAY || (cur ? slot >= n_cur : slot >= n_prev)) {
            continue;
        }
        s_apply_group(dt, &r.elem[g], cur, slot, hourly ? 0 : slot, have, caps);
    }
    s_count_finish(dt->langs, &dt->n_langs, 64);
    s_count_finish(dt->platforms, &dt->n_platforms, 64);
    rc = ESC_OK;

out:
    esc_kv_val_fini(&r);
    for (i = 0; i < b.n_keys; i++) {
        esc_free(b.keys[i]);
        esc_free(b.groups[i]);
    }
    esc_free(b.keys);
    esc_free(b.groups);
    esc_free(b.argv);
    return rc;
}

/* ---- top lists ---------------------------------------------------------------------------- */

/* KEYS: per UTC day, 5 keys: authors zset, its info hash, hashtags, terms, posts zsets.
 * ARGV: days, post hash prefix, authors wanted, hashtags wanted, terms wanted, posts wanted.
 * Merges the days (scores added) and returns {authors {name, score, posts, ...}, hashtags
 * {name, score, ...}, terms {...}, posts {{member, score, {field, value, ...}}, ...}}. */
static const char s_top_script[] =
    "local nd = tonumber(ARGV[1]) "
    "local function merge(acc, key) "
    "  local r = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES') "
    "  for j = 1, #r, 2 do acc[r[j]] = (acc[r[j]] or 0) + tonumber(r[j + 1]) end "
    "end "
    "local function sorted(acc) "
    "  local arr = {} "
    "  for k, v in pairs(acc) do arr[#arr + 1] = {k, v} end "
    "  table.sort(arr, function(a, b) "
    "    if a[2] ~= b[2] then return a[2] > b[2] end return a[1] < b[1] end) "
    "  return arr "
    "end "
    "local A, AP, H, T, P = {}, {}, {}, {}, {} "
    "for d = 0, nd - 1 do "
    "  merge(A, KEYS[d * 5 + 1]) "
    "  local info = redis.call('HGETALL', KEYS[d * 5 + 2]) "
    "  for j = 1, #info, 2 do "
    "    if string.sub(info[j], 1, 6) == 'posts:' then "
    "      local m = string.sub(info[j], 7) "
    "      AP[m] = (AP[m] or 0) + (tonumber(info[j + 1]) or 0) "
    "    end "
    "  end "
    "  merge(H, KEYS[d * 5 + 3]) "
    "  merge(T, KEYS[d * 5 + 4]) "
    "  merge(P, KEYS[d * 5 + 5]) "
    "end "
    "local out = {{}, {}, {}, {}} "
    "local arr = sorted(A) "
    "for i = 1, math.min(tonumber(ARGV[3]), #arr) do "
    "  local o = out[1] "
    "  o[#o + 1] = arr[i][1] o[#o + 1] = tostring(arr[i][2]) o[#o + 1] = AP[arr[i][1]] or 0 "
    "end "
    "for g, acc in ipairs({H, T}) do "
    "  arr = sorted(acc) "
    "  for i = 1, math.min(tonumber(ARGV[3 + g]), #arr) do "
    "    local o = out[1 + g] "
    "    o[#o + 1] = arr[i][1] o[#o + 1] = tostring(arr[i][2]) "
    "  end "
    "end "
    "arr = sorted(P) "
    "for i = 1, math.min(tonumber(ARGV[6]), #arr) do "
    "  local h = redis.call('HGETALL', ARGV[2] .. arr[i][1]) "
    "  out[4][#out[4] + 1] = {arr[i][1], tostring(arr[i][2]), h} "
    "end "
    "return out";

/* The value of field name in a flat HGETALL reply, or NULL. Borrowed. */
static const struct esc_kv_val *
s_hfield(const struct esc_kv_val *flat, const char *name)
{
    size_t j;

    for (j = 0; j + 1 < flat->n; j += 2) {
        if (flat->elem[j].type == ESC_KV_STR && strcmp(flat->elem[j].str, name) == 0) {
            return &flat->elem[j + 1];
        }
    }
    return NULL;
}

static char *
s_hstr(const struct esc_kv_val *flat, const char *name)
{
    const struct esc_kv_val *v = s_hfield(flat, name);

    return v != NULL && v->type == ESC_KV_STR && v->str[0] != '\0' ? esc_strdup(v->str) : NULL;
}

static int64_t
s_hint(const struct esc_kv_val *flat, const char *name, int64_t def)
{
    const struct esc_kv_val *v = s_hfield(flat, name);

    return v != NULL ? s_val_int(v) : def;
}

/* Fills a count list from a flat {name, score[, posts]} reply; stride 2 or 3. With stride 3
 * the posts count is used as the number when known, else the score. */
static void
s_top_list(const struct esc_kv_val *flat, size_t stride, struct ntf_digest_count **list,
           size_t *n)
{
    size_t j;

    if (flat->type != ESC_KV_ARRAY || flat->n < stride) {
        return;
    }
    *list = esc_calloc(flat->n / stride + 1, sizeof(**list));
    for (j = 0; j + stride <= flat->n; j += stride) {
        if (flat->elem[j].type != ESC_KV_STR) {
            continue;
        }
        (*list)[*n].name = esc_strdup(flat->elem[j].str);
        (*list)[*n].n = s_val_dbl(&flat->elem[j + 1]);
        if (stride == 3 && s_val_int(&flat->elem[j + 2]) > 0) {
            (*list)[*n].n = (double)s_val_int(&flat->elem[j + 2]);
        }
        (*n)++;
    }
}

/* Top posts from {{member, score, {fields}}, ...}: only those created inside the period. */
static void
s_top_posts(const struct esc_kv_val *posts, const struct ntf_period *p,
            struct ntf_digest_topic *dt)
{
    int64_t lo = p->day_start[0] * 1000;
    int64_t hi = p->day_start[p->n_days] * 1000;
    size_t j;

    if (posts->type != ESC_KV_ARRAY || posts->n == 0) {
        return;
    }
    dt->top_posts = esc_calloc(NTF_DIGEST_TOP_POSTS, sizeof(*dt->top_posts));
    for (j = 0; j < posts->n && dt->n_top_posts < NTF_DIGEST_TOP_POSTS; j++) {
        const struct esc_kv_val *e = &posts->elem[j];
        const struct esc_kv_val *h;
        struct ntf_digest_post *tp;
        int64_t created;

        if (e->type != ESC_KV_ARRAY || e->n != 3 || e->elem[2].type != ESC_KV_ARRAY
            || e->elem[2].n == 0) {
            continue; /* the post's hash expired before its list entry */
        }
        h = &e->elem[2];
        created = s_hint(h, "created_at", 0);
        if (created != 0 && (created < lo || created >= hi)) {
            continue; /* from a UTC day that only partly overlaps the period */
        }
        tp = &dt->top_posts[dt->n_top_posts++];
        tp->text = s_hstr(h, "text");
        tp->author = s_hstr(h, "author_name");
        if (tp->author == NULL) {
            tp->author = s_hstr(h, "author");
        }
        tp->url = s_hstr(h, "url");
        tp->platform = s_hstr(h, "platform");
        tp->created_ms = created;
        tp->likes = s_hint(h, "likes", 0);
        tp->reposts = s_hint(h, "reposts", 0);
        tp->replies = s_hint(h, "replies", 0);
        tp->followers = s_hint(h, "followers", -1);
    }
}

static esc_rc
s_collect_tops(esc_kv_t *kv, const char *prefix, const struct ntf_period *p,
               struct ntf_digest_topic *dt, struct ntf_digest_have *have)
{
    /* the UTC days whose midday falls inside the period: each local day maps to one of them */
    int64_t first = (p->day_start[0] - S_DAY / 2 + S_DAY - 1) / S_DAY;
    int64_t last = (p->day_start[p->n_days] - S_DAY / 2 - 1) / S_DAY;
    static const char *const kinds[5] = { "authors", "authors", "hashtags", "terms", "posts" };
    const char **argv = NULL;
    char **keys = NULL;
    char nd[24];
    char nk[24];
    char ppfx[S_KEY_MAX];
    char wants[4][8];
    struct esc_kv_val r;
    size_t n_keys;
    size_t i;
    esc_rc rc;
    int64_t d;

    if (last < first) {
        last = first;
    }
    n_keys = (size_t)(last - first + 1) * 5;
    keys = esc_calloc(n_keys, sizeof(*keys));
    argv = esc_calloc(3 + n_keys + 6, sizeof(*argv));
    memset(&r, 0, sizeof(r));
    for (d = first, i = 0; d <= last; d++) {
        int k;

        for (k = 0; k < 5; k++, i++) {
            char key[S_KEY_MAX];

            snprintf(key, sizeof(key), "%s:top:{%s}:%s:%lld%s", prefix, dt->topic->key, kinds[k],
                     (long long)(d * S_DAY), k == 1 ? ":info" : "");
            keys[i] = esc_strdup(key);
        }
    }
    snprintf(nd, sizeof(nd), "%lld", (long long)(last - first + 1));
    snprintf(nk, sizeof(nk), "%zu", n_keys);
    snprintf(ppfx, sizeof(ppfx), "%s:post:{%s}:", prefix, dt->topic->key);
    snprintf(wants[0], sizeof(wants[0]), "%d", NTF_DIGEST_TOP_AUTHORS);
    snprintf(wants[1], sizeof(wants[1]), "%d", NTF_DIGEST_TOP_TAGS);
    snprintf(wants[2], sizeof(wants[2]), "%d", NTF_DIGEST_TOP_TERMS);
    snprintf(wants[3], sizeof(wants[3]), "%d", NTF_DIGEST_TOP_POSTS * 3);
    argv[0] = "EVAL";
    argv[1] = s_top_script;
    argv[2] = nk;
    for (i = 0; i < n_keys; i++) {
        argv[3 + i] = keys[i];
    }
    argv[3 + n_keys] = nd;
    argv[4 + n_keys] = ppfx;
    for (i = 0; i < 4; i++) {
        argv[5 + n_keys + i] = wants[i];
    }
    rc = esc_kv_cmdv(kv, &r, (int)(3 + n_keys + 6), argv, NULL);
    if (rc != ESC_OK) {
        goto out;
    }
    if (r.type == ESC_KV_ERROR || r.type != ESC_KV_ARRAY || r.n != 4) {
        esc_log_error("cannot read top lists topic=%s err=\"%s\"", dt->topic->key,
                      r.type == ESC_KV_ERROR ? r.str : "unexpected reply");
        rc = ESC_ERR;
        goto out;
    }
    s_top_list(&r.elem[0], 3, &dt->authors, &dt->n_authors);
    s_top_list(&r.elem[1], 2, &dt->hashtags, &dt->n_hashtags);
    s_top_list(&r.elem[2], 2, &dt->terms, &dt->n_terms);
    s_top_posts(&r.elem[3], p, dt);
    if (dt->n_authors + dt->n_hashtags + dt->n_terms + dt->n_top_posts > 0) {
        have->tops = true;
    }

out:
    esc_kv_val_fini(&r);
    for (i = 0; i < n_keys; i++) {
        esc_free(keys[i]);
    }
    esc_free(keys);
    esc_free(argv);
    return rc;
}

/* ---- alerts ------------------------------------------------------------------------------- */

static int
s_alert_cmp(const void *a, const void *b)
{
    const struct ntf_digest_alert *x = a;
    const struct ntf_digest_alert *y = b;

    return (x->window_start > y->window_start) - (x->window_start < y->window_start);
}

static double
s_jnum(const json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static char *
s_jstrdup(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s != NULL ? esc_strdup(s) : NULL;
}

static char *
s_jstrdup_at(const json_t *o, const char *key, size_t i)
{
    const char *s = json_string_value(json_array_get(json_object_get(o, key), i));

    return s != NULL && s[0] != '\0' ? esc_strdup(s) : NULL;
}

static void
s_alert_free(struct ntf_digest_alert *a)
{
    size_t i;

    esc_free(a->topic_id);
    esc_free(a->topic_name);
    for (i = 0; i < a->n_terms; i++) {
        esc_free(a->terms[i]);
    }
    esc_free(a->terms);
    esc_free(a->sample);
    esc_free(a->sample_author);
    esc_free(a->sample_url);
    memset(a, 0, sizeof(*a));
}

/* Parses one history entry; 1 = kept in out, 0 = outside the period or not a spike,
 * -1 = unreadable. */
static int
s_parse_alert(const char *text, size_t len, const struct ntf_period *p,
              struct ntf_digest_alert *out, char *id, size_t idsz)
{
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr);
    json_t *ws;
    json_t *terms;
    const char *name;
    const char *kind;
    size_t i;
    int kept = -1;

    if (o == NULL || !json_is_object(o)) {
        goto out;
    }
    ws = json_object_get(o, "window_start");
    if (!json_is_integer(ws) || !json_is_integer(json_object_get(o, "window_end"))) {
        goto out;
    }
    kept = 0;
    kind = json_string_value(json_object_get(o, "kind"));
    if (kind != NULL && strcmp(kind, "ended") == 0) {
        goto out; /* the end of a spike: the spike itself is listed */
    }
    if (json_integer_value(ws) < p->day_start[0] * 1000
        || json_integer_value(ws) >= p->day_start[p->n_days] * 1000) {
        goto out;
    }
    name = json_string_value(json_object_get(o, "topic_name"));
    if (name == NULL || name[0] == '\0') {
        name = json_string_value(json_object_get(o, "topic"));
    }
    out->topic_id = s_jstrdup(o, "topic");
    out->topic_name = ntf_mail_header_clean(name != NULL ? name : "?");
    out->window_start = json_integer_value(ws);
    out->window_end = json_integer_value(json_object_get(o, "window_end"));
    out->observed = json_is_integer(json_object_get(o, "observed"))
                        ? json_integer_value(json_object_get(o, "observed"))
                        : 0;
    out->expected = s_jnum(json_object_get(o, "expected"));
    out->score = s_jnum(json_object_get(o, "score"));
    terms = json_object_get(o, "terms");
    if (json_is_array(terms) && json_array_size(terms) > 0) {
        out->terms = esc_calloc(json_array_size(terms), sizeof(*out->terms));
        for (i = 0; i < json_array_size(terms) && out->n_terms < NTF_DIGEST_TOP_TERMS; i++) {
            if (json_is_string(json_array_get(terms, i))) {
                out->terms[out->n_terms++] = esc_strdup(json_string_value(json_array_get(terms,
                                                                                         i)));
            }
        }
    }
    out->sample = s_jstrdup_at(o, "samples", 0);
    out->sample_author = s_jstrdup_at(o, "sample_authors", 0);
    out->sample_url = s_jstrdup_at(o, "sample_urls", 0);
    esc_strlcpy(id, json_is_string(json_object_get(o, "id"))
                        ? json_string_value(json_object_get(o, "id"))
                        : "",
                idsz);
    kept = 1;

out:
    json_decref(o);
    return kept;
}

static esc_rc
s_collect_alerts(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team,
                 const struct ntf_period *p, struct ntf_digest *d)
{
    char key[S_KEY_MAX];
    char (*ids)[160] = NULL;
    struct esc_kv_val r;
    esc_rc rc;
    size_t i;
    size_t k;

    snprintf(key, sizeof(key), "%s:alerts:{%s}", prefix, team->id);
    rc = esc_kv_cmd(kv, &r, "LRANGE %s 0 %d", key, S_ALERTS_SCAN - 1);
    if (rc != ESC_OK) {
        return rc;
    }
    if (r.type == ESC_KV_ERROR || r.type != ESC_KV_ARRAY) {
        esc_log_error("cannot read alert history key=%s err=\"%s\"", key,
                      r.type == ESC_KV_ERROR ? r.str : "not a list");
        esc_kv_val_fini(&r);
        return ESC_ERR;
    }
    d->alerts = esc_calloc(r.n + 1, sizeof(*d->alerts));
    ids = esc_calloc(r.n + 1, sizeof(*ids));
    for (i = 0; i < r.n; i++) {
        struct ntf_digest_alert a;
        int kept;

        memset(&a, 0, sizeof(a));
        if (r.elem[i].type != ESC_KV_STR) {
            d->n_skipped++;
            continue;
        }
        kept = s_parse_alert(r.elem[i].str, r.elem[i].len, p, &a, ids[d->n_alerts],
                             sizeof(ids[0]));
        if (kept < 0) {
            d->n_skipped++;
            s_alert_free(&a);
            continue;
        }
        if (kept == 0) {
            s_alert_free(&a);
            continue;
        }
        /* the same alert pushed twice (an aggregator retry) is listed once */
        for (k = 0; k < d->n_alerts; k++) {
            if (ids[k][0] != '\0' && strcmp(ids[k], ids[d->n_alerts]) == 0) {
                break;
            }
        }
        if (k < d->n_alerts) {
            s_alert_free(&a);
            continue;
        }
        d->alerts[d->n_alerts++] = a;
    }
    if (d->n_skipped > 0) {
        esc_log_warn("skipped unreadable alert history entries key=%s n=%zu", key, d->n_skipped);
    }
    qsort(d->alerts, d->n_alerts, sizeof(*d->alerts), s_alert_cmp);
    esc_free(ids);
    esc_kv_val_fini(&r);
    return ESC_OK;
}

/* Marks the chart slot of each spike in its topic. */
static void
s_mark_spikes(struct ntf_digest *d)
{
    int hourly = d->period.kind == NTF_PERIOD_DAY;
    size_t i;
    size_t t;

    for (i = 0; i < d->n_alerts; i++) {
        const struct ntf_digest_alert *a = &d->alerts[i];
        int slot = s_slot(d->period.day_start, hourly ? 1 : d->period.n_days, hourly,
                          a->window_start / 1000);

        for (t = 0; t < d->n_topics && a->topic_id != NULL; t++) {
            if (strcmp(d->topics[t].topic->id, a->topic_id) == 0 && slot >= 0
                && slot < d->topics[t].n_slots) {
                d->topics[t].slot_spike[slot] = 1;
            }
        }
    }
}

esc_rc
ntf_digest_collect(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team,
                   const struct ntf_period *p, struct ntf_digest *out)
{
    esc_rc rc;
    size_t i;

    memset(out, 0, sizeof(*out));
    out->team = team;
    out->period = *p;
    out->topics = esc_calloc(team->n_topics + 1, sizeof(*out->topics));
    out->n_topics = team->n_topics;
    for (i = 0; i < team->n_topics; i++) {
        out->topics[i].topic = &team->topics[i];
        rc = s_collect_topic(kv, prefix, p, &out->topics[i], &out->have);
        if (rc == ESC_OK) {
            rc = s_collect_tops(kv, prefix, p, &out->topics[i], &out->have);
        }
        if (rc != ESC_OK) {
            return rc;
        }
    }
    rc = s_collect_alerts(kv, prefix, team, p, out);
    if (rc == ESC_OK) {
        s_mark_spikes(out);
    }
    return rc;
}

static void
s_post_free(struct ntf_digest_post *p)
{
    esc_free(p->text);
    esc_free(p->author);
    esc_free(p->url);
    esc_free(p->platform);
}

void
ntf_digest_fini(struct ntf_digest *d)
{
    size_t i;
    size_t k;

    for (i = 0; i < d->n_alerts; i++) {
        s_alert_free(&d->alerts[i]);
    }
    for (i = 0; d->topics != NULL && i < d->n_topics; i++) {
        struct ntf_digest_topic *t = &d->topics[i];

        s_count_free(&t->langs, &t->n_langs);
        s_count_free(&t->platforms, &t->n_platforms);
        s_count_free(&t->authors, &t->n_authors);
        s_count_free(&t->hashtags, &t->n_hashtags);
        s_count_free(&t->terms, &t->n_terms);
        for (k = 0; k < t->n_top_posts; k++) {
            s_post_free(&t->top_posts[k]);
        }
        ESC_FREE(t->top_posts);
    }
    ESC_FREE(d->alerts);
    ESC_FREE(d->topics);
    d->n_alerts = 0;
    d->n_topics = 0;
}

bool
ntf_digest_empty(const struct ntf_digest *d)
{
    size_t i;

    for (i = 0; i < d->n_topics; i++) {
        if (d->topics[i].posts > 0) {
            return false;
        }
    }
    return d->n_alerts == 0;
}

/* ---- sending ------------------------------------------------------------------------------ */

const char *
ntf_digest_outcome_str(enum ntf_digest_outcome o)
{
    static const char *const names[] = { "sent", "skipped", "already", "busy", "retry",
                                         "failed" };

    return (size_t)o < ESC_ARRAY_LEN(names) ? names[o] : "?";
}

static void
s_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* Writes the final state of a claim, retrying a little while Redis is unreachable. Returns 0,
 * or -1 when it could not be written (logged; the caller may keep trying). */
static int
s_record(esc_kv_t *kv, const struct ntf_claim *c, const char *kind, int64_t now_ms)
{
    int was_ours = 1;
    esc_rc rc = ESC_ERR;
    int i;

    for (i = 0; i < S_RECORD_TRIES; i++) {
        rc = ntf_claim_finish(kv, c, kind, now_ms, &was_ours);
        if (rc != ESC_RETRY) {
            break;
        }
        s_sleep_ms(100 << i);
    }
    if (rc != ESC_OK) {
        esc_log_error("digest state not recorded key=%s state=%s reason=%s", c->key, kind,
                      rc == ESC_RETRY ? "redis unreachable" : "redis error");
        return -1;
    }
    if (!was_ours) {
        esc_log_warn("digest lease had expired before it was recorded key=%s state=%s "
                     "(another notifier may have sent it too)",
                     c->key, kind);
    }
    return 0;
}

/* Records a failed attempt; returns the outcome to report. */
static enum ntf_digest_outcome
s_fail(esc_kv_t *kv, const struct ntf_claim *c, int64_t now_ms, int permanent)
{
    int given_up = 0;

    if (ntf_claim_fail(kv, c, now_ms, permanent, &given_up) != ESC_OK) {
        /* the lease runs out by itself and the digest can be claimed again then */
        return NTF_DIGEST_RETRY;
    }
    if (given_up) {
        esc_log_error("digest given up key=%s attempts=%d", c->key, c->attempt);
        return NTF_DIGEST_FAILED;
    }
    return NTF_DIGEST_RETRY;
}

/* Renders d into a mail: fills m (whose strings point into the other outputs). */
static void
s_render(const struct ntf_digest *d, const struct esc_cfg *cfg, const struct ntf_cfg *ncfg,
         int64_t now_ms, struct ntf_mail *m, char **subject, char **body, char **html,
         struct ntf_digest_chart **charts, struct ntf_mail_image **images, char *hint,
         size_t hintsz)
{
    const struct esc_cfg_team *team = d->team;
    size_t n_img = 0;
    size_t i;

    snprintf(hint, hintsz, "%s-%s", team->id, d->period.label);
    *charts = esc_calloc(d->n_topics + 1, sizeof(**charts));
    *images = esc_calloc(d->n_topics + 1, sizeof(**images));
    ntf_digest_charts(d, hint, *charts);
    for (i = 0; i < d->n_topics; i++) {
        if ((*charts)[i].png != NULL) {
            (*images)[n_img].cid = (*charts)[i].cid;
            (*images)[n_img].filename = (*charts)[i].filename;
            (*images)[n_img].data = (*charts)[i].png;
            (*images)[n_img].len = (*charts)[i].len;
            n_img++;
        }
    }
    *subject = ntf_digest_subject(d);
    *body = ntf_digest_body(d, cfg->deployment);
    *html = ntf_digest_html(d, cfg->deployment, *charts);
    memset(m, 0, sizeof(*m));
    m->from = ncfg->from;
    m->to = (const char *const *)team->recipients;
    m->n_to = team->n_recipients;
    m->subject = *subject;
    m->body = *body;
    m->html = *html;
    m->images = *images;
    m->n_images = n_img;
    m->date = now_ms / 1000;
    m->id_hint = hint;
}

/* Writes the message into a file; 0 or -1 (logged). */
static int
s_write_mail(const struct ntf_mail *m, const char *path)
{
    size_t len = 0;
    char *msg = ntf_mail_build(m, &len);
    int rc = -1;

    if (msg != NULL) {
        rc = ntf_write_file(path, msg, len);
    }
    esc_free(msg);
    return rc;
}

/* Delivers m to SMTP or the outbox while holding claim c; returns the outcome. */
static enum ntf_digest_outcome
s_deliver(esc_kv_t *kv, const struct ntf_cfg *ncfg, const struct ntf_digest_req *req,
          const struct ntf_mail *m, const struct ntf_claim *c, char *dest, size_t destsz)
{
    const struct esc_cfg_team *team = req->team;
    char path[1024];
    int held = 0;
    esc_rc rc;

    if (ncfg->smtp_url[0] == '\0') {
        if (ntf_mkdirs(ncfg->outbox) != 0) {
            return s_fail(kv, c, req->now_ms, 0);
        }
        if ((size_t)snprintf(path, sizeof(path), "%s/%s-%s.eml", ncfg->outbox, team->id,
                             req->period->label)
            >= sizeof(path)) {
            esc_log_error("outbox path too long outbox=%s", ncfg->outbox);
            return s_fail(kv, c, req->now_ms, 1);
        }
        if (s_write_mail(m, path) != 0) {
            return s_fail(kv, c, req->now_ms, 0);
        }
        esc_strlcpy(dest, path, destsz);
        if (s_record(kv, c, "sent", req->now_ms) != 0 && req->unrecorded != NULL) {
            *req->unrecorded = *c;
        }
        return NTF_DIGEST_SENT;
    }
    /* the lease must cover the whole transfer: extend it now, and never send without it */
    rc = ntf_claim_renew(kv, c, ncfg->smtp_timeout_ms + S_LEASE_EXTRA_MS, &held);
    if (rc != ESC_OK) {
        return NTF_DIGEST_RETRY;
    }
    if (!held) {
        esc_log_warn("digest lease lost before sending key=%s", c->key);
        return NTF_DIGEST_BUSY;
    }
    rc = ntf_mail_send(ncfg, m);
    if (rc != ESC_OK) {
        return s_fail(kv, c, req->now_ms, 0);
    }
    /* the one window for a second send: a crash between here and the state written below */
    snprintf(dest, destsz, "%s rcpt=%zu", ncfg->smtp_url, team->n_recipients);
    if (s_record(kv, c, "sent", req->now_ms) != 0 && req->unrecorded != NULL) {
        *req->unrecorded = *c;
    }
    return NTF_DIGEST_SENT;
}

enum ntf_digest_outcome
ntf_digest_run(esc_kv_t *kv, const struct esc_cfg *cfg, const struct ntf_cfg *ncfg,
               const struct ntf_digest_req *req, char *dest, size_t destsz)
{
    const struct esc_cfg_team *team = req->team;
    const struct ntf_period *p = req->period;
    struct ntf_digest_chart *charts = NULL;
    struct ntf_mail_image *images = NULL;
    struct ntf_claim claim;
    struct ntf_digest d;
    struct ntf_mail m;
    enum ntf_claim_rc crc = NTF_CLAIM_OK;
    enum ntf_digest_outcome out = NTF_DIGEST_RETRY;
    char key[256];
    char hint[160];
    char *subject = NULL;
    char *body = NULL;
    char *html = NULL;
    esc_rc rc;
    size_t i;

    dest[0] = '\0';
    memset(&d, 0, sizeof(d));
    if (req->to_file == NULL && ncfg->smtp_url[0] != '\0' && team->n_recipients == 0) {
        esc_log_error("team has no recipients team=%s", team->id);
        return NTF_DIGEST_FAILED;
    }
    if (req->to_file == NULL) {
        ntf_claim_key(cfg->redis.prefix, team->id, p->label, key, sizeof(key));
        rc = ntf_claim_try(kv, key, ncfg->smtp_timeout_ms + S_LEASE_EXTRA_MS, req->now_ms,
                           req->force, &claim, &crc);
        if (rc != ESC_OK) {
            esc_log_error("cannot claim digest team=%s period=%s reason=%s", team->id, p->label,
                          rc == ESC_RETRY ? "redis unreachable" : "redis error");
            return NTF_DIGEST_RETRY;
        }
        if (crc != NTF_CLAIM_OK) {
            esc_strlcpy(dest, claim.state, destsz);
            return crc == NTF_CLAIM_DONE ? NTF_DIGEST_ALREADY : NTF_DIGEST_BUSY;
        }
    }
    rc = ntf_digest_collect(kv, cfg->redis.prefix, team, p, &d);
    if (rc != ESC_OK) {
        esc_log_error("cannot build digest team=%s period=%s reason=%s", team->id, p->label,
                      rc == ESC_RETRY ? "redis unreachable" : "redis error");
        out = req->to_file == NULL ? s_fail(kv, &claim, req->now_ms, 0) : NTF_DIGEST_FAILED;
        goto out;
    }
    if (req->to_file == NULL && !req->send_empty && ntf_digest_empty(&d)) {
        s_record(kv, &claim, "skipped", req->now_ms);
        esc_strlcpy(dest, "nothing happened", destsz);
        out = NTF_DIGEST_SKIPPED;
        goto out;
    }
    s_render(&d, cfg, ncfg, req->now_ms, &m, &subject, &body, &html, &charts, &images, hint,
             sizeof(hint));
    if (req->to_file != NULL) {
        out = s_write_mail(&m, req->to_file) == 0 ? NTF_DIGEST_SENT : NTF_DIGEST_FAILED;
        esc_strlcpy(dest, req->to_file, destsz);
    }
    else {
        out = s_deliver(kv, ncfg, req, &m, &claim, dest, destsz);
    }

out:
    for (i = 0; charts != NULL && i < d.n_topics; i++) {
        esc_free(charts[i].png);
    }
    esc_free(charts);
    esc_free(images);
    esc_free(html);
    esc_free(body);
    esc_free(subject);
    ntf_digest_fini(&d);
    return out;
}

/* Opens a Redis connection from the config (password wiped after use); NULL when the password
 * cannot be loaded (logged). */
static esc_kv_t *
s_kv_open(const struct esc_cfg *cfg)
{
    struct esc_kv_opts opts;
    char *password = NULL;
    esc_kv_t *kv;

    esc_cfg_kv_opts(cfg, &opts, &password);
    if ((cfg->redis.password_env[0] != '\0' || cfg->redis.password_file[0] != '\0')
        && password == NULL) {
        return NULL; /* esc_secret_load said why */
    }
    kv = esc_kv_new(&opts);
    if (password != NULL) {
        sodium_memzero(password, strlen(password));
        esc_free(password);
    }
    return kv;
}

int
ntf_digest_main(const struct esc_cfg *cfg, const struct ntf_cfg *ncfg, const char *team_id,
                const char *period, const char *to_file, int force)
{
    const struct esc_cfg_team *team = esc_cfg_team_find(cfg, team_id);
    struct ntf_digest_req req;
    struct ntf_sched_rule rule;
    struct esc_error err;
    struct ntf_period p;
    enum ntf_period_kind kind;
    enum ntf_digest_outcome o;
    int64_t first_day;
    char dest[1100];
    esc_kv_t *kv;

    if (team == NULL) {
        esc_log_error("unknown team team=%s", team_id);
        return NTF_EXIT_USAGE;
    }
    if (period != NULL) {
        if (ntf_period_parse(period, &kind, &first_day) != 0) {
            esc_log_error("bad period period=%s (expected a day 2026-11-19, an ISO week 2026-W47 "
                          "or a month 2026-11)",
                          period);
            return NTF_EXIT_USAGE;
        }
    }
    else {
        memset(&err, 0, sizeof(err));
        if (ntf_sched_rule_load(cfg, team->id, &rule, &err) != ESC_OK) {
            esc_log_error("bad digest schedule err=\"%s\"", err.text);
            return NTF_EXIT_USAGE;
        }
        kind = rule.kind;
        first_day = ntf_period_last_complete(team->timezone, kind, esc_now_ms() / 1000);
    }
    if (to_file == NULL && ncfg->smtp_url[0] != '\0' && team->n_recipients == 0) {
        esc_log_error("team has no recipients team=%s", team->id);
        return NTF_EXIT_USAGE;
    }
    ESC_ASSERT(ntf_period_resolve(team->timezone, kind, first_day, &p) == 0);
    kv = s_kv_open(cfg);
    if (kv == NULL) {
        return NTF_EXIT_FAIL;
    }
    memset(&req, 0, sizeof(req));
    req.team = team;
    req.period = &p;
    req.to_file = to_file;
    req.force = force != 0;
    req.send_empty = true; /* asked for explicitly: sent even when nothing happened */
    req.now_ms = esc_now_ms();
    o = ntf_digest_run(kv, cfg, ncfg, &req, dest, sizeof(dest));
    esc_kv_destroy(&kv);
    switch (o) {
    case NTF_DIGEST_SENT:
        printf("digest team=%s period=%s -> %s\n", team->id, p.label, dest);
        break;
    case NTF_DIGEST_ALREADY:
        printf("digest team=%s period=%s already done (%.*s); --force sends it again\n",
               team->id, p.label, (int)strcspn(dest, ":"), dest);
        break;
    case NTF_DIGEST_BUSY:
        esc_log_error("digest is being sent by another notifier or waits for a retry team=%s "
                      "period=%s state=%.*s",
                      team->id, p.label, (int)strcspn(dest, ":"), dest);
        return NTF_EXIT_FAIL;
    default:
        return NTF_EXIT_FAIL;
    }
    fflush(stdout);
    return NTF_EXIT_OK;
}

/* ---- the daemon's scheduler --------------------------------------------------------------- */

struct s_team_sched {
    const struct esc_cfg_team *team;
    struct ntf_sched_rule rule;
    int64_t done_first_day; /* the last period found sent/skipped/given up */
    bool have_done;
    int64_t next_try_s;     /* not before (busy, waiting, failed) */
};

struct ntf_digester {
    const struct esc_cfg *cfg;
    const struct ntf_cfg *ncfg;
    esc_kv_t *kv;
    struct s_team_sched *teams; /* owned */
    size_t n_teams;
    size_t next;                /* round-robin start */
    struct ntf_claim *unrecorded; /* sent, "sent" not yet written; owned */
    size_t n_unrecorded;
};

ntf_digester_t *
ntf_digester_new(const struct esc_cfg *cfg, const struct ntf_cfg *ncfg)
{
    ntf_digester_t *self = esc_calloc(1, sizeof(*self));
    struct esc_error err;
    size_t i;

    self->cfg = cfg;
    self->ncfg = ncfg;
    self->teams = esc_calloc(cfg->n_teams + 1, sizeof(*self->teams));
    self->n_teams = cfg->n_teams;
    for (i = 0; i < cfg->n_teams; i++) {
        memset(&err, 0, sizeof(err));
        self->teams[i].team = &cfg->teams[i];
        if (ntf_sched_rule_load(cfg, cfg->teams[i].id, &self->teams[i].rule, &err) != ESC_OK) {
            esc_log_error("bad digest schedule err=\"%s\"", err.text);
            ntf_digester_destroy(&self);
            return NULL;
        }
        if (self->teams[i].rule.enabled && ncfg->smtp_url[0] != '\0'
            && cfg->teams[i].n_recipients == 0) {
            esc_log_warn("team has no recipients: no scheduled digest team=%s", cfg->teams[i].id);
            self->teams[i].rule.enabled = false;
        }
    }
    self->kv = s_kv_open(cfg);
    if (self->kv == NULL) {
        ntf_digester_destroy(&self);
        return NULL;
    }
    return self;
}

void
ntf_digester_destroy(ntf_digester_t **self_p)
{
    ntf_digester_t *self = self_p != NULL ? *self_p : NULL;

    if (self == NULL) {
        return;
    }
    if (self->n_unrecorded > 0) {
        esc_log_error("digests sent but not recorded n=%zu (they may be sent again)",
                      self->n_unrecorded);
    }
    esc_kv_destroy(&self->kv);
    esc_free(self->unrecorded);
    esc_free(self->teams);
    esc_free(self);
    *self_p = NULL;
}

size_t
ntf_digester_unrecorded(const ntf_digester_t *self)
{
    return self->n_unrecorded;
}

/* Retries writing the "sent" states that could not be written. */
static void
s_retry_unrecorded(ntf_digester_t *self, int64_t now_ms)
{
    size_t i = 0;
    int was_ours;

    while (i < self->n_unrecorded) {
        if (ntf_claim_finish(self->kv, &self->unrecorded[i], "sent", now_ms, &was_ours)
            != ESC_OK) {
            i++;
            continue;
        }
        esc_log_info("digest state recorded late key=%s", self->unrecorded[i].key);
        self->unrecorded[i] = self->unrecorded[--self->n_unrecorded];
    }
}

/* Runs the due digest of one team; returns 1 when it sent one. */
static int
s_tick_team(ntf_digester_t *self, struct s_team_sched *ts, int64_t now_s)
{
    struct ntf_digest_req req;
    struct ntf_claim unrec;
    struct ntf_period p;
    enum ntf_digest_outcome o;
    int64_t first;
    char dest[1100];
    char labels[48];

    first = ntf_sched_due(&ts->rule, ts->team->timezone, now_s);
    if ((ts->have_done && ts->done_first_day == first) || now_s < ts->next_try_s) {
        return 0;
    }
    ESC_ASSERT(ntf_period_resolve(ts->team->timezone, ts->rule.kind, first, &p) == 0);
    memset(&req, 0, sizeof(req));
    req.team = ts->team;
    req.period = &p;
    req.send_empty = ts->rule.send_empty;
    req.now_ms = now_s * 1000;
    memset(&unrec, 0, sizeof(unrec));
    req.unrecorded = &unrec;
    o = ntf_digest_run(self->kv, self->cfg, self->ncfg, &req, dest, sizeof(dest));
    if (unrec.key[0] != '\0') {
        /* keep trying to write "sent" from the next ticks, before the lease runs out */
        self->unrecorded = esc_realloc(self->unrecorded,
                                       (self->n_unrecorded + 1) * sizeof(*self->unrecorded));
        self->unrecorded[self->n_unrecorded++] = unrec;
    }
    if (o != NTF_DIGEST_ALREADY && o != NTF_DIGEST_BUSY) {
        snprintf(labels, sizeof(labels), "outcome=\"%s\"", ntf_digest_outcome_str(o));
        esc_metric_add(esc_metrics_counter("escucha_notifier_digests_total",
                                           "Scheduled digest attempts, per outcome (sent, "
                                           "skipped, retry, failed).", labels),
                       1);
    }
    switch (o) {
    case NTF_DIGEST_SENT:
        esc_log_info("digest sent team=%s period=%s dest=%s", ts->team->id, p.label, dest);
        break;
    case NTF_DIGEST_SKIPPED:
        esc_log_info("digest skipped team=%s period=%s reason=empty", ts->team->id, p.label);
        break;
    case NTF_DIGEST_ALREADY:
        esc_log_debug("digest already done team=%s period=%s", ts->team->id, p.label);
        break;
    default:
        esc_log_debug("digest not sent yet team=%s period=%s outcome=%s", ts->team->id, p.label,
                      ntf_digest_outcome_str(o));
        ts->next_try_s = now_s + S_BUSY_RECHECK_S;
        return 0;
    }
    ts->have_done = true;
    ts->done_first_day = first;
    return o == NTF_DIGEST_SENT;
}

void
ntf_digest_tick_at(ntf_digester_t *self, int64_t now_s)
{
    int64_t t0 = esc_mono_ms();
    size_t k;

    if (self->n_unrecorded > 0) {
        s_retry_unrecorded(self, now_s * 1000);
    }
    for (k = 0; k < self->n_teams; k++) {
        struct s_team_sched *ts = &self->teams[(self->next + k) % self->n_teams];

        if (!ts->rule.enabled) {
            continue;
        }
        if (s_tick_team(self, ts, now_s) && esc_mono_ms() - t0 >= S_TICK_BUDGET_MS) {
            self->next = (self->next + k + 1) % self->n_teams;
            return;
        }
    }
}

void
ntf_digest_tick(ntf_digester_t *self)
{
    ntf_digest_tick_at(self, esc_now_ms() / 1000);
}
