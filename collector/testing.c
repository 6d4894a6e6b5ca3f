#define ESC_LOG_MODULE "testing"
/* Test support for the connector tests: runs tests/support/platform_fixture.py as a child
 * (PR_SET_PDEATHSIG, so a crashed test leaves nothing behind; the port is read from its first
 * line of stdout) and plays the collector host in process (see testing.h). The host loop here
 * mirrors collector.c's: poll every due source, then wait on the network until the earliest
 * wake-up. Not used by the service. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#define S_PY "/usr/bin/python3"
#define S_FIXTURE "tests/support/platform_fixture.py"
#define S_START_MS 10000

int
col_fixture_start(struct col_fixture *f, const char *scenario, const char *log_path)
{
    int fds[2];
    char line[64];
    size_t n = 0;
    int64_t deadline;
    struct pollfd pfd;
    ssize_t k;
    pid_t pid;

    memset(f, 0, sizeof(*f));
    esc_strlcpy(f->log, log_path, sizeof(f->log));
    unlink(log_path);
    if (pipe(fds) != 0) {
        perror("pipe");
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(S_PY, S_PY, S_FIXTURE, scenario, "--log", log_path, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    f->pid = pid;
    deadline = esc_mono_ms() + S_START_MS;
    while (n < sizeof(line) - 1 && esc_mono_ms() < deadline) {
        pfd.fd = fds[0];
        pfd.events = POLLIN;
        if (poll(&pfd, 1, 100) <= 0) {
            continue;
        }
        k = read(fds[0], line + n, 1);
        if (k <= 0) {
            break;
        }
        n++;
        if (line[n - 1] == '\n') {
            break;
        }
    }
    close(fds[0]);
    line[n] = '\0';
    if (strncmp(line, "PORT ", 5) != 0) {
        fprintf(stderr, "platform fixture did not start (scenario %s): '%s'\n", scenario, line);
        col_fixture_stop(f);
        return -1;
    }
    f->port = (int)strtol(line + 5, NULL, 10);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", f->port);
    return 0;
}

void
col_fixture_stop(struct col_fixture *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
    }
}

json_t *
col_fixture_requests(const struct col_fixture *f)
{
    json_t *arr = json_array();
    FILE *fp = fopen(f->log, "r");
    size_t cap = 4 << 20;
    char *buf;
    char *line;
    char *nl;
    size_t n;
    json_error_t je;
    json_t *j;

    if (fp == NULL) {
        return arr;
    }
    buf = esc_malloc(cap);
    n = fread(buf, 1, cap - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    for (line = buf; *line != '\0'; line = nl + 1) {
        nl = strchr(line, '\n');
        if (nl == NULL) {
            break; /* a line still being written */
        }
        *nl = '\0';
        j = json_loads(line, 0, &je);
        if (j != NULL) {
            json_array_append_new(arr, j);
        }
    }
    esc_free(buf);
    return arr;
}

size_t
col_fixture_count(const struct col_fixture *f, const char *path)
{
    json_t *arr = col_fixture_requests(f);
    json_t *v;
    size_t i;
    size_t n = 0;

    json_array_foreach(arr, i, v) {
        const char *p = json_string_value(json_object_get(v, "path"));

        if (path == NULL || (p != NULL && strcmp(p, path) == 0)) {
            n++;
        }
    }
    json_decref(arr);
    return n;
}

const char *
col_fixture_query(json_t *reqs, size_t n, const char *key)
{
    json_t *q = json_object_get(json_object_get(json_array_get(reqs, n), "query"), key);

    if (!json_is_array(q) || json_array_size(q) == 0) {
        return NULL;
    }
    return json_string_value(json_array_get(q, json_array_size(q) - 1));
}

static esc_rc
s_capture(void *arg, struct col_source *ins, struct esc_post *post)
{
    struct col_rig *r = arg;
    struct esc_error err;
    char *buf;
    size_t len;

    if (r->close_after > 0 && r->n_posts >= r->close_after) {
        return ESC_CLOSED;
    }
    if (r->n_posts >= COL_RIG_POSTS_MAX) {
        return ESC_CLOSED;
    }
    esc_free(post->source);
    post->source = esc_strdup(ins->name);
    post->ingested_at = esc_now_ms();
    buf = esc_post_encode(post, 0, &len);
    if (esc_post_decode(buf, len, &r->posts[r->n_posts], NULL, &err) != ESC_OK) {
        fprintf(stderr, "capture: post does not round-trip: %s\n", err.text);
        esc_free(buf);
        esc_post_fini(&r->posts[r->n_posts]);
        return ESC_INVALID;
    }
    esc_free(buf);
    r->n_posts++;
    ins->stats.posts++;
    return ESC_OK;
}

