#define ESC_LOG_MODULE "csv"
/* Source plugin "csv": bulk import of CSV exports (spreadsheets, other tools' archives) for
 * backfilling history. The first row is the header; the config maps header names to post fields
 * (id, text and created_at are required, the rest optional) and gives the fixed platform. Fields
 * are split by Debian's libcsv (RFC 4180 quoting, quoted delimiters and newlines). Input is fed
 * to libcsv one physical line at a time so every row knows the line it started on: a bad row is
 * logged with that line number and the reason and skipped. Each post keeps the timestamp from its
 * row as event time (RFC 3339, "YYYY-MM-DD HH:MM:SS" in the configured timezone offset, or Unix
 * seconds/milliseconds), so replayed history lands in the right buckets. The header is read in
 * init, so a mapped column missing from the header fails the instance at start-up, naming the
 * column. Runs on the collector's loop thread only. */
#include <csv.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "col_source.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define S_READ_SZ 65536              /* bytes read from the file at a time */
#define S_ROW_MAX ((size_t)ESC_MSG_MAX) /* bytes of one row (all fields), larger rows are bad */
#define S_FIELDS_MAX 4096            /* fields in one row */
#define S_COLS 11                    /* mapped post fields, s_fields[] */

struct src_csv_cfg {
    char path[1024];     /* file to read */
    char delimiter[8];   /* one character, or "tab" */
    char platform[32];   /* fixed platform of every post */
    char timezone[16];   /* offset for naive times: "Z", "UTC", "+02:00", "-0500" */
    char cols[S_COLS][128]; /* header names of the mapped fields, "" = not mapped */
};

/* A mapped post field: its name, whether it is required, its kind and where it goes. */
enum s_kind { S_STR, S_INT, S_TIME };

struct s_field {
    const char *name; /* post field; the config key is <name>_column */
    bool required;
    enum s_kind kind;
    size_t offset; /* of the char * or int64_t member in struct esc_post */
};

#define S_F(n, req, kind, member) { (n), (req), (kind), offsetof(struct esc_post, member) }

/* In the order of src_csv_cfg.cols (and the cfg_map below). */
static const struct s_field s_fields[S_COLS] = {
    S_F("id", true, S_STR, id),
    S_F("text", true, S_STR, text),
    S_F("created_at", true, S_TIME, created_at),
    S_F("author", false, S_STR, author),
    S_F("author_name", false, S_STR, author_name),
    S_F("followers", false, S_INT, followers),
    S_F("likes", false, S_INT, likes),
    S_F("reposts", false, S_INT, reposts),
    S_F("replies", false, S_INT, replies),
    S_F("url", false, S_STR, url),
    S_F("lang", false, S_STR, lang),
};

/* A row being collected by the libcsv callbacks. */
struct s_row {
    char **f;     /* fields, NUL-terminated copies */
    size_t n;
    size_t cap;
    size_t bytes; /* sum of field lengths */
    int too_big;  /* over S_ROW_MAX or S_FIELDS_MAX: the row is bad */
};

struct s_csv {
    struct col_source *ins;          /* back pointer for the callbacks; borrowed */
    const struct src_csv_cfg *cfg;   /* borrowed from the instance */
    struct csv_parser parser;
    int parser_ok;    /* parser is initialised (csv_free is due) */
    int fd;
    char *buf;        /* S_READ_SZ bytes; unparsed input is buf[start, end) */
    size_t start;
    size_t end;
    int eof;          /* the file is read to its end */
    int64_t line;     /* physical lines fed to the parser so far */
    int64_t row_line; /* line on which the current row started */
    struct s_row row;
    int have_header;
    size_t n_header;
    int idx[S_COLS];  /* header index of each mapped field, -1 when not mapped */
    int64_t tz_off_ms; /* added to naive times to get UTC */
    struct esc_post *ready; /* converted posts waiting to be emitted, ready[rhead, rn) */
    size_t rhead;
    size_t rn;
    size_t rcap;
    int header_err;  /* the header lacks a mapped column (logged) */
};

