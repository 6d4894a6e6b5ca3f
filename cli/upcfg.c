#define ESC_LOG_MODULE "upcfg"
/* The config values `escucha up` needs that no shared struct holds (see upcfg.h), read with
 * jansson straight from the file: the metrics address of each service section, whether the
 * redis object names a server, the API's listen address. Each value can be overridden from
 * the environment exactly as the services allow (ESC_<SECTION>_<KEY>). Single-threaded. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "escucha/esc_util.h"

#include "upcfg.h"

static const char *const s_names[CLI_SVC_N] = {
    [CLI_SVC_NOTIFIER] = "notifier", [CLI_SVC_AGGREGATOR] = "aggregator",
    [CLI_SVC_CLASSIFIER] = "classifier", [CLI_SVC_BROKER] = "broker",
    [CLI_SVC_API] = "api",           [CLI_SVC_COLLECTOR] = "collector",
};

const char *
cli_svc_name(enum cli_svc svc)
{
    ESC_ASSERT(svc < CLI_SVC_N);
    return s_names[svc];
}

/* getenv("ESC_<SECTION>_<KEY>"). */
static const char *
s_env(const char *section, const char *key)
{
    char name[128];
    size_t i;

    snprintf(name, sizeof(name), "ESC_%s_%s", section, key);
    for (i = 0; name[i] != '\0'; i++) {
        name[i] = (name[i] == '.' || name[i] == '-') ? '_' : (char)toupper((unsigned char)name[i]);
    }
    return getenv(name);
}

/* section.key as a string: the environment, else the file, else def. */
static void
s_str(json_t *root, const char *section, const char *key, const char *def, char *out,
      size_t outsz)
{
    const char *env = s_env(section, key);
    json_t *v = json_object_get(json_object_get(root, section), key);

    if (env != NULL) {
        esc_strlcpy(out, env, outsz);
    }
    else if (json_is_string(v)) {
        esc_strlcpy(out, json_string_value(v), outsz);
    }
    else {
        esc_strlcpy(out, def, outsz);
    }
}

esc_rc
cli_upcfg_read(const char *path, struct cli_upcfg *out, struct esc_error *err)
{
    static const char *const redis_keys[] = { "host", "port", "unix_socket" };
    json_error_t jerr;
    json_t *root;
    json_t *redis;
    const char *env;
    size_t i;

    memset(out, 0, sizeof(*out));
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        esc_error_set(err, jerr.line, "%s", jerr.text);
        return ESC_INVALID;
    }
    redis = json_object_get(root, "redis");
    for (i = 0; i < ESC_ARRAY_LEN(redis_keys); i++) {
        if (json_object_get(redis, redis_keys[i]) != NULL
            || s_env("redis", redis_keys[i]) != NULL) {
            out->redis_named = true;
        }
    }
    out->has_api = json_is_object(json_object_get(root, "api"));
    for (i = 0; i < CLI_SVC_N; i++) {
        s_str(root, s_names[i], "metrics_listen", "", out->metrics[i], sizeof(out->metrics[i]));
    }
    s_str(root, "api", "listen", "127.0.0.1:8080", out->api_listen, sizeof(out->api_listen));
    env = s_env("aggregator", "connect_in");
    if (env != NULL) {
        out->agg_connect_in = strcmp(env, "true") == 0;
    }
    else {
        out->agg_connect_in =
            json_is_true(json_object_get(json_object_get(root, "aggregator"), "connect_in"));
    }
    json_decref(root);
    return ESC_OK;
}

int
cli_hostport_parse(const char *s, char *host, size_t hostsz, int *port)
{
    const char *colon;
    int64_t p;
    size_t len;

    if (strncmp(s, "tcp://", 6) == 0) {
        s += 6;
    }
    colon = strrchr(s, ':');
    if (colon == NULL) {
        return -1;
    }
    len = (size_t)(colon - s);
    if (len >= hostsz) {
        return -1;
    }
    memcpy(host, s, len);
    host[len] = '\0';
    if (strcmp(colon + 1, "*") == 0) {
        *port = 0;
        return 0;
    }
    if (esc_parse_i64(colon + 1, 0, 65535, &p) != 0) {
        return -1;
    }
    *port = (int)p;
    return 0;
}
