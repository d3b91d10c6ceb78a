"""Write what the settings table declares into Pulumi.yaml and docs/configuration.md.

``stacks.config.SETTINGS`` is the one place a setting is declared. ``make docs`` runs this to
regenerate the ``config:`` block of ``Pulumi.yaml`` (what the CLI validates stack values with) and
the reference table of ``docs/configuration.md`` (between its GENERATED markers); ``--check``
exits 1 and names the stale file instead of writing, which the test suite runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from stacks.config import PROJECT, SETTINGS, Setting

REPO = Path(__file__).resolve().parents[1]
BEGIN = "<!-- BEGIN GENERATED: settings table (make docs) -->"
END = "<!-- END GENERATED -->"


def pulumi_config(settings: Sequence[Setting] = SETTINGS) -> dict[str, Any]:
    """The ``config:`` block of Pulumi.yaml: type, description, default (and array items)."""
    block: dict[str, Any] = {}
    for s in settings:
        only = f" ({s.cloud} only)" if s.cloud else ""
        derived = f" Default: {s.derived_default}." if s.derived_default else ""
        spec: dict[str, Any] = {"type": s.type, "description": s.description + only + derived}
        if s.type == "array":
            spec["items"] = {"type": s.items}
        if s.default is not None:
            spec["default"] = s.default
        block[s.key] = spec
    return block


def pulumi_yaml(current: str) -> str:
    """``current`` with its config block regenerated (everything above ``config:`` is kept)."""
    head = current.split("\nconfig:\n", 1)[0]
    body = yaml.safe_dump(
        {"config": pulumi_config()}, sort_keys=False, width=100, default_flow_style=False
    )
    return f"{head}\n{body}"


def _default(s: Setting) -> str:
    if s.derived_default:
        return s.derived_default
    if s.default is None:
        return "(required)"
    if isinstance(s.default, str):
        return f"`{s.default}`" if s.default else '`""`'
    return f"`{json.dumps(s.default)}`"


def reference_table(settings: Sequence[Setting] = SETTINGS) -> str:
    rows = [
        "| key | type | default | used by | what it does |",
        "|---|---|---|---|---|",
        *(
            f"| `{PROJECT}:{s.key}` | {s.type} | {_default(s)} | {s.cloud or 'both'} | "
            f"{s.description} |"
            for s in settings
        ),
    ]
    return "\n".join(rows)


def configuration_doc(current: str) -> str:
    before, rest = current.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return f"{before}{BEGIN}\n{reference_table()}\n{END}{after}"


TARGETS = {
    REPO / "Pulumi.yaml": pulumi_yaml,
    REPO / "docs" / "configuration.md": configuration_doc,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.settingsdoc", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail on a stale file, write none")
    args = parser.parse_args(argv)
    stale = []
    for path, render in TARGETS.items():
        current = path.read_text()
        wanted = render(current)
        if wanted != current:
            stale.append(path.relative_to(REPO).as_posix())
            if not args.check:
                path.write_text(wanted)
    if args.check and stale:
        print(f"stale: {', '.join(stale)}; run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
