"""One scheduled event, published to the router: what a workflow's CronJob runs at each tick.

    EDW_CLOUD=aws EDW_ROUTER=<topic ARN> EDW_SCHEDULE_TYPE=edw.schedule.nightly \
        python -m app.schedule

The event's data is the scheduled minute (UTC, the minute the run started), and its id is the
type plus that minute, so a retry of the same tick overwrites its own rows instead of adding
some. After a published tick it sends the task's heartbeat (``app.heartbeat``, with
EDW_HEARTBEAT_TASK), which the stack's missed-tick alarm watches. Exit 0 when the router accepted
the event (and the heartbeat), 1 when not, 2 on bad settings.
"""

from __future__ import annotations

import json
import logging
import os
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


def scheduled_event(event_type: str, source: str, now: datetime) -> str:
    minute = now.astimezone(UTC).replace(second=0, microsecond=0)
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
    body = scheduled_event(
        event_type, env.get("EDW_SCHEDULE_SOURCE", "urn:edw:schedule"), now or datetime.now(UTC)
    )
    failed = open_router(cloud, router).send([body])
    fields = {"type": event_type, "id": json.loads(body)["id"], "published": not failed}
    log.info("scheduled event", extra={"fields": fields})
    return EXIT_REFUSED if failed else heartbeat.after_run(env)


if __name__ == "__main__":
    sys.exit(main())
