#define ESC_LOG_MODULE "digest_test"
/* Component tests of the digest against a real redis-server: known hour buckets, top lists and
 * alert history go in, and the digest (in process and from the escucha-notifier binary) must
 * show exactly those numbers, in the team's language and time zone, as a MIME message that
 * Python's email package parses into a text part, an HTML part and one inline chart per topic.
 * Hostile post content (markup, CRLF, invalid UTF-8, huge texts, javascript: links) must come
 * out inert. Exactly-once for the command: a second send of a period does nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "digest.h"
#include "chart.h"
#include "esc_testenv.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"
#include "mail.h"
#include "mimecheck.h"
#include "ntf.h"
#include "testproc.h"
#include "week.h"

struct s_env {
    struct esc_testenv_redis redis;
    char dir[128];
    char cfg_path[256];
    char err_path[256];
    struct esc_cfg *cfg;
    struct ntf_cfg ncfg;
    esc_kv_t *kv;
};

static const char s_cfg_fmt[] =
    "{\n"
    " \"deployment\": \"prueba\",\n"
    " \"redis\": { \"unix_socket\": \"%s\", \"prefix\": \"t\" },\n"
    " \"bus\": { \"notify\": \"ipc://%s/notify.sock\" },\n"
    " \"teams\": [\n"
    "  { \"id\": \"gobernanza\", \"name\": \"Gobernanza Democr\\u00e1tica\",\n"
    "    \"language\": \"es\",\n"
    "    \"timezone\": \"America/Lima\",\n"
    "    \"recipients\": [\"gobernanza@example.org\", \"focal.point@example.org\"],\n"
    "    \"topics\": [\n"
    "      { \"id\": \"congreso\", \"name\": \"Congreso\", \"keywords\": [\"congreso\"] },\n"
    "      { \"id\": \"elecciones\", \"name\": \"Elecciones 2026\",\n"
    "        \"keywords\": [\"voto\"] } ] },\n"
    "  { \"id\": \"desarrollo\", \"name\": \"Inclusive Development\", \"language\": \"en\",\n"
    "    \"timezone\": \"Europe/Madrid\", \"recipients\": [\"development@example.org\"],\n"
    "    \"topics\": [ { \"id\": \"anemia\", \"name\": \"Anemia infantil\",\n"
    "                  \"keywords\": [\"anemia\"] } ] }\n"
    " ],\n"
    " \"notifier\": { \"outbox\": \"%s/out/outbox\",\n"
    "               \"from\": \"escucha <escucha@example.org>\",\n"
    "               \"digest\": { \"desarrollo\": { \"every\": \"monthly\" } } }\n"
    "}\n";

/* Asserts that needle is in hay, printing hay when it is not. */
#define S_HAS(hay, needle) s_has((hay), (needle), __LINE__)

static void
s_has(const char *hay, const char *needle, int line)
{
    if (hay == NULL || strstr(hay, needle) == NULL) {
        fprintf(stderr, "line %d: missing\n---\n%s\n--- in ---\n%s\n---\n", line, needle,
                hay != NULL ? hay : "(null)");
        fail();
    }
}

