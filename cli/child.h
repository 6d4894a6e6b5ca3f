#ifndef CLI_CHILD_H
#define CLI_CHILD_H

/* Child processes of `escucha up`: the restart backoff, the environment a child gets, starting
 * a child with its output in a log file, running a command and capturing its output, and the
 * last line of a log (why a child died). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CLI_BACKOFF_MIN_MS 1000    /* first restart delay */
#define CLI_BACKOFF_MAX_MS 30000   /* the delay doubles up to this */
#define CLI_BACKOFF_RESET_MS 60000 /* a child up this long starts again from the minimum */
#define CLI_BACKOFF_CRASHING 3     /* this many quick exits in a row: "crashing" */

/* Restart delay of one child. Zero-initialise. */
struct cli_backoff {
    int64_t delay_ms; /* last delay handed out, 0 = none yet */
    unsigned fails;   /* exits in a row that came before CLI_BACKOFF_RESET_MS of uptime */
};

/* The child exited after up_ms of running: returns how long to wait before starting it again
 * (1 s, 2 s, 4 s ... 30 s; back to 1 s when it had stayed up 60 s). */
int64_t cli_backoff_next(struct cli_backoff *b, int64_t up_ms);
/* True when the child keeps dying soon after each start (CLI_BACKOFF_CRASHING times). */
bool cli_backoff_crashing(const struct cli_backoff *b);

/* Builds the environment of a child: every entry of base, with the "NAME=value" strings of
 * overrides replacing the entries of the same NAME or added after them. Returns a
 * NULL-terminated, caller-owned array (cli_env_free). */
char **cli_env_build(char *const *base, const char *const *overrides, size_t n_overrides);
void cli_env_free(char ***env_p);

/* How to start one child. */
struct cli_spawn {
    const char *path;   /* absolute path of the executable */
    char *const *argv;  /* argv[0] first, NULL-terminated; borrowed */
    char *const *envp;  /* NULL-terminated; borrowed */
    const char *log;    /* stdout and stderr go to this file */
    bool truncate;      /* start the log afresh (else append) */
};

/* Starts the child in its own process group (a Ctrl-C on the terminal reaches only
 * `escucha up`, which stops the children in order), with an empty signal mask, stdin from
 * /dev/null, no inherited descriptors, and SIGTERM sent to it should `escucha up` die. Must be
 * called from the main thread. Returns the pid, or -1 (logged). */
pid_t cli_spawn(const struct cli_spawn *sp);

/* Runs path with argv/envp, stdout and stderr captured into out (NUL-terminated, cut at
 * outsz - 1), and waits for it. Returns the exit status (0-255), 128 + signal when killed, or
 * -1 when it could not run (logged). */
int cli_run_capture(const char *path, char *const *argv, char *const *envp, char *out,
                    size_t outsz);

/* Copies the last non-empty line of the file at path (its last 4 KiB) into out; "" when none. */
void cli_log_last_line(const char *path, char *out, size_t outsz);

/* Describes a wait() status: "exit status 1", "killed by signal KILL". */
void cli_wait_describe(int status, char *out, size_t outsz);

#endif
