#define ESC_LOG_MODULE "main"
/* escucha-api: the teams' read API, topic editing, live stream and web dashboard over the
 * aggregator's Redis keys (docs/api.md, docs/dashboard.md). main parses the command line,
 * loads and checks the config, blocks signals (so the HTTP and subscriber threads never take
 * one), starts the live hub, the Redis subscriber thread and the HTTP server, then waits on
 * the signalfd. Stopping: the hub is closed first (live streams end), then the HTTP server
 * stops (open requests finish), then the subscriber. --hash-token and --new-token help write
 * the tokens section. */
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_sig.h"
#include "escucha/esc_util.h"

#include "config.h"
#include "hub.h"
#include "live_sub.h"
#include "server.h"

#define S_PROG "escucha-api"
#define S_TOKEN_MIN 16
#define S_HEALTH_MS 5000 /* how often the metrics port's /healthz is refreshed (Redis PING) */

static void
s_usage(FILE *f)
{
    fprintf(f,
            "usage: " S_PROG " --config FILE [options]\n"
            "Serves the teams' API (/api/v1), feeds, live stream and web dashboard over the\n"
            "counters in Redis.\n\n"
            "  --config FILE      deployment config (JSON)\n"
            "  --check-config     validate the config (and the tokens) and exit (0 ok, 2 bad)\n"
            "  --help-config      describe the api section's keys\n"
            "  --dump-config      print the effective api config (token names, never hashes)\n"
            "  --hash-token       read a token on stdin, print its sha256 for api.tokens\n"
            "  --new-token        print a new random token and its sha256\n"
            "  --log-level LEVEL  error|warn|info|debug (default info)\n"
            "  --help, --version\n");
}

static int
s_hash_token(void)
{
    char line[4096];
    char hex[2 * API_TOKEN_HASH_LEN + 1];
    size_t n;

    if (fgets(line, sizeof(line), stdin) == NULL) {
        fprintf(stderr, S_PROG ": --hash-token: no token on stdin\n");
        return 2;
    }
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }
    if (n == 0) {
        fprintf(stderr, S_PROG ": --hash-token: the token is empty\n");
        return 2;
    }
    if (n < S_TOKEN_MIN) {
        fprintf(stderr, S_PROG ": warning: a token should have at least 32 random characters "
                        "(--new-token makes one)\n");
    }
    printf("%s\n", api_token_hash_hex(line, n, hex, sizeof(hex)));
    sodium_memzero(line, sizeof(line));
    return fflush(stdout) == 0 ? 0 : 1;
}

