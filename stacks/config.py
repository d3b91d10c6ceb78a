"""The one typed, validated configuration object of a stack.

Every setting is declared once in ``SETTINGS`` (key, type, default, description); ``Pulumi.yaml``
declares the same table for the CLI and a test keeps the two identical. ``EdwConfig.parse`` reads
raw stack values, checks every rule and raises one ``ConfigError`` that names each bad key and
what is allowed, before the program registers a single resource.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from croniter import croniter

from components.aws.principals import STS_ARN, parse, repeated, same_principal
from components.k8s.consumer import job_deadline_seconds
from components.routing import EventFilter, FilterError, matches, parse_filter
from components.settings import (
    CONSUMER_HTTP_PORT,
    DEFAULT_HANDLER_PORT,
    DEFAULT_WORKFLOW,
    DRAIN_MARGIN_SECONDS,
    PRINCIPAL_TYPES,
    SCHEDULE_SOURCE,
    AwsSettings,
    AzureSettings,
    Cloud,
    ConsumerSettings,
    Handler,
    NodePoolSettings,
    Principal,
    QueueSettings,
    Webhook,
    Workflow,
)
from components.ticks import (
    ALARM_WINDOW_LIMIT_SECONDS,
    TICK_GRACE_SECONDS,
    longest_gap_seconds,
)
from components.versions import (
    AKS_SUPPORTED_MINORS,
    AL2023_AMI_ALIAS,
    DEFAULT_KUBERNETES_VERSION,
    EKS_KUBERNETES_VERSIONS,
    KARPENTER_CHART,
    KEDA_CHART,
)

PROJECT = "edw"
CLOUDS: tuple[Cloud, ...] = ("aws", "azure")

# Current-generation x86 EC2 families Karpenter may pick for consumers (the image is amd64).
EC2_INSTANCE_FAMILIES = frozenset(
    {
        *(f"{k}{g}{v}" for k in "cmr" for g in "678" for v in ("i", "a")),
        *(f"{k}{g}{v}" for k in "cmr" for g in "67" for v in ("id", "in")),
        *[
            "c5",
            "c5a",
            "c5d",
            "c5n",
            "m5",
            "m5a",
            "m5d",
            "m5n",
            "r5",
            "r5a",
            "r5d",
            "r5n",
            "t3",
            "t3a",
        ],
    }
)
# AKS NAP selects VM SKUs with the label karpenter.azure.com/sku-family (D, E, F, ...).
AZURE_SKU_FAMILIES = frozenset({"A", "B", "D", "E", "F", "L", "M"})
AZURE_LOCATIONS = frozenset(
    [
        "australiaeast",
        "australiasoutheast",
        "brazilsouth",
        "canadacentral",
        "canadaeast",
        "centralindia",
        "centralus",
        "eastasia",
        "eastus",
        "eastus2",
        "francecentral",
        "germanywestcentral",
        "italynorth",
        "japaneast",
        "japanwest",
        "koreacentral",
        "northcentralus",
        "northeurope",
        "norwayeast",
        "polandcentral",
        "southafricanorth",
        "southcentralus",
        "southeastasia",
        "swedencentral",
        "switzerlandnorth",
        "uaenorth",
        "uksouth",
        "ukwest",
        "westcentralus",
        "westeurope",
        "westus",
        "westus2",
        "westus3",
    ]
)
# Shared settings the Azure services have no counterpart for: refuse them rather than ignore them.
AZURE_UNSUPPORTED = {
    "messageRetentionSeconds": "a Storage queue message lives as long as its sender asks "
    "(7 days by default); leave it unset",
    "resultTtlDays": "the Cosmos DB for Table resource has no time-to-live setting; leave it 0",
}
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
AWS_REGION_RE = re.compile(r"^(us|eu|ap|ca|sa|me|af|il|mx)-[a-z]+-\d$")
# Commercial AWS regions where DynamoDB global tables can place replicas (AWS Regional Services).
AWS_REGIONS = frozenset(
    [
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1",
        "sa-east-1", "mx-central-1", "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1",
        "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "il-central-1", "me-south-1",
        "me-central-1", "af-south-1", "ap-east-1", "ap-south-1", "ap-south-2",
        "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
        "ap-southeast-5", "ap-southeast-7", "ap-northeast-1", "ap-northeast-2",
        "ap-northeast-3",
    ]
)  # fmt: skip
EXISTING_TABLE_RE = {
    "aws": re.compile(r"^[A-Za-z0-9_.-]{3,255}$"),
    "azure": re.compile(
        r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[^/]+/providers/"
        r"Microsoft\.DocumentDB/databaseAccounts/[a-z0-9-]{3,44}/tables/[A-Za-z][A-Za-z0-9]{2,62}$"
    ),
}
QUANTITY_RE = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti)?$")
DURATION_RE = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{1,9}$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
K8S_VERSION_RE = re.compile(r"^1\.(2[89]|3\d)$")
AMI_ALIAS_RE = re.compile(r"^al2023@v\d{8}$")
VM_SIZE_RE = re.compile(r"^Standard_[A-Z][A-Za-z0-9_]+$")
INSTANCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
IAM_PRINCIPAL_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
IMAGE_RE = re.compile(r"^[\w.\-/:]+(@sha256:[0-9a-f]{64}|:[\w.\-]+)$")
# An image reference, by the grammar of github.com/distribution/reference (regexp.go at commit
# 00a09fa, the grammar in reference.go's package doc): name [":" tag] ["@" digest], the name an
# optional domain[:port] then lowercase path components. Groups: name, tag, digest.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[(?:[a-fA-F0-9:]+)\])(?::[0-9]+)?"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
IMAGE_REFERENCE_RE = re.compile(
    rf"^((?:{_DOMAIN}/)?{_REMOTE_NAME})"
    r"(?::([\w][\w.-]{0,127}))?"
    r"(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$",
    re.ASCII,  # Go's \w is ASCII only
)
# reference.go RepositoryNameTotalLengthMax: the name's path (without the domain, split as
# anchoredNameRegexp does) at most this.
IMAGE_NAME_RE = re.compile(rf"^(?:({_DOMAIN})/)?({_REMOTE_NAME})$")
IMAGE_PATH_MAX = 255
SHA256_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# The project directory: a handler's build directory must lie inside it (`up` runs there).
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
SQS_MAX_VISIBILITY = 43_200
AZURE_MESSAGE_TTL_SECONDS = 7 * 24 * 3600
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# Workflow and webhook names: DNS labels short enough for every name derived from them (Azure
# queue names allow no double hyphen).
ITEM_NAME_RE = re.compile(r"^[a-z](?!.*--)[a-z0-9-]{1,18}[a-z0-9]$")
# Settings a workflow may override (the others are the stack's or the cluster's).
WORKFLOW_OVERRIDES = (
    "minReplicas",
    "maxReplicas",
    "queueLengthTarget",
    "consumerConcurrency",
    "processingTimeoutSeconds",
    "visibilityTimeoutSeconds",
    "maxReceiveCount",
    "simulatedWorkMs",
    "consumerCpuRequest",
    "consumerMemoryRequest",
    "consumerCpuLimit",
    "consumerMemoryLimit",
)
# A handler's resources: stack-wide defaults a workflow with a handler may override.
HANDLER_RESOURCES = (
    "handlerCpuRequest",
    "handlerMemoryRequest",
    "handlerCpuLimit",
    "handlerMemoryLimit",
)
WORKFLOW_KEYS = ("name", "filter", "mode", "capacity", "schedule", "handler")
HANDLER_KEYS = ("image", "build", "port")
HANDLER_SHAPE = (
    '{"image": "<repo:tag or repo@sha256:...>", "port": 8080} or '
    '{"build": "<directory with a Dockerfile>", "port": 8080}'
)
OBSERVABILITY_MODES = ("basic", "full")
MODES = ("service", "job")
CAPACITIES = ("spot-first", "on-demand")
# The macros a Kubernetes CronJob schedule accepts besides five fields (robfig/cron).
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# The settings each cross-check compares a key with.
CROSS_CHECKED = {
    "maxReplicas": ("minReplicas",),
    "visibilityTimeoutSeconds": ("processingTimeoutSeconds",),
}
# Room for a draining node's PodDisruptionBudget to evict the other consumer pods first.
NODE_DRAIN_MARGIN_SECONDS = 300
# The retention values CloudWatch Logs accepts (PutRetentionPolicy, retentionInDays).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                      2192, 2557, 2922, 3288, 3653)  # fmt: skip


class ConfigError(ValueError):
    """Bad stack configuration; the message lists every offending key."""


@dataclass(frozen=True)
class Setting:
    key: str
    type: Literal["string", "integer", "boolean", "array"]
    default: Any
    description: str
    cloud: Cloud | None = None  # None: used by both stacks
    items: Literal["string", "object"] = "string"  # of an array
    # A default that depends on other settings (``default`` None): how the docs describe it.
    derived_default: str = ""


SETTINGS: tuple[Setting, ...] = (
    Setting("cloud", "string", None, "Which cloud this stack builds: aws or azure."),
    Setting("prefix", "string", "edw", "Short name prefix for every resource (2-10 a-z0-9)."),
    Setting("tags", "array", [], "Extra tags on every taggable resource, as key=value strings."),
    Setting(
        "kubernetesVersion",
        "string",
        "",
        "Kubernetes minor version; empty: the cloud's pinned default (components/versions.py: "
        "EKS 1.34, AKS 1.35). Azure accepts only AKS-supported minors.",
    ),
    Setting(
        "apiAllowedCidrs",
        "array",
        None,
        "CIDRs allowed to reach the Kubernetes API endpoint (required: 0.0.0.0/0 only on purpose).",
    ),
    Setting("systemNodeCount", "integer", 2, "Nodes in the on-demand system pool (1-10)."),
    Setting("consumerNamespace", "string", "edw", "Namespace of the consumer Deployment."),
    Setting(
        "consumerImage",
        "string",
        "",
        "Prebuilt consumer image (repo:tag or repo@sha256:...); empty builds app/ during up.",
    ),
    Setting("minReplicas", "integer", 0, "Fewest consumer pods KEDA keeps (0 scales to zero)."),
    Setting("maxReplicas", "integer", 30, "Most consumer pods KEDA may run."),
    Setting("queueLengthTarget", "integer", 20, "Messages per consumer pod KEDA aims for."),
    Setting("pollingIntervalSeconds", "integer", 5, "How often KEDA reads the queue length."),
    Setting("cooldownSeconds", "integer", 60, "Idle seconds before KEDA scales to zero."),
    Setting("consumerConcurrency", "integer", 4, "Receive/process loops per consumer pod."),
    Setting(
        "processingTimeoutSeconds",
        "integer",
        30,
        "Longest time the consumer spends on one batch before releasing it.",
    ),
    Setting(
        "visibilityTimeoutSeconds",
        "integer",
        120,
        "Queue visibility timeout; must exceed the consumer's termination grace period.",
    ),
    Setting(
        "maxReceiveCount",
        "integer",
        5,
        "Deliveries before a message is dead-lettered (at least 2 on aws: the consumer sets it "
        "aside, with its reason, on the last one, before the SQS redrive would).",
    ),
    Setting(
        "messageRetentionSeconds", "integer", 345_600, "How long the work queue keeps messages."
    ),
    Setting("simulatedWorkMs", "integer", 0, "Artificial work per message, to demo scaling."),
    Setting("consumerCpuRequest", "string", "250m", "CPU request of a consumer pod."),
    Setting("consumerMemoryRequest", "string", "256Mi", "Memory request of a consumer pod."),
    Setting("consumerCpuLimit", "string", "1", "CPU limit of a consumer pod."),
    Setting("consumerMemoryLimit", "string", "512Mi", "Memory limit of a consumer pod."),
    Setting(
        "handlerCpuRequest",
        "string",
        "100m",
        "CPU request of a workflow's handler container (docs/handlers.md); a workflow may "
        "override it.",
    ),
    Setting(
        "handlerMemoryRequest",
        "string",
        "128Mi",
        "Memory request of a workflow's handler container; a workflow may override it.",
    ),
    Setting(
        "handlerCpuLimit",
        "string",
        "500m",
        "CPU limit of a workflow's handler container; a workflow may override it.",
    ),
    Setting(
        "handlerMemoryLimit",
        "string",
        "256Mi",
        "Memory limit of a workflow's handler container; a workflow may override it.",
    ),
    Setting("spotCpuLimit", "integer", 64, "Total vCPUs the spot NodePool may provision."),
    Setting("spotMemoryLimit", "string", "256Gi", "Total memory the spot NodePool may provision."),
    Setting("onDemandCpuLimit", "integer", 32, "Total vCPUs the on-demand NodePool may provision."),
    Setting(
        "onDemandMemoryLimit",
        "string",
        "128Gi",
        "Total memory the on-demand NodePool may provision.",
    ),
    Setting("consolidateAfter", "string", "1m", "How long a node must be idle before removal."),
    Setting("nodeExpireAfter", "string", "720h", "Maximum node lifetime before replacement."),
    Setting(
        "deletionProtection",
        "boolean",
        None,
        "Protect the results table from deletion (blocks `pulumi destroy` of it).",
        derived_default="on for azure (Pulumi protect on the Cosmos DB account and table); on "
        "for aws with edw:replicaRegions (a global table), else off",
    ),
    Setting("resultTtlDays", "integer", 0, "Expire result rows after N days (0 keeps them)."),
    Setting(
        "existingResultsTable",
        "string",
        "",
        "Use this results table instead of creating one (a recovery stack): AWS, the table "
        "name; Azure, the Cosmos DB table's resource id.",
    ),
    Setting(
        "workflows",
        "array",
        [{"name": DEFAULT_WORKFLOW}],
        "The workflows behind the router: name, optional filter, optional handler (the "
        "workflow's own code: docs/handlers.md) and per-workflow overrides (docs/routing.md).",
        items="object",
    ),
    Setting(
        "webhooks",
        "array",
        [],
        "Partner HTTPS endpoints the router delivers to: name, url, filter (docs/routing.md).",
        items="object",
    ),
    Setting(
        "alertEmails",
        "array",
        [],
        "E-mail addresses the stack's alarms notify (AWS: each confirms its subscription once; "
        "Azure: the action group's receivers).",
    ),
    Setting(
        "maxMessageAgeSeconds",
        "integer",
        900,
        "A work queue whose oldest message is older than this raises an alarm (not draining).",
    ),
    Setting(
        "observability",
        "string",
        "basic",
        "basic: alarms/alerts and a dashboard; full: adds managed Prometheus scraping the "
        "consumers with their alert rules, and container logs (docs/operations.md).",
    ),
    Setting(
        "latencyAlertSeconds",
        "integer",
        60,
        "With observability full: a workflow whose p99 end-to-end latency exceeds this pages.",
    ),
    Setting(
        "routerPublishers",
        "array",
        [],
        "Who may publish to the router: AWS, IAM role/user ARNs; Azure, Entra principals as "
        "<type>:<object id> (type User, Group or ServicePrincipal).",
    ),
    # AWS
    Setting("vpcCidr", "string", "10.42.0.0/16", "CIDR of the new VPC.", "aws"),
    Setting("availabilityZoneCount", "integer", 3, "AZs to spread subnets over (2-6).", "aws"),
    Setting("existingVpcId", "string", "", "Use this VPC instead of creating one.", "aws"),
    Setting(
        "existingPrivateSubnetIds",
        "array",
        [],
        "Private subnets of existingVpcId for nodes (at least 2).",
        "aws",
    ),
    Setting("natGatewayPerAz", "boolean", False, "One NAT gateway per AZ instead of one.", "aws"),
    Setting(
        "systemInstanceType", "string", "m6i.large", "EC2 type of the system node group.", "aws"
    ),
    Setting(
        "instanceFamilies",
        "array",
        ["m6i", "m7i", "c6i", "c7i", "m6a", "c6a"],
        "EC2 instance families Karpenter may launch for consumers.",
        "aws",
    ),
    Setting(
        "amiAlias",
        "string",
        AL2023_AMI_ALIAS,
        "EC2NodeClass AMI alias, a pinned AL2023 release (al2023@vYYYYMMDD).",
        "aws",
    ),
    Setting(
        "clusterAdminArns",
        "array",
        [],
        "IAM role/user ARNs given cluster-admin through EKS access entries: everyone who runs "
        "`up` or `destroy` (docs/aws.md).",
        "aws",
    ),
    Setting(
        "previewArns",
        "array",
        [],
        "IAM role/user ARNs that only run `pulumi preview` (CI's pull-request role): the "
        "Kubernetes rights a preview needs, nothing more (docs/aws.md).",
        "aws",
    ),
    Setting(
        "replicaRegions",
        "array",
        [],
        "Regions the results table is replicated to (DynamoDB global table replicas).",
        "aws",
    ),
    Setting(
        "controlPlaneLogRetentionDays",
        "integer",
        30,
        "Days CloudWatch keeps the EKS control-plane logs (a CloudWatch retention value).",
        "aws",
    ),
    Setting(
        "createSpotServiceLinkedRole",
        "boolean",
        True,
        "Create the account's EC2 Spot service-linked role when it is missing (kept on destroy).",
        "aws",
    ),
    # Azure
    Setting(
        "systemVmSize", "string", "Standard_D4ds_v5", "VM size of the AKS system pool.", "azure"
    ),
    Setting(
        "vmSkuFamilies",
        "array",
        ["D", "F"],
        "Azure VM SKU families NAP may launch for consumers.",
        "azure",
    ),
    Setting(
        "disableLocalAccounts",
        "boolean",
        True,
        "AKS local accounts off (Entra only); false for labs without Entra groups.",
        "azure",
    ),
    Setting(
        "adminGroupObjectIds",
        "array",
        [],
        "Entra group object ids that get Kubernetes cluster-admin on AKS (optional break-glass).",
        "azure",
    ),
    Setting(
        "deployerPrincipals",
        "array",
        [],
        "Entra principals that run up/destroy (CI's deploy identity), as <type>:<object id>; each "
        "gets AKS RBAC Cluster Admin on the cluster. Empty: the identity running `up`.",
        "azure",
    ),
    Setting(
        "previewPrincipals",
        "array",
        [],
        "Entra principals that run previews (CI's preview identity), as Group:<id> or "
        "ServicePrincipal:<id>; each may list the cluster's user credentials and dry-run "
        "create/patch the kinds the program manages (docs/azure.md).",
        "azure",
    ),
    Setting(
        "storageNetworkDefaultAction",
        "string",
        "Allow",
        "Storage account network default: Allow (Deny is refused until private networking exists).",
        "azure",
    ),
    Setting(
        "cosmosServerless", "boolean", True, "Cosmos DB serverless (else provisioned).", "azure"
    ),
    Setting(
        "replicaLocations",
        "array",
        [],
        "Locations the Cosmos DB account is replicated to, in failover order (provisioned only).",
        "azure",
    ),
)
SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class EdwConfig:
    cloud: Cloud
    stack: str
    prefix: str
    tags: Mapping[str, str]
    kubernetes_version: str
    api_allowed_cidrs: tuple[str, ...]
    system_node_count: int
    deletion_protection: bool
    result_ttl_days: int
    existing_results_table: str
    queue: QueueSettings
    consumer: ConsumerSettings
    nodes: NodePoolSettings
    workflows: tuple[Workflow, ...] = ()
    webhooks: tuple[Webhook, ...] = ()
    router_publishers: tuple[str, ...] = ()
    alert_emails: tuple[str, ...] = ()
    max_message_age_seconds: int = 900
    observability: Literal["basic", "full"] = "basic"
    latency_alert_seconds: int = 60
    aws: AwsSettings | None = None
    azure: AzureSettings | None = None

    @property
    def name(self) -> str:
        """Base physical name, unique per stack: <prefix>-<stack>."""
        return f"{self.prefix}-{self.stack}"

    @staticmethod
    def parse(
        values: Mapping[str, str],
        stack: str,
        provider_values: Mapping[str, str] | None = None,
    ) -> EdwConfig:
        """Build the config from raw stack values (``edw:`` keys without the namespace).

        ``provider_values`` holds the provider settings we depend on: ``aws:region`` (and
        ``aws:profile``) or ``azure-native:location``.
        """
        return _Parser(values, provider_values or {}).build(stack)


Getter = Callable[[str], Any]


def did_you_mean(name: str, known: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean edw:instanceFamilies?)`` for the closest known name, or nothing."""
    names = list(known)
    close = difflib.get_close_matches(name, names, n=1)
    if not close:  # a slip of case alone: maxreplicas
        close = [k for k in names if k.lower() == name.lower()][:1]
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


