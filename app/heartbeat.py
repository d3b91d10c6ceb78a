"""A periodic task's heartbeat: the proof it ran, which the stack's alarm watches arrive.

An alarm on data that never comes never fires (Azure Monitor metric alerts evaluate nothing when
a custom metric sends nothing), so a task that stops, fails or never starts must be caught by the
absence of its beats:

- aws: one CloudWatch datapoint, namespace ``EDW/Tasks``, metric ``Heartbeat``, dimension
  ``Task``; the alarm treats missing data as breaching.
- azure: one row in the Log Analytics table ``EdwHeartbeat_CL`` through the Logs Ingestion API
  (a data collection rule's stream); a log search alert counts the rows of its window and fires
  at none.

``app.schedule`` and ``app.queue_metrics`` beat after a successful run; the stack's deploy-time
Job runs this module once (``python -m app.heartbeat``), so a new alarm starts from a beat.

    EDW_CLOUD=aws EDW_HEARTBEAT_TASK=nightly-schedule python -m app.heartbeat
    EDW_CLOUD=azure EDW_HEARTBEAT_TASK=queue-metrics EDW_HEARTBEAT_ENDPOINT=<DCE ingestion URL> \\
        EDW_HEARTBEAT_RULE=<DCR immutable id> python -m app.heartbeat

A beat that fails for a reason that may pass (the network, a throttle, a server error) is tried
again (``Retry``): a one-off error right after a successful run must not page the missed-tick
alarm, while one that persists past the budget still does. Each failed try is logged.

Exit 0 when the beat was accepted, 1 when not, 2 on bad settings.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.observability import setup_logging

NAMESPACE, METRIC, DIMENSION = "EDW/Tasks", "Heartbeat", "Task"
STREAM = "Custom-EdwHeartbeat"  # the data collection rule's input stream
# Logs Ingestion API (azure-rest-api-specs, "Ingestion Using Data Collection Rules" 2023-01-01):
# POST {endpoint}/dataCollectionRules/{immutable id}/streams/{stream}; the token's audience is
# https://monitor.azure.com (the Azure SDK's LogsIngestionClient default scope).
API_VERSION = "2023-01-01"
INGESTION_SCOPE = "https://monitor.azure.com//.default"
EXIT_REFUSED, EXIT_BAD_SETTINGS = 1, 2
# One try's own limits (connect, answer), so the retry budget bounds the whole beat.
CONNECT_SECONDS, READ_SECONDS = 5, 10
log = logging.getLogger("edw.heartbeat")
Send = Callable[[str, datetime], None]


@dataclass(frozen=True)
class Retry:
    """How long a beat keeps trying: up to ``attempts`` tries, waiting ``first_backoff`` seconds
    after the first failure and twice as long after each next one, and no try begun later than
    ``budget`` seconds after the first. With the defaults (1 s, 2 s, 4 s between four tries) and
    each try's own limits a beat gives up within 35 s, well inside a schedule pod's 90 s a try
    (components/ticks.py)."""

    attempts: int = 4
    first_backoff: float = 1.0
    budget: float = 20.0


class HeartbeatError(ValueError):
    """The settings do not say where to beat."""


class TransientError(RuntimeError):
    """A failure another try may not meet: the network, a throttle, a server error."""


def beat(
    env: Mapping[str, str],
    credential: Any = None,
    now: datetime | None = None,
    retry: Retry = Retry(),
) -> bool:
    """Send one heartbeat of ``EDW_HEARTBEAT_TASK``, tried again per ``retry`` while it fails
    transiently; whether it was accepted."""
    cloud, task = env.get("EDW_CLOUD", ""), env.get("EDW_HEARTBEAT_TASK", "")
    when = now or datetime.now(UTC)
    if not task or cloud not in ("aws", "azure"):
        raise HeartbeatError("EDW_CLOUD (aws or azure) and EDW_HEARTBEAT_TASK are required")
    try:
        send = (
            _cloudwatch(env.get("AWS_REGION") or None)
            if cloud == "aws"
            else _logs_ingestion(env, credential)
        )
    except HeartbeatError:
        raise
    except Exception as exc:  # no client (no region, no credential): another try would not help
        log.warning("heartbeat refused", extra={"fields": {"task": task, "error": str(exc)[:300]}})
        return False
    started, attempt = time.monotonic(), 1
    while True:
        try:
            send(task, when)
        except Exception as exc:  # the caller's exit code and these log lines say it failed
            wait = retry.first_backoff * 2 ** (attempt - 1)
            again = (
                isinstance(exc, TransientError)
                and attempt < retry.attempts
                and time.monotonic() - started + wait <= retry.budget
            )
            fields = {"task": task, "attempt": attempt, "retrying": again, "error": str(exc)[:300]}
            log.warning("heartbeat refused", extra={"fields": fields})
            if not again:
                return False
            time.sleep(wait)
            attempt += 1
        else:
            log.info("heartbeat", extra={"fields": {"task": task, "attempt": attempt}})
            return True


def _cloudwatch(region: str | None) -> Send:
    import boto3  # noqa: PLC0415 - load only the SDK of the chosen cloud
    from botocore.config import Config  # noqa: PLC0415
    from botocore.exceptions import (  # noqa: PLC0415
        ClientError,
        ConnectionError,
        HTTPClientError,
    )

    # botocore's own retries off (``total_max_attempts`` counts the first try: botocore 1.44
    # config.py): ``beat`` retries, logs each failure and keeps to its budget.
    config = Config(
        connect_timeout=CONNECT_SECONDS,
        read_timeout=READ_SECONDS,
        retries={"total_max_attempts": 1},
    )
    client = boto3.session.Session(region_name=region).client("cloudwatch", config=config)

    def send(task: str, when: datetime) -> None:
        try:
            client.put_metric_data(
                Namespace=NAMESPACE,
                MetricData=[
                    {
                        "MetricName": METRIC,
                        "Dimensions": [{"Name": DIMENSION, "Value": task}],
                        "Timestamp": when,
                        "Value": 1.0,
                        "Unit": "Count",
                    }
                ],
            )
        except (ConnectionError, HTTPClientError) as exc:  # unreachable, cut, timed out
            raise TransientError(str(exc)) from exc
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            # CloudWatch throttles PutMetricData with HTTP 400, code "Throttling" (AWS knowledge
            # center, "cloudwatch-400-error-throttling").
            code = exc.response.get("Error", {}).get("Code", "")
            if status == 429 or status >= 500 or code.startswith("Throttl"):
                raise TransientError(str(exc)) from exc
            raise

    return send


def _logs_ingestion(env: Mapping[str, str], credential: Any) -> Send:
    endpoint, rule = env.get("EDW_HEARTBEAT_ENDPOINT", ""), env.get("EDW_HEARTBEAT_RULE", "")
    if not (endpoint and rule):
        raise HeartbeatError("azure needs EDW_HEARTBEAT_ENDPOINT and EDW_HEARTBEAT_RULE")
    import requests  # noqa: PLC0415 - azure only

    from app.azure import http_session  # noqa: PLC0415 - azure only

    if credential is None:
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - cloud only

        credential = DefaultAzureCredential()
    session = http_session(1)

    def send(task: str, when: datetime) -> None:
        token = credential.get_token(INGESTION_SCOPE).token  # cached by the credential
        row = {"TimeGenerated": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "Task": task}
        try:
            response = session.post(
                f"{endpoint.rstrip('/')}/dataCollectionRules/{rule}/streams/{STREAM}",
                params={"api-version": API_VERSION},
                data=json.dumps([row]),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                timeout=(CONNECT_SECONDS, READ_SECONDS),
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(str(exc)) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code >= 300:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

    return send


def after_run(env: Mapping[str, str], credential: Any = None) -> int:
    """A task's exit code once its work succeeded: 0 when it beat (or has no heartbeat)."""
    if not env.get("EDW_HEARTBEAT_TASK"):
        return 0
    try:
        return 0 if beat(env, credential) else EXIT_REFUSED
    except HeartbeatError as exc:
        log.error(str(exc))
        return EXIT_BAD_SETTINGS


def main(env: Mapping[str, str] = os.environ, credential: Any = None) -> int:
    setup_logging("INFO")
    if not env.get("EDW_HEARTBEAT_TASK"):
        log.error("EDW_HEARTBEAT_TASK is required")
        return EXIT_BAD_SETTINGS
    return after_run(env, credential)


if __name__ == "__main__":
    sys.exit(main())
