#define ESC_LOG_MODULE "counters"
/* Pre-aggregation of per-topic counters. Every post adds to four hashes per topic (minute, hour
 * and day bucket of its event time, and the all-time totals); instead of four times six Redis
 * commands per post, the deltas are summed in an open-addressing hash table keyed by the Redis
 * key itself, and a flush sends each touched key once (HINCRBY per field + EXPIRE) in one
 * pipelined round trip. A key leaves the table only after the round trip that wrote it
 * succeeded, so a failed flush loses nothing and a successful one is never sent twice; keys
 * added while Redis is down merge into the pending deltas. The table is bounded by the caller
 * (agg_counters_full -> stop reading input), never by dropping. Single-threaded. */
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "counters.h"

#define S_NFIELDS 5          /* posts reach likes reposts replies; engagement is derived */
#define S_LISTS_MAX 1000     /* list pushes waiting for Redis */
#define S_KEY_MAX 256
#define S_CAP_MIN 1024       /* initial table size, slots */
#define S_CAP_KEEP 65536     /* a larger table is shrunk back to S_CAP_MIN once empty */

static const char *const s_fields[S_NFIELDS] = { "posts", "reach", "likes", "reposts", "replies" };
static const char s_res_tag[3] = { 'm', 'h', 'd' };
static const int64_t s_res_s[3] = { 60, 3600, 86400 };

struct s_cell {
    char *key;            /* Redis key; NULL marks an empty slot; owned */
    enum agg_res res;     /* resolution, for the TTL */
    int64_t v[S_NFIELDS]; /* deltas not yet in Redis */
};

struct s_list {
    char *key;            /* owned */
    char *value;          /* owned */
    long max_len;
};

struct agg_counters {
    esc_kv_t *kv;                 /* borrowed */
    char prefix[64];
    int64_t retention_s[3];
    size_t max_keys;

    struct s_cell *cells;         /* open addressing, linear probing; cap is a power of two */
    size_t cap;
    size_t n;                     /* occupied cells */

    struct s_list lists[S_LISTS_MAX]; /* FIFO ring of pending list pushes */
    size_t list_head;
    size_t n_lists;

    int64_t processed;            /* posts consumed since the last successful flush */
    struct agg_counters_stats stats;
};

static uint64_t
s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

agg_counters_t *
agg_counters_new(esc_kv_t *kv, const struct agg_counters_opts *opts)
{
    agg_counters_t *self = esc_calloc(1, sizeof(*self));

    self->kv = kv;
    esc_strlcpy(self->prefix, opts->prefix, sizeof(self->prefix));
    memcpy(self->retention_s, opts->retention_s, sizeof(self->retention_s));
    self->max_keys = opts->max_pending_keys > 0 ? opts->max_pending_keys : 1;
    self->cap = S_CAP_MIN;
    self->cells = esc_calloc(self->cap, sizeof(*self->cells));
    return self;
}

static void
s_cells_clear(agg_counters_t *self)
{
    size_t i;

    for (i = 0; i < self->cap; i++) {
        ESC_FREE(self->cells[i].key);
    }
    self->n = 0;
}

static void
s_list_pop(agg_counters_t *self)
{
    struct s_list *l = &self->lists[self->list_head];

    ESC_FREE(l->key);
    ESC_FREE(l->value);
    self->list_head = (self->list_head + 1) % S_LISTS_MAX;
    self->n_lists--;
}

void
agg_counters_destroy(agg_counters_t **self_p)
{
    agg_counters_t *self;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    s_cells_clear(self);
    esc_free(self->cells);
    while (self->n_lists > 0) {
        s_list_pop(self);
    }
    esc_free(self);
    *self_p = NULL;
}

