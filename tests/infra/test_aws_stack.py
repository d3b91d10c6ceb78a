"""The `aws` stack through the mocks: values the program sends and how resources are wired."""

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from app import aws as app_aws
from bench.emulators import DLQ_MAX_MESSAGE_BYTES, WORK_QUEUE_MAX_MESSAGE_BYTES
from components.aws.cluster import CLUSTER_ADMIN_POLICY, PREVIEW_GROUP
from components.versions import (
    AL2023_AMI_ALIAS,
    COREDNS_ADDON,
    KARPENTER_CHART,
    KEDA_CHART,
    KUBE_PROXY_ADDON,
)
from stacks.offline import ACCOUNT, ProgramError, RecordedResource, StackRun, run_stack
from tests.reference_data import karpenter_template

SQS = "aws:sqs/queue:Queue"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def policy_of(run: StackRun, role_name: str) -> dict[str, Any]:
    policies = [
        r
        for r in run.of_type(ROLE_POLICY)
        if r.inputs["role"] == run.one(ROLE, role_name).outputs["name"]
    ]
    assert len(policies) == 1
    return json.loads(policies[0].inputs["policy"])


def trust_of(run: StackRun, role_name: str) -> dict[str, Any]:
    return json.loads(run.one(ROLE, role_name).inputs["assumeRolePolicy"])


def statements_by_sid(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def container(run: StackRun) -> dict[str, Any]:
    spec = run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    return only


def env_of(run: StackRun) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(run)["env"]}


# --- queue and table --------------------------------------------------------------------------


def test_work_queue_redrives_to_the_dlq_with_configured_receive_count(aws_run: StackRun):
    queue = aws_run.one(SQS, "work-queue")
    dlq = aws_run.one(SQS, "work-dlq")
    redrive = json.loads(queue.inputs["redrivePolicy"])
    assert redrive == {"deadLetterTargetArn": dlq.outputs["arn"], "maxReceiveCount": 5}
    assert dlq.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    assert "redrivePolicy" not in dlq.inputs


def test_work_queue_is_encrypted_long_polled_and_consistent_with_the_consumer(aws_run: StackRun):
    queue = aws_run.one(SQS, "work-queue")
    assert queue.inputs["sqsManagedSseEnabled"] is True
    assert queue.inputs["receiveWaitTimeSeconds"] == 20
    assert queue.inputs["visibilityTimeoutSeconds"] == 120
    grace = aws_run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    assert grace < queue.inputs["visibilityTimeoutSeconds"]
    assert env_of(aws_run)["EDW_VISIBILITY_TIMEOUT_SECONDS"] == "120"


def test_any_message_the_work_queue_takes_fits_the_dlq_with_its_reason(aws_run: StackRun):
    """SQS counts message attributes toward the size limit: with equal limits (the provider's
    256 KiB default on both, until now) a body at the limit could never be dead-lettered with
    its reason attribute."""
    queue = aws_run.one(SQS, "work-queue").inputs["maxMessageSize"]
    dlq = aws_run.one(SQS, "work-dlq").inputs["maxMessageSize"]
    assert (queue, dlq) == (262_144, 1_048_576)
    # The emulators' queues (bench/emulators.py) have the stack's limits.
    assert (queue, dlq) == (WORK_QUEUE_MAX_MESSAGE_BYTES, DLQ_MAX_MESSAGE_BYTES)
    assert queue + app_aws.DEAD_LETTER_RESERVE_BYTES <= dlq
    reason = "é" * app_aws.MAX_REASON_CHARS  # the longest reason, in bytes
    entry = {
        "MessageBody": "x" * int(queue),
        "MessageAttributes": {
            app_aws.REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason}
        },
    }
    assert app_aws._entry_bytes(entry) <= dlq


def test_dlq_accepts_redrive_only_from_the_work_queue(aws_run: StackRun):
    allow = aws_run.one("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy")
    assert allow.inputs["queueUrl"] == aws_run.one(SQS, "work-dlq").outputs["url"]
    assert json.loads(allow.inputs["redriveAllowPolicy"]) == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [aws_run.one(SQS, "work-queue").outputs["arn"]],
    }


