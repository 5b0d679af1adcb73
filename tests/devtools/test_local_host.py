"""devtools.local_host over real HTTP on 127.0.0.1: toy function apps in tmp_path, a host on port 0 each."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.local_host import KEY_ENV, LOGGER_NAME, LocalHost, load_local_settings
from tests.support import ROOT

KEY = "s3cret-key"
LIMIT = 64 * 1024
TIMEOUT = 10

ECHO = """
    import json
    import azure.functions as func

    CALLS = 0

    def main(req: func.HttpRequest) -> func.HttpResponse:
        global CALLS
        CALLS += 1
        seen = {"method": req.method, "url": req.url, "headers": dict(req.headers), "params": dict(req.params),
                "route_params": dict(req.route_params), "body_hex": req.get_body().hex()}
        return func.HttpResponse(json.dumps(seen), mimetype="application/json")
"""
RESPOND = """
    import azure.functions as func

    def main(req: func.HttpRequest):
        wanted = req.get_json()
        if "text" in wanted:
            return wanted["text"]
        return func.HttpResponse(wanted["body"], status_code=wanted["status"], headers=wanted.get("headers"),
                                 mimetype=wanted.get("mimetype"), charset=wanted.get("charset"))
"""
ADMIN = """
    def run(req):
        return "admin ok"
"""
BOOM = """
    def main(req):
        raise RuntimeError("secret detail 123")
"""


def write_function(root: Path, name: str, code: str, binding: dict[str, Any], **manifest: Any) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    bindings = [{"name": "req", "direction": "in", "type": "httpTrigger", **binding},
                {"name": "$return", "direction": "out", "type": "http"}]
    (folder / "function.json").write_text(json.dumps({"bindings": bindings, **manifest}), encoding="utf-8")
    (folder / manifest.get("scriptFile", "__init__.py")).write_text(textwrap.dedent(code), encoding="utf-8")


def make_app(root: Path, route_prefix: str | None = "v1") -> Path:
    """A toy app: echo (anonymous), message (function key, route param), admin_fn, respond, boom, a timer."""
    root.mkdir(parents=True, exist_ok=True)
    if route_prefix is not None:
        host_json = {"version": "2.0", "extensions": {"http": {"routePrefix": route_prefix}}}
        (root / "host.json").write_text(json.dumps(host_json), encoding="utf-8")
    write_function(root, "echo", ECHO, {"authLevel": "anonymous", "methods": ["get", "post"]})
    write_function(root, "message", ECHO, {"authLevel": "function", "methods": ["get"], "route": "messages/{sid}"})
    write_function(root, "admin_fn", ADMIN, {"authLevel": "admin"}, scriptFile="handler.py", entryPoint="run")
    write_function(root, "respond", RESPOND, {"authLevel": "anonymous", "methods": ["post"]})
    write_function(root, "boom", BOOM, {"authLevel": "anonymous"})
    (root / "timer").mkdir()
    (root / "timer" / "function.json").write_text(json.dumps(
        {"bindings": [{"name": "t", "type": "timerTrigger", "direction": "in", "schedule": "0 * * * * *"}]}))
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("no function.json here")
    return root


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture
def app_root(tmp_path: Path) -> Path:
    return make_app(tmp_path / "app")


@pytest.fixture
def host(app_root: Path) -> Iterator[LocalHost]:
    with LocalHost(app_root, port=0, function_key=KEY) as running:
        yield running


def echo_calls() -> int:
    return sys.modules["echo"].CALLS


def assert_host_answer(response: requests.Response, status: int) -> None:
    """Azure's Functions host answers these with the status code only: empty body, no Content-Type."""
    assert (response.status_code, response.content, response.headers.get("Content-Type")) == (status, b"", None)


# ----------------------------------------------------------------------------------------------- discovery

def test_discovery_toy_app_finds_http_trigger_folders_only(host: LocalHost) -> None:
    assert sorted(host.functions) == ["admin_fn", "boom", "echo", "message", "respond"]
    message = host.functions["message"]
    assert (message.route, message.methods, message.auth_level) == ("messages/{sid}", ("GET",), "function")
    assert (host.functions["admin_fn"].methods, host.functions["admin_fn"].auth_level) == (None, "admin")


