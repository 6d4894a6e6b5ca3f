#ifndef API_AUTH_H
#define API_AUTH_H

/* Access checks of escucha-api (docs/api.md, "Access"): bearer tokens looked up by their
 * SHA-256 hash in constant time, role and team checks, and token-bucket rate limits per token
 * and, for requests with a wrong token, per client address. Thread-safe (one mutex). */

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct api_auth api_auth_t;

/* tokens is borrowed and must outlive the object. rate_per_s / burst: the bucket of each token;
 * bad tokens get a bucket of 10 per address refilled at 1 per second. Caller owns the result. */
api_auth_t *api_auth_new(const struct api_token *tokens, size_t n, double rate_per_s,
                         int64_t burst);
void api_auth_destroy(api_auth_t **self_p);

/* The token whose hash is SHA-256(text), or NULL. Every configured hash is compared (with
 * sodium_memcmp), so the time taken does not depend on which one matches. Borrowed. */
const struct api_token *api_auth_find(const api_auth_t *self, const char *text, size_t len);

/* Takes one request from t's bucket at monotonic time now_ms. Returns 0 when allowed, else the
 * whole seconds (>= 1) to wait before the next request is allowed. */
int api_auth_take(api_auth_t *self, const struct api_token *t, int64_t now_ms);

/* Records a request with a missing or wrong token from address addr (any bytes, e.g. the
 * text of the IP). Returns 0 when it may still be answered 401, else the seconds to wait (the
 * caller answers 429). */
int api_auth_take_bad(api_auth_t *self, const void *addr, size_t len, int64_t now_ms);

/* True when t may act on team with at least role need: admin tokens on every team, other tokens
 * on their own team only. */
int api_auth_allows(const struct api_token *t, const char *team, enum api_role need);

#endif
