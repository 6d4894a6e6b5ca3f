#define ESC_LOG_MODULE "collector"
/* The collector's host: builds one instance per entry of the config's "sources" array, polls
 * each in bounded batches from a single loop thread, stamps every post it is handed with the
 * instance name (`source`) and the time it was accepted (`ingested_at`), encodes it as a "post"
 * message and pushes it to the broker, several per frame (an esc_batch of up to ESC_BATCH_MSGS
 * posts, sent once full, S_BATCH_MS after its first post, and whenever the loop is about to
 * sleep, so a lone post never waits). Nothing is dropped silently: when the bus is full (high-
 * water mark) the loop waits for room (backpressure) while still reading the signalfd, and a
 * post that cannot be sent before the grace period ends is counted. The first SIGTERM/SIGINT
 * (or, with exit_when_done, the last source finishing) stops intake; main then closes the bus
 * with the remaining grace as linger so queued posts still reach the broker. With a journal
 * (collector.journal_dir, delivery.c) each post is journaled before it is sent and kept until
 * the aggregator acknowledges it; the loop reads the acks and re-sends what is overdue.
 * Platform connectors share two host-owned helpers: one libcurl multi handle (net.c), whose
 * sockets the loop waits on together with the signalfd so every source's HTTP requests run
 * concurrently, and the Redis-backed state (state.c) for cursors and dedupe. */
#include <errno.h>
#include <string.h>

#include <zmq.h>

#include "col_source.h"
#include "collector.h"
#include "delivery.h"
#include "net.h"
#include "state.h"

#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_sig.h"
#include "escucha/esc_util.h"

#define S_IDLE_MS 1000      /* longest sleep between polls when sources have nothing to do */
#define S_BUSY_LOG_MS 10000 /* at most one "bus full" warning per this period */
#define S_BUSY_SLICE_MS 100 /* longest single wait for room on a full bus */
#define S_DELIVERY_TICK_MS 100 /* with a journal: longest sleep between two delivery ticks */
#define S_ACKS_LOG_MS 10000    /* --once with a journal: progress line while acks are due */
#define S_BATCH_MS 5           /* longest a post waits in the batch while sources keep emitting */

const struct esc_cfg_entry col_cfg_map[] = {
    ESC_CFG_INT("grace_ms", "5000", 10, 3600000, struct col_cfg, grace_ms,
                "on stop, how long to keep flushing queued posts to the broker; posts still "
                "queued after that are lost and the exit status is 1"),
    ESC_CFG_BOOL("exit_when_done", "false", struct col_cfg, exit_when_done,
                 "exit once every source is done, after the bus has delivered (same as --once)"),
    ESC_CFG_METRICS(struct col_cfg, metrics_listen),
    ESC_CFG_INT("max_future_s", "600", 0, 31536000, struct col_cfg, max_future_s,
                "a post dated more than this many seconds after it was taken in gets the ingest "
                "time as its event time (logged, counted); 0 = keep every event time"),
    ESC_CFG_STR("journal_dir", "", struct col_cfg, journal_dir,
                "directory of the delivery journal: every post is kept there until the "
                "aggregator acknowledges it (needs bus.ack_pub; docs/delivery.md); \"\" = off"),
    ESC_CFG_INT("journal_max_mb", "1024", 16, 1048576, struct col_cfg, journal_max_mb,
                "bound on the journal's files, MiB: when reached, sources wait for acks"),
    ESC_CFG_INT("journal_max_entries", "2000000", 100, 1000000000, struct col_cfg,
                journal_max_entries,
                "bound on unacknowledged posts (17 bytes of memory each): when reached, sources "
                "wait for acks"),
    ESC_CFG_INT("journal_segment_mb", "16", 1, 1024, struct col_cfg, journal_segment_mb,
                "size of one journal file, MiB (at most a quarter of journal_max_mb); a file is "
                "deleted once all its posts are acknowledged"),
    ESC_CFG_INT("journal_fsync_ms", "1000", -1, 60000, struct col_cfg, journal_fsync_ms,
                "fsync of the journal: -1 never, 0 after every post, N at most N ms after one; "
                "a killed process loses nothing either way, a machine crash up to this window"),
    ESC_CFG_INT("redelivery_ms", "30000", 100, 3600000, struct col_cfg, redelivery_ms,
                "a post not acknowledged this long is sent again once a later post was "
                "acknowledged or no ack came for as long"),
    ESC_CFG_INT("redelivery_max_ms", "300000", 100, 86400000, struct col_cfg, redelivery_max_ms,
                "the redelivery timeout doubles with each re-send of a post, up to this"),
    ESC_CFG_END,
};

