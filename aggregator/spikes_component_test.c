#define ESC_LOG_MODULE "test"
/* Component test of spike detection in the real escucha-aggregator binary, against a private
 * redis-server, with a PULL socket standing in for the notifier. Days of classified posts with
 * a busy noon hour are pushed in event time (a week ago, so the hour buckets fall inside the
 * history read back at start-up): the noon peak stops alerting once two days are known, a
 * restarted aggregator seeded from the Redis hour buckets knows the peak at once while a burst
 * at 03:00 still alerts (with its terms, samples and the topic's query), and one started
 * without those buckets alerts on the peak again. */
#include <arpa/inet.h>
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

#define DAY_MS 86400000LL
#define MIN_MS 60000LL
#define MAX_ALERTS 32

struct fix {
    struct esc_testenv_redis redis;
    char dir[256];          /* temp dir: config, logs */
    char cfg_path[300];
    char agg_ep[64];        /* bus.aggregate, a free TCP port */
    esc_bus_t *notify;      /* PULL bound where the notifier would be */
    esc_bus_t *push;        /* PUSH connected to the aggregator */
    esc_kv_t *kv;           /* test client */
    pid_t pid;              /* the aggregator, 0 when not running */
    long long sent;         /* posts sent so far (ids) */
    int64_t t0;             /* day 0, 00:00 UTC, six days ago */
    struct esc_alert alerts[MAX_ALERTS]; /* received so far in the current run */
    size_t n_alerts;
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

static void
s_write_config(struct fix *f)
{
    FILE *fp = fopen(f->cfg_path, "w");

    assert_non_null(fp);
    fprintf(fp,
            "{ \"deployment\": \"spikes-test\",\n"
            "  \"redis\": { \"unix_socket\": \"%s\", \"prefix\": \"esc\" },\n"
            "  \"bus\": { \"aggregate\": \"%s\", \"notify\": \"%s\" },\n"
            "  \"teams\": [ { \"id\": \"gob\", \"name\": \"Gobernanza\", \"topics\": [\n"
            "    { \"id\": \"congreso\", \"name\": \"Congreso\",\n"
            "      \"keywords\": [\"congreso\", \"poder legislativo\"] } ] } ],\n"
            "  \"aggregator\": { \"flush_ms\": 100, \"grace_ms\": 5000, \"drain_quiet_ms\": 200,\n"
            "    \"spike\": { \"lateness_s\": 60 } } }\n",
            f->redis.sock, f->agg_ep, esc_bus_endpoint(f->notify));
    fclose(fp);
}

static int
s_setup(void **state)
{
    struct fix *f = esc_calloc(1, sizeof(*f));
    struct esc_kv_opts o;
    const char *tmp = getenv("TMPDIR");

    snprintf(f->dir, sizeof(f->dir), "%s/agg-spk-XXXXXX",
             tmp != NULL && tmp[0] != '\0' && strlen(tmp) < 100 ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL || esc_testenv_redis_start(&f->redis, 0) != 0) {
        esc_free(f);
        return -1;
    }
    snprintf(f->cfg_path, sizeof(f->cfg_path), "%s/escucha.json", f->dir);
    snprintf(f->agg_ep, sizeof(f->agg_ep), "tcp://127.0.0.1:%d", s_free_port());
    f->notify = esc_bus_new(ESC_BUS_PULL, "tcp://127.0.0.1:*", true, 1000);
    esc_testenv_kv_opts(&f->redis, &o);
    f->kv = esc_kv_new(&o);
    f->t0 = (esc_now_ms() / DAY_MS - 6) * DAY_MS;
    s_write_config(f);
    *state = f;
    return 0;
}

static void
s_clear_alerts(struct fix *f)
{
    size_t i;

    for (i = 0; i < f->n_alerts; i++) {
        esc_alert_fini(&f->alerts[i]);
    }
    f->n_alerts = 0;
}

static void
s_dump_log(const struct fix *f)
{
    char path[300];
    char buf[4096];
    FILE *fp;
    size_t n;

    snprintf(path, sizeof(path), "%s/err.log", f->dir);
    fp = fopen(path, "r");
    if (fp == NULL) {
        return;
    }
    fprintf(stderr, "--- aggregator log ---\n");
    n = fread(buf, 1, sizeof(buf), fp);
    while (n > 0) {
        fwrite(buf, 1, n, stderr);
        n = fread(buf, 1, sizeof(buf), fp);
    }
    fclose(fp);
}

static int
s_teardown(void **state)
{
    struct fix *f = *state;
    char path[300];

    if (f->pid > 0) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
    }
    s_clear_alerts(f);
    esc_bus_destroy(&f->push, 0);
    esc_bus_destroy(&f->notify, 0);
    esc_kv_destroy(&f->kv);
    esc_testenv_redis_stop(&f->redis);
    snprintf(path, sizeof(path), "%s/escucha.json", f->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/err.log", f->dir);
    unlink(path);
    rmdir(f->dir);
    esc_free(f);
    return 0;
}

/* Starts the aggregator (stderr to <dir>/err.log) and connects the PUSH socket. */
static void
s_start(struct fix *f)
{
    char err[300];
    const char *argv[] = { AGG_BIN, "--config", f->cfg_path, NULL };

    snprintf(err, sizeof(err), "%s/err.log", f->dir);
    f->pid = fork();
    assert_true(f->pid >= 0);
    if (f->pid == 0) {
        int e = open(err, O_WRONLY | O_CREAT | O_APPEND, 0600);

        if (e < 0 || dup2(e, 2) < 0) {
            _exit(127);
        }
        execv(AGG_BIN, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    f->push = esc_bus_new(ESC_BUS_PUSH, f->agg_ep, false, 100000);
    assert_non_null(f->push);
}

static long long
s_processed(struct fix *f)
{
    struct esc_kv_val v;
    long long out = -1;

    if (esc_kv_cmd(f->kv, &v, "GET esc:agg:processed") != ESC_OK) {
        return -1;
    }
    if (v.type == ESC_KV_STR) {
        out = strtoll(v.str, NULL, 10);
    }
    esc_kv_val_fini(&v);
    return out;
}

/* Waits until every post sent is counted, then collects the alerts on the notify bus. */
static void
s_settle(struct fix *f)
{
    long waited;
    const void *buf;
    size_t len;
    struct esc_error err;

    for (waited = 0; s_processed(f) != f->sent; waited += 50) {
        if (waited > 15000) {
            s_dump_log(f);
            fail_msg("processed stuck at %lld of %lld", s_processed(f), f->sent);
        }
        s_sleep_ms(50);
    }
    s_sleep_ms(200);
    while (esc_bus_recv(f->notify, &buf, &len, ESC_BUS_DONTWAIT) == ESC_OK) {
        assert_true(f->n_alerts < MAX_ALERTS);
        assert_int_equal(esc_alert_decode(buf, len, &f->alerts[f->n_alerts], &err), ESC_OK);
        f->n_alerts++;
    }
}

/* SIGTERM and the exit status. */
static int
s_stop(struct fix *f)
{
    int st = 0;
    long waited;

    esc_bus_destroy(&f->push, 0);
    kill(f->pid, SIGTERM);
    for (waited = 0; waited < 10000; waited += 20) {
        if (waitpid(f->pid, &st, WNOHANG) == f->pid) {
            f->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        s_sleep_ms(20);
    }
    return -1;
}

static void
s_send(struct fix *f, int64_t created_at, const char *text, const char *author, int64_t likes)
{
    struct esc_post p;
    char buf[64];
    char *enc;
    size_t len = 0;

    esc_post_init(&p);
    snprintf(buf, sizeof(buf), "spk-%lld", f->sent);
    p.id = esc_strdup(buf);
    p.platform = esc_strdup("mastodon");
    p.text = esc_strdup(text);
    p.author = esc_strdup(author);
    snprintf(buf, sizeof(buf), "https://mastodon.example/@%s/%lld", author, f->sent);
    p.url = esc_strdup(buf);
    p.created_at = created_at;
    p.ingested_at = created_at;
    p.likes = likes;
    p.language = esc_strdup("es");
    esc_strlist_push(&p.topics, &p.n_topics, "gob/congreso");
    enc = esc_post_encode(&p, 1, &len);
    assert_int_equal(esc_bus_send(f->push, enc, len, 0), ESC_OK);
    esc_free(enc);
    esc_post_fini(&p);
    f->sent++;
}

/* Day d (from t0), minutes [from, to): one post a minute, 12 a minute from 12:00 to 13:00,
 * and `burst` more a minute from 03:00 to 03:20. */
static void
s_day(struct fix *f, int d, int64_t from, int64_t to, int burst)
{
    int64_t m;
    int k;

    for (m = from; m < to; m++) {
        int64_t t = f->t0 + d * DAY_MS + m * MIN_MS;
        int extra = m >= 12 * 60 && m < 13 * 60 ? 11 : 0;

        if (burst > 0 && m >= 3 * 60 && m < 3 * 60 + 20) {
            for (k = 0; k < burst; k++) {
                s_send(f, t + k * 2000, "¡Vacancia presidencial! El congreso vota esta noche",
                       "vox", 100 + k);
            }
        }
        for (k = 0; k < extra; k++) {
            s_send(f, t + 5000 + k * 4000, "sesión del congreso al mediodía", "ana", 1);
        }
        s_send(f, t + 50000, "sesión del congreso", "luis", 0);
    }
}

/* Spike alerts (kind "spike") whose window ends in [from, to) (Unix ms). */
static size_t
s_spikes_between(const struct fix *f, int64_t from, int64_t to)
{
    size_t n = 0;
    size_t i;

    for (i = 0; i < f->n_alerts; i++) {
        const struct esc_alert *a = &f->alerts[i];

        n += strcmp(a->kind, "spike") == 0 && a->window_end >= from && a->window_end < to;
    }
    return n;
}

static void
test_spikes_component_daily_cycle_restart_seeded(void **state)
{
    struct fix *f = *state;
    int64_t day3 = f->t0 + 3 * DAY_MS;
    int64_t day4 = f->t0 + 4 * DAY_MS;
    const struct esc_alert *a = NULL;
    struct esc_kv_val v;
    size_t i;

    /* run 1: three days; the trailing mean of day 0 and 1 sees the noon hour as a spike, the
     * daily baseline of day 2 does not */
    s_start(f);
    s_day(f, 0, 0, 1440, 0);
    s_day(f, 1, 0, 1440, 0);
    s_day(f, 2, 0, 1440, 0);
    s_settle(f);
    assert_true(s_spikes_between(f, f->t0, f->t0 + 2 * DAY_MS) >= 1);
    assert_int_equal(s_spikes_between(f, f->t0 + 2 * DAY_MS, f->t0 + 3 * DAY_MS), 0);
    assert_int_equal(s_stop(f), 0);
    s_clear_alerts(f);

    /* run 2, restarted: the hour buckets in Redis seed the history, so day 3's noon hour is
     * normal at once; the 03:00 burst (+8 a minute for 20 minutes) alerts, explained */
    s_start(f);
    s_day(f, 3, 0, 14 * 60, 8);
    s_settle(f);
    if (f->n_alerts != 1) {
        s_dump_log(f);
    }
    assert_int_equal(s_spikes_between(f, day3, day4), 1);
    for (i = 0; i < f->n_alerts; i++) {
        if (strcmp(f->alerts[i].kind, "spike") == 0) {
            a = &f->alerts[i];
        }
    }
    assert_non_null(a);
    assert_true(a->window_end > day3 + 180 * MIN_MS);
    assert_true(a->window_end <= day3 + 200 * MIN_MS);
    assert_string_equal(a->team, "gob");
    assert_string_equal(a->topic, "congreso");
    assert_string_equal(a->query, "congreso OR \"poder legislativo\"");
    assert_int_equal(a->n_samples, 3);
    assert_int_equal(a->n_sample_authors, 3);
    assert_string_equal(a->sample_authors[0], "vox");
    assert_non_null(strstr(a->sample_urls[0], "https://mastodon.example/@vox/"));
    assert_true(a->n_terms >= 3);
    assert_true(strcmp(a->terms[0], "vacancia") == 0 || strcmp(a->terms[0], "presidencial") == 0
                || strcmp(a->terms[0], "noche") == 0 || strcmp(a->terms[0], "vota") == 0);
    assert_true(a->score > 4.0);
    assert_int_equal(s_stop(f), 0);
    s_clear_alerts(f);

    /* run 3, the hour buckets gone: no history, and day 4's noon hour alerts again */
    assert_int_equal(esc_kv_cmd(f->kv, &v, "EVAL %s 0",
                                "for _, k in ipairs(redis.call('KEYS', 'esc:c:*:h:*')) do "
                                "redis.call('DEL', k) end return 1"),
                     ESC_OK);
    esc_kv_val_fini(&v);
    s_start(f);
    s_day(f, 4, 0, 14 * 60, 0);
    s_settle(f);
    assert_int_equal(s_spikes_between(f, day4 + 12 * 3600000LL, day4 + 13 * 3600000LL), 1);
    assert_int_equal(s_stop(f), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spikes_component_daily_cycle_restart_seeded, s_setup,
                                        s_teardown),
    };

    esc_log_init("test", ESC_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
