#define ESC_LOG_MODULE "main"
/* escucha-classifier: flags, config, signals, then cls_run (classifier.c). Besides the service
 * it has tools for people writing topics: --check-query validates one query (every error and
 * warning with its column and a caret, --tree for the parse tree), --normalize prints each
 * stdin line the way the matcher sees text, and --explain shows, for one post in the
 * project's JSON shape, the normalised text, every token, which clause put it in which topic
 * and which clause kept it out of the near misses. Single-threaded. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_sig.h"
#include "escucha/esc_util.h"

#include "classifier.h"
#include "langid/langid.h"

#define S_PROG "escucha-classifier"

enum s_mode {
    S_RUN = 0,
    S_CHECK,
    S_DUMP,
    S_EXPLAIN,
    S_NORMALIZE,
    S_CHECK_QUERY,
    S_DETECT_LANG,
};

static void
s_usage(FILE *f)
{
    fprintf(f,
            "usage: " S_PROG " --config FILE [options]\n"
            "Matches every post from the broker (bus.classify) against the keywords of every\n"
            "team's topics and passes it on to the aggregator (bus.aggregate).\n\n"
            "  --config FILE      deployment config (JSON)\n"
            "  --check-config     validate the config, every keyword and query, then exit\n"
            "                     (0 ok, 2 bad)\n"
            "  --check-query Q    validate one topic query (docs/query-language.md): errors and\n"
            "                     warnings with their column; exit 0 valid, 2 invalid\n"
            "  --tree             with --check-query: also print the parse tree\n"
            "  --help-config      describe the classifier's config keys\n"
            "  --dump-config      print the effective classifier config\n"
            "  --explain          read one post (JSON) on stdin and show how it is classified\n"
            "  --normalize        print each stdin line as the matcher sees it (--config is\n"
            "                     optional here; it supplies classifier.fold_enye)\n"
            "  --detect-lang      read one text per line on stdin, print one language code per\n"
            "                     line (\"und\" when unsure); --config supplies the languages\n"
            "  --log-level LEVEL  error|warn|info|debug (default info)\n"
            "  --help, --version\n");
}

/* Reads up to max bytes of f into a caller-owned NUL-terminated buffer. Returns NULL (after
 * saying why) when the input is larger. */
static char *
s_read_all(FILE *f, size_t max, size_t *len_out)
{
    size_t cap = 4096;
    size_t len = 0;
    char *buf = esc_malloc(cap);
    size_t r = fread(buf, 1, cap - 1, f);

    for (; r > 0; r = fread(buf + len, 1, cap - len - 1, f)) {
        len += r;
        if (len > max) {
            fprintf(stderr, S_PROG ": input larger than %zu bytes\n", max);
            esc_free(buf);
            return NULL;
        }
        if (cap - len - 1 == 0) {
            cap *= 2;
            buf = esc_realloc(buf, cap);
        }
    }
    buf[len] = '\0';
    *len_out = len;
    return buf;
}

/* Reads one line (without its newline) into *buf, growing it up to max bytes; a longer line
 * is consumed and reported with *too_long. Returns -1 at end of input. */
static int
s_read_line(FILE *f, char **buf, size_t *cap, size_t max, size_t *len_out, int *too_long)
{
    size_t len = 0;
    int c;

    *too_long = 0;
    for (c = getc(f); c != EOF && c != '\n'; c = getc(f)) {
        if (len + 1 >= *cap) {
            if (*cap >= max) {
                *too_long = 1;
                continue;
            }
            *cap = *cap * 2 > max ? max : *cap * 2;
            *buf = esc_realloc(*buf, *cap);
        }
        (*buf)[len++] = (char)c;
    }
    if (c == EOF && len == 0 && !*too_long) {
        return -1;
    }
    if (len > 0 && (*buf)[len - 1] == '\r') {
        len--;
    }
    (*buf)[len] = '\0';
    *len_out = len;
    return 0;
}

