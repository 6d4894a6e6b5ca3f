#define ESC_LOG_MODULE "render"
/* The human side of an alert for the Slack, Teams and e-mail sinks: texts in the team's
 * language, the window start in the team's time zone, and escaping per format. Everything that
 * reaches a sink passes ntf_text_clip first (valid UTF-8, no control or bidi-override
 * characters, bounded length), so no sink has to cope with broken or oversized input; each
 * sink then escapes for its format. Kept free of I/O so the unit tests can feed it hostile
 * input directly. Not thread-safe (time zone conversion sets TZ, see week.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "escucha/esc_util.h"
#include "sinks/render.h"
#include "week.h"

#define S_ELLIPSIS "\xe2\x80\xa6"

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0 when it is not valid. */
static size_t
s_utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) {
            return 0;
        }
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)) {
            return 0; /* overlong, or a UTF-16 surrogate */
        }
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80) {
            return 0;
        }
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)) {
            return 0;
        }
        return 4;
    }
    return 0;
}

/* C1 controls (U+0080..U+009F) and the bidi embedding/override/isolate characters, which can
 * make a text read differently from what it is. */
static int
s_unwanted(const unsigned char *p, size_t len)
{
    if (len == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
        return 1;
    }
    if (len == 3 && p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) {
        return 1; /* U+202A..U+202E */
    }
    if (len == 3 && p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9) {
        return 1; /* U+2066..U+2069 */
    }
    return 0;
}

char *
ntf_text_clip(char *out, size_t outsz, const char *s, size_t max, int keep_nl)
{
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    size_t n = strlen((const char *)p);
    size_t limit = max;
    size_t i = 0;
    size_t o = 0;

    ESC_ASSERT(outsz >= 8);
    if (limit > outsz - 4) {
        limit = outsz - 4; /* room for the ellipsis and the NUL */
    }
    while (i < n) {
        size_t len = s_utf8_len(p + i, n - i);
        const char *put = (const char *)p + i;
        size_t put_len = len;

        if (len == 0) {
            put = "\xef\xbf\xbd"; /* U+FFFD for a byte that is not UTF-8 */
            put_len = 3;
            len = 1;
        }
        else if (len == 1 && (p[i] < 0x20 || p[i] == 0x7f)) {
            put = keep_nl && p[i] == '\n' ? "\n" : " ";
            put_len = 1;
        }
        else if (s_unwanted(p + i, len)) {
            put = " ";
            put_len = 1;
        }
        if (o + put_len > limit) {
            memcpy(out + o, S_ELLIPSIS, 3);
            o += 3;
            break;
        }
        memcpy(out + o, put, put_len);
        o += put_len;
        i += len;
    }
    out[o] = '\0';
    return out;
}

int
ntf_url_linkable(const char *url)
{
    const unsigned char *p;

    if (url == NULL
        || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)) {
        return 0;
    }
    if (strlen(url) > 500) {
        return 0;
    }
    for (p = (const unsigned char *)url; *p != '\0'; p++) {
        if (*p <= 0x20 || *p >= 0x7f || strchr("\"'<>\\|{}^`", *p) != NULL) {
            return 0;
        }
    }
    return 1;
}

void
ntf_esc_mrkdwn(struct ntf_sb *sb, const char *s)
{
    ntf_esc_mrkdwn_max(sb, s, (size_t)-1);
}

void
ntf_esc_mrkdwn_max(struct ntf_sb *sb, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t used = 0;

    while (*p != '\0') {
        const char *put = (const char *)p;
        size_t len = 1;
        size_t put_len;

        if (*p >= 0x80) {
            while ((p[len] & 0xc0) == 0x80) {
                len++; /* the rest of a UTF-8 sequence: never split one */
            }
        }
        put_len = len;
        if (*p == '&') {
            put = "&amp;";
            put_len = 5;
        }
        else if (*p == '<') {
            put = "&lt;";
            put_len = 4;
        }
        else if (*p == '>') {
            put = "&gt;";
            put_len = 4;
        }
        if (max != (size_t)-1 && used + put_len + 3 > max && p[len] != '\0') {
            ntf_sb_puts(sb, S_ELLIPSIS);
            return;
        }
        ntf_sb_add(sb, put, put_len);
        used += put_len;
        p += len;
    }
}

size_t
ntf_esc_mrkdwn_len(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++) {
        n += *s == '&' ? 5 : (*s == '<' || *s == '>') ? 4 : 1;
    }
    return n;
}

void
ntf_esc_html(struct ntf_sb *sb, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '&':
            ntf_sb_puts(sb, "&amp;");
            break;
        case '<':
            ntf_sb_puts(sb, "&lt;");
            break;
        case '>':
            ntf_sb_puts(sb, "&gt;");
            break;
        case '"':
            ntf_sb_puts(sb, "&quot;");
            break;
        case '\'':
            ntf_sb_puts(sb, "&#39;");
            break;
        default:
            ntf_sb_add(sb, s, 1);
            break;
        }
    }
}

