#define ESC_LOG_MODULE "child"
/* Child processes of `escucha up` (see child.h). A child is started with fork + execve: between
 * the two only async-signal-safe calls run (the descriptors, the signal mask, the process group
 * and the parent-death signal), and everything it needs (argv, environment, the open log) is
 * prepared before the fork. Each child gets its own process group so a Ctrl-C on the terminal
 * reaches only the supervisor, which then stops the pipeline upstream first; PR_SET_PDEATHSIG
 * makes sure no child outlives a supervisor that was killed. Single-threaded. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "child.h"

int64_t
cli_backoff_next(struct cli_backoff *b, int64_t up_ms)
{
    if (up_ms >= CLI_BACKOFF_RESET_MS) {
        b->delay_ms = 0;
        b->fails = 0;
    }
    b->fails++;
    if (b->delay_ms == 0) {
        b->delay_ms = CLI_BACKOFF_MIN_MS;
    }
    else {
        b->delay_ms = b->delay_ms * 2 > CLI_BACKOFF_MAX_MS ? CLI_BACKOFF_MAX_MS : b->delay_ms * 2;
    }
    return b->delay_ms;
}

bool
cli_backoff_crashing(const struct cli_backoff *b)
{
    return b->fails >= CLI_BACKOFF_CRASHING;
}

/* Length of the NAME part of "NAME=value" (the whole string when there is no '='). */
static size_t
s_env_name_len(const char *kv)
{
    const char *eq = strchr(kv, '=');

    return eq != NULL ? (size_t)(eq - kv) : strlen(kv);
}

char **
cli_env_build(char *const *base, const char *const *overrides, size_t n_overrides)
{
    size_t n_base = 0;
    size_t n = 0;
    size_t i;
    size_t k;
    char **env;

    while (base != NULL && base[n_base] != NULL) {
        n_base++;
    }
    env = esc_calloc(n_base + n_overrides + 1, sizeof(*env));
    for (i = 0; i < n_base; i++) {
        size_t len = s_env_name_len(base[i]);
        bool replaced = false;

        for (k = 0; k < n_overrides; k++) {
            if (s_env_name_len(overrides[k]) == len && strncmp(overrides[k], base[i], len) == 0) {
                replaced = true;
                break;
            }
        }
        if (!replaced) {
            env[n++] = esc_strdup(base[i]);
        }
    }
    for (k = 0; k < n_overrides; k++) {
        bool dup = false;

        /* A later override of the same name wins over an earlier one. */
        for (i = k + 1; i < n_overrides; i++) {
            size_t len = s_env_name_len(overrides[k]);

            if (s_env_name_len(overrides[i]) == len
                && strncmp(overrides[i], overrides[k], len) == 0) {
                dup = true;
                break;
            }
        }
        if (!dup) {
            env[n++] = esc_strdup(overrides[k]);
        }
    }
    env[n] = NULL;
    return env;
}

void
cli_env_free(char ***env_p)
{
    char **env;
    size_t i;

    if (env_p == NULL || *env_p == NULL) {
        return;
    }
    env = *env_p;
    for (i = 0; env[i] != NULL; i++) {
        esc_free(env[i]);
    }
    esc_free(env);
    *env_p = NULL;
}

/* After fork, in the child: only async-signal-safe calls. out_fd gets stdout and stderr. */
static void
s_child_exec(pid_t parent, int out_fd, const char *path, char *const *argv, char *const *envp)
{
    static const int reset[] = { SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGQUIT };
    static const char msg[] = "escucha up: cannot execute ";
    struct sigaction dfl;
    sigset_t none;
    size_t i;
    int null_fd;

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) {
        _exit(127); /* the supervisor is already gone */
    }
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (i = 0; i < ESC_ARRAY_LEN(reset); i++) {
        sigaction(reset[i], &dfl, NULL);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) {
        dup2(null_fd, STDIN_FILENO);
    }
    dup2(out_fd, STDOUT_FILENO);
    dup2(out_fd, STDERR_FILENO);
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
        int fd;

        for (fd = 3; fd < 4096; fd++) {
            close(fd);
        }
    }
    execve(path, argv, envp);
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) > 0
        && write(STDERR_FILENO, path, strlen(path)) > 0) {
        (void)!write(STDERR_FILENO, "\n", 1);
    }
    _exit(127);
}

pid_t
cli_spawn(const struct cli_spawn *sp)
{
    pid_t parent = getpid();
    pid_t pid;
    int fd;

    fd = open(sp->log, O_WRONLY | O_CREAT | O_CLOEXEC | (sp->truncate ? O_TRUNC : O_APPEND),
              0644);
    if (fd < 0) {
        esc_log_error("cannot open log path=%s err=\"%s\"", sp->log, strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        esc_log_errno("fork");
        close(fd);
        return -1;
    }
    if (pid == 0) {
        s_child_exec(parent, fd, sp->path, sp->argv, sp->envp);
    }
    close(fd);
    return pid;
}

int
cli_run_capture(const char *path, char *const *argv, char *const *envp, char *out, size_t outsz)
{
    pid_t parent = getpid();
    size_t len = 0;
    int fds[2];
    int status;
    pid_t pid;

    out[0] = '\0';
    if (pipe2(fds, O_CLOEXEC) != 0) {
        esc_log_errno("pipe2");
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        esc_log_errno("fork");
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        s_child_exec(parent, fds[1], path, argv, envp);
    }
    close(fds[1]);
    for (;;) {
        char buf[1024];
        ssize_t r = read(fds[0], buf, sizeof(buf));

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        if (len + 1 < outsz) {
            size_t take = (size_t)r < outsz - 1 - len ? (size_t)r : outsz - 1 - len;

            memcpy(out + len, buf, take);
            len += take;
            out[len] = '\0';
        }
    }
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            esc_log_errno("waitpid");
            return -1;
        }
    }
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

void
cli_log_last_line(const char *path, char *out, size_t outsz)
{
    char buf[4096 + 1];
    ssize_t n;
    off_t size;
    char *end;
    char *start;
    int fd;

    out[0] = '\0';
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    size = lseek(fd, 0, SEEK_END);
    if (size < 0) {
        close(fd);
        return;
    }
    n = pread(fd, buf, sizeof(buf) - 1, size > 4096 ? size - 4096 : 0);
    close(fd);
    if (n <= 0) {
        return;
    }
    buf[n] = '\0';
    end = buf + n;
    while (end > buf && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) {
        end--;
    }
    *end = '\0';
    start = end;
    while (start > buf && start[-1] != '\n') {
        start--;
    }
    esc_strlcpy(out, start, outsz);
}

void
cli_wait_describe(int status, char *out, size_t outsz)
{
    if (WIFEXITED(status)) {
        snprintf(out, outsz, "exit status %d", WEXITSTATUS(status));
    }
    else if (WIFSIGNALED(status)) {
        const char *name = sigabbrev_np(WTERMSIG(status));

        if (name != NULL) {
            snprintf(out, outsz, "killed by signal %s%s", name,
                     WCOREDUMP(status) ? " (core dumped)" : "");
        }
        else {
            snprintf(out, outsz, "killed by signal %d", WTERMSIG(status));
        }
    }
    else {
        snprintf(out, outsz, "wait status %d", status);
    }
}
