#define ESC_LOG_MODULE "aggregator"
/* The aggregator's loop. Classified posts arrive on a PULL socket bound to bus.aggregate (every
 * classifier connects); each is decoded once, recorded for counting (counters.c) and fed to the
 * event-time spike detector (spikes.c). A timer flushes the records to Redis every flush_ms
 * (pipelined script calls that count each post once); while Redis is down they are kept, and
 * once max_pending_posts is reached input pauses, so ZeroMQ's high-water marks push back on the
 * classifiers instead of anything being dropped. With spike leases (several aggregators), the
 * topics this process holds are evaluated on merged counts read back from Redis (leases.c,
 * s_spikes_feed_merged). Alerts go out on a PUSH socket connected to bus.notify (a blocking
 * send bounded by a send timeout; what cannot be queued is parked and retried) and into a
 * capped Redis list per team. Everything runs on the loop thread (signals arrive through a
 * signalfd polled with the sockets) except the flushes: the counters' flush thread writes a
 * frozen batch over its own Redis connection while the loop goes on recording posts, and its
 * pipe, polled here too, says when to collect the result (s_flush_collect). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_sig.h"
#include "escucha/esc_util.h"

#include "acks.h"
#include "aggregator.h"
#include "counters.h"
#include "live.h"
#include "leases.h"
#include "spikes.h"

#define AGG_BATCH_MAX 512          /* messages handled per poll wake-up */
#define AGG_PARKED_MAX 256         /* alerts waiting for room on the notify socket */
#define AGG_SEND_TIMEOUT_MS 1000   /* longest a blocking alert send may wait */
#define AGG_ALERTS_KEEP 1000       /* entries kept in <prefix>:alerts:{team} */
#define AGG_WARN_EVERY_MS 5000     /* rate limit of per-message warnings */
#define AGG_FEED_MAX 1440          /* minutes read back for one topic at a time */
#define AGG_PBUF_KEEP (1u << 20)   /* decode memory kept between messages, bytes */

/* The configured topic keys for the intake: open addressing with the key bytes in the slot,
 * so a lookup costs one cache line where agg_cfg_topic_lookup's costs three (slot, key string,
 * value); at 10,000 topics those misses were 8 % of the loop. Holds only keys that pass
 * s_topic_key_valid and fit AGG_TOPIC_KEY_INLINE bytes; any other key takes the slow path. */
#define AGG_TOPIC_KEY_INLINE 55
struct agg_topic_slot {
    uint32_t hash;                         /* s_topic_hash of the key; slot empty when len == 0 */
    uint32_t index;                        /* flat topic index */
    uint8_t len;
    char key[AGG_TOPIC_KEY_INLINE];        /* not NUL-terminated */
};
_Static_assert(sizeof(struct agg_topic_slot) == 64, "topic slot is one cache line");

struct agg_parked {
    char *buf;   /* encoded alert; owned */
    size_t len;
};

/* Posts recorded since the last successful flush that share one ingested_at (run-length:
 * posts arrive in intake order, many per millisecond), for the intake-to-Redis histogram. */
struct agg_intake {
    int64_t ingested_at; /* Unix ms */
    uint64_t n;
};

/* Histogram bounds, seconds. */
static const double s_flush_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,  0.5,    1,     2.5,  5,     10 };
static const double s_intake_bounds[] = { 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                          2,    5,     10,   30,  60,   300 };

struct agg {
    const struct esc_cfg *cfg;             /* borrowed */
    const struct agg_cfg *ac;              /* borrowed */
    const struct esc_cfg_topic **topics;   /* by flat topic index; the array is owned */
    struct agg_topic_slot *topic_slots;    /* topic_cap slots, 64-byte aligned in topic_mem */
    void *topic_mem;                       /* owned */
    size_t topic_cap;                      /* power of two */
    esc_kv_t *kv;
    esc_kv_t *kv_flush;                    /* the counters' flush thread's own connection */
    agg_counters_t *counters;
    agg_acks_t *acks;                      /* acks to collectors (docs/delivery.md), NULL off */
    agg_live_t *live;                      /* matched posts for escucha-api's live view */
    agg_spikes_t *spikes;
    struct esc_post_buf pbuf;              /* the decoded post's strings, reused per message */
    esc_bus_t *in;                         /* PULL, bound to bus.aggregate */
    esc_bus_t *out;                        /* PUSH, connected to bus.notify */
    int sig_fd;
    struct esc_drain drain;

    int64_t next_flush_ms;                 /* monotonic time of the next flush */
    int64_t last_in_ms;                    /* monotonic time of the last message */
    int paused;                            /* input paused: pending posts at max_pending_posts */
    int redis_down;                        /* the last flush failed (logged once) */
    int flush_due;                         /* a flush was due while one was still running */
    enum agg_flush_start flush_what;       /* what the running flush writes */
    double flush_t0;                       /* esc_metrics_clock() when it started */
    size_t flush_posts;                    /* posts pending when it started */
    int64_t wm_sealed;                     /* wm_seen when its batch was frozen */

    /* scale-out (aggregator.spike_leases): see s_spikes_feed_merged */
    agg_leases_t *leases;                  /* NULL unless spike_leases */
    int64_t wm_seen;                       /* newest event time given to the spike detector */
    int64_t wm_prev;                       /* wm_seen when the last flush started */
    int64_t wm_prev2;                      /* ... and the one before: minutes up to here are in
                                              Redis from every aggregator */
    int64_t feed[AGG_FEED_MAX];            /* minute counts read back from Redis */

    /* Prometheus metrics (docs/aggregator.md, "Process metrics"); borrowed from esc_metrics */
    esc_metric_t *m_in;
    esc_metric_t *m_invalid;
    esc_metric_t *m_flushed;
    esc_metric_t *m_dup_memory;
    esc_metric_t *m_dup_redis;
    esc_metric_t *m_failed;
    esc_metric_t *m_rejected;
    esc_metric_t *m_calls;
    esc_metric_t *m_top_prunes;
    esc_metric_t *m_alerts;
    esc_metric_t *m_pending;
    esc_metric_t *m_paused;
    esc_metric_t *m_redis_up;
    esc_metric_t *m_leases;
    esc_metric_t *m_flush_s;               /* flush duration histogram */
    esc_metric_t *m_intake_s;              /* intake-to-Redis latency histogram */
    struct agg_intake *intake;             /* owned, n_intake used of cap_intake */
    size_t n_intake;
    size_t cap_intake;
    size_t n_intake_sealed;                /* the first ones, covered by the running flush */
    struct agg_counters_stats reported;    /* stats already added to the counters above */
    uint64_t reported_in;
    uint64_t reported_invalid;
    uint64_t reported_alerts;

