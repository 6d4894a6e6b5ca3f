#ifndef ESC_LOG_H
#define ESC_LOG_H

/* One logfmt-ish line per event on stderr:
 *   2026-11-22T02:40:01.123Z collector[4242] INFO jsonl: skipped line=17 reason="..."
 * Each .c file defines ESC_LOG_MODULE before its includes. The macros test the level before
 * evaluating their arguments. Never log post bodies above debug, never log secrets. */

#ifndef ESC_LOG_MODULE
#define ESC_LOG_MODULE "main"
#endif

enum esc_log_level {
    ESC_LOG_ERROR = 0,
    ESC_LOG_WARN,
    ESC_LOG_INFO,
    ESC_LOG_DEBUG,
    ESC_LOG_TRACE,
};

extern int esc_log_level_cur;

/* Sets the service name printed on every line (e.g. "collector") and the level. */
void esc_log_init(const char *service, enum esc_log_level level);
/* Parses "error|warn|info|debug|trace"; returns -1 when unknown. */
int esc_log_level_parse(const char *s);
void esc_log_write(enum esc_log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define esc_log_at(lvl, ...)                                                                       \
    do {                                                                                           \
        if ((lvl) <= esc_log_level_cur) {                                                          \
            esc_log_write((lvl), ESC_LOG_MODULE, __VA_ARGS__);                                     \
        }                                                                                          \
    } while (0)
#define esc_log_error(...) esc_log_at(ESC_LOG_ERROR, __VA_ARGS__)
#define esc_log_warn(...) esc_log_at(ESC_LOG_WARN, __VA_ARGS__)
#define esc_log_info(...) esc_log_at(ESC_LOG_INFO, __VA_ARGS__)
#define esc_log_debug(...) esc_log_at(ESC_LOG_DEBUG, __VA_ARGS__)
#ifdef ESC_TRACE
#define esc_log_trace(...) esc_log_at(ESC_LOG_TRACE, __VA_ARGS__)
#else
#define esc_log_trace(...)                                                                         \
    do {                                                                                           \
    } while (0)
#endif
/* Logs "what: strerror(errno)" at error level with file:line. */
#define esc_log_errno(what)                                                                        \
    esc_log_write(ESC_LOG_ERROR, ESC_LOG_MODULE, "%s failed err=\"%s\" at=%s:%d", (what),          \
                  esc_log_strerror(), __FILE__, __LINE__)
const char *esc_log_strerror(void);

/* Rate-limited warning: at most one line per `ms` for the call site; the next line that is
 * printed carries suppressed=N for the lines swallowed in between. */
struct esc_log_every {
    long long next_ms;
    unsigned long suppressed;
};
#define esc_log_every(state, ms, ...)                                                              \
    do {                                                                                           \
        unsigned long _sup;                                                                        \
        if (esc_log_every_due((state), (ms), &_sup)) {                                             \
            esc_log_write(ESC_LOG_WARN, ESC_LOG_MODULE, __VA_ARGS__);                              \
            if (_sup > 0) {                                                                        \
                esc_log_write(ESC_LOG_WARN, ESC_LOG_MODULE, "previous warning suppressed=%lu",    \
                              _sup);                                                               \
            }                                                                                      \
        }                                                                                          \
    } while (0)
int esc_log_every_due(struct esc_log_every *st, long long ms, unsigned long *suppressed);

/* Writes at most `max` bytes of s into out (quoted, with " \ and control bytes escaped) so a
 * value from outside can be put in a log line safely. Returns out. */
char *esc_log_quote(char *out, size_t outsz, const char *s, size_t max);

#endif
