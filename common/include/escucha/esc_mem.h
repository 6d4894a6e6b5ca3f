#ifndef ESC_MEM_H
#define ESC_MEM_H

#include <stddef.h>

/* Allocation wrappers: they never return NULL; on exhaustion they log and abort(). */
void *esc_malloc(size_t n);
void *esc_calloc(size_t nmemb, size_t size);
void *esc_realloc(void *p, size_t n);
char *esc_strdup(const char *s);
char *esc_strndup(const char *s, size_t n);
void esc_free(void *p);

/* Frees *p (NULL-safe) and sets it to NULL. */
#define ESC_FREE(p)                                                                                \
    do {                                                                                           \
        esc_free(p);                                                                               \
        (p) = NULL;                                                                                \
    } while (0)

#endif
