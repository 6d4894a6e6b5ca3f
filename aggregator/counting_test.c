#define ESC_LOG_MODULE "test"
/* Component tests of exact counting in the real escucha-aggregator binary against a private
 * redis-server: a known stream with every post delivered twice, counted once with its
 * sentiment, language and platform splits and its top lists; the same stream again after a
 * restart (nothing counted again) plus a late post in its own bucket; Redis killed mid-stream
 * and restarted from its append-only file (nothing lost, nothing doubled); and two aggregators
 * at once behind one PUSH socket bound by the test, each getting half of a stream with a burst
 * and re-deliveries (exact counts; the spike alert exactly once, by the lease holder, computed
 * on the merged counts). */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "esc_testenv.h"
#include "escucha/esc_bus.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#ifndef AGG_BIN
#error "AGG_BIN must name the escucha-aggregator binary"
#endif

#define N_AGG 2

struct fix {
    struct esc_testenv_redis redis;
    char dir[256];         /* temp dir: config, logs */
    char cfg_path[300];
    char agg_ep[64];       /* bus.aggregate */
    esc_bus_t *notify;     /* PULL bound where the notifier would be */
    esc_bus_t *push;       /* PUSH to the aggregator(s) */
    esc_kv_t *kv;          /* test client */
    pid_t pid[N_AGG];      /* aggregators, 0 when not running */
};

static void
s_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

static int
s_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0
        && getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

/* Writes the config; `extra` goes into the aggregator section. */
static void
s_write_config(struct fix *f, const char *extra)
{
    FILE *fp = fopen(f->cfg_path, "w");

    assert_non_null(fp);
    fprintf(fp,
            "{\n"
            "  \"deployment\": \"agg-count-test\",\n"
            "  \"redis\": { \"unix_socket\": \"%s\", \"prefix\": \"esc\" },\n"
            "  \"bus\": { \"aggregate\": \"%s\", \"notify\": \"%s\" },\n"
            "  \"teams\": [ { \"id\": \"gob\", \"name\": \"Gobernanza\", \"topics\": [\n"
            "    { \"id\": \"congreso\", \"name\": \"Congreso\", \"keywords\": [\"congreso\"] },\n"
            "    { \"id\": \"elecciones\", \"name\": \"Elecciones\", \"keywords\": [\"voto\"] }\n"
            "  ] } ],\n"
            "  \"aggregator\": { \"flush_ms\": 100, \"grace_ms\": 3000, \"drain_quiet_ms\": 100,\n"
            "    \"top_flush_ms\": 0%s%s,\n"
            "    \"spike\": { \"window_min\": 10, \"baseline_min\": 60, \"factor\": 4.0,\n"
            "                 \"min_count\": 20, \"cooldown_min\": 60, \"lateness_s\": 60 } }\n"
            "}\n",
            f->redis.sock, f->agg_ep, esc_bus_endpoint(f->notify), extra[0] != '\0' ? ", " : "",
            extra);
    fclose(fp);
}

static int
s_setup_args(void **state, const char *const *redis_args)
{
    struct fix *f = esc_calloc(1, sizeof(*f));
    struct esc_kv_opts o;
    const char *tmp = getenv("TMPDIR");

    snprintf(f->dir, sizeof(f->dir), "%s/agg-count-XXXXXX",
             tmp != NULL && tmp[0] != '\0' && strlen(tmp) < 100 ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL || esc_testenv_redis_start_args(&f->redis, 0, redis_args) != 0) {
        esc_free(f);
        return -1;
    }
    snprintf(f->cfg_path, sizeof(f->cfg_path), "%s/escucha.json", f->dir);
    snprintf(f->agg_ep, sizeof(f->agg_ep), "tcp://127.0.0.1:%d", s_free_port());
    f->notify = esc_bus_new(ESC_BUS_PULL, "tcp://127.0.0.1:*", true, 1000);
    esc_testenv_kv_opts(&f->redis, &o);
    f->kv = esc_kv_new(&o);
    *state = f;
    return 0;
}

static int
s_setup(void **state)
{
    return s_setup_args(state, NULL);
}

static int
s_setup_aof(void **state)
{
    static const char *const aof[] = { "--appendonly", "yes", "--appendfsync", "always", NULL };

    return s_setup_args(state, aof);
}