#define S_COL(k, d, i, desc) ESC_CFG_STR(k, d, struct src_csv_cfg, cols[i], desc)

static const struct esc_cfg_entry s_cfg_map[] = {
    ESC_CFG_STR("path", NULL, struct src_csv_cfg, path,
                "CSV file to import; the first row must be the header"),
    ESC_CFG_STR("delimiter", ",", struct src_csv_cfg, delimiter,
                "field delimiter: one character such as \",\" or \";\", or \"tab\""),
    ESC_CFG_STR("platform", "csv", struct src_csv_cfg, platform,
                "platform of every imported post, e.g. \"x\""),
    ESC_CFG_STR("timezone", "UTC", struct src_csv_cfg, timezone,
                "UTC offset of times without one (\"YYYY-MM-DD HH:MM:SS\"): \"UTC\", \"+02:00\", "
                "\"-0500\""),
    S_COL("id_column", "id", 0, "header of the post id column (required)"),
    S_COL("text_column", "text", 1, "header of the post text column (required)"),
    S_COL("created_at_column", "created_at", 2,
          "header of the timestamp column (required): RFC 3339, \"YYYY-MM-DD HH:MM:SS\" or Unix "
          "seconds/milliseconds"),
    S_COL("author_column", "", 3, "header of the author handle column, \"\" = none"),
    S_COL("author_name_column", "", 4, "header of the author display name column, \"\" = none"),
    S_COL("followers_column", "", 5, "header of the follower count column, \"\" = none"),
    S_COL("likes_column", "", 6, "header of the like count column, \"\" = none"),
    S_COL("reposts_column", "", 7, "header of the repost/retweet count column, \"\" = none"),
    S_COL("replies_column", "", 8, "header of the reply count column, \"\" = none"),
    S_COL("url_column", "", 9, "header of the post URL column, \"\" = none"),
    S_COL("lang_column", "", 10, "header of the language column, \"\" = none"),
    ESC_CFG_END,
};

/* Parses "Z", "UTC", "+HH:MM", "-HHMM", "+HH" into milliseconds east of UTC. */
static int
s_parse_tz(const char *s, int64_t *off_ms)
{
    int sign;
    int h;
    int m = 0;
    size_t n = strlen(s);

    if (strcmp(s, "Z") == 0 || strcmp(s, "UTC") == 0 || strcmp(s, "GMT") == 0) {
        *off_ms = 0;
        return 0;
    }
    if ((s[0] != '+' && s[0] != '-') || n < 3 || !isdigit((unsigned char)s[1])
        || !isdigit((unsigned char)s[2])) {
        return -1;
    }
    sign = s[0] == '-' ? -1 : 1;
    h = (s[1] - '0') * 10 + (s[2] - '0');
    s += 3;
    if (*s == ':') {
        s++;
    }
    if (*s != '\0') {
        if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != '\0') {
            return -1;
        }
        m = (s[0] - '0') * 10 + (s[1] - '0');
    }
    if (h > 14 || m > 59) {
        return -1;
    }
    *off_ms = (int64_t)sign * ((int64_t)h * 3600 + m * 60) * 1000;
    return 0;
}

/* The delimiter byte of the config, or -1 when it is not one character. */
static int
s_delim(const char *d)
{
    if (strcmp(d, "tab") == 0 || strcmp(d, "\t") == 0) {
        return '\t';
    }
    if (strlen(d) != 1 || d[0] == '"' || d[0] == '\n' || d[0] == '\r') {
        return -1;
    }
    return (unsigned char)d[0];
}

