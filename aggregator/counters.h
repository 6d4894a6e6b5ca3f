#ifndef AGG_COUNTERS_H
#define AGG_COUNTERS_H

/* Per-topic counters and top lists in Redis, counted exactly once per post (docs/aggregator.md,
 * "Counting", and docs/redis-schema.md for every key). Posts are kept in memory as compact
 * records until a flush; the flush aggregates them per topic and applies each topic's deltas
 * together with the post ids' seen-marks in one Lua script call, all calls pipelined, so a post
 * that was already counted (a re-delivery, a second aggregator, a retried flush) is never
 * counted twice. While Redis is down the records stay in memory (bounded). Called from one
 * thread; with agg_counters_start_thread the flushes themselves run on a flush thread of their
 * own while that thread goes on recording posts. */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_kv.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_rc.h"

typedef struct agg_counters agg_counters_t;

enum agg_res {
    AGG_RES_MINUTE = 0, /* key ...:m:<bucket start, Unix s> */
    AGG_RES_HOUR,       /* key ...:h:<bucket start> */
    AGG_RES_DAY,        /* key ...:d:<bucket start> (UTC day) */
    AGG_RES_TOTAL,      /* all-time hash <prefix>:t:{<topic>}, no TTL */
};

/* Day top lists of a topic: <prefix>:top:{<topic>}:<kind>:<day start>. */
enum agg_top {
    AGG_TOP_AUTHORS = 0, /* author -> influence (docs/aggregator.md, "Top lists") */
    AGG_TOP_HASHTAGS,    /* folded hashtag without '#' -> posts that carry it */
    AGG_TOP_TERMS,       /* term (agg_terms_extract) -> posts that contain it */
    AGG_TOP_POSTS,       /* "<platform>:<id>" -> engagement */
};

#define AGG_SENTIMENT_POS 0.05  /* sentiment >= this is positive */
#define AGG_SENTIMENT_NEG -0.05 /* sentiment <= this is negative; in between neutral */
#define AGG_POST_TEXT_KEEP 280  /* bytes of text kept for a top post (cut at a UTF-8 boundary) */
#define AGG_TERMS_PER_POST 32   /* distinct terms of one post that are counted */

struct agg_counters_opts {
    const char *prefix;        /* key prefix, e.g. "esc" (copied) */
    int64_t retention_s[3];    /* TTL of minute, hour and day buckets and day top lists */
    int64_t dedupe_window_s;   /* TTL of the seen-mark sets */
    size_t max_pending_posts;  /* agg_counters_full once this many posts wait for Redis */
    size_t recent_ids;         /* ids remembered in memory for early duplicate detection */
    size_t top_n;              /* entries shown per author/hashtag/term day list (kept: 2x) */
    size_t top_posts_n;        /* posts kept per day list */
    size_t top_flush_max;      /* members of one list written per topic and day, at most */
    size_t top_max_entries;    /* top-list entries held in memory before the lists are pruned
                                  to their best members (0 = 250,000) */
    int64_t top_flush_ms;      /* top lists are written this often (0 = at every flush) */
    int64_t top_step_ms;       /* > 0: a flush spends about this long on due top lists and
                                  leaves the rest to the next flushes (no stall); 0: all at once */
    int counters_only;         /* non-zero: no top lists (no terms, authors, top posts) */
    const char *instance;      /* instance id for the flush marks (copied); NULL = random */
};

struct agg_counters_stats {
    uint64_t flushed_posts;  /* consumed posts whose batch fully reached Redis */
    uint64_t flushes;        /* batches fully written */
    uint64_t failed_flushes; /* flush calls that returned ESC_RETRY (records kept) */
    uint64_t lost;           /* script calls Redis rejected, lists dropped at the cap (logged) */
    uint64_t dup_memory;     /* duplicates caught in memory (recent ids, same batch) */
    uint64_t dup_redis;      /* (post, topic) pairs Redis had already counted */
    uint64_t script_loads;   /* SCRIPT LOADs (first flush, and after Redis lost its scripts) */
    uint64_t calls;          /* script calls sent (topic parts, lists, top lists, processed) */
    uint64_t top_prunes;     /* times the top lists in memory were pruned to top_max_entries */
};

/* Creates the counters; kv is borrowed and must outlive them. Caller owns the result. */
agg_counters_t *agg_counters_new(esc_kv_t *kv, const struct agg_counters_opts *opts);
/* Frees the counters and whatever is still pending. NULL-safe, sets *self_p = NULL. */
void agg_counters_destroy(agg_counters_t **self_p);

/* Takes one consumed post (+1 processed) matched to the n topic keys ("team/topic", already
 * validated and distinct). The post's identity is platform + id. Returns 1 when the post was
 * recorded for counting, 0 when it is a duplicate of a post this process has recorded recently
 * (not counted again; Redis catches the older ones at flush time). */
