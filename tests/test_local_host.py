"""Tests for devtools.local_host: a local stand-in for `func start` (v1 programming model).

Every test builds its toy function app in ``tmp_path`` and talks to it over real HTTP on
127.0.0.1 (port 0).  The toy apps deliberately reuse the same module names (``shared``,
``echo``...) in every test: the host isolates the modules it imports and removes them on
``stop()``, and these tests prove that.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from werkzeug.test import Client

from devtools.local_host import LOGGER_NAME, LocalHost, load_local_settings
from devtools.local_host.routes import RouteTemplate, split_path

REPO_ROOT = Path(__file__).resolve().parents[1]
KEY = "s3cret-key"
TIMEOUT = 10


# --------------------------------------------------------------------------- helpers

def write_function(root: Path, name: str, trigger: dict[str, Any], code: str,
                   extra: dict[str, Any] | None = None, script: str = "__init__.py") -> None:
    """Write <root>/<name>/function.json (http trigger + $return) and its script."""
    folder = root / name
    folder.mkdir(parents=True)
    bindings = [{"type": "httpTrigger", "direction": "in", "name": "req", **trigger},
                {"type": "http", "direction": "out", "name": "$return"}]
    manifest: dict[str, Any] = {"scriptFile": script, "bindings": bindings, **(extra or {})}
    (folder / "function.json").write_text(json.dumps(manifest), encoding="utf-8")
    (folder / script).write_text(textwrap.dedent(code), encoding="utf-8")


def write_host_json(root: Path, route_prefix: str | None) -> None:
    http_ext = {} if route_prefix is None else {"routePrefix": route_prefix}
    host = {"version": "2.0", "extensions": {"http": http_ext}}
    (root / "host.json").write_text(json.dumps(host), encoding="utf-8")


def write_shared(root: Path, marker: str) -> None:
    (root / "shared").mkdir()
    (root / "shared" / "__init__.py").write_text(textwrap.dedent(f"""
        MARKER = {marker!r}

        def tag(value):
            return f"{{MARKER}}:{{value}}"
    """), encoding="utf-8")


ECHO = """
    import json
    import azure.functions as func
    import shared

    def main(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        payload = {
            "method": req.method,
            "url": req.url,
            "headers": dict(req.headers),
            "params": dict(req.params),
            "route_params": dict(req.route_params),
            "body_hex": req.get_body().hex(),
            "function_name": context.function_name,
            "shared_file": shared.__file__,
        }
        return func.HttpResponse(json.dumps(payload), mimetype="application/json")
"""

GET_ITEM = """
    import json
    import azure.functions as func
    from shared import tag
    import shared

    def main(req: func.HttpRequest) -> func.HttpResponse:
        body = {"route_params": dict(req.route_params), "tag": tag(req.route_params["id"]),
                "shared_file": shared.__file__}
        return func.HttpResponse(json.dumps(body), status_code=202, headers={"X-Item": "yes"},
                                 mimetype="application/json")
"""

HELLO = """
    from shared import tag

    def main(req):
        return tag("hello")
"""

BOOM = """
    def main(req):
        raise RuntimeError("secret detail 123")
"""


def build_toy_app(root: Path, marker: str = "toy", route_prefix: str | None = "v1") -> Path:
    """host.json (custom prefix) + shared module + four functions."""
    root.mkdir(parents=True, exist_ok=True)
    write_host_json(root, route_prefix)
    write_shared(root, marker)
    write_function(root, "echo", {"authLevel": "anonymous", "methods": ["get", "post", "put"]}, ECHO)
    write_function(root, "get_item", {"authLevel": "function", "methods": ["get"],
                                      "route": "items/{id:int}/{name?}"}, GET_ITEM)
    write_function(root, "hello", {"authLevel": "admin"}, HELLO)
    write_function(root, "boom", {"authLevel": "anonymous", "methods": ["get"]}, BOOM)
    return root


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FUNCTIONS_HOST_KEY", raising=False)


@pytest.fixture
def toy_app(tmp_path: Path) -> Path:
    return build_toy_app(tmp_path / "app")


@pytest.fixture
def toy_host(toy_app: Path) -> Iterator[LocalHost]:
    with LocalHost(toy_app, port=0) as host:
        yield host


@pytest.fixture
def keyed_host(toy_app: Path) -> Iterator[LocalHost]:
    with LocalHost(toy_app, port=0, function_key=KEY) as host:
        yield host


def request_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    pattern = re.compile(r"^[A-Z]+ /\S* \d{3} \d+\.\d+ms$")
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER_NAME and pattern.match(r.getMessage())]


# --------------------------------------------------------------------------- discovery

def test_discovery_toy_app_lists_every_function_folder(toy_host: LocalHost) -> None:
    functions = toy_host.functions
    assert sorted(functions) == ["boom", "echo", "get_item", "hello"]
    assert functions["echo"].route == "echo"
    assert functions["echo"].methods == ("GET", "POST", "PUT")
    assert functions["echo"].auth_level == "anonymous"
    assert functions["get_item"].route == "items/{id:int}/{name?}"
    assert functions["get_item"].auth_level == "function"
    assert functions["hello"].methods is None
    assert functions["hello"].auth_level == "admin"
    assert toy_host.route_prefix == "v1"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", toy_host.base_url)
    assert toy_host.url_for("echo") == toy_host.base_url + "/v1/echo"


def test_discovery_non_http_and_folders_without_function_json_handled(tmp_path: Path) -> None:
    write_host_json(tmp_path, None)
    write_function(tmp_path, "web", {"authLevel": "anonymous"}, "def main(req):\n    return 'ok'\n")
    (tmp_path / "timer").mkdir()
    (tmp_path / "timer" / "function.json").write_text(json.dumps({"bindings": [
        {"type": "timerTrigger", "direction": "in", "name": "mytimer", "schedule": "0 */5 * * * *"}]}))
    (tmp_path / "timer" / "__init__.py").write_text("def main(mytimer):\n    pass\n")
    (tmp_path / "not_a_function").mkdir()
    with LocalHost(tmp_path, port=0) as host:
        assert sorted(host.functions) == ["timer", "web"]
        assert host.functions["timer"].trigger == "timerTrigger"
        assert not host.functions["timer"].is_http
        with pytest.raises(ValueError):
            host.url_for("timer")
        assert requests.get(host.url_for("web"), timeout=TIMEOUT).text == "ok"


def test_url_for_route_params_given_filled_and_encoded(toy_host: LocalHost) -> None:
    assert toy_host.url_for("get_item", id=7, name="a b") == toy_host.base_url + "/v1/items/7/a%20b"
    assert toy_host.url_for("get_item", id=7) == toy_host.base_url + "/v1/items/7"
    with pytest.raises(ValueError):
        toy_host.url_for("get_item")
    with pytest.raises(KeyError):
        toy_host.url_for("nope")


# --------------------------------------------------------------------------- routing

def test_route_prefix_custom_prefix_served_default_api_not(toy_host: LocalHost) -> None:
    assert requests.get(toy_host.base_url + "/v1/echo", timeout=TIMEOUT).status_code == 200
    assert requests.get(toy_host.base_url + "/api/echo", timeout=TIMEOUT).status_code == 404


def test_route_prefix_empty_string_serves_at_root(tmp_path: Path) -> None:
    build_toy_app(tmp_path, route_prefix="")
    with LocalHost(tmp_path, port=0) as host:
        assert host.url_for("echo") == host.base_url + "/echo"
        assert requests.get(host.base_url + "/echo", timeout=TIMEOUT).status_code == 200


def test_route_prefix_absent_defaults_to_api(tmp_path: Path) -> None:
    build_toy_app(tmp_path, route_prefix=None)
    with LocalHost(tmp_path, port=0) as host:
        assert host.route_prefix == "api"
        assert requests.get(host.base_url + "/api/echo", timeout=TIMEOUT).status_code == 200


def test_route_params_int_and_optional_reach_function(keyed_host: LocalHost) -> None:
    headers = {"x-functions-key": KEY}
    base = keyed_host.base_url
    full = requests.get(base + "/v1/items/42/widget", headers=headers, timeout=TIMEOUT)
    assert full.status_code == 202
    assert full.json()["route_params"] == {"id": "42", "name": "widget"}
    short = requests.get(base + "/v1/items/42/", headers=headers, timeout=TIMEOUT)
    assert short.json()["route_params"] == {"id": "42"}
    encoded = requests.get(base + "/v1/items/42/a%20b", headers=headers, timeout=TIMEOUT)
    assert encoded.json()["route_params"] == {"id": "42", "name": "a b"}
    assert requests.get(base + "/v1/items/abc", headers=headers, timeout=TIMEOUT).status_code == 404


def test_routing_wrong_method_returns_405_with_allow(toy_host: LocalHost) -> None:
    resp = requests.delete(toy_host.url_for("echo"), timeout=TIMEOUT)
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "GET, POST, PUT"
    assert resp.json()["error"] == "Method Not Allowed"


def test_routing_unknown_path_returns_404(toy_host: LocalHost) -> None:
    for path in ("/v1/nope", "/", "/v1", "/v1/echo/extra"):
        assert requests.get(toy_host.base_url + path, timeout=TIMEOUT).status_code == 404, path


def test_routing_methods_absent_allows_every_method(keyed_host: LocalHost) -> None:
    for method in ("GET", "POST", "PATCH", "DELETE"):
        resp = requests.request(method, keyed_host.url_for("hello"), headers={"x-functions-key": KEY},
                                timeout=TIMEOUT)
        assert resp.status_code == 200, method


@pytest.mark.parametrize(("template", "path", "expected"), [
    ("api/items/{id}", "/api/items/5", {"id": "5"}),
    ("api/items/{id:int}", "/api/items/x", None),
    ("api/items/{id:int?}", "/api/items", {}),
    ("api/items/{id=7}", "/api/items", {"id": "7"}),
    ("api/files/{*path}", "/api/files/a/b%2Fc.txt", {"path": "a/b/c.txt"}),
    ("api/{name:alpha}.{ext}", "/api/report.pdf", {"name": "report", "ext": "pdf"}),
    ("api/Items", "/API/items/", {}),
    ("api/items/{id:min(10)}", "/api/items/9", None),
])
def test_route_template_match_various_templates_expected_params(template: str, path: str,
                                                    expected: dict[str, str] | None) -> None:
    assert RouteTemplate(template).match(split_path(path)) == expected


def test_routing_literal_route_beats_parameter_route(tmp_path: Path) -> None:
    write_host_json(tmp_path, "api")
    write_function(tmp_path, "by_id", {"authLevel": "anonymous", "route": "things/{id}"},
                   "def main(req):\n    return 'param:' + req.route_params['id']\n")
    write_function(tmp_path, "special", {"authLevel": "anonymous", "route": "things/special"},
                   "def main(req):\n    return 'literal'\n")
    with LocalHost(tmp_path, port=0) as host:
        assert requests.get(host.base_url + "/api/things/special", timeout=TIMEOUT).text == "literal"
        assert requests.get(host.base_url + "/api/things/9", timeout=TIMEOUT).text == "param:9"


# --------------------------------------------------------------------------- request/response

def test_echo_request_reaches_httprequest_exactly(toy_host: LocalHost) -> None:
    port = toy_host.base_url.rsplit(":", 1)[1]
    query = "a=1&b=two%20words&a=2&empty=&plus=x+y"
    body = b"\x00\xffraw body \xe2\x82\xac"
    resp = requests.post(f"{toy_host.base_url}/v1/echo?{query}", data=body,
                         headers={"X-Custom": "Value 1", "Content-Type": "application/octet-stream"},
                         timeout=TIMEOUT)
    assert resp.status_code == 200
    got = resp.json()
    assert got["method"] == "POST"
    assert got["url"] == f"http://127.0.0.1:{port}/v1/echo?{query}"
    assert got["params"] == {"a": "1,2", "b": "two words", "empty": "", "plus": "x y"}
    assert got["route_params"] == {}
    assert bytes.fromhex(got["body_hex"]) == body
    assert got["headers"]["x-custom"] == "Value 1"
    assert got["headers"]["content-type"] == "application/octet-stream"
    assert got["headers"]["content-length"] == str(len(body))
    assert got["function_name"] == "echo"


def test_echo_host_header_honoured_in_url(toy_host: LocalHost) -> None:
    resp = requests.get(toy_host.base_url + "/v1/echo?x=%2F", headers={"Host": "example.test:8080"},
                        timeout=TIMEOUT)
    assert resp.json()["url"] == "http://example.test:8080/v1/echo?x=%2F"


def test_echo_chunked_body_reaches_function(toy_host: LocalHost) -> None:
    parts = [b"chunk-one|", b"chunk-two|", b"x" * 70000]
    resp = requests.put(toy_host.url_for("echo"), data=iter(parts), timeout=TIMEOUT)
    assert resp.status_code == 200
    assert bytes.fromhex(resp.json()["body_hex"]) == b"".join(parts)


def test_response_status_headers_content_type_returned(keyed_host: LocalHost) -> None:
    resp = requests.get(keyed_host.url_for("get_item", id=1), headers={"x-functions-key": KEY},
                        timeout=TIMEOUT)
    assert resp.status_code == 202
    assert resp.headers["X-Item"] == "yes"
    assert resp.headers["Content-Type"] == "application/json"


def test_response_str_return_is_200_text_plain(keyed_host: LocalHost) -> None:
    resp = requests.get(keyed_host.url_for("hello"), params={"code": KEY}, timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert resp.text == "toy:hello"


def test_response_text_mimetype_gets_charset_and_custom_content_type_kept(tmp_path: Path) -> None:
    write_host_json(tmp_path, "api")
    write_function(tmp_path, "html_page", {"authLevel": "anonymous"}, """
        import azure.functions as func
        def main(req):
            return func.HttpResponse("<p>é</p>", mimetype="text/html", status_code=201)
    """)
    write_function(tmp_path, "xml_doc", {"authLevel": "anonymous"}, """
        import azure.functions as func
        def main(req):
            return func.HttpResponse(b"<r/>", headers={"Content-Type": "application/xml"})
    """)
    with LocalHost(tmp_path, port=0) as host:
        html = requests.get(host.url_for("html_page"), timeout=TIMEOUT)
        assert (html.status_code, html.headers["Content-Type"]) == (201, "text/html; charset=utf-8")
        assert html.content == "<p>é</p>".encode()
        xml = requests.get(host.url_for("xml_doc"), timeout=TIMEOUT)
        assert (xml.headers["Content-Type"], xml.content) == ("application/xml", b"<r/>")


def test_invocation_script_file_entry_point_async_and_out_binding_supported(tmp_path: Path) -> None:
    write_host_json(tmp_path, "api")
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "function.json").write_text(json.dumps({
        "scriptFile": "handler.py", "entryPoint": "run",
        "bindings": [{"type": "httpTrigger", "direction": "in", "name": "request", "authLevel": "anonymous"},
                     {"type": "http", "direction": "out", "name": "res"}]}))
    (folder / "__init__.py").write_text("")
    (folder / "handler.py").write_text(textwrap.dedent("""
        import asyncio
        import azure.functions as func

        async def run(request: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
            await asyncio.sleep(0)
            res.set(func.HttpResponse("async " + request.method, status_code=203))
    """))
    with LocalHost(tmp_path, port=0) as host:
        resp = requests.post(host.url_for("custom"), timeout=TIMEOUT)
        assert (resp.status_code, resp.text) == (203, "async POST")


# --------------------------------------------------------------------------- function keys

@pytest.mark.parametrize(("headers", "params", "status"), [
    ({"x-functions-key": KEY}, {}, 202),
    ({}, {"code": KEY}, 202),
    ({"x-functions-key": "wrong"}, {}, 401),
    ({}, {"code": "wrong"}, 401),
    ({}, {}, 401),
])
def test_function_key_configured_enforced_for_function_level(keyed_host: LocalHost, headers: dict[str, str],
                                                             params: dict[str, str], status: int) -> None:
    resp = requests.get(keyed_host.url_for("get_item", id=3), headers=headers, params=params, timeout=TIMEOUT)
    assert resp.status_code == status
    if status == 401:
        assert resp.json()["error"] == "Unauthorized"


def test_function_key_configured_enforced_for_admin_level(keyed_host: LocalHost) -> None:
    assert requests.get(keyed_host.url_for("hello"), timeout=TIMEOUT).status_code == 401
    resp = requests.get(keyed_host.url_for("hello"), headers={"x-functions-key": KEY}, timeout=TIMEOUT)
    assert resp.status_code == 200


def test_function_key_configured_anonymous_never_asks(keyed_host: LocalHost) -> None:
    assert requests.get(keyed_host.url_for("echo"), timeout=TIMEOUT).status_code == 200
    wrong = requests.get(keyed_host.url_for("echo"), params={"code": "wrong"}, timeout=TIMEOUT)
    assert wrong.status_code == 200


def test_function_key_from_env_var_enforced(toy_app: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNCTIONS_HOST_KEY", "from-env")
    with LocalHost(toy_app, port=0) as host:
        assert host.function_key == "from-env"
        assert requests.get(host.url_for("hello"), timeout=TIMEOUT).status_code == 401
        ok = requests.get(host.url_for("hello"), params={"code": "from-env"}, timeout=TIMEOUT)
        assert ok.status_code == 200


def test_function_key_not_configured_serves_protected_and_logs_notice(
        toy_app: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    with LocalHost(toy_app, port=0) as host:
        assert requests.get(host.url_for("get_item", id=1), timeout=TIMEOUT).status_code == 202
        assert requests.get(host.url_for("hello"), timeout=TIMEOUT).status_code == 200
    notices = [r.getMessage() for r in caplog.records if "no function key configured" in r.getMessage()]
    assert len(notices) == 1 and "get_item" in notices[0] and "hello" in notices[0]


# --------------------------------------------------------------------------- errors and logging

def test_exception_in_main_returns_500_generic_and_logs_traceback(
        toy_host: LocalHost, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    resp = requests.get(toy_host.url_for("boom"), timeout=TIMEOUT)
    assert resp.status_code == 500
    assert "secret detail" not in resp.text
    assert resp.json() == {"error": "Internal Server Error"}
    failed = [r.exc_info[1] for r in caplog.records if r.exc_info and "boom" in r.getMessage()]
    assert failed and "secret detail 123" in str(failed[0])


def test_import_error_in_function_returns_500_and_other_functions_still_served(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_host_json(tmp_path, "api")
    write_function(tmp_path, "broken", {"authLevel": "anonymous"}, "import does_not_exist_xyz\n")
    write_function(tmp_path, "fine", {"authLevel": "anonymous"}, "def main(req):\n    return 'fine'\n")
    with LocalHost(tmp_path, port=0) as host:
        assert requests.get(host.url_for("broken"), timeout=TIMEOUT).status_code == 500
        assert requests.get(host.url_for("fine"), timeout=TIMEOUT).text == "fine"
    assert any("broken: function failed to load" in r.getMessage() for r in caplog.records)


def test_request_log_one_line_without_body_headers_or_code(
        keyed_host: LocalHost, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    caplog.clear()
    requests.post(keyed_host.base_url + f"/v1/echo?code={KEY}&q=1", data=b"BODY-SECRET",
                  headers={"X-Private": "HEADER-SECRET"}, timeout=TIMEOUT)
    requests.get(keyed_host.base_url + "/v1/items/5", params={"code": KEY}, timeout=TIMEOUT)
    requests.get(keyed_host.base_url + "/v1/missing", timeout=TIMEOUT)
    lines = request_lines(caplog)
    assert len(lines) == 3
    assert re.fullmatch(r"POST /v1/echo 200 \d+\.\dms", lines[0])
    assert re.fullmatch(r"GET /v1/items/5 202 \d+\.\dms", lines[1])
    assert re.fullmatch(r"GET /v1/missing 404 \d+\.\dms", lines[2])
    everything = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(LOGGER_NAME))
    for secret in ("BODY-SECRET", "HEADER-SECRET", KEY, "q=1"):
        assert secret not in everything


# --------------------------------------------------------------------------- settings

def test_local_settings_loaded_without_overriding_existing_env(
        toy_app: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (toy_app / "local.settings.json").write_text(json.dumps({
        "IsEncrypted": False,
        "Values": {"LH_TEST_EXISTING": "from-file", "LH_TEST_NEW": "from-file", "LH_TEST_NUM": 10}}))
    monkeypatch.setenv("LH_TEST_EXISTING", "from-env")
    for name in ("LH_TEST_NEW", "LH_TEST_NUM"):  # registers removal at teardown
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    LocalHost(toy_app, port=0)  # the Python API does not load it unless asked
    assert "LH_TEST_NEW" not in os.environ
    host = LocalHost(toy_app, port=0, load_settings=True)
    assert os.environ["LH_TEST_EXISTING"] == "from-env"
    assert os.environ["LH_TEST_NEW"] == "from-file"
    assert os.environ["LH_TEST_NUM"] == "10"
    assert host.settings_loaded == {"LH_TEST_NEW": "from-file", "LH_TEST_NUM": "10"}


def test_local_settings_function_key_value_configures_key(toy_app: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (toy_app / "local.settings.json").write_text(json.dumps({"Values": {"FUNCTIONS_HOST_KEY": "file-key"}}))
    monkeypatch.setenv("FUNCTIONS_HOST_KEY", "x")
    monkeypatch.delenv("FUNCTIONS_HOST_KEY")
    assert load_local_settings(toy_app, environ={}) == {"FUNCTIONS_HOST_KEY": "file-key"}
    assert LocalHost(toy_app, port=0, load_settings=True).function_key == "file-key"


# --------------------------------------------------------------------------- module isolation

def test_module_loading_shared_used_by_two_functions_resolves_to_app_root(keyed_host: LocalHost, toy_app: Path) -> None:
    headers = {"x-functions-key": KEY}
    echo = requests.get(keyed_host.url_for("echo"), timeout=TIMEOUT).json()
    item = requests.get(keyed_host.url_for("get_item", id=9), headers=headers, timeout=TIMEOUT).json()
    expected = str(toy_app.resolve() / "shared" / "__init__.py")
    assert echo["shared_file"] == item["shared_file"] == expected
    assert item["tag"] == "toy:9"


LAZY = """
    def main(req):
        from shared.extra import VALUE  # imported at run time, not at load time
        return VALUE
"""


def test_module_isolation_two_apps_same_names_do_not_leak(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    foreign = ModuleType("shared")
    foreign.__file__ = str(tmp_path / "elsewhere" / "shared.py")
    monkeypatch.setitem(sys.modules, "shared", foreign)  # e.g. another app's shared, already imported
    roots = {}
    for marker in ("A", "B"):
        root = roots[marker] = build_toy_app(tmp_path / marker, marker=marker)
        write_function(root, "lazy", {"authLevel": "anonymous"}, LAZY)
        (root / "shared" / "extra.py").write_text(f"VALUE = 'extra-{marker}'\n")
    for marker in ("A", "B", "A"):
        root = roots[marker]
        with LocalHost(root, port=0, function_key=KEY) as host:
            hello = requests.get(host.url_for("hello"), params={"code": KEY}, timeout=TIMEOUT)
            assert hello.text == f"{marker}:hello"
            assert requests.get(host.url_for("lazy"), timeout=TIMEOUT).text == f"extra-{marker}"
            assert sys.modules["shared"] is not foreign
        assert sys.modules["shared"] is foreign
        assert not {"echo", "hello", "lazy", "get_item", "boom", "shared.extra"} & set(sys.modules)
        assert str(root.resolve()) not in sys.path


def test_module_isolation_symlinked_function_folder_served(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_function(outside, "linked", {"authLevel": "anonymous"}, "def main(req):\n    return 'linked'\n")
    root = tmp_path / "app"
    root.mkdir()
    write_host_json(root, "api")
    (root / "linked").symlink_to(outside / "linked", target_is_directory=True)
    with LocalHost(root, port=0) as host:
        assert requests.get(host.url_for("linked"), timeout=TIMEOUT).text == "linked"
    assert "linked" not in sys.modules


def test_wsgi_app_without_socket_serves_in_process(toy_app: Path) -> None:
    host = LocalHost(toy_app, port=0)
    try:
        client = Client(host.wsgi_app)
        resp = client.post("/v1/echo?x=1", data=b"in-process", headers={"Host": "bench.local"})
        assert resp.status_code == 200
        assert resp.get_json()["url"] == "http://bench.local/v1/echo?x=1"
        assert client.get("/v1/nope").status_code == 404
    finally:
        host.stop()
    assert "echo" not in sys.modules


# --------------------------------------------------------------------------- server behaviour

def test_server_keep_alive_connection_reused_after_error_with_unread_body(toy_host: LocalHost) -> None:
    host, port = toy_host.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        conn.request("POST", "/v1/missing", body=b"x" * 5000)
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        conn.request("DELETE", "/v1/echo", body=b"y" * 10)
        second = conn.getresponse()
        second.read()
        conn.request("POST", "/v1/echo", body=b"after")
        third = conn.getresponse()
        payload = json.loads(third.read())
        assert (first.status, second.status, third.status) == (404, 405, 200)
        assert bytes.fromhex(payload["body_hex"]) == b"after"
        assert conn.sock is sock  # same TCP connection all along
    finally:
        conn.close()


def test_server_concurrent_requests_no_errors(toy_host: LocalHost) -> None:
    url = toy_host.url_for("echo") + "?n=1"
    local = threading.local()

    def one(i: int) -> int | str:
        if i % 10 == 0:  # some clients without keep-alive
            return requests.post(url, data=b"p", headers={"Connection": "close"}, timeout=TIMEOUT).status_code
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        try:
            return session.post(url, data=str(i).encode(), timeout=TIMEOUT).status_code
        except requests.RequestException as exc:
            return type(exc).__name__

    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = Counter(pool.map(one, range(2000)))
    assert outcomes == Counter({200: 2000})


def test_server_stop_closes_listener_and_idle_connections(toy_app: Path) -> None:
    host = LocalHost(toy_app, port=0).start()
    url = host.url_for("echo")
    session = requests.Session()
    assert session.get(url, timeout=TIMEOUT).status_code == 200
    host.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(url, timeout=TIMEOUT)
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=TIMEOUT)
    host.stop()  # idempotent


def start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Run ``python -m devtools.local_host ARGS``; return the process and its listing (up to "Press Ctrl+C")."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "devtools.local_host", *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if "Press Ctrl+C" in line:
            break
    return proc, "\n".join(lines)


def stop_cli(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
    return proc.returncode, stderr


def test_cli_started_with_key_lists_functions_and_exits_0_on_sigint(toy_app: Path) -> None:
    proc, listing = start_cli("--root", str(toy_app), "--port", "0", "--function-key", KEY)
    try:
        assert "Functions:" in listing
        match = re.search(r"get_item: \[GET\] (http://127\.0\.0\.1:\d+)/v1/items/\{id:int\}/\{name\?\}", listing)
        assert match, listing
        assert re.search(r"hello: \[ALL\] http://127\.0\.0\.1:\d+/v1/hello", listing)
        base = match.group(1)
        assert requests.get(base + "/v1/items/4", timeout=TIMEOUT).status_code == 401
        ok = requests.get(base + "/v1/items/4", headers={"x-functions-key": KEY}, timeout=TIMEOUT)
        assert ok.status_code == 202
    finally:
        returncode, stderr = stop_cli(proc)
    assert returncode == 0, stderr
    assert re.search(r"GET /v1/items/4 202 \d+\.\dms", stderr)
    assert "function key configured (argument)" in stderr
    assert KEY not in stderr and KEY not in listing


def test_cli_default_local_settings_loaded_and_key_from_it_enforced(toy_app: Path) -> None:
    (toy_app / "local.settings.json").write_text(json.dumps({"Values": {"FUNCTIONS_HOST_KEY": "settings-key"}}))
    proc, listing = start_cli("--root", str(toy_app), "--port", "0")
    try:
        match = re.search(r"hello: \[ALL\] (http://127\.0\.0\.1:\d+/v1/hello)", listing)
        assert match, listing
        assert requests.get(match.group(1), timeout=TIMEOUT).status_code == 401
        assert requests.get(match.group(1), params={"code": "settings-key"}, timeout=TIMEOUT).status_code == 200
    finally:
        returncode, stderr = stop_cli(proc)
    assert returncode == 0, stderr
    assert "function key configured (FUNCTIONS_HOST_KEY)" in stderr