static int64_t
s_utc(int y, int mo, int d, int h, int mi)
{
    return ntf_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

static void
s_bucket(esc_kv_t *kv, const char *topic, int64_t start, long long posts, long long reach,
         long long eng)
{
    struct esc_kv_val v;

    assert_int_equal(esc_kv_cmd(kv, &v, "HSET t:c:{%s}:h:%lld posts %lld reach %lld likes %lld "
                                        "reposts 0 replies 0 engagement %lld",
                                topic, (long long)start, posts, reach, eng, eng),
                     ESC_OK);
    assert_int_equal(v.type, ESC_KV_INT);
    esc_kv_val_fini(&v);
}

/* Adds field += n to an hour bucket (the aggregator's split fields). */
static void
s_bucket_field(esc_kv_t *kv, const char *topic, int64_t start, const char *field, long long n)
{
    struct esc_kv_val v;

    assert_int_equal(esc_kv_cmd(kv, &v, "HINCRBY t:c:{%s}:h:%lld %s %lld", topic,
                                (long long)start, field, n),
                     ESC_OK);
    assert_int_equal(v.type, ESC_KV_INT);
    esc_kv_val_fini(&v);
}

static void
s_push_alert(esc_kv_t *kv, const char *team, const char *topic, const char *topic_name,
             int64_t start_s, long long observed, double expected)
{
    struct esc_alert a;
    struct esc_kv_val v;
    char id[128];
    char *json;

    snprintf(id, sizeof(id), "%s/%s/%lld", team, topic, (long long)start_s * 1000);
    esc_alert_init(&a);
    a.id = esc_strdup(id);
    a.team = esc_strdup(team);
    a.topic = esc_strdup(topic);
    a.topic_name = esc_strdup(topic_name);
    a.kind = esc_strdup("spike");
    a.window_start = start_s * 1000;
    a.window_end = (start_s + 1800) * 1000;
    a.observed = observed;
    a.expected = expected;
    a.score = (double)observed / expected;
    a.ts = a.window_end;
    esc_strlist_push(&a.terms, &a.n_terms, "vacancia");
    esc_strlist_push(&a.terms, &a.n_terms, "#congreso");
    esc_strlist_push(&a.samples, &a.n_samples, "El congreso vota la vacancia <b>hoy</b>");
    esc_strlist_push(&a.sample_authors, &a.n_sample_authors, "@periodista");
    esc_strlist_push(&a.sample_urls, &a.n_sample_urls, "https://example.org/p/1");
    json = esc_alert_to_json(&a);
    assert_int_equal(esc_kv_cmd(kv, &v, "LPUSH t:alerts:{%s} %s", team, json), ESC_OK);
    esc_kv_val_fini(&v);
    esc_free(json);
    esc_alert_fini(&a);
}

/* The data of the Spanish team for 2026-W47 (Lima, UTC-5: local midnight = 05:00 UTC). */
static void
s_load_gobernanza(esc_kv_t *kv)
{
    struct esc_kv_val v;

    s_bucket(kv, "gobernanza/congreso", s_utc(2026, 11, 16, 15, 0), 5, 100, 7); /* Mon 10:00 */
    s_bucket(kv, "gobernanza/congreso", s_utc(2026, 11, 17, 5, 0), 3, 50, 1);   /* Tue 00:00 */
    s_bucket(kv, "gobernanza/congreso", s_utc(2026, 11, 23, 4, 0), 2, 20, 2);   /* Sun 23:00 */
    s_bucket(kv, "gobernanza/congreso", s_utc(2026, 11, 23, 5, 0), 100, 1, 1);  /* next week */
    s_bucket(kv, "gobernanza/congreso", s_utc(2026, 11, 16, 4, 0), 4, 1, 1);    /* W46 Sun */
    s_bucket(kv, "gobernanza/congreso", s_utc(2026, 11, 10, 12, 0), 8, 1, 1);   /* W46 */
    s_bucket(kv, "gobernanza/congreso", s_utc(2026, 11, 9, 4, 0), 1000, 1, 1);  /* W45 */
    /* day buckets and all-time totals are not what the digest reads */
    assert_int_equal(esc_kv_cmd(kv, &v, "HSET t:c:{gobernanza/elecciones}:d:%lld posts 999",
                                (long long)s_utc(2026, 11, 18, 0, 0)),
                     ESC_OK);
    esc_kv_val_fini(&v);
    assert_int_equal(esc_kv_cmd(kv, &v, "HSET t:t:{gobernanza/elecciones} posts 999"), ESC_OK);
    esc_kv_val_fini(&v);

    s_push_alert(kv, "gobernanza", "congreso", "Congreso", s_utc(2026, 11, 18, 19, 30), 120, 12.5);
    s_push_alert(kv, "gobernanza", "congreso", "Congreso", s_utc(2026, 11, 15, 12, 0), 77, 7.0);
    s_push_alert(kv, "gobernanza", "elecciones", "Elecciones 2026", s_utc(2026, 11, 16, 14, 0),
                 40, 5.0);
    s_push_alert(kv, "gobernanza", "congreso", "Congreso", s_utc(2026, 11, 23, 6, 0), 66, 6.0);
    assert_int_equal(esc_kv_cmd(kv, &v, "LPUSH t:alerts:{gobernanza} %s", "not json {"), ESC_OK);
    esc_kv_val_fini(&v);
    /* the same alert twice (an aggregator retry) is listed once */
    s_push_alert(kv, "gobernanza", "congreso", "Congreso", s_utc(2026, 11, 18, 19, 30), 120, 12.5);
}

/* A top post as the aggregator stores it: zset member + hash. */
static void
s_top_post(esc_kv_t *kv, const char *topic, int64_t day, const char *member, long long eng,
           const char *text, const char *author, const char *url, int64_t created_ms)
{
    struct esc_kv_val v;

    assert_int_equal(esc_kv_cmd(kv, &v, "ZADD t:top:{%s}:posts:%lld %lld %s", topic,
                                (long long)day, eng, member),
                     ESC_OK);
    esc_kv_val_fini(&v);
    assert_int_equal(esc_kv_cmd(kv, &v, "HSET t:post:{%s}:%s text %s author %s author_name %s "
                                        "url %s platform x created_at %lld likes %lld reposts 3 "
                                        "replies 2 engagement %lld followers 1000",
                                topic, member, text, "handle", author, url,
                                (long long)created_ms, eng - 5, eng),
                     ESC_OK);
    esc_kv_val_fini(&v);
}

static int
s_setup(void **state)
{
    struct s_env *e = esc_calloc(1, sizeof(*e));
    struct esc_kv_opts o;
    struct esc_error err;
    char *text;
    size_t n;

    if (esc_testenv_redis_start(&e->redis, 0) != 0 || ntf_test_tmpdir(e->dir, sizeof(e->dir))) {
        esc_free(e);
        return -1;
    }
    n = sizeof(s_cfg_fmt) + strlen(e->redis.sock) + 2 * strlen(e->dir);
    text = esc_malloc(n);
    snprintf(text, n, s_cfg_fmt, e->redis.sock, e->dir, e->dir);
    snprintf(e->cfg_path, sizeof(e->cfg_path), "%s/escucha.json", e->dir);
    snprintf(e->err_path, sizeof(e->err_path), "%s/notifier.stderr", e->dir);
    assert_int_equal(ntf_test_write(e->cfg_path, text), 0);
    esc_free(text);
    e->cfg = esc_cfg_load(e->cfg_path, &err);
    if (e->cfg == NULL) {
        fprintf(stderr, "config: %s\n", err.text);
        return -1;
    }
    if (ntf_cfg_load(e->cfg, &e->ncfg, &err) != ESC_OK) {
        fprintf(stderr, "notifier config: %s\n", err.text);
        return -1;
    }
    esc_testenv_kv_opts(&e->redis, &o);
    e->kv = esc_kv_new(&o);
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    struct s_env *e = *state;

    esc_kv_destroy(&e->kv);
    esc_cfg_free(&e->cfg);
    esc_testenv_redis_stop(&e->redis);
    ntf_test_rmtree(e->dir);
    esc_free(e);
    return 0;
}

static int
s_flush(void **state)
{
    struct s_env *e = *state;
    struct esc_kv_val v;

    assert_int_equal(esc_kv_cmd(e->kv, &v, "FLUSHALL"), ESC_OK);
    esc_kv_val_fini(&v);
    return 0;
}

/* Previews the digest of team for period into dir/name and returns the message. */
static char *
s_preview(struct s_env *e, const char *team, const char *period, const char *name, char *path,
          size_t pathsz)
{
    char *text;

    snprintf(path, pathsz, "%s/%s", e->dir, name);
    assert_int_equal(ntf_digest_main(e->cfg, &e->ncfg, team, period, path, 0), NTF_EXIT_OK);
    text = ntf_test_slurp(path, NULL);
    assert_non_null(text);
    return text;
}

/* Parses the message at path with Python and checks the structure every digest has. Returns
 * the summary (caller decrefs). */
static json_t *
s_mime(const char *path, size_t n_images)
{
    json_t *j = ntf_test_mime(path);
    json_t *imgs;
    json_t *cids;
    char want[256];
    char tree[512];
    size_t i;
    size_t k;

    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "defects")), 0);
    snprintf(want, sizeof(want), "multipart/related(multipart/alternative(text/plain,text/html)");
    for (i = 0; i < n_images; i++) {
        esc_strlcpy(want + strlen(want), ",image/png", sizeof(want) - strlen(want));
    }
    esc_strlcpy(want + strlen(want), ")", sizeof(want) - strlen(want));
    ntf_test_mime_tree(j, tree, sizeof(tree));
    assert_string_equal(tree, want);
    assert_string_equal(json_string_value(json_object_get(j, "text_cte")), "8bit");
    assert_string_equal(json_string_value(json_object_get(j, "html_cte")), "quoted-printable");
    /* every image is a real PNG, inline, and referenced by the HTML, and nothing else is */
    imgs = json_object_get(j, "images");
    cids = json_object_get(j, "html_cids");
    assert_int_equal(json_array_size(imgs), n_images);
    assert_int_equal(json_array_size(cids), n_images);
    for (i = 0; i < n_images; i++) {
        json_t *im = json_array_get(imgs, i);

        assert_true(json_is_true(json_object_get(im, "png")));
        assert_int_equal(json_integer_value(json_object_get(im, "width")), 2 * 592);
        assert_int_equal(json_integer_value(json_object_get(im, "height")), 2 * 200);
        assert_string_equal(json_string_value(json_object_get(im, "disposition")), "inline");
        for (k = 0; k < n_images; k++) {
            if (strcmp(json_string_value(json_array_get(cids, k)),
                       json_string_value(json_object_get(im, "cid")))
                == 0) {
                break;
            }
        }
        assert_true(k < n_images);
    }
    return j;
}

