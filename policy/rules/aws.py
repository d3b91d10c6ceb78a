"""AWS rules: SQS, DynamoDB, IAM (least privilege, IRSA trust), EKS and ECR."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from typing import Any

from .common import (
    ADVISORY,
    Config,
    ResourceCheck,
    Subject,
    as_list,
    dig,
    is_set,
    json_document,
    resource_rule,
    string_list,
    tags_of,
)

SQS_QUEUE = "aws:sqs/queue:Queue"
DYNAMODB_TABLE = "aws:dynamodb/table:Table"
IAM_ROLE = "aws:iam/role:Role"
IAM_POLICY_KINDS = (
    IAM_ROLE,
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/policy:Policy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)
EKS_COMPONENT = "eks:index:Cluster"  # pulumi-eks remote component: all the mocks can see
EKS_CLUSTER = "aws:eks/cluster:Cluster"  # its child, validated by the engine in a real preview
# Remote components -> the child a real engine run judges instead. In `pulumi preview|up` the
# engine analyses the registration made inside the provider's Construct, and pulumi-eks 4.x
# bundles a Node SDK older than the one that sends component inputs: the props are `{}`.
REMOTE_COMPONENT_CHILDREN = {EKS_COMPONENT: EKS_CLUSTER}
ECR_REPOSITORY = "aws:ecr/repository:Repository"

# Actions that have no resource-level permissions: IAM only accepts Resource "*" for them.
# Prefix patterns cover a whole read-only family (every ec2:Describe* call is unscoped).
ACTIONS_WITHOUT_RESOURCE_LEVEL = (
    "ec2:Describe*",
    "pricing:GetProducts",
    "pricing:DescribeServices",
    "pricing:GetAttributeValues",
    "sts:GetCallerIdentity",
    "ecr:GetAuthorizationToken",
    "sqs:ListQueues",
    "ssm:DescribeParameters",
    "cloudwatch:PutMetricData",
    "iam:ListInstanceProfiles",
    # Karpenter v1.14.1 grants this on "*" and scopes it with the
    # arc-zonal-shift:ResourceIdentifier condition key (its CloudFormation template).
    "arc-zonal-shift:GetManagedResource",
)
ROLE_TAG = "edw/role"  # what a queue is for: work, dead-letter, karpenter-interruption
KARPENTER_INTERRUPTION_ROLE = "karpenter-interruption"


# --- SQS ---------------------------------------------------------------------------------------


def _sqs_encrypted(queue: Subject, _: Config) -> Iterator[str]:
    if queue.props.get("kmsMasterKeyId") or queue.props.get("sqsManagedSseEnabled") is True:
        return
    yield (
        f"queue {queue.label!r} is not encrypted at rest: set sqsManagedSseEnabled=true "
        "or kmsMasterKeyId"
    )


def role_of(queue: Subject) -> Any:
    return tags_of(queue.props).get(ROLE_TAG)


def is_dead_letter_queue(queue: Subject, config: Config) -> bool:
    """A DLQ has no redrive policy of its own and says what it is: an inline
    redriveAllowPolicy, or a dead-letter role tag (when the allow policy is a separate
    RedriveAllowPolicy resource, which breaks the DLQ <-> work queue ARN cycle)."""
    tagged = role_of(queue) in config["deadLetterRoles"]
    return (tagged or is_set(queue.props, "redriveAllowPolicy")) and not is_set(
        queue.props, "redrivePolicy"
    )


def is_exempt_queue(queue: Subject, config: Config) -> bool:
    """Queues that must not have a DLQ: Karpenter's interruption queue, or listed by name."""
    names = {queue.label, queue.name}
    return role_of(queue) in config["exemptRoles"] or bool(names & set(config["exemptQueueNames"]))


def _sqs_redrive(queue: Subject, config: Config) -> Iterator[str]:
    if is_dead_letter_queue(queue, config) or is_exempt_queue(queue, config):
        return
    redrive = json_document(queue.props.get("redrivePolicy"))
    if redrive is None:
        yield (
            f"queue {queue.label!r} has no redrivePolicy: poison messages would be retried "
            f"forever (mark a DLQ with redriveAllowPolicy or the {ROLE_TAG} tag)"
        )
        return
    if not redrive.get("deadLetterTargetArn"):
        yield f"queue {queue.label!r} redrivePolicy has no deadLetterTargetArn"
    count = redrive.get("maxReceiveCount")
    limit = config["maxReceiveCount"]
    # At least 2: the consumer sets a message aside with its reason on delivery maxReceiveCount - 1,
    # before the redrive moves it without one (components/k8s/consumer.py max_deliveries).
    if not isinstance(count, int | float) or not 2 <= count <= limit:
        yield f"queue {queue.label!r} maxReceiveCount is {count!r}; allowed: 2..{limit:g}"


