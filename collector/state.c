#define ESC_LOG_MODULE "state"
/* Cursors, dedupe and counters of the connectors in Redis, with an in-memory front. The memory
 * part is two generations of an open-addressing set of 64-bit hashes of "platform\0id": new
 * ids go into the young generation; when it holds half the budget the old one is dropped and
 * the young one becomes old, so memory stays bounded and recent ids are always remembered
 * (a cheap LRU). Redis is the authority across restarts and collectors: SET NX EX answers
 * "first time?" atomically. While Redis is down the memory answers alone and a warning is
 * logged at most once a minute. Loop thread only. */
#include <string.h>

#include "state.h"
#include "text.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#define S_WARN_MS 60000

struct s_gen {
    uint64_t *slots; /* 0 = empty, 1 = removed, else a hash */
    size_t cap;      /* power of two */
    size_t n;        /* slots used (removed ones included) */
};

struct col_state {
    esc_kv_t *kv;      /* NULL: memory only */
    char prefix[32];
    size_t gen_max;    /* entries per generation */
    struct s_gen young;
    struct s_gen old;
    int redis_ok;
    struct esc_log_every warn;
};

static void
s_gen_init(struct s_gen *g, size_t max)
{
    size_t cap = 16;

    while (cap < max * 2) {
        cap *= 2;
    }
    g->slots = esc_calloc(cap, sizeof(*g->slots));
    g->cap = cap;
    g->n = 0;
}

static void
s_gen_fini(struct s_gen *g)
{
    esc_free(g->slots);
    g->slots = NULL;
    g->cap = 0;
    g->n = 0;
}

