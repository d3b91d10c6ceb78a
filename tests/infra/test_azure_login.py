"""Every caller of Azure and AKS outside the provider logs in the way the provider does, renews
an OIDC login from GitHub each time, and can be re-pointed at `destroy` time.

The provider's order and variables: pulumi-azure-native auth_azidentity.go. kubelogin's flags and
environment overrides: Azure/kubelogin pkg/internal/token/options.go and provider.go.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure import identity

from components.azure import cluster as cluster_module
from components.azure.login import (
    LoginError,
    kubelogin_env,
    provider_login,
    token_principal_type,
)
from tests.http_replies import reply
from tools import login as login_tool

REPO = Path(__file__).resolve().parents[2]
IDS = {"ARM_CLIENT_ID": "c", "ARM_TENANT_ID": "t"}
GITHUB = {
    "ACTIONS_ID_TOKEN_REQUEST_URL": "https://gh/token?x=1",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "r",
}
CI = {"ARM_USE_OIDC": "true", **IDS, **GITHUB}


@pytest.mark.parametrize(
    ("env", "args", "credential"),
    [
        ({}, ["--login", "azurecli"], identity.AzureCliCredential),
        # CI: the provider asks GitHub for a fresh ID token at every exchange; so do kubelogin
        # (workloadidentity with the ACTIONS_ variables) and the probes. Not the CLI session,
        # which cannot renew after an hour (Azure/azure-cli#28708).
        (
            CI,
            ["--login", "workloadidentity", "--client-id", "c", "--tenant-id", "t"],
            identity.ClientAssertionCredential,
        ),
        (
            {**IDS, "ARM_USE_OIDC": "true", "ARM_OIDC_TOKEN_FILE_PATH": "/t"},
            [
                "--login",
                "workloadidentity",
                "--client-id",
                "c",
                "--tenant-id",
                "t",
                "--federated-token-file",
                "/t",
            ],
            identity.WorkloadIdentityCredential,
        ),
        (
            {
                **IDS,
                "ARM_CLIENT_SECRET": "s",
                **CI,
            },  # a secret comes before OIDC, as in the provider
            ["--login", "spn", "--use-azurerm-env-vars"],
            identity.ClientSecretCredential,
        ),
        ({"ARM_USE_MSI": "true"}, ["--login", "msi"], identity.ManagedIdentityCredential),
        (
            {"ARM_USE_MSI": "true", "ARM_CLIENT_ID": "c"},
            ["--login", "msi", "--client-id", "c"],
            identity.ManagedIdentityCredential,
        ),
    ],
)
def test_everything_logs_in_the_way_the_provider_is_authenticated(
    env: dict[str, str], args: list[str], credential: type
) -> None:
    login = provider_login(env)
    assert login.kubelogin_args() == args
    assert isinstance(login.credential(), credential)
    source = yaml.safe_dump(
        {"users": [{"name": "u", "user": {"token": "x"}}], "clusters": [], "contexts": []}
    )
    config = json.loads(cluster_module.kubelogin_kubeconfig(source, args))
    exec_ = config["users"][0]["user"]["exec"]
    assert exec_["args"] == ["get-token", *args, "--server-id", cluster_module.AKS_AAD_SERVER_ID]
    assert "--disable-environment-override" not in exec_["args"]  # overridable (issue 24, 11)
    assert "secret" not in json.dumps(config).lower()  # a secret never lands in the kubeconfig


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ARM_USE_OIDC": "true", **IDS, "ARM_OIDC_TOKEN": "jwt"}, "ARM_OIDC_TOKEN is a single"),
        ({"ARM_USE_OIDC": "true", **IDS}, "there is no OIDC token"),
    ],
)
def test_an_oidc_login_that_cannot_be_renewed_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(LoginError, match=message):
        provider_login(env)


class GitHubTokens:
    """GitHub's ID token endpoint on loopback: a new token per request, requests recorded."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        tokens = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                tokens.requests.append((self.path, self.headers.get("Authorization")))
                reply(self, 200, {"value": f"id-token-{len(tokens.requests)}"})

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token?api-version=2.0"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_every_exchange_asks_github_for_a_fresh_id_token() -> None:
    github = GitHubTokens()
    login = provider_login(
        {**CI, "ACTIONS_ID_TOKEN_REQUEST_URL": github.url, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "req"}
    )
    assert [login.github_id_token(), login.github_id_token()] == ["id-token-1", "id-token-2"]
    for path, auth in github.requests:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
        assert query == {"api-version": "2.0", "audience": "api://AzureADTokenExchange"}
        assert auth == "Bearer req"


def test_destroy_logs_in_from_its_own_environment_not_the_stored_one() -> None:
    """The kubeconfig in state names the login of the last `up` (say a laptop's azurecli);
    `make destroy` in CI sets kubelogin's own overrides from the provider's variables."""
    ci = login_tool.command_env(CI)
    assert ci["AAD_LOGIN_METHOD"] == "workloadidentity"
    assert (ci["AZURE_CLIENT_ID"], ci["AZURE_TENANT_ID"]) == ("c", "t")
    laptop = login_tool.command_env({})
    assert laptop["AAD_LOGIN_METHOD"] == "azurecli"
    # An explicit choice wins.
    assert login_tool.command_env({**CI, "AAD_LOGIN_METHOD": "azurecli"})["AAD_LOGIN_METHOD"] == (
        "azurecli"
    )
    secret = kubelogin_env(provider_login({**IDS, "ARM_CLIENT_SECRET": "s"}))
    assert secret == {
        "AAD_LOGIN_METHOD": "spn",
        "AZURE_CLIENT_ID": "c",
        "AZURE_TENANT_ID": "t",
        "AZURE_CLIENT_SECRET": "s",
    }
    makefile = (REPO / "Makefile").read_text()
    (recipe,) = [line for line in makefile.splitlines() if "pulumi destroy" in line]
    assert "-m tools.login -- pulumi destroy" in recipe


def _token(claims: dict[str, Any]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"h.{payload}.s"


@pytest.mark.parametrize(
    ("claims", "kind"),
    [
        ({"oid": "o", "scp": "user_impersonation", "idtyp": "user"}, "User"),  # `az login`
        ({"oid": "o", "idtyp": "app", "roles": []}, "ServicePrincipal"),  # OIDC app, identity
        ({"oid": "o", "appid": "a"}, "ServicePrincipal"),  # app-only v1 token without idtyp
    ],
)
def test_the_deployers_principal_type_comes_from_its_token(
    claims: dict[str, Any], kind: str
) -> None:
    assert token_principal_type(_token(claims)) == kind
