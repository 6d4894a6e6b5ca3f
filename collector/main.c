#define ESC_LOG_MODULE "main"
/* escucha-collector: reads posts from the configured sources and pushes them to the broker
 * (docs/collector.md). This file only wires things up, in the order every escucha service
 * uses: arguments -> config -> log -> signals (blocked before the ZeroMQ context exists) ->
 * bus -> source plugins -> run -> teardown in reverse -> exit code (0 all delivered, 1 something
 * was lost or a source failed, 2 bad arguments or config). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "col_source.h"
#include "collector.h"
#include "net.h"

#include "escucha/esc_bus.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_sig.h"
#include "escucha/esc_util.h"

#define S_PROG "escucha-collector"
#define S_EXIT_USAGE 2
#define S_EXIT_SOFTWARE 70  /* the compiled-in plugin table is broken (EX_SOFTWARE) */
#define S_LINGER_MIN_MS 10  /* so a close can still tell "delivered" from "dropped" */

struct s_args {
    const char *config; /* --config FILE */
    int check;          /* --check-config */
    int help;           /* --help */
    int version;        /* --version */
    int help_config;    /* --help-config */
    int dump;           /* --dump-config */
    int once;           /* --once */
    int level;          /* --log-level, default info */
};

static void
s_usage(FILE *f)
{
    fprintf(f,
            "usage: " S_PROG " --config FILE [--once] [--log-level LEVEL]\n"
            "       " S_PROG " --config FILE --check-config | --dump-config\n"
            "       " S_PROG " --help | --help-config | --version\n"
            "\n"
            "Reads posts from the sources configured in FILE and pushes them to the broker\n"
            "(bus.collect).\n"
            "\n"
            "  -c, --config FILE    deployment config (JSON), required to run\n"
            "      --check-config   validate the whole config, print \"config ok\", exit 0 (2 if "
            "invalid)\n"
            "      --dump-config    print the effective collector and source settings\n"
            "      --help-config    print every collector and source setting with its default\n"
            "      --log-level L    error, warn, info (default), debug or trace\n"
            "      --once           exit when every source is done (exit_when_done=true)\n"
            "  -h, --help           this help\n"
            "  -V, --version        print the version\n");
}

static int
s_parse_args(int argc, char **argv, struct s_args *a)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", no_argument, NULL, 'k' },
        { "dump-config", no_argument, NULL, 'd' },
        { "help-config", no_argument, NULL, 'H' },
        { "log-level", required_argument, NULL, 'l' },
        { "once", no_argument, NULL, 'o' },
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
        case 'k':
            a->check = 1;
            break;
        case 'd':
            a->dump = 1;
            break;
        case 'H':
            a->help_config = 1;
            break;
        case 'l':
            a->level = esc_log_level_parse(optarg);
            if (a->level < 0) {
                fprintf(stderr, S_PROG ": --log-level: unknown level '%s'\n", optarg);
                return -1;
            }
            break;
        case 'o':
            a->once = 1;
            break;
        case 'h':
            a->help = 1;
            break;
        case 'V':
            a->version = 1;
            break;
        default:
            return -1; /* getopt printed why */
        }
    }
    if (optind < argc) {
        fprintf(stderr, S_PROG ": unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (a->config == NULL && !a->help && !a->version && !a->help_config) {
        fprintf(stderr, S_PROG ": --config FILE is required\n");
        return -1;
    }
    return 0;
}

/* `escucha-collector: <source>:<line>: <text>`, the line only when the error has one. */
static void
s_print_cfg_error(const struct esc_error *err)
{
    if (err->line > 0) {
        fprintf(stderr, S_PROG ": %s:%d: %s\n", err->source, err->line, err->text);
    }
    else {
        fprintf(stderr, S_PROG ": %s: %s\n", err->source, err->text);
    }
}

/* Loads the shared config, the collector section and every source section. Returns a
 * caller-owned config, or NULL after printing the error. */
static struct esc_cfg *
s_load(const char *path, int once, struct col_cfg *ccfg)
{
    struct esc_error err;
    struct esc_cfg *cfg;

    memset(&err, 0, sizeof(err));
    cfg = esc_cfg_load(path, &err);
    if (cfg == NULL || col_cfg_apply(cfg, ccfg, &err) != ESC_OK
        || col_sources_check(cfg, &err) != ESC_OK || esc_bus_configure(cfg, &err) != ESC_OK) {
        s_print_cfg_error(&err);
        esc_cfg_free(&cfg);
        return NULL;
    }
    if (once) {
        ccfg->exit_when_done = true;
    }
    return cfg;
}

