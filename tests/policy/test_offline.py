"""policy.offline: engine-equivalent evaluation, preview-like report, exit codes, pack config."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from pulumi_policy import EnforcementLevel
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from policy import offline
from policy.offline import PackConfig, PackConfigError, evaluate, format_report
from stacks.offline import ProgramError
from tests.policy import fixtures as f

REPO = Path(__file__).resolve().parents[2]


def broken_aws_graph() -> list[f.Rec]:
    graph = f.aws_graph()
    graph[1] = graph[1].with_inputs(sqsManagedSseEnabled=None)  # the work queue
    return [r for r in graph if r.name != "on-demand"]


def test_compliant_graphs_have_no_violations() -> None:
    assert evaluate(f.aws_graph()) == []
    assert evaluate(f.azure_graph()) == []


def test_report_lists_violations_like_a_preview() -> None:
    violations = evaluate(broken_aws_graph())
    assert {(v.policy, v.level) for v in violations} == {
        ("aws-sqs-encrypted", EnforcementLevel.MANDATORY),
        ("karpenter-spot-beside-on-demand", EnforcementLevel.MANDATORY),
    }
    report = format_report(violations, "aws").splitlines()
    assert report[:2] == ["Policies:", "    ❌ edw-policy@v0.1.0 (local: policy, stack aws)"]
    start = report.index(
        "        - [mandatory]  aws-sqs-encrypted  (aws:sqs/queue:Queue: edw-aws-work)"
    )
    assert report[start + 1].strip().startswith("SQS queues must be encrypted at rest")
    assert report[start + 2].strip() == (
        "queue 'edw-aws-work' is not encrypted at rest: set sqsManagedSseEnabled=true "
        "or kmsMasterKeyId"
    )
    assert "        - [mandatory]  karpenter-spot-beside-on-demand" in report
    assert report[-1] == "2 mandatory and 0 advisory policy violation(s) in aws"


def test_stack_findings_name_the_offending_resource() -> None:
    graph = [f.scaled_object(auth="missing"), f.trigger_auth()]
    [violation] = [v for v in evaluate(graph) if v.policy == "keda-trigger-authentication-exists"]
    assert violation.urn == graph[0].urn
    assert violation.resource == f"{f.CUSTOM_RESOURCE}: consumer"


def test_advisory_findings_do_not_fail_and_show_a_warning() -> None:
    graph = [f.eks_component(publicAccessCidrs=["0.0.0.0/0"])]
    violations = evaluate(graph)
    assert [(v.policy, v.mandatory) for v in violations] == [("aws-eks-endpoint-restricted", False)]
    assert "⚠️" in format_report(violations, "aws").splitlines()[1]


def test_pack_config_sets_levels_and_properties() -> None:
    config = PackConfig.parse(
        {
            "aws-sqs-encrypted": "disabled",
            "karpenter-spot-beside-on-demand": {"enforcementLevel": "advisory"},
            "keda-scaledobject-max-replicas": {"maxReplicas": 10},
        }
    )
    graph = [*broken_aws_graph(), f.scaled_object()]
    found = {(v.policy, v.level) for v in evaluate(graph, config)}
    assert found == {
        ("karpenter-spot-beside-on-demand", EnforcementLevel.ADVISORY),
        ("keda-scaledobject-max-replicas", EnforcementLevel.MANDATORY),
    }


def test_pack_config_all_and_remediate_levels() -> None:
    everything = PackConfig.parse({"all": "advisory", "aws-sqs-encrypted": "remediate"})
    levels = {v.policy: v.level for v in evaluate(broken_aws_graph(), everything)}
    # A remediate-level violation that reached the report was not fixed: the engine fails it.
    assert levels == {
        "aws-sqs-encrypted": EnforcementLevel.MANDATORY,
        "karpenter-spot-beside-on-demand": EnforcementLevel.ADVISORY,
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"no-such-rule": "advisory"}, "no-such-rule: no such policy (known: aws-sqs-encrypted,"),
        (
            {"aws-sqs-encrypted": "loud"},
            "aws-sqs-encrypted: enforcementLevel: 'loud' is not one of",
        ),
        ({"all": "loud"}, "all: 'loud' is not one of advisory, mandatory, remediate, disabled"),
        ({"karpenter-nodepool-limits": {"maxCpu": "many"}}, "maxCpu: 'many' is not of type"),
        (
            {"karpenter-nodepool-limits": {"maxCPU": 8}},
            "'maxCPU' was unexpected); allowed: maxCpu, maxMemoryGi, enforcementLevel",
        ),
        ({"azure-storage-min-tls": {"minimumTlsVersion": "TLS1_9"}}, "'TLS1_9' is not one of"),
    ],
)
def test_pack_config_rejects_what_the_cli_rejects(raw: dict, expected: str) -> None:
    with pytest.raises(PackConfigError, match="invalid policy pack config") as error:
        PackConfig.parse(raw)
    assert expected in str(error.value)


@dataclass
class FakeRun:
    resources: list[f.Rec]
    outputs: dict = field(default_factory=dict)


GRAPHS = {"aws": f.aws_graph, "dev": broken_aws_graph}


def aws_preview_graph() -> list[f.Rec]:
    """A first preview of the compliant stand-in: its new topic's key ARN is unknown."""
    topic = f.topic().with_inputs(kmsMasterKeyId=UNKNOWN_STRING_VALUE)
    return [*f.aws_graph(), topic, f.topic_policy(topic)]


