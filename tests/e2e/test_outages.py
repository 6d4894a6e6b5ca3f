"""Outages end to end (issue #9): the real collector, broker, classifier, aggregator (and
notifier) with a private redis-server, while one part is hung (SIGSTOP), crashed (SIGKILL) or
stopped for a while mid-stream:

- Redis hung for 60 s: the aggregator keeps counts in memory up to max_pending_posts, then
  pauses its input; the pipeline backs up to the collector; exact totals afterwards.
- Redis killed and restarted on its own AOF (appendfsync always, and everysec): exact totals.
- the aggregator hung (SIGSTOP) or stopped and started again: the classifiers, the broker and
  the collector wait (backpressure), exact totals afterwards.
- the webhook receiver down for 2 minutes while an alert fires, and the SMTP server down while a
  scheduled digest is due: each delivered exactly once when it is back.
- the notifier hung, then killed with an alert in its socket buffer: the restarted notifier
  delivers it from the team's alert list, exactly once (also after a further restart).

Each test is its own ctest entry (tests/CMakeLists.txt), so they run in parallel.

usage: test_outages.py BINDIR [TestClass.test_name ...]"""

import base64
import datetime as dt
import glob
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, HERE)
import escucha_test as et  # noqa: E402
import test_pipeline as tp  # noqa: E402

BINDIR = None
SECRET = "outage-hook-secret-93d1"
UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 16, 0, 0, tzinfo=UTC)

# (text, topic keys)
TEMPLATES = [
    ("El CONGRESO aprobó la ley de presupuesto", ["gob/congreso"]),
    ("Se acercan las elecciones y nadie habla de propuestas", ["gob/elecciones"]),
    ("La informalidad laboral sigue creciendo en Lima", ["dev/informalidad"]),
    ("Digitalización del Estado: el Congreso aprueba la firma digital",
     ["gob/congreso", "dev/digital"]),
    ("Partido de fútbol esta noche en el estadio", []),
]
TOPICS = ("gob/congreso", "gob/elecciones", "dev/informalidad", "dev/digital")


PAD = " ".join(["lorem ipsum dolor sit amet"] * 300)  # 8 kB that matches no topic


