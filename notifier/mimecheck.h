#ifndef NTF_MIMECHECK_H
#define NTF_MIMECHECK_H

/* Test support: parses a message file with Python's email package (tests/support/mime_check.py
 * run by /usr/bin/python3) and returns its JSON summary, so C tests can check the MIME structure
 * with an independent parser. Test code only. */

#include <jansson.h>

/* Summary of the message in path (see mime_check.py), or NULL (message on stderr). Caller owns
 * (json_decref). */
json_t *ntf_test_mime(const char *path);

/* The content-type tree as text, e.g. "multipart/related(multipart/alternative(text/plain,
 * text/html),image/png)", into out. */
void ntf_test_mime_tree(const json_t *summary, char *out, size_t outsz);

#endif
