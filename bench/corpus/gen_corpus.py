#!/usr/bin/python3
"""Writes the benchmark corpus: realistic posts in the project's JSON shape (docs/collector.md),
one per line, split into shards (one file per collector), plus a meta file with what a run needs
to check its results.

Posts are 40-280 characters, about 55 % Spanish, 30 % English and 15 % Portuguese, drawn from a
Zipf vocabulary (bench/corpus/vocab.py) with accents, emoji (flags, skin tones, ZWJ sequences),
hashtags, mentions, links, some shouting and some posts typed without accents. Authors follow a
Zipf activity law over --authors handles on mastodon, bluesky, reddit and rss. Event times
(created_at) spread over --days days with a daily rhythm (Lima time), in near order: line i of
the whole corpus (i = line * shards + shard) sits at the i-th quantile of the time span, give or
take 90 s. Post ids are unique over the corpus.

Canary tokens (vocab.CANARY_*) are planted at known lines: the meta file lists, per shard, the
lines on which each canary topic of gen_topics.py must match, under keyword semantics and under
query semantics (NOT, NEAR/3, exact phrase). A run that read the first n lines of a shard can
then compute the exact count each canary topic must reach in Redis (expected_canaries()).

This script writes the vocabulary (vocab.tsv) and runs the C engine bench_gen_corpus
(bench/corpus/gen_corpus.c; Python made only about 17,000 posts/s) once per shard, --jobs at a
time. Deterministic: the same --seed, --lines, --shards, --days and --authors always give the
same bytes, whatever --jobs. Standard library only; run it with /usr/bin/python3.

    /usr/bin/python3 bench/corpus/gen_corpus.py --lines 2000000 --shards 2 \
        --bin build-bench/bench/corpus/bench_gen_corpus --out-dir out/bench/corpus-2m
"""

import argparse
import bisect
import calendar
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vocab as V  # noqa: E402

START = "2026-11-16T05:00:00Z"  # Monday 00:00 in Lima
CANARY_TOPICS = ("plain", "not", "near", "phrase")
NEAR_N = 3  # the canary NEAR distance (gen_corpus.c G_NEAR_N)
BIN_NAME = "bench_gen_corpus"


def find_bin(explicit):
    """The engine: --bin, else bench/corpus/bench_gen_corpus in the usual build directories."""
    if explicit:
        return explicit
    root = os.path.dirname(os.path.dirname(HERE))
    for b in ("build-bench", "build"):
        p = os.path.join(root, b, "bench", "corpus", BIN_NAME)
        if os.access(p, os.X_OK):
            return p
    sys.exit("gen_corpus: %s not found; build it (cmake --build build-bench) or pass --bin"
             % BIN_NAME)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200000, help="posts in the whole corpus")
    ap.add_argument("--shards", type=int, default=1, help="files to split it into")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=float, default=7.0, help="event-time span")
    ap.add_argument("--authors", type=int, default=200000)
    ap.add_argument("--jobs", type=int, default=0, help="processes (default: cores)")
    ap.add_argument("--bin", help="path of bench_gen_corpus")
    ap.add_argument("--out-dir", required=True)
    a = ap.parse_args(argv)
    if a.lines < 1 or a.shards < 1 or a.shards > 64 or a.days <= 0 or a.authors < 10:
        ap.error("need --lines >= 1, 1 <= --shards <= 64, --days > 0, --authors >= 10")
    return a


def expected_canaries(meta, shard_lines):
    """{mode: {canary topic: count}} for a run that read the first shard_lines[k] lines of
    shard k (mode "keywords" or "query": the semantics of the canary topics' definitions)."""
    out = {"keywords": {}, "query": {}}
    for mode in out:
        for t in CANARY_TOPICS:
            n = 0
            for k, s in enumerate(meta["shards"]):
                n += bisect.bisect_left(s["canary_lines"][t][mode], shard_lines[k])
            out[mode][t] = n
    return out


def load_meta(out_dir):
    with open(os.path.join(out_dir, "corpus.meta.json")) as f:
        return json.load(f)


def main(argv):
    a = parse_args(argv)
    exe = find_bin(a.bin)
    os.makedirs(a.out_dir, exist_ok=True)
    jobs = max(1, min(a.jobs or os.cpu_count() or 1, a.shards))
    t0 = time.time()
    vocab_path = os.path.join(a.out_dir, "vocab.tsv")
    V.dump(vocab_path, a.authors)
    t_vocab = time.time() - t0
    start_s = calendar.timegm(time.strptime(START, "%Y-%m-%dT%H:%M:%SZ"))
    pending = list(range(a.shards))
    running = {}
    failed = []
    while pending or running:
        while pending and len(running) < jobs:
            k = pending.pop(0)
            cmd = [exe, "--vocab", vocab_path, "--lines", str(a.lines), "--shards",
                   str(a.shards), "--shard", str(k), "--seed", str(a.seed), "--days",
                   repr(a.days), "--start-s", str(start_s),
                   "--out", os.path.join(a.out_dir, "corpus-%02d.jsonl" % k),
                   "--meta", os.path.join(a.out_dir, "shard-%02d.meta.json" % k)]
            running[k] = subprocess.Popen(cmd)
        for k, p in list(running.items()):
            if p.poll() is not None:
                if p.returncode != 0:
                    failed.append(k)
                del running[k]
        time.sleep(0.05)
    if failed:
        sys.exit("gen_corpus: shard(s) %s failed" % failed)
    shards = []
    for k in range(a.shards):
        path = os.path.join(a.out_dir, "shard-%02d.meta.json" % k)
        with open(path) as f:
            shards.append(json.load(f))
        os.unlink(path)
    elapsed = time.time() - t0
    meta = {"generator": "bench/corpus/gen_corpus.py", "seed": a.seed, "lines": a.lines,
            "days": a.days, "start": START, "authors": a.authors, "near_n": NEAR_N,
            "jobs": jobs, "seconds": round(elapsed, 2), "vocab_seconds": round(t_vocab, 2),
            "lines_per_s": round(a.lines / elapsed) if elapsed > 0 else None,
            "bytes": sum(s["bytes"] for s in shards), "shards": shards}
    with open(os.path.join(a.out_dir, "corpus.meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    full = expected_canaries(meta, [s["lines"] for s in shards])
    print("corpus: %d lines in %d shard(s), %.1f MB, %.1f s (vocabulary %.1f s), %d lines/s; "
          "canary hits (query semantics) %s"
          % (a.lines, a.shards, meta["bytes"] / 1e6, elapsed, t_vocab, meta["lines_per_s"] or 0,
             json.dumps(full["query"])), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
