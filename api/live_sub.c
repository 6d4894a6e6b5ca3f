#define ESC_LOG_MODULE "live"
/* Redis pub/sub subscriber for the live view. This file is the only one in api/ that talks to
 * hiredis directly: esc_kv (common) is a request/reply client without pub/sub, and a
 * subscribed connection cannot be shared with commands anyway. The thread owns its
 * redisContext: it connects, authenticates, SUBSCRIBEs to one channel per configured team, then
 * polls the socket with a 200 ms timeout (so a stop request is seen quickly, and hiredis'
 * blocking read timeout, which would poison the context, is never hit) and feeds every message
 * to the hub. Any error drops the connection and reconnects with backoff. Posts are checked
 * and re-encoded with the documented keys only, so a stream never forwards anything else. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "live_sub.h"

#define S_POLL_MS 200
#define S_BACKOFF_MIN_MS 100
#define S_BACKOFF_MAX_MS 5000

struct api_live_sub {
    char host[256];
    int port;
    char unix_socket[256];
    char username[64];
    char *password;              /* owned, wiped on stop */
    int timeout_ms;
    const struct esc_cfg *cfg;   /* borrowed */
    api_hub_t *hub;              /* borrowed */
    char **channels;             /* one per team, by team index; owned */
    atomic_int stop;
    atomic_int up;
    pthread_t thread;
};

static struct esc_log_every s_bad_every;

/* Length of the longest prefix of s (len bytes) of at most max bytes that ends on a UTF-8
 * character boundary. */
static size_t
s_utf8_cut(const char *s, size_t len, size_t max)
{
    size_t n;

    if (len <= max) {
        return len;
    }
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
        n--;
    }
    return n;
}

/* Copies the string member key of src into dst when it is a string (at most max bytes). */
static void
s_copy_str(json_t *dst, json_t *src, const char *key, size_t max)
{
    json_t *v = json_object_get(src, key);
    const char *s;
    size_t n;

    if (!json_is_string(v)) {
        return;
    }
    s = json_string_value(v);
    n = s_utf8_cut(s, json_string_length(v), max);
    json_object_set_new(dst, key, json_stringn(s, n));
}

static void
s_copy_int(json_t *dst, json_t *src, const char *key)
{
    json_t *v = json_object_get(src, key);

    if (json_is_integer(v)) {
        json_object_set_new(dst, key, json_integer(json_integer_value(v)));
    }
}

size_t
api_live_ingest(api_hub_t *hub, const struct esc_cfg *cfg, size_t team, const char *payload,
                size_t len)
{
    json_error_t jerr;
    json_t *arr = json_loadb(payload, len, 0, &jerr);
    json_t *post;
    size_t i;
    size_t pushed = 0;

    if (!json_is_array(arr)) {
        esc_log_every(&s_bad_every, 5000, "live message skipped team=%s bytes=%zu reason=%s",
                      cfg->teams[team].id, len,
                      arr == NULL ? "not json" : "expected an array of posts");
        json_decref(arr);
        return 0;
    }
    json_array_foreach(arr, i, post) {
        json_t *out;
        json_t *topics;
        json_t *t;
        json_t *v;
        size_t k;
        char list[1024];
        size_t used = 1;
        char *text;

        if (i >= API_LIVE_POSTS_MAX) {
            break;
        }
        if (!json_is_object(post) || !json_is_string(json_object_get(post, "text"))) {
            esc_log_every(&s_bad_every, 5000, "live post skipped team=%s index=%zu "
                          "reason=expected an object with a text", cfg->teams[team].id, i);
            continue;
        }
        out = json_object();
        s_copy_str(out, post, "id", 256);
        s_copy_str(out, post, "text", API_LIVE_TEXT_MAX);
        s_copy_str(out, post, "author", 256);
        s_copy_str(out, post, "author_name", 256);
        s_copy_str(out, post, "url", 2048);
        s_copy_str(out, post, "platform", 64);
        s_copy_str(out, post, "lang", 16);
        s_copy_int(out, post, "created_at");
        s_copy_int(out, post, "followers");
        s_copy_int(out, post, "likes");
        s_copy_int(out, post, "reposts");
        s_copy_int(out, post, "replies");
        v = json_object_get(post, "sentiment");
        if (json_is_number(v)) {
            json_object_set_new(out, "sentiment", json_real(json_number_value(v)));
        }
        topics = json_array();
        list[0] = ',';
        list[1] = '\0';
        json_array_foreach(json_object_get(post, "topics"), k, t) {
            const char *id = json_string_value(t);
            size_t n;

            if (id == NULL || !esc_ident_valid(id)) {
                continue;
            }
            n = strlen(id);
            if (used + n + 2 < sizeof(list)) {
                memcpy(list + used, id, n);
                used += n;
                list[used++] = ',';
                list[used] = '\0';
                json_array_append_new(topics, json_string(id));
            }
        }
        json_object_set_new(out, "topics", topics);
        json_object_set_new(out, "team", json_string(cfg->teams[team].id));
        text = json_dumps(out, JSON_COMPACT);
        json_decref(out);
        if (text != NULL) {
            api_hub_push(hub, team, text, strlen(text), list);
            pushed++;
            esc_free(text); /* json_dumps allocates with malloc; esc_free is free */
        }
    }
    json_decref(arr);
    return pushed;
}

