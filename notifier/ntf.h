#ifndef NTF_H
#define NTF_H

/* escucha-notifier internals shared by its modules: the "notifier" config section and the two
 * entry points (the alert daemon and the digest command). Nothing here is used outside
 * notifier/. */

#include <stdbool.h>
#include <stdint.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_rc.h"

#define NTF_EXIT_OK 0
#define NTF_EXIT_FAIL 1  /* something was not delivered / could not be sent */
#define NTF_EXIT_USAGE 2 /* bad arguments, invalid config, unknown team */

/* The "notifier" section of the deployment file (mapped by ntf_cfg_map). */
struct ntf_cfg {
    char outbox[512];             /* directory for digests when no SMTP URL is set */
    char from[256];               /* From header of digests: "Name <addr>" or "addr" */
    char smtp_url[512];           /* smtp://host:port or smtps://host:port, "" = outbox */
    char smtp_username[128];      /* SMTP AUTH user, "" = no AUTH */
    char smtp_password_env[128];  /* env var holding the SMTP password */
    char smtp_password_file[256]; /* or a file (mode 600) holding it */
    char smtp_tls[16];            /* "starttls" (required upgrade), "implicit" (smtps://), "none" */
    char smtp_ca_file[256];       /* CA bundle to verify the SMTP server, "" = system store */
    int64_t smtp_timeout_ms;      /* whole SMTP transaction */
    int64_t webhook_timeout_ms;   /* one webhook request, connect included */
    int64_t retry_base_ms;        /* first retry delay; doubles per attempt, with jitter */
    int64_t retry_max;            /* attempts per delivery before it is dead-lettered */
    int64_t retry_max_delay_ms;   /* longest delay between two attempts */
    int64_t grace_ms;             /* shutdown: time allowed for pending deliveries */
    int64_t drain_quiet_ms;       /* shutdown: input closes after this long without alerts */
    /* alert delivery (notifier.c, queue.c) */
    int64_t inflight_max;         /* deliveries in progress at once */
    int64_t inbox_max;            /* alerts held in memory while Redis is unreachable */
    int64_t dedupe_ttl_s;         /* how long "this alert was queued for this hook" is kept */
    int64_t dead_max;             /* entries kept in the dead-letter list */
    int64_t catchup_ms;           /* period of the alert catch-up from the teams' lists, 0 = off */
    int64_t catchup_window_s;     /* the catch-up takes alerts raised this recently */
    char alert_email_teams[512];  /* comma-separated team ids whose alerts are also e-mailed */
    bool alert_email_ended;       /* e-mail "ended" alerts too */
    int64_t alert_email_cooldown_min; /* cooldown of the alert e-mail per topic, 0 = off */
    char metrics_listen[64];      /* /metrics and /healthz address, "" = off */
};

extern const struct esc_cfg_entry ntf_cfg_map[];

/* Per-hook alert options of one "webhooks" entry ("teams.N.webhooks.M"), besides url and
 * secret_env/secret_file which the common loader reads. */
struct ntf_hook_cfg {
    char kind[16];                /* "webhook" (signed JSON), "slack" or "teams" */
    bool notify_ended;            /* also deliver "ended" alerts */
    int64_t cooldown_min;         /* no new spike of the same topic within this, 0 = off */
};

extern const struct esc_cfg_entry ntf_hook_cfg_map[];

/* Maps the options of hook `hook` of team `team` (indexes into cfg->teams / ->hooks) onto out
 * and checks them. Returns ESC_OK or ESC_INVALID with err naming the key. */
esc_rc ntf_hook_cfg_load(const struct esc_cfg *cfg, size_t team, size_t hook,
                         struct ntf_hook_cfg *out, struct esc_error *err);
/* True when team_id is listed in ncfg->alert_email_teams. */
bool ntf_alert_email_team(const struct ntf_cfg *ncfg, const char *team_id);

/* Maps the "notifier" section of cfg onto out and checks what the table cannot (SMTP URL scheme,
 * no credentials in the URL, From address, team time zones). Returns ESC_OK or ESC_INVALID with
 * err naming the key. */
esc_rc ntf_cfg_load(const struct esc_cfg *cfg, struct ntf_cfg *out, struct esc_error *err);

/* Runs the alert daemon (and the digest scheduler) until a stop signal has been handled (sig_fd
 * from esc_sig_init). Returns NTF_EXIT_OK when every alert received was delivered or is safely
 * queued in Redis, NTF_EXIT_FAIL otherwise (alerts held in memory while Redis was down,
 * outcomes not recorded) or when the bus cannot be opened, NTF_EXIT_USAGE when a hook's secret,
 * the SMTP or the Redis password cannot be loaded. */
int ntf_daemon_main(const struct esc_cfg *cfg, const struct ntf_cfg *ncfg, int sig_fd);

/* Builds the digest of team `team_id` for `period` ("2026-11-19" a day, "2026-W47" an ISO
 * week, "2026-11" a month; NULL = the last complete period of the team's schedule, in its time
 * zone). With to_file: writes it there (a preview: no Redis state read or written). Otherwise
 * sends it over SMTP (when smtp_url is set) or writes it to the outbox, exactly once per team
 * and period unless force is set (digest.h). Prints where it went, or that it was already
 * done, on stdout. Returns NTF_EXIT_OK, NTF_EXIT_FAIL (Redis or SMTP trouble, unwritable file,
 * being sent elsewhere) or NTF_EXIT_USAGE (unknown team, bad period, no recipients). */
int ntf_digest_main(const struct esc_cfg *cfg, const struct ntf_cfg *ncfg, const char *team_id,
                    const char *period, const char *to_file, int force);

#endif
