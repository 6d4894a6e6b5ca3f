#define ESC_LOG_MODULE "test"
/* Unit tests of the collector's delivery journal (journal.h): append and ack, segment files
 * deleted once fully acknowledged, a reopen that sends back exactly the unacknowledged entries
 * (acks survive it), a process killed with SIGKILL in the middle of its appends and a torn or
 * corrupt last record, the bounds, the redelivery rule (overtaken entries and silence, backoff,
 * budget, backpressure), a directory in use and a bad id file. Each test uses its own temporary
 * directory. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal.h"

#include "escucha/esc_mem.h"
#include "escucha/esc_rc.h"
#include "escucha/esc_util.h"

struct t_env {
    char dir[256];
};

static int
t_setup(void **state)
{
    struct t_env *e = esc_calloc(1, sizeof(*e));

    snprintf(e->dir, sizeof(e->dir), "/tmp/esc-journal-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    *state = e;
    return 0;
}

static int
t_teardown(void **state)
{
    struct t_env *e = *state;
    DIR *d = opendir(e->dir);
    struct dirent *de;
    char path[600];

    for (de = d != NULL ? readdir(d) : NULL; de != NULL; de = readdir(d)) {
        if (de->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", e->dir, de->d_name);
            unlink(path);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    rmdir(e->dir);
    esc_free(e);
    return 0;
}

static struct col_journal_opts
t_opts(const struct t_env *e)
{
    struct col_journal_opts o;

    o.dir = e->dir;
    o.max_bytes = 64 * 1024 * 1024;
    o.max_entries = 100000;
    o.segment_bytes = 4096;
    o.fsync_ms = -1;
    return o;
}

static col_journal_t *
t_open(const struct col_journal_opts *o)
{
    struct esc_error err;
    col_journal_t *j;

    memset(&err, 0, sizeof(err));
    j = col_journal_open(o, &err);
    if (j == NULL) {
        fail_msg("journal did not open: %s", err.text);
    }
    return j;
}

/* Payload of entry i: "post-<i>" padded to 100 bytes. */
static size_t
t_payload(int i, char *buf)
{
    memset(buf, 'x', 100);
    snprintf(buf, 100, "post-%d", i);
    return 100;
}

static uint64_t
t_append(col_journal_t *j, int i, int64_t now)
{
    char buf[100];
    size_t n = t_payload(i, buf);
    uint64_t seq = col_journal_next_seq(j);

    assert_true(col_journal_has_room(j, n));
    assert_int_equal(col_journal_append(j, buf, n, now), ESC_OK);
    return seq;
}

static size_t
t_count_files(const char *dir, const char *ext)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;
    size_t el = strlen(ext);

    assert_non_null(d);
    for (de = readdir(d); de != NULL; de = readdir(d)) {
        size_t l = strlen(de->d_name);

        n += l > el && strcmp(de->d_name + l - el, ext) == 0 ? 1 : 0;
    }
    closedir(d);
    return n;
}

/* Captures re-sent payloads; refuses (ESC_RETRY) once `room` is used up. */
struct t_cap {
    char got[64][16];
    size_t n;
    size_t room;
};

