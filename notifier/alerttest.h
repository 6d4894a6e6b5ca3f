#ifndef NTF_ALERTTEST_H
#define NTF_ALERTTEST_H

/* Test support for the alert-delivery component tests (delivery_test.c, hooks_test.c): a
 * private redis-server, up to two escucha-notifier processes sharing it (each with its own
 * config and bus endpoint), tests/support/webhook_sink.py on a port chosen before it starts (so
 * a test can begin with the receiver down), alerts pushed on the bus, and reads of what the
 * receiver recorded. Functions assert with cmocka, so they are only called from tests. */

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "esc_testenv.h"
#include "escucha/esc_bus.h"
#include "escucha/esc_kv.h"
#include "testproc.h"

#define NTF_AT_MAX 2 /* notifiers per test */

struct ntf_at_env {
    struct esc_testenv_redis redis;
    esc_kv_t *kv;                      /* the test's own connection */
    char dir[128];
    char req_path[256];                /* what webhook_sink.py recorded (JSON lines) */
    int hook_port;                     /* the receiver's port, fixed before it starts */
    struct ntf_proc sink;
    struct ntf_proc ntf[NTF_AT_MAX];
    char cfg_path[NTF_AT_MAX][256];
    char log_path[NTF_AT_MAX][256];
    char endpoint[NTF_AT_MAX][300];
    esc_bus_t *push[NTF_AT_MAX];
};

/* Starts redis and makes the temp dir; picks the receiver's port. 0 or -1. */
int ntf_at_setup(struct ntf_at_env *e);
/* Stops everything (notifiers with SIGKILL) and removes the files. */
void ntf_at_teardown(struct ntf_at_env *e);

/* Starts webhook_sink.py on e->hook_port answering fail_status to the first fail_first
 * requests. */
void ntf_at_sink_start(struct ntf_at_env *e, int fail_first, int fail_status);
/* Writes notifier k's config: team "gob" (Spanish, America/Lima, topics congreso and
 * elecciones) with the given webhooks entries (JSON, without brackets), retry_base_ms 50,
 * webhook_timeout_ms 1000, smtp_timeout_ms 2000 (claim leases are 5 s), and extra "notifier"
 * keys (JSON members with a leading comma, or ""). */
void ntf_at_write_cfg(struct ntf_at_env *e, int k, const char *hooks, const char *notifier_extra);
/* Starts notifier k and connects a PUSH socket to it. */
void ntf_at_start(struct ntf_at_env *e, int k);
/* SIGTERM (or sig), waits, checks the log holds no sanitizer report. Returns the status. */
int ntf_at_stop(struct ntf_at_env *e, int k, int sig);

/* Sends an alert to notifier k: id "gob/<topic>/<n>", kind "spike" or "ended". */
void ntf_at_send(struct ntf_at_env *e, int k, const char *topic, int n, const char *kind);

/* Occurrences of needle in notifier k's log. */
int ntf_at_log_count(const struct ntf_at_env *e, int k, const char *needle);
/* Waits (10 s at most) until needle occurs at least `times` times in notifier k's log. */
void ntf_at_wait_log(const struct ntf_at_env *e, int k, const char *needle, int times);
/* Waits (10 s at most) until the receiver recorded n requests, then asserts exactly n. */
void ntf_at_wait_requests(const struct ntf_at_env *e, int n);
/* Request k (0-based) as recorded. Caller json_decref's. */
json_t *ntf_at_request(const struct ntf_at_env *e, int k);
/* The JSON body of request k. Caller json_decref's. */
json_t *ntf_at_request_body(const struct ntf_at_env *e, int k);

/* Integer reply of a Redis command (0 for nil). */
long long ntf_at_redis_int(struct ntf_at_env *e, const char *fmt, const char *arg);

#endif
