#define ESC_LOG_MODULE "config"
/* Maps section "api" with an esc_cfg_entry table (the single source of defaults, bounds and
 * --help-config) and reads the access tokens. Tokens are arrays of objects, which the scalar
 * table cannot express: "api.tokens" is skipped by esc_cfg_section_apply and read here from the
 * same file with jansson, and "api.tokens_file" (an array, or {"tokens": [...]}) likewise.
 * Only SHA-256 hashes are accepted; a token's text is never configured anywhere. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_util.h"

#include "config.h"

#ifndef API_WEB_ROOT_DEFAULT
#define API_WEB_ROOT_DEFAULT ""
#endif
#ifndef API_VALIDATOR_DEFAULT
#define API_VALIDATOR_DEFAULT ""
#endif

#define S_TOKENS_MAX 10000

static const struct esc_cfg_entry api_cfg_map[] = {
    ESC_CFG_STR("listen", "127.0.0.1:8080", struct api_cfg, listen,
                "address of the API and dashboard, host:port (port 0 = any free port)"),
    ESC_CFG_STR("web_root", API_WEB_ROOT_DEFAULT, struct api_cfg, web_root,
                "folder of the built dashboard served under / (\"\" = API only)"),
    ESC_CFG_STR("tokens_file", "", struct api_cfg, tokens_file,
                "JSON file with more tokens (same shape as api.tokens)"),
    ESC_CFG_STR("cors_origin", "", struct api_cfg, cors_origin,
                "Origin allowed to call the API from another site (\"\" = no CORS)"),
    ESC_CFG_STR("validator", API_VALIDATOR_DEFAULT, struct api_cfg, validator,
                "escucha-classifier binary run as `--check-query Q` to validate topic queries "
                "(\"\" = shape checks only)"),
    ESC_CFG_INT("validator_timeout_ms", "3000", 100, 60000, struct api_cfg, validator_timeout_ms,
                "longest a query validation may take"),
    ESC_CFG_INT("max_body", "65536", 1024, 1048576, struct api_cfg, max_body,
                "largest request body accepted, bytes (413 beyond)"),
    ESC_CFG_DBL("rate_per_s", "20", 0.01, 100000, struct api_cfg, rate_per_s,
                "requests per second one token may make on average (429 beyond)"),
    ESC_CFG_INT("rate_burst", "100", 1, 1000000, struct api_cfg, rate_burst,
                "requests one token may make at once (token bucket size)"),
    ESC_CFG_INT("max_points", "5000", 10, 1000000, struct api_cfg, max_points,
                "most buckets one series or summary request reads"),
    ESC_CFG_INT("max_connections", "256", 4, 10000, struct api_cfg, max_connections,
                "concurrent HTTP connections (one thread each)"),
    ESC_CFG_INT("sse_max", "64", 1, 10000, struct api_cfg, sse_max,
                "concurrent live streams (503 beyond)"),
    ESC_CFG_INT("sse_keepalive_ms", "15000", 100, 300000, struct api_cfg, sse_keepalive_ms,
                "an idle live stream gets a comment line this often"),
    ESC_CFG_INT("live_keep", "200", 1, 100000, struct api_cfg, live_keep,
                "live posts kept per team, replayed to a stream that (re)connects"),
    ESC_CFG_INT("feed_items", "50", 1, 1000, struct api_cfg, feed_items,
                "items in a topic's RSS / JSON feed"),
    ESC_CFG_INT("audit_keep", "10000", 10, 10000000, struct api_cfg, audit_keep,
                "entries kept in a team's audit list"),
    ESC_CFG_INT("grace_ms", "3000", 0, 600000, struct api_cfg, grace_ms,
                "on SIGTERM, how long open requests may still take"),
    ESC_CFG_METRICS(struct api_cfg, metrics_listen),
    ESC_CFG_END,
};

static const char *const s_api_ignore[] = { "tokens", "comment", NULL };
static const char *const s_role_names[] = { "feed", "viewer", "editor", "admin" };

int
api_role_parse(const char *s)
{
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(s_role_names); i++) {
        if (strcmp(s, s_role_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *
api_role_name(enum api_role role)
{
    return (size_t)role < ESC_ARRAY_LEN(s_role_names) ? s_role_names[role] : "?";
}

char *
api_token_hash_hex(const char *token, size_t len, char *hex, size_t hexsz)
{
    unsigned char h[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(h, (const unsigned char *)token, len);
    sodium_bin2hex(hex, hexsz, h, sizeof(h));
    sodium_memzero(h, sizeof(h));
    return hex;
}

/* Reads one token object at path into t. */
static esc_rc
s_token_parse(const struct esc_cfg *cfg, json_t *o, const char *path, struct api_token *t,
              struct esc_error *err)
{
    static const char *const keys[] = { "name", "team", "role", "sha256", "comment", NULL };
    const char *key;
    json_t *v;
    const char *name;
    const char *team;
    const char *role;
    const char *hex;
    size_t bin_len = 0;
    int r;
    size_t i;
    int known;

