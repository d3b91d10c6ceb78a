"""Hand-written resources shaped like the program's registrations (camelCase, floats, JSON
strings), compliant by default. Tests break one property at a time to prove each rule."""

from __future__ import annotations

import json
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
OIDC_PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"
SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = f"{SUBSCRIPTION}/resourceGroups/edw-dev"
QUEUE_PROCESSOR_ROLE = "8a0f0c08-91a1-4084-bc3d-661d67233fed"
CUSTOM_RESOURCE = "kubernetes:apiextensions.k8s.io:CustomResource"


@dataclass
class Rec:
    """A recorded resource, with the fields of stacks.offline.RecordedResource."""

    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    parent: str = ""
    provider: str = ""
    custom: bool = True

    @property
    def urn(self) -> str:
        return f"urn:pulumi:test::edw::{self.type}::{self.name}"

    def with_inputs(self, **changes: Any) -> Rec:
        """A copy with top-level inputs replaced (None removes the key)."""
        inputs = deepcopy(self.inputs)
        for key, value in changes.items():
            if value is None:
                inputs.pop(key, None)
            else:
                inputs[key] = value
        return Rec(self.type, self.name, inputs, deepcopy(self.outputs), list(self.dependencies))

    def depends_on(self, *others: Rec) -> Rec:
        self.dependencies.extend(o.urn for o in others)
        return self


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


# --- AWS -----------------------------------------------------------------------------------------


def dlq() -> Rec:
    return Rec(
        "aws:sqs/queue:Queue",
        "edw-aws-dlq",
        {
            "name": "edw-aws-dlq",
            "sqsManagedSseEnabled": True,
            "messageRetentionSeconds": 1209600.0,
            "redriveAllowPolicy": json.dumps(
                {
                    "redrivePermission": "byQueue",
                    "sourceQueueArns": [f"arn:aws:sqs:{REGION}:{ACCOUNT}:edw-aws-work"],
                }
            ),
        },
    )


def tagged_dlq() -> Rec:
    """A DLQ whose redrive allow policy is a separate RedriveAllowPolicy resource."""
    return dlq().with_inputs(redriveAllowPolicy=None, tags={"edw/role": "dead-letter"})


def work_queue(dead_letter: Rec | None = None) -> Rec:
    queue = Rec(
        "aws:sqs/queue:Queue",
        "edw-aws-work",
        {
            "name": "edw-aws-work",
            "sqsManagedSseEnabled": True,
            "visibilityTimeoutSeconds": 120.0,
            "receiveWaitTimeSeconds": 20.0,
            "messageRetentionSeconds": 345600.0,
            "redrivePolicy": json.dumps(
                {
                    "deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:edw-aws-dlq",
                    "maxReceiveCount": 5,
                }
            ),
            "tags": {"edw/role": "work"},
        },
        outputs={"url": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/edw-aws-work"},
    )
    return queue.depends_on(dead_letter) if dead_letter else queue


def interruption_queue() -> Rec:
    return Rec(
        "aws:sqs/queue:Queue",
        "edw-aws-interruption",
        {
            "name": "edw-aws-interruption",
            "sqsManagedSseEnabled": True,
            "messageRetentionSeconds": 300.0,
            "tags": {"edw/role": "karpenter-interruption"},
        },
    )


def deny_insecure_transport(queue_arn: str) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sqs:*",
        "Resource": queue_arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def queue_policy(queue: Rec, *extra: dict[str, Any]) -> Rec:
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue.inputs['name']}"
    policy = doc(deny_insecure_transport(arn), *extra)
    return Rec(
        "aws:sqs/queuePolicy:QueuePolicy",
        f"{queue.name}-policy",
        {"queueUrl": queue.outputs.get("url", ""), "policy": policy},
    ).depends_on(queue)


def table() -> Rec:
    return Rec(
        "aws:dynamodb/table:Table",
        "edw-aws-results",
        {
            "billingMode": "PAY_PER_REQUEST",
            "hashKey": "pk",
            "attributes": [{"name": "pk", "type": "S"}],
            "pointInTimeRecovery": {"enabled": True},
            "serverSideEncryption": {"enabled": True},
            "deletionProtectionEnabled": False,
        },
    )


def irsa_trust(service_account: str = "system:serviceaccount:edw:consumer") -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Principal": {"Federated": OIDC_PROVIDER_ARN},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {
                f"{ISSUER}:sub": service_account,
                f"{ISSUER}:aud": "sts.amazonaws.com",
            }
        },
    }


