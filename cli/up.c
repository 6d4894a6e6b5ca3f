#define ESC_LOG_MODULE "up"
/* The supervisor behind `escucha up` (see up.h). Everything runs on one thread in one poll
 * loop woken by a signalfd (SIGCHLD, SIGINT, SIGTERM, SIGHUP) and a 100 ms tick:
 *   - start: one stage at a time in dependency order (redis, notifier, aggregator,
 *     classifiers, broker, api, collector); a stage is done when its processes answer (Redis
 *     PING, GET /metrics) or after S_READY_TIMEOUT_MS;
 *   - supervise: a child that dies is started again after a backoff (child.h); exit 0 (done)
 *     and exit 2 (invalid config) are not restarted, as with the systemd units;
 *   - status: once a second every service's /metrics is scraped, counters are summed per
 *     stage across restarts (prom.h) and the status is drawn (status.h);
 *   - stop: stages in reverse order, SIGTERM then, after stop_timeout_ms, SIGKILL; a second
 *     signal kills everything at once.
 * Nothing here blocks for long: scrapes have a 500 ms timeout. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "child.h"
#include "prom.h"
#include "scrape.h"
#include "status.h"
#include "up.h"
#include "upcfg.h"

extern char **environ;

#define S_TICK_MS 100              /* loop wake-up: probes, restarts, the stop machine */
#define S_STATUS_MS 1000           /* scrape + status refresh */
#define S_READY_TIMEOUT_MS 20000   /* a stage that does not answer by then: go on anyway */
#define S_SCRAPE_TIMEOUT_MS 500
#define S_RATE_WINDOW_MS 5000
#define S_REDIS_SVC (-1)           /* svc of the private redis-server */
#define S_OVERRIDES_MAX 8

/* Metrics read from the services (docs/<service>.md, "Metrics"). */
enum s_metric {
    S_M_COL_POSTS,
    S_M_BRK_FWD,
    S_M_CLS_IN,
    S_M_CLS_OUT,
    S_M_AGG_IN,
    S_M_AGG_FLUSHED,
    S_M_AGG_ALERTS,
    S_M_NTF_ALERTS,
    S_M_NTF_ENQUEUED,
    S_M_NTF_DELIVERED,
    S_M_NTF_REJECTED,
    S_M_NTF_DEAD,
    S_M_N,
};

static const struct {
    enum cli_svc svc;
    const char *name;
} s_metric_defs[S_M_N] = {
    [S_M_COL_POSTS] = { CLI_SVC_COLLECTOR, "escucha_collector_posts_total" },
    [S_M_BRK_FWD] = { CLI_SVC_BROKER, "escucha_broker_forwarded_total" },
    [S_M_CLS_IN] = { CLI_SVC_CLASSIFIER, "escucha_classifier_in_total" },
    [S_M_CLS_OUT] = { CLI_SVC_CLASSIFIER, "escucha_classifier_out_total" },
    [S_M_AGG_IN] = { CLI_SVC_AGGREGATOR, "escucha_aggregator_messages_total" },
    [S_M_AGG_FLUSHED] = { CLI_SVC_AGGREGATOR, "escucha_aggregator_flushed_posts_total" },
    [S_M_AGG_ALERTS] = { CLI_SVC_AGGREGATOR, "escucha_aggregator_alerts_total" },
    [S_M_NTF_ALERTS] = { CLI_SVC_NOTIFIER, "escucha_notifier_alerts_total" },
    [S_M_NTF_ENQUEUED] = { CLI_SVC_NOTIFIER, "escucha_notifier_enqueued_total" },
    [S_M_NTF_DELIVERED] = { CLI_SVC_NOTIFIER, "escucha_notifier_delivered_total" },
    [S_M_NTF_REJECTED] = { CLI_SVC_NOTIFIER, "escucha_notifier_rejected_total" },
    [S_M_NTF_DEAD] = { CLI_SVC_NOTIFIER, "escucha_notifier_dead_total" },
};

struct s_proc {
    char name[32];              /* "redis", "notifier", "classifier2", ... */
    int svc;                    /* enum cli_svc, or S_REDIS_SVC */
    int stage;                  /* start order; stopped in reverse */
    char exe[PATH_MAX];
    char **argv;                /* owned, NULL-terminated */
    char **envp;                /* owned, NULL-terminated */
    char log[PATH_MAX + 64];
    char metrics_host[64];      /* where /metrics is scraped, "" for redis */
    int metrics_port;
    pid_t pid;                  /* 0 when not running */
    enum cli_pstate state;
    bool answering;             /* the last probe or scrape got an answer */
    int64_t started_ms;
    int64_t restart_at_ms;
    struct cli_backoff backoff;
    unsigned restarts;
    bool killed;                /* SIGKILL sent by the stop */
    char why[240];              /* last unexpected exit */
    struct cli_counter ctr[S_M_N];
    double pending;             /* aggregator: escucha_aggregator_pending_posts, NAN unknown */
};

struct s_up {
    const struct cli_up_opts *opts;
    struct esc_cfg *cfg;
    struct cli_upcfg uc;
    char run_dir[PATH_MAX];
    char bin_dir[PATH_MAX];
    char redis_sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
    bool private_redis;
    char redis_desc[320];
    char dashboard[128];
    char *overrides[S_OVERRIDES_MAX]; /* shared "NAME=value" for every child; owned */
    size_t n_overrides;
    struct s_proc *procs;       /* owned, start order */
    size_t n_procs;
    int n_stages;
    int sig_fd;
    int lock_fd;
    cli_scrape_t *scrape;
    int64_t t0;
    int64_t next_status_ms;
    /* start machine */
    int start_stage;            /* stage being started; n_stages once all are */
    bool stage_started;
    int64_t stage_deadline;
    /* stop machine */
    bool stopping;
    bool hard;                  /* second signal: everything was killed */
    int stop_stage;
    bool stop_signalled;
    int64_t stop_deadline;
    bool unclean;               /* something was killed or exited non-zero while stopping */
    /* status output */
    enum { S_OUT_NONE, S_OUT_LINE, S_OUT_TTY } out;
    int saved_stderr;           /* the terminal, while stderr goes to escucha.log */
    int tty_lines;
    struct cli_rate r_collected, r_brokered, r_cls_in, r_cls_out, r_agg_in, r_counted;
    /* Backlogs (broker, classifiers, aggregator) are differences of counters. A process that
     * dies takes with it what it counted since its last scrape, so after a death the estimate
     * is set back to 0 once the stage has been quiet for a whole rate window. */
    double backlog_offset[3];
    bool backlog_rebase[3];
    char events[CLI_VIEW_EVENTS][200];
    size_t n_events;
    struct cli_view view;
};

