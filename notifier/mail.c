#define ESC_LOG_MODULE "mail"
/* Digest e-mail: builds an RFC 5322 message and hands it to a file or to an SMTP server.
 * Header injection is prevented at one place: every header value from outside (team names,
 * subjects, addresses, the From of the config) goes through ntf_mail_header_clean, which turns
 * CR, LF and every other control byte into a space, and non-ASCII text is carried in RFC 2047
 * encoded-words, whose alphabet has no line breaks. Text is sent as UTF-8 "8bit" with CRLF
 * line ends and lines kept under the 998-byte limit; HTML as quoted-printable; images base64.
 * The multipart structure exists twice, on purpose: s_curl_mime builds it with libcurl's MIME
 * API for SMTP (libcurl adds boundaries and encodes), and s_build_multipart serialises the same
 * tree for .eml files, because libcurl can only emit a MIME structure into a transfer (HTTP,
 * SMTP, IMAP), never into a buffer or a file:// upload. Both are checked in tests by parsing
 * the result with Python's email package. SMTP is libcurl's (dot-stuffing and TLS included);
 * the password is loaded only for the transfer, never logged, and wiped afterwards.
 * Single-threaded. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "mail.h"
#include "strbuf.h"

#define S_WORD_RAW 39      /* input bytes per encoded-word: 52 base64 chars, 64 with =?UTF-8?B??= */
#define S_LINE_MAX 998     /* RFC 5322 hard limit, CRLF excluded */
#define S_FOLD_AT 76       /* fold the To list before this column */
#define S_ADDR_MAX 256
#define S_SPECIALS "()<>[]:;@\\,.\""

char *
ntf_mail_header_clean(const char *s)
{
    char *out = esc_strdup(s != NULL ? s : "");
    size_t i;

    for (i = 0; out[i] != '\0'; i++) {
        unsigned char c = (unsigned char)out[i];

        if (c < 0x20 || c == 0x7f) {
            out[i] = ' ';
        }
    }
    return out;
}

static int
s_is_ascii(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if ((unsigned char)s[i] >= 0x80) {
            return 0;
        }
    }
    return 1;
}

char *
ntf_mail_encode_words(const char *s)
{
    char *clean = ntf_mail_header_clean(s);
    char b64[sodium_base64_ENCODED_LEN(S_WORD_RAW, sodium_base64_VARIANT_ORIGINAL)];
    struct ntf_sb sb;
    size_t n = strlen(clean);
    size_t off = 0;
    char *out;

    if (s_is_ascii(clean)) {
        return clean;
    }
    ntf_sb_init(&sb, NTF_MAIL_MAX);
    while (off < n) {
        size_t chunk = n - off < S_WORD_RAW ? n - off : S_WORD_RAW;

        /* never end a word inside a UTF-8 sequence: back off over continuation bytes */
        while (off + chunk < n && chunk > 1
               && ((unsigned char)clean[off + chunk] & 0xC0) == 0x80) {
            chunk--;
        }
        sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)clean + off, chunk,
                          sodium_base64_VARIANT_ORIGINAL);
        if (off > 0) {
            ntf_sb_puts(&sb, "\r\n ");
        }
        ntf_sb_printf(&sb, "=?UTF-8?B?%s?=", b64);
        off += chunk;
    }
    esc_free(clean);
    out = ntf_sb_take(&sb, NULL);
    ESC_ASSERT(out != NULL); /* bounded by the input, which is far below the cap */
    return out;
}

static int
s_addr_valid(const char *a)
{
    const char *at = strchr(a, '@');
    size_t i;

    if (at == NULL || at == a || at[1] == '\0' || strchr(at + 1, '@') != NULL) {
        return 0;
    }
    for (i = 0; a[i] != '\0'; i++) {
        unsigned char c = (unsigned char)a[i];

        if (c <= 0x20 || c == 0x7f || strchr("<>()[],;:\\\"", c) != NULL) {
            return 0;
        }
    }
    return 1;
}

