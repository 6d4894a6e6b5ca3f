#ifndef CLI_STATUS_H
#define CLI_STATUS_H

/* The live status of `escucha up`, rendered from a snapshot (struct cli_view) the supervisor
 * fills once a second: a block redrawn in place on a terminal, or one line per update when the
 * output is a file or a pipe. Pure formatting, no I/O. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cli_pstate {
    CLI_P_WAITING,  /* not started yet */
    CLI_P_STARTING, /* started, not answering yet */
    CLI_P_UP,       /* running and answering */
    CLI_P_BACKOFF,  /* died; started again after a delay */
    CLI_P_DONE,     /* exited 0 on its own (a collector whose sources are all done) */
    CLI_P_FAILED,   /* exited 2 (invalid config): not restarted */
    CLI_P_STOPPING, /* SIGTERM sent, draining */
    CLI_P_STOPPED,  /* gone after the stop */
};

/* "waiting", "starting", "up", ...; never NULL. */
const char *cli_pstate_name(enum cli_pstate s);

#define CLI_VIEW_PROCS 72 /* redis, up to 64 classifiers and the other services */
#define CLI_VIEW_EVENTS 6 /* recent events kept for the terminal view */

struct cli_proc_view {
    char name[32];         /* "redis", "broker", "classifier2", ... */
    enum cli_pstate state;
    int pid;               /* 0 when not running */
    unsigned restarts;     /* times started again after dying */
    bool crashing;         /* dies again soon after each start */
    int64_t since_ms;      /* up/starting/stopping: time since start; backoff: time to restart */
    char where[160];       /* what it serves: metrics address, socket, URL */
    char why[200];         /* last unexpected exit: "exit status 1: <last log line>" */
};

struct cli_view {
    char deployment[64];
    char run_dir[512];
    char redis[320];       /* "private redis-server, unix socket ..." or the configured one */
    char dashboard[128];   /* "http://127.0.0.1:8080/", "" without an API */
    int64_t up_ms;         /* time since `escucha up` started */
    bool stopping;
    size_t n_procs;
    struct cli_proc_view procs[CLI_VIEW_PROCS];
    /* Pipeline figures, NAN while unknown (no process of that stage answered yet). Totals
     * count every post since `escucha up` started, across restarts; rates are per second. */
    double collected, collected_rate;   /* posts the collector sent to the broker */
    double brokered, brokered_rate;     /* posts the broker passed to the classifiers */
    double classified_in_rate;          /* posts the classifiers took */
    double classified, classified_rate; /* posts the classifiers sent to the aggregator */
    double agg_in_rate;                 /* posts the aggregator took */
    double counted, counted_rate;       /* posts whose counts reached Redis */
    double backlog_broker;      /* sent by the collector, not yet passed on by the broker */
    double backlog_classifiers; /* passed by the broker, not yet taken by a classifier */
    double backlog_aggregator;  /* sent by the classifiers, not yet taken by the aggregator */
    double pending_redis;       /* held by the aggregator until Redis counts them */
    double alerts_raised;       /* spike alerts the aggregator raised */
    double alerts_received;     /* alerts the notifier took */
    double alerts_sent;         /* deliveries the receivers accepted */
    double alerts_queued;       /* deliveries waiting or being retried */
    double alerts_failed;       /* deliveries refused or given up (dead-lettered) */
    size_t n_events;
    char events[CLI_VIEW_EVENTS][200]; /* recent supervisor events, oldest first */
};

/* One line (no newline) for a file or pipe. Returns the length written (cut at outsz - 1). */
size_t cli_status_line(const struct cli_view *v, char *out, size_t outsz);

/* The terminal block: lines cut to cols - 1 characters, at most rows - 1 lines (events are
 * dropped first), each ending in "\n". Returns the number of lines. */
int cli_status_block(const struct cli_view *v, int cols, int rows, char *out, size_t outsz);

/* "45s", "3m05s", "2h03m", "3d04h". Returns out. */
char *cli_fmt_duration(int64_t ms, char *out, size_t outsz);

#endif
