#define ESC_LOG_MODULE "sink.email"
/* Alert e-mail sink: one instance per team listed in notifier.alert_email_teams, writing to the
 * team's recipients. Each alert becomes a multipart/alternative message (text/plain and a
 * simple table-based text/html, both UTF-8 in base64, so no line of a post can reach the SMTP
 * dialogue or break the MIME structure). Header injection is impossible by construction: the
 * only header values built from outside text (Subject, the From display name) are cleaned of
 * control characters by ntf_text_clip and always carried as RFC 2047 encoded-words, whose
 * alphabet has no CR, LF or ':'; addresses are checked by ntf_mail_addr_spec. In the HTML part
 * every value is escaped (& < > " '), and links are only made for URLs ntf_url_linkable
 * accepts. The message goes over SMTP (notifier.smtp_url, TLS/AUTH as for digests) through the
 * host's transfers, or, without smtp_url, to <outbox>/alert-<team>-<delivery id>.eml (same name
 * on a retry, so a retried write never makes a second file). Loop thread only. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "mail.h"
#include "sinks/render.h"
#include "sinks/sink.h"
#include "strbuf.h"

#define S_MSG_MAX (512 * 1024)
#define S_WORD_RAW 45 /* input bytes per encoded-word: 60 base64 characters, 72 in all */
#define S_B64_LINE 76

struct s_ctx {
    char **rcpt;            /* recipient addresses (addr-spec), owned */
    size_t n_rcpt;
    char from_addr[256];
    char from_name[256];    /* display name, cleaned, may be "" */
    char domain[256];       /* for Message-ID */
    char *password;         /* SMTP password or NULL; wiped on exit */
};

static void
s_exit(struct ntf_sink *ins)
{
    struct s_ctx *c = ins->ctx;
    size_t i;

    if (c == NULL) {
        return;
    }
    for (i = 0; i < c->n_rcpt; i++) {
        esc_free(c->rcpt[i]);
    }
    esc_free(c->rcpt);
    if (c->password != NULL) {
        sodium_memzero(c->password, strlen(c->password));
        esc_free(c->password);
    }
    esc_free(c);
    ins->ctx = NULL;
}

/* The display name of "Name <a@b>" (quotes removed), cleaned. */
static void
s_display_name(const char *mailbox, char *out, size_t outsz)
{
    char raw[256];
    const char *lt = strrchr(mailbox, '<');
    size_t n = lt != NULL ? (size_t)(lt - mailbox) : 0;
    size_t i;
    size_t o = 0;

    if (n >= sizeof(raw)) {
        n = sizeof(raw) - 1;
    }
    for (i = 0; i < n; i++) {
        if (mailbox[i] != '"') {
            raw[o++] = mailbox[i];
        }
    }
    while (o > 0 && raw[o - 1] == ' ') {
        o--;
    }
    raw[o] = '\0';
    ntf_text_clip(out, outsz, raw + strspn(raw, " "), outsz - 8, 0);
}

