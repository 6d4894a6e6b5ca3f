#define ESC_LOG_MODULE "notifier"
/* The alert daemon: PULL-binds bus.notify, decodes each "alert" once and queues one delivery
 * per receiver of the alert's team (webhook, Slack, Teams hooks and the team's alert e-mail)
 * in Redis (queue.h), then works the queue: it claims due deliveries under a lease, has the
 * sink prepare each request, runs up to inflight_max of them at once (xfer.h, curl multi, in
 * this loop), and records the outcome: ack on success; on a transient failure a retry with
 * exponential backoff and jitter (retry_base_ms doubling, delay drawn from [d/2, d]) until
 * retry_max attempts, then the dead-letter list; a refusal goes to the dead-letter list at
 * once. Because the queue is in Redis, a restart (even kill -9) loses nothing and several
 * notifiers can share it; an alert already queued for a receiver is never queued again, and a
 * cooldown per receiver and topic keeps a flapping spike from paging people again and again.
 * While Redis is unreachable, arriving alerts wait in a bounded in-memory inbox (the bus is
 * not read once it is full: ZeroMQ's high-water mark pushes back on the aggregators).
 * Catch-up (issue #9): at start-up and every catchup_ms the newest entries of each configured
 * team's alert history <prefix>:alerts:{<team>} (written by the aggregator's flush) that were
 * raised within catchup_window_s go to the same inbox, so an alert lost on its way (notifier
 * killed while it sat in the socket or the inbox) is still queued; the queue's marker makes this
 * idempotent, and alerts already handled by this process are skipped in memory.
 * Every 30 s the loop also calls the digest scheduler (ntf_digest_tick, digest.h), which sends
 * the teams' scheduled digests that are due. Shutdown (STYLE §8): input stays open until no
 * alert arrived for drain_quiet_ms, then the inbox is written to Redis, running transfers
 * finish and deliveries due now are made; what waits for a later retry stays queued for the
 * next start. Single-threaded. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <zmq.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_sig.h"
#include "escucha/esc_util.h"
#include "catchup.h"
#include "digest.h"
#include "ntf.h"
#include "queue.h"
#include "sinks/sink.h"
#include "xfer.h"

#define S_BATCH_MAX 64            /* messages read per loop turn */
#define S_POLL_MAX_MS 1000        /* longest sleep: also how often the queue is looked at */
#define S_REDIS_RETRY_MS 200      /* inbox / outcome writes while Redis is unreachable */
#define S_LEASE_MARGIN_MS 2000    /* a claim outlives the longest request by this much */
#define S_CURL_FDS_MAX 64
#define S_DIGEST_TICK_MS 30000    /* how often the digest scheduler looks for due digests */
#define S_DEPTH_EVERY_MS 1000     /* how often the queue depth gauge is read from Redis */
#define S_CATCHUP_RETRY_MS 1000   /* next catch-up when Redis failed or the inbox was full */

/* A decoded alert waiting to be written to the queue (Redis unreachable, or just arrived). */
struct s_inbox_item {
    char *msg;                        /* the alert re-encoded as a bus message, owned */
    size_t msg_len;
    char *id;                         /* owned copies for the queue */
    char *kind;
    char topic_key[200];              /* "team/topic" */
    const struct esc_cfg_team *team;  /* borrowed */
    size_t next_sink;                 /* sinks before this one are done */
    int catchup;                      /* read from the team's list, not from the bus */
    int added;                        /* deliveries queued for it */
    int failed;                       /* a push got an error reply: not remembered as handled */
};

enum s_flight_state {
    S_FLIGHT_RUNNING = 0, /* the transfer is running */
    S_FLIGHT_SETTLING,    /* finished; its outcome still has to be written to Redis */
};

enum s_settle_op {
    S_OP_ACK = 0,
    S_OP_RETRY,
    S_OP_DEAD,
};

/* A claimed delivery, from the claim until its outcome is in Redis. */
struct s_flight {
    struct ntf_qitem item;
    struct esc_alert alert;           /* decoded from item.alert */
    int have_alert;
    struct ntf_sink *sink;            /* borrowed; NULL when the hook is no longer configured */
    enum s_flight_state state;
    enum s_settle_op op;
    int64_t retry_at;                 /* S_OP_RETRY: wall-clock due time */
    char reason[200];                 /* last error (retry) or why it is dead */
    const char *counter;              /* S_OP_DEAD: "dead" or "rejected" */
    int64_t started_ms;               /* monotonic: the transfer started */
    struct s_flight *next;
};

struct s_stats {
    uint64_t alerts;      /* valid alerts received */
    uint64_t invalid;     /* bus messages skipped (undecodable, not an alert, unknown team) */
    uint64_t enqueued;    /* deliveries queued */
    uint64_t duplicate;   /* deliveries not queued: already queued once */
    uint64_t cooldown;    /* deliveries not queued: the topic is cooling down for that hook */
    uint64_t delivered;   /* deliveries accepted by their receiver */
    uint64_t retried;     /* attempts that failed transiently and were rescheduled */
    uint64_t rejected;    /* deliveries the receiver refused (dead-lettered at once) */
    uint64_t dead;        /* deliveries given up after retry_max attempts */
    uint64_t lost_claims; /* outcomes not recorded because the claim had expired */
    uint64_t inbox_full;  /* times the inbox bound paused the input */
    uint64_t catchup_queued; /* catch-up: alerts of a team's list queued (they had been lost) */
    uint64_t catchup_known;  /* catch-up: alerts of a team's list that were queued already */
    uint64_t catchup_bad;    /* catch-up: malformed or foreign list entries skipped */
};

/* Prometheus counters mirroring s_stats (docs/notifier.md, "Metrics"). */
static const struct {
    const char *name;
    const char *help;
    size_t off;
    const char *labels;   /* NULL = none */
} s_metric_defs[] = {
    { "escucha_notifier_alerts_total", "Alerts received from the bus.",
      offsetof(struct s_stats, alerts), NULL },
    { "escucha_notifier_invalid_total", "Bus messages skipped as invalid.",
      offsetof(struct s_stats, invalid), NULL },
    { "escucha_notifier_enqueued_total", "Deliveries queued in Redis.",
      offsetof(struct s_stats, enqueued), NULL },
    { "escucha_notifier_duplicate_total", "Deliveries not queued: already queued once.",
      offsetof(struct s_stats, duplicate), NULL },
    { "escucha_notifier_cooldown_total", "Deliveries held back by the cooldown.",
      offsetof(struct s_stats, cooldown), NULL },
    { "escucha_notifier_delivered_total", "Deliveries accepted by their receiver.",
      offsetof(struct s_stats, delivered), NULL },
    { "escucha_notifier_retried_total", "Delivery attempts that failed and were rescheduled.",
      offsetof(struct s_stats, retried), NULL },
    { "escucha_notifier_rejected_total", "Deliveries refused by the receiver (dead-lettered).",
      offsetof(struct s_stats, rejected), NULL },
    { "escucha_notifier_dead_total", "Deliveries dead-lettered after retry_max attempts.",
      offsetof(struct s_stats, dead), NULL },
    { "escucha_notifier_inbox_full_total", "Times the in-memory inbox paused the input.",
      offsetof(struct s_stats, inbox_full), NULL },
    { "escucha_notifier_catchup_total", "Entries of the teams' alert lists handled by the "
      "catch-up, by outcome.", offsetof(struct s_stats, catchup_queued), "outcome=\"queued\"" },
    { "escucha_notifier_catchup_total", "Entries of the teams' alert lists handled by the "
      "catch-up, by outcome.", offsetof(struct s_stats, catchup_known), "outcome=\"known\"" },
    { "escucha_notifier_catchup_total", "Entries of the teams' alert lists handled by the "
      "catch-up, by outcome.", offsetof(struct s_stats, catchup_bad), "outcome=\"bad\"" },
};

