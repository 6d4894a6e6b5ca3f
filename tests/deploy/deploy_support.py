"""Helpers shared by the deployment tests (tests/deploy/test_*.py): which services the build
produced, how to run one with an environment, and reading systemd unit files. Python stdlib
only; run with Debian's /usr/bin/python3."""

import os
import re
import subprocess

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Every escucha service, in pipeline order; api only when the build has it.
SERVICES = ("broker", "collector", "classifier", "aggregator", "notifier", "api")
CORE_SERVICES = SERVICES[:5]
# Metrics ports of docs/operations.md#ports (classifier: the first instance).
METRICS_PORTS = {"broker": 9101, "collector": 9102, "aggregator": 9103, "notifier": 9104,
                 "api": 9105, "classifier": 9110}
# Hook secrets the example config names (examples/escucha.json: secret_env).
EXAMPLE_SECRETS = {"ESC_HOOK_SECRET_GOBERNANZA": "test-secret"}


def built_services(bindir):
    """Services whose binary is in the build tree, in pipeline order."""
    return [s for s in SERVICES if os.path.exists(binary(bindir, s))]


def binary(bindir, service):
    return os.path.join(bindir, service, "escucha-" + service)


def clean_env(extra=None):
    """The test's environment without ESC_* overrides and sanitizer leak checks of --help."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESC_")}
    env.update(extra or {})
    return env


def run(argv, env=None, timeout=60):
    return subprocess.run(argv, capture_output=True, text=True, env=env or clean_env(),
                          timeout=timeout)


def config_keys(exe):
    """The keys `exe --help-config` documents, e.g. {"broker.grace_ms": "5000", ...}."""
    r = run([exe, "--help-config"])
    keys = {}
    for m in re.finditer(r"^\s+([a-z_.N0-9]+)\s+\S+\s+default=(\S*)", r.stdout, re.M):
        keys[m.group(1)] = m.group(2)
    return keys


def env_key(service, key):
    """ESC_<SECTION>_<KEY> of a key in a service's section."""
    return "ESC_%s_%s" % (service.upper(), key.upper().replace(".", "_"))


def parse_unit(path):
    """A systemd unit as {section: [(key, value), ...]} (keys may repeat)."""
    sections = {}
    current = None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1], [])
                continue
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def unit_values(unit, section, key):
    return [v for k, v in unit.get(section, []) if k == key]
