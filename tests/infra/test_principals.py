"""IAM principals compared by what they name (components/aws/principals.py): a configured ARN, the
caller STS reports and the cluster's `edw/creator` tag (written by the program or by hand)."""

from __future__ import annotations

import pytest

from components.aws.principals import (
    Principal,
    parse,
    principal_key,
    principal_of,
    repeated,
    same_principal,
)

ACCT = "111122223333"
OTHER = "444455556666"
ROLE = f"arn:aws:iam::{ACCT}:role/deploy"
ROLE_WITH_PATH = f"arn:aws:iam::{ACCT}:role/ci/github/deploy"
SESSION = f"arn:aws:sts::{ACCT}:assumed-role/deploy/GitHubActions-42"
TAGGED_ROLE = f"arn:aws:sts::{ACCT}:assumed-role/deploy"  # what the program tags (no session)
USER = f"arn:aws:iam::{ACCT}:user/ana"
USER_WITH_PATH = f"arn:aws:iam::{ACCT}:user/ops/ana"


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        # users, with and without a path (the name is unique in the account whatever the path)
        (USER, USER, True),
        (USER_WITH_PATH, USER_WITH_PATH, True),
        (USER_WITH_PATH, USER, True),
        (USER, f"arn:aws:iam::{ACCT}:user/bob", False),
        (USER, f"arn:aws:iam::{OTHER}:user/ana", False),
        # roles with paths against STS's session ARN, which has no path
        (ROLE_WITH_PATH, SESSION, True),
        (ROLE, SESSION, True),
        (f"arn:aws:iam::{ACCT}:role/preview", SESSION, False),
        (ROLE, f"arn:aws:sts::{OTHER}:assumed-role/deploy/GitHubActions-42", False),
        # the tag the program writes (a session ARN without the session)
        (ROLE_WITH_PATH, TAGGED_ROLE, True),
        (SESSION, TAGGED_ROLE, True),
        # the tag set by hand, as docs/aws.md says, holding the role's own ARN: before, a role
        # ARN never matched itself (only user ARNs were compared as such) and the migrated
        # cluster's `up` still declared a second entry for its creator (409)
        (ROLE_WITH_PATH, ROLE_WITH_PATH, True),
        (ROLE, ROLE_WITH_PATH, True),
        (SESSION, ROLE_WITH_PATH, True),
        # IAM names are not distinguished by case
        (f"arn:aws:iam::{ACCT}:role/Deploy", SESSION, True),
        # a role and a user of the same name are two principals
        (f"arn:aws:iam::{ACCT}:user/deploy", ROLE, False),
        (f"arn:aws:iam::{ACCT}:user/deploy", TAGGED_ROLE, False),
        # partitions differ
        (f"arn:aws-cn:iam::{ACCT}:role/deploy", ROLE, False),
        (
            f"arn:aws-us-gov:iam::{ACCT}:role/deploy",
            f"arn:aws-us-gov:iam::{ACCT}:role/x/deploy",
            True,
        ),
        # what names no role or user never matches, not even itself
        (f"arn:aws:iam::{ACCT}:root", f"arn:aws:iam::{ACCT}:root", False),
        ("", "", False),
        ("not-an-arn", "not-an-arn", False),
    ],
)
def test_principals_are_the_same_whatever_their_spelling(one: str, other: str, same: bool) -> None:
    assert same_principal(one, other) is same
    assert same_principal(other, one) is same


def test_a_principal_is_its_partition_account_kind_and_name() -> None:
    assert parse(ROLE_WITH_PATH) == Principal("aws", ACCT, "role", "deploy")
    assert parse(SESSION) == Principal("aws", ACCT, "role", "deploy")
    assert parse(USER_WITH_PATH) == Principal("aws", ACCT, "user", "ana")
    assert parse(f"arn:aws:sts::{ACCT}:federated-user/ana") is None


def test_the_creator_tag_keeps_a_role_without_its_session() -> None:
    assert principal_of(SESSION) == TAGGED_ROLE
    assert principal_of(USER_WITH_PATH) == USER_WITH_PATH


def test_repeats_are_found_after_normalisation() -> None:
    assert repeated([ROLE, USER, ROLE_WITH_PATH]) == [[ROLE, ROLE_WITH_PATH]]
    assert repeated([USER, USER]) == [[USER, USER]]
    assert repeated([ROLE, f"arn:aws:iam::{ACCT}:role/Deploy", USER]) == [
        [ROLE, f"arn:aws:iam::{ACCT}:role/Deploy"]
    ]
    assert repeated([ROLE, f"arn:aws:iam::{OTHER}:role/deploy", USER]) == []


def test_a_principal_key_is_its_arn_without_path_in_lower_case() -> None:
    """What access entries are named after: one key for every spelling of one principal."""
    assert principal_key(ROLE_WITH_PATH) == ROLE
    assert principal_key(f"arn:aws:iam::{ACCT}:role/CI/Deploy") == ROLE
    assert principal_key(ROLE) == ROLE  # a key spelled as such keeps its name
    assert principal_key(USER_WITH_PATH) == USER
    assert principal_key(f"arn:aws:iam::{ACCT}:user/deploy") != ROLE
    assert principal_key(f"arn:aws-cn:iam::{ACCT}:role/deploy") != ROLE
