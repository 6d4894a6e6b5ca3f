#define ESC_LOG_MODULE "schedule"
/* When each team's digest goes out, and the Redis state that makes it go out once.
 *
 * A team's rule is the table's defaults overlaid by "notifier.digest.default" and then by
 * "notifier.digest.<team>": the second overlay runs the same table with its defaults replaced
 * by the values of the first, so every level goes through esc_cfg_section_apply (type checks,
 * bounds, unknown keys, environment overrides). The period due at a given instant is the latest
 * one whose send time (weekday / day of month + local time after the period's end, in the
 * team's zone) has passed: a notifier that was down on Monday morning sends the week's digest
 * when it comes back, never an older one.
 *
 * Claims are one Redis string per team and period, changed only by Lua scripts so that reading
 * and writing the state is one atomic step even with several notifiers (the scripts touch one
 * key; Redis Cluster safe). A claim is a lease: a sender that dies before finishing loses it
 * when it expires and another may send. Single-threaded. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "schedule.h"

#define S_RETRY_TTL_MS (40LL * 86400 * 1000) /* a retry state outlives its back-off this long */

const struct esc_cfg_entry ntf_sched_cfg_map[] = {
    ESC_CFG_BOOL("enabled", "true", struct ntf_sched_cfg, enabled,
                 "send this team's digest on schedule (--digest works either way)"),
    ESC_CFG_STR("every", "weekly", struct ntf_sched_cfg, every,
                "period of a digest: daily, weekly (ISO week, Monday to Sunday) or monthly"),
    ESC_CFG_STR("weekday", "mon", struct ntf_sched_cfg, weekday,
                "weekly: day the digest of the week that ended goes out (mon..sun)"),
    ESC_CFG_INT("monthday", "1", 1, 28, struct ntf_sched_cfg, monthday,
                "monthly: day of the next month the digest goes out"),
    ESC_CFG_STR("time", "08:00", struct ntf_sched_cfg, time,
                "local time (team time zone, 24 h HH:MM) the digest goes out"),
    ESC_CFG_BOOL("send_empty", "false", struct ntf_sched_cfg, send_empty,
                 "also send a digest when the period had no posts and no alerts"),
    ESC_CFG_END,
};

static const char *const s_weekdays[] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };

/* Parses "HH:MM" into minutes after midnight. */
static int
s_parse_time(const char *s, int *minute)
{
    int h;
    int m;

    if (strlen(s) != 5 || s[2] != ':' || s[0] < '0' || s[0] > '2' || s[1] < '0' || s[1] > '9'
        || s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9') {
        return -1;
    }
    h = (s[0] - '0') * 10 + (s[1] - '0');
    m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23) {
        return -1;
    }
    *minute = h * 60 + m;
    return 0;
}

/* Applies map onto out at path, with the defaults taken from base (a lower level). */
static esc_rc
s_apply_over(const struct esc_cfg *cfg, const char *path, const struct ntf_sched_cfg *base,
             struct ntf_sched_cfg *out, struct esc_error *err)
{
    struct esc_cfg_entry map[ESC_ARRAY_LEN(ntf_sched_cfg_map)];
    char defs[ESC_ARRAY_LEN(ntf_sched_cfg_map)][32];
    size_t i;

    for (i = 0; i < ESC_ARRAY_LEN(ntf_sched_cfg_map); i++) {
        const struct esc_cfg_entry *e = &ntf_sched_cfg_map[i];
        const char *field = (const char *)base + e->offset;

        map[i] = *e;
        if (e->key == NULL) {
            continue;
        }
        switch (e->type) {
        case ESC_CFG_T_STR:
            esc_strlcpy(defs[i], field, sizeof(defs[i]));
            break;
        case ESC_CFG_T_INT:
            snprintf(defs[i], sizeof(defs[i]), "%lld", (long long)*(const int64_t *)field);
            break;
        case ESC_CFG_T_BOOL:
            esc_strlcpy(defs[i], *(const bool *)field ? "true" : "false", sizeof(defs[i]));
            break;
        default:
            ESC_ASSERT(0); /* the table has no other types */
        }
        map[i].def = defs[i];
    }
    return esc_cfg_section_apply(cfg, path, map, NULL, out, err);
}

esc_rc
ntf_sched_rule_load(const struct esc_cfg *cfg, const char *team_id, struct ntf_sched_rule *out,
                    struct esc_error *err)
{
    struct ntf_sched_cfg base;
    struct ntf_sched_cfg sc;
    char path[128];
    size_t i;

