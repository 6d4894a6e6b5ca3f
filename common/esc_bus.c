#define ESC_LOG_MODULE "bus"
/* One ZeroMQ PUSH, PULL, PUB or SUB socket per esc_bus_t, one msgpack message per frame. A
 * process has one ZeroMQ context (esc_bus_ctx). Linger is always set explicitly on close, since
 * libzmq's default is infinite and would make zmq_ctx_term hang at shutdown.
 * CURVE: binding sockets are CURVE servers whose clients are checked by a ZAP authenticator
 * (a thread with a REP socket on inproc://zeromq.zap.01, started on first use) against the
 * authorized client keys; connecting sockets are CURVE clients. Each secure socket has a
 * monitor so a failed handshake is logged with its reason rather than looking like silence.
 * A bus object is used by one thread; the authenticator only shares its key list (mutex). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_EVENTS                                                                                   \
    (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL                    \
     | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

struct esc_bus {
    void *sock;           /* ZeroMQ socket */
    zmq_msg_t msg;        /* last received frame (its data is lent out by esc_bus_recv) */
    int have_msg;         /* msg holds a frame that must be closed */
    char endpoint[256];   /* resolved endpoint */
    void *mon;            /* PAIR socket reading this socket's monitor events, or NULL */
    unsigned long hs_failures; /* failed handshakes seen */
    int bind;             /* bound (CURVE server) or connected (client) */
    int64_t next_events_ms; /* esc_bus_zsock reads security events again after this */
};

static void *s_ctx;

/* Process-wide CURVE settings from esc_bus_configure: which endpoints use which keys. */
static struct esc_bus_curve s_curve;
static char s_curve_eps[6][256];
static size_t s_n_curve_eps;
static unsigned s_mon_seq;

/* The authenticator. */
static pthread_t s_zap_thread;
static int s_zap_running;
static atomic_int s_zap_stop;
static pthread_mutex_t s_zap_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t (*s_zap_keys)[32];
static size_t s_zap_n;
static atomic_ulong s_zap_refused;

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
    if (s_zap_running) {
        atomic_store(&s_zap_stop, 1);
        pthread_join(s_zap_thread, NULL);
        s_zap_running = 0;
    }
    pthread_mutex_lock(&s_zap_lock);
    ESC_FREE(s_zap_keys);
    s_zap_n = 0;
    pthread_mutex_unlock(&s_zap_lock);
    if (s_ctx != NULL) {
        zmq_ctx_term(s_ctx);
        s_ctx = NULL;
    }
}

int
esc_bus_curve_keypair(char *pub, char *sec)
{
    return zmq_curve_keypair(pub, sec) == 0 ? 0 : -1;
}

int
esc_bus_curve_public(const char *sec, char *pub)
{
    uint8_t raw[32];

    if (strlen(sec) != 40 || zmq_z85_decode(raw, sec) == NULL) {
        return -1;
    }
    return zmq_curve_public(pub, sec) == 0 ? 0 : -1;
}

/* Sends one frame of a ZAP reply. */
static void
s_zap_send(void *rep, const void *data, size_t len, int more)
{
    zmq_send(rep, data, len, more ? ZMQ_SNDMORE : 0);
}

