"""End-to-end test of the whole pipeline with real parts: a private redis-server, the broker,
two classifiers, the aggregator, the notifier, a local webhook receiver, and two collectors
replaying JSONL files concurrently. Asserts exact per-topic counts in Redis, one signed alert
for the burst, a digest with the right numbers, and that every service exits 0 on SIGTERM.

usage: test_pipeline.py BINDIR   (BINDIR is the cmake build directory)"""

import datetime as dt
import json
import os
import shutil
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import escucha_test as et  # noqa: E402

BINDIR = None
SECRET = "e2e-hook-secret-4f9a"
UTC = dt.timezone.utc

# (text, expected topic keys). Forms vary on purpose: case, accents, hashtags, phrases.
TEMPLATES = [
    ("El CONGRESO aprobó la ley de presupuesto", ["gob/congreso"]),
    ("Debate en el Poder Legislativo esta tarde 🏛️", ["gob/congreso"]),
    ("Nueva eleccion regional anunciada por el JNE", ["gob/elecciones"]),
    ("Se acercan las #Elecciones2026 y nadie habla de propuestas", ["gob/elecciones"]),
    ("La informalidad laboral sigue creciendo en Lima", ["dev/informalidad"]),
    ("More informal work after the pandemic, says the report", ["dev/informalidad"]),
    ("Digitalización del Estado: el Congreso aprueba la firma digital",
     ["gob/congreso", "dev/digital"]),
    ("DIGITALIZACION y elección electrónica, ¿es posible?", ["gob/elecciones", "dev/digital"]),
    ("Feliz año nuevo a todos, nada que ver aquí", []),
    ("Partido de fútbol esta noche en el estadio", []),
]


def post(i, when, text, author):
    return {
        "id": "e2e-%d" % i, "platform": "mastodon",
        "author": {"handle": "@%s@mastodon.example" % author, "name": author.title(),
                   "followers": 10 + i % 7},
        "text": text, "lang": "es", "url": "https://mastodon.example/@%s/%d" % (author, i),
        "created_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "likes": i % 3, "reposts": i % 2, "replies": 0,
    }


def build_inputs(workdir):
    """Phase 1 (two files, replayed concurrently): steady history from Monday 2026-11-16 05:00Z
    to Wednesday 05:00Z. Phase 2 (one file, "burst"): a burst of 60 congress posts in 10 minutes
    on Wednesday 15:00Z, then a quiet tail; the same lines are also split in two files,
    "burst_only" and "tail". Returns paths, expected per-topic counts, good lines."""
    expected = {}
    files = {"a": [], "b": [], "burst": [], "burst_only": [], "tail": []}
    start = dt.datetime(2026, 11, 16, 5, 0, tzinfo=UTC)
    i = 0
    for k in range(48 * 3):  # one post every 20 minutes for 48 h
        text, topics = TEMPLATES[k % len(TEMPLATES)]
        when = start + dt.timedelta(minutes=20 * k)
        files["a" if k % 2 == 0 else "b"].append(json.dumps(post(i, when, text, "ana%d" % (k % 9)),
                                                            ensure_ascii=False))
        for t in topics:
            expected[t] = expected.get(t, 0) + 1
        i += 1
    burst = dt.datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
    for k in range(60):
        when = burst + dt.timedelta(seconds=10 * k)
        files["burst_only"].append(json.dumps(post(i, when,
                                                   "¡Vacancia! El congreso vota hoy #Congreso",
                                                   "vox%d" % (k % 13)), ensure_ascii=False))
        expected["gob/congreso"] += 1
        i += 1
    for k in range(24):  # quiet tail: pushes the event-time watermark past the burst
        when = burst + dt.timedelta(minutes=30 + 10 * k)
        files["tail"].append(json.dumps(post(i, when, "Partido de fútbol esta noche", "zz"),
                                        ensure_ascii=False))
        i += 1
    files["burst"] = files["burst_only"] + files["tail"]
    good = i
    # Malformed lines, each reported with its line number and skipped.
    files["a"].insert(3, '{"id": "broken", "platform": "mastodon", "text": "no date"}')
    files["b"].insert(5, "this is not json at all")
    paths = {}
    for name, lines in files.items():
        paths[name] = os.path.join(workdir, name + ".jsonl")
        with open(paths[name], "w") as f:
            f.write("\n".join(lines) + "\n")
    return paths, expected, good


