"""When a periodic task's tick is overdue: the deadlines of its CronJob and the window its
heartbeat alarm watches (docs/operations.md, "A tick failed or was missed").

A CronJob pod that never runs, fails or is killed by its deadline sends no heartbeat
(``app.heartbeat``); the alarm fires when no heartbeat arrived within the longest gap between two
ticks of the schedule plus the time a tick may take to start and finish.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from croniter import croniter

# A tick missed by more than this (the cluster was down at 02:00) is skipped, not run at 09:00.
STARTING_DEADLINE_SECONDS = 300
# One attempt: up to a minute for a system node to pull the image and start the pod, half a
# minute of work (the SDKs' timeouts); three attempts (backoffLimit 2) and their back-off.
ATTEMPTS = 3
ATTEMPT_SECONDS = 90
BACKOFF_SECONDS = 10 + 20  # Kubernetes' Job back-off: 10 s, doubling
RUN_DEADLINE_SECONDS = ATTEMPTS * ATTEMPT_SECONDS + BACKOFF_SECONDS
TICK_GRACE_SECONDS = STARTING_DEADLINE_SECONDS + RUN_DEADLINE_SECONDS
# The longest window each cloud's alarm can look back over: CloudWatch, period x evaluation
# periods <= 7 days (PutMetricAlarm, Period); an Azure log search alert's query time range, at
# most two days ("Create a log search alert rule", Override query time range).
ALARM_WINDOW_LIMIT_SECONDS = {"aws": 7 * 86_400, "azure": 2 * 86_400}
# Far enough to see a schedule's yearly pattern; far fewer ticks suffice for frequent ones.
HORIZON = timedelta(days=400)
MAX_TICKS = 3_000
START = datetime(2025, 1, 1, tzinfo=UTC)


def longest_gap_seconds(schedule: str) -> int:
    """The longest time between two ticks of a cron schedule (UTC), over a year of ticks."""
    ticks = croniter(schedule, START)
    end = START + HORIZON
    previous, longest = START, 0.0
    for _ in range(MAX_TICKS):
        tick = ticks.get_next(datetime)
        if tick > end:
            break
        longest = max(longest, (tick - previous).total_seconds())
        previous = tick
    else:
        return int(longest)  # frequent ticks: the pattern repeats within MAX_TICKS
    # A schedule rarer than the horizon is at least as sparse as the horizon's tail.
    return int(max(longest, (end - previous).total_seconds()))


def missed_tick_window_seconds(schedule: str) -> int:
    """No heartbeat for this long means a tick failed or was missed."""
    return longest_gap_seconds(schedule) + TICK_GRACE_SECONDS


def alarm_periods(window_seconds: int) -> tuple[int, int]:
    """(period, periods) of a CloudWatch alarm covering ``window_seconds``: one-minute periods up
    to a day, hourly beyond (a period under an hour allows at most a day in all)."""
    period = 60 if window_seconds <= 86_400 else 3_600
    return period, math.ceil(window_seconds / period)


# The windows an Azure log search alert is set with (ISO 8601), smallest first.
LOG_ALERT_WINDOWS = (
    (900, "PT15M"),
    (1_800, "PT30M"),
    (2_700, "PT45M"),
    *((h * 3_600, f"PT{h}H") for h in range(1, 7)),
    (86_400, "P1D"),
    (172_800, "P2D"),
)


def log_alert_window(window_seconds: int) -> str:
    """The smallest log search alert window that covers ``window_seconds``."""
    for seconds, iso in LOG_ALERT_WINDOWS:
        if seconds >= window_seconds:
            return iso
    raise ValueError(f"{window_seconds}s is longer than a log search alert can look back (2 days)")
