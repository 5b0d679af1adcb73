"""The `main` the Functions worker calls: `(req: func.HttpRequest) -> func.HttpResponse`, whatever the handler takes."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import azure.functions as func

from shared.errors import boundary

Main = Callable[[func.HttpRequest], func.HttpResponse]

SIGNATURE = inspect.Signature(
    [inspect.Parameter("req", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=func.HttpRequest)],
    return_annotation=func.HttpResponse,
)


def entry_point(handler: Callable[..., Any], run: Main) -> Main:
    """handler's `main`: run(req) inside the one error boundary, named and documented as handler."""

    @functools.wraps(handler)
    def main(req: func.HttpRequest) -> func.HttpResponse:
        return boundary(handler.__module__, lambda: run(req))

    # The worker binds function.json's `req` and `$return` through inspect.signature(main), which would follow
    # __wrapped__ to the handler's (req, settings), and typing.get_type_hints(main), which would read the handler's
    # annotations that wraps copied: both must say main(req: func.HttpRequest) -> func.HttpResponse.
    main.__signature__ = SIGNATURE  # type: ignore[attr-defined]
    main.__annotations__ = {"req": func.HttpRequest, "return": func.HttpResponse}
    return main
