"""How the azure-native provider authenticates, read from the same environment, so that every
other caller (the readiness probes, the KEDA token check, kubelogin for the Kubernetes provider)
is the identity the provider is, and renews its token the way the provider does.

The provider's order, pulumi-azure-native provider/pkg/provider/auth_azidentity.go
(newSingleMethodAuthCredential, newOidcCredential, readAuthConfig): a client certificate
(ARM_CLIENT_CERTIFICATE_PATH), a client secret (ARM_CLIENT_SECRET), OIDC when ARM_USE_OIDC is true
(ARM_OIDC_TOKEN, else ARM_OIDC_TOKEN_FILE_PATH, else a fresh token from GitHub's
ACTIONS_ID_TOKEN_REQUEST_URL with ACTIONS_ID_TOKEN_REQUEST_TOKEN, audience ARM_OIDC_AUDIENCE or
api://AzureADTokenExchange), a managed identity (ARM_USE_MSI), and otherwise the Azure CLI.

Only the GitHub request renews: the provider reads ARM_OIDC_TOKEN_FILE_PATH once, when it starts
(os.ReadFile in newOidcCredential), and hands that same token to every later exchange, so a file
something keeps fresh does not help it; after the first Entra token expires its next exchange
fails like a CLI session signed in with one federated token (Azure/azure-cli#28708, AADSTS700024).
azure-native 3.x reads GitHub's variables only under their ACTIONS_ names (or the provider config
oidcRequestUrl/oidcRequestToken): ARM_OIDC_REQUEST_URL/_TOKEN were read by the go-azure-helpers
authentication of earlier versions (provider/pkg/provider/auth.go, determineOidcConfig) and are
ignored now.
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
# What renews (module doc): the advice every refused OIDC login ends with. Entra access tokens
# live 60 to 90 minutes by default (Microsoft identity platform, "Configurable token lifetimes").
RENEWABLE_OIDC = (
    "In GitHub Actions set no ARM_OIDC_TOKEN or ARM_OIDC_TOKEN_FILE_PATH and give the job "
    "`permissions: id-token: write`: the provider then asks GitHub for a fresh ID token at each "
    "exchange (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN). Elsewhere use a client secret or "
    "certificate, or a managed identity. ARM_OIDC_TOKEN_FILE_PATH is read once by the provider: "
    "it serves only runs that end before the provider's first Entra token does (60 to 90 "
    "minutes by default)"
)


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
    certificate_password: str = ""
    token_file: str = ""
    github_request_url: str = ""
    github_request_token: str = ""
    audience: str = TOKEN_EXCHANGE_AUDIENCE

    def kubelogin_args(self) -> list[str]:
        """kubelogin get-token's login arguments. The environment overrides them at run time
        (kubelogin_env), which is how `destroy` and `refresh` log in from somewhere else than the
        `up` that stored the kubeconfig."""
        if self.mode == "spn":
            # kubelogin reads ARM_CLIENT_ID, ARM_TENANT_ID, ARM_CLIENT_SECRET,
            # ARM_CLIENT_CERTIFICATE_PATH and _PASSWORD itself: no secret in the kubeconfig.
            return ["--login", "spn", "--use-azurerm-env-vars"]
        if self.mode == "workloadidentity":
            # With ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN set, kubelogin asks GitHub for a fresh ID
            # token at each exchange: from v0.2.0 whatever the token file says
            # (pkg/internal/token/provider.go), before it only without a token file
            # (v0.1.x federatedIdentity.go).
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
                self.tenant_id,
                self.client_id,
                self.certificate_path,
                password=self.certificate_password or None,
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
            "spn",
            client,
            tenant,
            certificate_path=env["ARM_CLIENT_CERTIFICATE_PATH"],
            certificate_password=env.get("ARM_CLIENT_CERTIFICATE_PASSWORD", ""),
        )
    if env.get("ARM_CLIENT_SECRET"):
        return ProviderLogin("spn", client, tenant, secret=env["ARM_CLIENT_SECRET"])
    if env.get("ARM_USE_OIDC", "").lower() == "true":
        audience = env.get("ARM_OIDC_AUDIENCE") or TOKEN_EXCHANGE_AUDIENCE
        if env.get("ARM_OIDC_TOKEN"):
            raise LoginError(
                f"ARM_OIDC_TOKEN is a single token that cannot be renewed or handed to "
                f"kubelogin. {RENEWABLE_OIDC}"
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
            stale = [k for k in ("ARM_OIDC_REQUEST_URL", "ARM_OIDC_REQUEST_TOKEN") if env.get(k)]
            ignored = f" ({' and '.join(stale)}: not read by azure-native 3.x)" if stale else ""
            raise LoginError(
                f"ARM_USE_OIDC is true but there is no OIDC token{ignored}. {RENEWABLE_OIDC}"
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
    """Environment that makes kubelogin log in as ``login`` whatever flags a stored kubeconfig
    carries. kubelogin get-token reads, after its flags (Azure/kubelogin
    pkg/internal/token/options.go UpdateFromEnv, pkg/internal/env/variables.go):
    AAD_LOGIN_METHOD; AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET,
    AZURE_CLIENT_CERTIFICATE_PATH and _PASSWORD, or with --use-azurerm-env-vars the ARM_ ones
    instead (the provider's own, so they agree); and in workloadidentity mode AZURE_CLIENT_ID,
    AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST. A variable set empty clears its flag, so
    every value a stored flag could hold is set here, empty when this login has none: a stale
    --client-id, --tenant-id or --federated-token-file never wins. AZURE_AUTHORITY_HOST is left
    to the environment: the program writes no --authority-host, so kubelogin uses the public
    cloud's unless something sets it."""
    env = {"AAD_LOGIN_METHOD": login.mode}
    if login.mode == "azurecli":
        # The tenant of `az login`, as an `up` from a laptop writes no --tenant-id.
        return env | {"AZURE_TENANT_ID": ""}
    if login.mode == "msi":
        # Empty: the system-assigned identity, not a user-assigned one a stale flag names.
        return env | {"AZURE_CLIENT_ID": login.client_id}
    env |= {"AZURE_CLIENT_ID": login.client_id, "AZURE_TENANT_ID": login.tenant_id}
    if login.mode == "workloadidentity":
        # Empty with GitHub's request URL: kubelogin v0.1.x would read a stale token file first.
        return env | {"AZURE_FEDERATED_TOKEN_FILE": login.token_file}
    return env | {
        "AZURE_CLIENT_SECRET": login.secret,
        "AZURE_CLIENT_CERTIFICATE_PATH": login.certificate_path,
        "AZURE_CLIENT_CERTIFICATE_PASSWORD": login.certificate_password,
    }
