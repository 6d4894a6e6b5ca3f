#define ESC_LOG_MODULE "digest_render"
/* What a digest looks like: the subject, the plain-text part, the HTML part and the charts, in
 * the team's language. Words come from one table per language (s_langs), never from format
 * strings in data. The HTML is built for mail clients, not browsers: nested tables, inline
 * styles only, a 640-pixel column that shrinks to a phone's width (images at width:100%), no
 * scripts, no external resources (charts are attached and referenced by cid:).
 *
 * Untrusted text: post texts, author names, hashtags, terms and links come from the internet.
 * Every such value goes through s_clean (valid UTF-8, control characters - CR and LF included -
 * become spaces, cut at a character boundary) and, in HTML, s_esc (& < > " ' as entities), so it
 * can neither add markup nor break a line of the text part. A link becomes an <a href> only when
 * it is a plain http(s) URL (s_url_ok); otherwise it is shown as text. Pure functions of the
 * digest; not thread-safe only because local times use week.c's TZ switching. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "chart.h"
#include "digest.h"
#include "mail.h"
#include "strbuf.h"
#include "week.h"

#define S_BODY_MAX (2 * 1024 * 1024)
#define S_POST_CHARS 280    /* characters of a top post's text shown */
#define S_SAMPLE_CHARS 160  /* characters of a spike's sample post shown */
#define S_NAME_CHARS 60     /* characters of an author, hashtag or term shown */
#define S_URL_MAX 2000
#define S_WRAP 76           /* text part: wrap post texts at this column */
#define S_CHART_W 592
#define S_CHART_H 200

struct s_lang {
    const char *code;
    const char *title[3];      /* per period kind: day, week, month */
    const char *subject[3];    /* "semana" in "escucha · Team · semana 2026-W47" */
    const char *period_cap[3]; /* "Semana" in "Semana 2026-W47: ..." */
    const char *total[3];      /* posts of the period, all topics */
    const char *prev[3];       /* "semana anterior" */
    const char *this_p[3];     /* chart legend */
    const char *deployment;
    const char *posts;
    const char *posts_lc;
    const char *reach;
    const char *engagement;
    const char *likes;
    const char *reposts;
    const char *replies;
    const char *by_day;
    const char *by_hour;
    const char *languages;
    const char *platforms;
    const char *sentiment;
    const char *positive;
    const char *neutral;
    const char *negative;
    const char *top_posts;
    const char *top_authors;
    const char *hashtags;
    const char *terms;
    const char *spikes;
    const char *topics;
    const char *change;
    const char *no_spikes;
    const char *spike_legend;
    const char *in;
    const char *expected;
    const char *example;
    const char *is_new;
    const char *vs;            /* "vs. semana anterior" */
    const char *open_post;
    const char *other;
    const char *times_in;
    const char *generated;
    const char *no_posts;
    const char *pct;           /* percent sign with the language's spacing */
    char decimal;
    const char *thousands;     /* digit group separator in HTML */
    const char *days[7];       /* Monday first */
    const char *months[12];
    const char *months_long[12];
};

static const struct s_lang s_langs[] = {
    {
        .code = "es",
        .title = { "Resumen diario de escucha", "Resumen semanal de escucha",
                   "Resumen mensual de escucha" },
        .subject = { "d\xc3\xad" "a", "semana", "mes" },
        .period_cap = { "D\xc3\xad" "a", "Semana", "Mes" },
        .total = { "Publicaciones del d\xc3\xad" "a (todos los temas)",
                   "Publicaciones de la semana (todos los temas)",
                   "Publicaciones del mes (todos los temas)" },
        .prev = { "d\xc3\xad" "a anterior", "semana anterior", "mes anterior" },
        .this_p = { "Este d\xc3\xad" "a", "Esta semana", "Este mes" },
        .deployment = "Despliegue",
        .posts = "Publicaciones",
        .posts_lc = "publicaciones",
        .reach = "Alcance",
        .engagement = "Interacci\xc3\xb3n",
        .likes = "me gusta",
        .reposts = "compartidos",
        .replies = "respuestas",
        .by_day = "Por d\xc3\xad" "a",
        .by_hour = "Por hora",
        .languages = "Idiomas",
        .platforms = "Plataformas",
        .sentiment = "Sentimiento",
        .positive = "positivo",
        .neutral = "neutro",
        .negative = "negativo",
        .top_posts = "Publicaciones destacadas",
        .top_authors = "Autores destacados",
        .hashtags = "Hashtags",
        .terms = "T\xc3\xa9rminos frecuentes",
        .spikes = "Picos",
        .topics = "Tema",
        .change = "Cambio",
        .no_spikes = "Sin picos en este periodo.",
        .spike_legend = "Pico",
        .in = "en",
        .expected = "esperadas",
        .example = "Ejemplo",
        .is_new = "nuevo",
        .vs = "vs.",
        .open_post = "Ver publicaci\xc3\xb3n",
        .other = "otros",
        .times_in = "Horas en",
        .generated = "Generado por escucha",
        .no_posts = "Sin publicaciones en este periodo.",
        .pct = " %",
        .decimal = ',',
        .thousands = "\xe2\x80\xaf", /* narrow no-break space */
        .days = { "lun", "mar", "mi\xc3\xa9", "jue", "vie", "s\xc3\xa1" "b", "dom" },
        .months = { "ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov",
                    "dic" },
        .months_long = { "enero", "febrero", "marzo", "abril", "mayo", "junio", "julio",
                         "agosto", "septiembre", "octubre", "noviembre", "diciembre" },
    },
    {
        .code = "en",
        .title = { "escucha daily digest", "escucha weekly digest", "escucha monthly digest" },
        .subject = { "day", "week", "month" },
        .period_cap = { "Day", "Week", "Month" },
        .total = { "Posts this day (all topics)", "Posts this week (all topics)",
                   "Posts this month (all topics)" },
        .prev = { "previous day", "previous week", "previous month" },
        .this_p = { "This day", "This week", "This month" },
        .deployment = "Deployment",
        .posts = "Posts",
        .posts_lc = "posts",
        .reach = "Reach",
        .engagement = "Engagement",
        .likes = "likes",
        .reposts = "reposts",
        .replies = "replies",
        .by_day = "By day",
        .by_hour = "By hour",
        .languages = "Languages",
        .platforms = "Platforms",
        .sentiment = "Sentiment",
        .positive = "positive",
        .neutral = "neutral",
        .negative = "negative",
        .top_posts = "Top posts",
        .top_authors = "Top authors",
        .hashtags = "Hashtags",
        .terms = "Frequent terms",
        .spikes = "Spikes",
        .topics = "Topic",
        .change = "Change",
        .no_spikes = "No spikes in this period.",
        .spike_legend = "Spike",
        .in = "in",
        .expected = "expected",
        .example = "Example",
        .is_new = "new",
        .vs = "vs.",
        .open_post = "View post",
        .other = "other",
        .times_in = "Times in",
        .generated = "Generated by escucha",
        .no_posts = "No posts in this period.",
        .pct = "%",
        .decimal = '.',
        .thousands = ",",
        .days = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" },
        .months = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                    "Dec" },
        .months_long = { "January", "February", "March", "April", "May", "June", "July",
                         "August", "September", "October", "November", "December" },
    },
};

