#define ESC_LOG_MODULE "terms"
/* Term extraction for top-terms lists and spike alerts. The text is cut into chunks at ASCII
 * white space; a chunk that is a URL ("://" inside, or starting with "www.") or an e-mail
 * address is skipped whole. Inside a chunk, '@' starts a mention (skipped), '#' a hashtag
 * (kept as "#body", '_' allowed), and a letter or digit starts a word. Words end at anything
 * that is not a letter, a combining mark or a digit: punctuation, apostrophes, emoji and
 * invalid UTF-8 bytes all separate words. Each character is folded on the fly: ASCII by a
 * table, the rest by utf8proc (NFKC compatibility decomposition + case folding, combining
 * marks stripped) except ñ/Ñ, which stays ñ, also when written as n + U+0303. A word is
 * reported when it has >= 3 characters, at least one letter, fits in AGG_TERM_MAX bytes and
 * is not a stopword. Everything lives on the stack; the stopword hash table and a table of the
 * foldings of the two-byte UTF-8 characters (U+0080 to U+07FF: the accented letters of
 * Spanish and Portuguese text, which would otherwise each cost a utf8proc decomposition) are
 * built once. The URL and e-mail test of a chunk looks up the next ':' and '@' of the whole
 * text (memchr); lower-case ASCII runs are copied eight bytes at a time; a word is hashed for
 * the stopword table only when a bit per (length, first two bytes) says one could match. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <utf8proc.h>

#include "escucha/esc_util.h"

#include "terms.h"

#define S_WORD_MIN 3    /* characters of a word */
#define S_TAG_MIN 2     /* characters of a hashtag body */
#define S_STOP_SLOTS 2048 /* power of two, > 2 x the number of stopwords */
#define S_FOLD (UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK | \
                UTF8PROC_IGNORE)

/* ASCII byte classes. */
enum s_cls {
    S_SEP = 0, /* punctuation and control characters */
    S_SPACE,   /* white space: ends a chunk */
    S_LOWER,   /* a-z */
    S_UPPER,   /* A-Z */
    S_DIGIT,   /* 0-9 */
    S_UNDER,   /* '_' */
    S_HASH,    /* '#' */
    S_AT,      /* '@' */
    S_HIGH,    /* >= 0x80: decode as UTF-8 */
};

struct s_tok {
    char buf[AGG_TERM_MAX + 8]; /* folded term; room for one more encoded code point */
    size_t len;                 /* bytes used */
    size_t chars;               /* code points written */
    size_t letters;             /* of which letters */
    int toolong;                /* the token did not fit: it is skipped */
};

/* Folded (lower case, no accents, ñ kept) words of >= 3 characters only: shorter words are
 * never terms anyway. Lists are not meant to be exhaustive; they hold what dominates counts. */