static int
s_init(struct ntf_sink *ins)
{
    const struct ntf_cfg *cfg = ins->cfg;
    struct s_ctx *c = esc_calloc(1, sizeof(*c));
    char addr[256];
    const char *at;
    size_t i;
    size_t k;

    ins->ctx = c;
    if (ntf_mail_addr_spec(cfg->from, c->from_addr, sizeof(c->from_addr)) != 0) {
        esc_log_error("alert mail sender not valid sink=%s", ins->name);
        goto fail;
    }
    s_display_name(cfg->from, c->from_name, sizeof(c->from_name));
    at = strrchr(c->from_addr, '@');
    for (i = 0, k = 0; at != NULL && at[1 + i] != '\0' && k + 1 < sizeof(c->domain); i++) {
        char ch = at[1 + i];

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
            || ch == '.' || ch == '-') {
            c->domain[k++] = ch;
        }
    }
    if (k == 0) {
        esc_strlcpy(c->domain, "escucha.invalid", sizeof(c->domain));
    }
    c->rcpt = esc_calloc(ins->team->n_recipients + 1, sizeof(*c->rcpt));
    for (i = 0; i < ins->team->n_recipients; i++) {
        if (ntf_mail_addr_spec(ins->team->recipients[i], addr, sizeof(addr)) != 0) {
            esc_log_warn("skipped invalid alert mail recipient sink=%s index=%zu", ins->name, i);
            continue;
        }
        c->rcpt[c->n_rcpt++] = esc_strdup(addr);
    }
    if (c->n_rcpt == 0) {
        esc_log_error("alert mail has no valid recipient sink=%s team=%s", ins->name,
                      ins->team->id);
        goto fail;
    }
    if (cfg->smtp_url[0] != '\0') {
        if (ntf_sink_url_target(cfg->smtp_url, ins->target, sizeof(ins->target)) != 0) {
            esc_log_error("smtp url not understood sink=%s", ins->name);
            goto fail;
        }
        if (cfg->smtp_password_env[0] != '\0' || cfg->smtp_password_file[0] != '\0') {
            c->password = esc_secret_load(cfg->smtp_password_env, cfg->smtp_password_file,
                                          "smtp password");
            if (c->password == NULL) {
                esc_log_error("smtp password not available sink=%s", ins->name);
                goto fail;
            }
        }
    }
    else {
        esc_strlcpy(ins->target, "outbox", sizeof(ins->target));
    }
    return 0;

fail:
    s_exit(ins);
    return -1;
}

/* Appends s (already cleaned: no control characters) as RFC 2047 encoded-words, folded. */
static void
s_words(struct ntf_sb *sb, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    size_t i = 0;
    char b64[sodium_base64_ENCODED_LEN(S_WORD_RAW + 4, sodium_base64_VARIANT_ORIGINAL)];

    while (i < n) {
        size_t take = n - i < S_WORD_RAW ? n - i : S_WORD_RAW;

        while (take > 0 && i + take < n && (p[i + take] & 0xc0) == 0x80) {
            take--; /* never split a UTF-8 sequence across two words */
        }
        sodium_bin2base64(b64, sizeof(b64), p + i, take, sodium_base64_VARIANT_ORIGINAL);
        ntf_sb_printf(sb, "%s=?UTF-8?B?%s?=", i > 0 ? "\r\n " : "", b64);
        i += take;
    }
}

/* Appends len bytes of data in base64, 76 characters per line, CRLF line ends. */
static void
s_base64(struct ntf_sb *sb, const char *data, size_t len)
{
    size_t chunk = S_B64_LINE / 4 * 3; /* 57 input bytes per line */
    char line[S_B64_LINE + 4];
    size_t i;

    for (i = 0; i < len; i += chunk) {
        size_t take = len - i < chunk ? len - i : chunk;

        sodium_bin2base64(line, sizeof(line), (const unsigned char *)data + i, take,
                          sodium_base64_VARIANT_ORIGINAL);
        ntf_sb_printf(sb, "%s\r\n", line);
    }
}

static void
s_date(struct ntf_sb *sb, int64_t ms)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    ntf_sb_printf(sb, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday],
                  tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
}