/* Starts aggregator number k with the config; its stderr goes to <dir>/err<k>.log. */
static void
s_spawn(struct fix *f, int k)
{
    char err[300];
    pid_t pid;

    snprintf(err, sizeof(err), "%s/err%d.log", f->dir, k);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int e = open(err, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int o = open("/dev/null", O_WRONLY);

        if (e < 0 || o < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) {
            _exit(127);
        }
        execl(AGG_BIN, AGG_BIN, "--config", f->cfg_path, (char *)NULL);
        _exit(127);
    }
    f->pid[k] = pid;
}

static char *
s_read_log(const struct fix *f, int k)
{
    char path[300];
    char *buf = esc_calloc(1, 1 << 20);
    FILE *fp;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/err%d.log", f->dir, k);
    fp = fopen(path, "r");
    if (fp != NULL) {
        n = fread(buf, 1, (1 << 20) - 1, fp);
        fclose(fp);
    }
    buf[n] = '\0';
    return buf;
}

static void
s_dump_logs(const struct fix *f)
{
    int k;

    for (k = 0; k < N_AGG; k++) {
        char *log = s_read_log(f, k);

        fprintf(stderr, "--- aggregator %d log ---\n%s--- end ---\n", k, log);
        esc_free(log);
    }
}

/* SIGTERM to aggregator k; returns its exit status (-1: it had to be killed). */
static int
s_stop(struct fix *f, int k)
{
    int st = 0;
    long waited;

    kill(f->pid[k], SIGTERM);
    for (waited = 0; waited < 10000; waited += 20) {
        if (waitpid(f->pid[k], &st, WNOHANG) == f->pid[k]) {
            f->pid[k] = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        s_sleep_ms(20);
    }
    kill(f->pid[k], SIGKILL);
    waitpid(f->pid[k], &st, 0);
    f->pid[k] = 0;
    return -1;
}

/* Removes the append-only files of an --appendonly redis-server (esc_testenv removes the
 * files it knows of, not this directory). */
static void
s_remove_aof(const struct fix *f)
{
    char path[600];
    DIR *d;
    struct dirent *e;

    if (f->redis.dir[0] == '\0') {
        return;
    }
    snprintf(path, sizeof(path), "%s/appendonlydir", f->redis.dir);
    d = opendir(path);
    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char file[900];

        if (e->d_name[0] != '.') {
            snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
            unlink(file);
        }
    }
    closedir(d);
    rmdir(path);
}

static int
s_teardown(void **state)
{
    struct fix *f = *state;
    char path[300];
    int k;

    for (k = 0; k < N_AGG; k++) {
        if (f->pid[k] > 0) {
            kill(f->pid[k], SIGKILL);
            waitpid(f->pid[k], NULL, 0);
        }
    }
    if (getenv("AGG_TEST_SHOW_LOG") != NULL) {
        s_dump_logs(f);
    }
    esc_bus_destroy(&f->push, 0);
    esc_bus_destroy(&f->notify, 0);
    esc_kv_destroy(&f->kv);
    s_remove_aof(f);
    esc_testenv_redis_stop(&f->redis);
    unlink(f->cfg_path);
    for (k = 0; k < N_AGG; k++) {
        snprintf(path, sizeof(path), "%s/err%d.log", f->dir, k);
        unlink(path);
    }
    rmdir(f->dir);
    esc_free(f);
    return 0;
}

/* An integer reply (or a string holding one) of the command; 0 for nil, -1 on failure. */
static long long
s_int(struct fix *f, const char *fmt, const char *a1, const char *a2)
{
    struct esc_kv_val v;
    long long out = 0;

    if (esc_kv_cmd(f->kv, &v, fmt, a1, a2) != ESC_OK) {
        return -1;
    }
    if (v.type == ESC_KV_STR) {
        out = strtoll(v.str, NULL, 10);
    }
    else if (v.type == ESC_KV_INT) {
        out = v.integer;
    }
    esc_kv_val_fini(&v);
    return out;
}

static long long
s_hget(struct fix *f, const char *key, const char *field)
{
    return s_int(f, "HGET %s %s", key, field);
}

static int
s_wait_processed(struct fix *f, long long want, long ms)
{
    long waited;

    for (waited = 0; waited < ms; waited += 50) {
        if (s_int(f, "GET %s%s", "esc:agg:processed", "") == want) {
            return 0;
        }
        s_sleep_ms(50);
    }
    return -1;
}

