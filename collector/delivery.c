#define ESC_LOG_MODULE "delivery"
/* At-least-once hand-off of the collector's posts (delivery.h, docs/delivery.md). Every post is
 * journaled before it is sent; the aggregators acknowledge the posts a flush has written to
 * Redis with "ack" messages the broker republishes on bus.ack_pub, where this collector's SUB
 * socket subscribes to the first bytes of its own acks only (esc_ack_prefix), so the broker's
 * PUB socket filters for it. Acknowledged entries leave the journal; the rest are sent again by
 * the journal's redelivery rule, at most every S_REDELIVER_EVERY_MS and never blocking, so a
 * bus under backpressure is not flooded with re-sends. Acks lost on the way (a broker restart,
 * a SUB queue at its high-water mark) only cause a redelivery, which the aggregator counts once.
 * Single-threaded: the collector's loop thread. */
#include <inttypes.h>
#include <string.h>

#include <zmq.h>

#include "delivery.h"
#include "journal.h"

#include "escucha/esc_ack.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_util.h"

#define S_ACKS_PER_TICK 1024       /* ack messages read per tick */
#define S_REDELIVER_EVERY_MS 200   /* redelivery scans at most this often */
#define S_REDELIVER_BUDGET 8192    /* entries re-sent per scan */
#define S_LOG_EVERY_MS 10000       /* info lines about redelivery and a full journal */
#define S_MIB (INT64_C(1) << 20)

struct col_delivery {
    const struct col_cfg *ccfg; /* borrowed */
    esc_bus_t *out;             /* PUSH to bus.collect, for re-sends; borrowed */
    esc_bus_t *acks;            /* SUB to bus.ack_pub; owned */
    col_journal_t *j;           /* owned */
    char ref[ESC_ACK_REF_MAX];  /* ack_ref of the post stamped last */
    int64_t next_scan_ms;       /* next redelivery scan (monotonic) */
    int full;                   /* sources wait for room in the journal */
    int64_t full_log_ms;        /* next "journal full" line may be logged */
    int64_t resend_log_ms;      /* next "redelivered" line may be logged */
    uint64_t resend_unlogged;   /* re-sends not yet in a log line */
    uint64_t n_ack_msgs;        /* ack messages for us */
    uint64_t n_bad;             /* ack frames that did not decode */
    struct esc_log_every bad_every;
    struct col_journal_stats reported; /* stats already added to the counters */
    esc_metric_t *m_entries;     /* escucha_collector_journal_entries */
    esc_metric_t *m_bytes;       /* escucha_collector_journal_bytes */
    esc_metric_t *m_full;        /* escucha_collector_journal_full */
    esc_metric_t *m_redelivered; /* escucha_collector_redelivered_total */
    esc_metric_t *m_acked;       /* escucha_collector_acked_total */
};

col_delivery_t *
col_delivery_new(const struct esc_cfg *cfg, const struct col_cfg *ccfg, esc_bus_t *out,
                 struct esc_error *err)
{
    col_delivery_t *self = esc_calloc(1, sizeof(*self));
    struct col_journal_opts o;
    uint8_t prefix[ESC_ACK_PREFIX_MAX];
    size_t plen;

    self->ccfg = ccfg;
    self->out = out;
    memset(&o, 0, sizeof(o));
    o.dir = ccfg->journal_dir;
    o.max_bytes = ccfg->journal_max_mb * S_MIB;
    o.max_entries = ccfg->journal_max_entries;
    /* a few segments fit the bound, so one long-unacknowledged post cannot fill it alone */
    o.segment_bytes = ccfg->journal_segment_mb * S_MIB;
    if (o.segment_bytes > o.max_bytes / 4) {
        o.segment_bytes = o.max_bytes / 4;
    }
    o.fsync_ms = ccfg->journal_fsync_ms;
    self->j = col_journal_open(&o, err);
    if (self->j == NULL) {
        col_delivery_destroy(&self);
        return NULL;
    }
    self->acks = esc_bus_new(ESC_BUS_SUB, cfg->bus.ack_pub, false, (int)cfg->bus.hwm);
    if (self->acks == NULL) {
        esc_error_set(err, 0, "cannot connect to bus.ack_pub %s", cfg->bus.ack_pub);
        col_delivery_destroy(&self);
        return NULL;
    }
    plen = esc_ack_prefix(col_journal_id(self->j), prefix, sizeof(prefix));
    ESC_ASSERT(plen > 0);
    zmq_setsockopt(esc_bus_zsock(self->acks), ZMQ_SUBSCRIBE, prefix, plen);
    self->m_entries = esc_metrics_gauge("escucha_collector_journal_entries",
                                        "Posts in the journal not yet acknowledged.", NULL);
    self->m_bytes = esc_metrics_gauge("escucha_collector_journal_bytes",
                                      "Bytes of the journal's segment files.", NULL);
    self->m_full = esc_metrics_gauge("escucha_collector_journal_full",
                                     "1 while sources wait for the journal to have room.", NULL);
    self->m_redelivered = esc_metrics_counter("escucha_collector_redelivered_total",
                                              "Posts sent again (not acknowledged in time, or "
                                              "read back from the journal at start).", NULL);
    self->m_acked = esc_metrics_counter("escucha_collector_acked_total",
                                        "Posts acknowledged by the aggregators (counted).", NULL);
    esc_log_info("delivery journal on id=%s dir=%s ack_pub=%s redelivery_ms=%lld",
                 col_journal_id(self->j), ccfg->journal_dir, esc_bus_endpoint(self->acks),
                 (long long)ccfg->redelivery_ms);
    self->next_scan_ms = esc_mono_ms();
    col_delivery_tick(self); /* what a previous run left unacknowledged goes out at once */
    return self;
}

