"""`make up|preview|destroy` check the stack's prerequisites before any pulumi call."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tools import prereqs

ROOT = Path(__file__).resolve().parents[2]
# Fake tools: each answers like the real one; `fail` makes its checks fail.
SCRIPTS = {
    "pulumi": "echo 'pulumi called' >&2; exit 0",
    "docker": 'case "$1" in buildx) exit ${DOCKER_BUILDX_RC:-0};; '
    "info) exit ${DOCKER_INFO_RC:-0};; esac",
    "aws": 'echo "$@" >> "$TOOL_LOG"; exit ${AWS_STS_RC:-0}',
    "az": "exit ${AZ_ACCOUNT_RC:-0}",
    "kubelogin": "exit 0",
}
ALL = tuple(SCRIPTS)


def toolbox(tmp_path: Path, tools: tuple[str, ...]) -> Path:
    """A PATH with the basics make needs plus only the named fake tools."""
    bin_dir = Path(tempfile.mkdtemp(prefix="bin-", dir=tmp_path))
    for basic in ("make", "bash", "sh", "env", "mkdir", "touch"):
        found = shutil.which(basic)
        assert found, basic
        (bin_dir / basic).symlink_to(found)
    for tool in tools:
        script = bin_dir / tool
        script.write_text(f"#!/bin/sh\n{SCRIPTS[tool]}\n")
        script.chmod(0o755)
    return bin_dir


def check(tmp_path: Path, stack: str, command: str, tools: tuple[str, ...], **env: str):
    bin_dir = toolbox(tmp_path, tools)
    return subprocess.run(
        [sys.executable, "-m", "tools.prereqs", "--stack", stack, "--command", command],
        cwd=ROOT,
        env={"PATH": str(bin_dir), "TOOL_LOG": str(tmp_path / "tools.log"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_everything_present_passes(tmp_path: Path) -> None:
    result = check(tmp_path, "aws", "up", ALL)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize(
    ("stack", "absent", "message"),
    [
        ("aws", "pulumi", "missing: pulumi not found: install the Pulumi CLI"),
        ("aws", "docker", "missing: docker not found: install Docker with buildx"),
        ("aws", "aws", "missing: aws not found: install the AWS CLI v2"),
        ("dev", "az", "missing: az not found: install the Azure CLI"),
        ("dev", "pulumi", "missing: pulumi not found"),
    ],
)
def test_each_missing_tool_is_named_with_how_to_install_it(tmp_path, stack, absent, message):
    result = check(tmp_path, stack, "up", tuple(t for t in ALL if t != absent))
    assert result.returncode == prereqs.EXIT_MISSING
    [line] = [line for line in result.stderr.splitlines() if line.startswith("missing:")]
    assert line.startswith(message)
    assert "fix the 1 item(s) above first; nothing was changed" in result.stderr


def test_every_missing_piece_gets_its_own_line(tmp_path: Path) -> None:
    result = check(tmp_path, "aws", "up", ())
    missing = [line for line in result.stderr.splitlines() if line.startswith("missing:")]
    assert [m.split(":")[1].strip().split()[0] for m in missing] == ["pulumi", "docker", "aws"]


def test_failed_logins_and_a_stopped_engine_are_reported(tmp_path: Path) -> None:
    aws = check(tmp_path, "aws", "up", ALL, AWS_STS_RC="255", DOCKER_INFO_RC="1")
    assert "the Docker engine is not running" in aws.stderr
    assert "no AWS credentials: `aws sts get-caller-identity` failed" in aws.stderr
    azure = check(tmp_path, "dev", "up", ALL, AZ_ACCOUNT_RC="1", DOCKER_BUILDX_RC="1")
    assert "not logged in to Azure: `az account show` failed; run `az login`" in azure.stderr
    assert "docker buildx not available" in azure.stderr


def test_destroy_and_a_prebuilt_image_need_no_docker(tmp_path: Path) -> None:
    no_docker = tuple(t for t in ALL if t != "docker")
    assert check(tmp_path, "aws", "destroy", no_docker).returncode == 0
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "Pulumi.x.yaml").write_text(
        "config:\n  edw:cloud: aws\n  edw:consumerImage: registry.example/edw:1.0\n"
    )
    assert prereqs.stack_needs("x", tmp_path / "repo").consumer_image
    bin_dir = toolbox(tmp_path, no_docker)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", str(bin_dir))
        patch.setenv("TOOL_LOG", str(tmp_path / "tools.log"))
        assert prereqs.missing("x", "up", tmp_path / "repo") == []


def test_every_azure_stack_needs_kubelogin(tmp_path: Path) -> None:
    """The program never uses the AKS admin credential, local accounts or not."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Pulumi.lab.yaml").write_text(
        "config:\n  edw:cloud: azure\n  edw:disableLocalAccounts: false\n"
    )
    bin_dir = toolbox(tmp_path, tuple(t for t in ALL if t != "kubelogin"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", str(bin_dir))
        assert any("kubelogin not found" in m for m in prereqs.missing("lab", "destroy", repo))


def test_the_stacks_aws_profile_is_used_for_the_identity_check(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Pulumi.p.yaml").write_text("config:\n  edw:cloud: aws\n  aws:profile: team\n")
    bin_dir = toolbox(tmp_path, ALL)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", str(bin_dir))
        patch.setenv("TOOL_LOG", str(tmp_path / "tools.log"))
        patch.setenv("AWS_STS_RC", "255")
        [problem] = prereqs.missing("p", "destroy", repo)
    assert "for profile 'team' (aws:profile)" in problem
    assert (tmp_path / "tools.log").read_text() == "sts get-caller-identity --profile team\n"


@pytest.mark.parametrize("target", ["up", "preview", "destroy"])
def test_make_stops_before_any_pulumi_call(tmp_path: Path, target: str) -> None:
    bin_dir = toolbox(tmp_path, ("docker", "aws"))  # no pulumi
    result = subprocess.run(
        ["make", "-C", str(ROOT), target, "STACK=aws", "PULUMI_BACKEND_URL=file:///nowhere"],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path), "TOOL_LOG": str(tmp_path / "log")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "missing: pulumi not found: install the Pulumi CLI" in result.stderr
    assert "pulumi stack select" not in result.stdout
    assert "command not found" not in result.stderr


def test_a_login_that_cannot_be_renewed_is_named_before_any_pulumi_call(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Pulumi.prod.yaml").write_text("config:\n  edw:cloud: azure\n")
    bin_dir = toolbox(tmp_path, ALL)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", str(bin_dir))
        for key in (
            "ARM_CLIENT_SECRET",
            "ARM_CLIENT_CERTIFICATE_PATH",
            "ACTIONS_ID_TOKEN_REQUEST_URL",
        ):
            patch.delenv(key, raising=False)
        patch.setenv("ARM_USE_OIDC", "true")
        patch.setenv("ARM_OIDC_TOKEN", "one-token")
        [problem] = prereqs.missing("prod", "destroy", repo)
        assert problem.startswith("the Azure login cannot be renewed: ARM_OIDC_TOKEN")
        patch.delenv("ARM_USE_OIDC")
        assert prereqs.missing("prod", "destroy", repo) == []
