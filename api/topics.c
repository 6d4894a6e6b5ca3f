#define ESC_LOG_MODULE "topics"
/* Topic editing. The config file stays the base; what editors change lives in Redis next to
 * the counters, so every classifier sees it without a file being rewritten: a hash of topic
 * overrides per team, the team's exclusion lists, a global version counter the classifiers
 * poll, and an audit list per team. A change is one pipeline: the write, the audit entry
 * (LPUSH + LTRIM) and INCR of the version, in that order, so a classifier that sees the new
 * version also sees the new topic. Queries are checked by the classifier's own validator
 * (`escucha-classifier --check-query Q`, exit 0 valid, 2 invalid, messages "error: column N:
 * ..." on stdout), run as a child process with a timeout, so the API and the classifiers can
 * never disagree on what a valid query is. The caller serialises access to the kv. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "topics.h"

#define S_VALIDATOR_OUT_MAX 65536

extern char **environ;

static void
s_detail(json_t *details, const char *field, const char *msg)
{
    json_t *d = json_object();

    json_object_set_new(d, "field", json_string(field));
    json_object_set_new(d, "message", json_string(msg));
    json_array_append_new(details, d);
}

static json_t *
s_strlist(char **list, size_t n)
{
    json_t *a = json_array();
    size_t i;

    for (i = 0; i < n; i++) {
        json_array_append_new(a, json_string(list[i]));
    }
    return a;
}

static json_t *
s_from_cfg(const struct esc_cfg_topic *t)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_string(t->id));
    json_object_set_new(o, "name", json_string(t->name[0] != '\0' ? t->name : t->id));
    json_object_set_new(o, "keywords", s_strlist(t->keywords, t->n_keywords));
    json_object_set_new(o, "query", t->query != NULL ? json_string(t->query) : json_null());
    json_object_set_new(o, "exclude", t->exclude != NULL ? json_string(t->exclude) : json_null());
    json_object_set_new(o, "fold_enye", json_boolean(t->fold_enye));
    return o;
}

static const struct esc_cfg_topic *
s_cfg_topic(const struct esc_cfg_team *team, const char *id)
{
    size_t i;

    for (i = 0; i < team->n_topics; i++) {
        if (strcmp(team->topics[i].id, id) == 0) {
            return &team->topics[i];
        }
    }
    return NULL;
}

static int
s_key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

esc_rc
api_topics_list(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team, json_t **out)
{
    struct esc_kv_val v;
    json_t *over = json_object(); /* id -> stored JSON */
    json_t *list = json_array();
    const char **extra;
    size_t n_extra = 0;
    const char *id;
    json_t *val;
    size_t i;
    esc_rc rc;

    memset(&v, 0, sizeof(v));
    rc = esc_kv_cmd(kv, &v, "HGETALL %s:topics:{%s}", prefix, team->id);
    if (rc != ESC_OK) {
        json_decref(over);
        json_decref(list);
        return rc;
    }
    for (i = 0; v.type == ESC_KV_ARRAY && i + 1 < v.n; i += 2) {
        json_t *t = v.elem[i + 1].str != NULL
                        ? json_loadb(v.elem[i + 1].str, v.elem[i + 1].len, 0, NULL)
                        : NULL;

        if (v.elem[i].str != NULL && esc_ident_valid(v.elem[i].str) && json_is_object(t)) {
            json_object_set_new(over, v.elem[i].str, t);
        }
        else {
            esc_log_warn("stored topic skipped team=%s reason=not a topic object", team->id);
            json_decref(t);
        }
    }
    esc_kv_val_fini(&v);
    for (i = 0; i < team->n_topics; i++) {
        json_t *o = json_object_get(over, team->topics[i].id);

        if (o == NULL) {
            o = s_from_cfg(&team->topics[i]);
            json_object_set_new(o, "source", json_string("config"));
            json_array_append_new(list, o);
        }
        else if (!json_is_true(json_object_get(o, "deleted"))) {
            json_object_set_new(o, "id", json_string(team->topics[i].id));
            json_object_set_new(o, "source", json_string("api"));
            json_array_append(list, o);
        }
    }
    extra = esc_calloc(json_object_size(over) + 1, sizeof(*extra));
    json_object_foreach(over, id, val) {
        if (s_cfg_topic(team, id) == NULL && !json_is_true(json_object_get(val, "deleted"))) {
            extra[n_extra++] = id;
        }
    }
    qsort(extra, n_extra, sizeof(*extra), s_key_cmp);
    for (i = 0; i < n_extra; i++) {
        json_t *o = json_object_get(over, extra[i]);

        json_object_set_new(o, "id", json_string(extra[i]));
        json_object_set_new(o, "source", json_string("api"));
        json_array_append(list, o);
    }
    esc_free(extra);
    json_decref(over);
    *out = list;
    return ESC_OK;
}

