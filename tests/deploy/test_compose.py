"""Validates docker-compose.yml and the Dockerfile without a Docker engine (none runs on our
machines): the YAML parses, every escucha service runs a binary we build with a config file
that exists in the mounted folder, and each service accepts its compose environment as config
overrides (`--check-config` with exactly that environment exits 0). Binders listen on
tcp://*:port and connecters use the binder's service name.

usage: test_compose.py BINDIR"""

import os
import re
import subprocess
import sys
import unittest

import yaml

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINDIR = None
SERVICES = ("broker", "collector", "classifier", "aggregator", "notifier")


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
        binds = {"broker": ("ESC_BUS_COLLECT", "ESC_BUS_CLASSIFY"),
                 "aggregator": ("ESC_BUS_AGGREGATE",), "notifier": ("ESC_BUS_NOTIFY",)}
        for name, keys in binds.items():
            for k in keys:
                self.assertTrue(services[name]["environment"][k].startswith("tcp://*:"), k)
        env = services["classifier"]["environment"]
        self.assertEqual(env["ESC_BUS_CLASSIFY"], "tcp://broker:5551")
        self.assertEqual(env["ESC_BUS_AGGREGATE"], "tcp://aggregator:5552")

    def test_dockerfile_builds_every_service(self):
        with open(os.path.join(TOP, "Dockerfile")) as f:
            text = f.read()
        self.assertIn("FROM debian:12", text)
        self.assertIn("cmake --install", text)
        with open(os.path.join(TOP, "scripts", "deps.sh")) as f:
            deps = f.read()
        # every -dev package the build needs is in the Dockerfile's build stage too
        for pkg in re.findall(r"\b(lib[a-z0-9.+-]+-dev)\b", deps):
            if pkg != "libcmocka-dev":
                self.assertIn(pkg, text, pkg)


if __name__ == "__main__":
    BINDIR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