int
ntf_mail_addr_spec(const char *mailbox, char *out, size_t outsz)
{
    const char *lt = strrchr(mailbox, '<');
    const char *start;
    const char *end;
    const char *p;
    size_t n;

    if (lt != NULL) {
        start = lt + 1;
        end = strchr(start, '>');
        if (end == NULL) {
            return -1;
        }
        for (p = end + 1; *p != '\0'; p++) {
            if (*p != ' ') {
                return -1;
            }
        }
    }
    else {
        start = mailbox;
        while (*start == ' ') {
            start++;
        }
        end = start + strlen(start);
        while (end > start && end[-1] == ' ') {
            end--;
        }
    }
    n = (size_t)(end - start);
    if (n == 0 || n >= outsz) {
        return -1;
    }
    memcpy(out, start, n);
    out[n] = '\0';
    return s_addr_valid(out) ? 0 : -1;
}

/* The display-name of a mailbox ("Name <a@b>" -> "Name"), "" when there is none. Caller owns. */
static char *
s_display_name(const char *mailbox)
{
    const char *lt = strrchr(mailbox, '<');
    const char *start = mailbox;
    const char *end;
    char *out;

    if (lt == NULL) {
        return esc_strdup("");
    }
    end = lt;
    while (*start == ' ') {
        start++;
    }
    while (end > start && end[-1] == ' ') {
        end--;
    }
    if (end - start >= 2 && *start == '"' && end[-1] == '"') {
        start++;
        end--;
    }
    out = esc_strndup(start, (size_t)(end - start));
    return out;
}

static void
s_put_display_name(struct ntf_sb *sb, const char *name)
{
    char *clean;
    size_t i;

    if (!s_is_ascii(name)) {
        clean = ntf_mail_encode_words(name);
        ntf_sb_puts(sb, clean);
        esc_free(clean);
        return;
    }
    clean = ntf_mail_header_clean(name);
    if (strpbrk(clean, S_SPECIALS) == NULL) {
        ntf_sb_puts(sb, clean);
    }
    else {
        ntf_sb_puts(sb, "\"");
        for (i = 0; clean[i] != '\0'; i++) {
            if (clean[i] == '"' || clean[i] == '\\') {
                ntf_sb_puts(sb, "\\");
            }
            ntf_sb_add(sb, &clean[i], 1);
        }
        ntf_sb_puts(sb, "\"");
    }
    esc_free(clean);
}

/* Copies s into out keeping only [A-Za-z0-9.-_] (others become '-'): safe inside a msg-id. */
static void
s_id_part(char *out, size_t outsz, const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0' && i + 1 < outsz; i++) {
        char c = s[i];

        out[i] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                  || c == '.' || c == '-' || c == '_')
                     ? c
                     : '-';
    }
    out[i] = '\0';
}

static void
s_put_date(struct ntf_sb *sb, int64_t date)
{
    static const char *const wd[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t t = (time_t)date;
    struct tm tm;

    gmtime_r(&t, &tm);
    ntf_sb_printf(sb, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", wd[tm.tm_wday],
                  tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
}

/* Length of the UTF-8 sequence that starts with byte c (1 for a stray byte). */
static size_t
s_utf8_len(unsigned char c)
{
    if (c >= 0xF0 && c <= 0xF4) {
        return 4;
    }
    if (c >= 0xE0) {
        return c <= 0xEF ? 3 : 1;
    }
    if (c >= 0xC2) {
        return 2;
    }
    return 1;
}

/* Appends text with CRLF line ends; a line longer than the RFC 5322 limit is broken before a
 * UTF-8 sequence that would cross it. */
static void
s_put_body(struct ntf_sb *sb, const char *body)
{
    size_t col = 0;
    size_t i = 0;

    while (body[i] != '\0') {
        size_t n;

        if (body[i] == '\r') {
            i++;
            continue;
        }
        if (body[i] == '\n') {
            ntf_sb_puts(sb, "\r\n");
            col = 0;
            i++;
            continue;
        }
        n = s_utf8_len((unsigned char)body[i]);
        if (strnlen(body + i, n) < n) {
            n = 1;
        }
        if (col + n > S_LINE_MAX) {
            ntf_sb_puts(sb, "\r\n");
            col = 0;
        }
        ntf_sb_add(sb, body + i, n);
        col += n;
        i += n;
    }
    if (col > 0) {
        ntf_sb_puts(sb, "\r\n");
    }
}

/* Appends text with every line end made CRLF, lines of any length (the encoder wraps). */
static void
s_put_crlf(struct ntf_sb *sb, const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) {
            ntf_sb_puts(sb, "\r\n");
        }
        else {
            ntf_sb_add(sb, &s[i], 1);
        }
    }
}