char *
agg_counters_key(const char *prefix, const char *topic, enum agg_res res, int64_t ms, char *out,
                 size_t outsz)
{
    int64_t s;
    int64_t start;

    if (res == AGG_RES_TOTAL) {
        snprintf(out, outsz, "%s:t:{%s}", prefix, topic);
        return out;
    }
    s = ms / 1000;
    if (ms % 1000 != 0 && ms < 0) {
        s--;
    }
    start = s / s_res_s[res] * s_res_s[res];
    if (s % s_res_s[res] != 0 && s < 0) {
        start -= s_res_s[res];
    }
    snprintf(out, outsz, "%s:c:{%s}:%c:%lld", prefix, topic, s_res_tag[res], (long long)start);
    return out;
}

/* Returns the slot for key in cells (cap a power of two): its cell, or the empty slot where it
 * would go. */
static struct s_cell *
s_find(struct s_cell *cells, size_t cap, const char *key)
{
    size_t i = (size_t)s_hash(key) & (cap - 1);

    while (cells[i].key != NULL && strcmp(cells[i].key, key) != 0) {
        i = (i + 1) & (cap - 1);
    }
    return &cells[i];
}

/* Moves every occupied cell into a fresh table of new_cap slots. */
static void
s_rehash(agg_counters_t *self, size_t new_cap)
{
    struct s_cell *cells = esc_calloc(new_cap, sizeof(*cells));
    size_t i;

    for (i = 0; i < self->cap; i++) {
        if (self->cells[i].key != NULL) {
            *s_find(cells, new_cap, self->cells[i].key) = self->cells[i];
        }
    }
    esc_free(self->cells);
    self->cells = cells;
    self->cap = new_cap;
}

static void
s_add_cell(agg_counters_t *self, const char *key, enum agg_res res, const int64_t *v)
{
    struct s_cell *c;
    size_t i;

    if ((self->n + 1) * 2 > self->cap) {
        s_rehash(self, self->cap * 2); /* load factor stays at most 1/2 */
    }
    c = s_find(self->cells, self->cap, key);
    if (c->key == NULL) {
        c->key = esc_strdup(key);
        c->res = res;
        memset(c->v, 0, sizeof(c->v));
        self->n++;
    }
    for (i = 0; i < S_NFIELDS; i++) {
        c->v[i] += v[i];
    }
}

void
agg_counters_add(agg_counters_t *self, const struct esc_post *p, const char *const *topics,
                 size_t n)
{
    char key[S_KEY_MAX];
    int64_t v[S_NFIELDS];
    size_t i;
    int r;

    v[0] = 1;
    v[1] = p->followers > 0 ? p->followers : 0;
    v[2] = p->likes > 0 ? p->likes : 0;
    v[3] = p->reposts > 0 ? p->reposts : 0;
    v[4] = p->replies > 0 ? p->replies : 0;
    for (i = 0; i < n; i++) {
        for (r = AGG_RES_MINUTE; r <= AGG_RES_TOTAL; r++) {
            agg_counters_key(self->prefix, topics[i], (enum agg_res)r, p->created_at, key,
                             sizeof(key));
            s_add_cell(self, key, (enum agg_res)r, v);
        }
    }
    self->processed++;
}

void
agg_counters_push_list(agg_counters_t *self, const char *key, const char *value, long max_len)
{
    struct s_list *l;

    if (self->n_lists == S_LISTS_MAX) {
        esc_log_error("pending list pushes at limit, dropping the oldest key=%s max=%d",
                      self->lists[self->list_head].key, S_LISTS_MAX);
        s_list_pop(self);
        self->stats.lost++;
    }
    l = &self->lists[(self->list_head + self->n_lists) % S_LISTS_MAX];
    l->key = esc_strdup(key);
    l->value = esc_strdup(value);
    l->max_len = max_len > 0 ? max_len : 1;
    self->n_lists++;
}

static void
s_append_cell(agg_counters_t *self, const struct s_cell *c)
{
    size_t f;

    for (f = 0; f < S_NFIELDS; f++) {
        esc_kv_append(self->kv, "HINCRBY %s %s %lld", c->key, s_fields[f], (long long)c->v[f]);
    }
    esc_kv_append(self->kv, "HINCRBY %s engagement %lld", c->key,
                  (long long)(c->v[2] + c->v[3] + c->v[4]));
    if (c->res != AGG_RES_TOTAL) {
        esc_kv_append(self->kv, "EXPIRE %s %lld", c->key, (long long)self->retention_s[c->res]);
    }
}

