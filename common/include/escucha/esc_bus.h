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
    ESC_BUS_PUB, /* acknowledgements (docs/delivery.md): a send never blocks, drops at the HWM */
    ESC_BUS_SUB, /* receives nothing until subscribed: ZMQ_SUBSCRIBE on esc_bus_zsock */
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

/* CURVE (encryption + authentication) for one socket. Keys are Z85 text (40 characters).
 * A binding socket is a CURVE server with server_secret; every client key it sees is checked
 * by the process's authenticator against the authorized list (esc_bus_curve_authorize). A
 * connecting socket is a CURVE client with its own client keys and the server's public key. */
struct esc_bus_curve {
    char server_secret[41]; /* binders: secret key of the bus servers */
    char server_public[41]; /* connecters: public key of the bus servers */
    char client_secret[41]; /* connecters: this process's secret key */
    char client_public[41]; /* connecters: this process's public key */
};

/* Like esc_bus_new, with CURVE when curve is non-NULL (copied). A handshake that fails (our
 * key refused, wrong server key, peer without CURVE) is logged with the reason and counted. */
esc_bus_t *esc_bus_new_curve(enum esc_bus_kind kind, const char *endpoint, bool bind, int hwm,
                             const struct esc_bus_curve *curve);

/* Reads the bus section of cfg: which endpoints use CURVE (bus.curve_endpoints), the key files
 * and the authorized client keys. After it, esc_bus_new uses CURVE on those endpoints by
 * itself. Returns ESC_OK, or ESC_INVALID with err naming the key (missing file, bad key). */
struct esc_cfg;
esc_rc esc_bus_configure(const struct esc_cfg *cfg, struct esc_error *err);

/* Replaces the list of client public keys the authenticator accepts (copied; Z85). Starts the
 * authenticator thread on first use. Returns 0, or -1 when a key is not valid Z85. */
int esc_bus_curve_authorize(const char *const *public_keys, size_t n);
/* Connections refused by this process's authenticator since start. */
unsigned long esc_bus_curve_refused(void);
/* Failed handshakes seen on this socket (our key refused, wrong server key, no CURVE). */
unsigned long esc_bus_handshake_failures(esc_bus_t *self);
/* Reads pending security events of the socket and logs them (also done inside send/recv when
 * they would block). */
void esc_bus_poll_events(esc_bus_t *self);

/* Generates a key pair into pub/sec (41 bytes each). Returns 0 or -1. */
int esc_bus_curve_keypair(char *pub, char *sec);
/* Derives the public key of a secret key. Returns 0, or -1 when sec is not a valid key. */
int esc_bus_curve_public(const char *sec, char *pub);

/* Sends one frame. With ESC_BUS_DONTWAIT returns ESC_RETRY when the high-water mark is reached;
 * without it, blocks until queued. ESC_CLOSED when the context is terminating. */
esc_rc esc_bus_send(esc_bus_t *self, const void *buf, size_t len, int flags);
/* Receives one frame. *buf is borrowed and valid until the next recv on this bus. Returns
 * ESC_OK, ESC_RETRY (nothing there, with ESC_BUS_DONTWAIT), ESC_CLOSED or ESC_ERR. */
esc_rc esc_bus_recv(esc_bus_t *self, const void **buf, size_t *len, int flags);

/* The raw ZeroMQ socket, for zmq_poll. Borrowed. On a CURVE socket it also reads pending
 * security events (at most every 200 ms), so a refused handshake is logged by any loop. */
void *esc_bus_zsock(esc_bus_t *self);
/* The endpoint actually bound or connected (resolved port for "*"). Borrowed. */
const char *esc_bus_endpoint(esc_bus_t *self);

#endif