/* Quoted-printable (RFC 2045 6.7) of text whose line ends are \n or CRLF: lines of at most 76
 * characters with soft breaks, '=', controls, bytes >= 0x80 and white space before a line end
 * encoded. */
static void
s_put_qp(struct ntf_sb *sb, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t col = 0;
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        int eol_next = s[i + 1] == '\0' || s[i + 1] == '\n'
                       || (s[i + 1] == '\r' && s[i + 2] == '\n');
        int lit;
        char enc[3];

        if (c == '\r' && s[i + 1] == '\n') {
            continue;
        }
        if (c == '\n') {
            ntf_sb_puts(sb, "\r\n");
            col = 0;
            continue;
        }
        lit = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !eol_next);
        if (col + (lit ? 1 : 3) > 75) {
            ntf_sb_puts(sb, "=\r\n");
            col = 0;
        }
        if (lit) {
            ntf_sb_add(sb, (const char *)&c, 1);
            col++;
        }
        else {
            enc[0] = '=';
            enc[1] = hex[c >> 4];
            enc[2] = hex[c & 15];
            ntf_sb_add(sb, enc, 3);
            col += 3;
        }
    }
}

/* Base64 in lines of 76 characters. */
static void
s_put_base64(struct ntf_sb *sb, const unsigned char *data, size_t len)
{
    char line[sodium_base64_ENCODED_LEN(57, sodium_base64_VARIANT_ORIGINAL)];
    size_t off;

    for (off = 0; off < len; off += 57) {
        size_t n = len - off < 57 ? len - off : 57;

        sodium_bin2base64(line, sizeof(line), data + off, n, sodium_base64_VARIANT_ORIGINAL);
        ntf_sb_puts(sb, line);
        ntf_sb_puts(sb, "\r\n");
    }
}

/* Content-IDs and filenames go into headers verbatim: a small alphabet keeps them inert. */
static int
s_token_ok(const char *s, const char *extra)
{
    size_t i;

    if (s == NULL || s[0] == '\0' || strlen(s) > 100) {
        return 0;
    }
    for (i = 0; s[i] != '\0'; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || strchr(extra, c) != NULL)) {
            return 0;
        }
    }
    return 1;
}

static int
s_images_ok(const struct ntf_mail *m)
{
    size_t i;

    for (i = 0; i < m->n_images; i++) {
        if (!s_token_ok(m->images[i].cid, ".@_-") || !s_token_ok(m->images[i].filename, "._-")
            || m->images[i].data == NULL) {
            esc_log_error("invalid inline image index=%zu", i);
            return 0;
        }
    }
    return 1;
}

/* The header block of m, each header ending in CRLF (folded lines inside), without the empty
 * line. content_type/cte: the values of those headers (cte NULL = no such header). Returns -1
 * (logged) when the From address is invalid. */