static const char *const s_stopwords[] = {
    /* Spanish */
    "que", "los", "las", "del", "por", "con", "una", "uno", "unos", "unas", "para", "como",
    "mas", "pero", "sus", "les", "este", "esta", "esto", "estos", "estas", "ese", "esa", "eso",
    "esos", "esas", "aquel", "aquella", "aquello", "aquellos", "aquellas", "sin", "sobre",
    "entre", "tambien", "hasta", "desde", "donde", "cuando", "muy", "todo", "toda", "todos",
    "todas", "nos", "hay", "han", "has", "hemos", "habia", "habian", "ser", "son", "era",
    "eran", "fue", "fueron", "sido", "estar", "estoy", "estamos", "estan", "estaba", "estaban",
    "porque", "pues", "asi", "solo", "tan", "tanto", "otra", "otro", "otros", "otras", "mismo",
    "misma", "cual", "cuales", "quien", "quienes", "ante", "bajo", "contra", "durante", "segun",
    "tras", "vez", "veces", "algo", "alguien", "algun", "alguna", "algunos", "algunas", "nada",
    "nadie", "ningun", "ninguna", "mucho", "mucha", "muchos", "muchas", "poco", "poca", "pocos",
    "pocas", "mis", "tus", "mio", "mia", "tuyo", "tuya", "suyo", "suya", "nuestro", "nuestra",
    "nuestros", "nuestras", "vosotros", "ellos", "ellas", "ella", "usted", "ustedes", "eres",
    "soy", "sea", "sean", "puede", "pueden", "hace", "hacer", "tiene", "tienen", "tener",
    "tengo", "sino", "aunque", "mientras", "entonces", "ademas", "luego", "aqui", "ahi", "alli",
    "alla", "ahora", "siempre", "nunca", "tampoco", "cada", "menos", "bien", "van", "voy",
    "vamos", "sera", "seran", "hoy", "ver", "dos", "tres",
    /* English */
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was",
    "one", "our", "out", "has", "him", "his", "how", "its", "may", "now", "she", "too", "who",
    "did", "get", "got", "yes", "yet", "with", "that", "this", "from", "they", "will", "would",
    "there", "their", "what", "which", "when", "where", "were", "been", "have", "into", "more",
    "some", "such", "than", "then", "them", "these", "those", "very", "just", "about", "after",
    "again", "also", "because", "before", "being", "between", "both", "each", "few", "further",
    "here", "hers", "herself", "himself", "itself", "only", "other", "over", "own", "same",
    "should", "through", "under", "until", "while", "why", "your", "yours", "yourself",
    "ourselves", "theirs", "does", "doing", "having", "off", "once", "could", "might", "must",
    "shall", "don", "doesn", "didn", "isn", "wasn", "aren", "weren", "won", "wouldn", "couldn",
    "shouldn", "haven", "hasn", "hadn", "via", "amp", "www", "http", "https",
    /* Portuguese */
    "nao", "uma", "com", "foi", "ele", "eles", "seu", "sua", "seus", "suas", "das", "dos",
    "nas", "num", "numa", "pelo", "pela", "pelos", "pelas", "esse", "essa", "isso", "isto",
    "aquele", "aquilo", "ter", "tem", "tinha", "sao", "estao", "estava", "muito", "muita",
    "muitos", "muitas", "quem", "qual", "quais", "ate", "sem", "depois", "ainda", "voce",
    "voces", "lhe", "lhes", "meu", "minha", "meus", "minhas", "teu", "tua", "nosso", "nossa",
    "aos", "pra", "pro", "seja", "sejam", "foram", "fosse", "vai", "tudo", "outro", "pois",
    "entao", "ali", "bem", "mesma", "tambem", "onde", "mais",
};

static uint16_t s_stop_slot[S_STOP_SLOTS]; /* index + 1 into s_stopwords, 0 = empty */
/* Bit (len, first byte & 31, second byte & 31) set when a stopword has that length and those
 * bytes: most words are told apart from every stopword by this one look-up (a cached bit),
 * without hashing them. */
static uint64_t s_stop_pre[16 * 32 * 32 / 64];
static uint8_t s_stop_len[ESC_ARRAY_LEN(s_stopwords)];
static uint64_t s_stop_key[ESC_ARRAY_LEN(s_stopwords)][2]; /* the word, zero-padded to 16 */
static pthread_once_t s_stop_once = PTHREAD_ONCE_INIT;

#define S_FOLD2_SLOW 0xFF /* s_fold2.n: fold this one with s_put_folded */

/* What a code point of a two-byte UTF-8 sequence (U+0080 to U+07FF) becomes inside a word. */
struct s_fold2 {
    uint8_t cat;   /* utf8proc category */
    uint8_t n;     /* code points it folds to (0: dropped), or S_FOLD2_SLOW */
    uint8_t len;   /* bytes of their UTF-8 in b */
    char b[13];
};

static struct s_fold2 s_fold2[0x800]; /* by code point; built with the stopwords */

/* ASCII inside a word: the lower-case letter or the digit, 0 for anything else ('_' only
 * continues hashtags and mentions). Built with the stopwords. */
static unsigned char s_word[128];