    struct agg_parked parked[AGG_PARKED_MAX]; /* FIFO ring */
    size_t parked_head;
    size_t n_parked;

    uint64_t n_in;                         /* messages received (a batch counts its posts) */
    uint64_t n_invalid;                    /* frames that were not a valid classified post */
    uint64_t n_bad_topics;                 /* malformed or repeated topic keys skipped */
    uint64_t n_future;                     /* posts kept out of spikes: dated in the future */
    uint64_t n_dup;                        /* re-deliveries dropped in memory */
    uint64_t n_alerts;                     /* alerts raised */
    uint64_t n_alerts_dropped;             /* alerts that never reached the notify socket */
    struct esc_log_every invalid_every;
    struct esc_log_every topic_every;
    struct esc_log_every future_every;
};

/* True when s[0, n) is an identifier as esc_ident_valid accepts it: 1 to 64 of [a-z0-9_-],
 * not starting with '-' or '_'. */
static int
s_ident_valid_n(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > 64 || s[0] == '-' || s[0] == '_') {
        return 0;
    }
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            return 0;
        }
    }
    return 1;
}

/* "team/topic" with two valid identifiers (a team id of at most 63 bytes). */
static int
s_topic_key_valid(const char *key)
{
    const char *slash = strchr(key, '/');
    size_t n;

    if (slash == NULL) {
        return 0;
    }
    n = (size_t)(slash - key);
    return n < 64 && s_ident_valid_n(key, n) && s_ident_valid_n(slash + 1, strlen(slash + 1));
}

/* FNV-1a of key; *len_out gets strlen(key). */
static uint32_t
s_topic_hash(const char *key, size_t *len_out)
{
    uint32_t h = 2166136261u;
    size_t n = 0;

    for (; key[n] != '\0'; n++) {
        h = (h ^ (unsigned char)key[n]) * 16777619u;
    }
    *len_out = n;
    return h;
}

/* Fills the topic table (see struct agg_topic_slot) from the configured topics. */
static void
s_topics_index(agg_t *self)
{
    size_t cap = 16;
    size_t i;

    while (cap < 2 * self->ac->n_topics) {
        cap *= 2;
    }
    self->topic_mem = esc_calloc(cap + 1, sizeof(struct agg_topic_slot));
    self->topic_slots = (struct agg_topic_slot *)(void *)(((uintptr_t)self->topic_mem + 63)
                                                           & ~(uintptr_t)63);
    self->topic_cap = cap;
    for (i = 0; i < self->ac->n_topics; i++) {
        const char *key = self->topics[i]->key;
        size_t len;
        uint32_t h = s_topic_hash(key, &len);
        size_t slot = h & (cap - 1);
        long ti;

        if (len > AGG_TOPIC_KEY_INLINE || !s_topic_key_valid(key)) {
            continue;
        }
        ti = agg_cfg_topic_lookup(self->ac, key); /* the same index the config answers */
        while (self->topic_slots[slot].len != 0) {
            slot = (slot + 1) & (cap - 1);
        }
        self->topic_slots[slot].hash = h;
        self->topic_slots[slot].index = (uint32_t)ti;
        self->topic_slots[slot].len = (uint8_t)len;
        memcpy(self->topic_slots[slot].key, key, len);
    }
}

/* The flat index of key (len bytes, hash h) when it is in the topic table, else -1. */
static long
s_topics_find(const agg_t *self, const char *key, size_t len, uint32_t h)
{
    size_t slot = h & (self->topic_cap - 1);

    while (self->topic_slots[slot].len != 0) {
        const struct agg_topic_slot *t = &self->topic_slots[slot];

        if (t->hash == h && t->len == len && memcmp(t->key, key, len) == 0) {
            return (long)t->index;
        }
        slot = (slot + 1) & (self->topic_cap - 1);
    }
    return -1;
}

static int s_alert_claim(agg_t *self, const char *team, const char *alert_id);

/* Queues an encoded alert for a later send; takes ownership of buf. */
static void
s_park(agg_t *self, char *buf, size_t len)
{
    struct agg_parked *p;

    if (self->n_parked == AGG_PARKED_MAX) {
        esc_log_error("notify queue full, dropping the oldest alert parked=%d dropped=%llu",
                      AGG_PARKED_MAX, (unsigned long long)self->n_alerts_dropped + 1);
        ESC_FREE(self->parked[self->parked_head].buf);
        self->parked_head = (self->parked_head + 1) % AGG_PARKED_MAX;
        self->n_parked--;
        self->n_alerts_dropped++;
    }
    p = &self->parked[(self->parked_head + self->n_parked) % AGG_PARKED_MAX];
    p->buf = buf;
    p->len = len;
    self->n_parked++;
}

/* Sends parked alerts, oldest first, while the socket takes them. */
static void
s_retry_parked(agg_t *self)
{
    while (self->n_parked > 0) {
        struct agg_parked *p = &self->parked[self->parked_head];

        if (esc_bus_send(self->out, p->buf, p->len, ESC_BUS_DONTWAIT) != ESC_OK) {
            return;
        }
        ESC_FREE(p->buf);
        self->parked_head = (self->parked_head + 1) % AGG_PARKED_MAX;
        self->n_parked--;
        esc_log_info("parked alert sent parked=%zu", self->n_parked);
    }
}

/* The topic's query, or else its keywords joined with " OR " (phrases quoted), for the reader
 * of an alert. Returns a caller-owned string. */
static char *
s_topic_query(const struct esc_cfg_topic *t)
{
    size_t cap = 1;
    size_t n = 0;
    size_t i;
    char *out;

    if (t->query != NULL && t->query[0] != '\0') {
        return esc_strdup(t->query);
    }
    for (i = 0; i < t->n_keywords; i++) {
        cap += strlen(t->keywords[i]) + 6;
    }
    out = esc_malloc(cap);
    out[0] = '\0';
    for (i = 0; i < t->n_keywords; i++) {
        const char *q = strchr(t->keywords[i], ' ') != NULL ? "\"" : "";

        n += (size_t)snprintf(out + n, cap - n, "%s%s%s%s", i > 0 ? " OR " : "", q,
                              t->keywords[i], q);
    }
    return out;
}

/* Spike callback (kind spike or ended): builds the alert with the samples, terms and the
 * topic's query, sends it to the notifier and queues it for the team's Redis list. */
