#define ESC_LOG_MODULE "test"
/* Tests of the "jsonl" source plugin, driven directly with a capturing emit callback (no bus):
 * exactly the good lines come out, in order, and every bad one is logged with its line number;
 * line length limits; follow mode (appends, partial lines, truncation, rotation); a missing
 * file; batch budgets; pacing; and what the plugin does with the host's ESC_INVALID/ESC_CLOSED.
 * Log lines are checked by pointing fd 2 at a temp file while the plugin runs. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "col_source.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define CAP_MAX 64
/* "Año nuevo 🎉 ñandú #CongresoPerú" */
#define EMOJI_TEXT "A\xc3\xb1o nuevo \xf0\x9f\x8e\x89 \xc3\xb1" "and\xc3\xba #CongresoPer\xc3\xba"

/* What the capturing emit callback saw. */
struct capture {
    char *ids[CAP_MAX];
    char *texts[CAP_MAX];
    int64_t created[CAP_MAX];
    size_t n;
    size_t close_after;     /* answer ESC_CLOSED once n reaches this (0 = never) */
    const char *reject_id;  /* answer ESC_INVALID for this id */
};

struct fixture {
    char dir[128];
    char path[192];
    char log[192];
    int saved_stderr;
    struct col_source ins;
    struct capture cap;
    struct col_emit em;
};

static esc_rc
s_capture(void *arg, struct col_source *ins, struct esc_post *post)
{
    struct capture *c = arg;

    if (c->close_after > 0 && c->n >= c->close_after) {
        return ESC_CLOSED;
    }
    if (c->reject_id != NULL && strcmp(post->id, c->reject_id) == 0) {
        return ESC_INVALID;
    }
    assert_true(c->n < CAP_MAX);
    c->ids[c->n] = esc_strdup(post->id);
    c->texts[c->n] = esc_strdup(post->text);
    c->created[c->n] = post->created_at;
    c->n++;
    ins->stats.posts++; /* the host's job; done here so stats stay meaningful */
    return ESC_OK;
}

/* Sets key of the plugin config through its cfg_map (the plugin's struct is private). */
static void *
s_field(void *cfg, const char *key)
{
    const struct esc_cfg_entry *e;

    for (e = src_jsonl_plugin.cfg_map; e->key != NULL; e++) {
        if (strcmp(e->key, key) == 0) {
            return (char *)cfg + e->offset;
        }
    }
    fail_msg("no key %s in the jsonl cfg_map", key);
    return NULL;
}