/* Display names of language codes: code, Spanish, English. */
static const char *const s_lang_names[][3] = {
    { "es", "espa\xc3\xb1ol", "Spanish" },
    { "en", "ingl\xc3\xa9s", "English" },
    { "pt", "portugu\xc3\xa9s", "Portuguese" },
    { "qu", "quechua", "Quechua" },
    { "ay", "aimara", "Aymara" },
    { "fr", "franc\xc3\xa9s", "French" },
    { "it", "italiano", "Italian" },
    { "de", "alem\xc3\xa1n", "German" },
    { "und", "sin determinar", "undetermined" },
};

/* Display names of platforms. */
static const char *const s_platform_names[][2] = {
    { "x", "X" },           { "twitter", "Twitter" },     { "mastodon", "Mastodon" },
    { "bluesky", "Bluesky" }, { "facebook", "Facebook" }, { "instagram", "Instagram" },
    { "tiktok", "TikTok" },   { "youtube", "YouTube" },   { "reddit", "Reddit" },
    { "telegram", "Telegram" }, { "rss", "RSS" },         { "web", "Web" },
};

static const struct s_lang *
s_lang_find(const char *code)
{
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(s_langs); i++) {
        if (strcmp(s_langs[i].code, code) == 0) {
            return &s_langs[i];
        }
    }
    return &s_langs[0];
}

/* ---- untrusted text ----------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid. *blank is set for
 * characters shown as a space: ASCII controls and white space, C1 controls, line and paragraph
 * separators, bidirectional overrides and isolates. */
static size_t
s_utf8_seq(const unsigned char *s, size_t n, int *blank)
{
    size_t len;
    size_t i;
    uint32_t cp;

    *blank = 0;
    if (s[0] < 0x80) {
        *blank = s[0] <= 0x20 || s[0] == 0x7f;
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1F;
    }
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        cp = s[0] & 0x0F;
    }
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07;
    }
    else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && cp < 0x10000)
        || cp > 0x10FFFF) {
        return 0;
    }
    *blank = (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029
             || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
    return len;
}

/* Appends s as clean UTF-8: invalid bytes become U+FFFD, control characters and runs of white
 * space one space, leading/trailing space dropped; at most max characters, then "…". */
static void
s_clean(struct ntf_sb *sb, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    size_t n = strlen((const char *)p);
    size_t chars = 0;
    size_t i = 0;
    int space = 0;

    while (i < n) {
        int blank = 0;
        size_t len = s_utf8_seq(p + i, n - i, &blank);
        const char *out = (const char *)p + i;
        size_t out_len = len;

        if (len == 0) {
            len = 1;
            out = "\xef\xbf\xbd";
            out_len = 3;
        }
        else if (blank) {
            space = 1;
            i += len;
            continue;
        }
        if (chars >= max) {
            ntf_sb_puts(sb, "\xe2\x80\xa6");
            return;
        }
        if (space && chars > 0) {
            ntf_sb_puts(sb, " ");
            chars++;
        }
        space = 0;
        ntf_sb_add(sb, out, out_len);
        chars++;
        i += len;
    }
}

/* s cleaned (see s_clean) into a new string. Caller owns. */
static char *
s_cleaned(const char *s, size_t max)
{
    struct ntf_sb sb;
    char *out;

    ntf_sb_init(&sb, 64 * 1024);
    s_clean(&sb, s, max);
    out = ntf_sb_take(&sb, NULL);
    ESC_ASSERT(out != NULL); /* max characters of at most 4 bytes stay far below the cap */
    return out;
}

/* Appends s (already clean) escaped for HTML text and attribute values. */
static void
s_esc(struct ntf_sb *sb, const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        switch (s[i]) {
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
            ntf_sb_add(sb, &s[i], 1);
        }
    }
}

/* Appends untrusted s cleaned (max characters) and escaped for HTML. */
static void
s_html(struct ntf_sb *sb, const char *s, size_t max)
{
    char *c = s_cleaned(s, max);

    s_esc(sb, c);
    esc_free(c);
}

/* True when url can become a link: http:// or https://, printable ASCII, no space, quote, angle
 * bracket, backslash or backtick, a host after the scheme, and not too long. */
static int
s_url_ok(const char *url)
{
    size_t skip;
    size_t i;

    if (url == NULL) {
        return 0;
    }
    if (strncasecmp(url, "https://", 8) == 0) {
        skip = 8;
    }
    else if (strncasecmp(url, "http://", 7) == 0) {
        skip = 7;
    }
    else {
        return 0;
    }
    if (url[skip] == '\0' || url[skip] == '/' || strlen(url) > S_URL_MAX) {
        return 0;
    }
    for (i = 0; url[i] != '\0'; i++) {
        unsigned char c = (unsigned char)url[i];

        if (c <= 0x20 || c >= 0x7f || strchr("\"'<>\\`", c) != NULL) {
            return 0;
        }
    }
    return 1;
}

/* ---- numbers and dates -------------------------------------------------------------------- */

static void
s_put_dbl(struct ntf_sb *sb, double v, const struct s_lang *l)
{
    char buf[64];
    char *dot;

    snprintf(buf, sizeof(buf), "%.1f", v);
    dot = strchr(buf, '.');
    if (dot != NULL) {
        *dot = l->decimal;
    }
    ntf_sb_puts(sb, buf);
}

/* An integer with digit groups (HTML). */
static void
s_put_grouped(struct ntf_sb *sb, int64_t v, const struct s_lang *l)
{
    char buf[32];
    size_t n;
    size_t i;
    size_t lead;

    snprintf(buf, sizeof(buf), "%llu",
             (unsigned long long)(v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v));
    n = strlen(buf);
    if (v < 0) {
        ntf_sb_puts(sb, "-");
    }
    lead = n % 3 == 0 ? 3 : n % 3;
    ntf_sb_add(sb, buf, lead);
    for (i = lead; i < n; i += 3) {
        ntf_sb_puts(sb, l->thousands);
        ntf_sb_add(sb, buf + i, 3);
    }
}

static double
s_pct_change(int64_t cur, int64_t prev)
{
    return 100.0 * (double)(cur - prev) / (double)prev;
}

static void
s_put_change(struct ntf_sb *sb, int64_t cur, int64_t prev, const struct s_lang *l)
{
    double pct;

    if (prev == 0) {
        if (cur == 0) {
            ntf_sb_puts(sb, "+0");
            ntf_sb_puts(sb, l->pct);
        }
        else {
            ntf_sb_puts(sb, l->is_new);
        }
        return;
    }
    pct = s_pct_change(cur, prev);
    ntf_sb_puts(sb, pct >= 0 ? "+" : "");
    s_put_dbl(sb, pct, l);
    ntf_sb_puts(sb, l->pct);
}

static void
s_put_pct_of(struct ntf_sb *sb, double part, double whole, const struct s_lang *l)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%.0f", whole > 0 ? 100.0 * part / whole : 0.0);
    ntf_sb_puts(sb, buf);
    ntf_sb_puts(sb, l->pct);
}