/* Index of h in g, or of the empty slot where it would go (*found says which). */
static size_t
s_gen_find(const struct s_gen *g, uint64_t h, int *found)
{
    size_t mask = g->cap - 1;
    size_t i = (size_t)h & mask;

    for (;;) {
        if (g->slots[i] == h) {
            *found = 1;
            return i;
        }
        if (g->slots[i] == 0) {
            *found = 0;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static uint64_t
s_hash(const char *platform, const char *id)
{
    uint64_t h = col_fnv1a(COL_FNV_SEED, platform, strlen(platform) + 1);

    h = col_fnv1a(h, id, strlen(id));
    return h < 2 ? h + 2 : h;
}

static int
s_mem_has(col_state_t *self, uint64_t h)
{
    int found;

    s_gen_find(&self->young, h, &found);
    if (!found) {
        s_gen_find(&self->old, h, &found);
    }
    return found;
}

static void
s_mem_add(col_state_t *self, uint64_t h)
{
    struct s_gen tmp;
    size_t i;
    int found;

    if (self->young.n >= self->gen_max) {
        tmp = self->old;
        self->old = self->young;
        self->young = tmp;
        memset(self->young.slots, 0, self->young.cap * sizeof(*self->young.slots));
        self->young.n = 0;
    }
    i = s_gen_find(&self->young, h, &found);
    if (!found) {
        self->young.slots[i] = h;
        self->young.n++;
    }
}

static void
s_mem_remove(col_state_t *self, uint64_t h)
{
    size_t i;
    int found;

    i = s_gen_find(&self->young, h, &found);
    if (found) {
        self->young.slots[i] = 1;
    }
    i = s_gen_find(&self->old, h, &found);
    if (found) {
        self->old.slots[i] = 1;
    }
}

col_state_t *
col_state_new(const struct esc_kv_opts *kv_opts, const char *prefix, size_t mem_max)
{
    col_state_t *self = esc_calloc(1, sizeof(*self));

    if (kv_opts != NULL) {
        self->kv = esc_kv_new(kv_opts);
    }
    esc_strlcpy(self->prefix, prefix != NULL && prefix[0] != '\0' ? prefix : "esc",
                sizeof(self->prefix));
    self->gen_max = mem_max / 2 > 0 ? mem_max / 2 : 1;
    s_gen_init(&self->young, self->gen_max);
    s_gen_init(&self->old, self->gen_max);
    self->redis_ok = 1;
    return self;
}

void
col_state_destroy(col_state_t **self_p)
{
    col_state_t *self;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    esc_kv_destroy(&self->kv);
    s_gen_fini(&self->young);
    s_gen_fini(&self->old);
    esc_free(self);
    *self_p = NULL;
}

/* Records the outcome of a Redis call; a failure after success is logged (rate-limited). */
static void
s_redis_result(col_state_t *self, esc_rc rc, const char *what)
{
    if (rc == ESC_OK) {
        if (!self->redis_ok) {
            esc_log_info("redis reachable again, cursors and dedupe are durable");
        }
        self->redis_ok = 1;
        return;
    }
    self->redis_ok = 0;
    esc_log_every(&self->warn, S_WARN_MS,
                  "redis unreachable, dedupe from memory only and cursors kept in memory "
                  "what=%s", what);
}

esc_rc
col_state_cursor_get(col_state_t *self, const char *source, char **out)
{
    struct esc_kv_val v;
    char key[160];
    esc_rc rc;

    *out = NULL;
    if (self->kv == NULL) {
        return ESC_OK;
    }
    snprintf(key, sizeof(key), "%s:col:cursor:%s", self->prefix, source);
    rc = esc_kv_cmd(self->kv, &v, "GET %s", key);
    s_redis_result(self, rc, "cursor get");
    if (rc != ESC_OK) {
        return ESC_RETRY;
    }
    if (v.type == ESC_KV_STR) {
        *out = esc_strdup(v.str);
    }
    else if (v.type == ESC_KV_ERROR) {
        esc_log_error("cursor read refused source=%s key=%s err=\"%s\"", source, key, v.str);
        esc_kv_val_fini(&v);
        return ESC_RETRY;
    }
    esc_kv_val_fini(&v);
    return ESC_OK;
}

esc_rc
col_state_cursor_set(col_state_t *self, const char *source, const char *value)
{
    struct esc_kv_val v;
    char key[160];
    esc_rc rc;

    if (self->kv == NULL) {
        return ESC_OK;
    }
    snprintf(key, sizeof(key), "%s:col:cursor:%s", self->prefix, source);
    rc = esc_kv_cmd(self->kv, &v, "SET %s %s", key, value);
    s_redis_result(self, rc, "cursor set");
    if (rc != ESC_OK) {
        return ESC_RETRY;
    }
    rc = v.type == ESC_KV_ERROR ? ESC_RETRY : ESC_OK;
    esc_kv_val_fini(&v);
    return rc;
}

int
col_state_claim(col_state_t *self, const char *platform, const char *id, int64_t ttl_s)
{
    uint64_t h = s_hash(platform, id);
    struct esc_kv_val v;
    char *key;
    size_t n;
    esc_rc rc;
    int fresh;

    if (s_mem_has(self, h)) {
        return 0;
    }
    fresh = 1;
    if (self->kv != NULL) {
        n = strlen(self->prefix) + strlen(platform) + strlen(id) + 16;
        key = esc_malloc(n);
        snprintf(key, n, "%s:col:seen:%s:%s", self->prefix, platform, id);
        rc = esc_kv_cmd(self->kv, &v, "SET %s 1 NX EX %lld", key,
                        (long long)(ttl_s > 0 ? ttl_s : 1));
        s_redis_result(self, rc, "dedupe");
        if (rc == ESC_OK) {
            fresh = v.type != ESC_KV_NIL; /* NX: nil = the key existed */
            esc_kv_val_fini(&v);
        }
        esc_free(key);
    }
    s_mem_add(self, h);
    return fresh;
}

void
col_state_unclaim(col_state_t *self, const char *platform, const char *id)
{
    struct esc_kv_val v;
    char *key;
    size_t n;

    s_mem_remove(self, s_hash(platform, id));
    if (self->kv == NULL) {
        return;
    }
    n = strlen(self->prefix) + strlen(platform) + strlen(id) + 16;
    key = esc_malloc(n);
    snprintf(key, n, "%s:col:seen:%s:%s", self->prefix, platform, id);
    if (esc_kv_cmd(self->kv, &v, "DEL %s", key) == ESC_OK) {
        esc_kv_val_fini(&v);
    }
    esc_free(key);
}

void
col_state_count(col_state_t *self, const char *source, const char *field, int64_t n)
{
    struct esc_kv_val v;
    char key[160];

    if (self->kv == NULL || !self->redis_ok) {
        return;
    }
    snprintf(key, sizeof(key), "%s:col:stats:%s", self->prefix, source);
    if (esc_kv_cmd(self->kv, &v, "HINCRBY %s %s %lld", key, field, (long long)n) == ESC_OK) {
        esc_kv_val_fini(&v);
    }
}

int
col_state_redis_ok(const col_state_t *self)
{
    return self->redis_ok;
}
