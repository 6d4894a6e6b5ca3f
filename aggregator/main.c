#define ESC_LOG_MODULE "main"
/* escucha-aggregator: counts classified posts per topic into Redis (minute, hour and day
 * buckets plus all-time totals) and raises spike alerts for the notifier. main only parses the
 * command line, loads and checks the config, sets up signals and hands over to aggregator.c
 * (docs/aggregator.md); --backtest replays a CSV series through the spike rule instead
 * (backtest.c) and needs neither Redis nor sockets. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"
#include "escucha/esc_sig.h"

#include "aggregator.h"
#include "backtest.h"
#include "config.h"

#define S_PROG "escucha-aggregator"

static void
s_usage(FILE *f)
{
    fprintf(f,
            "usage: " S_PROG " --config FILE [options]\n"
            "       " S_PROG " --backtest FILE.csv [--config FILE [--topic TEAM/TOPIC]]\n"
            "Counts classified posts per topic into Redis and sends spike alerts to the "
            "notifier.\n\n"
            "  --config FILE      deployment config (JSON)\n"
            "  --check-config     validate the config and exit (0 ok, 2 invalid)\n"
            "  --help-config      describe the aggregator's config keys\n"
            "  --dump-config      print the effective aggregator config\n"
            "  --log-level LEVEL  error|warn|info|debug (default info)\n"
            "  --backtest CSV     replay a timestamp,value series through the spike rule and\n"
            "                     print timestamp,value,expected,score,alert (- = stdin)\n"
            "  --topic TEAM/TOPIC with --backtest: that topic's rule instead of aggregator.spike\n"
            "  --help, --version\n");
}

/* --backtest: the rule of topic (or aggregator.spike, or the built-in defaults without a
 * config) over the series in path. Returns the exit code. */
static int
s_backtest(const char *path, const char *config_path, const char *topic)
{
    struct esc_error err;
    struct esc_cfg *cfg = NULL;
    struct agg_cfg ac;
    struct agg_spike_cfg rule;
    const struct esc_cfg_topic *t;
    FILE *in = stdin;
    int status = 2;

    memset(&err, 0, sizeof(err));
    memset(&ac, 0, sizeof(ac));
    agg_cfg_spike_defaults(&rule);
    if (config_path != NULL) {
        cfg = esc_cfg_load(config_path, &err);
        if (cfg == NULL || agg_cfg_load(cfg, &ac, &err) != ESC_OK) {
            esc_error_print(stderr, S_PROG, &err);
            goto out;
        }
        rule = ac.spike;
        if (topic != NULL) {
            t = esc_cfg_topic_find(cfg, topic);
            if (t == NULL) {
                fprintf(stderr, S_PROG ": %s: no topic '%s' (give it as team/topic)\n",
                        config_path, topic);
                goto out;
            }
            rule = ac.topic_spike[agg_cfg_topic_index(cfg, t)];
        }
    }
    if (strcmp(path, "-") != 0) {
        in = fopen(path, "r");
        if (in == NULL) {
            fprintf(stderr, S_PROG ": %s: cannot open: %s\n", path, strerror(errno));
            goto out;
        }
    }
    status = agg_backtest_run(in, path, stdout, stderr, &rule);
    if (in != stdin) {
        fclose(in);
    }
out:
    agg_cfg_fini(&ac);
    esc_cfg_free(&cfg);
    return status;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' }, { "check-config", no_argument, NULL, 'k' },
        { "help-config", no_argument, NULL, 'H' },  { "dump-config", no_argument, NULL, 'D' },
        { "log-level", required_argument, NULL, 'l' }, { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },      { "backtest", required_argument, NULL, 'b' },
        { "topic", required_argument, NULL, 't' },  { NULL, 0, NULL, 0 },
    };
    const char *config_path = NULL;
    const char *backtest_path = NULL;
    const char *topic = NULL;
    int check = 0;
    int dump = 0;
    int level = ESC_LOG_INFO;
    struct esc_error err;
    struct esc_cfg *cfg = NULL;
    struct agg_cfg ac;
    agg_t *agg = NULL;
    int sig_fd;
    int c;
    int status;

    memset(&err, 0, sizeof(err));
    memset(&ac, 0, sizeof(ac));
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'b':
            backtest_path = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'D':
            dump = 1;
            break;
        case 'H':
            agg_cfg_print_help(stdout);
            return 0;
        case 'l':
            level = esc_log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, S_PROG ": unknown log level '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        case 'V':
            printf(S_PROG " %s\n", ESC_VERSION);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind != argc || (backtest_path == NULL && (config_path == NULL || topic != NULL))
        || (backtest_path != NULL && topic != NULL && config_path == NULL)) {
        s_usage(stderr);
        return 2;
    }
    if (backtest_path != NULL) {
        esc_log_init("aggregator", (enum esc_log_level)level);
        return s_backtest(backtest_path, config_path, topic);
    }
    esc_log_init("aggregator", (enum esc_log_level)level);
    cfg = esc_cfg_load(config_path, &err);
    if (cfg == NULL || agg_cfg_load(cfg, &ac, &err) != ESC_OK
        || esc_bus_configure(cfg, &err) != ESC_OK) {
        esc_error_print(stderr, S_PROG, &err);
        agg_cfg_fini(&ac);
        esc_cfg_free(&cfg);
        return ESC_CFG_EXIT_INVALID;
    }
    if (check || dump) {
        if (dump) {
            agg_cfg_print_values(stdout, cfg, &ac);
        }
        else {
            printf("config ok\n");
        }
        agg_cfg_fini(&ac);
        esc_cfg_free(&cfg);
        return 0;
    }
    /* signals are blocked before the ZeroMQ context exists, so its threads inherit the mask */
    sig_fd = esc_sig_init();
    if (sig_fd < 0) {
        agg_cfg_fini(&ac);
        esc_cfg_free(&cfg);
        return 1;
    }
    agg = agg_new(cfg, &ac, sig_fd);
    status = agg != NULL ? agg_run(agg) : 1;
    agg_destroy(&agg);
    esc_bus_ctx_term();
    close(sig_fd);
    agg_cfg_fini(&ac);
    esc_cfg_free(&cfg);
    return status;
}
