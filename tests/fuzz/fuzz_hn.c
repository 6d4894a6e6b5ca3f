#define ESC_LOG_MODULE "fuzz"
/* libFuzzer target: the Hacker News (Algolia) connector's search_by_date parser
 * (hits, HTML story and comment text, nbPages paging, the 1000-hit window narrowing).
 * Runs through the real source plugin and the shared HTTP driver on an offline net
 * (fuzz_col.h): the input is one or more HTTP answers separated by FUZZ_COL_SEP.
 * FUZZ_DICT: json */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_col.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_col s_fc = {
    .source_json = "{\"name\":\"h\",\"type\":\"hn\",\"base_url\":\"https://hn.example\","
                   "\"query\":\"rust\",\"hits_per_page\":3,\"since\":\"2020-01-01\","
                   "\"page_delay_ms\":0}",
    .routes = NULL,
    .content_type = "application/json; charset=utf-8",
    .chunk = 0,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_col_run(&s_fc, data, size);
    return 0;
}
