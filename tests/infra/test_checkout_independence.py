"""A second `up` from another checkout with no source change changes nothing: no input of either
stack names where the repository lies, and the image's content tag ignores file modes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from components.app_image import APP_DIR, content_tag, context_files
from stacks.offline import StackRun

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stack", ["aws_run", "dev_run"])
def test_no_input_depends_on_where_the_repository_lies(
    stack: str, request: pytest.FixtureRequest
) -> None:
    run: StackRun = request.getfixturevalue(stack)
    text = json.dumps([r.inputs for r in run.resources], default=str)
    assert not re.search(re.escape(str(REPO)) + r"(/|\"|$)", text)
    assert run.of_type("docker-build:index:Image")  # the build is part of what is checked


def test_the_content_tag_ignores_location_and_file_modes(tmp_path: Path) -> None:
    copies = []
    for mode, where in ((0o644, "laptop"), (0o664, "ci")):
        app = tmp_path / where / "checkout" / "app"
        shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
        for path in app.rglob("*"):
            if path.is_file():
                path.chmod(mode)
        copies.append(content_tag(app))
    assert copies[0] == copies[1] == content_tag()


def test_the_content_tag_follows_the_sources(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    before = content_tag(app)
    (app / "consumer.py").write_text((app / "consumer.py").read_text() + "\n# changed\n")
    assert content_tag(app) != before


def test_the_content_tag_counts_only_what_the_build_sends(tmp_path: Path) -> None:
    """The build leaves out what the ignore file names (docker-build's context hash does too):
    a local cache or README must not relabel the image, and so roll every pod."""
    app = tmp_path / "app"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    before = content_tag(app)
    (app / "__pycache__").mkdir()
    (app / "__pycache__" / "consumer.cpython-313.pyc").write_bytes(b"\x00compiled")
    (app / "README.md").write_text("notes\n")  # app/.dockerignore leaves it out
    assert content_tag(app) == before
    (app / "notes.txt").write_text("sent with the context\n")
    assert content_tag(app) != before


def test_a_handler_context_follows_docker_ignore_rules(tmp_path: Path) -> None:
    handler = tmp_path / "orders"
    (handler / "node_modules" / "left-pad").mkdir(parents=True)
    (handler / "Dockerfile").write_text("FROM node:22-alpine\nCOPY . .\n")
    (handler / "server.js").write_text("// serve\n")
    (handler / "node_modules" / "left-pad" / "index.js").write_text("// dep\n")
    (handler / "keep.log").write_text("kept\n")
    (handler / ".dockerignore").write_text("# local installs\nnode_modules\n*.log\n!keep.log\n")
    assert context_files(handler) == [".dockerignore", "Dockerfile", "keep.log", "server.js"]
    # The Dockerfile's own ignore file wins over the context's (Docker's precedence).
    (handler / "Dockerfile.dockerignore").write_text("*.js\n")
    assert context_files(handler) == [
        ".dockerignore",
        "Dockerfile",
        "Dockerfile.dockerignore",
        "keep.log",
        "node_modules/left-pad/index.js",  # `*.js` matches at the top only (Go's path.Match)
    ]
