#define ESC_LOG_MODULE "main"
/* escucha: the one command for running escucha on one machine. `escucha up CONFIG` starts a
 * private Redis when needed and every service in dependency order, restarts those that die,
 * shows a live status and stops everything cleanly on Ctrl-C (up.c). This file only parses
 * the command line; docs/operations.md, "One command: escucha up", is the user documentation. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "escucha/esc_log.h"
#include "escucha/esc_util.h"

#include "up.h"

static void
s_usage(FILE *f)
{
    fprintf(f,
            "Usage: escucha up CONFIG [options]\n"
            "  or:  escucha --help | --version\n"
            "Starts and supervises the whole escucha pipeline on this machine: a private\n"
            "redis-server unless the config names a Redis that answers, then escucha-notifier,\n"
            "escucha-aggregator, N escucha-classifier, escucha-broker, escucha-api (when the\n"
            "config has an \"api\" section) and escucha-collector. A service that dies is\n"
            "started again (1 s backoff doubling to 30 s); a live status shows each process,\n"
            "posts per second per stage, backlogs and alerts. Ctrl-C stops everything,\n"
            "upstream first, so the pipeline drains; a second Ctrl-C kills at once.\n"
            "\n"
            "Options of up:\n"
            "  --classifiers N     number of classifiers (default 1, at most %d)\n"
            "  --bin-dir DIR       where the escucha-* binaries are (default: the directory of\n"
            "                      escucha, or the build tree around it)\n"
            "  --run-dir DIR       logs (<process>.log), the private Redis socket, up.env\n"
            "                      (default ./escucha-run)\n"
            "  --no-status         no live status (events are still logged on stderr)\n"
            "  --redis MODE        auto: the configured Redis when the config names one and it\n"
            "                      answers, else a private one (default); config: only the\n"
            "                      configured one; private: always a private one\n"
            "  --redis-persist     the private Redis keeps an append-only file in the run dir\n"
            "  --stop-timeout SEC  how long each stage may take to stop before it is killed\n"
            "                      (default 30)\n"
            "  --log-level LEVEL   error|warn|info|debug (default info)\n"
            "  --help, --version\n"
            "\n"
            "Exit status: 0 after a clean stop, 1 when something could not start or had to be\n"
            "killed, 2 when the config is invalid or the arguments are wrong.\n",
            CLI_UP_CLASSIFIERS_MAX);
}

static int
s_up(int argc, char **argv)
{
    static const struct option opts[] = {
        { "classifiers", required_argument, NULL, 'n' },
        { "bin-dir", required_argument, NULL, 'b' },
        { "run-dir", required_argument, NULL, 'r' },
        { "no-status", no_argument, NULL, 'q' },
        { "redis", required_argument, NULL, 'R' },
        { "redis-persist", no_argument, NULL, 'P' },
        { "stop-timeout", required_argument, NULL, 't' },
        { "log-level", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct cli_up_opts o;
    int level = ESC_LOG_INFO;
    int64_t v;
    int c;
    int rc;

    memset(&o, 0, sizeof(o));
    o.classifiers = 1;
    o.run_dir = "escucha-run";
    o.redis = CLI_REDIS_AUTO;
    o.stop_timeout_ms = 30000;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (esc_parse_i64(optarg, 1, CLI_UP_CLASSIFIERS_MAX, &v) != 0) {
                fprintf(stderr, "escucha: --classifiers: want a number from 1 to %d\n",
                        CLI_UP_CLASSIFIERS_MAX);
                return 2;
            }
            o.classifiers = (int)v;
            break;
        case 'b':
            o.bin_dir = optarg;
            break;
        case 'r':
            o.run_dir = optarg;
            break;
        case 'q':
            o.no_status = true;
            break;
        case 'R':
            if (strcmp(optarg, "auto") == 0) {
                o.redis = CLI_REDIS_AUTO;
            }
            else if (strcmp(optarg, "config") == 0) {
                o.redis = CLI_REDIS_CONFIG;
            }
            else if (strcmp(optarg, "private") == 0) {
                o.redis = CLI_REDIS_PRIVATE;
            }
            else {
                fprintf(stderr, "escucha: --redis: want auto, config or private\n");
                return 2;
            }
            break;
        case 'P':
            o.redis_persist = true;
            break;
        case 't':
            if (esc_parse_i64(optarg, 1, 3600, &v) != 0) {
                fprintf(stderr, "escucha: --stop-timeout: want seconds from 1 to 3600\n");
                return 2;
            }
            o.stop_timeout_ms = v * 1000;
            break;
        case 'l':
            level = esc_log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, "escucha: unknown log level '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "escucha: up wants exactly one CONFIG file\n");
        s_usage(stderr);
        return 2;
    }
    o.config = argv[optind];
    esc_log_init("up", (enum esc_log_level)level);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "escucha: libcurl could not be initialised\n");
        return 1;
    }
    rc = cli_up_run(&o);
    curl_global_cleanup();
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "up") == 0) {
        return s_up(argc - 1, argv + 1);
    }
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        s_usage(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("escucha %s\n", ESC_VERSION);
        return 0;
    }
    s_usage(stderr);
    return 2;
}
