#define ESC_LOG_MODULE "hub"
/* Per-team rings of live posts shared between the subscriber thread and the SSE streams. One
 * mutex and one condition variable for the whole hub: posts arrive at most a few hundred per
 * second and a wake-up costs each stream a comparison of sequence numbers, so finer locking
 * would buy nothing. A slow stream never holds anyone up: it copies what it needs under the
 * lock and writes to its socket outside it; if it falls more than `keep` posts behind it skips
 * to the oldest post still held. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "hub.h"

struct s_entry {
    uint64_t seq;  /* 0 = empty slot */
    char *json;    /* owned */
    size_t len;
    char *topics;  /* ",a,b,"; owned */
};

struct s_ring {
    struct s_entry *e; /* keep slots; seq s lives in slot (s - 1) % keep */
    uint64_t last;     /* newest seq, 0 = none */
};

struct api_hub {
    struct s_ring *rings;
    size_t n_teams;
    size_t keep;
    int closed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

api_hub_t *
api_hub_new(size_t n_teams, size_t keep)
{
    api_hub_t *self = esc_calloc(1, sizeof(*self));
    pthread_condattr_t ca;
    size_t i;

    ESC_ASSERT(keep > 0);
    self->n_teams = n_teams;
    self->keep = keep;
    self->rings = esc_calloc(n_teams > 0 ? n_teams : 1, sizeof(*self->rings));
    for (i = 0; i < n_teams; i++) {
        self->rings[i].e = esc_calloc(keep, sizeof(struct s_entry));
    }
    pthread_mutex_init(&self->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cv, &ca);
    pthread_condattr_destroy(&ca);
    return self;
}

void
api_hub_destroy(api_hub_t **self_p)
{
    api_hub_t *self = self_p != NULL ? *self_p : NULL;
    size_t i;
    size_t k;

    if (self == NULL) {
        return;
    }
    for (i = 0; i < self->n_teams; i++) {
        for (k = 0; k < self->keep; k++) {
            esc_free(self->rings[i].e[k].json);
            esc_free(self->rings[i].e[k].topics);
        }
        esc_free(self->rings[i].e);
    }
    esc_free(self->rings);
    pthread_cond_destroy(&self->cv);
    pthread_mutex_destroy(&self->mu);
    esc_free(self);
    *self_p = NULL;
}

void
api_hub_push(api_hub_t *self, size_t team, const char *json, size_t len, const char *topics)
{
    struct s_ring *r;
    struct s_entry *e;

    ESC_ASSERT(team < self->n_teams);
    pthread_mutex_lock(&self->mu);
    r = &self->rings[team];
    r->last++;
    e = &r->e[(r->last - 1) % self->keep];
    esc_free(e->json);
    esc_free(e->topics);
    e->seq = r->last;
    e->json = esc_strndup(json, len);
    e->len = len;
    e->topics = esc_strdup(topics != NULL ? topics : ",");
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
}

/* Whether the ",a,b," list holds topic. */
static int
s_has_topic(const char *list, const char *topic)
{
    size_t n = strlen(topic);
    const char *p = list;

    while (p != NULL && *p != '\0') {
        p = strstr(p, topic);
        if (p == NULL) {
            return 0;
        }
        if (p > list && p[-1] == ',' && p[n] == ',') {
            return 1;
        }
        p++;
    }
    return 0;
}

int
api_hub_next(api_hub_t *self, size_t team, uint64_t after, const char *topic, int timeout_ms,
             char **json_out, uint64_t *seq_out)
{
    struct timespec deadline;
    struct s_ring *r;
    int rc = 0;

    ESC_ASSERT(team < self->n_teams);
    *json_out = NULL;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&self->mu);
    r = &self->rings[team];
    if (after > r->last) {
        after = r->last; /* a number from before a restart of the API */
    }
    for (;;) {
        if (self->closed) {
            rc = -1;
            break;
        }
        while (after < r->last) {
            uint64_t oldest = r->last > self->keep ? r->last - self->keep + 1 : 1;
            struct s_entry *e;

            if (after + 1 < oldest) {
                after = oldest - 1;
            }
            e = &r->e[after % self->keep];
            after++;
            if (topic == NULL || s_has_topic(e->topics, topic)) {
                *json_out = esc_strndup(e->json, e->len);
                rc = 1;
                break;
            }
        }
        if (rc == 1) {
            break;
        }
        if (pthread_cond_timedwait(&self->cv, &self->mu, &deadline) == ETIMEDOUT) {
            rc = 0;
            break;
        }
    }
    *seq_out = after;
    pthread_mutex_unlock(&self->mu);
    return rc;
}

uint64_t
api_hub_last(api_hub_t *self, size_t team)
{
    uint64_t last;

    ESC_ASSERT(team < self->n_teams);
    pthread_mutex_lock(&self->mu);
    last = self->rings[team].last;
    pthread_mutex_unlock(&self->mu);
    return last;
}

void
api_hub_close(api_hub_t *self)
{
    pthread_mutex_lock(&self->mu);
    self->closed = 1;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
}
