"""Chaos test of the delivery guarantee (docs/delivery.md, issue #9): a post accepted by a
collector is counted exactly once even when any one service is killed with SIGKILL in the middle
of the stream and restarted.

A private redis-server, the broker, two classifiers, the aggregator, the notifier and a collector
with a delivery journal replaying a JSON Lines file of generated posts at a steady pace. While it
runs, the collector, the broker, one classifier, the aggregator and the notifier are each killed
with SIGKILL and restarted, a few seconds apart. The collector runs with --once, which with a
journal ends only once every post it took in has been acknowledged (counted). Then the per-topic
totals in Redis (all-time hash and the sum of the hour buckets) must equal the counts computed
here from the input, exactly, including a topic that matches every post (the number of distinct
posts); `agg:processed` counts re-deliveries too, so it is only bounded below. Finally every
service stops on SIGTERM with status 0.

Size and pace: ESC_CHAOS_POSTS (default 100000) posts at ESC_CHAOS_RATE posts/s (default 5000).

usage: test_chaos.py BINDIR   (BINDIR is the cmake build directory)"""

import datetime as dt
import json
import os
import re
import shutil
import signal
import sys
import time
import unittest
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import escucha_test as et  # noqa: E402

BINDIR = None
UTC = dt.timezone.utc
POSTS = int(os.environ.get("ESC_CHAOS_POSTS", "100000"))
RATE = int(os.environ.get("ESC_CHAOS_RATE", "5000"))
KILL_EVERY_S = 3.0

# (text, topic keys it matches besides "todo/todas"). Distinct words, so matching is unambiguous.
TEMPLATES = [
    ("El congreso vota la reforma hoy", ["gob/congreso"]),
    ("Nueva elección regional anunciada", ["gob/elecciones"]),
    ("La informalidad laboral sigue creciendo", ["dev/informalidad"]),
    ("Digitalización del congreso con firma electrónica", ["gob/congreso", "dev/digital"]),
    ("Partido de fútbol esta noche", []),
    ("Elecciones y digitalización: voto electrónico", ["gob/elecciones", "dev/digital"]),
    ("Un día tranquilo en la ciudad", []),
]
TOPICS = ["gob/congreso", "gob/elecciones", "dev/informalidad", "dev/digital", "todo/todas"]


def build_input(path):
    """Writes POSTS posts spread over a week; returns the expected count per topic."""
    expected = {t: 0 for t in TOPICS}
    start = dt.datetime(2026, 10, 5, 0, 0, tzinfo=UTC)  # in the past: no event time is clamped
    step_ms = 7 * 24 * 3600 * 1000 // POSTS
    with open(path, "w") as f:
        for i in range(POSTS):
            text, topics = TEMPLATES[(i * 7919) % len(TEMPLATES)]
            when = start + dt.timedelta(milliseconds=i * step_ms)
            f.write(json.dumps({
                "id": "chaos-%d" % i, "platform": "mastodon" if i % 3 else "bluesky",
                "author": {"handle": "@u%d@example.org" % (i % 500), "followers": i % 1000},
                "text": "%s #%d" % (text, i % 97), "lang": "es",
                "created_at": int(when.timestamp() * 1000),
                "likes": i % 5, "reposts": i % 3, "replies": i % 2,
            }, ensure_ascii=False) + "\n")
            for t in topics + ["todo/todas"]:
                expected[t] += 1
    return expected


def config(work, redis_sock, ports, source):
    return {
        "deployment": "chaos",
        "redis": {"unix_socket": redis_sock, "prefix": "esc"},
        "bus": {k: "tcp://127.0.0.1:%d" % ports[k]
                for k in ("collect", "classify", "aggregate", "notify", "ack", "ack_pub")},
        "sources": [{"name": "replay", "type": "jsonl", "path": source, "rate": RATE}],
        "teams": [
            {"id": "gob", "name": "Gobernanza", "language": "es", "timezone": "America/Lima",
             "topics": [
                 {"id": "congreso", "name": "Congreso", "keywords": ["congreso"]},
                 {"id": "elecciones", "name": "Elecciones",
                  "keywords": ["elección", "elecciones"]},
             ]},
            {"id": "dev", "name": "Development", "language": "en", "timezone": "America/Lima",
             "topics": [
                 {"id": "informalidad", "name": "Informalidad", "keywords": ["informalidad"]},
                 {"id": "digital", "name": "Digital", "keywords": ["digitalización"]},
             ]},
            {"id": "todo", "name": "Todo", "language": "es", "timezone": "America/Lima",
             "topics": [
                 {"id": "todas", "name": "Todas",
                  "query": "platform:mastodon OR platform:bluesky"},
             ]},
        ],
        "collector": {"journal_dir": os.path.join(work, "journal"), "redelivery_ms": 2000,
                      "redelivery_max_ms": 8000, "grace_ms": 5000,
                      "metrics_listen": "127.0.0.1:%d" % ports["metrics_collector"]},
        "broker": {"grace_ms": 2000},
        "aggregator": {"flush_ms": 200, "grace_ms": 10000},
        "classifier": {"grace_ms": 5000},
        "notifier": {"outbox": os.path.join(work, "outbox"), "grace_ms": 5000},
    }


