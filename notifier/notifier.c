#define ESC_LOG_MODULE "notifier"
/* The alert daemon: PULL-binds bus.notify, decodes each "alert" once, renders its webhook
 * payload once (the alert's JSON plus team_name and deployment) and queues one delivery per
 * sink instance of the alert's team. Deliveries run on the loop thread, one blocking request
 * at a time, each bounded by webhook_timeout_ms and by the shutdown deadline. A delivery that
 * gets ESC_RETRY is re-queued with exponential backoff and jitter (retry_base_ms doubling,
 * delay drawn from [d/2, d]) until retry_max attempts, then dead-lettered (logged, counted);
 * ESC_INVALID drops it at once. The queue is in memory: alerts are few, and a restart loses
 * only what was pending (persistent queueing is issue #6's exactly-once work). The queue is
 * bounded; while it is full the bus is not read and ZeroMQ's high-water mark pushes back.
 * Shutdown (STYLE §8): the first SIGTERM/SIGINT starts the grace period; input stays open
 * until no alert arrived for drain_quiet_ms (alerts still in flight from a draining aggregator
 * are taken), then pending deliveries are retried until none is left or grace_ms is over.
 * Single-threaded. */
#include <errno.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>
#include <zmq.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_sig.h"
#include "escucha/esc_util.h"
#include "ntf.h"
#include "sinks/sink.h"

#define S_BATCH_MAX 64            /* messages read per loop turn */
#define S_DELIVER_BATCH 16        /* delivery attempts per loop turn */
#define S_QUEUE_MAX 10000         /* pending deliveries before input pauses */
#define S_BACKOFF_MAX_MS 300000   /* longest delay between two attempts */
#define S_POLL_MAX_MS 1000

/* One alert, shared by its deliveries. */
struct s_job {
    struct esc_alert alert;
    char *payload;      /* JSON body, owned */
    size_t payload_len;
    int refs;           /* deliveries still pointing here */
};

struct s_delivery {
    struct s_job *job;
    struct ntf_sink *sink; /* borrowed from the notifier */
    int attempts;          /* made so far */
    int64_t due_ms;        /* monotonic time of the next attempt */
};

struct s_stats {
    uint64_t alerts;    /* valid alerts received */
    uint64_t invalid;   /* bus messages skipped (undecodable, not an alert, unknown team) */
    uint64_t delivered; /* deliveries accepted by their receiver */
    uint64_t retried;   /* attempts that failed transiently and were re-queued */
    uint64_t rejected;  /* deliveries the receiver refused (4xx) */
    uint64_t dead;      /* deliveries given up after retry_max attempts */
};

struct s_ntf {
    const struct esc_cfg *cfg;
    const struct ntf_cfg *ncfg;
    int sig_fd;
    esc_bus_t *in;
    struct ntf_sink *sinks;   /* one per team webhook, owned */
    size_t n_sinks;
    size_t n_sinks_init;      /* how many were initialised (and need exit) */
    struct s_delivery *q;     /* pending deliveries, oldest first, owned */
    size_t n_q;
    size_t cap_q;
    struct esc_drain drain;
    int drain_seen;           /* the start of draining has been handled */
    int input_closed;         /* draining: the bus is no longer read */
    int paused;               /* the queue is full: the bus is not read */
    int64_t last_input_ms;    /* monotonic time of the last message (or of the stop signal) */
    struct s_stats st;
    struct esc_log_every bad_every;
};

/* ---- sinks ------------------------------------------------------------------------------ */