static int
s_new_token(void)
{
    unsigned char raw[24];
    char tok[64];
    char hex[2 * API_TOKEN_HASH_LEN + 1];

    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(tok, sizeof(tok), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    printf("token:  %s\nsha256: %s\n", tok, api_token_hash_hex(tok, strlen(tok), hex, sizeof(hex)));
    sodium_memzero(tok, sizeof(tok));
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Serves until the first SIGTERM/SIGINT. Returns the exit code. */
static int
s_serve(const struct esc_cfg *cfg, const struct api_cfg *ac, int sig_fd)
{
    struct esc_kv_opts ko;
    struct esc_drain drain;
    char *password = NULL;
    api_hub_t *hub;
    api_live_sub_t *sub;
    api_srv_t *srv;
    int64_t next_ping_ms = 0;
    int status = 0;

    memset(&drain, 0, sizeof(drain));
    esc_cfg_kv_opts(cfg, &ko, &password);
    hub = api_hub_new(cfg->n_teams, (size_t)ac->live_keep);
    if (esc_metrics_start("api", ac->metrics_listen) != 0) {
        api_hub_destroy(&hub);
        esc_free(password);
        return 1;
    }
    srv = api_srv_new(cfg, ac, &ko, hub);
    sub = srv != NULL ? api_live_sub_start(&ko, cfg, hub) : NULL;
    if (password != NULL) {
        sodium_memzero(password, strlen(password));
        ESC_FREE(password);
    }
    if (srv == NULL || sub == NULL) {
        api_srv_destroy(&srv);
        api_hub_destroy(&hub);
        esc_metrics_shutdown();
        return 1;
    }
    esc_log_info("listening url=http://%s:%d/ teams=%zu tokens=%zu web_root=%s validator=%s",
                 strncmp(ac->listen, ":", 1) == 0 ? "0.0.0.0" : "127.0.0.1", api_srv_port(srv),
                 cfg->n_teams, ac->n_tokens, ac->web_root[0] != '\0' ? ac->web_root : "(none)",
                 ac->validator[0] != '\0' ? ac->validator : "(none)");
    esc_metrics_set_health(api_srv_ping(srv), "redis unreachable");
    while (!drain.draining) {
        struct pollfd p = { sig_fd, POLLIN, 0 };
        int64_t now = esc_mono_ms();

        if (now >= next_ping_ms) {
            /* the metrics port's /healthz says what the API's own /healthz says */
            esc_metrics_set_health(api_srv_ping(srv), "redis unreachable");
            next_ping_ms = now + S_HEALTH_MS;
        }

        if (poll(&p, 1, 1000) > 0) {
            esc_sig_handle(sig_fd, &drain, ac->grace_ms);
            if (drain.reload) {
                esc_log_info("SIGHUP ignored (restart to apply a new config)");
                drain.reload = 0;
            }
        }
    }
    esc_log_info("stopping streams=%d", api_srv_streams(srv));
    api_hub_close(hub);
    api_srv_destroy(&srv);
    api_live_sub_stop(&sub);
    api_hub_destroy(&hub);
    esc_metrics_shutdown();
    esc_log_info("stopped");
    return status;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", no_argument, NULL, 'k' },
        { "help-config", no_argument, NULL, 'H' },
        { "dump-config", no_argument, NULL, 'D' },
        { "hash-token", no_argument, NULL, 'T' },
        { "new-token", no_argument, NULL, 'N' },
        { "log-level", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL;
    int check = 0;
    int dump = 0;
    int level = ESC_LOG_INFO;
    struct esc_error err;
    struct esc_cfg *cfg = NULL;
    struct api_cfg ac;
    int sig_fd;
    int status = 2;
    int o;

    memset(&ac, 0, sizeof(ac));
    if (sodium_init() < 0) {
        fprintf(stderr, S_PROG ": libsodium failed to initialise\n");
        return 1;
    }
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'D':
            dump = 1;
            break;
        case 'H':
            api_cfg_print_help(stdout);
            return 0;
        case 'T':
            return s_hash_token();
        case 'N':
            return s_new_token();
        case 'l':
            level = esc_log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, S_PROG ": --log-level: expected error|warn|info|debug\n");
                return 2;
            }
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        case 'V':
            printf(S_PROG " " ESC_VERSION "\n");
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (config == NULL || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    esc_log_init("api", (enum esc_log_level)level);
    memset(&err, 0, sizeof(err));
    cfg = esc_cfg_load(config, &err);
    if (cfg == NULL || api_cfg_load(cfg, &ac, &err) != ESC_OK) {
        esc_error_print(stderr, S_PROG, &err);
        goto out;
    }
    if (check) {
        printf("config ok\n");
        status = 0;
        goto out;
    }
    if (dump) {
        api_cfg_print_values(stdout, &ac);
        status = 0;
        goto out;
    }
    if (ac.n_tokens == 0) {
        esc_log_warn("no tokens configured: every API request will be refused");
    }
    sig_fd = esc_sig_init();
    if (sig_fd < 0) {
        status = 1;
        goto out;
    }
    status = s_serve(cfg, &ac, sig_fd);
    close(sig_fd);
out:
    api_cfg_fini(&ac);
    esc_cfg_free(&cfg);
    return status;
}
