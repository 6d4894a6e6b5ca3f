#define ESC_LOG_MODULE "scrape"
/* Fetching /metrics for `escucha up` with one libcurl easy handle, reused so that keep-alive
 * connections to the services' metrics servers (libmicrohttpd) are reused too. Bodies land in
 * a growable buffer capped at CLI_SCRAPE_MAX. CURLOPT_NOSIGNAL: the supervisor owns signals.
 * Failures are not logged here: a service that is starting or stopping does not answer, and
 * the status shows it. Single-threaded. */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "escucha/esc_mem.h"

#include "scrape.h"

struct cli_scrape {
    CURL *curl;
    char *buf;   /* body of the last answer, NUL-terminated */
    size_t len;
    size_t cap;
    int too_big; /* the body passed CLI_SCRAPE_MAX */
};

static size_t
s_write(char *p, size_t size, size_t n, void *arg)
{
    cli_scrape_t *self = arg;
    size_t len = size * n;

    if (self->len + len + 1 > CLI_SCRAPE_MAX) {
        self->too_big = 1;
        return 0; /* aborts the transfer */
    }
    if (self->len + len + 1 > self->cap) {
        while (self->len + len + 1 > self->cap) {
            self->cap *= 2;
        }
        self->buf = esc_realloc(self->buf, self->cap);
    }
    memcpy(self->buf + self->len, p, len);
    self->len += len;
    self->buf[self->len] = '\0';
    return len;
}

cli_scrape_t *
cli_scrape_new(long timeout_ms)
{
    cli_scrape_t *self = esc_calloc(1, sizeof(*self));

    self->curl = curl_easy_init();
    if (self->curl == NULL) {
        esc_free(self);
        return NULL;
    }
    self->cap = 65536;
    self->buf = esc_malloc(self->cap);
    self->buf[0] = '\0';
    curl_easy_setopt(self->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(self->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(self->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(self->curl, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(self->curl, CURLOPT_WRITEDATA, self);
    curl_easy_setopt(self->curl, CURLOPT_PROXY, "");
    curl_easy_setopt(self->curl, CURLOPT_PROTOCOLS_STR, "http");
    return self;
}

void
cli_scrape_destroy(cli_scrape_t **self_p)
{
    cli_scrape_t *self;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    curl_easy_cleanup(self->curl);
    esc_free(self->buf);
    esc_free(self);
    *self_p = NULL;
}

const char *
cli_scrape_get(cli_scrape_t *self, const char *host, int port, const char *path, size_t *len)
{
    char url[256];
    long code = 0;

    snprintf(url, sizeof(url), "http://%s:%d%s", host, port, path);
    self->len = 0;
    self->buf[0] = '\0';
    self->too_big = 0;
    curl_easy_setopt(self->curl, CURLOPT_URL, url);
    if (curl_easy_perform(self->curl) != CURLE_OK) {
        return NULL;
    }
    curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200 || self->too_big) {
        return NULL;
    }
    *len = self->len;
    return self->buf;
}
