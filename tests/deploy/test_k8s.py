"""Validates the Kubernetes manifests in deploy/k8s/ without a cluster (none runs on our
machines): every document parses and is a valid object of its API version (JSON schemas of
the Kubernetes API through the npm package kubernetes-models, installed at build time in
BUILD/tests/deploy/k8s-schema), the kustomization lists every file, selectors match the pod
labels, Services reach named container ports, the HPA scales a Deployment with CPU requests,
containers run binaries the build produces, and each escucha container accepts its own
environment (env, Secret references, envFrom) as overrides of the ConfigMap's config
(`--check-config` exits 0). Binders listen on tcp://*:port behind a Service of that port;
everyone else connects to tcp://<service>:<port>. Pods run as non-root with a read-only root
file system, resources, /healthz readiness probes, and a stop grace above grace_ms; Redis
persists with AOF (appendfsync everysec) on a PersistentVolumeClaim.

usage: test_k8s.py BUILDDIR"""

import copy
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
K8S = os.path.join(ds.TOP, "deploy", "k8s")
BINDS = {"broker": ("collect", "classify", "ack", "ack_pub"), "aggregator": ("aggregate",), "notifier": ("notify",)}


def load_all():
    docs = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    docs.append((os.path.basename(path), doc))
    return docs


class K8sTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = load_all()
        cls.objects = [d for _, d in cls.docs if d.get("kind") != "Kustomization"]
        cls.by_kind = {}
        for d in cls.objects:
            cls.by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
        cls.config_text = cls.by_kind["ConfigMap"]["escucha-config"]["data"]["escucha.json"]
        cls.config = json.loads(cls.config_text)
        cls.secret = cls.by_kind["Secret"]["escucha-secrets"]["stringData"]
        cls.tmp = tempfile.mkdtemp(prefix="esc-k8s-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def workloads(self):
        for kind in ("Deployment", "StatefulSet"):
            for name, d in self.by_kind.get(kind, {}).items():
                yield name, d

    def container_env(self, container):
        """The environment Kubernetes would give the container (Secret values resolved)."""
        env = {}
        for src in container.get("envFrom", []):
            self.assertEqual(src["secretRef"]["name"], "escucha-secrets")
            env.update(self.secret)
        for e in container.get("env", []):
            if "value" in e:
                env[e["name"]] = e["value"]
            else:
                ref = e["valueFrom"]["secretKeyRef"]
                self.assertEqual(ref["name"], "escucha-secrets")
                env[e["name"]] = self.secret[ref["key"]]
        return env

    def test_k8s_objects_have_identity(self):
        for path, d in self.docs:
            for key in ("apiVersion", "kind"):
                self.assertIn(key, d, path)
            if d["kind"] != "Kustomization":
                self.assertTrue(d["metadata"]["name"], path)
                self.assertEqual(d["metadata"]["labels"]["app.kubernetes.io/part-of"], "escucha",
                                 "%s %s" % (path, d["kind"]))
        kinds = {k: sorted(v) for k, v in self.by_kind.items()}
        self.assertEqual(kinds["Deployment"], sorted(ds.SERVICES))
        self.assertEqual(kinds["StatefulSet"], ["redis"])
        self.assertEqual(kinds["HorizontalPodAutoscaler"], ["classifier"])

    def test_k8s_kustomization_lists_every_file(self):
        with open(os.path.join(K8S, "kustomization.yaml")) as f:
            kust = yaml.safe_load(f)
        files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(K8S, "*.yaml"))
                       if not p.endswith("kustomization.yaml"))
        self.assertEqual(sorted(kust["resources"]), files)
        self.assertEqual(kust["namespace"], "escucha")
        images = {i["name"] for i in kust["images"]}
        for _, d in self.workloads():
            for c in d["spec"]["template"]["spec"]["containers"]:
                name = c["image"].split(":")[0]
                if name == "escucha":
                    self.assertIn(name, images)

    def test_k8s_schema_valid(self):
        modules = os.path.join(BUILD, "tests", "deploy", "k8s-schema", "node_modules")
        node = shutil.which("node") or shutil.which("nodejs")
        if node is None or not os.path.isdir(os.path.join(modules, "kubernetes-models")):
            why = "kubernetes-models not installed in %s (built by tests/CMakeLists.txt)" % modules
            if os.environ.get("CI") == "true":
                self.fail(why)
            self.skipTest(why)
        script = os.path.join(ds.TOP, "tests", "deploy", "k8s_validate.cjs")
        r = subprocess.run([node, script, modules], input=json.dumps(self.objects),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), len(self.objects))
        # the checker is not vacuous: a port given as text and a missing container image fail
        broken = copy.deepcopy(self.by_kind["Deployment"]["broker"])
        container = broken["spec"]["template"]["spec"]["containers"][0]
        container["ports"][0]["containerPort"] = "5550"
        del container["name"]
        r = subprocess.run([node, script, modules], input=json.dumps([broken]),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("containerPort must be integer", r.stdout)

    def test_k8s_selectors_match_labels(self):
        pods = {}
        for name, d in self.workloads():
            labels = d["spec"]["template"]["metadata"]["labels"]
            for k, v in d["spec"]["selector"]["matchLabels"].items():
                self.assertEqual(labels.get(k), v, name)
            pods[name] = d
        for name, svc in self.by_kind["Service"].items():
            sel = svc["spec"]["selector"]
            matched = [n for n, d in pods.items()
                       if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v
                              for k, v in sel.items())]
            self.assertEqual(len(matched), 1, "%s selects %s" % (name, matched))
            container = pods[matched[0]]["spec"]["template"]["spec"]["containers"][0]
            named = {p["name"]: p["containerPort"] for p in container["ports"]}
            for port in svc["spec"]["ports"]:
                self.assertIn(port["targetPort"], named, name)
                self.assertEqual(named[port["targetPort"]], port["port"], name)
        hpa = self.by_kind["HorizontalPodAutoscaler"]["classifier"]["spec"]
        target = self.by_kind["Deployment"][hpa["scaleTargetRef"]["name"]]
        self.assertEqual(hpa["scaleTargetRef"]["kind"], "Deployment")
        self.assertIn("cpu", target["spec"]["template"]["spec"]["containers"][0]["resources"]
                      ["requests"])
        self.assertEqual(hpa["metrics"][0]["resource"]["name"], "cpu")
        self.assertGreaterEqual(hpa["maxReplicas"], hpa["minReplicas"])

    def test_k8s_containers_run_built_binaries_with_valid_config(self):
        cfg_path = os.path.join(self.tmp, "escucha.json")
        with open(cfg_path, "w") as f:
            f.write(self.config_text)
        for name in ds.SERVICES:
            d = self.by_kind["Deployment"][name]
            spec = d["spec"]["template"]["spec"]
            c = spec["containers"][0]
            self.assertEqual(c["command"][0], "escucha-" + name)
            self.assertTrue(os.path.exists(ds.binary(BUILD, name)), name)
            cfg = c["command"][c["command"].index("--config") + 1]
            mount = [m for m in c["volumeMounts"] if m["name"] == "config"][0]
            self.assertEqual(os.path.dirname(cfg), mount["mountPath"])
            volume = [v for v in spec["volumes"] if v["name"] == "config"][0]
            self.assertEqual(volume["configMap"]["name"], "escucha-config")
            env = self.container_env(c)
            r = ds.run([ds.binary(BUILD, name), "--config", cfg_path, "--check-config"],
                       env=ds.clean_env(env))
            self.assertEqual(r.returncode, 0, "%s: %s" % (name, r.stderr))
            # the metrics address is a key the service knows (once it serves metrics)
            keys = ds.config_keys(ds.binary(BUILD, name))
            metrics_env = ds.env_key(name, "metrics_listen")
            self.assertEqual(env[metrics_env], ":%d" % ds.METRICS_PORTS[name])
            if name + ".metrics_listen" in keys:
                r = ds.run([ds.binary(BUILD, name), "--config", cfg_path, "--dump-config"],
                           env=ds.clean_env(env))
                self.assertIn(":%d" % ds.METRICS_PORTS[name], r.stdout)

    def test_k8s_bus_topology(self):
        bus = self.config["bus"]
        for name, keys in BINDS.items():
            d = self.by_kind["Deployment"][name]
            c = d["spec"]["template"]["spec"]["containers"][0]
            env = self.container_env(c)
            svc = self.by_kind["Service"][name]
            ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
            self.assertTrue(svc["spec"]["publishNotReadyAddresses"])
            for key in keys:
                port = ports[key.replace("_", "-")]  # a port name has no "_"
                self.assertEqual(env["ESC_BUS_" + key.upper()], "tcp://*:%d" % port)
                self.assertEqual(bus[key], "tcp://%s:%d" % (name, port))
                self.assertEqual(d["spec"]["strategy"]["type"], "Recreate")
        redis = self.by_kind["Service"]["redis"]["spec"]["ports"][0]["port"]
        self.assertEqual((self.config["redis"]["host"], self.config["redis"]["port"]),
                         ("redis", redis))

    def test_k8s_pods_are_hardened_and_probed(self):
        for name, d in self.workloads():
            spec = d["spec"]["template"]["spec"]
            self.assertTrue(spec["securityContext"]["runAsNonRoot"], name)
            self.assertFalse(spec["automountServiceAccountToken"], name)
            for c in spec["containers"]:
                sc = c["securityContext"]
                self.assertTrue(sc["readOnlyRootFilesystem"], name)
                self.assertFalse(sc["allowPrivilegeEscalation"], name)
                self.assertEqual(sc["capabilities"]["drop"], ["ALL"], name)
                for kind in ("requests", "limits"):
                    self.assertEqual(sorted(c["resources"][kind]), ["cpu", "memory"], name)
                self.assertIn("readinessProbe", c)
                self.assertIn("livenessProbe", c)
        for name in ds.SERVICES:
            d = self.by_kind["Deployment"][name]
            tmpl = d["spec"]["template"]
            c = tmpl["spec"]["containers"][0]
            self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/healthz",
                                                             "port": "metrics"})
            metrics = [p for p in c["ports"] if p["name"] == "metrics"][0]["containerPort"]
            self.assertEqual(metrics, ds.METRICS_PORTS[name])
            self.assertEqual(tmpl["metadata"]["annotations"]["prometheus.io/port"], str(metrics))
            grace_ms = self.config.get(name, {}).get("grace_ms")
            if grace_ms is None:
                grace_ms = float(ds.config_keys(ds.binary(BUILD, name))[name + ".grace_ms"])
            self.assertGreater(tmpl["spec"]["terminationGracePeriodSeconds"] * 1000,
                               grace_ms + 5000, name)

    def test_k8s_classifier_uses_installed_data(self):
        c = self.by_kind["Deployment"]["classifier"]["spec"]["template"]["spec"]["containers"][0]
        env = self.container_env(c)
        keys = ds.config_keys(ds.binary(BUILD, "classifier"))
        self.assertIn("classifier.language_model", keys)
        self.assertIn("classifier.sentiment_lexicon", keys)
        self.assertEqual(env["ESC_CLASSIFIER_LANGUAGE_MODEL"],
                         "/opt/escucha/share/escucha/langid.model")
        self.assertEqual(env["ESC_CLASSIFIER_SENTIMENT_LEXICON"],
                         "/opt/escucha/share/escucha/sentiment.lex")

    def test_k8s_redis_persists(self):
        sts = self.by_kind["StatefulSet"]["redis"]
        c = sts["spec"]["template"]["spec"]["containers"][0]
        args = c["args"]
        pairs = dict(zip(args[::2], args[1::2]))
        self.assertEqual(pairs["--appendonly"], "yes")
        self.assertEqual(pairs["--appendfsync"], "everysec")
        self.assertEqual(pairs["--maxmemory-policy"], "noeviction")
        env = self.container_env(c)
        for ref in re.findall(r"\$\(([A-Z0-9_]+)\)", " ".join(args)):
            self.assertIn(ref, env)
        claim = sts["spec"]["volumeClaimTemplates"][0]
        self.assertIn({"name": claim["metadata"]["name"], "mountPath": "/data"},
                      c["volumeMounts"])
        self.assertEqual(pairs["--dir"], "/data")
        self.assertEqual(self.config["redis"]["password_env"], "ESC_REDIS_PASSWORD")


if __name__ == "__main__":
    BUILD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
