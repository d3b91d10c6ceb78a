"""Consumer settings: read once from EDW_* environment variables and validated at start.

Every variable the consumer understands is listed in ``ENV_VARS``; the infrastructure test checks
that the Deployment sets nothing outside it. ``load`` raises one ``SettingsError`` naming every bad
variable and what is allowed, so a misconfigured pod fails at once with a readable message.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from app.routing_shape import check_paths

Cloud = Literal["aws", "azure"]
CLOUDS: tuple[Cloud, ...] = ("aws", "azure")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SQS_MAX_VISIBILITY_SECONDS = 43_200  # 12 hours: SQS keeps no message hidden longer
AZURE_MAX_VISIBILITY_SECONDS = 7 * 24 * 3600  # 7 days: Azure's visibility timeout cap
MAX_VISIBILITY = {"aws": SQS_MAX_VISIBILITY_SECONDS, "azure": AZURE_MAX_VISIBILITY_SECONDS}
POISON_SUFFIX = "-poison"
SQS_MAX_WAIT_SECONDS = 20
# Azure queue and container names: 3-63 lowercase letters, digits and single hyphens.
AZURE_QUEUE_RE = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
AZURE_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")
TABLE_RE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
AZURE_TABLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
# The stack's workflow names (stacks/config.py ITEM_NAME_RE); "work" is the one of a default stack.
WORKFLOW_RE = re.compile(r"^[a-z](?!.*--)[a-z0-9-]{1,18}[a-z0-9]$")
DEFAULT_WORKFLOW = "work"
MAX_COPIES_LIMIT = 1_000_000
# The consumer's own health and metrics port: the OpenTelemetry Prometheus exporter's registered
# port, so a workflow's handler beside it can keep the conventional 8080 (docs/handlers.md).
HTTP_PORT = 9464

ENV_VARS: tuple[str, ...] = (
    "EDW_CLOUD",
    "EDW_QUEUE",
    "EDW_DEAD_LETTER_QUEUE",
    "EDW_TABLE",
    "EDW_STORAGE_ACCOUNT",
    "EDW_TABLE_ENDPOINT",
    "EDW_AZURE_CONNECTION_STRING",
    "EDW_CONCURRENCY",
    "EDW_VISIBILITY_TIMEOUT_SECONDS",
    "EDW_PROCESSING_TIMEOUT_SECONDS",
    "EDW_MAX_DELIVERIES",
    "EDW_MAX_COPIES",
    "EDW_SIMULATED_WORK_MS",
    "EDW_HTTP_PORT",
    "EDW_HTTP_HOST",
    "EDW_SHUTDOWN_TIMEOUT_SECONDS",
    "EDW_RECEIVE_WAIT_SECONDS",
    "EDW_LOG_LEVEL",
    "EDW_RESULT_TTL_DAYS",
    "EDW_WORKFLOW",
    "EDW_EXIT_WHEN_IDLE_SECONDS",
    "EDW_MAX_MESSAGES",
    "EDW_FILTER_PATHS",
    "EDW_HANDLER_URL",
    "EDW_ROUTER",
)


class SettingsError(ValueError):
    """Bad environment; the message lists every offending variable."""


@dataclass(frozen=True)
class Settings:
    cloud: Cloud
    queue: str
    dead_letter_queue: str
    table: str
    storage_account: str | None = None
    table_endpoint: str | None = None
    azure_connection_string: str | None = None
    concurrency: int = 4
    visibility_timeout_seconds: int = 120
    processing_timeout_seconds: int = 30
    max_deliveries: int = 5
    # How many fresh copies of a message the consumer puts back while the table fails, before it
    # sets the message aside (a table failure it cannot get past must not loop forever).
    max_copies: int = 1000
    simulated_work_ms: int = 0
    http_port: int = HTTP_PORT
    # A pod serves its probes and metrics on every interface; a process on a laptop (the demo)
    # keeps them on loopback.
    http_host: str = "0.0.0.0"
    shutdown_timeout_seconds: int = 45
    receive_wait_seconds: int = 10
    log_level: str = "INFO"
    result_ttl_days: int = 0
    workflow: str = DEFAULT_WORKFLOW  # written into every row: which workflow processed it
    # Job mode (a KEDA ScaledJob's pod): exit 0 after this long with nothing received and
    # nothing in flight (0: never, the service), and after settling this many messages (0: no
    # limit), so one job never holds a message past its deadline.
    exit_when_idle_seconds: int = 0
    max_messages: int = 0
    # The workflow filter's data keys (app/routing_shape.py): counted when one crosses an array.
    filter_paths: tuple[str, ...] = ()
    # The workflow's own code (docs/handlers.md): each event is POSTed there; None: stored as is.
    handler_url: str | None = None
    # Where a handler's emitted events are published: SNS topic ARN / Event Grid topic endpoint.
    router: str | None = None

    @property
    def queue_account_url(self) -> str:
        return f"https://{self.storage_account}.queue.core.windows.net"


class _Reader:
    """Collects every error instead of stopping at the first, so one start shows them all."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.errors: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def text(self, name: str, *, required: bool, check: Callable[[str], str | None]) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.errors.append(f"{name} is required")
            return None
        problem = check(value)
        if problem:
            self.errors.append(f"{name}={value!r} {problem}")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
        value = self.raw(name)
        if value is None:
            if default is None:
                self.errors.append(f"{name} is required (one of: {', '.join(allowed)})")
            return default
        match = next((a for a in allowed if a.lower() == value.lower()), None)
        if match is None:
            self.errors.append(f"{name}={value!r} is not one of: {', '.join(allowed)}")
            return default
        return match

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.errors.append(f"{name}={value!r} is not an integer (allowed: {low}..{high})")
            return default
        if not low <= number <= high:
            self.errors.append(f"{name}={number} is out of range (allowed: {low}..{high})")
            return default
        return number


