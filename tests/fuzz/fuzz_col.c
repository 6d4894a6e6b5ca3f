#define ESC_LOG_MODULE "fuzz"
#define _GNU_SOURCE /* memfd_create */
/* Shared driver of the connector fuzz targets (see fuzz_col.h): one source instance per input
 * on an offline net, answered from the input. The config is loaded, mapped and validated once
 * per target, the instance (and its memory-only dedupe state) is fresh for every input so an
 * input always gives the same result. FUZZ_LOG=1 in the environment keeps the sources' log
 * lines (debugging a seed); FUZZ_COL_VERBOSE=1 prints requests and posts per input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "col_source.h"
#include "fuzz_col.h"
#include "net.h"
#include "state.h"

#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define S_ENV_SECRET "ESC_FUZZ_SECRET" /* token_env / key_env / ... of every fuzzed source */

struct fuzz_col_priv {
    struct esc_cfg *cfg;
    const struct col_source_plugin *plugin;
    void *src_cfg; /* the source's mapped config */
    char name[64];
    int fd;        /* file sources: the (unlinked) temp file holding the input, else -1 */
};

/* One input's run: what the emit callback counts. */
struct s_run {
    size_t posts;
    size_t requests;
};

static void
s_global_init(void)
{
    static int done;

    if (done) {
        return;
    }
    done = 1;
    col_net_global_init();
    setenv(S_ENV_SECRET, "fuzz-secret", 1);
    esc_log_level_cur = getenv("FUZZ_LOG") != NULL ? ESC_LOG_DEBUG : -1;
}

