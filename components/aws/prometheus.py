"""`edw:observability: full` on AWS: Amazon Managed Service for Prometheus scraping the consumers
(the managed, agentless collector), the consumer alert rules routed to the alert topic, and
container logs through the EKS amazon-cloudwatch-observability add-on."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import yaml
from pulumi_aws import amp, cloudwatch, eks
from pulumi_kubernetes import meta, rbac

from components.aws.cluster import SYSTEM_POOL_LABEL, SYSTEM_TAINT_KEY
from components.aws.iam import allow
from components.aws.irsa import ClusterOidc, IrsaRole, IrsaRoleArgs
from components.k8s.preview import READ_VERBS
from components.observability.scrape import SCRAPE_INTERVAL, consumer_job, keda_job
from components.versions import CLOUDWATCH_OBSERVABILITY_ADDON

# AMP user guide, "Set up managed collectors for Amazon EKS" > "Configuring your Amazon EKS
# cluster": the scraper acts in the cluster as this user, bound to this role. In API
# authentication mode AMP creates the scraper role's access entry itself (with this user name);
# a second one from us fails with ResourceInUseException.
COLLECTOR_USER = "aps-collector-user"
COLLECTOR_ROLE = "aps-collector-role"
# What our scrape jobs need (components/observability/scrape.py): Prometheus' kubernetes_sd
# `role: pod` lists and watches pods; the targets are scraped on the pod IPs, not through the
# API. The guide's role also reads nodes, nodes/proxy and services for its default jobs, which
# we do not run (and which a previewer would then have to hold too: components/k8s/preview.py).
COLLECTOR_RULES = (
    rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods"], verbs=list(READ_VERBS)),
)
# A managed scraper tags its destination workspace so; declaring the tag keeps a refresh from
# showing drift and an `up` from removing it (pulumi-aws amp.Scraper docs, "Ignoring changes to
# Prometheus Workspace destination").
SCRAPER_TAG = {"AMPAgentlessScraper": ""}
# Fluent Bit's log groups (CloudWatch user guide, "Send logs to CloudWatch Logs", Container
# Insights Fluent Bit set-up): created here with a retention, or the add-on would create them
# keeping logs forever. Container Insights metrics (the "performance" group) are off below.
LOG_GROUPS = ("application", "dataplane", "host")
CLOUDWATCH_AGENT = ("amazon-cloudwatch", "cloudwatch-agent")  # the add-on's service account


def cloudwatch_addon_configuration() -> str:
    """The add-on's configuration values (the same as its Helm chart's: CloudWatch user guide,
    "Configuring the add-on and the Helm chart"; aws-observability/helm-charts,
    amazon-cloudwatch-observability 6.2.0 values.yaml). Only container logs stay on: Application
    Signals (on by default, billed per request, needing X-Ray rights we do not grant) and
    Container Insights metrics (billed per observation) feed nothing of this stack. The
    operator ("manager") tolerates nothing by default and would keep a Karpenter node alive for
    itself: it runs on the system nodes. The agents' DaemonSets tolerate every taint already."""
    return json.dumps(
        {
            "applicationSignals": {"enabled": False},
            "containerInsights": {"enabled": False},
            "containerLogs": {"enabled": True},
            "manager": {
                "nodeSelector": {"kubernetes.io/os": "linux", **SYSTEM_POOL_LABEL},
                "tolerations": [{"key": SYSTEM_TAINT_KEY, "operator": "Exists"}],
            },
        },
        sort_keys=True,
    )


def scrape_configuration(consumer_namespace: str, keda_namespace: str) -> str:
    """The consumers' pods and KEDA's operator (components/observability/scrape.py)."""
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL},
        "scrape_configs": [consumer_job(consumer_namespace), keda_job(keda_namespace)],
    }
    return yaml.safe_dump(config, sort_keys=False)


def alertmanager_definition(topic_arn: str, region: str) -> str:
    """Every alert, firing and resolved, to the stack's alert topic. AMP user guide, "Configure
    alert manager to send messages to your Amazon SNS topic": sigv4 needs its region, and
    without a subject the default one can be too long for SNS."""
    config = {
        "route": {"receiver": "alert-topic", "group_by": ["alertname", "namespace", "workflow"]},
        "receivers": [
            {
                "name": "alert-topic",
                "sns_configs": [
                    {
                        "topic_arn": topic_arn,
                        "subject": "EDW {{ .Status }}: {{ .GroupLabels.alertname }}",
                        "send_resolved": True,
                        "sigv4": {"region": region},
                        "attributes": {"severity": "{{ .CommonLabels.severity }}"},
                    }
                ],
            }
        ],
    }
    return yaml.safe_dump({"alertmanager_config": yaml.safe_dump(config, sort_keys=False)})


