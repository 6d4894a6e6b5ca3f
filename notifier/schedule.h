#ifndef NTF_SCHEDULE_H
#define NTF_SCHEDULE_H

/* Digest schedules and exactly-once sending.
 *
 * Schedule: "notifier.digest.default" (every team) overlaid by "notifier.digest.<team id>";
 * each says how often (daily, weekly, monthly), on which weekday / day of the month and at which
 * local time (the team's time zone) the digest of the period that just ended goes out, and
 * whether an empty digest is sent.
 *
 * Exactly once: a digest is identified by team + period label, and its state lives in one Redis
 * string <prefix>:ntf:digest:{<team>}:<period>, changed only by small Lua scripts (atomic):
 *   (absent)                          nobody has started: claimable
 *   sending:<attempt>:<token>         claimed by <token> (instance + nonce), expires (lease)
 *   retry:<attempt>:<not_before>:<token>  the last attempt failed; claimable after not_before
 *   sent:<ms>:<token> / skipped:<ms>:<token> / failed:<ms>:<token>   final, never expires
 * See docs/notifier.md for the one window in which a digest can go out twice. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_rc.h"
#include "week.h"

#define NTF_CLAIM_TOKEN_MAX 96
#define NTF_CLAIM_ATTEMPTS_MAX 10   /* failed sends of one digest before it is given up */
#define NTF_CLAIM_RETRY_BASE_S 60   /* first retry after a failed send; doubles per attempt */
#define NTF_CLAIM_RETRY_MAX_S 3600  /* longest wait between two attempts */

/* One team's schedule as configured (mapped by ntf_sched_cfg_map). */
struct ntf_sched_cfg {
    bool enabled;       /* false: no scheduled digest (the --digest command still works) */
    char every[16];     /* "daily", "weekly" or "monthly" */
    char weekday[8];    /* weekly: mon..sun, the day it goes out */
    int64_t monthday;   /* monthly: day of the month it goes out, 1..28 */
    char time[8];       /* local time it goes out, "HH:MM" (24 h) */
    bool send_empty;    /* also send when nothing happened in the period */
};

/* The same, checked and parsed. */
struct ntf_sched_rule {
    bool enabled;
    enum ntf_period_kind kind;
    int weekday;        /* 0 = Monday .. 6 = Sunday */
    int monthday;       /* 1..28 */
    int minute;         /* minutes after local midnight */
    bool send_empty;
};

extern const struct esc_cfg_entry ntf_sched_cfg_map[];

/* Loads the rule of team_id: defaults, then notifier.digest.default, then
 * notifier.digest.<team_id> (environment overrides ESC_NOTIFIER_DIGEST_<...>_<KEY> apply at each
 * level). Returns ESC_OK or ESC_INVALID with err naming the key. */
esc_rc ntf_sched_rule_load(const struct esc_cfg *cfg, const char *team_id,
                           struct ntf_sched_rule *out, struct esc_error *err);
/* Checks notifier.digest: only "default" and known team ids, each a valid schedule. */
esc_rc ntf_sched_cfg_check(const struct esc_cfg *cfg, struct esc_error *err);

/* Prints every team's effective schedule, one line each (for --dump-config). */
void ntf_sched_print(FILE *f, const struct esc_cfg *cfg);

/* UTC second at which the digest of the period starting at local day first_day goes out. */
int64_t ntf_sched_send_at(const struct ntf_sched_rule *r, const char *tz, int64_t first_day);
/* First day of the latest period whose digest was due at or before UTC second now. */
int64_t ntf_sched_due(const struct ntf_sched_rule *r, const char *tz, int64_t now);

/* ---- claims ------------------------------------------------------------------------------ */

enum ntf_claim_rc {
    NTF_CLAIM_OK = 0,  /* claimed: go ahead and send */
    NTF_CLAIM_DONE,    /* already sent, skipped or given up */
    NTF_CLAIM_BUSY,    /* another sender holds a live lease */
    NTF_CLAIM_WAIT,    /* a failed attempt's back-off has not elapsed */
};

/* A claim held on one digest. */
struct ntf_claim {
    char key[256];                     /* the state key */
    char token[NTF_CLAIM_TOKEN_MAX];   /* who holds it: instance id + nonce */
    char value[NTF_CLAIM_TOKEN_MAX + 32]; /* the "sending:..." value written */
    int attempt;                       /* 1 for the first attempt */
    char state[NTF_CLAIM_TOKEN_MAX + 48]; /* the state found when the claim was refused */
};

/* Writes the state key of team + period label into out. */
void ntf_claim_key(const char *prefix, const char *team_id, const char *label, char *out,
                   size_t outsz);
/* A process-wide instance id "host:pid:random" (computed once). Borrowed. */
const char *ntf_instance_id(void);

/* Tries to claim the digest: on NTF_CLAIM_OK the key is "sending" with a lease of lease_ms.
 * force: claim whatever the state (an operator's explicit resend). *out receives the outcome.
 * Returns ESC_OK (see *out), ESC_RETRY (Redis unreachable) or ESC_ERR (error reply; logged). */
esc_rc ntf_claim_try(esc_kv_t *kv, const char *key, int64_t lease_ms, int64_t now_ms, int force,
                     struct ntf_claim *c, enum ntf_claim_rc *out);
/* Extends the lease while the claim is still ours. *held = 0 when it is not (lease lost).
 * Returns ESC_OK, ESC_RETRY or ESC_ERR. */
esc_rc ntf_claim_renew(esc_kv_t *kv, const struct ntf_claim *c, int64_t lease_ms, int *held);
/* Marks the digest final: kind "sent" or "skipped", no expiry. *was_ours = 0 when the lease
 * had been lost meanwhile (logged by the caller). Returns ESC_OK, ESC_RETRY or ESC_ERR. */
esc_rc ntf_claim_finish(esc_kv_t *kv, const struct ntf_claim *c, const char *kind,
                        int64_t now_ms, int *was_ours);
/* Records a failed attempt while the claim is ours: "retry" with a back-off, or "failed" after
 * NTF_CLAIM_ATTEMPTS_MAX attempts (or at once when permanent). *given_up = 1 in the latter case.
 * Returns ESC_OK, ESC_RETRY or ESC_ERR. */
esc_rc ntf_claim_fail(esc_kv_t *kv, const struct ntf_claim *c, int64_t now_ms, int permanent,
                      int *given_up);

#endif
