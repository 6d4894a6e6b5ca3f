#ifndef API_CONFIG_H
#define API_CONFIG_H

/* escucha-api's configuration: section "api" (scalars, mapped by a table) and its access
 * tokens, given as SHA-256 hashes in "api.tokens" and/or in the JSON file "api.tokens_file"
 * (docs/api.md, "Access"). A token's plain text never appears in any file. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_rc.h"

#define API_TOKEN_HASH_LEN 32 /* SHA-256 */
#define API_TEAM_ANY "*"      /* team of an admin token: every team */

enum api_role {
    API_ROLE_FEED = 0, /* may read the RSS/JSON feeds of its team only */
    API_ROLE_VIEWER,   /* reads everything of its team */
    API_ROLE_EDITOR,   /* viewer + edits its team's topics and exclusion lists */
    API_ROLE_ADMIN,    /* everything, every team */
};

struct api_token {
    char name[64];                          /* who: shown in the audit log, never secret */
    char team[64];                          /* team id, or "*" for admin */
    enum api_role role;
    unsigned char hash[API_TOKEN_HASH_LEN]; /* SHA-256 of the token text */
};

struct api_cfg {
    char listen[64];           /* "127.0.0.1:8080"; port 0 = any free port */
    char web_root[512];        /* folder of the built dashboard ("" = no dashboard) */
    char tokens_file[512];     /* JSON file with more tokens ("" = none) */
    char cors_origin[256];     /* allowed Origin for CORS ("" = no CORS headers) */
    char validator[512];       /* escucha-classifier binary for --check-query ("" = none) */
    int64_t validator_timeout_ms;
    int64_t max_body;          /* request body limit, bytes */
    double rate_per_s;         /* token bucket: requests per second per token */
    int64_t rate_burst;        /* token bucket size */
    int64_t max_points;        /* most buckets one series/summary request may read */
    int64_t max_connections;
    int64_t sse_max;           /* concurrent live streams */
    int64_t sse_keepalive_ms;  /* comment line sent on an idle stream */
    int64_t live_keep;         /* posts kept per team for live replay */
    int64_t feed_items;        /* items in a feed */
    int64_t audit_keep;        /* entries kept in <prefix>:audit:{team} */
    int64_t grace_ms;          /* on SIGTERM, how long open requests may take */
    char metrics_listen[64];   /* /metrics and /healthz ("" = off) */
    struct api_token *tokens;  /* owned */
    size_t n_tokens;
};

/* Reads section "api" and the tokens (inline and file) into out, which api_cfg_fini releases
 * whatever the result. Tokens must name a configured team (or "*" with role admin), a role
 * (feed, viewer, editor, admin), a unique name and a 64-digit hex sha256. Returns ESC_OK or
 * ESC_INVALID with err naming the key path. */
esc_rc api_cfg_load(const struct esc_cfg *cfg, struct api_cfg *out, struct esc_error *err);
void api_cfg_fini(struct api_cfg *ac);

/* Parses the tokens of a JSON array text (the shape of "api.tokens") and appends them to ac.
 * source names the text in errors. Returns ESC_OK or ESC_INVALID with err filled. */
esc_rc api_cfg_add_tokens(const struct esc_cfg *cfg, struct api_cfg *ac, const char *json,
                          const char *source, struct esc_error *err);

/* "feed", "viewer", "editor", "admin"; -1 when unknown. */
int api_role_parse(const char *s);
const char *api_role_name(enum api_role role);

/* SHA-256 of the token text as 64 lower-case hex digits into hex (>= 65 bytes). Returns hex. */
char *api_token_hash_hex(const char *token, size_t len, char *hex, size_t hexsz);

void api_cfg_print_help(FILE *f);
void api_cfg_print_values(FILE *f, const struct api_cfg *ac);

#endif