def irsa_role(trust: dict[str, Any] | None = None) -> Rec:
    return Rec(
        "aws:iam/role:Role",
        "edw-aws-consumer",
        {"assumeRolePolicy": doc(trust or irsa_trust())},
    )


def consumer_policy(*statements: dict[str, Any]) -> Rec:
    default = {
        "Sid": "ConsumeWorkQueue",
        "Effect": "Allow",
        "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
        "Resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:edw-aws-work",
    }
    return Rec(
        "aws:iam/rolePolicy:RolePolicy",
        "edw-aws-consumer",
        {"role": "edw-aws-consumer", "policy": doc(*(statements or (default,)))},
    )


def eks_component(**changes: Any) -> Rec:
    return Rec(
        "eks:index:Cluster",
        "edw-aws",
        {
            "version": "1.34",
            "encryptionConfigKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd",
            "enabledClusterLogTypes": ["api", "audit", "authenticator"],
            "endpointPublicAccess": True,
            "endpointPrivateAccess": True,
            "publicAccessCidrs": ["203.0.113.0/24"],
            "authenticationMode": "API",
        },
        custom=False,
    ).with_inputs(**changes)


def opaque_eks_component() -> Rec:
    """What a real engine run analyses for pulumi-eks's component: a registration without inputs
    (its bundled Node SDK predates component inputs)."""
    return Rec("eks:index:Cluster", "edw-aws", {}, custom=False)


def eks_cluster(**vpc_changes: Any) -> Rec:
    vpc = {
        "subnetIds": ["subnet-1", "subnet-2"],
        "endpointPublicAccess": True,
        "endpointPrivateAccess": True,
        "publicAccessCidrs": ["203.0.113.0/24"],
    }
    vpc.update(vpc_changes)
    return Rec(
        "aws:eks/cluster:Cluster",
        "edw-aws-eksCluster",
        {
            "encryptionConfig": {
                "provider": {"keyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd"},
                "resources": ["secrets"],
            },
            "enabledClusterLogTypes": ["api", "audit", "authenticator", "scheduler"],
            "vpcConfig": vpc,
        },
    )


def ecr_repository() -> Rec:
    return Rec(
        "aws:ecr/repository:Repository",
        "edw-consumer",
        {"imageScanningConfiguration": {"scanOnPush": True}, "imageTagMutability": "IMMUTABLE"},
    )


def helm_release() -> Rec:
    return Rec(
        "kubernetes:helm.sh/v3:Release",
        "karpenter",
        {
            "chart": "oci://public.ecr.aws/karpenter/karpenter",
            "version": "1.8.1",
            "namespace": "kube-system",
            "values": {"settings": {"clusterName": "edw-aws"}},
        },
    )


# --- Azure ---------------------------------------------------------------------------------------


def storage_account() -> Rec:
    return Rec(
        "azure-native:storage:StorageAccount",
        "edwdevsa",
        {
            "accountName": "edwdevsa",
            "kind": "StorageV2",
            "sku": {"name": "Standard_LRS"},
            "enableHttpsTrafficOnly": True,
            "minimumTlsVersion": "TLS1_2",
            "allowBlobPublicAccess": False,
            "allowSharedKeyAccess": False,
        },
    )


def azure_queue(name: str) -> Rec:
    return Rec(
        "azure-native:storage:Queue",
        name,
        {"accountName": "edwdevsa", "resourceGroupName": "edw-dev", "queueName": name},
    )


def cosmos_account() -> Rec:
    return Rec(
        "azure-native:cosmosdb:DatabaseAccount",
        "edw-dev-cosmos",
        {
            "databaseAccountOfferType": "Standard",
            "capabilities": [{"name": "EnableTable"}, {"name": "EnableServerless"}],
            "disableLocalAuth": True,
            "minimalTlsVersion": "Tls12",
        },
    )


def managed_cluster() -> Rec:
    return Rec(
        "azure-native:containerservice:ManagedCluster",
        "edw-dev-aks",
        {
            "oidcIssuerProfile": {"enabled": True},
            "securityProfile": {"workloadIdentity": {"enabled": True}},
            "disableLocalAccounts": True,
            "enableRBAC": True,
            "aadProfile": {"enableAzureRBAC": True, "managed": True},
            "networkProfile": {
                "networkPlugin": "azure",
                "networkPluginMode": "overlay",
                "networkDataplane": "cilium",
                "networkPolicy": "cilium",
            },
            "nodeProvisioningProfile": {"mode": "Auto"},
        },
    )