/* The text/plain part. Caller owns. */
static char *
s_text(const struct ntf_alert_text *t, const char *alert_id, size_t *len)
{
    struct ntf_sb sb;
    char idbuf[200];
    size_t i;

    ntf_sb_init(&sb, S_MSG_MAX);
    ntf_sb_printf(&sb, "%s\n\n%s\n%s: %s\n", t->title, t->summary, t->l_since, t->since);
    if (t->query[0] != '\0') {
        ntf_sb_printf(&sb, "%s: %s\n", t->l_query, t->query);
    }
    if (t->terms[0] != '\0') {
        ntf_sb_printf(&sb, "%s: %s\n", t->l_terms, t->terms);
    }
    if (t->n_samples > 0) {
        ntf_sb_printf(&sb, "\n%s:\n", t->l_samples);
    }
    for (i = 0; i < t->n_samples; i++) {
        const struct ntf_text_sample *s = &t->samples[i];

        ntf_sb_printf(&sb, "\n- %s\n", s->text);
        if (s->author[0] != '\0') {
            ntf_sb_printf(&sb, "  \xe2\x80\x94 %s\n", s->author);
        }
        if (s->url[0] != '\0') {
            ntf_sb_printf(&sb, "  %s\n", s->url);
        }
    }
    ntf_sb_printf(&sb, "\n-- \n%s %s \xc2\xb7 %s\n", t->l_footer, t->deployment,
                  ntf_text_clip(idbuf, sizeof(idbuf), alert_id, 180, 0));
    return ntf_sb_take(&sb, len);
}

/* Appends s escaped for HTML with its newlines as <br>. */
static void
s_html_lines(struct ntf_sb *sb, const char *s)
{
    char line[NTF_TEXT_SAMPLE_BYTES + 8];

    while (*s != '\0') {
        size_t n = strcspn(s, "\n");

        if (n >= sizeof(line)) {
            n = sizeof(line) - 1;
        }
        memcpy(line, s, n);
        line[n] = '\0';
        ntf_esc_html(sb, line);
        s += n;
        if (*s == '\n') {
            ntf_sb_puts(sb, "<br>");
            s++;
        }
    }
}

static void
s_html_row(struct ntf_sb *sb, const char *label, const char *value)
{
    ntf_sb_puts(sb, "<tr><td style=\"padding:4px 12px 4px 0;color:#555;vertical-align:top;"
                    "white-space:nowrap\">");
    ntf_esc_html(sb, label);
    ntf_sb_puts(sb, "</td><td style=\"padding:4px 0\">");
    ntf_esc_html(sb, value);
    ntf_sb_puts(sb, "</td></tr>\n");
}

