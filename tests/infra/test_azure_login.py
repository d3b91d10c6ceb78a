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
        # azure-native 3.x reads GitHub's request variables only under their ACTIONS_ names.
        (
            {
                "ARM_USE_OIDC": "true",
                **IDS,
                "ARM_OIDC_REQUEST_URL": "u",
                "ARM_OIDC_REQUEST_TOKEN": "r",
            },
            r"no OIDC token \(ARM_OIDC_REQUEST_URL and ARM_OIDC_REQUEST_TOKEN: not read by",
        ),
    ],
)
def test_an_oidc_login_that_cannot_be_renewed_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(LoginError, match=message) as refused:
        provider_login(env)
    # The way out is the one that renews: the provider reads ARM_OIDC_TOKEN_FILE_PATH once
    # (auth_azidentity.go newOidcCredential), so a refreshed file is no remedy.
    advice = str(refused.value)
    assert "keeps fresh" not in advice
    assert "ACTIONS_ID_TOKEN_REQUEST_URL" in advice
    assert "ARM_OIDC_TOKEN_FILE_PATH is read once by the provider" in advice


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
        # Set empty: kubelogin would take a certificate from the environment before the secret.
        "AZURE_CLIENT_CERTIFICATE_PATH": "",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD": "",
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


def kubelogin_resolves(args: list[str], env: dict[str, str]) -> dict[str, str]:
    """What `kubelogin get-token` logs in with, and which of its options that login uses: its
    flags, then UpdateFromEnv (Azure/kubelogin pkg/internal/token/options.go, variable names in
    pkg/internal/env/variables.go; a variable set empty still overrides, os.LookupEnv)."""
    flags = {
        "--login": "login",
        "--client-id": "client",
        "--tenant-id": "tenant",
        "--federated-token-file": "token_file",
        "--server-id": "server",
    }
    options = dict.fromkeys(
        ("client", "tenant", "secret", "cert", "cert_password", "token_file", "server"), ""
    )
    options["login"] = "devicecode"
    azurerm = "--use-azurerm-env-vars" in args
    words = iter(args)
    for word in words:
        if word in flags:
            options[flags[word]] = next(words)

    def take(option: str, variable: str) -> None:
        if variable in env:
            options[option] = env[variable]

    prefix = "ARM_" if azurerm else "AZURE_"
    if not azurerm:
        take("client", "AAD_SERVICE_PRINCIPAL_CLIENT_ID")
        take("secret", "AAD_SERVICE_PRINCIPAL_CLIENT_SECRET")
        take("cert", "AAD_SERVICE_PRINCIPAL_CLIENT_CERTIFICATE")
        take("cert_password", "AAD_SERVICE_PRINCIPAL_CLIENT_CERTIFICATE_PASSWORD")
    take("client", f"{prefix}CLIENT_ID")
    take("secret", f"{prefix}CLIENT_SECRET")
    take("cert", f"{prefix}CLIENT_CERTIFICATE_PATH")
    take("cert_password", f"{prefix}CLIENT_CERTIFICATE_PASSWORD")
    take("tenant", f"{prefix}TENANT_ID")
    take("login", "AAD_LOGIN_METHOD")
    if options["login"] == "workloadidentity":
        take("client", "AZURE_CLIENT_ID")
        take("token_file", "AZURE_FEDERATED_TOKEN_FILE")
    used = {
        "azurecli": ("tenant",),
        "msi": ("client",),
        # The token file counts: kubelogin v0.1.x reads it before asking GitHub.
        "workloadidentity": ("client", "tenant", "token_file"),
        "spn": ("client", "tenant", "secret", "cert", "cert_password"),
    }
    return {"login": options["login"], "server": options["server"]} | {
        k: options[k] for k in used[options["login"]]
    }


def logins(suffix: str) -> dict[str, dict[str, str]]:
    """The environments an Azure stack is run from, each naming its own identities."""
    ids = {"ARM_CLIENT_ID": f"client{suffix}", "ARM_TENANT_ID": f"tenant{suffix}"}
    return {
        "az login": {},
        "GitHub OIDC": {**CI, **ids},
        "token file": {**ids, "ARM_USE_OIDC": "true", "ARM_OIDC_TOKEN_FILE_PATH": f"/t{suffix}"},
        "secret": {**ids, "ARM_CLIENT_SECRET": f"s{suffix}"},
        "certificate": {
            **ids,
            "ARM_CLIENT_CERTIFICATE_PATH": f"/c{suffix}.pfx",
            "ARM_CLIENT_CERTIFICATE_PASSWORD": f"p{suffix}",
        },
        "user-assigned identity": {"ARM_USE_MSI": "true", "ARM_CLIENT_ID": f"client{suffix}"},
        "system-assigned identity": {"ARM_USE_MSI": "true"},
    }


STORED, HERE = logins("-old"), logins("")


@pytest.mark.parametrize("stored", STORED)
@pytest.mark.parametrize("here", HERE)
def test_no_stale_flag_in_a_stored_kubeconfig_wins(stored: str, here: str) -> None:
    """`destroy` runs the kubeconfig the last `up` stored, somewhere else: through tools.login
    kubelogin must log in exactly as an `up` from here would have written it."""
    source = yaml.safe_dump(
        {"users": [{"name": "u", "user": {"token": "x"}}], "clusters": [], "contexts": []}
    )

    def exec_args(env: dict[str, str]) -> list[str]:
        login = provider_login(env).kubelogin_args()
        config = json.loads(cluster_module.kubelogin_kubeconfig(source, login))
        return config["users"][0]["user"]["exec"]["args"]

    env = HERE[here]
    fresh = kubelogin_resolves(exec_args(env), env)
    assert kubelogin_resolves(exec_args(STORED[stored]), login_tool.command_env(env)) == fresh
