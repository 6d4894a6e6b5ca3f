#define ESC_LOG_MODULE "testenv"
/* Starts and stops a private redis-server for tests. Each server lives in a mkdtemp directory
 * that holds its unix socket and log file; stop removes the directory. Readiness is a raw
 * "PING" over the unix socket (any +/- answer counts, so a --requirepass server is ready when it
 * says NOAUTH). The child asks the kernel for SIGKILL when the test process dies, so a crashed
 * or timed-out test does not leak servers. Single-threaded; not for use in services. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "esc_testenv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_util.h"

#define S_READY_WAIT_MS 5000
#define S_STOP_WAIT_MS 5000
#define S_PORT_TRIES 3

static void
s_sleep_ms(long ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        /* keep sleeping the remainder */
    }
}

/* Finds redis-server on PATH, else /usr/bin/redis-server. Returns 0 and fills out, or -1. */
static int
s_find_redis(char *out, size_t outsz)
{
    const char *path = getenv("PATH");
    const char *p;
    const char *end;
    size_t n;

    p = path != NULL ? path : "";
    while (*p != '\0') {
        end = strchr(p, ':');
        n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n > 0 && n + sizeof("/redis-server") < outsz) {
            memcpy(out, p, n);
            esc_strlcpy(out + n, "/redis-server", outsz - n);
            if (access(out, X_OK) == 0) {
                return 0;
            }
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    esc_strlcpy(out, "/usr/bin/redis-server", outsz);
    if (access(out, X_OK) == 0) {
        return 0;
    }
    esc_log_error("redis-server not found on PATH nor at /usr/bin/redis-server (install the "
                  "redis-server package)");
    return -1;
}

/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
static int
s_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = -1;

    if (fd < 0) {
        esc_log_errno("socket");
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    else {
        esc_log_errno("bind 127.0.0.1:0");
    }
    close(fd);
    return port;
}

/* 0 when something answers PING on the unix socket with a +/- reply. */
static int
s_ping(const char *sock)
{
    struct sockaddr_un sa;
    struct timeval tv = { 0, 500000 };
    char buf[64];
    ssize_t n;
    int fd;
    int rc = -1;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    esc_strlcpy(sa.sun_path, sock, sizeof(sa.sun_path));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6) {
        n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0 && (buf[0] == '+' || buf[0] == '-')) {
            rc = 0;
        }
    }
    close(fd);
    return rc;
}

/* Copies the tail of the server's log to stderr, to explain a failed start. */
static void
s_dump_log(const struct esc_testenv_redis *r)
{
    char path[320];
    char buf[4096];
    ssize_t n;
    off_t size;
    int fd;

    snprintf(path, sizeof(path), "%s/redis.log", r->dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    size = lseek(fd, 0, SEEK_END);
    if (size > (off_t)sizeof(buf)) {
        lseek(fd, size - (off_t)sizeof(buf), SEEK_SET);
    }
    else {
        lseek(fd, 0, SEEK_SET);
    }
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n > 0) {
        esc_log_error("redis-server log follows dir=%s", r->dir);
        if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
            /* nothing else to do */
        }
    }
}

static void
s_reap(struct esc_testenv_redis *r, int sig, long wait_ms)
{
    int64_t deadline = esc_mono_ms() + wait_ms;
    pid_t w;

    if (r->pid <= 0) {
        return;
    }
    kill(r->pid, sig);
    for (;;) {
        w = waitpid(r->pid, NULL, WNOHANG);
        if (w == r->pid || (w < 0 && errno != EINTR)) {
            break;
        }
        if (esc_mono_ms() >= deadline) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, NULL, 0);
            break;
        }
        s_sleep_ms(5);
    }
    r->pid = 0;
}

/* Forks and execs redis-server for r (dir, sock, port, args set) and waits for PING.
 * Returns 0; or -1 with nothing left running, and *exited set when the server exited early. */