def _sqs_url(value: str) -> str | None:
    if value.endswith(".fifo"):
        return (
            "is a FIFO queue, which this consumer does not support (it sends no "
            "MessageGroupId and settles messages out of order); use a standard queue"
        )
    if not re.match(r"^https?://[^/]+/\d{12}/[A-Za-z0-9_-]{1,80}$", value):
        return "is not an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)"
    return None


def _azure_queue(value: str) -> str | None:
    if not AZURE_QUEUE_RE.match(value):
        return "is not an Azure queue name (3-63 lowercase letters, digits, single hyphens)"
    return None


def _dynamodb_table(value: str) -> str | None:
    return None if TABLE_RE.match(value) else "is not a table name (3-255 of A-Z a-z 0-9 _ . -)"


def _azure_table(value: str) -> str | None:
    if AZURE_TABLE_RE.match(value):
        return None
    return "is not an Azure table name (3-63 letters and digits, starting with a letter)"


def _account(value: str) -> str | None:
    return None if AZURE_ACCOUNT_RE.match(value) else "is not a storage account name (3-24 a-z0-9)"


def _workflow(value: str) -> str | None:
    if WORKFLOW_RE.match(value):
        return None
    return "must be a workflow name: 3-20 of a-z 0-9 and single hyphens, starting with a letter"


