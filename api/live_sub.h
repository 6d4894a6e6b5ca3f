#ifndef API_LIVE_SUB_H
#define API_LIVE_SUB_H

/* The live feed's subscriber: a thread holding its own Redis connection (hiredis, the one
 * place in escucha-api that uses it directly, because esc_kv has no pub/sub) subscribed to
 * `<prefix>:live:{<team>}` of every configured team. Each message is a JSON array of posts
 * (docs/api.md, "Live feed contract"); every valid post goes into the hub ring of its team.
 * Reconnects with backoff (100 ms doubling to 5 s) while Redis is away. */

#include <stddef.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_kv.h"

#include "hub.h"

#define API_LIVE_POSTS_MAX 50       /* posts taken from one message */
#define API_LIVE_TEXT_MAX 4096      /* bytes of a post's text kept */

typedef struct api_live_sub api_live_sub_t;

/* Starts the thread. opts (strings copied) says where Redis is; cfg and hub are borrowed and
 * must outlive the subscriber. Returns a caller-owned subscriber, or NULL (logged). */
api_live_sub_t *api_live_sub_start(const struct esc_kv_opts *opts, const struct esc_cfg *cfg,
                                   api_hub_t *hub);
/* Stops and joins the thread (within about 200 ms), frees. NULL-safe, sets *self_p = NULL. */
void api_live_sub_stop(api_live_sub_t **self_p);
/* True while subscribed. */
int api_live_sub_up(api_live_sub_t *self);

/* Parses one published payload for team (index into cfg->teams) and pushes its valid posts
 * to hub, each re-encoded with only the documented keys, text cut at API_LIVE_TEXT_MAX bytes
 * (on a UTF-8 boundary) and only well-formed topic ids kept. Returns the number pushed;
 * a payload that is not a JSON array pushes nothing (logged at warn, rate-limited). */
size_t api_live_ingest(api_hub_t *hub, const struct esc_cfg *cfg, size_t team,
                       const char *payload, size_t len);

#endif