int agg_counters_add(agg_counters_t *self, const struct esc_post *p, const char *const *topics,
                     size_t n);

/* Queues LPUSH key value then LTRIM key 0 max_len-1 for the next flush (both copied); applied
 * exactly once. At most 1000 entries wait; beyond that the oldest is dropped (logged, counted
 * in stats.lost). */
void agg_counters_push_list(agg_counters_t *self, const char *key, const char *value,
                            long max_len);

/* Writes what is pending. The open batch is frozen; for each topic (in parts of at most
 * AGG_PART_POSTS posts) one script call checks and sets the seen-marks and applies the bucket
 * deltas; the queued lists follow; then, when top_flush_ms has passed since they were last
 * written (or final is set), the top lists accumulated from the posts Redis acknowledged (in
 * memory pruned to their best members past top_max_entries), one call per topic (with
 * top_step_ms, only as many as fit in that time; the others at the next flushes, while new
 * posts go on counting); last, one call adds the batch's posts to <prefix>:agg:processed. All
 * pipelined: normally two round trips. Returns ESC_OK (nothing left pending that is due; also
 * when there was nothing to do) or ESC_RETRY (Redis unreachable, or not done within the round
 * limit: the unwritten part is kept and sent again later; what Redis already applied is
 * recognised by its marks and not applied twice). */
esc_rc agg_counters_flush(agg_counters_t *self, int final);

#define AGG_PART_POSTS 2048

/* Background flushes: the same writes as agg_counters_flush, run by a flush thread with its
 * own Redis connection while the caller goes on recording posts into the open batch (the
 * frozen batch and top lists being written are the thread's until the flush is collected).
 * Once the thread runs, agg_counters_flush must not be called. */

/* What agg_counters_flush_start did. */
enum agg_flush_start {
    AGG_FLUSH_IDLE = 0, /* nothing due: every post recorded so far is in Redis */
    AGG_FLUSH_ALL,      /* started; it writes every post recorded so far */
    AGG_FLUSH_OLDER,    /* started; it finishes a batch a failed flush left, posts recorded
                           since wait for the next flush */
    AGG_FLUSH_BUSY,     /* a flush is still running */
};

/* Starts the flush thread; kv (borrowed, must outlive the counters) is used by the thread
 * only and replaces the connection given to agg_counters_new for flushes. Returns ESC_OK or
 * ESC_ERR (logged). */
int agg_counters_start_thread(agg_counters_t *self, esc_kv_t *kv);
/* Freezes the open batch (unless a failed flush left one) and hands the flush to the thread;
 * final as for agg_counters_flush. Returns what it did. */
enum agg_flush_start agg_counters_flush_start(agg_counters_t *self, int final);
/* True while a started flush has not been collected. */
int agg_counters_flushing(const agg_counters_t *self);
/* A file descriptor that becomes readable when the running flush has finished (for poll). */
int agg_counters_flush_fd(const agg_counters_t *self);
/* When the started flush has finished: takes its result into *rc (ESC_OK or ESC_RETRY, as
 * agg_counters_flush), updates the stats and returns 1. Returns 0 while it runs or when none
 * was started. Never blocks. */
int agg_counters_flush_collect(agg_counters_t *self, esc_rc *rc);

/* Posts recorded and not yet fully written. */
size_t agg_counters_pending_posts(const agg_counters_t *self);
/* Of those, the posts of the open batch (recorded since the last freeze). */
size_t agg_counters_open_posts(const agg_counters_t *self);
/* True when anything (records, lists, the processed count, top lists) still has to reach
 * Redis. */
int agg_counters_pending(const agg_counters_t *self);
/* True when pending posts have reached max_pending_posts: the caller stops taking input. */
int agg_counters_full(const agg_counters_t *self);

void agg_counters_get_stats(const agg_counters_t *self, struct agg_counters_stats *out);

/* This process's instance id (the value of its marks and leases); borrowed. */
const char *agg_counters_instance(const agg_counters_t *self);

/* Writes the Redis key of topic at resolution res for event time ms into out (size outsz);
 * for AGG_RES_TOTAL ms is ignored. Returns out. */
char *agg_counters_key(const char *prefix, const char *topic, enum agg_res res, int64_t ms,
                       char *out, size_t outsz);
/* Writes the key of topic's day list of kind for the UTC day holding ms. Returns out. */
char *agg_counters_top_key(const char *prefix, const char *topic, enum agg_top kind, int64_t ms,
                           char *out, size_t outsz);

/* Influence of one post, the unit of the top-authors score:
 * (1 + log10(1 + followers)) * (1 + log10(1 + likes + reposts + replies)), negatives as 0. */
double agg_counters_influence(int64_t followers, int64_t engagement);

#endif
