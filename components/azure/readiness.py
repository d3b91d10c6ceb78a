"""Waits for what Azure propagates late, by polling the real thing rather than sleeping.

Three grants are refused or ineffective for minutes after the call that made them returned:
- a custom role definition, assigned right after it is created ("role definition does not
  exist"): poll ARM until the definition reads back, several times in a row;
- a Cosmos DB table role assignment for a managed identity Entra does not know yet ("principal
  ... was not found"): poll Microsoft Graph until the service principal reads back;
- the deployer's cluster-admin role assignment on an Entra-only AKS cluster (the first
  Kubernetes objects get 403): ask the API server, as the deployer, whether it may do
  everything (a SelfSubjectAccessReview) until it says yes.

Each is a Pulumi dynamic resource (``Readiness``) whose create polls until the probe succeeds
or a deadline passes (then `up` fails with the last answer); later `up`s leave it alone. The
probes authenticate as the azure-native provider does (``deployer_credential``).
"""

from __future__ import annotations

import base64
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi import dynamic

ARM = "https://management.azure.com"
GRAPH = "https://graph.microsoft.com"
AKS_SERVER_APP = "6dae42f8-4368-4678-94ff-3960e28e3630"  # the Entra app of every AKS API server
DEFAULT_TIMEOUT_SECONDS = 900
CONSECUTIVE = 3  # reads through different replicas must all agree before we go on
RETRY_STATUSES = frozenset({401, 403, 404, 408, 429, 500, 502, 503, 504})


class NotReadyError(RuntimeError):
    """The probe never succeeded before the deadline; the text is the last answer."""


@dataclass(frozen=True)
class Answer:
    status: int
    ok: bool
    detail: str


def poll(
    probe: Callable[[], Answer],
    timeout: float,
    *,
    consecutive: int = CONSECUTIVE,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Call ``probe`` until it answers ok ``consecutive`` times in a row; back off (jittered,
    2 s doubling to 30 s) on answers worth waiting for; fail at once on any other. Returns
    the number of probes made."""
    deadline = clock() + timeout
    streak = attempts = 0
    pause = 2.0
    last = Answer(0, False, "no answer yet")
    while True:
        attempts += 1
        try:
            last = probe()
        except OSError as exc:  # a connection that failed is worth another try
            last = Answer(0, False, f"{type(exc).__name__}: {exc}")
        if last.ok:
            streak += 1
            if streak >= consecutive:
                return attempts
            sleep(1.0)
            continue
        streak = 0
        if last.status and last.status not in RETRY_STATUSES:
            raise NotReadyError(f"HTTP {last.status}: {last.detail}")
        if clock() + pause > deadline:
            raise NotReadyError(
                f"still not ready after {timeout:.0f} s: HTTP {last.status} {last.detail}"
            )
        sleep(random.uniform(pause / 2, pause))
        pause = min(pause * 2, 30.0)


def deployer_credential(env: Mapping[str, str] = os.environ) -> Any:
    """The identity the azure-native provider authenticates as, from the same variables
    (the choice mirrors components.azure.cluster.kubelogin_login)."""
    from azure import identity  # noqa: PLC0415 - only an `up` against Azure needs it

    client, tenant = env.get("ARM_CLIENT_ID", ""), env.get("ARM_TENANT_ID", "")
    if env.get("ARM_CLIENT_SECRET"):
        return identity.ClientSecretCredential(tenant, client, env["ARM_CLIENT_SECRET"])
    if env.get("ARM_USE_MSI", "").lower() == "true":
        return identity.ManagedIdentityCredential(client_id=client or None)
    token_file = env.get("ARM_OIDC_TOKEN_FILE_PATH") or env.get("AZURE_FEDERATED_TOKEN_FILE")
    if token_file:
        return identity.WorkloadIdentityCredential(
            tenant_id=tenant, client_id=client, token_file_path=token_file
        )
    return identity.AzureCliCredential()


def http_probe(
    method: str, url: str, scope: str, body: Any = None, ca_data: str = ""
) -> Callable[[], Answer]:
    """A probe that calls ``url`` with a bearer token for ``scope``; ok on 2xx, and for a
    SelfSubjectAccessReview only when the review says allowed."""
    import requests  # noqa: PLC0415 - only an `up` against Azure needs it

    credential = deployer_credential()
    verify: str | bool = True
    if ca_data:
        handle = tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False)  # noqa: SIM115
        handle.write(base64.b64decode(ca_data))
        handle.close()
        verify = handle.name

    def probe() -> Answer:
        token = credential.get_token(scope).token
        response = requests.request(
            method,
            url,
            headers={"Authorization": f"Bearer {token}"},
            json=body,
            timeout=30,
            verify=verify,
        )
        text = response.text[:300]
        if not 200 <= response.status_code < 300:
            return Answer(response.status_code, False, text)
        if body is not None and body.get("kind") == "SelfSubjectAccessReview":
            allowed = bool(response.json().get("status", {}).get("allowed"))
            return Answer(403 if not allowed else response.status_code, allowed, text)
        return Answer(response.status_code, True, text)

    return probe


class _ReadinessProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        probe = http_probe(
            props["method"], props["url"], props["scope"], props.get("body"), props.get("ca", "")
        )
        attempts = poll(probe, float(props.get("timeout", DEFAULT_TIMEOUT_SECONDS)))
        ready = {**props, "attempts": attempts}
        return dynamic.CreateResult(id_=props["url"], outs=ready)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        # A new target is a new wait; anything else was already waited for.
        changed = olds.get("url") != news.get("url")
        return dynamic.DiffResult(changes=changed, replaces=["url"] if changed else [])


class Readiness(dynamic.Resource):
    """Blocks its dependents until ``url`` answers as the deployer (see the module doc)."""

    attempts: pulumi.Output[int]

    def __init__(
        self,
        name: str,
        *,
        method: str,
        url: pulumi.Input[str],
        scope: str,
        body: Mapping[str, Any] | None = None,
        ca: pulumi.Input[str] = "",
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "method": method,
            "url": url,
            "scope": scope,
            "body": dict(body) if body else None,
            "ca": ca,
            "timeout": timeout,
            "attempts": None,
        }
        super().__init__(_ReadinessProvider(), name, props, opts)


def role_definition_visible(
    name: str, definition_id: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> Readiness:
    """Until the custom role definition reads back from ARM (it can then be assigned)."""
    return Readiness(
        name,
        method="GET",
        url=pulumi.Output.concat(ARM, definition_id, "?api-version=2022-04-01"),
        scope=f"{ARM}/.default",
        opts=opts,
    )


def principal_known(
    name: str, principal_id: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> Readiness:
    """Until Entra (Microsoft Graph) knows the identity's service principal."""
    return Readiness(
        name,
        method="GET",
        url=pulumi.Output.concat(GRAPH, "/v1.0/servicePrincipals/", principal_id),
        scope=f"{GRAPH}/.default",
        opts=opts,
    )


def cluster_admin_effective(
    name: str, kubeconfig: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> Readiness:
    """Until the API server lets the deployer do everything (its cluster-admin is in force)."""
    config = pulumi.Output.from_input(kubeconfig).apply(json.loads)
    cluster = config.apply(lambda c: c["clusters"][0]["cluster"])
    return Readiness(
        name,
        method="POST",
        url=cluster.apply(
            lambda c: f"{c['server']}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        ),
        scope=f"{AKS_SERVER_APP}/.default",
        body={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "*", "group": "*", "resource": "*"}},
        },
        ca=cluster.apply(lambda c: c.get("certificate-authority-data", "")),
        opts=opts,
    )
