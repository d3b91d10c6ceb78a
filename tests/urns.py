"""The URNs the Pulumi engine gives a stack's resources, and how an update matches them to the
state of the last release.

The offline run names resources as the engine does (stacks/urns.py; the stock mock monitor kept
only a parent's last type, so a component moved under a new parent kept its mock URN while its
real URN changed). These helpers add what the engine does with aliases (pulumi/pulumi
pkg/resource/deploy/step_generator.go, read around v3.268: generateURN, collapseAliasToUrn,
generateAliases, inheritedChildAlias):
- a URN's type is the whole chain of its parents' types, the root stack's left out;
- an alias spec is collapsed against its parent (its own unless it names one, none if no_parent);
- a child also answers to the URN its parent *matched* in the old state, under that parent's old
  type chain (the child name's parent prefix swapped for the old parent's name);
- the engine tries the URN first, then the aliases in order; an old URN claimed twice, or
  claimed by one resource while another has it as its URN, fails the update.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from stacks.offline import ACCOUNT, RecordedResource, StackRun, run_stack
from stacks.urns import child_type, engine_urn, make_urn, qualified_type_of, split

RELEASE_DIR = Path(__file__).resolve().parent / "release-urns"


@dataclass(frozen=True)
class EngineResource:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str  # the parent's engine URN ("" under the root stack)
    aliases: tuple[str, ...]  # the explicit aliases, collapsed to URNs


def engine_resources(run: StackRun) -> list[EngineResource]:
    """Every registered resource with the URN and explicit aliases the engine computes, in
    registration order (a parent always before its children)."""
    engine_of: dict[str, str] = {}
    out = []
    for r in run.resources:
        prefix = split(r.urn)[0]
        parent = engine_of.get(r.parent, "")
        urn = engine_urn(prefix, parent, r.type, r.name)
        engine_of[r.urn] = urn
        out.append(
            EngineResource(urn, r.type, r.name, r.custom, parent, _aliases(r, parent, engine_of))
        )
    return out


def _aliases(r: RecordedResource, parent: str, engine_of: dict[str, str]) -> tuple[str, ...]:
    prefix = split(r.urn)[0]
    found = []
    for spec in r.alias_specs:
        if spec.urn:
            found.append(spec.urn)
            continue
        # A parent named by its mock URN is one of this run's resources: use its engine URN;
        # else it is an old URN the program spelled itself (pulumi.create_urn).
        alias_parent = "" if spec.no_parent else engine_of.get(spec.parent_urn, spec.parent_urn)
        if not spec.no_parent and not spec.parent_urn:
            alias_parent = parent
        qualified = child_type(qualified_type_of(alias_parent), spec.type or r.type)
        found.append(make_urn(prefix, qualified, spec.name or r.name))
    return tuple(found)


@dataclass
class Update:
    """How `pulumi up` of the new program meets the state of the last release."""

    kept: set[str] = field(default_factory=set)  # old URNs the new program still has
    moved: dict[str, str] = field(default_factory=dict)  # old URN -> the new URN it updates
    created: list[EngineResource] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)  # old URNs nothing answers to
    errors: list[str] = field(default_factory=list)  # what makes the engine refuse the update
    claims: dict[str, list[str]] = field(default_factory=dict)  # old URN -> new URNs aliasing it


def base_type(urn: str) -> str:
    return split(urn)[1].rsplit("$", 1)[-1]


def inherited_alias(type_: str, name: str, parent_name: str, parent_old: str) -> str:
    """The URN a child had under the parent's old URN (a name derived from the parent's follows
    the parent's old name)."""
    if name.startswith(parent_name):
        name = split(parent_old)[2] + name[len(parent_name) :]
    prefix = split(parent_old)[0]
    return make_urn(prefix, child_type(qualified_type_of(parent_old), type_), name)


def plan_update(old: Iterable[str], run: StackRun) -> Update:
    old = set(old)
    update = Update()
    resources = engine_resources(run)
    new_urns = {r.urn for r in resources}
    matched: dict[str, str] = {}  # new URN -> the old URN it matched through an alias
    for r in resources:
        own = [(r.type, r.name), *((base_type(a), split(a)[2]) for a in r.aliases)]
        inherited = (
            [inherited_alias(t, n, split(r.parent)[2], matched[r.parent]) for t, n in own]
            if r.parent in matched
            else []
        )
        aliases = list(dict.fromkeys([*r.aliases, *inherited]))
        for a in aliases:
            if a in old:
                update.claims.setdefault(a, []).append(r.urn)
        if r.urn in old:
            update.kept.add(r.urn)
            continue
        hit = next((a for a in aliases if a in old), None)
        if hit is None:
            update.created.append(r)
            continue
        if hit in new_urns:
            update.errors.append(f"{r.urn} aliases {hit}, which another resource still has")
        if hit in update.moved:
            update.errors.append(f"{hit} is claimed by {update.moved[hit]} and {r.urn}")
        update.moved[hit] = r.urn
        matched[r.urn] = hit
    update.deleted = old - update.kept - set(update.moved)
    return update


# The pinned stacks: the default `aws` and `dev` stacks, and each with a second workflow that
# runs as scheduled jobs (a ScaledJob, a CronJob and its identity, heartbeat alarms).
NIGHTLY = {
    "name": "nightly",
    "mode": "job",
    "schedule": "0 2 * * *",
    "filter": {"type": ["edw.schedule.nightly"]},
}
# Identities spelled with a path and upper case (the names their access entries had were
# digests of those spellings), and one spelled as its principal's key.
ACCESS = {
    "clusterAdminArns": json.dumps(
        [f"arn:aws:iam::{ACCOUNT}:role/ci/Deploy", f"arn:aws:iam::{ACCOUNT}:role/ops"]
    ),
    "previewArns": json.dumps([f"arn:aws:iam::{ACCOUNT}:role/pr/Preview"]),
}
RELEASES: dict[str, tuple[str, dict[str, str]]] = {
    "aws": ("aws", {}),
    "dev": ("dev", {}),
    "aws-two-workflows": ("aws", {"workflows": json.dumps([{"name": "work"}, NIGHTLY])}),
    "dev-two-workflows": ("dev", {"workflows": json.dumps([{"name": "work"}, NIGHTLY])}),
    "aws-access": ("aws", ACCESS),
}


def release_run(release: str) -> StackRun:
    stack, overrides = RELEASES[release]
    return run_stack(stack, overrides)


def release_urns(release: str) -> list[str]:
    """The URNs pinned for the last release (tests/release-urns/<release>.txt)."""
    lines = (RELEASE_DIR / f"{release}.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def write_release(release: str, commit: str) -> Path:
    """Pins the URNs the program makes for ``release`` as the last release's."""
    stack, overrides = RELEASES[release]
    path = RELEASE_DIR / f"{release}.txt"
    path.parent.mkdir(exist_ok=True)
    urns = sorted({r.urn for r in engine_resources(release_run(release))})
    header = [
        f"# The engine URNs of stack `{stack}`"
        + (f" with {json.dumps(overrides)}" if overrides else "")
        + f", as the program of commit {commit} registers them",
        "# (through the mocks of stacks/offline.py; tests/urns.py computes the engine's URNs).",
        f"# Regenerate only at a release: python -m tests.urns {release}",
    ]
    path.write_text("\n".join([*header, *urns]) + "\n")
    return path


if __name__ == "__main__":
    import subprocess
    import sys

    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    for name in sys.argv[1:] or RELEASES:
        print(write_release(name, head))
