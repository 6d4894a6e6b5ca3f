#define ESC_LOG_MODULE "datafile"
/* Default locations of the classifier's data files (datafile.h). An installed binary must
 * not depend on the tree it was built in, and a binary in the build tree (tests, benchmarks)
 * must use the files just built there, never an older installed copy. So the running
 * executable (/proc/self/exe) decides: inside the build tree, the build tree's file comes
 * first; elsewhere, the installed layout around the executable, then the configured prefix.
 * The build and install directories are compiled in by classifier/CMakeLists.txt. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datafile.h"

#include "escucha/esc_util.h"

#ifndef CLS_DATA_BUILD_DIR
#error "CLS_DATA_BUILD_DIR is set by classifier/CMakeLists.txt"
#endif
#ifndef CLS_DATA_INSTALL_DIR
#error "CLS_DATA_INSTALL_DIR is set by classifier/CMakeLists.txt"
#endif
#ifndef CLS_DATA_EXE_REL
#error "CLS_DATA_EXE_REL is set by classifier/CMakeLists.txt"
#endif

/* The directory of the running executable into out; false when it cannot be read. */
static bool
s_exe_dir(char *out, size_t outsz)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash;

    if (n <= 0) {
        return false;
    }
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash == NULL) {
        return false;
    }
    *slash = '\0';
    return esc_strlcpy(out, exe, outsz) < outsz;
}

/* True when dir (resolved) lies inside the build tree. */
static bool
s_in_build_tree(const char *dir)
{
    char build[PATH_MAX];
    size_t n;

    if (realpath(CLS_DATA_BUILD_DIR, build) == NULL) {
        return false;
    }
    n = strlen(build);
    return strncmp(dir, build, n) == 0 && (dir[n] == '/' || dir[n] == '\0');
}

const char *
cls_datafile_find(const char *name, const char *build_path, char *out, size_t outsz)
{
    char exe_dir[PATH_MAX];
    char cand[3][PATH_MAX + 256];
    size_t n = 0;
    size_t i;
    bool have_exe = s_exe_dir(exe_dir, sizeof(exe_dir));
    bool in_build = have_exe && s_in_build_tree(exe_dir);

    if (in_build) {
        esc_strlcpy(cand[n++], build_path, sizeof(cand[0]));
    }
    if (have_exe) {
        char rel[PATH_MAX + 128];
        char dir[PATH_MAX];

        /* resolved when it exists, so logs and errors show <prefix>/share/escucha/<name> */
        snprintf(rel, sizeof(rel), "%.4000s/%.100s", exe_dir, CLS_DATA_EXE_REL);
        snprintf(cand[n++], sizeof(cand[0]), "%.4096s/%.200s",
                 realpath(rel, dir) != NULL ? dir : rel, name);
    }
    snprintf(cand[n++], sizeof(cand[0]), "%.1000s/%.200s", CLS_DATA_INSTALL_DIR, name);
    for (i = 0; i < n; i++) {
        if (access(cand[i], R_OK) == 0) {
            esc_strlcpy(out, cand[i], outsz);
            return out;
        }
    }
    if (!in_build && access(build_path, R_OK) == 0) {
        esc_strlcpy(out, build_path, outsz);
        return out;
    }
    esc_strlcpy(out, cand[0], outsz);
    return out;
}
