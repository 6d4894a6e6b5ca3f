#define ESC_LOG_MODULE "cfg"
/* Deployment configuration. The file is parsed once with jansson; the shared parts (redis, bus,
 * teams with their topics, sources) become plain structs, and every scalar section is mapped by
 * a table of esc_cfg_entry so that defaults, bounds and documentation live in one place. Errors
 * name the key path ("teams[1].topics[0].keywords[2]: expected a string") and, for syntax
 * errors, the line and column. The parsed document is kept so services can map their own
 * sections later (esc_cfg_section_apply). Not thread-safe; read once at start-up. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#define S_MAX_TEAMS 1000
#define S_MAX_TOPICS 10000
#define S_MAX_KEYWORDS 1000

static const struct esc_cfg_entry s_redis_map[] = {
    ESC_CFG_STR("host", "127.0.0.1", struct esc_cfg_redis, host, "Redis host"),
    ESC_CFG_INT("port", "6379", 0, 65535, struct esc_cfg_redis, port, "Redis TCP port"),
    ESC_CFG_STR("unix_socket", "", struct esc_cfg_redis, unix_socket,
                "Redis unix socket path; when set, host and port are not used"),
    ESC_CFG_INT("db", "0", 0, 15, struct esc_cfg_redis, db, "Redis database number"),
    ESC_CFG_STR("username", "", struct esc_cfg_redis, username, "Redis ACL user (AUTH user pass)"),
    ESC_CFG_STR("password_env", "", struct esc_cfg_redis, password_env,
                "environment variable that holds the Redis password"),
    ESC_CFG_STR("password_file", "", struct esc_cfg_redis, password_file,
                "file (mode 600) that holds the Redis password"),
    ESC_CFG_STR("prefix", "esc", struct esc_cfg_redis, prefix, "prefix of every escucha key"),
    ESC_CFG_INT("timeout_ms", "2000", 10, 60000, struct esc_cfg_redis, timeout_ms,
                "connect and command timeout"),
    ESC_CFG_END,
};

static const struct esc_cfg_entry s_bus_map[] = {
    ESC_CFG_STR("collect", "tcp://127.0.0.1:5550", struct esc_cfg_bus, collect,
                "broker intake: the broker binds it, collectors connect"),
    ESC_CFG_STR("classify", "tcp://127.0.0.1:5551", struct esc_cfg_bus, classify,
                "broker output: the broker binds it, classifiers connect"),
    ESC_CFG_STR("aggregate", "tcp://127.0.0.1:5552", struct esc_cfg_bus, aggregate,
                "aggregator intake: the aggregator binds it, classifiers connect"),
    ESC_CFG_STR("notify", "tcp://127.0.0.1:5553", struct esc_cfg_bus, notify,
                "notifier intake: the notifier binds it, aggregators connect"),
    ESC_CFG_STR("ack", "", struct esc_cfg_bus, ack,
                "acknowledgements of counted posts: the broker binds it, aggregators connect "
                "(\"\" = off; docs/delivery.md)"),
    ESC_CFG_STR("ack_pub", "", struct esc_cfg_bus, ack_pub,
                "acknowledgements republished: the broker binds it, collectors with a journal "
                "connect (\"\" = off)"),
    ESC_CFG_INT("hwm", "2000", 10, 10000000, struct esc_cfg_bus, hwm,
                "ZeroMQ high-water mark: frames queued per socket before senders wait (a frame "
                "is one message or a batch of up to 64 posts)"),
    ESC_CFG_STR("curve_endpoints", "", struct esc_cfg_bus, curve_endpoints,
                "endpoints encrypted with CURVE: a list of collect,classify,aggregate,notify,"
                "ack (both ack endpoints), or all (\"\" = none)"),
    ESC_CFG_STR("curve_server_secret_file", "", struct esc_cfg_bus, curve_server_secret_file,
                "binders: file (mode 600) with the bus servers' secret key (Z85)"),
    ESC_CFG_STR("curve_server_public", "", struct esc_cfg_bus, curve_server_public,
                "connecters: the bus servers' public key (Z85, 40 characters)"),
    ESC_CFG_STR("curve_client_secret_file", "", struct esc_cfg_bus, curve_client_secret_file,
                "connecters: file (mode 600) with this process's secret key (Z85)"),
    ESC_CFG_STR("curve_authorized_file", "", struct esc_cfg_bus, curve_authorized_file,
                "binders: file with the client public keys allowed to connect, one per line"),
    ESC_CFG_END,
};

static const char *const s_top_keys[] = {
    "deployment", "redis",      "bus",        "sources",  "teams",   "collector",
    "broker",     "classifier", "aggregator", "notifier", "api",     "comment",   NULL,
};
static const char *const s_team_keys[] = {
    "id",     "name",    "language", "timezone", "recipients",
    "webhooks", "topics", "exclude", "comment", NULL,
};
static const char *const s_topic_keys[] = {
    "id", "name", "keywords", "query", "exclude", "fold_enye", "spike", "comment", NULL,
};
static const char *const s_exclude_keys[] = { "authors", "sites", "phrases", NULL };
/* "kind", "notify_ended" and "cooldown_min" are validated by the notifier
 * (esc_cfg_section_apply on "teams.N.webhooks.M"). */
