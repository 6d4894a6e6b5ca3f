#!/usr/bin/python3
"""SMTP receiver for escucha tests (aiosmtpd; run with Debian's /usr/bin/python3).

Listens on 127.0.0.1 (--port 0 = a free one) and prints the port as the first line of stdout.
Each accepted message is written to --dir as msg-NNNN.eml (the DATA bytes, exactly) and its
envelope as msg-NNNN.json ({"mail_from": ..., "rcpt_tos": [...]}); the .json is written first
and the .eml appears by rename, so a reader that sees the .eml sees both complete. RCPT TO for an
address given with --reject-rcpt is refused with 550. Exits 0 on SIGTERM or SIGINT.

TLS (with --tls-cert/--tls-key, PEM): STARTTLS is offered and required before MAIL
(--starttls), or the whole connection is TLS (--implicit-tls). --auth USER:PASS requires AUTH
(PLAIN or LOGIN, only after TLS) with exactly those credentials; each message's envelope .json
then also records the authenticated user.
"""

import argparse
import json
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Handler:
    def __init__(self, directory, reject):
        self.directory = directory
        self.reject = set(a.lower() for a in reject)
        self.count = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 recipient rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            base = os.path.join(self.directory, "msg-%04d" % self.count)
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", errors="surrogateescape")
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}
        if session.authenticated and session.auth_data is not None:
            meta["auth_user"] = session.auth_data.login.decode("utf-8", "replace")
        meta["tls"] = (session.ssl is not None
                       or server.transport.get_extra_info("ssl_object") is not None)
        with open(base + ".json", "w", encoding="utf-8") as f:
            json.dump(meta, f)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(data)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 Message accepted for delivery"


class FreePortController(Controller):
    """Controller that can listen on port 0: the readiness probe uses the bound port."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="directory for received messages")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--reject-rcpt", action="append", default=[], metavar="ADDR")
    ap.add_argument("--tls-cert", help="PEM certificate (with --tls-key)")
    ap.add_argument("--tls-key", help="PEM private key")
    ap.add_argument("--starttls", action="store_true", help="offer and require STARTTLS")
    ap.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte")
    ap.add_argument("--auth", metavar="USER:PASS", help="require AUTH with these credentials")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    kwargs = {}
    ctx = None
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    if args.starttls:
        kwargs.update(tls_context=ctx, require_starttls=True)
    if args.implicit_tls:
        kwargs.update(ssl_context=ctx)
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (auth_data.login.decode() == user and auth_data.password.decode() == password)
            return AuthResult(success=ok, auth_data=auth_data)

        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=True)

    # Signals are taken with sigwait on the main thread; the server thread must not get them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    controller = FreePortController(Handler(args.dir, args.reject_rcpt), hostname="127.0.0.1",
                                    port=args.port, **kwargs)
    controller.start()
    print(controller.port, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
