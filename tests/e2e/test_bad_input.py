"""Bad input end to end (issue #9): a collector with a jsonl source and an ingest (HTTP push)
source feeds the real broker, classifier and aggregator with a private redis-server. Valid posts
are mixed with invalid UTF-8, over-long lines and bodies, NUL bytes (escaped and raw), deeply
nested JSON, huge and negative numbers, missing fields, wrong types, duplicate keys, duplicate
posts and clock-skewed event times. Asserts that every bad item is rejected (or, for event
times in the future, clamped) with a log line saying where (file line / request and index) and
why, that the collector's rejected/clamped counters say the same per reason, and that every
valid post is counted exactly once per topic in Redis. Also checks the aggregator against event
times the collector lets through when its clamp is off (far future, 1970).

usage: test_bad_input.py BINDIR   (BINDIR is the cmake build directory)"""

import datetime as dt
import json
import os
import re
import shutil
import socket
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import escucha_test as et  # noqa: E402

BINDIR = None
TOKEN = "bad-input-token-7c1e"
UTC = dt.timezone.utc
DAY0 = dt.datetime(2026, 11, 16, 9, 0, tzinfo=UTC)

# (text, topic keys)
TEMPLATES = [
    ("El CONGRESO aprobó la ley de presupuesto", ["gob/congreso"]),
    ("Se acercan las elecciones y nadie habla de propuestas", ["gob/elecciones"]),
    ("La informalidad laboral sigue creciendo en Lima", ["dev/informalidad"]),
    ("Digitalización del Estado: el Congreso aprueba la firma digital",
     ["gob/congreso", "dev/digital"]),
    ("Partido de fútbol esta noche en el estadio", []),
]


def post(pid, k, when=None, **extra):
    text, _ = TEMPLATES[k % len(TEMPLATES)]
    p = {"id": pid, "platform": "forum", "author": {"handle": "@u%d" % (k % 5), "followers": 3},
         "text": text, "lang": "es", "created_at": (when or DAY0 + dt.timedelta(minutes=k))
         .strftime("%Y-%m-%dT%H:%M:%SZ"), "likes": 1, "reposts": 0, "replies": 0}
    p.update(extra)
    return p


def line(obj):
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


class Expect:
    """Valid posts sent, per topic, with platform+id to count duplicates once."""

    def __init__(self):
        self.topics = {}
        self.ids = set()
        self.sent = 0  # posts the collector hands to the bus (duplicates included)

    def add(self, pid, k, platform="forum"):
        self.sent += 1
        if (platform, pid) in self.ids:
            return
        self.ids.add((platform, pid))
        for t in TEMPLATES[k % len(TEMPLATES)][1]:
            self.topics[t] = self.topics.get(t, 0) + 1


