#ifndef NTF_CATCHUP_H
#define NTF_CATCHUP_H

/* The alert catch-up (issue #9): the notifier re-reads the newest entries of each configured
 * team's alert history <prefix>:alerts:{<team>} (JSON written by the aggregator's flush,
 * esc_alert_to_json) and hands every recent alert to the same inbox a bus-received alert
 * goes to, so an alert lost between the bus and the Redis queue (notifier killed) is still
 * delivered; the queue's per-(hook, kind, alert id) marker makes it idempotent. This module
 * holds the pieces without I/O: the parser of one history entry and the in-memory set of alerts
 * already handled (so a periodic catch-up does not ask Redis about them again). */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_msg.h"
#include "escucha/esc_rc.h"

#define NTF_CATCHUP_SCAN 200      /* newest entries of a team's list read per catch-up */
#define NTF_CATCHUP_SEEN_MAX 4096 /* alerts remembered as handled (oldest forgotten first) */

enum ntf_catchup_entry {
    NTF_CATCHUP_BAD = -1,  /* not an alert of this team: err says why */
    NTF_CATCHUP_OLD = 0,   /* a valid alert raised before since_ms */
    NTF_CATCHUP_ALERT = 1, /* out holds it */
};

/* Parses one entry of team_id's alert history into out (initialised here; the caller must
 * esc_alert_fini it whatever the result). The entry must be a JSON object with the string
 * fields id, team (equal to team_id), topic and kind ("spike" or "ended") and the integer fields
 * ts, window_start and window_end; expected and score, when present, must be numbers; the other
 * fields of esc_alert_to_json are optional. */
enum ntf_catchup_entry ntf_catchup_parse(const char *text, size_t len, const char *team_id,
                                         int64_t since_ms, struct esc_alert *out,
                                         struct esc_error *err);

/* A bounded set of strings (alert ids, or ntf_catchup_bad_key of bad entries). */
typedef struct ntf_seen ntf_seen_t;

/* Caller owns the result. cap > 0 strings are kept; adding more forgets the oldest. */
ntf_seen_t *ntf_seen_new(size_t cap);
void ntf_seen_destroy(ntf_seen_t **p);
void ntf_seen_add(ntf_seen_t *s, const char *key);
int ntf_seen_has(const ntf_seen_t *s, const char *key);

/* The key under which a malformed entry is remembered: "bad:" and a hash of its bytes. */
void ntf_catchup_bad_key(const char *text, size_t len, char out[32]);

#endif