/* One classified post. */
struct tp {
    int id;
    int64_t ms;
    const char *text;
    const char *author;
    const char *lang;
    const char *platform;
    double sentiment;
    int64_t likes;
    const char *const *topics; /* NULL-terminated */
};

static void
s_send(struct fix *f, const struct tp *t)
{
    struct esc_post p;
    char idbuf[32];
    char *buf;
    size_t len = 0;
    size_t i;

    esc_post_init(&p);
    snprintf(idbuf, sizeof(idbuf), "p%d", t->id);
    p.id = esc_strdup(idbuf);
    p.platform = esc_strdup(t->platform != NULL ? t->platform : "mastodon");
    p.text = esc_strdup(t->text != NULL ? t->text : "");
    p.created_at = t->ms;
    p.ingested_at = t->ms;
    p.followers = 10;
    p.likes = t->likes;
    p.sentiment = t->sentiment;
    p.language = esc_strdup(t->lang != NULL ? t->lang : "es");
    if (t->author != NULL) {
        p.author = esc_strdup(t->author);
    }
    for (i = 0; t->topics != NULL && t->topics[i] != NULL; i++) {
        esc_strlist_push(&p.topics, &p.n_topics, t->topics[i]);
    }
    buf = esc_post_encode(&p, 1, &len);
    assert_int_equal(esc_bus_send(f->push, buf, len, 0), ESC_OK);
    esc_free(buf);
    esc_post_fini(&p);
}

static const char *const s_congreso[] = { "gob/congreso", NULL };
static const char *const s_both[] = { "gob/congreso", "gob/elecciones", NULL };

/* The known stream: 12 posts on one day (4 twice over two topics), each sent twice. */
static int
s_send_stream(struct fix *f, int64_t t0)
{
    static const char *const langs[] = { "es", "en", "pt" };
    static const char *const plats[] = { "mastodon", "bluesky" };
    struct tp t;
    int n = 0;
    int i;
    int rep;

    for (rep = 0; rep < 2; rep++) {
        for (i = 0; i < 12; i++) {
            memset(&t, 0, sizeof(t));
            t.id = i;
            t.ms = t0 + (int64_t)i * 60000;
            t.text = i % 3 == 0 ? "#Reforma del congreso aprobada" : "sesión del congreso";
            t.author = i < 8 ? "@ana" : "@bob";
            t.lang = langs[i % 3];
            t.platform = plats[i % 2];
            t.sentiment = i < 5 ? 0.6 : (i < 9 ? 0.0 : -0.6);
            t.likes = i;
            t.topics = i % 3 == 0 ? s_both : s_congreso;
            s_send(f, &t);
            n++;
        }
    }
    return n;
}

static void
s_check_stream(struct fix *f, int64_t t0)
{
    char key[128];

    /* 12 posts in congreso, 4 (ids 0 3 6 9) in elecciones, each counted once */
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "posts"), 12);
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "reach"), 120);
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "likes"), 66);
    assert_int_equal(s_hget(f, "esc:t:{gob/elecciones}", "posts"), 4);
    assert_int_equal(s_hget(f, "esc:t:{gob/elecciones}", "likes"), 18);
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "sentiment_pos"), 5);
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "sentiment_neu"), 4);
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "sentiment_neg"), 3);
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "sentiment_milli"), 5 * 600 - 3 * 600);
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "lang:es"), 4);
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "lang:en"), 4);
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "lang:pt"), 4);
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "platform:mastodon"), 6);
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "platform:bluesky"), 6);
    snprintf(key, sizeof(key), "esc:c:{gob/congreso}:d:%lld", (long long)(t0 / 1000));
    assert_int_equal(s_hget(f, key, "posts"), 12);
    snprintf(key, sizeof(key), "esc:c:{gob/congreso}:m:%lld", (long long)(t0 / 1000 + 180));
    assert_int_equal(s_hget(f, key, "posts"), 1);
    assert_int_equal(s_hget(f, key, "lang:es"), 1);
    /* top lists of the day */
    snprintf(key, sizeof(key), "esc:top:{gob/congreso}:authors:%lld:info", (long long)(t0 / 1000));
    assert_int_equal(s_hget(f, key, "posts:@ana"), 8);
    assert_int_equal(s_hget(f, key, "posts:@bob"), 4);
    snprintf(key, sizeof(key), "esc:top:{gob/congreso}:terms:%lld", (long long)(t0 / 1000));
    assert_int_equal(s_int(f, "ZSCORE %s %s", key, "congreso"), 12);
    assert_int_equal(s_int(f, "ZSCORE %s %s", key, "sesion"), 8);
    snprintf(key, sizeof(key), "esc:top:{gob/congreso}:hashtags:%lld", (long long)(t0 / 1000));
    assert_int_equal(s_int(f, "ZSCORE %s %s", key, "reforma"), 4);
    snprintf(key, sizeof(key), "esc:top:{gob/congreso}:posts:%lld", (long long)(t0 / 1000));
    assert_int_equal(s_int(f, "ZSCORE %s %s", key, "mastodon:p10"), 10);
    assert_int_equal(s_int(f, "HGET %s %s", "esc:post:{gob/congreso}:mastodon:p10", "likes"),
                     10);
}

