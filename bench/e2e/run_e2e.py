#!/usr/bin/python3
"""End-to-end benchmark of the whole pipeline on this machine, with real parts: a private
redis-server (unix socket, no persistence), the notifier, K aggregators (K > 1: behind a second
broker used as forwarder, with connect_in and spike_leases), M classifiers, the broker and N
collectors replaying the benchmark corpus (bench/corpus/gen_corpus.py, one shard each) as fast
as the pipeline takes it (or at --rate posts/s in total). Every bus endpoint is
tcp://127.0.0.1:<free port>.

What it measures, over a steady window (--window s, after --warmup s):
- throughput: posts/s counted by the aggregator(s) (<prefix>:agg:processed, sampled every
  second; the window figure is the difference over the window);
- latency from collector intake to the counter being in Redis: bench_probe (probe.c) sends
  marker posts, stamped like a collector stamps a post, at known times through the broker and
  polls Redis for each marker's own minute bucket (p50/p90/p99/max). The markers share every
  queue with the corpus posts after the broker's intake; what they skip is the queue inside the
  collector process itself (a separate connection), so under an unlimited replay the posts of
  the corpus wait longer than the markers by that queue's depth / throughput (reported as
  collector_queue_s_bound);
- CPU per process (utime + stime from /proc/<pid>/stat over the window: cores used, and
  microseconds per post) and peak RSS (VmHWM) of every process, redis-server included;
- Redis commands per post: the growth of total_commands_processed over the window, minus the
  commands of this script and of the probe, divided by the posts counted.

At the end it stops the collectors, reads how many posts each one sent (its "stopped sent=N"
line; it reads its shard in order, so those are the shard's first N lines), lets the pipeline
drain, stops every service (each must exit 0), and checks: processed == posts sent + markers
(nothing lost, nothing counted twice), each canary topic's total == the count the corpus meta
file gives for those lines, the marker topic == markers sent.

--slow-classifier duty-cycles the first classifier (the first --slow-count) with SIGSTOP/SIGCONT
(like cpulimit; no code change): it runs --slow-duty of each 100 ms. It shows backpressure: the
others take more, or, with one classifier, the whole pipeline slows down, and still nothing is
lost. Slowing every classifier makes the classifier the bottleneck on purpose, to show that
adding one raises throughput (on 2 cores an unthrottled extra classifier has no CPU to add).

Bounded: every wait has a deadline; all processes are killed on the way out. Never part of the
test run. Standard library only; run it with /usr/bin/python3.

    /usr/bin/python3 bench/e2e/run_e2e.py --bin-dir build-bench \\
        --corpus-dir out/bench/corpus-2m --topics out/bench/topics-1000-mixed.json \\
        --window 20 --out out/bench/e2e.json
"""

import argparse
import calendar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
sys.path.insert(0, os.path.join(ROOT, "bench", "corpus"))
import escucha_test as et  # noqa: E402
import gen_corpus  # noqa: E402

PREFIX = "esc"
CANARY_TEAM = "canary"
MARKER_TOPIC = "canary/marker"
MARKER_TOKEN = "xqzmarker"
CLK_TCK = os.sysconf("SC_CLK_TCK")
GRACE_MS = 60000  # services' grace_ms: how long a stopped service may keep flushing
COLLECTOR_GRACE_MS = 180000  # a stopped collector hands its whole queue to the broker
BUS_HWM_DEFAULT = 100000  # bus.hwm default (docs/configuration.md)


def log(msg):
    print("run_e2e: " + msg, file=sys.stderr, flush=True)


def machine():
    model = ""
    mem = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"host": socket.gethostname(), "cores": os.cpu_count(), "cpu_model": model,
            "mem_total": mem, "kernel": os.uname().release}


