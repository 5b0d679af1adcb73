"""Clients generated from openapi.yaml as app developers make them: openapi-typescript checked by `tsc --strict`, and
openapi-python-client calling the local stack. Request bodies must come out typed, never `unknown` or `Any`."""

from __future__ import annotations

import subprocess
import sys
import typing
from typing import Any, Iterator

import pytest

from tests.servers import node
from tests.support import RECIPIENT, ROOT

NODE_MODULES = ROOT / "node_modules"
TS_HEADER = '''import type { components, paths } from "./api";
type SendSms = components["schemas"]["SendSmsRequest"];
type MakeCall = components["schemas"]["MakeCallRequest"];
type JsonBody<P extends keyof paths> =
  paths[P] extends { post: { requestBody?: { content: { "application/json": infer B } } } } ? B : never;
'''
TS_POSITIVE = TS_HEADER + '''type Typed<T> = unknown extends T ? false : true;  // false for unknown and for any
export const typed: [Typed<SendSms>, Typed<MakeCall>, Typed<JsonBody<"/send_sms">>, Typed<JsonBody<"/make_call">>] =
  [true, true, true, true];
export const sms: JsonBody<"/send_sms"> = { to: "+14155550123", body: "Your order has shipped" };
export const mms: SendSms = { to: "+14155550123", media_url: ["https://example.com/a.png"],
                              status_callback: "https://example.com/status" };
export const call: JsonBody<"/make_call"> = { to: "+14155550123", message: "Your code is 4 2 7 1", voice: "alice" };
'''
# Each line after the header is one mistake tsc must report on that line (against `unknown`, none would be).
TS_NEGATIVE = TS_HEADER + '''export const noTo: SendSms = { body: "who to?" };
export const typo: SendSms = { to: "+14155550123", bodyy: "typo" };
export const number: SendSms = { to: 14155550123, body: "hi" };
export const wrongField: JsonBody<"/make_call"> = { to: "+14155550123", media_url: "https://example.com/a.png" };
'''


@pytest.fixture(scope="module")
def tsc_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[int]]:
    """openapi-typescript's api.d.ts from openapi.yaml, then one `tsc --strict` over both samples: {file: the lines
    tsc reports an error on}."""
    node_path, folder = node(), tmp_path_factory.mktemp("typescript")
    subprocess.run([node_path, str(NODE_MODULES / "openapi-typescript/bin/cli.js"), str(ROOT / "openapi.yaml"),
                    "--output", str(folder / "api.d.ts")], check=True, capture_output=True, timeout=120)
    (folder / "positive.ts").write_text(TS_POSITIVE)
    (folder / "negative.ts").write_text(TS_NEGATIVE)
    done = subprocess.run([node_path, str(NODE_MODULES / "typescript/bin/tsc"), "--strict", "--noEmit",
                           "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler",
                           "positive.ts", "negative.ts"], cwd=folder, capture_output=True, text=True, timeout=120)
    errors: dict[str, set[int]] = {"positive.ts": set(), "negative.ts": set()}
    for line in done.stdout.splitlines():  # e.g. negative.ts(7,14): error TS2741: Property 'to' is missing ...
        if ": error TS" in line:
            name, position = line.split(":")[0].rstrip(")").split("(")
            errors[name].add(int(position.split(",")[0]))
    assert done.returncode == (2 if any(errors.values()) else 0), done.stdout + done.stderr
    return errors


@pytest.mark.slow
def test_generated_typescript_request_bodies_are_typed_and_a_valid_sample_compiles_strict(tsc_errors):
    assert tsc_errors["positive.ts"] == set()


@pytest.mark.slow
def test_generated_typescript_invalid_sample_fails_strict_on_each_mistake(tsc_errors):
    first = TS_HEADER.count("\n") + 1
    assert tsc_errors["negative.ts"] == set(range(first, TS_NEGATIVE.count("\n") + 1))


@pytest.fixture(scope="module")
def python_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The package openapi-python-client generates from openapi.yaml, imported."""
    import importlib

    folder = tmp_path_factory.mktemp("python_client")
    (folder / "config.yaml").write_text("package_name_override: voice_sms_client\npost_hooks: []\n")
    done = subprocess.run([sys.executable, "-m", "openapi_python_client", "generate", "--path",
                           str(ROOT / "openapi.yaml"), "--output-path", str(folder / "voice_sms_client"),
                           "--meta", "none", "--config", str(folder / "config.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("voice_sms_client")
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.split(".")[0] == "voice_sms_client"]:
            del sys.modules[name]


def mentions_any(annotation: Any) -> bool:
    return annotation is Any or any(mentions_any(arg) for arg in typing.get_args(annotation))


@pytest.mark.slow
@pytest.mark.parametrize("operation", ["send_sms", "make_call"])
def test_generated_python_client_request_body_and_its_fields_are_typed_not_any(python_client, operation):
    import importlib

    module = importlib.import_module(f"voice_sms_client.api.mobile.{operation}")
    body = typing.get_type_hints(module.sync_detailed)["body"]
    assert not mentions_any(body), body
    models = {arg for arg in typing.get_args(body) if hasattr(arg, "to_dict")}
    assert len(models) == 1, body
    fields = typing.get_type_hints(models.pop())
    assert fields and not any(mentions_any(hint) for hint in fields.values()), fields


@pytest.fixture
def local_api(app_env) -> Iterator[str]:
    from devtools.local_host import LocalHost

    with LocalHost(ROOT, host="127.0.0.1", port=0, function_key="").start() as host:
        yield host.base_url + "/api"


@pytest.mark.slow
def test_generated_python_client_sends_sms_and_places_call_on_the_local_stack(python_client, local_api, app_env):
    from voice_sms_client import Client
    from voice_sms_client.api.mobile import make_call, send_sms
    from voice_sms_client.models import CallCreated, MakeCallRequest, SendSmsRequest, SmsCreated

    with Client(base_url=local_api) as client:
        sms = send_sms.sync_detailed(client=client, body=SendSmsRequest(to=RECIPIENT, body="Your order has shipped"))
        call = make_call.sync_detailed(client=client, body=MakeCallRequest(to=RECIPIENT, message="Hello"))
    assert sms.status_code == 201 and isinstance(sms.parsed, SmsCreated), sms.content
    assert call.status_code == 201 and isinstance(call.parsed, CallCreated), call.content
    assert [m["sid"] for m in app_env.messages] == [sms.parsed.sid]
    assert [c["sid"] for c in app_env.calls] == [call.parsed.sid]


@pytest.mark.slow
def test_generated_python_client_sms_without_body_or_media_url_is_400_missing_field(python_client, local_api,
                                                                                    app_env):
    from voice_sms_client import Client
    from voice_sms_client.api.mobile import send_sms
    from voice_sms_client.models import BadRequestError, SendSmsRequest

    with Client(base_url=local_api) as client:
        answer = send_sms.sync_detailed(client=client, body=SendSmsRequest(to=RECIPIENT))
    assert answer.status_code == 400 and isinstance(answer.parsed, BadRequestError), answer.content
    assert (answer.parsed.error.code, answer.parsed.error.field) == ("missing_field", "body")
    assert app_env.messages == []
