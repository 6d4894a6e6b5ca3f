#ifndef ESC_TESTENV_H
#define ESC_TESTENV_H

/* Test support: a real redis-server per test, in its own temporary directory, for cmocka
 * component tests and the e2e harness. No hiredis here (only esc_kv.c uses it): readiness is
 * checked with a raw PING on the unix socket. The child gets PR_SET_PDEATHSIG so a test that
 * dies does not leave a redis-server behind. A missing redis-server is a failure (start
 * returns -1 and says why on stderr), never a silent skip. Single-threaded use only. */

#include <sys/types.h>

#include "escucha/esc_kv.h"

#define ESC_TESTENV_MAX_ARGS 8 /* extra redis-server arguments kept for restarts */

struct esc_testenv_redis {
    pid_t pid;                                  /* redis-server, 0 when not running */
    char dir[256];                              /* temp dir: socket, log (removed by stop) */
    char sock[300];                             /* unix socket path <dir>/r.sock */
    int port;                                   /* TCP port on 127.0.0.1, 0 when unix only */
    char args[ESC_TESTENV_MAX_ARGS][128];       /* extra arguments, reused by restart */
    int nargs;                                  /* number of entries in args */
};

/* Makes a temp dir (mkdtemp under $TMPDIR, or /tmp when unset or too long for a socket path)
 * and starts `redis-server` (from PATH, else /usr/bin/redis-server) with --port 0 --unixsocket
 * <dir>/r.sock --save "" --appendonly no --dir <dir> --daemonize no --loglevel warning (log in
 * <dir>/redis.log). When tcp != 0 it also listens on 127.0.0.1 on a free port (found by binding
 * port 0 and releasing it), stored in r->port. Waits up to ~5 s for PING to be answered.
 * Returns 0, or -1 after printing the reason (and the redis log) to stderr; on -1 nothing is
 * left running and the dir is removed. r is fully (re)initialised. */
int esc_testenv_redis_start(struct esc_testenv_redis *r, int tcp);

/* Same, with extra redis-server arguments appended (NULL-terminated list, may be NULL; at most
 * ESC_TESTENV_MAX_ARGS, each < 128 bytes), e.g. { "--requirepass", "s3cret", NULL }. They are
 * copied into r and used again by esc_testenv_redis_restart. Returns 0 or -1 as above. */
int esc_testenv_redis_start_args(struct esc_testenv_redis *r, int tcp, const char *const *extra);

/* SIGTERM, waits for the exit (SIGKILL after 5 s), removes the dir and its files. Safe to call
 * twice, after kill, or after a failed start. */
void esc_testenv_redis_stop(struct esc_testenv_redis *r);

/* SIGKILL and reap, for fault tests: the dir and the stale socket file stay so that
 * esc_testenv_redis_restart can bring the server back at the same address. Returns 0, or -1
 * when no server was running. */
int esc_testenv_redis_kill(struct esc_testenv_redis *r);

/* Starts redis-server again (killing the running one first, if any) on the same dir, socket,
 * port and extra arguments, with an empty dataset. Waits for PING like start. Returns 0 or -1. */
int esc_testenv_redis_restart(struct esc_testenv_redis *r);

/* Fills o for a connection to r: over TCP (127.0.0.1:r->port) when r was started with tcp,
 * else over the unix socket; db 0, no auth, timeout 1000 ms. Strings in o are borrowed from r
 * (valid while r is). */
void esc_testenv_kv_opts(const struct esc_testenv_redis *r, struct esc_kv_opts *o);

#endif
