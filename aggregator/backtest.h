#ifndef AGG_BACKTEST_H
#define AGG_BACKTEST_H

/* escucha-aggregator --backtest: replays a `timestamp,value` CSV series through the spike rule
 * (spikes.h) and writes `timestamp,value,expected,score,alert` rows, so a rule can be tuned on
 * history before it is turned on (docs/aggregator.md, "Tuning with --backtest"). */

#include <stdio.h>

#include "spikes.h"

#define AGG_BACKTEST_ROWS_MAX 2000000 /* rows read at most */

/* Reads the series from in (name is used in messages), detects its interval (the most common
 * gap between rows: a whole number of minutes dividing an hour), runs the rule cfg with the
 * window, baseline, cooldown and end lengths rounded to whole rows, and writes one output row
 * per good input row to out. A bad row is reported on err with its line number and skipped; a
 * missing row inside the series counts as 0. Returns 0, or 2 when the series cannot be used
 * (unsupported interval, too many rows, read error), with the reason on err. */
int agg_backtest_run(FILE *in, const char *name, FILE *out, FILE *err,
                     const struct agg_spike_cfg *cfg);

#endif
