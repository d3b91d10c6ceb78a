"""A missing test tool skips exactly the tests that run it, saying what to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import tools


def test_a_found_tool_is_returned(tmp_path: Path) -> None:
    assert tools.need("promtool", tmp_path) == tmp_path


def test_a_missing_tool_skips_and_names_how_to_install_it(monkeypatch) -> None:
    monkeypatch.delenv(tools.REQUIRE, raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        tools.need("promtool", None)
    assert str(skipped.value).startswith("promtool is not installed: install Prometheus's")
    assert "brew install prometheus" in str(skipped.value)
    # A clone from GitHub has nothing beside it: the reason names no folder outside the repo.
    assert "../" not in str(skipped.value)
    with pytest.raises(pytest.skip.Exception, match=r"Azurite is not installed: install Node\.js"):
        tools.need("Azurite", None)


def test_where_every_tool_is_required_a_missing_one_fails(monkeypatch) -> None:
    monkeypatch.setenv(tools.REQUIRE, "1")
    with pytest.raises(pytest.fail.Exception, match="actionlint is not installed"):
        tools.need("actionlint", None)


def test_a_node_package_needs_node_too(monkeypatch) -> None:
    monkeypatch.delenv(tools.REQUIRE, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.skip.Exception, match="Azurite is not installed"):
        tools.node_package("Azurite", "azurite")
