#define ESC_LOG_MODULE "test"
/* Tests of the "ingest" source plugin: the plugin runs its libmicrohttpd server on 127.0.0.1
 * with port 0, the test sends real HTTP requests with libcurl and then drains the queue through
 * poll with a capturing emit callback (no bus). Covers a good post (non-ASCII text intact), an
 * array with one bad element (partial accept, error per index), JSON Lines, no/wrong token
 * (401, token never logged), an oversized body (413), malformed JSON (400), a full queue (503 +
 * Retry-After, nothing queued), wrong method/path and config validation. With a journal
 * (ins.journaled): 202 only once poll emitted every post of the request (a poller thread), 503
 * after accept_timeout_ms when nothing polls, and 503 at once once emit said the host stops. */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "col_source.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

extern const struct col_source_plugin src_ingest_plugin;
int src_ingest_port(const struct col_source *ins);

#define CAP_MAX 16
#define TOKEN "tok-9f8e7d6c5b4a-secreto"
/* "Año nuevo 🎉 ñandú" */
#define EMOJI_TEXT "A\xc3\xb1o nuevo \xf0\x9f\x8e\x89 \xc3\xb1" "and\xc3\xba"

struct fixture {
    char log[192];
    int saved_stderr;
    struct col_source ins;
    char *ids[CAP_MAX];
    char *texts[CAP_MAX];
    size_t n;
    struct col_emit em;
    int refuse;             /* s_capture answers ESC_CLOSED (the host is stopping) */
    int poller_delay_ms;    /* s_poller: wait this long before the first poll */
    volatile int poller_stop;
    pthread_mutex_t cap_lock; /* guards n against the poller thread */
};

/* One HTTP exchange. */
struct resp {
    long status;
    char body[4096];
    size_t len;
    char retry_after[16];
};

static esc_rc
s_capture(void *arg, struct col_source *ins, struct esc_post *post)
{
    struct fixture *fx = arg;

    if (fx->refuse) {
        return ESC_CLOSED;
    }
    assert_true(fx->n < CAP_MAX);
    pthread_mutex_lock(&fx->cap_lock);
    fx->ids[fx->n] = esc_strdup(post->id);
    fx->texts[fx->n] = esc_strdup(post->text);
    fx->n++;
    pthread_mutex_unlock(&fx->cap_lock);
    ins->stats.posts++;
    return ESC_OK;
}

/* Posts emitted so far (the poller thread may be adding). */
static size_t
s_emitted(struct fixture *fx)
{
    size_t n;

    pthread_mutex_lock(&fx->cap_lock);
    n = fx->n;
    pthread_mutex_unlock(&fx->cap_lock);
    return n;
}

/* The collector loop in a thread: waits poller_delay_ms, then polls every 10 ms until
 * poller_stop is set. */
static void *
s_poller(void *arg)
{
    struct fixture *fx = arg;
    int64_t start = esc_mono_ms();

    while (!fx->poller_stop) {
        if (esc_mono_ms() - start >= fx->poller_delay_ms) {
            src_ingest_plugin.poll(&fx->ins, &fx->em, 4);
        }
        usleep(10 * 1000);
    }
    return NULL;
}

static void *
s_field(struct fixture *fx, const char *key)
{
    const struct esc_cfg_entry *e;

    for (e = src_ingest_plugin.cfg_map; e->key != NULL; e++) {
        if (strcmp(e->key, key) == 0) {
            return (char *)fx->ins.cfg + e->offset;
        }
    }
    fail_msg("no key %s in the ingest cfg_map", key);
    return NULL;
}

