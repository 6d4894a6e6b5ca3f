#define ESC_LOG_MODULE "text"
/* Text and time helpers shared by the connectors. HTML goes through libxml2's forgiving HTML
 * parser (no hand-written tag soup handling): the tree is walked and its text written out with
 * whitespace collapsed the way a browser would, block elements turned into blank lines and <br>
 * into line breaks, so Mastodon, HN, YouTube and RSS bodies come out as readable plain text.
 * Dates cover the RFC 822 family used by RSS and HTTP. Pure functions; any thread, though
 * libxml2 must have been initialised (col_net_global_init) first. */
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include "text.h"

#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

/* Output of the HTML walk: text with pending separators applied lazily, so trailing breaks and
 * spaces never reach the result. */
struct s_out {
    char *buf;
    size_t len;
    size_t cap;
    int space; /* a collapsed space is due before the next text */
    int nl;    /* line breaks due before the next text (0..2) */
};

static void
s_put(struct s_out *o, const char *p, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t want = o->cap == 0 ? 256 : o->cap;

        while (want < o->len + n + 1) {
            want *= 2;
        }
        o->buf = esc_realloc(o->buf, want);
        o->cap = want;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

/* Writes the separators that are due (none at the very start). */
static void
s_flush_sep(struct s_out *o)
{
    if (o->len > 0) {
        if (o->nl > 0) {
            s_put(o, "\n\n", (size_t)o->nl);
        }
        else if (o->space && o->buf[o->len - 1] != '\n') {
            s_put(o, " ", 1);
        }
    }
    o->nl = 0;
    o->space = 0;
}

static void
s_text(struct s_out *o, const char *t, int pre)
{
    const char *p = t;

    while (*p != '\0') {
        if (!pre && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f')) {
            o->space = 1;
            p++;
            continue;
        }
        if (!pre && (unsigned char)p[0] == 0xC2 && (unsigned char)p[1] == 0xA0) {
            o->space = 1; /* &nbsp; reads as a space (keyword matching sees words) */
            p += 2;
            continue;
        }
        s_flush_sep(o);
        if (pre) {
            s_put(o, p, 1);
            p++;
            continue;
        }
        {
            size_t n = strcspn(p, " \t\n\r\f\xc2");

            if (n == 0) {
                n = 1; /* a lone 0xC2 lead byte that is not &nbsp; */
            }
            s_put(o, p, n);
            p += n;
        }
    }
}

static void
s_break(struct s_out *o, int n)
{
    if (n > o->nl) {
        o->nl = n;
    }
    o->space = 0;
}

static int
s_is(const char *name, const char *const *list)
{
    size_t i;

    for (i = 0; list[i] != NULL; i++) {
        if (strcasecmp(name, list[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void
s_walk(struct s_out *o, xmlNode *node, int pre, int depth)
{
    static const char *const skip[] = { "script", "style", "template", "head", NULL };
    static const char *const blocks[] = { "p", "div", "blockquote", "h1", "h2", "h3", "h4",
                                          "h5", "h6", "ul", "ol", "pre", "table", "section",
                                          "article", "header", "footer", "hr", "figure",
                                          "dl", NULL };
    static const char *const lines[] = { "li", "tr", "dt", "dd", NULL };
    xmlNode *n;

    if (depth > 256) {
        return; /* absurd nesting: the rest is dropped rather than risking the stack */
    }
    for (n = node; n != NULL; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (n->content != NULL) {
                s_text(o, (const char *)n->content, pre);
            }
            continue;
        }
        if (n->type != XML_ELEMENT_NODE || n->name == NULL) {
            continue;
        }
        if (s_is((const char *)n->name, skip)) {
            continue;
        }
        if (strcasecmp((const char *)n->name, "br") == 0) {
            s_break(o, 1);
            continue;
        }
        if (s_is((const char *)n->name, blocks)) {
            s_break(o, 2);
            s_walk(o, n->children, pre || strcasecmp((const char *)n->name, "pre") == 0,
                   depth + 1);
            s_break(o, 2);
            continue;
        }
        if (s_is((const char *)n->name, lines)) {
            s_break(o, 1);
            s_walk(o, n->children, pre, depth + 1);
            s_break(o, 1);
            continue;
        }
        s_walk(o, n->children, pre, depth + 1);
    }
}

char *
col_html_to_text(const char *html, size_t len)
{
    struct s_out o = { NULL, 0, 0, 0, 0 };
    htmlDocPtr doc;

    if (html == NULL || len == 0) {
        return esc_strdup("");
    }
    if (len > INT32_MAX) {
        len = INT32_MAX;
    }
    doc = htmlReadMemory(html, (int)len, NULL, "UTF-8",
                         HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
    if (doc == NULL) {
        return esc_strdup("");
    }
    s_walk(&o, xmlDocGetRootElement(doc), 0, 0);
    xmlFreeDoc(doc);
    if (o.buf == NULL) {
        return esc_strdup("");
    }
    return o.buf;
}

/* RFC 822 zone names (military letters other than Z are unreliable and read as UTC). */
static int
s_zone(const char *z, int *off)
{
    static const struct {
        const char *name;
        int hours;
    } zones[] = { { "GMT", 0 },  { "UT", 0 },   { "UTC", 0 },  { "Z", 0 },    { "EST", -5 },
                  { "EDT", -4 }, { "CST", -6 }, { "CDT", -5 }, { "MST", -7 }, { "MDT", -6 },
                  { "PST", -8 }, { "PDT", -7 } };
    size_t i;

    if (*z == '\0') {
        *off = 0;
        return 0;
    }
    if ((*z == '+' || *z == '-') && isdigit((unsigned char)z[1]) && isdigit((unsigned char)z[2])
        && isdigit((unsigned char)z[3]) && isdigit((unsigned char)z[4])) {
        int v = ((z[1] - '0') * 10 + (z[2] - '0')) * 3600 + ((z[3] - '0') * 10 + (z[4] - '0')) * 60;

        *off = *z == '-' ? -v : v;
        return 0;
    }
    for (i = 0; i < ESC_ARRAY_LEN(zones); i++) {
        if (strcasecmp(z, zones[i].name) == 0) {
            *off = zones[i].hours * 3600;
            return 0;
        }
    }
    if (isalpha((unsigned char)z[0]) && z[1] == '\0') {
        *off = 0;
        return 0;
    }
    return -1;
}

/* Reads 1..max digits. */
static int
s_num(const char **p, int max, int *v)
{
    int n = 0;

    *v = 0;
    while (n < max && isdigit((unsigned char)**p)) {
        *v = *v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    return n > 0 ? 0 : -1;
}

int
col_time_parse_rfc822(const char *s, int64_t *ms)
{
    static const char *const months[] = { "jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec" };
    const char *p = s;
    struct tm tm;
    char zone[8];
    int day, year, h, mi, sec = 0, mon = -1, off = 0;
    size_t zn = 0;
    size_t i;
    time_t t;

    if (s == NULL) {
        return -1;
    }
    while (*p == ' ') {
        p++;
    }
    if (isalpha((unsigned char)*p)) { /* weekday, "Mon," or RFC 850 "Sunday," */
        while (isalpha((unsigned char)*p)) {
            p++;
        }
        if (*p == ',') {
            p++;
        }
        while (*p == ' ') {
            p++;
        }
    }
    if (s_num(&p, 2, &day) < 0) {
        return -1;
    }
    if (*p != ' ' && *p != '-') {
        return -1;
    }
    p++;
    for (i = 0; i < 12; i++) {
        if (strncasecmp(p, months[i], 3) == 0) {
            mon = (int)i;
            break;
        }
    }
    if (mon < 0) {
        return -1;
    }
    p += 3;
    while (isalpha((unsigned char)*p)) { /* "June" */
        p++;
    }
    if (*p != ' ' && *p != '-') {
        return -1;
    }
    p++;
    {
        const char *y0 = p;

        if (s_num(&p, 4, &year) < 0) {
            return -1;
        }
        if (p - y0 == 2) {
            year += year < 50 ? 2000 : 1900;
        }
    }
    while (*p == ' ') {
        p++;
    }
    if (s_num(&p, 2, &h) < 0 || *p++ != ':' || s_num(&p, 2, &mi) < 0) {
        return -1;
    }
    if (*p == ':') {
        p++;
        if (s_num(&p, 2, &sec) < 0) {
            return -1;
        }
    }
    while (*p == ' ') {
        p++;
    }
    while (*p != '\0' && *p != ' ' && zn < sizeof(zone) - 1) {
        zone[zn++] = *p++;
    }
    zone[zn] = '\0';
    while (*p == ' ') {
        p++;
    }
    if (*p != '\0' || s_zone(zone, &off) < 0 || day < 1 || day > 31 || h > 23 || mi > 59
        || sec > 60) {
        return -1;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mon;
    tm.tm_mday = day;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    *ms = ((int64_t)t - off) * 1000;
    return 0;
}

int
col_time_parse_any(const char *s, int64_t *ms)
{
    char buf[64];
    size_t n;

    if (s == NULL || *s == '\0') {
        return -1;
    }
    if (esc_time_parse_iso8601(s, ms) == 0) {
        return 0;
    }
    /* Lemmy 0.18 writes "2025-02-03T14:05:09.123456" without a zone: that is UTC. */
    n = strlen(s);
    if (n + 2 < sizeof(buf) && n >= 16 && s[10] == 'T') {
        memcpy(buf, s, n);
        buf[n] = 'Z';
        buf[n + 1] = '\0';
        if (esc_time_parse_iso8601(buf, ms) == 0) {
            return 0;
        }
    }
    return col_time_parse_rfc822(s, ms);
}

int
col_since_parse(const char *s, int64_t *ms)
{
    if (s == NULL || *s == '\0') {
        *ms = 0;
        return 0;
    }
    return esc_time_parse_iso8601(s, ms);
}

int
col_split_next(const char **p, const char *seps, char *out, size_t outsz)
{
    size_t n;

    *p += strspn(*p, seps);
    if (**p == '\0') {
        return 0;
    }
    n = strcspn(*p, seps);
    if (outsz > 0) {
        size_t k = n < outsz - 1 ? n : outsz - 1;

        memcpy(out, *p, k);
        out[k] = '\0';
    }
    *p += n;
    return 1;
}

void
col_utf8_truncate(char *s, size_t max)
{
    size_t n = strlen(s);

    if (n <= max) {
        return;
    }
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
        n--; /* s[n] continues a sequence: cut before its lead byte */
    }
    s[n] = '\0';
}

int
col_id_cmp(const char *a, const char *b)
{
    size_t la;
    size_t lb;

    while (*a == '0' && a[1] != '\0') {
        a++;
    }
    while (*b == '0' && b[1] != '\0') {
        b++;
    }
    la = strlen(a);
    lb = strlen(b);
    if (la != lb) {
        return la < lb ? -1 : 1;
    }
    return strcmp(a, b);
}

uint64_t
col_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= c[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}
