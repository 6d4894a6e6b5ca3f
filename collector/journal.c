#define ESC_LOG_MODULE "journal"
/* The collector's delivery journal (journal.h, docs/delivery.md): an append-only log of the
 * posts sent, in segment files, with the acknowledged ranges of each segment in a small side
 * file. In memory each entry costs 17 bytes (its offset, length, last send time and state), so
 * the redelivery scan and the acks never read the segment files; only a re-send does (pread).
 * Segments are read back once at open. Writes go straight to the kernel with one write() per
 * record (a process crash loses nothing already appended); fsync follows fsync_ms.
 * Single-threaded: the collector's loop thread. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "journal.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define S_MAGIC "ESCJNL1\n"
#define S_MAGIC_LEN 8
#define S_HDR 16            /* record header: u32 length, u32 crc, u64 seq */
#define S_ACK_REC 16        /* .ack record: u64 first, u64 count */
#define S_ACKED 0x80u       /* st[]: acknowledged */
#define S_TRIES 0x0fu       /* st[]: times re-sent (saturating) */
#define S_PATH_MAX 800      /* the directory (< 512), a slash and a file name */
#define S_RECHECK_MS 1000   /* an old entry not yet presumed lost is looked at again after this */

struct s_seg {
    uint64_t first;   /* seq of entry 0 */
    size_t n;         /* entries */
    size_t cap;
    uint32_t *off;    /* file offset of each record */
    uint32_t *len;    /* payload length of each record */
    int64_t *sent;    /* stamp of the last send (s_stamp); 0 = not sent by this process */
    uint8_t *st;      /* S_ACKED | times re-sent */
    size_t n_acked;
    size_t scan_from; /* every entry before this one is acknowledged */
    int64_t next_due; /* no entry of the segment is due before this (monotonic ms) */
    uint64_t size;    /* bytes of the file */
    int fd;           /* the .seg file */
    int ack_fd;       /* the .ack file, opened on the first ack; -1 before */
};

struct col_journal {
    char dir[512];
    char id[ESC_ACK_ID_MAX + 1];
    struct col_journal_opts o;
    int lock_fd;
    struct s_seg **segs; /* ascending; the last one is the active segment */
    size_t n_segs;
    uint64_t next_seq;
    uint64_t unacked;
    uint64_t bytes;
    int dirty;             /* appended since the last fsync */
    int64_t last_sync_ms;
    int64_t last_ack_ms;   /* when an ack last arrived (or the open) */
    int64_t acked_sent;    /* newest send stamp among acknowledged entries */
    int64_t last_stamp;    /* the last send stamp given out */
    uint8_t *rbuf;         /* one record, for re-sends */
    struct col_journal_stats st;
};

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 */

static uint32_t s_crc_table[256];
static int s_crc_ready;

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven. */
static uint32_t
s_crc32c(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = data;
    size_t i;

    if (!s_crc_ready) {
        for (i = 0; i < 256; i++) {
            uint32_t c = (uint32_t)i;
            int k;

            for (k = 0; k < 8; k++) {
                c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            }
            s_crc_table[i] = c;
        }
        s_crc_ready = 1;
    }
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc = s_crc_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    }
    return ~crc;
}

