#ifndef API_TOPICS_H
#define API_TOPICS_H

/* A team's topics as the API shows and edits them (docs/api.md, "Topic editing"): the topics
 * of the config file, overridden by what editors stored in Redis (hash
 * <prefix>:topics:{<team>}, field = topic id, value = topic JSON, or {"id", "deleted": true}
 * for a config topic that was deleted), plus the team's exclusion lists (config, or the JSON in
 * <prefix>:exclude:{<team>}). Every change bumps <prefix>:topics:version and appends an entry
 * to <prefix>:audit:{<team>}. Queries are validated by running the classifier's validator. The
 * caller holds the kv exclusively. */

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_rc.h"

#define API_TOPIC_KEYWORDS_MAX 256
#define API_TOPIC_KEYWORD_LEN 200
#define API_TOPIC_QUERY_LEN 4096
#define API_EXCLUDE_MAX 1000

/* Who changes something, for the audit list. */
struct api_actor {
    const char *name; /* token name */
    const char *role; /* its role */
};

/* The effective topics of team: a new array of topic objects ({"id","name","keywords",
 * "query","exclude","fold_enye","source":"config"|"api"}), config order first, then topics
 * created through the API by id. ESC_OK or ESC_RETRY. */
esc_rc api_topics_list(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team,
                       json_t **out);

/* One topic of the effective list (a new reference), or *out = NULL when there is none. */
esc_rc api_topics_get(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team,
                      const char *id, json_t **out);

/* Checks the shape of a topic body (id given separately: from the path; a body "id" must
 * match it). On success returns a new normalised topic object; on failure NULL and details
 * gets one {"field","message"} per problem (details is a borrowed array to append to). */
json_t *api_topic_check(json_t *body, const char *id, json_t *details);

/* Runs `validator --check-query Q` (timeout_ms) and appends to details one
 * {"field", "column", "message", "severity"} per line it prints. Returns ESC_OK (query valid;
 * warnings may be in details), ESC_INVALID (errors in details), or ESC_ERR when the validator
 * could not be run or misbehaved (logged). validator "" means no validator: ESC_OK. */
esc_rc api_query_validate(const char *validator, int64_t timeout_ms, const char *field,
                          const char *query, json_t *details);

/* Stores topic (normalised, with "id") as team's version of id, records the audit entry with
 * before (NULL = created) and bumps the version. ESC_OK or ESC_RETRY. */
esc_rc api_topics_put(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team,
                      json_t *topic, json_t *before, const struct api_actor *who,
                      int64_t audit_keep);

/* Deletes id (a tombstone for a config topic, the override otherwise), audits and bumps the
 * version. before is the topic as it was. ESC_OK or ESC_RETRY. */
esc_rc api_topics_delete(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team,
                         const char *id, json_t *before, const struct api_actor *who,
                         int64_t audit_keep);

/* Team's exclusion lists {"authors":[...],"sites":[...],"phrases":[...],"source"}. */
esc_rc api_exclude_get(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team,
                       json_t **out);
/* Checks an exclusion body; a new normalised object or NULL with details. */
json_t *api_exclude_check(json_t *body, json_t *details);
/* Stores it, audits, bumps the version. */
esc_rc api_exclude_put(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team,
                       json_t *excl, json_t *before, const struct api_actor *who,
                       int64_t audit_keep);

/* Up to limit audit entries of team, newest first: {"audit":[...]}. */
esc_rc api_audit_list(esc_kv_t *kv, const char *prefix, const char *team, size_t limit,
                      json_t **out);

/* Parses the validator's output (lines "error: column N: text" / "warning: ..."; other lines,
 * such as the caret under the query, are skipped) into details. Returns the error count. */
size_t api_query_parse_output(const char *out, const char *field, json_t *details);

#endif