/* --- small helpers ------------------------------------------------------------------------ */

static void s_note(struct s_up *up, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keeps a human-readable event for the terminal status (the log line is written separately,
 * in key=value form, where the event happens). */
static void
s_note(struct s_up *up, const char *fmt, ...)
{
    char msg[180];
    char ts[16];
    time_t now = time(NULL);
    struct tm tm;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    localtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
    if (up->n_events == CLI_VIEW_EVENTS) {
        memmove(up->events[0], up->events[1], sizeof(up->events[0]) * (CLI_VIEW_EVENTS - 1));
        up->n_events--;
    }
    snprintf(up->events[up->n_events++], sizeof(up->events[0]), "%s %s", ts, msg);
}

/* Makes path and its parents (mode 755). Returns 0 or -1 (errno set). */
static int
s_mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    char *p;

    if (esc_strlcpy(buf, path, sizeof(buf)) >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

/* Looks for escucha-<name> in dir, then in dir/../<name>/ (the build tree). */
static bool
s_find_exe(const char *dir, const char *name, char *out, size_t outsz)
{
    if ((size_t)snprintf(out, outsz, "%s/escucha-%s", dir, name) < outsz
        && access(out, X_OK) == 0) {
        return true;
    }
    return (size_t)snprintf(out, outsz, "%s/../%s/escucha-%s", dir, name, name) < outsz
           && access(out, X_OK) == 0;
}

/* Finds prog in $PATH (and /usr/sbin, /usr/bin). */
static bool
s_find_in_path(const char *prog, char *out, size_t outsz)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    char *d;

    snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/usr/bin", path != NULL ? path : "");
    d = dirs;
    while (d != NULL) {
        char *colon = strchr(d, ':');

        if (colon != NULL) {
            *colon = '\0';
        }
        if ((size_t)snprintf(out, outsz, "%s/%s", *d != '\0' ? d : ".", prog) < outsz
            && access(out, X_OK) == 0) {
            return true;
        }
        d = colon != NULL ? colon + 1 : NULL;
    }
    return false;
}

/* Sends PING over the unix socket at path; true on +PONG. */
static bool
s_redis_ping_unix(const char *path)
{
    struct sockaddr_un sa;
    struct timeval tv = { 0, 300000 };
    char buf[64];
    bool ok = false;
    ssize_t n;
    int fd;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    esc_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0
        && write(fd, "PING\r\n", 6) == 6) {
        n = read(fd, buf, sizeof(buf) - 1);
        ok = n >= 5 && memcmp(buf, "+PONG", 5) == 0;
    }
    close(fd);
    return ok;
}

/* PING through esc_kv with the config's address and credentials. */
static bool
s_redis_config_ping(const struct esc_cfg *cfg)
{
    struct esc_kv_opts o;
    struct esc_kv_val v;
    char *password = NULL;
    esc_kv_t *kv;
    bool ok = false;

    memset(&o, 0, sizeof(o));
    esc_cfg_kv_opts(cfg, &o, &password);
    o.password = password;
    kv = esc_kv_new(&o);
    memset(&v, 0, sizeof(v));
    if (esc_kv_connect(kv) == ESC_OK && esc_kv_cmd(kv, &v, "PING") == ESC_OK) {
        ok = v.type == ESC_KV_STR;
        esc_kv_val_fini(&v);
    }
    esc_kv_destroy(&kv);
    if (password != NULL) {
        memset(password, 0, strlen(password));
        esc_free(password);
    }
    return ok;
}

/* --- preparation -------------------------------------------------------------------------- */

static void s_add_override(struct s_up *up, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
s_add_override(struct s_up *up, const char *fmt, ...)
{
    char buf[PATH_MAX + 64];
    va_list ap;

    ESC_ASSERT(up->n_overrides < S_OVERRIDES_MAX);
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    up->overrides[up->n_overrides++] = esc_strdup(buf);
}

/* Decides which Redis the pipeline uses. Returns 0, or 1 (message printed). */
static int
s_choose_redis(struct s_up *up)
{
    const struct esc_cfg_redis *r = &up->cfg->redis;
    char where[300];
    char exe[PATH_MAX];
    bool reachable = false;

    if (r->unix_socket[0] != '\0') {
        snprintf(where, sizeof(where), "unix socket %s", r->unix_socket);
    }
    else {
        snprintf(where, sizeof(where), "%s:%lld", r->host, (long long)r->port);
    }
    if (up->opts->redis != CLI_REDIS_PRIVATE && (up->uc.redis_named
                                                 || up->opts->redis == CLI_REDIS_CONFIG)) {
        reachable = s_redis_config_ping(up->cfg);
    }
    if (reachable) {
        snprintf(up->redis_desc, sizeof(up->redis_desc), "configured, %s", where);
        esc_log_info("using the configured redis where=\"%s\"", where);
        return 0;
    }
    if (up->opts->redis == CLI_REDIS_CONFIG) {
        fprintf(stderr, "escucha: the configured Redis (%s) does not answer; start it, fix the "
                        "\"redis\" section, or use --redis auto\n", where);
        return 1;
    }
    if (up->uc.redis_named && up->opts->redis == CLI_REDIS_AUTO) {
        esc_log_warn("the configured redis does not answer, starting a private one "
                     "where=\"%s\" (counts go to the private redis; --redis config refuses)",
                     where);
    }
    if (!s_find_in_path("redis-server", exe, sizeof(exe))) {
        fprintf(stderr, "escucha: redis-server not found in PATH: install it (apt-get install "
                        "redis-server) or name a running Redis in the config's \"redis\" "
                        "section\n");
        return 1;
    }
    if ((size_t)snprintf(up->redis_sock, sizeof(up->redis_sock), "%s/redis.sock", up->run_dir)
        >= sizeof(up->redis_sock)) {
        fprintf(stderr, "escucha: run dir %s is too long for a unix socket path (%zu bytes at "
                        "most); use a shorter --run-dir\n", up->run_dir,
                sizeof(up->redis_sock) - sizeof("/redis.sock"));
        return 1;
    }
    up->private_redis = true;
    snprintf(up->redis_desc, sizeof(up->redis_desc), "private redis-server, unix socket %s, %s",
             up->redis_sock,
             up->opts->redis_persist ? "append-only file in the run dir" : "no persistence");
    s_add_override(up, "ESC_REDIS_UNIX_SOCKET=%s", up->redis_sock);
    s_add_override(up, "ESC_REDIS_USERNAME=");
    s_add_override(up, "ESC_REDIS_PASSWORD_ENV=");
    s_add_override(up, "ESC_REDIS_PASSWORD_FILE=");
    return 0;
}

/* A free TCP port on 127.0.0.1, kept bound through *fd_out until the caller closes it (so that
 * the next call cannot return the same port). Returns the port, or -1. */
static int
s_free_port(int *fd_out)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0
        || getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        return -1;
    }
    *fd_out = fd;
    return ntohs(sa.sin_port);
}

