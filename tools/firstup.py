"""Before `make up` creates a stack: what it costs idle, how long it takes, and a question.

    python -m tools.firstup --stack aws [--ref org/aws] [--yes]

A stack that already has resources is updated without a question (this is about creating one).
A new one (``pulumi stack export`` lists no resources) gets one line: its idle cost per month
from ``tools.cost`` (the stack's own graph, offline), how long creating it takes, and how to
remove it; then ``Create it? [y/N]``. ``--yes``, or a ``CI`` environment variable (GitHub
Actions sets ``CI=true``), skips the question; so does ``make up YES=1``. Without a terminal to
ask on, it stops (exit 2) and says how to go on. Exit 0: go on; 1: the answer was no.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence

EXIT_DECLINED = 1
EXIT_NO_TERMINAL = 2
# How long a first `up` takes, in minutes: an estimate, not measured here. The EKS control plane
# alone averaged 15 minutes (aws/containers-roadmap#1227); the node group, Karpenter, KEDA and the
# image build come on top. AKS, Cosmos DB and the role grants that wait for Entra
# (docs/azure.md) take about as long. Neither figure has been verified on a real account.
CREATE_MINUTES = {"aws": "20-30", "azure": "15-25"}


def has_resources(ref: str) -> bool:
    """True when the stack already holds resources (an update, not a creation)."""
    try:
        result = subprocess.run(
            ["pulumi", "stack", "export", "--stack", ref],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return False  # no such stack yet: `up` creates it
    # A stack with no resources yet exports none: DeploymentV3.resources is omitempty
    # (pulumi/pulumi, sdk/go/common/apitype/core.go).
    deployment = json.loads(result.stdout or "{}").get("deployment") or {}
    return bool(deployment.get("resources"))


def idle_cost(stack: str) -> tuple[str, float, str]:
    """(cloud, idle cost per month, currency) from the stack's graph, as `make cost` shows it."""
    from stacks.offline import run_stack  # noqa: PLC0415 - runs the program: only when asked
    from tools.cost import Volume, estimate  # noqa: PLC0415

    run = run_stack(stack)
    region = str(run.outputs.get("region") or run.outputs.get("location") or "")
    report = estimate(run, region, Volume(0, 1))
    return report["cloud"], float(report["totals"]["idleMonthly"]), report["currency"]


def skip_reason(yes: bool, env: Mapping[str, str]) -> str | None:
    if yes:
        return "--yes"
    if env.get("CI", "").lower() not in ("", "0", "false"):
        return "CI"
    return None


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] = os.environ,
    ask: Callable[[str], str] = input,
    interactive: Callable[[], bool] = sys.stdin.isatty,
) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.firstup", description=__doc__)
    parser.add_argument("--stack", required=True, help="the stack's config: aws or dev")
    parser.add_argument("--ref", help="the stack as pulumi names it (org/stack); default --stack")
    parser.add_argument("--yes", action="store_true", help="create without asking")
    args = parser.parse_args(argv)
    ref = args.ref or args.stack
    if has_resources(ref):
        return 0
    print(f"make up STACK={args.stack}: the stack is new; pricing it (make cost)...", flush=True)
    cloud, idle, currency = idle_cost(args.stack)
    print(
        f"Creating {args.stack} ({cloud}) costs about {idle:,.2f} {currency} a month idle "
        f"(`make cost STACK={args.stack}` itemizes it), takes about {CREATE_MINUTES[cloud]} "
        f"minutes, and `make destroy STACK={args.stack}` removes it all.",
        flush=True,
    )
    if reason := skip_reason(args.yes, env):
        print(f"Creating it without asking ({reason}).", flush=True)
        return 0
    if not interactive():
        print(
            "No terminal to ask on: run `make up YES=1` to create it without asking.",
            file=sys.stderr,
        )
        return EXIT_NO_TERMINAL
    try:
        answer = ask("Create it? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return 0
    print("Nothing was created.", file=sys.stderr)
    return EXIT_DECLINED


if __name__ == "__main__":
    sys.exit(main())
