"""Check what `make up|preview|destroy STACK=...` needs before any `pulumi` call.

Prints one line per missing piece with how to install or fix it, and exits 2 when anything is
missing (0 otherwise). What a stack needs follows from its config (``Pulumi.<stack>.yaml`` over
the defaults of ``stacks.config.SETTINGS``):

- always: the Pulumi CLI;
- `up` and `preview` without ``edw:consumerImage``: Docker with buildx and a running engine (the
  image is built from app/; docker-build builds during previews too);
- cloud aws: the AWS CLI and a caller identity (the kubeconfig runs ``aws eks get-token``), with
  the stack's ``aws:profile`` if it sets one;
- cloud azure: the Azure CLI and a login, kubelogin (the program reaches AKS only through Entra),
  and a provider login that can be renewed (components/azure/login.py).

Usage: ``python -m tools.prereqs --stack aws --command up``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.azure.login import LoginError, provider_login
from stacks.config import PROJECT, SETTINGS_BY_KEY

REPO = Path(__file__).resolve().parents[1]
EXIT_MISSING = 2
INSTALL = {
    "pulumi": "install the Pulumi CLI: https://www.pulumi.com/docs/install/ "
    "(curl -fsSL https://get.pulumi.com | sh)",
    "docker": "install Docker with buildx (https://docs.docker.com/engine/install/), or set "
    "edw:consumerImage to a prebuilt image",
    "aws": "install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/"
    "getting-started-install.html",
    "az": "install the Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli",
    "kubelogin": "install kubelogin (az aks install-cli, or "
    "https://azure.github.io/kubelogin/install.html), v0.1.0 or later; the program reaches AKS "
    "through Entra only",
}


@dataclass(frozen=True)
class StackNeeds:
    cloud: str
    consumer_image: str
    aws_profile: str


def stack_needs(stack: str, repo: Path = REPO) -> StackNeeds:
    """What the stack's config says it needs (the defaults where it is silent)."""
    path = repo / f"Pulumi.{stack}.yaml"
    config: Mapping[str, Any] = {}
    if path.is_file():
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}

    def setting(key: str) -> Any:
        return config.get(f"{PROJECT}:{key}", SETTINGS_BY_KEY[key].default)

    return StackNeeds(
        cloud=str(setting("cloud") or ""),
        consumer_image=str(setting("consumerImage") or ""),
        aws_profile=str(config.get("aws:profile") or ""),
    )


def succeeds(command: Sequence[str]) -> bool:
    try:
        result = subprocess.run(command, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def missing(stack: str, command: str, repo: Path = REPO) -> list[str]:
    """One message per missing prerequisite, in the order a user should fix them."""
    needs = stack_needs(stack, repo)
    problems: list[str] = []
    if needs.cloud not in ("aws", "azure"):
        problems.append(
            f"stack {stack!r}: edw:cloud is {needs.cloud or 'not set'} in Pulumi.{stack}.yaml; "
            "set it to aws or azure"
        )
    if not shutil.which("pulumi"):
        problems.append(f"pulumi not found: {INSTALL['pulumi']}")
    if command in ("up", "preview") and not needs.consumer_image:
        if not shutil.which("docker"):
            problems.append(f"docker not found: {INSTALL['docker']}")
        elif not succeeds(["docker", "buildx", "version"]):
            problems.append(
                "docker buildx not available: install the buildx plugin "
                "(https://github.com/docker/buildx#installing), or set edw:consumerImage"
            )
        elif not succeeds(["docker", "info"]):
            problems.append("the Docker engine is not running: start it (docker info must work)")
    if needs.cloud == "aws":
        problems.extend(_aws(needs))
    elif needs.cloud == "azure":
        problems.extend(_azure(needs))
    return problems


def _aws(needs: StackNeeds) -> list[str]:
    if not shutil.which("aws"):
        return [f"aws not found: {INSTALL['aws']}"]
    profile = ["--profile", needs.aws_profile] if needs.aws_profile else []
    if not succeeds(["aws", "sts", "get-caller-identity", *profile]):
        which = f" for profile {needs.aws_profile!r} (aws:profile)" if needs.aws_profile else ""
        return [
            f"no AWS credentials{which}: `aws sts get-caller-identity` failed; run "
            "`aws configure sso` / `aws sso login`, or export AWS_PROFILE or access keys"
        ]
    return []


def _azure(needs: StackNeeds) -> list[str]:
    problems = []
    if not shutil.which("az"):
        problems.append(f"az not found: {INSTALL['az']}")
    elif not succeeds(["az", "account", "show"]):
        problems.append("not logged in to Azure: `az account show` failed; run `az login`")
    if not shutil.which("kubelogin"):
        problems.append(f"kubelogin not found: {INSTALL['kubelogin']}")
    try:
        provider_login(os.environ)
    except LoginError as exc:
        problems.append(f"the Azure login cannot be renewed: {exc}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.prereqs", description=__doc__)
    parser.add_argument("--stack", required=True, help="stack name, e.g. aws or dev")
    parser.add_argument("--command", choices=("up", "preview", "destroy", "stack"), default="up")
    args = parser.parse_args(argv)
    problems = missing(args.stack, args.command)
    for problem in problems:
        print(f"missing: {problem}", file=sys.stderr)
    if problems:
        print(
            f"make {args.command} STACK={args.stack}: fix the {len(problems)} item(s) above "
            "first; nothing was changed",
            file=sys.stderr,
        )
        return EXIT_MISSING
    return 0


if __name__ == "__main__":
    sys.exit(main())
