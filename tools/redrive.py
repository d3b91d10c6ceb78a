"""Return dead letters to where they were going, with their original content: one command per
kind of dead letter (docs/operations.md, "Dead letters").

    python -m tools.redrive sqs-dlq --stack aws [--workflow orders]     # DLQ -> workflow queue
    python -m tools.redrive webhook-dlq --stack aws [--webhook partner] # webhook DLQ -> router
    python -m tools.redrive poison --stack dev [--workflow orders]      # poison -> workflow queue
    python -m tools.redrive dead-letter-blobs --stack dev               # blobs -> queue or router

``--outputs FILE`` reads a saved ``pulumi stack output --json`` instead of the CLI. Read the
reasons first (the consumer's reason travels with each dead letter) and fix the cause, or the
messages come back. Every move sends first and deletes after: run a command twice, or after a
crash, and nothing is lost; an event sent twice writes one row (a row is keyed by its workflow,
source and id).

- SQS DLQ: what the consumer set aside (the body byte for byte; its reason is a message
  attribute, dropped on the way back), what SQS moved after maxReceiveCount, and what the router
  could not deliver to the queue. A message in the SNS notification envelope is unwrapped to the
  event it carries: SNS does not document the DLQ format of a raw-delivery subscription, so both
  are accepted.
- Webhook DLQ: events SNS could not deliver to a partner. They go back through the router (SNS
  cannot address one subscription): every subscription whose filter takes them gets them again,
  so workflows rewrite their rows and other partners see the event a second time, with the same
  CloudEvents id to deduplicate on.
- Poison queue: the consumer's envelope (reason, original id, body) is opened and its body sent;
  an envelope that points at a body stored as a message of its own sends that message. A pointer
  is deleted once its body was sent, or once a pass read the whole queue without finding it; a
  pass cut short by ``--limit`` keeps the pointers whose body it did not reach.
- Event Grid dead-letter blobs: each blob holds an array of events, each the CloudEvent as
  published plus Event Grid's dead-letter attributes, under a path naming the subscription in
  capitals (Event Grid, "Delivery and retry", dead-letter event formats; "Dead letter and retry
  policies"). The attributes are removed and each event goes, as compact JSON with its
  characters unescaped, to the subscription's workflow queue or, for a webhook, to the router;
  the blob is deleted once all its events are sent. A blob that is not such an array (not UTF-8
  JSON, not a list of events) or not under such a path is reported and kept, and the pass goes
  on.

Queue messages travel as the queue holds them (Event Grid's Base64 stays Base64), so each comes
back byte for byte.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.backend import Received, Sender, WorkQueue, open_router
from app.producer import TargetError
from tools.inventory import (
    DEAD_LETTERS,
    WEBHOOK_DEAD_LETTERS,
    WORK,
    Inventory,
    inventory,
    load_outputs,
)
from tools.replay import VISIBILITY_SECONDS, Moved, move

# What Event Grid adds to a dead-lettered CloudEvent (its "Delivery and retry" article).
DEAD_LETTER_ATTRIBUTES = frozenset(
    {
        "deadletterreason",
        "deliveryattempts",
        "lastdeliveryoutcome",
        "lastdeliveryattempttime",
        "lasthttpstatuscode",
        "publishtime",
    }
)
WEBHOOK_PREFIX = "webhook-"  # the subscription name of a webhook (stacks/azure.py)
# The dead-letter blob path ends <subscription>/<year>/<month>/<day>/<hour>/<guid>.json.
PATH_AFTER_SUBSCRIPTION = 5
# The poison envelope the consumer writes (app/azure.py poison_envelope).
ENVELOPE_KEYS = frozenset({"reason", "message_id", "dequeue_count"})


def sns_unwrapped(body: str) -> str:
    """The event an SNS notification envelope carries; any other body as it is (a CloudEvent's
    attributes are lower case, an envelope's are not)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and "TopicArn" in doc:
        return str(doc.get("Message", ""))
    return body


def envelope(body: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.keys() >= ENVELOPE_KEYS else None


@dataclass
class PoisonPass:
    moved: int = 0
    stale: int = 0  # envelopes whose body message was already gone (moved by an earlier run)
    errors: list[str] = field(default_factory=list)


def redrive_poison(source: WorkQueue, destination: Sender, limit: int = sys.maxsize) -> PoisonPass:
    """One pass over the poison queue: every envelope's body and every body stored on its own
    (its content as the queue holds it) go to ``destination``, at most ``limit``; an envelope
    pointing at a body is deleted once that body was sent, or once the whole queue was read
    without finding it. What the pass leaves is made visible again at once."""
    result = PoisonPass()
    pointers: dict[str, Received] = {}  # body message id -> its envelope
    sent_bodies: set[str] = set()
    left: list[Received] = []  # received but neither sent nor deleted: released at the end
    read_all = False
    while result.moved < limit:
        batch = source.receive(0, VISIBILITY_SECONDS, source.max_batch)
        if not batch:
            read_all = True
            break
        ready: list[tuple[Received, str]] = []
        for message in batch:
            doc = envelope(message.body)
            if doc is None:
                ready.append((message, message.content))  # a body stored on its own
            elif "body" in doc:
                ready.append((message, doc["body"]))
            else:
                pointers[str(doc.get("body_message_id"))] = message
        left += [m for m, _ in ready[limit - result.moved :]]
        ready = ready[: limit - result.moved]
        if ready and destination.send([body for _, body in ready]):
            result.errors.append("the destination refused a batch; it stays on the poison queue")
            return result
        kept = source.delete([m for m, _ in ready])
        result.moved += len(ready) - len(kept)
        sent_bodies.update(m.message_id for m, _ in ready if m not in kept)
    # A pointer whose body was sent is done; after reading the whole queue, one whose body was
    # not seen points at nothing any more. A pass cut short by the limit keeps the others: their
    # bodies may be among the messages it did not reach.
    done = [m for body_id, m in pointers.items() if body_id in sent_bodies]
    unseen = [m for body_id, m in pointers.items() if body_id not in sent_bodies]
    if read_all:
        result.stale, done = len(unseen), done + unseen
    else:
        left += unseen
    kept = source.delete(done)
    if kept:
        result.errors.append(f"{len(kept)} envelopes were not deleted; run again")
    if left:
        source.extend(left, 0)
    return result


# What JSON may hold as escapes but a queue message cannot carry raw: lone surrogates (no UTF-8
# for them) and U+FFFE/U+FFFF (XML 1.0 forbids them in the Put Message body).
UNSENDABLE = re.compile("[\ud800-\udfff\ufffe\uffff]")


class OddBlobError(ValueError):
    """A blob that is not an Event Grid dead-letter blob: kept, reported, skipped."""


def dead_lettered_events(blob: bytes) -> list[str]:
    """The events of one dead-letter blob, each as published (dead-letter attributes removed),
    as compact JSON with its characters as they are: ``\\uXXXX`` escapes would make a message
    up to three times larger (in UTF-8 bytes) than the 64 KiB a queue message may hold."""
    try:
        doc = json.loads(blob.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise OddBlobError(f"not UTF-8 JSON ({exc})") from exc
    if not isinstance(doc, list) or not all(isinstance(e, dict) for e in doc):
        raise OddBlobError("not an array of events")
    return [
        UNSENDABLE.sub(
            lambda m: f"\\u{ord(m.group()):04x}",
            json.dumps(
                {k: v for k, v in e.items() if k not in DEAD_LETTER_ATTRIBUTES},
                ensure_ascii=False,
                separators=(",", ":"),
            ),
        )
        for e in doc
    ]


def subscription_of(blob_name: str) -> str:
    parts = blob_name.strip("/").split("/")
    if len(parts) <= PATH_AFTER_SUBSCRIPTION:
        raise ValueError(f"{blob_name!r} is not a dead-letter path (<subscription>/y/m/d/h/id)")
    return parts[-PATH_AFTER_SUBSCRIPTION - 1].lower()


@dataclass
class BlobPass:
    events: dict[str, int] = field(default_factory=dict)  # destination -> events sent
    errors: list[str] = field(default_factory=list)


def redrive_blobs(
    container: Any, queues: dict[str, Sender], router: Sender | None, only: Sequence[str] = ()
) -> BlobPass:
    """Each blob's events to its subscription's workflow queue (``queues`` by workflow name) or,
    for a webhook's subscription, to ``router``; the blob is deleted after all were sent."""
    result = BlobPass()
    for blob in list(container.list_blobs()):
        try:
            subscription = subscription_of(blob.name)
        except ValueError as exc:
            result.errors.append(f"{exc}; kept")
            continue
        if only and subscription not in only:
            continue
        if subscription.startswith(WEBHOOK_PREFIX):
            destination, where = router, "router"
        else:
            destination, where = queues.get(subscription), f"{subscription} queue"
        if destination is None:
            result.errors.append(f"{blob.name}: no workflow or webhook {subscription!r}; kept")
            continue
        try:
            events = dead_lettered_events(container.download_blob(blob.name).readall())
        except OddBlobError as exc:
            result.errors.append(f"{blob.name}: {exc}; kept")
            continue
        if destination.send(events):
            result.errors.append(f"{blob.name}: the {where} refused its events; kept")
            continue
        container.delete_blob(blob.name)
        result.events[where] = result.events.get(where, 0) + len(events)
    return result


def require(inv: Inventory, cloud: str, kind: str) -> None:
    if inv.cloud != cloud:
        other = {"aws": "sqs-dlq or webhook-dlq", "azure": "poison or dead-letter-blobs"}
        raise TargetError(
            f"{kind} is for {cloud} stacks; {inv.stack} is {inv.cloud}: use {other[inv.cloud]}"
        )


def router(inv: Inventory) -> Sender:
    if not inv.router:
        raise TargetError(f"{inv.stack} has no router in its outputs")
    return open_router(inv.cloud, inv.router)


def report(moved: Moved, what: str) -> int:
    print(f"{what}: {moved.moved} returned")
    if moved.error:
        print(f"redrive: {what}: {moved.error}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace, inv: Inventory) -> int:
    failed = 0
    if args.kind in ("sqs-dlq", "poison"):
        require(inv, "aws" if args.kind == "sqs-dlq" else "azure", args.kind)
        for dlq in inv.of_kind(DEAD_LETTERS, tuple(args.workflow)):
            work = inv.open(inv.find(WORK, dlq.owner))  # type: ignore[arg-type]
            if args.kind == "sqs-dlq":
                failed |= report(move(inv.open(dlq), work, args.limit, sns_unwrapped), dlq.label)
                continue
            result = redrive_poison(inv.open(dlq), work, args.limit)
            print(f"{dlq.label}: {result.moved} returned, {result.stale} stale envelopes removed")
            for error in result.errors:
                print(f"redrive: {dlq.label}: {error}", file=sys.stderr)
            failed |= bool(result.errors)
    elif args.kind == "webhook-dlq":
        require(inv, "aws", args.kind)
        topic = router(inv)
        for dlq in inv.of_kind(WEBHOOK_DEAD_LETTERS, tuple(args.webhook)):
            failed |= report(move(inv.open(dlq), topic, args.limit, sns_unwrapped), dlq.label)
    else:
        require(inv, "azure", args.kind)
        queues: dict[str, Sender] = {q.owner: inv.open(q) for q in inv.of_kind(WORK)}
        result = redrive_blobs(
            inv.blobs(), queues, router(inv), [s.lower() for s in args.subscription]
        )
        for where, count in sorted(result.events.items()):
            print(f"router dead letters: {count} events returned to the {where}")
        for error in result.errors:
            print(f"redrive: {error}", file=sys.stderr)
        failed |= bool(result.errors)
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.redrive", description=__doc__)
    p.add_argument("kind", choices=("sqs-dlq", "webhook-dlq", "poison", "dead-letter-blobs"))
    p.add_argument("--stack", help="the stack whose outputs name its queues")
    p.add_argument("--outputs", help="a saved `pulumi stack output --json` file")
    p.add_argument("--workflow", action="append", default=[], help="only this workflow (repeat)")
    p.add_argument("--webhook", action="append", default=[], help="only this webhook (repeat)")
    p.add_argument(
        "--subscription", action="append", default=[], help="only this router subscription"
    )
    p.add_argument("--connection-string", help="Azure storage connection string (Azurite)")
    p.add_argument("--limit", type=int, default=sys.maxsize, help="at most this many a queue")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        outputs = load_outputs(args.stack, args.outputs)
        return run(args, inventory(args.stack or args.outputs, outputs, args.connection_string))
    except TargetError as exc:
        print(f"redrive: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
