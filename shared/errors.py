"""Errors as the API answers them: AppError, its JSON body, the one boundary every handler runs in."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Callable

import azure.functions as func


logger = logging.getLogger("shared.errors")

LONE_SURROGATES = re.compile("[\ud800-\udfff]")  # valid in JSON escapes, not encodable as UTF-8


class AppError(Exception):
    """An error with a stable snake_case code, an HTTP status and a message that says what to do."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        twilio_code: int | None = None,
        more_info: str | None = None,
        quota: str | None = None,
        headers: dict[str, str] | None = None,
        final: bool = False,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.twilio_code = twilio_code
        self.more_info = more_info
        self.quota = quota
        self.headers = headers or {}
        # Twilio has decided the request: refused its content, or may have carried it out. Sending it again cannot
        # help and could send twice, so an Idempotency-Key replays this answer instead.
        self.final = final

    def body(self) -> dict[str, Any]:
        """The documented error body: {"error": {"code", "message", "field"?, "twilio_code"?, "more_info"?,
        "quota"?}}."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        optional = {"field": self.field, "twilio_code": self.twilio_code, "more_info": self.more_info,
                    "quota": self.quota}
        error.update((name, value) for name, value in optional.items() if value is not None)
        return {"error": error}

    def to_response(self) -> func.HttpResponse:
        return json_response(self.body(), self.status, self.headers)


def invalid_field(field: str, message: str, code: str = "invalid_field") -> AppError:
    """A 400 for one request field."""
    return AppError(400, code, message, field=field)


def json_response(payload: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    """A JSON HttpResponse, always valid UTF-8: a lone surrogate taken from the request becomes U+FFFD."""
    return func.HttpResponse(
        LONE_SURROGATES.sub("\ufffd", json.dumps(payload, ensure_ascii=False)).encode("utf-8"),
        status_code=status,
        headers=headers,
        mimetype="application/json",
        charset="utf-8",
    )


def boundary(name: str, run: Callable[[], func.HttpResponse]) -> func.HttpResponse:
    """The one error boundary: run a handler; an AppError becomes its JSON body, anything else a logged 500."""
    started = time.perf_counter()
    try:
        response = run()
    except AppError as exc:
        response = exc.to_response()
        (logger.warning if exc.status >= 500 else logger.info)("%s: %s %s", name, exc.status, exc.code)
    except Exception:  # a bug must still answer JSON and leave its traceback in the log
        logger.exception("%s crashed", name)
        response = AppError(500, "internal_error", "Unexpected error; it has been logged.").to_response()
    # The Functions host already logs every invocation; this line is for local debugging only.
    logger.debug("%s -> %s in %.1f ms", name, response.status_code, (time.perf_counter() - started) * 1000)
    return response
