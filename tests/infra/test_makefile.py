"""The Makefile's stack commands, dry-run: the right pulumi calls, a local backend without login."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def dry_run(target: str, tmp_path: Path, **env: str) -> str:
    # No `pulumi` on PATH here: exactly the "no Pulumi account" case.
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}
    result = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, "STACK=aws"],
        capture_output=True,
        text=True,
        env=clean,
        check=True,
    )
    return result.stdout


@pytest.mark.parametrize(
    ("target", "command"),
    [
        ("up", "pulumi up --stack aws --policy-pack policy"),
        ("preview", "pulumi preview --stack aws --diff --policy-pack policy"),
        ("destroy", "pulumi destroy --stack aws"),
    ],
)
def test_stack_targets_select_the_stack_and_run_pulumi(target, command, tmp_path):
    out = dry_run(target, tmp_path)
    assert "pulumi stack select --create aws" in out
    assert command in out
    assert out.index("stack select") < out.index(command)


@pytest.mark.parametrize("target", ["up", "preview", "destroy", "stack"])
def test_the_prerequisite_check_is_told_which_command_runs(target, tmp_path):
    # `up` and `preview` need Docker with buildx (they build the image); `stack` and `destroy`
    # do not: the check must know which one it guards.
    out = dry_run(target, tmp_path)
    assert f"-m tools.prereqs --stack aws --command {target}\n" in out
    assert out.index("tools.prereqs") < out.index("pulumi stack select")


def test_without_a_login_the_local_file_backend_is_used(tmp_path):
    out = dry_run("preview", tmp_path)
    assert f"mkdir -p {tmp_path}/.pulumi-edw" in out


def test_an_explicit_backend_wins(tmp_path):
    out = dry_run("preview", tmp_path, PULUMI_BACKEND_URL="s3://bucket/state")
    assert ".pulumi-edw" not in out


@pytest.mark.parametrize("target", ["up", "preview"])
def test_preview_and_up_run_the_pack_with_the_stacks_config_in_its_own_venv(target, tmp_path):
    out = dry_run(target, tmp_path)
    assert "--policy-pack-config policy/stack-config/aws.json" in out
    assert "policy/.venv/bin/pip install -q -r policy/requirements.txt" in out
    assert out.index("policy/.venv/bin/pip") < out.index(f"pulumi {target}")


def test_stacks_are_created_in_the_named_organization(tmp_path):
    out = dry_run("up", tmp_path, PULUMI_ORG="acme")
    assert "pulumi stack select --create acme/aws" in out
    assert "pulumi up --stack acme/aws" in out
