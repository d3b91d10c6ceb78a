"""The Azure stack waits for late propagation by polling the real thing (no fixed sleeps).

The poll loop on scripted answers, the HTTP probe against a server on loopback, the credential
choice, and the wiring: what waits for which check in both Azure graphs.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from components.azure import readiness
from components.azure.readiness import (
    CLUSTER_RETRY,
    GRAPH_PERMISSION,
    GRAPH_RETRY,
    Answer,
    NotReadyError,
    poll,
)
from stacks.offline import RecordedResource, StackRun, run_stack
from tests.http_replies import reply

DYNAMIC = "pulumi-python:dynamic:Resource"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(*answers: Answer | Exception) -> Any:
    queue = list(answers)

    def probe() -> Answer:
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return probe


NOT_YET, OK = Answer(404, False, "Request_ResourceNotFound"), Answer(200, True, "{}")


def test_poll_waits_through_not_found_until_three_reads_agree() -> None:
    clock = Clock()
    probe = scripted(NOT_YET, NOT_YET, OK, NOT_YET, OK, OK, OK)
    assert poll(probe, 900, retry=GRAPH_RETRY, sleep=clock.sleep, clock=lambda: clock.now) == 7
    assert len(clock.sleeps) == 6


def test_poll_retries_a_failed_connection() -> None:
    clock = Clock()
    probe = scripted(ConnectionError("reset"), OK, OK, OK)
    assert poll(probe, 900, sleep=clock.sleep, clock=lambda: clock.now) == 4


def test_poll_gives_up_at_the_deadline_with_the_last_answer() -> None:
    clock = Clock()
    with pytest.raises(NotReadyError, match="still not ready after 60 s: HTTP 403 forbidden"):
        poll(
            lambda: Answer(403, False, "forbidden"),
            60,
            retry=CLUSTER_RETRY,
            sleep=clock.sleep,
            clock=lambda: clock.now,
        )
    assert clock.now <= 60
    assert max(clock.sleeps) <= 30


def test_poll_fails_at_once_on_an_answer_waiting_cannot_change() -> None:
    with pytest.raises(NotReadyError, match="HTTP 400: bad request"):
        poll(lambda: Answer(400, False, "bad request"), 900, sleep=lambda _: None)


def test_a_graph_refusal_fails_at_once_and_names_the_permission() -> None:
    """Graph's 403 is a missing permission, not propagation: no 15 minutes of retries."""
    calls: list[int] = []

    def probe() -> Answer:
        calls.append(1)
        return Answer(403, False, "Authorization_RequestDenied")

    with pytest.raises(NotReadyError, match=r"Application\.Read\.All"):
        poll(probe, 900, retry=GRAPH_RETRY, hint=GRAPH_PERMISSION, sleep=lambda _: None)
    assert calls == [1]


class Server:
    """Answers each request with the next scripted (status, body), records what it got."""

    def __init__(self, answers: list[tuple[int, dict[str, Any]]]) -> None:
        self.answers = answers
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "auth": self.headers.get("Authorization"),
                        "body": json.loads(self.rfile.read(length)) if length else None,
                    }
                )
                reply(self, *server.answers.pop(0))

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


class FakeCredential:
    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, scope: str) -> Any:
        self.scopes.append(scope)
        return type("Token", (), {"token": "tkn"})()


@pytest.fixture
def credential(monkeypatch: pytest.MonkeyPatch) -> FakeCredential:
    fake = FakeCredential()
    login = type("Login", (), {"credential": lambda self: fake})()
    monkeypatch.setattr(readiness, "provider_login", lambda env: login)
    return fake


def test_the_http_probe_reads_as_the_deployer_until_found(credential: FakeCredential) -> None:
    server = Server([(404, {"error": "not yet"}), (200, {"id": "r"}), (200, {}), (200, {})])
    probe = readiness.http_probe("GET", f"{server.url}/role?x=1", "https://arm/.default")
    assert poll(probe, 60, retry=GRAPH_RETRY, sleep=lambda _: None) == 4
    assert server.requests[0] == {
        "method": "GET",
        "path": "/role?x=1",
        "auth": "Bearer tkn",
        "body": None,
    }
    assert set(credential.scopes) == {"https://arm/.default"}