/* Keys of a source object that the host reads itself (esc_cfg_load checks them). */
static const char *const s_source_keys[] = { "name", "type", NULL };

struct col {
    const struct esc_cfg *cfg;  /* borrowed */
    const struct col_cfg *ccfg; /* borrowed */
    esc_bus_t *out;             /* PUSH to bus.collect; borrowed */
    int sig_fd;                 /* signalfd; borrowed */
    struct esc_drain drain;
    struct col_source *sources; /* one per config entry; owned */
    esc_metric_t **m_posts;     /* escucha_collector_posts_total per source; borrowed */
    col_net_t *net;             /* HTTP transfers of every source; owned */
    col_state_t *state;         /* cursors and dedupe in Redis; owned */
    col_delivery_t *dlv;        /* journal and acks (docs/delivery.md), NULL when off; owned */
    int64_t acks_log_ms;        /* next "waiting for acknowledgements" line (monotonic) */
    size_t n_sources;
    uint64_t sent;   /* posts handed to the bus */
    uint64_t unsent; /* posts encoded but given up on */
    struct esc_batch batch;                /* encoded posts not sent yet */
    size_t batch_src[ESC_BATCH_MSGS];      /* index of the source of each of them */
    int64_t batch_t0;                      /* when its first post came (monotonic ms) */
    char *enc;                             /* the post being encoded; reused, owned */
    size_t enc_cap;
    int bus_failed;  /* the bus returned a hard error */
    int idle_logged; /* "all sources done" was logged */
    struct esc_log_every busy_log;
};

