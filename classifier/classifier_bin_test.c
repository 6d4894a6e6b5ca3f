#define ESC_LOG_MODULE "test"
/* Component tests of the real escucha-classifier binary (CLS_BIN, from CMake). The test plays
 * broker and aggregator: it binds a PUSH socket (the classifier's bus.classify) and a PULL
 * socket (its bus.aggregate) on tcp://127.0.0.1:*, writes a temporary config with those
 * endpoints, starts the binary, sends posts and one garbage frame, and checks the classified
 * posts, a SIGHUP reload, reloads (good and bad files) while posts stream with every post
 * coming out once, the stop on SIGTERM (exit 0 and the summary line), exit 1 when posts had
 * to be dropped, and the --check-query, --check-config, --normalize and --explain tools. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#ifndef CLS_BIN
#error "CLS_BIN must name the escucha-classifier binary"
#endif

struct env {
    char dir[64];       /* temp dir */
    char cfg[128];      /* config path */
    char out[128];      /* child's stdout */
    char err[128];      /* child's stderr */
    esc_bus_t *push;    /* plays the broker: bound, the classifier connects (bus.classify) */
    esc_bus_t *pull;    /* plays the aggregator: bound (bus.aggregate) */
};

static const char s_topics[] =
    "\"teams\": ["
    "  { \"id\": \"gob\", \"topics\": ["
    "    { \"id\": \"congreso\", \"keywords\": [\"congreso\", \"poder legislativo\"] },"
    "    { \"id\": \"elecciones\", \"keywords\": [\"elecciones\", \"#EleccionesPerú2026\"] } ] },"
    "  { \"id\": \"dev\", \"topics\": ["
    "    { \"id\": \"anemia\", \"keywords\": [\"anemia\"%s] } ] } ]";

static void
s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Writes the config with the given endpoints, an extra anemia keyword and classifier section. */
static void
s_write_cfg(const char *path, const char *classify, const char *aggregate, const char *extra_kw,
            const char *section, int64_t hwm)
{
    char topics[1024];
    char text[2048];

    snprintf(topics, sizeof(topics), s_topics, extra_kw);
    snprintf(text, sizeof(text),
             "{ \"bus\": { \"classify\": \"%s\", \"aggregate\": \"%s\", \"hwm\": %lld },\n"
             "  %s,\n  \"classifier\": { %s } }\n",
             classify, aggregate, (long long)hwm, topics, section);
    s_write(path, text);
}