/* Answers one ZAP request on rep: 200 for an authorized CURVE client key, 400 otherwise. */
static void
s_zap_handle(void *rep)
{
    char frames[7][256];
    size_t lens[7];
    int n = 0;
    int more = 1;
    size_t more_len = sizeof(more);
    int ok = 0;
    size_t i;
    char z85[41] = "";
    char addr[64];

    while (more && n < 7) {
        int r = zmq_recv(rep, frames[n], sizeof(frames[n]) - 1, 0);

        if (r < 0) {
            return;
        }
        lens[n] = (size_t)r < sizeof(frames[n]) ? (size_t)r : sizeof(frames[n]) - 1;
        frames[n][lens[n]] = '\0';
        n++;
        zmq_getsockopt(rep, ZMQ_RCVMORE, &more, &more_len);
    }
    while (more) { /* drain anything unexpected */
        char junk[64];

        if (zmq_recv(rep, junk, sizeof(junk), 0) < 0) {
            break;
        }
        zmq_getsockopt(rep, ZMQ_RCVMORE, &more, &more_len);
    }
    if (n == 7 && strcmp(frames[5], "CURVE") == 0 && lens[6] == 32) {
        zmq_z85_encode(z85, (const uint8_t *)frames[6], 32);
        pthread_mutex_lock(&s_zap_lock);
        for (i = 0; i < s_zap_n && !ok; i++) {
            ok = memcmp(s_zap_keys[i], frames[6], 32) == 0;
        }
        pthread_mutex_unlock(&s_zap_lock);
    }
    if (!ok) {
        atomic_fetch_add(&s_zap_refused, 1);
        esc_log_quote(addr, sizeof(addr), n > 3 ? frames[3] : "", 45);
        esc_log_warn("bus refused a client: its key is not in bus.curve_authorized_file "
                     "client_key=%s address=%s mechanism=%s",
                     z85[0] != '\0' ? z85 : "-", addr, n > 5 ? frames[5] : "-");
    }
    s_zap_send(rep, "1.0", 3, 1);
    s_zap_send(rep, n > 1 ? frames[1] : "", n > 1 ? lens[1] : 0, 1);
    s_zap_send(rep, ok ? "200" : "400", 3, 1);
    s_zap_send(rep, ok ? "OK" : "client key not authorized", ok ? 2 : 25, 1);
    s_zap_send(rep, z85, strlen(z85), 1);
    s_zap_send(rep, "", 0, 0);
}

