#!/usr/bin/python3
"""Collects the JSON outputs of one bench/run.sh run into a single results file and prints a
short table, with the targets of issue #8 beside the measured figures.

    /usr/bin/python3 bench/summary.py --parts DIR --mode quick --out bench/results/X.json
    /usr/bin/python3 bench/summary.py --show bench/results/X.json

DIR holds codec.json, classifier-<topics>.json, aggregator.json and e2e-<name>.json, as
bench/run.sh writes them. Standard library only."""

import argparse
import datetime as dt
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def collect(parts, mode):
    res = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "mode": mode, "git": git_rev(), "micro": {}, "e2e": {}}
    codec = load(os.path.join(parts, "codec.json"))
    if codec:
        res["machine"] = codec.get("machine")
        res["micro"]["codec"] = codec
    res["micro"]["classifier"] = {}
    for p in sorted(glob.glob(os.path.join(parts, "classifier-*.json"))):
        name = os.path.basename(p)[len("classifier-"):-len(".json")]
        r = load(p)
        if r:
            res["micro"]["classifier"][name] = r
            res.setdefault("machine", r.get("machine"))
    col = load(os.path.join(parts, "collector.json"))
    if col:
        res["micro"]["collector"] = col
    agg = load(os.path.join(parts, "aggregator.json"))
    if agg:
        res["micro"]["aggregator"] = agg
    for p in sorted(glob.glob(os.path.join(parts, "e2e-*.json"))):
        name = os.path.basename(p)[len("e2e-"):-len(".json")]
        r = load(p)
        if r:
            res["e2e"][name] = r
            res.setdefault("machine", r.get("machine"))
    gen = load(os.path.join(parts, "corpus.meta.json"))
    if gen:
        res["corpus"] = {k: gen.get(k) for k in ("lines", "seed", "days", "bytes", "seconds",
                                                 "lines_per_s", "jobs")}
    return res


def stage(r, name):
    for s in (r or {}).get("stages", []):
        if s["stage"] == name:
            return s["posts_per_s_cpu"]
    return None


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float) and v < 10:
        return "%.2f%s" % (v, unit)
    return "{:,}{}".format(int(round(v)), unit)


def show(res):
    out = []
    m = res.get("machine") or {}
    out.append("escucha benchmarks (%s mode, %s, git %s)" % (res["mode"], res["date"],
                                                              res.get("git")))
    out.append("machine: %s, %s cores, %s, %s" % (m.get("host"), m.get("cores"),
                                                   m.get("cpu_model"), m.get("mem_total")))
    c = res["micro"].get("codec")
    if c:
        out.append("")
        out.append("codecs (posts/s per core, CPU time; %d posts, %d B JSON, %d B msgpack):"
                   % (c["posts"], c["json_bytes_mean"], c["msgpack_bytes_mean"]))
        for s in c["stages"]:
            out.append("  %-40s %12s" % (s["stage"], fmt(s["posts_per_s_cpu"])))
    col = res["micro"].get("collector")
    if col:
        b = col["best"]
        out.append("")
        out.append("collector binary, jsonl -> bus (bench/collector): %s posts per CPU second, "
                   "%s posts/s wall, max RSS %d kB" % (fmt(b["posts_per_cpu_s"]),
                                                      fmt(b["posts_per_wall_s"]),
                                                      b["max_rss_kb"]))
    cls = res["micro"].get("classifier") or {}
    if cls:
        out.append("")
        out.append("classifier (posts/s per core, CPU time):")
        out.append("  %-16s %7s %6s %10s %10s %10s %10s %10s %10s %10s %8s" % (
            "topics", "match%", "hits", "tokenize", "match", "analyze", "process", "langid",
            "sentiment", "all", "matcher"))
        for name, r in sorted(cls.items(), key=lambda kv: (kv[1]["topics"], kv[0])):
            out.append("  %-16s %6.1f%% %6.2f %10s %10s %10s %10s %10s %10s %10s %5.1f MB" % (
                name, 100 * r["matched_share"], r["topics_per_post"], fmt(stage(r, "tokenize")),
                fmt(stage(r, "match")), fmt(stage(r, "analyze")), fmt(stage(r, "process")),
                fmt(stage(r, "langid")), fmt(stage(r, "sentiment")), fmt(stage(r, "all")),
                r["matcher_rss_kb"] / 1024))
    a = res["micro"].get("aggregator")
    if a:
        out.append("")
        out.append("aggregator (bench/aggregator): %s posts/s per core, %s posts/s wall, "
                   "%s Redis commands/post" % (
                       fmt(a.get("posts_per_s_cpu")), fmt(a.get("posts_per_s_wall")),
                       a.get("redis_cmds_per_post")))
    if res["e2e"]:
        out.append("")
        out.append("end to end (window figures):")
        out.append("  %-24s %6s %3s %4s %8s %8s %8s %8s %7s %6s %8s %6s %5s" % (
            "run", "topics", "col", "cls", "offered", "posts/s", "p50 ms", "p99 ms",
            "calls/p", "cmds/p", "RSS MB", "others", "check"))
        for name, r in res["e2e"].items():
            p = r["params"]
            lat = (r.get("latency_ms") or {}) if r["latency_probe"].get("seen") else {}
            rss = max((x["peak_rss_kb"] or 0) for k, x in r["processes"].items() if k != "redis")
            out.append("  %-24s %6d %3d %4s %8s %8s %8s %8s %7.3f %6.1f %8.1f %6s %5s" % (
                name, p["topics"], p["collectors"],
                "%d%s" % (p["classifiers"], "*" if p["slow_classifier"] else ""),
                fmt(p["rate"]) if p["rate"] else "max", fmt(r["throughput"]["posts_per_s"]),
                fmt(lat.get("p50")), fmt(lat.get("p99")),
                r["redis"].get("script_calls_per_post") or 0,
                r["redis"]["commands_per_post"] or 0, rss / 1024,
                "%.2f" % r.get("machine_window", {}).get("other_cores", 0),
                "ok" if r["checks"]["ok"] else "FAIL"))
        out.append("  (* classifier(s) slowed with --slow-classifier; calls/p = Redis calls the aggregator sent per "
                   "post, cmds/p = commands Redis ran per post, scripts included; others = "
                   "CPU cores used by other processes during the window)")
    out.append("")
    out.append("targets (issue #8):")
    for line in targets(res):
        out.append("  " + line)
    return "\n".join(out)


