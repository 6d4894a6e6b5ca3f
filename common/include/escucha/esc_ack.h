#ifndef ESC_ACK_H
#define ESC_ACK_H

/* Acknowledgements of counted posts (docs/delivery.md). A collector with a journal gives every
 * post it sends a reference "<collector id>:<seq>" (struct esc_post's ack_ref). Once a flush has
 * written the post's batch to Redis, the aggregator sends an "ack" message for that collector
 * through the broker (bus.ack in, bus.ack_pub out) naming the sequence numbers it covered, as
 * ranges, and the collector drops them from its journal.
 *
 * Wire format, schema version 1: one msgpack map of exactly these five keys in this order, so
 * that every ack for one collector starts with the same bytes (esc_ack_prefix; the collectors'
 * SUB sockets subscribe to them and the broker's PUB socket filters):
 *   id    str   collector id, [A-Za-z0-9_-]{1,64}
 *   v     uint  1
 *   type  str   "ack"
 *   ts    int   when it was sent, Unix ms
 *   r     array of uint, pairs (gap, count): range i is [first_i, first_i + count_i) with
 *               first_i = end_(i-1) + gap_i, end_(-1) = 0, count_i >= 1; at most
 *               ESC_ACK_RANGES_MAX ranges
 * The decoder takes the keys in any order and ignores unknown ones. It rejects with ESC_INVALID
 * and the reason in err->text: more than ESC_MSG_MAX bytes, empty, truncated, trailing bytes,
 * not a map, a non-string key, a known key twice, a missing key, a wrong version or type, a bad
 * collector id, a value of the wrong type, an odd or too long range array, a zero count, and
 * ranges that run past 2^64. No allocation depends on a length the input claims before its bytes
 * are there. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esc_rc.h"

#define ESC_ACK_ID_MAX 64             /* longest collector id, bytes */
#define ESC_ACK_REF_MAX 96            /* longest "<collector id>:<seq>" with its NUL */
#define ESC_ACK_RANGES_MAX 32768      /* ranges in one message (< 1 MiB encoded in any case) */
#define ESC_ACK_PREFIX_MAX (4 + 2 + ESC_ACK_ID_MAX) /* bytes of esc_ack_prefix's output */

struct esc_ack_range {
    uint64_t first; /* first sequence number acknowledged */
    uint64_t n;     /* how many, >= 1 */
};

/* One decoded ack. Caller-owned members, freed by esc_ack_fini. */
struct esc_ack {
    char *collector;              /* collector id */
    int64_t ts;                   /* when the ack was sent, Unix ms */
    struct esc_ack_range *ranges; /* ascending, non-overlapping */
    size_t n_ranges;
};

void esc_ack_init(struct esc_ack *a);
void esc_ack_fini(struct esc_ack *a);

/* True when id is a valid collector id: 1 to ESC_ACK_ID_MAX bytes of [A-Za-z0-9_-]. */
bool esc_ack_id_valid(const char *id);

/* Writes "<id>:<seq>" into out (outsz >= ESC_ACK_REF_MAX is always enough). Returns out. */
char *esc_ack_ref_format(char *out, size_t outsz, const char *id, uint64_t seq);
/* Splits a reference made by esc_ack_ref_format: the id (copied into id, idsz >
 * ESC_ACK_ID_MAX) and the decimal sequence number. Returns 0, or -1 when ref is malformed
 * (nothing is guaranteed about the outputs then). */
int esc_ack_ref_parse(const char *ref, char *id, size_t idsz, uint64_t *seq);

/* Sorts seqs in place and replaces a's ranges by the ranges that cover them (duplicates
 * merged). Returns the number of ranges. */
size_t esc_ack_set_seqs(struct esc_ack *a, uint64_t *seqs, size_t n);

/* Encodes an ack for collector (a valid id) with n ranges (1 <= n <= ESC_ACK_RANGES_MAX,
 * ascending, non-overlapping, counts >= 1; a producer bug otherwise: ESC_ASSERT). Returns a
 * caller-owned buffer (esc_free) and sets *len. */
char *esc_ack_encode_ranges(const char *collector, int64_t ts, const struct esc_ack_range *r,
                            size_t n, size_t *len);
/* Same with the members of a. */
char *esc_ack_encode(const struct esc_ack *a, size_t *len);

/* Decodes an ack into out (initialised here; the caller must esc_ack_fini it whatever the
 * result). Returns ESC_OK or ESC_INVALID with err (may be NULL) filled. */
esc_rc esc_ack_decode(const void *buf, size_t len, struct esc_ack *out, struct esc_error *err);

/* Writes the bytes every encoded ack for collector starts with into out (at least
 * ESC_ACK_PREFIX_MAX bytes). Returns their number, or 0 when collector is not a valid id. */
size_t esc_ack_prefix(const char *collector, void *out, size_t outsz);

#endif
