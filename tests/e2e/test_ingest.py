"""End-to-end test of push ingest (source type "ingest") with real parts: the escucha-collector
binary serving POST /ingest on a free port, the broker, a classifier, the aggregator and a
private redis-server. Asserts the HTTP answers (401 without or with a wrong token, 404/405,
400 for an empty, malformed or invalid body, 413 for a body over max_body, whether announced
by Content-Length or sent chunked, 503 for more posts than the queue holds, 202 with the
rejected posts named for a single post, an array and JSON Lines), that exactly the accepted
posts are counted in Redis, that every service exits 0 on SIGTERM and that the token never
reaches a log.

With a delivery journal (collector.journal_dir) a 202 means the posts are journaled: a collector
killed with SIGKILL right after the 202 (the aggregator hung, so nothing was acknowledged) sends
them again from its journal when restarted, and each is counted exactly once.

usage: test_ingest.py BINDIR   (BINDIR is the cmake build directory)"""

import http.client
import json
import os
import re
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import escucha_test as et  # noqa: E402

BINDIR = None
TOKEN = "e2e-ingest-t0ken-9c1d"
MAX_BODY = 4096
QUEUE_MAX = 10


def post(i, text="Café y congreso en Lima 🗳️", **extra):
    p = {"id": "ing-%d" % i, "platform": "forum", "text": text,
         "created_at": "2026-11-16T14:%02d:00Z" % (i % 60), "author": "@ana%d" % i}
    p.update(extra)
    return p


def config(redis_sock, ports, journal_dir=None):
    cfg = {
        "deployment": "e2e-ingest",
        "redis": {"unix_socket": redis_sock, "prefix": "esc"},
        "bus": {k: "tcp://127.0.0.1:%d" % p for k, p in ports.items()},
        "sources": [
            {"name": "empuje", "type": "ingest", "listen": "127.0.0.1:0",
             "token_env": "E2E_INGEST_TOKEN", "max_body": MAX_BODY, "queue_max": QUEUE_MAX},
        ],
        "teams": [
            {"id": "t", "name": "T", "language": "es", "timezone": "America/Lima",
             "topics": [
                 {"id": "cafe", "name": "Café", "keywords": ["café"]},
                 {"id": "futbol", "name": "Fútbol", "keywords": ["fútbol"]},
             ]},
        ],
        "collector": {"grace_ms": 2000},
        "aggregator": {"flush_ms": 200},
    }
    if journal_dir is not None:
        cfg["collector"].update({"journal_dir": journal_dir, "redelivery_ms": 2000})
    return cfg