esc_rc
api_topics_get(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team, const char *id,
               json_t **out)
{
    json_t *list;
    json_t *t;
    size_t i;
    esc_rc rc = api_topics_list(kv, prefix, team, &list);

    *out = NULL;
    if (rc != ESC_OK) {
        return rc;
    }
    json_array_foreach(list, i, t) {
        if (strcmp(json_string_value(json_object_get(t, "id")), id) == 0) {
            *out = json_incref(t);
            break;
        }
    }
    json_decref(list);
    return ESC_OK;
}

/* Checks an optional string member (NULL/absent allowed) of at most max bytes. */
static int
s_check_optstr(json_t *body, const char *key, size_t max, json_t *out, json_t *details)
{
    json_t *v = json_object_get(body, key);
    char msg[128];

    if (v == NULL || json_is_null(v)) {
        json_object_set_new(out, key, json_null());
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) > max
        || strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(msg, sizeof(msg), "expected a string of at most %zu bytes, or null", max);
        s_detail(details, key, msg);
        return -1;
    }
    if (json_string_length(v) == 0) {
        json_object_set_new(out, key, json_null());
        return 0;
    }
    json_object_set_new(out, key, json_string(json_string_value(v)));
    return 0;
}

json_t *
api_topic_check(json_t *body, const char *id, json_t *details)
{
    static const char *const keys[] = { "id", "name", "keywords", "query", "exclude",
                                        "fold_enye", "source", NULL };
    json_t *out;
    json_t *v;
    json_t *kw;
    const char *key;
    size_t i;
    size_t before = json_array_size(details);
    char msg[160];

    if (!json_is_object(body)) {
        s_detail(details, "", "expected a JSON object");
        return NULL;
    }
    json_object_foreach(body, key, v) {
        int known = 0;

        for (i = 0; keys[i] != NULL; i++) {
            known |= strcmp(keys[i], key) == 0;
        }
        if (!known) {
            s_detail(details, key, "unknown key");
        }
    }
    out = json_object();
    v = json_object_get(body, "id");
    if (!esc_ident_valid(id)) {
        s_detail(details, "id", "expected [a-z0-9][a-z0-9_-]{0,63}");
    }
    else if (v != NULL && (!json_is_string(v) || strcmp(json_string_value(v), id) != 0)) {
        s_detail(details, "id", "does not match the topic id in the path");
    }
    json_object_set_new(out, "id", json_string(id));
    v = json_object_get(body, "name");
    if (v != NULL && (!json_is_string(v) || json_string_length(v) == 0
                      || json_string_length(v) > 127)) {
        s_detail(details, "name", "expected a non-empty string of at most 127 bytes");
    }
    json_object_set_new(out, "name", json_string(json_is_string(v) ? json_string_value(v) : id));
    kw = json_array();
    v = json_object_get(body, "keywords");
    if (v != NULL && !json_is_array(v)) {
        s_detail(details, "keywords", "expected an array of strings");
    }
    else if (json_array_size(v) > API_TOPIC_KEYWORDS_MAX) {
        snprintf(msg, sizeof(msg), "at most %d keywords", API_TOPIC_KEYWORDS_MAX);
        s_detail(details, "keywords", msg);
    }
    else {
        json_t *k;

        json_array_foreach(v, i, k) {
            const char *s = json_string_value(k);
            size_t n = s != NULL ? strlen(s) : 0;

            while (s != NULL && n > 0 && (*s == ' ' || *s == '\t')) {
                s++;
                n--;
            }
            while (s != NULL && n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
                n--;
            }
            if (s == NULL || n == 0 || n > API_TOPIC_KEYWORD_LEN
                || json_string_length(k) != strlen(json_string_value(k))) {
                snprintf(msg, sizeof(msg), "keywords[%zu]: expected a non-empty string of at "
                         "most %d bytes", i, API_TOPIC_KEYWORD_LEN);
                s_detail(details, "keywords", msg);
                continue;
            }
            json_array_append_new(kw, json_stringn(s, n));
        }
    }
    json_object_set_new(out, "keywords", kw);
    s_check_optstr(body, "query", API_TOPIC_QUERY_LEN, out, details);
    s_check_optstr(body, "exclude", API_TOPIC_QUERY_LEN, out, details);
    v = json_object_get(body, "fold_enye");
    if (v != NULL && !json_is_boolean(v)) {
        s_detail(details, "fold_enye", "expected true or false");
    }
    json_object_set_new(out, "fold_enye", json_boolean(json_is_true(v)));
    if (json_array_size(details) == before && json_array_size(kw) == 0
        && json_is_null(json_object_get(out, "query"))) {
        s_detail(details, "keywords", "a topic needs keywords or a query");
    }
    if (json_array_size(details) > before) {
        json_decref(out);
        return NULL;
    }
    return out;
}

