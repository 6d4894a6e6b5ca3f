#define ESC_LOG_MODULE "collector"
/* Checks at the collector's edge, shared by the sources that read the post JSON shape and by
 * the host: a coarse reason class for every rejected item (the label of
 * escucha_collector_rejected_total{source,type,reason}), the rules a parsed post must meet
 * before it is sent (an event time after 1970), and the clock-skew rule the host applies to
 * every post: an event time further than max_future_ms ahead of the ingest time is clamped to
 * the ingest time, logged and counted (escucha_collector_clamped_total), so one wrong clock
 * cannot put counts into buckets of the future. Reason classes come from the parsers' messages
 * (esc_post_from_json, the sources' own); an unknown message is class "invalid".
 * Threading: everything here runs on the collector's loop thread, except col_reject_class,
 * which is pure and may run anywhere (the ingest source's HTTP thread). */
#include <inttypes.h>
#include <string.h>

#include "col_source.h"

#include "escucha/esc_log.h"
#include "escucha/esc_metrics.h"
#include "escucha/esc_util.h"

#define S_CLAMP_LOG_MS 10000 /* at most one clamp warning per source per this period */

/* Message fragments, first match wins (so "too big integer" is out_of_range before "invalid
 * JSON" makes it malformed). Lower-case comparison, on the message without the parser's quote
 * of the input (" near '...'"), so the input itself never chooses the class. */
static const struct {
    const char *needle;
    enum col_reject cls;
} s_rules[] = {
    { "created_at': must", COL_REJECT_BAD_TIME },
    { "not an rfc 3339", COL_REJECT_BAD_TIME },
    { "timestamp", COL_REJECT_BAD_TIME },
    { "nul byte", COL_REJECT_NUL },
    { "u0000", COL_REJECT_NUL },
    { "longer than", COL_REJECT_TOO_LARGE },
    { "too large", COL_REJECT_TOO_LARGE },
    { "too long", COL_REJECT_TOO_LARGE },
    { "too many elements", COL_REJECT_TOO_LARGE },
    { "depth", COL_REJECT_TOO_DEEP },
    { "too deep", COL_REJECT_TOO_DEEP },
    { "utf-8", COL_REJECT_BAD_UTF8 },
    { "decode byte", COL_REJECT_BAD_UTF8 },
    { "too big", COL_REJECT_OUT_OF_RANGE },
    { "overflow", COL_REJECT_OUT_OF_RANGE },
    { "non-negative", COL_REJECT_OUT_OF_RANGE },
    { "duplicate", COL_REJECT_DUPLICATE_KEY },
    { "missing", COL_REJECT_MISSING_FIELD },
    { "': empty", COL_REJECT_MISSING_FIELD },
    { "expected a json object", COL_REJECT_MALFORMED },
    { "': expected", COL_REJECT_WRONG_TYPE },
    { "invalid json", COL_REJECT_MALFORMED },
    { "malformed", COL_REJECT_MALFORMED },
    { "empty body", COL_REJECT_MALFORMED },
    { "quot", COL_REJECT_MALFORMED },
};

static const char *const s_names[COL_REJECT_N] = {
    [COL_REJECT_MALFORMED] = "malformed",
    [COL_REJECT_BAD_UTF8] = "bad_utf8",
    [COL_REJECT_NUL] = "nul",
    [COL_REJECT_TOO_LARGE] = "too_large",
    [COL_REJECT_TOO_DEEP] = "too_deep",
    [COL_REJECT_OUT_OF_RANGE] = "out_of_range",
    [COL_REJECT_MISSING_FIELD] = "missing_field",
    [COL_REJECT_WRONG_TYPE] = "wrong_type",
    [COL_REJECT_DUPLICATE_KEY] = "duplicate_key",
    [COL_REJECT_BAD_TIME] = "bad_time",
    [COL_REJECT_INVALID] = "invalid",
};

enum col_reject
col_reject_class(const char *text)
{
    char low[256];
    char *near;
    size_t i;

    if (text == NULL) {
        return COL_REJECT_INVALID;
    }
    for (i = 0; i + 1 < sizeof(low) && text[i] != '\0'; i++) {
        low[i] = (text[i] >= 'A' && text[i] <= 'Z') ? (char)(text[i] - 'A' + 'a') : text[i];
    }
    low[i] = '\0';
    near = strstr(low, " near '");
    if (near != NULL) {
        *near = '\0';
    }
    for (i = 0; i < ESC_ARRAY_LEN(s_rules); i++) {
        if (strstr(low, s_rules[i].needle) != NULL) {
            return s_rules[i].cls;
        }
    }
    return COL_REJECT_INVALID;
}

const char *
col_reject_name(enum col_reject cls)
{
    return cls < COL_REJECT_N ? s_names[cls] : s_names[COL_REJECT_INVALID];
}

esc_metric_t *
col_source_metric_labelled(const struct col_source *ins, const char *name, const char *help,
                           const char *extra_labels)
{
    char name_q[160];
    char type_q[80];
    char labels[360];

    esc_metrics_label_escape(name_q, sizeof(name_q), ins->name);
    esc_metrics_label_escape(type_q, sizeof(type_q), ins->plugin->name);
    snprintf(labels, sizeof(labels), "source=\"%s\",type=\"%s\",%s", name_q, type_q,
             extra_labels);
    return esc_metrics_counter(name, help, labels);
}

void
col_source_reject(struct col_source *ins, enum col_reject cls, uint64_t n)
{
    char labels[64];

    if (n == 0) {
        return;
    }
    ins->stats.skipped += n;
    snprintf(labels, sizeof(labels), "reason=\"%s\"", col_reject_name(cls));
    esc_metric_add(col_source_metric_labelled(ins, "escucha_collector_rejected_total",
                                              "Input items rejected (logged with where and why), "
                                              "per source and reason.", labels),
                   n);
}

esc_rc
col_post_check(const struct esc_post *post, struct esc_error *err)
{
    if (post->created_at <= 0) {
        esc_error_set(err, 0, "field 'created_at': must be after 1970-01-01 (positive Unix ms), "
                      "got %" PRId64, post->created_at);
        return ESC_INVALID;
    }
    return ESC_OK;
}

int
col_post_clamp(struct col_source *ins, struct esc_post *post, int64_t now_ms,
               int64_t max_future_ms)
{
    char q[120];

    if (max_future_ms <= 0 || post->created_at <= now_ms + max_future_ms) {
        return 0;
    }
    ins->stats.clamped++;
    esc_metric_add(col_source_metric(ins, "escucha_collector_clamped_total",
                                     "Posts dated too far in the future whose event time was "
                                     "set to the ingest time, per source."),
                   1);
    esc_log_every(&ins->clamp_log, S_CLAMP_LOG_MS,
                  "event time in the future, clamped to ingest time source=%s id=%s "
                  "ahead_s=%" PRId64 " clamped=%" PRIu64,
                  ins->name, esc_log_quote(q, sizeof(q), post->id != NULL ? post->id : "", 80),
                  (post->created_at - now_ms) / 1000, ins->stats.clamped);
    post->created_at = now_ms;
    return 1;
}
