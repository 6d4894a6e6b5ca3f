#define ESC_LOG_MODULE "main"
/* escucha-notifier: delivers spike alerts from the bus to the teams' webhooks (daemon mode) and
 * builds a team's weekly digest e-mail on demand (--digest). Same shape as every service
 * (STYLE §8): arguments, config, log, signals blocked before the ZeroMQ context exists, run,
 * teardown in reverse, exit code (0 ok, 1 something undelivered or failed, 2 usage/config). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"
#include "escucha/esc_sig.h"
#include "escucha/esc_util.h"
#include "chart.h"
#include "ntf.h"
#include "schedule.h"
#include "sinks/sink.h"

struct s_args {
    const char *config;
    const char *digest;
    const char *period;
    const char *to_file;
    int force;
    int level;
    int check;
    int dump;
};

static void
s_usage(FILE *f)
{
    fprintf(f,
            "usage: escucha-notifier --config FILE [options]\n"
            "       escucha-notifier --config FILE --digest TEAM [--period PERIOD] "
            "[--to-file PATH | --force]\n"
            "\n"
            "Without --digest: receive alerts on bus.notify and deliver them to the teams'\n"
            "hooks, and send the scheduled digests, until SIGTERM. With --digest: send the\n"
            "digest of TEAM now over SMTP (notifier.smtp_url) or to the outbox, once per period\n"
            "(unless --force), or preview it into --to-file.\n"
            "\n"
            "  -c, --config FILE      deployment file (JSON)\n"
            "      --check-config     validate the config and exit\n"
            "      --dump-config      print the effective notifier settings and exit\n"
            "      --help-config      document the \"notifier\" section and exit\n"
            "      --log-level LEVEL  error, warn, info (default), debug or trace\n"
            "      --digest TEAM      build the digest of team TEAM\n"
            "      --period PERIOD    2026-11-19 (day), 2026-W47 (ISO week) or 2026-11 (month);\n"
            "                         default: the last complete period of the team's schedule\n"
            "      --to-file PATH     preview: write the message to PATH, send nothing\n"
            "      --force            send even if this period's digest was already sent\n"
            "  -h, --help             this help\n"
            "  -V, --version          print the version\n");
}

/* Returns -1 to go on, else the exit code. */
static int
s_parse_args(int argc, char **argv, struct s_args *a)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", no_argument, NULL, 'C' },
        { "dump-config", no_argument, NULL, 'D' },
        { "help-config", no_argument, NULL, 'H' },
        { "log-level", required_argument, NULL, 'l' },
        { "digest", required_argument, NULL, 'd' },
        { "period", required_argument, NULL, 'p' },
        { "to-file", required_argument, NULL, 'o' },
        { "force", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    memset(a, 0, sizeof(*a));
    a->level = ESC_LOG_INFO;
    for (;;) {
        c = getopt_long(argc, argv, "c:hV", opts, NULL);
        if (c == -1) {
            break;
        }
        switch (c) {
        case 'c':
            a->config = optarg;
            break;
        case 'C':
            a->check = 1;
            break;
        case 'D':
            a->dump = 1;
            break;
        case 'H':
            printf("notifier section (\"notifier\": { ... }):\n");
            esc_cfg_print_help(stdout, "notifier", ntf_cfg_map);
            printf("\ndigest schedule (\"notifier\": {\"digest\": {\"default\": { ... }, "
                   "\"<team id>\": { ... }}}):\n");
            esc_cfg_print_help(stdout, "notifier.digest.default", ntf_sched_cfg_map);
            printf("\nalert hook options (\"teams\": [{\"webhooks\": [{\"url\": ..., ... }]}], "
                   "besides url, secret_env, secret_file):\n");
            esc_cfg_print_help(stdout, "teams.N.webhooks.M", ntf_hook_cfg_map);
            return NTF_EXIT_OK;
        case 'l':
            a->level = esc_log_level_parse(optarg);
            if (a->level < 0) {
                fprintf(stderr, "escucha-notifier: unknown log level '%s'\n", optarg);
                return NTF_EXIT_USAGE;
            }
            break;
        case 'd':
            a->digest = optarg;
            break;
        case 'p':
            a->period = optarg;
            break;
        case 'o':
            a->to_file = optarg;
            break;
        case 'f':
            a->force = 1;
            break;
        case 'h':
            s_usage(stdout);
            return NTF_EXIT_OK;
        case 'V':
            printf("escucha-notifier %s\n", ESC_VERSION);
            return NTF_EXIT_OK;
        default:
            s_usage(stderr);
            return NTF_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "escucha-notifier: unexpected argument '%s'\n", argv[optind]);
        return NTF_EXIT_USAGE;
    }
    if (a->config == NULL) {
        fprintf(stderr, "escucha-notifier: --config FILE is required\n");
        return NTF_EXIT_USAGE;
    }
    if (a->digest == NULL && (a->period != NULL || a->to_file != NULL || a->force)) {
        fprintf(stderr, "escucha-notifier: --period, --to-file and --force need --digest TEAM\n");
        return NTF_EXIT_USAGE;
    }
    if (a->to_file != NULL && a->force) {
        fprintf(stderr, "escucha-notifier: --to-file previews and sends nothing: no --force\n");
        return NTF_EXIT_USAGE;
    }
    return -1;
}