/* --detect-lang: one code per stdin line, with the languages of cc (NULL: the defaults). */
static int
s_detect_lang(const struct cls_cfg *cc)
{
    const char *codes[CLS_LANGID_LANGS_MAX];
    struct cls_langid_params params;
    struct esc_error err;
    char langs[64];
    cls_langid_t *lid;
    size_t cap = 4096;
    char *line;
    size_t len;
    int too_long;
    int n = 0;

    cls_langid_params_default(&params);
    if (cc != NULL) {
        esc_strlcpy(langs, cc->languages, sizeof(langs));
        n = cls_languages_split(langs, codes, CLS_LANGID_LANGS_MAX);
        params.min_confidence = cc->language_min_confidence;
    }
    memset(&err, 0, sizeof(err));
    lid = cls_langid_new_ex(cc != NULL && cc->language_model[0] != '\0' ? cc->language_model
                                                                         : NULL,
                            n > 0 ? codes : NULL, n > 0 ? (size_t)n : 0, NULL, &params, &err);
    if (lid == NULL) {
        fprintf(stderr, S_PROG ": %s\n", err.text);
        return 1;
    }
    line = esc_malloc(cap);
    while (s_read_line(stdin, &line, &cap, CLS_TEXT_MAX, &len, &too_long) == 0) {
        puts(too_long ? CLS_LANGID_UND : cls_langid_detect(lid, line, len, NULL));
    }
    esc_free(line);
    cls_langid_destroy(&lid);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int
s_normalize(const struct cls_text_opts *opts)
{
    cls_text_t *txt = cls_text_new();
    size_t cap = 4096;
    char *line = esc_malloc(cap);
    size_t len;
    int too_long;
    unsigned long lineno = 0;

    while (s_read_line(stdin, &line, &cap, CLS_TEXT_MAX, &len, &too_long) == 0) {
        lineno++;
        if (too_long) {
            esc_log_warn("line too long, printed empty line=%lu max=%d", lineno, CLS_TEXT_MAX);
            len = 0;
        }
        fputs(cls_text_normalize(txt, opts, line, len, NULL), stdout);
        fputc('\n', stdout);
    }
    esc_free(line);
    cls_text_destroy(&txt);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int
s_check_query(const char *query, bool tree, const struct cls_text_opts *topts)
{
    struct cls_query q;
    struct cls_query_opts qo;
    size_t errors;

    memset(&qo, 0, sizeof(qo));
    qo.mode = CLS_QUERY_INCLUDE;
    qo.fold_enye = topts->fold_enye;
    qo.text_fold_enye = topts->fold_enye;
    errors = cls_query_parse(&q, query, &qo, NULL);
    cls_query_print_msgs(&q, stdout, NULL, NULL);
    if (errors == 0) {
        if (tree) {
            cls_query_print_tree(&q, stdout);
        }
        if (q.n_msgs > 0) {
            printf("query ok, %zu warning%s\n", q.n_msgs, q.n_msgs == 1 ? "" : "s");
        }
        else {
            printf("query ok\n");
        }
    }
    cls_query_fini(&q);
    if (fflush(stdout) != 0) {
        return 1;
    }
    return errors == 0 ? 0 : ESC_CFG_EXIT_INVALID;
}

static int
s_explain(cls_t *cls)
{
    struct esc_post p;
    struct esc_error err;
    size_t len = 0;
    char *json;

    json = s_read_all(stdin, ESC_MSG_MAX, &len);
    if (json == NULL) {
        return 1;
    }
    memset(&err, 0, sizeof(err));
    if (esc_post_from_json(json, len, &p, &err) != ESC_OK) {
        fprintf(stderr, S_PROG ": <stdin>: %s\n", err.text);
        esc_post_fini(&p);
        esc_free(json);
        return 1;
    }
    esc_free(json);
    cls_explain(cls, &p, stdout);
    esc_post_fini(&p);
    return fflush(stdout) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", no_argument, NULL, 'k' },
        { "help-config", no_argument, NULL, 'H' },
        { "dump-config", no_argument, NULL, 'D' },
        { "explain", no_argument, NULL, 'E' },
        { "normalize", no_argument, NULL, 'N' },
        { "check-query", required_argument, NULL, 'q' },
        { "tree", no_argument, NULL, 'T' },
        { "detect-lang", no_argument, NULL, 'L' },
        { "log-level", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = NULL;
    const char *query = NULL;
    bool tree = false;
    enum s_mode mode = S_RUN;
    int level = ESC_LOG_INFO;
    struct esc_error err;
    struct cls_conf conf;
    struct cls_text_opts topts;
    cls_t *cls = NULL;
    int sig_fd;
    int status;
    int c;

    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'k':
            mode = S_CHECK;
            break;
        case 'D':
            mode = S_DUMP;
            break;
        case 'E':
            mode = S_EXPLAIN;
            break;
        case 'N':
            mode = S_NORMALIZE;
            break;
        case 'q':
            mode = S_CHECK_QUERY;
            query = optarg;
            break;
        case 'T':
            tree = true;
            break;
        case 'L':
            mode = S_DETECT_LANG;
            break;
        case 'H':
            printf("classifier section (\"classifier\": {...}):\n");
            esc_cfg_print_help(stdout, "classifier", cls_cfg_map);
            return 0;
        case 'l':
            level = esc_log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, S_PROG ": unknown log level '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        case 'V':
            printf(S_PROG " %s\n", ESC_VERSION);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, S_PROG ": unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    esc_log_init("classifier", (enum esc_log_level)level);
    if (mode == S_DETECT_LANG && config_path == NULL) {
        return s_detect_lang(NULL);
    }
    if ((mode == S_NORMALIZE || mode == S_CHECK_QUERY) && config_path == NULL) {
        memset(&topts, 0, sizeof(topts));
        return mode == S_NORMALIZE ? s_normalize(&topts) : s_check_query(query, tree, &topts);
    }
    if (config_path == NULL) {
        s_usage(stderr);
        return 2;
    }
    if (mode == S_CHECK) {
        return cls_conf_check(config_path, stdout, stderr);
    }
    memset(&err, 0, sizeof(err));
    if (cls_conf_load(&conf, config_path, &err) != ESC_OK) {
        esc_error_print(stderr, S_PROG, &err);
        return ESC_CFG_EXIT_INVALID;
    }
    if (esc_bus_configure(conf.cfg, &err) != ESC_OK) {
        esc_error_print(stderr, S_PROG, &err);
        cls_conf_fini(&conf);
        return ESC_CFG_EXIT_INVALID;
    }
    switch (mode) {
    case S_CHECK:
    case S_DUMP:
        esc_cfg_print_values(stdout, "classifier", cls_cfg_map, &conf.cc);
        cls_conf_fini(&conf);
        return 0;
    case S_NORMALIZE:
    case S_CHECK_QUERY:
        topts = *cls_match_opts(conf.match);
        cls_conf_fini(&conf);
        return mode == S_NORMALIZE ? s_normalize(&topts) : s_check_query(query, tree, &topts);
    case S_DETECT_LANG:
        status = s_detect_lang(&conf.cc);
        cls_conf_fini(&conf);
        return status;
    case S_EXPLAIN:
        cls = cls_new(&conf);
        if (cls == NULL) {
            return 1;
        }
        status = s_explain(cls);
        cls_destroy(&cls);
        return status;
    case S_RUN:
        break;
    }
    /* Signals are blocked before the first ZeroMQ socket creates the context's I/O threads. */
    sig_fd = esc_sig_init();
    if (sig_fd < 0) {
        cls_conf_fini(&conf);
        return 1;
    }
    cls = cls_new(&conf);
    if (cls == NULL) {
        close(sig_fd);
        return 1;
    }
    status = cls_run(cls, sig_fd);
    cls_destroy(&cls);
    esc_bus_ctx_term();
    close(sig_fd);
    return status;
}