def build_jsonl(path, exp):
    """Writes the file; returns {line number: expected reason label} of the bad lines and the
    ids of the posts whose future event time must be clamped."""
    lines = []
    bad = {}
    clamped = []

    def good(obj, k):
        lines.append(line(obj))
        exp.add(obj["id"], k)

    def bad_line(raw, reason, parser=False):
        """parser=True: the JSON parser's own message decides the class, so it may also be
        the generic "malformed"."""
        lines.append(raw)
        bad[len(lines)] = (reason, parser)

    k = 0
    for i in range(40):
        good(post("j-%d" % i, k), k)
        k += 1
    base = post("x", 0)
    bad_line(b'{"id":"u8","platform":"forum","text":"caf\xc3\x28 \xff\xfe","created_at":'
             b'"2026-11-16T10:00:00Z"}', "bad_utf8", True)
    bad_line(line(dict(base, id="huge", text="congreso " * 120000)), "too_large")  # > 1 MiB line
    bad_line(line(dict(base, id="long-text", text="congreso " * 8000)), "too_large")  # > 64 KiB
    bad_line(line(dict(base, id="nul-esc", text="congreso\u0000oculto")), "nul")
    bad_line(b'{"id":"nul-raw","platform":"forum","text":"congreso\x00oculto","created_at":'
             b'"2026-11-16T10:00:00Z"}', "nul", True)  # raw NUL: invalid JSON (a control character)
    bad_line(b"[" * 100000, "too_deep", True)
    bad_line(b'{"id":"deep","platform":"forum","text":"congreso","created_at":'
             b'"2026-11-16T10:00:00Z","extra":' + b"[" * 5000 + b"]" * 5000 + b"}", "too_deep",
             True)
    bad_line(line(dict(base, id="deep3", extra=[[["x"]]])), "too_deep")
    bad_line(b'{"id":"e400","platform":"forum","text":"congreso","likes":1e400,"created_at":'
             b'"2026-11-16T10:00:00Z"}', "out_of_range", True)
    bad_line(line(dict(base, id="f2e70", author={"handle": "@a", "followers": 2 ** 70})),
             "out_of_range", True)
    bad_line(line(dict(base, id="l2e70", likes=2 ** 70)), "out_of_range", True)
    bad_line(line(dict(base, id="neg", likes=-3)), "out_of_range")
    bad_line(line(dict(base, id="negf", author={"handle": "@a", "followers": -1})),
             "out_of_range")
    for field in ("id", "platform", "text", "created_at"):
        obj = dict(base, id="miss-" + field)
        del obj[field]
        bad_line(line(obj), "missing_field")
    bad_line(line(dict(base, id="")), "missing_field")
    bad_line(line(dict(base, id={"a": 1})), "wrong_type")
    bad_line(line(dict(base, id="wt-text", text=5)), "wrong_type")
    bad_line(line(dict(base, id="wt-likes", likes="7")), "out_of_range")
    bad_line(line(dict(base, id="wt-frac", likes=1.5)), "out_of_range")
    bad_line(line(dict(base, id="wt-tags", hashtags="congreso")), "wrong_type")
    bad_line(line(dict(base, id="wt-author", author=[1])), "wrong_type")
    bad_line(line(dict(base, id="wt-time", created_at=True)), "bad_time")
    bad_line(line(dict(base, id="bad-time", created_at="yesterday")), "bad_time")
    bad_line(line(dict(base, id="zero-time", created_at=0)), "bad_time")
    bad_line(line(dict(base, id="neg-time", created_at=-5)), "bad_time")
    bad_line(b'{"id":"dupkey","id":"dupkey2","platform":"forum","text":"congreso",'
             b'"created_at":"2026-11-16T10:00:00Z"}', "duplicate_key", True)
    bad_line(b'[1, 2, 3]', "malformed")
    bad_line(b'"just a string"', "malformed")
    bad_line(b"null", "malformed")
    bad_line(b'{"id":"trunc","platform":"forum","text":"congr', "malformed", True)
    bad_line(b"this is not json", "malformed", True)
    # Valid but unusual: every one of these counts.
    good(post("j-0", 0), 0)                                  # the same post again: counted once
    good(post("j-1", 1), 1)
    big_url = "https://example.org/" + "a" * 900000          # a 900 kB post that still fits
    good(post("big", k, url=big_url), k)
    k += 1
    good(post("1970", k, when=dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)), k)  # kept, late
    k += 1
    for pid, when in (("y2999", "2999-01-01T00:00:00Z"), ("y9999", "9999-12-31T23:59:59Z"),
                      ("ms-max", 9000000000000000000)):
        obj = post(pid, k)
        obj["created_at"] = when
        good(obj, k)
        clamped.append((pid, k))
        k += 1
    for i in range(40, 60):
        good(post("j-%d" % i, k), k)
        k += 1
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    return bad, clamped