class IngestTest(unittest.TestCase):
    def setUp(self):
        self.work = et.make_workdir("escucha-e2e-ingest-")
        self.redis = et.Redis(self.work)
        self.svc = et.Services(BINDIR, self.work, env={"E2E_INGEST_TOKEN": TOKEN})
        self.port = None

    def tearDown(self):
        self.svc.kill_all()
        self.redis.stop()
        if not self._outcome.result.errors and not self._outcome.result.failures:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            et.dump_logs(self.work, "e2e")

    def request(self, body, token=TOKEN, method="POST", path="/ingest", chunked=False,
                auth=None):
        """Sends one request; returns (status, headers, parsed JSON body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        elif token is not None:
            headers["Authorization"] = "Bearer " + token
        if isinstance(body, str):
            body = body.encode()
        if chunked:
            # Pieces of 1 KiB without a Content-Length: only the bytes read tell the size.
            pieces = [body[i:i + 1024] for i in range(0, len(body), 1024)]
            conn.request(method, path, body=iter(pieces), headers=headers, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        conn.close()
        self.assertEqual(r.getheader("Content-Type"), "application/json", raw)
        return r.status, r, json.loads(raw)

    def assertError(self, answer, status, contains):
        got_status, _, body = answer
        self.assertEqual(got_status, status, body)
        self.assertEqual(list(body), ["error"], body)
        self.assertIn(contains, body["error"])

    def test_ingest_end_to_end(self):
        ports = {k: et.free_port() for k in ("collect", "classify", "aggregate", "notify")}
        cfg = os.path.join(self.work, "escucha.json")
        et.write_json(cfg, config(self.redis.sock, ports))
        for service in ("broker", "classifier", "aggregator", "collector"):
            r = self.svc.run(service, "--config", cfg, "--check-config")
            self.assertEqual(r.returncode, 0, "%s --check-config: %s" % (service, r.stderr))
        s = self.svc
        s.start("aggregator", "aggregator", "--config", cfg)
        s.start("classifier", "classifier", "--config", cfg)
        s.start("broker", "broker", "--config", cfg)
        s.start("collector", "collector", "--config", cfg)
        m = et.wait_for(lambda: re.search(r"ingest listening source=empuje \S+ port=(\d+)",
                                          s.log("collector")), 20, "the ingest endpoint")
        self.port = int(m.group(1))
        self.assertNotEqual(self.port, 0)
        one = json.dumps(post(1))

        # Refused before anything is read: no token, a wrong one, another scheme.
        status, resp, body = self.request(one, token=None)
        self.assertEqual(status, 401, body)
        self.assertEqual(resp.getheader("WWW-Authenticate"), "Bearer")
        self.assertIn("bearer token", body["error"])
        self.assertError(self.request(one, token=TOKEN + "x"), 401, "bearer token")
        self.assertError(self.request(one, token=TOKEN[:-1]), 401, "bearer token")
        self.assertError(self.request(one, auth="Basic " + TOKEN), 401, "bearer token")
        self.assertError(self.request(one, path="/other"), 404, "POST /ingest")
        self.assertError(self.request(b"", method="GET"), 405, "use POST")

        # Bodies refused as a whole: empty, malformed, one invalid post, too large.
        self.assertError(self.request(b"  \n"), 400, "empty body")
        self.assertError(self.request('{"id": "x", "text": '), 400, "malformed JSON at line 1")
        self.assertError(self.request('[{"id": 1}, '), 400, "malformed JSON")
        self.assertError(self.request(json.dumps({"id": "9", "platform": "forum", "text": "t"})),
                         400, "invalid post: field 'created_at': missing")
        self.assertError(self.request(json.dumps(post(2, text=5))), 400,
                         "invalid post: field 'text': expected string, got integer")
        big = json.dumps(post(3, text="x" * MAX_BODY))
        self.assertError(self.request(big), 413, "request body too large")
        self.assertError(self.request(big, chunked=True), 413, "request body too large")
        # More posts than the queue can ever hold: 503, nothing queued.
        status, resp, body = self.request(json.dumps([post(100 + i) for i in range(QUEUE_MAX + 1)]
                                                     ).replace(": ", ":").replace(", ", ","))
        self.assertEqual(status, 503, body)
        self.assertEqual(resp.getheader("Retry-After"), "1")
        self.assertEqual(body, {"error": "queue full, retry later", "retry_after": 1})

        # Accepted: a single post, an array with a bad element, JSON Lines with a bad line.
        status, _, body = self.request(one)
        self.assertEqual((status, body), (202, {"accepted": 1, "rejected": []}))
        arr = [post(10), {"id": "11", "platform": "forum", "text": "sin fecha"},
               post(12, text="Partido de fútbol"), post(13, likes=-1)]
        status, _, body = self.request(json.dumps(arr, ensure_ascii=False))
        self.assertEqual(status, 202, body)
        self.assertEqual(body, {"accepted": 2, "rejected": [
            {"index": 1, "error": "field 'created_at': missing"},
            {"index": 3, "error": "field 'likes': must be a non-negative integer"}]})
        lines = "\n".join([json.dumps(post(20), ensure_ascii=False), "",
                           '{"id": "21", "platform": "forum"',
                           json.dumps(post(22, text="fútbol y café"), ensure_ascii=False),
                           json.dumps(post(23)) + "\r", ""])
        status, _, body = self.request(lines)
        self.assertEqual(status, 202, body)
        self.assertEqual(body["accepted"], 3, body)
        self.assertEqual([r["index"] for r in body["rejected"]], [1], body)
        self.assertTrue(body["rejected"][0]["error"].startswith("invalid JSON: "), body)
        # The same id again is a new post for ingest (dedupe is downstream, by id).
        status, _, body = self.request(json.dumps([post(30), post(31)]), chunked=True)
        self.assertEqual((status, body), (202, {"accepted": 2, "rejected": []}))

        # Exactly the accepted posts are counted: 1 + 2 + 3 + 2.
        accepted = 8
        cafe = 7      # every accepted post but post 12 mentions café
        futbol = 2    # posts 12 and 22
        r = self.redis.client()
        et.wait_for(lambda: int(r.cmd("GET", "esc:agg:processed") or 0) >= accepted, 30,
                    "the %d accepted posts to be counted" % accepted)
        time.sleep(1)
        self.assertEqual(int(r.cmd("GET", "esc:agg:processed")), accepted)
        self.assertEqual(int(r.hgetall("esc:t:{t/cafe}").get("posts", 0)), cafe)
        self.assertEqual(int(r.hgetall("esc:t:{t/futbol}").get("posts", 0)), futbol)

        for name in ("collector", "broker", "classifier", "aggregator"):
            self.assertEqual(s.stop(name), 0, "%s exit status\n%s" % (name, s.log(name)))
        log = s.log("collector")
        self.assertIn("stopped sent=%d" % accepted, log)
        self.assertRegex(log, r"ingest request refused status=401 .*reason=no token")
        self.assertRegex(log, r"ingest request refused status=401 .*reason=wrong token")
        for name in s.procs:
            self.assertNotIn(TOKEN, s.log(name), name)


    def test_ingest_journaled_202_survives_sigkill(self):
        ports = {k: et.free_port()
                 for k in ("collect", "classify", "aggregate", "notify", "ack", "ack_pub")}
        cfg = os.path.join(self.work, "escucha.json")
        et.write_json(cfg, config(self.redis.sock, ports, os.path.join(self.work, "journal")))
        s = self.svc
        s.start("aggregator", "aggregator", "--config", cfg)
        s.start("classifier", "classifier", "--config", cfg)
        s.start("broker", "broker", "--config", cfg)
        s.start("collector", "collector", "--config", cfg)
        m = et.wait_for(lambda: re.search(r"ingest listening source=empuje \S+ port=(\d+) "
                                          r"accepted_means=journaled", s.log("collector")), 20,
                        "the ingest endpoint")
        self.port = int(m.group(1))
        # Hung aggregator: nothing is acknowledged, so only the journal can bring the posts back.
        s.pause("aggregator")
        n = QUEUE_MAX
        status, _, body = self.request(json.dumps([post(200 + i) for i in range(n)]))
        self.assertEqual((status, body), (202, {"accepted": n, "rejected": []}))
        s.procs["collector"].kill()  # SIGKILL right after the 202
        s.procs["collector"].wait()
        s.start("collector2", "collector", "--config", cfg)
        s.resume("aggregator")
        col = et.wait_for(lambda: re.search(r"journal opened .* unacked=(\d+)",
                                            s.log("collector2")), 20, "the journal to be read")
        self.assertEqual(int(col.group(1)), n, s.log("collector2"))
        r = self.redis.client()
        et.wait_for(lambda: int(r.hgetall("esc:t:{t/cafe}").get("posts", 0)) >= n, 30,
                    "the %d posts to be counted" % n)
        # The copies sent before the kill (if they left the process) and the journal's: once.
        time.sleep(2)
        self.assertEqual(int(r.hgetall("esc:t:{t/cafe}").get("posts", 0)), n)
        self.assertRegex(s.log("collector2"), r"posts sent again.* count=%d unacked=" % n)
        for name in ("collector2", "broker", "classifier", "aggregator"):
            self.assertEqual(s.stop(name), 0, "%s exit status\n%s" % (name, s.log(name)))
        for name in s.procs:
            self.assertNotIn(TOKEN, s.log(name), name)


if __name__ == "__main__":
    BINDIR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
