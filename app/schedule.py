"""One scheduled event, published to the router: what a workflow's CronJob runs at each tick.

    EDW_CLOUD=aws EDW_ROUTER=<topic ARN> EDW_SCHEDULE_TYPE=edw.schedule.nightly \
        python -m app.schedule

The event's data is the scheduled minute (UTC), and its id is the type plus that minute, so every
attempt at one tick (a pod retried by the Job, a Job re-run) publishes the same id and overwrites
its own rows instead of adding some. The minute is the scheduled time, not the start: the CronJob
controller names each Job ``<cronjob>-<scheduled time in minutes since the epoch>``
(kubernetes/kubernetes pkg/controller/cronjob: ``getJobName`` in cronjob_controllerv2.go,
``getTimeHashInMinutes`` = ``Unix() / 60`` in utils.go), and the pod reads its Job's name from its
``batch.kubernetes.io/job-name`` label through the downward API (EDW_JOB_NAME) beside the
CronJob's name (EDW_CRONJOB). Outside a CronJob's Job (a run by hand) the minute the run started
stands in.

After a published tick it sends the task's heartbeat (``app.heartbeat``, with
EDW_HEARTBEAT_TASK), which the stack's missed-tick alarm watches. Exit 0 once the router accepted
the event, even when the heartbeat then fails (logged): a failed Job would be retried and publish
the tick again, while the missing beat already pages through the missed-tick alarm. Exit 1 when
the router refused the event, 2 on bad settings.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

from app import events, heartbeat
from app.backend import open_router
from app.observability import setup_logging

CLOUDS = ("aws", "azure")
EXIT_REFUSED = 1
EXIT_BAD_SETTINGS = 2
log = logging.getLogger("edw.schedule")


def scheduled_minute(env: Mapping[str, str], now: datetime) -> datetime:
    """The tick's scheduled minute, from the Job's name when its CronJob made it; else ``now``."""
    cronjob, job = env.get("EDW_CRONJOB", ""), env.get("EDW_JOB_NAME", "")
    found = re.fullmatch(re.escape(cronjob) + r"-([0-9]+)", job) if cronjob else None
    if found:
        return datetime.fromtimestamp(int(found.group(1)) * 60, UTC)
    return now


def scheduled_event(event_type: str, source: str, scheduled: datetime) -> str:
    minute = scheduled.astimezone(UTC).replace(second=0, microsecond=0)
    stamp = minute.strftime("%Y-%m-%dT%H:%M:%SZ")
    return events.make(
        {"scheduledTime": stamp}, source=source, type_=event_type, event_id=f"{event_type}-{stamp}"
    )


def main(env: Mapping[str, str] = os.environ, now: datetime | None = None) -> int:
    setup_logging("INFO")
    cloud, router = env.get("EDW_CLOUD", ""), env.get("EDW_ROUTER", "")
    event_type = env.get("EDW_SCHEDULE_TYPE", "")
    if cloud not in CLOUDS or not router or not event_type:
        log.error(
            "EDW_CLOUD (aws or azure), EDW_ROUTER and EDW_SCHEDULE_TYPE are required; got "
            + json.dumps(
                {"EDW_CLOUD": cloud, "EDW_ROUTER": router, "EDW_SCHEDULE_TYPE": event_type}
            )
        )
        return EXIT_BAD_SETTINGS
    scheduled = scheduled_minute(env, now or datetime.now(UTC))
    body = scheduled_event(
        event_type, env.get("EDW_SCHEDULE_SOURCE", "urn:edw:schedule"), scheduled
    )
    failed = open_router(cloud, router).send([body])
    fields = {"type": event_type, "id": json.loads(body)["id"], "published": not failed}
    log.info("scheduled event", extra={"fields": fields})
    if failed:
        return EXIT_REFUSED
    if heartbeat.after_run(env) != 0:
        log.error(
            "the tick was published but its heartbeat was not; exiting 0 so the Job is not "
            "retried (a retry would publish the tick again): the missed-tick alarm will page",
            extra={"fields": fields},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
