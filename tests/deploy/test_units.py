"""The install layout and the systemd units (deploy/systemd/, cmake/EscPackaging.cmake):
`cmake --install BUILD --prefix TMP` lays out the binaries, the example config, the secrets
template, one unit per service (a template for the classifier), escucha.target and the man
pages; every unit carries the sandboxing options, stops later than the service's grace_ms,
runs a command line that accepts the installed example config, and passes
`systemd-analyze verify` and `systemd-analyze security --offline` (exposure at most 2.0).
systemd need not run: both commands work on files.

usage: test_units.py BUILDDIR"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import deploy_support as ds

BUILD = None

REQUIRED = {  # [Service] settings every unit must have, with their exact value
    "DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "NoNewPrivileges": "yes", "StateDirectory": "escucha", "ConfigurationDirectory": "escucha",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "CapabilityBoundingSet": "",
    "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes", "Restart": "on-failure",
    "KillSignal": "SIGTERM", "RestartPreventExitStatus": "2",
}


def unit_name(service):
    return "escucha-classifier@.service" if service == "classifier" else \
        "escucha-%s.service" % service


class UnitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bindir = BUILD
        cls.services = ds.built_services(BUILD)
        cls.tmp = tempfile.mkdtemp(prefix="esc-units-")
        cls.prefix = os.path.join(cls.tmp, "prefix")
        r = subprocess.run(["cmake", "--install", BUILD, "--prefix", cls.prefix],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("cmake --install failed: " + r.stdout + r.stderr)
        cls.unitdir = os.path.join(cls.prefix, "lib", "systemd", "system")
        cls.confdir = os.path.join(cls.prefix, "etc", "escucha")
        # The units start only once escucha.json exists: install the example as the config.
        shutil.copy(os.path.join(cls.confdir, "escucha.json.example"),
                    os.path.join(cls.confdir, "escucha.json"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def unit(self, service):
        return ds.parse_unit(os.path.join(self.unitdir, unit_name(service)))

    def test_units_install_layout(self):
        self.assertEqual(self.services[:5], list(ds.CORE_SERVICES))
        for svc in self.services:
            exe = os.path.join(self.prefix, "bin", "escucha-" + svc)
            self.assertTrue(os.access(exe, os.X_OK), exe)
            self.assertTrue(os.path.exists(os.path.join(self.unitdir, unit_name(svc))), svc)
        with open(os.path.join(ds.TOP, "examples", "escucha.json")) as a, \
                open(os.path.join(self.confdir, "escucha.json.example")) as b:
            self.assertEqual(a.read(), b.read())
        self.assertTrue(os.path.exists(os.path.join(self.confdir, "escucha.env.example")))
        target = ds.parse_unit(os.path.join(self.unitdir, "escucha.target"))
        wants = " ".join(ds.unit_values(target, "Unit", "Wants")).split()
        expected = ["escucha-classifier@9110.service" if s == "classifier" else
                    "escucha-%s.service" % s for s in self.services]
        self.assertEqual(wants, expected)
        self.assertEqual(ds.unit_values(target, "Install", "WantedBy"), ["multi-user.target"])
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            has_help2man = re.search(r"^ESC_HELP2MAN:FILEPATH=/", f.read(), re.M)
        if has_help2man:
            for svc in self.services:
                page = os.path.join(self.prefix, "share", "man", "man1", "escucha-%s.1" % svc)
                with open(page) as f:
                    text = f.read()
                self.assertIn(".SH CONFIGURATION", text)
                self.assertIn("\\-\\-check\\-config", text)

    def test_units_sandboxing(self):
        for svc in self.services:
            unit = self.unit(svc)
            for key, value in REQUIRED.items():
                self.assertEqual(ds.unit_values(unit, "Service", key), [value],
                                 "%s: %s" % (svc, key))
            self.assertIn("@system-service", ds.unit_values(unit, "Service", "SystemCallFilter"))
            self.assertEqual(ds.unit_values(unit, "Service", "EnvironmentFile"),
                             ["-%s/escucha.env" % self.confdir])
            self.assertEqual(ds.unit_values(unit, "Unit", "PartOf"), ["escucha.target"])

    def test_units_classifier_finds_its_installed_data(self):
        """The installed classifier loads its language model and sentiment lexicon from
        <prefix>/share/escucha with no path in the config or the environment, and a binary in
        the build tree keeps using the build tree's files."""
        if "classifier" not in self.services:
            self.skipTest("no classifier built")
        data = os.path.join(self.prefix, "share", "escucha")
        for name in ("langid.model", "sentiment.lex"):
            self.assertTrue(os.path.isfile(os.path.join(data, name)), name)
        post = json.dumps({"id": "1", "platform": "mastodon", "created_at": "2026-11-16T05:00:00Z",
                           "text": "Me encanta esta ley del congreso, excelente trabajo",
                           "author": {"handle": "@ana@example.org"}})
        exe = os.path.join(self.prefix, "bin", "escucha-classifier")
        cfg = os.path.join(self.confdir, "escucha.json.example")
        env = ds.clean_env(ds.EXAMPLE_SECRETS)  # no ESC_CLASSIFIER_* path override
        r = subprocess.run([exe, "--config", cfg, "--explain", "--log-level", "debug"],
                           input=post, capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("language: es", r.stdout)
        self.assertIn("positive", r.stdout)
        self.assertIn("path=%s" % os.path.join(data, "sentiment.lex"), r.stderr)
        r = subprocess.run([ds.binary(BUILD, "classifier"), "--config", cfg, "--explain",
                            "--log-level", "debug"],
                           input=post, capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("path=%s" % data, r.stderr)
        self.assertIn("path=%s" % BUILD, r.stderr)

    def test_units_stop_timeout_above_grace(self):
        for svc in self.services:
            unit = self.unit(svc)
            timeout_s = int(ds.unit_values(unit, "Service", "TimeoutStopSec")[0])
            grace_ms = float(ds.config_keys(ds.binary(BUILD, svc))[svc + ".grace_ms"])
            self.assertGreater(timeout_s * 1000, grace_ms + 5000, svc)

    def test_units_command_lines_accept_the_example_config(self):
        for svc in self.services:
            unit = self.unit(svc)
            exe = os.path.join(self.prefix, "bin", "escucha-" + svc)
            cfg = os.path.join(self.confdir, "escucha.json")
            self.assertEqual(ds.unit_values(unit, "Service", "ExecStart"),
                             ["%s --config %s" % (exe, cfg)])
            self.assertEqual(ds.unit_values(unit, "Unit", "ConditionPathExists"), [cfg])
            pre = ds.unit_values(unit, "Service", "ExecStartPre")[0].split()
            self.assertEqual(pre[-1], "--check-config")
            env = {}
            for assignment in ds.unit_values(unit, "Service", "Environment"):
                k, _, v = assignment.partition("=")
                env[k] = v.replace("%i", "9110")
            env.update(ds.EXAMPLE_SECRETS)
            r = ds.run(pre, env=ds.clean_env(env))
            self.assertEqual(r.returncode, 0, "%s: %s" % (svc, r.stderr))

    def test_units_metrics_ports(self):
        for svc in self.services:
            unit = self.unit(svc)
            port = "%i" if svc == "classifier" else str(ds.METRICS_PORTS[svc])
            envs = ds.unit_values(unit, "Service", "Environment")
            self.assertEqual(envs[0], "%s=127.0.0.1:%s" % (ds.env_key(svc, "metrics_listen"),
                                                          port))
            if svc != "api":
                self.assertEqual(len(envs), 1, svc)
            else:
                # the installed dashboard and validator, not the build tree's
                paths = dict(e.split("=", 1) for e in envs[1:])
                self.assertEqual(sorted(paths), ["ESC_API_VALIDATOR", "ESC_API_WEB_ROOT"])
                self.assertTrue(os.path.isfile(os.path.join(paths["ESC_API_WEB_ROOT"],
                                                            "index.html")))
                self.assertTrue(os.access(paths["ESC_API_VALIDATOR"], os.X_OK))
        classifier = ds.parse_unit(os.path.join(self.unitdir, unit_name("classifier")))
        self.assertEqual(ds.unit_values(classifier, "Install", "DefaultInstance"), ["9110"])

    def test_units_start_downstream_first(self):
        """systemd stops in the reverse of the start order: collector, broker, classifiers,
        aggregator, notifier, so every service drains into a peer that still runs."""
        pipeline = ["notifier", "aggregator", "classifier", "broker", "collector"]
        name = {s: unit_name(s).replace("@.", "@9110.") for s in pipeline}
        after = {s: set() for s in pipeline}   # s starts after every unit in after[s]
        for s in pipeline:
            unit = self.unit(s)
            for dep in " ".join(ds.unit_values(unit, "Unit", "After")).split():
                after[s].add(dep)
            for dep in " ".join(ds.unit_values(unit, "Unit", "Before")).split():
                other = [o for o in pipeline if name[o] == dep]
                self.assertEqual(len(other), 1, dep)
                after[other[0]].add(name[s])
        for down, up in zip(pipeline, pipeline[1:]):
            self.assertIn(name[down], after[up], "%s must start after %s" % (up, down))

    def test_units_systemd_analyze_verify(self):
        if shutil.which("systemd-analyze") is None:
            self.fail_or_skip("systemd-analyze is missing (apt-get install systemd)")
        names = [unit_name(s).replace("@.", "@9110.") for s in self.services]
        env = ds.clean_env({"MANPATH": os.path.join(self.prefix, "share", "man") + ":"})
        man = "--man=yes" if os.path.isdir(os.path.join(self.prefix, "share", "man")) \
            else "--man=no"
        r = subprocess.run(["systemd-analyze", "verify", man] + names + ["escucha.target"],
                           cwd=self.unitdir, capture_output=True, text=True, env=env,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr.strip(), "")

    def test_units_security_exposure(self):
        if shutil.which("systemd-analyze") is None:
            self.fail_or_skip("systemd-analyze is missing (apt-get install systemd)")
        for svc in self.services:
            name = unit_name(svc).replace("@.", "@9110.")
            # --threshold is in tenths: 20 = "exposure 2.0 or less" (0 is best, 10 worst)
            r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--man=no",
                                "--threshold=20", name], cwd=self.unitdir,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout[-600:] + r.stderr)
            self.assertRegex(r.stdout, r"Overall exposure level for %s: [01]\.\d OK" %
                             re.escape(name))

    def fail_or_skip(self, why):
        if os.environ.get("CI") == "true":
            self.fail(why)
        self.skipTest(why)


if __name__ == "__main__":
    BUILD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