static int
s_setup(void **state)
{
    struct fixture *fx = esc_calloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");

    snprintf(fx->log, sizeof(fx->log), "%s/col_ingest_%d.log",
             tmp != NULL && strlen(tmp) < 64 ? tmp : "/tmp", (int)getpid());
    fx->saved_stderr = -1;
    esc_strlcpy(fx->ins.name, "empuje", sizeof(fx->ins.name));
    fx->ins.plugin = &src_ingest_plugin;
    fx->ins.cfg = esc_calloc(1, src_ingest_plugin.cfg_size);
    esc_cfg_defaults(src_ingest_plugin.cfg_map, fx->ins.cfg);
    esc_strlcpy(s_field(fx, "listen"), "127.0.0.1:0", 64);
    esc_strlcpy(s_field(fx, "token_env"), "COL_INGEST_TEST_TOKEN", 128);
    setenv("COL_INGEST_TEST_TOKEN", TOKEN, 1);
    fx->em.fn = s_capture;
    fx->em.arg = fx;
    pthread_mutex_init(&fx->cap_lock, NULL);
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
        src_ingest_plugin.exit(&fx->ins);
    }
    for (i = 0; i < fx->n; i++) {
        esc_free(fx->ids[i]);
        esc_free(fx->texts[i]);
    }
    unlink(fx->log);
    pthread_mutex_destroy(&fx->cap_lock);
    esc_free(fx->ins.cfg);
    esc_free(fx);
    return 0;
}

static void
s_start(struct fixture *fx)
{
    assert_int_equal(src_ingest_plugin.init(&fx->ins), 0);
    fx->ins.started = 1;
    assert_true(src_ingest_port(&fx->ins) > 0);
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

static size_t
s_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct resp *r = arg;
    size_t n = size * nmemb;
    size_t room = sizeof(r->body) - 1 - r->len;
    size_t take = n < room ? n : room;

    memcpy(r->body + r->len, data, take);
    r->len += take;
    r->body[r->len] = '\0';
    return n;
}

static size_t
s_on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct resp *r = arg;
    size_t n = size * nmemb;

    if (n > 13 && strncasecmp(data, "Retry-After: ", 13) == 0) {
        esc_strlcpy(r->retry_after, data + 13, n - 13 < sizeof(r->retry_after)
                                                   ? n - 13 - 1 : sizeof(r->retry_after));
    }
    return n;
}

/* Sends method url with body to the plugin; token NULL = no Authorization header. */
static void
s_request(struct fixture *fx, const char *method, const char *path, const char *token,
          const char *body, size_t len, struct resp *r)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char url[128];
    char auth[256];
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    assert_non_null(h);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", src_ingest_port(&fx->ins), path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    /* Lets the server answer 413 before the body is sent, on every curl version. */
    hdrs = curl_slist_append(hdrs, "Expect: 100-continue");
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    rc = curl_easy_perform(h);
    assert_int_equal(rc, CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
}

static void
s_post(struct fixture *fx, const char *token, const char *body, struct resp *r)
{
    s_request(fx, "POST", "/ingest", token, body, strlen(body), r);
}

/* Drains everything queued; returns the number of posts emitted. */
static size_t
s_drain(struct fixture *fx)
{
    size_t before = fx->n;
    esc_rc rc;

    do {
        rc = src_ingest_plugin.poll(&fx->ins, &fx->em, 4);
        assert_true(rc == ESC_OK || rc == ESC_RETRY);
    } while (rc == ESC_OK);
    assert_true(fx->ins.wake_ms > esc_mono_ms() - 1000);
    return fx->n - before;
}

static void
test_src_ingest_good_post_is_accepted_and_emitted(void **state)
{
    struct fixture *fx = *state;
    struct resp r;

    s_start(fx);
    assert_int_equal(s_drain(fx), 0);
    s_post(fx, TOKEN,
           "{\"id\":\"i1\",\"platform\":\"mastodon\",\"text\":\"" EMOJI_TEXT "\","
           "\"created_at\":\"2026-11-16T14:03:00Z\"}",
           &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"accepted\":1,\"rejected\":[]}");
    assert_int_equal(s_drain(fx), 1);
    assert_string_equal(fx->ids[0], "i1");
    assert_string_equal(fx->texts[0], EMOJI_TEXT);
    assert_int_equal(fx->ins.stats.skipped, 0);
}