def test_discovery_script_file_and_entry_point_honoured(host: LocalHost) -> None:
    response = requests.get(host.url_for("admin_fn"), headers={"x-functions-key": KEY}, timeout=TIMEOUT)
    assert (response.status_code, response.text) == (200, "admin ok")


@pytest.mark.parametrize("route", ["items/{id:int}", "items/{name?}/more", "files/{*path}"])
def test_discovery_route_constraint_or_optional_param_rejected(tmp_path: Path, route: str) -> None:
    write_function(tmp_path, "item", ADMIN, {"authLevel": "anonymous", "route": route}, entryPoint="run")
    with pytest.raises(ValueError, match="only plain"):
        LocalHost(tmp_path, port=0)


def test_discovery_optional_last_param_routes_with_and_without_it(tmp_path: Path) -> None:
    write_function(tmp_path, "item", ADMIN, {"authLevel": "anonymous", "route": "items/{name?}"}, entryPoint="run")
    host = LocalHost(tmp_path, port=0)
    assert host.urls.bind("localhost").match("/api/items")[0] == "item"
    assert host.urls.bind("localhost").match("/api/items/x") == ("item", {"name": "x"})


# ------------------------------------------------------------------------------------------- routes

def test_route_prefix_custom_serves_there_and_not_under_api(host: LocalHost) -> None:
    assert host.url_for("echo") == host.base_url + "/v1/echo"
    assert requests.get(host.base_url + "/v1/echo", timeout=TIMEOUT).status_code == 200
    assert_host_answer(requests.get(host.base_url + "/api/echo", timeout=TIMEOUT), 404)


def test_route_prefix_empty_serves_at_root(tmp_path: Path) -> None:
    with LocalHost(make_app(tmp_path, route_prefix=""), port=0) as host:
        assert host.url_for("echo") == host.base_url + "/echo"
        assert requests.get(host.base_url + "/echo", timeout=TIMEOUT).status_code == 200


def test_route_prefix_no_host_json_defaults_to_api(tmp_path: Path) -> None:
    with LocalHost(make_app(tmp_path, route_prefix=None), port=0) as host:
        assert requests.get(host.base_url + "/api/echo", timeout=TIMEOUT).status_code == 200


def test_route_params_named_segment_reaches_route_params(host: LocalHost) -> None:
    url = host.url_for("message", sid="SM 42")
    assert url == host.base_url + "/v1/messages/SM%2042"
    seen = requests.get(url, headers={"x-functions-key": KEY}, timeout=TIMEOUT).json()
    assert seen["route_params"] == {"sid": "SM 42"}


def test_route_params_missing_segment_is_unknown_route_404(host: LocalHost) -> None:
    assert_host_answer(requests.get(host.base_url + "/v1/messages", headers={"x-functions-key": KEY},
                                    timeout=TIMEOUT), 404)
    assert_host_answer(requests.get(host.base_url + "/v1/messages/a/b", headers={"x-functions-key": KEY},
                                    timeout=TIMEOUT), 404)


def test_url_for_unknown_function_raises_key_error(host: LocalHost) -> None:
    with pytest.raises(KeyError):
        host.url_for("timer")


# ------------------------------------------------------------------------------------------ methods

@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD"])
def test_methods_not_listed_answers_404_empty_like_azure(host: LocalHost, method: str) -> None:
    assert_host_answer(requests.request(method, host.url_for("echo"), timeout=TIMEOUT), 404)
    assert echo_calls() == 0


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
def test_methods_absent_serves_every_method(host: LocalHost, method: str) -> None:
    response = requests.request(method, host.url_for("admin_fn"), headers={"x-functions-key": KEY}, timeout=TIMEOUT)
    assert response.status_code == 200


def test_methods_not_listed_without_key_is_404_before_401(host: LocalHost) -> None:
    assert_host_answer(requests.post(host.url_for("message", sid="x"), timeout=TIMEOUT), 404)


# -------------------------------------------------------------------------------------- function keys

@pytest.mark.parametrize("headers, params", [({}, {}), ({"x-functions-key": "wrong"}, {}), ({}, {"code": "wrong"}),
                                             ({"x-functions-key": ""}, {}), ({}, {"code": ""})])
