#define ESC_LOG_MODULE "sinks"
/* The only list of alert sink plugins. Adding a sink means adding its sink_<name>.c and one
 * line here (wrapped in #ifdef ESC_HAVE_SINK_<NAME> when it is optional); nothing else in the
 * notifier names a plugin. ntf_sink_registry_check catches a plugin that forgot a callback or
 * reused a name, at start-up and in sinks/registry_test.c. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "escucha/esc_log.h"
#include "sinks/sink.h"

extern const struct ntf_sink_plugin sink_webhook_plugin;
extern const struct ntf_sink_plugin sink_slack_plugin;
extern const struct ntf_sink_plugin sink_teams_plugin;
extern const struct ntf_sink_plugin sink_email_plugin;

static const struct ntf_sink_plugin *const s_sinks[] = {
    &sink_webhook_plugin,
    &sink_slack_plugin,
    &sink_teams_plugin,
    &sink_email_plugin,
    NULL,
};

const struct ntf_sink_plugin *const *
ntf_sink_plugins(void)
{
    return s_sinks;
}

const struct ntf_sink_plugin *
ntf_sink_plugin_find(const char *name)
{
    size_t i;

    for (i = 0; s_sinks[i] != NULL; i++) {
        if (strcmp(s_sinks[i]->name, name) == 0) {
            return s_sinks[i];
        }
    }
    return NULL;
}

int
ntf_sink_list_check(const struct ntf_sink_plugin *const *list)
{
    size_t i;
    size_t k;

    for (i = 0; list[i] != NULL; i++) {
        const struct ntf_sink_plugin *p = list[i];

        if (p->name == NULL || p->name[0] == '\0' || p->description == NULL || p->init == NULL
            || p->prepare == NULL || p->exit == NULL) {
            esc_log_error("sink plugin incomplete index=%zu name=%s", i,
                          p->name != NULL ? p->name : "(none)");
            return -1;
        }
        for (k = 0; k < i; k++) {
            if (strcmp(list[k]->name, p->name) == 0) {
                esc_log_error("sink plugin name used twice name=%s", p->name);
                return -1;
            }
        }
    }
    return 0;
}

int
ntf_sink_registry_check(void)
{
    return ntf_sink_list_check(s_sinks);
}

int
ntf_sink_url_target(const char *url, char *out, size_t outsz)
{
    CURLU *u = curl_url();
    char *host = NULL;
    char *port = NULL;
    int rc = -1;

    if (u == NULL) {
        return -1;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK) {
            port = NULL;
        }
        snprintf(out, outsz, "%s%s%s", host, port != NULL ? ":" : "", port != NULL ? port : "");
        rc = 0;
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}
