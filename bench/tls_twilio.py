"""A minimal HTTPS stand-in for Twilio's Messages API that counts accepted TCP connections.

``python bench/tls_twilio.py CERT KEY NAME...`` listens on 127.0.0.1, one port per NAME, prints
{"ports": {NAME: port}}, then answers every line on stdin with {NAME: connections accepted so far}; EOF stops
it. A process of its own, so its TLS work does not share the benchmark's GIL. Every POST answers 201 with a
Twilio-shaped message resource.
"""

from __future__ import annotations

import json
import ssl
import sys
import threading
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as api.twilio.com
    disable_nagle_algorithm = True  # else headers and body go out as two segments and wait for a delayed ACK

    def setup(self) -> None:
        self.request.do_handshake()  # in this connection's thread, not in the accept loop
        super().setup()

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        account, sid = self.path.split("/")[3], "SM" + uuid.uuid4().hex
        payload = json.dumps({
            "account_sid": account, "sid": sid, "status": "queued", "direction": "outbound-api",
            "to": form["To"][0], "from": form.get("From", [None])[0], "body": form.get("Body", [""])[0],
            "date_created": formatdate(usegmt=True),
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self._headers_buffer.append(b"\r\n" + payload)  # headers and body in one write (one TLS record)
        self.flush_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence
        pass


class CountingTLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.context = context
        self.accepted = 0  # only the accept loop's thread writes it

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        self.accepted += 1
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients closing their end (naive sessions being collected) are not errors here


def main(cert: str, key: str, *names: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    servers = {name: CountingTLSServer(context) for name in names}
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"ports": {name: s.server_address[1] for name, s in servers.items()}}), flush=True)
    for _ in sys.stdin:
        print(json.dumps({name: s.accepted for name, s in servers.items()}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