/* "lun 16 nov 2026" for a day number. */
static void
s_put_date(struct ntf_sb *sb, int64_t days, const struct s_lang *l, int with_year)
{
    int y;
    int m;
    int d;

    ntf_civil_from_days(days, &y, &m, &d);
    ntf_sb_printf(sb, "%s %d %s", l->days[ntf_weekday(days)], d, l->months[m - 1]);
    if (with_year) {
        ntf_sb_printf(sb, " %d", y);
    }
}

/* "mié 18 nov 14:30" for Unix ms in tz. */
static void
s_put_local(struct ntf_sb *sb, int64_t ms, const char *tz, const struct s_lang *l)
{
    struct tm lt;
    int64_t days;

    ntf_tz_local(tz, ms / 1000, &lt);
    days = ntf_days_from_civil(lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday);
    ntf_sb_printf(sb, "%s %d %s %02d:%02d", l->days[ntf_weekday(days)], lt.tm_mday,
                  l->months[lt.tm_mon], lt.tm_hour, lt.tm_min);
}

/* The period in words: "Semana 2026-W47: lun 16 nov 2026 – dom 22 nov 2026". */
static void
s_put_period(struct ntf_sb *sb, const struct ntf_period *p, const struct s_lang *l)
{
    int y;
    int m;
    int d;

    ntf_sb_printf(sb, "%s %s: ", l->period_cap[p->kind], p->label);
    switch (p->kind) {
    case NTF_PERIOD_DAY:
        s_put_date(sb, p->first_day, l, 1);
        break;
    case NTF_PERIOD_WEEK:
        s_put_date(sb, p->first_day, l, 1);
        ntf_sb_puts(sb, " \xe2\x80\x93 ");
        s_put_date(sb, p->first_day + 6, l, 1);
        break;
    case NTF_PERIOD_MONTH:
        ntf_civil_from_days(p->first_day, &y, &m, &d);
        ntf_sb_printf(sb, "%s %d", l->months_long[m - 1], y);
        break;
    }
}

/* Label of chart/list slot i: "lun 16" (week), "16" (month), "09" (hour of a day). */
static void
s_slot_label(char *out, size_t outsz, const struct ntf_period *p, int i, const struct s_lang *l)
{
    int y;
    int m;
    int d;

    switch (p->kind) {
    case NTF_PERIOD_DAY:
        snprintf(out, outsz, "%02d", i);
        return;
    case NTF_PERIOD_WEEK:
        ntf_civil_from_days(p->first_day + i, &y, &m, &d);
        snprintf(out, outsz, "%s %d", l->days[i % 7], d);
        return;
    case NTF_PERIOD_MONTH:
        snprintf(out, outsz, "%d", i + 1);
        return;
    }
}

static const char *
s_lang_name(const char *code, const struct s_lang *l)
{
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(s_lang_names); i++) {
        if (strcmp(s_lang_names[i][0], code) == 0) {
            return s_lang_names[i][strcmp(l->code, "es") == 0 ? 1 : 2];
        }
    }
    return code;
}

static const char *
s_platform_name(const char *p)
{
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(s_platform_names); i++) {
        if (strcmp(s_platform_names[i][0], p) == 0) {
            return s_platform_names[i][1];
        }
    }
    return p;
}

static int64_t
s_total(const struct ntf_digest *d, int prev)
{
    int64_t t = 0;
    size_t i;

    for (i = 0; i < d->n_topics; i++) {
        t += prev ? d->topics[i].posts_prev : d->topics[i].posts;
    }
    return t;
}

static int64_t
s_sum(const struct ntf_digest *d, size_t off)
{
    int64_t t = 0;
    size_t i;

    for (i = 0; i < d->n_topics; i++) {
        t += *(const int64_t *)((const char *)&d->topics[i] + off);
    }
    return t;
}

static size_t
s_topic_spikes(const struct ntf_digest *d, const struct ntf_digest_topic *t)
{
    size_t n = 0;
    size_t i;

    for (i = 0; i < d->n_alerts; i++) {
        if (d->alerts[i].topic_id != NULL && strcmp(d->alerts[i].topic_id, t->topic->id) == 0) {
            n++;
        }
    }
    return n;
}

/* ---- subject and text part ---------------------------------------------------------------- */

char *
ntf_digest_subject(const struct ntf_digest *d)
{
    const struct s_lang *l = s_lang_find(d->team->language);
    struct ntf_sb sb;
    char *out;

    ntf_sb_init(&sb, 4096);
    ntf_sb_printf(&sb, "escucha \xc2\xb7 %s \xc2\xb7 %s %s", d->team->name,
                  l->subject[d->period.kind], d->period.label);
    out = ntf_sb_take(&sb, NULL);
    ESC_ASSERT(out != NULL); /* a team name is at most 127 bytes */
    return out;
}

/* Appends clean text wrapped at S_WRAP columns (characters), each line indented. */
static void
s_put_wrapped(struct ntf_sb *sb, const char *text, const char *indent)
{
    const char *p = text;

    while (*p != '\0') {
        const char *line = p;
        const char *brk = NULL;
        size_t chars = 0;

        while (*p != '\0' && chars < S_WRAP) {
            if (*p == ' ') {
                brk = p;
            }
            p++;
            while (((unsigned char)*p & 0xC0) == 0x80) {
                p++;
            }
            chars++;
        }
        if (*p != '\0' && brk != NULL && *p != ' ') {
            p = brk;
        }
        ntf_sb_puts(sb, indent);
        ntf_sb_add(sb, line, (size_t)(p - line));
        ntf_sb_puts(sb, "\n");
        while (*p == ' ') {
            p++;
        }
    }
}

static void
s_text_counts(struct ntf_sb *sb, const char *label, const struct ntf_digest_count *c, size_t n,
              int show_n, int hash)
{
    size_t i;

    if (n == 0) {
        return;
    }
    ntf_sb_printf(sb, "  %s: ", label);
    for (i = 0; i < n; i++) {
        ntf_sb_puts(sb, i > 0 ? ", " : "");
        ntf_sb_puts(sb, hash ? "#" : "");
        s_clean(sb, c[i].name, S_NAME_CHARS);
        if (show_n) {
            ntf_sb_printf(sb, " (%.0f)", c[i].n);
        }
    }
    ntf_sb_puts(sb, "\n");
}

static void
s_text_split(struct ntf_sb *sb, const char *label, const struct ntf_digest_count *c, size_t n,
             int64_t whole, int langs, const struct s_lang *l)
{
    double shown = 0;
    size_t i;

    if (n == 0) {
        return;
    }
    ntf_sb_printf(sb, "  %s: ", label);
    for (i = 0; i < n && i < NTF_DIGEST_SPLIT_MAX; i++) {
        ntf_sb_puts(sb, i > 0 ? ", " : "");
        s_clean(sb, langs ? s_lang_name(c[i].name, l) : s_platform_name(c[i].name),
                S_NAME_CHARS);
        ntf_sb_puts(sb, " ");
        s_put_pct_of(sb, c[i].n, (double)whole, l);
        shown += c[i].n;
    }
    if (i < n) {
        ntf_sb_printf(sb, ", %s ", l->other);
        s_put_pct_of(sb, (double)whole - shown, (double)whole, l);
    }
    ntf_sb_puts(sb, "\n");
}

