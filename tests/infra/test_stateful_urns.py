"""Stateful resources keep their URNs: a changed URN is a delete and a create on `pulumi up`.

The queues, dead-letter queues, tables, keys, registries and log groups below hold data or are
referenced from outside the stack; if a refactor (a new parent component, a name that now includes
a workflow) changes one of these URNs, an existing stack would replace it: messages, rows or keys
lost. Such a change must give the resource `aliases` naming the URN pinned here (see
../shared/design/workflows.md), and this test must then find the old URN among the aliases.
"""

from __future__ import annotations

import pytest

from stacks.offline import StackRun
from tests.urns import RELEASES, plan_update, release_run, release_urns

STATEFUL_TYPES = {
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:dynamodb/table:Table",
    "aws:ecr/repository:Repository",
    "aws:kms/key:Key",
    "aws:sns/topic:Topic",  # its e-mail subscribers confirmed this topic, not a new one
    "aws:sqs/queue:Queue",
    "azure-native:containerregistry:Registry",
    "azure-native:cosmosdb:DatabaseAccount",
    "azure-native:cosmosdb:TableResourceTable",
    "azure-native:resources:ResourceGroup",
    "azure-native:storage:Queue",
    "azure-native:storage:StorageAccount",
}

PINNED = {
    "aws": {
        "urn:pulumi:aws::edw::edw:aws:SqsWorkQueue$aws:sqs/queue:Queue::work-queue",
        "urn:pulumi:aws::edw::edw:aws:SqsWorkQueue$aws:sqs/queue:Queue::work-dlq",
        "urn:pulumi:aws::edw::edw:aws:DynamoResultsTable$aws:dynamodb/table:Table::results-table",
        "urn:pulumi:aws::edw::edw:aws:EksCluster$aws:kms/key:Key::cluster-secrets-key",
        "urn:pulumi:aws::edw::edw:aws:EksCluster$aws:cloudwatch/logGroup:LogGroup"
        "::cluster-control-plane-logs",
        "urn:pulumi:aws::edw::edw:aws:EcrConsumerImage$aws:ecr/repository:Repository"
        "::consumer-image-repo",
        "urn:pulumi:aws::edw::edw:aws:KarpenterNodeAutoscaling$aws:sqs/queue:Queue"
        "::karpenter-interruption",
        "urn:pulumi:aws::edw::edw:aws:AlertTopic$aws:kms/key:Key::alerts-key",
        "urn:pulumi:aws::edw::edw:aws:AlertTopic$aws:sns/topic:Topic::alerts-topic",
        "urn:pulumi:aws::edw::edw:aws:SnsEventRouter$aws:kms/key:Key::router-key",
        "urn:pulumi:aws::edw::edw:aws:SnsEventRouter$aws:sns/topic:Topic::router-topic",
    },
    "dev": {
        "urn:pulumi:dev::edw::azure-native:resources:ResourceGroup::resource-group",
        "urn:pulumi:dev::edw::edw:azure:QueueAccount$azure-native:storage:StorageAccount"
        "::queues-account",
        "urn:pulumi:dev::edw::edw:azure:StorageWorkQueue$azure-native:storage:Queue::work-work",
        "urn:pulumi:dev::edw::edw:azure:StorageWorkQueue$azure-native:storage:Queue::work-poison",
        "urn:pulumi:dev::edw::edw:azure:CosmosResultsTable$azure-native:cosmosdb:DatabaseAccount"
        "::results-account",
        "urn:pulumi:dev::edw::edw:azure:CosmosResultsTable$azure-native:cosmosdb:TableResourceTable"
        "::results-table",
        "urn:pulumi:dev::edw::edw:azure:AksCluster$azure-native:containerregistry:Registry"
        "::cluster-acr",
    },
}


@pytest.mark.parametrize("stack", ["aws", "dev"])
def test_stateful_resources_keep_the_urns_of_the_last_release(
    stack: str, aws_run: StackRun, dev_run: StackRun
) -> None:
    """In the engine's view of an update from the last release (tests/urns.py: explicit
    aliases and those a child inherits from its parent's), each pinned URN is kept or updated in
    place, and no stateful resource is new."""
    run = aws_run if stack == "aws" else dev_run
    update = plan_update(release_urns(stack), run)
    assert PINNED[stack] <= update.kept | set(update.moved)
    new = {r.urn for r in update.created if r.type in STATEFUL_TYPES}
    assert new == set(), "a new stateful resource: pin its URN here"


def test_the_storage_account_moved_under_the_queue_account_with_an_alias(dev_run: StackRun) -> None:
    """The alias the engine matches is the old URN exactly: parent type and name."""
    account = dev_run.one("azure-native:storage:StorageAccount")
    assert account.urn.endswith(
        "edw:azure:QueueAccount$azure-native:storage:StorageAccount::queues-account"
    )
    assert (
        "urn:pulumi:dev::edw::edw:azure:StorageWorkQueue$azure-native:storage:StorageAccount"
        "::work-account"
    ) in account.aliases


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_every_resource_of_the_last_release_updates_in_place(release: str) -> None:
    """The engine's view (tests/urns.py): every URN the last release made is still made, or is
    the alias of exactly one new resource (an update, not a delete and a create); the update
    claims no URN twice."""
    old = release_urns(release)
    update = plan_update(old, release_run(release))
    assert update.errors == []
    assert sorted(update.deleted) == []
    moved_twice = {u: urns for u, urns in update.claims.items() if len(urns) > 1}
    assert moved_twice == {}


def test_the_consumers_cosmos_grant_keeps_the_id_of_the_last_release(dev_run: StackRun) -> None:
    """Cosmos DB table role assignments are named by the GUID we derive from the stack and the
    identity's component name (components/azure/identity.py): a renamed identity would be a new
    assignment for the same principal and scope, refused while the old one stands. (ARM role
    assignments are named by the provider at create and kept in the state with their URN.)"""
    grant = dev_run.one(
        "azure-native:cosmosdb:TableResourceTableRoleAssignment", "consumer-identity-table-writer"
    )
    assert grant.inputs["roleAssignmentId"] == "fcca188b-efe7-554b-a597-edf7a20fe5ab"