static int
s_setup(void **state)
{
    struct env *e = esc_calloc(1, sizeof(*e));
    int tmo = 10000;

    esc_strlcpy(e->dir, "/tmp/cls_bin_XXXXXX", sizeof(e->dir));
    if (mkdtemp(e->dir) == NULL) {
        return -1;
    }
    snprintf(e->cfg, sizeof(e->cfg), "%s/escucha.json", e->dir);
    snprintf(e->out, sizeof(e->out), "%s/stdout", e->dir);
    snprintf(e->err, sizeof(e->err), "%s/stderr", e->dir);
    e->push = esc_bus_new(ESC_BUS_PUSH, "tcp://127.0.0.1:*", true, 1000);
    e->pull = esc_bus_new(ESC_BUS_PULL, "tcp://127.0.0.1:*", true, 1000);
    if (e->push == NULL || e->pull == NULL) {
        return -1;
    }
    /* never hang the test: sends and receives give up after 10 s */
    zmq_setsockopt(esc_bus_zsock(e->push), ZMQ_SNDTIMEO, &tmo, sizeof(tmo));
    zmq_setsockopt(esc_bus_zsock(e->pull), ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct env *e = *state;
    DIR *d;
    struct dirent *de;
    char path[400];

    esc_bus_destroy(&e->push, 0);
    esc_bus_destroy(&e->pull, 0);
    d = opendir(e->dir);
    for (de = d != NULL ? readdir(d) : NULL; de != NULL; de = readdir(d)) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            snprintf(path, sizeof(path), "%s/%s", e->dir, de->d_name);
            unlink(path);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    if (rmdir(e->dir) != 0) {
        fprintf(stderr, "could not remove %s\n", e->dir);
    }
    esc_free(e);
    return 0;
}

/* Starts CLS_BIN with args (NULL-terminated, after argv[0]), stdin from in_path (or
 * /dev/null), stdout and stderr to the env's files. */
static pid_t
s_spawn(const struct env *e, const char *const *args, const char *in_path)
{
    char *argv[16];
    size_t n = 0;
    pid_t pid;

    argv[n++] = (char *)(uintptr_t)CLS_BIN;
    while (args[n - 1] != NULL && n < 15) {
        argv[n] = (char *)(uintptr_t)args[n - 1];
        n++;
    }
    argv[n] = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open(in_path != NULL ? in_path : "/dev/null", O_RDONLY);
        int out = open(e->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(e->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        if (in < 0 || out < 0 || err < 0) {
            _exit(127);
        }
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execv(CLS_BIN, argv);
        _exit(127);
    }
    return pid;
}

/* Waits up to timeout_ms for pid; returns its exit status, or fails after SIGKILL. */
static int
s_wait(pid_t pid, int64_t timeout_ms)
{
    int64_t end = esc_mono_ms() + timeout_ms;
    int st = 0;

    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid) {
            break;
        }
        if (esc_mono_ms() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fail_msg("child %d did not exit within %lld ms", (int)pid, (long long)timeout_ms);
        }
        usleep(10000);
    }
    if (!WIFEXITED(st)) {
        fail_msg("child %d died from signal %d", (int)pid, WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    }
    return WEXITSTATUS(st);
}

/* Runs CLS_BIN to completion; returns its exit status. */
static int
s_run_tool(const struct env *e, const char *const *args, const char *in_path)
{
    return s_wait(s_spawn(e, args, in_path), 20000);
}

/* Contents of a file, caller-owned. */
static char *
s_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = esc_calloc(1, 1 << 20);
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
s_send_post(struct env *e, const char *id, const char *text, const char *hashtag)
{
    struct esc_post p;
    char *buf;
    size_t len;

    esc_post_init(&p);
    p.id = esc_strdup(id);
    p.platform = esc_strdup("jsonl");
    p.text = esc_strdup(text);
    p.lang = esc_strdup("es-PE");
    p.created_at = 1763300000000;
    if (hashtag != NULL) {
        esc_strlist_push(&p.hashtags, &p.n_hashtags, hashtag);
    }
    buf = esc_post_encode(&p, 0, &len);
    esc_post_fini(&p);
    assert_int_equal(esc_bus_send(e->push, buf, len, 0), ESC_OK);
    esc_free(buf);
}

/* Receives one classified post into out (caller must esc_post_fini). */
static void
s_recv_classified(struct env *e, struct esc_post *out)
{
    const void *buf;
    size_t len;
    enum esc_msg_type type;
    struct esc_error err;

    assert_int_equal(esc_bus_recv(e->pull, &buf, &len, 0), ESC_OK);
    assert_int_equal(esc_post_decode(buf, len, out, &type, &err), ESC_OK);
    assert_int_equal(type, ESC_MSG_CLASSIFIED);
}

static void
s_expect(struct env *e, const char *id, const char *t0, const char *t1)
{
    struct esc_post p;
    size_t n = (t0 != NULL) + (t1 != NULL);

    s_recv_classified(e, &p);
    assert_string_equal(p.id, id);
    assert_int_equal(p.n_topics, n);
    if (t0 != NULL) {
        assert_string_equal(p.topics[0], t0);
    }
    if (t1 != NULL) {
        assert_string_equal(p.topics[1], t1);
    }
    /* language ID runs for matched posts only; nothing reads an unmatched post's language */
    assert_string_equal(p.language, n > 0 ? "es" : "und");
    esc_post_fini(&p);
}

static void
test_cls_bin_classifies_reloads_and_drains(void **state)
{
    struct env *e = *state;
    const char *args[] = { "--config", e->cfg, NULL };
    const char *garbage = "\x93not a post";
    char *log;
    pid_t pid;
    int found = 0;
    int i;

    s_write_cfg(e->cfg, esc_bus_endpoint(e->push), esc_bus_endpoint(e->pull), "",
                "\"drain_quiet_ms\": 200, \"grace_ms\": 5000", 1000);
    pid = s_spawn(e, args, NULL);
    s_send_post(e, "1", "El Congreso y la ANEMIA infantil", NULL);
    assert_int_equal(esc_bus_send(e->push, garbage, strlen(garbage), 0), ESC_OK);
    s_send_post(e, "2", "nada que ver", NULL);
    s_send_post(e, "3", "#EleccionesPerú2026 en el poder, legislativo", NULL);
    s_send_post(e, "4", "sin palabras clave", "EleccionesPerú2026");
    s_expect(e, "1", "gob/congreso", "dev/anemia");
    s_expect(e, "2", NULL, NULL);
    s_expect(e, "3", "gob/congreso", "gob/elecciones");
    s_expect(e, "4", "gob/elecciones", NULL);

    /* SIGHUP: "desnutrición" becomes an anemia keyword */
    s_write_cfg(e->cfg, esc_bus_endpoint(e->push), esc_bus_endpoint(e->pull),
                ", \"desnutrición\"", "\"drain_quiet_ms\": 200, \"grace_ms\": 5000", 1000);
    assert_int_equal(kill(pid, SIGHUP), 0);
    for (i = 0; i < 100 && !found; i++) {
        struct esc_post p;

        s_send_post(e, "r", "DESNUTRICION", NULL);
        s_recv_classified(e, &p);
        found = p.n_topics == 1 && strcmp(p.topics[0], "dev/anemia") == 0;
        esc_post_fini(&p);
        if (!found) {
            usleep(50000);
        }
    }
    assert_true(found);

    /* SIGTERM: what was sent before the signal still comes out, then exit 0 */
    s_send_post(e, "5", "elecciones", NULL);
    assert_int_equal(kill(pid, SIGTERM), 0);
    s_expect(e, "5", "gob/elecciones", NULL);
    assert_int_equal(s_wait(pid, 10000), 0);
    log = s_slurp(e->err);
    assert_non_null(strstr(log, "dropped invalid message reason=\""));
    assert_non_null(strstr(log, "reloaded topics=3 keywords=6"));
    assert_non_null(strstr(log, "stopped in="));
    assert_non_null(strstr(log, "invalid=1 dropped=0"));
    esc_free(log);
}

/* Adds post id with text to batch b (encoded as a collector does). */
static void
s_batch_post(struct esc_batch *b, const char *id, const char *text)
{
    struct esc_post p;
    char *buf;
    size_t len;

    esc_post_init(&p);
    p.id = esc_strdup(id);
    p.platform = esc_strdup("jsonl");
    p.text = esc_strdup(text);
    p.created_at = 1763300000000;
    p.ingested_at = esc_now_ms();
    buf = esc_post_encode(&p, 0, &len);
    esc_post_fini(&p);
    esc_batch_add(b, buf, len);
    esc_free(buf);
}

static void
test_cls_bin_batch_in_batch_out(void **state)
{
    static const uint8_t bad_version[] = { 0x83, 0xa1, 'v', 0x02, 0xa4, 't', 'y', 'p', 'e',
                                           0xa5, 'b', 'a', 't', 'c', 'h', 0xa4, 'm', 's', 'g',
                                           's', 0x90 };
    struct env *e = *state;
    const char *args[] = { "--config", e->cfg, NULL };
    struct esc_batch b;
    struct esc_batch_iter it;
    struct esc_error err;
    struct esc_post p;
    const void *frame;
    const void *msg;
    size_t len;
    size_t mlen;
    char *log;
    pid_t pid;

    s_write_cfg(e->cfg, esc_bus_endpoint(e->push), esc_bus_endpoint(e->pull), "",
                "\"drain_quiet_ms\": 200, \"grace_ms\": 5000", 1000);
    pid = s_spawn(e, args, NULL);
    /* a malformed batch is skipped whole (logged first: invalid input is logged once a second) */
    assert_int_equal(esc_bus_send(e->push, bad_version, sizeof(bad_version), 0), ESC_OK);

    /* a batch of four, the second no post: three classified posts come out, in one batch */
    esc_batch_init(&b);
    s_batch_post(&b, "b1", "El Congreso y la ANEMIA infantil");
    esc_batch_add(&b, "\x93not a post", 11);
    s_batch_post(&b, "b2", "nada que ver");
    s_batch_post(&b, "b3", "elecciones");
    frame = esc_batch_frame(&b, &len);
    assert_int_equal(esc_bus_send(e->push, frame, len, 0), ESC_OK);
    assert_int_equal(esc_bus_recv(e->pull, &frame, &len, 0), ESC_OK);
    assert_int_equal(esc_batch_open(&it, frame, len, &err), ESC_OK);
    assert_true(it.batch);
    assert_int_equal(it.count, 3);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_OK);
    assert_int_equal(esc_post_decode(msg, mlen, &p, NULL, &err), ESC_OK);
    assert_string_equal(p.id, "b1");
    assert_int_equal(p.n_topics, 2);
    esc_post_fini(&p);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_OK);
    assert_int_equal(esc_post_decode(msg, mlen, &p, NULL, &err), ESC_OK);
    assert_string_equal(p.id, "b2");
    assert_int_equal(p.n_topics, 0);
    esc_post_fini(&p);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_OK);
    assert_int_equal(esc_post_decode(msg, mlen, &p, NULL, &err), ESC_OK);
    assert_string_equal(p.id, "b3");
    assert_string_equal(p.topics[0], "gob/elecciones");
    esc_post_fini(&p);
    assert_int_equal(esc_batch_next(&it, &msg, &mlen, &err), ESC_CLOSED);

    /* a single post comes out alone */
    s_send_post(e, "s1", "elecciones", NULL);
    s_expect(e, "s1", "gob/elecciones", NULL);

    /* a batch of one element that is no post: nothing comes out */
    esc_batch_reset(&b);
    esc_batch_add(&b, "x", 1);
    s_batch_post(&b, "b4", "congreso");
    frame = esc_batch_frame(&b, &len);
    assert_int_equal(esc_bus_send(e->push, frame, len, 0), ESC_OK);
    s_expect(e, "b4", "gob/congreso", NULL); /* the only result: sent as the plain message */
    esc_batch_fini(&b);

    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(s_wait(pid, 10000), 0);
    log = s_slurp(e->err);
    assert_non_null(strstr(log, "reason=\"batch: unsupported schema version 2\""));
    assert_non_null(strstr(log, "stopped in=8 out=5 invalid=3 dropped=0"));
    esc_free(log);
}

