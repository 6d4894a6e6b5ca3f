#define ESC_LOG_MODULE "sink.teams"
/* Microsoft Teams sink ("kind": "teams"): POSTs each alert to a Teams incoming webhook (or a
 * Workflows "post to a channel when a webhook request is received" URL) as a message whose one
 * attachment is an Adaptive Card (contentType application/vnd.microsoft.card.adaptive, card
 * version 1.4). Text that comes from posts or the config is only ever put in TextRun elements
 * of RichTextBlocks: a TextRun is plain text (no Markdown, no HTML), so a post cannot add
 * links, images or formatting; JSON escaping is jansson's. Our own labels are TextBlocks. A
 * sample's link becomes an Action.OpenUrl only when ntf_url_linkable accepts it. Cards stay far
 * below Teams' 28 KB message limit (texts are clipped in render.c). The URL holds the
 * webhook's secret, so only its host is logged. Loop thread only. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "sinks/render.h"
#include "sinks/sink.h"

#define S_BODY_MAX (27 * 1024) /* Teams refuses messages over about 28 KB */

static int
s_init(struct ntf_sink *ins)
{
    if (ntf_sink_url_target(ins->hook->url, ins->target, sizeof(ins->target)) != 0) {
        esc_log_error("teams url not understood sink=%s", ins->name);
        return -1;
    }
    return 0;
}

static void
s_exit(struct ntf_sink *ins)
{
}

static json_t *
s_str(const char *s)
{
    json_t *j = json_string(s); /* valid UTF-8: every text went through ntf_text_clip */

    ESC_ASSERT(j != NULL);
    return j;
}

/* A TextRun: plain text, never interpreted. */
static json_t *
s_run(const char *text, int bold, int italic, int subtle)
{
    json_t *r = json_object();

    json_object_set_new(r, "type", json_string("TextRun"));
    json_object_set_new(r, "text", s_str(text));
    if (bold) {
        json_object_set_new(r, "weight", json_string("Bolder"));
    }
    if (italic) {
        json_object_set_new(r, "italic", json_true());
    }
    if (subtle) {
        json_object_set_new(r, "isSubtle", json_true());
    }
    return r;
}

/* A RichTextBlock holding the runs given (stolen). */
static json_t *
s_rich(json_t *runs, int separator)
{
    json_t *b = json_object();

    json_object_set_new(b, "type", json_string("RichTextBlock"));
    json_object_set_new(b, "inlines", runs);
    if (separator) {
        json_object_set_new(b, "separator", json_true());
    }
    return b;
}

/* "<label>: <value>" as a bold label run and a plain value run. */
static json_t *
s_labelled(const char *label, const char *value)
{
    json_t *runs = json_array();
    char buf[80];

    snprintf(buf, sizeof(buf), "%s: ", label);
    json_array_append_new(runs, s_run(buf, 1, 0, 0));
    json_array_append_new(runs, s_run(value, 0, 0, 0));
    return s_rich(runs, 0);
}