static void
test_src_ingest_array_with_bad_element_is_partly_accepted(void **state)
{
    struct fixture *fx = *state;
    struct resp r;

    s_start(fx);
    s_post(fx, TOKEN,
           "[{\"id\":\"a0\",\"platform\":\"x\",\"text\":\"cero\",\"created_at\":1763301780000},\n"
           " {\"id\":\"a1\",\"platform\":\"x\",\"text\":\"sin fecha\"},\n"
           " {\"id\":\"a2\",\"platform\":\"x\",\"text\":\"dos\",\"created_at\":1763301780000},\n"
           " 42]",
           &r);
    assert_int_equal(r.status, 202);
    assert_non_null(strstr(r.body, "\"accepted\":2"));
    assert_non_null(strstr(r.body, "{\"index\":1,\"error\":\""));
    assert_non_null(strstr(r.body, "created_at"));
    assert_non_null(strstr(r.body, "{\"index\":3,\"error\":\""));
    assert_null(strstr(r.body, "\"index\":0"));
    assert_int_equal(s_drain(fx), 2);
    assert_string_equal(fx->ids[0], "a0");
    assert_string_equal(fx->ids[1], "a2");
    assert_int_equal(fx->ins.stats.skipped, 2);
}

static void
test_src_ingest_json_lines_body(void **state)
{
    struct fixture *fx = *state;
    struct resp r;

    s_start(fx);
    s_post(fx, TOKEN,
           "{\"id\":\"l0\",\"platform\":\"rss\",\"text\":\"caf\xc3\xa9\","
           "\"created_at\":\"2026-11-16T14:03:00Z\"}\n"
           "\n"
           "{\"id\":\"l1\",\"platform\":\"rss\",\n"
           "{\"id\":\"l2\",\"platform\":\"rss\",\"text\":\"\",\"created_at\":1763301780000}\n",
           &r);
    assert_int_equal(r.status, 202);
    assert_non_null(strstr(r.body, "\"accepted\":2"));
    assert_non_null(strstr(r.body, "{\"index\":1,"));
    assert_int_equal(s_drain(fx), 2);
    assert_string_equal(fx->texts[0], "caf\xc3\xa9");
    assert_string_equal(fx->ids[1], "l2");
}

static void
test_src_ingest_no_or_wrong_token_is_401(void **state)
{
    struct fixture *fx = *state;
    static const char post[] = "{\"id\":\"t1\",\"platform\":\"x\",\"text\":\"t\","
                               "\"created_at\":1763301780000}";
    struct resp r;
    char *log;

    s_start(fx);
    s_log_capture(fx);
    s_post(fx, NULL, post, &r);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "\"error\":\"missing or wrong bearer token"));
    s_post(fx, "tok-9f8e7d6c5b4a-secret", post, &r);
    assert_int_equal(r.status, 401);
    s_post(fx, TOKEN "x", post, &r);
    assert_int_equal(r.status, 401);
    s_post(fx, "", post, &r);
    assert_int_equal(r.status, 401);
    log = s_log_take(fx);
    assert_int_equal(s_drain(fx), 0);
    assert_non_null(strstr(log, "status=401 reason=no token"));
    assert_non_null(strstr(log, "status=401 reason=wrong token"));
    assert_null(strstr(log, "tok-9f8e7d6c5b4a"));
    esc_free(log);
}