static void
test_cls_bin_exit_1_when_posts_dropped(void **state)
{
    struct env *e = *state;
    const char *args[] = { "--config", e->cfg, NULL };
    char nobody[128];
    char *log;
    pid_t pid;
    int i;

    /* nobody binds bus.aggregate: after hwm posts the classifier has to wait, and on SIGTERM
     * gives up when the grace period ends */
    snprintf(nobody, sizeof(nobody), "ipc://%s/nobody.sock", e->dir);
    s_write_cfg(e->cfg, esc_bus_endpoint(e->push), nobody, "",
                "\"grace_ms\": 300, \"drain_quiet_ms\": 100", 10);
    pid = s_spawn(e, args, NULL);
    for (i = 0; i < 40; i++) {
        s_send_post(e, "x", "congreso", NULL);
    }
    usleep(300000);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(s_wait(pid, 10000), 1);
    log = s_slurp(e->err);
    assert_non_null(strstr(log, "posts dropped at shutdown count="));
    esc_free(log);
}

static void
test_cls_bin_check_config(void **state)
{
    struct env *e = *state;
    const char *args[] = { "--config", e->cfg, "--check-config", NULL };
    char *out;
    char want[256];

    s_write_cfg(e->cfg, "tcp://127.0.0.1:5551", "tcp://127.0.0.1:5552", "", "", 1000);
    assert_int_equal(s_run_tool(e, args, NULL), 0);
    out = s_slurp(e->out);
    assert_string_equal(out, "config ok\n");
    esc_free(out);

    /* a keyword with nothing to match, named by its key path */
    s_write_cfg(e->cfg, "tcp://127.0.0.1:5551", "tcp://127.0.0.1:5552", ", \"?!\"", "", 1000);
    assert_int_equal(s_run_tool(e, args, NULL), 2);
    out = s_slurp(e->err);
    snprintf(want, sizeof(want),
             "escucha-classifier: %s: error: teams[1].topics[0].keywords[1]: ", e->cfg);
    assert_memory_equal(out, want, strlen(want));
    esc_free(out);

    /* a bad value in the classifier section */
    s_write_cfg(e->cfg, "tcp://127.0.0.1:5551", "tcp://127.0.0.1:5552", "",
                "\"fold_enye\": \"yes\"", 1000);
    assert_int_equal(s_run_tool(e, args, NULL), 2);
    out = s_slurp(e->err);
    assert_non_null(strstr(out, "classifier.fold_enye: expected true or false"));
    esc_free(out);

    /* not JSON at all */
    s_write(e->cfg, "{ nope");
    assert_int_equal(s_run_tool(e, args, NULL), 2);
    out = s_slurp(e->err);
    assert_non_null(strstr(out, "syntax error"));
    esc_free(out);
}

