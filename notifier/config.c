#define ESC_LOG_MODULE "config"
/* The "notifier" section: one table holds every key with its default, bounds and documentation
 * (printed by --help-config), and ntf_cfg_load adds the checks a table cannot express. SMTP
 * credentials never live in the URL: they come from smtp_username + smtp_password_env/_file, so
 * the URL can be printed and logged. Read once at start-up. */
#include <stddef.h>
#include <string.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_util.h"
#include "mail.h"
#include "ntf.h"
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
    ESC_CFG_INT("smtp_timeout_ms", "30000", 1000, 600000, struct ntf_cfg, smtp_timeout_ms,
                "time allowed for one whole SMTP transaction"),
    ESC_CFG_INT("webhook_timeout_ms", "5000", 100, 120000, struct ntf_cfg, webhook_timeout_ms,
                "time allowed for one webhook request, connect included"),
    ESC_CFG_INT("retry_base_ms", "500", 10, 600000, struct ntf_cfg, retry_base_ms,
                "delay before the first retry of a failed webhook delivery; doubles per attempt"),
    ESC_CFG_INT("retry_max", "8", 1, 100, struct ntf_cfg, retry_max,
                "attempts per webhook delivery before it is dead-lettered"),
    ESC_CFG_INT("grace_ms", "5000", 0, 600000, struct ntf_cfg, grace_ms,
                "on SIGTERM, time allowed to finish pending deliveries"),
    ESC_CFG_INT("drain_quiet_ms", "300", 0, 60000, struct ntf_cfg, drain_quiet_ms,
                "on SIGTERM, keep reading alerts until none arrived for this long"),
    ESC_CFG_END,
};

esc_rc
ntf_cfg_load(const struct esc_cfg *cfg, struct ntf_cfg *out, struct esc_error *err)
{
    char addr[256];
    const char *host;
    size_t i;

    if (esc_cfg_section_apply(cfg, "notifier", ntf_cfg_map, NULL, out, err) != ESC_OK) {
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
        if (memchr(host, '@', strcspn(host, "/")) != NULL) {
            esc_error_set(err, 0, "notifier.smtp_url: credentials do not belong in the URL "
                                  "(use smtp_username and smtp_password_env or _file)");
            return ESC_INVALID;
        }
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
    return ESC_OK;
}
