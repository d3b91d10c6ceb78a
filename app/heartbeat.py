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

Exit 0 when the beat was accepted, 1 when not, 2 on bad settings.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
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
log = logging.getLogger("edw.heartbeat")


class HeartbeatError(ValueError):
    """The settings do not say where to beat."""


def beat(env: Mapping[str, str], credential: Any = None, now: datetime | None = None) -> bool:
    """Send one heartbeat of ``EDW_HEARTBEAT_TASK``; whether it was accepted."""
    cloud, task = env.get("EDW_CLOUD", ""), env.get("EDW_HEARTBEAT_TASK", "")
    when = now or datetime.now(UTC)
    if not task or cloud not in ("aws", "azure"):
        raise HeartbeatError("EDW_CLOUD (aws or azure) and EDW_HEARTBEAT_TASK are required")
    try:
        if cloud == "aws":
            _cloudwatch(task, when, env.get("AWS_REGION") or None)
        else:
            _logs_ingestion(env, task, when, credential)
    except HeartbeatError:
        raise
    except Exception as exc:  # the caller's exit code and this log line say it failed
        log.warning("heartbeat refused", extra={"fields": {"task": task, "error": str(exc)[:300]}})
        return False
    log.info("heartbeat", extra={"fields": {"task": task}})
    return True


def _cloudwatch(task: str, when: datetime, region: str | None) -> None:
    import boto3  # noqa: PLC0415 - load only the SDK of the chosen cloud

    boto3.session.Session(region_name=region).client("cloudwatch").put_metric_data(
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


def _logs_ingestion(env: Mapping[str, str], task: str, when: datetime, credential: Any) -> None:
    endpoint, rule = env.get("EDW_HEARTBEAT_ENDPOINT", ""), env.get("EDW_HEARTBEAT_RULE", "")
    if not (endpoint and rule):
        raise HeartbeatError("azure needs EDW_HEARTBEAT_ENDPOINT and EDW_HEARTBEAT_RULE")
    from app.azure import CALL_TIMEOUT_SECONDS, http_session  # noqa: PLC0415 - azure only

    if credential is None:
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - cloud only

        credential = DefaultAzureCredential()
    token = credential.get_token(INGESTION_SCOPE).token
    row = {"TimeGenerated": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "Task": task}
    response = http_session(1).post(
        f"{endpoint.rstrip('/')}/dataCollectionRules/{rule}/streams/{STREAM}",
        params={"api-version": API_VERSION},
        data=json.dumps([row]),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=(CALL_TIMEOUT_SECONDS, 30),
    )
    if response.status_code >= 300:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")


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
