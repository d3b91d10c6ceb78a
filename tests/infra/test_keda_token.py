"""The KEDA add-on's operator ends up with its workload-identity token: pods without it are
deleted (never the add-on's Deployment), and the check waits for their replacements.

The real client (`kubernetes_client`) talks to a fake API server on loopback that serves the
Deployment and its pods as AKS would, and recreates a deleted pod the way its ReplicaSet would,
now mutated by the webhook.
"""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from components.azure import keda_token
from components.azure.keda_token import ensure_operator_token, has_token
from stacks.offline import StackRun
from tests.http_replies import reply

SELECTOR = {"app": "keda-operator"}
APPS = "/apis/apps/v1/namespaces/kube-system"
CORE = "/api/v1/namespaces/kube-system"
TOKEN_VOLUME = {
    "name": "azure-identity-token",
    "projected": {
        "sources": [
            {
                "serviceAccountToken": {
                    "audience": "api://AzureADTokenExchange",
                    "expirationSeconds": 3600,
                    "path": "azure-identity-token",
                }
            }
        ]
    },
}


def pod(name: str, *, token: bool, ready: bool = True) -> dict[str, Any]:
    volumes = [{"name": "kube-api-access", "projected": {"sources": [{"configMap": {}}]}}]
    return {
        "metadata": {"name": name, "labels": SELECTOR},
        "spec": {"volumes": [*volumes, *([TOKEN_VOLUME] if token else [])]},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


class FakeApiServer:
    """GET the keda-operator Deployment and its pods; DELETE a pod and the ReplicaSet brings a
    new one with the token (not ready for one listing, then ready)."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods
        self.calls: list[tuple[str, str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.calls.append(("GET", self.path, self.headers.get("Authorization")))
                if self.path == "/apis/apps/v1/namespaces/kube-system/deployments/keda-operator":
                    reply(self, 200, {"spec": {"selector": {"matchLabels": SELECTOR}}})
                elif (
                    self.path
                    == "/api/v1/namespaces/kube-system/pods?labelSelector=app%3Dkeda-operator"
                ):
                    reply(self, 200, {"items": server.pods})
                    for p in server.pods:  # a new pod becomes ready after one listing
                        p["status"]["conditions"][0]["status"] = "True"
                else:
                    reply(self, 404, {})

            def do_DELETE(self) -> None:
                server.calls.append(("DELETE", self.path, self.headers.get("Authorization")))
                name = self.path.rsplit("/", 1)[-1]
                server.pods = [p for p in server.pods if p["metadata"]["name"] != name]
                server.pods.append(pod(f"{name}-new", token=True, ready=False))
                reply(self, 200, {})

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def kubeconfig(self, user: dict[str, Any]) -> str:
        ca = base64.b64encode(b"not a real CA").decode()
        cluster = {"server": self.url, "certificate-authority-data": ca}
        return yaml.safe_dump(
            {
                "clusters": [{"name": "aks", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
            }
        )


def client(server: FakeApiServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    class Credential:
        def get_token(self, scope: str) -> Any:
            assert scope == "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
            return type("T", (), {"token": "entra-token"})()

    login = type("Login", (), {"credential": lambda self: Credential()})()
    monkeypatch.setattr(keda_token, "provider_login", lambda env: login)
    exec_user = {"exec": {"command": "kubelogin", "args": ["get-token"]}}
    return keda_token.kubernetes_client(server.kubeconfig(exec_user))


def test_an_operator_pod_without_the_token_is_replaced_and_awaited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeApiServer([pod("keda-operator-1", token=False)])
    get, delete = client(server, monkeypatch)
    deleted = ensure_operator_token(get, delete, sleep=lambda _: None)
    assert deleted == ["keda-operator-1"]
    assert [p["metadata"]["name"] for p in server.pods] == ["keda-operator-1-new"]
    assert (
        "DELETE",
        "/api/v1/namespaces/kube-system/pods/keda-operator-1",
        "Bearer entra-token",
    ) in (server.calls)
    # The add-on's Deployment is only read, never changed (AKS would reconcile it back).
    assert {m for m, path, _ in server.calls if "deployments" in path} == {"GET"}


def test_pods_that_have_the_token_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeApiServer([pod("keda-operator-1", token=True), pod("keda-operator-2", token=True)])
    get, delete = client(server, monkeypatch)
    assert ensure_operator_token(get, delete, sleep=lambda _: None) == []
    assert [m for m, _, _ in server.calls if m == "DELETE"] == []


def test_the_check_fails_when_the_token_never_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeApiServer([pod("keda-operator-1", token=True, ready=False)])
    server.pods[0]["spec"]["volumes"] = []
    get, _ = client(server, monkeypatch)
    ticks = iter(range(0, 10_000, 100))
    with pytest.raises(RuntimeError, match="still lack a workload-identity token"):
        ensure_operator_token(
            get, lambda _: None, timeout=300, sleep=lambda _: None, clock=lambda: next(ticks)
        )


def test_the_token_is_recognised_by_its_audience() -> None:
    assert has_token(pod("a", token=True))
    assert not has_token(pod("b", token=False))


def test_the_operator_check_runs_after_the_identity_and_before_scaling(dev_run: StackRun) -> None:
    check = dev_run.one("pulumi-python:dynamic:Resource", "keda-operator-token")
    keda = next(
        r
        for r in dev_run.of_type("azure-native:managedidentity:UserAssignedIdentity")
        if r.name.startswith("keda")
    )
    assert check.inputs["identity"] == keda.outputs["clientId"]
    assert check.parent.endswith("edw:azure:WorkloadIdentity::keda-identity")
    scaled = dev_run.one("kubernetes:keda.sh/v1alpha1:ScaledObject")
    assert dev_run.depends_on(scaled, check)
    assert dev_run.depends_on(check, dev_run.one("pulumi:providers:kubernetes"))