PREVIEW_GRAPHS = {"aws": aws_preview_graph}  # the others: as with known values


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict | None, bool]]:
    """Stand in for stacks.offline: aws is compliant, dev is broken; record each call."""
    calls: list[tuple[str, dict | None, bool]] = []

    def run_stack(stack: str, overrides: dict | None = None, *, preview: bool = False) -> FakeRun:
        calls.append((stack, overrides, preview))
        graph = PREVIEW_GRAPHS.get(stack, GRAPHS[stack]) if preview else GRAPHS[stack]
        return FakeRun(graph())

    fake = types.ModuleType("stacks.offline")
    fake.run_stack = run_stack  # type: ignore[attr-defined]
    fake.ProgramError = ProgramError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "stacks.offline", fake)
    return calls


def test_command_exit_codes_and_overrides(recorded, capsys) -> None:
    assert offline.main(["--stack", "aws", "--override", "maxReplicas=500", "--mode", "known"]) == 0
    assert "✅ edw-policy@v0.1.0" in capsys.readouterr().out
    assert offline.main(["--stack", "dev", "--mode", "known"]) == 1
    assert "[mandatory]  aws-sqs-encrypted" in capsys.readouterr().out
    assert recorded == [("aws", {"edw:maxReplicas": "500"}, False), ("dev", None, False)]


