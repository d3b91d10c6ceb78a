"""The config object: defaults, every validation rule, and Pulumi.yaml kept in sync with it."""

from pathlib import Path

import pytest
import yaml

from stacks.config import SETTINGS, ConfigError, EdwConfig
from stacks.offline import ProgramError, run_stack

ROOT = Path(__file__).resolve().parents[2]
AWS = {"aws:region": "eu-west-1"}
AZURE = {"azure-native:location": "westeurope"}
API_CIDRS = '["198.51.100.0/24"]'  # a stack must say who may reach its Kubernetes API


def parse(values: dict[str, str], provider: dict[str, str] = AWS) -> EdwConfig:
    return EdwConfig.parse(
        {"cloud": "aws", "apiAllowedCidrs": API_CIDRS, **values},
        stack="t",
        provider_values=provider,
    )


def error_of(values: dict[str, str], provider: dict[str, str] = AWS) -> str:
    with pytest.raises(ConfigError) as info:
        parse(values, provider)
    return str(info.value)


def test_defaults_build_a_consistent_aws_config():
    cfg = parse({})
    assert cfg.cloud == "aws"
    assert cfg.name == "edw-t"
    assert cfg.aws is not None
    assert cfg.aws.region == "eu-west-1"
    assert cfg.azure is None
    assert cfg.queue.max_receive_count == 5
    assert cfg.consumer.min_replicas == 0
    assert cfg.nodes.families == ("m6i", "m7i", "c6i", "c7i", "m6a", "c6a")
    assert cfg.consumer.termination_grace_seconds == 45
    assert cfg.queue.visibility_timeout_seconds > cfg.consumer.termination_grace_seconds