static const unsigned char s_ascii[128] = {
    ['\t'] = S_SPACE, ['\n'] = S_SPACE, ['\v'] = S_SPACE, ['\f'] = S_SPACE, ['\r'] = S_SPACE,
    [' '] = S_SPACE,
    ['a'] = S_LOWER, ['b'] = S_LOWER, ['c'] = S_LOWER, ['d'] = S_LOWER, ['e'] = S_LOWER,
    ['f'] = S_LOWER, ['g'] = S_LOWER, ['h'] = S_LOWER, ['i'] = S_LOWER, ['j'] = S_LOWER,
    ['k'] = S_LOWER, ['l'] = S_LOWER, ['m'] = S_LOWER, ['n'] = S_LOWER, ['o'] = S_LOWER,
    ['p'] = S_LOWER, ['q'] = S_LOWER, ['r'] = S_LOWER, ['s'] = S_LOWER, ['t'] = S_LOWER,
    ['u'] = S_LOWER, ['v'] = S_LOWER, ['w'] = S_LOWER, ['x'] = S_LOWER, ['y'] = S_LOWER,
    ['z'] = S_LOWER,
    ['A'] = S_UPPER, ['B'] = S_UPPER, ['C'] = S_UPPER, ['D'] = S_UPPER, ['E'] = S_UPPER,
    ['F'] = S_UPPER, ['G'] = S_UPPER, ['H'] = S_UPPER, ['I'] = S_UPPER, ['J'] = S_UPPER,
    ['K'] = S_UPPER, ['L'] = S_UPPER, ['M'] = S_UPPER, ['N'] = S_UPPER, ['O'] = S_UPPER,
    ['P'] = S_UPPER, ['Q'] = S_UPPER, ['R'] = S_UPPER, ['S'] = S_UPPER, ['T'] = S_UPPER,
    ['U'] = S_UPPER, ['V'] = S_UPPER, ['W'] = S_UPPER, ['X'] = S_UPPER, ['Y'] = S_UPPER,
    ['Z'] = S_UPPER,
    ['0'] = S_DIGIT, ['1'] = S_DIGIT, ['2'] = S_DIGIT, ['3'] = S_DIGIT, ['4'] = S_DIGIT,
    ['5'] = S_DIGIT, ['6'] = S_DIGIT, ['7'] = S_DIGIT, ['8'] = S_DIGIT, ['9'] = S_DIGIT,
    ['_'] = S_UNDER, ['#'] = S_HASH, ['@'] = S_AT,
};

static inline int
s_cls(unsigned char c)
{
    return c < 0x80 ? s_ascii[c] : S_HIGH;
}

/* Slot of a word of len <= 15 bytes given as its 16 zero-padded bytes (two words). */
static uint32_t
s_slot(const uint64_t key[2], size_t len)
{
    uint64_t h = key[0] * 0x9E3779B97F4A7C15ULL + key[1] * 0xC2B2AE3D27D4EB4FULL + len;

    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    return (uint32_t)(h >> 40) & (S_STOP_SLOTS - 1);
}

static void s_fold2_build(void);

/* The bit of s_stop_pre for a word of len (3 to 15) bytes. */
static uint32_t
s_pre_bit(const char *w, size_t len)
{
    return ((uint32_t)len << 10) | (((uint32_t)(unsigned char)w[0] & 31) << 5)
           | ((uint32_t)(unsigned char)w[1] & 31);
}