static int
s_config_error(const struct esc_error *err)
{
    esc_error_print(stderr, "escucha-notifier", err);
    return ESC_CFG_EXIT_INVALID;
}

int
main(int argc, char **argv)
{
    struct esc_cfg *cfg = NULL;
    struct esc_error err;
    struct ntf_cfg ncfg;
    struct s_args a;
    int code;
    int sig_fd;

    code = s_parse_args(argc, argv, &a);
    if (code >= 0) {
        return code;
    }
    esc_log_init("notifier", (enum esc_log_level)a.level);
    ESC_ASSERT(ntf_sink_registry_check() == 0);
    cfg = esc_cfg_load(a.config, &err);
    if (cfg == NULL) {
        return s_config_error(&err);
    }
    memset(&err, 0, sizeof(err));
    esc_strlcpy(err.source, a.config, sizeof(err.source));
    if (ntf_cfg_load(cfg, &ncfg, &err) != ESC_OK || esc_bus_configure(cfg, &err) != ESC_OK) {
        esc_cfg_free(&cfg);
        return s_config_error(&err);
    }
    if (a.check) {
        printf("config ok\n");
        esc_cfg_free(&cfg);
        return NTF_EXIT_OK;
    }
    if (a.dump) {
        printf("bus.notify = \"%s\"\nredis.prefix = \"%s\"\n", cfg->bus.notify,
               cfg->redis.prefix);
        esc_cfg_print_values(stdout, "notifier", ntf_cfg_map, &ncfg);
        ntf_sched_print(stdout, cfg);
        esc_cfg_free(&cfg);
        return NTF_EXIT_OK;
    }
    if (sodium_init() < 0) {
        esc_log_error("libsodium could not be initialised");
        esc_cfg_free(&cfg);
        return NTF_EXIT_FAIL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        esc_log_error("libcurl could not be initialised");
        esc_cfg_free(&cfg);
        return NTF_EXIT_FAIL;
    }
    if (a.digest != NULL) {
        signal(SIGPIPE, SIG_IGN);
        code = ntf_digest_main(cfg, &ncfg, a.digest, a.period, a.to_file, a.force);
    }
    else {
        /* before the first ZeroMQ socket: its I/O threads inherit the blocked mask */
        sig_fd = esc_sig_init();
        if (sig_fd < 0) {
            code = NTF_EXIT_FAIL;
        }
        else {
            code = ntf_daemon_main(cfg, &ncfg, sig_fd);
            esc_bus_ctx_term();
            close(sig_fd);
        }
    }
    curl_global_cleanup();
    ntf_chart_cleanup(); /* font caches of the digest charts */
    esc_cfg_free(&cfg);
    return code;
}