size_t
api_query_parse_output(const char *out, const char *field, json_t *details)
{
    const char *line = out;
    size_t errors = 0;

    while (line != NULL && *line != '\0') {
        const char *end = strchr(line, '\n');
        size_t n = end != NULL ? (size_t)(end - line) : strlen(line);
        char buf[1024];
        const char *p = buf;
        const char *sev = NULL;
        int64_t col = 0;

        if (n >= sizeof(buf)) {
            n = sizeof(buf) - 1;
        }
        memcpy(buf, line, n);
        buf[n] = '\0';
        if (strncmp(p, "error: ", 7) == 0) {
            sev = "error";
            p += 7;
        }
        else if (strncmp(p, "warning: ", 9) == 0) {
            sev = "warning";
            p += 9;
        }
        if (sev != NULL) {
            json_t *d = json_object();

            if (strncmp(p, "column ", 7) == 0) {
                char num[16];
                size_t k = 0;

                p += 7;
                while (k + 1 < sizeof(num) && p[k] >= '0' && p[k] <= '9') {
                    num[k] = p[k];
                    k++;
                }
                num[k] = '\0';
                if (k > 0 && p[k] == ':' && esc_parse_i64(num, 1, 1000000, &col) == 0) {
                    p += k + 1;
                    while (*p == ' ') {
                        p++;
                    }
                }
                else {
                    col = 0;
                    p -= 7;
                }
            }
            json_object_set_new(d, "field", json_string(field));
            json_object_set_new(d, "severity", json_string(sev));
            json_object_set_new(d, "column", col > 0 ? json_integer(col) : json_null());
            json_object_set_new(d, "message", json_string(p));
            json_array_append_new(details, d);
            errors += strcmp(sev, "error") == 0;
        }
        line = end != NULL ? end + 1 : NULL;
    }
    return errors;
}

