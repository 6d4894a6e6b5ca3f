#define ESC_LOG_MODULE "kv"
/* Redis access through hiredis's blocking API; no hiredis type leaves this file. Replies are
 * copied into struct esc_kv_val. The connection is made lazily. After a failed connect the
 * next attempt waits (100 ms doubling to 5 s, from esc_mono_ms), and calls made in between
 * return ESC_RETRY at once, so a service never blocks on a dead Redis. A connection that
 * breaks mid-command is dropped, and the next call may reconnect at once. Only the first
 * failure of a streak is logged (warn, error for AUTH/SELECT), and the recovery is logged at
 * info. Commands are formatted before they touch the context, so a bad format string never
 * poisons a healthy connection. hiredis 0.14 (Debian 12) has no redisConnectWithOptions, so
 * the *WithTimeout connect calls plus redisSetTimeout are used (they exist in 1.x too).
 * esc_kv_cmd* while a pipeline is pending is a bug (its reply would be taken) and asserted.
 * Single-threaded. The process must ignore SIGPIPE (esc_sig_init does), since hiredis writes
 * with write(2). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#define ESC_KV_BACKOFF_MIN_MS 100
#define ESC_KV_BACKOFF_MAX_MS 5000
#define ESC_KV_TIMEOUT_DEFAULT_MS 1000
#define ESC_KV_ERR_LOG_MS 10000

/* Kind of the failure that was last logged, so a streak of identical failures logs once. */
enum s_fail {
    S_FAIL_NONE = 0,
    S_FAIL_CONN,   /* connect refused, IO error, EOF, timeout */
    S_FAIL_AUTH,   /* AUTH answered with an error */
    S_FAIL_SELECT, /* SELECT answered with an error */
};

struct esc_kv {
    char *host;                    /* TCP host (used when unix_socket is NULL) */
    int port;                      /* TCP port */
    char *unix_socket;             /* socket path or NULL */
    char *username;                /* ACL user or NULL */
    char *password;                /* NULL when no AUTH; never logged */
    int db;                        /* SELECTed after connect when != 0 */
    int timeout_ms;                /* connect and command timeout */
    char endpoint[320];            /* "unix:/path" or "host:port", for log lines */

    redisContext *c;               /* NULL while disconnected */
    int64_t next_attempt_ms;       /* esc_mono_ms() before which no connect is attempted */
    int64_t backoff_ms;            /* current backoff, 0 after a successful connect */
    enum s_fail fail_logged;       /* last failure kind logged, NONE while healthy */
    int ever_connected;            /* a connect has succeeded once */

    size_t pending;                /* commands appended since the last exec */
    size_t queued;                 /* of those, how many sit in the hiredis output buffer */
    esc_rc pipe_rc;                /* ESC_OK, or what exec must return (and then discard) */

    uint64_t n_commands;           /* commands whose reply arrived */
    uint64_t n_round_trips;        /* cmd calls and execs that completed */
    struct esc_log_every err_every; /* rate limit for error replies */
};

static char *
s_dup_opt(const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return NULL;
    }
    return esc_strdup(s);
}

esc_kv_t *
esc_kv_new(const struct esc_kv_opts *opts)
{
    esc_kv_t *self = esc_calloc(1, sizeof(*self));

    self->host = esc_strdup(opts->host != NULL && opts->host[0] != '\0' ? opts->host
                                                                         : "127.0.0.1");
    self->port = opts->port;
    self->unix_socket = s_dup_opt(opts->unix_socket);
    self->username = s_dup_opt(opts->username);
    self->password = s_dup_opt(opts->password);
    self->db = opts->db;
    self->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : ESC_KV_TIMEOUT_DEFAULT_MS;
    if (self->unix_socket != NULL) {
        snprintf(self->endpoint, sizeof(self->endpoint), "unix:%s", self->unix_socket);
    }
    else {
        snprintf(self->endpoint, sizeof(self->endpoint), "%s:%d", self->host, self->port);
    }
    self->pipe_rc = ESC_OK;
    return self;
}

static void
s_close(esc_kv_t *self)
{
    if (self->c != NULL) {
        redisFree(self->c);
        self->c = NULL;
    }
    self->queued = 0;
}

void
esc_kv_destroy(esc_kv_t **self_p)
{
    esc_kv_t *self;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    s_close(self);
    esc_free(self->host);
    esc_free(self->unix_socket);
    esc_free(self->username);
    if (self->password != NULL) {
        /* do not leave the secret in freed heap memory */
        memset(self->password, 0, strlen(self->password));
        esc_free(self->password);
    }
    esc_free(self);
    *self_p = NULL;
}

