#define ESC_LOG_MODULE "jsonl"
/* Source plugin "jsonl": reads posts from a file with one post per line in the project's JSON
 * shape (docs/collector.md), the way a platform connector would deliver them. Lines of up to
 * ESC_MSG_MAX bytes are read through one fixed buffer; a longer line, a line that is not a valid
 * post, or a post the host rejects is logged with its line number and skipped, and blank lines
 * are ignored. With follow=true the file is read like `tail -F`: appended lines are picked up,
 * an unterminated last line waits for its newline, truncation restarts at the top and a
 * replaced file (rotation) is reopened. Optional pacing (rate, posts/s) spreads the posts out.
 * Work is done in batches of at most `budget` lines per poll so the host stays responsive.
 * Runs on the collector's loop thread only. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "col_source.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define S_CAP ((size_t)ESC_MSG_MAX + 1) /* a line of ESC_MSG_MAX bytes plus its newline */
#define S_SKIP_READS_MAX 16             /* reads per call while dropping an over-long line */
#define S_FOLLOW_MS 250                 /* how often a followed file is checked at its end */
#define S_REOPEN_MS 1000                /* how often a missing followed file is retried */
#define S_RATE_CREDIT_MS 100.0          /* pacing may catch up this much lost time */

struct src_jsonl_cfg {
    char path[1024]; /* file to read, relative to the working directory */
    bool follow;     /* keep reading appended lines at the end of the file */
    double rate;     /* posts per second, 0 = as fast as the bus accepts */
};

struct s_jsonl {
    const struct src_jsonl_cfg *cfg; /* borrowed from the instance */
    int fd;                          /* open file, -1 when not open */
    dev_t dev;                       /* identity of the open file, to notice rotation */
    ino_t ino;
    off_t offset;  /* bytes read from fd so far, to notice truncation */
    char *buf;     /* S_CAP bytes; unconsumed input is buf[start, end) */
    size_t start;
    size_t end;
    int64_t line;   /* number of the last line taken from the file */
    int skipping;   /* dropping the rest of an over-long line up to its newline */
    double next_ms; /* pacing: monotonic time at which the next post may go */
    int open_failing; /* the last open failed (logged once per outage) */
};

/* What s_next_line found. */
enum s_read {
    S_LINE,  /* a complete line */
    S_EOF,   /* no complete line before the end of the file */
    S_AGAIN, /* still dropping an over-long line; call again */
    S_FAIL,  /* read error (logged) */
};

static const struct esc_cfg_entry s_cfg_map[] = {
    ESC_CFG_STR("path", NULL, struct src_jsonl_cfg, path,
                "file with one post per line in the escucha JSON shape (relative paths are "
                "relative to the working directory)"),
    ESC_CFG_BOOL("follow", "false", struct src_jsonl_cfg, follow,
                 "keep reading lines appended to the file, like tail -F (a missing file is "
                 "retried every second); false: the source is done at the end of the file"),
    ESC_CFG_DBL("rate", "0", 0, 1000000, struct src_jsonl_cfg, rate,
                "posts per second to send, 0 = as fast as the bus accepts"),
    ESC_CFG_END,
};

static esc_rc
s_validate(const void *cfg, const char *path, struct esc_error *err)
{
    const struct src_jsonl_cfg *c = cfg;

    if (c->path[0] == '\0') {
        esc_error_set(err, 0, "%s.path: must not be empty", path);
        return ESC_INVALID;
    }
    return ESC_OK;
}

/* Copies reason into out without the input that jansson quotes after " near '" (up to the
 * last "' at column"): that may be post text, which is never logged above debug. Returns 1 when
 * something was cut. */
static int
s_reason_without_input(const char *reason, char *out, size_t outsz)
{
    const char *near = strstr(reason, " near '");
    const char *tail = NULL;
    const char *p;

    esc_strlcpy(out, reason, outsz);
    if (near == NULL) {
        return 0;
    }
    for (p = strstr(near, "' at column "); p != NULL; p = strstr(p + 1, "' at column ")) {
        tail = p;
    }
    if ((size_t)(near - reason) < outsz) {
        out[near - reason] = '\0';
        if (tail != NULL) {
            size_t used = strlen(out);

            esc_strlcpy(out + used, tail + 1, outsz - used);
        }
    }
    return 1;
}

static void
s_skip(struct col_source *ins, int64_t line, const char *reason)
{
    char brief[256];
    char q[300];

    col_source_reject(ins, col_reject_class(reason), 1);
    if (s_reason_without_input(reason, brief, sizeof(brief))) {
        esc_log_debug("bad line detail source=%s line=%lld reason=%s", ins->name,
                      (long long)line, esc_log_quote(q, sizeof(q), reason, 256));
    }
    esc_log_warn("skipped bad line source=%s line=%lld reason=%s", ins->name, (long long)line,
                 esc_log_quote(q, sizeof(q), brief, 256));
}

static void
s_close(struct s_jsonl *j)
{
    if (j->fd >= 0) {
        close(j->fd);
        j->fd = -1;
    }
}