static void
test_cls_bin_normalize_and_explain(void **state)
{
    struct env *e = *state;
    const char *norm_args[] = { "--normalize", NULL };
    const char *norm_cfg_args[] = { "--normalize", "--config", e->cfg, NULL };
    const char *explain_args[] = { "--config", e->cfg, "--explain", NULL };
    char in_path[160];
    char *out;

    snprintf(in_path, sizeof(in_path), "%s/in.txt", e->dir);
    s_write(in_path, "¡ELECCIÓN del Año!\nwawa\xe2\x80\x99kuna \xff\n\nÑandú\r\n");
    assert_int_equal(s_run_tool(e, norm_args, in_path), 0);
    out = s_slurp(e->out);
    assert_string_equal(out, "¡eleccion del año!\nwawa'kuna \xef\xbf\xbd\n\nñandu\n");
    esc_free(out);

    s_write_cfg(e->cfg, "tcp://127.0.0.1:5551", "tcp://127.0.0.1:5552", "",
                "\"fold_enye\": true", 1000);
    assert_int_equal(s_run_tool(e, norm_cfg_args, in_path), 0);
    out = s_slurp(e->out);
    assert_string_equal(out, "¡eleccion del ano!\nwawa'kuna \xef\xbf\xbd\n\nnandu\n");
    esc_free(out);

    s_write(in_path, "{\"id\": \"42\", \"platform\": \"jsonl\", \"lang\": \"es-PE\", "
                     "\"created_at\": \"2026-11-16T14:03:00Z\", "
                     "\"text\": \"Hoy #EleccionesPerú2026: el Poder Legislativo https://x.pe\"}");
    assert_int_equal(s_run_tool(e, explain_args, in_path), 0);
    out = s_slurp(e->out);
    assert_non_null(strstr(out, "normalized: hoy #eleccionesperu2026: el poder legislativo "
                                "https://x.pe\n"));
    assert_non_null(strstr(out, "  hashtag       eleccionesperu2026 @1\n"));
    assert_non_null(strstr(out, "  part          peru @1\n"));
    assert_non_null(strstr(out, "  gob/congreso keyword=\"poder legislativo\"\n"));
    /* the first keyword (config order) that matches is the one shown */
    assert_non_null(strstr(out, "  gob/elecciones keyword=\"elecciones\"\n"));
    /* the URL is a link, not words */
    assert_non_null(strstr(out, "  link          x.pe\n"));
    assert_null(strstr(out, "  word          x\n"));
    assert_non_null(strstr(out, "language: es confidence="));
    assert_non_null(strstr(out, "\nsentiment: "));
    esc_free(out);

    s_write(in_path, "{\"id\": 1}");
    assert_int_equal(s_run_tool(e, explain_args, in_path), 1);
}

