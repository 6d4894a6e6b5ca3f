#ifndef NTF_TESTPROC_H
#define NTF_TESTPROC_H

/* Test support for the notifier's component tests: child processes (the notifier binary, the
 * python sinks) with stdout on a pipe and stderr in a file, temp dirs, whole-file reads.
 * Children get PR_SET_PDEATHSIG so a crashed test leaves nothing running. Test code only. */

#include <stddef.h>
#include <sys/types.h>

struct ntf_proc {
    pid_t pid;       /* 0 when not running */
    int out_fd;      /* read end of the child's stdout, -1 when none */
    char buf[4096];  /* stdout bytes read but not yet returned as lines */
    size_t len;
    int status;      /* exit status once reaped: 0..255, 128+signal when killed */
};

/* Starts argv[0] (a path) with stdout piped and stderr appended to stderr_path (NULL: inherited).
 * Returns 0 or -1 (message on stderr). */
int ntf_proc_start(struct ntf_proc *p, char *const argv[], const char *stderr_path);
/* Reads one line of the child's stdout (without the newline) within timeout_ms. 0 or -1. */
int ntf_proc_read_line(struct ntf_proc *p, char *line, size_t n, int timeout_ms);
/* Waits up to timeout_ms for the exit; returns the status (see above) or -1 on timeout. */
int ntf_proc_wait(struct ntf_proc *p, int timeout_ms);
/* Sends sig and waits up to timeout_ms (then SIGKILL). Returns the status, -1 if it had to be
 * killed, or the earlier status when it had already exited. */
int ntf_proc_stop(struct ntf_proc *p, int sig, int timeout_ms);
/* Runs argv to completion (timeout_ms, then SIGKILL), stdout copied into out (NUL-terminated).
 * Returns the status or -1. */
int ntf_proc_run(char *const argv[], const char *stderr_path, char *out, size_t outsz,
                 int timeout_ms);

/* Makes a fresh directory under /tmp into out. 0 or -1. */
int ntf_test_tmpdir(char *out, size_t outsz);
/* Removes dir and everything under it. */
void ntf_test_rmtree(const char *dir);
/* Whole file as a NUL-terminated caller-owned (esc_free) buffer, or NULL. */
char *ntf_test_slurp(const char *path, size_t *len);
/* Writes s to path. 0 or -1. */
int ntf_test_write(const char *path, const char *s);
/* Counts the lines of path (0 when missing). */
int ntf_test_count_lines(const char *path);

#endif
