"""Component tests of escucha-api: the real binary against a private redis-server holding data
written in the aggregator's documented shape (docs/redis-schema.md). Covers every endpoint,
the error shape, ETags, feeds, the live stream, topic editing with the validator contract, the
audit list, limits (body size, rate, bad tokens), CORS, static files, Redis going away, and the
team-isolation matrix: a token of one team gets 404 and no data on every endpoint of another
team, and changes nothing there.

usage: test_api.py API_BINARY VALIDATOR   (Debian's /usr/bin/python3, stdlib only)
VALIDATOR is tests/fake_validator.py (same contract, plus a hang for the timeout test); with
ESC_CLASSIFIER_BIN set, the contract is also checked against the real escucha-classifier."""

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "support"))
import escucha_test as et  # noqa: E402

API_BIN = None
VALIDATOR = None
CLASSIFIER = os.environ.get("ESC_CLASSIFIER_BIN", "")

TOKENS = {
    "gob-viewer": ("ana", "gob", "viewer"),
    "gob-editor": ("eva", "gob", "editor"),
    "gob-feed": ("rss", "gob", "feed"),
    "dev-viewer": ("dan", "dev", "viewer"),
    "dev-editor": ("dora", "dev", "editor"),
    "root-admin": ("root", "*", "admin"),
}
SECRET = {k: "tok-%s-0123456789abcdef" % k for k in TOKENS}

DAY = 1794873600            # 2026-11-17T00:00:00Z
H10 = DAY + 10 * 3600       # 10:00 that day


def hash_or_none(redis, key):
    """HGETALL of key, or None when it does not exist."""
    r = redis.client()
    try:
        return r.hgetall(key) or None
    finally:
        r.sock.close()


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def token_entry(key):
    name, team, role = TOKENS[key]
    return {"name": name, "team": team, "role": role, "sha256": sha(SECRET[key])}


class Api:
    """escucha-api on a free port with its log in the work dir."""

    def __init__(self, workdir, cfg, name="api"):
        self.cfg_path = os.path.join(workdir, name + ".json")
        et.write_json(self.cfg_path, cfg)
        self.log_path = os.path.join(workdir, name + ".log")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen([API_BIN, "--config", self.cfg_path, "--log-level", "debug"],
                                     stdout=subprocess.DEVNULL, stderr=self.log_file)
        self.port = et.wait_for(self._port, 10, "escucha-api to listen")

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError("escucha-api exited: " + self.log())
        m = re.search(r"listening url=http://[0-9.]+:(\d+)/", self.log())
        return int(m.group(1)) if m else None

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        """SIGTERM; returns the exit status. The log must not hold any token."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        log = self.log()
        for secret in SECRET.values():
            if secret in log:
                raise AssertionError("a token is in the log " + self.log_path)
        return self.proc.returncode

    def req(self, method, path, token=None, body=None, headers=None, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + SECRET.get(token, token)
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), payload

    def json(self, method, path, token=None, body=None, headers=None):
        status, hdrs, payload = self.req(method, path, token, body, headers)
        return status, hdrs, (json.loads(payload) if payload else None)


def seed(r):
    """Data in the aggregator's shape for gob/congreso, gob/elecciones and dev/anemia."""
    # gob/congreso: hours 10, 11, 13 of DAY
    for hour, posts, reach in ((10, 5, 1000), (11, 7, 300), (13, 2, 50)):
        t = DAY + hour * 3600
        r.cmd("HSET", "esc:c:{gob/congreso}:h:%d" % t, "posts", posts, "reach", reach,
              "likes", posts * 2, "reposts", posts, "replies", 1, "engagement", posts * 3 + 1,
              "sentiment_pos", posts - 1, "sentiment_neu", 1, "sentiment_neg", 0,
              "sentiment_milli", posts * 400, "lang:es", posts - 1, "lang:en", 1,
              "platform:mastodon", posts)
    for minute, posts in ((0, 2), (1, 3)):
        r.cmd("HSET", "esc:c:{gob/congreso}:m:%d" % (H10 + minute * 60), "posts", posts,
              "reach", 10, "likes", 0, "reposts", 0, "replies", 0, "engagement", 0)
    r.cmd("HSET", "esc:c:{gob/congreso}:d:%d" % DAY, "posts", 14, "reach", 1350, "likes", 28,
          "reposts", 14, "replies", 3, "engagement", 45, "lang:es", 11, "lang:en", 3,
          "platform:mastodon", 14, "sentiment_pos", 11, "sentiment_neu", 3, "sentiment_neg", 0,
          "sentiment_milli", 5600)
    # the week before, for week-over-week
    r.cmd("HSET", "esc:c:{gob/congreso}:h:%d" % (DAY - 7 * 86400 + 10 * 3600), "posts", 7)
    r.cmd("HSET", "esc:t:{gob/congreso}", "posts", 21, "reach", 1350, "likes", 28, "reposts", 14,
          "replies", 3, "engagement", 45, "lang:es", 18, "platform:mastodon", 21)
    r.cmd("HSET", "esc:c:{gob/elecciones}:h:%d" % H10, "posts", 6, "reach", 60)
    r.cmd("HSET", "esc:c:{dev/anemia}:h:%d" % H10, "posts", 99, "reach", 9999, "lang:qu", 99)
    r.cmd("HSET", "esc:c:{dev/anemia}:d:%d" % DAY, "posts", 99)
    r.cmd("HSET", "esc:t:{dev/anemia}", "posts", 99)
    # top lists of DAY and the day before
    top = "esc:top:{gob/congreso}:%s:%d"
    r.cmd("ZADD", top % ("authors", DAY), "5.5", "@ana", "2.0", "@beto")
    r.cmd("ZADD", top % ("authors", DAY - 86400), "1.5", "@beto")
    r.cmd("HSET", top % ("authors", DAY) + ":info", "posts:@ana", 3, "reach:@ana", 900,
          "engagement:@ana", 30, "posts:@beto", 1, "reach:@beto", 10, "engagement:@beto", 2)
    r.cmd("HSET", top % ("authors", DAY - 86400) + ":info", "posts:@beto", 2, "reach:@beto", 20,
          "engagement:@beto", 4)
    r.cmd("ZADD", top % ("hashtags", DAY), 9, "congresoperu", 4, "vacancia")
    r.cmd("ZADD", top % ("terms", DAY), 12, "congreso", 5, "vacancia")
    r.cmd("ZADD", top % ("posts", DAY), 40, "mastodon:p1", 3, "mastodon:p2")
    r.cmd("HSET", "esc:post:{gob/congreso}:mastodon:p1", "text",
          "<script>alert(1)</script> el congreso", "author", "@ana", "author_name", "Ana",
          "url", "https://example.org/p1", "platform", "mastodon", "created_at",
          str(H10 * 1000), "likes", 30, "reposts", 8, "replies", 2, "engagement", 40,
          "followers", 900, "language", "es", "sentiment", "0.250")
    r.cmd("HSET", "esc:post:{gob/congreso}:mastodon:p2", "text", "otro", "author", "@beto",
          "engagement", 3)
    r.cmd("ZADD", "esc:top:{dev/anemia}:authors:%d" % DAY, 99, "@devsecret")
    # alerts, newest first
    for topic, ws in (("elecciones", H10), ("congreso", H10 + 600)):
        r.cmd("LPUSH", "esc:alerts:{gob}", json.dumps({
            "id": "gob/%s/%d" % (topic, ws * 1000), "team": "gob", "topic": topic,
            "kind": "spike", "window_start": ws * 1000, "window_end": (ws + 1800) * 1000,
            "observed": 40, "expected": 10.0, "score": 4.0}))
    r.cmd("LPUSH", "esc:alerts:{gob}", "not json")
    r.cmd("LPUSH", "esc:alerts:{dev}", json.dumps({"id": "dev/anemia/1", "team": "dev",
                                                    "topic": "anemia", "window_start": 1,
                                                    "window_end": 2}))
    # latest posts (what aggregator/live.c writes)
    for i in range(3):
        r.cmd("LPUSH", "esc:latest:{gob/congreso}", json.dumps({
            "id": "l%d" % i, "platform": "mastodon", "author": "@ana",
            "url": "https://example.org/l%d" % i, "created_at": (H10 + i) * 1000,
            "text": "latest %d <b>&</b> congreso" % i, "topics": ["congreso"]}))
    r.cmd("LPUSH", "esc:latest:{dev/anemia}", json.dumps({"id": "d1", "text": "dev secret"}))


class ApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="esc-api-")
        cls.redis = et.Redis(cls.dir)
        cls.r = cls.redis.client()
        seed(cls.r)
        web = os.path.join(cls.dir, "web")
        os.makedirs(os.path.join(web, "assets"))
        with open(os.path.join(web, "index.html"), "w") as f:
            f.write("<!doctype html><title>escucha</title>")
        with open(os.path.join(web, "assets", "app.js"), "w") as f:
            f.write("console.log('hi')")
        with open(os.path.join(cls.dir, "secret.txt"), "w") as f:
            f.write("outside the web root")
        tokens_file = os.path.join(cls.dir, "tokens.json")
        et.write_json(tokens_file, {"tokens": [token_entry("dev-viewer"),
                                               token_entry("dev-editor")]})
        cls.base = {
            "redis": {"unix_socket": cls.redis.sock, "prefix": "esc"},
            "teams": [
                {"id": "gob", "name": "Gobernanza", "language": "es", "timezone": "America/Lima",
                 "topics": [{"id": "congreso", "name": "Congreso", "keywords": ["congreso"]},
                            {"id": "elecciones", "name": "Elecciones", "keywords": ["voto"]}]},
                {"id": "dev", "name": "Development", "language": "en",
                 "topics": [{"id": "anemia", "name": "Anemia", "keywords": ["anemia"]}]},
            ],
            "api": {"listen": "127.0.0.1:0", "web_root": web, "validator": VALIDATOR,
                    "validator_timeout_ms": 1500, "tokens_file": tokens_file,
                    "sse_keepalive_ms": 300, "rate_burst": 100000, "rate_per_s": 10000,
                    "tokens": [token_entry(k) for k in TOKENS if not k.startswith("dev-")]},
        }
        cls.api = Api(cls.dir, cls.base)

    @classmethod
    def tearDownClass(cls):
        code = cls.api.stop()
        cls.redis.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)
        if code != 0:
            raise AssertionError("escucha-api exited %r" % code)

    def get(self, path, token="gob-viewer", status=200):
        s, h, doc = self.api.json("GET", path, token)
        self.assertEqual(s, status, "%s -> %s %s" % (path, s, doc))
        return doc

    # ---- read endpoints ----------------------------------------------------------------------

    def test_me_and_teams(self):
        me = self.get("/api/v1/me")
        self.assertEqual((me["name"], me["team"], me["role"]), ("ana", "gob", "viewer"))
        self.assertEqual([t["id"] for t in me["teams"]], ["gob"])
        self.assertEqual([t["id"] for t in self.get("/api/v1/teams", "dev-viewer")["teams"]],
                         ["dev"])
        self.assertEqual([t["id"] for t in self.get("/api/v1/teams", "root-admin")["teams"]],
                         ["gob", "dev"])

    def test_team_document(self):
        t = self.get("/api/v1/teams/gob")
        self.assertEqual(t["name"], "Gobernanza")
        self.assertEqual(t["timezone"], "America/Lima")
        self.assertEqual([x["id"] for x in t["topics"]], ["congreso", "elecciones"])
        self.assertEqual(t["latest_day"], DAY)
        self.assertEqual(t["role"], "viewer")

    def test_series_hour_matches_redis(self):
        doc = self.get("/api/v1/teams/gob/topics/congreso/series?res=hour&from=%d&to=%d"
                       % (DAY, DAY + 86400))
        self.assertEqual(doc["step"], 3600)
        self.assertEqual(len(doc["t"]), 24)
        self.assertEqual(doc["t"][0], DAY)
        posts = doc["series"]["posts"]
        self.assertEqual((posts[10], posts[11], posts[12], posts[13]), (5, 7, 0, 2))
        self.assertEqual(sum(posts), 14)
        self.assertEqual(doc["series"]["reach"][10], 1000)
        self.assertEqual(doc["series"]["engagement"][11], 22)
        self.assertAlmostEqual(doc["series"]["sentiment_avg"][10], 0.4)
        self.assertIsNone(doc["series"]["sentiment_avg"][12])

    def test_series_minute_day_and_iso_times(self):
        doc = self.get("/api/v1/teams/gob/topics/congreso/series?res=minute"
                       "&from=2026-11-17T10:00:00Z&to=2026-11-17T10:05:00Z")
        self.assertEqual(doc["series"]["posts"], [2, 3, 0, 0, 0])
        doc = self.get("/api/v1/teams/gob/topics/congreso/series?res=day&from=%d&to=%d"
                       % (DAY - 86400, DAY + 86400))
        self.assertEqual(doc["series"]["posts"], [0, 14])
        # res chosen from the span: 3 hours -> minutes
        doc = self.get("/api/v1/teams/gob/topics/congreso/series?from=%d&to=%d"
                       % (H10, H10 + 3 * 3600))
        self.assertEqual(doc["res"], "minute")

    def test_series_bad_ranges(self):
        for q, code in (("res=week", "bad_range"), ("from=yesterday", "bad_range"),
                        ("from=%d&to=%d" % (DAY, DAY - 3600), "bad_range"),
                        ("res=minute&from=0&to=%d" % DAY, "bad_range")):
            s, _, doc = self.api.json("GET", "/api/v1/teams/gob/topics/congreso/series?" + q,
                                      "gob-viewer")
            self.assertEqual(s, 400, q)
            self.assertEqual(doc["error"]["code"], code)
            self.assertEqual(doc["error"]["status"], 400)
            self.assertTrue(doc["error"]["message"])

    def test_series_csv(self):
        s, h, body = self.api.req("GET", "/api/v1/teams/gob/topics/congreso/series.csv?res=hour"
                                  "&from=%d&to=%d" % (H10, H10 + 2 * 3600), "gob-viewer")
        self.assertEqual(s, 200)
        self.assertTrue(h["content-type"].startswith("text/csv"))
        self.assertIn("attachment", h["content-disposition"])
        lines = body.decode().strip().split("\r\n")
        self.assertEqual(lines[0].split(",")[:4], ["time", "unix", "posts", "reach"])
        self.assertEqual(lines[1].split(",")[:4], ["2026-11-17T10:00:00Z", str(H10), "5", "1000"])
        self.assertEqual(lines[2].split(",")[2], "7")
        self.assertEqual(len(lines), 3)

    def test_summary_splits(self):
        doc = self.get("/api/v1/teams/gob/topics/congreso/summary?res=hour&from=%d&to=%d"
                       % (DAY, DAY + 86400))
        self.assertEqual(doc["posts"], 14)
        self.assertEqual(doc["reach"], 1350)
        self.assertEqual(doc["engagement"], 5 * 3 + 1 + 7 * 3 + 1 + 2 * 3 + 1)
        self.assertEqual(doc["languages"], {"es": 11, "en": 3})
        self.assertEqual(doc["platforms"], {"mastodon": 14})
        self.assertEqual(doc["sentiment"]["positive"], 11)
        self.assertEqual(doc["sentiment"]["neutral"], 3)
        self.assertAlmostEqual(doc["sentiment"]["average"], 0.4)
        self.assertEqual(doc["peak"], {"t": DAY + 11 * 3600, "posts": 7})

    def test_totals(self):
        doc = self.get("/api/v1/teams/gob/topics/congreso/totals")
        self.assertEqual(doc["posts"], 21)
        self.assertEqual(doc["languages"], {"es": 18})

    def test_top_lists(self):
        base = "/api/v1/teams/gob/topics/congreso/top/"
        rng = "?from=%d&to=%d" % (DAY - 86400, DAY + 86400)
        doc = self.get(base + "authors" + rng)
        self.assertEqual([i["key"] for i in doc["items"]], ["@ana", "@beto"])
        self.assertEqual(doc["items"][0]["posts"], 3)
        self.assertEqual(doc["items"][0]["reach"], 900)
        self.assertEqual(doc["items"][1]["posts"], 3)       # 1 + 2 over the two days
        self.assertAlmostEqual(doc["items"][1]["score"], 3.5)
        doc = self.get(base + "hashtags" + rng + "&limit=1")
        self.assertEqual(doc["items"], [{"key": "congresoperu", "posts": 9}])
        doc = self.get(base + "terms" + rng)
        self.assertEqual(doc["items"][0], {"key": "congreso", "posts": 12})
        doc = self.get(base + "posts" + rng)
        self.assertEqual(doc["items"][0]["id"], "mastodon:p1")
        self.assertEqual(doc["items"][0]["text"], "<script>alert(1)</script> el congreso")
        self.assertEqual(doc["items"][0]["engagement"], 40)
        self.assertEqual(doc["items"][0]["created_at"], H10 * 1000)
        self.get(base + "followers" + rng, status=404)

    def test_alerts(self):
        doc = self.get("/api/v1/teams/gob/alerts")
        self.assertEqual([a["topic"] for a in doc["alerts"]], ["congreso", "elecciones"])
        doc = self.get("/api/v1/teams/gob/alerts?topic=elecciones")
        self.assertEqual(len(doc["alerts"]), 1)
        doc = self.get("/api/v1/teams/gob/alerts?from=%d&to=%d" % (H10 + 1800, DAY + 86400))
        self.assertEqual([a["topic"] for a in doc["alerts"]], ["congreso"])
        doc = self.get("/api/v1/teams/gob/alerts?limit=1")
        self.assertEqual(len(doc["alerts"]), 1)

    def test_latest(self):
        doc = self.get("/api/v1/teams/gob/topics/congreso/latest?limit=2")
        self.assertEqual([p["id"] for p in doc["posts"]], ["l2", "l1"])

    def test_overview_week_over_week(self):
        doc = self.get("/api/v1/teams/gob/overview?end=%d" % (DAY + 86400))
        congreso = doc["topics"][0]
        self.assertEqual(congreso["id"], "congreso")
        self.assertEqual(congreso["name"], "Congreso")
        self.assertEqual(congreso["posts"], 14)
        self.assertEqual(congreso["posts_prev"], 7)
        self.assertAlmostEqual(congreso["change_pct"], 100.0)
        self.assertEqual(len(congreso["hourly"]), 168)
        self.assertEqual(sum(congreso["hourly"]), 14)
        self.assertIsNone(doc["topics"][1]["change_pct"])

    def test_compare_share_of_voice(self):
        doc = self.get("/api/v1/teams/gob/compare?topics=congreso,elecciones&res=hour&from=%d&to=%d"
                       % (DAY, DAY + 86400))
        self.assertEqual(doc["total"], 20)
        self.assertEqual([(t["id"], t["posts"], t["share"]) for t in doc["topics"]],
                         [("congreso", 14, 70.0), ("elecciones", 6, 30.0)])
        self.assertEqual(len(doc["topics"][0]["series"]), 24)
        self.get("/api/v1/teams/gob/compare?topics=congreso,anemia", status=404)

    def test_feeds(self):
        s, h, body = self.api.req("GET", "/feed/gob/congreso.rss?token=" + SECRET["gob-feed"])
        self.assertEqual(s, 200)
        self.assertTrue(h["content-type"].startswith("application/rss+xml"))
        xml = body.decode()
        self.assertIn("<rss version=\"2.0\">", xml)
        self.assertIn("latest 2 &lt;b&gt;&amp;&lt;/b&gt; congreso", xml)
        self.assertNotIn("<b>", xml)
        self.assertEqual(xml.count("<item>"), 3)
        self.assertIn("<pubDate>Tue, 17 Nov 2026 10:00:02 +0000</pubDate>", xml)
        s, h, body = self.api.req("GET", "/feed/gob/congreso.json?token=" + SECRET["gob-viewer"])
        self.assertEqual(s, 200)
        feed = json.loads(body)
        self.assertEqual(feed["version"], "https://jsonfeed.org/version/1.1")
        self.assertEqual(feed["items"][0]["content_text"], "latest 2 <b>&</b> congreso")
        self.assertEqual(feed["items"][0]["date_published"], "2026-11-17T10:00:02Z")
        # a feed token reads feeds only, and only its team's
        s, _, doc = self.api.json("GET", "/api/v1/teams/gob", "gob-feed")
        self.assertEqual(s, 404)
        s, _, _ = self.api.req("GET", "/feed/dev/anemia.rss?token=" + SECRET["gob-feed"])
        self.assertEqual(s, 404)
        s, h, _ = self.api.req("GET", "/feed/gob/congreso.rss?token=wrong")
        self.assertEqual(s, 401)
        s, _, _ = self.api.req("GET", "/feed/gob/congreso.atom?token=" + SECRET["gob-feed"])
        self.assertEqual(s, 404)

    def test_etag_not_modified(self):
        path = "/api/v1/teams/gob/topics/congreso/series?res=hour&from=%d&to=%d" % (DAY, DAY + 86400)
        s, h, _ = self.api.req("GET", path, "gob-viewer")
        self.assertEqual(s, 200)
        self.assertIn("no-cache", h["cache-control"])
        etag = h["etag"]
        s, h2, body = self.api.req("GET", path, "gob-viewer", headers={"If-None-Match": etag})
        self.assertEqual((s, body), (304, b""))
        self.assertEqual(h2["etag"], etag)

    def test_errors_and_methods(self):
        s, h, doc = self.api.json("GET", "/api/v1/nothing", "gob-viewer")
        self.assertEqual((s, doc["error"]["code"]), (404, "not_found"))
        s, h, doc = self.api.json("PATCH", "/api/v1/teams/gob/topics", "gob-editor")
        self.assertEqual(s, 405)
        self.assertIn("POST", h["allow"])
        s, h, doc = self.api.json("GET", "/api/v1/teams/gob")
        self.assertEqual((s, doc["error"]["code"]), (401, "unauthorized"))
        self.assertIn("Bearer", h["www-authenticate"])
        s, h, doc = self.api.json("GET", "/api/v1/teams/gob", "not-a-token")
        self.assertEqual(s, 401)
        s, _, doc = self.api.json("GET", "/api/v1/teams/nope", "root-admin")
        self.assertEqual(s, 404)
        s, _, doc = self.api.json("GET", "/api/v1/teams/gob/topics/nope/series", "gob-viewer")
        self.assertEqual((s, doc["error"]["message"]), (404, "no such topic"))
        for h in (h,):
            self.assertEqual(h["x-content-type-options"], "nosniff")

    def test_static_files(self):
        s, h, body = self.api.req("GET", "/")
        self.assertEqual(s, 200)
        self.assertIn("text/html", h["content-type"])
        self.assertIn("script-src 'self'", h["content-security-policy"])
        self.assertIn(b"escucha", body)
        s, h, body = self.api.req("GET", "/assets/app.js")
        self.assertEqual(s, 200)
        self.assertIn("javascript", h["content-type"])
        s, h2, body = self.api.req("GET", "/assets/app.js", headers={"If-None-Match": h["etag"]})
        self.assertEqual(s, 304)
        for bad in ("/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt",
                    "/.hidden", "/nope.html"):
            s, _, body = self.api.req("GET", bad)
            self.assertEqual(s, 404, bad)
            self.assertNotIn(b"outside", body)

    def test_healthz(self):
        s, _, doc = self.api.json("GET", "/healthz")
        self.assertEqual((s, doc), (200, {"ok": True}))

    def test_no_cors_unless_configured(self):
        s, h, _ = self.api.req("GET", "/api/v1/me", "gob-viewer",
                               headers={"Origin": "https://evil.example"})
        self.assertEqual(s, 200)
        self.assertNotIn("access-control-allow-origin", h)
        s, h, _ = self.api.req("OPTIONS", "/api/v1/me",
                               headers={"Origin": "https://evil.example",
                                        "Access-Control-Request-Method": "GET"})
        self.assertEqual(s, 405)
        self.assertNotIn("access-control-allow-origin", h)

    # ---- editing ------------------------------------------------------------------------------

    def audit(self, team="gob"):
        return [json.loads(x) for x in self.r.cmd("LRANGE", "esc:audit:{%s}" % team, 0, -1)]

    def test_topic_edit_cycle(self):
        v0 = int(self.r.cmd("GET", "esc:topics:version") or 0)
        body = {"id": "salud", "name": "Salud", "keywords": [" hospital ", "minsa"],
                "query": "(salud OR hospital) AND peru"}
        s, _, doc = self.api.json("POST", "/api/v1/teams/gob/topics", "gob-editor", body)
        self.assertEqual(s, 201, doc)
        self.assertEqual(doc["topic"]["keywords"], ["hospital", "minsa"])
        self.assertEqual(doc["topic"]["source"], "api")
        stored = json.loads(self.r.cmd("HGET", "esc:topics:{gob}", "salud"))
        self.assertEqual(stored["query"], "(salud OR hospital) AND peru")
        self.assertNotIn("source", stored)
        self.assertEqual(int(self.r.cmd("GET", "esc:topics:version")), v0 + 1)
        a = self.audit()[0]
        self.assertEqual((a["who"], a["action"], a["topic"], a["before"]),
                         ("eva", "create", "salud", None))
        self.assertEqual(a["after"]["name"], "Salud")
        # listed after the config topics, with counts readable at once
        ids = [t["id"] for t in self.get("/api/v1/teams/gob/topics")["topics"]]
        self.assertEqual(ids[:2], ["congreso", "elecciones"])
        self.assertIn("salud", ids)
        self.get("/api/v1/teams/gob/topics/salud/series")
        # again: conflict
        s, _, doc = self.api.json("POST", "/api/v1/teams/gob/topics", "gob-editor", body)
        self.assertEqual((s, doc["error"]["code"]), (409, "exists"))
        # change
        body["name"] = "Salud pública"
        s, _, doc = self.api.json("PUT", "/api/v1/teams/gob/topics/salud", "gob-editor", body)
        self.assertEqual(s, 200, doc)
        a = self.audit()[0]
        self.assertEqual((a["action"], a["before"]["name"], a["after"]["name"]),
                         ("update", "Salud", "Salud pública"))
        self.assertEqual(self.get("/api/v1/teams/gob/topics/salud")["name"], "Salud pública")
        # delete an API topic: the override goes
        s, _, doc = self.api.json("DELETE", "/api/v1/teams/gob/topics/salud", "gob-editor")
        self.assertEqual(s, 200)
        self.assertIsNone(self.r.cmd("HGET", "esc:topics:{gob}", "salud"))
        self.assertEqual(self.audit()[0]["action"], "delete")
        self.get("/api/v1/teams/gob/topics/salud", status=404)
        self.assertEqual(int(self.r.cmd("GET", "esc:topics:version")), v0 + 3)

    def test_config_topic_override_and_delete(self):
        s, _, doc = self.api.json("PUT", "/api/v1/teams/gob/topics/elecciones", "gob-editor",
                                  {"name": "Elecciones 2026", "keywords": ["voto", "onpe"]})
        self.assertEqual(s, 200, doc)
        t = self.get("/api/v1/teams/gob/topics/elecciones")
        self.assertEqual((t["source"], t["keywords"]), ("api", ["voto", "onpe"]))
        self.assertEqual(self.audit()[0]["before"]["keywords"], ["voto"])
        s, _, _ = self.api.json("DELETE", "/api/v1/teams/gob/topics/elecciones", "gob-editor")
        self.assertEqual(s, 200)
        self.assertEqual(json.loads(self.r.cmd("HGET", "esc:topics:{gob}", "elecciones")),
                         {"id": "elecciones", "deleted": True})
        ids = [t["id"] for t in self.get("/api/v1/teams/gob/topics")["topics"]]
        self.assertNotIn("elecciones", ids)
        # restore for the other tests
        self.r.cmd("HDEL", "esc:topics:{gob}", "elecciones")

    def test_invalid_query_positions(self):
        n_audit = len(self.audit())
        s, _, doc = self.api.json("PUT", "/api/v1/teams/gob/topics/bad", "gob-editor",
                                  {"keywords": [], "query": "congreso AND (voto"})
        self.assertEqual(s, 422, doc)
        self.assertEqual(doc["error"]["code"], "invalid_query")
        d = doc["error"]["details"][0]
        self.assertEqual((d["field"], d["severity"]), ("query", "error"))
        self.assertIsInstance(d["column"], int)
        self.assertGreater(d["column"], 0)
        self.assertTrue(d["message"])
        s, _, doc = self.api.json("PUT", "/api/v1/teams/gob/topics/bad", "gob-editor",
                                  {"keywords": ["x"], "exclude": "spam OR"})
        self.assertEqual(s, 422)
        self.assertEqual(doc["error"]["details"][0]["field"], "exclude")
        self.assertIsNone(self.r.cmd("HGET", "esc:topics:{gob}", "bad"))
        self.assertEqual(len(self.audit()), n_audit)

    def test_invalid_topic_shape(self):
        cases = [
            ({"keywords": "congreso"}, "keywords"),
            ({"keywords": []}, "keywords"),
            ({"keywords": ["ok", ""]}, "keywords"),
            ({"keywords": ["ok"], "colour": "red"}, "colour"),
            ({"keywords": ["ok"], "name": 5}, "name"),
            ({"keywords": ["ok"], "id": "other"}, "id"),
            ({"keywords": ["ok"], "fold_enye": "yes"}, "fold_enye"),
        ]
        for body, field in cases:
            s, _, doc = self.api.json("PUT", "/api/v1/teams/gob/topics/shape", "gob-editor", body)
            self.assertEqual(s, 422, body)
            self.assertEqual(doc["error"]["code"], "invalid_topic")
            self.assertIn(field, [d["field"] for d in doc["error"]["details"]], body)
        s, _, doc = self.api.json("PUT", "/api/v1/teams/gob/topics/Bad%20Id", "gob-editor",
                                  {"keywords": ["x"]})
        self.assertEqual(s, 422)
        s, _, doc = self.api.req("PUT", "/api/v1/teams/gob/topics/shape", "gob-editor",
                                 raw=b"{not json", headers={"Content-Type": "application/json"})
        self.assertEqual(s, 400)
        self.assertEqual(json.loads(doc)["error"]["code"], "bad_json")

    def test_validate_endpoint(self):
        s, _, doc = self.api.json("POST", "/api/v1/teams/gob/validate", "gob-editor",
                                  {"query": "(a OR b"})
        self.assertEqual(s, 200)
        self.assertFalse(doc["ok"])
        self.assertEqual(doc["messages"][0]["column"], 1)
        s, _, doc = self.api.json("POST", "/api/v1/teams/gob/validate", "gob-editor",
                                  {"query": "a  OR b", "field": "exclude"})
        self.assertTrue(doc["ok"])
        self.assertEqual(doc["messages"][0]["severity"], "warning")
        self.assertEqual(doc["messages"][0]["field"], "exclude")
        s, _, doc = self.api.json("POST", "/api/v1/teams/gob/validate", "gob-viewer",
                                  {"query": "a"})
        self.assertEqual(s, 403)

    def test_validator_timeout_is_503(self):
        s, h, doc = self.api.json("POST", "/api/v1/teams/gob/validate", "gob-editor",
                                  {"query": "__hang__"})
        self.assertEqual((s, doc["error"]["code"]), (503, "validator_unavailable"))
        self.assertIn("retry-after", h)

    def test_exclusion_lists(self):
        doc = self.get("/api/v1/teams/gob/exclude")
        self.assertEqual(doc, {"authors": [], "sites": [], "phrases": [], "source": "config"})
        s, _, doc = self.api.json("PUT", "/api/v1/teams/gob/exclude", "gob-editor",
                                  {"authors": ["@spam"], "phrases": ["sorteo"]})
        self.assertEqual(s, 200, doc)
        self.assertEqual(json.loads(self.r.cmd("GET", "esc:exclude:{gob}")),
                         {"authors": ["@spam"], "sites": [], "phrases": ["sorteo"]})
        self.assertEqual(self.get("/api/v1/teams/gob/exclude")["source"], "api")
        a = self.audit()[0]
        self.assertEqual((a["action"], a["before"]["authors"], a["after"]["authors"]),
                         ("exclude", [], ["@spam"]))
        s, _, doc = self.api.json("PUT", "/api/v1/teams/gob/exclude", "gob-editor",
                                  {"authors": [""]})
        self.assertEqual(s, 422)
        s, _, doc = self.api.json("PUT", "/api/v1/teams/gob/exclude", "gob-viewer",
                                  {"authors": []})
        self.assertEqual(s, 403)

    def test_audit_endpoint(self):
        self.api.json("PUT", "/api/v1/teams/gob/topics/audited", "gob-editor",
                      {"keywords": ["x"]})
        doc = self.get("/api/v1/teams/gob/audit?limit=1", "gob-editor")
        self.assertEqual(len(doc["audit"]), 1)
        self.assertEqual(doc["audit"][0]["topic"], "audited")
        self.assertTrue(doc["audit"][0]["ts_iso"].endswith("Z"))
        self.get("/api/v1/teams/gob/audit", "gob-viewer", status=403)
        self.api.json("DELETE", "/api/v1/teams/gob/topics/audited", "gob-editor")

    # ---- live -----------------------------------------------------------------------------------

    def open_stream(self, team, token, query="", headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.api.port, timeout=5)
        h = {"Authorization": "Bearer " + SECRET[token]}
        h.update(headers or {})
        c.request("GET", "/api/v1/teams/%s/live%s" % (team, query), headers=h)
        r = c.getresponse()
        return c, r

    def read_events(self, r, want, timeout=5):
        """Reads SSE events until `want` post events arrived (or timeout)."""
        events = []
        deadline = time.time() + timeout
        cur = {}
        while len(events) < want and time.time() < deadline:
            try:
                line = r.fp.readline()
            except socket.timeout:
                break
            if not line:
                break
            line = line.decode().rstrip("\n")
            if line == "":
                if cur.get("event") == "post":
                    events.append(cur)
                cur = {}
            elif not line.startswith(":") and ":" in line:
                k, v = line.split(":", 1)
                cur[k] = v.strip()
        return events

    def publish(self, team, posts):
        return self.r.cmd("PUBLISH", "esc:live:{%s}" % team, json.dumps(posts))

    def test_live_stream(self):
        c, r = self.open_stream("gob", "gob-viewer", "?replay=0")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.getheader("Content-Type").startswith("text/event-stream"))
        c2, r2 = self.open_stream("dev", "dev-viewer", "?replay=0")
        c3, r3 = self.open_stream("gob", "gob-editor", "?replay=0&topic=elecciones")
        et.wait_for(lambda: self.r.cmd("PUBSUB", "NUMSUB", "esc:live:{gob}")[1] >= 1, 5,
                    "the subscriber")
        time.sleep(0.2)
        self.publish("gob", [
            {"id": "x1", "text": "<script>alert('x')</script> congreso", "author": "@a",
             "topics": ["congreso"], "created_at": 1794877150250, "platform": "mastodon",
             "lang": "es", "sentiment": -0.5, "secret_extra": "dropped"},
            {"id": "x2", "text": "voto", "topics": ["elecciones", "Bad Id"]},
            {"no": "text"}, "not an object"])
        ev = self.read_events(r, 2)
        self.assertEqual(len(ev), 2)
        p = json.loads(ev[0]["data"])
        self.assertEqual(p["text"], "<script>alert('x')</script> congreso")
        self.assertEqual(p["team"], "gob")
        self.assertNotIn("secret_extra", p)
        self.assertEqual(json.loads(ev[1]["data"])["topics"], ["elecciones"])
        self.assertTrue(int(ev[1]["id"]) > int(ev[0]["id"]))
        # the topic filter
        ev3 = self.read_events(r3, 1)
        self.assertEqual([json.loads(e["data"])["id"] for e in ev3], ["x2"])
        # team dev saw nothing of it
        self.assertEqual(self.read_events(r2, 1, timeout=1), [])
        # a reconnect with Last-Event-ID gets what came after
        last = ev[0]["id"]
        c4, r4 = self.open_stream("gob", "gob-viewer", "", {"Last-Event-ID": last})
        ev4 = self.read_events(r4, 1)
        self.assertEqual(json.loads(ev4[0]["data"])["id"], "x2")
        # a malformed message is skipped, the stream carries on
        self.r.cmd("PUBLISH", "esc:live:{gob}", "{broken")
        self.publish("gob", [{"id": "x3", "text": "after the bad one"}])
        self.assertEqual(json.loads(self.read_events(r, 1)[0]["data"])["id"], "x3")
        for conn in (c, c2, c3, c4):
            conn.close()

    def test_live_needs_a_token_of_the_team(self):
        s, _, _ = self.api.json("GET", "/api/v1/teams/gob/live", "dev-viewer")
        self.assertEqual(s, 404)
        s, _, _ = self.api.json("GET", "/api/v1/teams/gob/live")
        self.assertEqual(s, 401)

    # ---- isolation ------------------------------------------------------------------------------

    ENDPOINTS = [
        ("GET", "/api/v1/teams/gob", None),
        ("GET", "/api/v1/teams/gob/topics", None),
        ("POST", "/api/v1/teams/gob/topics", {"id": "intruso", "keywords": ["x"]}),
        ("GET", "/api/v1/teams/gob/topics/congreso", None),
        ("PUT", "/api/v1/teams/gob/topics/congreso", {"keywords": ["hacked"]}),
        ("DELETE", "/api/v1/teams/gob/topics/congreso", None),
        ("GET", "/api/v1/teams/gob/topics/congreso/series?res=hour&from=%d&to=%d"
         % (DAY, DAY + 86400), None),
        ("GET", "/api/v1/teams/gob/topics/congreso/series.csv", None),
        ("GET", "/api/v1/teams/gob/topics/congreso/summary", None),
        ("GET", "/api/v1/teams/gob/topics/congreso/totals", None),
        ("GET", "/api/v1/teams/gob/topics/congreso/top/authors", None),
        ("GET", "/api/v1/teams/gob/topics/congreso/top/posts", None),
        ("GET", "/api/v1/teams/gob/topics/congreso/latest", None),
        ("GET", "/api/v1/teams/gob/overview", None),
        ("GET", "/api/v1/teams/gob/compare", None),
        ("GET", "/api/v1/teams/gob/alerts", None),
        ("GET", "/api/v1/teams/gob/live", None),
        ("GET", "/api/v1/teams/gob/exclude", None),
        ("PUT", "/api/v1/teams/gob/exclude", {"authors": ["@victim"]}),
        ("GET", "/api/v1/teams/gob/audit", None),
        ("POST", "/api/v1/teams/gob/validate", {"query": "x"}),
        ("GET", "/feed/gob/congreso.rss", None),
        ("GET", "/feed/gob/congreso.json", None),
    ]

    def snapshot(self):
        keys = sorted(self.r.cmd("KEYS", "esc:*{gob*"))
        out = {}
        for k in keys:
            t = self.r.cmd("TYPE", k)
            if t == "hash":
                out[k] = self.r.hgetall(k)
            elif t == "list":
                out[k] = self.r.cmd("LRANGE", k, 0, -1)
            elif t == "zset":
                out[k] = self.r.cmd("ZRANGE", k, 0, -1, "WITHSCORES")
            else:
                out[k] = self.r.cmd("GET", k)
        return out, self.r.cmd("GET", "esc:topics:version")

    def test_team_isolation_matrix(self):
        """Every endpoint of team gob with every dev token: 404, no gob data, nothing changed."""
        before = self.snapshot()
        checked = 0
        for token in ("dev-viewer", "dev-editor"):
            for method, path, body in self.ENDPOINTS:
                if path.startswith("/feed/"):
                    s, h, payload = self.api.req(method, path + "?token=" + SECRET[token])
                else:
                    s, h, payload = self.api.req(method, path, token, body)
                self.assertEqual(s, 404, "%s %s %s -> %s" % (token, method, path, s))
                text = payload.decode()
                for leak in ("congreso", "Gobernanza", "@ana", "latest", "elecciones"):
                    self.assertNotIn(leak, text, "%s %s leaked %s" % (method, path, leak))
                self.assertEqual(json.loads(payload)["error"]["message"], "no such team")
                checked += 1
        self.assertEqual(checked, 2 * len(self.ENDPOINTS))
        self.assertEqual(self.snapshot(), before)
        # the same requests the other way round are refused too
        s, _, _ = self.api.json("GET", "/api/v1/teams/dev/topics/anemia/series", "gob-editor")
        self.assertEqual(s, 404)
        s, _, _ = self.api.json("PUT", "/api/v1/teams/dev/topics/anemia", "gob-editor",
                                {"keywords": ["x"]})
        self.assertEqual(s, 404)
        # and the team's own tokens / the admin get through
        for token in ("gob-viewer", "root-admin"):
            self.get("/api/v1/teams/gob/topics/congreso/summary", token)
        self.get("/api/v1/teams/dev/topics/anemia/summary", "root-admin")

    def test_viewer_cannot_write(self):
        before = self.snapshot()
        for method, path, body in self.ENDPOINTS:
            if method == "GET" or path.startswith("/feed/"):
                continue
            s, _, doc = self.api.json(method, path, "gob-viewer", body)
            self.assertEqual(s, 403, "%s %s" % (method, path))
            self.assertEqual(doc["error"]["code"], "forbidden")
        self.assertEqual(self.snapshot(), before)


