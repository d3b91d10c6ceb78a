"""The consumer's queue roles cover every queue call the consumer makes, on each queue, and
nothing needs a custom role.

The calls are recorded from the real app code (app.azure.StorageQueue) against a recording
client; what each call needs and what each role grants are upstream facts, kept here:
- per operation: Azure Storage REST, "Authorize with Microsoft Entra ID", permissions for
  calling queue data operations (any one of the listed sets suffices);
- per role: the data actions of the built-in roles (MicrosoftDocs/azure-docs
  articles/role-based-access-control/built-in-roles/storage.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from app.azure import MAX_MESSAGE_BYTES, StorageQueue, _Pool
from app.backend import Received
from stacks.offline import StackRun

MESSAGES = "Microsoft.Storage/storageAccounts/queueServices/queues/messages"
READ, WRITE, DELETE = f"{MESSAGES}/read", f"{MESSAGES}/write", f"{MESSAGES}/delete"
ADD, PROCESS = f"{MESSAGES}/add/action", f"{MESSAGES}/process/action"
# SDK call -> the REST operation's alternatives (each a set of data actions that suffices).
NEEDS: dict[str, list[set[str]]] = {
    "receive_messages": [{PROCESS}, {DELETE, READ}],  # Get Messages
    "delete_message": [{PROCESS}, {DELETE}],  # Delete Message
    "update_message": [{WRITE}],  # Update Message (visibility)
    "send_message": [{ADD}, {WRITE}],  # Put Message
}
GRANTS = {
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": {DELETE, READ, WRITE, PROCESS},  # Data Contributor
    "8a0f0c08-91a1-4084-bc3d-661d67233fed": {READ, PROCESS},  # Message Processor
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": {ADD},  # Message Sender
    "19e7f393-937e-4f77-808e-94535e297925": {READ},  # Data Reader
}


@dataclass
class Sent:
    id: str
    pop_receipt: str


class RecordingQueue:
    """Records each SDK call by name; ``fail_on`` makes the n-th send raise, as a refused or
    lost request would."""

    def __init__(self, fail_on_send: int = 0) -> None:
        self.calls: list[str] = []
        self.sends = 0
        self.fail_on_send = fail_on_send

    def receive_messages(self, **_: Any) -> Any:
        self.calls.append("receive_messages")
        message = type(
            "M", (), {"id": "m1", "content": "{}", "pop_receipt": "r1", "dequeue_count": 9}
        )()
        return type("Pages", (), {"by_page": lambda self: iter([[message]])})()

    def delete_message(self, *_: Any, **__: Any) -> None:
        self.calls.append("delete_message")

    def update_message(self, *_: Any, **__: Any) -> Any:
        self.calls.append("update_message")
        return Sent("m1", "r2")

    def send_message(self, *_: Any, **__: Any) -> Sent:
        self.calls.append("send_message")
        self.sends += 1
        if self.sends == self.fail_on_send:
            raise OSError("connection reset")
        return Sent(f"p{self.sends}", f"pr{self.sends}")


def consumer_calls() -> dict[str, set[str]]:
    """What the consumer does to its work queue and to its poison queue, including the
    cleanup after an envelope that could not be sent (a body too large to travel inside it)."""
    pool = _Pool(1)
    work, poison = RecordingQueue(), RecordingQueue(fail_on_send=2)
    queue, dead_letters = StorageQueue(work, pool), StorageQueue(poison, pool)
    (message,) = queue.receive(0, 60, 32)
    queue.extend([message], 120)
    queue.delete([message])
    big = Received("m2", "x" * (MAX_MESSAGE_BYTES - 10), "r", 9)
    assert dead_letters.send_dead_letters([(big, "too many deliveries")]) == []
    return {"work": set(work.calls), "poison": set(poison.calls)}


def test_the_consumer_calls_are_what_the_grants_must_cover() -> None:
    calls = consumer_calls()
    assert calls["work"] == {"receive_messages", "update_message", "delete_message"}
    # Body first, then the pointer envelope fails, so the body is deleted again.
    assert calls["poison"] == {"send_message", "delete_message"}


@pytest.mark.parametrize("workflow_queue", ["work", "poison"])
def test_the_consumer_identity_may_make_every_call_it_makes(
    dev_run: StackRun, workflow_queue: str
) -> None:
    queue = dev_run.one("azure-native:storage:Queue", f"work-{workflow_queue}")
    principal = dev_run.one(
        "azure-native:managedidentity:UserAssignedIdentity", "consumer-identity-identity"
    ).outputs["principalId"]
    granted: set[str] = set()
    for grant in dev_run.of_type("azure-native:authorization:RoleAssignment"):
        if grant.inputs["principalId"] == principal and grant.inputs["scope"] == queue.id:
            granted |= GRANTS[grant.inputs["roleDefinitionId"].rsplit("/", 1)[1]]
    for call in consumer_calls()[workflow_queue]:
        assert any(need <= granted for need in NEEDS[call]), (
            f"{call} on the {workflow_queue} queue needs one of {NEEDS[call]}; granted {granted}"
        )
