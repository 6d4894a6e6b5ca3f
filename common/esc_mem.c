#define ESC_LOG_MODULE "mem"
/* Allocation wrappers. The only file that calls malloc/free directly: every other module uses
 * these, which abort on exhaustion (a service that cannot allocate a few bytes is restarted by
 * its supervisor rather than limping on), so callers never check for NULL. */
#include <stdlib.h>
#include <string.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"

static void __attribute__((noreturn))
s_oom(size_t n)
{
    esc_log_error("out of memory bytes=%zu", n);
    abort();
}

void *
esc_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL) {
        s_oom(n);
    }
    return p;
}

void *
esc_calloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

    if (p == NULL) {
        s_oom(nmemb * size);
    }
    return p;
}

void *
esc_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (q == NULL) {
        s_oom(n);
    }
    return q;
}

char *
esc_strdup(const char *s)
{
    return esc_strndup(s, strlen(s));
}

char *
esc_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = esc_malloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void
esc_free(void *p)
{
    free(p);
}