struct s_ntf {
    const struct esc_cfg *cfg;
    const struct ntf_cfg *ncfg;
    int sig_fd;
    esc_bus_t *in;
    esc_kv_t *kv;
    ntf_queue_t *queue;
    ntf_xfer_t *xfer;
    ntf_digester_t *digester;     /* scheduled digests (digest.c) */
    int64_t next_digest_ms;       /* monotonic: next ntf_digest_tick */
    int64_t next_catchup_ms;      /* monotonic: next catch-up from the teams' alert lists */
    ntf_seen_t *seen;             /* alerts queued (or known queued) and bad entries seen */
    char owner[96];               /* instance id in claims */
    struct ntf_sink *sinks;       /* owned */
    size_t n_sinks;
    size_t n_sinks_init;          /* how many were initialised (and need exit) */
    struct s_inbox_item *inbox;   /* FIFO, owned */
    size_t n_inbox;
    size_t cap_inbox;
    struct s_flight *flights;     /* claimed deliveries, owned */
    size_t n_flights;
    int64_t next_claim_ms;        /* monotonic: when to look at the queue again */
    int64_t redis_retry_ms;       /* monotonic: when to retry inbox/outcome writes */
    int nothing_due;              /* the last claim found nothing due */
    uint64_t inbox_full_unflushed; /* inbox_full events not yet counted in Redis */
    struct esc_drain drain;
    int drain_seen;               /* the start of draining has been handled */
    int input_closed;             /* draining: the bus is no longer read */
    int paused;                   /* the inbox is full: the bus is not read */
    int aborted;                  /* transfers cut at the shutdown deadline */
    int64_t last_input_ms;        /* monotonic time of the last message (or of the stop signal) */
    struct s_stats st;
    struct s_stats st_synced;     /* the values last added to the metrics */
    esc_metric_t *metrics[ESC_ARRAY_LEN(s_metric_defs)];
    esc_metric_t **m_deliver_s;   /* delivery duration per sink (index of sinks); owned array */
    int redis_down;               /* the last Redis operation failed; a claim clears it */
    int health;                   /* what /healthz says: 0 ok, 1 redis down, 2 input paused */
    esc_metric_t *m_queue_depth;  /* escucha_notifier_queue_depth */
    int64_t next_depth_ms;        /* monotonic: next read of the queue depth */
    struct esc_log_every bad_every;
    struct esc_log_every redis_every;
};

static void s_metrics_sync(struct s_ntf *self);

/* Bounds of escucha_notifier_delivery_duration_seconds. */
static const double s_deliver_bounds[] = { 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                           1,    2.5,   5,    10,  30,   60 };

/* ---- sinks ------------------------------------------------------------------------------ */

static int
s_sink_add(struct s_ntf *self, const struct esc_cfg_team *team, const char *kind,
           const struct esc_cfg_hook *hook, size_t index, bool notify_ended, int64_t cool_min)
{
    struct ntf_sink *ins = &self->sinks[self->n_sinks];
    unsigned char h[8];
    char hex[sizeof(h) * 2 + 1];

    ins->plugin = ntf_sink_plugin_find(kind);
    ESC_ASSERT(ins->plugin != NULL); /* kinds were checked with the config */
    ins->team = team;
    ins->hook = hook;
    ins->cfg = self->ncfg;
    ins->notify_ended = notify_ended;
    ins->cooldown_ms = cool_min * 60000;
    if (hook != NULL) {
        snprintf(ins->name, sizeof(ins->name), "%s.%s.%zu", kind, team->id, index);
        /* the identity in Redis follows the URL, not the position in the list */
        crypto_generichash(h, sizeof(h), (const unsigned char *)hook->url, strlen(hook->url),
                           NULL, 0);
        sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
        snprintf(ins->id, sizeof(ins->id), "%s/%s/%s", team->id, kind, hex);
    }
    else {
        snprintf(ins->name, sizeof(ins->name), "%s.%s", kind, team->id);
        snprintf(ins->id, sizeof(ins->id), "%s/%s", team->id, kind);
    }
    self->n_sinks++;
    if (ins->plugin->init(ins) != 0) {
        return -1;
    }
    self->n_sinks_init++;
    esc_log_info("sink ready sink=%s host=%s signed=%s ended=%s cooldown_min=%lld", ins->name,
                 ins->target,
                 hook != NULL && strcmp(kind, "webhook") == 0
                         && (hook->secret_env[0] != '\0' || hook->secret_file[0] != '\0')
                     ? "yes"
                     : "no",
                 notify_ended ? "yes" : "no", (long long)cool_min);
    return 0;
}

static int
s_sinks_init(struct s_ntf *self)
{
    struct ntf_hook_cfg hc;
    struct esc_error err;
    size_t n = 0;
    size_t t;
    size_t h;

    for (t = 0; t < self->cfg->n_teams; t++) {
        n += self->cfg->teams[t].n_hooks + 1;
    }
    self->sinks = esc_calloc(n + 1, sizeof(*self->sinks));
    for (t = 0; t < self->cfg->n_teams; t++) {
        const struct esc_cfg_team *team = &self->cfg->teams[t];

        for (h = 0; h < team->n_hooks; h++) {
            memset(&err, 0, sizeof(err));
            if (ntf_hook_cfg_load(self->cfg, t, h, &hc, &err) != ESC_OK) {
                esc_log_error("hook options invalid team=%s index=%zu err=\"%s\"", team->id, h,
                              err.text);
                return -1;
            }
            if (s_sink_add(self, team, hc.kind, &team->hooks[h], h, hc.notify_ended,
                           hc.cooldown_min) != 0) {
                return -1;
            }
        }
        if (ntf_alert_email_team(self->ncfg, team->id)
            && s_sink_add(self, team, "email", NULL, 0, self->ncfg->alert_email_ended,
                          self->ncfg->alert_email_cooldown_min) != 0) {
            return -1;
        }
    }
    return 0;
}

