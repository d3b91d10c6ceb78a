"""An IAM role that exactly one Kubernetes service account can assume (IRSA)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import iam

from components.aws.iam import Statement, document, irsa_trust


@dataclass(frozen=True)
class ClusterOidc:
    """The cluster's IAM OIDC provider: what every IRSA trust policy names."""

    provider_arn: pulumi.Input[str]
    issuer: pulumi.Input[str]  # host/path, without https://


@dataclass(frozen=True)
class IrsaRoleArgs:
    oidc: ClusterOidc
    namespace: str
    service_account: str
    statements: Sequence[Statement]
    tags: Mapping[str, str]


class IrsaRole(pulumi.ComponentResource):
    """Role + inline least-privilege policy for one service account."""

    role_arn: pulumi.Output[str]
    role_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: IrsaRoleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:IrsaRole", name, None, opts)
        role = iam.Role(
            f"{name}-role",
            assume_role_policy=irsa_trust(
                args.oidc.provider_arn, args.oidc.issuer, args.namespace, args.service_account
            ),
            description=f"IRSA for {args.namespace}/{args.service_account}",
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.policy = iam.RolePolicy(
            f"{name}-policy",
            role=role.name,
            policy=document(args.statements),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.role_arn = role.arn
        self.role_name = role.name
        self.register_outputs({"role_arn": self.role_arn, "role_name": self.role_name})
