"""Each stack's program runs once per session through the mocks (runs are cached)."""

import pytest

from stacks.offline import StackRun, run_stack


@pytest.fixture(scope="session")
def aws_run() -> StackRun:
    return run_stack("aws")


@pytest.fixture(scope="session")
def dev_run() -> StackRun:
    return run_stack("dev")
