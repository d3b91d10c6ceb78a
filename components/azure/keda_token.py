"""The AKS KEDA add-on's operator must run with a workload-identity token, or it cannot read the
queue length and the consumer never scales up from zero.

The workload-identity webhook adds the token volume only to pods created while it is running;
on a new cluster both add-ons start together, so the operator's pods can come up without it
("error reading service account token"). Microsoft's KEDA workload-identity tutorial restarts
`kube-system/keda-operator` once the identity is set up. This check does the equivalent without
touching the add-on's Deployment (which AKS reconciles back): it deletes only operator pods that
lack the token, lets the ReplicaSet recreate them (now mutated by the webhook), and waits until
every operator pod has the token and is ready. `make e2e` checks the same on a live cluster.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import yaml
from pulumi import dynamic

from components.azure.login import provider_login
from components.azure.readiness import AKS_SERVER_APP

NAMESPACE = "kube-system"
DEPLOYMENT = "keda-operator"
TOKEN_AUDIENCE = "api://AzureADTokenExchange"
TIMEOUT_SECONDS = 600

Get = Callable[[str], dict[str, Any]]
Delete = Callable[[str], None]


def has_token(pod: Mapping[str, Any]) -> bool:
    """Whether the webhook projected a workload-identity token into the pod."""
    for volume in pod.get("spec", {}).get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (source.get("serviceAccountToken") or {}).get("audience") == TOKEN_AUDIENCE:
                return True
    return False


def is_ready(pod: Mapping[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def operator_pods(get: Get) -> list[dict[str, Any]]:
    """The operator's pods, found through the Deployment's own selector (no guessed labels)."""
    deployment = get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}")
    labels = deployment["spec"]["selector"]["matchLabels"]
    selector = urllib.parse.quote(",".join(f"{k}={v}" for k, v in sorted(labels.items())))
    pods = get(f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={selector}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def ensure_operator_token(
    get: Get,
    delete: Delete,
    timeout: float = TIMEOUT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Delete operator pods without the token, then wait until every operator pod has it and
    is ready. Returns the names of the pods it deleted."""
    deleted = [p["metadata"]["name"] for p in operator_pods(get) if not has_token(p)]
    for name in deleted:
        delete(f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
    deadline = clock() + timeout
    while True:
        pods = operator_pods(get)
        if pods and all(has_token(p) and is_ready(p) for p in pods):
            return deleted
        if clock() > deadline:
            state = [(p["metadata"]["name"], has_token(p), is_ready(p)) for p in pods]
            raise RuntimeError(
                f"{NAMESPACE}/{DEPLOYMENT} pods still lack a workload-identity token or are not "
                f"ready after {timeout:.0f} s (name, token, ready): {state}"
            )
        sleep(5)


def kubernetes_client(kubeconfig: str) -> tuple[Get, Delete]:
    """GET and DELETE against the cluster of a kubeconfig, as the deployer: the admin client
    certificate (local accounts) or an Entra token for the AKS server app (kubelogin users)."""
    import requests  # noqa: PLC0415 - only an `up` against Azure needs it

    config = yaml.safe_load(kubeconfig)
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]

    def written(data: str, suffix: str) -> str:
        handle = tempfile.NamedTemporaryFile("wb", suffix=suffix, delete=False)  # noqa: SIM115
        handle.write(base64.b64decode(data))
        handle.close()
        return handle.name

    session = requests.Session()
    session.verify = written(cluster["certificate-authority-data"], ".crt")
    if "client-certificate-data" in user:
        session.cert = (
            written(user["client-certificate-data"], ".crt"),
            written(user["client-key-data"], ".key"),
        )
        token = None
    else:
        credential = provider_login(os.environ).credential()
        token = lambda: credential.get_token(f"{AKS_SERVER_APP}/.default").token  # noqa: E731

    def call(method: str, path: str) -> Any:
        headers = {"Authorization": f"Bearer {token()}"} if token else {}
        response = session.request(method, cluster["server"] + path, headers=headers, timeout=30)
        if response.status_code == 404 and method == "DELETE":
            return None  # already gone
        response.raise_for_status()
        return response.json()

    return (lambda path: call("GET", path)), (lambda path: call("DELETE", path))


class _OperatorTokenProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        get, delete = kubernetes_client(props["kubeconfig"])
        deleted = ensure_operator_token(get, delete)
        return dynamic.CreateResult(
            id_=f"{NAMESPACE}/{DEPLOYMENT}", outs={**props, "restarted": deleted}
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        # A new KEDA identity (client id) is a new reason to check; nothing else is.
        changed = olds.get("identity") != news.get("identity")
        return dynamic.DiffResult(changes=changed, replaces=["identity"] if changed else [])


class KedaOperatorToken(dynamic.Resource):
    """Done once every KEDA operator pod runs with the workload-identity token."""

    restarted: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        *,
        kubeconfig: pulumi.Input[str],
        identity: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"kubeconfig": kubeconfig, "identity": identity, "restarted": None}
        super().__init__(_OperatorTokenProvider(), name, props, opts)
