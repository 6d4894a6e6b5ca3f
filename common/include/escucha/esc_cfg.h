#ifndef ESC_CFG_H
#define ESC_CFG_H

/* Deployment configuration: one JSON file (docs/configuration.md) that every service reads.
 * esc_cfg_load parses the shared parts (redis, bus, teams/topics, sources) into plain structs;
 * each service maps its own section with a table of esc_cfg_entry (the single source of
 * defaults, bounds and docs) through esc_cfg_section_apply. Unknown keys, wrong types,
 * out-of-range values and missing required values are errors naming the key path; syntax errors
 * also give the line. Read once at start-up, then passed around as const. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "esc_rc.h"

#define ESC_CFG_EXIT_INVALID 2 /* exit code of a service whose config is invalid */

enum esc_cfg_type {
    ESC_CFG_T_END = 0,
    ESC_CFG_T_STR,  /* char field[N]; value longer than N-1 is an error */
    ESC_CFG_T_INT,  /* int64_t field */
    ESC_CFG_T_DBL,  /* double field */
    ESC_CFG_T_BOOL, /* bool field */
};

struct esc_cfg_entry {
    const char *key;       /* key inside the section */
    enum esc_cfg_type type;
    const char *def;       /* default as text; NULL = required */
    double min, max;       /* bounds for INT/DBL */
    size_t offset;         /* offset of the field in the target struct */
    size_t size;           /* size of the field (for STR: the buffer size) */
    const char *desc;      /* one line of documentation */
};

#define ESC_CFG_FIELD_SIZE(T, f) sizeof(((T *)0)->f)
#define ESC_CFG_STR(k, d, T, f, desc)                                                              \
    { (k), ESC_CFG_T_STR, (d), 0, 0, offsetof(T, f), ESC_CFG_FIELD_SIZE(T, f), (desc) }
#define ESC_CFG_INT(k, d, lo, hi, T, f, desc)                                                      \
    { (k), ESC_CFG_T_INT, (d), (lo), (hi), offsetof(T, f), ESC_CFG_FIELD_SIZE(T, f), (desc) }
#define ESC_CFG_DBL(k, d, lo, hi, T, f, desc)                                                      \
    { (k), ESC_CFG_T_DBL, (d), (lo), (hi), offsetof(T, f), ESC_CFG_FIELD_SIZE(T, f), (desc) }
#define ESC_CFG_BOOL(k, d, T, f, desc)                                                             \
    { (k), ESC_CFG_T_BOOL, (d), 0, 0, offsetof(T, f), ESC_CFG_FIELD_SIZE(T, f), (desc) }
#define ESC_CFG_END { NULL, ESC_CFG_T_END, NULL, 0, 0, 0, 0, NULL }

struct esc_cfg_redis {
    char host[256];          /* default 127.0.0.1 */
    int64_t port;            /* default 6379 */
    char unix_socket[256];   /* when set, used instead of host:port */
    int64_t db;
    char username[64];       /* ACL user, "" for the default user */
    char password_env[128];  /* name of the env var holding the password */
    char password_file[256]; /* or a file holding it */
    char prefix[32];         /* key prefix, default "esc" */
    int64_t timeout_ms;      /* connect/command timeout */
};

struct esc_cfg_bus {
    char collect[256];   /* broker intake: collectors connect PUSH, broker binds PULL */
    char classify[256];  /* broker output: broker binds PUSH, classifiers connect PULL */
    char aggregate[256]; /* aggregator binds PULL, classifiers connect PUSH */
    char notify[256];    /* notifier binds PULL, aggregators connect PUSH */
    char ack[256];       /* acknowledgements in: broker binds PULL, aggregators connect PUSH;
                            "" = off (docs/delivery.md) */
    char ack_pub[256];   /* acknowledgements out: broker binds PUB, collectors connect SUB */
    int64_t hwm;         /* ZeroMQ high-water mark, messages per socket */
    char curve_endpoints[64];          /* "collect,classify,aggregate,notify,ack", "all", "" */
    char curve_server_secret_file[256]; /* binders: file with the servers' secret key */
    char curve_server_public[41];      /* connecters: the servers' public key (Z85) */
    char curve_client_secret_file[256]; /* connecters: file with this process's secret key */
    char curve_authorized_file[256];   /* binders: allowed client public keys, one per line */
};

struct esc_cfg_hook {
    char url[512];          /* where alerts are POSTed as JSON */
    char secret_env[128];   /* env var holding the HMAC secret, or "" */
    char secret_file[256];  /* or a file holding it */
};

struct esc_cfg_topic {
    char id[64];        /* [a-z0-9_-], unique within the team */
    char key[130];      /* "team/topic": the id used on the bus and in Redis */
    char name[128];     /* human name, UTF-8 */
    char **keywords;    /* terms and phrases (any one matches); owned; may be empty when
                           query is set */
    size_t n_keywords;
    char *query;        /* boolean include query (docs/query-language.md), or NULL; owned */
    char *exclude;      /* boolean exclude query, or NULL; owned */
    bool fold_enye;     /* match this topic with ñ folded to n (default false) */
    size_t index;       /* position of this topic in teams[team].topics */
    size_t team_index;  /* position of its team */
};

