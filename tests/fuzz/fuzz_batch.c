/* libFuzzer target: the batch frame reader (esc_batch_open / esc_batch_next) on arbitrary bytes,
 * with every message it yields handed to the post decoder as the classifier and the aggregator
 * do. Every yielded message must lie inside the input; the messages that came out, packed again
 * with the builder, must read back as the very same bytes (no crash, no leak, no UB). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define S_KEEP 64 /* messages checked in the round trip */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct esc_batch_iter it;
    struct esc_batch b;
    struct esc_error err;
    struct esc_post p;
    const void *kept[S_KEEP];
    size_t kept_len[S_KEEP];
    const void *msg;
    const void *frame;
    size_t n = 0;
    size_t i;
    size_t len;
    size_t flen;
    esc_rc rc;

    esc_log_level_cur = -1;
    if (esc_batch_open(&it, data, size, &err) != ESC_OK) {
        ESC_ASSERT(esc_batch_next(&it, &msg, &len, &err) == ESC_CLOSED);
        return 0;
    }
    for (;;) {
        rc = esc_batch_next(&it, &msg, &len, &err);
        if (rc == ESC_CLOSED) {
            break;
        }
        if (rc != ESC_OK) {
            ESC_ASSERT(rc == ESC_INVALID && it.batch);
            continue;
        }
        ESC_ASSERT(size == 0 || ((const uint8_t *)msg >= data
                                 && (const uint8_t *)msg + len <= data + size));
        (void)esc_post_decode(msg, len, &p, NULL, &err);
        esc_post_fini(&p);
        if (n < S_KEEP && len <= ESC_MSG_MAX) {
            kept[n] = msg;
            kept_len[n] = len;
            n++;
        }
    }
    if (!it.batch || n < 2) {
        return 0;
    }
    esc_batch_init(&b);
    for (i = 0; i < n; i++) {
        esc_batch_add(&b, kept[i], kept_len[i]);
    }
    frame = esc_batch_frame(&b, &flen);
    ESC_ASSERT(esc_batch_open(&it, frame, flen, &err) == ESC_OK && it.batch && it.count == n);
    for (i = 0; i < n; i++) {
        ESC_ASSERT(esc_batch_next(&it, &msg, &len, &err) == ESC_OK);
        ESC_ASSERT(len == kept_len[i] && (len == 0 || memcmp(msg, kept[i], len) == 0));
    }
    ESC_ASSERT(esc_batch_next(&it, &msg, &len, &err) == ESC_CLOSED);
    esc_batch_fini(&b);
    return 0;
}
