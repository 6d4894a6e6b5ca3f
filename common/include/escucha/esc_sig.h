#ifndef ESC_SIG_H
#define ESC_SIG_H

/* Signals, read on the loop thread through a signalfd. Call esc_sig_init before creating the
 * ZeroMQ context so its I/O threads inherit the blocked mask. */

#include <stdint.h>

struct esc_drain {
    int draining;        /* set by the first SIGTERM/SIGINT: stop intake, flush, exit */
    int64_t deadline_ms; /* monotonic ms after which the service gives up flushing */
    int reload;          /* set by SIGHUP; the service clears it when handled */
};

/* Blocks SIGINT, SIGTERM, SIGHUP for the thread (and threads created later), ignores SIGPIPE,
 * and returns a non-blocking signalfd for them, or -1 (logged). */
int esc_sig_init(void);

/* Reads pending signals from fd and updates d: the first TERM/INT sets draining and
 * deadline = now + grace_ms; a second one exits the process at once with status 1;
 * HUP sets reload. Never logs from a signal handler (there is none). */
void esc_sig_handle(int fd, struct esc_drain *d, int64_t grace_ms);

#endif