static redisContext *
s_connect(api_live_sub_t *self)
{
    struct timeval tv = { self->timeout_ms / 1000, (self->timeout_ms % 1000) * 1000 };
    redisContext *c;
    redisReply *r;

    if (self->unix_socket[0] != '\0') {
        c = redisConnectUnixWithTimeout(self->unix_socket, tv);
    }
    else {
        c = redisConnectWithTimeout(self->host, self->port, tv);
    }
    if (c == NULL || c->err != 0) {
        if (c != NULL) {
            redisFree(c);
        }
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (self->password != NULL) {
        if (self->username[0] != '\0') {
            r = redisCommand(c, "AUTH %s %s", self->username, self->password);
        }
        else {
            r = redisCommand(c, "AUTH %s", self->password);
        }
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            esc_log_error("live subscriber: redis refused AUTH");
            if (r != NULL) {
                freeReplyObject(r);
            }
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return c;
}

/* Handles one reply of the subscribed connection. */
static void
s_on_reply(api_live_sub_t *self, redisReply *r)
{
    size_t i;

    if (r->type != REDIS_REPLY_ARRAY) {
        return;
    }
    if (r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING
        || strcmp(r->element[0]->str, "message") != 0 || r->element[1]->type != REDIS_REPLY_STRING
        || r->element[2]->type != REDIS_REPLY_STRING) {
        return; /* subscribe confirmations */
    }
    for (i = 0; i < self->cfg->n_teams; i++) {
        if (strcmp(self->channels[i], r->element[1]->str) == 0) {
            api_live_ingest(self->hub, self->cfg, i, r->element[2]->str, r->element[2]->len);
            return;
        }
    }
}

/* Reads the subscribed connection until an error or a stop. */
static void
s_pump(api_live_sub_t *self, redisContext *c)
{
    struct pollfd pfd;
    void *reply;

    pfd.fd = c->fd;
    pfd.events = POLLIN;
    while (!atomic_load(&self->stop)) {
        int n = poll(&pfd, 1, S_POLL_MS);

        if (n < 0 && errno != EINTR) {
            return;
        }
        if (n <= 0) {
            continue;
        }
        if (redisBufferRead(c) != REDIS_OK) {
            return;
        }
        for (;;) {
            reply = NULL;
            if (redisGetReplyFromReader(c, &reply) != REDIS_OK) {
                return;
            }
            if (reply == NULL) {
                break;
            }
            s_on_reply(self, reply);
            freeReplyObject(reply);
        }
    }
}

/* Sleeps ms in steps of S_POLL_MS, returning early on stop. */
static void
s_nap(api_live_sub_t *self, int ms)
{
    while (ms > 0 && !atomic_load(&self->stop)) {
        struct timespec ts = { 0, (long)(ms < S_POLL_MS ? ms : S_POLL_MS) * 1000000L };

        nanosleep(&ts, NULL);
        ms -= S_POLL_MS;
    }
}

static void *
s_thread(void *arg)
{
    api_live_sub_t *self = arg;
    int backoff = S_BACKOFF_MIN_MS;
    int was_up = 0;
    const char **argv;
    size_t i;

    argv = esc_calloc(self->cfg->n_teams + 1, sizeof(*argv));
    argv[0] = "SUBSCRIBE";
    for (i = 0; i < self->cfg->n_teams; i++) {
        argv[i + 1] = self->channels[i];
    }
    while (!atomic_load(&self->stop)) {
        redisContext *c = s_connect(self);

        if (c != NULL && self->cfg->n_teams > 0
            && redisAppendCommandArgv(c, (int)self->cfg->n_teams + 1, argv, NULL) == REDIS_OK) {
            int done = 0;

            while (!done) {
                if (redisBufferWrite(c, &done) != REDIS_OK) {
                    break;
                }
            }
            if (done) {
                atomic_store(&self->up, 1);
                esc_log_info("live subscriber %s channels=%zu", was_up ? "reconnected" : "up",
                             self->cfg->n_teams);
                was_up = 1;
                backoff = S_BACKOFF_MIN_MS;
                s_pump(self, c);
                atomic_store(&self->up, 0);
                if (!atomic_load(&self->stop)) {
                    esc_log_warn("live subscriber lost redis, reconnecting");
                }
            }
        }
        if (c != NULL) {
            redisFree(c);
        }
        if (!atomic_load(&self->stop)) {
            s_nap(self, backoff);
            backoff = backoff * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : backoff * 2;
        }
    }
    esc_free(argv);
    return NULL;
}

api_live_sub_t *
api_live_sub_start(const struct esc_kv_opts *opts, const struct esc_cfg *cfg, api_hub_t *hub)
{
    api_live_sub_t *self = esc_calloc(1, sizeof(*self));
    sigset_t all;
    sigset_t old;
    size_t i;
    char ch[256];
    int rc;

    esc_strlcpy(self->host, opts->host != NULL ? opts->host : "127.0.0.1", sizeof(self->host));
    self->port = opts->port;
    esc_strlcpy(self->unix_socket, opts->unix_socket != NULL ? opts->unix_socket : "",
                sizeof(self->unix_socket));
    esc_strlcpy(self->username, opts->username != NULL ? opts->username : "",
                sizeof(self->username));
    self->password = opts->password != NULL ? esc_strdup(opts->password) : NULL;
    self->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 2000;
    self->cfg = cfg;
    self->hub = hub;
    self->channels = esc_calloc(cfg->n_teams > 0 ? cfg->n_teams : 1, sizeof(char *));
    for (i = 0; i < cfg->n_teams; i++) {
        snprintf(ch, sizeof(ch), "%s:live:{%s}", cfg->redis.prefix, cfg->teams[i].id);
        self->channels[i] = esc_strdup(ch);
    }
    atomic_init(&self->stop, 0);
    atomic_init(&self->up, 0);
    /* the thread must never take a signal: they are read on the main thread's signalfd */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&self->thread, NULL, s_thread, self);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        esc_log_errno("pthread_create");
        self->thread = 0;
        api_live_sub_stop(&self);
        return NULL;
    }
    return self;
}

void
api_live_sub_stop(api_live_sub_t **self_p)
{
    api_live_sub_t *self = self_p != NULL ? *self_p : NULL;
    size_t i;

    if (self == NULL) {
        return;
    }
    atomic_store(&self->stop, 1);
    if (self->thread != 0) {
        pthread_join(self->thread, NULL);
    }
    for (i = 0; i < self->cfg->n_teams; i++) {
        esc_free(self->channels[i]);
    }
    esc_free(self->channels);
    if (self->password != NULL) {
        memset(self->password, 0, strlen(self->password));
        esc_free(self->password);
    }
    esc_free(self);
    *self_p = NULL;
}

int
api_live_sub_up(api_live_sub_t *self)
{
    return atomic_load(&self->up);
}
