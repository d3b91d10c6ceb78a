"""The docs hold together: relative links resolve, the README stays an entry page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools import settingsdoc

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text()))


def broken(page: Path) -> list[str]:
    found = []
    for target in links(page):
        if re.match(r"^[a-z]+:", target):  # https:, mailto: ... are not checked here
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            found.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            found.append(f"{target}: no heading #{anchor} in {resolved.name}")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    assert broken(page) == []


def test_the_link_check_catches_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## A heading (AWS)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-heading-aws) [gone](nope.md) [bad](other.md#nope) "
        "[web](https://example.com)\n```\n[in code](ignored.md)\n```\n"
    )
    assert broken(page) == ["nope.md: no such file", "other.md#nope: no heading #nope in other.md"]


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {t.partition("#")[0] for t in links(REPO / "README.md")}
    pages = {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")}
    assert pages <= linked


def test_the_readme_stays_an_entry_page() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    for section in ("## What it builds", "## Quick start", "## Layout", "make test", "make up"):
        assert section in readme


def test_generated_settings_docs_are_fresh() -> None:
    assert settingsdoc.main(["--check"]) == 0, "run `make docs`"


def test_the_freshness_check_sees_a_stale_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "configuration.md"
    page.write_text(f"# C\n{settingsdoc.BEGIN}\n| old |\n{settingsdoc.END}\n")
    monkeypatch.setattr(settingsdoc, "TARGETS", {page: settingsdoc.configuration_doc})
    monkeypatch.setattr(settingsdoc, "REPO", tmp_path)
    assert settingsdoc.main(["--check"]) == 1
    assert "| old |" in page.read_text()
    assert settingsdoc.main([]) == 0
    assert "| `edw:cloud` | string | (required) | both |" in page.read_text()