static esc_rc
s_validate(const void *cfg, const char *path, struct esc_error *err)
{
    const struct src_csv_cfg *c = cfg;
    int64_t off;
    size_t i;

    if (c->path[0] == '\0') {
        esc_error_set(err, 0, "%s.path: must not be empty", path);
        return ESC_INVALID;
    }
    if (s_delim(c->delimiter) < 0) {
        esc_error_set(err, 0, "%s.delimiter: must be one character (not a quote or newline) "
                      "or \"tab\"", path);
        return ESC_INVALID;
    }
    if (c->platform[0] == '\0') {
        esc_error_set(err, 0, "%s.platform: must not be empty", path);
        return ESC_INVALID;
    }
    if (s_parse_tz(c->timezone, &off) != 0) {
        esc_error_set(err, 0, "%s.timezone: want \"UTC\" or an offset like \"+02:00\"", path);
        return ESC_INVALID;
    }
    for (i = 0; i < S_COLS; i++) {
        if (s_fields[i].required && c->cols[i][0] == '\0') {
            esc_error_set(err, 0, "%s.%s_column: must not be empty", path, s_fields[i].name);
            return ESC_INVALID;
        }
    }
    return ESC_OK;
}

static void
s_row_clear(struct s_row *r)
{
    size_t i;

    for (i = 0; i < r->n; i++) {
        esc_free(r->f[i]);
    }
    r->n = 0;
    r->bytes = 0;
    r->too_big = 0;
}

/* libcsv: one field done. With CSV_APPEND_NULL s is NUL-terminated (s may be NULL when empty). */
static void
s_on_field(void *s, size_t len, void *data)
{
    struct s_csv *c = data;
    struct s_row *r = &c->row;
    char *copy;

    if (r->too_big) {
        return;
    }
    if (r->n == S_FIELDS_MAX || r->bytes + len > S_ROW_MAX) {
        r->too_big = 1;
        return;
    }
    if (r->n == r->cap) {
        r->cap = r->cap == 0 ? 16 : r->cap * 2;
        r->f = esc_realloc(r->f, r->cap * sizeof(*r->f));
    }
    copy = esc_malloc(len + 1);
    if (len > 0) {
        memcpy(copy, s, len);
    }
    copy[len] = '\0';
    r->f[r->n++] = copy;
    r->bytes += len;
}

static void
s_skip(struct s_csv *c, int64_t line, const char *reason)
{
    char q[300];

    col_source_reject(c->ins, col_reject_class(reason), 1);
    esc_log_warn("skipped bad row source=%s line=%lld reason=%s", c->ins->name, (long long)line,
                 esc_log_quote(q, sizeof(q), reason, 256));
}

/* Parses a timestamp cell into Unix ms. Returns 0 or -1. */
static int
s_time(const struct s_csv *c, const char *s, int64_t *ms)
{
    const char *p;
    int64_t v;
    size_t n = strlen(s);
    int zoned = 0;

    if (n > 0 && esc_parse_i64(s, 0, INT64_MAX / 1000, &v) == 0) {
        /* Unix time: below 1e11 it is seconds (1e11 s is in the year 5138). */
        *ms = v < 100000000000LL ? v * 1000 : v;
        return 0;
    }
    if (esc_time_parse_iso8601(s, ms) != 0) {
        return -1;
    }
    if (n > 0 && (s[n - 1] == 'Z' || s[n - 1] == 'z')) {
        zoned = 1;
    }
    for (p = n > 10 ? s + 10 : s + n; *p != '\0'; p++) {
        if (*p == '+' || *p == '-') {
            zoned = 1;
        }
    }
    if (!zoned) {
        *ms -= c->tz_off_ms;
    }
    return 0;
}

