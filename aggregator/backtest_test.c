#define ESC_LOG_MODULE "test"
/* End-to-end tests of `escucha-aggregator --backtest`: the real binary on the synthetic series
 * of tests/data/backtest/ (1-minute, 5-minute and 1-hour steps; make_series.py writes them),
 * checking the output shape (one row per good input row), where alerts fire, the bad-row
 * messages and the exit codes. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#define S_ROWS_MAX 2000

struct out_row {
    char ts[64];
    long long value;
    int has_expected;
    double expected;
    double score;
    int alert;
};

struct fix {
    char dir[200];
    char out[256];
    char err[256];
    struct out_row *rows;     /* parsed stdout; owned */
    size_t n_rows;
    char header[128];
    char *errtext;            /* stderr; owned */
};

static int
s_setup(void **state)
{
    struct fix *f = esc_calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");

    snprintf(f->dir, sizeof(f->dir), "%s/agg-bt-XXXXXX",
             tmp != NULL && tmp[0] != '\0' && strlen(tmp) < 100 ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        esc_free(f);
        return -1;
    }
    snprintf(f->out, sizeof(f->out), "%s/out.csv", f->dir);
    snprintf(f->err, sizeof(f->err), "%s/err.txt", f->dir);
    f->rows = esc_calloc(S_ROWS_MAX, sizeof(*f->rows));
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    struct fix *f = *state;
    char path[300];

    unlink(f->out);
    unlink(f->err);
    snprintf(path, sizeof(path), "%s/escucha.json", f->dir);
    unlink(path);
    rmdir(f->dir);
    esc_free(f->rows);
    esc_free(f->errtext);
    esc_free(f);
    return 0;
}

static char *
s_slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *buf;
    long n;

    if (fp == NULL) {
        return esc_strdup("");
    }
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = esc_calloc(1, (size_t)n + 1);
    if (n > 0 && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        buf[0] = '\0';
    }
    fclose(fp);
    return buf;
}

/* Runs the binary with args (NULL-terminated, without argv[0]); stdout and stderr go to the
 * fixture's files, which are then parsed. Returns the exit status. */