static json_t *
s_card(const struct ntf_alert_text *t, const char *alert_id)
{
    json_t *card = json_object();
    json_t *body = json_array();
    json_t *runs;
    json_t *title;
    json_t *label;
    char footer[300];
    char idbuf[200];
    size_t i;

    json_object_set_new(card, "$schema",
                        json_string("http://adaptivecards.io/schemas/adaptive-card.json"));
    json_object_set_new(card, "type", json_string("AdaptiveCard"));
    json_object_set_new(card, "version", json_string("1.4"));
    json_object_set_new(card, "msteams", json_pack("{s:s}", "width", "Full"));

    runs = json_array();
    title = s_run(t->title, 1, 0, 0);
    json_object_set_new(title, "size", json_string("Large"));
    json_object_set_new(title, "color", json_string(t->ended ? "Good" : "Attention"));
    json_array_append_new(runs, title);
    json_array_append_new(body, s_rich(runs, 0));
    runs = json_array();
    json_array_append_new(runs, s_run(t->summary, 0, 0, 0));
    json_array_append_new(body, s_rich(runs, 0));
    json_array_append_new(body, s_labelled(t->l_since, t->since));
    if (t->query[0] != '\0') {
        json_array_append_new(body, s_labelled(t->l_query, t->query));
    }
    if (t->terms[0] != '\0') {
        json_array_append_new(body, s_labelled(t->l_terms, t->terms));
    }
    if (t->n_samples > 0) {
        label = json_object();
        json_object_set_new(label, "type", json_string("TextBlock"));
        json_object_set_new(label, "text", s_str(t->l_samples));
        json_object_set_new(label, "weight", json_string("Bolder"));
        json_object_set_new(label, "separator", json_true());
        json_array_append_new(body, label);
    }
    for (i = 0; i < t->n_samples; i++) {
        const struct ntf_text_sample *s = &t->samples[i];

        runs = json_array();
        json_array_append_new(runs, s_run(s->text, 0, 1, 0));
        if (s->author[0] != '\0') {
            char by[160];

            snprintf(by, sizeof(by), " \xe2\x80\x94 %s", s->author);
            json_array_append_new(runs, s_run(by, 0, 0, 1));
        }
        if (s->url_ok) {
            json_t *link = s_run(t->l_open, 0, 0, 0);

            json_object_set_new(link, "selectAction",
                                json_pack("{s:s,s:o}", "type", "Action.OpenUrl", "url",
                                          s_str(s->url)));
            json_array_append_new(runs, s_run(" \xc2\xb7 ", 0, 0, 1));
            json_array_append_new(runs, link);
        }
        json_array_append_new(body, s_rich(runs, i == 0 ? 0 : 1));
    }
    snprintf(footer, sizeof(footer), "%s %s \xc2\xb7 %s", t->l_footer, t->deployment,
             ntf_text_clip(idbuf, sizeof(idbuf), alert_id, 180, 0));
    runs = json_array();
    json_array_append_new(runs, s_run(footer, 0, 0, 1));
    json_array_append_new(body, s_rich(runs, 1));
    json_object_set_new(card, "body", body);
    return card;
}

/* The request body. Caller owns (esc_free); *len is set. */
static char *
s_body(const struct ntf_alert_text *t, const char *alert_id, size_t *len)
{
    json_t *att = json_object();
    json_t *msg = json_object();
    char *out;
    size_t n;

    json_object_set_new(att, "contentType",
                        json_string("application/vnd.microsoft.card.adaptive"));
    json_object_set_new(att, "contentUrl", json_null());
    json_object_set_new(att, "content", s_card(t, alert_id));
    json_object_set_new(msg, "type", json_string("message"));
    json_object_set_new(msg, "attachments", json_array());
    json_array_append_new(json_object_get(msg, "attachments"), att);
    n = json_dumpb(msg, NULL, 0, JSON_COMPACT);
    ESC_ASSERT(n > 0);
    out = esc_malloc(n + 1);
    ESC_ASSERT(json_dumpb(msg, out, n, JSON_COMPACT) == n);
    out[n] = '\0';
    json_decref(msg);
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
    while (req->body_len > S_BODY_MAX && t->n_samples > 0) {
        t->n_samples--; /* drop samples from the end until the card fits */
        esc_free(req->body);
        req->body = s_body(t, n->alert->id, &req->body_len);
    }
    esc_free(t);
    if (req->body_len > S_BODY_MAX) {
        esc_log_error("teams card too large sink=%s bytes=%zu", ins->name, req->body_len);
        return ESC_INVALID;
    }
    return ESC_OK;
}

const struct ntf_sink_plugin sink_teams_plugin = {
    .name = "teams",
    .description = "POST each alert to a Microsoft Teams webhook as an Adaptive Card",
    .init = s_init,
    .prepare = s_prepare,
    .exit = s_exit,
};
