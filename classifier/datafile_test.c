#define ESC_LOG_MODULE "test"
#define _GNU_SOURCE /* nftw */
/* Tests of cls_datafile_find: a binary in the build tree takes the build tree's file even when
 * an installed copy exists elsewhere; a copy of this test binary placed in a fake installed
 * tree (<prefix>/bin) takes <prefix>/share/escucha/<name> even when the build tree's file is
 * readable, falls back to the build tree's file when nothing is installed, and names the
 * installed location when no candidate exists. The copy is run with --find NAME BUILD_PATH. */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
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

#include "datafile.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

struct fix {
    char dir[PATH_MAX];      /* scratch folder */
    char prefix[PATH_MAX];   /* <dir>/prefix: the fake installed tree */
    char exe[PATH_MAX];      /* <prefix>/bin/cls_datafile_test */
    char data_dir[PATH_MAX]; /* <prefix>/bin/<CLS_DATA_EXE_REL> */
    char build[PATH_MAX];    /* a readable "build tree" file: <dir>/built.dat */
};

static void
s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
s_copy_exe(const char *to)
{
    char buf[65536];
    int in = open("/proc/self/exe", O_RDONLY);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    ssize_t n;

    assert_true(in >= 0 && out >= 0);
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        assert_int_equal(write(out, buf, (size_t)n), n);
    }
    close(in);
    close(out);
}

/* Runs the installed copy with --find name build; its one output line into out. */
static void
s_find_installed(const struct fix *f, const char *name, const char *build, char *out,
                 size_t outsz)
{
    int p[2];
    pid_t pid;
    int st = 0;
    ssize_t n;
    size_t len = 0;

    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(f->exe, f->exe, "--find", name, build, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    while (len + 1 < outsz && (n = read(p[0], out + len, outsz - 1 - len)) > 0) {
        len += (size_t)n;
    }
    out[len] = '\0';
    close(p[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (len > 0 && out[len - 1] == '\n') {
        out[len - 1] = '\0';
    }
}

static void
s_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    char *p;

    esc_strlcpy(tmp, path, sizeof(tmp));
    for (p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

static int
s_setup(void **state)
{
    struct fix *f = esc_calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");
    char bin[PATH_MAX + 8];

    snprintf(f->dir, sizeof(f->dir), "%s/cls-datafile-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        esc_free(f);
        return -1;
    }
    snprintf(f->prefix, sizeof(f->prefix), "%.3900s/prefix", f->dir);
    snprintf(bin, sizeof(bin), "%.3900s/bin", f->prefix);
    s_mkdirs(bin);
    snprintf(f->exe, sizeof(f->exe), "%.3900s/cls_datafile_test", bin);
    s_copy_exe(f->exe);
    snprintf(f->data_dir, sizeof(f->data_dir), "%.3900s/%s", bin, CLS_DATA_EXE_REL);
    s_mkdirs(f->data_dir);
    snprintf(f->build, sizeof(f->build), "%.3900s/built.dat", f->dir);
    s_write(f->build, "built\n");
    *state = f;
    return 0;
}

static int
s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int
s_teardown(void **state)
{
    struct fix *f = *state;
    int rc = nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);

    esc_free(f);
    return rc;
}

static void
test_datafile_build_tree_first(void **state)
{
    struct fix *f = *state;
    char out[PATH_MAX];

    /* this binary runs from the build tree: the build tree's file, not an installed one */
    assert_string_equal(cls_datafile_find("esc-test-built.dat", f->build, out, sizeof(out)),
                        f->build);
}

static void
test_datafile_installed_layout(void **state)
{
    struct fix *f = *state;
    char installed[PATH_MAX + 64];
    char out[PATH_MAX + 64];
    char want[PATH_MAX];
    char got[PATH_MAX];

    /* installed: <prefix>/share/escucha/<name> wins over a readable build tree file */
    snprintf(installed, sizeof(installed), "%.3900s/esc-test-a.dat", f->data_dir);
    s_write(installed, "installed\n");
    s_find_installed(f, "esc-test-a.dat", f->build, out, sizeof(out));
    assert_non_null(realpath(installed, want));
    assert_non_null(realpath(out, got));
    assert_string_equal(got, want);
    assert_string_equal(out, want);

    /* nothing installed: the build tree's file still serves */
    s_find_installed(f, "esc-test-b.dat", f->build, out, sizeof(out));
    assert_string_equal(out, f->build);

    /* nothing anywhere: the installed location is named (for the error message), resolved */
    assert_non_null(realpath(f->data_dir, want));
    snprintf(installed, sizeof(installed), "%.3900s/esc-test-c.dat", want);
    s_find_installed(f, "esc-test-c.dat", "/nonexistent/esc-test-c.dat", out, sizeof(out));
    assert_string_equal(out, installed);
    assert_null(strstr(out, "/bin/.."));
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_datafile_build_tree_first),
        cmocka_unit_test(test_datafile_installed_layout),
    };
    char out[PATH_MAX + 64];

    if (argc == 4 && strcmp(argv[1], "--find") == 0) {
        puts(cls_datafile_find(argv[2], argv[3], out, sizeof(out)));
        return 0;
    }
    esc_log_init("test", ESC_LOG_ERROR);
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
