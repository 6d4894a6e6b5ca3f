#ifndef ESC_KV_H
#define ESC_KV_H

/* Redis access (hiredis inside; no redisReply leaves esc_kv.c). Connects lazily and reconnects
 * with exponential backoff (100 ms doubling to 5 s): while Redis is down, calls return
 * ESC_RETRY immediately instead of blocking. Single-threaded. */

#include <stddef.h>
#include <stdint.h>

#include "esc_rc.h"

typedef struct esc_kv esc_kv_t;

struct esc_kv_opts {
    const char *host;        /* used when unix_socket is NULL or "" */
    int port;
    const char *unix_socket;
    const char *username;    /* ACL user or NULL */
    const char *password;    /* NULL when no AUTH; never logged */
    int db;
    int timeout_ms;          /* connect and command timeout */
};

enum esc_kv_val_type {
    ESC_KV_NIL = 0,
    ESC_KV_INT,
    ESC_KV_STR,    /* also status replies */
    ESC_KV_ARRAY,
    ESC_KV_ERROR,  /* str holds the message */
};

/* A Redis reply copied out of hiredis. */
struct esc_kv_val {
    enum esc_kv_val_type type;
    long long integer;
    char *str;                 /* NUL-terminated; owned */
    size_t len;
    struct esc_kv_val *elem;   /* owned array of n */
    size_t n;
};

/* Copies opts (strings included). Does not connect yet. Caller owns the result. */
esc_kv_t *esc_kv_new(const struct esc_kv_opts *opts);
void esc_kv_destroy(esc_kv_t **self_p);

/* Connects now if not connected and the backoff allows it. ESC_OK when connected, ESC_RETRY
 * otherwise (the first failure after a success is logged at warn, recovery at info). */
esc_rc esc_kv_connect(esc_kv_t *self);

/* Runs one command given as argv. out (may be NULL) receives the reply; the caller must
 * esc_kv_val_fini it on ESC_OK. Returns ESC_OK (also for an error reply: check out->type),
 * ESC_RETRY on connection trouble (the connection is dropped and retried later). */
esc_rc esc_kv_cmdv(esc_kv_t *self, struct esc_kv_val *out, int argc, const char **argv,
                   const size_t *lens);
/* Same with a hiredis format string ("HINCRBY %s %s %lld", "%b" for binary). */
esc_rc esc_kv_cmd(esc_kv_t *self, struct esc_kv_val *out, const char *fmt, ...);

/* Pipelining: queue commands, then esc_kv_exec sends them all and reads every reply.
 * On ESC_RETRY the whole pipeline is discarded (the caller still holds its data and may
 * rebuild it); on ESC_OK *n_err (may be NULL) is the number of error replies (each logged). */
void esc_kv_append(esc_kv_t *self, const char *fmt, ...);
void esc_kv_appendv(esc_kv_t *self, int argc, const char **argv, const size_t *lens);
esc_rc esc_kv_exec(esc_kv_t *self, size_t *n_err);
/* Same as esc_kv_exec, and on ESC_OK out[i] (i < n_out) holds the reply of the i-th queued
 * command (error replies as ESC_KV_ERROR; they are also counted in *n_err and logged). The
 * caller must esc_kv_val_fini each of out[0..n_out) on ESC_OK; on any other result they are
 * left empty (ESC_KV_NIL). Commands beyond n_out are read and dropped. */
esc_rc esc_kv_exec_replies(esc_kv_t *self, struct esc_kv_val *out, size_t n_out, size_t *n_err);
/* Commands queued and not yet executed. */
size_t esc_kv_pending(const esc_kv_t *self);

void esc_kv_val_fini(struct esc_kv_val *v);

/* Counters since start: commands sent, round trips. */
uint64_t esc_kv_commands(const esc_kv_t *self);
uint64_t esc_kv_round_trips(const esc_kv_t *self);

#endif
