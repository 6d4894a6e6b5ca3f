#define ESC_LOG_MODULE "fuzz"
/* libFuzzer target: the collector's text and time helpers that see platform data first
 * (collector/text.c, net.c): HTML to plain text with entities decoded (libxml2's HTML parser),
 * RFC 822 / RFC 3339 dates, "since" dates, decimal id comparison, UTF-8 truncation, the Link
 * header parser and URL redaction. Checks that valid UTF-8 stays valid through the HTML walk
 * and truncation, and that redaction never overflows.
 * FUZZ_DICT: html */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "net.h"
#include "text.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* True when s[0..len) is valid UTF-8 (shortest forms, no surrogates, at most U+10FFFF). */
static bool
s_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    size_t k;
    size_t n;
    uint32_t cp;

    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        if (s[i] >= 0xC2 && s[i] <= 0xDF) {
            n = 1;
            cp = s[i] & 0x1F;
        }
        else if (s[i] >= 0xE0 && s[i] <= 0xEF) {
            n = 2;
            cp = s[i] & 0x0F;
        }
        else if (s[i] >= 0xF0 && s[i] <= 0xF4) {
            n = 3;
            cp = s[i] & 0x07;
        }
        else {
            return false;
        }
        if (i + n >= len) {
            return false;
        }
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF
            || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    bool valid = s_valid(data, size);
    const char *p;
    char *z;
    char *s;
    char out[512];
    char small[16];
    char tok[64];
    int64_t ms;
    size_t half;

    if (!init) {
        init = 1;
        col_net_global_init();
        esc_log_level_cur = -1;
    }
    s = col_html_to_text((const char *)data, size);
    ESC_ASSERT(s != NULL);
    ESC_ASSERT(!valid || s_valid((const unsigned char *)s, strlen(s)));
    esc_free(s);

    z = esc_malloc(size + 1);
    memcpy(z, data, size);
    z[size] = '\0';
    (void)col_time_parse_any(z, &ms);
    (void)col_time_parse_rfc822(z, &ms);
    (void)col_since_parse(z, &ms);
    (void)col_link_rel(z, "prev", out, sizeof(out));
    (void)col_link_rel(z, "next", small, sizeof(small));
    col_url_redact(z, out, sizeof(out));
    ESC_ASSERT(strlen(out) < sizeof(out));
    col_url_redact(z, small, sizeof(small));
    ESC_ASSERT(strlen(small) < sizeof(small));
    p = z;
    while (col_split_next(&p, ", ", tok, sizeof(tok))) {
        ESC_ASSERT(strlen(tok) < sizeof(tok));
    }
    half = strlen(z) / 2;
    (void)col_id_cmp(z, z + half);
    s = esc_strdup(z);
    col_utf8_truncate(s, half);
    ESC_ASSERT(strlen(s) <= half);
    ESC_ASSERT(!valid || strlen(z) != size || s_valid((const unsigned char *)s, strlen(s)));
    esc_free(s);
    esc_free(z);
    return 0;
}