int
col_rig_start(struct col_rig *r, const char *scenario)
{
    const char *tmp = getenv("TMPDIR");
    char log[256];
    int fd;

    memset(r, 0, sizeof(*r));
    r->saved_stderr = -1;
    signal(SIGPIPE, SIG_IGN); /* as in the collector: a peer closing must not kill the test */
    snprintf(r->dir, sizeof(r->dir), "%s/col_rig_XXXXXX",
             tmp != NULL && strlen(tmp) < 64 ? tmp : "/tmp");
    if (mkdtemp(r->dir) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    if (esc_testenv_redis_start(&r->redis, 0) != 0) {
        return -1;
    }
    r->redis_started = 1;
    snprintf(log, sizeof(log), "%s/requests.jsonl", r->dir);
    if (scenario != NULL && col_fixture_start(&r->fx, scenario, log) != 0) {
        return -1;
    }
    r->net = col_net_new();
    snprintf(r->log_path, sizeof(r->log_path), "%s/stderr.txt", r->dir);
    fflush(stderr);
    fd = open(r->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        r->saved_stderr = dup(2);
        dup2(fd, 2);
        close(fd);
        r->stderr_redirected = 1;
    }
    return 0;
}

/* Replaces every "{base}" in text with base. Caller owns the result. */
static char *
s_subst(const char *text, const char *base)
{
    size_t n = strlen(text) * 2 + 4096;
    char *out = esc_malloc(n);
    const char *p = text;
    const char *hit;
    size_t used = 0;

    for (hit = strstr(p, "{base}"); hit != NULL; hit = strstr(p, "{base}")) {
        size_t k = (size_t)(hit - p);

        ESC_ASSERT(used + k + strlen(base) < n);
        memcpy(out + used, p, k);
        used += k;
        memcpy(out + used, base, strlen(base));
        used += strlen(base);
        p = hit + 6;
    }
    ESC_ASSERT(used + strlen(p) < n);
    memcpy(out + used, p, strlen(p) + 1);
    return out;
}

static int
s_init_all(struct col_rig *r)
{
    int ok = 0;
    size_t i;

    for (i = 0; i < r->n_ins; i++) {
        struct col_source *ins = &r->ins[i];

        ins->net = r->net;
        ins->state = r->state;
        ins->wake_ms = 0;
        ins->done = 0;
        ins->failed = 0;
        if (ins->plugin->init(ins) != 0) {
            ins->failed = 1;
            ins->done = 1;
            ins->started = 0;
            continue;
        }
        ins->started = 1;
        ok++;
    }
    return ok;
}

static void
s_new_state(struct col_rig *r)
{
    struct esc_kv_opts o;

    esc_testenv_kv_opts(&r->redis, &o);
    r->state = col_state_new(&o, "t", COL_STATE_MEM_MAX);
}

int
col_rig_sources(struct col_rig *r, const char *sources_json)
{
    static const char *const ignore[] = { "name", "type", NULL };
    char *src = s_subst(sources_json, r->fx.base);
    size_t n = strlen(src) + 1024;
    char *text = esc_malloc(n);
    struct esc_error err;
    char path[32];
    size_t i;

    snprintf(text, n,
             "{\"redis\":{\"unix_socket\":\"%s\",\"prefix\":\"t\"},"
             "\"teams\":[{\"id\":\"t\",\"topics\":[{\"id\":\"x\",\"keywords\":[\"x\"]}]}],"
             "\"sources\":%s}",
             r->redis.sock, src);
    esc_free(src);
    memset(&err, 0, sizeof(err));
    r->cfg = esc_cfg_load_string(text, "rig.json", &err);
    esc_free(text);
    if (r->cfg == NULL) {
        fprintf(stderr, "rig config: %s\n", err.text);
        return -1;
    }
    for (i = 0; i < r->cfg->n_sources && i < COL_RIG_SOURCES_MAX; i++) {
        struct col_source *ins = &r->ins[i];

        esc_strlcpy(ins->name, r->cfg->sources[i].name, sizeof(ins->name));
        ins->index = i;
        ins->plugin = col_source_plugin_find(r->cfg->sources[i].type);
        if (ins->plugin == NULL) {
            fprintf(stderr, "rig config: unknown type %s\n", r->cfg->sources[i].type);
            return -1;
        }
        ins->cfg = esc_calloc(1, ins->plugin->cfg_size);
        snprintf(path, sizeof(path), "sources.%zu", i);
        if (esc_cfg_section_apply(r->cfg, path, ins->plugin->cfg_map, ignore, ins->cfg, &err)
                != ESC_OK
            || (ins->plugin->validate != NULL
                && ins->plugin->validate(ins->cfg, path, &err) != ESC_OK)) {
            fprintf(stderr, "rig config: %s\n", err.text);
            esc_free(ins->cfg);
            ins->cfg = NULL;
            return -1;
        }
        r->n_ins = i + 1;
    }
    s_new_state(r);
    return s_init_all(r);
}

size_t
col_rig_run(struct col_rig *r, size_t n_posts, int64_t ms)
{
    const struct col_emit em = { s_capture, r };
    int64_t deadline = esc_mono_ms() + ms;
    int64_t now;
    long wait;
    size_t i;
    esc_rc rc;

    for (now = esc_mono_ms(); r->n_posts < n_posts && now < deadline; now = esc_mono_ms()) {
        wait = 200;
        for (i = 0; i < r->n_ins; i++) {
            struct col_source *ins = &r->ins[i];

            if (ins->done) {
                continue;
            }
            if (ins->wake_ms <= now) {
                ins->wake_ms = 0;
                rc = ins->plugin->poll(ins, &em, 512);
                now = esc_mono_ms();
                if (rc == ESC_ERR) {
                    ins->failed = 1;
                    ins->done = 1;
                    continue;
                }
                if (rc == ESC_RETRY && ins->wake_ms <= now) {
                    ins->wake_ms = now + 1000;
                }
            }
            if (ins->wake_ms <= now) {
                wait = 0;
            }
            else if (ins->wake_ms - now < wait) {
                wait = (long)(ins->wake_ms - now);
            }
        }
        if (deadline - now < wait) {
            wait = (long)(deadline - now);
        }
        col_net_wait(r->net, -1, wait < 0 ? 0 : wait);
    }
    return r->n_posts;
}

static void
s_exit_all(struct col_rig *r)
{
    size_t i;

    for (i = 0; i < r->n_ins; i++) {
        if (r->ins[i].started) {
            r->ins[i].plugin->exit(&r->ins[i]);
            r->ins[i].started = 0;
        }
    }
}

void
col_rig_restart(struct col_rig *r)
{
    s_exit_all(r);
    col_state_destroy(&r->state);
    col_net_destroy(&r->net);
    r->net = col_net_new();
    s_new_state(r);
    s_init_all(r);
}

void
col_rig_stop(struct col_rig *r)
{
    size_t i;

    s_exit_all(r);
    for (i = 0; i < r->n_ins; i++) {
        esc_free(r->ins[i].cfg);
        r->ins[i].cfg = NULL;
    }
    for (i = 0; i < r->n_posts; i++) {
        esc_post_fini(&r->posts[i]);
    }
    r->n_posts = 0;
    col_state_destroy(&r->state);
    col_net_destroy(&r->net);
    esc_cfg_free(&r->cfg);
    col_fixture_stop(&r->fx);
    if (r->redis_started) {
        esc_testenv_redis_stop(&r->redis);
        r->redis_started = 0;
    }
    if (r->stderr_redirected) {
        fflush(stderr);
        dup2(r->saved_stderr, 2);
        close(r->saved_stderr);
        r->saved_stderr = -1;
        r->stderr_redirected = 0;
    }
    if (r->log_path[0] != '\0') {
        char *log = NULL;
        FILE *f = fopen(r->log_path, "r");

        /* Always echoed: ctest shows it only when the test fails, and then it holds both the
         * code's log and cmocka's failure message (written while stderr was redirected). */
        if (f != NULL) {
            log = esc_calloc(1, 1 << 20);
            log[fread(log, 1, (1 << 20) - 1, f)] = '\0';
            fclose(f);
            fprintf(stderr, "--- rig log ---\n%s--- end of rig log ---\n", log);
            esc_free(log);
        }
        unlink(r->log_path);
        r->log_path[0] = '\0';
    }
    if (r->fx.log[0] != '\0') {
        unlink(r->fx.log);
        r->fx.log[0] = '\0';
    }
    if (r->dir[0] != '\0') {
        rmdir(r->dir);
        r->dir[0] = '\0';
    }
}

char *
col_rig_log(const struct col_rig *r)
{
    FILE *f;
    char *buf = esc_calloc(1, 1 << 20);
    size_t n;

    fflush(stderr);
    f = fopen(r->log_path, "r");
    if (f == NULL) {
        return buf;
    }
    n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

int
col_rig_find(const struct col_rig *r, const char *id)
{
    size_t i;

    for (i = 0; i < r->n_posts; i++) {
        if (strcmp(r->posts[i].id, id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

size_t
col_rig_count_id(const struct col_rig *r, const char *id)
{
    size_t i;
    size_t n = 0;

    for (i = 0; i < r->n_posts; i++) {
        if (strcmp(r->posts[i].id, id) == 0) {
            n++;
        }
    }
    return n;
}

int
col_rig_setup(void **state)
{
    *state = esc_calloc(1, sizeof(struct col_rig));
    return 0;
}

int
col_rig_teardown(void **state)
{
    col_rig_stop(*state);
    esc_free(*state);
    *state = NULL;
    return 0;
}

char *
col_rig_redis(struct col_rig *r, const char *fmt, const char *arg)
{
    struct esc_kv_opts o;
    struct esc_kv_val v;
    esc_kv_t *kv;
    char *out = NULL;

    esc_testenv_kv_opts(&r->redis, &o);
    kv = esc_kv_new(&o);
    if (esc_kv_cmd(kv, &v, fmt, arg) == ESC_OK) {
        if (v.type == ESC_KV_STR) {
            out = esc_strdup(v.str);
        }
        esc_kv_val_fini(&v);
    }
    esc_kv_destroy(&kv);
    return out;
}
