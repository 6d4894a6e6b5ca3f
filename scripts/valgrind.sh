#!/usr/bin/env bash
# Runs the end-to-end pipeline test, the bad-input test and the Redis-crash outage test with
# every service (collector, broker, classifier, aggregator, notifier) under valgrind's memcheck
# (--error-exitcode=99 --leak-check=full; suppressions in tests/support/valgrind.supp, third-
# party false positives only). Builds the services in build-vg: Debug, no sanitizers (ASan and
# valgrind do not mix). Any memory error or leak makes a service exit 99 and its test fail; the
# reports are left in build-vg/valgrind/ (<service>.<pid>.vg) and the ones with errors are
# printed. Takes a few minutes. Usage: scripts/valgrind.sh [ctest -R regex]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind: not installed (scripts/deps.sh --test)" >&2; exit 2; }
build=${VG_BUILD:-build-vg}
tests=${1:-'^e2e_(pipeline|bad_input|outage_redis_crash)$'}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DESC_WERROR=ON -DESC_SANITIZE= >/dev/null
cmake --build "$build" -j"$(nproc)" --target escucha-collector escucha-broker \
    escucha-classifier escucha-aggregator escucha-notifier
reports="$PWD/$build/valgrind"
rm -rf "$reports"
mkdir -p "$reports"
status=0
ESC_TEST_VALGRIND=1 ESC_TEST_VALGRIND_DIR="$reports" \
    ctest --test-dir "$build" --output-on-failure -R "$tests" || status=$?
# A report with errors says "ERROR SUMMARY: N errors" with N > 0, or lists a leak.
bad=$(grep -L "ERROR SUMMARY: 0 errors" "$reports"/*.vg 2>/dev/null || true)
for f in $bad; do
    echo "valgrind: errors in $f" >&2
    cat "$f" >&2
    status=1
done
n=$(ls "$reports" | wc -l)
if [ "$n" -eq 0 ]; then
    echo "valgrind: no report written: were the services run?" >&2
    status=1
fi
echo "valgrind: $n process reports, status $status"
exit $status
