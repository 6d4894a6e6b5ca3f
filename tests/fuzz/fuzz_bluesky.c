#define ESC_LOG_MODULE "fuzz"
/* libFuzzer target: the Bluesky connector's searchPosts parser (posts, records,
 * facets with UTF-8 byte offsets, the cursor) and its session error handling.
 * Runs through the real source plugin and the shared HTTP driver on an offline net
 * (fuzz_col.h): the input is one or more HTTP answers separated by FUZZ_COL_SEP.
 * FUZZ_DICT: json */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_col.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Log-in always works; the search answers are the input. */
static const struct fuzz_col_route s_routes[] = {
    { "com.atproto.server.",
      "{\"accessJwt\":\"acc\",\"refreshJwt\":\"ref\",\"handle\":\"me.bsky.social\"}" },
    { NULL, NULL },
};

static struct fuzz_col s_fc = {
    .source_json = "{\"name\":\"b\",\"type\":\"bluesky\",\"service\":\"https://bsky.example\","
                   "\"identifier\":\"me.bsky.social\",\"password_env\":\"ESC_FUZZ_SECRET\","
                   "\"query\":\"rust\",\"limit\":2,\"since\":\"2020-01-01\","
                   "\"page_delay_ms\":0}",
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
