"""openapi.yaml: a valid OpenAPI 3.1 document that agrees with the code it documents.

Checked against the code, not against a copy of it: function folders and their function.json (authLevel), the
methods each main answers, the request fields and limits in shared/messaging.py and shared/voice.py, the patterns
in shared/twiml.py, the 201 bodies built in shared/, and every (status, error code) an AppError can carry in the
modules each function imports.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support import ROOT, openapi_document

openapi_spec_validator = pytest.importorskip("openapi_spec_validator")

SPEC_PATH = ROOT / "openapi.yaml"
MOBILE = {"send_sms": "shared.messaging", "make_call": "shared.calls"}
LOOKUPS = {"message_status": "/messages/{sid}", "call_status": "/calls/{sid}", "voice_token": "/voice_token"}
# What a lookup can answer (the modules it imports also hold the request-body parsing it never uses).
LOOKUP_CODES = {401: {"unauthenticated"}, 404: {"not_found"}, 405: {"method_not_allowed"}, 429: {"rate_limited"},
                500: {"internal_error"}, 504: {"twilio_timeout"},
                502: {"twilio_auth_failed", "twilio_unavailable", "twilio_unreachable", "twilio_connection_lost",
                      "twilio_bad_response", "twilio_error"},
                503: {"not_configured", "auth_unavailable", "state_unavailable"}}
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
FUNCTION_KEY_SCHEMES = {("header", "x-functions-key"), ("query", "code")}


@pytest.fixture
def spec() -> dict[str, Any]:
    return openapi_document()


def resolve(spec: dict[str, Any], node: Any) -> Any:
    """Follow local $refs ('#/components/...') until a node without one."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local references are used: {ref}"
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def functions() -> dict[str, dict[str, Any]]:
    """Every HTTP function folder: {name: its httpTrigger binding} (a timer has no route to document), with the
    "methods" its main answers: function.json lists none, main's 405 names them in its Allow header."""
    import importlib

    import azure.functions as func

    found = {}
    for path in sorted(ROOT.glob("*/function.json")):
        bindings = json.loads(path.read_text())["bindings"]
        trigger = next((b for b in bindings if b["type"] == "httpTrigger"), None)
        if trigger is not None:
            refused = importlib.import_module(path.parent.name).main(func.HttpRequest("TRACE", "http://h/x", body=b""))
            assert refused.status_code == 405, path.parent.name
            found[path.parent.name] = {**trigger, "methods": refused.headers["Allow"].split(", ")}
    return found


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def route_of(name: str, trigger: dict[str, Any]) -> str:
    return "/" + trigger.get("route", name)


def paths_of(name: str, trigger: dict[str, Any]) -> dict[str, set[str]]:
    """{path: methods} of a function. A route ending in an optional parameter (`broadcasts/{id?}`) is two paths:
    without it for POST, with it (as a plain parameter) for the other methods."""
    route, methods = route_of(name, trigger), {m.lower() for m in trigger["methods"]}
    if not route.endswith("?}"):
        return {route: methods}
    return {route.rsplit("/", 1)[0]: methods & {"post"}, route.replace("?}", "}"): methods - {"post"}}


def request_schema(spec: dict[str, Any], name: str, media_type: str) -> dict[str, Any]:
    return resolve(spec, spec["paths"][f"/{name}"]["post"]["requestBody"]["content"][media_type]["schema"])


def prop(spec: dict[str, Any], schema: dict[str, Any], name: str) -> dict[str, Any]:
    return resolve(spec, schema["properties"][name])


# -- the document itself ------------------------------------------------------------------------------------------
def test_openapi_document_is_valid_openapi_3_1(spec):
    from openapi_spec_validator import OpenAPIV31SpecValidator, validate

    assert re.fullmatch(r"3\.1\.\d+", spec["openapi"])
    validate(spec, cls=OpenAPIV31SpecValidator)


def test_openapi_every_local_reference_resolves(spec):
    refs = re.findall(r"\$ref['\"]?:\s*['\"]([^'\"]+)['\"]", SPEC_PATH.read_text())
    assert refs
    for ref in set(refs):
        resolve(spec, {"$ref": ref})


def test_openapi_servers_are_local_and_azure_with_the_route_prefix(spec):
    prefix = json.loads((ROOT / "host.json").read_text())["extensions"]["http"]["routePrefix"]
    urls = [server["url"] for server in spec["servers"]]
    assert urls == [f"http://localhost:7071/{prefix}", f"https://{{app}}.azurewebsites.net/{prefix}"]
    assert "default" in spec["servers"][1]["variables"]["app"]


