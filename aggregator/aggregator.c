#define ESC_LOG_MODULE "aggregator"
/* The aggregator's loop. Classified posts arrive on a PULL socket bound to bus.aggregate (every
 * classifier connects); each is decoded once, counted into the in-memory counter deltas
 * (counters.c) and fed to the event-time spike detector (spikes.c). A timer flushes the deltas
 * to Redis every flush_ms in one pipelined round trip; while Redis is down they are kept and
 * merged, and once max_pending_keys is reached input pauses, so ZeroMQ's high-water marks push
 * back on the classifiers instead of anything being dropped. Alerts go out on a PUSH socket
 * connected to bus.notify (a blocking send bounded by a send timeout; what cannot be queued is
 * parked and retried) and into a capped Redis list per team. Single-threaded: signals arrive
 * through a signalfd polled with the sockets. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_sig.h"
#include "escucha/esc_util.h"

#include "aggregator.h"
#include "counters.h"
#include "spikes.h"

#define AGG_BATCH_MAX 512          /* messages handled per poll wake-up */
#define AGG_PARKED_MAX 256         /* alerts waiting for room on the notify socket */
#define AGG_SEND_TIMEOUT_MS 1000   /* longest a blocking alert send may wait */
#define AGG_ALERTS_KEEP 1000       /* entries kept in <prefix>:alerts:{team} */
#define AGG_WARN_EVERY_MS 5000     /* rate limit of per-message warnings */

struct agg_parked {
    char *buf;   /* encoded alert; owned */
    size_t len;
};

struct agg {
    const struct esc_cfg *cfg;             /* borrowed */
    const struct agg_cfg *ac;              /* borrowed */
    const struct esc_cfg_topic **topics;   /* by flat topic index; the array is owned */
    esc_kv_t *kv;
    agg_counters_t *counters;
    agg_spikes_t *spikes;
    esc_bus_t *in;                         /* PULL, bound to bus.aggregate */
    esc_bus_t *out;                        /* PUSH, connected to bus.notify */
    int sig_fd;
    struct esc_drain drain;

    int64_t next_flush_ms;                 /* monotonic time of the next flush */
    int64_t last_in_ms;                    /* monotonic time of the last message */
    int paused;                            /* input paused: pending keys at max_pending_keys */
    int redis_down;                        /* the last flush failed (logged once) */

    struct agg_parked parked[AGG_PARKED_MAX]; /* FIFO ring */
    size_t parked_head;
    size_t n_parked;

    uint64_t n_in;                         /* frames received */
    uint64_t n_invalid;                    /* frames that were not a valid classified post */
    uint64_t n_bad_topics;                 /* malformed or repeated topic keys skipped */
    uint64_t n_future;                     /* posts kept out of spikes: dated in the future */
    uint64_t n_alerts;                     /* alerts raised */
    uint64_t n_alerts_dropped;             /* alerts that never reached the notify socket */
    struct esc_log_every invalid_every;
    struct esc_log_every topic_every;
    struct esc_log_every future_every;
};

/* "team/topic" with two valid identifiers. */
static int
s_topic_key_valid(const char *key)
{
    char part[64];
    const char *slash = strchr(key, '/');
    size_t n;

    if (slash == NULL) {
        return 0;
    }
    n = (size_t)(slash - key);
    if (n == 0 || n >= sizeof(part)) {
        return 0;
    }
    memcpy(part, key, n);
    part[n] = '\0';
    return esc_ident_valid(part) && esc_ident_valid(slash + 1);
}

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

