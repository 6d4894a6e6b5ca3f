#define ESC_LOG_MODULE "fuzz"
/* libFuzzer target: the CSV import (libcsv with RFC 4180 quoting, the header and its column
 * mapping, the three timestamp forms, numbers, the row and field limits), through the real
 * "csv" source plugin reading the input as its file (fuzz_col.h). Every input is imported
 * three times: comma-separated with every post field mapped, comma-separated with the required
 * columns only and a +02:00 offset for naive times, semicolon-separated with -05:00.
 * FUZZ_DICT: csv */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_col.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_col s_all = {
    .source_json = "{\"name\":\"c\",\"type\":\"csv\",\"path\":\"{file}\",\"platform\":\"x\","
                   "\"author_column\":\"author\",\"author_name_column\":\"name\","
                   "\"followers_column\":\"followers\",\"likes_column\":\"likes\","
                   "\"reposts_column\":\"reposts\",\"replies_column\":\"replies\","
                   "\"url_column\":\"url\",\"lang_column\":\"lang\"}",
    .file = 1,
};

static struct fuzz_col s_required = {
    .source_json = "{\"name\":\"r\",\"type\":\"csv\",\"path\":\"{file}\","
                   "\"timezone\":\"+02:00\"}",
    .file = 1,
};

static struct fuzz_col s_semicolon = {
    .source_json = "{\"name\":\"s\",\"type\":\"csv\",\"path\":\"{file}\",\"delimiter\":\";\","
                   "\"timezone\":\"-05:00\",\"author_column\":\"author\"}",
    .file = 1,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_col_run(&s_all, data, size);
    fuzz_col_run(&s_required, data, size);
    fuzz_col_run(&s_semicolon, data, size);
    return 0;
}