static void
s_on_spike(void *arg, const struct agg_spike *s)
{
    agg_t *self = arg;
    const struct esc_cfg_topic *t = self->topics[s->topic];
    const struct esc_cfg_team *team = &self->cfg->teams[t->team_index];
    int ended = s->kind == AGG_SPIKE_END;
    struct esc_alert a;
    char id[200];
    char key[160];
    char ws[32];
    char we[32];
    char *buf;
    char *json;
    size_t len = 0;
    size_t i;
    esc_rc rc;

    esc_alert_init(&a);
    if (ended) {
        snprintf(id, sizeof(id), "%s/%lld/ended", t->key, (long long)s->window_start_ms);
    }
    else {
        snprintf(id, sizeof(id), "%s/%lld", t->key, (long long)s->window_start_ms);
    }
    if (!s_alert_claim(self, team->id, id)) {
        esc_alert_fini(&a);
        return; /* scale-out: another aggregator already sent this alert */
    }
    a.id = esc_strdup(id);
    a.team = esc_strdup(team->id);
    a.topic = esc_strdup(t->id);
    a.topic_name = esc_strdup(t->name);
    a.kind = esc_strdup(ended ? "ended" : "spike");
    a.window_start = s->window_start_ms;
    a.window_end = s->window_end_ms;
    a.observed = s->observed;
    a.expected = s->expected;
    a.score = s->score;
    a.ts = esc_now_ms();
    for (i = 0; i < s->n_samples; i++) {
        esc_strlist_push(&a.samples, &a.n_samples, s->samples[i].text);
        esc_strlist_push(&a.sample_authors, &a.n_sample_authors, s->samples[i].author);
        esc_strlist_push(&a.sample_urls, &a.n_sample_urls, s->samples[i].url);
    }
    for (i = 0; i < s->n_terms; i++) {
        esc_strlist_push(&a.terms, &a.n_terms, s->terms[i]);
    }
    a.query = s_topic_query(t);
    esc_time_fmt_iso8601(s->window_start_ms, ws, sizeof(ws));
    esc_time_fmt_iso8601(s->window_end_ms, we, sizeof(we));
    if (ended) {
        esc_log_info("spike ended topic=%s observed=%lld expected=%.2f peak_score=%.2f "
                     "window_start=%s window_end=%s",
                     t->key, (long long)s->observed, s->expected, s->score, ws, we);
    }
    else {
        esc_log_info("spike topic=%s observed=%lld expected=%.2f score=%.2f p=%.3g stage=%s "
                     "window_start=%s window_min=%lld",
                     t->key, (long long)s->observed, s->expected, s->score, s->p, s->stage, ws,
                     (long long)((s->window_end_ms - s->window_start_ms) / 60000));
        self->n_alerts++;
    }

    buf = esc_alert_encode(&a, &len);
    rc = self->n_parked > 0 ? ESC_RETRY : esc_bus_send(self->out, buf, len, 0);
    if (rc == ESC_OK) {
        esc_free(buf);
    }
    else {
        esc_log_warn("alert not accepted by the notify socket, parked id=%s rc=%s", id,
                     esc_rc_str(rc));
        s_park(self, buf, len);
    }
    json = esc_alert_to_json(&a);
    snprintf(key, sizeof(key), "%s:alerts:{%s}", self->cfg->redis.prefix, team->id);
    agg_counters_push_list(self->counters, key, json, AGG_ALERTS_KEEP);
    esc_free(json);
    esc_alert_fini(&a);
}

/* Reads, inside Redis, the "posts" field of ARGV[3] hour buckets ARGV[1] .. (hour start
 * ARGV[2] + 3600 i): one call per topic instead of a command per hour (at 10,000 topics the
 * 8.4 million HGETs of a start-up took 12 s, nearly all of it formatting them); nil at once
 * when the topic has no totals (KEYS[2]: never counted, so no history). KEYS[1] is the first
 * hour bucket; both keys route a Redis Cluster call to the topic's slot. */
static const char s_seed_script[] =
    "if redis.call('EXISTS', KEYS[2]) == 0 then return false end\n"
    "local pfx, first, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local out = {}\n"
    "for i = 0, n - 1 do\n"
    "  out[i + 1] = redis.call('HGET', pfx .. string.format('%d', first + 3600 * i), 'posts')\n"
    "end\n"
    "return out\n";

#define S_SEED_TOPICS 64 /* topics whose history one round trip reads */

/* Seeds topic ti's spike history from the reply of s_seed_script (the posts of its hour
 * buckets <prefix>:c:{<topic>}:h:<start> of the AGG_SPIKE_HIST_HOURS complete hours from
 * first_h), so a restart keeps the daily and weekly baselines. Hours before the oldest
 * bucket that exists are left unknown. */
static void
s_spikes_seed_reply(agg_t *self, size_t ti, int64_t first_h, const struct esc_kv_val *v,
                    int64_t *counts)
{
    size_t first = AGG_SPIKE_HIST_HOURS;
    size_t i;

    if (v->type == ESC_KV_NIL) {
        return; /* never counted */
    }
    if (v->type != ESC_KV_ARRAY || v->n != AGG_SPIKE_HIST_HOURS) {
        esc_log_warn("spike history not seeded, unexpected reply topic=%s",
                     self->topics[ti]->key);
        return;
    }
    for (i = 0; i < AGG_SPIKE_HIST_HOURS; i++) {
        int64_t c = 0;

        if (v->elem[i].type == ESC_KV_STR && esc_parse_i64(v->elem[i].str, 0, INT64_MAX, &c) == 0
            && first == AGG_SPIKE_HIST_HOURS) {
            first = i;
        }
        counts[i] = c;
    }
    if (first < AGG_SPIKE_HIST_HOURS) {
        agg_spikes_seed_hours(self->spikes, ti, (first_h + (int64_t)first) * 3600000,
                              counts + first, AGG_SPIKE_HIST_HOURS - first);
        esc_log_debug("spike history seeded topic=%s hours=%zu", self->topics[ti]->key,
                      AGG_SPIKE_HIST_HOURS - first);
    }
}

/* Seeds every topic's spike history from Redis at start-up: one script call per topic,
 * S_SEED_TOPICS calls per round trip. */
