"""Every Kubernetes object both stacks render passes checkov's Kubernetes checks.

The objects are rendered from the offline run's recorded inputs (apiVersion and kind from the
type token, numbers as the API receives them) and scanned in one checkov run (its own venv,
created by `make deps`). Only findings listed in checkov-skips.yaml, each with its reason, are
accepted. Helm releases are not manifests and are not scanned here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.offline import RecordedResource, StackRun, run_stack
from tests.infra.test_handlers import WORKFLOWS as HANDLER_WORKFLOWS

REPO = Path(__file__).resolve().parents[2]
CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"
SKIPS = Path(__file__).with_name("checkov-skips.yaml")
PREVIEW_ROLE = "arn:aws:iam::123456789012:role/pr-preview"
JOB_WORKFLOW = {
    "name": "nightly",
    "mode": "job",
    "schedule": "0 2 * * *",
    "filter": {"type": ["edw.schedule.nightly"]},
}


def api_number(value: Any) -> Any:
    """Mocks hand numbers over as floats; the API server receives integers where they are."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: api_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [api_number(v) for v in value]
    return value


def manifest(resource: RecordedResource) -> dict[str, Any] | None:
    """The object as `kubectl apply` would send it, or None for what is not a manifest."""
    if not resource.custom or resource.type.startswith(("kubernetes:helm.sh", "pulumi:")):
        return None
    _, group_version, kind = resource.type.split(":")
    group, version = group_version.rsplit("/", 1)
    body = {k: v for k, v in resource.inputs.items() if k not in ("apiVersion", "kind")}
    metadata = dict(body.pop("metadata", None) or {})
    metadata.setdefault("name", (resource.outputs.get("metadata") or {}).get("name"))
    api_version = version if group == "core" else f"{group}/{version}"
    return api_number({"apiVersion": api_version, "kind": kind, "metadata": metadata, **body})


def render(run: StackRun, folder: Path) -> int:
    folder.mkdir(parents=True)
    count = 0
    for resource in run.resources:
        if resource.type.startswith("kubernetes:") and (doc := manifest(resource)):
            (folder / f"{resource.name}.yaml").write_text(yaml.safe_dump(doc))
            count += 1
    return count


def scan(folder: Path) -> list[dict[str, Any]]:
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make deps`"
    result = subprocess.run(
        [
            *(str(CHECKOV), "--framework", "kubernetes", "--skip-download", "-d", str(folder)),
            *("--compact", "--quiet", "-o", "json"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: findings
    reports = json.loads(result.stdout) if result.stdout.strip() else []
    reports = reports if isinstance(reports, list) else [reports]
    return [
        {"check": f["check_id"], "resource": f["resource"], "file": f["file_path"]}
        for report in reports
        for f in (report.get("results") or {}).get("failed_checks", [])
    ]


@pytest.fixture(scope="module")
def findings(
    aws_run: StackRun, dev_run: StackRun, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    root = tmp_path_factory.mktemp("k8s")
    assert render(aws_run, root / "aws") >= 10
    assert render(dev_run, root / "dev") >= 10
    # A job workflow with a schedule adds a CronJob (KEDA's ScaledJob is not a kind checkov
    # knows; the policy pack holds its pods to the same rules).
    batch = json.dumps([{"name": "work"}, JOB_WORKFLOW])
    for stack in ("aws", "dev"):
        assert render(run_stack(stack, {"workflows": batch}), root / f"{stack}-batch") >= 10
    # Handlers add a sidecar to service and job pods (docs/handlers.md).
    for stack in ("aws", "dev"):
        handlers = run_stack(stack, {"workflows": json.dumps(HANDLER_WORKFLOWS)})
        assert render(handlers, root / f"{stack}-handlers") >= 10
    # Observability full and a preview identity add RBAC: the collector's and the previewers'.
    full = {"observability": "full", "previewArns": json.dumps([PREVIEW_ROLE])}
    assert render(run_stack("aws", full), root / "aws-rbac") >= 10
    return scan(root)


def accepted(finding: dict[str, Any], skips: dict[str, Any]) -> bool:
    entry = skips.get(finding["check"])
    return bool(entry) and finding["resource"] in entry.get("resources", [])


def test_checkov_finds_nothing_outside_the_reviewed_skip_list(findings) -> None:
    skips = yaml.safe_load(SKIPS.read_text()) or {}
    assert [f for f in findings if not accepted(f, skips)] == []


def test_every_skip_has_a_reason_and_still_matches_a_finding(findings) -> None:
    skips = yaml.safe_load(SKIPS.read_text()) or {}
    for check, entry in skips.items():
        assert entry.get("reason"), check
        for resource in entry.get("resources", []):
            assert {"check": check, "resource": resource} in [
                {"check": f["check"], "resource": f["resource"]} for f in findings
            ], f"stale skip {check} {resource}"


def test_the_scan_catches_a_mounted_token_and_a_namespace_without_policy(tmp_path: Path) -> None:
    """The checks the consumer once failed (CKV_K8S_38, CKV2_K8S_6) are live in this scan."""
    pod = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "open", "namespace": "open"},
        "spec": {
            "selector": {"matchLabels": {"app": "open"}},
            "template": {
                "metadata": {"labels": {"app": "open"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
            },
        },
    }
    (tmp_path / "open.yaml").write_text(yaml.safe_dump(pod))
    checks = {f["check"] for f in scan(tmp_path)}
    assert {"CKV_K8S_38", "CKV2_K8S_6"} <= checks


def test_the_consumer_mounts_no_api_token_yet_keeps_its_identity(
    aws_run: StackRun, dev_run: StackRun
) -> None:
    """The webhooks inject their own projected token whatever automount says; they key on the
    service account's annotation (IRSA) or the pod label (Azure workload identity)."""
    identities = [
        (aws_run, "eks.amazonaws.com/role-arn"),
        (dev_run, "azure.workload.identity/client-id"),
    ]
    for run, key in identities:
        sa = run.one("kubernetes:core/v1:ServiceAccount", "consumer-sa")
        pod = run.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]
        assert sa.inputs["automountServiceAccountToken"] is False
        assert pod["spec"]["automountServiceAccountToken"] is False
        assert sa.inputs["metadata"]["annotations"][key]
        assert pod["spec"]["serviceAccountName"] == sa.outputs["metadata"]["name"]
    labels = dev_run.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["metadata"]
    assert labels["labels"]["azure.workload.identity/use"] == "true"


def test_the_namespace_denies_all_but_probes_dns_and_https(aws_run: StackRun) -> None:
    policies = {
        p.inputs["metadata"]["name"]: p.inputs["spec"]
        for p in aws_run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    consumer = policies["edw-consumer"]
    assert consumer["ingress"] == [{"ports": [{"protocol": "TCP", "port": 9464}]}]
    dns, https = consumer["egress"]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert https == {"ports": [{"protocol": "TCP", "port": 443}]}
    cluster = aws_run.one("eks:index:Cluster").inputs
    assert cluster["vpcCniOptions"]["enableNetworkPolicy"] is True