/* Writes text to path through a temporary file and a rename, so a reader never sees half. */
static void
s_write_atomic(const char *path, const char *text)
{
    char tmp[160];

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    s_write(tmp, text);
    assert_int_equal(rename(tmp, path), 0);
}

static const char s_stream_cfg[] =
    "{ \"bus\": { \"classify\": \"%s\", \"aggregate\": \"%s\", \"hwm\": 1000 },\n"
    "  \"teams\": [ { \"id\": \"gob\", \"topics\": [\n"
    "    { \"id\": \"congreso\", \"query\": \"%s\" } ] } ],\n"
    "  \"classifier\": { \"drain_quiet_ms\": 200, \"grace_ms\": 5000 } }\n";

static void
s_write_stream_cfg(const struct env *e, const char *query)
{
    char text[1024];

    snprintf(text, sizeof(text), s_stream_cfg, esc_bus_endpoint(e->push),
             esc_bus_endpoint(e->pull), query);
    s_write_atomic(e->cfg, text);
}

static void
test_cls_bin_reload_under_load_loses_nothing(void **state)
{
    enum { ROUNDS = 12, PER_ROUND = 250 };
    struct env *e = *state;
    const char *args[] = { "--config", e->cfg, NULL };
    static const char *const queries[] = {
        "congreso OR senado",
        "(congreso AND (voto",          /* invalid: the running config stays */
        "congreso NEAR/3 senado",
    };
    unsigned char *seen = esc_calloc(ROUNDS * PER_ROUND, 1);
    size_t matched = 0;
    char *log;
    pid_t pid;
    int round;
    int i;

    s_write_stream_cfg(e, "congreso");
    pid = s_spawn(e, args, NULL);
    for (round = 0; round < ROUNDS; round++) {
        for (i = 0; i < PER_ROUND; i++) {
            char id[32];

            snprintf(id, sizeof(id), "%d", round * PER_ROUND + i);
            s_send_post(e, id, i % 2 == 0 ? "el congreso y el senado" : "nada", NULL);
            if (i == PER_ROUND / 3) {
                /* a reload lands while this round's posts are queued and in flight */
                s_write_stream_cfg(e, queries[round % 3]);
                assert_int_equal(kill(pid, SIGHUP), 0);
            }
        }
        for (i = 0; i < PER_ROUND; i++) {
            struct esc_post p;
            int64_t n = -1;

            s_recv_classified(e, &p);
            assert_int_equal(esc_parse_i64(p.id, 0, ROUNDS * PER_ROUND - 1, &n), 0);
            assert_int_equal(seen[n], 0);
            seen[n] = 1;
            /* every config in play classifies the odd posts as nothing, the even ones as
             * congreso */
            assert_int_equal(p.n_topics, n % 2 == 0 ? 1 : 0);
            matched += p.n_topics;
            esc_post_fini(&p);
        }
    }
    for (i = 0; i < ROUNDS * PER_ROUND; i++) {
        assert_int_equal(seen[i], 1);
    }
    assert_int_equal(matched, ROUNDS * PER_ROUND / 2);
    esc_free(seen);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(s_wait(pid, 10000), 0);
    log = s_slurp(e->err);
    assert_non_null(strstr(log, "reloaded topics=1"));
    assert_non_null(strstr(log, "reload failed, keeping the running config"));
    assert_non_null(strstr(log, "teams[0].topics[0].query: column 1: unbalanced parenthesis"));
    assert_non_null(strstr(log, "dropped=0"));
    esc_free(log);
}

