#!/usr/bin/env bash
# Builds every libFuzzer target in tests/fuzz/ (clang, -fsanitize=fuzzer,address,undefined)
# and runs each for SECONDS (default 60) on a copy of its seed corpus, then prints one line per
# target with the executions reached. Exits non-zero on the first crash, leak or timeout found.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (target = file name without fuzz_ and .c)
# A target compiles with every non-test common/*.c plus the files named on its
# "FUZZ_SOURCES:" comment line (paths from the repository root).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
out=${FUZZ_OUT:-build-fuzz}
mkdir -p "$out"
command -v clang >/dev/null || { echo "fuzz: clang is needed (apt-get install clang)" >&2; exit 2; }

common=$(ls common/*.c | grep -v '_test\.c$')
flags=(-g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -DESC_VERSION='"fuzz"' -Icommon/include)
libs=$(pkg-config --cflags --libs libzmq hiredis jansson libutf8proc msgpack 2>/dev/null ||
       pkg-config --cflags --libs libzmq hiredis jansson libutf8proc msgpack-c)

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in tests/fuzz/fuzz_*.c; do
        t=$(basename "$f" .c)
        targets+=("${t#fuzz_}")
    done
fi

status=0
for t in "${targets[@]}"; do
    src=tests/fuzz/fuzz_$t.c
    extra=$(sed -n 's/.*FUZZ_SOURCES: *\(.*\) *\*\/.*/\1/p' "$src" | head -n1)
    inc=()
    for e in $extra; do
        inc+=(-I"$(dirname "$e")")
    done
    # shellcheck disable=SC2086
    clang "${flags[@]}" "${inc[@]}" -o "$out/fuzz_$t" "$src" $common $extra $libs
    work="$out/corpus_$t"
    rm -rf "$work"
    mkdir -p "$work"
    if [ -d "tests/fuzz/corpus/$t" ]; then
        cp -r "tests/fuzz/corpus/$t/." "$work/"
    fi
    log="$out/fuzz_$t.log"
    if "$out/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 "$work" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
        echo "fuzz: $t ok executions=${runs:-?} seconds=$secs"
    else
        echo "fuzz: $t FAILED (see $log)" >&2
        tail -n 30 "$log" >&2
        status=1
    fi
done
exit $status