void
col_delivery_destroy(col_delivery_t **self_p)
{
    col_delivery_t *self;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    if (self->j != NULL) {
        uint64_t left = col_delivery_unacked(self);

        if (left > 0) {
            esc_log_info("journal closed with posts not acknowledged yet, sent again at the "
                         "next start unacked=%" PRIu64, left);
        }
    }
    esc_bus_destroy(&self->acks, 0);
    col_journal_close(&self->j);
    esc_free(self);
    *self_p = NULL;
}

void
col_delivery_stamp(col_delivery_t *self, struct esc_post *post)
{
    esc_ack_ref_format(self->ref, sizeof(self->ref), col_journal_id(self->j),
                       col_journal_next_seq(self->j));
    esc_free(post->ack_ref);
    post->ack_ref = esc_strdup(self->ref);
}

bool
col_delivery_has_room(col_delivery_t *self, size_t len)
{
    int64_t now;

    if (col_journal_has_room(self->j, len)) {
        if (self->full) {
            self->full = 0;
            esc_metric_set(self->m_full, 0.0);
            esc_log_info("journal has room again, reading sources unacked=%" PRIu64,
                         col_delivery_unacked(self));
        }
        return true;
    }
    now = esc_mono_ms();
    if (!self->full || now >= self->full_log_ms) {
        struct col_journal_stats st;

        col_journal_get_stats(self->j, &st);
        esc_log_warn("journal full, sources wait for acknowledgements unacked=%" PRIu64
                     " bytes=%" PRIu64 " max_entries=%lld max_mb=%lld",
                     st.entries, st.bytes, (long long)self->ccfg->journal_max_entries,
                     (long long)self->ccfg->journal_max_mb);
        self->full_log_ms = now + S_LOG_EVERY_MS;
    }
    if (!self->full) {
        self->full = 1;
        esc_metric_set(self->m_full, 1.0);
    }
    return false;
}

esc_rc
col_delivery_append(col_delivery_t *self, const void *buf, size_t len)
{
    return col_journal_append(self->j, buf, len, esc_mono_ms());
}

/* col_journal_send_fn: a re-send never waits for room. */
static esc_rc
s_resend(void *arg, const void *buf, size_t len)
{
    col_delivery_t *self = arg;

    return esc_bus_send(self->out, buf, len, ESC_BUS_DONTWAIT);
}

static void
s_read_acks(col_delivery_t *self, int64_t now)
{
    const char *id = col_journal_id(self->j);
    struct esc_ack a;
    struct esc_error err;
    const void *buf;
    size_t len;
    size_t i;
    int k;

    for (k = 0; k < S_ACKS_PER_TICK; k++) {
        if (esc_bus_recv(self->acks, &buf, &len, ESC_BUS_DONTWAIT) != ESC_OK) {
            return;
        }
        memset(&err, 0, sizeof(err));
        if (esc_ack_decode(buf, len, &a, &err) != ESC_OK) {
            char q[300];

            self->n_bad++;
            esc_log_every(&self->bad_every, S_LOG_EVERY_MS,
                          "invalid ack skipped bytes=%zu reason=%s invalid=%" PRIu64, len,
                          esc_log_quote(q, sizeof(q), err.text, 200), self->n_bad);
            esc_ack_fini(&a);
            continue;
        }
        if (strcmp(a.collector, id) == 0) {
            /* the subscription filters on a prefix; the id is compared whole here */
            uint64_t newly = 0;

            self->n_ack_msgs++;
            for (i = 0; i < a.n_ranges; i++) {
                newly += col_journal_ack(self->j, a.ranges[i].first, a.ranges[i].n, now);
            }
            esc_log_debug("ack received ranges=%zu newly_acked=%" PRIu64, a.n_ranges, newly);
        }
        esc_ack_fini(&a);
    }
}

void
col_delivery_tick(col_delivery_t *self)
{
    struct col_journal_stats st;
    int64_t now = esc_mono_ms();
    size_t sent;

    s_read_acks(self, now);
    if (now >= self->next_scan_ms) {
        sent = col_journal_redeliver(self->j, now, self->ccfg->redelivery_ms,
                                     self->ccfg->redelivery_max_ms, S_REDELIVER_BUDGET, s_resend,
                                     self);
        self->next_scan_ms = now + S_REDELIVER_EVERY_MS;
        self->resend_unlogged += sent;
        if (self->resend_unlogged > 0 && now >= self->resend_log_ms) {
            esc_log_info("posts sent again, not acknowledged in time or left by the last run "
                         "count=%" PRIu64 " unacked=%" PRIu64,
                         self->resend_unlogged, col_delivery_unacked(self));
            self->resend_unlogged = 0;
            self->resend_log_ms = now + S_LOG_EVERY_MS;
        }
    }
    col_journal_tick(self->j, now);
    col_journal_get_stats(self->j, &st);
    esc_metric_set(self->m_entries, (double)st.entries);
    esc_metric_set(self->m_bytes, (double)st.bytes);
    esc_metric_add(self->m_redelivered, st.redelivered - self->reported.redelivered);
    esc_metric_add(self->m_acked, st.acked - self->reported.acked);
    self->reported = st;
}

void *
col_delivery_zsock(col_delivery_t *self)
{
    return esc_bus_zsock(self->acks);
}

uint64_t
col_delivery_unacked(const col_delivery_t *self)
{
    struct col_journal_stats st;

    col_journal_get_stats(self->j, &st);
    return st.entries;
}