/* Logs a failure when it starts a streak (or changes kind); later ones go to debug. */
static void
s_log_fail(esc_kv_t *self, enum s_fail kind, const char *what, const char *detail)
{
    char q[160];

    esc_log_quote(q, sizeof(q), detail != NULL ? detail : "", 120);
    if (self->fail_logged == kind) {
        esc_log_debug("redis %s failed endpoint=%s err=%s", what, self->endpoint, q);
        return;
    }
    self->fail_logged = kind;
    if (kind == S_FAIL_CONN) {
        esc_log_warn("redis %s failed endpoint=%s err=%s retry=backoff", what, self->endpoint, q);
    }
    else {
        esc_log_error("redis %s failed endpoint=%s user=%s err=%s retry=backoff", what,
                      self->endpoint, self->username != NULL ? self->username : "-", q);
    }
}

static void
s_backoff(esc_kv_t *self)
{
    if (self->backoff_ms == 0) {
        self->backoff_ms = ESC_KV_BACKOFF_MIN_MS;
    }
    else {
        self->backoff_ms *= 2;
        if (self->backoff_ms > ESC_KV_BACKOFF_MAX_MS) {
            self->backoff_ms = ESC_KV_BACKOFF_MAX_MS;
        }
    }
    self->next_attempt_ms = esc_mono_ms() + self->backoff_ms;
}

/* The connection failed while in use (c->err set): drop it. The next call may reconnect at
 * once; the backoff only starts when that connect fails. */
static esc_rc
s_io_fail(esc_kv_t *self, const char *what)
{
    const char *detail = "no reply";

    if (self->c != NULL && self->c->err != 0) {
        detail = self->c->errstr;
    }
    s_log_fail(self, S_FAIL_CONN, what, detail);
    s_close(self);
    return ESC_RETRY;
}