def ingest(port, body, content_type="application/json"):
    req = urllib.request.Request("http://127.0.0.1:%d/ingest" % port, data=body, method="POST",
                                 headers={"Authorization": "Bearer " + TOKEN,
                                          "Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def ingest_expect(port, body):
    """POST with "Expect: 100-continue", so a body refused on its Content-Length (413) is never
    sent and the answer cannot be lost to a reset connection. Returns (status, answer)."""
    head = ("POST /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n"
            "Expect: 100-continue\r\nConnection: close\r\n\r\n" % (TOKEN, len(body)))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        f = sock.makefile("rb")
        status = int(f.readline().split()[1])
        if status == 100:
            f.readline()
            sock.sendall(body)
            status = int(f.readline().split()[1])
        length = 0
        for hdr in iter(f.readline, b"\r\n"):
            name, _, value = hdr.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, json.loads(f.read(length).decode())


def config(work, redis_sock, ports, jsonl_path, max_future_s=600):
    return {
        "deployment": "bad-input",
        "redis": {"unix_socket": redis_sock, "prefix": "esc"},
        "bus": {k: "tcp://127.0.0.1:%d" % p for k, p in ports.items()
                if not k.startswith("metrics_")},
        "sources": [
            {"name": "file", "type": "jsonl", "path": jsonl_path},
            {"name": "push", "type": "ingest", "listen": "127.0.0.1:0",
             "token_env": "BAD_INPUT_TOKEN"},
        ],
        "teams": [
            {"id": "gob", "name": "Gobernanza", "language": "es", "timezone": "UTC",
             "topics": [
                 {"id": "congreso", "name": "Congreso", "keywords": ["congreso"]},
                 {"id": "elecciones", "name": "Elecciones", "keywords": ["elecciones"]},
             ]},
            {"id": "dev", "name": "Development", "language": "en", "timezone": "UTC",
             "topics": [
                 {"id": "informalidad", "name": "Informality", "keywords": ["informalidad"]},
                 {"id": "digital", "name": "Digitalisation", "keywords": ["digitalización"]},
             ]},
        ],
        "collector": {"metrics_listen": "127.0.0.1:%d" % ports["metrics_collector"],
                      "max_future_s": max_future_s},
        "classifier": {"metrics_listen": "127.0.0.1:%d" % ports["metrics_classifier"]},
        "aggregator": {"flush_ms": 100,
                       "metrics_listen": "127.0.0.1:%d" % ports["metrics_aggregator"]},
    }


def labelled(m, family):
    """{labels dict as a tuple of sorted items: value} of one family."""
    out = {}
    for name, v in m.items():
        mt = re.match(r'^%s\{(.*)\}$' % re.escape(family), name)
        if mt:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', mt.group(1)))
            out[tuple(sorted(labels.items()))] = v
    return out


class BadInputTest(unittest.TestCase):
    def setUp(self):
        self.work = et.make_workdir("escucha-bad-")
        self.redis = et.Redis(self.work)
        self.svc = et.Services(BINDIR, self.work, env={"BAD_INPUT_TOKEN": TOKEN})
        self.ports = {k: et.free_port() for k in (
            "collect", "classify", "aggregate", "notify", "metrics_collector",
            "metrics_classifier", "metrics_aggregator")}

    def tearDown(self):
        self.svc.kill_all()
        self.redis.stop()
        if not self._outcome.result.errors and not self._outcome.result.failures:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            et.dump_logs(self.work, "bad input")

    def start_pipeline(self, cfg):
        s = self.svc
        s.start("aggregator", "aggregator", "--config", cfg)
        s.start("classifier", "classifier", "--config", cfg)
        s.start("broker", "broker", "--config", cfg)
        s.start("collector", "collector", "--config", cfg)
        found = et.wait_for(lambda: re.search(r"ingest listening source=push .* port=(\d+)",
                                              s.log("collector")), 30, "the ingest endpoint")
        return int(found.group(1))

    def stop_pipeline(self):
        for name in ("collector", "broker", "classifier", "aggregator"):
            self.assertEqual(self.svc.stop(name), 0, "%s exit status\n%s"
                             % (name, self.svc.log(name)[-3000:]))

    def test_bad_input_rejected_valid_counted_exactly(self):
        exp = Expect()
        jsonl = os.path.join(self.work, "mixed.jsonl")
        bad_lines, clamped = build_jsonl(jsonl, exp)
        cfg = os.path.join(self.work, "escucha.json")
        et.write_json(cfg, config(self.work, self.redis.sock, self.ports, jsonl))
        t0_ms = int(time.time() * 1000)
        port = self.start_pipeline(cfg)

        # Ingest: an array mixing good and bad posts (partial accept), JSON Lines with a bad
        # line, whole bodies that are refused, and a repeat of a jsonl post (counted once).
        ing_bad = {}  # reason -> count of items refused by ingest
        k = 100
        arr = []
        for i in range(30):
            arr.append(post("i-%d" % i, k))
            exp.add("i-%d" % i, k)
            k += 1
        arr[3:3] = [dict(post("x", 0), id="i-nul", text="con\u0000greso")]
        arr[7:7] = [dict(post("x", 0), likes=-1, id="i-neg")]
        arr[9:9] = [{"id": "i-miss", "platform": "forum", "text": "congreso"}]
        arr[11:11] = [dict(post("x", 0), id="i-deep", extra={"a": {"b": {"c": 1}}})]
        arr[13:13] = [dict(post("x", 0), id="i-zero", created_at=0)]
        arr[15:15] = [dict(post("x", 0), id="i-type", text=["congreso"])]
        arr[17:17] = ["not an object"]
        status, answer = ingest(port, json.dumps(arr, ensure_ascii=False).encode())
        self.assertEqual(status, 202, answer)
        self.assertEqual(answer["accepted"], 30, answer)
        self.assertEqual([r["index"] for r in answer["rejected"]], [3, 7, 9, 11, 13, 15, 17])
        for reason in ("nul", "out_of_range", "missing_field", "too_deep", "bad_time",
                       "wrong_type", "malformed"):
            ing_bad[reason] = ing_bad.get(reason, 0) + 1
        jl = [line(post("i-jl-%d" % i, k + i)) for i in range(5)]
        for i in range(5):
            exp.add("i-jl-%d" % i, k + i)
        k += 5
        jl.insert(2, b'{"id":"i-jl-bad","platform":"forum","text":"x","created_at":"nope"}')
        status, answer = ingest(port, b"\n".join(jl) + b"\n", "application/x-ndjson")
        self.assertEqual((status, answer["accepted"]), (202, 5), answer)
        self.assertEqual([r["index"] for r in answer["rejected"]], [2])
        ing_bad["bad_time"] += 1
        status, answer = ingest(port, line(post("j-5", 5)))  # the jsonl post again
        self.assertEqual((status, answer["accepted"]), (202, 1), answer)
        exp.add("j-5", 5)
        whole = [
            (b"[" * 100000, 400, "too_deep"),
            (b'{"id":"i-u8","platform":"forum","text":"\xff\xfe","created_at":1}', 400,
             "bad_utf8"),
            (b'[{"id":"i-e400","platform":"forum","text":"x","likes":1e400,'
             b'"created_at":"2026-11-16T10:00:00Z"}]', 400, "out_of_range"),
            (line(dict(post("x", 0), id="i-1mb", text="congreso " * 120000)), 413, "too_large"),
            (line(dict(post("x", 0), id="i-single-neg", likes=-9)), 400, "out_of_range"),
            (b"", 400, "malformed"),
            (b"\x00\x00\x00", 400, "malformed"),
        ]
        for body, want, reason in whole:
            status, answer = ingest_expect(port, body)
            self.assertEqual(status, want, (body[:60], answer))
            self.assertIn("error", answer)
            ing_bad[reason] = ing_bad.get(reason, 0) + 1

        # Every valid post counted exactly once per topic.
        r = self.redis.client()
        et.wait_for(lambda: int(r.cmd("GET", "esc:agg:processed") or 0) >= exp.sent, 60,
                    "every valid post to be counted (%d)" % exp.sent)
        time.sleep(0.5)  # anything extra would show up now
        self.assertEqual(int(r.cmd("GET", "esc:agg:processed")), exp.sent)
        for topic in ("gob/congreso", "gob/elecciones", "dev/informalidad", "dev/digital"):
            total = r.hgetall("esc:t:{%s}" % topic)
            self.assertEqual(int(total.get("posts", 0)), exp.topics[topic], topic)
            days = r.cmd("KEYS", "esc:c:{%s}:d:*" % topic)
            self.assertEqual(sum(int(r.cmd("HGET", d, "posts")) for d in days),
                             exp.topics[topic], topic)

        # Clamped posts sit in the ingest-time buckets, never in the future.
        t1_ms = int(time.time() * 1000)
        for key in r.cmd("KEYS", "esc:c:{*}:m:*"):
            self.assertLessEqual(self.bucket_ms(key), t1_ms, key)
        today = [k for k in r.cmd("KEYS", "esc:c:{*}:d:*")
                 if t0_ms - 86400000 <= self.bucket_ms(k) <= t1_ms]
        clamped_topics = sum(len(TEMPLATES[kk % len(TEMPLATES)][1]) for _, kk in clamped)
        self.assertEqual(sum(int(r.cmd("HGET", d, "posts")) for d in today), clamped_topics)
        # The 1970 post is kept (late): its day bucket exists.
        self.assertTrue(r.cmd("KEYS", "esc:c:{*}:d:0"), "the 1970 post's day bucket")

        # Logs: every bad line by number, every ingest refusal with its request and index.
        log = self.svc.log("collector")
        for n, reason in bad_lines.items():
            self.assertRegex(log, r"skipped bad line source=file line=%d reason=" % n)
        for mid in ("congreso\u0000", "oculto", "caf\xc3"):
            self.assertNotIn(mid, log, "post text never in the log")
        self.assertEqual(len(re.findall(r"ingest post rejected request=\d+ client=127\.0\.0\.1:"
                                        r"\d+ index=\d+ reason=", log)), 8)
        self.assertEqual(len(re.findall(r"ingest request refused status=4(00|13) request=\d+",
                                        log)), len(whole))
        self.assertEqual(len(re.findall(r"event time in the future, clamped to ingest time "
                                        r"source=file id=\"(y2999|y9999|ms-max)\"", log)), 1)
        self.assertNotIn(TOKEN, log)

        # Metrics: rejected per source and reason, clamped, nothing invalid downstream.
        m = et.metrics(self.ports["metrics_collector"])
        rej = labelled(m, "escucha_collector_rejected_total")
        file_rej = {dict(k)["reason"]: v for k, v in rej.items() if dict(k)["source"] == "file"}
        push_rej = {dict(k)["reason"]: v for k, v in rej.items() if dict(k)["source"] == "push"}
        self.assertEqual(sum(file_rej.values()), len(bad_lines), file_rej)
        for reason in set(r for r, _ in bad_lines.values()) | set(file_rej):
            strict = sum(1 for r, p in bad_lines.values() if r == reason and not p)
            loose = sum(1 for r, p in bad_lines.values() if p and reason in (r, "malformed"))
            self.assertTrue(strict <= file_rej.get(reason, 0) <= strict + loose,
                            (reason, strict, loose, file_rej))
        self.assertEqual(push_rej, ing_bad)
        clamp = labelled(m, "escucha_collector_clamped_total")
        self.assertEqual(clamp, {(("source", "file"), ("type", "jsonl")): len(clamped)})
        c = et.metrics(self.ports["metrics_classifier"])
        self.assertEqual(c["escucha_classifier_invalid_total"], 0)
        self.assertEqual(c["escucha_classifier_dropped_total"], 0)
        a = et.metrics(self.ports["metrics_aggregator"])
        self.assertEqual(a["escucha_aggregator_invalid_total"], 0)
        self.assertEqual(a['escucha_aggregator_duplicates_total{where="memory"}'],
                         exp.sent - len(exp.ids))

        self.stop_pipeline()
        self.assertRegex(self.svc.log("collector"),
                         r"stopped sent=%d skipped=%d " % (exp.sent, len(bad_lines)
                                                          + sum(ing_bad.values())))

    @staticmethod
    def bucket_ms(key):
        return int(key.rsplit(":", 1)[1]) * 1000

    def test_aggregator_survives_unclamped_event_times(self):
        """With the collector's clamp off, far-future and 1970 event times reach the
        aggregator: they are counted (the totals stay exact) and kept out of spike detection."""
        exp = Expect()
        lines = []
        for i, when in enumerate(("2999-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                                  9000000000000000000, 9223372036854775807, 1,
                                  "1970-01-01T00:00:00.001Z", "2026-11-16T10:00:00Z")):
            obj = post("t-%d" % i, 0)
            obj["created_at"] = when
            lines.append(line(obj))
            exp.add("t-%d" % i, 0)
        jsonl = os.path.join(self.work, "times.jsonl")
        with open(jsonl, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        cfg = os.path.join(self.work, "escucha.json")
        et.write_json(cfg, config(self.work, self.redis.sock, self.ports, jsonl, max_future_s=0))
        self.start_pipeline(cfg)
        r = self.redis.client()
        et.wait_for(lambda: int(r.cmd("GET", "esc:agg:processed") or 0) >= exp.sent, 60,
                    "the posts to be counted")
        total = r.hgetall("esc:t:{gob/congreso}")
        self.assertEqual(int(total["posts"]), exp.topics["gob/congreso"])
        self.assertIn("post dated in the future kept out of spike detection",
                      self.svc.log("aggregator"))
        a = et.metrics(self.ports["metrics_aggregator"])
        self.assertEqual(a["escucha_aggregator_invalid_total"], 0)
        self.assertEqual(labelled(et.metrics(self.ports["metrics_collector"]),
                                  "escucha_collector_clamped_total"), {})
        self.stop_pipeline()


if __name__ == "__main__":
    BINDIR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
