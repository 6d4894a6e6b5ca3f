#define ESC_LOG_MODULE "queue"
/* The notifier's durable delivery queue (see queue.h for the keys and the operations). Each
 * operation is one EVAL, so Redis applies it atomically: two notifiers can never claim the
 * same due delivery, and an ack, retry or dead-letter from a notifier whose lease ran out (and
 * whose delivery was claimed again by someone else) changes nothing. The claim token
 * "<owner>/<attempt>" makes that check exact even when the same process claims a delivery
 * again. Attempts are counted at claim time, so a delivery whose notifier dies mid-attempt
 * still moves towards the dead-letter list instead of looping forever. Scripts are sent with
 * EVAL every time: they are short, alerts are rare, and it spares the NOSCRIPT dance after a
 * Redis restart. Single-threaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "queue.h"

#define S_KEY_MAX 512
#define S_ARGS_MAX 16

/* KEYS: sent, delivery, due, stats, cool. ARGV: id, hook, kind, alert id, alert, now,
 * dedupe ttl, cooldown. Returns 1 added, 2 duplicate, 3 cooled down. */
static const char s_lua_push[] =
    "if not redis.call('SET', KEYS[1], ARGV[6], 'NX', 'PX', ARGV[7]) then\n"
    "  redis.call('HINCRBY', KEYS[4], 'duplicate', 1)\n"
    "  return 2\n"
    "end\n"
    "if tonumber(ARGV[8]) > 0 then\n"
    "  local prev = redis.call('GET', KEYS[5])\n"
    "  if prev and prev ~= ARGV[4] then\n"
    "    redis.call('HINCRBY', KEYS[4], 'cooldown', 1)\n"
    "    return 3\n"
    "  end\n"
    "  redis.call('SET', KEYS[5], ARGV[4], 'PX', ARGV[8])\n"
    "end\n"
    "redis.call('HSET', KEYS[2], 'hook', ARGV[2], 'kind', ARGV[3], 'alert_id', ARGV[4],\n"
    "           'alert', ARGV[5], 'attempts', 0, 'created', ARGV[6], 'owner', '')\n"
    "redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])\n"
    "redis.call('HINCRBY', KEYS[4], 'enqueued', 1)\n"
    "return 1\n";

/* KEYS: due. ARGV: now, lease until, max, owner, delivery key prefix.
 * Returns { {id, hook, alert, attempts, token}..., next due score or '' }. */
static const char s_lua_claim[] =
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0,\n"
    "                       tonumber(ARGV[3]))\n"
    "local out = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  local k = ARGV[5] .. id\n"
    "  local f = redis.call('HMGET', k, 'hook', 'alert')\n"
    "  if not f[1] or not f[2] then\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "  else\n"
    "    local n = redis.call('HINCRBY', k, 'attempts', 1)\n"
    "    local tok = ARGV[4] .. '/' .. n\n"
    "    redis.call('HSET', k, 'owner', tok)\n"
    "    redis.call('ZADD', KEYS[1], ARGV[2], id)\n"
    "    out[#out + 1] = { id, f[1], f[2], n, tok }\n"
    "  end\n"
    "end\n"
    "local nx = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "return { out, nx[2] or '' }\n";

/* KEYS: due, delivery, stats. ARGV: id, token. */
static const char s_lua_ack[] =
    "if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[2] then return 0 end\n"
    "redis.call('DEL', KEYS[2])\n"
    "redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "redis.call('HINCRBY', KEYS[3], 'delivered', 1)\n"
    "return 1\n";

/* KEYS: due, delivery, stats. ARGV: id, token, due, reason. */
static const char s_lua_retry[] =
    "if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[2] then return 0 end\n"
    "redis.call('HSET', KEYS[2], 'owner', '', 'last_error', ARGV[4])\n"
    "redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])\n"
    "redis.call('HINCRBY', KEYS[3], 'retried', 1)\n"
    "return 1\n";