/* Runs the validator on query; fills *out (caller frees) and *status (exit status, or -1). */
static esc_rc
s_run_validator(const char *validator, int64_t timeout_ms, const char *query, char **out,
                int *status)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none;
    sigset_t def;
    int pfd[2];
    pid_t pid;
    char *argv[4];
    char *buf = esc_malloc(S_VALIDATOR_OUT_MAX + 1);
    size_t used = 0;
    int64_t deadline = esc_mono_ms() + timeout_ms;
    int ws = 0;
    int timed_out = 0;
    int rc;

    *out = NULL;
    *status = -1;
    if (pipe(pfd) != 0) {
        esc_log_errno("pipe");
        esc_free(buf);
        return ESC_ERR;
    }
    /* not inherited by children other threads spawn meanwhile */
    fcntl(pfd[0], F_SETFD, FD_CLOEXEC);
    fcntl(pfd[1], F_SETFD, FD_CLOEXEC);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGHUP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    argv[0] = (char *)(uintptr_t)validator;
    argv[1] = (char *)(uintptr_t)"--check-query";
    argv[2] = (char *)(uintptr_t)query;
    argv[3] = NULL;
    rc = posix_spawn(&pid, validator, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(pfd[1]);
    if (rc != 0) {
        errno = rc;
        esc_log_error("query validator could not be started path=%s err=\"%s\"", validator,
                      esc_log_strerror());
        close(pfd[0]);
        esc_free(buf);
        return ESC_ERR;
    }
    for (;;) {
        struct pollfd p = { pfd[0], POLLIN, 0 };
        int64_t left = deadline - esc_mono_ms();
        ssize_t n;

        if (left <= 0) {
            kill(pid, SIGKILL);
            timed_out = 1;
            break;
        }
        if (poll(&p, 1, (int)left) <= 0) {
            continue;
        }
        n = read(pfd[0], buf + used, S_VALIDATOR_OUT_MAX - used);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        used += (size_t)n;
        if (used == S_VALIDATOR_OUT_MAX) {
            break;
        }
    }
    close(pfd[0]);
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    buf[used] = '\0';
    if (timed_out) {
        esc_log_error("query validator timed out path=%s timeout_ms=%lld", validator,
                      (long long)timeout_ms);
        esc_free(buf);
        return ESC_ERR;
    }
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    *out = buf;
    return ESC_OK;
}

esc_rc
api_query_validate(const char *validator, int64_t timeout_ms, const char *field,
                   const char *query, json_t *details)
{
    char *out = NULL;
    int status = -1;
    size_t errors;

    if (validator == NULL || validator[0] == '\0' || query == NULL) {
        return ESC_OK;
    }
    if (s_run_validator(validator, timeout_ms, query, &out, &status) != ESC_OK) {
        return ESC_ERR;
    }
    errors = api_query_parse_output(out, field, details);
    esc_free(out);
    if (status == 0) {
        return ESC_OK;
    }
    if (status == ESC_CFG_EXIT_INVALID) {
        if (errors == 0) {
            s_detail(details, field, "the query is not valid");
        }
        return ESC_INVALID;
    }
    esc_log_error("query validator failed path=%s status=%d", validator, status);
    return ESC_ERR;
}

/* Queues the audit entry and the version bump of a change. */
static void
s_audit(esc_kv_t *kv, const char *prefix, const char *team, const char *action, const char *topic,
        json_t *before, json_t *after, const struct api_actor *who, int64_t audit_keep)
{
    json_t *e = json_object();
    char iso[32];
    char key[200];
    int64_t now = esc_now_ms();
    char *text;

    json_object_set_new(e, "ts", json_integer(now));
    json_object_set_new(e, "ts_iso", json_string(esc_time_fmt_iso8601(now, iso, sizeof(iso))));
    json_object_set_new(e, "who", json_string(who->name));
    json_object_set_new(e, "role", json_string(who->role));
    json_object_set_new(e, "team", json_string(team));
    json_object_set_new(e, "action", json_string(action));
    json_object_set_new(e, "topic", topic != NULL ? json_string(topic) : json_null());
    json_object_set_new(e, "before", before != NULL ? json_deep_copy(before) : json_null());
    json_object_set_new(e, "after", after != NULL ? json_deep_copy(after) : json_null());
    text = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    snprintf(key, sizeof(key), "%s:audit:{%s}", prefix, team);
    esc_kv_append(kv, "LPUSH %s %s", key, text);
    esc_kv_append(kv, "LTRIM %s 0 %lld", key, (long long)(audit_keep - 1));
    esc_kv_append(kv, "INCR %s:topics:version", prefix);
    esc_free(text); /* json_dumps allocates with malloc; esc_free is free */
}

