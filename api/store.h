#ifndef API_STORE_H
#define API_STORE_H

/* Read side of escucha-api: turns the aggregator's Redis keys (docs/redis-schema.md) into the
 * JSON documents of docs/api.md. Every function runs its commands as one pipelined round trip
 * (two for top lists) on a kv the caller holds exclusively, and returns ESC_OK with a new JSON
 * value in *out (caller owns: json_decref), or ESC_RETRY when Redis is unreachable. jansson
 * values are escucha-api's document model; they never leave api/. */

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "escucha/esc_kv.h"
#include "escucha/esc_rc.h"

enum api_res {
    API_RES_MINUTE = 0,
    API_RES_HOUR,
    API_RES_DAY,
};

/* A time range of buckets: [from, to) in Unix seconds, both multiples of the step of res. */
struct api_range {
    int64_t from;
    int64_t to;
    enum api_res res;
};

enum api_top_kind {
    API_TOP_AUTHORS = 0,
    API_TOP_HASHTAGS,
    API_TOP_TERMS,
    API_TOP_POSTS,
};

int64_t api_res_step(enum api_res res);
const char *api_res_name(enum api_res res);
/* "minute"/"m", "hour"/"h", "day"/"d" -> 0 and *out; -1 when unknown. */
int api_res_parse(const char *s, enum api_res *out);
/* "authors", "hashtags", "terms", "posts" -> 0 and *out; -1 when unknown. */
int api_top_parse(const char *s, enum api_top_kind *out);

/* Parses a time given as Unix seconds or RFC 3339 into Unix seconds. Returns 0 or -1. */
int api_time_parse(const char *s, int64_t *out);

/* Builds a range from the optional query values from, to (times), res; now_s is the current
 * time. Defaults: to = now; from = to - (2 h, 7 days or 90 days by res); res, when missing, is
 * chosen from the span (up to 6 h minutes, up to 14 days hours, else days). from is aligned
 * down and to up to the step. Fails (returns -1 with why filled) on an unparsable value,
 * from >= to, or more than max_points buckets. */
int api_range_parse(const char *from, const char *to, const char *res, int64_t now_s,
                    int64_t max_points, struct api_range *out, char *why, size_t whysz);

/* Series of topic key ("team/topic") over r: {"topic","res","step","from","to","t":[...],
 * "series":{"posts":[...], ... ,"sentiment_avg":[...]}} (want_series), and/or the summary of
 * the same buckets: totals, sentiment split and average, languages, platforms, peak bucket
 * (want_summary). Either out pointer may be NULL. */
esc_rc api_store_buckets(esc_kv_t *kv, const char *prefix, const char *topic,
                         const struct api_range *r, json_t **series_out, json_t **summary_out);

/* All-time totals of topic (<prefix>:t:{topic}) in the summary shape, without a range. */
esc_rc api_store_totals(esc_kv_t *kv, const char *prefix, const char *topic, json_t **out);

/* Top list of kind for topic over the UTC days overlapping [from, to) (at most 400 days):
 * each day's best `limit * 5` (at least 100) are summed, then the best `limit` are returned
 * with their details: {"kind","from","to","items":[...]}. */
esc_rc api_store_top(esc_kv_t *kv, const char *prefix, const char *topic, enum api_top_kind kind,
                     int64_t from, int64_t to, size_t limit, json_t **out);

/* Up to limit alerts of team, newest first, those of topic only when topic is not NULL, and
 * those whose window overlaps [from, to) when to > 0. {"alerts":[...]} */
esc_rc api_store_alerts(esc_kv_t *kv, const char *prefix, const char *team, const char *topic,
                        int64_t from, int64_t to, size_t limit, json_t **out);

/* Up to limit latest matched posts of topic (<prefix>:latest:{topic}), newest first: a JSON
 * array of post objects. */
esc_rc api_store_latest(esc_kv_t *kv, const char *prefix, const char *topic, size_t limit,
                        json_t **out);

/* Overview of the n topic keys: per topic the hourly posts of the 7 days ending at end_s
 * (aligned up to the hour), posts of those 7 days and of the 7 before, and the change in
 * percent (null when the earlier week had none). {"end","start","topics":[{"key",...}]} */
esc_rc api_store_overview(esc_kv_t *kv, const char *prefix, const char *const *topics, size_t n,
                          int64_t end_s, json_t **out);

/* Start of the most recent UTC day (Unix s) within max_days before now_s on which any of the n
 * topics has a day bucket; 0 when none. */
esc_rc api_store_latest_day(esc_kv_t *kv, const char *prefix, const char *const *topics, size_t n,
                            int64_t now_s, int max_days, int64_t *out);

#endif
