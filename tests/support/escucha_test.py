"""Support for escucha's end-to-end tests: a private redis-server, free ports, a minimal RESP
client, a webhook receiver, and a group of service processes stopped in pipeline order.
Standard library only (run with Debian's /usr/bin/python3)."""

import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request


# ESC_TEST_VALGRIND=1 runs every service under valgrind's memcheck (scripts/valgrind.sh): an
# error or a leak makes the service exit 99, which the tests' exit status checks catch. Each
# process writes its report to $ESC_TEST_VALGRIND_DIR (default: the test's workdir) as
# <name>.<pid>.vg. Everything is about 20 times slower, so timeouts are multiplied by SLOW.
VALGRIND = os.environ.get("ESC_TEST_VALGRIND", "") not in ("", "0")
SLOW = 20 if VALGRIND else 1
VALGRIND_SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "valgrind.supp")


def dump_logs(work, label, lines=25):
    """After a failure: says where the logs are kept and prints the end of each one, since a CI
    machine keeps nothing but the output."""
    import sys
    print("%s: logs kept in %s" % (label, work), file=sys.stderr)
    for path in sorted(os.listdir(work)):
        full = os.path.join(work, path)
        if not path.endswith(".log") or not os.path.isfile(full):
            continue
        with open(full, errors="replace") as f:
            tail = f.readlines()[-lines:]
        print("---- %s (last %d lines)" % (path, len(tail)), file=sys.stderr)
        sys.stderr.write("".join(tail))


def _port_span():
    """Ports [lo, hi) below the kernel's ephemeral range, so no outgoing connection (the tests
    poll metrics endpoints all the time) can take a port between free_port() and its bind."""
    hi = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            hi = min(hi, int(f.read().split()[0]))
    except (OSError, ValueError, IndexError):
        pass
    return max(1024, hi - 12000), hi


_PORTS = {"given": set(), "next": None}


def free_port():
    """A TCP port on 127.0.0.1 nothing listens on. Never the same twice in one process (bind(0)
    can hand a just-closed port out again), and each process starts at its own offset so two
    tests running at once (ctest -j2) rarely even try the same one."""
    lo, hi = _port_span()
    span = hi - lo
    if _PORTS["next"] is None:
        _PORTS["next"] = (os.getpid() * 613) % span
    for _ in range(span):
        port = lo + _PORTS["next"] % span
        _PORTS["next"] += 1
        if port in _PORTS["given"]:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS["given"].add(port)
        return port
    raise RuntimeError("no free port in %d-%d" % (lo, hi))


class Resp:
    """A tiny Redis client (RESP2) over a unix socket: enough for assertions."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError("redis error: " + rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError("bad RESP reply %r" % line)

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def hgetall(self, key):
        flat = self.cmd("HGETALL", key) or []
        return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class Redis:
    """A private redis-server on a unix socket in a temp dir (no TCP). No persistence unless
    `args` says otherwise (e.g. ["--appendonly", "yes", "--appendfsync", "always"]: later
    options win); `data_dir` (default workdir) holds its files, so start() after kill() restarts
    it on the same data."""

    def __init__(self, workdir, args=None, data_dir=None):
        self.dir = data_dir or workdir
        self.sock = os.path.join(workdir, "redis.sock")
        self.log = os.path.join(workdir, "redis.log")
        self.args = list(args or [])
        self.proc = None
        self.start()

    def start(self):
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [exe, "--port", "0", "--unixsocket", self.sock, "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--daemonize", "no", "--loglevel", "warning"] + self.args,
            stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if Resp(self.sock).cmd("PING") == "PONG":
                    return
            except (OSError, RuntimeError):
                time.sleep(0.05)  # not listening yet, or still loading its data (-LOADING)
        raise RuntimeError("redis-server did not start")

    def client(self):
        return Resp(self.sock)

    def pause(self):
        """SIGSTOP: the socket stays open but nothing is answered (a hung server)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        """SIGKILL: a crash; only what the persistence settings wrote survives."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1:<free port> that records every POST (path, headers, body)."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                           "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self):
        with self.lock:
            return list(self.requests)

    def stop(self):
        self.server.shutdown()


def verify_signature(secret, headers, body):
    """True when X-Escucha-Signature is sha256=HMAC(secret, "<X-Escucha-Timestamp>.<body>")."""
    ts = headers.get("X-Escucha-Timestamp", "")
    sig = headers.get("X-Escucha-Signature", "")
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig, "sha256=" + mac)


class Services:
    """Starts escucha binaries with their stderr in log files; stops them in the given order."""

    def __init__(self, bindir, workdir, env=None):
        self.bindir = bindir
        self.workdir = workdir
        self.env = dict(os.environ, **(env or {}))
        self.procs = {}

    def exe(self, service):
        return os.path.join(self.bindir, service, "escucha-" + service)

    def command(self, name, service, args):
        cmd = [self.exe(service)] + list(args)
        if not VALGRIND:
            return cmd
        vg_dir = os.environ.get("ESC_TEST_VALGRIND_DIR") or self.workdir
        return ["valgrind", "--tool=memcheck", "--error-exitcode=99", "--leak-check=full",
                "--num-callers=30", "--suppressions=" + VALGRIND_SUPP,
                "--log-file=" + os.path.join(vg_dir, "%s.%%p.vg" % name)] + cmd

    def start(self, name, service, *args):
        log = open(os.path.join(self.workdir, name + ".log"), "w")
        self.procs[name] = _Proc(self.command(name, service, args), stdout=log,
                                 stderr=subprocess.STDOUT, env=self.env)
        if VALGRIND:
            # Starting takes seconds under valgrind: wait until the service has bound its
            # sockets, so a peer started next does not keep reconnecting to a free port (a
            # reconnect can take that very port as its own source port).
            p = self.procs[name]
            wait_for(lambda: p.poll() is not None or " started " in self.log(name), 3,
                     "%s to start" % name)
        return self.procs[name]

    def run(self, service, *args, timeout=60):
        return subprocess.run(self.command(service + "-run", service, args), capture_output=True,
                              text=True, env=self.env, timeout=timeout * SLOW)

    def log(self, name):
        with open(os.path.join(self.workdir, name + ".log")) as f:
            return f.read()

    def pause(self, name):
        """SIGSTOP: the process holds its sockets but does nothing (a hung service)."""
        self.procs[name].send_signal(signal.SIGSTOP)

    def resume(self, name):
        self.procs[name].send_signal(signal.SIGCONT)

    def stop(self, name, timeout=15):
        """SIGTERM, then wait; returns the exit status (None if it had to be killed)."""
        p = self.procs[name]
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)  # scaled by _Proc
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None

    def kill_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def metrics(port):
    """The /metrics of a service as {"name{labels}": value}."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


class _Proc(subprocess.Popen):
    """A service process whose wait() timeouts are multiplied by SLOW."""

    def wait(self, timeout=None):
        return super().wait(None if timeout is None else timeout * SLOW)


def wait_for(pred, timeout, what):
    timeout *= SLOW
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def make_workdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