static void
test_cls_bin_check_query(void **state)
{
    struct env *e = *state;
    const char *bad[] = { "--check-query", "congreso AND (voto", NULL };
    const char *good[] = { "--check-query", "(elecciones OR vot*) AND perú -fraude", "--tree",
                           NULL };
    const char *empty[] = { "--check-query", "", NULL };
    char *out;

    assert_int_equal(s_run_tool(e, bad, NULL), 2);
    out = s_slurp(e->out);
    assert_string_equal(out, "error: column 14: unbalanced parenthesis\n"
                             "  congreso AND (voto\n"
                             "               ^\n");
    esc_free(out);
    assert_int_equal(s_run_tool(e, good, NULL), 0);
    out = s_slurp(e->out);
    assert_string_equal(out, "warning: column 16: short wildcard 'vot*' may match many "
                             "unrelated words\n"
                             "  (elecciones OR vot*) AND perú -fraude\n"
                             "                 ^\n"
                             "AND\n"
                             "  OR\n"
                             "    term \"elecciones\"\n"
                             "    wildcard \"vot*\"\n"
                             "  term \"peru\"\n"
                             "  NOT\n"
                             "    term \"fraude\"\n"
                             "query ok, 1 warning\n");
    esc_free(out);
    assert_int_equal(s_run_tool(e, empty, NULL), 2);
    out = s_slurp(e->out);
    assert_string_equal(out, "error: column 1: empty query\n  \n  ^\n");
    esc_free(out);
}

