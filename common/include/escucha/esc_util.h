#ifndef ESC_UTIL_H
#define ESC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#define ESC_ASSERT(expr)                                                                           \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            esc_assert_fail(#expr, __FILE__, __LINE__);                                            \
        }                                                                                          \
    } while (0)
void esc_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#define ESC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Copies src into dst (size dstsz), always NUL-terminated; returns strlen(src). */
size_t esc_strlcpy(char *dst, const char *src, size_t dstsz);
/* Parses a whole base-10 integer in [min,max]; returns 0 and sets *out, or -1. */
int esc_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Parses a listen address: "host:port" with an IPv4 address, "[IPv6]:port", "localhost:port"
 * (127.0.0.1), ":port", "*:port" or "0.0.0.0:port" (every IPv4 address), "[::]:port" (every
 * address, IPv6 and IPv4). Port 0..65535 (0 = any free port). Fills *out (its ss_family says
 * which) and *len. Returns 0, or -1 when listen is not one of these. */
int esc_parse_listen(const char *listen, struct sockaddr_storage *out, socklen_t *len);

/* Wall clock and monotonic clock in milliseconds. */
int64_t esc_now_ms(void);
int64_t esc_mono_ms(void);
/* Parses RFC 3339 / ISO 8601 ("2026-11-16T14:03:00Z", "...00.123+05:00", "2026-11-16 14:03:00")
 * into Unix milliseconds. Returns 0 or -1. */
int esc_time_parse_iso8601(const char *s, int64_t *ms_out);
/* Formats Unix ms as "2026-11-16T14:03:00Z" in UTC into out (>= 21 bytes). Returns out. */
char *esc_time_fmt_iso8601(int64_t ms, char *out, size_t outsz);

/* Reads a secret: the value of environment variable `env` when set and non-empty, else the
 * first line of file `path` (which must not be readable by group/other). Either may be NULL or
 * "". Returns a caller-owned string, or NULL when neither is configured or readable (logged,
 * without the value). */
char *esc_secret_load(const char *env, const char *path, const char *what);

/* True when s is a valid identifier for teams/topics: [a-z0-9][a-z0-9_-]{0,63}. */
bool esc_ident_valid(const char *s);

#endif
