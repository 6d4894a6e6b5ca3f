#ifndef NTF_SINK_H
#define NTF_SINK_H

/* Alert sinks (STYLE §9): a plugin is an immutable type, one per sink_<name>.c, listed only in
 * sinks/registry.c; an instance is one configured receiver (for webhooks: one entry of a team's
 * "webhooks"). The notifier host owns the instances, queues deliveries and retries them; the
 * plugin owns only ins->ctx. Plugins are called on the notifier's loop thread only. */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_rc.h"
#include "ntf.h"

/* One delivery attempt of one alert to one instance. Everything is borrowed for the call. */
struct ntf_notice {
    const struct esc_alert *alert; /* the decoded alert */
    const char *payload;           /* JSON body: the alert plus team_name and deployment */
    size_t payload_len;
    int attempt;                   /* 1 for the first attempt */
    int64_t deadline_ms;           /* monotonic ms by which deliver must have returned */
};

struct ntf_sink;

struct ntf_sink_plugin {
    const char *name;        /* unique, e.g. "webhook" */
    const char *description; /* one line for --help */
    /* Allocates ins->ctx from ins->hook / ins->cfg. Returns 0, or -1 (logged) when the
     * instance cannot work (e.g. its secret cannot be loaded). */
    int (*init)(struct ntf_sink *ins);
    /* Delivers n. ESC_OK = accepted by the receiver; ESC_RETRY = transient (the host backs off
     * and tries again); ESC_INVALID = rejected, retrying is pointless; ESC_ERR = failed. */
    esc_rc (*deliver)(struct ntf_sink *ins, const struct ntf_notice *n);
    /* Frees ins->ctx. Called once after a successful init. */
    void (*exit)(struct ntf_sink *ins);
};

/* An instance, owned by the host. */
struct ntf_sink {
    const struct ntf_sink_plugin *plugin;
    char name[96];                  /* "webhook.<team>.<n>", shown in logs */
    char target[160];               /* where it delivers, safe to log (host, no path or query);
                                     * set by init */
    const struct esc_cfg_team *team; /* borrowed: the team whose alerts it receives */
    const struct esc_cfg_hook *hook; /* borrowed: its webhook entry */
    const struct ntf_cfg *cfg;      /* borrowed: the notifier section */
    void *ctx;                      /* plugin state */
    uint64_t delivered;             /* stats */
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

#endif
