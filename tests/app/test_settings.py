"""Consumer settings: defaults, per-cloud requirements and errors that name the variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.settings import ENV_VARS, SettingsError, load

AWS = {
    "EDW_CLOUD": "aws",
    "EDW_QUEUE": "https://sqs.eu-west-1.amazonaws.com/123456789012/edw-work",
    "EDW_DEAD_LETTER_QUEUE": "https://sqs.eu-west-1.amazonaws.com/123456789012/edw-dlq",
    "EDW_TABLE": "edw-events",
}
AZURE = {
    "EDW_CLOUD": "azure",
    "EDW_QUEUE": "edw-work",
    "EDW_TABLE": "edwevents",
    "EDW_STORAGE_ACCOUNT": "edwstore01",
    "EDW_TABLE_ENDPOINT": "https://edwcosmos.table.cosmos.azure.com:443/",
}


def test_aws_defaults() -> None:
    s = load(AWS)
    assert (s.cloud, s.queue, s.table) == ("aws", AWS["EDW_QUEUE"], "edw-events")
    assert s.dead_letter_queue == AWS["EDW_DEAD_LETTER_QUEUE"]
    assert (s.concurrency, s.http_port, s.simulated_work_ms) == (4, 9464, 0)


def test_azure_poison_queue_defaults_to_the_convention_and_account_gives_the_url() -> None:
    s = load(AZURE)
    assert s.dead_letter_queue == "edw-work-poison"
    assert s.queue_account_url == "https://edwstore01.queue.core.windows.net"
    assert s.table_endpoint == AZURE["EDW_TABLE_ENDPOINT"]


def test_azure_connection_string_replaces_account_and_endpoint() -> None:
    env = {k: v for k, v in AZURE.items() if k not in ("EDW_STORAGE_ACCOUNT", "EDW_TABLE_ENDPOINT")}
    s = load({**env, "EDW_AZURE_CONNECTION_STRING": "UseDevelopmentStorage=true"})
    assert s.azure_connection_string == "UseDevelopmentStorage=true"
    with pytest.raises(SettingsError, match="EDW_STORAGE_ACCOUNT is required") as err:
        load(env)
    assert "EDW_TABLE_ENDPOINT is required" in str(err.value)


def test_numbers_are_read_and_range_checked() -> None:
    s = load({**AWS, "EDW_CONCURRENCY": "16", "EDW_SIMULATED_WORK_MS": "250"})
    assert (s.concurrency, s.simulated_work_ms) == (16, 250)
    with pytest.raises(
        SettingsError, match=re.escape("EDW_CONCURRENCY=0 is out of range (allowed: 1..64)")
    ):
        load({**AWS, "EDW_CONCURRENCY": "0"})
    with pytest.raises(SettingsError, match="EDW_HTTP_PORT='http' is not an integer"):
        load({**AWS, "EDW_HTTP_PORT": "http"})


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as err:
        load({"EDW_CLOUD": "aws", "EDW_VISIBILITY_TIMEOUT_SECONDS": "-1", "EDW_LOG_LEVEL": "loud"})
    message = str(err.value)
    for name in (
        "EDW_QUEUE",
        "EDW_DEAD_LETTER_QUEUE",
        "EDW_TABLE",
        "EDW_VISIBILITY_TIMEOUT_SECONDS",
    ):
        assert name in message
    assert "EDW_LOG_LEVEL='loud' is not one of: DEBUG, INFO, WARNING, ERROR" in message


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("EDW_CLOUD", "gcp", "is not one of: aws, azure"),
        ("EDW_QUEUE", "edw-work", "is not an SQS queue URL"),
        ("EDW_TABLE", "x", "is not a table name"),
    ],
)
def test_aws_values_are_validated(name: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}='{value}' {problem}"):
        load({**AWS, name: value})


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("EDW_QUEUE", "Edw_Work", "is not an Azure queue name"),
        ("EDW_DEAD_LETTER_QUEUE", "a--b", "is not an Azure queue name"),
        ("EDW_STORAGE_ACCOUNT", "Edw-Store", "is not a storage account name"),
        ("EDW_TABLE_ENDPOINT", "cosmos", "is not an endpoint URL"),
        ("EDW_TABLE", "edw-events", "is not an Azure table name"),
        ("EDW_AZURE_CONNECTION_STRING", "secret", "is not a storage connection string"),
    ],
)
def test_azure_values_are_validated(name: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}='{value}' {problem}"):
        load({**AZURE, name: value})


def test_receive_wait_must_fit_in_the_shutdown_budget() -> None:
    env = {**AWS, "EDW_RECEIVE_WAIT_SECONDS": "20", "EDW_SHUTDOWN_TIMEOUT_SECONDS": "20"}
    with pytest.raises(SettingsError, match="EDW_RECEIVE_WAIT_SECONDS=20 must be less than"):
        load(env)


@pytest.mark.parametrize("name", ["EDW_QUEUE", "EDW_DEAD_LETTER_QUEUE"])
def test_fifo_queues_are_refused_with_the_reason(name: str) -> None:
    env = {**AWS, name: AWS[name] + ".fifo"}
    with pytest.raises(SettingsError, match=f"{name}=.*is a FIFO queue, which this consumer does"):
        load(env)


def test_a_queue_name_without_room_for_its_poison_queue_is_refused() -> None:
    long_name = "q" * 60  # a legal queue name; "<name>-poison" would be 67 characters
    with pytest.raises(SettingsError, match="leaves no room for its poison queue"):
        load({**AZURE, "EDW_QUEUE": long_name})
    named = load({**AZURE, "EDW_QUEUE": long_name, "EDW_DEAD_LETTER_QUEUE": "edw-poison"})
    assert named.dead_letter_queue == "edw-poison"


@pytest.mark.parametrize(("env", "most"), [(AWS, 43_200), (AZURE, 604_800)])
def test_a_processing_timeout_longer_than_the_queue_can_hide_a_message_is_refused(
    env: dict[str, str], most: int
) -> None:
    assert load({**env, "EDW_PROCESSING_TIMEOUT_SECONDS": str(min(most, 86_400))})
    if most < 86_400:
        with pytest.raises(SettingsError, match=f"keeps a message hidden \\({most} s\\)"):
            load({**env, "EDW_PROCESSING_TIMEOUT_SECONDS": str(most + 1)})


def test_a_zero_receive_wait_is_accepted_on_sqs() -> None:
    """It works: an empty receive then backs off like Azure's (test_consumer_contract)."""
    assert load({**AWS, "EDW_RECEIVE_WAIT_SECONDS": "0"}).receive_wait_seconds == 0