def role_assignment(scope: str, role: str = QUEUE_PROCESSOR_ROLE) -> Rec:
    return Rec(
        "azure-native:authorization:RoleAssignment",
        "edw-dev-consumer-queue",
        {
            "scope": scope,
            "roleDefinitionId": f"{SUBSCRIPTION}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{role}",
            "principalId": "11111111-1111-1111-1111-111111111111",
            "principalType": "ServicePrincipal",
        },
    )


ACR_PULL_ROLE = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
ACR_PUSH_ROLE = "8311e382-0749-4cb8-b61a-304f252e45ec"
CUSTOM_ROLE = "5b0b9d0e-0000-5000-8000-000000000001"
REGISTRY_SCOPE = f"{RESOURCE_GROUP}/providers/Microsoft.ContainerRegistry/registries/edwdevacr"


def custom_role(data_actions: list[str] | None = None) -> Rec:
    actions = (
        ["Microsoft.Storage/storageAccounts/queueServices/queues/messages/write"]
        if data_actions is None
        else data_actions
    )
    return Rec(
        "azure-native:authorization:RoleDefinition",
        "edw-dev-message-updater",
        {
            "roleDefinitionId": CUSTOM_ROLE,
            "roleName": "edw-dev queue message updater",
            "scope": RESOURCE_GROUP,
            "assignableScopes": [RESOURCE_GROUP],
            "permissions": [{"dataActions": actions}],
        },
    )


QUEUE_SCOPE = (
    f"{RESOURCE_GROUP}/providers/Microsoft.Storage/storageAccounts/edwdevsa/"
    "queueServices/default/queues/edw-dev-work"
)


# --- Kubernetes ----------------------------------------------------------------------------------


def container(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "consumer",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/edw-consumer:0.1.0",
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001.0,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 9464.0}},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 9464.0}},
        "env": [{"name": "EDW_QUEUE_URL", "value": "https://sqs.example/edw-aws-work"}],
    }
    spec.update(changes)
    return spec


def handler(**changes: Any) -> dict[str, Any]:
    """A workflow's handler as the program renders it: a native sidecar (an init container with
    restartPolicy Always), hardened like the consumer, with TCP probes."""
    probe = {"tcpSocket": {"port": "handler"}}
    spec = container(
        name="handler",
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/orders-handler@sha256:" + "c" * 64,
        resources={
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        restartPolicy="Always",
        startupProbe=probe,
        readinessProbe=probe,
        livenessProbe=probe,
        env=[{"name": "PORT", "value": "8080"}],
    )
    spec.update(changes)
    return {k: v for k, v in spec.items() if v is not None}


def with_handler(rec: Rec, sidecar: dict[str, Any] | None = None) -> Rec:
    """The workload with a handler sidecar in its pod (a Deployment's or a ScaledJob's)."""
    spec = rec.inputs["spec"]
    template = spec["jobTargetRef"]["template"] if "jobTargetRef" in spec else spec["template"]
    template["spec"]["initContainers"] = [sidecar or handler()]
    return rec


def deployment(*containers: dict[str, Any], grace: float = 45.0, name: str = "consumer") -> Rec:
    return Rec(
        "kubernetes:apps/v1:Deployment",
        name,
        {
            "metadata": {"name": name, "namespace": "edw"},
            "spec": {
                "replicas": 0.0,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "serviceAccountName": "consumer",
                        "terminationGracePeriodSeconds": grace,
                        "containers": list(containers or (container(),)),
                    },
                },
            },
        },
    )


def custom(api_version: str, kind: str, name: str, spec: dict[str, Any], **meta: Any) -> Rec:
    return Rec(
        CUSTOM_RESOURCE,
        name,
        {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, **meta},
            "spec": spec,
        },
    )


def scaled_object(auth: str | None = "consumer-auth", max_replicas: float | None = 30.0) -> Rec:
    trigger: dict[str, Any] = {
        "type": "aws-sqs-queue",
        "metadata": {"queueURL": "https://sqs.example/edw-aws-work", "queueLength": "20"},
    }
    if auth:
        trigger["authenticationRef"] = {"name": auth}
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": "consumer"},
        "minReplicaCount": 0.0,
        "pollingInterval": 5.0,
        "triggers": [trigger],
    }
    if max_replicas is not None:
        spec["maxReplicaCount"] = max_replicas
    return custom("keda.sh/v1alpha1", "ScaledObject", "consumer", spec, namespace="edw")


def trigger_auth(name: str = "consumer-auth", namespace: str = "edw") -> Rec:
    spec = {"podIdentity": {"provider": "aws", "identityOwner": "workload"}}
    return custom("keda.sh/v1alpha1", "TriggerAuthentication", name, spec, namespace=namespace)