/* Fails (1, message printed) when the local TCP address `hostport` is already in use. Hosts
 * that are not local addresses, names, and port 0 are not checked. */
static int
s_check_port(const char *what, const char *hostport)
{
    struct sockaddr_in sa;
    char host[256];
    int port;
    int one = 1;
    int fd;
    int rc = 0;

    if (strncmp(hostport, "ipc://", 6) == 0 || strncmp(hostport, "inproc://", 9) == 0
        || cli_hostport_parse(hostport, host, sizeof(host), &port) != 0 || port == 0) {
        return 0;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (host[0] == '\0' || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0) {
        sa.sin_addr.s_addr = htonl(INADDR_ANY);
    }
    else if (strcmp(host, "localhost") == 0) {
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    else if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        return 0;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno == EADDRINUSE) {
        fprintf(stderr, "escucha: %s: port %d (%s) is in use by another process (another "
                        "escucha up, or a service started by hand? `ss -ltnp 'sport = :%d'` "
                        "shows which)\n", what, port, hostport, port);
        rc = 1;
    }
    close(fd);
    return rc;
}

static struct s_proc *
s_proc_add(struct s_up *up, const char *name, int svc, int stage)
{
    struct s_proc *p;
    size_t m;

    up->procs = esc_realloc(up->procs, (up->n_procs + 1) * sizeof(*up->procs));
    p = &up->procs[up->n_procs++];
    memset(p, 0, sizeof(*p));
    esc_strlcpy(p->name, name, sizeof(p->name));
    p->svc = svc;
    p->stage = stage;
    p->state = CLI_P_WAITING;
    p->pending = NAN;
    snprintf(p->log, sizeof(p->log), "%s/%s.log", up->run_dir, name);
    for (m = 0; m < S_M_N; m++) {
        memset(&p->ctr[m], 0, sizeof(p->ctr[m]));
    }
    if (up->n_stages < stage + 1) {
        up->n_stages = stage + 1;
    }
    return p;
}

static char **
s_argv(const char *const *args)
{
    size_t n = 0;
    size_t i;
    char **argv;

    while (args[n] != NULL) {
        n++;
    }
    argv = esc_calloc(n + 1, sizeof(*argv));
    for (i = 0; i < n; i++) {
        argv[i] = esc_strdup(args[i]);
    }
    return argv;
}

/* Builds the process table: argv, environment, metrics address of every child. Returns 0, or
 * 1 (message printed). */
static int
s_plan(struct s_up *up)
{
    static const enum cli_svc order[] = { CLI_SVC_NOTIFIER, CLI_SVC_AGGREGATOR,
                                          CLI_SVC_CLASSIFIER, CLI_SVC_BROKER, CLI_SVC_API,
                                          CLI_SVC_COLLECTOR };
    int port_fds[CLI_UP_CLASSIFIERS_MAX + CLI_SVC_N];
    size_t n_port_fds = 0;
    int stage = 0;
    size_t i;
    size_t k;
    int rc = 0;

    if (up->private_redis) {
        struct s_proc *p = s_proc_add(up, "redis", S_REDIS_SVC, stage++);
        const char *args[] = { p->exe, "--port", "0", "--unixsocket", up->redis_sock,
                               "--unixsocketperm", "700", "--dir", up->run_dir, "--save", "",
                               "--appendonly", up->opts->redis_persist ? "yes" : "no",
                               "--daemonize", "no", "--loglevel", "notice", NULL };

        s_find_in_path("redis-server", p->exe, sizeof(p->exe));
        p->argv = s_argv(args);
        p->envp = cli_env_build(environ, NULL, 0);
    }
    for (i = 0; i < ESC_ARRAY_LEN(order) && rc == 0; i++) {
        enum cli_svc svc = order[i];
        const char *svc_name = cli_svc_name(svc);
        int count = svc == CLI_SVC_CLASSIFIER ? up->opts->classifiers : 1;
        char exe[PATH_MAX];
        int c;

        if (svc == CLI_SVC_API && !up->uc.has_api) {
            continue;
        }
        if (!s_find_exe(up->bin_dir, svc_name, exe, sizeof(exe))) {
            fprintf(stderr, "escucha: cannot find escucha-%s in %s (nor in %s/../%s/): build it, "
                            "or say where the binaries are with --bin-dir\n", svc_name,
                    up->bin_dir, up->bin_dir, svc_name);
            rc = 1;
            break;
        }
        for (c = 0; c < count && rc == 0; c++) {
            const char *listen = up->uc.metrics[svc];
            const char *args[] = { exe, "--config", up->opts->config, NULL };
            const char *ov[S_OVERRIDES_MAX + 1];
            char name[32];
            char host[64];
            char env_name[64];
            char metrics_ov[160];
            int port = 0;

            if (svc == CLI_SVC_CLASSIFIER) {
                snprintf(name, sizeof(name), "classifier%d", c + 1);
            }
            else {
                esc_strlcpy(name, svc_name, sizeof(name));
            }
            host[0] = '\0';
            if (listen[0] != '\0' && cli_hostport_parse(listen, host, sizeof(host), &port) != 0) {
                fprintf(stderr, "escucha: %s.metrics_listen: bad address '%s' (want host:port)\n",
                        svc_name, listen);
                rc = 1;
                break;
            }
            if (port == 0) {
                port = s_free_port(&port_fds[n_port_fds]);
                if (port < 0) {
                    fprintf(stderr, "escucha: no free TCP port on 127.0.0.1: %s\n",
                            strerror(errno));
                    rc = 1;
                    break;
                }
                n_port_fds++;
                esc_strlcpy(host, "127.0.0.1", sizeof(host));
            }
            else {
                port += c; /* classifiers 2..N: the ports after the configured one */
            }
            {
                struct s_proc *p = s_proc_add(up, name, (int)svc, stage);
                size_t n_ov = 0;

                esc_strlcpy(p->exe, exe, sizeof(p->exe));
                p->argv = s_argv(args);
                snprintf(env_name, sizeof(env_name), "ESC_%s_METRICS_LISTEN", svc_name);
                for (k = 0; env_name[k] != '\0'; k++) {
                    env_name[k] = (char)(env_name[k] >= 'a' && env_name[k] <= 'z'
                                             ? env_name[k] - 'a' + 'A' : env_name[k]);
                }
                snprintf(metrics_ov, sizeof(metrics_ov), "%s=%s:%d", env_name, host, port);
                for (k = 0; k < up->n_overrides; k++) {
                    ov[n_ov++] = up->overrides[k];
                }
                ov[n_ov++] = metrics_ov;
                p->envp = cli_env_build(environ, ov, n_ov);
                esc_strlcpy(p->metrics_host,
                            host[0] == '\0' || strcmp(host, "*") == 0
                                    || strcmp(host, "0.0.0.0") == 0
                                ? "127.0.0.1"
                                : host,
                            sizeof(p->metrics_host));
                p->metrics_port = port;
            }
        }
        stage++;
    }
    for (k = 0; k < n_port_fds; k++) {
        close(port_fds[k]);
    }
    return rc;
}

/* Fails (1) when an address the pipeline binds is taken. */
static int
s_check_ports(struct s_up *up)
{
    const struct esc_cfg_bus *bus = &up->cfg->bus;
    size_t i;
    int rc = 0;

    rc |= s_check_port("bus.collect (the broker binds it)", bus->collect);
    rc |= s_check_port("bus.classify (the broker binds it)", bus->classify);
    if (!up->uc.agg_connect_in) {
        rc |= s_check_port("bus.aggregate (the aggregator binds it)", bus->aggregate);
    }
    rc |= s_check_port("bus.notify (the notifier binds it)", bus->notify);
    if (up->uc.has_api) {
        rc |= s_check_port("api.listen", up->uc.api_listen);
    }
    for (i = 0; i < up->n_procs; i++) {
        const struct s_proc *p = &up->procs[i];
        char what[96];
        char addr[96];

        if (p->metrics_port > 0) {
            snprintf(what, sizeof(what), "metrics of %s", p->name);
            snprintf(addr, sizeof(addr), "%s:%d", p->metrics_host, p->metrics_port);
            rc |= s_check_port(what, addr);
        }
    }
    return rc;
}

/* Runs each service's --check-config with the environment it will get. Returns 0, or 2. */
static int
s_check_configs(struct s_up *up)
{
    char out[8192];
    size_t i;

    for (i = 0; i < up->n_procs; i++) {
        const struct s_proc *p = &up->procs[i];
        const char *args[] = { p->exe, "--config", up->opts->config, "--check-config", NULL };
        char **argv;
        int rc;

        if (p->svc == S_REDIS_SVC || (p->svc == CLI_SVC_CLASSIFIER
                                      && strcmp(p->name, "classifier1") != 0)) {
            continue;
        }
        argv = s_argv(args);
        rc = cli_run_capture(p->exe, argv, p->envp, out, sizeof(out));
        cli_env_free(&argv);
        if (rc != 0) {
            fprintf(stderr, "escucha: escucha-%s rejects the config (%s --check-config: %s %d):"
                            "\n%s", cli_svc_name((enum cli_svc)p->svc), p->exe,
                    rc > 128 ? "signal" : "exit status", rc > 128 ? rc - 128 : rc, out);
            return 2;
        }
    }
    return 0;
}

/* <run-dir>/up.env: the overrides every child gets, for running other escucha commands (a
 * digest, the API) against this pipeline: `set -a; . <run-dir>/up.env; set +a`. */
static void
s_write_env_file(struct s_up *up)
{
    char path[PATH_MAX + 16];
    FILE *f;
    size_t i;

    snprintf(path, sizeof(path), "%s/up.env", up->run_dir);
    f = fopen(path, "w");
    if (f == NULL) {
        esc_log_warn("cannot write path=%s err=\"%s\"", path, strerror(errno));
        return;
    }
    fprintf(f, "# Written by escucha up (pid %d): the environment its children got on top of "
               "the config.\n# Other escucha commands reach the same pipeline with it:\n"
               "#   set -a; . %s; set +a\n", (int)getpid(), path);
    for (i = 0; i < up->n_overrides; i++) {
        fprintf(f, "%s\n", up->overrides[i]);
    }
    fclose(f);
}

/* Everything before the first child starts. Returns 0 or the exit status. */
static int
s_prepare(struct s_up *up)
{
    struct esc_error err;
    char self[PATH_MAX];
    char lock_path[PATH_MAX + 16];
    ssize_t n;
    int rc;

    memset(&err, 0, sizeof(err));
    up->cfg = esc_cfg_load(up->opts->config, &err);
    if (up->cfg == NULL) {
        esc_error_print(stderr, "escucha", &err);
        return ESC_CFG_EXIT_INVALID;
    }
    if (cli_upcfg_read(up->opts->config, &up->uc, &err) != ESC_OK) {
        esc_strlcpy(err.source, up->opts->config, sizeof(err.source));
        esc_error_print(stderr, "escucha", &err);
        return ESC_CFG_EXIT_INVALID;
    }
    if (up->opts->bin_dir != NULL) {
        esc_strlcpy(up->bin_dir, up->opts->bin_dir, sizeof(up->bin_dir));
    }
    else {
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0) {
            fprintf(stderr, "escucha: cannot tell where escucha is (/proc/self/exe): %s; use "
                            "--bin-dir\n", strerror(errno));
            return 1;
        }
        self[n] = '\0';
        *strrchr(self, '/') = '\0';
        esc_strlcpy(up->bin_dir, self, sizeof(up->bin_dir));
    }
    if (s_mkdir_p(up->opts->run_dir) != 0 || realpath(up->opts->run_dir, self) == NULL) {
        fprintf(stderr, "escucha: cannot create run dir %s: %s\n", up->opts->run_dir,
                strerror(errno));
        return 1;
    }
    esc_strlcpy(up->run_dir, self, sizeof(up->run_dir));
    snprintf(lock_path, sizeof(lock_path), "%s/up.lock", up->run_dir);
    up->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (up->lock_fd < 0 || flock(up->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "escucha: run dir %s is in use by another escucha up (%s); stop it or "
                        "use another --run-dir\n", up->run_dir,
                up->lock_fd < 0 ? strerror(errno) : "locked");
        return 1;
    }
    rc = s_choose_redis(up);
    if (rc == 0) {
        rc = s_plan(up);
    }
    if (rc == 0) {
        rc = s_check_ports(up);
    }
    if (rc == 0) {
        rc = s_check_configs(up);
    }
    if (rc != 0) {
        return rc;
    }
    if (up->uc.has_api) {
        char host[64];
        int port = 0;

        if (cli_hostport_parse(up->uc.api_listen, host, sizeof(host), &port) == 0) {
            snprintf(up->dashboard, sizeof(up->dashboard), "http://%s:%d/",
                     host[0] == '\0' || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0
                         ? "127.0.0.1"
                         : host,
                     port);
        }
    }
    s_write_env_file(up);
    return 0;
}

