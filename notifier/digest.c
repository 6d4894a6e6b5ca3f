#define ESC_LOG_MODULE "digest"
/* Weekly digest of one team, for one ISO week in the team's time zone. The numbers come from
 * the aggregator's hour buckets <prefix>:c:{team/topic}:h:<start> (UTC hours): a bucket counts
 * for the local day in which it starts, so zones whose offset is not a whole number of hours
 * are approximated to the hour. All buckets of one topic (two weeks, ~336 keys sharing the hash
 * tag of the topic) are read in one EVAL round trip, because esc_kv's pipeline returns no
 * replies. Alerts come from the team's history list <prefix>:alerts:{team} (JSON, newest
 * first); those whose window starts inside the week are listed, oldest first, in local time.
 * Text is built from a table per language ("es", "en"), never from format strings in data.
 * Issue #6 adds the HTML part, charts, top posts, schedules and exactly-once sending. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "escucha/esc_kv.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "digest.h"
#include "mail.h"
#include "ntf.h"
#include "strbuf.h"

#define S_HOUR 3600
#define S_ALERTS_SCAN 10000        /* newest alert history entries examined */
#define S_BODY_MAX (1024 * 1024)
#define S_KEY_MAX 256

/* Returns the three fields the digest uses for every key, nil where a key or field is absent. */
static const char s_script[] =
    "local r = {} "
    "for i, k in ipairs(KEYS) do r[i] = redis.call('HMGET', k, 'posts', 'reach', 'engagement') "
    "end return r";

enum { S_F_POSTS, S_F_REACH, S_F_ENGAGEMENT, S_NFIELDS };

struct s_lang {
    const char *code;
    const char *subject_week; /* subject: "... · week 2026-W47" */
    const char *title;
    const char *week;
    const char *deployment;
    const char *total;        /* all topics together */
    const char *posts;
    const char *prev_week;
    const char *reach;
    const char *engagement;
    const char *by_day;
    const char *alerts;
    const char *no_alerts;
    const char *posts_lc;     /* in an alert line: "120 posts in 30 min" */
    const char *in;
    const char *expected;
    const char *is_new;       /* change when the previous week had no posts */
    const char *times_in;
    const char *pct;          /* percent sign with the language's spacing */
    char decimal;
    const char *days[7];      /* Monday first */
    const char *months[12];
};

static const struct s_lang s_langs[] = {
    {
        .code = "es",
        .subject_week = "semana",
        .title = "Resumen semanal de escucha",
        .week = "Semana",
        .deployment = "Despliegue",
        .total = "Publicaciones de la semana (todos los temas)",
        .posts = "Publicaciones",
        .prev_week = "semana anterior",
        .reach = "Alcance",
        .engagement = "Interacción",
        .by_day = "Por día",
        .alerts = "Alertas",
        .no_alerts = "Sin alertas esta semana.",
        .posts_lc = "publicaciones",
        .in = "en",
        .expected = "esperadas",
        .is_new = "nuevo",
        .times_in = "Horas en",
        .pct = " %",
        .decimal = ',',
        .days = { "lun", "mar", "mié", "jue", "vie", "sáb", "dom" },
        .months = { "ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov",
                    "dic" },
    },
    {
        .code = "en",
        .subject_week = "week",
        .title = "escucha weekly digest",
        .week = "Week",
        .deployment = "Deployment",
        .total = "Posts this week (all topics)",
        .posts = "Posts",
        .prev_week = "previous week",
        .reach = "Reach",
        .engagement = "Engagement",
        .by_day = "By day",
        .alerts = "Alerts",
        .no_alerts = "No alerts this week.",
        .posts_lc = "posts",
        .in = "in",
        .expected = "expected",
        .is_new = "new",
        .times_in = "Times in",
        .pct = "%",
        .decimal = '.',
        .days = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" },
        .months = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                    "Dec" },
    },
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