static void
s_stop_build(void)
{
    size_t i;

    ESC_ASSERT(ESC_ARRAY_LEN(s_stopwords) * 2 < S_STOP_SLOTS);
    for (i = 0; i < ESC_ARRAY_LEN(s_stopwords); i++) {
        const char *w = s_stopwords[i];
        char pad[16] = { 0 };
        uint32_t slot;

        ESC_ASSERT(strlen(w) >= 2 && strlen(w) <= 15);
        s_stop_len[i] = (uint8_t)strlen(w);
        memcpy(pad, w, strlen(w));
        memcpy(s_stop_key[i], pad, sizeof(pad));
        slot = s_slot(s_stop_key[i], s_stop_len[i]);

        while (s_stop_slot[slot] != 0) {
            if (strcmp(s_stopwords[s_stop_slot[slot] - 1], w) == 0) {
                break; /* listed twice: harmless */
            }
            slot = (slot + 1) & (S_STOP_SLOTS - 1);
        }
        s_stop_slot[slot] = (uint16_t)(i + 1);
        slot = s_pre_bit(w, s_stop_len[i]);
        s_stop_pre[slot / 64] |= 1ULL << (slot % 64);
    }
    for (i = 0; i < ESC_ARRAY_LEN(s_word); i++) {
        if (s_ascii[i] == S_LOWER || s_ascii[i] == S_DIGIT) {
            s_word[i] = (unsigned char)i;
        }
        else if (s_ascii[i] == S_UPPER) {
            s_word[i] = (unsigned char)(i + ('a' - 'A'));
        }
    }
    s_fold2_build();
}

/* s_is_stop past the s_stop_pre test: the hash table look-up (len 2 to 15). */
static int
s_is_stop_hashed(const char *w, size_t len)
{
    uint64_t key[2];
    uint32_t slot;

    memcpy(key, w, sizeof(key));
    slot = s_slot(key, len);
    while (s_stop_slot[slot] != 0) {
        uint16_t k = s_stop_slot[slot] - 1;

        if (s_stop_key[k][0] == key[0] && s_stop_key[k][1] == key[1] && s_stop_len[k] == len) {
            return 1;
        }
        slot = (slot + 1) & (S_STOP_SLOTS - 1);
    }
    return 0;
}

/* The lookup itself; the table must be built. Stopwords are 3 to 15 bytes. w has at least
 * 16 readable bytes, zero from w[len] on when len <= 15 (s_tok.buf is cleared for that). The
 * bit of s_stop_pre first (inline: most words end here), then the hash table. */
static inline int
s_is_stop(const char *w, size_t len)
{
    uint32_t bit;

    if (len > 15 || len < 2) {
        return 0;
    }
    bit = s_pre_bit(w, len);
    if ((s_stop_pre[bit / 64] & (1ULL << (bit % 64))) == 0) {
        return 0;
    }
    return s_is_stop_hashed(w, len);
}

int
agg_terms_is_stopword(const char *w, size_t len)
{
    char pad[16] = { 0 };

    pthread_once(&s_stop_once, s_stop_build);
    if (len > 15) {
        return 0;
    }
    memcpy(pad, w, len);
    return s_is_stop(pad, len);
}

/* Appends one folded code point. */
static void
s_put(struct s_tok *t, int32_t cp)
{
    if (t->toolong) {
        return;
    }
    if (cp < 0x80) {
        t->buf[t->len++] = (char)cp;
    }
    else {
        t->len += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)t->buf + t->len);
    }
    t->chars++;
    if (t->len > AGG_TERM_MAX) {
        t->toolong = 1;
    }
}

/* Folds and appends a non-ASCII code point of a word. */
static void
s_put_folded(struct s_tok *t, int32_t cp)
{
    utf8proc_int32_t out[8];
    utf8proc_ssize_t n;
    int last_state = 0;
    utf8proc_ssize_t i;

    if (cp == 0xF1 || cp == 0xD1) {
        s_put(t, 0xF1);
        return;
    }
    if (cp == 0x303 && !t->toolong && t->len > 0 && t->buf[t->len - 1] == 'n') {
        /* decomposed ñ: n + combining tilde */
        t->len--;
        t->chars--;
        s_put(t, 0xF1);
        return;
    }
    n = utf8proc_decompose_char(cp, out, (utf8proc_ssize_t)ESC_ARRAY_LEN(out), S_FOLD,
                                &last_state);
    if (n < 0 || n > (utf8proc_ssize_t)ESC_ARRAY_LEN(out)) {
        /* longer than any real letter's folding: treat the token as unusable */
        t->toolong = 1;
        return;
    }
    for (i = 0; i < n; i++) {
        s_put(t, out[i]);
    }
}