/* The text/html part: one centred table, inline styles only (what mail clients keep). */
static char *
s_html(const struct ntf_alert_text *t, const char *alert_id, size_t *len)
{
    struct ntf_sb sb;
    char idbuf[200];
    size_t i;

    ntf_sb_init(&sb, S_MSG_MAX);
    ntf_sb_printf(&sb, "<!DOCTYPE html>\n<html lang=\"%s\"><head><meta charset=\"utf-8\">"
                       "<meta name=\"viewport\" content=\"width=device-width\"><title>",
                  t->es ? "es" : "en");
    ntf_esc_html(&sb, t->title);
    ntf_sb_puts(&sb, "</title></head>\n<body style=\"margin:0;padding:0;background:#f4f4f4\">\n"
                     "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" "
                     "cellspacing=\"0\" style=\"background:#f4f4f4\"><tr><td align=\"center\" "
                     "style=\"padding:16px\">\n<table role=\"presentation\" width=\"100%\" "
                     "cellpadding=\"0\" cellspacing=\"0\" style=\"max-width:600px;"
                     "background:#ffffff;font-family:Arial,Helvetica,sans-serif;font-size:15px;"
                     "color:#222;line-height:1.4\">\n");
    ntf_sb_printf(&sb, "<tr><td style=\"padding:16px;background:%s;color:#ffffff;"
                       "font-size:20px;font-weight:bold\">",
                  t->ended ? "#2e7d32" : "#c62828");
    ntf_esc_html(&sb, t->title);
    ntf_sb_puts(&sb, "</td></tr>\n<tr><td style=\"padding:16px\">\n<p style=\"margin:0 0 12px 0;"
                     "font-size:17px\">");
    ntf_esc_html(&sb, t->summary);
    ntf_sb_puts(&sb, "</p>\n<table role=\"presentation\" cellpadding=\"0\" cellspacing=\"0\">\n");
    s_html_row(&sb, t->l_since, t->since);
    if (t->query[0] != '\0') {
        s_html_row(&sb, t->l_query, t->query);
    }
    if (t->terms[0] != '\0') {
        s_html_row(&sb, t->l_terms, t->terms);
    }
    ntf_sb_puts(&sb, "</table>\n");
    if (t->n_samples > 0) {
        ntf_sb_puts(&sb, "<h3 style=\"margin:20px 0 8px 0;font-size:16px\">");
        ntf_esc_html(&sb, t->l_samples);
        ntf_sb_puts(&sb, "</h3>\n");
    }
    for (i = 0; i < t->n_samples; i++) {
        const struct ntf_text_sample *s = &t->samples[i];

        ntf_sb_puts(&sb, "<div style=\"margin:0 0 12px 0;padding:8px 12px;"
                         "border-left:4px solid #bbbbbb;background:#fafafa\">");
        s_html_lines(&sb, s->text);
        if (s->author[0] != '\0' || s->url_ok) {
            ntf_sb_puts(&sb, "<br><span style=\"color:#666;font-size:13px\">");
            if (s->author[0] != '\0') {
                ntf_sb_puts(&sb, "\xe2\x80\x94 ");
                ntf_esc_html(&sb, s->author);
            }
            if (s->url_ok) {
                ntf_sb_puts(&sb, s->author[0] != '\0' ? " \xc2\xb7 <a href=\"" : "<a href=\"");
                ntf_esc_html(&sb, s->url);
                ntf_sb_puts(&sb, "\" style=\"color:#1565c0\">");
                ntf_esc_html(&sb, t->l_open);
                ntf_sb_puts(&sb, "</a>");
            }
            ntf_sb_puts(&sb, "</span>");
        }
        ntf_sb_puts(&sb, "</div>\n");
    }
    ntf_sb_puts(&sb, "</td></tr>\n<tr><td style=\"padding:12px 16px;color:#888;font-size:12px;"
                     "border-top:1px solid #eeeeee\">");
    ntf_esc_html(&sb, t->l_footer);
    ntf_sb_puts(&sb, " ");
    ntf_esc_html(&sb, t->deployment);
    ntf_sb_puts(&sb, " \xc2\xb7 ");
    ntf_esc_html(&sb, ntf_text_clip(idbuf, sizeof(idbuf), alert_id, 180, 0));
    ntf_sb_puts(&sb, "</td></tr>\n</table>\n</td></tr></table>\n</body></html>\n");
    return ntf_sb_take(&sb, len);
}