static struct fuzz_col_priv *
s_setup(const struct fuzz_col *fc)
{
    static const char *const ignore[] = { "name", "type", NULL };
    struct fuzz_col_priv *p = esc_calloc(1, sizeof(*p));
    struct esc_error err;
    size_t n = strlen(fc->source_json) + 256;
    char *text = esc_malloc(n);
    char path[64] = "";
    const char *at;

    p->fd = -1;
    if (fc->file) {
        /* a memory file (no disk I/O per input); /proc/self/fd/N opens it like a path */
        p->fd = memfd_create("esc-fuzz", MFD_CLOEXEC);
        ESC_ASSERT(p->fd >= 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", p->fd);
    }
    at = strstr(fc->source_json, "{file}");
    if (at != NULL) {
        snprintf(text, n, "{\"teams\":[{\"id\":\"t\",\"topics\":[{\"id\":\"x\","
                          "\"keywords\":[\"x\"]}]}],\"sources\":[%.*s%s%s]}",
                 (int)(at - fc->source_json), fc->source_json, path, at + 6);
    }
    else {
        snprintf(text, n, "{\"teams\":[{\"id\":\"t\",\"topics\":[{\"id\":\"x\","
                          "\"keywords\":[\"x\"]}]}],\"sources\":[%s]}", fc->source_json);
    }
    memset(&err, 0, sizeof(err));
    p->cfg = esc_cfg_load_string(text, "fuzz.json", &err);
    esc_free(text);
    if (p->cfg == NULL || p->cfg->n_sources != 1) {
        fprintf(stderr, "fuzz_col: bad source config: %s\n", err.text);
        abort();
    }
    p->plugin = col_source_plugin_find(p->cfg->sources[0].type);
    ESC_ASSERT(p->plugin != NULL);
    esc_strlcpy(p->name, p->cfg->sources[0].name, sizeof(p->name));
    p->src_cfg = esc_calloc(1, p->plugin->cfg_size);
    if (esc_cfg_section_apply(p->cfg, "sources.0", p->plugin->cfg_map, ignore, p->src_cfg, &err)
            != ESC_OK
        || (p->plugin->validate != NULL
            && p->plugin->validate(p->src_cfg, "sources.0", &err) != ESC_OK)) {
        fprintf(stderr, "fuzz_col: source config refused: %s\n", err.text);
        abort();
    }
    return p;
}

/* The host's emit (collector.c s_emit) plus the classifier's side: every post must decode. */
static esc_rc
s_emit(void *arg, struct col_source *ins, struct esc_post *post)
{
    struct s_run *run = arg;
    struct esc_post back;
    struct esc_error err;
    char *buf;
    size_t len;

    esc_free(post->source);
    post->source = esc_strdup(ins->name);
    post->ingested_at = esc_now_ms();
    buf = esc_post_encode(post, 0, &len);
    if (len > ESC_MSG_MAX) {
        esc_free(buf);
        return ESC_INVALID;
    }
    if (esc_post_decode(buf, len, &back, NULL, &err) != ESC_OK) {
        fprintf(stderr, "fuzz_col: post id=%s does not decode: %s\n", post->id, err.text);
        abort();
    }
    esc_post_fini(&back);
    esc_free(buf);
    run->posts++;
    return ESC_OK;
}

/* First occurrence of the separator in [p, end), or end. */
static const uint8_t *
s_sep(const uint8_t *p, const uint8_t *end)
{
    size_t k = strlen(FUZZ_COL_SEP);

    for (; (size_t)(end - p) >= k; p++) {
        if (memcmp(p, FUZZ_COL_SEP, k) == 0) {
            return p;
        }
    }
    return end;
}

/* Answers req with a, given as in the input (raw response or bare body). */
static void
s_answer(col_req_t *req, const struct fuzz_col *fc, const char *a, size_t n)
{
    char ctype[160];
    const char *eol;
    const char *hdr;
    const char *body;
    long status = 200;
    size_t i;

    if (n < 5 || memcmp(a, "HTTP/", 5) != 0) {
        snprintf(ctype, sizeof(ctype), "Content-Type: %s\r\n", fc->content_type);
        col_req_fake_answer(req, 200, ctype, strlen(ctype), a, n, fc->chunk);
        return;
    }
    eol = memchr(a, '\n', n);
    if (eol == NULL) {
        eol = a + n;
    }
    /* "HTTP/1.1 404 Not Found": the status is the three digits after the first space */
    hdr = memchr(a, ' ', (size_t)(eol - a));
    if (hdr != NULL && eol - hdr >= 4 && hdr[1] >= '1' && hdr[1] <= '9' && hdr[2] >= '0'
        && hdr[2] <= '9' && hdr[3] >= '0' && hdr[3] <= '9') {
        status = (hdr[1] - '0') * 100 + (hdr[2] - '0') * 10 + (hdr[3] - '0');
    }
    hdr = eol < a + n ? eol + 1 : eol;
    body = a + n;
    /* the header block ends at the first empty line ("\n\n" or "\n\r\n") */
    for (i = (size_t)(eol - a); i < n; i++) {
        if (a[i] != '\n') {
            continue;
        }
        if (i + 1 < n && a[i + 1] == '\n') {
            body = a + i + 2;
            break;
        }
        if (i + 2 < n && a[i + 1] == '\r' && a[i + 2] == '\n') {
            body = a + i + 3;
            break;
        }
    }
    col_req_fake_answer(req, status, hdr, (size_t)(body - hdr), body, (size_t)(a + n - body),
                        fc->chunk);
}

/* The canned answer for url, or NULL. */
static const char *
s_route(const struct fuzz_col *fc, const char *url)
{
    const struct fuzz_col_route *r;

    for (r = fc->routes; r != NULL && r->url_part != NULL; r++) {
        if (strstr(url, r->url_part) != NULL) {
            return r->answer;
        }
    }
    return NULL;
}

void
fuzz_col_run(struct fuzz_col *fc, const uint8_t *data, size_t size)
{
    struct s_run run = { 0, 0 };
    const struct col_emit em = { s_emit, &run };
    const uint8_t *p = data;
    const uint8_t *end = data + size;
    const uint8_t *cut;
    struct col_source ins;
    const char *canned;
    col_req_t *req;
    size_t step;
    int more = 1;
    esc_rc rc;

    s_global_init();
    if (fc->priv == NULL) {
        fc->priv = s_setup(fc);
    }
    memset(&ins, 0, sizeof(ins));
    esc_strlcpy(ins.name, fc->priv->name, sizeof(ins.name));
    ins.plugin = fc->priv->plugin;
    ins.cfg = fc->priv->src_cfg;
    ins.net = col_net_new_offline();
    ins.state = col_state_new(NULL, "fuzz", 256);
    if (fc->file) {
        ESC_ASSERT(ftruncate(fc->priv->fd, 0) == 0);
        ESC_ASSERT(size == 0 || pwrite(fc->priv->fd, data, size, 0) == (ssize_t)size);
        more = 0;
    }
    if (ins.plugin->init(&ins) != 0) {
        /* a file source refuses a file without the mapped header; an HTTP source with a
         * valid config never fails */
        ESC_ASSERT(fc->file);
        col_state_destroy(&ins.state);
        col_net_destroy(&ins.net);
        return;
    }
    for (step = 0; step < FUZZ_COL_STEPS; step++) {
        ins.wake_ms = 0;
        rc = ins.plugin->poll(&ins, &em, 512);
        if (rc == ESC_ERR || rc == ESC_CLOSED || ins.done) {
            break;
        }
        req = col_net_offline_pending(ins.net);
        if (req == NULL) {
            if (col_net_active(ins.net) > 0 || (fc->file && rc == ESC_OK)) {
                continue; /* a paused stream, or a file with rows left: poll again */
            }
            break; /* the poll is over, or the source backs off */
        }
        run.requests++;
        canned = s_route(fc, col_req_url(req));
        if (canned != NULL) {
            s_answer(req, fc, canned, strlen(canned));
            continue;
        }
        if (!more) {
            break;
        }
        cut = s_sep(p, end);
        s_answer(req, fc, (const char *)p, (size_t)(cut - p));
        if (cut == end) {
            more = 0;
        }
        else {
            p = cut + strlen(FUZZ_COL_SEP);
        }
    }
    ins.plugin->exit(&ins);
    col_state_destroy(&ins.state);
    col_net_destroy(&ins.net);
    if (getenv("FUZZ_COL_VERBOSE") != NULL) {
        fprintf(stderr, "fuzz_col: source=%s requests=%zu posts=%zu\n", ins.name, run.requests,
                run.posts);
    }
}