def test_env_vars_lists_exactly_the_variables_the_module_reads() -> None:
    source = (Path(__file__).resolve().parents[2] / "app" / "settings.py").read_text()
    read = set(re.findall(r'"(EDW_[A-Z_]+)"', source.split("ENV_VARS", 2)[2]))
    assert read == set(ENV_VARS)
    assert len(ENV_VARS) == len(set(ENV_VARS))


def test_the_filter_paths_are_data_keys() -> None:
    s = load({**AWS, "EDW_FILTER_PATHS": "data.region,data.items.sku"})
    assert s.filter_paths == ("data.region", "data.items.sku")
    assert load(AWS).filter_paths == ()
    with pytest.raises(SettingsError, match=r"EDW_FILTER_PATHS='type,data.\$or' has keys that"):
        load({**AWS, "EDW_FILTER_PATHS": "type,data.$or"})


def test_the_http_server_listens_everywhere_in_a_pod_and_on_loopback_when_asked() -> None:
    assert load(AWS).http_host == "0.0.0.0"  # kubelet probes and scraping reach the pod's IP
    assert load({**AWS, "EDW_HTTP_HOST": "127.0.0.1"}).http_host == "127.0.0.1"
    with pytest.raises(SettingsError, match="EDW_HTTP_HOST='localhost' is not an IP address"):
        load({**AWS, "EDW_HTTP_HOST": "localhost"})


def test_the_copy_limit_defaults_to_1000_and_is_bounded() -> None:
    """Bounded so the copy counter's room in a message is known (app/backend.py)."""
    assert load(AWS).max_copies == 1000
    assert load({**AWS, "EDW_MAX_COPIES": "7"}).max_copies == 7
    for bad in ("0", "1000001"):
        with pytest.raises(
            SettingsError, match=r"EDW_MAX_COPIES=\d+ is out of range \(allowed: 1..1000000\)"
        ):
            load({**AWS, "EDW_MAX_COPIES": bad})
