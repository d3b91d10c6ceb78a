"""The consumer image, built from the bundled app/ directory and tagged by its content."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build

APP_DIR = Path(__file__).resolve().parent.parent / "app"
IGNORED = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def content_tag(app_dir: Path = APP_DIR) -> str:
    """A tag that changes exactly when the image's sources change (never `latest`)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in app_dir.rglob("*") if p.is_file()):
        if IGNORED.isdisjoint(path.relative_to(app_dir).parts):
            digest.update(str(path.relative_to(app_dir)).encode())
            digest.update(path.read_bytes())
    return f"src-{digest.hexdigest()[:12]}"


def build_and_push(
    name: str,
    repository: pulumi.Input[str],
    registry: docker_build.RegistryArgs,
    opts: pulumi.ResourceOptions,
) -> docker_build.Image:
    """Build app/ for the nodes' platform and push it to `repository`; `.ref` has the digest."""
    return docker_build.Image(
        name,
        context=docker_build.BuildContextArgs(location=str(APP_DIR)),
        dockerfile=docker_build.DockerfileArgs(location=str(APP_DIR / "Dockerfile")),
        platforms=[docker_build.Platform.LINUX_AMD64],
        push=True,
        tags=[pulumi.Output.concat(repository, ":", content_tag())],
        registries=[registry],
        opts=opts,
    )
