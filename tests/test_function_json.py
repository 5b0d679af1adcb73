"""The files `func start` and Azure read: function.json bindings, host.json, requirements, .funcignore."""

from __future__ import annotations

import importlib
import inspect
import json
import typing

import azure.functions as func
import pytest
from azure.functions.http import HttpResponseConverter

from tests.support import ROOT

FUNCTIONS = {  # name: (authLevel, route, the methods main answers, a route parameter's value)
    "make_call": ("function", None, "POST"),
    "send_sms": ("function", None, "POST"),
    "voice_webhook": ("anonymous", None, "GET, POST"),
    "sms_webhook": ("anonymous", None, "GET, POST"),
    "status_callback": ("anonymous", None, "POST"),
    "message_status": ("function", "messages/{sid}", "GET"),
    "call_status": ("function", "calls/{sid}", "GET"),
    "voice_token": ("function", None, "POST"),
    "broadcasts": ("function", "broadcasts/{id?}", "POST, GET, DELETE"),
}
TIMERS = {"state_cleanup": "0 17 3 * * *"}  # name: NCRONTAB schedule (UTC)
QUEUES = {"broadcast_worker": "twilio-broadcast"}  # name: queueName


def test_function_folders_are_exactly_the_documented_functions():
    found = {p.parent.name for p in ROOT.glob("*/function.json")}
    assert found == set(FUNCTIONS) | set(TIMERS) | set(QUEUES)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_json_http_trigger_has_documented_auth_level_and_no_methods(name):
    spec = json.loads((ROOT / name / "function.json").read_text())
    assert (ROOT / name / spec["scriptFile"]).is_file()
    trigger = next(b for b in spec["bindings"] if b["type"] == "httpTrigger")
    output = next(b for b in spec["bindings"] if b["type"] == "http")
    auth_level, route, _ = FUNCTIONS[name]
    assert trigger["direction"] == "in" and trigger["name"] == "req"
    assert trigger["authLevel"] == auth_level
    # Listed methods become a route constraint of the Functions host: any other method got its empty 404, not the
    # app's documented 405. Every method reaches main, which checks it.
    assert "methods" not in trigger
    assert trigger.get("route") == route  # None: the route is the folder name, /api/<name>
    assert output == {"type": "http", "direction": "out", "name": "$return"}


@pytest.fixture(scope="module")
def local_host():
    from devtools.local_host import LocalHost

    with LocalHost(ROOT, host="127.0.0.1", port=0, function_key="").start() as running:
        yield running


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_other_method_over_http_answers_the_apps_json_405_with_allow(local_host, name):
    import requests

    allowed = FUNCTIONS[name][2]
    url = local_host.url_for(name, sid="SM" + "0" * 32) if FUNCTIONS[name][1] else local_host.url_for(name)
    for method in {"GET", "POST", "PUT", "DELETE", "PATCH"} - set(allowed.split(", ")):
        response = requests.request(method, url, timeout=10)
        assert response.status_code == 405, (method, response.status_code, response.text)
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert response.headers["Allow"] == allowed


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_main_signature_matches_bindings_for_the_worker(name):
    main = importlib.import_module(name).main
    params = list(inspect.signature(main).parameters)
    hints = typing.get_type_hints(main)
    assert params == ["req"]
    assert hints["req"] is func.HttpRequest
    assert HttpResponseConverter.check_output_type_annotation(hints["return"])  # what the worker checks for $return


@pytest.mark.parametrize("name", sorted(TIMERS))
def test_function_json_timer_trigger_runs_daily_and_main_takes_the_timer(name):
    spec = json.loads((ROOT / name / "function.json").read_text())
    (trigger,) = spec["bindings"]
    assert trigger == {"name": "timer", "type": "timerTrigger", "direction": "in", "schedule": TIMERS[name]}
    main = importlib.import_module(name).main
    assert list(inspect.signature(main).parameters) == ["timer"]
    hints = typing.get_type_hints(main)
    assert hints["timer"] is func.TimerRequest and hints["return"] is type(None)


@pytest.mark.parametrize("name", sorted(QUEUES))
def test_function_json_queue_trigger_reads_the_app_storage_and_main_takes_the_message(name):
    spec = json.loads((ROOT / name / "function.json").read_text())
    (trigger,) = spec["bindings"]
    assert trigger == {"name": "msg", "type": "queueTrigger", "direction": "in", "queueName": QUEUES[name],
                       "connection": "AzureWebJobsStorage"}
    main = importlib.import_module(name).main
    assert list(inspect.signature(main).parameters) == ["msg"]
    assert typing.get_type_hints(main)["msg"] is func.QueueMessage


def test_host_json_max_dequeue_count_is_the_one_the_worker_poisons_at():
    from shared.fanout import MAX_DEQUEUE_COUNT

    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["queues"]["maxDequeueCount"] == MAX_DEQUEUE_COUNT


def test_host_json_is_v2_with_extension_bundle_4():
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
    assert host["extensions"]["http"]["routePrefix"] == "api"


def test_local_settings_example_names_python_worker_and_every_setting():
    from tests.support import APP_SETTINGS

    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    set_by_azure = {"WEBSITE_HOSTNAME", "WEBSITE_AUTH_ENABLED"}
    identity_based = {"AzureWebJobsStorage__accountName", "AzureWebJobsStorage__tableServiceUri",  # instead of the string
                      "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId"}
    assert set(APP_SETTINGS) - set_by_azure - identity_based <= set(values)


def test_requirements_list_the_runtime_packages():
    text = (ROOT / "requirements.txt").read_text()
    for package in ("azure-functions", "twilio", "phonenumbers"):
        assert package in text


def test_funcignore_keeps_dev_tooling_out_of_the_deployment():
    ignored = (ROOT / ".funcignore").read_text().split()
    for entry in ("tests", "devtools", "bench", ".venv", "local.settings.json"):
        assert entry in ignored


def test_webhook_modules_never_import_the_rest_client():
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, '.'); import voice_webhook, sms_webhook; "
            "print(any(m.startswith('twilio.rest') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
