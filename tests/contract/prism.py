"""Harness: Stoplight Prism mock of Twilio's official OpenAPI spec for contract tests.

What it does
------------
* ``ensure_npm_packages()`` installs the pinned npm packages
  (``@stoplight/prism-cli`` and ``@twilio-alpha/mcp``, which ships Twilio's
  ``twilio-oai`` specs) into ``<repo>/.cache/contract-npm`` -- only when the
  pinned versions are not already there (a file lock makes it safe under
  pytest-xdist).
* ``prepare_prism_spec()`` writes a copy of the Twilio spec with two
  work-arounds for Prism (``patch_form_array_encodings``,
  ``patch_required_request_bodies``).
* ``PrismServer`` runs ``prism mock`` on a free loopback port in its own
  process group, logs to a file, parses the log per request and stops the
  whole group on ``stop()``.
* ``prism_twilio`` is a session-scoped pytest fixture yielding a started
  ``PrismServer`` for ``twilio_api_v2010.json``.

Using the fixture from another test module::

    from .prism import prism_twilio  # noqa: F401  (or re-export it from a conftest)

    def test_x(prism_twilio):
        prism_twilio.mark()
        ...  # send requests to prism_twilio.base_url
        assert prism_twilio.validation_errors() == []

Environment
-----------
* ``CI``: when set (non-empty, not "0"/"false"/"no"), missing ``node``/``npm``
  fails the test instead of skipping it.
* ``CONTRACT_NPM_CACHE``: overrides the install folder.
* ``PRISM_STARTUP_TIMEOUT``: seconds to wait for Prism to listen (default 90).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import weakref
from pathlib import Path
from typing import Iterator

import pytest

PRISM_CLI_VERSION = "5.14.2"
TWILIO_MCP_VERSION = "0.7.0"
PINNED_PACKAGES = {
    "@stoplight/prism-cli": PRISM_CLI_VERSION,
    "@twilio-alpha/mcp": TWILIO_MCP_VERSION,
}

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "contract-npm"

# Paths inside the npm install folder (checked after install).
PRISM_ENTRY_REL = Path("node_modules/@stoplight/prism-cli/dist/index.js")
TWILIO_SPEC_DIR_REL = Path("node_modules/@twilio-alpha/mcp/twilio-oai/spec/json")
TWILIO_API_V2010_REL = TWILIO_SPEC_DIR_REL / "twilio_api_v2010.json"

TWILIO_ORIGIN = "https://api.twilio.com"

NPM_INSTALL_TIMEOUT_S = 600.0
DEFAULT_STARTUP_TIMEOUT_S = 90.0
KEEP_LOGS = 20  # per log name prefix, in <cache>/logs
# Bump when patch_form_array_encodings changes, so cached patched specs are rebuilt.
_SPEC_PATCH_VERSION = 2


# --------------------------------------------------------------------------
# node / npm presence
# --------------------------------------------------------------------------


def ci_is_set() -> bool:
    """True when the ``CI`` env var is set to a truthy value."""
    value = os.environ.get("CI", "").strip().lower()
    return value not in ("", "0", "false", "no")


def require_node_tooling() -> tuple[str, str]:
    """Return ``(node, npm)`` paths.

    If either is missing: ``pytest.skip`` locally, ``pytest.fail`` when CI is set.
    """
    node = shutil.which("node")
    npm = shutil.which("npm")
    missing = [name for name, path in (("node", node), ("npm", npm)) if path is None]
    if missing:
        what = " and ".join(missing)
        msg = (
            f"npm not found: `{what}` is not on PATH; the Prism contract tests need "
            f"Node.js >= 18 with npm (they install @stoplight/prism-cli@{PRISM_CLI_VERSION})"
        )
        if ci_is_set():
            pytest.fail(msg + " [CI is set, so this is a failure, not a skip]", pytrace=False)
        pytest.skip(msg)
    assert node is not None and npm is not None
    return node, npm


# --------------------------------------------------------------------------
# npm install (idempotent)
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NpmInstall:
    cache_dir: Path
    prism_entry: Path
    twilio_spec_dir: Path
    twilio_api_v2010: Path
    ran_npm: bool  # False when the pinned versions were already installed
    seconds: float


def cache_dir_default() -> Path:
    override = os.environ.get("CONTRACT_NPM_CACHE")
    return Path(override).resolve() if override else DEFAULT_CACHE_DIR


def _installed_version(cache_dir: Path, package: str) -> str | None:
    pkg_json = cache_dir / "node_modules" / package / "package.json"
    try:
        return json.loads(pkg_json.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None


def _install_is_complete(cache_dir: Path) -> bool:
    if any(_installed_version(cache_dir, p) != v for p, v in PINNED_PACKAGES.items()):
        return False
    return (cache_dir / PRISM_ENTRY_REL).is_file() and (cache_dir / TWILIO_API_V2010_REL).is_file()


def _package_json_text() -> str:
    manifest = {
        "name": "contract-npm-cache",
        "private": True,
        "description": "Generated by tests/contract/prism.py; pinned tools for contract tests.",
        "dependencies": dict(PINNED_PACKAGES),
    }
    return json.dumps(manifest, indent=2) + "\n"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl  # POSIX only; the project runs on Linux

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _run_npm_install(npm: str, cache_dir: Path, timeout: float) -> None:
    cmd = [npm, "install", "--prefix", str(cache_dir), "--no-audit", "--no-fund", "--save-exact"]
    try:
        proc = subprocess.run(
            cmd,
            cwd=cache_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{' '.join(cmd)}` timed out after {timeout:.0f}s", pytrace=False)
        raise AssertionError("unreachable") from exc
    if proc.returncode != 0:
        tail = (proc.stdout + "\n" + proc.stderr)[-4000:]
        pytest.fail(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}", pytrace=False)


def ensure_npm_packages(cache_dir: Path | None = None, npm: str | None = None) -> NpmInstall:
    """Install the pinned packages into ``cache_dir`` unless already there."""
    cache_dir = (cache_dir or cache_dir_default()).resolve()
    started = time.monotonic()
    ran_npm = False
    if not _install_is_complete(cache_dir):
        with _file_lock(cache_dir / ".install.lock"):
            if not _install_is_complete(cache_dir):  # another worker may have finished
                if npm is None:
                    _, npm = require_node_tooling()
                (cache_dir / "package.json").write_text(_package_json_text(), encoding="utf-8")
                _run_npm_install(npm, cache_dir, NPM_INSTALL_TIMEOUT_S)
                ran_npm = True
                if not _install_is_complete(cache_dir):
                    found = {p: _installed_version(cache_dir, p) for p in PINNED_PACKAGES}
                    pytest.fail(
                        f"npm install in {cache_dir} did not produce the pinned packages "
                        f"{PINNED_PACKAGES} (found {found}) or the expected files "
                        f"{PRISM_ENTRY_REL}, {TWILIO_API_V2010_REL}",
                        pytrace=False,
                    )
    return NpmInstall(
        cache_dir=cache_dir,
        prism_entry=cache_dir / PRISM_ENTRY_REL,
        twilio_spec_dir=cache_dir / TWILIO_SPEC_DIR_REL,
        twilio_api_v2010=cache_dir / TWILIO_API_V2010_REL,
        ran_npm=ran_npm,
        seconds=time.monotonic() - started,
    )


# --------------------------------------------------------------------------
# Spec work-around
# --------------------------------------------------------------------------

_FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def patch_form_array_encodings(spec: dict) -> list[str]:
    """Make Prism accept Twilio's repeated form keys (``MediaUrl=a&MediaUrl=b``).

    Prism 5.14.2 (prism-http 5.12.0) only deserialises a form-body property as
    an array when the media type has an explicit ``encoding`` entry with a
    ``style`` for that property; Twilio's spec has no ``encoding`` objects, so
    every array property (``MediaUrl``, ``StatusCallbackEvent``, ...) is
    rejected with ``Request body property MediaUrl must be array`` (422),
    however many times the key is repeated (stoplightio/prism#2473, open PR
    #2654). We add ``{style: form, explode: true, allowReserved: true}`` for
    every array property of a form body -- that is the OpenAPI default for
    form bodies anyway, so the spec's meaning does not change.

    Remaining Prism limitation: its form parser keeps only the LAST value of a
    repeated key, so only that value is validated against ``items``.
    ``allowReserved`` is set so that Prism's "Reserved characters used in
    request body" check (which runs on the raw, still-encoded value) cannot
    flag a ``+``-encoded space.

    Mutates ``spec``; returns ``["POST /path Property", ...]`` for what changed.
    """
    changed: list[str] = []
    for path, item in (spec.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method, op in item.items():
            if not isinstance(op, dict):
                continue
            body = op.get("requestBody")
            if not isinstance(body, dict):
                continue
            for media_type, content in (body.get("content") or {}).items():
                if media_type not in _FORM_MEDIA_TYPES or not isinstance(content, dict):
                    continue
                schema = content.get("schema") or {}
                for prop, prop_schema in (schema.get("properties") or {}).items():
                    if not isinstance(prop_schema, dict) or prop_schema.get("type") != "array":
                        continue
                    encoding = content.setdefault("encoding", {})
                    if "style" in (encoding.get(prop) or {}):
                        continue  # the spec already says how; leave it
                    encoding[prop] = {
                        **(encoding.get(prop) or {}),
                        "style": "form",
                        "explode": True,
                        "allowReserved": True,
                    }
                    changed.append(f"{method.upper()} {path} {prop}")
    return changed


def patch_required_request_bodies(spec: dict) -> list[str]:
    """Make Prism reject a POST that has no body at all.

    Twilio's spec never sets ``requestBody.required``, which defaults to
    ``false`` in OpenAPI 3, so Prism answers 201 to e.g. a Messages POST with
    an empty body, although the body schema lists ``To`` as required. Where a
    form body schema has ``required`` properties we set
    ``requestBody.required: true``; Prism then answers 422 "Body parameter is
    required". Mutates ``spec``; returns ``["POST /path", ...]``.
    """
    changed: list[str] = []
    for path, item in (spec.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method, op in item.items():
            body = op.get("requestBody") if isinstance(op, dict) else None
            if not isinstance(body, dict) or "required" in body:
                continue
            contents = (body.get("content") or {}).values()
            if any(isinstance(c, dict) and (c.get("schema") or {}).get("required") for c in contents):
                body["required"] = True
                changed.append(f"{method.upper()} {path}")
    return changed


def patch_spec_for_prism(spec: dict) -> dict[str, list[str]]:
    """Apply every Prism work-around to ``spec`` (in place); report what changed."""
    return {
        "form_array_encodings": patch_form_array_encodings(spec),
        "required_request_bodies": patch_required_request_bodies(spec),
    }


def prepare_prism_spec(source: Path, dest_dir: Path | None = None) -> Path:
    """Write (if stale) the patched copy of ``source`` that Prism is started with."""
    dest_dir = dest_dir or source.parents[0]
    dest = dest_dir / f"{source.stem}.prism-v{_SPEC_PATCH_VERSION}.json"
    if dest.is_file() and dest.stat().st_mtime >= source.stat().st_mtime:
        return dest
    spec = json.loads(source.read_text(encoding="utf-8"))
    patch_spec_for_prism(spec)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(spec), encoding="utf-8")
    os.replace(tmp, dest)
    for stale in dest_dir.glob(f"{source.stem}.prism-v*.json"):
        if stale != dest:
            stale.unlink(missing_ok=True)
    return dest


# --------------------------------------------------------------------------
# Prism log parsing
# --------------------------------------------------------------------------

_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# "[8:48:38 PM] › [HTTP SERVER] post /2010-04-01/... ℹ  info      Request received"
_LINE_RE = re.compile(
    r"^\[[^\]]*\]\s+\S\s+(?P<indent>\s*)\[(?P<tag>[A-Z][A-Z ]*)\]\s*"
    r"(?P<rest>.*?)\s*(?P<glyph>\S)\s+(?P<level>trace|debug|info|success|note|"
    r"warning|warn|error|fatal|start|awaiting|pending|complete|star)\s+(?P<msg>.*)$"
)
_HTTP_SERVER_REQ_RE = re.compile(r"^(?P<method>[a-z]+)\s+(?P<path>\S+)$")
_RESPONDING_RE = re.compile(r'^> Responding with "(?P<status>\d{3})"')
_GENERIC_VALIDATOR_MSGS = frozenset(
    {
        "Request did not pass the validation rules",
        "The request passed the validation rules. Looking for the best response",
    }
)


@dataclasses.dataclass(frozen=True)
class ValidationProblem:
    """One problem Prism logged for one request."""

    method: str  # upper-case, e.g. "POST"
    path: str
    severity: str  # "error" | "warning"
    kind: str  # "request" | "security" | "response" | "routing"
    message: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}: [{self.kind}/{self.severity}] {self.message}"


@dataclasses.dataclass
class PrismRequestLog:
    """Everything Prism logged for one request (Prism logs requests serially)."""

    method: str
    path: str
    lines: list[str] = dataclasses.field(default_factory=list)
    status: int | None = None  # from '> Responding with "201"' (mocked responses)
    terminated_error: str | None = None  # text after "Request terminated with error: "
    validator: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (level, msg)

    @property
    def complete(self) -> bool:
        return self.status is not None or self.terminated_error is not None

    @property
    def problems(self) -> list[ValidationProblem]:
        out: list[ValidationProblem] = []
        for level, msg in self.validator:
            if msg in _GENERIC_VALIDATOR_MSGS:
                continue
            severity = "error" if level in ("error", "fatal") else "warning"
            if msg.startswith("Violation: response"):
                kind = "response"
            elif msg == "Invalid security scheme used":
                kind = "security"
            else:
                kind = "request"
            out.append(ValidationProblem(self.method, self.path, severity, kind, msg))
        if self.terminated_error and not out:
            # e.g. NO_PATH_MATCHED_ERROR / NO_METHOD_MATCHED_ERROR / VIOLATIONS
            kind = "routing" if "_MATCHED_ERROR" in self.terminated_error else "request"
            out.append(ValidationProblem(self.method, self.path, "error", kind, self.terminated_error))
        return out


def parse_prism_log(text: str) -> list[PrismRequestLog]:
    """Split Prism's (pretty, non-TTY) log into per-request records."""
    requests: list[PrismRequestLog] = []
    current: PrismRequestLog | None = None
    for raw in text.splitlines():
        line = _ANSI_RE.sub("", raw).rstrip()
        m = _LINE_RE.match(line)
        if not m:
            continue
        tag, rest, level, msg = m["tag"].strip(), m["rest"].strip(), m["level"], m["msg"].strip()
        if tag == "HTTP SERVER":
            req = _HTTP_SERVER_REQ_RE.match(rest)
            if req and msg == "Request received":
                current = PrismRequestLog(method=req["method"].upper(), path=req["path"])
                requests.append(current)
                current.lines.append(line)
                continue
            if req and msg.startswith("Request terminated with error:"):
                target = current
                if target is None or target.path != req["path"] or target.complete:
                    target = PrismRequestLog(method=req["method"].upper(), path=req["path"])
                    requests.append(target)
                target.lines.append(line)
                target.terminated_error = msg.split(":", 1)[1].strip()
                continue
        if current is None:
            continue  # CLI start-up lines
        current.lines.append(line)
        if tag == "VALIDATOR":
            current.validator.append((level, msg))
        elif tag == "NEGOTIATOR":
            resp = _RESPONDING_RE.match(msg)
            if resp:
                current.status = int(resp["status"])
    return requests


# --------------------------------------------------------------------------
# Prism process
# --------------------------------------------------------------------------


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrismStartError(RuntimeError):
    pass


class PrismServer:
    """A ``prism mock`` process on loopback, with its log parsed per request.

    Not thread-safe; Prism's pretty log has no request id, so requests must be
    sent one at a time for ``validation_errors()`` to attribute lines correctly.
    """

    def __init__(
        self,
        spec: Path,
        *,
        prism_entry: Path,
        node: str = "node",
        log_path: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        errors: bool = True,
        startup_timeout: float | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.spec = Path(spec)
        self.prism_entry = Path(prism_entry)
        self.node = node
        self.log_path = Path(log_path)
        self.host = host
        self.port = port
        self.errors = errors
        self.startup_timeout = (
            startup_timeout
            if startup_timeout is not None
            else float(os.environ.get("PRISM_STARTUP_TIMEOUT", DEFAULT_STARTUP_TIMEOUT_S))
        )
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        self._mark = 0

    # -- public API --------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("Prism is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        cmd = [self.node, str(self.prism_entry), "mock", "-h", self.host, "-p", str(self.port)]
        if self.errors:
            cmd.append("--errors")
        return [*cmd, *self.extra_args, str(self.spec)]

    def start(self) -> "PrismServer":
        if self.proc is not None:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        fixed_port = self.port is not None
        attempts = 1 if fixed_port else 3
        last_error: Exception | None = None
        for _ in range(attempts):
            if not fixed_port:
                self.port = free_loopback_port()
            try:
                self._start_once()
                return self
            except PrismStartError as exc:
                last_error = exc
                self.stop()
                if "EADDRINUSE" not in self._read_from(0):
                    break  # only a port taken between probe and bind is worth a retry
        raise last_error or PrismStartError("Prism did not start")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Prism and everything in its process group (idempotent)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        # Children that outlived the leader (none expected without --multiprocess).
        _signal_group(proc.pid, signal.SIGKILL)

    def __enter__(self) -> "PrismServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def mark(self) -> None:
        """Forget everything logged so far (waits for in-flight log lines first)."""
        self._wait_log_settled()
        self._mark = self._log_size()

    def requests(self, settle_timeout: float = 3.0) -> list[PrismRequestLog]:
        """Per-request log records since the last ``mark()``."""
        self._wait_log_settled(settle_timeout)
        return parse_prism_log(self._read_since_mark())

    def validation_errors(self, settle_timeout: float = 3.0) -> list[ValidationProblem]:
        """Problems Prism logged since the last ``mark()`` (empty list == all valid)."""
        return [p for r in self.requests(settle_timeout) for p in r.problems]

    def log_text(self, since_mark: bool = False) -> str:
        return self._read_since_mark() if since_mark else self._read_from(0)

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self._read_from(0).splitlines()[-n:])

    # -- internals ---------------------------------------------------------

    def _start_once(self) -> None:
        self._mark = 0
        with open(self.log_path, "wb") as log:
            log.write((" ".join(self.command()) + "\n").encode())
            log.flush()
            started = time.monotonic()
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group -> killpg on stop
                preexec_fn=_die_with_parent,
                env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
            )
        _live_servers.add(self)
        deadline = started + self.startup_timeout
        listening = f"Prism is listening on http://{self.host}:{self.port}"
        while True:
            if self.proc.poll() is not None:
                raise PrismStartError(
                    f"Prism exited with code {self.proc.returncode} during start-up; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if listening in self._read_from(0) and _port_open(self.host, self.port):
                break
            if time.monotonic() > deadline:
                raise PrismStartError(
                    f"Prism did not listen on {self.base_url} within {self.startup_timeout:.0f}s "
                    f"(PRISM_STARTUP_TIMEOUT); log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        self.startup_seconds = time.monotonic() - started
        self._mark = self._log_size()

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _read_from(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _read_since_mark(self) -> str:
        return self._read_from(self._mark)

    def _wait_log_settled(self, timeout: float = 3.0) -> None:
        """Prism writes its log asynchronously: wait until every request seen
        since the mark has its final line and the file stops growing."""
        deadline = time.monotonic() + timeout
        last_size = -1
        while time.monotonic() < deadline:
            size = self._log_size()
            reqs = parse_prism_log(self._read_since_mark())
            if size == last_size and all(r.complete for r in reqs):
                return
            last_size = size
            time.sleep(0.05)


_live_servers: "weakref.WeakSet[PrismServer]" = weakref.WeakSet()


@atexit.register
def _stop_live_servers() -> None:  # belt and braces if a session teardown was skipped
    for server in list(_live_servers):
        server.stop(timeout=3.0)


try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # non-Linux
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the Python parent dies (even by
    SIGKILL), so an aborted pytest run leaves no Prism behind. Linux only."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _prune_logs(log_dir: Path, prefix: str, keep: int = KEEP_LOGS) -> None:
    logs = sorted(log_dir.glob(f"{prefix}-*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in logs[keep:]:
        old.unlink(missing_ok=True)


def _port_open(host: str, port: int | None) -> bool:
    if port is None:
        return False
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # pid == pgid because of start_new_session=True
    except (ProcessLookupError, PermissionError):
        pass


def start_prism(
    spec: Path,
    *,
    install: NpmInstall,
    node: str,
    name: str,
    patch_spec: bool = True,
    **kwargs: object,
) -> PrismServer:
    """Start Prism for ``spec`` (patched unless ``patch_spec=False``)."""
    served = prepare_prism_spec(spec, install.cache_dir) if patch_spec else spec
    log_dir = install.cache_dir / "logs"
    if log_dir.is_dir():
        _prune_logs(log_dir, name)
    log_path = log_dir / f"{name}-{os.getpid()}-{int(time.time() * 1000)}.log"
    server = PrismServer(served, prism_entry=install.prism_entry, node=node, log_path=log_path, **kwargs)  # type: ignore[arg-type]
    try:
        server.start()
    except PrismStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    return server


# --------------------------------------------------------------------------
# pytest fixture
# --------------------------------------------------------------------------

_shared_lock = threading.Lock()
_shared: dict[str, object] = {"server": None, "users": 0}


@pytest.fixture(scope="session")
def prism_twilio() -> Iterator[PrismServer]:
    """Session-wide Prism mock of ``twilio_api_v2010.json`` (patched, ``--errors``).

    Yields a started ``PrismServer``: ``.base_url``, ``.mark()``,
    ``.validation_errors()``, ``.requests()``, ``.log_path``, ``.startup_seconds``.
    If this fixture function gets registered in several places (a conftest
    re-export plus a module import), they share one Prism process.
    """
    with _shared_lock:
        server = _shared["server"]
        if server is None:
            node, npm = require_node_tooling()
            install = ensure_npm_packages(npm=npm)
            server = start_prism(install.twilio_api_v2010, install=install, node=node, name="prism-twilio-api-v2010")
            _shared["server"] = server
        _shared["users"] = int(_shared["users"]) + 1  # type: ignore[arg-type]
    assert isinstance(server, PrismServer)
    try:
        yield server
    finally:
        with _shared_lock:
            _shared["users"] = int(_shared["users"]) - 1  # type: ignore[arg-type]
            if _shared["users"] == 0:
                server.stop()
                _shared["server"] = None