static void *
s_zap_main(void *arg)
{
    void *rep = arg;
    int linger = 0;

    while (!atomic_load(&s_zap_stop)) {
        zmq_pollitem_t it = { rep, 0, ZMQ_POLLIN, 0 };

        if (zmq_poll(&it, 1, 100) > 0 && (it.revents & ZMQ_POLLIN)) {
            s_zap_handle(rep);
        }
    }
    zmq_setsockopt(rep, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(rep);
    return NULL;
}

/* Replaces the authorized client keys; -1 when one is not a Z85 key. */
static int
s_zap_set_keys(const char *const *public_keys, size_t n)
{
    uint8_t (*keys)[32] = esc_calloc(n + 1, sizeof(*keys));
    size_t i;

    for (i = 0; i < n; i++) {
        if (strlen(public_keys[i]) != 40 || zmq_z85_decode(keys[i], public_keys[i]) == NULL) {
            esc_log_error("bad client public key index=%zu (want 40 Z85 characters)", i);
            esc_free(keys);
            return -1;
        }
    }
    pthread_mutex_lock(&s_zap_lock);
    esc_free(s_zap_keys);
    s_zap_keys = keys;
    s_zap_n = n;
    pthread_mutex_unlock(&s_zap_lock);
    return 0;
}

/* Starts the authenticator thread once. Called when the first CURVE socket binds, which is
 * after esc_sig_init, so the thread never takes a signal. */
static int
s_zap_start(void)
{
    void *rep;

    if (s_zap_running) {
        return 0;
    }
    rep = zmq_socket(esc_bus_ctx(), ZMQ_REP);
    if (rep == NULL || zmq_bind(rep, S_ZAP_ENDPOINT) != 0) {
        esc_log_error("authenticator failed to start err=\"%s\"", zmq_strerror(zmq_errno()));
        if (rep != NULL) {
            zmq_close(rep);
        }
        return -1;
    }
    atomic_store(&s_zap_stop, 0);
    if (pthread_create(&s_zap_thread, NULL, s_zap_main, rep) != 0) {
        esc_log_error("authenticator thread failed to start");
        zmq_close(rep);
        return -1;
    }
    s_zap_running = 1;
    return 0;
}

int
esc_bus_curve_authorize(const char *const *public_keys, size_t n)
{
    if (s_zap_set_keys(public_keys, n) < 0) {
        return -1;
    }
    return s_zap_start();
}

unsigned long
esc_bus_curve_refused(void)
{
    return atomic_load(&s_zap_refused);
}

/* Loads a Z85 key from a secret file into out (41 bytes). */
static esc_rc
s_load_key(const char *path, const char *what, char *out, struct esc_error *err)
{
    char *k = esc_secret_load(NULL, path, what);

    if (k == NULL || strlen(k) != 40) {
        esc_error_set(err, 0, "bus.%s: cannot read a 40-character Z85 key from '%s'", what, path);
        if (k != NULL) {
            memset(k, 0, strlen(k));
        }
        esc_free(k);
        return ESC_INVALID;
    }
    esc_strlcpy(out, k, 41);
    memset(k, 0, 40);
    esc_free(k);
    return ESC_OK;
}

esc_rc
esc_bus_configure(const struct esc_cfg *cfg, struct esc_error *err)
{
    const struct esc_cfg_bus *b = &cfg->bus;
    /* "ack" names both acknowledgement endpoints (docs/delivery.md) */
    static const char *const names[6] = { "collect", "classify", "aggregate",
                                           "notify",  "ack",      "ack" };
    const char *eps[6] = { b->collect, b->classify, b->aggregate, b->notify, b->ack, b->ack_pub };
    char list[80];
    char *save = NULL;
    char *tok;
    size_t i;
    int all = strcmp(b->curve_endpoints, "all") == 0;
    int used[6] = { 0, 0, 0, 0, 0, 0 };

    memset(&s_curve, 0, sizeof(s_curve));
    s_n_curve_eps = 0;
    if (b->curve_endpoints[0] == '\0') {
        return ESC_OK;
    }
    if (err != NULL) {
        esc_strlcpy(err->source, cfg->path, sizeof(err->source));
    }
    esc_strlcpy(list, b->curve_endpoints, sizeof(list));
    for (tok = all ? NULL : strtok_r(list, ", ", &save); tok != NULL;
         tok = strtok_r(NULL, ", ", &save)) {
        int found = 0;

        for (i = 0; i < 6; i++) {
            if (strcmp(tok, names[i]) == 0) {
                used[i] = 1;
                found = 1;
            }
        }
        if (!found) {
            esc_error_set(err, 0, "bus.curve_endpoints: unknown endpoint '%s' (use collect, "
                                  "classify, aggregate, notify, ack or all)", tok);
            return ESC_INVALID;
        }
    }
    for (i = 0; i < 6; i++) {
        if ((all || used[i]) && eps[i][0] != '\0') {
            esc_strlcpy(s_curve_eps[s_n_curve_eps++], eps[i], sizeof(s_curve_eps[0]));
        }
    }
    if (b->curve_server_secret_file[0] != '\0'
        && s_load_key(b->curve_server_secret_file, "curve_server_secret_file", s_curve.server_secret,
                      err) != ESC_OK) {
        return ESC_INVALID;
    }
    if (b->curve_client_secret_file[0] != '\0') {
        if (s_load_key(b->curve_client_secret_file, "curve_client_secret_file",
                       s_curve.client_secret, err) != ESC_OK) {
            return ESC_INVALID;
        }
        if (esc_bus_curve_public(s_curve.client_secret, s_curve.client_public) < 0) {
            esc_error_set(err, 0, "bus.curve_client_secret_file: not a valid CURVE secret key");
            return ESC_INVALID;
        }
    }
    if (b->curve_server_public[0] != '\0') {
        uint8_t raw[32];

        if (strlen(b->curve_server_public) != 40
            || zmq_z85_decode(raw, b->curve_server_public) == NULL) {
            esc_error_set(err, 0, "bus.curve_server_public: not a 40-character Z85 key");
            return ESC_INVALID;
        }
        esc_strlcpy(s_curve.server_public, b->curve_server_public, sizeof(s_curve.server_public));
    }
    if (b->curve_authorized_file[0] != '\0') {
        FILE *f = fopen(b->curve_authorized_file, "r");
        char line[256];
        char **keys = NULL;
        size_t n = 0;
        int rc;

        if (f == NULL) {
            esc_error_set(err, 0, "bus.curve_authorized_file: cannot open '%s'",
                          b->curve_authorized_file);
            return ESC_INVALID;
        }
        while (fgets(line, sizeof(line), f) != NULL) {
            /* '#' is a Z85 character: only a line that starts with it is a comment */
            line[strcspn(line, " \t\r\n")] = '\0';
            if (line[0] != '\0' && line[0] != '#') {
                keys = esc_realloc(keys, (n + 1) * sizeof(*keys));
                keys[n++] = esc_strdup(line);
            }
        }
        fclose(f);
        rc = s_zap_set_keys((const char *const *)keys, n);
        for (i = 0; i < n; i++) {
            esc_free(keys[i]);
        }
        esc_free(keys);
        if (rc < 0) {
            esc_error_set(err, 0, "bus.curve_authorized_file: '%s' holds a key that is not "
                                  "40 Z85 characters", b->curve_authorized_file);
            return ESC_INVALID;
        }
    }
    return ESC_OK;
}

/* The CURVE settings esc_bus_new applies to endpoint, or NULL. */
static const struct esc_bus_curve *
s_curve_for(const char *endpoint)
{
    size_t i;

    for (i = 0; i < s_n_curve_eps; i++) {
        if (strcmp(s_curve_eps[i], endpoint) == 0) {
            return &s_curve;
        }
    }
    return NULL;
}

/* Makes self a CURVE server or client and starts watching its handshakes. */
static int
s_secure(esc_bus_t *self, const struct esc_bus_curve *c, bool bind)
{
    int one = 1;
    char mon_ep[64];
    int rc;

    if (bind) {
        if (c->server_secret[0] == '\0') {
            esc_log_error("curve: no server key to bind endpoint=%s "
                          "(set bus.curve_server_secret_file)", self->endpoint);
            return -1;
        }
        if (s_zap_start() < 0) {
            return -1;
        }
        rc = zmq_setsockopt(self->sock, ZMQ_CURVE_SERVER, &one, sizeof(one));
        rc |= zmq_setsockopt(self->sock, ZMQ_CURVE_SECRETKEY, c->server_secret, 40);
        rc |= zmq_setsockopt(self->sock, ZMQ_ZAP_DOMAIN, "escucha", 7);
    }
    else {
        if (c->server_public[0] == '\0' || c->client_secret[0] == '\0') {
            esc_log_error("curve: client keys missing endpoint=%s (set bus.curve_server_public "
                          "and bus.curve_client_secret_file)", self->endpoint);
            return -1;
        }
        rc = zmq_setsockopt(self->sock, ZMQ_CURVE_SERVERKEY, c->server_public, 40);
        rc |= zmq_setsockopt(self->sock, ZMQ_CURVE_PUBLICKEY, c->client_public, 40);
        rc |= zmq_setsockopt(self->sock, ZMQ_CURVE_SECRETKEY, c->client_secret, 40);
    }
    if (rc != 0) {
        esc_log_error("curve: socket options failed err=\"%s\"", zmq_strerror(zmq_errno()));
        return -1;
    }
    snprintf(mon_ep, sizeof(mon_ep), "inproc://esc-bus-mon-%u", s_mon_seq++);
    if (zmq_socket_monitor(self->sock, mon_ep, S_EVENTS) != 0) {
        return -1;
    }
    self->mon = zmq_socket(esc_bus_ctx(), ZMQ_PAIR);
    if (self->mon == NULL || zmq_connect(self->mon, mon_ep) != 0) {
        return -1;
    }
    self->bind = bind;
    return 0;
}

void
esc_bus_poll_events(esc_bus_t *self)
{
    uint8_t ev[6];
    char addr[256];
    uint16_t event;
    uint32_t value;
    int n;

    if (self->mon == NULL) {
        return;
    }
    for (;;) {
        n = zmq_recv(self->mon, ev, sizeof(ev), ZMQ_DONTWAIT);
        if (n < 0) {
            return;
        }
        n = zmq_recv(self->mon, addr, sizeof(addr) - 1, 0);
        addr[n > 0 ? (n < (int)sizeof(addr) ? n : (int)sizeof(addr) - 1) : 0] = '\0';
        memcpy(&event, ev, 2);
        memcpy(&value, ev + 2, 4);
        self->hs_failures++;
        if (self->bind) {
            continue; /* the authenticator already said why */
        }
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            esc_log_error("bus handshake refused: the server does not authorize our key "
                          "endpoint=%s status=%u client_key=%s",
                          self->endpoint, value, s_curve.client_public[0] ? s_curve.client_public
                                                                            : "-");
        }
        else {
            esc_log_error("bus handshake failed: the server's key does not match "
                          "bus.curve_server_public or the peer does not use CURVE endpoint=%s",
                          self->endpoint);
        }
    }
}