/* --- children ----------------------------------------------------------------------------- */

static void
s_start(struct s_up *up, struct s_proc *p, bool fresh)
{
    struct cli_spawn sp = { p->exe, p->argv, p->envp, p->log, fresh };
    int64_t now = esc_mono_ms();
    pid_t pid;

    if (p->svc == S_REDIS_SVC) {
        unlink(up->redis_sock); /* left over by a redis-server that was killed */
    }
    pid = cli_spawn(&sp);
    p->started_ms = now;
    p->answering = false;
    if (pid < 0) {
        int64_t delay = cli_backoff_next(&p->backoff, 0);

        p->state = CLI_P_BACKOFF;
        p->restart_at_ms = now + delay;
        snprintf(p->why, sizeof(p->why), "could not start (see the log of escucha up)");
        return;
    }
    p->pid = pid;
    p->state = CLI_P_STARTING;
    esc_log_info("started name=%s pid=%d log=%s", p->name, (int)pid, p->log);
}

static struct s_proc *
s_find_pid(struct s_up *up, pid_t pid)
{
    size_t i;

    for (i = 0; i < up->n_procs; i++) {
        if (up->procs[i].pid == pid) {
            return &up->procs[i];
        }
    }
    return NULL;
}

static void
s_on_exit(struct s_up *up, struct s_proc *p, int status)
{
    int64_t now = esc_mono_ms();
    int64_t up_ms = now - p->started_ms;
    char how[64];
    char last[160];
    char quoted[200];
    char dur[16];
    size_t m;

    p->pid = 0;
    p->answering = false;
    cli_wait_describe(status, how, sizeof(how));
    for (m = 0; m < S_M_N; m++) {
        cli_counter_reset(&p->ctr[m]); /* what it counted stays in the totals */
    }
    p->pending = NAN;
    if (up->stopping || p->state == CLI_P_STOPPING) {
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;

        p->state = CLI_P_STOPPED;
        if (clean) {
            esc_log_info("stopped name=%s", p->name);
        }
        else {
            up->unclean = true;
            esc_log_warn("stopped uncleanly name=%s how=\"%s\" log=%s", p->name, how, p->log);
            s_note(up, "%s stopped uncleanly (%s), see %s", p->name, how, p->log);
        }
        return;
    }
    up->backlog_rebase[0] |= p->svc == CLI_SVC_COLLECTOR || p->svc == CLI_SVC_BROKER;
    up->backlog_rebase[1] |= p->svc == CLI_SVC_BROKER || p->svc == CLI_SVC_CLASSIFIER;
    up->backlog_rebase[2] |= p->svc == CLI_SVC_CLASSIFIER || p->svc == CLI_SVC_AGGREGATOR;
    cli_log_last_line(p->log, last, sizeof(last));
    snprintf(p->why, sizeof(p->why), "%s%s%s", how, last[0] != '\0' ? ": " : "", last);
    esc_log_quote(quoted, sizeof(quoted), last, 150);
    cli_fmt_duration(up_ms, dur, sizeof(dur));
    if (p->svc != S_REDIS_SVC && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        p->state = CLI_P_DONE;
        esc_log_info("exited on its own, not restarted name=%s up=%s", p->name, dur);
        s_note(up, "%s exited 0 on its own after %s (done); not restarted", p->name, dur);
        return;
    }
    if (p->svc != S_REDIS_SVC && WIFEXITED(status)
        && WEXITSTATUS(status) == ESC_CFG_EXIT_INVALID) {
        p->state = CLI_P_FAILED;
        esc_log_error("rejected its config, not restarted name=%s last_line=%s log=%s", p->name,
                      quoted, p->log);
        s_note(up, "%s rejected its config (exit 2); not restarted, see %s", p->name, p->log);
        return;
    }
    {
        int64_t delay = cli_backoff_next(&p->backoff, up_ms);
        char in[16];

        p->state = CLI_P_BACKOFF;
        p->restart_at_ms = now + delay;
        cli_fmt_duration(delay, in, sizeof(in));
        esc_log_warn("died name=%s how=\"%s\" up=%s restart_in=%s crashing=%s last_line=%s "
                     "log=%s", p->name, how, dur, in,
                     cli_backoff_crashing(&p->backoff) ? "yes" : "no", quoted, p->log);
        s_note(up, "%s died (%s) after %s; restart in %s%s", p->name, how, dur, in,
               cli_backoff_crashing(&p->backoff) ? " - it keeps crashing" : "");
    }
}

