#define ESC_LOG_MODULE "mimecheck"
/* Runs tests/support/mime_check.py on a message file and parses its JSON answer. The parser is
 * Python's, not ours, so a test that passes shows the message is valid MIME to a third party.
 * Test code only; single-threaded. */
#include <stdio.h>
#include <string.h>

#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"
#include "mimecheck.h"
#include "testproc.h"

#define S_OUT_MAX (4 * 1024 * 1024)

json_t *
ntf_test_mime(const char *path)
{
    char *out = esc_malloc(S_OUT_MAX);
    char file[1024];
    char *argv[] = { "/usr/bin/python3", NTF_SUPPORT_DIR "/mime_check.py", file, NULL };
    json_error_t jerr;
    json_t *j = NULL;
    int st;

    esc_strlcpy(file, path, sizeof(file));
    st = ntf_proc_run(argv, NULL, out, S_OUT_MAX, 20000);
    if (st != 0) {
        fprintf(stderr, "mime_check.py failed status=%d\n", st);
    }
    else {
        j = json_loads(out, 0, &jerr);
        if (j == NULL) {
            fprintf(stderr, "mime_check.py output is not JSON: %s\n", jerr.text);
        }
    }
    esc_free(out);
    return j;
}

static void
s_tree(const json_t *node, char *out, size_t outsz)
{
    const json_t *parts = json_object_get(node, "parts");
    size_t i;

    esc_strlcpy(out + strlen(out), json_string_value(json_object_get(node, "type")),
                outsz - strlen(out));
    if (!json_is_array(parts)) {
        return;
    }
    esc_strlcpy(out + strlen(out), "(", outsz - strlen(out));
    for (i = 0; i < json_array_size(parts); i++) {
        if (i > 0) {
            esc_strlcpy(out + strlen(out), ",", outsz - strlen(out));
        }
        s_tree(json_array_get(parts, i), out, outsz);
    }
    esc_strlcpy(out + strlen(out), ")", outsz - strlen(out));
}

void
ntf_test_mime_tree(const json_t *summary, char *out, size_t outsz)
{
    out[0] = '\0';
    s_tree(json_object_get(summary, "tree"), out, outsz);
}
