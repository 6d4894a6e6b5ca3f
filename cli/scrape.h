#ifndef CLI_SCRAPE_H
#define CLI_SCRAPE_H

/* HTTP GETs of the services' /metrics for `escucha up` (libcurl inside; no CURL object leaves
 * scrape.c). One reusable connection cache, short timeouts: a stuck service costs one timeout
 * per status refresh, never a hang. Single-threaded. */

#include <stddef.h>

#define CLI_SCRAPE_MAX (4 * 1024 * 1024) /* bodies are cut at this size */

typedef struct cli_scrape cli_scrape_t;

/* timeout_ms bounds each request (connect included). Caller owns the result. */
cli_scrape_t *cli_scrape_new(long timeout_ms);
void cli_scrape_destroy(cli_scrape_t **self_p);

/* GET http://host:port<path>. Returns the body when the answer is 200 (borrowed; valid until
 * the next call) with its length in *len, or NULL (connection refused, timeout, other status). */
const char *cli_scrape_get(cli_scrape_t *self, const char *host, int port, const char *path,
                           size_t *len);

#endif
