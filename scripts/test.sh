#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs missing packages, builds with
# warnings as errors and AddressSanitizer + UndefinedBehaviorSanitizer (leaks are failures), and
# runs every test (unit, component against a real redis-server, end to end with all services).
# Usage: scripts/test.sh [ctest args, e.g. -L unit]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
build=build-test
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DESC_WERROR=ON \
    -DESC_SANITIZE='address;undefined' >/dev/null
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$build" --output-on-failure -j2 "$@"