static const char *const s_hook_keys[] = {
    "url", "secret_env", "secret_file", "kind", "notify_ended", "cooldown_min", NULL,
};

static int
s_in_list(const char *const *list, const char *key)
{
    size_t i;

    for (i = 0; list != NULL && list[i] != NULL; i++) {
        if (strcmp(list[i], key) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *
s_json_type(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

static int
s_set_default(const struct esc_cfg_entry *e, void *out)
{
    char *field = (char *)out + e->offset;
    int64_t iv;

    if (e->def == NULL) {
        return 0;
    }
    switch (e->type) {
    case ESC_CFG_T_STR:
        esc_strlcpy(field, e->def, e->size);
        break;
    case ESC_CFG_T_INT:
        ESC_ASSERT(esc_parse_i64(e->def, INT64_MIN, INT64_MAX, &iv) == 0);
        *(int64_t *)(void *)field = iv;
        break;
    case ESC_CFG_T_DBL:
        *(double *)(void *)field = strtod(e->def, NULL);
        break;
    case ESC_CFG_T_BOOL:
        *(bool *)(void *)field = strcmp(e->def, "true") == 0;
        break;
    case ESC_CFG_T_END:
        break;
    }
    return 0;
}

void
esc_cfg_defaults(const struct esc_cfg_entry *map, void *out)
{
    const struct esc_cfg_entry *e;

    for (e = map; e->key != NULL; e++) {
        s_set_default(e, out);
    }
}

/* Sets one field from a JSON value; fills err on a type or range error. */
static esc_rc
s_set_json(const struct esc_cfg_entry *e, json_t *v, const char *path, void *out,
           struct esc_error *err)
{
    char *field = (char *)out + e->offset;
    double d;

    switch (e->type) {
    case ESC_CFG_T_STR:
        if (!json_is_string(v)) {
            esc_error_set(err, 0, "%s.%s: expected a string, got %s", path, e->key, s_json_type(v));
            return ESC_INVALID;
        }
        if (json_string_length(v) >= e->size || strlen(json_string_value(v)) != json_string_length(v)) {
            esc_error_set(err, 0, "%s.%s: string too long (max %zu bytes) or contains NUL", path,
                          e->key, e->size - 1);
            return ESC_INVALID;
        }
        esc_strlcpy(field, json_string_value(v), e->size);
        return ESC_OK;
    case ESC_CFG_T_INT:
        if (!json_is_integer(v)) {
            esc_error_set(err, 0, "%s.%s: expected an integer, got %s", path, e->key,
                          s_json_type(v));
            return ESC_INVALID;
        }
        if ((double)json_integer_value(v) < e->min || (double)json_integer_value(v) > e->max) {
            esc_error_set(err, 0, "%s.%s: %lld is out of range [%.0f, %.0f]", path, e->key,
                          (long long)json_integer_value(v), e->min, e->max);
            return ESC_INVALID;
        }
        *(int64_t *)(void *)field = json_integer_value(v);
        return ESC_OK;
    case ESC_CFG_T_DBL:
        if (!json_is_number(v)) {
            esc_error_set(err, 0, "%s.%s: expected a number, got %s", path, e->key, s_json_type(v));
            return ESC_INVALID;
        }
        d = json_number_value(v);
        if (d < e->min || d > e->max) {
            esc_error_set(err, 0, "%s.%s: %g is out of range [%g, %g]", path, e->key, d, e->min,
                          e->max);
            return ESC_INVALID;
        }
        *(double *)(void *)field = d;
        return ESC_OK;
    case ESC_CFG_T_BOOL:
        if (!json_is_boolean(v)) {
            esc_error_set(err, 0, "%s.%s: expected true or false, got %s", path, e->key,
                          s_json_type(v));
            return ESC_INVALID;
        }
        *(bool *)(void *)field = json_is_true(v);
        return ESC_OK;
    case ESC_CFG_T_END:
        break;
    }
    return ESC_INVALID;
}

/* Environment override ESC_<PATH>_<KEY>: path "aggregator.spike", key "factor" ->
 * ESC_AGGREGATOR_SPIKE_FACTOR. */
static esc_rc
s_set_env(const struct esc_cfg_entry *e, const char *path, void *out, struct esc_error *err)
{
    char name[256];
    const char *v;
    char *field = (char *)out + e->offset;
    size_t i;
    int64_t iv;
    char *end = NULL;
    double d;

    snprintf(name, sizeof(name), "ESC_%s_%s", path, e->key);
    for (i = 0; name[i] != '\0'; i++) {
        name[i] = (name[i] == '.' || name[i] == '-') ? '_' : (char)toupper((unsigned char)name[i]);
    }
    v = getenv(name);
    if (v == NULL) {
        return ESC_OK;
    }
    switch (e->type) {
    case ESC_CFG_T_STR:
        if (strlen(v) >= e->size) {
            esc_error_set(err, 0, "%s: value too long (max %zu bytes)", name, e->size - 1);
            return ESC_INVALID;
        }
        esc_strlcpy(field, v, e->size);
        return ESC_OK;
    case ESC_CFG_T_INT:
        if (esc_parse_i64(v, (int64_t)e->min, (int64_t)e->max, &iv) < 0) {
            esc_error_set(err, 0, "%s: expected an integer in [%.0f, %.0f]", name, e->min, e->max);
            return ESC_INVALID;
        }
        *(int64_t *)(void *)field = iv;
        return ESC_OK;
    case ESC_CFG_T_DBL:
        errno = 0;
        d = strtod(v, &end);
        if (errno != 0 || end == v || *end != '\0' || d < e->min || d > e->max) {
            esc_error_set(err, 0, "%s: expected a number in [%g, %g]", name, e->min, e->max);
            return ESC_INVALID;
        }
        *(double *)(void *)field = d;
        return ESC_OK;
    case ESC_CFG_T_BOOL:
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
            esc_error_set(err, 0, "%s: expected true or false", name);
            return ESC_INVALID;
        }
        *(bool *)(void *)field = strcmp(v, "true") == 0;
        return ESC_OK;
    case ESC_CFG_T_END:
        break;
    }
    return ESC_OK;
}

/* Maps obj (may be NULL: defaults only) onto out. */
static esc_rc
s_apply(json_t *obj, const char *path, const struct esc_cfg_entry *map,
        const char *const *ignore, void *out, struct esc_error *err)
{
    const struct esc_cfg_entry *e;
    const char *key;
    json_t *v;

    esc_cfg_defaults(map, out);
    if (obj != NULL && !json_is_object(obj)) {
        esc_error_set(err, 0, "%s: expected an object, got %s", path, s_json_type(obj));
        return ESC_INVALID;
    }
    if (obj != NULL) {
        json_object_foreach(obj, key, v) {
            for (e = map; e->key != NULL; e++) {
                if (strcmp(e->key, key) == 0) {
                    break;
                }
            }
            if (e->key == NULL) {
                if (s_in_list(ignore, key)) {
                    continue;
                }
                esc_error_set(err, 0, "%s.%s: unknown key", path, key);
                return ESC_INVALID;
            }
            if (s_set_json(e, v, path, out, err) != ESC_OK) {
                return ESC_INVALID;
            }
        }
    }
    for (e = map; e->key != NULL; e++) {
        if (e->def == NULL && (obj == NULL || json_object_get(obj, e->key) == NULL)) {
            esc_error_set(err, 0, "%s.%s: missing required key", path, e->key);
            return ESC_INVALID;
        }
        if (s_set_env(e, path, out, err) != ESC_OK) {
            return ESC_INVALID;
        }
    }
    return ESC_OK;
}

/* Resolves "a.b.2.c" inside root; NULL when any step is missing. */
static json_t *
s_lookup(json_t *root, const char *path)
{
    char buf[256];
    char *save = NULL;
    char *tok;
    json_t *cur = root;
    int64_t idx;

    esc_strlcpy(buf, path, sizeof(buf));
    for (tok = strtok_r(buf, ".", &save); tok != NULL && cur != NULL;
         tok = strtok_r(NULL, ".", &save)) {
        if (json_is_array(cur) && esc_parse_i64(tok, 0, INT32_MAX, &idx) == 0) {
            cur = json_array_get(cur, (size_t)idx);
        }
        else if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        }
        else {
            return NULL;
        }
    }
    return cur;
}

esc_rc
esc_cfg_section_apply(const struct esc_cfg *cfg, const char *path,
                      const struct esc_cfg_entry *map, const char *const *ignore, void *out,
                      struct esc_error *err)
{
    json_t *obj = cfg != NULL ? s_lookup(cfg->root, path) : NULL;

    if (err != NULL && cfg != NULL) {
        esc_strlcpy(err->source, cfg->path, sizeof(err->source));
    }
    return s_apply(obj, path, map, ignore, out, err);
}

/* Checks that every key of obj is in allowed. */
static esc_rc
s_check_keys(json_t *obj, const char *path, const char *const *allowed,
             struct esc_error *err)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v) {
        if (!s_in_list(allowed, key)) {
            esc_error_set(err, 0, "%s.%s: unknown key", path, key);
            return ESC_INVALID;
        }
    }
    return ESC_OK;
}

