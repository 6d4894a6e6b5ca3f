#define ESC_LOG_MODULE "sources"
/* The only list of source plugins compiled into escucha-collector, written by hand (STYLE
 * section 9). A new plugin adds one line here, wrapped in #ifdef ESC_HAVE_SRC_<NAME> when it is
 * optional. col_source_registry_check runs at start-up and in sources/registry_test.c so a
 * plugin with a missing callback or a duplicate name is caught before any source is opened.
 * Read-only after start-up; safe from any thread. */
#include <stddef.h>
#include <string.h>

#include "col_source.h"

#include "escucha/esc_rc.h"

/* Plugins not (yet) declared in col_source.h. */
extern const struct col_source_plugin src_csv_plugin;
extern const struct col_source_plugin src_ingest_plugin;

static const struct col_source_plugin *const col_sources[] = {
    &src_jsonl_plugin,
    &src_mastodon_plugin,
    &src_rss_plugin,
    &src_hn_plugin,
    &src_reddit_plugin,
    &src_bluesky_plugin,
    &src_x_plugin,
    &src_lemmy_plugin,
    &src_youtube_plugin,
    &src_csv_plugin,
    &src_ingest_plugin,
    NULL,
};

const struct col_source_plugin *const *
col_source_plugins(void)
{
    return col_sources;
}

const struct col_source_plugin *
col_source_plugin_find(const char *name)
{
    size_t i;

    for (i = 0; col_sources[i] != NULL; i++) {
        if (strcmp(col_sources[i]->name, name) == 0) {
            return col_sources[i];
        }
    }
    return NULL;
}

int
col_source_registry_check_list(const struct col_source_plugin *const *list,
                               struct esc_error *err)
{
    size_t i;
    size_t j;

    for (i = 0; list[i] != NULL; i++) {
        const struct col_source_plugin *p = list[i];

        if (p->name == NULL || p->name[0] == '\0') {
            esc_error_set(err, 0, "source plugin #%zu: no name", i);
            return -1;
        }
        if (p->description == NULL || p->cfg_map == NULL || p->cfg_size == 0) {
            esc_error_set(err, 0, "source plugin '%s': description, cfg_map and cfg_size are "
                          "required", p->name);
            return -1;
        }
        if (p->init == NULL || p->poll == NULL || p->exit == NULL) {
            esc_error_set(err, 0, "source plugin '%s': init, poll and exit are required",
                          p->name);
            return -1;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(list[j]->name, p->name) == 0) {
                esc_error_set(err, 0, "source plugin '%s': name registered twice", p->name);
                return -1;
            }
        }
    }
    return 0;
}

int
col_source_registry_check(struct esc_error *err)
{
    return col_source_registry_check_list(col_sources, err);
}
