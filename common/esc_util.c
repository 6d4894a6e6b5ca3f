#define ESC_LOG_MODULE "util"
/* Small helpers every service needs: return-code names, error structs, bounded string copy,
 * strict integer parsing, clocks, RFC 3339 time, secrets from env/file, identifier checks. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <time.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_rc.h"
#include "escucha/esc_util.h"

const char *
esc_rc_str(esc_rc rc)
{
    switch (rc) {
    case ESC_OK:
        return "ok";
    case ESC_ERR:
        return "error";
    case ESC_RETRY:
        return "retry";
    case ESC_INVALID:
        return "invalid";
    case ESC_CLOSED:
        return "closed";
    }
    return "unknown";
}

void
esc_error_set(struct esc_error *err, int line, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL) {
        return;
    }
    err->line = line;
    err->column = 0;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
}

void
esc_error_print(FILE *f, const char *prog, const struct esc_error *err)
{
    if (err->line > 0) {
        fprintf(f, "%s: %s:%d: %s\n", prog, err->source, err->line, err->text);
    }
    else {
        fprintf(f, "%s: %s: %s\n", prog, err->source, err->text);
    }
}

void
esc_assert_fail(const char *expr, const char *file, int line)
{
    esc_log_write(ESC_LOG_ERROR, "assert", "assertion failed expr=\"%s\" at=%s:%d", expr, file,
                  line);
    abort();
}

size_t
esc_strlcpy(char *dst, const char *src, size_t dstsz)
{
    size_t len = strlen(src);

    if (dstsz > 0) {
        size_t n = len < dstsz - 1 ? len : dstsz - 1;

        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

int
esc_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    long long v;

    if (s == NULL || *s == '\0' || isspace((unsigned char)*s)) {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

int64_t
esc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
esc_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads exactly n digits at *p into *v and advances p. */
static int
s_digits(const char **p, int n, int *v)
{
    int i;

    *v = 0;
    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) {
            return -1;
        }
        *v = *v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return 0;
}

int
esc_time_parse_iso8601(const char *s, int64_t *ms_out)
{
    struct tm tm;
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
    time_t t;

    if (s == NULL || s_digits(&p, 4, &y) < 0 || *p++ != '-' || s_digits(&p, 2, &mo) < 0
        || *p++ != '-' || s_digits(&p, 2, &d) < 0) {
        return -1;
    }
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (s_digits(&p, 2, &h) < 0 || *p++ != ':' || s_digits(&p, 2, &mi) < 0) {
            return -1;
        }
        if (*p == ':') {
            p++;
            if (s_digits(&p, 2, &sec) < 0) {
                return -1;
            }
            if (*p == '.' || *p == ',') {
                int scale = 100;

                p++;
                if (!isdigit((unsigned char)*p)) {
                    return -1;
                }
                while (isdigit((unsigned char)*p)) {
                    ms += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                }
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        }
        else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1;
            int oh, om = 0;

            p++;
            if (s_digits(&p, 2, &oh) < 0) {
                return -1;
            }
            if (*p == ':') {
                p++;
            }
            if (isdigit((unsigned char)*p) && s_digits(&p, 2, &om) < 0) {
                return -1;
            }
            off = sign * (oh * 3600 + om * 60);
        }
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return -1;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    *ms_out = ((int64_t)t - off) * 1000 + ms;
    return 0;
}

char *
esc_time_fmt_iso8601(int64_t ms, char *out, size_t outsz)
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

char *
esc_secret_load(const char *env, const char *path, const char *what)
{
    const char *v;
    FILE *f;
    struct stat st;
    char buf[4096];
    size_t n;

    if (env != NULL && *env != '\0') {
        v = getenv(env);
        if (v != NULL && *v != '\0') {
            return esc_strdup(v);
        }
        if (path == NULL || *path == '\0') {
            esc_log_error("secret not set what=%s env=%s", what, env);
            return NULL;
        }
    }
    if (path == NULL || *path == '\0') {
        return NULL;
    }
    if (stat(path, &st) < 0) {
        esc_log_error("secret file unreadable what=%s path=%s err=\"%s\"", what, path,
                      strerror(errno));
        return NULL;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        esc_log_error("secret file must not be readable by group or others what=%s path=%s "
                      "mode=%03o (chmod 600 it)",
                      what, path, (unsigned)(st.st_mode & 0777));
        return NULL;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        esc_log_error("secret file unreadable what=%s path=%s err=\"%s\"", what, path,
                      strerror(errno));
        return NULL;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        esc_log_error("secret file is empty what=%s path=%s", what, path);
        return NULL;
    }
    return esc_strdup(buf);
}

bool
esc_ident_valid(const char *s)
{
    size_t i;

    if (s == NULL || s[0] == '\0' || s[0] == '-' || s[0] == '_') {
        return false;
    }
    for (i = 0; s[i] != '\0'; i++) {
        char c = s[i];

        if (i >= 64 || !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            return false;
        }
    }
    return true;
}

int
esc_parse_listen(const char *listen, struct sockaddr_storage *out, socklen_t *len)
{
    const char *colon = listen != NULL ? strrchr(listen, ':') : NULL;
    char host[64];
    size_t hlen;
    int64_t port;

    if (colon == NULL || esc_parse_i64(colon + 1, 0, 65535, &port) != 0) {
        return -1;
    }
    hlen = (size_t)(colon - listen);
    if (hlen >= sizeof(host)) {
        return -1;
    }
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    memset(out, 0, sizeof(*out));
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;

        host[hlen - 1] = '\0';
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1) {
            return -1;
        }
        *len = sizeof(*a6);
        return 0;
    }
    else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)out;

        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
        if (host[0] == '\0' || strcmp(host, "*") == 0) {
            a4->sin_addr.s_addr = htonl(INADDR_ANY);
            return 0;
        }
        if (strcmp(host, "localhost") == 0) {
            a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return 0;
        }
        return inet_pton(AF_INET, host, &a4->sin_addr) == 1 ? 0 : -1;
    }
}