static void
s_spikes_seed(agg_t *self)
{
    int64_t first_h = esc_now_ms() / 3600000 - AGG_SPIKE_HIST_HOURS;
    struct esc_kv_val v[S_SEED_TOPICS];
    int64_t *counts = esc_calloc(AGG_SPIKE_HIST_HOURS, sizeof(*counts));
    size_t n = self->ac->n_topics;
    size_t i;
    size_t k;

    for (i = 0; i < n; i += S_SEED_TOPICS) {
        size_t m = n - i < S_SEED_TOPICS ? n - i : S_SEED_TOPICS;

        for (k = 0; k < m; k++) {
            const char *key = self->topics[i + k]->key;

            esc_kv_append(self->kv, "EVAL %s 2 %s:c:{%s}:h:%lld %s:t:{%s} %s:c:{%s}:h: %lld %d",
                          s_seed_script, self->cfg->redis.prefix, key,
                          (long long)(first_h * 3600), self->cfg->redis.prefix, key,
                          self->cfg->redis.prefix, key, (long long)(first_h * 3600),
                          AGG_SPIKE_HIST_HOURS);
        }
        if (esc_kv_exec_replies(self->kv, v, m, NULL) != ESC_OK) {
            esc_log_warn("spike history not seeded from redis, baselines start empty topics=%zu",
                         n - i);
            break;
        }
        for (k = 0; k < m; k++) {
            s_spikes_seed_reply(self, i + k, first_h, &v[k], counts);
            esc_kv_val_fini(&v[k]);
        }
    }
    esc_free(counts);
}

/* Remembers the intake time of a recorded post until a flush has put it in Redis. */
static void
s_intake_note(agg_t *self, int64_t ingested_at)
{
    if (ingested_at <= 0) {
        return; /* a producer that does not stamp it */
    }
    if (self->n_intake > self->n_intake_sealed
        && self->intake[self->n_intake - 1].ingested_at == ingested_at) {
        self->intake[self->n_intake - 1].n++;
        return;
    }
    if (self->n_intake == self->cap_intake) {
        self->cap_intake = self->cap_intake > 0 ? self->cap_intake * 2 : 256;
        self->intake = esc_realloc(self->intake, self->cap_intake * sizeof(*self->intake));
    }
    self->intake[self->n_intake].ingested_at = ingested_at;
    self->intake[self->n_intake].n = 1;
    self->n_intake++;
}

/* After a successful flush: the posts remembered when it froze its batch (n_intake_sealed) are
 * in Redis now. A flush that failed half way keeps them, so their latency then counts until the
 * flush that completes them. */
static void
s_intake_observe(agg_t *self)
{
    int64_t now = esc_now_ms();
    size_t i;

    for (i = 0; i < self->n_intake_sealed; i++) {
        int64_t ms = now - self->intake[i].ingested_at;

        /* clocks of two hosts: a post "from the future" counts as 0 s */
        esc_metric_observe_n(self->m_intake_s, ms > 0 ? (double)ms / 1000.0 : 0.0,
                             self->intake[i].n);
    }
    if (self->n_intake > self->n_intake_sealed && self->n_intake_sealed > 0) {
        memmove(self->intake, self->intake + self->n_intake_sealed,
                (self->n_intake - self->n_intake_sealed) * sizeof(*self->intake));
    }
    self->n_intake -= self->n_intake_sealed;
    self->n_intake_sealed = 0;
    if (self->n_intake == 0 && self->cap_intake > 65536) {
        /* a backlog made it large: give the memory back */
        ESC_FREE(self->intake);
        self->cap_intake = 0;
    }
}

/* Handles one frame: decode, count, feed the spike detector. Bad input is logged and skipped.
 * The post is decoded into self->pbuf (nothing allocated per message once it has grown): its
 * strings are borrowed until the next message, and everything that keeps one copies it. */
static void
s_on_message(agg_t *self, const void *buf, size_t len)
{
    struct esc_post p;
    struct esc_error err;
    enum esc_msg_type type = ESC_MSG_UNKNOWN;
    const char *keys[ESC_POST_LIST_MAX];
    uint32_t key_hash[ESC_POST_LIST_MAX];
    size_t key_len[ESC_POST_LIST_MAX];
    size_t idx[ESC_POST_LIST_MAX];
    size_t n_keys = 0;
    size_t n_idx = 0;
    size_t i;
    size_t j;
    char q[300];

    memset(&err, 0, sizeof(err));
    if (esc_post_decode_into(buf, len, &p, &type, &self->pbuf, &err) == ESC_OK) {
        agg_acks_note(self->acks, p.ack_ref); /* consumed, even if skipped: acked after a flush */
    }
    else {
        type = ESC_MSG_UNKNOWN;
    }
    if (type != ESC_MSG_CLASSIFIED || p.created_at <= 0) {
        const char *reason = err.text;

        if (err.text[0] == '\0') {
            reason = type != ESC_MSG_CLASSIFIED ? "expected a classified message"
                                                : "created_at must be positive Unix ms";
        }
        self->n_invalid++;
        esc_log_every(&self->invalid_every, AGG_WARN_EVERY_MS,
                      "invalid message skipped bytes=%zu reason=%s invalid=%llu", len,
                      esc_log_quote(q, sizeof(q), reason, 200),
                      (unsigned long long)self->n_invalid);
        return;
    }
    for (i = 0; i < p.n_topics; i++) {
        long ti = -1;
        int dup = 0;
        size_t klen;
        uint32_t h = s_topic_hash(p.topics[i], &klen);

        for (j = 0; j < n_keys && !dup; j++) {
            dup = key_hash[j] == h && key_len[j] == klen && memcmp(keys[j], p.topics[i], klen) == 0;
        }
        if (!dup && klen <= AGG_TOPIC_KEY_INLINE) {
            ti = s_topics_find(self, p.topics[i], klen, h); /* found: valid by construction */
        }
        if (dup || (ti < 0 && !s_topic_key_valid(p.topics[i]))) {
            self->n_bad_topics++;
            esc_log_every(&self->topic_every, AGG_WARN_EVERY_MS,
                          "topic key skipped post=%s topic=%s reason=%s",
                          esc_log_quote(q, 100, p.id != NULL ? p.id : "", 80),
                          esc_log_quote(q + 100, 200, p.topics[i], 130),
                          dup ? "repeated" : "malformed");
            continue;
        }
        keys[n_keys] = p.topics[i];
        key_hash[n_keys] = h;
        key_len[n_keys] = klen;
        n_keys++;
        if (ti < 0 && klen > AGG_TOPIC_KEY_INLINE) {
            ti = agg_cfg_topic_lookup(self->ac, p.topics[i]);
        }
        if (ti >= 0) {
            idx[n_idx++] = (size_t)ti;
        }
        else {
            esc_log_debug("topic not in this config, counted without spike detection topic=%s",
                          p.topics[i]);
        }
    }
    if (agg_counters_add(self->counters, &p, keys, n_keys) == 0) {
        /* a re-delivery this process already counted: no second sample for spikes either */
        self->n_dup++;
        return;
    }
    s_intake_note(self, p.ingested_at);
    agg_live_add(self->live, &p, keys, n_keys);
    if (self->ac->max_future_s > 0 && p.created_at > esc_now_ms() + self->ac->max_future_s * 1000) {
        /* one post from the far future would push every topic's watermark past the present */
        self->n_future++;
        esc_log_every(&self->future_every, AGG_WARN_EVERY_MS,
                      "post dated in the future kept out of spike detection post=%s "
                      "ahead_s=%lld future=%llu",
                      esc_log_quote(q, sizeof(q), p.id != NULL ? p.id : "", 80),
                      (long long)((p.created_at - esc_now_ms()) / 1000),
                      (unsigned long long)self->n_future);
    }
    else {
        struct agg_spike_post sp;

        sp.created_at_ms = p.created_at;
        sp.text = p.text;
        sp.author = p.author;
        sp.url = p.url;
        sp.engagement = (p.likes > 0 ? p.likes : 0) + (p.reposts > 0 ? p.reposts : 0)
                        + (p.replies > 0 ? p.replies : 0);
        agg_spikes_add(self->spikes, &sp, idx, n_idx);
        if (p.created_at > self->wm_seen) {
            self->wm_seen = p.created_at;
        }
    }
}

