"""End-to-end test of the platform connectors with real parts: three platform fixture servers
(tests/support/platform_fixture.py serving a Mastodon hashtag timeline, an RSS feed and the
Algolia HN API from tests/data/platforms/), a private redis-server, the collector polling them,
the broker, a classifier and the aggregator. Asserts exact per-topic counts in Redis (posts
repeated across pages, polls and feed versions counted once), the cursors the collector keeps,
that a restarted collector adds nothing, that every service exits 0 on SIGTERM and that the
platform token never reaches a log.

usage: test_connectors.py BINDIR   (BINDIR is the cmake build directory)"""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import escucha_test as et  # noqa: E402

BINDIR = None
TOKEN = "s3cr3t-t0ken"  # what tests/data/platforms/mastodon_paging.json expects
DATA = os.path.join(HERE, "..", "data", "platforms")
FIXTURE = os.path.join(HERE, "..", "support", "platform_fixture.py")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

UNIQUE = {"mastodon": 7, "rss": 4, "hn": 7}


class Fixture:
    def __init__(self, scenario, workdir):
        self.log = os.path.join(workdir, os.path.basename(scenario) + ".requests")
        self.proc = subprocess.Popen([PY, FIXTURE, os.path.join(DATA, scenario), "--log",
                                      self.log], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError("fixture did not start: %r" % line)
        self.base = "http://127.0.0.1:%d" % int(line.split()[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc.stdout.close()


def config(redis_sock, ports, fx):
    return {
        "deployment": "e2e-connectors",
        "redis": {"unix_socket": redis_sock, "prefix": "esc"},
        "bus": {k: "tcp://127.0.0.1:%d" % p for k, p in ports.items()},
        "sources": [
            {"name": "masto", "type": "mastodon", "instance": fx["mastodon"].base,
             "tag": "rustlang,rust", "limit": 3, "since": "2026-09-21",
             "token_env": "E2E_MASTO_TOKEN", "interval_s": 1, "page_delay_ms": 0},
            {"name": "blog", "type": "rss", "url": fx["rss"].base + "/feed.xml",
             "interval_s": 1},
            {"name": "hn", "type": "hn", "base_url": fx["hn"].base, "query": "rust",
             "hits_per_page": 3, "since": "2026-09-21", "interval_s": 1, "page_delay_ms": 0},
        ],
        "teams": [
            {"id": "dev", "name": "Dev", "language": "es", "timezone": "America/Lima",
             "topics": [
                 {"id": "rust", "name": "Rust", "keywords": ["rustlang"]},
                 {"id": "cafe", "name": "Café", "keywords": ["café"]},
                 {"id": "nada", "name": "Nothing", "keywords": ["zzzzqqq"]},
             ]},
        ],
        "collector": {"grace_ms": 2000},
        "aggregator": {"flush_ms": 200},
    }


class ConnectorsTest(unittest.TestCase):
    def setUp(self):
        self.work = et.make_workdir("escucha-e2e-conn-")
        self.redis = et.Redis(self.work)
        self.fx = {}
        for name, scenario in (("mastodon", "mastodon_paging.json"), ("rss", "rss_feed.json"),
                               ("hn", "hn.json")):
            self.fx[name] = Fixture(scenario, self.work)
        self.svc = et.Services(BINDIR, self.work, env={"E2E_MASTO_TOKEN": TOKEN})

    def tearDown(self):
        self.svc.kill_all()
        for f in self.fx.values():
            f.stop()
        self.redis.stop()
        if not self._outcome.result.errors and not self._outcome.result.failures:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            et.dump_logs(self.work, "e2e")

    def test_connectors_end_to_end(self):
        ports = {k: et.free_port() for k in ("collect", "classify", "aggregate", "notify")}
        cfg = os.path.join(self.work, "escucha.json")
        et.write_json(cfg, config(self.redis.sock, ports, self.fx))
        for service in ("broker", "classifier", "aggregator", "collector"):
            r = self.svc.run(service, "--config", cfg, "--check-config")
            self.assertEqual(r.returncode, 0, "%s --check-config: %s" % (service, r.stderr))

        s = self.svc
        s.start("aggregator", "aggregator", "--config", cfg)
        s.start("classifier", "classifier", "--config", cfg)
        s.start("broker", "broker", "--config", cfg)
        s.start("collector", "collector", "--config", cfg)
        r = self.redis.client()
        total = sum(UNIQUE.values())
        et.wait_for(lambda: int(r.cmd("GET", "esc:agg:processed") or 0) >= total, 60,
                    "all %d posts to be counted" % total)
        # A few more polls of every source: repeats only, nothing new may be counted.
        time.sleep(3)
        self.assertEqual(int(r.cmd("GET", "esc:agg:processed")), total)
        for topic, want in (("dev/rust", total), ("dev/cafe", total)):
            got = r.hgetall("esc:t:{%s}" % topic)
            self.assertEqual(int(got.get("posts", 0)), want, topic)
        self.assertEqual(int(r.hgetall("esc:t:{dev/nada}").get("posts", 0)), 0)
        self.assertEqual(r.cmd("GET", "esc:col:cursor:masto"), "113900000000000007")
        self.assertEqual(r.cmd("GET", "esc:col:cursor:hn"), "1790000420")
        self.assertEqual(json.loads(r.cmd("GET", "esc:col:cursor:blog"))["etag"], '"v2"')
        self.assertEqual(r.cmd("EXISTS", "esc:col:seen:mastodon:https://remote.example/users/u1/"
                                         "statuses/113900000000000001"), 1)

        # A restarted collector resumes from the cursors: still nothing new.
        self.assertEqual(s.stop("collector"), 0, s.log("collector"))
        first_log = s.log("collector")
        s.start("collector", "collector", "--config", cfg)
        et.wait_for(lambda: "resuming from stored cursor source=hn" in s.log("collector"), 20,
                    "the restarted collector to read its cursors")
        time.sleep(3)
        self.assertEqual(int(r.cmd("GET", "esc:agg:processed")), total)

        for name in ("collector", "broker", "classifier", "aggregator"):
            self.assertEqual(s.stop(name), 0, "%s exit status\n%s" % (name, s.log(name)))
        for name in s.procs:
            self.assertNotIn(TOKEN, s.log(name), name)
        self.assertNotIn(TOKEN, first_log)
        self.assertIn("stopped sent=0", s.log("collector"))


if __name__ == "__main__":
    BINDIR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