static void
test_digest_numbers_match_redis(void **state)
{
    struct s_env *e = *state;
    const struct esc_cfg_team *team = esc_cfg_team_find(e->cfg, "gobernanza");
    static const int64_t per_day[7] = { 5, 3, 0, 0, 0, 0, 2 };
    struct ntf_digest d;
    struct ntf_period p;
    char path[300];
    const char *html;
    const char *body;
    json_t *j;
    char *text;
    int i;

    s_load_gobernanza(e->kv);
    assert_int_equal(ntf_period_resolve(team->timezone, NTF_PERIOD_WEEK,
                                        ntf_days_from_civil(2026, 11, 16), &p),
                     0);
    assert_int_equal(ntf_digest_collect(e->kv, "t", team, &p, &d), ESC_OK);
    assert_int_equal(d.n_topics, 2);
    assert_int_equal(d.topics[0].posts, 10);
    assert_int_equal(d.topics[0].posts_prev, 12);
    assert_int_equal(d.topics[0].reach, 170);
    assert_int_equal(d.topics[0].engagement, 10);
    assert_int_equal(d.topics[0].likes, 10);
    assert_int_equal(d.topics[0].n_slots, 7);
    for (i = 0; i < 7; i++) {
        assert_int_equal(d.topics[0].per_day[i], per_day[i]);
        assert_int_equal(d.topics[0].slots[i], per_day[i]);
    }
    assert_int_equal(d.topics[0].slots_prev[1], 8);  /* W46 Tuesday */
    assert_int_equal(d.topics[0].slots_prev[6], 4);  /* W46 Sunday */
    assert_int_equal(d.topics[0].slot_spike[2], 1);  /* the spike on Wednesday */
    assert_int_equal(d.topics[1].slot_spike[0], 1);  /* Elecciones on Monday */
    assert_int_equal(d.topics[1].posts, 0);
    assert_int_equal(d.topics[1].posts_prev, 0);
    assert_int_equal(d.n_alerts, 2);
    assert_int_equal(d.n_skipped, 1);
    assert_string_equal(d.alerts[0].topic_name, "Elecciones 2026");
    assert_string_equal(d.alerts[1].topic_name, "Congreso");
    assert_int_equal(d.alerts[1].observed, 120);
    assert_int_equal(d.alerts[1].n_terms, 2);
    assert_string_equal(d.alerts[1].terms[0], "vacancia");
    assert_false(d.have.splits); /* the buckets above carry no language/sentiment fields */
    assert_false(ntf_digest_empty(&d));
    ntf_digest_fini(&d);

    /* the rendered message carries the same numbers */
    text = s_preview(e, "gobernanza", "2026-W47", "w47.eml", path, sizeof(path));
    S_HAS(text, "\r\nTo: gobernanza@example.org, focal.point@example.org\r\n");
    S_HAS(text, "\r\nSubject: =?UTF-8?B?");
    j = s_mime(path, 2);
    assert_string_equal(json_string_value(json_object_get(j, "subject")),
                        "escucha \xc2\xb7 Gobernanza Democr\xc3\xa1tica \xc2\xb7 semana 2026-W47");
    body = json_string_value(json_object_get(j, "text"));
    assert_non_null(body);
    S_HAS(body, "Resumen semanal de escucha: Gobernanza Democr\xc3\xa1tica\n");
    S_HAS(body, "Semana 2026-W47: lun 16 nov 2026 \xe2\x80\x93 dom 22 nov 2026 "
                                 "(America/Lima)\n");
    S_HAS(body, "Despliegue: prueba\n");
    S_HAS(body, "Publicaciones de la semana (todos los temas): 10 (semana "
                                 "anterior 12, -16,7 %)\n");
    S_HAS(body, "Alcance: 170 \xc2\xb7 Interacci\xc3\xb3n: 10 \xc2\xb7 Picos: 2\n");
    S_HAS(body, "Congreso\n  Publicaciones: 10 (semana anterior 12, -16,7 %)\n"
                                 "  Alcance: 170\n  Interacci\xc3\xb3n: 10 (10 me gusta, 0 "
                                 "compartidos, 0 respuestas)\n"
                                 "  Por d\xc3\xad" "a: lun 16 5, mar 17 3, mi\xc3\xa9 18 0, "
                                 "jue 19 0, "
                                 "vie 20 0, s\xc3\xa1" "b 21 0, dom 22 2\n");
    S_HAS(body, "  Picos (1):\n    mi\xc3\xa9 18 nov 14:30: 120 publicaciones en "
                                 "30 min, esperadas 12,5 (x9,6)\n"
                                 "      T\xc3\xa9rminos frecuentes: vacancia, #congreso\n"
                                 "      Ejemplo: \"El congreso vota la vacancia <b>hoy</b>\" "
                                 "(@periodista)\n");
    S_HAS(body, "Elecciones 2026\n  Publicaciones: 0 (semana anterior 0, +0 %)\n");
    S_HAS(body, "    lun 16 nov 09:00: 40 publicaciones en 30 min, esperadas "
                                 "5,0 (x8,0)\n");
    /* buckets outside the two weeks, day buckets and totals left no trace */
    assert_null(strstr(body, "1000"));
    assert_null(strstr(body, "999"));
    assert_null(strstr(body, "77 publicaciones")); /* the alert before the week */
    assert_null(strstr(body, "66 publicaciones")); /* and the one after it */

    /* the HTML part shows the same numbers, and the sample's markup as text */
    html = json_string_value(json_object_get(j, "html"));
    assert_non_null(html);
    S_HAS(html, "<html lang=\"es\">");
    S_HAS(html, "Gobernanza Democr\xc3\xa1tica");
    S_HAS(html, "<strong>10</strong> publicaciones");
    S_HAS(html, "\xe2\x96\xbc 16,7 %</span> vs. semana anterior (12)");
    S_HAS(html, "Picos (1)");
    S_HAS(html, "El congreso vota la vacancia &lt;b&gt;hoy&lt;/b&gt;");
    assert_null(strstr(html, "<b>hoy"));
    S_HAS(html, "<a href=\"https://example.org/p/1\"");
    json_decref(j);
    esc_free(text);
}