static int
s_put_headers(struct ntf_sb *sb, const struct ntf_mail *m, const char *content_type,
              const char *cte)
{
    char from_addr[S_ADDR_MAX];
    char addr[S_ADDR_MAX];
    char hint[96];
    char domain[S_ADDR_MAX];
    unsigned char rnd[6];
    char rnd_hex[sizeof(rnd) * 2 + 1];
    char *name;
    char *subject;
    size_t col;
    size_t n_to = 0;
    size_t i;

    if (ntf_mail_addr_spec(m->from, from_addr, sizeof(from_addr)) != 0) {
        esc_log_error("invalid from address");
        return -1;
    }
    name = s_display_name(m->from);
    ntf_sb_puts(sb, "From: ");
    if (name[0] != '\0') {
        s_put_display_name(sb, name);
        ntf_sb_printf(sb, " <%s>\r\n", from_addr);
    }
    else {
        ntf_sb_printf(sb, "%s\r\n", from_addr);
    }
    esc_free(name);

    ntf_sb_puts(sb, "To: ");
    col = 4;
    for (i = 0; i < m->n_to; i++) {
        if (ntf_mail_addr_spec(m->to[i], addr, sizeof(addr)) != 0) {
            esc_log_warn("skipped invalid recipient index=%zu", i);
            continue;
        }
        if (n_to > 0 && col + 2 + strlen(addr) > S_FOLD_AT) {
            ntf_sb_puts(sb, ",\r\n ");
            col = 1;
        }
        else if (n_to > 0) {
            ntf_sb_puts(sb, ", ");
            col += 2;
        }
        ntf_sb_puts(sb, addr);
        col += strlen(addr);
        n_to++;
    }
    if (n_to == 0) {
        ntf_sb_puts(sb, "undisclosed-recipients:;");
    }
    ntf_sb_puts(sb, "\r\n");

    subject = ntf_mail_encode_words(m->subject);
    ntf_sb_printf(sb, "Subject: %s\r\n", subject);
    esc_free(subject);

    s_put_date(sb, m->date);
    s_id_part(hint, sizeof(hint), m->id_hint != NULL ? m->id_hint : "mail");
    s_id_part(domain, sizeof(domain), strchr(from_addr, '@') + 1);
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(rnd_hex, sizeof(rnd_hex), rnd, sizeof(rnd));
    ntf_sb_printf(sb, "Message-ID: <escucha.%s.%lld.%s@%s>\r\n", hint, (long long)m->date,
                  rnd_hex, domain);
    ntf_sb_printf(sb, "MIME-Version: 1.0\r\nContent-Type: %s\r\n", content_type);
    if (cte != NULL) {
        ntf_sb_printf(sb, "Content-Transfer-Encoding: %s\r\n", cte);
    }
    ntf_sb_puts(sb, "User-Agent: escucha/" ESC_VERSION "\r\n");
    return 0;
}

/* A fresh boundary: "=_" cannot occur in quoted-printable or base64 text, and the random part
 * makes a collision with the 8bit text part practically impossible. */
static void
s_boundary(char *out, size_t outsz, int level)
{
    unsigned char rnd[12];
    char hex[sizeof(rnd) * 2 + 1];

    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
    snprintf(out, outsz, "=_escucha_%d_%s", level, hex);
}

#define S_CT_TEXT "text/plain; charset=utf-8"
#define S_CT_HTML "text/html; charset=utf-8"
#define S_CT_RELATED "multipart/related; type=\"multipart/alternative\""

/* The multipart message of m (m->html set): the same structure s_curl_mime builds. */
static char *
s_build_multipart(const struct ntf_mail *m, size_t *len)
{
    char b_rel[64];
    char b_alt[64];
    char ct[160];
    struct ntf_sb sb;
    size_t i;

    s_boundary(b_rel, sizeof(b_rel), 1);
    s_boundary(b_alt, sizeof(b_alt), 2);
    ntf_sb_init(&sb, NTF_MAIL_MAX);
    snprintf(ct, sizeof(ct), S_CT_RELATED "; boundary=\"%s\"", b_rel);
    if (s_put_headers(&sb, m, ct, NULL) != 0) {
        ntf_sb_fini(&sb);
        return NULL;
    }
    ntf_sb_puts(&sb, "\r\nThis is a multi-part message in MIME format.\r\n");
    ntf_sb_printf(&sb, "\r\n--%s\r\nContent-Type: multipart/alternative; boundary=\"%s\"\r\n"
                       "\r\n",
                  b_rel, b_alt);
    ntf_sb_printf(&sb, "--%s\r\nContent-Type: " S_CT_TEXT "\r\n"
                       "Content-Transfer-Encoding: 8bit\r\n\r\n",
                  b_alt);
    s_put_body(&sb, m->body);
    ntf_sb_printf(&sb, "\r\n--%s\r\nContent-Type: " S_CT_HTML "\r\n"
                       "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                  b_alt);
    s_put_qp(&sb, m->html);
    ntf_sb_printf(&sb, "\r\n--%s--\r\n", b_alt);
    for (i = 0; i < m->n_images; i++) {
        const struct ntf_mail_image *im = &m->images[i];

        ntf_sb_printf(&sb, "\r\n--%s\r\nContent-Type: image/png\r\n"
                           "Content-Transfer-Encoding: base64\r\n"
                           "Content-ID: <%s>\r\n"
                           "Content-Disposition: inline; filename=\"%s\"\r\n\r\n",
                      b_rel, im->cid, im->filename);
        s_put_base64(&sb, im->data, im->len);
    }
    ntf_sb_printf(&sb, "\r\n--%s--\r\n", b_rel);
    return ntf_sb_take(&sb, len);
}

char *
ntf_mail_build(const struct ntf_mail *m, size_t *len)
{
    struct ntf_sb sb;

    if (m->html != NULL) {
        return s_images_ok(m) ? s_build_multipart(m, len) : NULL;
    }
    ntf_sb_init(&sb, NTF_MAIL_MAX);
    if (s_put_headers(&sb, m, S_CT_TEXT, "8bit") != 0) {
        ntf_sb_fini(&sb);
        return NULL;
    }
    ntf_sb_puts(&sb, "\r\n");
    s_put_body(&sb, m->body);
    return ntf_sb_take(&sb, len);
}

int
ntf_mkdirs(const char *dir)
{
    char path[1024];
    struct stat st;
    size_t i;
    size_t n = esc_strlcpy(path, dir, sizeof(path));

    if (n == 0 || n >= sizeof(path)) {
        esc_log_error("bad directory name len=%zu", n);
        return -1;
    }
    for (i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0') {
            continue;
        }
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            esc_log_error("cannot create directory path=%s err=\"%s\"", path, strerror(errno));
            return -1;
        }
        path[i] = dir[i];
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        esc_log_error("not a directory path=%s", dir);
        return -1;
    }
    return 0;
}