static void
s_put_u32(uint8_t *p, uint32_t v)
{
    int i;

    for (i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void
s_put_u64(uint8_t *p, uint64_t v)
{
    int i;

    for (i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t
s_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16)
           | ((uint32_t)p[3] << 24);
}

static uint64_t
s_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;

    for (i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint32_t
s_record_crc(uint64_t seq, const void *payload, size_t len)
{
    uint8_t s[8];

    s_put_u64(s, seq);
    return s_crc32c(s_crc32c(0, s, 8), payload, len);
}

static void
s_path(const col_journal_t *self, uint64_t first, const char *ext, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/%020" PRIu64 ".%s", self->dir, first, ext);
}

/* Writes all of buf, retrying on EINTR and short writes. Returns 0 or -1 (errno set). */
static int
s_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;

    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void
s_fsync_dir(const col_journal_t *self)
{
    int fd = open(self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* A send stamp: the monotonic time in microseconds, made strictly increasing, so the order of
 * two sends is always known (posts sent in the same millisecond included) and stamp / 1000 is
 * still the time of the send in ms. */
static int64_t
s_stamp(col_journal_t *self, int64_t now_ms)
{
    int64_t st = (now_ms > 0 ? now_ms : 1) * 1000;

    if (st <= self->last_stamp) {
        st = self->last_stamp + 1;
    }
    self->last_stamp = st;
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Segments
 */

static struct s_seg *
s_seg_new(uint64_t first, int fd)
{
    struct s_seg *g = esc_calloc(1, sizeof(*g));

    g->first = first;
    g->fd = fd;
    g->ack_fd = -1;
    return g;
}

static void
s_seg_free(struct s_seg *g)
{
    if (g == NULL) {
        return;
    }
    if (g->fd >= 0) {
        close(g->fd);
    }
    if (g->ack_fd >= 0) {
        close(g->ack_fd);
    }
    esc_free(g->off);
    esc_free(g->len);
    esc_free(g->sent);
    esc_free(g->st);
    esc_free(g);
}

static void
s_seg_push(struct s_seg *g, uint32_t off, uint32_t len)
{
    if (g->n == g->cap) {
        g->cap = g->cap > 0 ? 2 * g->cap : 1024;
        g->off = esc_realloc(g->off, g->cap * sizeof(*g->off));
        g->len = esc_realloc(g->len, g->cap * sizeof(*g->len));
        g->sent = esc_realloc(g->sent, g->cap * sizeof(*g->sent));
        g->st = esc_realloc(g->st, g->cap * sizeof(*g->st));
    }
    g->off[g->n] = off;
    g->len[g->n] = len;
    g->sent[g->n] = 0;
    g->st[g->n] = 0;
    g->n++;
}

/* Marks [first, first + n) of g acknowledged in memory. Returns how many were not yet. */
static uint64_t
s_seg_mark(col_journal_t *self, struct s_seg *g, uint64_t first, uint64_t n)
{
    uint64_t lo = first > g->first ? first : g->first;
    uint64_t hi;
    uint64_t k;
    uint64_t newly = 0;

    if (g->n == 0 || first >= g->first + g->n || n == 0 || first + (n - 1) < g->first) {
        return 0;
    }
    hi = first + (n - 1);
    if (hi > g->first + g->n - 1) {
        hi = g->first + g->n - 1;
    }
    for (k = lo - g->first; k <= hi - g->first; k++) {
        if (g->st[k] & S_ACKED) {
            continue;
        }
        g->st[k] |= S_ACKED;
        g->n_acked++;
        newly++;
        if (g->sent[k] > self->acked_sent) {
            self->acked_sent = g->sent[k];
        }
    }
    while (g->scan_from < g->n && (g->st[g->scan_from] & S_ACKED)) {
        g->scan_from++;
    }
    return newly;
}

/* Reads the records of g's file (already open, positioned anywhere). Stops at the first record
 * that is short, too long, out of sequence or fails its CRC and cuts the file there. Returns 0,
 * or -1 on an I/O error (logged). */
static int
s_seg_load(col_journal_t *self, struct s_seg *g, const char *path)
{
    uint8_t *buf = esc_malloc(ESC_MSG_MAX);
    uint8_t magic[S_MAGIC_LEN];
    struct stat sb;
    uint64_t pos = S_MAGIC_LEN;
    const char *why = NULL;
    int rc = -1;

    if (fstat(g->fd, &sb) != 0) {
        esc_log_error("cannot stat a journal segment path=%s err=\"%s\"", path, strerror(errno));
        goto out;
    }
    if (sb.st_size < S_MAGIC_LEN) {
        /* created but its header never written: an empty segment */
        if (ftruncate(g->fd, 0) != 0 || pwrite(g->fd, S_MAGIC, S_MAGIC_LEN, 0) != S_MAGIC_LEN) {
            esc_log_error("cannot repair a journal segment path=%s err=\"%s\"", path,
                          strerror(errno));
            goto out;
        }
        g->size = S_MAGIC_LEN;
        rc = 0;
        goto out;
    }
    if (pread(g->fd, magic, S_MAGIC_LEN, 0) != S_MAGIC_LEN
        || memcmp(magic, S_MAGIC, S_MAGIC_LEN) != 0) {
        esc_log_error("not a journal segment, left alone path=%s", path);
        goto out;
    }
    while (pos < (uint64_t)sb.st_size) {
        uint8_t hdr[S_HDR];
        uint32_t len;
        uint64_t seq;
        ssize_t r;
        uint8_t *payload = buf;

        if ((uint64_t)sb.st_size - pos < S_HDR) {
            why = "torn record header";
            break;
        }
        if (pread(g->fd, hdr, S_HDR, (off_t)pos) != S_HDR) {
            esc_log_error("cannot read a journal segment path=%s err=\"%s\"", path,
                          strerror(errno));
            goto out;
        }
        len = s_get_u32(hdr);
        seq = s_get_u64(hdr + 8);
        if (len > ESC_MSG_MAX || pos + S_HDR + len > UINT32_MAX) {
            why = "bad record length";
            break;
        }
        if ((uint64_t)sb.st_size - pos - S_HDR < len) {
            why = "torn record";
            break;
        }
        if (seq != g->first + g->n) {
            why = "record out of sequence";
            break;
        }
        r = pread(g->fd, payload, len, (off_t)(pos + S_HDR));
        if (r != (ssize_t)len) {
            esc_log_error("cannot read a journal segment path=%s err=\"%s\"", path,
                          strerror(errno));
            goto out;
        }
        if (s_record_crc(seq, payload, len) != s_get_u32(hdr + 4)) {
            why = "record checksum mismatch";
            break;
        }
        s_seg_push(g, (uint32_t)pos, len);
        pos += S_HDR + len;
    }
    if (why != NULL) {
        esc_log_warn("journal segment ends with a bad record, cut off path=%s at=%" PRIu64
                     " dropped_bytes=%" PRIu64 " reason=\"%s\"",
                     path, pos, (uint64_t)sb.st_size - pos, why);
        self->st.torn_bytes += (uint64_t)sb.st_size - pos;
        if (ftruncate(g->fd, (off_t)pos) != 0) {
            esc_log_error("cannot cut a journal segment path=%s err=\"%s\"", path,
                          strerror(errno));
            goto out;
        }
    }
    g->size = pos;
    rc = 0;
out:
    esc_free(buf);
    return rc;
}

/* Applies the .ack side file of g, if any (a torn last record is ignored). */
static void
s_seg_load_acks(col_journal_t *self, struct s_seg *g)
{
    char path[S_PATH_MAX];
    uint8_t rec[S_ACK_REC];
    int fd;

    s_path(self, g->first, "ack", path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    for (;;) {
        ssize_t r = read(fd, rec, sizeof(rec));

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r != (ssize_t)sizeof(rec)) {
            break;
        }
        s_seg_mark(self, g, s_get_u64(rec), s_get_u64(rec + 8));
    }
    close(fd);
}

/* Deletes g's files (it is fully acknowledged) and frees it; index i in self->segs. */
static void
s_seg_delete(col_journal_t *self, size_t i)
{
    struct s_seg *g = self->segs[i];
    char path[S_PATH_MAX];

    s_path(self, g->first, "seg", path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT) {
        esc_log_warn("cannot delete an acknowledged journal segment path=%s err=\"%s\"", path,
                     strerror(errno));
    }
    s_path(self, g->first, "ack", path, sizeof(path));
    unlink(path); /* an orphan .ack would be removed at the next open anyway */
    self->bytes -= g->size;
    self->unacked -= g->n - g->n_acked;
    s_seg_free(g);
    memmove(&self->segs[i], &self->segs[i + 1], (self->n_segs - i - 1) * sizeof(*self->segs));
    self->n_segs--;
}

/* Creates the segment file for `first` and makes it the active one. Returns 0 or -1 (logged). */
static int
s_seg_start(col_journal_t *self, uint64_t first)
{
    char path[S_PATH_MAX];
    int fd;

    s_path(self, first, "seg", path, sizeof(path));
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        esc_log_error("cannot create a journal segment path=%s err=\"%s\"", path,
                      strerror(errno));
        return -1;
    }
    if (s_write_all(fd, S_MAGIC, S_MAGIC_LEN) != 0) {
        esc_log_error("cannot write a journal segment path=%s err=\"%s\"", path,
                      strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    if (self->o.fsync_ms >= 0) {
        fdatasync(fd);
        s_fsync_dir(self);
    }
    self->segs = esc_realloc(self->segs, (self->n_segs + 1) * sizeof(*self->segs));
    self->segs[self->n_segs] = s_seg_new(first, fd);
    self->segs[self->n_segs]->size = S_MAGIC_LEN;
    self->n_segs++;
    self->bytes += S_MAGIC_LEN;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Open and close
 */

/* Reads the id file, or makes one. Returns 0, or -1 with err filled. */
static int
s_load_id(col_journal_t *self, struct esc_error *err)
{
    char path[S_PATH_MAX];
    char tmp[S_PATH_MAX + 8];
    char buf[ESC_ACK_ID_MAX + 2];
    uint8_t rnd[8];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/id", self->dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\r\n")] = '\0';
        if (!esc_ack_id_valid(buf)) {
            esc_error_set(err, 0, "journal id file %s does not hold a collector id "
                                  "(1 to %d of [A-Za-z0-9_-])", path, ESC_ACK_ID_MAX);
            return -1;
        }
        esc_strlcpy(self->id, buf, sizeof(self->id));
        return 0;
    }
    if (errno != ENOENT) {
        esc_error_set(err, 0, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        esc_error_set(err, 0, "no random bytes for a collector id: %s", strerror(errno));
        return -1;
    }
    snprintf(self->id, sizeof(self->id), "col-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
             rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    snprintf(buf, sizeof(buf), "%s\n", self->id);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || s_write_all(fd, buf, strlen(buf)) != 0 || fsync(fd) != 0
        || rename(tmp, path) != 0) {
        esc_error_set(err, 0, "cannot write %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    close(fd);
    s_fsync_dir(self);
    esc_log_info("journal created dir=%s id=%s", self->dir, self->id);
    return 0;
}

static int
s_cmp_seg(const void *a, const void *b)
{
    const struct s_seg *x = *(const struct s_seg *const *)a;
    const struct s_seg *y = *(const struct s_seg *const *)b;

    return x->first < y->first ? -1 : (x->first > y->first ? 1 : 0);
}

/* Parses "<20 digits>.<ext>"; returns 0 and the number. */
static int
s_parse_name(const char *name, const char *ext, uint64_t *first)
{
    char want[8];
    uint64_t v = 0;
    int i;

    snprintf(want, sizeof(want), ".%s", ext);
    if (strlen(name) != 20 + strlen(want) || strcmp(name + 20, want) != 0) {
        return -1;
    }
    for (i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (UINT64_MAX - (uint64_t)(name[i] - '0')) / 10) {
            return -1;
        }
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *first = v;
    return 0;
}

/* Loads every segment of the directory. Returns 0, or -1 with err filled. */
static int
s_load_segments(col_journal_t *self, struct esc_error *err)
{
    DIR *d = opendir(self->dir);
    struct dirent *e;
    char path[S_PATH_MAX];
    uint64_t first;
    size_t i;

    if (d == NULL) {
        esc_error_set(err, 0, "cannot list %s: %s", self->dir, strerror(errno));
        return -1;
    }
    for (e = readdir(d); e != NULL; e = readdir(d)) {
        int fd;

        if (s_parse_name(e->d_name, "seg", &first) != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", self->dir, e->d_name);
        fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
        if (fd < 0) {
            esc_error_set(err, 0, "cannot open %s: %s", path, strerror(errno));
            closedir(d);
            return -1;
        }
        self->segs = esc_realloc(self->segs, (self->n_segs + 1) * sizeof(*self->segs));
        self->segs[self->n_segs++] = s_seg_new(first, fd);
    }
    closedir(d);
    if (self->n_segs > 1) {
        qsort(self->segs, self->n_segs, sizeof(*self->segs), s_cmp_seg);
    }
    for (i = 0; i < self->n_segs; i++) {
        struct s_seg *g = self->segs[i];

        s_path(self, g->first, "seg", path, sizeof(path));
        if (s_seg_load(self, g, path) != 0) {
            esc_error_set(err, 0, "cannot read the journal segment %s (see the log)", path);
            return -1;
        }
        s_seg_load_acks(self, g);
        self->bytes += g->size;
        self->unacked += g->n - g->n_acked;
        if (i + 1 < self->n_segs && g->first + g->n > self->segs[i + 1]->first) {
            esc_error_set(err, 0, "journal segments overlap: %s and the next one", path);
            return -1;
        }
    }
    return 0;
}

/* Removes .ack files whose segment is gone (the process died between the two unlinks). */
static void
s_remove_orphan_acks(col_journal_t *self)
{
    DIR *d = opendir(self->dir);
    struct dirent *e;
    char path[S_PATH_MAX];
    uint64_t first;
    size_t i;

    if (d == NULL) {
        return;
    }
    for (e = readdir(d); e != NULL; e = readdir(d)) {
        int found = 0;

        if (s_parse_name(e->d_name, "ack", &first) != 0) {
            continue;
        }
        for (i = 0; i < self->n_segs && !found; i++) {
            found = self->segs[i]->first == first;
        }
        if (!found) {
            snprintf(path, sizeof(path), "%s/%s", self->dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

col_journal_t *
col_journal_open(const struct col_journal_opts *o, struct esc_error *err)
{
    col_journal_t *self = esc_calloc(1, sizeof(*self));
    char path[S_PATH_MAX];
    uint64_t end = 0;
    size_t i;
    int64_t now = esc_mono_ms();

    self->lock_fd = -1;
    self->o = *o;
    self->o.dir = NULL;
    if (esc_strlcpy(self->dir, o->dir, sizeof(self->dir)) >= sizeof(self->dir)) {
        esc_error_set(err, 0, "journal directory path too long");
        goto fail;
    }
    if (mkdir(self->dir, 0700) != 0 && errno != EEXIST) {
        esc_error_set(err, 0, "cannot create the journal directory %s: %s", self->dir,
                      strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/lock", self->dir);
    self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (self->lock_fd < 0) {
        esc_error_set(err, 0, "cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    if (flock(self->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        esc_error_set(err, 0, "the journal directory %s is in use by another collector",
                      self->dir);
        goto fail;
    }
    if (s_load_id(self, err) != 0 || s_load_segments(self, err) != 0) {
        goto fail;
    }
    s_remove_orphan_acks(self);
    if (self->n_segs > 0) {
        struct s_seg *last = self->segs[self->n_segs - 1];

        end = last->first + last->n + COL_JOURNAL_SEQ_GAP;
    }
    self->next_seq = end > 0 ? end : 1;
    /* the new segment exists before old ones go, so the newest name always bounds the seqs */
    if (s_seg_start(self, self->next_seq) != 0) {
        esc_error_set(err, 0, "cannot start a journal segment in %s (see the log)", self->dir);
        goto fail;
    }
    for (i = 0; i + 1 < self->n_segs;) {
        if (self->segs[i]->n_acked == self->segs[i]->n) {
            s_seg_delete(self, i);
        }
        else {
            i++;
        }
    }
    self->rbuf = esc_malloc(S_HDR + ESC_MSG_MAX);
    self->last_ack_ms = now;
    self->last_sync_ms = now;
    esc_log_info("journal opened dir=%s id=%s segments=%zu unacked=%" PRIu64 " bytes=%" PRIu64
                 " next_seq=%" PRIu64,
                 self->dir, self->id, self->n_segs, self->unacked, self->bytes, self->next_seq);
    return self;

fail:
    col_journal_close(&self);
    return NULL;
}

void
col_journal_close(col_journal_t **self_p)
{
    col_journal_t *self;
    size_t i;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    if (self->n_segs > 0 && self->dirty && self->o.fsync_ms >= 0) {
        fdatasync(self->segs[self->n_segs - 1]->fd);
    }
    for (i = 0; i < self->n_segs; i++) {
        s_seg_free(self->segs[i]);
    }
    esc_free(self->segs);
    esc_free(self->rbuf);
    if (self->lock_fd >= 0) {
        close(self->lock_fd); /* releases the flock */
    }
    esc_free(self);
    *self_p = NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Appends, acks, redelivery
 */

const char *
col_journal_id(const col_journal_t *self)
{
    return self->id;
}

uint64_t
col_journal_next_seq(const col_journal_t *self)
{
    return self->next_seq;
}

/* Bytes an append could free first: a fully acknowledged active segment is rolled over. */
static uint64_t
s_reclaimable(const col_journal_t *self)
{
    const struct s_seg *g = self->segs[self->n_segs - 1];

    return g->n > 0 && g->n_acked == g->n ? g->size - S_MAGIC_LEN : 0;
}

bool
col_journal_has_room(const col_journal_t *self, size_t len)
{
    return self->unacked < (uint64_t)self->o.max_entries
           && self->bytes - s_reclaimable(self) + S_HDR + len <= (uint64_t)self->o.max_bytes;
}

static void
s_sync(col_journal_t *self, int64_t now_ms)
{
    if (self->dirty && self->n_segs > 0) {
        fdatasync(self->segs[self->n_segs - 1]->fd);
    }
    self->dirty = 0;
    self->last_sync_ms = now_ms;
}

esc_rc
col_journal_append(col_journal_t *self, const void *buf, size_t len, int64_t now_ms)
{
    struct s_seg *g = self->segs[self->n_segs - 1];
    uint8_t hdr[S_HDR];
    struct iovec iov[2];
    size_t done = 0;
    size_t total = S_HDR + len;

    ESC_ASSERT(len <= ESC_MSG_MAX);
    if (g->n > 0
        && (g->size + total > (uint64_t)self->o.segment_bytes
            || (g->n_acked == g->n && self->bytes + total > (uint64_t)self->o.max_bytes))) {
        /* roll: the finished segment is synced before its successor exists */
        if (self->o.fsync_ms >= 0) {
            s_sync(self, now_ms);
        }
        if (s_seg_start(self, self->next_seq) != 0) {
            return ESC_ERR;
        }
        if (g->n_acked == g->n) {
            s_seg_delete(self, self->n_segs - 2);
        }
        g = self->segs[self->n_segs - 1];
    }
    s_put_u32(hdr, (uint32_t)len);
    s_put_u32(hdr + 4, s_record_crc(self->next_seq, buf, len));
    s_put_u64(hdr + 8, self->next_seq);
    while (done < total) {
        ssize_t w;
        int k = 0;

        if (done < S_HDR) {
            iov[k].iov_base = hdr + done;
            iov[k].iov_len = S_HDR - done;
            k++;
        }
        iov[k].iov_base = (char *)(uintptr_t)buf + (done > S_HDR ? done - S_HDR : 0);
        iov[k].iov_len = len - (done > S_HDR ? done - S_HDR : 0);
        k++;
        w = writev(g->fd, iov, k);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            esc_log_error("journal write failed seq=%" PRIu64 " err=\"%s\"", self->next_seq,
                          w < 0 ? strerror(errno) : "short write");
            if (done > 0 && ftruncate(g->fd, (off_t)g->size) != 0) {
                esc_log_error("cannot cut a partly written journal record err=\"%s\"",
                              strerror(errno));
            }
            return ESC_ERR;
        }
        done += (size_t)w;
    }
    s_seg_push(g, (uint32_t)g->size, (uint32_t)len);
    g->sent[g->n - 1] = s_stamp(self, now_ms);
    if (g->next_due > now_ms) {
        g->next_due = now_ms;
    }
    g->size += total;
    self->bytes += total;
    self->unacked++;
    self->next_seq++;
    self->st.appended++;
    self->dirty = 1;
    if (self->o.fsync_ms == 0) {
        s_sync(self, now_ms);
    }
    return ESC_OK;
}

/* Appends the acknowledged range to g's side file (so a restart does not send it again). */
static void
s_seg_persist_ack(col_journal_t *self, struct s_seg *g, uint64_t first, uint64_t n)
{
    uint8_t rec[S_ACK_REC];
    char path[S_PATH_MAX];

    if (g->ack_fd < 0) {
        s_path(self, g->first, "ack", path, sizeof(path));
        g->ack_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (g->ack_fd < 0) {
            esc_log_warn("cannot record acknowledgements path=%s err=\"%s\" (they are sent "
                         "again after a restart)", path, strerror(errno));
            return;
        }
    }
    s_put_u64(rec, first);
    s_put_u64(rec + 8, n);
    if (s_write_all(g->ack_fd, rec, sizeof(rec)) != 0) {
        esc_log_warn("cannot record acknowledgements err=\"%s\"", strerror(errno));
    }
}

uint64_t
col_journal_ack(col_journal_t *self, uint64_t first, uint64_t n, int64_t now_ms)
{
    int64_t acked_sent = self->acked_sent;
    uint64_t newly = 0;
    size_t i;

    self->last_ack_ms = now_ms;
    if (n == 0) {
        return 0;
    }
    for (i = 0; i < self->n_segs;) {
        struct s_seg *g = self->segs[i];
        uint64_t k = s_seg_mark(self, g, first, n);

        if (k > 0) {
            uint64_t lo = first > g->first ? first : g->first;
            uint64_t hi = first + (n - 1) < g->first + g->n - 1 ? first + (n - 1)
                                                                : g->first + g->n - 1;

            s_seg_persist_ack(self, g, lo, hi - lo + 1);
            newly += k;
            self->unacked -= k;
            if (g->n_acked == g->n && i + 1 < self->n_segs) {
                s_seg_delete(self, i);
                continue;
            }
        }
        i++;
    }
    if (self->acked_sent > acked_sent) {
        /* entries sent before the newest acknowledged one may be overtaken now: look again */
        for (i = 0; i < self->n_segs; i++) {
            self->segs[i]->next_due = 0;
        }
    }
    self->st.acked += newly;
    return newly;
}

/* Backoff of an entry re-sent `tries` times. */
static int64_t
s_backoff(int64_t timeout_ms, int64_t max_ms, unsigned tries)
{
    int64_t b = timeout_ms;
    unsigned i;

    for (i = 0; i < tries && b < max_ms; i++) {
        b *= 2;
    }
    return b < max_ms ? b : max_ms;
}

size_t
col_journal_redeliver(col_journal_t *self, int64_t now_ms, int64_t timeout_ms, int64_t max_ms,
                      size_t budget, col_journal_send_fn fn, void *arg)
{
    size_t sent = 0;
    size_t i;

    for (i = 0; i < self->n_segs; i++) {
        struct s_seg *g = self->segs[i];
        int64_t next_due = INT64_MAX;
        size_t k;

        if (g->next_due > now_ms || g->n_acked == g->n) {
            continue;
        }
        for (k = g->scan_from; k < g->n; k++) {
            unsigned tries = g->st[k] & S_TRIES;
            uint32_t len = g->len[k];
            esc_rc rc;

            if (g->st[k] & S_ACKED) {
                continue;
            }
            if (g->sent[k] != 0) {
                int64_t backoff = s_backoff(timeout_ms, max_ms, tries);
                int64_t due = g->sent[k] / 1000 + backoff;

                if (due > now_ms) {
                    next_due = due < next_due ? due : next_due;
                    continue;
                }
                if (g->sent[k] > self->acked_sent && now_ms - self->last_ack_ms < backoff) {
                    /* nothing sent after it was acknowledged yet: still on its way */
                    if (now_ms + S_RECHECK_MS < next_due) {
                        next_due = now_ms + S_RECHECK_MS;
                    }
                    continue;
                }
            }
            if (sent >= budget) {
                g->next_due = now_ms;
                return sent;
            }
            if (pread(g->fd, self->rbuf, S_HDR + len, (off_t)g->off[k]) != (ssize_t)(S_HDR + len)
                || s_get_u64(self->rbuf + 8) != g->first + k) {
                esc_log_error("cannot read a journal record back seq=%" PRIu64 " err=\"%s\"",
                              g->first + k, strerror(errno));
                next_due = now_ms + S_RECHECK_MS;
                continue;
            }
            rc = fn(arg, self->rbuf + S_HDR, len);
            if (rc != ESC_OK) {
                g->next_due = now_ms; /* the bus is full: the same place next time */
                return sent;
            }
            if (g->sent[k] != 0 && tries < S_TRIES) {
                g->st[k]++;
            }
            g->sent[k] = s_stamp(self, now_ms);
            self->st.redelivered++;
            sent++;
            if (now_ms + timeout_ms < next_due) {
                next_due = now_ms + timeout_ms;
            }
        }
        g->next_due = next_due;
    }
    return sent;
}

void
col_journal_tick(col_journal_t *self, int64_t now_ms)
{
    if (self->dirty && self->o.fsync_ms > 0 && now_ms - self->last_sync_ms >= self->o.fsync_ms) {
        s_sync(self, now_ms);
    }
}

void
col_journal_get_stats(const col_journal_t *self, struct col_journal_stats *out)
{
    *out = self->st;
    out->entries = self->unacked;
    out->bytes = self->bytes;
    out->segments = self->n_segs;
}
