"""Retention: rows past their `expires_at` deleted from every table the app owns, in bounded time."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from shared import state
from shared.settings import Settings

logger = logging.getLogger("shared.cleanup")

TIME_BUDGET_SECONDS = 240.0  # within the Consumption plan's default 5-minute function timeout
PAGE_SIZE = 100  # rows read per query page; the time budget is checked between pages


@dataclass
class Sweep:
    """What one run deleted per table, and whether it reached the end of every table."""

    deleted: dict[str, int] = field(default_factory=dict)
    complete: bool = True


def sweep(settings: Settings, seconds: float = TIME_BUDGET_SECONDS, page_size: int = PAGE_SIZE,
          clock: Callable[[], float] = time.monotonic) -> Sweep:
    """Delete every row that expired before now, page by page until `seconds` are spent; what is left is deleted by
    the next run. A row is deleted only if it is unchanged since it was read expired (its ETag), so a row renewed
    meanwhile (an Idempotency-Key reused after expiry) stays. Without a storage account there is nothing to do."""
    result = Sweep()
    if not settings.storage_configured:
        logger.info("No state storage configured: nothing to clean up")
        return result
    deadline = clock() + seconds
    now = datetime.now(timezone.utc)
    for name in state.TABLES:
        result.deleted[name] = 0
        with state.state_errors():
            pages = state.table(settings, name).query_entities(
                "expires_at lt @now", parameters={"now": now}, select=["PartitionKey", "RowKey"],
                results_per_page=page_size).by_page()
            for page in pages:
                if clock() >= deadline:
                    result.complete = False
                    break
                for row in page:
                    if state.delete_if_unchanged(settings, name, row["PartitionKey"], row["RowKey"],
                                                 row.metadata["etag"]):
                        result.deleted[name] += 1
        if not result.complete:
            break
    logger.info("State cleanup deleted %s%s", result.deleted, "" if result.complete else "; the rest next run")
    return result