/* The whole RFC 5322 message, CRLF line ends. Caller owns. */
static char *
s_message(const struct ntf_sink *ins, const struct ntf_notice *n, const struct ntf_alert_text *t,
          size_t *len)
{
    const struct s_ctx *c = ins->ctx;
    char subject[800];
    struct ntf_sb sb;
    char *text;
    char *html;
    size_t text_len = 0;
    size_t html_len = 0;
    size_t i;

    text = s_text(t, n->alert->id, &text_len);
    html = s_html(t, n->alert->id, &html_len);
    if (text == NULL || html == NULL) {
        esc_free(text);
        esc_free(html);
        return NULL;
    }
    ntf_sb_init(&sb, S_MSG_MAX);
    ntf_sb_puts(&sb, "From: ");
    if (c->from_name[0] != '\0') {
        s_words(&sb, c->from_name);
        ntf_sb_printf(&sb, " <%s>\r\n", c->from_addr);
    }
    else {
        ntf_sb_printf(&sb, "%s\r\n", c->from_addr);
    }
    ntf_sb_puts(&sb, "To: ");
    for (i = 0; i < c->n_rcpt; i++) {
        ntf_sb_printf(&sb, "%s%s", i > 0 ? ",\r\n " : "", c->rcpt[i]);
    }
    ntf_sb_puts(&sb, "\r\nSubject: ");
    snprintf(subject, sizeof(subject), "[escucha] %s \xe2\x80\x94 %s", t->title, t->summary);
    s_words(&sb, subject);
    ntf_sb_puts(&sb, "\r\n");
    s_date(&sb, n->now_ms);
    ntf_sb_printf(&sb, "Message-ID: <escucha.alert.%s@%s>\r\n", n->delivery_id, c->domain);
    ntf_sb_printf(&sb, "MIME-Version: 1.0\r\n"
                       "Auto-Submitted: auto-generated\r\n"
                       "User-Agent: escucha/" ESC_VERSION "\r\n"
                       "Content-Type: multipart/alternative; boundary=\"=_escucha_%s\"\r\n"
                       "\r\n"
                       "This is a MIME message.\r\n"
                       "\r\n--=_escucha_%s\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Content-Transfer-Encoding: base64\r\n\r\n",
                  n->delivery_id, n->delivery_id);
    s_base64(&sb, text, text_len);
    ntf_sb_printf(&sb, "\r\n--=_escucha_%s\r\n"
                       "Content-Type: text/html; charset=utf-8\r\n"
                       "Content-Transfer-Encoding: base64\r\n\r\n",
                  n->delivery_id);
    s_base64(&sb, html, html_len);
    ntf_sb_printf(&sb, "\r\n--=_escucha_%s--\r\n", n->delivery_id);
    esc_free(text);
    esc_free(html);
    return ntf_sb_take(&sb, len);
}

static esc_rc
s_prepare(struct ntf_sink *ins, const struct ntf_notice *n, struct ntf_req *req)
{
    const struct s_ctx *c = ins->ctx;
    struct ntf_alert_text *t = esc_malloc(sizeof(*t));
    char path[1024];
    size_t len = 0;
    char *msg;
    size_t i;

    ntf_alert_text_build(n->alert, ins->team, n->deployment, t);
    msg = s_message(ins, n, t, &len);
    esc_free(t);
    if (msg == NULL) {
        esc_log_error("alert mail could not be built sink=%s", ins->name);
        return ESC_INVALID;
    }
    if (ins->cfg->smtp_url[0] == '\0') {
        req->kind = NTF_REQ_DONE;
        snprintf(path, sizeof(path), "%s/alert-%s-%s.eml", ins->cfg->outbox, ins->team->id,
                 n->delivery_id);
        if (ntf_mkdirs(ins->cfg->outbox) != 0 || ntf_write_file(path, msg, len) != 0) {
            req->done_rc = ESC_RETRY; /* a full or read-only disk may recover */
            esc_strlcpy(req->done_detail, "err=\"outbox not writable\"",
                        sizeof(req->done_detail));
        }
        else {
            req->done_rc = ESC_OK;
            esc_strlcpy(req->done_detail, "outbox", sizeof(req->done_detail));
        }
        esc_free(msg);
        return ESC_OK;
    }
    req->kind = NTF_REQ_SMTP;
    esc_strlcpy(req->url, ins->cfg->smtp_url, sizeof(req->url));
    snprintf(req->mail_from, sizeof(req->mail_from), "<%s>", c->from_addr);
    for (i = 0; i < c->n_rcpt; i++) {
        ntf_req_rcpt(req, c->rcpt[i]);
    }
    req->username = ins->cfg->smtp_username[0] != '\0' ? ins->cfg->smtp_username : NULL;
    req->password = c->password;
    req->smtp_tls = ins->cfg->smtp_tls;
    req->ca_file = ins->cfg->smtp_ca_file;
    req->timeout_ms = ins->cfg->smtp_timeout_ms;
    req->body = msg;
    req->body_len = len;
    return ESC_OK;
}

const struct ntf_sink_plugin sink_email_plugin = {
    .name = "email",
    .description = "e-mail each alert to the team's recipients (SMTP, or .eml in the outbox)",
    .init = s_init,
    .prepare = s_prepare,
    .exit = s_exit,
};
