#define ESC_LOG_MODULE "fuzz"
/* libFuzzer target: the Reddit connector's listing parser (t3 children, created_utc,
 * the after cursor) and its token handling.
 * Runs through the real source plugin and the shared HTTP driver on an offline net
 * (fuzz_col.h): the input is one or more HTTP answers separated by FUZZ_COL_SEP.
 * FUZZ_DICT: json */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_col.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The app-only token always comes; the listings are the input. */
static const struct fuzz_col_route s_routes[] = {
    { "/api/v1/access_token",
      "{\"access_token\":\"tok\",\"token_type\":\"bearer\",\"expires_in\":86400}" },
    { NULL, NULL },
};

static struct fuzz_col s_fc = {
    .source_json = "{\"name\":\"r\",\"type\":\"reddit\",\"client_id\":\"cid\","
                   "\"client_secret_env\":\"ESC_FUZZ_SECRET\",\"subreddit\":\"rust\","
                   "\"query\":\"rust\",\"limit\":2,\"since\":\"2020-01-01\","
                   "\"user_agent\":\"linux:org.example.fuzz:v1 (by /u/fuzz)\","
                   "\"auth_url\":\"https://auth.reddit.example\","
                   "\"api_url\":\"https://oauth.reddit.example\",\"page_delay_ms\":0}",
    .routes = s_routes,
    .content_type = "application/json; charset=utf-8",
    .chunk = 0,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_col_run(&s_fc, data, size);
    return 0;
}
