"""The Azure SDK's HTTP logging: a Table Storage request logs no dump unless AZURE_SDK_LOG_LEVEL asks for one."""

from __future__ import annotations

import logging

import pytest

from shared import state
from shared.settings import load_settings

HTTP_LOGGER = "azure.core.pipeline.policies.http_logging_policy"


@pytest.mark.parametrize(("level", "dumped"), [(None, False), ("warning", False), ("INFO", True)])
def test_azure_sdk_http_logging_table_request_dumps_only_when_the_level_asks(azurite, monkeypatch, caplog, level,
                                                                             dumped):
    if level:
        monkeypatch.setenv("AZURE_SDK_LOG_LEVEL", level)
    caplog.set_level(logging.DEBUG)
    assert state.get(load_settings(), state.SENDS, "SM" + "0" * 32) is None
    dumps = [record for record in caplog.records if record.name == HTTP_LOGGER]
    assert bool(dumps) == dumped
    assert all("Request URL" in record.getMessage() or "Response status" in record.getMessage() for record in dumps)
