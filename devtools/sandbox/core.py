"""TwilioSandbox: the public object tying store, REST API, faults, flows and server together."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, cast

from .faults import FaultRegistry
from .flows import FlowContext
from .inbound import simulate_inbound_call, simulate_inbound_sms
from .rest import RestApi
from .server import SandboxHTTPServer
from .store import SandboxStore
from .tasks import TaskRunner
from .webhooks import WebhookSender

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "sandbox-auth-token"
_ACCOUNT_SID_RE = re.compile(r"^AC[0-9a-fA-F]{32}$")

FaultBody = str | bytes | Mapping[str, Any] | list[Any] | None


class TwilioSandbox:
    """A local stand-in for api.twilio.com (Messages and Calls) with fault injection."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        api_keys: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        step_delay: float = 0.02,
        webhook_timeout: float = 5.0,
    ) -> None:
        if not _ACCOUNT_SID_RE.match(account_sid):
            raise ValueError("account_sid must be 'AC' followed by 32 hex digits")
        if not auth_token:
            raise ValueError("auth_token must not be empty")
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._host = host
        self._port = port
        self.store = SandboxStore()
        self.fault_registry = FaultRegistry()
        self._runner = TaskRunner()
        self._sender = WebhookSender(auth_token, timeout=webhook_timeout)
        self._flows = FlowContext(
            account_sid=account_sid,
            store=self.store,
            sender=self._sender,
            runner=self._runner,
            step_delay=step_delay,
        )
        self.rest = RestApi(
            account_sid=account_sid, auth_token=auth_token, api_keys=dict(api_keys or {}), flows=self._flows
        )
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._stopped = False

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> TwilioSandbox:
        """Bind and serve in a background daemon thread; returns self."""
        with self._state_lock:
            if self._stopped:
                raise RuntimeError("a stopped TwilioSandbox cannot be restarted; create a new one")
            if self._server is not None:
                return self
            self._server = SandboxHTTPServer((self._host, self._port), self)
            self._thread = threading.Thread(
                target=self._server.serve_until_stopped,
                name="sandbox-serve",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end hung requests and background work (bounded, ~1 s at most)."""
        with self._state_lock:
            if self._stopped:
                return
            self._stopped = True
            server, thread = self._server, self._thread
        self.fault_registry.close()
        self._sender.abort_all()
        if server is not None:
            server.stop_serving(timeout=0.3)
            server.close_connections(timeout=0.4)
        self._runner.close(timeout=0.4)
        if thread is not None:
            thread.join(0.2)

    def __enter__(self) -> TwilioSandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "not started"
        return f"<TwilioSandbox {self._account_sid} {where}>"

    # -- identity -------------------------------------------------------------
    @property
    def account_sid(self) -> str:
        """The sandbox account SID."""
        return self._account_sid

    @property
    def auth_token(self) -> str:
        """The sandbox auth token (also the webhook signing key)."""
        return self._auth_token

    @property
    def base_url(self) -> str:
        """Origin to send REST requests to, e.g. http://127.0.0.1:54321."""
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host, port = cast(tuple[str, int], self._server.server_address)[:2]
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    # -- state ----------------------------------------------------------------
    @property
    def messages(self) -> list[dict[str, Any]]:
        """Message resources (Twilio JSON shape + a "sandbox" key), creation order."""
        return self.store.all("messages")

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Call resources (Twilio JSON shape + a "sandbox" key), creation order."""
        return self.store.all("calls")

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every REST request received (credentials redacted), oldest first."""
        return self.store.requests()

    @property
    def activity(self) -> list[dict[str, Any]]:
        """Ordered, JSON-serialisable event log."""
        return self.store.activity()

    @property
    def faults(self) -> list[dict[str, Any]]:
        """Faults still armed."""
        return self.fault_registry.active()

    def reset(self) -> None:
        """Forget resources, requests, activity and faults (keeps serving)."""
        self.fault_registry.clear()
        self.store.reset()

    # -- faults ---------------------------------------------------------------
    def inject_fault(
        self,
        kind: str,
        *,
        status: int = 500,
        body: FaultBody = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        times: int | None = 1,
        path_contains: str | None = None,
        method: str | None = None,
    ) -> dict[str, Any]:
        """Arm a fault ("status", "hang" or "reset") for matching REST requests."""
        fault = self.fault_registry.add(
            kind,
            status=status,
            body=body,
            content_type=content_type,
            headers=headers,
            times=times,
            path_contains=path_contains,
            method=method,
        )
        return fault.describe()

    def clear_faults(self) -> None:
        """Disarm all faults."""
        self.fault_registry.clear()

    def release_hangs(self) -> None:
        """End every request currently held by a "hang" fault (connection closed, no answer)."""
        self.fault_registry.release_hangs()

    # -- inbound ----------------------------------------------------------------
    def simulate_inbound_sms(
        self,
        webhook_url: str,
        from_: str,
        to: str,
        body: str,
        *,
        media_urls: Sequence[str] = (),
        method: str = "POST",
    ) -> dict[str, Any]:
        """POST a signed inbound SMS to the app; returns status, content_type, twiml[, twilio_error]."""
        return simulate_inbound_sms(self._flows, webhook_url, from_, to, body, media_urls=media_urls, method=method)

    def simulate_inbound_call(self, webhook_url: str, from_: str, to: str, *, method: str = "POST") -> dict[str, Any]:
        """POST a signed inbound voice call to the app; returns its TwiML or Twilio error."""
        return simulate_inbound_call(self._flows, webhook_url, from_, to, method=method)

    # -- helpers ----------------------------------------------------------------
    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> bool:
        """Poll predicate() until truthy (True) or timeout (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
