#define ESC_LOG_MODULE "test"
/* Unit tests of the collector host: the "collector" section and every source section are
 * validated with errors naming the key path; --help-config/--dump-config output comes from
 * the tables; and col_run, over an inproc bus, stamps and sends every post and, when the bus is
 * full and a stop signal arrives, gives up after the grace period and counts what it could not
 * send instead of dropping it silently. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "col_source.h"
#include "collector.h"

#include "escucha/esc_bus.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_sig.h"
#include "escucha/esc_util.h"

#define TEAMS "\"teams\":[{\"id\":\"gob\",\"topics\":[{\"id\":\"congreso\",\"keywords\":[\"x\"]}]}]"

static int s_sig_fd = -1;

/* Loads a config made of TEAMS plus `rest` (a JSON fragment starting with a comma, or ""). */
static struct esc_cfg *
s_cfg(const char *rest)
{
    char text[4096];
    struct esc_error err;
    struct esc_cfg *cfg;

    snprintf(text, sizeof(text), "{" TEAMS "%s}", rest);
    cfg = esc_cfg_load_string(text, "t.json", &err);
    if (cfg == NULL) {
        fail_msg("config did not load: %s", err.text);
    }
    return cfg;
}

/* Expects the collector checks (section, then sources) to fail with exactly `want`. */
static void
s_expect_invalid(const char *rest, const char *want)
{
    struct esc_cfg *cfg = s_cfg(rest);
    struct col_cfg ccfg;
    struct esc_error err;

    memset(&err, 0, sizeof(err));
    if (col_cfg_apply(cfg, &ccfg, &err) == ESC_OK) {
        assert_int_equal(col_sources_check(cfg, &err), ESC_INVALID);
    }
    assert_string_equal(err.text, want);
    assert_string_equal(err.source, "t.json");
    esc_cfg_free(&cfg);
}

