"""Every rule: compliant input passes, a realistic violation is reported with a clear message."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from policy.offline import PackConfig, evaluate
from policy.rules import POLICIES
from tests.policy import fixtures as f
from tests.policy.harness import assert_reports, messages

Graph = Callable[[], list[f.Rec]]


def one(rec: f.Rec) -> Graph:
    return lambda: [rec]


def set_deep(rec: f.Rec, path: str, value: object) -> f.Rec:
    """Copy of ``rec`` with inputs at dotted ``path`` replaced (None deletes)."""
    copy = rec.with_inputs()
    *parents, last = path.split(".")
    node = copy.inputs
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return copy


def in_namespace(rec: f.Rec, namespace: str) -> f.Rec:
    return set_deep(rec, "metadata.namespace", namespace)


def without_policy_for(queue_name: str) -> list[f.Rec]:
    return [r for r in f.aws_graph() if r.name != f"{queue_name}-policy"]


STAR = "arn:aws:sqs:us-east-1:123456789012:*"
# The rules over every container of a pod (a handler sidecar's too).
CONTAINER_RULES = (
    "k8s-run-as-non-root",
    "k8s-read-only-root-filesystem",
    "k8s-no-privilege-escalation",
    "k8s-resources-set",
    "k8s-probes-set",
    "k8s-no-latest-image",
)
CASES = [
    # --- SQS
    ("aws-sqs-encrypted", one(f.work_queue()), None, ()),
    (
        "aws-sqs-encrypted",
        one(f.work_queue().with_inputs(sqsManagedSseEnabled=None, kmsMasterKeyId="alias/edw")),
        None,
        (),
    ),
    (
        "aws-sqs-encrypted",
        one(f.work_queue().with_inputs(sqsManagedSseEnabled=False)),
        None,
        ("queue 'edw-aws-work' is not encrypted at rest",),
    ),
    ("aws-sqs-redrive-to-dlq", lambda: [f.work_queue(), f.dlq(), f.interruption_queue()], None, ()),
    (
        "aws-sqs-redrive-to-dlq",
        one(f.work_queue().with_inputs(redrivePolicy=None)),
        None,
        ("queue 'edw-aws-work' has no redrivePolicy",),
    ),
    (
        "aws-sqs-redrive-to-dlq",
        one(f.work_queue().with_inputs(redrivePolicy=json.dumps({"maxReceiveCount": 50}))),
        None,
        ("has no deadLetterTargetArn", "maxReceiveCount is 50; allowed: 2..10"),
    ),
    (
        "aws-sqs-redrive-to-dlq",
        one(f.work_queue().with_inputs(redrivePolicy=json.dumps({"maxReceiveCount": 1}))),
        None,
        ("has no deadLetterTargetArn", "maxReceiveCount is 1; allowed: 2..10"),
    ),
    (
        "aws-sqs-redrive-to-dlq",
        one(f.work_queue()),
        {"maxReceiveCount": 3},
        ("maxReceiveCount is 5; allowed: 2..3",),
    ),
    (
        "aws-sqs-redrive-to-dlq",
        one(f.interruption_queue().with_inputs(tags={})),
        None,
        ("queue 'edw-aws-interruption' has no redrivePolicy",),
    ),
    (
        "aws-sqs-redrive-to-dlq",
        one(f.interruption_queue().with_inputs(tags={})),
        {"exemptQueueNames": ["edw-aws-interruption"]},
        (),
    ),
    ("aws-sqs-deny-insecure-transport", f.aws_graph, None, ()),
    ("aws-sqs-redrive-to-dlq", one(f.tagged_dlq()), None, ()),
    (
        "aws-sqs-redrive-to-dlq",
        one(f.tagged_dlq()),
        {"deadLetterRoles": []},
        ("queue 'edw-aws-dlq' has no redrivePolicy",),
    ),
    (
        "aws-sqs-deny-insecure-transport",
        lambda: without_policy_for("edw-aws-dlq"),
        None,
        ("queue 'edw-aws-dlq' has no queue policy denying sqs:*",),
    ),
    (
        "aws-sqs-deny-insecure-transport",
        lambda: [
            f.work_queue().with_inputs(
                policy=f.doc(f.deny_insecure_transport("arn:aws:sqs:us-east-1:1:q"))
            )
        ],
        None,
        (),
    ),
    (
        "aws-sqs-deny-insecure-transport",
        lambda: [
            q := f.work_queue(),
            f.Rec(
                "aws:sqs/queuePolicy:QueuePolicy",
                "p",
                {
                    "policy": f.doc(
                        {
                            **f.deny_insecure_transport("q"),
                            "Condition": {"Bool": {"aws:SecureTransport": "true"}},
                        }
                    )
                },
            ).depends_on(q),
        ],
        None,
        ("queue 'edw-aws-work' has no queue policy",),
    ),
    # --- DynamoDB
    ("aws-dynamodb-pitr", one(f.table()), None, ()),
    (
        "aws-dynamodb-pitr",
        one(f.table().with_inputs(pointInTimeRecovery=None)),
        None,
        ("table 'edw-aws-results' has point-in-time recovery off",),
    ),
    ("aws-dynamodb-encryption", one(f.table()), None, ()),
    (
        "aws-dynamodb-encryption",
        one(f.table().with_inputs(serverSideEncryption={"enabled": False})),
        None,
        ("does not enable serverSideEncryption",),
    ),
    (
        "aws-dynamodb-encryption",
        one(f.table()),
        {"requireCustomerManagedKey": True},
        ("a customer managed key is required",),
    ),
    # --- IAM
    ("aws-iam-no-wildcard-actions", one(f.consumer_policy()), None, ()),
    (
        "aws-iam-no-wildcard-actions",
        one(f.consumer_policy({"Sid": "All", "Effect": "Allow", "Action": "*", "Resource": STAR})),
        None,
        ("policy 'edw-aws-consumer' statement All allows the wildcard action '*'",),
    ),
    (
        "aws-iam-no-wildcard-actions",
        one(
            f.consumer_policy(
                {"Effect": "Allow", "Action": ["sqs:*", "logs:*"], "Resource": STAR},
                {"Effect": "Allow", "NotAction": "iam:*", "Resource": STAR},
            )
        ),
        {"allowedServiceWildcards": ["logs:*"]},
        ("statement #0 allows the wildcard action 'sqs:*'", "#1 allows NotAction"),
    ),
    (
        "aws-iam-no-wildcard-actions",
        one(f.consumer_policy({"Effect": "Deny", "Action": "*", "Resource": "*"})),
        None,
        (),
    ),
    (
        "aws-iam-no-wildcard-actions",
        one(
            f.irsa_role().with_inputs(
                inlinePolicies=[
                    {
                        "name": "inline",
                        "policy": f.doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}),
                    }
                ]
            )
        ),
        None,
        ("inline policy 'inline' of role 'edw-aws-consumer' statement #0 allows",),
    ),
    ("aws-iam-no-wildcard-resources", one(f.consumer_policy()), None, ()),
    (
        "aws-iam-no-wildcard-resources",
        one(
            f.consumer_policy(
                {
                    "Sid": "Discover",
                    "Effect": "Allow",
                    "Resource": "*",
                    "Action": [
                        "ec2:DescribeInstances",
                        "ec2:DescribeSubnets",
                        "pricing:GetProducts",
                        "sts:GetCallerIdentity",
                        "ecr:GetAuthorizationToken",
                    ],
                }
            )
        ),
        None,
        (),
    ),
    (
        "aws-iam-no-wildcard-resources",
        one(
            f.consumer_policy(
                {
                    "Sid": "Mixed",
                    "Effect": "Allow",
                    "Resource": ["*"],
                    "Action": [
                        "ec2:DescribeImages",
                        "sqs:ReceiveMessage",
                        "ec2:TerminateInstances",
                    ],
                }
            )
        ),
        None,
        ("statement Mixed grants Resource '*' to sqs:ReceiveMessage, ec2:TerminateInstances",),
    ),
    (
        "aws-iam-no-wildcard-resources",
        one(f.consumer_policy({"Effect": "Allow", "Resource": "*", "Action": "sqs:ListQueueTags"})),
        {"actionsWithoutResourceLevel": ["sqs:ListQueue*"]},
        (),
    ),
    (
        "aws-iam-no-wildcard-resources",
        one(
            f.consumer_policy({"Effect": "Allow", "NotResource": STAR, "Action": "sqs:SendMessage"})
        ),
        None,
        ("uses NotResource",),
    ),
    ("aws-iam-irsa-trust-scoped", one(f.irsa_role()), None, ()),
    (
        "aws-iam-irsa-trust-scoped",
        one(
            f.irsa_role(
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            )
        ),
        None,
        (),
    ),
    (
        "aws-iam-irsa-trust-scoped",
        one(f.irsa_role({**f.irsa_trust(), "Condition": {}})),
        None,
        (f"no StringEquals condition on {f.ISSUER}:sub", f"{f.ISSUER}:aud must be StringEquals"),
    ),
    (
        "aws-iam-irsa-trust-scoped",
        one(
            f.irsa_role(
                {
                    **f.irsa_trust(),
                    "Condition": {
                        "StringLike": {f"{f.ISSUER}:sub": "system:serviceaccount:*"},
                        "StringEquals": {f"{f.ISSUER}:aud": "sts.amazonaws.com"},
                    },
                }
            )
        ),
        None,
        ("is matched with StringLike", "no StringEquals condition on"),
    ),
    (
        "aws-iam-irsa-trust-scoped",
        one(f.irsa_role(f.irsa_trust("system:serviceaccount:edw:*"))),
        None,
        ("'system:serviceaccount:edw:*' is not one system:serviceaccount",),
    ),
    (
        "aws-iam-irsa-trust-scoped",
        one(
            f.irsa_role(
                {
                    **f.irsa_trust(),
                    "Condition": {
                        "StringEquals": {f"{f.ISSUER}:sub": "system:serviceaccount:edw:consumer"}
                    },
                }
            )
        ),
        {"requireAudience": False},
        (),
    ),
    # --- EKS and ECR
    ("aws-eks-secrets-encryption", lambda: [f.eks_component(), f.eks_cluster()], None, ()),
    (
        "aws-eks-secrets-encryption",
        one(f.eks_component(encryptionConfigKeyArn=None)),
        None,
        ("cluster 'edw-aws' does not envelope-encrypt secrets",),
    ),
    (
        "aws-eks-secrets-encryption",
        one(set_deep(f.eks_cluster(), "encryptionConfig.resources", [])),
        None,
        ("cluster 'edw-aws-eksCluster' does not envelope-encrypt",),
    ),
    ("aws-eks-control-plane-logging", lambda: [f.eks_component(), f.eks_cluster()], None, ()),
    (
        "aws-eks-control-plane-logging",
        one(f.eks_component(enabledClusterLogTypes=["api"])),
        None,
        ("does not ship control-plane logs: audit, authenticator",),
    ),
    (
        "aws-eks-control-plane-logging",
        one(f.eks_cluster()),
        {"requiredLogTypes": ["controllerManager"]},
        ("logs: controllerManager",),
    ),
    ("aws-eks-endpoint-restricted", lambda: [f.eks_component(), f.eks_cluster()], None, ()),
    (
        "aws-eks-endpoint-restricted",
        one(f.eks_component(publicAccessCidrs=None)),
        None,
        ("API endpoint is open to 0.0.0.0/0",),
    ),
    (
        "aws-eks-endpoint-restricted",
        one(f.eks_cluster(publicAccessCidrs=["0.0.0.0/0"])),
        None,
        ("cluster 'edw-aws-eksCluster' API endpoint is open to 0.0.0.0/0",),
    ),
    (
        "aws-eks-endpoint-restricted",
        one(f.eks_component(publicAccessCidrs=None, endpointPublicAccess=False)),
        None,
        (),
    ),
    (
        "aws-eks-endpoint-restricted",
        one(f.eks_component()),
        {"allowedCidrs": ["10.0.0.0/8"]},
        ("CIDR 203.0.113.0/24 is outside allowedCidrs",),
    ),
    # A real engine run: pulumi-eks's component arrives with `{}`. It is neither passed nor
    # failed by the EKS rules (the advisory below says so); its child is judged instead.
    *(
        (rule, one(f.opaque_eks_component()), None, ())
        for rule in (
            "aws-eks-secrets-encryption",
            "aws-eks-control-plane-logging",
            "aws-eks-endpoint-restricted",
        )
    ),
    (
        "aws-eks-secrets-encryption",
        lambda: [f.opaque_eks_component(), set_deep(f.eks_cluster(), "encryptionConfig", None)],
        None,
        ("cluster 'edw-aws-eksCluster' does not envelope-encrypt secrets",),
    ),
    (
        "aws-eks-control-plane-logging",
        lambda: [
            f.opaque_eks_component(),
            set_deep(f.eks_cluster(), "enabledClusterLogTypes", None),
        ],
        None,
        ("cluster 'edw-aws-eksCluster' does not ship control-plane logs: api, audit",),
    ),
    ("remote-component-inputs-hidden", lambda: [f.eks_component(), f.eks_cluster()], None, ()),
    (
        "remote-component-inputs-hidden",
        one(f.opaque_eks_component()),
        None,
        (
            "eks:index:Cluster 'edw-aws' reached the engine without inputs (a remote component "
            "whose provider does not send them): its own rules cannot judge it, so they judge "
            "its child aws:eks/cluster:Cluster instead",
        ),
    ),
    ("aws-ecr-scan-on-push", one(f.ecr_repository()), None, ()),
    (
        "aws-ecr-scan-on-push",
        one(f.ecr_repository().with_inputs(imageScanningConfiguration=None)),
        None,
        ("repository 'edw-consumer' does not scan images on push",),
    ),
    # --- Azure storage and Cosmos DB
    *[
        (rule, one(f.storage_account()), None, ())
        for rule in (
            "azure-storage-https-only",
            "azure-storage-min-tls",
            "azure-storage-no-public-blob",
            "azure-storage-shared-key-disabled",
        )
    ],
    (
        "azure-storage-https-only",
        one(f.storage_account().with_inputs(enableHttpsTrafficOnly=None)),
        None,
        ("storage account 'edwdevsa' must set enableHttpsTrafficOnly=true",),
    ),
    (
        "azure-storage-min-tls",
        one(f.storage_account().with_inputs(minimumTlsVersion="TLS1_0")),
        None,
        ("minimumTlsVersion is 'TLS1_0'; required: TLS1_2 or newer",),
    ),
    (
        "azure-storage-min-tls",
        one(f.storage_account()),
        {"minimumTlsVersion": "TLS1_3"},
        ("required: TLS1_3 or newer",),
    ),
    (
        "azure-storage-no-public-blob",
        one(f.storage_account().with_inputs(allowBlobPublicAccess=True)),
        None,
        ("must set allowBlobPublicAccess=false",),
    ),
    (
        "azure-storage-shared-key-disabled",
        one(f.storage_account().with_inputs(allowSharedKeyAccess=None)),
        None,
        ("must set allowSharedKeyAccess=false",),
    ),
    ("azure-cosmos-local-auth-disabled", one(f.cosmos_account()), None, ()),
    (
        "azure-cosmos-local-auth-disabled",
        one(f.cosmos_account().with_inputs(disableLocalAuth=False)),
        None,
        ("'edw-dev-cosmos' must set disableLocalAuth=true",),
    ),
    ("azure-cosmos-min-tls", one(f.cosmos_account()), None, ()),
    (
        "azure-cosmos-min-tls",
        one(f.cosmos_account().with_inputs(minimalTlsVersion="Tls11")),
        None,
        ("minimalTlsVersion is 'Tls11'; required: Tls12 or newer",),
    ),
    # --- AKS
    *[
        (rule, one(f.managed_cluster()), None, ())
        for rule in (
            "azure-aks-workload-identity",
            "azure-aks-local-accounts-disabled",
            "azure-aks-azure-rbac",
            "azure-aks-network-policy",
        )
    ],
    (
        "azure-aks-workload-identity",
        one(f.managed_cluster().with_inputs(oidcIssuerProfile=None, securityProfile={})),
        None,
        ("must enable oidcIssuerProfile", "must enable securityProfile.workloadIdentity"),
    ),
    (
        "azure-aks-local-accounts-disabled",
        one(f.managed_cluster().with_inputs(disableLocalAccounts=False)),
        None,
        ("'edw-dev-aks' must set disableLocalAccounts=true",),
    ),
    (
        "azure-aks-azure-rbac",
        one(f.managed_cluster().with_inputs(enableRBAC=False, aadProfile={"managed": True})),
        None,
        ("disables Kubernetes RBAC", "must set aadProfile.enableAzureRBAC=true"),
    ),
    (
        "azure-aks-network-policy",
        one(set_deep(f.managed_cluster(), "networkProfile.networkPolicy", None)),
        None,
        ("networkPolicy is None; allowed: cilium, calico, azure",),
    ),
    (
        "azure-aks-network-policy",
        one(f.managed_cluster()),
        {"allowedNetworkPolicies": ["calico"]},
        ("networkPolicy is 'cilium'; allowed: calico",),
    ),
    # --- Azure authorization and API versions
    ("azure-data-role-scope", one(f.role_assignment(f.QUEUE_SCOPE)), None, ()),
    (
        "azure-data-role-scope",
        one(f.role_assignment(f.RESOURCE_GROUP)),
        None,
        ("grants data role Storage Queue Data Message Processor at '/subscriptions/",),
    ),
    (
        "azure-data-role-scope",
        one(f.role_assignment(f.SUBSCRIPTION + "/")),
        None,
        ("scope it to the storage account",),
    ),
    (
        "azure-data-role-scope",
        one(
            f.role_assignment(  # Reader is a control-plane role
                f.SUBSCRIPTION, "acdd72a7-3385-48ef-bd42-f606fba81ae7"
            )
        ),
        None,
        (),
    ),
    (
        "azure-data-role-scope",
        one(f.role_assignment(f.RESOURCE_GROUP, f.ACR_PUSH_ROLE)),
        None,
        ("grants data role AcrPush at '/subscriptions/",),
    ),
    ("azure-data-role-scope", one(f.role_assignment(f.REGISTRY_SCOPE, f.ACR_PULL_ROLE)), None, ()),
    (
        "azure-data-role-scope",
        lambda: [f.custom_role(), f.role_assignment(f.RESOURCE_GROUP, f.CUSTOM_ROLE)],
        None,
        ("grants data role 'edw-dev-message-updater' (custom, with data actions)",),
    ),
    (
        "azure-data-role-scope",
        lambda: [  # in a preview the custom role's id is unknown: its dependency tells
            role := f.custom_role(),
            f.role_assignment(f.RESOURCE_GROUP, "")
            .with_inputs(roleDefinitionId=None)
            .depends_on(role),
        ],
        None,
        ("(custom, with data actions)",),
    ),
    (
        "azure-data-role-scope",
        lambda: [f.custom_role(), f.role_assignment(f.QUEUE_SCOPE, f.CUSTOM_ROLE)],
        None,
        (),
    ),
    (
        "azure-data-role-scope",
        lambda: [
            f.custom_role(data_actions=[]),
            f.role_assignment(f.RESOURCE_GROUP, f.CUSTOM_ROLE),
        ],
        None,
        (),
    ),
    # --- alarms
    *[
        (rule, f.aws_graph, None, ())
        for rule in ("dead-letter-queue-alarmed", "work-queue-age-alarmed", "alarm-has-actions")
    ],
    (
        "dead-letter-queue-alarmed",
        lambda: [f.dlq(), f.work_queue(f.dlq())],
        None,
        ("dead-letter queue 'edw-aws-dlq' has no alarm on ApproximateNumberOfMessagesVisible",),
    ),
    (
        "dead-letter-queue-alarmed",  # an alarm on another metric of the DLQ does not count
        lambda: [
            dead := f.dlq(),
            f.work_queue(dead),
            f.alarm("age", "ApproximateAgeOfOldestMessage", dead),
        ],
        None,
        ("dead-letter queue 'edw-aws-dlq' has no alarm",),
    ),
    (
        "work-queue-age-alarmed",
        lambda: [dead := f.dlq(), f.work_queue(dead), f.interruption_queue()],
        None,
        ("work queue 'edw-aws-work' has no alarm on ApproximateAgeOfOldestMessage",),
    ),
    (
        "alarm-has-actions",
        lambda: [
            f.alarm("silent", "ApproximateAgeOfOldestMessage", f.work_queue(), alarmActions=[]),
            f.alarm("no-ok", "ApproximateAgeOfOldestMessage", f.work_queue(), okActions=None),
        ],
        None,
        (
            "alarm 'silent' has no alarm action: it would notify nobody",
            "alarm 'no-ok' has no OK action",
        ),
    ),
    # --- job workflows
    ("keda-scaledjob-deadline-and-undisrupted", one(f.scaled_job()), None, ()),
    (
        "keda-scaledjob-deadline-and-undisrupted",
        one(
            f.scaled_job(
                activeDeadlineSeconds=None,
                template={"metadata": {}, "spec": {"containers": [f.container()]}},
            )
        ),
        None,
        (
            "ScaledJob 'nightly' has no jobTargetRef.activeDeadlineSeconds",
            "ScaledJob 'nightly' pods lack the karpenter.sh/do-not-disrupt",
        ),
    ),
    ("keda-scaledobject-max-replicas", one(f.scaled_job()), None, ()),
    (
        "keda-scaledobject-max-replicas",
        one(set_deep(f.scaled_job(), "spec.maxReplicaCount", 500.0)),
        None,
        ("ScaledJob 'nightly' maxReplicaCount 500 exceeds 100",),
    ),
    (
        "k8s-read-only-root-filesystem",  # job pods are workloads like any other
        one(
            set_deep(
                f.scaled_job(),
                "spec.jobTargetRef.template.spec.containers.0.securityContext.readOnlyRootFilesystem",
                False,
            )
        ),
        None,
        ("does not set readOnlyRootFilesystem=true",),
    ),
    # --- router
    ("aws-sns-topic-encrypted", one(f.topic()), None, ()),
    (
        "aws-sns-topic-encrypted",
        one(f.topic().with_inputs(kmsMasterKeyId=None)),
        None,
        ("topic 'edw-aws-router' is not encrypted at rest",),
    ),
    ("aws-sns-topic-tls-only", f.routed_graph, None, ()),
    (
        "aws-sns-topic-tls-only",
        lambda: [router := f.topic(), f.topic_policy(router, Effect="Allow")],
        None,
        ("topic 'edw-aws-router' has no topic policy denying requests without TLS",),
    ),
    ("aws-sns-topic-tls-only", one(f.topic()), None, ("has no topic policy denying",)),
    ("aws-sns-subscription-raw-and-redriven", f.routed_graph, None, ()),
    (
        "aws-sns-subscription-raw-and-redriven",
        lambda: [
            f.subscription(f.work_queue(), f.dlq(), rawMessageDelivery=False, redrivePolicy=None)
        ],
        None,
        ("does not use raw message delivery", "has no redrive policy"),
    ),
    (
        "aws-sns-subscription-raw-and-redriven",
        lambda: [f.subscription(f.work_queue(), f.dlq(), protocol="http", endpoint="http://p")],
        None,
        ("delivers over plain http: use https",),
    ),
    ("aws-sqs-subscribed-queue-accepts-only-its-topic", f.routed_graph, None, ()),
    (
        "aws-sqs-subscribed-queue-accepts-only-its-topic",
        lambda: f.routed_graph(condition=None),
        None,
        (
            "queue 'edw-aws-work' lets SNS or anyone send without an aws:SourceArn condition",
            "queue 'edw-aws-dlq' lets SNS or anyone send without an aws:SourceArn condition",
        ),
    ),
    (
        "aws-sqs-subscribed-queue-accepts-only-its-topic",
        lambda: [r for r in f.routed_graph() if r.name != "edw-aws-dlq-policy"],
        None,
        ("queue 'edw-aws-dlq' is subscribed to a topic but its queue policy does not let SNS",),
    ),
    ("azure-eventgrid-topic-entra-only", one(f.event_grid_topic()), None, ()),
    (
        "azure-eventgrid-topic-entra-only",
        one(f.event_grid_topic(disableLocalAuth=False, minimumTlsVersionAllowed="1.0")),
        None,
        ("accepts access keys: set disableLocalAuth", "allows TLS below 1.2"),
    ),
    (
        "azure-eventgrid-subscription-identity-and-dead-letter",
        lambda: [f.event_subscription(), f.webhook_subscription()],
        None,
        (),
    ),
    (
        "azure-eventgrid-subscription-identity-and-dead-letter",
        one(
            f.event_subscription(
                deliveryWithResourceIdentity=None,
                destination={"endpointType": "StorageQueue", "queueName": "orders"},
                deadLetterWithResourceIdentity=None,
            )
        ),
        None,
        ("does not dead-letter with the topic's identity", "delivers to a queue without"),
    ),
    (
        "azure-eventgrid-subscription-identity-and-dead-letter",
        one(f.webhook_subscription("http://partner.example.com/hook")),
        None,
        ("delivers to a webhook over plain http: use https",),
    ),
    (
        "router-delivery-failures-alarmed",
        lambda: [*f.routed_graph(), f.alarm("failed", "NumberOfNotificationsFailed", f.topic())],
        None,
        (),
    ),
    (
        "router-delivery-failures-alarmed",
        lambda: [*f.routed_graph(), f.alarm("age", "ApproximateAgeOfOldestMessage", f.topic())],
        None,
        ("router topic 'edw-aws-router' has no alarm on NumberOfNotificationsFailed",),
    ),
    ("router-delivery-failures-alarmed", lambda: [f.topic()], None, ()),  # delivers nothing
    ("azure-alert-has-actions", one(f.azure_metric_alert()), None, ()),
    (
        "azure-queues-alerted",
        lambda: [
            f.azure_role_queue("work", "work"),
            f.azure_role_queue("work-poison", "poison"),
            f.azure_queue_alert("QueueDepth", "work-poison"),
            f.azure_queue_alert("OldestMessageAgeSeconds", "work"),
        ],
        None,
        (),
    ),
    (
        "azure-queues-alerted",
        lambda: [
            f.azure_role_queue("orders", "work"),
            f.azure_role_queue("orders-poison", "poison"),
            f.azure_queue_alert("QueueDepth", "work-poison"),  # another workflow's
            f.azure_queue_alert("QueueDepth", "orders"),  # the wrong metric for a work queue
        ],
        None,
        (
            "work queue 'orders' is in no alert on OldestMessageAgeSeconds",
            "poison queue 'orders-poison' is in no alert on QueueDepth",
        ),
    ),
    (
        "azure-alert-has-actions",
        one(f.azure_metric_alert(actions=[], autoMitigate=False)),
        None,
        (
            "alert 'alerts-router-dead-lettered' has no action group",
            "alert 'alerts-router-dead-lettered' does not auto-mitigate",
        ),
    ),
    # --- resilience
    ("results-table-replicated", lambda: [f.table(), f.cosmos_account()], None, ()),
    (
        "results-table-replicated",
        lambda: [f.table(), f.cosmos_account()],
        {"requireReplica": True},
        (
            "table 'edw-aws-results' has no replica in another region",
            "Cosmos DB account 'edw-dev-cosmos' is in one location",
        ),
    ),
    (
        "results-table-replicated",
        lambda: [
            f.table().with_inputs(replicas=[{"regionName": "us-west-2"}]),
            f.cosmos_account().with_inputs(
                locations=[{"locationName": "westeurope"}, {"locationName": "northeurope"}]
            ),
        ],
        {"requireReplica": True},
        (),
    ),
    ("azure-no-preview-api", lambda: [f.managed_cluster(), f.storage_account()], None, ()),
    (
        "azure-no-preview-api",
        lambda: [f.Rec("azure-native:containerservice/v20250202preview:ManagedCluster", "aks", {})],
        None,
        ("uses the preview API azure-native:containerservice/v20250202preview:ManagedCluster",),
    ),
    (
        "azure-no-preview-api",
        lambda: [f.Rec("azure-native:containerservice/v20250202preview:ManagedCluster", "aks", {})],
        {"allowedPreviewTypes": ["azure-native:containerservice/v20250202preview:ManagedCluster"]},
        (),
    ),
    # --- Kubernetes workloads
    *[(rule, lambda: [f.deployment(), f.azure_consumer()], None, ()) for rule in CONTAINER_RULES],
    (
        "k8s-run-as-non-root",
        one(
            f.deployment(
                f.container(securityContext={"runAsUser": 0.0, "readOnlyRootFilesystem": True})
            )
        ),
        None,
        (
            "Deployment 'consumer' container 'consumer' does not set runAsNonRoot=true",
            "runs as UID 0",
        ),
    ),
    (
        "k8s-run-as-non-root",
        one(
            set_deep(
                f.deployment(f.container(securityContext={})),
                "spec.template.spec.securityContext",
                {"runAsNonRoot": True},
            )
        ),
        None,
        (),
    ),
    (  # platform namespaces are exempt by default, and teams can change that
        "k8s-run-as-non-root",
        one(in_namespace(f.deployment(f.container(securityContext={})), "kube-system")),
        None,
        (),
    ),
    (
        "k8s-run-as-non-root",
        one(in_namespace(f.deployment(f.container(securityContext={})), "kube-system")),
        {"exemptNamespaces": []},
        ("does not set runAsNonRoot=true",),
    ),
    (
        "k8s-read-only-root-filesystem",
        one(f.deployment(f.container(securityContext={"runAsNonRoot": True}))),
        None,
        ("does not set readOnlyRootFilesystem=true",),
    ),
    (
        "k8s-no-privilege-escalation",
        one(f.deployment(f.container(securityContext={"privileged": True}))),
        None,
        ("does not set allowPrivilegeEscalation=false", "container 'consumer' is privileged"),
    ),
    (
        "k8s-resources-set",
        one(f.deployment(f.container(resources={"requests": {"cpu": "250m"}}))),
        None,
        ("has no requests for memory", "has no limits for cpu, memory"),
    ),
    (
        "k8s-resources-set",
        one(
            f.deployment(
                f.container(
                    resources={
                        "requests": {"cpu": "250m", "memory": "1Gi"},
                        "limits": {"memory": "1Gi"},
                    }
                )
            )
        ),
        {"requiredLimits": ["memory"]},
        (),
    ),
    (
        "k8s-probes-set",
        one(f.deployment(f.container(livenessProbe=None))),
        None,
        ("container 'consumer' has no livenessProbe",),
    ),
    ("k8s-probes-set", lambda: [f.custom("batch/v1", "Job", "migrate", {})], None, ()),
    (
        "k8s-no-latest-image",
        one(f.deployment(f.container(image="registry:5000/edw/consumer"))),
        None,
        ("image 'registry:5000/edw/consumer' has no tag (implies :latest)",),
    ),
    (
        "k8s-no-latest-image",
        one(f.deployment(f.container(image="nginx:latest"))),
        None,
        ("image 'nginx:latest' uses :latest",),
    ),
    (
        "k8s-no-latest-image",
        one(f.deployment(f.container(image="ghcr.io/x/consumer@sha256:" + "a" * 64))),
        None,
        (),
    ),
    # --- a workflow's handler: a native sidecar, checked like the consumer
    *[
        (rule, lambda: [f.with_handler(f.deployment()), f.with_handler(f.scaled_job())], None, ())
        for rule in CONTAINER_RULES
    ],
    (
        "k8s-run-as-non-root",
        one(
            f.with_handler(
                f.deployment(),
                f.handler(securityContext={"runAsUser": 0.0, "readOnlyRootFilesystem": True}),
            )
        ),
        None,
        (
            "Deployment 'consumer' container 'handler' does not set runAsNonRoot=true",
            "container 'handler' runs as UID 0",
        ),
    ),
    (
        "k8s-read-only-root-filesystem",
        one(f.with_handler(f.deployment(), f.handler(securityContext={"runAsNonRoot": True}))),
        None,
        ("Deployment 'consumer' container 'handler' does not set readOnlyRootFilesystem=true",),
    ),
    (
        "k8s-read-only-root-filesystem",  # a job workflow's handler too
        one(f.with_handler(f.scaled_job(), f.handler(securityContext={"runAsNonRoot": True}))),
        None,
        ("ScaledJob 'nightly' container 'handler' does not set readOnlyRootFilesystem=true",),
    ),
    (
        "k8s-no-privilege-escalation",
        one(f.with_handler(f.deployment(), f.handler(securityContext={"privileged": True}))),
        None,
        (
            "container 'handler' does not set allowPrivilegeEscalation=false",
            "container 'handler' is privileged",
        ),
    ),
    (
        "k8s-resources-set",
        one(f.with_handler(f.deployment(), f.handler(resources={"requests": {"cpu": "100m"}}))),
        None,
        ("container 'handler' has no requests for memory", "container 'handler' has no limits"),
    ),
    (
        "k8s-probes-set",
        one(f.with_handler(f.deployment(), f.handler(readinessProbe=None, livenessProbe=None))),
        None,
        ("Deployment 'consumer' container 'handler' has no livenessProbe, readinessProbe",),
    ),
    (  # an init container that runs to completion first is no sidecar: no probes needed
        "k8s-probes-set",
        one(
            f.with_handler(
                f.deployment(),
                f.handler(restartPolicy=None, readinessProbe=None, livenessProbe=None),
            )
        ),
        None,
        (),
    ),
    (
        "k8s-no-latest-image",
        one(f.with_handler(f.scaled_job(), f.handler(image="orders-handler"))),
        None,
        ("ScaledJob 'nightly' container 'handler' image 'orders-handler' has no tag",),
    ),
    ("k8s-helm-chart-pinned", one(f.helm_release()), None, ()),
    (
        "k8s-helm-chart-pinned",
        one(f.helm_release().with_inputs(version=None)),
        None,
        ("Helm release 'karpenter' does not pin a chart version",),
    ),
    # --- Cost and scaling
    (
        "karpenter-nodepool-limits",
        one(f.nodepool("spot", ["spot"], {"cpu": 64.0, "memory": "256Gi"})),
        None,
        (),
    ),
    (
        "karpenter-nodepool-limits",
        one(f.nodepool("spot", ["spot"])),
        None,
        ("NodePool 'spot' has no spec.limits.cpu", "has no spec.limits.memory"),
    ),
    (
        "karpenter-nodepool-limits",
        one(f.nodepool("spot", ["spot"], {"cpu": "512000m", "memory": "2Ti"})),
        None,
        (
            "spec.limits.cpu is 512000m (512 vCPU); allowed at most 256 vCPU",
            "spec.limits.memory is 2Ti (2048 Gi); allowed at most 1024 Gi",
        ),
    ),
    (
        "karpenter-nodepool-limits",
        one(f.nodepool("spot", ["spot"], {"cpu": "64", "memory": "lots"})),
        None,
        ("'lots' is not a Kubernetes quantity",),
    ),
    (
        "karpenter-nodepool-limits",
        one(f.nodepool("spot", ["spot"], {"cpu": "64", "memory": "256Gi"})),
        {"maxCpu": 32},
        ("allowed at most 32 vCPU",),
    ),
    ("keda-scaledobject-max-replicas", one(f.scaled_object()), None, ()),
    (
        "keda-scaledobject-max-replicas",
        one(f.scaled_object(max_replicas=None)),
        None,
        ("ScaledObject 'consumer' has no maxReplicaCount",),
    ),
    (
        "keda-scaledobject-max-replicas",
        one(f.scaled_object()),
        {"maxReplicas": 10},
        ("maxReplicaCount 30 exceeds 10",),
    ),
    (
        "keda-scaledobject-max-replicas",
        one(set_deep(f.scaled_object(), "spec.minReplicaCount", 40.0)),
        None,
        ("minReplicaCount 40 exceeds 30",),
    ),
    ("karpenter-spot-beside-on-demand", f.aws_graph, None, ()),
    (
        "karpenter-spot-beside-on-demand",
        lambda: [f.nodepool("mixed", ["spot", "on-demand"])],
        None,
        (),
    ),
    (
        "karpenter-spot-beside-on-demand",
        lambda: [f.nodepool("default", None)],
        None,
        ("no NodePool allows spot capacity (pools: 'default')",),
    ),
    (
        "karpenter-spot-beside-on-demand",
        lambda: [f.nodepool("spot", ["spot"])],
        None,
        ("no NodePool allows on-demand capacity",),
    ),
    (
        "karpenter-spot-beside-on-demand",
        lambda: [
            set_deep(
                f.nodepool("p", ["spot"]), "spec.template.spec.requirements.1.operator", "NotIn"
            )
        ],
        None,
        ("no NodePool allows spot capacity",),
    ),
    ("karpenter-spot-beside-on-demand", lambda: [f.deployment()], None, ()),
    # --- Stack-level: KEDA authentication, dead letters, drain time
    ("keda-trigger-authentication-exists", f.aws_graph, None, ()),
    (
        "keda-trigger-authentication-exists",
        lambda: [f.scaled_object(auth=None)],
        None,
        ("ScaledObject 'consumer' has no trigger with an authenticationRef",),
    ),
    (
        "keda-trigger-authentication-exists",
        lambda: [f.scaled_object(), f.trigger_auth(namespace="keda")],
        None,
        (
            "refers to TriggerAuthentication 'consumer-auth', which this stack does not define in "
            "namespace 'edw'",
        ),
    ),
    (
        "keda-trigger-authentication-exists",
        lambda: [
            set_deep(
                f.scaled_object(),
                "spec.triggers.0.authenticationRef.kind",
                "ClusterTriggerAuthentication",
            ),
            f.custom("keda.sh/v1alpha1", "ClusterTriggerAuthentication", "consumer-auth", {}),
        ],
        None,
        (),
    ),
    ("queue-has-dead-letter", f.aws_graph, None, ()),
    ("queue-has-dead-letter", lambda: [f.work_queue(d := f.tagged_dlq()), d], None, ()),
    (  # an unmarked queue that a redrive policy was built from is a DLQ too
        "queue-has-dead-letter",
        lambda: [f.work_queue(d := f.tagged_dlq().with_inputs(tags={})), d],
        None,
        (),
    ),
    ("queue-has-dead-letter", f.azure_graph, None, ()),
    (
        "queue-has-dead-letter",
        lambda: [f.work_queue(), f.dlq()],
        None,
        ("queue 'edw-aws-work' does not redrive to a dead-letter queue of this stack",),
    ),
    (
        "queue-has-dead-letter",
        lambda: [f.azure_queue("edw-dev-work")],
        None,
        ("queue 'edw-dev-work' has no poison queue 'edw-dev-work-poison'",),
    ),
    (
        "queue-has-dead-letter",
        lambda: [f.azure_queue("edw-dev-work")],
        {"exemptQueueNames": ["edw-dev-work"]},
        (),
    ),
    ("consumer-grace-below-visibility", f.aws_graph, None, ()),
    ("consumer-grace-below-visibility", f.azure_graph, None, ()),
    (  # unlinked consumer: the DLQ (default 30 s visibility) is not a work queue
        "consumer-grace-below-visibility",
        lambda: [f.work_queue(d := f.tagged_dlq()), d, f.deployment(), f.scaled_object()],
        None,
        (),
    ),
    (
        "consumer-grace-below-visibility",
        lambda: [
            w := f.work_queue().with_inputs(visibilityTimeoutSeconds=30.0),
            f.deployment().depends_on(w),
            f.scaled_object(),
        ],
        None,
        (
            "consumer 'consumer' terminationGracePeriodSeconds 45 is not below "
            "queue 'edw-aws-work' visibilityTimeoutSeconds 30",
        ),
    ),
    (
        "consumer-grace-below-visibility",
        lambda: [  # unlinked: every work queue counts
            f.work_queue().with_inputs(visibilityTimeoutSeconds=None),
            f.deployment(),
            f.scaled_object(),
        ],
        None,
        ("visibilityTimeoutSeconds 30",),
    ),
    (
        "consumer-grace-below-visibility",
        lambda: [
            f.deployment(
                f.container(env=[{"name": "EDW_VISIBILITY_TIMEOUT_SECONDS", "value": "40"}]),
                grace=60.0,
            ),
            f.scaled_object(),
        ],
        None,
        ("terminationGracePeriodSeconds 60 is not below env EDW_VISIBILITY_TIMEOUT_SECONDS 40",),
    ),
    (
        "consumer-grace-below-visibility",
        lambda: [f.deployment(), f.scaled_object()],
        None,
        ("consumer 'consumer': no queue visibility timeout found",),
    ),
]


@pytest.mark.parametrize(
    ("rule", "graph", "config", "expected"),
    CASES,
    ids=[f"{c[0]}-{'pass' if not c[3] else 'fail'}-{i}" for i, c in enumerate(CASES)],
)
def test_rule(rule: str, graph: Graph, config: dict | None, expected: tuple[str, ...]) -> None:
    assert_reports(messages(rule, graph(), config), *expected)


def test_every_rule_has_a_passing_and_a_failing_case() -> None:
    passing = {c[0] for c in CASES if not c[3]}
    failing = {c[0] for c in CASES if c[3]}
    names = {p.name for p in POLICIES}
    assert names - passing == set()
    assert names - failing == set()


def test_a_team_can_make_replication_mandatory() -> None:
    config = PackConfig.parse(
        {"results-table-replicated": {"enforcementLevel": "mandatory", "requireReplica": True}}
    )
    [violation] = [
        v for v in evaluate([f.table()], config) if v.policy == "results-table-replicated"
    ]
    assert violation.mandatory