def test_openapi_operation_ids_are_unique(spec):
    ids = [op["operationId"] for _, _, op in operations(spec)]
    assert len(ids) == len(set(ids))


# -- functions, methods, keys ----------------------------------------------------------------------------------
def test_openapi_documents_every_function_folder_with_its_methods(spec):
    found = functions()
    assert found, "no function folders found"
    assert set(spec["paths"]) == {path for name, trigger in found.items() for path in paths_of(name, trigger)}
    for name, trigger in found.items():
        for path, methods in paths_of(name, trigger).items():
            assert {method for method in HTTP_METHODS if method in spec["paths"][path]} == methods, name


def test_openapi_function_key_scheme_is_the_header_or_the_code_query_parameter_plus_bearer(spec):
    schemes = spec["components"]["securitySchemes"]
    assert {(s["in"], s["name"]) for s in schemes.values() if s["type"] == "apiKey"} == FUNCTION_KEY_SCHEMES
    assert [(s["type"], s.get("scheme")) for s in schemes.values() if s["type"] != "apiKey"] == [("http", "bearer")]


@pytest.mark.parametrize("name", sorted(functions()))
def test_openapi_security_present_exactly_when_auth_level_is_not_anonymous(spec, name):
    trigger = functions()[name]
    schemes = spec["components"]["securitySchemes"]
    for path, methods in paths_of(name, trigger).items():
        for method in methods:
            check_security(spec, schemes, trigger, name, method, spec["paths"][path][method])


def check_security(spec: dict[str, Any], schemes: dict[str, Any], trigger: dict[str, Any], name: str, method: str,
                   operation: dict[str, Any]) -> None:
    security = operation.get("security", spec.get("security", []))
    if trigger["authLevel"] == "anonymous":
        assert security == [], f"{name} {method}: anonymous, so no function key"
        assert "401" not in operation["responses"]
    else:
        # Alternatives: the header or the query parameter, each alone or with the bearer token.
        keys = [[s for s in requirement if schemes[s]["type"] == "apiKey"] for requirement in security]
        assert all(len(key) == 1 for key in keys), security
        used = {(schemes[k[0]]["in"], schemes[k[0]]["name"]) for k in keys}
        assert used == FUNCTION_KEY_SCHEMES, f"{name} {method}"
        assert "401" in operation["responses"]


# -- request fields and limits ------------------------------------------------------------------------------------
def field_limits(module_name: str) -> dict[str, dict[str, Any]]:
    """{field: {"max_length": n, "pattern": regex}} from the fields.text(...) calls of a module."""
    import importlib

    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__).read_text())
    limits: dict[str, dict[str, Any]] = {}

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return getattr(module, node.id)
        raise AssertionError(f"unexpected argument {ast.dump(node)}")

    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "text"
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)):
            limits[node.args[1].value] = {kw.arg: value(kw.value) for kw in node.keywords if kw.arg}
    return limits


@pytest.mark.parametrize("media_type", [JSON, FORM])
@pytest.mark.parametrize("name", sorted(MOBILE))
def test_openapi_request_fields_are_exactly_the_fields_the_code_accepts(spec, name, media_type):
    import importlib

    fields = importlib.import_module(MOBILE[name]).FIELDS
    schema = request_schema(spec, name, media_type)
    assert schema["type"] == "object"
    assert set(schema["properties"]) == set(fields)
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["to"]


def test_openapi_send_sms_limits_equal_the_code(spec):
    from shared.messaging import MAX_BODY_CHARS, MAX_MEDIA

    schema = request_schema(spec, "send_sms", JSON)
    assert prop(spec, schema, "body")["maxLength"] == MAX_BODY_CHARS
    assert field_limits("shared.messaging")["body"]["max_length"] == MAX_BODY_CHARS
    one, many = (resolve(spec, s) for s in prop(spec, schema, "media_url")["oneOf"])
    assert one["type"] == "string" and many["type"] == "array"
    assert many["maxItems"] == MAX_MEDIA
    assert resolve(spec, many["items"]) == one
    assert not {"anyOf", "oneOf", "allOf"} & set(schema)  # generators type such a body as unknown / Any
    assert "`missing_field`" in schema["description"] and "`body`" in schema["description"]
    encoding = spec["paths"]["/send_sms"]["post"]["requestBody"]["content"][FORM]["encoding"]["media_url"]
    assert encoding == {"style": "form", "explode": True}  # repeated media_url keys


