"""Request bodies as every endpoint reads them: one size limit, the media type."""

from __future__ import annotations

import azure.functions as func

from shared.errors import AppError

MAX_BODY_BYTES = 64 * 1024  # larger request bodies are refused with 413 (mobile API and webhooks alike)
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def request_body(req: func.HttpRequest, max_bytes: int = MAX_BODY_BYTES) -> tuple[str, bytes]:
    """(media type in lower case, body bytes); 413 body_too_large over max_bytes."""
    body = req.get_body() or b""
    if len(body) > max_bytes:
        raise AppError(413, "body_too_large", f"The request body is larger than {max_bytes} bytes.")
    media_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    return media_type, body