def nodepool(name: str, capacity: list[str] | None, limits: dict[str, Any] | None = None) -> Rec:
    requirements = [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]
    if capacity is not None:
        requirements.append(
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity}
        )
    spec: dict[str, Any] = {
        "template": {
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "x"},
                "requirements": requirements,
            }
        },
        "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "1m"},
    }
    if limits is not None:
        spec["limits"] = limits
    return custom("karpenter.sh/v1", "NodePool", name, spec)


def alarm(name: str, metric: str, queue: Rec, **changes: Any) -> Rec:
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
    inputs = {
        "namespace": "AWS/SQS",
        "metricName": metric,
        "dimensions": {"QueueName": queue.inputs["name"]},
        "alarmActions": [topic],
        "okActions": [topic],
    }
    return (
        Rec("aws:cloudwatch/metricAlarm:MetricAlarm", name, inputs)
        .with_inputs(**changes)
        .depends_on(queue)
    )


def aws_graph() -> list[Rec]:
    """The AWS stack's policy-relevant resources, all compliant."""
    dead, interruption = dlq(), interruption_queue()
    work = work_queue(dead)
    scaled = scaled_object().depends_on(work)
    return [
        dead,
        work,
        interruption,
        alarm("dead-letters", "ApproximateNumberOfMessagesVisible", dead),
        alarm("backlog-age", "ApproximateAgeOfOldestMessage", work),
        queue_policy(work),
        queue_policy(dead),
        queue_policy(interruption),
        table(),
        irsa_role(),
        consumer_policy(),
        eks_component(),
        ecr_repository(),
        helm_release(),
        deployment().depends_on(work),
        scaled,
        trigger_auth(),
        nodepool("spot", ["spot"], {"cpu": "64", "memory": "256Gi"}),
        nodepool("on-demand", ["on-demand"], {"cpu": "32", "memory": "128Gi"}),
    ]


def azure_consumer() -> Rec:
    env = [
        {"name": "EDW_QUEUE_NAME", "value": "edw-dev-work"},
        {"name": "EDW_VISIBILITY_TIMEOUT_SECONDS", "value": "120"},
    ]
    return deployment(container(env=env, image="edwdev.azurecr.io/edw-consumer:0.1.0"))


def azure_graph() -> list[Rec]:
    """The Azure stack's policy-relevant resources, all compliant."""
    scaled = scaled_object()
    scaled.inputs["spec"]["triggers"][0] = {
        "type": "azure-queue",
        "metadata": {"queueName": "edw-dev-work", "accountName": "edwdevsa", "queueLength": "20"},
        "authenticationRef": {"name": "consumer-auth"},
    }
    return [
        storage_account(),
        azure_queue("edw-dev-work"),
        azure_queue("edw-dev-work-poison"),
        cosmos_account(),
        managed_cluster(),
        role_assignment(QUEUE_SCOPE),
        azure_consumer(),
        scaled,
        trigger_auth(),
        nodepool("spot", ["spot"], {"cpu": "64", "memory": "256Gi"}),
        nodepool("on-demand", ["on-demand"], {"cpu": "32", "memory": "128Gi"}),
    ]


# --- Router ------------------------------------------------------------------------------------

TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:edw-aws-router"
EVENT_GRID_TOPIC_ID = f"{RESOURCE_GROUP}/providers/Microsoft.EventGrid/topics/edw-dev-router"
ACCOUNT_ID = f"{RESOURCE_GROUP}/providers/Microsoft.Storage/storageAccounts/edwdevstore"


def topic() -> Rec:
    return Rec(
        "aws:sns/topic:Topic",
        "edw-aws-router",
        {"name": "edw-aws-router", "kmsMasterKeyId": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1"},
    )


def topic_policy(of: Rec, **deny_changes: Any) -> Rec:
    deny = {**deny_insecure_transport(TOPIC_ARN), "Action": "sns:*", **deny_changes}
    return Rec(
        "aws:sns/topicPolicy:TopicPolicy",
        f"{of.name}-policy",
        {"arn": TOPIC_ARN, "policy": doc(deny)},
    ).depends_on(of)


def router_sends(queue: Rec, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "Sid": "RouterTopicDelivers",
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": ["sqs:SendMessage"],
        "Resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue.inputs['name']}",
        **({"Condition": condition} if condition is not None else {}),
    }


PINNED_TO_TOPIC = {"ArnEquals": {"aws:SourceArn": TOPIC_ARN}}


def subscription(queue: Rec, dead_letter: Rec, **changes: Any) -> Rec:
    return (
        Rec(
            "aws:sns/topicSubscription:TopicSubscription",
            f"{queue.name}-subscription",
            {
                "topic": TOPIC_ARN,
                "protocol": "sqs",
                "endpoint": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue.inputs['name']}",
                "rawMessageDelivery": True,
                "redrivePolicy": json.dumps({"deadLetterTargetArn": "arn:dlq"}),
            },
        )
        .with_inputs(**changes)
        .depends_on(queue, dead_letter)
    )


