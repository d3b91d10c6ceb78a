"""Where the consumer image comes from: the bundled app/ directory, tagged by its content."""

from __future__ import annotations

import hashlib
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent / "app"
IGNORED = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def content_tag(app_dir: Path = APP_DIR) -> str:
    """A tag that changes exactly when the image's sources change (never `latest`)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in app_dir.rglob("*") if p.is_file()):
        if IGNORED.isdisjoint(path.relative_to(app_dir).parts):
            digest.update(str(path.relative_to(app_dir)).encode())
            digest.update(path.read_bytes())
    return f"src-{digest.hexdigest()[:12]}"