static int
s_sinks_init(struct s_ntf *self)
{
    const struct ntf_sink_plugin *webhook = ntf_sink_plugin_find("webhook");
    size_t n = 0;
    size_t t;
    size_t h;

    ESC_ASSERT(webhook != NULL);
    for (t = 0; t < self->cfg->n_teams; t++) {
        n += self->cfg->teams[t].n_hooks;
    }
    self->sinks = esc_calloc(n + 1, sizeof(*self->sinks));
    for (t = 0; t < self->cfg->n_teams; t++) {
        const struct esc_cfg_team *team = &self->cfg->teams[t];

        for (h = 0; h < team->n_hooks; h++) {
            struct ntf_sink *ins = &self->sinks[self->n_sinks];

            ins->plugin = webhook;
            snprintf(ins->name, sizeof(ins->name), "webhook.%s.%zu", team->id, h);
            ins->team = team;
            ins->hook = &team->hooks[h];
            ins->cfg = self->ncfg;
            self->n_sinks++;
            if (ins->plugin->init(ins) != 0) {
                return -1;
            }
            self->n_sinks_init++;
            esc_log_info("sink ready sink=%s host=%s signed=%s", ins->name, ins->target,
                         ins->hook->secret_env[0] != '\0' || ins->hook->secret_file[0] != '\0'
                             ? "yes"
                             : "no");
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

/* ---- queue ------------------------------------------------------------------------------ */

static void
s_job_unref(struct s_job *job)
{
    job->refs--;
    if (job->refs > 0) {
        return;
    }
    esc_alert_fini(&job->alert);
    esc_free(job->payload);
    esc_free(job);
}

static void
s_queue_push(struct s_ntf *self, struct s_job *job, struct ntf_sink *sink, int64_t due)
{
    struct s_delivery *d;

    if (self->n_q == self->cap_q) {
        self->cap_q = self->cap_q == 0 ? 64 : self->cap_q * 2;
        self->q = esc_realloc(self->q, self->cap_q * sizeof(*self->q));
    }
    d = &self->q[self->n_q++];
    d->job = job;
    d->sink = sink;
    d->attempts = 0;
    d->due_ms = due;
    job->refs++;
}

static void
s_queue_remove(struct s_ntf *self, size_t i)
{
    s_job_unref(self->q[i].job);
    memmove(&self->q[i], &self->q[i + 1], (self->n_q - i - 1) * sizeof(*self->q));
    self->n_q--;
}

/* Delay before attempt `attempts + 1`: base * 2^(attempts-1), capped, drawn from [d/2, d]. */
static int64_t
s_backoff_ms(const struct s_ntf *self, int attempts)
{
    int64_t d = self->ncfg->retry_base_ms;
    int i;

    for (i = 1; i < attempts && d < S_BACKOFF_MAX_MS; i++) {
        d *= 2;
    }
    if (d > S_BACKOFF_MAX_MS) {
        d = S_BACKOFF_MAX_MS;
    }
    return d / 2 + (int64_t)randombytes_uniform((uint32_t)(d / 2 + 1));
}

/* ---- input ------------------------------------------------------------------------------ */

/* The webhook body: the alert's JSON plus team_name and deployment. Caller owns. */
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
s_on_message(struct s_ntf *self, const void *buf, size_t len)
{
    const struct esc_cfg_team *team;
    struct esc_error err;
    struct s_job *job;
    char qtopic[96];
    int64_t now = esc_mono_ms();
    size_t i;

    if (esc_msg_peek_type(buf, len) != ESC_MSG_ALERT) {
        s_skip(self, "not an alert message", len);
        return;
    }
    job = esc_calloc(1, sizeof(*job));
    memset(&err, 0, sizeof(err));
    if (esc_alert_decode(buf, len, &job->alert, &err) != ESC_OK) {
        s_skip(self, err.text, len);
        esc_alert_fini(&job->alert);
        esc_free(job);
        return;
    }
    team = esc_cfg_team_find(self->cfg, job->alert.team);
    if (team == NULL) {
        s_skip(self, "alert for an unknown team", len);
        esc_alert_fini(&job->alert);
        esc_free(job);
        return;
    }
    self->st.alerts++;
    job->payload = s_payload(self, team, &job->alert, &job->payload_len);
    for (i = 0; i < self->n_sinks; i++) {
        if (self->sinks[i].team == team) {
            s_queue_push(self, job, &self->sinks[i], now);
        }
    }
    esc_log_info("alert received team=%s topic=%s observed=%lld deliveries=%d", team->id,
                 esc_log_quote(qtopic, sizeof(qtopic), job->alert.topic, 64),
                 (long long)job->alert.observed, job->refs);
    if (job->refs == 0) {
        job->refs = 1;
        s_job_unref(job);
    }
}

static void
s_on_input(struct s_ntf *self, int max)
{
    const void *buf;
    size_t len;
    int i;

    for (i = 0; i < max && self->n_q < S_QUEUE_MAX; i++) {
        esc_rc rc = esc_bus_recv(self->in, &buf, &len, ESC_BUS_DONTWAIT);

        if (rc != ESC_OK) {
            break;
        }
        self->last_input_ms = esc_mono_ms();
        s_on_message(self, buf, len);
    }
}

/* ---- delivery --------------------------------------------------------------------------- */

static void
s_attempt(struct s_ntf *self, size_t i)
{
    struct s_delivery *d = &self->q[i];
    struct ntf_sink *sink = d->sink;
    struct ntf_notice n;
    char qid[160];
    esc_rc rc;

    memset(&n, 0, sizeof(n));
    n.alert = &d->job->alert;
    n.payload = d->job->payload;
    n.payload_len = d->job->payload_len;
    n.attempt = ++d->attempts;
    n.deadline_ms = self->drain.draining ? self->drain.deadline_ms
                                         : esc_mono_ms() + self->ncfg->webhook_timeout_ms;
    rc = sink->plugin->deliver(sink, &n);
    esc_log_quote(qid, sizeof(qid), d->job->alert.id, 120);
    switch (rc) {
    case ESC_OK:
        sink->delivered++;
        self->st.delivered++;
        esc_log_info("delivered alert=%s sink=%s host=%s attempt=%d", qid, sink->name,
                     sink->target, d->attempts);
        s_queue_remove(self, i);
        return;
    case ESC_RETRY:
        if (d->attempts < self->ncfg->retry_max) {
            int64_t delay = s_backoff_ms(self, d->attempts);

            sink->retried++;
            self->st.retried++;
            d->due_ms = esc_mono_ms() + delay;
            esc_log_debug("retry scheduled alert=%s sink=%s attempt=%d delay_ms=%lld", qid,
                          sink->name, d->attempts, (long long)delay);
            return;
        }
        sink->dead++;
        self->st.dead++;
        esc_log_error("dead-lettered alert=%s sink=%s host=%s attempts=%d", qid, sink->name,
                      sink->target, d->attempts);
        s_queue_remove(self, i);
        return;
    case ESC_INVALID:
        sink->rejected++;
        self->st.rejected++;
        esc_log_error("dropped rejected alert=%s sink=%s host=%s", qid, sink->name,
                      sink->target);
        s_queue_remove(self, i);
        return;
    default:
        sink->dead++;
        self->st.dead++;
        esc_log_error("dead-lettered alert=%s sink=%s host=%s rc=%s", qid, sink->name,
                      sink->target, esc_rc_str(rc));
        s_queue_remove(self, i);
        return;
    }
}

static void
s_deliver_due(struct s_ntf *self)
{
    int done = 0;
    size_t i = 0;

    while (i < self->n_q && done < S_DELIVER_BATCH) {
        size_t before = self->n_q;
        int64_t now = esc_mono_ms();

        if (self->drain.draining && now >= self->drain.deadline_ms) {
            return;
        }
        if (self->q[i].due_ms > now) {
            i++;
            continue;
        }
        s_attempt(self, i);
        done++;
        if (self->n_q == before) {
            i++; /* re-queued in place; removed ones shift the next into slot i */
        }
    }
}

/* ---- loop ------------------------------------------------------------------------------- */

static int
s_poll_timeout(const struct s_ntf *self)
{
    int64_t now = esc_mono_ms();
    int64_t t = S_POLL_MAX_MS;
    size_t i;

    for (i = 0; i < self->n_q; i++) {
        if (self->q[i].due_ms - now < t) {
            t = self->q[i].due_ms - now;
        }
    }
    if (self->drain.draining) {
        if (self->drain.deadline_ms - now < t) {
            t = self->drain.deadline_ms - now;
        }
        if (!self->input_closed && self->last_input_ms + self->ncfg->drain_quiet_ms - now < t) {
            t = self->last_input_ms + self->ncfg->drain_quiet_ms - now;
        }
    }
    return t < 0 ? 0 : (int)t;
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
        esc_log_info("input closed pending=%zu", self->n_q);
    }
}

static int
s_run(struct s_ntf *self)
{
    zmq_pollitem_t it[2];

    memset(it, 0, sizeof(it));
    it[0].fd = self->sig_fd;
    it[0].events = ZMQ_POLLIN;
    it[1].socket = esc_bus_zsock(self->in);
    it[1].events = ZMQ_POLLIN;
    for (;;) {
        int reading = !self->input_closed && self->n_q < S_QUEUE_MAX;
        int rc;

        if (!reading && !self->input_closed && !self->paused) {
            self->paused = 1;
            esc_log_warn("delivery queue full, input paused pending=%zu", self->n_q);
        }
        else if (reading && self->paused) {
            self->paused = 0;
            esc_log_info("input resumed pending=%zu", self->n_q);
        }
        rc = zmq_poll(it, reading ? 2 : 1, s_poll_timeout(self));
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
        s_deliver_due(self);
        if (self->drain.draining) {
            s_drain_step(self);
            if (self->input_closed && self->n_q == 0) {
                return 0;
            }
            if (esc_mono_ms() >= self->drain.deadline_ms) {
                return 0;
            }
        }
    }
}

int
ntf_daemon_main(const struct esc_cfg *cfg, const struct ntf_cfg *ncfg, int sig_fd)
{
    struct s_ntf self;
    int code = NTF_EXIT_FAIL;
    size_t undelivered = 0;

    memset(&self, 0, sizeof(self));
    self.cfg = cfg;
    self.ncfg = ncfg;
    self.sig_fd = sig_fd;
    if (s_sinks_init(&self) != 0) {
        s_sinks_exit(&self);
        return NTF_EXIT_USAGE;
    }
    self.in = esc_bus_new(ESC_BUS_PULL, cfg->bus.notify, true, (int)cfg->bus.hwm);
    if (self.in == NULL) {
        s_sinks_exit(&self);
        return NTF_EXIT_FAIL;
    }
    esc_log_info("started endpoint=%s sinks=%zu deployment=%s", esc_bus_endpoint(self.in),
                 self.n_sinks, cfg->deployment);
    if (s_run(&self) == 0) {
        undelivered = self.n_q;
        code = undelivered == 0 ? NTF_EXIT_OK : NTF_EXIT_FAIL;
    }
    else {
        undelivered = self.n_q;
    }
    if (undelivered > 0) {
        esc_log_error("shutting down with undelivered alerts undelivered=%zu", undelivered);
    }
    while (self.n_q > 0) {
        s_queue_remove(&self, self.n_q - 1);
    }
    esc_free(self.q);
    esc_bus_destroy(&self.in, 0);
    s_sinks_exit(&self);
    esc_log_info("stopped alerts=%llu delivered=%llu retried=%llu dead=%llu rejected=%llu "
                 "invalid=%llu undelivered=%zu",
                 (unsigned long long)self.st.alerts, (unsigned long long)self.st.delivered,
                 (unsigned long long)self.st.retried, (unsigned long long)self.st.dead,
                 (unsigned long long)self.st.rejected, (unsigned long long)self.st.invalid,
                 undelivered);
    return code;
}
