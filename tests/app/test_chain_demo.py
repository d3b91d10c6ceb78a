"""tools/chain.py, the handler chain step of `make demo`: optional without node."""

from __future__ import annotations

import subprocess
import sys

from bench.emulators import REPO, child_env


def test_without_node_the_chain_step_says_why_and_skips() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.chain", "--cloud", "aws"],
        cwd=REPO,
        env=child_env({"PATH": "/nonexistent"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "skipping the orders -> shipping handler chain: node is not on PATH (the orders "
        "example handler is Node.js; install 20+)"
    )