/* Fills s_fold2 with what s_put_folded appends for each code point it covers. ñ/Ñ and the
 * combining tilde (which depends on the byte before it) stay with s_put_folded. */
static void
s_fold2_build(void)
{
    int32_t cp;

    for (cp = 0x80; cp < 0x800; cp++) {
        struct s_fold2 *f = &s_fold2[cp];
        utf8proc_int32_t out[8];
        utf8proc_ssize_t n;
        utf8proc_ssize_t i;
        int last_state = 0;
        size_t len = 0;

        f->cat = (uint8_t)utf8proc_category(cp);
        f->n = S_FOLD2_SLOW;
        if (cp == 0xF1 || cp == 0xD1 || cp == 0x303) {
            continue;
        }
        n = utf8proc_decompose_char(cp, out, (utf8proc_ssize_t)ESC_ARRAY_LEN(out), S_FOLD,
                                    &last_state);
        if (n < 0 || n > (utf8proc_ssize_t)ESC_ARRAY_LEN(out)) {
            continue;
        }
        for (i = 0; i < n && len + 4 <= sizeof(f->b); i++) {
            len += (size_t)utf8proc_encode_char(out[i], (utf8proc_uint8_t *)f->b + len);
        }
        if (i < n) {
            continue; /* does not fit: the slow way */
        }
        f->n = (uint8_t)n;
        f->len = (uint8_t)len;
    }
}

/* s_put_folded of a code point from s_fold2 (not S_FOLD2_SLOW): appending the code points
 * one by one would set toolong exactly when all of them together pass AGG_TERM_MAX. */
static void
s_put_fold2(struct s_tok *t, const struct s_fold2 *f)
{
    if (t->toolong) {
        return;
    }
    if (t->len + f->len > AGG_TERM_MAX) {
        t->toolong = 1;
        return;
    }
    memcpy(t->buf + t->len, f->b, f->len);
    t->len += f->len;
    t->chars += f->n;
}

/* Decodes the code point at s[0..n) into *cp; returns its length, or 0 when the bytes are
 * not valid UTF-8. */
