"""End-to-end test of `escucha up` (issue #10): one command starts a private redis-server and
the whole pipeline (notifier, aggregator, two classifiers, broker, a collector replaying a
JSONL file), posts are counted in that Redis, a classifier killed with SIGKILL is started
again, the status shows posts per second, and SIGINT stops every child and the redis-server
with exit status 0. On a terminal the status is a block redrawn in place while the log goes
to <run-dir>/escucha.log. Also the errors it must give before starting anything: an invalid
config (the service's own --check-config answer, exit 2), a bus port in use and a missing
binary (exit 1).

usage: test_up.py BINDIR   (BINDIR is the cmake build directory)"""

import datetime as dt
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import escucha_test as et  # noqa: E402

BINDIR = None
POSTS = 1500
RATE = 150  # posts per second from the collector: the run lasts ~10 s, long enough to watch


def children_of(pid):
    """Pids whose parent is pid (from /proc/<pid>/stat)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(name))
    return out


def exe_of(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return ""


def comm_of(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def write_posts(path, n):
    start = dt.datetime(2026, 11, 16, 5, 0, tzinfo=dt.timezone.utc)
    texts = ["El congreso debate la ley", "Nueva elección regional", "Partido de fútbol hoy"]
    with open(path, "w") as f:
        for i in range(n):
            when = start + dt.timedelta(seconds=30 * i)
            f.write(json.dumps({
                "id": "up-%d" % i, "platform": "mastodon",
                "author": {"handle": "@a%d@m.example" % (i % 17), "name": "A", "followers": 5},
                "text": texts[i % 3], "lang": "es", "url": "https://m.example/@a/%d" % i,
                "created_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "likes": 0, "reposts": 0, "replies": 0}, ensure_ascii=False) + "\n")


def config(work, posts, **sections):
    cfg = {
        "deployment": "up-e2e",
        # names no server: escucha up starts a private redis-server
        "redis": {"prefix": "esc"},
        "bus": {k: "tcp://127.0.0.1:%d" % et.free_port()
                for k in ("collect", "classify", "aggregate", "notify")},
        "sources": [{"name": "replay", "type": "jsonl", "path": posts, "rate": RATE}],
        "teams": [{"id": "gob", "name": "Gobernanza", "timezone": "America/Lima",
                   "topics": [{"id": "congreso", "keywords": ["congreso"]},
                              {"id": "elecciones", "keywords": ["elección"]}]}],
        "aggregator": {"flush_ms": 200},
        "notifier": {"outbox": os.path.join(work, "outbox")},
    }
    cfg.update(sections)
    path = os.path.join(work, "escucha.json")
    et.write_json(path, cfg)
    return path, cfg


class Up:
    """`escucha up` with its status lines collected and its children tracked."""

    def __init__(self, work, cfg_path, *args):
        self.run = os.path.join(work, "run")
        self.stderr_path = os.path.join(work, "up.stderr")
        self.proc = subprocess.Popen(
            [os.path.join(BINDIR, "cli", "escucha"), "up", cfg_path, "--run-dir", self.run]
            + list(args), stdout=subprocess.PIPE, stderr=self._stderr_file(), text=True)
        self.lines = []
        self.seen = {}  # pid -> executable, every child ever seen
        self.lock = threading.Lock()
        self.done = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        threading.Thread(target=self._track, daemon=True).start()

    def _stderr_file(self):
        self.stderr_file = open(self.stderr_path, "w")
        return self.stderr_file

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def _track(self):
        while not self.done and self.proc.poll() is None:
            for pid in children_of(self.proc.pid):
                exe = exe_of(pid)
                if exe:
                    with self.lock:
                        self.seen.setdefault(pid, exe)
            time.sleep(0.1)

    def status(self):
        with self.lock:
            return list(self.lines)

    def last_status(self):
        lines = self.status()
        return lines[-1] if lines else ""

    def children(self, name):
        """Children running `name` (redis-server is a link to redis-check-rdb: its comm)."""
        return [p for p in children_of(self.proc.pid)
                if exe_of(p).endswith("/" + name) or comm_of(p) == name]

    def stderr(self):
        with open(self.stderr_path) as f:
            return f.read()

    def kill(self):
        self.done = True
        self.stderr_file.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(10)
        self.proc.stdout.close()
        with self.lock:
            pids = list(self.seen)
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


class UpTest(unittest.TestCase):
    def setUp(self):
        self.work = et.make_workdir("escucha-up-")
        self.up = None

    def tearDown(self):
        if self.up is not None:
            self.up.kill()
        if not self._outcome.result.errors and not self._outcome.result.failures:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            print("escucha up test: files kept in", self.work, file=sys.stderr)

    def test_up_supervises_and_stops_cleanly(self):
        posts = os.path.join(self.work, "posts.jsonl")
        write_posts(posts, POSTS)
        cfg, _ = config(self.work, posts)
        up = self.up = Up(self.work, cfg, "--classifiers", "2", "--stop-timeout", "20")

        # redis, notifier, aggregator, 2 classifiers, broker, collector
        et.wait_for(lambda: re.match(r"\[\S+\] 7/7 up", up.last_status()), 90,
                    "every process to be up; stderr:\n%s" % up.stderr())
        redis_pids = up.children("redis-server")
        self.assertEqual(len(redis_pids), 1, "a private redis-server is a child of escucha up")
        sock = os.path.join(up.run, "redis.sock")
        r = et.Resp(sock)
        et.wait_for(lambda: int(r.cmd("GET", "esc:agg:processed") or 0) >= 200, 60,
                    "posts to be counted in the private redis")

        # SIGKILL a classifier: escucha up starts it again after the 1 s backoff.
        before = up.children("escucha-classifier")
        self.assertEqual(len(before), 2)
        os.kill(before[0], signal.SIGKILL)
        et.wait_for(lambda: "restarts: classifier" in up.last_status()
                    and re.match(r"\[\S+\] 7/7 up", up.last_status()), 30,
                    "the killed classifier to be up again")
        after = up.children("escucha-classifier")
        self.assertEqual(len(after), 2)
        self.assertNotIn(before[0], after)
        self.assertIn(before[1], after, "the other classifier was left alone")
        log = up.stderr()
        self.assertRegex(log, r"died name=classifier\d how=\"killed by signal KILL\"")
        self.assertRegex(log, r"restarting name=classifier\d restarts=1")

        # Everything is counted (but the few posts the killed classifier held).
        et.wait_for(lambda: int(r.cmd("GET", "esc:agg:processed") or 0) >= POSTS - 30, 90,
                    "the replay to be counted")
        self.assertLessEqual(int(r.cmd("GET", "esc:agg:processed")), POSTS)
        total = int(r.hgetall("esc:t:{gob/congreso}").get("posts", 0))
        self.assertGreater(total, POSTS // 3 - 30)

        # The status showed the posts flowing, stage by stage.
        rates = [float(m.group(1)) for m in
                 (re.search(r"posts/s: collected ([0-9.]+),", line) for line in up.status())
                 if m]
        self.assertTrue(rates and max(rates) > 0.5 * RATE, rates)
        counted = [float(m.group(1)) for m in
                   (re.search(r"counted ([0-9.]+) \|", line) for line in up.status()) if m]
        self.assertGreater(max(counted), 0)
        et.wait_for(lambda: re.search(r" \| counted %d \|" % int(r.cmd("GET", "esc:agg:processed")),
                                      up.last_status()), 10,
                    "the status total to match redis: %s" % up.last_status())

        # Run dir: a log per process, and the environment for other commands.
        for name in ("redis", "notifier", "aggregator", "classifier1", "classifier2", "broker",
                     "collector"):
            self.assertTrue(os.path.exists(os.path.join(up.run, name + ".log")), name)
        with open(os.path.join(up.run, "up.env")) as f:
            self.assertIn("ESC_REDIS_UNIX_SOCKET=%s\n" % sock, f.read())

        # Ctrl-C: everything stops, upstream first, and escucha up exits 0.
        up.proc.send_signal(signal.SIGINT)
        self.assertEqual(up.proc.wait(60), 0, up.stderr())
        up.done = True
        with up.lock:
            seen = dict(up.seen)
        for pid in set(before) | set(after) | set(redis_pids):
            self.assertIn(pid, seen)
        left = [(pid, exe) for pid, exe in seen.items() if alive(pid)]
        self.assertEqual(left, [], "children still running after escucha up exited")
        self.assertFalse(any(alive(p) for p in redis_pids))
        r.sock.close()
        with self.assertRaises(OSError):
            et.Resp(sock).cmd("PING")
        log = up.stderr()
        order = [m.group(1) for m in re.finditer(r"stopped name=(\w+)", log)]
        self.assertEqual(sorted(order), sorted(["collector", "broker", "classifier1",
                                                "classifier2", "aggregator", "notifier",
                                                "redis"]))
        pos = {name: i for i, name in enumerate(order)}
        classifiers = (pos["classifier1"], pos["classifier2"])
        self.assertTrue(pos["collector"] < pos["broker"] < min(classifiers)
                        and max(classifiers) < pos["aggregator"] < pos["notifier"]
                        < pos["redis"], "stopped upstream first: %s" % order)
        self.assertNotIn("uncleanly", log)

    def test_up_terminal_status(self):
        """On a terminal: a block redrawn in place, the log in <run-dir>/escucha.log."""
        posts = os.path.join(self.work, "posts.jsonl")
        write_posts(posts, 50)
        cfg, _ = config(self.work, posts)
        run = os.path.join(self.work, "run")
        master, slave = pty.openpty()
        proc = subprocess.Popen([os.path.join(BINDIR, "cli", "escucha"), "up", cfg, "--run-dir",
                                 run], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                env=dict(os.environ, TERM="xterm"))
        os.close(slave)
        out = b""
        try:
            deadline = time.time() + 90
            while b"all 6 processes started" not in out and time.time() < deadline:
                if select.select([master], [], [], 0.5)[0]:
                    out += os.read(master, 65536)
            self.assertIn(b"all 6 processes started", out)
            proc.send_signal(signal.SIGINT)
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the other side is closed
                    break
                if not chunk:
                    break
                out += chunk
            self.assertEqual(proc.wait(60), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        text = out.decode("utf-8", "replace")
        self.assertIn("\x1b[?25l", text)  # cursor hidden while drawing
        self.assertIn("\x1b[?25h", text)  # and shown again at the end
        self.assertRegex(text, r"\x1b\[\d+A")  # redrawn in place
        self.assertIn("PROCESS       STATE", text)
        self.assertIn("STAGE              IN/S", text)
        self.assertIn("INT: stopping, upstream first", text)
        self.assertNotIn("INFO up: started name=", text, "log lines go to escucha.log")
        with open(os.path.join(run, "escucha.log")) as f:
            log = f.read()
        self.assertIn("started name=broker", log)
        self.assertIn("stopped name=redis", log)

    def test_up_refuses_to_start(self):
        posts = os.path.join(self.work, "posts.jsonl")
        write_posts(posts, 10)
        exe = os.path.join(BINDIR, "cli", "escucha")
        run = os.path.join(self.work, "run")

        def up(*args):
            return subprocess.run([exe, "up", cfg, "--run-dir", run, "--no-status"] + list(args),
                                  capture_output=True, text=True, timeout=120)

        # An invalid service section: the aggregator's own --check-config says why.
        cfg, _ = config(self.work, posts, aggregator={"flush_ms": 1})
        res = up()
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("escucha-aggregator rejects the config", res.stderr)
        self.assertIn("aggregator.flush_ms", res.stderr)

        # A bus port another process holds.
        cfg, c = config(self.work, posts)
        port = int(c["bus"]["collect"].rsplit(":", 1)[1])
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
            s.listen()
            res = up()
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("bus.collect (the broker binds it): port %d" % port, res.stderr)
        self.assertIn("is in use by another process", res.stderr)

        # No binaries where --bin-dir says.
        empty = os.path.join(self.work, "empty")
        os.mkdir(empty)
        res = up("--bin-dir", empty)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("cannot find escucha-notifier in %s" % empty, res.stderr)

        # Nothing was started by any of them.
        self.assertFalse(os.path.exists(os.path.join(run, "redis.sock")))
        self.assertFalse(os.path.exists(os.path.join(run, "broker.log")))

        # Bad arguments.
        res = subprocess.run([exe, "up"], capture_output=True, text=True, timeout=10)
        self.assertEqual(res.returncode, 2)
        self.assertIn("up wants exactly one CONFIG file", res.stderr)


if __name__ == "__main__":
    BINDIR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