def write_posts(path, first, n, expected, pad=False):
    """n posts with ids first..first+n-1, one every 7 s of event time; adds to expected.
    pad=True makes each post about 8 kB, so a few thousand fill every socket buffer on the
    way (ZeroMQ queues and the kernel's) and the backpressure reaches the collector."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(first, first + n):
            text, topics = TEMPLATES[i % len(TEMPLATES)]
            if pad:
                text = text + " " + PAD
            when = START + dt.timedelta(seconds=7 * i)
            f.write(json.dumps({
                "id": "o-%d" % i, "platform": "forum", "text": text, "lang": "es",
                "author": {"handle": "@u%d" % (i % 11), "followers": i % 50},
                "created_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "likes": i % 4,
            }, ensure_ascii=False) + "\n")
            for t in topics:
                expected[t] = expected.get(t, 0) + 1
    return path


def metrics(port):
    """et.metrics, or {} while the service is not listening yet."""
    try:
        return et.metrics(port)
    except OSError:
        return {}


def base_config(work, redis_sock, ports):
    return {
        "deployment": "outages",
        "redis": {"unix_socket": redis_sock, "prefix": "esc", "timeout_ms": 500},
        "bus": dict({k: "tcp://127.0.0.1:%d" % p for k, p in ports.items()
                     if not k.startswith("metrics_")}, hwm=50),
        "sources": [{"name": "replay", "type": "jsonl", "path": "unused.jsonl"}],
        "teams": [
            {"id": "gob", "name": "Gobernanza", "language": "es", "timezone": "UTC",
             "recipients": ["gob@example.org"],
             "topics": [
                 {"id": "congreso", "name": "Congreso",
                  "keywords": ["congreso", "poder legislativo"]},
                 {"id": "elecciones", "name": "Elecciones", "keywords": ["elección", "elecciones"]},
             ]},
            {"id": "dev", "name": "Development", "language": "en", "timezone": "UTC",
             "recipients": ["dev@example.org"],
             "topics": [
                 {"id": "informalidad", "name": "Informality",
                  "keywords": ["informalidad", "informal work"]},
                 {"id": "digital", "name": "Digitalisation", "keywords": ["digitalización"]},
             ]},
        ],
        "collector": {"metrics_listen": "127.0.0.1:%d" % ports["metrics_collector"],
                      "grace_ms": 60000},
        "broker": {"metrics_listen": "127.0.0.1:%d" % ports["metrics_broker"]},
        "classifier": {"metrics_listen": "127.0.0.1:%d" % ports["metrics_classifier"],
                       "grace_ms": 30000},
        "aggregator": {"flush_ms": 200, "grace_ms": 30000,
                       "metrics_listen": "127.0.0.1:%d" % ports["metrics_aggregator"]},
        "notifier": {"outbox": os.path.join(work, "outbox"),
                     "metrics_listen": "127.0.0.1:%d" % ports["metrics_notifier"]},
    }


class OutageBase(unittest.TestCase):
    redis_args = None

    def setUp(self):
        self.work = et.make_workdir("escucha-outage-")
        self.redis = et.Redis(self.work, args=self.redis_args,
                              data_dir=self.data_dir() if self.redis_args else None)
        self.svc = et.Services(BINDIR, self.work, env={"OUTAGE_HOOK_SECRET": SECRET})
        self.ports = {k: et.free_port() for k in (
            "collect", "classify", "aggregate", "notify", "metrics_collector", "metrics_broker",
            "metrics_classifier", "metrics_aggregator", "metrics_notifier")}
        self.cfg = base_config(self.work, self.redis.sock, self.ports)
        self.expected = {}
        self.sent = 0
        self.helpers = []

    def data_dir(self):
        d = os.path.join(self.work, "redis-data")
        os.makedirs(d, exist_ok=True)
        return d

    def tearDown(self):
        for p in self.helpers:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        self.svc.kill_all()
        self.redis.stop()
        if not self._outcome.result.errors and not self._outcome.result.failures:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            et.dump_logs(self.work, "outages")

    def config_file(self, name="escucha.json", source=None):
        cfg = json.loads(json.dumps(self.cfg))
        if source is not None:
            cfg["sources"][0]["path"] = source
        path = os.path.join(self.work, name)
        et.write_json(path, cfg)
        return path

    def start_core(self, cfg):
        s = self.svc
        s.start("aggregator", "aggregator", "--config", cfg)
        s.start("classifier", "classifier", "--config", cfg)
        s.start("broker", "broker", "--config", cfg)

    def collect(self, name, n, rate=None, pad=False):
        """Starts a --once collector replaying n new posts; returns its process."""
        path = write_posts(os.path.join(self.work, name + ".jsonl"), self.sent, n, self.expected,
                           pad)
        self.sent += n
        self.cfg["sources"][0]["name"] = name
        if rate is not None:
            self.cfg["sources"][0]["rate"] = rate
        cfg = self.config_file(name + ".json", path)
        self.cfg["sources"][0].pop("rate", None)
        return self.svc.start(name, "collector", "--config", cfg, "--once")

    def processed(self):
        try:
            return int(self.redis.client().cmd("GET", "esc:agg:processed") or 0)
        except (OSError, RuntimeError):
            return -1

    def wait_counted(self, timeout=90):
        et.wait_for(lambda: self.processed() >= self.sent, timeout,
                    "%d posts to be counted" % self.sent)
        time.sleep(0.5)  # a double count would show up now

    def assert_exact(self):
        r = self.redis.client()
        self.assertEqual(int(r.cmd("GET", "esc:agg:processed")), self.sent)
        for topic in TOPICS:
            total = r.hgetall("esc:t:{%s}" % topic)
            self.assertEqual(int(total.get("posts", 0)), self.expected.get(topic, 0), topic)
            hours = r.cmd("KEYS", "esc:c:{%s}:h:*" % topic)
            self.assertEqual(sum(int(r.cmd("HGET", h, "posts")) for h in hours),
                             self.expected.get(topic, 0), topic)

    def metric(self, port_key, name):
        return metrics(self.ports[port_key]).get(name)

    def stop_all(self, names=("broker", "classifier", "aggregator")):
        for name in names:
            self.assertEqual(self.svc.stop(name, timeout=60), 0,
                             "%s exit status\n%s" % (name, self.svc.log(name)[-3000:]))


class RedisOutageTest(OutageBase):
    def test_redis_hung_60s_backpressure_then_exact(self):
        self.cfg["aggregator"]["max_pending_posts"] = 300
        cfg = self.config_file()
        self.start_core(cfg)
        c1 = self.collect("before", 400)
        self.assertEqual(c1.wait(60), 0, self.svc.log("before"))
        self.wait_counted()

        self.redis.pause()
        stopped_at = time.time()
        c2 = self.collect("during", 12000, pad=True)
        agg = self.ports["metrics_aggregator"]
        # Counts pile up in memory up to the bound, then input pauses (backpressure).
        et.wait_for(lambda: metrics(agg).get("escucha_aggregator_input_paused") == 1, 40,
                    "the aggregator to pause its input")
        m = metrics(agg)
        self.assertEqual(m["escucha_aggregator_redis_up"], 0)
        self.assertGreaterEqual(m["escucha_aggregator_pending_posts"], 300)
        et.wait_for(lambda: "bus full, waiting for the broker" in self.svc.log("during"), 30,
                    "the collector to feel the backpressure")
        log = self.svc.log("aggregator")
        self.assertIn("redis unavailable, counters kept in memory", log)
        self.assertIn("pending posts at the limit, input paused", log)
        peak = 0
        while time.time() < stopped_at + 60:
            m = metrics(agg)
            peak = max(peak, m["escucha_aggregator_pending_posts"])
            self.assertIsNone(c2.poll(), "the collector waits, it does not finish or drop")
            time.sleep(1)
        # Bounded: at most one batch of input past the bound.
        self.assertLessEqual(peak, 300 + 256, "pending posts bounded by max_pending_posts")
        self.assertGreater(metrics(self.ports["metrics_broker"])
                           ["escucha_broker_blocked_total"], 0)

        self.redis.resume()
        self.assertEqual(c2.wait(90), 0, self.svc.log("during")[-3000:])
        self.wait_counted()
        self.assert_exact()
        m = metrics(agg)
        self.assertEqual(m["escucha_aggregator_input_paused"], 0)
        self.assertEqual(m["escucha_aggregator_redis_up"], 1)
        self.assertEqual(m["escucha_aggregator_pending_posts"], 0)
        self.assertEqual(m["escucha_aggregator_rejected_total"], 0)
        log = self.svc.log("aggregator")
        self.assertIn("input resumed", log)
        self.assertIn("redis writable again", log)
        self.stop_all()


class RedisCrashTest(OutageBase):
    redis_args = ["--appendonly", "yes", "--appendfsync", "always"]

    def test_redis_killed_restarted_from_aof_exact(self):
        cfg = self.config_file()
        self.start_core(cfg)
        c = self.collect("stream", 3000, rate=300)
        et.wait_for(lambda: self.processed() >= 600, 30, "the stream to be half counted")
        self.redis.kill()
        time.sleep(3)
        self.assertIsNone(c.poll(), "the stream is still running")
        self.redis.start()  # same dir: loads the AOF
        self.assertEqual(c.wait(90), 0, self.svc.log("stream")[-3000:])
        self.wait_counted()
        self.assert_exact()
        log = self.svc.log("aggregator")
        self.assertIn("redis unavailable, counters kept in memory", log)
        self.assertIn("redis writable again", log)
        self.assertEqual(self.metric("metrics_aggregator", "escucha_aggregator_rejected_total"),
                         0)
        self.stop_all()


class RedisCrashEverysecTest(RedisCrashTest):
    """The same crash with appendfsync everysec: a killed redis-server process loses nothing
    it acknowledged either (it writes the AOF to the kernel before it answers); only a crash
    of the whole host can lose the last second or two (docs/reliability.md)."""
    redis_args = ["--appendonly", "yes", "--appendfsync", "everysec"]


class AggregatorOutageTest(OutageBase):
    def assert_blocked(self, collector_name, proc):
        et.wait_for(lambda: "bus full, waiting for the broker" in self.svc.log(collector_name),
                    30, "the collector to wait for the bus")
        self.assertIsNone(proc.poll())

    def test_aggregator_hung_40s_backpressure_then_exact(self):
        cfg = self.config_file()
        self.start_core(cfg)
        c = self.collect("stream", 12000, rate=1000, pad=True)
        et.wait_for(lambda: self.processed() >= 300, 30, "the stream to start")
        self.svc.pause("aggregator")
        stopped_at = time.time()
        self.assert_blocked("stream", c)
        cls = self.ports["metrics_classifier"]
        self.assertEqual(metrics(cls)["escucha_classifier_dropped_total"], 0)
        held = self.processed()
        time.sleep(max(0, stopped_at + 40 - time.time()))
        self.assertEqual(self.processed(), held, "nothing counted while the aggregator hangs")
        self.assertGreater(metrics(self.ports["metrics_broker"])
                           ["escucha_broker_blocked_total"], 0)
        self.assertIn("aggregator is not taking messages, waiting", self.svc.log("classifier"))
        self.svc.resume("aggregator")
        self.assertEqual(c.wait(90), 0, self.svc.log("stream")[-3000:])
        self.wait_counted()
        self.assert_exact()
        self.assertEqual(metrics(cls)["escucha_classifier_dropped_total"], 0)
        self.stop_all()

    def test_aggregator_stopped_30s_then_restarted_exact(self):
        cfg = self.config_file()
        self.start_core(cfg)
        c1 = self.collect("first", 500)
        self.assertEqual(c1.wait(60), 0, self.svc.log("first"))
        self.wait_counted()
        self.assertEqual(self.svc.stop("aggregator", timeout=60), 0, self.svc.log("aggregator"))
        os.rename(os.path.join(self.work, "aggregator.log"),
                  os.path.join(self.work, "aggregator-1.log"))
        stopped_at = time.time()
        c2 = self.collect("second", 12000, pad=True)
        self.assert_blocked("second", c2)
        time.sleep(max(0, stopped_at + 30 - time.time()))
        self.assertIsNone(c2.poll(), "the collector waits for the aggregator")
        self.assertEqual(metrics(self.ports["metrics_classifier"])
                         ["escucha_classifier_dropped_total"], 0)
        self.assertIn("aggregator is not taking messages, waiting", self.svc.log("classifier"))
        self.svc.start("aggregator", "aggregator", "--config", cfg)
        self.assertEqual(c2.wait(90), 0, self.svc.log("second")[-3000:])
        self.wait_counted()
        self.assert_exact()
        self.stop_all()


class ReceiversDownTest(OutageBase):
    """One notifier: its webhook receiver is down for 2 minutes while the burst's alert fires,
    and its SMTP server is down when the daily digest of gob falls due."""

    def start_sink(self, script, *args):
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "..", "support", script)]
                             + list(args), stdout=subprocess.PIPE, text=True)
        self.helpers.append(p)
        p.stdout.readline()  # the port: ready
        return p

    def test_webhook_down_2min_and_smtp_down_delivered_once(self):
        hook_port = et.free_port()
        smtp_port = et.free_port()
        hook_log = os.path.join(self.work, "hook.jsonl")
        mail_dir = os.path.join(self.work, "mail")
        self.cfg["teams"][0]["webhooks"] = [{"url": "http://127.0.0.1:%d/hooks/gob" % hook_port,
                                             "secret_env": "OUTAGE_HOOK_SECRET"}]
        self.cfg["notifier"].update({
            "retry_base_ms": 200, "retry_max_delay_ms": 2000, "retry_max": 100,
            "webhook_timeout_ms": 1000, "smtp_url": "smtp://127.0.0.1:%d" % smtp_port,
            "smtp_tls": "none", "smtp_timeout_ms": 5000,
            "digest": {"default": {"enabled": False},
                       "gob": {"enabled": True, "every": "daily", "time": "00:00",
                               "send_empty": True}}})
        self.cfg["aggregator"].update({"spike": {
            "window_min": 10, "baseline_min": 600, "factor": 4.0, "min_count": 20,
            "cooldown_min": 180, "lateness_s": 60}})
        self.cfg["bus"]["hwm"] = 1000
        del self.cfg["collector"]["metrics_listen"]  # two collectors at once
        paths, expected, good = tp.build_inputs(self.work)
        cfg = self.config_file()
        s = self.svc
        started = time.time()
        s.start("notifier", "notifier", "--config", cfg)
        self.start_core(cfg)
        ntf = self.ports["metrics_notifier"]
        # The digest falls due at start, with the SMTP server down: retried later.
        et.wait_for(lambda: metrics(ntf).get('escucha_notifier_digests_total'
                                                '{outcome="retry"}', 0) >= 1, 30,
                    "the digest attempt to fail")
        self.assertIn("smtp send failed", s.log("notifier"))
        for name in ("a", "b", "burst"):
            self.cfg["sources"][0]["name"] = "replay-" + name
            c = s.start("collector_" + name, "collector", "--config",
                        self.config_file(name + ".json", paths[name]), "--once")
            if name == "b":
                for n in ("a", "b"):
                    self.assertEqual(s.procs["collector_" + n].wait(60), 0)
        self.assertEqual(c.wait(60), 0)
        r = self.redis.client()
        et.wait_for(lambda: int(r.cmd("GET", "esc:agg:processed") or 0) >= good, 60,
                    "the posts to be counted")
        # The alert fired; its delivery fails and is retried, the queue shows it.
        et.wait_for(lambda: metrics(ntf).get("escucha_notifier_retried_total", 0) >= 3, 60,
                    "the webhook delivery to be retried")
        down_from = time.time()
        et.wait_for(lambda: metrics(ntf).get("escucha_notifier_queue_depth") == 1, 5,
                    "the queue depth to show the waiting delivery")
        m = metrics(ntf)
        self.assertEqual(m["escucha_notifier_delivered_total"], 0)
        self.assertIn("delivery failed, will retry", s.log("notifier"))

        # SMTP back after about 30 s: the digest goes out once, at a later scheduler tick.
        time.sleep(max(0, started + 30 - time.time()))
        smtp = self.start_sink("smtp_sink.py", "--dir", mail_dir, "--port", str(smtp_port))
        # The webhook receiver stays down for 2 minutes.
        while time.time() < down_from + 120:
            m = metrics(ntf)
            self.assertEqual(m["escucha_notifier_dead_total"], 0)
            self.assertEqual(m["escucha_notifier_delivered_total"], 0)
            time.sleep(2)
        self.assertEqual(metrics(ntf)["escucha_notifier_queue_depth"], 1)
        hook = self.start_sink("webhook_sink.py", "--out", hook_log, "--port", str(hook_port))
        et.wait_for(lambda: os.path.exists(hook_log) and os.path.getsize(hook_log) > 0, 10,
                    "the alert to reach the receiver once it is back")
        et.wait_for(lambda: glob.glob(os.path.join(mail_dir, "*.eml")), 100,
                    "the digest to reach the SMTP server once it is back")
        time.sleep(3)  # a second delivery would show up now
        with open(hook_log) as f:
            reqs = [json.loads(x) for x in f]
        self.assertEqual(len(reqs), 1, [q["body"][:200] for q in reqs])
        alert = json.loads(reqs[0]["body"])
        self.assertEqual((alert["team"], alert["topic"], alert["kind"]),
                         ("gob", "congreso", "spike"))
        self.assertTrue(et.verify_signature(SECRET, {
            "X-Escucha-Timestamp": reqs[0]["headers"]["x-escucha-timestamp"],
            "X-Escucha-Signature": reqs[0]["headers"]["x-escucha-signature"]},
            base64.b64decode(reqs[0]["body_b64"])))
        self.assertEqual(len(glob.glob(os.path.join(mail_dir, "*.eml"))), 1)
        m = metrics(ntf)
        self.assertEqual(m["escucha_notifier_delivered_total"], 1)
        self.assertEqual(m["escucha_notifier_dead_total"], 0)
        self.assertEqual(m['escucha_notifier_digests_total{outcome="sent"}'], 1)
        et.wait_for(lambda: metrics(ntf)["escucha_notifier_queue_depth"] == 0, 5,
                    "the queue to be empty")
        keys = r.cmd("KEYS", "esc:ntf:digest:{gob}:*")
        self.assertEqual(len(keys), 1, keys)
        self.assertTrue(r.cmd("GET", keys[0]).startswith("sent:"), r.cmd("GET", keys[0]))
        log = s.log("notifier")
        self.assertIn("digest sent team=gob", log)
        self.assertNotIn(SECRET, log)
        self.stop_all(("broker", "classifier", "aggregator", "notifier"))
        for p in (smtp, hook):
            p.terminate()
            p.wait(10)


class NotifierKilledTest(OutageBase):
    """The notifier hung (SIGSTOP) while the aggregator raises an alert, so the alert sits in
    its socket buffer, then killed (SIGKILL): the alert's bus copy is lost. The restarted
    notifier finds it in the team's list <prefix>:alerts:{gob} (catch-up) and delivers it
    exactly once; a further restart delivers nothing again."""

    def start_sink(self, *args):
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "..", "support",
                                                           "webhook_sink.py")] + list(args),
                             stdout=subprocess.PIPE, text=True)
        self.helpers.append(p)
        p.stdout.readline()  # the port: ready
        return p

    def test_notifier_killed_with_alert_in_socket_delivered_once(self):
        hook_port = et.free_port()
        hook_log = os.path.join(self.work, "hook.jsonl")
        self.cfg["teams"][0]["webhooks"] = [{"url": "http://127.0.0.1:%d/hooks/gob" % hook_port,
                                             "secret_env": "OUTAGE_HOOK_SECRET"}]
        self.cfg["notifier"].update({"retry_base_ms": 200, "webhook_timeout_ms": 1000,
                                     "catchup_ms": 1000,
                                     "digest": {"default": {"enabled": False}}})
        self.cfg["aggregator"].update({"spike": {
            "window_min": 10, "baseline_min": 600, "factor": 4.0, "min_count": 20,
            "cooldown_min": 180, "lateness_s": 60}})
        self.cfg["bus"]["hwm"] = 1000
        del self.cfg["collector"]["metrics_listen"]  # two collectors at once
        paths, _, good = tp.build_inputs(self.work)
        cfg = self.config_file()
        s = self.svc
        hook = self.start_sink("--out", hook_log, "--port", str(hook_port))
        s.start("notifier", "notifier", "--config", cfg)
        et.wait_for(lambda: " started " in s.log("notifier"), 10, "the notifier to start")
        s.pause("notifier")  # bound and connected to, but reads nothing
        self.start_core(cfg)
        for name in ("a", "b", "burst"):
            self.cfg["sources"][0]["name"] = "replay-" + name
            c = s.start("collector_" + name, "collector", "--config",
                        self.config_file(name + ".json", paths[name]), "--once")
            if name == "b":
                for n in ("a", "b"):
                    self.assertEqual(s.procs["collector_" + n].wait(60), 0)
        self.assertEqual(c.wait(60), 0)
        r = self.redis.client()
        et.wait_for(lambda: int(r.cmd("GET", "esc:agg:processed") or 0) >= good, 60,
                    "the posts to be counted")

        def spikes():
            return [a for a in (json.loads(x) for x in r.cmd("LRANGE", "esc:alerts:{gob}", 0, -1))
                    if a["kind"] == "spike"]
        et.wait_for(spikes, 30, "the aggregator's flush to write the alert to the team's list")
        alert_id = spikes()[0]["id"]
        self.assertNotIn("alert not accepted by the notify socket", s.log("aggregator"))
        # killed with the alert in its socket buffer: the bus copy is gone
        s.procs["notifier"].kill()
        s.procs["notifier"].wait(10)
        self.assertNotIn("alert received", s.log("notifier"))
        self.assertFalse(os.path.exists(hook_log) and os.path.getsize(hook_log) > 0)

        ntf = self.ports["metrics_notifier"]
        s.start("notifier2", "notifier", "--config", cfg)
        et.wait_for(lambda: os.path.exists(hook_log) and os.path.getsize(hook_log) > 0, 20,
                    "the restarted notifier to deliver the alert from the team's list")
        m = metrics(ntf)
        self.assertEqual(m.get('escucha_notifier_catchup_total{outcome="queued"}'), 1)
        self.assertEqual(m.get("escucha_notifier_alerts_total"), 0)  # not from the bus
        time.sleep(2.5)  # two more catch-ups: a second delivery would show up now
        self.assertEqual(s.stop("notifier2"), 0, s.log("notifier2")[-3000:])

        # another restart: the alert is in the list and known, nothing is delivered again
        s.start("notifier3", "notifier", "--config", cfg)
        et.wait_for(lambda: metrics(ntf).get('escucha_notifier_catchup_total{outcome="known"}',
                                             0) >= 1, 20, "the catch-up to find the alert known")
        time.sleep(2.5)
        with open(hook_log) as f:
            reqs = [json.loads(x) for x in f]
        self.assertEqual(len(reqs), 1, [q["body"][:200] for q in reqs])
        body = json.loads(reqs[0]["body"])
        self.assertEqual((body["id"], body["team"], body["kind"]), (alert_id, "gob", "spike"))
        self.assertTrue(et.verify_signature(SECRET, {
            "X-Escucha-Timestamp": reqs[0]["headers"]["x-escucha-timestamp"],
            "X-Escucha-Signature": reqs[0]["headers"]["x-escucha-signature"]},
            base64.b64decode(reqs[0]["body_b64"])))
        m = metrics(ntf)
        self.assertEqual(m.get('escucha_notifier_catchup_total{outcome="queued"}'), 0)
        self.assertEqual(m.get("escucha_notifier_delivered_total"), 0)
        self.assertEqual(r.cmd("HGET", "esc:ntf:{q}:stats", "delivered"), "1")
        self.stop_all(("broker", "classifier", "aggregator", "notifier3"))
        hook.terminate()
        hook.wait(10)


if __name__ == "__main__":
    BINDIR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