@pytest.mark.parametrize("queue_name", ["work-queue", "work-dlq", "karpenter-interruption"])
def test_every_queue_denies_non_tls_access(aws_run: StackRun, queue_name: str):
    queue = aws_run.one(SQS, queue_name)
    (policy,) = [
        p
        for p in aws_run.of_type("aws:sqs/queuePolicy:QueuePolicy")
        if p.inputs["queueUrl"] == queue.outputs["url"]
    ]
    deny = statements_by_sid(json.loads(policy.inputs["policy"]))["DenyInsecureTransport"]
    assert deny["Effect"] == "Deny"
    assert deny["Resource"] == queue.outputs["arn"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_results_table_is_keyed_by_event_id_with_pitr_and_encryption(aws_run: StackRun):
    table = aws_run.one("aws:dynamodb/table:Table").inputs
    assert table["billingMode"] == "PAY_PER_REQUEST"
    assert table["hashKey"] == "id"
    assert table["attributes"] == [{"name": "id", "type": "S"}]
    assert "rangeKey" not in table
    assert table["pointInTimeRecovery"] == {"enabled": True}
    assert table["serverSideEncryption"] == {"enabled": True}
    assert table["deletionProtectionEnabled"] is False
    assert "ttl" not in table


def test_table_ttl_and_deletion_protection_follow_config():
    run = run_stack("aws", {"resultTtlDays": "30", "deletionProtection": "true"})
    table = run.one("aws:dynamodb/table:Table").inputs
    # The consumer stamps rows with the attribute the table expires them by.
    assert table["ttl"] == {"attributeName": app_aws.TTL_ATTRIBUTE, "enabled": True}
    assert env_of(run)["EDW_RESULT_TTL_DAYS"] == "30"
    assert table["deletionProtectionEnabled"] is True


# --- network and cluster ----------------------------------------------------------------------


def test_zones_are_standard_ones_eks_supports_chosen_by_zone_id(aws_run: StackRun):
    [(_, args)] = [
        (t, a)
        for t, a in aws_run.invokes
        if t == "aws:index/getAvailabilityZones:getAvailabilityZones"
    ]
    # No state filter: an impaired zone stays in the list (test_zones_never_move_...).
    assert "state" not in args
    assert args["excludeZoneIds"] == ["use1-az3", "usw1-az2", "cac1-az3"]
    assert args["filters"] == [
        {"name": "zone-type", "values": ["availability-zone"]},
        {"name": "opt-in-status", "values": ["opt-in-not-required"]},
    ]


def test_zones_never_move_when_one_is_impaired(aws_run: StackRun):
    """With state="available", an impaired us-east-1b dropped out and the third subnet moved
    from us-east-1d to us-east-1e (subnet replacements planned on the next `up`)."""
    impaired = run_stack("aws", {"offline:impairedZones": '["us-east-1b"]'})

    def zones(run: StackRun) -> list[str]:
        return [
            run.one("aws:ec2/subnet:Subnet", f"network-private-{i}").inputs["availabilityZone"]
            for i in range(3)
        ]

    assert zones(impaired) == zones(aws_run) == ["us-east-1a", "us-east-1b", "us-east-1d"]


def test_private_subnets_are_tagged_for_karpenter_and_routed_through_nat(aws_run: StackRun):
    subnets = {r.name: r for r in aws_run.of_type("aws:ec2/subnet:Subnet")}
    private = [s for n, s in subnets.items() if "private" in n]
    assert len(private) == 3
    # us-east-1c is use1-az3 here, where EKS refuses cluster subnets; the Local Zone is opt-in.
    assert {s.inputs["availabilityZone"] for s in private} == {
        "us-east-1a",
        "us-east-1b",
        "us-east-1d",
    }
    for subnet in private:
        assert subnet.inputs["tags"]["karpenter.sh/discovery"] == "edw-aws"
        assert subnet.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1"
        assert subnet.inputs.get("mapPublicIpOnLaunch") in (None, False)
    nat = aws_run.one("aws:ec2/natGateway:NatGateway")
    assert nat.id.startswith("nat-")
    assert nat.inputs["subnetId"] == subnets["network-public-0"].id
    private_tables = [
        r for r in aws_run.of_type("aws:ec2/routeTable:RouteTable") if "private" in r.name
    ]
    assert len(private_tables) == 3
    for rt in private_tables:
        assert rt.inputs["routes"] == [{"cidrBlock": "0.0.0.0/0", "natGatewayId": nat.id}]


def test_nat_gateway_per_az_when_configured():
    run = run_stack("aws", {"natGatewayPerAz": "true"})
    nats = run.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 3
    routed = {
        r.inputs["routes"][0]["natGatewayId"]
        for r in run.of_type("aws:ec2/routeTable:RouteTable")
        if "private" in r.name
    }
    assert routed == {n.id for n in nats}


def test_cluster_uses_api_auth_oidc_logging_kms_and_restricted_endpoint(aws_run: StackRun):
    cluster = aws_run.one("eks:index:Cluster").inputs
    key = aws_run.one("aws:kms/key:Key", "cluster-secrets-key")
    assert cluster["name"] == "edw-aws"
    assert cluster["authenticationMode"] == "API"
    assert cluster["createOidcProvider"] is True
    assert cluster["encryptionConfigKeyArn"] == key.outputs["arn"]
    assert key.inputs["enableKeyRotation"] is True
    assert set(cluster["enabledClusterLogTypes"]) == {
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    }
    assert cluster["publicAccessCidrs"] == ["0.0.0.0/0"]
    assert cluster["endpointPrivateAccess"] is True
    assert cluster["skipDefaultNodeGroup"] is True
    assert cluster["version"] == "1.34"
    # Registrations complete concurrently; the cluster lists the subnets in AZ order.
    private = sorted(
        (s for s in aws_run.of_type("aws:ec2/subnet:Subnet") if "private" in s.name),
        key=lambda s: s.name,
    )
    assert cluster["privateSubnetIds"] == [s.id for s in private]
    assert cluster["vpcId"] == aws_run.one("aws:ec2/vpc:Vpc").id


ENTRY = "aws:eks/accessEntry:AccessEntry"
ASSOCIATION = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
CREATOR = f"arn:aws:iam::{ACCOUNT}:user/deployer"  # the mocks' caller (offline:callerArn)
CI_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ci/deploy"
CI_CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/GitHubActions-42"
PREVIEW_ROLE = f"arn:aws:iam::{ACCOUNT}:role/pr-preview"


def entries(run: StackRun) -> dict[str, RecordedResource]:
    """The program's access entries for people and pipelines (not the node role's)."""
    return {
        e.inputs["principalArn"]: e for e in run.of_type(ENTRY) if e.inputs["type"] == "STANDARD"
    }


def admin_policies(run: StackRun) -> dict[str, RecordedResource]:
    return {a.inputs["principalArn"]: a for a in run.of_type(ASSOCIATION)}


def test_cluster_admins_get_access_entries_with_the_admin_policy():
    assert CLUSTER_ADMIN_POLICY.endswith(":cluster-access-policy/AmazonEKSClusterAdminPolicy")
    run = run_stack("aws", {"clusterAdminArns": json.dumps([CI_ROLE])})
    entry = entries(run)[CI_ROLE]
    assert entry.inputs["clusterName"] == "edw-aws"
    assert "kubernetesGroups" not in entry.inputs
    # EKS allows one entry per principal: a replacement must delete the old one first.
    assert entry.delete_before_replace is True
    policy = admin_policies(run)[CI_ROLE].inputs
    assert policy["policyArn"] == CLUSTER_ADMIN_POLICY
    assert policy["accessScope"] == {"type": "cluster"}
    assert run.depends_on(admin_policies(run)[CI_ROLE], entry)
    # pulumi-eks made these no longer: the program declares them, none through the component.
    assert "accessEntries" not in run.one("eks:index:Cluster").inputs


def test_an_access_entry_is_named_by_its_principal_not_its_position():
    """Removing or reordering an ARN leaves the others' URNs alone: before, entry `admin-1`
    became `admin-0` for the next principal, a new entry created before the old one went (409)."""
    a, b = f"arn:aws:iam::{ACCOUNT}:role/a", f"arn:aws:iam::{ACCOUNT}:role/b"
    both = run_stack("aws", {"clusterAdminArns": json.dumps([a, b])})
    reordered = run_stack("aws", {"clusterAdminArns": json.dumps([b, a])})
    only_b = run_stack("aws", {"clusterAdminArns": json.dumps([b])})
    for run in (reordered, only_b):
        assert entries(run)[b].urn == entries(both)[b].urn
        assert admin_policies(run)[b].urn == admin_policies(both)[b].urn
    assert entries(both)[a].urn != entries(both)[b].urn


def test_existing_admin_entries_are_renamed_not_recreated():
    """An entry of an earlier release was pulumi-eks's child `cluster-eks-admin-<i>`: the alias
    names that exact URN, so the move is a rename (no second entry for the principal)."""
    run = run_stack("aws", {"clusterAdminArns": json.dumps([CI_ROLE, PREVIEW_ROLE])})
    old = (
        "urn:pulumi:aws::edw::edw:aws:EksCluster$eks:index:Cluster$aws:eks/accessEntry:AccessEntry"
    )
    for i, arn in enumerate((CI_ROLE, PREVIEW_ROLE)):
        assert entries(run)[arn].aliases[0] == f"{old}::cluster-eks-admin-{i}"
        assert admin_policies(run)[arn].aliases[0] == (
            f"{old}$aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
            f"::cluster-eks-admin-{i}-cluster-admin"
        )
    # An ARN spelled as its principal's key had no other name since.
    assert len(entries(run)[PREVIEW_ROLE].aliases) == 1


SPELLINGS = (
    f"arn:aws:iam::{ACCOUNT}:role/ci/Deploy",
    f"arn:aws:iam::{ACCOUNT}:role/deploy",
    f"arn:aws:iam::{ACCOUNT}:role/CI/DEPLOY",
)


@pytest.mark.parametrize("setting", ["clusterAdminArns", "previewArns"])
def test_an_access_entry_is_named_by_its_principal_not_its_spelling(setting: str) -> None:
    """One role spelled with or without its path, in any case, is one principal to EKS (one
    entry per principal, keyed by its id): before, each spelling named another resource, so
    respelling the ARN created a second entry for the principal (409) before deleting the first.
    Now the name follows the principal, and a respelling changes nothing (not a replacement that
    would cut the identity off mid-`up`)."""
    runs = [run_stack("aws", {setting: json.dumps([arn])}) for arn in SPELLINGS]
    urns = {entries(run)[arn].urn for run, arn in zip(runs, SPELLINGS, strict=True)}
    assert len(urns) == 1
    for run, arn in zip(runs, SPELLINGS, strict=True):
        entry = entries(run)[arn]
        assert entry.inputs["principalArn"] == arn  # EKS is sent the ARN as configured
        assert entry.ignore_changes == ("principalArn",)
        if setting == "clusterAdminArns":
            policy = admin_policies(run)[arn]
            assert policy.urn.endswith(f"::{entry.name}-cluster-admin")
            assert policy.ignore_changes == ("principalArn",)


def test_an_entry_named_by_its_spelling_is_renamed_not_recreated() -> None:
    """The last release named an entry by a digest of its ARN as spelled: the alias names that
    exact URN, for the entry and its policy association."""
    arn = SPELLINGS[0]
    run = run_stack("aws", {"clusterAdminArns": json.dumps([arn])})
    spelled = f"cluster-access-{hashlib.sha256(arn.encode()).hexdigest()[:10]}"
    parent = "urn:pulumi:aws::edw::edw:aws:EksCluster$"
    assert f"{parent}{ENTRY}::{spelled}" in entries(run)[arn].aliases
    assert f"{parent}{ASSOCIATION}::{spelled}-cluster-admin" in admin_policies(run)[arn].aliases


UPGRADE_NOTES = "## Upgrading an existing stack (AWS)"
# What each resource named by a list position in earlier releases was listed in.
POSITIONAL = {
    ENTRY: "edw:clusterAdminArns",
    ASSOCIATION: "edw:clusterAdminArns",
    "aws:ec2/tag:Tag": "edw:existingPrivateSubnetIds",
}


def upgrade_notes() -> str:
    page = (Path(__file__).resolve().parents[2] / "docs" / "aws.md").read_text()
    return page.split(UPGRADE_NOTES, 1)[1].split("\n## ", 1)[0]


def test_docs_say_a_newly_listed_identity_cannot_run_the_up_that_lists_it():
    """Nothing Kubernetes waits for the listed identities' entries (nor could a preview, which
    reads the cluster before any entry exists): the `up` that adds an identity must run as one
    that already has access. Before, docs/aws.md told you to list the CI roles and stopped."""
    run = run_stack(
        "aws",
        {"clusterAdminArns": json.dumps([CI_ROLE]), "previewArns": json.dumps([PREVIEW_ROLE])},
    )
    namespace = run.one("kubernetes:core/v1:Namespace")
    for entry in entries(run).values():
        assert not run.depends_on(namespace, entry)
    page = (Path(__file__).resolve().parents[2] / "docs" / "aws.md").read_text()
    identities = page.split("## Who can reach the cluster (identities)", 1)[1].split("\n## ")[0]
    assert "**A newly listed identity cannot run the `up` that lists it.**" in identities


def test_upgrade_notes_forbid_reordering_every_list_whose_resources_move_by_alias():
    """An alias names an earlier release's position-keyed resource: reordering the list in the
    `up` that follows the alias to another principal's or subnet's (409, or a deleted discovery
    tag). Every such list must be in the upgrade notes' "keep as they are"; before, only the
    admin list was warned about."""
    run = run_stack(
        "aws",
        {
            "clusterAdminArns": json.dumps([CI_ROLE]),
            "existingVpcId": "vpc-0abc",
            "existingPrivateSubnetIds": '["subnet-1", "subnet-2"]',
        },
    )
    positional = {r.type for r in run.resources for a in r.aliases if re.search(r"-\d+(-|$)", a)}
    assert positional == set(POSITIONAL)  # a new position alias needs its own warning
    notes = upgrade_notes()
    keep = notes.split("**Keep ", 1)[1].split("\n2. ", 1)[0]
    for setting in set(POSITIONAL.values()):
        assert f"`{setting}`" in keep, setting


def test_upgrade_notes_announce_the_node_replacement_the_new_template_causes(aws_run: StackRun):
    """The taint and terminationGracePeriod are node-template fields: Karpenter drifts every
    node made from the old template (Karpenter v1.14 docs, concepts/disruption.md, "Drift")."""
    pools = aws_run.of_type("kubernetes:karpenter.sh/v1:NodePool")
    assert len(pools) == 2
    for pool in pools:
        template = pool.inputs["spec"]["template"]["spec"]
        assert template["taints"]
        assert template["terminationGracePeriod"]
    notes = upgrade_notes()
    assert "**Every consumer node is replaced once.**" in notes
    assert "`terminationGracePeriod`" in notes
    assert "taint" in notes


def test_the_creating_up_leaves_the_creators_entry_to_eks_and_remembers_it():
    """The first `up` (no cluster yet): EKS makes its caller admin, so an entry for it in
    clusterAdminArns is not declared again (409), and the cluster's tag keeps who it was."""
    run = run_stack("aws", {"clusterAdminArns": json.dumps([CREATOR, CI_ROLE])})
    assert set(entries(run)) == {CI_ROLE}
    assert run.one("eks:index:Cluster").inputs["clusterTags"] == {"edw/creator": CREATOR}
    assert run.resources  # and, unlike before, the `up` goes ahead


def test_a_later_up_by_a_listed_ci_role_keeps_every_listed_identity():
    """The laptop created the cluster; CI's deploy role, listed, runs the next `up`. Before, the
    program refused any listed caller, so every CI `up` stopped."""
    run = run_stack(
        "aws",
        {
            "clusterAdminArns": json.dumps([CREATOR, CI_ROLE]),
            "previewArns": json.dumps([PREVIEW_ROLE]),
            "offline:callerArn": CI_CALLER,
            "offline:existingCluster": json.dumps({"edw/creator": CREATOR}),
        },
    )
    assert set(entries(run)) == {CI_ROLE, PREVIEW_ROLE}  # the creator's is EKS's
    assert run.one("eks:index:Cluster").inputs["clusterTags"] == {"edw/creator": CREATOR}
    # ... and when CI created it, CI's own (assumed-role) identity is the one left alone.
    by_ci = run_stack(
        "aws",
        {
            "clusterAdminArns": json.dumps([CREATOR, CI_ROLE]),
            "offline:callerArn": CREATOR,
            "offline:existingCluster": json.dumps(
                {"edw/creator": f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy"}
            ),
        },
    )
    assert set(entries(by_ci)) == {CREATOR}


def test_a_cluster_that_ci_creates_remembers_its_role_without_the_session():
    run = run_stack(
        "aws", {"clusterAdminArns": json.dumps([CI_ROLE]), "offline:callerArn": CI_CALLER}
    )
    assert entries(run) == {}
    assert run.one("eks:index:Cluster").inputs["clusterTags"] == {
        "edw/creator": f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy"
    }


def test_a_hand_set_creator_tag_holding_the_role_arn_is_the_listed_role():
    """docs/aws.md's migration for a cluster made before the tag: tag it with the creator's role
    ARN. Before, a role ARN in the tag never matched the same ARN in the list, so the `up` still
    declared a second entry for the creator (409)."""
    for tag in (CI_ROLE, f"arn:aws:iam::{ACCOUNT}:role/deploy", CI_CALLER):
        run = run_stack(
            "aws",
            {
                "clusterAdminArns": json.dumps([CI_ROLE, CREATOR]),
                "offline:callerArn": CI_CALLER,
                "offline:existingCluster": json.dumps({"edw/creator": tag}),
            },
        )
        assert set(entries(run)) == {CREATOR}, tag


def test_a_creator_tag_that_names_no_principal_is_refused():
    with pytest.raises(ProgramError) as info:
        run_stack(
            "aws",
            {
                "clusterAdminArns": json.dumps([CI_ROLE]),
                "offline:existingCluster": json.dumps({"edw/creator": "deploy"}),
            },
        )
    assert "has the tag edw/creator='deploy', which names no IAM role or user" in str(info.value)
    assert info.value.resources == []


def test_a_cluster_from_before_the_creator_tag_keeps_every_listed_entry():
    """Its creator is unknown (earlier releases never let it be listed): every listed principal
    keeps its entry, and no tag is invented."""
    run = run_stack(
        "aws",
        {"clusterAdminArns": json.dumps([CI_ROLE]), "offline:existingCluster": "{}"},
    )
    assert set(entries(run)) == {CI_ROLE}
    assert "clusterTags" not in run.one("eks:index:Cluster").inputs


def test_previewers_get_only_the_preview_group():
    run = run_stack("aws", {"previewArns": json.dumps([PREVIEW_ROLE])})
    entry = entries(run)[PREVIEW_ROLE].inputs
    assert entry["kubernetesGroups"] == [PREVIEW_GROUP]
    assert PREVIEW_ROLE not in admin_policies(run)


def test_api_cidrs_come_from_config():
    run = run_stack("aws", {"apiAllowedCidrs": '["198.51.100.0/24"]'})
    assert run.one("eks:index:Cluster").inputs["publicAccessCidrs"] == ["198.51.100.0/24"]


def test_system_node_group_is_on_demand_tainted_and_labelled(aws_run: StackRun):
    group = aws_run.one("aws:eks/nodeGroup:NodeGroup").inputs
    assert group["clusterName"] == "edw-aws"
    assert group["capacityType"] == "ON_DEMAND"
    assert group["instanceTypes"] == ["m6i.large"]
    assert group["scalingConfig"] == {"desiredSize": 2, "minSize": 2, "maxSize": 3}
    assert group["labels"] == {"edw/pool": "system"}
    assert group["taints"] == [
        {"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}
    ]


def test_coredns_is_installed_once_system_nodes_exist(aws_run: StackRun):
    assert aws_run.one("eks:index:Cluster").inputs["corednsAddonOptions"]["enabled"] is False
    addon = aws_run.one("aws:eks/addon:Addon")
    assert addon.inputs["addonName"] == "coredns"
    assert addon.inputs["clusterName"] == "edw-aws"
    assert aws_run.depends_on(addon, aws_run.one("aws:eks/nodeGroup:NodeGroup"))


def test_dns_outlives_karpenter_on_destroy(aws_run: StackRun):
    """Karpenter still drains nodes while the stack goes: DNS goes after it (the controller
    depends on the add-on) and is kept by EKS when the add-on is deleted (preserve), as
    pulumi-eks keeps its own CoreDNS."""
    addon = aws_run.one("aws:eks/addon:Addon")
    assert addon.inputs["preserve"] is True
    assert aws_run.depends_on(aws_run.one(RELEASE, "karpenter-controller"), addon)


@pytest.mark.parametrize("version", ["1.33", "1.34", "1.35"])
def test_add_ons_are_pinned_for_the_clusters_kubernetes_version(version: str):
    run = run_stack("aws", {"kubernetesVersion": version})
    assert run.one("aws:eks/addon:Addon").inputs["addonVersion"] == COREDNS_ADDON[version]
    cluster = run.one("eks:index:Cluster").inputs
    assert cluster["version"] == version
    assert cluster["kubeProxyAddonOptions"]["version"] == KUBE_PROXY_ADDON[version]
    assert all("latest" not in v for v in (*COREDNS_ADDON.values(), *KUBE_PROXY_ADDON.values()))


def test_existing_vpc_is_used_and_only_tagged():
    run = run_stack(
        "aws",
        {"existingVpcId": "vpc-0abc", "existingPrivateSubnetIds": '["subnet-1", "subnet-2"]'},
    )
    assert run.of_type("aws:ec2/vpc:Vpc") == []
    assert run.of_type("aws:ec2/subnet:Subnet") == []
    tags = run.of_type("aws:ec2/tag:Tag")
    discovered = {
        t.inputs["resourceId"] for t in tags if t.inputs["key"] == "karpenter.sh/discovery"
    }
    assert {"subnet-1", "subnet-2"} <= discovered
    # Named by subnet: a reordered or shortened list leaves the other tags' URNs alone (before,
    # tag i moved to another subnet and deleting the old one removed a live tag).
    reordered = run_stack(
        "aws",
        {"existingVpcId": "vpc-0abc", "existingPrivateSubnetIds": '["subnet-2", "subnet-1"]'},
    )

    def urns(found: StackRun) -> dict[str, tuple[str, tuple[str, ...]]]:
        return {
            t.inputs["resourceId"]: (t.urn, t.aliases)
            for t in found.of_type("aws:ec2/tag:Tag")
            if t.name.startswith("network-discovery")
        }

    assert {k: u for k, (u, _) in urns(reordered).items()} == {
        k: u for k, (u, _) in urns(run).items()
    }
    # ... and the tags of earlier releases (network-discovery-<i>) are renamed, not recreated.
    assert urns(run)["subnet-1"][1] == (
        "urn:pulumi:aws::edw::edw:aws:EksNetwork$aws:ec2/tag:Tag::network-discovery-0",
    )
    cluster = run.one("eks:index:Cluster").inputs
    assert cluster["vpcId"] == "vpc-0abc"
    assert cluster["privateSubnetIds"] == ["subnet-1", "subnet-2"]


# --- identities -------------------------------------------------------------------------------


def test_consumer_role_trusts_only_its_service_account(aws_run: StackRun):
    cluster = aws_run.one("eks:index:Cluster").outputs
    (statement,) = trust_of(aws_run, "consumer-identity-role")["Statement"]
    assert statement["Principal"] == {"Federated": cluster["oidcProviderArn"]}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    issuer = cluster["oidcIssuer"]
    assert statement["Condition"] == {
        "StringEquals": {
            f"{issuer}:sub": "system:serviceaccount:edw:edw-consumer",
            f"{issuer}:aud": "sts.amazonaws.com",
        }
    }


def test_consumer_policy_names_exactly_the_queue_dlq_and_table(aws_run: StackRun):
    queue = aws_run.one(SQS, "work-queue").outputs["arn"]
    dlq = aws_run.one(SQS, "work-dlq").outputs["arn"]
    table = aws_run.one("aws:dynamodb/table:Table").outputs["arn"]
    by_sid = statements_by_sid(policy_of(aws_run, "consumer-identity-role"))
    assert by_sid["ConsumeWorkQueue"]["Resource"] == [queue]
    assert set(by_sid["ConsumeWorkQueue"]["Action"]) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    }
    # The breaker's fresh copies go back onto the work queue (SqsQueue.resend).
    assert by_sid["RequeueFreshCopies"]["Resource"] == [queue]
    assert by_sid["RequeueFreshCopies"]["Action"] == ["sqs:SendMessage"]
    assert by_sid["SetAsideToDeadLetter"]["Resource"] == [dlq]
    assert "sqs:SendMessage" in by_sid["SetAsideToDeadLetter"]["Action"]
    assert by_sid["WriteResults"]["Resource"] == [table]
    assert set(by_sid["WriteResults"]["Action"]) == {"dynamodb:PutItem", "dynamodb:BatchWriteItem"}


def test_no_policy_uses_wildcard_actions_or_wildcard_resources_where_arns_exist(
    aws_run: StackRun,
):
    # No resource-level permissions (pricing, the instance-profile list), or, for zonal shift,
    # scoped by a condition key as upstream Karpenter does.
    unscoped_ok = {"pricing:GetProducts", "iam:ListInstanceProfiles"}
    condition_scoped = {"arc-zonal-shift:GetManagedResource": "arc-zonal-shift:ResourceIdentifier"}
    for policy in aws_run.of_type(ROLE_POLICY):
        for s in json.loads(policy.inputs["policy"])["Statement"]:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            assert all("*" not in a for a in actions), (policy.name, actions)
            if "*" not in s["Resource"]:
                continue
            for action in actions:
                if action in condition_scoped:
                    assert condition_scoped[action] in s["Condition"]["StringEquals"]
                else:
                    assert action.startswith("ec2:Describe") or action in unscoped_ok, action


def test_service_account_carries_the_consumer_role(aws_run: StackRun):
    sa = aws_run.one("kubernetes:core/v1:ServiceAccount").inputs["metadata"]
    role = aws_run.one(ROLE, "consumer-identity-role").outputs["arn"]
    assert sa["name"] == "edw-consumer"
    assert sa["namespace"] == "edw"
    assert sa["annotations"] == {"eks.amazonaws.com/role-arn": role}


def test_keda_identity_may_only_read_the_work_queue_attributes(aws_run: StackRun):
    queue = aws_run.one(SQS, "work-queue").outputs["arn"]
    (statement,) = policy_of(aws_run, "keda-operator-role")["Statement"]
    assert statement["Action"] == ["sqs:GetQueueAttributes"]
    assert statement["Resource"] == [queue]
    trust = trust_of(aws_run, "keda-operator-role")["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:keda:keda-operator" in trust.values()
    values = aws_run.one(RELEASE, "keda-release").inputs["values"]
    role = aws_run.one(ROLE, "keda-operator-role").outputs["arn"]
    assert values["podIdentity"]["aws"]["irsa"] == {"enabled": True, "roleArn": role}


def test_keda_is_pinned_and_runs_on_system_nodes(aws_run: StackRun):
    release = aws_run.one(RELEASE, "keda-release").inputs
    assert release["chart"] == KEDA_CHART.chart
    assert release["version"] == KEDA_CHART.version
    assert release["repositoryOpts"] == {"repo": KEDA_CHART.repo}
    assert release["values"]["nodeSelector"] == {"edw/pool": "system"}
    assert release["values"]["tolerations"] == [{"key": "CriticalAddonsOnly", "operator": "Exists"}]


def test_keda_serves_its_scaler_metrics(aws_run: StackRun):
    """The chart defaults prometheus.operator.enabled to false (--enable-prometheus-metrics=false):
    no keda_scaler_metrics_value, so EdwNoProgress could never fire."""
    values = aws_run.one(RELEASE, "keda-release").inputs["values"]
    assert values["prometheus"]["operator"]["enabled"] is True


def test_keda_is_critical_redundant_and_drains_one_pod_at_a_time(aws_run: StackRun):
    values = aws_run.one(RELEASE, "keda-release").inputs["values"]
    assert values["priorityClassName"] == "system-cluster-critical"
    for component in ("operator", "metricsServer", "webhooks"):
        assert values[component]["replicaCount"] == 2  # two system nodes
    assert values["podDisruptionBudget"] == {
        key: {"maxUnavailable": 1} for key in ("operator", "metricServer", "webhooks")
    }
    spread = values["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert spread[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    single = run_stack("aws", {"systemNodeCount": "1"}).one(RELEASE, "keda-release")
    assert single.inputs["values"]["operator"]["replicaCount"] == 1


# --- Karpenter --------------------------------------------------------------------------------


def test_karpenter_controller_is_pinned_and_wired_to_the_cluster(aws_run: StackRun):
    release = aws_run.one(RELEASE, "karpenter-controller").inputs
    queue = aws_run.one(SQS, "karpenter-interruption").outputs["name"]
    role = aws_run.one(ROLE, "karpenter-controller-role").outputs["arn"]
    assert release["chart"] == KARPENTER_CHART.chart
    assert release["version"] == KARPENTER_CHART.version
    assert release["namespace"] == "kube-system"
    assert release["values"]["settings"] == {
        "clusterName": "edw-aws",
        "interruptionQueue": queue,
        "featureGates": {"spotToSpotConsolidation": True},
    }
    assert release["values"]["serviceAccount"]["annotations"] == {
        "eks.amazonaws.com/role-arn": role
    }
    assert release["values"]["nodeSelector"] == {"edw/pool": "system"}


def test_karpenter_crds_come_from_their_chart_at_the_controllers_version(aws_run: StackRun):
    """Helm installs a chart's crds/ once and never upgrades them: the karpenter-crd chart owns
    them (adopting the ones an earlier release installed) and the controller skips its own."""
    crds = aws_run.one(RELEASE, "karpenter-crds").inputs
    controller = aws_run.one(RELEASE, "karpenter-controller")
    assert crds["chart"] == "oci://public.ecr.aws/karpenter/karpenter-crd"
    assert crds["version"] == KARPENTER_CHART.version
    assert crds["namespace"] == "kube-system"
    assert crds["takeOwnership"] is True
    assert controller.inputs["skipCrds"] is True
    assert aws_run.depends_on(controller, aws_run.one(RELEASE, "karpenter-crds"))


def test_node_roles_have_upstreams_managed_policies(aws_run: StackRun):
    """Image pulls only (AmazonEC2ContainerRegistryPullOnly), as Karpenter's node role."""
    (node_role,) = [
        r["Properties"]["ManagedPolicyArns"]
        for r in karpenter_template()["Resources"].values()
        if r["Type"] == "AWS::IAM::Role" and "ManagedPolicyArns" in r["Properties"]
    ]
    upstream = {arn.rsplit("/", 1)[1] for arn in node_role}
    for role in ("karpenter-node", "cluster-system-node"):
        name = aws_run.one(ROLE, role).outputs["name"]
        attached = {
            a.inputs["policyArn"].rsplit("/", 1)[1]
            for a in aws_run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
            if a.inputs["role"] == name
        }
        assert attached == upstream
    assert "AmazonEC2ContainerRegistryPullOnly" in upstream


def test_karpenter_controller_policy_is_scoped_to_this_cluster(aws_run: StackRun):
    by_sid = statements_by_sid(policy_of(aws_run, "karpenter-controller-role"))
    node_role = aws_run.one(ROLE, "karpenter-node").outputs["arn"]
    queue = aws_run.one(SQS, "karpenter-interruption").outputs["arn"]
    assert by_sid["AllowPassingInstanceRole"]["Resource"] == [node_role]
    assert by_sid["AllowInterruptionQueueActions"]["Resource"] == [queue]
    assert by_sid["AllowAPIServerEndpointDiscovery"]["Resource"] == [
        f"arn:aws:eks:us-east-1:{ACCOUNT}:cluster/edw-aws"
    ]
    delete = by_sid["AllowScopedDeletion"]["Condition"]["StringEquals"]
    assert delete == {"aws:ResourceTag/kubernetes.io/cluster/edw-aws": "owned"}
    read = by_sid["AllowRegionalReadActions"]
    assert read["Condition"] == {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}


def test_interruption_queue_receives_upstreams_event_kinds_from_our_rules_only(aws_run: StackRun):
    queue = aws_run.one(SQS, "karpenter-interruption")
    rules = {r.name: r for r in aws_run.of_type("aws:cloudwatch/eventRule:EventRule")}
    patterns = {json.loads(r.inputs["eventPattern"])["detail-type"][0] for r in rules.values()}
    # Every rule of Karpenter v1.14.1's CloudFormation template, capacity reservations included.
    assert patterns == {
        rule["Properties"]["EventPattern"]["detail-type"][0]
        for rule in karpenter_template()["Resources"].values()
        if rule["Type"] == "AWS::Events::Rule"
    }
    assert "EC2 Capacity Reservation Instance Interruption Warning" in patterns
    targets = aws_run.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert {t.inputs["rule"] for t in targets} == {r.outputs["name"] for r in rules.values()}
    assert {t.inputs["arn"] for t in targets} == {queue.outputs["arn"]}
    policy = aws_run.one("aws:sqs/queuePolicy:QueuePolicy", "karpenter-interruption-policy")
    allow = statements_by_sid(json.loads(policy.inputs["policy"]))["AllowOurInterruptionRules"]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    # Exactly our rules' ARNs (as a set: the test sees rules in registration order, which
    # depends on when inputs resolve; the list's order means nothing to IAM).
    assert list(allow["Condition"]) == ["ArnEquals"]
    assert list(allow["Condition"]["ArnEquals"]) == ["aws:SourceArn"]
    condition = allow["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert sorted(condition) == sorted(r.outputs["arn"] for r in rules.values())


def test_node_role_has_an_ec2_linux_access_entry(aws_run: StackRun):
    entry = aws_run.one("aws:eks/accessEntry:AccessEntry").inputs
    assert entry["principalArn"] == aws_run.one(ROLE, "karpenter-node").outputs["arn"]
    assert entry["type"] == "EC2_LINUX"
    assert entry["clusterName"] == "edw-aws"


def test_cluster_security_group_is_tagged_for_discovery(aws_run: StackRun):
    tag = aws_run.one("aws:ec2/tag:Tag").inputs
    sg = aws_run.one("eks:index:Cluster").outputs["clusterSecurityGroupId"]
    assert tag == {"resourceId": sg, "key": "karpenter.sh/discovery", "value": "edw-aws"}


def test_ec2_node_class_uses_al2023_node_role_and_discovery_tags(aws_run: StackRun):
    (node_class,) = aws_run.custom_resources("EC2NodeClass")
    spec = node_class.inputs["spec"]
    assert spec["role"] == aws_run.one(ROLE, "karpenter-node").outputs["name"]
    assert spec["amiSelectorTerms"] == [{"alias": AL2023_AMI_ALIAS}]
    assert AL2023_AMI_ALIAS == "al2023@v20260724"  # pinned, never al2023@latest
    discovery = [{"tags": {"karpenter.sh/discovery": "edw-aws"}}]
    assert spec["subnetSelectorTerms"] == discovery
    assert spec["securityGroupSelectorTerms"] == discovery
    assert spec["metadataOptions"]["httpTokens"] == "required"


def pools(run: StackRun) -> dict[str, RecordedResource]:
    return {p.inputs["metadata"]["name"]: p for p in run.custom_resources("NodePool")}


def requirement(pool: RecordedResource, key: str) -> list[str]:
    reqs = pool.inputs["spec"]["template"]["spec"]["requirements"]
    (match,) = [r for r in reqs if r["key"] == key]
    assert match["operator"] == "In"
    return match["values"]


def test_spot_pool_is_preferred_and_on_demand_is_the_fallback(aws_run: StackRun):
    by_name = pools(aws_run)
    assert set(by_name) == {"spot", "on-demand"}
    spot, on_demand = by_name["spot"], by_name["on-demand"]
    assert requirement(spot, "karpenter.sh/capacity-type") == ["spot"]
    assert requirement(on_demand, "karpenter.sh/capacity-type") == ["on-demand"]
    assert spot.inputs["spec"]["weight"] > on_demand.inputs["spec"]["weight"]
    for pool in (spot, on_demand):
        families = requirement(pool, "karpenter.k8s.aws/instance-family")
        assert families == ["m6i", "m7i", "c6i", "c7i", "m6a", "c6a"]
        assert pool.inputs["spec"]["template"]["spec"]["nodeClassRef"] == {
            "group": "karpenter.k8s.aws",
            "kind": "EC2NodeClass",
            "name": "default",
        }
        assert (
            pool.inputs["spec"]["disruption"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"
        )
    assert spot.inputs["spec"]["limits"] == {"cpu": "64", "memory": "256Gi"}
    assert on_demand.inputs["spec"]["limits"] == {"cpu": "32", "memory": "128Gi"}


def test_node_pool_limits_and_families_follow_config():
    run = run_stack(
        "aws", {"spotCpuLimit": "8", "instanceFamilies": '["c7i"]', "consolidateAfter": "5m"}
    )
    spot = pools(run)["spot"]
    assert spot.inputs["spec"]["limits"]["cpu"] == "8"
    assert requirement(spot, "karpenter.k8s.aws/instance-family") == ["c7i"]
    assert spot.inputs["spec"]["disruption"]["consolidateAfter"] == "5m"


def test_destroy_removes_node_pools_and_node_class_while_karpenter_still_runs(aws_run: StackRun):
    """Pulumi deletes dependents first: pools and class go before the controller and its IAM."""
    release = aws_run.one(RELEASE, "karpenter-controller")
    node_class = aws_run.custom_resources("EC2NodeClass")[0]
    access = aws_run.one("aws:eks/accessEntry:AccessEntry")
    controller_policy = aws_run.one(ROLE_POLICY, "karpenter-controller-policy")
    for pool in pools(aws_run).values():
        assert aws_run.depends_on(pool, release)
        assert aws_run.depends_on(pool, node_class)
        assert aws_run.depends_on(pool, access)
    assert aws_run.depends_on(node_class, release)
    assert aws_run.depends_on(release, controller_policy)
    assert aws_run.depends_on(release, aws_run.one("aws:eks/nodeGroup:NodeGroup"))
    # ... and the consumer goes before the pools, so its pods never block a drain.
    deployment = aws_run.one(DEPLOYMENT)
    for pool in pools(aws_run).values():
        assert aws_run.depends_on(deployment, pool)
    assert not aws_run.depends_on(release, deployment)


def test_scaled_object_is_deleted_before_keda(aws_run: StackRun):
    (scaled,) = aws_run.custom_resources("ScaledObject")
    assert aws_run.depends_on(scaled, aws_run.one(RELEASE, "keda-release"))


# --- consumer workload ------------------------------------------------------------------------


def test_consumer_pod_is_locked_down(aws_run: StackRun):
    c = container(aws_run)
    assert c["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    pod = aws_run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 45
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_consumer_lands_on_karpenter_nodes_and_tolerates_spot(aws_run: StackRun):
    pod = aws_run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]
    spot = pools(aws_run)["spot"].inputs["spec"]["template"]
    (taint,) = spot["spec"]["taints"]
    assert pod["tolerations"] == [{**taint, "operator": "Equal"}]
    required = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    (term,) = required["nodeSelectorTerms"]
    (expr,) = term["matchExpressions"]
    assert spot["metadata"]["labels"][expr["key"]] in expr["values"]
    preferred = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["preference"]["matchExpressions"][0]["values"] == ["spot"]
    # System nodes carry no such label, so consumers never land there.
    assert expr["key"] not in aws_run.one("aws:eks/nodeGroup:NodeGroup").inputs["labels"]


def test_consumer_env_points_at_the_stack_resources(aws_run: StackRun):
    env = env_of(aws_run)
    assert env["EDW_CLOUD"] == "aws"
    assert env["EDW_QUEUE"] == aws_run.one(SQS, "work-queue").outputs["url"]
    assert env["EDW_DEAD_LETTER_QUEUE"] == aws_run.one(SQS, "work-dlq").outputs["url"]
    assert env["EDW_TABLE"] == aws_run.one("aws:dynamodb/table:Table").outputs["name"]
    assert env["AWS_REGION"] == "us-east-1"
    assert env["EDW_PROCESSING_TIMEOUT_SECONDS"] == "30"
    assert env["EDW_SHUTDOWN_TIMEOUT_SECONDS"] == "40"
    assert int(env["EDW_SHUTDOWN_TIMEOUT_SECONDS"]) < 45


def test_consumer_image_is_built_from_app_and_pushed_to_ecr(aws_run: StackRun):
    repo = aws_run.one("aws:ecr/repository:Repository")
    assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
    image = aws_run.one("docker-build:index:Image")
    # Relative to the project directory, and pushed by digest with no tag: a rebuild from
    # another checkout (file modes differ) never re-pushes a tag the immutable repository holds.
    assert image.inputs["context"]["location"] == "app"
    assert image.inputs["dockerfile"]["location"] == "app/Dockerfile"
    assert image.inputs["push"] is False
    assert "tags" not in image.inputs
    (export,) = image.inputs["exports"]
    registry = export["registry"]
    assert registry["names"] == [repo.outputs["repositoryUrl"]]
    assert (registry["push"], registry["pushByDigest"], registry["ociMediaTypes"]) == (
        True,
        True,
        True,
    )
    assert image.inputs["labels"]["org.opencontainers.image.version"].startswith("src-")
    ref = f"{repo.outputs['repositoryUrl']}@{image.outputs['digest']}"
    assert container(aws_run)["image"] == ref == aws_run.outputs["image"]


def test_a_prebuilt_image_skips_ecr_and_the_build():
    run = run_stack("aws", {"consumerImage": "ghcr.io/acme/edw-consumer:1.2.3"})
    assert run.of_type("aws:ecr/repository:Repository") == []
    assert run.of_type("docker-build:index:Image") == []
    assert container(run)["image"] == "ghcr.io/acme/edw-consumer:1.2.3"
    assert run.outputs["image"] == "ghcr.io/acme/edw-consumer:1.2.3"


def test_pdb_limits_voluntary_disruption_of_the_consumer(aws_run: StackRun):
    pdb = aws_run.one("kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]
    labels = aws_run.one(DEPLOYMENT).inputs["spec"]["selector"]["matchLabels"]
    assert pdb["selector"]["matchLabels"] == labels
    assert pdb["maxUnavailable"] == "25%"


def test_scaled_object_targets_the_deployment_and_the_queue(aws_run: StackRun):
    (scaled,) = aws_run.custom_resources("ScaledObject")
    (auth,) = aws_run.custom_resources("TriggerAuthentication")
    deployment = aws_run.one(DEPLOYMENT)
    spec = scaled.inputs["spec"]
    assert spec["scaleTargetRef"]["name"] == deployment.outputs["metadata"]["name"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 30)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"] == {
        "queueURL": aws_run.one(SQS, "work-queue").outputs["url"],
        "awsRegion": "us-east-1",
        "queueLength": "20",
        "activationQueueLength": "0",
        "scaleOnInFlight": "true",
    }
    assert trigger["authenticationRef"] == {
        "name": auth.outputs["metadata"]["name"],
        "kind": "TriggerAuthentication",
    }
    assert auth.inputs["spec"] == {"podIdentity": {"provider": "aws", "identityOwner": "keda"}}
    assert scaled.inputs["metadata"]["namespace"] == auth.inputs["metadata"]["namespace"] == "edw"
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 120


def test_replica_bounds_and_target_follow_config():
    run = run_stack("aws", {"minReplicas": "1", "maxReplicas": "5", "queueLengthTarget": "50"})
    spec = run.custom_resources("ScaledObject")[0].inputs["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 5)
    assert spec["triggers"][0]["metadata"]["queueLength"] == "50"


def test_stack_outputs(aws_run: StackRun):
    out = aws_run.outputs
    assert out["cloud"] == "aws"
    assert out["region"] == "us-east-1"
    assert out["queueUrl"] == aws_run.one(SQS, "work-queue").outputs["url"]
    assert out["deadLetterQueueUrl"] == aws_run.one(SQS, "work-dlq").outputs["url"]
    assert out["tableName"] == aws_run.one("aws:dynamodb/table:Table").outputs["name"]
    assert out["clusterName"] == "edw-aws"
    assert out["consumerNamespace"] == "edw"
    assert out["image"] == container(aws_run)["image"]
    assert json.loads(out["kubeconfig"])["clusters"][0]["name"] == "edw-aws"
    assert aws_run.secret_outputs == {"kubeconfig"}


def test_every_resource_is_parented_by_a_component(aws_run: StackRun):
    components = {r.urn for r in aws_run.resources if not r.custom}
    for r in aws_run.resources:
        if r.custom and r.type != "pulumi:providers:kubernetes":
            assert r.parent in components, r.name
    k8s = [r for r in aws_run.resources if r.type.startswith("kubernetes:")]
    provider = aws_run.one("pulumi:providers:kubernetes")
    assert all(r.provider.startswith(provider.urn) for r in k8s)


def provider_exec(run: StackRun) -> dict[str, Any]:
    provider = run.one("pulumi:providers:kubernetes")
    kubeconfig = provider.inputs["kubeconfig"]
    config = json.loads(kubeconfig) if isinstance(kubeconfig, str) else kubeconfig
    return config["users"][0]["user"]["exec"]


def test_the_kubeconfig_runs_get_token_with_the_stacks_aws_profile():
    """With aws:profile set, the Kubernetes provider must call the cluster as that profile too,
    the identity Pulumi creates the cluster with (and the one EKS makes its admin)."""
    run = run_stack("aws", {"aws:profile": "team-admin"})
    cluster = run.one("eks:index:Cluster")
    assert cluster.inputs["providerCredentialOpts"] == {"profileName": "team-admin"}
    assert provider_exec(run)["env"] == [{"name": "AWS_PROFILE", "value": "team-admin"}]


def test_without_a_profile_the_default_credential_chain_is_used(aws_run: StackRun):
    assert "providerCredentialOpts" not in aws_run.one("eks:index:Cluster").inputs
    assert "env" not in provider_exec(aws_run)


SPOT_ROLE = "aws:iam/serviceLinkedRole:ServiceLinkedRole"


def test_a_fresh_account_gets_the_spot_service_linked_role_kept_on_destroy(aws_run: StackRun):
    role = aws_run.one(SPOT_ROLE)
    assert role.inputs["awsServiceName"] == "spot.amazonaws.com"
    assert role.retain_on_delete is True
    spot = next(p for p in aws_run.custom_resources("NodePool") if p.name.endswith("-spot"))
    assert aws_run.depends_on(spot, role)
    checks = [a for t, a in aws_run.invokes if t == "aws:iam/getRole:getRole"]
    assert checks == [{"name": "AWSServiceRoleForEC2Spot"}]


def test_an_account_that_has_the_spot_role_is_left_alone():
    run = run_stack("aws", {"offline:existingIamRoles": '["AWSServiceRoleForEC2Spot"]'})
    assert run.of_type(SPOT_ROLE) == []


def test_a_missing_spot_role_without_permission_to_create_it_stops_before_any_resource():
    with pytest.raises(ProgramError) as info:
        run_stack("aws", {"createSpotServiceLinkedRole": "false"})
    assert "the account has no EC2 Spot service-linked role (AWSServiceRoleForEC2Spot)" in str(
        info.value
    )
    assert "aws iam create-service-linked-role --aws-service-name spot.amazonaws.com" in str(
        info.value
    )
    assert info.value.resources == []


def test_the_control_plane_log_group_exists_before_the_cluster_with_retention(aws_run: StackRun):
    group = aws_run.one("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["name"] == "/aws/eks/edw-aws/cluster"
    assert group.inputs["retentionInDays"] == 30
    assert aws_run.depends_on(aws_run.one("eks:index:Cluster"), group)
    run = run_stack("aws", {"controlPlaneLogRetentionDays": "90"})
    assert run.one("aws:cloudwatch/logGroup:LogGroup").inputs["retentionInDays"] == 90
    # EKS writes its last logs after the cluster is gone and would recreate the group: destroy
    # keeps it (its retention expires the logs).
    assert group.retain_on_delete is True
    assert group.import_id == ""


LOG_GROUP = "/aws/eks/edw-aws/cluster"


def test_a_second_up_adopts_the_log_group_the_last_cluster_left():
    """destroy, then up of the same stack: the group exists and the cluster does not. Before, the
    `up` failed creating it (ResourceAlreadyExistsException); now Pulumi imports it, ignoring for
    that run the retention and tags EKS may have left off (the next `up` applies them)."""
    run = run_stack("aws", {"offline:existingLogGroups": json.dumps([LOG_GROUP])})
    group = run.one("aws:cloudwatch/logGroup:LogGroup")
    assert group.import_id == LOG_GROUP
    assert set(group.ignore_changes) == {"retentionInDays", "tags"}
    checks = [a for t, a in run.invokes if t == "aws:cloudwatch/getLogGroup:getLogGroup"]
    assert checks == [{"name": LOG_GROUP}]


@pytest.mark.parametrize("denied", ["logs:DescribeLogGroups", "logs:ListTagsForResource"])
def test_the_log_group_check_names_every_permission_it_needs(denied: str):
    """The provider's log group lookup describes the group, then lists its tags by ARN: a
    deployer without ListTagsForResource fails exactly when the group exists (destroy, then up).
    Before, the error asked only for DescribeLogGroups."""
    with pytest.raises(ProgramError) as info:
        run_stack(
            "aws",
            {
                "offline:existingLogGroups": json.dumps([LOG_GROUP]),
                "offline:deniedActions": json.dumps([denied]),
            },
        )
    message = str(info.value)
    assert f"not authorized to perform: {denied}" in message
    assert message.endswith("; grant logs:DescribeLogGroups and logs:ListTagsForResource")
    assert info.value.resources == []


def test_the_log_group_of_a_running_cluster_is_left_to_its_update():
    run = run_stack(
        "aws",
        {
            "offline:existingLogGroups": json.dumps([LOG_GROUP]),
            "offline:existingCluster": json.dumps({"edw/creator": CREATOR}),
        },
    )
    group = run.one("aws:cloudwatch/logGroup:LogGroup")
    assert (group.import_id, group.ignore_changes) == ("", ())


@pytest.mark.parametrize(
    "caller", [f"arn:aws:iam::{ACCOUNT}:root", f"arn:aws:sts::{ACCOUNT}:federated-user/ops"]
)
def test_root_or_a_federated_user_may_create_the_cluster_and_run_later_ups(caller: str) -> None:
    """Neither can be listed in edw:clusterAdminArns, so as the creator they match no entry:
    the first `up` they run and every later one (the tag then holds them) go on."""
    first = run_stack(
        "aws", {"clusterAdminArns": json.dumps([CI_ROLE]), "offline:callerArn": caller}
    )
    assert first.one("eks:index:Cluster").inputs["clusterTags"] == {"edw/creator": caller}
    later = run_stack(
        "aws",
        {
            "clusterAdminArns": json.dumps([CI_ROLE]),
            "offline:callerArn": CI_CALLER,
            "offline:existingCluster": json.dumps({"edw/creator": caller}),
        },
    )
    assert set(entries(later)) == {CI_ROLE}
