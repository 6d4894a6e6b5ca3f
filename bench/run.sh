#!/bin/sh
# Runs every escucha benchmark with one command and writes the results as one JSON file plus a
# short table (docs/benchmarks.md explains each figure).
#
#   bench/run.sh            quick mode: small corpus, 10 s windows (about 3 minutes)
#   bench/run.sh --full     the figures of docs/benchmarks.md: 10 M posts, 60 s windows (~40 min)
#
# Options: --build-dir DIR (default build-bench), --data-dir DIR (corpus, topics and the parts
# of each run; default out/bench), --out FILE (default bench/results/<date>-<host>.json),
# --only LIST (comma-separated: codec,collector,classifier,aggregator,e2e), --skip-build.
#
# Builds the services and benchmarks (Release) first, generates the corpus and topic files when
# they are missing (cached under the data dir), then runs: the codec and classifier
# micro-benchmarks, bench_aggregator, and the end-to-end runs of bench/e2e/run_e2e.py. Every
# step has a time limit. Only 127.0.0.1 and unix sockets are used. Never part of the test run.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
BUILD=$ROOT/build-bench
DATA=$ROOT/out/bench
MODE=quick
OUT=
ONLY=codec,collector,classifier,aggregator,e2e
SKIP_BUILD=0

while [ $# -gt 0 ]; do
    case $1 in
    --full) MODE=full ;;
    --quick) MODE=quick ;;
    --build-dir) BUILD=$2; shift ;;
    --data-dir) DATA=$2; shift ;;
    --out) OUT=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --skip-build) SKIP_BUILD=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
