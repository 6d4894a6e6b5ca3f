#define ESC_LOG_MODULE "config"
/* The "notifier" section: one table holds every key with its default, bounds and documentation
 * (printed by --help-config), and ntf_cfg_load adds the checks a table cannot express. SMTP
 * credentials never live in the URL: they come from smtp_username + smtp_password_env/_file, so
 * the URL can be printed and logged. Read once at start-up. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_util.h"
#include "mail.h"
#include "ntf.h"
#include "schedule.h"
#include "week.h"

const struct esc_cfg_entry ntf_cfg_map[] = {
    ESC_CFG_STR("outbox", "out/outbox", struct ntf_cfg, outbox,
                "directory where digests are written as <team>-<week>.eml when smtp_url is empty"),
    ESC_CFG_STR("from", "escucha <escucha@localhost>", struct ntf_cfg, from,
                "From of digest mails: \"Name <address>\" or \"address\""),
    ESC_CFG_STR("smtp_url", "", struct ntf_cfg, smtp_url,
                "smtp://host:port (STARTTLS when offered) or smtps://host:port; empty = outbox"),
    ESC_CFG_STR("smtp_username", "", struct ntf_cfg, smtp_username,
                "SMTP AUTH user; empty = no authentication"),
    ESC_CFG_STR("smtp_password_env", "", struct ntf_cfg, smtp_password_env,
                "environment variable that holds the SMTP password"),
    ESC_CFG_STR("smtp_password_file", "", struct ntf_cfg, smtp_password_file,
                "file (mode 600) that holds the SMTP password"),
    ESC_CFG_STR("smtp_tls", "starttls", struct ntf_cfg, smtp_tls,
                "starttls (smtp://, upgrade required), implicit (smtps://) or none (clear text, "
                "no password allowed)"),
    ESC_CFG_STR("smtp_ca_file", "", struct ntf_cfg, smtp_ca_file,
                "CA bundle (PEM) that verifies the SMTP server; empty = the system store"),
    ESC_CFG_INT("smtp_timeout_ms", "30000", 1000, 600000, struct ntf_cfg, smtp_timeout_ms,
                "time allowed for one whole SMTP transaction"),
    ESC_CFG_INT("webhook_timeout_ms", "5000", 100, 120000, struct ntf_cfg, webhook_timeout_ms,
                "time allowed for one webhook request, connect included"),
    ESC_CFG_INT("retry_base_ms", "500", 10, 600000, struct ntf_cfg, retry_base_ms,
                "delay before the first retry of a failed webhook delivery; doubles per attempt"),
    ESC_CFG_INT("retry_max", "20", 1, 100, struct ntf_cfg, retry_max,
                "attempts per webhook delivery before it is dead-lettered"),
    ESC_CFG_INT("retry_max_delay_ms", "300000", 10, 3600000, struct ntf_cfg, retry_max_delay_ms,
                "longest delay between two attempts of a delivery (the doubling stops there)"),
    ESC_CFG_INT("grace_ms", "5000", 0, 600000, struct ntf_cfg, grace_ms,
                "on SIGTERM, time allowed to finish pending deliveries"),
    ESC_CFG_INT("drain_quiet_ms", "300", 0, 60000, struct ntf_cfg, drain_quiet_ms,
                "on SIGTERM, keep reading alerts until none arrived for this long"),
    ESC_CFG_INT("inflight_max", "8", 1, 64, struct ntf_cfg, inflight_max,
                "alert deliveries in progress at once"),
    ESC_CFG_INT("inbox_max", "10000", 1, 1000000, struct ntf_cfg, inbox_max,
                "alerts held in memory while Redis is unreachable; input pauses at the bound"),
    ESC_CFG_INT("dedupe_ttl_s", "604800", 60, 31536000, struct ntf_cfg, dedupe_ttl_s,
                "how long an alert queued for a hook is remembered, so it is never queued "
                "for that hook again"),
    ESC_CFG_INT("dead_max", "10000", 1, 1000000, struct ntf_cfg, dead_max,
                "entries kept in the dead-letter list <prefix>:ntf:{q}:dead"),
    ESC_CFG_INT("catchup_ms", "30000", 0, 86400000, struct ntf_cfg, catchup_ms,
                "at start-up and then this often, alerts of the last catchup_window_s found in "
                "the teams' lists <prefix>:alerts:{<team>} are queued when they are not yet "
                "(an alert lost on its way from the aggregator); 0 = off"),
    ESC_CFG_INT("catchup_window_s", "86400", 60, 31536000, struct ntf_cfg, catchup_window_s,
                "the catch-up takes alerts raised this recently; at most dedupe_ttl_s"),
    ESC_CFG_STR("alert_email_teams", "", struct ntf_cfg, alert_email_teams,
                "comma-separated team ids whose alerts are also e-mailed to the team's "
                "recipients (over smtp_url, or as .eml files in the outbox)"),
    ESC_CFG_BOOL("alert_email_ended", "false", struct ntf_cfg, alert_email_ended,
                 "also e-mail \"ended\" alerts (the topic is back to normal)"),
    ESC_CFG_INT("alert_email_cooldown_min", "60", 0, 10080, struct ntf_cfg,
                alert_email_cooldown_min,
                "after a spike of a topic was queued for e-mail, new spikes of that topic are "
                "not e-mailed for this long; 0 = off"),
    ESC_CFG_METRICS(struct ntf_cfg, metrics_listen),
    ESC_CFG_END,
};

/* Options of one webhooks entry, besides what the common loader reads. */
const struct esc_cfg_entry ntf_hook_cfg_map[] = {
    ESC_CFG_STR("kind", "webhook", struct ntf_hook_cfg, kind,
                "webhook (signed JSON), slack (incoming webhook) or teams (Adaptive Card)"),
    ESC_CFG_BOOL("notify_ended", "false", struct ntf_hook_cfg, notify_ended,
                 "also deliver \"ended\" alerts (the topic is back to normal)"),
    ESC_CFG_INT("cooldown_min", "60", 0, 10080, struct ntf_hook_cfg, cooldown_min,
                "after a spike of a topic was queued for this hook, new spikes of that topic "
                "are not delivered to it for this long; 0 = off"),
    ESC_CFG_END,
};

