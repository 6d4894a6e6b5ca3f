#ifndef FUZZ_COL_H
#define FUZZ_COL_H

/* Shared driver of the collector's source fuzz targets (tests/fuzz/fuzz_<platform>.c): runs
 * one real source instance - its config mapped and validated exactly as the collector does,
 * the shared HTTP driver (api.c) and the platform's parser - against answers taken from the
 * fuzz input instead of the network (an offline col_net_t, net.h), with a memory-only state
 * and an emit callback that encodes every post for the bus and decodes it again. A file
 * source (csv) reads the input as its file instead.
 *
 * The input is one or more HTTP answers separated by FUZZ_COL_SEP; request n of the source
 * gets answer n, except that requests whose URL contains a canned route's text (log-in and
 * token endpoints) get that route's fixed answer. An answer that starts with "HTTP/" is a raw
 * response (status line, header lines, blank line, body); anything else is the body of a 200
 * with the target's Content-Type. The run ends when the answers run out, when the source has
 * no request in flight (the poll is over or it is backing off) or after FUZZ_COL_STEPS polls. */

#include <stddef.h>
#include <stdint.h>

#define FUZZ_COL_SEP "\n--next--\n" /* between two answers of one input */
#define FUZZ_COL_STEPS 64           /* most polls per input */

/* A request whose URL contains url_part gets answer (raw, as in the input). */
struct fuzz_col_route {
    const char *url_part;
    const char *answer;
};

struct fuzz_col_priv;

/* One fuzzed source. The targets define it static; priv is filled on first use. */
struct fuzz_col {
    const char *source_json;   /* the source object of the config ("type" included) */
    const struct fuzz_col_route *routes; /* canned answers, ended by {NULL, NULL}; may be NULL */
    const char *content_type;  /* of answers given as a bare body */
    size_t chunk;              /* streamed bodies: bytes per stream callback, 0 = all at once */
    int file;                  /* 1: the input is a file whose path replaces "{file}" in
                                  source_json; the source is polled until done */
    struct fuzz_col_priv *priv;
};

/* Runs one input through the source (see above). Aborts when the config is refused, when an
 * HTTP source's init fails or when a post does not survive encode/decode. */
void fuzz_col_run(struct fuzz_col *fc, const uint8_t *data, size_t size);

#endif