static void
test_src_ingest_oversized_body_is_413(void **state)
{
    struct fixture *fx = *state;
    size_t len = 5000;
    char *big = esc_malloc(len + 1);
    struct resp r;

    *(int64_t *)s_field(fx, "max_body") = 1024;
    s_start(fx);
    memset(big, ' ', len);
    memcpy(big, "[1]", 3);
    big[len] = '\0';
    s_post(fx, TOKEN, big, &r);
    assert_int_equal(r.status, 413);
    assert_string_equal(r.body, "{\"error\":\"request body too large\"}");
    big[1024] = '\0';
    s_post(fx, TOKEN, big, &r); /* exactly at the limit: accepted (one rejected element) */
    assert_int_equal(r.status, 202);
    assert_non_null(strstr(r.body, "\"accepted\":0"));
    esc_free(big);
    assert_int_equal(s_drain(fx), 0);
}

static void
test_src_ingest_malformed_json_is_400(void **state)
{
    struct fixture *fx = *state;
    struct resp r;

    s_start(fx);
    s_post(fx, TOKEN, "{\"id\":\"m1\",\"platform\":", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "{\"error\":\"malformed JSON at line 1"));
    s_post(fx, TOKEN, "", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "empty body"));
    s_post(fx, TOKEN, "{\"id\":\"m2\",\"platform\":\"x\"}", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "{\"error\":\"invalid post: "));
    assert_int_equal(s_drain(fx), 0);
}

static void
test_src_ingest_full_queue_is_503_with_retry_after(void **state)
{
    struct fixture *fx = *state;
    static const char two[] =
        "[{\"id\":\"q1\",\"platform\":\"x\",\"text\":\"a\",\"created_at\":1763301780000},"
        "{\"id\":\"q2\",\"platform\":\"x\",\"text\":\"b\",\"created_at\":1763301780000}]";
    struct resp r;

    *(int64_t *)s_field(fx, "queue_max") = 3;
    s_start(fx);
    s_post(fx, TOKEN, two, &r);
    assert_int_equal(r.status, 202);
    s_post(fx, TOKEN, two, &r); /* 2 + 2 > 3: refused as a whole */
    assert_int_equal(r.status, 503);
    assert_string_equal(r.retry_after, "1");
    assert_non_null(strstr(r.body, "queue full"));
    assert_int_equal(s_drain(fx), 2);
    s_post(fx, TOKEN, two, &r); /* drained: the same request now fits */
    assert_int_equal(r.status, 202);
    assert_int_equal(s_drain(fx), 2);
    assert_string_equal(fx->ids[3], "q2");
}

static const char s_two[] =
    "[{\"id\":\"j1\",\"platform\":\"x\",\"text\":\"a\",\"created_at\":1763301780000},"
    "{\"id\":\"j2\",\"platform\":\"x\",\"text\":\"b\",\"created_at\":1763301780000}]";

static void
test_src_ingest_journaled_answers_202_after_emit(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    pthread_t th;
    int64_t t0;

    fx->ins.journaled = 1;
    s_start(fx);
    fx->poller_delay_ms = 300;
    assert_int_equal(pthread_create(&th, NULL, s_poller, fx), 0);
    t0 = esc_mono_ms();
    s_post(fx, TOKEN, s_two, &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"accepted\":2,\"rejected\":[]}");
    /* The answer came only after the loop emitted (journaled) both posts. */
    assert_int_equal(s_emitted(fx), 2);
    assert_true(esc_mono_ms() - t0 >= 250);
    fx->poller_stop = 1;
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_string_equal(fx->ids[0], "j1");
    assert_string_equal(fx->ids[1], "j2");
    /* A body with no valid post has nothing to wait for. */
    t0 = esc_mono_ms();
    s_post(fx, TOKEN, "[{\"id\":\"j3\"}, 7]", &r);
    assert_int_equal(r.status, 202);
    assert_non_null(strstr(r.body, "\"accepted\":0"));
    assert_true(esc_mono_ms() - t0 < 2000);
}