static void
test_cls_bin_check_config_queries(void **state)
{
    struct env *e = *state;
    const char *args[] = { "--config", e->cfg, "--check-config", NULL };
    char *out;
    char want[512];

    s_write(e->cfg, "{ \"teams\": [ { \"id\": \"a\", \"topics\": [\n"
                    "  { \"id\": \"x\", \"query\": \"congreso OR senado NOT fujimori\" },\n"
                    "  { \"id\": \"y\", \"query\": \"ok\", \"exclude\": \"NOT peru\" },\n"
                    "  { \"id\": \"z\", \"query\": \"congreso AND (voto\" },\n"
                    "  { \"id\": \"w\", \"keywords\": [\"!!\"], "
                    "\"query\": \"a NEAR/99 b\" } ] } ] }");
    assert_int_equal(s_run_tool(e, args, NULL), 2);
    out = s_slurp(e->err);
    snprintf(want, sizeof(want),
             "escucha-classifier: %s: error: teams[0].topics[2].query: column 14: unbalanced "
             "parenthesis\n"
             "  congreso AND (voto\n"
             "               ^\n",
             e->cfg);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, ": warning: teams[0].topics[0].query: column 20: NOT binds "));
    assert_non_null(strstr(out, ": warning: teams[0].topics[1].exclude: column 1: this exclude "
                                "query is NOT-only"));
    assert_non_null(strstr(out, ": error: teams[0].topics[3].keywords[0]: keyword \"!!\" has "));
    assert_non_null(strstr(out, ": error: teams[0].topics[3].query: column 3: NEAR distance 99 "
                                "is too large (max 50)\n"));
    esc_free(out);
    /* warnings alone do not fail the check */
    s_write(e->cfg, "{ \"teams\": [ { \"id\": \"a\", \"topics\": [\n"
                    "  { \"id\": \"x\", \"query\": \"vot* OR (a b)\" } ] } ] }");
    assert_int_equal(s_run_tool(e, args, NULL), 0);
    out = s_slurp(e->out);
    assert_string_equal(out, "config ok, 1 warning\n");
    esc_free(out);
    /* a bad team exclusion entry is reported by the compile step */
    s_write(e->cfg, "{ \"teams\": [ { \"id\": \"a\", \"exclude\": { \"sites\": [\"/\"] },"
                    " \"topics\": [ { \"id\": \"x\", \"query\": \"a\" } ] } ] }");
    assert_int_equal(s_run_tool(e, args, NULL), 2);
    out = s_slurp(e->err);
    assert_non_null(strstr(out, "teams[0].exclude.sites[0]: '/' is not a domain"));
    esc_free(out);
}

