#define ESC_LOG_MODULE "sink.slack"
/* Slack sink ("kind": "slack"): POSTs each alert to a Slack incoming-webhook URL as
 * {"text": <fallback for notifications>, "blocks": [...]} (Block Kit). Every text is a mrkdwn
 * text object; values that come from posts or the config are escaped with Slack's rule (& < >
 * become entities), so a post can neither open a link nor ping @channel (<!channel> needs a
 * literal '<'), and sample links are only made clickable when ntf_url_linkable accepts them.
 * Lengths stay inside Block Kit's limits (3000 characters per section text, 50 blocks): texts
 * are clipped before escaping and escaping at most quintuples them. The URL itself is the
 * secret (Slack puts the token in the path), so only its host is ever logged. Loop thread
 * only. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "sinks/render.h"
#include "sinks/sink.h"
#include "strbuf.h"

#define S_SECTION_MAX 3000 /* Block Kit: characters in one section text */
#define S_BODY_MAX (256 * 1024)

static int
s_init(struct ntf_sink *ins)
{
    if (ntf_sink_url_target(ins->hook->url, ins->target, sizeof(ins->target)) != 0) {
        esc_log_error("slack url not understood sink=%s", ins->name);
        return -1;
    }
    return 0;
}

static void
s_exit(struct ntf_sink *ins)
{
}

/* Takes sb's text (valid UTF-8: built from clipped texts and ASCII) as a JSON string. */
static json_t *
s_take(struct ntf_sb *sb)
{
    size_t len = 0;
    char *text = ntf_sb_take(sb, &len);
    json_t *j;

    ESC_ASSERT(text != NULL && len <= S_SECTION_MAX); /* every piece has its budget below */
    j = json_string(text);
    ESC_ASSERT(j != NULL);
    esc_free(text);
    return j;
}

static json_t *
s_mrkdwn(json_t *text)
{
    json_t *o = json_object();

    json_object_set_new(o, "type", json_string("mrkdwn"));
    json_object_set_new(o, "text", text);
    return o;
}

static json_t *
s_section(json_t *text)
{
    json_t *o = json_object();

    json_object_set_new(o, "type", json_string("section"));
    json_object_set_new(o, "text", s_mrkdwn(text));
    return o;
}

/* A section "*label*\n<escaped value>". */
static json_t *
s_labelled(const char *label, const char *value)
{
    struct ntf_sb sb;

    ntf_sb_init(&sb, 4 * S_SECTION_MAX);
    ntf_sb_puts(&sb, "*");
    ntf_esc_mrkdwn(&sb, label);
    ntf_sb_puts(&sb, "*\n");
    ntf_esc_mrkdwn_max(&sb, value, 2800);
    return s_section(s_take(&sb));
}

/* One sample as a block quote: every line starts with '>' (mrkdwn's quote marker, the only
 * unescaped '>' we send), then the author and, when safe, a link. Budgets: text 1800, author
 * 300, link 600 bytes, inside the 3000 of a section. */
static json_t *
s_sample(const struct ntf_alert_text *t, const struct ntf_text_sample *s)
{
    struct ntf_sb sb;
    char line[NTF_TEXT_SAMPLE_BYTES + 8];
    const char *p = s->text;
    size_t start;

    ntf_sb_init(&sb, 4 * S_SECTION_MAX);
    while (*p != '\0' && sb.len < 1800) {
        size_t n = strcspn(p, "\n");

        memcpy(line, p, n);
        line[n] = '\0';
        ntf_sb_puts(&sb, ">");
        ntf_esc_mrkdwn_max(&sb, line, 1800 - sb.len);
        ntf_sb_puts(&sb, "\n");
        p += n;
        if (*p == '\n') {
            p++;
        }
    }
    if (s->author[0] != '\0' || s->url[0] != '\0') {
        ntf_sb_puts(&sb, "\xe2\x80\x94 ");
        start = sb.len;
        ntf_esc_mrkdwn_max(&sb, s->author, 300);
        if (s->url_ok && ntf_esc_mrkdwn_len(s->url) <= 600) {
            ntf_sb_puts(&sb, sb.len > start ? " \xc2\xb7 <" : "<");
            ntf_esc_mrkdwn(&sb, s->url);
            ntf_sb_puts(&sb, "|");
            ntf_esc_mrkdwn(&sb, t->l_open);
            ntf_sb_puts(&sb, ">");
        }
        else if (s->url[0] != '\0') {
            ntf_sb_puts(&sb, sb.len > start ? " \xc2\xb7 " : "");
            ntf_esc_mrkdwn_max(&sb, s->url, 600);
        }
    }
    return s_section(s_take(&sb));
}

