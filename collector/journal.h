#ifndef COL_JOURNAL_H
#define COL_JOURNAL_H

/* The collector's delivery journal (collector-internal; docs/delivery.md). Every post the
 * collector sends is first appended here, with a sequence number, and stays until the
 * aggregator acknowledges it (after the post is counted in Redis). Entries are records in
 * segment files in one directory; a segment whose entries are all acknowledged is deleted.
 * After a restart the unacknowledged entries are read back and sent again; unacknowledged
 * entries are also sent again after a redelivery timeout (col_journal_redeliver).
 *
 * On disk, in `dir` (created with mode 700 when missing):
 *   id                     this collector's id (random, made once): the <id> of every ack_ref
 *   lock                   flock'ed while a collector uses the directory
 *   <first seq, 20 digits>.seg   "ESCJNL1\n", then records: u32 length, u32 CRC-32C of
 *                          (seq, payload), u64 seq (little-endian), payload (the encoded post)
 *   <first seq>.ack        acknowledged ranges of that segment: u64 first, u64 count per record
 * A record is written with one write() before the post is sent, so a killed process (SIGKILL)
 * loses nothing; only a machine crash can lose what was not yet fsync'ed (fsync_ms). A torn last
 * record (the process died in the middle of the write, so the post was never sent) is cut off
 * at open. Each open starts a new segment whose first sequence number is 2^24 past the last one
 * used, so an ack for a record lost in a machine crash can never match a new post.
 * Single-threaded. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_ack.h"
#include "escucha/esc_rc.h"

#define COL_JOURNAL_SEQ_GAP (UINT64_C(1) << 24) /* sequence numbers skipped at each open */

typedef struct col_journal col_journal_t;

struct col_journal_opts {
    const char *dir;       /* the journal directory (copied) */
    int64_t max_bytes;     /* bound on the bytes of all segment files */
    int64_t max_entries;   /* bound on unacknowledged entries */
    int64_t segment_bytes; /* a new segment starts once the current one would pass this */
    int64_t fsync_ms;      /* -1 never fsync, 0 after every append, N: at most N ms after one */
};

struct col_journal_stats {
    uint64_t entries;     /* unacknowledged entries */
    uint64_t bytes;       /* bytes of all segment files */
    size_t segments;      /* segment files */
    uint64_t appended;    /* entries appended since open */
    uint64_t acked;       /* entries acknowledged since open */
    uint64_t redelivered; /* sends of an entry after its first one (start-up included) */
    uint64_t torn_bytes;  /* bytes of torn or corrupt records cut off at open */
};

/* Sends one journaled message (the callback of col_journal_redeliver): ESC_OK when the bus took
 * it, ESC_RETRY when it is full (redelivery stops there), anything else also stops it. */
typedef esc_rc (*col_journal_send_fn)(void *arg, const void *buf, size_t len);

/* Opens (creating when needed) and locks the journal in o->dir, reads back every segment and its
 * acks, cuts off a torn tail, deletes fully acknowledged segments and starts a new segment.
 * Returns a caller-owned journal, or NULL with err->text saying why (directory not usable, in
 * use by another process, bad id file, I/O error). */
col_journal_t *col_journal_open(const struct col_journal_opts *o, struct esc_error *err);
/* Syncs (unless fsync_ms is -1), closes and unlocks. NULL-safe; sets *self_p = NULL. */
void col_journal_close(col_journal_t **self_p);

/* The collector id (borrowed, valid until close). */
const char *col_journal_id(const col_journal_t *self);
/* The sequence number the next append gets. */
uint64_t col_journal_next_seq(const col_journal_t *self);
/* True when an entry of len payload bytes fits the bounds (max_entries, max_bytes). */
bool col_journal_has_room(const col_journal_t *self, size_t len);
/* Appends one entry (seq = col_journal_next_seq) and counts it as sent at now_ms (monotonic).
 * The caller checked has_room. Returns ESC_OK, or ESC_ERR when the write failed (logged; the
 * journal is unchanged). */
esc_rc col_journal_append(col_journal_t *self, const void *buf, size_t len, int64_t now_ms);
/* Marks [first, first + n) acknowledged (sequence numbers this journal does not hold are
 * ignored), records it on disk and deletes segments that became fully acknowledged. Returns the
 * number of entries newly acknowledged. */
uint64_t col_journal_ack(col_journal_t *self, uint64_t first, uint64_t n, int64_t now_ms);

/* Sends again, oldest first and at most `budget` of them, the unacknowledged entries that are
 * due at now_ms: entries read back at open (never sent by this process) at once; others once
 * min(timeout_ms << (times re-sent), max_ms) have passed since their last send AND either an
 * entry sent after them has been acknowledged (they were overtaken, so most likely lost) or no
 * ack at all came for that long (the pipeline lost everything). A slow pipeline that still acks
 * in order therefore gets no duplicates. Stops at the first send that is not ESC_OK (the bus
 * applies backpressure). Returns the number of entries sent. */
size_t col_journal_redeliver(col_journal_t *self, int64_t now_ms, int64_t timeout_ms,
                             int64_t max_ms, size_t budget, col_journal_send_fn fn, void *arg);
/* fsyncs the current segment when fsync_ms > 0 and an append has waited that long. */
void col_journal_tick(col_journal_t *self, int64_t now_ms);

void col_journal_get_stats(const col_journal_t *self, struct col_journal_stats *out);

#endif