/* Converts the finished data row into c->ready, or logs why it is skipped. */
static void
s_row_to_post(struct s_csv *c, int64_t line)
{
    struct s_row *r = &c->row;
    struct esc_post post;
    char reason[300];
    const char *v;
    int64_t num;
    size_t i;

    if (r->too_big) {
        s_skip(c, line, "row too large");
        return;
    }
    if (r->n != c->n_header) {
        snprintf(reason, sizeof(reason), "row has %zu fields, the header has %zu", r->n,
                 c->n_header);
        s_skip(c, line, reason);
        return;
    }
    esc_post_init(&post);
    for (i = 0; i < S_COLS; i++) {
        const struct s_field *f = &s_fields[i];
        char *member = (char *)&post + f->offset;

        if (c->idx[i] < 0) {
            continue;
        }
        v = r->f[c->idx[i]];
        switch (f->kind) {
        case S_TIME:
            if (s_time(c, v, (int64_t *)(void *)member) != 0) {
                snprintf(reason, sizeof(reason), "bad timestamp in column '%s'",
                         c->cfg->cols[i]);
                goto bad;
            }
            break;
        case S_INT:
            num = 0;
            if (v[0] != '\0' && esc_parse_i64(v, 0, INT64_MAX, &num) != 0) {
                snprintf(reason, sizeof(reason), "bad count in column '%s' (want an integer)",
                         c->cfg->cols[i]);
                goto bad;
            }
            *(int64_t *)(void *)member = num;
            break;
        case S_STR:
            /* The text may be empty; the id may not; other empty cells mean unknown. */
            if (v[0] == '\0' && f->required && strcmp(f->name, "text") != 0) {
                snprintf(reason, sizeof(reason), "empty %s (column '%s')", f->name,
                         c->cfg->cols[i]);
                goto bad;
            }
            if (v[0] != '\0' || f->required) {
                *(char **)(void *)member = esc_strdup(v);
            }
            break;
        }
    }
    post.platform = esc_strdup(c->cfg->platform);
    if (c->rn == c->rcap) {
        c->rcap = c->rcap == 0 ? 16 : c->rcap * 2;
        c->ready = esc_realloc(c->ready, c->rcap * sizeof(*c->ready));
    }
    c->ready[c->rn++] = post;
    return;
bad:
    esc_post_fini(&post);
    s_skip(c, line, reason);
}

/* Maps the header row onto c->idx; logs each mapped column that is missing. */
static void
s_header(struct s_csv *c)
{
    struct s_row *r = &c->row;
    const char *name;
    size_t i;
    size_t k;

    c->have_header = 1;
    c->n_header = r->n;
    for (i = 0; i < S_COLS; i++) {
        c->idx[i] = -1;
        if (c->cfg->cols[i][0] == '\0') {
            continue;
        }
        for (k = 0; k < r->n; k++) {
            name = r->f[k];
            if (k == 0 && (unsigned char)name[0] == 0xef && (unsigned char)name[1] == 0xbb
                && (unsigned char)name[2] == 0xbf) {
                name += 3; /* UTF-8 byte order mark of spreadsheet exports */
            }
            if (strcmp(name, c->cfg->cols[i]) == 0) {
                c->idx[i] = (int)k;
                break;
            }
        }
        if (c->idx[i] < 0) {
            esc_log_error("column missing from the csv header source=%s path=%s column=\"%s\" "
                          "key=%s_column", c->ins->name, c->cfg->path, c->cfg->cols[i],
                          s_fields[i].name);
            c->header_err = 1;
        }
    }
}

/* libcsv: a row ended (c is the terminator, or -1 at the end of the file). */
static void
s_on_row(int term, void *data)
{
    struct s_csv *c = data;
    int64_t line = c->row_line;

    (void)term;
    c->row_line = c->line + 1;
    if (!c->have_header) {
        if (c->row.too_big) {
            esc_log_error("csv header row too large source=%s path=%s", c->ins->name,
                          c->cfg->path);
            c->header_err = 1;
        }
        else {
            s_header(c);
        }
    }
    else if (c->row.n == 1 && c->row.f[0][0] == '\0') {
        /* a blank line (only reported with a delimiter-free empty row): ignored */
    }
    else {
        s_row_to_post(c, line);
    }
    s_row_clear(&c->row);
}