static void
test_digest_english_dst_week(void **state)
{
    struct s_env *e = *state;
    char path[300];
    const char *body;
    json_t *j;
    char *text;

    /* Madrid 2026-W13 has the spring-forward Sunday: the week runs 22 Mar 23:00 UTC to
     * 29 Mar 22:00 UTC */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 3, 22, 23, 0), 1, 10, 1);  /* Mon 00:00 */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 3, 29, 10, 0), 4, 40, 3);  /* Sun 12:00 */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 3, 29, 22, 0), 50, 1, 1);  /* next Mon */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 3, 22, 22, 0), 6, 1, 1);   /* W12 Sun */
    text = s_preview(e, "desarrollo", "2026-W13", "w13.eml", path, sizeof(path));
    S_HAS(text, "\r\nTo: development@example.org\r\n");
    S_HAS(text, "\r\nSubject: =?UTF-8?B?"); /* "·" is not ASCII */
    j = s_mime(path, 1);
    assert_string_equal(json_string_value(json_object_get(j, "subject")),
                        "escucha \xc2\xb7 Inclusive Development \xc2\xb7 week 2026-W13");
    body = json_string_value(json_object_get(j, "text"));
    S_HAS(body, "escucha weekly digest: Inclusive Development\n");
    S_HAS(body, "Week 2026-W13: Mon 23 Mar 2026 \xe2\x80\x93 Sun 29 Mar 2026 "
                                 "(Europe/Madrid)\n");
    S_HAS(body, "Anemia infantil\n  Posts: 5 (previous week 6, -16.7%)\n"
                                 "  Reach: 50\n  Engagement: 4 (4 likes, 0 reposts, 0 replies)\n"
                                 "  By day: Mon 23 1, Tue 24 0, Wed 25 0, Thu 26 0, Fri 27 0, "
                                 "Sat 28 0, Sun 29 4\n");
    assert_non_null(strstr(json_string_value(json_object_get(j, "html")), "<html lang=\"en\">"));
    json_decref(j);
    esc_free(text);
}

