"""End-to-end test of bus encryption (ZeroMQ CURVE) with the real binaries: broker, two
classifiers and the aggregator on CURVE endpoints, keys made with `escucha-broker
--curve-keygen`. The authorized pipeline counts every post exactly; a classifier whose key is
not authorized gets nothing, and both sides log why.

usage: test_curve.py BINDIR"""

import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import escucha_test as et  # noqa: E402

BINDIR = None
N_POSTS = 200


class CurveTest(unittest.TestCase):
    def setUp(self):
        self.work = et.make_workdir("escucha-curve-")
        self.redis = et.Redis(self.work)
        self.svc = et.Services(BINDIR, self.work)

    def tearDown(self):
        self.svc.kill_all()
        self.redis.stop()
        if not self._outcome.result.errors and not self._outcome.result.failures:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            et.dump_logs(self.work, "curve")

    def keygen(self, name):
        path = os.path.join(self.work, name + ".key")
        r = subprocess.run([self.svc.exe("broker"), "--curve-keygen", path], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        public = r.stdout.strip()
        self.assertEqual(len(public), 40)
        return path, public

    def test_curve_pipeline_and_refusal(self):
        server_key, server_pub = self.keygen("server")
        keys = {name: self.keygen(name) for name in ("collector", "classifier", "intruder")}
        authorized = os.path.join(self.work, "authorized")
        with open(authorized, "w") as f:
            f.write("# escucha processes allowed on the bus\n")
            f.write(keys["collector"][1] + "\n" + keys["classifier"][1] + "\n")
        ports = {k: et.free_port() for k in ("collect", "classify", "aggregate", "notify")}
        posts = os.path.join(self.work, "posts.jsonl")
        with open(posts, "w") as f:
            for i in range(N_POSTS):
                f.write(json.dumps({"id": "c%d" % i, "platform": "mastodon",
                                    "text": "El congreso debate la reforma %d" % i,
                                    "created_at": 1794837780000 + i * 1000}) + "\n")
        cfg = os.path.join(self.work, "escucha.json")
        et.write_json(cfg, {
            "redis": {"unix_socket": self.redis.sock},
            "bus": dict({k: "tcp://127.0.0.1:%d" % p for k, p in ports.items()},
                        curve_endpoints="collect,classify,aggregate",
                        curve_server_secret_file=server_key, curve_server_public=server_pub,
                        curve_authorized_file=authorized),
            "sources": [{"name": "replay", "type": "jsonl", "path": posts}],
            "teams": [{"id": "gob", "topics": [{"id": "congreso", "keywords": ["congreso"]}]}],
            "aggregator": {"flush_ms": 100},
        })
        s = self.svc

        def env_for(name):
            return {"ESC_BUS_CURVE_CLIENT_SECRET_FILE": keys[name][0]}

        s.env = dict(os.environ)
        s.start("aggregator", "aggregator", "--config", cfg)
        s.start("broker", "broker", "--config", cfg)
        s.env = dict(os.environ, **env_for("intruder"))
        s.start("intruder", "classifier", "--config", cfg)
        s.env = dict(os.environ, **env_for("classifier"))
        s.start("classifier", "classifier", "--config", cfg)
        s.env = dict(os.environ, **env_for("collector"))
        s.start("collector", "collector", "--config", cfg, "--once")
        self.assertEqual(s.procs["collector"].wait(60), 0, s.log("collector"))
        r = self.redis.client()
        et.wait_for(lambda: int(r.cmd("GET", "esc:agg:processed") or 0) >= N_POSTS, 60,
                    "every post counted through the encrypted bus")
        self.assertEqual(int(r.hgetall("esc:t:{gob/congreso}")["posts"]), N_POSTS)
        et.wait_for(lambda: "server does not authorize our key" in s.log("intruder"), 20,
                    "the intruder to say why it is refused")
        self.assertIn("bus refused a client: its key is not in bus.curve_authorized_file",
                      s.log("broker"))
        self.assertIn(keys["intruder"][1], s.log("broker"))
        for name in ("broker", "classifier", "intruder", "aggregator"):
            self.assertEqual(s.stop(name), 0, "%s\n%s" % (name, s.log(name)))
        self.assertIn("stopped in=%d" % N_POSTS, s.log("classifier"))
        # a secret key never reaches a log
        for name in s.procs:
            log = s.log(name)
            for key in (server_key, keys["collector"][0], keys["classifier"][0]):
                with open(key) as f:
                    self.assertNotIn(f.read().strip(), log, name)

    def test_curve_bad_key_file_is_a_config_error(self):
        key, pub = self.keygen("loose")
        os.chmod(key, 0o644)
        cfg = os.path.join(self.work, "bad.json")
        et.write_json(cfg, {
            "bus": {"curve_endpoints": "all", "curve_server_secret_file": key},
            "teams": [{"id": "gob", "topics": [{"id": "congreso", "keywords": ["congreso"]}]}],
        })
        r = self.svc.run("broker", "--config", cfg, "--check-config")
        self.assertEqual(r.returncode, 2)
        self.assertIn("bus.curve_server_secret_file", r.stderr)


if __name__ == "__main__":
    BINDIR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
