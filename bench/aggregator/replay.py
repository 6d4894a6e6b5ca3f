#!/usr/bin/python3
"""Replays real classified messages through the aggregator alone, to measure its CPU per post
quietly (no collector, broker or classifier competing for the cores).

  replay.py capture --bin-dir B --corpus-dir C --topics T --frames N --out FILE
      runs collector -> broker -> classifier on the corpus's first shard with the topics
      config T and records the first N frames the classifier pushes to bus.aggregate
      (agg_frames capture).
  replay.py run --bin-dir B --topics T --in FILE [--runs R] [--perf [--call-graph]]
      per run: a private redis-server, escucha-aggregator with the same config, then
      agg_frames send pushes every frame of FILE; once <prefix>:agg:processed reaches the number
      of posts in FILE (agg_frames count: a batch frame carries several), the aggregator's CPU
      time (utime + stime) since the first frame is divided by the posts processed (and
      redis-server's the same way), and its peak RSS (VmHWM) is read. Then SIGTERM (exit 0
      expected, or 1 when the frames raised spike alerts: no notifier takes them here, and
      the aggregator reports alerts it could not hand on). --perf records the aggregator
      with perf while the frames go through
      (perf-replay-<run>.data in the work dir); --stats prints Redis's INFO commandstats at the
      end of each run. --dump FILE writes
      what the run left in Redis that does not depend on timing (topic totals, day buckets,
      alerts without their `ts` and `ts_iso`) as sorted JSON lines, to compare two builds.

Standard library only; run it with /usr/bin/python3. Never part of the test run.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import escucha_test as et  # noqa: E402

PREFIX = "esc"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print("replay: " + msg, file=sys.stderr, flush=True)


def exe(bin_dir, service):
    return os.path.join(bin_dir, service, "escucha-" + service)


def frames_exe(bin_dir):
    return os.path.join(bin_dir, "bench", "aggregator", "agg_frames")


def config(topics, work, ports, redis_sock, sets):
    with open(topics) as f:
        cfg = json.load(f)
    cfg["bus"] = {k: "tcp://127.0.0.1:%d" % ports[k]
                  for k in ("collect", "classify", "aggregate", "notify")}
    cfg["redis"] = {"unix_socket": redis_sock, "prefix": PREFIX}
    cfg["sources"] = []
    cfg["aggregator"] = {"grace_ms": 60000}
    for item in sets:
        path, _, value = item.partition("=")
        node = cfg
        keys = path.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        try:
            node[keys[-1]] = json.loads(value)
        except ValueError:
            node[keys[-1]] = value
    return cfg


def vm_hwm_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def count_posts(bin_dir, path):
    out = subprocess.run([frames_exe(bin_dir), "count", path], check=True, capture_output=True,
                         text=True).stdout
    return int(out.split()[-1])


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def capture(a):
    work = tempfile.mkdtemp(prefix="agg-capture-")
    ports = {k: et.free_port() for k in ("collect", "classify", "aggregate", "notify")}
    cfg = config(a.topics, work, ports, os.path.join(work, "none.sock"), a.set)
    cfg["classifier"] = {"grace_ms": 1000}
    cfg["broker"] = {"grace_ms": 1000}
    main = os.path.join(work, "escucha.json")
    et.write_json(main, cfg)
    with open(os.path.join(a.corpus_dir, "corpus.meta.json")) as f:
        meta = json.load(f)
    col = dict(cfg)
    col["collector"] = {"grace_ms": 1000}
    col["sources"] = [{"name": "shard00", "type": "jsonl",
                       "path": os.path.join(os.path.abspath(a.corpus_dir),
                                            meta["shards"][0]["path"])}]
    colp = os.path.join(work, "collector.json")
    et.write_json(colp, col)
    cap = subprocess.Popen([frames_exe(a.bin_dir), "capture", cfg["bus"]["aggregate"], a.out,
                            str(a.frames), "5000"], stdout=subprocess.PIPE)
    procs = []
    for name, service, path in (("broker", "broker", main), ("classifier", "classifier", main),
                                ("collector", "collector", colp)):
        logf = open(os.path.join(work, name + ".log"), "w")
        procs.append(subprocess.Popen([exe(a.bin_dir, service), "--config", path],
                                      stdout=logf, stderr=subprocess.STDOUT))
    try:
        out, _ = cap.communicate(timeout=a.timeout)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    log("captured %s frames into %s (logs in %s)" % (out.decode().strip(), a.out, work))


def scan(r, pattern):
    cur, keys = "0", []
    while True:
        cur, batch = r.cmd("SCAN", cur, "MATCH", pattern, "COUNT", 10000)
        keys.extend(batch)
        if cur == "0":
            return sorted(keys)


def dump(r, path):
    with open(path, "w") as f:
        for pattern in (PREFIX + ":t:*", PREFIX + ":c:*:d:*"):
            for key in scan(r, pattern):
                f.write(json.dumps([key, r.hgetall(key)], sort_keys=True) + "\n")
        for key in scan(r, PREFIX + ":alerts:*"):
            if r.cmd("TYPE", key) != "list":
                continue
            for item in r.cmd("LRANGE", key, 0, -1):
                alert = json.loads(item)
                alert.pop("ts", None)
                alert.pop("ts_iso", None)
                f.write(json.dumps([key, alert], sort_keys=True) + "\n")


def run_once(a, k, n_frames, n_posts):
    work = a.work_dir or tempfile.mkdtemp(prefix="agg-replay-")
    os.makedirs(work, exist_ok=True)
    redis = et.Redis(work)
    ports = {k2: et.free_port() for k2 in ("collect", "classify", "aggregate", "notify")}
    cfg = config(a.topics, work, ports, redis.sock, a.set)
    path = os.path.join(work, "escucha.json")
    et.write_json(path, cfg)
    logf = open(os.path.join(work, "aggregator%d.log" % k), "w")
    agg = subprocess.Popen([exe(a.bin_dir, "aggregator"), "--config", path], stdout=logf,
                           stderr=subprocess.STDOUT)
    r = redis.client()
    perf = None
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with open(os.path.join(work, "aggregator%d.log" % k)) as f:
                if " started" in f.read():
                    break
            if agg.poll() is not None:
                raise RuntimeError("aggregator exited at start-up")
            time.sleep(0.1)
        if a.perf:
            cmd = ["perf", "record", "-q", "-F", "999", "-p", str(agg.pid), "-o",
                   os.path.join(work, "perf-replay-%d.data" % k)]
            if a.call_graph:
                cmd[2:2] = ["--call-graph", a.call_graph]
            perf = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        t0 = cpu_ticks(agg.pid)
        r0 = cpu_ticks(redis.proc.pid)
        w0 = time.time()
        send = subprocess.Popen([frames_exe(a.bin_dir), "send", cfg["bus"]["aggregate"], a.input],
                                stdout=subprocess.DEVNULL)
        deadline = time.time() + a.timeout
        done = 0
        while time.time() < deadline:
            done = int(r.cmd("GET", PREFIX + ":agg:processed") or 0)
            if done >= n_posts:
                break
            time.sleep(0.05)
        t1 = cpu_ticks(agg.pid)
        r1 = cpu_ticks(redis.proc.pid)
        w1 = time.time()
        hwm = vm_hwm_mb(agg.pid)
        if a.stats:
            log("redis commandstats at the end of run %d:\n%s"
                % (k, r.cmd("INFO", "commandstats")))
        send.wait(60)
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        agg.send_signal(signal.SIGTERM)
        rc = agg.wait(120)
        if a.dump:
            dump(r, a.dump if a.runs == 1 else "%s.%d" % (a.dump, k))
    finally:
        if agg.poll() is None:
            agg.kill()
            agg.wait()
        redis.stop()
    us = (t1 - t0) / CLK_TCK * 1e6 / max(done, 1)
    redis_us = (r1 - r0) / CLK_TCK * 1e6 / max(done, 1)
    log("run %d: processed %d of %d posts (frames %d), aggregator CPU %.2f s over %.2f s wall: "
        "%.2f us/post (Redis %.2f), peak RSS %.0f MB, exit %s"
        % (k, done, n_posts, n_frames, (t1 - t0) / CLK_TCK, w1 - w0, us, redis_us, hwm, rc))
    return {"processed": done, "posts": n_posts, "cpu_s": (t1 - t0) / CLK_TCK,
            "wall_s": w1 - w0, "us_per_post": us, "redis_us_per_post": redis_us,
            "peak_rss_mb": round(hwm, 1), "exit": rc}


def count_frames(path):
    n = 0
    with open(path, "rb") as f:
        while True:
            hdr = f.read(4)
            if len(hdr) < 4:
                return n
            f.seek(int.from_bytes(hdr, "little"), 1)
            n += 1


def run(a):
    n = count_frames(a.input)
    posts = count_posts(a.bin_dir, a.input)
    runs = [run_once(a, k, n, posts) for k in range(a.runs)]
    us = sorted(x["us_per_post"] for x in runs)
    res = {"frames": n, "posts": posts, "runs": runs, "us_per_post_min": us[0],
           "us_per_post_max": us[-1], "us_per_post_median": us[len(us) // 2]}
    print(json.dumps(res, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture")
    c.add_argument("--bin-dir", required=True)
    c.add_argument("--corpus-dir", required=True)
    c.add_argument("--topics", required=True)
    c.add_argument("--frames", type=int, default=500000)
    c.add_argument("--out", required=True)
    c.add_argument("--timeout", type=int, default=600)
    c.add_argument("--set", action="append", default=[])
    r = sub.add_parser("run")
    r.add_argument("--bin-dir", required=True)
    r.add_argument("--topics", required=True)
    r.add_argument("--in", dest="input", required=True)
    r.add_argument("--runs", type=int, default=3)
    r.add_argument("--perf", action="store_true")
    r.add_argument("--stats", action="store_true", help="print Redis's INFO commandstats")
    r.add_argument("--call-graph", default="", help="e.g. dwarf or fp (with --perf)")
    r.add_argument("--work-dir")
    r.add_argument("--dump", help="file for what the run left in Redis (see above)")
    r.add_argument("--timeout", type=int, default=600)
    r.add_argument("--set", action="append", default=[],
                   help="SECTION.KEY=JSON, e.g. aggregator.top_lists=false")
    a = ap.parse_args()
    if a.cmd == "capture":
        capture(a)
    else:
        run(a)


if __name__ == "__main__":
    main()