static void
s_reap(struct s_up *up)
{
    for (;;) {
        struct s_proc *p;
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);

        if (pid <= 0) {
            break;
        }
        p = s_find_pid(up, pid);
        if (p != NULL) {
            s_on_exit(up, p, status);
        }
    }
}

static void
s_restart_due(struct s_up *up, int64_t now)
{
    size_t i;

    for (i = 0; i < up->n_procs; i++) {
        struct s_proc *p = &up->procs[i];

        if (p->state == CLI_P_BACKOFF && now >= p->restart_at_ms) {
            p->restarts++;
            esc_log_info("restarting name=%s restarts=%u", p->name, p->restarts);
            s_note(up, "restarting %s (restart %u)", p->name, p->restarts);
            s_start(up, p, false);
        }
    }
}

/* --- metrics ------------------------------------------------------------------------------ */

static void
s_read_metrics(struct s_proc *p, const char *text, size_t len)
{
    size_t m;
    double v;

    for (m = 0; m < S_M_N; m++) {
        if ((int)s_metric_defs[m].svc == p->svc && cli_prom_sum(text, len, s_metric_defs[m].name,
                                                                 &v)) {
            cli_counter_update(&p->ctr[m], v);
        }
    }
    if (p->svc == CLI_SVC_AGGREGATOR
        && cli_prom_sum(text, len, "escucha_aggregator_pending_posts", &v)) {
        p->pending = v;
    }
}