static void
s_sinks_exit(struct s_ntf *self)
{
    size_t i;

    for (i = 0; i < self->n_sinks_init; i++) {
        self->sinks[i].plugin->exit(&self->sinks[i]);
    }
    ESC_FREE(self->sinks);
    self->n_sinks = 0;
    self->n_sinks_init = 0;
}

static struct ntf_sink *
s_sink_find(struct s_ntf *self, const char *id)
{
    size_t i;

    for (i = 0; i < self->n_sinks; i++) {
        if (strcmp(self->sinks[i].id, id) == 0) {
            return &self->sinks[i];
        }
    }
    return NULL;
}

/* ---- input ------------------------------------------------------------------------------ */

static void
s_skip(struct s_ntf *self, const char *reason, size_t len)
{
    char q[200];

    self->st.invalid++;
    esc_log_every(&self->bad_every, 10000, "skipped bus message reason=%s bytes=%zu invalid=%llu",
                  esc_log_quote(q, sizeof(q), reason, 150), len,
                  (unsigned long long)self->st.invalid);
}

static void
s_inbox_pop(struct s_ntf *self)
{
    struct s_inbox_item *it = &self->inbox[0];

    esc_free(it->msg);
    esc_free(it->id);
    esc_free(it->kind);
    memmove(&self->inbox[0], &self->inbox[1], (self->n_inbox - 1) * sizeof(*self->inbox));
    self->n_inbox--;
}

/* Appends alert a (valid, of team `team`, kind spike or ended) to the inbox, from where it is
 * queued for each of the team's receivers. catchup: it was read from the team's list. */
static void
s_inbox_add(struct s_ntf *self, const struct esc_alert *a, const struct esc_cfg_team *team,
            int catchup)
{
    struct s_inbox_item *it;
    char qtopic[96];
    char qid[160];

    if (self->n_inbox == self->cap_inbox) {
        self->cap_inbox = self->cap_inbox == 0 ? 16 : self->cap_inbox * 2;
        self->inbox = esc_realloc(self->inbox, self->cap_inbox * sizeof(*self->inbox));
    }
    it = &self->inbox[self->n_inbox++];
    memset(it, 0, sizeof(*it));
    it->msg = esc_alert_encode(a, &it->msg_len);
    it->id = esc_strdup(a->id);
    it->kind = esc_strdup(a->kind != NULL ? a->kind : "spike");
    snprintf(it->topic_key, sizeof(it->topic_key), "%s/%s", a->team, a->topic);
    it->team = team;
    it->catchup = catchup;
    if (catchup) {
        esc_log_debug("alert from the team's list team=%s alert=%s", team->id,
                      esc_log_quote(qid, sizeof(qid), a->id, 120));
        return;
    }
    esc_log_info("alert received team=%s topic=%s kind=%s alert=%s observed=%lld", team->id,
                 esc_log_quote(qtopic, sizeof(qtopic), a->topic, 64), it->kind,
                 esc_log_quote(qid, sizeof(qid), a->id, 120), (long long)a->observed);
}

static void
s_on_message(struct s_ntf *self, const void *buf, size_t len)
{
    const struct esc_cfg_team *team;
    struct esc_alert a;
    struct esc_error err;

    if (esc_msg_peek_type(buf, len) != ESC_MSG_ALERT) {
        s_skip(self, "not an alert message", len);
        return;
    }
    memset(&err, 0, sizeof(err));
    if (esc_alert_decode(buf, len, &a, &err) != ESC_OK) {
        s_skip(self, err.text, len);
        esc_alert_fini(&a);
        return;
    }
    team = esc_cfg_team_find(self->cfg, a.team);
    if (team == NULL) {
        s_skip(self, "alert for an unknown team", len);
        esc_alert_fini(&a);
        return;
    }
    if (a.kind != NULL && strcmp(a.kind, "spike") != 0 && strcmp(a.kind, "ended") != 0) {
        s_skip(self, "alert of an unknown kind", len);
        esc_alert_fini(&a);
        return;
    }
    self->st.alerts++;
    s_inbox_add(self, &a, team, 0);
    esc_alert_fini(&a);
}

static void
s_on_input(struct s_ntf *self, int max)
{
    const void *buf;
    size_t len;
    int i;

    for (i = 0; i < max && self->n_inbox < (size_t)self->ncfg->inbox_max; i++) {
        esc_rc rc = esc_bus_recv(self->in, &buf, &len, ESC_BUS_DONTWAIT);

        if (rc != ESC_OK) {
            break;
        }
        self->last_input_ms = esc_mono_ms();
        s_on_message(self, buf, len);
    }
}

/* ---- inbox -> queue --------------------------------------------------------------------- */

static void
s_redis_down(struct s_ntf *self, const char *what)
{
    self->redis_down = 1;
    self->redis_retry_ms = esc_mono_ms() + S_REDIS_RETRY_MS;
    esc_log_every(&self->redis_every, 10000,
                  "redis unreachable, will retry what=%s inbox=%zu flights=%zu", what,
                  self->n_inbox, self->n_flights);
}

