"""What the Deployment tells the consumer is exactly what the consumer understands."""

import pytest

from app.settings import ENV_VARS, load
from stacks.offline import StackRun


@pytest.fixture(params=["aws", "dev"])
def run(request: pytest.FixtureRequest) -> StackRun:
    return request.getfixturevalue(f"{request.param}_run")


def env_of(run: StackRun) -> dict[str, str]:
    spec = run.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def test_every_edw_variable_the_deployment_sets_is_one_the_app_reads(run: StackRun):
    env = env_of(run)
    assert {k for k in env if k.startswith("EDW_")} <= set(ENV_VARS)


def test_the_app_accepts_the_environment_the_deployment_gives_it(run: StackRun):
    """The rendered env passes the consumer's own start-up validation."""
    settings = load(env_of(run))
    assert settings.cloud == ("aws" if run.stack == "aws" else "azure")
    pod = run.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    assert settings.shutdown_timeout_seconds < pod["terminationGracePeriodSeconds"]
    assert settings.http_port == pod["containers"][0]["ports"][0]["containerPort"]


def test_the_consumer_dead_letters_with_its_reason_before_the_sqs_redrive_would(run: StackRun):
    """SQS moves a message to the DLQ without a reason once its receive count exceeds
    maxReceiveCount (5 in both stacks): on aws the consumer's limit is one lower, so it sets the
    message aside itself on delivery 5; Azure queues have no redrive, the consumer's limit is it."""
    expected = {"aws": 4, "dev": 5}[run.stack]
    assert load(env_of(run)).max_deliveries == expected
