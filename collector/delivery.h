#ifndef COL_DELIVERY_H
#define COL_DELIVERY_H

/* At-least-once hand-off of the collector's posts (collector-internal; docs/delivery.md): the
 * journal (journal.h) plus the acknowledgements the aggregators send back through the broker
 * (a SUB socket on bus.ack_pub, subscribed to this collector's id only), redelivery of what is
 * not acknowledged, and the journal's metrics. The host (collector.c) stamps each post with
 * col_delivery_stamp, appends its encoded message with col_delivery_append before sending it,
 * and calls col_delivery_tick on every turn of its loop and while it waits.
 * Single-threaded: the collector's loop thread. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collector.h"

#include "escucha/esc_bus.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_rc.h"

typedef struct col_delivery col_delivery_t;

/* Opens the journal in ccfg->journal_dir (which must be set) and connects the ack socket to
 * cfg->bus.ack_pub. out (the PUSH socket to the broker, used for redelivery), cfg and ccfg are
 * borrowed and must outlive the object. Returns a caller-owned object, or NULL with err->text
 * saying why. */
col_delivery_t *col_delivery_new(const struct esc_cfg *cfg, const struct col_cfg *ccfg,
                                 esc_bus_t *out, struct esc_error *err);
/* Closes the journal (unacknowledged entries stay on disk for the next start) and the ack
 * socket. NULL-safe; sets *self_p = NULL. */
void col_delivery_destroy(col_delivery_t **self_p);

/* Sets post->ack_ref to "<collector id>:<next seq>" (replacing any value). */
void col_delivery_stamp(col_delivery_t *self, struct esc_post *post);
/* True when the journal can take an encoded post of len bytes; otherwise logs (at most every
 * 10 s) that sources wait for acknowledgements and sets the journal_full gauge. */
bool col_delivery_has_room(col_delivery_t *self, size_t len);
/* Appends the encoded post stamped last. Returns ESC_OK, or ESC_ERR when the write failed
 * (logged): the post must not be sent as if it were journaled. */
esc_rc col_delivery_append(col_delivery_t *self, const void *buf, size_t len);
/* Reads the acknowledgements that arrived, re-sends what is due (never blocking: it stops when
 * the bus is full), fsyncs when due and brings the metrics up to date. */
void col_delivery_tick(col_delivery_t *self);
/* The ack socket, for zmq_poll (borrowed). */
void *col_delivery_zsock(col_delivery_t *self);
/* Posts in the journal not yet acknowledged. */
uint64_t col_delivery_unacked(const col_delivery_t *self);

#endif
