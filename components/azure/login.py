"""How the azure-native provider authenticates, read from the same environment, so that every
other caller (the readiness probes, the KEDA token check, kubelogin for the Kubernetes provider)
is the identity the provider is, and renews its token the way the provider does.

The provider's order, pulumi-azure-native provider/pkg/provider/auth_azidentity.go
(newSingleMethodAuthCredential, readAuthConfig): a client certificate (ARM_CLIENT_CERTIFICATE_PATH),
a client secret (ARM_CLIENT_SECRET), OIDC when ARM_USE_OIDC is true (ARM_OIDC_TOKEN, else
ARM_OIDC_TOKEN_FILE_PATH, else a fresh token from GitHub's ACTIONS_ID_TOKEN_REQUEST_URL with
ACTIONS_ID_TOKEN_REQUEST_TOKEN, audience ARM_OIDC_AUDIENCE or api://AzureADTokenExchange), a
managed identity (ARM_USE_MSI), and otherwise the Azure CLI. An OIDC login that asks GitHub for a
new ID token on each exchange outlives the hour after which a CLI session signed in with one
federated token can no longer renew (Azure/azure-cli#28708, AADSTS700024).
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from components.settings import PrincipalType

# kubelogin --login modes (Azure/kubelogin pkg/internal/token/options.go).
Mode = Literal["spn", "workloadidentity", "msi", "azurecli"]
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
GITHUB_TOKEN_TIMEOUT_SECONDS = 30


class LoginError(ValueError):
    """The environment names a login that cannot be renewed or reproduced."""


@dataclass(frozen=True)
class ProviderLogin:
    mode: Mode
    client_id: str = ""
    tenant_id: str = ""
    # spn: which ARM_* secret the provider uses; workloadidentity: a token file, or GitHub's
    # request URL and token (read at each exchange from the environment).
    secret: str = ""
    certificate_path: str = ""
    token_file: str = ""
    github_request_url: str = ""
    github_request_token: str = ""
    audience: str = TOKEN_EXCHANGE_AUDIENCE

    def kubelogin_args(self) -> list[str]:
        """kubelogin get-token's login arguments. The environment can override them at run time
        (kubelogin reads AAD_LOGIN_METHOD, AZURE_CLIENT_ID, AZURE_TENANT_ID after its flags:
        Azure/kubelogin pkg/internal/token/options.go UpdateFromEnv), which is how `destroy` and
        `refresh` log in from somewhere else than the `up` that stored the kubeconfig."""
        if self.mode == "spn":
            # ARM_CLIENT_SECRET / ARM_CLIENT_CERTIFICATE_PATH, read by kubelogin itself.
            return ["--login", "spn", "--use-azurerm-env-vars"]
        if self.mode == "workloadidentity":
            # With ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN set, kubelogin asks GitHub for a fresh
            # token on each exchange (pkg/internal/token/provider.go, kubelogin >= v0.1.0).
            token_file = ["--federated-token-file", self.token_file] if self.token_file else []
            ids = ["--client-id", self.client_id, "--tenant-id", self.tenant_id]
            return ["--login", "workloadidentity", *ids, *token_file]
        if self.mode == "msi":
            return ["--login", "msi", *(["--client-id", self.client_id] if self.client_id else [])]
        return ["--login", "azurecli"]

    def credential(self) -> Any:
        """An azure-identity credential for this login."""
        from azure import identity  # noqa: PLC0415 - only an `up` against Azure needs it

        if self.mode == "spn" and self.certificate_path:
            return identity.CertificateCredential(
                self.tenant_id, self.client_id, self.certificate_path
            )
        if self.mode == "spn":
            return identity.ClientSecretCredential(self.tenant_id, self.client_id, self.secret)
        if self.mode == "workloadidentity" and self.token_file:
            return identity.WorkloadIdentityCredential(
                tenant_id=self.tenant_id, client_id=self.client_id, token_file_path=self.token_file
            )
        if self.mode == "workloadidentity":
            return identity.ClientAssertionCredential(
                self.tenant_id, self.client_id, self.github_id_token
            )
        if self.mode == "msi":
            return identity.ManagedIdentityCredential(client_id=self.client_id or None)
        return identity.AzureCliCredential()

    def github_id_token(self) -> str:
        """A new GitHub Actions ID token for the Entra token exchange (what the provider's
        getOidcTokenExchangeAssertion does): GET the request URL with audience=..., bearer the
        request token, read `value`."""
        parts = urllib.parse.urlsplit(self.github_request_url)
        query = [*urllib.parse.parse_qsl(parts.query), ("audience", self.audience)]
        url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        request = urllib.request.Request(
            url,
            headers={
                "Authorization": f"Bearer {self.github_request_token}",
                "Accept": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=GITHUB_TOKEN_TIMEOUT_SECONDS) as response:
            return str(json.load(response)["value"])


def provider_login(env: Mapping[str, str]) -> ProviderLogin:
    """The provider's login method from its environment (module doc for the order)."""
    client, tenant = env.get("ARM_CLIENT_ID", ""), env.get("ARM_TENANT_ID", "")
    if env.get("ARM_CLIENT_CERTIFICATE_PATH"):
        return ProviderLogin(
            "spn", client, tenant, certificate_path=env["ARM_CLIENT_CERTIFICATE_PATH"]
        )
    if env.get("ARM_CLIENT_SECRET"):
        return ProviderLogin("spn", client, tenant, secret=env["ARM_CLIENT_SECRET"])
    if env.get("ARM_USE_OIDC", "").lower() == "true":
        audience = env.get("ARM_OIDC_AUDIENCE") or TOKEN_EXCHANGE_AUDIENCE
        if env.get("ARM_OIDC_TOKEN"):
            raise LoginError(
                "ARM_OIDC_TOKEN is a single token that expires within the hour and cannot be "
                "handed to kubelogin: use ARM_OIDC_TOKEN_FILE_PATH (a file something keeps "
                "fresh) or, in GitHub Actions, nothing at all (the job's ID token request URL)"
            )
        if env.get("ARM_OIDC_TOKEN_FILE_PATH"):
            return ProviderLogin(
                "workloadidentity",
                client,
                tenant,
                token_file=env["ARM_OIDC_TOKEN_FILE_PATH"],
                audience=audience,
            )
        url = env.get("ACTIONS_ID_TOKEN_REQUEST_URL", "")
        token = env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
        if not (url and token):
            raise LoginError(
                "ARM_USE_OIDC is true but there is no OIDC token: set ARM_OIDC_TOKEN_FILE_PATH, "
                "or run in a GitHub Actions job with `permissions: id-token: write`"
            )
        return ProviderLogin(
            "workloadidentity",
            client,
            tenant,
            github_request_url=url,
            github_request_token=token,
            audience=audience,
        )
    if env.get("ARM_USE_MSI", "").lower() == "true":
        return ProviderLogin("msi", client, tenant)
    return ProviderLogin("azurecli")