def test_openapi_make_call_limits_and_patterns_equal_the_code(spec):
    from shared.fields import LANGUAGE_PATTERN, VOICE_PATTERN
    from shared.calls import MAX_MESSAGE_CHARS

    schema = request_schema(spec, "make_call", JSON)
    limits = field_limits("shared.calls")
    assert prop(spec, schema, "message")["maxLength"] == MAX_MESSAGE_CHARS == limits["message"]["max_length"]
    for name, pattern in (("voice", VOICE_PATTERN), ("language", LANGUAGE_PATTERN)):
        documented = prop(spec, schema, name)
        assert limits[name]["pattern"] is pattern
        assert documented["pattern"] == f"^{pattern.pattern}$"  # fullmatch, as the code uses it
        assert documented["maxLength"] == limits[name]["max_length"]


def test_openapi_urls_and_phone_numbers_match_the_code(spec):
    from shared.fields import MAX_URL_CHARS
    from shared.phone import MAX_PHONE_CHARS

    url = resolve(spec, spec["components"]["schemas"]["HttpsUrl"])
    assert url["maxLength"] == MAX_URL_CHARS
    assert re.match(url["pattern"], "https://example.com/a.png?x=1")
    for bad in ("http://example.com", "https://", "https://exa mple.com", "ftp://x"):
        assert not re.match(url["pattern"], bad), bad
    phone = resolve(spec, spec["components"]["schemas"]["PhoneNumber"])
    assert phone["maxLength"] == MAX_PHONE_CHARS
    for name in MOBILE:
        for field in ("to", "from"):
            assert request_schema(spec, name, JSON)["properties"][field]["$ref"].endswith("/PhoneNumber")
        assert request_schema(spec, name, JSON)["properties"]["status_callback"]["$ref"].endswith("/HttpsUrl")


def test_openapi_413_limit_is_the_code_limit(spec):
    from shared.body import MAX_BODY_BYTES

    assert MAX_BODY_BYTES == 64 * 1024
    assert "64 KiB" in resolve(spec, {"$ref": "#/components/responses/PayloadTooLarge"})["description"]


# -- responses ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "channel"), [("send_sms", "sms"), ("make_call", "call")])
def test_openapi_201_body_has_exactly_the_fields_the_code_returns(spec, name, channel):
    from shared.channels import CHANNELS
    from shared.sends import Sent

    created = spec["paths"][f"/{name}"]["post"]["responses"]["201"]
    schema = resolve(spec, created["content"][JSON]["schema"])
    body = Sent(CHANNELS[channel], "SM" + "0" * 32, "queued", "+14155550123", "+15005550006", None).answer()
    assert set(schema["required"]) == set(body)
    assert set(schema["properties"]) == set(body) | {"reconciled"}  # added to a reconciled replay only
    assert schema["additionalProperties"] is False


