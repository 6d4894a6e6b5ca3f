/* libFuzzer target: every bus message decoder on arbitrary bytes. Anything that decodes must
 * re-encode and decode again to the same message type (no crash, no leak, no UB). */
#include <stddef.h>
#include <stdint.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct esc_post p;
    struct esc_alert a;
    struct esc_error err;
    enum esc_msg_type type = ESC_MSG_UNKNOWN;
    size_t len = 0;
    char *buf;

    esc_log_level_cur = -1;
    (void)esc_msg_peek_type(data, size);
    if (esc_post_decode(data, size, &p, &type, &err) == ESC_OK) {
        buf = esc_post_encode(&p, type == ESC_MSG_CLASSIFIED, &len);
        esc_post_fini(&p);
        ESC_ASSERT(esc_post_decode(buf, len, &p, NULL, &err) == ESC_OK);
        esc_free(buf);
        buf = esc_post_to_json(&p);
        esc_free(buf);
    }
    esc_post_fini(&p);
    if (esc_alert_decode(data, size, &a, &err) == ESC_OK) {
        buf = esc_alert_encode(&a, &len);
        esc_alert_fini(&a);
        ESC_ASSERT(esc_alert_decode(buf, len, &a, &err) == ESC_OK);
        esc_free(buf);
        buf = esc_alert_to_json(&a);
        esc_free(buf);
    }
    esc_alert_fini(&a);
    return 0;
}