/* Runs the queued pipeline; a Redis error reply is an error (logged by esc_kv). */
static esc_rc
s_exec(esc_kv_t *kv)
{
    size_t n_err = 0;
    esc_rc rc = esc_kv_exec(kv, &n_err);

    if (rc == ESC_OK && n_err > 0) {
        return ESC_ERR;
    }
    return rc;
}

static void
s_strip(json_t *t)
{
    json_object_del(t, "source");
}

esc_rc
api_topics_put(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team, json_t *topic,
               json_t *before, const struct api_actor *who, int64_t audit_keep)
{
    const char *id = json_string_value(json_object_get(topic, "id"));
    json_t *stored = json_deep_copy(topic);
    json_t *b = before != NULL ? json_deep_copy(before) : NULL;
    char *text;

    s_strip(stored);
    if (b != NULL) {
        s_strip(b);
    }
    text = json_dumps(stored, JSON_COMPACT | JSON_SORT_KEYS);
    esc_kv_append(kv, "HSET %s:topics:{%s} %s %s", prefix, team->id, id, text);
    s_audit(kv, prefix, team->id, before != NULL ? "update" : "create", id, b, stored, who,
            audit_keep);
    esc_free(text); /* json_dumps allocates with malloc; esc_free is free */
    json_decref(stored);
    json_decref(b);
    return s_exec(kv);
}

esc_rc
api_topics_delete(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team,
                  const char *id, json_t *before, const struct api_actor *who,
                  int64_t audit_keep)
{
    json_t *b = json_deep_copy(before);

    s_strip(b);
    if (s_cfg_topic(team, id) != NULL) {
        json_t *tomb = json_object();
        char *text;

        json_object_set_new(tomb, "id", json_string(id));
        json_object_set_new(tomb, "deleted", json_true());
        text = json_dumps(tomb, JSON_COMPACT | JSON_SORT_KEYS);
        esc_kv_append(kv, "HSET %s:topics:{%s} %s %s", prefix, team->id, id, text);
        esc_free(text); /* json_dumps allocates with malloc; esc_free is free */
        json_decref(tomb);
    }
    else {
        esc_kv_append(kv, "HDEL %s:topics:{%s} %s", prefix, team->id, id);
    }
    s_audit(kv, prefix, team->id, "delete", id, b, NULL, who, audit_keep);
    json_decref(b);
    return s_exec(kv);
}

esc_rc
api_exclude_get(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team, json_t **out)
{
    struct esc_kv_val v;
    json_t *o = NULL;
    esc_rc rc;

    memset(&v, 0, sizeof(v));
    rc = esc_kv_cmd(kv, &v, "GET %s:exclude:{%s}", prefix, team->id);
    if (rc != ESC_OK) {
        return rc;
    }
    if (v.type == ESC_KV_STR && v.str != NULL) {
        o = json_loadb(v.str, v.len, 0, NULL);
        if (!json_is_object(o)) {
            esc_log_warn("stored exclusion lists skipped team=%s reason=not an object", team->id);
            json_decref(o);
            o = NULL;
        }
    }
    esc_kv_val_fini(&v);
    if (o != NULL) {
        json_object_set_new(o, "source", json_string("api"));
    }
    else {
        o = json_object();
        json_object_set_new(o, "authors", s_strlist(team->exclude_authors,
                                                    team->n_exclude_authors));
        json_object_set_new(o, "sites", s_strlist(team->exclude_sites, team->n_exclude_sites));
        json_object_set_new(o, "phrases", s_strlist(team->exclude_phrases,
                                                    team->n_exclude_phrases));
        json_object_set_new(o, "source", json_string("config"));
    }
    *out = o;
    return ESC_OK;
}

