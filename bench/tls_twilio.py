"""A minimal HTTPS stand-in for Twilio's Messages API that counts accepted TCP connections.

Used by the connection-reuse benchmark, which runs it as a separate process (so its TLS work does not share
the benchmark's GIL): ``python bench/tls_twilio.py CERT KEY NAME...`` listens on 127.0.0.1, one port per NAME,
prints {"ports": {NAME: port}} and then answers stdin commands, one JSON line each:
``counts`` -> {NAME: accepted connections}; ``reset`` -> zeroes them. EOF on stdin stops it.

Every POST answers 201 with a Twilio-shaped message resource; anything else 404.
"""

from __future__ import annotations

import email.utils
import json
import ssl
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


def message_json(form: dict[str, list[str]], path: str) -> bytes:
    account = path.split("/")[3] if path.count("/") >= 4 else "AC" + "0" * 32
    sid = "SM" + uuid.uuid4().hex
    now = email.utils.formatdate(usegmt=True).replace("GMT", "+0000")
    first = {key: values[0] for key, values in form.items() if values}
    return json.dumps({
        "account_sid": account, "api_version": "2010-04-01", "body": first.get("Body", ""),
        "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
        "error_code": None, "error_message": None, "from": first.get("From"),
        "messaging_service_sid": first.get("MessagingServiceSid"), "num_media": "0", "num_segments": "1",
        "price": None, "price_unit": "USD", "sid": sid, "status": "queued", "subresource_uris": {
            "media": f"/2010-04-01/Accounts/{account}/Messages/{sid}/Media.json"},
        "to": first.get("To"), "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
    }).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as api.twilio.com
    disable_nagle_algorithm = True  # else headers and body go out as two segments and wait for a delayed ACK

    def setup(self) -> None:
        self.request.do_handshake()  # in this connection's thread, not in the accept loop
        super().setup()

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        payload = message_json(parse_qs(body, keep_blank_values=True), self.path)
        self.send_response(201)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self._headers_buffer.append(b"\r\n" + payload)  # headers and body in one write (one TLS record)
        self.flush_headers()

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence
        pass


class CountingTLSServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.context = context
        self.accepted = 0
        self.lock = threading.Lock()

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        with self.lock:
            self.accepted += 1
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients closing their end (naive sessions being collected) are not errors here


def main(argv: list[str]) -> None:
    cert, key, *names = argv
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    servers = {name: CountingTLSServer(context) for name in names}
    for server in servers.values():
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    print(json.dumps({"ports": {name: s.server_address[1] for name, s in servers.items()}}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "reset":
            for server in servers.values():
                with server.lock:
                    server.accepted = 0
        print(json.dumps({name: s.accepted for name, s in servers.items()}), flush=True)
    for server in servers.values():
        server.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
