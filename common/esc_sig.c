#define ESC_LOG_MODULE "sig"
/* Signals without handlers: SIGINT/SIGTERM/SIGHUP are blocked and read from a signalfd on the
 * service's loop thread, so draining and reloading run as ordinary code. Blocking happens before
 * the ZeroMQ context exists so its I/O threads inherit the mask and never take the signal. */
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "escucha/esc_log.h"
#include "escucha/esc_sig.h"
#include "escucha/esc_util.h"

int
esc_sig_init(void)
{
    sigset_t set;
    int fd;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
        esc_log_errno("pthread_sigmask");
        return -1;
    }
    fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        esc_log_errno("signalfd");
    }
    return fd;
}

void
esc_sig_handle(int fd, struct esc_drain *d, int64_t grace_ms)
{
    struct signalfd_siginfo si;

    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            d->reload = 1;
            esc_log_info("reload requested signal=HUP");
            continue;
        }
        if (d->draining) {
            esc_log_warn("second stop signal, exiting now signal=%s",
                         si.ssi_signo == SIGINT ? "INT" : "TERM");
            _exit(1);
        }
        d->draining = 1;
        d->deadline_ms = esc_mono_ms() + grace_ms;
        esc_log_info("draining signal=%s grace_ms=%lld", si.ssi_signo == SIGINT ? "INT" : "TERM",
                     (long long)grace_ms);
    }
}
