#define ESC_LOG_MODULE "sinks"
/* The only list of alert sink plugins. Adding a sink means adding its sink_<name>.c and one
 * line here (wrapped in #ifdef ESC_HAVE_SINK_<NAME> when it is optional); nothing else in the
 * notifier names a plugin. ntf_sink_registry_check catches a plugin that forgot a callback or
 * reused a name, at start-up and in sinks/registry_test.c. */
#include <stddef.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "sinks/sink.h"

extern const struct ntf_sink_plugin sink_webhook_plugin;

static const struct ntf_sink_plugin *const s_sinks[] = {
    &sink_webhook_plugin,
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
            || p->deliver == NULL || p->exit == NULL) {
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