unsigned long
esc_bus_handshake_failures(esc_bus_t *self)
{
    esc_bus_poll_events(self);
    return self->hs_failures;
}

esc_bus_t *
esc_bus_new(enum esc_bus_kind kind, const char *endpoint, bool bind, int hwm)
{
    return esc_bus_new_curve(kind, endpoint, bind, hwm, s_curve_for(endpoint));
}

esc_bus_t *
esc_bus_new_curve(enum esc_bus_kind kind, const char *endpoint, bool bind, int hwm,
                  const struct esc_bus_curve *curve)
{
    static const int types[] = { [ESC_BUS_PUSH] = ZMQ_PUSH, [ESC_BUS_PULL] = ZMQ_PULL,
                                 [ESC_BUS_PUB] = ZMQ_PUB, [ESC_BUS_SUB] = ZMQ_SUB };
    static const char *const kinds[] = { [ESC_BUS_PUSH] = "push", [ESC_BUS_PULL] = "pull",
                                         [ESC_BUS_PUB] = "pub", [ESC_BUS_SUB] = "sub" };
    esc_bus_t *self = esc_calloc(1, sizeof(*self));
    size_t len = sizeof(self->endpoint);
    int linger = 0;
    int rc;

    self->sock = zmq_socket(esc_bus_ctx(), types[kind]);
    if (self->sock == NULL) {
        esc_log_error("socket failed err=\"%s\"", zmq_strerror(zmq_errno()));
        esc_free(self);
        return NULL;
    }
    zmq_setsockopt(self->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(self->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof(linger));
    esc_strlcpy(self->endpoint, endpoint, sizeof(self->endpoint));
    if (curve != NULL && s_secure(self, curve, bind) != 0) {
        if (self->mon != NULL) {
            zmq_close(self->mon);
        }
        zmq_close(self->sock);
        esc_free(self);
        return NULL;
    }
    if (bind) {
        rc = zmq_bind(self->sock, endpoint);
    }
    else {
        rc = zmq_connect(self->sock, endpoint);
    }
    if (rc != 0) {
        esc_log_error("%s failed endpoint=%s err=\"%s\"", bind ? "bind" : "connect", endpoint,
                      zmq_strerror(zmq_errno()));
        if (self->mon != NULL) {
            zmq_close(self->mon);
        }
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
    esc_log_debug("%s endpoint=%s kind=%s curve=%s", bind ? "bound" : "connected",
                  self->endpoint, kinds[kind],
                  curve != NULL ? "on" : "off");
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
    if (self->mon != NULL) {
        int zero = 0;

        zmq_socket_monitor(self->sock, NULL, 0);
        zmq_setsockopt(self->mon, ZMQ_LINGER, &zero, sizeof(zero));
        zmq_close(self->mon);
    }
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
            esc_bus_poll_events(self);
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
            esc_bus_poll_events(self);
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
    /* Every service loop asks for its sockets on each turn: a cheap place to notice a failed
     * CURVE handshake even when the socket never gets a frame. */
    if (self->mon != NULL) {
        int64_t now = esc_mono_ms();

        if (now >= self->next_events_ms) {
            self->next_events_ms = now + 200;
            esc_bus_poll_events(self);
        }
    }
    return self->sock;
}

const char *
esc_bus_endpoint(esc_bus_t *self)
{
    return self->endpoint;
}