/* Spike callback: builds the alert, sends it and queues it for the team's Redis list. */
static void
s_on_spike(void *arg, const struct agg_spike *s)
{
    agg_t *self = arg;
    const struct esc_cfg_topic *t = self->topics[s->topic];
    const struct esc_cfg_team *team = &self->cfg->teams[t->team_index];
    struct esc_alert a;
    char id[200];
    char key[160];
    char ws[32];
    char *buf;
    char *json;
    size_t len = 0;
    size_t i;
    esc_rc rc;

    esc_alert_init(&a);
    snprintf(id, sizeof(id), "%s/%lld", t->key, (long long)s->window_start_ms);
    a.id = esc_strdup(id);
    a.team = esc_strdup(team->id);
    a.topic = esc_strdup(t->id);
    a.topic_name = esc_strdup(t->name);
    a.kind = esc_strdup("spike");
    a.window_start = s->window_start_ms;
    a.window_end = s->window_end_ms;
    a.observed = s->observed;
    a.expected = s->expected;
    a.score = s->score;
    a.ts = esc_now_ms();
    for (i = 0; i < s->n_samples; i++) {
        esc_strlist_push(&a.samples, &a.n_samples, s->samples[i]);
    }
    esc_log_info("spike topic=%s observed=%lld expected=%.2f score=%.2f window_start=%s "
                 "window_min=%lld",
                 t->key, (long long)s->observed, s->expected, s->score,
                 esc_time_fmt_iso8601(s->window_start_ms, ws, sizeof(ws)),
                 (long long)((s->window_end_ms - s->window_start_ms) / 60000));
    self->n_alerts++;

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

/* Handles one frame: decode, count, feed the spike detector. Bad input is logged and skipped. */
static void
s_on_message(agg_t *self, const void *buf, size_t len)
{
    struct esc_post p;
    struct esc_error err;
    enum esc_msg_type type = ESC_MSG_UNKNOWN;
    const char *keys[ESC_POST_LIST_MAX];
    size_t idx[ESC_POST_LIST_MAX];
    size_t n_keys = 0;
    size_t n_idx = 0;
    size_t i;
    size_t j;
    char q[300];

    memset(&err, 0, sizeof(err));
    if (esc_post_decode(buf, len, &p, &type, &err) != ESC_OK || type != ESC_MSG_CLASSIFIED
        || p.created_at <= 0) {
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
        esc_post_fini(&p);
        return;
    }
    for (i = 0; i < p.n_topics; i++) {
        const struct esc_cfg_topic *t;
        int dup = 0;

        for (j = 0; j < n_keys && !dup; j++) {
            dup = strcmp(keys[j], p.topics[i]) == 0;
        }
        if (dup || !s_topic_key_valid(p.topics[i])) {
            self->n_bad_topics++;
            esc_log_every(&self->topic_every, AGG_WARN_EVERY_MS,
                          "topic key skipped post=%s topic=%s reason=%s",
                          esc_log_quote(q, 100, p.id != NULL ? p.id : "", 80),
                          esc_log_quote(q + 100, 200, p.topics[i], 130),
                          dup ? "repeated" : "malformed");
            continue;
        }
        keys[n_keys++] = p.topics[i];
        t = esc_cfg_topic_find(self->cfg, p.topics[i]);
        if (t != NULL) {
            idx[n_idx++] = agg_cfg_topic_index(self->cfg, t);
        }
        else {
            esc_log_debug("topic not in this config, counted without spike detection topic=%s",
                          p.topics[i]);
        }
    }
    agg_counters_add(self->counters, &p, keys, n_keys);
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
        agg_spikes_post(self->spikes, p.created_at, idx, n_idx, p.text);
    }
    esc_post_fini(&p);
}

/* Takes at most budget frames without blocking; stops early when the counters are full. */
static void
s_on_input(agg_t *self, int budget)
{
    const void *buf;
    size_t len;
    int i;

    for (i = 0; i < budget; i++) {
        if (esc_bus_recv(self->in, &buf, &len, ESC_BUS_DONTWAIT) != ESC_OK) {
            break;
        }
        self->n_in++;
        self->last_in_ms = esc_mono_ms();
        s_on_message(self, buf, len);
        if (agg_counters_full(self->counters)) {
            break;
        }
    }
}

static void
s_flush(agg_t *self)
{
    size_t keys = agg_counters_pending_keys(self->counters);

    if (!agg_counters_pending(self->counters)) {
        return;
    }
    if (agg_counters_flush(self->counters) == ESC_OK) {
        if (self->redis_down) {
            esc_log_info("redis writable again, pending counters flushed keys=%zu", keys);
            self->redis_down = 0;
        }
        return;
    }
    if (!self->redis_down) {
        esc_log_warn("redis unavailable, counters kept in memory and retried every flush "
                     "pending_keys=%zu max_pending_keys=%lld",
                     keys, (long long)self->ac->max_pending_keys);
        self->redis_down = 1;
    }
}

/* Pauses input at the pending-key limit (ZeroMQ then pushes back on the classifiers) and
 * resumes it once a flush made room. */
