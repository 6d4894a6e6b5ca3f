#ifndef NTF_SINK_H
#define NTF_SINK_H

/* Alert sinks (STYLE §9): a plugin is an immutable type, one per sink_<name>.c, listed only in
 * sinks/registry.c; an instance is one configured receiver (one entry of a team's "webhooks",
 * or a team's alert e-mail). A plugin never talks to the network itself: its prepare callback
 * turns one alert into the request to make (struct ntf_req, xfer.h: an HTTP POST, an SMTP
 * message, or "done" for an outbox file), and the host runs it, decides what the outcome means
 * and keeps the durable queue. The host owns the instances; the plugin owns only ins->ctx.
 * Plugins are called on the notifier's loop thread only. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_rc.h"
#include "ntf.h"
#include "xfer.h"

/* One delivery attempt of one alert to one instance. Everything is borrowed for the call. */
struct ntf_notice {
    const struct esc_alert *alert; /* the decoded alert */
    const char *payload;           /* generic JSON body: the alert plus team_name and deployment */
    size_t payload_len;
    const char *delivery_id;       /* stable id of this delivery (alert x instance), hex */
    const char *deployment;        /* "deployment" of the config */
    int attempt;                   /* 1 for the first attempt */
    int64_t now_ms;                /* wall clock at the attempt, Unix ms */
};

struct ntf_sink;

struct ntf_sink_plugin {
    const char *name;        /* unique, e.g. "webhook"; also the "kind" of a webhooks entry */
    const char *description; /* one line for --help */
    /* Allocates ins->ctx from ins->hook / ins->team / ins->cfg and sets ins->target. Returns 0,
     * or -1 (logged) when the instance cannot work (e.g. its secret cannot be loaded). */
    int (*init)(struct ntf_sink *ins);
    /* Fills req for delivering n (req is initialised by the host, which frees it). Returns
     * ESC_OK, or ESC_INVALID (logged) when the alert cannot be rendered for this receiver
     * (retrying is pointless: the host dead-letters it). */
    esc_rc (*prepare)(struct ntf_sink *ins, const struct ntf_notice *n, struct ntf_req *req);
    /* Frees ins->ctx. Called once after a successful init. */
    void (*exit)(struct ntf_sink *ins);
};

/* An instance, owned by the host. */
struct ntf_sink {
    const struct ntf_sink_plugin *plugin;
    char name[96];                  /* "<kind>.<team>.<n>", shown in logs */
    char id[128];                   /* stable identity in the Redis queue:
                                     * "<team>/<kind>/<hash of the URL>", "<team>/email" */
    char target[160];               /* where it delivers, safe to log (host, no path or query);
                                     * set by init */
    const struct esc_cfg_team *team; /* borrowed: the team whose alerts it receives */
    const struct esc_cfg_hook *hook; /* borrowed: its webhooks entry (NULL for e-mail) */
    const struct ntf_cfg *cfg;      /* borrowed: the notifier section */
    bool notify_ended;              /* also deliver "ended" alerts */
    int64_t cooldown_ms;            /* no new "spike" of the same topic within this, 0 = off */
    void *ctx;                      /* plugin state */
    uint64_t delivered;             /* stats, this process */
    uint64_t retried;
    uint64_t rejected;
    uint64_t dead;
};

/* The registered plugins, NULL-terminated (borrowed, static). */
const struct ntf_sink_plugin *const *ntf_sink_plugins(void);
/* The plugin called name, or NULL. */
const struct ntf_sink_plugin *ntf_sink_plugin_find(const char *name);
/* Checks a NULL-terminated plugin list: every callback and name set, names unique. Returns 0,
 * or -1 after logging what is wrong. */
int ntf_sink_list_check(const struct ntf_sink_plugin *const *list);
/* ntf_sink_list_check of the registry; run at start-up and in a unit test. */
int ntf_sink_registry_check(void);

/* host[:port] of url into out (for logs: never the path or query, which may hold tokens).
 * Returns 0, or -1 when the URL cannot be parsed. */
int ntf_sink_url_target(const char *url, char *out, size_t outsz);

#endif