/* KEYS: due, delivery, stats, dead. ARGV: id, token, entry, counter, cap. */
static const char s_lua_dead[] =
    "if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[2] then return 0 end\n"
    "redis.call('DEL', KEYS[2])\n"
    "redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "redis.call('LPUSH', KEYS[4], ARGV[3])\n"
    "redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[5]) - 1)\n"
    "redis.call('HINCRBY', KEYS[3], ARGV[4], 1)\n"
    "return 1\n";

struct ntf_queue {
    esc_kv_t *kv;             /* borrowed */
    char base[160];           /* "<prefix>:ntf:{q}:" */
    char owner[96];
    int64_t lease_ms;
    int64_t dedupe_ttl_ms;
    int64_t dead_max;
};

/* Arguments of one EVAL. Strings are borrowed for the call. */
struct s_eval {
    const char *argv[S_ARGS_MAX];
    size_t lens[S_ARGS_MAX];
    int argc;
    char nums[8][24];         /* storage for numeric arguments */
    int n_nums;
};

static void
s_eval_init(struct s_eval *e, const char *script, int numkeys)
{
    memset(e, 0, sizeof(*e));
    e->argv[0] = "EVAL";
    e->lens[0] = 4;
    e->argv[1] = script;
    e->lens[1] = strlen(script);
    snprintf(e->nums[0], sizeof(e->nums[0]), "%d", numkeys);
    e->argv[2] = e->nums[0];
    e->lens[2] = strlen(e->nums[0]);
    e->argc = 3;
    e->n_nums = 1;
}

static void
s_arg(struct s_eval *e, const void *p, size_t len)
{
    ESC_ASSERT(e->argc < S_ARGS_MAX);
    e->argv[e->argc] = p;
    e->lens[e->argc] = len;
    e->argc++;
}

static void
s_arg_str(struct s_eval *e, const char *s)
{
    s_arg(e, s, strlen(s));
}

static void
s_arg_int(struct s_eval *e, int64_t v)
{
    char *buf;

    ESC_ASSERT(e->n_nums < (int)ESC_ARRAY_LEN(e->nums));
    buf = e->nums[e->n_nums++];
    snprintf(buf, sizeof(e->nums[0]), "%lld", (long long)v);
    s_arg_str(e, buf);
}

/* Runs the script; out must be esc_kv_val_fini'd on ESC_OK. An error reply is ESC_ERR. */
static esc_rc
s_run(ntf_queue_t *q, struct s_eval *e, const char *what, struct esc_kv_val *out)
{
    char qerr[160];
    esc_rc rc = esc_kv_cmdv(q->kv, out, e->argc, e->argv, e->lens);

    if (rc != ESC_OK) {
        return rc == ESC_RETRY ? ESC_RETRY : ESC_ERR;
    }
    if (out->type == ESC_KV_ERROR) {
        esc_log_error("queue script failed op=%s err=%s", what,
                      esc_log_quote(qerr, sizeof(qerr), out->str, 140));
        esc_kv_val_fini(out);
        return ESC_ERR;
    }
    return ESC_OK;
}

static void
s_key(const ntf_queue_t *q, char *out, size_t outsz, const char *a, const char *b)
{
    int n = snprintf(out, outsz, "%s%s%s", q->base, a, b != NULL ? b : "");

    ESC_ASSERT(n > 0 && (size_t)n < outsz);
}

ntf_queue_t *
ntf_queue_new(esc_kv_t *kv, const struct ntf_queue_opts *opts)
{
    ntf_queue_t *q = esc_calloc(1, sizeof(*q));

    q->kv = kv;
    snprintf(q->base, sizeof(q->base), "%s:ntf:{q}:", opts->prefix);
    esc_strlcpy(q->owner, opts->owner, sizeof(q->owner));
    q->lease_ms = opts->lease_ms;
    q->dedupe_ttl_ms = opts->dedupe_ttl_ms;
    q->dead_max = opts->dead_max;
    return q;
}