def test_command_checks_known_values_then_a_first_preview(recorded, capsys) -> None:
    assert offline.main(["--stack", "aws"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert recorded == [("aws", None, False), ("aws", None, True)]
    known, preview = (i for i, line in enumerate(out) if line == "Policies:")
    assert out[known + 1] == (
        "    ✅ edw-policy@v0.1.0 (local: policy, stack aws, every value known, as `pulumi up` "
        "checks it)"
    )
    # The new topic's key ARN is unknown, yet set: encrypted, no violation.
    assert out[preview + 1] == (
        "    ✅ edw-policy@v0.1.0 (local: policy, stack aws, first preview, computed values "
        "unknown)"
    )
    assert out[-1] == (
        "0 mandatory and 0 advisory policy violation(s) in aws (first preview, computed values "
        "unknown)"
    )


def test_command_fails_when_only_the_preview_breaks_a_rule(recorded, monkeypatch, capsys) -> None:
    # A rule that read an unknown as unset would fail a compliant first preview like this.
    monkeypatch.setitem(PREVIEW_GRAPHS, "aws", broken_aws_graph)
    assert offline.main(["--stack", "aws"]) == 1
    assert "[mandatory]  aws-sqs-encrypted" in capsys.readouterr().out
    assert offline.main(["--stack", "aws", "--mode", "known"]) == 0


def test_command_reports_a_program_that_refuses_its_config(capsys) -> None:
    assert offline.main(["--stack", "aws", "--override", "spotCpuLimit=0"]) == 2
    error = capsys.readouterr().err
    assert "error: the aws program failed: ConfigError" in error
    assert "edw:spotCpuLimit must be between 1 and 10000; got 0" in error


def test_command_takes_a_pack_config_file(recorded, tmp_path, capsys) -> None:
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps({"all": "advisory"}))
    assert offline.main(["--stack", "dev", "--config", str(config)]) == 0
    assert "0 mandatory and 2 advisory" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "content", "expected"),
    [
        (["--config", "{path}"], "[]", "must be a JSON object"),
        (["--config", "{path}"], "{", "cannot read policy pack config"),
        (["--config", "{path}"], '{"nope": "advisory"}', "nope: no such policy"),
        (["--override", "maxReplicas"], "", "--override must look like key=value"),
    ],
)
def test_command_rejects_bad_input_before_running(
    recorded, tmp_path, capsys, *, args: list[str], content: str, expected: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    argv = ["--stack", "aws", *(a.format(path=path) for a in args)]
    assert offline.main(argv) == 2
    assert expected in capsys.readouterr().err
    assert recorded == []


def test_pack_version_matches_pulumipolicy_yaml() -> None:
    manifest = yaml.safe_load((REPO / "policy" / "PulumiPolicy.yaml").read_text())
    assert manifest["version"] == offline.PACK_VERSION
    assert manifest["runtime"]["name"] == "python"


def test_values_unknown_in_preview_make_a_rule_inconclusive_not_a_crash() -> None:
    # A DLQ's ARN is computed, so a new work queue's redrivePolicy is unknown in a first preview.
    work = f.work_queue(f.dlq()).with_inputs(redrivePolicy=UNKNOWN_STRING_VALUE)
    alarms = [
        f.alarm("depth", "ApproximateNumberOfMessagesVisible", f.dlq()),
        f.alarm("age", "ApproximateAgeOfOldestMessage", work),
    ]
    graph = [f.dlq(), work, f.queue_policy(work), f.queue_policy(f.dlq()), *alarms]
    violations = evaluate(graph)
    assert [(v.policy, v.level, v.message) for v in violations] == [
        (
            "aws-sqs-redrive-to-dlq",
            EnforcementLevel.ADVISORY,
            "can't run policy 'aws-sqs-redrive-to-dlq' during preview: "
            "string value at .redrivePolicy can't be known during preview",
        )
    ]


def test_stack_rules_stay_conclusive_when_only_some_values_are_unknown() -> None:
    # The provider computes a queue's inline `policy`; the QueuePolicy's deny is known.
    queue = f.work_queue(f.dlq()).with_inputs(policy=UNKNOWN_STRING_VALUE)
    azure = [
        f.azure_queue(n).with_inputs(accountName=UNKNOWN_STRING_VALUE)
        for n in ("edw-dev-work", "edw-dev-work-poison")
    ]
    alarms = [
        f.alarm("depth", "ApproximateNumberOfMessagesVisible", f.dlq()),
        f.alarm("age", "ApproximateAgeOfOldestMessage", queue),
    ]
    graph = [queue, f.queue_policy(queue), f.dlq(), f.queue_policy(f.dlq()), *alarms, *azure]
    assert [v.policy for v in evaluate(graph)] == []


def test_stack_rule_is_inconclusive_while_the_only_policy_is_unknown() -> None:
    queue = f.work_queue(f.dlq())
    pending = f.queue_policy(queue).with_inputs(policy=UNKNOWN_STRING_VALUE).depends_on(queue)
    found = [
        (v.level, v.message)
        for v in evaluate([queue, pending, f.dlq(), f.queue_policy(f.dlq())])
        if v.policy == "aws-sqs-deny-insecure-transport"
    ]
    assert found == [
        (
            EnforcementLevel.ADVISORY,
            "can't run policy 'aws-sqs-deny-insecure-transport' during preview: "
            "string value at .edw-aws-work.policy can't be known during preview",
        )
    ]


def test_messages_fall_back_to_the_logical_name_when_the_physical_one_is_unknown() -> None:
    table = f.table().with_inputs(name=UNKNOWN_STRING_VALUE, pointInTimeRecovery=None)
    [violation] = evaluate([table])
    assert violation.message == "table 'edw-aws-results' has point-in-time recovery off"


def test_stack_rules_see_outputs_laid_over_inputs() -> None:
    # A mock that returns only the generated name must not lose the input namespace.
    scaled, auth = f.scaled_object(), f.trigger_auth()
    auth.outputs = {"metadata": {"name": "consumer-auth"}, "id": "edw/consumer-auth"}
    assert [v for v in evaluate([scaled, auth]) if v.policy.startswith("keda-trigger")] == []
    auth.outputs = {"metadata": {"name": "consumer-auth-x1y2"}}
    [finding] = [v for v in evaluate([scaled, auth]) if v.policy.startswith("keda-trigger")]
    assert "refers to TriggerAuthentication 'consumer-auth'" in finding.message


def test_each_stack_has_a_valid_pack_config() -> None:
    stacks = {p.name.split(".")[1] for p in REPO.glob("Pulumi.*.yaml")}
    assert stacks == set(offline.STACKS)
    for stack in stacks:
        PackConfig.load(offline.STACK_CONFIG_DIR / f"{stack}.json")


def test_command_applies_the_stacks_pack_config_by_default(
    recorded, monkeypatch, tmp_path, capsys
) -> None:
    # The lab stack keeps AKS local accounts on: its pack config waives the rule to advisory.
    lab = f.managed_cluster().with_inputs(disableLocalAccounts=False)
    monkeypatch.setitem(GRAPHS, "dev", lambda: [lab])
    assert offline.main(["--stack", "dev"]) == 0
    assert "[advisory]  azure-aks-local-accounts-disabled" in capsys.readouterr().out
    strict = tmp_path / "strict.json"
    strict.write_text("{}")
    assert offline.main(["--stack", "dev", "--config", str(strict)]) == 1
    assert "[mandatory]  azure-aks-local-accounts-disabled" in capsys.readouterr().out
