"""What one stack holds that `pulumi destroy` would lose, read from its outputs: each workflow's
work queue and dead-letter queue (AWS DLQ, Azure poison queue), each webhook's dead-letter queue
(AWS) and the router's dead-letter blobs (Azure). The recovery tools (``tools.replay``,
``tools.redrive``) move what these hold; ``holdings`` says whether anything is left.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.backend import WorkQueue, open_queue
from app.producer import QUEUE_OUTPUTS, ROUTER_OUTPUTS, TargetError, stack_outputs

WORK, DEAD_LETTERS, WEBHOOK_DEAD_LETTERS = "queue", "dead-letter queue", "webhook dead-letter queue"
DEAD_LETTER_OUTPUTS = {"aws": "deadLetterQueueUrl", "azure": "poisonQueueName"}
# The first workflow of a stack from before workflows existed (its outputs name one queue).
DEFAULT_WORKFLOW = "work"


@dataclass(frozen=True)
class QueueRef:
    kind: str  # WORK, DEAD_LETTERS or WEBHOOK_DEAD_LETTERS
    owner: str  # the workflow's or the webhook's name
    address: str  # SQS queue URL or Storage queue name

    @property
    def label(self) -> str:
        return f"{self.owner} {self.kind}"


@dataclass(frozen=True)
class Inventory:
    stack: str
    cloud: str
    queues: tuple[QueueRef, ...]
    router: str = ""  # SNS topic ARN or Event Grid endpoint
    storage_account: str | None = None
    dead_letter_container: str | None = None  # Azure: the router's dead-letter blobs
    # Azurite (tests, the demo): one connection string reaches queues and blobs.
    connection_string: str | None = field(default=None, compare=False)

    def find(self, kind: str, owner: str) -> QueueRef | None:
        return next((q for q in self.queues if (q.kind, q.owner) == (kind, owner)), None)

    def of_kind(self, kind: str, owners: tuple[str, ...] = ()) -> list[QueueRef]:
        """The queues of a kind, all or those of the named owners (an unknown name is an
        error naming the known ones)."""
        found = [q for q in self.queues if q.kind == kind]
        unknown = sorted(set(owners) - {q.owner for q in found})
        if unknown:
            known = ", ".join(sorted(q.owner for q in found)) or "none"
            raise TargetError(f"{self.stack} has no {kind} for {unknown}; known: {known}")
        return [q for q in found if not owners or q.owner in owners]

    def open(self, ref: QueueRef) -> WorkQueue:
        return open_queue(
            self.cloud,
            ref.address,
            connection_string=self.connection_string,
            storage_account=self.storage_account,
        )

    def blobs(self) -> Any:
        """The router's dead-letter container (azure-storage-blob ContainerClient), or None."""
        if not self.dead_letter_container:
            return None
        from azure.storage.blob import ContainerClient  # noqa: PLC0415 - Azure stacks only

        if self.connection_string:
            return ContainerClient.from_connection_string(
                self.connection_string, self.dead_letter_container
            )
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - cloud only

        return ContainerClient(
            f"https://{self.storage_account}.blob.core.windows.net",
            self.dead_letter_container,
            credential=DefaultAzureCredential(),
        )


def load_outputs(stack: str | None, path: str | None) -> dict[str, Any]:
    """A stack's outputs: a saved ``pulumi stack output --json`` file, or the CLI's answer."""
    if path:
        return json.loads(Path(path).read_text())
    if not stack:
        raise TargetError("name a stack (--stack) or its saved outputs (--outputs)")
    return stack_outputs(stack)


def inventory(
    stack: str, outputs: Mapping[str, Any], connection_string: str | None = None
) -> Inventory:
    cloud = outputs.get("cloud")
    if cloud not in ("aws", "azure"):
        raise TargetError(f"{stack}: its outputs name no cloud (aws or azure); is it deployed?")
    workflows = outputs.get("workflows") or {}
    if not workflows and outputs.get(QUEUE_OUTPUTS[cloud]):
        # A stack from before workflows: its one queue belongs to the default workflow.
        workflows = {DEFAULT_WORKFLOW: outputs}
    queues = [
        QueueRef(kind, name, w[key])
        for name, w in sorted(workflows.items())
        for kind, key in ((WORK, QUEUE_OUTPUTS[cloud]), (DEAD_LETTERS, DEAD_LETTER_OUTPUTS[cloud]))
    ]
    queues += [
        QueueRef(WEBHOOK_DEAD_LETTERS, name, url)
        for name, url in sorted((outputs.get("webhookDeadLetterQueueUrls") or {}).items())
    ]
    router = outputs.get(ROUTER_OUTPUTS[cloud]) or ""
    container = None
    if cloud == "azure" and router:
        container = outputs.get("routerDeadLetterContainer") or _default_container()
    return Inventory(
        stack,
        cloud,
        tuple(queues),
        router,
        outputs.get("storageAccount"),
        container,
        connection_string,
    )


def _default_container() -> str:
    # Stacks deployed before the output existed used the component's fixed name.
    from components.azure.work_queue import DEAD_LETTER_CONTAINER  # noqa: PLC0415 - slow import

    return DEAD_LETTER_CONTAINER


@dataclass(frozen=True)
class Holding:
    what: str
    count: int
    unit: str = "messages"


def holdings(inv: Inventory) -> Iterator[Holding]:
    """What each queue (and the dead-letter container) of the stack still holds."""
    for ref in inv.queues:
        yield Holding(ref.label, inv.open(ref).depth())
    container = inv.blobs()
    if container is not None:
        count = sum(1 for _ in container.list_blobs())
        yield Holding(f"router dead-letter container {inv.dead_letter_container}", count, "blobs")
