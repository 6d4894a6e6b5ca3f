"""Validates docker-compose.yml and the Dockerfile without a Docker engine (none runs on our
machines): the YAML parses, every escucha service runs a binary we build with a config file
that exists in the mounted folder, and each service accepts its compose environment as config
overrides (`--check-config` with exactly that environment exits 0). Binders listen on
tcp://*:port and connecters use the binder's service name. Every escucha service serves its
metrics on the port of docs/operations.md, Prometheus (deploy/prometheus/prometheus.yml)
scrapes each of them, and the scaled services can be scaled (no container_name, no host port).

usage: test_compose.py BINDIR"""

import os
import re
import subprocess
import sys
import unittest

import yaml

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINDIR = None
SERVICES = ("broker", "collector", "classifier", "aggregator", "notifier", "api")
METRICS_PORTS = {"broker": 9101, "collector": 9102, "classifier": 9110, "aggregator": 9103,
                 "notifier": 9104, "api": 9105}


def expand(value):
    """Resolves ${VAR:?msg} and ${VAR:-default} the way compose would, with test values."""
    return re.sub(r"\$\{([A-Z0-9_]+)(:[?-][^}]*)?\}", lambda m: "test-value-for-" + m.group(1),
                  str(value))


class ComposeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(TOP, "docker-compose.yml")) as f:
            cls.doc = yaml.safe_load(f)

    def test_compose_services_present(self):
        services = self.doc["services"]
        for name in SERVICES + ("redis", "mail"):
            self.assertIn(name, services)
        for name in SERVICES:
            self.assertEqual(services[name]["command"][0], "escucha-" + name)
            self.assertTrue(os.path.exists(os.path.join(BINDIR, name, "escucha-" + name)))

    def test_compose_env_is_valid_config(self):
        services = self.doc["services"]
        for name in SERVICES:
            svc = services[name]
            cmd = svc["command"]
            cfg = cmd[cmd.index("--config") + 1]
            self.assertTrue(cfg.startswith("/etc/escucha/"), cfg)
            # /etc/escucha is ./examples mounted read-only
            local = os.path.join(TOP, "examples", os.path.relpath(cfg, "/etc/escucha"))
            self.assertTrue(os.path.exists(local), local)
            env = {k: v for k, v in os.environ.items() if not k.startswith("ESC_")}
            env.update({k: expand(v) for k, v in svc.get("environment", {}).items()})
            r = subprocess.run([os.path.join(BINDIR, name, "escucha-" + name), "--config", local,
                                "--check-config"], capture_output=True, text=True, env=env,
                               timeout=30)
            self.assertEqual(r.returncode, 0, "%s: %s" % (name, r.stderr))

    def test_compose_topology(self):
        services = self.doc["services"]
        binds = {"broker": ("ESC_BUS_COLLECT", "ESC_BUS_CLASSIFY", "ESC_BUS_ACK",
                            "ESC_BUS_ACK_PUB"),
                 "aggregator": ("ESC_BUS_AGGREGATE",), "notifier": ("ESC_BUS_NOTIFY",)}
        for name, keys in binds.items():
            for k in keys:
                self.assertTrue(services[name]["environment"][k].startswith("tcp://*:"), k)
        env = services["classifier"]["environment"]
        self.assertEqual(env["ESC_BUS_CLASSIFY"], "tcp://broker:5551")
        self.assertEqual(env["ESC_BUS_AGGREGATE"], "tcp://aggregator:5552")

    def test_compose_collector_journals_on_its_own_volume(self):
        svc = self.doc["services"]["collector"]
        env = svc["environment"]
        journal = env["ESC_COLLECTOR_JOURNAL_DIR"]
        self.assertEqual(env["ESC_BUS_ACK_PUB"], "tcp://broker:5555")
        self.assertEqual(self.doc["services"]["aggregator"]["environment"]["ESC_BUS_ACK"],
                         "tcp://broker:5554")
        # an anonymous volume: one per container, so scaled collectors never share a journal
        self.assertIn(journal, svc["volumes"])
        with open(os.path.join(TOP, "Dockerfile")) as f:
            self.assertIn(journal, f.read())  # created in the image, owned by its user

    def test_dockerfile_builds_every_service(self):
        with open(os.path.join(TOP, "Dockerfile")) as f:
            text = f.read()
        self.assertIn("FROM debian:12", text)
        self.assertIn("cmake --install", text)
        with open(os.path.join(TOP, "scripts", "deps.sh")) as f:
            deps = f.read()
        # the build stage installs what the build needs: by running scripts/deps.sh, or by
        # naming every -dev package it lists
        if "scripts/deps.sh" not in text:
            for pkg in re.findall(r"\b(lib[a-z0-9.+-]+-dev)\b", deps):
                if pkg != "libcmocka-dev":
                    self.assertIn(pkg, text, pkg)

    def test_compose_metrics_ports(self):
        services = self.doc["services"]
        for name in SERVICES:
            env = services[name]["environment"]
            key = "ESC_%s_METRICS_LISTEN" % name.upper()
            self.assertEqual(env[key], ":%d" % METRICS_PORTS[name], name)

    def test_compose_prometheus_scrapes_every_service(self):
        services = self.doc["services"]
        prom = services["prometheus"]
        self.assertTrue(prom["image"].startswith("prom/prometheus"))
        mounts = {v.split(":")[1]: v.split(":")[0] for v in prom["volumes"]}
        config = mounts["/etc/prometheus/prometheus.yml"]
        self.assertEqual(config, "./deploy/prometheus/prometheus.yml")
        with open(os.path.join(TOP, config)) as f:
            scrape = yaml.safe_load(f)
        rules = [mounts[os.path.join("/etc/prometheus", os.path.basename(r))]
                 for r in scrape["rule_files"]]
        self.assertEqual(rules, ["./deploy/prometheus/alerts.yml"])
        targets = {}
        for job in scrape["scrape_configs"]:
            for sc in job.get("static_configs", []):
                for target in sc["targets"]:
                    host, port = target.split(":")
                    targets[host] = int(port)
            for sd in job.get("dns_sd_configs", []):
                for host in sd["names"]:
                    targets[host] = sd["port"]
                self.assertEqual(sd["type"], "A")
        self.assertEqual(targets, {n: METRICS_PORTS[n] for n in SERVICES})

    def test_compose_classifier_uses_installed_data(self):
        env = self.doc["services"]["classifier"]["environment"]
        with open(os.path.join(TOP, "Dockerfile")) as f:
            self.assertIn("--prefix /opt/escucha", f.read())
        self.assertEqual(env["ESC_CLASSIFIER_LANGUAGE_MODEL"],
                         "/opt/escucha/share/escucha/langid.model")
        self.assertEqual(env["ESC_CLASSIFIER_SENTIMENT_LEXICON"],
                         "/opt/escucha/share/escucha/sentiment.lex")

    def test_compose_scaled_services_can_scale(self):
        services = self.doc["services"]
        for name in ("collector", "classifier"):
            self.assertNotIn("container_name", services[name])
            self.assertNotIn("ports", services[name])
        for name, svc in services.items():
            self.assertNotIn("container_name", svc, name)


if __name__ == "__main__":
    BINDIR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
