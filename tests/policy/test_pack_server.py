"""The pack as the Pulumi CLI runs it: ``python -m pulumi.policy <engine> policy`` serves gRPC.

This is the only place ``policy/__main__.py`` runs, in a child process (its PolicyPack blocks).
The engine side is played by a gRPC client speaking pulumi's analyzer protocol.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policy.rules import POLICIES
from tests.policy import fixtures as f

REPO = Path(__file__).resolve().parents[2]


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "policy"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = server.stdout.readline().strip() if server.stdout else ""
        assert port.isdigit(), f"no port from the pack: {port!r} {server.stderr}"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        server.kill()
        server.wait(timeout=10)


def analyze(stub: analyzer_pb2_grpc.AnalyzerStub, rec: f.Rec) -> list[Any]:
    request = analyzer_pb2.AnalyzeRequest(
        type=rec.type, properties=struct(rec.inputs), urn=rec.urn, name=rec.name
    )
    return list(stub.Analyze(request).diagnostics)


def test_serves_every_rule_with_its_level_and_config_schema(analyzer) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "edw-policy"
    served = {p.name: p for p in info.policies}
    assert set(served) == {p.name for p in POLICIES}
    for policy in POLICIES:
        level = analyzer_pb2.EnforcementLevel.Name(served[policy.name].enforcementLevel)
        assert level.lower() == policy.enforcement_level.value
        assert served[policy.name].description == policy.description
    assert served["aws-eks-endpoint-restricted"].enforcementLevel == analyzer_pb2.ADVISORY
    limits = served["karpenter-nodepool-limits"].configSchema.properties
    assert limits["maxCpu"]["default"] == 256


def test_reports_a_mandatory_violation_and_passes_a_compliant_resource(analyzer) -> None:
    assert analyze(analyzer, f.work_queue()) == []
    found = analyze(analyzer, f.work_queue().with_inputs(sqsManagedSseEnabled=None))
    assert [d.policyName for d in found] == ["aws-sqs-encrypted"]
    assert found[0].enforcementLevel == analyzer_pb2.MANDATORY
    assert "queue 'edw-aws-work' is not encrypted at rest" in found[0].message


def test_team_config_tunes_a_rule(analyzer) -> None:
    pool = f.nodepool("spot", ["spot"], {"cpu": "64", "memory": "256Gi"})
    assert analyze(analyzer, pool) == []
    config = analyzer_pb2.PolicyConfig(
        enforcementLevel=analyzer_pb2.ADVISORY, properties=struct({"maxCpu": 32})
    )
    analyzer.Configure(
        analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={"karpenter-nodepool-limits": config})
    )
    found = analyze(analyzer, pool)
    assert [d.enforcementLevel for d in found] == [analyzer_pb2.ADVISORY]
    assert "allowed at most 32 vCPU" in found[0].message


def test_stack_rules_run_over_the_resource_list(analyzer) -> None:
    resources = [
        analyzer_pb2.AnalyzerResource(
            type=r.type, properties=struct(r.inputs), urn=r.urn, name=r.name
        )
        for r in (f.scaled_object(), f.trigger_auth(namespace="keda"))
    ]
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources))
    found = [
        d for d in response.diagnostics if d.policyName == "keda-trigger-authentication-exists"
    ]
    assert len(found) == 1
    assert found[0].urn == f.scaled_object().urn
    assert "does not define in namespace 'edw'" in found[0].message