/* GET path from the metrics server of the aggregator whose log names its port; the whole
 * response (status line, headers, body), caller-owned, or NULL. */
static char *
s_http_get(const struct fix *f, int k, const char *path)
{
    char *log = s_read_log(f, k);
    const char *p = strstr(log, "metrics listening addr=127.0.0.1:");
    struct sockaddr_in a;
    char *buf = NULL;
    int fd;
    int port;
    size_t n = 0;
    ssize_t r;
    char req[128];
    int req_len = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);

    if (p == NULL) {
        esc_free(log);
        return NULL;
    }
    port = (int)strtol(p + strlen("metrics listening addr=127.0.0.1:"), NULL, 10);
    esc_free(log);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0
        || write(fd, req, (size_t)req_len) != (ssize_t)req_len) {
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    buf = esc_calloc(1, 1 << 16);
    while (n + 1 < (1 << 16)) {
        r = read(fd, buf + n, (1 << 16) - 1 - n);
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    return buf;
}

static char *
s_get_metrics(const struct fix *f, int k)
{
    return s_http_get(f, k, "/metrics");
}

/* Every post twice: counted once. A restart gets the stream again: nothing counted again.
 * A late post lands in its old minute. */
static void
test_counting_duplicates_and_restart(void **state)
{
    struct fix *f = *state;
    int64_t t0 = (esc_now_ms() / 86400000 - 1) * 86400000;
    struct tp late;
    char key[128];
    char *log;
    int n;
    int k;

    s_write_config(f, "\"metrics_listen\": \"127.0.0.1:0\"");
    s_spawn(f, 0);
    f->push = esc_bus_new(ESC_BUS_PUSH, f->agg_ep, false, 10000);
    n = s_send_stream(f, t0);
    if (s_wait_processed(f, n, 10000) != 0) {
        s_dump_logs(f);
        fail_msg("processed never reached %d", n);
    }
    /* the process metrics say the same (updated after each flush); the 12 recorded posts
     * were taken in (ingested_at) a day ago, so their intake-to-Redis latency is above every
     * bound; at least one flush was timed */
    for (k = 0; k < 200; k++) { /* up to 10 s: loaded machines, sanitizer builds */
        char *m = s_get_metrics(f, 0);
        int ok = m != NULL && strstr(m, "escucha_aggregator_messages_total 24\n") != NULL
                 && strstr(m, "escucha_aggregator_duplicates_total{where=\"memory\"} 12\n")
                        != NULL
                 && strstr(m, "escucha_aggregator_flushed_posts_total 24\n") != NULL
                 && strstr(m, "escucha_aggregator_redis_up 1\n") != NULL
                 && strstr(m, "\nescucha_healthy 1\n") != NULL
                 && strstr(m, "escucha_aggregator_intake_latency_seconds_bucket{le=\"300\"} 0\n")
                        != NULL
                 && strstr(m, "escucha_aggregator_intake_latency_seconds_bucket{le=\"+Inf\"} 12\n")
                        != NULL
                 && strstr(m, "escucha_aggregator_intake_latency_seconds_count 12\n") != NULL
                 && strstr(m, "escucha_aggregator_flush_duration_seconds_bucket{le=\"0.001\"}")
                        != NULL
                 && strstr(m, "escucha_aggregator_flush_duration_seconds_count 0\n") == NULL;

        if (ok) {
            esc_free(m);
            break;
        }
        if (k == 199) {
            fprintf(stderr, "metrics after 10 s:\n%s\n", m != NULL ? m : "(none)");
        }
        esc_free(m);
        s_sleep_ms(50);
    }
    assert_true(k < 200);
    /* healthy: exactly "ok", never "ok: <some reason>" */
    {
        char *h = s_http_get(f, 0, "/healthz");

        assert_non_null(h);
        assert_non_null(strstr(h, " 200 "));
        assert_non_null(strstr(h, "\r\n\r\nok\n"));
        assert_null(strstr(h, "ok:"));
        esc_free(h);
    }
    assert_int_equal(s_stop(f, 0), 0); /* final flush: top lists written too */
    s_check_stream(f, t0);
    log = s_read_log(f, 0);
    assert_non_null(strstr(log, "dups_memory=12 dups_redis=0"));
    esc_free(log);

    /* a new process, the same posts again, and one late post */
    s_spawn(f, 0);
    n += s_send_stream(f, t0);
    memset(&late, 0, sizeof(late));
    late.id = 100;
    late.ms = t0 + 3 * 60000 + 5000; /* the minute of post 3 */
    late.text = "congreso";
    late.topics = s_congreso;
    s_send(f, &late);
    n++;
    if (s_wait_processed(f, n, 10000) != 0) {
        s_dump_logs(f);
        fail_msg("processed never reached %d", n);
    }
    assert_int_equal(s_stop(f, 0), 0);
    log = s_read_log(f, 0);
    /* the first copy of each post was caught by Redis (per topic: 12 + 4), the second in
     * memory */
    if (strstr(log, "dups_memory=12 dups_redis=16") == NULL) {
        s_dump_logs(f);
        fail_msg("second run did not see the duplicates");
    }
    esc_free(log);
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "posts"), 13);
    assert_int_equal(s_hget(f, "esc:t:{gob/elecciones}", "posts"), 4);
    snprintf(key, sizeof(key), "esc:c:{gob/congreso}:m:%lld", (long long)(t0 / 1000 + 180));
    assert_int_equal(s_hget(f, key, "posts"), 2);
}