esc_rc
ntf_hook_cfg_load(const struct esc_cfg *cfg, size_t team, size_t hook, struct ntf_hook_cfg *out,
                  struct esc_error *err)
{
    static const char *const ignore[] = { "url", "secret_env", "secret_file", NULL };
    const struct esc_cfg_hook *h = &cfg->teams[team].hooks[hook];
    char path[96];

    snprintf(path, sizeof(path), "teams.%zu.webhooks.%zu", team, hook);
    if (esc_cfg_section_apply(cfg, path, ntf_hook_cfg_map, ignore, out, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (strcmp(out->kind, "webhook") != 0 && strcmp(out->kind, "slack") != 0
        && strcmp(out->kind, "teams") != 0) {
        esc_error_set(err, 0, "%s.kind: '%s' is not webhook, slack or teams", path, out->kind);
        return ESC_INVALID;
    }
    if (strcmp(out->kind, "webhook") != 0
        && (h->secret_env[0] != '\0' || h->secret_file[0] != '\0')) {
        esc_error_set(err, 0, "%s: secret_env/secret_file sign generic webhooks only; a %s "
                              "URL carries its own secret", path, out->kind);
        return ESC_INVALID;
    }
    return ESC_OK;
}

bool
ntf_alert_email_team(const struct ntf_cfg *ncfg, const char *team_id)
{
    const char *p = ncfg->alert_email_teams;
    size_t n = strlen(team_id);

    while (*p != '\0') {
        size_t len;

        p += strspn(p, ", ");
        len = strcspn(p, ", ");
        if (len == n && n > 0 && strncmp(p, team_id, n) == 0) {
            return true;
        }
        p += len;
    }
    return false;
}

/* Every id in alert_email_teams names a team that has recipients. */
static esc_rc
s_check_alert_email(const struct esc_cfg *cfg, const struct ntf_cfg *ncfg, struct esc_error *err)
{
    const char *p = ncfg->alert_email_teams;
    char id[80];
    size_t len;

    while (*p != '\0') {
        const struct esc_cfg_team *team;

        p += strspn(p, ", ");
        len = strcspn(p, ", ");
        if (len == 0) {
            break;
        }
        if (len >= sizeof(id)) {
            len = sizeof(id) - 1;
        }
        memcpy(id, p, len);
        id[len] = '\0';
        p += strcspn(p, ", ");
        team = esc_cfg_team_find(cfg, id);
        if (team == NULL) {
            esc_error_set(err, 0, "notifier.alert_email_teams: unknown team '%s'", id);
            return ESC_INVALID;
        }
        if (team->n_recipients == 0) {
            esc_error_set(err, 0, "notifier.alert_email_teams: team '%s' has no recipients", id);
            return ESC_INVALID;
        }
    }
    return ESC_OK;
}

esc_rc
ntf_cfg_load(const struct esc_cfg *cfg, struct ntf_cfg *out, struct esc_error *err)
{
    char addr[256];
    const char *host;
    size_t i;
    static const char *const ignore[] = { "digest", NULL }; /* ntf_sched_cfg_check's */

    if (esc_cfg_section_apply(cfg, "notifier", ntf_cfg_map, ignore, out, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (strcmp(out->smtp_tls, "starttls") != 0 && strcmp(out->smtp_tls, "implicit") != 0
        && strcmp(out->smtp_tls, "none") != 0) {
        esc_error_set(err, 0, "notifier.smtp_tls: '%s' is not starttls, implicit or none",
                      out->smtp_tls);
        return ESC_INVALID;
    }
    if (out->smtp_url[0] != '\0') {
        if (strncmp(out->smtp_url, "smtp://", 7) == 0) {
            host = out->smtp_url + 7;
        }
        else if (strncmp(out->smtp_url, "smtps://", 8) == 0) {
            host = out->smtp_url + 8;
        }
        else {
            esc_error_set(err, 0, "notifier.smtp_url: must start with smtp:// or smtps://");
            return ESC_INVALID;
        }
        if (host[0] == '\0' || host[0] == '/' || strpbrk(host, "?# \t\r\n") != NULL) {
            esc_error_set(err, 0, "notifier.smtp_url: expected smtp[s]://host[:port]");
            return ESC_INVALID;
        }
        if ((strcmp(out->smtp_tls, "implicit") == 0) != (host == out->smtp_url + 8)) {
            esc_error_set(err, 0, "notifier.smtp_tls: '%s' needs a %s URL", out->smtp_tls,
                          strcmp(out->smtp_tls, "implicit") == 0 ? "smtps://" : "smtp://");
            return ESC_INVALID;
        }
        if (memchr(host, '@', strcspn(host, "/")) != NULL) {
            esc_error_set(err, 0, "notifier.smtp_url: credentials do not belong in the URL "
                                  "(use smtp_username and smtp_password_env or _file)");
            return ESC_INVALID;
        }
    }
    if (strcmp(out->smtp_tls, "none") == 0
        && (out->smtp_password_env[0] != '\0' || out->smtp_password_file[0] != '\0')) {
        esc_error_set(err, 0, "notifier.smtp_tls: 'none' would send the SMTP password in clear "
                              "text");
        return ESC_INVALID;
    }
    if (ntf_mail_addr_spec(out->from, addr, sizeof(addr)) != 0) {
        esc_error_set(err, 0, "notifier.from: '%s' has no valid address (\"Name <a@b>\" or "
                              "\"a@b\")", out->from);
        return ESC_INVALID;
    }
    for (i = 0; i < cfg->n_teams; i++) {
        if (!ntf_tz_valid(cfg->teams[i].timezone)) {
            esc_error_set(err, 0, "teams[%zu].timezone: unknown time zone '%s'", i,
                          cfg->teams[i].timezone);
            return ESC_INVALID;
        }
    }
    if (ntf_sched_cfg_check(cfg, err) != ESC_OK) {
        return ESC_INVALID;
    }
    for (i = 0; i < cfg->n_teams; i++) {
        struct ntf_hook_cfg hc;
        size_t k;

        for (k = 0; k < cfg->teams[i].n_hooks; k++) {
            if (ntf_hook_cfg_load(cfg, i, k, &hc, err) != ESC_OK) {
                return ESC_INVALID;
            }
        }
    }
    if (out->catchup_ms > 0 && out->catchup_window_s > out->dedupe_ttl_s) {
        /* an older alert's marker may be gone: the catch-up would deliver it again */
        esc_error_set(err, 0, "notifier.catchup_window_s: %lld is longer than dedupe_ttl_s "
                              "(%lld)", (long long)out->catchup_window_s,
                      (long long)out->dedupe_ttl_s);
        return ESC_INVALID;
    }
    if (s_check_alert_email(cfg, out, err) != ESC_OK) {
        return ESC_INVALID;
    }
    return ESC_OK;
}
