#define ESC_LOG_MODULE "strbuf"
/* Capped growable text buffer (curl dynbuf's "toobig" idea): building a mail or a payload never
 * grows without bound, and an overflow is reported once, at the end, by ntf_sb_take. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "strbuf.h"

void
ntf_sb_init(struct ntf_sb *sb, size_t max)
{
    memset(sb, 0, sizeof(*sb));
    sb->max = max;
    sb->cap = 256;
    sb->buf = esc_malloc(sb->cap);
    sb->buf[0] = '\0';
}

void
ntf_sb_fini(struct ntf_sb *sb)
{
    ESC_FREE(sb->buf);
    sb->len = 0;
    sb->cap = 0;
}

void
ntf_sb_add(struct ntf_sb *sb, const char *s, size_t n)
{
    if (sb->overflow || n == 0) {
        return;
    }
    if (n > sb->max - sb->len) {
        sb->overflow = 1;
        return;
    }
    if (sb->len + n + 1 > sb->cap) {
        while (sb->len + n + 1 > sb->cap) {
            sb->cap *= 2;
        }
        sb->buf = esc_realloc(sb->buf, sb->cap);
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

void
ntf_sb_puts(struct ntf_sb *sb, const char *s)
{
    ntf_sb_add(sb, s, strlen(s));
}

void
ntf_sb_printf(struct ntf_sb *sb, const char *fmt, ...)
{
    char small[512];
    char *big;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        sb->overflow = 1;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        ntf_sb_add(sb, small, (size_t)n);
        return;
    }
    big = esc_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ntf_sb_add(sb, big, (size_t)n);
    esc_free(big);
}

char *
ntf_sb_take(struct ntf_sb *sb, size_t *len)
{
    char *out = NULL;

    if (sb->overflow) {
        esc_log_error("text too long max=%zu", sb->max);
    }
    else {
        out = sb->buf;
        sb->buf = NULL;
        if (len != NULL) {
            *len = sb->len;
        }
    }
    ntf_sb_fini(sb);
    return out;
}