def proc_cpu_s(pid):
    """utime + stime of pid in seconds, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s():
    """CPU seconds all cores spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def proc_status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build-bench"),
                    help="cmake build directory with the services and bench/e2e/bench_probe")
    ap.add_argument("--corpus-dir", required=True, help="output of gen_corpus.py")
    ap.add_argument("--topics", required=True, help="deployment file from gen_topics.py")
    ap.add_argument("--collectors", type=int, default=1)
    ap.add_argument("--classifiers", type=int, default=1)
    ap.add_argument("--aggregators", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0,
                    help="offered load, posts/s over all collectors (0: as fast as accepted)")
    ap.add_argument("--window", type=float, default=15, help="steady window, s")
    ap.add_argument("--warmup", type=float, default=5, help="s before the window starts")
    ap.add_argument("--flush-ms", type=int, help="aggregator.flush_ms (default: the service's)")
    ap.add_argument("--hwm", type=int, help="bus.hwm (default: the config's)")
    ap.add_argument("--marker-rate", type=float, default=10, help="latency markers per second")
    ap.add_argument("--slow-classifier", action="store_true",
                    help="duty-cycle the first classifier with SIGSTOP/SIGCONT")
    ap.add_argument("--slow-duty", type=float, default=0.25,
                    help="share of each 100 ms the slowed classifier may run")
    ap.add_argument("--slow-count", type=int, default=1,
                    help="with --slow-classifier: how many classifiers to slow (the first N)")
    ap.add_argument("--drain-timeout", type=float, default=240,
                    help="longest wait for the pipeline to drain after the window, s")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=JSON",
                    help="override a config setting, e.g. aggregator.top_lists=false "
                         "(repeatable)")
    ap.add_argument("--journal", action="store_true",
                    help="delivery journal on every collector and acknowledgements through the "
                         "broker (bus.ack, bus.ack_pub; docs/delivery.md)")
    ap.add_argument("--perf", action="store_true",
                    help="profile every process with perf record during the window and keep "
                         "the top functions of each (perf must be installed)")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", help="write the result JSON here")
    ap.add_argument("--work-dir", help="keep logs and configs here (default: a temp dir, "
                                       "removed after a clean run)")
    a = ap.parse_args(argv)
    if not (1 <= a.collectors <= 16 and 1 <= a.classifiers <= 16 and 1 <= a.aggregators <= 8):
        ap.error("1-16 collectors, 1-16 classifiers, 1-8 aggregators")
    if a.window <= 0 or a.window > 3600 or a.warmup < 0 or a.warmup > 600:
        ap.error("window 0-3600 s, warmup 0-600 s")
    if not 0.1 <= a.marker_rate <= 100 or a.marker_rate * a.window > 30 * 1440:
        ap.error("--marker-rate must be 0.1-100, and at most 43,200 markers in the window")
    if not 0.01 <= a.slow_duty <= 1:
        ap.error("--slow-duty must be in [0.01, 1]")
    if not 1 <= a.slow_count <= a.classifiers:
        ap.error("--slow-count must be 1..--classifiers")
    return a


class Proc:
    """One started process with its log file."""

    def __init__(self, name, argv, env, workdir):
        self.name = name
        self.log_path = os.path.join(workdir, name + ".log")
        self.logf = open(self.log_path, "w")
        self.popen = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, env=env)
        self.pid = self.popen.pid
        self.exit = None
        self.peak_rss_kb = 0
        self.cpu_total_s = None
        self.termed = False

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def sample_rss(self):
        v = proc_status_kb(self.pid, "VmHWM")
        if v is not None:
            self.peak_rss_kb = max(self.peak_rss_kb, v)

    def alive(self):
        return self.popen.poll() is None

    def term(self):
        """SIGTERM without waiting (its figures are taken first)."""
        self.sample_rss()
        cpu = proc_cpu_s(self.pid)
        if cpu is not None:
            self.cpu_total_s = cpu
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            self.termed = True

    def stop(self, timeout):
        """SIGTERM (unless term() sent it), then wait up to timeout s; returns the exit status
        (None: had to kill)."""
        self.sample_rss()
        cpu = proc_cpu_s(self.pid)
        if cpu is not None:
            self.cpu_total_s = cpu
        if self.popen.poll() is None and not self.termed:
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.exit = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            self.exit = None
        self.logf.close()
        return self.exit

    def kill(self):
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGCONT)
            except OSError:
                pass
            self.popen.kill()
            self.popen.wait()
        if not self.logf.closed:
            self.logf.close()


class DutyCycle(threading.Thread):
    """Lets pid run duty x 100 ms of every 100 ms (SIGSTOP / SIGCONT), until stopped."""

    def __init__(self, pid, duty):
        super().__init__(daemon=True)
        self.pid = pid
        self.duty = duty
        self.halt = threading.Event()

    def run(self):
        period = 0.1
        while not self.halt.is_set():
            time.sleep(period * self.duty)
            if self.halt.is_set():
                break
            try:
                os.kill(self.pid, signal.SIGSTOP)
            except OSError:
                return
            time.sleep(period * (1 - self.duty))
            try:
                os.kill(self.pid, signal.SIGCONT)
            except OSError:
                return
        try:
            os.kill(self.pid, signal.SIGCONT)
        except OSError:
            pass

    def stop(self):
        self.halt.set()
        self.join(5)


