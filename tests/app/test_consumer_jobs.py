"""The consumer in job mode (a KEDA ScaledJob's pod) against moto and Azurite: it settles what it
takes, exits 0 on its own, never takes more than its quota, and a kill loses nothing."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from bench.emulators import Target
from tests.app.conftest import ConsumerProcess, wait_until
from tests.app.test_consumer_emulators import FAST, drained, make_events

pytestmark = pytest.mark.emulator
Start = Callable[[dict[str, str]], ConsumerProcess]
IDLE = {"EDW_EXIT_WHEN_IDLE_SECONDS": "2"}


def test_a_job_settles_every_message_and_exits_zero_when_idle(
    target: Target, start_consumer: Start
) -> None:
    n = 60
    ids, bodies = make_events(n)
    target.send(bodies)
    job = start_consumer({**target.env, **FAST, **IDLE})
    assert job.wait(40) == 0, job.output()
    assert sorted(target.row_ids()) == ids
    assert target.depth() == 0
    assert '"job": true' in job.output()
    assert target.dead_letters() == []


def test_a_job_takes_at_most_its_quota_and_a_second_job_finishes_the_rest(
    target: Target, start_consumer: Start
) -> None:
    n, quota = 30, 12
    ids, bodies = make_events(n)
    target.send(bodies)
    # One worker: moto may hand one message to two concurrent receives, which would blur the
    # count of rows (not of settled messages) this test reads.
    env = {**target.env, **FAST, "EDW_CONCURRENCY": "1"}
    first = start_consumer({**env, "EDW_MAX_MESSAGES": str(quota)})
    assert first.wait(40) == 0, first.output()
    assert len(target.row_ids()) == quota
    assert target.depth() == n - quota  # the rest untouched: visible, for the next job

    second = start_consumer({**env, **IDLE})
    assert second.wait(40) == 0, second.output()
    assert sorted(target.row_ids()) == ids
    assert drained(target, n)


def test_killing_a_job_mid_batch_loses_nothing(target: Target, start_consumer: Start) -> None:
    n = 80
    ids, bodies = make_events(n)
    target.send(bodies)
    env = {
        **target.env,
        **FAST,
        "EDW_VISIBILITY_TIMEOUT_SECONDS": "2",
        "EDW_SIMULATED_WORK_MS": "100",
        "EDW_CONCURRENCY": "2",
        "EDW_MAX_MESSAGES": "40",
    }
    job = start_consumer(env)
    job.wait_ready()
    wait_until(lambda: job.metric("edw_messages_in_flight") > 0, 10, "a batch in flight")
    job.signal(signal.SIGKILL)
    assert job.wait(10) == -signal.SIGKILL
    assert len(target.row_ids()) < n, "the kill must leave work behind"

    # What the killed job held comes back after its visibility timeout; later jobs take it.
    for _ in range(4):
        rest = start_consumer({**env, **IDLE})
        assert rest.wait(60) == 0, rest.output()
        if drained(target, n):
            break
    assert sorted(target.row_ids()) == ids
    assert target.depth() == 0
    assert target.dead_letters() == []
