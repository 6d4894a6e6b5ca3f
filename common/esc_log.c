#define ESC_LOG_MODULE "log"
/* Logging: one line per event on stderr, `ts service[pid] LEVEL module: message key=value`.
 * A single write(2) per line so lines from several processes sharing a terminal or a journal
 * never interleave. Not for use from signal handlers (escucha has none: signals go through a
 * signalfd). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "escucha/esc_log.h"
#include "escucha/esc_util.h"

int esc_log_level_cur = ESC_LOG_INFO;
static char s_service[32] = "escucha";

static const char *const s_level_names[] = { "ERROR", "WARN", "INFO", "DEBUG", "TRACE" };
static const char *const s_level_args[] = { "error", "warn", "info", "debug", "trace" };

void
esc_log_init(const char *service, enum esc_log_level level)
{
    esc_strlcpy(s_service, service, sizeof(s_service));
    esc_log_level_cur = (int)level;
}

int
esc_log_level_parse(const char *s)
{
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(s_level_args); i++) {
        if (strcmp(s, s_level_args[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

void
esc_log_write(enum esc_log_level lvl, const char *module, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t off;
    int n;
    va_list ap;
    int saved = errno;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    off = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line + off, sizeof(line) - off, ".%03ldZ %s[%d] %s %s: ", (long)tv.tv_usec / 1000,
                 s_service, (int)getpid(), s_level_names[lvl], module);
    if (n > 0) {
        off += (size_t)n;
    }
    va_start(ap, fmt);
    n = vsnprintf(line + off, sizeof(line) - off - 1, fmt, ap);
    va_end(ap);
    if (n > 0) {
        off += (size_t)n;
    }
    if (off > sizeof(line) - 2) {
        off = sizeof(line) - 2;
    }
    line[off++] = '\n';
    if (write(STDERR_FILENO, line, off) < 0) {
        /* nowhere left to report it */
    }
    errno = saved;
}

const char *
esc_log_strerror(void)
{
    return strerror(errno);
}

int
esc_log_every_due(struct esc_log_every *st, long long ms, unsigned long *suppressed)
{
    long long now = (long long)esc_mono_ms();

    if (now < st->next_ms) {
        st->suppressed++;
        return 0;
    }
    *suppressed = st->suppressed;
    st->suppressed = 0;
    st->next_ms = now + ms;
    return 1;
}

char *
esc_log_quote(char *out, size_t outsz, const char *s, size_t max)
{
    size_t o = 0;
    size_t i;

    if (outsz < 4) {
        if (outsz > 0) {
            out[0] = '\0';
        }
        return out;
    }
    out[o++] = '"';
    for (i = 0; s != NULL && s[i] != '\0' && i < max; i++) {
        unsigned char c = (unsigned char)s[i];

        if (o + 5 >= outsz) {
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        }
        else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", c);
        }
        else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}