esc_rc
col_cfg_apply(const struct esc_cfg *cfg, struct col_cfg *out, struct esc_error *err)
{
    if (esc_cfg_section_apply(cfg, "collector", col_cfg_map, NULL, out, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (out->journal_dir[0] != '\0' && cfg->bus.ack_pub[0] == '\0') {
        if (err != NULL) {
            esc_strlcpy(err->source, cfg->path, sizeof(err->source));
        }
        esc_error_set(err, 0, "collector.journal_dir: a journal needs acknowledgements: set "
                              "bus.ack_pub (and bus.ack for the broker and the aggregators)");
        return ESC_INVALID;
    }
    if (out->redelivery_max_ms < out->redelivery_ms) {
        out->redelivery_max_ms = out->redelivery_ms;
    }
    return ESC_OK;
}

/* Maps source i onto out (plugin->cfg_size bytes) and runs the plugin's own checks. */
static esc_rc
s_source_apply(const struct esc_cfg *cfg, size_t i, const struct col_source_plugin *plugin,
               void *out, struct esc_error *err)
{
    char path[48];

    snprintf(path, sizeof(path), "sources.%zu", i);
    if (esc_cfg_section_apply(cfg, path, plugin->cfg_map, s_source_keys, out, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (plugin->validate != NULL && plugin->validate(out, path, err) != ESC_OK) {
        return ESC_INVALID;
    }
    return ESC_OK;
}

esc_rc
col_sources_check(const struct esc_cfg *cfg, struct esc_error *err)
{
    const struct col_source_plugin *const *list = col_source_plugins();
    const struct col_source_plugin *plugin;
    char known[256];
    size_t i;
    size_t k;
    void *buf;
    esc_rc rc;

    for (i = 0; i < cfg->n_sources; i++) {
        plugin = col_source_plugin_find(cfg->sources[i].type);
        if (plugin == NULL) {
            known[0] = '\0';
            for (k = 0; list[k] != NULL; k++) {
                size_t used = strlen(known);

                snprintf(known + used, sizeof(known) - used, "%s%s", k > 0 ? ", " : "",
                         list[k]->name);
            }
            if (err != NULL) {
                esc_strlcpy(err->source, cfg->path, sizeof(err->source));
            }
            esc_error_set(err, 0, "sources.%zu.type: unknown source type '%s' (known: %s)", i,
                          cfg->sources[i].type, known);
            return ESC_INVALID;
        }
        buf = esc_calloc(1, plugin->cfg_size);
        rc = s_source_apply(cfg, i, plugin, buf, err);
        esc_free(buf);
        if (rc != ESC_OK) {
            return ESC_INVALID;
        }
    }
    return ESC_OK;
}

void
col_print_help_config(FILE *f)
{
    const struct col_source_plugin *const *list = col_source_plugins();
    size_t i;

    fprintf(f, "section \"collector\":\n");
    esc_cfg_print_help(f, "collector", col_cfg_map);
    for (i = 0; list[i] != NULL; i++) {
        fprintf(f, "\nsource type \"%s\": %s\n", list[i]->name, list[i]->description);
        fprintf(f, "  an entry of \"sources\": {\"name\": \"<unique name>\", \"type\": \"%s\", "
                   "...}\n", list[i]->name);
        esc_cfg_print_help(f, "sources.N", list[i]->cfg_map);
    }
}

void
col_print_config(FILE *f, const struct esc_cfg *cfg, const struct col_cfg *ccfg)
{
    const struct col_source_plugin *plugin;
    struct esc_error err;
    char path[48];
    size_t i;
    void *buf;

    fprintf(f, "bus.collect = \"%s\"\n", cfg->bus.collect);
    fprintf(f, "bus.hwm = %lld\n", (long long)cfg->bus.hwm);
    esc_cfg_print_values(f, "collector", col_cfg_map, ccfg);
    for (i = 0; i < cfg->n_sources; i++) {
        plugin = col_source_plugin_find(cfg->sources[i].type);
        ESC_ASSERT(plugin != NULL);
        snprintf(path, sizeof(path), "sources.%zu", i);
        fprintf(f, "%s.name = \"%s\"\n", path, cfg->sources[i].name);
        fprintf(f, "%s.type = \"%s\"\n", path, cfg->sources[i].type);
        buf = esc_calloc(1, plugin->cfg_size);
        ESC_ASSERT(s_source_apply(cfg, i, plugin, buf, &err) == ESC_OK);
        esc_cfg_print_values(f, path, plugin->cfg_map, buf);
        esc_free(buf);
    }
}

/* /healthz: 503 while a source has failed for good (init or poll): it will not come back by
 * itself, whatever the other sources do. */
static void
s_health(const col_t *self)
{
    char reason[200];
    const char *first = NULL;
    size_t failed = 0;
    size_t i;

    for (i = 0; i < self->n_sources; i++) {
        if (self->sources[i].failed) {
            first = first != NULL ? first : self->sources[i].name;
            failed++;
        }
    }
    if (failed == 0) {
        esc_metrics_set_health(true, NULL);
        return;
    }
    snprintf(reason, sizeof(reason), "%zu of %zu sources failed (first: %s)", failed,
             self->n_sources, first);
    esc_metrics_set_health(false, reason);
}

col_t *
col_new(const struct esc_cfg *cfg, const struct col_cfg *ccfg, esc_bus_t *out, int sig_fd)
{
    col_t *self = esc_calloc(1, sizeof(*self));
    struct esc_kv_opts kv_opts;
    struct esc_error err;
    char *password = NULL;
    size_t i;
    size_t failed = 0;

    self->cfg = cfg;
    self->ccfg = ccfg;
    self->out = out;
    self->sig_fd = sig_fd;
    esc_batch_init(&self->batch);
    if (ccfg->journal_dir[0] != '\0') {
        memset(&err, 0, sizeof(err));
        self->dlv = col_delivery_new(cfg, ccfg, out, &err);
        if (self->dlv == NULL) {
            esc_log_error("cannot use the delivery journal dir=%s reason=\"%s\"",
                          ccfg->journal_dir, err.text);
            esc_batch_fini(&self->batch);
            esc_free(self);
            return NULL;
        }
    }
    self->net = col_net_new();
    /* Redis is only contacted once a connector needs its cursor or dedupe. */
    esc_cfg_kv_opts(cfg, &kv_opts, &password);
    self->state = col_state_new(&kv_opts, cfg->redis.prefix, COL_STATE_MEM_MAX);
    if (password != NULL) {
        memset(password, 0, strlen(password));
        esc_free(password);
    }
    self->sources = esc_calloc(cfg->n_sources + 1, sizeof(*self->sources));
    self->m_posts = esc_calloc(cfg->n_sources + 1, sizeof(*self->m_posts));
    self->n_sources = cfg->n_sources;
    for (i = 0; i < cfg->n_sources; i++) {
        struct col_source *ins = &self->sources[i];

        esc_strlcpy(ins->name, cfg->sources[i].name, sizeof(ins->name));
        ins->index = i;
        ins->plugin = col_source_plugin_find(cfg->sources[i].type);
        ESC_ASSERT(ins->plugin != NULL);
        self->m_posts[i] = col_source_metric(ins, "escucha_collector_posts_total",
                                             "Posts handed to the bus, per source.");
        ins->cfg = esc_calloc(1, ins->plugin->cfg_size);
        ins->net = self->net;
        ins->state = self->state;
        ins->journaled = self->dlv != NULL;
        /* col_sources_check passed on this very config, so this cannot fail. */
        ESC_ASSERT(s_source_apply(cfg, i, ins->plugin, ins->cfg, &err) == ESC_OK);
        if (ins->plugin->init(ins) != 0) {
            ins->failed = 1;
            ins->done = 1;
            failed++;
            continue;
        }
        ins->started = 1;
    }
    esc_log_info("started sources=%zu failed=%zu endpoint=%s hwm=%lld", self->n_sources, failed,
                 esc_bus_endpoint(out), (long long)cfg->bus.hwm);
    s_health(self);
    return self;
}

void
col_destroy(col_t **self_p)
{
    col_t *self;
    size_t i;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    for (i = 0; i < self->n_sources; i++) {
        if (self->sources[i].started) {
            self->sources[i].plugin->exit(&self->sources[i]);
        }
        esc_free(self->sources[i].cfg);
    }
    esc_free(self->sources);
    esc_free(self->m_posts);
    col_net_destroy(&self->net);
    col_state_destroy(&self->state);
    col_delivery_destroy(&self->dlv);
    /* col_run sends the batch before it returns: nothing is left in it here */
    esc_batch_fini(&self->batch);
    esc_free(self->enc);
    esc_free(self);
    *self_p = NULL;
}

/* Stops intake with the full grace period ahead (used when every source is done). */
static void
s_begin_drain(col_t *self)
{
    self->drain.draining = 1;
    self->drain.deadline_ms = esc_mono_ms() + self->ccfg->grace_ms;
}

static void
s_read_signals(col_t *self)
{
    esc_sig_handle(self->sig_fd, &self->drain, self->ccfg->grace_ms);
    if (self->drain.reload) {
        self->drain.reload = 0;
        esc_log_info("nothing to reload: restart the collector to apply config changes");
    }
}

/* Hands one frame to the bus, waiting while it is full. Returns ESC_OK, ESC_RETRY when the grace
 * period ran out first, or ESC_ERR/ESC_CLOSED when the bus failed. */
static esc_rc
s_send(col_t *self, const void *buf, size_t len)
{
    zmq_pollitem_t it[2];
    long timeout;
    esc_rc rc;
    int n;

    for (;;) {
        rc = esc_bus_send(self->out, buf, len, ESC_BUS_DONTWAIT);
        if (rc == ESC_OK) {
            return ESC_OK;
        }
        if (rc != ESC_RETRY) {
            self->bus_failed = 1;
            return rc;
        }
        esc_log_every(&self->busy_log, S_BUSY_LOG_MS,
                      "bus full, waiting for the broker endpoint=%s hwm=%lld",
                      esc_bus_endpoint(self->out), (long long)self->cfg->bus.hwm);
        timeout = -1;
        if (self->drain.draining) {
            timeout = (long)(self->drain.deadline_ms - esc_mono_ms());
            if (timeout <= 0) {
                return ESC_RETRY;
            }
        }
        /* Short waits, so the other sources' HTTP transfers keep moving meanwhile. */
        if (timeout < 0 || timeout > S_BUSY_SLICE_MS) {
            timeout = S_BUSY_SLICE_MS;
        }
        it[0] = (zmq_pollitem_t){ NULL, self->sig_fd, ZMQ_POLLIN, 0 };
        it[1] = (zmq_pollitem_t){ esc_bus_zsock(self->out), 0, ZMQ_POLLOUT, 0 };
        n = zmq_poll(it, 2, timeout);
        if (col_net_active(self->net) > 0) {
            col_net_wait(self->net, -1, 0);
        }
        if (n < 0 && zmq_errno() != EINTR) {
            esc_log_error("poll failed err=\"%s\"", zmq_strerror(zmq_errno()));
            self->bus_failed = 1;
            return ESC_ERR;
        }
        if (n > 0 && (it[0].revents & ZMQ_POLLIN) != 0) {
            s_read_signals(self);
        }
        if (self->dlv != NULL) {
            col_delivery_tick(self->dlv); /* acks keep coming while the bus is full */
        }
    }
}

/* Sends the batch as one frame (a batch of one as the plain post), waiting while the bus is full.
 * Returns ESC_OK (also when there is nothing to send), or ESC_CLOSED when it could not be sent:
 * its posts are then counted unsent and a stop begins. */
static esc_rc
s_flush(col_t *self)
{
    const void *frame;
    size_t len;
    size_t n = self->batch.n;
    size_t i;
    esc_rc rc;

    frame = esc_batch_frame(&self->batch, &len);
    if (frame == NULL) {
        return ESC_OK;
    }
    rc = s_send(self, frame, len);
    esc_batch_reset(&self->batch);
    if (rc != ESC_OK) {
        /* Encoded but never handed over: counted, reported at exit, never silent. */
        self->unsent += n;
        if (!self->drain.draining) {
            self->drain.draining = 1;
            self->drain.deadline_ms = esc_mono_ms();
        }
        return ESC_CLOSED;
    }
    self->sent += n;
    for (i = 0; i < n; i++) {
        esc_metric_add(self->m_posts[self->batch_src[i]], 1);
    }
    return ESC_OK;
}

/* Adds one encoded post of ins to the batch, sending the batch first when the post does not fit
 * and after when it is full or old enough. Returns ESC_OK, or ESC_CLOSED when a send failed (the
 * post is then counted unsent with the others). */
static esc_rc
s_queue(col_t *self, struct col_source *ins, const void *buf, size_t len)
{
    if (esc_batch_full(&self->batch, len) && s_flush(self) != ESC_OK) {
        self->unsent++;
        return ESC_CLOSED;
    }
    if (self->batch.n == 0) {
        self->batch_t0 = esc_mono_ms();
    }
    self->batch_src[self->batch.n] = ins->index;
    esc_batch_add(&self->batch, buf, len);
    ins->stats.posts++;
    if (self->batch.n >= ESC_BATCH_MSGS || esc_mono_ms() - self->batch_t0 >= S_BATCH_MS) {
        return s_flush(self);
    }
    return ESC_OK;
}

/* Journals one encoded post (docs/delivery.md) before it is sent, waiting while the journal is
 * full: acknowledgements free it, signals are still read. Returns ESC_OK, ESC_CLOSED when a
 * stop began first (the post was not taken), or ESC_ERR when the journal write failed. */
static esc_rc
s_journal(col_t *self, const void *buf, size_t len)
{
    zmq_pollitem_t it[2];
    int n;

    while (!col_delivery_has_room(self->dlv, len)) {
        /* The acks that make room may be waiting for the posts in the batch. */
        if (self->drain.draining || s_flush(self) != ESC_OK) {
            return ESC_CLOSED;
        }
        it[0] = (zmq_pollitem_t){ NULL, self->sig_fd, ZMQ_POLLIN, 0 };
        it[1] = (zmq_pollitem_t){ col_delivery_zsock(self->dlv), 0, ZMQ_POLLIN, 0 };
        n = zmq_poll(it, 2, S_BUSY_SLICE_MS);
        if (col_net_active(self->net) > 0) {
            col_net_wait(self->net, -1, 0);
        }
        if (n < 0 && zmq_errno() != EINTR) {
            esc_log_error("poll failed err=\"%s\"", zmq_strerror(zmq_errno()));
            return ESC_ERR;
        }
        if (n > 0 && (it[0].revents & ZMQ_POLLIN) != 0) {
            s_read_signals(self);
        }
        col_delivery_tick(self->dlv);
    }
    return col_delivery_append(self->dlv, buf, len);
}

/* The col_emit callback handed to every plugin. */
static esc_rc
s_emit(void *arg, struct col_source *ins, struct esc_post *post)
{
    col_t *self = arg;
    char *buf;
    size_t len;
    esc_rc rc;

    if (self->drain.draining) {
        return ESC_CLOSED;
    }
    esc_free(post->source);
    post->source = esc_strdup(ins->name);
    post->ingested_at = esc_now_ms();
    col_post_clamp(ins, post, post->ingested_at, self->ccfg->max_future_s * 1000);
    if (self->dlv != NULL) {
        col_delivery_stamp(self->dlv, post);
    }
    /* Encoded into one buffer kept from post to post: the journal and the batch copy it. */
    len = esc_post_encode_reuse(post, 0, &self->enc, &self->enc_cap);
    buf = self->enc;
    if (len > ESC_MSG_MAX) {
        return ESC_INVALID;
    }
    if (self->dlv != NULL) {
        rc = s_journal(self, buf, len);
        if (rc != ESC_OK) {
            /* not taken: the source keeps it (a jsonl file is read again, a cursor stays) */
            if (rc == ESC_ERR) {
                self->bus_failed = 1;
                s_begin_drain(self);
                self->drain.deadline_ms = esc_mono_ms();
            }
            return ESC_CLOSED;
        }
    }
    rc = s_queue(self, ins, buf, len);
    if (rc != ESC_OK) {
        return ESC_CLOSED;
    }
    return ESC_OK; /* taken; if a stop began meanwhile, the next call says so */
}

/* Polls every source that is due once. Returns how long the loop may sleep (ms, -1 = until a
 * signal) and sets *active to the number of sources not done. */
static long
s_poll_sources(col_t *self, const struct col_emit *em, size_t *active)
{
    long wait = S_IDLE_MS;
    int64_t now;
    size_t i;
    esc_rc rc;

    *active = 0;
    for (i = 0; i < self->n_sources && !self->drain.draining; i++) {
        struct col_source *ins = &self->sources[i];

        if (ins->done) {
            continue;
        }
        now = esc_mono_ms();
        if (ins->wake_ms <= now) {
            ins->wake_ms = 0;
            rc = ins->plugin->poll(ins, em, COL_BATCH_MAX);
            now = esc_mono_ms();
            if (rc == ESC_ERR) {
                esc_log_error("source failed source=%s type=%s posts=%llu", ins->name,
                              ins->plugin->name, (unsigned long long)ins->stats.posts);
                ins->failed = 1;
                ins->done = 1;
                s_health(self);
            }
            else if (rc == ESC_RETRY && ins->wake_ms <= now) {
                ins->wake_ms = now + S_IDLE_MS;
            }
            if (ins->done) {
                continue;
            }
        }
        (*active)++;
        if (ins->wake_ms <= now) {
            wait = 0;
        }
        else if (ins->wake_ms - now < wait) {
            wait = (long)(ins->wake_ms - now);
        }
    }
    return wait;
}

/* With a journal and exit_when_done: true while posts still wait for their acknowledgement
 * (logged every S_ACKS_LOG_MS), so --once ends only once everything was counted. */
static int
s_acks_pending(col_t *self)
{
    uint64_t left;
    int64_t now;

    if (self->dlv == NULL) {
        return 0;
    }
    left = col_delivery_unacked(self->dlv);
    now = esc_mono_ms();
    if (left > 0 && now >= self->acks_log_ms) {
        esc_log_info("all sources done, waiting for acknowledgements unacked=%llu",
                     (unsigned long long)left);
        self->acks_log_ms = now + S_ACKS_LOG_MS;
    }
    return left > 0;
}

esc_rc
col_run(col_t *self)
{
    const struct col_emit em = { s_emit, self };
    size_t active;
    long wait;
    int n;

    for (;;) {
        wait = s_poll_sources(self, &em, &active);
        /* What this round produced leaves before the loop sleeps or stops. */
        (void)s_flush(self);
        if (self->drain.draining) {
            break;
        }
        if (active == 0) {
            if (self->ccfg->exit_when_done && !s_acks_pending(self)) {
                esc_log_info("all sources done, stopping grace_ms=%lld",
                             (long long)self->ccfg->grace_ms);
                s_begin_drain(self);
                break;
            }
            if (!self->idle_logged && !self->ccfg->exit_when_done) {
                esc_log_info("all sources done, waiting for a stop signal");
                self->idle_logged = 1;
            }
            wait = -1;
        }
        if (self->dlv != NULL && (wait < 0 || wait > S_DELIVERY_TICK_MS)) {
            wait = S_DELIVERY_TICK_MS; /* acks and redelivery need a turn now and then */
        }
        /* Sleeps on the signalfd and every source's HTTP sockets at once, then moves the
         * transfers on; a finished request wakes its source for the next turn. */
        n = col_net_wait(self->net, self->sig_fd, wait);
        if (n < 0) {
            return ESC_ERR;
        }
        if (n > 0) {
            s_read_signals(self);
        }
        if (self->dlv != NULL) {
            col_delivery_tick(self->dlv);
        }
        if (self->drain.draining) {
            break;
        }
    }
    (void)s_flush(self);
    return self->bus_failed ? ESC_ERR : ESC_OK;
}

int64_t
col_grace_left_ms(const col_t *self)
{
    int64_t left;

    if (!self->drain.draining) {
        return self->ccfg->grace_ms;
    }
    left = self->drain.deadline_ms - esc_mono_ms();
    return left > 0 ? left : 0;
}

void
col_get_stats(const col_t *self, struct col_stats *out)
{
    size_t i;

    memset(out, 0, sizeof(*out));
    out->sent = self->sent;
    out->unsent = self->unsent;
    out->errors = self->unsent;
    for (i = 0; i < self->n_sources; i++) {
        out->skipped += self->sources[i].stats.skipped;
        out->errors += self->sources[i].stats.errors;
        if (self->sources[i].failed) {
            out->failed++;
        }
    }
}

/* source="<name>",type="<plugin>" of ins into out. */
static void
s_source_labels(const struct col_source *ins, char *out, size_t outsz)
{
    char name_q[160];
    char type_q[80];

    esc_metrics_label_escape(name_q, sizeof(name_q), ins->name);
    esc_metrics_label_escape(type_q, sizeof(type_q), ins->plugin->name);
    snprintf(out, outsz, "source=\"%s\",type=\"%s\"", name_q, type_q);
}

esc_metric_t *
col_source_metric(const struct col_source *ins, const char *name, const char *help)
{
    char labels[300];

    s_source_labels(ins, labels, sizeof(labels));
    return esc_metrics_counter(name, help, labels);
}

esc_metric_t *
col_source_histogram(const struct col_source *ins, const char *name, const char *help,
                     const double *bounds, size_t n_bounds)
{
    char labels[300];

    s_source_labels(ins, labels, sizeof(labels));
    return esc_metrics_histogram(name, help, labels, bounds, n_bounds);
}