int
ntf_write_file(const char *path, const char *buf, size_t len)
{
    char tmp[1100];
    size_t off = 0;
    int fd;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp)) {
        esc_log_error("path too long path=%s", path);
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        esc_log_error("cannot write path=%s err=\"%s\"", tmp, strerror(errno));
        return -1;
    }
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            esc_log_error("cannot write path=%s err=\"%s\"", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        esc_log_error("cannot write path=%s err=\"%s\"", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

struct s_reader {
    const char *p;
    size_t len;
    size_t off;
};

static size_t
s_read(char *dst, size_t size, size_t nmemb, void *ud)
{
    struct s_reader *r = ud;
    size_t room = size * nmemb;
    size_t n = r->len - r->off;

    if (n > room) {
        n = room;
    }
    memcpy(dst, r->p + r->off, n);
    r->off += n;
    return n;
}

static esc_rc
s_curl_rc(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        return ESC_RETRY;
    default:
        return ESC_ERR;
    }
}

/* Splits a header block (each header ending in CRLF, continuations starting with SP) into one
 * curl_slist entry per header, folds kept inside the entry. NULL on allocation failure. */
static struct curl_slist *
s_header_list(const char *block)
{
    struct curl_slist *list = NULL;
    const char *p = block;

    while (*p != '\0') {
        const char *e = p;
        struct curl_slist *next;
        char *one;

        while ((e = strstr(e, "\r\n")) != NULL && (e[2] == ' ' || e[2] == '\t')) {
            e += 2;
        }
        if (e == NULL) {
            e = p + strlen(p);
        }
        one = esc_strndup(p, (size_t)(e - p));
        next = curl_slist_append(list, one);
        esc_free(one);
        if (next == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = next;
        p = *e != '\0' ? e + 2 : e;
    }
    return list;
}

/* Sets the part's extra headers (curl takes the list). */
static CURLcode
s_part_headers(curl_mimepart *part, const char *h1, const char *h2)
{
    struct curl_slist *l = curl_slist_append(NULL, h1);
    struct curl_slist *next;

    if (l == NULL) {
        return CURLE_OUT_OF_MEMORY;
    }
    if (h2 != NULL) {
        next = curl_slist_append(l, h2);
        if (next == NULL) {
            curl_slist_free_all(l);
            return CURLE_OUT_OF_MEMORY;
        }
        l = next;
    }
    return curl_mime_headers(part, l, 1);
}

/* Builds on h the MIME structure of s_build_multipart with libcurl: the top level is
 * multipart/related through the Content-Type in hdrs (the message headers, CURLOPT_HTTPHEADER
 * for SMTP), libcurl adds the boundaries and does the quoted-printable and base64 encoding.
 * text and html are the parts' contents with CRLF line ends (libcurl copies them). Returns
 * the structure (caller frees with curl_mime_free after the transfer) or NULL (logged). */
static curl_mime *
s_curl_mime(CURL *h, const struct ntf_mail *m, const char *text, size_t text_len,
            const char *html, size_t html_len)
{
    curl_mime *top = curl_mime_init(h);
    curl_mime *alt = curl_mime_init(h);
    curl_mimepart *part;
    CURLcode rc = CURLE_OK;
    char hdr[2][160];
    size_t i;

    if (top == NULL || alt == NULL) {
        rc = CURLE_OUT_OF_MEMORY;
        goto out;
    }
    part = curl_mime_addpart(alt);
    rc = part == NULL ? CURLE_OUT_OF_MEMORY : curl_mime_data(part, text, text_len);
    rc = rc != CURLE_OK ? rc : curl_mime_type(part, S_CT_TEXT);
    rc = rc != CURLE_OK ? rc : curl_mime_encoder(part, "8bit");
    if (rc == CURLE_OK) {
        part = curl_mime_addpart(alt);
        rc = part == NULL ? CURLE_OUT_OF_MEMORY : curl_mime_data(part, html, html_len);
    }
    rc = rc != CURLE_OK ? rc : curl_mime_type(part, S_CT_HTML);
    rc = rc != CURLE_OK ? rc : curl_mime_encoder(part, "quoted-printable");
    if (rc == CURLE_OK) {
        part = curl_mime_addpart(top);
        rc = part == NULL ? CURLE_OUT_OF_MEMORY : curl_mime_subparts(part, alt);
    }
    if (rc != CURLE_OK) {
        goto out;
    }
    alt = NULL; /* owned by top now */
    rc = curl_mime_type(part, "multipart/alternative");
    for (i = 0; rc == CURLE_OK && i < m->n_images; i++) {
        const struct ntf_mail_image *im = &m->images[i];

        part = curl_mime_addpart(top);
        rc = part == NULL ? CURLE_OUT_OF_MEMORY
                          : curl_mime_data(part, (const char *)im->data, im->len);
        rc = rc != CURLE_OK ? rc : curl_mime_type(part, "image/png");
        rc = rc != CURLE_OK ? rc : curl_mime_encoder(part, "base64");
        snprintf(hdr[0], sizeof(hdr[0]), "Content-ID: <%s>", im->cid);
        snprintf(hdr[1], sizeof(hdr[1]), "Content-Disposition: inline; filename=\"%s\"",
                 im->filename);
        rc = rc != CURLE_OK ? rc : s_part_headers(part, hdr[0], hdr[1]);
    }

out:
    if (rc != CURLE_OK) {
        esc_log_error("cannot build mime structure err=\"%s\"", curl_easy_strerror(rc));
        curl_mime_free(alt);
        curl_mime_free(top);
        return NULL;
    }
    return top;
}

/* What to send: raw bytes (msg) or a mail whose MIME structure libcurl builds (m). */
struct s_payload {
    const char *msg;
    size_t len;
    const struct ntf_mail *m;
};

static esc_rc
s_smtp(const struct ntf_cfg *cfg, const char *from_addr, const char *const *rcpt,
       size_t n_rcpt, const struct s_payload *pl)
{
    struct s_reader rd = { pl->msg, pl->len, 0 };
    struct curl_slist *rl = NULL;
    struct curl_slist *hl = NULL;
    curl_mime *mime = NULL;
    struct ntf_sb hb;
    struct ntf_sb text;
    struct ntf_sb html;
    char errbuf[CURL_ERROR_SIZE];
    char qerr[256];
    char addr[S_ADDR_MAX + 2];
    char *password = NULL;
    CURL *h = NULL;
    CURLcode crc;
    long code = 0;
    esc_rc rc = ESC_ERR;
    size_t i;

    ntf_sb_init(&hb, NTF_MAIL_MAX);
    ntf_sb_init(&text, NTF_MAIL_MAX);
    ntf_sb_init(&html, NTF_MAIL_MAX);
    if (cfg->smtp_password_env[0] != '\0' || cfg->smtp_password_file[0] != '\0') {
        password = esc_secret_load(cfg->smtp_password_env, cfg->smtp_password_file,
                                   "smtp password");
        if (password == NULL) {
            goto out;
        }
    }
    h = curl_easy_init();
    if (h == NULL) {
        esc_log_error("curl_easy_init failed");
        goto out;
    }
    errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, cfg->smtp_url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)cfg->smtp_timeout_ms);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (strcmp(cfg->smtp_tls, "starttls") == 0) {
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    }
    else if (strcmp(cfg->smtp_tls, "none") == 0) {
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_NONE);
    }
    if (cfg->smtp_ca_file[0] != '\0') {
        curl_easy_setopt(h, CURLOPT_CAINFO, cfg->smtp_ca_file);
    }
    if (cfg->smtp_username[0] != '\0') {
        curl_easy_setopt(h, CURLOPT_USERNAME, cfg->smtp_username);
    }
    if (password != NULL) {
        curl_easy_setopt(h, CURLOPT_PASSWORD, password);
    }
    snprintf(addr, sizeof(addr), "<%s>", from_addr);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, addr);
    for (i = 0; i < n_rcpt; i++) {
        struct curl_slist *next;

        snprintf(addr, sizeof(addr), "<%s>", rcpt[i]);
        next = curl_slist_append(rl, addr);
        ESC_ASSERT(next != NULL);
        rl = next;
    }
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rl);
    if (pl->m != NULL) {
        if (s_put_headers(&hb, pl->m, S_CT_RELATED, NULL) != 0) {
            goto out;
        }
        s_put_body(&text, pl->m->body);
        s_put_crlf(&html, pl->m->html);
        if (hb.overflow || text.overflow || html.overflow) {
            esc_log_error("message too large max=%d", NTF_MAIL_MAX);
            goto out;
        }
        hl = s_header_list(hb.buf);
        mime = hl != NULL ? s_curl_mime(h, pl->m, text.buf, text.len, html.buf, html.len) : NULL;
        if (mime == NULL) {
            goto out;
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
    }
    else {
        curl_easy_setopt(h, CURLOPT_READFUNCTION, s_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &rd);
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)pl->len);
    }
    crc = curl_easy_perform(h);
    if (crc != CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        esc_log_error("smtp send failed server=%s code=%ld err=%s", cfg->smtp_url, code,
                      esc_log_quote(qerr, sizeof(qerr),
                                    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(crc), 200));
        rc = s_curl_rc(crc);
        goto out;
    }
    rc = ESC_OK;