static void
test_digest_daily_and_monthly_periods(void **state)
{
    struct s_env *e = *state;
    const struct esc_cfg_team *team = esc_cfg_team_find(e->cfg, "desarrollo");
    struct ntf_digest d;
    struct ntf_period p;
    char path[300];
    const char *body;
    json_t *j;
    char *text;

    /* Madrid, Sun 25 Oct 2026 falls back: a 25-hour day, 22:00 UTC on the 24th to 23:00 UTC */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 10, 24, 22, 0), 2, 1, 1); /* 00:00 */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 10, 25, 1, 0), 3, 1, 1);  /* 02:00 CET */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 10, 25, 22, 0), 7, 1, 1); /* 23:00 */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 10, 25, 23, 0), 50, 1, 1); /* Monday */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 10, 24, 10, 0), 4, 1, 1); /* Saturday */
    assert_int_equal(ntf_period_resolve(team->timezone, NTF_PERIOD_DAY,
                                        ntf_days_from_civil(2026, 10, 25), &p),
                     0);
    assert_int_equal(ntf_digest_collect(e->kv, "t", team, &p, &d), ESC_OK);
    assert_int_equal(d.topics[0].n_slots, 25);
    assert_int_equal(d.topics[0].posts, 12);
    assert_int_equal(d.topics[0].posts_prev, 4);
    assert_int_equal(d.topics[0].slots[0], 2);
    assert_int_equal(d.topics[0].slots[3], 3);  /* the fourth hour: 02:00 the second time */
    assert_int_equal(d.topics[0].slots[24], 7);
    ntf_digest_fini(&d);
    text = s_preview(e, "desarrollo", "2026-10-25", "day.eml", path, sizeof(path));
    j = s_mime(path, 1);
    assert_string_equal(json_string_value(json_object_get(j, "subject")),
                        "escucha \xc2\xb7 Inclusive Development \xc2\xb7 day 2026-10-25");
    body = json_string_value(json_object_get(j, "text"));
    S_HAS(body, "escucha daily digest: Inclusive Development\n"
                                 "Day 2026-10-25: Sun 25 Oct 2026 (Europe/Madrid)\n");
    S_HAS(body, "  Posts: 12 (previous day 4, +200.0%)\n");
    S_HAS(body, "  By hour: 00 2, 01 0, 02 0, 03 3,");
    json_decref(j);
    esc_free(text);

    /* the month: October 2026, previous September */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 9, 30, 21, 0), 9, 1, 1); /* 30 Sep 23:00 */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 10, 31, 23, 0), 11, 1, 1); /* 1 Nov */
    assert_int_equal(ntf_period_resolve(team->timezone, NTF_PERIOD_MONTH,
                                        ntf_days_from_civil(2026, 10, 1), &p),
                     0);
    assert_int_equal(ntf_digest_collect(e->kv, "t", team, &p, &d), ESC_OK);
    assert_int_equal(d.topics[0].n_slots, 31);
    assert_int_equal(d.topics[0].n_slots_prev, 30);
    assert_int_equal(d.topics[0].posts, 66);       /* 4 + 2 + 3 + 7 + 50 (Monday 26th) */
    assert_int_equal(d.topics[0].posts_prev, 9);
    assert_int_equal(d.topics[0].slots[24], 12);   /* the 25th */
    assert_int_equal(d.topics[0].slots[23], 4);
    assert_int_equal(d.topics[0].slots[25], 50);
    assert_int_equal(d.topics[0].slots[30], 0);    /* 1 Nov 00:00 CET is November */
    assert_int_equal(d.topics[0].slots_prev[29], 9);
    ntf_digest_fini(&d);
    text = s_preview(e, "desarrollo", "2026-10", "month.eml", path, sizeof(path));
    j = s_mime(path, 1);
    body = json_string_value(json_object_get(j, "text"));
    S_HAS(body, "escucha monthly digest: Inclusive Development\n"
                                 "Month 2026-10: October 2026 (Europe/Madrid)\n");
    S_HAS(body, "  Posts: 66 (previous month 9, +633.3%)\n");
    json_decref(j);
    esc_free(text);
}

