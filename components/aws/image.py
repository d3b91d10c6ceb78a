"""An image built during `up` into an ECR repository of its own: the consumer's (app/) and each
workflow handler's (its directory)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_docker_build as docker_build
from pulumi_aws import ecr

from components.app_image import APP_CONTEXT, build_and_push

KEEP_IMAGES = 20


@dataclass(frozen=True)
class EcrConsumerImageArgs:
    tags: Mapping[str, str]
    context: str = APP_CONTEXT  # the directory built, relative to the project directory


class EcrConsumerImage(pulumi.ComponentResource):
    """Scan-on-push, immutable-tag repository; the image is pushed and referenced by digest."""

    repository_url: pulumi.Output[str]
    image_ref: pulumi.Output[str]

    def __init__(
        self, name: str, args: EcrConsumerImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:EcrConsumerImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        repo = ecr.Repository(
            f"{name}-repo",
            image_scanning_configuration=ecr.RepositoryImageScanningConfigurationArgs(
                scan_on_push=True
            ),
            image_tag_mutability="IMMUTABLE",
            encryption_configurations=[
                ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")
            ],
            # The images are build output: `pulumi destroy` removes them with the repository.
            force_delete=True,
            tags=dict(args.tags),
            opts=child,
        )
        ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repo.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": f"keep the last {KEEP_IMAGES} images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": KEEP_IMAGES,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                }
            ),
            opts=child,
        )
        token = ecr.get_authorization_token_output(registry_id=repo.registry_id)
        self.image_ref = build_and_push(
            f"{name}-build",
            repository=repo.repository_url,
            registry=docker_build.RegistryArgs(
                address=repo.repository_url, username=token.user_name, password=token.password
            ),
            opts=child,
            context=args.context,
        )
        self.repository_url = repo.repository_url
        self.register_outputs({"repository_url": self.repository_url, "image_ref": self.image_ref})