# --- DynamoDB ----------------------------------------------------------------------------------


def _dynamodb_pitr(table: Subject, _: Config) -> Iterator[str]:
    if dig(table.props, "pointInTimeRecovery", "enabled") is not True:
        yield f"table {table.label!r} has point-in-time recovery off"


def _dynamodb_encryption(table: Subject, config: Config) -> Iterator[str]:
    if dig(table.props, "serverSideEncryption", "enabled") is not True:
        yield f"table {table.label!r} does not enable serverSideEncryption with a KMS key"
    elif config["requireCustomerManagedKey"] and not dig(
        table.props, "serverSideEncryption", "kmsKeyArn"
    ):
        yield f"table {table.label!r} uses the AWS managed key; a customer managed key is required"


# --- IAM ---------------------------------------------------------------------------------------


def statements(document: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return [s for s in as_list(dig(document, "Statement")) if isinstance(s, Mapping)]


def _permission_documents(subject: Subject) -> Iterator[tuple[str, Mapping[str, Any] | None]]:
    """(where, document) for every permissions policy the resource carries (not trust policies)."""
    if subject.kind == IAM_ROLE:
        for inline in as_list(subject.props.get("inlinePolicies")):
            where = f"inline policy {dig(inline, 'name')!r} of role {subject.label!r}"
            yield where, json_document(dig(inline, "policy"))
        return
    yield f"policy {subject.label!r}", json_document(subject.props.get("policy"))


def _allow_statements(subject: Subject) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for where, document in _permission_documents(subject):
        for index, statement in enumerate(statements(document)):
            if statement.get("Effect") == "Allow":
                label = statement.get("Sid") or f"#{index}"
                yield f"{where} statement {label}", statement


def _iam_no_wildcard_actions(subject: Subject, config: Config) -> Iterator[str]:
    allowed = {a.lower() for a in config["allowedServiceWildcards"]}
    for where, statement in _allow_statements(subject):
        if "NotAction" in statement:
            yield f"{where} allows NotAction, which grants every other action"
        for action in as_list(statement.get("Action")):
            text = str(action).lower()
            if text == "*" or (text.endswith(":*") and text not in allowed):
                yield f"{where} allows the wildcard action {action!r}"


def _unscoped(action: str, extra: list[str]) -> bool:
    patterns = (*ACTIONS_WITHOUT_RESOURCE_LEVEL, *extra)
    return any(fnmatchcase(action.lower(), p.lower()) for p in patterns)


def _iam_no_wildcard_resources(subject: Subject, config: Config) -> Iterator[str]:
    extra = list(config["actionsWithoutResourceLevel"])
    for where, statement in _allow_statements(subject):
        if "NotResource" in statement:
            yield f"{where} uses NotResource, which grants every other resource"
        if "*" not in as_list(statement.get("Resource")):
            continue
        scoped = [str(a) for a in as_list(statement.get("Action")) if not _unscoped(str(a), extra)]
        if scoped:
            yield (
                f"{where} grants Resource '*' to {', '.join(scoped)}, which support resource "
                "ARNs: name the resources"
            )


def _issuer(federated: str) -> str | None:
    marker = ":oidc-provider/"
    return federated.split(marker, 1)[1] if marker in federated else None


def _irsa_statement_problems(
    statement: Mapping[str, Any], issuer: str, config: Config
) -> Iterator[str]:
    condition = dig(statement, "Condition") or {}
    equals = dig(condition, "StringEquals") or {}
    if f"{issuer}:sub" in (dig(condition, "StringLike") or {}):
        yield f"{issuer}:sub is matched with StringLike; use StringEquals on one service account"
    subjects = as_list(equals.get(f"{issuer}:sub"))
    if not subjects:
        yield f"no StringEquals condition on {issuer}:sub: any pod in the cluster could assume it"
    for sub in subjects:
        if "*" in str(sub) or not str(sub).startswith("system:serviceaccount:"):
            yield f"{issuer}:sub {sub!r} is not one system:serviceaccount:<namespace>:<name>"
    if config["requireAudience"] and as_list(equals.get(f"{issuer}:aud")) != ["sts.amazonaws.com"]:
        yield f"{issuer}:aud must be StringEquals 'sts.amazonaws.com'"


def _iam_irsa_trust(role: Subject, config: Config) -> Iterator[str]:
    trust = json_document(role.props.get("assumeRolePolicy"))
    for statement in statements(trust):
        actions = {str(a).lower() for a in as_list(statement.get("Action"))}
        if statement.get("Effect") != "Allow" or "sts:assumerolewithwebidentity" not in actions:
            continue
        for federated in as_list(dig(statement, "Principal", "Federated")):
            issuer = _issuer(str(federated))
            if issuer:
                for problem in _irsa_statement_problems(statement, issuer, config):
                    yield f"role {role.label!r} trust policy: {problem}"


# --- EKS ---------------------------------------------------------------------------------------


def opaque_component(subject: Subject) -> bool:
    """A remote component registered without inputs: nothing to judge (its child is judged)."""
    return subject.type in REMOTE_COMPONENT_CHILDREN and len(subject.props) == 0


def checkable(check: ResourceCheck) -> ResourceCheck:
    """Run ``check`` on everything but an opaque remote component, which neither passes nor
    fails here: ``remote-component-inputs-hidden`` says so, and the child is checked."""

    def run(subject: Subject, config: Config) -> Iterator[str]:
        if not opaque_component(subject):
            yield from check(subject, config)

    return run


def _remote_component_hidden(component: Subject, _: Config) -> Iterator[str]:
    if opaque_component(component):
        yield (
            f"{component.type} {component.label!r} reached the engine without inputs (a remote "
            "component whose provider does not send them): its own rules cannot judge it, so "
            f"they judge its child {REMOTE_COMPONENT_CHILDREN[component.type]} instead"
        )


def _eks_secrets_encryption(cluster: Subject, _: Config) -> Iterator[str]:
    if cluster.kind == EKS_COMPONENT:
        encrypted = bool(cluster.props.get("encryptionConfigKeyArn"))
    else:
        config = cluster.props.get("encryptionConfig")
        encrypted = "secrets" in as_list(dig(config, "resources")) and bool(
            dig(config, "provider", "keyArn")
        )
    if not encrypted:
        yield f"cluster {cluster.label!r} does not envelope-encrypt secrets with a KMS key"


def _eks_logging(cluster: Subject, config: Config) -> Iterator[str]:
    enabled = {str(t) for t in as_list(cluster.props.get("enabledClusterLogTypes"))}
    missing = [t for t in config["requiredLogTypes"] if t not in enabled]
    if missing:
        yield f"cluster {cluster.label!r} does not ship control-plane logs: {', '.join(missing)}"


def _eks_endpoint(cluster: Subject, config: Config) -> Iterator[str]:
    source = cluster.props if cluster.kind == EKS_COMPONENT else dig(cluster.props, "vpcConfig")
    public = dig(source, "endpointPublicAccess")
    if public is False:
        return
    # Both the component and the API default to a public endpoint open to 0.0.0.0/0.
    cidrs = [str(c) for c in as_list(dig(source, "publicAccessCidrs"))] or ["0.0.0.0/0"]
    allowed = [ipaddress.ip_network(c) for c in config["allowedCidrs"]]
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr, strict=False)
        if network.prefixlen == 0:
            yield f"cluster {cluster.label!r} API endpoint is open to {cidr}"
        elif allowed and not any(
            network.version == a.version and network.subnet_of(a)  # type: ignore[arg-type]
            for a in allowed
        ):
            yield f"cluster {cluster.label!r} API endpoint CIDR {cidr} is outside allowedCidrs"