def returned_keys(module_name: str, function: str) -> set[str]:
    """The keys of the dict literal a function returns."""
    import importlib

    tree = ast.parse(Path(importlib.import_module(module_name).__file__).read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    returned = [n.value for n in ast.walk(node) if isinstance(n, ast.Return) and isinstance(n.value, ast.Dict)]
    assert len(returned) == 1
    return {key.value for key in returned[0].keys}


def test_openapi_broadcast_202_body_has_exactly_the_fields_admission_returns(spec):
    schema = resolve(spec, spec["paths"]["/broadcasts"]["post"]["responses"]["202"]["content"][JSON]["schema"])
    assert set(schema["required"]) == returned_keys("shared.broadcasts", "admit")
    assert set(schema["properties"]) - set(schema["required"]) == {"rejected_truncated"}  # replayable()'s


def test_openapi_error_schema_is_the_body_app_errors_produce(spec):
    from shared.errors import AppError

    error = resolve(spec, spec["components"]["schemas"]["Error"])
    inner = error["properties"]["error"]
    full = AppError(422, "twilio_rejected", "m", field="to", twilio_code=21211, more_info="https://x",
                    quota="QUOTA_SMS_PER_DAY").body()
    assert error["required"] == ["error"] and set(error["properties"]) == set(full)
    assert set(inner["properties"]) == set(full["error"])
    assert set(inner["required"]) == set(AppError(400, "c", "m").body()["error"]) == {"code", "message"}
    assert inner["additionalProperties"] is False and error["additionalProperties"] is False
    from shared.settings import QUOTA_SETTINGS

    assert resolve(spec, inner["properties"]["quota"])["enum"] == list(QUOTA_SETTINGS)


def shared_modules_imported_by(module_path: Path) -> set[str]:
    """The shared.* modules a function (transitively) imports."""
    seen: set[str] = set()
    pending = [module_path]
    while pending:
        tree = ast.parse(pending.pop().read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "shared":
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == "shared"]
            for name in names:
                path = ROOT / (name.replace(".", "/") + ".py")
                if path.is_file() and name not in seen:
                    seen.add(name)
                    pending.append(path)
    return seen


def error_codes_in(module_names: set[str]) -> dict[int, set[str]]:
    """{status: codes} of every AppError(status, "code", ...) / invalid_field(..., "code") in these modules."""
    codes: dict[int, set[str]] = {}
    for name in module_names:
        tree = ast.parse((ROOT / (name.replace(".", "/") + ".py")).read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            args = node.args
            if called == "invalid_field":
                code = args[2] if len(args) > 2 else next((k.value for k in node.keywords if k.arg == "code"), None)
                codes.setdefault(400, set()).add(code.value if isinstance(code, ast.Constant) else "invalid_field")
            elif (len(args) >= 2 and isinstance(args[0], ast.Constant) and isinstance(args[0].value, int)
                  and 400 <= args[0].value <= 599 and isinstance(args[1], ast.Constant)
                  and isinstance(args[1].value, str) and re.fullmatch(r"[a-z][a-z0-9_]*", args[1].value)):
                codes.setdefault(args[0].value, set()).add(args[1].value)
    return codes


def documented_error_codes(spec: dict[str, Any], operation: dict[str, Any]) -> dict[int, set[str]]:
    """{status: the error.code enum values} of an operation's JSON error responses."""

    def walk(schema: Any) -> Iterator[str]:
        schema = resolve(spec, schema)
        if not isinstance(schema, dict):
            return
        for key in ("allOf", "oneOf", "anyOf"):
            for sub in schema.get(key, []):
                yield from walk(sub)
        error = resolve(spec, schema.get("properties", {}).get("error", {}))
        code = resolve(spec, error.get("properties", {}).get("code", {})) if isinstance(error, dict) else {}
        yield from code.get("enum", [])

    documented: dict[int, set[str]] = {}
    for status, response in operation["responses"].items():
        response = resolve(spec, response)
        if int(status) >= 400 and JSON in response.get("content", {}):
            found = set(walk(response["content"][JSON]["schema"]))
            if found:
                documented[int(status)] = found
    return documented


@pytest.mark.parametrize("name", sorted(MOBILE))
def test_openapi_mobile_errors_are_exactly_the_codes_the_code_can_answer(spec, name):
    modules = shared_modules_imported_by(ROOT / name / "__init__.py")
    assert {"shared.api", "shared.errors", MOBILE[name]} <= modules
    assert documented_error_codes(spec, spec["paths"][f"/{name}"]["post"]) == error_codes_in(modules)


VOICE_TOKEN_CODES = {401: {"unauthenticated"}, 405: {"method_not_allowed"}, 500: {"internal_error"},
                     503: {"not_configured", "auth_unavailable"}}


@pytest.mark.parametrize("name", sorted(LOOKUPS))
def test_openapi_lookup_and_token_errors_are_exactly_what_they_answer(spec, name):
    modules = shared_modules_imported_by(ROOT / name / "__init__.py")
    assert {"shared.identity", "shared.api"} <= modules
    method, expected = ("post", VOICE_TOKEN_CODES) if name == "voice_token" else ("get", LOOKUP_CODES)
    in_code = error_codes_in(modules)
    assert all(codes <= in_code.get(status, set()) | {"internal_error"} for status, codes in expected.items())
    assert documented_error_codes(spec, spec["paths"][LOOKUPS[name]][method]) == expected


@pytest.mark.parametrize("name", sorted(set(functions()) - set(MOBILE) - set(LOOKUPS) - {"broadcasts"}))
def test_openapi_webhook_errors_are_exactly_the_codes_the_webhook_decorator_answers(spec, name):
    # The handlers' own shared imports (is_blocked, twiml) never raise: what a webhook can answer is what the
    # decorator's verify() and the modules it calls raise.
    modules = {"shared.webhook", "shared.body", "shared.errors", "shared.settings", "shared.urls"}
    assert modules - {"shared.webhook"} <= shared_modules_imported_by(ROOT / "shared" / "webhook.py")
    assert "shared.webhook" in shared_modules_imported_by(ROOT / name / "__init__.py")
    expected = error_codes_in(modules)
    for method in functions()[name]["methods"]:
        assert documented_error_codes(spec, spec["paths"][f"/{name}"][method.lower()]) == expected, method


BROADCAST_CODES = {  # what admission, the status and cancel can answer: never a Twilio error (nothing is sent)
    "post": {400: {"invalid_json", "invalid_body", "missing_field", "invalid_field", "unknown_field", "too_long",
                   "invalid_phone_number", "invalid_url", "too_many_media", "destination_not_allowed",
                   "invalid_idempotency_key"},
             401: {"unauthenticated"}, 403: {"forbidden"}, 405: {"method_not_allowed"},
             409: {"idempotency_in_progress"}, 413: {"body_too_large"}, 415: {"unsupported_media_type"},
             422: {"idempotency_key_reused"}, 429: {"quota_exceeded"}, 500: {"internal_error"},
             502: {"outcome_unknown"}, 503: {"not_configured", "auth_unavailable", "state_unavailable"}},
    "get": {400: {"invalid_field"}, 401: {"unauthenticated"}, 403: {"forbidden"}, 404: {"not_found"},
            405: {"method_not_allowed"}, 500: {"internal_error"},
            503: {"not_configured", "auth_unavailable", "state_unavailable"}},
}


@pytest.mark.parametrize(("path", "method"), [("/broadcasts", "post"), ("/broadcasts/{id}", "get"),
                                              ("/broadcasts/{id}", "delete")])
def test_openapi_broadcast_errors_are_what_admission_status_and_cancel_answer(spec, path, method):
    expected = BROADCAST_CODES["post" if method == "post" else "get"]
    in_code = error_codes_in(shared_modules_imported_by(ROOT / "broadcasts" / "__init__.py"))
    assert all(codes <= in_code.get(status, set()) | {"internal_error"} for status, codes in expected.items())
    assert documented_error_codes(spec, spec["paths"][path][method]) == expected


def test_openapi_every_error_code_in_the_code_is_documented_and_in_the_readme(spec):
    every = error_codes_in({f"shared.{p.stem}" for p in (ROOT / "shared").glob("*.py")})
    documented: dict[int, set[str]] = {}
    for _, _, operation in operations(spec):
        for status, codes in documented_error_codes(spec, operation).items():
            documented.setdefault(status, set()).update(codes)
    assert documented == every
    readme = (ROOT / "README.md").read_text()
    for codes in every.values():
        for code in codes - {"internal_error", "invalid_signature"}:  # README names these in prose
            assert f"`{code}`" in readme, code


def test_openapi_429_has_retry_after_and_405_has_allow(spec):
    for path, method, operation in operations(spec):
        responses = {status: resolve(spec, r) for status, r in operation["responses"].items()}
        if "429" in responses:
            assert resolve(spec, responses["429"]["headers"]["Retry-After"])["required"] is True, path
        assert resolve(spec, responses["405"]["headers"]["Allow"])["required"] is True, (path, method)


@pytest.mark.parametrize("name", sorted(set(functions()) - set(MOBILE) - set(LOOKUPS) - {"broadcasts"}))
def test_openapi_webhooks_take_the_twilio_signature_and_answer_twiml(spec, name):
    item = spec["paths"][f"/{name}"]
    for method in functions()[name]["methods"]:
        operation = item[method.lower()]
        parameters = [resolve(spec, p) for p in item.get("parameters", []) + operation.get("parameters", [])]
        signature = [p for p in parameters if p["in"] == "header" and p["name"].lower() == "x-twilio-signature"]
        assert len(signature) == 1 and signature[0]["required"] is True
        ok = resolve(spec, operation["responses"]["200"])
        assert list(ok["content"]) == ["text/xml"]
        assert {"403", "405", "503"} <= set(operation["responses"])
        if method.lower() == "post":
            assert FORM in operation["requestBody"]["content"]