/* Writes the inbox to the queue, oldest first. Stops at the first Redis failure. */
static void
s_flush_inbox(struct s_ntf *self)
{
    struct ntf_push p;
    enum ntf_push_result res;
    char qid[160];
    esc_rc rc;

    if (self->inbox_full_unflushed > 0
        && ntf_queue_count(self->queue, "inbox_full", (int64_t)self->inbox_full_unflushed)
               == ESC_OK) {
        self->inbox_full_unflushed = 0;
    }
    while (self->n_inbox > 0) {
        struct s_inbox_item *it = &self->inbox[0];

        if (esc_mono_ms() < self->redis_retry_ms) {
            return;
        }
        esc_log_quote(qid, sizeof(qid), it->id, 120);
        for (; it->next_sink < self->n_sinks; it->next_sink++) {
            struct ntf_sink *sink = &self->sinks[it->next_sink];
            int ended = strcmp(it->kind, "ended") == 0;

            if (sink->team != it->team || (ended && !sink->notify_ended)) {
                continue;
            }
            memset(&p, 0, sizeof(p));
            p.hook = sink->id;
            p.kind = it->kind;
            p.alert_id = it->id;
            p.topic_key = it->topic_key;
            p.cooldown_ms = ended ? 0 : sink->cooldown_ms;
            p.alert = it->msg;
            p.alert_len = it->msg_len;
            p.now_ms = esc_now_ms();
            rc = ntf_queue_push(self->queue, &p, &res);
            if (rc == ESC_RETRY) {
                s_redis_down(self, "enqueue");
                return;
            }
            if (rc != ESC_OK) {
                esc_log_error("alert not queued sink=%s alert=%s reason=redis error", sink->name,
                              qid);
                it->failed = 1;
                continue;
            }
            switch (res) {
            case NTF_PUSH_ADDED:
                self->st.enqueued++;
                it->added++;
                esc_log_debug("queued alert=%s sink=%s", qid, sink->name);
                break;
            case NTF_PUSH_DUPLICATE:
                if (it->catchup) {
                    /* the normal case of a catch-up: counted as known below */
                    esc_log_debug("alert from the team's list already queued alert=%s sink=%s",
                                  qid, sink->name);
                    break;
                }
                self->st.duplicate++;
                esc_log_info("alert already queued once, not again alert=%s sink=%s", qid,
                             sink->name);
                break;
            case NTF_PUSH_COOLDOWN:
                self->st.cooldown++;
                esc_log_info("spike within cooldown, not delivered alert=%s sink=%s "
                             "cooldown_min=%lld",
                             qid, sink->name, (long long)(sink->cooldown_ms / 60000));
                break;
            }
        }
        if (!it->failed) {
            ntf_seen_add(self->seen, it->id); /* the catch-up need not look at it again */
        }
        if (it->catchup && it->added > 0) {
            self->st.catchup_queued++;
            esc_log_info("alert recovered from the team's list, queued alert=%s deliveries=%d",
                         qid, it->added);
        }
        else if (it->catchup) {
            self->st.catchup_known++;
        }
        s_inbox_pop(self);
        self->next_claim_ms = 0; /* something may be due now */
    }
}

/* ---- catch-up from the teams' alert lists ----------------------------------------------- */

/* Hands the alerts of team's list raised since since_ms, oldest first, to the inbox, unless
 * this process has handled them already. Returns ESC_OK, ESC_RETRY (Redis unreachable, or the
 * inbox is full: try again soon) or ESC_ERR (error reply, logged). */
static esc_rc
s_catchup_team(struct s_ntf *self, const struct esc_cfg_team *team, int64_t since_ms)
{
    struct esc_kv_val r;
    struct esc_alert a;
    struct esc_error err;
    char key[256];
    char bad[32];
    char qerr[200];
    size_t i;
    esc_rc rc;

    snprintf(key, sizeof(key), "%s:alerts:{%s}", self->cfg->redis.prefix, team->id);
    rc = esc_kv_cmd(self->kv, &r, "LRANGE %s 0 %d", key, NTF_CATCHUP_SCAN - 1);
    if (rc != ESC_OK) {
        return rc == ESC_RETRY ? ESC_RETRY : ESC_ERR;
    }
    if (r.type != ESC_KV_ARRAY) {
        esc_log_error("cannot read alert list key=%s err=%s", key,
                      esc_log_quote(qerr, sizeof(qerr), r.type == ESC_KV_ERROR && r.str != NULL
                                                            ? r.str
                                                            : "not a list",
                                    150));
        esc_kv_val_fini(&r);
        return ESC_ERR;
    }
    rc = ESC_OK;
    for (i = r.n; i > 0; i--) {
        const struct esc_kv_val *v = &r.elem[i - 1];
        enum ntf_catchup_entry e;

        if (self->n_inbox >= (size_t)self->ncfg->inbox_max) {
            rc = ESC_RETRY;
            break;
        }
        memset(&err, 0, sizeof(err));
        if (v->type != ESC_KV_STR) {
            e = NTF_CATCHUP_BAD;
            esc_alert_init(&a);
            esc_strlcpy(err.text, "not a string", sizeof(err.text));
            ntf_catchup_bad_key("", 0, bad);
        }
        else {
            e = ntf_catchup_parse(v->str, v->len, team->id, since_ms, &a, &err);
            ntf_catchup_bad_key(v->str, v->len, bad);
        }
        if (e == NTF_CATCHUP_BAD && !ntf_seen_has(self->seen, bad)) {
            /* logged and counted once per process; it stays in the list until trimmed */
            ntf_seen_add(self->seen, bad);
            self->st.catchup_bad++;
            esc_log_warn("skipped malformed alert list entry key=%s index=%zu reason=%s", key,
                         i - 1, esc_log_quote(qerr, sizeof(qerr), err.text, 150));
        }
        else if (e == NTF_CATCHUP_ALERT && !ntf_seen_has(self->seen, a.id)) {
            s_inbox_add(self, &a, team, 1);
        }
        esc_alert_fini(&a);
    }
    esc_kv_val_fini(&r);
    return rc;
}

/* Runs the catch-up over every team of this notifier's config when it is due. */
static void
s_catchup(struct s_ntf *self)
{
    int64_t now = esc_mono_ms();
    int64_t since = esc_now_ms() - self->ncfg->catchup_window_s * 1000;
    size_t t;

    if (self->ncfg->catchup_ms <= 0 || self->drain.draining || now < self->next_catchup_ms
        || now < self->redis_retry_ms) {
        return;
    }
    self->next_catchup_ms = now + self->ncfg->catchup_ms;
    for (t = 0; t < self->cfg->n_teams; t++) {
        esc_rc rc = s_catchup_team(self, &self->cfg->teams[t], since);

        if (rc == ESC_RETRY) {
            /* Redis unreachable (the queue's operations report it) or the inbox full */
            esc_log_debug("catch-up postponed team=%s inbox=%zu", self->cfg->teams[t].id,
                          self->n_inbox);
            self->next_catchup_ms = now + S_CATCHUP_RETRY_MS;
            return;
        }
    }
}

/* ---- outcomes --------------------------------------------------------------------------- */

/* Delay before attempt `attempts + 1`: base * 2^(attempts-1), capped, drawn from [d/2, d]. */
static int64_t
s_backoff_ms(const struct s_ntf *self, int64_t attempts)
{
    int64_t d = self->ncfg->retry_base_ms;
    int64_t i;

    for (i = 1; i < attempts && d < self->ncfg->retry_max_delay_ms; i++) {
        d *= 2;
    }
    if (d > self->ncfg->retry_max_delay_ms) {
        d = self->ncfg->retry_max_delay_ms;
    }
    return d / 2 + (int64_t)randombytes_uniform((uint32_t)(d / 2 + 1));
}

