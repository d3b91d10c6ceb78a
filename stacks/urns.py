"""The URNs the Pulumi engine gives a program's resources.

The engine (pulumi/pulumi pkg/resource/deploy, deployment.generateURN) names a resource
urn:pulumi:<stack>::<project>::<type chain>::<name>, the type chain being the types of all its
parents but the root stack, then its own, joined by "$". The parent's *name* is not part of it,
so two children of the same name and type under two parents of the same type chain collide.
The stock mock monitor (pulumi.runtime.mocks.MockMonitor.make_urn) keeps only the parent's last
type; stacks/offline.py's monitor names every resource with these helpers instead, so a run's
URNs are the engine's.
"""

from __future__ import annotations

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


def make_urn(stack_and_project: str, qualified_type: str, name: str) -> str:
    return f"{stack_and_project}::{qualified_type}::{name}"


def split(urn: str) -> tuple[str, str, str]:
    """(urn:pulumi:<stack>::<project>, qualified type, name)."""
    stack, project, qualified, name = urn.removeprefix("urn:pulumi:").split("::", 3)
    return f"urn:pulumi:{stack}::{project}", qualified, name


def qualified_type_of(parent_urn: str) -> str:
    """The type chain a child of ``parent_urn`` is prefixed with ("" under the root stack)."""
    if not parent_urn:
        return ""
    qualified = split(parent_urn)[1]
    return "" if qualified == ROOT_STACK_TYPE else qualified.removeprefix(f"{ROOT_STACK_TYPE}$")


def child_type(parent_qualified: str, type_: str) -> str:
    return f"{parent_qualified}${type_}" if parent_qualified else type_


def engine_urn(stack_and_project: str, parent_urn: str, type_: str, name: str) -> str:
    """The URN of a resource registered under ``parent_urn`` (an engine URN; "" for none)."""
    return make_urn(stack_and_project, child_type(qualified_type_of(parent_urn), type_), name)


def duplicate_urn_message(urn: str) -> str:
    """What the engine reports when a program registers (or reads) a second resource with a URN
    it has already seen, and fails the deployment (diag 2001, GetDuplicateResourceURNError in
    pulumi/pulumi sdk/go/common/diag/errors.go, raised by stepGenerator.generateURN in
    pkg/resource/deploy/step_generator.go; the text is unchanged since 2020)."""
    return f"Duplicate resource URN '{urn}'; try giving it a unique name"
