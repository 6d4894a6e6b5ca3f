#define ESC_LOG_MODULE "test"
/* The fuzz targets as regression tests of every build (tests/fuzz/CMakeLists.txt): linked with
 * one fuzz_<name>.c instead of libFuzzer, this runs the target's LLVMFuzzerTestOneInput once on
 * every file of its seed corpus (FUZZ_CORPUS, tests/fuzz/corpus/<name>), in name order, so
 * the sanitizer build of CI exercises each parser entry point without clang or libFuzzer. With
 * arguments it runs those files instead (reproducing a crash file under a debugger:
 * `build/tests/fuzz/fuzz_rss_seeds build-fuzz/crash-rss-...`). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#ifndef FUZZ_CORPUS
#error "FUZZ_CORPUS must name the target's seed corpus directory"
#endif

#define S_FILE_MAX (1024 * 1024) /* larger seeds are a mistake: libFuzzer runs use -max_len */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int s_argc;
static char **s_argv;

/* Runs the target on one file (in a buffer of exactly its size, so a read past the input is
 * caught as under libFuzzer); returns 0, or -1 when it cannot be read. */
static int
s_run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long size;
    size_t len;

    if (f == NULL) {
        print_error("cannot open %s\n", path);
        return -1;
    }
    size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0 || size > S_FILE_MAX || fseek(f, 0, SEEK_SET) != 0) {
        print_error("cannot read %s (or larger than %d bytes)\n", path, S_FILE_MAX);
        fclose(f);
        return -1;
    }
    buf = esc_malloc(size > 0 ? (size_t)size : 1);
    len = fread(buf, 1, (size_t)size, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    esc_free(buf);
    return 0;
}

static int
s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_fuzz_corpus_replays(void **state)
{
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    size_t cap = 0;
    size_t i;
    char path[1024];

    (void)state;
    if (s_argc > 1) {
        for (i = 1; i < (size_t)s_argc; i++) {
            assert_int_equal(s_run_file(s_argv[i]), 0);
        }
        return;
    }
    d = opendir(FUZZ_CORPUS);
    assert_non_null(d);
    for (e = readdir(d); e != NULL; e = readdir(d)) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            cap = cap == 0 ? 32 : cap * 2;
            names = esc_realloc(names, cap * sizeof(*names));
        }
        names[n++] = esc_strdup(e->d_name);
    }
    closedir(d);
    assert_true(n > 0);
    qsort(names, n, sizeof(*names), s_cmp);
    for (i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", FUZZ_CORPUS, names[i]);
        assert_int_equal(s_run_file(path), 0);
        esc_free(names[i]);
    }
    esc_free(names);
    print_message("replayed %zu seeds of %s\n", n, FUZZ_CORPUS);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fuzz_corpus_replays),
    };

    s_argc = argc;
    s_argv = argv;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