    if (!json_is_object(o)) {
        esc_error_set(err, 0, "%s: expected an object", path);
        return ESC_INVALID;
    }
    json_object_foreach(o, key, v) {
        known = 0;
        for (i = 0; keys[i] != NULL; i++) {
            known |= strcmp(keys[i], key) == 0;
        }
        if (!known) {
            if (strcmp(key, "token") == 0) {
                esc_error_set(err, 0, "%s.token: plain tokens are not accepted, give \"sha256\" "
                              "(escucha-api --hash-token)", path);
            }
            else {
                esc_error_set(err, 0, "%s.%s: unknown key", path, key);
            }
            return ESC_INVALID;
        }
    }
    name = json_string_value(json_object_get(o, "name"));
    team = json_string_value(json_object_get(o, "team"));
    role = json_string_value(json_object_get(o, "role"));
    hex = json_string_value(json_object_get(o, "sha256"));
    if (name == NULL || name[0] == '\0' || strlen(name) >= sizeof(t->name)) {
        esc_error_set(err, 0, "%s.name: expected a non-empty string of at most %zu bytes", path,
                      sizeof(t->name) - 1);
        return ESC_INVALID;
    }
    if (team == NULL || strlen(team) >= sizeof(t->team)) {
        esc_error_set(err, 0, "%s.team: expected a team id or \"*\"", path);
        return ESC_INVALID;
    }
    r = role != NULL ? api_role_parse(role) : -1;
    if (r < 0) {
        esc_error_set(err, 0, "%s.role: expected feed, viewer, editor or admin", path);
        return ESC_INVALID;
    }
    if (strcmp(team, API_TEAM_ANY) == 0) {
        if (r != API_ROLE_ADMIN) {
            esc_error_set(err, 0, "%s.team: \"*\" needs role admin", path);
            return ESC_INVALID;
        }
    }
    else if (esc_cfg_team_find(cfg, team) == NULL) {
        esc_error_set(err, 0, "%s.team: no team \"%s\" in teams", path, team);
        return ESC_INVALID;
    }
    if (hex == NULL || strlen(hex) != 2 * API_TOKEN_HASH_LEN
        || sodium_hex2bin(t->hash, sizeof(t->hash), hex, strlen(hex), NULL, &bin_len, NULL) != 0
        || bin_len != API_TOKEN_HASH_LEN) {
        esc_error_set(err, 0, "%s.sha256: expected 64 hex digits (escucha-api --hash-token)",
                      path);
        return ESC_INVALID;
    }
    esc_strlcpy(t->name, name, sizeof(t->name));
    esc_strlcpy(t->team, team, sizeof(t->team));
    t->role = (enum api_role)r;
    return ESC_OK;
}

/* Appends the tokens of array arr (path names it in errors). */
static esc_rc
s_tokens_add(const struct esc_cfg *cfg, struct api_cfg *ac, json_t *arr, const char *path,
             struct esc_error *err)
{
    size_t i;
    size_t k;
    json_t *o;
    char p[600];

    if (!json_is_array(arr)) {
        esc_error_set(err, 0, "%s: expected an array of tokens", path);
        return ESC_INVALID;
    }
    if (ac->n_tokens + json_array_size(arr) > S_TOKENS_MAX) {
        esc_error_set(err, 0, "%s: more than %d tokens", path, S_TOKENS_MAX);
        return ESC_INVALID;
    }
    ac->tokens = esc_realloc(ac->tokens, (ac->n_tokens + json_array_size(arr) + 1)
                                             * sizeof(*ac->tokens));
    json_array_foreach(arr, i, o) {
        struct api_token *t = &ac->tokens[ac->n_tokens];

        memset(t, 0, sizeof(*t));
        snprintf(p, sizeof(p), "%s.%zu", path, i);
        if (s_token_parse(cfg, o, p, t, err) != ESC_OK) {
            return ESC_INVALID;
        }
        for (k = 0; k < ac->n_tokens; k++) {
            if (strcmp(ac->tokens[k].name, t->name) == 0) {
                esc_error_set(err, 0, "%s.name: \"%s\" is used twice", p, t->name);
                return ESC_INVALID;
            }
            if (sodium_memcmp(ac->tokens[k].hash, t->hash, API_TOKEN_HASH_LEN) == 0) {
                esc_error_set(err, 0, "%s.sha256: same token as \"%s\"", p, ac->tokens[k].name);
                return ESC_INVALID;
            }
        }
        ac->n_tokens++;
    }
    return ESC_OK;
}