/* Copies a required (or optional, when def != NULL) string member into dst. */
static esc_rc
s_get_str(json_t *obj, const char *key, const char *path, const char *def, char *dst,
          size_t dstsz, struct esc_error *err)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL) {
        if (def == NULL) {
            esc_error_set(err, 0, "%s.%s: missing required key", path, key);
            return ESC_INVALID;
        }
        esc_strlcpy(dst, def, dstsz);
        return ESC_OK;
    }
    if (!json_is_string(v)) {
        esc_error_set(err, 0, "%s.%s: expected a string, got %s", path, key, s_json_type(v));
        return ESC_INVALID;
    }
    if (json_string_length(v) >= dstsz || strlen(json_string_value(v)) != json_string_length(v)) {
        esc_error_set(err, 0, "%s.%s: string too long (max %zu bytes) or contains NUL", path, key,
                      dstsz - 1);
        return ESC_INVALID;
    }
    esc_strlcpy(dst, json_string_value(v), dstsz);
    return ESC_OK;
}

/* Reads an optional non-empty string member into a caller-owned copy (NULL when absent). */
static esc_rc
s_get_optstr(json_t *obj, const char *key, const char *path, char **out, struct esc_error *err)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL) {
        return ESC_OK;
    }
    if (!json_is_string(v) || json_string_length(v) == 0
        || strlen(json_string_value(v)) != json_string_length(v)) {
        esc_error_set(err, 0, "%s.%s: expected a non-empty string", path, key);
        return ESC_INVALID;
    }
    *out = esc_strdup(json_string_value(v));
    return ESC_OK;
}

