/* libFuzzer target: the post JSON parser (collector's jsonl lines, push ingest bodies). A post
 * that parses must survive to_json -> from_json. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct esc_post p;
    struct esc_error err;
    char *json;

    esc_log_level_cur = -1;
    if (esc_post_from_json((const char *)data, size, &p, &err) == ESC_OK) {
        json = esc_post_to_json(&p);
        esc_post_fini(&p);
        ESC_ASSERT(esc_post_from_json(json, strlen(json), &p, &err) == ESC_OK);
        esc_free(json);
    }
    esc_post_fini(&p);
    return 0;
}
