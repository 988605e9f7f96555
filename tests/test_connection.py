"""Choosing the backend from ENDPOINT and TASKHUB."""

from __future__ import annotations

import pytest
from test_scheduler import free_port

from monitoring.runtime.connection import BackendError, Connection, check_reachable, connection_from_env
from monitoring.settings import SettingsError


def test_unset_endpoint_means_the_local_scheduler() -> None:
    connection = connection_from_env({})
    assert connection == Connection("http://localhost:8080", "default", "local")
    assert connection.local_port == 8080 and not connection.secure
    assert "local scheduler" in connection.describe()


def test_http_endpoint_means_the_emulator_without_credential() -> None:
    connection = connection_from_env({"ENDPOINT": "http://localhost:8080/", "TASKHUB": "hub"})
    assert connection == Connection("http://localhost:8080", "hub", "emulator")
    assert not connection.secure and "emulator" in connection.describe()


def test_https_endpoint_means_azure_with_default_credential() -> None:
    connection = connection_from_env({"ENDPOINT": "https://my-scheduler.westus2.durabletask.io"})
    assert connection.kind == "azure" and connection.secure and connection.taskhub == "default"
    assert "DefaultAzureCredential" in connection.describe()


@pytest.mark.parametrize("endpoint", ["localhost:8080", "ftp://host", "https://"])
def test_endpoint_without_a_scheme_is_explained(endpoint: str) -> None:
    with pytest.raises(SettingsError, match="is not a URL"):
        connection_from_env({"ENDPOINT": endpoint})


def test_unreachable_endpoint_is_a_one_line_error() -> None:
    with pytest.raises(BackendError, match=r"cannot reach http://127\.0\.0\.1:") as error:
        check_reachable(Connection(f"http://127.0.0.1:{free_port()}", "default", "emulator"), timeout=0.5)
    assert "\n" not in str(error.value)
