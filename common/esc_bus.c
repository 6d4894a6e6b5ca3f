#define ESC_LOG_MODULE "bus"
/* One ZeroMQ PUSH or PULL socket per esc_bus_t, one msgpack message per frame. A process has
 * one ZeroMQ context (esc_bus_ctx). Linger is always set explicitly on close, since libzmq's
 * default is infinite and would make zmq_ctx_term hang at shutdown. Single-threaded. */
#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

struct esc_bus {
    void *sock;           /* ZeroMQ socket */
    zmq_msg_t msg;        /* last received frame (its data is lent out by esc_bus_recv) */
    int have_msg;         /* msg holds a frame that must be closed */
    char endpoint[256];   /* resolved endpoint */
};

static void *s_ctx;

void *
esc_bus_ctx(void)
{
    if (s_ctx == NULL) {
        s_ctx = zmq_ctx_new();
        ESC_ASSERT(s_ctx != NULL);
    }
    return s_ctx;
}

void
esc_bus_ctx_term(void)
{
    if (s_ctx != NULL) {
        zmq_ctx_term(s_ctx);
        s_ctx = NULL;
    }
}

esc_bus_t *
esc_bus_new(enum esc_bus_kind kind, const char *endpoint, bool bind, int hwm)
{
    esc_bus_t *self = esc_calloc(1, sizeof(*self));
    size_t len = sizeof(self->endpoint);
    int linger = 0;
    int rc;

    self->sock = zmq_socket(esc_bus_ctx(), kind == ESC_BUS_PUSH ? ZMQ_PUSH : ZMQ_PULL);
    if (self->sock == NULL) {
        esc_log_error("socket failed err=\"%s\"", zmq_strerror(zmq_errno()));
        esc_free(self);
        return NULL;
    }
    zmq_setsockopt(self->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(self->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof(linger));
    if (bind) {
        rc = zmq_bind(self->sock, endpoint);
    }
    else {
        rc = zmq_connect(self->sock, endpoint);
    }
    if (rc != 0) {
        esc_log_error("%s failed endpoint=%s err=\"%s\"", bind ? "bind" : "connect", endpoint,
                      zmq_strerror(zmq_errno()));
        zmq_close(self->sock);
        esc_free(self);
        return NULL;
    }
    if (bind && zmq_getsockopt(self->sock, ZMQ_LAST_ENDPOINT, self->endpoint, &len) == 0) {
        /* resolved */
    }
    else {
        esc_strlcpy(self->endpoint, endpoint, sizeof(self->endpoint));
    }
    esc_log_debug("%s endpoint=%s kind=%s", bind ? "bound" : "connected", self->endpoint,
                  kind == ESC_BUS_PUSH ? "push" : "pull");
    return self;
}

void
esc_bus_destroy(esc_bus_t **self_p, int linger_ms)
{
    esc_bus_t *self;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    if (self->have_msg) {
        zmq_msg_close(&self->msg);
    }
    if (linger_ms < 0) {
        linger_ms = 0;
    }
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger_ms, sizeof(linger_ms));
    zmq_close(self->sock);
    esc_free(self);
    *self_p = NULL;
}

esc_rc
esc_bus_send(esc_bus_t *self, const void *buf, size_t len, int flags)
{
    int zflags = (flags & ESC_BUS_DONTWAIT) ? ZMQ_DONTWAIT : 0;

    for (;;) {
        if (zmq_send(self->sock, buf, len, zflags) >= 0) {
            return ESC_OK;
        }
        if (zmq_errno() == EINTR) {
            continue;
        }
        if (zmq_errno() == EAGAIN) {
            return ESC_RETRY;
        }
        if (zmq_errno() == ETERM) {
            return ESC_CLOSED;
        }
        esc_log_error("send failed endpoint=%s err=\"%s\"", self->endpoint,
                      zmq_strerror(zmq_errno()));
        return ESC_ERR;
    }
}

esc_rc
esc_bus_recv(esc_bus_t *self, const void **buf, size_t *len, int flags)
{
    int zflags = (flags & ESC_BUS_DONTWAIT) ? ZMQ_DONTWAIT : 0;

    if (self->have_msg) {
        zmq_msg_close(&self->msg);
        self->have_msg = 0;
    }
    zmq_msg_init(&self->msg);
    for (;;) {
        if (zmq_msg_recv(&self->msg, self->sock, zflags) >= 0) {
            self->have_msg = 1;
            *buf = zmq_msg_data(&self->msg);
            *len = zmq_msg_size(&self->msg);
            return ESC_OK;
        }
        if (zmq_errno() == EINTR) {
            continue;
        }
        zmq_msg_close(&self->msg);
        if (zmq_errno() == EAGAIN) {
            return ESC_RETRY;
        }
        if (zmq_errno() == ETERM) {
            return ESC_CLOSED;
        }
        esc_log_error("recv failed endpoint=%s err=\"%s\"", self->endpoint,
                      zmq_strerror(zmq_errno()));
        return ESC_ERR;
    }
}

void *
esc_bus_zsock(esc_bus_t *self)
{
    return self->sock;
}

const char *
esc_bus_endpoint(esc_bus_t *self)
{
    return self->endpoint;
}
