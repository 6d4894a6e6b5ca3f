#ifndef COL_CJSON_H
#define COL_CJSON_H

/* Small jansson helpers for the connectors (collector-internal): typed lookups by dotted path
 * that treat a missing key, null and a wrong type alike (platform payloads are full of optional
 * and nullable fields), and a parser whose error never quotes the input. */

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "escucha/esc_rc.h"

/* Parses body as JSON. Returns a new reference, or NULL with err->text saying where it broke
 * ("malformed JSON: ... at line L column C"; the input itself is never quoted). */
json_t *col_json_parse(const char *body, size_t len, struct esc_error *err);

/* The value at path ("account.acct", "snippet.topLevelComment.snippet"), borrowed, or NULL. */
json_t *col_json_get(const json_t *root, const char *path);
/* The string at path, borrowed, or NULL (also when it is "" and empty_is_null). */
const char *col_json_str(const json_t *root, const char *path);
/* The integer at path; a real is truncated and a decimal string (YouTube statistics) parsed.
 * def when absent or unusable. */
int64_t col_json_int(const json_t *root, const char *path, int64_t def);
/* The number at path as a double (Reddit created_utc); def when absent. */
double col_json_num(const json_t *root, const char *path, double def);

/* Sets *field to a copy of v when v is non-NULL and non-empty (the old value is freed). */
void col_set_str(char **field, const char *v);

#endif
