#define ESC_LOG_MODULE "digest_test"
/* Component tests of the digest against a real redis-server: known hour buckets and alert
 * history go in, and the digest (in process and from the escucha-notifier binary) must show
 * exactly those numbers, in the team's language and time zone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "digest.h"
#include "esc_testenv.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_kv.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"
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
    "               \"from\": \"escucha <escucha@example.org>\" }\n"
    "}\n";

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

    assert_int_equal(esc_kv_cmd(kv, &v, "HSET t:c:{%s}:h:%lld posts %lld reach %lld likes 0 "
                                        "reposts 0 replies 0 engagement %lld",
                                topic, (long long)start, posts, reach, eng),
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

static void
test_digest_numbers_match_redis(void **state)
{
    struct s_env *e = *state;
    const struct esc_cfg_team *team = esc_cfg_team_find(e->cfg, "gobernanza");
    static const int64_t per_day[7] = { 5, 3, 0, 0, 0, 0, 2 };
    struct ntf_digest d;
    struct ntf_week w;
    char path[300];
    char *text;
    int i;

    s_load_gobernanza(e->kv);
    assert_int_equal(ntf_week_resolve(team->timezone, 2026, 47, &w), 0);
    assert_int_equal(ntf_digest_collect(e->kv, "t", team, &w, &d), ESC_OK);
    assert_int_equal(d.n_topics, 2);
    assert_int_equal(d.topics[0].posts, 10);
    assert_int_equal(d.topics[0].posts_prev, 12);
    assert_int_equal(d.topics[0].reach, 170);
    assert_int_equal(d.topics[0].engagement, 10);
    for (i = 0; i < 7; i++) {
        assert_int_equal(d.topics[0].per_day[i], per_day[i]);
    }
    assert_int_equal(d.topics[1].posts, 0);
    assert_int_equal(d.topics[1].posts_prev, 0);
    assert_int_equal(d.n_alerts, 2);
    assert_int_equal(d.n_skipped, 1);
    assert_string_equal(d.alerts[0].topic_name, "Elecciones 2026");
    assert_string_equal(d.alerts[1].topic_name, "Congreso");
    assert_int_equal(d.alerts[1].observed, 120);
    ntf_digest_fini(&d);

    /* the rendered message carries the same numbers */
    snprintf(path, sizeof(path), "%s/w47.eml", e->dir);
    assert_int_equal(ntf_digest_main(e->cfg, &e->ncfg, "gobernanza", "2026-W47", path),
                     NTF_EXIT_OK);
    text = ntf_test_slurp(path, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "\r\nTo: gobernanza@example.org, focal.point@example.org\r\n"));
    assert_non_null(strstr(text, "\r\nSubject: =?UTF-8?B?"));
    assert_non_null(strstr(text, "Resumen semanal de escucha: Gobernanza Democr\xc3\xa1tica\r\n"));
    assert_non_null(strstr(text, "Semana 2026-W47: lun 16 nov 2026 \xe2\x80\x93 dom 22 nov 2026 "
                                 "(America/Lima)\r\n"));
    assert_non_null(strstr(text, "Despliegue: prueba\r\n"));
    assert_non_null(strstr(text, "Publicaciones de la semana (todos los temas): 10 (semana "
                                 "anterior 12, -16,7 %)\r\n"));
    assert_non_null(strstr(text, "Congreso\r\n  Publicaciones: 10 (semana anterior 12, -16,7 %)\r\n"
                                 "  Alcance: 170\r\n  Interacci\xc3\xb3n: 10\r\n"
                                 "  Por d\xc3\xad" "a: lun 5, mar 3, mi\xc3\xa9 0, jue 0, vie 0, "
                                 "s\xc3\xa1" "b 0, dom 2\r\n"));
    assert_non_null(
        strstr(text, "Elecciones 2026\r\n  Publicaciones: 0 (semana anterior 0, +0 %)"));
    assert_non_null(strstr(text, "Alertas (2)\r\n"
                                 "  lun 16 nov 09:00  Elecciones 2026: 40 publicaciones en 30 min, "
                                 "esperadas 5,0 (x8,0)\r\n"
                                 "  mi\xc3\xa9 18 nov 14:30  Congreso: 120 publicaciones en "
                                 "30 min, "
                                 "esperadas 12,5 (x9,6)\r\n"));
    /* buckets outside the two weeks, day buckets and totals left no trace in the body */
    assert_non_null(strstr(text, "\r\n\r\n"));
    assert_null(strstr(strstr(text, "\r\n\r\n"), "1000"));
    assert_null(strstr(strstr(text, "\r\n\r\n"), "999"));
    assert_null(strstr(text, "77 publicaciones")); /* the alert before the week */
    assert_null(strstr(text, "66 publicaciones")); /* and the one after it */
    esc_free(text);
}

