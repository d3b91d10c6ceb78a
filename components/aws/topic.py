"""An SNS topic under its own customer managed key, with a TLS-only topic policy: what the alert
topic and the event router share (each adds who may use the key and publish)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import kms, sns

from components.aws.iam import Statement, allow, deny_insecure_transport, document


@dataclass(frozen=True)
class EncryptedTopic:
    topic: sns.Topic
    key: kms.Key


def encrypted_topic(
    name: str,
    parent: pulumi.Resource,
    *,
    description: str,
    account_id: str,
    key_users: Sequence[Statement],
    publishers: Callable[[pulumi.Output[str]], Sequence[Statement]],
    tags: Mapping[str, str],
) -> EncryptedTopic:
    """``<name>-key``, ``<name>-topic`` and ``<name>-policy`` as children of ``parent``.

    The account administers the key (so IAM policies can grant it too); ``key_users`` may use it;
    the topic policy denies any request without TLS and adds ``publishers(topic_arn)``. Signature
    version 2 (SHA256) signs what SNS signs (HTTPS subscription confirmations).
    """
    child = pulumi.ResourceOptions(parent=parent)
    root = {"AWS": f"arn:aws:iam::{account_id}:root"}
    key = kms.Key(
        f"{name}-key",
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=7,
        policy=document(
            [allow(["kms:*"], ["*"], "AccountAdministersTheKey", Principal=root), *key_users]
        ),
        tags=dict(tags),
        opts=child,
    )
    topic = sns.Topic(
        f"{name}-topic",
        kms_master_key_id=key.arn,
        signature_version=2,
        tags=dict(tags),
        opts=child,
    )
    sns.TopicPolicy(
        f"{name}-policy",
        arn=topic.arn,
        policy=document(
            [deny_insecure_transport(topic.arn, service="sns"), *publishers(topic.arn)]
        ),
        opts=child,
    )
    return EncryptedTopic(topic, key)