# --- ECR ---------------------------------------------------------------------------------------


def _ecr_scan_on_push(repository: Subject, _: Config) -> Iterator[str]:
    if dig(repository.props, "imageScanningConfiguration", "scanOnPush") is not True:
        yield f"repository {repository.label!r} does not scan images on push"


QUEUE_ROLES = {
    "deadLetterRoles": string_list(
        f"Values of the {ROLE_TAG} tag that mark a dead-letter queue.", ["dead-letter"]
    ),
    "exemptRoles": string_list(
        f"Values of the {ROLE_TAG} tag whose queues need no DLQ.", [KARPENTER_INTERRUPTION_ROLE]
    ),
    "exemptQueueNames": string_list("Queue names (physical or logical) that need no DLQ.", []),
}

POLICIES = [
    resource_rule(
        "aws-sqs-encrypted",
        "SQS queues must be encrypted at rest (SSE-SQS or KMS): messages carry business data.",
        [SQS_QUEUE],
        _sqs_encrypted,
    ),
    resource_rule(
        "aws-sqs-redrive-to-dlq",
        "Work queues must redrive to a dead-letter queue after a bounded number of receives, "
        "so one poison message cannot block or loop forever.",
        [SQS_QUEUE],
        _sqs_redrive,
        config={
            "maxReceiveCount": {
                "type": "integer",
                "minimum": 2,
                "default": 10,
                "description": "Highest allowed maxReceiveCount before dead-lettering.",
            },
            **QUEUE_ROLES,
        },
    ),
    resource_rule(
        "aws-dynamodb-pitr",
        "DynamoDB tables must have point-in-time recovery, so a bad deploy or bug can be undone.",
        [DYNAMODB_TABLE],
        _dynamodb_pitr,
    ),
    resource_rule(
        "aws-dynamodb-encryption",
        "DynamoDB tables must use KMS server-side encryption so key use is audited in CloudTrail.",
        [DYNAMODB_TABLE],
        _dynamodb_encryption,
        config={
            "requireCustomerManagedKey": {
                "type": "boolean",
                "default": False,
                "description": "Require a customer managed KMS key (kmsKeyArn).",
            }
        },
    ),
    resource_rule(
        "aws-iam-no-wildcard-actions",
        "IAM policies must not allow '*' or 'service:*' actions: least privilege limits the "
        "blast radius of a leaked credential.",
        IAM_POLICY_KINDS,
        _iam_no_wildcard_actions,
        config={
            "allowedServiceWildcards": string_list(
                "Service wildcards a team accepts, e.g. 'logs:*'.", []
            )
        },
    ),
    resource_rule(
        "aws-iam-no-wildcard-resources",
        "IAM policies must name resource ARNs wherever the service supports them; Resource '*' "
        "is only allowed for actions without resource-level permissions.",
        IAM_POLICY_KINDS,
        _iam_no_wildcard_resources,
        config={
            "actionsWithoutResourceLevel": string_list(
                "Extra actions (fnmatch patterns) that have no resource-level permissions.", []
            )
        },
    ),
    resource_rule(
        "aws-iam-irsa-trust-scoped",
        "IRSA trust policies must pin the service account with StringEquals on '<issuer>:sub' "
        "(and ':aud'), or every pod in the cluster can assume the role.",
        [IAM_ROLE],
        _iam_irsa_trust,
        config={
            "requireAudience": {
                "type": "boolean",
                "default": True,
                "description": "Also require '<issuer>:aud' = sts.amazonaws.com.",
            }
        },
    ),
    resource_rule(
        "aws-eks-secrets-encryption",
        "EKS must envelope-encrypt Kubernetes secrets with a KMS key under our control.",
        [EKS_COMPONENT, EKS_CLUSTER],
        checkable(_eks_secrets_encryption),
    ),
    resource_rule(
        "aws-eks-control-plane-logging",
        "EKS control-plane logs (API, audit, authenticator) must go to CloudWatch for forensics.",
        [EKS_COMPONENT, EKS_CLUSTER],
        checkable(_eks_logging),
        config={
            "requiredLogTypes": string_list(
                "Log types that must be enabled.", ["api", "audit", "authenticator"]
            )
        },
    ),
    resource_rule(
        "aws-eks-endpoint-restricted",
        "The EKS API endpoint should not be reachable from the whole internet.",
        [EKS_COMPONENT, EKS_CLUSTER],
        checkable(_eks_endpoint),
        level=ADVISORY,
        config={
            "allowedCidrs": string_list(
                "If set, every public CIDR must lie inside one of these.", []
            )
        },
    ),
    resource_rule(
        "remote-component-inputs-hidden",
        "Remote components (pulumi-eks) reach a real engine run without inputs; rules cannot "
        "judge them there and judge their real children instead. Reported so it is never silent.",
        list(REMOTE_COMPONENT_CHILDREN),
        _remote_component_hidden,
        level=ADVISORY,
    ),
    resource_rule(
        "aws-ecr-scan-on-push",
        "ECR repositories must scan images on push so known CVEs surface before deploy.",
        [ECR_REPOSITORY],
        _ecr_scan_on_push,
    ),
]