/* Closes the bus with linger_ms and terminates the context. Returns 1 when every queued post
 * left before the linger ran out (the close returned early), 0 when some were dropped. */
static int
s_close_bus(esc_bus_t **bus_p, int64_t linger_ms)
{
    int64_t t0;

    if (linger_ms < S_LINGER_MIN_MS) {
        linger_ms = S_LINGER_MIN_MS;
    }
    t0 = esc_mono_ms();
    esc_bus_destroy(bus_p, (int)linger_ms);
    esc_bus_ctx_term();
    return esc_mono_ms() - t0 < linger_ms;
}

int
main(int argc, char **argv)
{
    struct s_args args;
    struct esc_error err;
    struct esc_cfg *cfg;
    struct col_cfg ccfg;
    struct col_stats st;
    esc_bus_t *bus;
    col_t *col;
    int64_t linger;
    int sig_fd;
    int delivered;
    esc_rc rc;

    if (s_parse_args(argc, argv, &args) != 0) {
        s_usage(stderr);
        return S_EXIT_USAGE;
    }
    if (args.help || args.version) {
        if (args.help) {
            s_usage(stdout);
        }
        else {
            printf(S_PROG " %s\n", ESC_VERSION);
        }
        return 0;
    }
    esc_log_init("collector", (enum esc_log_level)args.level);
    if (col_source_registry_check(&err) != 0) {
        esc_log_error("source plugin table is broken: %s", err.text);
        return S_EXIT_SOFTWARE;
    }
    if (args.help_config) {
        col_print_help_config(stdout);
        return 0;
    }
    cfg = s_load(args.config, args.once, &ccfg);
    if (cfg == NULL) {
        return ESC_CFG_EXIT_INVALID;
    }
    if (args.check || args.dump) {
        if (args.dump) {
            col_print_config(stdout, cfg, &ccfg);
        }
        else {
            printf("config ok\n");
        }
        esc_cfg_free(&cfg);
        return 0;
    }

    /* libcurl's global set-up is not thread-safe: before ZeroMQ starts its threads. */
    col_net_global_init();
    /* Signals are blocked before the first ZeroMQ call so its I/O threads inherit the mask. */
    sig_fd = esc_sig_init();
    if (sig_fd < 0) {
        col_net_global_cleanup();
        esc_cfg_free(&cfg);
        return 1;
    }
    if (esc_metrics_start("collector", ccfg.metrics_listen) < 0) {
        close(sig_fd);
        col_net_global_cleanup();
        esc_cfg_free(&cfg);
        return 1;
    }
    bus = esc_bus_new(ESC_BUS_PUSH, cfg->bus.collect, false, (int)cfg->bus.hwm);
    if (bus == NULL) {
        esc_metrics_shutdown();
        esc_bus_ctx_term();
        close(sig_fd);
        col_net_global_cleanup();
        esc_cfg_free(&cfg);
        return 1;
    }
    col = col_new(cfg, &ccfg, bus, sig_fd);
    if (col == NULL) {
        s_close_bus(&bus, 0);
        close(sig_fd);
        esc_metrics_shutdown();
        col_net_global_cleanup();
        esc_cfg_free(&cfg);
        return 1;
    }

    rc = col_run(col);

    col_get_stats(col, &st);
    linger = col_grace_left_ms(col);
    col_destroy(&col);
    delivered = s_close_bus(&bus, linger);
    close(sig_fd);
    esc_metrics_shutdown();
    col_net_global_cleanup();
    if (st.unsent > 0) {
        esc_log_error("posts not sent before the grace period ended count=%llu",
                      (unsigned long long)st.unsent);
    }
    if (st.failed > 0) {
        esc_log_error("sources failed count=%zu", st.failed);
    }
    if (!delivered) {
        esc_log_error("bus not drained within the grace period, queued posts were dropped "
                      "endpoint=%s", cfg->bus.collect);
    }
    esc_log_info("stopped sent=%llu skipped=%llu errors=%llu", (unsigned long long)st.sent,
                 (unsigned long long)st.skipped, (unsigned long long)st.errors);
    esc_cfg_free(&cfg);
    return rc == ESC_OK && st.unsent == 0 && st.failed == 0 && delivered ? 0 : 1;
}