static esc_rc
t_send(void *arg, const void *buf, size_t len)
{
    struct t_cap *c = arg;

    assert_int_equal(len, 100);
    if (c->n >= c->room) {
        return ESC_RETRY;
    }
    esc_strlcpy(c->got[c->n], buf, sizeof(c->got[0]));
    c->n++;
    return ESC_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Tests
 */

static void
test_journal_append_ack_deletes_segments(void **state)
{
    struct t_env *e = *state;
    struct col_journal_opts o = t_opts(e);
    struct col_journal_stats st;
    col_journal_t *j = t_open(&o);
    int64_t now = esc_mono_ms();
    uint64_t first = 0;
    int i;

    assert_true(esc_ack_id_valid(col_journal_id(j)));
    assert_int_equal(col_journal_next_seq(j), 1);
    for (i = 0; i < 100; i++) {
        uint64_t seq = t_append(j, i, now);

        if (i == 0) {
            first = seq;
        }
        assert_int_equal(seq, first + (uint64_t)i);
    }
    col_journal_get_stats(j, &st);
    assert_int_equal(st.entries, 100);
    assert_int_equal(st.appended, 100);
    /* 116 bytes a record, 4096 a segment: 35 records each, 3 segments */
    assert_int_equal(st.segments, 3);
    assert_int_equal(t_count_files(e->dir, ".seg"), 3);
    assert_int_equal(col_journal_ack(j, first, 10, now), 10);
    assert_int_equal(col_journal_ack(j, first + 5, 10, now), 5); /* overlap counted once */
    assert_int_equal(col_journal_ack(j, first + 1000, 10, now), 0); /* not ours */
    col_journal_get_stats(j, &st);
    assert_int_equal(st.entries, 85);
    assert_int_equal(st.segments, 3);
    /* the rest of the first segment: its files go */
    assert_int_equal(col_journal_ack(j, first + 15, 20, now), 20);
    col_journal_get_stats(j, &st);
    assert_int_equal(st.segments, 2);
    assert_int_equal(t_count_files(e->dir, ".seg"), 2);
    assert_int_equal(t_count_files(e->dir, ".ack"), 0);
    /* acknowledging everything keeps the active (last) segment only */
    assert_int_equal(col_journal_ack(j, first, 100, now), 65);
    col_journal_get_stats(j, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.acked, 100);
    col_journal_close(&j);
    assert_null(j);
}

static void
test_journal_reopen_resends_unacked(void **state)
{
    struct t_env *e = *state;
    struct col_journal_opts o = t_opts(e);
    struct col_journal_stats st;
    struct t_cap cap;
    col_journal_t *j = t_open(&o);
    char id[ESC_ACK_ID_MAX + 1];
    int64_t now = esc_mono_ms();
    uint64_t first = col_journal_next_seq(j);
    uint64_t next;
    int i;

    esc_strlcpy(id, col_journal_id(j), sizeof(id));
    for (i = 0; i < 50; i++) {
        t_append(j, i, now);
    }
    col_journal_ack(j, first, 20, now);       /* 0..19 */
    col_journal_ack(j, first + 25, 20, now);  /* 25..44 */
    next = col_journal_next_seq(j);
    col_journal_close(&j);

    j = t_open(&o);
    assert_string_equal(col_journal_id(j), id); /* the id is kept */
    assert_true(col_journal_next_seq(j) == next + COL_JOURNAL_SEQ_GAP);
    col_journal_get_stats(j, &st);
    assert_int_equal(st.entries, 10);
    memset(&cap, 0, sizeof(cap));
    cap.room = 64;
    /* read back at open: sent at once, oldest first */
    assert_int_equal(col_journal_redeliver(j, now, 30000, 300000, 100, t_send, &cap), 10);
    assert_string_equal(cap.got[0], "post-20");
    assert_string_equal(cap.got[4], "post-24");
    assert_string_equal(cap.got[5], "post-45");
    assert_string_equal(cap.got[9], "post-49");
    cap.n = 0;
    assert_int_equal(col_journal_redeliver(j, now + 1, 30000, 300000, 100, t_send, &cap), 0);
    /* acks of the old entries still reach them after the reopen */
    assert_int_equal(col_journal_ack(j, first + 20, 5, now), 5);
    assert_int_equal(col_journal_ack(j, first + 45, 5, now), 5);
    col_journal_get_stats(j, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.redelivered, 10);
    col_journal_close(&j);
    j = t_open(&o);
    col_journal_get_stats(j, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.segments, 1); /* all old ones were acknowledged: deleted */
    col_journal_close(&j);
}

/* A child appends and dies by SIGKILL; the parent then tears its last record. */
static void
test_journal_killed_and_torn_tail(void **state)
{
    struct t_env *e = *state;
    struct col_journal_opts o = t_opts(e);
    struct col_journal_stats st;
    struct t_cap cap;
    col_journal_t *j;
    char path[600];
    struct stat sb;
    uint64_t first = 1; /* a fresh journal starts at 1 */
    int status = 0;
    pid_t pid;
    int fd;

    o.segment_bytes = 1024 * 1024;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct esc_error err;
        col_journal_t *cj = col_journal_open(&o, &err);
        int i;

        for (i = 0; cj != NULL && i < 30; i++) {
            char buf[100];

            t_payload(i, buf);
            col_journal_append(cj, buf, 100, esc_mono_ms());
        }
        raise(SIGKILL); /* no close, no flush of anything */
        _exit(3);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    j = t_open(&o); /* the lock died with the child */
    col_journal_get_stats(j, &st);
    assert_int_equal(st.entries, 30);
    assert_int_equal(st.torn_bytes, 0);
    col_journal_close(&j);

    /* tear the last record: 30 records of 116 bytes after the 8-byte header, minus 7 bytes */
    snprintf(path, sizeof(path), "%s/%020llu.seg", e->dir, (unsigned long long)1);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 8 + 30 * 116);
    assert_int_equal(truncate(path, sb.st_size - 7), 0);
    j = t_open(&o);
    col_journal_get_stats(j, &st);
    assert_int_equal(st.entries, 29);
    assert_int_equal(st.torn_bytes, 116 - 7);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 8 + 29 * 116);
    col_journal_close(&j);

    /* a flipped byte in the payload of the last record: its checksum fails */
    fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "Z", 1, 8 + 28 * 116 + 16 + 50), 1);
    close(fd);
    j = t_open(&o);
    col_journal_get_stats(j, &st);
    assert_int_equal(st.entries, 28);
    memset(&cap, 0, sizeof(cap));
    cap.room = 64;
    assert_int_equal(col_journal_redeliver(j, esc_mono_ms(), 1000, 1000, 100, t_send, &cap), 28);
    assert_string_equal(cap.got[27], "post-27");
    col_journal_ack(j, first, 28, esc_mono_ms());
    col_journal_get_stats(j, &st);
    assert_int_equal(st.entries, 0);
    col_journal_close(&j);
}