def routed_graph(condition: dict[str, Any] | None = PINNED_TO_TOPIC) -> list[Rec]:
    """A topic, a work queue + DLQ subscribed to it, each queue's policy letting the topic in."""
    router, dead = topic(), dlq()
    work = work_queue(dead)
    return [
        router,
        topic_policy(router),
        dead,
        work,
        queue_policy(work, router_sends(work, condition)),
        queue_policy(dead, router_sends(dead, condition)),
        subscription(work, dead).depends_on(router),
    ]


def event_grid_topic(**changes: Any) -> Rec:
    return Rec(
        "azure-native:eventgrid:Topic",
        "router-topic",
        {
            "topicName": "edw-dev-router",
            "inputSchema": "CloudEventSchemaV1_0",
            "disableLocalAuth": True,
            "minimumTlsVersionAllowed": "1.2",
            "identity": {"type": "SystemAssigned"},
        },
    ).with_inputs(**changes)


DEAD_LETTER = {
    "identity": {"type": "SystemAssigned"},
    "deadLetterDestination": {
        "endpointType": "StorageBlob",
        "resourceId": ACCOUNT_ID,
        "blobContainerName": "router-dead-letters",
    },
}


def event_subscription(**changes: Any) -> Rec:
    return Rec(
        "azure-native:eventgrid:EventSubscription",
        "orders-route-subscription",
        {
            "scope": EVENT_GRID_TOPIC_ID,
            "eventSubscriptionName": "orders",
            "deliveryWithResourceIdentity": {
                "identity": {"type": "SystemAssigned"},
                "destination": {
                    "endpointType": "StorageQueue",
                    "resourceId": ACCOUNT_ID,
                    "queueName": "orders",
                },
            },
            "deadLetterWithResourceIdentity": DEAD_LETTER,
        },
    ).with_inputs(**changes)


def webhook_subscription(url: str = "https://partner.example.com/hook") -> Rec:
    return event_subscription(
        deliveryWithResourceIdentity=None,
        destination={"endpointType": "WebHook", "endpointUrl": url},
    )


def scaled_job(**target_changes: Any) -> Rec:
    """A job workflow's ScaledJob: bounded, each job under a deadline, its pods undisruptable."""
    target: dict[str, Any] = {
        "parallelism": 1.0,
        "completions": 1.0,
        "activeDeadlineSeconds": 585.0,
        "backoffLimit": 1.0,
        "template": {
            "metadata": {"annotations": {"karpenter.sh/do-not-disrupt": "true"}},
            "spec": {"restartPolicy": "Never", "containers": [container()]},
        },
    }
    for key, value in target_changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    spec = {
        "jobTargetRef": target,
        "maxReplicaCount": 4.0,
        "scalingStrategy": {"strategy": "default"},
        "triggers": [{"type": "aws-sqs-queue", "metadata": {"queueLength": "50"}}],
    }
    return custom("keda.sh/v1alpha1", "ScaledJob", "nightly", spec, namespace="edw")


def azure_metric_alert(**changes: Any) -> Rec:
    return Rec(
        "azure-native:monitor:MetricAlert",
        "alerts-router-dead-lettered",
        {
            "ruleName": "edw-dev-router-dead-lettered",
            "scopes": [EVENT_GRID_TOPIC_ID],
            "autoMitigate": True,
            "actions": [
                {"actionGroupId": f"{RESOURCE_GROUP}/providers/Microsoft.Insights/actionGroups/a"}
            ],
        },
    ).with_inputs(**changes)


def azure_role_queue(name: str, role: str) -> Rec:
    """A workflow's Storage queue as the stack creates it, its role in the metadata."""
    return azure_queue(name).with_inputs(metadata={"edw_role": role})


def azure_queue_alert(metric: str, *queues: str) -> Rec:
    criterion = {
        "metricName": metric,
        "metricNamespace": "edw",
        "dimensions": [{"name": "Queue", "operator": "Include", "values": list(queues)}],
    }
    alert = azure_metric_alert().with_inputs(criteria={"allOf": [criterion]})
    return Rec(alert.type, f"alerts-{metric}-{'-'.join(queues)}", alert.inputs)