    if (esc_cfg_section_apply(cfg, "notifier.digest.default", ntf_sched_cfg_map, NULL, &base,
                              err)
        != ESC_OK) {
        return ESC_INVALID;
    }
    snprintf(path, sizeof(path), "notifier.digest.%s", team_id);
    if (s_apply_over(cfg, path, &base, &sc, err) != ESC_OK) {
        return ESC_INVALID;
    }
    memset(out, 0, sizeof(*out));
    out->enabled = sc.enabled;
    out->send_empty = sc.send_empty;
    out->monthday = (int)sc.monthday;
    if (ntf_period_kind_parse(sc.every, &out->kind) != 0) {
        esc_error_set(err, 0, "%s.every: '%s' is not daily, weekly or monthly", path, sc.every);
        return ESC_INVALID;
    }
    for (i = 0; i < ESC_ARRAY_LEN(s_weekdays); i++) {
        if (strcmp(sc.weekday, s_weekdays[i]) == 0) {
            break;
        }
    }
    if (i == ESC_ARRAY_LEN(s_weekdays)) {
        esc_error_set(err, 0, "%s.weekday: '%s' is not one of mon tue wed thu fri sat sun", path,
                      sc.weekday);
        return ESC_INVALID;
    }
    out->weekday = (int)i;
    if (s_parse_time(sc.time, &out->minute) != 0) {
        esc_error_set(err, 0, "%s.time: '%s' is not a 24-hour time HH:MM", path, sc.time);
        return ESC_INVALID;
    }
    return ESC_OK;
}

esc_rc
ntf_sched_cfg_check(const struct esc_cfg *cfg, struct esc_error *err)
{
    static const struct esc_cfg_entry none[] = { ESC_CFG_END };
    const char **allowed = esc_calloc(cfg->n_teams + 2, sizeof(*allowed));
    struct ntf_sched_rule r;
    char dummy[1];
    esc_rc rc;
    size_t i;

    allowed[0] = "default";
    for (i = 0; i < cfg->n_teams; i++) {
        allowed[i + 1] = cfg->teams[i].id;
    }
    /* only "default" and team ids: a misspelt team id must not be ignored silently */
    rc = esc_cfg_section_apply(cfg, "notifier.digest", none, allowed, dummy, err);
    esc_free(allowed);
    if (rc != ESC_OK) {
        if (err != NULL && strstr(err->text, "unknown key") != NULL) {
            esc_strlcpy(err->text + strlen(err->text), " (expected \"default\" or a team id)",
                        sizeof(err->text) - strlen(err->text));
        }
        return ESC_INVALID;
    }
    for (i = 0; i < cfg->n_teams; i++) {
        if (ntf_sched_rule_load(cfg, cfg->teams[i].id, &r, err) != ESC_OK) {
            return ESC_INVALID;
        }
    }
    return ESC_OK;
}

void
ntf_sched_print(FILE *f, const struct esc_cfg *cfg)
{
    struct ntf_sched_rule r;
    struct esc_error err;
    size_t i;

    for (i = 0; i < cfg->n_teams; i++) {
        if (ntf_sched_rule_load(cfg, cfg->teams[i].id, &r, &err) != ESC_OK) {
            fprintf(f, "notifier.digest.%s: invalid (%s)\n", cfg->teams[i].id, err.text);
            continue;
        }
        fprintf(f, "notifier.digest.%s: enabled=%s every=%s weekday=%s monthday=%d "
                   "time=%02d:%02d send_empty=%s timezone=%s\n",
                cfg->teams[i].id, r.enabled ? "true" : "false", ntf_period_kind_name(r.kind),
                s_weekdays[r.weekday], r.monthday, r.minute / 60, r.minute % 60,
                r.send_empty ? "true" : "false", cfg->teams[i].timezone);
    }
}

int64_t
ntf_sched_send_at(const struct ntf_sched_rule *r, const char *tz, int64_t first_day)
{
    int64_t day = ntf_period_next(r->kind, first_day);

    if (r->kind == NTF_PERIOD_WEEK) {
        day += r->weekday; /* the day after a week is a Monday */
    }
    else if (r->kind == NTF_PERIOD_MONTH) {
        day += r->monthday - 1;
    }
    return ntf_tz_local_to_utc(tz, day, r->minute * 60);
}

int64_t
ntf_sched_due(const struct ntf_sched_rule *r, const char *tz, int64_t now)
{
    struct tm lt;
    int64_t f;
    int i;

    ntf_tz_local(tz, now, &lt);
    f = ntf_period_first_day(r->kind,
                             ntf_days_from_civil(lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday));
    /* the current period is never due (it has not ended); at most two more steps back */
    for (i = 0; i < 4; i++) {
        if (ntf_sched_send_at(r, tz, f) <= now) {
            return f;
        }
        f = ntf_period_prev(r->kind, f);
    }
    return f;
}

