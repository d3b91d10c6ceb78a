"""The import graph runs one way: __main__ -> stacks -> components, and app stands alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# package -> top-level packages of this repo it must never import
FORBIDDEN = {
    "components": {"stacks", "policy", "app", "bench", "tools", "tests"},
    "stacks": {"policy", "bench", "tools", "tests"},
    # The image's build context: importable without Pulumi and without the rest of the repo.
    "app": {"components", "stacks", "policy", "bench", "tools", "tests", "pulumi"},
    "policy": {"components", "app", "bench", "tools", "tests"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every absolute import in the file, wherever it stands."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        if ".venv" in path.parts:
            continue
        for name in sorted(imported_packages(path) & FORBIDDEN[package]):
            found.append(f"{path.relative_to(REPO)} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_goes_back_up(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from stacks.config import load\n    import policy.rules\n")
    assert imported_packages(module) == {"stacks", "policy"}


def test_main_only_reads_the_config_and_picks_the_stack() -> None:
    assert imported_packages(REPO / "__main__.py") == {"importlib", "pulumi", "stacks"}
