#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ in a clang build tree (ESC_FUZZ=ON: every library
# instrumented, AddressSanitizer + UndefinedBehaviorSanitizer, libFuzzer's main) and runs each
# for SECONDS, one after the other, starting from its seed corpus (tests/fuzz/corpus/<name>)
# with its dictionary (the "FUZZ_DICT: <dict>" line of the source, tests/fuzz/dict/<dict>.dict).
# Prints one line per target with the executions reached and a summary table; exits non-zero
# when any target found a crash, a leak, a timeout or an out-of-memory (the input is saved as
# $FUZZ_OUT/crash-<target>-... and the report is in $FUZZ_OUT/fuzz_<target>.log).
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (TARGET = file name without fuzz_ and .c)
# Environment: FUZZ_SECONDS (default 60, when SECONDS is not given), FUZZ_OUT (build tree,
# default build-fuzz), FUZZ_KEEP_CORPUS=1 (continue from the corpus of the previous run instead
# of the seeds alone), FUZZ_ARGS (more libFuzzer flags, e.g. "-max_len=4096").
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-${FUZZ_SECONDS:-60}}
shift || true
out=${FUZZ_OUT:-build-fuzz}
command -v clang >/dev/null || { echo "fuzz: clang is needed (apt-get install clang)" >&2; exit 2; }

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    # every file that defines the entry point (fuzz_col.c and fuzz_replay.c are helpers)
    for f in $(grep -l '^LLVMFuzzerTestOneInput(' tests/fuzz/fuzz_*.c); do
        t=$(basename "$f" .c)
        targets+=("${t#fuzz_}")
    done
fi

mkdir -p "$out"
cmake -S . -B "$out" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DESC_FUZZ=ON -DESC_TESTS=OFF -DESC_BENCH=OFF \
    -DESC_SANITIZE='address;undefined' >"$out/configure.log" 2>&1 ||
    { cat "$out/configure.log" >&2; exit 2; }
build=()
for t in "${targets[@]}"; do
    build+=("fuzz_$t")
done
cmake --build "$out" -j"${FUZZ_JOBS:-2}" --target "${build[@]}" >"$out/build.log" 2>&1 ||
    { tail -n 40 "$out/build.log" >&2; exit 2; }

status=0
summary=()
for t in "${targets[@]}"; do
    bin=$(find "$out/tests/fuzz" -maxdepth 1 -name "fuzz_$t" -type f | head -n1)
    work="$out/corpus_$t"
    if [ "${FUZZ_KEEP_CORPUS:-0}" != 1 ]; then
        rm -rf "$work"
    fi
    mkdir -p "$work"
    dict=$(sed -n 's/.*FUZZ_DICT: *\([a-z_]*\).*/\1/p' "tests/fuzz/fuzz_$t.c" | head -n1)
    args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536
          -print_final_stats=1 -artifact_prefix="$out/crash-$t-")
    if [ -n "$dict" ]; then
        args+=(-dict="tests/fuzz/dict/$dict.dict")
    fi
    seeds=()
    if [ -d "tests/fuzz/corpus/$t" ]; then
        seeds=("tests/fuzz/corpus/$t")
    fi
    log="$out/fuzz_$t.log"
    # shellcheck disable=SC2086
    if "$bin" "${args[@]}" ${FUZZ_ARGS:-} "$work" "${seeds[@]}" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
        echo "fuzz: $t ok executions=${runs:-?} coverage=${cov:-?} seconds=$secs"
        summary+=("$(printf '%-16s %12s %8s  ok' "$t" "${runs:-?}" "${cov:-?}")")
    else
        echo "fuzz: $t FAILED (see $log)" >&2
        grep -E '(==ERROR|^SUMMARY|runtime error|Test unit written|ParseDictionaryFile)' \
            "$log" | head -n 20 >&2 || tail -n 20 "$log" >&2
        summary+=("$(printf '%-16s %12s %8s  FAILED' "$t" - -)")
        status=1
    fi
done
printf '\n%-16s %12s %8s  %s\n' target executions coverage result
printf '%s\n' "${summary[@]}"
exit $status