/* The dead-letter entry of f. Caller owns. */
static char *
s_dead_entry(const struct s_flight *f)
{
    json_t *o = json_object();
    json_t *alert = NULL;
    char *js;
    char *out;
    size_t n;

    json_object_set_new(o, "delivery", json_string(f->item.id));
    json_object_set_new(o, "hook", json_string(f->item.hook));
    json_object_set_new(o, "sink", json_string(f->sink != NULL ? f->sink->name : ""));
    json_object_set_new(o, "attempts", json_integer((json_int_t)f->item.attempts));
    json_object_set_new(o, "reason", json_string(f->reason));
    json_object_set_new(o, "ts", json_integer((json_int_t)esc_now_ms()));
    if (f->have_alert) {
        js = esc_alert_to_json(&f->alert);
        alert = json_loads(js, 0, NULL);
        esc_free(js);
    }
    json_object_set_new(o, "alert", alert != NULL ? alert : json_null());
    n = json_dumpb(o, NULL, 0, JSON_COMPACT);
    ESC_ASSERT(n > 0);
    out = esc_malloc(n + 1);
    ESC_ASSERT(json_dumpb(o, out, n, JSON_COMPACT) == n);
    out[n] = '\0';
    json_decref(o);
    return out;
}

/* Writes f's outcome. Returns 0 when done (f may be freed), -1 to try again later. */
static int
s_settle(struct s_ntf *self, struct s_flight *f)
{
    int owned = 1;
    char *entry;
    esc_rc rc;

    switch (f->op) {
    case S_OP_ACK:
        rc = ntf_queue_ack(self->queue, &f->item, &owned);
        break;
    case S_OP_RETRY:
        rc = ntf_queue_retry(self->queue, &f->item, f->retry_at, f->reason, &owned);
        break;
    case S_OP_DEAD:
    default:
        entry = s_dead_entry(f);
        rc = ntf_queue_dead(self->queue, &f->item, entry, f->counter, &owned);
        esc_free(entry);
        break;
    }
    if (rc == ESC_RETRY) {
        s_redis_down(self, "outcome");
        return -1;
    }
    if (rc == ESC_OK && !owned) {
        self->st.lost_claims++;
        esc_log_warn("claim had expired before the outcome was recorded delivery=%s sink=%s",
                     f->item.id, f->sink != NULL ? f->sink->name : f->item.hook);
    }
    return 0;
}

static void
s_flight_free(struct s_ntf *self, struct s_flight *f)
{
    struct s_flight **pp = &self->flights;

    while (*pp != NULL && *pp != f) {
        pp = &(*pp)->next;
    }
    ESC_ASSERT(*pp == f);
    *pp = f->next;
    self->n_flights--;
    ntf_qitem_fini(&f->item);
    if (f->have_alert) {
        esc_alert_fini(&f->alert);
    }
    esc_free(f);
}

/* Dead-letters f with reason (already logged by the caller). */
static void
s_set_dead(struct s_flight *f, const char *counter, const char *reason)
{
    f->op = S_OP_DEAD;
    f->counter = counter;
    esc_strlcpy(f->reason, reason, sizeof(f->reason));
}

/* Decides what an attempt's outcome means for f and writes it (or keeps it for later). */
static void
s_finish(struct s_ntf *self, struct s_flight *f, esc_rc rc, const char *detail)
{
    struct ntf_sink *sink = f->sink;
    const char *name = sink != NULL ? sink->name : f->item.hook;
    const char *host = sink != NULL ? sink->target : "-";
    char qid[160];
    char why[200];

    esc_log_quote(qid, sizeof(qid), f->have_alert ? f->alert.id : f->item.id, 120);
    switch (rc) {
    case ESC_OK:
        f->op = S_OP_ACK;
        self->st.delivered++;
        sink->delivered++;
        esc_log_info("delivered alert=%s sink=%s host=%s attempt=%lld %s", qid, name, host,
                     (long long)f->item.attempts, detail);
        break;
    case ESC_RETRY:
    case ESC_CLOSED:
        if (rc == ESC_CLOSED) {
            /* cut by the shutdown deadline: hand it back at once, without a backoff */
            f->op = S_OP_RETRY;
            f->retry_at = esc_now_ms();
            esc_strlcpy(f->reason, "interrupted by shutdown", sizeof(f->reason));
            esc_log_warn("delivery interrupted by shutdown alert=%s sink=%s", qid, name);
            break;
        }
        snprintf(why, sizeof(why), "attempt %lld failed: %s", (long long)f->item.attempts,
                 detail);
        if (f->item.attempts < self->ncfg->retry_max) {
            int64_t delay = s_backoff_ms(self, f->item.attempts);

            f->op = S_OP_RETRY;
            f->retry_at = esc_now_ms() + delay;
            esc_strlcpy(f->reason, why, sizeof(f->reason));
            self->st.retried++;
            if (sink != NULL) {
                sink->retried++;
            }
            esc_log_warn("delivery failed, will retry alert=%s sink=%s host=%s attempt=%lld %s "
                         "delay_ms=%lld",
                         qid, name, host, (long long)f->item.attempts, detail, (long long)delay);
            break;
        }
        s_set_dead(f, "dead", why);
        self->st.dead++;
        if (sink != NULL) {
            sink->dead++;
        }
        esc_log_error("dead-lettered alert=%s sink=%s host=%s attempts=%lld %s", qid, name, host,
                      (long long)f->item.attempts, detail);
        break;
    case ESC_INVALID:
        snprintf(why, sizeof(why), "refused: %s", detail);
        s_set_dead(f, "rejected", why);
        self->st.rejected++;
        if (sink != NULL) {
            sink->rejected++;
        }
        esc_log_error("dropped rejected alert=%s sink=%s host=%s %s", qid, name, host, detail);
        break;
    default:
        snprintf(why, sizeof(why), "failed: %s", detail);
        s_set_dead(f, "dead", why);
        self->st.dead++;
        esc_log_error("dead-lettered alert=%s sink=%s host=%s rc=%s %s", qid, name, host,
                      esc_rc_str(rc), detail);
        break;
    }
    f->state = S_FLIGHT_SETTLING;
    if (s_settle(self, f) == 0) {
        s_flight_free(self, f);
    }
    self->next_claim_ms = 0; /* a slot is free */
}

static void
s_on_done(void *ud, void *tag, const struct ntf_xfer_result *res)
{
    struct s_ntf *self = ud;
    struct s_flight *f = tag;

    if (res->rc == ESC_CLOSED) {
        self->aborted++;
    }
    else if (f->sink != NULL) {
        /* every finished attempt, failed ones too; not those cut by the shutdown */
        esc_metric_observe(self->m_deliver_s[f->sink - self->sinks],
                           (double)(esc_mono_ms() - f->started_ms) / 1000.0);
    }
    s_finish(self, f, res->rc, res->detail);
}

/* Retries the outcome writes that Redis did not take. */
static void
s_flush_outcomes(struct s_ntf *self)
{
    struct s_flight *f = self->flights;

    while (f != NULL && esc_mono_ms() >= self->redis_retry_ms) {
        struct s_flight *next = f->next;

        if (f->state == S_FLIGHT_SETTLING && s_settle(self, f) == 0) {
            s_flight_free(self, f);
        }
        f = next;
    }
}