case $DATA in /*) ;; *) DATA=$ROOT/$DATA ;; esac

want() {
    case ",$ONLY," in *",$1,"*) return 0 ;; esac
    return 1
}

log() {
    printf '%s run.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

if [ "$MODE" = full ]; then
    LINES=10000000
    MICRO_POSTS=200000
    MIN_CPU=3
    REPEAT=3
    AGG_POSTS=2000000
    WINDOW=60
    WARMUP=10
    HWM=160 # bus.hwm of every end-to-end run, in frames of up to 64 posts: ~10,000 posts
else
    LINES=1200000
    MICRO_POSTS=50000
    MIN_CPU=0.5
    REPEAT=1
    AGG_POSTS=300000
    WINDOW=10
    WARMUP=3
    HWM=160
fi
SHARDS=2
SEED=1

STAMP=$(date -u +%Y%m%d-%H%M)
HOST=$(hostname -s 2>/dev/null || hostname)
[ -n "$OUT" ] || OUT=$ROOT/bench/results/$STAMP-$HOST-$MODE.json
PARTS=$DATA/parts-$STAMP-$MODE
mkdir -p "$DATA" "$PARTS"

# --- build -----------------------------------------------------------------------------------
if [ "$SKIP_BUILD" = 0 ]; then
    log "building into $BUILD (Release)"
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        timeout 600 cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
            >"$PARTS/cmake.log" 2>&1 || { tail -20 "$PARTS/cmake.log" >&2; exit 1; }
    fi
    targets="escucha-collector escucha-broker escucha-classifier escucha-aggregator"
    targets="$targets escucha-notifier bench_gen_corpus bench_codec bench_classifier bench_probe"
    targets="$targets bench_sink"
    if grep -q bench_aggregator "$BUILD/Makefile" "$BUILD/build.ninja" 2>/dev/null; then
        targets="$targets bench_aggregator"
    fi
    # shellcheck disable=SC2086
    timeout 1800 cmake --build "$BUILD" -j2 --target $targets >"$PARTS/build.log" 2>&1 ||
        { tail -30 "$PARTS/build.log" >&2; exit 1; }
fi

# --- data --------------------------------------------------------------------------------------
CORPUS=$DATA/corpus-$LINES-s$SHARDS-$SEED
if [ ! -f "$CORPUS/corpus.meta.json" ]; then
    log "generating the corpus: $LINES posts in $SHARDS shards -> $CORPUS"
    timeout 1800 "$PY" "$ROOT/bench/corpus/gen_corpus.py" --lines "$LINES" --shards "$SHARDS" \
        --seed "$SEED" --bin "$BUILD/bench/corpus/bench_gen_corpus" --out-dir "$CORPUS"
fi
cp "$CORPUS/corpus.meta.json" "$PARTS/corpus.meta.json"
# The same posts with event times of a live firehose: the event-time clock advances by 150,000
# posts per second (the issue's target rate), so a flush sees the minute buckets of a live
# stream. The corpus above spreads its posts over 7 days: replayed at full speed it is a
# backfill (a year of history imported), where every flush touches many buckets per topic.
FIRE_DAYS=$(awk -v n="$LINES" 'BEGIN { printf "%.9f", n / 150000 / 86400 }')
FIRE=$DATA/corpus-$LINES-s$SHARDS-$SEED-fire
if [ ! -f "$FIRE/corpus.meta.json" ]; then
    log "generating the firehose corpus: $LINES posts over $FIRE_DAYS days -> $FIRE"
    timeout 1800 "$PY" "$ROOT/bench/corpus/gen_corpus.py" --lines "$LINES" --shards "$SHARDS" \
        --seed "$SEED" --days "$FIRE_DAYS" --bin "$BUILD/bench/corpus/bench_gen_corpus" \
        --out-dir "$FIRE"
fi
for spec in 10:mixed 1000:mixed 10000:mixed 1000:keywords 1000:query; do
    n=${spec%%:*}
    m=${spec#*:}
    f=$DATA/topics-$n-$m.json
    if [ ! -f "$f" ]; then
        timeout 300 "$PY" "$ROOT/bench/corpus/gen_topics.py" --topics "$n" --mode "$m" --out "$f"
    fi
done

# --- micro-benchmarks --------------------------------------------------------------------------
SHARD0=$CORPUS/corpus-00.jsonl
if want codec; then
    log "codec micro-benchmark"
    timeout 600 "$BUILD/bench/codec/bench_codec" --corpus "$SHARD0" --posts "$MICRO_POSTS" \
        --min-cpu "$MIN_CPU" --repeat "$REPEAT" >"$PARTS/codec.json"
fi
if want collector; then
    # 200,000 posts in both modes: with fewer, the process's start-up weighs on the figure
    log "collector benchmark (the escucha-collector binary, jsonl -> bus)"
    timeout 900 "$PY" "$ROOT/bench/collector/run_collector.py" --bin-dir "$BUILD" \
        --corpus "$SHARD0" --posts 200000 --repeat "$REPEAT" \
        --out "$PARTS/collector.json" || log "collector benchmark failed (exit $?)"
fi
if want classifier; then
    first=1
    configs="10-mixed 1000-mixed 10000-mixed"
    [ "$MODE" = full ] && configs="$configs 1000-keywords 1000-query"
    for c in $configs; do
        log "classifier micro-benchmark, topics $c"
        stages=tokenize,match,analyze,process,all
        [ $first = 1 ] && stages=tokenize,match,analyze,process,langid,sentiment,all
        first=0
        timeout 900 "$BUILD/bench/classifier/bench_classifier" --corpus "$SHARD0" \
            --config "$DATA/topics-$c.json" --posts "$MICRO_POSTS" --min-cpu "$MIN_CPU" \
            --repeat "$REPEAT" --stages "$stages" >"$PARTS/classifier-$c.json"
    done
fi
if want classifier && [ "$MODE" = full ] && command -v perf >/dev/null 2>&1; then
    # Where the classifier's time goes (self time per function), for docs/benchmarks.md.
    log "profiling the classifier (perf, 1,000 topics, all stages on)"
    timeout 600 perf record -q -F 999 -o "$PARTS/perf-classifier.data" \
        "$BUILD/bench/classifier/bench_classifier" --corpus "$SHARD0" \
        --config "$DATA/topics-1000-mixed.json" --posts 20000 --min-cpu 10 \
        --stages all >/dev/null 2>&1 &&
        perf report -i "$PARTS/perf-classifier.data" --stdio --no-children --sort symbol,dso \
            --percent-limit 0.5 >"$PARTS/perf-classifier.txt" 2>/dev/null || true
    timeout 600 perf record -q -F 999 -o "$PARTS/perf-codec.data" \
        "$BUILD/bench/codec/bench_codec" --corpus "$SHARD0" --posts 20000 \
        --min-cpu 2 >/dev/null 2>&1 &&
        perf report -i "$PARTS/perf-codec.data" --stdio --no-children --sort symbol,dso \
            --percent-limit 0.5 >"$PARTS/perf-codec.txt" 2>/dev/null || true
fi
if want aggregator && [ -x "$BUILD/bench/aggregator/bench_aggregator" ]; then
    log "aggregator micro-benchmark (bench/aggregator)"
    timeout 900 "$BUILD/bench/aggregator/bench_aggregator" --posts "$AGG_POSTS" \
        >"$PARTS/aggregator.json" || log "bench_aggregator failed (exit $?)"
fi

# --- end to end --------------------------------------------------------------------------------
e2e() {
    name=$1
    shift
    log "end to end: $name $*"
    hwm_opt=
    [ -n "$HWM" ] && hwm_opt="--hwm $HWM"
    case " $* " in *" --hwm "*) hwm_opt= ;; esac
    # shellcheck disable=SC2086
    timeout $((WINDOW * 3 + WARMUP + 900)) "$PY" "$ROOT/bench/e2e/run_e2e.py" \
        --bin-dir "$BUILD" --corpus-dir "${E2E_CORPUS:-$FIRE}" --window "$WINDOW" \
        --warmup "$WARMUP" \
        $hwm_opt --label "$name" --out "$PARTS/e2e-$name.json" "$@" ||
        log "e2e $name: exit $? (checks failed or run aborted; see above)"
}
if want e2e; then
    T10=$DATA/topics-10-mixed.json
    T1000=$DATA/topics-1000-mixed.json
    perf_opt=
    command -v perf >/dev/null 2>&1 && perf_opt=--perf
    # shellcheck disable=SC2086
    e2e max-1000 --topics "$T1000" $perf_opt
    e2e max-1000-2cls --topics "$T1000" --classifiers 2 --collectors 2
    E2E_CORPUS=$CORPUS
    e2e max-1000-backfill --topics "$T1000"
    E2E_CORPUS=
    e2e rate-10k-flush100 --topics "$T1000" --rate 10000 --flush-ms 100
    e2e slow-1cls --topics "$T1000" --slow-classifier
    if [ "$MODE" = full ]; then
        e2e max-10 --topics "$T10"
        e2e max-10000 --topics "$DATA/topics-10000-mixed.json"
        e2e rate-10k --topics "$T1000" --rate 10000
        e2e rate-10k-flush100-notop --topics "$T1000" --rate 10000 --flush-ms 100 \
            --set aggregator.top_lists=false
        e2e rate-150k --topics "$T1000" --rate 150000 --collectors 2
        e2e slow-2cls --topics "$T1000" --classifiers 2 --slow-classifier
        # The classifier made the bottleneck on purpose (each held to 5 % of a core): does a
        # second one raise throughput?
        e2e scale-1cls --topics "$T10" --slow-classifier --slow-duty 0.05
        e2e scale-2cls --topics "$T10" --classifiers 2 --slow-classifier --slow-count 2 \
            --slow-duty 0.05
    fi
fi

"$PY" "$ROOT/bench/summary.py" --parts "$PARTS" --mode "$MODE" --out "$OUT"
log "results: $OUT (parts in $PARTS)"