static void
s_check_pause(agg_t *self)
{
    int full = agg_counters_full(self->counters);

    if (full && !self->paused) {
        esc_log_error("pending counter keys at the limit, input paused until redis takes them "
                      "pending_keys=%zu max_pending_keys=%lld",
                      agg_counters_pending_keys(self->counters),
                      (long long)self->ac->max_pending_keys);
        self->paused = 1;
    }
    else if (!full && self->paused) {
        esc_log_info("input resumed pending_keys=%zu", agg_counters_pending_keys(self->counters));
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
    esc_cfg_kv_opts(cfg, &kv_opts, &password);
    self->kv = esc_kv_new(&kv_opts);
    if (password != NULL) {
        memset(password, 0, strlen(password));
        esc_free(password);
    }
    memset(&co, 0, sizeof(co));
    co.prefix = cfg->redis.prefix;
    co.retention_s[AGG_RES_MINUTE] = ac->retention_minute_s;
    co.retention_s[AGG_RES_HOUR] = ac->retention_hour_s;
    co.retention_s[AGG_RES_DAY] = ac->retention_day_s;
    co.max_pending_keys = (size_t)ac->max_pending_keys;
    self->counters = agg_counters_new(self->kv, &co);
    self->spikes = agg_spikes_new(ac->topic_spike, ac->n_topics, s_on_spike, self);

    self->in = esc_bus_new(ESC_BUS_PULL, cfg->bus.aggregate, true, (int)cfg->bus.hwm);
    self->out = esc_bus_new(ESC_BUS_PUSH, cfg->bus.notify, false, (int)cfg->bus.hwm);
    if (self->in == NULL || self->out == NULL) {
        agg_destroy(&self);
        return NULL;
    }
    /* a blocking send that can never return would also block SIGTERM handling */
    zmq_setsockopt(esc_bus_zsock(self->out), ZMQ_SNDTIMEO, &send_timeout, sizeof(send_timeout));
    esc_kv_connect(self->kv); /* early, for the log line; failures are retried by each flush */
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
        zmq_pollitem_t it[2] = {
            { NULL, self->sig_fd, ZMQ_POLLIN, 0 },
            { esc_bus_zsock(self->in), 0, ZMQ_POLLIN, 0 },
        };
        int read_input = input_open && !self->paused;
        int64_t now = esc_mono_ms();
        int64_t wait = self->next_flush_ms - now;
        int rc;

        if (self->drain.draining || self->n_parked > 0) {
            wait = wait < 50 ? wait : 50;
        }
        rc = zmq_poll(it, read_input ? 2 : 1, wait > 0 ? (long)wait : 0);
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
        if (rc > 0 && read_input && (it[1].revents & ZMQ_POLLIN)) {
            s_on_input(self, AGG_BATCH_MAX);
        }
        now = esc_mono_ms();
        if (self->drain.draining && input_open
            && (now - self->last_in_ms >= self->ac->drain_quiet_ms
                || now >= self->drain.deadline_ms)) {
            input_open = 0;
            esc_log_info("input closed, final flush pending_keys=%zu",
                         agg_counters_pending_keys(self->counters));
            self->next_flush_ms = now; /* flush right away */
        }
        if (now >= self->next_flush_ms) {
            s_flush(self);
            self->next_flush_ms = now + self->ac->flush_ms;
            if (!input_open) {
                self->next_flush_ms = now + 50; /* draining: retry soon, Redis backoff decides */
            }
        }
        s_retry_parked(self);
        s_check_pause(self);
        if (!input_open && (!s_pending(self) || now >= self->drain.deadline_ms)) {
            break;
        }
    }
    agg_counters_get_stats(self->counters, &st);
    if (s_pending(self) || st.lost > 0 || self->n_alerts_dropped > 0) {
        esc_log_error("stopping with data that did not reach redis or the notifier "
                      "pending_keys=%zu unsent_alerts=%zu rejected=%llu alerts_dropped=%llu",
                      agg_counters_pending_keys(self->counters), self->n_parked,
                      (unsigned long long)st.lost, (unsigned long long)self->n_alerts_dropped);
        status = 1;
    }
    esc_log_info("stopped in=%llu flushed=%llu invalid=%llu alerts=%llu",
                 (unsigned long long)self->n_in, (unsigned long long)st.flushed_posts,
                 (unsigned long long)self->n_invalid, (unsigned long long)self->n_alerts);
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
    while (self->n_parked > 0) {
        ESC_FREE(self->parked[self->parked_head].buf);
        self->parked_head = (self->parked_head + 1) % AGG_PARKED_MAX;
        self->n_parked--;
    }
    agg_spikes_destroy(&self->spikes);
    agg_counters_destroy(&self->counters);
    esc_kv_destroy(&self->kv);
    esc_free(self->topics);
    esc_free(self);
    *self_p = NULL;
}