static void
test_digest_splits_and_tops_match_redis(void **state)
{
    struct s_env *e = *state;
    const struct esc_cfg_team *team = esc_cfg_team_find(e->cfg, "gobernanza");
    const char *t = "gobernanza/congreso";
    int64_t h1 = s_utc(2026, 11, 17, 15, 0); /* Tue 10:00 in Lima */
    int64_t h2 = s_utc(2026, 11, 19, 20, 0); /* Thu 15:00 */
    int64_t d17 = s_utc(2026, 11, 17, 0, 0);
    int64_t d19 = s_utc(2026, 11, 19, 0, 0);
    struct esc_kv_val v;
    struct ntf_digest d;
    struct ntf_period p;
    char path[300];
    const char *body;
    const char *html;
    json_t *j;
    char *text;

    s_bucket(e->kv, t, h1, 6, 600, 6);
    s_bucket(e->kv, t, h2, 4, 400, 4);
    s_bucket_field(e->kv, t, h1, "lang:es", 5);
    s_bucket_field(e->kv, t, h1, "lang:qu", 1);
    s_bucket_field(e->kv, t, h2, "lang:es", 2);
    s_bucket_field(e->kv, t, h2, "lang:en", 2);
    s_bucket_field(e->kv, t, h1, "platform:x", 6);
    s_bucket_field(e->kv, t, h2, "platform:mastodon", 4);
    s_bucket_field(e->kv, t, h1, "sentiment_pos", 2);
    s_bucket_field(e->kv, t, h1, "sentiment_neu", 3);
    s_bucket_field(e->kv, t, h1, "sentiment_neg", 1);
    s_bucket_field(e->kv, t, h2, "sentiment_neg", 4);
    /* top lists of two UTC days, merged by the digest */
    assert_int_equal(esc_kv_cmd(e->kv, &v, "ZADD t:top:{%s}:hashtags:%lld 3 congreso 1 vacancia",
                                t, (long long)d17),
                     ESC_OK);
    esc_kv_val_fini(&v);
    assert_int_equal(esc_kv_cmd(e->kv, &v, "ZADD t:top:{%s}:hashtags:%lld 2 congreso 4 peru", t,
                                (long long)d19),
                     ESC_OK);
    esc_kv_val_fini(&v);
    assert_int_equal(esc_kv_cmd(e->kv, &v, "ZADD t:top:{%s}:terms:%lld 5 presupuesto", t,
                                (long long)d17),
                     ESC_OK);
    esc_kv_val_fini(&v);
    assert_int_equal(esc_kv_cmd(e->kv, &v, "ZADD t:top:{%s}:authors:%lld 7.5 @ana 2.25 @beto", t,
                                (long long)d17),
                     ESC_OK);
    esc_kv_val_fini(&v);
    assert_int_equal(esc_kv_cmd(e->kv, &v, "HSET t:top:{%s}:authors:%lld:info posts:@ana 4 "
                                           "posts:@beto 1",
                                t, (long long)d17),
                     ESC_OK);
    esc_kv_val_fini(&v);
    s_top_post(e->kv, t, d17, "x:1", 50, "Primera publicaci\xc3\xb3n sobre el Congreso", "Ana",
               "https://x.example/ana/1", h1 * 1000 + 5000);
    s_top_post(e->kv, t, d19, "x:2", 80, "Segunda: la mesa directiva", "Beto",
               "https://x.example/beto/2", h2 * 1000);
    /* on a UTC day of the period, but before Monday 00:00 in Lima: left out */
    s_top_post(e->kv, t, s_utc(2026, 11, 16, 0, 0), "x:3", 999, "del domingo", "Carla",
               "https://x.example/3", s_utc(2026, 11, 16, 3, 0) * 1000);

    assert_int_equal(ntf_period_resolve(team->timezone, NTF_PERIOD_WEEK,
                                        ntf_days_from_civil(2026, 11, 16), &p),
                     0);
    assert_int_equal(ntf_digest_collect(e->kv, "t", team, &p, &d), ESC_OK);
    assert_true(d.have.splits);
    assert_true(d.have.tops);
    assert_int_equal(d.topics[0].posts, 10);
    assert_int_equal(d.topics[0].n_langs, 3);
    assert_string_equal(d.topics[0].langs[0].name, "es");
    assert_true(d.topics[0].langs[0].n == 7.0);
    assert_int_equal(d.topics[0].n_platforms, 2);
    assert_string_equal(d.topics[0].platforms[0].name, "x");
    assert_int_equal(d.topics[0].sent_pos, 2);
    assert_int_equal(d.topics[0].sent_neg, 5);
    assert_int_equal(d.topics[0].n_hashtags, 3);
    assert_string_equal(d.topics[0].hashtags[0].name, "congreso");
    assert_true(d.topics[0].hashtags[0].n == 5.0);
    assert_string_equal(d.topics[0].hashtags[1].name, "peru");
    assert_int_equal(d.topics[0].n_authors, 2);
    assert_string_equal(d.topics[0].authors[0].name, "@ana");
    assert_true(d.topics[0].authors[0].n == 4.0); /* posts from the info hash */
    assert_int_equal(d.topics[0].n_top_posts, 2);
    assert_string_equal(d.topics[0].top_posts[0].author, "Beto");
    assert_int_equal(d.topics[0].top_posts[0].likes, 75);
    assert_string_equal(d.topics[0].top_posts[1].text,
                        "Primera publicaci\xc3\xb3n sobre el Congreso");
    ntf_digest_fini(&d);

    text = s_preview(e, "gobernanza", "2026-W47", "tops.eml", path, sizeof(path));
    j = s_mime(path, 2);
    body = json_string_value(json_object_get(j, "text"));
    S_HAS(body, "  Idiomas: espa\xc3\xb1ol 70 %, ingl\xc3\xa9s 20 %, quechua 10 %\n");
    S_HAS(body, "  Plataformas: X 60 %, Mastodon 40 %\n");
    S_HAS(body, "  Sentimiento: positivo 20 %, neutro 30 %, negativo 50 %\n");
    S_HAS(body, "  Publicaciones destacadas:\n    1. Beto \xc2\xb7 X \xc2\xb7 "
                                 "jue 19 nov 15:00 \xc2\xb7 75 me gusta, 3 compartidos, 2 "
                                 "respuestas\n       Segunda: la mesa directiva\n"
                                 "       https://x.example/beto/2\n");
    S_HAS(body, "  Autores destacados: @ana, @beto\n");
    S_HAS(body, "  Hashtags: #congreso (5), #peru (4), #vacancia (1)\n");
    S_HAS(body, "  T\xc3\xa9rminos frecuentes: presupuesto (5)\n");
    assert_null(strstr(body, "del domingo"));
    html = json_string_value(json_object_get(j, "html"));
    S_HAS(html, "espa\xc3\xb1ol");
    S_HAS(html, "Segunda: la mesa directiva");
    S_HAS(html, "<a href=\"https://x.example/beto/2\"");
    S_HAS(html, "#congreso <span style=\"color:#6b7280;\">5</span>");
    json_decref(j);
    esc_free(text);
}