class PrometheusWorkspace(pulumi.ComponentResource):
    """The AMP workspace: made first, so the alert topic can let exactly it publish."""

    arn: pulumi.Output[str]
    id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        alias: str,
        tags: Mapping[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("edw:aws:PrometheusWorkspace", name, None, opts)
        workspace = amp.Workspace(
            f"{name}-workspace",
            alias=alias,
            tags={**tags, **SCRAPER_TAG},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn, self.id = workspace.arn, workspace.id
        self.register_outputs({"arn": self.arn})


@dataclass(frozen=True)
class ManagedPrometheusArgs:
    cluster_arn: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    security_group_ids: Sequence[pulumi.Input[str]]
    workspace_arn: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    rules: str  # the consumer rule groups, bound set (components/observability/rules.py)
    alert_topic_arn: pulumi.Input[str]
    region: str
    consumer_namespace: str
    keda_namespace: str
    tags: Mapping[str, str]


class ManagedPrometheus(pulumi.ComponentResource):
    """Rules + alert manager on the workspace, the managed scraper and the read-only RBAC its
    user needs in the cluster (AMP makes the access entry)."""

    scraper_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ManagedPrometheusArgs,
        cluster_opts: pulumi.ResourceOptions,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("edw:aws:ManagedPrometheus", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        amp.RuleGroupNamespace(
            f"{name}-rules",
            workspace_id=args.workspace_id,
            name="edw-consumer",
            data=args.rules,
            opts=child,
        )
        amp.AlertManagerDefinition(
            f"{name}-alertmanager",
            workspace_id=args.workspace_id,
            definition=pulumi.Output.from_input(args.alert_topic_arn).apply(
                lambda arn: alertmanager_definition(arn, args.region)
            ),
            opts=child,
        )
        in_cluster = pulumi.ResourceOptions.merge(cluster_opts, child)
        role = rbac.v1.ClusterRole(
            f"{name}-collector-role",
            metadata=meta.v1.ObjectMetaArgs(name=COLLECTOR_ROLE),
            rules=list(COLLECTOR_RULES),
            opts=in_cluster,
        )
        rbac.v1.ClusterRoleBinding(
            f"{name}-collector-binding",
            metadata=meta.v1.ObjectMetaArgs(name=COLLECTOR_ROLE),
            role_ref=rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role.metadata.name
            ),
            subjects=[
                rbac.v1.SubjectArgs(
                    kind="User", name=COLLECTOR_USER, api_group="rbac.authorization.k8s.io"
                )
            ],
            opts=in_cluster,
        )
        scraper = amp.Scraper(
            f"{name}-scraper",
            source=amp.ScraperSourceArgs(
                eks=amp.ScraperSourceEksArgs(
                    cluster_arn=args.cluster_arn,
                    subnet_ids=args.subnet_ids,
                    security_group_ids=list(args.security_group_ids),
                )
            ),
            destination=amp.ScraperDestinationArgs(
                amp=amp.ScraperDestinationAmpArgs(workspace_arn=args.workspace_arn)
            ),
            scrape_configuration=scrape_configuration(args.consumer_namespace, args.keda_namespace),
            tags=dict(args.tags),
            opts=child,
        )
        self.scraper_arn = scraper.arn
        self.register_outputs({"scraper_arn": self.scraper_arn})


@dataclass(frozen=True)
class ContainerLogsArgs:
    cluster_name: str
    oidc: ClusterOidc
    region: str
    account_id: str
    retention_days: int
    tags: Mapping[str, str]


class ContainerLogs(pulumi.ComponentResource):
    """The amazon-cloudwatch-observability add-on (Fluent Bit's container logs only) under an
    IRSA role that may write only this cluster's Container Insights log groups, which exist
    beforehand with a retention."""

    def __init__(
        self, name: str, args: ContainerLogsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:ContainerLogs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = f"/aws/containerinsights/{args.cluster_name}"
        groups = [
            cloudwatch.LogGroup(
                f"{name}-{kind}",
                name=f"{prefix}/{kind}",
                retention_in_days=args.retention_days,
                tags=dict(args.tags),
                opts=child,
            )
            for kind in LOG_GROUPS
        ]
        arn = f"arn:aws:logs:{args.region}:{args.account_id}:log-group:{prefix}/*"
        namespace, service_account = CLOUDWATCH_AGENT
        role = IrsaRole(
            f"{name}-agent-identity",
            IrsaRoleArgs(
                oidc=args.oidc,
                namespace=namespace,
                service_account=service_account,
                statements=[
                    allow(
                        [
                            "logs:CreateLogStream",
                            "logs:DescribeLogStreams",
                            "logs:PutLogEvents",
                            "logs:PutRetentionPolicy",
                        ],
                        [arn, f"{arn}:log-stream:*"],
                        "WriteThisClustersContainerInsightsLogs",
                    ),
                ],
                tags=args.tags,
            ),
            opts=child,
        )
        eks.Addon(
            f"{name}-addon",
            cluster_name=args.cluster_name,
            addon_name="amazon-cloudwatch-observability",
            addon_version=CLOUDWATCH_OBSERVABILITY_ADDON,
            configuration_values=cloudwatch_addon_configuration(),
            service_account_role_arn=role.role_arn,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=groups),
        )
        self.register_outputs({})