def config(workdir, redis_sock, ports, hook_port, source):
    return {
        "deployment": "e2e",
        "redis": {"unix_socket": redis_sock, "prefix": "esc"},
        "bus": {k: "tcp://127.0.0.1:%d" % p for k, p in ports.items()
                if not k.startswith("metrics_")},
        "sources": [{"name": "replay", "type": "jsonl", "path": source}],
        "teams": [
            {"id": "gob", "name": "Gobernanza", "language": "es", "timezone": "America/Lima",
             "recipients": ["gob@example.org"],
             "webhooks": [{"url": "http://127.0.0.1:%d/hooks/gob" % hook_port,
                           "secret_env": "E2E_HOOK_SECRET"}],
             "topics": [
                 {"id": "congreso", "name": "Congreso",
                  "keywords": ["congreso", "poder legislativo"]},
                 {"id": "elecciones", "name": "Elecciones", "keywords": ["elección", "elecciones"]},
             ]},
            {"id": "dev", "name": "Development", "language": "en", "timezone": "America/Lima",
             "recipients": ["dev@example.org"],
             "topics": [
                 {"id": "informalidad", "name": "Informality",
                  "keywords": ["informalidad", "informal work"]},
                 {"id": "digital", "name": "Digitalisation", "keywords": ["digitalización"]},
             ]},
        ],
        "aggregator": {"flush_ms": 200,
                       "metrics_listen": "127.0.0.1:%d" % ports["metrics_aggregator"], "spike": {"window_min": 10, "baseline_min": 600,
                                                  "factor": 4.0, "min_count": 20,
                                                  "cooldown_min": 180, "lateness_s": 60}},
        "notifier": {"outbox": os.path.join(workdir, "outbox"), "retry_base_ms": 100,
                     "metrics_listen": "127.0.0.1:%d" % ports["metrics_notifier"]},
        "broker": {"metrics_listen": "127.0.0.1:%d" % ports["metrics_broker"]},
    }


