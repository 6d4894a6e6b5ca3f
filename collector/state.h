#ifndef COL_STATE_H
#define COL_STATE_H

/* What the connectors remember across restarts (collector-internal), kept in Redis through
 * esc_kv: each source's cursor (key <prefix>:col:cursor:<source name>, an opaque string the
 * connector writes), which posts were already sent (key <prefix>:col:seen:<platform>:<id>, set
 * with NX and a TTL, so a re-sent post is recognised by every collector sharing the Redis) and
 * per-source counters (hash <prefix>:col:stats:<source name>). A bounded in-memory set in
 * front of Redis answers repeats without a round trip and keeps dedupe working while Redis is
 * unreachable. Loop thread only. */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_kv.h"
#include "escucha/esc_rc.h"

#define COL_STATE_MEM_MAX 65536 /* ids remembered in memory (two generations of half each) */

typedef struct col_state col_state_t;

/* kv_opts may be NULL: memory only (nothing survives a restart). prefix is the Redis key
 * prefix ("esc"). Does not connect yet. Caller owns the result. */
col_state_t *col_state_new(const struct esc_kv_opts *kv_opts, const char *prefix,
                           size_t mem_max);
void col_state_destroy(col_state_t **self_p);

/* Reads the stored cursor of a source. ESC_OK with *out caller-owned (NULL when none stored),
 * or ESC_RETRY when Redis is unreachable (logged by esc_kv). Memory only: ESC_OK, NULL. */
esc_rc col_state_cursor_get(col_state_t *self, const char *source, char **out);
/* Stores the cursor. ESC_OK, or ESC_RETRY when Redis is unreachable (the caller keeps the value
 * and tries again later). */
esc_rc col_state_cursor_set(col_state_t *self, const char *source, const char *value);

/* Claims post `id` of `platform` for sending: 1 when it was not seen before (now it is, for
 * ttl_s seconds in Redis), 0 when it was. Without Redis only the memory decides. */
int col_state_claim(col_state_t *self, const char *platform, const char *id, int64_t ttl_s);
/* Gives a claim back (the post was not sent after all). */
void col_state_unclaim(col_state_t *self, const char *platform, const char *id);

/* Adds n to field of the source's stats hash (best effort; nothing happens without Redis). */
void col_state_count(col_state_t *self, const char *source, const char *field, int64_t n);

/* 1 when the last Redis operation worked (or there is no Redis), 0 otherwise. */
int col_state_redis_ok(const col_state_t *self);

#endif
