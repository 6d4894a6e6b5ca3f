#ifndef CLS_DATAFILE_H
#define CLS_DATAFILE_H

/* Where the classifier finds the data files made at build time (classifier-internal): the
 * language model (langid.model) and the sentiment lexicon (sentiment.lex). A configured path
 * (classifier.language_model / sentiment_lexicon, or their ESC_CLASSIFIER_* environment
 * overrides) always wins; this is only the default when none is set. */

#include <stddef.h>

/* Finds the data file `name` of escucha. Candidates, the first readable one wins:
 *   1. build_path (the file made in the build tree), when the running executable lies inside
 *      the build tree (a binary run from the build directory, the tests, the benchmarks);
 *   2. <directory of the executable>/<bindir to datadir>/escucha/<name>, e.g.
 *      /usr/bin/../share/escucha/langid.model: an installed tree wherever it was put (the
 *      Debian package's /usr, a DESTDIR, /opt/escucha);
 *   3. <CMAKE_INSTALL_FULL_DATADIR>/escucha/<name>, the prefix the build was configured with;
 *   4. build_path, for an installed binary whose data files are missing.
 * When none is readable, the first candidate, so the error names where the file was expected.
 * Writes the path into out (outsz bytes) and returns out. Thread-safe. */
const char *cls_datafile_find(const char *name, const char *build_path, char *out,
                              size_t outsz);

#endif
