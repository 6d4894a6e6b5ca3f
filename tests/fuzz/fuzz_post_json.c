/* libFuzzer target: the post JSON parser (collector's jsonl lines, push ingest bodies). A post
 * that parses must survive to_json -> from_json. The streaming parser must refuse exactly the
 * input jansson refuses, with jansson's message (it replaced a jansson tree parser and keeps its
 * errors), and never disagree with it ("refused by the streaming parser"). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

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
    json_error_t jerr;
    json_t *root;
    char want[sizeof(err.text)];
    char *json;
    esc_rc rc;

    esc_log_level_cur = -1;
    rc = esc_post_from_json((const char *)data, size, &p, &err);
    if (size <= ESC_MSG_MAX) {
        root = json_loadb((const char *)data, size,
                          JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (root == NULL) {
            snprintf(want, sizeof(want), "invalid JSON: %s at column %d", jerr.text,
                     jerr.column);
            ESC_ASSERT(rc == ESC_INVALID && strcmp(err.text, want) == 0);
            ESC_ASSERT(err.line == jerr.line && err.column == jerr.column);
        }
        else {
            ESC_ASSERT(rc == ESC_OK || strncmp(err.text, "invalid JSON: ", 14) != 0);
        }
        json_decref(root);
    }
    if (rc == ESC_OK) {
        json = esc_post_to_json(&p);
        esc_post_fini(&p);
        ESC_ASSERT(esc_post_from_json(json, strlen(json), &p, &err) == ESC_OK);
        esc_free(json);
    }
    esc_post_fini(&p);
    return 0;
}