void
ntf_queue_destroy(ntf_queue_t **p)
{
    if (p == NULL || *p == NULL) {
        return;
    }
    esc_free(*p);
    *p = NULL;
}

void
ntf_queue_delivery_id(const char *hook, const char *kind, const char *alert_id,
                      char out[NTF_QUEUE_ID_LEN + 1])
{
    crypto_generichash_state st;
    unsigned char h[NTF_QUEUE_ID_LEN / 2];

    crypto_generichash_init(&st, NULL, 0, sizeof(h));
    crypto_generichash_update(&st, (const unsigned char *)hook, strlen(hook) + 1);
    crypto_generichash_update(&st, (const unsigned char *)kind, strlen(kind) + 1);
    crypto_generichash_update(&st, (const unsigned char *)alert_id, strlen(alert_id));
    crypto_generichash_final(&st, h, sizeof(h));
    sodium_bin2hex(out, NTF_QUEUE_ID_LEN + 1, h, sizeof(h));
}

esc_rc
ntf_queue_push(ntf_queue_t *q, const struct ntf_push *p, enum ntf_push_result *res)
{
    char id[NTF_QUEUE_ID_LEN + 1];
    char k_sent[S_KEY_MAX];
    char k_d[S_KEY_MAX];
    char k_due[S_KEY_MAX];
    char k_stats[S_KEY_MAX];
    char k_cool[S_KEY_MAX];
    char cool_scope[400];
    struct esc_kv_val v;
    struct s_eval e;
    esc_rc rc;

    ntf_queue_delivery_id(p->hook, p->kind, p->alert_id, id);
    s_key(q, k_sent, sizeof(k_sent), "sent:", id);
    s_key(q, k_d, sizeof(k_d), "d:", id);
    s_key(q, k_due, sizeof(k_due), "due", NULL);
    s_key(q, k_stats, sizeof(k_stats), "stats", NULL);
    snprintf(cool_scope, sizeof(cool_scope), "%s:%s", p->hook,
             p->topic_key != NULL ? p->topic_key : "");
    s_key(q, k_cool, sizeof(k_cool), "cool:", cool_scope);
    s_eval_init(&e, s_lua_push, 5);
    s_arg_str(&e, k_sent);
    s_arg_str(&e, k_d);
    s_arg_str(&e, k_due);
    s_arg_str(&e, k_stats);
    s_arg_str(&e, k_cool);
    s_arg_str(&e, id);
    s_arg_str(&e, p->hook);
    s_arg_str(&e, p->kind);
    s_arg_str(&e, p->alert_id);
    s_arg(&e, p->alert, p->alert_len);
    s_arg_int(&e, p->now_ms);
    s_arg_int(&e, q->dedupe_ttl_ms);
    s_arg_int(&e, p->cooldown_ms);
    rc = s_run(q, &e, "push", &v);
    if (rc != ESC_OK) {
        return rc;
    }
    if (v.type != ESC_KV_INT || v.integer < 1 || v.integer > 3) {
        esc_log_error("queue push got an unexpected reply type=%d", (int)v.type);
        esc_kv_val_fini(&v);
        return ESC_ERR;
    }
    *res = (enum ntf_push_result)v.integer;
    esc_kv_val_fini(&v);
    return ESC_OK;
}

void
ntf_qitem_fini(struct ntf_qitem *it)
{
    esc_free(it->alert);
    memset(it, 0, sizeof(*it));
}

