#define ESC_LOG_MODULE "fuzz"
/* libFuzzer target: the RSS 2.0 / RSS 1.0 / Atom feed parser (libxml2, HTML in
 * descriptions and content, RFC 822 and RFC 3339 dates, guid/id dedupe keys, ETag and
 * Last-Modified validators).
 * Runs through the real source plugin and the shared HTTP driver on an offline net
 * (fuzz_col.h): the input is one or more HTTP answers separated by FUZZ_COL_SEP.
 * FUZZ_DICT: xml */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_col.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_col s_fc = {
    .source_json = "{\"name\":\"f\",\"type\":\"rss\",\"url\":\"https://blog.example/feed.xml\","
                   "\"page_delay_ms\":0}",
    .routes = NULL,
    .content_type = "application/rss+xml; charset=utf-8",
    .chunk = 0,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_col_run(&s_fc, data, size);
    return 0;
}
