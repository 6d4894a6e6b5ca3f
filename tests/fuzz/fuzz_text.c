#define ESC_LOG_MODULE "fuzz"
/* libFuzzer target: the classifier's text normaliser and tokeniser (classifier/text.c) on
 * untrusted post text: UTF-8 repair, NFKC, case and accent folding, words, hashtags and their
 * parts, mentions, URLs as link tokens, the raw ({Exact}) form of every token, and the post
 * fields added as meta tokens. Checks that the normalised text and every token are valid UTF-8
 * and lie inside their buffers, and that positions are consistent.
 * FUZZ_DICT: text */
#include <stdint.h>
#include <string.h>

#include <utf8proc.h>

#include "text.h"

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* True when s[0..len) is valid UTF-8 (what utf8proc decodes without error). */
static bool
s_valid(const char *s, size_t len)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    utf8proc_int32_t cp;
    utf8proc_ssize_t n;
    size_t i = 0;

    while (i < len) {
        n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0) {
            return false;
        }
        i += (size_t)n;
    }
    return true;
}

static void
s_tokens(cls_text_t *t)
{
    const struct cls_token *tok;
    const char *s;
    size_t n;
    size_t i;
    size_t len;
    uint32_t last = 0;

    tok = cls_text_tokens(t, &n);
    for (i = 0; i < n; i++) {
        s = cls_text_tok_str(t, &tok[i]);
        ESC_ASSERT(tok[i].kind < CLS_TOK_KINDS);
        ESC_ASSERT(s_valid(s, tok[i].len));
        (void)cls_text_kind_name((enum cls_tok_kind)tok[i].kind);
        if (tok[i].pos != CLS_POS_NONE) {
            ESC_ASSERT(tok[i].pos >= last);
            last = tok[i].pos;
            ESC_ASSERT(cls_text_at(t, tok[i].pos) != NULL);
        }
        s = cls_text_tok_raw(t, &tok[i], &len);
        ESC_ASSERT(s != NULL && s_valid(s, len));
    }
    (void)cls_text_at(t, last + 1);
    (void)cls_text_at(t, UINT32_MAX - 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cls_text_t *t;
    static const enum cls_tok_kind fields[] = { CLS_TOK_META_HASHTAG, CLS_TOK_META_MENTION,
                                                CLS_TOK_AUTHOR, CLS_TOK_LINK, CLS_TOK_LANG,
                                                CLS_TOK_PLATFORM };
    struct cls_text_opts opts = { (size & 1) != 0 };
    const char *in = (const char *)data;
    const char *norm;
    char *z;
    size_t len;
    size_t i;

    esc_log_level_cur = -1;
    if (t == NULL) {
        t = cls_text_new();
    }
    norm = cls_text_normalize(t, &opts, in, size, &len);
    ESC_ASSERT(norm != NULL && norm[len] == '\0' && s_valid(norm, len));
    cls_text_tokenize(t, &opts, in, size);
    (void)cls_text_invalid(t);
    (void)cls_text_truncated(t);
    s_tokens(t);
    /* the same bytes as post fields (NUL-terminated, as the decoder gives them) */
    z = esc_malloc(size + 1);
    memcpy(z, data, size);
    z[size] = '\0';
    cls_text_reset(t);
    cls_text_add_hashtag(t, &opts, z);
    cls_text_add_mention(t, &opts, z);
    for (i = 0; i < ESC_ARRAY_LEN(fields); i++) {
        cls_text_add_field(t, &opts, fields[i], z);
    }
    s_tokens(t);
    esc_free(z);
    return 0;
}
