"""The consumer alert rules as a stack deploys them: the file, with the stack's latency bound."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

RULES = Path(__file__).with_name("consumer-alerts.yaml")
LATENCY_ALERT = "EdwEndToEndLatencyHigh"
# The file's bound: the last comparison of that alert's expression.
BOUND = re.compile(r">\s*\d+(\.\d+)?\s*$")


def consumer_rules(latency_alert_seconds: int) -> str:
    """The rule groups YAML (Prometheus rule file format) with the p99 latency bound set."""
    groups = yaml.safe_load(RULES.read_text())
    for group in groups["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == LATENCY_ALERT:
                expr = rule["expr"].rstrip()
                if not BOUND.search(expr):
                    raise ValueError(f"{LATENCY_ALERT} has no trailing bound to set: {expr!r}")
                rule["expr"] = BOUND.sub(f"> {latency_alert_seconds}", expr)
    return yaml.safe_dump(groups, sort_keys=False, width=100)