class PipelineTest(unittest.TestCase):
    def setUp(self):
        self.work = et.make_workdir("escucha-e2e-")
        self.redis = et.Redis(self.work)
        self.hook = et.WebhookReceiver()
        self.svc = et.Services(BINDIR, self.work, env={"E2E_HOOK_SECRET": SECRET})

    def tearDown(self):
        self.svc.kill_all()
        self.hook.stop()
        self.redis.stop()
        if not self._outcome.result.errors and not self._outcome.result.failures:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            et.dump_logs(self.work, "e2e")

    def test_pipeline_end_to_end(self):
        paths, expected, good = build_inputs(self.work)
        ports = {k: et.free_port() for k in ("collect", "classify", "aggregate", "notify",
                                             "metrics_broker", "metrics_aggregator",
                                             "metrics_notifier", "metrics_classifier",
                                             "metrics_classifier2")}
        cfgs = {}
        for name in ("a", "b", "burst_only", "tail"):
            cfgs[name] = os.path.join(self.work, "escucha-%s.json" % name)
            et.write_json(cfgs[name], config(self.work, self.redis.sock, ports, self.hook.port,
                                             paths[name]))
        main_cfg = cfgs["a"]
        for service in ("broker", "classifier", "aggregator", "notifier", "collector"):
            r = self.svc.run(service, "--config", main_cfg, "--check-config")
            self.assertEqual(r.returncode, 0, "%s --check-config: %s" % (service, r.stderr))

        s = self.svc
        s.start("notifier", "notifier", "--config", main_cfg)
        s.start("aggregator", "aggregator", "--config", main_cfg)
        base_env = s.env
        s.env = dict(base_env, ESC_CLASSIFIER_METRICS_LISTEN="127.0.0.1:%d"
                     % ports["metrics_classifier"])
        s.start("classifier1", "classifier", "--config", main_cfg)
        s.env = dict(base_env, ESC_CLASSIFIER_METRICS_LISTEN="127.0.0.1:%d"
                     % ports["metrics_classifier2"])
        s.start("classifier2", "classifier", "--config", main_cfg)
        s.env = base_env
        s.start("broker", "broker", "--config", main_cfg)
        r = self.redis.client()

        # Phase 1: two collectors at once.
        s.start("collector_a", "collector", "--config", cfgs["a"], "--once")
        s.start("collector_b", "collector", "--config", cfgs["b"], "--once")
        self.assertEqual(s.procs["collector_a"].wait(60), 0, s.log("collector_a"))
        self.assertEqual(s.procs["collector_b"].wait(60), 0, s.log("collector_b"))
        phase1 = 48 * 3
        et.wait_for(lambda: int(r.cmd("GET", "esc:agg:processed") or 0) >= phase1, 60,
                    "phase 1 posts to be counted")
        self.assertEqual(self.hook.received(), [], "no alert on the steady history")

        # Phase 2: the burst, then, once it is counted, the quiet tail. (Sent together, a batch
        # of tail posts could overtake the burst through the other classifier and move the
        # event-time watermark hours past it before its posts arrive: late for spike detection.)
        s.start("collector_burst", "collector", "--config", cfgs["burst_only"], "--once")
        self.assertEqual(s.procs["collector_burst"].wait(60), 0, s.log("collector_burst"))
        et.wait_for(lambda: int(r.cmd("GET", "esc:agg:processed") or 0) >= phase1 + 60, 60,
                    "the burst to be counted")
        s.start("collector_tail", "collector", "--config", cfgs["tail"], "--once")
        self.assertEqual(s.procs["collector_tail"].wait(60), 0, s.log("collector_tail"))
        et.wait_for(lambda: int(r.cmd("GET", "esc:agg:processed") or 0) >= good, 60,
                    "all posts to be counted")
        hooks = et.wait_for(self.hook.received, 30, "the spike alert to reach the webhook")

        # Exact counts per topic: all-time totals and the sum of day buckets.
        for key in ("gob/congreso", "gob/elecciones", "dev/informalidad", "dev/digital"):
            total = r.hgetall("esc:t:{%s}" % key)
            self.assertEqual(int(total.get("posts", 0)), expected[key], key)
            days = r.cmd("KEYS", "esc:c:{%s}:d:*" % key)
            self.assertEqual(sum(int(r.cmd("HGET", d, "posts")) for d in days), expected[key], key)
            hours = r.cmd("KEYS", "esc:c:{%s}:h:*" % key)
            self.assertEqual(sum(int(r.cmd("HGET", h, "posts")) for h in hours), expected[key])
            ttl = r.cmd("TTL", days[0])
            self.assertGreater(ttl, 0, "day buckets expire")
        self.assertEqual(int(r.cmd("GET", "esc:agg:processed")), good)
        # Reach = sum of followers of matching posts; check one topic precisely.
        burst_day = r.hgetall("esc:c:{gob/congreso}:d:%d"
                              % int(dt.datetime(2026, 11, 18, tzinfo=UTC).timestamp()))
        self.assertGreaterEqual(int(burst_day["posts"]), 60)

        # Exactly one alert, for the burst, signed.
        self.assertEqual(len(hooks), 1, [h["body"] for h in hooks])
        alert = json.loads(hooks[0]["body"])
        self.assertEqual(alert["team"], "gob")
        self.assertEqual(alert["topic"], "congreso")
        self.assertGreaterEqual(alert["observed"], 20)
        burst_ms = int(dt.datetime(2026, 11, 18, 15, 0, tzinfo=UTC).timestamp() * 1000)
        self.assertTrue(burst_ms <= alert["window_end"] <= burst_ms + 20 * 60 * 1000,
                        alert)
        # It explains itself: the topic's keywords, the burst's words, its most engaged posts.
        self.assertEqual(alert["kind"], "spike")
        self.assertEqual(alert["query"], 'congreso OR "poder legislativo"')
        self.assertIn("vacancia", alert["terms"][:3], alert["terms"])
        self.assertEqual(len(alert["samples"]), 3, alert)
        self.assertEqual(len(alert["sample_authors"]), 3, alert)
        self.assertTrue(all(u.startswith("https://mastodon.example/@vox")
                            for u in alert["sample_urls"]), alert)
        self.assertEqual(hooks[0]["path"], "/hooks/gob")
        self.assertTrue(et.verify_signature(SECRET, hooks[0]["headers"], hooks[0]["body"]),
                        "webhook signature verifies")
        # The team's history: the spike, and its "ended" event once the quiet tail passed.
        history = [json.loads(x) for x in r.cmd("LRANGE", "esc:alerts:{gob}", 0, -1)]
        self.assertEqual(sorted(h["kind"] for h in history), ["ended", "spike"], history)
        ended = [h for h in history if h["kind"] == "ended"][0]
        self.assertEqual(ended["window_start"], alert["window_start"])
        self.assertGreaterEqual(ended["observed"], alert["observed"])

        # Bad lines were reported with their line numbers, and nothing else was lost.
        self.assertIn("line=4", s.log("collector_a"))
        self.assertIn("line=6", s.log("collector_b"))

        # The weekly digest of team gob for 2026-W47 carries the week's numbers.
        eml = os.path.join(self.work, "gob-W47.eml")
        d = s.run("notifier", "--config", main_cfg, "--digest", "gob", "--period", "2026-W47",
                  "--to-file", eml)
        self.assertEqual(d.returncode, 0, d.stderr)
        with open(eml, encoding="utf-8") as f:
            mail = f.read()
        self.assertIn("To: gob@example.org", mail)
        self.assertIn("Subject:", mail)
        self.assertIn("Congreso", mail)
        self.assertIn(str(expected["gob/congreso"]), mail)
        self.assertIn(str(expected["gob/elecciones"]), mail)

        # Every service's /metrics moved with the traffic, and /healthz answers.
        def metric(port_key, name):
            url = "http://127.0.0.1:%d/metrics" % ports[port_key]
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            for line in text.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
            self.fail("%s not in %s" % (name, url))

        self.assertEqual(metric("metrics_broker", "escucha_broker_forwarded_total"), good)
        self.assertEqual(metric("metrics_notifier", "escucha_notifier_delivered_total"), 1)
        # The two classifiers shared the posts (a whole frame, up to a batch of posts, goes to
        # one of them, so with few frames one may get them all).
        outs = {key: metric(key, "escucha_classifier_out_total")
                for key in ("metrics_classifier", "metrics_classifier2")}
        self.assertEqual(sum(outs.values()), good, outs)
        self.assertEqual(metric("metrics_notifier", "escucha_notifier_dead_total"), 0)
        # The latency histograms moved with the traffic: each classifier timed every post it
        # sent (processing and intake-to-classified), the aggregator every post it counted in
        # Redis (intake-to-Redis) and its flushes, the notifier the one webhook delivery.
        for key, out in outs.items():
            self.assertEqual(metric(key, "escucha_classifier_dropped_total"), 0)
            for h in ("escucha_classifier_process_seconds",
                      "escucha_classifier_intake_latency_seconds"):
                self.assertEqual(metric(key, h + "_count"), out, (key, h))
                self.assertEqual(metric(key, h + '_bucket{le="+Inf"}'), out, (key, h))
                if out > 0:
                    self.assertGreater(metric(key, h + "_sum"), 0, (key, h))
        self.assertEqual(metric("metrics_aggregator",
                                "escucha_aggregator_intake_latency_seconds_count"), good)
        self.assertGreater(metric("metrics_aggregator",
                                  "escucha_aggregator_intake_latency_seconds_sum"), 0)
        self.assertGreater(metric("metrics_aggregator",
                                  "escucha_aggregator_flush_duration_seconds_count"), 0)
        sink = 'sink="webhook.gob.0",kind="webhook"'
        self.assertEqual(metric("metrics_notifier",
                                "escucha_notifier_delivery_duration_seconds_count{%s}" % sink), 1)
        self.assertEqual(metric("metrics_notifier",
                                'escucha_notifier_delivery_duration_seconds_bucket{%s,le="+Inf"}'
                                % sink), 1)
        for key in ("metrics_broker", "metrics_aggregator", "metrics_notifier",
                    "metrics_classifier", "metrics_classifier2"):
            health = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % ports[key],
                                            timeout=5)
            self.assertEqual(health.status, 200)
            self.assertEqual(health.read().decode(), "ok\n", key)
            self.assertEqual(metric(key, "escucha_healthy"), 1, key)

        # Stop upstream first; every service drains and exits 0.
        for name in ("broker", "classifier1", "classifier2", "aggregator", "notifier"):
            self.assertEqual(s.stop(name), 0, "%s exit status\n%s" % (name, s.log(name)))
        for name in ("classifier1", "classifier2", "aggregator", "notifier"):
            self.assertIn("stopped", s.log(name))
        # The secret never reaches a log.
        for name in s.procs:
            self.assertNotIn(SECRET, s.log(name), name)


if __name__ == "__main__":
    BINDIR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
