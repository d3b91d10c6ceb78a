"""IAM principals as the config, STS and the cluster's `edw/creator` tag spell them, compared by
the identity they name.

One principal has several spellings: a role is `arn:aws:iam::<account>:role/<path>/<name>` in the
config, `arn:aws:sts::<account>:assumed-role/<name>/<session>` when it calls (STS drops the path),
and `arn:aws:sts::<account>:assumed-role/<name>` in the tag this program writes, while a tag set
by hand may hold any of them. What identifies it is (partition, account, role or user, name): IAM
names are unique within an account whatever their path, and not distinguished by case (IAM API
reference, CreateRole/CreateUser: "IAM user, group, role, and policy names must be unique within
the account. Names are not distinguished by case.").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# arn:<partition>:iam::<account>:role|user/<path/>name, and STS's assumed-role session ARN with or
# without its session name (the form the tag keeps).
IAM_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):(role|user)/(?:[^/]+/)*([^/]+)$")
STS_ARN = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)(?:/[^/]+)?$")
# Callers no access entry can name (the account root, a federated user): the config refuses them
# in its lists, so as a cluster's creator they match nothing and need no entry of their own.
UNLISTABLE_ARN = re.compile(r"^arn:aws[a-z-]*:(?:iam::\d{12}:root|sts::\d{12}:federated-user/.+)$")


@dataclass(frozen=True)
class Principal:
    """One IAM role or user, however its ARN was spelled."""

    partition: str
    account: str
    kind: str  # "role" | "user"
    name: str  # without its path, lower case


def parse(arn: str) -> Principal | None:
    """The role or user an ARN names, or None for anything else (root, federated users)."""
    if match := IAM_ARN.match(arn):
        partition, account, kind, name = match.groups()
        return Principal(partition, account, kind, name.lower())
    if match := STS_ARN.match(arn):
        partition, account, name = match.groups()
        return Principal(partition, account, "role", name.lower())
    return None


def principal_key(arn: str) -> str:
    """The role or user an ARN names, as one ARN: without its path, the name in lower case
    (`arn:aws:iam::<account>:role/<name>`); the ARN itself when it names no role or user.

    EKS keys access entries by principal, not spelling: it stores the role's or user's unique id
    with the entry and allows one entry per IAM principal (EKS user guide, "Create access
    entries": "An IAM principal can't be included in more than one access entry"), and IAM allows
    one role or user of a name per account, whatever its path or case. So resources named after
    this key follow the principal, whichever spelling the config uses."""
    p = parse(arn)
    return arn if p is None else f"arn:{p.partition}:iam::{p.account}:{p.kind}/{p.name}"


def unlistable(arn: str) -> bool:
    """Whether an ARN is a caller that no access entry can name (root, a federated user)."""
    return UNLISTABLE_ARN.match(arn) is not None


def same_principal(one: str, other: str) -> bool:
    """Whether two ARNs name the same role or user (never true for what `parse` refuses)."""
    first = parse(one)
    return first is not None and first == parse(other)


def principal_of(caller: str) -> str:
    """The caller without its STS session name: what identifies it from one run to the next."""
    if ":assumed-role/" in caller:
        return "/".join(caller.split("/")[:2])
    return caller


def repeated(arns: Iterable[str]) -> list[list[str]]:
    """The groups of ARNs that name one principal more than once, in the order given."""
    groups: dict[Principal | str, list[str]] = {}
    for arn in arns:
        groups.setdefault(parse(arn) or arn, []).append(arn)
    return [group for group in groups.values() if len(group) > 1]
