#define ESC_LOG_MODULE "live"
/* Live publisher: between two flushes, the newest AGG_LIVE_PER_TEAM matched posts of each team
 * and of each topic are held as ready-made JSON texts in small rings (older ones are dropped
 * and counted: a live view shows the newest). The flush turns them into one PUBLISH per team
 * and LPUSH + LTRIM per topic in one pipeline. A post is encoded once per team with only that
 * team's topic ids, so a team's channel never names another team's topics. Nothing is retried:
 * the counters are the record; this is the window onto them. Single-threaded. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "live.h"

struct s_ring {
    char key[140];                   /* team id, or topic key "team/topic" */
    char *item[AGG_LIVE_PER_TEAM];   /* JSON texts, owned; oldest at head */
    size_t head;
    size_t n;
};

struct agg_live {
    char prefix[64];
    struct s_ring *teams;
    size_t n_teams;
    struct s_ring *topics;
    size_t n_topics;
    struct agg_live_stats st;
    struct esc_log_every warn_every;
};

agg_live_t *
agg_live_new(const char *prefix)
{
    agg_live_t *self = esc_calloc(1, sizeof(*self));

    esc_strlcpy(self->prefix, prefix, sizeof(self->prefix));
    self->teams = esc_calloc(AGG_LIVE_TEAMS_MAX, sizeof(*self->teams));
    self->topics = esc_calloc(AGG_LIVE_TOPICS_MAX, sizeof(*self->topics));
    return self;
}

static void
s_ring_clear(struct s_ring *r)
{
    size_t i;

    for (i = 0; i < r->n; i++) {
        ESC_FREE(r->item[(r->head + i) % AGG_LIVE_PER_TEAM]);
    }
    r->head = 0;
    r->n = 0;
}

/* Appends a copy of text; the oldest is dropped when full. Returns 1 when one was dropped. */
static int
s_ring_push(struct s_ring *r, const char *text)
{
    int dropped = 0;

    if (r->n == AGG_LIVE_PER_TEAM) {
        ESC_FREE(r->item[r->head]);
        r->head = (r->head + 1) % AGG_LIVE_PER_TEAM;
        r->n--;
        dropped = 1;
    }
    r->item[(r->head + r->n) % AGG_LIVE_PER_TEAM] = esc_strdup(text);
    r->n++;
    return dropped;
}

void
agg_live_destroy(agg_live_t **self_p)
{
    agg_live_t *self = self_p != NULL ? *self_p : NULL;
    size_t i;

    if (self == NULL) {
        return;
    }
    for (i = 0; i < self->n_teams; i++) {
        s_ring_clear(&self->teams[i]);
    }
    for (i = 0; i < self->n_topics; i++) {
        s_ring_clear(&self->topics[i]);
    }
    esc_free(self->teams);
    esc_free(self->topics);
    esc_free(self);
    *self_p = NULL;
}

/* The ring for key in rings (n used of max), created when missing; NULL when full. */
static struct s_ring *
s_ring_get(struct s_ring *rings, size_t *n, size_t max, const char *key, size_t keylen)
{
    size_t i;

    for (i = 0; i < *n; i++) {
        if (strncmp(rings[i].key, key, keylen) == 0 && rings[i].key[keylen] == '\0') {
            return &rings[i];
        }
    }
    if (*n == max || keylen >= sizeof(rings[0].key)) {
        return NULL;
    }
    memcpy(rings[*n].key, key, keylen);
    rings[*n].key[keylen] = '\0';
    return &rings[(*n)++];
}

/* Length of the longest prefix of s of at most max bytes ending on a UTF-8 boundary. */
static size_t
s_utf8_cut(const char *s, size_t max)
{
    size_t len = strlen(s);

    if (len <= max) {
        return len;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) {
        max--;
    }
    return max;
}

/* Sets key to the first max bytes of v; text that is not valid UTF-8 becomes "" (jansson
 * refuses it, and the decoders upstream should not have let it through). */
static void
s_set_str(json_t *o, const char *key, const char *v, size_t max)
{
    json_t *s;

    if (v == NULL) {
        return;
    }
    s = json_stringn(v, s_utf8_cut(v, max));
    json_object_set_new(o, key, s != NULL ? s : json_string(""));
}

char *
agg_live_post_json(const struct esc_post *p, const char *const *topic_ids, size_t n)
{
    json_t *o = json_object();
    json_t *t = json_array();
    const char *lang = p->language != NULL && strcmp(p->language, "und") != 0 ? p->language
                                                                               : p->lang;
    char *text;
    char *out;
    size_t i;

    s_set_str(o, "id", p->id, 256);
    s_set_str(o, "platform", p->platform, 64);
    s_set_str(o, "author", p->author, 256);
    s_set_str(o, "author_name", p->author_name, 256);
    s_set_str(o, "url", p->url, 2048);
    json_object_set_new(o, "created_at", json_integer(p->created_at));
    s_set_str(o, "text", p->text != NULL ? p->text : "", AGG_LIVE_TEXT_MAX);
    for (i = 0; i < n; i++) {
        json_array_append_new(t, json_string(topic_ids[i]));
    }
    json_object_set_new(o, "topics", t);
    s_set_str(o, "lang", lang, 16);
    json_object_set_new(o, "sentiment", json_real(p->sentiment));
    json_object_set_new(o, "followers", json_integer(p->followers > 0 ? p->followers : 0));
    json_object_set_new(o, "likes", json_integer(p->likes > 0 ? p->likes : 0));
    json_object_set_new(o, "reposts", json_integer(p->reposts > 0 ? p->reposts : 0));
    json_object_set_new(o, "replies", json_integer(p->replies > 0 ? p->replies : 0));
    text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(4));
    json_decref(o);
    ESC_ASSERT(text != NULL);
    out = esc_strdup(text);
    esc_free(text); /* json_dumps allocates with malloc; esc_free is free */
    return out;
}