def test_values_are_parsed_with_their_types():
    cfg = parse(
        {
            "maxReplicas": "7",
            "deletionProtection": "true",
            "instanceFamilies": '["c7i", "m7i"]',
            "tags": '["team=data", "cost-center=42"]',
        }
    )
    assert cfg.consumer.max_replicas == 7
    assert cfg.deletion_protection is True
    assert cfg.nodes.families == ("c7i", "m7i")
    assert cfg.tags == {"team": "data", "cost-center": "42"}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"cloud": "gcp"}, "edw:cloud must be one of aws, azure; got 'gcp'"),
        (
            {"maxReplicas": "2", "minReplicas": "3"},
            "edw:maxReplicas must be >= edw:minReplicas (3)",
        ),
        (
            {"instanceFamilies": '["m6i", "z9x"]'},
            "edw:instanceFamilies has unknown families ['z9x']",
        ),
        ({"instanceFamilies": '["m7g"]'}, "edw:instanceFamilies has unknown families ['m7g']"),
        ({"instanceFamilies": "[]"}, "edw:instanceFamilies must name at least one family"),
        ({"maxReplicas": "many"}, "edw:maxReplicas must be an integer; got 'many'"),
        ({"maxReceiveCount": "0"}, "edw:maxReceiveCount must be between 1 and 1000; got 0"),
        ({"apiAllowedCidrs": '["10.0.0.0/33"]'}, "edw:apiAllowedCidrs has an invalid CIDR"),
        ({"consumerImage": "repo/app:latest"}, "edw:consumerImage must pin a tag or digest"),
        ({"consumerImage": "repo/app"}, "edw:consumerImage must be an image with a tag or digest"),
        ({"consumerCpuLimit": "lots"}, "edw:consumerCpuLimit must be a Kubernetes quantity"),
        ({"consolidateAfter": "soon"}, "edw:consolidateAfter must be a duration"),
        ({"tags": '["novalue"]'}, "edw:tags entries must look like key=value"),
        ({"existingVpcId": "vpc-1"}, "edw:existingPrivateSubnetIds must list at least 2 subnets"),
        ({"vpcCidr": "10.0.0.0/24"}, "edw:vpcCidr must be /20 or larger"),
        ({"clusterAdminArns": '["admin"]'}, "edw:clusterAdminArns must be IAM role or user ARNs"),
        ({"vmSkuFamilies": '["E"]'}, "edw:vmSkuFamilies only applies to cloud azure, not aws"),
        # Only versions both pinned controllers support (Karpenter 1.14: 1.30-1.36, KEDA 2.20:
        # 1.33-1.35), each with its pinned add-ons.
        ({"kubernetesVersion": "1.32"}, "edw:kubernetesVersion must be one of 1.33, 1.34, 1.35"),
        ({"kubernetesVersion": "1.36"}, "Karpenter 1.14.1 and KEDA 2.20.2 support"),
        ({"amiAlias": "al2023@latest"}, "edw:amiAlias must be a pinned AL2023 release like"),
        ({"previewArns": '["preview"]'}, "edw:previewArns must be IAM role or user ARNs"),
        # A path with no name after it names no principal.
        (
            {"clusterAdminArns": '["arn:aws:iam::123456789012:role/ci/"]'},
            "edw:clusterAdminArns must be IAM role or user ARNs",
        ),
        # EKS refuses STS session ARNs as an access entry's principal (CreateAccessEntry).
        (
            {"previewArns": '["arn:aws:sts::123456789012:assumed-role/pr-preview/GitHubActions"]'},
            "edw:previewArns must list the role, not an STS assumed-role session ARN: use "
            "arn:aws:iam::<account>:role/<path/><name>",
        ),
        (
            {
                "clusterAdminArns": '["arn:aws:iam::123456789012:role/ci"]',
                "previewArns": '["arn:aws:iam::123456789012:role/ci"]',
            },
            "edw:previewArns must not repeat edw:clusterAdminArns entries",
        ),
        # One principal twice would be two access entries for it (EKS: 409) or, spelled the
        # same, one resource name twice (a duplicate URN).
        (
            {
                "clusterAdminArns": '["arn:aws:iam::123456789012:role/ci", '
                '"arn:aws:iam::123456789012:role/ci"]'
            },
            "edw:clusterAdminArns lists one principal more than once: "
            "['arn:aws:iam::123456789012:role/ci', 'arn:aws:iam::123456789012:role/ci']",
        ),
        (
            {
                "previewArns": '["arn:aws:iam::123456789012:role/pr/preview", '
                '"arn:aws:iam::123456789012:role/Preview"]'
            },
            "edw:previewArns lists one principal more than once",
        ),
        (
            {
                "clusterAdminArns": '["arn:aws:iam::123456789012:role/deploy/ci"]',
                "previewArns": '["arn:aws:iam::123456789012:role/ci"]',
            },
            "edw:previewArns must not repeat edw:clusterAdminArns entries; "
            "got ['arn:aws:iam::123456789012:role/ci']",
        ),
        (
            {"instnceFamilies": '["m6i"]'},
            "edw:instnceFamilies is not a setting of this project (did you mean "
            "edw:instanceFamilies?)",
        ),
        ({"maxreplicas": "3"}, "edw:maxreplicas is not a setting of this project (did you mean "),
        (
            {"xyzzy": "1"},
            "edw:xyzzy is not a setting of this project (known: see Pulumi.yaml)",
        ),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(values, expected):
    assert expected in error_of(values)


@pytest.mark.parametrize("cloud", ["aws", "azure"])
@pytest.mark.parametrize("cidrs", [None, "[]"])
def test_no_stack_opens_its_api_unless_its_config_says_so(cloud: str, cidrs: str | None):
    """Nothing defaults to 0.0.0.0/0: the setting is required, and the error says how to find
    one's own egress address."""
    values = {"cloud": cloud, "disableLocalAccounts": "false"}
    if cloud == "azure":
        values["adminGroupObjectIds"] = '["00000000-0000-4000-8000-000000000001"]'
    if cidrs is not None:
        values["apiAllowedCidrs"] = cidrs
    with pytest.raises(ConfigError) as info:
        EdwConfig.parse(values, "t", AWS if cloud == "aws" else AZURE)
    message = str(info.value)
    assert "edw:apiAllowedCidrs is required" in message
    assert "https://checkip.amazonaws.com" in message
    assert '["0.0.0.0/0"] to open it to the whole internet on purpose' in message
    assert (
        "default"
        not in yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["apiAllowedCidrs"]
    )


def test_node_pools_drain_within_the_longest_consumer_need():
    """A service pod needs its grace period, a job its deadline; plus five minutes for the PDB."""
    assert parse({}).nodes.termination_grace_period == "345s"  # 30 s batch + 15 s drain + 300
    jobs = '[{"name": "work"}, {"name": "batch", "mode": "job"}]'
    # 120 s start + 5 batches of 30 s + 30 s idle + 45 s drain + 300
    assert parse({"workflows": jobs}).nodes.termination_grace_period == "645s"


