#define ESC_LOG_MODULE "langid-baseline"
/* Baseline for docs/language-id.md: Debian's libexttextcat (Cavnar-Trenkle n-gram ranks) on
 * the same labelled files as escucha-langid-eval. Reads "lang<TAB>length<TAB>text" lines on
 * stdin and writes "truth<TAB>length<TAB>answer<TAB>VARIANT" with the first language
 * textcat_Classify ranks ("und" for UNKNOWN/SHORT; quz is reported as qu). Usage:
 * exttextcat_eval CONF VARIANT - CONF is fpdb.conf (all 160 languages) or a copy listing only
 * the configured ones. Not part of the build; run by run_baselines.sh. */
#include <stdio.h>
#include <string.h>

#include <libexttextcat/textcat.h>

int
main(int argc, char **argv)
{
    static char line[1 << 16];
    void *h;

    if (argc != 3) {
        fprintf(stderr, "usage: exttextcat_eval CONF VARIANT\n");
        return 2;
    }
    h = special_textcat_Init(argv[1], "/usr/share/libexttextcat/");
    if (h == NULL) {
        fprintf(stderr, "exttextcat_eval: cannot load %s\n", argv[1]);
        return 1;
    }
    textcat_SetProperty(h, TCPROP_MINIMUM_DOCUMENT_SIZE, 1);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        size_t len = strlen(line);
        char *t1;
        char *t2;
        const char *res;
        char ans[32] = "und";

        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }
        if (len == 0 || line[0] == '#') {
            continue;
        }
        t1 = strchr(line, '\t');
        t2 = t1 != NULL ? strchr(t1 + 1, '\t') : NULL;
        if (t2 == NULL) {
            continue;
        }
        *t1 = '\0';
        *t2 = '\0';
        res = textcat_Classify(h, t2 + 1, strlen(t2 + 1));
        if (res != NULL && res[0] == '[') {
            size_t i = 0;

            while (res[i + 1] != '\0' && res[i + 1] != ']' && res[i + 1] != '-' &&
                   i + 1 < sizeof(ans)) {
                ans[i] = res[i + 1];
                i++;
            }
            ans[i] = '\0';
            if (strcmp(ans, "quz") == 0) {
                snprintf(ans, sizeof(ans), "qu");
            }
        }
        printf("%s\t%s\t%s\t%s\n", line, t1 + 1, ans, argv[2]);
    }
    textcat_Done(h);
    return 0;
}
