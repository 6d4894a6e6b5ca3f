#ifndef NTF_QUEUE_H
#define NTF_QUEUE_H

/* The durable delivery queue in Redis: one entry per (alert, receiver), so a notifier restart
 * loses nothing and several notifiers can share the work without sending anything twice.
 * Every state change is one Lua script (atomic in Redis):
 *
 *   push   remember "<hook, kind, alert id>" (dedupe marker with TTL), apply the cooldown,
 *          store the delivery and make it due now;
 *   claim  take due deliveries under a lease (score = now + lease) and count the attempt;
 *   ack    the receiver accepted it: delete it (only by the claim's owner);
 *   retry  reschedule it with its next due time (only by the owner);
 *   dead   move it to the dead-letter list with the reason (only by the owner).
 *
 * Keys (docs/redis-schema.md), all in hash slot {q} of <prefix>:ntf:
 *   <prefix>:ntf:{q}:due              zset  delivery id -> due time (Unix ms)
 *   <prefix>:ntf:{q}:d:<id>           hash  hook, kind, alert_id, alert (msgpack), attempts,
 *                                           created, owner, last_error
 *   <prefix>:ntf:{q}:sent:<id>        string, TTL dedupe_ttl: this delivery was queued once
 *   <prefix>:ntf:{q}:cool:<hook>:<t>  string, TTL cooldown: alert id that started a cooldown
 *   <prefix>:ntf:{q}:dead             list of JSON, newest first, capped
 *   <prefix>:ntf:{q}:stats            hash of counters (enqueued, duplicate, cooldown,
 *                                           delivered, retried, rejected, dead, ...)
 *
 * All calls return ESC_OK, ESC_RETRY (Redis unreachable: nothing changed, or the change may
 * have happened and the call is safe to repeat) or ESC_ERR (error reply, logged). Times are
 * wall-clock Unix ms, shared by every notifier. Single-threaded. */

#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_kv.h"
#include "escucha/esc_rc.h"

#define NTF_QUEUE_ID_LEN 32 /* hex characters of a delivery id */

typedef struct ntf_queue ntf_queue_t;

struct ntf_queue_opts {
    const char *prefix;      /* redis.prefix */
    const char *owner;       /* this notifier's instance id (unique per process) */
    int64_t lease_ms;        /* how long a claim stays exclusive */
    int64_t dedupe_ttl_ms;   /* lifetime of the "already queued" markers */
    int64_t dead_max;        /* dead-letter list cap */
};

/* kv is borrowed and must outlive the queue. Caller owns the result. */
ntf_queue_t *ntf_queue_new(esc_kv_t *kv, const struct ntf_queue_opts *opts);
void ntf_queue_destroy(ntf_queue_t **p);

/* Delivery id (NTF_QUEUE_ID_LEN hex + NUL) of alert `alert_id` of kind `kind` to `hook`. */
void ntf_queue_delivery_id(const char *hook, const char *kind, const char *alert_id,
                           char out[NTF_QUEUE_ID_LEN + 1]);

enum ntf_push_result {
    NTF_PUSH_ADDED = 1,     /* queued, due now */
    NTF_PUSH_DUPLICATE,     /* this alert was already queued for this hook: nothing done */
    NTF_PUSH_COOLDOWN,      /* another spike of the topic started a cooldown: not queued */
};

struct ntf_push {
    const char *hook;        /* hook id (struct ntf_sink.id) */
    const char *kind;        /* "spike" or "ended" */
    const char *alert_id;
    const char *topic_key;   /* "team/topic": the cooldown's scope */
    int64_t cooldown_ms;     /* 0 = no cooldown */
    const void *alert;       /* the alert as a bus message (msgpack) */
    size_t alert_len;
    int64_t now_ms;
};

esc_rc ntf_queue_push(ntf_queue_t *q, const struct ntf_push *p, enum ntf_push_result *res);

/* A claimed delivery. Owned by the caller (ntf_qitem_fini). */
struct ntf_qitem {
    char id[NTF_QUEUE_ID_LEN + 1];
    char hook[160];
    char *alert;             /* msgpack bytes, owned */
    size_t alert_len;
    int64_t attempts;        /* including this one */
    char token[160];         /* proof of the claim, for ack/retry/dead */
};

void ntf_qitem_fini(struct ntf_qitem *it);

/* Claims up to max deliveries due at now_ms, each for lease_ms. *items (caller-owned array,
 * esc_free after ntf_qitem_fini of each) and *n receive them; *next_due receives the due time
 * of the earliest delivery left in the queue, or -1 when it is empty. */
esc_rc ntf_queue_claim(ntf_queue_t *q, int64_t now_ms, size_t max, struct ntf_qitem **items,
                       size_t *n, int64_t *next_due);

/* Ack, retry and dead-letter of a claimed delivery. *owned (may be NULL) is set to 0 when the
 * claim was no longer ours (its lease ran out and someone else took it, or it is gone): then
 * nothing was changed. */
esc_rc ntf_queue_ack(ntf_queue_t *q, const struct ntf_qitem *it, int *owned);
esc_rc ntf_queue_retry(ntf_queue_t *q, const struct ntf_qitem *it, int64_t due_ms,
                       const char *reason, int *owned);
/* entry is the JSON kept in the dead-letter list; counter is the stats field to increase
 * ("dead" or "rejected"). */
esc_rc ntf_queue_dead(ntf_queue_t *q, const struct ntf_qitem *it, const char *entry,
                      const char *counter, int *owned);

/* Adds delta to a stats counter. */
esc_rc ntf_queue_count(ntf_queue_t *q, const char *counter, int64_t delta);
/* Number of deliveries in the queue (due or not). */
esc_rc ntf_queue_pending(ntf_queue_t *q, int64_t *n);

#endif