/* ---- collecting ------------------------------------------------------------------------- */

static int64_t
s_field(const struct esc_kv_val *v, const char *key)
{
    int64_t n;

    if (v->type == ESC_KV_NIL) {
        return 0;
    }
    if (v->type == ESC_KV_INT) {
        return v->integer;
    }
    if (v->type == ESC_KV_STR && esc_parse_i64(v->str, INT64_MIN, INT64_MAX, &n) == 0) {
        return n;
    }
    esc_log_warn("counter is not an integer, counted as 0 key=%s", key);
    return 0;
}

static esc_rc
s_collect_topic(esc_kv_t *kv, const char *prefix, const struct ntf_week *w,
                struct ntf_digest_topic *dt)
{
    int64_t first = ((w->prev_start + S_HOUR - 1) / S_HOUR) * S_HOUR;
    size_t n_keys = (size_t)((w->day_start[7] - first + S_HOUR - 1) / S_HOUR);
    size_t argc = 3 + n_keys;
    const char **argv = esc_calloc(argc, sizeof(*argv));
    char **keys = esc_calloc(n_keys, sizeof(*keys));
    char nk[24];
    struct esc_kv_val r;
    esc_rc rc = ESC_ERR;
    size_t i;
    int d;

    memset(&r, 0, sizeof(r));
    snprintf(nk, sizeof(nk), "%zu", n_keys);
    argv[0] = "EVAL";
    argv[1] = s_script;
    argv[2] = nk;
    for (i = 0; i < n_keys; i++) {
        char key[S_KEY_MAX];

        snprintf(key, sizeof(key), "%s:c:{%s}:h:%lld", prefix, dt->topic->key,
                 (long long)(first + (int64_t)i * S_HOUR));
        keys[i] = esc_strdup(key);
        argv[3 + i] = keys[i];
    }
    rc = esc_kv_cmdv(kv, &r, (int)argc, argv, NULL);
    if (rc != ESC_OK) {
        goto out;
    }
    if (r.type == ESC_KV_ERROR) {
        esc_log_error("redis refused the bucket read topic=%s err=\"%s\"", dt->topic->key, r.str);
        rc = ESC_ERR;
        goto out;
    }
    if (r.type != ESC_KV_ARRAY || r.n != n_keys) {
        esc_log_error("unexpected redis reply topic=%s type=%d n=%zu", dt->topic->key,
                      (int)r.type, r.n);
        rc = ESC_ERR;
        goto out;
    }
    for (i = 0; i < n_keys; i++) {
        const struct esc_kv_val *e = &r.elem[i];
        int64_t b = first + (int64_t)i * S_HOUR;
        int64_t posts;

        if (e->type != ESC_KV_ARRAY || e->n != S_NFIELDS) {
            esc_log_error("unexpected redis reply topic=%s key=%s", dt->topic->key, keys[i]);
            rc = ESC_ERR;
            goto out;
        }
        posts = s_field(&e->elem[S_F_POSTS], keys[i]);
        if (b < w->day_start[0]) {
            dt->posts_prev += posts;
            continue;
        }
        /* b < day_start[7] by the choice of n_keys, so d ends in 0..6 */
        d = 0;
        while (d < 6 && b >= w->day_start[d + 1]) {
            d++;
        }
        dt->posts += posts;
        dt->per_day[d] += posts;
        dt->reach += s_field(&e->elem[S_F_REACH], keys[i]);
        dt->engagement += s_field(&e->elem[S_F_ENGAGEMENT], keys[i]);
    }
    rc = ESC_OK;

out:
    esc_kv_val_fini(&r);
    for (i = 0; i < n_keys; i++) {
        esc_free(keys[i]);
    }
    esc_free(keys);
    esc_free(argv);
    return rc;
}

static int
s_alert_cmp(const void *a, const void *b)
{
    const struct ntf_digest_alert *x = a;
    const struct ntf_digest_alert *y = b;

    return (x->window_start > y->window_start) - (x->window_start < y->window_start);
}