struct esc_cfg_team {
    char id[64];              /* [a-z0-9_-], unique */
    char name[128];
    char language[8];         /* "es" or "en": language of mails */
    char timezone[64];        /* IANA name, e.g. America/Lima */
    char **recipients;        /* digest e-mail addresses; owned */
    size_t n_recipients;
    struct esc_cfg_hook *hooks; /* alert webhooks; owned */
    size_t n_hooks;
    struct esc_cfg_topic *topics; /* owned */
    size_t n_topics;
    char **exclude_authors;   /* "exclude": {"authors": [...]}: handles never counted; owned */
    size_t n_exclude_authors;
    char **exclude_sites;     /* link domains never counted; owned */
    size_t n_exclude_sites;
    char **exclude_phrases;   /* terms/phrases that exclude a post from every topic; owned */
    size_t n_exclude_phrases;
};

struct esc_cfg_source {
    char name[64];  /* unique; shows in logs and in each post's `source` */
    char type[32];  /* plugin name, e.g. "jsonl" */
    size_t index;   /* position in "sources" (for esc_cfg_section_apply "sources.N") */
};

struct esc_cfg {
    char path[512];               /* file it was read from */
    char deployment[64];          /* free name, shown in mails and logs */
    struct esc_cfg_redis redis;
    struct esc_cfg_bus bus;
    struct esc_cfg_team *teams;   /* owned */
    size_t n_teams;
    struct esc_cfg_source *sources; /* owned */
    size_t n_sources;
    void *root;                   /* internal (the parsed document) */
};

/* Loads and validates the shared parts of the file at path. Sections that belong to services
 * ("collector", "classifier", "aggregator", "notifier", "broker") are only checked to be objects
 * here; the service validates its own with esc_cfg_section_apply. Returns a caller-owned config
 * (esc_cfg_free), or NULL with err filled. */
struct esc_cfg *esc_cfg_load(const char *path, struct esc_error *err);
/* Same, from a string (source is used in messages). */
struct esc_cfg *esc_cfg_load_string(const char *json, const char *source, struct esc_error *err);
void esc_cfg_free(struct esc_cfg **cfg_p);

/* Topic overrides of one team as stored by escucha-api (docs/api.md, "Contract for the
 * classifier"). Everything is borrowed by esc_cfg_load_overlay. */
struct esc_cfg_overlay {
    const char *team;            /* team id; a team not in the file is skipped */
    const char *const *ids;      /* topic id of each stored value (the hash field) */
    const char *const *topics;   /* stored JSON: a topic object, or {"id", "deleted": true} */
    size_t n_topics;
    const char *exclude;         /* stored exclusion lists JSON, or NULL to keep the file's */
};

/* Loads the file at path like esc_cfg_load, then applies the overrides of each team on the
 * parsed document before validating it: a stored value with "deleted": true removes the
 * file topic of that id, any other value replaces it (same id, file order kept); ids not in
 * the file are added after the file topics in id order; exclude replaces the team's
 * "exclude" object. Null "query"/"exclude" values mean none. The result is validated exactly
 * like a file, so errors name the key path in the merged document ("teams[0].topics[2].query")
 * and, for a stored value that is not JSON, the team and topic id. Returns a caller-owned
 * config (esc_cfg_free) or NULL with err filled. */
struct esc_cfg *esc_cfg_load_overlay(const char *path, const struct esc_cfg_overlay *ov,
                                     size_t n, struct esc_error *err);

/* Maps the object at `path` ("aggregator", "aggregator.spike", "sources.2",
 * "teams.0.topics.1.spike") onto `out` with `map`: defaults first, then the file's values, then
 * environment overrides ESC_<PATH>_<KEY> (upper case, '.' -> '_'). A missing object means all
 * defaults. Keys listed in `ignore` (NULL-terminated, may be NULL) are allowed and skipped.
 * Returns ESC_OK or ESC_INVALID with err naming the key path. */
esc_rc esc_cfg_section_apply(const struct esc_cfg *cfg, const char *path,
                             const struct esc_cfg_entry *map, const char *const *ignore, void *out,
                             struct esc_error *err);
/* Applies only the defaults of map onto out. */
void esc_cfg_defaults(const struct esc_cfg_entry *map, void *out);

/* Prints the map as documentation (key, type, default, bounds, description). */
void esc_cfg_print_help(FILE *f, const char *path, const struct esc_cfg_entry *map);
/* Prints the effective values of out. */
void esc_cfg_print_values(FILE *f, const char *path, const struct esc_cfg_entry *map,
                          const void *out);

/* Looks a topic up by its key "team/topic"; borrowed, NULL when unknown. */
const struct esc_cfg_topic *esc_cfg_topic_find(const struct esc_cfg *cfg, const char *key);
const struct esc_cfg_team *esc_cfg_team_find(const struct esc_cfg *cfg, const char *id);

/* Builds the Redis options from cfg->redis, loading the password from env/file.
 * Returns a caller-owned password in *password_out (NULL when none). */
struct esc_kv_opts;
void esc_cfg_kv_opts(const struct esc_cfg *cfg, struct esc_kv_opts *opts, char **password_out);

#endif
