/* libFuzzer target: every bus message decoder on arbitrary bytes. Anything that decodes must
 * re-encode and decode again to the same message type (no crash, no leak, no UB), and the
 * services' in-place decoder (esc_post_decode_into, which checks the framing as it unpacks)
 * must accept and refuse exactly what esc_post_decode does, for the same reason. */
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
    struct esc_alert a;
    struct esc_post q;
    struct esc_post_buf pb;
    struct esc_error err;
    struct esc_error err2;
    enum esc_msg_type type = ESC_MSG_UNKNOWN;
    enum esc_msg_type type2 = ESC_MSG_UNKNOWN;
    size_t len = 0;
    char *buf;
    esc_rc rc;
    esc_rc rc2;

    esc_log_level_cur = -1;
    (void)esc_msg_peek_type(data, size);
    esc_post_buf_init(&pb);
    rc = esc_post_decode(data, size, &p, &type, &err);
    rc2 = esc_post_decode_into(data, size, &q, &type2, &pb, &err2);
    ESC_ASSERT(rc == rc2 && type == type2);
    ESC_ASSERT(rc == ESC_OK || strcmp(err.text, err2.text) == 0);
    esc_post_buf_fini(&pb);
    if (rc == ESC_OK) {
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
