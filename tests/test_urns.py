"""tests/urns.py computes the URNs and alias matches the engine computes, not the mock's."""

from __future__ import annotations

from stacks.offline import AliasSpec, RecordedResource, StackRun
from tests.urns import engine_resources, plan_update

STACK = "urn:pulumi:s::p::pulumi:pulumi:Stack::p-s"


def resource(
    type_: str, name: str, parent: str = STACK, *aliases: AliasSpec, custom: bool = True
) -> RecordedResource:
    # What the mock monitor names it: the parent's last type only.
    parent_type = parent.split("::")[2].rsplit("$", 1)[-1]
    urn = f"urn:pulumi:s::p::{parent_type}${type_}::{name}"
    return RecordedResource(
        type_, name, urn, "", {}, {}, parent, (), custom, "", alias_specs=aliases
    )


def moved_queue(*aliases: AliasSpec) -> StackRun:
    """A queue component that moved under a new workflow component."""
    workflow = resource("my:Workflow", "work", custom=False)
    queues = resource("my:Queues", "work", workflow.urn, *aliases, custom=False)
    return StackRun(
        "s", [workflow, queues, resource("aws:sqs/queue:Queue", "work-queue", queues.urn)], {}
    )


OLD = [
    "urn:pulumi:s::p::my:Queues::work",
    "urn:pulumi:s::p::my:Queues$aws:sqs/queue:Queue::work-queue",
]


def test_a_grandchild_urn_carries_every_parent_type_but_the_stack() -> None:
    assert [r.urn for r in engine_resources(moved_queue())] == [
        "urn:pulumi:s::p::my:Workflow::work",
        "urn:pulumi:s::p::my:Workflow$my:Queues::work",
        "urn:pulumi:s::p::my:Workflow$my:Queues$aws:sqs/queue:Queue::work-queue",
    ]


def test_without_an_alias_the_moved_queue_is_replaced() -> None:
    update = plan_update(OLD, moved_queue())
    assert update.deleted == set(OLD)


def test_the_component_alias_carries_its_children_along() -> None:
    """Only the component names its old parent (none); its queue inherits the match."""
    update = plan_update(OLD, moved_queue(AliasSpec(no_parent=True)))
    assert update.deleted == set()
    assert update.moved[OLD[1]] == (
        "urn:pulumi:s::p::my:Workflow$my:Queues$aws:sqs/queue:Queue::work-queue"
    )
    assert [r.type for r in update.created] == ["my:Workflow"]


def test_an_old_urn_claimed_by_a_resource_that_still_exists_is_an_error() -> None:
    run = moved_queue(AliasSpec(no_parent=True))
    run.resources.append(resource("my:Queues", "work", custom=False))
    update = plan_update(OLD, run)
    assert update.errors
