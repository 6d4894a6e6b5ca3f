#define ESC_LOG_MODULE "cjson"
/* jansson helpers shared by the connectors: dotted-path lookups that are forgiving about
 * optional, nullable and mistyped fields, numeric strings read as numbers, and a parse error
 * text without jansson's quote of the input (which may be post text, never logged above
 * debug). Pure functions; any thread. */
#include <stdlib.h>
#include <string.h>

#include "cjson.h"

#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#define S_DEPTH_MAX 64

json_t *
col_json_parse(const char *body, size_t len, struct esc_error *err)
{
    json_error_t je;
    json_t *j;

    if (len == 0) {
        esc_error_set(err, 0, "empty body, expected JSON");
        return NULL;
    }
    j = json_loadb(body, len, 0, &je);
    if (j == NULL) {
        const char *near = strstr(je.text, " near '");
        char text[160];

        esc_strlcpy(text, je.text, sizeof(text));
        if (near != NULL && (size_t)(near - je.text) < sizeof(text)) {
            text[near - je.text] = '\0';
        }
        esc_error_set(err, je.line, "malformed JSON: %s at line %d column %d", text, je.line,
                      je.column);
        return NULL;
    }
    return j;
}

json_t *
col_json_get(const json_t *root, const char *path)
{
    const json_t *cur = root;
    const char *p = path;
    char key[128];
    size_t n;
    int depth = 0;

    while (cur != NULL && *p != '\0' && depth++ < S_DEPTH_MAX) {
        n = strcspn(p, ".");
        if (n >= sizeof(key) || !json_is_object(cur)) {
            return NULL;
        }
        memcpy(key, p, n);
        key[n] = '\0';
        cur = json_object_get(cur, key);
        p += n;
        if (*p == '.') {
            p++;
        }
    }
    return (json_t *)(uintptr_t)cur;
}

const char *
col_json_str(const json_t *root, const char *path)
{
    json_t *v = col_json_get(root, path);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

int64_t
col_json_int(const json_t *root, const char *path, int64_t def)
{
    json_t *v = col_json_get(root, path);
    int64_t out;

    if (json_is_integer(v)) {
        return (int64_t)json_integer_value(v);
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);

        return d > -9.2e18 && d < 9.2e18 ? (int64_t)d : def;
    }
    if (json_is_string(v) && esc_parse_i64(json_string_value(v), INT64_MIN, INT64_MAX, &out) == 0) {
        return out;
    }
    return def;
}

double
col_json_num(const json_t *root, const char *path, double def)
{
    json_t *v = col_json_get(root, path);

    if (json_is_number(v)) {
        return json_number_value(v);
    }
    if (json_is_string(v)) {
        char *end = NULL;
        double d = strtod(json_string_value(v), &end);

        if (end != NULL && end != json_string_value(v) && *end == '\0') {
            return d;
        }
    }
    return def;
}

void
col_set_str(char **field, const char *v)
{
    if (v == NULL || v[0] == '\0') {
        return;
    }
    esc_free(*field);
    *field = esc_strdup(v);
}