static void
s_text_spike(struct ntf_sb *sb, const struct ntf_digest_alert *a, const char *tz,
             const struct s_lang *l)
{
    size_t i;

    ntf_sb_puts(sb, "    ");
    s_put_local(sb, a->window_start, tz, l);
    ntf_sb_printf(sb, ": %lld %s %s %lld min", (long long)a->observed, l->posts_lc, l->in,
                  (long long)((a->window_end - a->window_start) / 60000));
    if (isfinite(a->expected)) {
        ntf_sb_printf(sb, ", %s ", l->expected);
        s_put_dbl(sb, a->expected, l);
    }
    if (isfinite(a->score)) {
        ntf_sb_puts(sb, " (x");
        s_put_dbl(sb, a->score, l);
        ntf_sb_puts(sb, ")");
    }
    ntf_sb_puts(sb, "\n");
    if (a->n_terms > 0) {
        ntf_sb_printf(sb, "      %s: ", l->terms);
        for (i = 0; i < a->n_terms; i++) {
            ntf_sb_puts(sb, i > 0 ? ", " : "");
            s_clean(sb, a->terms[i], S_NAME_CHARS);
        }
        ntf_sb_puts(sb, "\n");
    }
    if (a->sample != NULL) {
        ntf_sb_printf(sb, "      %s: \"", l->example);
        s_clean(sb, a->sample, S_SAMPLE_CHARS);
        ntf_sb_puts(sb, "\"");
        if (a->sample_author != NULL) {
            ntf_sb_puts(sb, " (");
            s_clean(sb, a->sample_author, S_NAME_CHARS);
            ntf_sb_puts(sb, ")");
        }
        ntf_sb_puts(sb, "\n");
    }
}

static void
s_text_post(struct ntf_sb *sb, size_t rank, const struct ntf_digest_post *p, const char *tz,
            const struct s_lang *l)
{
    char *text = s_cleaned(p->text, S_POST_CHARS);

    ntf_sb_printf(sb, "    %zu. ", rank);
    s_clean(sb, p->author != NULL && p->author[0] != '\0' ? p->author : "?", S_NAME_CHARS);
    if (p->platform != NULL && p->platform[0] != '\0') {
        ntf_sb_puts(sb, " \xc2\xb7 ");
        s_clean(sb, s_platform_name(p->platform), S_NAME_CHARS);
    }
    if (p->created_ms > 0) {
        ntf_sb_puts(sb, " \xc2\xb7 ");
        s_put_local(sb, p->created_ms, tz, l);
    }
    ntf_sb_printf(sb, " \xc2\xb7 %lld %s, %lld %s, %lld %s\n", (long long)p->likes, l->likes,
                  (long long)p->reposts, l->reposts, (long long)p->replies, l->replies);
    s_put_wrapped(sb, text, "       ");
    if (s_url_ok(p->url)) {
        ntf_sb_printf(sb, "       %s\n", p->url);
    }
    esc_free(text);
}

static void
s_text_topic(struct ntf_sb *sb, const struct ntf_digest *d, const struct ntf_digest_topic *t,
             const struct s_lang *l)
{
    const struct ntf_period *p = &d->period;
    int64_t whole = t->sent_pos + t->sent_neu + t->sent_neg;
    char label[32];
    size_t n_spikes = s_topic_spikes(d, t);
    size_t i;
    int k;

    s_clean(sb, t->topic->name, 128);
    ntf_sb_puts(sb, "\n");
    ntf_sb_printf(sb, "  %s: %lld (%s %lld, ", l->posts, (long long)t->posts, l->prev[p->kind],
                  (long long)t->posts_prev);
    s_put_change(sb, t->posts, t->posts_prev, l);
    ntf_sb_puts(sb, ")\n");
    ntf_sb_printf(sb, "  %s: %lld\n", l->reach, (long long)t->reach);
    ntf_sb_printf(sb, "  %s: %lld", l->engagement, (long long)t->engagement);
    if (t->engagement > 0) {
        ntf_sb_printf(sb, " (%lld %s, %lld %s, %lld %s)", (long long)t->likes, l->likes,
                      (long long)t->reposts, l->reposts, (long long)t->replies, l->replies);
    }
    ntf_sb_puts(sb, "\n");
    ntf_sb_printf(sb, "  %s:", p->kind == NTF_PERIOD_DAY ? l->by_hour : l->by_day);
    for (k = 0; k < t->n_slots; k++) {
        s_slot_label(label, sizeof(label), p, k, l);
        ntf_sb_printf(sb, "%s %s %lld", k == 0 ? "" : ",", label, (long long)t->slots[k]);
        if (k % 12 == 11 && k + 1 < t->n_slots) {
            ntf_sb_puts(sb, "\n   ");
        }
    }
    ntf_sb_puts(sb, "\n");
    if (d->have.splits && t->posts > 0) {
        s_text_split(sb, l->languages, t->langs, t->n_langs, t->posts, 1, l);
        s_text_split(sb, l->platforms, t->platforms, t->n_platforms, t->posts, 0, l);
        if (whole > 0) {
            ntf_sb_printf(sb, "  %s: %s ", l->sentiment, l->positive);
            s_put_pct_of(sb, (double)t->sent_pos, (double)whole, l);
            ntf_sb_printf(sb, ", %s ", l->neutral);
            s_put_pct_of(sb, (double)t->sent_neu, (double)whole, l);
            ntf_sb_printf(sb, ", %s ", l->negative);
            s_put_pct_of(sb, (double)t->sent_neg, (double)whole, l);
            ntf_sb_puts(sb, "\n");
        }
    }
    if (n_spikes > 0) {
        ntf_sb_printf(sb, "  %s (%zu):\n", l->spikes, n_spikes);
        for (i = 0; i < d->n_alerts; i++) {
            if (d->alerts[i].topic_id != NULL
                && strcmp(d->alerts[i].topic_id, t->topic->id) == 0) {
                s_text_spike(sb, &d->alerts[i], d->team->timezone, l);
            }
        }
    }
    if (t->n_top_posts > 0) {
        ntf_sb_printf(sb, "  %s:\n", l->top_posts);
        for (i = 0; i < t->n_top_posts; i++) {
            s_text_post(sb, i + 1, &t->top_posts[i], d->team->timezone, l);
        }
    }
    s_text_counts(sb, l->top_authors, t->authors, t->n_authors, 0, 0);
    s_text_counts(sb, l->hashtags, t->hashtags, t->n_hashtags, 1, 1);
    s_text_counts(sb, l->terms, t->terms, t->n_terms, 1, 0);
    ntf_sb_puts(sb, "\n");
}