/* Asks one running child whether it answers, reading its metrics when it does. */
static void
s_probe(struct s_up *up, struct s_proc *p)
{
    const char *body;
    size_t len = 0;

    if (p->pid <= 0) {
        return;
    }
    if (p->svc == S_REDIS_SVC) {
        p->answering = s_redis_ping_unix(up->redis_sock);
    }
    else {
        body = cli_scrape_get(up->scrape, p->metrics_host, p->metrics_port, "/metrics", &len);
        p->answering = body != NULL;
        if (body != NULL) {
            s_read_metrics(p, body, len);
        }
    }
    if (p->answering && p->state == CLI_P_STARTING) {
        p->state = CLI_P_UP;
        esc_log_info("up name=%s pid=%d", p->name, (int)p->pid);
    }
}

/* Sum over the processes of one service of a counter's total; NAN when none reported it. */
static double
s_total(const struct s_up *up, enum s_metric m)
{
    double sum = 0;
    bool seen = false;
    size_t i;

    for (i = 0; i < up->n_procs; i++) {
        if (up->procs[i].ctr[m].seen) {
            sum += cli_counter_total(&up->procs[i].ctr[m]);
            seen = true;
        }
    }
    return seen ? sum : NAN;
}

/* Adds the stage's total to its rate. The first time, the window is seeded with 0 at the
 * start of the stage's first process (its counters started there), so a burst that was over
 * before the first scrape still shows. */
static double
s_rate(const struct s_up *up, struct cli_rate *r, int svc, int64_t now, double total)
{
    size_t i;

    if (isnan(total)) {
        return NAN;
    }
    if (r->n == 0) {
        int64_t start = now;

        for (i = 0; i < up->n_procs; i++) {
            if (up->procs[i].svc == svc && up->procs[i].started_ms > 0
                && up->procs[i].started_ms < start) {
                start = up->procs[i].started_ms;
            }
        }
        if (start < now) {
            cli_rate_add(r, start, 0);
        }
    }
    cli_rate_add(r, now, total);
    return cli_rate_get(r);
}

static bool
s_all_up(const struct s_up *up, int svc)
{
    size_t i;

    for (i = 0; i < up->n_procs; i++) {
        if (up->procs[i].svc == svc && up->procs[i].state != CLI_P_UP) {
            return false;
        }
    }
    return true;
}

/* Posts the stage before sent and stage k has not taken: broker (0), classifiers (1),
 * aggregator (2). */
static double
s_backlog(struct s_up *up, int k, double produced, double consumed)
{
    static const int consumer[3] = { CLI_SVC_BROKER, CLI_SVC_CLASSIFIER, CLI_SVC_AGGREGATOR };
    const struct cli_rate *out_r[3] = { &up->r_collected, &up->r_brokered, &up->r_cls_out };
    const struct cli_rate *in_r[3] = { &up->r_brokered, &up->r_cls_in, &up->r_agg_in };
    double b = produced - consumed - up->backlog_offset[k];

    if (up->backlog_rebase[k] && !isnan(b) && s_all_up(up, consumer[k])
        && cli_rate_quiet(out_r[k]) && cli_rate_quiet(in_r[k])) {
        esc_log_debug("backlog estimate set back to 0 stage=%d was=%.0f", k, b);
        up->backlog_offset[k] += b;
        up->backlog_rebase[k] = false;
        b = 0;
    }
    return b;
}

static void
s_fill_view(struct s_up *up, int64_t now)
{
    struct cli_view *v = &up->view;
    double ntf_enq = s_total(up, S_M_NTF_ENQUEUED);
    double ntf_del = s_total(up, S_M_NTF_DELIVERED);
    double ntf_rej = s_total(up, S_M_NTF_REJECTED);
    double ntf_dead = s_total(up, S_M_NTF_DEAD);
    double cls_in = s_total(up, S_M_CLS_IN);
    double agg_in = s_total(up, S_M_AGG_IN);
    size_t i;

    esc_strlcpy(v->deployment, up->cfg->deployment, sizeof(v->deployment));
    esc_strlcpy(v->run_dir, up->run_dir, sizeof(v->run_dir));
    esc_strlcpy(v->redis, up->redis_desc, sizeof(v->redis));
    esc_strlcpy(v->dashboard, up->dashboard, sizeof(v->dashboard));
    v->up_ms = now - up->t0;
    v->stopping = up->stopping;
    v->n_procs = up->n_procs < CLI_VIEW_PROCS ? up->n_procs : CLI_VIEW_PROCS;
    for (i = 0; i < v->n_procs; i++) {
        const struct s_proc *p = &up->procs[i];
        struct cli_proc_view *pv = &v->procs[i];
        bool deaf;

        esc_strlcpy(pv->name, p->name, sizeof(pv->name));
        pv->state = p->state;
        pv->pid = (int)p->pid;
        pv->restarts = p->restarts;
        pv->crashing = cli_backoff_crashing(&p->backoff) && p->state != CLI_P_STOPPED;
        pv->since_ms = p->state == CLI_P_BACKOFF ? p->restart_at_ms - now : now - p->started_ms;
        deaf = p->pid > 0 && !p->answering && p->state == CLI_P_UP;
        if (p->svc == S_REDIS_SVC) {
            snprintf(pv->where, sizeof(pv->where), "%s%s", up->redis_sock,
                     deaf ? " (not answering)" : "");
        }
        else {
            snprintf(pv->where, sizeof(pv->where), "%s:%d%s", p->metrics_host, p->metrics_port,
                     deaf ? " (not answering)" : "");
        }
        esc_strlcpy(pv->why, p->why, sizeof(pv->why));
    }
    v->collected = s_total(up, S_M_COL_POSTS);
    v->brokered = s_total(up, S_M_BRK_FWD);
    v->classified = s_total(up, S_M_CLS_OUT);
    v->counted = s_total(up, S_M_AGG_FLUSHED);
    v->collected_rate = s_rate(up, &up->r_collected, CLI_SVC_COLLECTOR, now, v->collected);
    v->brokered_rate = s_rate(up, &up->r_brokered, CLI_SVC_BROKER, now, v->brokered);
    v->classified_in_rate = s_rate(up, &up->r_cls_in, CLI_SVC_CLASSIFIER, now, cls_in);
    v->classified_rate = s_rate(up, &up->r_cls_out, CLI_SVC_CLASSIFIER, now, v->classified);
    v->agg_in_rate = s_rate(up, &up->r_agg_in, CLI_SVC_AGGREGATOR, now, agg_in);
    v->counted_rate = s_rate(up, &up->r_counted, CLI_SVC_AGGREGATOR, now, v->counted);
    v->backlog_broker = s_backlog(up, 0, v->collected, v->brokered);
    v->backlog_classifiers = s_backlog(up, 1, v->brokered, cls_in);
    v->backlog_aggregator = s_backlog(up, 2, v->classified, agg_in);
    v->pending_redis = NAN;
    for (i = 0; i < up->n_procs; i++) {
        if (up->procs[i].svc == CLI_SVC_AGGREGATOR && !isnan(up->procs[i].pending)) {
            v->pending_redis = up->procs[i].pending;
        }
    }
    v->alerts_raised = s_total(up, S_M_AGG_ALERTS);
    v->alerts_received = s_total(up, S_M_NTF_ALERTS);
    v->alerts_sent = ntf_del;
    v->alerts_failed = ntf_rej + ntf_dead;
    v->alerts_queued = ntf_enq - ntf_del - ntf_rej - ntf_dead;
    v->n_events = up->n_events;
    memcpy(v->events, up->events, sizeof(v->events));
}

