#define ESC_LOG_MODULE "fuzz"
/* libFuzzer target: the push ingest endpoint's body parser (one post, a JSON array of posts
 * or JSON Lines; every post checked with esc_post_from_json; the 202 or 400 answer encoded),
 * i.e. what POST /ingest does with a body once the token and size checks passed. The body is
 * NUL-terminated like the server's buffer.
 * FUZZ_DICT: json */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int src_ingest_parse(const char *body, size_t len); /* sources/src_ingest.c */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = esc_malloc(size + 1);

    esc_log_level_cur = -1;
    memcpy(body, data, size);
    body[size] = '\0';
    (void)src_ingest_parse(body, size);
    esc_free(body);
    return 0;
}