/* Opens the configured file and resets the reading state. Returns 0 or -1 (logged once until
 * an open succeeds again, and counted as one error). */
static int
s_open(struct col_source *ins, struct s_jsonl *j)
{
    struct stat st;
    int fd;
    int err = 0;

    fd = open(j->cfg->path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (fstat(fd, &st) != 0) {
            err = errno;
        }
        else if (S_ISDIR(st.st_mode)) {
            err = EISDIR;
        }
        if (err != 0) {
            close(fd);
            fd = -1;
            errno = err;
        }
    }
    if (fd < 0) {
        if (!j->open_failing) {
            esc_log_error("cannot open file source=%s path=%s err=\"%s\"%s", ins->name,
                          j->cfg->path, esc_log_strerror(),
                          j->cfg->follow ? " retry_ms=1000" : "");
            ins->stats.errors++;
            j->open_failing = 1;
        }
        return -1;
    }
    j->fd = fd;
    j->dev = st.st_dev;
    j->ino = st.st_ino;
    j->offset = 0;
    j->start = 0;
    j->end = 0;
    j->line = 0;
    j->skipping = 0;
    j->open_failing = 0;
    esc_log_info("reading file source=%s path=%s follow=%s", ins->name, j->cfg->path,
                 j->cfg->follow ? "true" : "false");
    return 0;
}

/* Finds the next complete line in the buffer, reading more when needed. *line points into the
 * buffer (valid until the next call) and is not NUL-terminated. */
static enum s_read
s_next_line(struct col_source *ins, struct s_jsonl *j, char **line, size_t *len)
{
    char *nl;
    ssize_t n;
    int reads = 0;

    for (;;) {
        nl = memchr(j->buf + j->start, '\n', j->end - j->start);
        if (nl != NULL) {
            *line = j->buf + j->start;
            *len = (size_t)(nl - *line);
            j->start += *len + 1;
            if (j->skipping) {
                j->skipping = 0; /* that was the end of the over-long line */
                continue;
            }
            j->line++;
            return S_LINE;
        }
        if (j->skipping) {
            j->start = 0;
            j->end = 0;
            if (reads >= S_SKIP_READS_MAX) {
                return S_AGAIN;
            }
        }
        else if (j->start > 0) {
            memmove(j->buf, j->buf + j->start, j->end - j->start);
            j->end -= j->start;
            j->start = 0;
        }
        if (j->end == S_CAP) {
            j->line++;
            s_skip(ins, j->line, "line longer than ESC_MSG_MAX (1048576 bytes)");
            j->skipping = 1;
            j->start = 0;
            j->end = 0;
        }
        n = read(j->fd, j->buf + j->end, S_CAP - j->end);
        reads++;
        if (n > 0) {
            j->end += (size_t)n;
            j->offset += n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            esc_log_error("read failed source=%s path=%s err=\"%s\"", ins->name, j->cfg->path,
                          esc_log_strerror());
            ins->stats.errors++;
            return S_FAIL;
        }
        return S_EOF;
    }
}

/* Takes the unterminated rest of the buffer as the file's last line. Returns 1 when there was
 * one, 0 when the buffer is empty or holds the tail of an over-long line (dropped). */
static int
s_take_tail(struct s_jsonl *j, char **line, size_t *len)
{
    int have = j->end > j->start && !j->skipping;

    *line = j->buf + j->start;
    *len = j->end - j->start;
    j->start = 0;
    j->end = 0;
    j->skipping = 0;
    if (have) {
        j->line++;
    }
    return have;
}

static int
s_blank(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') {
            return 0;
        }
    }
    return 1;
}

/* Parses one line and hands the post to the host. Returns ESC_OK or ESC_CLOSED. */
static esc_rc
s_line(struct col_source *ins, struct s_jsonl *j, const struct col_emit *em, const char *line,
       size_t len)
{
    struct esc_post post;
    struct esc_error err;
    esc_rc rc;
    int64_t now;
    double base;

    if (len > 0 && line[len - 1] == '\r') {
        len--;
    }
    if (s_blank(line, len)) {
        return ESC_OK;
    }
    if (esc_post_from_json(line, len, &post, &err) != ESC_OK
        || col_post_check(&post, &err) != ESC_OK) {
        esc_post_fini(&post);
        s_skip(ins, j->line, err.text);
        return ESC_OK;
    }
    rc = em->fn(em->arg, ins, &post);
    esc_post_fini(&post);
    if (rc == ESC_INVALID) {
        s_skip(ins, j->line, "post too large for the bus once encoded");
        return ESC_OK;
    }
    if (rc != ESC_OK) {
        return ESC_CLOSED;
    }
    if (j->cfg->rate > 0) {
        now = esc_mono_ms();
        base = j->next_ms > (double)now - S_RATE_CREDIT_MS ? j->next_ms
                                                            : (double)now - S_RATE_CREDIT_MS;
        j->next_ms = base + 1000.0 / j->cfg->rate;
    }
    return ESC_OK;
}

