#!/usr/bin/python3
"""Webhook receiver for escucha tests (stdlib only; run with Debian's /usr/bin/python3).

Listens on 127.0.0.1 (port 0 = a free one) and prints the port as the first line of stdout.
Every request is recorded as one JSON line in --out: method, path (query included), headers
(names lower-cased), body (text) and body_b64 (exact bytes), and the status answered. The
first --fail-first N requests are answered --fail-status (default 503), the rest --status
(default 200). The record is written and flushed before the answer is sent, so a client that
got its answer can already read the record. Exits 0 on SIGTERM or SIGINT.
"""

import argparse
import base64
import http.server
import json
import signal
import sys
import threading


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON lines file for the recorded requests")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fail-first", type=int, default=0, help="answer the first N requests "
                    "with --fail-status")
    ap.add_argument("--fail-status", type=int, default=503)
    ap.add_argument("--status", type=int, default=200)
    args = ap.parse_args()

    out = open(args.out, "a", encoding="utf-8")
    lock = threading.Lock()
    state = {"n": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self):
            n = int(self.headers.get("Content-Length", "0") or "0")
            body = self.rfile.read(n) if n > 0 else b""
            with lock:
                k = state["n"]
                state["n"] += 1
                status = args.fail_status if k < args.fail_first else args.status
                rec = {
                    "n": k,
                    "method": self.command,
                    "path": self.path,
                    "headers": {name.lower(): value for name, value in self.headers.items()},
                    "body": body.decode("utf-8", errors="replace"),
                    "body_b64": base64.b64encode(body).decode("ascii"),
                    "status": status,
                }
                out.write(json.dumps(rec) + "\n")
                out.flush()
            reply = b"ok\n" if status < 300 else b"try again\n"
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_POST = _handle
        do_PUT = _handle
        do_GET = _handle

        def log_message(self, fmt, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    stop = threading.Event()

    def on_signal(signo, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    print(server.server_address[1], flush=True)
    while not stop.wait(0.1):
        pass
    server.shutdown()
    thread.join()
    server.server_close()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