class LimitsTest(unittest.TestCase):
    """A second instance with small limits and CORS for one origin."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="esc-api-lim-")
        cls.redis = et.Redis(cls.dir)
        cfg = {
            "redis": {"unix_socket": cls.redis.sock},
            "teams": [{"id": "gob", "topics": [{"id": "congreso", "keywords": ["congreso"]}]}],
            "api": {"listen": "127.0.0.1:0", "max_body": 1024, "rate_burst": 5,
                    "rate_per_s": 0.5, "cors_origin": "https://dash.example.org",
                    "tokens": [token_entry("gob-editor"), token_entry("gob-viewer")]},
        }
        cls.metrics_port = et.free_port()
        cfg["api"]["metrics_listen"] = "127.0.0.1:%d" % cls.metrics_port
        cls.api = Api(cls.dir, cfg, "api-limits")

    @classmethod
    def tearDownClass(cls):
        code = cls.api.stop()
        cls.redis.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)
        if code != 0:
            raise AssertionError("escucha-api exited %r" % code)

    def test_body_limit(self):
        big = {"keywords": ["x" * 100] * 20}
        s, _, doc = self.api.json("PUT", "/api/v1/teams/gob/topics/big", "gob-editor", big)
        self.assertEqual((s, doc["error"]["code"]), (413, "too_large"))
        # announced far bigger than the limit: refused before the body is read
        c = http.client.HTTPConnection("127.0.0.1", self.api.port, timeout=10)
        c.putrequest("PUT", "/api/v1/teams/gob/topics/big")
        c.putheader("Authorization", "Bearer " + SECRET["gob-editor"])
        c.putheader("Content-Length", str(50 << 20))
        c.endheaders()
        c.send(b"{" * 4096)
        r = c.getresponse()
        self.assertEqual(r.status, 413)
        c.close()
        # chunked, without a length: cut at the limit while it arrives
        c = http.client.HTTPConnection("127.0.0.1", self.api.port, timeout=10)
        c.request("PUT", "/api/v1/teams/gob/topics/big", body=iter([b" " * 800, b" " * 800]),
                  headers={"Authorization": "Bearer " + SECRET["gob-editor"],
                           "Content-Type": "application/json"}, encode_chunked=True)
        r = c.getresponse()
        self.assertEqual(r.status, 413)
        self.assertEqual(json.loads(r.read())["error"]["code"], "too_large")
        c.close()
        self.assertIsNone(hash_or_none(self.redis, "esc:topics:{gob}"))

    def test_rate_limit_per_token(self):
        codes = [self.api.req("GET", "/api/v1/me", "gob-viewer")[0] for _ in range(8)]
        self.assertEqual(codes[:4], [200] * 4)
        self.assertIn(429, codes)
        s, h, body = self.api.req("GET", "/api/v1/me", "gob-viewer")
        self.assertEqual(s, 429)
        self.assertGreaterEqual(int(h["retry-after"]), 1)
        self.assertEqual(json.loads(body)["error"]["code"], "rate_limited")

    def test_bad_tokens_are_slowed_down(self):
        codes = [self.api.req("GET", "/api/v1/me", "guess-%d" % i)[0] for i in range(14)]
        self.assertEqual(codes[0], 401)
        self.assertEqual(codes[-1], 429)

    def test_cors_for_the_configured_origin(self):
        s, h, _ = self.api.req("OPTIONS", "/api/v1/me",
                               headers={"Origin": "https://dash.example.org",
                                        "Access-Control-Request-Method": "GET"})
        self.assertEqual(s, 204)
        self.assertEqual(h["access-control-allow-origin"], "https://dash.example.org")
        self.assertIn("Authorization", h["access-control-allow-headers"])
        s, h, _ = self.api.req("GET", "/healthz", headers={"Origin": "https://other.example"})
        self.assertNotIn("access-control-allow-origin", h)

    def metrics_healthz(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.metrics_port,
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def test_zz_redis_down_is_503(self):
        self.assertEqual(self.metrics_healthz()[0], 200)
        self.redis.stop()
        # the metrics port's /healthz follows within its refresh period (5 s)
        et.wait_for(lambda: self.metrics_healthz()[0] == 503, 15,
                    "the metrics /healthz to report Redis down")
        self.assertIn("redis unreachable", self.metrics_healthz()[1])
        s, h, body = self.api.req("GET", "/api/v1/teams/gob/topics", "gob-editor")
        if s == 429:
            time.sleep(2.5)
            s, h, body = self.api.req("GET", "/api/v1/teams/gob/topics", "gob-editor")
        self.assertEqual(s, 503)
        self.assertEqual(json.loads(body)["error"]["code"], "redis_unavailable")
        self.assertIn("retry-after", h)


@unittest.skipUnless(CLASSIFIER, "ESC_CLASSIFIER_BIN not set (the classifier is not built)")
class RealValidatorTest(unittest.TestCase):
    """The validation contract against the real escucha-classifier --check-query."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="esc-api-cls-")
        cls.redis = et.Redis(cls.dir)
        cfg = {
            "redis": {"unix_socket": cls.redis.sock},
            "teams": [{"id": "gob", "topics": [{"id": "congreso", "keywords": ["congreso"]}]}],
            "api": {"listen": "127.0.0.1:0", "validator": CLASSIFIER,
                    "tokens": [token_entry("gob-editor")]},
        }
        cls.api = Api(cls.dir, cfg, "api-classifier")

    @classmethod
    def tearDownClass(cls):
        code = cls.api.stop()
        cls.redis.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)
        if code != 0:
            raise AssertionError("escucha-api exited %r" % code)

    def test_classifier_positions(self):
        s, _, doc = self.api.json("POST", "/api/v1/teams/gob/validate", "gob-editor",
                                  {"query": "congreso AND ("})
        self.assertEqual(s, 200)
        self.assertFalse(doc["ok"])
        self.assertTrue(doc["checked"])
        err = [m for m in doc["messages"] if m["severity"] == "error"][0]
        self.assertEqual((err["field"], err["column"]), ("query", 14))
        self.assertTrue(err["message"])
        s, _, doc = self.api.json("PUT", "/api/v1/teams/gob/topics/x", "gob-editor",
                                  {"keywords": ["x"], "exclude": "sorteo OR"})
        self.assertEqual(s, 422)
        self.assertEqual(doc["error"]["details"][0]["column"], 8)
        s, _, doc = self.api.json("PUT", "/api/v1/teams/gob/topics/x", "gob-editor",
                                  {"keywords": [], "query": "(salud OR minsa) AND hospital"})
        self.assertEqual(s, 201, doc)