esc_rc
api_cfg_add_tokens(const struct esc_cfg *cfg, struct api_cfg *ac, const char *json,
                   const char *source, struct esc_error *err)
{
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr);
    json_t *arr;
    esc_rc rc;

    if (root == NULL) {
        esc_error_set(err, jerr.line, "%s: %s", source, jerr.text);
        return ESC_INVALID;
    }
    arr = json_is_object(root) ? json_object_get(root, "tokens") : root;
    rc = s_tokens_add(cfg, ac, arr, source, err);
    json_decref(root);
    return rc;
}

/* Reads "api.tokens" from the config file itself (the scalar table skipped it). */
static esc_rc
s_inline_tokens(const struct esc_cfg *cfg, struct api_cfg *ac, struct esc_error *err)
{
    json_error_t jerr;
    json_t *root;
    json_t *arr;
    esc_rc rc = ESC_OK;

    root = json_load_file(cfg->path, 0, &jerr);
    if (root == NULL) {
        /* a config loaded from a string has no file to read again: no inline tokens */
        return ESC_OK;
    }
    arr = json_object_get(json_object_get(root, "api"), "tokens");
    if (arr != NULL) {
        rc = s_tokens_add(cfg, ac, arr, "api.tokens", err);
    }
    json_decref(root);
    return rc;
}

esc_rc
api_cfg_load(const struct esc_cfg *cfg, struct api_cfg *out, struct esc_error *err)
{
    char *text = NULL;
    FILE *f;
    long len;
    esc_rc rc;

    memset(out, 0, sizeof(*out));
    rc = esc_cfg_section_apply(cfg, "api", api_cfg_map, s_api_ignore, out, err);
    if (rc != ESC_OK) {
        return rc;
    }
    if (sodium_init() < 0) {
        esc_error_set(err, 0, "api: libsodium failed to initialise");
        return ESC_INVALID;
    }
    rc = s_inline_tokens(cfg, out, err);
    if (rc != ESC_OK || out->tokens_file[0] == '\0') {
        return rc;
    }
    f = fopen(out->tokens_file, "r");
    len = -1;
    if (f != NULL && fseek(f, 0, SEEK_END) == 0) {
        len = ftell(f);
    }
    if (f == NULL || len < 0 || len > (8L << 20) || fseek(f, 0, SEEK_SET) != 0) {
        esc_error_set(err, 0, "api.tokens_file: cannot read %s", out->tokens_file);
        if (f != NULL) {
            fclose(f);
        }
        return ESC_INVALID;
    }
    text = esc_malloc((size_t)len + 1);
    if (fread(text, 1, (size_t)len, f) != (size_t)len) {
        esc_error_set(err, 0, "api.tokens_file: cannot read %s", out->tokens_file);
        rc = ESC_INVALID;
    }
    else {
        text[len] = '\0';
        rc = api_cfg_add_tokens(cfg, out, text, "api.tokens_file", err);
    }
    fclose(f);
    esc_free(text);
    return rc;
}

void
api_cfg_fini(struct api_cfg *ac)
{
    if (ac->tokens != NULL) {
        sodium_memzero(ac->tokens, ac->n_tokens * sizeof(*ac->tokens));
    }
    ESC_FREE(ac->tokens);
    ac->n_tokens = 0;
}

void
api_cfg_print_help(FILE *f)
{
    esc_cfg_print_help(f, "api", api_cfg_map);
    fprintf(f, "api.tokens  array of {name, team (or \"*\" for admin), role (feed|viewer|editor|"
               "admin), sha256}: access tokens by hash\n");
}

void
api_cfg_print_values(FILE *f, const struct api_cfg *ac)
{
    size_t i;

    esc_cfg_print_values(f, "api", api_cfg_map, ac);
    for (i = 0; i < ac->n_tokens; i++) {
        fprintf(f, "api.tokens.%zu = %s team=%s role=%s\n", i, ac->tokens[i].name,
                ac->tokens[i].team, api_role_name(ac->tokens[i].role));
    }
}
