"""Identity-based AzureWebJobsStorage: the app picks the credential the Functions host would, with no live token."""

from __future__ import annotations

import pytest
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from shared import state
from shared.settings import parse_settings

CLIENT_ID = "11111111-2222-3333-4444-555555555555"


class RecordedManagedIdentity(ManagedIdentityCredential):
    """azure-identity's own class, remembering the arguments it was made with."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        super().__init__(**kwargs)


@pytest.fixture(autouse=True)
def recorded(monkeypatch):
    monkeypatch.setattr("azure.identity.ManagedIdentityCredential", RecordedManagedIdentity)


def client_for(env: dict[str, str]):
    return state._connect(parse_settings(env))


def test_storage_managedidentity_with_client_id_uses_that_user_assigned_identity():
    client = client_for({"AzureWebJobsStorage__accountName": "stapp", "AzureWebJobsStorage__credential": "managedidentity",
                         "AzureWebJobsStorage__clientId": CLIENT_ID})
    assert isinstance(client.credential, ManagedIdentityCredential)
    assert client.credential.kwargs == {"client_id": CLIENT_ID}
    assert client.url.startswith("https://stapp.table.core.windows.net")


def test_storage_queue_managedidentity_with_client_id_uses_that_user_assigned_identity():
    from shared import queues

    client = queues._connect(parse_settings({"AzureWebJobsStorage__accountName": "stapp", "AzureWebJobsStorage__clientId":
                                             CLIENT_ID, "AzureWebJobsStorage__credential": "managedidentity"}),
                             "twilio-broadcast")
    assert isinstance(client.credential, ManagedIdentityCredential)
    assert client.credential.kwargs == {"client_id": CLIENT_ID}
    assert client.url.startswith("https://stapp.queue.core.windows.net")


def test_storage_managedidentity_without_client_id_uses_the_system_assigned_identity():
    client = client_for({"AzureWebJobsStorage__tableServiceUri": "https://stapp.table.core.windows.net",
                         "AzureWebJobsStorage__credential": "ManagedIdentity"})
    assert isinstance(client.credential, ManagedIdentityCredential)
    assert client.credential.kwargs == {"client_id": None}


def test_storage_account_name_without_credential_setting_uses_default_azure_credential():
    client = client_for({"AzureWebJobsStorage__accountName": "stapp"})
    assert isinstance(client.credential, DefaultAzureCredential)


@pytest.mark.parametrize("value", ["clientsecret", "azurecli"])
def test_parse_settings_storage_credential_other_than_managedidentity_is_invalid(value):
    from shared.settings import SettingsError

    settings = parse_settings({"AzureWebJobsStorage__credential": value})
    assert settings.invalid == ("AzureWebJobsStorage__credential",)
    with pytest.raises(SettingsError) as raised:
        settings.storage_credential  # noqa: B018 - an invalid setting raises where it is read
    assert raised.value.invalid == ("AzureWebJobsStorage__credential",)
