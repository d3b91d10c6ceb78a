"""Move what one stack's queues still hold to another stack's: the last step of a region recovery.

    python -m tools.replay --from-stack aws --to-stack aws-recovery [--limit N]
    python -m tools.replay --check --from-stack aws     # would `pulumi destroy` lose anything?
    python -m tools.replay --cloud aws --from-queue URL --to-queue URL   # one queue, no Pulumi

``--from-outputs`` / ``--to-outputs`` read a saved ``pulumi stack output --json`` instead of asking
the CLI. Every queue goes to its counterpart in the other stack: each workflow's work queue to the
same workflow's queue, its dead-letter (Azure: poison) queue to the same workflow's, each
webhook's DLQ to the same webhook's, and (Azure) each router dead-letter blob to the other stack's
container. Dead letters stay dead letters there, to be read and returned with ``tools.redrive``.
A queue without counterpart stops the run before anything moves.

Each message is copied byte for byte (its content as the queue holds it: Event Grid's Base64
stays Base64) and only then deleted from the source: a crash between the two
leaves a message in both, which the consumers absorb (a row is keyed by its workflow, source and
id). A batch the destination refuses in part stays on the source, whole, and the run stops with an
error: nothing is deleted that was not sent. Each side's queues resolve in the region their URLs
name, so one laptop moves messages between regions. After a move, and with ``--check``, the
source stack is read again: the exit code is 0 only when none of its queues (nor its dead-letter
container) holds anything, that is when destroying it loses nothing (docs/resilience.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.backend import Sender, WorkQueue, open_queue
from app.producer import Target, TargetError, resolve_target
from tools.inventory import Inventory, QueueRef, holdings, inventory, load_outputs

# Long enough to send a batch and delete it; a message this run loses sight of comes back then.
VISIBILITY_SECONDS = 60
# A long poll this long asks every SQS server, so an empty answer means an empty queue.
WAIT_SECONDS = 2


class ReplayError(ValueError):
    """The two stacks do not match: nothing was moved."""


@dataclass
class Moved:
    moved: int = 0
    error: str = ""


def move(
    source: WorkQueue,
    destination: Sender,
    limit: int = sys.maxsize,
    transform: Callable[[str], str] = str,
) -> Moved:
    """Move up to ``limit`` messages until the source answers empty; each message's content, as
    the queue holds it, goes through ``transform`` on the way (identity by default)."""
    result = Moved()
    while result.moved < limit:
        batch = source.receive(
            WAIT_SECONDS if source.long_polls else 0, VISIBILITY_SECONDS, source.max_batch
        )
        batch = batch[: limit - result.moved]
        if not batch:
            return result
        unsent = destination.send([transform(m.content) for m in batch])
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


def move_blobs(source: Any, destination: Any) -> Moved:
    """Copy each blob under its own name (a second run overwrites, never duplicates), then
    delete it from the source."""
    result = Moved()
    for blob in source.list_blobs():
        data = source.download_blob(blob.name).readall()
        destination.upload_blob(blob.name, data, overwrite=True)
        source.delete_blob(blob.name)
        result.moved += 1
    return result


def counterparts(source: Inventory, destination: Inventory) -> list[tuple[QueueRef, QueueRef]]:
    """Each source queue with the destination queue of the same kind and owner."""
    if source.cloud != destination.cloud:
        raise ReplayError(
            f"{source.stack} is {source.cloud}, {destination.stack} is {destination.cloud}"
        )
    pairs = [(ref, destination.find(ref.kind, ref.owner)) for ref in source.queues]
    missing = [ref.label for ref, found in pairs if found is None]
    if source.dead_letter_container and not destination.dead_letter_container:
        missing.append("router dead-letter container")
    if missing:
        raise ReplayError(
            f"{destination.stack} has no counterpart for: {', '.join(missing)}. Give it the same "
            "workflows and webhooks (names) before replaying; nothing was moved"
        )
    return [(ref, found) for ref, found in pairs if found is not None]


def replay_stack(source: Inventory, destination: Inventory, limit: int) -> list[str]:
    """Move every queue and the dead-letter blobs; the errors met (empty: all moved)."""
    errors = []
    for ref, other in counterparts(source, destination):
        result = move(source.open(ref), destination.open(other), limit)
        print(f"{ref.label}: moved {result.moved} messages to {destination.stack}")
        if result.error:
            errors.append(f"{ref.label}: {result.error}")
    blobs = source.blobs()
    if blobs is not None:
        result = move_blobs(blobs, destination.blobs())
        print(f"router dead letters: moved {result.moved} blobs to {destination.stack}")
    return errors


def check(inv: Inventory) -> int:
    """Print what the stack still holds; 0 when nothing, so destroying it loses nothing."""
    held = [h for h in holdings(inv) if h.count]
    for h in held:
        print(f"{inv.stack}: {h.what} holds {h.count} {h.unit}")
    if held:
        print(
            f"do not destroy {inv.stack}: move these first (tools.replay) or drain them in place",
            file=sys.stderr,
        )
        return 1
    print(f"{inv.stack}: every queue and dead-letter store is empty; destroying it loses nothing")
    return 0


def side(args: argparse.Namespace, which: str, env: Mapping[str, str]) -> Target:
    flags = argparse.Namespace(
        target="queue",
        cloud=args.cloud,
        queue=getattr(args, f"{which}_queue"),
        connection_string=args.connection_string,
        storage_account=getattr(args, f"{which}_storage_account"),
    )
    # Only the flags name each side: EDW_QUEUE would point both at one queue.
    shared = {k: v for k, v in env.items() if k != "EDW_QUEUE"}
    return resolve_target(flags, shared, None)


def connect(target: Target) -> WorkQueue:
    return open_queue(
        target.cloud,
        target.address,
        connection_string=target.connection_string,
        storage_account=target.storage_account,
    )


def one_queue(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    source, destination = side(args, "from", env), side(args, "to", env)
    if (source.cloud, source.address, source.storage_account) == (
        destination.cloud,
        destination.address,
        destination.storage_account,
    ):
        print("replay: the source and the destination are the same queue", file=sys.stderr)
        return 2
    result = move(connect(source), connect(destination), args.limit)
    print(f"moved {result.moved} messages from {source.address} to {destination.address}")
    if result.error:
        print(f"replay: {result.error}", file=sys.stderr)
        return 1
    return 0


def stack(args: argparse.Namespace, which: str) -> Inventory | None:
    """The stack's inventory; None when it has no outputs (never deployed, or destroyed)."""
    name = getattr(args, f"{which}_stack")
    path = getattr(args, f"{which}_outputs")
    outputs = load_outputs(name, path)
    return inventory(name or path, outputs, args.connection_string) if outputs else None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.replay", description=__doc__)
    for which in ("from", "to"):
        p.add_argument(f"--{which}-stack", help="the stack whose outputs name its queues")
        p.add_argument(f"--{which}-outputs", help="a saved `pulumi stack output --json` file")
        p.add_argument(f"--{which}-queue", help="one queue: SQS URL (aws) or name (azure)")
        p.add_argument(f"--{which}-storage-account", help="Azure storage account of the queue")
    p.add_argument(
        "--check", action="store_true", help="only report what the --from stack still holds"
    )
    p.add_argument("--cloud", choices=("aws", "azure"))
    p.add_argument("--connection-string", help="Azure storage connection string (Azurite)")
    p.add_argument("--limit", type=int, default=sys.maxsize, help="move at most this many a queue")
    return p


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    args = parser().parse_args(argv)
    try:
        if args.from_queue or args.to_queue:
            return one_queue(args, env)
        source, label = stack(args, "from"), args.from_stack or args.from_outputs
        if source is None:
            print(f"{label} has no outputs: nothing deployed, nothing to lose or move")
            return 0
        if args.check:
            return check(source)
        destination = stack(args, "to")
        if destination is None:
            raise ReplayError(f"{args.to_stack or args.to_outputs} has no outputs: deploy it first")
        errors = replay_stack(source, destination, args.limit)
    except (TargetError, ReplayError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    for error in errors:
        print(f"replay: {error}", file=sys.stderr)
    return 1 if errors else check(source)


if __name__ == "__main__":
    sys.exit(main())
