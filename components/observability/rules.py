"""The consumer alert rules as a stack deploys them: the file, with the stack's latency bound."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from components.settings import Workflow

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


NO_PROGRESS_ALERT = "EdwNoProgress"
# Per workflow, over kube-state-metrics (which Azure Monitor's minimal ingestion profile keeps:
# kube_deployment_spec_replicas, kube_job_status_active; Azure/prometheus-collector
# tomlparser-default-targets-metrics-keep-list.go). KEDA names a ScaledJob's Jobs
# "<ScaledJob>-<random>" (keda v2.20.2 pkg/scaling/executor/scale_jobs.go, GenerateName).
SERVICE_DEMAND = (
    'max by (namespace, workflow) (label_replace(kube_deployment_spec_replicas{{namespace="{ns}",'
    ' deployment="{k8s}"}}, "workflow", "{workflow}", "", "")) > {floor}'
)
JOB_DEMAND = (
    "sum by (namespace, workflow) (label_replace(max_over_time(kube_job_status_active{{"
    'namespace="{ns}", job_name=~"{k8s}-.+"}}[5m]), "workflow", "{workflow}", "", "")) > 0'
)
# Demand without progress for this long pages (the file's job rule times a window of its own).
NO_PROGRESS_BY_REPLICAS_FOR = "15m"
NO_PROGRESS_BY_REPLICAS = """(
  {demand}
)
unless on (namespace, workflow)
sum by (namespace, workflow) (rate(edw_messages_processed_total[10m])) > 0
"""
# A job workflow's pods may live less than a scrape interval, so their counter may never be
# scraped: a Job of the workflow that started in the last 15 minutes and succeeded is progress
# too (it exits 0 only after its share or when idle; stuck, it fails at its deadline). Both
# series are in Azure Monitor's minimal ingestion profile (Azure Monitor docs, "Minimal
# ingestion profile for Prometheus metrics", kube-state-metrics list).
JOB_PROGRESS = (
    'sum by (namespace, workflow) (label_replace((kube_job_status_succeeded{{namespace="{ns}", '
    'job_name=~"{k8s}-.+"}} > 0) and on (namespace, job_name) (kube_job_status_start_time{{'
    'namespace="{ns}", job_name=~"{k8s}-.+"}} > time() - 900), "workflow", "{workflow}", "", ""))'
)


def no_progress_from_replicas(rules: str, namespace: str, workflows: Sequence[Workflow]) -> str:
    """The rule groups with EdwNoProgress for a cluster whose KEDA serves no metrics (the AKS
    add-on, whose values cannot be set: Azure/AKS#4090; its operator runs with the chart's
    default --enable-prometheus-metrics=false). "KEDA sees messages" becomes "KEDA has scaled the
    workflow above its floor": KEDA activates at any queued or in-flight message
    (activationQueueLength 0), so above minReplicas (a service) or with a Job running (a job
    workflow) there is work; with nothing stored for 15 minutes, the workflow is stuck."""
    groups = yaml.safe_load(rules)
    for group in groups["groups"]:
        kept = []
        for rule in group["rules"]:
            if rule.get("alert") != NO_PROGRESS_ALERT:
                kept.append(rule)
                continue
            # One rule per workload kind (the file's `workload` label), over its workflows only.
            mode = rule["labels"]["workload"]
            demand = "\n  or\n  ".join(
                (JOB_DEMAND if mode == "job" else SERVICE_DEMAND).format(
                    ns=namespace, k8s=w.k8s_name, workflow=w.name, floor=w.consumer.min_replicas
                )
                for w in workflows
                if (w.mode == "job") == (mode == "job")
            )
            if not demand:
                continue
            rule["expr"] = NO_PROGRESS_BY_REPLICAS.format(demand=demand)
            if mode == "job":
                progress = "\n  or\n  ".join(
                    JOB_PROGRESS.format(ns=namespace, k8s=w.k8s_name, workflow=w.name)
                    for w in workflows
                    if w.mode == "job"
                )
                rule["expr"] += f"unless on (namespace, workflow)\n(\n  {progress}\n)\n"
            rule["for"] = NO_PROGRESS_BY_REPLICAS_FOR
            rule["annotations"]["summary"] = (
                "{{ $labels.workflow }}: KEDA has scaled up for queued messages and no "
                "consumer has stored one for 15 minutes"
            )
            kept.append(rule)
        group["rules"] = kept
    return yaml.safe_dump(groups, sort_keys=False, width=100)
