#define ESC_LOG_MODULE "auth"
/* Token lookup and rate limits. A presented token is hashed (SHA-256) and compared with every
 * configured hash without an early exit, so neither the hash comparison nor the position of the
 * match shows in the timing; only hashes are held in memory. Rate limits are token buckets:
 * one per configured token, and a fixed table of buckets indexed by a keyed hash of the
 * client address for requests whose token is missing or wrong (a brute-force brake; two
 * addresses may share a slot, which only makes the brake stricter). One mutex guards the
 * buckets; lookups touch only immutable data. */
#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "auth.h"

#define S_BAD_SLOTS 1024
#define S_BAD_BURST 10.0
#define S_BAD_RATE 1.0

struct s_bucket {
    double tokens;
    int64_t last_ms; /* 0 = never used (full) */
};

struct api_auth {
    const struct api_token *tokens; /* borrowed */
    size_t n;
    double rate;
    double burst;
    struct s_bucket *buckets;       /* one per token */
    struct s_bucket bad[S_BAD_SLOTS];
    unsigned char bad_key[crypto_shorthash_KEYBYTES];
    pthread_mutex_t mu;
};

api_auth_t *
api_auth_new(const struct api_token *tokens, size_t n, double rate_per_s, int64_t burst)
{
    api_auth_t *self = esc_calloc(1, sizeof(*self));

    self->tokens = tokens;
    self->n = n;
    self->rate = rate_per_s;
    self->burst = (double)burst;
    self->buckets = esc_calloc(n > 0 ? n : 1, sizeof(*self->buckets));
    randombytes_buf(self->bad_key, sizeof(self->bad_key));
    pthread_mutex_init(&self->mu, NULL);
    return self;
}

void
api_auth_destroy(api_auth_t **self_p)
{
    api_auth_t *self = self_p != NULL ? *self_p : NULL;

    if (self == NULL) {
        return;
    }
    pthread_mutex_destroy(&self->mu);
    esc_free(self->buckets);
    esc_free(self);
    *self_p = NULL;
}

const struct api_token *
api_auth_find(const api_auth_t *self, const char *text, size_t len)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    size_t found = SIZE_MAX;
    size_t i;

    if (len == 0) {
        return NULL;
    }
    crypto_hash_sha256(h, (const unsigned char *)text, len);
    for (i = 0; i < self->n; i++) {
        /* branch-free select: found keeps the first match, every hash is compared */
        size_t eq = (size_t)(sodium_memcmp(h, self->tokens[i].hash, sizeof(h)) == 0);
        size_t mask = (size_t)0 - (eq & (size_t)(found == SIZE_MAX));

        found = (found & ~mask) | (i & mask);
    }
    sodium_memzero(h, sizeof(h));
    return found == SIZE_MAX ? NULL : &self->tokens[found];
}

/* Refills b at rate up to burst and takes one; returns 0 or the seconds to wait. */
static int
s_take(struct s_bucket *b, double rate, double burst, int64_t now_ms)
{
    double wait;

    if (b->last_ms == 0) {
        b->tokens = burst;
    }
    else if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) / 1000.0 * rate;
        if (b->tokens > burst) {
            b->tokens = burst;
        }
    }
    b->last_ms = now_ms > 0 ? now_ms : 1;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    wait = (1.0 - b->tokens) / rate;
    return wait < 1.0 ? 1 : (int)(wait + 0.999);
}

int
api_auth_take(api_auth_t *self, const struct api_token *t, int64_t now_ms)
{
    size_t i = (size_t)(t - self->tokens);
    int rc;

    ESC_ASSERT(i < self->n);
    pthread_mutex_lock(&self->mu);
    rc = s_take(&self->buckets[i], self->rate, self->burst, now_ms);
    pthread_mutex_unlock(&self->mu);
    return rc;
}

int
api_auth_take_bad(api_auth_t *self, const void *addr, size_t len, int64_t now_ms)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint64_t slot;
    int rc;

    crypto_shorthash(h, (const unsigned char *)addr, len, self->bad_key);
    memcpy(&slot, h, sizeof(slot));
    pthread_mutex_lock(&self->mu);
    rc = s_take(&self->bad[slot % S_BAD_SLOTS], S_BAD_RATE, S_BAD_BURST, now_ms);
    pthread_mutex_unlock(&self->mu);
    return rc;
}

int
api_auth_allows(const struct api_token *t, const char *team, enum api_role need)
{
    if (t == NULL) {
        return 0;
    }
    if (t->role == API_ROLE_ADMIN) {
        return 1;
    }
    return strcmp(t->team, team) == 0 && t->role >= need;
}
