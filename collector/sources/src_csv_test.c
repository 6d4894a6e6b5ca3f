#define ESC_LOG_MODULE "test"
/* Tests of the "csv" source plugin, driven directly with a capturing emit callback (no bus):
 * a mapped export with RFC 4180 quoting (quotes, embedded commas and newlines), UTF-8 accents and
 * emoji, the three timestamp forms with their original times kept, a bad row logged with its
 * line number and skipped, a mapped column missing from the header (init fails naming it), a
 * semicolon delimiter with a timezone offset, the poll budget and config validation. Log lines
 * are checked by pointing fd 2 at a temp file while the plugin runs. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "col_source.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

extern const struct col_source_plugin src_csv_plugin;

#define CAP_MAX 16

struct fixture {
    char dir[128];
    char path[192];
    char log[192];
    int saved_stderr;
    struct col_source ins;
    struct esc_post posts[CAP_MAX]; /* copies of what was emitted (JSON round trip) */
    size_t n;
    struct col_emit em;
};

static esc_rc
s_capture(void *arg, struct col_source *ins, struct esc_post *post)
{
    struct fixture *fx = arg;
    struct esc_error err;
    char *json;

    assert_true(fx->n < CAP_MAX);
    json = esc_post_to_json(post);
    assert_int_equal(esc_post_from_json(json, strlen(json), &fx->posts[fx->n], &err), ESC_OK);
    esc_free(json);
    fx->n++;
    ins->stats.posts++;
    return ESC_OK;
}

static void
s_set(struct fixture *fx, const char *key, const char *value)
{
    const struct esc_cfg_entry *e;

    for (e = src_csv_plugin.cfg_map; e->key != NULL; e++) {
        if (strcmp(e->key, key) == 0) {
            esc_strlcpy((char *)fx->ins.cfg + e->offset, value, e->size);
            return;
        }
    }
    fail_msg("no key %s in the csv cfg_map", key);
}