def targets(res):
    rows = []
    e2e = res["e2e"]
    best = max(((r["throughput"]["posts_per_s"], n) for n, r in e2e.items()
                if not r["params"]["slow_classifier"] and 1000 <= r["params"]["topics"] < 2000),
               default=(None, None))
    rows.append("end to end >= 150,000 posts/s at 1,000 topics: %s (best run: %s)" % (
        fmt(best[0]), best[1]))
    lat = [(n, r["params"]["rate"], (r.get("latency_ms") or {}).get("p99")
            if r["latency_probe"].get("seen") else None) for n, r in e2e.items()
           if r["params"]["rate"]]
    for n, rate, p99 in lat:
        limit = 200 if rate <= 10000 else 2000
        rows.append("p99 intake->Redis at %s posts/s <= %d ms: %s ms (%s)" % (
            fmt(rate), limit, fmt(p99), n))
    cls = res["micro"].get("classifier") or {}
    by_topics = {}
    for r in cls.values():
        if r.get("select", "all") != "all":
            continue  # --select matched/unmatched: a part of the corpus, not the target's
        if r["config"].endswith("mixed.json") or "keywords" not in r["config"]:
            by_topics.setdefault(r["topics"], r)
    k1000 = [r for r in by_topics.values() if 1000 <= r["topics"] < 2000]
    if k1000:
        r = k1000[0]
        on = [x for x in ("langid", "sentiment") if r.get(x)]
        rows.append("classifier >= 300,000 posts/s per core at 1,000 topics (everything on): "
                    "%s (%s)" % (fmt(stage(r, "all")),
                                 "process + " + " + ".join(on) if on else
                                 "language ID and sentiment not built in yet: process only"))
    small = [r for r in by_topics.values() if r["topics"] < 100]
    large = [r for r in by_topics.values() if r["topics"] >= 10000]
    if small and large and stage(large[0], "process"):
        ratio = "10 -> 10,000 topics costs < 2x: %.2fx (process)" % (
            stage(small[0], "process") / stage(large[0], "process"))
        if stage(large[0], "match"):
            ratio += ", %.2fx (matching alone)" % (stage(small[0], "match")
                                                    / stage(large[0], "match"))
        rows.append(ratio)
    matched = {r["topics"]: r for r in cls.values() if r.get("select") == "matched"}
    ms = [matched[t] for t in matched if t < 100]
    ml = [matched[t] for t in matched if t >= 10000]
    if ms and ml and stage(ml[0], "all"):
        rows.append("  the same on matched posts only (--select matched: every post runs language ID "
                    "and sentiment): %.2fx (all)" % (stage(ms[0], "all") / stage(ml[0], "all")))
    cmds = [(r["redis"]["script_calls_per_post"], r["redis"]["commands_per_post"])
            for r in e2e.values()
            if r["redis"]["commands_per_post"] is not None and r["params"]["topics"] >= 1000]
    if cmds:
        rows.append("<= 0.1 Redis commands per post (1,000+ topics): sent by the aggregator "
                    "(script calls) %s; run by Redis (inside the scripts too) %s" % (
                        ", ".join("%.3f" % (x[0] or 0) for x in cmds),
                        ", ".join("%.1f" % x[1] for x in cmds)))
    rss = [(n, k, x["peak_rss_kb"]) for n, r in e2e.items() if r["params"]["topics"] >= 10000
           for k, x in r["processes"].items() if k != "redis"]
    if rss:
        n, k, v = max(rss, key=lambda t: t[2] or 0)
        rows.append("peak RSS <= 100 MB per process at 10,000 topics: max %.1f MB (%s in %s)"
                    % ((v or 0) / 1024, k, n))
    return rows


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", help="directory with the parts of one run")
    ap.add_argument("--mode", default="quick")
    ap.add_argument("--out", help="write the collected JSON here")
    ap.add_argument("--show", help="print the table of a results file")
    a = ap.parse_args(argv)
    if a.show:
        res = load(a.show)
        if res is None:
            sys.exit("summary: cannot read %s" % a.show)
    elif a.parts:
        res = collect(a.parts, a.mode)
        if a.out:
            os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
            with open(a.out, "w") as f:
                json.dump(res, f, indent=1)
                f.write("\n")
    else:
        ap.error("--parts or --show")
    print(show(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