static void
test_digest_untrusted_content_is_inert(void **state)
{
    struct s_env *e = *state;
    const char *t = "gobernanza/congreso";
    int64_t h = s_utc(2026, 11, 18, 15, 0);
    int64_t day = s_utc(2026, 11, 18, 0, 0);
    struct esc_cfg_team evil_team;
    struct ntf_digest d;
    struct ntf_mail m;
    struct ntf_period p;
    struct esc_kv_val v;
    char path[300];
    char *longtext = esc_malloc(20001);
    char run[300];
    const char *body;
    const char *html;
    const char *q;
    char *subject;
    char *msg;
    json_t *j;
    char *text;
    size_t i;

    memset(longtext, 'A', 20000);
    longtext[20000] = '\0';
    s_bucket(e->kv, t, h, 4, 4, 4);
    s_top_post(e->kv, t, day, "x:s", 40, "<script>alert(1)</script> hola", "\"><img src=x "
               "onerror=alert(1)>", "javascript:alert(1)", h * 1000);
    s_top_post(e->kv, t, day, "x:c", 30, "l\xc3\xadnea1\r\nBcc: victim@example.org\r\n\r\n<b>",
               "Mal\r\nBcc: victim@example.org", "https://ok.example/a?b=1&c=2", h * 1000);
    s_top_post(e->kv, t, day, "x:l", 20, longtext, "Largo", "https://ok.example/l", h * 1000);
    s_top_post(e->kv, t, day, "x:u", 10, "bytes \xff\xfe malos \xe2\x80\xae al rev\xc3\xa9s",
               "u", "HTTPS://OK.EXAMPLE/U\"onmouseover=x", h * 1000);
    assert_int_equal(esc_kv_cmd(e->kv, &v, "ZADD t:top:{%s}:hashtags:%lld 3 %s", t,
                                (long long)day, "<i>tag</i>"),
                     ESC_OK);
    esc_kv_val_fini(&v);
    esc_free(longtext);

    text = s_preview(e, "gobernanza", "2026-W47", "evil.eml", path, sizeof(path));
    j = s_mime(path, 2);
    html = json_string_value(json_object_get(j, "html"));
    body = json_string_value(json_object_get(j, "text"));
    /* no markup from posts survives; only our own tags exist */
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<img src=x"));
    assert_null(strstr(html, "<i>"));
    assert_null(strstr(html, "<b>"));
    S_HAS(html, "&lt;script&gt;alert(1)&lt;/script&gt; hola");
    S_HAS(html, "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;");
    S_HAS(html, "#&lt;i&gt;tag&lt;/i&gt;");
    /* only http(s) links become href, with & and " escaped; nothing else does */
    assert_null(strstr(html, "javascript:"));
    assert_null(strstr(html, "OK.EXAMPLE/U"));
    S_HAS(html, "href=\"https://ok.example/a?b=1&amp;c=2\"");
    S_HAS(html, "href=\"https://ok.example/l\"");
    for (q = html; (q = strstr(q, "href=\"")) != NULL; q += 6) {
        assert_true(strncmp(q + 6, "https://", 8) == 0 || strncmp(q + 6, "http://", 7) == 0);
    }
    /* CR/LF in names and texts became spaces: no line of the text part starts with "Bcc" */
    assert_null(strstr(body, "\nBcc"));
    S_HAS(body, "Mal Bcc: victim@example.org");
    S_HAS(body, "l\xc3\xadnea1 Bcc: victim@example.org <b>");
    /* invalid UTF-8 shown as U+FFFD, bidi override as a space; the long text is cut */
    S_HAS(body, "bytes \xef\xbf\xbd\xef\xbf\xbd malos al rev\xc3\xa9s");
    S_HAS(body, "AAAA\xe2\x80\xa6\n");
    /* 280 characters at most, then "…" */
    memset(run, 'A', 281);
    run[281] = '\0';
    assert_null(strstr(html, run));
    esc_strlcpy(run + 280, "\xe2\x80\xa6", sizeof(run) - 280);
    S_HAS(html, run);
    /* the headers are exactly ours */
    assert_int_equal(json_array_size(json_object_get(j, "headers")), 8);
    for (i = 0; i < json_array_size(json_object_get(j, "headers")); i++) {
        assert_string_not_equal(json_string_value(json_array_get(json_object_get(j, "headers"),
                                                                 i)),
                                "Bcc");
    }
    json_decref(j);
    esc_free(text);

    /* a team name with CR/LF cannot add a header through the subject */
    evil_team = *esc_cfg_team_find(e->cfg, "gobernanza");
    esc_strlcpy(evil_team.name, "Equipo\r\nBcc: victim@example.org\r\nX-Evil: 1",
                sizeof(evil_team.name));
    assert_int_equal(ntf_period_resolve(evil_team.timezone, NTF_PERIOD_WEEK,
                                        ntf_days_from_civil(2026, 11, 16), &p),
                     0);
    assert_int_equal(ntf_digest_collect(e->kv, "t", &evil_team, &p, &d), ESC_OK);
    subject = ntf_digest_subject(&d);
    memset(&m, 0, sizeof(m));
    m.from = "escucha <escucha@example.org>";
    m.to = (const char *const *)evil_team.recipients;
    m.n_to = evil_team.n_recipients;
    m.subject = subject;
    m.body = "b\n";
    m.html = "<p>b</p>\n";
    m.id_hint = "x";
    msg = ntf_mail_build(&m, NULL);
    assert_non_null(msg);
    assert_null(strstr(msg, "\r\nBcc:"));
    assert_null(strstr(msg, "\r\nX-Evil:"));
    esc_free(msg);
    esc_free(subject);
    ntf_digest_fini(&d);
}