def token_principal_type(access_token: str) -> PrincipalType:
    """Whether an Entra access token is a person's or an application's: `idtyp` is "app" in
    app-only tokens ("the most accurate way for an API to determine if a token is an app token
    or an app+user token", Microsoft identity platform optional claims reference), and only
    delegated (user) tokens carry `scp`. Managed identities and federated apps are
    ServicePrincipal."""
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if claims.get("idtyp") == "app" or "scp" not in claims:
        return "ServicePrincipal"
    return "User"


def kubelogin_env(login: ProviderLogin) -> dict[str, str]:
    """Environment that makes kubelogin log in as ``login`` whatever the stored kubeconfig says:
    kubelogin reads these after its flags (Azure/kubelogin pkg/internal/token/options.go,
    UpdateFromEnv: AAD_LOGIN_METHOD, AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET,
    AZURE_CLIENT_CERTIFICATE_PATH, and AZURE_FEDERATED_TOKEN_FILE for workloadidentity)."""
    env = {"AAD_LOGIN_METHOD": login.mode}
    ids = {"AZURE_CLIENT_ID": login.client_id, "AZURE_TENANT_ID": login.tenant_id}
    if login.mode == "spn":
        key = "AZURE_CLIENT_CERTIFICATE_PATH" if login.certificate_path else "AZURE_CLIENT_SECRET"
        env |= {**ids, key: login.certificate_path or login.secret}
    elif login.mode == "workloadidentity":
        env |= ids
        if login.token_file:
            env["AZURE_FEDERATED_TOKEN_FILE"] = login.token_file
    elif login.mode == "msi" and login.client_id:
        env["AZURE_CLIENT_ID"] = login.client_id
    return env
