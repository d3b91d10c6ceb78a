"""Run a Pulumi command whose Kubernetes provider logs in to AKS the way this environment is
authenticated, not the way the `up` that stored the kubeconfig was.

The kubeconfig of an Azure stack sits in its state with the kubelogin mode of the environment
that last ran `up` (a laptop's `azurecli`, CI's `workloadidentity`); `destroy` and `refresh` do
not run the program and reuse it. kubelogin lets the environment override it
(components/azure/login.py, kubelogin_env): this sets those variables from the azure-native
provider's own (ARM_*), unless AAD_LOGIN_METHOD is already set, and runs the command.

Usage: ``python -m tools.login -- pulumi destroy --stack dev``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from components.azure.login import kubelogin_env, provider_login


def command_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` plus kubelogin's overrides for the provider's login (an explicit
    AAD_LOGIN_METHOD wins)."""
    if env.get("AAD_LOGIN_METHOD"):
        return dict(env)
    return {**env, **kubelogin_env(provider_login(env))}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m tools.login -- <command> [args...]", file=sys.stderr)
        return 2
    os.execvpe(args[0], args, command_env(os.environ))
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