static int
s_run(struct fix *f, const char *const *args)
{
    const char *argv[16];
    size_t n = 0;
    pid_t pid;
    int status = 0;
    FILE *fp;
    char line[512];

    argv[n++] = AGG_BIN;
    while (*args != NULL && n < 15) {
        argv[n++] = *args++;
    }
    argv[n] = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(f->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(f->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) {
            _exit(127);
        }
        execv(AGG_BIN, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    ESC_FREE(f->errtext);
    f->errtext = s_slurp(f->err);
    f->n_rows = 0;
    f->header[0] = '\0';
    fp = fopen(f->out, "r");
    assert_non_null(fp);
    if (fgets(f->header, sizeof(f->header), fp) != NULL) {
        while (fgets(line, sizeof(line), fp) != NULL) {
            struct out_row *r = &f->rows[f->n_rows];
            char *fields[5];
            char *p = line;
            int k;

            assert_true(f->n_rows < S_ROWS_MAX);
            line[strcspn(line, "\n")] = '\0';
            for (k = 0; k < 5; k++) {
                fields[k] = p;
                p = strchr(p, ',');
                if (k < 4) {
                    assert_non_null(p);
                    *p++ = '\0';
                }
            }
            assert_null(p); /* exactly 5 fields */
            esc_strlcpy(r->ts, fields[0], sizeof(r->ts));
            r->value = strtoll(fields[1], NULL, 10);
            r->has_expected = fields[2][0] != '\0';
            r->expected = strtod(fields[2], NULL);
            assert_true((fields[3][0] != '\0') == r->has_expected);
            r->score = strtod(fields[3], NULL);
            assert_true(strcmp(fields[4], "0") == 0 || strcmp(fields[4], "1") == 0);
            r->alert = fields[4][0] == '1';
            f->n_rows++;
        }
    }
    fclose(fp);
    return WEXITSTATUS(status);
}

/* Row indexes with alert = 1, into idx (at most max). */
static size_t
s_alerts(const struct fix *f, size_t *idx, size_t max)
{
    size_t n = 0;
    size_t i;

    for (i = 0; i < f->n_rows; i++) {
        if (f->rows[i].alert && n < max) {
            idx[n++] = i;
        }
    }
    return n;
}

/* Happy path: 1-minute series, default rule, one alert inside the 16:00-16:15 burst. */
static void
test_backtest_burst_1min(void **state)
{
    struct fix *f = *state;
    const char *args[] = { "--backtest", AGG_BACKTEST_DATA "/burst-1min.csv", NULL };
    size_t idx[8];
    size_t n;

    assert_int_equal(s_run(f, args), 0);
    assert_string_equal(f->header, "timestamp,value,expected,score,alert\n");
    assert_int_equal(f->n_rows, 1440);
    assert_string_equal(f->errtext, "");
    assert_string_equal(f->rows[0].ts, "2026-11-16T00:00:00Z");
    /* the first window needs a window's worth of baseline before it */
    assert_false(f->rows[0].has_expected);
    assert_false(f->rows[58].has_expected);
    assert_true(f->rows[59].has_expected);
    assert_true(f->rows[600].expected > 2.5 && f->rows[600].expected < 3.5);
    n = s_alerts(f, idx, 8);
    assert_int_equal(n, 1);
    assert_true(idx[0] >= 16 * 60 && idx[0] < 16 * 60 + 15);
    assert_true(f->rows[idx[0]].score >= 4.0); /* -log10(p) > -log10(1e-4) */
}

/* 5-minute steps, Unix-second timestamps, no header: the daily peak stops alerting once two
 * days of history exist; the 03:00 burst on day 3 still alerts. */
static void
test_backtest_daily_5min(void **state)
{
    struct fix *f = *state;
    const char *args[] = { "--backtest", AGG_BACKTEST_DATA "/daily-5min.csv", NULL };
    size_t idx[16];
    size_t n;
    size_t i;
    size_t burst = 3 * 288 + 3 * 12; /* 2026-11-19T03:00Z */

    assert_int_equal(s_run(f, args), 0);
    assert_int_equal(f->n_rows, 4 * 288);
    assert_string_equal(f->rows[0].ts, "1794787200");
    n = s_alerts(f, idx, 16);
    assert_true(n >= 2);
    for (i = 0; i < n && idx[i] < 2 * 288; i++) {
        continue; /* alerts at the peak of days 1 and 2: no history of it yet */
    }
    assert_int_equal(n - i, 1);
    assert_true(idx[i] >= burst && idx[i] < burst + 2);
    /* the day-3 peak is expected: expected per row is close to its value */
    assert_true(f->rows[3 * 288 + 13 * 12].expected > 25.0);
}

/* 1-hour steps: the window rounds to one row; busy Mondays alert in week 2 (daily baseline)
 * and never after 14 days of history (weekly baseline); the week-5 burst alerts. */
static void
test_backtest_weekly_1h(void **state)
{
    struct fix *f = *state;
    const char *args[] = { "--backtest", AGG_BACKTEST_DATA "/weekly-1h.csv", NULL };
    size_t idx[32];
    size_t n;
    size_t i;
    size_t after = 0;

    assert_int_equal(s_run(f, args), 0);
    assert_int_equal(f->n_rows, 5 * 168);
    n = s_alerts(f, idx, 32);
    for (i = 0; i < n; i++) {
        if (idx[i] >= 14 * 24) {
            after++;
            assert_string_equal(f->rows[idx[i]].ts, "2026-12-16T03:00:00Z");
        }
    }
    assert_int_equal(after, 1);
}

/* Bad rows: reported with their line numbers on stderr and skipped; the rest is replayed
 * (missing minutes count as 0) and each good row gives one output row. */
static void
test_backtest_bad_rows(void **state)
{
    struct fix *f = *state;
    const char *args[] = { "--backtest", AGG_BACKTEST_DATA "/bad-rows.csv", NULL };
    static const char *const want[] = {
        ":6: timestamp is neither RFC 3339 nor Unix seconds, row skipped\n",
        ":7: value is not a number from 0 to 4294967295, row skipped\n",
        ":8: expected 2 fields: timestamp,value, row skipped\n",
        ":10: timestamp is not after the previous row's, row skipped\n",
        ":11: not on the 1-minute grid of the series, row skipped\n",
        ": 5 bad rows skipped\n",
    };
    size_t i;

    assert_int_equal(s_run(f, args), 0);
    for (i = 0; i < ESC_ARRAY_LEN(want); i++) {
        if (strstr(f->errtext, want[i]) == NULL) {
            fail_msg("missing '%s' in:\n%s", want[i], f->errtext);
        }
    }
    assert_int_equal(f->n_rows, 5);
    assert_string_equal(f->rows[2].ts, "2026-11-16T00:04:00Z");
    assert_string_equal(f->rows[3].ts, "1794787560");
    assert_int_equal(f->rows[3].value, 7);
    assert_string_equal(f->rows[4].ts, "2026-11-16T00:07:00Z");
    assert_int_equal(f->rows[4].value, 4);
}

static void
s_write_config(const struct fix *f, const char *topic_spike)
{
    char path[300];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/escucha.json", f->dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "{ \"teams\": [ { \"id\": \"gob\", \"name\": \"Gob\", \"topics\": [\n"
            "  { \"id\": \"congreso\", \"name\": \"Congreso\", \"keywords\": [\"congreso\"],\n"
            "    \"spike\": %s } ] } ],\n"
            "  \"aggregator\": { \"spike\": { \"window_min\": 10, \"min_count\": 30 } } }\n",
            topic_spike);
    fclose(fp);
}

/* --config takes aggregator.spike; --topic that topic's override; errors exit 2. */
static void
test_backtest_config_topic_and_errors(void **state)
{
    struct fix *f = *state;
    char cfg[300];
    const char *global[] = { "--backtest", AGG_BACKTEST_DATA "/burst-1min.csv", "--config", cfg,
                             NULL };
    const char *topic[] = { "--backtest", AGG_BACKTEST_DATA "/burst-1min.csv", "--config", cfg,
                            "--topic", "gob/congreso", NULL };
    const char *unknown[] = { "--backtest", AGG_BACKTEST_DATA "/burst-1min.csv", "--config", cfg,
                              "--topic", "gob/nada", NULL };
    const char *no_config[] = { "--backtest", AGG_BACKTEST_DATA "/burst-1min.csv", "--topic",
                                "gob/congreso", NULL };
    const char *odd[] = { "--backtest", AGG_BACKTEST_DATA "/odd-interval.csv", NULL };
    const char *missing[] = { "--backtest", AGG_BACKTEST_DATA "/no-such-file.csv", NULL };
    size_t idx[8];

    snprintf(cfg, sizeof(cfg), "%s/escucha.json", f->dir);
    s_write_config(f, "{ \"min_count\": 1000 }");
    /* global rule: 10-minute window, so the first 10 rows have no baseline */
    assert_int_equal(s_run(f, global), 0);
    assert_int_equal(f->n_rows, 1440);
    assert_false(f->rows[18].has_expected);
    assert_true(f->rows[19].has_expected);
    assert_int_equal(s_alerts(f, idx, 8), 1);
    /* the topic's min_count of 1000 is never reached */
    assert_int_equal(s_run(f, topic), 0);
    assert_int_equal(f->n_rows, 1440);
    assert_int_equal(s_alerts(f, idx, 8), 0);

    assert_int_equal(s_run(f, unknown), 2);
    assert_non_null(strstr(f->errtext, "no topic 'gob/nada'"));
    assert_int_equal(s_run(f, no_config), 2);
    assert_int_equal(s_run(f, odd), 2);
    assert_non_null(strstr(f->errtext, "rows are 420 s apart"));
    assert_int_equal(s_run(f, missing), 2);
    assert_non_null(strstr(f->errtext, "cannot open"));
    s_write_config(f, "{ \"method\": \"magic\" }");
    assert_int_equal(s_run(f, topic), 2);
    assert_non_null(strstr(f->errtext, "teams.0.topics.0.spike.method"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backtest_burst_1min, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_backtest_daily_5min, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_backtest_weekly_1h, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_backtest_bad_rows, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_backtest_config_topic_and_errors, s_setup,
                                        s_teardown),
    };

    esc_log_init("test", ESC_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