/* True (and ins->wake_ms set) when pacing says the next post must wait. */
static int
s_paced(struct col_source *ins, struct s_jsonl *j)
{
    int64_t now;

    if (j->cfg->rate <= 0) {
        return 0;
    }
    now = esc_mono_ms();
    if ((double)now >= j->next_ms) {
        return 0;
    }
    ins->wake_ms = (int64_t)j->next_ms;
    if ((double)ins->wake_ms < j->next_ms) {
        ins->wake_ms++; /* round up: waking early would only spin */
    }
    return 1;
}

/* What s_follow_check found at the end of a followed file. */
enum s_follow {
    S_IDLE,    /* nothing new: wait */
    S_REREAD,  /* truncated, or replaced (fd closed: reopened at the top of the loop) */
    S_TAIL,    /* replaced, and its unterminated last line is in *line (fd closed) */
};

/* At the end of a followed file: notices truncation (read again from the top) and replacement,
 * i.e. rotation (finish the old file, then open the new one at the path). */
static enum s_follow
s_follow_check(struct col_source *ins, struct s_jsonl *j, char **line, size_t *len)
{
    struct stat st;

    if (fstat(j->fd, &st) == 0 && st.st_size < j->offset) {
        esc_log_warn("file truncated, reading from the start source=%s path=%s", ins->name,
                     j->cfg->path);
        if (lseek(j->fd, 0, SEEK_SET) == 0) {
            j->offset = 0;
            j->start = 0;
            j->end = 0;
            j->line = 0;
            j->skipping = 0;
            return S_REREAD;
        }
    }
    if (stat(j->cfg->path, &st) == 0 && (st.st_ino != j->ino || st.st_dev != j->dev)) {
        esc_log_info("file replaced, reopening source=%s path=%s lines=%lld", ins->name,
                     j->cfg->path, (long long)j->line);
        s_close(j);
        /* The old file is finished, so its unterminated last line is complete. */
        return s_take_tail(j, line, len) ? S_TAIL : S_REREAD;
    }
    return S_IDLE;
}

static int
s_init(struct col_source *ins)
{
    struct s_jsonl *j = esc_calloc(1, sizeof(*j));

    j->cfg = ins->cfg;
    j->fd = -1;
    j->buf = esc_malloc(S_CAP);
    if (s_open(ins, j) != 0 && !j->cfg->follow) {
        esc_free(j->buf);
        esc_free(j);
        return -1;
    }
    ins->ctx = j;
    return 0;
}

static esc_rc
s_poll(struct col_source *ins, const struct col_emit *em, size_t budget)
{
    struct s_jsonl *j = ins->ctx;
    char *line = NULL;
    size_t len = 0;
    size_t n;

    for (n = 0; n < budget; n++) {
        if (j->fd < 0 && s_open(ins, j) != 0) {
            ins->wake_ms = esc_mono_ms() + S_REOPEN_MS;
            return n > 0 ? ESC_OK : ESC_RETRY;
        }
        if (s_paced(ins, j)) {
            return ESC_OK;
        }
        switch (s_next_line(ins, j, &line, &len)) {
        case S_LINE:
            break;
        case S_AGAIN:
            return ESC_OK;
        case S_FAIL:
            /* Reopening would read the file again from the top and send duplicates. */
            s_close(j);
            return ESC_ERR;
        case S_EOF:
            if (!j->cfg->follow) {
                if (!s_take_tail(j, &line, &len)) {
                    esc_log_info("file done source=%s path=%s lines=%lld posts=%llu "
                                 "skipped=%llu", ins->name, j->cfg->path, (long long)j->line,
                                 (unsigned long long)ins->stats.posts,
                                 (unsigned long long)ins->stats.skipped);
                    s_close(j);
                    ins->done = 1;
                    return ESC_OK;
                }
                break;
            }
            switch (s_follow_check(ins, j, &line, &len)) {
            case S_IDLE:
                ins->wake_ms = esc_mono_ms() + S_FOLLOW_MS;
                return n > 0 ? ESC_OK : ESC_RETRY;
            case S_REREAD:
                continue;
            case S_TAIL:
                break;
            }
            break;
        }
        if (s_line(ins, j, em, line, len) == ESC_CLOSED) {
            return ESC_CLOSED;
        }
    }
    return ESC_OK;
}

static void
s_exit(struct col_source *ins)
{
    struct s_jsonl *j = ins->ctx;

    if (j == NULL) {
        return;
    }
    s_close(j);
    esc_free(j->buf);
    esc_free(j);
    ins->ctx = NULL;
}

const struct col_source_plugin src_jsonl_plugin = {
    .name = "jsonl",
    .description = "posts from a JSON Lines file (one post per line), optionally followed",
    .cfg_map = s_cfg_map,
    .cfg_size = sizeof(struct src_jsonl_cfg),
    .validate = s_validate,
    .init = s_init,
    .poll = s_poll,
    .exit = s_exit,
};
