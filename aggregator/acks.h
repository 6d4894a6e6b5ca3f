#ifndef AGG_ACKS_H
#define AGG_ACKS_H

/* Acknowledgements to the collectors (aggregator-internal; docs/delivery.md). Every consumed
 * post that carries an ack_ref ("<collector id>:<seq>", set by a collector with a journal) is
 * noted; once a flush has written everything noted so far to Redis, one "ack" message per
 * collector goes to the broker (PUSH connected to bus.ack) naming those sequence numbers as
 * ranges. Duplicates and posts that matched no topic are acknowledged the same way, after the
 * flush that follows them. An ack that cannot be sent is dropped: the collector sends the post
 * again later and it is counted once anyway. All functions accept a NULL object (acks off).
 * Single-threaded: the aggregator's loop thread. */

#include <stdint.h>

typedef struct agg_acks agg_acks_t;

struct agg_acks_stats {
    uint64_t noted;    /* posts noted (ack_ref parsed) */
    uint64_t bad_refs; /* ack_ref values that did not parse (logged, not acknowledged) */
    uint64_t overflow; /* notes dropped at the memory bound (those posts are re-sent later) */
    uint64_t acked;    /* sequence numbers sent in acks (a post noted twice counts once) */
    uint64_t messages; /* ack messages sent */
    uint64_t dropped;  /* ack messages the socket did not take (high-water mark) */
};

/* Connects a PUSH socket to endpoint (bus.ack) and registers the metrics
 * escucha_aggregator_acks_total and escucha_aggregator_acked_posts_total. Returns a
 * caller-owned object, or NULL (logged) when the socket cannot be made. */
agg_acks_t *agg_acks_new(const char *endpoint, int hwm);
/* Closes the socket with linger_ms for acks still queued. NULL-safe; sets *self_p = NULL. */
void agg_acks_destroy(agg_acks_t **self_p, int linger_ms);

/* Notes a consumed post by its ack_ref (NULL: nothing to do). */
void agg_acks_note(agg_acks_t *self, const char *ack_ref);
/* The flush hook: everything noted so far is in Redis. Sends the acks and forgets the notes. */
void agg_acks_flushed(agg_acks_t *self);
/* With flushes that run while posts are consumed: a flush that writes every post consumed so
 * far starts; the notes so far are sealed (the ones it confirms). */
void agg_acks_seal(agg_acks_t *self);
/* That flush finished: sends the acks of the sealed notes and forgets them; later notes wait
 * for the next seal. */
void agg_acks_sealed_flushed(agg_acks_t *self);

void agg_acks_get_stats(const agg_acks_t *self, struct agg_acks_stats *out);

#endif
