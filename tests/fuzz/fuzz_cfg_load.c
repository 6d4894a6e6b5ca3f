/* libFuzzer target: the deployment config loader and a section mapping on arbitrary text. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "escucha/esc_cfg.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_svc {
    char s[32];
    int64_t n;
    double d;
    bool b;
};

static const struct esc_cfg_entry fz_map[] = {
    ESC_CFG_STR("s", "x", struct fz_svc, s, "string"),
    ESC_CFG_INT("n", "1", 0, 100, struct fz_svc, n, "int"),
    ESC_CFG_DBL("d", "1", 0, 100, struct fz_svc, d, "double"),
    ESC_CFG_BOOL("b", "false", struct fz_svc, b, "bool"),
    ESC_CFG_END,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = esc_malloc(size + 1);
    struct esc_error err;
    struct esc_cfg *cfg;
    struct fz_svc svc;

    esc_log_level_cur = -1;
    memcpy(text, data, size);
    text[size] = '\0';
    cfg = esc_cfg_load_string(text, "fuzz", &err);
    if (cfg != NULL) {
        (void)esc_cfg_section_apply(cfg, "aggregator", fz_map, NULL, &svc, &err);
        (void)esc_cfg_section_apply(cfg, "teams.0.topics.0.spike", fz_map, NULL, &svc, &err);
        (void)esc_cfg_topic_find(cfg, "a/b");
        esc_cfg_free(&cfg);
    }
    esc_free(text);
    return 0;
}