/* Takes about budget messages without blocking: whole frames, each a single message or a batch
 * of them (esc_batch), until budget messages were handled or the counters are full (a frame is
 * always handled whole, so the limit may be passed by one batch). n_in counts messages. */
static void
s_on_input(agg_t *self, int budget)
{
    struct esc_batch_iter it;
    struct esc_error err;
    const void *buf;
    const void *msg;
    size_t len;
    size_t mlen;
    uint64_t invalid;
    int n = 0;
    char q[300];
    esc_rc rc;

    while (n < budget) {
        if (esc_bus_recv(self->in, &buf, &len, ESC_BUS_DONTWAIT) != ESC_OK) {
            break;
        }
        self->last_in_ms = esc_mono_ms();
        memset(&err, 0, sizeof(err));
        if (esc_batch_open(&it, buf, len, &err) != ESC_OK) {
            n++;
            self->n_in++;
            self->n_invalid++;
            esc_log_every(&self->invalid_every, AGG_WARN_EVERY_MS,
                          "invalid batch skipped bytes=%zu reason=%s invalid=%llu", len,
                          esc_log_quote(q, sizeof(q), err.text, 200),
                          (unsigned long long)self->n_invalid);
            continue;
        }
        for (;;) {
            rc = esc_batch_next(&it, &msg, &mlen, &err);
            if (rc == ESC_CLOSED) {
                break;
            }
            n++;
            self->n_in++;
            if (rc != ESC_OK) {
                self->n_invalid++;
                esc_log_every(&self->invalid_every, AGG_WARN_EVERY_MS,
                              "invalid message in a batch skipped reason=%s invalid=%llu",
                              esc_log_quote(q, sizeof(q), err.text, 200),
                              (unsigned long long)self->n_invalid);
                continue;
            }
            invalid = self->n_invalid;
            s_on_message(self, msg, mlen);
            if (self->pbuf.cap + self->pbuf.objs_cap > AGG_PBUF_KEEP) {
                /* after a huge message (unpacked, tens of bytes per byte): not kept */
                esc_post_buf_fini(&self->pbuf);
            }
            if (it.batch && self->n_invalid != invalid) {
                /* s_on_message logged what was wrong; this says where */
                esc_log_debug("invalid message in a batch index=%zu count=%zu", it.index,
                              it.count);
            }
        }
        if (agg_counters_full(self->counters)) {
            break;
        }
    }
}

/* Scale-out: hands the merged minute counts of the topics whose spike lease this process
 * holds to the spike detector (their minutes are external there, see agg_spikes_set_external).
 * A minute is handed over once it ended lateness_s before the newest event time seen two
 * successful flushes ago: by then this process has written its posts of that minute, and the
 * other aggregators, which read the same stream round-robin and flush on the same period, have
 * too. The counts are read back from the minute buckets in Redis. The first time a topic is
 * fed, its minutes start at the oldest bucket of the last AGG_FEED_MAX minutes (the hourly
 * history was seeded at start-up); a lease taken back after a gap first replays the minutes it
 * missed (at most AGG_FEED_MAX, older ones close as 0). Alerts a replay raises again are
 * dropped by their Redis mark (s_alert_claim). This is the one place where merged series reach
 * spikes.c. */
static void
s_spikes_feed_merged(agg_t *self)
{
    size_t i;
    size_t k;

    if (self->leases == NULL || self->wm_prev2 == INT64_MIN) {
        return;
    }
    for (i = 0; i < self->ac->n_topics; i++) {
        int64_t ready;
        int64_t last;
        int64_t from;
        size_t n;
        size_t skip = 0;

        if (!agg_leases_held(self->leases, i)) {
            continue;
        }
        ready = self->wm_prev2 - self->ac->topic_spike[i].lateness_s * 1000;
        ready -= ((ready % 60000) + 60000) % 60000; /* minutes starting before this are over */
        last = agg_spikes_last_closed(self->spikes, i);
        from = last == INT64_MIN ? ready - (int64_t)AGG_FEED_MAX * 60000 : last + 60000;
        if (from >= ready) {
            continue;
        }
        n = (size_t)((ready - from) / 60000);
        if (n > AGG_FEED_MAX) {
            from = ready - (int64_t)AGG_FEED_MAX * 60000; /* older minutes close as 0 */
            n = AGG_FEED_MAX;
        }
        if (agg_leases_read_minutes(self->leases, i, from, n, self->feed) != ESC_OK) {
            return; /* Redis away: the same minutes are read at the next flush */
        }
        if (last == INT64_MIN) {
            /* a new series starts at its first bucket (or at the latest minute) */
            while (skip + 1 < n && self->feed[skip] < 0) {
                skip++;
            }
        }
        for (k = skip; k < n; k++) {
            agg_spikes_minute(self->spikes, i, from + (int64_t)k * 60000,
                              self->feed[k] > 0 ? self->feed[k] : 0);
        }
    }
}

