#ifndef CLI_UP_H
#define CLI_UP_H

/* `escucha up CONFIG`: runs the whole pipeline on this machine (docs/operations.md, "One
 * command: escucha up"). A private redis-server when the config names no reachable Redis,
 * then the notifier, the aggregator, N classifiers, the broker, the API (when the config has
 * an "api" section) and the collector, each waited for before the next starts. Children that
 * die are restarted with backoff; a live status shows processes, posts per second per stage,
 * backlogs and alerts; SIGINT/SIGTERM stops everything upstream first. */

#include <stdbool.h>
#include <stdint.h>

#define CLI_UP_CLASSIFIERS_MAX 64

enum cli_redis_mode {
    CLI_REDIS_AUTO,    /* the configured Redis if the config names one and it answers, else a
                          private redis-server */
    CLI_REDIS_CONFIG,  /* the configured Redis; an error when it does not answer */
    CLI_REDIS_PRIVATE, /* always a private redis-server */
};

struct cli_up_opts {
    const char *config;          /* deployment config file */
    int classifiers;             /* 1 .. CLI_UP_CLASSIFIERS_MAX */
    const char *bin_dir;         /* NULL: next to the escucha binary (or the build tree) */
    const char *run_dir;         /* logs, the private Redis socket, up.env */
    bool no_status;              /* no live status at all */
    enum cli_redis_mode redis;
    bool redis_persist;          /* the private Redis keeps an append-only file in run_dir */
    int64_t stop_timeout_ms;     /* per stage, before SIGKILL */
};

/* Runs until SIGINT/SIGTERM (or SIGHUP). Returns the exit status: 0 when every child stopped
 * cleanly (exit 0 on SIGTERM), 1 when something had to be killed, exited non-zero while
 * stopping, or could not start (missing binary, port in use, Redis not reachable), 2 when the
 * config is invalid (the message is the service's own --check-config answer). */
int cli_up_run(const struct cli_up_opts *opts);

#endif