/* ---- claims ----------------------------------------------------------------------------- */

/* The generic webhook body: the alert's JSON plus team_name and deployment. Caller owns. */
static char *
s_payload(const struct s_ntf *self, const struct esc_cfg_team *team, const struct esc_alert *a,
          size_t *len)
{
    char *base = esc_alert_to_json(a);
    json_error_t jerr;
    json_t *o = json_loads(base, 0, &jerr);
    char *out;
    size_t n;

    esc_free(base);
    ESC_ASSERT(o != NULL); /* esc_alert_to_json always produces a valid object */
    json_object_set_new(o, "team_name", json_string(team->name));
    json_object_set_new(o, "deployment", json_string(self->cfg->deployment));
    n = json_dumpb(o, NULL, 0, JSON_COMPACT);
    ESC_ASSERT(n > 0);
    out = esc_malloc(n + 1);
    ESC_ASSERT(json_dumpb(o, out, n, JSON_COMPACT) == n);
    out[n] = '\0';
    json_decref(o);
    *len = n;
    return out;
}

/* Starts one claimed delivery (takes it). */
static void
s_start(struct s_ntf *self, struct ntf_qitem *item)
{
    struct s_flight *f = esc_calloc(1, sizeof(*f));
    struct esc_error err;
    struct ntf_notice n;
    struct ntf_req req;
    char why[200];
    char qerr[140];
    char *payload;
    int64_t deadline;
    esc_rc rc;

    f->item = *item;
    memset(item, 0, sizeof(*item));
    f->next = self->flights;
    self->flights = f;
    self->n_flights++;
    memset(&err, 0, sizeof(err));
    f->sink = s_sink_find(self, f->item.hook);
    if (esc_alert_decode(f->item.alert, f->item.alert_len, &f->alert, &err) != ESC_OK) {
        esc_alert_fini(&f->alert);
        esc_log_quote(qerr, sizeof(qerr), err.text, 120);
        snprintf(why, sizeof(why), "err=\"undecodable alert\" reason=%s", qerr);
        s_finish(self, f, ESC_ERR, why);
        return;
    }
    f->have_alert = 1;
    if (f->sink == NULL) {
        s_finish(self, f, ESC_ERR, "err=\"hook no longer configured\"");
        return;
    }
    if (f->item.attempts > self->ncfg->retry_max) {
        /* earlier attempts left no outcome: a notifier stopped (or crashed) during them */
        snprintf(why, sizeof(why), "err=\"no outcome after %lld attempts\"",
                 (long long)(f->item.attempts - 1));
        s_finish(self, f, ESC_ERR, why);
        return;
    }
    memset(&n, 0, sizeof(n));
    payload = s_payload(self, f->sink->team, &f->alert, &n.payload_len);
    n.alert = &f->alert;
    n.payload = payload;
    n.delivery_id = f->item.id;
    n.deployment = self->cfg->deployment;
    n.attempt = (int)f->item.attempts;
    n.now_ms = esc_now_ms();
    ntf_req_init(&req);
    rc = f->sink->plugin->prepare(f->sink, &n, &req);
    esc_free(payload);
    if (rc != ESC_OK) {
        ntf_req_fini(&req);
        s_finish(self, f, ESC_INVALID, "err=\"could not be rendered for this receiver\"");
        return;
    }
    if (req.kind == NTF_REQ_DONE) {
        rc = req.done_rc;
        esc_strlcpy(why, req.done_detail, sizeof(why));
        ntf_req_fini(&req);
        s_finish(self, f, rc, why);
        return;
    }
    deadline = self->drain.draining ? self->drain.deadline_ms
                                    : esc_mono_ms() + req.timeout_ms + 1000;
    f->started_ms = esc_mono_ms();
    if (ntf_xfer_start(self->xfer, &req, f, deadline) != 0) {
        ntf_req_fini(&req);
        s_finish(self, f, ESC_RETRY, "err=\"transfer could not start\"");
        return;
    }
    esc_log_debug("attempt started delivery=%s sink=%s attempt=%lld", f->item.id, f->sink->name,
                  (long long)f->item.attempts);
}

static void
s_claim(struct s_ntf *self)
{
    struct ntf_qitem *items = NULL;
    size_t n = 0;
    size_t room;
    int64_t next_due = -1;
    int64_t now = esc_mono_ms();
    int64_t wall;
    size_t i;
    esc_rc rc;

    if (now < self->next_claim_ms || now < self->redis_retry_ms
        || (self->drain.draining && now >= self->drain.deadline_ms)) {
        return;
    }
    if (self->n_flights >= (size_t)self->ncfg->inflight_max) {
        return;
    }
    room = (size_t)self->ncfg->inflight_max - self->n_flights;
    wall = esc_now_ms();
    rc = ntf_queue_claim(self->queue, wall, room, &items, &n, &next_due);
    if (rc != ESC_OK) {
        if (rc == ESC_RETRY) {
            s_redis_down(self, "claim");
        }
        self->next_claim_ms = now + S_REDIS_RETRY_MS;
        return;
    }
    self->redis_down = 0;
    for (i = 0; i < n; i++) {
        s_start(self, &items[i]);
    }
    esc_free(items);
    self->nothing_due = n == 0 && (next_due < 0 || next_due > wall);
    if (n == room) {
        self->next_claim_ms = now; /* more may be due: look again when a slot frees */
    }
    else if (next_due < 0 || next_due - wall > S_POLL_MAX_MS) {
        self->next_claim_ms = now + S_POLL_MAX_MS; /* other notifiers may queue meanwhile */
    }
    else {
        self->next_claim_ms = now + (next_due > wall ? next_due - wall : 0);
    }
}

/* ---- loop ------------------------------------------------------------------------------- */

static int64_t
s_poll_timeout(const struct s_ntf *self)
{
    int64_t now = esc_mono_ms();
    int64_t t = S_POLL_MAX_MS;

    if (self->n_flights < (size_t)self->ncfg->inflight_max) {
        int64_t at = self->next_claim_ms > self->redis_retry_ms ? self->next_claim_ms
                                                                : self->redis_retry_ms;

        if (at - now < t) {
            t = at - now;
        }
    }
    if (self->n_inbox > 0 && self->redis_retry_ms - now < t) {
        t = self->redis_retry_ms - now;
    }
    if (!self->drain.draining && self->next_digest_ms - now < t) {
        t = self->next_digest_ms - now;
    }
    if (!self->drain.draining && self->ncfg->catchup_ms > 0 && self->next_catchup_ms - now < t) {
        t = self->next_catchup_ms - now;
    }
    if (self->drain.draining) {
        if (self->drain.deadline_ms - now < t) {
            t = self->drain.deadline_ms - now;
        }
        if (!self->input_closed && self->last_input_ms + self->ncfg->drain_quiet_ms - now < t) {
            t = self->last_input_ms + self->ncfg->drain_quiet_ms - now;
        }
    }
    return t < 0 ? 0 : t;
}

