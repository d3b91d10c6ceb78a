"""Images `up` builds: the consumer from the bundled app/ directory, and each workflow's handler
from its own directory; each tagged by its content."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build
from docker.utils.build import exclude_paths

from components.settings import Workflow

PROJECT_DIR = Path(__file__).resolve().parent.parent
APP_DIR = PROJECT_DIR / "app"
APP_CONTEXT = "app"  # relative to the project directory, the program's working directory


def context_files(context: Path) -> list[str]:
    """The files a build of ``context`` sends: all but what its ignore file excludes (Docker's
    rules: ``Dockerfile.dockerignore`` first, else ``.dockerignore``, as pulumi-docker-build's
    getIgnorePatterns, provider/internal/context.go; matched by docker-py's PatternMatcher).
    docker-py's matcher is close to moby's, not the same: it never descends into an excluded
    directory for a wildcard exception (``dir`` then ``!**/keep``) and always keeps the ignore
    file. Only the label can differ: the image is pushed by digest either way."""
    ignore_files = (context / "Dockerfile.dockerignore", context / ".dockerignore")
    ignore = next((f for f in ignore_files if f.is_file()), None)
    # utf-8-sig: moby's ignorefile.ReadAll drops a byte-order mark too.
    lines = ignore.read_text(encoding="utf-8-sig").splitlines() if ignore else []
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    kept = exclude_paths(str(context), patterns)  # always keeps the Dockerfile
    return sorted(Path(p).as_posix() for p in kept if (context / p).is_file())


def content_tag(context: Path = APP_DIR) -> str:
    """A tag that changes exactly when what the build sends changes (never `latest`): files
    left out by the ignore file, a test's cache or a handler's local node_modules, change
    nothing; unlike docker-build's own context hash, file modes count for nothing either."""
    digest = hashlib.sha256()
    for name in context_files(context):
        digest.update(name.encode())
        digest.update((context / name).read_bytes())
    return f"src-{digest.hexdigest()[:12]}"


def build_and_push(
    name: str,
    repository: pulumi.Input[str],
    registry: docker_build.RegistryArgs,
    opts: pulumi.ResourceOptions,
    context: str = APP_CONTEXT,
) -> pulumi.Output[str]:
    """Build ``context`` (app/, or a handler's directory: relative to the project directory)
    for the nodes' platform, push it to ``repository`` by digest; ``repo@digest``.

    Two things keep a second `up` from another checkout (CI after a laptop) from failing:
    - the paths are relative to the project directory, where Pulumi runs the program, so the
      stored inputs do not change with where the repository lies;
    - the image is pushed by digest, with no tag: docker-build rebuilds whenever its context
      hash differs, and that hash includes every file's permission bits, which git does not
      keep (they follow the umask of whoever checked out). A rebuild re-pushing the same tag
      would be refused by the repository's immutable tags; a push by digest never collides.
    The content tag stays on the image as a label, so a digest still says which app/ it holds.
    """
    image = docker_build.Image(
        name,
        context=docker_build.BuildContextArgs(location=context),
        dockerfile=docker_build.DockerfileArgs(location=f"{context}/Dockerfile"),
        platforms=[docker_build.Platform.LINUX_AMD64],
        push=False,  # the registry export below pushes
        exports=[
            docker_build.ExportArgs(
                registry=docker_build.ExportRegistryArgs(
                    names=[repository], push=True, push_by_digest=True, oci_media_types=True
                )
            )
        ],
        labels={"org.opencontainers.image.version": content_tag(PROJECT_DIR / context)},
        registries=[registry],
        opts=opts,
    )
    return pulumi.Output.concat(repository, "@", image.digest)


def handler_image(
    workflow: Workflow, build: Callable[[str, str], pulumi.Output[str]]
) -> pulumi.Input[str] | None:
    """The workflow's handler image: as given, or ``build(name, directory)`` (the cloud's image
    component, one repository per handler); None without a handler."""
    handler = workflow.handler
    if handler is None:
        return None
    return handler.image or build(workflow.resource_name("handler-image"), handler.build)
