"""The floor: the most trivial HTTP function there is (import azure.functions, return a response)."""

import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok", status_code=200)
