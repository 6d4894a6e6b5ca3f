#define ESC_LOG_MODULE "fuzz"
/* libFuzzer target: the YouTube Data API connector's parsers, both kinds on every input:
 * search.list (videos: HTML-escaped titles, publishedAt, nextPageToken paging) and
 * commentThreads.list (comments of a video: HTML textDisplay, authors), plus the quota and
 * rate-limit error bodies of 403 answers. Runs through the real source plugin and the shared
 * HTTP driver on an offline net (fuzz_col.h): the input is one or more HTTP answers separated
 * by FUZZ_COL_SEP.
 * FUZZ_DICT: json */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_col.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_col s_videos = {
    .source_json = "{\"name\":\"yv\",\"type\":\"youtube\",\"base_url\":\"https://yt.example\","
                   "\"key_env\":\"ESC_FUZZ_SECRET\",\"kind\":\"videos\",\"query\":\"rust\","
                   "\"max_results\":2,\"since\":\"2020-01-01\",\"page_delay_ms\":0}",
    .routes = NULL,
    .content_type = "application/json; charset=UTF-8",
    .chunk = 0,
};

static struct fuzz_col s_comments = {
    .source_json = "{\"name\":\"yc\",\"type\":\"youtube\",\"base_url\":\"https://yt.example\","
                   "\"key_env\":\"ESC_FUZZ_SECRET\",\"kind\":\"comments\","
                   "\"video_id\":\"vidX\",\"max_results\":2,\"since\":\"2020-01-01\","
                   "\"page_delay_ms\":0}",
    .routes = NULL,
    .content_type = "application/json; charset=UTF-8",
    .chunk = 0,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_col_run(&s_videos, data, size);
    fuzz_col_run(&s_comments, data, size);
    return 0;
}
