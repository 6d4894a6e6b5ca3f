#ifndef COL_TEXT_H
#define COL_TEXT_H

/* Text and time helpers for the connectors (collector-internal): HTML to plain text with
 * libxml2's HTML parser (entities decoded, line breaks kept for <br> and paragraphs), RFC 822 /
 * HTTP dates, UTF-8 safe truncation and comparison of numeric id strings. */

#include <stddef.h>
#include <stdint.h>

/* Converts an HTML fragment (UTF-8) to plain text: tags dropped, entities decoded, runs of
 * spaces collapsed, <br> and <li> give a line break, paragraphs and other blocks a blank line,
 * <script>/<style> dropped, leading/trailing space trimmed. Plain text without markup comes
 * back with its entities decoded. Returns a caller-owned string ("" for NULL or empty input). */
char *col_html_to_text(const char *html, size_t len);

/* Parses an RFC 822 / RFC 1123 date ("Mon, 03 Feb 2025 14:05:09 GMT", "+0000", "EST", the
 * weekday optional, 2-digit years, seconds optional) into Unix ms. Returns 0 or -1. */
int col_time_parse_rfc822(const char *s, int64_t *ms);
/* RFC 3339 (a missing zone is taken as UTC) or RFC 822. Returns 0 or -1. */
int col_time_parse_any(const char *s, int64_t *ms);
/* Parses a source's "since" setting: "" (none: *ms = 0), "YYYY-MM-DD" (UTC midnight) or
 * RFC 3339. Returns 0 or -1. */
int col_since_parse(const char *s, int64_t *ms);

/* Reads the next token of *p separated by any byte of seps into out (cut to outsz), moving *p
 * past it. Returns 1 when a non-empty token was read, 0 at the end. */
int col_split_next(const char **p, const char *seps, char *out, size_t outsz);

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
void col_utf8_truncate(char *s, size_t max);

/* Compares decimal id strings as integers of any length ("99" < "100"); non-digits compare
 * bytewise after a length check. Returns <0, 0, >0. */
int col_id_cmp(const char *a, const char *b);

/* 64-bit FNV-1a of the n bytes at p, continuing from h (start with COL_FNV_SEED). */
#define COL_FNV_SEED UINT64_C(0xcbf29ce484222325)
uint64_t col_fnv1a(uint64_t h, const void *p, size_t n);

#endif