/* --- status output ------------------------------------------------------------------------ */

static void
s_render(struct s_up *up, int64_t now)
{
    static char buf[65536];

    if (up->out == S_OUT_NONE) {
        return;
    }
    s_fill_view(up, now);
    if (up->out == S_OUT_LINE) {
        cli_status_line(&up->view, buf, sizeof(buf));
        printf("%s\n", buf);
        fflush(stdout);
        return;
    }
    {
        struct winsize ws;
        int cols = 100;
        int rows = 40;
        int lines;

        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
            cols = ws.ws_col;
            rows = ws.ws_row;
        }
        lines = cli_status_block(&up->view, cols, rows, buf, sizeof(buf));
        if (up->tty_lines > 0) {
            printf("\033[%dA\r", up->tty_lines);
        }
        printf("\033[J%s", buf);
        fflush(stdout);
        up->tty_lines = lines;
    }
}

static void
s_output_begin(struct s_up *up)
{
    up->saved_stderr = -1;
    if (up->opts->no_status) {
        up->out = S_OUT_NONE;
        return;
    }
    if (!isatty(STDOUT_FILENO) || getenv("TERM") == NULL || strcmp(getenv("TERM"), "dumb") == 0) {
        up->out = S_OUT_LINE;
        return;
    }
    up->out = S_OUT_TTY;
    if (isatty(STDERR_FILENO)) {
        /* Log lines would tear the block apart: they go to escucha.log while it is shown. */
        char path[PATH_MAX + 16];
        int fd;

        snprintf(path, sizeof(path), "%s/escucha.log", up->run_dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            fflush(stderr);
            up->saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
    }
    printf("\033[?25l"); /* hide the cursor while the block is redrawn */
    fflush(stdout);
}

static void
s_output_end(struct s_up *up)
{
    if (up->out == S_OUT_TTY) {
        printf("\033[?25h");
        fflush(stdout);
    }
    if (up->saved_stderr >= 0) {
        fflush(stderr);
        dup2(up->saved_stderr, STDERR_FILENO);
        close(up->saved_stderr);
        up->saved_stderr = -1;
    }
}

/* --- start and stop machines -------------------------------------------------------------- */

static bool
s_stage_settled(const struct s_up *up, int stage)
{
    size_t i;

    for (i = 0; i < up->n_procs; i++) {
        const struct s_proc *p = &up->procs[i];

        if (p->stage == stage && (p->state == CLI_P_STARTING || p->state == CLI_P_WAITING)) {
            return false;
        }
    }
    return true;
}

static void
s_advance_start(struct s_up *up, int64_t now)
{
    size_t i;

    while (up->start_stage < up->n_stages) {
        if (!up->stage_started) {
            for (i = 0; i < up->n_procs; i++) {
                if (up->procs[i].stage == up->start_stage) {
                    s_start(up, &up->procs[i], true);
                }
            }
            up->stage_started = true;
            up->stage_deadline = now + S_READY_TIMEOUT_MS;
        }
        if (!s_stage_settled(up, up->start_stage)) {
            if (now < up->stage_deadline) {
                return;
            }
            for (i = 0; i < up->n_procs; i++) {
                if (up->procs[i].stage == up->start_stage
                    && up->procs[i].state == CLI_P_STARTING) {
                    esc_log_warn("not answering yet, starting the next stage anyway name=%s "
                                 "waited_ms=%d log=%s", up->procs[i].name, S_READY_TIMEOUT_MS,
                                 up->procs[i].log);
                    s_note(up, "%s does not answer after %ds; going on", up->procs[i].name,
                           S_READY_TIMEOUT_MS / 1000);
                }
            }
        }
        up->start_stage++;
        up->stage_started = false;
        if (up->start_stage == up->n_stages) {
            esc_log_info("pipeline started processes=%zu run_dir=%s", up->n_procs, up->run_dir);
            s_note(up, "all %zu processes started", up->n_procs);
        }
    }
}

static void
s_begin_stop(struct s_up *up, const char *sig)
{
    up->stopping = true;
    up->stop_stage = up->n_stages - 1;
    up->stop_signalled = false;
    esc_log_info("stopping signal=%s order=upstream-first", sig);
    s_note(up, "%s: stopping, upstream first", sig);
}

/* Returns true once every stage has stopped. */
static bool
s_advance_stop(struct s_up *up, int64_t now)
{
    size_t i;

    while (up->stop_stage >= 0) {
        bool running = false;

        if (!up->stop_signalled) {
            for (i = 0; i < up->n_procs; i++) {
                struct s_proc *p = &up->procs[i];

                if (p->stage != up->stop_stage) {
                    continue;
                }
                if (p->pid > 0) {
                    kill(p->pid, SIGTERM);
                    p->state = CLI_P_STOPPING;
                    p->started_ms = now;
                }
                else {
                    p->state = CLI_P_STOPPED;
                }
            }
            up->stop_signalled = true;
            up->stop_deadline = now + up->opts->stop_timeout_ms;
        }
        for (i = 0; i < up->n_procs; i++) {
            struct s_proc *p = &up->procs[i];

            if (p->stage == up->stop_stage && p->pid > 0) {
                running = true;
                if (now >= up->stop_deadline && !p->killed) {
                    esc_log_warn("did not stop in time, killing name=%s pid=%d timeout_ms=%lld",
                                 p->name, (int)p->pid, (long long)up->opts->stop_timeout_ms);
                    s_note(up, "%s did not stop within %llds: killed", p->name,
                           (long long)(up->opts->stop_timeout_ms / 1000));
                    kill(p->pid, SIGKILL);
                    p->killed = true;
                    up->unclean = true;
                }
            }
        }
        if (running) {
            return false;
        }
        up->stop_stage--;
        up->stop_signalled = false;
    }
    return true;
}

/* Second signal: SIGKILL to every child, then wait for them all. */
static void
s_kill_all(struct s_up *up)
{
    size_t i;

    esc_log_warn("second stop signal, killing every process now");
    for (i = 0; i < up->n_procs; i++) {
        if (up->procs[i].pid > 0) {
            kill(up->procs[i].pid, SIGKILL);
        }
    }
    for (i = 0; i < up->n_procs; i++) {
        struct s_proc *p = &up->procs[i];
        int status;

        while (p->pid > 0 && waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
        }
        p->pid = 0;
        p->state = CLI_P_STOPPED;
    }
    up->hard = true;
    up->unclean = true;
}

/* --- the loop ----------------------------------------------------------------------------- */

static int
s_signals_init(void)
{
    struct sigaction sa;
    sigset_t set;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    /* A shell may start us with SIGINT ignored (`escucha up ... &` in a script). */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        esc_log_errno("sigprocmask");
        return -1;
    }
    fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        esc_log_errno("signalfd");
    }
    return fd;
}