def test_the_access_reviews_wait_until_the_api_server_allows_every_action(
    credential: FakeCredential,
) -> None:
    denied = {"status": {"allowed": False}}
    allowed = {"status": {"allowed": True}}
    reviews = [
        readiness.ClusterAction("create", "namespaces").review(),
        readiness.ClusterAction("delete", "pods", "", "kube-system").review(),
    ]
    # The second action is refused at first: the probe is not ok until both are allowed.
    server = Server(
        [(403, {}), (201, allowed), (201, denied)] + [(201, allowed)] * 6,
    )
    probe = readiness.http_probe("POST", f"{server.url}/review", "aks/.default", reviews)
    assert poll(probe, 60, retry=CLUSTER_RETRY, sleep=lambda _: None) == 5
    assert [r["body"] for r in server.requests[-2:]] == reviews
    assert reviews[1]["spec"]["resourceAttributes"] == {
        "verb": "delete",
        "group": "",
        "resource": "pods",
        "namespace": "kube-system",
    }


def checks(run: StackRun) -> dict[str, RecordedResource]:
    return {r.name: r for r in run.of_type(DYNAMIC)}


def test_the_cosmos_grant_waits_for_entra_to_know_the_identity(dev_run: StackRun) -> None:
    check = checks(dev_run)["consumer-identity-principal-known"]
    principal = dev_run.one(
        "azure-native:managedidentity:UserAssignedIdentity", "consumer-identity-identity"
    ).outputs["principalId"]
    assert check.inputs["url"] == f"https://graph.microsoft.com/v1.0/servicePrincipals/{principal}"
    (grant,) = dev_run.of_type("azure-native:cosmosdb:TableResourceTableRoleAssignment")
    assert dev_run.depends_on(grant, check)
    assert "keda-identity-principal-known" not in checks(dev_run)  # KEDA has no Cosmos grant
    assert check.inputs["retry"] == sorted(GRAPH_RETRY)
    assert 403 not in check.inputs["retry"]
    assert "Application.Read.All" in check.inputs["hint"]


def test_the_cluster_is_used_only_once_the_deployer_may_do_what_the_program_does(
    dev_run: StackRun,
) -> None:
    check = checks(dev_run)["cluster-access-effective"]
    aks = dev_run.one("azure-native:containerservice:ManagedCluster")
    url = check.inputs["url"]
    url = url.get("value", url) if isinstance(url, dict) else url
    assert (
        url
        == f"https://{aks.outputs['fqdn']}:443/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    )
    asked = [b["spec"]["resourceAttributes"] for b in check.inputs["bodies"]]
    # Concrete actions only: the AKS Azure RBAC webhook need not answer for "*".
    assert all("*" not in json.dumps(a) for a in asked)
    assert {"verb": "create", "group": "", "resource": "namespaces"} in asked
    assert {"verb": "create", "group": "karpenter.sh", "resource": "nodepools"} in asked
    assert {
        "verb": "create",
        "group": "keda.sh",
        "resource": "scaledobjects",
        "namespace": "edw",
    } in asked
    assert {"verb": "delete", "group": "", "resource": "pods", "namespace": "kube-system"} in asked
    assert check.inputs["scope"] == "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
    assert check.inputs["retry"] == sorted(CLUSTER_RETRY)
    admin = dev_run.one(
        "azure-native:authorization:RoleAssignment",
        "cluster-deployer-00000000-0000-4000-8000-0000000000bb",  # the mocks' signed-in identity
    )
    assert dev_run.depends_on(check, admin)
    assert dev_run.depends_on(dev_run.one("pulumi:providers:kubernetes"), check)
    # Same resource as the old "*" check: an existing stack does not wait again.
    assert check.aliases


def test_configured_deployers_are_waited_for_too() -> None:
    deployer = "33333333-2222-4333-8444-555555555555"
    run = run_stack(
        "dev",
        {
            "deployerPrincipals": json.dumps([f"ServicePrincipal:{deployer}"]),
            "offline:directory": json.dumps({deployer: "ServicePrincipal"}),
        },
    )
    grant = run.one("azure-native:authorization:RoleAssignment", f"cluster-deployer-{deployer}")
    assert run.depends_on(checks(run)["cluster-access-effective"], grant)
