"""Stoplight Prism mocking Twilio's official OpenAPI spec (api_v2010), on a loopback port it binds itself.

Prism and the spec (shipped in @twilio-alpha/mcp) are pinned in the repo's package.json / package-lock.json and
installed into ./node_modules by `npm ci` (tests/servers.py `node()`, which skips without node, or fails when
CI is set).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devtools.processes import listening_port, stop_process_group
from tests.servers import node, shared_server
from tests.support import ROOT

NODE_MODULES = ROOT / "node_modules"
PRISM_JS = NODE_MODULES / "@stoplight/prism-cli/dist/index.js"
TWILIO_SPEC = NODE_MODULES / "@twilio-alpha/mcp/twilio-oai/spec/json/twilio_api_v2010.json"
PATCHED_OPERATIONS = ("/2010-04-01/Accounts/{AccountSid}/Messages.json", "/2010-04-01/Accounts/{AccountSid}/Calls.json")
APP_PATHS = (*PATCHED_OPERATIONS, "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json",
             "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json")  # every path the app calls (create, fetch)
WIRING_PATHS = tuple(f"/2010-04-01/Accounts/{{AccountSid}}/{collection}{sid}.json"  # deploy/wire_twilio.py's
                     for collection in ("IncomingPhoneNumbers", "Applications") for sid in ("", "/{Sid}"))
FORM = "application/x-www-form-urlencoded"
STARTUP_TIMEOUT_S = 120


def spec_for_prism(dest: Path) -> Path:
    """Twilio's spec with one work-around: Prism 5.14.2 reads a form field as an array only when the media
    type has an `encoding` entry for it (stoplightio/prism#2473), and Twilio's spec has none, so even one
    `MediaUrl` is refused with "must be array". `style: form, explode: true` is OpenAPI's default for forms,
    so this does not change the spec's meaning. Prism still keeps only the last value of a repeated key.

    Only the paths the app and deploy/wire_twilio.py call are kept (its components all are): Prism then starts in 60% of the CPU time,
    and a request to any other path is still refused (404, no path matched)."""
    spec = json.loads(TWILIO_SPEC.read_text(encoding="utf-8"))
    spec["paths"] = {path: spec["paths"][path] for path in (*APP_PATHS, *WIRING_PATHS)}
    for path in PATCHED_OPERATIONS:
        content = spec["paths"][path]["post"]["requestBody"]["content"][FORM]
        arrays = [name for name, prop in content["schema"]["properties"].items() if prop.get("type") == "array"]
        content.setdefault("encoding", {}).update({name: {"style": "form", "explode": True} for name in arrays})
    dest.write_text(json.dumps(spec), encoding="utf-8")
    return dest


class Prism:
    def __init__(self, base_url: str, log: Path) -> None:
        self.base_url, self.log, self.marked = base_url, log, 0

    def mark(self) -> None:
        self.marked = self.log.stat().st_size

    def log_text(self) -> str:
        """Prism's log since the last mark(): shown in failure messages, never parsed."""
        with open(self.log, "rb") as log:
            log.seek(self.marked)
            return log.read().decode("utf-8", "replace")


@pytest.fixture(scope="session")
def prism(pytestconfig: pytest.Config) -> Prism:
    """`prism mock --errors` of Twilio's api_v2010 spec, one for the run (tests/servers.py shared_server).

    A request that violates the spec (body, path, security) is answered 422, 415 or 401 with an
    application/problem+json body instead of a mocked 2xx: Prism's mocker does this for any request violation
    (docs/guides/02-request-validation.md in stoplightio/prism; packages/http/src/mocker/index.ts
    createInvalidInputResponse). `--errors` ("request/response violations marked as errors will produce an
    error response", docs/getting-started/03-cli.md) also makes Prism answer 500 when its own mocked response
    violates the spec (packages/http-server/src/server.ts). So a 2xx means the request passed validation.
    """
    described = shared_server(pytestconfig, "prism", start_prism)
    return Prism(described["base_url"], Path(described["log"]))


def start_prism(folder: Path) -> dict[str, Any]:
    node_path = node()
    spec = spec_for_prism(folder / "twilio_api_v2010.json")
    log = folder / "prism.log"
    with open(log, "wb") as out:  # port 0: the port it bound is read from the process, no race for a free one
        proc = subprocess.Popen([node_path, str(PRISM_JS), "mock", "--errors", "-h", "127.0.0.1", "-p", "0",
                                 str(spec)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "NO_COLOR": "1"})
    try:
        port = listening_port(proc, STARTUP_TIMEOUT_S)
    except TimeoutError as exc:
        stop_process_group(proc)
        pytest.fail(f"Prism did not start ({exc}):\n{log.read_text()}", pytrace=False)
    return {"pids": [proc.pid], "base_url": f"http://127.0.0.1:{port}", "log": str(log)}