/* Reads pending signals. Returns true when everything must be killed at once. */
static bool
s_on_signals(struct s_up *up)
{
    struct signalfd_siginfo si;

    while (read(up->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
            continue; /* s_reap runs every turn */
        }
        if (up->stopping) {
            return true;
        }
        s_begin_stop(up, sigabbrev_np((int)si.ssi_signo) != NULL
                             ? sigabbrev_np((int)si.ssi_signo)
                             : "signal");
    }
    return false;
}

static void
s_loop(struct s_up *up)
{
    up->t0 = esc_mono_ms();
    up->next_status_ms = up->t0;
    for (;;) {
        struct pollfd pfd = { up->sig_fd, POLLIN, 0 };
        int64_t now;
        size_t i;

        if (poll(&pfd, 1, S_TICK_MS) < 0 && errno != EINTR) {
            esc_log_errno("poll");
        }
        if ((pfd.revents & POLLIN) && s_on_signals(up)) {
            s_kill_all(up);
            s_note(up, "second signal: everything killed");
            break;
        }
        s_reap(up);
        now = esc_mono_ms();
        if (!up->stopping) {
            s_advance_start(up, now);
            s_restart_due(up, now);
        }
        else if (s_advance_stop(up, now)) {
            break;
        }
        for (i = 0; i < up->n_procs; i++) {
            if (up->procs[i].state == CLI_P_STARTING) {
                s_probe(up, &up->procs[i]);
            }
        }
        if (now >= up->next_status_ms) {
            for (i = 0; i < up->n_procs; i++) {
                if (up->procs[i].state == CLI_P_UP || up->procs[i].state == CLI_P_STOPPING) {
                    s_probe(up, &up->procs[i]);
                }
            }
            s_render(up, esc_mono_ms());
            up->next_status_ms = now + S_STATUS_MS;
        }
    }
    s_render(up, esc_mono_ms());
}

static void
s_free(struct s_up *up)
{
    size_t i;

    for (i = 0; i < up->n_procs; i++) {
        cli_env_free(&up->procs[i].argv);
        cli_env_free(&up->procs[i].envp);
    }
    esc_free(up->procs);
    for (i = 0; i < up->n_overrides; i++) {
        esc_free(up->overrides[i]);
    }
    cli_scrape_destroy(&up->scrape);
    esc_cfg_free(&up->cfg);
    if (up->sig_fd >= 0) {
        close(up->sig_fd);
    }
    if (up->lock_fd >= 0) {
        close(up->lock_fd);
    }
}

int
cli_up_run(const struct cli_up_opts *opts)
{
    struct s_up *up = esc_calloc(1, sizeof(*up));
    int rc;

    up->opts = opts;
    up->sig_fd = -1;
    up->lock_fd = -1;
    up->saved_stderr = -1;
    cli_rate_init(&up->r_collected, S_RATE_WINDOW_MS);
    cli_rate_init(&up->r_brokered, S_RATE_WINDOW_MS);
    cli_rate_init(&up->r_cls_in, S_RATE_WINDOW_MS);
    cli_rate_init(&up->r_cls_out, S_RATE_WINDOW_MS);
    cli_rate_init(&up->r_agg_in, S_RATE_WINDOW_MS);
    cli_rate_init(&up->r_counted, S_RATE_WINDOW_MS);
    up->sig_fd = s_signals_init();
    if (up->sig_fd < 0) {
        rc = 1;
        goto out;
    }
    rc = s_prepare(up);
    if (rc != 0) {
        goto out;
    }
    up->scrape = cli_scrape_new(S_SCRAPE_TIMEOUT_MS);
    if (up->scrape == NULL) {
        fprintf(stderr, "escucha: libcurl could not be initialised\n");
        rc = 1;
        goto out;
    }
    esc_log_info("starting deployment=%s processes=%zu run_dir=%s redis=\"%s\"",
                 up->cfg->deployment, up->n_procs, up->run_dir, up->redis_desc);
    s_output_begin(up);
    s_loop(up);
    s_output_end(up);
    rc = up->unclean ? 1 : 0;
    if (up->hard) {
        fprintf(stderr, "escucha: killed every process at once (second signal); logs in %s\n",
                up->run_dir);
    }
    else if (up->unclean) {
        fprintf(stderr, "escucha: stopped, but not every process stopped cleanly; logs in %s\n",
                up->run_dir);
    }
    else {
        esc_log_info("stopped cleanly run_dir=%s", up->run_dir);
    }

out:
    s_free(up);
    esc_free(up);
    return rc;
}
