#ifndef API_SERVER_H
#define API_SERVER_H

/* escucha-api's HTTP server (libmicrohttpd, one thread per connection): the JSON API under
 * /api/v1, feeds under /feed, the live stream (server-sent events), /healthz and the static
 * dashboard under /. Every route and its rules are in docs/api.md. */

#include "escucha/esc_cfg.h"
#include "escucha/esc_kv.h"

#include "config.h"
#include "hub.h"

typedef struct api_srv api_srv_t;

/* Starts listening on ac->listen. cfg, ac and hub are borrowed and must outlive the server;
 * kv_opts (strings copied by esc_kv_new) says where Redis is: the server owns its own Redis
 * connection, shared by the request threads under a mutex. Returns a caller-owned server, or
 * NULL (logged). Call after esc_sig_init so the connection threads block signals. */
api_srv_t *api_srv_new(const struct esc_cfg *cfg, const struct api_cfg *ac,
                       const struct esc_kv_opts *kv_opts, api_hub_t *hub);

/* The TCP port actually bound. */
int api_srv_port(const api_srv_t *self);

/* 1 when Redis answers a PING on the server's connection, else 0. Thread-safe. */
int api_srv_ping(api_srv_t *self);

/* Open live streams right now. */
int api_srv_streams(const api_srv_t *self);

/* Stops accepting, waits for the connection threads (close the hub first so live streams end)
 * and frees. NULL-safe, sets *self_p = NULL. */
void api_srv_destroy(api_srv_t **self_p);

#endif
