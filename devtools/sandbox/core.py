"""TwilioSandbox, the sandbox's public object, served on one port: /_sandbox/ control endpoints before the REST API."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from werkzeug.exceptions import NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .faults import FaultRegistry
from .flows import Flows
from .identity import IdentityProvider
from .numbers import number_resource
from .rest import JSON_TYPE, RestApi
from .state import Store

_log = logging.getLogger("devtools.sandbox")
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "sandbox-auth-token"
# The development OpenID provider and the /_sandbox/ control endpoints (JSON, no auth: a loopback developer tool, open
# to any origin for the console), each answered by the TwilioSandbox method its endpoint names, but the live feed
# (server-sent events); any other path goes to the REST API.
ROUTES = Map([
    Rule("/.well-known/<any('openid-configuration', 'jwks.json'):document>", endpoint="_well_known"),
    Rule("/_sandbox/token", methods=["POST"], endpoint="_token"),
    Rule("/_sandbox/events", methods=["GET"], endpoint="_events"),
    Rule("/_sandbox/<any(activity, requests, faults, messages, calls):name>", methods=["GET"], endpoint="_listing"),
    Rule("/_sandbox/faults", methods=["POST"], endpoint="_arm"),
    Rule("/_sandbox/faults", methods=["DELETE"], endpoint="_disarm"),
    Rule("/_sandbox/callbacks", methods=["POST"], endpoint="_callbacks"),
    Rule("/_sandbox/inbound/<any(sms, call):kind>", methods=["POST"], endpoint="_inbound"),
    Rule("/_sandbox/calls/<sid>/answer", methods=["POST"], endpoint="_answer"),
    Rule("/_sandbox", endpoint="_unknown"),
    Rule("/_sandbox/<path:route>", endpoint="_unknown"),
])


class QuietHandler(WSGIRequestHandler):
    """werkzeug's handler, logging method, path (no query: no phone numbers) and status at DEBUG only."""

    timeout = 120  # a client that connects and sends nothing is dropped after this many seconds

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        _log.debug("%s %s -> %s", getattr(self, "command", "-"), urlsplit(getattr(self, "path", "")).path, code)

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 (werkzeug's signature)
        _log.debug("http server %s: %s", type, message % args if args else message)


class TwilioSandbox:
    """A local stand-in for api.twilio.com (Messages, Calls, IncomingPhoneNumbers, Applications) with fault injection."""

    def __init__(self, account_sid: str = DEFAULT_ACCOUNT_SID, auth_token: str = DEFAULT_AUTH_TOKEN,
                 api_keys: Mapping[str, str] | None = None, host: str = "127.0.0.1", port: int = 0, *,
                 step_delay: float = 0.02, webhook_timeout: float = 5.0) -> None:
        if not re.fullmatch(r"AC[0-9a-fA-F]{32}", account_sid):
            raise ValueError("account_sid must be 'AC' followed by 32 hex digits")
        if not auth_token:
            raise ValueError("auth_token must not be empty")
        self.account_sid = account_sid
        self.auth_token = auth_token  # also the key of the sandbox's webhook signatures
        self._host, self._port = host, port
        self._store = Store()
        self._faults = FaultRegistry()
        self._flows = Flows(self._store, self._faults.closed, account_sid=account_sid, auth_token=auth_token,
                            step_delay=step_delay, timeout=webhook_timeout)
        credentials = {**dict(api_keys or {}), account_sid: auth_token}  # REST username -> password
        self._rest = RestApi(self._store, self._faults, self._flows, account_sid, credentials)
        self.idp = IdentityProvider()  # the development OpenID provider: its issuer is this sandbox's base URL
        self._server: BaseWSGIServer | None = None
        self._lock = threading.Lock()

    def start(self) -> TwilioSandbox:
        """Bind and serve on a background thread; returns self."""
        with self._lock:
            if self._faults.closed.is_set():
                raise RuntimeError("a stopped TwilioSandbox cannot be restarted; create a new one")
            if self._server is None:
                try:
                    self._server = make_server(self._host, self._port, self.wsgi_app, threaded=True,
                                               request_handler=QuietHandler)
                except SystemExit as exc:  # werkzeug prints the bind error and exits; a library must raise instead
                    raise OSError(f"cannot listen on {self._host}:{self._port}") from exc
                threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
                self.idp.issuer = self._flows.base_url = self.base_url
        return self

    def stop(self) -> None:
        """Stop serving, end hung or trickling requests and lifecycles (in well under a second); idempotent."""
        with self._lock:
            self._faults.close()  # also the flows' stop signal
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()

    def __enter__(self) -> TwilioSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<TwilioSandbox {self.account_sid} {self.base_url if self._server else 'not started'}>"

    @property
    def base_url(self) -> str:
        """The origin to send REST requests to, e.g. http://127.0.0.1:54321."""
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host = "127.0.0.1" if self._server.host in ("0.0.0.0", "") else self._server.host
        return f"http://{host}:{self._server.port}"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Message resources (Twilio's JSON plus a "sandbox" key), in creation order."""
        return self._store.all("messages")

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Call resources (Twilio's JSON plus a "sandbox" key: url, method, twiml, webhook_status, twilio_error)."""
        return self._store.all("calls")

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The REST requests' activity events: request_id, method, path, query, form (name -> values), headers."""
        return [event for event in self.activity if event["type"] == "rest.request"]

    @property
    def activity(self) -> list[dict[str, Any]]:
        """The ordered, JSON-serialisable event log."""
        return self._store.activity()

    @property
    def faults(self) -> list[dict[str, Any]]:
        """The faults still armed."""
        return self._faults.active()

    @property
    def phone_numbers(self) -> list[dict[str, Any]]:
        """The account's IncomingPhoneNumber resources (voice_url, sms_url...), in the order they were added."""
        return self._store.all("numbers")

    @property
    def applications(self) -> list[dict[str, Any]]:
        """The account's (TwiML) Application resources, in creation order."""
        return self._store.all("applications")

    def add_phone_number(self, phone_number: str) -> dict[str, Any]:
        """Give the account a number (E.164) to route, as buying one would; its IncomingPhoneNumber resource."""
        number = number_resource(self.account_sid, phone_number)
        self._store.add("numbers", number)
        return number

    def reset(self) -> None:
        """Forget resources, requests, activity and faults (serving goes on)."""
        self._faults.clear()
        self._store.reset()

    def inject_fault(self, kind: str, **options: Any) -> dict[str, Any]:
        """Arm a fault for matching REST requests (kind: status, hang, reset, raw, trickle, odd) and describe it;
        options: status, body, content_type, headers, times, path_contains, method, preset, chunk_bytes, interval."""
        return self._faults.add(kind, **options).describe()

    def shuffle_callbacks(self, enabled: bool = True) -> None:
        """Fault mode: deliver each resource's status callbacks at the end of its lifecycle, shuffled and duplicated."""
        self._flows.shuffle_callbacks = enabled

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._faults.clear()

    def release_hangs(self) -> None:
        """End every request held by a "hang" fault (its connection closes without an answer)."""
        self._faults.release_hangs()

    def simulate_inbound_sms(self, webhook_url: str, from_: str, to: str, body: str, **options: Any) -> dict[str, Any]:
        """Post a signed inbound SMS to the app (options: media_urls, method): {status, content_type, twiml, sid
        [, twilio_error]}."""
        return self._flows.inbound_sms(webhook_url, from_, to, body, **options)

    def simulate_inbound_call(self, webhook_url: str, from_: str, to: str, **options: Any) -> dict[str, Any]:
        """Ring the app with a signed inbound call and play the caller's side, following its TwiML as Twilio does;
        options (method, digits, dial_outcomes, record, max_steps) and result as Flows.inbound_call."""
        return self._flows.inbound_call(webhook_url, from_, to, **options)

    def simulate_client_call(self, webhook_url: str, identity: str, to: str, **options: Any) -> dict[str, Any]:
        """A Voice SDK call from client:<identity> (with ApplicationSid) to `to`, a number or client:...; as
        simulate_inbound_call."""
        return self.simulate_inbound_call(webhook_url, f"client:{identity}", to, **options)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> bool:
        """Poll predicate() until it is truthy (True) or timeout seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
        return True

    # -- HTTP ----------------------------------------------------------------------------------------------------
    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """The WSGI application: ROUTES answered with JSON, any other path by the REST API."""
        request = Request(environ)
        try:
            endpoint, args = ROUTES.bind_to_environ(environ).match(request.path.rstrip("/") or "/")
        except NotFound:
            return self._rest(request)(environ, start_response)
        cors = {"Access-Control-Allow-Origin": "*"}
        if request.method == "OPTIONS":  # a browser's preflight: any method, the headers it asks for
            cors.update({"Access-Control-Allow-Methods": "GET, POST, DELETE",
                         "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", "")})
            return Response(status=204, headers=cors)(environ, start_response)
        if endpoint == "_events":
            after = request.headers.get("Last-Event-ID", request.args.get("after", "0"))
            return Response(self._feed(int(after) if after.isdigit() else 0), headers={**cors, "Cache-Control":
                            "no-cache"}, content_type="text/event-stream")(environ, start_response)
        try:
            data = json.loads(request.get_data() or b"{}")  # invalid JSON raises a ValueError: answered 400
            if not isinstance(data, dict):
                raise ValueError("the JSON body must be an object")
            status, payload = getattr(self, endpoint)(data, **args)
        except (TypeError, ValueError) as exc:  # bad JSON, a field of the wrong name or type, or a refused value
            status, payload = 400, {"error": str(exc)}
        return Response(json.dumps(payload), status, headers=cors, content_type=JSON_TYPE)(environ, start_response)

    def _feed(self, seq: int) -> Iterable[str]:
        """The live feed: each activity event after seq as a server-sent event (its id the seq), until stopped."""
        yield "retry: 500\n\n"
        while not self._faults.closed.is_set():
            events = self._store.events_after(seq, timeout=1.0)
            for event in events:
                yield f"id: {event['seq']}\ndata: {json.dumps(event)}\n\n"
            seq = events[-1]["seq"] if events else seq
            if not events:
                yield ": idle\n\n"  # a comment: a closed page's connection fails here and the thread ends

    def _well_known(self, data: dict[str, Any], document: str) -> tuple[int, Any]:
        return 200, self.idp.jwks() if document == "jwks.json" else self.idp.discovery()

    def _token(self, data: dict[str, Any]) -> tuple[int, Any]:  # {"sub", "ttl"}: alice for 3600 s by default
        sub, ttl = data.pop("sub", "alice"), data.pop("ttl", 3600)
        if data or not isinstance(sub, str) or not sub or type(ttl) is not int:
            raise ValueError("expected fields: sub (a non-empty string), ttl (whole seconds, negative: expired)")
        return 200, {"access_token": self.idp.token(sub, ttl), "token_type": "Bearer", "expires_in": ttl}

    def _listing(self, data: dict[str, Any], name: str) -> tuple[int, Any]:
        return 200, getattr(self, name)

    def _arm(self, data: dict[str, Any]) -> tuple[int, Any]:
        return 201, self.inject_fault(**data)

    def _disarm(self, data: dict[str, Any]) -> tuple[int, Any]:
        self.clear_faults()
        return 200, {"cleared": True}

    def _callbacks(self, data: dict[str, Any]) -> tuple[int, Any]:  # {"shuffled": true}: the callbacks fault mode
        self.shuffle_callbacks(bool(data.get("shuffled")))
        return 200, {"shuffled": self._flows.shuffle_callbacks}

    def _inbound(self, data: dict[str, Any], kind: str) -> tuple[int, Any]:  # {url, from, to} and the options
        url, from_, to = data.pop("url", None), data.pop("from", None), data.pop("to", None)
        if not all(isinstance(value, str) and value for value in (url, from_, to)):
            raise ValueError("expected string fields: url, from, to")
        if kind == "call" and data.pop("live", False) is True:
            return 202, self._flows.live_call(url, from_, to, **data)
        simulate = self._flows.inbound_sms if kind == "sms" else self._flows.inbound_call
        return 200, simulate(url, from_, to, **data)

    def _answer(self, data: dict[str, Any], sid: str) -> tuple[int, Any]:  # {"value": digits, outcome or boolean}
        if set(data) != {"value"}:
            raise ValueError("expected one field: value")
        return 200, self._flows.answer(sid, data["value"])

    def _unknown(self, data: dict[str, Any], route: str = "") -> tuple[int, Any]:
        return 404, {"error": f"no control endpoint /_sandbox/{route} for this method"}
