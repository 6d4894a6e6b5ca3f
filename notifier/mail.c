#define ESC_LOG_MODULE "mail"
/* Digest e-mail: builds an RFC 5322 message and hands it to a file or to an SMTP server.
 * Header injection is prevented at one place: every header value from outside (team names,
 * subjects, addresses, the From of the config) goes through ntf_mail_header_clean, which turns
 * CR, LF and every other control byte into a space, and non-ASCII text is carried in RFC 2047
 * encoded-words, whose alphabet has no line breaks. The body is sent as UTF-8 "8bit" with CRLF
 * line ends and lines kept under the 998-byte limit. SMTP is libcurl's (dot-stuffing and
 * STARTTLS included); the password is loaded only for the transfer, never logged, and wiped
 * afterwards. Single-threaded. */
#include <errno.h>
#include <fcntl.h>
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

static void
s_put_body(struct ntf_sb *sb, const char *body)
{
    size_t col = 0;
    size_t i;

    for (i = 0; body[i] != '\0'; i++) {
        if (body[i] == '\r') {
            continue;
        }
        if (body[i] == '\n' || col == S_LINE_MAX) {
            ntf_sb_puts(sb, "\r\n");
            col = 0;
            if (body[i] == '\n') {
                continue;
            }
        }
        ntf_sb_add(sb, &body[i], 1);
        col++;
    }
    if (col > 0) {
        ntf_sb_puts(sb, "\r\n");
    }
}

char *
ntf_mail_build(const struct ntf_mail *m, size_t *len)
{
    char from_addr[S_ADDR_MAX];
    char addr[S_ADDR_MAX];
    char hint[96];
    char domain[S_ADDR_MAX];
    unsigned char rnd[6];
    char rnd_hex[sizeof(rnd) * 2 + 1];
    struct ntf_sb sb;
    char *name;
    char *subject;
    size_t col;
    size_t n_to = 0;
    size_t i;

    if (ntf_mail_addr_spec(m->from, from_addr, sizeof(from_addr)) != 0) {
        esc_log_error("invalid from address");
        return NULL;
    }
    ntf_sb_init(&sb, NTF_MAIL_MAX);
    name = s_display_name(m->from);
    ntf_sb_puts(&sb, "From: ");
    if (name[0] != '\0') {
        s_put_display_name(&sb, name);
        ntf_sb_printf(&sb, " <%s>\r\n", from_addr);
    }
    else {
        ntf_sb_printf(&sb, "%s\r\n", from_addr);
    }
    esc_free(name);

    ntf_sb_puts(&sb, "To: ");
    col = 4;
    for (i = 0; i < m->n_to; i++) {
        if (ntf_mail_addr_spec(m->to[i], addr, sizeof(addr)) != 0) {
            esc_log_warn("skipped invalid recipient index=%zu", i);
            continue;
        }
        if (n_to > 0 && col + 2 + strlen(addr) > S_FOLD_AT) {
            ntf_sb_puts(&sb, ",\r\n ");
            col = 1;
        }
        else if (n_to > 0) {
            ntf_sb_puts(&sb, ", ");
            col += 2;
        }
        ntf_sb_puts(&sb, addr);
        col += strlen(addr);
        n_to++;
    }
    if (n_to == 0) {
        ntf_sb_puts(&sb, "undisclosed-recipients:;");
    }
    ntf_sb_puts(&sb, "\r\n");

    subject = ntf_mail_encode_words(m->subject);
    ntf_sb_printf(&sb, "Subject: %s\r\n", subject);
    esc_free(subject);

    s_put_date(&sb, m->date);
    s_id_part(hint, sizeof(hint), m->id_hint != NULL ? m->id_hint : "mail");
    s_id_part(domain, sizeof(domain), strchr(from_addr, '@') + 1);
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(rnd_hex, sizeof(rnd_hex), rnd, sizeof(rnd));
    ntf_sb_printf(&sb, "Message-ID: <escucha.%s.%lld.%s@%s>\r\n", hint, (long long)m->date,
                  rnd_hex, domain);
    ntf_sb_puts(&sb, "MIME-Version: 1.0\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Transfer-Encoding: 8bit\r\n"
                     "User-Agent: escucha/" ESC_VERSION "\r\n"
                     "\r\n");
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

esc_rc
ntf_mail_send_smtp(const struct ntf_cfg *cfg, const char *from_addr, const char *const *rcpt,
                   size_t n_rcpt, const char *msg, size_t len)
{
    struct s_reader rd = { msg, len, 0 };
    struct curl_slist *rl = NULL;
    char errbuf[CURL_ERROR_SIZE];
    char qerr[256];
    char addr[S_ADDR_MAX + 2];
    char *password = NULL;
    CURL *h = NULL;
    CURLcode crc;
    long code = 0;
    esc_rc rc = ESC_ERR;
    size_t i;

    if (cfg->smtp_password_env[0] != '\0' || cfg->smtp_password_file[0] != '\0') {
        password = esc_secret_load(cfg->smtp_password_env, cfg->smtp_password_file,
                                   "smtp password");
        if (password == NULL) {
            return ESC_ERR;
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
    if (strncmp(cfg->smtp_url, "smtp://", 7) == 0) {
        /* a password is never sent in clear: STARTTLS becomes mandatory with one */
        curl_easy_setopt(h, CURLOPT_USE_SSL,
                         (long)(password != NULL ? CURLUSESSL_ALL : CURLUSESSL_TRY));
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
    curl_easy_setopt(h, CURLOPT_READFUNCTION, s_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &rd);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
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
    curl_slist_free_all(rl);
    curl_easy_cleanup(h);
    if (password != NULL) {
        sodium_memzero(password, strlen(password));
        esc_free(password);
    }
    return rc;
}
