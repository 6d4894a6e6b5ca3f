#define ESC_LOG_MODULE "leases"
/* Per-topic spike leases in Redis. A lease is a string key holding the instance id with a
 * millisecond TTL; one small script renews it when the value is ours or sets it when the key is
 * free (SET NX PX semantics, made atomic with the ownership check). Every lease_ms / 3 all topics
 * go out in one pipeline; the replies say which leases this process holds now. Holding is also
 * bounded by time on this side: a lease whose last successful renewal is older than lease_ms
 * counts as lost even before Redis says so, so two processes never both believe they hold it
 * (clocks of one host: monotonic time). Single-threaded. */
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "counters.h"
#include "leases.h"

#define S_KEY_MAX 320

/* KEYS[1] lease key; ARGV[1] instance; ARGV[2] ttl ms. 1 = held by us now, 0 = someone else. */
static const char s_take[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
    "if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end "
    "return 0";

/* KEYS[1] lease key; ARGV[1] instance. Deletes the lease when it is ours. */
static const char s_drop[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";

struct s_topic {
    char *key;            /* "team/topic"; owned */
    int held;
    int64_t renewed_ms;   /* monotonic time of the request that last confirmed it */
};

struct agg_leases {
    esc_kv_t *kv;         /* borrowed */
    char prefix[64];
    char instance[64];
    int64_t lease_ms;
    int64_t next_ms;      /* next tick */
    struct s_topic *topics;
    size_t n;
};

agg_leases_t *
agg_leases_new(esc_kv_t *kv, const struct agg_leases_opts *opts, const char *const *topics,
               size_t n)
{
    agg_leases_t *self = esc_calloc(1, sizeof(*self));
    size_t i;

    self->kv = kv;
    esc_strlcpy(self->prefix, opts->prefix, sizeof(self->prefix));
    esc_strlcpy(self->instance, opts->instance, sizeof(self->instance));
    self->lease_ms = opts->lease_ms > 0 ? opts->lease_ms : 10000;
    self->n = n;
    self->topics = esc_calloc(n > 0 ? n : 1, sizeof(*self->topics));
    for (i = 0; i < n; i++) {
        self->topics[i].key = esc_strdup(topics[i]);
    }
    return self;
}

void
agg_leases_destroy(agg_leases_t **self_p)
{
    agg_leases_t *self;
    size_t i;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    for (i = 0; i < self->n; i++) {
        esc_free(self->topics[i].key);
    }
    esc_free(self->topics);
    esc_free(self);
    *self_p = NULL;
}

static void
s_lease_key(const agg_leases_t *self, size_t i, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s:lease:{%s}", self->prefix, self->topics[i].key);
}

int
agg_leases_tick(agg_leases_t *self, int64_t now_ms)
{
    struct esc_kv_val *rep;
    char key[S_KEY_MAX];
    char ttl[24];
    int gained = 0;
    size_t i;

    /* time bounds the belief too: no renewal for lease_ms, no lease */
    for (i = 0; i < self->n; i++) {
        struct s_topic *t = &self->topics[i];

        if (t->held && now_ms - t->renewed_ms >= self->lease_ms) {
            esc_log_warn("spike lease expired before it was renewed topic=%s", t->key);
            t->held = 0;
        }
    }
    if (now_ms < self->next_ms || self->n == 0) {
        return 0;
    }
    self->next_ms = now_ms + self->lease_ms / 3;
    snprintf(ttl, sizeof(ttl), "%lld", (long long)self->lease_ms);
    for (i = 0; i < self->n; i++) {
        s_lease_key(self, i, key, sizeof(key));
        esc_kv_append(self->kv, "EVAL %s 1 %s %s %s", s_take, key, self->instance, ttl);
    }
    rep = esc_calloc(self->n, sizeof(*rep));
    if (esc_kv_exec_replies(self->kv, rep, self->n, NULL) != ESC_OK) {
        esc_free(rep);
        return -1;
    }
    for (i = 0; i < self->n; i++) {
        struct s_topic *t = &self->topics[i];
        int held = rep[i].type == ESC_KV_INT && rep[i].integer == 1;

        if (held && !t->held) {
            esc_log_info("spike lease taken topic=%s", t->key);
            gained++;
        }
        else if (!held && t->held) {
            esc_log_warn("spike lease lost to another aggregator topic=%s", t->key);
        }
        t->held = held;
        if (held) {
            t->renewed_ms = now_ms;
        }
        esc_kv_val_fini(&rep[i]);
    }
    esc_free(rep);
    return gained;
}

int
agg_leases_held(const agg_leases_t *self, size_t topic)
{
    return topic < self->n && self->topics[topic].held;
}

size_t
agg_leases_count(const agg_leases_t *self)
{
    size_t n = 0;
    size_t i;

    for (i = 0; i < self->n; i++) {
        n += self->topics[i].held != 0;
    }
    return n;
}

void
agg_leases_release(agg_leases_t *self)
{
    char key[S_KEY_MAX];
    size_t n = 0;
    size_t i;

    for (i = 0; i < self->n; i++) {
        if (self->topics[i].held) {
            s_lease_key(self, i, key, sizeof(key));
            esc_kv_append(self->kv, "EVAL %s 1 %s %s", s_drop, key, self->instance);
            self->topics[i].held = 0;
            n++;
        }
    }
    if (n > 0 && esc_kv_exec(self->kv, NULL) == ESC_OK) {
        esc_log_info("spike leases released leases=%zu", n);
    }
}

esc_rc
agg_leases_read_minutes(agg_leases_t *self, size_t topic, int64_t first_ms, size_t n,
                        int64_t *counts)
{
    struct esc_kv_val *rep;
    char key[S_KEY_MAX];
    size_t i;

    ESC_ASSERT(topic < self->n);
    if (n == 0) {
        return ESC_OK;
    }
    for (i = 0; i < n; i++) {
        agg_counters_key(self->prefix, self->topics[topic].key, AGG_RES_MINUTE,
                         first_ms + (int64_t)i * 60000, key, sizeof(key));
        esc_kv_append(self->kv, "HGET %s posts", key);
    }
    rep = esc_calloc(n, sizeof(*rep));
    if (esc_kv_exec_replies(self->kv, rep, n, NULL) != ESC_OK) {
        esc_free(rep);
        return ESC_RETRY;
    }
    for (i = 0; i < n; i++) {
        int64_t c = -1;

        if (rep[i].type == ESC_KV_STR && esc_parse_i64(rep[i].str, 0, INT64_MAX, &c) != 0) {
            c = 0;
        }
        counts[i] = c;
        esc_kv_val_fini(&rep[i]);
    }
    esc_free(rep);
    return ESC_OK;
}