/* The request body for alert n. Caller owns (esc_free); *len is set. */
static char *
s_body(const struct ntf_alert_text *t, const char *alert_id, size_t *len)
{
    json_t *root = json_object();
    json_t *blocks = json_array();
    json_t *fields = json_array();
    json_t *ctx;
    struct ntf_sb sb;
    char idbuf[200];
    char terms[320];
    char *out;
    size_t i;
    size_t n;

    /* fallback text: what notifications and old clients show */
    ntf_sb_init(&sb, 4 * S_SECTION_MAX);
    ntf_esc_mrkdwn_max(&sb, t->title, 1200);
    ntf_sb_puts(&sb, " \xe2\x80\x94 ");
    ntf_esc_mrkdwn_max(&sb, t->summary, 600);
    json_object_set_new(root, "text", s_take(&sb));

    ntf_sb_init(&sb, 4 * S_SECTION_MAX);
    ntf_sb_puts(&sb, t->ended ? ":white_check_mark: *" : ":rotating_light: *");
    ntf_esc_mrkdwn_max(&sb, t->title, 1200);
    ntf_sb_puts(&sb, "*\n");
    ntf_esc_mrkdwn_max(&sb, t->summary, 600);
    json_array_append_new(blocks, s_section(s_take(&sb)));

    ntf_sb_init(&sb, 4 * S_SECTION_MAX);
    ntf_sb_printf(&sb, "*%s*\n", t->l_since);
    ntf_esc_mrkdwn_max(&sb, t->since, 600);
    json_array_append_new(fields, s_mrkdwn(s_take(&sb)));
    if (t->terms[0] != '\0') {
        ntf_sb_init(&sb, 4 * S_SECTION_MAX);
        ntf_sb_printf(&sb, "*%s*\n", t->l_terms);
        ntf_esc_mrkdwn_max(&sb, ntf_text_clip(terms, sizeof(terms), t->terms, 300, 0), 1500);
        json_array_append_new(fields, s_mrkdwn(s_take(&sb)));
    }
    ctx = json_object();
    json_object_set_new(ctx, "type", json_string("section"));
    json_object_set_new(ctx, "fields", fields);
    json_array_append_new(blocks, ctx);
    if (t->query[0] != '\0') {
        json_array_append_new(blocks, s_labelled(t->l_query, t->query));
    }
    if (t->n_samples > 0) {
        json_t *div = json_object();

        json_object_set_new(div, "type", json_string("divider"));
        json_array_append_new(blocks, div);
        ntf_sb_init(&sb, 256);
        ntf_sb_printf(&sb, "*%s*", t->l_samples);
        json_array_append_new(blocks, s_section(s_take(&sb)));
        for (i = 0; i < t->n_samples; i++) {
            json_array_append_new(blocks, s_sample(t, &t->samples[i]));
        }
    }
    ntf_sb_init(&sb, 4 * S_SECTION_MAX);
    ntf_esc_mrkdwn(&sb, t->l_footer);
    ntf_sb_puts(&sb, " ");
    ntf_esc_mrkdwn(&sb, t->deployment);
    ntf_sb_puts(&sb, " \xc2\xb7 ");
    ntf_esc_mrkdwn_max(&sb, ntf_text_clip(idbuf, sizeof(idbuf), alert_id, 180, 0), 900);
    ctx = json_object();
    json_object_set_new(ctx, "type", json_string("context"));
    json_object_set_new(ctx, "elements", json_array());
    json_array_append_new(json_object_get(ctx, "elements"), s_mrkdwn(s_take(&sb)));
    json_array_append_new(blocks, ctx);
    json_object_set_new(root, "blocks", blocks);

    n = json_dumpb(root, NULL, 0, JSON_COMPACT);
    ESC_ASSERT(n > 0);
    out = esc_malloc(n + 1);
    ESC_ASSERT(json_dumpb(root, out, n, JSON_COMPACT) == n);
    out[n] = '\0';
    json_decref(root);
    *len = n;
    return out;
}

static esc_rc
s_prepare(struct ntf_sink *ins, const struct ntf_notice *n, struct ntf_req *req)
{
    struct ntf_alert_text *t = esc_malloc(sizeof(*t));

    ntf_alert_text_build(n->alert, ins->team, n->deployment, t);
    req->kind = NTF_REQ_HTTP;
    esc_strlcpy(req->url, ins->hook->url, sizeof(req->url));
    req->timeout_ms = ins->cfg->webhook_timeout_ms;
    ntf_req_header(req, "Content-Type: application/json; charset=utf-8");
    req->body = s_body(t, n->alert->id, &req->body_len);
    esc_free(t);
    if (req->body_len > S_BODY_MAX) {
        esc_log_error("slack message too large sink=%s bytes=%zu", ins->name, req->body_len);
        return ESC_INVALID;
    }
    return ESC_OK;
}

const struct ntf_sink_plugin sink_slack_plugin = {
    .name = "slack",
    .description = "POST each alert to a Slack incoming webhook (Block Kit, mrkdwn escaped)",
    .init = s_init,
    .prepare = s_prepare,
    .exit = s_exit,
};
