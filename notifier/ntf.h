#ifndef NTF_H
#define NTF_H

/* escucha-notifier internals shared by its modules: the "notifier" config section and the two
 * entry points (the alert daemon and the digest command). Nothing here is used outside
 * notifier/. */

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
    int64_t smtp_timeout_ms;      /* whole SMTP transaction */
    int64_t webhook_timeout_ms;   /* one webhook request, connect included */
    int64_t retry_base_ms;        /* first retry delay; doubles per attempt, with jitter */
    int64_t retry_max;            /* attempts per delivery before it is dead-lettered */
    int64_t grace_ms;             /* shutdown: time allowed for pending deliveries */
    int64_t drain_quiet_ms;       /* shutdown: input closes after this long without alerts */
};

extern const struct esc_cfg_entry ntf_cfg_map[];

/* Maps the "notifier" section of cfg onto out and checks what the table cannot (SMTP URL scheme,
 * no credentials in the URL, From address, team time zones). Returns ESC_OK or ESC_INVALID with
 * err naming the key. */
esc_rc ntf_cfg_load(const struct esc_cfg *cfg, struct ntf_cfg *out, struct esc_error *err);

/* Runs the alert daemon until a stop signal has been handled (sig_fd from esc_sig_init).
 * Returns NTF_EXIT_OK when nothing was left undelivered, NTF_EXIT_FAIL otherwise or when the
 * bus cannot be opened, NTF_EXIT_USAGE when a webhook secret cannot be loaded. */
int ntf_daemon_main(const struct esc_cfg *cfg, const struct ntf_cfg *ncfg, int sig_fd);

/* Builds the weekly digest of team `team_id` for ISO week `period` ("2026-W47", NULL = the
 * last complete week in the team's time zone) and writes it to to_file (when non-NULL), sends
 * it over SMTP (when smtp_url is set) or writes it to the outbox. Prints where it went on
 * stdout. Returns NTF_EXIT_OK, NTF_EXIT_FAIL (Redis or SMTP trouble, unwritable file) or
 * NTF_EXIT_USAGE (unknown team, bad period). */
int ntf_digest_main(const struct esc_cfg *cfg, const struct ntf_cfg *ncfg, const char *team_id,
                    const char *period, const char *to_file);

#endif
