"""IAM policy documents as data: built once here, reused by every AWS component."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

Statement = dict[str, Any]
EC2_TRUST = {"Service": "ec2.amazonaws.com"}


def document(statements: pulumi.Input[Sequence[Statement]]) -> pulumi.Output[str]:
    """A policy document (JSON string) from statements that may hold Outputs."""
    return pulumi.Output.from_input(statements).apply(
        lambda s: json.dumps({"Version": "2012-10-17", "Statement": list(s)}, sort_keys=True)
    )


def allow(
    actions: Sequence[str],
    resources: pulumi.Input[Sequence[pulumi.Input[str]]],
    sid: str,
    **extra: Any,
) -> Statement:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": resources,
        **extra,
    }


def assume_role_trust(principal: Mapping[str, str]) -> pulumi.Output[str]:
    return document([{"Effect": "Allow", "Principal": dict(principal), "Action": "sts:AssumeRole"}])


def deny_insecure_transport(resource_arn: pulumi.Input[str], service: str = "sqs") -> Statement:
    """Refuse any request that does not use TLS."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": f"{service}:*",
        "Resource": resource_arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def irsa_trust(
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    namespace: str,
    service_account: str,
) -> pulumi.Output[str]:
    """Trust only one service account's projected token, issued for STS."""
    return pulumi.Output.all(oidc_provider_arn, oidc_issuer).apply(
        lambda a: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": a[0]},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            "StringEquals": {
                                f"{_host(a[1])}:sub": (
                                    f"system:serviceaccount:{namespace}:{service_account}"
                                ),
                                f"{_host(a[1])}:aud": "sts.amazonaws.com",
                            }
                        },
                    }
                ],
            },
            sort_keys=True,
        )
    )


def _host(issuer: str) -> str:
    return issuer.removeprefix("https://")
