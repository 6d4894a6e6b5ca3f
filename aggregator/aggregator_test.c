#define ESC_LOG_MODULE "test"
/* Component tests of the real escucha-aggregator binary: a private redis-server, a PULL socket
 * standing in for the notifier, classified posts pushed over TCP. Checks the counts in Redis,
 * the spike alert on the notify bus and in the team's Redis list, invalid frames skipped, the
 * topic keys of a post (configured, unknown, too long for the fast table, repeated, malformed),
 * exit 0 after SIGTERM, exit 1 when Redis never came up, and --check-config on good and bad
 * files. */
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

/* A configured topic whose key ("gob/" + 60 bytes) is too long for the intake's topic table. */
#define LONG_TOPIC "tema-con-un-identificador-bastante-largo-para-la-tabla-rapida"

struct fix {
    struct esc_testenv_redis redis;
    char dir[256];         /* temp dir: config, logs */
    char cfg_path[300];
    char agg_ep[64];       /* bus.aggregate, a free TCP port */
    esc_bus_t *notify;     /* PULL bound where the notifier would be */
    esc_bus_t *push;       /* PUSH connected to the aggregator */
    esc_kv_t *kv;          /* test client of the redis-server */
    pid_t pid;             /* the aggregator, 0 when not running */
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

/* Writes the deployment config; `topic_spike` is put in topic congreso (may be ""), `redis`
 * is the redis object. */
static void
s_write_config(struct fix *f, const char *redis, const char *topic_spike)
{
    FILE *fp = fopen(f->cfg_path, "w");

    assert_non_null(fp);
    fprintf(fp,
            "{\n"
            "  \"deployment\": \"agg-test\",\n"
            "  \"redis\": %s,\n"
            "  \"bus\": { \"aggregate\": \"%s\", \"notify\": \"%s\" },\n"
            "  \"teams\": [ { \"id\": \"gob\", \"name\": \"Gobernanza\", \"topics\": [\n"
            "    { \"id\": \"congreso\", \"name\": \"Congreso\",\n"
            "      \"keywords\": [\"congreso\"]%s%s },\n"
            "    { \"id\": \"elecciones\", \"name\": \"Elecciones\", \"keywords\": [\"voto\"] },\n"
            "    { \"id\": \"" LONG_TOPIC "\", \"name\": \"Largo\", \"keywords\": [\"largo\"] }\n"
            "  ] } ],\n"
            "  \"aggregator\": { \"flush_ms\": 100, \"grace_ms\": 3000, \"drain_quiet_ms\": 100,\n"
            "    \"spike\": { \"window_min\": 10, \"baseline_min\": 60, \"factor\": 4.0,\n"
            "                 \"min_count\": 20, \"cooldown_min\": 60, \"lateness_s\": 60 } }\n"
            "}\n",
            redis, f->agg_ep, f->notify != NULL ? esc_bus_endpoint(f->notify) : "tcp://x:1",
            topic_spike[0] != '\0' ? ", \"spike\": " : "", topic_spike);
    fclose(fp);
}

static void
s_redis_json(const struct fix *f, char *out, size_t outsz)
{
    snprintf(out, outsz, "{ \"unix_socket\": \"%s\", \"prefix\": \"esc\" }", f->redis.sock);
}

static int
s_setup(void **state)
{
    struct fix *f = esc_calloc(1, sizeof(*f));
    struct esc_kv_opts o;
    const char *tmp = getenv("TMPDIR");

    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s/agg-test-XXXXXX",
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
    *state = f;
    return 0;
}

/* Starts the aggregator with args (NULL-terminated, after the program name); stdout and stderr
 * go to <dir>/out.log and <dir>/err.log. */
static pid_t
s_spawn(struct fix *f, const char *const *args)
{
    char out[300];
    char err[300];
    const char *argv[12];
    pid_t pid;
    size_t i;

    snprintf(out, sizeof(out), "%s/out.log", f->dir);
    snprintf(err, sizeof(err), "%s/err.log", f->dir);
    argv[0] = AGG_BIN;
    for (i = 0; args[i] != NULL && i + 2 < ESC_ARRAY_LEN(argv); i++) {
        argv[i + 1] = args[i];
    }
    argv[i + 1] = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) {
            _exit(127);
        }
        execv(AGG_BIN, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    return pid;
}

/* Waits up to ms for pid; returns its exit status, or -1 on timeout (then kills it). */
static int
s_wait_exit(pid_t pid, long ms)
{
    int st = 0;
    long waited;

    for (waited = 0; waited < ms; waited += 20) {
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid) {
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        s_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

/* Reads <dir>/<name> into a caller-owned string. */
static char *
s_read_file(const struct fix *f, const char *name)
{
    char path[300];
    char *buf = esc_calloc(1, 65536);
    FILE *fp;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    fp = fopen(path, "r");
    if (fp != NULL) {
        n = fread(buf, 1, 65535, fp);
        fclose(fp);
    }
    buf[n] = '\0';
    return buf;
}

static void
s_dump_log(const struct fix *f)
{
    char *log = s_read_file(f, "err.log");

    fprintf(stderr, "--- aggregator log ---\n%s--- end ---\n", log);
    esc_free(log);
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
    if (getenv("AGG_TEST_SHOW_LOG") != NULL) {
        s_dump_log(f);
    }
    esc_bus_destroy(&f->push, 0);
    esc_bus_destroy(&f->notify, 0);
    esc_kv_destroy(&f->kv);
    esc_testenv_redis_stop(&f->redis);
    snprintf(path, sizeof(path), "%s/escucha.json", f->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/out.log", f->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/err.log", f->dir);
    unlink(path);
    rmdir(f->dir);
    esc_free(f);
    return 0;
}

static long long
s_get_int(struct fix *f, const char *fmt, const char *key, const char *field)
{
    struct esc_kv_val v;
    long long out = 0;

    if (esc_kv_cmd(f->kv, &v, fmt, key, field) != ESC_OK) {
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

/* Sends one classified post (topics NULL-terminated, may be NULL). */
static void
s_send_post(struct fix *f, int id, int64_t created_at, const char *text, const char *const *topics)
{
    struct esc_post p;
    char idbuf[32];
    char *buf;
    size_t len = 0;
    size_t i;

    esc_post_init(&p);
    snprintf(idbuf, sizeof(idbuf), "p%d", id);
    p.id = esc_strdup(idbuf);
    p.platform = esc_strdup("mastodon");
    p.text = esc_strdup(text);
    p.created_at = created_at;
    p.ingested_at = created_at;
    p.followers = 10;
    p.likes = 1;
    p.language = esc_strdup("es");
    for (i = 0; topics != NULL && topics[i] != NULL; i++) {
        esc_strlist_push(&p.topics, &p.n_topics, topics[i]);
    }
    buf = esc_post_encode(&p, 1, &len);
    assert_int_equal(esc_bus_send(f->push, buf, len, 0), ESC_OK);
    esc_free(buf);
    esc_post_fini(&p);
}

/* Polls Redis until GET esc:agg:processed == want, up to ms. */
static int
s_wait_processed(struct fix *f, long long want, long ms)
{
    long waited;

    for (waited = 0; waited < ms; waited += 50) {
        if (s_get_int(f, "GET %s%s", "esc:agg:processed", "") == want) {
            return 0;
        }
        s_sleep_ms(50);
    }
    return -1;
}

static void
test_aggregator_counts_and_alerts(void **state)
{
    struct fix *f = *state;
    static const char *const congreso[] = { "gob/congreso", NULL };
    static const char *const both[] = { "gob/congreso", "gob/elecciones", NULL };
    const char *args[] = { "--config", f->cfg_path, NULL };
    char redis[400];
    /* event time: yesterday 00:00 UTC, so the posts are never ahead of the clock */
    int64_t t0 = (esc_now_ms() / 86400000 - 1) * 86400000;
    int64_t m;
    int n = 0;
    int k;
    zmq_pollitem_t it;
    const void *buf;
    size_t len;
    struct esc_alert a;
    struct esc_error err;
    char *log;
    char want[64];

    s_redis_json(f, redis, sizeof(redis));
    s_write_config(f, redis, "");
    f->pid = s_spawn(f, args);
    f->push = esc_bus_new(ESC_BUS_PUSH, f->agg_ep, false, 10000);
    assert_non_null(f->push);

    /* 120 minutes of one post a minute (every 10th also about elections), then a burst of 50
     * congress posts in 10 minutes, then 20 quiet minutes of posts that match nothing */
    for (m = 0; m < 120; m++) {
        s_send_post(f, n++, t0 + m * 60000 + 30000, "sesión del congreso",
                    m % 10 == 0 ? both : congreso);
    }
    for (m = 120; m < 130; m++) {
        for (k = 0; k < 5; k++) {
            s_send_post(f, n++, t0 + m * 60000 + k * 5000, "¡vacancia! el congreso vota hoy",
                        congreso);
        }
        s_send_post(f, n++, t0 + m * 60000 + 30000, "sesión del congreso", congreso);
    }
    for (m = 130; m < 150; m++) {
        s_send_post(f, n++, t0 + m * 60000, "partido de fútbol", NULL);
    }
    /* bad input: garbage, and a post that was never classified */
    assert_int_equal(esc_bus_send(f->push, "\x93garbage", 8, 0), ESC_OK);
    {
        struct esc_post p;
        char *raw;

        esc_post_init(&p);
        p.id = esc_strdup("raw");
        p.platform = esc_strdup("mastodon");
        p.text = esc_strdup("x");
        p.created_at = t0;
        raw = esc_post_encode(&p, 0, &len);
        assert_int_equal(esc_bus_send(f->push, raw, len, 0), ESC_OK);
        esc_free(raw);
        esc_post_fini(&p);
    }

    if (s_wait_processed(f, n, 15000) != 0) {
        s_dump_log(f);
        fail_msg("processed never reached %d", n);
    }
    assert_int_equal(s_get_int(f, "HGET %s %s", "esc:t:{gob/congreso}", "posts"), 120 + 60);
    assert_int_equal(s_get_int(f, "HGET %s %s", "esc:t:{gob/congreso}", "reach"), 1800);
    assert_int_equal(s_get_int(f, "HGET %s %s", "esc:t:{gob/congreso}", "engagement"), 180);
    assert_int_equal(s_get_int(f, "HGET %s %s", "esc:t:{gob/elecciones}", "posts"), 12);
    snprintf(want, sizeof(want), "esc:c:{gob/congreso}:d:%lld", (long long)(t0 / 1000));
    assert_int_equal(s_get_int(f, "HGET %s %s", want, "posts"), 180);
    snprintf(want, sizeof(want), "esc:c:{gob/congreso}:m:%lld",
             (long long)(t0 / 1000 + 125 * 60));
    assert_int_equal(s_get_int(f, "HGET %s %s", want, "posts"), 6);
    assert_true(s_get_int(f, "TTL %s%s", want, "") > 0);

    /* the alert on the notify bus */
    it.socket = esc_bus_zsock(f->notify);
    it.fd = 0;
    it.events = ZMQ_POLLIN;
    it.revents = 0;
    if (zmq_poll(&it, 1, 5000) != 1) {
        s_dump_log(f);
        fail_msg("no alert on the notify bus");
    }
    assert_int_equal(esc_bus_recv(f->notify, &buf, &len, ESC_BUS_DONTWAIT), ESC_OK);
    assert_int_equal(esc_alert_decode(buf, len, &a, &err), ESC_OK);
    assert_string_equal(a.team, "gob");
    assert_string_equal(a.topic, "congreso");
    assert_string_equal(a.topic_name, "Congreso");
    assert_string_equal(a.kind, "spike");
    /* 10 steady + 6 minutes x 5 burst posts = 40 = 4 x the baseline of 10 */
    assert_int_equal(a.window_end, t0 + 126 * 60000);
    assert_int_equal(a.window_start, t0 + 116 * 60000);
    assert_int_equal(a.observed, 40);
    snprintf(want, sizeof(want), "gob/congreso/%lld", (long long)a.window_start);
    assert_string_equal(a.id, want);
    assert_true(a.n_samples >= 1);
    esc_alert_fini(&a);
    assert_int_equal(zmq_poll(&it, 1, 300), 0); /* exactly one */
    assert_int_equal(s_get_int(f, "LLEN %s%s", "esc:alerts:{gob}", ""), 1);

    kill(f->pid, SIGTERM);
    k = s_wait_exit(f->pid, 10000);
    f->pid = 0;
    log = s_read_file(f, "err.log");
    if (k != 0) {
        fprintf(stderr, "%s", log);
    }
    assert_int_equal(k, 0);
    snprintf(want, sizeof(want), "stopped in=%d flushed=%d invalid=2 alerts=1", n + 2, n);
    if (strstr(log, want) == NULL || strstr(log, "spike topic=gob/congreso observed=40") == NULL) {
        fprintf(stderr, "%s", log);
        fail_msg("summary '%s' or spike line missing", want);
    }
    esc_free(log);
}

/* Redis never reachable: counts stay in memory, SIGTERM gives up after grace_ms, exit 1. */
static void
test_aggregator_redis_down_exit_1(void **state)
{
    struct fix *f = *state;
    static const char *const congreso[] = { "gob/congreso", NULL };
    const char *args[] = { "--config", f->cfg_path, NULL };
    char redis[400];
    char *log;
    int i;
    int st;
    int64_t t0 = esc_now_ms() - 3600000;

    snprintf(redis, sizeof(redis), "{ \"unix_socket\": \"%s/nothing.sock\" }", f->dir);
    s_write_config(f, redis, "");
    f->pid = s_spawn(f, args);
    f->push = esc_bus_new(ESC_BUS_PUSH, f->agg_ep, false, 1000);
    for (i = 0; i < 5; i++) {
        s_send_post(f, i, t0 + i * 1000, "congreso", congreso);
    }
    s_sleep_ms(800);
    kill(f->pid, SIGTERM);
    st = s_wait_exit(f->pid, 10000);
    f->pid = 0;
    log = s_read_file(f, "err.log");
    if (st != 1 || strstr(log, "redis unavailable") == NULL
        || strstr(log, "stopped in=5 flushed=0 invalid=0 alerts=0") == NULL) {
        fprintf(stderr, "%s", log);
        fail_msg("expected exit 1 with the counts kept, got %d", st);
    }
    esc_free(log);
}

static void
test_aggregator_check_config(void **state)
{
    struct fix *f = *state;
    const char *check[] = { "--config", f->cfg_path, "--check-config", NULL };
    const char *dump[] = { "--config", f->cfg_path, "--dump-config", NULL };
    const char *help[] = { "--help-config", NULL };
    char redis[400];
    char want[400];
    char *out;

    s_redis_json(f, redis, sizeof(redis));
    s_write_config(f, redis, "{ \"min_count\": 5 }");
    assert_int_equal(s_wait_exit(s_spawn(f, check), 5000), 0);
    out = s_read_file(f, "out.log");
    assert_string_equal(out, "config ok\n");
    esc_free(out);

    assert_int_equal(s_wait_exit(s_spawn(f, dump), 5000), 0);
    out = s_read_file(f, "out.log");
    assert_non_null(strstr(out, "teams.0.topics.0.spike.min_count = 5\n"));
    assert_non_null(strstr(out, "teams.0.topics.0.spike.window_min = 10\n"));
    assert_non_null(strstr(out, "teams.0.topics.1.spike.min_count = 20\n"));
    esc_free(out);

    assert_int_equal(s_wait_exit(s_spawn(f, help), 5000), 0);
    out = s_read_file(f, "out.log");
    assert_non_null(strstr(out, "aggregator.spike.cooldown_min"));
    esc_free(out);

    s_write_config(f, redis, "{ \"window_min\": 0 }");
    assert_int_equal(s_wait_exit(s_spawn(f, check), 5000), 2);
    out = s_read_file(f, "err.log");
    snprintf(want, sizeof(want), "escucha-aggregator: %s: teams.0.topics.0.spike.window_min: 0 is",
             f->cfg_path);
    if (strstr(out, want) == NULL) {
        fail_msg("stderr '%s' lacks '%s'", out, want);
    }
    esc_free(out);
}

/* Adds one classified post to batch b (topics NULL-terminated). */
static void
s_batch_post(struct esc_batch *b, int id, int64_t created_at, const char *const *topics)
{
    struct esc_post p;
    char idbuf[32];
    char *buf;
    size_t len = 0;
    size_t i;

    esc_post_init(&p);
    snprintf(idbuf, sizeof(idbuf), "b%d", id);
    p.id = esc_strdup(idbuf);
    p.platform = esc_strdup("mastodon");
    p.text = esc_strdup("sesión del congreso");
    p.created_at = created_at;
    p.ingested_at = created_at;
    p.language = esc_strdup("es");
    for (i = 0; topics != NULL && topics[i] != NULL; i++) {
        esc_strlist_push(&p.topics, &p.n_topics, topics[i]);
    }
    buf = esc_post_encode(&p, 1, &len);
    esc_batch_add(b, buf, len);
    esc_free(buf);
    esc_post_fini(&p);
}

/* Batches from the classifiers: every post in them is counted, a bad element is skipped with
 * the others still counted, a malformed batch is skipped whole, single frames still work. */
static void
test_aggregator_counts_batches(void **state)
{
    struct fix *f = *state;
    static const char *const congreso[] = { "gob/congreso", NULL };
    static const uint8_t no_msgs[] = { 0x82, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e',
                                       0xa5, 'b', 'a', 't', 'c', 'h' };
    const char *args[] = { "--config", f->cfg_path, NULL };
    int64_t t0 = (esc_now_ms() / 86400000 - 1) * 86400000;
    struct esc_batch b;
    const void *frame;
    size_t len;
    char redis[400];
    char want[64];
    char *log;
    int i;
    int k;

    s_redis_json(f, redis, sizeof(redis));
    s_write_config(f, redis, "");
    f->pid = s_spawn(f, args);
    f->push = esc_bus_new(ESC_BUS_PUSH, f->agg_ep, false, 10000);
    assert_non_null(f->push);

    /* first, so its warning is not the one rate-limited */
    assert_int_equal(esc_bus_send(f->push, no_msgs, sizeof(no_msgs), 0), ESC_OK);
    esc_batch_init(&b);
    for (i = 0; i < 40; i++) {
        s_batch_post(&b, i, t0 + i * 1000, congreso);
        if (i == 20) {
            esc_batch_add(&b, "\x93garbage", 8); /* an element that is no message */
        }
    }
    frame = esc_batch_frame(&b, &len);
    assert_int_equal(esc_bus_send(f->push, frame, len, 0), ESC_OK);
    esc_batch_reset(&b);
    for (i = 40; i < 50; i++) {
        s_batch_post(&b, i, t0 + i * 1000, congreso);
    }
    frame = esc_batch_frame(&b, &len);
    assert_int_equal(esc_bus_send(f->push, frame, len, 0), ESC_OK);
    esc_batch_fini(&b);
    s_send_post(f, 50, t0 + 50 * 1000, "sesión del congreso", congreso); /* a single frame */

    if (s_wait_processed(f, 51, 15000) != 0) {
        s_dump_log(f);
        fail_msg("processed never reached 51");
    }
    assert_int_equal(s_get_int(f, "HGET %s %s", "esc:t:{gob/congreso}", "posts"), 51);

    kill(f->pid, SIGTERM);
    k = s_wait_exit(f->pid, 10000);
    f->pid = 0;
    log = s_read_file(f, "err.log");
    if (k != 0) {
        fprintf(stderr, "%s", log);
    }
    assert_int_equal(k, 0);
    /* in counts messages: 51 posts, the bad element and the malformed batch */
    snprintf(want, sizeof(want), "stopped in=53 flushed=51 invalid=2 ");
    if (strstr(log, want) == NULL || strstr(log, "batch: missing required key 'msgs'") == NULL) {
        fprintf(stderr, "%s", log);
        fail_msg("summary '%s' or the malformed batch's reason missing", want);
    }
    esc_free(log);
}

/* The topic keys of a post: configured ones count (also one too long for the fast lookup
 * table), a well-formed key the config does not have counts too, a repeated key counts once,
 * malformed keys are skipped, and the post still counts for the rest. Then a post of 60 KB
 * (the decoder's memory is given back after it) and a normal one after it count too. */
static void
test_aggregator_topic_keys(void **state)
{
    struct fix *f = *state;
    static const char *const keys[] = {
        "gob/congreso",
        "gob/congreso",
        "Gob/Mayus",
        "gob",
        "gob/",
        "/congreso",
        "gob/otro-tema",
        "gob/" LONG_TOPIC,
        "equipo-con-un-identificador-largo-de-mas-de-cincuenta/tema-nuevo",
        "gob/elecciones",
        "gob/" LONG_TOPIC,
        NULL,
    };
    const char *args[] = { "--config", f->cfg_path, NULL };
    int64_t t0 = (esc_now_ms() / 86400000 - 1) * 86400000;
    char redis[400];
    char *big = esc_malloc(60 * 1024 + 1);
    char *log;
    int k;

    assert_true(strlen("gob/" LONG_TOPIC) > 55 && strlen(LONG_TOPIC) <= 64);
    memset(big, 'a', 60 * 1024);
    big[60 * 1024] = '\0';
    s_redis_json(f, redis, sizeof(redis));
    s_write_config(f, redis, "");
    f->pid = s_spawn(f, args);
    f->push = esc_bus_new(ESC_BUS_PUSH, f->agg_ep, false, 10000);
    assert_non_null(f->push);
    s_send_post(f, 1, t0, "sesión del congreso", keys);
    s_send_post(f, 2, t0 + 1000, "voto largo", keys + 7);
    s_send_post(f, 3, t0 + 2000, big, keys);
    s_send_post(f, 4, t0 + 3000, "congreso", keys);
    esc_free(big);
    if (s_wait_processed(f, 4, 15000) != 0) {
        s_dump_log(f);
        fail_msg("processed never reached 4");
    }
    assert_int_equal(s_get_int(f, "HGET %s %s", "esc:t:{gob/congreso}", "posts"), 3);
    assert_int_equal(s_get_int(f, "HGET %s %s", "esc:t:{gob/otro-tema}", "posts"), 3);
    assert_int_equal(s_get_int(f, "HGET %s %s", "esc:t:{gob/elecciones}", "posts"), 4);
    assert_int_equal(s_get_int(f, "HGET %s %s", "esc:t:{gob/" LONG_TOPIC "}", "posts"), 4);
    assert_int_equal(
        s_get_int(f, "HGET %s %s",
                  "esc:t:{equipo-con-un-identificador-largo-de-mas-de-cincuenta/tema-nuevo}",
                  "posts"),
        4);
    assert_int_equal(s_get_int(f, "EXISTS %s%s", "esc:t:{Gob/Mayus}", ""), 0);
    assert_int_equal(s_get_int(f, "EXISTS %s%s", "esc:t:{gob/}", ""), 0);
    assert_int_equal(s_get_int(f, "EXISTS %s%s", "esc:t:{/congreso}", ""), 0);

    kill(f->pid, SIGTERM);
    k = s_wait_exit(f->pid, 10000);
    f->pid = 0;
    log = s_read_file(f, "err.log");
    if (k != 0 || strstr(log, "topic key skipped") == NULL) {
        fprintf(stderr, "%s", log);
    }
    assert_int_equal(k, 0);
    assert_non_null(
        strstr(log, "topic key skipped post=\"p1\" topic=\"gob/congreso\" reason=repeated"));
    esc_free(log);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_aggregator_counts_and_alerts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_aggregator_counts_batches, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_aggregator_topic_keys, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_aggregator_redis_down_exit_1, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_aggregator_check_config, s_setup, s_teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    esc_log_init("test", ESC_LOG_ERROR);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    esc_bus_ctx_term();
    return rc;
}
