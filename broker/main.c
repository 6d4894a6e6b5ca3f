#define ESC_LOG_MODULE "broker"
/* escucha-broker: the stage between collectors and classifiers. It binds bus.collect (PULL,
 * every collector connects) and bus.classify (PUSH, every classifier connects) and forwards
 * frames one by one, so N collectors and M classifiers on any hosts meet at one well-known
 * address and ZeroMQ load-balances posts over the classifiers. It never decodes a post (of a
 * batch frame it reads the header, to count the posts in it). When no
 * classifier can take more (all high-water marks reached) it stops reading its intake, and the
 * collectors' sends block in turn: backpressure instead of loss. With bus.ack and bus.ack_pub set
 * it also carries the aggregators' acknowledgements back to the collectors (docs/delivery.md):
 * PULL on bus.ack, PUB on bus.ack_pub, frames forwarded as they are; the PUB socket filters by
 * each collector's subscription and never blocks (an ack it drops only causes a redelivery).
 * Single-threaded; signals come through a signalfd. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_sig.h"
#include "escucha/esc_util.h"

struct brk_cfg {
    int64_t grace_ms;       /* how long a drain may take */
    int64_t drain_quiet_ms; /* drain ends once intake has been quiet this long */
    char metrics_listen[64]; /* /metrics and /healthz address, "" = off */
};

static const struct esc_cfg_entry brk_cfg_map[] = {
    ESC_CFG_INT("grace_ms", "5000", 0, 600000, struct brk_cfg, grace_ms,
                "on SIGTERM, how long to keep forwarding what is in flight"),
    ESC_CFG_INT("drain_quiet_ms", "300", 10, 60000, struct brk_cfg, drain_quiet_ms,
                "on SIGTERM, stop once the intake has been quiet this long"),
    ESC_CFG_METRICS(struct brk_cfg, metrics_listen),
    ESC_CFG_END,
};

struct brk {
    const struct esc_cfg *cfg;
    struct brk_cfg bc;
    esc_bus_t *in;           /* PULL, bound to bus.collect */
    esc_bus_t *out;          /* PUSH, bound to bus.classify */
    esc_bus_t *ack_in;       /* PULL, bound to bus.ack; NULL when acks are off */
    esc_bus_t *ack_out;      /* PUB, bound to bus.ack_pub */
    uint64_t acks;           /* ack frames forwarded */
    int sig_fd;
    struct esc_drain drain;
    uint64_t forwarded;
    int64_t last_in_ms;      /* monotonic time of the last frame taken in */
    esc_metric_t *m_forwarded; /* escucha_broker_forwarded_total */
    esc_metric_t *m_blocked;   /* escucha_broker_blocked_total: turns with no classifier ready */
    esc_metric_t *m_acks;      /* escucha_broker_acks_total */
};

static void
s_usage(FILE *f)
{
    fprintf(f,
            "usage: escucha-broker --config FILE [options]\n"
            "Forwards posts from every collector (bus.collect) to every classifier "
            "(bus.classify).\n\n"
            "  --config FILE      deployment config (JSON)\n"
            "  --check-config     validate the config and exit (0 ok, 2 invalid)\n"
            "  --help-config      describe the broker's config keys\n"
            "  --dump-config      print the effective broker config\n"
            "  --log-level LEVEL  error|warn|info|debug (default info)\n"
            "  --curve-keygen FILE  write a new CURVE secret key to FILE (mode 600) and print\n"
            "                     its public key (docs/security.md)\n"
            "  --curve-public FILE  print the public key of the secret key in FILE\n"
            "  --help, --version\n");
}

/* Moves at most `budget` frames from in to out without blocking. Returns frames moved. */
/* Posts in a frame, for the counters: the count a batch frame announces (esc_batch_open reads
 * its header only), else 1. */
static uint64_t
s_posts_in(const void *buf, size_t len)
{
    struct esc_batch_iter it;

    if (esc_batch_open(&it, buf, len, NULL) == ESC_OK && it.batch && !it.broken) {
        return it.count;
    }
    return 1;
}

static int
s_forward(struct brk *b, int budget)
{
    int moved = 0;
    uint64_t posts = 0;
    const void *buf;
    size_t len;

    while (moved < budget) {
        zmq_pollitem_t out_it = { esc_bus_zsock(b->out), 0, ZMQ_POLLOUT, 0 };

        if (zmq_poll(&out_it, 1, 0) <= 0 || !(out_it.revents & ZMQ_POLLOUT)) {
            esc_metric_add(b->m_blocked, 1);
            break; /* no classifier can take more: leave frames in the intake queue */
        }
        if (esc_bus_recv(b->in, &buf, &len, ESC_BUS_DONTWAIT) != ESC_OK) {
            break;
        }
        /* POLLOUT guaranteed room for one frame; a blocking send cannot stall here. */
        if (esc_bus_send(b->out, buf, len, 0) != ESC_OK) {
            esc_log_error("forward failed frames_lost=1");
            break;
        }
        posts += s_posts_in(buf, len);
        moved++;
    }
    if (moved > 0) {
        b->forwarded += posts;
        b->last_in_ms = esc_mono_ms();
        esc_metric_add(b->m_forwarded, posts);
    }
    return moved;
}

