#define ESC_LOG_MODULE "catchup"
/* Pieces of the alert catch-up (catchup.h): the parser that turns one entry of a team's alert
 * history (the JSON of esc_alert_to_json, written by the aggregator) back into a struct
 * esc_alert, checking that it belongs to the team whose list it was read from, and a small
 * bounded set of strings that remembers which alerts were already handled. The set is a ring
 * with a 64-bit FNV-1a hash beside each string, scanned linearly: a few thousand entries,
 * looked at once per catch-up. No I/O here; notifier.c reads the lists. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "catchup.h"

struct ntf_seen {
    char **keys;       /* ring of owned strings; NULL where empty */
    uint64_t *hashes;
    size_t cap;
    size_t next;       /* slot written by the next add */
};

static uint64_t
s_fnv1a(const void *p, size_t len)
{
    const unsigned char *b = p;
    uint64_t h = 14695981039346656037ULL;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

ntf_seen_t *
ntf_seen_new(size_t cap)
{
    ntf_seen_t *s = esc_calloc(1, sizeof(*s));

    ESC_ASSERT(cap > 0);
    s->keys = esc_calloc(cap, sizeof(*s->keys));
    s->hashes = esc_calloc(cap, sizeof(*s->hashes));
    s->cap = cap;
    return s;
}

void
ntf_seen_destroy(ntf_seen_t **p)
{
    size_t i;

    if (p == NULL || *p == NULL) {
        return;
    }
    for (i = 0; i < (*p)->cap; i++) {
        esc_free((*p)->keys[i]);
    }
    esc_free((*p)->keys);
    esc_free((*p)->hashes);
    esc_free(*p);
    *p = NULL;
}

int
ntf_seen_has(const ntf_seen_t *s, const char *key)
{
    uint64_t h = s_fnv1a(key, strlen(key));
    size_t i;

    for (i = 0; i < s->cap; i++) {
        if (s->hashes[i] == h && s->keys[i] != NULL && strcmp(s->keys[i], key) == 0) {
            return 1;
        }
    }
    return 0;
}

void
ntf_seen_add(ntf_seen_t *s, const char *key)
{
    if (ntf_seen_has(s, key)) {
        return;
    }
    esc_free(s->keys[s->next]);
    s->keys[s->next] = esc_strdup(key);
    s->hashes[s->next] = s_fnv1a(key, strlen(key));
    s->next = (s->next + 1) % s->cap;
}

void
ntf_catchup_bad_key(const char *text, size_t len, char out[32])
{
    snprintf(out, 32, "bad:%016llx", (unsigned long long)s_fnv1a(text, len));
}

/* Non-empty string member key of o, or NULL. */
static const char *
s_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s != NULL && s[0] != '\0' ? s : NULL;
}

static char *
s_dup_opt(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s != NULL ? esc_strdup(s) : NULL;
}

/* Number member key, 0 when absent; -1 when present but not a number (the JSON of a NaN is
 * null, and a NaN is refused on the bus as well). */
static int
s_num(const json_t *o, const char *key, double *out)
{
    const json_t *v = json_object_get(o, key);

    *out = 0;
    if (v == NULL) {
        return 0;
    }
    if (!json_is_number(v)) {
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

/* Copies the string array member key (non-strings become "", so parallel lists stay
 * aligned). */
static void
s_list(const json_t *o, const char *key, char ***list, size_t *n)
{
    const json_t *a = json_object_get(o, key);
    size_t i;

    for (i = 0; i < json_array_size(a); i++) {
        const char *s = json_string_value(json_array_get(a, i));

        if (esc_strlist_push(list, n, s != NULL ? s : "") != 0) {
            break;
        }
    }
}

enum ntf_catchup_entry
ntf_catchup_parse(const char *text, size_t len, const char *team_id, int64_t since_ms,
                  struct esc_alert *out, struct esc_error *err)
{
    enum ntf_catchup_entry res = NTF_CATCHUP_BAD;
    static const char *const ints[] = { "ts", "window_start", "window_end" };
    json_error_t jerr;
    json_t *o;
    const char *id;
    const char *team;
    const char *topic;
    const char *kind;
    double expected;
    double score;
    size_t i;

    esc_alert_init(out);
    o = json_loadb(text, len, 0, &jerr);
    if (o == NULL) {
        esc_error_set(err, jerr.line, "not JSON: %s", jerr.text);
        return NTF_CATCHUP_BAD;
    }
    if (!json_is_object(o)) {
        esc_error_set(err, 0, "not a JSON object");
        goto out;
    }
    id = s_str(o, "id");
    team = s_str(o, "team");
    topic = s_str(o, "topic");
    kind = s_str(o, "kind");
    if (id == NULL || team == NULL || topic == NULL || kind == NULL) {
        esc_error_set(err, 0, "missing or empty %s",
                      id == NULL ? "id" : team == NULL ? "team" : topic == NULL ? "topic"
                                                                                : "kind");
        goto out;
    }
    for (i = 0; i < ESC_ARRAY_LEN(ints); i++) {
        if (!json_is_integer(json_object_get(o, ints[i]))) {
            esc_error_set(err, 0, "%s is not an integer", ints[i]);
            goto out;
        }
    }
    if (s_num(o, "expected", &expected) != 0 || s_num(o, "score", &score) != 0) {
        esc_error_set(err, 0, "expected or score is not a number");
        goto out;
    }
    if (strcmp(team, team_id) != 0) {
        esc_error_set(err, 0, "alert of another team in this team's list");
        goto out;
    }
    if (strcmp(kind, "spike") != 0 && strcmp(kind, "ended") != 0) {
        esc_error_set(err, 0, "alert of an unknown kind");
        goto out;
    }
    if (json_integer_value(json_object_get(o, "ts")) < since_ms) {
        res = NTF_CATCHUP_OLD;
        goto out;
    }
    out->id = esc_strdup(id);
    out->team = esc_strdup(team);
    out->topic = esc_strdup(topic);
    out->topic_name = s_dup_opt(o, "topic_name");
    out->kind = esc_strdup(kind);
    out->window_start = json_integer_value(json_object_get(o, "window_start"));
    out->window_end = json_integer_value(json_object_get(o, "window_end"));
    out->ts = json_integer_value(json_object_get(o, "ts"));
    out->observed = json_is_integer(json_object_get(o, "observed"))
                        ? json_integer_value(json_object_get(o, "observed"))
                        : 0;
    out->expected = expected;
    out->score = score;
    s_list(o, "samples", &out->samples, &out->n_samples);
    s_list(o, "sample_authors", &out->sample_authors, &out->n_sample_authors);
    s_list(o, "sample_urls", &out->sample_urls, &out->n_sample_urls);
    s_list(o, "terms", &out->terms, &out->n_terms);
    out->query = s_dup_opt(o, "query");
    res = NTF_CATCHUP_ALERT;

out:
    json_decref(o);
    return res;
}