char *
ntf_digest_body(const struct ntf_digest *d, const char *deployment)
{
    const struct s_lang *l = s_lang_find(d->team->language);
    const struct ntf_period *p = &d->period;
    int64_t total = s_total(d, 0);
    int64_t total_prev = s_total(d, 1);
    struct ntf_sb sb;
    char *out;
    size_t i;

    ntf_sb_init(&sb, S_BODY_MAX);
    ntf_sb_printf(&sb, "%s: ", l->title[p->kind]);
    s_clean(&sb, d->team->name, 128);
    ntf_sb_puts(&sb, "\n");
    s_put_period(&sb, p, l);
    ntf_sb_printf(&sb, " (%s)\n", d->team->timezone);
    if (deployment != NULL && deployment[0] != '\0') {
        ntf_sb_printf(&sb, "%s: ", l->deployment);
        s_clean(&sb, deployment, 64);
        ntf_sb_puts(&sb, "\n");
    }
    ntf_sb_printf(&sb, "\n%s: %lld (%s %lld, ", l->total[p->kind], (long long)total,
                  l->prev[p->kind], (long long)total_prev);
    s_put_change(&sb, total, total_prev, l);
    ntf_sb_puts(&sb, ")\n");
    ntf_sb_printf(&sb, "%s: %lld \xc2\xb7 %s: %lld \xc2\xb7 %s: %zu\n\n", l->reach,
                  (long long)s_sum(d, offsetof(struct ntf_digest_topic, reach)), l->engagement,
                  (long long)s_sum(d, offsetof(struct ntf_digest_topic, engagement)), l->spikes,
                  d->n_alerts);
    for (i = 0; i < d->n_topics; i++) {
        s_text_topic(&sb, d, &d->topics[i], l);
    }
    ntf_sb_printf(&sb, "-- \nescucha \xc2\xb7 %s %s\n", l->times_in, d->team->timezone);
    out = ntf_sb_take(&sb, NULL);
    if (out == NULL) {
        out = esc_strdup("digest too large\n");
    }
    return out;
}

/* ---- charts ------------------------------------------------------------------------------- */

void
ntf_digest_charts(const struct ntf_digest *d, const char *cid_hint,
                  struct ntf_digest_chart *charts)
{
    const struct s_lang *l = s_lang_find(d->team->language);
    char labels[NTF_CHART_SLOTS_MAX][24];
    const char *lp[NTF_CHART_SLOTS_MAX];
    char prev_cap[64];
    struct ntf_chart c;
    size_t i;
    int k;

    esc_strlcpy(prev_cap, l->prev[d->period.kind], sizeof(prev_cap));
    prev_cap[0] = (char)(prev_cap[0] >= 'a' && prev_cap[0] <= 'z' ? prev_cap[0] - 32
                                                                   : prev_cap[0]);
    for (i = 0; i < d->n_topics; i++) {
        const struct ntf_digest_topic *t = &d->topics[i];

        memset(&charts[i], 0, sizeof(charts[i]));
        snprintf(charts[i].cid, sizeof(charts[i].cid), "chart-%zu.%.40s@escucha", i, cid_hint);
        snprintf(charts[i].filename, sizeof(charts[i].filename), "%.50s.png", t->topic->id);
        if (t->n_slots <= 0) {
            continue;
        }
        for (k = 0; k < t->n_slots; k++) {
            s_slot_label(labels[k], sizeof(labels[k]), &d->period, k, l);
            lp[k] = labels[k];
        }
        memset(&c, 0, sizeof(c));
        c.values = t->slots;
        c.n = (size_t)t->n_slots;
        c.prev = t->slots_prev;
        c.n_prev = (size_t)t->n_slots_prev;
        c.labels = lp;
        c.spike = t->slot_spike;
        c.legend_cur = l->this_p[d->period.kind];
        c.legend_prev = prev_cap;
        c.legend_spike = l->spike_legend;
        c.width = S_CHART_W;
        c.height = S_CHART_H;
        c.scale = 2;
        charts[i].png = ntf_chart_png(&c, &charts[i].len);
    }
}

/* ---- HTML part ---------------------------------------------------------------------------- */

#define S_FONT "font-family:Arial,Helvetica,sans-serif;"
#define S_MUTED "color:#6b7280;"
#define S_H3 "font-size:13px;font-weight:bold;color:#374151;margin:18px 0 6px 0;" \
             "text-transform:uppercase;letter-spacing:0.5px;"

/* A summary card: label, big value, optional note. */
static void
s_html_card(struct ntf_sb *sb, const char *label, const char *value, const char *note)
{
    ntf_sb_puts(sb, "<td width=\"50%\" valign=\"top\" style=\"padding:6px;\">"
                    "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" "
                    "cellspacing=\"0\" border=\"0\" style=\"background:#f8fafc;"
                    "border:1px solid #e5e7eb;border-radius:6px;\"><tr><td style=\"padding:12px "
                    "14px;\"><div style=\"font-size:12px;" S_MUTED "\">");
    s_esc(sb, label);
    ntf_sb_puts(sb, "</div><div style=\"font-size:24px;font-weight:bold;color:#111827;"
                    "margin-top:2px;\">");
    ntf_sb_puts(sb, value); /* built here from numbers */
    ntf_sb_puts(sb, "</div>");
    if (note != NULL && note[0] != '\0') {
        ntf_sb_puts(sb, "<div style=\"font-size:12px;" S_MUTED "margin-top:2px;\">");
        ntf_sb_puts(sb, note); /* built here from numbers and labels */
        ntf_sb_puts(sb, "</div>");
    }
    ntf_sb_puts(sb, "</td></tr></table></td>");
}

/* "▲ 25,0 % vs. semana anterior (12)" as HTML, into out. */
static void
s_html_change(struct ntf_sb *sb, int64_t cur, int64_t prev, const struct ntf_period *p,
              const struct s_lang *l)
{
    if (prev > 0 && cur != prev) {
        ntf_sb_puts(sb, cur > prev ? "<span style=\"color:#b45309;\">\xe2\x96\xb2 "
                                   : "<span style=\"color:#1d4ed8;\">\xe2\x96\xbc ");
        s_put_dbl(sb, fabs(s_pct_change(cur, prev)), l);
        ntf_sb_puts(sb, l->pct);
        ntf_sb_puts(sb, "</span> ");
    }
    else if (prev == 0 && cur > 0) {
        ntf_sb_printf(sb, "<span style=\"color:#b45309;\">%s</span> ", l->is_new);
    }
    else {
        ntf_sb_puts(sb, "= ");
    }
    s_esc(sb, l->vs);
    ntf_sb_puts(sb, " ");
    s_esc(sb, l->prev[p->kind]);
    ntf_sb_puts(sb, " (");
    s_put_grouped(sb, prev, l);
    ntf_sb_puts(sb, ")");
}

static void
s_html_summary(struct ntf_sb *sb, const struct ntf_digest *d, const struct s_lang *l)
{
    struct ntf_sb v;
    struct ntf_sb note;
    char *vs;
    char *ns;
    int64_t total = s_total(d, 0);
    int64_t total_prev = s_total(d, 1);
    int64_t reach = s_sum(d, offsetof(struct ntf_digest_topic, reach));
    int64_t reach_prev = s_sum(d, offsetof(struct ntf_digest_topic, reach_prev));
    int64_t eng = s_sum(d, offsetof(struct ntf_digest_topic, engagement));
    int64_t eng_prev = s_sum(d, offsetof(struct ntf_digest_topic, engagement_prev));
    int i;

    ntf_sb_puts(sb, "<tr><td style=\"padding:14px 18px 4px 18px;\">"
                    "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" "
                    "cellspacing=\"0\" border=\"0\">");
    for (i = 0; i < 4; i++) {
        ntf_sb_init(&v, 4096);
        ntf_sb_init(&note, 4096);
        if (i % 2 == 0) {
            ntf_sb_puts(sb, "<tr>");
        }
        switch (i) {
        case 0:
            s_put_grouped(&v, total, l);
            s_html_change(&note, total, total_prev, &d->period, l);
            break;
        case 1:
            s_put_grouped(&v, reach, l);
            s_html_change(&note, reach, reach_prev, &d->period, l);
            break;
        case 2:
            s_put_grouped(&v, eng, l);
            s_html_change(&note, eng, eng_prev, &d->period, l);
            break;
        default:
            s_put_grouped(&v, (int64_t)d->n_alerts, l);
            break;
        }
        vs = ntf_sb_take(&v, NULL);
        ns = ntf_sb_take(&note, NULL);
        s_html_card(sb, i == 0 ? l->posts : i == 1 ? l->reach : i == 2 ? l->engagement : l->spikes,
                    vs != NULL ? vs : "", ns);
        esc_free(vs);
        esc_free(ns);
        if (i % 2 == 1) {
            ntf_sb_puts(sb, "</tr>");
        }
    }
    ntf_sb_puts(sb, "</table></td></tr>");
}

