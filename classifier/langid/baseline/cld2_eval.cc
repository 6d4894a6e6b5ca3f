// Baseline for docs/language-id.md: Debian's CLD2 (libcld2-dev, full table) on the same
// labelled files as escucha-langid-eval. Reads "lang<TAB>length<TAB>text" lines on stdin and
// writes "truth<TAB>length<TAB>answer<TAB>variant" for two variants: "cld2" (the language CLD2
// returns, best-effort flag on) and "cld2-restricted" (the first of CLD2's top three that is
// one of the languages given as arguments, else "und"). Not part of the build: C++ because
// CLD2 has no C API; run by run_baselines.sh.
#include <cstdio>

#include <cld2/public/compact_lang_det.h>
#include <cld2/public/encodings.h>

#include <cstring>
#include <set>
#include <string>

namespace CLD2 {
const char *LanguageCode(Language lang);
}

int
main(int argc, char **argv)
{
    std::set<std::string> allowed(argv + 1, argv + argc);
    char line[1 << 16];

    while (std::fgets(line, sizeof(line), stdin) != nullptr) {
        size_t len = std::strlen(line);
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }
        if (len == 0 || line[0] == '#') {
            continue;
        }
        char *t1 = std::strchr(line, '\t');
        char *t2 = t1 != nullptr ? std::strchr(t1 + 1, '\t') : nullptr;
        if (t2 == nullptr) {
            continue;
        }
        *t1 = '\0';
        *t2 = '\0';
        const char *text = t2 + 1;
        CLD2::CLDHints hints = { nullptr, nullptr, CLD2::UNKNOWN_ENCODING,
                                 CLD2::UNKNOWN_LANGUAGE };
        CLD2::Language lang3[3];
        int percent3[3];
        double score3[3];
        int text_bytes = 0;
        bool reliable = false;
        int valid = 0;
        CLD2::Language top = CLD2::ExtDetectLanguageSummaryCheckUTF8(
            text, (int)std::strlen(text), true, &hints, CLD2::kCLDFlagBestEffort, lang3,
            percent3, score3, nullptr, &text_bytes, &reliable, &valid);
        std::string ans = CLD2::LanguageCode(top);
        std::string restricted = "und";
        for (int i = 0; i < 3; i++) {
            std::string c = CLD2::LanguageCode(lang3[i]);
            if (allowed.count(c) != 0) {
                restricted = c;
                break;
            }
        }
        std::printf("%s\t%s\t%s\tcld2\n", line, t1 + 1, ans.c_str());
        std::printf("%s\t%s\t%s\tcld2-restricted\n", line, t1 + 1, restricted.c_str());
    }
    return 0;
}
