"""Move what one stack's work queue still holds to another's: the last step of a region recovery.

    python -m tools.replay --from-stack aws --to-stack aws-recovery [--limit N]
    python -m tools.replay --cloud aws --from-queue URL --to-queue URL        # no Pulumi CLI

When a lost region comes back, its queue still holds the events that were waiting when it went
down (docs/resilience.md). This copies each body, byte for byte, to the destination queue and
only then deletes it from the source: a crash between the two leaves a message in both, which the
consumers absorb (a row is keyed by its event id, so processing an event twice writes one row).
A batch the destination refuses in part stays on the source, whole, and the run stops with an
error: nothing is deleted that was not sent. Each side's target resolves as the producer's does
(`app.producer.resolve_target`), so the two stacks may be in different regions or accounts.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.backend import WorkQueue, open_queue
from app.producer import Target, TargetError, resolve_target, stack_outputs

# Long enough to send a batch and delete it; a message this run loses sight of comes back then.
VISIBILITY_SECONDS = 60
# A long poll this long asks every SQS server, so an empty answer means an empty queue.
WAIT_SECONDS = 2


@dataclass
class Moved:
    moved: int = 0
    error: str = ""


def replay(source: WorkQueue, destination: WorkQueue, limit: int) -> Moved:
    """Move up to ``limit`` messages until the source answers empty."""
    result = Moved()
    while result.moved < limit:
        batch = source.receive(
            WAIT_SECONDS if source.long_polls else 0, VISIBILITY_SECONDS, source.max_batch
        )
        batch = batch[: limit - result.moved]
        if not batch:
            return result
        unsent = destination.send([m.body for m in batch])
        if unsent:
            result.error = (
                f"the destination refused {unsent} of {len(batch)} messages; the batch stays on "
                f"the source and reappears in {VISIBILITY_SECONDS}s: run again"
            )
            return result
        kept = source.delete(batch)
        result.moved += len(batch) - len(kept)
        if kept:
            result.error = (
                f"{len(kept)} messages were sent but not deleted from the source: they will be "
                "moved again (their rows are written once)"
            )
            return result
    return result


def side(args: argparse.Namespace, which: str, env: Mapping[str, str]) -> Target:
    stack = getattr(args, f"{which}_stack")
    flags = argparse.Namespace(
        target="queue",
        cloud=args.cloud,
        queue=getattr(args, f"{which}_queue"),
        connection_string=args.connection_string,
        storage_account=getattr(args, f"{which}_storage_account"),
    )
    # Only the stack's outputs name each side: EDW_QUEUE would point both at one queue.
    shared = {k: v for k, v in env.items() if k != "EDW_QUEUE"}
    return resolve_target(flags, shared, stack_outputs(stack) if stack else None)


def connect(target: Target) -> WorkQueue:
    return open_queue(
        target.cloud,
        target.address,
        connection_string=target.connection_string,
        storage_account=target.storage_account,
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.replay", description=__doc__)
    for which in ("from", "to"):
        p.add_argument(f"--{which}-stack", help="read the queue from this stack's outputs")
        p.add_argument(f"--{which}-queue", help="SQS queue URL (aws) or queue name (azure)")
        p.add_argument(f"--{which}-storage-account", help="Azure storage account of the queue")
    p.add_argument("--cloud", choices=("aws", "azure"))
    p.add_argument("--connection-string", help="Azure storage connection string (Azurite)")
    p.add_argument("--limit", type=int, default=sys.maxsize, help="move at most this many")
    return p


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    args = parser().parse_args(argv)
    try:
        source, destination = side(args, "from", env), side(args, "to", env)
    except TargetError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    if (source.cloud, source.address, source.storage_account) == (
        destination.cloud,
        destination.address,
        destination.storage_account,
    ):
        print("replay: the source and the destination are the same queue", file=sys.stderr)
        return 2
    result = replay(connect(source), connect(destination), args.limit)
    print(f"moved {result.moved} messages from {source.address} to {destination.address}")
    if result.error:
        print(f"replay: {result.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
