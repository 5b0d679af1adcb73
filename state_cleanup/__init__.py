"""Daily at 03:17 UTC: delete the app's expired state rows (quota counters, Idempotency-Keys, send records)."""

import azure.functions as func

from shared.cleanup import sweep
from shared.settings import load_settings


def main(timer: func.TimerRequest) -> None:
    sweep(load_settings())