/* Reads an optional array of non-empty strings into a list. */
static esc_rc
s_get_strlist(json_t *obj, const char *key, const char *path, size_t max, char ***list,
              size_t *n, struct esc_error *err)
{
    json_t *arr = json_object_get(obj, key);
    size_t i;
    json_t *v;

    if (arr == NULL) {
        return ESC_OK;
    }
    if (!json_is_array(arr)) {
        esc_error_set(err, 0, "%s.%s: expected an array, got %s", path, key, s_json_type(arr));
        return ESC_INVALID;
    }
    if (json_array_size(arr) > max) {
        esc_error_set(err, 0, "%s.%s: too many entries (max %zu)", path, key, max);
        return ESC_INVALID;
    }
    *list = esc_calloc(json_array_size(arr) + 1, sizeof(char *));
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0
            || strlen(json_string_value(v)) != json_string_length(v)) {
            esc_error_set(err, 0, "%s.%s[%zu]: expected a non-empty string", path, key, i);
            return ESC_INVALID;
        }
        (*list)[(*n)++] = esc_strdup(json_string_value(v));
    }
    return ESC_OK;
}

static esc_rc
s_parse_topic(json_t *jt, struct esc_cfg_team *team, size_t ti, size_t k, struct esc_error *err)
{
    char path[96];
    struct esc_cfg_topic *t = &team->topics[k];
    size_t j;

    snprintf(path, sizeof(path), "teams[%zu].topics[%zu]", ti, k);
    if (!json_is_object(jt)) {
        esc_error_set(err, 0, "%s: expected an object, got %s", path, s_json_type(jt));
        return ESC_INVALID;
    }
    if (s_check_keys(jt, path, s_topic_keys, err) != ESC_OK
        || s_get_str(jt, "id", path, NULL, t->id, sizeof(t->id), err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (!esc_ident_valid(t->id)) {
        esc_error_set(err, 0, "%s.id: '%s' is not a valid id (use a-z, 0-9, '-', '_')", path,
                      t->id);
        return ESC_INVALID;
    }
    for (j = 0; j < k; j++) {
        if (strcmp(team->topics[j].id, t->id) == 0) {
            esc_error_set(err, 0, "%s.id: duplicate topic id '%s' in team '%s'", path, t->id,
                          team->id);
            return ESC_INVALID;
        }
    }
    if (s_get_str(jt, "name", path, t->id, t->name, sizeof(t->name), err) != ESC_OK
        || s_get_strlist(jt, "keywords", path, S_MAX_KEYWORDS, &t->keywords, &t->n_keywords, err)
               != ESC_OK) {
        return ESC_INVALID;
    }
    if (s_get_optstr(jt, "query", path, &t->query, err) != ESC_OK
        || s_get_optstr(jt, "exclude", path, &t->exclude, err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (t->n_keywords == 0 && t->query == NULL) {
        esc_error_set(err, 0, "%s: a topic needs a query or at least one keyword", path);
        return ESC_INVALID;
    }
    if (json_object_get(jt, "fold_enye") != NULL) {
        if (!json_is_boolean(json_object_get(jt, "fold_enye"))) {
            esc_error_set(err, 0, "%s.fold_enye: expected true or false", path);
            return ESC_INVALID;
        }
        t->fold_enye = json_is_true(json_object_get(jt, "fold_enye"));
    }
    if (json_object_get(jt, "spike") != NULL && !json_is_object(json_object_get(jt, "spike"))) {
        esc_error_set(err, 0, "%s.spike: expected an object", path);
        return ESC_INVALID;
    }
    snprintf(t->key, sizeof(t->key), "%s/%s", team->id, t->id);
    t->index = k;
    t->team_index = ti;
    return ESC_OK;
}

static esc_rc
s_parse_team(json_t *jt, struct esc_cfg *cfg, size_t ti, struct esc_error *err)
{
    char path[64];
    struct esc_cfg_team *team = &cfg->teams[ti];
    json_t *arr;
    json_t *v;
    size_t k;

    snprintf(path, sizeof(path), "teams[%zu]", ti);
    if (!json_is_object(jt)) {
        esc_error_set(err, 0, "%s: expected an object, got %s", path, s_json_type(jt));
        return ESC_INVALID;
    }
    if (s_check_keys(jt, path, s_team_keys, err) != ESC_OK
        || s_get_str(jt, "id", path, NULL, team->id, sizeof(team->id), err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (!esc_ident_valid(team->id)) {
        esc_error_set(err, 0, "%s.id: '%s' is not a valid id (use a-z, 0-9, '-', '_')", path,
                      team->id);
        return ESC_INVALID;
    }
    for (k = 0; k < ti; k++) {
        if (strcmp(cfg->teams[k].id, team->id) == 0) {
            esc_error_set(err, 0, "%s.id: duplicate team id '%s'", path, team->id);
            return ESC_INVALID;
        }
    }
    if (s_get_str(jt, "name", path, team->id, team->name, sizeof(team->name), err) != ESC_OK
        || s_get_str(jt, "language", path, "es", team->language, sizeof(team->language), err)
               != ESC_OK
        || s_get_str(jt, "timezone", path, "UTC", team->timezone, sizeof(team->timezone), err)
               != ESC_OK
        || s_get_strlist(jt, "recipients", path, 1000, &team->recipients, &team->n_recipients, err)
               != ESC_OK) {
        return ESC_INVALID;
    }
    if (strcmp(team->language, "es") != 0 && strcmp(team->language, "en") != 0) {
        esc_error_set(err, 0, "%s.language: '%s' is not supported (es or en)", path,
                      team->language);
        return ESC_INVALID;
    }
    for (k = 0; k < team->n_recipients; k++) {
        const char *r = team->recipients[k];

        if (strchr(r, '@') == NULL || strpbrk(r, " \t\r\n<>,;\"") != NULL) {
            esc_error_set(err, 0, "%s.recipients[%zu]: '%s' is not an e-mail address", path, k, r);
            return ESC_INVALID;
        }
    }
    arr = json_object_get(jt, "webhooks");
    if (arr != NULL) {
        if (!json_is_array(arr)) {
            esc_error_set(err, 0, "%s.webhooks: expected an array", path);
            return ESC_INVALID;
        }
        team->hooks = esc_calloc(json_array_size(arr) + 1, sizeof(*team->hooks));
        json_array_foreach(arr, k, v) {
            char hpath[96];
            struct esc_cfg_hook *h = &team->hooks[k];

            snprintf(hpath, sizeof(hpath), "%s.webhooks[%zu]", path, k);
            if (!json_is_object(v)) {
                esc_error_set(err, 0, "%s: expected an object", hpath);
                return ESC_INVALID;
            }
            if (s_check_keys(v, hpath, s_hook_keys, err) != ESC_OK
                || s_get_str(v, "url", hpath, NULL, h->url, sizeof(h->url), err) != ESC_OK
                || s_get_str(v, "secret_env", hpath, "", h->secret_env, sizeof(h->secret_env), err)
                       != ESC_OK
                || s_get_str(v, "secret_file", hpath, "", h->secret_file, sizeof(h->secret_file),
                             err) != ESC_OK) {
                return ESC_INVALID;
            }
            if (strncmp(h->url, "http://", 7) != 0 && strncmp(h->url, "https://", 8) != 0) {
                esc_error_set(err, 0, "%s.url: must start with http:// or https://", hpath);
                return ESC_INVALID;
            }
            team->n_hooks++;
        }
    }
    v = json_object_get(jt, "exclude");
    if (v != NULL) {
        char epath[96];

        snprintf(epath, sizeof(epath), "%s.exclude", path);
        if (!json_is_object(v)) {
            esc_error_set(err, 0, "%s: expected an object", epath);
            return ESC_INVALID;
        }
        if (s_check_keys(v, epath, s_exclude_keys, err) != ESC_OK
            || s_get_strlist(v, "authors", epath, 100000, &team->exclude_authors,
                             &team->n_exclude_authors, err) != ESC_OK
            || s_get_strlist(v, "sites", epath, 100000, &team->exclude_sites,
                             &team->n_exclude_sites, err) != ESC_OK
            || s_get_strlist(v, "phrases", epath, 100000, &team->exclude_phrases,
                             &team->n_exclude_phrases, err) != ESC_OK) {
            return ESC_INVALID;
        }
    }
    arr = json_object_get(jt, "topics");
    if (arr == NULL || !json_is_array(arr) || json_array_size(arr) == 0) {
        esc_error_set(err, 0, "%s.topics: expected a non-empty array", path);
        return ESC_INVALID;
    }
    if (json_array_size(arr) > S_MAX_TOPICS) {
        esc_error_set(err, 0, "%s.topics: too many topics (max %d)", path, S_MAX_TOPICS);
        return ESC_INVALID;
    }
    team->topics = esc_calloc(json_array_size(arr), sizeof(*team->topics));
    json_array_foreach(arr, k, v) {
        team->n_topics = k + 1;
        if (s_parse_topic(v, team, ti, k, err) != ESC_OK) {
            return ESC_INVALID;
        }
    }
    return ESC_OK;
}

static esc_rc
s_parse_sources(json_t *arr, struct esc_cfg *cfg, struct esc_error *err)
{
    size_t i;
    size_t j;
    json_t *v;

    if (arr == NULL) {
        return ESC_OK;
    }
    if (!json_is_array(arr)) {
        esc_error_set(err, 0, "sources: expected an array, got %s", s_json_type(arr));
        return ESC_INVALID;
    }
    cfg->sources = esc_calloc(json_array_size(arr) + 1, sizeof(*cfg->sources));
    json_array_foreach(arr, i, v) {
        char path[48];
        struct esc_cfg_source *s = &cfg->sources[i];

        snprintf(path, sizeof(path), "sources[%zu]", i);
        if (!json_is_object(v)) {
            esc_error_set(err, 0, "%s: expected an object, got %s", path, s_json_type(v));
            return ESC_INVALID;
        }
        if (s_get_str(v, "type", path, NULL, s->type, sizeof(s->type), err) != ESC_OK
            || s_get_str(v, "name", path, s->type, s->name, sizeof(s->name), err) != ESC_OK) {
            return ESC_INVALID;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(cfg->sources[j].name, s->name) == 0) {
                esc_error_set(err, 0, "%s.name: duplicate source name '%s'", path, s->name);
                return ESC_INVALID;
            }
        }
        s->index = i;
        cfg->n_sources = i + 1;
    }
    return ESC_OK;
}

static struct esc_cfg *
s_build(json_t *root, const char *source, struct esc_error *err)
{
    struct esc_cfg *cfg = esc_calloc(1, sizeof(*cfg));
    const char *key;
    json_t *v;
    json_t *teams;
    size_t i;

    cfg->root = root;
    esc_strlcpy(cfg->path, source, sizeof(cfg->path));
    if (!json_is_object(root)) {
        esc_error_set(err, 1, "top level: expected an object, got %s", s_json_type(root));
        goto fail;
    }
    json_object_foreach(root, key, v) {
        if (!s_in_list(s_top_keys, key)) {
            esc_error_set(err, 0, "%s: unknown key", key);
            goto fail;
        }
        if (strcmp(key, "deployment") != 0 && strcmp(key, "sources") != 0
            && strcmp(key, "teams") != 0 && strcmp(key, "comment") != 0 && !json_is_object(v)) {
            esc_error_set(err, 0, "%s: expected an object, got %s", key, s_json_type(v));
            goto fail;
        }
    }
    if (s_get_str(root, "deployment", "top level", "escucha", cfg->deployment,
                  sizeof(cfg->deployment), err) != ESC_OK
        || s_apply(json_object_get(root, "redis"), "redis", s_redis_map, NULL, &cfg->redis, err)
               != ESC_OK
        || s_apply(json_object_get(root, "bus"), "bus", s_bus_map, NULL, &cfg->bus, err) != ESC_OK
        || s_parse_sources(json_object_get(root, "sources"), cfg, err) != ESC_OK) {
        goto fail;
    }
    teams = json_object_get(root, "teams");
    if (teams == NULL || !json_is_array(teams) || json_array_size(teams) == 0) {
        esc_error_set(err, 0, "teams: expected a non-empty array");
        goto fail;
    }
    if (json_array_size(teams) > S_MAX_TEAMS) {
        esc_error_set(err, 0, "teams: too many teams (max %d)", S_MAX_TEAMS);
        goto fail;
    }
    cfg->teams = esc_calloc(json_array_size(teams), sizeof(*cfg->teams));
    json_array_foreach(teams, i, v) {
        cfg->n_teams = i + 1;
        if (s_parse_team(v, cfg, i, err) != ESC_OK) {
            goto fail;
        }
    }
    return cfg;

fail:
    esc_cfg_free(&cfg);
    return NULL;
}

struct esc_cfg *
esc_cfg_load_string(const char *json, const char *source, struct esc_error *err)
{
    json_error_t jerr;
    json_t *root;

    if (err != NULL) {
        memset(err, 0, sizeof(*err));
        esc_strlcpy(err->source, source, sizeof(err->source));
    }
    root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        esc_error_set(err, jerr.line, "syntax error: %s (line %d, column %d)", jerr.text,
                      jerr.line, jerr.column);
        if (err != NULL) {
            err->column = jerr.column;
        }
        return NULL;
    }
    return s_build(root, source, err);
}

/* Reads and parses the file at path; returns a new reference or NULL with err filled. */
static json_t *
s_load_root(const char *path, struct esc_error *err)
{
    json_error_t jerr;
    json_t *root;

    if (err != NULL) {
        memset(err, 0, sizeof(*err));
        esc_strlcpy(err->source, path, sizeof(err->source));
    }
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (jerr.line <= 0) {
            esc_error_set(err, 0, "cannot read: %s", jerr.text);
        }
        else {
            esc_error_set(err, jerr.line, "syntax error: %s (line %d, column %d)", jerr.text,
                          jerr.line, jerr.column);
            if (err != NULL) {
                err->column = jerr.column;
            }
        }
    }
    return root;
}

struct esc_cfg *
esc_cfg_load(const char *path, struct esc_error *err)
{
    json_t *root = s_load_root(path, err);

    if (root == NULL) {
        return NULL;
    }
    return s_build(root, path, err);
}

static int
s_str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Parses one stored value (a topic or the exclusion lists) of team ti; returns a new
 * reference to an object, or NULL with err naming where it belongs. */
static json_t *
s_overlay_parse(const char *text, size_t ti, const char *team, const char *what,
                struct esc_error *err)
{
    json_error_t jerr;
    json_t *v = json_loads(text != NULL ? text : "", JSON_REJECT_DUPLICATES, &jerr);

    if (v == NULL || !json_is_object(v)) {
        esc_error_set(err, 0, "teams[%zu] (team '%s'): stored %s: not a JSON object%s%s", ti,
                      team, what, v == NULL ? ": " : "", v == NULL ? jerr.text : "");
        json_decref(v);
        return NULL;
    }
    return v;
}

/* A stored topic as it goes into the document: a copy with its id, without the markers the
 * API adds, and with null values (no query, no exclude) left out. New reference. */
static json_t *
s_overlay_topic(json_t *stored, const char *id)
{
    json_t *t = json_deep_copy(stored);
    const char *key;
    json_t *v;
    void *tmp;

    json_object_del(t, "deleted");
    json_object_del(t, "source");
    json_object_foreach_safe(t, tmp, key, v) {
        if (json_is_null(v)) {
            json_object_del(t, key);
        }
    }
    json_object_set_new(t, "id", json_string(id));
    return t;
}

/* Applies one team's overrides to its object jt (teams[ti]) in the parsed document. */
static esc_rc
s_overlay_team(json_t *jt, size_t ti, const struct esc_cfg_overlay *ov, struct esc_error *err)
{
    json_t *file_topics = json_object_get(jt, "topics");
    json_t *over = json_object();
    json_t *in_file = json_object();
    json_t *merged = NULL;
    const char **extra = NULL;
    size_t n_extra = 0;
    const char *id;
    json_t *v;
    size_t i;
    esc_rc rc = ESC_INVALID;

    for (i = 0; i < ov->n_topics; i++) {
        char what[96];

        if (ov->ids[i] == NULL || !esc_ident_valid(ov->ids[i])) {
            esc_error_set(err, 0, "teams[%zu] (team '%s'): stored topic id '%s' is not a valid id",
                          ti, ov->team, ov->ids[i] != NULL ? ov->ids[i] : "");
            goto out;
        }
        snprintf(what, sizeof(what), "topic '%s'", ov->ids[i]);
        v = s_overlay_parse(ov->topics[i], ti, ov->team, what, err);
        if (v == NULL) {
            goto out;
        }
        json_object_set_new(over, ov->ids[i], v);
    }
    if (json_is_array(file_topics)) {
        merged = json_array();
        json_array_foreach(file_topics, i, v) {
            json_t *o;

            id = json_string_value(json_object_get(v, "id"));
            o = id != NULL ? json_object_get(over, id) : NULL;
            if (id != NULL) {
                json_object_set_new(in_file, id, json_true());
            }
            if (o == NULL) {
                json_array_append(merged, v);
            }
            else if (!json_is_true(json_object_get(o, "deleted"))) {
                json_array_append_new(merged, s_overlay_topic(o, id));
            }
        }
        extra = esc_calloc(json_object_size(over) + 1, sizeof(*extra));
        json_object_foreach(over, id, v) {
            if (json_object_get(in_file, id) == NULL
                && !json_is_true(json_object_get(v, "deleted"))) {
                extra[n_extra++] = id;
            }
        }
        qsort(extra, n_extra, sizeof(*extra), s_str_cmp);
        for (i = 0; i < n_extra; i++) {
            json_array_append_new(merged, s_overlay_topic(json_object_get(over, extra[i]),
                                                          extra[i]));
        }
        json_object_set_new(jt, "topics", merged);
    }
    if (ov->exclude != NULL) {
        v = s_overlay_parse(ov->exclude, ti, ov->team, "exclusion lists", err);
        if (v == NULL) {
            goto out;
        }
        json_object_set_new(jt, "exclude", v);
    }
    rc = ESC_OK;

out:
    esc_free(extra);
    json_decref(in_file);
    json_decref(over);
    return rc;
}

struct esc_cfg *
esc_cfg_load_overlay(const char *path, const struct esc_cfg_overlay *ov, size_t n,
                     struct esc_error *err)
{
    json_t *root = s_load_root(path, err);
    json_t *teams;
    json_t *jt;
    size_t i;
    size_t ti;

    if (root == NULL) {
        return NULL;
    }
    teams = json_object_get(root, "teams");
    for (i = 0; i < n && json_is_array(teams); i++) {
        json_array_foreach(teams, ti, jt) {
            const char *id = json_string_value(json_object_get(jt, "id"));

            if (id == NULL || ov[i].team == NULL || strcmp(id, ov[i].team) != 0) {
                continue;
            }
            if (s_overlay_team(jt, ti, &ov[i], err) != ESC_OK) {
                json_decref(root);
                return NULL;
            }
            break;
        }
    }
    return s_build(root, path, err);
}

static void
s_strlist_free(char **list, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        esc_free(list[i]);
    }
    esc_free(list);
}

void
esc_cfg_free(struct esc_cfg **cfg_p)
{
    struct esc_cfg *cfg;
    size_t i;
    size_t k;
    size_t j;

    if (cfg_p == NULL || *cfg_p == NULL) {
        return;
    }
    cfg = *cfg_p;
    for (i = 0; i < cfg->n_teams; i++) {
        struct esc_cfg_team *t = &cfg->teams[i];

        for (k = 0; k < t->n_topics; k++) {
            for (j = 0; j < t->topics[k].n_keywords; j++) {
                esc_free(t->topics[k].keywords[j]);
            }
            esc_free(t->topics[k].keywords);
            esc_free(t->topics[k].query);
            esc_free(t->topics[k].exclude);
        }
        s_strlist_free(t->exclude_authors, t->n_exclude_authors);
        s_strlist_free(t->exclude_sites, t->n_exclude_sites);
        s_strlist_free(t->exclude_phrases, t->n_exclude_phrases);
        for (k = 0; k < t->n_recipients; k++) {
            esc_free(t->recipients[k]);
        }
        esc_free(t->recipients);
        esc_free(t->hooks);
        esc_free(t->topics);
    }
    esc_free(cfg->teams);
    esc_free(cfg->sources);
    json_decref((json_t *)cfg->root);
    esc_free(cfg);
    *cfg_p = NULL;
}

static const char *
s_type_name(enum esc_cfg_type t)
{
    switch (t) {
    case ESC_CFG_T_STR:
        return "string";
    case ESC_CFG_T_INT:
        return "integer";
    case ESC_CFG_T_DBL:
        return "number";
    case ESC_CFG_T_BOOL:
        return "boolean";
    case ESC_CFG_T_END:
        break;
    }
    return "?";
}

void
esc_cfg_print_help(FILE *f, const char *path, const struct esc_cfg_entry *map)
{
    const struct esc_cfg_entry *e;

    for (e = map; e->key != NULL; e++) {
        fprintf(f, "  %s.%-22s %-8s default=%s", path, e->key, s_type_name(e->type),
                e->def == NULL ? "(required)" : (e->def[0] == '\0' ? "\"\"" : e->def));
        if (e->type == ESC_CFG_T_INT || e->type == ESC_CFG_T_DBL) {
            fprintf(f, " range=[%g, %g]", e->min, e->max);
        }
        fprintf(f, "\n      %s\n", e->desc);
    }
}

void
esc_cfg_print_values(FILE *f, const char *path, const struct esc_cfg_entry *map, const void *out)
{
    const struct esc_cfg_entry *e;

    for (e = map; e->key != NULL; e++) {
        const char *field = (const char *)out + e->offset;

        fprintf(f, "%s.%s = ", path, e->key);
        switch (e->type) {
        case ESC_CFG_T_STR:
            fprintf(f, "\"%s\"\n", field);
            break;
        case ESC_CFG_T_INT:
            fprintf(f, "%lld\n", (long long)*(const int64_t *)(const void *)field);
            break;
        case ESC_CFG_T_DBL:
            fprintf(f, "%g\n", *(const double *)(const void *)field);
            break;
        case ESC_CFG_T_BOOL:
            fprintf(f, "%s\n", *(const bool *)(const void *)field ? "true" : "false");
            break;
        case ESC_CFG_T_END:
            break;
        }
    }
}

const struct esc_cfg_topic *
esc_cfg_topic_find(const struct esc_cfg *cfg, const char *key)
{
    size_t i;
    size_t k;

    for (i = 0; i < cfg->n_teams; i++) {
        for (k = 0; k < cfg->teams[i].n_topics; k++) {
            if (strcmp(cfg->teams[i].topics[k].key, key) == 0) {
                return &cfg->teams[i].topics[k];
            }
        }
    }
    return NULL;
}

const struct esc_cfg_team *
esc_cfg_team_find(const struct esc_cfg *cfg, const char *id)
{
    size_t i;

    for (i = 0; i < cfg->n_teams; i++) {
        if (strcmp(cfg->teams[i].id, id) == 0) {
            return &cfg->teams[i];
        }
    }
    return NULL;
}

void
esc_cfg_kv_opts(const struct esc_cfg *cfg, struct esc_kv_opts *opts, char **password_out)
{
    memset(opts, 0, sizeof(*opts));
    opts->host = cfg->redis.host;
    opts->port = (int)cfg->redis.port;
    opts->unix_socket = cfg->redis.unix_socket[0] != '\0' ? cfg->redis.unix_socket : NULL;
    opts->username = cfg->redis.username[0] != '\0' ? cfg->redis.username : NULL;
    opts->db = (int)cfg->redis.db;
    opts->timeout_ms = (int)cfg->redis.timeout_ms;
    *password_out = esc_secret_load(cfg->redis.password_env, cfg->redis.password_file,
                                    "redis password");
    opts->password = *password_out;
}
