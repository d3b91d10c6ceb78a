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
from azure import identity

from components.azure import readiness
from components.azure.readiness import Answer, NotReadyError, poll
from stacks.offline import RecordedResource, StackRun, run_stack
from tests.http_replies import reply

DYNAMIC = "pulumi-python:dynamic:Resource"
HARDENED = {
    "disableLocalAccounts": "true",
    "adminGroupObjectIds": '["11111111-2222-4333-8444-555555555555"]',
}


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


NOT_YET, OK = Answer(404, False, "RoleDefinitionDoesNotExist"), Answer(200, True, "{}")


def test_poll_waits_through_not_found_until_three_reads_agree() -> None:
    clock = Clock()
    probe = scripted(NOT_YET, NOT_YET, OK, NOT_YET, OK, OK, OK)
    assert poll(probe, 900, sleep=clock.sleep, clock=lambda: clock.now) == 7
    assert len(clock.sleeps) == 6


def test_poll_retries_a_failed_connection() -> None:
    clock = Clock()
    probe = scripted(ConnectionError("reset"), OK, OK, OK)
    assert poll(probe, 900, sleep=clock.sleep, clock=lambda: clock.now) == 4


def test_poll_gives_up_at_the_deadline_with_the_last_answer() -> None:
    clock = Clock()
    with pytest.raises(NotReadyError, match="still not ready after 60 s: HTTP 403 forbidden"):
        poll(
            lambda: Answer(403, False, "forbidden"), 60, sleep=clock.sleep, clock=lambda: clock.now
        )
    assert clock.now <= 60
    assert max(clock.sleeps) <= 30


def test_poll_fails_at_once_on_an_answer_waiting_cannot_change() -> None:
    with pytest.raises(NotReadyError, match="HTTP 400: bad request"):
        poll(lambda: Answer(400, False, "bad request"), 900, sleep=lambda _: None)


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
    monkeypatch.setattr(readiness, "deployer_credential", lambda env=None: fake)
    return fake


def test_the_http_probe_reads_as_the_deployer_until_found(credential: FakeCredential) -> None:
    server = Server([(404, {"error": "not yet"}), (200, {"id": "r"}), (200, {}), (200, {})])
    probe = readiness.http_probe("GET", f"{server.url}/role?x=1", "https://arm/.default")
    assert poll(probe, 60, sleep=lambda _: None) == 4
    assert server.requests[0] == {
        "method": "GET",
        "path": "/role?x=1",
        "auth": "Bearer tkn",
        "body": None,
    }
    assert set(credential.scopes) == {"https://arm/.default"}


def test_the_access_review_waits_until_the_api_server_allows_everything(
    credential: FakeCredential,
) -> None:
    denied = {"status": {"allowed": False}}
    allowed = {"status": {"allowed": True}}
    server = Server([(403, {}), (201, denied), (201, allowed), (201, allowed), (201, allowed)])
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"}
    probe = readiness.http_probe("POST", f"{server.url}/review", "aks/.default", body)
    assert poll(probe, 60, sleep=lambda _: None) == 5
    assert server.requests[-1]["body"] == body


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({}, identity.AzureCliCredential),
        ({"ARM_USE_OIDC": "true", "ARM_CLIENT_ID": "c"}, identity.AzureCliCredential),
        (
            {"ARM_CLIENT_ID": "c", "ARM_TENANT_ID": "t", "ARM_CLIENT_SECRET": "s"},
            identity.ClientSecretCredential,
        ),
        ({"ARM_USE_MSI": "true"}, identity.ManagedIdentityCredential),
        (
            {"ARM_CLIENT_ID": "c", "ARM_TENANT_ID": "t", "ARM_OIDC_TOKEN_FILE_PATH": "/t"},
            identity.WorkloadIdentityCredential,
        ),
    ],
)
def test_the_probes_authenticate_as_the_provider_does(env: dict[str, str], kind: type) -> None:
    assert isinstance(readiness.deployer_credential(env), kind)


def checks(run: StackRun) -> dict[str, RecordedResource]:
    return {r.name: r for r in run.of_type(DYNAMIC)}


def test_the_custom_role_is_assigned_only_once_it_reads_back(dev_run: StackRun) -> None:
    check = checks(dev_run)["queues-message-updater-visible"]
    definition = dev_run.one("azure-native:authorization:RoleDefinition")
    assert check.inputs["url"] == (
        f"https://management.azure.com{definition.id}?api-version=2022-04-01"
    )
    assert check.inputs["method"] == "GET"
    updater = dev_run.one(
        "azure-native:authorization:RoleAssignment", "consumer-identity-queue-updater"
    )
    assert dev_run.depends_on(updater, check)


def test_the_cosmos_grant_waits_for_entra_to_know_the_identity(dev_run: StackRun) -> None:
    check = checks(dev_run)["consumer-identity-principal-known"]
    principal = dev_run.one(
        "azure-native:managedidentity:UserAssignedIdentity", "consumer-identity-identity"
    ).outputs["principalId"]
    assert check.inputs["url"] == f"https://graph.microsoft.com/v1.0/servicePrincipals/{principal}"
    (grant,) = dev_run.of_type("azure-native:cosmosdb:TableResourceTableRoleAssignment")
    assert dev_run.depends_on(grant, check)
    assert "keda-identity-principal-known" not in checks(dev_run)  # KEDA has no Cosmos grant


def test_an_entra_only_cluster_is_used_only_once_its_admin_is_in_force() -> None:
    run = run_stack("dev", HARDENED)
    check = checks(run)["cluster-admin-effective"]
    aks = run.one("azure-native:containerservice:ManagedCluster")
    url = check.inputs["url"]
    url = url.get("value", url) if isinstance(url, dict) else url
    assert (
        url
        == f"https://{aks.outputs['fqdn']}:443/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    )
    assert check.inputs["body"]["spec"]["resourceAttributes"] == {
        "verb": "*",
        "group": "*",
        "resource": "*",
    }
    assert check.inputs["scope"] == "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
    admin = run.one("azure-native:authorization:RoleAssignment", "cluster-deployer-admin")
    assert run.depends_on(check, admin)
    assert run.depends_on(run.one("pulumi:providers:kubernetes"), check)


def test_a_lab_cluster_with_local_accounts_needs_no_admin_wait(dev_run: StackRun) -> None:
    assert "cluster-admin-effective" not in checks(dev_run)