static void
s_drain_step(struct s_ntf *self)
{
    int64_t now = esc_mono_ms();

    if (!self->drain_seen) {
        self->drain_seen = 1;
        self->last_input_ms = now;
    }
    if (!self->input_closed
        && (now - self->last_input_ms >= self->ncfg->drain_quiet_ms
            || now >= self->drain.deadline_ms)) {
        self->input_closed = 1;
        self->next_claim_ms = 0;
        esc_log_info("input closed inbox=%zu flights=%zu", self->n_inbox, self->n_flights);
    }
}

/* Draining is over: nothing left in memory and nothing due now. */
static int
s_drained(const struct s_ntf *self)
{
    return self->input_closed && self->n_inbox == 0 && self->n_flights == 0
           && self->nothing_due && self->next_claim_ms > 0;
}

static int
s_run(struct s_ntf *self)
{
    zmq_pollitem_t it[2 + S_CURL_FDS_MAX];
    struct ntf_xfer_fd fds[S_CURL_FDS_MAX];

    for (;;) {
        int reading = !self->input_closed && self->n_inbox < (size_t)self->ncfg->inbox_max;
        int64_t timeout = s_poll_timeout(self);
        size_t n_fds = ntf_xfer_fds(self->xfer, fds, S_CURL_FDS_MAX, &timeout);
        int base = reading ? 2 : 1;
        size_t i;
        int rc;

        if (!reading && !self->input_closed && !self->paused) {
            self->paused = 1;
            self->st.inbox_full++;
            self->inbox_full_unflushed++;
            esc_log_warn("inbox full while redis is unreachable, input paused inbox=%zu",
                         self->n_inbox);
        }
        else if (reading && self->paused) {
            self->paused = 0;
            esc_log_info("input resumed inbox=%zu", self->n_inbox);
        }
        memset(it, 0, sizeof(it));
        it[0].fd = self->sig_fd;
        it[0].events = ZMQ_POLLIN;
        if (reading) {
            it[1].socket = esc_bus_zsock(self->in);
            it[1].events = ZMQ_POLLIN;
        }
        for (i = 0; i < n_fds; i++) {
            it[base + (int)i].fd = fds[i].fd;
            it[base + (int)i].events = (short)((fds[i].want_read ? ZMQ_POLLIN : 0)
                                               | (fds[i].want_write ? ZMQ_POLLOUT : 0));
        }
        s_metrics_sync(self);
        rc = zmq_poll(it, base + (int)n_fds, (long)timeout);
        if (rc < 0 && errno != EINTR) {
            esc_log_error("zmq_poll failed err=\"%s\"", zmq_strerror(errno));
            return -1;
        }
        if (rc > 0 && (it[0].revents & ZMQ_POLLIN)) {
            esc_sig_handle(self->sig_fd, &self->drain, self->ncfg->grace_ms);
            if (self->drain.reload) {
                self->drain.reload = 0; /* nothing to reload: config is read once */
            }
        }
        if (rc > 0 && reading && (it[1].revents & ZMQ_POLLIN)) {
            s_on_input(self, S_BATCH_MAX);
        }
        ntf_xfer_run(self->xfer, s_on_done, self);
        s_flush_outcomes(self);
        s_catchup(self);
        s_flush_inbox(self);
        s_claim(self);
        if (!self->drain.draining && esc_mono_ms() >= self->next_digest_ms) {
            /* blocks while a due digest is built and sent (see digest.h) */
            ntf_digest_tick(self->digester);
            self->next_digest_ms = esc_mono_ms() + S_DIGEST_TICK_MS;
        }
        if (self->drain.draining) {
            s_drain_step(self);
            if (s_drained(self)) {
                return 0;
            }
            if (esc_mono_ms() >= self->drain.deadline_ms) {
                /* give running transfers back to the queue, then write what Redis takes */
                ntf_xfer_abort_all(self->xfer, s_on_done, self);
                s_flush_outcomes(self);
                return 0;
            }
        }
    }
}

static esc_kv_t *
s_kv_open(const struct esc_cfg *cfg)
{
    struct esc_kv_opts opts;
    char *password = NULL;
    esc_kv_t *kv;

    esc_cfg_kv_opts(cfg, &opts, &password);
    if ((cfg->redis.password_env[0] != '\0' || cfg->redis.password_file[0] != '\0')
        && password == NULL) {
        return NULL; /* esc_secret_load said why */
    }
    kv = esc_kv_new(&opts);
    if (password != NULL) {
        sodium_memzero(password, strlen(password));
        esc_free(password);
    }
    return kv;
}

/* "host:pid:random": unique per process, shown in claims. */
static void
s_owner_id(char *out, size_t outsz)
{
    char host[64];
    unsigned char rnd[4];
    char hex[sizeof(rnd) * 2 + 1];

    if (gethostname(host, sizeof(host)) != 0) {
        esc_strlcpy(host, "host", sizeof(host));
    }
    host[sizeof(host) - 1] = '\0';
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
    snprintf(out, outsz, "%s:%ld:%s", host, (long)getpid(), hex);
}

/* Registers the delivery histogram of every sink, labelled sink="<name>",kind="<kind>". */
static void
s_sink_metrics(struct s_ntf *self)
{
    char name_q[200];
    char kind_q[64];
    char labels[300];
    size_t i;

    self->m_deliver_s = esc_calloc(self->n_sinks + 1, sizeof(*self->m_deliver_s));
    for (i = 0; i < self->n_sinks; i++) {
        esc_metrics_label_escape(name_q, sizeof(name_q), self->sinks[i].name);
        esc_metrics_label_escape(kind_q, sizeof(kind_q), self->sinks[i].plugin->name);
        snprintf(labels, sizeof(labels), "sink=\"%s\",kind=\"%s\"", name_q, kind_q);
        self->m_deliver_s[i] = esc_metrics_histogram(
            "escucha_notifier_delivery_duration_seconds",
            "Duration of one delivery attempt (accepted or failed), per sink.", labels,
            s_deliver_bounds, ESC_ARRAY_LEN(s_deliver_bounds));
    }
}

/* Adds what the stats gained since the last call to the Prometheus counters, and tells
 * /healthz when Redis or the inbox changed its answer. */