/* Copies one claimed entry {id, hook, alert, attempts, token}. Returns 0 or -1. */
static int
s_item(const struct esc_kv_val *v, struct ntf_qitem *it)
{
    const struct esc_kv_val *e = v->elem;

    if (v->type != ESC_KV_ARRAY || v->n != 5 || e[0].type != ESC_KV_STR
        || e[1].type != ESC_KV_STR || e[2].type != ESC_KV_STR || e[3].type != ESC_KV_INT
        || e[4].type != ESC_KV_STR || e[0].len != NTF_QUEUE_ID_LEN
        || e[1].len >= sizeof(it->hook) || e[4].len >= sizeof(it->token)) {
        return -1;
    }
    memset(it, 0, sizeof(*it));
    memcpy(it->id, e[0].str, NTF_QUEUE_ID_LEN + 1);
    esc_strlcpy(it->hook, e[1].str, sizeof(it->hook));
    it->alert = esc_malloc(e[2].len + 1);
    memcpy(it->alert, e[2].str, e[2].len + 1);
    it->alert_len = e[2].len;
    it->attempts = e[3].integer;
    esc_strlcpy(it->token, e[4].str, sizeof(it->token));
    return 0;
}

esc_rc
ntf_queue_claim(ntf_queue_t *q, int64_t now_ms, size_t max, struct ntf_qitem **items,
                size_t *n, int64_t *next_due)
{
    char k_due[S_KEY_MAX];
    char k_d[S_KEY_MAX];
    struct esc_kv_val v;
    struct s_eval e;
    const struct esc_kv_val *list;
    const struct esc_kv_val *nx;
    double score;
    char *end = NULL;
    size_t i;
    esc_rc rc;

    *items = NULL;
    *n = 0;
    *next_due = -1;
    s_key(q, k_due, sizeof(k_due), "due", NULL);
    s_key(q, k_d, sizeof(k_d), "d:", NULL);
    s_eval_init(&e, s_lua_claim, 1);
    s_arg_str(&e, k_due);
    s_arg_int(&e, now_ms);
    s_arg_int(&e, now_ms + q->lease_ms);
    s_arg_int(&e, (int64_t)max);
    s_arg_str(&e, q->owner);
    s_arg_str(&e, k_d);
    rc = s_run(q, &e, "claim", &v);
    if (rc != ESC_OK) {
        return rc;
    }
    if (v.type != ESC_KV_ARRAY || v.n != 2 || v.elem[0].type != ESC_KV_ARRAY) {
        esc_log_error("queue claim got an unexpected reply type=%d", (int)v.type);
        esc_kv_val_fini(&v);
        return ESC_ERR;
    }
    list = &v.elem[0];
    nx = &v.elem[1];
    if (list->n > 0) {
        *items = esc_calloc(list->n, sizeof(**items));
    }
    for (i = 0; i < list->n; i++) {
        if (s_item(&list->elem[i], &(*items)[*n]) != 0) {
            /* cannot happen with our own script; the delivery stays claimed until its lease
             * ends and is then taken again */
            esc_log_error("queue claim entry malformed index=%zu", i);
            continue;
        }
        (*n)++;
    }
    if (nx->type == ESC_KV_STR && nx->len > 0) {
        score = strtod(nx->str, &end);
        if (end != nx->str) {
            *next_due = (int64_t)score;
        }
    }
    esc_kv_val_fini(&v);
    return ESC_OK;
}

/* Runs an owner-checked script (ack, retry, dead) and reads its 0/1 answer into *owned. */
static esc_rc
s_run_owned(ntf_queue_t *q, struct s_eval *e, const char *what, int *owned)
{
    struct esc_kv_val v;
    esc_rc rc = s_run(q, e, what, &v);

    if (rc != ESC_OK) {
        return rc;
    }
    if (owned != NULL) {
        *owned = v.type == ESC_KV_INT && v.integer == 1;
    }
    esc_kv_val_fini(&v);
    return ESC_OK;
}

