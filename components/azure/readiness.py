"""Waits for what Azure propagates late, by polling the real thing rather than sleeping.

Two grants are refused or ineffective for minutes after the call that made them returned:
- a Cosmos DB table role assignment for a managed identity Entra does not know yet ("principal
  ... was not found"): poll Microsoft Graph until the service principal reads back (404 is
  "not yet"; 401/403 mean the deployer may not read service principals, which waiting never
  fixes: fail at once and name the permission);
- the deployer's Kubernetes role assignment on the cluster (the first objects would get 403):
  ask the API server, as the deployer, whether it may do each concrete thing the program does
  (SelfSubjectAccessReviews for those verbs and resources, never "*", which the AKS Azure RBAC
  webhook need not answer) until every one is allowed.

Each is a Pulumi dynamic resource (``Readiness``) whose create polls until the probe succeeds
or a deadline passes (then `up` fails with the last answer); later `up`s leave it alone. The
probes authenticate as the azure-native provider does (components/azure/login.py).
"""

from __future__ import annotations

import base64
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi import dynamic

from components.azure.login import provider_login

GRAPH = "https://graph.microsoft.com"
AKS_SERVER_APP = "6dae42f8-4368-4678-94ff-3960e28e3630"  # the Entra app of every AKS API server
DEFAULT_TIMEOUT_SECONDS = 900
CONSECUTIVE = 3  # reads through different replicas must all agree before we go on
TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
# Graph: 404 until Entra knows the new identity; 401/403 are a missing permission, fatal.
GRAPH_RETRY = TRANSIENT | {404}
# The API server: 401/403 until the role assignment reaches it (a review that says "not
# allowed" counts as 403).
CLUSTER_RETRY = TRANSIENT | {401, 403}
# Why a fatal status happened, by probe: told with the failure.
GRAPH_PERMISSION = (
    "the deployer may not read service principals in Microsoft Graph: give a service principal "
    "the application permission Application.Read.All, or use a person's `az login` (docs/azure.md)"
)


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
    retry: Collection[int] = TRANSIENT,
    hint: str = "",
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
        if last.status and last.status not in retry:
            raise NotReadyError(
                f"HTTP {last.status}: {last.detail}" + (f" ({hint})" if hint else "")
            )
        if clock() + pause > deadline:
            raise NotReadyError(
                f"still not ready after {timeout:.0f} s: HTTP {last.status} {last.detail}"
            )
        sleep(random.uniform(pause / 2, pause))
        pause = min(pause * 2, 30.0)


def http_probe(
    method: str, url: str, scope: str, bodies: Sequence[Any] = (), ca_data: str = ""
) -> Callable[[], Answer]:
    """A probe that calls ``url`` (once, or once per body) with a bearer token for ``scope``;
    ok on 2xx, and for SelfSubjectAccessReviews only when every review says allowed."""
    import requests  # noqa: PLC0415 - only an `up` against Azure needs it

    credential = provider_login(os.environ).credential()
    verify: str | bool = True
    if ca_data:
        handle = tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False)  # noqa: SIM115
        handle.write(base64.b64decode(ca_data))
        handle.close()
        verify = handle.name

    def call(body: Any) -> Answer:
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
            what = json.dumps(body["spec"]["resourceAttributes"], sort_keys=True)
            return Answer(403 if not allowed else response.status_code, allowed, f"{what}: {text}")
        return Answer(response.status_code, True, text)

    def probe() -> Answer:
        for body in bodies or [None]:
            answer = call(body)
            if not answer.ok:
                return answer
        return answer

    return probe


class _ReadinessProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        probe = http_probe(
            props["method"], props["url"], props["scope"], props.get("bodies") or (), props["ca"]
        )
        attempts = poll(
            probe,
            float(props.get("timeout", DEFAULT_TIMEOUT_SECONDS)),
            retry=frozenset(props["retry"]),
            hint=props.get("hint", ""),
        )
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
        retry: Collection[int],
        hint: str = "",
        bodies: Sequence[Mapping[str, Any]] = (),
        ca: pulumi.Input[str] = "",
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "method": method,
            "url": url,
            "scope": scope,
            "retry": sorted(retry),
            "hint": hint,
            "bodies": [dict(b) for b in bodies],
            "ca": ca,
            "timeout": timeout,
            "attempts": None,
        }
        super().__init__(_ReadinessProvider(), name, props, opts)


def principal_known(
    name: str, principal_id: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> Readiness:
    """Until Entra (Microsoft Graph) knows the identity's service principal."""
    return Readiness(
        name,
        method="GET",
        url=pulumi.Output.concat(GRAPH, "/v1.0/servicePrincipals/", principal_id),
        scope=f"{GRAPH}/.default",
        retry=GRAPH_RETRY,
        hint=GRAPH_PERMISSION,
        opts=opts,
    )


@dataclass(frozen=True)
class ClusterAction:
    """One thing the program does on the cluster: a verb on a resource (in a namespace)."""

    verb: str
    resource: str
    group: str = ""
    namespace: str = ""

    def review(self) -> dict[str, Any]:
        attributes = {"verb": self.verb, "group": self.group, "resource": self.resource}
        if self.namespace:
            attributes["namespace"] = self.namespace
        return {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }


def cluster_access_effective(
    name: str,
    kubeconfig: pulumi.Input[str],
    actions: Sequence[ClusterAction],
    opts: pulumi.ResourceOptions,
) -> Readiness:
    """Until the API server lets the deployer do each of ``actions`` (its role is in force)."""
    config = pulumi.Output.from_input(kubeconfig).apply(json.loads)
    cluster = config.apply(lambda c: c["clusters"][0]["cluster"])
    return Readiness(
        name,
        method="POST",
        url=cluster.apply(
            lambda c: f"{c['server']}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        ),
        scope=f"{AKS_SERVER_APP}/.default",
        retry=CLUSTER_RETRY,
        bodies=[a.review() for a in actions],
        ca=cluster.apply(lambda c: c.get("certificate-authority-data", "")),
        opts=opts,
    )