static void
s_writes(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static int
s_setup(void **state)
{
    struct fixture *fx = esc_calloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");

    snprintf(fx->dir, sizeof(fx->dir), "%s/col_csv_XXXXXX",
             tmp != NULL && strlen(tmp) < 64 ? tmp : "/tmp");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/export.csv", fx->dir);
    snprintf(fx->log, sizeof(fx->log), "%s/stderr.log", fx->dir);
    fx->saved_stderr = -1;
    esc_strlcpy(fx->ins.name, "archivo", sizeof(fx->ins.name));
    fx->ins.plugin = &src_csv_plugin;
    fx->ins.cfg = esc_calloc(1, src_csv_plugin.cfg_size);
    esc_cfg_defaults(src_csv_plugin.cfg_map, fx->ins.cfg);
    s_set(fx, "path", fx->path);
    fx->em.fn = s_capture;
    fx->em.arg = fx;
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    struct fixture *fx = *state;
    size_t i;

    if (fx->saved_stderr >= 0) {
        dup2(fx->saved_stderr, 2);
        close(fx->saved_stderr);
    }
    if (fx->ins.started) {
        src_csv_plugin.exit(&fx->ins);
    }
    for (i = 0; i < fx->n; i++) {
        esc_post_fini(&fx->posts[i]);
    }
    unlink(fx->path);
    unlink(fx->log);
    rmdir(fx->dir);
    esc_free(fx->ins.cfg);
    esc_free(fx);
    return 0;
}

static void
s_log_capture(struct fixture *fx)
{
    int fd = open(fx->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    assert_true(fd >= 0);
    fx->saved_stderr = dup(2);
    assert_true(fx->saved_stderr >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
}

/* Restores fd 2 and returns what was logged (caller frees). */
static char *
s_log_take(struct fixture *fx)
{
    FILE *f;
    char *buf = esc_calloc(1, 64 * 1024);
    size_t n;

    dup2(fx->saved_stderr, 2);
    close(fx->saved_stderr);
    fx->saved_stderr = -1;
    f = fopen(fx->log, "r");
    assert_non_null(f);
    n = fread(buf, 1, 64 * 1024 - 1, f);
    buf[n] = '\0';
    fclose(f);
    fputs(buf, stderr);
    return buf;
}

static void
s_run(struct fixture *fx, size_t budget)
{
    int i;
    esc_rc rc;

    assert_int_equal(src_csv_plugin.init(&fx->ins), 0);
    fx->ins.started = 1;
    for (i = 0; i < 1000 && !fx->ins.done; i++) {
        rc = src_csv_plugin.poll(&fx->ins, &fx->em, budget);
        assert_int_equal(rc, ESC_OK);
    }
    assert_true(fx->ins.done);
}

static void
s_map_x_export(struct fixture *fx)
{
    s_set(fx, "platform", "x");
    s_set(fx, "id_column", "Tweet ID");
    s_set(fx, "text_column", "Text");
    s_set(fx, "created_at_column", "Date");
    s_set(fx, "author_column", "Username");
    s_set(fx, "followers_column", "Followers");
    s_set(fx, "likes_column", "Likes");
    s_set(fx, "url_column", "URL");
    s_set(fx, "lang_column", "Lang");
}

/* The happy path: an X export with quoting, an embedded newline, commas, accents and emoji, and
 * all three timestamp forms; a bad row (line 6) is skipped and logged with its line. */
static void
test_src_csv_maps_columns_quoting_and_original_times(void **state)
{
    struct fixture *fx = *state;
    char *log;

    s_map_x_export(fx);
    s_writes(fx->path,
             "Tweet ID,Date,Username,Text,Followers,Likes,URL,Lang,Extra\r\n"
             "1001,2025-03-01T10:00:00Z,@ana,\"Hola, \"\"mundo\"\"\",12,3,"
             "https://x.com/a/1,es,z\r\n"
             "1002,2025-03-02 08:30:00,@b\xc3\xa9\x61,\"l\xc3\xadnea uno\nl\xc3\xadnea dos\","
             "0,,,,\r\n"
             "1003,1741000000,@c,\"caf\xc3\xa9 \xf0\x9f\x8e\x89, ma\xc3\xb1\x61na\",5,1,,pt,\r\n"
             "1004,not-a-date,@d,texto,1,1,,,\r\n"
             "1005,1741100000123,@e,\"\",7,2,,,\r\n");
    s_log_capture(fx);
    s_run(fx, 64);
    log = s_log_take(fx);

    assert_int_equal(fx->n, 4);
    assert_string_equal(fx->posts[0].id, "1001");
    assert_string_equal(fx->posts[0].platform, "x");
    assert_string_equal(fx->posts[0].text, "Hola, \"mundo\"");
    assert_string_equal(fx->posts[0].author, "@ana");
    assert_int_equal(fx->posts[0].followers, 12);
    assert_int_equal(fx->posts[0].likes, 3);
    assert_string_equal(fx->posts[0].url, "https://x.com/a/1");
    assert_string_equal(fx->posts[0].lang, "es");
    assert_int_equal(fx->posts[0].created_at, 1740823200000LL); /* 2025-03-01T10:00:00Z */

    assert_string_equal(fx->posts[1].id, "1002");
    assert_string_equal(fx->posts[1].author, "@b\xc3\xa9\x61");
    assert_string_equal(fx->posts[1].text, "l\xc3\xadnea uno\nl\xc3\xadnea dos");
    assert_int_equal(fx->posts[1].created_at, 1740904200000LL); /* naive, timezone UTC */
    assert_null(fx->posts[1].url);

    assert_string_equal(fx->posts[2].text, "caf\xc3\xa9 \xf0\x9f\x8e\x89, ma\xc3\xb1\x61na");
    assert_int_equal(fx->posts[2].created_at, 1741000000000LL); /* Unix seconds */

    assert_string_equal(fx->posts[3].id, "1005");
    assert_string_equal(fx->posts[3].text, "");
    assert_int_equal(fx->posts[3].created_at, 1741100000123LL); /* Unix ms */

    assert_int_equal(fx->ins.stats.skipped, 1);
    /* The row of 1004 starts on line 6 (the quoted newline makes row 1002 two lines long). */
    assert_non_null(strstr(log, "skipped bad row source=archivo line=6 reason=\"bad timestamp "
                                "in column 'Date'\""));
    assert_null(strstr(log, "texto"));
    esc_free(log);
}

static void
test_src_csv_row_with_wrong_field_count_is_skipped(void **state)
{
    struct fixture *fx = *state;
    char *log;

    s_writes(fx->path, "id,text,created_at\n"
                       "a1,uno,2025-01-01T00:00:00Z\n"
                       "a2,\"dos, tres\",2025-01-01T00:00:00Z,sobra\n"
                       "a3,,2025-01-01T00:00:00Z\n"
                       ",vacio,2025-01-01T00:00:00Z\n"
                       "a5,\"cinco\" y m\xc3\xa1s,2025-01-01T00:00:00Z\n"
                       "a6,se\"is,2025-01-01T00:00:00Z\n"
                       "a4,cuatro,2025-01-02T00:00:00+01:00");
    s_log_capture(fx);
    s_run(fx, 64);
    log = s_log_take(fx);
    assert_int_equal(fx->n, 3);
    assert_string_equal(fx->posts[0].id, "a1");
    assert_string_equal(fx->posts[1].id, "a3");
    assert_string_equal(fx->posts[2].id, "a4");
    assert_string_equal(fx->posts[2].platform, "csv");
    assert_int_equal(fx->posts[2].created_at, 1735772400000LL); /* 2025-01-01T23:00:00Z */
    assert_int_equal(fx->ins.stats.skipped, 4);
    assert_non_null(strstr(log, "line=3 reason=\"row has 4 fields, the header has 3\""));
    assert_non_null(strstr(log, "line=5 reason=\"empty id (column 'id')\""));
    assert_non_null(strstr(log, "line=6 reason=\"malformed quoting"));
    assert_non_null(strstr(log, "line=7 reason=\"malformed quoting"));
    esc_free(log);
}

static void
test_src_csv_missing_header_column_fails_naming_it(void **state)
{
    struct fixture *fx = *state;
    char *log;

    s_map_x_export(fx);
    s_writes(fx->path, "Tweet ID,Date,Username,Text,Likes,URL,Lang\n"
                       "1,2025-03-01T10:00:00Z,@a,t,1,,\n");
    s_log_capture(fx);
    assert_int_equal(src_csv_plugin.init(&fx->ins), -1);
    log = s_log_take(fx);
    assert_non_null(strstr(log, "column missing from the csv header source=archivo"));
    assert_non_null(strstr(log, "column=\"Followers\" key=followers_column"));
    assert_null(strstr(log, "column=\"Likes\""));
    esc_free(log);
}

static void
test_src_csv_delimiter_and_timezone_for_naive_times(void **state)
{
    struct fixture *fx = *state;

    s_set(fx, "delimiter", ";");
    s_set(fx, "timezone", "-05:00");
    s_writes(fx->path, "\xef\xbb\xbfid;text;created_at\n"
                       "b1;\"uno; dos, tres\";2025-06-01 12:00:00\n"
                       "b2;zwei;2025-06-01T12:00:00Z\n");
    s_run(fx, 1);
    assert_int_equal(fx->n, 2);
    assert_string_equal(fx->posts[0].text, "uno; dos, tres");
    assert_int_equal(fx->posts[0].created_at, 1748797200000LL); /* 17:00Z */
    assert_int_equal(fx->posts[1].created_at, 1748779200000LL); /* zoned: offset not applied */
}

static void
test_src_csv_unterminated_quote_at_end_is_skipped(void **state)
{
    struct fixture *fx = *state;
    char *log;

    s_writes(fx->path, "id,text,created_at\n"
                       "c1,bien,2025-01-01T00:00:00Z\n"
                       "c2,\"sin cierre,2025-01-01T00:00:00Z\n");
    s_log_capture(fx);
    s_run(fx, 64);
    log = s_log_take(fx);
    assert_int_equal(fx->n, 1);
    assert_string_equal(fx->posts[0].id, "c1");
    assert_int_equal(fx->ins.stats.skipped, 1);
    assert_non_null(strstr(log, "line=3 reason=\"unterminated quoted field at the end of the "
                                "file\""));
    esc_free(log);
}

static void
test_src_csv_missing_file_and_empty_file_fail_init(void **state)
{
    struct fixture *fx = *state;
    char *log;

    s_log_capture(fx);
    assert_int_equal(src_csv_plugin.init(&fx->ins), -1);
    s_writes(fx->path, "");
    assert_int_equal(src_csv_plugin.init(&fx->ins), -1);
    log = s_log_take(fx);
    assert_non_null(strstr(log, "cannot open file source=archivo"));
    assert_non_null(strstr(log, "csv file has no header row source=archivo"));
    esc_free(log);
}

static void
test_src_csv_validate_rejects_bad_config(void **state)
{
    struct fixture *fx = *state;
    struct esc_error err;

    assert_int_equal(src_csv_plugin.validate(fx->ins.cfg, "sources.3", &err), ESC_OK);
    s_set(fx, "delimiter", ";;");
    assert_int_equal(src_csv_plugin.validate(fx->ins.cfg, "sources.3", &err), ESC_INVALID);
    assert_non_null(strstr(err.text, "sources.3.delimiter"));
    s_set(fx, "delimiter", "tab");
    s_set(fx, "timezone", "Europe/Madrid");
    assert_int_equal(src_csv_plugin.validate(fx->ins.cfg, "sources.3", &err), ESC_INVALID);
    assert_non_null(strstr(err.text, "sources.3.timezone"));
    s_set(fx, "timezone", "+0530");
    s_set(fx, "text_column", "");
    assert_int_equal(src_csv_plugin.validate(fx->ins.cfg, "sources.3", &err), ESC_INVALID);
    assert_non_null(strstr(err.text, "sources.3.text_column"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_src_csv_maps_columns_quoting_and_original_times,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_csv_row_with_wrong_field_count_is_skipped,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_csv_missing_header_column_fails_naming_it,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_csv_delimiter_and_timezone_for_naive_times,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_csv_unterminated_quote_at_end_is_skipped,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_csv_missing_file_and_empty_file_fail_init,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_csv_validate_rejects_bad_config, s_setup,
                                        s_teardown),
    };

    esc_log_init("col_csv_test", ESC_LOG_INFO);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