static void
test_journal_bounds(void **state)
{
    struct t_env *e = *state;
    struct col_journal_opts o = t_opts(e);
    col_journal_t *j;
    int64_t now = esc_mono_ms();
    uint64_t first;
    int i;

    o.max_entries = 5;
    j = t_open(&o);
    first = col_journal_next_seq(j);
    for (i = 0; i < 5; i++) {
        t_append(j, i, now);
    }
    assert_false(col_journal_has_room(j, 100));
    col_journal_ack(j, first + 2, 1, now);
    assert_true(col_journal_has_room(j, 100));
    col_journal_close(&j);

    /* bytes: the header of the new segment plus records of 116 bytes */
    o.max_entries = 1000;
    o.max_bytes = 8 + 3 * 116 + 100;
    j = t_open(&o); /* 4 unacked left from above, in old segments: over the byte bound */
    assert_false(col_journal_has_room(j, 100));
    col_journal_ack(j, 1, 10, now);
    assert_true(col_journal_has_room(j, 100));
    first = col_journal_next_seq(j);
    for (i = 0; i < 3; i++) {
        t_append(j, i, now);
    }
    assert_false(col_journal_has_room(j, 100));
    col_journal_ack(j, first, 3, now);
    /* a fully acknowledged active segment is rolled over by the next append */
    assert_true(col_journal_has_room(j, 100));
    t_append(j, 9, now);
    assert_int_equal(t_count_files(e->dir, ".seg"), 1);
    col_journal_close(&j);
}