/* ---- claims ------------------------------------------------------------------------------ */

/* KEYS[1] state; ARGV token, lease ms, now ms, force. Returns {outcome, state}. */
static const char s_lua_claim[] =
    "local v = redis.call('GET', KEYS[1]) "
    "local attempt = 1 "
    "if v and ARGV[4] ~= '1' then "
    "  local kind = string.match(v, '^(%a+):') "
    "  if kind == 'sent' or kind == 'skipped' or kind == 'failed' then return {'done', v} end "
    "  if kind == 'sending' then return {'busy', v} end "
    "  if kind == 'retry' then "
    "    local a, nb = string.match(v, '^retry:(%d+):(%d+):') "
    "    if nb and tonumber(nb) > tonumber(ARGV[3]) then return {'wait', v} end "
    "    if a then attempt = tonumber(a) + 1 end "
    "  end "
    "end "
    "local val = 'sending:' .. attempt .. ':' .. ARGV[1] "
    "redis.call('SET', KEYS[1], val, 'PX', ARGV[2]) "
    "return {'ok', val}";

/* KEYS[1]; ARGV expected value, lease ms. 1 when extended. */
static const char s_lua_renew[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
    "return 0";

/* KEYS[1]; ARGV expected value, final value. Always writes (without expiry); 1 when the claim
 * was still ours. */
static const char s_lua_finish[] =
    "local v = redis.call('GET', KEYS[1]) "
    "redis.call('SET', KEYS[1], ARGV[2]) "
    "if v == ARGV[1] then return 1 end return 0";

/* KEYS[1]; ARGV expected value, new value, ttl ms ("0" = none). 1 when written. */
static const char s_lua_fail[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) "
    "else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end "
    "return 1";

void
ntf_claim_key(const char *prefix, const char *team_id, const char *label, char *out,
              size_t outsz)
{
    snprintf(out, outsz, "%s:ntf:digest:{%s}:%s", prefix, team_id, label);
}

const char *
ntf_instance_id(void)
{
    static char id[64];
    char host[40];
    unsigned char rnd[3];
    char hex[sizeof(rnd) * 2 + 1];
    size_t i;

    if (id[0] != '\0') {
        return id;
    }
    if (gethostname(host, sizeof(host)) != 0) {
        esc_strlcpy(host, "host", sizeof(host));
    }
    host[sizeof(host) - 1] = '\0';
    for (i = 0; host[i] != '\0'; i++) {
        if (host[i] == ':' || (unsigned char)host[i] <= 0x20 || (unsigned char)host[i] >= 0x7f) {
            host[i] = '-';
        }
    }
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
    snprintf(id, sizeof(id), "%s/%d/%s", host, (int)getpid(), hex);
    return id;
}

/* Runs script on key with args; the reply goes to r (caller finis it on ESC_OK). Error replies
 * are logged and give ESC_ERR. */
static esc_rc
s_eval(esc_kv_t *kv, const char *script, const char *key, const char *const *args, int nargs,
       struct esc_kv_val *r)
{
    const char *argv[8];
    esc_rc rc;
    int i;

    ESC_ASSERT(nargs <= 4);
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = "1";
    argv[3] = key;
    for (i = 0; i < nargs; i++) {
        argv[4 + i] = args[i];
    }
    rc = esc_kv_cmdv(kv, r, 4 + nargs, argv, NULL);
    if (rc != ESC_OK) {
        return rc;
    }
    if (r->type == ESC_KV_ERROR) {
        esc_log_error("digest state script refused key=%s err=\"%s\"", key, r->str);
        esc_kv_val_fini(r);
        return ESC_ERR;
    }
    return ESC_OK;
}

esc_rc
ntf_claim_try(esc_kv_t *kv, const char *key, int64_t lease_ms, int64_t now_ms, int force,
              struct ntf_claim *c, enum ntf_claim_rc *out)
{
    unsigned char rnd[4];
    char hex[sizeof(rnd) * 2 + 1];
    char lease[24];
    char now[24];
    const char *args[4];
    struct esc_kv_val r;
    const char *outcome;
    const char *state;
    int64_t attempt = 1;
    esc_rc rc;

    memset(c, 0, sizeof(*c));
    esc_strlcpy(c->key, key, sizeof(c->key));
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
    snprintf(c->token, sizeof(c->token), "%s/%s", ntf_instance_id(), hex);
    snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    args[0] = c->token;
    args[1] = lease;
    args[2] = now;
    args[3] = force ? "1" : "0";
    rc = s_eval(kv, s_lua_claim, key, args, 4, &r);
    if (rc != ESC_OK) {
        return rc;
    }
    if (r.type != ESC_KV_ARRAY || r.n != 2 || r.elem[0].type != ESC_KV_STR
        || r.elem[1].type != ESC_KV_STR) {
        esc_log_error("unexpected reply from the claim script key=%s", key);
        esc_kv_val_fini(&r);
        return ESC_ERR;
    }
    outcome = r.elem[0].str;
    state = r.elem[1].str;
    if (strcmp(outcome, "ok") == 0) {
        esc_strlcpy(c->value, state, sizeof(c->value));
        /* "sending:<attempt>:<token>" */
        if (sscanf(state, "sending:%" SCNd64 ":", &attempt) != 1 || attempt < 1) {
            attempt = 1;
        }
        c->attempt = (int)(attempt > NTF_CLAIM_ATTEMPTS_MAX ? NTF_CLAIM_ATTEMPTS_MAX : attempt);
        *out = NTF_CLAIM_OK;
    }
    else {
        esc_strlcpy(c->state, state, sizeof(c->state));
        *out = strcmp(outcome, "done") == 0   ? NTF_CLAIM_DONE
               : strcmp(outcome, "busy") == 0 ? NTF_CLAIM_BUSY
                                              : NTF_CLAIM_WAIT;
    }
    esc_kv_val_fini(&r);
    return ESC_OK;
}

esc_rc
ntf_claim_renew(esc_kv_t *kv, const struct ntf_claim *c, int64_t lease_ms, int *held)
{
    char lease[24];
    const char *args[2];
    struct esc_kv_val r;
    esc_rc rc;

    snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
    args[0] = c->value;
    args[1] = lease;
    rc = s_eval(kv, s_lua_renew, c->key, args, 2, &r);
    if (rc != ESC_OK) {
        return rc;
    }
    *held = r.type == ESC_KV_INT && r.integer == 1;
    esc_kv_val_fini(&r);
    return ESC_OK;
}

esc_rc
ntf_claim_finish(esc_kv_t *kv, const struct ntf_claim *c, const char *kind, int64_t now_ms,
                 int *was_ours)
{
    char value[NTF_CLAIM_TOKEN_MAX + 48];
    const char *args[2];
    struct esc_kv_val r;
    esc_rc rc;

    snprintf(value, sizeof(value), "%s:%lld:%s", kind, (long long)now_ms, c->token);
    args[0] = c->value;
    args[1] = value;
    rc = s_eval(kv, s_lua_finish, c->key, args, 2, &r);
    if (rc != ESC_OK) {
        return rc;
    }
    *was_ours = r.type == ESC_KV_INT && r.integer == 1;
    esc_kv_val_fini(&r);
    return ESC_OK;
}

esc_rc
ntf_claim_fail(esc_kv_t *kv, const struct ntf_claim *c, int64_t now_ms, int permanent,
               int *given_up)
{
    char value[NTF_CLAIM_TOKEN_MAX + 64];
    char ttl[24];
    const char *args[3];
    struct esc_kv_val r;
    int64_t wait_s = NTF_CLAIM_RETRY_BASE_S;
    esc_rc rc;
    int i;

    *given_up = permanent || c->attempt >= NTF_CLAIM_ATTEMPTS_MAX;
    if (*given_up) {
        snprintf(value, sizeof(value), "failed:%lld:%s", (long long)now_ms, c->token);
        esc_strlcpy(ttl, "0", sizeof(ttl));
    }
    else {
        for (i = 1; i < c->attempt && wait_s < NTF_CLAIM_RETRY_MAX_S; i++) {
            wait_s *= 2;
        }
        if (wait_s > NTF_CLAIM_RETRY_MAX_S) {
            wait_s = NTF_CLAIM_RETRY_MAX_S;
        }
        snprintf(value, sizeof(value), "retry:%d:%lld:%s", c->attempt,
                 (long long)(now_ms + wait_s * 1000), c->token);
        snprintf(ttl, sizeof(ttl), "%lld", (long long)(wait_s * 1000 + S_RETRY_TTL_MS));
    }
    args[0] = c->value;
    args[1] = value;
    args[2] = ttl;
    rc = s_eval(kv, s_lua_fail, c->key, args, 3, &r);
    if (rc != ESC_OK) {
        return rc;
    }
    esc_kv_val_fini(&r);
    return ESC_OK;
}