def test_visibility_timeout_must_outlast_the_consumer_drain():
    message = error_of({"processingTimeoutSeconds": "120", "visibilityTimeoutSeconds": "100"})
    assert "edw:visibilityTimeoutSeconds must be greater than the consumer's termination" in message
    assert "(135s = edw:processingTimeoutSeconds 120s + 15s drain)" in message


def test_aws_needs_two_receives_so_the_consumer_sets_a_message_aside_before_sqs_does():
    """The consumer's limit is maxReceiveCount - 1 on aws (SQS's redrive moves a message silently
    after maxReceiveCount): 1 would leave it none. Azure has no redrive, so 1 is fine there."""
    message = error_of({"maxReceiveCount": "1"})
    assert "edw:maxReceiveCount must be at least 2 on aws (allowed: 2..1000)" in message
    assert "got 1" in message
    overridden = error_of({"workflows": '[{"name": "work", "maxReceiveCount": 1}]'})
    assert "edw:workflows[0] (work).maxReceiveCount must be at least 2 on aws" in overridden
    assert parse({"maxReceiveCount": "2"}).queue.max_receive_count == 2
    azure = EdwConfig.parse(
        {"cloud": "azure", "apiAllowedCidrs": API_CIDRS, "maxReceiveCount": "1"},
        stack="t",
        provider_values=AZURE,
    )
    assert azure.queue.max_receive_count == 1


def test_all_errors_are_reported_together():
    message = error_of({"maxReplicas": "0", "cloud": "aws", "maxReceiveCount": "9999"})
    assert "edw:maxReplicas must be between 1 and 1000" in message
    assert "edw:maxReceiveCount must be between 1 and 1000" in message


def test_unknown_cloud_and_missing_cloud_are_refused():
    with pytest.raises(ConfigError, match=r"edw:cloud is required; allowed: aws, azure"):
        EdwConfig.parse({}, stack="t")


def test_aws_region_is_required_and_checked():
    assert "aws:region must be an AWS region" in error_of({}, provider={})
    assert "got 'Europe'" in error_of({}, provider={"aws:region": "Europe"})


def test_azure_location_and_sku_families_are_checked():
    azure = {"cloud": "azure", "adminGroupObjectIds": '["g"]'}
    assert "azure-native:location must be one of" in error_of(azure, provider={})
    message = error_of({**azure, "vmSkuFamilies": '["D", "Q"]'}, provider=AZURE)
    assert "edw:vmSkuFamilies has unknown families ['Q']" in message


def test_pulumi_yaml_declares_every_setting_with_type_default_and_description():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == {s.key for s in SETTINGS}
    for s in SETTINGS:
        spec = declared[s.key]
        assert spec["type"] == s.type, s.key
        assert spec.get("default") == s.default, s.key
        assert spec["description"].startswith(s.description), s.key
        if s.type == "array":
            assert spec["items"] == {"type": s.items}, s.key


def test_stack_files_hold_only_declared_settings():
    keys = {f"edw:{s.key}" for s in SETTINGS}
    for stack_file in ROOT.glob("Pulumi.*.yaml"):
        config = yaml.safe_load(stack_file.read_text())["config"]
        assert {k for k in config if k.startswith("edw:")} <= keys, stack_file.name


def test_a_bad_config_fails_the_program_before_any_resource_is_registered():
    with pytest.raises(ProgramError) as info:
        run_stack("aws", {"maxReplicas": "1", "minReplicas": "2", "instanceFamilies": '["zz1"]'})
    assert isinstance(info.value.cause, ConfigError)
    assert "edw:maxReplicas must be >= edw:minReplicas (2)" in str(info.value)
    assert "edw:instanceFamilies has unknown families ['zz1']" in str(info.value)
    assert info.value.resources == []


def test_docs_document_every_setting():
    page = (ROOT / "docs" / "configuration.md").read_text()
    missing = [s.key for s in SETTINGS if f"| `edw:{s.key}` |" not in page]
    assert missing == []


def test_log_retention_must_be_a_cloudwatch_value():
    message = error_of({"controlPlaneLogRetentionDays": "45"})
    assert "edw:controlPlaneLogRetentionDays must be one of 1, 3, 5, 7, 14, 30, 60" in message
    assert "got 45" in message