def test_function_key_missing_or_wrong_answers_401_empty_like_azure(host: LocalHost, headers: dict[str, str],
                                                                    params: dict[str, str]) -> None:
    response = requests.get(host.url_for("message", sid="x"), headers=headers, params=params, timeout=TIMEOUT)
    assert_host_answer(response, 401)
    assert echo_calls() == 0


@pytest.mark.parametrize("headers, params", [({"x-functions-key": KEY}, {}), ({}, {"code": KEY})])
def test_function_key_in_header_or_code_serves(host: LocalHost, headers: dict[str, str],
                                               params: dict[str, str]) -> None:
    response = requests.get(host.url_for("message", sid="x"), headers=headers, params=params, timeout=TIMEOUT)
    assert response.status_code == 200


@pytest.mark.parametrize("header", ["wrong", ""])
def test_function_key_header_present_wins_over_code_like_azure(host: LocalHost, header: str) -> None:
    response = requests.get(host.url_for("message", sid="x"), headers={"x-functions-key": header},
                            params={"code": KEY}, timeout=TIMEOUT)
    assert_host_answer(response, 401)


def test_function_key_admin_level_requires_it(host: LocalHost) -> None:
    assert_host_answer(requests.get(host.url_for("admin_fn"), timeout=TIMEOUT), 401)
    assert requests.get(host.url_for("admin_fn", code=KEY), timeout=TIMEOUT).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"x-functions-key": "wrong"}])
def test_function_key_anonymous_level_never_asks(host: LocalHost, headers: dict[str, str]) -> None:
    assert requests.get(host.url_for("echo"), headers=headers, timeout=TIMEOUT).status_code == 200


def test_function_key_not_configured_serves_protected_without_key(app_root: Path) -> None:
    with LocalHost(app_root, port=0, function_key="") as host:
        assert requests.get(host.url_for("message", sid="x"), timeout=TIMEOUT).status_code == 200


def test_function_key_from_env_var_enforced(app_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "env-key")
    with LocalHost(app_root, port=0) as host:
        assert requests.get(host.url_for("admin_fn"), timeout=TIMEOUT).status_code == 401
        assert requests.get(host.url_for("admin_fn", code="env-key"), timeout=TIMEOUT).status_code == 200


# ------------------------------------------------------------------------------- request and response

def test_http_request_reaches_main_exactly(host: LocalHost) -> None:
    body = b"\x00\xffbinary body"
    response = requests.post(host.url_for("echo") + "?a=1&a=2&b=x%20y", data=body, timeout=TIMEOUT,
                             headers={"X-Custom": "v", "Content-Type": "application/octet-stream"})
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["url"] == host.url_for("echo") + "?a=1&a=2&b=x%20y"
    assert seen["params"] == {"a": "1,2", "b": "x y"}
    assert seen["route_params"] == {}
    assert bytes.fromhex(seen["body_hex"]) == body
    assert {"x-custom": "v", "content-type": "application/octet-stream"}.items() <= seen["headers"].items()


@pytest.mark.parametrize("wanted, status, content_type, body", [
    ({"body": "<p>é</p>", "status": 201, "mimetype": "text/html", "charset": "utf-8"}, 201,
     "text/html; charset=utf-8", "<p>é</p>".encode()),
    ({"body": "{}", "status": 202, "mimetype": "application/json"}, 202, "application/json", b"{}"),
    ({"body": "x", "status": 200}, 200, "text/plain; charset=utf-8", b"x"),
    ({"body": "a,b", "status": 200, "headers": {"Content-Type": "text/csv"}, "mimetype": "text/plain"}, 200,
     "text/csv", b"a,b"),
    ({"text": "plain string"}, 200, "text/plain; charset=utf-8", b"plain string"),
])
def test_response_mapping_status_content_type_body(host: LocalHost, wanted: dict[str, Any], status: int,
                                                   content_type: str, body: bytes) -> None:
    response = requests.post(host.url_for("respond"), json=wanted, timeout=TIMEOUT)
    assert (response.status_code, response.headers["Content-Type"], response.content) == (status, content_type, body)


def test_response_custom_headers_passed_through(host: LocalHost) -> None:
    wanted = {"body": "", "status": 204, "headers": {"X-Request-Id": "r-1", "Retry-After": "3"}}
    response = requests.post(host.url_for("respond"), json=wanted, timeout=TIMEOUT)
    assert (response.status_code, response.headers["X-Request-Id"], response.headers["Retry-After"]) == (204, "r-1", "3")