static void
test_cls_bin_explain_queries(void **state)
{
    struct env *e = *state;
    const char *args[] = { "--config", e->cfg, "--explain", NULL };
    char in_path[160];
    char *out;

    snprintf(in_path, sizeof(in_path), "%s/in.json", e->dir);
    s_write(e->cfg, "{ \"teams\": [ { \"id\": \"gob\", \"exclude\": { \"authors\": [\"@bot\"] },"
                    " \"topics\": [\n"
                    "  { \"id\": \"fraude\", \"query\": \"fraude NEAR/3 (elecciones OR voto)\" },\n"
                    "  { \"id\": \"onpe\", \"query\": \"@onpe AND followers:>100\" },\n"
                    "  { \"id\": \"site\", \"query\": \"site:gob.pe\", "
                    "\"exclude\": \"{ONPE}\" } ] },\n"
                    "  { \"id\": \"dev\", \"topics\": [\n"
                    "  { \"id\": \"es\", \"query\": \"lang:es fraude\" } ] } ] }");
    s_write(in_path, "{\"id\": \"9\", \"platform\": \"mastodon\", \"lang\": \"es\", "
                     "\"author\": \"@ana@mastodon.social\", \"followers\": 50, "
                     "\"created_at\": 1, \"url\": \"https://www.onpe.gob.pe/n/1\", "
                     "\"text\": \"ONPE: no hubo fraude en el voto, dice @onpe\"}");
    assert_int_equal(s_run_tool(e, args, in_path), 0);
    out = s_slurp(e->out);
    assert_non_null(strstr(out, "  link          www.onpe.gob.pe/n/1\n"));
    assert_non_null(strstr(out, "  author        ana@mastodon.social\n"));
    assert_non_null(strstr(out, "topics:\n"
                                "  gob/fraude query=\"fraude NEAR/3 (elecciones OR voto)\"\n"
                                "  dev/es query=\"lang:es fraude\"\n"
                                "near misses:\n"
                                "  gob/onpe failed query=\"followers:>100\" (follower count does "
                                "not qualify)\n"
                                "  gob/site excluded by exclude=\"{ONPE}\"\n"));
    assert_non_null(strstr(out, "language: es confidence="));
    assert_non_null(strstr(out, "\nsentiment: "));
    esc_free(out);
    /* the team's exclusion list */
    s_write(in_path, "{\"id\": \"9\", \"platform\": \"x\", \"author\": \"bot\", "
                     "\"created_at\": 1, \"text\": \"fraude y voto\"}");
    assert_int_equal(s_run_tool(e, args, in_path), 0);
    out = s_slurp(e->out);
    assert_non_null(strstr(out, "  gob/fraude excluded by team gob exclude.authors[0]=\"@bot\"\n"));
    esc_free(out);
}

static void
test_cls_bin_flags(void **state)
{
    struct env *e = *state;
    const char *version[] = { "--version", NULL };
    const char *help_config[] = { "--help-config", NULL };
    const char *no_config[] = { NULL };
    const char *dump[] = { "--config", e->cfg, "--dump-config", NULL };
    char *out;

    assert_int_equal(s_run_tool(e, version, NULL), 0);
    out = s_slurp(e->out);
    assert_memory_equal(out, "escucha-classifier ", strlen("escucha-classifier "));
    esc_free(out);
    assert_int_equal(s_run_tool(e, help_config, NULL), 0);
    out = s_slurp(e->out);
    assert_non_null(strstr(out, "classifier.drain_quiet_ms"));
    assert_non_null(strstr(out, "classifier.fold_enye"));
    esc_free(out);
    assert_int_equal(s_run_tool(e, no_config, NULL), 2);
    s_write_cfg(e->cfg, "tcp://127.0.0.1:5551", "tcp://127.0.0.1:5552", "", "\"grace_ms\": 42",
                1000);
    assert_int_equal(s_run_tool(e, dump, NULL), 0);
    out = s_slurp(e->out);
    assert_non_null(strstr(out, "classifier.grace_ms = 42\n"));
    assert_non_null(strstr(out, "classifier.fold_enye = false\n"));
    esc_free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cls_bin_classifies_reloads_and_drains, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_cls_bin_batch_in_batch_out, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cls_bin_exit_1_when_posts_dropped, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_cls_bin_check_config, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cls_bin_normalize_and_explain, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cls_bin_reload_under_load_loses_nothing, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_cls_bin_check_query, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cls_bin_check_config_queries, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cls_bin_explain_queries, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cls_bin_flags, s_setup, s_teardown),
    };
    int rc;

    esc_log_init("classifier-bin-test", ESC_LOG_WARN);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    esc_bus_ctx_term();
    return rc;
}