void
agg_live_add(agg_live_t *self, const struct esc_post *p, const char *const *topics, size_t n)
{
    const char *ids[ESC_POST_LIST_MAX];
    size_t done[ESC_POST_LIST_MAX];
    size_t n_done = 0;
    size_t i;
    size_t j;

    for (i = 0; i < n && i < ESC_POST_LIST_MAX; i++) {
        const char *slash = strchr(topics[i], '/');
        size_t tlen;
        size_t n_ids = 0;
        int seen = 0;
        struct s_ring *team;
        char *json;

        if (slash == NULL) {
            continue;
        }
        tlen = (size_t)(slash - topics[i]);
        for (j = 0; j < n_done && !seen; j++) {
            seen = strncmp(topics[done[j]], topics[i], tlen + 1) == 0;
        }
        if (seen) {
            continue; /* this team was handled with an earlier topic key */
        }
        done[n_done++] = i;
        for (j = i; j < n; j++) {
            if (strncmp(topics[j], topics[i], tlen + 1) == 0) {
                ids[n_ids++] = topics[j] + tlen + 1;
            }
        }
        team = s_ring_get(self->teams, &self->n_teams, AGG_LIVE_TEAMS_MAX, topics[i], tlen);
        if (team == NULL) {
            self->st.dropped++;
            esc_log_every(&self->warn_every, 10000, "live: too many teams, post not published");
            continue;
        }
        json = agg_live_post_json(p, ids, n_ids);
        self->st.dropped += (uint64_t)s_ring_push(team, json);
        for (j = i; j < n; j++) {
            struct s_ring *tr;

            if (strncmp(topics[j], topics[i], tlen + 1) != 0) {
                continue;
            }
            tr = s_ring_get(self->topics, &self->n_topics, AGG_LIVE_TOPICS_MAX, topics[j],
                            strlen(topics[j]));
            if (tr != NULL) {
                s_ring_push(tr, json);
            }
        }
        esc_free(json);
    }
}

esc_rc
agg_live_flush(agg_live_t *self, esc_kv_t *kv)
{
    size_t i;
    size_t k;
    size_t posts = 0;
    char key[256];
    esc_rc rc;

    if (self->n_teams == 0) {
        return ESC_OK;
    }
    for (i = 0; i < self->n_teams; i++) {
        struct s_ring *r = &self->teams[i];
        size_t cap = 3;
        size_t len = 0;
        char *msg;

        for (k = 0; k < r->n; k++) {
            cap += strlen(r->item[(r->head + k) % AGG_LIVE_PER_TEAM]) + 1;
        }
        msg = esc_malloc(cap);
        msg[len++] = '[';
        for (k = 0; k < r->n; k++) {
            const char *it = r->item[(r->head + k) % AGG_LIVE_PER_TEAM];
            size_t n = strlen(it);

            if (k > 0) {
                msg[len++] = ',';
            }
            memcpy(msg + len, it, n);
            len += n;
        }
        msg[len++] = ']';
        msg[len] = '\0';
        snprintf(key, sizeof(key), "%s:live:{%s}", self->prefix, r->key);
        esc_kv_append(kv, "PUBLISH %s %b", key, msg, len);
        posts += r->n;
        esc_free(msg);
    }
    for (i = 0; i < self->n_topics; i++) {
        struct s_ring *r = &self->topics[i];

        snprintf(key, sizeof(key), "%s:latest:{%s}", self->prefix, r->key);
        for (k = 0; k < r->n; k++) {
            esc_kv_append(kv, "LPUSH %s %s", key, r->item[(r->head + k) % AGG_LIVE_PER_TEAM]);
        }
        esc_kv_append(kv, "LTRIM %s 0 %d", key, AGG_LIVE_LATEST_KEEP - 1);
    }
    rc = esc_kv_exec(kv, NULL);
    if (rc == ESC_OK) {
        self->st.published += self->n_teams;
        self->st.posts += posts;
    }
    else {
        self->st.dropped += posts;
        esc_log_debug("live posts dropped, redis unreachable posts=%zu", posts);
    }
    for (i = 0; i < self->n_teams; i++) {
        s_ring_clear(&self->teams[i]);
    }
    for (i = 0; i < self->n_topics; i++) {
        s_ring_clear(&self->topics[i]);
    }
    self->n_teams = 0;
    self->n_topics = 0;
    return rc == ESC_OK ? ESC_OK : ESC_RETRY;
}

void
agg_live_get_stats(const agg_live_t *self, struct agg_live_stats *out)
{
    *out = self->st;
}