/* With spike leases, an alert id is sent once across all aggregators: the first to set
 * <prefix>:alert:{<team>}:<id> (7 days) sends it. Without leases (one aggregator) always 1. */
static int
s_alert_claim(agg_t *self, const char *team, const char *alert_id)
{
    struct esc_kv_val v;
    char key[400];
    int claim = 1;

    if (self->leases == NULL) {
        return 1;
    }
    snprintf(key, sizeof(key), "%s:alert:{%s}:%s", self->cfg->redis.prefix, team, alert_id);
    if (esc_kv_cmd(self->kv, &v, "SET %s 1 NX EX 604800", key) == ESC_OK) {
        claim = v.type != ESC_KV_NIL;
        esc_kv_val_fini(&v);
    }
    if (!claim) {
        esc_log_info("alert already sent by another aggregator id=%s", alert_id);
    }
    return claim;
}

static void
s_metrics_register(agg_t *self)
{
    self->m_in = esc_metrics_counter("escucha_aggregator_messages_total",
                                     "messages received on bus.aggregate (a batch frame counts "
                                     "its posts)", NULL);
    self->m_invalid = esc_metrics_counter("escucha_aggregator_invalid_total",
                                          "frames skipped: not a valid classified post", NULL);
    self->m_flushed = esc_metrics_counter("escucha_aggregator_flushed_posts_total",
                                          "consumed posts whose batch fully reached Redis", NULL);
    self->m_dup_memory = esc_metrics_counter("escucha_aggregator_duplicates_total",
                                             "re-deliveries not counted again",
                                             "where=\"memory\"");
    self->m_dup_redis = esc_metrics_counter("escucha_aggregator_duplicates_total",
                                            "re-deliveries not counted again",
                                            "where=\"redis\"");
    self->m_failed = esc_metrics_counter("escucha_aggregator_flush_failures_total",
                                         "flushes that could not finish (Redis away)", NULL);
    self->m_rejected = esc_metrics_counter("escucha_aggregator_rejected_total",
                                           "flush calls Redis rejected (their counts dropped)",
                                           NULL);
    self->m_calls = esc_metrics_counter("escucha_aggregator_redis_calls_total",
                                        "script calls sent by the flushes", NULL);
    self->m_top_prunes = esc_metrics_counter(
        "escucha_aggregator_top_prunes_total",
        "times the top lists in memory were pruned to their best members (top_max_entries)",
        NULL);
    self->m_alerts = esc_metrics_counter("escucha_aggregator_alerts_total", "spike alerts raised",
                                         NULL);
    self->m_pending = esc_metrics_gauge("escucha_aggregator_pending_posts",
                                        "posts held in memory until Redis counts them", NULL);
    self->m_paused = esc_metrics_gauge("escucha_aggregator_input_paused",
                                       "1 while input is paused at max_pending_posts", NULL);
    self->m_redis_up = esc_metrics_gauge("escucha_aggregator_redis_up",
                                         "0 while flushes fail", NULL);
    self->m_flush_s = esc_metrics_histogram(
        "escucha_aggregator_flush_duration_seconds",
        "Time of one flush to Redis (every attempt, failed ones included).", NULL,
        s_flush_bounds, ESC_ARRAY_LEN(s_flush_bounds));
    self->m_intake_s = esc_metrics_histogram(
        "escucha_aggregator_intake_latency_seconds",
        "Time from the collector's intake (ingested_at) to the post being counted in Redis.",
        NULL, s_intake_bounds, ESC_ARRAY_LEN(s_intake_bounds));
    self->m_leases = esc_metrics_gauge("escucha_aggregator_spike_leases",
                                       "spike leases held (spike_leases)", NULL);
}

/* Brings the metrics up to date (after each flush: counters grow by what happened since). */
static void
s_metrics_update(agg_t *self)
{
    struct agg_counters_stats st;

    agg_counters_get_stats(self->counters, &st);
    esc_metric_add(self->m_in, self->n_in - self->reported_in);
    esc_metric_add(self->m_invalid, self->n_invalid - self->reported_invalid);
    esc_metric_add(self->m_alerts, self->n_alerts - self->reported_alerts);
    esc_metric_add(self->m_flushed, st.flushed_posts - self->reported.flushed_posts);
    esc_metric_add(self->m_dup_memory, st.dup_memory - self->reported.dup_memory);
    esc_metric_add(self->m_dup_redis, st.dup_redis - self->reported.dup_redis);
    esc_metric_add(self->m_failed, st.failed_flushes - self->reported.failed_flushes);
    esc_metric_add(self->m_rejected, st.lost - self->reported.lost);
    esc_metric_add(self->m_calls, st.calls - self->reported.calls);
    esc_metric_add(self->m_top_prunes, st.top_prunes - self->reported.top_prunes);
    self->reported = st;
    self->reported_in = self->n_in;
    self->reported_invalid = self->n_invalid;
    self->reported_alerts = self->n_alerts;
    esc_metric_set(self->m_pending, (double)agg_counters_pending_posts(self->counters));
    esc_metric_set(self->m_paused, self->paused ? 1.0 : 0.0);
    esc_metric_set(self->m_redis_up, self->redis_down ? 0.0 : 1.0);
    esc_metric_set(self->m_leases,
                   self->leases != NULL ? (double)agg_leases_count(self->leases) : 0.0);
    if (self->paused) {
        esc_metrics_set_health(false, "input paused: pending posts at the limit");
    }
    else if (self->redis_down) {
        esc_metrics_set_health(false, "redis unavailable");
    }
    else {
        esc_metrics_set_health(true, NULL);
    }
}

/* A flush finished (or there was nothing to write): on success every post consumed before its
 * batch was frozen is in Redis, so those are acknowledged and fed to the spike merge. */
static void
s_flush_done(agg_t *self, esc_rc rc)
{
    if (rc == ESC_OK) {
        agg_acks_sealed_flushed(self->acks);
        s_intake_observe(self);
        if (self->redis_down) {
            esc_log_info("redis writable again, pending counters flushed posts=%zu",
                         self->flush_posts);
            self->redis_down = 0;
        }
        self->wm_prev2 = self->wm_prev;
        self->wm_prev = self->wm_sealed;
        s_spikes_feed_merged(self);
        if (self->flush_what == AGG_FLUSH_OLDER) {
            self->flush_due = 1; /* it finished a failed flush: the newer posts go at once */
        }
        return;
    }
    if (!self->redis_down) {
        esc_log_warn("redis unavailable, counters kept in memory and retried every flush "
                     "pending_posts=%zu max_pending_posts=%lld",
                     self->flush_posts, (long long)self->ac->max_pending_posts);
        self->redis_down = 1;
    }
}