static size_t
s_decode(const unsigned char *s, size_t n, int32_t *cp)
{
    utf8proc_int32_t c;
    utf8proc_ssize_t r;

    if (s[0] >= 0xC2 && s[0] <= 0xDF && n >= 2 && (s[1] & 0xC0) == 0x80) {
        *cp = ((int32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    r = utf8proc_iterate(s, (utf8proc_ssize_t)(n > 4 ? 4 : n), &c);

    if (r <= 0) {
        return 0;
    }
    *cp = c;
    return (size_t)r;
}

/* Appends the non-ASCII character at s[p] to the word in t when it continues one (a letter, a
 * combining mark or a number). Returns its length, or 0 when it ends the word (or is not
 * valid UTF-8). */
static size_t
s_read_char(const unsigned char *s, size_t n, size_t p, struct s_tok *t)
{
    int32_t cp = 0;
    size_t r = s_decode(s + p, n - p, &cp);
    utf8proc_category_t cat;

    if (r == 0) {
        return 0;
    }
    cat = cp < 0x800 ? (utf8proc_category_t)s_fold2[cp].cat : utf8proc_category(cp);
    if (cat < UTF8PROC_CATEGORY_LU || cat > UTF8PROC_CATEGORY_NO) {
        return 0;
    }
    if (cat <= UTF8PROC_CATEGORY_LO) {
        t->letters++;
    }
    if (cp < 0x800 && s_fold2[cp].n != S_FOLD2_SLOW) {
        s_put_fold2(t, &s_fold2[cp]);
    }
    else {
        s_put_folded(t, cp);
    }
    return r;
}

/* Copies the run of a-z bytes (at most 8) that starts at s to out, which gets 8 bytes: the
 * bytes after the run as zeros (the padding s_is_stop relies on). Returns the run's length.
 * Eight bytes at a time: words are mostly lower-case ASCII. */
static size_t
s_lower_run(const unsigned char *s, char *out)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
    const uint64_t high = 0x8080808080808080ULL;
    uint64_t w;
    uint64_t ge_a;
    uint64_t gt_z;
    uint64_t lower;
    size_t k;

    memcpy(&w, s, 8);
    ge_a = (w & low7) + 0x1F1F1F1F1F1F1F1FULL; /* bit 7: byte & 0x7f >= 'a' */
    gt_z = (w & low7) + 0x0505050505050505ULL; /* bit 7: byte & 0x7f > 'z' */
    lower = ge_a & ~gt_z & ~w & high;          /* bit 7: byte is a-z */
    if (lower == high) {
        memcpy(out, &w, 8);
        return 8;
    }
    k = (size_t)__builtin_ctzll(~lower & high) / 8;
    if (k > 0) {
        w &= ~0ULL >> (64 - 8 * k);
        memcpy(out, &w, 8);
    }
    return k;
#else
    (void)s;
    (void)out;
    return 0;
#endif
}

/* Reads the word (or hashtag/mention body when under is set: '_' continues it) that starts at
 * s[p] into t. Returns the position after it. */
static size_t
s_read_word(const unsigned char *s, size_t n, size_t p, int under, struct s_tok *t)
{
    for (;;) {
        /* ASCII runs: no folding beyond lower case, one byte per character; the counters stay
         * in registers (stores into t->buf could alias them) */
        size_t len = t->len;
        size_t chars = t->chars;
        size_t letters = t->letters;
        int toolong = t->toolong;
        size_t r;

        while (p < n && s[p] < 0x80) {
            unsigned char c;
            unsigned char w;

            if (p + 8 <= n && len + 8 <= AGG_TERM_MAX) {
                size_t k = s_lower_run(s + p, t->buf + len);

                if (k > 0) {
                    len += k;
                    chars += k;
                    letters += k;
                    p += k;
                    continue;
                }
            }
            c = s[p];
            w = s_word[c];

            if (w == 0) {
                if (!under || c != '_') {
                    break;
                }
                w = '_';
            }
            if (len < AGG_TERM_MAX) {
                t->buf[len++] = (char)w;
                chars++;
            }
            else {
                toolong = 1;
            }
            letters += w >= 'a';
            p++;
        }
        t->len = len;
        t->chars = chars;
        t->letters = letters;
        t->toolong = toolong;
        if (p >= n || s[p] < 0x80) {
            return p;
        }
        r = s_read_char(s, n, p, t);
        if (r == 0) {
            return p;
        }
        p += r;
    }
}

/* The next ":" followed by "//" at or after from in s[0, n), or n. */
static size_t
s_next_scheme(const unsigned char *s, size_t n, size_t from)
{
    while (from < n) {
        const unsigned char *c = memchr(s + from, ':', n - from);
        size_t i;

        if (c == NULL) {
            break;
        }
        i = (size_t)(c - s);
        if (i + 2 < n && s[i + 1] == '/' && s[i + 2] == '/') {
            return i;
        }
        from = i + 1;
    }
    return n;
}

/* The next '@' at or after from in s[0, n) that follows a letter, digit, '_', '.' or '-' (an
 * e-mail address, not a mention), or n. */
static size_t
s_next_email(const unsigned char *s, size_t n, size_t from)
{
    while (from < n) {
        const unsigned char *c = memchr(s + from, '@', n - from);
        size_t i;
        int k;

        if (c == NULL) {
            break;
        }
        i = (size_t)(c - s);
        if (i > 0) {
            k = s_cls(s[i - 1]);
            if (k == S_LOWER || k == S_UPPER || k == S_DIGIT || k == S_UNDER || s[i - 1] == '.' ||
                s[i - 1] == '-') {
                return i;
            }
        }
        from = i + 1;
    }
    return n;
}

/* End of the chunk that starts at s[p]: the next white space, or n. */
static size_t
s_chunk_end(const unsigned char *s, size_t n, size_t p)
{
    while (p < n && s_cls(s[p]) != S_SPACE) {
        p++;
    }
    return p;
}

/* True when the chunk that starts at s[p] is a web address: "www." after leading
 * punctuation ("(www.x.org)"). */
static int
s_www(const unsigned char *s, size_t n, size_t p)
{
    while (p < n && s_cls(s[p]) == S_SEP) {
        p++;
    }
    return n - p >= 4 && (s[p] | 0x20) == 'w' && (s[p + 1] | 0x20) == 'w' &&
           (s[p + 2] | 0x20) == 'w' && s[p + 3] == '.';
}

/* Terms of the chunk that starts at s[p] and ends at the next white space (tokens never
 * cross white space, so the text's end bounds the reads). Adds them to *count and returns
 * the end of the chunk. */
static size_t
s_chunk(const unsigned char *s, size_t n, size_t p, agg_term_fn fn, void *arg, size_t *count)
{
    while (p < n) {
        int k = s_cls(s[p]);
        struct s_tok t;

        if (k == S_SPACE) {
            break;
        }
        memset(t.buf, 0, 16); /* the zero padding s_is_stop reads */
        t.len = 0;
        t.chars = 0;
        t.letters = 0;
        t.toolong = 0;
        if (k == S_HASH || k == S_AT) {
            if (k == S_HASH) {
                t.buf[0] = '#';
                t.len = 1;
            }
            p = s_read_word(s, n, p + 1, 1, &t);
            if (k == S_HASH && !t.toolong && t.chars >= S_TAG_MIN && t.letters > 0) {
                fn(arg, t.buf, t.len);
                (*count)++;
            }
            continue;
        }
        if (k == S_LOWER || k == S_UPPER || k == S_DIGIT) {
            p = s_read_word(s, n, p, 0, &t);
        }
        else if (k == S_HIGH) {
            int32_t cp = 0;
            size_t r = s_decode(s + p, n - p, &cp);
            utf8proc_category_t cat = UTF8PROC_CATEGORY_CN;

            if (r > 0) {
                cat = cp < 0x800 ? (utf8proc_category_t)s_fold2[cp].cat : utf8proc_category(cp);
            }
            if (cat < UTF8PROC_CATEGORY_LU || cat > UTF8PROC_CATEGORY_NO ||
                (cat >= UTF8PROC_CATEGORY_MN && cat <= UTF8PROC_CATEGORY_ME)) {
                p += r > 0 ? r : 1; /* not a word start: symbol, emoji, stray mark, bad byte */
                continue;
            }
            p = s_read_word(s, n, p, 0, &t);
        }
        else {
            p++;
            continue;
        }
        if (!t.toolong && t.chars >= S_WORD_MIN && t.letters > 0 && !s_is_stop(t.buf, t.len)) {
            fn(arg, t.buf, t.len);
            (*count)++;
        }
    }
    return p;
}

size_t
agg_terms_extract(const char *text, size_t len, const char *lang, agg_term_fn fn, void *arg)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    size_t count = 0;
    size_t scheme;
    size_t email;

    (void)lang; /* see terms.h: every list applies to every post */
    pthread_once(&s_stop_once, s_stop_build);
    if (text == NULL) {
        return 0;
    }
    scheme = s_next_scheme(s, len, 0);
    email = s_next_email(s, len, 0);
    while (i < len) {
        size_t start;

        while (i < len && s_cls(s[i]) == S_SPACE) {
            i++;
        }
        if (i == len) {
            break;
        }
        start = i;
        if (scheme < start) {
            scheme = s_next_scheme(s, len, start);
        }
        if (email < start) {
            email = s_next_email(s, len, start);
        }
        if (scheme < len || email < len || s_www(s, len, start)) {
            /* a URL or an e-mail address somewhere ahead: is it in this chunk? */
            size_t end = s_chunk_end(s, len, start);

            if (scheme < end || email < end || s_www(s, len, start)) {
                i = end;
                continue;
            }
        }
        i = s_chunk(s, len, start, fn, arg, &count);
    }
    return count;
}
