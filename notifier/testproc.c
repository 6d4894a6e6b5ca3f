#define ESC_LOG_MODULE "testproc"
/* Child processes and files for the notifier's component tests (see testproc.h). The child's
 * stdout is read through a pipe with poll(2), so a test waits for a sink's port line with a
 * timeout instead of sleeping. Single-threaded test code. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "testproc.h"

int
ntf_proc_start(struct ntf_proc *p, char *const argv[], const char *stderr_path)
{
    int fds[2];
    pid_t parent = getpid();

    memset(p, 0, sizeof(*p));
    p->out_fd = -1;
    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("pipe2");
        return -1;
    }
    fflush(NULL);
    p->pid = fork();
    if (p->pid < 0) {
        perror("fork");
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (p->pid == 0) {
        sigset_t none;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        dup2(fds[1], STDOUT_FILENO);
        if (stderr_path != NULL) {
            int fd = open(stderr_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

            if (fd >= 0) {
                dup2(fd, STDERR_FILENO);
                close(fd);
            }
        }
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    p->out_fd = fds[0];
    return 0;
}

int
ntf_proc_read_line(struct ntf_proc *p, char *line, size_t n, int timeout_ms)
{
    int64_t deadline = esc_mono_ms() + timeout_ms;

    for (;;) {
        char *nl = memchr(p->buf, '\n', p->len);
        struct pollfd pfd;
        ssize_t r;
        int64_t left;

        if (nl != NULL) {
            size_t k = (size_t)(nl - p->buf);

            if (k >= n) {
                k = n - 1;
            }
            memcpy(line, p->buf, k);
            line[k] = '\0';
            p->len -= (size_t)(nl - p->buf) + 1;
            memmove(p->buf, nl + 1, p->len);
            return 0;
        }
        left = deadline - esc_mono_ms();
        if (left <= 0 || p->out_fd < 0 || p->len == sizeof(p->buf)) {
            return -1;
        }
        pfd.fd = p->out_fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, (int)left) <= 0) {
            continue;
        }
        r = read(p->out_fd, p->buf + p->len, sizeof(p->buf) - p->len);
        if (r <= 0) {
            return -1;
        }
        p->len += (size_t)r;
    }
}

static int
s_decode(int st)
{
    if (WIFEXITED(st)) {
        return WEXITSTATUS(st);
    }
    return 128 + WTERMSIG(st);
}

int
ntf_proc_wait(struct ntf_proc *p, int timeout_ms)
{
    int64_t deadline = esc_mono_ms() + timeout_ms;
    int st;

    if (p->pid <= 0) {
        return p->status;
    }
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);

        if (r == p->pid) {
            p->status = s_decode(st);
            p->pid = 0;
            if (p->out_fd >= 0) {
                close(p->out_fd);
                p->out_fd = -1;
            }
            return p->status;
        }
        if (r < 0 || esc_mono_ms() >= deadline) {
            return -1;
        }
        usleep(10000);
    }
}

int
ntf_proc_stop(struct ntf_proc *p, int sig, int timeout_ms)
{
    int st;

    if (p->pid <= 0) {
        return p->status;
    }
    kill(p->pid, sig);
    st = ntf_proc_wait(p, timeout_ms);
    if (st < 0) {
        kill(p->pid, SIGKILL);
        ntf_proc_wait(p, 5000);
        return -1;
    }
    return st;
}

int
ntf_proc_run(char *const argv[], const char *stderr_path, char *out, size_t outsz,
             int timeout_ms)
{
    struct ntf_proc p;
    int64_t deadline = esc_mono_ms() + timeout_ms;
    size_t used = 0;

    out[0] = '\0';
    if (ntf_proc_start(&p, argv, stderr_path) != 0) {
        return -1;
    }
    for (;;) {
        struct pollfd pfd = { p.out_fd, POLLIN, 0 };
        int64_t left = deadline - esc_mono_ms();
        ssize_t r;

        if (left <= 0) {
            ntf_proc_stop(&p, SIGKILL, 5000);
            return -1;
        }
        if (poll(&pfd, 1, (int)left) <= 0) {
            continue;
        }
        r = read(p.out_fd, out + used, outsz - 1 - used);
        if (r <= 0) {
            break;
        }
        used += (size_t)r;
        out[used] = '\0';
        if (used == outsz - 1) {
            break;
        }
    }
    return ntf_proc_wait(&p, (int)(deadline - esc_mono_ms()) + 1000);
}

int
ntf_test_tmpdir(char *out, size_t outsz)
{
    if ((size_t)snprintf(out, outsz, "/tmp/ntf-test-XXXXXX") >= outsz || mkdtemp(out) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

static int
s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path); /* best effort: a leftover file only wastes /tmp space */
    return 0;
}

void
ntf_test_rmtree(const char *dir)
{
    if (dir != NULL && strncmp(dir, "/tmp/ntf-test-", 14) == 0) {
        nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    }
}

char *
ntf_test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 4096;
    size_t n = 0;
    char *buf;

    if (f == NULL) {
        return NULL;
    }
    buf = esc_malloc(cap);
    for (;;) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);

        n += r;
        if (n < cap - 1) {
            break;
        }
        cap *= 2;
        buf = esc_realloc(buf, cap);
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL) {
        *len = n;
    }
    return buf;
}

int
ntf_test_write(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    int rc;

    if (f == NULL) {
        return -1;
    }
    rc = fputs(s, f) < 0 ? -1 : 0;
    return fclose(f) == 0 ? rc : -1;
}

int
ntf_test_count_lines(const char *path)
{
    char *s = ntf_test_slurp(path, NULL);
    int n = 0;
    size_t i;

    if (s == NULL) {
        return 0;
    }
    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] == '\n') {
            n++;
        }
    }
    esc_free(s);
    return n;
}