/* Hands a flush to the counters' thread; input goes on meanwhile (agg_run collects it). A
 * flush that covers every post consumed so far seals the acknowledgements, intake times and
 * watermark it will confirm. */
static void
s_flush_start(agg_t *self)
{
    enum agg_flush_start what;

    if (agg_counters_flushing(self->counters)) {
        self->flush_due = 1;
        return;
    }
    self->flush_due = 0;
    self->flush_posts = agg_counters_pending_posts(self->counters);
    /* draining: the top lists go now too, not at their usual interval */
    what = agg_counters_flush_start(self->counters, self->drain.draining);
    if (what == AGG_FLUSH_IDLE || what == AGG_FLUSH_ALL) {
        agg_acks_seal(self->acks);
        self->n_intake_sealed = self->n_intake;
        self->wm_sealed = self->wm_seen;
    }
    self->flush_what = what;
    if (what == AGG_FLUSH_IDLE) {
        s_flush_done(self, ESC_OK);
        return;
    }
    self->flush_t0 = esc_metrics_clock();
}

/* Takes the result of a finished flush, if any. */
static void
s_flush_collect(agg_t *self)
{
    esc_rc rc;

    if (!agg_counters_flush_collect(self->counters, &rc)) {
        return;
    }
    esc_metric_observe(self->m_flush_s, esc_metrics_clock() - self->flush_t0);
    s_flush_done(self, rc);
    if (self->flush_due) {
        s_flush_start(self);
    }
    s_metrics_update(self);
}

/* Pauses input at the pending-key limit (ZeroMQ then pushes back on the classifiers) and
 * resumes it once a flush made room. */
/* Overloaded (the flushes slower than the intake): while a flush is with Redis, the next batch
 * takes at most max_open_posts; beyond that the backlog waits on the bus (bounded by bus.hwm)
 * instead of in memory. */
static int
s_flush_backlog(const agg_t *self)
{
    return agg_counters_flushing(self->counters)
           && agg_counters_open_posts(self->counters) >= (size_t)self->ac->max_open_posts;
}

static void
s_check_pause(agg_t *self)
{
    int full = agg_counters_full(self->counters);

    if (full && !self->paused) {
        esc_log_error("pending posts at the limit, input paused until redis takes them "
                      "pending_posts=%zu max_pending_posts=%lld",
                      agg_counters_pending_posts(self->counters),
                      (long long)self->ac->max_pending_posts);
        self->paused = 1;
    }
    else if (!full && self->paused) {
        esc_log_info("input resumed pending_posts=%zu",
                     agg_counters_pending_posts(self->counters));
        self->paused = 0;
    }
}

agg_t *
agg_new(const struct esc_cfg *cfg, const struct agg_cfg *ac, int sig_fd)
{
    agg_t *self = esc_calloc(1, sizeof(*self));
    struct esc_kv_opts kv_opts;
    struct agg_counters_opts co;
    char *password = NULL;
    int send_timeout = AGG_SEND_TIMEOUT_MS;
    size_t i;
    size_t k;

    self->cfg = cfg;
    self->ac = ac;
    self->sig_fd = sig_fd;
    self->topics = esc_calloc(ac->n_topics > 0 ? ac->n_topics : 1, sizeof(*self->topics));
    for (i = 0; i < cfg->n_teams; i++) {
        for (k = 0; k < cfg->teams[i].n_topics; k++) {
            const struct esc_cfg_topic *t = &cfg->teams[i].topics[k];

            self->topics[agg_cfg_topic_index(cfg, t)] = t;
        }
    }
    s_topics_index(self);
    esc_cfg_kv_opts(cfg, &kv_opts, &password);
    self->kv = esc_kv_new(&kv_opts);
    self->kv_flush = esc_kv_new(&kv_opts);
    if (password != NULL) {
        memset(password, 0, strlen(password));
        esc_free(password);
    }
    memset(&co, 0, sizeof(co));
    co.prefix = cfg->redis.prefix;
    co.retention_s[AGG_RES_MINUTE] = ac->retention_minute_s;
    co.retention_s[AGG_RES_HOUR] = ac->retention_hour_s;
    co.retention_s[AGG_RES_DAY] = ac->retention_day_s;
    co.max_pending_posts = (size_t)ac->max_pending_posts;
    co.dedupe_window_s = ac->dedupe_window_s;
    co.recent_ids = (size_t)ac->recent_ids;
    co.top_n = (size_t)ac->top_n;
    co.top_posts_n = (size_t)ac->top_posts_n;
    co.top_flush_max = (size_t)ac->top_flush_max;
    co.top_max_entries = (size_t)ac->top_max_entries;
    co.top_flush_ms = ac->top_flush_ms;
    /* due top lists are written in slices of a quarter of flush_ms, never in one long stop */
    co.top_step_ms = ac->flush_ms / 4 > 10 ? ac->flush_ms / 4 : 10;
    co.counters_only = !ac->top_lists;
    self->counters = agg_counters_new(self->kv, &co);
    if (agg_counters_start_thread(self->counters, self->kv_flush) != ESC_OK) {
        agg_destroy(&self);
        return NULL;
    }
    self->live = agg_live_new(cfg->redis.prefix, cfg->n_teams, ac->n_topics);
    esc_post_buf_init(&self->pbuf);
    self->spikes = agg_spikes_new(ac->topic_spike, ac->n_topics, s_on_spike, self);

    self->in = esc_bus_new(ESC_BUS_PULL, cfg->bus.aggregate, !ac->connect_in, (int)cfg->bus.hwm);
    self->out = esc_bus_new(ESC_BUS_PUSH, cfg->bus.notify, false, (int)cfg->bus.hwm);
    if (cfg->bus.ack[0] != '\0') {
        self->acks = agg_acks_new(cfg->bus.ack, (int)cfg->bus.hwm);
    }
    if (self->in == NULL || self->out == NULL || (cfg->bus.ack[0] != '\0' && self->acks == NULL)) {
        agg_destroy(&self);
        return NULL;
    }
    /* a blocking send that can never return would also block SIGTERM handling */
    zmq_setsockopt(esc_bus_zsock(self->out), ZMQ_SNDTIMEO, &send_timeout, sizeof(send_timeout));
    esc_kv_connect(self->kv); /* early, for the log line; failures are retried by each flush */
    s_spikes_seed(self);
    self->wm_seen = INT64_MIN;
    self->wm_prev = INT64_MIN;
    self->wm_prev2 = INT64_MIN;
    if (ac->spike_leases) {
        struct agg_leases_opts lo;
        const char **keys = esc_calloc(ac->n_topics > 0 ? ac->n_topics : 1, sizeof(*keys));

        for (i = 0; i < ac->n_topics; i++) {
            keys[i] = self->topics[i]->key;
            agg_spikes_set_external(self->spikes, i, 1);
        }
        lo.prefix = cfg->redis.prefix;
        lo.instance = agg_counters_instance(self->counters);
        lo.lease_ms = ac->lease_ms;
        self->leases = agg_leases_new(self->kv, &lo, keys, ac->n_topics);
        esc_free(keys);
    }
    s_metrics_register(self);
    if (esc_metrics_start("aggregator", ac->metrics_listen) != 0) {
        agg_destroy(&self);
        return NULL;
    }
    esc_log_info("started aggregate=%s notify=%s topics=%zu flush_ms=%lld",
                 esc_bus_endpoint(self->in), esc_bus_endpoint(self->out), ac->n_topics,
                 (long long)ac->flush_ms);
    return self;
}