/* One row of a split: name, bar, percent. */
static void
s_html_bar_row(struct ntf_sb *sb, const char *name, double part, double whole,
               const struct s_lang *l)
{
    double pct = whole > 0 ? 100.0 * part / whole : 0.0;

    ntf_sb_puts(sb, "<tr><td style=\"font-size:13px;padding:3px 8px 3px 0;width:110px;"
                    "white-space:nowrap;\">");
    s_html(sb, name, S_NAME_CHARS);
    ntf_sb_printf(sb, "</td><td style=\"padding:3px 0;\"><table role=\"presentation\" "
                      "width=\"100%%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" "
                      "style=\"background:#e0e7ff;border-radius:3px;\"><tr><td width=\"%.0f%%\" "
                      "style=\"background:#4f46e5;height:8px;font-size:1px;line-height:8px;"
                      "border-radius:3px;\">&nbsp;</td>",
                  pct < 1.0 ? 1.0 : pct);
    if (pct < 99.5) {
        ntf_sb_puts(sb, "<td style=\"font-size:1px;line-height:8px;\">&nbsp;</td>");
    }
    ntf_sb_puts(sb, "</tr></table></td><td style=\"font-size:13px;padding:3px 0 3px 8px;"
                    "width:52px;text-align:right;white-space:nowrap;" S_MUTED "\">");
    s_put_pct_of(sb, part, whole, l);
    ntf_sb_puts(sb, "</td></tr>");
}

static void
s_html_split(struct ntf_sb *sb, const char *title, const struct ntf_digest_count *c, size_t n,
             int64_t whole, int langs, const struct s_lang *l)
{
    double shown = 0;
    size_t i;

    if (n == 0) {
        return;
    }
    ntf_sb_puts(sb, "<div style=\"" S_H3 "\">");
    s_esc(sb, title);
    ntf_sb_puts(sb, "</div><table role=\"presentation\" width=\"100%\" cellpadding=\"0\" "
                    "cellspacing=\"0\" border=\"0\">");
    for (i = 0; i < n && i < NTF_DIGEST_SPLIT_MAX; i++) {
        s_html_bar_row(sb, langs ? s_lang_name(c[i].name, l) : s_platform_name(c[i].name),
                       c[i].n, (double)whole, l);
        shown += c[i].n;
    }
    if (i < n) {
        s_html_bar_row(sb, l->other, (double)whole - shown, (double)whole, l);
    }
    ntf_sb_puts(sb, "</table>");
}

static void
s_html_sentiment(struct ntf_sb *sb, const struct ntf_digest_topic *t, const struct s_lang *l)
{
    static const char *const colors[3] = { "#16a34a", "#9ca3af", "#dc2626" };
    const int64_t v[3] = { t->sent_pos, t->sent_neu, t->sent_neg };
    const char *names[3] = { l->positive, l->neutral, l->negative };
    double whole = (double)(v[0] + v[1] + v[2]);
    int i;

    if (whole <= 0) {
        return;
    }
    ntf_sb_puts(sb, "<div style=\"" S_H3 "\">");
    s_esc(sb, l->sentiment);
    ntf_sb_puts(sb, "</div><table role=\"presentation\" width=\"100%\" cellpadding=\"0\" "
                    "cellspacing=\"0\" border=\"0\"><tr>");
    for (i = 0; i < 3; i++) {
        if (v[i] > 0) {
            ntf_sb_printf(sb, "<td width=\"%.0f%%\" style=\"background:%s;height:12px;"
                              "font-size:1px;line-height:12px;\">&nbsp;</td>",
                          100.0 * (double)v[i] / whole, colors[i]);
        }
    }
    ntf_sb_puts(sb, "</tr></table><div style=\"font-size:13px;margin-top:6px;\">");
    for (i = 0; i < 3; i++) {
        ntf_sb_printf(sb, "%s<span style=\"color:%s;\">&#9679;</span> ", i > 0 ? " &nbsp; " : "",
                      colors[i]);
        s_esc(sb, names[i]);
        ntf_sb_puts(sb, " ");
        s_put_pct_of(sb, (double)v[i], whole, l);
    }
    ntf_sb_puts(sb, "</div>");
}

static void
s_html_post(struct ntf_sb *sb, const struct ntf_digest_post *p, const char *tz,
            const struct s_lang *l)
{
    ntf_sb_puts(sb, "<tr><td style=\"padding:10px 12px;border-left:3px solid #2563eb;"
                    "background:#f8fafc;\"><div style=\"font-size:14px;line-height:20px;"
                    "color:#111827;word-break:break-word;overflow-wrap:anywhere;\">");
    s_html(sb, p->text, S_POST_CHARS);
    ntf_sb_puts(sb, "</div><div style=\"font-size:12px;margin-top:6px;" S_MUTED "\">"
                    "<strong style=\"color:#374151;\">");
    s_html(sb, p->author != NULL && p->author[0] != '\0' ? p->author : "?", S_NAME_CHARS);
    ntf_sb_puts(sb, "</strong>");
    if (p->platform != NULL && p->platform[0] != '\0') {
        ntf_sb_puts(sb, " &middot; ");
        s_html(sb, s_platform_name(p->platform), S_NAME_CHARS);
    }
    if (p->created_ms > 0) {
        ntf_sb_puts(sb, " &middot; ");
        s_put_local(sb, p->created_ms, tz, l);
    }
    ntf_sb_puts(sb, "<br>");
    s_put_grouped(sb, p->likes, l);
    ntf_sb_printf(sb, " %s &middot; ", l->likes);
    s_put_grouped(sb, p->reposts, l);
    ntf_sb_printf(sb, " %s &middot; ", l->reposts);
    s_put_grouped(sb, p->replies, l);
    ntf_sb_printf(sb, " %s", l->replies);
    if (s_url_ok(p->url)) {
        ntf_sb_puts(sb, " &middot; <a href=\"");
        s_esc(sb, p->url);
        ntf_sb_puts(sb, "\" style=\"color:#2563eb;text-decoration:none;\">");
        s_esc(sb, l->open_post);
        ntf_sb_puts(sb, " &rarr;</a>");
    }
    ntf_sb_puts(sb, "</div></td></tr><tr><td style=\"height:8px;font-size:1px;line-height:8px;\">"
                    "&nbsp;</td></tr>");
}