class ChaosTest(unittest.TestCase):
    def setUp(self):
        # restarted services leave their log file objects to the garbage collector
        warnings.simplefilter("ignore", ResourceWarning)
        self.work = et.make_workdir("escucha-chaos-")
        self.redis = et.Redis(self.work)
        self.svc = et.Services(BINDIR, self.work)
        self.generation = {}

    def tearDown(self):
        self.svc.kill_all()
        self.redis.stop()
        if not self._outcome.result.errors and not self._outcome.result.failures:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            et.dump_logs(self.work, "chaos")

    def start(self, name, service, *args):
        """Starts (or restarts) a service; each run gets its own log file name."""
        n = self.generation.get(name, 0)
        self.generation[name] = n + 1
        self.svc.start("%s.%d" % (name, n), service, "--config", self.cfg, *args)
        self.svc.procs[name] = self.svc.procs["%s.%d" % (name, n)]
        return self.svc.procs[name]

    def kill_and_restart(self, name, service, *args):
        p = self.svc.procs[name]
        self.assertIsNone(p.poll(), "%s died before its turn" % name)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        time.sleep(0.3)
        self.start(name, service, *args)
        print("chaos: killed and restarted %s" % name, file=sys.stderr)

    def logs(self, name):
        return "".join(self.svc.log("%s.%d" % (name, n))
                       for n in range(self.generation.get(name, 0)))

    def test_every_service_killed_counts_exact(self):
        t_begin = time.time()
        source = os.path.join(self.work, "posts.jsonl")
        expected = build_input(source)
        ports = {k: et.free_port() for k in ("collect", "classify", "aggregate", "notify",
                                             "ack", "ack_pub", "metrics_collector")}
        self.cfg = os.path.join(self.work, "escucha.json")
        et.write_json(self.cfg, config(self.work, self.redis.sock, ports, source))
        for service in ("broker", "classifier", "aggregator", "notifier", "collector"):
            r = self.svc.run(service, "--config", self.cfg, "--check-config")
            self.assertEqual(r.returncode, 0, "%s --check-config: %s" % (service, r.stderr))

        self.start("notifier", "notifier")
        self.start("aggregator", "aggregator")
        self.start("classifier1", "classifier")
        self.start("classifier2", "classifier")
        self.start("broker", "broker")
        self.start("collector", "collector", "--once")
        r = self.redis.client()
        et.wait_for(lambda: int(r.cmd("GET", "esc:agg:processed") or 0) > 0, 30,
                    "the first posts to be counted")

        # One service killed with SIGKILL and restarted every KILL_EVERY_S, mid-stream.
        for name, service, args in (("collector", "collector", ("--once",)),
                                    ("broker", "broker", ()),
                                    ("classifier1", "classifier", ()),
                                    ("aggregator", "aggregator", ()),
                                    ("notifier", "notifier", ())):
            time.sleep(KILL_EVERY_S)
            self.kill_and_restart(name, service, *args)

        # --once with a journal: the collector exits once every post is acknowledged.
        budget = 30 + 2.5 * POSTS / RATE
        rc = self.svc.procs["collector"].wait(budget)
        self.assertEqual(rc, 0, self.logs("collector")[-3000:])

        r = self.redis.client()
        got = {}
        for topic in TOPICS:
            got[topic] = int(r.hgetall("esc:t:{%s}" % topic).get("posts", 0))
        self.assertEqual(got, expected)
        hours = r.cmd("KEYS", "esc:c:{gob/congreso}:h:*")
        self.assertEqual(sum(int(r.cmd("HGET", h, "posts")) for h in hours),
                         expected["gob/congreso"])
        processed = int(r.cmd("GET", "esc:agg:processed"))
        self.assertGreaterEqual(processed, POSTS)

        # The failures really happened mid-stream and were recovered from.
        col = self.logs("collector")
        self.assertRegex(col, r"journal opened .* unacked=[1-9]")
        agg = self.logs("aggregator")
        resent = sum(int(x) for x in re.findall(r"posts sent again.* count=(\d+)", col))
        print("chaos: posts=%d processed=%d (re-deliveries counted once) resent=%d in %.1fs"
              % (POSTS, processed, resent, time.time() - t_begin), file=sys.stderr)
        self.assertIn("acknowledgements on", agg)

        # Everything stops cleanly, upstream first.
        for name in ("broker", "classifier1", "classifier2", "aggregator", "notifier"):
            self.assertEqual(self.svc.stop(name, timeout=30), 0,
                             "%s: %s" % (name, self.logs(name)[-2000:]))
        # Nothing more was counted while draining.
        for topic in TOPICS:
            self.assertEqual(int(r.hgetall("esc:t:{%s}" % topic).get("posts", 0)),
                             expected[topic], topic)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    BINDIR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