/* Redis is killed mid-stream and comes back from its append-only file: every post counted
 * exactly once. */
static void
test_counting_redis_killed_mid_stream(void **state)
{
    struct fix *f = *state;
    int64_t t0 = (esc_now_ms() / 86400000 - 1) * 86400000;
    struct tp t;
    int i;

    s_write_config(f, "");
    s_spawn(f, 0);
    f->push = esc_bus_new(ESC_BUS_PUSH, f->agg_ep, false, 10000);
    for (i = 0; i < 100; i++) {
        memset(&t, 0, sizeof(t));
        t.id = i;
        t.ms = t0 + (int64_t)i * 1000;
        t.text = "congreso";
        t.likes = 1;
        t.topics = s_congreso;
        s_send(f, &t);
    }
    if (s_wait_processed(f, 100, 10000) != 0) {
        s_dump_logs(f);
        fail_msg("processed never reached 100");
    }
    assert_int_equal(esc_testenv_redis_kill(&f->redis), 0);
    /* 100 new posts and 50 re-sent ones while Redis is away */
    for (i = 50; i < 200; i++) {
        memset(&t, 0, sizeof(t));
        t.id = i;
        t.ms = t0 + (int64_t)i * 1000;
        t.text = "congreso";
        t.likes = 1;
        t.topics = s_congreso;
        s_send(f, &t);
    }
    s_sleep_ms(500);
    assert_int_equal(esc_testenv_redis_restart(&f->redis), 0);
    if (s_wait_processed(f, 250, 15000) != 0) {
        s_dump_logs(f);
        fail_msg("processed never reached 250");
    }
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "posts"), 200);
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "likes"), 200);
    assert_int_equal(s_stop(f, 0), 0);
}

/* Two aggregators connect to one PUSH socket (round-robin): exact counts, and the spike alert
 * comes once, from the holder of the topic's lease, with the counts of both. */
