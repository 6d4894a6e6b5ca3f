#!/usr/bin/env bash
# Measures the packaged baselines on the langid evaluation set (docs/language-id.md):
# CLD2 (libcld2-dev) and libexttextcat (libexttextcat-dev), each unrestricted and restricted to
# the configured languages, with the same table as escucha-langid-eval, plus their speed.
# Usage: classifier/langid/baseline/run_baselines.sh [FILE.tsv...]   (needs g++, both -dev packages)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data="$here/../../../tests/data/langid"
langs=es,en,pt,qu,ay
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
    files=("$data/posts.tsv" "$data/udhr.tsv")
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# libcld2_full only holds the 160-language tables: keep it linked (Debian links --as-needed)
# so that its tables replace the compact ones of libcld2.
g++ -O2 -o "$tmp/cld2_eval" "$here/cld2_eval.cc" \
    -Wl,--no-as-needed -lcld2_full -lcld2 -Wl,--as-needed
cc -O2 -o "$tmp/exttextcat_eval" "$here/exttextcat_eval.c" \
    $(pkg-config --cflags --libs libexttextcat)
grep -E '^(es|en|pt|quz|ay)\.lm' /usr/share/libexttextcat/fpdb.conf > "$tmp/restricted.conf"
for f in "${files[@]}"; do
    echo "## $(basename "$f")"
    echo
    {
        "$tmp/cld2_eval" es en pt qu ay < "$f"
        "$tmp/exttextcat_eval" /usr/share/libexttextcat/fpdb.conf textcat < "$f"
        "$tmp/exttextcat_eval" "$tmp/restricted.conf" textcat-restricted < "$f"
    } | /usr/bin/python3 "$here/score.py" "$langs"
done
# Speed on the sentences of the posts file, 20 passes (texts/s, one core).
grep -P '\tsent\t' "$data/posts.tsv" > "$tmp/sent.tsv"
for i in $(seq 20); do cat "$tmp/sent.tsv"; done > "$tmp/sent20.tsv"
n=$(wc -l < "$tmp/sent20.tsv")
for tool in "cld2_eval es" "exttextcat_eval $tmp/restricted.conf x"; do
    start=$(date +%s.%N)
    "$tmp"/$tool < "$tmp/sent20.tsv" > /dev/null
    end=$(date +%s.%N)
    echo "speed ${tool%% *}: $(echo "$n / ($end - $start)" | bc) sentences/s"
done
