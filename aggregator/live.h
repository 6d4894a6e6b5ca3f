#ifndef AGG_LIVE_H
#define AGG_LIVE_H

/* The live feed of matched posts (docs/api.md, "Live feed contract"). Each counted post that
 * matched topics is kept, per team, until the next flush; the flush PUBLISHes one JSON array
 * per team (at most AGG_LIVE_PER_TEAM posts, the newest) on `<prefix>:live:{<team>}` and
 * pushes the posts onto each topic's capped list `<prefix>:latest:{<team>/<topic>}` (the
 * feeds and the "latest posts" endpoint read it). Best effort: what Redis does not take is
 * dropped and counted, never retried (a live view wants now, not a backlog). Single-threaded. */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_kv.h"
#include "escucha/esc_msg.h"

#define AGG_LIVE_PER_TEAM 50    /* posts in one team's message per flush */
#define AGG_LIVE_LATEST_KEEP 200 /* entries kept in a topic's latest list */
#define AGG_LIVE_TEXT_MAX 4096  /* bytes of text kept (cut on a UTF-8 boundary) */
#define AGG_LIVE_TEAMS_MIN 256  /* distinct teams held between flushes, at least */
#define AGG_LIVE_TOPICS_MIN 4096 /* distinct topics held between flushes, at least */

typedef struct agg_live agg_live_t;

struct agg_live_stats {
    uint64_t published; /* team messages sent */
    uint64_t posts;     /* posts sent (counted once per team) */
    uint64_t dropped;   /* posts not sent: over a cap, or Redis unreachable */
};

/* prefix is copied. Between two flushes the feed holds posts of up to max(teams,
 * AGG_LIVE_TEAMS_MIN) distinct teams and max(topics, AGG_LIVE_TOPICS_MIN) distinct topics (the
 * deployment's counts: every team and topic fits); beyond that a post is not published for
 * them (counted in dropped). Caller owns the result. */
agg_live_t *agg_live_new(const char *prefix, size_t teams, size_t topics);
void agg_live_destroy(agg_live_t **self_p);

/* Takes a post that was counted for the n topic keys ("team/topic", valid and distinct): it
 * goes to each team it matched once, with the ids of that team's topics only. p is borrowed
 * (copied here). */
void agg_live_add(agg_live_t *self, const struct esc_post *p, const char *const *topics,
                  size_t n);

/* Sends what was added since the previous flush (pipelined, one round trip per about 1 MB of
 * commands) and forgets it. Returns ESC_OK (also when there was nothing to send) or ESC_RETRY
 * (Redis unreachable; the posts not sent are dropped and counted). */
esc_rc agg_live_flush(agg_live_t *self, esc_kv_t *kv);

void agg_live_get_stats(const agg_live_t *self, struct agg_live_stats *out);

/* The JSON object of one live post as the API receives it, with the given topic ids (n):
 * id, platform, author, author_name, url, created_at (Unix ms), text, topics, lang, sentiment,
 * followers, likes, reposts, replies. Caller owns the result (esc_free). */
char *agg_live_post_json(const struct esc_post *p, const char *const *topic_ids, size_t n);

#endif
