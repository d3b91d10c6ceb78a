"""The two minimal handlers of docs/handlers.md, run as written against the consumer on moto:
the Python one's JSON answer becomes the row's result, the Node.js one's event is published."""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app import events
from app.handler import emitted_id
from bench.chain import HandlerProcess
from bench.emulators import REPO, free_port
from tests.app.conftest import ConsumerProcess, provision, wait_until

pytestmark = pytest.mark.emulator
Start = Callable[[dict[str, str]], ConsumerProcess]
PAGE = REPO / "docs" / "handlers.md"


def snippet(language: str) -> str:
    section = PAGE.read_text().split("## A handler in a few lines", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)
    return code


@pytest.mark.parametrize(("language", "program"), [("python", sys.executable), ("js", "node")])
def test_the_documented_handler_works_as_written(
    language: str,
    program: str,
    request: pytest.FixtureRequest,
    start_consumer: Start,
    tmp_path: Path,
) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not on PATH: the Node.js snippet needs Node.js 20+")
    source = tmp_path / f"handler.{language.replace('python', 'py')}"
    source.write_text(snippet(language))
    target = provision(request, "aws")
    topic = request.getfixturevalue("moto").client("sns").create_topic(Name="docs")["TopicArn"]
    with HandlerProcess([program, str(source)], free_port(), tmp_path / "handler.log") as handler:
        env = {
            **target.env,
            "EDW_RECEIVE_WAIT_SECONDS": "1",
            "EDW_WORKFLOW": "docs",
            "EDW_HANDLER_URL": handler.url,
            "EDW_ROUTER": topic,
        }
        start_consumer(env).wait_ready()
        trigger = events.make({"n": 1}, source="urn:docs", type_="t", event_id="e1")
        target.send([trigger])
        wait_until(lambda: len(target.row_ids()) == 1, 30, "the row")
    (row,) = target.rows()
    if language == "python":
        assert json.loads(row["result"]) == {"handled": "e1"}
    else:
        assert json.loads(row["emitted"]) == [emitted_id("docs", events.parse(trigger), 0)]