static void
test_counting_two_aggregators(void **state)
{
    struct fix *f = *state;
    int64_t t0 = (esc_now_ms() / 86400000 - 1) * 86400000;
    zmq_pollitem_t it;
    const void *buf;
    size_t len;
    struct esc_alert a;
    struct esc_error err;
    struct tp t;
    int n = 0;
    int posts = 0;
    int64_t m;
    int k;
    int rep;
    int alerts = 0;
    int spikes = 0;
    char *log[N_AGG];

    /* the test binds the PUSH; the aggregators connect their PULL to it */
    f->push = esc_bus_new(ESC_BUS_PUSH, "tcp://127.0.0.1:*", true, 100000);
    assert_non_null(f->push);
    esc_strlcpy(f->agg_ep, esc_bus_endpoint(f->push), sizeof(f->agg_ep));
    s_write_config(f, "\"connect_in\": true, \"spike_leases\": true, \"lease_ms\": 1000");
    s_spawn(f, 0);
    s_spawn(f, 1);
    s_sleep_ms(700); /* both connected before the first message, so both get a share */

    /* 120 quiet minutes, then a burst of 5 extra posts a minute for 10 minutes, then 20
     * minutes of posts matching nothing: each aggregator gets about half of it, so only the
     * merged counts show the burst as it is; then the first 100 minutes again (re-deliveries,
     * each to either aggregator) */
    for (rep = 0; rep < 2; rep++) {
        for (m = 0; m < (rep == 0 ? 150 : 100); m++) {
            int extra = m >= 120 && m < 130 ? 5 : 0;

            for (k = 0; k <= extra; k++) {
                memset(&t, 0, sizeof(t));
                t.id = (int)(m * 10 + k);
                t.ms = t0 + m * 60000 + k * 5000;
                t.text = k > 0 ? "¡vacancia! el congreso vota hoy" : "sesión del congreso";
                t.topics = m < 130 ? (m % 10 == 0 && k == 0 ? s_both : s_congreso) : NULL;
                s_send(f, &t);
                n++;
                posts += rep == 0 && m < 130;
            }
        }
    }
    if (s_wait_processed(f, n, 15000) != 0) {
        s_dump_logs(f);
        fail_msg("processed never reached %d", n);
    }
    assert_int_equal(s_hget(f, "esc:t:{gob/congreso}", "posts"), posts);
    assert_int_equal(s_hget(f, "esc:t:{gob/elecciones}", "posts"), 13);

    /* alerts: one spike for congreso, from one of the two */
    it.socket = esc_bus_zsock(f->notify);
    it.fd = 0;
    it.events = ZMQ_POLLIN;
    it.revents = 0;
    while (zmq_poll(&it, 1, alerts == 0 ? 8000 : 1500) == 1) {
        assert_int_equal(esc_bus_recv(f->notify, &buf, &len, ESC_BUS_DONTWAIT), ESC_OK);
        assert_int_equal(esc_alert_decode(buf, len, &a, &err), ESC_OK);
        assert_string_equal(a.topic, "congreso");
        if (strcmp(a.kind, "spike") == 0) {
            /* the same window and count as one aggregator seeing everything */
            spikes++;
            assert_int_equal(a.window_start, t0 + 116 * 60000);
            assert_int_equal(a.window_end, t0 + 126 * 60000);
            assert_int_equal(a.observed, 40);
        }
        alerts++;
        esc_alert_fini(&a);
    }
    if (spikes != 1) {
        s_dump_logs(f);
        fail_msg("expected exactly one spike alert, got %d (of %d alerts)", spikes, alerts);
    }
    assert_int_equal(s_int(f, "LLEN %s%s", "esc:alerts:{gob}", ""), alerts);

    for (k = 0; k < N_AGG; k++) {
        assert_int_equal(s_stop(f, k), 0);
        log[k] = s_read_log(f, k);
        /* each got a share of the stream; exactly one took the topic's lease */
        assert_null(strstr(log[k], "stopped in=0 "));
    }
    assert_true((strstr(log[0], "spike lease taken topic=gob/congreso") != NULL)
                != (strstr(log[1], "spike lease taken topic=gob/congreso") != NULL));
    for (k = 0; k < N_AGG; k++) {
        esc_free(log[k]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counting_duplicates_and_restart, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_counting_redis_killed_mid_stream, s_setup_aof,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_counting_two_aggregators, s_setup, s_teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    esc_log_init("test", ESC_LOG_ERROR);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    esc_bus_ctx_term();
    return rc;
}