/* "12.5" or "12,5" (Spanish decimal comma). */
static void
s_num(char *out, size_t outsz, double v, int es)
{
    char *dot;

    if (v != v || v > 1e15 || v < -1e15) {
        esc_strlcpy(out, "?", outsz);
        return;
    }
    snprintf(out, outsz, "%.1f", v);
    dot = strchr(out, '.');
    if (es && dot != NULL) {
        *dot = ',';
    }
}

void
ntf_alert_text_build(const struct esc_alert *a, const struct esc_cfg_team *team,
                     const char *deployment, struct ntf_alert_text *out)
{
    char expected[32];
    char score[32];
    char when[64];
    struct tm tm;
    int64_t minutes = (a->window_end - a->window_start) / 60000;
    size_t i;
    size_t len;

    memset(out, 0, sizeof(*out));
    out->es = strcmp(team->language, "es") == 0;
    out->ended = a->kind != NULL && strcmp(a->kind, "ended") == 0;
    ntf_text_clip(out->team_name, sizeof(out->team_name), team->name, 128, 0);
    ntf_text_clip(out->topic_name, sizeof(out->topic_name),
                  a->topic_name != NULL && a->topic_name[0] != '\0' ? a->topic_name : a->topic,
                  128, 0);
    ntf_text_clip(out->deployment, sizeof(out->deployment), deployment, 64, 0);
    if (out->ended) {
        snprintf(out->title, sizeof(out->title), "%s: %s (%s)",
                 out->es ? "Fin del pico" : "Back to normal", out->topic_name, out->team_name);
    }
    else {
        snprintf(out->title, sizeof(out->title), "%s: %s (%s)", out->es ? "Pico" : "Spike",
                 out->topic_name, out->team_name);
    }
    s_num(expected, sizeof(expected), a->expected, out->es);
    s_num(score, sizeof(score), a->score, out->es);
    if (minutes < 1) {
        minutes = 1;
    }
    snprintf(out->summary, sizeof(out->summary),
             out->es ? "%lld publicaciones en %lld min, se esperaban %s (x%s)"
                     : "%lld posts in %lld min, expected %s (x%s)",
             (long long)a->observed, (long long)minutes, expected, score);
    ntf_tz_local(team->timezone[0] != '\0' ? team->timezone : "UTC", a->window_start / 1000, &tm);
    if (strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm) == 0) {
        esc_strlcpy(when, "?", sizeof(when));
    }
    snprintf(out->since, sizeof(out->since), "%s %s", when,
             team->timezone[0] != '\0' ? team->timezone : "UTC");
    ntf_text_clip(out->query, sizeof(out->query), a->query, 500, 0);
    len = 0;
    for (i = 0; i < a->n_terms && i < NTF_TEXT_TERMS_MAX; i++) {
        char term[72];

        ntf_text_clip(term, sizeof(term), a->terms[i], 60, 0);
        if (term[0] == '\0' || len + strlen(term) + 3 >= sizeof(out->terms) - 4) {
            continue;
        }
        len += (size_t)snprintf(out->terms + len, sizeof(out->terms) - len, "%s%s",
                                len > 0 ? ", " : "", term);
    }
    for (i = 0; i < a->n_samples && out->n_samples < NTF_TEXT_SAMPLES_MAX; i++) {
        struct ntf_text_sample *s = &out->samples[out->n_samples];

        ntf_text_clip(s->text, sizeof(s->text), a->samples[i], NTF_TEXT_SAMPLE_BYTES, 1);
        if (s->text[0] == '\0') {
            continue;
        }
        ntf_text_clip(s->author, sizeof(s->author),
                      i < a->n_sample_authors ? a->sample_authors[i] : "", 128, 0);
        ntf_text_clip(s->url, sizeof(s->url), i < a->n_sample_urls ? a->sample_urls[i] : "",
                      510, 0);
        s->url_ok = ntf_url_linkable(s->url);
        out->n_samples++;
    }
    out->l_since = out->es ? "Desde" : "Since";
    out->l_observed = out->es ? "Observado" : "Observed";
    out->l_query = out->es ? "Consulta" : "Query";
    out->l_terms = out->es ? "T\xc3\xa9rminos principales" : "Top terms";
    out->l_samples = out->es ? "Publicaciones de ejemplo" : "Sample posts";
    out->l_open = out->es ? "abrir" : "open";
    out->l_footer = out->es ? "escucha \xc2\xb7 despliegue" : "escucha \xc2\xb7 deployment";
}