/* Moves at most `budget` ack frames from bus.ack to bus.ack_pub (a PUB send never blocks). */
static void
s_forward_acks(struct brk *b, int budget)
{
    const void *buf;
    size_t len;
    int moved = 0;

    while (moved < budget && esc_bus_recv(b->ack_in, &buf, &len, ESC_BUS_DONTWAIT) == ESC_OK) {
        if (esc_bus_send(b->ack_out, buf, len, ESC_BUS_DONTWAIT) != ESC_OK) {
            esc_log_debug("ack not forwarded bytes=%zu", len);
        }
        moved++;
    }
    b->acks += (uint64_t)moved;
    esc_metric_add(b->m_acks, (uint64_t)moved);
}

static int
s_run(struct brk *b)
{
    for (;;) {
        /* Wait only for what can make progress: with room downstream, wait for input; with
         * none, wait for room. Polling both at once returns at once whenever either is
         * ready and spins a core while the other side is idle. */
        zmq_pollitem_t out_it = { esc_bus_zsock(b->out), 0, ZMQ_POLLOUT, 0 };
        int room = zmq_poll(&out_it, 1, 0) > 0 && (out_it.revents & ZMQ_POLLOUT);
        zmq_pollitem_t it[3] = {
            { NULL, b->sig_fd, ZMQ_POLLIN, 0 },
            { room ? esc_bus_zsock(b->in) : esc_bus_zsock(b->out), 0,
              room ? ZMQ_POLLIN : ZMQ_POLLOUT, 0 },
            { b->ack_in != NULL ? esc_bus_zsock(b->ack_in) : NULL, 0, ZMQ_POLLIN, 0 },
        };
        int rc = zmq_poll(it, b->ack_in != NULL ? 3 : 2, 100);

        if (rc < 0 && errno != EINTR) {
            esc_log_error("poll failed err=\"%s\"", zmq_strerror(errno));
            return 1;
        }
        if (it[0].revents & ZMQ_POLLIN) {
            esc_sig_handle(b->sig_fd, &b->drain, b->bc.grace_ms);
            if (b->drain.reload) {
                b->drain.reload = 0; /* nothing to reload: the broker has no per-topic state */
            }
        }
        if (room && (it[1].revents & ZMQ_POLLIN)) {
            s_forward(b, 1024);
        }
        if (b->ack_in != NULL && (it[2].revents & ZMQ_POLLIN)) {
            s_forward_acks(b, 1024);
        }
        if (b->drain.draining) {
            int64_t now = esc_mono_ms();

            if (now - b->last_in_ms >= b->bc.drain_quiet_ms || now >= b->drain.deadline_ms) {
                break;
            }
        }
    }
    return 0;
}

/* --curve-keygen: a new key pair; the secret goes to path (mode 600, never overwritten). */
static int
s_keygen(const char *path)
{
    char pub[41];
    char sec[41];
    FILE *f;
    int fd;

    if (esc_bus_curve_keypair(pub, sec) < 0) {
        fprintf(stderr, "escucha-broker: libzmq has no CURVE support\n");
        return 1;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        fprintf(stderr, "escucha-broker: cannot create %s: %s\n", path, strerror(errno));
        return 1;
    }
    f = fdopen(fd, "w");
    fprintf(f, "%s\n", sec);
    fclose(f);
    memset(sec, 0, sizeof(sec));
    printf("%s\n", pub);
    return 0;
}