static void
test_digest_binary_outbox_once_and_exit_codes(void **state)
{
    struct s_env *e = *state;
    char out[2048];
    char want[512];
    char path[300];
    char label[16];
    struct stat st;
    struct esc_kv_val v;
    char *log;
    char *argv_ok[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza", "--period",
                        "2026-W47", NULL };
    char *argv_force[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza",
                           "--period", "2026-W47", "--force", NULL };
    char *argv_default[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "desarrollo",
                             "--to-file", path, NULL };
    char *argv_team[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "nadie", NULL };
    char *argv_period[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza",
                            "--period", "2026-W60", NULL };
    char *argv_day[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza",
                         "--period", "2026-02-30", NULL };
    char *argv_usage[] = { NTF_BIN, "--config", e->cfg_path, "--period", "2026-W47", NULL };
    char *argv_usage2[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza",
                            "--to-file", "x.eml", "--force", NULL };
    char *argv_dump[] = { NTF_BIN, "--config", e->cfg_path, "--dump-config", NULL };
    char dump[8192];

    s_load_gobernanza(e->kv);
    assert_int_equal(ntf_proc_run(argv_ok, e->err_path, out, sizeof(out), 20000), 0);
    snprintf(want, sizeof(want),
             "digest team=gobernanza period=2026-W47 -> %s/out/outbox/gobernanza-2026-W47.eml\n",
             e->dir);
    assert_string_equal(out, want);
    snprintf(path, sizeof(path), "%s/out/outbox/gobernanza-2026-W47.eml", e->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 5000);
    assert_int_equal(esc_kv_cmd(e->kv, &v, "GET t:ntf:digest:{gobernanza}:2026-W47"), ESC_OK);
    assert_int_equal(v.type, ESC_KV_STR);
    assert_int_equal(strncmp(v.str, "sent:", 5), 0);
    esc_kv_val_fini(&v);
    assert_int_equal(esc_kv_cmd(e->kv, &v, "PTTL t:ntf:digest:{gobernanza}:2026-W47"), ESC_OK);
    assert_int_equal(v.integer, -1); /* "sent" never expires */
    esc_kv_val_fini(&v);

    /* the same period again: nothing is sent, the file stays as it was */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(ntf_proc_run(argv_ok, e->err_path, out, sizeof(out), 20000), 0);
    assert_string_equal(out, "digest team=gobernanza period=2026-W47 already done (sent); "
                             "--force sends it again\n");
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_equal(ntf_proc_run(argv_force, e->err_path, out, sizeof(out), 20000), 0);
    assert_string_equal(out, want);
    assert_int_equal(stat(path, &st), 0);

    /* no --period: the last complete period of the team's schedule (monthly for desarrollo) */
    snprintf(path, sizeof(path), "%s/default.eml", e->dir);
    ntf_period_label(NTF_PERIOD_MONTH,
                     ntf_period_last_complete("Europe/Madrid", NTF_PERIOD_MONTH,
                                              esc_now_ms() / 1000),
                     label, sizeof(label));
    assert_int_equal(ntf_proc_run(argv_default, e->err_path, out, sizeof(out), 20000), 0);
    snprintf(want, sizeof(want), "digest team=desarrollo period=%s -> %s\n", label, path);
    assert_string_equal(out, want);

    assert_int_equal(ntf_proc_run(argv_team, e->err_path, out, sizeof(out), 20000), 2);
    assert_string_equal(out, "");
    assert_int_equal(ntf_proc_run(argv_period, e->err_path, out, sizeof(out), 20000), 2);
    assert_int_equal(ntf_proc_run(argv_day, e->err_path, out, sizeof(out), 20000), 2);
    assert_int_equal(ntf_proc_run(argv_usage, e->err_path, out, sizeof(out), 20000), 2);
    assert_int_equal(ntf_proc_run(argv_usage2, e->err_path, out, sizeof(out), 20000), 2);
    assert_int_equal(ntf_proc_run(argv_dump, e->err_path, dump, sizeof(dump), 20000), 0);
    S_HAS(dump, "notifier.digest.gobernanza: enabled=true every=weekly weekday=mon monthday=1 "
                "time=08:00 send_empty=false timezone=America/Lima\n");
    S_HAS(dump, "notifier.digest.desarrollo: enabled=true every=monthly ");
    log = ntf_test_slurp(e->err_path, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "unknown team team=nadie"));
    assert_non_null(strstr(log, "bad period period=2026-W60"));
    assert_non_null(strstr(log, "bad period period=2026-02-30"));
    assert_null(strstr(log, "Sanitizer"));
    assert_null(strstr(log, "runtime error"));
    esc_free(log);
}

static void
test_digest_redis_down_fails(void **state)
{
    struct s_env *e = *state;
    char cfg_path[300];
    char err_path[300];
    char out[1024];
    char *text;
    char *log;
    size_t n;
    char *argv[] = { NTF_BIN, "--config", cfg_path, "--digest", "gobernanza", "--period",
                     "2026-W47", NULL };

    snprintf(cfg_path, sizeof(cfg_path), "%s/down.json", e->dir);
    snprintf(err_path, sizeof(err_path), "%s/down.stderr", e->dir);
    n = sizeof(s_cfg_fmt) + 3 * strlen(e->dir) + 32;
    text = esc_malloc(n);
    snprintf(text, n, s_cfg_fmt, "/nonexistent/redis.sock", e->dir, e->dir);
    assert_int_equal(ntf_test_write(cfg_path, text), 0);
    esc_free(text);
    assert_int_equal(ntf_proc_run(argv, err_path, out, sizeof(out), 20000), 1);
    assert_string_equal(out, "");
    log = ntf_test_slurp(err_path, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "reason=redis unreachable"));
    assert_null(strstr(log, "Sanitizer")); /* a leak report would also exit 1 */
    esc_free(log);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_digest_numbers_match_redis, s_flush),
        cmocka_unit_test_setup(test_digest_english_dst_week, s_flush),
        cmocka_unit_test_setup(test_digest_daily_and_monthly_periods, s_flush),
        cmocka_unit_test_setup(test_digest_splits_and_tops_match_redis, s_flush),
        cmocka_unit_test_setup(test_digest_untrusted_content_is_inert, s_flush),
        cmocka_unit_test_setup(test_digest_binary_outbox_once_and_exit_codes, s_flush),
        cmocka_unit_test_setup(test_digest_redis_down_fails, s_flush),
    };
    int rc;

    if (sodium_init() < 0) {
        return 1;
    }
    rc = cmocka_run_group_tests(tests, s_setup, s_teardown);
    ntf_chart_cleanup(); /* in-process digests drew charts */
    return rc;
}