static void
s_html_chips(struct ntf_sb *sb, const char *title, const struct ntf_digest_count *c, size_t n,
             int hash, int show_n)
{
    size_t i;

    if (n == 0) {
        return;
    }
    ntf_sb_puts(sb, "<div style=\"" S_H3 "\">");
    s_esc(sb, title);
    ntf_sb_puts(sb, "</div><div style=\"font-size:13px;line-height:26px;\">");
    for (i = 0; i < n; i++) {
        ntf_sb_puts(sb, "<span style=\"display:inline-block;background:#eef2ff;color:#3730a3;"
                        "border-radius:12px;padding:0 10px;margin:0 4px 4px 0;"
                        "white-space:nowrap;\">");
        ntf_sb_puts(sb, hash ? "#" : "");
        s_html(sb, c[i].name, S_NAME_CHARS);
        if (show_n) {
            ntf_sb_printf(sb, " <span style=\"color:#6b7280;\">%.0f</span>", c[i].n);
        }
        ntf_sb_puts(sb, "</span> ");
    }
    ntf_sb_puts(sb, "</div>");
}

static void
s_html_spike(struct ntf_sb *sb, const struct ntf_digest_alert *a, const char *tz,
             const struct s_lang *l)
{
    size_t i;

    ntf_sb_puts(sb, "<tr><td valign=\"top\" style=\"font-size:13px;padding:8px 10px 8px 0;"
                    "white-space:nowrap;font-weight:bold;color:#b91c1c;border-top:1px solid "
                    "#fee2e2;\">");
    s_put_local(sb, a->window_start, tz, l);
    ntf_sb_puts(sb, "</td><td valign=\"top\" style=\"font-size:13px;padding:8px 0;"
                    "border-top:1px solid #fee2e2;\">");
    s_put_grouped(sb, a->observed, l);
    ntf_sb_printf(sb, " %s %s %lld min", l->posts_lc, l->in,
                  (long long)((a->window_end - a->window_start) / 60000));
    if (isfinite(a->expected)) {
        ntf_sb_printf(sb, " &middot; %s ", l->expected);
        s_put_dbl(sb, a->expected, l);
    }
    if (isfinite(a->score)) {
        ntf_sb_puts(sb, " (<strong>x");
        s_put_dbl(sb, a->score, l);
        ntf_sb_puts(sb, "</strong>)");
    }
    if (a->n_terms > 0) {
        ntf_sb_printf(sb, "<div style=\"margin-top:3px;\">%s: ", l->terms);
        for (i = 0; i < a->n_terms; i++) {
            ntf_sb_puts(sb, i > 0 ? ", " : "");
            ntf_sb_puts(sb, "<strong>");
            s_html(sb, a->terms[i], S_NAME_CHARS);
            ntf_sb_puts(sb, "</strong>");
        }
        ntf_sb_puts(sb, "</div>");
    }
    if (a->sample != NULL) {
        ntf_sb_puts(sb, "<div style=\"margin-top:3px;" S_MUTED "word-break:break-word;"
                        "overflow-wrap:anywhere;\">&ldquo;");
        s_html(sb, a->sample, S_SAMPLE_CHARS);
        ntf_sb_puts(sb, "&rdquo;");
        if (a->sample_author != NULL) {
            ntf_sb_puts(sb, " &mdash; ");
            s_html(sb, a->sample_author, S_NAME_CHARS);
        }
        if (s_url_ok(a->sample_url)) {
            ntf_sb_puts(sb, " &middot; <a href=\"");
            s_esc(sb, a->sample_url);
            ntf_sb_puts(sb, "\" style=\"color:#2563eb;text-decoration:none;\">");
            s_esc(sb, l->open_post);
            ntf_sb_puts(sb, "</a>");
        }
        ntf_sb_puts(sb, "</div>");
    }
    ntf_sb_puts(sb, "</td></tr>");
}

/* One row per topic: name, posts, change, spikes; the week at a glance. */
static void
s_html_overview(struct ntf_sb *sb, const struct ntf_digest *d, const struct s_lang *l)
{
    size_t i;

    if (d->n_topics < 2) {
        return;
    }
    ntf_sb_puts(sb, "<tr><td style=\"padding:6px 24px 0 24px;\"><table role=\"presentation\" "
                    "width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" "
                    "style=\"font-size:13px;\"><tr>");
    ntf_sb_printf(sb, "<td style=\"padding:6px 0;border-bottom:1px solid #e5e7eb;" S_MUTED
                      "\">%s</td><td align=\"right\" style=\"padding:6px 0;border-bottom:1px "
                      "solid #e5e7eb;" S_MUTED "\">%s</td><td align=\"right\" style=\"padding:6px "
                      "0 6px 12px;border-bottom:1px solid #e5e7eb;" S_MUTED "\">%s</td>"
                      "<td align=\"right\" style=\"padding:6px 0 6px 12px;border-bottom:1px "
                      "solid #e5e7eb;" S_MUTED "\">%s</td></tr>",
                  l->topics, l->posts, l->change, l->spikes);
    for (i = 0; i < d->n_topics; i++) {
        const struct ntf_digest_topic *t = &d->topics[i];
        size_t n_spikes = s_topic_spikes(d, t);

        ntf_sb_puts(sb, "<tr><td style=\"padding:7px 0;border-bottom:1px solid #f1f5f9;"
                        "font-weight:bold;color:#1e3a8a;\">");
        s_html(sb, t->topic->name, 128);
        ntf_sb_puts(sb, "</td><td align=\"right\" style=\"padding:7px 0;border-bottom:1px solid "
                        "#f1f5f9;\">");
        s_put_grouped(sb, t->posts, l);
        ntf_sb_puts(sb, "</td><td align=\"right\" style=\"padding:7px 0 7px 12px;border-bottom:"
                        "1px solid #f1f5f9;white-space:nowrap;\">");
        s_put_change(sb, t->posts, t->posts_prev, l);
        ntf_sb_printf(sb, "</td><td align=\"right\" style=\"padding:7px 0 7px 12px;"
                          "border-bottom:1px solid #f1f5f9;%s\">%zu</td></tr>",
                      n_spikes > 0 ? "color:#b91c1c;font-weight:bold;" : "", n_spikes);
    }
    ntf_sb_puts(sb, "</table></td></tr>\n");
}