class _Parser:
    def __init__(self, values: Mapping[str, str], provider: Mapping[str, str]) -> None:
        unknown = sorted(set(values) - set(SETTINGS_BY_KEY))
        self.errors: list[str] = [
            f"edw:{k} is not a setting of this project{did_you_mean(k, SETTINGS_BY_KEY, 'edw:')}"
            " (known: see Pulumi.yaml)"
            for k in unknown
        ]
        self.values = values
        self.provider = provider

    def fail(self, key: str, message: str) -> None:
        self.errors.append(f"edw:{key} {message}")

    def raw(self, key: str) -> Any:
        setting = SETTINGS_BY_KEY[key]
        text = self.values.get(key)
        if text is None or text == "":
            return setting.default
        if setting.type == "string":
            return text
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        kind = {"integer": int, "boolean": bool, "array": list}[setting.type]
        if type(value) is not kind:
            self.fail(key, f"must be {_article(setting.type)}; got {text!r}")
            return setting.default
        item = {"string": str, "object": dict}[setting.items]
        if setting.type == "array" and not all(isinstance(v, item) for v in value):
            self.fail(key, f"must be a list of {setting.items}s; got {text!r}")
            return setting.default
        return value

    def changed(self, key: str) -> bool:
        text = self.values.get(key)
        if text is None or text == "":
            return False
        setting = SETTINGS_BY_KEY[key]
        try:
            value = text if setting.type == "string" else json.loads(text)
        except json.JSONDecodeError:
            return True
        return value != setting.default

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.raw(key)
        if not low <= value <= high:
            self.fail(key, f"must be between {low} and {high}; got {value}")
        return value

    def matching(self, key: str, pattern: re.Pattern[str], allowed: str) -> str:
        value = self.raw(key)
        if value and not pattern.fullmatch(value):
            self.fail(key, f"must be {allowed}; got {value!r}")
        return value

    def one_of(self, key: str, value: str, allowed: frozenset[str] | tuple[str, ...]) -> None:
        if value not in allowed:
            self.fail(key, f"must be one of {', '.join(sorted(allowed))}; got {value!r}")

    def arns(self, key: str) -> tuple[str, ...]:
        arns = tuple(self.raw(key))
        sessions = [a for a in arns if STS_ARN.match(a)]
        if sessions:
            # What `aws sts get-caller-identity` prints; EKS refuses it (CreateAccessEntry,
            # principalArn: "You can't use the STS session principal type with access entries").
            self.fail(
                key,
                f"must list the role, not an STS assumed-role session ARN: use "
                f"arn:aws:iam::<account>:role/<path/><name> (with the role's path, if any, which "
                f"STS leaves out; `aws iam get-role --role-name <name>` prints it); got {sessions}",
            )
        bad = [
            a
            for a in arns
            if a not in sessions and (not IAM_PRINCIPAL_RE.fullmatch(a) or parse(a) is None)
        ]
        if bad:
            self.fail(
                key,
                f"must be IAM role or user ARNs (arn:aws:iam::<account>:role/<name>); got {bad}",
            )
        for group in repeated(arns):
            self.fail(
                key,
                f"lists one principal more than once: {group} (IAM names are unique in an "
                "account whatever their path or case); list each once",
            )
        return arns

    def replicas(self, key: str, own: str, allowed: frozenset[str]) -> tuple[str, ...]:
        """Replica regions/locations: known names, not the stack's own, each once."""
        names = tuple(self.raw(key))
        unknown = [n for n in names if n not in allowed]
        if unknown:
            self.fail(key, f"has unknown names {unknown}; allowed: {', '.join(sorted(allowed))}")
        if own in names:
            self.fail(key, f"must not list the stack's own region/location {own!r}")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            self.fail(key, f"lists {repeated} more than once")
        return names

    def emails(self, key: str) -> tuple[str, ...]:
        emails = tuple(self.raw(key))
        bad = [e for e in emails if not EMAIL_RE.match(e)]
        if bad:
            self.fail(key, f"has addresses that are not name@domain.tld: {bad}")
        return emails

    def existing_table(self, cloud: str | None) -> str:
        value = self.raw("existingResultsTable")
        pattern = EXISTING_TABLE_RE.get(cloud or "")
        if value and pattern and not pattern.fullmatch(value):
            shape = {
                "aws": "a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)",
                "azure": "a Cosmos DB table id (/subscriptions/<id>/resourceGroups/<group>/"
                "providers/Microsoft.DocumentDB/databaseAccounts/<account>/tables/<table>)",
            }[cloud or ""]
            self.fail("existingResultsTable", f"must be {shape}; got {value!r}")
        return value

    def deletion_protection(self, cloud: str | None) -> bool:
        """As set. Unset: Azure protects its results table (a Cosmos DB account has no deletion
        protection of its own); AWS protects a global table, since deleting the stack that owns
        it would delete every replica at once (docs/resilience.md), not a one-region table."""
        value = self.raw("deletionProtection")
        if value is not None:
            return bool(value)
        return cloud == "azure" or (cloud == "aws" and bool(self.raw("replicaRegions")))

    def api_cidrs(self) -> tuple[str, ...]:
        """Who may reach the Kubernetes API: always the config's explicit choice."""
        cidrs = self.raw("apiAllowedCidrs")
        if not cidrs:
            self.fail(
                "apiAllowedCidrs",
                "is required: list the CIDRs that may reach the Kubernetes API, e.g. your own "
                "egress address as <ip>/32 (`curl -s https://checkip.amazonaws.com` prints it), "
                'or ["0.0.0.0/0"] to open it to the whole internet on purpose',
            )
        return tuple(cidrs or ())

    def retention(self, key: str) -> int:
        value = self.raw(key)
        if value not in LOG_RETENTION_DAYS:
            self.fail(key, f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))}; got {value}")
        return value

    def families(self, key: str, allowed: frozenset[str]) -> tuple[str, ...]:
        families = tuple(self.raw(key))
        bad = [f for f in families if f not in allowed]
        if not families:
            self.fail(key, "must name at least one family")
        if bad:
            self.fail(key, f"has unknown families {bad}; allowed: {', '.join(sorted(allowed))}")
        return families

    def build(self, stack: str) -> EdwConfig:
        cloud = self.raw("cloud")
        if cloud is None:
            self.fail("cloud", f"is required; allowed: {', '.join(CLOUDS)}")
        else:
            self.one_of("cloud", cloud, CLOUDS)
        cidrs = self.api_cidrs()
        for cidr in cidrs:
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                self.fail("apiAllowedCidrs", f"has an invalid CIDR {cidr!r}")
        self.handler_defaults()
        tags: dict[str, str] = {}
        for item in self.raw("tags"):
            key, sep, value = item.partition("=")
            if not sep or not key:
                self.fail("tags", f"entries must look like key=value; got {item!r}")
            tags[key] = value
        config = EdwConfig(
            cloud=cloud or "aws",
            stack=stack,
            prefix=self.matching("prefix", PREFIX_RE, "2-10 chars of a-z0-9, starting a-z"),
            tags=tags,
            kubernetes_version=self.matching(
                "kubernetesVersion", K8S_VERSION_RE, "a minor version like 1.35"
            )
            or DEFAULT_KUBERNETES_VERSION.get(cloud or "", ""),
            api_allowed_cidrs=cidrs,
            system_node_count=self.integer("systemNodeCount", 1, 10),
            deletion_protection=self.deletion_protection(cloud),
            result_ttl_days=self.integer("resultTtlDays", 0, 3650),
            existing_results_table=self.existing_table(cloud),
            queue=self.queue(),
            consumer=self.consumer(),
            nodes=self.nodes(cloud),
            workflows=self.workflows(),
            webhooks=self.webhooks(),
            router_publishers=self.publishers(cloud),
            alert_emails=self.emails("alertEmails"),
            max_message_age_seconds=self.integer("maxMessageAgeSeconds", 60, 1_209_600),
            observability=self.observability(),
            latency_alert_seconds=self.integer("latencyAlertSeconds", 1, 86_400),
            aws=self.aws() if cloud == "aws" else None,
            azure=self.azure() if cloud == "azure" else None,
        )
        config = replace(
            config,
            nodes=replace(config.nodes, termination_grace_period=node_drain(config.workflows)),
        )
        self.cross_checks(config)
        if self.errors:
            raise ConfigError("invalid stack configuration:\n  - " + "\n  - ".join(self.errors))
        return config

    def queue(self) -> QueueSettings:
        receives = self.integer("maxReceiveCount", 1, 1000)
        if self.raw("cloud") == "aws" and receives == 1:  # below 1: refused by integer()
            # The consumer's limit is maxReceiveCount - 1 (components/k8s/consumer.py
            # max_deliveries): it sets a message aside, with its reason, on delivery
            # maxReceiveCount, before SQS's redrive would move it silently. 1 leaves it none.
            self.fail(
                "maxReceiveCount",
                "must be at least 2 on aws (allowed: 2..1000): the consumer dead-letters a "
                "message with its reason one delivery before SQS's redrive moves it without "
                f"one; got {receives}",
            )
        return QueueSettings(
            visibility_timeout_seconds=self.integer(
                "visibilityTimeoutSeconds", 1, SQS_MAX_VISIBILITY
            ),
            max_receive_count=receives,
            message_retention_seconds=self.integer("messageRetentionSeconds", 60, 1_209_600),
        )

    def consumer(self) -> ConsumerSettings:
        quantity = "a Kubernetes quantity like 250m, 1, 512Mi or 2Gi"
        image = self.matching(
            "consumerImage", IMAGE_RE, "an image with a tag or digest (repo:tag or repo@sha256:...)"
        )
        if image.endswith(":latest"):
            self.fail("consumerImage", "must pin a tag or digest, not :latest")
        return ConsumerSettings(
            namespace=self.matching("consumerNamespace", DNS_LABEL_RE, "a DNS label"),
            image=image,
            min_replicas=self.integer("minReplicas", 0, 1000),
            max_replicas=self.integer("maxReplicas", 1, 1000),
            queue_length_target=self.integer("queueLengthTarget", 1, 10_000),
            polling_interval_seconds=self.integer("pollingIntervalSeconds", 1, 300),
            cooldown_seconds=self.integer("cooldownSeconds", 0, 3600),
            concurrency=self.integer("consumerConcurrency", 1, 64),
            processing_timeout_seconds=self.integer("processingTimeoutSeconds", 1, 3600),
            simulated_work_ms=self.integer("simulatedWorkMs", 0, 60_000),
            cpu_request=self.matching("consumerCpuRequest", QUANTITY_RE, quantity),
            memory_request=self.matching("consumerMemoryRequest", QUANTITY_RE, quantity),
            cpu_limit=self.matching("consumerCpuLimit", QUANTITY_RE, quantity),
            memory_limit=self.matching("consumerMemoryLimit", QUANTITY_RE, quantity),
        )

    def handler_defaults(self) -> None:
        """The stack-wide handler resources, checked once (workflows' own are checked each)."""
        quantity = "a Kubernetes quantity like 250m, 1, 512Mi or 2Gi"
        for key in HANDLER_RESOURCES:
            self.matching(key, QUANTITY_RE, quantity)

    def nodes(self, cloud: str | None) -> NodePoolSettings:
        if cloud == "azure":
            families = self.families("vmSkuFamilies", AZURE_SKU_FAMILIES)
        elif cloud == "aws":
            families = self.families("instanceFamilies", EC2_INSTANCE_FAMILIES)
        else:
            families = ()
        duration = "a duration like 30s, 5m or 720h"
        quantity = "a memory quantity like 128Gi"
        return NodePoolSettings(
            families=families,
            spot_cpu_limit=self.integer("spotCpuLimit", 1, 10_000),
            spot_memory_limit=self.matching("spotMemoryLimit", QUANTITY_RE, quantity),
            on_demand_cpu_limit=self.integer("onDemandCpuLimit", 1, 10_000),
            on_demand_memory_limit=self.matching("onDemandMemoryLimit", QUANTITY_RE, quantity),
            consolidate_after=self.matching("consolidateAfter", DURATION_RE, duration),
            expire_after=self.matching("nodeExpireAfter", DURATION_RE, duration),
        )

    def aws(self) -> AwsSettings:
        region = self.provider.get("aws:region", "")
        if not AWS_REGION_RE.match(region):
            self.errors.append(
                f"aws:region must be an AWS region like us-east-1 or eu-west-1; got {region!r}"
            )
        cidr = self.raw("vpcCidr")
        try:
            prefix_len = ipaddress.ip_network(cidr).prefixlen
            if prefix_len > 20:
                self.fail("vpcCidr", f"must be /20 or larger to hold the subnets; got {cidr}")
        except ValueError:
            self.fail("vpcCidr", f"must be an IPv4 CIDR like 10.42.0.0/16; got {cidr!r}")
        vpc_id = self.raw("existingVpcId")
        subnets = tuple(self.raw("existingPrivateSubnetIds"))
        if vpc_id and len(subnets) < 2:
            self.fail(
                "existingPrivateSubnetIds", "must list at least 2 subnets when existingVpcId is set"
            )
        if subnets and not vpc_id:
            self.fail("existingVpcId", "is required when existingPrivateSubnetIds is set")
        admins, previewers = self.arns("clusterAdminArns"), self.arns("previewArns")
        # One access entry per principal, whatever its spelling (path, case): EKS allows one
        # entry a principal, and one ARN twice would be one resource name twice.
        both = sorted(p for p in previewers if any(same_principal(p, a) for a in admins))
        if both:
            self.fail("previewArns", f"must not repeat edw:clusterAdminArns entries; got {both}")
        version = self.raw("kubernetesVersion") or DEFAULT_KUBERNETES_VERSION["aws"]
        if version not in EKS_KUBERNETES_VERSIONS:
            # What both pinned controllers support, and what the add-on pins exist for.
            self.fail(
                "kubernetesVersion",
                f"must be one of {', '.join(EKS_KUBERNETES_VERSIONS)} on aws (the versions "
                f"Karpenter {KARPENTER_CHART.version} and KEDA {KEDA_CHART.version} support); "
                f"got {version!r}",
            )
        return AwsSettings(
            region=region,
            profile=self.provider.get("aws:profile", ""),
            vpc_cidr=cidr,
            availability_zone_count=self.integer("availabilityZoneCount", 2, 6),
            existing_vpc_id=vpc_id,
            existing_private_subnet_ids=subnets,
            nat_gateway_per_az=self.raw("natGatewayPerAz"),
            system_instance_type=self.matching(
                "systemInstanceType", INSTANCE_TYPE_RE, "an EC2 instance type like m6i.large"
            ),
            ami_alias=self.matching(
                "amiAlias", AMI_ALIAS_RE, f"a pinned AL2023 release like {AL2023_AMI_ALIAS}"
            ),
            cluster_admin_arns=admins,
            preview_arns=previewers,
            control_plane_log_retention_days=self.retention("controlPlaneLogRetentionDays"),
            replica_regions=self.replicas("replicaRegions", region, AWS_REGIONS),
            create_spot_service_linked_role=self.raw("createSpotServiceLinkedRole"),
        )

    def azure(self) -> AzureSettings:
        for key, reason in AZURE_UNSUPPORTED.items():
            if self.changed(key):
                self.fail(key, f"is not applied on azure: {reason}")
        location = self.provider.get("azure-native:location", "")
        if location not in AZURE_LOCATIONS:
            # A display name ("West Europe") is the usual slip; point at the name to use.
            near = location.replace(" ", "").lower()
            hint = (
                f" (use the name {near!r}, not the display name)" if near in AZURE_LOCATIONS else ""
            )
            self.errors.append(
                f"azure-native:location must be one of {', '.join(sorted(AZURE_LOCATIONS))}; "
                f"got {location!r}{hint}"
            )
        action = self.raw("storageNetworkDefaultAction")
        self.one_of("storageNetworkDefaultAction", action, ("Allow", "Deny"))
        if action == "Deny":
            # Without a private endpoint or a network rule for the cluster's egress, Deny locks
            # the consumer and KEDA out of the queue: refuse it until that path exists.
            self.fail(
                "storageNetworkDefaultAction",
                "Deny is not supported yet: the stack creates no private endpoint or network "
                "rule, so the consumer and KEDA could not reach the queue; allowed: Allow",
            )
        admins = tuple(self.raw("adminGroupObjectIds"))
        bad_groups = [g for g in admins if not GUID_RE.match(g)]
        if bad_groups:
            self.fail("adminGroupObjectIds", f"must be Entra group object ids; got {bad_groups}")
        self.aks_version()
        previewers = self.principals("previewPrincipals")
        people = [p.object_id for p in previewers if p.type == "User"]
        if people:
            # A Kubernetes binding names a person by sign-in name, not object id: bind a group.
            self.fail(
                "previewPrincipals",
                f"must be groups or service principals (Group:<id>, ServicePrincipal:<id>): "
                f"list people through an Entra group; got User {people}",
            )
        return AzureSettings(
            location=location,
            system_vm_size=self.matching(
                "systemVmSize", VM_SIZE_RE, "an Azure VM size like Standard_D4ds_v5"
            ),
            disable_local_accounts=self.raw("disableLocalAccounts"),
            admin_group_object_ids=admins,
            storage_network_default_action=action,
            cosmos_serverless=self.raw("cosmosServerless"),
            replica_locations=self.replica_locations(location),
            router_publishers=self.principals("routerPublishers"),
            deployers=self.principals("deployerPrincipals"),
            previewers=previewers,
        )

    def principals(self, key: str) -> tuple[Principal, ...]:
        """Entra principals written <type>:<object id>: a role assignment must name the type."""
        found, bad = [], []
        for item in self.raw(key):
            kind, _, object_id = item.partition(":")
            if kind in PRINCIPAL_TYPES and GUID_RE.match(object_id):
                found.append(Principal(kind, object_id.lower()))
            else:
                bad.append(item)
        if bad:
            self.fail(
                key,
                f"must list Entra principals as <type>:<object id> with type "
                f"{', '.join(PRINCIPAL_TYPES)} (an app registration or managed identity is a "
                f"ServicePrincipal: use its service principal's object id); got {bad}",
            )
        # Each principal's grants are named by its object id: one listed twice (under any type)
        # would be one resource name twice, which the engine refuses (duplicate URN).
        ids = [p.object_id for p in found]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            self.fail(key, f"must list each principal once; repeated object ids {repeated}")
        return tuple(found)

    def aks_version(self) -> None:
        """AKS creates and upgrades only its supported minors (components/versions.py)."""
        version = self.raw("kubernetesVersion")
        if version and version not in AKS_SUPPORTED_MINORS:
            self.fail(
                "kubernetesVersion",
                f"must be a minor AKS supports: {', '.join(AKS_SUPPORTED_MINORS)}; got "
                f"{version!r}. AKS upgrades one minor at a time: raise it by one and `up` for "
                "each step (docs/azure.md)",
            )

    def replica_locations(self, location: str) -> tuple[str, ...]:
        locations = self.replicas("replicaLocations", location, AZURE_LOCATIONS)
        if locations and self.raw("cosmosServerless"):
            # Serverless accounts live in one region; provisioned throughput is the price of more.
            self.fail(
                "replicaLocations",
                "needs edw:cosmosServerless false: a serverless Cosmos DB account is "
                "single-region (set cosmosServerless false to replicate)",
            )
        return locations

    def workflows(self) -> tuple[Workflow, ...]:
        """Each workflow with the stack-wide settings under its own overrides, checked by the
        same rules as the stack-wide ones (errors name the workflow)."""
        items = self.raw("workflows")
        if not items:
            self.fail("workflows", "must list at least one workflow")
        names = [item.get("name") for item in items]
        workflows = []
        for i, item in enumerate(items):
            label = f"workflows[{i}]"
            allowed = [*WORKFLOW_KEYS, *WORKFLOW_OVERRIDES, *HANDLER_RESOURCES]
            unknown = sorted(set(item) - set(allowed))
            if unknown:
                hints = "".join(did_you_mean(k, allowed) for k in unknown)
                self.fail(
                    label, f"has unknown keys {unknown}{hints}; allowed: {', '.join(allowed)}"
                )
            name = self.item_name(label, item.get("name"))
            if names.count(name) > 1:
                self.fail(label, f"repeats the name {name!r}; workflow names must be unique")
            overrides = {k: v for k, v in item.items() if k in WORKFLOW_OVERRIDES}
            consumer, queue = self.overridden(f"{label} ({name})", overrides)
            workflow = Workflow(
                name,
                self.item_filter(f"{label} ({name})", item.get("filter")),
                consumer,
                queue,
                mode=self.item_choice(f"{label}.mode", item.get("mode", "service"), MODES),
                capacity=self.item_choice(
                    f"{label}.capacity", item.get("capacity", "spot-first"), CAPACITIES
                ),
                schedule=self.schedule(f"{label}.schedule", item.get("schedule", "")),
                handler=self.handler(f"{label} ({name})", item),
            )
            self.schedule_reaches(f"{label} ({name})", workflow)
            self.schedule_alarmed(label, workflow)
            workflows.append(workflow)
        return tuple(workflows)

    def handler(self, label: str, item: Mapping[str, Any]) -> Handler | None:
        """The workflow's handler, or None; its resources are the stack-wide ones under the
        workflow's own. Errors name the workflow and the field."""
        raw = item.get("handler")
        own = {k: item[k] for k in HANDLER_RESOURCES if k in item}
        if raw is None:
            if own:
                self.fail(
                    label,
                    f"sets {', '.join(sorted(own))} but has no handler; add a handler or "
                    "remove them",
                )
            return None
        if not isinstance(raw, dict):
            self.fail(f"{label}.handler", f"must be {HANDLER_SHAPE}; got {json.dumps(raw)}")
            return None
        unknown = sorted(set(raw) - set(HANDLER_KEYS))
        if unknown:
            hints = "".join(did_you_mean(k, HANDLER_KEYS) for k in unknown)
            self.fail(
                f"{label}.handler",
                f"has unknown keys {unknown}{hints}; allowed: {', '.join(HANDLER_KEYS)}",
            )
        sources = [k for k in ("image", "build") if k in raw]
        if len(sources) != 1:
            self.fail(
                f"{label}.handler",
                f"must set exactly one of image, build ({HANDLER_SHAPE}); got "
                f"{', '.join(sources) or 'neither'}",
            )
        port = raw.get("port", DEFAULT_HANDLER_PORT)
        if type(port) is not int or not 1 <= port <= 65_535:
            self.fail(
                f"{label}.handler.port", f"must be an integer 1-65535; got {json.dumps(port)}"
            )
        elif port == CONSUMER_HTTP_PORT:
            self.fail(
                f"{label}.handler.port",
                f"must not be {CONSUMER_HTTP_PORT}: the consumer serves its health and metrics "
                "there, in the same pod",
            )
        quantity = "a Kubernetes quantity like 250m, 1, 512Mi or 2Gi"
        resources = {}
        for key in HANDLER_RESOURCES:
            value = own.get(key, self.raw(key))
            if key in own and not (isinstance(value, str) and QUANTITY_RE.match(value)):
                self.fail(f"{label}.{key}", f"must be {quantity}; got {json.dumps(value)}")
            resources[key] = str(value)
        for kind in ("Cpu", "Memory"):
            request, limit = (resources[f"handler{kind}{part}"] for part in ("Request", "Limit"))
            if all(map(QUANTITY_RE.match, (request, limit))) and (
                _quantity(request) > _quantity(limit)
            ):
                # The API server refuses such a pod: say so now, not at rollout.
                self.fail(
                    f"{label}.handler{kind}Limit",
                    f"must be at least the handler's {kind.lower()} request ({request}); got "
                    f"{limit}",
                )
        return Handler(
            port=port if type(port) is int else DEFAULT_HANDLER_PORT,
            cpu_request=resources["handlerCpuRequest"],
            memory_request=resources["handlerMemoryRequest"],
            cpu_limit=resources["handlerCpuLimit"],
            memory_limit=resources["handlerMemoryLimit"],
            image=self.handler_image(f"{label}.handler.image", raw["image"])
            if "image" in raw
            else "",
            build=self.handler_build(f"{label}.handler.build", raw["build"])
            if "build" in raw
            else "",
        )

    def handler_image(self, key: str, value: Any) -> str:
        """A pinned image reference (distribution/reference grammar): a tag other than latest,
        or a sha256 digest; used as given."""
        shape = "an image reference pinned by tag or digest (repo:tag or repo@sha256:<64 hex>)"
        text = value if isinstance(value, str) else ""
        match = IMAGE_REFERENCE_RE.fullmatch(text)
        if match is None:
            lower = IMAGE_REFERENCE_RE.fullmatch(text.lower())
            why = " (the repository name must be lowercase)" if text and lower else ""
            self.fail(key, f"must be {shape}{why}; got {json.dumps(value)}")
            return str(value)
        name, tag, digest = match.groups()
        path = IMAGE_NAME_RE.match(name).group(2)  # type: ignore[union-attr]
        if len(path) > IMAGE_PATH_MAX:
            self.fail(key, f"has a repository name longer than {IMAGE_PATH_MAX} characters")
        elif digest and not SHA256_DIGEST_RE.match(digest):
            self.fail(key, f"must pin a sha256 digest (sha256:<64 lowercase hex>); got {digest!r}")
        elif not (tag or digest):
            self.fail(key, f"must be {shape}: without either it means :latest; got {value!r}")
        elif tag == "latest" and not digest:
            self.fail(key, "must pin a tag or digest, not :latest")
        return text

    def handler_build(self, key: str, value: Any) -> str:
        """A directory of this repository holding a Dockerfile, as a relative POSIX path."""
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a directory of this repository; got {json.dumps(value)}")
            return ""
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts:
            self.fail(
                key,
                f"must be a path inside the repository, relative to its root and without '..'; "
                f"got {value!r}",
            )
            return value
        found = (REPOSITORY_ROOT / path).resolve()
        if not found.is_relative_to(REPOSITORY_ROOT):
            self.fail(key, f"leaves the repository (through a symbolic link); got {value!r}")
        elif not found.is_dir():
            self.fail(key, f"is not a directory of the repository; got {value!r}")
        elif not (found / "Dockerfile").is_file():
            self.fail(key, f"has no Dockerfile to build the handler image from; got {value!r}")
        return path.as_posix()

    def item_choice(self, key: str, value: Any, allowed: tuple[str, ...]) -> Any:
        if value not in allowed:
            self.fail(key, f"must be one of {', '.join(allowed)}; got {json.dumps(value)}")
            return allowed[0]
        return value

    def schedule(self, key: str, value: Any) -> str:
        """A Kubernetes CronJob schedule: five fields or a macro (no seconds, no time zone)."""
        if value == "":
            return ""
        fields = value.split() if isinstance(value, str) else []
        shape = len(fields) == 5 or (len(fields) == 1 and fields[0] in CRON_MACROS)
        if not (shape and croniter.is_valid(value)):
            self.fail(
                key,
                "must be a cron expression in UTC with five fields (minute hour day month "
                f"weekday) or one of {', '.join(CRON_MACROS)}; got {json.dumps(value)}",
            )
            return ""
        return value

    def schedule_reaches(self, label: str, workflow: Workflow) -> None:
        """A scheduled event is routed like any other: the workflow's filter must let it in."""
        if not workflow.schedule:
            return
        prefix = self.values.get("prefix") or SETTINGS_BY_KEY["prefix"].default
        event_type = workflow.scheduled_event_type(prefix)
        event = {"type": event_type, "source": SCHEDULE_SOURCE, "data": {}}
        if not matches(workflow.filter, event):
            self.fail(
                f"{label}.filter",
                f"does not let the workflow's own scheduled event in (type {event_type!r}, "
                f"source {SCHEDULE_SOURCE!r}): add the type to the filter's type list",
            )

    def schedule_alarmed(self, label: str, workflow: Workflow) -> None:
        """A missed tick must alarm: the schedule's longest gap plus the time a tick may take
        must fit the window the cloud's alarm can look back over (components/ticks.py)."""
        limit = ALARM_WINDOW_LIMIT_SECONDS.get(self.raw("cloud") or "")
        if not (workflow.schedule and limit):
            return
        gap = longest_gap_seconds(workflow.schedule)
        if gap + TICK_GRACE_SECONDS > limit:
            self.fail(
                f"{label}.schedule",
                f"ticks up to {gap / 3600:g} h apart; a missed tick could not raise an alarm "
                f"(on {self.raw('cloud')} an alarm looks back at most {limit // 3600} h, and a "
                f"tick may take {TICK_GRACE_SECONDS // 60} min to start and finish): schedule it "
                f"at least every {(limit - TICK_GRACE_SECONDS) / 3600:g} h; got "
                f"{json.dumps(workflow.schedule)}",
            )

    def overridden(
        self, label: str, overrides: Mapping[str, Any]
    ) -> tuple[ConsumerSettings, QueueSettings]:
        """Consumer and queue settings with ``overrides``, validated by a parser of its own."""
        values = dict(self.values)
        for key, value in overrides.items():
            wanted = {"string": str, "integer": int}[SETTINGS_BY_KEY[key].type]
            if type(value) is not wanted:
                self.fail(f"{label}.{key}", f"must be {_article(SETTINGS_BY_KEY[key].type)}")
                continue
            values[key] = value if isinstance(value, str) else json.dumps(value)
        sub = _Parser(values, self.provider)
        consumer, queue = sub.consumer(), sub.queue()
        sub.workload_checks(consumer, queue)
        # The stack-wide values are reported once, by this parser; the rest are the overrides'.
        ours = set(self.errors)
        for error in sub.errors:
            if error not in ours and not self.stack_wide_error(error, overrides):
                self.errors.append(f"edw:{label}.{error.removeprefix('edw:')}")
        return consumer, queue

    @staticmethod
    def stack_wide_error(error: str, overrides: Mapping[str, Any]) -> bool:
        """A cross-check of stack-wide values is reported by the stack-wide check."""
        key = error.removeprefix("edw:").split(" ", 1)[0]
        related = {key, *CROSS_CHECKED.get(key, ())}
        return not related & set(overrides)

    def item_name(self, label: str, name: Any) -> str:
        if not isinstance(name, str) or not ITEM_NAME_RE.match(name):
            self.fail(
                f"{label}.name",
                "must be 3-20 of a-z 0-9 and single hyphens, starting with a letter and not "
                f"ending with a hyphen; got {json.dumps(name)}",
            )
            return str(name)
        return name

    def item_filter(self, label: str, raw: Any) -> EventFilter:
        """The filter, or the reason both routers could not route by it (naming the key)."""
        try:
            return parse_filter(raw)
        except FilterError as exc:
            self.fail(f"{label}.filter", str(exc))
            return EventFilter()

    def webhooks(self) -> tuple[Webhook, ...]:
        items = self.raw("webhooks")
        names = [item.get("name") for item in items]
        hooks = []
        for i, item in enumerate(items):
            label = f"webhooks[{i}]"
            unknown = sorted(set(item) - {"name", "url", "filter"})
            if unknown:
                hints = "".join(did_you_mean(k, ("name", "url", "filter")) for k in unknown)
                self.fail(label, f"has unknown keys {unknown}{hints}; allowed: name, url, filter")
            name = self.item_name(label, item.get("name"))
            if names.count(name) > 1:
                self.fail(label, f"repeats the name {name!r}; webhook names must be unique")
            url = item.get("url")
            parsed = urlsplit(url) if isinstance(url, str) else None
            if parsed is None or parsed.scheme != "https" or not parsed.hostname:
                self.fail(f"{label}.url", f"must be an https:// URL; got {json.dumps(url)}")
            elif parsed.username or parsed.password:
                # Credentials in the URL would sit in plain text in the stack's config and state.
                self.fail(
                    f"{label}.url",
                    "must not carry credentials (user:password@): they would sit in plain text "
                    "in config and state; how a partner authenticates deliveries: "
                    "docs/routing.md",
                )
            raw_filter = item.get("filter")
            event_filter = self.item_filter(f"{label} ({name})", raw_filter)
            if not raw_filter:  # absent, null or {}: a refused filter is reported on its own
                self.fail(
                    f"{label} ({name}).filter",
                    "is required: a partner receives only the events it subscribed to",
                )
            hooks.append(Webhook(name, str(url), event_filter))
        return tuple(hooks)

    def observability(self) -> Any:
        mode = self.raw("observability")
        self.one_of("observability", mode, OBSERVABILITY_MODES)
        return mode

    def publishers(self, cloud: str | None) -> tuple[str, ...]:
        # Azure's are parsed with their types into AzureSettings.router_publishers.
        return (
            self.arns("routerPublishers") if cloud == "aws" else tuple(self.raw("routerPublishers"))
        )

    def workload_checks(self, consumer: ConsumerSettings, queue: QueueSettings) -> None:
        if consumer.max_replicas < consumer.min_replicas:
            self.fail(
                "maxReplicas",
                f"must be >= edw:minReplicas ({consumer.min_replicas}); "
                f"got {consumer.max_replicas}",
            )
        grace = consumer.termination_grace_seconds
        if queue.visibility_timeout_seconds <= grace:
            self.fail(
                "visibilityTimeoutSeconds",
                f"must be greater than the consumer's termination grace period ({grace}s = "
                f"edw:processingTimeoutSeconds {consumer.processing_timeout_seconds}s + "
                f"{DRAIN_MARGIN_SECONDS}s drain), or a message being finished during shutdown "
                f"would be redelivered; got {queue.visibility_timeout_seconds}",
            )

    def cross_checks(self, config: EdwConfig) -> None:
        consumer, queue = config.consumer, config.queue
        self.workload_checks(consumer, queue)
        age = config.max_message_age_seconds
        # Azure queue messages live 7 days (what Event Grid and the producer send with).
        retention, what = (
            (
                queue.message_retention_seconds,
                f"edw:messageRetentionSeconds ({queue.message_retention_seconds})",
            )
            if config.aws
            else (
                AZURE_MESSAGE_TTL_SECONDS,
                f"a Storage queue message's 7-day lifetime ({AZURE_MESSAGE_TTL_SECONDS})",
            )
        )
        if age >= retention:
            self.fail(
                "maxMessageAgeSeconds",
                f"must be below {what}: a message is deleted at that age, so the alarm could "
                f"never fire; got {age}",
            )
        replicas = (config.aws.replica_regions if config.aws else ()) or (
            config.azure.replica_locations if config.azure else ()
        )
        if config.existing_results_table and replicas:
            key = "replicaRegions" if config.aws else "replicaLocations"
            self.fail(
                key,
                "must be empty with edw:existingResultsTable: a recovery stack uses the "
                "replicated table, it does not manage its replicas",
            )
        # The CLI fills in Pulumi.yaml defaults for every key, so only a changed value counts.
        wrong_cloud = [
            s.key for s in SETTINGS if s.cloud and s.cloud != config.cloud and self.changed(s.key)
        ]
        for key in wrong_cloud:
            self.fail(
                key, f"only applies to cloud {SETTINGS_BY_KEY[key].cloud}, not {config.cloud}"
            )


