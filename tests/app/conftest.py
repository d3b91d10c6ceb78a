"""Emulators (one moto and one Azurite per test module) and a consumer-process helper."""

from __future__ import annotations

import itertools
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench import chain
from bench.emulators import AzuriteEmulator, MotoEmulator, Target
from tests import tools

CLOUDS = ("aws", "azure")
_names = itertools.count()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoEmulator]:
    with MotoEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def azurite() -> Iterator[AzuriteEmulator]:
    tools.node_package("Azurite", "azurite")  # the tests that use it skip without it
    # Fresh per module: Azurite's queue garbage collection stalls it after sustained load.
    with AzuriteEmulator() as emulator:
        yield emulator


def provision(request: pytest.FixtureRequest, cloud: str, **kwargs: int) -> Target:
    # Azure names: lowercase, 3-63 chars, start with a letter (tables forbid the hyphen).
    name = f"t{next(_names)}-{uuid.uuid4().hex[:8]}"
    emulator = request.getfixturevalue("moto" if cloud == "aws" else "azurite")
    return emulator.provision(name, **kwargs)


@pytest.fixture(params=CLOUDS)
def target(request: pytest.FixtureRequest) -> Target:
    return provision(request, request.param)


@dataclass
class SilentServer:
    port: int
    connections: list[socket.socket] = field(default_factory=list)  # one per attempt

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A port that takes connections and requests and never answers (a hung endpoint, a
    blackholed network)."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = SilentServer(listener.getsockname()[1])

    def accept() -> None:
        while True:
            try:
                server.connections.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server
    listener.close()
    for conn in server.connections:
        conn.close()


def table_at(cloud: str, env: dict[str, str], address: str) -> dict[str, str]:
    """The consumer's environment change that sends only its table calls to ``address``."""
    if cloud == "aws":
        return {"AWS_ENDPOINT_URL_DYNAMODB": address}  # botocore's per-service endpoint
    connection = env["EDW_AZURE_CONNECTION_STRING"]
    return {
        "EDW_AZURE_CONNECTION_STRING": re.sub(
            r"TableEndpoint=http://127\.0\.0\.1:\d+", f"TableEndpoint={address}", connection
        )
    }


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class ConsumerProcess(chain.ConsumerProcess):
    """The consumer process, with what the tests ask of it."""

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def ready(self) -> bool:
        try:
            return self.get("/readyz")[0] == 200
        except OSError:
            return False

    def metric(self, name: str) -> float:
        _, text = self.get("/metrics")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        raise KeyError(name)

    def wait_ready(self) -> None:
        wait_until(lambda: self.ready() or self.process.poll() is not None, 20, "readiness")
        assert self.process.poll() is None, self.output()

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def start_consumer(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], ConsumerProcess]]:
    started: list[ConsumerProcess] = []

    def start(env: dict[str, str]) -> ConsumerProcess:
        consumer = ConsumerProcess(env, tmp_path / f"consumer-{len(started)}.log")
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        if consumer.process.poll() is None:
            consumer.process.kill()
            consumer.process.wait()