/* Anything that has not reached Redis or the notify socket yet. */
static int
s_pending(const agg_t *self)
{
    return agg_counters_pending(self->counters) || self->n_parked > 0;
}

int
agg_run(agg_t *self)
{
    struct agg_counters_stats st;
    int input_open = 1;
    int status = 0;

    self->next_flush_ms = esc_mono_ms() + self->ac->flush_ms;
    self->last_in_ms = esc_mono_ms();
    for (;;) {
        zmq_pollitem_t it[3] = {
            { NULL, self->sig_fd, ZMQ_POLLIN, 0 },
            { NULL, agg_counters_flush_fd(self->counters), ZMQ_POLLIN, 0 },
            { esc_bus_zsock(self->in), 0, ZMQ_POLLIN, 0 },
        };
        int read_input = input_open && !self->paused && !s_flush_backlog(self);
        int64_t now = esc_mono_ms();
        int64_t wait = self->next_flush_ms - now;
        int rc;

        if (self->drain.draining || self->n_parked > 0) {
            wait = wait < 50 ? wait : 50;
        }
        rc = zmq_poll(it, read_input ? 3 : 2, wait > 0 ? (long)wait : 0);
        if (rc < 0 && errno != EINTR) {
            esc_log_error("poll failed err=\"%s\"", zmq_strerror(errno));
            status = 1;
            break;
        }
        if (rc > 0 && (it[0].revents & ZMQ_POLLIN)) {
            esc_sig_handle(self->sig_fd, &self->drain, self->ac->grace_ms);
            if (self->drain.reload) {
                esc_log_info("reload is not supported, restart to apply a new config");
                self->drain.reload = 0;
            }
        }
        if (rc > 0 && read_input && (it[2].revents & ZMQ_POLLIN)) {
            s_on_input(self, AGG_BATCH_MAX);
        }
        s_flush_collect(self); /* a flush the counters' thread finished */
        now = esc_mono_ms();
        if (self->drain.draining && input_open
            && (now - self->last_in_ms >= self->ac->drain_quiet_ms
                || now >= self->drain.deadline_ms)) {
            input_open = 0;
            esc_log_info("input closed, final flush pending_posts=%zu",
                         agg_counters_pending_posts(self->counters));
            self->next_flush_ms = now; /* flush right away */
        }
        if (now >= self->next_flush_ms) {
            s_flush_start(self); /* or right after the running one */
            agg_live_flush(self->live, self->kv);
            s_metrics_update(self);
            self->next_flush_ms = now + self->ac->flush_ms;
            if (!input_open) {
                self->next_flush_ms = now + 50; /* draining: retry soon, Redis backoff decides */
            }
        }
        if (self->leases != NULL && input_open) {
            agg_leases_tick(self->leases, esc_mono_ms());
        }
        s_retry_parked(self);
        s_check_pause(self);
        if (!input_open && (!s_pending(self) || now >= self->drain.deadline_ms)) {
            break;
        }
    }
    if (self->leases != NULL) {
        agg_leases_release(self->leases); /* another aggregator takes the topics over at once */
    }
    agg_counters_get_stats(self->counters, &st);
    if (s_pending(self) || st.lost > 0 || self->n_alerts_dropped > 0) {
        esc_log_error("stopping with data that did not reach redis or the notifier "
                      "pending_posts=%zu unsent_alerts=%zu rejected=%llu alerts_dropped=%llu",
                      agg_counters_pending_posts(self->counters), self->n_parked,
                      (unsigned long long)st.lost, (unsigned long long)self->n_alerts_dropped);
        status = 1;
    }
    esc_log_info("stopped in=%llu flushed=%llu invalid=%llu alerts=%llu dups_memory=%llu "
                 "dups_redis=%llu",
                 (unsigned long long)self->n_in, (unsigned long long)st.flushed_posts,
                 (unsigned long long)self->n_invalid, (unsigned long long)self->n_alerts,
                 (unsigned long long)st.dup_memory, (unsigned long long)st.dup_redis);
    return status;
}

void
agg_destroy(agg_t **self_p)
{
    agg_t *self;
    int64_t left = 0;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    if (self->drain.draining) {
        left = self->drain.deadline_ms - esc_mono_ms();
    }
    esc_bus_destroy(&self->in, 0);
    /* alerts already queued get what is left of the grace period to reach the notifier */
    esc_bus_destroy(&self->out, (int)(left > 0 ? left : 0));
    agg_acks_destroy(&self->acks, (int)(left > 0 ? left : 0));
    while (self->n_parked > 0) {
        ESC_FREE(self->parked[self->parked_head].buf);
        self->parked_head = (self->parked_head + 1) % AGG_PARKED_MAX;
        self->n_parked--;
    }
    agg_leases_destroy(&self->leases);
    esc_metrics_shutdown(); /* the metrics above are gone with it */
    agg_spikes_destroy(&self->spikes);
    agg_live_destroy(&self->live);
    esc_post_buf_fini(&self->pbuf);
    agg_counters_destroy(&self->counters); /* stops the flush thread before its connection */
    esc_kv_destroy(&self->kv_flush);
    esc_kv_destroy(&self->kv);
    esc_free(self->intake);
    esc_free(self->topics);
    esc_free(self->topic_mem);
    esc_free(self);
    *self_p = NULL;
}
