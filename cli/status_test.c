#define ESC_LOG_MODULE "test"
/* Tests of the status of `escucha up`: the one-line form (what is up, restarts, posts per
 * second per stage, backlogs, alerts; "-" for figures not known yet) and the terminal block
 * (cut to the width, events dropped first when the terminal is short). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "status.h"

static void
s_view(struct cli_view *v)
{
    static const char *const names[] = { "redis", "notifier", "aggregator", "classifier1",
                                         "classifier2", "broker", "collector" };
    size_t i;

    memset(v, 0, sizeof(*v));
    snprintf(v->deployment, sizeof(v->deployment), "demo");
    snprintf(v->run_dir, sizeof(v->run_dir), "/tmp/run");
    snprintf(v->redis, sizeof(v->redis), "private redis-server, unix socket /tmp/run/redis.sock");
    v->up_ms = 83000;
    v->n_procs = sizeof(names) / sizeof(names[0]);
    for (i = 0; i < v->n_procs; i++) {
        snprintf(v->procs[i].name, sizeof(v->procs[i].name), "%s", names[i]);
        v->procs[i].state = CLI_P_UP;
        v->procs[i].pid = 1000 + (int)i;
        v->procs[i].since_ms = 80000;
        snprintf(v->procs[i].where, sizeof(v->procs[i].where), "127.0.0.1:%d", 40000 + (int)i);
    }
    v->procs[4].state = CLI_P_BACKOFF;
    v->procs[4].pid = 0;
    v->procs[4].restarts = 3;
    v->procs[4].crashing = true;
    v->procs[4].since_ms = 4000;
    snprintf(v->procs[4].why, sizeof(v->procs[4].why), "exit status 1: bind failed");
    v->collected = 12000;
    v->collected_rate = 200;
    v->brokered = 11990;
    v->brokered_rate = 199.5;
    v->classified_in_rate = 199.5;
    v->classified = 11980;
    v->classified_rate = 199;
    v->agg_in_rate = 199;
    v->counted = 11900;
    v->counted_rate = 198.25;
    v->backlog_broker = 10;
    v->backlog_classifiers = 0;
    v->backlog_aggregator = -3; /* counters of different scrapes: never shown below 0 */
    v->pending_redis = 80;
    v->alerts_raised = 1;
    v->alerts_received = 1;
    v->alerts_sent = 1;
    v->alerts_queued = 0;
    v->alerts_failed = NAN;
    v->n_events = 2;
    snprintf(v->events[0], sizeof(v->events[0]), "12:00:01 all 7 processes started");
    snprintf(v->events[1], sizeof(v->events[1]), "12:00:09 classifier2 died (exit status 1)");
}

static void
test_status_line(void **state)
{
    static struct cli_view v;
    char line[2048];
    size_t len;

    (void)state;
    s_view(&v);
    len = cli_status_line(&v, line, sizeof(line));
    assert_int_equal(len, strlen(line));
    assert_null(strchr(line, '\n'));
    assert_string_equal(
        line, "[1m23s] 6/7 up (classifier2 restarting, crashing), restarts: classifier2 3"
              " | posts/s: collected 200.0, brokered 199.5, classified 199.0, counted 198.2"
              " | backlog: broker 10, classifiers 0, aggregator 0, redis 80"
              " | counted 11900 | alerts: raised 1, sent 1, queued 0, failed -");
}

static void
test_status_line_unknown_and_cut(void **state)
{
    static struct cli_view v;
    char line[2048];
    char tiny[16];

    (void)state;
    s_view(&v);
    v.collected_rate = NAN;
    v.stopping = true;
    cli_status_line(&v, line, sizeof(line));
    assert_non_null(strstr(line, "stopping, 6/7 up"));
    assert_non_null(strstr(line, "posts/s: collected -, brokered 199.5"));
    assert_true(cli_status_line(&v, tiny, sizeof(tiny)) < sizeof(tiny));
    assert_string_equal(tiny, "[1m23s] stoppin");
}

static void
test_status_block(void **state)
{
    static struct cli_view v;
    static char out[16384];
    const char *line;
    int n;
    int counted = 0;

    (void)state;
    s_view(&v);
    n = cli_status_block(&v, 200, 60, out, sizeof(out));
    assert_non_null(strstr(out, "escucha up - demo - up 1m23s - Ctrl-C stops everything\n"));
    assert_non_null(strstr(out, "redis: private redis-server, unix socket /tmp/run/redis.sock\n"));
    assert_non_null(strstr(out, "logs: /tmp/run/<process>.log\n"));
    assert_non_null(strstr(out, "classifier2   restarting        -   in 4s        3  "
                                "CRASHING: exit status 1: bind failed\n"));
    assert_non_null(strstr(out, "broker        up             1005   1m20s        0  "
                                "127.0.0.1:40005\n"));
    assert_non_null(strstr(out, "collector             -     200.0        12000         -\n"));
    assert_non_null(strstr(out, "aggregator        199.0     198.2        11900         0 "
                                "(+80 waiting for redis)\n"));
    assert_non_null(strstr(out, "alerts: raised 1, received by the notifier 1, sent 1, "
                                "queued 0, failed -\n"));
    assert_non_null(strstr(out, "  12:00:09 classifier2 died (exit status 1)\n"));
    for (line = out; *line != '\0'; line++) {
        counted += *line == '\n';
    }
    assert_int_equal(counted, n);
    assert_int_equal(n, 23);
}

static void
test_status_block_fits_the_terminal(void **state)
{
    static struct cli_view v;
    static char out[16384];
    const char *p;
    int n;
    int lines = 0;

    (void)state;
    s_view(&v);
    n = cli_status_block(&v, 40, 21, out, sizeof(out));
    assert_true(n <= 20);
    assert_null(strstr(out, "recent:")); /* no room for the events */
    for (p = out; *p != '\0';) {
        const char *nl = strchr(p, '\n');

        assert_non_null(nl);
        assert_true(nl - p <= 39);
        lines++;
        p = nl + 1;
    }
    assert_int_equal(lines, n);
    n = cli_status_block(&v, 40, 5, out, sizeof(out));
    assert_int_equal(n, 4);
}

static void
test_status_duration(void **state)
{
    char b[16];

    (void)state;
    assert_string_equal(cli_fmt_duration(-5, b, sizeof(b)), "0s");
    assert_string_equal(cli_fmt_duration(59999, b, sizeof(b)), "59s");
    assert_string_equal(cli_fmt_duration(185000, b, sizeof(b)), "3m05s");
    assert_string_equal(cli_fmt_duration(7380000, b, sizeof(b)), "2h03m");
    assert_string_equal(cli_fmt_duration(273600000, b, sizeof(b)), "3d04h");
    assert_string_equal(cli_pstate_name(CLI_P_BACKOFF), "restarting");
    assert_string_equal(cli_pstate_name((enum cli_pstate)99), "?");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_line),
        cmocka_unit_test(test_status_line_unknown_and_cut),
        cmocka_unit_test(test_status_block),
        cmocka_unit_test(test_status_block_fits_the_terminal),
        cmocka_unit_test(test_status_duration),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
