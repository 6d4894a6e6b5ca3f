"""The monitoring files: the Grafana dashboard (deploy/grafana/escucha.json) is what
make_dashboard.py writes, is a well-formed dashboard (unique panel ids, every panel on the
24-column grid without overlaps, every panel with queries that have an expr and a refId),
and every query is valid PromQL; the alert rules (deploy/prometheus/alerts.yml) have a
severity and a summary and are valid rules; the Prometheus configs scrape every service on
its metrics port. Every escucha_* metric a query or rule names is one the services register
(a string literal in the C sources), so a renamed metric fails here, not on a dashboard.

PromQL and the configs are checked with promtool when it is installed (Debian package
prometheus); without it the structure is still checked.

usage: test_monitoring.py BUILDDIR"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

import deploy_support as ds

BUILD = None
DASHBOARD = os.path.join(ds.TOP, "deploy", "grafana", "escucha.json")
ALERTS = os.path.join(ds.TOP, "deploy", "prometheus", "alerts.yml")
PROM_DIR = os.path.join(ds.TOP, "deploy", "prometheus")
BUILTIN = {"escucha_build_info", "escucha_up_seconds", "escucha_healthy"}  # esc_metrics.c adds these
SOURCE_DIRS = ("common", "collector", "broker", "classifier", "aggregator", "notifier", "api")


def registered_metrics():
    """escucha_* names that appear as string literals in the services' C sources."""
    names = set(BUILTIN)
    for d in SOURCE_DIRS:
        for path in glob.glob(os.path.join(ds.TOP, d, "**", "*.c"), recursive=True):
            if path.endswith("_test.c"):
                continue
            with open(path, errors="replace") as f:
                names.update(re.findall(r'"(escucha_[a-z0-9_]+)"', f.read()))
    return names


def metric_names(expr):
    names = set()
    for name in re.findall(r"\b(escucha_[a-z0-9_]+)", expr):
        names.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return names


def promql(expr):
    """A Grafana query as plain PromQL."""
    return expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")


def promtool():
    return shutil.which("promtool")


class MonitoringTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DASHBOARD) as f:
            cls.dashboard = json.load(f)
        with open(ALERTS) as f:
            cls.alerts = yaml.safe_load(f)
        cls.registered = registered_metrics()
        cls.tmp = tempfile.mkdtemp(prefix="esc-mon-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def queries(self):
        for p in self.dashboard["panels"]:
            for t in p.get("targets", []):
                yield p["title"], t["expr"]

    def rules(self):
        for group in self.alerts["groups"]:
            for rule in group["rules"]:
                yield group["name"], rule

    def check_rules_file(self, path):
        r = subprocess.run([promtool(), "check", "rules", path], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_monitoring_dashboard_is_generated(self):
        script = os.path.join(ds.TOP, "deploy", "grafana", "make_dashboard.py")
        sys.path.insert(0, os.path.dirname(script))
        try:
            import make_dashboard
        finally:
            sys.path.pop(0)
        with open(DASHBOARD) as f:
            self.assertEqual(f.read(), make_dashboard.render(),
                             "run deploy/grafana/make_dashboard.py")

    def test_monitoring_dashboard_structure(self):
        d = self.dashboard
        for key in ("title", "uid", "schemaVersion", "panels", "templating"):
            self.assertIn(key, d)
        self.assertEqual(d["templating"]["list"][0]["type"], "datasource")
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        cells = set()
        for p in d["panels"]:
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    self.assertNotIn((x, y), cells, "%s overlaps" % p["title"])
                    cells.add((x, y))
            if p["type"] == "row":
                continue
            self.assertIn(p["type"], ("timeseries", "stat", "table", "gauge", "bargauge"))
            self.assertTrue(p["targets"], p["title"])
            refs = [t["refId"] for t in p["targets"]]
            self.assertEqual(len(refs), len(set(refs)), p["title"])
            for t in p["targets"]:
                self.assertTrue(t["expr"].strip(), p["title"])
                self.assertEqual(t["datasource"]["uid"], "${datasource}")
        rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
        self.assertGreaterEqual(len(rows), 4)
        exprs = " ".join(e for _, e in self.queries())
        for needed in ("rate(", "escucha_build_info", "redis"):
            self.assertIn(needed, exprs)

    def test_monitoring_metrics_exist(self):
        used = set()
        for _, expr in self.queries():
            used |= metric_names(expr)
        for _, rule in self.rules():
            used |= metric_names(rule["expr"])
        self.assertTrue(used)
        missing = sorted(used - self.registered)
        self.assertEqual(missing, [], "metrics no service registers")

    def test_monitoring_queries_are_promql(self):
        if promtool() is None:
            self.skipTest("promtool not installed (Debian package prometheus)")
        # every dashboard query as a recording rule: promtool parses each expression
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": "escucha:dashboard_%d" % i, "expr": promql(expr)}
            for i, (_, expr) in enumerate(self.queries())]}]}
        path = os.path.join(self.tmp, "dashboard-rules.yml")
        with open(path, "w") as f:
            yaml.safe_dump(rules, f)
        self.check_rules_file(path)

    def test_monitoring_alert_rules(self):
        names = set()
        for group, rule in self.rules():
            self.assertRegex(rule["alert"], r"^Escucha[A-Z][A-Za-z]+$")
            self.assertNotIn(rule["alert"], names)
            names.add(rule["alert"])
            self.assertIn(rule["labels"]["severity"], ("page", "warn"), rule["alert"])
            self.assertTrue(rule["annotations"]["summary"], rule["alert"])
            self.assertTrue(rule["annotations"]["description"], rule["alert"])
        self.assertIn("EscuchaServiceDown", names)
        if promtool() is not None:
            self.check_rules_file(ALERTS)

    def test_monitoring_documented(self):
        with open(os.path.join(ds.TOP, "docs", "operations.md")) as f:
            doc = f.read()
        for _, rule in self.rules():
            self.assertIn("`%s`" % rule["alert"], doc)
        for p in self.dashboard["panels"]:
            if p["type"] == "row":
                self.assertIn(p["title"].lower(), doc.lower())

    def test_monitoring_prometheus_configs(self):
        jobs_seen = {}
        for name in ("prometheus.yml", "prometheus-host.yml"):
            with open(os.path.join(PROM_DIR, name)) as f:
                cfg = yaml.safe_load(f)
            jobs = {}
            for job in cfg["scrape_configs"]:
                ports = set()
                for sc in job.get("static_configs", []):
                    ports |= {int(t.rsplit(":", 1)[1]) for t in sc["targets"]}
                for sd in job.get("dns_sd_configs", []):
                    ports.add(sd["port"])
                jobs[job["job_name"]] = ports
            jobs_seen[name] = jobs
            for svc in ds.SERVICES:
                job = "escucha-" + svc
                self.assertIn(job, jobs, name)
                self.assertIn(ds.METRICS_PORTS[svc], jobs[job], "%s %s" % (name, job))
            if promtool() is None:
                continue
            # the compose file mounts alerts.yml at /etc/prometheus: point the copy at ours
            cfg["rule_files"] = [ALERTS]
            path = os.path.join(self.tmp, name)
            with open(path, "w") as f:
                yaml.safe_dump(cfg, f)
            r = subprocess.run([promtool(), "check", "config", path], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # the host config lists several classifier instances (escucha-classifier@<port>)
        self.assertGreater(len(jobs_seen["prometheus-host.yml"]["escucha-classifier"]), 1)


if __name__ == "__main__":
    BUILD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
