#define ESC_LOG_MODULE "acks"
/* Acknowledgements to the collectors (acks.h, docs/delivery.md). Notes are kept per collector as
 * plain arrays of sequence numbers (8 bytes a post); at the flush hook each array is sorted and
 * merged into ranges (esc_ack_set_seqs), which are nearly contiguous because a collector numbers
 * its posts in order, so an ack for a whole flush is a few bytes. A flush writes every post
 * recorded before it froze its batch, or returns "retry" (counters.h); posts go on being
 * consumed while it runs, so the notes are sealed when the batch is frozen (agg_acks_seal) and
 * only the sealed prefix of each collector's notes is acknowledged when that flush succeeds
 * (agg_acks_flushed seals and acknowledges at once). Notes are bounded (S_NOTES_MAX): past it
 * new notes are dropped, which only means those posts are sent again by their collector and
 * counted once.
 * Single-threaded: the aggregator's loop thread. */
#include <inttypes.h>
#include <string.h>

#include "acks.h"

#include "escucha/esc_ack.h"
#include "escucha/esc_bus.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_util.h"

#define S_NOTES_MAX (4u << 20)       /* notes held (32 MiB) while flushes fail */
#define S_IDLE_FORGET_MS 600000      /* a collector silent this long leaves the table */
#define S_WARN_EVERY_MS 10000

struct s_coll {
    char id[ESC_ACK_ID_MAX + 1];
    uint64_t *seqs; /* noted since the last ack */
    size_t n;
    size_t sealed;  /* seqs[0, sealed) are covered by the running flush */
    size_t cap;
    int64_t last_ms; /* monotonic time of its last note */
};

struct agg_acks {
    esc_bus_t *out;        /* PUSH, connected to bus.ack */
    struct s_coll *cols;
    size_t n_cols;
    size_t last;           /* the collector noted last: most posts come in runs of one */
    size_t held;           /* notes held, all collectors */
    struct agg_acks_stats st;
    struct esc_log_every bad_every;
    struct esc_log_every full_every;
    struct esc_log_every drop_every;
    esc_metric_t *m_messages; /* escucha_aggregator_acks_total */
    esc_metric_t *m_acked;    /* escucha_aggregator_acked_posts_total */
};

agg_acks_t *
agg_acks_new(const char *endpoint, int hwm)
{
    agg_acks_t *self = esc_calloc(1, sizeof(*self));

    self->out = esc_bus_new(ESC_BUS_PUSH, endpoint, false, hwm);
    if (self->out == NULL) {
        esc_free(self);
        return NULL;
    }
    self->m_messages = esc_metrics_counter("escucha_aggregator_acks_total",
                                           "ack messages sent to collectors (bus.ack)", NULL);
    self->m_acked = esc_metrics_counter("escucha_aggregator_acked_posts_total",
                                        "posts acknowledged to their collector after a flush",
                                        NULL);
    esc_log_info("acknowledgements on ack=%s", esc_bus_endpoint(self->out));
    return self;
}

void
agg_acks_destroy(agg_acks_t **self_p, int linger_ms)
{
    agg_acks_t *self;
    size_t i;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    esc_bus_destroy(&self->out, linger_ms);
    for (i = 0; i < self->n_cols; i++) {
        esc_free(self->cols[i].seqs);
    }
    esc_free(self->cols);
    esc_free(self);
    *self_p = NULL;
}

/* The table entry of collector id, added when new. */
static struct s_coll *
s_coll(agg_acks_t *self, const char *id)
{
    size_t i;

    if (self->last < self->n_cols && strcmp(self->cols[self->last].id, id) == 0) {
        return &self->cols[self->last];
    }
    for (i = 0; i < self->n_cols; i++) {
        if (strcmp(self->cols[i].id, id) == 0) {
            self->last = i;
            return &self->cols[i];
        }
    }
    self->cols = esc_realloc(self->cols, (self->n_cols + 1) * sizeof(*self->cols));
    memset(&self->cols[self->n_cols], 0, sizeof(*self->cols));
    esc_strlcpy(self->cols[self->n_cols].id, id, sizeof(self->cols[0].id));
    self->last = self->n_cols;
    return &self->cols[self->n_cols++];
}