/* (Re)initialises the libcsv parser with the configured options. Returns 0 or -1 (logged). */
static int
s_parser_reset(struct s_csv *c)
{
    if (c->parser_ok) {
        csv_free(&c->parser);
        c->parser_ok = 0;
    }
    s_row_clear(&c->row);
    if (csv_init(&c->parser, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        esc_log_error("csv parser init failed source=%s", c->ins->name);
        return -1;
    }
    c->parser_ok = 1;
    csv_set_delim(&c->parser, (unsigned char)s_delim(c->cfg->delimiter));
    return 0;
}

/* Feeds the next physical line (or the unterminated rest at the end) to libcsv. Returns 1 when
 * something was fed, 0 when more must be read first, -1 on a parser error (logged). */
static int
s_feed_line(struct s_csv *c)
{
    char *nl = memchr(c->buf + c->start, '\n', c->end - c->start);
    size_t len;

    if (nl == NULL && !(c->eof && c->end > c->start)) {
        return 0;
    }
    len = nl != NULL ? (size_t)(nl - (c->buf + c->start)) + 1 : c->end - c->start;
    c->line++; /* the row callbacks below run on this line */
    if (csv_parse(&c->parser, c->buf + c->start, len, s_on_field, s_on_row, c) != len) {
        if (!c->have_header || csv_error(&c->parser) != CSV_EPARSE) {
            esc_log_error("csv parse failed source=%s path=%s line=%lld err=\"%s\"",
                          c->ins->name, c->cfg->path, (long long)c->line,
                          csv_strerror(csv_error(&c->parser)));
            c->ins->stats.errors++;
            return -1;
        }
        /* Strict RFC 4180: a stray quote. Drop the row and start afresh on the next line. */
        s_skip(c, c->row_line, "malformed quoting (a quote inside an unquoted field or text "
               "after a closing quote)");
        if (s_parser_reset(c) != 0) {
            return -1;
        }
        c->row_line = c->line + 1;
    }
    c->start += len;
    if (csv_get_buffer_size(&c->parser) > S_ROW_MAX + 1) {
        /* An unterminated quote swallows the rest of the file; stop before it eats memory. */
        esc_log_error("csv field too large, unbalanced quote? source=%s path=%s line=%lld",
                      c->ins->name, c->cfg->path, (long long)c->row_line);
        c->ins->stats.errors++;
        return -1;
    }
    return 1;
}

/* Reads more of the file into the buffer. Returns 0, or -1 on a read error (logged). */
static int
s_read(struct s_csv *c)
{
    ssize_t n;

    if (c->start > 0) {
        memmove(c->buf, c->buf + c->start, c->end - c->start);
        c->end -= c->start;
        c->start = 0;
    }
    if (c->end == S_READ_SZ) {
        /* One physical line longer than the buffer: feed a piece of it. */
        if (csv_parse(&c->parser, c->buf, c->end, s_on_field, s_on_row, c) != c->end) {
            esc_log_error("csv parse failed source=%s path=%s line=%lld", c->ins->name,
                          c->cfg->path, (long long)c->line + 1);
            return -1;
        }
        c->end = 0;
    }
    for (;;) {
        n = read(c->fd, c->buf + c->end, S_READ_SZ - c->end);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        break;
    }
    if (n < 0) {
        esc_log_error("read failed source=%s path=%s err=\"%s\"", c->ins->name, c->cfg->path,
                      esc_log_strerror());
        c->ins->stats.errors++;
        return -1;
    }
    if (n == 0) {
        c->eof = 1;
    }
    c->end += (size_t)n;
    return 0;
}

/* Advances the parser by one line (or reads, or finishes). Returns 1 on progress, 0 when the
 * file is done, -1 on error (logged). */
static int
s_step(struct s_csv *c)
{
    int rc = s_feed_line(c);

    if (rc != 0) {
        return rc;
    }
    if (!c->eof) {
        return s_read(c) == 0 ? 1 : -1;
    }
    if (c->fd >= 0) {
        if (csv_fini(&c->parser, s_on_field, s_on_row, c) != 0) {
            s_skip(c, c->row_line, "unterminated quoted field at the end of the file");
            s_row_clear(&c->row);
        }
        close(c->fd);
        c->fd = -1;
        return 1;
    }
    return 0;
}

static void
s_free(struct s_csv *c)
{
    size_t i;

    if (c->fd >= 0) {
        close(c->fd);
    }
    if (c->parser_ok) {
        csv_free(&c->parser);
    }
    s_row_clear(&c->row);
    esc_free(c->row.f);
    for (i = c->rhead; i < c->rn; i++) {
        esc_post_fini(&c->ready[i]);
    }
    esc_free(c->ready);
    esc_free(c->buf);
    esc_free(c);
}

static int
s_init(struct col_source *ins)
{
    struct s_csv *c = esc_calloc(1, sizeof(*c));
    int rc;

    c->ins = ins;
    c->cfg = ins->cfg;
    c->fd = -1;
    c->row_line = 1;
    (void)s_parse_tz(c->cfg->timezone, &c->tz_off_ms);
    c->buf = esc_malloc(S_READ_SZ);
    if (s_parser_reset(c) != 0) {
        s_free(c);
        return -1;
    }
    c->fd = open(c->cfg->path, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0) {
        esc_log_error("cannot open file source=%s path=%s err=\"%s\"", ins->name, c->cfg->path,
                      esc_log_strerror());
        s_free(c);
        return -1;
    }
    /* Read up to the end of the header, so a missing column fails at start-up. */
    do {
        rc = s_step(c);
    } while (rc == 1 && !c->have_header && !c->header_err);
    if (rc < 0 || c->header_err || !c->have_header) {
        if (rc >= 0 && !c->have_header && !c->header_err) {
            esc_log_error("csv file has no header row source=%s path=%s", ins->name,
                          c->cfg->path);
        }
        s_free(c);
        return -1;
    }
    esc_log_info("reading csv source=%s path=%s columns=%zu", ins->name, c->cfg->path,
                 c->n_header);
    ins->ctx = c;
    return 0;
}

static esc_rc
s_poll(struct col_source *ins, const struct col_emit *em, size_t budget)
{
    struct s_csv *c = ins->ctx;
    size_t n;
    esc_rc rc;
    int st;

    for (n = 0; n < budget; n++) {
        if (c->rhead < c->rn) {
            rc = em->fn(em->arg, ins, &c->ready[c->rhead]);
            if (rc == ESC_CLOSED) {
                return ESC_CLOSED;
            }
            if (rc == ESC_INVALID) {
                col_source_reject(ins, COL_REJECT_TOO_LARGE, 1);
                esc_log_warn("skipped post too large for the bus source=%s", ins->name);
            }
            esc_post_fini(&c->ready[c->rhead]);
            c->rhead++;
            if (c->rhead == c->rn) {
                c->rhead = 0;
                c->rn = 0;
            }
            continue;
        }
        st = s_step(c);
        if (st < 0) {
            return ESC_ERR;
        }
        if (st == 0) {
            esc_log_info("csv done source=%s path=%s lines=%lld posts=%llu skipped=%llu",
                         ins->name, c->cfg->path, (long long)c->line,
                         (unsigned long long)ins->stats.posts,
                         (unsigned long long)ins->stats.skipped);
            ins->done = 1;
            return ESC_OK;
        }
    }
    return ESC_OK;
}

static void
s_exit(struct col_source *ins)
{
    if (ins->ctx != NULL) {
        s_free(ins->ctx);
        ins->ctx = NULL;
    }
}

const struct col_source_plugin src_csv_plugin = {
    .name = "csv",
    .description = "bulk import of a CSV export with a column mapping, original timestamps kept",
    .cfg_map = s_cfg_map,
    .cfg_size = sizeof(struct src_csv_cfg),
    .validate = s_validate,
    .init = s_init,
    .poll = s_poll,
    .exit = s_exit,
};