/* Reads back everything written to the temporary file f and closes it. Caller frees. */
static char *
s_slurp(FILE *f)
{
    char *buf = esc_calloc(1, 16 * 1024);
    size_t n;

    rewind(f);
    n = fread(buf, 1, 16 * 1024 - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
test_collector_config_defaults_and_demo(void **state)
{
    struct esc_cfg *cfg = s_cfg("");
    struct esc_error err;
    struct col_cfg ccfg;

    (void)state;
    assert_int_equal(col_cfg_apply(cfg, &ccfg, &err), ESC_OK);
    assert_int_equal(ccfg.grace_ms, 5000);
    assert_false(ccfg.exit_when_done);
    assert_int_equal(col_sources_check(cfg, &err), ESC_OK);
    esc_cfg_free(&cfg);

    cfg = esc_cfg_load("examples/escucha.json", &err);
    if (cfg == NULL) {
        fail_msg("%s: %s", err.source, err.text);
    }
    assert_int_equal(col_cfg_apply(cfg, &ccfg, &err), ESC_OK);
    assert_int_equal(col_sources_check(cfg, &err), ESC_OK);
    assert_int_equal(cfg->n_sources, 1);
    esc_cfg_free(&cfg);
}

static void
test_collector_config_errors_name_the_key(void **state)
{
    (void)state;
    s_expect_invalid(",\"sources\":[{\"name\":\"m\",\"type\":\"jsonl\"}]",
                     "sources.0.path: missing required key");
    s_expect_invalid(",\"sources\":[{\"name\":\"m\",\"type\":\"jsonl\",\"path\":\"\"}]",
                     "sources.0.path: must not be empty");
    s_expect_invalid(",\"sources\":[{\"name\":\"a\",\"type\":\"jsonl\",\"path\":\"p\"},"
                     "{\"name\":\"m\",\"type\":\"telegram\"}]",
                     "sources.1.type: unknown source type 'telegram' (known: jsonl, mastodon, "
                     "rss, hn, reddit, bluesky, x, lemmy, youtube, csv, ingest)");
    /* The connectors' own checks name the key too. */
    s_expect_invalid(",\"sources\":[{\"name\":\"m\",\"type\":\"mastodon\","
                     "\"instance\":\"mastodon.social\",\"tag\":\"peru\"}]",
                     "sources.0.instance: must start with https:// (or http://)");
    s_expect_invalid(",\"sources\":[{\"name\":\"m\",\"type\":\"mastodon\","
                     "\"instance\":\"https://m.example\"}]",
                     "sources.0.tag: required for timeline tag");
    s_expect_invalid(",\"sources\":[{\"name\":\"m\",\"type\":\"mastodon\","
                     "\"instance\":\"https://m.example\",\"tag\":\"x\",\"limit\":41}]",
                     "sources.0.limit: 41 is out of range [1, 40]");
    s_expect_invalid(",\"sources\":[{\"name\":\"f\",\"type\":\"rss\"}]",
                     "sources.0.url: missing required key");
    s_expect_invalid(",\"sources\":[{\"name\":\"b\",\"type\":\"bluesky\","
                     "\"identifier\":\"me.bsky.social\",\"query\":\"x\"}]",
                     "sources.0.password_env: set password_env or password_file (an app "
                     "password; Bluesky refuses anonymous search)");
    s_expect_invalid(",\"sources\":[{\"name\":\"y\",\"type\":\"youtube\","
                     "\"key_env\":\"K\",\"kind\":\"comments\"}]",
                     "sources.0.video_id: kind comments needs exactly one of video_id and "
                     "channel_id");
    s_expect_invalid(",\"sources\":[{\"name\":\"h\",\"type\":\"hn\",\"query\":\"x\","
                     "\"intervall_s\":5}]",
                     "sources.0.intervall_s: unknown key");
    s_expect_invalid(",\"sources\":[{\"name\":\"h\",\"type\":\"hn\",\"query\":\"x\","
                     "\"since\":\"last year\"}]",
                     "sources.0.since: 'last year' is not a date (YYYY-MM-DD or RFC 3339)");
    s_expect_invalid(",\"sources\":[{\"name\":\"m\",\"type\":\"jsonl\",\"path\":\"p\","
                     "\"folow\":true}]",
                     "sources.0.folow: unknown key");
    s_expect_invalid(",\"sources\":[{\"name\":\"m\",\"type\":\"jsonl\",\"path\":\"p\","
                     "\"follow\":\"yes\"}]",
                     "sources.0.follow: expected true or false, got string");
    s_expect_invalid(",\"sources\":[{\"name\":\"m\",\"type\":\"jsonl\",\"path\":\"p\","
                     "\"rate\":-1}]",
                     "sources.0.rate: -1 is out of range [0, 1e+06]");
    s_expect_invalid(",\"collector\":{\"grace_ms\":1}",
                     "collector.grace_ms: 1 is out of range [10, 3600000]");
    s_expect_invalid(",\"collector\":{\"grace\":100}", "collector.grace: unknown key");
    s_expect_invalid(",\"collector\":{\"exit_when_done\":1}",
                     "collector.exit_when_done: expected true or false, got integer");
}

static void
test_collector_config_env_override(void **state)
{
    struct esc_cfg *cfg =
        s_cfg(",\"sources\":[{\"name\":\"m\",\"type\":\"jsonl\",\"path\":\"p\"}]");
    struct esc_error err;
    struct col_cfg ccfg;
    char *out;
    FILE *f = tmpfile();

    (void)state;
    setenv("ESC_COLLECTOR_GRACE_MS", "250", 1);
    setenv("ESC_SOURCES_0_RATE", "3.5", 1);
    assert_int_equal(col_cfg_apply(cfg, &ccfg, &err), ESC_OK);
    assert_int_equal(col_sources_check(cfg, &err), ESC_OK);
    assert_int_equal(ccfg.grace_ms, 250);
    assert_non_null(f);
    col_print_config(f, cfg, &ccfg);
    out = s_slurp(f);
    assert_non_null(strstr(out, "collector.grace_ms = 250\n"));
    assert_non_null(strstr(out, "collector.exit_when_done = false\n"));
    assert_non_null(strstr(out, "sources.0.name = \"m\"\n"));
    assert_non_null(strstr(out, "sources.0.path = \"p\"\n"));
    assert_non_null(strstr(out, "sources.0.rate = 3.5\n"));
    assert_non_null(strstr(out, "sources.0.follow = false\n"));
    esc_free(out);
    unsetenv("ESC_COLLECTOR_GRACE_MS");
    setenv("ESC_SOURCES_0_RATE", "fast", 1);
    assert_int_equal(col_sources_check(cfg, &err), ESC_INVALID);
    assert_non_null(strstr(err.text, "ESC_SOURCES_0_RATE"));
    unsetenv("ESC_SOURCES_0_RATE");
    esc_cfg_free(&cfg);
}

static void
test_collector_help_config_lists_every_map(void **state)
{
    FILE *f = tmpfile();
    char *out;

    (void)state;
    assert_non_null(f);
    col_print_help_config(f);
    out = s_slurp(f);
    assert_non_null(strstr(out, "collector.grace_ms"));
    assert_non_null(strstr(out, "collector.exit_when_done"));
    assert_non_null(strstr(out, "source type \"jsonl\""));
    assert_non_null(strstr(out, "sources.N.path"));
    assert_non_null(strstr(out, "(required)"));
    assert_non_null(strstr(out, "sources.N.follow"));
    assert_non_null(strstr(out, "sources.N.rate"));
    esc_free(out);
}

/* Writes n posts to path; returns nothing, fails the test on error. */
static void
s_write_posts(const char *path, int n, int pad)
{
    FILE *f = fopen(path, "w");
    int i;

    assert_non_null(f);
    for (i = 0; i < n; i++) {
        fprintf(f,
                "{\"id\":\"q%03d\",\"platform\":\"rss\",\"source\":\"upstream\","
                "\"text\":\"congreso %d%*s\",\"created_at\":%lld}\n",
                i, i, pad, "", (long long)(INT64_C(1794837780000) + i * 1000));
    }
    assert_int_equal(fclose(f), 0);
}

static void
test_collector_run_stamps_and_sends_every_post(void **state)
{
    char dir[] = "/tmp/col_run_XXXXXX";
    char path[64];
    char rest[512];
    struct esc_cfg *cfg;
    struct col_cfg ccfg;
    struct col_stats st;
    struct esc_error err;
    esc_bus_t *in;
    esc_bus_t *out;
    col_t *col;
    struct esc_batch_iter bit;
    const void *frame;
    size_t flen;
    int frames = 0;
    int64_t t0 = esc_now_ms();
    int i;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/p.jsonl", dir);
    s_write_posts(path, 30, 0);
    snprintf(rest, sizeof(rest),
             ",\"bus\":{\"collect\":\"inproc://col-run\"},\"collector\":{\"exit_when_done\":true},"
             "\"sources\":[{\"name\":\"muestra\",\"type\":\"jsonl\",\"path\":\"%s\"}]",
             path);
    cfg = s_cfg(rest);
    assert_int_equal(col_cfg_apply(cfg, &ccfg, &err), ESC_OK);
    in = esc_bus_new(ESC_BUS_PULL, "inproc://col-run", true, 1000);
    out = esc_bus_new(ESC_BUS_PUSH, cfg->bus.collect, false, (int)cfg->bus.hwm);
    assert_non_null(in);
    assert_non_null(out);

    col = col_new(cfg, &ccfg, out, s_sig_fd);
    assert_int_equal(col_run(col), ESC_OK);
    col_get_stats(col, &st);
    assert_true(col_grace_left_ms(col) > 0);
    col_destroy(&col);
    assert_null(col);
    assert_int_equal(st.sent, 30);
    assert_int_equal(st.unsent, 0);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.failed, 0);

    /* The posts of one round go out together, several per frame (a batch; a batch of one
     * is the plain post). */
    for (i = 0; i < 30; i++) {
        const void *buf;
        size_t len;
        struct esc_post p;
        enum esc_msg_type type;
        char want[8];

        if (i == 0 || esc_batch_next(&bit, &buf, &len, &err) == ESC_CLOSED) {
            assert_int_equal(esc_bus_recv(in, &frame, &flen, ESC_BUS_DONTWAIT), ESC_OK);
            assert_int_equal(esc_batch_open(&bit, frame, flen, &err), ESC_OK);
            frames++;
            assert_int_equal(esc_batch_next(&bit, &buf, &len, &err), ESC_OK);
        }
        assert_int_equal(esc_post_decode(buf, len, &p, &type, &err), ESC_OK);
        snprintf(want, sizeof(want), "q%03d", i);
        assert_int_equal(type, ESC_MSG_POST);
        assert_string_equal(p.id, want);
        assert_string_equal(p.source, "muestra"); /* the instance name replaces the file's */
        assert_true(p.ingested_at >= t0 && p.ingested_at <= esc_now_ms());
        assert_int_equal(p.created_at, INT64_C(1794837780000) + i * 1000);
        esc_post_fini(&p);
    }
    assert_int_equal(esc_batch_next(&bit, &frame, &flen, &err), ESC_CLOSED);
    assert_int_equal(esc_bus_recv(in, &frame, &flen, ESC_BUS_DONTWAIT), ESC_RETRY);
    assert_true(frames < 30);
    esc_bus_destroy(&out, 0);
    esc_bus_destroy(&in, 0);
    esc_cfg_free(&cfg);
    unlink(path);
    rmdir(dir);
}

/* Posts big enough that one poll of the source (COL_BATCH_MAX lines) makes more frames than a
 * bus of high-water mark 10 (each side) holds: a batch takes ESC_BATCH_BYTES / 8 KB of them. */
#define S_FULL_POSTS 600
#define S_FULL_PAD 8000

static void
test_collector_full_bus_counts_unsent_after_grace(void **state)
{
    char dir[] = "/tmp/col_full_XXXXXX";
    char path[64];
    char rest[512];
    struct esc_cfg *cfg;
    struct col_cfg ccfg;
    struct col_stats st;
    struct esc_error err;
    esc_bus_t *in;
    esc_bus_t *out;
    col_t *col;
    const void *buf;
    size_t len;
    uint64_t received = 0;
    int64_t t0;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/p.jsonl", dir);
    s_write_posts(path, S_FULL_POSTS, S_FULL_PAD);
    snprintf(rest, sizeof(rest),
             ",\"bus\":{\"collect\":\"inproc://col-full\",\"hwm\":10},"
             "\"collector\":{\"grace_ms\":200},"
             "\"sources\":[{\"name\":\"muestra\",\"type\":\"jsonl\",\"path\":\"%s\"}]",
             path);
    cfg = s_cfg(rest);
    assert_int_equal(col_cfg_apply(cfg, &ccfg, &err), ESC_OK);
    in = esc_bus_new(ESC_BUS_PULL, "inproc://col-full", true, 10);
    out = esc_bus_new(ESC_BUS_PUSH, cfg->bus.collect, false, (int)cfg->bus.hwm);
    assert_non_null(in);
    assert_non_null(out);

    /* Nobody reads `in`: the bus fills up and the collector waits. A pending SIGTERM makes it
     * give up waiting once the 200 ms grace period is over. */
    assert_int_equal(raise(SIGTERM), 0);
    col = col_new(cfg, &ccfg, out, s_sig_fd);
    t0 = esc_mono_ms();
    assert_int_equal(col_run(col), ESC_OK);
    assert_true(esc_mono_ms() - t0 >= 190);
    col_get_stats(col, &st);
    assert_int_equal(col_grace_left_ms(col), 0);
    col_destroy(&col);
    /* the batch that found no room: up to ESC_BATCH_MSGS posts, all counted */
    assert_true(st.unsent >= 1 && st.unsent <= ESC_BATCH_MSGS);
    assert_int_equal(st.errors, st.unsent);
    assert_true(st.sent >= 10 && st.sent + st.unsent < S_FULL_POSTS);

    /* Everything counted as sent is really there. */
    while (esc_bus_recv(in, &buf, &len, ESC_BUS_DONTWAIT) == ESC_OK) {
        struct esc_batch_iter bit;
        const void *msg;
        size_t mlen;

        assert_int_equal(esc_batch_open(&bit, buf, len, &err), ESC_OK);
        while (esc_batch_next(&bit, &msg, &mlen, &err) == ESC_OK) {
            received++;
        }
    }
    assert_int_equal(received, st.sent);
    esc_bus_destroy(&out, 0);
    esc_bus_destroy(&in, 0);
    esc_cfg_free(&cfg);
    unlink(path);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collector_config_defaults_and_demo),
        cmocka_unit_test(test_collector_config_errors_name_the_key),
        cmocka_unit_test(test_collector_config_env_override),
        cmocka_unit_test(test_collector_help_config_lists_every_map),
        cmocka_unit_test(test_collector_run_stamps_and_sends_every_post),
        cmocka_unit_test(test_collector_full_bus_counts_unsent_after_grace),
    };
    int rc;

    esc_log_init("test", ESC_LOG_WARN);
    /* As in main.c: signals are blocked before the ZeroMQ context exists. */
    s_sig_fd = esc_sig_init();
    if (s_sig_fd < 0) {
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    esc_bus_ctx_term();
    close(s_sig_fd);
    return rc;
}