static void
test_journal_redelivery_rule(void **state)
{
    struct t_env *e = *state;
    struct col_journal_opts o = t_opts(e);
    struct t_cap cap;
    col_journal_t *j = t_open(&o);
    int64_t t0 = esc_mono_ms();
    uint64_t s1;
    uint64_t s2;
    uint64_t s3;

    memset(&cap, 0, sizeof(cap));
    cap.room = 64;
    s1 = t_append(j, 1, t0);
    s2 = t_append(j, 2, t0 + 50);
    s3 = t_append(j, 3, t0 + 60);
    /* young: nothing due */
    assert_int_equal(col_journal_redeliver(j, t0 + 90, 100, 400, 10, t_send, &cap), 0);
    /* a slow pipeline acking in order: s1 acknowledged, s2 and s3 old but not overtaken */
    col_journal_ack(j, s1, 1, t0 + 150);
    assert_int_equal(col_journal_redeliver(j, t0 + 170, 100, 400, 10, t_send, &cap), 0);
    /* s3 acknowledged before s2: s2 was overtaken, presumed lost, sent again */
    col_journal_ack(j, s3, 1, t0 + 180);
    assert_int_equal(col_journal_redeliver(j, t0 + 190, 100, 400, 10, t_send, &cap), 1);
    assert_string_equal(cap.got[0], "post-2");
    /* backoff doubled (200 ms) and nothing overtakes it: due once no ack came for 200 ms */
    assert_int_equal(col_journal_redeliver(j, t0 + 350, 100, 400, 10, t_send, &cap), 0);
    assert_int_equal(col_journal_redeliver(j, t0 + 395, 100, 400, 10, t_send, &cap), 1);
    /* then 400 (the cap) */
    assert_int_equal(col_journal_redeliver(j, t0 + 700, 100, 400, 10, t_send, &cap), 0);
    assert_int_equal(col_journal_redeliver(j, t0 + 800, 100, 400, 10, t_send, &cap), 1);
    assert_int_equal(cap.n, 3);
    col_journal_ack(j, s2, 1, t0 + 810);
    assert_int_equal(col_journal_redeliver(j, t0 + 5000, 100, 400, 10, t_send, &cap), 0);

    /* posts sent in the same millisecond still have an order: the last one acknowledged
     * overtakes the two before it */
    cap.n = 0;
    s1 = t_append(j, 4, t0 + 6000);
    t_append(j, 5, t0 + 6000);
    s3 = t_append(j, 6, t0 + 6000);
    col_journal_ack(j, s3, 1, t0 + 6050);
    assert_int_equal(col_journal_redeliver(j, t0 + 6090, 100, 400, 10, t_send, &cap), 0);
    assert_int_equal(col_journal_redeliver(j, t0 + 6100, 100, 400, 10, t_send, &cap), 2);
    assert_string_equal(cap.got[0], "post-4");
    assert_string_equal(cap.got[1], "post-5");
    col_journal_ack(j, s1, 2, t0 + 6110);
    col_journal_close(&j);
}

static void
test_journal_budget_and_backpressure(void **state)
{
    struct t_env *e = *state;
    struct col_journal_opts o = t_opts(e);
    struct t_cap cap;
    col_journal_t *j = t_open(&o);
    int64_t t0 = esc_mono_ms();
    int i;

    for (i = 0; i < 10; i++) {
        t_append(j, i, t0);
    }
    memset(&cap, 0, sizeof(cap));
    cap.room = 3; /* the bus takes three, then is full */
    /* silence for longer than the timeout: everything is due */
    assert_int_equal(col_journal_redeliver(j, t0 + 1000, 100, 400, 100, t_send, &cap), 3);
    cap.room = 64;
    assert_int_equal(col_journal_redeliver(j, t0 + 1001, 100, 400, 4, t_send, &cap), 4);
    assert_int_equal(col_journal_redeliver(j, t0 + 1002, 100, 400, 100, t_send, &cap), 3);
    assert_string_equal(cap.got[0], "post-0");
    assert_string_equal(cap.got[3], "post-3");
    assert_string_equal(cap.got[9], "post-9");
    assert_int_equal(col_journal_redeliver(j, t0 + 1003, 100, 400, 100, t_send, &cap), 0);
    col_journal_close(&j);
}

static void
test_journal_in_use_and_bad_id(void **state)
{
    struct t_env *e = *state;
    struct col_journal_opts o = t_opts(e);
    struct esc_error err;
    col_journal_t *j = t_open(&o);
    char path[600];
    FILE *f;

    memset(&err, 0, sizeof(err));
    assert_null(col_journal_open(&o, &err));
    assert_non_null(strstr(err.text, "is in use by another collector"));
    col_journal_close(&j);

    snprintf(path, sizeof(path), "%s/id", e->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("not an id!\n", f);
    fclose(f);
    assert_null(col_journal_open(&o, &err));
    assert_non_null(strstr(err.text, "does not hold a collector id"));

    o.dir = "/proc/no/such/dir";
    assert_null(col_journal_open(&o, &err));
    assert_non_null(strstr(err.text, "cannot create the journal directory"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_journal_append_ack_deletes_segments, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_journal_reopen_resends_unacked, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_journal_killed_and_torn_tail, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_journal_bounds, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_journal_redelivery_rule, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_journal_budget_and_backpressure, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_journal_in_use_and_bad_id, t_setup, t_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