esc_rc
ntf_queue_ack(ntf_queue_t *q, const struct ntf_qitem *it, int *owned)
{
    char k_due[S_KEY_MAX];
    char k_d[S_KEY_MAX];
    char k_stats[S_KEY_MAX];
    struct s_eval e;

    s_key(q, k_due, sizeof(k_due), "due", NULL);
    s_key(q, k_d, sizeof(k_d), "d:", it->id);
    s_key(q, k_stats, sizeof(k_stats), "stats", NULL);
    s_eval_init(&e, s_lua_ack, 3);
    s_arg_str(&e, k_due);
    s_arg_str(&e, k_d);
    s_arg_str(&e, k_stats);
    s_arg_str(&e, it->id);
    s_arg_str(&e, it->token);
    return s_run_owned(q, &e, "ack", owned);
}

esc_rc
ntf_queue_retry(ntf_queue_t *q, const struct ntf_qitem *it, int64_t due_ms, const char *reason,
                int *owned)
{
    char k_due[S_KEY_MAX];
    char k_d[S_KEY_MAX];
    char k_stats[S_KEY_MAX];
    struct s_eval e;

    s_key(q, k_due, sizeof(k_due), "due", NULL);
    s_key(q, k_d, sizeof(k_d), "d:", it->id);
    s_key(q, k_stats, sizeof(k_stats), "stats", NULL);
    s_eval_init(&e, s_lua_retry, 3);
    s_arg_str(&e, k_due);
    s_arg_str(&e, k_d);
    s_arg_str(&e, k_stats);
    s_arg_str(&e, it->id);
    s_arg_str(&e, it->token);
    s_arg_int(&e, due_ms);
    s_arg_str(&e, reason != NULL ? reason : "");
    return s_run_owned(q, &e, "retry", owned);
}

esc_rc
ntf_queue_dead(ntf_queue_t *q, const struct ntf_qitem *it, const char *entry,
               const char *counter, int *owned)
{
    char k_due[S_KEY_MAX];
    char k_d[S_KEY_MAX];
    char k_stats[S_KEY_MAX];
    char k_dead[S_KEY_MAX];
    struct s_eval e;

    s_key(q, k_due, sizeof(k_due), "due", NULL);
    s_key(q, k_d, sizeof(k_d), "d:", it->id);
    s_key(q, k_stats, sizeof(k_stats), "stats", NULL);
    s_key(q, k_dead, sizeof(k_dead), "dead", NULL);
    s_eval_init(&e, s_lua_dead, 4);
    s_arg_str(&e, k_due);
    s_arg_str(&e, k_d);
    s_arg_str(&e, k_stats);
    s_arg_str(&e, k_dead);
    s_arg_str(&e, it->id);
    s_arg_str(&e, it->token);
    s_arg_str(&e, entry);
    s_arg_str(&e, counter);
    s_arg_int(&e, q->dead_max);
    return s_run_owned(q, &e, "dead", owned);
}

esc_rc
ntf_queue_count(ntf_queue_t *q, const char *counter, int64_t delta)
{
    char k_stats[S_KEY_MAX];
    struct esc_kv_val v;
    esc_rc rc;

    s_key(q, k_stats, sizeof(k_stats), "stats", NULL);
    rc = esc_kv_cmd(q->kv, &v, "HINCRBY %s %s %lld", k_stats, counter, (long long)delta);
    if (rc != ESC_OK) {
        return rc;
    }
    rc = v.type == ESC_KV_INT ? ESC_OK : ESC_ERR;
    esc_kv_val_fini(&v);
    return rc;
}

esc_rc
ntf_queue_pending(ntf_queue_t *q, int64_t *n)
{
    char k_due[S_KEY_MAX];
    struct esc_kv_val v;
    esc_rc rc;

    s_key(q, k_due, sizeof(k_due), "due", NULL);
    rc = esc_kv_cmd(q->kv, &v, "ZCARD %s", k_due);
    if (rc != ESC_OK) {
        return rc;
    }
    rc = v.type == ESC_KV_INT ? ESC_OK : ESC_ERR;
    *n = v.integer;
    esc_kv_val_fini(&v);
    return rc;
}