static double
s_jnum(const json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* Parses one history entry; 1 = kept in out, 0 = outside the week, -1 = unreadable. */
static int
s_parse_alert(const char *text, size_t len, const struct ntf_week *w,
              struct ntf_digest_alert *out, char *id, size_t idsz)
{
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr);
    json_t *ws;
    const char *name;
    int kept = -1;

    if (o == NULL || !json_is_object(o)) {
        goto out;
    }
    ws = json_object_get(o, "window_start");
    if (!json_is_integer(ws) || !json_is_integer(json_object_get(o, "window_end"))) {
        goto out;
    }
    kept = 0;
    if (json_integer_value(ws) < w->day_start[0] * 1000
        || json_integer_value(ws) >= w->day_start[7] * 1000) {
        goto out;
    }
    name = json_string_value(json_object_get(o, "topic_name"));
    if (name == NULL || name[0] == '\0') {
        name = json_string_value(json_object_get(o, "topic"));
    }
    out->topic_name = ntf_mail_header_clean(name != NULL ? name : "?");
    out->window_start = json_integer_value(ws);
    out->window_end = json_integer_value(json_object_get(o, "window_end"));
    out->observed = json_is_integer(json_object_get(o, "observed"))
                        ? json_integer_value(json_object_get(o, "observed"))
                        : 0;
    out->expected = s_jnum(json_object_get(o, "expected"));
    out->score = s_jnum(json_object_get(o, "score"));
    esc_strlcpy(id, json_is_string(json_object_get(o, "id"))
                        ? json_string_value(json_object_get(o, "id"))
                        : "",
                idsz);
    kept = 1;

out:
    json_decref(o);
    return kept;
}

static esc_rc
s_collect_alerts(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team,
                 const struct ntf_week *w, struct ntf_digest *d)
{
    char key[S_KEY_MAX];
    char (*ids)[160] = NULL;
    struct esc_kv_val r;
    esc_rc rc;
    size_t i;
    size_t k;

    snprintf(key, sizeof(key), "%s:alerts:{%s}", prefix, team->id);
    rc = esc_kv_cmd(kv, &r, "LRANGE %s 0 %d", key, S_ALERTS_SCAN - 1);
    if (rc != ESC_OK) {
        return rc;
    }
    if (r.type == ESC_KV_ERROR || r.type != ESC_KV_ARRAY) {
        esc_log_error("cannot read alert history key=%s err=\"%s\"", key,
                      r.type == ESC_KV_ERROR ? r.str : "not a list");
        esc_kv_val_fini(&r);
        return ESC_ERR;
    }
    d->alerts = esc_calloc(r.n + 1, sizeof(*d->alerts));
    ids = esc_calloc(r.n + 1, sizeof(*ids));
    for (i = 0; i < r.n; i++) {
        struct ntf_digest_alert a;
        int kept;

        memset(&a, 0, sizeof(a));
        if (r.elem[i].type != ESC_KV_STR) {
            d->n_skipped++;
            continue;
        }
        kept = s_parse_alert(r.elem[i].str, r.elem[i].len, w, &a, ids[d->n_alerts],
                             sizeof(ids[0]));
        if (kept < 0) {
            d->n_skipped++;
            continue;
        }
        if (kept == 0) {
            continue;
        }
        /* the same alert pushed twice (an aggregator retry) is listed once */
        for (k = 0; k < d->n_alerts; k++) {
            if (ids[k][0] != '\0' && strcmp(ids[k], ids[d->n_alerts]) == 0) {
                break;
            }
        }
        if (k < d->n_alerts) {
            esc_free(a.topic_name);
            continue;
        }
        d->alerts[d->n_alerts++] = a;
    }
    if (d->n_skipped > 0) {
        esc_log_warn("skipped unreadable alert history entries key=%s n=%zu", key, d->n_skipped);
    }
    qsort(d->alerts, d->n_alerts, sizeof(*d->alerts), s_alert_cmp);
    esc_free(ids);
    esc_kv_val_fini(&r);
    return ESC_OK;
}

