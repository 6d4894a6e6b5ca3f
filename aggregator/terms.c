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
 * is not a stopword. Everything lives on the stack; the stopword hash table is built once
 * under pthread_once. */
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
static uint8_t s_stop_len[ESC_ARRAY_LEN(s_stopwords)];
static pthread_once_t s_stop_once = PTHREAD_ONCE_INIT;

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

static uint32_t
s_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static void
s_stop_build(void)
{
    size_t i;

    ESC_ASSERT(ESC_ARRAY_LEN(s_stopwords) * 2 < S_STOP_SLOTS);
    for (i = 0; i < ESC_ARRAY_LEN(s_stopwords); i++) {
        const char *w = s_stopwords[i];
        uint32_t slot = s_hash(w, strlen(w)) & (S_STOP_SLOTS - 1);

        ESC_ASSERT(strlen(w) <= 15);
        s_stop_len[i] = (uint8_t)strlen(w);

        while (s_stop_slot[slot] != 0) {
            if (strcmp(s_stopwords[s_stop_slot[slot] - 1], w) == 0) {
                break; /* listed twice: harmless */
            }
            slot = (slot + 1) & (S_STOP_SLOTS - 1);
        }
        s_stop_slot[slot] = (uint16_t)(i + 1);
    }
}

/* The lookup itself; the table must be built. Stopwords are 3 to 15 bytes. */
static int
s_is_stop(const char *w, size_t len)
{
    uint32_t slot;

    if (len > 15) {
        return 0;
    }
    slot = s_hash(w, len) & (S_STOP_SLOTS - 1);
    while (s_stop_slot[slot] != 0) {
        uint16_t k = s_stop_slot[slot] - 1;

        if (s_stop_len[k] == len && memcmp(s_stopwords[k], w, len) == 0) {
            return 1;
        }
        slot = (slot + 1) & (S_STOP_SLOTS - 1);
    }
    return 0;
}

int
agg_terms_is_stopword(const char *w, size_t len)
{
    pthread_once(&s_stop_once, s_stop_build);
    return s_is_stop(w, len);
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

/* Decodes the code point at s[0..n) into *cp; returns its length, or 0 when the bytes are
 * not valid UTF-8. */
static size_t
s_decode(const unsigned char *s, size_t n, int32_t *cp)
{
    utf8proc_int32_t c;
    utf8proc_ssize_t r = utf8proc_iterate(s, (utf8proc_ssize_t)(n > 4 ? 4 : n), &c);

    if (r <= 0) {
        return 0;
    }
    *cp = c;
    return (size_t)r;
}

/* Reads the word (or hashtag/mention body when under is set: '_' continues it) that starts at
 * s[p] into t. Returns the position after it. */
static size_t
s_read_word(const unsigned char *s, size_t n, size_t p, int under, struct s_tok *t)
{
    while (p < n) {
        unsigned char c = s[p];
        int k = s_cls(c);

        if (k == S_LOWER || k == S_UPPER || k == S_DIGIT || (k == S_UNDER && under)) {
            /* ASCII: no folding beyond lower case, one byte per character */
            if (t->len < AGG_TERM_MAX) {
                t->buf[t->len++] = (char)(k == S_UPPER ? c + ('a' - 'A') : c);
                t->chars++;
            }
            else {
                t->toolong = 1;
            }
            t->letters += k == S_LOWER || k == S_UPPER;
            p++;
        }
        else if (k == S_HIGH) {
            int32_t cp = 0;
            size_t r = s_decode(s + p, n - p, &cp);
            utf8proc_category_t cat;

            if (r == 0) {
                break;
            }
            cat = utf8proc_category(cp);
            if (cat < UTF8PROC_CATEGORY_LU || cat > UTF8PROC_CATEGORY_NO) {
                break;
            }
            if (cat <= UTF8PROC_CATEGORY_LO) {
                t->letters++;
            }
            s_put_folded(t, cp);
            p += r;
        }
        else {
            break;
        }
    }
    return p;
}

/* True when the chunk is a URL or an e-mail address. */
static int
s_skip_chunk(const unsigned char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] == ':' && i + 2 < n && s[i + 1] == '/' && s[i + 2] == '/') {
            return 1;
        }
        if (s[i] == '@' && i > 0) {
            int k = s_cls(s[i - 1]);

            if (k == S_LOWER || k == S_UPPER || k == S_DIGIT || k == S_UNDER || s[i - 1] == '.' ||
                s[i - 1] == '-') {
                return 1;
            }
        }
    }
    i = 0;
    while (i < n && s_cls(s[i]) == S_SEP) {
        i++; /* "(www.x.org)" */
    }
    if (n - i >= 4 && (s[i] | 0x20) == 'w' && (s[i + 1] | 0x20) == 'w' &&
        (s[i + 2] | 0x20) == 'w' && s[i + 3] == '.') {
        return 1;
    }
    return 0;
}

/* Terms of one chunk (no white space inside). */
static size_t
s_chunk(const unsigned char *s, size_t n, agg_term_fn fn, void *arg)
{
    size_t p = 0;
    size_t count = 0;

    while (p < n) {
        int k = s_cls(s[p]);
        struct s_tok t;

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
                count++;
            }
            continue;
        }
        if (k == S_LOWER || k == S_UPPER || k == S_DIGIT) {
            p = s_read_word(s, n, p, 0, &t);
        }
        else if (k == S_HIGH) {
            int32_t cp = 0;
            size_t r = s_decode(s + p, n - p, &cp);
            utf8proc_category_t cat = r > 0 ? utf8proc_category(cp) : UTF8PROC_CATEGORY_CN;

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
            count++;
        }
    }
    return count;
}

size_t
agg_terms_extract(const char *text, size_t len, const char *lang, agg_term_fn fn, void *arg)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    size_t count = 0;

    (void)lang; /* see terms.h: every list applies to every post */
    pthread_once(&s_stop_once, s_stop_build);
    if (text == NULL) {
        return 0;
    }
    while (i < len) {
        size_t start;

        while (i < len && s_cls(s[i]) == S_SPACE) {
            i++;
        }
        start = i;
        while (i < len && s_cls(s[i]) != S_SPACE) {
            i++;
        }
        if (i > start && !s_skip_chunk(s + start, i - start)) {
            count += s_chunk(s + start, i - start, fn, arg);
        }
    }
    return count;
}