static int
s_spawn(struct esc_testenv_redis *r, int *exited)
{
    char bin[512];
    char port[16];
    char logfile[320];
    const char *argv[48];
    int argc = 0;
    int i;
    int status;
    int64_t deadline;
    pid_t parent = getpid();
    pid_t pid;
    int devnull;

    *exited = 0;
    if (s_find_redis(bin, sizeof(bin)) != 0) {
        return -1;
    }
    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(logfile, sizeof(logfile), "%s/redis.log", r->dir);
    argv[argc++] = bin;
    argv[argc++] = "--port";
    argv[argc++] = port;
    if (r->port > 0) {
        argv[argc++] = "--bind";
        argv[argc++] = "127.0.0.1";
    }
    argv[argc++] = "--unixsocket";
    argv[argc++] = r->sock;
    argv[argc++] = "--save";
    argv[argc++] = "";
    argv[argc++] = "--appendonly";
    argv[argc++] = "no";
    argv[argc++] = "--dir";
    argv[argc++] = r->dir;
    argv[argc++] = "--daemonize";
    argv[argc++] = "no";
    argv[argc++] = "--loglevel";
    argv[argc++] = "warning";
    argv[argc++] = "--logfile";
    argv[argc++] = logfile;
    for (i = 0; i < r->nargs; i++) {
        argv[argc++] = r->args[i];
    }
    argv[argc] = NULL;

    pid = fork();
    if (pid < 0) {
        esc_log_errno("fork");
        return -1;
    }
    if (pid == 0) {
        /* child: only async-signal-safe calls until exec */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDOUT_FILENO);
        }
        signal(SIGPIPE, SIG_DFL);
        execv(bin, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    r->pid = pid;
    deadline = esc_mono_ms() + S_READY_WAIT_MS;
    for (;;) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            r->pid = 0;
            *exited = 1;
            esc_log_error("redis-server exited during start status=%d dir=%s", status, r->dir);
            s_dump_log(r);
            return -1;
        }
        if (s_ping(r->sock) == 0) {
            return 0;
        }
        if (esc_mono_ms() >= deadline) {
            esc_log_error("redis-server did not answer PING within %d ms sock=%s",
                          S_READY_WAIT_MS, r->sock);
            s_dump_log(r);
            s_reap(r, SIGKILL, S_STOP_WAIT_MS);
            return -1;
        }
        s_sleep_ms(10);
    }
}

static void
s_rmdir(struct esc_testenv_redis *r)
{
    char path[600];
    struct dirent *de;
    DIR *d;

    if (r->dir[0] == '\0') {
        return;
    }
    d = opendir(r->dir);
    if (d != NULL) {
        for (;;) {
            de = readdir(d);
            if (de == NULL) {
                break;
            }
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
                continue;
            }
            snprintf(path, sizeof(path), "%s/%s", r->dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    if (rmdir(r->dir) != 0) {
        esc_log_errno("rmdir");
    }
    r->dir[0] = '\0';
}

int
esc_testenv_redis_start_args(struct esc_testenv_redis *r, int tcp, const char *const *extra)
{
    const char *tmp = getenv("TMPDIR");
    struct sockaddr_un sa;
    int tries;
    int exited = 0;

    memset(r, 0, sizeof(*r));
    for (; extra != NULL && extra[r->nargs] != NULL; r->nargs++) {
        if (r->nargs >= ESC_TESTENV_MAX_ARGS ||
            strlen(extra[r->nargs]) >= sizeof(r->args[r->nargs])) {
            esc_log_error("too many or too long extra redis-server arguments");
            r->nargs = 0;
            return -1;
        }
        esc_strlcpy(r->args[r->nargs], extra[r->nargs], sizeof(r->args[r->nargs]));
    }
    /* the socket path must fit sun_path (108 bytes) */
    if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) + 32 > sizeof(sa.sun_path)) {
        tmp = "/tmp";
    }
    snprintf(r->dir, sizeof(r->dir), "%s/esc-redis-XXXXXX", tmp);
    if (mkdtemp(r->dir) == NULL) {
        esc_log_errno("mkdtemp");
        r->dir[0] = '\0';
        return -1;
    }
    snprintf(r->sock, sizeof(r->sock), "%s/r.sock", r->dir);
    /* a free port can be taken by someone else before redis binds it: then try another */
    for (tries = 0; tries < S_PORT_TRIES; tries++) {
        if (tcp) {
            r->port = s_free_port();
            if (r->port < 0) {
                break;
            }
        }
        if (s_spawn(r, &exited) == 0) {
            return 0;
        }
        if (!tcp || !exited) {
            break;
        }
    }
    r->port = 0;
    s_rmdir(r);
    return -1;
}

int
esc_testenv_redis_start(struct esc_testenv_redis *r, int tcp)
{
    return esc_testenv_redis_start_args(r, tcp, NULL);
}

void
esc_testenv_redis_stop(struct esc_testenv_redis *r)
{
    s_reap(r, SIGTERM, S_STOP_WAIT_MS);
    s_rmdir(r);
}

int
esc_testenv_redis_kill(struct esc_testenv_redis *r)
{
    if (r->pid <= 0) {
        return -1;
    }
    s_reap(r, SIGKILL, S_STOP_WAIT_MS);
    return 0;
}

int
esc_testenv_redis_restart(struct esc_testenv_redis *r)
{
    int exited;

    if (r->dir[0] == '\0') {
        esc_log_error("restart of a redis that was never started or was stopped");
        return -1;
    }
    s_reap(r, SIGKILL, S_STOP_WAIT_MS);
    return s_spawn(r, &exited);
}

void
esc_testenv_kv_opts(const struct esc_testenv_redis *r, struct esc_kv_opts *o)
{
    memset(o, 0, sizeof(*o));
    if (r->port > 0) {
        o->host = "127.0.0.1";
        o->port = r->port;
    }
    else {
        o->unix_socket = r->sock;
    }
    o->db = 0;
    o->timeout_ms = 1000;
}
