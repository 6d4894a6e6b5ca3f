#ifndef ESC_RC_H
#define ESC_RC_H

#include <stdio.h>

/* Return codes for boundaries where the caller branches (bus, KV, HTTP, plugins, decoders). */
typedef enum {
    ESC_OK = 0,
    ESC_ERR = -1,     /* failed; already logged where detected */
    ESC_RETRY = -2,   /* transient (backend down, timeout, 429/5xx): same input may succeed */
    ESC_INVALID = -3, /* input rejected: retrying is pointless; count + dead-letter */
    ESC_CLOSED = -4,  /* shutting down or peer gone */
} esc_rc;

/* Short lower-case name of rc ("ok", "retry", ...); never NULL. */
const char *esc_rc_str(esc_rc rc);

/* Error detail filled by parsers (config, messages, posts), in the style of json_error_t. */
struct esc_error {
    char text[256];   /* what is wrong, with the key path where there is one */
    char source[128]; /* file name or "<message>" */
    int line;         /* 1-based line, 0 when not applicable */
    int column;       /* 1-based column, 0 when not applicable */
};

/* Fills err (when non-NULL) with a printf-style text and a line (column 0: set it after when
 * known); source is kept as set. */
void esc_error_set(struct esc_error *err, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints "prog: source:line: text" (":line" only when known) and a newline to f. */
void esc_error_print(FILE *f, const char *prog, const struct esc_error *err);

#endif
