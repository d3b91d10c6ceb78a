"""Images on Azure, built during `up` and pushed to the stack's ACR: the consumer's (app/,
repository edw-consumer) and each workflow handler's (its directory, a repository of its own).

The registry has its admin user disabled, so the push authenticates as the identity running
`pulumi up`, exactly like `az acr login`: the provider's Entra token for Azure Resource Manager
is exchanged at the registry's /oauth2/exchange endpoint for an ACR refresh token, which docker
accepts as the password of the fixed user 00000000-0000-0000-0000-000000000000. The deployer's
Contributor (or Owner) role already includes pushing (Microsoft.ContainerRegistry/registries/*
write actions; ACR "roles and permissions"), so the program grants nothing for it: an AcrPush
assignment for "whoever runs now" added no right and changed on every change of identity.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass

import pulumi
import pulumi_docker_build as docker_build
from pulumi_azure_native import authorization

from components.app_image import APP_CONTEXT, build_and_push

ACR_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
REPOSITORY = "edw-consumer"
EXCHANGE_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class AcrConsumerImageArgs:
    registry_id: pulumi.Input[str]
    login_server: pulumi.Input[str]
    tenant_id: str
    repository: str = REPOSITORY
    context: str = APP_CONTEXT  # the directory built, relative to the project directory


def acr_refresh_token(login_server: str, tenant_id: str, aad_access_token: str) -> str:
    """Exchange an Entra access token for an ACR refresh token (the `az acr login` flow)."""
    body = urllib.parse.urlencode(
        {
            "grant_type": "access_token",
            "service": login_server,
            "tenant": tenant_id,
            "access_token": aad_access_token,
        }
    ).encode()
    request = urllib.request.Request(
        f"https://{login_server}/oauth2/exchange",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=EXCHANGE_TIMEOUT_SECONDS) as response:
        return str(json.load(response)["refresh_token"])


class AcrConsumerImage(pulumi.ComponentResource):
    """Build (linux/amd64), push as the deployer and reference by digest."""

    image_ref: pulumi.Output[str]

    def __init__(
        self, name: str, args: AcrConsumerImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:AcrConsumerImage", name, None, opts)
        aad_token = authorization.get_client_token_output().token
        password = pulumi.Output.secret(
            pulumi.Output.all(args.login_server, aad_token).apply(
                lambda a: acr_refresh_token(a[0], args.tenant_id, a[1])
            )
        )
        self.image_ref = build_and_push(
            f"{name}-build",
            repository=pulumi.Output.concat(args.login_server, f"/{args.repository}"),
            registry=docker_build.RegistryArgs(
                address=args.login_server, username=ACR_TOKEN_USER, password=password
            ),
            opts=pulumi.ResourceOptions(parent=self),
            context=args.context,
        )
        self.register_outputs({"image_ref": self.image_ref})