json_t *
api_exclude_check(json_t *body, json_t *details)
{
    static const char *const lists[] = { "authors", "sites", "phrases", NULL };
    json_t *out;
    json_t *v;
    const char *key;
    size_t before = json_array_size(details);
    size_t i;
    size_t k;
    char msg[160];

    if (!json_is_object(body)) {
        s_detail(details, "", "expected a JSON object");
        return NULL;
    }
    json_object_foreach(body, key, v) {
        int known = strcmp(key, "source") == 0;

        for (i = 0; lists[i] != NULL; i++) {
            known |= strcmp(lists[i], key) == 0;
        }
        if (!known) {
            s_detail(details, key, "unknown key");
        }
    }
    out = json_object();
    for (i = 0; lists[i] != NULL; i++) {
        json_t *arr = json_array();
        json_t *e;

        v = json_object_get(body, lists[i]);
        if (v != NULL && (!json_is_array(v) || json_array_size(v) > API_EXCLUDE_MAX)) {
            snprintf(msg, sizeof(msg), "expected an array of at most %d strings",
                     API_EXCLUDE_MAX);
            s_detail(details, lists[i], msg);
        }
        json_array_foreach(v, k, e) {
            if (!json_is_string(e) || json_string_length(e) == 0
                || json_string_length(e) > API_TOPIC_KEYWORD_LEN
                || strlen(json_string_value(e)) != json_string_length(e)) {
                snprintf(msg, sizeof(msg), "%s[%zu]: expected a non-empty string of at most %d "
                         "bytes", lists[i], k, API_TOPIC_KEYWORD_LEN);
                s_detail(details, lists[i], msg);
                continue;
            }
            json_array_append_new(arr, json_string(json_string_value(e)));
        }
        json_object_set_new(out, lists[i], arr);
    }
    if (json_array_size(details) > before) {
        json_decref(out);
        return NULL;
    }
    return out;
}

esc_rc
api_exclude_put(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team, json_t *excl,
                json_t *before, const struct api_actor *who, int64_t audit_keep)
{
    json_t *stored = json_deep_copy(excl);
    json_t *b = before != NULL ? json_deep_copy(before) : NULL;
    char *text;

    s_strip(stored);
    if (b != NULL) {
        s_strip(b);
    }
    text = json_dumps(stored, JSON_COMPACT | JSON_SORT_KEYS);
    esc_kv_append(kv, "SET %s:exclude:{%s} %s", prefix, team->id, text);
    s_audit(kv, prefix, team->id, "exclude", NULL, b, stored, who, audit_keep);
    esc_free(text); /* json_dumps allocates with malloc; esc_free is free */
    json_decref(stored);
    json_decref(b);
    return s_exec(kv);
}

esc_rc
api_audit_list(esc_kv_t *kv, const char *prefix, const char *team, size_t limit, json_t **out)
{
    struct esc_kv_val v;
    json_t *arr = json_array();
    size_t i;
    esc_rc rc;

    memset(&v, 0, sizeof(v));
    rc = esc_kv_cmd(kv, &v, "LRANGE %s:audit:{%s} 0 %lld", prefix, team,
                    (long long)(limit > 0 ? limit - 1 : 0));
    if (rc != ESC_OK) {
        json_decref(arr);
        return rc;
    }
    for (i = 0; limit > 0 && v.type == ESC_KV_ARRAY && i < v.n; i++) {
        json_t *e = v.elem[i].str != NULL ? json_loadb(v.elem[i].str, v.elem[i].len, 0, NULL)
                                          : NULL;

        if (json_is_object(e)) {
            json_array_append_new(arr, e);
        }
        else {
            json_decref(e);
        }
    }
    esc_kv_val_fini(&v);
    *out = json_object();
    json_object_set_new(*out, "audit", arr);
    return ESC_OK;
}