def test_response_main_raises_answers_500_empty_and_logs_traceback(host: LocalHost,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        response = requests.get(host.url_for("boom"), timeout=TIMEOUT)
    assert_host_answer(response, 500)
    assert any(r.exc_info and "secret detail 123" in str(r.exc_info[1]) for r in caplog.records)


# ----------------------------------------------------------------------------------------- body limit

def chunked(size: int, piece: int = 10_000) -> Iterator[bytes]:
    """A body that requests sends with Transfer-Encoding: chunked."""
    for start in range(0, size, piece):
        yield b"x" * min(piece, size - start)


@pytest.mark.parametrize("make_body", [lambda n: b"x" * n, chunked], ids=["content-length", "chunked"])
def test_body_limit_exactly_64_kib_reaches_main(host: LocalHost, make_body: Callable[[int], Any]) -> None:
    response = requests.post(host.url_for("echo"), data=make_body(LIMIT), timeout=TIMEOUT)
    assert response.status_code == 200
    assert len(bytes.fromhex(response.json()["body_hex"])) == LIMIT


@pytest.mark.parametrize("make_body", [lambda n: b"x" * n, chunked], ids=["content-length", "chunked"])
def test_body_limit_one_byte_over_answers_413_without_calling_main(host: LocalHost,
                                                                   make_body: Callable[[int], Any]) -> None:
    response = requests.post(host.url_for("echo"), data=make_body(LIMIT + 1), timeout=TIMEOUT)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"  # the app's answer, as a client gets it in Azure
    assert echo_calls() == 0


def test_body_limit_chunked_body_refused_before_the_client_finishes_sending(host: LocalHost) -> None:
    """The client sends 80 KiB of a chunked body it never finishes: a host buffering the whole body would
    still be waiting for the last chunk when the read below times out."""
    port = int(host.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"x" * 16 * 1024
        for _ in range(5):
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        status_line = sock.makefile("rb").readline()
    assert status_line.startswith(b"HTTP/1.1 413 ")
    assert echo_calls() == 0


# ------------------------------------------------------------------------------------------------ log

def test_request_log_one_line_per_request_without_query_or_body(host: LocalHost,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        requests.post(host.url_for("echo"), data=b"body-text", timeout=TIMEOUT)
        requests.get(host.url_for("message", sid="SM1", code="wrong"), timeout=TIMEOUT)
        requests.get(host.base_url + "/v1/nowhere", timeout=TIMEOUT)
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        "POST /v1/echo 200", "GET /v1/messages/SM1 401", "GET /v1/nowhere 404"]
    assert all(line.endswith("ms") for line in lines)


# ------------------------------------------------------------------------------------- module loading

def test_module_loading_stop_unloads_the_app_so_another_app_reuses_names(tmp_path: Path) -> None:
    first = make_app(tmp_path / "first")
    with LocalHost(first, port=0) as host:
        assert requests.get(host.url_for("admin_fn"), timeout=TIMEOUT).text == "admin ok"
    assert "echo" not in sys.modules and str(first) not in sys.path
    second = make_app(tmp_path / "second")
    (second / "admin_fn" / "handler.py").write_text("def run(req):\n    return 'second app'\n")
    with LocalHost(second, port=0) as host:
        assert requests.get(host.url_for("admin_fn"), timeout=TIMEOUT).text == "second app"


def test_module_loading_stop_keeps_installed_packages_inside_the_app_root(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A .venv or Azure's .python_packages inside the app root holds installed packages: unloading them on stop
    made the next host import them again, and their exception classes no longer matched the app's except clauses."""
    app = make_app(tmp_path / "app")
    packages = app / ".python_packages" / "lib" / "site-packages"
    packages.mkdir(parents=True)
    (packages / "vendored_lib.py").write_text("class VendorError(Exception):\n    pass\n")
    (app / "echo" / "__init__.py").write_text("import vendored_lib\n" + textwrap.dedent(ECHO))
    monkeypatch.syspath_prepend(str(packages))
    with LocalHost(app, port=0) as host:
        assert requests.get(host.url_for("echo"), timeout=TIMEOUT).status_code == 200
        vendored = sys.modules["vendored_lib"]
    assert "echo" not in sys.modules and sys.modules["vendored_lib"] is vendored
    monkeypatch.delitem(sys.modules, "vendored_lib")


# ---------------------------------------------------------------------------------- settings and CLI

def test_load_local_settings_sets_values_without_overriding(tmp_path: Path) -> None:
    values = {"A_SETTING": "from-file", "KEPT": "from-file"}
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    environ = {"KEPT": "from-env"}
    assert load_local_settings(tmp_path, environ) == {"A_SETTING": "from-file"}
    assert environ == {"KEPT": "from-env", "A_SETTING": "from-file"}


def test_load_local_settings_empty_and_null_values_as_func_start(tmp_path: Path) -> None:
    values = {"EMPTY": "", "NULL": None, "OVER_EMPTY": "from-file", "UNDER_SET": "from-file"}
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": values}))
    environ = {"OVER_EMPTY": "", "UNDER_SET": "from-env"}
    assert load_local_settings(tmp_path, environ) == {"EMPTY": "", "OVER_EMPTY": "from-file"}
    assert environ == {"EMPTY": "", "OVER_EMPTY": "from-file", "UNDER_SET": "from-env"}


def test_cli_key_from_local_settings_enforced_and_sigterm_exits_0(app_root: Path) -> None:
    (app_root / "local.settings.json").write_text(json.dumps({"Values": {KEY_ENV: "settings-key"}}))
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "devtools.local_host", "--root", str(app_root), "--port", "0"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        listing = []
        for line in proc.stdout:  # type: ignore[union-attr]
            listing.append(line.strip())
            if line.startswith("Press Ctrl+C"):
                break
        url = next(line.split()[-1] for line in listing if line.startswith("admin_fn:"))
        assert requests.get(url, timeout=TIMEOUT).status_code == 401
        assert requests.get(url, params={"code": "settings-key"}, timeout=TIMEOUT).text == "admin ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stderr
    assert "GET /v1/admin_fn 200" in stderr and "settings-key" not in stderr


# ------------------------------------------------------------------------------- CORS and static files

@pytest.mark.parametrize(("cors", "origin", "allowed"), [
    ({"CORS": "http://localhost:5173, http://other"}, "http://localhost:5173", "http://localhost:5173"),
    ({"CORS": "*"}, "http://anywhere", "*"),
    ({"CORS": "*", "CORSCredentials": True}, "http://anywhere", "http://anywhere"),
    ({"CORS": "http://localhost:5173"}, "http://evil", None),
    ({}, "http://localhost:5173", None),
])
def test_cors_host_setting_answers_preflight_and_requests_like_func_start(app_root: Path, cors: dict[str, Any],
                                                                          origin: str, allowed: str | None) -> None:
    (app_root / "local.settings.json").write_text(json.dumps({"Values": {}, "Host": cors}))
    with LocalHost(app_root, port=0, function_key="") as host:
        preflight = requests.options(host.url_for("respond"), timeout=TIMEOUT, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,idempotency-key"})
        answer = requests.post(host.url_for("respond"), json={"text": "hi"}, headers={"Origin": origin},
                               timeout=TIMEOUT)
    assert answer.status_code == 200 and answer.headers.get("Access-Control-Allow-Origin") == allowed
    assert preflight.headers.get("Access-Control-Allow-Origin") == allowed
    if allowed:
        assert preflight.status_code == 204  # the host answers it: respond lists POST only
        assert preflight.headers["Access-Control-Allow-Headers"] == "content-type,idempotency-key"
        assert ("Access-Control-Allow-Credentials" in answer.headers) == bool(cors.get("CORSCredentials"))


def test_static_folder_is_served_at_its_prefix_before_the_functions(app_root: Path, tmp_path: Path) -> None:
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text("<!doctype html><title>console</title>")
    with LocalHost(app_root, port=0, static={"/_console": tmp_path / "page"}) as host:
        page = requests.get(f"{host.base_url}/_console/index.html", timeout=TIMEOUT)
        function = requests.post(host.url_for("respond"), json={"text": "hi"}, timeout=TIMEOUT)
    assert page.status_code == 200 and "console" in page.text and page.headers["Content-Type"].startswith("text/html")
    assert function.text == "hi"