static void
test_src_ingest_journaled_not_emitted_is_503(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    int64_t t0;
    char *log;

    fx->ins.journaled = 1;
    *(int64_t *)s_field(fx, "accept_timeout_ms") = 300;
    s_start(fx);
    /* Nothing polls (the loop waits on a full journal): 503 after the timeout, not 202. */
    s_log_capture(fx);
    t0 = esc_mono_ms();
    s_post(fx, TOKEN, s_two, &r);
    assert_int_equal(r.status, 503);
    assert_true(esc_mono_ms() - t0 >= 290);
    assert_string_equal(r.retry_after, "1");
    assert_string_equal(r.body, "{\"error\":\"posts not journaled in time, retry later\","
                                "\"retry_after\":1}");
    /* emit says the host is stopping: the posts stay queued, later requests get 503 at once. */
    fx->refuse = 1;
    assert_int_equal(src_ingest_plugin.poll(&fx->ins, &fx->em, 4), ESC_CLOSED);
    fx->refuse = 0;
    t0 = esc_mono_ms();
    s_post(fx, TOKEN, s_two, &r);
    assert_int_equal(r.status, 503);
    assert_true(esc_mono_ms() - t0 < 250);
    assert_non_null(strstr(r.body, "collector stopping"));
    log = s_log_take(fx);
    assert_non_null(strstr(log, "ingest request not journaled in time, answering 503 request=1 "));
    assert_non_null(strstr(log, "reason=timeout accept_timeout_ms=300"));
    assert_non_null(strstr(log, "ingest request refused status=503 request=2 "));
    assert_null(strstr(log, TOKEN));
    esc_free(log);
    assert_int_equal(s_drain(fx), 2);
}

static void
test_src_ingest_wrong_method_or_path(void **state)
{
    struct fixture *fx = *state;
    struct resp r;

    s_start(fx);
    s_request(fx, "GET", "/ingest", TOKEN, NULL, 0, &r);
    assert_int_equal(r.status, 405);
    s_request(fx, "POST", "/otra", TOKEN, "{}", 2, &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"error\""));
}

static void
test_src_ingest_validate_and_missing_token(void **state)
{
    struct fixture *fx = *state;
    struct esc_error err;
    char *log;

    assert_int_equal(src_ingest_plugin.validate(fx->ins.cfg, "sources.1", &err), ESC_OK);
    esc_strlcpy(s_field(fx, "listen"), "localhost", 64);
    assert_int_equal(src_ingest_plugin.validate(fx->ins.cfg, "sources.1", &err), ESC_INVALID);
    assert_non_null(strstr(err.text, "sources.1.listen"));
    esc_strlcpy(s_field(fx, "listen"), "127.0.0.1:0", 64);
    esc_strlcpy(s_field(fx, "token_env"), "", 128);
    assert_int_equal(src_ingest_plugin.validate(fx->ins.cfg, "sources.1", &err), ESC_INVALID);
    assert_non_null(strstr(err.text, "token_env or token_file is required"));
    /* Configured but unset: init refuses to open an endpoint without a token. */
    esc_strlcpy(s_field(fx, "token_env"), "COL_INGEST_TEST_UNSET", 128);
    unsetenv("COL_INGEST_TEST_UNSET");
    s_log_capture(fx);
    assert_int_equal(src_ingest_plugin.init(&fx->ins), -1);
    log = s_log_take(fx);
    assert_non_null(strstr(log, "ingest needs a token source=empuje"));
    esc_free(log);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_src_ingest_good_post_is_accepted_and_emitted,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_ingest_array_with_bad_element_is_partly_accepted,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_ingest_json_lines_body, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_ingest_no_or_wrong_token_is_401, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_src_ingest_oversized_body_is_413, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_src_ingest_malformed_json_is_400, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_src_ingest_full_queue_is_503_with_retry_after,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_ingest_journaled_answers_202_after_emit,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_src_ingest_journaled_not_emitted_is_503, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_src_ingest_wrong_method_or_path, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_src_ingest_validate_and_missing_token, s_setup,
                                        s_teardown),
    };
    int rc;

    esc_log_init("test", ESC_LOG_INFO);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
