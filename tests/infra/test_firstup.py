"""`make up` on a new stack: its idle cost and how long it takes, then a question (not with
--yes, nor in CI); an existing stack is updated without one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacks.offline import StackRun
from tools import firstup
from tools.cost import Volume, estimate

NEW = {"version": 3, "deployment": {"manifest": {"version": "v3.272.0"}}}
DEPLOYED = {"version": 3, "deployment": {"resources": [{"urn": "urn:pulumi:aws::edw::x"}]}}


@pytest.fixture
def pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A `pulumi` on PATH whose `stack export` prints the given state (None: no such stack)."""

    def install(state: dict | None) -> Path:
        log = tmp_path / "pulumi.log"
        answer = (
            f"cat <<'EOF'\n{json.dumps(state)}\nEOF" if state else "echo 'no stack' >&2; exit 1"
        )
        script = tmp_path / "pulumi"
        script.write_text(f'#!/bin/sh\necho "$@" >> {log}\n{answer}\n')
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
        return log

    return install


@pytest.fixture
def new_stack(pulumi) -> None:
    pulumi(NEW)


def never_asked(_: str) -> str:
    raise AssertionError("asked")


def run(*argv: str, env: dict[str, str] | None = None, answer: str | None = None, tty=True) -> int:
    ask = never_asked if answer is None else (lambda _: answer)
    return firstup.main(argv, env=env or {}, ask=ask, interactive=lambda: tty)


def test_an_existing_stack_is_updated_without_a_question(pulumi, capsys) -> None:
    log = pulumi(DEPLOYED)
    assert run("--stack", "aws", "--ref", "acme/aws") == 0
    assert log.read_text().split() == ["stack", "export", "--stack", "acme/aws"]
    assert capsys.readouterr().out == ""


@pytest.mark.usefixtures("new_stack")
@pytest.mark.parametrize(("answer", "code"), [("y", 0), ("yes", 0), ("", 1), ("n", 1)])
def test_a_new_stack_shows_its_idle_cost_and_time_then_asks(
    answer, code, aws_run: StackRun, capsys
) -> None:
    assert run("--stack", "aws", answer=answer) == code
    out, err = capsys.readouterr()
    region = str(aws_run.outputs.get("region"))
    idle = estimate(aws_run, region, Volume(0, 1))["totals"]["idleMonthly"]
    assert f"Creating aws (aws) costs about {idle:,.2f} USD a month idle" in out
    assert "takes about 20-30 minutes, and `make destroy STACK=aws` removes it all" in out
    assert ("Nothing was created." in err) == (code == 1)


@pytest.mark.parametrize(
    ("argv", "env", "reason"),
    [(["--yes"], {}, "--yes"), ([], {"CI": "true"}, "CI")],
)
@pytest.mark.usefixtures("new_stack", "aws_run")
def test_yes_or_ci_create_without_asking(argv, env, reason, capsys) -> None:
    assert run("--stack", "aws", *argv, env=env) == 0
    assert f"Creating it without asking ({reason})." in capsys.readouterr().out


@pytest.mark.usefixtures("aws_run")
def test_a_stack_pulumi_does_not_know_yet_counts_as_new(pulumi, capsys) -> None:
    pulumi(None)
    assert run("--stack", "aws", answer="y") == 0
    assert "Creating aws (aws) costs about" in capsys.readouterr().out


@pytest.mark.usefixtures("new_stack", "aws_run")
def test_without_a_terminal_it_stops_and_says_how_to_go_on(capsys) -> None:
    assert run("--stack", "aws", env={"CI": "false"}, tty=False) == 2
    assert "run `make up YES=1` to create it without asking" in capsys.readouterr().err


@pytest.mark.usefixtures("new_stack")
def test_the_azure_stack_is_priced_from_its_own_graph(dev_run: StackRun, capsys) -> None:
    assert run("--stack", "dev", answer="y") == 0
    region = str(dev_run.outputs.get("location"))
    idle = estimate(dev_run, region, Volume(0, 1))["totals"]["idleMonthly"]
    out = capsys.readouterr().out
    assert f"Creating dev (azure) costs about {idle:,.2f} USD a month idle" in out
    assert "about 15-25 minutes" in out