/* Sends what was appended; on success frees the cells listed in idx. */
static esc_rc
s_exec(agg_counters_t *self, const size_t *idx, size_t n_idx)
{
    size_t n_err = 0;
    size_t i;
    esc_rc rc = esc_kv_exec(self->kv, &n_err);

    if (rc != ESC_OK) {
        return ESC_RETRY; /* ESC_ERR (a command could not be formatted) is kept the same way */
    }
    if (n_err > 0) {
        /* the other commands were applied: sending them again would count twice */
        esc_log_error("redis rejected commands of a flush errors=%zu", n_err);
        self->stats.lost += n_err;
    }
    for (i = 0; i < n_idx; i++) {
        ESC_FREE(self->cells[idx[i]].key);
        self->n--;
    }
    return ESC_OK;
}

esc_rc
agg_counters_flush(agg_counters_t *self)
{
    size_t *idx;
    size_t n_idx = 0;
    size_t i;
    size_t k;
    int64_t processed = self->processed;
    esc_rc rc = ESC_OK;

    if (!agg_counters_pending(self)) {
        return ESC_OK;
    }
    idx = esc_malloc(AGG_FLUSH_CHUNK_KEYS * sizeof(*idx));
    for (i = 0; i <= self->cap && rc == ESC_OK; i++) {
        if (i < self->cap && self->cells[i].key != NULL) {
            s_append_cell(self, &self->cells[i]);
            idx[n_idx++] = i;
        }
        /* a full chunk goes now, unless it also holds the last key (then it ends the flush) */
        if (n_idx == AGG_FLUSH_CHUNK_KEYS && self->n > n_idx) {
            rc = s_exec(self, idx, n_idx);
            n_idx = 0;
        }
    }
    if (rc == ESC_OK) {
        /* the last round trip: remaining keys, the lists, then the processed count, so that
         * whoever waits on processed sees the counts as well */
        for (k = 0; k < self->n_lists; k++) {
            const struct s_list *l = &self->lists[(self->list_head + k) % S_LISTS_MAX];

            esc_kv_append(self->kv, "LPUSH %s %s", l->key, l->value);
            esc_kv_append(self->kv, "LTRIM %s 0 %ld", l->key, l->max_len - 1);
        }
        if (processed > 0) {
            esc_kv_append(self->kv, "INCRBY %s:agg:processed %lld", self->prefix,
                          (long long)processed);
        }
        rc = s_exec(self, idx, n_idx);
        if (rc == ESC_OK) {
            while (self->n_lists > 0) {
                s_list_pop(self);
            }
            self->processed = 0;
            self->stats.flushed_posts += (uint64_t)processed;
            self->stats.flushes++;
        }
    }
    esc_free(idx);
    if (rc != ESC_OK) {
        self->stats.failed_flushes++;
        if (self->n > 0) {
            s_rehash(self, self->cap); /* written cells left holes in the probe chains */
        }
        return ESC_RETRY;
    }
    ESC_ASSERT(self->n == 0);
    if (self->cap > S_CAP_KEEP) {
        /* a backlog after an outage grew the table: give the memory back */
        esc_free(self->cells);
        self->cap = S_CAP_MIN;
        self->cells = esc_calloc(self->cap, sizeof(*self->cells));
    }
    return ESC_OK;
}

size_t
agg_counters_pending_keys(const agg_counters_t *self)
{
    return self->n;
}

int
agg_counters_pending(const agg_counters_t *self)
{
    return self->n > 0 || self->n_lists > 0 || self->processed > 0;
}

int
agg_counters_full(const agg_counters_t *self)
{
    return self->n >= self->max_keys;
}

void
agg_counters_get_stats(const agg_counters_t *self, struct agg_counters_stats *out)
{
    *out = self->stats;
}
