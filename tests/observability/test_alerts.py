"""The consumer's alert rules and Grafana dashboard: valid PromQL (Prometheus's own parser, in
promtool), the rules unit-tested with promtool, both written only against metrics the consumer
really exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from app.observability import Metrics
from bench.emulators import REPO
from components.observability.rules import consumer_rules, no_progress_from_replicas
from stacks.config import EdwConfig
from tests import tools

RULES = REPO / "components" / "observability" / "consumer-alerts.yaml"
RULE_TESTS = Path(__file__).with_name("consumer-alerts.test.yaml")
REPLICA_TESTS = Path(__file__).with_name("no-progress-by-replicas.test.yaml")
CONSUMER_METRIC = re.compile(r"\bedw_[a-z_]+\b")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool; a test that needs it is skipped where it is missing (tests/tools.py)."""
    cmd = [str(tools.promtool()), *map(str, args)]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=RULE_TESTS.parent)


def exported_series() -> set[str]:
    metrics = Metrics("aws")
    metrics.end_to_end_seconds.observe(1.0)  # histograms show their buckets once observed
    text = metrics.exposition().decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def unknown_metrics(rules_text: str) -> set[str]:
    groups = yaml.safe_load(rules_text)["groups"]
    used = {m for g in groups for r in g["rules"] for m in CONSUMER_METRIC.findall(r["expr"])}
    return used - exported_series()


def test_the_rules_parse() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_every_alert_fires_and_resolves_on_sample_series() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert tested == alerts


@pytest.mark.parametrize(
    ("change", "alert"),
    [
        (("> 0.05", "> 0.5"), "EdwConsumerFailuresRising"),
        (("(edw_breaker_open) > 0\n        for: 5m", "(edw_breaker_open) > 0\n        for: 1m"),
         "EdwTableFailing"),
    ],
)  # fmt: skip
def test_a_broken_threshold_fails_the_unit_tests(
    tmp_path: Path, change: tuple[str, str], alert: str
) -> None:
    assert change[0] in RULES.read_text()
    broken = tmp_path / "consumer-alerts.yaml"
    broken.write_text(RULES.read_text().replace(*change))
    tests = tmp_path / "t.test.yaml"
    tests.write_text(RULE_TESTS.read_text().replace(
        "../../components/observability/consumer-alerts.yaml", str(broken)
    ))  # fmt: skip
    result = promtool("test", "rules", tests)
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


def test_the_rules_use_only_metrics_the_consumer_exports() -> None:
    assert unknown_metrics(RULES.read_text()) == set()
    assert unknown_metrics(RULES.read_text().replace("edw_messages_failed_total", "edw_oops")) == {
        "edw_oops"
    }


DASHBOARD = REPO / "components" / "observability" / "consumer-dashboard.json"
# Grafana's variables, replaced by what Grafana would send, so that promtool can parse the query.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$workflow": ".*"}


def dashboard_queries(model: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in model["panels"] for t in p["targets"]]


def check_queries(queries: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """promtool parses each query as a recording rule: Prometheus's own PromQL parser."""
    for name, value in GRAFANA_VARIABLES.items():
        queries = [q.replace(name, value) for q in queries]
    rules = [{"record": f"edw:dashboard_check:{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return promtool("check", "rules", path)


def test_the_dashboard_is_a_grafana_model_on_a_prometheus_datasource() -> None:
    model = json.loads(DASHBOARD.read_text())
    assert model["uid"]
    assert model["title"]
    assert model["schemaVersion"] >= 36
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource",
        "prometheus",
    )
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    for panel in model["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        assert grid["h"] > 0
        refs = [t["refId"] for t in panel["targets"]]
        assert refs
        assert len(refs) == len(set(refs))
        for source in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
            assert source == {"type": "prometheus", "uid": "${datasource}"}


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    queries = dashboard_queries(json.loads(DASHBOARD.read_text()))
    result = check_queries(queries, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout
    broken = check_queries([*queries, "sum by (namespace (edw_messages_in_flight)"], tmp_path)
    assert broken.returncode != 0


def test_the_dashboard_uses_only_metrics_the_consumer_exports() -> None:
    text = DASHBOARD.read_text()
    used = set(CONSUMER_METRIC.findall(text))
    assert used
    assert used <= exported_series()
    assert {"edw_messages_processed_total", "edw_end_to_end_seconds_bucket"} <= used


def replica_rules(tmp_path: Path, floor: int = 2) -> Path:
    """The rules as the Azure stack deploys them, for a service, a floored service and a job."""
    workflows = [
        {"name": "work"},
        {"name": "steady", "minReplicas": floor},
        {"name": "nightly", "mode": "job"},
    ]
    cfg = EdwConfig.parse(
        {
            "cloud": "azure",
            "disableLocalAccounts": "false",
            "apiAllowedCidrs": '["0.0.0.0/0"]',
            "workflows": json.dumps(workflows),
        },
        "dev",
        {"azure-native:location": "westeurope"},
    )
    path = tmp_path / "rules.yaml"
    path.write_text(no_progress_from_replicas(consumer_rules(60), "edw", cfg.workflows))
    return path


def run_replica_tests(tmp_path: Path, rules: Path) -> subprocess.CompletedProcess[str]:
    tests = tmp_path / "replicas.test.yaml"
    tests.write_text(REPLICA_TESTS.read_text().replace("RULES_PATH", str(rules)))
    return promtool("test", "rules", tests)


def test_without_keda_metrics_no_progress_fires_from_the_workflows_replicas(
    tmp_path: Path,
) -> None:
    """The AKS KEDA add-on serves no keda_scaler_metrics_value: the rule reads kube-state-metrics
    (a service scaled above its floor, a job running) against what the consumers store."""
    rules = replica_rules(tmp_path)
    checked = promtool("check", "rules", rules)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    result = run_replica_tests(tmp_path, rules)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "keda_scaler_metrics_value" not in rules.read_text()
    assert unknown_metrics(rules.read_text()) == set()


def test_a_workflow_at_its_floor_is_not_stuck(tmp_path: Path) -> None:
    """Ignoring the floor (steady's 2 pods with an empty queue) would page: the tests fail."""
    result = run_replica_tests(tmp_path, replica_rules(tmp_path, floor=1))
    assert result.returncode != 0
    assert "steady" in result.stdout + result.stderr
