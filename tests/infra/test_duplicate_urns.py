"""The offline run refuses a second resource with a URN already taken, as the engine does
(stacks/urns.py): the stock mock monitor silently overwrote it, so such a program passed every
test and failed only at a real `pulumi preview`."""

from __future__ import annotations

import json
from collections.abc import Callable

import pulumi
import pytest

from stacks.offline import ProgramError, ProviderMocks, StackRun, run_program, run_stack

PREFIX = "urn:pulumi:t::edw"


class Component(pulumi.ComponentResource):
    def __init__(self, type_: str, name: str, parent: pulumi.Resource | None = None) -> None:
        super().__init__(type_, name, None, pulumi.ResourceOptions(parent=parent))


def thing(name: str, parent: pulumi.Resource | None = None, type_: str = "test:index:Thing"):
    return pulumi.CustomResource(type_, name, {}, pulumi.ResourceOptions(parent=parent))


def run(program: Callable[[], object]) -> StackRun:
    return run_program(program, "t", {}, ProviderMocks("", ""))


def refusal(program: Callable[[], object]) -> str:
    with pytest.raises(ProgramError) as error:
        run(program)
    return str(error.value.cause)


def engine_message(urn: str) -> str:
    # pulumi/pulumi sdk/go/common/diag/errors.go GetDuplicateResourceURNError (diag 2001)
    return f"Duplicate resource URN '{urn}'; try giving it a unique name"


def test_same_type_and_name_under_one_parent_is_refused_with_the_engine_message() -> None:
    def program() -> None:
        outer = Component("test:index:Outer", "a")
        inner = Component("test:index:Inner", "b", outer)
        thing("x", inner)
        thing("x", inner)

    # The whole parent type chain, as the engine names it; the mock's URN keeps only Inner.
    urn = f"{PREFIX}::test:index:Outer$test:index:Inner$test:index:Thing::x"
    assert refusal(program) == engine_message(urn)


def test_two_components_of_one_type_and_name_are_refused() -> None:
    def program() -> None:
        Component("test:index:Outer", "a")
        Component("test:index:Outer", "a")

    assert refusal(program) == engine_message(f"{PREFIX}::test:index:Outer::a")


def test_same_name_under_two_parents_of_one_type_is_refused() -> None:
    """The parent's name is not in a URN: children of two same-typed parents need own names."""

    def program() -> None:
        thing("x", Component("test:index:Outer", "a"))
        thing("x", Component("test:index:Outer", "b"))

    assert refusal(program) == engine_message(f"{PREFIX}::test:index:Outer$test:index:Thing::x")


def test_a_read_takes_a_urn_like_a_registration() -> None:
    """The engine names a read (Resource.get) with the same generateURN (GenerateReadSteps)."""

    def program() -> None:
        thing("x")
        pulumi.CustomResource("test:index:Thing", "x", {}, pulumi.ResourceOptions(id="existing-id"))

    assert refusal(program) == engine_message(f"{PREFIX}::test:index:Thing::x")


def test_same_name_with_another_type_or_parent_type_is_fine() -> None:
    def program() -> None:
        thing("x")
        thing("x", type_="test:index:Other")
        thing("x", Component("test:index:Outer", "x"))
        thing("x", Component("test:index:Inner", "x"))

    assert [r.name for r in run(program).resources].count("x") == 6


def test_the_whole_parent_type_chain_tells_children_apart() -> None:
    """Same-typed parents under differently typed grandparents: distinct URNs for the engine,
    though the stock mock monitor (the parent's last type only) gives both one."""

    def program() -> None:
        thing("x", Component("test:index:Inner", "i", Component("test:index:OuterA", "a")))
        thing("x", Component("test:index:Inner", "i", Component("test:index:OuterB", "b")))

    urns = {r.urn for r in run(program).resources if r.name == "x"}
    assert urns == {
        f"{PREFIX}::test:index:OuterA$test:index:Inner$test:index:Thing::x",
        f"{PREFIX}::test:index:OuterB$test:index:Inner$test:index:Thing::x",
    }


def test_aliases_take_no_urn() -> None:
    """Two resources may name the same old URN as an alias (the update, not the run, decides
    whether that is a conflict: tests/urns.py plan_update)."""

    def program() -> None:
        old = pulumi.Alias(name="old")
        pulumi.CustomResource("test:index:Thing", "x", {}, pulumi.ResourceOptions(aliases=[old]))
        pulumi.CustomResource("test:index:Thing", "y", {}, pulumi.ResourceOptions(aliases=[old]))

    assert len(run(program).resources) == 2


@pytest.mark.parametrize(
    ("key", "prefix"),
    [
        ("deployerPrincipals", "cluster-deployer"),
        ("previewPrincipals", "cluster-previewer"),
        ("routerPublishers", "router-publisher"),
    ],
)
def test_principals_are_granted_by_their_whole_object_id(key: str, prefix: str) -> None:
    """Two principals whose ids share their first 8 hex digits (names held only those, so the
    engine refused the program as one URN twice) each get a grant named by the whole id; a
    principal whose 8 digits are its own answers to the grant's former name, so a deployed
    stack updates it in place (a second assignment would be refused: RoleAssignmentExists)."""
    a, b = "11111111-0000-4000-8000-000000000001", "11111111-0000-4000-8000-000000000002"
    c = "22222222-0000-4000-8000-000000000003"
    principals = [f"ServicePrincipal:{x}" for x in (a, b, c)]
    directory = dict.fromkeys((a, b, c), "ServicePrincipal")
    run = run_stack(
        "dev", {key: json.dumps(principals), "offline:directory": json.dumps(directory)}
    )
    grants = {
        g.name: g
        for g in run.of_type("azure-native:authorization:RoleAssignment")
        if g.name.startswith(f"{prefix}-")
    }
    assert {n: g.inputs["principalId"] for n, g in grants.items()} == {
        f"{prefix}-{x}": x for x in (a, b, c)
    }
    # Names the grant answers to besides its own (a parent's aliases add its own name too).
    former = {n: {u.rsplit("::", 1)[1] for u in g.aliases} - {n} for n, g in grants.items()}
    assert former[f"{prefix}-{a}"] == former[f"{prefix}-{b}"] == set()  # never deployable
    assert former[f"{prefix}-{c}"] == {f"{prefix}-22222222"}