class Bench:
    def __init__(self, a):
        self.a = a
        self.own_cmds = 0
        self.own_by = {}
        self.probe = None
        self.perfs = {}
        self.procs = {}
        self.samples = []
        self.result = {"benchmark": "e2e", "label": a.label, "machine": machine()}
        with open(os.path.join(a.corpus_dir, "corpus.meta.json")) as f:
            self.meta = json.load(f)
        if a.collectors > len(self.meta["shards"]):
            sys.exit("run_e2e: %d collectors but the corpus has %d shard(s); regenerate it with "
                     "--shards %d" % (a.collectors, len(self.meta["shards"]), a.collectors))
        with open(a.topics) as f:
            self.topics_cfg = json.load(f)
        self.mode = "keywords"
        for team in self.topics_cfg["teams"]:
            if team["id"] == CANARY_TEAM:
                if any("query" in t for t in team["topics"]):
                    self.mode = "query"
        self.n_topics = sum(len(t["topics"]) for t in self.topics_cfg["teams"])
        self.n_queries = sum(1 for t in self.topics_cfg["teams"] for x in t["topics"]
                             if "query" in x)
        self.workdir = a.work_dir or tempfile.mkdtemp(prefix="escucha-bench-")
        os.makedirs(self.workdir, exist_ok=True)

    # ------------------------------------------------------------------ set-up
    def exe(self, service):
        return os.path.join(self.a.bin_dir, service, "escucha-" + service)

    def write_cfg(self, name, cfg):
        path = os.path.join(self.workdir, name + ".json")
        et.write_json(path, cfg)
        return path

    def configs(self):
        a = self.a
        cfg = dict(self.topics_cfg)
        self.ports = {k: et.free_port() for k in ("collect", "classify", "aggregate", "notify",
                                                  "aggout", "ack", "ack_pub")}
        bus = {k: "tcp://127.0.0.1:%d" % self.ports[k]
               for k in ("collect", "classify", "aggregate", "notify")}
        if a.journal:
            bus["ack"] = "tcp://127.0.0.1:%d" % self.ports["ack"]
            bus["ack_pub"] = "tcp://127.0.0.1:%d" % self.ports["ack_pub"]
        if a.hwm:
            bus["hwm"] = a.hwm
        cfg["bus"] = bus
        cfg["redis"] = {"unix_socket": self.redis.sock, "prefix": PREFIX}
        cfg["sources"] = []
        cfg["collector"] = {"grace_ms": COLLECTOR_GRACE_MS}
        cfg["broker"] = {"grace_ms": GRACE_MS}
        cfg["classifier"] = {"grace_ms": GRACE_MS}
        agg = {"grace_ms": GRACE_MS}
        if a.flush_ms:
            agg["flush_ms"] = a.flush_ms
        if a.aggregators > 1:
            agg["connect_in"] = True
            agg["spike_leases"] = True
        cfg["aggregator"] = agg
        cfg["notifier"] = {"outbox": os.path.join(self.workdir, "outbox"), "grace_ms": 10000}
        for item in a.set:
            path, _, value = item.partition("=")
            keys = path.split(".")
            if not value or len(keys) < 2:
                raise RuntimeError("--set %s: expected SECTION.KEY=JSON" % item)
            node = cfg
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            try:
                node[keys[-1]] = json.loads(value)
            except ValueError:
                node[keys[-1]] = value
        self.cfg_main = self.write_cfg("escucha", cfg)
        if a.aggregators > 1:
            # The forwarder reads what the classifiers push (binds bus.aggregate) and deals it
            # to the aggregators, which connect to its output.
            fwd = json.loads(json.dumps(cfg))
            fwd["bus"]["collect"] = bus["aggregate"]
            fwd["bus"].pop("ack", None)  # the forwarder carries no acks: the broker does
            fwd["bus"].pop("ack_pub", None)
            fwd["bus"]["classify"] = "tcp://127.0.0.1:%d" % self.ports["aggout"]
            self.cfg_fwd = self.write_cfg("forwarder", fwd)
            aggc = json.loads(json.dumps(cfg))
            aggc["bus"]["aggregate"] = fwd["bus"]["classify"]
            self.cfg_agg = self.write_cfg("aggregators", aggc)
        else:
            self.cfg_agg = self.cfg_main
        self.cfg_col = []
        per_rate = a.rate / a.collectors if a.rate > 0 else 0
        for k in range(a.collectors):
            c = json.loads(json.dumps(cfg))
            src = {"name": "shard%02d" % k, "type": "jsonl",
                   "path": os.path.join(os.path.abspath(a.corpus_dir),
                                        self.meta["shards"][k]["path"])}
            if per_rate:
                src["rate"] = per_rate
            c["sources"] = [src]
            if a.journal:
                c["collector"]["journal_dir"] = os.path.join(self.workdir, "journal%d" % k)
            self.cfg_col.append(self.write_cfg("collector%d" % k, c))

    def start(self, name, service, cfg, *extra):
        argv = [self.exe(service), "--config", cfg] + list(extra)
        p = Proc(name, argv, dict(os.environ), self.workdir)
        self.procs[name] = p
        return p

    def wait_started(self, names, timeout=60):
        """Until each log has its start line (or the process died: abort)."""
        deadline = time.time() + timeout
        pending = set(names)
        while pending and time.time() < deadline:
            for n in list(pending):
                p = self.procs[n]
                if not p.alive():
                    raise RuntimeError("%s exited at start-up:\n%s" % (n, p.log()[-3000:]))
                if re.search(r"\b(started|listening|ready)\b", p.log()):
                    pending.discard(n)
            time.sleep(0.1)
        if pending:
            log("no start line from %s after %ds; going on" % (sorted(pending), timeout))

    def marker_base(self):
        """Event time of the first marker: one marker per minute, starting 30 days before the
        corpus. Markers must not move the aggregator's event-time watermark (the newest
        event time seen): a marker ahead of the corpus would make every corpus post "late" and
        take spike detection out of the measurement. Buckets expire retention_minute_s after
        their last write, whatever their event time, so the probe still finds them."""
        start = calendar.timegm(time.strptime(self.meta["start"], "%Y-%m-%dT%H:%M:%SZ"))
        return (start - 30 * 86400) // 60 * 60

    # ------------------------------------------------------------------ profiles
    def perf_start(self, seconds):
        """perf record (no call graphs: self time per function) of every process."""
        self.perfs = {}
        pids = {n: p.pid for n, p in self.procs.items() if n != "notifier"}
        pids["redis"] = self.redis.proc.pid
        for name, pid in pids.items():
            out = os.path.join(self.workdir, "perf-%s.data" % name)
            self.perfs[name] = (out, subprocess.Popen(
                ["perf", "record", "-q", "-F", "499", "-p", str(pid), "-o", out, "--",
                 "sleep", str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def perf_report(self, top=15):
        """{process: [[self %, function, library], ...]} of the perf_start recordings."""
        out = {}
        for name, (path, proc) in self.perfs.items():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            try:
                r = subprocess.run(["perf", "report", "-i", path, "--stdio", "--no-children",
                                    "--sort", "symbol,dso", "--percent-limit", "0.5"],
                                   capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.SubprocessError):
                continue
            rows = []
            for line in r.stdout.splitlines():
                m = re.match(r"\s+([\d.]+)%\s+\[[.k]\]\s+(.+?)\s{2,}(\S+)", line)
                if m:
                    rows.append([float(m.group(1)), m.group(2), m.group(3)])
            out[name] = rows[:top]
        return out

    # ------------------------------------------------------------------ sampling
    def redis_cmd(self, *args):
        self.own_cmds += 1
        name = str(args[0]).lower()
        self.own_by[name] = self.own_by.get(name, 0) + 1
        return self.rc.cmd(*args)

    def cmdstats(self):
        """{command: calls} from INFO commandstats (commands run inside scripts included)."""
        text = self.redis_cmd("INFO", "commandstats")
        return {m.group(1): int(m.group(2))
                for m in re.finditer(r"cmdstat_([a-z|_-]+):calls=(\d+)", text)}

    def snapshot(self, stats=False):
        t = time.time()
        processed = int(self.redis_cmd("GET", "%s:agg:processed" % PREFIX) or 0)
        info = self.redis_cmd("INFO", "stats")
        total_cmds = int(re.search(r"total_commands_processed:(\d+)", info).group(1))
        cpu = {}
        for name, p in self.procs.items():
            c = proc_cpu_s(p.pid)
            if c is not None:
                cpu[name] = c
            p.sample_rss()
        cpu["redis"] = proc_cpu_s(self.redis.proc.pid)
        s = {"t": t, "processed": processed, "cmds": total_cmds, "own_cmds": self.own_cmds,
             "cpu": cpu, "busy": machine_busy_s()}
        if stats:
            s["cmdstats"] = self.cmdstats()
            s["own_by"] = dict(self.own_by)
        self.samples.append(s)
        return s

    # ------------------------------------------------------------------ the run
    def run(self):
        a = self.a
        self.load_start = loadavg()
        self.redis = et.Redis(self.workdir)
        self.rc = self.redis.client()
        self.configs()
        for svc, cfg in (("notifier", self.cfg_main), ("aggregator", self.cfg_agg),
                         ("classifier", self.cfg_main), ("broker", self.cfg_main),
                         ("collector", self.cfg_col[0])):
            r = subprocess.run([self.exe(svc), "--config", cfg, "--check-config"],
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                raise RuntimeError("%s --check-config: %s" % (svc, r.stderr.strip()))
        t_setup = time.time()
        self.start("notifier", "notifier", self.cfg_main)
        aggs = ["aggregator%d" % k for k in range(a.aggregators)]
        for n in aggs:
            self.start(n, "aggregator", self.cfg_agg)
        if a.aggregators > 1:
            self.start("forwarder", "broker", self.cfg_fwd)
        clss = ["classifier%d" % k for k in range(a.classifiers)]
        for n in clss:
            self.start(n, "classifier", self.cfg_main)
        self.start("broker", "broker", self.cfg_main)
        self.wait_started(["notifier", "broker"] + aggs + clss
                          + (["forwarder"] if a.aggregators > 1 else []))
        self.result["startup_s"] = round(time.time() - t_setup, 2)
        duties = []
        if a.slow_classifier:
            for n in clss[:a.slow_count]:
                duties.append(DutyCycle(self.procs[n].pid, a.slow_duty))
                duties[-1].start()

        cols = ["collector%d" % k for k in range(a.collectors)]
        base = self.snapshot()
        t_c0 = time.time()
        for k, n in enumerate(cols):
            self.start(n, "collector", self.cfg_col[k], "--once")
        log("%d collector(s), %d classifier(s), %d aggregator(s), %d topics (%d queries), "
            "rate %s; warm-up %.0f s, window %.0f s; logs in %s"
            % (a.collectors, a.classifiers, a.aggregators, self.n_topics, self.n_queries,
               a.rate or "unlimited", a.warmup, a.window, self.workdir))
        probe_out = os.path.join(self.workdir, "probe.json")
        probe = None
        w0 = w1 = None
        exhausted = False
        hard = t_c0 + a.warmup + a.window + 60
        while True:
            now = time.time()
            if w0 is None and now >= t_c0 + a.warmup:
                w0 = self.snapshot(stats=True)
                probe = self.probe = subprocess.Popen(
                    [os.path.join(a.bin_dir, "bench", "e2e", "bench_probe"),
                     "--bus", "tcp://127.0.0.1:%d" % self.ports["collect"],
                     "--redis-sock", self.redis.sock, "--prefix", PREFIX,
                     "--topic", MARKER_TOPIC, "--token", MARKER_TOKEN,
                     "--rate", str(a.marker_rate), "--duration", str(a.window),
                     "--timeout", "60", "--out", probe_out,
                     "--base-s", str(self.marker_base())],
                    stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.workdir, "probe.log"),
                                                           "w"))
                if a.perf:
                    self.perf_start(a.window)
            elif w0 is not None and (now >= w0["t"] + a.window
                                     or any(not self.procs[c].alive() for c in cols)):
                exhausted = any(not self.procs[c].alive() for c in cols)
                w1 = self.snapshot(stats=True)
                break
            else:
                self.snapshot()
            if now > hard:
                raise RuntimeError("window never ended")
            for n in clss + aggs + ["broker"]:
                if not self.procs[n].alive():
                    raise RuntimeError("%s died:\n%s" % (n, self.procs[n].log()[-3000:]))
            time.sleep(max(0.0, 1.0 - (time.time() - now)))
        if exhausted:
            log("a collector reached the end of its shard before the window ended: the window "
                "was cut to %.1f s (generate a bigger corpus)" % (w1["t"] - w0["t"]))

        if a.perf:
            self.result["profiles"] = self.perf_report()

        # Stop the intake (sampling on while the collectors hand over what they queued); each
        # collector reports what it sent.
        for n in cols:
            self.procs[n].term()
        deadline = time.time() + COLLECTOR_GRACE_MS / 1000 + 30
        while any(self.procs[n].alive() for n in cols) and time.time() < deadline:
            self.snapshot()
            time.sleep(0.5)
        sent = []
        for n in cols:
            st = self.procs[n].stop(5)
            m = re.findall(r"stopped sent=(\d+)", self.procs[n].log())
            if st != 0 or not m:
                raise RuntimeError("%s exit %s:\n%s" % (n, st, self.procs[n].log()[-3000:]))
            sent.append(int(m[-1]))
        t_intake_end = time.time()
        if probe is not None:
            try:
                probe.wait(a.window + 90)
            except subprocess.TimeoutExpired:
                probe.kill()
                probe.wait()
        try:
            with open(probe_out) as f:
                pr = json.load(f)
        except (OSError, ValueError):
            pr = {"sent": 0, "seen": 0, "redis_commands": 0, "redis_commands_send_phase": 0,
                  "latency_ms": {}, "error": "no probe output"}
        for d in duties:
            d.stop()

        # Drain: every post sent must be counted.
        expected = sum(sent) + pr["sent"]
        deadline = time.time() + a.drain_timeout
        while True:
            s = self.snapshot()
            drained = s["processed"] >= expected
            if drained or time.time() > deadline:
                break
            time.sleep(0.5)
        drain_s = time.time() - t_intake_end
        if not drained:
            log("not drained after %.0f s (%d of %d counted); stopping the services anyway"
                % (a.drain_timeout, s["processed"], expected))
        stop_order = (["broker"] + clss + (["forwarder"] if a.aggregators > 1 else []) + aggs
                      + ["notifier"])
        exits = {}
        for n in stop_order:
            exits[n] = self.procs[n].stop(GRACE_MS / 1000 + 30)
        for n in cols:
            exits[n] = self.procs[n].exit

        # Final counts.
        processed = int(self.redis_cmd("GET", "%s:agg:processed" % PREFIX) or 0)
        shard_lines = [0] * len(self.meta["shards"])
        for k, n in enumerate(sent):
            shard_lines[k] = n
        exp_canary = gen_corpus.expected_canaries(self.meta, shard_lines)[self.mode]
        canaries = {}
        for t, e in exp_canary.items():
            got = int(self.redis_cmd("HGET", "%s:t:{%s/%s}" % (PREFIX, CANARY_TEAM, t), "posts")
                      or 0)
            canaries[t] = {"got": got, "expected": e, "ok": got == e}
        marker_got = int(self.redis_cmd("HGET", "%s:t:{%s}" % (PREFIX, MARKER_TOPIC), "posts")
                         or 0)
        slow = self.redis_cmd("SLOWLOG", "GET", "8") or []
        self.result["redis_slowlog"] = [
            {"duration_ms": round(e[2] / 1000, 1),
             "command": " ".join(str(x) for x in e[3][:4])[:160]}
            for e in slow if isinstance(e, list) and len(e) >= 4]
        self.result["redis_commandstats"] = self.cmdstats()
        memory = self.redis_cmd("INFO", "memory")
        mm = re.search(r"used_memory_peak:(\d+)", memory)
        self.result["redis_used_memory_peak"] = int(mm.group(1)) if mm else None

        # Figures.
        dt = w1["t"] - w0["t"]
        posts = w1["processed"] - w0["processed"]
        own = w1["own_cmds"] - w0["own_cmds"]
        probe_cmds = pr.get("redis_commands_send_phase", 0)
        cmds = w1["cmds"] - w0["cmds"] - own - probe_cmds
        # Commands run inside Lua scripts count as commands in Redis's statistics: they are
        # Redis's work. Script calls (EVAL, EVALSHA, FCALL) are what a client sent as one.
        by_cmd = {}
        for k, v in w1["cmdstats"].items():
            d = v - w0["cmdstats"].get(k, 0)
            d -= w1["own_by"].get(k, 0) - w0["own_by"].get(k, 0)  # this script's reads
            if k == "hget":
                d -= probe_cmds  # the probe only reads with HGET
            if d > 0 and posts:
                by_cmd[k] = round(d / posts, 4)
        scripts = sum(w1["cmdstats"].get(k, 0) - w0["cmdstats"].get(k, 0)
                      for k in ("eval", "evalsha", "fcall", "eval_ro", "evalsha_ro"))
        procs = {}
        for name, p in self.procs.items():
            c0 = w0["cpu"].get(name)
            c1 = w1["cpu"].get(name)
            cw = (c1 - c0) if c0 is not None and c1 is not None else None
            procs[name] = {"pid": p.pid, "peak_rss_kb": p.peak_rss_kb, "exit": p.exit,
                           "cpu_s_window": round(cw, 2) if cw is not None else None,
                           "cores_window": round(cw / dt, 3) if cw is not None else None,
                           "cpu_us_per_post": round(cw * 1e6 / posts, 2)
                           if cw is not None and posts else None,
                           "cpu_s_total": p.cpu_total_s}
        rc0, rc1 = w0["cpu"].get("redis"), w1["cpu"].get("redis")
        procs["redis"] = {"pid": self.redis.proc.pid,
                          "peak_rss_kb": proc_status_kb(self.redis.proc.pid, "VmHWM"),
                          "cpu_s_window": round(rc1 - rc0, 2),
                          "cores_window": round((rc1 - rc0) / dt, 3),
                          "cpu_us_per_post": round((rc1 - rc0) * 1e6 / posts, 2) if posts else None}
        ours = sum(v["cpu_s_window"] or 0 for v in procs.values())
        busy = w1["busy"] - w0["busy"]
        self.result["machine_window"] = {
            "busy_cores": round(busy / dt, 3), "benchmark_cores": round(ours / dt, 3),
            "other_cores": round(max(0.0, busy - ours) / dt, 3),
            "loadavg_end": loadavg(), "loadavg_start": self.load_start}
        per_sec = []
        for x, y in zip(self.samples, self.samples[1:]):
            if y["t"] > x["t"]:
                per_sec.append([round(y["t"] - t_c0, 1),
                                round((y["processed"] - x["processed"]) / (y["t"] - x["t"]))])
        lost = expected - processed
        checks = {
            "posts_sent": sum(sent), "markers_sent": pr["sent"], "expected": expected,
            "processed": processed, "lost": max(0, lost), "extra": max(0, -lost),
            "canaries": canaries, "canary_semantics": self.mode,
            "marker": {"got": marker_got, "expected": pr["sent"], "ok": marker_got == pr["sent"]},
            "exit_codes": exits,
        }
        checks["ok"] = (lost == 0 and all(c["ok"] for c in canaries.values())
                        and checks["marker"]["ok"] and all(v == 0 for v in exits.values()))
        rate_now = posts / dt if dt > 0 else 0
        # A corpus post may wait behind its collector's send queue and its own pipe's receive
        # queue in the broker (bus.hwm each) that a marker skips.
        hwm = a.hwm or self.topics_cfg.get("bus", {}).get("hwm") or BUS_HWM_DEFAULT
        backlog_bound = round(2 * hwm / rate_now, 2) if rate_now > 0 else None
        self.result.update({
            "params": {"topics": self.n_topics, "queries": self.n_queries, "mode": self.mode,
                       "topics_file": os.path.abspath(a.topics),
                       "corpus": os.path.abspath(a.corpus_dir),
                       "corpus_lines": self.meta["lines"], "collectors": a.collectors,
                       "classifiers": a.classifiers, "aggregators": a.aggregators,
                       "rate": a.rate, "window_s": a.window, "warmup_s": a.warmup,
                       "flush_ms": a.flush_ms, "hwm": a.hwm, "marker_rate": a.marker_rate,
                       "set": a.set,
                       "slow_classifier": a.slow_classifier,
                       "slow_duty": a.slow_duty if a.slow_classifier else None,
                       "slow_count": a.slow_count if a.slow_classifier else 0},
            "throughput": {"posts_per_s": round(rate_now), "window_s": round(dt, 2),
                           "posts_in_window": posts, "corpus_exhausted": exhausted,
                           "per_second": per_sec, "drain_s": round(drain_s, 1),
                           "drained_before_stop": drained,
                           "processed_before_window": w0["processed"] - base["processed"]},
            # No marker arrived before the probe gave up: latency above its timeout, unknown.
            "latency_ms": pr.get("latency_ms", {}) if pr.get("seen") else {},
            "latency_probe": {k: pr.get(k) for k in ("sent", "seen", "lost_or_late", "poll_ms",
                                                       "send_waits", "series")},
            "collector_queue_s_bound": backlog_bound,
            "redis": {"commands_per_post": round(cmds / posts, 4) if posts else None,
                      "script_calls_per_post": round(scripts / posts, 4) if posts else None,
                      "commands_in_window": cmds, "own_commands_subtracted": own + probe_cmds,
                      "per_post_by_command": by_cmd},
            "processes": procs,
            "collector_sent": sent,
            "checks": checks,
            "workdir": self.workdir,
        })
        return self.result

    def cleanup(self, keep):
        """Kills whatever is still running (services, probe, perf), stops Redis."""
        for p in self.procs.values():
            p.kill()
        extra = [self.probe] + [pp for _, pp in self.perfs.values()]
        for pp in extra:
            if pp is not None and pp.poll() is None:
                pp.kill()
                pp.wait()
        if getattr(self, "redis", None) is not None:
            self.redis.stop()
        if not keep and not self.a.work_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def table(r):
    """A short human summary of one result."""
    p = r["params"]
    slowed = " (%d slowed to %d %%)" % (p["slow_count"], 100 * p["slow_duty"]) \
        if p["slow_classifier"] else ""
    lines = ["e2e %s: %d topics (%s), %d collector(s), %d classifier(s)%s, %d aggregator(s), "
             "rate %s" % (r.get("label") or "", p["topics"], p["mode"], p["collectors"],
                          p["classifiers"], slowed, p["aggregators"], p["rate"] or "unlimited")]
    t = r["throughput"]
    lat = r.get("latency_ms") or {}
    lines.append("  throughput %8d posts/s over %.1f s%s" % (
        t["posts_per_s"], t["window_s"], " (corpus exhausted: window cut)"
        if t["corpus_exhausted"] else ""))
    lp = r["latency_probe"]
    if lp.get("seen"):
        lines.append("  latency    p50 %s ms, p99 %s ms, max %s ms (intake -> Redis, %s of %s "
                     "markers)" % (lat.get("p50"), lat.get("p99"), lat.get("max"), lp["seen"],
                                   lp["sent"]))
    else:
        lines.append("  latency    no marker reached Redis within the probe's timeout (60 s after "
                     "the window)")
    rd = r["redis"]
    lines.append("  redis      %.4f commands/post (script-internal included), "
                 "%.4f script calls/post" % (rd["commands_per_post"] or 0,
                                            rd["script_calls_per_post"] or 0))
    m = r["machine_window"]
    lines.append("  machine    %.2f cores busy: %.2f this benchmark, %.2f other processes" % (
        m["busy_cores"], m["benchmark_cores"], m["other_cores"]))
    for name, x in sorted(r["processes"].items()):
        lines.append("  %-12s cores %5s  %7s us/post  peak RSS %6.1f MB  exit %s" % (
            name, x["cores_window"], x["cpu_us_per_post"], (x["peak_rss_kb"] or 0) / 1024,
            x.get("exit", "-")))
    c = r["checks"]
    lines.append("  checks     %s: processed %d = sent %d + markers %d; canaries %s; lost %d" % (
        "OK" if c["ok"] else "FAILED", c["processed"], c["posts_sent"], c["markers_sent"],
        " ".join("%s %d/%d" % (k, v["got"], v["expected"]) for k, v in c["canaries"].items()),
        c["lost"]))
    return "\n".join(lines)


def main(argv):
    a = parse_args(argv)
    b = Bench(a)
    # SIGTERM (e.g. from `timeout`) unwinds like an error, so the services are always killed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    r = None
    try:
        r = b.run()
    except Exception as e:  # noqa: BLE001 - any failure: report it, keep the logs
        log("failed: %s: %s (logs in %s)" % (type(e).__name__, e, b.workdir))
        return 1
    finally:
        ok = r is not None and r["checks"]["ok"]
        b.cleanup(keep=not ok)
    if not ok:
        log("checks failed; logs kept in %s" % b.workdir)
    print(table(r), file=sys.stderr)
    text = json.dumps(r, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
