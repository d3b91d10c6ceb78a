"""The docs hold together: relative links resolve, the README stays an entry page."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tools import settingsdoc

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")
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


def images(page: Path) -> list[str]:
    return [a or b for a, b in IMAGE.findall(FENCE.sub("", page.read_text()))]


def ignored(path: Path) -> bool:
    """True when git would leave the file out of a commit (a clone would not have it)."""
    check = subprocess.run(
        ["git", "-C", str(path.parent), "check-ignore", "-q", str(path)], check=False
    )
    return check.returncode == 0


def broken(page: Path) -> list[str]:
    found = []
    for target in images(page):
        resolved = (page.parent / target).resolve()
        if re.match(r"^[a-z]+:", target):
            found.append(f"{target}: an image from elsewhere (keep pictures in the repo)")
        elif not resolved.is_file():
            found.append(f"{target}: no such image")
        elif ignored(resolved):
            found.append(f"{target}: ignored by git, so a clone has no such image")
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


def test_the_image_check_catches_a_missing_an_ignored_and_a_remote_picture(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("demo.png\n")  # unanchored: docs/demo.png too
    (tmp_path / "docs").mkdir()
    for name in ("docs/demo.png", "docs/kept.png"):
        (tmp_path / name).write_bytes(b"\x89PNG")
    page = tmp_path / "README.md"
    page.write_text(
        "![kept](docs/kept.png) ![plot](docs/demo.png) ![gone](docs/gone.png)\n"
        '<img src="https://example.com/x.png">\n'
    )
    assert broken(page) == [
        "docs/demo.png: ignored by git, so a clone has no such image",
        "docs/gone.png: no such image",
        "https://example.com/x.png: an image from elsewhere (keep pictures in the repo)",
    ]


def test_the_readme_shows_the_demo_picture() -> None:
    assert "docs/demo.png" in images(REPO / "README.md")


def code_blocks(page: Path) -> list[list[str]]:
    return [m.group(0).splitlines()[1:-1] for m in FENCE.finditer(page.read_text())]


def box_problems(lines: list[str]) -> list[str]:
    """Every box (┌ ┐ over └ ┘) has its sides in the same columns on every row; every ▼ hangs
    under a line (│ ┬ ┐)."""
    problems, boxes = [], 0
    for i, line in enumerate(lines):
        for left in [c for c, ch in enumerate(line) if ch == "┌"]:
            right = line.index("┐", left)
            boxes += 1
            for row, below in enumerate(lines[i + 1 :], start=i + 1):
                if below[left : left + 1] == "└":
                    if below[right : right + 1] != "┘":
                        problems.append(
                            f"row {row}: the box from row {i} ends without ┘ at {right}"
                        )
                    break
                if below[left : left + 1] != "│" or below[right : right + 1] != "│":
                    problems.append(
                        f"row {row}: the box from row {i} has no side at {left}/{right}"
                    )
            else:
                problems.append(f"row {i}: the box never closes")
        for c, ch in enumerate(line):
            if ch == "▼" and (i == 0 or lines[i - 1][c : c + 1] not in ("│", "┬", "┐")):
                problems.append(f"row {i}: ▼ at column {c} hangs under nothing")
    return problems if boxes else ["no box drawn"]


def test_the_readme_diagram_fits_100_columns_with_aligned_boxes() -> None:
    (diagram,) = [b for b in code_blocks(REPO / "README.md") if any("┌" in line for line in b)]
    assert max(len(line) for line in diagram) <= 100
    assert box_problems(diagram) == []


def test_the_box_check_sees_a_side_out_of_line() -> None:
    good = [" ┌── x ──┐", " │ a     │", " └───┬───┘", "     ▼"]
    assert box_problems(good) == []
    assert box_problems([good[0], " │ a      │", good[2]]) == [
        "row 1: the box from row 0 has no side at 1/9"
    ]
    assert box_problems([*good[:3], "    ▼"]) == ["row 3: ▼ at column 4 hangs under nothing"]


def test_the_license_is_named_and_explained_in_the_readme() -> None:
    license_ = (REPO / "LICENSE").read_text()
    assert "Apache License" in license_
    assert "Version 2.0, January 2004" in license_
    readme = (REPO / "README.md").read_text()
    section = readme.split("## License", 1)[1]
    assert "[Apache License 2.0](LICENSE)" in section
    assert "patent grant" in section  # the why, not just the name


def test_the_minimum_versions_match_what_the_repo_requires() -> None:
    readme = (REPO / "README.md").read_text()
    line = readme.split("**Minimum versions**", 1)[1].split("\n\n", 1)[0]
    python = re.search(r'requires-python = ">=([\d.]+)"', (REPO / "pyproject.toml").read_text())
    node = re.search(r"^NODE_MIN := (\d+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    sdk = re.search(r"^pulumi==(\d+\.\d+)\.", (REPO / "requirements.txt").read_text(), re.M)
    assert python
    assert node
    assert sdk
    assert f"Python {python.group(1)}" in line
    assert f"Node.js {node.group(1)}" in line
    assert f"Pulumi CLI {sdk.group(1)}" in line
    for other in ("Docker with buildx", "AWS CLI v2", "Azure CLI 2", "macOS", "Linux"):
        assert other in line


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


def flat(page: str) -> str:
    """A page's text with its line breaks and runs of blanks as single spaces."""
    return " ".join((REPO / "docs" / page).read_text().split())


def test_the_policy_pages_say_stack_rules_run_after_the_steps_and_what_guards_a_deploy() -> None:
    """The engine checks a resource rule as each resource is about to change, but a stack rule
    only once every step ran (pulumi/pulumi deployment_executor.go, AnalyzeStack after the step
    executor): only the offline check with every value known stops, before anything changes, a
    violation the preview could not see."""
    for page in ("policy.md", "ci.md"):
        text = flat(page)
        assert "before each resource is changed" not in text, page
        assert "make policy-check" in text, page
        assert "deployment_executor.go" in text, page
    assert "a stack rule runs once after every step" in flat("policy.md")
    assert "a stack rule runs after every step" in flat("ci.md")
