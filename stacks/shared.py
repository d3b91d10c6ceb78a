"""Wiring both cloud stacks share; what differs per cloud stays in stacks/aws.py and azure.py."""

from __future__ import annotations

from components.settings import SCHEDULE_SOURCE, Workflow
from components.ticks import missed_tick_window_seconds
from stacks.config import EdwConfig


def task_name(workflow: Workflow) -> str:
    """What a workflow's schedule heartbeats are named (the alarm's Task)."""
    return f"{workflow.name}-schedule"


def schedule_window(workflow: Workflow) -> int:
    """No heartbeat from the schedule for this long: a tick failed or was missed."""
    return missed_tick_window_seconds(workflow.schedule)


def schedule_task(cfg: EdwConfig, workflow: Workflow) -> dict[str, str | bool]:
    """The CronJob of a workflow's schedule: its name, cron, module and heartbeat (both
    clouds), and the Job's name in the pod, which names the tick's scheduled minute."""
    return {
        "k8s_name": f"{workflow.k8s_name}-schedule",
        "schedule": workflow.schedule,
        "module": "app.schedule",
        "heartbeat_task": task_name(workflow),
        "job_name_env": True,
    }


def schedule_env(cloud: str, cfg: EdwConfig, workflow: Workflow) -> dict[str, str]:
    """What app.schedule reads besides the router and the cloud's SDK settings."""
    return {
        "EDW_CLOUD": cloud,
        "EDW_WORKFLOW": workflow.name,
        "EDW_SCHEDULE_TYPE": workflow.scheduled_event_type(cfg.prefix),
        "EDW_SCHEDULE_SOURCE": SCHEDULE_SOURCE,
    }