def _ip_address(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "is not an IP address (0.0.0.0: every interface, 127.0.0.1: loopback only)"
    return None


def _https_url(value: str) -> str | None:
    return None if re.match(r"^https?://[^/\s]+/?$", value) else "is not an endpoint URL"


def _handler_url(value: str) -> str | None:
    if re.match(r"^http://[^/\s:]+:\d{1,5}(/\S*)?$", value):
        return None
    return "is not a handler URL (http://<host>:<port>/, e.g. http://127.0.0.1:8080/)"


def _connection_string(value: str) -> str | None:
    if value == "UseDevelopmentStorage=true" or "AccountName=" in value:
        return None
    return "is not a storage connection string (needs AccountName=... or UseDevelopmentStorage)"


def _filter_paths(r: _Reader) -> tuple[str, ...]:
    value = r.text("EDW_FILTER_PATHS", required=False, check=check_paths)
    return tuple(value.split(",")) if value else ()


def load(env: Mapping[str, str]) -> Settings:
    """Validate ``env`` (normally ``os.environ``) and build the settings, or raise SettingsError."""
    r = _Reader(env)
    cloud = r.choice("EDW_CLOUD", CLOUDS, None)
    queue_check = _sqs_url if cloud == "aws" else _azure_queue
    queue = r.text("EDW_QUEUE", required=True, check=queue_check)
    # Azure's poison queue is conventionally <queue>-poison; AWS needs the DLQ URL spelled out.
    dlq_default = f"{queue}{POISON_SUFFIX}" if cloud == "azure" and queue else None
    dead_letter = r.text("EDW_DEAD_LETTER_QUEUE", required=cloud == "aws", check=queue_check)
    if dlq_default and not dead_letter and _azure_queue(dlq_default):
        r.errors.append(
            f"EDW_QUEUE={queue!r} leaves no room for its poison queue {dlq_default!r} "
            "(Azure queue names are at most 63 characters); set EDW_DEAD_LETTER_QUEUE"
        )
    table_check = _dynamodb_table if cloud == "aws" else _azure_table
    table = r.text("EDW_TABLE", required=True, check=table_check)
    connection = storage = endpoint = None
    if cloud == "azure":
        connection = r.text("EDW_AZURE_CONNECTION_STRING", required=False, check=_connection_string)
        # Without a connection string (emulators) the pod authenticates with workload identity.
        storage = r.text("EDW_STORAGE_ACCOUNT", required=connection is None, check=_account)
        endpoint = r.text("EDW_TABLE_ENDPOINT", required=connection is None, check=_https_url)
    settings = Settings(
        cloud=cloud or "aws",
        queue=queue or "",
        dead_letter_queue=dead_letter or dlq_default or "",
        table=table or "",
        storage_account=storage,
        table_endpoint=endpoint,
        azure_connection_string=connection,
        concurrency=r.integer("EDW_CONCURRENCY", 4, 1, 64),
        visibility_timeout_seconds=r.integer(
            "EDW_VISIBILITY_TIMEOUT_SECONDS", 120, 1, SQS_MAX_VISIBILITY_SECONDS
        ),
        processing_timeout_seconds=r.integer("EDW_PROCESSING_TIMEOUT_SECONDS", 30, 1, 86_400),
        max_deliveries=r.integer("EDW_MAX_DELIVERIES", 5, 1, 1000),
        # At most 7 digits: the copy counter's room in a message is bounded (app/backend.py).
        max_copies=r.integer("EDW_MAX_COPIES", 1000, 1, MAX_COPIES_LIMIT),
        simulated_work_ms=r.integer("EDW_SIMULATED_WORK_MS", 0, 0, 600_000),
        http_port=r.integer("EDW_HTTP_PORT", HTTP_PORT, 0, 65_535),  # 0: any free port (logged)
        http_host=r.text("EDW_HTTP_HOST", required=False, check=_ip_address) or "0.0.0.0",
        shutdown_timeout_seconds=r.integer("EDW_SHUTDOWN_TIMEOUT_SECONDS", 45, 1, 3600),
        receive_wait_seconds=r.integer("EDW_RECEIVE_WAIT_SECONDS", 10, 0, SQS_MAX_WAIT_SECONDS),
        log_level=r.choice("EDW_LOG_LEVEL", LOG_LEVELS, "INFO") or "INFO",
        result_ttl_days=r.integer("EDW_RESULT_TTL_DAYS", 0, 0, 3650),
        workflow=r.text("EDW_WORKFLOW", required=False, check=_workflow) or DEFAULT_WORKFLOW,
        exit_when_idle_seconds=r.integer("EDW_EXIT_WHEN_IDLE_SECONDS", 0, 0, 86_400),
        max_messages=r.integer("EDW_MAX_MESSAGES", 0, 0, 1_000_000),
        filter_paths=_filter_paths(r),
        handler_url=r.text("EDW_HANDLER_URL", required=False, check=_handler_url),
        router=r.raw("EDW_ROUTER"),
    )
    if settings.receive_wait_seconds >= settings.shutdown_timeout_seconds:
        # A receive started just before SIGTERM must return with time left to finish its batch.
        r.errors.append(
            f"EDW_RECEIVE_WAIT_SECONDS={settings.receive_wait_seconds} must be less than "
            f"EDW_SHUTDOWN_TIMEOUT_SECONDS={settings.shutdown_timeout_seconds}"
        )
    if settings.handler_url and not settings.router:
        # A handler may answer with events to publish: without the router they could not go.
        r.errors.append("EDW_HANDLER_URL is set, so EDW_ROUTER is required (events it emits)")
    most = MAX_VISIBILITY[settings.cloud]
    if settings.processing_timeout_seconds > most:
        # The heartbeat keeps a batch hidden until it is released; the queue caps how long.
        r.errors.append(
            f"EDW_PROCESSING_TIMEOUT_SECONDS={settings.processing_timeout_seconds} is longer "
            f"than {settings.cloud} keeps a message hidden ({most} s)"
        )
    if r.errors:
        raise SettingsError("invalid consumer settings: " + "; ".join(r.errors))
    return settings