void
agg_acks_note(agg_acks_t *self, const char *ack_ref)
{
    char id[ESC_ACK_ID_MAX + 1];
    struct s_coll *c;
    uint64_t seq;

    if (self == NULL || ack_ref == NULL) {
        return;
    }
    if (esc_ack_ref_parse(ack_ref, id, sizeof(id), &seq) != 0) {
        char q[200];

        self->st.bad_refs++;
        esc_log_every(&self->bad_every, S_WARN_EVERY_MS,
                      "post with a malformed ack reference, not acknowledged ref=%s "
                      "bad_refs=%" PRIu64,
                      esc_log_quote(q, sizeof(q), ack_ref, 100), self->st.bad_refs);
        return;
    }
    if (self->held >= S_NOTES_MAX) {
        self->st.overflow++;
        esc_log_every(&self->full_every, S_WARN_EVERY_MS,
                      "acknowledgements waiting for a flush at the limit, later posts are "
                      "acknowledged when their collector sends them again held=%zu", self->held);
        return;
    }
    c = s_coll(self, id);
    if (c->n == c->cap) {
        c->cap = c->cap > 0 ? 2 * c->cap : 1024;
        c->seqs = esc_realloc(c->seqs, c->cap * sizeof(*c->seqs));
    }
    c->seqs[c->n++] = seq;
    c->last_ms = esc_mono_ms();
    self->held++;
    self->st.noted++;
}

/* Sends the acks of one collector and empties its notes. */
static void
s_send(agg_acks_t *self, struct s_coll *c, int64_t now_wall)
{
    struct esc_ack a;
    size_t off;
    size_t i;

    esc_ack_init(&a);
    esc_ack_set_seqs(&a, c->seqs, c->sealed);
    for (off = 0; off < a.n_ranges; off += ESC_ACK_RANGES_MAX) {
        size_t k = a.n_ranges - off < ESC_ACK_RANGES_MAX ? a.n_ranges - off : ESC_ACK_RANGES_MAX;
        uint64_t posts = 0;
        size_t len;
        char *buf = esc_ack_encode_ranges(c->id, now_wall, a.ranges + off, k, &len);

        for (i = 0; i < k; i++) {
            posts += a.ranges[off + i].n;
        }
        if (esc_bus_send(self->out, buf, len, ESC_BUS_DONTWAIT) == ESC_OK) {
            self->st.messages++;
            self->st.acked += posts;
            esc_metric_add(self->m_messages, 1);
            esc_metric_add(self->m_acked, posts);
        }
        else {
            self->st.dropped++;
            esc_log_every(&self->drop_every, S_WARN_EVERY_MS,
                          "ack not sent, the broker is not taking them (the collector sends the "
                          "posts again) collector=%s posts=%" PRIu64 " dropped=%" PRIu64,
                          c->id, posts, self->st.dropped);
        }
        esc_free(buf);
    }
    esc_ack_fini(&a); /* a.collector was never set */
    self->held -= c->sealed;
    memmove(c->seqs, c->seqs + c->sealed, (c->n - c->sealed) * sizeof(*c->seqs));
    c->n -= c->sealed;
    c->sealed = 0;
    if (c->n == 0 && c->cap > 65536) {
        ESC_FREE(c->seqs); /* after a backlog: give the memory back */
        c->cap = 0;
    }
}

void
agg_acks_seal(agg_acks_t *self)
{
    size_t i;

    if (self == NULL) {
        return;
    }
    for (i = 0; i < self->n_cols; i++) {
        self->cols[i].sealed = self->cols[i].n;
    }
}

void
agg_acks_flushed(agg_acks_t *self)
{
    agg_acks_seal(self);
    agg_acks_sealed_flushed(self);
}

void
agg_acks_sealed_flushed(agg_acks_t *self)
{
    int64_t now_wall;
    int64_t now;
    size_t i;

    if (self == NULL || self->held == 0) {
        return;
    }
    now_wall = esc_now_ms();
    now = esc_mono_ms();
    for (i = 0; i < self->n_cols;) {
        struct s_coll *c = &self->cols[i];

        if (c->sealed > 0) {
            s_send(self, c, now_wall);
        }
        else if (c->n == 0 && now - c->last_ms > S_IDLE_FORGET_MS) {
            esc_free(c->seqs);
            self->cols[i] = self->cols[self->n_cols - 1];
            self->n_cols--;
            continue;
        }
        i++;
    }
}

void
agg_acks_get_stats(const agg_acks_t *self, struct agg_acks_stats *out)
{
    if (self == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = self->st;
}