/* Sends one command on a fresh context during connect; returns the reply or NULL (logged). */
static redisReply *
s_setup_cmd(esc_kv_t *self, redisContext *c, enum s_fail kind, const char *what,
            redisReply *r)
{
    if (r == NULL) {
        s_log_fail(self, S_FAIL_CONN, what, c->err != 0 ? c->errstr : "no reply");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        s_log_fail(self, kind, what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

esc_rc
esc_kv_connect(esc_kv_t *self)
{
    struct timeval tv;
    redisContext *c;
    redisReply *r;

    if (self->c != NULL) {
        return ESC_OK;
    }
    if (esc_mono_ms() < self->next_attempt_ms) {
        return ESC_RETRY;
    }
    tv.tv_sec = self->timeout_ms / 1000;
    tv.tv_usec = (self->timeout_ms % 1000) * 1000;
    if (self->unix_socket != NULL) {
        c = redisConnectUnixWithTimeout(self->unix_socket, tv);
    }
    else {
        c = redisConnectWithTimeout(self->host, self->port, tv);
    }
    if (c == NULL || c->err != 0) {
        s_log_fail(self, S_FAIL_CONN, "connect", c != NULL ? c->errstr : "out of memory");
        goto fail;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        s_log_fail(self, S_FAIL_CONN, "set timeout", c->errstr);
        goto fail;
    }
    if (self->password != NULL) {
        if (self->username != NULL) {
            r = redisCommand(c, "AUTH %s %s", self->username, self->password);
        }
        else {
            r = redisCommand(c, "AUTH %s", self->password);
        }
        r = s_setup_cmd(self, c, S_FAIL_AUTH, "auth", r);
        if (r == NULL) {
            goto fail;
        }
        freeReplyObject(r);
    }
    if (self->db != 0) {
        r = s_setup_cmd(self, c, S_FAIL_SELECT, "select", redisCommand(c, "SELECT %d", self->db));
        if (r == NULL) {
            goto fail;
        }
        freeReplyObject(r);
    }
    self->c = c;
    self->backoff_ms = 0;
    self->next_attempt_ms = 0;
    if (self->fail_logged != S_FAIL_NONE) {
        esc_log_info("redis reconnected endpoint=%s db=%d", self->endpoint, self->db);
    }
    else if (!self->ever_connected) {
        esc_log_info("redis connected endpoint=%s db=%d", self->endpoint, self->db);
    }
    else {
        esc_log_debug("redis connected endpoint=%s db=%d", self->endpoint, self->db);
    }
    self->fail_logged = S_FAIL_NONE;
    self->ever_connected = 1;
    return ESC_OK;

fail:
    if (c != NULL) {
        redisFree(c);
    }
    s_backoff(self);
    return ESC_RETRY;
}

static void
s_copy(struct esc_kv_val *dst, const redisReply *r)
{
    size_t i;

    memset(dst, 0, sizeof(*dst));
    switch (r->type) {
    case REDIS_REPLY_INTEGER:
#ifdef REDIS_REPLY_BOOL
    case REDIS_REPLY_BOOL:
#endif
        dst->type = ESC_KV_INT;
        dst->integer = r->integer;
        return;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
#ifdef REDIS_REPLY_VERB
    case REDIS_REPLY_VERB:
#endif
#ifdef REDIS_REPLY_DOUBLE
    case REDIS_REPLY_DOUBLE:
#endif
#ifdef REDIS_REPLY_BIGNUM
    case REDIS_REPLY_BIGNUM:
#endif
        dst->type = r->type == REDIS_REPLY_ERROR ? ESC_KV_ERROR : ESC_KV_STR;
        dst->len = r->str != NULL ? r->len : 0;
        dst->str = esc_malloc(dst->len + 1);
        if (dst->len > 0) {
            memcpy(dst->str, r->str, dst->len);
        }
        dst->str[dst->len] = '\0';
        return;
    case REDIS_REPLY_ARRAY:
#ifdef REDIS_REPLY_SET
    case REDIS_REPLY_SET:
#endif
#ifdef REDIS_REPLY_MAP
    case REDIS_REPLY_MAP: /* hiredis already holds a map as key, value, key, value ... */
#endif
#ifdef REDIS_REPLY_PUSH
    case REDIS_REPLY_PUSH:
#endif
        dst->type = ESC_KV_ARRAY;
        dst->n = r->elements;
        if (dst->n > 0) {
            dst->elem = esc_calloc(dst->n, sizeof(*dst->elem));
            for (i = 0; i < dst->n; i++) {
                s_copy(&dst->elem[i], r->element[i]);
            }
        }
        return;
    default:
        /* REDIS_REPLY_NIL and anything newer than this code */
        dst->type = ESC_KV_NIL;
        return;
    }
}

void
esc_kv_val_fini(struct esc_kv_val *v)
{
    size_t i;

    if (v == NULL) {
        return;
    }
    for (i = 0; i < v->n; i++) {
        esc_kv_val_fini(&v->elem[i]);
    }
    esc_free(v->elem);
    esc_free(v->str);
    memset(v, 0, sizeof(*v));
}

static void
s_log_error_reply(esc_kv_t *self, const char *what, const char *msg)
{
    char q[160];

    esc_log_quote(q, sizeof(q), msg != NULL ? msg : "", 120);
    esc_log_every(&self->err_every, ESC_KV_ERR_LOG_MS, "redis error reply %s endpoint=%s err=%s",
                  what, self->endpoint, q);
}

/* Sends one preformatted command and reads its reply. cmd stays owned by the caller. */
static esc_rc
s_roundtrip(esc_kv_t *self, struct esc_kv_val *out, const char *cmd, size_t len)
{
    void *rv = NULL;
    redisReply *r;

    if (redisAppendFormattedCommand(self->c, cmd, len) != REDIS_OK) {
        return s_io_fail(self, "command");
    }
    if (redisGetReply(self->c, &rv) != REDIS_OK || rv == NULL) {
        return s_io_fail(self, "command");
    }
    r = rv;
    self->n_commands++;
    self->n_round_trips++;
    if (r->type == REDIS_REPLY_ERROR) {
        if (out == NULL) {
            s_log_error_reply(self, "cmd", r->str);
        }
        else {
            char q[160];

            esc_log_debug("redis error reply err=%s", esc_log_quote(q, sizeof(q), r->str, 120));
        }
    }
    if (out != NULL) {
        s_copy(out, r);
    }
    freeReplyObject(r);
    return ESC_OK;
}

esc_rc
esc_kv_cmdv(esc_kv_t *self, struct esc_kv_val *out, int argc, const char **argv,
            const size_t *lens)
{
    char *cmd = NULL;
    long long len;
    esc_rc rc;

    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    /* a queued pipeline would take this command's reply */
    ESC_ASSERT(self->pending == 0);
    if (esc_kv_connect(self) != ESC_OK) {
        return ESC_RETRY;
    }
    len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0) {
        esc_log_error("redis command could not be formatted argc=%d", argc);
        return ESC_ERR;
    }
    rc = s_roundtrip(self, out, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

esc_rc
esc_kv_cmd(esc_kv_t *self, struct esc_kv_val *out, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    int len;
    esc_rc rc;

    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    ESC_ASSERT(self->pending == 0);
    if (esc_kv_connect(self) != ESC_OK) {
        return ESC_RETRY;
    }
    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0) {
        esc_log_error("redis command could not be formatted fmt=\"%s\"", fmt);
        return ESC_ERR;
    }
    rc = s_roundtrip(self, out, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

/* Counts the command; returns 1 when it should be queued on self->c, 0 when the pipeline is
 * already marked broken (or becomes so here because Redis cannot be reached). */
static int
s_append_begin(esc_kv_t *self)
{
    self->pending++;
    if (self->pipe_rc != ESC_OK) {
        return 0;
    }
    if (esc_kv_connect(self) != ESC_OK) {
        self->pipe_rc = ESC_RETRY;
        return 0;
    }
    return 1;
}

static void
s_append_formatted(esc_kv_t *self, char *cmd, long long len)
{
    if (len < 0) {
        esc_log_error("redis command could not be formatted pipeline_index=%zu",
                      self->pending - 1);
        self->pipe_rc = ESC_ERR;
        redisFreeCommand(cmd);
        return;
    }
    if (redisAppendFormattedCommand(self->c, cmd, (size_t)len) != REDIS_OK) {
        s_io_fail(self, "append");
        self->pipe_rc = ESC_RETRY;
    }
    else {
        self->queued++;
    }
    redisFreeCommand(cmd);
}

void
esc_kv_append(esc_kv_t *self, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    int len;

    if (!s_append_begin(self)) {
        return;
    }
    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    s_append_formatted(self, cmd, len);
}

void
esc_kv_appendv(esc_kv_t *self, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    long long len;

    if (!s_append_begin(self)) {
        return;
    }
    len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    s_append_formatted(self, cmd, len);
}

static void
s_pipe_reset(esc_kv_t *self)
{
    self->pending = 0;
    self->queued = 0;
    self->pipe_rc = ESC_OK;
}

/* esc_kv_exec and esc_kv_exec_replies: reply i goes to out[i] when i < n_out. */
static esc_rc
s_exec(esc_kv_t *self, struct esc_kv_val *out, size_t n_out, size_t *n_err)
{
    size_t i;
    size_t errs = 0;
    void *rv;
    redisReply *r;
    esc_rc rc;

    if (n_err != NULL) {
        *n_err = 0;
    }
    if (self->pipe_rc != ESC_OK) {
        rc = self->pipe_rc;
        if (self->queued > 0) {
            /* the only way to take commands back out of hiredis's output buffer */
            esc_log_debug("redis pipeline discarded queued=%zu", self->queued);
            s_close(self);
        }
        esc_log_debug("redis pipeline discarded pending=%zu rc=%s", self->pending,
                      esc_rc_str(rc));
        s_pipe_reset(self);
        return rc;
    }
    if (self->queued == 0) {
        s_pipe_reset(self);
        return ESC_OK;
    }
    for (i = 0; i < self->queued; i++) {
        rv = NULL;
        if (redisGetReply(self->c, &rv) != REDIS_OK || rv == NULL) {
            while (i > 0 && out != NULL) {
                i--;
                if (i < n_out) {
                    esc_kv_val_fini(&out[i]);
                }
            }
            s_pipe_reset(self);
            return s_io_fail(self, "pipeline");
        }
        r = rv;
        if (r->type == REDIS_REPLY_ERROR) {
            errs++;
            s_log_error_reply(self, "pipeline", r->str);
        }
        if (i < n_out) {
            s_copy(&out[i], r);
        }
        freeReplyObject(r);
    }
    self->n_commands += self->queued;
    self->n_round_trips++;
    s_pipe_reset(self);
    if (n_err != NULL) {
        *n_err = errs;
    }
    return ESC_OK;
}

esc_rc
esc_kv_exec(esc_kv_t *self, size_t *n_err)
{
    return s_exec(self, NULL, 0, n_err);
}

esc_rc
esc_kv_exec_replies(esc_kv_t *self, struct esc_kv_val *out, size_t n_out, size_t *n_err)
{
    size_t i;

    for (i = 0; i < n_out; i++) {
        memset(&out[i], 0, sizeof(out[i]));
    }
    return s_exec(self, out, n_out, n_err);
}

size_t
esc_kv_pending(const esc_kv_t *self)
{
    return self->pending;
}

uint64_t
esc_kv_commands(const esc_kv_t *self)
{
    return self->n_commands;
}

uint64_t
esc_kv_round_trips(const esc_kv_t *self)
{
    return self->n_round_trips;
}
