#ifndef ESC_BUS_H
#define ESC_BUS_H

/* Thin wrapper over one ZeroMQ socket of the pipeline (PUSH or PULL), one message per frame.
 * Topology (docs/architecture.md): collectors -PUSH-> broker -PUSH-> classifiers -PUSH->
 * aggregator -PUSH-> notifier. Single-threaded: a bus object is used by one thread only. */

#include <stdbool.h>
#include <stddef.h>

#include "esc_rc.h"

typedef struct esc_bus esc_bus_t;

enum esc_bus_kind {
    ESC_BUS_PUSH,
    ESC_BUS_PULL,
};

#define ESC_BUS_DONTWAIT 1

/* Returns the process-wide ZeroMQ context, created on first use (after esc_sig_block!). */
void *esc_bus_ctx(void);
/* Terminates the context (all sockets must be destroyed first). */
void esc_bus_ctx_term(void);

/* Opens a socket of `kind` that binds (bind=true) or connects to endpoint, with the given
 * high-water mark. Endpoint "tcp://127.0.0.1:*" binds a free port (see esc_bus_endpoint).
 * Returns a caller-owned bus, or NULL (logged). */
esc_bus_t *esc_bus_new(enum esc_bus_kind kind, const char *endpoint, bool bind, int hwm);
/* Closes the socket with ZMQ_LINGER = linger_ms (0 drops what is queued). NULL-safe. */
void esc_bus_destroy(esc_bus_t **self_p, int linger_ms);

/* Sends one frame. With ESC_BUS_DONTWAIT returns ESC_RETRY when the high-water mark is reached;
 * without it, blocks until queued. ESC_CLOSED when the context is terminating. */
esc_rc esc_bus_send(esc_bus_t *self, const void *buf, size_t len, int flags);
/* Receives one frame. *buf is borrowed and valid until the next recv on this bus. Returns
 * ESC_OK, ESC_RETRY (nothing there, with ESC_BUS_DONTWAIT), ESC_CLOSED or ESC_ERR. */
esc_rc esc_bus_recv(esc_bus_t *self, const void **buf, size_t *len, int flags);

/* The raw ZeroMQ socket, for zmq_poll. Borrowed. */
void *esc_bus_zsock(esc_bus_t *self);
/* The endpoint actually bound or connected (resolved port for "*"). Borrowed. */
const char *esc_bus_endpoint(esc_bus_t *self);

#endif