class CommandLineTest(unittest.TestCase):
    def test_hash_token(self):
        out = subprocess.run([API_BIN, "--hash-token"], input="my-long-secret-token-value\n",
                             capture_output=True, text=True, check=True).stdout.strip()
        self.assertEqual(out, sha("my-long-secret-token-value"))
        out = subprocess.run([API_BIN, "--new-token"], capture_output=True, text=True,
                             check=True).stdout
        tok = re.search(r"token:\s+(\S+)", out).group(1)
        self.assertEqual(re.search(r"sha256:\s+(\S+)", out).group(1), sha(tok))

    def test_config_errors(self):
        d = tempfile.mkdtemp(prefix="esc-api-cfg-")
        try:
            base = {"teams": [{"id": "gob", "topics": [{"id": "c", "keywords": ["c"]}]}]}
            bad = [
                ({"tokens": [{"name": "a", "team": "gob", "role": "viewer",
                              "token": "plaintext"}]}, "plain tokens are not accepted"),
                ({"tokens": [{"name": "a", "team": "nope", "role": "viewer",
                              "sha256": sha("x")}]}, "no team"),
                ({"tokens": [{"name": "a", "team": "gob", "role": "boss",
                              "sha256": sha("x")}]}, "role"),
                ({"tokens": [{"name": "a", "team": "*", "role": "viewer",
                              "sha256": sha("x")}]}, "needs role admin"),
                ({"tokens": [{"name": "a", "team": "gob", "role": "viewer", "sha256": "abc"}]},
                 "64 hex digits"),
                ({"tokens": [{"name": "a", "team": "gob", "role": "viewer", "sha256": sha("x")},
                             {"name": "a", "team": "gob", "role": "editor",
                              "sha256": sha("y")}]}, "used twice"),
                ({"max_body": 10}, "max_body"),
                ({"listen_on": "x"}, "unknown key"),
            ]
            for api, why in bad:
                cfg = dict(base, api=api)
                path = os.path.join(d, "c.json")
                et.write_json(path, cfg)
                p = subprocess.run([API_BIN, "--config", path, "--check-config"],
                                   capture_output=True, text=True)
                self.assertEqual(p.returncode, 2, api)
                self.assertIn(why, p.stderr, api)
            cfg = dict(base, api={"tokens": [token_entry("gob-viewer")]})
            et.write_json(path, cfg)
            p = subprocess.run([API_BIN, "--config", path, "--dump-config"], capture_output=True,
                               text=True)
            self.assertEqual(p.returncode, 0)
            self.assertIn("ana team=gob role=viewer", p.stdout)
            self.assertNotIn(sha(SECRET["gob-viewer"]), p.stdout)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    API_BIN = os.path.abspath(sys.argv[1])
    VALIDATOR = os.path.abspath(sys.argv[2])
    del sys.argv[1:3]
    unittest.main(verbosity=2)
