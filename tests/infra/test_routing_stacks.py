"""The router's wiring on both clouds, with two workflows and a partner webhook: which filter
reaches which queue, who may send to what, and what each workflow's consumer is given."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from components.azure.roles import (
    EVENTGRID_DATA_SENDER,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    STORAGE_QUEUE_DATA_MESSAGE_SENDER,
)
from policy.offline import STACK_CONFIG_DIR, PackConfig, evaluate
from stacks.offline import StackRun, run_stack

ORDERS_FILTER = {
    "type": ["com.example.order.created"],
    "data.region": ["eu", "us"],
    "data.total": [100],
}
PARTNER_FILTER = {"source": {"prefix": "urn:"}}
PARTNER_URL = "https://partner.example.com/hooks/edw"
REPO = Path(__file__).resolve().parents[2]
PUBLISHER_ARN = "arn:aws:iam::123456789012:role/checkout"
PUBLISHER_ID = "11111111-2222-4333-8444-555555555555"


def routed(stack: str, publisher: str, **extra: str) -> StackRun:
    return run_stack(
        stack,
        {
            **extra,
            "workflows": json.dumps(
                [{"name": "work"}, {"name": "orders", "filter": ORDERS_FILTER, "maxReplicas": 5}]
            ),
            "webhooks": json.dumps(
                [{"name": "partner", "url": PARTNER_URL, "filter": PARTNER_FILTER}]
            ),
            "routerPublishers": json.dumps([publisher]),
        },
    )


@pytest.fixture(scope="module")
def aws() -> StackRun:
    return routed("aws", PUBLISHER_ARN)


@pytest.fixture(scope="module")
def dev() -> StackRun:
    # A publisher is named with its type; the mocked tenant knows it as a group.
    return routed(
        "dev",
        f"Group:{PUBLISHER_ID}",
        **{"offline:directory": json.dumps({PUBLISHER_ID: "Group"})},
    )


def statements(document: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(document)["Statement"]}


def test_aws_the_router_is_encrypted_tls_only_and_published_to_by_the_granted_role(
    aws: StackRun,
) -> None:
    key = aws.one("aws:kms/key:Key", "router-key")
    topic = aws.one("aws:sns/topic:Topic", "router-topic")
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
    assert topic.inputs["signatureVersion"] == 2
    key_policy = statements(key.inputs["policy"])
    assert key_policy["PublishersUseTheKeyThroughSns"]["Principal"] == {"AWS": [PUBLISHER_ARN]}
    assert key_policy["PublishersUseTheKeyThroughSns"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "sns.us-east-1.amazonaws.com"}
    }
    policy = statements(
        aws.one("aws:sns/topicPolicy:TopicPolicy", "router-policy").inputs["policy"]
    )
    assert set(policy) == {"DenyInsecureTransport", "GrantedPublishers"}
    assert policy["GrantedPublishers"]["Principal"] == {"AWS": [PUBLISHER_ARN]}
    assert policy["GrantedPublishers"]["Action"] == ["sns:Publish"]
    assert aws.outputs["routerTopicArn"] == topic.outputs["arn"]


def test_aws_each_workflow_queue_gets_its_filter_raw_with_failures_in_its_own_dlq(
    aws: StackRun,
) -> None:
    topic = aws.one("aws:sns/topic:Topic", "router-topic").outputs["arn"]
    subs = {s.name: s.inputs for s in aws.of_type("aws:sns/topicSubscription:TopicSubscription")}
    queue = {q.name: q.outputs for q in aws.of_type("aws:sqs/queue:Queue")}
    work, orders = subs["route-subscription"], subs["orders-route-subscription"]
    for sub, name in ((work, "work"), (orders, "orders")):
        assert (sub["topic"], sub["protocol"], sub["rawMessageDelivery"]) == (topic, "sqs", True)
        assert sub["endpoint"] == queue[f"{name}-queue"]["arn"]
        assert json.loads(sub["redrivePolicy"]) == {
            "deadLetterTargetArn": queue[f"{name}-dlq"]["arn"]
        }
    assert "filterPolicy" not in work  # the default workflow receives everything
    # Strings ignoring case and numbers as numbers, as Event Grid compares them.
    assert json.loads(orders["filterPolicy"]) == {
        "type": [{"equals-ignore-case": "com.example.order.created"}],
        "data": {
            "region": [{"equals-ignore-case": "eu"}, {"equals-ignore-case": "us"}],
            "total": [{"numeric": ["=", 100]}],
        },
    }
    assert orders["filterPolicyScope"] == "MessageBody"


def test_aws_a_workflow_queue_accepts_only_the_router_topic(aws: StackRun) -> None:
    topic = aws.one("aws:sns/topic:Topic", "router-topic").outputs["arn"]
    for name in ("orders-queue-tls-only", "orders-dlq-tls-only", "work-queue-tls-only"):
        policy = statements(aws.one("aws:sqs/queuePolicy:QueuePolicy", name).inputs["policy"])
        sends = policy["RouterTopicDelivers"]
        assert sends["Principal"] == {"Service": "sns.amazonaws.com"}
        assert sends["Action"] == ["sqs:SendMessage"]
        assert sends["Condition"] == {"ArnEquals": {"aws:SourceArn": topic}}


def test_aws_the_partner_webhook_is_https_filtered_retried_and_dead_lettered(
    aws: StackRun,
) -> None:
    topic = aws.one("aws:sns/topic:Topic", "router-topic").outputs["arn"]
    hook = aws.one("aws:sns/topicSubscription:TopicSubscription", "webhook-partner-subscription")
    dlq = aws.one("aws:sqs/queue:Queue", "webhook-partner-dlq")
    assert (hook.inputs["protocol"], hook.inputs["endpoint"]) == ("https", PARTNER_URL)
    # Event Grid's StringBeginsWith ignores case; SNS's prefix does not: every case of "urn".
    cases = ["urn:", "urN:", "uRn:", "uRN:", "Urn:", "UrN:", "URn:", "URN:"]
    assert json.loads(hook.inputs["filterPolicy"]) == {"source": [{"prefix": c} for c in cases]}
    retry = json.loads(hook.inputs["deliveryPolicy"])["healthyRetryPolicy"]
    assert retry["backoffFunction"] == "exponential"
    assert retry["numRetries"] == 20
    assert json.loads(hook.inputs["redrivePolicy"]) == {"deadLetterTargetArn": dlq.outputs["arn"]}
    policy = statements(
        aws.one("aws:sqs/queuePolicy:QueuePolicy", "webhook-partner-dlq-policy").inputs["policy"]
    )
    assert policy["RouterTopicDelivers"]["Condition"] == {"ArnEquals": {"aws:SourceArn": topic}}
    assert aws.outputs["webhookDeadLetterQueueUrls"] == {"partner": dlq.outputs["url"]}


def test_aws_each_workflow_consumer_has_its_own_identity_queue_and_scaling(
    aws: StackRun,
) -> None:
    queue = {q.name: q.outputs for q in aws.of_type("aws:sqs/queue:Queue")}
    policy = statements(
        aws.one("aws:iam/rolePolicy:RolePolicy", "orders-consumer-identity-policy").inputs["policy"]
    )
    assert policy["ConsumeWorkQueue"]["Resource"] == [queue["orders-queue"]["arn"]]
    assert policy["SetAsideToDeadLetter"]["Resource"] == [queue["orders-dlq"]["arn"]]
    trust = json.loads(
        aws.one("aws:iam/role:Role", "orders-consumer-identity-role").inputs["assumeRolePolicy"]
    )
    subjects = [
        v
        for k, v in trust["Statement"][0]["Condition"]["StringEquals"].items()
        if k.endswith(":sub")
    ]
    assert subjects == ["system:serviceaccount:edw:edw-orders-consumer"]
    scaled = {
        s.inputs["metadata"]["name"]: s.inputs["spec"] for s in aws.custom_resources("ScaledObject")
    }
    assert set(scaled) == {"edw-consumer", "edw-orders-consumer"}
    orders = scaled["edw-orders-consumer"]
    assert orders["maxReplicaCount"] == 5
    assert scaled["edw-consumer"]["maxReplicaCount"] == 30
    assert orders["triggers"][0]["metadata"]["queueURL"] == queue["orders-queue"]["url"]
    keda = statements(
        aws.one("aws:iam/rolePolicy:RolePolicy", "keda-operator-policy").inputs["policy"]
    )
    assert sorted(keda["ReadQueueDepth"]["Resource"]) == sorted(
        [queue["work-queue"]["arn"], queue["orders-queue"]["arn"]]
    )
    assert aws.outputs["workflows"]["orders"]["queueUrl"] == queue["orders-queue"]["url"]


def deployment_env(run: StackRun, name: str) -> dict[str, str]:
    (deployment,) = [
        d
        for d in run.of_type("kubernetes:apps/v1:Deployment")
        if d.inputs["metadata"]["name"] == name
    ]
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize("stack", ["aws", "dev"])
def test_each_consumer_is_told_its_workflow_and_queue(
    stack: str, request: pytest.FixtureRequest
) -> None:
    run: StackRun = request.getfixturevalue(stack)
    queue_key = "queueUrl" if stack == "aws" else "queueName"
    for name, k8s in (("work", "edw-consumer"), ("orders", "edw-orders-consumer")):
        env = deployment_env(run, k8s)
        assert env["EDW_WORKFLOW"] == name
        assert env["EDW_QUEUE"] == run.outputs["workflows"][name][queue_key]
    # The consumer counts events whose filtered data path crosses an array of objects.
    assert "EDW_FILTER_PATHS" not in deployment_env(run, "edw-consumer")
    assert (
        deployment_env(run, "edw-orders-consumer")["EDW_FILTER_PATHS"] == "data.region,data.total"
    )


def test_the_outputs_name_the_router_and_each_workflows_consumer(
    aws: StackRun, dev: StackRun
) -> None:
    """What the producer, the load test and the cost model read (docs/routing.md)."""
    assert (
        aws.outputs["routerTopicArn"]
        == aws.one("aws:sns/topic:Topic", "router-topic").outputs["arn"]
    )
    topic = dev.one("azure-native:eventgrid:Topic")
    assert dev.outputs["routerTopicId"] == topic.id
    assert dev.outputs["routerEndpoint"] == topic.outputs["endpoint"]
    for run in (aws, dev):
        consumers = {name: wf["consumer"] for name, wf in run.outputs["workflows"].items()}
        assert consumers == {"work": "edw-consumer", "orders": "edw-orders-consumer"}


def role_assignments(run: StackRun) -> dict[str, dict[str, Any]]:
    return {r.name: r.inputs for r in run.of_type("azure-native:authorization:RoleAssignment")}


def test_azure_the_router_takes_only_cloud_events_from_entra_publishers(dev: StackRun) -> None:
    topic = dev.one("azure-native:eventgrid:Topic")
    assert topic.inputs["inputSchema"] == "CloudEventSchemaV1_0"
    assert topic.inputs["disableLocalAuth"] is True
    assert topic.inputs["minimumTlsVersionAllowed"] == "1.2"
    assert topic.inputs["identity"] == {"type": "SystemAssigned"}
    (publisher,) = [
        a
        for a in role_assignments(dev).values()
        if a["roleDefinitionId"].endswith(EVENTGRID_DATA_SENDER)
    ]
    assert (publisher["principalId"], publisher["scope"]) == (PUBLISHER_ID, topic.id)
    assert publisher["principalType"] == "Group"
    assert dev.outputs["routerEndpoint"] == topic.outputs["endpoint"]


def test_azure_each_workflow_subscription_filters_and_delivers_with_the_topic_identity(
    dev: StackRun,
) -> None:
    topic = dev.one("azure-native:eventgrid:Topic")
    account = dev.one("azure-native:storage:StorageAccount")
    container = dev.one("azure-native:storage:BlobContainer")
    subs = {s.name: s.inputs for s in dev.of_type("azure-native:eventgrid:EventSubscription")}
    orders = subs["orders-route-subscription"]
    assert orders["scope"] == topic.id
    assert orders["eventDeliverySchema"] == "CloudEventSchemaV1_0"
    delivery = orders["deliveryWithResourceIdentity"]
    assert delivery["identity"] == {"type": "SystemAssigned"}
    assert delivery["destination"] == {
        "endpointType": "StorageQueue",
        "resourceId": account.id,
        "queueName": "orders",
        "queueMessageTimeToLiveInSeconds": -1,  # never expires (the default: after 7 days)
    }
    assert orders["filter"] == {
        "advancedFilters": [
            {"key": "type", "operatorType": "StringIn", "values": ["com.example.order.created"]},
            {"key": "data.region", "operatorType": "StringIn", "values": ["eu", "us"]},
            {"key": "data.total", "operatorType": "NumberIn", "values": [100]},
        ],
        # Without it an event whose filtered field is an array is dropped; SNS delivers it.
        "enableAdvancedFilteringOnArrays": True,
        "isSubjectCaseSensitive": False,  # the SDK's default (no subject filter here)
    }
    assert subs["route-subscription"]["filter"] == {
        "enableAdvancedFilteringOnArrays": True,
        "isSubjectCaseSensitive": False,
    }
    for sub in subs.values():
        dead = sub["deadLetterWithResourceIdentity"]
        assert dead["identity"] == {"type": "SystemAssigned"}
        assert dead["deadLetterDestination"]["blobContainerName"] == container.outputs["name"]
    hook = subs["webhook-partner-subscription"]
    assert hook["destination"]["endpointUrl"] == PARTNER_URL
    assert hook["filter"] == {
        "advancedFilters": [
            {"key": "source", "operatorType": "StringBeginsWith", "values": ["urn:"]}
        ],
        "enableAdvancedFilteringOnArrays": True,
        "isSubjectCaseSensitive": False,
    }


def test_azure_every_webhook_delivery_carries_the_partners_secret(dev: StackRun) -> None:
    """Event Grid sends a static, secret Authorization header (delivery attribute mapping)
    with every event delivery: HTTP Basic for user edw and the generated secret, which the stack
    exports (as a secret) for the partner to check."""
    secret = dev.one("random:index/randomPassword:RandomPassword", "webhook-partner-secret")
    assert (secret.inputs["length"], secret.inputs["special"]) == (40, False)
    token = secret.outputs["result"]
    hook = dev.one("azure-native:eventgrid:EventSubscription", "webhook-partner-subscription")
    (header,) = hook.inputs["destination"]["deliveryAttributeMappings"]
    expected = "Basic " + base64.b64encode(f"edw:{token}".encode()).decode()
    assert header == {
        "name": "Authorization",
        "type": "Static",
        "isSecret": True,
        "value": expected,
    }
    assert dev.outputs["webhookSecrets"] == {"partner": token}
    assert "webhookSecrets" in dev.secret_outputs


def partner_check() -> Any:
    """The `answer` function docs/routing.md gives partners, exactly as printed there."""
    page = (REPO / "docs" / "routing.md").read_text()
    blocks = [b.split("```")[0] for b in page.split("```python\n")[1:]]
    (block,) = [b for b in blocks if "def answer(" in b]
    scope: dict[str, Any] = {}
    exec(compile(block, "docs/routing.md", "exec"), scope)  # our own doc's code
    return scope["answer"]


def test_azure_a_partner_answers_the_handshake_without_the_secret_and_checks_deliveries(
    dev: StackRun,
) -> None:
    """Microsoft documents delivery attribute mappings as headers of delivered events, not of
    the CloudEvents OPTIONS handshake (Event Grid, "Custom delivery properties" and "Endpoint
    validation with CloudEvents schema"): the partner's check must consent without the secret
    header, then demand it on every POST."""
    answer = partner_check()
    secret = dev.outputs["webhookSecrets"]["partner"]
    hook = dev.one("azure-native:eventgrid:EventSubscription", "webhook-partner-subscription")
    (header,) = hook.inputs["destination"]["deliveryAttributeMappings"]
    status, consent = answer("OPTIONS", {"webhook-request-origin": "eventgrid.azure.net"}, secret)
    assert status == 200
    assert consent["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert consent["WebHook-Allowed-Rate"] == "*"
    delivery = {header["name"].lower(): header["value"]}
    assert answer("POST", delivery, secret) == (200, {})
    for forged in ({}, {"authorization": header["value"] + "x"}):
        status, challenge = answer("POST", forged, secret)
        assert status == 401
        assert challenge["WWW-Authenticate"].startswith("Basic")


def test_azure_the_topic_identity_may_send_to_exactly_each_queue_and_write_dead_letters(
    dev: StackRun,
) -> None:
    principal = dev.one("azure-native:eventgrid:Topic").outputs["identity"]["principalId"]
    queues = {q.name: q.id for q in dev.of_type("azure-native:storage:Queue")}
    container = dev.one("azure-native:storage:BlobContainer").id
    granted = sorted(
        (a["roleDefinitionId"].rsplit("/", 1)[1], a["scope"])
        for a in role_assignments(dev).values()
        if a["principalId"] == principal
    )
    assert granted == sorted(
        [
            (STORAGE_QUEUE_DATA_MESSAGE_SENDER, queues["work-work"]),
            (STORAGE_QUEUE_DATA_MESSAGE_SENDER, queues["orders-work"]),
            (STORAGE_BLOB_DATA_CONTRIBUTOR, container),
        ]
    )
    subscription = dev.one("azure-native:eventgrid:EventSubscription", "orders-route-subscription")
    sender = dev.one("azure-native:authorization:RoleAssignment", "orders-route-queue-sender")
    assert dev.depends_on(subscription, sender)


def test_azure_each_consumer_identity_reaches_only_its_own_queues(dev: StackRun) -> None:
    queues = {q.name: q.id for q in dev.of_type("azure-native:storage:Queue")}
    grants = role_assignments(dev)
    scopes = {
        name.removeprefix("orders-consumer-identity-"): inputs["scope"]
        for name, inputs in grants.items()
        if name.startswith("orders-consumer-identity-")
    }
    assert scopes == {
        "queue-contributor": queues["orders-work"],
        "poison-sender": queues["orders-poison"],
        "poison-processor": queues["orders-poison"],
    }
    reader_scopes = sorted(
        inputs["scope"] for name, inputs in grants.items() if name.startswith("keda-identity-")
    )
    assert reader_scopes == sorted([queues["work-work"], queues["orders-work"]])


@pytest.mark.parametrize("stack", ["aws", "dev"])
def test_a_routed_stack_breaks_no_mandatory_rule(
    stack: str, request: pytest.FixtureRequest
) -> None:
    """Two workflows and a webhook: every new queue, subscription and DLQ is as the pack wants
    (the webhook's DLQ alarmed too)."""
    run: StackRun = request.getfixturevalue(stack)
    config = PackConfig.load(STACK_CONFIG_DIR / f"{stack}.json")
    mandatory = [v for v in evaluate(run.resources, config) if v.mandatory]
    assert mandatory == []