static void
test_digest_english_dst_week(void **state)
{
    struct s_env *e = *state;
    char path[300];
    char *text;

    /* Madrid 2026-W13 has the spring-forward Sunday: the week runs 22 Mar 23:00 UTC to
     * 29 Mar 22:00 UTC */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 3, 22, 23, 0), 1, 10, 1);  /* Mon 00:00 */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 3, 29, 10, 0), 4, 40, 3);  /* Sun 12:00 */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 3, 29, 22, 0), 50, 1, 1);  /* next Mon */
    s_bucket(e->kv, "desarrollo/anemia", s_utc(2026, 3, 22, 22, 0), 6, 1, 1);   /* W12 Sun */
    snprintf(path, sizeof(path), "%s/w13.eml", e->dir);
    assert_int_equal(ntf_digest_main(e->cfg, &e->ncfg, "desarrollo", "2026-W13", path),
                     NTF_EXIT_OK);
    text = ntf_test_slurp(path, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "escucha weekly digest: Inclusive Development\r\n"));
    assert_non_null(strstr(text, "Week 2026-W13: Mon 23 Mar 2026 \xe2\x80\x93 Sun 29 Mar 2026 "
                                 "(Europe/Madrid)\r\n"));
    assert_non_null(strstr(text, "Anemia infantil\r\n  Posts: 5 (previous week 6, -16.7%)\r\n"
                                 "  Reach: 50\r\n  Engagement: 4\r\n"
                                 "  By day: Mon 1, Tue 0, Wed 0, Thu 0, Fri 0, Sat 0, Sun 4\r\n"));
    assert_non_null(strstr(text, "No alerts this week.\r\n"));
    assert_non_null(strstr(text, "\r\nTo: development@example.org\r\n"));
    esc_free(text);
}

static void
test_digest_binary_outbox_and_exit_codes(void **state)
{
    struct s_env *e = *state;
    char out[2048];
    char want[512];
    char path[300];
    struct stat st;
    int y;
    int wk;
    char label[16];
    char *log;
    char *argv_ok[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza", "--period",
                        "2026-W47", NULL };
    char *argv_default[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "desarrollo",
                             "--to-file", path, NULL };
    char *argv_team[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "nadie", NULL };
    char *argv_period[] = { NTF_BIN, "--config", e->cfg_path, "--digest", "gobernanza",
                            "--period", "2026-W60", NULL };
    char *argv_usage[] = { NTF_BIN, "--config", e->cfg_path, "--period", "2026-W47", NULL };

    s_load_gobernanza(e->kv);
    assert_int_equal(ntf_proc_run(argv_ok, e->err_path, out, sizeof(out), 20000), 0);
    snprintf(want, sizeof(want),
             "digest team=gobernanza period=2026-W47 -> %s/out/outbox/gobernanza-2026-W47.eml\n",
             e->dir);
    assert_string_equal(out, want);
    snprintf(path, sizeof(path), "%s/out/outbox/gobernanza-2026-W47.eml", e->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 500);

    /* no --period: the last complete week in the team's time zone */
    snprintf(path, sizeof(path), "%s/default.eml", e->dir);
    ntf_week_last_complete("Europe/Madrid", esc_now_ms() / 1000, &y, &wk);
    snprintf(label, sizeof(label), "%04d-W%02d", y, wk);
    assert_int_equal(ntf_proc_run(argv_default, e->err_path, out, sizeof(out), 20000), 0);
    snprintf(want, sizeof(want), "digest team=desarrollo period=%s -> %s\n", label, path);
    assert_string_equal(out, want);

    assert_int_equal(ntf_proc_run(argv_team, e->err_path, out, sizeof(out), 20000), 2);
    assert_string_equal(out, "");
    assert_int_equal(ntf_proc_run(argv_period, e->err_path, out, sizeof(out), 20000), 2);
    assert_int_equal(ntf_proc_run(argv_usage, e->err_path, out, sizeof(out), 20000), 2);
    log = ntf_test_slurp(e->err_path, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "unknown team team=nadie"));
    assert_non_null(strstr(log, "bad period period=2026-W60"));
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
        cmocka_unit_test_setup(test_digest_binary_outbox_and_exit_codes, s_flush),
        cmocka_unit_test_setup(test_digest_redis_down_fails, s_flush),
    };

    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