out:
    curl_easy_cleanup(h);
    curl_mime_free(mime);
    curl_slist_free_all(rl);
    curl_slist_free_all(hl);
    ntf_sb_fini(&hb);
    ntf_sb_fini(&text);
    ntf_sb_fini(&html);
    if (password != NULL) {
        sodium_memzero(password, strlen(password));
        esc_free(password);
    }
    return rc;
}

esc_rc
ntf_mail_send_smtp(const struct ntf_cfg *cfg, const char *from_addr, const char *const *rcpt,
                   size_t n_rcpt, const char *msg, size_t len)
{
    struct s_payload pl = { msg, len, NULL };

    return s_smtp(cfg, from_addr, rcpt, n_rcpt, &pl);
}

esc_rc
ntf_mail_send(const struct ntf_cfg *cfg, const struct ntf_mail *m)
{
    struct s_payload pl = { NULL, 0, NULL };
    char from_addr[S_ADDR_MAX];
    char (*addrs)[S_ADDR_MAX] = NULL;
    const char **rcpt = NULL;
    char *msg;
    size_t n = 0;
    size_t i;
    esc_rc rc = ESC_ERR;

    if (ntf_mail_addr_spec(m->from, from_addr, sizeof(from_addr)) != 0) {
        esc_log_error("invalid from address");
        return ESC_ERR;
    }
    addrs = esc_calloc(m->n_to + 1, sizeof(*addrs));
    rcpt = esc_calloc(m->n_to + 1, sizeof(*rcpt));
    for (i = 0; i < m->n_to; i++) {
        if (ntf_mail_addr_spec(m->to[i], addrs[n], sizeof(addrs[n])) == 0) {
            rcpt[n] = addrs[n];
            n++;
        }
    }
    if (n == 0) {
        esc_log_error("no valid recipient");
        goto out;
    }
    if (m->html != NULL) {
        if (!s_images_ok(m)) {
            goto out;
        }
        pl.m = m;
        rc = s_smtp(cfg, from_addr, rcpt, n, &pl);
        goto out;
    }
    msg = ntf_mail_build(m, &pl.len);
    if (msg != NULL) {
        pl.msg = msg;
        rc = s_smtp(cfg, from_addr, rcpt, n, &pl);
    }
    esc_free(msg);

out:
    esc_free(rcpt);
    esc_free(addrs);
    return rc;
}