esc_rc
ntf_digest_collect(esc_kv_t *kv, const char *prefix, const struct esc_cfg_team *team,
                   const struct ntf_week *week, struct ntf_digest *out)
{
    esc_rc rc;
    size_t i;

    memset(out, 0, sizeof(*out));
    out->team = team;
    out->week = *week;
    out->topics = esc_calloc(team->n_topics + 1, sizeof(*out->topics));
    out->n_topics = team->n_topics;
    for (i = 0; i < team->n_topics; i++) {
        out->topics[i].topic = &team->topics[i];
        rc = s_collect_topic(kv, prefix, week, &out->topics[i]);
        if (rc != ESC_OK) {
            return rc;
        }
    }
    return s_collect_alerts(kv, prefix, team, week, out);
}

void
ntf_digest_fini(struct ntf_digest *d)
{
    size_t i;

    for (i = 0; i < d->n_alerts; i++) {
        esc_free(d->alerts[i].topic_name);
    }
    ESC_FREE(d->alerts);
    ESC_FREE(d->topics);
    d->n_alerts = 0;
    d->n_topics = 0;
}

/* ---- rendering -------------------------------------------------------------------------- */

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
    pct = 100.0 * (double)(cur - prev) / (double)prev;
    ntf_sb_puts(sb, pct >= 0 ? "+" : "");
    s_put_dbl(sb, pct, l);
    ntf_sb_puts(sb, l->pct);
}

/* "lun 16 nov 2026" for a day number. */
static void
s_put_date(struct ntf_sb *sb, int64_t days, const struct s_lang *l)
{
    int y;
    int m;
    int d;

    ntf_civil_from_days(days, &y, &m, &d);
    ntf_sb_printf(sb, "%s %d %s %d", l->days[ntf_weekday(days)], d, l->months[m - 1], y);
}

char *
ntf_digest_subject(const struct ntf_digest *d)
{
    const struct s_lang *l = s_lang_find(d->team->language);
    struct ntf_sb sb;
    char *out;

    ntf_sb_init(&sb, 4096);
    ntf_sb_printf(&sb, "escucha \xc2\xb7 %s \xc2\xb7 %s %s", d->team->name, l->subject_week,
                  d->week.label);
    out = ntf_sb_take(&sb, NULL);
    ESC_ASSERT(out != NULL); /* a team name is at most 127 bytes */
    return out;
}

static void
s_put_topic(struct ntf_sb *sb, const struct ntf_digest_topic *t, const struct s_lang *l)
{
    char *name = ntf_mail_header_clean(t->topic->name);
    int i;

    ntf_sb_printf(sb, "%s\n", name);
    ntf_sb_printf(sb, "  %s: %lld (%s %lld, ", l->posts, (long long)t->posts, l->prev_week,
                  (long long)t->posts_prev);
    s_put_change(sb, t->posts, t->posts_prev, l);
    ntf_sb_puts(sb, ")\n");
    ntf_sb_printf(sb, "  %s: %lld\n", l->reach, (long long)t->reach);
    ntf_sb_printf(sb, "  %s: %lld\n", l->engagement, (long long)t->engagement);
    ntf_sb_printf(sb, "  %s:", l->by_day);
    for (i = 0; i < 7; i++) {
        ntf_sb_printf(sb, "%s %s %lld", i == 0 ? "" : ",", l->days[i], (long long)t->per_day[i]);
    }
    ntf_sb_puts(sb, "\n\n");
    esc_free(name);
}