static void
s_html_topic(struct ntf_sb *sb, const struct ntf_digest *d, size_t ti,
             const struct ntf_digest_chart *chart, const struct s_lang *l)
{
    const struct ntf_digest_topic *t = &d->topics[ti];
    const char *tz = d->team->timezone;
    size_t n_spikes = s_topic_spikes(d, t);
    size_t i;

    ntf_sb_puts(sb, "<tr><td style=\"padding:8px 24px 8px 24px;\">"
                    "<div style=\"border-top:2px solid #e5e7eb;margin-top:10px;padding-top:16px;"
                    "font-size:19px;font-weight:bold;color:#1e3a8a;\">");
    s_html(sb, t->topic->name, 128);
    ntf_sb_puts(sb, "</div><div style=\"font-size:14px;margin-top:4px;color:#374151;\">"
                    "<strong>");
    s_put_grouped(sb, t->posts, l);
    ntf_sb_printf(sb, "</strong> %s &middot; ", l->posts_lc);
    s_html_change(sb, t->posts, t->posts_prev, &d->period, l);
    ntf_sb_puts(sb, "</div>");
    if (chart != NULL && chart->png != NULL) {
        ntf_sb_puts(sb, "<div style=\"margin-top:12px;\"><img src=\"cid:");
        s_esc(sb, chart->cid);
        ntf_sb_printf(sb, "\" width=\"%d\" alt=\"", S_CHART_W);
        s_esc(sb, d->period.kind == NTF_PERIOD_DAY ? l->by_hour : l->by_day);
        ntf_sb_puts(sb, "\" style=\"display:block;width:100%;max-width:592px;height:auto;"
                        "border:0;\"></div>");
    }
    /* reach and engagement */
    ntf_sb_puts(sb, "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" "
                    "cellspacing=\"0\" border=\"0\" style=\"margin-top:12px;font-size:13px;\">"
                    "<tr><td width=\"50%\" style=\"padding:2px 0;\">");
    ntf_sb_printf(sb, "%s: <strong>", l->reach);
    s_put_grouped(sb, t->reach, l);
    ntf_sb_puts(sb, "</strong></td><td width=\"50%\" style=\"padding:2px 0;\">");
    ntf_sb_printf(sb, "%s: <strong>", l->engagement);
    s_put_grouped(sb, t->engagement, l);
    ntf_sb_puts(sb, "</strong></td></tr>");
    if (t->engagement > 0) {
        ntf_sb_puts(sb, "<tr><td colspan=\"2\" style=\"padding:2px 0;" S_MUTED "\">");
        s_put_grouped(sb, t->likes, l);
        ntf_sb_printf(sb, " %s &middot; ", l->likes);
        s_put_grouped(sb, t->reposts, l);
        ntf_sb_printf(sb, " %s &middot; ", l->reposts);
        s_put_grouped(sb, t->replies, l);
        ntf_sb_printf(sb, " %s</td></tr>", l->replies);
    }
    ntf_sb_puts(sb, "</table>");
    if (t->posts == 0 && n_spikes == 0) {
        ntf_sb_printf(sb, "<div style=\"font-size:13px;margin-top:10px;" S_MUTED "\">%s</div>",
                      l->no_posts);
    }
    if (d->have.splits && t->posts > 0) {
        s_html_split(sb, l->languages, t->langs, t->n_langs, t->posts, 1, l);
        s_html_split(sb, l->platforms, t->platforms, t->n_platforms, t->posts, 0, l);
        s_html_sentiment(sb, t, l);
    }
    if (n_spikes > 0) {
        ntf_sb_printf(sb, "<div style=\"" S_H3 "\">%s (%zu)</div>", l->spikes, n_spikes);
        ntf_sb_puts(sb, "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" "
                        "cellspacing=\"0\" border=\"0\">");
        for (i = 0; i < d->n_alerts; i++) {
            if (d->alerts[i].topic_id != NULL
                && strcmp(d->alerts[i].topic_id, t->topic->id) == 0) {
                s_html_spike(sb, &d->alerts[i], tz, l);
            }
        }
        ntf_sb_puts(sb, "</table>");
    }
    if (t->n_top_posts > 0) {
        ntf_sb_printf(sb, "<div style=\"" S_H3 "\">%s</div>", l->top_posts);
        ntf_sb_puts(sb, "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" "
                        "cellspacing=\"0\" border=\"0\">");
        for (i = 0; i < t->n_top_posts; i++) {
            s_html_post(sb, &t->top_posts[i], tz, l);
        }
        ntf_sb_puts(sb, "</table>");
    }
    s_html_chips(sb, l->top_authors, t->authors, t->n_authors, 0, 0);
    s_html_chips(sb, l->hashtags, t->hashtags, t->n_hashtags, 1, 1);
    s_html_chips(sb, l->terms, t->terms, t->n_terms, 0, 1);
    ntf_sb_puts(sb, "</td></tr>");
}

char *
ntf_digest_html(const struct ntf_digest *d, const char *deployment,
                const struct ntf_digest_chart *charts)
{
    const struct s_lang *l = s_lang_find(d->team->language);
    struct ntf_sb sb;
    char *out;
    size_t i;

    ntf_sb_init(&sb, S_BODY_MAX);
    ntf_sb_printf(&sb, "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n"
                       "<meta name=\"viewport\" content=\"width=device-width, "
                       "initial-scale=1\">\n<title>",
                  l->code);
    s_esc(&sb, l->title[d->period.kind]);
    ntf_sb_puts(&sb, "</title>\n</head>\n<body style=\"margin:0;padding:0;background:#eef1f5;"
                     "\">\n<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" "
                     "cellspacing=\"0\" border=\"0\" style=\"background:#eef1f5;\">\n<tr><td "
                     "align=\"center\" style=\"padding:20px 8px;\">\n<table role=\"presentation\" "
                     "width=\"640\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" "
                     "style=\"width:100%;max-width:640px;background:#ffffff;border-radius:8px;"
                     S_FONT "color:#111827;\">\n");
    /* header band */
    ntf_sb_puts(&sb, "<tr><td style=\"background:#1e3a8a;color:#ffffff;padding:22px 24px;"
                     "border-radius:8px 8px 0 0;\"><div style=\"font-size:12px;"
                     "letter-spacing:1px;text-transform:uppercase;color:#c7d2fe;\">");
    s_esc(&sb, l->title[d->period.kind]);
    ntf_sb_puts(&sb, "</div><div style=\"font-size:24px;font-weight:bold;margin-top:6px;\">");
    s_html(&sb, d->team->name, 128);
    ntf_sb_puts(&sb, "</div><div style=\"font-size:14px;margin-top:6px;color:#e0e7ff;\">");
    s_put_period(&sb, &d->period, l); /* labels and numbers only: nothing to escape */
    ntf_sb_puts(&sb, "</div></td></tr>\n");
    s_html_summary(&sb, d, l);
    s_html_overview(&sb, d, l);
    for (i = 0; i < d->n_topics; i++) {
        s_html_topic(&sb, d, i, charts != NULL ? &charts[i] : NULL, l);
        ntf_sb_puts(&sb, "\n");
    }
    /* footer */
    ntf_sb_puts(&sb, "<tr><td style=\"padding:18px 24px 22px 24px;font-size:12px;" S_MUTED
                     "border-top:1px solid #e5e7eb;\">");
    s_esc(&sb, l->generated);
    if (deployment != NULL && deployment[0] != '\0') {
        ntf_sb_printf(&sb, " &middot; %s: ", l->deployment);
        s_html(&sb, deployment, 64);
    }
    ntf_sb_printf(&sb, " &middot; %s ", l->times_in);
    s_esc(&sb, d->team->timezone);
    ntf_sb_puts(&sb, "</td></tr>\n</table>\n</td></tr>\n</table>\n</body>\n</html>\n");
    out = ntf_sb_take(&sb, NULL);
    if (out == NULL) {
        out = esc_strdup("<!DOCTYPE html><html><body><p>digest too large</p></body></html>\n");
    }
    return out;
}
