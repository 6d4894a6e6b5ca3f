#ifndef API_HUB_H
#define API_HUB_H

/* The live hub: per team, a ring of the most recent live posts (JSON objects as text) with a
 * sequence number each, fed by the Redis subscriber thread (live_sub.c) and read by any number
 * of server-sent-event streams, each waiting on a condition variable for the next post of its
 * team. Thread-safe. Sequence numbers start at 1 per team and only grow. */

#include <stddef.h>
#include <stdint.h>

typedef struct api_hub api_hub_t;

/* A hub for n_teams teams keeping `keep` posts each. Caller owns the result. */
api_hub_t *api_hub_new(size_t n_teams, size_t keep);
/* Frees the hub; every waiter must have returned first (api_hub_close, then join). */
void api_hub_destroy(api_hub_t **self_p);

/* Adds a copy of json (len bytes) to team's ring; topics is the post's topic ids as
 * ",id1,id2," (copied) for filtering. Wakes the waiters. */
void api_hub_push(api_hub_t *self, size_t team, const char *json, size_t len,
                  const char *topics);

/* The next post of team with a sequence number above `after` whose topics contain `topic`
 * (NULL = any), waiting up to timeout_ms. On 1, *json_out is a caller-owned copy (esc_free)
 * and *seq_out its number; when the ring no longer holds the post right after `after`, the
 * oldest one it holds is returned. Returns 1, 0 on timeout (*seq_out = the last number looked
 * at, to resume from), or -1 once the hub is closed. */
int api_hub_next(api_hub_t *self, size_t team, uint64_t after, const char *topic, int timeout_ms,
                 char **json_out, uint64_t *seq_out);

/* Sequence number of team's newest post (0 when none). */
uint64_t api_hub_last(api_hub_t *self, size_t team);

/* Wakes every waiter and makes api_hub_next return -1 from now on. */
void api_hub_close(api_hub_t *self);

#endif
