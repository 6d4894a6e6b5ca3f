#define ESC_LOG_MODULE "fuzz"
/* libFuzzer target: the Mastodon connector's streaming API parser (server-sent
 * events: event/data lines, heartbeats, multi-line data, status JSON in update events).
 * Runs through the real source plugin and the shared HTTP driver on an offline net
 * (fuzz_col.h): the input is one or more HTTP answers separated by FUZZ_COL_SEP.
 * FUZZ_DICT: sse */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_col.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The REST catch-up finds nothing new, so the source opens the stream: the input. */
static const struct fuzz_col_route s_routes[] = {
    { "/api/v1/timelines/", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[]" },
    { NULL, NULL },
};

static struct fuzz_col s_fc = {
    .source_json = "{\"name\":\"ms\",\"type\":\"mastodon\","
                   "\"instance\":\"https://mastodon.example\","
                   "\"tag\":\"rustlang\",\"streaming\":true,\"token_env\":\"ESC_FUZZ_SECRET\","
                   "\"page_delay_ms\":0}",
    .routes = s_routes,
    .content_type = "text/event-stream",
    .chunk = 13,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_col_run(&s_fc, data, size);
    return 0;
}
