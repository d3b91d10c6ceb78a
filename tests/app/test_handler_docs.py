"""The two minimal handlers of docs/handlers.md, run as written against the consumer on moto:
the Python one's JSON answer becomes the row's result, the Node.js one's event is published.
And what the page states about limits and encodings is what the code does."""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app import events
from app.backend import MAX_EVENT_BYTES
from app.handler import Reply, emitted_id, read_answer
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


def section(title: str) -> str:
    return PAGE.read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_page_states_the_event_size_limit_the_code_enforces() -> None:
    emitting = section("Emitting events")
    assert f"{MAX_EVENT_BYTES:,} bytes" in emitting
    assert re.findall(r"(\d+) KiB", emitting) == [str(MAX_EVENT_BYTES // 1024)]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json; charset=utf-16", '{"a": 1}'.encode("utf-16")),  # with its BOM
        ("application/json", b"\xef\xbb\xbf" + b'{"a": 1}'),  # UTF-8 with a BOM
    ],
)
def test_the_documented_encoding_defects_are_the_consumers_reasons(
    content_type: str, body: bytes
) -> None:
    trigger = events.parse(events.make({}, source="urn:docs", type_="t", event_id="e1"))
    answer = read_answer(Reply(200, content_type, body), "docs", trigger)
    assert answer.outcome == "defect"
    text = " ".join(section("The answer").split())  # a quote may wrap
    quoted = re.findall(r"`(the body is not [^`]*?)(?: \.\.\.)?`", text)
    assert any(answer.reason.split(": ", 1)[1].startswith(q) for q in quoted), (answer, quoted)