static void
s_write(const char *path, const char *mode, const char *data, size_t len)
{
    FILE *f = fopen(path, mode);

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void
s_writes(const char *path, const char *mode, const char *text)
{
    s_write(path, mode, text, strlen(text));
}

/* A valid post line for id, with a fixed created_at of 2026-11-16 14:03:00Z + i minutes. */
static char *
s_post_line(char *out, size_t outsz, const char *id, int minute)
{
    snprintf(out, outsz,
             "{\"id\":\"%s\",\"platform\":\"mastodon\",\"text\":\"texto %s\","
             "\"created_at\":\"2026-11-16T14:%02d:00Z\"}\n",
             id, id, minute);
    return out;
}

static int
s_setup(void **state)
{
    struct fixture *fx = esc_calloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");

    snprintf(fx->dir, sizeof(fx->dir), "%s/col_jsonl_XXXXXX",
             tmp != NULL && strlen(tmp) < 64 ? tmp : "/tmp");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/posts.jsonl", fx->dir);
    snprintf(fx->log, sizeof(fx->log), "%s/stderr.log", fx->dir);
    fx->saved_stderr = -1;
    esc_strlcpy(fx->ins.name, "muestra", sizeof(fx->ins.name));
    fx->ins.plugin = &src_jsonl_plugin;
    fx->ins.cfg = esc_calloc(1, src_jsonl_plugin.cfg_size);
    esc_cfg_defaults(src_jsonl_plugin.cfg_map, fx->ins.cfg);
    esc_strlcpy(s_field(fx->ins.cfg, "path"), fx->path, 1024);
    fx->em.fn = s_capture;
    fx->em.arg = &fx->cap;
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    struct fixture *fx = *state;
    char rotated[256];
    size_t i;

    if (fx->saved_stderr >= 0) {
        dup2(fx->saved_stderr, 2);
        close(fx->saved_stderr);
    }
    if (fx->ins.started) {
        src_jsonl_plugin.exit(&fx->ins);
    }
    for (i = 0; i < fx->cap.n; i++) {
        esc_free(fx->cap.ids[i]);
        esc_free(fx->cap.texts[i]);
    }
    snprintf(rotated, sizeof(rotated), "%s.1", fx->path);
    unlink(rotated);
    unlink(fx->path);
    unlink(fx->log);
    rmdir(fx->dir);
    esc_free(fx->ins.cfg);
    esc_free(fx);
    return 0;
}

/* Points fd 2 at the fixture's log file, so log lines can be checked afterwards. */
static void
s_log_capture(struct fixture *fx)
{
    int fd = open(fx->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    assert_true(fd >= 0);
    fx->saved_stderr = dup(2);
    assert_true(fx->saved_stderr >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
}

/* Restores fd 2 and returns what was logged (caller frees). */
static char *
s_log_take(struct fixture *fx)
{
    FILE *f;
    char *buf = esc_calloc(1, 64 * 1024);
    size_t n;

    dup2(fx->saved_stderr, 2);
    close(fx->saved_stderr);
    fx->saved_stderr = -1;
    f = fopen(fx->log, "r");
    assert_non_null(f);
    n = fread(buf, 1, 64 * 1024 - 1, f);
    buf[n] = '\0';
    fclose(f);
    /* Echo it, so a failing run shows what the plugin said. */
    fputs(buf, stderr);
    return buf;
}

static void
s_init(struct fixture *fx)
{
    assert_int_equal(src_jsonl_plugin.init(&fx->ins), 0);
    fx->ins.started = 1;
}

/* Polls until the source is done; fails after `max` polls. */
static void
s_poll_until_done(struct fixture *fx, int max)
{
    int i;
    esc_rc rc;

    for (i = 0; i < max && !fx->ins.done; i++) {
        rc = src_jsonl_plugin.poll(&fx->ins, &fx->em, 512);
        assert_true(rc == ESC_OK || rc == ESC_RETRY);
    }
    assert_true(fx->ins.done);
}

static void
s_expect_ids(const struct fixture *fx, const char *const *want, size_t n)
{
    size_t i;

    assert_int_equal(fx->cap.n, n);
    for (i = 0; i < n; i++) {
        assert_string_equal(fx->cap.ids[i], want[i]);
    }
}

static void
test_src_jsonl_good_lines_in_order_bad_ones_logged(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = { "p1", "p2", "p4", "p5", "p6", "p7" };
    static const char huge_head[] = "{\"id\":\"huge\",\"text\":\"";
    size_t long_len = ESC_MSG_MAX + 1000;
    char *big = esc_malloc(long_len + 2);
    char line[512];
    char *log;

    /* 1 good, 2 blank, 3 bad JSON, 4 emoji, 5 no created_at, 6 blanks, 7 over-long, 8 good,
     * 9 CRLF, 10 wrong type, 11 good, 12 good without a final newline. */
    s_writes(fx->path, "w", s_post_line(line, sizeof(line), "p1", 3));
    s_writes(fx->path, "a", "\n");
    s_writes(fx->path, "a", "{\"id\":\"bad\",\"platform\":\"x\",\"text\":\n");
    s_writes(fx->path, "a",
             "{\"id\":\"p2\",\"platform\":\"bluesky\",\"text\":\"" EMOJI_TEXT "\","
             "\"created_at\":\"2026-11-16T14:05:00Z\"}\n");
    s_writes(fx->path, "a", "{\"id\":\"p3\",\"platform\":\"reddit\",\"text\":\"sin fecha\"}\n");
    s_writes(fx->path, "a", "   \t \n");
    memset(big, 'a', long_len);
    memcpy(big, huge_head, sizeof(huge_head) - 1);
    big[long_len] = '\n';
    s_write(fx->path, "a", big, long_len + 1);
    s_writes(fx->path, "a", s_post_line(line, sizeof(line), "p4", 8));
    s_post_line(line, sizeof(line), "p5", 9);
    memcpy(line + strlen(line) - 1, "\r\n", 3);
    s_writes(fx->path, "a", line);
    s_writes(fx->path, "a", "{\"id\":\"p9\",\"platform\":\"x\",\"text\":\"t\",\"likes\":\"many\","
                            "\"created_at\":\"2026-11-16T14:00:00Z\"}\n");
    s_writes(fx->path, "a", s_post_line(line, sizeof(line), "p6", 11));
    s_post_line(line, sizeof(line), "p7", 12);
    line[strlen(line) - 1] = '\0';
    s_writes(fx->path, "a", line);
    esc_free(big);

    s_log_capture(fx);
    s_init(fx);
    s_poll_until_done(fx, 10);
    log = s_log_take(fx);

    s_expect_ids(fx, want, ESC_ARRAY_LEN(want));
    assert_string_equal(fx->cap.texts[1], EMOJI_TEXT);
    assert_int_equal(fx->cap.created[0], INT64_C(1794837780000)); /* 2026-11-16T14:03:00Z */
    assert_int_equal(fx->ins.stats.skipped, 4);
    assert_int_equal(fx->ins.stats.errors, 0);
    assert_non_null(strstr(log, "skipped bad line source=muestra line=3 reason=\"invalid JSON"));
    assert_non_null(strstr(log, "skipped bad line source=muestra line=5 "
                                "reason=\"field 'created_at': missing\""));
    assert_non_null(strstr(log, "skipped bad line source=muestra line=7 reason=\"line longer"));
    assert_non_null(strstr(log, "skipped bad line source=muestra line=10 reason=\"field 'likes'"));
    assert_null(strstr(log, "line=2 "));
    assert_null(strstr(log, "line=6 "));
    assert_non_null(strstr(log, "file done source=muestra"));
    assert_non_null(strstr(log, "lines=12"));
    esc_free(log);
}

static void
test_src_jsonl_bad_line_reason_hides_post_text(void **state)
{
    struct fixture *fx = *state;
    char *log;

    /* jansson quotes the input near the error; that may be post text, kept out of warn lines. */
    s_writes(fx->path, "w", "{\"id\":\"x\",\"platform\":\"m\",\"text\":\"mi secreto privado\n");
    s_writes(fx->path, "a", "{\"id\":\"y\",\"text\":mi secreto privado}\n");
    s_log_capture(fx);
    s_init(fx);
    s_poll_until_done(fx, 10);
    log = s_log_take(fx);
    assert_int_equal(fx->cap.n, 0);
    assert_int_equal(fx->ins.stats.skipped, 2);
    assert_non_null(strstr(log, "line=1 reason=\"invalid JSON: premature end of input at column"));
    assert_non_null(strstr(log, "line=2 reason=\"invalid JSON: invalid token at column 19\""));
    assert_null(strstr(log, "secreto"));
    esc_free(log);
}

static void
test_src_jsonl_line_of_exactly_max_bytes_is_read(void **state)
{
    struct fixture *fx = *state;
    static const char head[] = "{\"id\":\"max\",\"platform\":\"rss\",\"text\":\"t\","
                               "\"created_at\":\"2026-11-16T00:00:00Z\",\"pad\":\"";
    static const char *const want[] = { "max", "after" };
    char *big = esc_malloc(ESC_MSG_MAX + 2);
    char line[512];

    /* A valid post whose line is ESC_MSG_MAX bytes long without its newline: an unknown key
     * pads it; the parser ignores it. Then a line one byte longer, which is skipped. */
    memset(big, 'x', ESC_MSG_MAX);
    memcpy(big, head, sizeof(head) - 1);
    memcpy(big + ESC_MSG_MAX - 2, "\"}", 2);
    big[ESC_MSG_MAX] = '\n';
    s_write(fx->path, "w", big, ESC_MSG_MAX + 1);
    memmove(big + 1, big, ESC_MSG_MAX + 1);
    big[0] = ' ';
    s_write(fx->path, "a", big, ESC_MSG_MAX + 2);
    s_writes(fx->path, "a", s_post_line(line, sizeof(line), "after", 1));
    esc_free(big);

    s_init(fx);
    s_poll_until_done(fx, 10);
    s_expect_ids(fx, want, ESC_ARRAY_LEN(want));
    assert_int_equal(fx->ins.stats.skipped, 1);
}

static void
test_src_jsonl_follow_reads_appended_lines(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = { "a1", "a2", "a3", "a4", "t1", "r1", "r2" };
    char line[512];
    char rotated[256];
    esc_rc rc;

    *(bool *)s_field(fx->ins.cfg, "follow") = true;
    s_writes(fx->path, "w", s_post_line(line, sizeof(line), "a1", 1));
    s_writes(fx->path, "a", s_post_line(line, sizeof(line), "a2", 2));
    /* The writer has not finished this line yet. */
    s_writes(fx->path, "a", "{\"id\":\"a3\",\"platform\":\"mastodon\",");
    s_init(fx);

    rc = src_jsonl_plugin.poll(&fx->ins, &fx->em, 512);
    assert_int_equal(rc, ESC_OK);
    assert_int_equal(fx->cap.n, 2);
    assert_false(fx->ins.done);
    assert_true(fx->ins.wake_ms > esc_mono_ms() - 1);
    rc = src_jsonl_plugin.poll(&fx->ins, &fx->em, 512);
    assert_int_equal(rc, ESC_RETRY);
    assert_int_equal(fx->cap.n, 2);

    s_writes(fx->path, "a", "\"text\":\"fin\",\"created_at\":\"2026-11-16T14:03:00Z\"}\n");
    s_writes(fx->path, "a", s_post_line(line, sizeof(line), "a4", 4));
    rc = src_jsonl_plugin.poll(&fx->ins, &fx->em, 512);
    assert_int_equal(rc, ESC_OK);
    assert_int_equal(fx->cap.n, 4);

    /* Truncated and rewritten shorter: read again from the top. */
    s_writes(fx->path, "w", s_post_line(line, sizeof(line), "t1", 5));
    rc = src_jsonl_plugin.poll(&fx->ins, &fx->em, 512);
    assert_int_equal(rc, ESC_OK);
    assert_int_equal(fx->cap.n, 5);

    /* Rotated: the old file gets a last unterminated line, a new file appears at the path. */
    snprintf(rotated, sizeof(rotated), "%s.1", fx->path);
    assert_int_equal(rename(fx->path, rotated), 0);
    s_post_line(line, sizeof(line), "r1", 6);
    line[strlen(line) - 1] = '\0';
    s_writes(rotated, "a", line);
    s_writes(fx->path, "w", s_post_line(line, sizeof(line), "r2", 7));
    rc = src_jsonl_plugin.poll(&fx->ins, &fx->em, 512);
    assert_int_equal(rc, ESC_OK);
    s_expect_ids(fx, want, ESC_ARRAY_LEN(want));
    assert_false(fx->ins.done);
    assert_int_equal(fx->ins.stats.skipped, 0);
}

static void
test_src_jsonl_missing_file(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = { "late" };
    char line[512];
    char *log;
    esc_rc rc;

    /* Without follow the source cannot start. */
    s_log_capture(fx);
    assert_int_equal(src_jsonl_plugin.init(&fx->ins), -1);
    assert_int_equal(fx->ins.stats.errors, 1);

    /* With follow it waits for the file, logging the outage once. */
    *(bool *)s_field(fx->ins.cfg, "follow") = true;
    s_init(fx);
    rc = src_jsonl_plugin.poll(&fx->ins, &fx->em, 512);
    assert_int_equal(rc, ESC_RETRY);
    assert_true(fx->ins.wake_ms > esc_mono_ms());
    assert_int_equal(fx->ins.stats.errors, 2);
    s_writes(fx->path, "w", s_post_line(line, sizeof(line), "late", 1));
    fx->ins.wake_ms = 0;
    rc = src_jsonl_plugin.poll(&fx->ins, &fx->em, 512);
    assert_int_equal(rc, ESC_OK);
    log = s_log_take(fx);
    s_expect_ids(fx, want, 1);
    assert_non_null(strstr(log, "cannot open file source=muestra"));
    assert_non_null(strstr(log, "retry_ms=1000"));
    esc_free(log);
}

static void
test_src_jsonl_directory_is_an_error(void **state)
{
    struct fixture *fx = *state;

    esc_strlcpy(s_field(fx->ins.cfg, "path"), fx->dir, 1024);
    assert_int_equal(src_jsonl_plugin.init(&fx->ins), -1);
    assert_int_equal(fx->ins.stats.errors, 1);
}

static void
test_src_jsonl_poll_respects_budget(void **state)
{
    struct fixture *fx = *state;
    char line[512];
    char id[8];
    int i;

    s_writes(fx->path, "w", "");
    for (i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "b%d", i);
        s_writes(fx->path, "a", s_post_line(line, sizeof(line), id, i));
    }
    s_init(fx);
    assert_int_equal(src_jsonl_plugin.poll(&fx->ins, &fx->em, 3), ESC_OK);
    assert_int_equal(fx->cap.n, 3);
    assert_false(fx->ins.done);
    assert_int_equal(src_jsonl_plugin.poll(&fx->ins, &fx->em, 3), ESC_OK);
    assert_int_equal(fx->cap.n, 6);
    assert_string_equal(fx->cap.ids[5], "b5");
    s_poll_until_done(fx, 10);
    assert_int_equal(fx->cap.n, 10);
}

static void
test_src_jsonl_stops_when_host_closes(void **state)
{
    struct fixture *fx = *state;
    char line[512];
    char id[8];
    int i;

    s_writes(fx->path, "w", "");
    for (i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        s_writes(fx->path, "a", s_post_line(line, sizeof(line), id, i));
    }
    fx->cap.close_after = 2;
    s_init(fx);
    assert_int_equal(src_jsonl_plugin.poll(&fx->ins, &fx->em, 512), ESC_CLOSED);
    assert_int_equal(fx->cap.n, 2);
    assert_false(fx->ins.done);
}

static void
test_src_jsonl_host_rejection_is_skipped(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = { "k1", "k3" };
    char line[512];
    char *log;

    s_writes(fx->path, "w", s_post_line(line, sizeof(line), "k1", 1));
    s_writes(fx->path, "a", s_post_line(line, sizeof(line), "k2", 2));
    s_writes(fx->path, "a", s_post_line(line, sizeof(line), "k3", 3));
    fx->cap.reject_id = "k2";
    s_log_capture(fx);
    s_init(fx);
    s_poll_until_done(fx, 10);
    log = s_log_take(fx);
    s_expect_ids(fx, want, ESC_ARRAY_LEN(want));
    assert_int_equal(fx->ins.stats.skipped, 1);
    assert_non_null(strstr(log, "line=2 reason=\"post too large for the bus"));
    esc_free(log);
}

static void
test_src_jsonl_rate_paces_posts(void **state)
{
    struct fixture *fx = *state;
    char line[512];
    char id[8];
    int i;
    int64_t t0;

    s_writes(fx->path, "w", "");
    for (i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "r%d", i);
        s_writes(fx->path, "a", s_post_line(line, sizeof(line), id, i));
    }
    *(double *)s_field(fx->ins.cfg, "rate") = 5.0; /* one post every 200 ms */
    s_init(fx);
    t0 = esc_mono_ms();
    assert_int_equal(src_jsonl_plugin.poll(&fx->ins, &fx->em, 512), ESC_OK);
    /* The first post goes at once, with at most 100 ms of catch-up credit for a second. */
    assert_true(fx->cap.n >= 1 && fx->cap.n <= 2);
    assert_true(fx->ins.wake_ms > t0);
    assert_true(fx->ins.wake_ms <= esc_mono_ms() + 200);
    assert_false(fx->ins.done);
}

static void
test_src_jsonl_validate_rejects_empty_path(void **state)
{
    struct fixture *fx = *state;
    struct esc_error err;

    memset(&err, 0, sizeof(err));
    assert_int_equal(src_jsonl_plugin.validate(fx->ins.cfg, "sources.3", &err), ESC_OK);
    *(char *)s_field(fx->ins.cfg, "path") = '\0';
    assert_int_equal(src_jsonl_plugin.validate(fx->ins.cfg, "sources.3", &err), ESC_INVALID);
    assert_string_equal(err.text, "sources.3.path: must not be empty");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_src_jsonl_good_lines_in_order_bad_ones_logged,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_jsonl_bad_line_reason_hides_post_text, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_src_jsonl_line_of_exactly_max_bytes_is_read,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_jsonl_follow_reads_appended_lines, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_src_jsonl_missing_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_jsonl_directory_is_an_error, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_src_jsonl_poll_respects_budget, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_jsonl_stops_when_host_closes, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_src_jsonl_host_rejection_is_skipped, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_src_jsonl_rate_paces_posts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_jsonl_validate_rejects_empty_path, s_setup,
                                        s_teardown),
    };

    esc_log_init("test", ESC_LOG_INFO);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
