"""Collector benchmark: the real escucha-collector replays the first --posts lines of a corpus
shard with the jsonl source and --once, sending every post to bench_sink (a PULL socket that
only counts). It measures the collector process alone: its CPU time (user + system, from the
kernel's accounting of the child) and its wall time from start to exit, and reports posts per
CPU second (one core) and per wall second. The sink must receive exactly --posts posts.
--repeat R runs it R times and keeps the fastest (a shared machine only slows runs down).

usage: run_collector.py --bin-dir BUILD --corpus FILE [--posts N] [--repeat R] [--out FILE]
                        [--collector PATH]   (another escucha-collector, e.g. an older build)"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "support"))
import escucha_test as et  # noqa: E402


def one_run(bindir, collector, posts_file, n, workdir, redis_sock):
    sink = subprocess.Popen([os.path.join(bindir, "bench", "collector", "bench_sink"),
                             "--posts", str(n), "--idle-ms", "5000"],
                            stdout=subprocess.PIPE, text=True)
    line = sink.stdout.readline()
    if not line.startswith("ENDPOINT "):
        raise RuntimeError("bench_sink did not start: %r" % line)
    cfg = os.path.join(workdir, "escucha.json")
    et.write_json(cfg, {
        "deployment": "bench-collector",
        "redis": {"unix_socket": redis_sock, "prefix": "esc"},
        "bus": {"collect": line.split()[1], "hwm": 100000},
        "sources": [{"name": "replay", "type": "jsonl", "path": posts_file}],
        "collector": {"grace_ms": 60000},
        "teams": [{"id": "t", "name": "T", "topics": [{"id": "x", "name": "X",
                                                       "keywords": ["x"]}]}],
    })
    log = open(os.path.join(workdir, "collector.log"), "w")
    t0 = time.monotonic()
    proc = subprocess.Popen([collector, "--config", cfg, "--once"], stdout=log,
                            stderr=subprocess.STDOUT)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    log.close()
    if proc.returncode != 0:
        sink.kill()
    out, _ = sink.communicate(timeout=30)
    got = json.loads(out) if proc.returncode == 0 else {}
    if proc.returncode != 0 or got["posts"] != n or got["bad"] != 0:
        shutil.copy(os.path.join(workdir, "collector.log"), workdir + ".collector.log")
        raise RuntimeError("collector exit %s, sink %s (log in %s.collector.log)"
                           % (proc.returncode, got, workdir))
    cpu = ru.ru_utime + ru.ru_stime
    return {"posts": n, "cpu_s": round(cpu, 3), "user_s": round(ru.ru_utime, 3),
            "sys_s": round(ru.ru_stime, 3), "wall_s": round(wall, 3),
            "posts_per_cpu_s": round(n / cpu), "posts_per_wall_s": round(n / wall),
            "max_rss_kb": ru.ru_maxrss, "sink_first_to_last_s": got["first_to_last_s"],
            "bytes": got["bytes"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--posts", type=int, default=200000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out")
    ap.add_argument("--collector")
    a = ap.parse_args()
    bindir = os.path.abspath(a.bin_dir)
    collector = os.path.abspath(a.collector or os.path.join(bindir, "collector",
                                                            "escucha-collector"))
    work = tempfile.mkdtemp(prefix="escucha-bench-collector-")
    redis = et.Redis(work)
    try:
        posts_file = os.path.join(work, "posts.jsonl")
        n = 0
        with open(a.corpus, "rb") as src, open(posts_file, "wb") as dst:
            for line in src:
                if n == a.posts:
                    break
                dst.write(line)
                n += 1
        runs = [one_run(bindir, collector, posts_file, n, work, redis.sock)
                for _ in range(a.repeat)]
        best = max(runs, key=lambda r: r["posts_per_cpu_s"])
        result = {"bench": "collector", "collector": collector, "corpus": a.corpus,
                  "best": best, "runs": runs}
        print("collector --once, jsonl -> bus: %d posts, best of %d: %d posts/s per CPU second "
              "(%.2f s CPU: %.2f user + %.2f sys), %d posts/s wall, max RSS %d kB"
              % (n, a.repeat, best["posts_per_cpu_s"], best["cpu_s"], best["user_s"],
                 best["sys_s"], best["posts_per_wall_s"], best["max_rss_kb"]), file=sys.stderr)
        text = json.dumps(result, indent=1)
        if a.out:
            with open(a.out, "w") as f:
                f.write(text + "\n")
        print(text)
    finally:
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
