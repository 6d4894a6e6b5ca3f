#define ESC_LOG_MODULE "test"
/* Tests of the child processes of `escucha up`: the restart backoff (1 s doubling to 30 s,
 * reset after 60 s up, "crashing" after 3 quick exits), the environment a child gets, a child
 * started into its own process group with its output in a log, running a command with its
 * output captured, and describing how a child ended. Uses /bin/sh as the child. */
#include <setjmp.h>
#include <signal.h>
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

#include "child.h"

static void
test_child_backoff_doubles_to_cap(void **state)
{
    static const int64_t want[] = { 1000, 2000, 4000, 8000, 16000, 30000, 30000 };
    struct cli_backoff b;
    size_t i;

    (void)state;
    memset(&b, 0, sizeof(b));
    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(cli_backoff_next(&b, 500), want[i]);
        assert_int_equal(cli_backoff_crashing(&b), i + 1 >= CLI_BACKOFF_CRASHING);
    }
}

static void
test_child_backoff_resets_after_a_minute_up(void **state)
{
    struct cli_backoff b;

    (void)state;
    memset(&b, 0, sizeof(b));
    assert_int_equal(cli_backoff_next(&b, 100), 1000);
    assert_int_equal(cli_backoff_next(&b, 59999), 2000); /* not quite a minute */
    assert_int_equal(cli_backoff_next(&b, 100), 4000);
    assert_true(cli_backoff_crashing(&b));
    assert_int_equal(cli_backoff_next(&b, 60000), 1000); /* stayed up a minute */
    assert_false(cli_backoff_crashing(&b));
    assert_int_equal(cli_backoff_next(&b, 10), 2000);
}

static void
test_child_env_overrides(void **state)
{
    char *base[] = { "PATH=/usr/bin", "ESC_REDIS_UNIX_SOCKET=/old.sock", "HOME=/root", "FLAG",
                     NULL };
    const char *ov[] = { "ESC_REDIS_UNIX_SOCKET=/run/r.sock", "ESC_BROKER_METRICS_LISTEN=a:1",
                         "ESC_BROKER_METRICS_LISTEN=a:2", "ESC_REDIS_PASSWORD_ENV=" };
    char **env;

    (void)state;
    env = cli_env_build(base, ov, 4);
    assert_string_equal(env[0], "PATH=/usr/bin");
    assert_string_equal(env[1], "HOME=/root");
    assert_string_equal(env[2], "FLAG");
    assert_string_equal(env[3], "ESC_REDIS_UNIX_SOCKET=/run/r.sock");
    assert_string_equal(env[4], "ESC_BROKER_METRICS_LISTEN=a:2");
    assert_string_equal(env[5], "ESC_REDIS_PASSWORD_ENV=");
    assert_null(env[6]);
    cli_env_free(&env);
    assert_null(env);
    env = cli_env_build(NULL, NULL, 0);
    assert_null(env[0]);
    cli_env_free(&env);
}

static void
test_child_spawn_log_and_group(void **state)
{
    char dir[] = "/tmp/escucha-child-test-XXXXXX";
    char log[128];
    char last[64];
    char how[64];
    char *argv[] = { "/bin/sh", "-c", "echo first; echo \"$ESC_X\" >&2; sleep 5", NULL };
    char *envp[] = { "ESC_X=last line", NULL };
    struct cli_spawn sp = { "/bin/sh", argv, envp, log, true };
    int status;
    int i;
    pid_t pid;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(log, sizeof(log), "%s/sh.log", dir);
    pid = cli_spawn(&sp);
    assert_true(pid > 0);
    /* its own process group: a terminal's Ctrl-C does not reach it */
    for (i = 0; i < 100 && getpgid(pid) != pid; i++) {
        usleep(10000);
    }
    assert_int_equal(getpgid(pid), pid);
    for (i = 0; i < 200; i++) {
        cli_log_last_line(log, last, sizeof(last));
        if (strcmp(last, "last line") == 0) {
            break;
        }
        usleep(10000);
    }
    assert_string_equal(last, "last line");
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    cli_wait_describe(status, how, sizeof(how));
    assert_string_equal(how, "killed by signal KILL");
    /* appending keeps what the earlier life wrote */
    sp.truncate = false;
    argv[2] = "echo again; exit 3";
    pid = cli_spawn(&sp);
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    cli_wait_describe(status, how, sizeof(how));
    assert_string_equal(how, "exit status 3");
    cli_log_last_line(log, last, sizeof(last));
    assert_string_equal(last, "again");
    unlink(log);
    cli_log_last_line(log, last, sizeof(last));
    assert_string_equal(last, "");
    rmdir(dir);
}

static void
test_child_run_capture(void **state)
{
    char *argv[] = { "/bin/sh", "-c", "echo out; echo err >&2; exit 2", NULL };
    char *envp[] = { NULL };
    char out[64];
    char tiny[4];

    (void)state;
    assert_int_equal(cli_run_capture("/bin/sh", argv, envp, out, sizeof(out)), 2);
    assert_string_equal(out, "out\nerr\n");
    argv[2] = "echo 0123456789; kill -TERM $$";
    assert_int_equal(cli_run_capture("/bin/sh", argv, envp, tiny, sizeof(tiny)), 128 + SIGTERM);
    assert_string_equal(tiny, "012");
    /* a program that does not exist: the child says so and exits 127 */
    assert_int_equal(cli_run_capture("/nonexistent/escucha-x", argv, envp, out, sizeof(out)),
                     127);
    assert_non_null(strstr(out, "cannot execute /nonexistent/escucha-x"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_child_backoff_doubles_to_cap),
        cmocka_unit_test(test_child_backoff_resets_after_a_minute_up),
        cmocka_unit_test(test_child_env_overrides),
        cmocka_unit_test(test_child_spawn_log_and_group),
        cmocka_unit_test(test_child_run_capture),
    };

    esc_log_init("test", ESC_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