static void
s_metrics_sync(struct s_ntf *self)
{
    int health = self->paused ? 2 : (self->redis_down ? 1 : 0);
    int64_t depth;
    size_t i;

    if (health != self->health) {
        self->health = health;
        esc_metrics_set_health(health == 0, health == 2
                                                ? "input paused: inbox full while redis is "
                                                  "unreachable"
                                                : "redis unreachable");
    }

    /* The backlog of every notifier sharing the queue: one ZCARD a second while Redis is up. */
    if (!self->redis_down && self->m_queue_depth != NULL && esc_mono_ms() >= self->next_depth_ms
        && ntf_queue_pending(self->queue, &depth) == ESC_OK) {
        esc_metric_set(self->m_queue_depth, (double)depth);
        self->next_depth_ms = esc_mono_ms() + S_DEPTH_EVERY_MS;
    }
    for (i = 0; i < ESC_ARRAY_LEN(s_metric_defs); i++) {
        const uint64_t *now = (const uint64_t *)(const void *)((const char *)&self->st
                                                               + s_metric_defs[i].off);
        uint64_t *was = (uint64_t *)(void *)((char *)&self->st_synced + s_metric_defs[i].off);

        if (*now > *was && self->metrics[i] != NULL) {
            esc_metric_add(self->metrics[i], *now - *was);
            *was = *now;
        }
    }
}

int
ntf_daemon_main(const struct esc_cfg *cfg, const struct ntf_cfg *ncfg, int sig_fd)
{
    struct ntf_queue_opts qo;
    struct s_ntf self;
    int code = NTF_EXIT_FAIL;
    int64_t queued = -1;
    size_t unsettled = 0;
    size_t lost = 0;
    int64_t lease;

    memset(&self, 0, sizeof(self));
    self.cfg = cfg;
    self.ncfg = ncfg;
    self.sig_fd = sig_fd;
    if (s_sinks_init(&self) != 0) {
        s_sinks_exit(&self);
        return NTF_EXIT_USAGE;
    }
    self.kv = s_kv_open(cfg);
    self.digester = self.kv != NULL ? ntf_digester_new(cfg, ncfg) : NULL;
    if (self.digester == NULL) {
        esc_kv_destroy(&self.kv);
        s_sinks_exit(&self);
        return NTF_EXIT_USAGE;
    }
    s_owner_id(self.owner, sizeof(self.owner));
    self.seen = ntf_seen_new(NTF_CATCHUP_SEEN_MAX);
    for (size_t m = 0; m < ESC_ARRAY_LEN(s_metric_defs); m++) {
        self.metrics[m] = esc_metrics_counter(s_metric_defs[m].name, s_metric_defs[m].help,
                                              s_metric_defs[m].labels);
    }
    s_sink_metrics(&self);
    self.m_queue_depth = esc_metrics_gauge("escucha_notifier_queue_depth",
                                           "Deliveries waiting in the Redis queue (due or "
                                           "waiting for a retry), all notifiers.", NULL);
    if (esc_metrics_start("notifier", ncfg->metrics_listen) < 0) {
        esc_metrics_shutdown();
        ESC_FREE(self.m_deliver_s);
        ntf_seen_destroy(&self.seen);
        ntf_digester_destroy(&self.digester);
        esc_kv_destroy(&self.kv);
        s_sinks_exit(&self);
        return NTF_EXIT_USAGE;
    }
    /* a claim must outlive the longest request plus the longest time the loop can be held
     * by a scheduled digest (one SMTP transfer), or another notifier could take it meanwhile */
    lease = ncfg->webhook_timeout_ms;
    if (ncfg->alert_email_teams[0] != '\0' && ncfg->smtp_timeout_ms > lease) {
        lease = ncfg->smtp_timeout_ms;
    }
    lease += ncfg->smtp_timeout_ms;
    memset(&qo, 0, sizeof(qo));
    qo.prefix = cfg->redis.prefix;
    qo.owner = self.owner;
    qo.lease_ms = lease + S_LEASE_MARGIN_MS;
    qo.dedupe_ttl_ms = ncfg->dedupe_ttl_s * 1000;
    qo.dead_max = ncfg->dead_max;
    self.queue = ntf_queue_new(self.kv, &qo);
    self.xfer = ntf_xfer_new();
    self.in = self.xfer != NULL
                  ? esc_bus_new(ESC_BUS_PULL, cfg->bus.notify, true, (int)cfg->bus.hwm)
                  : NULL;
    if (self.in != NULL) {
        if (esc_kv_connect(self.kv) != ESC_OK) {
            esc_log_warn("redis not reachable yet: alerts wait in memory until it is");
        }
        esc_log_info("started endpoint=%s sinks=%zu deployment=%s instance=%s",
                     esc_bus_endpoint(self.in), self.n_sinks, cfg->deployment, self.owner);
        if (s_run(&self) == 0) {
            code = NTF_EXIT_OK;
        }
    }
    lost = self.n_inbox;
    unsettled = self.n_flights;
    if (ntf_queue_pending(self.queue, &queued) != ESC_OK) {
        queued = -1;
    }
    if (lost > 0 || unsettled > 0) {
        esc_log_error("shutting down with alerts not safely queued undelivered=%zu "
                      "unrecorded=%zu interrupted=%d",
                      lost, unsettled, self.aborted);
        code = NTF_EXIT_FAIL;
    }
    if (ntf_digester_unrecorded(self.digester) > 0) {
        code = NTF_EXIT_FAIL; /* ntf_digester_destroy says which */
    }
    ntf_digester_destroy(&self.digester);
    while (self.n_inbox > 0) {
        s_inbox_pop(&self);
    }
    esc_free(self.inbox);
    while (self.flights != NULL) {
        s_flight_free(&self, self.flights);
    }
    ntf_xfer_destroy(&self.xfer);
    esc_bus_destroy(&self.in, 0);
    ntf_queue_destroy(&self.queue);
    ntf_seen_destroy(&self.seen);
    esc_kv_destroy(&self.kv);
    s_sinks_exit(&self);
    esc_metrics_shutdown();
    ESC_FREE(self.m_deliver_s);
    esc_log_info("stopped alerts=%llu delivered=%llu retried=%llu dead=%llu rejected=%llu "
                 "invalid=%llu enqueued=%llu duplicate=%llu cooldown=%llu recovered=%llu "
                 "queued=%lld undelivered=%zu",
                 (unsigned long long)self.st.alerts, (unsigned long long)self.st.delivered,
                 (unsigned long long)self.st.retried, (unsigned long long)self.st.dead,
                 (unsigned long long)self.st.rejected, (unsigned long long)self.st.invalid,
                 (unsigned long long)self.st.enqueued, (unsigned long long)self.st.duplicate,
                 (unsigned long long)self.st.cooldown, (unsigned long long)self.st.catchup_queued,
                 (long long)queued, lost);
    return code;
}