def node_drain(workflows: tuple[Workflow, ...]) -> str:
    """The NodePools' terminationGracePeriod: the longest a consumer pod may need to finish (a
    service pod's grace period, a job's deadline), plus NODE_DRAIN_MARGIN_SECONDS for the PDB to
    let the others go first. After it Karpenter deletes what is left; a cut batch is redelivered."""
    longest = max(
        (
            job_deadline_seconds(w) if w.mode == "job" else w.consumer.termination_grace_seconds
            for w in workflows
        ),
        default=0,
    )
    return f"{longest + NODE_DRAIN_MARGIN_SECONDS}s"


def _quantity(text: str) -> float:
    """A Kubernetes quantity of QUANTITY_RE's form as a number (cores or bytes)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    unit = QUANTITY_RE.match(text).group(2)  # type: ignore[union-attr]
    return float(text.removesuffix(unit or "")) * units.get(unit or "", 1)


def _article(kind: str) -> str:
    return {"integer": "an integer", "boolean": "true or false", "array": "a list"}[kind]


def load() -> EdwConfig:
    """Read the current stack's config through the Pulumi SDK (the program's only reader)."""
    import pulumi  # noqa: PLC0415  (keeps this module importable without the Pulumi runtime)
    from pulumi.runtime.config import CONFIG, get_config_env  # noqa: PLC0415

    # Read the whole edw: namespace, not just known keys, so a misspelt key is reported.
    raw = {**get_config_env(), **CONFIG.get()}
    values = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith(f"{PROJECT}:")}
    extra = {
        "aws:region": pulumi.Config("aws").get("region") or "",
        "aws:profile": pulumi.Config("aws").get("profile") or "",
        "azure-native:location": pulumi.Config("azure-native").get("location") or "",
    }
    return EdwConfig.parse(values, stack=pulumi.get_stack(), provider_values=extra)