/* --curve-public: the public key of a secret key file. */
static int
s_print_public(const char *path)
{
    char *sec = esc_secret_load(NULL, path, "curve secret key");
    char pub[41];
    int rc = 1;

    if (sec != NULL && esc_bus_curve_public(sec, pub) == 0) {
        printf("%s\n", pub);
        rc = 0;
    }
    else if (sec != NULL) {
        fprintf(stderr, "escucha-broker: %s does not hold a CURVE secret key\n", path);
    }
    if (sec != NULL) {
        memset(sec, 0, strlen(sec));
    }
    esc_free(sec);
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' }, { "check-config", no_argument, NULL, 'k' },
        { "help-config", no_argument, NULL, 'H' },  { "dump-config", no_argument, NULL, 'D' },
        { "log-level", required_argument, NULL, 'l' }, { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },      { "curve-keygen", required_argument, NULL, 'G' },
        { "curve-public", required_argument, NULL, 'P' }, { NULL, 0, NULL, 0 },
    };
    const char *config_path = NULL;
    int check = 0;
    int dump = 0;
    int level = ESC_LOG_INFO;
    struct esc_error err;
    struct esc_cfg *cfg = NULL;
    struct brk b;
    int c;
    int status = 0;
    int64_t left;

    memset(&b, 0, sizeof(b));
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'D':
            dump = 1;
            break;
        case 'H':
            printf("broker section (\"broker\": {...}):\n");
            esc_cfg_print_help(stdout, "broker", brk_cfg_map);
            return 0;
        case 'l':
            level = esc_log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, "escucha-broker: unknown log level '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        case 'V':
            printf("escucha-broker %s\n", ESC_VERSION);
            return 0;
        case 'G':
            return s_keygen(optarg);
        case 'P':
            return s_print_public(optarg);
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (config_path == NULL) {
        s_usage(stderr);
        return 2;
    }
    esc_log_init("broker", (enum esc_log_level)level);
    cfg = esc_cfg_load(config_path, &err);
    if (cfg == NULL
        || esc_cfg_section_apply(cfg, "broker", brk_cfg_map, NULL, &b.bc, &err) != ESC_OK
        || esc_bus_configure(cfg, &err) != ESC_OK) {
        esc_error_print(stderr, "escucha-broker", &err);
        esc_cfg_free(&cfg);
        return ESC_CFG_EXIT_INVALID;
    }
    if ((cfg->bus.ack[0] == '\0') != (cfg->bus.ack_pub[0] == '\0')) {
        fprintf(stderr, "escucha-broker: %s: bus.ack and bus.ack_pub: set both (acknowledgements "
                        "on) or neither\n", cfg->path);
        esc_cfg_free(&cfg);
        return ESC_CFG_EXIT_INVALID;
    }
    if (check || dump) {
        if (dump) {
            esc_cfg_print_values(stdout, "broker", brk_cfg_map, &b.bc);
        }
        else {
            printf("config ok\n");
        }
        esc_cfg_free(&cfg);
        return 0;
    }
    b.cfg = cfg;
    b.sig_fd = esc_sig_init();
    if (b.sig_fd < 0) {
        esc_cfg_free(&cfg);
        return 1;
    }
    b.m_forwarded = esc_metrics_counter("escucha_broker_forwarded_total",
                                        "Posts moved from collectors to classifiers.", NULL);
    b.m_blocked = esc_metrics_counter("escucha_broker_blocked_total",
                                      "Turns on which no classifier could take a post "
                                      "(backpressure).", NULL);
    if (esc_metrics_start("broker", b.bc.metrics_listen) < 0) {
        status = 1;
        goto out;
    }
    b.m_acks = esc_metrics_counter("escucha_broker_acks_total",
                                   "Acknowledgements moved from aggregators to collectors.", NULL);
    b.in = esc_bus_new(ESC_BUS_PULL, cfg->bus.collect, true, (int)cfg->bus.hwm);
    b.out = esc_bus_new(ESC_BUS_PUSH, cfg->bus.classify, true, (int)cfg->bus.hwm);
    if (b.in == NULL || b.out == NULL) {
        status = 1;
        goto out;
    }
    if (cfg->bus.ack[0] != '\0') {
        b.ack_in = esc_bus_new(ESC_BUS_PULL, cfg->bus.ack, true, (int)cfg->bus.hwm);
        b.ack_out = esc_bus_new(ESC_BUS_PUB, cfg->bus.ack_pub, true, (int)cfg->bus.hwm);
        if (b.ack_in == NULL || b.ack_out == NULL) {
            status = 1;
            goto out;
        }
        esc_log_info("acknowledgements on ack=%s ack_pub=%s", esc_bus_endpoint(b.ack_in),
                     esc_bus_endpoint(b.ack_out));
    }
    esc_log_info("started collect=%s classify=%s", esc_bus_endpoint(b.in),
                 esc_bus_endpoint(b.out));
    b.last_in_ms = esc_mono_ms();
    status = s_run(&b);

out:
    left = b.drain.draining ? b.drain.deadline_ms - esc_mono_ms() : 0;
    esc_bus_destroy(&b.in, 0);
    esc_bus_destroy(&b.out, (int)(left > 0 ? left : 0));
    esc_bus_destroy(&b.ack_in, 0);
    esc_bus_destroy(&b.ack_out, 0);
    esc_bus_ctx_term();
    esc_metrics_shutdown();
    esc_log_info("stopped forwarded=%llu acks=%llu", (unsigned long long)b.forwarded,
                 (unsigned long long)b.acks);
    esc_cfg_free(&cfg);
    close(b.sig_fd);
    return status;
}
