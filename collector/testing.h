#ifndef COL_TESTING_H
#define COL_TESTING_H

/* Test support for the connector tests (compiled into test programs only): the platform
 * fixture server (tests/support/platform_fixture.py, real HTTP over loopback) run as a child
 * process, and a "rig" that plays the collector host for one or more source instances in
 * process: a private redis-server, the real col_net_t and col_state_t, instances built from a
 * JSON "sources" array exactly as the host builds them, a loop that polls them and waits on the
 * network like col_run, and an emit callback that keeps a deep copy of every post. The rig's
 * stderr goes to a file so tests can check log lines. Single-threaded. */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "col_source.h"
#include "esc_testenv.h"

#include "escucha/esc_cfg.h"
#include "escucha/esc_msg.h"

#define COL_RIG_SOURCES_MAX 4
#define COL_RIG_POSTS_MAX 1024

struct col_fixture {
    pid_t pid;       /* the python server, 0 when not running */
    int port;
    char base[64];   /* http://127.0.0.1:<port> */
    char log[320];   /* its request log (JSON lines) */
};

/* Starts the fixture with the scenario file (path relative to the repository root, the tests'
 * working directory) logging requests to log_path. Returns 0, or -1 (printed). */
int col_fixture_start(struct col_fixture *f, const char *scenario, const char *log_path);
void col_fixture_stop(struct col_fixture *f);
/* The requests logged so far as a new JSON array (each {"t","method","path","query",...}). */
json_t *col_fixture_requests(const struct col_fixture *f);
/* Requests whose path equals path (NULL: all). */
size_t col_fixture_count(const struct col_fixture *f, const char *path);
/* Query value `key` of the n-th request (0-based, all paths) or NULL; borrowed from reqs. */
const char *col_fixture_query(json_t *reqs, size_t n, const char *key);

struct col_rig {
    char dir[128];                     /* temp dir: config, logs */
    struct esc_testenv_redis redis;
    struct col_fixture fx;
    struct esc_cfg *cfg;
    col_net_t *net;
    col_state_t *state;
    struct col_source ins[COL_RIG_SOURCES_MAX];
    size_t n_ins;
    struct esc_post posts[COL_RIG_POSTS_MAX]; /* every post emitted, in order (deep copies) */
    size_t n_posts;
    size_t close_after;                /* emit answers ESC_CLOSED once n_posts reaches it */
    int saved_stderr;                  /* the real stderr while redirected */
    int stderr_redirected;
    char log_path[192];
    int redis_started;
};

/* Makes a temp dir, starts redis and the fixture with scenario and redirects stderr into the
 * rig's log. Returns 0 or -1. r is initialised here. */
int col_rig_start(struct col_rig *r, const char *scenario);
/* Builds and initialises the instances of sources_json (a JSON array; "{base}" is replaced by
 * the fixture's URL). Returns the number whose init succeeded, -1 when the config is invalid
 * (the reason goes to stderr). */
int col_rig_sources(struct col_rig *r, const char *sources_json);
/* Runs the host loop until n_posts posts were emitted in total or ms passed. Returns the number
 * of posts emitted in total. */
size_t col_rig_run(struct col_rig *r, size_t n_posts, int64_t ms);
/* Simulates a collector restart: every instance's exit, a fresh state (memory empty, same
 * Redis) and net, and init again from the same config. */
void col_rig_restart(struct col_rig *r);
/* Stops everything (sources, fixture, redis), restores stderr, echoes the captured log to it
 * and removes the temp dir. Safe on a zeroed, partly started or already stopped rig (so it can
 * be a cmocka teardown). */
void col_rig_stop(struct col_rig *r);
/* What the rig's code logged so far; caller owns (esc_free). */
char *col_rig_log(const struct col_rig *r);
/* cmocka setup/teardown: *state becomes a zeroed rig (esc_calloc), and is stopped and freed. */
int col_rig_setup(void **state);
int col_rig_teardown(void **state);
/* Runs a one-argument Redis command (fmt like "GET %s") on the rig's redis; returns the string
 * reply (caller owns) or NULL for nil / non-string replies. */
char *col_rig_redis(struct col_rig *r, const char *fmt, const char *arg);

/* Index of the post with id, or -1. */
int col_rig_find(const struct col_rig *r, const char *id);
/* Number of posts with that id (for duplicate checks). */
size_t col_rig_count_id(const struct col_rig *r, const char *id);

#endif