static void
s_put_alert(struct ntf_sb *sb, const struct ntf_digest_alert *a, const char *tz,
            const struct s_lang *l)
{
    struct tm lt;
    int64_t days;

    ntf_tz_local(tz, a->window_start / 1000, &lt);
    days = ntf_days_from_civil(lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday);
    ntf_sb_printf(sb, "  %s %d %s %02d:%02d  %s: %lld %s %s %lld min", l->days[ntf_weekday(days)],
                  lt.tm_mday, l->months[lt.tm_mon], lt.tm_hour, lt.tm_min, a->topic_name,
                  (long long)a->observed, l->posts_lc, l->in,
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
}

char *
ntf_digest_body(const struct ntf_digest *d, const char *deployment)
{
    const struct s_lang *l = s_lang_find(d->team->language);
    char *team_name = ntf_mail_header_clean(d->team->name);
    char *dep = ntf_mail_header_clean(deployment);
    int64_t total = 0;
    int64_t total_prev = 0;
    struct ntf_sb sb;
    char *out;
    size_t i;

    ntf_sb_init(&sb, S_BODY_MAX);
    ntf_sb_printf(&sb, "%s: %s\n", l->title, team_name);
    ntf_sb_printf(&sb, "%s %s: ", l->week, d->week.label);
    s_put_date(&sb, d->week.monday, l);
    ntf_sb_puts(&sb, " \xe2\x80\x93 ");
    s_put_date(&sb, d->week.monday + 6, l);
    ntf_sb_printf(&sb, " (%s)\n", d->team->timezone);
    if (dep[0] != '\0') {
        ntf_sb_printf(&sb, "%s: %s\n", l->deployment, dep);
    }
    for (i = 0; i < d->n_topics; i++) {
        total += d->topics[i].posts;
        total_prev += d->topics[i].posts_prev;
    }
    ntf_sb_printf(&sb, "\n%s: %lld (%s %lld, ", l->total, (long long)total, l->prev_week,
                  (long long)total_prev);
    s_put_change(&sb, total, total_prev, l);
    ntf_sb_puts(&sb, ")\n\n");
    for (i = 0; i < d->n_topics; i++) {
        s_put_topic(&sb, &d->topics[i], l);
    }
    if (d->n_alerts == 0) {
        ntf_sb_printf(&sb, "%s\n", l->no_alerts);
    }
    else {
        ntf_sb_printf(&sb, "%s (%zu)\n", l->alerts, d->n_alerts);
        for (i = 0; i < d->n_alerts; i++) {
            s_put_alert(&sb, &d->alerts[i], d->team->timezone, l);
        }
    }
    ntf_sb_printf(&sb, "\n-- \nescucha \xc2\xb7 %s %s\n", l->times_in, d->team->timezone);
    esc_free(team_name);
    esc_free(dep);
    out = ntf_sb_take(&sb, NULL);
    if (out == NULL) {
        out = esc_strdup("digest too large\n");
    }
    return out;
}

/* ---- the command ------------------------------------------------------------------------ */

/* Writes or sends msg; fills dest with where it went. Returns NTF_EXIT_*. */
static int
s_deliver(const struct ntf_cfg *ncfg, const struct esc_cfg_team *team, const char *label,
          const char *to_file, const char *msg, size_t len, char *dest, size_t destsz)
{
    char from_addr[256];
    char path[1024];

    if (to_file != NULL) {
        esc_strlcpy(dest, to_file, destsz);
        return ntf_write_file(to_file, msg, len) == 0 ? NTF_EXIT_OK : NTF_EXIT_FAIL;
    }
    if (ncfg->smtp_url[0] != '\0') {
        if (team->n_recipients == 0) {
            esc_log_error("team has no recipients team=%s", team->id);
            return NTF_EXIT_USAGE;
        }
        ESC_ASSERT(ntf_mail_addr_spec(ncfg->from, from_addr, sizeof(from_addr)) == 0);
        if (ntf_mail_send_smtp(ncfg, from_addr, (const char *const *)team->recipients,
                               team->n_recipients, msg, len) != ESC_OK) {
            return NTF_EXIT_FAIL;
        }
        snprintf(dest, destsz, "%s rcpt=%zu", ncfg->smtp_url, team->n_recipients);
        return NTF_EXIT_OK;
    }
    if (ntf_mkdirs(ncfg->outbox) != 0) {
        return NTF_EXIT_FAIL;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/%s-%s.eml", ncfg->outbox, team->id, label)
        >= sizeof(path)) {
        esc_log_error("outbox path too long outbox=%s", ncfg->outbox);
        return NTF_EXIT_FAIL;
    }
    esc_strlcpy(dest, path, destsz);
    return ntf_write_file(path, msg, len) == 0 ? NTF_EXIT_OK : NTF_EXIT_FAIL;
}

int
ntf_digest_main(const struct esc_cfg *cfg, const struct ntf_cfg *ncfg, const char *team_id,
                const char *period, const char *to_file)
{
    const struct esc_cfg_team *team = esc_cfg_team_find(cfg, team_id);
    struct esc_kv_opts opts;
    struct ntf_digest d;
    struct ntf_week w;
    struct ntf_mail m;
    char dest[1100];
    char hint[96];
    char *password = NULL;
    char *subject = NULL;
    char *body = NULL;
    char *msg = NULL;
    esc_kv_t *kv;
    size_t len = 0;
    int year;
    int week;
    int code = NTF_EXIT_FAIL;
    esc_rc rc;

    if (team == NULL) {
        esc_log_error("unknown team team=%s", team_id);
        return NTF_EXIT_USAGE;
    }
    if (period != NULL) {
        if (ntf_week_parse(period, &year, &week) != 0) {
            esc_log_error("bad period period=%s (expected an ISO week like 2026-W47)", period);
            return NTF_EXIT_USAGE;
        }
    }
    else {
        ntf_week_last_complete(team->timezone, esc_now_ms() / 1000, &year, &week);
    }
    ESC_ASSERT(ntf_week_resolve(team->timezone, year, week, &w) == 0);

    esc_cfg_kv_opts(cfg, &opts, &password);
    if ((cfg->redis.password_env[0] != '\0' || cfg->redis.password_file[0] != '\0')
        && password == NULL) {
        return NTF_EXIT_FAIL; /* esc_secret_load said why */
    }
    kv = esc_kv_new(&opts);
    if (password != NULL) {
        sodium_memzero(password, strlen(password));
        esc_free(password);
    }
    rc = ntf_digest_collect(kv, cfg->redis.prefix, team, &w, &d);
    esc_kv_destroy(&kv);
    if (rc != ESC_OK) {
        esc_log_error("cannot build digest team=%s period=%s reason=%s", team->id, w.label,
                      rc == ESC_RETRY ? "redis unreachable" : "redis error");
        ntf_digest_fini(&d);
        return NTF_EXIT_FAIL;
    }
    subject = ntf_digest_subject(&d);
    body = ntf_digest_body(&d, cfg->deployment);
    memset(&m, 0, sizeof(m));
    m.from = ncfg->from;
    m.to = (const char *const *)team->recipients;
    m.n_to = team->n_recipients;
    m.subject = subject;
    m.body = body;
    m.date = esc_now_ms() / 1000;
    snprintf(hint, sizeof(hint), "%s-%s", team->id, w.label);
    m.id_hint = hint;
    msg = ntf_mail_build(&m, &len);
    if (msg != NULL) {
        code = s_deliver(ncfg, team, w.label, to_file, msg, len, dest, sizeof(dest));
    }
    if (code == NTF_EXIT_OK) {
        printf("digest team=%s period=%s -> %s\n", team->id, w.label, dest);
        fflush(stdout);
    }
    esc_free(msg);
    esc_free(body);
    esc_free(subject);
    ntf_digest_fini(&d);
    return code;
}
